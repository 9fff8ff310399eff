/*
 * The store off the event loop: a server's store, opened on threads of
 * its own, so that no store call, which may wait on a lock another
 * process holds or on a network round trip, ever runs on the loop.
 *
 * Two lanes, each one thread with its own connection:
 *
 *   - the read lane answers lookups (a cache miss, a page's rows);
 *   - the write lane makes changes, one job after another.
 *
 * In SQLite's WAL mode readers never wait for the writer, so a write that
 * waits on another process's lock (an admin command, `portal refresh`)
 * holds up only other writes, never a lookup, and never the loop. A job's
 * done() runs on the loop after the job ran, so a read queued from a
 * write's done() sees that write. Within a lane jobs run in the order they
 * were queued.
 *
 * Each lane has a budget of queued jobs; past it a call is refused with
 * PS_EBUSY (and nothing is queued), which a server answers with 503 and
 * Retry-After. A networked backend fits the same interface: a lane is one
 * connection, the loop never waits for it.
 *
 * Loop thread only, except where said.
 */
#ifndef PS_STORE_POOL_H
#define PS_STORE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store.h"

struct event_base;
struct store_pool;

#define STORE_POOL_QUEUE	4096	/* jobs queued per lane, at most */

/*
 * Opens the store at `path` once per lane (migrating it as store_open
 * does) and starts the lanes, reporting to `base` (borrowed). The caller
 * frees the pool with store_pool_free().
 */
ps_err	store_pool_open(struct event_base *, const char *path,
	    enum store_role, struct store_pool **out);

/*
 * Lets the queued jobs run to their end (their done() is called, on the
 * loop, from inside this call), then stops the lanes and closes the
 * connections; jobs queued meanwhile by those done() callbacks on a lane
 * already stopped are refused (PS_EBUSY). NULL is a no-op.
 */
void	store_pool_free(struct store_pool *);

/* A job's store work: runs on a lane's thread with that lane's store. */
typedef void (*store_job_fn)(struct store *, void *arg);

/*
 * Queues run(store, arg) on the read lane (store_pool_read) or the write
 * lane (store_pool_write), then done(arg) on the loop. `done` may be NULL.
 * PS_EBUSY, with a sentence in ps_errmsg(), when the lane's queue is full:
 * neither function is then called.
 */
ps_err	store_pool_read(struct store_pool *, store_job_fn run,
	    void (*done)(void *), void *arg);
ps_err	store_pool_write(struct store_pool *, store_job_fn run,
	    void (*done)(void *), void *arg);

/*
 * Whether the store answers, for readiness checks (GET /ready): a
 * one-row read (the feed's head) on the read lane, then done(arg, rc,
 * message) on the loop with PS_OK, or the error and its sentence
 * (PS_ESTORE: the store cannot be reached). PS_EBUSY, with nothing
 * queued and done() not called, when the lane's queue is full.
 */
ps_err	store_pool_probe(struct store_pool *,
	    void (*done)(void *arg, ps_err rc, const char *message),
	    void *arg);

/* Jobs queued or running on both lanes, for metrics. */
size_t	store_pool_pending(struct store_pool *);

/*
 * What the lanes saw of the store, for metrics: after each job, its
 * lane's connection is asked whether the server was reachable
 * (store_connected(), no call made). Nothing is asked of the store
 * here; a server with no traffic learns of a lost store at the change
 * feed's next read (store_follower_new(): every STORE_FOLLOW_TICK_MS)
 * or at a readiness probe.
 */
struct store_pool_health {
	bool		up;		/* the last job to end got there */
	uint64_t	unreachable;	/* jobs that ended without it */
	int64_t		last_failure;	/* Unix time; 0: none yet */
};
void	store_pool_health(const struct store_pool *,
	    struct store_pool_health *out);
/*
 * Whether the last job to end reached the store: in a job's done(), that
 * job's own connection, so a failed store call can be told apart from a
 * store that could not be reached (answered 503 with Retry-After
 * STORE_DOWN_RETRY_S, not 500).
 */
bool	store_pool_up(const struct store_pool *);

#define STORE_DOWN_RETRY_S	"5"	/* Retry-After: store unreachable */

#endif
