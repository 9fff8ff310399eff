/*
 * photosync portal refresh: fetches photos for users who never visited,
 * with the same sync as an owner's visit (sync.c), many at a time.
 *
 * It respects the expiration windows unless --force, so an unchanged
 * photo costs one conditional request (a 304); when the master answers
 * 429 or 503 it waits for Retry-After before starting anything else and
 * tries that user again. A progress bar is drawn on a terminal, a summary
 * printed at the end. Ctrl-C stops starting new syncs, lets the ones in
 * flight finish and prints the summary; nothing is left half-stored. It
 * runs beside a serving portal on the same state directory.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "portal_int.h"
#include "refresh.h"

#define MAX_ATTEMPTS	5
#define MAX_PAUSE_S	300
#define MAX_LISTED	20
/* Autodiscover asked ahead for this many users at a time, two at once. */
#define DISCOVER_BATCH	AD_MAX_USERS
#define DISCOVER_AHEAD	2
/*
 * --concurrency bounds the syncs calling the master (sync.c holds the
 * others back: master_limit); up to this many more are started, which
 * read their states and take their leases before their turn, and render
 * and wait for their writes after it: enough for the leases and the
 * writes to go in batches, not one commit per user. All together stay
 * within what the image workers queue, so that no render is refused.
 */
#define PAST_MASTER	32
#define START_GROUP	16

struct item {
	struct webapp_ctx	*app;
	struct store_user	 user;
	int			 attempts;
	bool			 discovered;	/* its batch was answered */
};

struct reason_count {
	char	reason[160];
	int	n;
};

struct refresh {
	struct portal_srv	 srv;
	struct item		*items;
	size_t			 n, cap;
	size_t			*queue;		/* indexes still to start */
	size_t			 q_head, q_len, q_cap;
	int			 concurrency, inflight, flags;
	/* Autodiscover asked ahead, in batches, in the items' order */
	size_t			 discover_next;	/* first item not asked */
	int			 discovering;	/* batches in flight */
	bool			 pumping;	/* pump() is running */
	int64_t			 pause_until;	/* monotonic ms */
	bool			 interrupted, tty;
	int64_t			 last_draw;
	char			 reqid[17];
	unsigned		 seq;
	/* the tally */
	int			 count[SYNC_FAILED + 1];
	int			 fresh, error_window, import_off, retries;
	int			 elsewhere;	/* fetched by another process */
	struct reason_count	 reasons[16];
	char			 failed_users[MAX_LISTED][300];
	int			 n_failed_listed;
	struct event		*tick, *sigint, *sigterm;
};

static void
queue_push(struct refresh *rf, size_t idx)
{
	if (rf->q_len == rf->q_cap) {
		size_t i, cap = rf->q_cap ? rf->q_cap * 2 : 64;
		size_t *q = xcalloc(cap, sizeof(*q));

		for (i = 0; i < rf->q_len; i++)
			q[i] = rf->queue[(rf->q_head + i) % rf->q_cap];
		free(rf->queue);
		rf->queue = q;
		rf->q_cap = cap;
		rf->q_head = 0;
	}
	rf->queue[(rf->q_head + rf->q_len) % rf->q_cap] = idx;
	rf->q_len++;
}

static size_t
queue_pop(struct refresh *rf)
{
	size_t idx = rf->queue[rf->q_head];

	rf->q_head = (rf->q_head + 1) % rf->q_cap;
	rf->q_len--;
	return idx;
}

static void
add_item(struct refresh *rf, struct webapp_ctx *app,
    const struct store_user *u)
{
	if (rf->n == rf->cap) {
		rf->cap = rf->cap ? rf->cap * 2 : 64;
		rf->items = xrealloc(rf->items, rf->cap * sizeof(*rf->items));
	}
	memset(&rf->items[rf->n], 0, sizeof(*rf->items));
	rf->items[rf->n].app = app;
	rf->items[rf->n].user = *u;
	rf->items[rf->n].user.pwhash = NULL;
	queue_push(rf, rf->n);
	rf->n++;
}

static void
tally_reason(struct refresh *rf, const char *account, const char *reason)
{
	size_t i;

	for (i = 0; i < sizeof(rf->reasons) / sizeof(*rf->reasons); i++) {
		if (rf->reasons[i].n == 0) {
			str_copy(rf->reasons[i].reason, reason,
			    sizeof(rf->reasons[i].reason));
			rf->reasons[i].n = 1;
			break;
		}
		if (strcmp(rf->reasons[i].reason, reason) == 0) {
			rf->reasons[i].n++;
			break;
		}
	}
	if (rf->n_failed_listed < MAX_LISTED) {
		char *line = xasprintf("%s: %s", account, reason);

		/* Long reasons are cut; the log has them whole. */
		str_copy(rf->failed_users[rf->n_failed_listed++], line,
		    sizeof(*rf->failed_users));
		free(line);
	}
}

static int
done_count(const struct refresh *rf)
{
	int i, n = rf->fresh + rf->error_window + rf->import_off +
	    rf->elsewhere;

	for (i = 0; i <= SYNC_FAILED; i++)
		n += rf->count[i];
	return n;
}

static void
draw(struct refresh *rf, bool force)
{
	int64_t now = time_mono_ms();
	int done = done_count(rf), width = 30, filled, i;
	char bar[64];

	if (!rf->tty || (!force && now - rf->last_draw < 100))
		return;
	rf->last_draw = now;
	filled = rf->n ? (int)((int64_t)done * width / (int64_t)rf->n) : width;
	for (i = 0; i < width; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %d/%zu  updated %d  unchanged %d  no photo "
	    "%d  no mailbox %d  failed %d%s\033[K", bar, done, rf->n,
	    rf->count[SYNC_UPDATED], rf->count[SYNC_UNCHANGED],
	    rf->count[SYNC_NO_PHOTO], rf->count[SYNC_NO_MAILBOX],
	    rf->count[SYNC_FAILED], rf->pause_until > now ? "  (master busy, "
	    "waiting)" : "");
	fflush(stderr);
}

static void pump(struct refresh *);

/* A batch of Autodiscover answers is in (or failed): its items may go. */
struct discover_batch {
	struct refresh	*rf;
	size_t		 from, to;	/* items */
};

static void
batch_done(void *arg)
{
	struct discover_batch *b = arg;
	struct refresh *rf = b->rf;
	size_t i;

	for (i = b->from; i < b->to; i++)
		rf->items[i].discovered = true;
	rf->discovering--;
	free(b);
	pump(rf);
}

/*
 * Asks Autodiscover about the next items of one web application in one
 * call, so that each sync then needs one call to the master, not two.
 */
static void
discover_ahead(struct refresh *rf)
{
	struct discover_batch *b = xcalloc(1, sizeof(*b));
	const struct store_user *users[DISCOVER_BATCH];
	struct webapp_ctx *app = rf->items[rf->discover_next].app;
	char reqid[40];
	size_t n = 0;

	b->rf = rf;
	b->from = rf->discover_next;
	while (rf->discover_next < rf->n && n < DISCOVER_BATCH &&
	    rf->items[rf->discover_next].app == app)
		users[n++] = &rf->items[rf->discover_next++].user;
	b->to = rf->discover_next;
	rf->discovering++;
	snprintf(reqid, sizeof(reqid), "%s-d%zu", rf->reqid, b->from);
	sync_discover_prefetch(app, users, n, reqid, batch_done, b);
}

static void
item_done(void *arg, const struct sync_outcome *o)
{
	struct item *it = arg;
	struct refresh *rf = it->app->srv->refresh;

	rf->inflight--;
	if (o->elsewhere) {
		rf->elsewhere++;
	} else if (o->result == SYNC_FRESH) {
		rf->fresh++;
	} else if (o->result == SYNC_ERROR_WINDOW) {
		rf->error_window++;
	} else if (o->result == SYNC_BUSY && it->attempts < MAX_ATTEMPTS) {
		long wait = o->retry_after > 0 ? o->retry_after : 5;

		if (wait > MAX_PAUSE_S)
			wait = MAX_PAUSE_S;
		it->attempts++;
		rf->retries++;
		/* Nothing new starts before the master said we may. */
		if (time_mono_ms() + wait * 1000 > rf->pause_until)
			rf->pause_until = time_mono_ms() + wait * 1000;
		log_info(NULL, "refresh.backoff", "account=%s wait_s=%ld "
		    "attempt=%d", log_q(it->user.account), wait, it->attempts);
		queue_push(rf, (size_t)(it - rf->items));
	} else {
		rf->count[o->result == SYNC_BUSY ? SYNC_FAILED : o->result]++;
		if (o->result == SYNC_FAILED || o->result == SYNC_BUSY)
			tally_reason(rf, it->user.account, o->reason);
	}
	draw(rf, false);
	pump(rf);
}

static void
start_item(struct refresh *rf, struct item *it)
{
	char reqid[40];
	int flags = rf->flags | (it->attempts ? SYNC_FORCE : 0);

	snprintf(reqid, sizeof(reqid), "%s-%u", rf->reqid, ++rf->seq);
	switch (sync_request(it->app, &it->user, reqid, flags, item_done,
	    it)) {
	case SYNC_STARTED:
		rf->inflight++;
		break;
	case SYNC_NOT_DUE_FRESH:
		rf->fresh++;
		break;
	case SYNC_NOT_DUE_ERROR:
		rf->error_window++;
		break;
	case SYNC_OFF:
		rf->import_off++;
		break;
	}
}

static void
pump(struct refresh *rf)
{
	int limit;

	/* A batch answered at once calls back: the loops below go on. */
	if (rf->pumping)
		return;
	rf->pumping = true;
	while (!rf->interrupted && rf->discovering < DISCOVER_AHEAD &&
	    rf->discover_next < rf->n)
		discover_ahead(rf);
	/*
	 * In order: an item goes once its batch was answered. While the
	 * master has enough to do, items start in groups (START_GROUP), so
	 * that their leases are taken together.
	 */
	limit = rf->concurrency + PAST_MASTER < PORTAL_IMAGE_QUEUE ?
	    rf->concurrency + PAST_MASTER : PORTAL_IMAGE_QUEUE;
	if (rf->inflight > rf->concurrency &&
	    rf->inflight + START_GROUP > limit)
		limit = rf->inflight;
	while (!rf->interrupted && rf->q_len > 0 && rf->inflight < limit &&
	    time_mono_ms() >= rf->pause_until &&
	    rf->items[rf->queue[rf->q_head]].discovered)
		start_item(rf, &rf->items[queue_pop(rf)]);
	rf->pumping = false;
	if (rf->inflight == 0 && rf->discovering == 0 && (rf->q_len == 0 ||
	    rf->interrupted))
		event_base_loopexit(rf->srv.base, NULL);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	draw(arg, false);
	pump(arg);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct refresh *rf = arg;

	(void)sig;
	(void)what;
	if (rf->interrupted) {
		event_base_loopbreak(rf->srv.base);
		return;
	}
	rf->interrupted = true;
	if (rf->tty)
		fputc('\n', stderr);
	fprintf(stderr, "photosync portal refresh: interrupted; letting %d "
	    "sync(s) in flight finish (Ctrl-C again to stop now)\n",
	    rf->inflight);
	pump(rf);
}

static ps_err
collect_user(void *arg, const struct store_user *u)
{
	struct refresh *rf = arg;
	size_t i;

	for (i = 0; i < rf->srv.n_apps; i++)
		add_item(rf, &rf->srv.apps[i], u);
	return PS_OK;
}

static void
summary(struct refresh *rf)
{
	size_t i;
	int j;

	draw(rf, true);
	if (rf->tty)
		fputc('\n', stderr);
	printf("%s %zu user%s in %zu web application%s:\n",
	    rf->interrupted ? "interrupted after" : "refreshed",
	    rf->srv.n_apps ? rf->n / rf->srv.n_apps : 0,
	    rf->n / (rf->srv.n_apps ? rf->srv.n_apps : 1) == 1 ? "" : "s",
	    rf->srv.n_apps, rf->srv.n_apps == 1 ? "" : "s");
	printf("  updated      %d\n  unchanged    %d\n  no photo     %d\n"
	    "  no mailbox   %d\n  failed       %d\n",
	    rf->count[SYNC_UPDATED], rf->count[SYNC_UNCHANGED],
	    rf->count[SYNC_NO_PHOTO], rf->count[SYNC_NO_MAILBOX],
	    rf->count[SYNC_FAILED]);
	if (rf->elsewhere)
		printf("  elsewhere    %d (fetched meanwhile by another "
		    "process of this store: another node or run)\n",
		    rf->elsewhere);
	if (rf->fresh)
		printf("  still fresh  %d (within the photo expiration; "
		    "--force fetches anyway)\n", rf->fresh);
	if (rf->error_window)
		printf("  waiting      %d (within the error expiration; "
		    "--force tries anyway)\n", rf->error_window);
	if (rf->import_off)
		printf("  import off   %d (photo import is off for their web "
		    "application)\n", rf->import_off);
	if (rf->retries)
		printf("  the master asked to slow down %d time%s "
		    "(429/503, Retry-After honoured)\n", rf->retries,
		    rf->retries == 1 ? "" : "s");
	if (rf->interrupted && rf->q_len)
		printf("  not started  %zu\n", rf->q_len);
	for (i = 0; i < sizeof(rf->reasons) / sizeof(*rf->reasons) &&
	    rf->reasons[i].n; i++) {
		if (i == 0)
			printf("failures by reason:\n");
		printf("  %4d  %s\n", rf->reasons[i].n, rf->reasons[i].reason);
	}
	for (j = 0; j < rf->n_failed_listed; j++)
		printf("%s  %s\n", j == 0 ? "failed users (first 20):\n" : "",
		    rf->failed_users[j]);
}

int
portal_refresh_run(struct portal_state *ps, const char *url,
    const char *const *accounts, size_t n_accounts, bool all, bool force,
    int concurrency)
{
	struct refresh *rf = xcalloc(1, sizeof(*rf));
	struct timeval tv = { 0, 50000 };
	struct store_user u;
	char account[ACCOUNT_MAX];
	bool is_email;
	size_t i, j;
	ps_err rc;
	int ret = 1;

	rf->concurrency = concurrency > 0 ? concurrency : 4;
	rf->flags = force ? SYNC_FORCE : 0;
	rf->tty = isatty(STDERR_FILENO);
	reqid_new(rf->reqid);
	signal(SIGPIPE, SIG_IGN);
	if (portal_srv_init(&rf->srv, ps, url) != PS_OK) {
		fprintf(stderr, "photosync portal refresh: %s\n", ps_errmsg());
		goto out;
	}
	rf->srv.refresh = rf;
	/* Another run's outcomes from now on are this pass's too. */
	rf->srv.pass_started = time_now();
	for (i = 0; i < rf->srv.n_apps; i++)
		if (!rf->srv.apps[i].w.photo_import)
			fprintf(stderr, "photosync portal refresh: photo import "
			    "is off for %s (webapp set --photo-import on)\n",
			    rf->srv.apps[i].w.url);
	if (all) {
		if (store_user_each(ps->store, collect_user, rf) != PS_OK) {
			fprintf(stderr, "photosync portal refresh: %s\n",
			    ps_errmsg());
			goto out;
		}
	}
	for (j = 0; j < n_accounts; j++) {
		if (account_parse(accounts[j], account, &is_email) != PS_OK ||
		    (is_email ? store_user_get_by_email(ps->store, account,
		    &u) : store_user_get(ps->store, account, &u)) != PS_OK) {
			fprintf(stderr, "photosync portal refresh: %s\n",
			    ps_errmsg());
			goto out;
		}
		collect_user(rf, &u);
		store_user_cleanup(&u);
	}
	/* Every user's state in one read, not one store call each. */
	for (i = 0; i < rf->srv.n_apps; i++) {
		struct webapp_ctx *app = &rf->srv.apps[i];
		const char **acc = xcalloc(rf->n + 1, sizeof(*acc));
		size_t k = 0;

		for (j = 0; j < rf->n; j++)
			if (rf->items[j].app == app)
				acc[k++] = rf->items[j].user.account;
		rc = sync_preload(app, ps->store, acc, k);
		free(acc);
		if (rc != PS_OK) {
			fprintf(stderr, "photosync portal refresh: %s\n",
			    ps_errmsg());
			goto out;
		}
	}
	log_info(rf->reqid, "refresh.start", "users=%zu concurrency=%d "
	    "force=%s", rf->n, rf->concurrency, force ? "yes" : "no");
	rf->tick = event_new(rf->srv.base, -1, EV_PERSIST, on_tick, rf);
	event_add(rf->tick, &tv);
	rf->srv.master_limit = rf->concurrency;
	rf->sigint = evsignal_new(rf->srv.base, SIGINT, on_signal, rf);
	rf->sigterm = evsignal_new(rf->srv.base, SIGTERM, on_signal, rf);
	event_add(rf->sigint, NULL);
	event_add(rf->sigterm, NULL);
	pump(rf);
	event_base_dispatch(rf->srv.base);
	summary(rf);
	log_info(rf->reqid, "refresh.done", "updated=%d unchanged=%d "
	    "no_photo=%d no_mailbox=%d failed=%d fresh=%d elsewhere=%d "
	    "interrupted=%s", rf->count[SYNC_UPDATED],
	    rf->count[SYNC_UNCHANGED], rf->count[SYNC_NO_PHOTO],
	    rf->count[SYNC_NO_MAILBOX], rf->count[SYNC_FAILED], rf->fresh,
	    rf->elsewhere, rf->interrupted ? "yes" : "no");
	ret = rf->count[SYNC_FAILED] || rf->interrupted ? 1 : 0;
out:
	if (rf->tick)
		event_free(rf->tick);
	if (rf->sigint)
		event_free(rf->sigint);
	if (rf->sigterm)
		event_free(rf->sigterm);
	portal_srv_cleanup(&rf->srv);
	free(rf->items);
	free(rf->queue);
	free(rf);
	return ret;
}
