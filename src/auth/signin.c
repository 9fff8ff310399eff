/*
 * The sign-in flow of both roles (signin.h): the guard's wait, the read
 * of the account's hash on the store's read lane, the guard's check and
 * verdict, and for a form the session written on the write lane. Each
 * step that resumes on the loop first asks whether the client left, so
 * that no Argon2id or store write is spent on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "guard.h"
#include "signin.h"
#include "store/pool.h"

static const char *
method_name(const struct auth_signin *si)
{
	switch (si->kind) {
	case AUTH_SIGNIN_FORM:
		return "form";
	case AUTH_SIGNIN_SSO:
		return "sso";
	case AUTH_SIGNIN_BASIC:
		break;
	}
	return "basic";
}

/* The address failures are counted under; NULL when none was given. */
static const char *
peer_of(const struct auth_signin *si)
{
	return si->peer[0] ? si->peer : NULL;
}

static void
finish(struct auth_signin *si, enum auth_signin_outcome out)
{
	si->ops->answer(si->arg, si, out);
}

/* True (and the role told) when the client left meanwhile. */
static bool
gone(struct auth_signin *si)
{
	if (si->ops->gone == NULL || !si->ops->gone(si->arg))
		return false;
	finish(si, AUTH_SIGNIN_GONE);
	return true;
}

static void
refused(struct auth_signin *si, const char *why)
{
	str_copy(si->why, why, sizeof(si->why));
	log_info(si->reqid, "auth.refused", "method=%s user=%s reason=%s",
	    method_name(si), log_q(si->name), log_q(si->why));
	finish(si, AUTH_SIGNIN_WRONG);
}

/* Failures must be waited out first: nothing is checked. */
static void
throttled(struct auth_signin *si, int64_t wait_ms)
{
	char why[80];

	/* RFC 9110 10.2.3: whole seconds, rounded up: no early retry. */
	snprintf(why, sizeof(why), "too many failed sign-ins: wait %lld s",
	    (long long)auth_retry_after_s(wait_ms));
	log_info(si->reqid, "auth.refused", "method=%s user=%s reason=%s "
	    "wait_ms=%lld", method_name(si), log_q(si->name), log_q(why),
	    (long long)wait_ms);
	si->wait_ms = wait_ms;
	finish(si, AUTH_SIGNIN_WAIT);
}

static void
store_failed(struct auth_signin *si)
{
	log_err(si->reqid, "auth.store_failed", "method=%s user=%s error=%s",
	    method_name(si), log_q(si->name), log_q(si->err));
	/* Called from a job's done(): the pool says whether it got there. */
	finish(si, store_pool_up(si->pool) ? AUTH_SIGNIN_FAILED :
	    AUTH_SIGNIN_UNREACHABLE);
}

/* A lane's queue is full (the pool said why in ps_errmsg()). */
static void
lane_busy(struct auth_signin *si)
{
	si->busy_guard = false;
	finish(si, AUTH_SIGNIN_BUSY);
}

/* A proxy named an account that is not there (or no longer). */
static void
sso_unknown(struct auth_signin *si)
{
	str_copy(si->why, "no such account", sizeof(si->why));
	log_info(si->reqid, "auth.sso_unknown", "user=%s peer=%s",
	    log_q(si->name), log_q(si->peer));
	finish(si, AUTH_SIGNIN_UNKNOWN);
}

/* ---- 5. a form's session ---- */

static void
session_run(struct store *st, void *arg)
{
	struct auth_signin *si = arg;

	si->rc = si->ops->session_put(st, si->arg, si->key, si->csrf,
	    time_now() + si->ops->session_lifetime);
	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND)
		str_copy(si->err, ps_errmsg(), sizeof(si->err));
}

static void
session_done(void *arg)
{
	struct auth_signin *si = arg;

	if (gone(si))
		return;
	if (si->rc == PS_ENOTFOUND && si->kind == AUTH_SIGNIN_SSO)
		sso_unknown(si);
	else if (si->rc == PS_ENOTFOUND)
		refused(si, "the account can no longer sign in");
	else if (si->rc != PS_OK)
		store_failed(si);
	else
		finish(si, AUTH_SIGNIN_OK);
}

/* ---- 3, 4. the guard ---- */

static void
checked(void *arg, ps_err rc, const char *why)
{
	struct auth_signin *si = arg;
	int64_t wait;

	if (gone(si))
		return;
	switch (auth_guard_verdict(si->guard, si->account, peer_of(si), rc,
	    &wait)) {
	case AUTH_WAIT:
		/* Failures elsewhere began a wait while this one was read. */
		throttled(si, wait);
		return;
	case AUTH_BUSY:
		log_warn(si->reqid, "auth.busy", "method=%s user=%s reason=%s",
		    method_name(si), log_q(si->name), log_q(why));
		si->busy_guard = true;
		finish(si, AUTH_SIGNIN_BUSY);
		return;
	case AUTH_WRONG:
		refused(si, why);
		return;
	case AUTH_SIGNED_IN:
		break;
	}
	if (si->kind == AUTH_SIGNIN_BASIC) {
		finish(si, AUTH_SIGNIN_OK);
		return;
	}
	auth_web_session_new(si->cookie, si->key, si->csrf);
	if (store_pool_write(si->pool, session_run, session_done, si) != PS_OK)
		lane_busy(si);
}

/* The password goes to the guard, with the hash or without (NULL). */
static void
check(struct auth_signin *si)
{
	auth_guard_check(si->guard, si->account, peer_of(si), si->hash,
	    si->password, checked, si);
	/* The guard has its own copy. */
	xfree_secret(si->password, strlen(si->password));
	si->password = NULL;
}

/* ---- 2. the account's hash ---- */

static void
lookup_run(struct store *st, void *arg)
{
	struct auth_signin *si = arg;

	si->rc = si->ops->lookup(st, si->arg, si->name, &si->hash);
	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND && si->rc != PS_EINVAL)
		str_copy(si->err, ps_errmsg(), sizeof(si->err));
}

/* A proxy's account: there or not; no password to check. */
static void
sso_looked_up(struct auth_signin *si)
{
	if (si->rc != PS_OK) {
		sso_unknown(si);
		return;
	}
	log_debug(si->reqid, "auth.accepted", "method=sso user=%s peer=%s",
	    log_q(si->name), log_q(si->peer));
	if (!si->sso_session) {
		finish(si, AUTH_SIGNIN_OK);
		return;
	}
	auth_web_session_new(si->cookie, si->key, si->csrf);
	if (store_pool_write(si->pool, session_run, session_done, si) != PS_OK)
		lane_busy(si);
}

static void
lookup_done(void *arg)
{
	struct auth_signin *si = arg;

	if (gone(si))
		return;
	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND && si->rc != PS_EINVAL) {
		store_failed(si);
		return;
	}
	if ((si->rc != PS_OK || si->kind == AUTH_SIGNIN_SSO) && si->hash) {
		xfree_secret(si->hash, strlen(si->hash));
		si->hash = NULL;
	}
	if (si->kind == AUTH_SIGNIN_SSO) {
		sso_looked_up(si);
		return;
	}
	/* An unknown account costs the guard the same work as a known one. */
	check(si);
}

/* ---- 1. the wait ---- */

/* What every way of signing in starts with. */
static void
signin_init(struct auth_signin *si, const struct auth_signin_ops *ops,
    void *arg, struct store_pool *pool, enum auth_signin_kind kind,
    const char *reqid, const char *peer, char *name)
{
	si->ops = ops;
	si->arg = arg;
	si->pool = pool;
	si->kind = kind;
	si->name = name;
	str_copy(si->reqid, reqid ? reqid : "", sizeof(si->reqid));
	str_copy(si->peer, peer ? peer : "", sizeof(si->peer));
}

void
auth_signin_start(struct auth_signin *si, const struct auth_signin_ops *ops,
    void *arg, struct store_pool *pool, struct auth_guard *guard,
    const char *reqid, const char *peer, enum auth_signin_kind kind,
    char *name, char *password)
{
	int64_t wait;

	signin_init(si, ops, arg, pool, kind, reqid, peer, name);
	si->guard = guard;
	si->password = password;
	if (ops->canonical)
		ops->canonical(arg, name, si->account, sizeof(si->account));
	else
		str_copy(si->account, name, sizeof(si->account));

	if ((wait = auth_guard_wait(guard, si->account, peer_of(si))) > 0) {
		throttled(si, wait);
		return;
	}
	if (strlen(password) > AUTH_MAX_PASSWORD) {
		/* No account has one: not looked up, checked all the same. */
		si->rc = PS_ENOTFOUND;
		check(si);
		return;
	}
	if (store_pool_read(pool, lookup_run, lookup_done, si) != PS_OK)
		lane_busy(si);
}

void
auth_signin_sso_start(struct auth_signin *si,
    const struct auth_signin_ops *ops, void *arg, struct store_pool *pool,
    const char *reqid, const char *peer, bool session, char *name)
{
	signin_init(si, ops, arg, pool, AUTH_SIGNIN_SSO, reqid, peer, name);
	si->sso_session = session;
	str_copy(si->account, name, sizeof(si->account));
	if (store_pool_read(pool, lookup_run, lookup_done, si) != PS_OK)
		lane_busy(si);
}

void
auth_signin_cleanup(struct auth_signin *si)
{
	free(si->name);
	si->name = NULL;
	if (si->password)
		xfree_secret(si->password, strlen(si->password));
	si->password = NULL;
	if (si->hash)
		xfree_secret(si->hash, strlen(si->hash));
	si->hash = NULL;
	explicit_bzero(si->cookie, sizeof(si->cookie));
	explicit_bzero(si->csrf, sizeof(si->csrf));
	explicit_bzero(si->key, sizeof(si->key));
}
