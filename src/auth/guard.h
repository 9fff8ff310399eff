/*
 * The sign-in guard of a server: every password check of both roles goes
 * through it, so that guessing passwords costs the guesser, never the
 * other users.
 *
 *   - Argon2id runs on the guard's own threads, at most `max_verifying`
 *     at once (each takes ~64 MiB and ~200 ms), never on the event loop;
 *     the answer comes back to the loop. Past `max_queued` waiting checks
 *     a check is refused at once (PS_EBUSY: 503 with Retry-After).
 *   - Unknown accounts cost the same work as known ones: the password is
 *     checked against a dummy hash, so timing tells nothing about which
 *     accounts exist.
 *   - A credential found right or wrong is remembered for a while by a
 *     keyed digest of (account, password, stored hash) only: repeating it
 *     costs no Argon2id, and a password change (a new hash) forgets it.
 *   - Failures slow further attempts, per account and per client address:
 *     after a few free failures each new one doubles the wait, up to a
 *     cap, and the count fades when failures stop. The per-address wait
 *     grows further than the per-account one, so someone guessing from
 *     one place is slowed hard, while the wait an attacker can impose on
 *     a real user of an account (from anywhere) stays short: a delay, not
 *     a lockout.
 *
 * The clock is injectable, so tests drive time without sleeping. Loop
 * thread only, except the clock, which must be safe to call from any
 * thread.
 */
#ifndef PS_AUTH_GUARD_H
#define PS_AUTH_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct event_base;
struct auth_guard;

struct auth_guard_limits {
	int	 max_verifying;		/* Argon2id at once (threads) */
	size_t	 max_queued;		/* checks waiting for a thread */
	int	 free_failures;		/* failures before any wait */
	int64_t	 first_delay_ms;	/* the first wait, then doubled */
	int64_t	 account_cap_ms;	/* longest wait per account */
	int64_t	 peer_cap_ms;		/* longest wait per address */
	int64_t	 forget_after_ms;	/* failures fade after this quiet */
	int64_t	 remember_ms;		/* right/wrong credentials kept */
	size_t	 max_tracked;		/* accounts + addresses + digests */
	int64_t	 (*now_ms)(void);	/* NULL: the monotonic clock */
};

/* The defaults (docs/operations.md lists them). */
extern const struct auth_guard_limits auth_guard_default_limits;

/*
 * A guard reporting to `base` (borrowed), with `lim` copied (NULL: the
 * defaults). NULL, with the reason in ps_errmsg(), when its threads cannot
 * start. Free with auth_guard_free(), which waits for running checks and
 * calls back none of those not yet answered.
 */
struct auth_guard *auth_guard_new(struct event_base *,
	    const struct auth_guard_limits *lim);
void	auth_guard_free(struct auth_guard *);

/*
 * How long (ms) a sign-in to `account` from `peer` must still wait
 * because of earlier failures; 0 when it may be checked now. `account`
 * is as typed (compared case-insensitively); either may be NULL.
 */
int64_t	auth_guard_wait(struct auth_guard *, const char *account,
	    const char *peer);

/*
 * The outcome of one check, for done(): PS_OK (the password is right),
 * PS_EAUTH (wrong, or no such account), PS_EBUSY (too many checks
 * waiting; nothing was checked). Each has a sentence in `why` (never the
 * password).
 */
typedef void (*auth_guard_done_fn)(void *arg, ps_err rc, const char *why);

/*
 * Checks `password` for `account` against `hash` (its stored Argon2id
 * string, or NULL when the account does not exist or has no password: the
 * same work is done against a dummy hash, and the answer is PS_EAUTH). The
 * password is copied and wiped after use. A failure counts for `account`
 * and `peer`; a success clears the account's and the address's count.
 * `done` is called once, on the loop, never before this function returns.
 * The caller checks auth_guard_wait() first.
 */
void	auth_guard_check(struct auth_guard *, const char *account,
	    const char *peer, const char *hash, const char *password,
	    auth_guard_done_fn done, void *arg);

/* For metrics: checks waiting or running; accounts and addresses slowed. */
size_t	auth_guard_pending(const struct auth_guard *);
size_t	auth_guard_throttled(const struct auth_guard *);

#endif
