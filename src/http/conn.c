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
 *
 * The budgets are kept here too (struct http_limits): a connection cap
 * for the process that closes the least recently active idle connection
 * first, deadlines for the handshake, a whole request head, an idle
 * connection and a body's average rate, and one memory budget for the
 * request bodies of every connection. Bodies over HTTP_SMALL_BODY wait
 * for the server's body gate.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "conn.h"
#include "metrics/metrics.h"

#define IN_INITIAL	8192		/* a connection's first read buffer */
#define IN_KEEP		(64 * 1024)	/* shrink back when idle and above */
#define OUT_KEEP	(256 * 1024)
#define LINGER_MS	2000		/* reading after our last answer */
#define DRIVE_READ_MAX	(256 * 1024)	/* bytes read per turn */
#define ACCEPT_BURST	64
#define SWEEP_CLOSE_MAX	64		/* closes per turn of the sweep */
#define RETRY_AFTER	"2"		/* seconds, when bodies do not fit */

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
static void req_start(struct conn *);
static void req_refuse(struct conn *, int status, const char *why);

/* ---- budgets: one set per process, as there is one loop ---- */

const struct http_limits http_default_limits = {
	.max_connections = 0,			/* from RLIMIT_NOFILE */
	.body_memory = (size_t)128 << 20,
	.head_timeout_ms = 10000,
	.idle_timeout_ms = 30000,
	.handshake_timeout_ms = 10000,
	.body_grace_ms = 10000,
	.body_min_rate = 1024,
	.drain_timeout_ms = 30000,
};

static struct http_limits limits;	/* in force once resolved */
static bool limits_given, limits_resolved;
static size_t nconns;			/* open, every server */
static size_t body_held;		/* reserved for bodies, every server */
/* Connections without a request with a handler, least recently active first. */
static struct conn_list evictable = TAILQ_HEAD_INITIALIZER(evictable);

void
http_set_limits(const struct http_limits *l)
{
	limits = *l;
	limits_given = true;
	limits_resolved = false;
}

/*
 * For the integration tests only: PHOTOSYNC_HTTP_TEST_LIMITS="head_ms=300,
 * idle_ms=...,handshake_ms=...,body_grace_ms=...,body_min_rate=...,
 * drain_ms=..." shortens the deadlines so that tests need not wait for
 * the real ones (docs/operations.md).
 */
static void
limits_test_overrides(struct http_limits *l)
{
	const char *env = getenv("PHOTOSYNC_HTTP_TEST_LIMITS");
	char *copy, *tok, *save = NULL;

	if (env == NULL || *env == '\0')
		return;
	copy = xstrdup(env);
	for (tok = strtok_r(copy, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		long long v;

		if (eq == NULL || (v = strtoll(eq + 1, NULL, 10)) <= 0)
			continue;
		*eq = '\0';
		if (strcmp(tok, "head_ms") == 0)
			l->head_timeout_ms = v;
		else if (strcmp(tok, "idle_ms") == 0)
			l->idle_timeout_ms = v;
		else if (strcmp(tok, "handshake_ms") == 0)
			l->handshake_timeout_ms = v;
		else if (strcmp(tok, "body_grace_ms") == 0)
			l->body_grace_ms = v;
		else if (strcmp(tok, "body_min_rate") == 0)
			l->body_min_rate = (size_t)v;
		else if (strcmp(tok, "drain_ms") == 0)
			l->drain_timeout_ms = v;
	}
	free(copy);
	log_warn(NULL, "http.test_limits", "value=%s", log_q(env));
}

/*
 * The limits in force: what http_set_limits gave, defaults for what it
 * left 0, and a connection cap that fits the descriptors this process
 * may open (the soft limit raised to the hard one first).
 */
static void
limits_resolve(void)
{
	const struct http_limits *d = &http_default_limits;
	struct rlimit rl;
	size_t fds = SIZE_MAX, cap;

	if (limits_resolved)
		return;
	if (!limits_given)
		limits = *d;
#define DEFAULT(f) do { if (limits.f == 0) limits.f = d->f; } while (0)
	DEFAULT(body_memory);
	DEFAULT(head_timeout_ms);
	DEFAULT(idle_timeout_ms);
	DEFAULT(handshake_timeout_ms);
	DEFAULT(body_grace_ms);
	DEFAULT(body_min_rate);
	DEFAULT(drain_timeout_ms);
#undef DEFAULT
	limits_test_overrides(&limits);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			struct rlimit raised = { rl.rlim_max, rl.rlim_max };

			if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
				rl = raised;
		}
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < SIZE_MAX)
			fds = (size_t)rl.rlim_cur;
	}
	cap = fds > 2 * HTTP_FD_RESERVE ? fds - HTTP_FD_RESERVE : fds / 2;
	if (limits.max_connections == 0)
		limits.max_connections = cap < HTTP_MAX_CONNECTIONS ? cap :
		    HTTP_MAX_CONNECTIONS;
	else if (limits.max_connections > cap)
		limits.max_connections = cap;
	limits_resolved = true;
	log_info(NULL, "http.limits", "max_connections=%zu nofile=%zu "
	    "body_memory=%zu head_timeout_ms=%lld idle_timeout_ms=%lld "
	    "handshake_timeout_ms=%lld body_min_rate=%zu body_grace_ms=%lld",
	    limits.max_connections, fds, limits.body_memory,
	    (long long)limits.head_timeout_ms,
	    (long long)limits.idle_timeout_ms,
	    (long long)limits.handshake_timeout_ms, limits.body_min_rate,
	    (long long)limits.body_grace_ms);
	metrics_declare("photosync_http_connections", "gauge",
	    "HTTP connections open (every server of the process).");
	metrics_declare("photosync_http_connections_max", "gauge",
	    "The connection cap.");
	metrics_declare("photosync_http_body_bytes", "gauge",
	    "Request body memory reserved.");
	metrics_declare("photosync_http_body_bytes_max", "gauge",
	    "The request body memory budget.");
	metrics_declare("photosync_http_refused_total", "counter",
	    "Connections and requests refused or closed by a budget, by "
	    "reason.");
	metrics_set("photosync_http_connections_max", "",
	    (double)limits.max_connections);
	metrics_set("photosync_http_body_bytes_max", "",
	    (double)limits.body_memory);
}

const struct http_limits *
conn_limits(void)
{
	limits_resolve();
	return &limits;
}

int64_t
conn_sweep_ms(void)
{
	int64_t ms = SWEEP_MS;

	limits_resolve();
	/* Often enough that a deadline is kept to a quarter of itself. */
	if (limits.head_timeout_ms / 4 < ms)
		ms = limits.head_timeout_ms / 4;
	if (limits.idle_timeout_ms / 4 < ms)
		ms = limits.idle_timeout_ms / 4;
	if (limits.handshake_timeout_ms / 4 < ms)
		ms = limits.handshake_timeout_ms / 4;
	if (limits.body_grace_ms / 4 < ms)
		ms = limits.body_grace_ms / 4;
	return ms < 20 ? 20 : ms;
}

static void
refused_count(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	metrics_add("photosync_http_refused_total", labels, 1);
}

/* Moves the connection to the end of the eviction order (it just acted). */
static void
lru_touch(struct conn *c, int64_t now)
{
	c->active_ms = now;
	if (c->on_lru)
		TAILQ_REMOVE(&evictable, c, lru);
	c->on_lru = !c->busy && c->srv != NULL;
	if (c->on_lru)
		TAILQ_INSERT_TAIL(&evictable, c, lru);
}

/* Takes the connection out of the eviction order (a handler has it). */
static void
lru_leave(struct conn *c)
{
	if (c->on_lru)
		TAILQ_REMOVE(&evictable, c, lru);
	c->on_lru = false;
}

/*
 * Takes body memory for `total` bytes of this request's body. False when
 * they do not fit: the request is then answered (503, or 413 for a body
 * larger than the whole budget).
 */
static bool
body_reserve(struct conn *c, size_t total)
{
	struct http_req *r = &c->req;
	size_t more;

	if (total <= c->reserved)
		return true;
	more = total - c->reserved;
	if (more <= limits.body_memory - body_held) {
		body_held += more;
		c->reserved = total;
		return true;
	}
	if (!c->req_started)
		req_start(c);
	log_warn(r->id, "http.body_refused", "peer=%s size=%zu held=%zu "
	    "budget=%zu", log_q(c->peer), total, body_held,
	    limits.body_memory);
	refused_count("body_memory");
	if (total > limits.body_memory) {
		req_refuse(c, 413, "the body is larger than the server holds "
		    "in memory");
		return false;
	}
	http_reply_header(r, "Retry-After", RETRY_AFTER);
	req_refuse(c, 503, "the server is holding as many request bodies as "
	    "it may; try again shortly");
	return false;
}

static void
body_release(struct conn *c)
{
	body_held -= c->reserved;
	c->reserved = 0;
}

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
		lru_touch(c, time_mono_ms());
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
	c->idle_ms = c->active_ms;	/* waiting for the next request */
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

/*
 * The request's id, always our own (a client cannot choose what our log
 * lines are filed under, nor make two requests look like one), the
 * client's client-request-id when it sent a sane one, and the start time.
 */
static void
req_start(struct conn *c)
{
	struct http_req *r = &c->req;
	const char *cid = http_head_field(&r->head, "client-request-id");

	r->start_ms = time_mono_ms();
	reqid_new(r->id);
	if (cid && reqid_acceptable(cid))
		str_copy(r->client_id, cid, sizeof(r->client_id));
	else
		r->client_id[0] = '\0';
	c->req_started = true;
}

/*
 * A request the server answers itself (malformed, too large, too slow, a
 * path it cannot route), then closes the connection.
 */
static void
req_refuse(struct conn *c, int status, const char *why)
{
	struct http_req *r = &c->req;

	if (!c->req_started)
		req_start(c);
	lru_leave(c);
	c->busy = true;
	c->may_send = false;
	c->req_used = c->in_len;		/* nothing after it is read */
	c->close_after = true;
	r->head.keep_alive = false;
	if (r->path_raw == NULL && c->have_head) {
		/* For the log line: the method and path of a readable head. */
		r->method = method_of(r->head.method);
		(void)req_decode_target(c, r);
	}
	if (r->path_raw == NULL)
		r->path_raw = r->path = "-";
	http_reply_error(r, status, why);
}

/*
 * What a handler or gate sees of the request before its body: method,
 * id, clock, path and query. False when the path cannot be routed (the
 * request is then answered).
 */
static bool
req_prepare(struct conn *c)
{
	struct http_req *r = &c->req;

	if (r->path != NULL)
		return true;			/* the gate had it */
	r->method = method_of(r->head.method);
	if (!c->req_started)
		req_start(c);
	if (!req_decode_target(c, r)) {
		req_refuse(c, 400, "the path is not valid");
		return false;
	}
	return true;
}

static void
req_dispatch(struct conn *c, size_t body_len, size_t used)
{
	struct http_req *r = &c->req;
	struct http_server *srv = c->srv;

	r->body = c->in + r->head.head_len;
	r->body_len = body_len;
	/* The body is a string for its readers; hide the byte after it. */
	c->nul_placed = true;
	c->nul_at = r->head.head_len + body_len;
	c->nul_saved = c->in[c->nul_at];
	c->in[c->nul_at] = '\0';
	c->req_used = used;
	c->body_unread = false;
	if (!req_prepare(c))
		return;
	lru_leave(c);
	c->busy = true;
	c->may_send = false;
	srv->handler(r, srv->arg);
}

/* Hands the head of a request with a large body to the server's gate. */
static void
req_gate(struct conn *c)
{
	struct http_server *srv = c->srv;

	c->gate_asked = true;
	if (!req_prepare(c))
		return;
	lru_leave(c);
	c->busy = true;
	c->gating = true;
	c->may_send = false;
	srv->gate(&c->req, srv->gate_arg);
}

void
conn_body_allow(struct conn *c, size_t max)
{
	struct http_req *r = &c->req;

	if (!c->gating)
		return;
	c->gating = false;
	if (r->gone) {
		/* The client left while the gate decided. */
		log_info(r->id, "http.client_gone", "path=%s ms=%lld",
		    log_q(http_req_path_raw(r)),
		    (long long)http_req_elapsed_ms(r));
		conn_free(c);
		return;
	}
	c->busy = false;
	c->body_max = max;
	c->chunked.max = max;
	/* The wait for the gate does not count against the body's rate. */
	c->body_ms = time_mono_ms();
	c->body_got = 0;
	lru_touch(c, c->body_ms);
	if (!c->in_drive)
		event_active(c->ev, EV_READ, 0);
}

bool
conn_closes_after(const struct conn *c)
{
	return !c->req.head.keep_alive || c->close_after || c->body_unread ||
	    c->srv == NULL || c->srv->draining;
}

/* The request's answer is queued: make ready for the next one. */
static void
req_finish(struct conn *c)
{
	struct http_req *r = &c->req;
	int64_t now = time_mono_ms();

	if (c->nul_placed)
		c->in[c->nul_at] = c->nul_saved;
	c->nul_placed = false;
	if (conn_closes_after(c)) {
		c->close_after = true;
		c->req_used = c->in_len;	/* nothing after it is read */
	}
	if (c->req_used < c->in_len)
		memmove(c->in, c->in + c->req_used, c->in_len - c->req_used);
	c->in_len -= c->req_used;
	c->req_used = 0;
	body_release(c);
	c->have_head = false;
	c->req_started = false;
	c->body_admitted = false;
	c->body_unread = false;
	c->gate_asked = false;
	c->gating = false;
	c->sent_continue = false;
	c->busy = false;
	/* A pipelined head's deadline runs from this answer. */
	c->head_ms = c->in_len > 0 ? now : 0;
	c->idle_ms = now;
	lru_touch(c, now);
	buf_reset(&c->hdrs);
	/* The next head's parse resets r->head. */
	r->method = HTTP_OTHER;
	r->nparams = 0;
	r->notes_len = 0;
	r->notes[0] = '\0';
	r->gone = false;
	r->route = NULL;
	r->quiet = false;
	r->path_raw = r->path = NULL;
	r->body = NULL;
	r->body_len = 0;
}

/* The head is in: what its body may be. */
static void
head_done(struct conn *c)
{
	struct http_head *h = &c->req.head;
	struct http_server *srv = c->srv;

	c->have_head = true;
	c->body_ms = time_mono_ms();
	c->body_got = c->in_len - h->head_len;
	c->body_max = srv->gate ? HTTP_SMALL_BODY : srv->max_body;
	c->body_unread = h->content_length > 0 || h->chunked;
	c->body_admitted = h->chunked || h->content_length <= 0;
	if (h->chunked)
		http_chunked_init(&c->chunked, c->body_max);
}

/*
 * Admits a declared body before reading it: the gate for a large one,
 * 413 over the limit, the body memory. False when the request was handed
 * to the gate or answered.
 */
static bool
body_admit(struct conn *c)
{
	size_t cl = (size_t)c->req.head.content_length;

	if ((uint64_t)c->req.head.content_length > c->body_max) {
		if (c->srv->gate && !c->gate_asked)
			req_gate(c);
		else
			req_refuse(c, 413, "the body is too large");
		return false;
	}
	if (!body_reserve(c, cl))
		return false;
	c->body_admitted = true;
	return true;
}

/*
 * Reads a request from what has arrived: dispatches it, hands it to the
 * gate or answers it (true), or asks for more bytes (false).
 */
static bool
conn_parse(struct conn *c)
{
	struct http_req *r = &c->req;
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
		head_done(c);
	}
	if (!c->body_admitted && !body_admit(c))
		return true;
	hl = r->head.head_len;
	if (r->head.chunked) {
		res = http_chunked_feed(&c->chunked, c->in + hl,
		    c->in_len - hl, &used, &status, &why);
		if (res == HTTP_PARSE_ERROR) {
			req_refuse(c, status, why);
			return true;
		}
		if (res != HTTP_PARSE_DONE)
			c->in_len = hl + used;
		if (res == HTTP_PARSE_LIMIT) {
			if (c->srv->gate && !c->gate_asked)
				req_gate(c);
			else
				req_refuse(c, 413, "the body is too large");
			return true;
		}
		/* The chunk being read is held from its size line on. */
		if (!body_reserve(c, c->chunked.body_len +
		    c->chunked.chunk_left))
			return true;
		body_len = c->chunked.body_len;
		if (res == HTTP_PARSE_MORE)
			conn_reserve(c, c->in_len + 1);
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
	body_release(c);
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
	struct http_server *srv = c->srv;

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
	lru_leave(c);
	nconns--;
	if (c->queued) {
		TAILQ_REMOVE(c->queued, c, sendq);
		c->queued = NULL;
	}
	c->srv = NULL;
	if (srv && srv->draining && srv->conns == NULL)
		event_active(srv->drained_ev, EV_TIMEOUT, 0);
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
	c->active_ms = time_mono_ms();
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
	size_t before, got = 0;

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
			c->idle_ms = time_mono_ms();
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
		before = c->in_len;
		switch (conn_read(c)) {
		case IO_DONE:
			/* Progress, but no deadline moves for it. */
			lru_touch(c, time_mono_ms());
			if (c->have_head)
				c->body_got += c->in_len - before;
			else if (c->head_ms == 0)
				c->head_ms = c->active_ms;
			/*
			 * A client sending a large body as fast as it is read
			 * would keep the loop here: after DRIVE_READ_MAX the
			 * others have their turn, and this one comes back.
			 */
			if ((got += c->in_len - before) >= DRIVE_READ_MAX) {
				event_active(c->ev, EV_READ, 0);
				goto out;
			}
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
peer_text(const struct sockaddr_storage *ss, char out[INET6_ADDRSTRLEN])
{
	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    out, INET6_ADDRSTRLEN);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
		    INET6_ADDRSTRLEN);
}

static void
conn_new(struct http_server *srv, int fd, const char *peer)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->req.c = c;
	c->fd = fd;
	c->accepted_ms = c->idle_ms = time_mono_ms();
	str_copy(c->peer, peer, sizeof(c->peer));
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
	nconns++;
	lru_touch(c, c->accepted_ms);
}

/* What a connection is doing, for the log. */
static const char *
conn_state(const struct conn *c)
{
	if (c->lingering)
		return "closing";
	if (c->ssl && !SSL_is_init_finished(c->ssl))
		return "handshake";
	if (output_pending(c))
		return "sending";
	if (c->have_head)
		return "body";
	return c->in_len > 0 ? "head" : "idle";
}

/*
 * Makes room for one more connection under the cap by closing the least
 * recently active one that no handler has. False when every connection
 * is with a handler.
 */
static bool
conns_make_room(void)
{
	struct conn *victim;

	if (nconns < limits.max_connections)
		return true;
	if ((victim = TAILQ_FIRST(&evictable)) == NULL)
		return false;
	log_info(NULL, "http.conn_evicted", "peer=%s state=%s quiet_ms=%lld "
	    "connections=%zu", log_q(victim->peer), conn_state(victim),
	    (long long)(time_mono_ms() - victim->active_ms), nconns);
	refused_count("evicted");
	conn_close(victim);
	return true;
}

void
conn_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct http_server *srv = arg;
	int i;

	(void)what;
	for (i = 0; i < ACCEPT_BURST; i++) {
		/* accept4() fills it; zeroed, its family is AF_UNSPEC if not. */
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		char peer[INET6_ADDRSTRLEN];
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			peer_text(&ss, peer);
			if (conns_make_room()) {
				conn_new(srv, fd, peer);
				continue;
			}
			log_warn(NULL, "http.conn_refused", "peer=%s "
			    "connections=%zu reason=busy", log_q(peer),
			    nconns);
			refused_count("busy");
			close(fd);
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

/* A head that has not come whole in time, or a body too slow: 408. */
static void
conn_too_slow(struct conn *c, const char *ev, const char *reason,
    const char *why, int64_t ms)
{
	struct http_req *r = &c->req;

	if (!c->have_head)
		memset(&r->head, 0, sizeof(r->head));	/* nothing of it */
	if (!c->req_started)
		req_start(c);
	log_info(r->id, ev, "peer=%s bytes=%zu ms=%lld", log_q(c->peer),
	    c->have_head ? c->body_got : c->in_len, (long long)ms);
	refused_count(reason);
	req_refuse(c, 408, why);
}

/*
 * Whether a request head has begun: bytes other than the empty lines a
 * client may send after a body (RFC 9112 §2.2).
 */
static bool
head_started(const struct conn *c)
{
	size_t i;

	for (i = 0; i < c->in_len; i++)
		if (c->in[i] != '\r' && c->in[i] != '\n')
			return true;
	return false;
}

/* Closes or answers the connection when one of its deadlines passed. */
static void
conn_expire(struct conn *c, int64_t now)
{
	const struct http_limits *l = &limits;
	int64_t ms;

	if (c->lingering) {
		if (now - c->active_ms > LINGER_MS)
			conn_close(c);
	} else if (c->ssl && !SSL_is_init_finished(c->ssl)) {
		if ((ms = now - c->accepted_ms) > l->handshake_timeout_ms) {
			log_info(NULL, "http.handshake_timeout", "peer=%s "
			    "ms=%lld", log_q(c->peer), (long long)ms);
			refused_count("handshake_timeout");
			conn_close(c);
		}
	} else if (output_pending(c)) {
		/* The client does not read its answer. */
		if ((ms = now - c->active_ms) > l->idle_timeout_ms) {
			log_info(NULL, "http.send_stalled", "peer=%s ms=%lld",
			    log_q(c->peer), (long long)ms);
			refused_count("send_stalled");
			conn_close(c);
		}
	} else if (c->have_head) {
		ms = now - c->body_ms;
		if (ms > l->body_grace_ms && (uint64_t)c->body_got * 1000 <
		    (uint64_t)l->body_min_rate * (uint64_t)ms)
			conn_too_slow(c, "http.body_too_slow", "body_rate",
			    "the request body arrives too slowly", ms);
	} else if (head_started(c)) {
		if ((ms = now - c->head_ms) > l->head_timeout_ms)
			conn_too_slow(c, "http.head_timeout", "head_timeout",
			    "the request head did not arrive in time", ms);
	} else if ((ms = now - c->idle_ms) > l->idle_timeout_ms) {
		log_debug(NULL, "http.idle_closed", "peer=%s ms=%lld",
		    log_q(c->peer), (long long)ms);
		conn_close(c);
	}
}

/*
 * Keeps the deadlines; resumes accepting. A close costs tens of
 * microseconds (TLS state, the descriptor, a log line): past
 * SWEEP_CLOSE_MAX in one turn the sweep lets the loop serve the others
 * and goes on in its next turn, so 20,000 connections expiring together
 * are not one long stall.
 */
void
conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	int64_t now = time_mono_ms();
	struct conn *c, *next;
	size_t before = nconns;

	(void)fd;
	(void)what;
	for (c = srv->conns; c && before - nconns < SWEEP_CLOSE_MAX;
	    c = next) {
		next = c->next;
		if (!c->busy)
			conn_expire(c, now);
	}
	if (c != NULL)
		event_active(srv->sweep_ev, EV_TIMEOUT, 0);
	metrics_set("photosync_http_connections", "", (double)nconns);
	metrics_set("photosync_http_body_bytes", "", (double)body_held);
	if (srv->accept_paused && srv->listen_ev) {
		srv->accept_paused = false;
		event_add(srv->listen_ev, NULL);
	}
}

void
conn_drain_server(struct http_server *srv)
{
	struct conn *c, *next;

	for (c = srv->conns; c; c = next) {
		next = c->next;
		/* A request in progress closes after its answer. */
		if (c->busy || c->have_head || c->in_len > 0)
			continue;
		if (output_pending(c) || c->lingering)
			c->close_after = true;	/* its last answer goes out */
		else
			conn_close(c);
	}
}

void
conn_drain_expire(struct http_server *srv)
{
	size_t n = 0;
	struct conn *c, *next;

	for (c = srv->conns; c; c = c->next)
		n++;
	log_warn(NULL, "http.drain_timeout", "connections=%zu", n);
	/* As conn_drain_server(): conn_close() frees `c` and only `c`. */
	for (c = srv->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
}

void
conn_loop_join(struct event_base *base)
{
	limits_resolve();
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
