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
 * sync runs wait for it, each at most the web application's owner wait
 * (`--owner-wait`, 2 s unless set), then get what is
 * stored while the sync finishes. Nothing here waits: transfers run on
 * the loop through libcurl's multi interface, images on the workers, and
 * the store on its lanes. The sync state of recent users is kept in
 * memory (a miss is read on the read lane), written through on the write
 * lane; when a write fails (a full disk), memory keeps the new state, so
 * the windows still hold. Autodiscover answers and S2S tokens are kept
 * in bounded maps with constant-time lookups.
 *
 * Single-flight across the nodes sharing a store: before it calls the
 * master, a sync takes the store's lease "sync/<webapp>/<account>" on the
 * write lane (and reads the stored state again, under it). A node that
 * does not get the lease calls nobody: its job waits (its requests with
 * their owner wait, as for a slow master) until the change feed brings
 * the other node's outcome, or the lease expires (SYNC_LEASE_S: its
 * holder died), when it tries again. The lease is given back in the
 * transaction that stores the outcome; a node killed mid-sync leaves it
 * to expire. The tries made while one is on the write lane go together
 * in one transaction, as outcomes do. So
 * `portal refresh` runs and the background refresh of several nodes,
 * walking the same users, fetch each once: the state read under the
 * lease shows a sync made since (by a forced run: since its pass began,
 * portal_srv.pass_started).
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "mastercall.h"
#include "metrics/metrics.h"
#include "portal_int.h"
#include "store/pool.h"
#include "token.h"
#include "work/work.h"
#include "xfer/xfer.h"

#define AD_CACHE_TTL		3600
#define AD_CACHE_MAX		65536	/* entries */
#define STATES_MAX		65536	/* entries */
#define SYNC_WRITE_BATCH	256	/* outcomes per transaction */
#define REFRESH_WRITE_MIN	16	/* outcomes a refresh writes at once */
#define LEASE_BATCH		64	/* lease tries per transaction */
#define HOLDS_MAX		1024	/* master hosts held back */
#define HOLD_DEFAULT_S		60	/* a 503 without Retry-After */
#define HOLD_MAX_S		3600	/* the longest Retry-After kept */
/*
 * How long a sync's lease holds: a few times the longest call to the
 * master (two calls, Autodiscover and GetUserPhoto, fit in it twice
 * over with the render and the write).
 */
#define SYNC_LEASE_S		(3 * MCALL_TIMEOUT_MS / 1000)

/* What Autodiscover said about one address, kept AD_CACHE_TTL seconds. */
struct ad_entry {
	uint64_t	 gen;		/* the web application's caches_gen */
	int64_t		 expires;
	char		*mailbox;	/* the address Autodiscover ended at */
	char		*photos_url;
	char		*ecp_photo_url;
};

/* A user's sync state, as the store has it (or will: unsaved). */
struct sync_entry {
	struct store_sync	s;
	bool			have_master_photo;
};

struct sync_waiter {
	struct sync_waiter	*next;
	struct sync_job		*job;
	struct event		*timer;	/* NULL: no deadline */
	int			 wait_ms;	/* the deadline's */
	sync_wait_fn		 fn;
	void			*arg;
};

/* What a job writes when it ends. */
enum job_write { WRITE_STATE, WRITE_PHOTO, WRITE_REMOVE };

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
	/* Autodiscover: whom it is asked about and where, and the redirects
	 * followed; GetUserPhoto asks for the address it ended at */
	char			 mailbox[256];
	char			*ad_url;
	struct ad_hops		 hops;
	bool			 discover_only;	/* stop after Autodiscover */
	bool			 again;		/* a change notice came while
						   it ran: one more after it */
	bool			 at_master;	/* counted in srv->at_master */
	struct sync_job		*master_wait_next;
	int64_t			 started_ms;
	int64_t			 started;	/* time_now() */
	/* the lease shared with other nodes (before calling the master) */
	bool			 forced;	/* SYNC_FORCE */
	bool			 leased;	/* this job holds it */
	int64_t			 leased_at;	/* time_now() when taken */
	bool			 remote;	/* another node holds it */
	bool			 elsewhere;	/* ended by another node's */
	bool			 lease_busy;	/* a try is pending or made */
	bool			 lease_again;	/* the feed moved meanwhile */
	char			 lease[320];	/* lease_name(), named once */
	struct sync_job		*lease_next;	/* srv->lease_pending */
	struct event		*lease_timer;	/* when the lease expires */
	/* the render, done on a worker */
	struct buf		 photo;
	char			 new_master_etag[128];
	bool			 photo_hidden;	/* the master's mark, on it */
	struct image_jpeg	 out[4];	/* S, M, L, high resolution */
	ps_err			 render_rc;
	char			 render_err[256];
	/* the write, done on the store's write lane */
	struct sync_job		*write_next;	/* srv->write_pending */
	enum job_write		 write;
	bool			 write_release;	/* gives the lease back too */
	char			 etag[64];
	ps_err			 write_rc;
	char			 write_err[256];
};

static void job_finish(struct sync_job *);
static void job_busy(struct sync_job *, const char *);
static void job_call_master(struct sync_job *);
static void write_next(struct portal_srv *);
static void lease_try(struct sync_job *);
static void lease_next(struct portal_srv *);

/* The job will call the master no more (idempotent): one waiting may. */
static void
job_master_done(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;
	struct sync_job *next;

	if (!job->at_master)
		return;
	job->at_master = false;
	srv->at_master--;
	if ((next = srv->master_wait) == NULL)
		return;
	if ((srv->master_wait = next->master_wait_next) == NULL)
		srv->master_wait_tail = &srv->master_wait;
	if (srv->stopping) {
		job_busy(next, "the server is stopping");
	} else if (next->leased && time_now() - next->leased_at >
	    MCALL_TIMEOUT_MS / 1000) {
		/*
		 * It waited longer than a call may take: its lease is taken
		 * again first (or found taken by another node, which frees
		 * this place), so that it cannot expire during the call.
		 */
		next->at_master = true;
		srv->at_master++;
		lease_try(next);
	} else {
		job_call_master(next);
	}
}

/* ---- the maps ---- */

/* "host[:port]" of an http(s) URL, lower case, into `out`. */
static void
url_host(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://");
	size_t len;

	p = p ? p + 3 : url;
	len = strcspn(p, "/?#");
	if (len >= n)
		len = n - 1;
	memcpy(out, p, len);
	out[len] = '\0';
	str_lower(out);
}

/*
 * A master that answered 503 is asked nothing more (by any user's sync)
 * until its Retry-After passed: seconds left for the host of `url`, 0
 * when it may be called.
 */
static int64_t
master_held(struct portal_srv *srv, const char *url)
{
	char host[300];
	int64_t *until, left;

	url_host(url, host, sizeof(host));
	if ((until = lru_get(srv->master_holds, host)) == NULL)
		return 0;
	if ((left = *until - time_mono_ms()) <= 0) {
		lru_remove(srv->master_holds, host);
		return 0;
	}
	return (left + 999) / 1000;
}

static void
master_hold(struct portal_srv *srv, const char *reqid, const char *url,
    long retry_after)
{
	int64_t *until = xcalloc(1, sizeof(*until));
	long s = retry_after > 0 ? retry_after : HOLD_DEFAULT_S;
	char host[300];

	if (s > HOLD_MAX_S)
		s = HOLD_MAX_S;
	url_host(url, host, sizeof(host));
	*until = time_mono_ms() + (int64_t)s * 1000;
	lru_put(srv->master_holds, host, until, sizeof(*until));
	log_warn(reqid, "sync.master_held", "host=%s wait_s=%ld", log_q(host),
	    s);
}

static void
ad_entry_free(void *p)
{
	struct ad_entry *e = p;

	free(e->mailbox);
	free(e->photos_url);
	free(e->ecp_photo_url);
	free(e);
}

void
sync_caches_init(struct portal_srv *srv)
{
	srv->ad_cache = lru_new(AD_CACHE_MAX * (sizeof(struct ad_entry) +
	    256), ad_entry_free);
	srv->states = lru_new(STATES_MAX * sizeof(struct sync_entry), free);
	srv->master_holds = lru_new(HOLDS_MAX * sizeof(int64_t), free);
	srv->tokens = portal_tokens_new();
	metrics_declare("photosync_syncs_total", "counter",
	    "Syncs from the master by outcome.");
	metrics_declare("photosync_master_request_seconds", "histogram",
	    "Time of a call to the master, by call.");
	metrics_declare("photosync_sync_in_flight", "gauge",
	    "Syncs running.");
	metrics_declare("photosync_master_calls_total", "counter",
	    "Calls to the master by call and result (ok, refused, busy, "
	    "error, timeout, unreachable, too_large).");
}

/*
 * What became of one call to the master, as a word for
 * photosync_master_calls_total: whether it was answered, and if not why,
 * so that an alert can tell a master out of reach from one that answers
 * errors. The histogram above sees only the calls that were answered.
 */
static const char *
master_call_result(const struct xfer_response *r)
{
	if (r->rc == PS_ETIMEOUT)
		return "timeout";
	if (r->rc == PS_ELIMIT)
		return "too_large";
	if (r->rc != PS_OK)
		return "unreachable";	/* DNS, connect, TLS, a cut answer */
	if (r->status == 429 || r->status == 503)
		return "busy";
	if (r->status == 401 || r->status == 403)
		return "refused";
	if (r->status >= 400 && r->status != 404)
		return "error";
	return "ok";
}

static void
master_call_count(const char *call, const struct xfer_response *r)
{
	char labels[96];

	snprintf(labels, sizeof(labels), "call=\"%s\",result=\"%s\"", call,
	    master_call_result(r));
	metrics_add("photosync_master_calls_total", labels, 1);
}

static void
user_key(int64_t webapp, const char *name, char *key, size_t n)
{
	snprintf(key, n, "%" PRId64 "/%s", webapp, name);
	str_lower(key);
}

static struct ad_entry *
ad_cache_find(struct webapp_ctx *app, const char *email)
{
	struct ad_entry *e;
	char key[300];

	user_key(app->w.id, email, key, sizeof(key));
	if ((e = lru_get(app->srv->ad_cache, key)) == NULL)
		return NULL;
	if (e->gen != app->caches_gen || e->expires <= time_now()) {
		lru_remove(app->srv->ad_cache, key);
		return NULL;
	}
	return e;
}

static void
ad_cache_put(struct webapp_ctx *app, const char *email, const char *mailbox,
    const char *photos_url, const char *ecp_url)
{
	struct ad_entry *e = xcalloc(1, sizeof(*e));
	char key[300];

	e->gen = app->caches_gen;
	e->expires = time_now() + AD_CACHE_TTL;
	e->mailbox = xstrdup(mailbox);
	e->photos_url = xstrdup(photos_url);
	e->ecp_photo_url = xstrdup(ecp_url);
	user_key(app->w.id, email, key, sizeof(key));
	lru_put(app->srv->ad_cache, key, e, sizeof(*e) + strlen(mailbox) +
	    strlen(photos_url) + strlen(ecp_url));
}

void
sync_forget(struct portal_srv *srv, int64_t webapp)
{
	size_t i;

	for (i = 0; i < srv->n_apps; i++)
		if (srv->apps[i].w.id == webapp)
			srv->apps[i].caches_gen++;
	lru_clear(srv->tokens);
}

static struct sync_entry *
state_find(struct webapp_ctx *app, const char *account)
{
	char key[300];

	user_key(app->w.id, account, key, sizeof(key));
	return lru_get(app->srv->states, key);
}

static void
state_remember(struct webapp_ctx *app, const char *account,
    const struct store_sync *s, bool have_master_photo)
{
	struct sync_entry *e = xcalloc(1, sizeof(*e));
	char key[300];

	e->s = *s;
	e->have_master_photo = have_master_photo;
	user_key(app->w.id, account, key, sizeof(key));
	lru_put(app->srv->states, key, e, sizeof(*e));
}

/*
 * Whether the photo held is the master's, for a state read from the
 * store: its ETag is kept exactly while its photo is (an upload clears
 * it in the same transaction).
 */
static bool
stored_master_photo(const struct store_sync *s)
{
	return s->master_etag[0] != '\0';
}

static ps_err
preload_one(void *arg, const char *account, const struct store_sync *s)
{
	state_remember(arg, account, s, stored_master_photo(s));
	return PS_OK;
}

ps_err
sync_preload(struct webapp_ctx *app, struct store *st,
    const char *const *accounts, size_t n)
{
	struct store_sync none = { .has_mailbox = -1 };
	ps_err rc;
	size_t i;

	if ((rc = store_sync_each(st, app->w.id, preload_one, app)) != PS_OK)
		return rc;
	for (i = 0; i < n; i++)
		if (state_find(app, accounts[i]) == NULL)
			state_remember(app, accounts[i], &none, false);
	return PS_OK;
}

void
sync_changed(struct portal_srv *srv, const struct store_change *c)
{
	struct sync_job *job;
	char key[300];

	if (c->kind != STORE_CHANGE_SYNC && c->kind != STORE_CHANGE_THUMB)
		return;
	lru_remove(srv->states, c->key);
	srv->states_epoch++;
	/* A job waiting for another node's sync looks at its outcome. */
	for (job = srv->jobs; job; job = job->next) {
		if (!job->remote || c->kind != STORE_CHANGE_SYNC)
			continue;
		user_key(job->app->w.id, job->account, key, sizeof(key));
		if (strcmp(key, c->key) == 0)
			lease_try(job);
	}
}

void
sync_clear(struct portal_srv *srv)
{
	lru_clear(srv->states);
	srv->states_epoch++;
}

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
	    "waited_ms=%d", log_q(w->job->account), w->wait_ms);
	waiter_unlink(w);
	w->fn(w->arg, NULL);
	waiter_free(w);
}

static void
waiter_add(struct sync_job *job, sync_wait_fn fn, void *arg, bool deadline)
{
	struct sync_waiter *w = xcalloc(1, sizeof(*w));
	int ms = job->app->w.owner_wait_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	w->job = job;
	w->wait_ms = ms;
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
	case SYNC_FRESH: return "fresh";
	case SYNC_ERROR_WINDOW: return "error_window";
	}
	return "unknown";
}

/* ---- the lease shared with other nodes ---- */

/* "sync/<webapp>/<account>", the account in lower case. */
static void
lease_name(struct sync_job *job)
{
	snprintf(job->lease, sizeof(job->lease), "sync/%" PRId64 "/%s",
	    job->app->w.id, job->account);
	str_lower(job->lease);
}

struct lease_drop {
	char	name[320];
	int64_t	holder;
};

static void
lease_drop_run(struct store *st, void *arg)
{
	struct lease_drop *d = arg;

	/* Failing, it expires: store.error is logged. */
	(void)store_lease_release(st, d->name, d->holder);
}

/*
 * Gives the job's lease back on the write lane, after the job's outcome
 * (queued before it there); when the lane refuses, it expires.
 */
static void
lease_release(struct sync_job *job)
{
	struct lease_drop *d = xcalloc(1, sizeof(*d));

	job->leased = false;
	str_copy(d->name, job->lease, sizeof(d->name));
	d->holder = store_lease_holder();
	if (store_pool_write(job->app->srv->store, lease_drop_run, free,
	    d) != PS_OK)
		free(d);
}

/*
 * Gives the job's lease back inside the transaction of its outcome (on
 * the write lane): other nodes see the outcome and the lease free
 * together, and the release costs no commit of its own.
 */
static ps_err
lease_give_back(struct store *st, const struct sync_job *job)
{
	return store_lease_release(st, job->lease, store_lease_holder());
}

/* ---- job lifecycle ---- */

static void
job_free(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;
	struct sync_job **p;
	int i;

	job_master_done(job);
	if (job->leased)
		lease_release(job);
	if (job->lease_timer)
		event_free(job->lease_timer);
	for (p = &srv->jobs; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	free(job->photos_url);
	free(job->ecp_photo_url);
	free(job->ad_url);
	ad_hops_cleanup(&job->hops);
	buf_cleanup(&job->photo);
	for (i = 0; i < 4; i++)
		image_jpeg_free(&job->out[i]);
	free(job);
}

static void
again_done(void *arg, const struct sync_outcome *o)
{
	(void)arg;
	(void)o;
}

/*
 * Tells every waiter, then frees the job; when a change notice came while
 * it ran, one more sync follows, since this one may have fetched the
 * photo from before the change.
 */
static void
job_finish(struct sync_job *job)
{
	struct webapp_ctx *app = job->app;
	struct store_user u = { 0 };
	bool again = job->again && !job->discover_only;
	struct sync_waiter *w;
	char labels[64], reqid[80];

	if (!job->discover_only && !job->elsewhere) {
		snprintf(labels, sizeof(labels), "result=\"%s\"",
		    sync_result_name(job->outcome.result));
		metrics_add("photosync_syncs_total", labels, 1);
	}
	job->outcome.ecp_photo_url = job->ecp_photo_url;
	while ((w = job->waiters) != NULL) {
		job->waiters = w->next;
		w->fn(w->arg, &job->outcome);
		waiter_free(w);
	}
	str_copy(u.account, job->account, sizeof(u.account));
	str_copy(u.email, job->email, sizeof(u.email));
	str_copy(reqid, job->reqid, sizeof(reqid));
	job_free(job);
	/* `portal refresh` may have held writes back for this one. */
	write_next(app->srv);
	if (again) {
		log_info(reqid, "sync.again", "account=%s", log_q(u.account));
		sync_request(app, &u, reqid, SYNC_FORCE, again_done, NULL);
	}
}

/*
 * What a discover-only job learnt, merged into a state it did not read:
 * whether there is a mailbox, and an error's time and reason.
 */
static void
discovered_merge(const struct sync_job *job, struct store_sync *s)
{
	if (job->state.has_mailbox >= 0)
		s->has_mailbox = job->state.has_mailbox;
	if (job->state.last_error) {
		s->last_error = job->state.last_error;
		s->retry_after = job->state.retry_after;
		str_copy(s->reason, job->state.reason, sizeof(s->reason));
	}
}

/* The rows of one job's outcome, inside a transaction. */
static ps_err
job_rows(struct store *st, struct sync_job *job)
{
	int64_t webapp = job->app->w.id;
	struct store_sync merged;
	const unsigned char *data[4];
	size_t len[4];
	ps_err rc = PS_OK;
	int i;

	if (job->discover_only) {
		if ((rc = store_sync_get(st, webapp, job->account,
		    &merged)) != PS_OK)
			return rc;
		discovered_merge(job, &merged);
		rc = store_sync_put(st, webapp, job->account, &merged);
		if (rc == PS_OK && job->write_release)
			rc = lease_give_back(st, job);
		return rc;
	}
	switch (job->write) {
	case WRITE_PHOTO:
		for (i = 0; i < 4; i++) {
			data[i] = job->out[i].data;
			len[i] = job->out[i].len;
		}
		rc = store_thumb_put(st, webapp, job->account, "master",
		    job->etag, data, len);
		/* Hidden at the master: its owner alone sees it here too. */
		if (rc == PS_OK)
			rc = store_thumb_hide(st, webapp, job->account,
			    job->photo_hidden);
		break;
	case WRITE_REMOVE:
		rc = store_thumb_remove(st, webapp, job->account);
		if (rc == PS_ENOTFOUND)
			rc = PS_OK;
		break;
	case WRITE_STATE:
		break;
	}
	if (rc == PS_OK)
		rc = store_sync_put(st, webapp, job->account, &job->state);
	if (rc == PS_OK && job->write_release)
		rc = lease_give_back(st, job);
	return rc;
}

/* One job's rows in a transaction of their own. */
static void
job_write_alone(struct store *st, struct sync_job *job)
{
	ps_err rc;

	if ((rc = store_begin(st)) == PS_OK) {
		rc = job_rows(st, job);
		rc = store_end(st, rc == PS_OK) == PS_OK ? rc : PS_ESTORE;
	}
	job->write_rc = rc;
	if (rc != PS_OK)
		str_copy(job->write_err, ps_errmsg(), sizeof(job->write_err));
}

/*
 * The outcomes that ended while the previous batch was written, written
 * together in one transaction (a commit costs the same for one row or
 * many); should one fail, each is written again alone, so that one bad
 * row costs no other its write.
 */
struct write_batch {
	struct portal_srv	*srv;
	struct sync_job		*jobs[SYNC_WRITE_BATCH];
	size_t			 n;
};

static int
job_lease_cmp(const void *a, const void *b)
{
	const struct sync_job *const *x = a, *const *y = b;

	return strcmp((*x)->lease, (*y)->lease);
}

static void
write_run(struct store *st, void *arg)
{
	struct write_batch *wb = arg;
	ps_err rc;
	size_t i;

	/*
	 * In the order of the leases' names, as a lease batch takes them
	 * (store_lease_take_each): a lease refused to another node still
	 * locks its row until that node's commit, so giving leases back in
	 * another order could deadlock with that node's batch.
	 */
	qsort(wb->jobs, wb->n, sizeof(wb->jobs[0]), job_lease_cmp);
	if (wb->n > 1 && (rc = store_begin(st)) == PS_OK) {
		for (i = 0; i < wb->n && rc == PS_OK; i++)
			rc = job_rows(st, wb->jobs[i]);
		if (store_end(st, rc == PS_OK) == PS_OK && rc == PS_OK) {
			for (i = 0; i < wb->n; i++)
				wb->jobs[i]->write_rc = PS_OK;
			return;
		}
	}
	for (i = 0; i < wb->n; i++)
		job_write_alone(st, wb->jobs[i]);
}

static void job_written(struct sync_job *);

static void
write_done(void *arg)
{
	struct write_batch *wb = arg;
	struct portal_srv *srv = wb->srv;
	size_t i;

	srv->writing = false;
	for (i = 0; i < wb->n; i++) {
		/* Not written, the lease is given back on its own. */
		if (wb->jobs[i]->write_rc == PS_OK &&
		    wb->jobs[i]->write_release)
			wb->jobs[i]->leased = false;
		job_written(wb->jobs[i]);
	}
	free(wb);
	write_next(srv);
}

/*
 * Whether `portal refresh` should wait for more outcomes before writing:
 * the write lane is faster than the renders, so each outcome would go
 * alone (1,131 of the 1,480 transactions of a first fetch of 3,001
 * users), and each commit has costs of its own (its b-tree and feed
 * pages again, the WAL's lock and index). It waits until
 * REFRESH_WRITE_MIN are pending or no other sync that holds its lease is
 * left to end. Each
 * user's rows are still one transaction; a crash loses only outcomes
 * not yet written, which the next run fetches again. A server writes at
 * once: its owners wait for the write.
 */
static bool
write_wait_more(struct portal_srv *srv)
{
	const struct sync_job *j;
	size_t pending = 0, jobs = 0;

	if (srv->refresh == NULL)
		return false;
	for (j = srv->write_pending; j != NULL; j = j->write_next)
		if (++pending >= REFRESH_WRITE_MIN)
			return false;
	/*
	 * Only syncs that hold their lease, or are asking for it, will end
	 * soon; one waiting for another process's lease may wait for this
	 * very batch (that process waiting in turn for ours), so it is not
	 * waited for.
	 */
	for (j = srv->jobs; j != NULL; j = j->next)
		if ((j->leased || j->lease_busy) && ++jobs > pending)
			return true;
	return false;
}

/* Starts writing what is pending, unless a batch is being written. */
static void
write_next(struct portal_srv *srv)
{
	struct write_batch *wb;
	struct sync_job *job;
	size_t i;

	if (srv->writing || srv->write_pending == NULL ||
	    write_wait_more(srv))
		return;
	wb = xcalloc(1, sizeof(*wb));
	wb->srv = srv;
	while (wb->n < SYNC_WRITE_BATCH && (job = srv->write_pending) !=
	    NULL) {
		srv->write_pending = job->write_next;
		wb->jobs[wb->n++] = job;
	}
	if (log_enabled(LOG_DEBUG))
		log_debug(NULL, "sync.write_batch", "rows=%zu syncs=%zu", wb->n,
		    sync_in_flight(srv));
	if (store_pool_write(srv->store, write_run, write_done, wb) ==
	    PS_OK) {
		srv->writing = true;
		return;
	}
	for (i = 0; i < wb->n; i++) {
		wb->jobs[i]->write_rc = PS_EBUSY;
		str_copy(wb->jobs[i]->write_err, ps_errmsg(),
		    sizeof(wb->jobs[i]->write_err));
	}
	/* Told after the batch is off the list: they may queue more. */
	for (i = 0; i < wb->n; i++)
		job_written(wb->jobs[i]);
	free(wb);
}

static void
job_written(struct sync_job *job)
{
	struct webapp_ctx *app = job->app;

	if (job->write != WRITE_STATE)
		index_photo_forget(app->srv->index, app->w.id, job->account);
	if (job->write_rc == PS_OK) {
		if (job->write == WRITE_PHOTO)
			log_info(job->reqid, "sync.photo_stored", "account=%s "
			    "etag=%s master_etag=%s bytes=%zu hidden=%s",
			    log_q(job->account), job->etag,
			    log_q(job->new_master_etag), job->photo.b_len,
			    job->photo_hidden ? "yes" : "no");
		job_finish(job);
		return;
	}
	/*
	 * Not saved (the store failed: a full disk, say). Memory keeps the
	 * state, so the windows hold until the store takes writes again.
	 */
	log_err(job->reqid, "sync.state_not_saved", "account=%s error=%s",
	    log_q(job->account), log_q(job->write_err));
	if (job->write == WRITE_PHOTO) {
		job->outcome.result = SYNC_FAILED;
		snprintf(job->outcome.reason, sizeof(job->outcome.reason),
		    "store: %s", job->write_err);
		job->state.last_success = 0;
		job->state.last_error = time_now();
		snprintf(job->state.reason, sizeof(job->state.reason),
		    "store: %s", job->write_err);
		state_remember(app, job->account, &job->state,
		    job->have_master_photo);
	}
	job_finish(job);
}

/*
 * Records the job's state (and photo) in memory at once and in the store
 * behind it; the waiters are told once the store has it (or failed to).
 */
static void
job_save(struct sync_job *job, enum job_write what)
{
	bool master_photo = what == WRITE_PHOTO ? true :
	    what == WRITE_REMOVE ? false : job->have_master_photo;
	struct sync_job **p;
	struct sync_entry *e;

	job_master_done(job);
	job->write = what;
	job->write_release = job->leased;
	if (!job->discover_only)
		state_remember(job->app, job->account, &job->state,
		    master_photo);
	else if ((e = state_find(job->app, job->account)) != NULL)
		discovered_merge(job, &e->s);
	/* Appended: outcomes are written in the order they came. */
	for (p = &job->app->srv->write_pending; *p; p = &(*p)->write_next)
		;
	*p = job;
	write_next(job->app->srv);
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
	if (job->outcome.result != SYNC_BUSY)
		job->outcome.result = has_mailbox == 0 ? SYNC_NO_MAILBOX :
		    SYNC_FAILED;
	snprintf(job->outcome.reason, sizeof(job->outcome.reason), "%s: %s",
	    step, reason);
	job->state.last_error = time_now();
	/* The next call waits for the longer of the window and this. */
	job->state.retry_after = job->outcome.retry_after > 0 ?
	    job->outcome.retry_after : 0;
	snprintf(job->state.reason, sizeof(job->state.reason), "%s: %s",
	    step, reason);
	if (has_mailbox >= 0)
		job->state.has_mailbox = has_mailbox;
	/* No mailbox is an answer, not a fault. */
	log_event(has_mailbox == 0 ? LOG_INFO : LOG_WARN, job->reqid,
	    "sync.failed", "account=%s email=%s step=%s reason=%s ms=%lld",
	    log_q(job->account), log_q(job->email), step, log_q(reason),
	    (long long)(time_mono_ms() - job->started_ms));
	job_save(job, WRITE_STATE);
}

/*
 * This server is too busy to finish the sync now (its image queue is
 * full): nothing is recorded, no window starts; the next request tries
 * again, and meanwhile the cached photo is served.
 */
static void
job_busy(struct sync_job *job, const char *reason)
{
	job->outcome.result = SYNC_BUSY;
	snprintf(job->outcome.reason, sizeof(job->outcome.reason),
	    "this server is busy: %s", reason);
	log_warn(job->reqid, "sync.busy", "account=%s reason=%s",
	    log_q(job->account), log_q(reason));
	job_finish(job);
}

static void
job_success(struct sync_job *job, enum sync_result result,
    enum job_write what)
{
	job->outcome.result = result;
	job->state.last_success = time_now();
	job->state.last_error = 0;
	job->state.retry_after = 0;
	job->state.reason[0] = '\0';
	job->state.has_mailbox = 1;
	log_info(job->reqid, "sync.done", "account=%s email=%s outcome=%s "
	    "ms=%lld", log_q(job->account), log_q(job->email),
	    sync_result_name(result),
	    (long long)(time_mono_ms() - job->started_ms));
	job_save(job, what);
}

/* ---- calls to the master ---- */

/* Sends `m` (built by mastercall.c) for the job; `done` gets the answer. */
static ps_err
job_call(struct sync_job *job, struct mcall *m, xfer_done_fn done)
{
	struct webapp_ctx *app = job->app;
	struct xfer_request xr = { 0 };

	xr.method = m->method;
	xr.url = m->url;
	xr.headers = (const char *const *)m->headers;
	xr.body = m->body.b_len ? m->body.b_data : NULL;
	xr.body_len = m->body.b_len;
	xr.ca_file = app->w.ca_file[0] ? app->w.ca_file : NULL;
	xr.allow_http = app->w.allow_oauth_http;
	xr.timeout_ms = MCALL_TIMEOUT_MS;
	xr.max_bytes = m->max_bytes;
	xr.reqid = job->reqid;
	xr.idempotent = m->idempotent;
	return xfer_start(app->srv->xfer, &xr, done, job);
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
	unsigned char rnd[16];

	if (job->render_rc != PS_OK) {
		job_error(job, "render", job->render_err, 1);
		return;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), job->etag);
	/* The photo and the state that describes it change together. */
	str_copy(job->state.master_etag, job->new_master_etag,
	    sizeof(job->state.master_etag));
	job_success(job, SYNC_UPDATED, WRITE_PHOTO);
}

/* ---- step 2: GetUserPhoto ---- */

static void
photo_done(struct xfer_response *r, void *arg)
{
	struct sync_job *job = arg;
	char reason[300];

	master_call_count("GetUserPhoto", r);
	if (r->rc != PS_OK) {
		job_master_done(job);
		job_error(job, "GetUserPhoto", r->error, -1);
		return;
	}
	metrics_observe("photosync_master_request_seconds",
	    "call=\"GetUserPhoto\"", (double)r->elapsed_ms / 1000.0);
	log_info(job->reqid, "sync.photo_answer", "account=%s status=%ld "
	    "bytes=%zu ms=%lld", log_q(job->account), r->status,
	    r->body.b_len, (long long)r->elapsed_ms);
	/* After its answer's line: the next call's comes after it. */
	job_master_done(job);
	switch (mcall_photo_read(r->status, r->content_type, r->retry_after,
	    reason, sizeof(reason))) {
	case MCALL_PHOTO_NEW:
		mcall_etag(r->etag, job->new_master_etag,
		    sizeof(job->new_master_etag));
		job->photo_hidden = r->photo_hidden;
		buf_move(&job->photo, &r->body);
		if (work_try_submit(job->app->srv->pool, render_run,
		    render_done, job) != PS_OK)
			job_busy(job, ps_errmsg());
		return;
	case MCALL_PHOTO_UNCHANGED:
		job_success(job, SYNC_UNCHANGED, WRITE_STATE);
		return;
	case MCALL_PHOTO_NONE:
		/*
		 * The master has no photo for this user: whatever is held
		 * (the master's, or one uploaded here before the mailbox was
		 * known) goes, in the transaction that records it. This is
		 * the only place a sync removes a photo.
		 */
		job->state.master_etag[0] = '\0';
		job_success(job, SYNC_NO_PHOTO, WRITE_REMOVE);
		return;
	case MCALL_PHOTO_BUSY:
		job->outcome.result = SYNC_BUSY;
		job->outcome.retry_after = r->retry_after;
		if (r->status == 503)
			master_hold(job->app->srv, job->reqid, job->photos_url,
			    r->retry_after);
		job_error(job, "GetUserPhoto", reason, -1);
		return;
	case MCALL_PHOTO_ERROR:
		/* A 200 says there is a mailbox, whatever its body. */
		job_error(job, "GetUserPhoto", reason, r->status == 200 ? 1 :
		    -1);
		return;
	}
}

static void
start_photo(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;
	struct mcall m;
	ps_err rc;

	if (mcall_photo(&m, job->app, &srv->issuers, srv->tokens,
	    job->photos_url, job->mailbox, job->email,
	    job->have_master_photo ? job->state.master_etag : NULL) != PS_OK) {
		job_error(job, "GetUserPhoto", ps_errmsg(), -1);
		return;
	}
	log_info(job->reqid, "sync.photo_request", "account=%s url=%s "
	    "conditional=%s", log_q(job->account), log_q(m.url),
	    job->have_master_photo && job->state.master_etag[0] ? "yes" :
	    "no");
	rc = job_call(job, &m, photo_done);
	mcall_cleanup(&m);
	if (rc != PS_OK)
		job_error(job, "GetUserPhoto", ps_errmsg(), -1);
}

/* ---- step 1: Autodiscover ---- */

static void start_autodiscover_at(struct sync_job *, const char *url,
    const char *email);

/* Follows a RedirectAddress or RedirectUrl answer (reference §1.4, §2.3). */
static void
ad_redirect(struct sync_job *job, enum ad_verdict v, const char *target)
{
	char *url = NULL;
	char email[256];

	str_copy(email, job->mailbox, sizeof(email));
	if (mcall_redirect(&job->app->w, v, target, email, sizeof(email),
	    &url) != PS_OK) {
		job_error(job, "autodiscover", ps_errmsg(), -1);
		return;
	}
	log_info(job->reqid, "sync.autodiscover_redirect", "account=%s "
	    "kind=%s email=%s url=%s hop=%zu", log_q(job->account),
	    v == AD_REDIRECT_ADDRESS ? "address" : "url", log_q(email),
	    log_q(url), job->hops.n);
	start_autodiscover_at(job, url, email);
	free(url);
}

static void
ad_done(struct xfer_response *r, void *arg)
{
	struct sync_job *job = arg;
	struct ad_user_settings us = { 0 };
	enum ad_verdict v;
	char reason[300];

	master_call_count("Autodiscover", r);
	if (r->rc != PS_OK) {
		job_error(job, "autodiscover", r->error, -1);
		return;
	}
	metrics_observe("photosync_master_request_seconds",
	    "call=\"Autodiscover\"", (double)r->elapsed_ms / 1000.0);
	if (r->status == 429 || r->status == 503) {
		job->outcome.result = SYNC_BUSY;
		job->outcome.retry_after = r->retry_after;
		if (r->status == 503)
			master_hold(job->app->srv, job->reqid, job->ad_url,
			    r->retry_after);
	}
	v = mcall_autodiscover_read(r->status, r->body.b_data, r->body.b_len,
	    &us, reason, sizeof(reason));
	switch (v) {
	case AD_MAILBOX:
		break;
	case AD_REDIRECT_ADDRESS:
	case AD_REDIRECT_URL:
		ad_redirect(job, v, us.redirect_target);
		ad_user_settings_cleanup(&us);
		return;
	case AD_NO_MAILBOX:
		if (us.photos_url == NULL || us.ecp_photo_url == NULL)
			log_warn(job->reqid, "sync.autodiscover_incomplete",
			    "account=%s photos_url=%s ecp_photo_url=%s "
			    "message=%s", log_q(job->account),
			    us.photos_url ? "set" : "null",
			    us.ecp_photo_url ? "set" : "null",
			    log_q("PhotosUrl or EcpPhotoUrl is null (from "
			    "AutoDiscover)"));
		ad_user_settings_cleanup(&us);
		job_error(job, "autodiscover", reason, 0);
		return;
	case AD_ERROR:
		/* Says nothing about the mailbox: what was known stays. */
		ad_user_settings_cleanup(&us);
		job_error(job, "autodiscover", reason, -1);
		return;
	}
	log_info(job->reqid, "sync.autodiscover_answer", "account=%s "
	    "photos_url=%s ecp_photo_url=%s", log_q(job->account),
	    log_q(us.photos_url), log_q(us.ecp_photo_url));
	ad_cache_put(job->app, job->email, job->mailbox, us.photos_url,
	    us.ecp_photo_url);
	job->photos_url = xstrdup(us.photos_url);
	job->ecp_photo_url = xstrdup(us.ecp_photo_url);
	ad_user_settings_cleanup(&us);
	if (job->discover_only) {
		/* Only the question "which mailbox?"; no photo was fetched. */
		job->state.has_mailbox = 1;
		job->outcome.result = SYNC_UNCHANGED;
		job_save(job, WRITE_STATE);
		return;
	}
	start_photo(job);
}

/* Asks `url` about `email`: the first question, or a redirect's. */
static void
start_autodiscover_at(struct sync_job *job, const char *url,
    const char *email)
{
	struct portal_srv *srv = job->app->srv;
	struct mcall m;
	ps_err rc;

	if (ad_hops_add(&job->hops, url, email) != PS_OK) {
		job_error(job, "autodiscover", ps_errmsg(), -1);
		return;
	}
	str_copy(job->mailbox, email, sizeof(job->mailbox));
	free(job->ad_url);
	job->ad_url = xstrdup(url);
	log_info(job->reqid, "sync.autodiscover_request", "account=%s "
	    "email=%s url=%s", log_q(job->account), log_q(email), log_q(url));
	if ((rc = mcall_autodiscover(&m, job->app, &srv->issuers,
	    srv->tokens, url, email)) == PS_OK) {
		rc = job_call(job, &m, ad_done);
		mcall_cleanup(&m);
	}
	if (rc != PS_OK)
		job_error(job, "autodiscover", ps_errmsg(), -1);
}

static void
start_autodiscover(struct sync_job *job)
{
	char *url;

	if (mcall_autodiscover_url(&job->app->w, job->email, &url) != PS_OK) {
		job_error(job, "autodiscover", ps_errmsg(), -1);
		return;
	}
	start_autodiscover_at(job, url, job->email);
	free(url);
}

/* ---- single-flight across nodes: the lease ---- */

/* A try for a job's lease on the write lane, and the state under it. */
struct lease_try {
	struct sync_job		*job;
	int64_t			 now;
	bool			 taken;
	struct store_sync	 stored;
	ps_err			 rc;
	char			 err[256];
};

/*
 * The tries pending while the previous batch was made, made together:
 * one commit for all, as the outcomes' writes (`portal refresh` starts a
 * try per user, each a commit of its own before). Should the batch
 * fail, each is made again alone, so one bad row costs no other its try.
 */
struct lease_batch {
	struct portal_srv	*srv;
	size_t			 n;
	struct lease_try	 tries[];	/* n of them, at most LEASE_BATCH */
};

static ps_err
lease_try_rows(struct store *st, struct lease_try *lt)
{
	struct sync_job *job = lt->job;
	ps_err rc;

	lt->taken = false;
	rc = store_lease_take(st, job->lease, store_lease_holder(), lt->now,
	    lt->now + SYNC_LEASE_S, &lt->taken);
	if (rc == PS_OK)
		rc = store_sync_get(st, job->app->w.id, job->account,
		    &lt->stored);
	if (rc != PS_OK) {
		lt->taken = false;
		str_copy(lt->err, ps_errmsg(), sizeof(lt->err));
	}
	return lt->rc = rc;
}

/*
 * The batch's leases, then each user's stored state. The leases are
 * taken in the one order of every node (store_lease_take_each): another
 * node's batch of some of the same users waits for this one's commit,
 * instead of a deadlock that would cost both a transaction.
 */
static ps_err
lease_batch_rows(struct store *st, struct lease_batch *lb)
{
	struct store_lease_ask asks[LEASE_BATCH];
	struct lease_try *lt;
	ps_err rc;
	size_t i;

	for (i = 0; i < lb->n; i++) {
		asks[i].name = lb->tries[i].job->lease;
		asks[i].now = lb->tries[i].now;
		asks[i].expires = lb->tries[i].now + SYNC_LEASE_S;
	}
	rc = store_lease_take_each(st, asks, lb->n, store_lease_holder());
	for (i = 0; i < lb->n && rc == PS_OK; i++) {
		lt = &lb->tries[i];
		lt->taken = asks[i].taken;
		lt->rc = rc = store_sync_get(st, lt->job->app->w.id,
		    lt->job->account, &lt->stored);
	}
	return rc;
}

static void
lease_batch_run(struct store *st, void *arg)
{
	struct lease_batch *lb = arg;
	ps_err rc;
	size_t i;

	if (lb->n > 1) {
		if ((rc = store_begin(st)) != PS_OK) {
			/* No try alone could begin either (a lock held). */
			for (i = 0; i < lb->n; i++) {
				lb->tries[i].taken = false;
				lb->tries[i].rc = rc;
				str_copy(lb->tries[i].err, ps_errmsg(),
				    sizeof(lb->tries[i].err));
			}
			return;
		}
		rc = lease_batch_rows(st, lb);
		if (store_end(st, rc == PS_OK) == PS_OK && rc == PS_OK)
			return;
	}
	for (i = 0; i < lb->n; i++)
		(void)lease_try_rows(st, &lb->tries[i]);
}

/*
 * Whether the stored state is an outcome this job did not know when it
 * started, and may answer with: another node's sync since. A forced
 * sync (a change notice) takes only one that ended after it started.
 */
static bool
synced_elsewhere(const struct sync_job *job, const struct store_sync *s)
{
	int64_t last = s->last_success > s->last_error ? s->last_success :
	    s->last_error;

	if (s->last_success <= job->state.last_success &&
	    s->last_error <= job->state.last_error)
		return false;
	return !job->forced || last >= job->started;
}

/* Ends the job with the outcome another node stored. */
static void
job_done_elsewhere(struct sync_job *job, const struct store_sync *s)
{
	struct webapp_ctx *app = job->app;

	if (s->last_error > s->last_success)
		job->outcome.result = s->has_mailbox == 0 ? SYNC_NO_MAILBOX :
		    SYNC_FAILED;
	else if (strcmp(s->master_etag, job->state.master_etag) != 0)
		job->outcome.result = s->master_etag[0] ? SYNC_UPDATED :
		    SYNC_NO_PHOTO;
	else
		job->outcome.result = SYNC_UNCHANGED;
	if (s->last_error > s->last_success)
		str_copy(job->outcome.reason, s->reason,
		    sizeof(job->outcome.reason));
	job->state = *s;
	job->elsewhere = true;
	job->outcome.elsewhere = true;
	state_remember(app, job->account, s, stored_master_photo(s));
	/* The feed may not have reached this node's index yet. */
	index_photo_forget(app->srv->index, app->w.id, job->account);
	log_info(job->reqid, "sync.done_elsewhere", "account=%s outcome=%s "
	    "ms=%lld", log_q(job->account),
	    sync_result_name(job->outcome.result),
	    (long long)(time_mono_ms() - job->started_ms));
	job_master_done(job);
	job_finish(job);
}

/* The master is called: Autodiscover first unless its answer is kept. */
static void
job_begin(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;

	if (!job->at_master && srv->master_limit > 0 &&
	    srv->at_master >= srv->master_limit) {
		job->master_wait_next = NULL;
		if (srv->master_wait_tail == NULL)
			srv->master_wait_tail = &srv->master_wait;
		*srv->master_wait_tail = job;
		srv->master_wait_tail = &job->master_wait_next;
		return;
	}
	job_call_master(job);
}

static void
job_call_master(struct sync_job *job)
{
	if (!job->at_master) {
		job->at_master = true;
		job->app->srv->at_master++;
	}
	if (job->photos_url != NULL)
		start_photo(job);
	else
		start_autodiscover(job);
}

static void
lease_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lease_try(arg);
}

/*
 * Another node syncs the user: wait for its outcome (the change feed) or
 * its lease's end. A process without the feed (`portal refresh`) looks
 * again every second.
 */
static void
job_wait_remote(struct sync_job *job)
{
	int wait_s = job->app->srv->follower ? SYNC_LEASE_S + 1 : 1;
	struct timeval tv = { wait_s, 0 };

	if (!job->remote) {
		job->remote = true;
		job_master_done(job);
		log_info(job->reqid, "sync.lease_held", "account=%s "
		    "wait_s=%d", log_q(job->account), wait_s);
	}
	if (job->lease_timer == NULL)
		job->lease_timer = evtimer_new(job->app->srv->base,
		    lease_expired, job);
	evtimer_add(job->lease_timer, &tv);
}

/* What a try found: sync, wait for another node, or end with its outcome. */
static void
lease_tried(struct lease_try *lt)
{
	struct sync_job *job = lt->job;
	struct portal_srv *srv = job->app->srv;

	job->lease_busy = false;
	if (srv->stopping) {
		/* No more calls to the master; a lease taken expires. */
		job_busy(job, "the server is stopping");
		return;
	}
	if (lt->taken) {
		job->leased = true;
		job->leased_at = lt->now;
	}
	if (lt->rc != PS_OK) {
		/* The store cannot say: a sync on one node goes on alone. */
		log_warn(job->reqid, "sync.lease_failed", "account=%s "
		    "error=%s", log_q(job->account), log_q(lt->err));
		if (job->remote)
			job_wait_remote(job);
		else
			job_begin(job);
		return;
	}
	if (synced_elsewhere(job, &lt->stored)) {
		job_done_elsewhere(job, &lt->stored);
		return;
	}
	if (lt->taken) {
		if (job->remote) {
			/* Its holder is gone: this node syncs. */
			log_info(job->reqid, "sync.lease_taken", "account=%s",
			    log_q(job->account));
			job->remote = false;
			if (job->lease_timer)
				evtimer_del(job->lease_timer);
		}
		job_begin(job);
		return;
	}
	job_wait_remote(job);
	if (job->lease_again) {
		job->lease_again = false;
		lease_try(job);
	}
}

static void
lease_batch_done(void *arg)
{
	struct lease_batch *lb = arg;
	struct portal_srv *srv = lb->srv;
	size_t i;

	/* Tries made meanwhile wait for the next batch. */
	for (i = 0; i < lb->n; i++)
		lease_tried(&lb->tries[i]);
	free(lb);
	srv->leasing = false;
	lease_next(srv);
}

/* Makes the pending tries, unless a batch of them is being made. */
static void
lease_next(struct portal_srv *srv)
{
	struct lease_batch *lb;
	struct sync_job *job;
	char err[256];
	size_t i;

	if (srv->leasing || srv->lease_pending == NULL)
		return;
	/* As many tries as are pending: a batch is often a few. */
	for (i = 0, job = srv->lease_pending; job && i < LEASE_BATCH;
	    job = job->lease_next)
		i++;
	lb = xcalloc(1, sizeof(*lb) + i * sizeof(lb->tries[0]));
	lb->srv = srv;
	while (lb->n < i && (job = srv->lease_pending) != NULL) {
		struct lease_try *lt = &lb->tries[lb->n++];

		srv->lease_pending = job->lease_next;
		lt->job = job;
		lt->now = time_now();
	}
	if (log_enabled(LOG_DEBUG))
		log_debug(NULL, "sync.lease_batch", "tries=%zu", lb->n);
	srv->leasing = true;
	if (store_pool_write(srv->store, lease_batch_run, lease_batch_done,
	    lb) == PS_OK)
		return;
	srv->leasing = false;
	str_copy(err, ps_errmsg(), sizeof(err));
	for (i = 0; i < lb->n; i++) {
		job = lb->tries[i].job;
		job->lease_busy = false;
		if (job->remote)
			job_wait_remote(job);
		else
			job_busy(job, err);
	}
	free(lb);
	lease_next(srv);
}

static void
lease_soon(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lease_next(arg);
}

/*
 * Tries for the job's lease: a new job before it calls the master, a
 * waiting one when the feed moved its state or the lease expired.
 */
static void
lease_try(struct sync_job *job)
{
	struct portal_srv *srv = job->app->srv;
	struct sync_job **p;

	if (job->lease_busy) {
		job->lease_again = true;
		return;
	}
	job->lease_busy = true;
	job->lease_next = NULL;
	for (p = &srv->lease_pending; *p; p = &(*p)->lease_next)
		;
	*p = job;
	/*
	 * Made at the end of this loop turn, not now: the tries that the
	 * same turn adds (a `portal refresh` starts several syncs at once)
	 * go in the same batch.
	 */
	if (srv->leasing)
		return;
	if (srv->lease_soon == NULL)
		srv->lease_soon = event_new(srv->base, -1, 0, lease_soon, srv);
	event_active(srv->lease_soon, EV_TIMEOUT, 0);
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
    const char *reqid, const struct sync_entry *e)
{
	struct portal_srv *srv = app->srv;
	struct sync_job *job = xcalloc(1, sizeof(*job));

	job->app = app;
	str_copy(job->account, owner->account, sizeof(job->account));
	str_copy(job->email, owner->email, sizeof(job->email));
	str_copy(job->mailbox, owner->email, sizeof(job->mailbox));
	str_copy(job->reqid, reqid, sizeof(job->reqid));
	lease_name(job);
	job->state = e->s;
	job->have_master_photo = e->have_master_photo;
	job->outcome.result = SYNC_FAILED;
	job->outcome.retry_after = -1;
	job->started_ms = time_mono_ms();
	job->started = srv->pass_started ? srv->pass_started : time_now();
	buf_init(&job->photo, MCALL_MAX_PHOTO);
	job->next = srv->jobs;
	srv->jobs = job;
	return job;
}

/* A request joins the sync in flight (single-flight). */
static void
sync_join(struct sync_job *job, const struct store_user *owner,
    const char *reqid, int flags, sync_wait_fn fn, void *arg)
{
	if (flags & SYNC_AGAIN)
		job->again = true;
	log_info(reqid, "sync.joined", "account=%s leader=%s again=%s",
	    log_q(owner->account), log_q(job->reqid),
	    (flags & SYNC_AGAIN) ? "yes" : "no");
	waiter_add(job, fn, arg, flags & SYNC_DEADLINE);
}

/*
 * Starts (or joins) a sync when one is due, knowing the user's state;
 * otherwise says why not.
 */
static enum sync_start
sync_decide(struct webapp_ctx *app, const struct store_user *owner,
    const char *reqid, int flags, const struct sync_entry *e,
    sync_wait_fn fn, void *arg)
{
	const struct store_webapp *w = &app->w;
	struct ad_entry *ad;
	struct sync_job *job;
	int64_t now = time_now(), window, held;
	char *ad_url = NULL;

	if ((job = job_find(app->srv, app, owner->account)) != NULL &&
	    !job->discover_only) {
		sync_join(job, owner, reqid, flags, fn, arg);
		return SYNC_STARTED;
	}
	if (!(flags & SYNC_FORCE) && e->s.last_success &&
	    now - e->s.last_success < w->photo_expiration) {
		log_debug(reqid, "sync.fresh", "account=%s age=%lld",
		    log_q(owner->account),
		    (long long)(now - e->s.last_success));
		return SYNC_NOT_DUE_FRESH;
	}
	/*
	 * After a 429 or 503 the next call waits for the longer of the
	 * error window and the master's Retry-After; a forced sync skips
	 * the window, never what the master asked.
	 */
	window = (flags & SYNC_FORCE) ? 0 : w->photo_error_expiration;
	if (e->s.retry_after > window)
		window = e->s.retry_after;
	if (e->s.last_error && now - e->s.last_error < window) {
		log_debug(reqid, "sync.error_window", "account=%s age=%lld "
		    "retry_after=%lld", log_q(owner->account),
		    (long long)(now - e->s.last_error),
		    (long long)e->s.retry_after);
		return SYNC_NOT_DUE_ERROR;
	}
	/* A master that answered 503 is left alone, whoever asks. */
	ad = ad_cache_find(app, owner->email);
	if (ad == NULL && autodiscover_url(w->autodiscover_domain,
	    owner->email, &ad_url) != PS_OK)
		ad_url = NULL;
	held = ad != NULL ? master_held(app->srv, ad->photos_url) :
	    ad_url != NULL ? master_held(app->srv, ad_url) : 0;
	free(ad_url);
	if (held > 0) {
		log_info(reqid, "sync.master_busy", "account=%s wait_s=%lld",
		    log_q(owner->account), (long long)held);
		return SYNC_NOT_DUE_ERROR;
	}
	job = job_new(app, owner, reqid, e);
	waiter_add(job, fn, arg, flags & SYNC_DEADLINE);
	log_info(reqid, "sync.start", "account=%s email=%s last_success=%lld "
	    "last_error=%lld forced=%s", log_q(job->account), log_q(job->email),
	    (long long)e->s.last_success, (long long)e->s.last_error,
	    (flags & SYNC_FORCE) ? "yes" : "no");
	if (ad != NULL) {
		str_copy(job->mailbox, ad->mailbox, sizeof(job->mailbox));
		job->photos_url = xstrdup(ad->photos_url);
		job->ecp_photo_url = xstrdup(ad->ecp_photo_url);
	}
	job->forced = (flags & SYNC_FORCE) != 0;
	lease_try(job);
	return SYNC_STARTED;
}

/* A sync request waiting for the user's state from the read lane. */
struct state_load {
	struct webapp_ctx	*app;
	struct store_user	 owner;
	char			 reqid[80];
	int			 flags;
	sync_wait_fn		 fn;
	void			*arg;
	uint64_t		 epoch;
	struct sync_entry	 e;
	ps_err			 rc;
	char			 err[256];
};

static void
state_load_run(struct store *st, void *arg)
{
	struct state_load *ld = arg;

	if ((ld->rc = store_sync_get(st, ld->app->w.id, ld->owner.account,
	    &ld->e.s)) != PS_OK) {
		str_copy(ld->err, ps_errmsg(), sizeof(ld->err));
		return;
	}
	ld->e.have_master_photo = stored_master_photo(&ld->e.s);
}

static void
state_load_done(void *arg)
{
	struct state_load *ld = arg;
	struct sync_outcome o = { .retry_after = -1 };
	enum sync_start r;

	if (ld->rc != PS_OK) {
		/* The store cannot say: serve what is cached. */
		log_warn(ld->reqid, "sync.state_unread", "account=%s error=%s",
		    log_q(ld->owner.account), log_q(ld->err));
		o.result = SYNC_FAILED;
		snprintf(o.reason, sizeof(o.reason), "store: %s", ld->err);
		ld->fn(ld->arg, &o);
		goto out;
	}
	if (ld->epoch == ld->app->srv->states_epoch &&
	    state_find(ld->app, ld->owner.account) == NULL)
		state_remember(ld->app, ld->owner.account, &ld->e.s,
		    ld->e.have_master_photo);
	r = sync_decide(ld->app, &ld->owner, ld->reqid, ld->flags, &ld->e,
	    ld->fn, ld->arg);
	if (r != SYNC_STARTED) {
		o.result = r == SYNC_NOT_DUE_FRESH ? SYNC_FRESH :
		    SYNC_ERROR_WINDOW;
		ld->fn(ld->arg, &o);
	}
out:
	free(ld);
}

enum sync_start
sync_request(struct webapp_ctx *app, const struct store_user *owner,
    const char *reqid, int flags, sync_wait_fn fn, void *arg)
{
	struct sync_entry *e;
	struct state_load *ld;
	struct sync_job *job;

	if (!app->w.photo_import)
		return SYNC_OFF;
	if ((job = job_find(app->srv, app, owner->account)) != NULL &&
	    !job->discover_only) {
		sync_join(job, owner, reqid, flags, fn, arg);
		return SYNC_STARTED;
	}
	if ((e = state_find(app, owner->account)) != NULL)
		return sync_decide(app, owner, reqid, flags, e, fn, arg);
	ld = xcalloc(1, sizeof(*ld));
	ld->app = app;
	ld->owner = *owner;
	ld->owner.pwhash = NULL;
	str_copy(ld->reqid, reqid, sizeof(ld->reqid));
	ld->flags = flags;
	ld->fn = fn;
	ld->arg = arg;
	ld->epoch = app->srv->states_epoch;
	if (store_pool_read(app->srv->store, state_load_run, state_load_done,
	    ld) != PS_OK) {
		log_warn(reqid, "sync.state_unread", "account=%s error=%s",
		    log_q(owner->account), log_q(ps_errmsg()));
		free(ld);
		return SYNC_NOT_DUE_ERROR;
	}
	return SYNC_STARTED;
}

/* ---- "does this user have a mailbox?" ---- */

struct discover_wait {
	sync_discover_fn	 fn;
	void			*arg;
};

static void
discover_done(void *arg, const struct sync_outcome *o)
{
	struct discover_wait *dw = arg;

	if (o && o->ecp_photo_url && (o->result == SYNC_UPDATED ||
	    o->result == SYNC_UNCHANGED || o->result == SYNC_NO_PHOTO))
		dw->fn(dw->arg, 1, o->ecp_photo_url, NULL);
	else if (o && o->result == SYNC_NO_MAILBOX)
		dw->fn(dw->arg, 0, NULL, o->reason);
	else
		dw->fn(dw->arg, -1, NULL, o ? o->reason : "the mail server "
		    "did not answer in time");
	free(dw);
}

void
sync_discover(struct webapp_ctx *app, const struct store_user *user,
    const char *reqid, sync_discover_fn fn, void *arg)
{
	struct discover_wait *dw;
	struct sync_entry none = { .s = { .has_mailbox = -1 } };
	struct ad_entry *ad;
	struct sync_job *job;

	if ((ad = ad_cache_find(app, user->email)) != NULL) {
		fn(arg, 1, ad->ecp_photo_url, NULL);
		return;
	}
	dw = xcalloc(1, sizeof(*dw));
	dw->fn = fn;
	dw->arg = arg;
	if ((job = job_find(app->srv, app, user->account)) != NULL) {
		waiter_add(job, discover_done, dw, true);
		return;
	}
	job = job_new(app, user, reqid, &none);
	job->discover_only = true;
	waiter_add(job, discover_done, dw, true);
	log_info(reqid, "sync.discover", "account=%s email=%s",
	    log_q(job->account), log_q(job->email));
	start_autodiscover(job);
}

/* ---- Autodiscover for many users at once ---- */

struct prefetch {
	struct webapp_ctx	*app;
	char			 reqid[80];
	char			**emails;
	size_t			 n;
	void			(*done)(void *);
	void			*arg;
};

static void
prefetch_free(struct prefetch *pf)
{
	size_t i;

	for (i = 0; i < pf->n; i++)
		free(pf->emails[i]);
	free(pf->emails);
	free(pf);
}

static void
prefetch_done(struct xfer_response *r, void *arg)
{
	struct prefetch *pf = arg;
	struct ad_user_settings *us = xcalloc(pf->n, sizeof(*us));
	size_t i, found = 0;

	master_call_count("Autodiscover", r);
	if (r->rc != PS_OK || r->status != 200)
		log_warn(pf->reqid, "sync.prefetch_failed", "users=%zu "
		    "status=%ld reason=%s", pf->n, r->status,
		    log_q(r->rc != PS_OK ? r->error : "not 200"));
	else if (autodiscover_soap_parse_many(r->body.b_data, r->body.b_len,
	    us, pf->n) != PS_OK)
		log_warn(pf->reqid, "sync.prefetch_failed", "users=%zu "
		    "status=200 reason=%s", pf->n, log_q(ps_errmsg()));
	else {
		/*
		 * What a user's own sync would keep; it deals with the rest
		 * (a redirect it follows, no mailbox or an error it records),
		 * so that both read an answer the same way.
		 */
		for (i = 0; i < pf->n; i++) {
			if (autodiscover_verdict(&us[i], NULL, 0) ==
			    AD_MAILBOX) {
				ad_cache_put(pf->app, pf->emails[i],
				    pf->emails[i], us[i].photos_url,
				    us[i].ecp_photo_url);
				found++;
			}
			ad_user_settings_cleanup(&us[i]);
		}
		log_debug(pf->reqid, "sync.prefetched", "users=%zu "
		    "mailboxes=%zu", pf->n, found);
	}
	free(us);
	pf->done(pf->arg);
	prefetch_free(pf);
}

void
sync_discover_prefetch(struct webapp_ctx *app,
    const struct store_user *const *users, size_t n, const char *reqid,
    void (*done)(void *), void *arg)
{
	const struct store_webapp *w = &app->w;
	struct prefetch *pf = xcalloc(1, sizeof(*pf));
	struct xfer_request xr = { 0 };
	const char *domain = NULL, *at;
	struct mcall m = { 0 };
	char *url = NULL;
	size_t i;
	ps_err rc = PS_OK;

	pf->app = app;
	pf->done = done;
	pf->arg = arg;
	str_copy(pf->reqid, reqid, sizeof(pf->reqid));
	pf->emails = xcalloc(n + 1, sizeof(*pf->emails));
	/* Those not known yet; one Autodiscover host per call. */
	for (i = 0; i < n && pf->n < AD_MAX_USERS; i++) {
		if ((at = strchr(users[i]->email, '@')) == NULL ||
		    ad_cache_find(app, users[i]->email) != NULL)
			continue;
		if (domain == NULL)
			domain = at + 1;
		if (!w->autodiscover_domain[0] && strcasecmp(domain,
		    at + 1) != 0)
			continue;
		pf->emails[pf->n++] = xstrdup(users[i]->email);
	}
	if (pf->n == 0 || !w->photo_import)
		goto out;
	if ((rc = mcall_autodiscover_url(w, pf->emails[0], &url)) != PS_OK)
		goto out;
	if (master_held(app->srv, url) > 0) {
		/* Each user's own sync finds the master held back. */
		log_info(reqid, "sync.master_busy", "users=%zu wait_s=%lld",
		    pf->n, (long long)master_held(app->srv, url));
		goto out;
	}
	if ((rc = mcall_autodiscover_many(&m, app, &app->srv->issuers,
	    app->srv->tokens, url, (const char *const *)pf->emails, pf->n)) !=
	    PS_OK)
		goto out;
	xr.method = m.method;
	xr.url = m.url;
	xr.headers = (const char *const *)m.headers;
	xr.body = m.body.b_data;
	xr.body_len = m.body.b_len;
	xr.ca_file = w->ca_file[0] ? w->ca_file : NULL;
	xr.allow_http = w->allow_oauth_http;
	xr.timeout_ms = MCALL_TIMEOUT_MS;
	xr.max_bytes = m.max_bytes;
	xr.reqid = pf->reqid;
	xr.idempotent = m.idempotent;
	rc = xfer_start(app->srv->xfer, &xr, prefetch_done, pf);
	mcall_cleanup(&m);
	if (rc == PS_OK)
		pf = NULL;	/* prefetch_done has it */
out:
	if (rc != PS_OK)
		log_warn(reqid, "sync.prefetch_failed", "users=%zu reason=%s",
		    pf ? pf->n : 0, log_q(ps_errmsg()));
	if (pf) {
		pf->done(pf->arg);
		prefetch_free(pf);
	}
	free(url);
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
sync_stop(struct portal_srv *srv)
{
	struct sync_job *job;

	srv->stopping = true;
	for (job = srv->jobs; job; job = job->next)
		if (job->leased)
			lease_release(job);
}

void
sync_shutdown(struct portal_srv *srv)
{
	/* Transfers were cancelled with the xfer loop; drop the jobs. */
	while (srv->jobs) {
		struct sync_job *job = srv->jobs;
		struct sync_waiter *w;

		job->leased = false;	/* the lanes are gone: it expires */
		job->lease_busy = false;
		while ((w = job->waiters) != NULL) {
			job->waiters = w->next;
			waiter_free(w);
		}
		job_free(job);
	}
	srv->lease_pending = NULL;
	if (srv->lease_soon != NULL)
		event_free(srv->lease_soon);
	srv->lease_soon = NULL;
	srv->master_wait = NULL;
	srv->master_wait_tail = &srv->master_wait;
	lru_free(srv->ad_cache);
	lru_free(srv->states);
	lru_free(srv->tokens);
	lru_free(srv->master_holds);
	srv->ad_cache = srv->states = srv->tokens = srv->master_holds = NULL;
}
