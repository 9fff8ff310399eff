/*
 * Receiving the master's change notices:
 *
 *   POST /_layouts/15/photosync/notify   email=<address>
 *
 * with an app-only S2S token of a trusted issuer, bound to that address
 * (S2S_ADDRESSES_CLAIM: a captured notice replayed with another address
 * is refused). The user's photo
 * changed at the master: the cached one is marked stale (neither window
 * holds the next sync back) and fetched again in the background, so the
 * change shows everywhere within seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "index.h"
#include "metrics/metrics.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "store/pool.h"

/* Validates a bearer token from a trusted issuer (app-only is fine). */
static ps_err
issuer_token_ok(struct webapp_ctx *app, const char *token,
    struct s2s_identity *id)
{
	const struct portal_issuers *l = &app->srv->issuers;
	struct s2s_partner *p = xcalloc(l->n + 1, sizeof(*p));
	struct s2s_expect ex = {
		.client_id = S2S_SHAREPOINT_ID,
		.host = app->w.host,
		.port = app->public_port,
		.realm = app->w.realm,
		.now = time_now(),
	};
	size_t i, n = 0;
	ps_err rc;

	for (i = 0; i < l->n; i++) {
		if (!l->v[i].md_ok)
			continue;
		p[n].issuer = l->v[i].md.issuer;
		p[n].realm = l->v[i].md.realm;
		p[n].certs = l->v[i].md.certs;
		p[n].n_certs = l->v[i].md.n_certs;
		n++;
	}
	rc = s2s_token_validate(token, &ex, p, n, id);
	free(p);
	return rc;
}

/* The token was signed for exactly the address the notice announces. */
static bool
notice_bound(const struct s2s_identity *id, const char *email)
{
	char want[S2S_ADDRESSES_LEN];

	return id->addresses[0] != '\0' &&
	    s2s_addresses_digest(&email, 1, want) == PS_OK &&
	    strcmp(want, id->addresses) == 0;
}

struct notice {
	struct webapp_ctx	*app;
	struct http_req		*r;
	char			 issuer[256];
	struct store_user	 u;
	ps_err			 rc;
	char			 err[256];
};

static void
notify_synced(void *arg, const struct sync_outcome *o)
{
	(void)arg;
	(void)o;
}

static void
stale_run(struct store *st, void *arg)
{
	struct notice *n = arg;
	struct store_sync state;
	ps_err rc;

	if ((rc = store_begin(st)) == PS_OK) {
		if ((rc = store_sync_get(st, n->app->w.id, n->u.account,
		    &state)) == PS_OK) {
			state.last_success = 0;
			state.last_error = 0;
			rc = store_sync_put(st, n->app->w.id, n->u.account,
			    &state);
		}
		rc = store_end(st, rc == PS_OK) == PS_OK ? rc : PS_ESTORE;
	}
	if ((n->rc = rc) != PS_OK)
		str_copy(n->err, ps_errmsg(), sizeof(n->err));
}

static void
stale_done(void *arg)
{
	struct notice *n = arg;
	struct store_change c = { .kind = STORE_CHANGE_SYNC };

	/* Whatever is in memory of the state is out of date now. */
	snprintf(c.key, sizeof(c.key), "%lld/%s", (long long)n->app->w.id,
	    n->u.account);
	str_lower(c.key);
	sync_changed(n->app->srv, &c);
	if (n->rc != PS_OK)
		log_err(http_req_id(n->r), "sync.state_not_saved", "account=%s "
		    "error=%s", log_q(n->u.account), log_q(n->err));
	log_info(http_req_id(n->r), "notify.received", "issuer=%s account=%s",
	    log_q(n->issuer), log_q(n->u.account));
	metrics_add("photosync_notifications_received_total",
	    "result=\"accepted\"", 1);
	sync_request(n->app, &n->u, http_req_id(n->r), SYNC_FORCE | SYNC_AGAIN,
	    notify_synced, NULL);
	http_reply(n->r, 202, "text/plain; charset=utf-8", "accepted\n", 9);
	free(n);
}

static void
user_found(void *arg, ps_err rc, const struct store_user *u)
{
	struct notice *n = arg;

	if (rc == PS_EBUSY || rc == PS_ESTORE) {
		reply_unread(n->app->srv, n->r, rc);
		free(n);
		return;
	}
	if (rc != PS_OK) {
		http_reply_error(n->r, 404, "no such user here");
		metrics_add("photosync_notifications_received_total",
		    "result=\"unknown_user\"", 1);
		free(n);
		return;
	}
	n->u = *u;
	if (store_pool_write(n->app->srv->store, stale_run, stale_done, n) !=
	    PS_OK) {
		reply_busy(n->r, "store writes");
		free(n);
	}
}

void
notice_receive(struct webapp_ctx *app, struct http_req *r)
{
	const char *auth = http_req_header(r, "Authorization");
	struct s2s_identity id;
	struct notice *n;
	char *email;

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
	if (email == NULL || !email_valid(email)) {
		http_reply_error(r, 404, "no such user here");
		metrics_add("photosync_notifications_received_total",
		    "result=\"unknown_user\"", 1);
		free(email);
		return;
	}
	if (!notice_bound(&id, email)) {
		log_warn(http_req_id(r), "notify.unbound", "issuer=%s email=%s",
		    log_q(id.partner), log_q(email));
		http_reply_header(r, "WWW-Authenticate", "Bearer realm=\"\"");
		http_reply_error(r, 401, "the token is not for this address");
		metrics_add("photosync_notifications_received_total",
		    "result=\"refused\"", 1);
		free(email);
		return;
	}
	n = xcalloc(1, sizeof(*n));
	n->app = app;
	n->r = r;
	str_copy(n->issuer, id.partner, sizeof(n->issuer));
	http_req_defer(r);
	index_user(app->srv->index, INDEX_BY_NAME, email, user_found, n);
	free(email);
}
