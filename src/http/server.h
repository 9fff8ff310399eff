/*
 * The HTTP/1.1 server (our own, on libevent's loop and OpenSSL). Routes
 * see our own request type: the decoded, lower-cased path for
 * case-insensitive matching, query parameters, headers, a size-capped
 * body, and a request id that is on every log line and echoed to the
 * client (request-id, X-Request-Id, and the client-request-id an EWS
 * client sent).
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
#define HTTP_MAX_HEADERS	(32 * 1024)

typedef void (*http_handler_fn)(struct http_req *, void *arg);

/*
 * Ends the event loop on SIGINT or SIGTERM (logging serve.stopping), so a
 * server shuts down cleanly. Free the watch after the loop returns.
 */
struct http_signals;
struct http_signals *http_signals_watch(struct event_base *);
void	http_signals_free(struct http_signals *);

/* A TLS context from PEM files (TLS 1.2 and later). */
ps_err	http_tls_new(const char *cert_path, const char *key_path,
	    struct http_tls **out);
void	http_tls_free(struct http_tls *);
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
/* Caps request bodies (default HTTP_MAX_BODY); bigger ones get 413. */
void	http_server_set_max_body(struct http_server *, size_t);
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

/* Percent-encodes `s` for a query string; the caller frees it. */
char	*http_encode(const char *s);

/*
 * Names the route a request took, for metrics (a static string such as
 * "userphoto"; "other" when never set).
 */
void	http_req_set_route(struct http_req *, const char *route);

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
