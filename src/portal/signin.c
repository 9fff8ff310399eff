/*
 * Signing in to the portal: HTTP Basic over TLS (for scripts) and a form
 * login with a session cookie (for browsers), both through the index of
 * verified credentials first, so a signed-in request costs a hash lookup.
 *
 * The first time a credential is seen, the user (with the password
 * hash) is read on the store's read lane and the password checked by the
 * sign-in guard on its own threads; the request waits meanwhile and the
 * loop goes on. The guard spends the same work on an unknown account as
 * on a known one, remembers credentials found right or wrong, and makes
 * failures wait, per account and per address: a refusal then is 429 with
 * Retry-After, before any password work. Sessions are kept in the store
 * by a digest of the cookie (never the cookie); the form carries a
 * double-submit CSRF token. The cookies, the tokens and the rule that no
 * other site's page may POST for a signed-in user are auth/web.h's, which
 * the master's change-photo page uses too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/auth.h"
#include "auth/guard.h"
#include "auth/web.h"
#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "index.h"
#include "pages.h"
#include "portal_int.h"
#include "store/pool.h"

#define SESSION_LIFETIME	(8 * 3600)

/* The portal's cookies (auth/web.h), as docs/portal.md states them. */
static const struct auth_web portal_web = {
	.session_cookie = "ps_session",
	.session_path = "/",
	.session_max_age = SESSION_LIFETIME,
	.login_cookie = "ps_csrf",
	.login_path = "/login",
};

/* A sign-in on its way through the store and the guard. */
struct signin {
	struct webapp_ctx	*app;
	struct http_req		*r;
	signed_in_fn		 then;		/* NULL: the login form */
	char			 method;	/* 'b' Basic, 's' session, 'f' form */
	char			 digest[65];	/* of the credential */
	char			*name;		/* as typed */
	char			 account[256];	/* canonical, for the guard */
	char			*password;	/* wiped when freed */
	char			*return_url;	/* the form's */
	/* what the read lane found */
	struct store_user	 u;
	struct store_session	 s;
	ps_err			 rc;
	char			 err[256];
};

static struct signin *
signin_new(struct webapp_ctx *app, struct http_req *r, signed_in_fn then,
    char method)
{
	struct signin *si = xcalloc(1, sizeof(*si));

	si->app = app;
	si->r = r;
	si->then = then;
	si->method = method;
	return si;
}

static void
signin_free(struct signin *si)
{
	free(si->name);
	if (si->password)
		xfree_secret(si->password, strlen(si->password));
	free(si->return_url);
	if (si->u.pwhash)
		xfree_secret(si->u.pwhash, strlen(si->u.pwhash));
	explicit_bzero(&si->s, sizeof(si->s));
	free(si);
}

static bool
wants_html(struct http_req *r)
{
	const char *accept = http_req_header(r, "Accept");

	return http_req_method(r) == HTTP_GET && accept &&
	    strstr(accept, "text/html");
}

/* "Retry-After" from a wait in milliseconds, rounded up to seconds. */
static void
retry_after(struct http_req *r, int64_t ms)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", (long long)auth_retry_after_s(ms));
	http_reply_header(r, "Retry-After", s);
}

/* Not signed in: the form for a browser, 401 for anyone else. */
static void
reply_signed_out(struct http_req *r)
{
	if (http_req_header(r, "Authorization") == NULL && wants_html(r)) {
		char *enc = http_encode(http_req_path_raw(r));
		char *loc = xasprintf("/login?ReturnUrl=%s", enc);

		http_reply_header(r, "Location", loc);
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply(r, 302, NULL, NULL, 0);
		free(enc);
		free(loc);
		return;
	}
	http_reply_header(r, "WWW-Authenticate",
	    "Basic realm=\"photosync portal\", charset=\"UTF-8\"");
	http_reply_error(r, 401, "sign in first (Basic credentials or the "
	    "form at /login)");
}

/*
 * Signed in: on to `then`, unless the request would change something
 * and another site's page sent it. A browser sends the Basic credentials
 * it keeps, as it sends cookies, with any site's form that posts here, so
 * Basic is no proof of intent: such a POST is refused whatever signed it
 * in (docs/portal.md, "Cross-site requests"). Checked at the body gate
 * too, so a refused upload's body is never read.
 */
static void
signed_in(struct webapp_ctx *app, struct http_req *r, signed_in_fn then,
    struct viewer *v)
{
	http_req_note(r, "user", v->user.account);
	if (auth_post_cross_site(r, v->basic ? "basic" : "session",
	    v->user.account)) {
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply_error(r, 403, "refused: another site's page sent "
		    "this request, so nothing was changed");
		return;
	}
	then(app, r, v);
}

/* ---- the user and the password ---- */

static void login_form(struct http_req *, const char *return_url,
    const char *error, int status);
static void session_start(struct signin *);
static void password_wait(struct signin *, int64_t wait);

static void
refused(struct signin *si, const char *why)
{
	log_info(http_req_id(si->r), "auth.refused", "method=%s user=%s "
	    "reason=%s", si->method == 'b' ? "basic" : "form",
	    log_q(si->name), log_q(why));
	if (si->method == 'f')
		login_form(si->r, si->return_url, "The account or the password "
		    "is wrong.", 401);
	else
		reply_signed_out(si->r);
}

static void
password_checked(void *arg, ps_err rc, const char *why)
{
	struct signin *si = arg;
	struct viewer v = { 0 };
	int64_t wait;

	switch (auth_guard_verdict(si->app->srv->guard, si->account,
	    http_req_peer(si->r), rc, &wait)) {
	case AUTH_WAIT:
		/* Failures elsewhere began a wait while this one read. */
		password_wait(si, wait);
		return;
	case AUTH_BUSY:
		log_warn(http_req_id(si->r), "auth.busy", "user=%s reason=%s",
		    log_q(si->name), log_q(why));
		if (si->method == 'f') {
			retry_after(si->r, 1000);
			login_form(si->r, si->return_url, "Too many people are "
			    "signing in right now. Please try again in a "
			    "moment.", 503);
		} else
			reply_busy(si->r, "sign-in checks");
		signin_free(si);
		return;
	case AUTH_WRONG:
		refused(si, why);
		signin_free(si);
		return;
	case AUTH_SIGNED_IN:
		break;
	}
	xfree_secret(si->u.pwhash, strlen(si->u.pwhash));
	si->u.pwhash = NULL;
	if (si->method == 'f') {
		session_start(si);
		return;
	}
	index_cred_put(si->app->srv->index, si->app->w.id, 'b', si->digest,
	    &si->u, NULL);
	v.user = si->u;
	v.basic = true;
	signed_in(si->app, si->r, si->then, &v);
	signin_free(si);
}

static void
user_run(struct store *st, void *arg)
{
	struct signin *si = arg;
	char account[ACCOUNT_MAX];
	bool is_email;

	if ((si->rc = account_parse(si->name, account, &is_email)) == PS_OK)
		si->rc = is_email ? store_user_get_by_email(st, account,
		    &si->u) : store_user_get(st, account, &si->u);
	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND && si->rc != PS_EINVAL)
		str_copy(si->err, ps_errmsg(), sizeof(si->err));
}

static void
user_done(void *arg)
{
	struct signin *si = arg;
	struct portal_srv *srv = si->app->srv;

	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND &&
	    si->rc != PS_EINVAL) {
		log_err(http_req_id(si->r), "auth.store_failed", "user=%s "
		    "error=%s", log_q(si->name), log_q(si->err));
		http_reply_error(si->r, 500, "the store failed");
		signin_free(si);
		return;
	}
	/* An unknown account costs the guard the same work (hash NULL). */
	auth_guard_check(srv->guard, si->account, http_req_peer(si->r),
	    si->rc == PS_OK ? si->u.pwhash : NULL, si->password,
	    password_checked, si);
}

/*
 * Failures must be waited out (`wait` ms): 429 with Retry-After; takes
 * `si`.
 */
static void
password_wait(struct signin *si, int64_t wait)
{
	log_info(http_req_id(si->r), "auth.refused", "method=%s user=%s "
	    "reason=throttled wait_ms=%lld", si->method == 'b' ? "basic" :
	    "form", log_q(si->name), (long long)wait);
	retry_after(si->r, wait);
	if (si->method == 'f')
		login_form(si->r, si->return_url, "Too many failed sign-ins. "
		    "Please wait a little and try again.", 429);
	else
		http_reply_error(si->r, 429, "too many failed sign-ins; try "
		    "again after Retry-After seconds");
	signin_free(si);
}

/*
 * Checks `si`'s password, unless failures must be waited out first;
 * takes `si`.
 */
static void
password_check(struct signin *si)
{
	char account[ACCOUNT_MAX];
	bool is_email;
	int64_t wait;
	ps_err rc;

	/* One count per account, however its name was typed. */
	if (account_parse(si->name, account, &is_email) == PS_OK)
		str_copy(si->account, account, sizeof(si->account));
	else
		str_copy(si->account, si->name, sizeof(si->account));
	if ((wait = auth_guard_wait(si->app->srv->guard, si->account,
	    http_req_peer(si->r))) > 0) {
		password_wait(si, wait);
		return;
	}
	http_req_defer(si->r);
	if ((rc = store_pool_read(si->app->srv->store, user_run, user_done,
	    si)) != PS_OK) {
		reply_busy(si->r, "store reads");
		signin_free(si);
	}
}

/* ---- sessions ---- */

static void
session_run(struct store *st, void *arg)
{
	struct signin *si = arg;

	si->rc = store_session_get(st, si->digest, &si->s);
	if (si->rc == PS_OK && si->s.webapp != si->app->w.id)
		si->rc = PS_ENOTFOUND;
	if (si->rc == PS_OK)
		si->rc = store_user_get(st, si->s.account, &si->u);
	if (si->u.pwhash) {
		xfree_secret(si->u.pwhash, strlen(si->u.pwhash));
		si->u.pwhash = NULL;
	}
	if (si->rc != PS_OK && si->rc != PS_ENOTFOUND)
		str_copy(si->err, ps_errmsg(), sizeof(si->err));
}

static void
session_done(void *arg)
{
	struct signin *si = arg;
	struct viewer v = { 0 };

	if (si->rc == PS_OK) {
		index_cred_put(si->app->srv->index, si->app->w.id, 's',
		    si->digest, &si->u, si->s.csrf);
		v.user = si->u;
		str_copy(v.csrf, si->s.csrf, sizeof(v.csrf));
		signed_in(si->app, si->r, si->then, &v);
	} else if (si->rc == PS_ENOTFOUND) {
		reply_signed_out(si->r);
	} else {
		log_err(http_req_id(si->r), "auth.store_failed", "method="
		    "session error=%s", log_q(si->err));
		http_reply_error(si->r, 500, "the store failed");
	}
	signin_free(si);
}

void
signin_request(struct webapp_ctx *app, struct http_req *r,
    signed_in_fn then)
{
	struct portal_index *x = app->srv->index;
	const char *hdr = http_req_header(r, "Authorization");
	struct signin *si;
	struct viewer v = { 0 };
	char *pw = NULL, *user = NULL;

	if (hdr && str_case_prefix(hdr, "Basic ")) {
		char fp[33];

		auth_fingerprint(hdr, fp);
		if (index_cred_get(x, app->w.id, 'b', fp, &v.user, NULL)) {
			v.basic = true;
			signed_in(app, r, then, &v);
			return;
		}
		if (auth_basic_parse(hdr, &user, &pw) != PS_OK) {
			log_info(http_req_id(r), "auth.refused", "method=basic "
			    "reason=%s", log_q(ps_errmsg()));
			reply_signed_out(r);
			return;
		}
		si = signin_new(app, r, then, 'b');
		str_copy(si->digest, fp, sizeof(si->digest));
		si->name = user;
		si->password = pw;
		password_check(si);
		return;
	}
	si = signin_new(app, r, then, 's');
	if (hdr || !auth_web_session_key(&portal_web, r, si->digest)) {
		signin_free(si);
		reply_signed_out(r);
		return;
	}
	if (index_cred_get(x, app->w.id, 's', si->digest, &v.user, v.csrf)) {
		signin_free(si);
		signed_in(app, r, then, &v);
		return;
	}
	http_req_defer(r);
	if (store_pool_read(app->srv->store, session_run, session_done, si) !=
	    PS_OK) {
		reply_busy(r, "store reads");
		signin_free(si);
	}
}

/* ---- the form ---- */

static void
login_form(struct http_req *r, const char *return_url, const char *error,
    int status)
{
	char csrf[AUTH_TOKEN_HEX + 1];
	struct buf b;

	auth_web_login_token(&portal_web, r, csrf);
	buf_init(&b, 1 << 20);
	page_login(&b, csrf, url_return_path_ok(return_url) ? return_url :
	    "/my", error);
	reply_html(r, status, &b);
	buf_cleanup(&b);
}

static void
session_stored(void *arg)
{
	struct signin *si = arg;

	if (si->rc != PS_OK) {
		log_err(http_req_id(si->r), "auth.store_failed", "method=form "
		    "error=%s", log_q(si->err));
		login_form(si->r, si->return_url, "Signing in failed on the "
		    "server's side. Please try again later.", 500);
		signin_free(si);
		return;
	}
	index_cred_put(si->app->srv->index, si->app->w.id, 's', si->digest,
	    &si->u, si->s.csrf);
	log_info(http_req_id(si->r), "auth.session_started", "user=%s",
	    log_q(si->u.account));
	http_req_note(si->r, "user", si->u.account);
	/* The cookie itself is in si->password's place: see session_start. */
	auth_web_session_set(&portal_web, si->r, si->password);
	http_reply_header(si->r, "Location", url_return_path_ok(
	    si->return_url) ? si->return_url : "/my");
	http_reply(si->r, 303, NULL, NULL, 0);
	signin_free(si);
}

static void
session_put_run(struct store *st, void *arg)
{
	struct signin *si = arg;

	if ((si->rc = store_session_put(st, si->digest, &si->s)) != PS_OK)
		str_copy(si->err, ps_errmsg(), sizeof(si->err));
}

/* The password was right: a new session, stored before it is used. */
static void
session_start(struct signin *si)
{
	char cookie[AUTH_TOKEN_HEX + 1];

	auth_web_session_new(cookie, si->digest, si->s.csrf);
	/* The password is no longer needed: the cookie takes its place. */
	xfree_secret(si->password, strlen(si->password));
	si->password = xstrdup(cookie);
	explicit_bzero(cookie, sizeof(cookie));
	str_copy(si->s.account, si->u.account, sizeof(si->s.account));
	si->s.webapp = si->app->w.id;
	si->s.expires = time_now() + SESSION_LIFETIME;
	if (store_pool_write(si->app->srv->store, session_put_run,
	    session_stored, si) != PS_OK) {
		retry_after(si->r, 1000);
		login_form(si->r, si->return_url, "The server is busy. Please "
		    "try again in a moment.", 503);
		signin_free(si);
	}
}

void
signin_login(struct webapp_ctx *app, struct http_req *r)
{
	const char *body = http_req_body(r, NULL);
	char *account = NULL, *pw = NULL, *csrf = NULL, *ret = NULL;
	struct signin *si;

	if (http_req_method(r) != HTTP_POST) {
		login_form(r, http_req_query_ci(r, "ReturnUrl"), NULL, 200);
		return;
	}
	account = http_form_value(body, "account");
	pw = http_form_value(body, "password");
	csrf = http_form_value(body, "csrf");
	ret = http_form_value(body, "ReturnUrl");
	/* Double-submit: the form's token must match its cookie. */
	if (!auth_web_login_token_ok(&portal_web, r, csrf)) {
		login_form(r, ret, "The form expired. Please sign in again.",
		    400);
		goto out;
	}
	if (account == NULL || pw == NULL || account[0] == '\0' ||
	    pw[0] == '\0') {
		login_form(r, ret, "Enter your account and your password.",
		    400);
		goto out;
	}
	si = signin_new(app, r, NULL, 'f');
	si->name = account;
	si->password = pw;
	si->return_url = ret;
	account = pw = ret = NULL;
	password_check(si);
out:
	free(account);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(csrf);
	free(ret);
}

/* ---- signing out ---- */

struct signout {
	struct http_req	*r;
	char		 key[65];
	ps_err		 rc;
};

static void
signout_run(struct store *st, void *arg)
{
	struct signout *so = arg;

	so->rc = store_session_remove(st, so->key);
}

static void
signout_done(void *arg)
{
	struct signout *so = arg;

	if (so->rc != PS_OK && so->rc != PS_ENOTFOUND)
		log_err(http_req_id(so->r), "auth.store_failed", "method="
		    "logout error=%s", log_q(ps_strerror(so->rc)));
	auth_web_session_clear(&portal_web, so->r);
	http_reply_header(so->r, "Location", "/login");
	http_reply(so->r, 303, NULL, NULL, 0);
	free(so);
}

void
signin_logout(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	char *csrf = http_form_value(http_req_body(r, NULL), "csrf");
	struct signout *so;

	if (http_req_method(r) != HTTP_POST || v->basic ||
	    !auth_token_eq(v->csrf, csrf, csrf ? strlen(csrf) : 0)) {
		free(csrf);
		reply_error_page(r, v, 400, "Sign out with the button on the "
		    "page.");
		return;
	}
	free(csrf);
	so = xcalloc(1, sizeof(*so));
	so->r = r;
	if (!auth_web_session_key(&portal_web, r, so->key)) {
		signout_done(so);
		return;
	}
	index_cred_forget(app->srv->index, app->w.id, 's', so->key);
	http_req_defer(r);
	if (store_pool_write(app->srv->store, signout_run, signout_done, so) !=
	    PS_OK) {
		free(so);
		reply_busy(r, "store writes");
	}
}
