/*
 * The HTTP server on libevent's evhttp, with TLS through
 * bufferevent_openssl. Each request gets a struct http_req that carries
 * its id, decoded path and body; the reply functions send the response and
 * write exactly one outcome line (ev=http.request) per request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "metrics/metrics.h"
#include "server.h"

/* Writes the buffered log lines once per loop iteration (one process). */
static struct event *log_flush_event;

struct sni_name {
	struct sni_name	*next;
	char		*host;
	struct http_tls	*tls;		/* borrowed */
};

struct http_tls {
	SSL_CTX		*ctx;
	struct sni_name	*names;		/* other certificates, by name */
};

struct http_server {
	struct event_base	*base;
	struct evhttp		*evh;
	const char		*proc;
	http_handler_fn		 handler;
	void			*arg;
	struct http_tls		*tls;
};

struct http_req {
	struct http_server	*srv;
	struct evhttp_request	*er;
	struct evkeyvalq	 query;
	bool			 query_ok;
	char			 id[65];
	char			*path_raw;
	char			*path;
	char			*body;
	size_t			 body_len;
	char			 peer[64];
	int64_t			 start_ms;
	char			 notes[1024];	/* " key=value", escaped */
	size_t			 notes_len;
	bool			 deferred;
	bool			 gone;	/* the client closed the connection */
	const char		*route;	/* static; for metrics */
};

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

static struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	struct http_tls *t = arg;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(t->ctx);

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* ---- requests ---- */

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

static void
req_free(struct http_req *r)
{
	if (r->query_ok)
		evhttp_clear_headers(&r->query);
	free(r->path_raw);
	free(r->path);
	free(r->body);
	free(r);
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
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "Status";
}

static void
gencb(struct evhttp_request *er, void *arg)
{
	struct http_server *srv = arg;
	struct http_req *r = xcalloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(er);
	struct evhttp_connection *conn = evhttp_request_get_connection(er);
	struct evbuffer *in = evhttp_request_get_input_buffer(er);
	const char *cid, *p, *q;
	char *peer = NULL;
	size_t len = 0;
	ev_uint16_t port = 0;

	r->srv = srv;
	r->er = er;
	r->start_ms = time_mono_ms();
	cid = evhttp_find_header(evhttp_request_get_input_headers(er),
	    "client-request-id");
	if (cid && reqid_acceptable(cid))
		str_copy(r->id, cid, sizeof(r->id));
	else
		reqid_new(r->id);
	if (conn) {
		evhttp_connection_get_peer(conn, &peer, &port);
		snprintf(r->peer, sizeof(r->peer), "%s", peer ? peer : "");
	}

	p = uri ? evhttp_uri_get_path(uri) : NULL;
	if (p == NULL || *p == '\0')
		p = "/";
	r->path_raw = evhttp_uridecode(p, 0, &len);
	if (r->path_raw == NULL || strlen(r->path_raw) != len) {
		http_reply_error(r, 400, "the path is not valid");
		return;
	}
	r->path = xstrdup(r->path_raw);
	str_lower(r->path);
	q = uri ? evhttp_uri_get_query(uri) : NULL;
	TAILQ_INIT(&r->query);
	if (q && evhttp_parse_query_str(q, &r->query) != 0) {
		evhttp_clear_headers(&r->query);
		http_reply_error(r, 400, "the query string is not valid");
		return;
	}
	r->query_ok = true;
	r->body_len = evbuffer_get_length(in);
	r->body = xmalloc(r->body_len + 1);
	evbuffer_remove(in, r->body, r->body_len);
	r->body[r->body_len] = '\0';
	srv->handler(r, srv->arg);
}

struct http_server *
http_server_new(struct event_base *base, const char *proc,
    http_handler_fn fn, void *arg)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->proc = proc;
	srv->handler = fn;
	srv->arg = arg;
	srv->evh = evhttp_new(base);
	if (srv->evh == NULL)
		abort();
	evhttp_set_allowed_methods(srv->evh, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_max_body_size(srv->evh, HTTP_MAX_BODY);
	evhttp_set_max_headers_size(srv->evh, HTTP_MAX_HEADERS);
	evhttp_set_timeout(srv->evh, 30);
	evhttp_set_gencb(srv->evh, gencb, srv);
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
	if (log_flush_event && event_get_base(log_flush_event) == srv->base) {
		event_free(log_flush_event);
		log_flush_event = NULL;
		log_buffer_stop();
	}
	evhttp_free(srv->evh);
	free(srv);
}

static void
log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_flush();
}

static void
log_schedule(void)
{
	if (log_flush_event)
		event_active(log_flush_event, EV_TIMEOUT, 0);
}

void
http_server_buffer_logs(struct http_server *srv)
{
	if (log_flush_event == NULL)
		log_flush_event = event_new(srv->base, -1, 0, log_flush_cb,
		    NULL);
	log_buffer_start(log_schedule);
}

void
http_server_set_max_body(struct http_server *srv, size_t max)
{
	evhttp_set_max_body_size(srv->evh, (ev_ssize_t)max);
}

ps_err
http_server_listen(struct http_server *srv, const char *host, int port,
    struct http_tls *tls, int *bound)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (tls) {
		srv->tls = tls;
		evhttp_set_bevcb(srv->evh, tls_bevcb, tls);
	}
	bs = evhttp_bind_socket_with_handle(srv->evh, host,
	    (ev_uint16_t)port);
	if (bs == NULL)
		return ps_errf(PS_EIO, "cannot listen on %s:%d: %s", host,
		    port, strerror(errno));
	/*
	 * Small responses must not wait for Nagle's algorithm (40 ms on
	 * loopback under TLS); accepted sockets inherit this on Linux.
	 */
	{
		int one = 1;

		setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&ss, &sl) != 0)
		return ps_errf(PS_EIO, "getsockname: %s", strerror(errno));
	if (ss.ss_family == AF_INET)
		*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else
		*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return PS_OK;
}

enum http_method
http_req_method(const struct http_req *r)
{
	switch (evhttp_request_get_command(r->er)) {
	case EVHTTP_REQ_GET: return HTTP_GET;
	case EVHTTP_REQ_HEAD: return HTTP_HEAD;
	case EVHTTP_REQ_POST: return HTTP_POST;
	default: return HTTP_OTHER;
	}
}

const char *
http_req_method_name(const struct http_req *r)
{
	switch (evhttp_request_get_command(r->er)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
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
	return r->query_ok ? evhttp_find_header(&r->query, name) : NULL;
}

const char *
http_req_query_ci(const struct http_req *r, const char *name)
{
	struct evkeyval *kv;

	if (!r->query_ok)
		return NULL;
	TAILQ_FOREACH(kv, &r->query, next)
		if (strcasecmp(kv->key, name) == 0)
			return kv->value;
	return NULL;
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	if (r->er == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(r->er),
	    name);
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
	return r->peer;
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
	struct evkeyvalq q;
	const char *v;
	char *out = NULL;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(body, &q) != 0) {
		evhttp_clear_headers(&q);
		return NULL;
	}
	if ((v = evhttp_find_header(&q, name)) != NULL)
		out = xstrdup(v);
	evhttp_clear_headers(&q);
	return out;
}

char *
http_encode(const char *s)
{
	char *e = evhttp_encode_uri(s), *out;

	out = xstrdup(e ? e : "");
	free(e);
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
	size_t room = sizeof(r->notes) - r->notes_len;
	int n;

	n = snprintf(r->notes + r->notes_len, room, " %s=%s", key,
	    log_q(value ? value : ""));
	if (n > 0 && (size_t)n < room)
		r->notes_len += (size_t)n;
	else
		r->notes[r->notes_len] = '\0';	/* full: the note is left out */
}

static void
on_client_gone(struct evhttp_connection *conn, void *arg)
{
	struct http_req *r = arg;

	(void)conn;
	r->gone = true;
	r->er = NULL;
}

void
http_req_defer(struct http_req *r)
{
	struct evhttp_connection *conn;

	if (r->deferred || r->er == NULL)
		return;
	r->deferred = true;
	conn = evhttp_request_get_connection(r->er);
	if (conn)
		evhttp_connection_set_closecb(conn, on_client_gone, r);
}

bool
http_req_gone(const struct http_req *r)
{
	return r->gone;
}

void
http_reply_header(struct http_req *r, const char *name, const char *value)
{
	if (r->gone)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(r->er), name,
	    value);
}

static void
log_outcome(struct http_req *r, int status, size_t len)
{
	char labels[128];

	snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"",
	    r->route ? r->route : "other", status);
	metrics_add("photosync_http_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "route=\"%s\"", r->route ?
	    r->route : "other");
	metrics_observe("photosync_http_request_seconds", labels,
	    (double)http_req_elapsed_ms(r) / 1000.0);
	log_event(status >= 500 ? LOG_WARN : LOG_INFO, r->id, "http.request",
	    "method=%s path=%s status=%d bytes=%zu ms=%lld peer=%s%s",
	    http_req_method_name(r), log_q(http_req_path_raw(r)), status, len,
	    (long long)http_req_elapsed_ms(r), log_q(r->peer), r->notes);
}

/* Adds the common headers, sends `out` (taken) and ends the request. */
static void
reply_send(struct http_req *r, int status, const char *content_type,
    struct evbuffer *out, size_t len)
{
	struct evkeyvalq *h;
	const char *cid;

	if (r->deferred) {
		struct evhttp_connection *conn =
		    evhttp_request_get_connection(r->er);

		if (conn)
			evhttp_connection_set_closecb(conn, NULL, NULL);
	}
	h = evhttp_request_get_output_headers(r->er);
	cid = http_req_header(r, "client-request-id");
	evhttp_add_header(h, "request-id", r->id);
	evhttp_add_header(h, "X-Request-Id", r->id);
	if (cid && reqid_acceptable(cid))
		evhttp_add_header(h, "client-request-id", cid);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (content_type)
		evhttp_add_header(h, "Content-Type", content_type);
	evhttp_send_reply(r->er, status, reason_phrase(status), out);
	evbuffer_free(out);
	log_outcome(r, status, len);
	req_free(r);
}

void
http_reply(struct http_req *r, int status, const char *content_type,
    const void *body, size_t len)
{
	struct evbuffer *out;

	if (r->gone) {
		log_info(r->id, "http.client_gone", "path=%s ms=%lld",
		    log_q(http_req_path_raw(r)),
		    (long long)http_req_elapsed_ms(r));
		req_free(r);
		return;
	}
	out = evbuffer_new();
	if (len)
		evbuffer_add(out, body, len);
	reply_send(r, status, content_type, out, len);
}

struct ref_release {
	void	(*release)(void *);
	void	*arg;
};

static void
ref_cleanup(const void *data, size_t len, void *extra)
{
	struct ref_release *rr = extra;

	(void)data;
	(void)len;
	rr->release(rr->arg);
	free(rr);
}

void
http_reply_ref(struct http_req *r, int status, const char *content_type,
    const void *data, size_t len, void (*release)(void *), void *arg)
{
	struct ref_release *rr;
	struct evbuffer *out;

	if (r->gone || len == 0) {
		http_reply(r, status, content_type, data, len);
		release(arg);
		return;
	}
	rr = xmalloc(sizeof(*rr));
	rr->release = release;
	rr->arg = arg;
	out = evbuffer_new();
	evbuffer_add_reference(out, data, len, ref_cleanup, rr);
	reply_send(r, status, content_type, out, len);
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
