/*
 * Asynchronous HTTP transfers: libcurl's multi interface driven by the
 * process's libevent loop (the "multi_socket" API).
 *
 * libcurl says which sockets to watch (socket_cb) and when it next wants
 * to run (timer_cb); libevent says which socket is ready and we hand that
 * to curl_multi_socket_action(); finished transfers are collected with
 * curl_multi_info_read() and reported to their callers. One event per
 * socket, one timer per loop. Everything runs on the loop thread and
 * nothing here blocks: names are resolved by libcurl's threaded resolver,
 * and a transfer cancelled during resolution leaves the resolver thread to
 * finish on its own (CURLOPT_QUICK_EXIT) instead of joining it.
 *
 * Easy handles live for one transfer; connections stay in the multi
 * handle's cache and are reused by later transfers to the same host.
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "ps_version.h"
#include "xfer.h"
#include "xfer_int.h"

/* Idle connections kept for reuse, at most (a few KiB each). */
#define XFER_IDLE_MAX	64L
/* Handles of finished transfers kept for reuse, at most (~100 KiB each). */
#define XFER_SPARE_MAX	16

/* A socket libcurl asked us to watch. */
struct xfer_sock {
	LIST_ENTRY(xfer_sock)	 entry;
	struct xfer_loop	*loop;
	curl_socket_t		 fd;
	struct event		*ev;
};

/* One transfer in flight. */
struct xfer {
	TAILQ_ENTRY(xfer)	 entry;
	struct xfer_loop	*loop;
	CURL			*easy;
	struct curl_slist	*hdrs;
	xfer_done_fn		 done;
	void			*arg;
	struct xfer_response	 resp;		/* filled as answers arrive */
	size_t			 max_bytes;
	bool			 too_big;
	const char		*method;	/* "GET" or "POST" */
	bool			 idempotent;	/* may be sent twice */
	bool			 resent;	/* sent again on a new
						   connection */
	char			*where;		/* the URL without its query */
	char			*reqid;		/* NULL if none */
	char			 errbuf[CURL_ERROR_SIZE];
	int64_t			 start_ms;
	long			 timeout_ms;	/* the whole transfer's */
};

struct xfer_loop {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	TAILQ_HEAD(, xfer)	 xfers;	/* in flight */
	LIST_HEAD(, xfer_sock)	 socks;
	int			 dispatching; /* inside loop_check() */
	bool			 freeing; /* xfer_loop_free() was called */
	/*
	 * Handles of finished transfers, reset for the next: a new handle
	 * costs its allocations again (its own state, a 16 KiB receive and
	 * a 64 KiB send buffer), once per call to the master.
	 */
	CURL			*spare[XFER_SPARE_MAX];
	size_t			 nspare;
};

static void	loop_check(struct xfer_loop *);

/* ---- transfers ---- */

/* A handle for a new transfer: a spare one, reset, or a new one. */
static CURL *
handle_get(struct xfer_loop *loop)
{
	if (loop->nspare > 0)
		return loop->spare[--loop->nspare];
	return curl_easy_init();
}

/* Keeps a finished transfer's handle (out of the multi) for the next. */
static void
handle_put(struct xfer_loop *loop, CURL *easy)
{
	if (easy == NULL)
		return;
	if (loop->freeing || loop->nspare == XFER_SPARE_MAX) {
		curl_easy_cleanup(easy);
		return;
	}
	curl_easy_reset(easy);
	loop->spare[loop->nspare++] = easy;
}

static void
xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	handle_put(x->loop, x->easy);
	curl_slist_free_all(x->hdrs);
	buf_cleanup(&x->resp.body);
	free(x->where);
	free(x->reqid);
	free(x);
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	/* A short count makes libcurl abort with CURLE_WRITE_ERROR. */
	if (buf_add(&x->resp.body, p, len) != PS_OK) {
		x->too_big = true;
		return 0;
	}
	return len;
}

#define RETRY_AFTER_MAX	(1L << 30)	/* decades: call it a lot */

long
xfer_retry_after_parse(const char *v, size_t vlen, time_t now)
{
	char s[64];
	size_t i;
	long n = 0;
	time_t t;

	if (vlen == 0 || vlen >= sizeof(s))
		return -1;
	for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
		n = n > RETRY_AFTER_MAX / 10 ? RETRY_AFTER_MAX :
		    n * 10 + (v[i] - '0');
	if (i == vlen)
		return n < RETRY_AFTER_MAX ? n : RETRY_AFTER_MAX;
	if (i > 0)
		return -1;	/* digits, then more: no HTTP-date starts so */
	memcpy(s, v, vlen);
	s[vlen] = '\0';
	t = curl_getdate(s, NULL);
	if (t == -1)
		return -1;
	if (t <= now)
		return 0;
	return t - now < RETRY_AFTER_MAX ? (long)(t - now) : RETRY_AFTER_MAX;
}

/*
 * A Content-Length within the cap sizes the body's buffer once, instead of
 * doubling it while the answer arrives (a photo is ~100 KB). Anything
 * else is left to the cap: libcurl refuses what it exceeds.
 */
static void
body_expect(struct buf *body, const char *v, size_t vlen)
{
	size_t i, n = 0;

	if (vlen == 0 || vlen > 12)
		return;
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		n = n * 10 + (size_t)(v[i] - '0');
	}
	if (n > body->b_len)
		(void)buf_reserve(body, n - body->b_len);
}

static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	struct xfer_response *r = &x->resp;
	size_t len = size * n, nlen, vlen;
	const char *v;

	/*
	 * A status line starts a new response (after a 1xx one): only the
	 * headers of the final response count.
	 */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		r->etag[0] = r->content_type[0] = '\0';
		r->retry_after = -1;
		r->photo_hidden = false;
		return len;
	}
	if (!xfer_header_split(p, len, &nlen, &v, &vlen))
		return len;
	if (nlen == 4 && strncasecmp(p, "etag", 4) == 0)
		xfer_value_copy(r->etag, sizeof(r->etag), v, vlen, true);
	else if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0)
		xfer_value_copy(r->content_type, sizeof(r->content_type), v,
		    vlen, true);
	else if (nlen == 11 && strncasecmp(p, "retry-after", 11) == 0)
		r->retry_after = xfer_retry_after_parse(v, vlen, time(NULL));
	else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0)
		body_expect(&r->body, v, vlen);
	else if (nlen == 24 && strncasecmp(p, "x-photosync-photo-hidden",
	    24) == 0)
		r->photo_hidden = vlen == 1 && v[0] == '1';
	return len;
}

/* Fills rc and error for a transfer that got no (complete) answer. */
static void
xfer_set_error(struct xfer *x, CURLcode cc)
{
	struct xfer_response *r = &x->resp;
	const char *what, *detail;
	ps_err rc = PS_EUPSTREAM;
	long oserr = 0;

	if (x->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		r->rc = PS_ELIMIT;
		snprintf(r->error, sizeof(r->error), "too large: the answer "
		    "is larger than %zu bytes", x->max_bytes);
		return;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = PS_ETIMEOUT;
		what = "timeout";
	} else if (cc == CURLE_COULDNT_RESOLVE_HOST ||
	    cc == CURLE_COULDNT_RESOLVE_PROXY) {
		what = "DNS";
	} else if (cc == CURLE_COULDNT_CONNECT) {
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
		what = oserr == ECONNREFUSED ? "connection refused" :
		    "cannot connect";
	} else if (xfer_tls_verify_failed(cc)) {
		what = "TLS verification failed";
	} else if (cc == CURLE_SSL_CONNECT_ERROR) {
		what = "TLS handshake failed";
	} else if (cc == CURLE_OUT_OF_MEMORY) {
		rc = PS_ENOMEM;
		what = "out of memory";
	} else {
		what = "transfer failed";
	}
	detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
	r->rc = rc;
	snprintf(r->error, sizeof(r->error), "%s: %.150s%s", what, detail,
	    x->resent ? " (and again on a new connection)" : "");
}

/*
 * Sends a failed transfer once more, on a new connection, when RFC 9112
 * section 9.3.1 allows it: the request may be sent twice, it went out
 * only on reused connections, and no byte of an answer came back. A
 * server may close an idle connection at any time (its idle timeout, its
 * cap on connections). libcurl sends such a request again itself, but on
 * the next connection it keeps, up to 5 times; and it takes a kept TLS
 * connection whose close_notify it has not read for alive. When the
 * server closed more kept connections than that at once (its idle
 * sweep), the request failed ("Send failure: Broken pipe"). True when
 * the transfer is on its way again (the handle is back in the multi).
 */
static bool
xfer_resend(struct xfer *x, CURLcode cc)
{
	long new_conns = -1, head_bytes = -1, left_ms;

	if (!x->idempotent || x->resent || x->too_big)
		return false;
	if (cc != CURLE_SEND_ERROR && cc != CURLE_RECV_ERROR &&
	    cc != CURLE_GOT_NOTHING)
		return false;
	if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &new_conns) !=
	    CURLE_OK || new_conns != 0 ||
	    curl_easy_getinfo(x->easy, CURLINFO_HEADER_SIZE, &head_bytes) !=
	    CURLE_OK || head_bytes != 0 || x->resp.body.b_len != 0)
		return false;
	/* Both sends within the one deadline of the transfer. */
	left_ms = x->timeout_ms - (time_mono_ms() - x->start_ms);
	if (left_ms <= 0)
		return false;
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, left_ms);
	curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, 1L);
	if (curl_multi_add_handle(x->loop->multi, x->easy) != CURLM_OK)
		return false;
	log_info(x->reqid, "xfer.resent", "method=%s url=%s error=%s",
	    x->method, log_q(x->where), log_q(x->errbuf[0] ? x->errbuf :
	    curl_easy_strerror(cc)));
	x->resent = true;
	x->errbuf[0] = '\0';
	return true;
}

/* Reports a finished transfer to its caller and frees it. */
static void
xfer_finish(struct xfer *x, CURLcode cc)
{
	struct xfer_loop *loop = x->loop;
	struct xfer_response *r = &x->resp;

	r->elapsed_ms = time_mono_ms() - x->start_ms;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (cc == CURLE_OK) {
		r->rc = PS_OK;
		log_debug(x->reqid, "xfer.done", "method=%s url=%s status=%ld "
		    "bytes=%zu ms=%lld", x->method, log_q(x->where), r->status,
		    r->body.b_len, (long long)r->elapsed_ms);
	} else {
		xfer_set_error(x, cc);
		/* A partial body must not pass for an answer. */
		buf_reset(&r->body);
		log_debug(x->reqid, "xfer.failed", "method=%s url=%s ms=%lld "
		    "error=%s", x->method, log_q(x->where),
		    (long long)r->elapsed_ms, log_q(r->error));
	}
	TAILQ_REMOVE(&loop->xfers, x, entry);
	x->done(r, x->arg);
	xfer_free(x);
}

/* ---- libcurl <-> libevent ---- */

static void
sock_free(struct xfer_sock *s)
{
	LIST_REMOVE(s, entry);
	if (s->ev)
		event_free(s->ev);
	free(s);
}

static void
sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct xfer_sock *s = arg;
	struct xfer_loop *loop = s->loop;	/* s may go in socket_action */
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(loop->multi, fd, flags, &running);
	loop_check(loop);
}

static void
timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct xfer_loop *loop = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	loop_check(loop);
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for what libcurl wants now. */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct xfer_loop *loop = arg;
	struct xfer_sock *s = sockp;
	short flags = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(s);
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->loop = loop;
		s->fd = fd;
		LIST_INSERT_HEAD(&loop->socks, s, entry);
		curl_multi_assign(loop->multi, fd, s);
	}
	if (s->ev) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;
	if (flags == 0)
		return 0;
	s->ev = event_new(loop->base, fd, flags | EV_PERSIST, sock_event_cb,
	    s);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
		log_err(NULL, "xfer.event", "msg=%s",
		    log_q("cannot watch a socket"));
		return -1;
	}
	return 0;
}

/*
 * CURLMOPT_TIMERFUNCTION: libcurl wants to run in `ms` milliseconds (-1:
 * never). socket_action must not be called from here, so even a zero
 * delay goes through the loop.
 */
static int
timer_cb(CURLM *multi, long ms, void *arg)
{
	struct xfer_loop *loop = arg;
	struct timeval tv;

	(void)multi;
	if (ms < 0) {
		evtimer_del(loop->timer);
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (evtimer_add(loop->timer, &tv) != 0)
		return -1;
	return 0;
}

static void
loop_destroy(struct xfer_loop *loop)
{
	struct xfer *x;
	struct xfer_sock *s, *next;

	for (;;) {
		x = TAILQ_FIRST(&loop->xfers);
		if (x == NULL)
			break;
		TAILQ_REMOVE(&loop->xfers, x, entry);
		curl_multi_remove_handle(loop->multi, x->easy);
		log_debug(x->reqid, "xfer.cancelled", "method=%s url=%s",
		    x->method, log_q(x->where));
		xfer_free(x);
	}
	while (loop->nspare > 0)
		curl_easy_cleanup(loop->spare[--loop->nspare]);
	/* Closes the cached connections; socket_cb may still be called. */
	curl_multi_cleanup(loop->multi);
	for (s = LIST_FIRST(&loop->socks); s != NULL; s = next) {
		next = LIST_NEXT(s, entry);
		sock_free(s);	/* frees `s` alone */
	}
	event_free(loop->timer);
	free(loop);
}

/*
 * Reports the transfers libcurl has finished. A done callback may start
 * transfers (that only adds easy handles) or free the loop (deferred to
 * the end of this function).
 */
static void
loop_check(struct xfer_loop *loop)
{
	struct xfer *x;
	CURLMsg *m;
	CURLcode cc;
	char *priv;
	int left;

	loop->dispatching++;
	while (!loop->freeing) {
		m = curl_multi_info_read(loop->multi, &left);
		if (m == NULL)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		cc = m->data.result;
		priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct xfer *)priv;
		/* m is invalid once the handle is removed. */
		curl_multi_remove_handle(loop->multi, m->easy_handle);
		if (x != NULL && (cc == CURLE_OK || !xfer_resend(x, cc)))
			xfer_finish(x, cc);
	}
	loop->dispatching--;
	if (loop->freeing && loop->dispatching == 0)
		loop_destroy(loop);
}

/* ---- API ---- */

struct xfer_loop *
xfer_loop_new(struct event_base *base)
{
	struct xfer_loop *loop = xcalloc(1, sizeof(*loop));

	loop->base = base;
	TAILQ_INIT(&loop->xfers);
	LIST_INIT(&loop->socks);
	loop->multi = curl_multi_init();
	loop->timer = evtimer_new(base, timer_event_cb, loop);
	if (loop->multi == NULL || loop->timer == NULL) {
		ps_errf(PS_EIO, "cannot start the HTTP client");
		if (loop->multi)
			curl_multi_cleanup(loop->multi);
		if (loop->timer)
			event_free(loop->timer);
		free(loop);
		return NULL;
	}
	curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
	curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
	/*
	 * libcurl's default keeps 4 idle connections per transfer running:
	 * when a burst of transfers ends, most of their connections are
	 * closed and the next burst shakes hands again (a TLS handshake on
	 * both sides). A fixed budget keeps them for reuse.
	 */
	curl_multi_setopt(loop->multi, CURLMOPT_MAXCONNECTS, XFER_IDLE_MAX);
	return loop;
}

void
xfer_loop_free(struct xfer_loop *loop)
{
	if (loop == NULL || loop->freeing)
		return;
	loop->freeing = true;
	if (loop->dispatching == 0)
		loop_destroy(loop);
}

static bool
has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Checks a request before anything is allocated. */
static ps_err
request_check(const struct xfer_request *rq, const char **method)
{
	struct url u;
	size_t i;
	ps_err rc;

	/* Our own constant strings: the caller's may go away. */
	*method = rq->method ? rq->method : "GET";
	if (strcmp(*method, "GET") == 0)
		*method = "GET";
	else if (strcmp(*method, "POST") == 0)
		*method = "POST";
	else
		return ps_errf(PS_EINVAL, "the HTTP client does not do %s",
		    *method);
	if (rq->url == NULL)
		return ps_errf(PS_EINVAL, "no URL to fetch");
	if ((rc = url_parse(rq->url, rq->allow_http ? URL_HTTP : 0, &u)) !=
	    PS_OK)
		return rc;
	if (has_line_break(rq->url))
		return ps_errf(PS_EINVAL, "the URL has a line break");
	if (rq->body_len > 0 && rq->body == NULL)
		return ps_errf(PS_EINVAL, "a body length without a body");
	if (rq->body_len > 0 && strcmp(*method, "GET") == 0)
		return ps_errf(PS_EINVAL, "a GET request with a body");
	if (rq->reqid && has_line_break(rq->reqid))
		return ps_errf(PS_EINVAL, "the request id has a line break");
	for (i = 0; rq->headers && rq->headers[i]; i++)
		if (has_line_break(rq->headers[i]) ||
		    strchr(rq->headers[i], ':') == NULL)
			return ps_errf(PS_EINVAL, "a request header is not "
			    "one \"Name: value\" line");
	return PS_OK;
}

static ps_err
add_header(struct xfer *x, const char *h)
{
	struct curl_slist *l = curl_slist_append(x->hdrs, h);

	if (l == NULL)
		return ps_errf(PS_ENOMEM, "out of memory for a header");
	x->hdrs = l;
	return PS_OK;
}

ps_err
xfer_start(struct xfer_loop *loop, const struct xfer_request *rq,
    xfer_done_fn done, void *arg)
{
	struct xfer *x = NULL;
	const char *method;
	char *h = NULL;
	size_t i;
	CURL *c;
	ps_err rc;

	if (loop == NULL || loop->freeing || done == NULL || rq == NULL)
		return ps_errf(PS_EINVAL, "no loop or callback for a transfer");
	if ((rc = request_check(rq, &method)) != PS_OK)
		return rc;

	x = xcalloc(1, sizeof(*x));
	x->loop = loop;
	x->done = done;
	x->arg = arg;
	x->method = method;
	x->idempotent = strcmp(method, "GET") == 0 || rq->idempotent;
	x->where = xstrndup(rq->url, strcspn(rq->url, "?#"));
	x->reqid = rq->reqid ? xstrdup(rq->reqid) : NULL;
	x->max_bytes = rq->max_bytes ? rq->max_bytes : XFER_MAX_BYTES;
	buf_init(&x->resp.body, x->max_bytes);
	x->resp.retry_after = -1;
	x->start_ms = time_mono_ms();
	rc = PS_ENOMEM;
	if ((x->easy = handle_get(loop)) == NULL) {
		ps_errf(rc, "cannot start a transfer");
		goto out;
	}
	c = x->easy;

	for (i = 0; rq->headers && rq->headers[i]; i++)
		if ((rc = add_header(x, rq->headers[i])) != PS_OK)
			goto out;
	if (rq->reqid) {
		h = xasprintf("client-request-id: %s", rq->reqid);
		if ((rc = add_header(x, h)) != PS_OK ||
		    (rc = add_header(x, "return-client-request-id: true")) !=
		    PS_OK)
			goto out;
	}
	/* No "Expect: 100-continue" round trip before a POST body. */
	if ((rc = add_header(x, "Expect:")) != PS_OK)
		goto out;

	rc = PS_EINVAL;
	if (curl_easy_setopt(c, CURLOPT_URL, rq->url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, rq->allow_http ?
	    "https,http" : "https") != CURLE_OK) {
		ps_errf(rc, "libcurl refuses the URL %s", rq->url);
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
	/* Cancelling must not join a resolver thread stuck in DNS. */
	curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
#endif
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, XFER_KEEP_IDLE_S);
	x->timeout_ms = rq->timeout_ms > 0 ? rq->timeout_ms : XFER_TIMEOUT_MS;
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms :
	    XFER_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (rq->ca_file) {
		/* Only this CA: no system directory on the side. */
		curl_easy_setopt(c, CURLOPT_CAINFO, rq->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL);
	}
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)x->max_bytes);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "photosync/" PS_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)rq->body_len);
		if (curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS,
		    rq->body_len ? rq->body : "") != CURLE_OK) {
			rc = ps_errf(PS_ENOMEM, "cannot copy the request body");
			goto out;
		}
	}

	/* Only arms the timer: nothing runs before we return to the loop. */
	if (curl_multi_add_handle(loop->multi, c) != CURLM_OK) {
		rc = ps_errf(PS_EIO, "libcurl refuses a new transfer");
		goto out;
	}
	TAILQ_INSERT_TAIL(&loop->xfers, x, entry);
	log_debug(x->reqid, "xfer.start", "method=%s url=%s", method,
	    log_q(x->where));
	x = NULL;
	rc = PS_OK;
out:
	free(h);
	xfer_free(x);
	return rc;
}
