/*
 * On-demand sync of one user's photo from the master, as DESIGN §5 says:
 *
 *   owner's request -> windows -> Autodiscover (SOAP GetUserSettings) ->
 *   GetUserPhoto HR648x648 with an S2S token and If-None-Match ->
 *   200: render S/M/L on a worker, store atomically with a new ETag
 *   304: timestamps only; 404: no photo (placeholder); else: error
 *   recorded, the cached photo served.
 *
 * Single-flight per user and web application: requests arriving while a
 * sync runs wait for it, each at most SYNC_WAIT_MS, then get what is
 * stored while the sync finishes. Everything runs on the event loop except
 * the image work; the loop never waits on the network or an image.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "metrics/metrics.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "token.h"
#include "work/work.h"
#include "xfer/xfer.h"

#define SYNC_TIMEOUT_MS		10000
#define SYNC_MAX_PHOTO		(8u * 1024 * 1024)
#define SYNC_MAX_XML		(512u * 1024)
#define AD_CACHE_TTL		3600

/* What Autodiscover said about one address, kept AD_CACHE_TTL seconds. */
struct ad_cache_entry {
	struct ad_cache_entry	*next;
	int64_t			 webapp;
	char			 email[256];
	char			*photos_url;
	char			*ecp_photo_url;
	int64_t			 expires;
};

struct sync_waiter {
	struct sync_waiter	*next;
	struct sync_job		*job;
	struct event		*timer;	/* NULL: no deadline */
	sync_wait_fn		 fn;
	void			*arg;
};

struct sync_job {
	struct sync_job		*next;
	struct webapp_ctx	*app;
	char			 account[256];
	char			 email[256];
	char			 reqid[80];
	struct sync_waiter	*waiters;
	struct store_sync	 state;
	struct sync_outcome	 outcome;
	bool			 have_master_photo;
	char			*photos_url;
	char			*ecp_photo_url;
	char			 issuer_realm[64];
	bool			 discover_only;	/* stop after Autodiscover */
	int64_t			 started_ms;
	/* the render, done on a worker */
	struct buf		 photo;
	char			 new_master_etag[128];
	struct image_jpeg	 out[4];	/* S, M, L, high resolution */
	ps_err			 render_rc;
	char			 render_err[256];
};

static void job_finish(struct sync_job *);

/* ---- waiters ---- */

static void
waiter_free(struct sync_waiter *w)
{
	if (w->timer)
		event_free(w->timer);
	free(w);
}

static void
waiter_unlink(struct sync_waiter *w)
{
	struct sync_waiter **p;

	for (p = &w->job->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
}

static void
waiter_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct sync_waiter *w = arg;

	(void)fd;
	(void)what;
	log_info(w->job->reqid, "sync.wait_deadline", "account=%s "
	    "waited_ms=%d", log_q(w->job->account), SYNC_WAIT_MS);
	waiter_unlink(w);
	w->fn(w->arg, NULL);
	waiter_free(w);
}

static void
waiter_add(struct sync_job *job, sync_wait_fn fn, void *arg, bool deadline)
{
	struct sync_waiter *w = xcalloc(1, sizeof(*w));
	struct timeval tv = { SYNC_WAIT_MS / 1000,
	    (SYNC_WAIT_MS % 1000) * 1000 };

	w->job = job;
	w->fn = fn;
	w->arg = arg;
	if (deadline) {
		w->timer = evtimer_new(job->app->srv->base, waiter_deadline,
		    w);
		evtimer_add(w->timer, &tv);
	}
	w->next = job->waiters;
	job->waiters = w;
}

const char *
sync_result_name(enum sync_result r)
{
	switch (r) {
	case SYNC_UPDATED: return "updated";
	case SYNC_UNCHANGED: return "unchanged";
	case SYNC_NO_PHOTO: return "no_photo";
	case SYNC_NO_MAILBOX: return "no_mailbox";
	case SYNC_BUSY: return "busy";
	case SYNC_FAILED: return "failed";
	}
	return "unknown";
}

void
sync_cancel_wait(struct portal_srv *srv, void *arg)
{
	struct sync_job *j;
	struct sync_waiter *w;

	for (j = srv->jobs; j; j = j->next)
		for (w = j->waiters; w; w = w->next)
			if (w->arg == arg) {
				waiter_unlink(w);
				waiter_free(w);
				return;
			}
}

/* ---- Autodiscover cache ---- */

static struct ad_cache_entry *
ad_cache_find(struct portal_srv *srv, int64_t webapp, const char *email)
{
	struct ad_cache_entry *e;
	int64_t now = time_now();

	for (e = srv->ad_cache; e; e = e->next)
		if (e->webapp == webapp && strcmp(e->email, email) == 0)
			return e->expires > now ? e : NULL;
	return NULL;
}

static void
ad_cache_put(struct portal_srv *srv, int64_t webapp, const char *email,
    const char *photos_url, const char *ecp_url)
{
	struct ad_cache_entry *e;

	for (e = srv->ad_cache; e; e = e->next)
		if (e->webapp == webapp && strcmp(e->email, email) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->webapp = webapp;
		str_copy(e->email, email, sizeof(e->email));
		e->next = srv->ad_cache;
		srv->ad_cache = e;
	}
	free(e->photos_url);
	free(e->ecp_photo_url);
	e->photos_url = xstrdup(photos_url);
	e->ecp_photo_url = xstrdup(ecp_url);
	e->expires = time_now() + AD_CACHE_TTL;
}

/* ---- job lifecycle ---- */

static void
job_free(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;
	struct sync_job **p;
	int i;

	for (p = &srv->jobs; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	free(job->photos_url);
	free(job->ecp_photo_url);
	buf_cleanup(&job->photo);
	for (i = 0; i < 4; i++)
		image_jpeg_free(&job->out[i]);
	free(job);
}

/* Tells every waiter, then frees the job. */
static void
job_finish(struct sync_job *job)
{
	struct sync_waiter *w;
	char labels[64];

	if (!job->discover_only) {
		snprintf(labels, sizeof(labels), "result=\"%s\"",
		    sync_result_name(job->outcome.result));
		metrics_add("photosync_syncs_total", labels, 1);
	}
	while ((w = job->waiters) != NULL) {
		job->waiters = w->next;
		w->fn(w->arg, &job->outcome);
		waiter_free(w);
	}
	job_free(job);
}

/*
 * A failed sync: the error time and reason are recorded (the error window
 * starts), the cached photo stays. `has_mailbox` 0 records "no mailbox",
 * -1 leaves what was known.
 */
static void
job_error(struct sync_job *job, const char *step, const char *reason,
    int has_mailbox)
{
	struct store *st = job->app->srv->ps->store;

	if (job->outcome.result != SYNC_BUSY)
		job->outcome.result = has_mailbox == 0 ? SYNC_NO_MAILBOX :
		    SYNC_FAILED;
	snprintf(job->outcome.reason, sizeof(job->outcome.reason), "%s: %s",
	    step, reason);
	job->state.last_error = time_now();
	snprintf(job->state.reason, sizeof(job->state.reason), "%s: %s",
	    step, reason);
	if (has_mailbox >= 0)
		job->state.has_mailbox = has_mailbox;
	if (store_sync_put(st, job->app->w.id, job->account, &job->state) !=
	    PS_OK)
		log_err(job->reqid, "sync.state_not_saved", "account=%s "
		    "error=%s", log_q(job->account), log_q(ps_errmsg()));
	/* No mailbox is an answer, not a fault. */
	log_event(has_mailbox == 0 ? LOG_INFO : LOG_WARN, job->reqid,
	    "sync.failed", "account=%s email=%s step=%s reason=%s ms=%lld",
	    log_q(job->account), log_q(job->email), step, log_q(reason),
	    (long long)(time_mono_ms() - job->started_ms));
	job_finish(job);
}

static void
job_success(struct sync_job *job, enum sync_result result)
{
	struct store *st = job->app->srv->ps->store;
	const char *outcome = sync_result_name(result);

	job->outcome.result = result;
	job->state.last_success = time_now();
	job->state.last_error = 0;
	job->state.reason[0] = '\0';
	job->state.has_mailbox = 1;
	if (store_sync_put(st, job->app->w.id, job->account, &job->state) !=
	    PS_OK)
		log_err(job->reqid, "sync.state_not_saved", "account=%s "
		    "error=%s", log_q(job->account), log_q(ps_errmsg()));
	log_info(job->reqid, "sync.done", "account=%s email=%s outcome=%s "
	    "ms=%lld", log_q(job->account), log_q(job->email), outcome,
	    (long long)(time_mono_ms() - job->started_ms));
	job_finish(job);
}

/* ---- tokens ---- */

/*
 * Tokens are reused until shortly before they expire (DESIGN §5): one per
 * web application, user and target authority. They are secrets: wiped
 * when dropped, never logged.
 */
#define TOKEN_REUSE_MARGIN	300

struct token_cache_entry {
	struct token_cache_entry *next;
	int64_t			 webapp;
	char			 email[256];
	char			 authority[300];
	char			 realm[64];
	char			*token;
	int64_t			 expires;
};

static void
token_entry_free(struct token_cache_entry *e)
{
	xfree_secret(e->token, strlen(e->token));
	free(e);
}

/* Forgets the tokens and Autodiscover answers of one web application. */
void
sync_forget(struct portal_srv *srv, int64_t webapp)
{
	struct token_cache_entry **tp = &srv->tokens, *t;
	struct ad_cache_entry **ap = &srv->ad_cache, *a;

	while ((t = *tp) != NULL) {
		if (t->webapp == webapp) {
			*tp = t->next;
			token_entry_free(t);
		} else {
			tp = &t->next;
		}
	}
	while ((a = *ap) != NULL) {
		if (a->webapp == webapp) {
			*ap = a->next;
			free(a->photos_url);
			free(a->ecp_photo_url);
			free(a);
		} else {
			ap = &a->next;
		}
	}
}

static char *
token_cached(struct portal_srv *srv, int64_t webapp, const char *email,
    const char *authority, const char *realm)
{
	struct token_cache_entry *e;
	int64_t now = time_now();

	for (e = srv->tokens; e; e = e->next)
		if (e->webapp == webapp && strcmp(e->email, email) == 0 &&
		    strcmp(e->authority, authority) == 0 &&
		    strcmp(e->realm, realm) == 0 &&
		    e->expires - TOKEN_REUSE_MARGIN > now)
			return xstrdup(e->token);
	return NULL;
}

static void
token_remember(struct portal_srv *srv, int64_t webapp, const char *email,
    const char *authority, const char *realm, const char *token,
    int64_t expires)
{
	struct token_cache_entry **p = &srv->tokens, *e;

	/* Drop the one it replaces and any that expired. */
	while ((e = *p) != NULL) {
		if ((e->webapp == webapp && strcmp(e->email, email) == 0 &&
		    strcmp(e->authority, authority) == 0) ||
		    e->expires <= time_now()) {
			*p = e->next;
			token_entry_free(e);
		} else {
			p = &e->next;
		}
	}
	e = xcalloc(1, sizeof(*e));
	e->webapp = webapp;
	str_copy(e->email, email, sizeof(e->email));
	str_copy(e->authority, authority, sizeof(e->authority));
	str_copy(e->realm, realm, sizeof(e->realm));
	e->token = xstrdup(token);
	e->expires = expires;
	e->next = srv->tokens;
	srv->tokens = e;
}

/*
 * Mints a token acting as the job's user for the server at `url`'s
 * authority. The caller frees *token with xfree_secret().
 */
static ps_err
job_token(struct sync_job *job, const char *url, char **token)
{
	struct webapp_ctx *app = job->app;
	struct portal_token_pick pick;
	ps_err rc;

	/* The issuer, its realm and the audience, as diagnose sees them. */
	if ((rc = portal_token_pick(app->srv->ps->store, url, &pick)) !=
	    PS_OK)
		return rc;
	str_copy(job->issuer_realm, pick.realm, sizeof(job->issuer_realm));
	if ((*token = token_cached(app->srv, app->w.id, job->email,
	    pick.authority, job->issuer_realm)) != NULL)
		return PS_OK;
	if ((rc = portal_token_mint(app, &pick, job->email, token)) ==
	    PS_OK)
		token_remember(app->srv, app->w.id, job->email, pick.authority,
		    job->issuer_realm, *token, time_now() +
		    PORTAL_TOKEN_LIFETIME);
	return rc;
}

/* Builds the headers of an authenticated call; frees with headers_free. */
static char **
auth_headers(const char *token, const char *extra1, const char *extra2)
{
	char **h = xcalloc(4, sizeof(*h));
	int n = 0;

	h[n++] = xasprintf("Authorization: Bearer %s", token);
	if (extra1)
		h[n++] = xstrdup(extra1);
	if (extra2)
		h[n++] = xstrdup(extra2);
	return h;
}

static void
headers_free(char **h)
{
	int i;

	for (i = 0; h[i]; i++)
		xfree_secret(h[i], strlen(h[i]));
	free(h);
}

static ps_err
job_call(struct sync_job *job, const char *method, const char *url,
    const char *body, const char *extra_header, size_t max_bytes,
    xfer_done_fn done)
{
	struct webapp_ctx *app = job->app;
	struct xfer_request xr = { 0 };
	char *token = NULL, **hdrs;
	ps_err rc;

	if (!str_case_prefix(url, "https://") && !(app->w.allow_oauth_http &&
	    str_case_prefix(url, "http://")))
		return ps_errf(PS_EINVAL, "refusing OAuth over plain HTTP to "
		    "%s (allow-oauth-over-http is off)", url);
	if ((rc = job_token(job, url, &token)) != PS_OK)
		return rc;
	hdrs = auth_headers(token, body ? "Content-Type: text/xml; "
	    "charset=utf-8" : NULL, extra_header);
	xfree_secret(token, strlen(token));
	xr.method = method;
	xr.url = url;
	xr.headers = (const char *const *)hdrs;
	xr.body = body;
	xr.body_len = body ? strlen(body) : 0;
	xr.ca_file = app->w.ca_file[0] ? app->w.ca_file : NULL;
	xr.allow_http = app->w.allow_oauth_http;
	xr.timeout_ms = SYNC_TIMEOUT_MS;
	xr.max_bytes = max_bytes;
	xr.reqid = job->reqid;
	rc = xfer_start(app->srv->xfer, &xr, done, job);
	headers_free(hdrs);
	return rc;
}

/* ---- step 3: render and store ---- */

static void
render_run(void *arg)
{
	struct sync_job *job = arg;
	const struct store_webapp *w = &job->app->w;
	const int sides[4] = { w->size_s, w->size_m, w->size_l,
	    PORTAL_HR_SIDE };

	job->render_rc = image_render(job->photo.b_data, job->photo.b_len,
	    &image_default_limits, sides, 4, job->out, NULL);
	if (job->render_rc != PS_OK)
		str_copy(job->render_err, ps_errmsg(), sizeof(job->render_err));
}

static void
render_done(void *arg)
{
	struct sync_job *job = arg;
	struct store *st = job->app->srv->ps->store;
	const unsigned char *data[4];
	size_t len[4];
	unsigned char rnd[16];
	char etag[64];
	ps_err rc, end;
	int i;

	if (job->render_rc != PS_OK) {
		job_error(job, "render", job->render_err, 1);
		return;
	}
	for (i = 0; i < 4; i++) {
		data[i] = job->out[i].data;
		len[i] = job->out[i].len;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), etag);
	str_copy(job->state.master_etag, job->new_master_etag,
	    sizeof(job->state.master_etag));
	job->state.last_success = time_now();
	job->state.last_error = 0;
	job->state.reason[0] = '\0';
	job->state.has_mailbox = 1;
	/* The photo and the state that describes it change together. */
	if ((rc = store_begin(st)) == PS_OK) {
		if ((rc = store_thumb_put(st, job->app->w.id, job->account,
		    "master", etag, data, len)) == PS_OK)
			rc = store_sync_put(st, job->app->w.id, job->account,
			    &job->state);
		end = store_end(st, rc == PS_OK);
		if (rc == PS_OK)
			rc = end;
	}
	if (rc != PS_OK) {
		job_error(job, "store", ps_errmsg(), 1);
		return;
	}
	index_photo_forget(job->app->srv->index, job->app->w.id, job->account);
	log_info(job->reqid, "sync.photo_stored", "account=%s etag=%s "
	    "master_etag=%s bytes=%zu", log_q(job->account), etag,
	    log_q(job->new_master_etag), job->photo.b_len);
	job_success(job, SYNC_UPDATED);
}

/* ---- step 2: GetUserPhoto ---- */

static void
strip_quotes(const char *in, char *out, size_t n)
{
	size_t len;

	if (strncmp(in, "W/", 2) == 0)
		in += 2;
	if (*in == '"')
		in++;
	str_copy(out, in, n);
	len = strlen(out);
	if (len && out[len - 1] == '"')
		out[len - 1] = '\0';
}

static void
photo_done(const struct xfer_response *r, void *arg)
{
	struct sync_job *job = arg;
	struct store *st = job->app->srv->ps->store;
	char reason[300];

	if (r->rc != PS_OK) {
		job_error(job, "GetUserPhoto", r->error, -1);
		return;
	}
	metrics_observe("photosync_master_request_seconds",
	    "call=\"GetUserPhoto\"", (double)r->elapsed_ms / 1000.0);
	log_info(job->reqid, "sync.photo_answer", "account=%s status=%ld "
	    "bytes=%zu ms=%lld", log_q(job->account), r->status,
	    r->body.b_len, (long long)r->elapsed_ms);
	switch (r->status) {
	case 200:
		if (!str_case_prefix(r->content_type, "image/")) {
			snprintf(reason, sizeof(reason), "the answer is %s, "
			    "not an image", r->content_type[0] ?
			    r->content_type : "untyped");
			job_error(job, "GetUserPhoto", reason, 1);
			return;
		}
		strip_quotes(r->etag, job->new_master_etag,
		    sizeof(job->new_master_etag));
		buf_add(&job->photo, r->body.b_data, r->body.b_len);
		work_submit(job->app->srv->pool, render_run, render_done, job);
		return;
	case 304:
		job_success(job, SYNC_UNCHANGED);
		return;
	case 404:
		/* The master has no photo for this user: show none. */
		if (job->have_master_photo) {
			store_thumb_remove(st, job->app->w.id, job->account);
			index_photo_forget(job->app->srv->index,
			    job->app->w.id, job->account);
		}
		job->state.master_etag[0] = '\0';
		job_success(job, SYNC_NO_PHOTO);
		return;
	case 429:
	case 503:
		job->outcome.result = SYNC_BUSY;
		job->outcome.retry_after = r->retry_after;
		snprintf(reason, sizeof(reason), "the master is busy (HTTP "
		    "%ld, retry after %lds)", r->status, r->retry_after);
		job_error(job, "GetUserPhoto", reason, -1);
		return;
	default:
		snprintf(reason, sizeof(reason), "the master answered HTTP %ld",
		    r->status);
		job_error(job, "GetUserPhoto", reason, -1);
	}
}

static void
start_photo(struct sync_job *job)
{
	char *enc = http_encode(job->email), *url, *inm = NULL;
	size_t n = strlen(job->photos_url);
	ps_err rc;

	/* ExternalPhotosUrl is the EWS URL plus "/s" (reference §2.4). */
	url = xasprintf("%.*s/GetUserPhoto?email=%s&size=HR648x648",
	    (int)(n && job->photos_url[n - 1] == '/' ? n - 1 : n),
	    job->photos_url, enc);
	if (job->have_master_photo && job->state.master_etag[0])
		inm = xasprintf("If-None-Match: \"%s\"",
		    job->state.master_etag);
	log_info(job->reqid, "sync.photo_request", "account=%s url=%s "
	    "conditional=%s", log_q(job->account), log_q(url),
	    inm ? "yes" : "no");
	rc = job_call(job, "GET", url, NULL, inm, SYNC_MAX_PHOTO, photo_done);
	free(enc);
	free(url);
	free(inm);
	if (rc != PS_OK)
		job_error(job, "GetUserPhoto", ps_errmsg(), -1);
}

/* ---- step 1: Autodiscover ---- */

static const char *const ad_settings[] = {
	"ExternalPhotosUrl", "InternalPhotosUrl", "ExternalEcpPhotoUrl",
	"InternalEcpPhotoUrl", "ExternalEwsUrl",
};

static void
ad_done(const struct xfer_response *r, void *arg)
{
	struct sync_job *job = arg;
	struct ad_user_settings us = { 0 };
	char reason[300];

	if (r->rc != PS_OK) {
		job_error(job, "autodiscover", r->error, -1);
		return;
	}
	metrics_observe("photosync_master_request_seconds",
	    "call=\"Autodiscover\"", (double)r->elapsed_ms / 1000.0);
	if (r->status == 429 || r->status == 503) {
		job->outcome.result = SYNC_BUSY;
		job->outcome.retry_after = r->retry_after;
	}
	if (r->status != 200) {
		snprintf(reason, sizeof(reason), "Autodiscover answered HTTP "
		    "%ld", r->status);
		job_error(job, "autodiscover", reason, -1);
		return;
	}
	if (autodiscover_soap_parse(r->body.b_data, r->body.b_len, &us) !=
	    PS_OK) {
		job_error(job, "autodiscover", ps_errmsg(), -1);
		return;
	}
	if (us.error_code && strcmp(us.error_code, "NoError") != 0) {
		snprintf(reason, sizeof(reason), "no mailbox: Autodiscover "
		    "says %s (%s)", us.error_code, us.error_message ?
		    us.error_message : "");
		ad_user_settings_cleanup(&us);
		job_error(job, "autodiscover", reason, 0);
		return;
	}
	if (us.photos_url == NULL || us.ecp_photo_url == NULL) {
		/* The original logs "PhotosUrl or EcpPhotoUrl is null (from
		 * AutoDiscover)"; it treats the user as having no mailbox. */
		log_warn(job->reqid, "sync.autodiscover_incomplete",
		    "account=%s photos_url=%s ecp_photo_url=%s message=%s",
		    log_q(job->account), us.photos_url ? "set" : "null",
		    us.ecp_photo_url ? "set" : "null",
		    log_q("PhotosUrl or EcpPhotoUrl is null (from "
		    "AutoDiscover)"));
		ad_user_settings_cleanup(&us);
		job_error(job, "autodiscover", "PhotosUrl or EcpPhotoUrl is "
		    "null (from AutoDiscover): no mailbox", 0);
		return;
	}
	log_info(job->reqid, "sync.autodiscover_answer", "account=%s "
	    "photos_url=%s ecp_photo_url=%s", log_q(job->account),
	    log_q(us.photos_url), log_q(us.ecp_photo_url));
	ad_cache_put(job->app->srv, job->app->w.id, job->email, us.photos_url,
	    us.ecp_photo_url);
	job->photos_url = xstrdup(us.photos_url);
	job->ecp_photo_url = xstrdup(us.ecp_photo_url);
	ad_user_settings_cleanup(&us);
	if (job->discover_only) {
		/* Only the question "which mailbox?"; no photo was fetched. */
		job->state.has_mailbox = 1;
		store_sync_put(job->app->srv->ps->store, job->app->w.id,
		    job->account, &job->state);
		job_finish(job);
		return;
	}
	start_photo(job);
}

static void
start_autodiscover(struct sync_job *job)
{
	const struct store_webapp *w = &job->app->w;
	const char *domain = strchr(job->email, '@') + 1;
	char *url;
	struct buf body;
	ps_err rc;

	if (w->autodiscover_domain[0])
		url = xasprintf("https://%s/autodiscover/autodiscover.svc",
		    w->autodiscover_domain);
	else
		url = xasprintf("https://autodiscover.%s/autodiscover/"
		    "autodiscover.svc", domain);
	buf_init(&body, 64 * 1024);
	log_info(job->reqid, "sync.autodiscover_request", "account=%s "
	    "url=%s", log_q(job->account), log_q(url));
	rc = autodiscover_soap_request(&body, url, job->email, ad_settings,
	    sizeof(ad_settings) / sizeof(*ad_settings));
	if (rc == PS_OK)
		rc = job_call(job, "POST", url, buf_str(&body), NULL,
		    SYNC_MAX_XML, ad_done);
	buf_cleanup(&body);
	free(url);
	if (rc != PS_OK)
		job_error(job, "autodiscover", ps_errmsg(), -1);
}

/* ---- entry ---- */

static struct sync_job *
job_find(struct portal_srv *srv, struct webapp_ctx *app, const char *account)
{
	struct sync_job *job;

	for (job = srv->jobs; job; job = job->next)
		if (job->app == app && strcmp(job->account, account) == 0)
			return job;
	return NULL;
}

static struct sync_job *
job_new(struct webapp_ctx *app, const struct store_user *owner,
    const char *reqid, const struct store_sync *state)
{
	struct portal_srv *srv = app->srv;
	struct store_thumb t = { 0 };
	struct sync_job *job = xcalloc(1, sizeof(*job));

	job->app = app;
	str_copy(job->account, owner->account, sizeof(job->account));
	str_copy(job->email, owner->email, sizeof(job->email));
	str_copy(job->reqid, reqid, sizeof(job->reqid));
	job->state = *state;
	job->outcome.result = SYNC_FAILED;
	job->outcome.retry_after = -1;
	job->started_ms = time_mono_ms();
	buf_init(&job->photo, SYNC_MAX_PHOTO);
	if (store_thumb_get(srv->ps->store, app->w.id, owner->account, STORE_S,
	    &t) == PS_OK) {
		job->have_master_photo = strcmp(t.source, "master") == 0;
		store_thumb_cleanup(&t);
	}
	job->next = srv->jobs;
	srv->jobs = job;
	return job;
}

enum sync_start
sync_request(struct webapp_ctx *app, const struct store_user *owner,
    const char *reqid, int flags, sync_wait_fn fn, void *arg)
{
	struct portal_srv *srv = app->srv;
	const struct store_webapp *w = &app->w;
	struct ad_cache_entry *ad;
	struct sync_job *job;
	struct store_sync state;
	int64_t now = time_now();

	if (!w->photo_import)
		return SYNC_OFF;
	if ((job = job_find(srv, app, owner->account)) != NULL &&
	    !job->discover_only) {
		log_info(reqid, "sync.joined", "account=%s leader=%s",
		    log_q(owner->account), log_q(job->reqid));
		waiter_add(job, fn, arg, flags & SYNC_DEADLINE);
		return SYNC_STARTED;
	}
	if (store_sync_get(srv->ps->store, w->id, owner->account, &state) !=
	    PS_OK)
		return SYNC_NOT_DUE_ERROR;
	if (!(flags & SYNC_FORCE) && state.last_success &&
	    now - state.last_success < w->photo_expiration) {
		log_debug(reqid, "sync.fresh", "account=%s age=%lld",
		    log_q(owner->account),
		    (long long)(now - state.last_success));
		return SYNC_NOT_DUE_FRESH;
	}
	if (!(flags & SYNC_FORCE) && state.last_error &&
	    now - state.last_error < w->photo_error_expiration) {
		log_debug(reqid, "sync.error_window", "account=%s age=%lld",
		    log_q(owner->account), (long long)(now - state.last_error));
		return SYNC_NOT_DUE_ERROR;
	}
	job = job_new(app, owner, reqid, &state);
	waiter_add(job, fn, arg, flags & SYNC_DEADLINE);
	log_info(reqid, "sync.start", "account=%s email=%s last_success=%lld "
	    "last_error=%lld forced=%s", log_q(job->account), log_q(job->email),
	    (long long)state.last_success, (long long)state.last_error,
	    (flags & SYNC_FORCE) ? "yes" : "no");
	ad = ad_cache_find(srv, w->id, owner->email);
	if (ad) {
		job->photos_url = xstrdup(ad->photos_url);
		job->ecp_photo_url = xstrdup(ad->ecp_photo_url);
		start_photo(job);
	} else {
		start_autodiscover(job);
	}
	return SYNC_STARTED;
}

/* ---- "does this user have a mailbox?" ---- */

struct discover_wait {
	struct webapp_ctx	*app;
	char			 account[256];
	char			 email[256];
	sync_discover_fn	 fn;
	void			*arg;
};

static void
discover_answer(struct discover_wait *dw)
{
	struct ad_cache_entry *ad = ad_cache_find(dw->app->srv, dw->app->w.id,
	    dw->email);
	struct store_sync state;

	if (ad) {
		dw->fn(dw->arg, 1, ad->ecp_photo_url, NULL);
		return;
	}
	store_sync_get(dw->app->srv->ps->store, dw->app->w.id, dw->account,
	    &state);
	if (state.has_mailbox == 0)
		dw->fn(dw->arg, 0, NULL, state.reason);
	else
		dw->fn(dw->arg, -1, NULL, state.reason[0] ? state.reason :
		    "the mail server could not be asked");
}

static void
discover_done(void *arg, const struct sync_outcome *o)
{
	struct discover_wait *dw = arg;

	(void)o;
	discover_answer(dw);
	free(dw);
}

void
sync_discover(struct webapp_ctx *app, const struct store_user *user,
    const char *reqid, sync_discover_fn fn, void *arg)
{
	struct discover_wait *dw = xcalloc(1, sizeof(*dw));
	struct sync_job *job;
	struct store_sync state;

	dw->app = app;
	str_copy(dw->account, user->account, sizeof(dw->account));
	str_copy(dw->email, user->email, sizeof(dw->email));
	dw->fn = fn;
	dw->arg = arg;
	if (ad_cache_find(app->srv, app->w.id, user->email)) {
		discover_done(dw, NULL);
		return;
	}
	if ((job = job_find(app->srv, app, user->account)) != NULL) {
		waiter_add(job, discover_done, dw, true);
		return;
	}
	store_sync_get(app->srv->ps->store, app->w.id, user->account, &state);
	job = job_new(app, user, reqid, &state);
	job->discover_only = true;
	waiter_add(job, discover_done, dw, true);
	log_info(reqid, "sync.discover", "account=%s email=%s",
	    log_q(job->account), log_q(job->email));
	start_autodiscover(job);
}

size_t
sync_in_flight(const struct portal_srv *srv)
{
	const struct sync_job *j;
	size_t n = 0;

	for (j = srv->jobs; j; j = j->next)
		n++;
	return n;
}

void
sync_shutdown(struct portal_srv *srv)
{
	struct ad_cache_entry *e;

	/* Transfers were cancelled with the xfer loop; drop the jobs. */
	while (srv->jobs) {
		struct sync_job *job = srv->jobs;
		struct sync_waiter *w;

		while ((w = job->waiters) != NULL) {
			job->waiters = w->next;
			waiter_free(w);
		}
		job_free(job);
	}
	while ((e = srv->ad_cache) != NULL) {
		srv->ad_cache = e->next;
		free(e->photos_url);
		free(e->ecp_photo_url);
		free(e);
	}
	while (srv->tokens) {
		struct token_cache_entry *t = srv->tokens;

		srv->tokens = t->next;
		token_entry_free(t);
	}
}
