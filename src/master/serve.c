/*
 * photosync master serve: the HTTP surface of the mail server.
 *
 *   GET|POST /autodiscover/autodiscover.xml	POX (GET: the probe headers)
 *   POST     /autodiscover/autodiscover.svc	SOAP GetUserSettings
 *   GET      /autodiscover/metadata/json/1	S2S metadata
 *   GET      /ews/exchange.asmx/s/getuserphoto	REST photo, ETag, 304
 *   POST     /ews/exchange.asmx		SOAP GetUserPhoto
 *   GET|POST /ecp/...				the change-photo page (ecp.c)
 *
 * Paths match case-insensitively. Everything but the metadata document
 * and the change-photo page needs a mailbox user's Basic credentials or a
 * registered partner's S2S token; the page has its own form sign-in and
 * session cookie. Request bodies may be as large as an image upload;
 * the XML endpoints refuse anything over XML_MAX_BYTES themselves.
 * Admin commands change the store while this runs; each request reads
 * the store, and the parsed partner list is rebuilt whenever the store's
 * data version moves, so changes apply at once, without a restart. One
 * event loop; no request blocks on the network, and uploads are rendered
 * on worker threads.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "exchange/ews.h"
#include "http/server.h"
#include "master_int.h"
#include "metrics/metrics.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "xml/xml.h"

#define XML_TYPE	"text/xml; charset=utf-8"
#define PHOTO_MAX_AGE	3600
/* An image upload and its multipart form around it. */
#define MAX_BODY	((size_t)IMAGE_MAX_BYTES + 64 * 1024)

struct master_srv {
	struct master_state	*ms;
	struct event_base	*base;
	struct http_server	*http;
	struct http_tls		*tls;
	struct auth_cache	*auth_cache;
	struct master_ecp	*ecp;
	struct notifier		*notifier;
	struct master_cache	*cache;
	struct metrics_acl	*metrics_acl;
	char			*base_url;	/* https://host[:port] */
	int			 port;		/* bound */

	/* The registered partners, parsed; rebuilt when the store moves. */
	int64_t			 partners_version;
	struct s2s_metadata	*partners_md;
	struct s2s_partner	*partners;
	size_t			 n_partners;
};

/* Who is calling, once authenticated. */
struct principal {
	const char	*method;	/* "basic" or "bearer" */
	char		 user[256];	/* mailbox address, or "" (app-only) */
	char		 partner[256];	/* the partner's issuer, bearer only */
};

/* ---- partners ---- */

static void
partners_clear(struct master_srv *s)
{
	size_t i;

	for (i = 0; i < s->n_partners; i++)
		s2s_metadata_cleanup(&s->partners_md[i]);
	free(s->partners_md);
	free(s->partners);
	s->partners_md = NULL;
	s->partners = NULL;
	s->n_partners = 0;
}

static ps_err
partner_collect(void *arg, const struct store_partner *p)
{
	struct master_srv *s = arg;
	struct s2s_metadata md;

	if (s2s_metadata_parse(p->metadata, strlen(p->metadata), &md) !=
	    PS_OK) {
		log_warn(NULL, "partner.unusable", "partner=%s error=%s",
		    log_q(p->name), log_q(ps_errmsg()));
		return PS_OK;
	}
	s->partners_md = xrealloc(s->partners_md, (s->n_partners + 1) *
	    sizeof(*s->partners_md));
	s->partners_md[s->n_partners++] = md;
	return PS_OK;
}

static void
partners_refresh(struct master_srv *s)
{
	int64_t v = store_data_version(s->ms->store);
	size_t i;

	if (v == s->partners_version && s->partners_version != 0)
		return;
	partners_clear(s);
	if (store_partner_each(s->ms->store, partner_collect, s) != PS_OK)
		log_warn(NULL, "partner.load_failed", "error=%s",
		    log_q(ps_errmsg()));
	s->partners = xcalloc(s->n_partners + 1, sizeof(*s->partners));
	for (i = 0; i < s->n_partners; i++) {
		s->partners[i].issuer = s->partners_md[i].issuer;
		s->partners[i].realm = s->partners_md[i].realm;
		s->partners[i].certs = s->partners_md[i].certs;
		s->partners[i].n_certs = s->partners_md[i].n_certs;
	}
	s->partners_version = v;
	log_debug(NULL, "partner.loaded", "count=%zu", s->n_partners);
}

/* ---- authentication ---- */

static void
reply_unauthorized(struct master_srv *s, struct http_req *r,
    const char *reason)
{
	struct buf b;
	size_t i;

	/*
	 * [MS-XOAUTH] 4.6 / reference §4.3: the Bearer challenge names our
	 * principal and the issuers we trust; realm first, for TokenHelper.
	 */
	buf_init(&b, 8192);
	buf_addf(&b, "Bearer realm=\"%s\", client_id=\"%s\", "
	    "trusted_issuers=\"", s->ms->realm, S2S_EXCHANGE_ID);
	for (i = 0; i < s->n_partners; i++)
		buf_addf(&b, "%s%s", i ? "," : "", s->partners[i].issuer);
	buf_adds(&b, "\"");
	http_reply_header(r, "WWW-Authenticate", buf_str(&b));
	buf_reset(&b);
	buf_addf(&b, "Basic realm=\"%s\"", s->ms->host);
	http_reply_header(r, "WWW-Authenticate", buf_str(&b));
	if (reason) {
		/* Exchange's diagnostics header; a reason, never a token. */
		buf_reset(&b);
		buf_adds(&b, "2000001;reason=\"");
		for (; *reason; reason++)
			buf_add(&b, *reason == '"' ? "'" : reason, 1);
		buf_adds(&b, "\"");
		http_reply_header(r, "x-ms-diagnostics", buf_str(&b));
	}
	buf_cleanup(&b);
	http_reply_error(r, 401, "sign in with a mailbox's Basic credentials "
	    "or a partner's S2S token");
}

static bool
auth_basic(struct master_srv *s, struct http_req *r, const char *hdr,
    struct principal *p)
{
	struct store_mailbox m = { 0 };
	char *user = NULL, *pw = NULL;
	bool ok = false;
	int64_t now = time_now();

	/* Verified before: no store query, no password hashing. */
	if (master_cache_cred(s->cache, hdr, p->user)) {
		p->method = "basic";
		return true;
	}
	if (auth_basic_parse(hdr, &user, &pw) != PS_OK)
		goto out;
	if (store_mailbox_get(s->ms->store, user, &m) != PS_OK ||
	    m.pwhash == NULL) {
		ps_errf(PS_EAUTH, "unknown user or no password");
		goto out;
	}
	if (!auth_cache_check(s->auth_cache, m.email, pw, m.pwhash, now)) {
		if (auth_password_verify(m.pwhash, pw) != PS_OK)
			goto out;
		auth_cache_remember(s->auth_cache, m.email, pw, m.pwhash, now);
	}
	p->method = "basic";
	str_copy(p->user, m.email, sizeof(p->user));
	master_cache_cred_put(s->cache, hdr, m.email);
	ok = true;
out:
	if (!ok) {
		log_info(http_req_id(r), "auth.refused", "method=basic "
		    "user=%s reason=%s", log_q(user ? user : ""),
		    log_q(ps_errmsg()));
	}
	free(user);
	if (pw)
		xfree_secret(pw, strlen(pw));
	store_mailbox_cleanup(&m);
	return ok;
}

static bool
auth_bearer(struct master_srv *s, struct http_req *r, const char *token,
    struct principal *p)
{
	struct s2s_expect ex = {
		.client_id = S2S_EXCHANGE_ID,
		.host = s->ms->host,
		.port = s->port,
		.realm = s->ms->realm,
		.now = time_now(),
	};
	struct s2s_identity id;

	if (s2s_token_validate(token, &ex, s->partners, s->n_partners, &id) !=
	    PS_OK) {
		log_info(http_req_id(r), "auth.refused", "method=bearer "
		    "reason=%s", log_q(ps_errmsg()));
		return false;
	}
	p->method = "bearer";
	str_copy(p->user, id.app_only ? "" : id.user, sizeof(p->user));
	str_lower(p->user);
	str_copy(p->partner, id.partner, sizeof(p->partner));
	log_debug(http_req_id(r), "auth.accepted", "method=bearer "
	    "partner=%s user=%s", log_q(id.partner), log_q(p->user));
	return true;
}

/* Authenticates or answers 401; true when the handler may go on. */
static bool
authenticate(struct master_srv *s, struct http_req *r, struct principal *p)
{
	const char *hdr = http_req_header(r, "Authorization");
	bool ok;

	memset(p, 0, sizeof(*p));
	partners_refresh(s);
	if (hdr == NULL) {
		reply_unauthorized(s, r, NULL);
		return false;
	}
	if (str_case_prefix(hdr, "Bearer "))
		ok = auth_bearer(s, r, hdr + 7, p);
	else if (str_case_prefix(hdr, "Basic "))
		ok = auth_basic(s, r, hdr, p);
	else
		ok = (ps_errf(PS_EAUTH, "unsupported authorization scheme"),
		    false);
	if (!ok) {
		reply_unauthorized(s, r, ps_errmsg());
		return false;
	}
	http_req_note(r, "auth", p->method);
	http_req_note(r, "user", p->user[0] ? p->user : "(app)");
	return true;
}

/* ---- Autodiscover ---- */

static ps_err
ad_lookup(void *arg, const char *email, char **display_name)
{
	struct master_srv *s = arg;
	struct store_mailbox m;
	ps_err rc;

	if (!email_valid(email))
		return PS_ENOTFOUND;
	if ((rc = store_mailbox_get(s->ms->store, email, &m)) != PS_OK)
		return rc;
	*display_name = xstrdup(m.name[0] ? m.name : m.email);
	store_mailbox_cleanup(&m);
	return PS_OK;
}

static void
probe_headers(struct http_req *r)
{
	/* Reference §1.1: the EWS Managed API reads these on any status. */
	http_reply_header(r, "X-SOAP-Enabled", "True");
	http_reply_header(r, "X-WSSecurity-Enabled", "True");
	http_reply_header(r, "X-WSSecurity-For", "None");
	http_reply_header(r, "X-OAuth-Enabled", "True");
}

static void
handle_autodiscover(struct master_srv *s, struct http_req *r, bool soap)
{
	struct ad_server ad = {
		.base_url = s->base_url,
		.domain = s->ms->domain,
		.deployment_id = s->ms->realm,
		.lookup = ad_lookup,
		.lookup_arg = s,
	};
	struct ad_outcome oc = { 0 };
	struct principal p;
	const char *body;
	struct buf out;
	size_t len;

	if (!soap)
		probe_headers(r);
	if (!authenticate(s, r, &p))
		return;
	body = http_req_body(r, &len);
	buf_init(&out, 4 * 1024 * 1024);
	if (soap)
		autodiscover_soap(&ad, body, len, &out, &oc);
	else if (http_req_method(r) == HTTP_POST)
		autodiscover_pox(&ad, body, len, &out, &oc);
	else	/* an authenticated GET: Invalid Request, as Exchange does */
		autodiscover_pox(&ad, "", 0, &out, &oc);
	log_info(http_req_id(r), soap ? "autodiscover.soap" :
	    "autodiscover.pox", "email=%s result=%s", log_q(oc.email),
	    log_q(oc.result ? oc.result : ""));
	http_reply_buf(r, oc.status ? oc.status : 200, XML_TYPE, &out);
	buf_cleanup(&out);
}

static void
handle_metadata(struct master_srv *s, struct http_req *r)
{
	struct buf out;
	char *loc = xasprintf("%s/autodiscover/metadata/json/1", s->base_url);

	buf_init(&out, 64 * 1024);
	if (s2s_metadata_exchange(&out, s->ms->realm, s->ms->s2s_cert,
	    s->ms->s2s_cert_len, loc) != PS_OK) {
		http_reply_error(r, 500, ps_errmsg());
	} else {
		http_reply_header(r, "Cache-Control", "public, max-age=3600");
		http_reply_buf(r, 200, "application/json; charset=utf-8",
		    &out);
	}
	buf_cleanup(&out);
	free(loc);
}

/* ---- photos ---- */

/* RFC 9110 13.1.2: a comma-separated list of entity tags, or "*". */
static bool
etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = inm;

	while (p && *p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p == '"')
			p++;
		if (strncmp(p, etag, n) == 0 && (p[n] == '"' || p[n] == ',' ||
		    p[n] == '\0' || p[n] == ' '))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

static void
photo_headers(struct http_req *r, const char *etag, int64_t updated)
{
	char q[80], when[40], cc[64];

	snprintf(q, sizeof(q), "\"%s\"", etag);
	http_reply_header(r, "ETag", q);
	snprintf(cc, sizeof(cc), "private, max-age=%d", PHOTO_MAX_AGE);
	http_reply_header(r, "Cache-Control", cc);
	http_reply_header(r, "Expires", time_http(time_now() + PHOTO_MAX_AGE,
	    when));
	if (updated)
		http_reply_header(r, "Last-Modified", time_http(updated,
		    when));
}

static void
handle_rest_photo(struct master_srv *s, struct http_req *r)
{
	const char *email = http_req_query_ci(r, "email");
	const char *size = http_req_query_ci(r, "size");
	const char *inm = http_req_header(r, "If-None-Match");
	struct master_cached *ph;
	struct principal p;
	int code;
	ps_err rc;

	if (!authenticate(s, r, &p))
		return;
	if (email == NULL || !email_valid(email)) {
		http_reply_error(r, 400, "email= must be an SMTP address");
		return;
	}
	code = ews_size_index(size ? size : "");
	if (code < 0) {
		http_reply_error(r, 400, "size= must be one of HR48x48, "
		    "HR64x64, HR96x96, HR120x120, HR240x240, HR360x360, "
		    "HR432x432, HR504x504, HR648x648");
		return;
	}
	http_req_note(r, "email", email);
	http_req_note(r, "size", ews_size_name(code));
	ph = master_cache_photo(s->cache, s->ms->store, email, code, &rc);
	if (rc == PS_ENOTFOUND) {
		/* No such mailbox, or no photo: both are "no image" (§3.1). */
		http_reply_header(r, "Cache-Control", "private, max-age=60");
		http_reply_error(r, 404, "no photo for this address");
		return;
	}
	if (ph == NULL) {
		http_reply_error(r, 500, "the store failed");
		return;
	}
	photo_headers(r, ph->etag, ph->updated);
	if (inm && etag_matches(inm, ph->etag)) {
		http_req_note(r, "photo", "unchanged");
		http_reply(r, 304, NULL, NULL, 0);
		master_cached_unref(ph);
	} else {
		char side[16];

		snprintf(side, sizeof(side), "%d", ph->side);
		http_req_note(r, "side", side);
		/* The cached bytes, shared: no copy. */
		http_reply_ref(r, 200, "image/jpeg", ph->data, ph->len,
		    master_cached_unref, ph);
	}
}

static void
handle_soap_photo(struct master_srv *s, struct http_req *r)
{
	const char *inm = http_req_header(r, "If-None-Match");
	struct ews_photo_request req;
	struct store_photo ph = { 0 };
	struct principal p;
	struct buf out;
	const char *body;
	size_t len;
	int code, status = 200;
	ps_err rc;

	if (!authenticate(s, r, &p))
		return;
	body = http_req_body(r, &len);
	buf_init(&out, 4 * 1024 * 1024);
	rc = ews_parse_request(body, len, &req);
	if (rc == PS_ENOTFOUND) {
		ews_fault(&out, true, ps_errmsg());
		status = 500;
		goto reply;
	}
	if (rc != PS_OK) {
		ews_fault(&out, true, ps_errmsg());
		status = 400;
		goto reply;
	}
	http_req_note(r, "email", req.email);
	if ((code = ews_size_index(req.size)) < 0) {
		ews_error_response(&out, "ErrorInvalidPhotoSize",
		    "The requested photo size is not valid.");
		goto reply;
	}
	rc = store_photo_get(s->ms->store, req.email, code, &ph);
	if (rc == PS_ENOTFOUND) {
		/* The EWS Managed API maps 404 to PhotoOrUserNotFound. */
		ews_photo_response(&out, true, NULL, 0, NULL);
		status = 404;
	} else if (rc != PS_OK) {
		ews_fault(&out, false, "the store failed");
		status = 500;
	} else {
		photo_headers(r, ph.etag, ph.updated);
		if (inm && etag_matches(inm, ph.etag))
			ews_photo_response(&out, false, NULL, 0, NULL);
		else
			ews_photo_response(&out, true, ph.data, ph.len,
			    "image/jpeg");
	}
reply:
	http_reply_buf(r, status, XML_TYPE, &out);
	buf_cleanup(&out);
	store_photo_cleanup(&ph);
}

/* ---- routing ---- */

enum route_id {
	R_POX, R_SOAP, R_METADATA, R_REST_PHOTO, R_EWS, R_ECP, R_METRICS,
};

static const struct route {
	const char	*path;
	enum route_id	 id;
	bool		 get, post;
	bool		 xml;	/* the body is XML: at most XML_MAX_BYTES */
	enum ecp_route	 ecp;	/* for R_ECP */
	const char	*name;	/* for metrics */
} routes[] = {
	{ "/autodiscover/autodiscover.xml", R_POX, true, true, true, 0,
	    "autodiscover_pox" },
	{ "/autodiscover/autodiscover.svc", R_SOAP, false, true, true, 0,
	    "autodiscover_soap" },
	{ "/autodiscover/metadata/json/1", R_METADATA, true, false, false, 0,
	    "metadata" },
	{ "/ews/exchange.asmx/s/getuserphoto", R_REST_PHOTO, true, false,
	    false, 0, "getuserphoto_rest" },
	{ "/ews/exchange.asmx", R_EWS, false, true, true, 0,
	    "getuserphoto_soap" },
	{ "/ecp", R_ECP, true, false, false, ECP_HOME, "ecp" },
	{ "/ecp/", R_ECP, true, false, false, ECP_HOME, "ecp" },
	{ "/ecp/personalsettings/editaccount.aspx", R_ECP, true, false, false,
	    ECP_PAGE, "ecp" },
	{ "/ecp/login", R_ECP, false, true, false, ECP_LOGIN, "ecp" },
	{ "/ecp/logout", R_ECP, false, true, false, ECP_LOGOUT, "ecp" },
	{ "/ecp/photo.ashx", R_ECP, true, false, false, ECP_PHOTO, "ecp" },
	{ "/ecp/photo/upload", R_ECP, false, true, false, ECP_UPLOAD, "ecp" },
	{ "/ecp/photo/save", R_ECP, false, true, false, ECP_SAVE, "ecp" },
	{ "/ecp/photo/cancel", R_ECP, false, true, false, ECP_CANCEL, "ecp" },
	{ "/ecp/photo/remove", R_ECP, false, true, false, ECP_REMOVE, "ecp" },
	{ "/metrics", R_METRICS, true, false, false, 0, "metrics" },
};


static void
handle(struct http_req *r, void *arg)
{
	struct master_srv *s = arg;
	enum http_method m = http_req_method(r);
	const char *path = http_req_path(r);
	const struct route *rt = NULL;
	size_t i, len;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(path, routes[i].path) == 0)
			rt = &routes[i];
	if (rt == NULL) {
		http_reply_error(r, 404, "no such endpoint");
		return;
	}
	http_req_set_route(r, rt->name);
	master_cache_check(s->cache, s->ms);
	if (!((m == HTTP_GET || m == HTTP_HEAD) ? rt->get : m == HTTP_POST ?
	    rt->post : false)) {
		http_reply_header(r, "Allow", rt->get && rt->post ?
		    "GET, HEAD, POST" : rt->get ? "GET, HEAD" : "POST");
		http_reply_error(r, 405, "method not allowed here");
		return;
	}
	/* The server takes uploads; XML stays within its own limit. */
	http_req_body(r, &len);
	if (rt->xml && len > XML_MAX_BYTES) {
		http_reply_error(r, 413, "the XML body is larger than 1 MiB");
		return;
	}
	switch (rt->id) {
	case R_POX:
		handle_autodiscover(s, r, false);
		break;
	case R_SOAP:
		handle_autodiscover(s, r, true);
		break;
	case R_METADATA:
		handle_metadata(s, r);
		break;
	case R_REST_PHOTO:
		handle_rest_photo(s, r);
		break;
	case R_EWS:
		handle_soap_photo(s, r);
		break;
	case R_ECP:
		ecp_handle(s->ecp, r, rt->ecp);
		break;
	case R_METRICS:
		http_reply_metrics(r, s->metrics_acl);
		break;
	}
}

/* SIGTERM: finish the requests in flight, then end the loop. */
static void
serve_drained(void *arg)
{
	struct master_srv *s = arg;

	event_base_loopexit(s->base, NULL);
}

static void
serve_stop(void *arg)
{
	struct master_srv *s = arg;

	http_server_drain(s->http, serve_drained, s);
}

ps_err
master_serve(struct master_state *ms, const char *listen_host,
    const char *port_file, const char *metrics_allow)
{
	struct master_srv s = { .ms = ms };
	struct http_signals *sigs = NULL;
	char *cert = master_path(ms, MASTER_TLS_CERT);
	char *key = master_path(ms, MASTER_TLS_KEY);
	ps_err rc;

	signal(SIGPIPE, SIG_IGN);
	s.base = event_base_new();
	s.auth_cache = auth_cache_new(4096);
	s.cache = master_cache_new();
	if ((rc = metrics_acl_parse(metrics_allow, &s.metrics_acl)) != PS_OK ||
	    (rc = http_tls_new(cert, key, &s.tls)) != PS_OK)
		goto out;
	if ((s.ecp = ecp_new(ms, s.base)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	s.http = http_server_new(s.base, "master", handle, &s);
	http_server_buffer_logs(s.http);
	http_server_set_max_body(s.http, MAX_BODY);
	if ((rc = http_server_listen(s.http, listen_host ? listen_host :
	    ms->host, ms->port, s.tls, &s.port)) != PS_OK)
		goto out;
	s.base_url = setup_https_origin(ms->host, s.port);
	if (port_file) {
		char portbuf[16];

		snprintf(portbuf, sizeof(portbuf), "%d\n", s.port);
		if ((rc = file_write_atomic(port_file, portbuf,
		    strlen(portbuf), 0644)) != PS_OK)
			goto out;
	}
	partners_refresh(&s);
	if ((s.notifier = notifier_new(ms, s.base)) == NULL) {
		rc = PS_ECRYPTO;
		goto out;
	}
	sigs = http_signals_watch(s.base, serve_stop, &s);
	log_info(NULL, "serve.listening", "url=%s realm=%s domain=%s "
	    "partners=%zu", log_q(s.base_url), ms->realm, log_q(ms->domain),
	    s.n_partners);
	printf("photosync master: serving %s (domain %s)\n", s.base_url,
	    ms->domain);
	fflush(stdout);
	event_base_dispatch(s.base);
	rc = PS_OK;
out:
	http_signals_free(sigs);
	notifier_free(s.notifier);
	metrics_acl_free(s.metrics_acl);
	ecp_free(s.ecp);
	http_server_free(s.http);
	http_tls_free(s.tls);
	partners_clear(&s);
	master_cache_free(s.cache);
	auth_cache_free(s.auth_cache);
	event_base_free(s.base);
	free(s.base_url);
	free(cert);
	free(key);
	return rc;
}
