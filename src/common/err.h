/*
 * The one error type of photosync.
 *
 * Every fallible function returns a ps_err. The function that detects a
 * problem records a human-readable reason with ps_errf(); callers only
 * propagate the code (the libvips rule). The reason lives in thread-local
 * storage, so worker threads do not disturb the event loop's message.
 */
#ifndef PS_ERR_H
#define PS_ERR_H

typedef enum ps_err {
	PS_OK = 0,
	PS_ENOMEM,	/* out of memory */
	PS_EINVAL,	/* bad input from a user, a file or a peer */
	PS_ELIMIT,	/* input larger than a configured limit */
	PS_ENOTFOUND,	/* no such object */
	PS_EEXIST,	/* object already exists */
	PS_ETIMEOUT,	/* a deadline passed */
	PS_EUPSTREAM,	/* a remote peer failed or answered nonsense */
	PS_EAUTH,	/* authentication or authorization refused */
	PS_ESTORE,	/* the store failed */
	PS_EIMAGE,	/* an image could not be decoded or encoded */
	PS_EIO,		/* a file or socket operation failed */
	PS_ECRYPTO,	/* a key, certificate or signature operation failed */
	PS_EBUSY,	/* a budget is used up for now: try again later */
} ps_err;

/* A short constant description of the code ("invalid input"). */
const char *ps_strerror(ps_err);

/*
 * Records the reason for the error being returned, printf-style. Returns
 * `rc` so that `return ps_errf(PS_EINVAL, "...")` reads naturally.
 */
ps_err ps_errf(ps_err rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__
/*
 * The static analyzer (make analyze) reads one file at a time: told here
 * that ps_errf() returns its `rc`, it no longer follows a
 * `return ps_errf(PS_E..., ...)` as a success that set nothing.
 */
static inline ps_err
ps_errf_returns(ps_err ignored, ps_err rc)
{
	(void)ignored;
	return rc;
}
#define ps_errf(rc, ...) ps_errf_returns(ps_errf((rc), __VA_ARGS__), (rc))
#endif

/*
 * The reason recorded last on this thread, or ps_strerror(rc) of the last
 * code when none was given. Borrowed; valid until the next ps_errf() on this
 * thread.
 */
const char *ps_errmsg(void);

/* Forgets the recorded reason. */
void ps_errclear(void);

#endif
