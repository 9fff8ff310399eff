/*
 * One sign-in with a password, the same steps for every way both roles
 * take one (the portal's Basic credentials and login form, the master's
 * Basic credentials and change-photo page), so that they cannot drift
 * apart in what they check or in what an attacker can learn:
 *
 *   1. failures still to be waited out (auth_guard_wait()): refused at
 *      once, before any store or password work;
 *   2. the account's password hash read on the store's read lane, never
 *      on the loop (the role's lookup: which store, which table);
 *   3. the password checked by the sign-in guard (guard.h: Argon2id off
 *      the loop, the same work for an unknown account or one without a
 *      password, or a password longer than AUTH_MAX_PASSWORD, which is
 *      not even looked up);
 *   4. the verdict (auth_guard_verdict());
 *   5. for a form: a new session (auth_web_session_new()) stored on the
 *      write lane (the role's session_put), its cookie for the answer.
 *
 * A request that a single sign-on proxy names an account for (sso.h)
 * takes step 2 only: the account read on the read lane, no password.
 *
 * The refusals are logged here, alike for both roles: auth.refused
 * (`method=basic` or `form`), auth.sso_unknown, auth.busy (the guard's
 * queue was full), auth.store_failed. The role answers (ops->answer):
 * which status, which page, and what a success leads to, are the
 * role's.
 *
 * A struct auth_signin lives in the role's own record of the request, so
 * that whoever frees that record (a stop with requests in flight
 * included) frees the sign-in with it: auth_signin_cleanup(). Loop thread
 * only, except the ops said to run on a lane.
 */
#ifndef PS_AUTH_SIGNIN_H
#define PS_AUTH_SIGNIN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "web.h"

struct auth_guard;
struct store;
struct store_pool;
struct auth_signin;

enum auth_signin_kind {
	AUTH_SIGNIN_BASIC,	/* Basic credentials: no session */
	AUTH_SIGNIN_FORM,	/* a login form: a session and its cookie */
	AUTH_SIGNIN_SSO,	/* named by a proxy (sso.h): no password */
};

enum auth_signin_outcome {
	AUTH_SIGNIN_OK,		/* signed in; a form's session is stored */
	AUTH_SIGNIN_WRONG,	/* wrong password, no such account: 401 */
	AUTH_SIGNIN_WAIT,	/* failures to wait out (wait_ms): 429 */
	AUTH_SIGNIN_BUSY,	/* nothing was checked now: 503 */
	AUTH_SIGNIN_FAILED,	/* the store failed: 500 */
	AUTH_SIGNIN_UNREACHABLE, /* the store could not be reached: 503 */
	AUTH_SIGNIN_GONE,	/* the client left meanwhile: release it */
	AUTH_SIGNIN_UNKNOWN,	/* a proxy named no account: 403 */
};

/* What a role supplies; `arg` is the role's record of the request. */
struct auth_signin_ops {
	/*
	 * Optional, on the loop: the one spelling of `name` that failures
	 * are counted under (into `account`, `n` bytes); without it the
	 * name as typed (compared without case) is.
	 */
	void	(*canonical)(void *arg, const char *name, char *account,
		    size_t n);
	/*
	 * On the read lane: the password hash of the account `name` into
	 * *hash (the flow frees it; NULL when the account has no password),
	 * keeping in `arg` what the role needs after a success. PS_OK;
	 * PS_ENOTFOUND or PS_EINVAL: no such account (checked all the same,
	 * against a dummy hash); anything else: the store failed, with a
	 * sentence in ps_errmsg().
	 */
	ps_err	(*lookup)(struct store *, void *arg, const char *name,
		    char **hash);
	/*
	 * On the write lane, forms only: stores the new session under `key`
	 * with its CSRF token `csrf`, until `expires` (Unix time). PS_OK;
	 * PS_ENOTFOUND: the account can no longer sign in (it went
	 * meanwhile: refused); anything else: the store failed.
	 */
	ps_err	(*session_put)(struct store *, void *arg, const char *key,
		    const char *csrf, int64_t expires);
	int64_t	  session_lifetime;	/* s, forms only */
	/* Optional, on the loop: true when the client left meanwhile. */
	bool	(*gone)(void *arg);
	/*
	 * On the loop, once, with the outcome; it may be called before
	 * auth_signin_start() returns, and may free `arg` (and the sign-in
	 * in it): the flow touches neither afterwards.
	 */
	void	(*answer)(void *arg, struct auth_signin *,
		    enum auth_signin_outcome);
};

struct auth_signin {
	/* For answer(): */
	char		 why[128];	/* WRONG: the reason (never a secret) */
	int64_t		 wait_ms;	/* WAIT: how long */
	bool		 busy_guard;	/* BUSY: the guard's, not a lane */
	char		 cookie[AUTH_TOKEN_HEX + 1];	/* form OK: its value */
	char		 csrf[AUTH_TOKEN_HEX + 1];	/* form OK: session's */
	/* The flow's own. */
	const struct auth_signin_ops *ops;
	void		*arg;
	struct store_pool *pool;
	struct auth_guard *guard;
	enum auth_signin_kind kind;
	bool		 sso_session;	/* SSO: start a session too */
	char		 reqid[64];
	char		 peer[64];
	char		 account[256];	/* as counted by the guard */
	char		*name;		/* as typed */
	char		*password;	/* wiped once the guard has it */
	char		*hash;
	char		 key[65];	/* the session's store key */
	ps_err		 rc;		/* of the last store job */
	char		 err[256];	/* and its reason */
};

/*
 * Signs `name` in with `password` (both taken: freed, the password
 * wiped) for the request `reqid` from `peer` (copied; either may be
 * NULL), reading through `pool` and checking through `guard` (borrowed;
 * both must outlive the sign-in). `si` is the role's (zeroed or cleaned
 * up before); ops->answer() says how it ended.
 */
void	auth_signin_start(struct auth_signin *si,
	    const struct auth_signin_ops *ops, void *arg,
	    struct store_pool *pool, struct auth_guard *guard,
	    const char *reqid, const char *peer, enum auth_signin_kind,
	    char *name, char *password);
/*
 * Signs in `name` (taken), as a single sign-on proxy named it (sso.h:
 * only once auth_sso_request() said AUTH_SSO_USER), for the request
 * `reqid` from `peer`: the account is read on `pool`'s read lane with
 * ops->lookup (its hash is not checked, nor kept); no guard. With
 * `session`, a session is then started as a form's is (ops->session_put
 * on the write lane; si->cookie and si->csrf for the answer): for pages
 * whose forms carry a session's CSRF token. ops->answer() says how it
 * ended: OK, UNKNOWN (no such account: logged as auth.sso_unknown;
 * also when it went before its session was stored), BUSY, FAILED or
 * GONE.
 */
void	auth_signin_sso_start(struct auth_signin *si,
	    const struct auth_signin_ops *ops, void *arg,
	    struct store_pool *pool, const char *reqid, const char *peer,
	    bool session, char *name);
/*
 * Frees what `si` holds and wipes its secrets; for the role's clean-up,
 * after answer() or when the request is dropped (a stop: the pool and
 * the guard then call back no more). A zeroed `si` is fine.
 */
void	auth_signin_cleanup(struct auth_signin *si);

#endif
