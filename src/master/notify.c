/*
 * Change notifications, the master's side: each photo change queues one
 * notice per partner portal in the store (store_outbox, written in the
 * change's own transaction by any process: photo set, the change-photo
 * page). The running server sends them here: an HTTPS POST to
 *
 *   <partner origin>/_layouts/15/photosync/notify    email=<address>
 *
 * signed as the master (an app-only S2S token: RS256 actor token with
 * x5t, audience the partner's principal at its host and realm), verified
 * against the CA registered with the partner. 2xx: delivered. A 4xx other
 * than 408/429: the partner does not want it, dropped. Anything else:
 * tried again with growing back-off (5 s, 10 s, ... up to an hour), given
 * up after a day — a portal that missed a notice still converges through
 * its expiration windows. Never blocks the change itself nor the loop.
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
#include "xfer/xfer.h"

#define NOTIFY_PATH		"/_layouts/15/photosync/notify"
#define NOTIFY_PARALLEL		8
#define NOTIFY_TICK_MS		1000
#define NOTIFY_GIVE_UP		86400
#define NOTIFY_MAX_BACKOFF	3600
#define NOTIFY_TOKEN_LIFETIME	600

struct sending {
	struct notifier		*n;
	struct store_outbox	 row;
	char			 reqid[17];
};

struct notifier {
	struct master_state	*ms;
	struct event_base	*base;
	struct xfer_loop	*xfer;
	struct pki_key		*key;
	struct event		*timer;
	/* The notices being sent; freed here if the server stops first. */
	struct sending		*inflight[NOTIFY_PARALLEL];
	int			 n_inflight;
};

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

/* Schedules another attempt, or gives up after a day. */
static void
retry_later(struct notifier *n, const struct store_outbox *row,
    const char *reqid, const char *why)
{
	int64_t now = time_now(), wait = 5;
	int i;

	for (i = 0; i < row->attempts && wait < NOTIFY_MAX_BACKOFF; i++)
		wait *= 2;
	if (wait > NOTIFY_MAX_BACKOFF)
		wait = NOTIFY_MAX_BACKOFF;
	if (now - row->created > NOTIFY_GIVE_UP) {
		log_warn(reqid, "notify.given_up", "partner=%s email=%s "
		    "attempts=%d reason=%s", log_q(row->partner),
		    log_q(row->email), row->attempts + 1, log_q(why));
		store_outbox_done(n->ms->store, row->id);
		count("given_up");
		return;
	}
	log_info(reqid, "notify.retry", "partner=%s email=%s attempt=%d "
	    "wait_s=%lld reason=%s", log_q(row->partner), log_q(row->email),
	    row->attempts + 1, (long long)wait, log_q(why));
	store_outbox_retry(n->ms->store, row->id, now + wait, why);
	count("retried");
}

static void
sent(const struct xfer_response *r, void *arg)
{
	struct sending *sd = arg;
	struct notifier *n = sd->n;
	char why[300];

	inflight_remove(n, sd);
	if (r->rc != PS_OK) {
		retry_later(n, &sd->row, sd->reqid, r->error);
	} else if (r->status >= 200 && r->status < 300) {
		log_info(sd->reqid, "notify.delivered", "partner=%s email=%s "
		    "status=%ld ms=%lld", log_q(sd->row.partner),
		    log_q(sd->row.email), r->status,
		    (long long)r->elapsed_ms);
		store_outbox_done(n->ms->store, sd->row.id);
		count("delivered");
	} else if (r->status >= 400 && r->status < 500 && r->status != 408 &&
	    r->status != 429) {
		log_warn(sd->reqid, "notify.refused", "partner=%s email=%s "
		    "status=%ld", log_q(sd->row.partner), log_q(sd->row.email),
		    r->status);
		store_outbox_done(n->ms->store, sd->row.id);
		count("refused");
	} else {
		snprintf(why, sizeof(why), "the partner answered HTTP %ld",
		    r->status);
		retry_later(n, &sd->row, sd->reqid, why);
	}
	free(sd);
}

/* Starts sending one notice; false when it could not even start. */
static void
send_one(struct notifier *n, const struct store_outbox *row)
{
	struct store_partner p = { 0 };
	struct s2s_metadata md = { 0 };
	struct xfer_request xr = { 0 };
	struct sending *sd = xcalloc(1, sizeof(*sd));
	char *host = NULL, *url = NULL, *token = NULL, *auth = NULL;
	char *enc = NULL, *body = NULL, authority[300];
	const char *hdrs[3];
	struct s2s_mint m = { 0 };
	int port;
	ps_err rc;

	sd->n = n;
	sd->row = *row;
	reqid_new(sd->reqid);
	if ((rc = store_partner_get(n->ms->store, row->partner, &p)) !=
	    PS_OK || p.metadata_url == NULL ||
	    (rc = setup_https_url_host(p.metadata_url, &host, &port)) !=
	    PS_OK || (rc = s2s_metadata_parse(p.metadata, strlen(p.metadata),
	    &md)) != PS_OK) {
		/* The partner went away or cannot be reached by URL. */
		log_warn(sd->reqid, "notify.dropped", "partner=%s email=%s "
		    "reason=%s", log_q(row->partner), log_q(row->email),
		    log_q(p.metadata_url ? ps_errmsg() : "no metadata URL"));
		store_outbox_done(n->ms->store, row->id);
		count("dropped");
		free(sd);
		goto out;
	}
	if (port == 443)
		snprintf(authority, sizeof(authority), "%s", host);
	else
		snprintf(authority, sizeof(authority), "%s:%d", host, port);
	m.key = n->key;
	m.cert_der = n->ms->s2s_cert;
	m.cert_len = n->ms->s2s_cert_len;
	m.client_id = S2S_EXCHANGE_ID;
	m.realm = n->ms->realm;
	m.target_id = S2S_SHAREPOINT_ID;
	m.target_host = authority;
	m.target_realm = md.realm;
	m.now = time_now();
	m.lifetime = NOTIFY_TOKEN_LIFETIME;
	if (s2s_token_mint(&m, &token) != PS_OK) {
		retry_later(n, row, sd->reqid, ps_errmsg());
		free(sd);
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
	xr.ca_file = p.ca_file[0] ? p.ca_file : NULL;
	xr.timeout_ms = 10000;
	xr.max_bytes = 64 * 1024;
	xr.reqid = sd->reqid;
	log_info(sd->reqid, "notify.send", "partner=%s email=%s url=%s "
	    "attempt=%d", log_q(row->partner), log_q(row->email), log_q(url),
	    row->attempts + 1);
	if (xfer_start(n->xfer, &xr, sent, sd) != PS_OK) {
		retry_later(n, row, sd->reqid, ps_errmsg());
		free(sd);
		goto out;
	}
	n->inflight[n->n_inflight++] = sd;
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
	store_partner_cleanup(&p);
}

static ps_err
due(void *arg, const struct store_outbox *row)
{
	struct notifier *n = arg;

	if (n->n_inflight < NOTIFY_PARALLEL && !is_inflight(n, row->id))
		send_one(n, row);
	return PS_OK;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;
	int64_t pending;

	(void)fd;
	(void)what;
	if (n->n_inflight < NOTIFY_PARALLEL)
		store_outbox_due(n->ms->store, time_now(), NOTIFY_PARALLEL,
		    due, n);
	pending = store_outbox_pending(n->ms->store);
	if (pending >= 0)
		metrics_set("photosync_notifications_pending", NULL,
		    (double)pending);
}

struct notifier *
notifier_new(struct master_state *ms, struct event_base *base)
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	struct timeval tv = { NOTIFY_TICK_MS / 1000,
	    (NOTIFY_TICK_MS % 1000) * 1000 };
	char *key = master_path(ms, MASTER_S2S_KEY);

	n->ms = ms;
	n->base = base;
	if (pki_key_load(key, &n->key) != PS_OK) {
		free(key);
		free(n);
		return NULL;
	}
	free(key);
	n->xfer = xfer_loop_new(base);
	n->timer = event_new(base, -1, EV_PERSIST, tick, n);
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
	if (n == NULL)
		return;
	if (n->timer)
		event_free(n->timer);
	/* Transfers in flight are cancelled; their rows stay queued. */
	xfer_loop_free(n->xfer);
	while (n->n_inflight > 0)
		free(n->inflight[--n->n_inflight]);
	pki_key_free(n->key);
	free(n);
}
