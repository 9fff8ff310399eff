/*
 * The store's lanes (pool.h): each a worker pool of one thread (work.c)
 * holding its own connection. A job is wrapped with its lane, so the
 * thread finds the lane's store; the lane's count of queued jobs is kept
 * on the loop (incremented when queued, decremented in done), which is
 * where it is read. Whether the job's connection reached the server is
 * read on the lane's thread after the job and taken into the pool's
 * health on the loop.
 */
#include <stdlib.h>
#include <time.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "pool.h"
#include "work/work.h"

struct lane {
	const char		*name;		/* "read", "write" */
	struct store		*st;
	struct work_pool	*work;
	size_t			 queued;	/* loop only */
};

struct store_pool {
	struct lane			read, write;
	struct store_pool_health	health;		/* loop only */
};

struct pool_job {
	struct store_pool	*pool;
	struct lane		*lane;
	store_job_fn		 run;
	void			(*done)(void *);
	void			*arg;
	bool			 connected;	/* after run (lane) */
};

static void
job_run(void *arg)
{
	struct pool_job *j = arg;

	j->run(j->lane->st, j->arg);
	j->connected = store_connected(j->lane->st);
}

static void
job_done(void *arg)
{
	struct pool_job *j = arg;

	j->lane->queued--;
	j->pool->health.up = j->connected;
	if (!j->connected) {
		j->pool->health.unreachable++;
		j->pool->health.last_failure = (int64_t)time(NULL);
	}
	if (j->done)
		j->done(j->arg);
	free(j);
}

static ps_err
lane_open(struct lane *l, const char *name, struct event_base *base,
    const char *path, enum store_role role)
{
	ps_err rc;

	l->name = name;
	if ((rc = store_open(path, role, false, &l->st)) != PS_OK)
		return rc;
	if ((l->work = work_pool_new(base, 1)) == NULL)
		return PS_EIO;
	return PS_OK;
}

static void
lane_close(struct lane *l)
{
	if (l->work) {
		work_pool_drain(l->work);
		work_pool_free(l->work);
		l->work = NULL;		/* later jobs are refused */
	}
	store_close(l->st);
	l->st = NULL;
}

ps_err
store_pool_open(struct event_base *base, const char *path,
    enum store_role role, struct store_pool **out)
{
	struct store_pool *p = xcalloc(1, sizeof(*p));
	ps_err rc;

	p->health.up = true;	/* both lanes have just connected */
	if ((rc = lane_open(&p->write, "write", base, path, role)) != PS_OK ||
	    (rc = lane_open(&p->read, "read", base, path, role)) != PS_OK) {
		store_pool_free(p);
		return rc;
	}
	*out = p;
	return PS_OK;
}

void
store_pool_free(struct store_pool *p)
{
	if (p == NULL)
		return;
	/* Writes first: a read queued by a write's done() still runs. */
	lane_close(&p->write);
	lane_close(&p->read);
	free(p);
}

static ps_err
lane_submit(struct store_pool *p, struct lane *l, store_job_fn run,
    void (*done)(void *), void *arg)
{
	struct pool_job *j;

	if (l->work == NULL)
		return ps_errf(PS_EBUSY, "the store is closing");
	if (l->queued >= STORE_POOL_QUEUE)
		return ps_errf(PS_EBUSY, "the store's %s queue is full (%d "
		    "jobs)", l->name, STORE_POOL_QUEUE);
	j = xcalloc(1, sizeof(*j));
	j->pool = p;
	j->lane = l;
	j->run = run;
	j->done = done;
	j->arg = arg;
	l->queued++;
	work_submit(l->work, job_run, job_done, j);
	return PS_OK;
}

ps_err
store_pool_read(struct store_pool *p, store_job_fn run, void (*done)(void *),
    void *arg)
{
	return lane_submit(p, &p->read, run, done, arg);
}

ps_err
store_pool_write(struct store_pool *p, store_job_fn run,
    void (*done)(void *), void *arg)
{
	return lane_submit(p, &p->write, run, done, arg);
}

struct probe {
	void	(*done)(void *, ps_err, const char *);
	void	 *arg;
	ps_err	  rc;
	char	  message[256];	/* ps_errmsg() is the lane thread's */
};

static void
probe_run(struct store *st, void *arg)
{
	struct probe *pr = arg;
	int64_t head;

	if ((pr->rc = store_feed_head(st, &head)) != PS_OK)
		str_copy(pr->message, ps_errmsg(), sizeof(pr->message));
}

static void
probe_done(void *arg)
{
	struct probe *pr = arg;

	pr->done(pr->arg, pr->rc, pr->message);
	free(pr);
}

ps_err
store_pool_probe(struct store_pool *p,
    void (*done)(void *, ps_err, const char *), void *arg)
{
	struct probe *pr = xcalloc(1, sizeof(*pr));
	ps_err rc;

	pr->done = done;
	pr->arg = arg;
	if ((rc = store_pool_read(p, probe_run, probe_done, pr)) != PS_OK)
		free(pr);
	return rc;
}

size_t
store_pool_pending(struct store_pool *p)
{
	return p->read.queued + p->write.queued;
}

void
store_pool_health(const struct store_pool *p, struct store_pool_health *out)
{
	*out = p->health;
}

bool
store_pool_up(const struct store_pool *p)
{
	return p->health.up;
}
