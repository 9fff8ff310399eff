/*
 * HTTP client transfers: the only user of libcurl.
 *
 * Two forms. The blocking one (xfer_get, xfer_call, xfer_probe) is for
 * admin commands (fetching a partner's metadata document, diagnose). The
 * asynchronous one (xfer_loop, xfer_start) runs libcurl's multi interface
 * on the process's libevent loop, so a transfer in flight costs no thread
 * and the loop never waits on the network. TLS certificates are always
 * verified, against the system store or a given CA file; plain http:// is
 * refused unless the caller allows it. main calls xfer_global_init()
 * once, before any thread is started.
 */
#ifndef PS_XFER_H
#define PS_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

/*
 * ---- blocking calls that say where they stopped (diagnose) ----
 *
 * The stages of a request, in order. A failed call or probe names the
 * one it stopped at, so a person can be told what to fix: the name, the
 * route, the certificate or the server.
 */
enum xfer_stage {
	XFER_STAGE_NONE,	/* nothing failed: an HTTP answer arrived */
	XFER_STAGE_URL,		/* refused before the network: the scheme
				   (http:// without allow_http), the URL */
	XFER_STAGE_DNS,		/* the host name does not resolve */
	XFER_STAGE_CONNECT,	/* no TCP connection (refused, unreachable,
				   timed out) */
	XFER_STAGE_TLS,		/* the handshake or the certificate
				   verification failed */
	XFER_STAGE_HTTP,	/* connected, but no complete answer: a
				   timeout, a body over the cap, garbage */
};

/* "url", "dns", "connect", "tls", "http" ("" for XFER_STAGE_NONE). */
const char *xfer_stage_name(enum xfer_stage);

/* What one xfer_call() got; strings are "" when absent. */
struct xfer_result {
	enum xfer_stage	 stage;		/* where it stopped */
	long		 status;	/* the HTTP status; 0 if none */
	char		 etag[128];	/* headers of the final answer; "" */
	char		 content_type[128]; /* when absent or too long */
	char		 diagnostics[512]; /* x-ms-diagnostics, cut to fit */
	char		 www_authenticate[2048]; /* the Bearer challenge, or
					   else the first one; cut to fit */
	char		 error[256];	/* why, when stage != NONE */
	char		 tls_error[160]; /* the certificate verification
					   error ("self-signed certificate"),
					   when stage is TLS */
	char		 peer[64];	/* the address it talked to, if any */
	int64_t		 elapsed_ms;
};

/*
 * One request, blocking. `method` is "GET" or "POST"; `headers` are
 * "Name: value" strings, NULL-terminated, or NULL (a POST should name its
 * Content-Type); `body` of `len` bytes for a POST, else NULL. The answer's
 * body goes into `out` (its cap and opts->max_bytes apply; emptied when
 * the answer is incomplete). Returns PS_OK when an HTTP answer arrived,
 * whatever its status; otherwise PS_EINVAL (a refused URL, method or
 * header), PS_ETIMEOUT, PS_ELIMIT (body over the cap) or PS_EUPSTREAM,
 * with the reason in ps_errmsg() and res->error, and res->stage naming
 * the stage it stopped at. TLS is always verified (opts->ca_file or the
 * system's CAs).
 */
ps_err	xfer_call(const char *method, const char *url,
	    const char *const *headers, const void *body, size_t len,
	    const struct xfer_opts *, struct buf *out, struct xfer_result *res);

/* What xfer_probe() found, stage by stage; strings are "" when unknown. */
struct xfer_probe {
	enum xfer_stage	 stage;		/* the stage that failed; NONE: all
					   passed */
	char		 host[256];	/* the URL's host, no brackets */
	int		 port;		/* the URL's port (443, 80 default) */
	bool		 is_ip;		/* the host is an address: no lookup */
	char		 addrs[256];	/* what the name resolves to, ", " */
	char		 peer[64];	/* the address connected to */
	int64_t		 connect_ms;
	bool		 tls;		/* https: a TLS stage was run */
	char		 cert_subject[256]; /* the server's certificate */
	char		 cert_issuer[256];
	char		 cert_expires[64];
	char		 error[256];	/* why the failed stage failed */
	char		 tls_error[160]; /* as in struct xfer_result */
};

/*
 * Walks the way to `url`'s host and port one stage at a time and sends no
 * request: name resolution, a TCP connection, and for https:// a TLS
 * handshake verified exactly as xfer_call() verifies it (opts->ca_file or
 * the system's CAs). Each network stage may take opts->timeout_ms (0: 10
 * s). PS_OK when every stage passed; otherwise the reason (also in
 * p->error) and p->stage names the stage that failed; the stages before
 * it are filled in.
 */
ps_err	xfer_probe(const char *url, const struct xfer_opts *,
	    struct xfer_probe *p);

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
 * A kept connection idle this long is not used again: under the
 * master's 30 s idle timeout, so a request is not sent on a connection
 * the master is closing.
 */
#define XFER_KEEP_IDLE_S	25L

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
	bool		 idempotent;	/* a POST that may be sent twice
					   (one that only reads); a GET
					   always may */
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
	struct buf	 body;		/* borrowed during the callback,
					   which may take the bytes
					   (buf_move, buf_take) */
	char		 etag[128];	/* ETag header as sent; "" if none or
					   longer than fits */
	char		 content_type[128]; /* likewise */
	long		 retry_after;	/* seconds from Retry-After (delta or
					   HTTP date, past: 0); -1 if none */
	bool		 photo_hidden;	/* X-Photosync-Photo-Hidden: 1, the
					   master's mark of a photo its owner
					   alone sees (docs/master.md) */
	char		 error[256];	/* the reason when rc != PS_OK */
	int64_t		 elapsed_ms;
};

typedef void (*xfer_done_fn)(struct xfer_response *, void *arg);

/*
 * Starts a transfer. A request that may be sent twice (a GET, or one
 * marked idempotent) and that fails on a reused connection before any
 * byte of an answer came (the server closed it meanwhile: an idle
 * timeout, a connection cap) is sent once more on a new connection
 * (RFC 9112 section 9.3.1); failing there too, its error says so. `done`
 * is called exactly once, later, on the loop
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

/*
 * A Retry-After value (RFC 9110 section 10.2.3) of `vlen` bytes, as an
 * answer's retry_after gives it: delay-seconds, or an HTTP-date as the
 * seconds from `now` to it (a past date: 0), either at most 2^30; -1 for
 * anything else.
 */
long	xfer_retry_after_parse(const char *v, size_t vlen, time_t now);

#endif
