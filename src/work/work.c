/*
 * The worker pool: POSIX threads taking jobs from one FIFO queue, and a
 * pipe that wakes the event loop when jobs have finished.
 *
 * Threading: the queue, the finished list, the counters and the cap are
 * guarded by the pool's mutex; workers sleep on its condition variable.
 * A worker that finishes a job puts it on the finished list and, when no
 * wake-up is outstanding, writes one byte to the pipe, so the pipe never
 * fills. The loop drains the pipe, takes the whole finished list under
 * the mutex and runs the done callbacks without holding it. Worker
 * threads block every signal, so signals are handled by the loop thread.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "work.h"

#define WORK_MAX_THREADS	64

struct job {
	STAILQ_ENTRY(job)	 entry;
	void			(*run)(void *);
	void			(*done)(void *);
	void			*arg;
};
STAILQ_HEAD(job_list, job);

struct work_pool {
	struct event_base	*base;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	pthread_cond_t		 finished_cv;	/* a job finished */
	struct job_list		 queued;	/* mu */
	struct job_list		 finished;	/* mu */
	size_t			 pending;	/* mu; done() not run */
	size_t			 active;	/* mu; queued or in run() */
	size_t			 cap;		/* mu; of active; 0: none */
	bool			 stopping;	/* mu */
	bool			 wake_sent;	/* mu; a byte is sent */
	pthread_t		*threads;
	int			 nthreads;
	int			 wake[2];	/* read end, write end */
	struct event		*wake_ev;
	int			 dispatching;	/* loop thread only */
	bool			 freeing;	/* loop thread only */
};

/* Frees the jobs of `l`, queued ones when `queued`; p->mu held. */
static void
jobs_discard(struct work_pool *p, struct job_list *l, bool queued)
{
	struct job *j;

	for (;;) {
		j = STAILQ_FIRST(l);
		if (j == NULL)
			break;
		STAILQ_REMOVE_HEAD(l, entry);
		free(j);
		p->pending--;
		if (queued)
			p->active--;
	}
}

/* Called with p->mu held. */
static void
wake_loop(struct work_pool *p)
{
	char c = 1;
	ssize_t n;

	if (p->wake_sent)
		return;
	p->wake_sent = true;
	do
		n = write(p->wake[1], &c, 1);
	while (n < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full of wake-ups already. */
}

static void *
worker_main(void *arg)
{
	struct work_pool *p = arg;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && STAILQ_EMPTY(&p->queued))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stopping)
			break;
		j = STAILQ_FIRST(&p->queued);
		STAILQ_REMOVE_HEAD(&p->queued, entry);
		pthread_mutex_unlock(&p->mu);

		j->run(j->arg);

		pthread_mutex_lock(&p->mu);
		p->active--;
		STAILQ_INSERT_TAIL(&p->finished, j, entry);
		pthread_cond_signal(&p->finished_cv);
		wake_loop(p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Frees what is left once the threads are gone and nothing dispatches. */
static void
pool_release(struct work_pool *p)
{
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->finished_cv);
	free(p->threads);
	free(p);
}

/*
 * Runs the done callbacks of the jobs that have finished. The caller
 * counts itself as dispatching: a callback that frees the pool
 * (work_pool_free) leaves its release to the caller.
 */
static void
run_finished(struct work_pool *p)
{
	struct job_list batch;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	STAILQ_INIT(&batch);
	STAILQ_CONCAT(&batch, &p->finished);
	p->wake_sent = false;
	pthread_mutex_unlock(&p->mu);

	for (;;) {
		j = STAILQ_FIRST(&batch);
		if (j == NULL)
			break;
		STAILQ_REMOVE_HEAD(&batch, entry);
		/* Once the pool is being freed, nobody wants the rest. */
		if (!p->freeing && j->done)
			j->done(j->arg);
		free(j);
		pthread_mutex_lock(&p->mu);
		p->pending--;
		pthread_mutex_unlock(&p->mu);
	}
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct work_pool *p = arg;
	char b[64];

	(void)what;
	while (read(fd, b, sizeof(b)) > 0)
		continue;
	p->dispatching++;
	run_finished(p);
	p->dispatching--;
	if (p->freeing && p->dispatching == 0)
		pool_release(p);
}

void
work_pool_drain(struct work_pool *p)
{
	bool more;

	/*
	 * A done callback may free the pool (work_pool_free): counted as
	 * dispatching, the pool is released here, once the drain is done
	 * with it, not under it.
	 */
	p->dispatching++;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->freeing && p->pending > 0 &&
		    STAILQ_EMPTY(&p->finished))
			pthread_cond_wait(&p->finished_cv, &p->mu);
		more = !p->freeing && p->pending > 0;
		pthread_mutex_unlock(&p->mu);
		if (!more)
			break;
		run_finished(p);
	}
	p->dispatching--;
	if (p->freeing && p->dispatching == 0)
		pool_release(p);
}

/* Stops and joins the first `n` threads. */
static void
threads_stop(struct work_pool *p, int n)
{
	int i;

	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
}

struct work_pool *
work_pool_new(struct event_base *base, int threads)
{
	struct work_pool *p = xcalloc(1, sizeof(*p));
	sigset_t all, old;
	long ncpu;
	int i, err = 0;

	if (threads <= 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		threads = ncpu < 2 ? 2 : ncpu > WORK_MAX_THREADS ?
		    WORK_MAX_THREADS : (int)ncpu;
	}
	if (threads > WORK_MAX_THREADS)
		threads = WORK_MAX_THREADS;
	p->base = base;
	p->wake[0] = p->wake[1] = -1;
	STAILQ_INIT(&p->queued);
	STAILQ_INIT(&p->finished);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->finished_cv, NULL);
	p->threads = xcalloc((size_t)threads, sizeof(*p->threads));

	if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		ps_errf(PS_EIO, "cannot make the worker pipe: %s",
		    strerror(errno));
		goto fail;
	}
	p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST,
	    wake_cb, p);
	if (p->wake_ev == NULL || event_add(p->wake_ev, NULL) != 0) {
		ps_errf(PS_EIO, "cannot watch the worker pipe");
		goto fail;
	}

	/* Workers inherit a mask that blocks every signal. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < threads; i++) {
		err = pthread_create(&p->threads[i], NULL, worker_main, p);
		if (err != 0)
			break;
		pthread_setname_np(p->threads[i], "ps-work");
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		ps_errf(PS_EIO, "cannot start a worker thread: %s",
		    strerror(err));
		threads_stop(p, p->nthreads);
		goto fail;
	}
	log_debug(NULL, "work.start", "threads=%d", p->nthreads);
	return p;
fail:
	if (p->wake_ev)
		event_free(p->wake_ev);
	if (p->wake[0] != -1)
		close(p->wake[0]);
	if (p->wake[1] != -1)
		close(p->wake[1]);
	pool_release(p);
	return NULL;
}

void
work_pool_free(struct work_pool *p)
{
	if (p == NULL || p->freeing)
		return;
	p->freeing = true;
	/*
	 * Queued jobs are never started: dropped before the wait for the
	 * running ones, so that they stop counting at once, and again after
	 * it for those that running jobs submitted meanwhile.
	 */
	pthread_mutex_lock(&p->mu);
	jobs_discard(p, &p->queued, true);
	pthread_mutex_unlock(&p->mu);
	threads_stop(p, p->nthreads);
	pthread_mutex_lock(&p->mu);
	jobs_discard(p, &p->queued, true);
	jobs_discard(p, &p->finished, false);
	pthread_mutex_unlock(&p->mu);
	event_free(p->wake_ev);
	p->wake_ev = NULL;
	close(p->wake[0]);
	close(p->wake[1]);
	/* From inside a done callback, wake_cb releases the pool. */
	if (p->dispatching == 0)
		pool_release(p);
}

/* Queues `j`; p->mu held. */
static void
job_queue(struct work_pool *p, struct job *j)
{
	STAILQ_INSERT_TAIL(&p->queued, j, entry);
	p->pending++;
	p->active++;
	pthread_cond_signal(&p->cv);
}

void
work_submit(struct work_pool *p, void (*run)(void *), void (*done)(void *),
    void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	job_queue(p, j);
	pthread_mutex_unlock(&p->mu);
}

ps_err
work_try_submit(struct work_pool *p, void (*run)(void *),
    void (*done)(void *), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	size_t active, cap;

	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	active = p->active;
	cap = p->cap;
	if (cap == 0 || active < cap) {
		job_queue(p, j);
		j = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (j == NULL)
		return PS_OK;
	free(j);
	return ps_errf(PS_EBUSY, "%zu jobs are waiting or running; the limit "
	    "is %zu", active, cap);
}

void
work_pool_set_cap(struct work_pool *p, size_t max_active)
{
	pthread_mutex_lock(&p->mu);
	p->cap = max_active;
	pthread_mutex_unlock(&p->mu);
}

size_t
work_active(struct work_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->active;
	pthread_mutex_unlock(&p->mu);
	return n;
}

size_t
work_pending(struct work_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->pending;
	pthread_mutex_unlock(&p->mu);
	return n;
}
