/*
 * Unit tests of the asynchronous HTTP client (xfer_loop, xfer_start)
 * against real local servers on the same event loop, as in production:
 * our HTTPS server with a leaf certificate from a local CA made by pki, a
 * plain HTTP server, and a raw socket server that answers without a
 * Content-Length. Covers GET, POST, 304, Retry-After, body caps, TLS
 * verification, refused connections, timeouts, refused schemes,
 * concurrency, request ids, freeing the loop with transfers in flight,
 * and requests sent again when kept connections were dropped (a scripted
 * peer). Run as `test_xfer idle`, it checks a GET after our server
 * closed the client's kept TLS connections, idle past its deadline.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "pki/pki.h"
#include "xfer/xfer.h"
#include "t.h"

static char *tmpdir;	/* from t_tmpdir(), removed at the end */
static char *ca_path, *other_ca_path, *leaf_path, *key_path;
static struct event_base *base;
static struct xfer_loop *xl;
static int tls_port, plain_port, raw_port;

/* ---- the servers ---- */

#define MAX_HELD 8

static struct {
	struct http_req	*held[MAX_HELD];	/* left unanswered */
	int		 n_held;
	char		 cid[80];		/* client-request-id */
	char		 rcid[16];	/* return-client-request-id */
	char		 xtest[32];		/* X-Test */
	char		 ua[64];
	bool		 echo_get;		/* /echo asked with GET */
	int		 n_requests;
} srv;

static void
copy_header(struct http_req *r, const char *name, char *dst, size_t n)
{
	const char *v = http_req_header(r, name);

	str_copy(dst, v ? v : "", n);
}

static void
handler(struct http_req *r, void *arg)
{
	const char *path = http_req_path(r), *v;
	const char *body;
	size_t len;
	char *big;
	long n;

	(void)arg;
	srv.n_requests++;
	if (strcmp(path, "/hello") == 0) {
		http_reply_header(r, "ETag", "\"v1\"");
		http_reply(r, 200, "text/plain", "hello world", 11);
	} else if (strcmp(path, "/echo") == 0) {
		copy_header(r, "client-request-id", srv.cid, sizeof(srv.cid));
		copy_header(r, "return-client-request-id", srv.rcid,
		    sizeof(srv.rcid));
		copy_header(r, "X-Test", srv.xtest, sizeof(srv.xtest));
		copy_header(r, "User-Agent", srv.ua, sizeof(srv.ua));
		srv.echo_get = http_req_method(r) == HTTP_GET;
		body = http_req_body(r, &len);
		http_reply(r, 200, "application/octet-stream", body, len);
	} else if (strcmp(path, "/notmodified") == 0) {
		http_reply_header(r, "ETag", "\"v1\"");
		http_reply(r, 304, NULL, NULL, 0);
	} else if (strcmp(path, "/retry") == 0) {
		v = http_req_query(r, "v");
		if (v)
			http_reply_header(r, "Retry-After", v);
		http_reply(r, 503, "text/plain", "busy", 4);
	} else if (strcmp(path, "/hidden") == 0) {
		/* The master's mark of a photo its owner alone sees. */
		if ((v = http_req_query(r, "v")) != NULL)
			http_reply_header(r, "X-Photosync-Photo-Hidden", v);
		http_reply(r, 200, "image/jpeg", "jpeg", 4);
	} else if (strcmp(path, "/big") == 0) {
		v = http_req_query(r, "n");
		n = v ? strtol(v, NULL, 10) : 0;
		big = xmalloc((size_t)n + 1);
		memset(big, 'x', (size_t)n);
		http_reply(r, 200, "application/octet-stream", big, (size_t)n);
		free(big);
	} else if (strcmp(path, "/hang") == 0) {
		if (srv.n_held < MAX_HELD)
			srv.held[srv.n_held++] = r;
		else
			http_reply_error(r, 503, "too many held");
	} else {
		http_reply_error(r, 404, "no such test path");
	}
}

/* Runs the loop for `ms` milliseconds. */
static void
run_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Answers the requests the /hang handler kept, so nothing leaks. */
static void
release_held(void)
{
	int i;

	for (i = 0; i < srv.n_held; i++)
		http_reply(srv.held[i], 200, "text/plain", "late", 4);
	srv.n_held = 0;
	run_for(50);
}

/*
 * The raw server: reads a request head, then answers with an HTTP/1.0
 * style body delimited by the close of the connection (no Content-Length),
 * so the client's write-path cap is what stops it.
 */
#define RAW_BODY 5000

static void
raw_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev);
}

static void
raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
	    "Content-Type: text/plain\r\n\r\n";
	char *body;

	(void)arg;
	if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
		return;
	evbuffer_drain(in, evbuffer_get_length(in));
	body = xmalloc(RAW_BODY);
	memset(body, 'y', RAW_BODY);
	bufferevent_write(bev, head, sizeof(head) - 1);
	bufferevent_write(bev, body, RAW_BODY);
	free(body);
	bufferevent_setcb(bev, NULL, raw_write_cb, raw_event_cb, NULL);
}

static void
raw_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, raw_read_cb, NULL, raw_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int
bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(&sin, 0, sizeof(sin));	/* getsockname() fills it */
	if (getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

/* A listener on a free port of 127.0.0.1, its port in *port. */
static struct evconnlistener *
loopback_listen(evconnlistener_cb accept_cb, int *port)
{
	struct sockaddr_in sin;
	struct evconnlistener *l;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l)
		*port = bound_port(evconnlistener_get_fd(l));
	return l;
}

/*
 * The dropping peer: plays a server that closes a kept-alive connection
 * when the next request arrives on it, without an answer. It answers a
 * request with a 200 and keeps the connection; a request it drops
 * resets the connection (SO_LINGER 0), as a server that closes a socket
 * with unread bytes does.
 */
enum drop_mode {
	DROP_REUSED,		/* drops every request after a connection's
				   first */
	DROP_AFTER_KEPT,	/* answers only the first DROP_KEPT requests
				   of all */
};

/*
 * The connections a case first makes and keeps: more than libcurl's own
 * tries on reused connections (it sends a request that died on one
 * again, up to 5 times, on the next it has kept), so that it gives up.
 */
#define DROP_KEPT	8

static struct {
	enum drop_mode	 mode;
	int		 port;
	int		 conns;		/* accepted */
	int		 requests;	/* request heads read */
	int		 answered;
} drop;

/* A connection of the dropping peer: its requests so far. */
struct drop_conn {
	int	requests;
};

static void
drop_close(struct bufferevent *bev, struct drop_conn *dc, bool reset)
{
	struct linger lg = { 1, 0 };

	if (reset)
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	bufferevent_free(bev);
	free(dc);
}

static void
drop_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	drop_close(bev, arg, false);
}

static void
drop_read_cb(struct bufferevent *bev, void *arg)
{
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Content-Type: text/plain\r\n\r\nok";
	struct evbuffer *in = bufferevent_get_input(bev);
	struct drop_conn *dc = arg;
	bool answer_it;

	if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
		return;
	/* The rest (a POST's body) goes too: one request per read. */
	evbuffer_drain(in, evbuffer_get_length(in));
	answer_it = drop.mode == DROP_REUSED ? dc->requests == 0 :
	    drop.requests < DROP_KEPT;
	drop.requests++;
	dc->requests++;
	if (!answer_it) {
		drop_close(bev, dc, true);
		return;
	}
	drop.answered++;
	bufferevent_write(bev, answer, sizeof(answer) - 1);
}

static void
drop_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	drop.conns++;
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, drop_read_cb, NULL, drop_event_cb,
	    xcalloc(1, sizeof(struct drop_conn)));
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A port nobody listens on (bound, then closed again). */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return -1;
	port = bound_port(fd);
	close(fd);
	return port;
}

/* ---- certificates ---- */

static bool
make_certs(void)
{
	static const char *const dns[] = { "localhost" };
	static const char *const ips[] = { "127.0.0.1" };
	struct pki_cert_spec caspec = { .common_name = "test CA",
	    .days = 2, .is_ca = true };
	struct pki_cert_spec otherspec = { .common_name = "other CA",
	    .days = 2, .is_ca = true };
	struct pki_cert_spec leafspec = { .common_name = "127.0.0.1",
	    .dns_names = dns, .n_dns = 1, .ips = ips, .n_ips = 1,
	    .days = 2 };
	struct pki_key *cakey = NULL, *otherkey = NULL, *leafkey = NULL;
	unsigned char *ca = NULL, *other = NULL, *leaf = NULL;
	size_t ca_len, other_len, leaf_len;
	bool good = false;

	ca_path = file_join(tmpdir, "ca.pem");
	other_ca_path = file_join(tmpdir, "other.pem");
	leaf_path = file_join(tmpdir, "leaf.pem");
	key_path = file_join(tmpdir, "leaf.key");
	if (pki_key_generate(&cakey) != PS_OK ||
	    pki_key_generate(&otherkey) != PS_OK ||
	    pki_key_generate(&leafkey) != PS_OK ||
	    pki_cert_create(cakey, &caspec, NULL, NULL, 0, &ca, &ca_len) !=
	    PS_OK ||
	    pki_cert_create(otherkey, &otherspec, NULL, NULL, 0, &other,
	    &other_len) != PS_OK ||
	    pki_cert_create(leafkey, &leafspec, cakey, ca, ca_len, &leaf,
	    &leaf_len) != PS_OK ||
	    pki_cert_save(ca, ca_len, ca_path) != PS_OK ||
	    pki_cert_save(other, other_len, other_ca_path) != PS_OK ||
	    pki_cert_save(leaf, leaf_len, leaf_path) != PS_OK ||
	    pki_key_save(leafkey, key_path) != PS_OK)
		goto out;
	good = true;
out:
	if (!good)
		printf("# %s\n", ps_errmsg());
	pki_key_free(cakey);
	pki_key_free(otherkey);
	pki_key_free(leafkey);
	free(ca);
	free(other);
	free(leaf);
	return good;
}

/* ---- the client side ---- */

/* What a done callback saw, copied out of the borrowed response. */
struct result {
	int		 calls;
	bool		 in_start;	/* set around xfer_start() */
	bool		 called_in_start;
	ps_err		 rc;
	long		 status;
	char		*body;
	size_t		 body_len;
	size_t		 body_cap;	/* the buffer's size when done */
	char		 etag[128];
	char		 content_type[128];
	long		 retry_after;
	bool		 photo_hidden;
	char		 error[256];
	int64_t		 elapsed_ms;
};

static int n_finished;

static void
result_cb(struct xfer_response *resp, void *arg)
{
	struct result *r = arg;

	r->calls++;
	if (r->in_start)
		r->called_in_start = true;
	r->rc = resp->rc;
	r->status = resp->status;
	free(r->body);
	/* The callback may take the body: xfer must not free it again. */
	r->body_cap = resp->body.b_cap;
	r->body = buf_take(&resp->body, &r->body_len);
	memcpy(r->etag, resp->etag, sizeof(r->etag));
	memcpy(r->content_type, resp->content_type, sizeof(r->content_type));
	r->retry_after = resp->retry_after;
	r->photo_hidden = resp->photo_hidden;
	memcpy(r->error, resp->error, sizeof(r->error));
	r->elapsed_ms = resp->elapsed_ms;
	n_finished++;
	event_base_loopbreak(base);
}

static void
result_clear(struct result *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

struct waiter {
	int	want;
	int64_t	deadline;
};

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd;
	(void)what;
	if (n_finished >= w->want || time_mono_ms() > w->deadline)
		event_base_loopbreak(base);
}

/* Runs the loop until `want` transfers have finished, or `ms` passed. */
static bool
wait_finished(int want, int ms)
{
	struct waiter w = { want, time_mono_ms() + ms };
	struct timeval tv = { 0, 5000 };
	struct event *ev = event_new(base, -1, EV_PERSIST, tick, &w);

	event_add(ev, &tv);
	while (n_finished < want && time_mono_ms() <= w.deadline)
		event_base_dispatch(base);
	event_free(ev);
	return n_finished >= want;
}

static char *
url(int port, const char *path)
{
	return xasprintf("https://127.0.0.1:%d%s", port, path);
}

/* Starts one transfer and waits for it; rc of xfer_start. */
static ps_err
fetch(struct xfer_request *rq, struct result *r)
{
	ps_err rc;

	if (rq->ca_file == NULL)
		rq->ca_file = ca_path;
	n_finished = 0;
	result_clear(r);
	r->in_start = true;
	rc = xfer_start(xl, rq, result_cb, r);
	r->in_start = false;
	if (rc == PS_OK)
		wait_finished(1, 10000);
	return rc;
}

static void
test_get(void)
{
	char *u = url(tls_port, "/hello");
	struct xfer_request rq = { .method = "GET", .url = u };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "GET started");
	is_int(r.calls, 1, "done called once");
	ok(!r.called_in_start, "done not called from inside xfer_start");
	is_int(r.rc, PS_OK, "GET rc");
	is_int(r.status, 200, "GET status 200");
	is_str(r.body, "hello world", "GET body");
	is_str(r.etag, "\"v1\"", "ETag as sent, quotes included");
	is_str(r.content_type, "text/plain", "Content-Type");
	is_int(r.retry_after, -1, "no Retry-After");
	ok(r.elapsed_ms >= 0 && r.elapsed_ms < 10000, "elapsed_ms set");

	/* A second GET on the same loop (the cached connection). */
	rq.method = NULL;
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.status == 200,
	    "a second GET (method NULL means GET)");
	result_clear(&r);
	free(u);
}

static void
test_post(void)
{
	static const char *const hdrs[] = { "X-Test: yes",
	    "Content-Type: application/octet-stream", NULL };
	char *u = url(tls_port, "/echo?x=1");
	size_t n = 200 * 1024, i;
	unsigned char *body = xmalloc(n);
	struct xfer_request rq = { .method = "POST", .url = u,
	    .headers = hdrs, .body = body, .body_len = n,
	    .reqid = "7f3a9c2e01b4d6a8" };
	struct result r = { 0 };
	ps_err rc;

	for (i = 0; i < n; i++)
		body[i] = (unsigned char)(i * 7 + i / 251);
	body[10] = '\0';
	memset(&srv.cid, 0, sizeof(srv.cid));
	n_finished = 0;
	result_clear(&r);
	rq.ca_file = ca_path;
	rc = xfer_start(xl, &rq, result_cb, &r);
	/* The request is copied: scribbling over it must not matter. */
	memset(&rq, 0, sizeof(rq));
	for (i = 0; i < n; i++)
		body[i] ^= 0xff;
	ok(rc == PS_OK, "POST started");
	wait_finished(1, 10000);
	for (i = 0; i < n; i++)
		body[i] ^= 0xff;
	is_int(r.rc, PS_OK, "POST rc");
	is_int(r.status, 200, "POST status");
	ok(r.body_len == n && memcmp(r.body, body, n) == 0,
	    "POST body (200 KB, binary) echoed byte for byte");
	is_str(srv.cid, "7f3a9c2e01b4d6a8", "client-request-id received");
	is_str(srv.rcid, "true", "return-client-request-id: true received");
	is_str(srv.xtest, "yes", "custom header received");
	ok(strncmp(srv.ua, "photosync/", 10) == 0, "User-Agent photosync");

	/* An empty POST. */
	rq.method = "POST";
	rq.url = u;
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.status == 200 &&
	    r.body_len == 0, "empty POST");
	ok(!srv.echo_get && srv.xtest[0] == '\0', "it is a POST, without the "
	    "first one's headers (the handle is reused, reset)");
	/* A GET on the handle the POSTs used: nothing of them stays. */
	rq.method = "GET";
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.status == 200 &&
	    r.body_len == 0 && srv.echo_get && srv.xtest[0] == '\0',
	    "a GET after the POSTs: a GET, without a body or their headers");
	result_clear(&r);
	free(body);
	free(u);
}

static void
test_304(void)
{
	static const char *const hdrs[] = { "If-None-Match: \"v1\"", NULL };
	char *u = url(tls_port, "/notmodified");
	struct xfer_request rq = { .url = u, .headers = hdrs };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "conditional GET started");
	is_int(r.rc, PS_OK, "304 is an answer");
	is_int(r.status, 304, "status 304");
	is_int(r.body_len, 0, "no body");
	is_str(r.etag, "\"v1\"", "ETag on the 304");
	result_clear(&r);
	free(u);
}

static long
retry_after_of(const char *value)
{
	char *path = xasprintf("/retry?v=%s", value), *u;
	struct xfer_request rq = { 0 };
	struct result r = { 0 };
	char *esc;
	long v;
	size_t i, j;

	/* Percent-encode spaces and commas of HTTP dates. */
	esc = xmalloc(strlen(path) * 3 + 1);
	for (i = j = 0; path[i]; i++) {
		if (path[i] == ' ' || path[i] == ',' || path[i] == ':') {
			snprintf(esc + j, 4, "%%%02X", (unsigned char)path[i]);
			j += 3;
		} else {
			esc[j++] = path[i];
		}
	}
	esc[j] = '\0';
	u = url(tls_port, esc);
	rq.url = u;
	if (fetch(&rq, &r) != PS_OK || r.rc != PS_OK || r.status != 503)
		v = -2;
	else
		v = r.retry_after;
	result_clear(&r);
	free(u);
	free(esc);
	free(path);
	return v;
}

/* X-Photosync-Photo-Hidden as the answer to `path` carries it. */
static int
hidden_of(const char *path)
{
	char *u = url(tls_port, path);
	struct xfer_request rq = { 0 };
	struct result r = { 0 };
	int v;

	rq.url = u;
	if (fetch(&rq, &r) != PS_OK || r.rc != PS_OK || r.status != 200)
		v = -1;
	else
		v = r.photo_hidden;
	result_clear(&r);
	free(u);
	return v;
}

static void
test_photo_hidden(void)
{
	is_int(hidden_of("/hidden?v=1"), 1, "X-Photosync-Photo-Hidden: 1 read");
	is_int(hidden_of("/hidden?v=0"), 0, "any other value is not hidden");
	is_int(hidden_of("/hidden"), 0, "nor is an answer without it");
}

static void
test_retry_after(void)
{
	char date[40];
	long v;

	is_int(retry_after_of("120"), 120, "Retry-After delta-seconds");
	is_int(retry_after_of("0"), 0, "Retry-After 0");
	v = retry_after_of(time_http(time_now() + 300, date));
	ok(v >= 290 && v <= 300, "Retry-After HTTP date, 300 s ahead");
	if (v < 290 || v > 300)
		printf("#   got %ld\n", v);
	is_int(retry_after_of(time_http(time_now() - 3600, date)), 0,
	    "Retry-After date in the past means now");
	is_int(retry_after_of("soon"), -1, "junk Retry-After ignored");
}

/* The parser alone, on a fixed clock: RFC 9110's example date. */
static void
test_retry_after_parse(void)
{
	const char *date = "Sun, 06 Nov 1994 08:49:37 GMT";
	const time_t at = 784111777;

	is_int(xfer_retry_after_parse(date, strlen(date), at - 60), 60,
	    "an HTTP-date 60 s ahead is 60 s");
	is_int(xfer_retry_after_parse(date, strlen(date), at + 1), 0,
	    "a past HTTP-date is now");
	is_int(xfer_retry_after_parse("Fri, 31 Dec 9999 23:59:59 GMT", 29, 0),
	    1L << 30, "a date centuries ahead is capped");
	is_int(xfer_retry_after_parse("1073741823", 10, at), 1073741823,
	    "delay-seconds just under the cap");
	is_int(xfer_retry_after_parse("99999999999999999999", 20, at),
	    1L << 30, "delay-seconds past the cap are capped");
	is_int(xfer_retry_after_parse("12 Nov 1994", 11, at), -1,
	    "digits followed by more are no value");
	is_int(xfer_retry_after_parse("120", 2, at), 12,
	    "only vlen bytes are read");
	is_int(xfer_retry_after_parse("", 0, at), -1, "empty is no value");
}

static void
test_max_bytes(void)
{
	char *u = url(tls_port, "/big?n=100000");
	struct xfer_request rq = { .url = u, .max_bytes = 1000 };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "big GET started");
	is_int(r.rc, PS_ELIMIT, "body over max_bytes (Content-Length)");
	ok(strstr(r.error, "too large") != NULL, "error says too large");
	is_int(r.body_len, 0, "no partial body handed over");
	free(u);

	u = url(tls_port, "/big?n=1000");
	rq.url = u;
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.body_len == 1000,
	    "body of exactly max_bytes accepted");
	is_int((long)r.body_cap, 1001, "Content-Length sized the buffer once");
	free(u);

	u = xasprintf("http://127.0.0.1:%d/", raw_port);
	rq.url = u;
	rq.allow_http = true;
	ok(fetch(&rq, &r) == PS_OK, "unsized GET started");
	is_int(r.rc, PS_ELIMIT, "body over max_bytes (no Content-Length)");
	ok(strstr(r.error, "too large") != NULL, "error says too large");
	rq.max_bytes = RAW_BODY;
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK &&
	    r.body_len == RAW_BODY, "unsized body within max_bytes");
	result_clear(&r);
	free(u);
}

static void
test_untrusted(void)
{
	char *u = url(tls_port, "/hello");
	struct xfer_request rq = { .url = u, .ca_file = other_ca_path };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "GET with the wrong CA started");
	is_int(r.rc, PS_EUPSTREAM, "untrusted certificate refused");
	ok(strstr(r.error, "TLS") != NULL, "error names TLS");
	printf("# %s\n", r.error);
	is_int(r.calls, 1, "done called once");
	result_clear(&r);
	free(u);
}

static void
test_refused(void)
{
	char *u = url(closed_port(), "/hello");
	struct xfer_request rq = { .url = u };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "GET to a closed port started");
	is_int(r.rc, PS_EUPSTREAM, "connection refused is an error");
	ok(strstr(r.error, "connection refused") != NULL,
	    "error says connection refused");
	printf("# %s\n", r.error);
	result_clear(&r);
	free(u);
}

static void
test_timeout(void)
{
	char *u = url(tls_port, "/hang");
	struct xfer_request rq = { .url = u, .timeout_ms = 300 };
	struct result r = { 0 };

	ok(fetch(&rq, &r) == PS_OK, "GET to a silent handler started");
	is_int(r.rc, PS_ETIMEOUT, "timeout");
	ok(strstr(r.error, "timeout") != NULL, "error says timeout");
	ok(r.elapsed_ms >= 250 && r.elapsed_ms < 3000,
	    "gave up after about timeout_ms");
	is_int(srv.n_held, 1, "the server got the request");
	result_clear(&r);
	release_held();
	free(u);
}

static void
test_schemes(void)
{
	struct xfer_request rq = { 0 };
	struct result r = { 0 };
	char *u = xasprintf("http://127.0.0.1:%d/hello", plain_port);
	static const char *const bad_hdrs[] = { "X-A: b\r\nX-Evil: 1", NULL };
	static const char *const tricks[] = {
		"https://127.0.0.1\\@evil.example/", "https://user@127.0.0.1/",
		"https://127.0.0.1/a b", "https://127.0.0.1:99999/",
		"https://127.0.0.1:/", "https://ev%69l.example/",
		"https://127.0.0.1/{x}",
	};
	char msg[96];
	size_t i;

	rq.url = u;
	ok(fetch(&rq, &r) == PS_EINVAL, "http:// refused by default");
	is_int(r.calls, 0, "no callback for a refused start");
	rq.allow_http = true;
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.status == 200 &&
	    strcmp(r.body, "hello world") == 0, "http:// with allow_http");
	rq.url = "ftp://127.0.0.1/x";
	ok(fetch(&rq, &r) == PS_EINVAL, "ftp:// refused");
	/* What common/url.h refuses is never started. */
	for (i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		snprintf(msg, sizeof(msg), "not started: %s", tricks[i]);
		rq.url = tricks[i];
		ok(fetch(&rq, &r) == PS_EINVAL, msg);
	}
	rq.url = u;
	rq.method = "DELETE";
	ok(fetch(&rq, &r) == PS_EINVAL, "unknown method refused");
	rq.method = "GET";
	rq.body = "x";
	rq.body_len = 1;
	ok(fetch(&rq, &r) == PS_EINVAL, "GET with a body refused");
	rq.body = NULL;
	rq.body_len = 0;
	rq.headers = bad_hdrs;
	ok(fetch(&rq, &r) == PS_EINVAL, "header with a line break refused");
	rq.headers = NULL;
	ok(xfer_start(xl, &rq, NULL, NULL) == PS_EINVAL,
	    "no callback refused");
	is_int(r.calls, 0, "no callback for any refused start");
	result_clear(&r);
	free(u);
}

static void
test_concurrent(void)
{
	struct result r[20];
	struct xfer_request rq = { .ca_file = NULL };
	char *u[20];
	bool all = true, bodies = true;
	int i, started = 0;

	memset(r, 0, sizeof(r));
	n_finished = 0;
	rq.ca_file = ca_path;
	for (i = 0; i < 20; i++) {
		u[i] = i % 2 ? url(tls_port, "/hello") :
		    url(tls_port, "/big?n=70000");
		rq.url = u[i];
		if (xfer_start(xl, &rq, result_cb, &r[i]) == PS_OK)
			started++;
	}
	is_int(started, 20, "20 transfers started");
	ok(wait_finished(20, 15000), "20 concurrent transfers finished");
	for (i = 0; i < 20; i++) {
		if (r[i].calls != 1 || r[i].rc != PS_OK || r[i].status != 200)
			all = false;
		if (r[i].body_len != (i % 2 ? 11u : 70000u))
			bodies = false;
		result_clear(&r[i]);
		free(u[i]);
	}
	ok(all, "each called back once with 200");
	ok(bodies, "each got its own body");
}

/* Starting a transfer from a done callback. */
static struct result chain_r[3];
static char *chain_url;

static void
chain_cb(struct xfer_response *resp, void *arg)
{
	struct result *r = arg;
	struct xfer_request rq = { .url = chain_url, .ca_file = ca_path };

	result_cb(resp, arg);
	if (r < &chain_r[2]) {
		(r + 1)->in_start = true;
		if (xfer_start(xl, &rq, chain_cb, r + 1) != PS_OK)
			n_finished = 100;
		(r + 1)->in_start = false;
	}
}

static void
test_chain(void)
{
	struct xfer_request rq = { 0 };
	int i;
	bool good = true;

	chain_url = url(tls_port, "/hello");
	rq.url = chain_url;
	rq.ca_file = ca_path;
	memset(chain_r, 0, sizeof(chain_r));
	n_finished = 0;
	ok(xfer_start(xl, &rq, chain_cb, &chain_r[0]) == PS_OK,
	    "first of a chain started");
	ok(wait_finished(3, 10000) && n_finished == 3,
	    "transfers started from done callbacks finished");
	for (i = 0; i < 3; i++) {
		if (chain_r[i].calls != 1 || chain_r[i].status != 200 ||
		    chain_r[i].called_in_start)
			good = false;
		result_clear(&chain_r[i]);
	}
	ok(good, "each once, with 200, none from inside xfer_start");
	free(chain_url);
}

/* Breaks the loop as soon as the server holds `n` requests. */
static void
wait_held(int n)
{
	int64_t deadline = time_mono_ms() + 5000;

	while (srv.n_held < n && time_mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void
test_free_in_flight(void)
{
	char *u = url(tls_port, "/hang");
	struct xfer_request rq = { .url = u, .ca_file = ca_path,
	    .reqid = "inflight" };
	struct result r[2];
	struct xfer_loop *l = xfer_loop_new(base);

	memset(r, 0, sizeof(r));
	n_finished = 0;
	ok(xfer_start(l, &rq, result_cb, &r[0]) == PS_OK &&
	    xfer_start(l, &rq, result_cb, &r[1]) == PS_OK,
	    "two transfers to a silent handler started on a second loop");
	wait_held(2);
	is_int(srv.n_held, 2, "the server holds both requests");
	xfer_loop_free(l);
	run_for(100);
	is_int(r[0].calls + r[1].calls, 0, "no callback after xfer_loop_free");
	release_held();
	free(u);
}

/* Freeing the loop from inside a done callback. */
static struct xfer_loop *self_loop;

static void
self_free_cb(struct xfer_response *resp, void *arg)
{
	result_cb(resp, arg);
	xfer_loop_free(self_loop);
	self_loop = NULL;
}

static void
test_free_in_done(void)
{
	char *hello = url(tls_port, "/hello"), *hang = url(tls_port, "/hang");
	struct xfer_request rq = { .ca_file = ca_path };
	struct result r[2];

	memset(r, 0, sizeof(r));
	self_loop = xfer_loop_new(base);
	n_finished = 0;
	rq.url = hang;
	ok(xfer_start(self_loop, &rq, result_cb, &r[1]) == PS_OK,
	    "a silent transfer started");
	wait_held(1);
	rq.url = hello;
	ok(xfer_start(self_loop, &rq, self_free_cb, &r[0]) == PS_OK,
	    "a transfer that frees its loop started");
	wait_finished(1, 5000);
	run_for(100);
	is_int(r[0].calls, 1, "the freeing callback ran once");
	is_int(r[1].calls, 0, "the other transfer was cancelled silently");
	ok(self_loop == NULL, "loop freed from inside its callback");
	release_held();
	result_clear(&r[0]);
	free(hello);
	free(hang);
}

/*
 * Requests on kept-alive connections the peer drops. The client first
 * keeps DROP_KEPT connections (as many requests at once); each later
 * request on one of them is dropped, on the next one too when libcurl
 * sends it again, until libcurl gives up. A GET, and a POST marked
 * idempotent, then go once more on a new connection and get their
 * answer; a POST not marked so fails, on no new connection; a request
 * dropped on the new connection too fails, and says so. Each case on a
 * loop of its own, so that it starts with no connection.
 */
static void
drop_case(enum drop_mode mode, const char *method, bool idempotent,
    struct result *r)
{
	char *u = xasprintf("http://127.0.0.1:%d/photo", drop.port);
	static const char *const post_hdrs[] = { "Content-Type: text/xml",
	    NULL };
	struct xfer_request first = { .method = "GET", .url = u,
	    .allow_http = true };
	struct xfer_request rq = { .method = method, .url = u,
	    .allow_http = true, .idempotent = idempotent };
	struct xfer_loop *saved = xl;
	struct result kept[DROP_KEPT];
	int i, good = 0;

	if (strcmp(method, "POST") == 0) {
		rq.headers = post_hdrs;
		rq.body = "<read/>";
		rq.body_len = 7;
	}
	memset(kept, 0, sizeof(kept));
	drop.mode = mode;
	drop.conns = drop.requests = drop.answered = 0;
	xl = xfer_loop_new(base);
	n_finished = 0;
	for (i = 0; i < DROP_KEPT; i++)
		(void)xfer_start(xl, &first, result_cb, &kept[i]);
	wait_finished(DROP_KEPT, 10000);
	for (i = 0; i < DROP_KEPT; i++) {
		good += kept[i].rc == PS_OK && kept[i].status == 200;
		result_clear(&kept[i]);
	}
	ok(good == DROP_KEPT && drop.conns == DROP_KEPT, "drop: the first "
	    "requests answered, their connections kept");
	ok(fetch(&rq, r) == PS_OK, "drop: the next request started");
	printf("# %s: rc %d status %ld, %d connections, %d requests: %s\n",
	    method, r->rc, r->status, drop.conns, drop.requests, r->error);
	xfer_loop_free(xl);
	xl = saved;
	run_for(20);
	free(u);
}

static void
test_resend(void)
{
	struct result r = { 0 };

	drop_case(DROP_REUSED, "GET", false, &r);
	ok(r.rc == PS_OK && r.status == 200 && r.body &&
	    strcmp(r.body, "ok") == 0, "a GET dropped on reused connections "
	    "gets its answer on a new one");
	is_int(drop.conns, DROP_KEPT + 1, "sent again once, on a new "
	    "connection");

	drop_case(DROP_REUSED, "POST", true, &r);
	ok(r.rc == PS_OK && r.status == 200, "so does a POST marked "
	    "idempotent");
	is_int(drop.conns, DROP_KEPT + 1, "the POST sent again on a new "
	    "connection");

	drop_case(DROP_REUSED, "POST", false, &r);
	ok(r.rc == PS_EUPSTREAM && r.status == 0, "a POST not marked "
	    "idempotent fails");
	is_int(drop.conns, DROP_KEPT, "and is not sent on a new connection");
	ok(r.error[0] && strstr(r.error, "new connection") == NULL,
	    "its error does not say it was");

	drop_case(DROP_AFTER_KEPT, "GET", false, &r);
	ok(r.rc == PS_EUPSTREAM && r.status == 0 && r.body_len == 0,
	    "a GET dropped on the new connection too fails");
	is_int(drop.conns, DROP_KEPT + 1, "one new connection, not more");
	ok(strstr(r.error, "again on a new connection") != NULL,
	    "its error says it was sent again on a new connection");
	result_clear(&r);
}

/*
 * ---- `test_xfer idle`: our server closing kept connections ----
 *
 * Run as a process of its own, since the server's idle deadline is the
 * process's (http_set_limits): IDLE_MS, so that the server closes the
 * client's kept connections in a moment. Over TLS, libcurl takes a kept
 * connection whose server has closed it (its close_notify unread) for
 * alive, sends on it, and sends again on the next kept one, up to 5
 * times; past that, the request failed (the benchmark's "Send failure:
 * Broken pipe") until xfer sent it again on a new connection.
 */
#define IDLE_MS		300
#define IDLE_KEPT	8

/* The server's open connections, as its gauge says (set by its sweep). */
static long
server_connections(void)
{
	static const char key[] = "\nphotosync_http_connections ";
	struct buf b;
	char *text, *at;
	long v = -1;

	buf_init(&b, 1 << 20);
	if (metrics_render(&b) == PS_OK) {
		text = xstrndup((const char *)b.b_data, b.b_len);
		if ((at = strstr(text, key)) != NULL)
			v = strtol(at + sizeof(key) - 1, NULL, 10);
		free(text);
	}
	buf_cleanup(&b);
	return v;
}

/* Runs the loop until the gauge says `want` (bounded against a hang). */
static bool
wait_connections(long want)
{
	int i;

	for (i = 0; i < 500 && server_connections() != want; i++)
		run_for(10);
	return server_connections() == want;
}

static void
test_idle_closed(void)
{
	char *u = url(tls_port, "/hello");
	struct xfer_request rq = { .url = u, .ca_file = ca_path };
	struct result kept[IDLE_KEPT], r = { 0 };
	int i, good = 0;

	memset(kept, 0, sizeof(kept));
	n_finished = 0;
	for (i = 0; i < IDLE_KEPT; i++)
		(void)xfer_start(xl, &rq, result_cb, &kept[i]);
	wait_finished(IDLE_KEPT, 10000);
	for (i = 0; i < IDLE_KEPT; i++) {
		good += kept[i].rc == PS_OK && kept[i].status == 200;
		result_clear(&kept[i]);
	}
	is_int(good, IDLE_KEPT, "idle: GETs at once over TLS answered");
	ok(wait_connections(IDLE_KEPT), "idle: their connections kept");
	ok(wait_connections(0), "idle: the server closed them all, idle "
	    "past its deadline");
	ok(fetch(&rq, &r) == PS_OK && r.rc == PS_OK && r.status == 200 &&
	    r.body && strcmp(r.body, "hello world") == 0,
	    "idle: the next GET gets its answer");
	if (r.rc != PS_OK)
		printf("# %s\n", r.error);
	result_clear(&r);
	free(u);
}

static void
cleanup_tmp(void)
{
	unlink(ca_path);
	unlink(other_ca_path);
	unlink(leaf_path);
	unlink(key_path);
	rmdir(tmpdir);
	free(tmpdir);
	free(ca_path);
	free(other_ca_path);
	free(leaf_path);
	free(key_path);
}

int
main(int argc, char **argv)
{
	bool idle = argc > 1 && strcmp(argv[1], "idle") == 0;
	struct http_limits limits = http_default_limits;
	struct http_server *hs = NULL, *ps = NULL;
	struct http_tls *tls = NULL;
	struct evconnlistener *raw = NULL, *dropper = NULL;

	/* The servers are local: no proxy from the environment. */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	log_init("test_xfer", LOG_DEBUG);
	if ((tmpdir = t_tmpdir("test_xfer")) == NULL)
		return 1;
	ok(xfer_global_init() == PS_OK, "libcurl started");
	ok(make_certs(), "CA, other CA and leaf certificate made");
	base = event_base_new();
	ok(http_tls_new(leaf_path, key_path, &tls) == PS_OK, "TLS context");
	if (idle) {
		limits.idle_timeout_ms = IDLE_MS;
		http_set_limits(&limits);
	}
	hs = http_server_new(base, "test", handler, NULL);
	ps = http_server_new(base, "test", handler, NULL);
	ok(http_server_listen(hs, "127.0.0.1", 0, tls, &tls_port) == PS_OK,
	    "HTTPS server on 127.0.0.1");
	ok(http_server_listen(ps, "127.0.0.1", 0, NULL, &plain_port) ==
	    PS_OK, "HTTP server on 127.0.0.1");
	ok((raw = loopback_listen(raw_accept_cb, &raw_port)) != NULL,
	    "raw server on 127.0.0.1");
	ok((dropper = loopback_listen(drop_accept_cb, &drop.port)) !=
	    NULL, "dropping peer on 127.0.0.1");
	ok((xl = xfer_loop_new(base)) != NULL, "transfer loop");

	if (idle) {
		test_idle_closed();
		goto out;
	}
	test_get();
	test_post();
	test_304();
	test_retry_after();
	test_retry_after_parse();
	test_photo_hidden();
	test_max_bytes();
	test_untrusted();
	test_refused();
	test_timeout();
	test_schemes();
	test_concurrent();
	test_chain();
	test_free_in_flight();
	test_free_in_done();
	test_resend();
out:
	xfer_loop_free(xl);
	xfer_loop_free(NULL);
	run_for(20);
	evconnlistener_free(raw);
	evconnlistener_free(dropper);
	http_server_free(hs);
	http_server_free(ps);
	http_tls_free(tls);
	event_base_free(base);
	cleanup_tmp();
	return done();
}
