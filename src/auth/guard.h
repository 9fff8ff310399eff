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
 *     accounts exist. The dummy hash is made by the guard's first check,
 *     whatever its account, so even that check does not stand out.
 *   - A credential being checked is checked once: the same account and
 *     password presented again before the answer wait for that answer
 *     (joined) instead of running Argon2id again, and need no room in the
 *     queue (each is one request's waiting, which the connection cap
 *     bounds).
 *   - A credential found right or wrong is remembered for a while by a
 *     keyed digest of (account, password, stored hash) only: repeating it
 *     costs no Argon2id, and a password change (a new hash) forgets it.
 *     A remembered answer still counts as a success or a failure below.
 *   - Failures slow further attempts, per account and per client address:
 *     after a few free failures each new one doubles the wait, up to a
 *     cap, and the count is forgotten when failures stop. The per-address
 *     wait grows further than the per-account one, so someone guessing
 *     from one place is slowed hard, while the wait an attacker can impose
 *     on a real user of an account (from anywhere) stays short: a delay,
 *     not a lockout. An account or address with failures is checked at
 *     most as many times at once as it has free failures left (once at
 *     a time past them), so a burst of parallel guesses gains nothing.
 *
 * Accounts are compared case-insensitively (ASCII); pass one spelling per
 * account (the canonical name), or each spelling is throttled apart.
 * IPv6 addresses are counted by their /64 network, which one client
 * usually holds whole; IPv4 addresses (also IPv4-mapped ones) one by one.
 *
 * Memory is bounded: `max_tracked` entries (remembered credentials,
 * accounts and addresses together; rounded up to a multiple of 8) of 40
 * bytes each, allocated once (2.5 MiB by default). Entries live in sets
 * of 8 chosen by a keyed digest; a new entry takes an expired one of its
 * set, else the oldest remembered credential, else (an account or an
 * address only) the oldest failure count that no running check holds.
 * Accounts and addresses are kept only as keyed digests.
 *
 * Several nodes of one store share their failure counts (auth/share.h):
 * the guard reports each change of a count made by its own checks to
 * auth_guard_on_count()'s callback, and takes counts learnt from other
 * nodes with auth_guard_learn(). For both ends to name a count alike,
 * every node digests accounts and addresses with one key kept in the
 * store (auth_guard_share_key()); remembered credentials stay digested
 * with the guard's own random key and never leave the process.
 *
 * The clock is injectable, so tests drive time without sleeping. Loop
 * thread only (the clock too).
 */
#ifndef PS_AUTH_GUARD_H
#define PS_AUTH_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct event_base;
struct auth_guard;

/*
 * The defaults, and why:
 *   max_verifying 0: the number of CPUs, at least 1, at most 4. Argon2id
 *     is CPU work of 64 MiB each; 4 at once bound it at 256 MiB.
 *   max_queued 64: with 4 threads at ~200 ms, 3 s of waiting at most (6 s
 *     on 2 CPUs); past that an immediate 503 serves a client better.
 *   free_failures 5: room for typing mistakes.
 *   first_delay_ms 1000, then 2, 4 s...
 *   account_cap_ms 5000: the longest an attacker, from anywhere, can make
 *     a real user of an account wait per attempt; also the fastest rate
 *     at which anyone can guess one account's password (one per 5 s).
 *   peer_cap_ms 60000: one guess a minute from one address.
 *   forget_after_ms 900000: 15 minutes without a failure clear a count.
 *   remember_ms 300000: 5 minutes, as the roles' credential caches.
 *   max_tracked 65536: 2.5 MiB.
 */
struct auth_guard_limits {
	int	 max_verifying;		/* Argon2id at once; 0: CPUs */
	size_t	 max_queued;		/* checks waiting for a thread */
	int	 free_failures;		/* failures before any wait */
	int64_t	 first_delay_ms;	/* the first wait, then doubled */
	int64_t	 account_cap_ms;	/* longest wait per account */
	int64_t	 peer_cap_ms;		/* longest wait per address */
	int64_t	 forget_after_ms;	/* quiet that forgets failures */
	int64_t	 remember_ms;		/* right/wrong credentials kept */
	size_t	 max_tracked;		/* accounts + addresses + digests */
	int64_t	 (*now_ms)(void);	/* NULL: the monotonic clock */
};

/* The defaults (docs/operations.md lists them). */
extern const struct auth_guard_limits auth_guard_default_limits;

/*
 * A guard reporting to `base` (borrowed), with `lim` copied (NULL: the
 * defaults). NULL, with the reason in ps_errmsg(), when a limit is out of
 * range (max_verifying 0 to 64, max_queued at most 2^20, free_failures
 * 0 to 1000, delays and caps positive with caps >= first_delay_ms,
 * forget_after_ms positive, remember_ms >= 0, max_tracked 8 to 2^24) or
 * its threads cannot start.
 * Free with auth_guard_free(), which waits for running checks and calls
 * back none of those not yet answered; it may be called from a done
 * callback.
 */
struct auth_guard *auth_guard_new(struct event_base *,
	    const struct auth_guard_limits *lim);
void	auth_guard_free(struct auth_guard *);

/*
 * How long (ms) a sign-in to `account` from `peer` must still wait
 * because of earlier failures; 0 when it may be checked now. `account`
 * is as typed (compared case-insensitively); either may be NULL. When
 * an account or address with failures has as many checks running as it
 * has free failures left, the answer is the wait that would follow if
 * they failed (at least first_delay_ms).
 */
int64_t	auth_guard_wait(struct auth_guard *, const char *account,
	    const char *peer);

/*
 * The outcome of one check, for done(): PS_OK (the password is right),
 * PS_EAUTH (wrong, or no such account), PS_EBUSY (nothing was checked:
 * too many checks waiting, or (rarely) all 8 entries of the table where
 * this one belongs held by running checks, or earlier failures must be
 * waited out; auth_guard_wait() > 0 tells the last: 429 with
 * Retry-After, else 503). Each has a sentence in `why` (never the
 * password), borrowed for the call.
 */
typedef void (*auth_guard_done_fn)(void *arg, ps_err rc, const char *why);

/*
 * Checks `password` for `account` against `hash` (its stored Argon2id
 * string, or NULL or "" when the account does not exist or has no
 * password: the same work is done against a dummy hash, and the answer
 * is PS_EAUTH). All three are copied; the password is wiped after use.
 * A failure counts for `account` and `peer`; a success clears the
 * account's count, and the address's when all its failures were for
 * this account (so that signing in to one's own account does not reset
 * a count earned guessing others). `done` is called once, on the loop,
 * never before this function returns. The caller checks
 * auth_guard_wait() first; a check that arrives during a wait anyway
 * (e.g. one that raced another) is refused with PS_EBUSY, uncounted.
 */
void	auth_guard_check(struct auth_guard *, const char *account,
	    const char *peer, const char *hash, const char *password,
	    auth_guard_done_fn done, void *arg);

/*
 * Runs other sign-in work (a Kerberos exchange, a directory bind) on the
 * guard's threads, within its budget: run(arg) on a thread, then
 * done(arg) on the loop. PS_EBUSY, with nothing queued, when
 * max_verifying + max_queued checks and jobs are waiting or running (or
 * the guard is being freed). A job not called back when the guard is
 * freed leaves `arg` to the caller.
 */
ps_err	auth_guard_run(struct auth_guard *, void (*run)(void *),
	    void (*done)(void *), void *arg);

/*
 * Passwords that another system checks (the organisation's directory):
 * a check whose stored hash is AUTH_GUARD_EXTERNAL is answered by `fn`
 * on the guard's threads instead of Argon2id, with the account as
 * counted and the password: PS_OK right, PS_EAUTH wrong (both counted
 * and remembered as any check's), anything else (the other system could
 * not say, a sentence in ps_errmsg()) PS_EUPSTREAM to done(): neither a
 * failure nor remembered, and the verdict AUTH_BUSY (503 with
 * Retry-After). Without a `fn` such a hash is never right. Before the
 * first check; `arg` must outlive the guard.
 */
#define AUTH_GUARD_EXTERNAL	"$external$"

typedef ps_err (*auth_guard_external_fn)(void *arg, const char *account,
	    const char *password);
void	auth_guard_set_external(struct auth_guard *,
	    auth_guard_external_fn fn, void *arg);

/*
 * What a sign-in comes to, from a check's outcome, the same for every
 * sign-in of both roles (Basic, the portal's form, the master's page).
 */
enum auth_verdict {
	AUTH_SIGNED_IN,		/* the password is right */
	AUTH_WRONG,		/* wrong, or no such account: 401 */
	AUTH_WAIT,		/* failures must be waited out: 429 */
	AUTH_BUSY,		/* nothing was checked now: 503 */
};

/*
 * The verdict on `rc` as done() received it for `account` from `peer`
 * (PS_EUPSTREAM, an external check that could not say: AUTH_BUSY);
 * `wait_ms` receives how long AUTH_WAIT must wait (a PS_EBUSY while
 * failures elsewhere began a wait is that wait, not a full queue), 0
 * otherwise. Both answers that make a client wait say so in
 * Retry-After: auth_retry_after_s().
 */
enum auth_verdict auth_guard_verdict(struct auth_guard *,
	    const char *account, const char *peer, ps_err rc,
	    int64_t *wait_ms);

/* A wait as Retry-After's whole seconds: rounded up, at least 1. */
int64_t	auth_retry_after_s(int64_t wait_ms);

/*
 * For metrics: checks not answered yet (queued, running, or waiting for
 * the loop); accounts and addresses past their free failures and not yet
 * forgotten (this one scans the table: for a scrape, not per request).
 */
size_t	auth_guard_pending(const struct auth_guard *);
size_t	auth_guard_throttled(const struct auth_guard *);

/* What a guard has done since it was made (tests, diagnostics). */
struct auth_guard_stats {
	uint64_t	verified;	/* Argon2id runs, dummy ones too */
	uint64_t	remembered;	/* answered from memory */
	uint64_t	joined;		/* answered by a check under way */
	uint64_t	busy;		/* refused: too many checks waiting */
	uint64_t	refused;	/* refused: a wait was not over */
	uint64_t	throttled;	/* counts that began to wait */
};

void	auth_guard_stats(const struct auth_guard *, struct auth_guard_stats *);

/* ---- counts shared between nodes ---- */

#define AUTH_GUARD_NAME_BYTES	16	/* a count's name: a keyed digest */
#define AUTH_GUARD_KEY_BYTES	32	/* the key of those digests */

enum auth_count_kind {
	AUTH_COUNT_ACCOUNT,
	AUTH_COUNT_PEER,
};

/* One failure count, by its name (no account or address in the clear). */
struct auth_guard_count {
	enum auth_count_kind	 kind;
	unsigned char		 name[AUTH_GUARD_NAME_BYTES];
	uint32_t		 failures;	/* 0: cleared by a success */
};

/*
 * The key that names accounts and addresses (copied), the same on every
 * node sharing counts, instead of the guard's own random one. Call it
 * before the first check: counts made under the old key are not found
 * under the new one.
 */
void	auth_guard_share_key(struct auth_guard *,
	    const unsigned char key[AUTH_GUARD_KEY_BYTES]);

/*
 * Calls fn(arg, count) on the loop whenever a check of this guard adds a
 * failure to a count (count->failures: the count now) or clears one that
 * had failures (count->failures 0). NULL fn: no more calls. The count is
 * borrowed for the call.
 */
typedef void (*auth_guard_count_fn)(void *arg,
	    const struct auth_guard_count *);
void	auth_guard_on_count(struct auth_guard *, auth_guard_count_fn fn,
	    void *arg);

/*
 * Takes a count learnt from another node: failures 0 clears the count
 * here; more failures than this guard has for it become its count, the
 * last failure counted as now (the nodes' clocks need not agree, and the
 * wait it brings starts when this node learns of it), and for an address
 * as failures for several accounts (a success then does not forgive
 * them); fewer change nothing. When that begins a wait it logs
 * auth.count_learnt. A count learnt is not reported to the callback.
 */
void	auth_guard_learn(struct auth_guard *, const struct auth_guard_count *);

/* The guard's forget_after_ms, for what keeps counts elsewhere. */
int64_t	auth_guard_forget_after_ms(const struct auth_guard *);

#endif
