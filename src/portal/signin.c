/*
 * Signing in to the portal: HTTP Basic over TLS (for scripts) and a form
 * login with a session cookie (for browsers), both through the verified
 * credentials first (auth/creds.h, kept by the index), so a signed-in
 * request costs one digest of its credential and one lookup.
 *
 * The first time a credential is seen, the sign-in is auth/signin.h's,
 * the same steps as the master's: failures to wait out (429 with
 * Retry-After, before any password work), the user with its password
 * hash read on the store's read lane (what is here: which table, and
 * that an account may be typed as `contoso\test1`, its claims form or
 * its e-mail address), the password checked by the sign-in guard on its
 * own threads with the same work for an unknown account, and for the
 * form a new session stored by a digest of its cookie (never the
 * cookie). The form carries a double-submit CSRF token. The cookies, the
 * tokens and the rule that no other site's page may POST for a signed-in
 * user are auth/web.h's, which the master's change-photo page uses too.
 * What is here besides: the answers and pages of the portal.
 *
 * Behind a single sign-on proxy (auth/sso.h, the web application's
 * sso_header and sso_proxies), a request from a proxy that names an
 * account in the identity header is signed in as that account, looked
 * up on the read lane (no password, no session), then remembered in the
 * verified credentials like a Basic header, so ended when the account
 * changes or goes; from any other peer the header is ignored.
 *
 * With a keytab (the web application's keytab, kerberos_service and
 * kerberos_realms), browsers of a Kerberos realm sign in without a
 * password (auth/negotiate.h, HTTP Negotiate): a request that needs a
 * signed-in user and has no credentials gets 401 with `WWW-Authenticate:
 * Negotiate` (beside Basic for scripts) whose body, for a browser, is the
 * sign-in form, so a browser without a ticket shows the form. The token
 * a browser then sends is accepted on the sign-in guard's threads; its
 * principal is the account DOMAIN\user (the realm map, else the realm's
 * first label), looked up as a proxy's; for a browser a session is
 * started as for the form (its cookie on the answer), a script's request
 * is signed in alone (as with Basic); the page is served at once, with
 * the token of mutual authentication in WWW-Authenticate.
 * Every refusal is 401 again and an auth.refused method=negotiate.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/auth.h"
#include "auth/creds.h"
#include "auth/guard.h"
#include "auth/negotiate.h"
#include "auth/signin.h"
#include "auth/sso.h"
#include "auth/web.h"
#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "directory/passwords.h"
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

/* A request being signed in: by Basic, its session, or the form. */
struct signin {
	struct auth_signin	 flow;		/* Basic and the form */
	struct webapp_ctx	*app;
	struct http_req		*r;
	signed_in_fn		 then;		/* NULL: the login form */
	char			 cred[AUTH_CREDS_KEY_MAX];	/* its key */
	uint64_t		 stamp;		/* of the credentials */
	char			 session[65];	/* a session's store key */
	char			*return_url;	/* the form's */
	/* what the read lane found */
	struct store_user	 u;
	struct store_session	 s;
	ps_err			 rc;
	char			 err[256];
};

static struct signin *
signin_new(struct webapp_ctx *app, struct http_req *r, signed_in_fn then)
{
	struct signin *si = xcalloc(1, sizeof(*si));

	si->app = app;
	si->r = r;
	si->then = then;
	si->stamp = auth_creds_stamp(index_creds(app->srv->index));
	return si;
}

static void
signin_free(struct signin *si)
{
	auth_signin_cleanup(&si->flow);
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

static void login_form(struct http_req *, const char *return_url,
    const char *error, int status);

/*
 * Not signed in: the form for a browser, 401 for anyone else. With
 * Kerberos on, a browser gets 401 too, so that it may answer Negotiate
 * with its ticket, and the form as its body, shown when it has none.
 */
static void
reply_signed_out(struct webapp_ctx *app, struct http_req *r)
{
	if (app->kerberos && wants_html(r)) {
		http_reply_header(r, "WWW-Authenticate", "Negotiate");
		login_form(r, http_req_path_raw(r), NULL, 401);
		return;
	}
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
	if (app->kerberos)
		http_reply_header(r, "WWW-Authenticate", "Negotiate");
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
    const struct viewer *v)
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

/* The credential of `si` verified for its user, kept for the next time. */
static void
cred_keep(struct signin *si, const char *csrf)
{
	struct index_cred ic = { 0 };

	ic.webapp = si->app->w.id;
	ic.user = si->u;
	ic.user.pwhash = NULL;
	str_copy(ic.csrf, csrf, sizeof(ic.csrf));
	auth_creds_put(index_creds(si->app->srv->index), si->cred,
	    si->u.account, si->stamp, &ic);
	explicit_bzero(ic.csrf, sizeof(ic.csrf));
}

/* ---- the password (auth/signin.h) ---- */

/* One count per account, however its name was typed. */
static void
signin_canonical(void *arg, const char *name, char *account, size_t n)
{
	char parsed[ACCOUNT_MAX];
	bool is_email;

	(void)arg;
	str_copy(account, account_parse(name, parsed, &is_email) == PS_OK ?
	    parsed : name, n);
}

/*
 * A user from the directory whose passwords the directory checks
 * (directory/passwords.h): the hash the guard hands to it instead.
 */
static ps_err
directory_password(struct portal_srv *srv, struct store *st, char **pwhash)
{
	bool on = false;
	ps_err rc;

	if (srv->dir_passwords == NULL)
		return PS_OK;
	if ((rc = dir_passwords_refresh(srv->dir_passwords, st, &on)) !=
	    PS_OK)
		return rc;
	if (on) {
		if (*pwhash)
			xfree_secret(*pwhash, strlen(*pwhash));
		*pwhash = xstrdup(AUTH_GUARD_EXTERNAL);
	}
	return PS_OK;
}

static ps_err
signin_lookup(struct store *st, void *arg, const char *name, char **hash)
{
	struct signin *si = arg;
	char account[ACCOUNT_MAX];
	bool is_email;
	ps_err rc;

	if ((rc = account_parse(name, account, &is_email)) != PS_OK)
		return rc;
	rc = is_email ? store_user_get_by_email(st, account, &si->u) :
	    store_user_get(st, account, &si->u);
	if (rc == PS_OK && si->u.directory_id[0] != '\0' &&
	    (rc = directory_password(si->app->srv, st, &si->u.pwhash)) !=
	    PS_OK)
		return rc;
	if (rc == PS_OK) {
		*hash = si->u.pwhash;
		si->u.pwhash = NULL;
	}
	return rc;
}

static ps_err
signin_session_put(struct store *st, void *arg, const char *key,
    const char *csrf, int64_t expires)
{
	struct signin *si = arg;

	str_copy(si->s.account, si->u.account, sizeof(si->s.account));
	si->s.webapp = si->app->w.id;
	str_copy(si->s.csrf, csrf, sizeof(si->s.csrf));
	si->s.expires = expires;
	return store_session_put(st, key, &si->s);
}

/* A Kerberos principal's account: DOMAIN\user by the realm map. */
static ps_err
signin_principal(void *arg, const char *principal, char *name, size_t n)
{
	struct signin *si = arg;
	const char *map = si->app->w.kerberos_realms;

	return auth_principal_account(principal, map, map[0] == '\0', name,
	    n);
}

static bool
signin_gone(void *arg)
{
	struct signin *si = arg;

	return http_req_gone(si->r);
}

/* A form's session is stored: its cookie, and on to the return URL. */
static void
session_started(struct signin *si)
{
	auth_creds_session_key(si->flow.key, si->cred);
	cred_keep(si, si->flow.csrf);
	log_info(http_req_id(si->r), "auth.session_started", "user=%s",
	    log_q(si->u.account));
	http_req_note(si->r, "user", si->u.account);
	auth_web_session_set(&portal_web, si->r, si->flow.cookie);
	http_reply_header(si->r, "Location", url_return_path_ok(
	    si->return_url) ? si->return_url : "/my");
	http_reply(si->r, 303, NULL, NULL, 0);
}

/*
 * How a Kerberos sign-in ended: signed in, the session's cookie and the
 * token of mutual authentication go with the page asked for; refused,
 * 401 again (the form for a browser).
 */
static void
negotiate_answer(struct signin *si, enum auth_signin_outcome out)
{
	struct http_req *r = si->r;
	struct viewer v = { 0 };
	char *hdr;

	/*
	 * Only signin_request() starts a Kerberos sign-in, and its callers
	 * always name the page to go on to; the form's sign-in (no `then`)
	 * is signin_login()'s, by password alone.
	 */
	assert(si->then != NULL);
	switch (out) {
	case AUTH_SIGNIN_OK:
		if (si->flow.neg.reply) {
			hdr = xasprintf("Negotiate %s", si->flow.neg.reply);
			http_reply_header(r, "WWW-Authenticate", hdr);
			free(hdr);
		}
		v.user = si->u;
		if (si->flow.cookie[0] == '\0') {
			/* A script: this request alone, as with Basic. */
			v.basic = true;
			signed_in(si->app, r, si->then, &v);
			break;
		}
		auth_creds_session_key(si->flow.key, si->cred);
		cred_keep(si, si->flow.csrf);
		log_info(http_req_id(r), "auth.session_started", "user=%s "
		    "method=negotiate", log_q(si->u.account));
		auth_web_session_set(&portal_web, r, si->flow.cookie);
		str_copy(v.csrf, si->flow.csrf, sizeof(v.csrf));
		signed_in(si->app, r, si->then, &v);
		break;
	case AUTH_SIGNIN_WRONG:
	case AUTH_SIGNIN_UNKNOWN:
		reply_signed_out(si->app, r);
		break;
	case AUTH_SIGNIN_BUSY:
		reply_busy(r, si->flow.busy_guard ? "sign-in checks" :
		    "store reads");
		break;
	case AUTH_SIGNIN_WAIT:
		/* (Kerberos has no failures to wait out; as for Basic.) */
		auth_web_retry_after(r, si->flow.wait_ms);
		http_reply_error(r, 429, "too many failed sign-ins; try again "
		    "after Retry-After seconds");
		break;
	case AUTH_SIGNIN_FAILED:
		http_reply_error(r, 500, "the store failed");
		break;
	case AUTH_SIGNIN_UNREACHABLE:
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		http_reply_error(r, 503, "the store cannot be reached: try "
		    "again in a moment");
		break;
	case AUTH_SIGNIN_GONE:
		http_reply(r, 503, NULL, NULL, 0);
		break;
	}
}

static void
signin_answer(void *arg, struct auth_signin *flow,
    enum auth_signin_outcome out)
{
	struct signin *si = arg;
	struct http_req *r = si->r;
	bool form = si->then == NULL;
	struct viewer v = { 0 };

	if (flow->kind == AUTH_SIGNIN_NEGOTIATE) {
		negotiate_answer(si, out);
		signin_free(si);
		return;
	}
	switch (out) {
	case AUTH_SIGNIN_OK:
		if (form) {
			session_started(si);
			break;
		}
		cred_keep(si, "");
		v.user = si->u;
		v.basic = true;
		signed_in(si->app, r, si->then, &v);
		break;
	case AUTH_SIGNIN_WRONG:
		if (form)
			login_form(r, si->return_url, "The account or the "
			    "password is wrong.", 401);
		else
			reply_signed_out(si->app, r);
		break;
	case AUTH_SIGNIN_WAIT:
		auth_web_retry_after(r, flow->wait_ms);
		if (form)
			login_form(r, si->return_url, "Too many failed "
			    "sign-ins. Please wait a little and try again.",
			    429);
		else
			http_reply_error(r, 429, "too many failed sign-ins; "
			    "try again after Retry-After seconds");
		break;
	case AUTH_SIGNIN_BUSY:
		if (!form) {
			reply_busy(r, flow->busy_guard ? "sign-in checks" :
			    "store reads");
			break;
		}
		auth_web_retry_after(r, 1000);
		login_form(r, si->return_url, flow->busy_guard ? "Too many "
		    "people are signing in right now. Please try again in a "
		    "moment." : "The server is busy. Please try again in a "
		    "moment.", 503);
		break;
	case AUTH_SIGNIN_FAILED:
		if (form)
			login_form(r, si->return_url, "Signing in failed on "
			    "the server's side. Please try again later.", 500);
		else
			http_reply_error(r, 500, "the store failed");
		break;
	case AUTH_SIGNIN_UNREACHABLE:
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		if (form)
			login_form(r, si->return_url, "The server cannot "
			    "reach its store right now. Please try again in a "
			    "moment.", 503);
		else
			http_reply_error(r, 503, "the store cannot be "
			    "reached: try again in a moment");
		break;
	case AUTH_SIGNIN_GONE:
		http_reply(r, 503, NULL, NULL, 0);
		break;
	case AUTH_SIGNIN_UNKNOWN:
		reply_error_page(r, &v, 403, "The single sign-on service "
		    "signed you in with an account that this portal does not "
		    "have. Ask your administrator to add it.");
		break;
	}
	signin_free(si);
}

static const struct auth_signin_ops signin_ops = {
	.canonical = signin_canonical,
	.lookup = signin_lookup,
	.session_put = signin_session_put,
	.session_lifetime = SESSION_LIFETIME,
	.principal = signin_principal,
	.gone = signin_gone,
	.answer = signin_answer,
};

/* Takes `si`, `name` and `password`. */
static void
signin_start(struct signin *si, enum auth_signin_kind kind, char *name,
    char *password)
{
	struct portal_srv *srv = si->app->srv;

	http_req_defer(si->r);
	auth_signin_start(&si->flow, &signin_ops, si, srv->store, srv->guard,
	    http_req_id(si->r), http_req_peer(si->r), kind, name, password);
}

/* ---- sessions ---- */

static void
session_run(struct store *st, void *arg)
{
	struct signin *si = arg;

	si->rc = store_session_get(st, si->session, &si->s);
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
		cred_keep(si, si->s.csrf);
		v.user = si->u;
		str_copy(v.csrf, si->s.csrf, sizeof(v.csrf));
		signed_in(si->app, si->r, si->then, &v);
	} else if (si->rc == PS_ENOTFOUND) {
		reply_signed_out(si->app, si->r);
	} else {
		log_err(http_req_id(si->r), "auth.store_failed", "method="
		    "session error=%s", log_q(si->err));
		if (store_pool_up(si->app->srv->store)) {
			http_reply_error(si->r, 500, "the store failed");
		} else {
			http_reply_header(si->r, "Retry-After",
			    STORE_DOWN_RETRY_S);
			http_reply_error(si->r, 503, "the store cannot be "
			    "reached: try again in a moment");
		}
	}
	signin_free(si);
}

/* The cached credential of `key` for `app`, as a viewer, if any. */
static bool
cred_find(struct webapp_ctx *app, const char *key, struct viewer *v)
{
	const struct index_cred *ic;

	ic = auth_creds_get(index_creds(app->srv->index), key);
	/* A session belongs to one web application; Basic's key says it. */
	if (ic == NULL || ic->webapp != app->w.id)
		return false;
	v->user = ic->user;
	str_copy(v->csrf, ic->csrf, sizeof(v->csrf));
	return true;
}

void
signin_request(struct webapp_ctx *app, struct http_req *r,
    signed_in_fn then)
{
	const char *hdr = http_req_header(r, "Authorization");
	char key[AUTH_CREDS_KEY_MAX], session[65];
	struct signin *si;
	struct viewer v = { 0 };
	char *pw = NULL, *user = NULL;
	const char *named;

	/* A proxy's identity header first: it is how its users come. */
	switch (auth_sso_request(app->sso, r, &named)) {
	case AUTH_SSO_BAD:
		http_reply_error(r, 400, "refused: the single sign-on proxy "
		    "sent its identity header more than once, or empty");
		return;
	case AUTH_SSO_USER:
		auth_creds_sso_key(named, app->w.id, key);
		if (cred_find(app, key, &v)) {
			v.basic = true;
			signed_in(app, r, then, &v);
			return;
		}
		si = signin_new(app, r, then);
		str_copy(si->cred, key, sizeof(si->cred));
		http_req_defer(r);
		auth_signin_sso_start(&si->flow, &signin_ops, si,
		    app->srv->store, http_req_id(r), http_req_peer(r), false,
		    xstrdup(named));
		return;
	case AUTH_SSO_NONE:
	case AUTH_SSO_IGNORED:
		break;
	}
	if (hdr && str_case_prefix(hdr, "Basic ")) {
		auth_creds_basic_key(hdr, app->w.id, key);
		if (cred_find(app, key, &v)) {
			v.basic = true;
			signed_in(app, r, then, &v);
			return;
		}
		if (auth_basic_parse(hdr, &user, &pw) != PS_OK) {
			log_info(http_req_id(r), "auth.refused", "method=basic "
			    "reason=%s", log_q(ps_errmsg()));
			reply_signed_out(app, r);
			return;
		}
		si = signin_new(app, r, then);
		str_copy(si->cred, key, sizeof(si->cred));
		signin_start(si, AUTH_SIGNIN_BASIC, user, pw);
		return;
	}
	if (hdr && app->kerberos && str_case_prefix(hdr, "Negotiate")) {
		/*
		 * A browser's session is its credential from now on; a
		 * script (curl --negotiate) sends a token with every
		 * request, and gets no session for each.
		 */
		si = signin_new(app, r, then);
		http_req_defer(r);
		auth_signin_negotiate_start(&si->flow, &signin_ops, si,
		    app->srv->store, app->srv->guard, app->kerberos,
		    http_req_id(r), http_req_peer(r), wants_html(r),
		    xstrdup(hdr));
		return;
	}
	if (hdr || !auth_web_session_key(&portal_web, r, session)) {
		reply_signed_out(app, r);
		return;
	}
	auth_creds_session_key(session, key);
	if (cred_find(app, key, &v)) {
		signed_in(app, r, then, &v);
		return;
	}
	si = signin_new(app, r, then);
	str_copy(si->cred, key, sizeof(si->cred));
	str_copy(si->session, session, sizeof(si->session));
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
	si = signin_new(app, r, NULL);
	si->return_url = ret;
	ret = NULL;
	signin_start(si, AUTH_SIGNIN_FORM, account, pw);
	account = pw = NULL;
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
	char key[AUTH_CREDS_KEY_MAX];
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
	auth_creds_session_key(so->key, key);
	auth_creds_forget(index_creds(app->srv->index), key);
	http_req_defer(r);
	if (store_pool_write(app->srv->store, signout_run, signout_done, so) !=
	    PS_OK) {
		free(so);
		reply_busy(r, "store writes");
	}
}

struct auth_negotiate *
signin_kerberos_load(const struct store_webapp *w)
{
	struct auth_negotiate *an = NULL;

	if (w->keytab[0] == '\0')
		return NULL;
	if (auth_negotiate_new(w->keytab, w->kerberos_service, &an) !=
	    PS_OK) {
		log_err(NULL, "webapp.kerberos_refused", "url=%s error=%s",
		    log_q(w->url), log_q(ps_errmsg()));
		return NULL;
	}
	return an;
}
