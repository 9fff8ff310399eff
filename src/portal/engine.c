/*
 * The portal's running parts, without HTTP: the event loop, the store's
 * lanes, transfers to the master, worker threads, and the web
 * applications with their signing keys and the trusted issuers. `serve`
 * adds listeners, the change feed and the sign-in guard on top; `refresh`
 * uses it as it is.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/guard.h"
#include "auth/share.h"
#include "auth/sso.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "index.h"
#include "pki/pki.h"
#include "portal_int.h"
#include "store/pool.h"
#include "work/work.h"
#include "xfer/xfer.h"

struct app_list {
	struct webapp_ctx	*a;
	size_t			 n;
	const char		*only_url;
};

static ps_err
collect_app(void *arg, const struct store_webapp *w)
{
	struct app_list *l = arg;

	if (l->only_url && strcasecmp(l->only_url, w->url) != 0)
		return PS_OK;
	l->a = xrealloc(l->a, (l->n + 1) * sizeof(*l->a));
	memset(&l->a[l->n], 0, sizeof(*l->a));
	l->a[l->n].w = *w;
	l->n++;
	return PS_OK;
}

static ps_err
app_load(struct portal_srv *srv, struct webapp_ctx *app)
{
	char *key = portal_webapp_path(srv->ps->dir, app->w.id, "s2s-key");
	char *cert = portal_webapp_path(srv->ps->dir, app->w.id, "s2s-cert");
	ps_err rc;

	app->srv = srv;
	app->base_url = xstrdup(app->w.url);
	if ((rc = auth_sso_new(app->w.sso_header, app->w.sso_proxies,
	    &app->sso)) != PS_OK)
		return ps_errf(rc, "web application %s: its single sign-on "
		    "settings: %s", app->w.url, ps_errmsg());
	if ((rc = pki_key_load(key, &app->s2s_key)) == PS_OK)
		rc = pki_cert_load(cert, &app->s2s_cert, &app->s2s_cert_len);
	free(key);
	free(cert);
	return rc;
}

/* The users added before avatars existed: they lack address hashes. */
struct unhashed {
	struct unhashed_user {
		char	 account[ACCOUNT_MAX];
		char	 email[256];	/* as in struct store_user */
	}			*u;
	size_t			 n;
};

static ps_err
collect_unhashed(void *arg, const struct store_user *u)
{
	struct unhashed *l = arg;

	if (u->email_md5[0] && u->email_sha256[0])
		return PS_OK;
	l->u = xrealloc(l->u, (l->n + 1) * sizeof(*l->u));
	str_copy(l->u[l->n].account, u->account, sizeof(l->u[l->n].account));
	str_copy(l->u[l->n].email, u->email, sizeof(l->u[l->n].email));
	l->n++;
	return PS_OK;
}

/*
 * Gives those users their hashes, in one transaction taken for writing
 * from its start: a write inside the listing's read would have to turn
 * that read into a write, which SQLite refuses at once (no waiting) when
 * another process wrote meanwhile (two `portal refresh` starting
 * together).
 */
static ps_err
hash_users(struct store *st)
{
	struct unhashed l = { 0 };
	char md5[33], sha256[65];
	size_t i;
	ps_err rc;

	if ((rc = store_user_each(st, collect_unhashed, &l)) != PS_OK ||
	    l.n == 0 || (rc = store_begin(st)) != PS_OK)
		goto out;
	for (i = 0; i < l.n && rc == PS_OK; i++) {
		account_email_hashes(l.u[i].email, md5, sha256);
		rc = store_user_set_hashes(st, l.u[i].account, md5, sha256);
	}
	if (store_end(st, rc == PS_OK) != PS_OK && rc == PS_OK)
		rc = PS_ESTORE;
out:
	free(l.u);
	return rc;
}

ps_err
portal_srv_init(struct portal_srv *srv, struct portal_state *ps,
    const char *only_url)
{
	struct app_list l = { .only_url = only_url };
	char *db = store_locate(ps->dir, PORTAL_DB);
	size_t i;
	ps_err rc;

	memset(srv, 0, sizeof(*srv));
	srv->ps = ps;
	srv->base = event_base_new();
	/* Before it serves, the process may use its own store directly. */
	if ((rc = hash_users(ps->store)) != PS_OK ||
	    (rc = store_webapp_each(ps->store, collect_app, &l)) != PS_OK ||
	    (rc = portal_issuers_load(ps->store, &srv->issuers)) != PS_OK)
		goto out;
	srv->apps = l.a;
	srv->n_apps = l.n;
	if (l.n == 0) {
		rc = only_url ? ps_errf(PS_ENOTFOUND, "no web application "
		    "%s", only_url) : ps_errf(PS_EINVAL, "no web application "
		    "(photosync portal webapp add)");
		goto out;
	}
	for (i = 0; i < srv->n_apps; i++)
		if ((rc = app_load(srv, &srv->apps[i])) != PS_OK)
			goto out;
	if ((rc = store_pool_open(srv->base, db, STORE_PORTAL,
	    &srv->store)) != PS_OK)
		goto out;
	if ((srv->xfer = xfer_loop_new(srv->base)) == NULL ||
	    (srv->pool = work_pool_new(srv->base, 0)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	work_pool_set_cap(srv->pool, PORTAL_IMAGE_QUEUE);
	srv->index = index_new(srv->store);
	sync_caches_init(srv);
	rc = PS_OK;
out:
	free(db);
	return rc;
}

void
portal_srv_cleanup(struct portal_srv *srv)
{
	size_t i;

	/* Image work finishes and reports; then the store's queue drains. */
	if (srv->pool) {
		work_pool_drain(srv->pool);
		work_pool_free(srv->pool);
	}
	xfer_loop_free(srv->xfer);
	if (srv->store)
		sync_stop(srv);
	store_pool_free(srv->store);
	/* After the store's queue (its last writes), before the guard. */
	auth_share_free(srv->share);
	/*
	 * After the store's queue: a sign-in lookup finishing there hands
	 * its password to the guard.
	 */
	auth_guard_free(srv->guard);
	sync_shutdown(srv);
	for (i = 0; i < srv->n_apps; i++) {
		pki_key_free(srv->apps[i].s2s_key);
		free(srv->apps[i].s2s_cert);
		free(srv->apps[i].base_url);
		auth_sso_free(srv->apps[i].sso);
	}
	free(srv->apps);
	portal_issuers_cleanup(&srv->issuers);
	index_free(srv->index);
	if (srv->base)
		event_base_free(srv->base);
	memset(srv, 0, sizeof(*srv));
}
