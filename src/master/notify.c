/*
 * Change notifications, the master's side: each photo change queues one
 * notice per partner portal in the store (store_outbox, written in the
 * change's own transaction by any process: photo set, the change-photo
 * page). The running server sends them here: an HTTPS POST to
 *
 *   <partner origin>/_layouts/15/photosync/notify    email=<address>
 *
 * signed as the master (an app-only S2S token: RS256 actor token with
 * x5t, audience the partner's principal at its host and realm, bound to
 * the address it announces by S2S_ADDRESSES_CLAIM, so that a captured
 * notice cannot be replayed for another user), verified
 * against the CA registered with the partner. 2xx: delivered. A 4xx other
 * than 408/429: the partner does not want it, dropped. Anything else:
 * tried again with growing back-off (5 s, 10 s, ... up to an hour), given
 * up after a day — a portal that missed a notice still converges through
 * its expiration windows. Never blocks the change itself nor the loop:
 * the due notices are claimed (with each row's partner read) on the
 * store's write lane, every second and at once when a change queued
 * notices, and each outcome is written on the write lane. A notice stays
 * "in flight" until its outcome is written, and a look at the outbox that
 * began before an outcome was written is discarded, so no notice is sent
 * twice.
 *
 * Several master nodes on one store deliver each notice once: a node
 * sends only the notices it claimed, each with the lease "outbox/<id>"
 * (store_outbox_claim), held NOTIFY_CLAIM_S and given back once the
 * outcome is written. A node killed mid-delivery leaves its claims to
 * expire; another node then claims and sends those notices.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "master_int.h"
#include "metrics/metrics.h"
#include "pki/pki.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "store/pool.h"
#include "xfer/xfer.h"

#define NOTIFY_PATH		"/_layouts/15/photosync/notify"
#define NOTIFY_PARALLEL		8
#define NOTIFY_TICK_MS		1000
#define NOTIFY_GIVE_UP		86400
#define NOTIFY_MAX_BACKOFF	3600
#define NOTIFY_TOKEN_LIFETIME	600
#define NOTIFY_TIMEOUT_MS	10000
/* How long a claim holds: a few times a delivery's longest. */
#define NOTIFY_CLAIM_S		(3 * NOTIFY_TIMEOUT_MS / 1000)

/* One notice, from the outbox read to its outcome written. */
struct sending {
	struct notifier		*n;
	struct store_outbox	 row;
	struct store_partner	 p;	/* read with the row */
	ps_err			 prc;	/* of that read */
	char			 perr[256];
	char			 reqid[17];
	bool			 settling;	/* its outcome being written */
	bool			 done;		/* delivered, dropped, gone */
	int64_t			 next_attempt;	/* else: when to retry */
	char			 error[256];
	ps_err			 wrc;		/* of the write */
	char			 werr[256];
};

struct notifier {
	struct master_srv	*srv;
	struct xfer_loop	*xfer;
	struct pki_key		*key;
	struct event		*timer;
	/* From the outbox read until the outcome is written. */
	struct sending		*inflight[NOTIFY_PARALLEL];
	int			 n_inflight;
	bool			 reading;	/* a look at the outbox */
	bool			 again;		/* woken meanwhile */
	uint64_t		 settled;	/* outcomes written so far */
	int			 jobs;		/* store jobs not yet done */
	bool			 stopping;	/* freed once jobs == 0 */
};

/* A look at the outbox, on the read lane. */
struct due_job {
	struct notifier		*n;
	uint64_t		 settled;	/* n->settled when it began */
	struct sending		*rows[NOTIFY_PARALLEL];
	size_t			 n_rows;
	int64_t			 pending;
	ps_err			 rc;
	char			 err[256];
};

static void look(struct notifier *);

static void
notifier_release(struct notifier *n)
{
	free(n);
}

static void
sending_free(struct sending *sd)
{
	store_partner_cleanup(&sd->p);
	free(sd);
}

static bool
is_inflight(const struct notifier *n, int64_t id)
{
	int i;

	for (i = 0; i < n->n_inflight; i++)
		if (n->inflight[i]->row.id == id)
			return true;
	return false;
}

static void
inflight_remove(struct notifier *n, const struct sending *sd)
{
	int i;

	for (i = 0; i < n->n_inflight; i++)
		if (n->inflight[i] == sd) {
			n->inflight[i] = n->inflight[--n->n_inflight];
			return;
		}
}

static void
count(const char *result)
{
	char labels[48];

	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	metrics_add("photosync_notifications_total", labels, 1);
}

/* ---- outcomes, written on the write lane ---- */

/* The outcome, then the claim given back (after it: see the top). */
static void
settle_run(struct store *st, void *arg)
{
	struct sending *sd = arg;
	char name[32];

	sd->wrc = sd->done ? store_outbox_done(st, sd->row.id) :
	    store_outbox_retry(st, sd->row.id, sd->next_attempt, sd->error);
	if (sd->wrc != PS_OK) {
		/* Not written: the claim expires, then it is due again. */
		str_copy(sd->werr, ps_errmsg(), sizeof(sd->werr));
		return;
	}
	store_outbox_lease_name(sd->row.id, name, sizeof(name));
	/* Failing, it expires: store.error is logged. */
	(void)store_lease_release(st, name, store_lease_holder());
}

static void
settle_done(void *arg)
{
	struct sending *sd = arg;
	struct notifier *n = sd->n;

	n->jobs--;
	if (sd->wrc != PS_OK)
		log_warn(sd->reqid, "notify.unsaved", "partner=%s email=%s "
		    "reason=%s", log_q(sd->row.partner), log_q(sd->row.email),
		    log_q(sd->werr));
	inflight_remove(n, sd);
	n->settled++;
	sending_free(sd);
	if (n->stopping && n->jobs == 0)
		notifier_release(n);
}

/*
 * Writes the notice's outcome: done (delivered, refused, dropped, given
 * up) or tried again at `next_attempt`. It stays in flight until then.
 */
static void
settle(struct sending *sd, bool done, int64_t next_attempt,
    const char *error)
{
	struct notifier *n = sd->n;
	struct store_pool *pool = n->srv->pool;

	sd->settling = true;
	sd->done = done;
	sd->next_attempt = next_attempt;
	str_copy(sd->error, error ? error : "", sizeof(sd->error));
	if (pool && store_pool_write(pool, settle_run, settle_done, sd) ==
	    PS_OK) {
		n->jobs++;
		return;
	}
	/* Not written: the row stays due and is sent again later. */
	log_warn(sd->reqid, "notify.unsaved", "partner=%s email=%s "
	    "reason=%s", log_q(sd->row.partner), log_q(sd->row.email),
	    log_q(pool ? ps_errmsg() : "the store is closing"));
	inflight_remove(n, sd);
	sending_free(sd);
}

/* Schedules another attempt, or gives up after a day. */
static void
retry_later(struct sending *sd, const char *why)
{
	const struct store_outbox *row = &sd->row;
	int64_t now = time_now(), wait = 5;
	int i;

	for (i = 0; i < row->attempts && wait < NOTIFY_MAX_BACKOFF; i++)
		wait *= 2;
	if (wait > NOTIFY_MAX_BACKOFF)
		wait = NOTIFY_MAX_BACKOFF;
	if (now - row->created > NOTIFY_GIVE_UP) {
		log_warn(sd->reqid, "notify.given_up", "partner=%s email=%s "
		    "attempts=%d reason=%s", log_q(row->partner),
		    log_q(row->email), row->attempts + 1, log_q(why));
		count("given_up");
		settle(sd, true, 0, NULL);
		return;
	}
	log_info(sd->reqid, "notify.retry", "partner=%s email=%s attempt=%d "
	    "wait_s=%lld reason=%s", log_q(row->partner), log_q(row->email),
	    row->attempts + 1, (long long)wait, log_q(why));
	count("retried");
	settle(sd, false, now + wait, why);
}

/* ---- sending ---- */

static void
sent(struct xfer_response *r, void *arg)
{
	struct sending *sd = arg;
	char why[300];

	if (r->rc != PS_OK) {
		retry_later(sd, r->error);
	} else if (r->status >= 200 && r->status < 300) {
		log_info(sd->reqid, "notify.delivered", "partner=%s email=%s "
		    "status=%ld ms=%lld", log_q(sd->row.partner),
		    log_q(sd->row.email), r->status,
		    (long long)r->elapsed_ms);
		count("delivered");
		settle(sd, true, 0, NULL);
	} else if (r->status >= 400 && r->status < 500 && r->status != 408 &&
	    r->status != 429) {
		log_warn(sd->reqid, "notify.refused", "partner=%s email=%s "
		    "status=%ld", log_q(sd->row.partner), log_q(sd->row.email),
		    r->status);
		count("refused");
		settle(sd, true, 0, NULL);
	} else {
		snprintf(why, sizeof(why), "the partner answered HTTP %ld",
		    r->status);
		retry_later(sd, why);
	}
}

/* Starts sending one notice (in flight from now on). */
static void
send_one(struct notifier *n, struct sending *sd)
{
	const struct store_outbox *row = &sd->row;
	const struct store_partner *p = &sd->p;
	struct master_state *ms = n->srv->ms;
	struct s2s_metadata md = { 0 };
	struct xfer_request xr = { 0 };
	char *host = NULL, *url = NULL, *token = NULL, *auth = NULL;
	char *enc = NULL, *body = NULL, authority[300];
	char bound[S2S_ADDRESSES_LEN];
	const char *hdrs[3], *why = NULL, *email = row->email;
	struct s2s_mint m = { 0 };
	int port;

	n->inflight[n->n_inflight++] = sd;
	reqid_new(sd->reqid);
	if (sd->prc != PS_OK)
		why = sd->perr;
	else if (p->metadata_url == NULL)
		why = "no metadata URL";
	else if (setup_https_url_host(p->metadata_url, &host, &port) !=
	    PS_OK || s2s_metadata_parse(p->metadata, strlen(p->metadata),
	    &md) != PS_OK)
		why = ps_errmsg();
	if (why) {
		/* The partner went away or cannot be reached by URL. */
		log_warn(sd->reqid, "notify.dropped", "partner=%s email=%s "
		    "reason=%s", log_q(row->partner), log_q(row->email),
		    log_q(why));
		count("dropped");
		settle(sd, true, 0, NULL);
		goto out;
	}
	if (port == 443)
		snprintf(authority, sizeof(authority), "%s", host);
	else
		snprintf(authority, sizeof(authority), "%s:%d", host, port);
	m.key = n->key;
	m.cert_der = ms->s2s_cert;
	m.cert_len = ms->s2s_cert_len;
	m.client_id = S2S_EXCHANGE_ID;
	m.realm = ms->realm;
	m.target_id = S2S_SHAREPOINT_ID;
	m.target_host = authority;
	m.target_realm = md.realm;
	m.now = time_now();
	m.lifetime = NOTIFY_TOKEN_LIFETIME;
	m.addresses = bound;
	if (s2s_addresses_digest(&email, 1, bound) != PS_OK ||
	    s2s_token_mint(&m, &token) != PS_OK) {
		retry_later(sd, ps_errmsg());
		goto out;
	}
	url = xasprintf("https://%s%s", authority, NOTIFY_PATH);
	auth = xasprintf("Authorization: Bearer %s", token);
	enc = http_encode(row->email);
	body = xasprintf("email=%s", enc);
	hdrs[0] = auth;
	hdrs[1] = "Content-Type: application/x-www-form-urlencoded";
	hdrs[2] = NULL;
	xr.method = "POST";
	xr.url = url;
	xr.headers = hdrs;
	xr.body = body;
	xr.body_len = strlen(body);
	xr.ca_file = p->ca_file[0] ? p->ca_file : NULL;
	xr.timeout_ms = NOTIFY_TIMEOUT_MS;
	xr.max_bytes = 64 * 1024;
	xr.reqid = sd->reqid;
	log_info(sd->reqid, "notify.send", "partner=%s email=%s url=%s "
	    "attempt=%d", log_q(row->partner), log_q(row->email), log_q(url),
	    row->attempts + 1);
	if (xfer_start(n->xfer, &xr, sent, sd) != PS_OK)
		retry_later(sd, ps_errmsg());
out:
	if (token)
		xfree_secret(token, strlen(token));
	if (auth)
		xfree_secret(auth, strlen(auth));
	free(url);
	free(enc);
	free(body);
	free(host);
	s2s_metadata_cleanup(&md);
}

/* ---- claiming from the outbox, on the write lane ---- */

static ps_err
due_collect(void *arg, const struct store_outbox *row)
{
	struct due_job *j = arg;
	struct sending *sd;

	if (j->n_rows == NOTIFY_PARALLEL)
		return PS_OK;
	sd = xcalloc(1, sizeof(*sd));
	sd->n = j->n;
	sd->row = *row;
	j->rows[j->n_rows++] = sd;
	return PS_OK;
}

static void
due_run(struct store *st, void *arg)
{
	struct due_job *j = arg;
	struct sending *sd;
	int64_t now = time_now();
	size_t i;

	j->rc = store_outbox_claim(st, store_lease_holder(), now,
	    now + NOTIFY_CLAIM_S, NOTIFY_PARALLEL, due_collect, j);
	if (j->rc != PS_OK)
		str_copy(j->err, ps_errmsg(), sizeof(j->err));
	for (i = 0; i < j->n_rows; i++) {
		sd = j->rows[i];
		sd->prc = store_partner_get(st, sd->row.partner, &sd->p);
		if (sd->prc != PS_OK)
			str_copy(sd->perr, ps_errmsg(), sizeof(sd->perr));
	}
	j->pending = store_outbox_pending(st);
}

static void
due_done(void *arg)
{
	struct due_job *j = arg;
	struct notifier *n = j->n;
	bool stale = j->settled != n->settled;
	size_t i;

	n->jobs--;
	n->reading = false;
	if (n->stopping) {
		for (i = 0; i < j->n_rows; i++)
			sending_free(j->rows[i]);
		free(j);
		if (n->jobs == 0)
			notifier_release(n);
		return;
	}
	if (j->rc != PS_OK)
		log_warn(NULL, "serve.store_failed", "what=%s error=%s",
		    "outbox", log_q(j->err));
	if (j->pending >= 0)
		metrics_set("photosync_notifications_pending", NULL,
		    (double)j->pending);
	for (i = 0; i < j->n_rows; i++) {
		/*
		 * Read before an outcome was written: a row may look due
		 * that was just delivered. Look again instead.
		 */
		if (!stale && n->n_inflight < NOTIFY_PARALLEL &&
		    !is_inflight(n, j->rows[i]->row.id))
			send_one(n, j->rows[i]);
		else
			sending_free(j->rows[i]);
	}
	free(j);
	if (stale || n->again) {
		n->again = false;
		look(n);
	}
}

static void
look(struct notifier *n)
{
	struct store_pool *pool = n->srv->pool;
	struct due_job *j;

	if (n->stopping || pool == NULL)
		return;
	if (n->reading) {
		n->again = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->n = n;
	j->settled = n->settled;
	if (store_pool_write(pool, due_run, due_done, j) != PS_OK) {
		/* The write lane is full: the next tick looks again. */
		free(j);
		return;
	}
	n->jobs++;
	n->reading = true;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	look(arg);
}

void
notifier_wake(struct notifier *n)
{
	look(n);
}

struct notifier *
notifier_new(struct master_srv *srv)
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	struct timeval tv = { NOTIFY_TICK_MS / 1000,
	    (NOTIFY_TICK_MS % 1000) * 1000 };
	char *key = master_path(srv->ms, MASTER_S2S_KEY);

	n->srv = srv;
	if (pki_key_load(key, &n->key) != PS_OK) {
		free(key);
		free(n);
		return NULL;
	}
	free(key);
	n->xfer = xfer_loop_new(srv->base);
	n->timer = event_new(srv->base, -1, EV_PERSIST, tick, n);
	event_add(n->timer, &tv);
	metrics_declare("photosync_notifications_total", "counter",
	    "Change notifications to partners, by result.");
	metrics_declare("photosync_notifications_pending", "gauge",
	    "Change notifications waiting to be delivered.");
	return n;
}

void
notifier_free(struct notifier *n)
{
	int i;

	if (n == NULL)
		return;
	n->stopping = true;
	if (n->timer)
		event_free(n->timer);
	/* Transfers in flight are cancelled; their rows stay queued. */
	xfer_loop_free(n->xfer);
	n->xfer = NULL;
	for (i = 0; i < n->n_inflight; )
		if (n->inflight[i]->settling) {
			i++;
		} else {
			sending_free(n->inflight[i]);
			n->inflight[i] = n->inflight[--n->n_inflight];
		}
	pki_key_free(n->key);
	n->key = NULL;
	/* Outcomes being written keep it until they are (settle_done). */
	if (n->jobs == 0)
		notifier_release(n);
}
