/*
 * The HTTP/1.1 server (our own, on libevent's loop with OpenSSL for TLS):
 * listening, TLS contexts, and what handlers see of a request and send
 * as its answer. The connections themselves are conn.c's. Every request
 * ends in exactly one outcome line (ev=http.request), written before the
 * answer goes out.
 */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/service.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "conn.h"
#include "metrics/metrics.h"

/* ---- stopping and reloading on signals ---- */

struct http_signals {
	struct event		*sigint, *sigterm, *sighup;
	struct event_base	*base;
	void			(*stop)(void *);
	void			*arg;
	void			(*reload)(void *);
	void			*reload_arg;
	bool			 stopping;
	bool			 reloading;	/* until http_signals_reloaded */
	bool			 reload_again;	/* SIGHUP meanwhile */
};

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct http_signals *hs = arg;

	(void)what;
	if (hs->stopping) {
		log_info(NULL, "serve.stopping", "signal=%d now=yes", (int)sig);
		event_base_loopbreak(hs->base);
		return;
	}
	hs->stopping = true;
	log_info(NULL, "serve.stopping", "signal=%d", (int)sig);
	service_notify("STOPPING=1");
	if (hs->stop)
		hs->stop(hs->arg);
	else
		event_base_loopexit(hs->base, NULL);
}

/*
 * The manager hears RELOADING=1 (with the monotonic time, which newer
 * managers ask for), then the reload starts; http_signals_reloaded()
 * ends it.
 */
static void
reload_start(struct http_signals *hs)
{
	char state[64];
	struct timespec ts;

	hs->reloading = true;
	hs->reload_again = false;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
	    (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	service_notify(state);
	log_info(NULL, "serve.reloading", "signal=%d", SIGHUP);
	hs->reload(hs->reload_arg);
}

/* A SIGHUP during a reload is one more after it: files may have moved. */
static void
on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct http_signals *hs = arg;

	(void)sig;
	(void)what;
	if (hs->stopping)
		return;
	if (hs->reloading) {
		hs->reload_again = true;
		return;
	}
	reload_start(hs);
}

void
http_signals_reloaded(struct http_signals *hs, ps_err rc)
{
	if (rc == PS_OK)
		log_info(NULL, "serve.reloaded", NULL);
	else
		log_warn(NULL, "serve.reload_refused", "error=%s",
		    log_q(ps_errmsg()));
	hs->reloading = false;
	service_notify("READY=1");
	if (hs->reload_again && !hs->stopping)
		reload_start(hs);
}

struct http_signals *
http_signals_watch(struct event_base *base, void (*stop)(void *),
    void *arg)
{
	struct http_signals *hs = xcalloc(1, sizeof(*hs));

	hs->base = base;
	hs->stop = stop;
	hs->arg = arg;
	hs->sigint = evsignal_new(base, SIGINT, on_stop_signal, hs);
	hs->sigterm = evsignal_new(base, SIGTERM, on_stop_signal, hs);
	event_add(hs->sigint, NULL);
	event_add(hs->sigterm, NULL);
	return hs;
}

void
http_signals_on_reload(struct http_signals *hs, void (*reload)(void *),
    void *arg)
{
	hs->reload = reload;
	hs->reload_arg = arg;
	if (hs->sighup == NULL) {
		hs->sighup = evsignal_new(hs->base, SIGHUP, on_reload_signal,
		    hs);
		event_add(hs->sighup, NULL);
	}
}

void
http_signals_free(struct http_signals *hs)
{
	if (hs == NULL)
		return;
	event_free(hs->sigint);
	event_free(hs->sigterm);
	if (hs->sighup)
		event_free(hs->sighup);
	free(hs);
}

/* ---- budgets from the serve options ---- */

ps_err
http_set_limits_from_options(const char *max_connections,
    const char *body_memory)
{
	struct http_limits lim = http_default_limits, *out = &lim;

	if (max_connections) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(max_connections, &end, 10);
		if (errno || end == max_connections || *end != '\0' ||
		    n == 0 || n > 10000000 || max_connections[0] == '-')
			return ps_errf(PS_EINVAL, "--max-connections \"%s\": "
			    "use a number of connections from 1 up",
			    max_connections);
		out->max_connections = (size_t)n;
	}
	if (body_memory) {
		if (size_parse(body_memory, &out->body_memory) != PS_OK)
			return ps_errf(PS_EINVAL, "--body-memory: %s",
			    ps_errmsg());
		if (out->body_memory < HTTP_SMALL_BODY)
			return ps_errf(PS_EINVAL, "--body-memory %s: at least "
			    "64K, the size of a small body", body_memory);
	}
	http_set_limits(&lim);
	return PS_OK;
}

/* ---- TLS ---- */

static int sni_select(SSL *, int *, void *);

/* A server context from the PEM files; NULL with the error set. */
static SSL_CTX *
tls_ctx_load(const char *cert_path, const char *key_path)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		ps_errf(PS_ECRYPTO, "cannot create a TLS context");
		return NULL;
	}
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
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char e[256];

		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		ERR_clear_error();
		SSL_CTX_free(ctx);
		ps_errf(PS_ECRYPTO, "cannot load the TLS certificate %s "
		    "and key %s: %s", cert_path, key_path, e);
		return NULL;
	}
	return ctx;
}

ps_err
http_tls_new(const char *cert_path, const char *key_path,
    struct http_tls **out)
{
	SSL_CTX *ctx = tls_ctx_load(cert_path, key_path);
	struct http_tls *t;

	if (ctx == NULL)
		return PS_ECRYPTO;
	t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	t->cert_path = xstrdup(cert_path);
	t->key_path = xstrdup(key_path);
	*out = t;
	return PS_OK;
}

ps_err
http_tls_reread(struct http_tls *t)
{
	SSL_CTX *ctx = tls_ctx_load(t->cert_path, t->key_path);

	if (ctx == NULL)
		return PS_ECRYPTO;
	if (t->names) {
		SSL_CTX_set_tlsext_servername_callback(ctx, sni_select);
		SSL_CTX_set_tlsext_servername_arg(ctx, t);
	}
	SSL_CTX_free(t->next);
	t->next = ctx;
	return PS_OK;
}

void
http_tls_swap(struct http_tls *t)
{
	if (t->next == NULL)
		return;
	/* Connections made with the old context hold a reference to it. */
	SSL_CTX_free(t->ctx);
	t->ctx = t->next;
	t->next = NULL;
}

void
http_tls_drop(struct http_tls *t)
{
	SSL_CTX_free(t->next);
	t->next = NULL;
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
	SSL_CTX_free(t->next);
	free(t->cert_path);
	free(t->key_path);
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

/* ---- the server ---- */

/* No connection of a draining server is left. */
static void
on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	void (*fn)(void *) = srv->drained;

	(void)fd;
	(void)what;
	if (fn == NULL || srv->conns != NULL)
		return;
	srv->drained = NULL;
	event_del(srv->drain_timer);
	log_info(NULL, "http.drained", "connections=0");
	fn(srv->drained_arg);
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_drain_expire(arg);
}

void
http_server_drain(struct http_server *srv, void (*drained)(void *),
    void *arg)
{
	int64_t ms = conn_limits()->drain_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct conn *c;
	size_t n = 0;

	if (srv->draining)
		return;
	srv->draining = true;
	srv->drained = drained;
	srv->drained_arg = arg;
	/* New connections are refused by the kernel from now on. */
	if (srv->listen_ev)
		event_free(srv->listen_ev);
	srv->listen_ev = NULL;
	if (srv->lfd >= 0)
		close(srv->lfd);
	srv->lfd = -1;
	for (c = srv->conns; c; c = c->next)
		n++;
	log_info(NULL, "http.draining", "connections=%zu", n);
	conn_drain_server(srv);
	event_add(srv->drain_timer, &tv);
	if (srv->conns == NULL)
		event_active(srv->drained_ev, EV_TIMEOUT, 0);
}

void
http_server_set_body_gate(struct http_server *srv, http_body_gate_fn fn,
    void *arg)
{
	srv->gate = fn;
	srv->gate_arg = arg;
}

void
http_server_set_error_body(struct http_server *srv, http_error_body_fn fn,
    void *arg)
{
	srv->error_body = fn;
	srv->error_body_arg = arg;
}

void
http_req_body_allow(struct http_req *r, size_t max)
{
	conn_body_allow(r->c, max);
}

struct http_server *
http_server_new(struct event_base *base, const char *proc,
    http_handler_fn fn, void *arg)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	int64_t sweep = conn_sweep_ms();
	struct timeval tv = { sweep / 1000, (sweep % 1000) * 1000 };

	srv->base = base;
	srv->proc = proc;
	srv->handler = fn;
	srv->arg = arg;
	srv->max_body = HTTP_MAX_BODY;
	srv->lfd = -1;
	srv->sweep_ev = event_new(base, -1, EV_PERSIST, conn_sweep_cb, srv);
	event_add(srv->sweep_ev, &tv);
	srv->drained_ev = event_new(base, -1, 0, on_drained, srv);
	srv->drain_timer = evtimer_new(base, on_drain_timeout, srv);
	conn_loop_join(base);
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
	conn_loop_leave();
	if (srv->listen_ev)
		event_free(srv->listen_ev);
	if (srv->lfd >= 0)
		close(srv->lfd);
	event_free(srv->sweep_ev);
	event_free(srv->drained_ev);
	event_free(srv->drain_timer);
	free(srv);
}

void
http_server_buffer_logs(struct http_server *srv)
{
	(void)srv;
	log_buffer_start(conn_send_soon);
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
	/* Filled by getsockname(); zeroed, never read unset should it not. */
	memset(&ss, 0, sizeof(ss));
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
	    conn_accept_cb, srv);
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

bool
http_req_field(const struct http_req *r, size_t i, const char **name,
    const char **value)
{
	if (i >= r->head.nfields)
		return false;
	*name = r->head.fields[i].name;
	*value = r->head.fields[i].value;
	return true;
}

bool
http_req_conn_first_note(struct http_req *r)
{
	if (r->c->noted)
		return false;
	r->c->noted = true;
	return true;
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
	return http_cookie_value(http_req_header(r, "Cookie"), name, buf, n);
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

/* etagc of RFC 9110 8.8.3: what an opaque tag may hold. */
static bool
etag_char(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

bool
http_etag_match(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = inm, *open;
	bool match = false;

	if (inm == NULL)
		return false;
	p += strspn(p, " \t");
	if (*p == '*') {
		p++;
		return p[strspn(p, " \t")] == '\0';
	}
	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			return match;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return false;
		for (open = ++p; *p != '"'; p++)
			if (*p == '\0' || !etag_char((unsigned char)*p))
				return false;
		if ((size_t)(p - open) == n && memcmp(open, etag, n) == 0)
			match = true;
		p++;
		p += strspn(p, " \t");
		if (*p != ',' && *p != '\0')
			return false;
	}
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
http_req_quiet(struct http_req *r)
{
	r->quiet = true;
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
	/*
	 * Nothing to record: a request stays with its handler until it is
	 * answered, and the connection notices a client that leaves.
	 */
	(void)r;
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
	case 408: return "Request Timeout";
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
	int64_t ms = http_req_elapsed_ms(r);

	metrics_series_add(rs->requests, 1);
	metrics_series_observe(rs->seconds, (double)ms / 1000.0);
	log_event(status >= 500 ? LOG_WARN : r->quiet && status < 400 ?
	    LOG_DEBUG : LOG_INFO, r->id, "http.request",
	    "method=%s path=%s status=%d bytes=%zu ms=%lld peer=%s%s%s%s",
	    http_req_method_name(r), log_q(http_req_path_raw(r)), status, len,
	    (long long)ms, log_q(r->c->peer), r->client_id[0] ?
	    " client_req=" : "", r->client_id[0] ? log_q(r->client_id) : "",
	    r->notes);
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
	char num[32];
	bool bodyless = status < 200 || status == 204 || status == 304;

	buf_adds(b, "HTTP/1.1 ");
	str_cat_int(num, sizeof(num), 0, status);
	buf_adds(b, num);
	buf_add(b, " ", 1);
	buf_adds(b, reason_phrase(status));
	buf_add(b, "\r\n", 2);
	buf_adds(b, date_field());
	if (!bodyless) {
		str_cat_int(num, sizeof(num), 0, (int64_t)len);
		add_field(b, "Content-Length", num);
	}
	if (content_type)
		add_field(b, "Content-Type", content_type);
	add_field(b, "request-id", r->id);
	add_field(b, "X-Request-Id", r->id);
	if (r->client_id[0] != '\0')
		add_field(b, "client-request-id", r->client_id);
	add_field(b, "X-Content-Type-Options", "nosniff");
	/* RFC 6797 7.2: never over plain HTTP, where it means nothing. */
	if (c->ssl != NULL)
		add_field(b, "Strict-Transport-Security", "max-age="
		    HTTP_HSTS_MAX_AGE);
	buf_add(b, c->hdrs.b_data, c->hdrs.b_len);
	if (conn_closes_after(c))
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
	conn_answered(c);
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
	/* r->c lives as long as r; its srv is NULL once the client left. */
	struct http_server *srv = r->c->srv;
	char *body;
	bool answered;

	if (srv && srv->error_body && !r->in_error_body) {
		r->in_error_body = true;
		answered = srv->error_body(r, status, message,
		    srv->error_body_arg);
		r->in_error_body = false;
		if (answered)
			return;
	}
	body = xasprintf("%d %s: %s\n", status, reason_phrase(status),
	    message);

	http_req_note(r, "error", message);
	http_reply(r, status, "text/plain; charset=utf-8", body, strlen(body));
	free(body);
}
