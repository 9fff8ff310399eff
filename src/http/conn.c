/*
 * The HTTP server's connections: accepting them, TLS, reading requests
 * into a buffer and parsing them in place (parse.c), handing each to the
 * server's handler, writing the answers, and closing. Photos are asked
 * for far more than anything else, so a request costs what it must and
 * no more: each connection is registered once, edge-triggered, and read
 * and written until the kernel or OpenSSL says "wait"; nothing is
 * allocated per request; an answer's head and the start of its body go
 * out in one TLS record; a cached photo is sent from its shared buffer.
 *
 * One request per connection is with a handler at a time (pipelined
 * requests wait their turn). If the client goes away while a handler
 * keeps its request, the connection's memory stays until that answer.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "conn.h"

#define IN_INITIAL	8192		/* a connection's first read buffer */
#define IN_KEEP		(64 * 1024)	/* shrink back when idle and above */
#define OUT_KEEP	(256 * 1024)
#define IDLE_MS		30000		/* handshake, idle, or stalled */
#define LINGER_MS	2000		/* reading after our last answer */
#define ACCEPT_BURST	64

/*
 * Once per loop iteration, after the handlers ran: write the buffered log
 * lines, then the answers they describe (so a client that has its answer
 * finds the line in the log), several of each with one system call. One
 * per process, as there is one loop.
 */
static struct event *send_event;
static int nservers;		/* on the loop of send_event */
static struct conn_list send_queue = TAILQ_HEAD_INITIALIZER(send_queue);

static void conn_drive(struct conn *);
static void on_send(evutil_socket_t, short, void *);

/* ---- bytes in and out ---- */

enum io { IO_DONE, IO_WAIT, IO_EOF };

/* What a failed SSL_read, SSL_write or handshake step means here. */
static enum io
tls_failure(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	ERR_clear_error();
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ?
	    IO_WAIT : IO_EOF;
}

/* Reads what there is into the free room of c->in (at least one byte). */
static enum io
conn_read(struct conn *c)
{
	size_t room = c->in_cap - c->in_len - 1;	/* one for a NUL */
	ssize_t n;

	if (c->ssl) {
		int r = SSL_read(c->ssl, c->in + c->in_len, (int)(room >
		    INT32_MAX ? INT32_MAX : room));

		if (r <= 0)
			return tls_failure(c->ssl, r);
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

			if (r <= 0)
				return tls_failure(c->ssl, r);
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
	r->id_from_client = cid && reqid_acceptable(cid);
	if (r->id_from_client)
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
	/* The next head's parse resets r->head. */
	r->method = HTTP_OTHER;
	r->nparams = 0;
	r->notes_len = 0;
	r->notes[0] = '\0';
	r->gone = false;
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
		http_chunked_init(&c->chunked, srv->max_body);
		if (r->head.content_length > (int64_t)srv->max_body) {
			req_refuse(c, 413, "the body is too large");
			return true;
		}
	}
	hl = r->head.head_len;
	if (r->head.chunked) {
		res = http_chunked_feed(&c->chunked, c->in + hl,
		    c->in_len - hl, &used, &status, &why);
		if (res == HTTP_PARSE_LIMIT) {
			req_refuse(c, 413, "the body is too large");
			return true;
		}
		if (res == HTTP_PARSE_ERROR) {
			req_refuse(c, status, why);
			return true;
		}
		body_len = c->chunked.body_len;
		if (res == HTTP_PARSE_MORE) {
			c->in_len = hl + used;
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

void
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
void
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
				if (tls_failure(c->ssl, r) == IO_WAIT)
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

void
conn_accept_cb(evutil_socket_t lfd, short what, void *arg)
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
void
conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
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

void
conn_loop_join(struct event_base *base)
{
	if (send_event == NULL)
		send_event = event_new(base, -1, 0, on_send, NULL);
	nservers++;
}

void
conn_loop_leave(void)
{
	if (--nservers == 0) {
		/* The last server of the loop; the next loop makes its own. */
		event_free(send_event);
		send_event = NULL;
		log_buffer_stop();
	}
}

void
conn_send_soon(void)
{
	if (send_event)
		event_active(send_event, EV_TIMEOUT, 0);
}

void
conn_answered(struct conn *c)
{
	req_finish(c);
	if (!c->in_drive)
		send_enqueue(c);
}
