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
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "portal_int.h"

#define BG_TICK		2	/* seconds */
#define BG_PARALLEL	4
#define BG_MAX_PER_TICK	200

struct bg_walk {
	struct webapp_ctx	*app;
	int			 budget;
	int			 seen;
	int64_t			 now;
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
	struct bg_walk *bw = arg;
	struct webapp_ctx *app = bw->app;
	struct store_sync s;
	char reqid[17];

	bw->seen++;
	if (bw->budget <= 0 || app->bg_inflight >= BG_PARALLEL)
		return PS_EEXIST;	/* stop here; this user comes next */
	str_copy(app->bg_cursor, u->account, sizeof(app->bg_cursor));
	if (store_sync_get(app->srv->ps->store, app->w.id, u->account, &s) !=
	    PS_OK || (s.last_success && bw->now - s.last_success <
	    app->w.background_refresh))
		return PS_OK;
	reqid_new(reqid);
	if (sync_request(app, u, reqid, 0, bg_done, app) == SYNC_STARTED) {
		app->bg_inflight++;
		bw->budget--;
		log_debug(reqid, "background.sync", "account=%s",
		    log_q(u->account));
	}
	return PS_OK;
}

static void
bg_tick(evutil_socket_t fd, short what, void *arg)
{
	struct webapp_ctx *app = arg;
	struct bg_walk bw = { .app = app, .now = time_now() };
	int64_t users = 0, per_tick;
	int limit;

	(void)fd;
	(void)what;
	portal_refresh(app->srv);
	if (!app->w.photo_import || app->w.background_refresh <= 0 ||
	    store_user_count(app->srv->ps->store, &users) != PS_OK ||
	    users == 0)
		return;
	per_tick = (users * BG_TICK + app->w.background_refresh - 1) /
	    app->w.background_refresh;
	bw.budget = (int)(per_tick < 1 ? 1 : per_tick > BG_MAX_PER_TICK ?
	    BG_MAX_PER_TICK : per_tick);
	/* Look a little further than the budget: fresh users are skipped. */
	limit = bw.budget * 4;
	store_user_page(app->srv->ps->store, app->bg_cursor, limit, bg_user,
	    &bw);
	if (bw.seen < limit && bw.budget > 0 && app->bg_inflight <
	    BG_PARALLEL)
		app->bg_cursor[0] = '\0';	/* the end: start again */
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
