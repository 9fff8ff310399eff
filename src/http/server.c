/*
 * The HTTP/1.1 server: our own, on libevent's event loop with OpenSSL for
 * TLS. Photos are asked for far more than anything else, so a request
 * costs what it must and no more: each connection is registered once,
 * edge-triggered, and read and written until the kernel says "wait"; the
 * request is parsed in place in the connection's buffer (parse.c) with no
 * allocation; an answer's head and the start of its body go out in one
 * TLS record; a cached photo is sent from its shared buffer.
 *
 * One request per connection is with a handler at a time (pipelined
 * requests wait their turn). A handler may keep its request and answer
 * later from the same loop; if the client goes away meanwhile, the
 * connection's memory stays until that answer, which then only releases
 * it. Every request ends in exactly one outcome line (ev=http.request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "metrics/metrics.h"
#include "parse.h"
#include "server.h"

#define IN_INITIAL	8192		/* a connection's first read buffer */
#define IN_KEEP		(64 * 1024)	/* shrink back when idle and above */
#define OUT_KEEP	(256 * 1024)
#define TLS_RECORD	16384		/* the most one TLS record carries */
#define IDLE_MS		30000		/* handshake, idle, or stalled */
#define LINGER_MS	2000		/* reading after our last answer */
#define SWEEP_MS	1000
#define ACCEPT_BURST	64

/*
 * Once per loop iteration, after the handlers ran: write the buffered log
 * lines, then the answers they describe (so a client that has its answer
 * finds the line in the log), several of each with one system call. One
 * per process, as there is one loop.
 */
static struct event *send_event;
static int nservers;		/* on the loop of send_event */
TAILQ_HEAD(conn_list, conn);
static struct conn_list send_queue = TAILQ_HEAD_INITIALIZER(send_queue);

struct sni_name {
	struct sni_name	*next;
	char		*host;
	struct http_tls	*tls;		/* borrowed */
};

struct http_tls {
	SSL_CTX		*ctx;
	struct sni_name	*names;		/* other certificates, by name */
};

struct conn;

/* The metrics series of one route and status, looked up once. */
struct route_series {
	const char		*route;		/* static */
	int			 status;
	struct metrics_series	*requests, *seconds;
};
#define ROUTE_SERIES	32

struct http_server {
	struct event_base	*base;
	const char		*proc;
	http_handler_fn		 handler;
	void			*arg;
	struct http_tls		*tls;		/* borrowed; NULL: plain */
	size_t			 max_body;
	int			 lfd;
	struct event		*listen_ev;
	bool			 accept_paused;
	struct event		*sweep_ev;
	struct conn		*conns;
	struct route_series	 series[ROUTE_SERIES];
	size_t			 nseries;
};

struct http_req {
	struct conn		*c;
	struct http_head	 head;
	enum http_method	 method;
	struct http_param	 params[HTTP_MAX_PARAMS];
	size_t			 nparams;
	char			 id[65];
	const char		*path_raw;	/* in the connection's scratch */
	const char		*path;
	char			*body;		/* in the connection's buffer */
	size_t			 body_len;
	int64_t			 start_ms;
	char			 notes[1024];	/* " key=value", escaped */
	size_t			 notes_len;
	bool			 deferred;
	bool			 gone;	/* the client closed the connection */
	const char		*route;	/* static; for metrics */
};

struct conn {
	struct conn		*prev, *next;
	TAILQ_ENTRY(conn)	 sendq;
	struct conn_list	*queued;	/* the list it waits on */
	bool			 may_send;	/* its log lines are out */
	struct http_server	*srv;	/* NULL once closed */
	int			 fd;
	SSL			*ssl;	/* NULL: plain */
	struct event		*ev;
	char			 peer[INET6_ADDRSTRLEN];
	int64_t			 last_ms;	/* the last progress */

	bool			 in_drive;	/* conn_drive() is running */
	bool			 busy;		/* a request is with a handler */
	bool			 close_after;	/* once the output is out */
	bool			 lingering;	/* draining before close */
	bool			 closed;	/* kept only for `req` */

	char			*in;		/* what the client sent */
	size_t			 in_len, in_cap;
	bool			 have_head;	/* req.head is parsed */
	bool			 sent_continue;
	size_t			 req_used;	/* bytes of `in` req took */
	bool			 nul_placed;	/* the body's NUL, at... */
	size_t			 nul_at;
	char			 nul_saved;	/* ...hiding this byte */

	struct buf		 out;		/* head and body start */
	size_t			 out_off;
	const char		*ref;		/* the rest of a shared body */
	size_t			 ref_len, ref_off;
	void			(*release)(void *);
	void			*release_arg;

	struct buf		 hdrs;		/* fields the handler added */
	char			*scratch;	/* decoded path and query */
	size_t			 scratch_cap;
	struct http_req		 req;
};

static void conn_drive(struct conn *);
static void conn_close(struct conn *);

/* ---- stopping on signals ---- */

struct http_signals {
	struct event	*sigint, *sigterm;
};

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info(NULL, "serve.stopping", "signal=%d", (int)sig);
	event_base_loopexit(arg, NULL);
}

struct http_signals *
http_signals_watch(struct event_base *base)
{
	struct http_signals *hs = xcalloc(1, sizeof(*hs));

	hs->sigint = evsignal_new(base, SIGINT, on_stop_signal, base);
	hs->sigterm = evsignal_new(base, SIGTERM, on_stop_signal, base);
	event_add(hs->sigint, NULL);
	event_add(hs->sigterm, NULL);
	return hs;
}

void
http_signals_free(struct http_signals *hs)
{
	if (hs == NULL)
		return;
	event_free(hs->sigint);
	event_free(hs->sigterm);
	free(hs);
}

/* ---- TLS ---- */

ps_err
http_tls_new(const char *cert_path, const char *key_path,
    struct http_tls **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct http_tls *t;

	if (ctx == NULL)
		return ps_errf(PS_ECRYPTO, "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	/*
	 * Writes go out a record at a time from buffers that may move
	 * between retries (conn_flush); the default of one write per
	 * record header and one per body is two reads per request.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char e[256];

		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		SSL_CTX_free(ctx);
		return ps_errf(PS_ECRYPTO, "cannot load the TLS certificate %s "
		    "and key %s: %s", cert_path, key_path, e);
	}
	t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	*out = t;
	return PS_OK;
}

void
http_tls_free(struct http_tls *t)
{
	if (t == NULL)
		return;
	while (t->names) {
		struct sni_name *n = t->names;

		t->names = n->next;
		free(n->host);
		free(n);
	}
	SSL_CTX_free(t->ctx);
	free(t);
}

static int
sni_select(SSL *ssl, int *alert, void *arg)
{
	struct http_tls *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct sni_name *n;

	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (n = t->names; n; n = n->next)
		if (strcasecmp(n->host, name) == 0) {
			SSL_set_SSL_CTX(ssl, n->tls->ctx);
			break;
		}
	return SSL_TLSEXT_ERR_OK;
}

void
http_tls_add_sni(struct http_tls *main, const char *hostname,
    struct http_tls *other)
{
	struct sni_name *n = xcalloc(1, sizeof(*n));

	n->host = xstrdup(hostname);
	n->tls = other;
	n->next = main->names;
	main->names = n;
	SSL_CTX_set_tlsext_servername_callback(main->ctx, sni_select);
	SSL_CTX_set_tlsext_servername_arg(main->ctx, main);
}

/* ---- bytes in and out ---- */

enum io { IO_DONE, IO_WAIT, IO_EOF };

/* Reads what there is into the free room of c->in (at least one byte). */
static enum io
conn_read(struct conn *c)
{
	size_t room = c->in_cap - c->in_len - 1;	/* one for a NUL */
	ssize_t n;

	if (c->ssl) {
		int r = SSL_read(c->ssl, c->in + c->in_len, (int)(room >
		    INT32_MAX ? INT32_MAX : room));

		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			ERR_clear_error();
			return e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE ? IO_WAIT : IO_EOF;
		}
		n = r;
	} else {
		do
			n = read(c->fd, c->in + c->in_len, room);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return IO_WAIT;
		if (n <= 0)
			return IO_EOF;
	}
	c->in_len += (size_t)n;
	return IO_DONE;
}

static bool
output_pending(const struct conn *c)
{
	return c->out_off < c->out.b_len || c->ref_off < c->ref_len;
}

static void
release_ref(struct conn *c)
{
	if (c->release)
		c->release(c->release_arg);
	c->release = NULL;
	c->ref = NULL;
	c->ref_len = c->ref_off = 0;
}

/* Writes what is pending; IO_DONE once all of it is out. */
static enum io
conn_flush(struct conn *c)
{
	while (output_pending(c)) {
		bool head = c->out_off < c->out.b_len;
		const char *p = head ? c->out.b_data + c->out_off :
		    c->ref + c->ref_off;
		size_t n = head ? c->out.b_len - c->out_off :
		    c->ref_len - c->ref_off;
		ssize_t w;

		if (c->ssl) {
			int r = SSL_write(c->ssl, p, (int)(n > TLS_RECORD ?
			    TLS_RECORD : n));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				ERR_clear_error();
				return e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ ? IO_WAIT : IO_EOF;
			}
			w = r;
		} else {
			struct iovec iov[2] = {
				{ (void *)p, n },
				{ (void *)(c->ref + c->ref_off),
				  c->ref_len - c->ref_off },
			};
			struct msghdr mh = { .msg_iov = iov,
			    .msg_iovlen = head && c->ref_off < c->ref_len ?
			    2 : 1 };

			do
				w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			while (w < 0 && errno == EINTR);
			if (w < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ?
				    IO_WAIT : IO_EOF;
		}
		c->last_ms = time_mono_ms();
		if (head) {
			size_t h = (size_t)w < n ? (size_t)w : n;

			c->out_off += h;
			c->ref_off += (size_t)w - h;
		} else
			c->ref_off += (size_t)w;
	}
	if (c->out.b_cap > OUT_KEEP)
		buf_cleanup(&c->out);
	else
		buf_reset(&c->out);
	c->out_off = 0;
	release_ref(c);
	return IO_DONE;
}

/* Makes room for `need` bytes and a NUL, keeping the parsed head valid. */
static void
conn_reserve(struct conn *c, size_t need)
{
	char *old = c->in;
	size_t cap = c->in_cap ? c->in_cap : IN_INITIAL, i;
	struct http_head *h = &c->req.head;

	if (need < c->in_cap)
		return;
	while (cap <= need)
		cap *= 2;
	c->in = xrealloc(c->in, cap);
	c->in_cap = cap;
	if (!c->have_head || c->in == old)
		return;
	/* The head's strings point into the buffer: move them with it. */
#define REBASE(p) ((p) = c->in + ((const char *)(p) - old))
	REBASE(h->method);
	REBASE(h->target);
	for (i = 0; i < h->nfields; i++) {
		REBASE(h->fields[i].name);
		REBASE(h->fields[i].value);
	}
#undef REBASE
}

/* ---- the request's text ---- */

static bool
reqid_acceptable(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

static enum http_method
method_of(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return HTTP_GET;
	if (strcmp(m, "HEAD") == 0)
		return HTTP_HEAD;
	if (strcmp(m, "POST") == 0)
		return HTTP_POST;
	return HTTP_OTHER;
}

/*
 * Decodes the target into the scratch space: the path as sent, the path
 * in lower case, and the query split into parameters. False when the path
 * is not one we can route.
 */
static bool
req_decode_target(struct conn *c, struct http_req *r)
{
	const char *t = r->head.target, *q, *end;
	size_t plen, qlen, need;
	char *raw, *low, *query;

	if (strncasecmp(t, "http://", 7) == 0 ||
	    strncasecmp(t, "https://", 8) == 0) {
		/* absolute-form (RFC 9112 §3.2.2): the path follows. */
		t = strchr(strstr(t, "//") + 2, '/');
		if (t == NULL)
			t = "/";
	}
	if (*t != '/')
		return false;
	end = t + strcspn(t, "#");
	q = memchr(t, '?', (size_t)(end - t));
	plen = (size_t)((q ? q : end) - t);
	qlen = q ? (size_t)(end - q - 1) : 0;
	need = 2 * (plen + 1) + qlen + 1;
	if (need > c->scratch_cap) {
		c->scratch = xrealloc(c->scratch, need);
		c->scratch_cap = need;
	}
	raw = c->scratch;
	if (http_pct_decode(t, plen, false, raw) != strlen(raw))
		return false;			/* an encoded NUL */
	low = raw + strlen(raw) + 1;
	memcpy(low, raw, strlen(raw) + 1);
	str_lower(low);
	query = low + strlen(low) + 1;
	memcpy(query, q ? q + 1 : "", qlen);
	query[qlen] = '\0';
	r->path_raw = raw;
	r->path = low;
	r->nparams = http_parse_params(query, r->params, HTTP_MAX_PARAMS);
	return true;
}

/* The request's id (the client's, when acceptable) and start time. */
static void
req_start(struct http_req *r)
{
	const char *cid = http_head_field(&r->head, "client-request-id");

	r->start_ms = time_mono_ms();
	if (cid && reqid_acceptable(cid))
		str_copy(r->id, cid, sizeof(r->id));
	else
		reqid_new(r->id);
}

/*
 * A request the server answers itself (malformed, too large, a path it
 * cannot route), then closes the connection.
 */
static void
req_refuse(struct conn *c, int status, const char *why)
{
	struct http_req *r = &c->req;

	if (!c->busy)
		req_start(r);
	c->busy = true;
	c->may_send = false;
	c->req_used = c->in_len;		/* nothing after it is read */
	c->close_after = true;
	r->head.keep_alive = false;
	if (r->path_raw == NULL)
		r->path_raw = r->path = "-";
	http_reply_error(r, status, why);
}

static void
req_dispatch(struct conn *c, size_t body_len, size_t used)
{
	struct http_req *r = &c->req;
	struct http_server *srv = c->srv;

	r->method = method_of(r->head.method);
	req_start(r);
	r->body = c->in + r->head.head_len;
	r->body_len = body_len;
	/* The body is a string for its readers; hide the byte after it. */
	c->nul_placed = true;
	c->nul_at = r->head.head_len + body_len;
	c->nul_saved = c->in[c->nul_at];
	c->in[c->nul_at] = '\0';
	c->req_used = used;
	c->busy = true;
	c->may_send = false;
	if (!req_decode_target(c, r)) {
		req_refuse(c, 400, "the path is not valid");
		return;
	}
	srv->handler(r, srv->arg);
}

/* The request's answer is queued: make ready for the next one. */
static void
req_finish(struct conn *c)
{
	struct http_req *r = &c->req;

	if (c->nul_placed)
		c->in[c->nul_at] = c->nul_saved;
	c->nul_placed = false;
	if (c->req_used < c->in_len)
		memmove(c->in, c->in + c->req_used, c->in_len - c->req_used);
	c->in_len -= c->req_used;
	c->req_used = 0;
	if (!r->head.keep_alive)
		c->close_after = true;
	c->have_head = false;
	c->sent_continue = false;
	c->busy = false;
	buf_reset(&c->hdrs);
	memset(r, 0, offsetof(struct http_req, params));
	r->c = c;
	r->nparams = 0;
	r->notes_len = 0;
	r->notes[0] = '\0';
	r->deferred = r->gone = false;
	r->route = NULL;
	r->path_raw = r->path = NULL;
}

/*
 * Reads a request from what has arrived: dispatches it (true), or asks
 * for more bytes (false).
 */
static bool
conn_parse(struct conn *c)
{
	struct http_req *r = &c->req;
	struct http_server *srv = c->srv;
	enum http_parse_result res;
	size_t body_len, used, hl;
	const char *why;
	int status;

	if (!c->have_head) {
		if (c->in_len == 0)
			return false;
		res = http_parse_head(c->in, c->in_len, HTTP_MAX_HEADERS,
		    &r->head, &status, &why);
		if (res == HTTP_PARSE_MORE) {
			conn_reserve(c, c->in_len + 1);
			return false;
		}
		if (res == HTTP_PARSE_ERROR) {
			req_refuse(c, status, why);
			return true;
		}
		c->have_head = true;
		if (r->head.content_length > (int64_t)srv->max_body) {
			req_refuse(c, 413, "the body is too large");
			return true;
		}
	}
	hl = r->head.head_len;
	if (r->head.chunked) {
		res = http_parse_chunked(c->in + hl, c->in_len - hl,
		    srv->max_body, &body_len, &used, &status, &why);
		if (res == HTTP_PARSE_ERROR) {
			req_refuse(c, status, why);
			return true;
		}
		if (res == HTTP_PARSE_MORE) {
			if (c->in_len - hl > 2 * srv->max_body + 65536) {
				req_refuse(c, 413, "the body is too large");
				return true;
			}
			conn_reserve(c, c->in_len + 1);
		}
	} else {
		body_len = r->head.content_length > 0 ?
		    (size_t)r->head.content_length : 0;
		used = body_len;
		res = c->in_len - hl >= body_len ? HTTP_PARSE_DONE :
		    HTTP_PARSE_MORE;
		if (res == HTTP_PARSE_MORE)
			conn_reserve(c, hl + body_len);
	}
	if (res == HTTP_PARSE_MORE) {
		if (r->head.expect_continue && !c->sent_continue) {
			c->sent_continue = true;
			buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		}
		return false;
	}
	req_dispatch(c, body_len, hl + used);
	return true;
}

/* ---- connections ---- */

static void
conn_free(struct conn *c)
{
	free(c->in);
	free(c->scratch);
	buf_cleanup(&c->out);
	buf_cleanup(&c->hdrs);
	free(c);
}

static void
conn_unlink(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (c->srv)
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/*
 * Closes the connection. Its memory goes now, or, when a handler still
 * has its request, with that request's answer.
 */
static void
conn_close(struct conn *c)
{
	if (c->ssl) {
		if (!c->lingering && SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	event_free(c->ev);
	c->ev = NULL;
	close(c->fd);
	c->fd = -1;
	release_ref(c);
	conn_unlink(c);
	if (c->queued) {
		TAILQ_REMOVE(c->queued, c, sendq);
		c->queued = NULL;
	}
	c->srv = NULL;
	if (c->busy) {
		c->closed = true;
		c->req.gone = true;
		return;
	}
	conn_free(c);
}

/*
 * After our last answer: say so, then read and drop what the client is
 * still sending for a while, so that our answer (a 413, say) is not lost
 * to a reset (RFC 9112 §9.6).
 */
static void
conn_linger(struct conn *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->last_ms = time_mono_ms();
}

/* Reads and drops; false once the client has closed. */
static bool
conn_drain(struct conn *c)
{
	char sink[4096];
	ssize_t n;

	while ((n = read(c->fd, sink, sizeof(sink))) > 0)
		;
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR);
}

static void
send_enqueue(struct conn *c)
{
	if (!c->queued) {
		TAILQ_INSERT_TAIL(&send_queue, c, sendq);
		c->queued = &send_queue;
	}
	event_active(send_event, EV_TIMEOUT, 0);
}

static void
on_send(evutil_socket_t fd, short what, void *arg)
{
	struct conn_list now = TAILQ_HEAD_INITIALIZER(now);
	struct conn *c;

	(void)fd;
	(void)what;
	(void)arg;
	log_flush();
	/*
	 * Only what was logged above may go; a connection that answers
	 * again while driven waits for the next round. One closed meanwhile
	 * leaves `now` itself (conn_close).
	 */
	TAILQ_CONCAT(&now, &send_queue, sendq);
	TAILQ_FOREACH(c, &now, sendq)
		c->queued = &now;
	while ((c = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, c, sendq);
		c->queued = NULL;
		c->may_send = true;
		conn_drive(c);
	}
}

/*
 * Moves the connection on as far as it goes without waiting: handshake,
 * output, then the next request. The event is edge-triggered, so it
 * returns only when the kernel or OpenSSL said "wait", when a handler
 * kept its request, or after closing (c is then gone).
 */
static void
conn_drive(struct conn *c)
{
	c->in_drive = true;
	for (;;) {
		if (c->ssl && !SSL_is_init_finished(c->ssl)) {
			int r = SSL_do_handshake(c->ssl);

			if (r != 1) {
				int e = SSL_get_error(c->ssl, r);

				ERR_clear_error();
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					break;
				log_debug(NULL, "http.tls_failed", "peer=%s",
				    log_q(c->peer));
				goto close;
			}
		}
		if (c->lingering) {
			if (!conn_drain(c))
				goto close;
			break;
		}
		if (output_pending(c) && !c->may_send) {
			send_enqueue(c);
			break;
		}
		if (output_pending(c)) {
			enum io io = conn_flush(c);

			if (io == IO_EOF)
				goto close;
			if (io == IO_WAIT)
				break;
		}
		if (c->busy)
			break;
		if (c->close_after) {
			conn_linger(c);
			continue;
		}
		if (conn_parse(c))
			continue;
		if (output_pending(c)) {	/* 100 Continue: no log line */
			c->may_send = true;
			continue;
		}
		if (c->in_cap == 0)
			conn_reserve(c, IN_INITIAL - 1);
		switch (conn_read(c)) {
		case IO_DONE:
			c->last_ms = time_mono_ms();
			continue;
		case IO_WAIT:
			if (c->in_len == 0 && c->in_cap > IN_KEEP) {
				free(c->in);
				c->in = NULL;
				c->in_cap = 0;
			}
			goto out;
		case IO_EOF:
			goto close;
		}
	}
out:
	c->in_drive = false;
	return;
close:
	c->in_drive = false;
	conn_close(c);
}

static void
on_conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if ((what & EV_CLOSED) && c->busy) {
		/* The client left while its request is being worked on. */
		conn_close(c);
		return;
	}
	conn_drive(c);
}

static void
conn_new(struct http_server *srv, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->req.c = c;
	c->fd = fd;
	c->last_ms = time_mono_ms();
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    c->peer, sizeof(c->peer));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)ss)->sin6_addr, c->peer,
		    sizeof(c->peer));
	buf_init(&c->out, (size_t)1 << 30);
	buf_init(&c->hdrs, HTTP_MAX_HEADERS);
	if (srv->tls) {
		c->ssl = SSL_new(srv->tls->ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			SSL_free(c->ssl);
			ERR_clear_error();
			close(fd);
			conn_free(c);
			return;
		}
		SSL_set_accept_state(c->ssl);
	}
	/* Registered once: edge-triggered, for reading and writing. */
	c->ev = event_new(srv->base, fd, EV_READ | EV_WRITE | EV_PERSIST |
	    EV_ET | EV_CLOSED, on_conn_event, c);
	event_add(c->ev, NULL);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct http_server *srv = arg;
	int i;

	(void)what;
	for (i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(srv, fd, &ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of descriptors: stop accepting for a moment. */
			log_warn(NULL, "http.accept_failed", "error=%s",
			    log_q(strerror(errno)));
			event_del(srv->listen_ev);
			srv->accept_paused = true;
		}
		break;
	}
}

/* Closes what has been quiet too long; resumes accepting. */
static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	int64_t now = time_mono_ms();
	struct conn *c, *next;

	(void)fd;
	(void)what;
	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (c->busy)
			continue;
		if (now - c->last_ms > (c->lingering ? LINGER_MS : IDLE_MS))
			conn_close(c);
	}
	if (srv->accept_paused) {
		srv->accept_paused = false;
		event_add(srv->listen_ev, NULL);
	}
}

/* ---- the server ---- */

struct http_server *
http_server_new(struct event_base *base, const char *proc,
    http_handler_fn fn, void *arg)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	struct timeval tv = { SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000 };

	srv->base = base;
	srv->proc = proc;
	srv->handler = fn;
	srv->arg = arg;
	srv->max_body = HTTP_MAX_BODY;
	srv->lfd = -1;
	srv->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, srv);
	event_add(srv->sweep_ev, &tv);
	if (send_event == NULL)
		send_event = event_new(base, -1, 0, on_send, NULL);
	nservers++;
	/* A client that left must not end the process. */
	signal(SIGPIPE, SIG_IGN);
	metrics_declare("photosync_http_requests_total", "counter",
	    "HTTP requests answered, by route and status.");
	metrics_declare("photosync_http_request_seconds", "histogram",
	    "Time from a request's arrival to its answer, by route.");
	return srv;
}

void
http_server_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	log_flush();
	while (srv->conns)
		conn_close(srv->conns);
	if (--nservers == 0) {
		/* The last server of the loop; the next loop makes its own. */
		event_free(send_event);
		send_event = NULL;
		log_buffer_stop();
	}
	if (srv->listen_ev)
		event_free(srv->listen_ev);
	if (srv->lfd >= 0)
		close(srv->lfd);
	event_free(srv->sweep_ev);
	free(srv);
}

static void
log_schedule(void)
{
	if (send_event)
		event_active(send_event, EV_TIMEOUT, 0);
}

void
http_server_buffer_logs(struct http_server *srv)
{
	(void)srv;
	log_buffer_start(log_schedule);
}

void
http_server_set_max_body(struct http_server *srv, size_t max)
{
	srv->max_body = max;
}

static int
listen_socket(const struct addrinfo *ai)
{
	int fd, one = 1;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/*
	 * Small responses must not wait for Nagle's algorithm (40 ms on
	 * loopback under TLS); accepted sockets inherit this on Linux.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, 511) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

ps_err
http_server_listen(struct http_server *srv, const char *host, int port,
    struct http_tls *tls, int *bound)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[16];
	int gai, fd = -1, e = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	if ((gai = getaddrinfo(host, service, &hints, &res)) != 0)
		return ps_errf(PS_EIO, "cannot listen on %s:%d: %s", host,
		    port, gai_strerror(gai));
	for (ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((fd = listen_socket(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0)
		return ps_errf(PS_EIO, "cannot listen on %s:%d: %s", host,
		    port, strerror(e));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		e = errno;
		close(fd);
		return ps_errf(PS_EIO, "getsockname: %s", strerror(e));
	}
	if (ss.ss_family == AF_INET)
		*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else
		*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	srv->tls = tls;
	srv->lfd = fd;
	srv->listen_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST,
	    on_accept, srv);
	event_add(srv->listen_ev, NULL);
	return PS_OK;
}

/* ---- the request, for handlers ---- */

enum http_method
http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *
http_req_method_name(const struct http_req *r)
{
	return r->head.method ? r->head.method : "-";
}

const char *
http_req_path(const struct http_req *r)
{
	return r->path ? r->path : "/";
}

const char *
http_req_path_raw(const struct http_req *r)
{
	return r->path_raw ? r->path_raw : "/";
}

const char *
http_req_query(const struct http_req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->params[i].name, name) == 0)
			return r->params[i].value;
	return NULL;
}

const char *
http_req_query_ci(const struct http_req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (strcasecmp(r->params[i].name, name) == 0)
			return r->params[i].value;
	return NULL;
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	return http_head_field(&r->head, name);
}

const char *
http_req_body(const struct http_req *r, size_t *len)
{
	if (len)
		*len = r->body_len;
	return r->body ? r->body : "";
}

const char *
http_req_id(const struct http_req *r)
{
	return r->id;
}

const char *
http_req_peer(const struct http_req *r)
{
	return r->c->peer;
}

int64_t
http_req_elapsed_ms(const struct http_req *r)
{
	return time_mono_ms() - r->start_ms;
}

bool
http_req_cookie(const struct http_req *r, const char *name, char *buf,
    size_t n)
{
	const char *h = http_req_header(r, "Cookie"), *p;
	size_t nl = strlen(name), vl;

	for (p = h; p && *p; ) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			p += nl + 1;
			vl = strcspn(p, ";");
			if (vl >= n)
				return false;
			memcpy(buf, p, vl);
			buf[vl] = '\0';
			return true;
		}
		p = strchr(p, ';');
	}
	return false;
}

char *
http_form_value(const char *body, const char *name)
{
	struct http_param params[HTTP_MAX_PARAMS];
	char *copy = xstrdup(body), *out = NULL;
	size_t n, i;

	n = http_parse_params(copy, params, HTTP_MAX_PARAMS);
	for (i = 0; i < n && out == NULL; i++)
		if (strcmp(params[i].name, name) == 0)
			out = xstrdup(params[i].value);
	free(copy);
	return out;
}

char *
http_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL)
			*o++ = (char)ch;
		else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

void
http_req_set_route(struct http_req *r, const char *route)
{
	r->route = route;
}

void
http_req_note(struct http_req *r, const char *key, const char *value)
{
	const char *q = log_q(value ? value : "");
	size_t kl = strlen(key), ql = strlen(q);
	char *p = r->notes + r->notes_len;

	if (r->notes_len + kl + ql + 3 > sizeof(r->notes))
		return;				/* full: the note is left out */
	*p++ = ' ';
	memcpy(p, key, kl);
	p[kl] = '=';
	memcpy(p + kl + 1, q, ql + 1);
	r->notes_len += kl + ql + 2;
}

void
http_req_defer(struct http_req *r)
{
	r->deferred = true;
}

bool
http_req_gone(const struct http_req *r)
{
	return r->gone;
}

/* ---- answers ---- */

static bool
header_text_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

static void
add_field(struct buf *b, const char *name, const char *value)
{
	(void)(buf_adds(b, name) || buf_add(b, ": ", 2) ||
	    buf_adds(b, value) || buf_add(b, "\r\n", 2));
}

void
http_reply_header(struct http_req *r, const char *name, const char *value)
{
	struct buf *b = &r->c->hdrs;

	if (r->gone)
		return;
	if (!header_text_ok(name) || !header_text_ok(value) ||
	    b->b_len + strlen(name) + strlen(value) + 4 > b->b_max) {
		log_warn(r->id, "http.header_refused", "name=%s",
		    log_q(name));
		return;
	}
	add_field(b, name, value);
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Status";
}

static struct route_series *
route_series(struct http_server *srv, const char *route, int status)
{
	struct route_series *rs;
	char labels[128];
	size_t i;

	for (i = 0; i < srv->nseries; i++)
		if (srv->series[i].route == route &&
		    srv->series[i].status == status)
			return &srv->series[i];
	/* Routes are few; should statuses be many, reuse the last slot. */
	rs = &srv->series[srv->nseries < ROUTE_SERIES ? srv->nseries++ :
	    ROUTE_SERIES - 1];
	rs->route = route;
	rs->status = status;
	snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"",
	    route, status);
	rs->requests = metrics_counter("photosync_http_requests_total",
	    labels);
	snprintf(labels, sizeof(labels), "route=\"%s\"", route);
	rs->seconds = metrics_histogram("photosync_http_request_seconds",
	    labels);
	return rs;
}

static void
log_outcome(struct http_req *r, int status, size_t len)
{
	struct route_series *rs = route_series(r->c->srv, r->route ?
	    r->route : "other", status);

	metrics_series_add(rs->requests, 1);
	metrics_series_observe(rs->seconds,
	    (double)http_req_elapsed_ms(r) / 1000.0);
	log_event(status >= 500 ? LOG_WARN : LOG_INFO, r->id, "http.request",
	    "method=%s path=%s status=%d bytes=%zu ms=%lld peer=%s%s",
	    http_req_method_name(r), log_q(http_req_path_raw(r)), status, len,
	    (long long)http_req_elapsed_ms(r), log_q(r->c->peer), r->notes);
}

/* The Date field, made once a second. */
static const char *
date_field(void)
{
	static char line[64];
	static time_t made;
	time_t now = time(NULL);

	if (now != made) {
		char d[40];

		snprintf(line, sizeof(line), "Date: %s\r\n",
		    time_http(now, d));
		made = now;
	}
	return line;
}

/* Queues the status line and the fields. */
static void
reply_head(struct http_req *r, int status, const char *content_type,
    size_t len)
{
	struct conn *c = r->c;
	struct buf *b = &c->out;
	const char *cid = http_req_header(r, "client-request-id");
	char num[32];
	bool bodyless = status < 200 || status == 204 || status == 304;

	snprintf(num, sizeof(num), "HTTP/1.1 %d ", status);
	buf_adds(b, num);
	buf_adds(b, reason_phrase(status));
	buf_add(b, "\r\n", 2);
	buf_adds(b, date_field());
	if (!bodyless) {
		snprintf(num, sizeof(num), "%zu", len);
		add_field(b, "Content-Length", num);
	}
	if (content_type)
		add_field(b, "Content-Type", content_type);
	add_field(b, "request-id", r->id);
	add_field(b, "X-Request-Id", r->id);
	if (cid && reqid_acceptable(cid))
		add_field(b, "client-request-id", cid);
	add_field(b, "X-Content-Type-Options", "nosniff");
	buf_add(b, c->hdrs.b_data, c->hdrs.b_len);
	if (!r->head.keep_alive || c->close_after)
		add_field(b, "Connection", "close");
	else if (r->head.minor == 0)
		add_field(b, "Connection", "keep-alive");
	buf_add(b, "\r\n", 2);
}

/*
 * Sends the answer: `body` is copied, or, with `release`, referred to
 * until it is written. Ends the request.
 */
static void
reply_send(struct http_req *r, int status, const char *content_type,
    const void *body, size_t len, void (*release)(void *), void *arg)
{
	struct conn *c = r->c;
	bool bodyless = status < 200 || status == 204 || status == 304 ||
	    r->method == HTTP_HEAD;

	if (r->gone) {
		log_info(r->id, "http.client_gone", "path=%s ms=%lld",
		    log_q(http_req_path_raw(r)),
		    (long long)http_req_elapsed_ms(r));
		if (release)
			release(arg);
		conn_free(c);
		return;
	}
	reply_head(r, status, content_type, len);
	if (!bodyless && len > 0) {
		/* The start of the body rides in the head's TLS record. */
		size_t copy = len;

		if (release && c->out.b_len < TLS_RECORD &&
		    len > TLS_RECORD - c->out.b_len)
			copy = TLS_RECORD - c->out.b_len;
		else if (release && c->out.b_len >= TLS_RECORD)
			copy = 0;
		buf_add(&c->out, body, copy);
		if (copy < len) {
			c->ref = (const char *)body + copy;
			c->ref_len = len - copy;
			c->ref_off = 0;
			c->release = release;
			c->release_arg = arg;
			release = NULL;
		}
	}
	if (release)
		release(arg);
	log_outcome(r, status, len);
	req_finish(c);
	if (!c->in_drive)
		send_enqueue(c);
}

void
http_reply(struct http_req *r, int status, const char *content_type,
    const void *body, size_t len)
{
	reply_send(r, status, content_type, body, len, NULL, NULL);
}

void
http_reply_ref(struct http_req *r, int status, const char *content_type,
    const void *data, size_t len, void (*release)(void *), void *arg)
{
	reply_send(r, status, content_type, data, len, release, arg);
}

void
http_reply_buf(struct http_req *r, int status, const char *content_type,
    struct buf *b)
{
	http_reply(r, status, content_type, b->b_data, b->b_len);
	buf_reset(b);
}

void
http_reply_metrics(struct http_req *r, const struct metrics_acl *acl)
{
	struct buf out;

	if (!metrics_acl_allows(acl, http_req_peer(r))) {
		http_reply_error(r, 403, "metrics are served to the addresses "
		    "given with serve --metrics-allow only");
		return;
	}
	buf_init(&out, 4 << 20);
	metrics_render(&out);
	http_reply_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8",
	    &out);
	buf_cleanup(&out);
}

void
http_reply_error(struct http_req *r, int status, const char *message)
{
	char *body = xasprintf("%d %s: %s\n", status, reason_phrase(status),
	    message);

	http_req_note(r, "error", message);
	http_reply(r, status, "text/plain; charset=utf-8", body, strlen(body));
	free(body);
}
