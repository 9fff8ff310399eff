/*
 * A server following the store's change feed (store.h), so that what it
 * keeps in memory stays what the store holds while other processes (admin
 * commands, `portal refresh`) change it.
 *
 * Before a request is answered from memory, the server asks
 * store_follower_current(): a shared-memory read, no store call. When
 * the feed has moved since the server last read it, the request waits
 * (deferred, the loop goes on) while the read lane reads the new rows and
 * the server drops exactly the keys they name; then it is resumed. So a
 * change an admin command committed before a request arrived is seen by
 * that request, and a cached photo is dropped only when that photo
 * changed.
 *
 * The feed is also read every STORE_FOLLOW_TICK_MS, for commits that
 * moved no counter (a process that could not map it, plain SQL), and
 * pruned of rows older than
 * STORE_FOLLOW_KEEP_S on the write lane every so often. On PostgreSQL it
 * is read too whenever the store notifies a commit (another node's: the
 * follower LISTENs on a connection of its own, opened on the read lane
 * and opened again at a tick after it was lost, the feed then read to
 * catch up).
 *
 * Loop thread only.
 */
#ifndef PS_STORE_FOLLOW_H
#define PS_STORE_FOLLOW_H

#include <stdbool.h>

#include "store.h"

#define STORE_FOLLOW_TICK_MS	1000
#define STORE_FOLLOW_KEEP_S	3600

struct event_base;
struct store_pool;
struct store_follower;

struct store_follow_ops {
	/*
	 * Optional, on the read lane right after the changes were read
	 * (`lost`: the feed was pruned past this server, anything may have
	 * changed): reads what the changes make stale and the server must
	 * have again before it answers (its settings, say). Returns what it
	 * read, handed to apply(). It must not touch loop-owned state.
	 */
	void	*(*reread)(struct store *, const struct store_change *,
		    size_t n, bool lost);
	/*
	 * On the loop: drop exactly what the changes name (everything when
	 * `lost`), and take `reread`'s result.
	 */
	void	(*apply)(void *arg, const struct store_change *, size_t n,
		    bool lost, void *reread);
};

/*
 * Starts following the feed of the store at `store_path` (for its shared
 * counter) through `pool` (borrowed), from the row after `from_seq`: the
 * store_feed_head() the server read before it loaded what it keeps, so
 * that nothing committed meanwhile is missed. `ops` is borrowed.
 */
struct store_follower *store_follower_new(struct event_base *,
	    struct store_pool *, const char *store_path, int64_t from_seq,
	    const struct store_follow_ops *, void *arg);
/* Stops following; requests still waiting are resumed first. */
void	store_follower_free(struct store_follower *);

/*
 * True when everything committed before now has been applied, so the
 * caller may answer from memory. NULL: nothing is followed (true).
 */
bool	store_follower_current(const struct store_follower *);
/*
 * When it is not: resume(arg) is called once it is (later, from the
 * loop); the caller defers its request meanwhile.
 */
void	store_follower_wait(struct store_follower *, void (*resume)(void *),
	    void *arg);

/* Reads the feed now (a store change this process cannot see coming). */
void	store_follower_poke(struct store_follower *);

#endif
