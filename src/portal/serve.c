/*
 * photosync portal serve: the portal's HTTP surface, one listener per web
 * application (or several sharing a port, routed by Host).
 *
 *   GET  /_layouts/15/userphoto.aspx?size=S|M|L&accountname=|username=|url=
 *   GET  /User%20Photos/Profile%20Pictures/<account>_{S,M,L}Thumb.jpg
 *   GET  /_layouts/15/metadata/json/1		S2S metadata (no sign-in)
 *   POST /_layouts/15/photosync/notify		the master's change notices
 *   GET  /my, /my/person.aspx?accountname=, /people
 *   GET|POST /my/changephoto, GET /my/photochanged
 *   GET  /avatar/<hash>	Libravatar/Gravatar scheme (avatar.c)
 *   GET|POST /login, POST /logout
 *   GET  /metrics
 *   GET  /ready		readiness, for load balancers (no sign-in)
 *
 * Routing and the server's life: start, the change feed (what other
 * processes changed is dropped from memory before a request is answered
 * from it; settings and issuers are read again), stop. The routes live in
 * photos.c, profile.c, signin.c, notice.c and avatar.c.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/guard.h"
#include "auth/negotiate.h"
#include "auth/share.h"
#include "auth/sso.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/service.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "directory.h"
#include "directory/passwords.h"
#include "directory/schedule.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "metrics/metrics.h"
#include "pages.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "store/follow.h"
#include "store/pool.h"
#include "work/work.h"

#define LIBRARY_PREFIX	"/user photos/profile pictures/"
#define NOTIFY_PATH	"/_layouts/15/photosync/notify"

/* ---- answers shared by the routes ---- */

void
reply_html(struct http_req *r, int status, struct buf *b)
{
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply_header(r, "Content-Security-Policy", "default-src 'self'; "
	    "style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
	    "frame-ancestors 'none'");
	http_reply_buf(r, status, PORTAL_HTML_TYPE, b);
}

void
reply_error_page(struct http_req *r, const struct viewer *v, int status,
    const char *message)
{
	struct page_viewer pv = { &v->user, v->csrf };
	struct buf b;

	buf_init(&b, 1 << 20);
	page_error(&b, &pv, status, message);
	reply_html(r, status, &b);
	buf_cleanup(&b);
}

void
reply_busy(struct http_req *r, const char *what)
{
	log_warn(http_req_id(r), "serve.busy", "what=%s reason=%s",
	    log_q(what), log_q(ps_errmsg()));
	metrics_add("photosync_busy_total", NULL, 1);
	http_reply_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "the server is busy; try again in a moment");
}

void
reply_unread(struct portal_srv *srv, struct http_req *r, ps_err rc)
{
	if (rc == PS_EBUSY)
		reply_busy(r, "store reads");
	else if (!store_pool_up(srv->store)) {
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		http_reply_error(r, 503, "the store cannot be reached: try "
		    "again in a moment");
	} else
		http_reply_error(r, 500, "the store could not be read");
}

/* ---- placeholders ---- */

static ps_err
placeholder_make(const int sides[3], struct placeholder *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < 3; i++) {
		struct image_jpeg j = { 0 };
		ps_err rc = image_placeholder(sides[i], &j);

		if (rc != PS_OK)
			return rc;
		out->data[i] = j.data;
		out->len[i] = j.len;
		out->sides[i] = sides[i];
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

/* New placeholders for new sizes, drawn on a worker. */
struct redraw {
	struct webapp_ctx	*app;
	int			 sides[3];
	struct placeholder	 p;
	ps_err			 rc;
	char			 err[256];
};

static void
redraw_run(void *arg)
{
	struct redraw *rd = arg;

	if ((rd->rc = placeholder_make(rd->sides, &rd->p)) != PS_OK)
		str_copy(rd->err, ps_errmsg(), sizeof(rd->err));
}

static void
redraw_done(void *arg)
{
	struct redraw *rd = arg;

	if (rd->rc != PS_OK) {
		log_err(NULL, "webapp.placeholder_failed", "url=%s error=%s",
		    log_q(rd->app->w.url), log_q(rd->err));
		placeholder_free(&rd->p);
	} else {
		placeholder_free(&rd->app->placeholder);
		rd->app->placeholder = rd->p;
	}
	free(rd);
}

/* ---- what other processes changed ---- */

/* A web application's new Kerberos settings, loaded on a worker. */
struct kerberos_load {
	struct webapp_ctx	*app;
	struct store_webapp	 w;
	uint64_t		 gen;
	struct auth_negotiate	*an;
};

static void
kerberos_load_run(void *arg)
{
	struct kerberos_load *kl = arg;

	kl->an = signin_kerberos_load(&kl->w);
}

static void
kerberos_load_done(void *arg)
{
	struct kerberos_load *kl = arg;

	/* A later change was made meanwhile: its load decides. */
	if (kl->gen == kl->app->kerberos_gen) {
		auth_negotiate_free(kl->app->kerberos);
		kl->app->kerberos = kl->an;
		kl->an = NULL;
		log_info(NULL, "webapp.kerberos_loaded", "url=%s kerberos=%s",
		    log_q(kl->w.url), kl->app->kerberos ? "on" : "off");
	}
	auth_negotiate_free(kl->an);
	free(kl);
}

/*
 * The web application's settings, changed by an admin command: they
 * apply to the next request; a new autodiscover domain, CA file or OAuth
 * setting drops what was learnt from the old master; new thumbnail sizes
 * get new placeholders; new single sign-on settings are compiled (and
 * refused, leaving sign-in by a proxy off, if they do not parse); a
 * new keytab or Kerberos service is loaded on a worker, the old acceptor
 * serving until then (the realm map applies at once).
 */
static void
webapp_apply(struct webapp_ctx *app, const struct store_webapp *w)
{
	struct redraw *rd;

	if (strcmp(w->autodiscover_domain, app->w.autodiscover_domain) ||
	    strcmp(w->ca_file, app->w.ca_file) ||
	    w->allow_oauth_http != app->w.allow_oauth_http)
		sync_forget(app->srv, w->id);
	if ((w->size_s != app->w.size_s || w->size_m != app->w.size_m ||
	    w->size_l != app->w.size_l) && app->http) {
		log_info(NULL, "webapp.sizes_changed", "url=%s note=%s",
		    log_q(w->url), log_q("new sizes apply to photos fetched or "
		    "uploaded from now on"));
		rd = xcalloc(1, sizeof(*rd));
		rd->app = app;
		rd->sides[0] = w->size_s;
		rd->sides[1] = w->size_m;
		rd->sides[2] = w->size_l;
		work_submit(app->srv->pool, redraw_run, redraw_done, rd);
	}
	if (strcmp(w->sso_header, app->w.sso_header) ||
	    strcmp(w->sso_proxies, app->w.sso_proxies)) {
		struct auth_sso *sso = NULL;

		/* The admin command checked them: a failure is a bad store. */
		if (auth_sso_new(w->sso_header, w->sso_proxies, &sso) != PS_OK)
			log_err(NULL, "webapp.sso_refused", "url=%s error=%s",
			    log_q(w->url), log_q(ps_errmsg()));
		auth_sso_free(app->sso);
		app->sso = sso;
	}
	if (strcmp(w->keytab, app->w.keytab) ||
	    strcmp(w->kerberos_service, app->w.kerberos_service)) {
		struct kerberos_load *kl = xcalloc(1, sizeof(*kl));

		/* The keytab is a file to read: not on the loop. */
		kl->app = app;
		kl->w = *w;
		kl->gen = ++app->kerberos_gen;
		work_submit(app->srv->pool, kerberos_load_run,
		    kerberos_load_done, kl);
	}
	app->w = *w;
}

/* What a batch of changes made stale, read again on the read lane. */
struct reread {
	bool			 webapps_read, issuers_read;
	struct store_webapp	*w;
	size_t			 n;
	struct portal_issuers	 issuers;
	struct auth_share_read	*counts;	/* sign-in failures */
};

static ps_err
collect_webapp(void *arg, const struct store_webapp *w)
{
	struct reread *rr = arg;

	rr->w = xrealloc(rr->w, (rr->n + 1) * sizeof(*rr->w));
	rr->w[rr->n++] = *w;
	return PS_OK;
}

static void *
feed_reread(struct store *st, const struct store_change *c, size_t n,
    bool lost)
{
	struct reread *rr = xcalloc(1, sizeof(*rr));
	bool webapps = lost, issuers = lost;
	size_t i;

	for (i = 0; i < n; i++) {
		webapps |= c[i].kind == STORE_CHANGE_WEBAPP;
		issuers |= c[i].kind == STORE_CHANGE_ISSUER;
	}
	if (webapps) {
		if (store_webapp_each(st, collect_webapp, rr) == PS_OK)
			rr->webapps_read = true;
		else
			log_err(NULL, "webapp.reload_failed", "error=%s",
			    log_q(ps_errmsg()));
	}
	rr->counts = auth_share_reread(st, c, n);
	if (issuers) {
		if (portal_issuers_load(st, &rr->issuers) == PS_OK)
			rr->issuers_read = true;
		else
			log_err(NULL, "issuer.reload_failed", "error=%s",
			    log_q(ps_errmsg()));
	}
	return rr;
}

static void
feed_apply(void *arg, const struct store_change *c, size_t n, bool lost,
    void *reread)
{
	struct portal_srv *srv = arg;
	struct reread *rr = reread;
	size_t i, j;

	if (lost) {
		index_clear(srv->index);
		sync_clear(srv);
	}
	for (i = 0; i < n; i++) {
		index_changed(srv->index, &c[i]);
		sync_changed(srv, &c[i]);
	}
	if (rr == NULL)
		return;
	auth_share_apply(srv->share, rr->counts);
	for (i = 0; rr->webapps_read && i < rr->n; i++)
		for (j = 0; j < srv->n_apps; j++)
			if (srv->apps[j].w.id == rr->w[i].id)
				webapp_apply(&srv->apps[j], &rr->w[i]);
	if (rr->issuers_read) {
		/* Tokens and answers learnt under the old issuers go too. */
		portal_issuers_cleanup(&srv->issuers);
		srv->issuers = rr->issuers;
		for (i = 0; i < srv->n_apps; i++)
			sync_forget(srv, srv->apps[i].w.id);
	} else {
		portal_issuers_cleanup(&rr->issuers);
	}
	free(rr->w);
	free(rr);
}

static const struct store_follow_ops feed_ops = { feed_reread, feed_apply };

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

/* Prometheus metrics, to the addresses --metrics-allow names. */
static void
handle_metrics(struct webapp_ctx *app, struct http_req *r)
{
	struct portal_srv *srv = app->srv;
	struct store_pool_health health;

	metrics_set("photosync_sync_in_flight", NULL,
	    (double)sync_in_flight(srv));
	metrics_set("photosync_store_queued", NULL,
	    (double)store_pool_pending(srv->store));
	store_pool_health(srv->store, &health);
	metrics_set("photosync_store_up", NULL, health.up ? 1 : 0);
	metrics_set("photosync_store_unreachable_total", NULL,
	    (double)health.unreachable);
	metrics_set("photosync_store_last_failure_timestamp_seconds", NULL,
	    (double)health.last_failure);
	metrics_set("photosync_image_queued", NULL,
	    (double)work_pending(srv->pool));
	metrics_set("photosync_auth_pending", NULL,
	    (double)auth_guard_pending(srv->guard));
	metrics_set("photosync_auth_throttled", NULL,
	    (double)auth_guard_throttled(srv->guard));
	http_reply_metrics(r, srv->metrics_acl);
}

static void
avatar_signed_in(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	(void)v;
	avatar_handle(app, r);
}

/* The routes behind the sign-in. */
static void
route_signed_in(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	const char *path = http_req_path(r);

	if (strcmp(path, "/_layouts/15/userphoto.aspx") == 0)
		photos_userphoto(app, r, v);
	else if (strncmp(path, LIBRARY_PREFIX, strlen(LIBRARY_PREFIX)) == 0)
		photos_library(app, r, v);
	else if (strcmp(path, "/logout") == 0)
		signin_logout(app, r, v);
	else if (strcmp(path, "/my/changephoto") == 0)
		profile_changephoto(app, r, v);
	else if (http_req_method(r) == HTTP_POST)
		http_reply_error(r, 405, "method not allowed");
	else if (strcmp(path, "/my") == 0 || strcmp(path, "/") == 0 ||
	    strcmp(path, "/my/") == 0)
		profile_my(app, r, v);
	else if (strcmp(path, "/my/person.aspx") == 0)
		profile_person(app, r, v);
	else if (strcmp(path, "/people") == 0)
		profile_people(app, r, v);
	else if (strcmp(path, "/my/photochanged") == 0)
		profile_photochanged(app, r, v);
	else
		reply_error_page(r, v, 404, "There is no such page.");
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
route(struct webapp_ctx *app, struct http_req *r)
{
	const char *path = http_req_path(r);
	enum http_method m = http_req_method(r);

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
		notice_receive(app, r);
		return;
	}
	if (strcmp(path, "/login") == 0) {
		http_req_set_route(r, "login");
		signin_login(app, r);
		return;
	}
	if (m != HTTP_GET && m != HTTP_HEAD && m != HTTP_POST) {
		http_reply_error(r, 405, "method not allowed");
		return;
	}
	if (strncmp(path, "/avatar/", 8) == 0) {
		/* Avatars: anyone, or signed-in users (avatar_anyone). */
		http_req_set_route(r, "avatar");
		if (app->w.avatar_anyone)
			avatar_handle(app, r);
		else
			signin_request(app, r, avatar_signed_in);
		return;
	}
	if (strcmp(path, "/_layouts/15/userphoto.aspx") == 0)
		http_req_set_route(r, "userphoto");
	else if (strncmp(path, LIBRARY_PREFIX, strlen(LIBRARY_PREFIX)) == 0)
		http_req_set_route(r, "library");
	else
		http_req_set_route(r, "page");
	signin_request(app, r, route_signed_in);
}

/*
 * Bodies over HTTP_SMALL_BODY: only an upload to /my/changephoto sends
 * one, and only once it is signed in (an unknown client's 20 MiB never
 * reaches memory); the sign-in is remembered, so the handler's own costs
 * a lookup.
 */
static void
gate_signed_in(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	(void)app;
	(void)v;
	http_req_body_allow(r, (size_t)IMAGE_MAX_BYTES + 64 * 1024);
}

static void
body_gate(struct http_req *r, void *arg)
{
	struct webapp_ctx *app = route_host(arg, r);

	if (http_req_method(r) == HTTP_POST &&
	    strcmp(http_req_path(r), "/my/changephoto") == 0) {
		http_req_set_route(r, "page");
		signin_request(app, r, gate_signed_in);
		return;
	}
	http_reply_error(r, 413, "this address takes no body over 64 KiB");
}

/*
 * GET /ready, for load balancers (no sign-in): 200 "ready" while this
 * node takes work (it listens once its indexes are loaded, and its store
 * answers a read on the read lane), else 503 and one word: "draining"
 * after SIGTERM, "store" when the store cannot be reached, "busy" when
 * the read lane's queue is full. Answered before the change feed is
 * waited for (a store that cannot be reached must not hold it). A 200 is
 * logged at debug level only: a balancer asks every few seconds.
 */
static void
ready_answer(void *arg, ps_err rc, const char *message)
{
	struct http_req *r = arg;

	if (rc == PS_OK) {
		http_req_quiet(r);
		http_reply(r, 200, PORTAL_TEXT_TYPE, "ready\n", 6);
		return;
	}
	http_req_note(r, "error", message);
	http_reply(r, 503, PORTAL_TEXT_TYPE, "store\n", 6);
}

static void
handle_ready(struct portal_srv *srv, struct http_req *r)
{
	enum http_method m = http_req_method(r);

	http_req_set_route(r, "ready");
	if (m != HTTP_GET && m != HTTP_HEAD) {
		http_reply_header(r, "Allow", "GET, HEAD");
		http_reply_error(r, 405, "method not allowed here");
		return;
	}
	if (srv->draining) {
		http_reply(r, 503, PORTAL_TEXT_TYPE, "draining\n", 9);
		return;
	}
	http_req_defer(r);
	if (store_pool_probe(srv->store, ready_answer, r) != PS_OK)
		http_reply(r, 503, PORTAL_TEXT_TYPE, "busy\n", 5);
}

/* A request that waited for the change feed to be read. */
struct feed_wait {
	struct webapp_ctx	*app;
	struct http_req		*r;
};

static void
feed_resume(void *arg)
{
	struct feed_wait *fw = arg;

	route(fw->app, fw->r);
	free(fw);
}

static void
handle(struct http_req *r, void *arg)
{
	struct webapp_ctx *app = route_host(arg, r);
	struct feed_wait *fw;

	if (strcmp(http_req_path(r), "/ready") == 0) {
		handle_ready(app->srv, r);
		return;
	}
	/* What other processes changed is applied before memory answers. */
	if (store_follower_current(app->srv->follower)) {
		route(app, r);
		return;
	}
	fw = xcalloc(1, sizeof(*fw));
	fw->app = app;
	fw->r = r;
	http_req_defer(r);
	store_follower_wait(app->srv->follower, feed_resume, fw);
}

/* ---- start and stop ---- */

/*
 * Starts a web application's listener (its keys are loaded), or, when
 * an earlier one already listens on the same port, joins it: requests
 * are routed by Host, certificates chosen by server name (SNI).
 */
static ps_err
app_listen(struct webapp_ctx *app, const char *listen_host, int listen_port)
{
	char *tkey = portal_webapp_path(app->srv->ps->dir, app->w.id,
	    "tls-key");
	char *tcert = portal_webapp_path(app->srv->ps->dir, app->w.id,
	    "tls-cert");
	const int sides[3] = { app->w.size_s, app->w.size_m, app->w.size_l };
	struct webapp_ctx *owner = NULL;
	ps_err rc;
	size_t i;

	for (i = 0; (listen_port || app->w.port != 0) &&
	    &app->srv->apps[i] != app; i++)
		if (app->srv->apps[i].http && (listen_port ||
		    app->srv->apps[i].w.port == app->w.port))
			owner = &app->srv->apps[i];
	/* Not serving yet: the placeholders may be drawn here. */
	if ((rc = http_tls_new(tcert, tkey, &app->tls)) != PS_OK ||
	    (rc = placeholder_make(sides, &app->placeholder)) != PS_OK)
		goto out;
	if (owner) {
		http_tls_add_sni(owner->tls, app->w.host, app->tls);
		app->port = owner->port;
	} else {
		app->http = http_server_new(app->srv->base, "portal", handle,
		    app);
		http_server_buffer_logs(app->http);
		http_server_set_body_gate(app->http, body_gate, app);
		if ((rc = http_server_listen(app->http, listen_host ?
		    listen_host : app->w.host, listen_port ? listen_port :
		    app->w.port, app->tls, &app->port)) != PS_OK)
			goto out;
	}
	free(app->base_url);
	/* Behind a load balancer, the URLs given out are the balancer's. */
	app->public_port = listen_port && app->w.port ? app->w.port :
	    app->port;
	app->base_url = setup_https_origin(app->w.host, app->public_port);
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
 * SIGTERM: no new work starts (background syncs stop), every server
 * answers its requests in flight, those waiting on a sync included, and
 * closes; then the loop ends, queued image and store work runs to its
 * end, and the process exits.
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
	struct portal_srv *srv = st->srv;
	size_t i;

	srv->draining = true;
	for (i = 0; i < srv->n_apps; i++) {
		background_stop(&srv->apps[i]);
		st->left += srv->apps[i].http != NULL;
	}
	if (st->left == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	for (i = 0; i < srv->n_apps; i++)
		if (srv->apps[i].http)
			http_server_drain(srv->apps[i].http, serve_drained, st);
}

/*
 * SIGHUP: every web application's TLS certificate and key are read
 * again, and put in use only when all of them are valid, so that a bad
 * file refuses the whole reload; connections accepted from then on get
 * the new ones, open ones keep theirs. Small local files, read on the
 * loop as at start-up: an admin's rare act.
 */
struct serve_reload {
	struct portal_srv	*srv;
	struct http_signals	*sigs;
};

static void
serve_reload(void *arg)
{
	struct serve_reload *sr = arg;
	struct portal_srv *srv = sr->srv;
	size_t i;

	for (i = 0; i < srv->n_apps; i++)
		if (srv->apps[i].tls && http_tls_reread(srv->apps[i].tls) !=
		    PS_OK) {
			while (i-- > 0)
				if (srv->apps[i].tls)
					http_tls_drop(srv->apps[i].tls);
			http_signals_reloaded(sr->sigs, PS_ECRYPTO);
			return;
		}
	for (i = 0; i < srv->n_apps; i++)
		if (srv->apps[i].tls)
			http_tls_swap(srv->apps[i].tls);
	http_signals_reloaded(sr->sigs, PS_OK);
}

ps_err
portal_serve(struct portal_state *ps, const char *listen_host,
    int listen_port, const char *port_file, const char *metrics_allow)
{
	struct portal_srv srv = { 0 };
	struct serve_stop stop = { .srv = &srv };
	struct serve_reload reload = { .srv = &srv };
	struct dir_passwords *dir_pw;
	struct http_signals *sigs = NULL;
	char *db = store_locate(ps->dir, PORTAL_DB);
	struct buf ports;
	int64_t head = 0;
	size_t i;
	ps_err rc;

	signal(SIGPIPE, SIG_IGN);
	buf_init(&ports, 4096);
	/* The feed's head first: nothing committed after it is missed. */
	if ((rc = store_feed_head(ps->store, &head)) != PS_OK ||
	    (rc = portal_srv_init(&srv, ps, NULL)) != PS_OK ||
	    (rc = metrics_acl_parse(metrics_allow, &srv.metrics_acl)) !=
	    PS_OK)
		goto out;
	if ((srv.guard = auth_guard_new(srv.base, NULL)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	srv.dir_passwords = dir_passwords_new();
	auth_guard_set_external(srv.guard, dir_passwords_check,
	    srv.dir_passwords);
	/* Without the store's key the node throttles alone (docs/scaling.md). */
	if (auth_share_new(srv.base, ps->store, srv.store, srv.guard,
	    &srv.share) != PS_OK)
		log_warn(NULL, "auth.share_off", "error=%s", log_q(ps_errmsg()));
	metrics_declare("photosync_photos_served_total", "counter",
	    "Photos and placeholders served, by kind.");
	metrics_declare("photosync_photos_revalidated_total", "counter",
	    "Photo requests answered 304.");
	metrics_declare("photosync_notifications_received_total", "counter",
	    "Change notices from the master, by result.");
	metrics_declare("photosync_busy_total", "counter",
	    "Requests answered 503 because a queue was full.");
	metrics_declare("photosync_store_queued", "gauge",
	    "Store jobs queued or running on the store's lanes.");
	metrics_declare("photosync_store_up", "gauge",
	    "1 when the last store job reached the store, 0 when not.");
	metrics_declare("photosync_store_unreachable_total", "counter",
	    "Store jobs that ended without reaching the store.");
	metrics_declare("photosync_store_last_failure_timestamp_seconds",
	    "gauge", "When a store job last failed to reach the store "
	    "(Unix time; 0: never).");
	metrics_declare("photosync_image_queued", "gauge",
	    "Image jobs rendering or waiting for a worker.");
	srv.follower = store_follower_new(srv.base, srv.store, db, head,
	    &feed_ops, &srv);
	for (i = 0; i < srv.n_apps; i++) {
		if ((rc = app_listen(&srv.apps[i], listen_host,
		    listen_port)) != PS_OK)
			goto out;
		buf_addf(&ports, "%d\n", srv.apps[i].port);
		background_start(&srv.apps[i]);
	}
	srv.directory_ops = xcalloc(1, sizeof(*srv.directory_ops));
	if ((srv.directory = dir_schedule_start(srv.base, db, STORE_PORTAL,
	    "users", portal_directory_ops_for, srv.directory_ops)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	if (port_file && (rc = file_write_atomic(port_file, ports.b_data,
	    ports.b_len, 0600)) != PS_OK)
		goto out;
	fflush(stdout);
	sigs = http_signals_watch(srv.base, serve_stop, &stop);
	reload.sigs = sigs;
	http_signals_on_reload(sigs, serve_reload, &reload);
	/* Every port answers: the kernel queues connections from here on. */
	service_notify("READY=1");
	event_base_dispatch(srv.base);
	rc = PS_OK;
out:
	http_signals_free(sigs);
	dir_schedule_stop(srv.directory);
	free(srv.directory_ops);
	for (i = 0; i < srv.n_apps; i++) {
		background_stop(&srv.apps[i]);
		http_server_free(srv.apps[i].http);
		srv.apps[i].http = NULL;
	}
	for (i = 0; i < srv.n_apps; i++)
		app_unlisten(&srv.apps[i]);
	store_follower_free(srv.follower);
	metrics_acl_free(srv.metrics_acl);
	avatar_shutdown();
	dir_pw = srv.dir_passwords;
	portal_srv_cleanup(&srv);
	/* After the guard, whose threads check with it. */
	dir_passwords_free(dir_pw);
	buf_cleanup(&ports);
	free(db);
	return rc;
}
