/*
 * Unit tests of the worker pool: run() off the loop thread and done() on
 * it, FIFO order, a thousand jobs, jobs submitted from done callbacks and
 * from workers, the cap on jobs waiting or running, freeing with jobs
 * queued, and freeing from inside done() (also while draining). Jobs that must stay running
 * wait at a gate the test opens; nothing waits for time to pass.
 */
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
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

/* ---- a gate that holds jobs in run() until the test opens it ---- */

struct gate {
	pthread_mutex_t	mu;
	pthread_cond_t	cv;
	int		entered;	/* jobs that reached the gate */
	int		left;		/* jobs that went through it */
	bool		open;
};

static void
gate_init(struct gate *g)
{
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->entered = g->left = 0;
	g->open = false;
}

static void
gate_cleanup(struct gate *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

/* A job's run(): waits at the gate `arg` until it opens. */
static void
gate_run(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->mu);
	g->entered++;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	g->left++;
	pthread_mutex_unlock(&g->mu);
}

/* Waits until `n` jobs are at the gate or through it. */
static void
gate_wait_entered(struct gate *g, int n)
{
	pthread_mutex_lock(&g->mu);
	while (g->entered < n)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static int
gate_left(struct gate *g)
{
	int n;

	pthread_mutex_lock(&g->mu);
	n = g->left;
	pthread_mutex_unlock(&g->mu);
	return n;
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

/* ---- the cap on jobs waiting or running ---- */

static atomic_int capped_ran, capped_done;

static void
capped_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&capped_ran, 1);
}

static void
capped_done_cb(void *arg)
{
	(void)arg;
	atomic_fetch_add(&capped_done, 1);
}

static void
gate_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&capped_done, 1);
}

static void
test_cap(void)
{
	struct work_pool *p = work_pool_new(base, 1);
	struct gate g;
	int i;

	gate_init(&g);
	atomic_store(&capped_ran, 0);
	atomic_store(&capped_done, 0);
	is_int(work_try_submit(p, capped_run, capped_done_cb, NULL), PS_OK,
	    "no cap by default");
	ok(run_until(&capped_done, 1, 5000), "and the job ran");
	work_pool_set_cap(p, 3);
	/* One job held in run(), two queued behind it: the cap. */
	is_int(work_try_submit(p, gate_run, gate_done, &g), PS_OK,
	    "a first job under a cap of 3");
	gate_wait_entered(&g, 1);
	for (i = 0; i < 2; i++)
		is_int(work_try_submit(p, capped_run, capped_done_cb, NULL),
		    PS_OK, "queued under the cap");
	is_int(work_active(p), 3, "3 jobs waiting or running");
	is_int(work_try_submit(p, capped_run, capped_done_cb, NULL),
	    PS_EBUSY, "a fourth is refused");
	is_str(ps_errmsg(), "3 jobs are waiting or running; the limit is 3",
	    "in words");
	is_int(work_pending(p), 3, "nothing was queued for it");
	work_submit(p, capped_run, capped_done_cb, NULL);
	is_int(work_pending(p), 4, "work_submit() is never refused");
	is_int(work_try_submit(p, capped_run, capped_done_cb, NULL),
	    PS_EBUSY, "and counts against the cap");

	gate_open(&g);
	ok(run_until(&capped_done, 5, 5000), "the 4 jobs finish");
	is_int(atomic_load(&capped_ran), 4, "the refused jobs never ran");
	is_int(work_active(p), 0, "nothing waiting or running");
	is_int(work_try_submit(p, capped_run, capped_done_cb, NULL), PS_OK,
	    "with room again, a job is accepted");
	ok(run_until(&capped_done, 6, 5000), "and runs");
	work_pool_set_cap(p, 0);
	for (i = 0; i < 10; i++)
		if (work_try_submit(p, capped_run, capped_done_cb, NULL) !=
		    PS_OK)
			break;
	is_int(i, 10, "a cap of 0 is no cap");
	ok(run_until(&capped_done, 16, 5000), "and they all run");
	work_pool_free(p);
	gate_cleanup(&g);
}

/* ---- freeing with jobs queued ---- */

static atomic_int queued_ran, queued_done;

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

struct opener {
	struct work_pool	*pool;
	struct gate		*gate;
};

/*
 * Opens the gate once only the running job is left pending: the state
 * change itself is waited for, by yielding, not a time.
 */
static void *
open_when_dropped(void *arg)
{
	struct opener *o = arg;

	while (work_pending(o->pool) != 1)
		sched_yield();
	gate_open(o->gate);
	return NULL;
}

static void
test_free_queued(void)
{
	struct work_pool *p = work_pool_new(base, 1);
	struct opener opener;
	struct gate g;
	pthread_t th;
	atomic_int one = 0;
	int i;

	gate_init(&g);
	work_submit(p, gate_run, counted_done, &g);
	for (i = 0; i < 20; i++)
		work_submit(p, counted_run, counted_done, NULL);
	gate_wait_entered(&g, 1);
	is_int(work_pending(p), 21, "21 jobs pending, the first running");
	/*
	 * free() drops the queued jobs, then waits for the running one,
	 * which the opener lets go only once the queue is dropped.
	 */
	opener.pool = p;
	opener.gate = &g;
	pthread_create(&th, NULL, open_when_dropped, &opener);
	work_pool_free(p);
	pthread_join(th, NULL);
	is_int(gate_left(&g), 1, "free waited for the running job");
	gate_cleanup(&g);
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

	/* The same while work_pool_drain() runs the done callbacks: the
	 * drain must not touch the pool once a done() has freed it. */
	self_pool = work_pool_new(base, 1);
	atomic_store(&self_done, 0);
	for (i = 0; i < 5; i++)
		work_submit(self_pool, noop_run, self_free_done, NULL);
	work_pool_drain(self_pool);
	is_int(atomic_load(&self_done), 1, "freed from a done() that a "
	    "drain ran: the drain returns, no more done() calls");
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
	test_cap();
	test_free_queued();
	test_free_in_done();
	event_base_free(base);
	return done();
}
