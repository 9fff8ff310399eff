/*
 * The sign-in guard's failure counts shared between the nodes of one
 * store, so that guesses spread over K nodes behind a load balancer are
 * counted as one node would count them, not K times over.
 *
 * The request path does not change: a node decides a 429 from its own
 * guard's memory (signin.h), with no store call. Around it:
 *
 *   - each failure a node's checks count, and each success that clears a
 *     count, is reported by the guard (auth_guard_on_count()) and written
 *     to the store (store.h: store_signin_add(), _clear()) on the write
 *     lane, never on the loop. Writes are coalesced: what the checks
 *     report is gathered per count for SHARE_COALESCE_MS, then written in
 *     one transaction, one row per count (the failures added since the
 *     last write, not one write per failure); one such write at a time.
 *     A write lane that is full, a store that fails, or more counts at
 *     once than SHARE_MAX_PENDING leave those failures counted here only
 *     ("not shared this time": photosync_auth_share_dropped_total),
 *     never a stall;
 *   - the store adds the failures of all nodes up, and its answer (the
 *     count with every node's failures) is taken by the writer's guard;
 *   - every change of a count writes the change feed, so the other nodes
 *     read the count (the role's feed reread: auth_share_reread(), on the
 *     read lane) and their guards take it (auth_share_apply(), on the
 *     loop: auth_guard_learn());
 *   - counts whose last failure is older than the guard's forget_after
 *     are forgotten by the store as by the guard, and pruned from it
 *     (every SHARE_PRUNE_EVERY_S, with a write).
 *
 * What is shared is a count's name, its failures and the time of the
 * last; never an account or an address in the clear, nor remembered
 * credentials. For a name to mean the same on every node, every guard
 * names counts with one key, kept in the store (store_signin_key(): made
 * by whichever node of either role first needs it). A key of the store
 * rather than one derived from something each node has: the nodes of a
 * store share no other secret (a portal node's keys are copied, a
 * master's are not necessarily), and whoever can read the store can read
 * the counts anyway; what the key keeps from them is the accounts and
 * addresses, and from anyone else the table's sets (guard.h).
 *
 * Loop thread only, except auth_share_reread().
 */
#ifndef PS_AUTH_SHARE_H
#define PS_AUTH_SHARE_H

#include <stddef.h>

#include "common/err.h"

struct auth_guard;
struct auth_share;
struct auth_share_read;
struct event_base;
struct store;
struct store_change;
struct store_pool;

#define SHARE_COALESCE_MS	100	/* counts gathered before a write */
#define SHARE_MAX_PENDING	1024	/* counts gathered at most */
#define SHARE_PRUNE_EVERY_S	600

/*
 * Starts sharing `guard`'s counts through `pool` (both borrowed; the
 * pool's jobs must have run before the share is freed, and the guard
 * must outlive it: free the pool, then the share, then the guard).
 * `st` is a connection of the caller's, used once here, before the
 * server serves, to read or make the store's key (which is handed to
 * the guard: call this before the guard's first check). PS_ESTORE (the
 * reason in ps_errmsg()) when the key cannot be read or made. Free with
 * auth_share_free().
 */
ps_err	auth_share_new(struct event_base *, struct store *st,
	    struct store_pool *pool, struct auth_guard *guard,
	    struct auth_share **out);
/* Stops reporting; counts not written yet stay this node's. NULL: no-op. */
void	auth_share_free(struct auth_share *);

/*
 * For the role's feed reread (follow.h), on the read lane: the counts
 * the changes name, as the store holds them now; NULL when they name
 * none. Hand it to auth_share_apply() on the loop.
 */
struct auth_share_read *auth_share_reread(struct store *,
	    const struct store_change *, size_t n);
/*
 * On the loop: `share`'s guard learns the counts read (auth_guard_learn()),
 * then frees `rd`. Either may be NULL (`rd` is then only freed).
 */
void	auth_share_apply(struct auth_share *share, struct auth_share_read *rd);

#endif
