/*
 * HTTP client transfers: the only user of libcurl.
 *
 * Two forms. The blocking one (xfer_get) is for admin commands (fetching a
 * partner's metadata document). The asynchronous one (xfer_loop,
 * xfer_start) runs libcurl's multi interface on the process's libevent
 * loop, so a transfer in flight costs no thread and the loop never waits
 * on the network. TLS certificates are always verified, against the
 * system store or a given CA file; plain http:// is refused unless the
 * caller allows it. main calls xfer_global_init() once, before any thread
 * is started.
 */
#ifndef PS_XFER_H
#define PS_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct xfer_opts {
	const char	*ca_file;	/* NULL: the system's CAs */
	long		 timeout_ms;	/* whole transfer; 0: 15 s */
	size_t		 max_bytes;	/* body cap */
	bool		 allow_http;
	const char	*reqid;		/* sent as client-request-id */
};

ps_err	xfer_global_init(void);

/*
 * GETs `url` into `body` (initialised by the caller; its cap applies too).
 * PS_OK with *status set for any HTTP answer; PS_EUPSTREAM with the reason
 * (DNS, connection, TLS verification, timeout, body too large) otherwise.
 */
ps_err	xfer_get(const char *url, const struct xfer_opts *, long *status,
	    struct buf *body);

/* ---- asynchronous transfers on the event loop ---- */

struct event_base;
struct xfer_loop;		/* libcurl multi bound to one event_base */

/*
 * A transfer engine on `base` (borrowed; must outlive the loop). Keeps a
 * cache of connections for reuse between transfers. Returns NULL (with the
 * reason in ps_errmsg()) if libcurl cannot start one. Loop thread only,
 * like everything below.
 */
struct xfer_loop *xfer_loop_new(struct event_base *);

/*
 * Cancels the transfers in flight (their callbacks are NOT called), closes
 * the cached connections and frees the loop. NULL is a no-op. May be
 * called from inside a done callback; the loop is then freed when that
 * callback returns.
 */
void	xfer_loop_free(struct xfer_loop *);

#define XFER_TIMEOUT_MS		15000L
#define XFER_CONNECT_TIMEOUT_MS	5000L
#define XFER_MAX_BYTES		((size_t)8 * 1024 * 1024)

/*
 * A request; xfer_start() copies all of it. A POST should name its
 * Content-Type in `headers` (libcurl otherwise says it is a form).
 */
struct xfer_request {
	const char	*method;	/* "GET" or "POST"; NULL: "GET" */
	const char	*url;
	const char	*const *headers; /* "Name: value" strings,
					    NULL-terminated, or NULL */
	const void	*body;		/* POST body (copied), or NULL */
	size_t		 body_len;
	const char	*ca_file;	/* NULL: system CAs; TLS always
					   verified */
	bool		 allow_http;	/* refuse http:// unless true */
	long		 timeout_ms;	/* whole transfer; 0: XFER_TIMEOUT_MS */
	long		 connect_timeout_ms; /* 0: XFER_CONNECT_TIMEOUT_MS */
	size_t		 max_bytes;	/* body cap, exceeding it aborts with
					   PS_ELIMIT; 0: XFER_MAX_BYTES */
	const char	*reqid;		/* sent as client-request-id, with
					   return-client-request-id: true */
};

/*
 * The outcome, borrowed by the done callback for its duration.
 *
 * rc is PS_OK when an HTTP answer arrived, whatever its status. Otherwise
 * error says why and rc is PS_ETIMEOUT (timeout_ms or connect_timeout_ms
 * passed), PS_ELIMIT (the body is larger than max_bytes), PS_ENOMEM, or
 * PS_EUPSTREAM (DNS, connection refused, TLS verification, a broken
 * answer); body is then empty.
 */
struct xfer_response {
	ps_err		 rc;
	long		 status;	/* the status received; 0 if none */
	struct buf	 body;		/* borrowed during the callback */
	char		 etag[128];	/* ETag header as sent; "" if none or
					   longer than fits */
	char		 content_type[128]; /* likewise */
	long		 retry_after;	/* seconds from Retry-After (delta or
					   HTTP date, past: 0); -1 if none */
	char		 error[256];	/* the reason when rc != PS_OK */
	int64_t		 elapsed_ms;
};

typedef void (*xfer_done_fn)(const struct xfer_response *, void *arg);

/*
 * Starts a transfer. `done` is called exactly once, later, on the loop
 * (never from inside xfer_start), unless the loop is freed first. Copies
 * everything it needs from the request, which may be freed on return.
 * Returns PS_EINVAL, and `done` is never called, for a refused URL scheme,
 * an unknown method, a header with a line break, a GET with a body, no
 * callback, or a loop being freed; PS_ENOMEM or PS_EIO if libcurl cannot
 * start or refuses the transfer.
 * Safe to call from inside a done callback.
 */
ps_err	xfer_start(struct xfer_loop *, const struct xfer_request *,
	    xfer_done_fn done, void *arg);

#endif
