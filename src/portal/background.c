/*
 * The background refresher of a web application (`webapp set
 * --background-refresh 24h`, off by default): the owner-triggered sync,
 * run by the portal itself so that every user's photo is refreshed at
 * least once per interval without their visiting.
 *
 * It never stampedes the master: every BG_TICK seconds it starts only as
 * many syncs as spread the whole directory evenly over the interval
 * (users / interval * tick, at least one), at most BG_PARALLEL at a time,
 * walking the users in account order with a cursor. The expiration
 * windows still apply, so a photo fetched recently is not asked for again.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "portal_int.h"
#include "store/pool.h"

#define BG_TICK		2	/* seconds */
#define BG_PARALLEL	4
#define BG_MAX_PER_TICK	200

/* One tick's look at the users, on the read lane. */
struct bg_page {
	struct webapp_ctx	*app;
	struct store		*st;		/* the lane's, while it runs */
	char			 cursor[256];
	int64_t			 interval;
	int			 budget;	/* syncs it may start */
	int			 budget_used;	/* syncs already running */
	int			 limit;		/* users it may look at */
	int			 seen;
	int64_t			 now;
	/* the users due, in account order */
	struct store_user	*due;
	int			 n_due;
	bool			 at_end;
	ps_err			 rc;
	char			 err[256];
};

static void
bg_done(void *arg, const struct sync_outcome *o)
{
	struct webapp_ctx *app = arg;

	(void)o;
	app->bg_inflight--;
}

static ps_err
bg_user(void *arg, const struct store_user *u)
{
	struct bg_page *pg = arg;
	struct store_sync s;

	if (pg->n_due >= pg->budget)
		return PS_EEXIST;	/* stop here; this user comes next */
	pg->seen++;
	str_copy(pg->cursor, u->account, sizeof(pg->cursor));
	if (store_sync_get(pg->st, pg->app->w.id, u->account, &s) != PS_OK ||
	    (s.last_success && pg->now - s.last_success < pg->interval))
		return PS_OK;
	pg->due[pg->n_due] = *u;
	pg->due[pg->n_due].pwhash = NULL;
	pg->n_due++;
	return PS_OK;
}

static void
bg_page_run(struct store *st, void *arg)
{
	struct bg_page *pg = arg;
	int64_t users = 0, per_tick;
	ps_err rc;

	pg->st = st;
	if ((rc = store_user_count(st, &users)) != PS_OK || users == 0)
		goto out;
	per_tick = (users * BG_TICK + pg->interval - 1) / pg->interval;
	pg->budget = (int)(per_tick < 1 ? 1 : per_tick > BG_MAX_PER_TICK ?
	    BG_MAX_PER_TICK : per_tick);
	if (pg->budget > BG_PARALLEL - pg->budget_used)
		pg->budget = BG_PARALLEL - pg->budget_used;
	/* Look a little further than the budget: fresh users are skipped. */
	pg->limit = pg->budget * 4;
	pg->due = xcalloc((size_t)pg->budget + 1, sizeof(*pg->due));
	rc = store_user_page(st, pg->cursor, pg->limit, bg_user, pg);
	if (rc == PS_EEXIST)
		rc = PS_OK;
	pg->at_end = rc == PS_OK && pg->seen < pg->limit &&
	    pg->n_due < pg->budget;
out:
	pg->st = NULL;
	if ((pg->rc = rc) != PS_OK)
		str_copy(pg->err, ps_errmsg(), sizeof(pg->err));
}

static void
bg_page_done(void *arg)
{
	struct bg_page *pg = arg;
	struct webapp_ctx *app = pg->app;
	char reqid[17];
	int i;

	app->bg_paging = false;
	if (pg->rc != PS_OK)
		log_warn(NULL, "background.unread", "url=%s error=%s",
		    log_q(app->w.url), log_q(pg->err));
	else
		str_copy(app->bg_cursor, pg->at_end ? "" : pg->cursor,
		    sizeof(app->bg_cursor));
	for (i = 0; i < pg->n_due; i++) {
		reqid_new(reqid);
		if (sync_request(app, &pg->due[i], reqid, 0, bg_done, app) ==
		    SYNC_STARTED) {
			app->bg_inflight++;
			log_debug(reqid, "background.sync", "account=%s",
			    log_q(pg->due[i].account));
		}
	}
	free(pg->due);
	free(pg);
}

static void
bg_tick(evutil_socket_t fd, short what, void *arg)
{
	struct webapp_ctx *app = arg;
	struct bg_page *pg;

	(void)fd;
	(void)what;
	if (!app->w.photo_import || app->w.background_refresh <= 0 ||
	    app->bg_paging || app->bg_inflight >= BG_PARALLEL)
		return;
	pg = xcalloc(1, sizeof(*pg));
	pg->app = app;
	pg->interval = app->w.background_refresh;
	pg->budget_used = app->bg_inflight;
	pg->now = time_now();
	str_copy(pg->cursor, app->bg_cursor, sizeof(pg->cursor));
	if (store_pool_read(app->srv->store, bg_page_run, bg_page_done, pg) !=
	    PS_OK) {
		free(pg);
		return;
	}
	app->bg_paging = true;
}

void
background_start(struct webapp_ctx *app)
{
	struct timeval tv = { BG_TICK, 0 };

	app->bg_timer = event_new(app->srv->base, -1, EV_PERSIST, bg_tick,
	    app);
	event_add(app->bg_timer, &tv);
}

void
background_stop(struct webapp_ctx *app)
{
	if (app->bg_timer)
		event_free(app->bg_timer);
	app->bg_timer = NULL;
}
