/*
 * The worker pool: a few threads that run blocking work (image decoding
 * and encoding, store calls, anything that may wait on the disk) off the
 * event loop, and report back to it.
 *
 * A job is a pair of functions on one argument: run(arg) on a worker
 * thread, then done(arg) on the loop thread, in the order of submission
 * for run (FIFO; with several threads, jobs may finish in another order).
 * The loop is woken through a pipe it watches, so no libevent threading
 * setup is needed. run() must not touch loop-owned state; done() may, and
 * may submit more jobs.
 *
 * A pool may have a cap on the jobs waiting or running: work_try_submit()
 * refuses a job over it, so that a flood of work is turned away at once
 * instead of queueing without end; work_submit() is never refused.
 */
#ifndef PS_WORK_H
#define PS_WORK_H

#include <stddef.h>

#include "common/err.h"

struct event_base;
struct work_pool;

/*
 * Starts `threads` workers (<= 0: the number of CPUs, at least 2; at
 * most 64) that report to `base` (borrowed; must outlive the pool). Call
 * it from the loop thread. Returns NULL, with the reason in ps_errmsg(),
 * when a thread or the wake-up pipe cannot be made. Free with
 * work_pool_free().
 */
struct work_pool *work_pool_new(struct event_base *, int threads);

/*
 * Waits for the jobs that are running, discards the queued ones without
 * calling run or done, and frees the pool. done() is not called for any
 * job that has not reported back yet, so the caller still owns those
 * jobs' arguments. NULL is a no-op. Loop thread only; may be called from
 * inside a done callback.
 */
void	work_pool_free(struct work_pool *);

/*
 * Waits until every job submitted so far has run, calling the done()
 * callbacks of all of them on this (the loop's) thread, including those
 * of jobs that done() callbacks submit meanwhile. For a graceful stop,
 * after the loop has returned; loop thread only, not from a done().
 */
void	work_pool_drain(struct work_pool *);

/*
 * Queues run(arg) for a worker thread and then done(arg) for the loop
 * thread. run must not be NULL; done may be NULL. Any thread may submit.
 */
void	work_submit(struct work_pool *, void (*run)(void *),
	    void (*done)(void *), void *arg);

/*
 * Caps the jobs waiting or running (queued, or in run()) that
 * work_try_submit() accepts at `max_active`; 0, the default, means no
 * cap. Jobs already queued stay. Any thread.
 */
void	work_pool_set_cap(struct work_pool *, size_t max_active);

/*
 * As work_submit(), unless the pool's cap of jobs waiting or running is
 * reached: then nothing is queued, the caller keeps `arg`, and the
 * answer is PS_EBUSY with a sentence ("8 jobs are waiting or running;
 * the limit is 8"). Jobs queued with work_submit() count too. Any
 * thread.
 */
ps_err	work_try_submit(struct work_pool *, void (*run)(void *),
	    void (*done)(void *), void *arg);

/*
 * The jobs whose done() has not run yet: queued, running, or finished
 * and waiting for the loop. For metrics; any thread.
 */
size_t	work_pending(struct work_pool *);

/* The jobs queued or in run(), which the cap counts. Any thread. */
size_t	work_active(struct work_pool *);

#endif
