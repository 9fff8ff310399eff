/*
 * Unit tests of the worker pool: run() off the loop thread and done() on
 * it, FIFO order, a thousand jobs, jobs submitted from done callbacks and
 * from workers, freeing with jobs queued, and freeing from inside done().
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "work/work.h"
#include "t.h"

static struct event_base *base;
static pthread_t loop_thread;

/* ---- running the loop until a condition holds ---- */

struct waiter {
	const atomic_int	*count;
	int			 want;
	int64_t			 deadline;
};

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd;
	(void)what;
	if (atomic_load(w->count) >= w->want ||
	    time_mono_ms() > w->deadline)
		event_base_loopbreak(base);
}

static bool
run_until(const atomic_int *count, int want, int ms)
{
	struct waiter w = { count, want, time_mono_ms() + ms };
	struct timeval tv = { 0, 2000 };
	struct event *ev = event_new(base, -1, EV_PERSIST, tick, &w);

	event_add(ev, &tv);
	event_base_dispatch(base);
	event_free(ev);
	return atomic_load(count) >= want;
}

/* ---- threads ---- */

struct where {
	pthread_t	 run_thread;
	pthread_t	 done_thread;
	atomic_int	*done;
};

static void
where_run(void *arg)
{
	struct where *w = arg;

	w->run_thread = pthread_self();
}

static void
where_done(void *arg)
{
	struct where *w = arg;

	w->done_thread = pthread_self();
	atomic_fetch_add(w->done, 1);
}

static void
test_threads(void)
{
	struct work_pool *p = work_pool_new(base, 0);
	struct where w[8];
	atomic_int n = 0;
	bool off = true, on = true;
	int i;

	ok(p != NULL, "pool with the default thread count");
	for (i = 0; i < 8; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].done = &n;
		work_submit(p, where_run, where_done, &w[i]);
	}
	ok(run_until(&n, 8, 5000), "8 jobs done");
	for (i = 0; i < 8; i++) {
		if (pthread_equal(w[i].run_thread, loop_thread))
			off = false;
		if (!pthread_equal(w[i].done_thread, loop_thread))
			on = false;
	}
	ok(off, "run() ran off the loop thread");
	ok(on, "done() ran on the loop thread");
	is_int(work_pending(p), 0, "nothing pending afterwards");
	work_pool_free(p);
}

/* ---- order ---- */

static int run_order[100], done_order[100];
static atomic_int n_run, n_done;
static int ids[100];

static void
order_run(void *arg)
{
	run_order[atomic_fetch_add(&n_run, 1)] = *(int *)arg;
}

static void
order_done(void *arg)
{
	done_order[atomic_fetch_add(&n_done, 1)] = *(int *)arg;
}

static void
test_order(void)
{
	struct work_pool *p = work_pool_new(base, 1);
	bool in_order = true;
	int i;

	atomic_store(&n_run, 0);
	atomic_store(&n_done, 0);
	for (i = 0; i < 100; i++) {
		ids[i] = i;
		work_submit(p, order_run, order_done, &ids[i]);
	}
	ok(run_until(&n_done, 100, 5000), "100 jobs done on one thread");
	for (i = 0; i < 100; i++)
		if (run_order[i] != i || done_order[i] != i)
			in_order = false;
	ok(in_order, "run and done in submission order (FIFO)");
	work_pool_free(p);
}

/* ---- many jobs ---- */

static atomic_long sum_run;
static atomic_int n_many;
static long vals[1000];

static void
many_run(void *arg)
{
	long *v = arg;

	*v *= 2;
	atomic_fetch_add(&sum_run, 1);
}

static void
many_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&n_many, 1);
}

static void
test_many(void)
{
	struct work_pool *p = work_pool_new(base, 4);
	long total = 0;
	int i;

	atomic_store(&n_many, 0);
	for (i = 0; i < 1000; i++) {
		vals[i] = i;
		work_submit(p, many_run, many_done, &vals[i]);
	}
	ok(work_pending(p) > 0 && work_pending(p) <= 1000,
	    "work_pending counts submitted jobs");
	ok(run_until(&n_many, 1000, 10000), "1000 jobs complete");
	for (i = 0; i < 1000; i++)
		total += vals[i];
	is_int(total, 999 * 1000, "every run() did its work");
	is_int(atomic_load(&sum_run), 1000, "1000 run() calls");
	is_int(work_pending(p), 0, "work_pending back to 0");
	work_pool_free(p);
}

/* ---- submitting from done() and from a worker ---- */

static struct work_pool *chain_pool;
static atomic_int n_chain;

static void
noop_run(void *arg)
{
	(void)arg;
}

static void
chain_done(void *arg)
{
	if (atomic_fetch_add(&n_chain, 1) + 1 < 10)
		work_submit(chain_pool, noop_run, chain_done, arg);
}

static void
nested_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&n_chain, 1);
}

static void
nested_run(void *arg)
{
	(void)arg;
	/* A worker may submit too (the mutex guards the queue). */
	work_submit(chain_pool, noop_run, nested_done, NULL);
}

static void
test_chain(void)
{
	chain_pool = work_pool_new(base, 2);
	atomic_store(&n_chain, 0);
	work_submit(chain_pool, noop_run, chain_done, NULL);
	ok(run_until(&n_chain, 10, 5000), "a chain of 10 jobs submitted "
	    "from done()");
	atomic_store(&n_chain, 0);
	work_submit(chain_pool, nested_run, NULL, NULL);
	ok(run_until(&n_chain, 1, 5000), "a job submitted from run() and "
	    "a NULL done");
	work_pool_free(chain_pool);
	chain_pool = NULL;
}

/* ---- freeing with jobs queued ---- */

static atomic_int slow_started, slow_finished, queued_ran, queued_done;

static void
slow_run(void *arg)
{
	(void)arg;
	atomic_store(&slow_started, 1);
	usleep(100 * 1000);
	atomic_store(&slow_finished, 1);
}

static void
counted_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&queued_ran, 1);
}

static void
counted_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&queued_done, 1);
}

static void
test_free_queued(void)
{
	struct work_pool *p = work_pool_new(base, 1);
	atomic_int one = 0;
	int i;

	work_submit(p, slow_run, counted_done, NULL);
	for (i = 0; i < 20; i++)
		work_submit(p, counted_run, counted_done, NULL);
	for (i = 0; i < 500 && !atomic_load(&slow_started); i++)
		usleep(1000);
	ok(atomic_load(&slow_started), "the first job is running");
	is_int(work_pending(p), 21, "21 jobs pending");
	work_pool_free(p);
	ok(atomic_load(&slow_finished), "free waited for the running job");
	is_int(atomic_load(&queued_ran), 0, "queued jobs were not run");
	/* Give a stray done() every chance to show up. */
	run_until(&one, 1, 50);
	is_int(atomic_load(&queued_done), 0, "no done() after free");
}

/* ---- freeing from inside done() ---- */

static struct work_pool *self_pool;
static atomic_int self_done;

static void
self_free_done(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&self_done, 1) == 0) {
		work_pool_free(self_pool);
		self_pool = NULL;
	}
}

static void
test_free_in_done(void)
{
	atomic_int one = 0;
	int i;

	self_pool = work_pool_new(base, 1);
	atomic_store(&self_done, 0);
	for (i = 0; i < 5; i++)
		work_submit(self_pool, noop_run, self_free_done, NULL);
	ok(run_until(&self_done, 1, 5000), "first done() ran");
	run_until(&one, 1, 50);
	is_int(atomic_load(&self_done), 1, "the pool freed itself; no more "
	    "done() calls");
}

int
main(void)
{
	log_init("test_work", LOG_DEBUG);
	base = event_base_new();
	loop_thread = pthread_self();
	test_threads();
	test_order();
	test_many();
	test_chain();
	test_free_queued();
	test_free_in_done();
	event_base_free(base);
	return done();
}
