/*
 * The HTTP/1.1 server (our own, on libevent's loop and OpenSSL). Routes
 * see our own request type: the decoded, lower-cased path for
 * case-insensitive matching, query parameters, headers, a size-capped
 * body, and a request id of our own that is on every log line and sent
 * to the client (request-id, X-Request-Id); the client-request-id an EWS
 * client sent is echoed and logged as http.request's client_req.
 *
 * Runs on one event loop; handlers are called on it and must not block.
 * A handler may keep the request and answer later from the same loop.
 */
#ifndef PS_HTTP_SERVER_H
#define PS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct event_base;
struct http_server;
struct http_req;
struct http_tls;

#define HTTP_MAX_BODY		(1024 * 1024)
/*
 * Strict-Transport-Security on every answer over TLS: a year (seconds),
 * the span browsers' preload lists ask for; without includeSubDomains,
 * since the names under a role's host are other servers'.
 */
#define HTTP_HSTS_MAX_AGE	"31536000"
#define HTTP_MAX_HEADERS	(32 * 1024)
/*
 * Bodies up to this size are read before the handler is called on every
 * route; a larger one only once the server's body gate allows it.
 */
#define HTTP_SMALL_BODY		(64 * 1024)

typedef void (*http_handler_fn)(struct http_req *, void *arg);

/*
 * The budgets of every server of the process (docs/operations.md). Set
 * them with http_set_limits() before the first server listens; what is
 * not set keeps http_default_limits.
 */
struct http_limits {
	/*
	 * Connections open at once, all servers together. 0: the descriptor
	 * limit (RLIMIT_NOFILE, raised to its hard limit) less
	 * HTTP_FD_RESERVE, and no more than HTTP_MAX_CONNECTIONS. When
	 * full, a new connection closes the least recently active one that
	 * has no request with a handler; when every one has, the new one is
	 * closed.
	 */
	size_t	 max_connections;
	/* Request bodies held in memory at once, all connections together. */
	size_t	 body_memory;
	/* A request head must have arrived this long after its first byte. */
	int64_t	 head_timeout_ms;
	/* A connection waiting for its next request is closed after this. */
	int64_t	 idle_timeout_ms;
	/* The TLS handshake must be over this long after the connection. */
	int64_t	 handshake_timeout_ms;
	/* After body_grace_ms, a body must have come at body_min_rate. */
	int64_t	 body_grace_ms;
	size_t	 body_min_rate;		/* bytes per second, on average */
	/* http_server_drain closes what is left after this. */
	int64_t	 drain_timeout_ms;
};
#define HTTP_FD_RESERVE		128	/* descriptors kept for the rest */
#define HTTP_MAX_CONNECTIONS	4096	/* the memory a connection takes */

extern const struct http_limits http_default_limits;
/*
 * Per process, before the first server is made (copied); a field left 0
 * takes its default.
 */
void	http_set_limits(const struct http_limits *);
/*
 * http_set_limits() with the defaults and the serve options
 * --max-connections N and --body-memory SIZE ("64M"; either NULL when
 * not given); PS_EINVAL, nothing set, when one is not valid.
 */
ps_err	http_set_limits_from_options(const char *max_connections,
	    const char *body_memory);

/*
 * On the first SIGINT or SIGTERM logs serve.stopping, tells the service
 * manager STOPPING=1 (common/service.h) and calls stop(arg) (NULL: ends
 * the loop); a second signal ends the loop at once. Free the watch after
 * the loop returns.
 */
struct http_signals;
struct http_signals *http_signals_watch(struct event_base *,
	    void (*stop)(void *arg), void *arg);
/*
 * SIGHUP, until the stop: tells the manager RELOADING=1, logs
 * serve.reloading and calls reload(arg), which ends the reload, at once
 * or later from the loop, with http_signals_reloaded(). A SIGHUP during
 * a reload starts another once it ended. Without this, SIGHUP keeps its
 * default (the process ends).
 */
void	http_signals_on_reload(struct http_signals *, void (*reload)(void *),
	    void *arg);
/*
 * The end of a reload: logs serve.reloaded, or serve.reload_refused with
 * ps_errmsg() when `rc` is not PS_OK (the reload then kept everything as
 * it was), and tells the manager READY=1.
 */
void	http_signals_reloaded(struct http_signals *, ps_err rc);
void	http_signals_free(struct http_signals *);

/* A TLS context from PEM files (TLS 1.2 and later). */
ps_err	http_tls_new(const char *cert_path, const char *key_path,
	    struct http_tls **out);
void	http_tls_free(struct http_tls *);
/*
 * Reloading in two steps, so that several contexts change together or
 * not at all: http_tls_reread() reads the same files again into a
 * context kept aside (PS_ECRYPTO, nothing changed, when they do not make
 * a valid certificate and matching key); http_tls_swap() puts it in use
 * for connections accepted from then on, while those already open keep
 * the old one until they close; http_tls_drop() forgets it instead.
 */
ps_err	http_tls_reread(struct http_tls *);
void	http_tls_swap(struct http_tls *);
void	http_tls_drop(struct http_tls *);
/*
 * On a listener whose context is `main`, answers clients that ask for
 * `hostname` (TLS server name indication) with `other`'s certificate:
 * several web applications on one address and port. Both contexts stay
 * owned by the caller; free `main` first or together.
 */
void	http_tls_add_sni(struct http_tls *main, const char *hostname,
	    struct http_tls *other);

struct http_server *http_server_new(struct event_base *, const char *proc,
	    http_handler_fn, void *arg);
void	http_server_free(struct http_server *);
/*
 * Gathers this thread's log lines and writes them once per event loop
 * iteration instead of once per line (one system call for many requests
 * under load; at once when idle). Call once per process, on the loop's
 * thread; log_flush() at exit.
 */
void	http_server_buffer_logs(struct http_server *);
/*
 * Caps request bodies (default HTTP_MAX_BODY) of a server without a body
 * gate; bigger ones get 413.
 */
void	http_server_set_max_body(struct http_server *, size_t);

/*
 * The body gate decides which requests may send a body larger than
 * HTTP_SMALL_BODY, and how large. It is called once the head of such a
 * request is in (a Content-Length over HTTP_SMALL_BODY, or a chunked body
 * that grows past it), before any byte of a declared body is read and
 * before "100 Continue" is sent. The request's head, path, query, id and
 * peer are there as for a handler; its body is not. The gate, at once or
 * later from a callback on the loop, either
 *  - calls http_req_body_allow(r, max): up to `max` decoded bytes may
 *    be read (413 when the body is larger; 503 when it does not fit the
 *    body memory), then the server's handler is called with the request
 *    as usual; or
 *  - answers the request with any http_reply* function: a refusal, the
 *    connection closes after it (reading and dropping what the client
 *    still sends for a moment, so that it sees the answer).
 * While the gate decides, nothing is read from the connection; a client
 * that leaves is noticed as for a deferred request (http_req_gone), and
 * the request is then released by either call. The gate makes exactly
 * one of the two calls and uses `r` no more after it. Without a gate,
 * the server's max body (http_server_set_max_body) applies to every
 * request.
 */
typedef void (*http_body_gate_fn)(struct http_req *, void *arg);
void	http_server_set_body_gate(struct http_server *, http_body_gate_fn,
	    void *arg);
void	http_req_body_allow(struct http_req *, size_t max);

/*
 * Stops the server gracefully: closes the listener and the connections
 * with no request in progress, lets every other connection finish its
 * current request and close after the answer (Connection: close), and
 * calls drained(arg) once, from the loop, when no connection of this
 * server is left (at the latest after the limits' drain_timeout_ms,
 * closing what is left then).
 */
void	http_server_drain(struct http_server *, void (*drained)(void *arg),
	    void *arg);
/*
 * Listens on host:port (port 0: any free port) with TLS when `tls` is not
 * NULL (borrowed; must outlive the server). Returns the bound port in
 * *bound.
 */
ps_err	http_server_listen(struct http_server *, const char *host, int port,
	    struct http_tls *, int *bound);

/* ---- the request (borrowed; valid until the reply is sent) ---- */

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_OTHER };

enum http_method http_req_method(const struct http_req *);
const char *http_req_method_name(const struct http_req *);
/* The decoded path in lower case, for matching ("/ews/exchange.asmx"). */
const char *http_req_path(const struct http_req *);
/* The decoded path as sent. */
const char *http_req_path_raw(const struct http_req *);
/* A decoded query parameter (first match, exact name), or NULL. */
const char *http_req_query(const struct http_req *, const char *name);
/* A query parameter matched case-insensitively by name, or NULL. */
const char *http_req_query_ci(const struct http_req *, const char *name);
/* A request header (case-insensitive name), or NULL. */
const char *http_req_header(const struct http_req *, const char *name);
/* The body, NUL-terminated; len excludes the NUL. */
const char *http_req_body(const struct http_req *, size_t *len);
const char *http_req_id(const struct http_req *);
const char *http_req_peer(const struct http_req *);
/*
 * The request's header field number `i` (in the order sent, every copy):
 * its name as sent and its value, borrowed for the request's life.
 * False past the last.
 */
bool	http_req_field(const struct http_req *, size_t i, const char **name,
	    const char **value);
/*
 * True the first time it is asked on the request's connection, false
 * after: for what is logged at most once per connection.
 */
bool	http_req_conn_first_note(struct http_req *);
/* Milliseconds since the request arrived. */
int64_t	http_req_elapsed_ms(const struct http_req *);

/*
 * A cookie's value from the Cookie header into buf; false when absent or
 * longer than n - 1.
 */
bool	http_req_cookie(const struct http_req *, const char *name, char *buf,
	    size_t n);
/*
 * A field of an application/x-www-form-urlencoded body, decoded; NULL
 * when absent or malformed. The caller frees it.
 */
char	*http_form_value(const char *body, const char *name);
/* One field of a multipart/form-data body (RFC 7578). */
struct http_part {
	char			 filename[256];	/* "" when not a file */
	char			 content_type[128];
	const unsigned char	*data;		/* borrowed from the body */
	size_t			 len;
};

/*
 * Finds field `name` in a multipart/form-data body whose Content-Type
 * header is `ctype`. PS_ENOTFOUND when absent, PS_EINVAL when the body is
 * not a well-formed multipart form.
 */
ps_err	http_multipart_field(const char *ctype, const char *body, size_t len,
	    const char *name, struct http_part *out);
/*
 * As http_multipart_field(), for a small field that a form puts before
 * its file (a CSRF token): it is looked for in the first
 * HTTP_FORM_HEAD bytes of the body only, so that finding it costs the
 * loop little whatever follows; past them it counts as absent.
 */
#define HTTP_FORM_HEAD	(64 * 1024)
ps_err	http_multipart_head_field(const char *ctype, const char *body,
	    size_t len, const char *name, struct http_part *out);

/* Percent-encodes `s` for a query string; the caller frees it. */
char	*http_encode(const char *s);

/*
 * Whether an If-None-Match field value (NULL: none) names the entity tag
 * `etag` (its opaque value, without quotes), by weak comparison (RFC 9110
 * 13.1.2): "*" alone, or a comma-separated list (empty elements and
 * spaces around commas allowed) of "opaque" or W/"opaque" tags. Strict:
 * a value that is not "*" or such a list, an unquoted tag among it
 * included, matches nothing, so the full answer is sent; a wrong 304
 * would leave a client with a stale photo. Every route answering 304
 * asks this.
 */
bool	http_etag_match(const char *if_none_match, const char *etag);

/*
 * Names the route a request took, for metrics (a static string such as
 * "userphoto"; "other" when never set).
 */
void	http_req_set_route(struct http_req *, const char *route);

/*
 * Logs the request's outcome line at debug level when its status is
 * below 400 (a load balancer's health checks, every few seconds); other
 * statuses are logged as usual.
 */
void	http_req_quiet(struct http_req *);

/* Per-request notes for the outcome log line (copied). */
void	http_req_note(struct http_req *, const char *key, const char *value);

/*
 * Marks a request whose reply comes later (from a callback). If the
 * client goes away meanwhile, the reply functions then only release the
 * request; `http_req_gone` tells whether it did.
 */
void	http_req_defer(struct http_req *);
bool	http_req_gone(const struct http_req *);

/* ---- replies: each sends the response and ends the request ---- */

void	http_reply_header(struct http_req *, const char *name,
	    const char *value);
void	http_reply(struct http_req *, int status, const char *content_type,
	    const void *body, size_t len);
/*
 * Sends `len` bytes at `data` without copying them: `release(arg)` is
 * called once the bytes are no longer needed (after sending, or at once
 * when the client went away). For shared, immutable cached buffers.
 */
void	http_reply_ref(struct http_req *, int status, const char *content_type,
	    const void *data, size_t len, void (*release)(void *), void *arg);
/*
 * Answers /metrics: the registry in the Prometheus text format to a peer
 * `acl` allows, 403 to anyone else.
 */
struct metrics_acl;
void	http_reply_metrics(struct http_req *, const struct metrics_acl *acl);
/* Sends and empties `b`. */
void	http_reply_buf(struct http_req *, int status, const char *content_type,
	    struct buf *b);
/* A short plain-text error body: "<status> <reason>: <message>\n". */
void	http_reply_error(struct http_req *, int status, const char *message);

#endif
