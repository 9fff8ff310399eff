/*
 * Blocking libcurl transfers for the admin commands: xfer_get fetches a
 * metadata document; for diagnose, xfer_call makes any request and keeps
 * the answer's headers and the stage a failure stopped at, and xfer_probe
 * walks the way to a server (name, TCP, TLS) one stage at a time without
 * sending a request. Name resolution and the TCP connection of the probe
 * use the system's resolver and sockets, as libcurl does; the TLS stage
 * is libcurl's own handshake, so it verifies exactly as a transfer does.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "ps_version.h"
#include "xfer.h"
#include "xfer_int.h"

#define CALL_TIMEOUT_MS		15000L
#define CALL_CONNECT_MS		10000L
#define PROBE_TIMEOUT_MS	10000L
#define CERT_PROBLEM		"SSL certificate problem: "

ps_err
xfer_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return ps_errf(PS_EIO, "libcurl failed to start");
	return PS_OK;
}

const char *
xfer_stage_name(enum xfer_stage s)
{
	switch (s) {
	case XFER_STAGE_NONE: return "";
	case XFER_STAGE_URL: return "url";
	case XFER_STAGE_DNS: return "dns";
	case XFER_STAGE_CONNECT: return "connect";
	case XFER_STAGE_TLS: return "tls";
	case XFER_STAGE_HTTP: return "http";
	}
	return "";
}

/* One blocking transfer and what it collects. */
struct run {
	struct buf		*body;
	size_t			 max;
	bool			 too_big;
	bool			 have_bearer;	/* www_authenticate is one */
	struct xfer_result	*res;
	char			 errbuf[CURL_ERROR_SIZE];
};

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct run *r = arg;
	size_t len = size * n;

	if (r->body->b_len + len > r->max || buf_add(r->body, p, len) !=
	    PS_OK) {
		r->too_big = true;
		return 0;
	}
	return len;
}

void
xfer_value_copy(char *dst, size_t dstlen, const char *v, size_t vlen,
    bool whole)
{
	if (vlen >= dstlen) {
		if (whole) {
			dst[0] = '\0';
			return;
		}
		vlen = dstlen - 1;
	}
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

bool
xfer_header_split(const char *p, size_t len, size_t *nlen, const char **v,
    size_t *vlen)
{
	const char *colon = memchr(p, ':', len);

	if (colon == NULL)
		return false;
	*nlen = (size_t)(colon - p);
	*v = colon + 1;
	*vlen = len - *nlen - 1;
	while (*vlen > 0 && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*vlen)--;
	}
	while (*vlen > 0 && ((*v)[*vlen - 1] == '\r' ||
	    (*v)[*vlen - 1] == '\n' || (*v)[*vlen - 1] == ' ' ||
	    (*v)[*vlen - 1] == '\t'))
		(*vlen)--;
	return memchr(*v, '\0', *vlen) == NULL;
}

static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct run *r = arg;
	struct xfer_result *res = r->res;
	size_t len = size * n, nlen, vlen;
	const char *v;

	/* A status line starts a new answer: only the final one counts. */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		res->etag[0] = res->content_type[0] = '\0';
		res->diagnostics[0] = res->www_authenticate[0] = '\0';
		r->have_bearer = false;
		return len;
	}
	if (!xfer_header_split(p, len, &nlen, &v, &vlen))
		return len;
	if (nlen == 4 && strncasecmp(p, "etag", 4) == 0)
		xfer_value_copy(res->etag, sizeof(res->etag), v, vlen, true);
	else if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0)
		xfer_value_copy(res->content_type, sizeof(res->content_type), v,
		    vlen, true);
	else if (nlen == 16 && strncasecmp(p, "x-ms-diagnostics", 16) == 0)
		xfer_value_copy(res->diagnostics, sizeof(res->diagnostics), v,
		    vlen, false);
	else if (nlen == 16 && strncasecmp(p, "www-authenticate", 16) == 0 &&
	    !r->have_bearer) {
		/* The Bearer challenge wins; otherwise the first one. */
		if (vlen >= 6 && strncasecmp(v, "bearer", 6) == 0) {
			xfer_value_copy(res->www_authenticate,
			    sizeof(res->www_authenticate), v, vlen, false);
			r->have_bearer = true;
		} else if (res->www_authenticate[0] == '\0') {
			xfer_value_copy(res->www_authenticate,
			    sizeof(res->www_authenticate), v, vlen, false);
		}
	}
	return len;
}

bool
xfer_tls_verify_failed(CURLcode cc)
{
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		return true;
	default:
		return false;
	}
}

/* Any failure of TLS itself, verification or handshake. */
static bool
is_tls_error(CURLcode cc)
{
	return xfer_tls_verify_failed(cc) || cc == CURLE_SSL_CONNECT_ERROR ||
	    cc == CURLE_SSL_CIPHER;
}

/* The stage a transfer that ended with `cc` stopped at. */
static enum xfer_stage
stage_of(CURL *c, CURLcode cc, bool https)
{
	curl_off_t t_dns = 0, t_tcp = 0, t_tls = 0;

	switch (cc) {
	case CURLE_OK:
		return XFER_STAGE_NONE;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return XFER_STAGE_URL;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return XFER_STAGE_DNS;
	case CURLE_COULDNT_CONNECT:
		return XFER_STAGE_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		/* The timings that are still 0 name the stage it hung in. */
		curl_easy_getinfo(c, CURLINFO_NAMELOOKUP_TIME_T, &t_dns);
		curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &t_tcp);
		curl_easy_getinfo(c, CURLINFO_APPCONNECT_TIME_T, &t_tls);
		if (t_tcp == 0)
			return t_dns == 0 ? XFER_STAGE_DNS :
			    XFER_STAGE_CONNECT;
		if (https && t_tls == 0)
			return XFER_STAGE_TLS;
		return XFER_STAGE_HTTP;
	default:
		return is_tls_error(cc) ? XFER_STAGE_TLS : XFER_STAGE_HTTP;
	}
}

/*
 * Fills stage, error and tls_error of a transfer that got no complete
 * answer, and returns the code for it.
 */
static ps_err
describe_failure(CURL *c, CURLcode cc, bool https, const char *errbuf,
    size_t max, bool too_big, enum xfer_stage *stage, char *error,
    size_t errlen, char *tls_error, size_t tlslen)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
	const char *what;
	long oserr = 0;
	ps_err rc = PS_EUPSTREAM;

	if (too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		*stage = XFER_STAGE_HTTP;
		snprintf(error, errlen, "too large: the answer is larger "
		    "than %zu bytes", max);
		return PS_ELIMIT;
	}
	*stage = stage_of(c, cc, https);
	switch (*stage) {
	case XFER_STAGE_URL:
		what = "refused URL";
		rc = PS_EINVAL;
		break;
	case XFER_STAGE_DNS:
		what = "DNS";
		break;
	case XFER_STAGE_CONNECT:
		curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
		what = oserr == ECONNREFUSED ? "connection refused" :
		    "cannot connect";
		break;
	case XFER_STAGE_TLS:
		what = cc == CURLE_PEER_FAILED_VERIFICATION ?
		    "TLS verification failed" : cc == CURLE_SSL_CACERT_BADFILE ?
		    "unusable CA file" : "TLS handshake failed";
		if (strncmp(detail, CERT_PROBLEM, strlen(CERT_PROBLEM)) == 0)
			str_copy(tls_error, detail + strlen(CERT_PROBLEM),
			    tlslen);
		else
			str_copy(tls_error, detail, tlslen);
		break;
	default:
		what = "transfer failed";
		break;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		what = "timeout";
		rc = PS_ETIMEOUT;
	} else if (cc == CURLE_OUT_OF_MEMORY) {
		what = "out of memory";
		rc = PS_ENOMEM;
	}
	snprintf(error, errlen, "%s: %.200s", what, detail);
	return rc;
}

/* Frees a header list after wiping it: it may carry a bearer token. */
static void
headers_free(struct curl_slist *h)
{
	struct curl_slist *p;

	for (p = h; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/*
 * Whether `url` may be fetched: an https URL (http too with allow_http)
 * as common/url.h parses it, so that what libcurl connects to is the host
 * the rest of photosync reads in the URL. The reason is recorded when not.
 */
static ps_err
url_check(const char *url, bool allow_http)
{
	struct url u;

	return url_parse(url, allow_http ? URL_HTTP : 0, &u);
}

/*
 * The transfer both xfer_get and xfer_call make, on a fresh handle `c`.
 * Returns libcurl's code; `r` holds the rest.
 */
static CURLcode
run_transfer(CURL *c, const char *method, const char *url,
    const char *const *headers, const void *body, size_t len,
    const struct xfer_opts *o, struct run *r)
{
	struct curl_slist *hdrs = NULL;
	CURLcode cc;
	size_t i;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->allow_http ?
	    "https,http" : "https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms :
	    CALL_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CALL_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (r->res) {
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	}
	curl_easy_setopt(c, CURLOPT_USERAGENT, "photosync/" PS_VERSION);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
		hdrs = curl_slist_append(hdrs, "Expect:");
	}
	for (i = 0; headers && headers[i]; i++)
		hdrs = curl_slist_append(hdrs, headers[i]);
	if (o->reqid) {
		char *h = xasprintf("client-request-id: %s", o->reqid);

		hdrs = curl_slist_append(hdrs, h);
		hdrs = curl_slist_append(hdrs, "return-client-request-id: "
		    "true");
		free(h);
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	headers_free(hdrs);
	return cc;
}

ps_err
xfer_get(const char *url, const struct xfer_opts *o, long *status,
    struct buf *body)
{
	struct run r = { .body = body, .max = o->max_bytes ? o->max_bytes :
	    body->b_max };
	CURL *c;
	CURLcode cc;
	ps_err rc = PS_OK;

	if ((rc = url_check(url, o->allow_http)) != PS_OK)
		return rc;
	if ((c = curl_easy_init()) == NULL)
		return ps_errf(PS_ENOMEM, "cannot start a transfer");
	cc = run_transfer(c, "GET", url, NULL, NULL, 0, o, &r);
	if (r.too_big) {
		rc = ps_errf(PS_EUPSTREAM, "the answer from %s is larger than "
		    "%zu bytes", url, r.max);
	} else if (cc != CURLE_OK) {
		rc = ps_errf(PS_EUPSTREAM, "cannot fetch %s: %s", url,
		    r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
	curl_easy_cleanup(c);
	return rc;
}

ps_err
xfer_call(const char *method, const char *url, const char *const *headers,
    const void *body, size_t len, const struct xfer_opts *o,
    struct buf *out, struct xfer_result *res)
{
	struct run r = { .body = out, .max = o->max_bytes ? o->max_bytes :
	    out->b_max, .res = res };
	char *peer = NULL;
	int64_t t0 = time_mono_ms();
	CURL *c = NULL;
	CURLcode cc;
	size_t i;
	ps_err rc;

	memset(res, 0, sizeof(*res));
	res->stage = XFER_STAGE_URL;
	if (method == NULL || (strcmp(method, "GET") != 0 &&
	    strcmp(method, "POST") != 0)) {
		rc = ps_errf(PS_EINVAL, "unsupported method %s", method ?
		    method : "(none)");
		goto refused;
	}
	if (strcmp(method, "GET") == 0 && body != NULL) {
		rc = ps_errf(PS_EINVAL, "a GET carries no body");
		goto refused;
	}
	if ((rc = url_check(url, o->allow_http)) != PS_OK)
		goto refused;
	for (i = 0; headers && headers[i]; i++)
		if (strpbrk(headers[i], "\r\n") != NULL) {
			rc = ps_errf(PS_EINVAL, "a request header has a line "
			    "break");
			goto refused;
		}
	if ((c = curl_easy_init()) == NULL) {
		rc = ps_errf(PS_ENOMEM, "cannot start a transfer");
		goto refused;
	}
	cc = run_transfer(c, method, url, headers, body, len, o, &r);
	res->elapsed_ms = time_mono_ms() - t0;
	if (curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &peer) == CURLE_OK &&
	    peer)
		str_copy(res->peer, peer, sizeof(res->peer));
	if (cc == CURLE_OK && !r.too_big) {
		res->stage = XFER_STAGE_NONE;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
		rc = PS_OK;
	} else {
		/* A partial body must not pass for an answer. */
		buf_reset(out);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
		rc = describe_failure(c, cc, str_case_prefix(url, "https://"),
		    r.errbuf, r.max, r.too_big, &res->stage, res->error,
		    sizeof(res->error), res->tls_error,
		    sizeof(res->tls_error));
		rc = ps_errf(rc, "%s", res->error);
	}
	curl_easy_cleanup(c);
	return rc;
refused:
	str_copy(res->error, ps_errmsg(), sizeof(res->error));
	return rc;
}

/* ---- the probe ---- */

/* The scheme, host (no brackets) and port of `url`. */
static ps_err
probe_url(const char *url, const struct xfer_opts *o, struct xfer_probe *p)
{
	struct url u;
	ps_err rc;

	if ((rc = url_parse(url, o->allow_http ? URL_HTTP : 0, &u)) != PS_OK)
		return rc;
	p->tls = u.https;
	str_copy(p->host, u.host, sizeof(p->host));
	p->port = u.port;
	return PS_OK;
}

static void
addr_text(const struct sockaddr *sa, char *out, size_t n)
{
	const void *a = sa->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, out, (socklen_t)n) == NULL)
		str_copy(out, "?", n);
}

/* Connects to one address within `timeout_ms`; 0 or the errno. */
static int
try_connect(const struct addrinfo *ai, long timeout_ms)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0, n;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			n = poll(&pfd, 1, (int)timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			err = ETIMEDOUT;
			goto out;
		}
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) !=
		    0)
			err = n < 0 ? errno : EIO;
	}
out:
	close(fd);
	return err;
}

/* Stages 1 and 2: the name, then a TCP connection to one of its addrs. */
static ps_err
probe_route(const struct xfer_opts *o, struct xfer_probe *p)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	unsigned char probe6[16];
	char portstr[16], a[64];
	long timeout = o->timeout_ms ? o->timeout_ms : PROBE_TIMEOUT_MS;
	int64_t t0;
	int gai, err = 0;
	ps_err rc;

	p->is_ip = inet_pton(AF_INET, p->host, probe6) == 1 ||
	    inet_pton(AF_INET6, p->host, probe6) == 1;
	snprintf(portstr, sizeof(portstr), "%d", p->port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = p->is_ip ? AI_NUMERICHOST : 0;
	p->stage = XFER_STAGE_DNS;
	if ((gai = getaddrinfo(p->host, portstr, &hints, &res)) != 0) {
		snprintf(p->error, sizeof(p->error), "%.160s does not "
		    "resolve: %s", p->host, gai == EAI_SYSTEM ?
		    strerror(errno) : gai_strerror(gai));
		return ps_errf(PS_EUPSTREAM, "%s", p->error);
	}
	for (ai = res; ai; ai = ai->ai_next) {
		addr_text(ai->ai_addr, a, sizeof(a));
		if (strstr(p->addrs, a) != NULL)
			continue;
		if (strlen(p->addrs) + strlen(a) + 3 >= sizeof(p->addrs))
			break;
		if (p->addrs[0])
			strcat(p->addrs, ", ");
		strcat(p->addrs, a);
	}
	p->stage = XFER_STAGE_CONNECT;
	for (ai = res; ai; ai = ai->ai_next) {
		t0 = time_mono_ms();
		addr_text(ai->ai_addr, a, sizeof(a));
		if ((err = try_connect(ai, timeout)) == 0) {
			p->connect_ms = time_mono_ms() - t0;
			str_copy(p->peer, a, sizeof(p->peer));
			break;
		}
	}
	freeaddrinfo(res);
	if (err != 0) {
		snprintf(p->error, sizeof(p->error), "cannot connect to %s "
		    "port %d: %s", a, p->port, err == ETIMEDOUT ?
		    "timed out" : strerror(err));
		rc = ps_errf(err == ETIMEDOUT ? PS_ETIMEOUT : PS_EUPSTREAM,
		    "%s", p->error);
		return rc;
	}
	return PS_OK;
}

/* Copies the value of "Name:value" entries of the leaf certificate. */
static void
cert_field(const struct curl_slist *s, const char *name, char *out,
    size_t n)
{
	size_t len = strlen(name);

	for (; s; s = s->next)
		if (strncasecmp(s->data, name, len) == 0 &&
		    s->data[len] == ':') {
			str_copy(out, s->data + len + 1, n);
			return;
		}
}

/* Stage 3: libcurl's TLS handshake, verified, and nothing sent after. */
static ps_err
probe_tls(const char *url, const struct xfer_opts *o, struct xfer_probe *p)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_certinfo *ci = NULL;
	long timeout = o->timeout_ms ? o->timeout_ms : PROBE_TIMEOUT_MS;
	CURL *c;
	CURLcode cc;
	ps_err rc = PS_OK;

	p->stage = XFER_STAGE_TLS;
	if ((c = curl_easy_init()) == NULL)
		return ps_errf(PS_ENOMEM, "cannot start a transfer");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		enum xfer_stage st;

		rc = describe_failure(c, cc, true, errbuf, 0, false, &st,
		    p->error, sizeof(p->error), p->tls_error,
		    sizeof(p->tls_error));
		/* Whatever failed, it failed while setting TLS up. */
		p->stage = st == XFER_STAGE_DNS || st == XFER_STAGE_CONNECT ?
		    st : XFER_STAGE_TLS;
		rc = ps_errf(rc, "%s", p->error);
		goto out;
	}
	if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
	    ci->num_of_certs > 0) {
		cert_field(ci->certinfo[0], "Subject", p->cert_subject,
		    sizeof(p->cert_subject));
		cert_field(ci->certinfo[0], "Issuer", p->cert_issuer,
		    sizeof(p->cert_issuer));
		cert_field(ci->certinfo[0], "Expire date", p->cert_expires,
		    sizeof(p->cert_expires));
	}
out:
	curl_easy_cleanup(c);
	return rc;
}

ps_err
xfer_probe(const char *url, const struct xfer_opts *o, struct xfer_probe *p)
{
	ps_err rc;

	memset(p, 0, sizeof(*p));
	p->stage = XFER_STAGE_URL;
	if ((rc = probe_url(url, o, p)) != PS_OK) {
		str_copy(p->error, ps_errmsg(), sizeof(p->error));
		return rc;
	}
	if ((rc = probe_route(o, p)) != PS_OK)
		return rc;
	if (p->tls && (rc = probe_tls(url, o, p)) != PS_OK)
		return rc;
	p->stage = XFER_STAGE_NONE;
	return PS_OK;
}
