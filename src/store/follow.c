/*
 * Following the change feed (follow.h). One read of the feed at a time,
 * on the read lane; requests that arrive while the feed has moved wait in
 * a list and are resumed, in arrival order, when a read that started
 * after they arrived has been applied.
 *
 * On PostgreSQL, a LISTEN connection of the follower's own, its socket
 * watched by the loop: a notification starts a read. It is opened on the
 * read lane (connecting waits for the server), again at a tick after it
 * was lost; each time it is open the feed is read from where this server
 * stands, so what was committed while it was not listening is caught up.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "follow.h"
#include "pool.h"

#define FEED_BATCH	1000	/* rows examined per store call */
#define PRUNE_EVERY_S	600

struct follow_waiter {
	struct follow_waiter	*next;
	void			(*resume)(void *);
	void			*arg;
};

struct store_follower {
	struct store_pool		*pool;
	struct store_feed_watch		*watch;		/* NULL: ticks only */
	const struct store_follow_ops	*ops;
	void				*arg;
	struct event_base		*base;
	struct event			*tick;
	int64_t				 last_seq;	/* applied up to */
	uint64_t			 applied;	/* counter covered */
	bool				 reading;
	bool				 freeing;	/* free after the read */
	int64_t				 last_prune;
	/* PostgreSQL: notifications of other nodes' commits */
	char				*address;	/* NULL: SQLite */
	struct store_listen		*listen;
	struct event			*listen_ev;
	bool				 connecting;	/* on the read lane */
	bool				 listen_failing;	/* logged */
	/* waiting for the read in flight, and for the one after it */
	struct follow_waiter		*now, *next;
};

/* One read of the feed, on the read lane. */
struct feed_read {
	struct store_follower	*f;
	uint64_t		 counter;	/* the counter when it began */
	int64_t			 after, last;
	struct store_change	*changes;
	size_t			 n, cap;
	void			*reread;
	ps_err			 rc;
	char			 err[256];
};

static void read_start(struct store_follower *);
static void listen_start(struct store_follower *);

static void
follower_release(struct store_follower *f)
{
	free(f->address);
	free(f);
}

static ps_err
collect(void *arg, const struct store_change *c)
{
	struct feed_read *fr = arg;

	if (fr->n == fr->cap) {
		fr->cap = fr->cap ? fr->cap * 2 : 64;
		fr->changes = xrealloc(fr->changes, fr->cap *
		    sizeof(*fr->changes));
	}
	fr->changes[fr->n++] = *c;
	return PS_OK;
}

static void
read_run(struct store *st, void *arg)
{
	struct feed_read *fr = arg;
	int64_t from;

	fr->last = fr->after;
	do {
		from = fr->last;
		fr->rc = store_feed_read(st, from, FEED_BATCH, collect, fr,
		    &fr->last);
	} while (fr->rc == PS_OK && fr->last > from &&
	    fr->last - from >= FEED_BATCH);
	if (fr->rc == PS_ELIMIT) {
		/* Pruned past us: everything is dropped, go on from the head. */
		fr->n = 0;
		fr->rc = store_feed_head(st, &fr->last);
		if (fr->rc == PS_OK)
			fr->rc = PS_ELIMIT;
	}
	if (fr->rc != PS_OK && fr->rc != PS_ELIMIT) {
		str_copy(fr->err, ps_errmsg(), sizeof(fr->err));
		return;
	}
	if (fr->f->ops->reread)
		fr->reread = fr->f->ops->reread(st, fr->changes, fr->n,
		    fr->rc == PS_ELIMIT);
}

static void
waiters_resume(struct follow_waiter *w)
{
	while (w) {
		struct follow_waiter *next = w->next;

		w->resume(w->arg);
		free(w);
		w = next;
	}
}

static void
read_done(void *arg)
{
	struct feed_read *fr = arg;
	struct store_follower *f = fr->f;
	struct follow_waiter *ready;

	f->reading = false;
	if (fr->rc == PS_ELIMIT)
		log_warn(NULL, "store.feed_lost", "after=%lld resume_at=%lld",
		    (long long)fr->after, (long long)fr->last);
	else if (fr->rc != PS_OK)
		/* Tried again at the next request or tick. */
		log_warn(NULL, "store.feed_unread", "error=%s",
		    log_q(fr->err));
	if (fr->rc == PS_OK || fr->rc == PS_ELIMIT) {
		f->ops->apply(f->arg, fr->changes, fr->n, fr->rc == PS_ELIMIT,
		    fr->reread);
		f->last_seq = fr->last;
		f->applied = fr->counter;
	}
	free(fr->changes);
	free(fr);
	/* Those who waited for this read are served; the rest wait on. */
	ready = f->now;
	f->now = f->next;
	f->next = NULL;
	if (f->freeing) {
		waiters_resume(ready);
		waiters_resume(f->now);
		if (!f->connecting)
			follower_release(f);
		return;
	}
	if (f->now || (f->watch && store_feed_watch_value(f->watch) !=
	    f->applied))
		read_start(f);
	waiters_resume(ready);
}

static void
read_start(struct store_follower *f)
{
	struct feed_read *fr;
	struct follow_waiter *w;

	if (f->reading)
		return;
	fr = xcalloc(1, sizeof(*fr));
	fr->f = f;
	fr->after = f->last_seq;
	fr->counter = f->watch ? store_feed_watch_value(f->watch) : 0;
	/* Everyone waiting now is covered by this read. */
	if (f->now == NULL) {
		f->now = f->next;
		f->next = NULL;
	} else if (f->next) {
		for (w = f->now; w->next; w = w->next)
			;
		w->next = f->next;
		f->next = NULL;
	}
	if (store_pool_read(f->pool, read_run, read_done, fr) != PS_OK) {
		/*
		 * The read lane is full: answer from memory now rather than
		 * hold requests up; the next tick reads the feed.
		 */
		log_warn(NULL, "store.feed_behind", "error=%s",
		    log_q(ps_errmsg()));
		free(fr);
		w = f->now;
		f->now = NULL;
		waiters_resume(w);
		return;
	}
	f->reading = true;
}

static void
prune_run(struct store *st, void *arg)
{
	(void)arg;
	if (store_feed_prune(st, time_now() - STORE_FOLLOW_KEEP_S) != PS_OK)
		log_warn(NULL, "store.feed_prune_failed", "error=%s",
		    log_q(ps_errmsg()));
}

/* ---- PostgreSQL: LISTEN ---- */

struct listen_open {
	struct store_follower	*f;
	struct store_listen	*listen;
	char			 err[256];
};

static void
listen_lost(struct store_follower *f, const char *error)
{
	log_warn(NULL, "store.feed_listen_lost", "error=%s note=%s",
	    log_q(error), log_q("other nodes' changes are read once a "
	    "second until it is back"));
	if (f->listen_ev)
		event_free(f->listen_ev);
	f->listen_ev = NULL;
	store_listen_close(f->listen);
	f->listen = NULL;
}

static void
on_listen(evutil_socket_t fd, short what, void *arg)
{
	struct store_follower *f = arg;
	bool notified = false;

	(void)fd;
	(void)what;
	if (store_listen_drain(f->listen, &notified) != PS_OK) {
		listen_lost(f, ps_errmsg());
		return;
	}
	if (notified)
		read_start(f);
}

static void
listen_open_run(struct store *st, void *arg)
{
	struct listen_open *lo = arg;

	(void)st;
	if ((lo->listen = store_listen_open(lo->f->address)) == NULL)
		str_copy(lo->err, ps_errmsg(), sizeof(lo->err));
}

static void
listen_open_done(void *arg)
{
	struct listen_open *lo = arg;
	struct store_follower *f = lo->f;

	f->connecting = false;
	if (f->freeing) {
		store_listen_close(lo->listen);
		if (!f->reading)
			follower_release(f);
		free(lo);
		return;
	}
	if (lo->listen == NULL) {
		/* Tried again at each tick; logged once until it works. */
		if (!f->listen_failing)
			log_warn(NULL, "store.feed_listen_failed", "error=%s",
			    log_q(lo->err));
		f->listen_failing = true;
		free(lo);
		return;
	}
	f->listen_failing = false;
	f->listen = lo->listen;
	f->listen_ev = event_new(f->base, store_listen_fd(f->listen),
	    EV_READ | EV_PERSIST, on_listen, f);
	event_add(f->listen_ev, NULL);
	log_info(NULL, "store.feed_listening", "address=%s",
	    log_q(f->address));
	free(lo);
	/* What was committed while nobody listened. */
	read_start(f);
}

static void
listen_start(struct store_follower *f)
{
	struct listen_open *lo;

	if (f->address == NULL || f->listen || f->connecting)
		return;
	lo = xcalloc(1, sizeof(*lo));
	lo->f = f;
	if (store_pool_read(f->pool, listen_open_run, listen_open_done, lo) !=
	    PS_OK) {
		free(lo);
		return;
	}
	f->connecting = true;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct store_follower *f = arg;
	int64_t now = time_now();

	(void)fd;
	(void)what;
	/*
	 * Every tick, counter or not: a process that could not map the
	 * counter, or a change made with plain SQL, moves no counter.
	 */
	read_start(f);
	listen_start(f);
	if (now - f->last_prune >= PRUNE_EVERY_S) {
		f->last_prune = now;
		(void)store_pool_write(f->pool, prune_run, NULL, NULL);
	}
}

struct store_follower *
store_follower_new(struct event_base *base, struct store_pool *pool,
    const char *store_path, int64_t from_seq,
    const struct store_follow_ops *ops, void *arg)
{
	struct store_follower *f = xcalloc(1, sizeof(*f));
	struct timeval tv = { STORE_FOLLOW_TICK_MS / 1000,
	    (STORE_FOLLOW_TICK_MS % 1000) * 1000 };

	f->pool = pool;
	f->ops = ops;
	f->arg = arg;
	f->last_seq = from_seq;
	f->last_prune = time_now();
	if ((f->watch = store_feed_watch_open(store_path)) == NULL)
		log_warn(NULL, "store.feed_unwatched", "path=%s error=%s "
		    "note=%s", log_q(store_path), log_q(ps_errmsg()),
		    log_q("changes by other processes are noticed once a "
		    "second"));
	f->tick = event_new(base, -1, EV_PERSIST, on_tick, f);
	event_add(f->tick, &tv);
	f->base = base;
	if (store_listens(store_path)) {
		f->address = xstrdup(store_path);
		listen_start(f);
	}
	/* What was committed since from_seq was read. */
	read_start(f);
	return f;
}

void
store_follower_free(struct store_follower *f)
{
	struct follow_waiter *w;

	if (f == NULL)
		return;
	event_free(f->tick);
	store_feed_watch_close(f->watch);
	f->watch = NULL;
	if (f->listen_ev)
		event_free(f->listen_ev);
	f->listen_ev = NULL;
	store_listen_close(f->listen);
	f->listen = NULL;
	if (f->reading || f->connecting) {
		/* read_done and listen_open_done resume and free it. */
		f->freeing = true;
		return;
	}
	w = f->now;
	f->now = NULL;
	waiters_resume(w);
	w = f->next;
	f->next = NULL;
	waiters_resume(w);
	follower_release(f);
}

bool
store_follower_current(const struct store_follower *f)
{
	/* Without a counter, only the ticks can tell: answer from memory. */
	return f == NULL || f->watch == NULL ||
	    store_feed_watch_value(f->watch) == f->applied;
}

void
store_follower_wait(struct store_follower *f, void (*resume)(void *),
    void *arg)
{
	struct follow_waiter *w, **p;

	w = xcalloc(1, sizeof(*w));
	w->resume = resume;
	w->arg = arg;
	/*
	 * A read in flight may have begun before the change this request
	 * must see: it waits for the next read.
	 */
	for (p = f->reading ? &f->next : &f->now; *p; p = &(*p)->next)
		;
	*p = w;
	read_start(f);
}

void
store_follower_poke(struct store_follower *f)
{
	read_start(f);
}
