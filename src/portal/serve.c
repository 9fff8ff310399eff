/*
 * photosync portal serve: the portal's HTTP surface, one listener per web
 * application.
 *
 *   GET  /_layouts/15/userphoto.aspx?size=S|M|L&accountname=|username=|url=
 *   GET  /User%20Photos/Profile%20Pictures/<account>_{S,M,L}Thumb.jpg
 *   GET  /_layouts/15/metadata/json/1		S2S metadata (no sign-in)
 *   GET  /my, /my/person.aspx?accountname=, /people
 *   GET  /avatar/<hash>	Libravatar/Gravatar scheme (avatar.c)
 *   GET|POST /login, POST /logout
 *
 * Every page and photo needs a signed-in user: Basic over TLS (verified
 * once per credential and cache lifetime), or a form login with a session
 * cookie. A request for one's own photo may start a sync (sync.c) and
 * waits for it at most SYNC_WAIT_MS. Settings changed by admin commands
 * are picked up on the next request (the store's data version moves).
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/auth.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "metrics/metrics.h"
#include "pages.h"
#include "pki/pki.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "work/work.h"
#include "xfer/xfer.h"

#define HTML_TYPE		"text/html; charset=utf-8"
#define SESSION_COOKIE		"ps_session"
#define CSRF_COOKIE		"ps_csrf"
#define SESSION_LIFETIME	(8 * 3600)
#define PHOTO_MAX_AGE		300
#define PLACEHOLDER_MAX_AGE	60

static const char *const size_names = "SML";

/* The signed-in user of a request. */
struct viewer {
	struct store_user	user;
	char			csrf[65];	/* session's, or "" (Basic) */
	bool			basic;
};

/* ---- settings ---- */

static ps_err placeholder_make(struct webapp_ctx *);
static void placeholder_free(struct placeholder *);

/*
 * Picks up what admin commands changed: settings apply to the next
 * request; a new autodiscover domain, CA file or issuer list drops what
 * was cached from the old one; new thumbnail sizes get new placeholders.
 */
void
portal_refresh(struct portal_srv *srv)
{
	int64_t v = store_data_version(srv->ps->store);
	uint64_t sig;
	bool issuers_changed;
	size_t i;

	if (v == srv->version)
		return;
	/* Another process changed the store: drop what was derived. */
	index_clear(srv->index);
	sig = issuers_signature(srv->ps->store);
	issuers_changed = sig != srv->issuers_sig;
	srv->issuers_sig = sig;
	for (i = 0; i < srv->n_apps; i++) {
		struct webapp_ctx *app = &srv->apps[i];
		struct store_webapp w;

		if (store_webapp_get(srv->ps->store, app->w.url, &w) != PS_OK)
			continue;
		/* What was learnt from the old master is no longer true. */
		if (strcmp(w.autodiscover_domain, app->w.autodiscover_domain) ||
		    strcmp(w.ca_file, app->w.ca_file) ||
		    w.allow_oauth_http != app->w.allow_oauth_http ||
		    issuers_changed)
			sync_forget(srv, w.id);
		if ((w.size_s != app->w.size_s || w.size_m != app->w.size_m ||
		    w.size_l != app->w.size_l) && app->http) {
			log_info(NULL, "webapp.sizes_changed", "url=%s note=%s",
			    log_q(w.url), log_q("new sizes apply to photos "
			    "fetched or uploaded from now on"));
			app->w = w;
			placeholder_free(&app->placeholder);
			if (placeholder_make(app) != PS_OK)
				log_err(NULL, "webapp.placeholder_failed",
				    "url=%s error=%s", log_q(w.url),
				    log_q(ps_errmsg()));
		}
		app->w = w;
	}
	srv->version = v;
}

/* ---- placeholders ---- */

static ps_err
placeholder_make(struct webapp_ctx *app)
{
	const int sides[3] = { app->w.size_s, app->w.size_m, app->w.size_l };
	int i;

	for (i = 0; i < 3; i++) {
		struct image_jpeg j = { 0 };
		ps_err rc = image_placeholder(sides[i], &j);

		if (rc != PS_OK)
			return rc;
		app->placeholder.data[i] = j.data;
		app->placeholder.len[i] = j.len;
		app->placeholder.sides[i] = sides[i];
	}
	return PS_OK;
}

static void
placeholder_free(struct placeholder *p)
{
	int i;

	for (i = 0; i < 3; i++) {
		struct image_jpeg j = { p->data[i], p->len[i], p->sides[i] };

		image_jpeg_free(&j);
		p->data[i] = NULL;
	}
}

/* ---- authentication ---- */

static bool
auth_session(struct webapp_ctx *app, struct http_req *r, struct viewer *v)
{
	struct store *st = app->srv->ps->store;
	struct store_session s;
	char cookie[129], key[65];

	if (!http_req_cookie(r, SESSION_COOKIE, cookie, sizeof(cookie)))
		return false;
	if (index_cred_get(app->srv->index, app->w.id, cookie, &v->user,
	    v->csrf)) {
		explicit_bzero(cookie, sizeof(cookie));
		return true;
	}
	auth_session_key(cookie, key);
	if (store_session_get(st, key, &s) != PS_OK || s.webapp != app->w.id ||
	    store_user_get(st, s.account, &v->user) != PS_OK) {
		explicit_bzero(cookie, sizeof(cookie));
		return false;
	}
	xfree_secret(v->user.pwhash, v->user.pwhash ? strlen(v->user.pwhash) :
	    0);
	v->user.pwhash = NULL;
	str_copy(v->csrf, s.csrf, sizeof(v->csrf));
	index_cred_put(app->srv->index, app->w.id, cookie, &v->user, v->csrf);
	explicit_bzero(cookie, sizeof(cookie));
	return true;
}

/* Finds a user by account or e-mail address as typed at sign-in. */
static ps_err
user_lookup(struct store *st, const char *name, struct store_user *u)
{
	char account[ACCOUNT_MAX];
	bool is_email;
	ps_err rc;

	if ((rc = account_parse(name, account, &is_email)) != PS_OK)
		return rc;
	return is_email ? store_user_get_by_email(st, account, u) :
	    store_user_get(st, account, u);
}

/* Verifies a password, once per credential and cache lifetime. */
static bool
password_ok(struct portal_srv *srv, const struct store_user *u,
    const char *pw)
{
	int64_t now = time_now();

	if (u->pwhash == NULL)
		return false;
	if (auth_cache_check(srv->auth_cache, u->account, pw, u->pwhash, now))
		return true;
	if (auth_password_verify(u->pwhash, pw) != PS_OK)
		return false;
	auth_cache_remember(srv->auth_cache, u->account, pw, u->pwhash, now);
	return true;
}

static bool
auth_basic(struct webapp_ctx *app, struct http_req *r, const char *hdr,
    struct viewer *v)
{
	char *user = NULL, *pw = NULL;
	bool ok = false;

	/* Verified before: no store query, no password hashing. */
	if (index_cred_get(app->srv->index, app->w.id, hdr, &v->user, NULL)) {
		v->basic = true;
		return true;
	}
	if (auth_basic_parse(hdr, &user, &pw) != PS_OK)
		goto out;
	if (user_lookup(app->srv->ps->store, user, &v->user) != PS_OK) {
		ps_errf(PS_EAUTH, "unknown user");
		goto out;
	}
	if (!password_ok(app->srv, &v->user, pw)) {
		ps_errf(PS_EAUTH, "wrong password");
		store_user_cleanup(&v->user);
		goto out;
	}
	xfree_secret(v->user.pwhash, strlen(v->user.pwhash));
	v->user.pwhash = NULL;
	index_cred_put(app->srv->index, app->w.id, hdr, &v->user, NULL);
	v->basic = true;
	ok = true;
out:
	if (!ok)
		log_info(http_req_id(r), "auth.refused", "method=basic "
		    "user=%s reason=%s", log_q(user ? user : ""),
		    log_q(ps_errmsg()));
	free(user);
	if (pw)
		xfree_secret(pw, strlen(pw));
	return ok;
}

static bool
wants_html(struct http_req *r)
{
	const char *accept = http_req_header(r, "Accept");

	return http_req_method(r) == HTTP_GET && accept &&
	    strstr(accept, "text/html");
}

/* Authenticates, or answers (login redirect or 401) and returns false. */
static bool
authenticate(struct webapp_ctx *app, struct http_req *r, struct viewer *v)
{
	const char *hdr = http_req_header(r, "Authorization");

	memset(v, 0, sizeof(*v));
	if (hdr && str_case_prefix(hdr, "Basic ")) {
		if (auth_basic(app, r, hdr, v))
			goto ok;
	} else if (auth_session(app, r, v)) {
		goto ok;
	}
	if (hdr == NULL && wants_html(r)) {
		char *enc = http_encode(http_req_path_raw(r));
		char *loc = xasprintf("/login?ReturnUrl=%s", enc);

		http_reply_header(r, "Location", loc);
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply(r, 302, NULL, NULL, 0);
		free(enc);
		free(loc);
		return false;
	}
	http_reply_header(r, "WWW-Authenticate",
	    "Basic realm=\"photosync portal\", charset=\"UTF-8\"");
	http_reply_error(r, 401, "sign in first (Basic credentials or the "
	    "form at /login)");
	return false;
ok:
	http_req_note(r, "user", v->user.account);
	return true;
}

/* ---- photos ---- */

static bool
etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = inm;

	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p == '"' && strncmp(p + 1, etag, n) == 0 &&
		    p[n + 1] == '"')
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* Sends the stored photo of `account`, or the placeholder. */
static void
serve_photo(struct webapp_ctx *app, struct http_req *r, const char *account,
    int size)
{
	const char *inm = http_req_header(r, "If-None-Match");
	struct cached_photo *ph;
	char tag[96], quoted[100], cc[64];

	ph = index_photo(app->srv->index, app->srv->ps->store, app->w.id,
	    account, (enum store_thumb_size)size);
	if (ph == NULL) {
		http_reply_error(r, 500, "the store failed");
		return;
	}
	if (ph->data) {
		snprintf(tag, sizeof(tag), "%s-%c", ph->etag,
		    size_names[size]);
		snprintf(cc, sizeof(cc), "private, max-age=%d", PHOTO_MAX_AGE);
		http_req_note(r, "photo", ph->source);
		metrics_add("photosync_photos_served_total", "kind=\"photo\"",
		    1);
	} else {
		snprintf(tag, sizeof(tag), "placeholder-%c-%d",
		    size_names[size], app->placeholder.sides[size]);
		snprintf(cc, sizeof(cc), "private, max-age=%d",
		    PLACEHOLDER_MAX_AGE);
		http_req_note(r, "photo", "placeholder");
		metrics_add("photosync_photos_served_total",
		    "kind=\"placeholder\"", 1);
	}
	snprintf(quoted, sizeof(quoted), "\"%s\"", tag);
	http_reply_header(r, "ETag", quoted);
	http_reply_header(r, "Cache-Control", cc);
	if (inm && etag_matches(inm, tag)) {
		metrics_add("photosync_photos_revalidated_total", NULL, 1);
		http_reply(r, 304, NULL, NULL, 0);
		cached_photo_unref(ph);
	} else if (ph->data) {
		/* The index's bytes, shared: no copy. */
		http_reply_ref(r, 200, "image/jpeg", ph->data, ph->len,
		    cached_photo_unref, ph);
	} else {
		http_reply(r, 200, "image/jpeg", app->placeholder.data[size],
		    app->placeholder.len[size]);
		cached_photo_unref(ph);
	}
}

/* A photo request waiting for a sync. */
struct photo_wait {
	struct webapp_ctx	*app;
	struct http_req		*r;
	char			 account[ACCOUNT_MAX];
	int			 size;
};

static void
photo_wait_done(void *arg, const struct sync_outcome *o)
{
	struct photo_wait *pw = arg;

	(void)o;
	serve_photo(pw->app, pw->r, pw->account, pw->size);
	free(pw);
}

/*
 * Resolves the user a photo request is about: accountname= (account,
 * claims or e-mail form), username=, or url= (a PictureURL).
 */
static ps_err
photo_target(struct webapp_ctx *app, struct http_req *r,
    struct store_user *u)
{
	struct store *st = app->srv->ps->store;
	const char *v;

	if ((v = http_req_query_ci(r, "accountname")) != NULL ||
	    (v = http_req_query_ci(r, "username")) != NULL)
		return index_user(app->srv->index, st, v, u);
	if ((v = http_req_query_ci(r, "url")) != NULL) {
		const char *slash = strrchr(v, '/');
		char prefix[ACCOUNT_MAX], size;
		ps_err rc;

		if ((rc = account_parse_file(slash ? slash + 1 : v, prefix,
		    &size)) != PS_OK)
			return rc;
		return index_user_by_prefix(app->srv->index, st, prefix, u);
	}
	return ps_errf(PS_EINVAL, "say whose photo: accountname=, username= "
	    "or url=");
}

static void
photo_request(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v, const struct store_user *target, int size)
{
	struct photo_wait *pw;
	bool own = strcmp(v->user.account, target->account) == 0;

	http_req_note(r, "account", target->account);
	http_req_note(r, "size", (char[2]){ size_names[size], 0 });
	/* Only the owner's request triggers, by default only the L size. */
	if (own && (size == STORE_L || app->w.sync_any)) {
		pw = xcalloc(1, sizeof(*pw));
		pw->app = app;
		pw->r = r;
		pw->size = size;
		str_copy(pw->account, target->account, sizeof(pw->account));
		http_req_defer(r);
		if (sync_request(app, target, http_req_id(r), SYNC_DEADLINE,
		    photo_wait_done, pw) == SYNC_STARTED)
			return;
		free(pw);
	}
	serve_photo(app, r, target->account, size);
}

static void
handle_userphoto(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	const char *sz = http_req_query_ci(r, "size");
	struct store_user target = { 0 };
	int size = STORE_S;
	ps_err rc;

	if (sz && sz[0] && sz[1] == '\0' && strchr("SsMmLl", sz[0]))
		size = (int)(strchr(size_names, sz[0] & ~0x20) - size_names);
	else if (sz && sz[0]) {
		http_reply_error(r, 400, "size= must be S, M or L");
		return;
	}
	rc = photo_target(app, r, &target);
	if (rc == PS_EINVAL) {
		http_reply_error(r, 400, ps_errmsg());
		return;
	}
	if (rc != PS_OK) {
		/* An unknown user gets the placeholder, as the original. */
		serve_photo(app, r, "", size);
		return;
	}
	photo_request(app, r, v, &target, size);
	store_user_cleanup(&target);
}

static void
handle_library(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v, const char *file)
{
	struct store_user target = { 0 };
	char prefix[ACCOUNT_MAX], size;

	if (account_parse_file(file, prefix, &size) != PS_OK ||
	    index_user_by_prefix(app->srv->index, app->srv->ps->store, prefix,
	    &target) != PS_OK) {
		http_reply_error(r, 404, "no such photo in the library");
		return;
	}
	photo_request(app, r, v, &target, (int)(strchr(size_names, size) -
	    size_names));
	store_user_cleanup(&target);
}

/* ---- pages ---- */

static void
reply_html(struct http_req *r, int status, struct buf *b)
{
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply_header(r, "Content-Security-Policy", "default-src 'self'; "
	    "style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
	    "frame-ancestors 'none'");
	http_reply_buf(r, status, HTML_TYPE, b);
}

static void
handle_error_page(struct http_req *r, const struct viewer *v, int status,
    const char *message)
{
	struct page_viewer pv = { &v->user, v->csrf };
	struct buf b;

	buf_init(&b, 1 << 20);
	page_error(&b, &pv, status, message);
	reply_html(r, status, &b);
	buf_cleanup(&b);
}

/* A short tag of the user's current photo, for cache-busting URLs. */
static void
photo_tag(struct webapp_ctx *app, const char *account, char tag[16])
{
	char etag[64];

	tag[0] = '\0';
	if (store_thumb_etag(app->srv->ps->store, app->w.id, account, etag) ==
	    PS_OK)
		str_copy(tag, etag, 13);
}

static void
handle_my(struct webapp_ctx *app, struct http_req *r, const struct viewer *v)
{
	struct page_viewer pv = { &v->user, v->csrf };
	struct store_thumb t = { 0 };
	struct store_sync s;
	const char *changed = http_req_query(r, "changed");
	char tag[16];
	struct buf b;
	bool has;

	store_sync_get(app->srv->ps->store, app->w.id, v->user.account, &s);
	has = store_thumb_get(app->srv->ps->store, app->w.id, v->user.account,
	    STORE_S, &t) == PS_OK;
	photo_tag(app, v->user.account, tag);
	buf_init(&b, 1 << 20);
	page_my(&b, &pv, &s, has ? t.source : NULL, tag, changed ?
	    "Your photo was changed." : NULL);
	reply_html(r, 200, &b);
	buf_cleanup(&b);
	store_thumb_cleanup(&t);
}

/* ---- changing one's photo ---- */

/* A change-photo request waiting for Autodiscover or a render. */
struct change {
	struct webapp_ctx	*app;
	struct http_req		*r;
	struct store_user	 user;		/* pwhash not kept */
	char			 csrf[65];
	bool			 basic;
	bool			 post;
	/* the upload, rendered on a worker */
	unsigned char		*upload;
	size_t			 upload_len;
	struct image_jpeg	 out[4];	/* S, M, L, high resolution */
	ps_err			 render_rc;
	char			 render_err[256];
};

static struct change *
change_new(struct webapp_ctx *app, struct http_req *r, const struct viewer *v)
{
	struct change *c = xcalloc(1, sizeof(*c));

	c->app = app;
	c->r = r;
	c->user = v->user;
	c->user.pwhash = NULL;
	str_copy(c->csrf, v->csrf, sizeof(c->csrf));
	c->basic = v->basic;
	c->post = http_req_method(r) == HTTP_POST;
	return c;
}

static void
change_free(struct change *c)
{
	int i;

	for (i = 0; i < 4; i++)
		image_jpeg_free(&c->out[i]);
	free(c->upload);
	free(c);
}

static void
upload_page(struct change *c, int status, const char *managed_url,
    const char *error)
{
	struct page_viewer pv = { &c->user, c->csrf };
	char tag[16];
	struct buf b;

	if (c->basic && c->post) {
		/* Scripts get the reason in plain words. */
		if (error)
			http_reply_error(c->r, status, error);
		else
			http_reply(c->r, status, "text/plain; charset=utf-8",
			    "stored\n", 7);
		return;
	}
	photo_tag(c->app, c->user.account, tag);
	buf_init(&b, 1 << 20);
	page_upload(&b, &pv, tag, managed_url, error);
	reply_html(c->r, status, &b);
	buf_cleanup(&b);
}

static void
upload_render(void *arg)
{
	struct change *c = arg;
	const struct store_webapp *w = &c->app->w;
	const int sides[4] = { w->size_s, w->size_m, w->size_l,
	    PORTAL_HR_SIDE };

	c->render_rc = image_render(c->upload, c->upload_len,
	    &image_default_limits, sides, 4, c->out, NULL);
	if (c->render_rc != PS_OK)
		str_copy(c->render_err, ps_errmsg(), sizeof(c->render_err));
}

static void
upload_rendered(void *arg)
{
	struct change *c = arg;
	const unsigned char *data[4];
	size_t len[4];
	unsigned char rnd[16];
	char etag[33];
	int i;

	if (c->render_rc != PS_OK) {
		log_info(http_req_id(c->r), "photo.upload_refused", "account=%s "
		    "reason=%s", log_q(c->user.account), log_q(c->render_err));
		upload_page(c, c->render_rc == PS_ELIMIT ? 413 : 415, NULL,
		    c->render_err);
		change_free(c);
		return;
	}
	for (i = 0; i < 4; i++) {
		data[i] = c->out[i].data;
		len[i] = c->out[i].len;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), etag);
	if (store_thumb_put(c->app->srv->ps->store, c->app->w.id,
	    c->user.account, "local", etag, data, len) != PS_OK) {
		upload_page(c, 500, NULL, "The photo could not be stored.");
		change_free(c);
		return;
	}
	index_photo_forget(c->app->srv->index, c->app->w.id, c->user.account);
	log_info(http_req_id(c->r), "photo.uploaded", "account=%s etag=%s "
	    "bytes=%zu", log_q(c->user.account), etag, c->upload_len);
	if (c->basic) {
		upload_page(c, 200, NULL, NULL);
	} else {
		http_reply_header(c->r, "Location", "/my?changed=1");
		http_reply(c->r, 303, NULL, NULL, 0);
	}
	change_free(c);
}

/* Takes the uploaded file and renders it off the loop. */
static void
upload_start(struct change *c)
{
	struct http_part part;
	const char *body;
	size_t len;
	ps_err rc;

	body = http_req_body(c->r, &len);
	rc = http_multipart_field(http_req_header(c->r, "Content-Type"), body,
	    len, "photo", &part);
	if (rc != PS_OK || part.len == 0) {
		upload_page(c, 400, NULL, rc == PS_EINVAL ? ps_errmsg() :
		    "Choose a photo first.");
		change_free(c);
		return;
	}
	c->upload = xmalloc(part.len);
	memcpy(c->upload, part.data, part.len);
	c->upload_len = part.len;
	work_submit(c->app->srv->pool, upload_render, upload_rendered, c);
}

static void
change_discovered(void *arg, int has_mailbox, const char *ecp_url,
    const char *reason)
{
	struct change *c = arg;
	char *back, *enc, *loc, msg[600];

	if (has_mailbox == 1 && c->post) {
		log_info(http_req_id(c->r), "photo.upload_refused", "account=%s "
		    "reason=%s", log_q(c->user.account),
		    log_q("managed by the mail server"));
		upload_page(c, 409, ecp_url, "Your photo is managed by the "
		    "mail server; change it there.");
	} else if (has_mailbox == 1) {
		/* Off to the mail server's page, with the way back. */
		back = xasprintf("%s/my/photochanged", c->app->base_url);
		enc = http_encode(back);
		loc = xasprintf("%s%sreturnUrl=%s", ecp_url,
		    strchr(ecp_url, '?') ? "&" : "?", enc);
		log_info(http_req_id(c->r), "photo.change_redirect",
		    "account=%s to=%s", log_q(c->user.account), log_q(ecp_url));
		http_reply_header(c->r, "Location", loc);
		http_reply_header(c->r, "Cache-Control", "no-store");
		http_reply(c->r, 302, NULL, NULL, 0);
		free(back);
		free(enc);
		free(loc);
	} else if (has_mailbox == 0) {
		if (c->post) {
			upload_start(c);
			return;
		}
		upload_page(c, 200, NULL, NULL);
	} else {
		snprintf(msg, sizeof(msg), "The mail server could not be "
		    "asked where your photo is managed (%s). Try again later.",
		    reason ? reason : "no answer");
		upload_page(c, 503, NULL, msg);
	}
	change_free(c);
}

static void
handle_changephoto(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	struct change *c = change_new(app, r, v);

	http_req_defer(r);
	if (c->post && !c->basic) {
		struct http_part part;
		const char *body;
		size_t len;

		/* A browser's form must carry the session's CSRF token. */
		body = http_req_body(r, &len);
		if (http_multipart_field(http_req_header(r, "Content-Type"),
		    body, len, "csrf", &part) != PS_OK ||
		    part.len != strlen(v->csrf) || part.len == 0 ||
		    !str_ct_eq(part.data, v->csrf, part.len)) {
			upload_page(c, 400, NULL, "The form expired. Please "
			    "choose the photo again.");
			change_free(c);
			return;
		}
	}
	if (!app->w.photo_import) {
		/* The local library is authoritative. */
		if (c->post) {
			upload_start(c);
		} else {
			upload_page(c, 200, NULL, NULL);
			change_free(c);
		}
		return;
	}
	sync_discover(app, &c->user, http_req_id(r), change_discovered, c);
}

/* Back from the mail server's page: fetch the new photo at once. */
struct back {
	struct http_req	*r;
};

static void
back_synced(void *arg, const struct sync_outcome *o)
{
	struct back *bk = arg;

	(void)o;
	http_reply_header(bk->r, "Location", "/my?changed=1");
	http_reply_header(bk->r, "Cache-Control", "no-store");
	http_reply(bk->r, 303, NULL, NULL, 0);
	free(bk);
}

static void
handle_photochanged(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	struct back *bk = xcalloc(1, sizeof(*bk));

	bk->r = r;
	http_req_defer(r);
	log_info(http_req_id(r), "photo.changed_at_master", "account=%s",
	    log_q(v->user.account));
	if (sync_request(app, &v->user, http_req_id(r), SYNC_FORCE |
	    SYNC_DEADLINE, back_synced, bk) != SYNC_STARTED)
		back_synced(bk, NULL);
}

static void
handle_person(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	struct page_viewer pv = { &v->user, v->csrf };
	const char *who = http_req_query_ci(r, "accountname");
	struct store_user u = { 0 };
	char tag[16];
	struct buf b;

	if (who == NULL || user_lookup(app->srv->ps->store, who, &u) !=
	    PS_OK) {
		handle_error_page(r, v, 404, "There is no such person.");
		return;
	}
	photo_tag(app, u.account, tag);
	buf_init(&b, 1 << 20);
	page_person(&b, &pv, &u, tag);
	reply_html(r, 200, &b);
	buf_cleanup(&b);
	store_user_cleanup(&u);
}

struct user_list {
	struct store_user	*u;
	size_t			 n;
};

static ps_err
collect_user(void *arg, const struct store_user *u)
{
	struct user_list *l = arg;

	l->u = xrealloc(l->u, (l->n + 1) * sizeof(*l->u));
	l->u[l->n] = *u;
	l->u[l->n].pwhash = NULL;
	l->n++;
	return PS_OK;
}

static void
handle_people(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	struct page_viewer pv = { &v->user, v->csrf };
	struct user_list l = { 0 };
	char (*tags)[16];
	struct buf b;
	size_t i;

	store_user_each(app->srv->ps->store, collect_user, &l);
	tags = xcalloc(l.n + 1, sizeof(*tags));
	for (i = 0; i < l.n; i++)
		photo_tag(app, l.u[i].account, tags[i]);
	buf_init(&b, 16 << 20);
	page_people(&b, &pv, l.u, (const char (*)[16])tags, l.n);
	reply_html(r, 200, &b);
	buf_cleanup(&b);
	free(tags);
	free(l.u);
}

/* ---- sign-in ---- */

static bool
local_path(const char *p)
{
	return p && p[0] == '/' && p[1] != '/' && p[1] != '\\' &&
	    strpbrk(p, "\r\n") == NULL;
}

static void
login_form(struct http_req *r, const char *return_url, const char *error,
    int status)
{
	unsigned char rnd[16];
	char csrf[33], cookie[128];
	struct buf b;

	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), csrf);
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/login; HttpOnly; "
	    "Secure; SameSite=Strict", CSRF_COOKIE, csrf);
	http_reply_header(r, "Set-Cookie", cookie);
	buf_init(&b, 1 << 20);
	page_login(&b, csrf, local_path(return_url) ? return_url : "/my",
	    error);
	reply_html(r, status, &b);
	buf_cleanup(&b);
}

static void
handle_login(struct webapp_ctx *app, struct http_req *r)
{
	struct portal_srv *srv = app->srv;
	const char *body = http_req_body(r, NULL);
	char *account = NULL, *pw = NULL, *csrf = NULL, *ret = NULL;
	char want[65], cookie[65], key[65], hdr[256];
	unsigned char rnd[32];
	struct store_user u = { 0 };
	struct store_session s = { 0 };

	if (http_req_method(r) != HTTP_POST) {
		login_form(r, http_req_query_ci(r, "ReturnUrl"), NULL, 200);
		return;
	}
	account = http_form_value(body, "account");
	pw = http_form_value(body, "password");
	csrf = http_form_value(body, "csrf");
	ret = http_form_value(body, "ReturnUrl");
	/* Double-submit: the form's token must match its cookie. */
	if (csrf == NULL || !http_req_cookie(r, CSRF_COOKIE, want,
	    sizeof(want)) || strlen(csrf) != strlen(want) ||
	    !str_ct_eq(csrf, want, strlen(want))) {
		login_form(r, ret, "The form expired. Please sign in again.",
		    400);
		goto out;
	}
	if (account == NULL || pw == NULL ||
	    user_lookup(srv->ps->store, account, &u) != PS_OK ||
	    !password_ok(srv, &u, pw)) {
		log_info(http_req_id(r), "auth.refused", "method=form user=%s",
		    log_q(account ? account : ""));
		login_form(r, ret, "The account or the password is wrong.",
		    401);
		goto out;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), cookie);
	auth_session_key(cookie, key);
	str_copy(s.account, u.account, sizeof(s.account));
	s.webapp = app->w.id;
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), s.csrf);
	s.expires = time_now() + SESSION_LIFETIME;
	if (store_session_put(srv->ps->store, key, &s) != PS_OK) {
		http_reply_error(r, 500, "the store failed");
		goto out;
	}
	log_info(http_req_id(r), "auth.session_started", "user=%s",
	    log_q(u.account));
	snprintf(hdr, sizeof(hdr), "%s=%s; Path=/; HttpOnly; Secure; "
	    "SameSite=Lax; Max-Age=%d", SESSION_COOKIE, cookie,
	    SESSION_LIFETIME);
	http_reply_header(r, "Set-Cookie", hdr);
	http_reply_header(r, "Location", local_path(ret) ? ret : "/my");
	http_reply(r, 303, NULL, NULL, 0);
	explicit_bzero(cookie, sizeof(cookie));
out:
	free(account);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(csrf);
	free(ret);
	store_user_cleanup(&u);
}

static void
handle_logout(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	char *csrf = http_form_value(http_req_body(r, NULL), "csrf");
	char cookie[129], key[65];

	if (http_req_method(r) != HTTP_POST || v->basic || csrf == NULL ||
	    strlen(csrf) != strlen(v->csrf) ||
	    !str_ct_eq(csrf, v->csrf, strlen(v->csrf))) {
		free(csrf);
		handle_error_page(r, v, 400, "Sign out with the button on the "
		    "page.");
		return;
	}
	free(csrf);
	if (http_req_cookie(r, SESSION_COOKIE, cookie, sizeof(cookie))) {
		auth_session_key(cookie, key);
		store_session_remove(app->srv->ps->store, key);
		index_cred_forget(app->srv->index, app->w.id, cookie);
		explicit_bzero(cookie, sizeof(cookie));
	}
	http_reply_header(r, "Set-Cookie", SESSION_COOKIE "=; Path=/; "
	    "HttpOnly; Secure; SameSite=Lax; Max-Age=0");
	http_reply_header(r, "Location", "/login");
	http_reply(r, 303, NULL, NULL, 0);
}

/* ---- routing ---- */

static void
handle_metadata(struct webapp_ctx *app, struct http_req *r)
{
	struct buf out;

	buf_init(&out, 64 * 1024);
	if (s2s_metadata_sharepoint(&out, app->w.realm, app->s2s_cert,
	    app->s2s_cert_len) != PS_OK) {
		http_reply_error(r, 500, ps_errmsg());
	} else {
		http_reply_header(r, "Cache-Control", "public, max-age=3600");
		http_reply_buf(r, 200, "application/json; charset=utf-8",
		    &out);
	}
	buf_cleanup(&out);
}

#define LIBRARY_PREFIX "/user photos/profile pictures/"
#define NOTIFY_PATH "/_layouts/15/photosync/notify"

struct issuer_list {
	struct s2s_metadata	*md;
	size_t			 n;
};

static ps_err
collect_issuer(void *arg, const struct store_issuer *is)
{
	struct issuer_list *l = arg;
	struct s2s_metadata md;

	if (s2s_metadata_parse(is->metadata, strlen(is->metadata), &md) !=
	    PS_OK)
		return PS_OK;
	l->md = xrealloc(l->md, (l->n + 1) * sizeof(*l->md));
	l->md[l->n++] = md;
	return PS_OK;
}

/* Validates a bearer token from a trusted issuer (app-only is fine). */
static ps_err
issuer_token_ok(struct webapp_ctx *app, const char *token,
    struct s2s_identity *id)
{
	struct issuer_list l = { 0 };
	struct s2s_partner *p;
	struct s2s_expect ex = {
		.client_id = S2S_SHAREPOINT_ID,
		.host = app->w.host,
		.port = app->port,
		.realm = app->w.realm,
		.now = time_now(),
	};
	size_t i;
	ps_err rc;

	store_issuer_each(app->srv->ps->store, collect_issuer, &l);
	p = xcalloc(l.n + 1, sizeof(*p));
	for (i = 0; i < l.n; i++) {
		p[i].issuer = l.md[i].issuer;
		p[i].realm = l.md[i].realm;
		p[i].certs = l.md[i].certs;
		p[i].n_certs = l.md[i].n_certs;
	}
	rc = s2s_token_validate(token, &ex, p, l.n, id);
	for (i = 0; i < l.n; i++)
		s2s_metadata_cleanup(&l.md[i]);
	free(l.md);
	free(p);
	return rc;
}

static void
notify_synced(void *arg, const struct sync_outcome *o)
{
	(void)arg;
	(void)o;
}

/*
 * A change notice from the master: the user's photo changed there. The
 * cached photo is marked stale and fetched again in the background, so
 * the change shows everywhere within seconds.
 */
static void
handle_notify(struct webapp_ctx *app, struct http_req *r)
{
	struct store *st = app->srv->ps->store;
	const char *auth = http_req_header(r, "Authorization");
	struct s2s_identity id;
	struct store_user u = { 0 };
	struct store_sync state;
	char *email = NULL;

	if (http_req_method(r) != HTTP_POST) {
		http_reply_header(r, "Allow", "POST");
		http_reply_error(r, 405, "notifications are POSTed");
		return;
	}
	if (auth == NULL || !str_case_prefix(auth, "Bearer ") ||
	    issuer_token_ok(app, auth + 7, &id) != PS_OK) {
		log_info(http_req_id(r), "notify.refused", "reason=%s",
		    log_q(auth ? ps_errmsg() : "no token"));
		http_reply_header(r, "WWW-Authenticate", "Bearer realm=\"\"");
		http_reply_error(r, 401, "a trusted issuer's token is needed");
		metrics_add("photosync_notifications_received_total",
		    "result=\"refused\"", 1);
		return;
	}
	if (!app->w.notifications) {
		http_reply_error(r, 403, "change notifications are off for "
		    "this web application");
		metrics_add("photosync_notifications_received_total",
		    "result=\"off\"", 1);
		return;
	}
	email = http_form_value(http_req_body(r, NULL), "email");
	if (email == NULL || !email_valid(email) ||
	    store_user_get_by_email(st, email, &u) != PS_OK) {
		http_reply_error(r, 404, "no such user here");
		metrics_add("photosync_notifications_received_total",
		    "result=\"unknown_user\"", 1);
		free(email);
		return;
	}
	/* Stale now: neither window may hold the next sync back. */
	store_sync_get(st, app->w.id, u.account, &state);
	state.last_success = 0;
	state.last_error = 0;
	store_sync_put(st, app->w.id, u.account, &state);
	log_info(http_req_id(r), "notify.received", "issuer=%s account=%s",
	    log_q(id.partner), log_q(u.account));
	metrics_add("photosync_notifications_received_total",
	    "result=\"accepted\"", 1);
	sync_request(app, &u, http_req_id(r), SYNC_FORCE, notify_synced,
	    NULL);
	http_reply(r, 202, "text/plain; charset=utf-8", "accepted\n", 9);
	free(email);
	store_user_cleanup(&u);
}

/* Prometheus metrics, to the addresses --metrics-allow names. */
static void
handle_metrics(struct webapp_ctx *app, struct http_req *r)
{
	metrics_set("photosync_sync_in_flight", NULL,
	    (double)sync_in_flight(app->srv));
	http_reply_metrics(r, app->srv->metrics_acl);
}

/*
 * The web application a request is for: the one whose host the Host
 * header names among those sharing the listener's port, else the
 * listener's own.
 */
static struct webapp_ctx *
route_host(struct webapp_ctx *listener, struct http_req *r)
{
	const char *h = http_req_header(r, "Host");
	struct portal_srv *srv = listener->srv;
	char host[256];
	size_t i, n;

	if (h == NULL || srv->n_apps < 2)
		return listener;
	if (h[0] == '[') {
		h++;
		n = strcspn(h, "]");
	} else {
		n = strcspn(h, ":");
	}
	if (n >= sizeof(host))
		return listener;
	memcpy(host, h, n);
	host[n] = '\0';
	for (i = 0; i < srv->n_apps; i++)
		if (srv->apps[i].port == listener->port &&
		    strcasecmp(srv->apps[i].w.host, host) == 0)
			return &srv->apps[i];
	return listener;
}

static void
handle(struct http_req *r, void *arg)
{
	struct webapp_ctx *app = route_host(arg, r);
	const char *path = http_req_path(r);
	enum http_method m = http_req_method(r);
	struct viewer v;

	portal_refresh(app->srv);
	if (strcmp(path, "/_layouts/15/metadata/json/1") == 0) {
		http_req_set_route(r, "metadata");
		handle_metadata(app, r);
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		http_req_set_route(r, "metrics");
		handle_metrics(app, r);
		return;
	}
	if (strcmp(path, NOTIFY_PATH) == 0) {
		http_req_set_route(r, "notify");
		handle_notify(app, r);
		return;
	}
	if (strcmp(path, "/login") == 0) {
		http_req_set_route(r, "login");
		handle_login(app, r);
		return;
	}
	if (m != HTTP_GET && m != HTTP_HEAD && m != HTTP_POST) {
		http_reply_error(r, 405, "method not allowed");
		return;
	}
	if (strncmp(path, "/avatar/", 8) == 0) {
		/* Avatars: anyone, or signed-in users (avatar_anyone). */
		http_req_set_route(r, "avatar");
		if (!app->w.avatar_anyone) {
			if (!authenticate(app, r, &v))
				return;
			store_user_cleanup(&v.user);
		}
		avatar_handle(app, r);
		return;
	}
	if (strcmp(path, "/_layouts/15/userphoto.aspx") == 0)
		http_req_set_route(r, "userphoto");
	else if (strncmp(path, LIBRARY_PREFIX, strlen(LIBRARY_PREFIX)) == 0)
		http_req_set_route(r, "library");
	else
		http_req_set_route(r, "page");
	if (!authenticate(app, r, &v))
		return;
	if (strcmp(path, "/_layouts/15/userphoto.aspx") == 0)
		handle_userphoto(app, r, &v);
	else if (strncmp(path, LIBRARY_PREFIX, strlen(LIBRARY_PREFIX)) == 0)
		handle_library(app, r, &v, http_req_path_raw(r) +
		    strlen(LIBRARY_PREFIX));
	else if (strcmp(path, "/logout") == 0)
		handle_logout(app, r, &v);
	else if (strcmp(path, "/my/changephoto") == 0)
		handle_changephoto(app, r, &v);
	else if (m == HTTP_POST)
		http_reply_error(r, 405, "method not allowed");
	else if (strcmp(path, "/my") == 0 || strcmp(path, "/") == 0 ||
	    strcmp(path, "/my/") == 0)
		handle_my(app, r, &v);
	else if (strcmp(path, "/my/person.aspx") == 0)
		handle_person(app, r, &v);
	else if (strcmp(path, "/people") == 0)
		handle_people(app, r, &v);
	else if (strcmp(path, "/my/photochanged") == 0)
		handle_photochanged(app, r, &v);
	else
		handle_error_page(r, &v, 404, "There is no such page.");
	store_user_cleanup(&v.user);
}

/* ---- start and stop ---- */

/*
 * Starts a web application's listener (its keys are loaded), or, when
 * an earlier one already listens on the same port, joins it: requests
 * are routed by Host, certificates chosen by server name (SNI).
 */
static ps_err
app_listen(struct webapp_ctx *app, const char *listen_host)
{
	char *tkey = portal_webapp_path(app->srv->ps->dir, app->w.id,
	    "tls-key");
	char *tcert = portal_webapp_path(app->srv->ps->dir, app->w.id,
	    "tls-cert");
	struct webapp_ctx *owner = NULL;
	ps_err rc;
	size_t i;

	for (i = 0; app->w.port != 0 && &app->srv->apps[i] != app; i++)
		if (app->srv->apps[i].http &&
		    app->srv->apps[i].w.port == app->w.port)
			owner = &app->srv->apps[i];
	if ((rc = http_tls_new(tcert, tkey, &app->tls)) != PS_OK ||
	    (rc = placeholder_make(app)) != PS_OK)
		goto out;
	if (owner) {
		http_tls_add_sni(owner->tls, app->w.host, app->tls);
		app->port = owner->port;
	} else {
		app->http = http_server_new(app->srv->base, "portal", handle,
		    app);
		http_server_buffer_logs(app->http);
		/* Uploads: the image pipeline's limit, plus the form around. */
		http_server_set_max_body(app->http, IMAGE_MAX_BYTES +
		    64 * 1024);
		if ((rc = http_server_listen(app->http, listen_host ?
		    listen_host : app->w.host, app->w.port, app->tls,
		    &app->port)) != PS_OK)
			goto out;
	}
	free(app->base_url);
	app->base_url = setup_https_origin(app->w.host, app->port);
	log_info(NULL, "serve.listening", "url=%s webapp=%s import=%s%s",
	    log_q(app->base_url), log_q(app->w.url),
	    app->w.photo_import ? "on" : "off", owner ? " shared=yes" : "");
	printf("photosync portal: serving %s\n", app->base_url);
out:
	free(tkey);
	free(tcert);
	return rc;
}

static void
app_unlisten(struct webapp_ctx *app)
{
	http_server_free(app->http);
	http_tls_free(app->tls);
	placeholder_free(&app->placeholder);
	app->http = NULL;
	app->tls = NULL;
}

/*
 * SIGTERM: every server finishes its requests in flight, then the loop
 * ends.
 */
struct serve_stop {
	struct portal_srv	*srv;
	size_t			 left;		/* servers still draining */
};

static void
serve_drained(void *arg)
{
	struct serve_stop *st = arg;

	if (--st->left == 0)
		event_base_loopexit(st->srv->base, NULL);
}

static void
serve_stop(void *arg)
{
	struct serve_stop *st = arg;
	size_t i;

	for (i = 0; i < st->srv->n_apps; i++)
		st->left += st->srv->apps[i].http != NULL;
	if (st->left == 0)
		event_base_loopexit(st->srv->base, NULL);
	for (i = 0; i < st->srv->n_apps; i++)
		if (st->srv->apps[i].http)
			http_server_drain(st->srv->apps[i].http,
			    serve_drained, st);
}

ps_err
portal_serve(struct portal_state *ps, const char *listen_host,
    const char *port_file, const char *metrics_allow)
{
	struct portal_srv srv;
	struct serve_stop stop = { .srv = &srv };
	struct http_signals *sigs = NULL;
	struct buf ports;
	size_t i;
	ps_err rc;

	signal(SIGPIPE, SIG_IGN);
	buf_init(&ports, 4096);
	if ((rc = portal_srv_init(&srv, ps, NULL)) != PS_OK ||
	    (rc = metrics_acl_parse(metrics_allow, &srv.metrics_acl)) !=
	    PS_OK)
		goto out;
	for (i = 0; i < srv.n_apps; i++) {
		if ((rc = app_listen(&srv.apps[i], listen_host)) != PS_OK)
			goto out;
		buf_addf(&ports, "%d\n", srv.apps[i].port);
		background_start(&srv.apps[i]);
	}
	if (port_file && (rc = file_write_atomic(port_file, ports.b_data,
	    ports.b_len, 0644)) != PS_OK)
		goto out;
	fflush(stdout);
	sigs = http_signals_watch(srv.base, serve_stop, &stop);
	event_base_dispatch(srv.base);
	rc = PS_OK;
out:
	http_signals_free(sigs);
	for (i = 0; i < srv.n_apps; i++) {
		background_stop(&srv.apps[i]);
		http_server_free(srv.apps[i].http);
		srv.apps[i].http = NULL;
	}
	for (i = 0; i < srv.n_apps; i++)
		app_unlisten(&srv.apps[i]);
	metrics_acl_free(srv.metrics_acl);
	avatar_shutdown();
	portal_srv_cleanup(&srv);
	buf_cleanup(&ports);
	return rc;
}
