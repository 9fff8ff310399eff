/*
 * photosync master serve: the HTTP surface of the mail server.
 *
 *   GET|POST /autodiscover/autodiscover.xml	POX (GET: the probe headers)
 *   POST     /autodiscover/autodiscover.svc	SOAP GetUserSettings
 *   GET      /autodiscover/metadata/json/1	S2S metadata
 *   GET      /ews/exchange.asmx/s/getuserphoto	REST photo, ETag, 304
 *   POST     /ews/exchange.asmx		SOAP: GetUserPhoto, SetUserPhoto,
 *						GetFolder, FindItem,
 *						ResolveNames, ConvertId; any
 *						other operation
 *						ErrorInvalidOperation
 *   GET      /ews/exchange.asmx		a page naming the WSDL, as Exchange
 *   GET      /ews/services.wsdl, messages.xsd, types.xsd
 *   GET      /oab/<realm>/oab.xml		the offline address book's
 *						manifest (no address books)
 *   GET|HEAD|PUT|PATCH|DELETE /v1.0/...	the Graph photo API (graph.c)
 *   GET|POST /ecp/...				the change-photo page (ecp.c)
 *   GET      /ready				readiness, for load balancers
 *
 * Paths match case-insensitively. The EWS, Autodiscover and OAB
 * endpoints authenticate before anything else, whatever the method, as
 * Exchange: an unauthenticated request gets 401 and the challenges, an
 * authenticated one with a wrong method 405. Everything but the
 * metadata document and the change-photo page needs a mailbox user's
 * Basic credentials, a Kerberos ticket (HTTP Negotiate, `master kerberos
 * set`: per request, with the token of mutual authentication on the
 * answer) or a registered partner's S2S token; the page has its own
 * form sign-in and session cookie. Request bodies are small
 * (HTTP_SMALL_BODY) except where one is needed, and only after sign-in
 * (the body gate): the XML endpoints take up to XML_MAX_BYTES once the
 * caller is authenticated (EWS up to a SetUserPhoto of the upload limit
 * in base64), Graph's photo an image of up to 4 MB, the page's upload an
 * image and its form for a signed-in session. Photos set from clients
 * (SetUserPhoto, Graph) go through change.c: the page's render workers
 * and limits.
 *
 * Nothing on the event loop waits. Every store call goes through the
 * store's lanes (store/pool.h) with the request deferred; passwords are
 * checked by the sign-in guard (auth/guard.h) on its own threads; uploads
 * are rendered on worker threads. What is answered at once comes from
 * memory: the photo index and the verified credentials (cache.c) and the
 * parsed partners. Admin commands change the store while this runs: the
 * server follows the store's change feed (store/follow.h), so before a
 * request is answered from memory, every change committed before it
 * arrived has dropped exactly the keys it names (a changed partner makes
 * the partner list be read again, on the read lane, before requests go
 * on).
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/creds.h"
#include "auth/guard.h"
#include "auth/negotiate.h"
#include "auth/share.h"
#include "auth/signin.h"
#include "auth/sso.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/service.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "directory.h"
#include "dirphoto.h"
#include "directory/passwords.h"
#include "directory/schedule.h"
#include "exchange/autodiscover.h"
#include "exchange/ews.h"
#include "http/server.h"
#include "master_int.h"
#include "people.h"
#include "metrics/metrics.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "store/follow.h"
#include "store/pool.h"
#include "xml/xml.h"

#define XML_TYPE	"text/xml; charset=utf-8"
#define PHOTO_MAX_AGE	3600
#define BUSY_RETRY_S	"1"	/* Retry-After of a 503 */
#define READY_TYPE	"text/plain; charset=utf-8"

/* Who is calling, once authenticated. */
struct principal {
	const char	*method;	/* "basic" or "bearer" */
	char		 user[256];	/* mailbox address, or "" (app-only) */
	char		 partner[256];	/* the partner's issuer, bearer only */
};

enum route_id {
	R_POX, R_SOAP, R_METADATA, R_REST_PHOTO, R_EWS, R_SCHEMA, R_OAB,
	R_ECP, R_METRICS, R_READY, R_GRAPH,
};

struct route {
	const char	*path;
	enum route_id	 id;
	bool		 get, post;
	bool		 xml;	/* the body is XML: at most XML_MAX_BYTES */
	enum ecp_route	 ecp;	/* for R_ECP */
	const char	*name;	/* for metrics */
};

/*
 * A request on its way: kept while it waits (for the feed, the partner
 * list, a store lane, the guard), freed with call_end() once answered.
 */
struct master_call {
	struct master_srv	*s;
	struct http_req		*r;
	const struct route	*rt;
	struct master_call	*next, **prevp;	/* s->calls */
	struct principal	 p;
	bool			 gate;		/* for the body gate */
	void			(*authed)(struct master_call *);
	ps_err			 rc;		/* of the last store job */
	char			 err[256];	/* and its reason */
	/* a Basic credential being checked */
	struct auth_signin	 signin;
	char			 cred[AUTH_CREDS_KEY_MAX];
	uint64_t		 cred_stamp;	/* auth_creds_stamp() */
	char			 email[256];	/* the mailbox found */
	/* a photo read on an index miss */
	uint64_t		 stamp;		/* master_cache_stamp() */
	const char		*photo_email;	/* borrowed from r or ews */
	int			 code;
	struct store_photo	 sp;
	void			(*photo_then)(struct master_call *,
				    struct master_cached *);
	struct ews_request	*ews;		/* a SOAP EWS request */
	/* ResolveNames: the mailboxes read on the read lane, for an index */
	struct people_index	*people;
	uint64_t		 people_generation;
	/* a photo's tag read on an index miss (a conditional request) */
	struct store_mailbox	 mb;
	/* Autodiscover, built on the read lane */
	bool			 soap;
	const char		*body;
	size_t			 body_len;
	struct buf		 out;
	struct ad_outcome	 oc;
	/* SetUserPhoto */
	struct master_change	 change;
	/* a route's own state (graph.c), freed with the call */
	void			*ext;
	void			(*ext_free)(void *);
};


/* ---- busy and throttled answers (also the page's) ---- */

void
master_reply_busy(struct http_req *r, const char *what)
{
	/* The guard logs its own queue's refusals, at most once a minute. */
	if (strcmp(what, "signin") != 0)
		log_warn(http_req_id(r), "serve.busy", "what=%s reason=%s",
		    what, log_q(ps_errmsg()));
	metrics_add("photosync_busy_total", NULL, 1);
	http_reply_header(r, "Retry-After", BUSY_RETRY_S);
	http_reply_error(r, 503, "the server is busy: try again in a moment");
}

/* ---- requests in flight ---- */

static struct master_call *
call_new(struct master_srv *s, struct http_req *r, const struct route *rt)
{
	struct master_call *c = xcalloc(1, sizeof(*c));

	c->s = s;
	c->r = r;
	c->rt = rt;
	c->next = s->calls;
	if (s->calls)
		s->calls->prevp = &c->next;
	c->prevp = &s->calls;
	s->calls = c;
	return c;
}

/* After the answer: forgets the request and frees what it held. */
static void
call_end(struct master_call *c)
{
	if (c->next)
		c->next->prevp = c->prevp;
	*c->prevp = c->next;
	auth_signin_cleanup(&c->signin);
	store_photo_cleanup(&c->sp);
	buf_cleanup(&c->out);
	free(c->ews);
	people_index_free(c->people);
	master_change_cleanup(&c->change);
	if (c->ext_free)
		c->ext_free(c->ext);
	free(c);
}

/*
 * True (and the request released) when the client left while it waited:
 * the reply functions then only free it.
 */
static bool
call_gone(struct master_call *c)
{
	if (!http_req_gone(c->r))
		return false;
	http_reply(c->r, 503, NULL, NULL, 0);
	call_end(c);
	return true;
}

static void
call_error(struct master_call *c, int status, const char *message)
{
	http_reply_error(c->r, status, message);
	call_end(c);
}

static void
call_busy(struct master_call *c, const char *what)
{
	master_reply_busy(c->r, what);
	call_end(c);
}

/* The store failed: 503 with Retry-After while it cannot be reached. */
static void
call_store_failed(struct master_call *c)
{
	if (store_pool_up(c->s->pool)) {
		call_error(c, 500, "the store failed");
		return;
	}
	http_reply_header(c->r, "Retry-After", STORE_DOWN_RETRY_S);
	call_error(c, 503, "the store cannot be reached: try again in a "
	    "moment");
}

/* A store job's reason, kept for the loop (ps_errmsg is per thread). */
static void
call_failed(struct master_call *c, ps_err rc)
{
	c->rc = rc;
	str_copy(c->err, ps_errmsg(), sizeof(c->err));
}

/* ---- partners ---- */

static void
partners_free(struct master_partners *pt)
{
	size_t i;

	if (pt == NULL)
		return;
	for (i = 0; i < pt->n; i++)
		s2s_metadata_cleanup(&pt->md[i]);
	for (i = 0; i < pt->n_origins; i++)
		free(pt->origins[i]);
	free(pt->md);
	free(pt->list);
	free(pt->origins);
	free(pt);
}

static ps_err
partner_collect(void *arg, const struct store_partner *p)
{
	struct master_partners *pt = arg;
	struct s2s_metadata md;
	char origin[512];
	struct url u;

	/* Partners registered from a file have no origin. */
	if (p->metadata_url && url_parse(p->metadata_url, 0, &u) == PS_OK &&
	    url_origin(&u, origin, sizeof(origin)) == PS_OK) {
		pt->origins = xrealloc(pt->origins, (pt->n_origins + 1) *
		    sizeof(*pt->origins));
		pt->origins[pt->n_origins++] = xstrdup(origin);
	}
	if (s2s_metadata_parse(p->metadata, strlen(p->metadata), &md) !=
	    PS_OK) {
		log_warn(NULL, "partner.unusable", "partner=%s error=%s",
		    log_q(p->name), log_q(ps_errmsg()));
		return PS_OK;
	}
	pt->md = xrealloc(pt->md, (pt->n + 1) * sizeof(*pt->md));
	pt->md[pt->n++] = md;
	return PS_OK;
}

/*
 * Reads and parses the partner list from `st`: on the loop at start-up,
 * on the read lane afterwards. *out is set even on failure (with what
 * was read).
 */
static ps_err
partners_read(struct store *st, struct master_partners **out)
{
	struct master_partners *pt = xcalloc(1, sizeof(*pt));
	ps_err rc = store_partner_each(st, partner_collect, pt);
	size_t i;

	pt->list = xcalloc(pt->n + 1, sizeof(*pt->list));
	for (i = 0; i < pt->n; i++) {
		pt->list[i].issuer = pt->md[i].issuer;
		pt->list[i].realm = pt->md[i].realm;
		pt->list[i].certs = pt->md[i].certs;
		pt->list[i].n_certs = pt->md[i].n_certs;
	}
	*out = pt;
	return rc;
}

/* ---- following the store ---- */

/* What a batch of changes made stale, read again on the read lane. */
struct reread {
	struct master_partners	*partners;	/* NULL: the list stays */
	struct auth_share_read	*counts;	/* sign-in failures */
};

/*
 * On the read lane, right after the feed was read: a changed partner (or
 * a lost feed) means the partner list is read and parsed again here, so
 * that the requests waiting for the feed see the new list; sign-in
 * failure counts other nodes changed are read too.
 */
static void *
feed_reread(struct store *st, const struct store_change *ch, size_t n,
    bool lost)
{
	struct reread *rr = xcalloc(1, sizeof(*rr));
	struct master_partners *pt;
	bool partners = lost;
	size_t i;

	rr->counts = auth_share_reread(st, ch, n);
	for (i = 0; i < n && !partners; i++)
		partners = ch[i].kind == STORE_CHANGE_PARTNER;
	if (!partners)
		return rr;
	if (partners_read(st, &pt) != PS_OK) {
		/* The list in use stays; the next change reads it again. */
		log_warn(NULL, "partner.load_failed", "error=%s",
		    log_q(ps_errmsg()));
		partners_free(pt);
		return rr;
	}
	rr->partners = pt;
	return rr;
}

/* On the loop: drops exactly what the changes name. */
static void
feed_apply(void *arg, const struct store_change *ch, size_t n, bool lost,
    void *reread)
{
	struct master_srv *s = arg;
	struct reread *rr = reread;
	bool wake = lost;
	size_t i;

	if (lost) {
		master_cache_drop_all(s->cache);
		s->mailbox_generation++;
	}
	for (i = 0; i < n; i++) {
		switch (ch[i].kind) {
		case STORE_CHANGE_MAILBOX:
			s->mailbox_generation++;
			__attribute__((fallthrough));
		case STORE_CHANGE_PHOTO:
			/* A password, a name or a photo: the address's keys. */
			master_cache_drop(s->cache, ch[i].key);
			break;
		case STORE_CHANGE_OUTBOX:
			/* Another process queued notices: send them now. */
			wake = true;
			break;
		case STORE_CHANGE_DIRECTORY_OUTBOX:
			/* And writes to the directory: write them now. */
			dirphoto_writer_wake(s->dirphoto);
			break;
		default:
			/* Partners are reread; sessions and previews are
			 * read from the store each time. */
			break;
		}
	}
	if (rr && rr->partners) {
		partners_free(s->partners);
		s->partners = rr->partners;
		log_debug(NULL, "partner.loaded", "count=%zu", s->partners->n);
	}
	if (rr) {
		auth_share_apply(s->share, rr->counts);
		free(rr);
	}
	if (wake && s->notifier)
		notifier_wake(s->notifier);
}

static const struct store_follow_ops follow_ops = {
	.reread = feed_reread,
	.apply = feed_apply,
};

/* ---- authentication ---- */

static bool route_is_graph(const struct route *);

static void
reply_unauthorized(struct master_call *c, const char *reason)
{
	struct master_srv *s = c->s;
	struct http_req *r = c->r;
	struct buf b;
	size_t i;

	/*
	 * [MS-XOAUTH] 4.6 / reference §4.3: the Bearer challenge names our
	 * principal and the issuers we trust; realm first, for TokenHelper.
	 */
	buf_init(&b, 8192);
	buf_addf(&b, "Bearer realm=\"%s\", client_id=\"%s\", "
	    "trusted_issuers=\"", s->ms->realm, S2S_EXCHANGE_ID);
	for (i = 0; i < s->partners->n; i++)
		buf_addf(&b, "%s%s", i ? "," : "", s->partners->list[i].issuer);
	buf_adds(&b, "\"");
	http_reply_header(r, "WWW-Authenticate", buf_str(&b));
	if (s->kerberos)
		http_reply_header(r, "WWW-Authenticate", "Negotiate");
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
	if (route_is_graph(c->rt)) {
		/* The same challenges, with Graph's error body. */
		graph_reply_error(r, 401, "InvalidAuthenticationToken",
		    reason && *reason ? reason : "Sign in: no credentials, or "
		    "they were not accepted.");
		call_end(c);
		return;
	}
	call_error(c, 401, "sign in with a mailbox's Basic credentials or a "
	    "partner's S2S token");
}

/* Authenticated: the handler goes on. */
static void
authed(struct master_call *c)
{
	http_req_note(c->r, "auth", c->p.method);
	http_req_note(c->r, "user", c->p.user[0] ? c->p.user : "(app)");
	c->authed(c);
}

/* On the read lane: the mailbox's hash (NULL: none, or no password). */
static ps_err
basic_lookup(struct store *st, void *arg, const char *name, char **hash)
{
	struct master_call *c = arg;
	struct store_mailbox m;
	ps_err rc;

	if ((rc = store_mailbox_get(st, name, &m)) != PS_OK)
		return rc;
	if ((rc = master_directory_password(c->s, st, &m, &m.pwhash)) !=
	    PS_OK) {
		store_mailbox_cleanup(&m);
		return rc;
	}
	str_copy(c->email, m.email, sizeof(c->email));
	*hash = m.pwhash;
	m.pwhash = NULL;
	store_mailbox_cleanup(&m);
	return PS_OK;
}

static bool
basic_gone(void *arg)
{
	struct master_call *c = arg;

	return http_req_gone(c->r);
}

void
master_negotiate_reply(struct http_req *r, const struct auth_signin *si)
{
	char *hdr;

	if (si->neg.reply == NULL)
		return;
	hdr = xasprintf("Negotiate %s", si->neg.reply);
	http_reply_header(r, "WWW-Authenticate", hdr);
	free(hdr);
}

static void
basic_answer(void *arg, struct auth_signin *si, enum auth_signin_outcome out)
{
	struct master_call *c = arg;

	switch (out) {
	case AUTH_SIGNIN_OK:
		str_copy(c->p.user, c->email, sizeof(c->p.user));
		if (si->kind == AUTH_SIGNIN_NEGOTIATE) {
			c->p.method = "negotiate";
			master_negotiate_reply(c->r, si);
			/* A token is good once: kept only for its own
			 * request's handler, after the body gate. */
			if (c->gate)
				auth_creds_put(master_cache_creds(c->s->cache),
				    c->cred, c->email, c->cred_stamp,
				    c->p.user);
			authed(c);
			break;
		}
		c->p.method = si->kind == AUTH_SIGNIN_SSO ? "sso" : "basic";
		auth_creds_put(master_cache_creds(c->s->cache), c->cred,
		    c->email, c->cred_stamp, c->p.user);
		authed(c);
		break;
	case AUTH_SIGNIN_WRONG:
		reply_unauthorized(c, si->why);
		break;
	case AUTH_SIGNIN_WAIT:
		auth_web_retry_after(c->r, si->wait_ms);
		call_error(c, 429, "too many failed sign-ins: try again later");
		break;
	case AUTH_SIGNIN_BUSY:
		call_busy(c, si->busy_guard ? "signin" : "store");
		break;
	case AUTH_SIGNIN_FAILED:
		call_error(c, 500, "the store failed");
		break;
	case AUTH_SIGNIN_UNREACHABLE:
		call_store_failed(c);
		break;
	case AUTH_SIGNIN_GONE:
		http_reply(c->r, 503, NULL, NULL, 0);
		call_end(c);
		break;
	case AUTH_SIGNIN_UNKNOWN:
		if (si->kind == AUTH_SIGNIN_NEGOTIATE) {
			/* A principal without a mailbox, refused as such. */
			reply_unauthorized(c, "the principal's mailbox does "
			    "not exist");
			break;
		}
		call_error(c, 403, "the single sign-on proxy named no mailbox "
		    "of this server");
		break;
	}
}

/* Basic's sign-in (auth/signin.h): here, which store and which answer. */
static const struct auth_signin_ops basic_ops = {
	.lookup = basic_lookup,
	.gone = basic_gone,
	.answer = basic_answer,
};

/* On the loop: the mailbox address of a Kerberos principal. */
static ps_err
negotiate_principal(void *arg, const char *principal, char *name, size_t n)
{
	struct master_call *c = arg;

	return auth_principal_mailbox(principal, c->s->ms->kerberos_realms,
	    name, n);
}

/* Kerberos' sign-in: the mailbox as Basic's, no password, no session. */
static const struct auth_signin_ops negotiate_ops = {
	.lookup = basic_lookup,
	.principal = negotiate_principal,
	.gone = basic_gone,
	.answer = basic_answer,
};

static void
auth_basic(struct master_call *c, const char *hdr)
{
	struct master_srv *s = c->s;
	struct auth_creds *creds = master_cache_creds(s->cache);
	const char *email;
	char *user = NULL, *pw = NULL;

	/* Verified before: no store query, no password hashing. */
	auth_creds_basic_key(hdr, 0, c->cred);
	if ((email = auth_creds_get(creds, c->cred)) != NULL) {
		c->p.method = "basic";
		str_copy(c->p.user, email, sizeof(c->p.user));
		authed(c);
		return;
	}
	if (auth_basic_parse(hdr, &user, &pw) != PS_OK) {
		log_info(http_req_id(c->r), "auth.refused", "method=basic "
		    "user=\"\" reason=%s", log_q(ps_errmsg()));
		reply_unauthorized(c, ps_errmsg());
		return;
	}
	c->cred_stamp = auth_creds_stamp(creds);
	auth_signin_start(&c->signin, &basic_ops, c, s->pool, s->guard,
	    http_req_id(c->r), http_req_peer(c->r), AUTH_SIGNIN_BASIC, user,
	    pw);
}

static void
auth_bearer(struct master_call *c, const char *token)
{
	struct master_srv *s = c->s;
	struct s2s_expect ex = {
		.client_id = S2S_EXCHANGE_ID,
		.host = s->ms->host,
		.port = s->public_port,
		.realm = s->ms->realm,
		.now = time_now(),
	};
	struct s2s_identity id;

	if (s2s_token_validate(token, &ex, s->partners->list,
	    s->partners->n, &id) != PS_OK) {
		log_info(http_req_id(c->r), "auth.refused", "method=bearer "
		    "reason=%s", log_q(ps_errmsg()));
		reply_unauthorized(c, ps_errmsg());
		return;
	}
	c->p.method = "bearer";
	str_copy(c->p.user, id.app_only ? "" : id.user, sizeof(c->p.user));
	str_lower(c->p.user);
	str_copy(c->p.partner, id.partner, sizeof(c->p.partner));
	log_debug(http_req_id(c->r), "auth.accepted", "method=bearer "
	    "partner=%s user=%s", log_q(id.partner), log_q(c->p.user));
	authed(c);
}

/*
 * A Kerberos token (auth/negotiate.h): exchanged on the guard's threads,
 * for this request alone. A request whose body went through the gate is
 * authenticated twice, and its token may be accepted only once: the gate
 * keeps its verdict under a key of the request's own id and the token,
 * which the handler takes (and forgets).
 */
static void
auth_negotiate(struct master_call *c, const char *hdr)
{
	struct auth_creds *creds = master_cache_creds(c->s->cache);
	const char *email;
	char *own = xasprintf("%s %s", http_req_id(c->r), hdr);

	auth_creds_basic_key(own, 0, c->cred);
	free(own);
	if (!c->gate && (email = auth_creds_get(creds, c->cred)) != NULL) {
		c->p.method = "negotiate";
		str_copy(c->p.user, email, sizeof(c->p.user));
		auth_creds_forget(creds, c->cred);
		authed(c);
		return;
	}
	c->cred_stamp = auth_creds_stamp(creds);
	/* It answers `c`, maybe before it returns. */
	auth_signin_negotiate_start(&c->signin, &negotiate_ops, c, c->s->pool,
	    c->s->guard, c->s->kerberos, http_req_id(c->r),
	    http_req_peer(c->r), false, xstrdup(hdr));
}

/*
 * Authenticates, then `then` (now, or once the credential was checked
 * off the loop), or answers 401, 429 or 503.
 */
static void
authenticate(struct master_call *c, void (*then)(struct master_call *))
{
	const char *hdr = http_req_header(c->r, "Authorization");
	const char *named, *email;

	c->authed = then;
	/* A single sign-on proxy's identity header first (auth/sso.h). */
	switch (auth_sso_request(c->s->sso, c->r, &named)) {
	case AUTH_SSO_BAD:
		call_error(c, 400, "refused: the single sign-on proxy sent its "
		    "identity header more than once, or empty");
		return;
	case AUTH_SSO_USER:
		/* Found before: no store query (ended when it changes). */
		auth_creds_sso_key(named, 0, c->cred);
		if ((email = auth_creds_get(master_cache_creds(c->s->cache),
		    c->cred)) != NULL) {
			c->p.method = "sso";
			str_copy(c->p.user, email, sizeof(c->p.user));
			authed(c);
			return;
		}
		c->cred_stamp = auth_creds_stamp(master_cache_creds(
		    c->s->cache));
		auth_signin_sso_start(&c->signin, &basic_ops, c, c->s->pool,
		    http_req_id(c->r), http_req_peer(c->r), false,
		    xstrdup(named));
		return;
	case AUTH_SSO_NONE:
	case AUTH_SSO_IGNORED:
		break;
	}
	if (hdr == NULL)
		reply_unauthorized(c, NULL);
	else if (str_case_prefix(hdr, "Bearer "))
		auth_bearer(c, hdr + 7);
	else if (str_case_prefix(hdr, "Basic "))
		auth_basic(c, hdr);
	else if (c->s->kerberos && str_case_prefix(hdr, "Negotiate"))
		auth_negotiate(c, hdr);
	else
		reply_unauthorized(c, "unsupported authorization scheme");
}

/* ---- Autodiscover ---- */

static ps_err
ad_lookup(void *arg, const char *email, char **display_name)
{
	struct store *st = arg;
	struct store_mailbox m;
	ps_err rc;

	if (!email_valid(email))
		return PS_ENOTFOUND;
	if ((rc = store_mailbox_get(st, email, &m)) != PS_OK)
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

/*
 * On the read lane, the whole answer: the exchange module looks each
 * address up through a callback while it builds the document, and a SOAP
 * request may name many addresses, so resolving them first would mean
 * parsing the request twice; the lane's thread has its own store for the
 * callback, and the XML parser may run on any thread.
 */
static void
ad_run(struct store *st, void *arg)
{
	struct master_call *c = arg;
	struct master_srv *s = c->s;
	struct ad_server ad = {
		.base_url = s->base_url,
		.domain = s->ms->domain,
		.deployment_id = s->ms->realm,
		.lookup = ad_lookup,
		.lookup_arg = st,
	};

	if (c->soap)
		autodiscover_soap(&ad, c->body, c->body_len, &c->out, &c->oc);
	else
		autodiscover_pox(&ad, c->body, c->body_len, &c->out, &c->oc);
}

static void
ad_done(void *arg)
{
	struct master_call *c = arg;

	if (call_gone(c))
		return;
	if (c->soap)
		log_info(http_req_id(c->r), "autodiscover.soap", "email=%s "
		    "result=%s users=%zu emails=%s", log_q(c->oc.email),
		    log_q(c->oc.result ? c->oc.result : ""), c->oc.users,
		    log_q(c->oc.emails));
	else
		log_info(http_req_id(c->r), "autodiscover.pox", "email=%s "
		    "result=%s", log_q(c->oc.email),
		    log_q(c->oc.result ? c->oc.result : ""));
	http_reply_buf(c->r, c->oc.status ? c->oc.status : 200, XML_TYPE,
	    &c->out);
	call_end(c);
}

static void
autodiscover_go(struct master_call *c)
{
	if (c->soap || http_req_method(c->r) == HTTP_POST) {
		c->body = http_req_body(c->r, &c->body_len);
	} else {
		/* An authenticated GET: Invalid Request, as Exchange does. */
		c->body = "";
		c->body_len = 0;
	}
	buf_init(&c->out, 4 * 1024 * 1024);
	if (store_pool_read(c->s->pool, ad_run, ad_done, c) != PS_OK)
		call_busy(c, "store");
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

/*
 * What `c`'s caller may see of `email`'s photo `ph`: a photo hidden from
 * it is answered as none (a reference to a new empty entry; the index
 * keeps the photo, for its owner).
 */
static struct master_cached *
photo_for_caller(struct master_call *c, const char *email,
    struct master_cached *ph)
{
	struct master_cached *none;

	if (ph == NULL || ph->data == NULL ||
	    !master_photo_hidden_from(ph->hidden, c->p.user, email))
		return ph;
	master_cached_unref(ph);
	none = xcalloc(1, sizeof(*none));
	none->refs = 1;
	http_req_note(c->r, "photo", "hidden");
	return none;
}

/* Tells the owner of a hidden photo that others do not see it. */
static void
photo_hidden_header(struct http_req *r, bool hidden)
{
	if (hidden)
		http_reply_header(r, "X-Photosync-Photo-Hidden", "1");
}

static void
photo_read_run(struct store *st, void *arg)
{
	struct master_call *c = arg;
	ps_err rc = store_photo_get(st, c->photo_email, c->code, &c->sp);

	if (rc != PS_OK)
		call_failed(c, rc);
}

static void
photo_read_done(void *arg)
{
	struct master_call *c = arg;
	struct master_cached *ph = NULL;

	if (call_gone(c))
		return;
	if (c->rc == PS_OK || c->rc == PS_ENOTFOUND)
		ph = master_cache_photo_put(c->s->cache, c->photo_email,
		    c->code, c->stamp, c->rc == PS_OK ? &c->sp : NULL);
	else
		log_warn(http_req_id(c->r), "serve.store_failed", "what=%s "
		    "error=%s", "photo", log_q(c->err));
	store_photo_cleanup(&c->sp);
	c->photo_then(c, photo_for_caller(c, c->photo_email, ph));
}

/*
 * The photo of `email` at `code` for `then`: from the index at once, or
 * read on the read lane. `then` gets a reference (NULL: the store
 * failed; data NULL: no photo) and answers.
 */
/* Reads the photo of `email` at `code` on the read lane, for `then`. */
static void
photo_read(struct master_call *c, const char *email, int code,
    void (*then)(struct master_call *, struct master_cached *))
{
	struct master_srv *s = c->s;

	c->photo_email = email;
	c->code = code;
	c->photo_then = then;
	c->rc = PS_OK;
	c->stamp = master_cache_stamp(s->cache);
	if (store_pool_read(s->pool, photo_read_run, photo_read_done, c) !=
	    PS_OK)
		call_busy(c, "store");
}

static void
photo_find(struct master_call *c, const char *email, int code,
    void (*then)(struct master_call *, struct master_cached *))
{
	struct master_cached *ph = master_cache_photo(c->s->cache, email,
	    code);

	if (ph)
		then(c, photo_for_caller(c, email, ph));
	else
		photo_read(c, email, code, then);
}

static void
rest_photo_answer(struct master_call *c, struct master_cached *ph)
{
	struct http_req *r = c->r;
	const char *inm = http_req_header(r, "If-None-Match");
	char side[16];

	if (ph == NULL) {
		call_store_failed(c);
		return;
	}
	if (ph->data == NULL) {
		/* No such mailbox, or no photo: both are "no image" (§3.1). */
		master_cached_unref(ph);
		http_reply_header(r, "Cache-Control", "private, max-age=60");
		call_error(c, 404, "no photo for this address");
		return;
	}
	photo_headers(r, ph->etag, ph->updated);
	photo_hidden_header(r, ph->hidden);
	if (http_etag_match(inm, ph->etag)) {
		http_req_note(r, "photo", "unchanged");
		http_reply(r, 304, NULL, NULL, 0);
		master_cached_unref(ph);
	} else {
		snprintf(side, sizeof(side), "%d", ph->side);
		http_req_note(r, "side", side);
		/* The cached bytes, shared: no copy. */
		http_reply_ref(r, 200, "image/jpeg", ph->data, ph->len,
		    master_cached_unref, ph);
	}
	call_end(c);
}

/*
 * A conditional request whose tag matches: 304 from the tag alone, the
 * photo's bytes neither read nor kept. True when answered.
 */
static bool
rest_photo_unchanged(struct master_call *c, const char *email,
    const struct master_tag *t)
{
	const char *inm = http_req_header(c->r, "If-None-Match");

	if (t == NULL || !t->has_photo || !http_etag_match(inm, t->etag) ||
	    master_photo_hidden_from(t->hidden, c->p.user, email))
		return false;
	photo_headers(c->r, t->etag, t->updated);
	photo_hidden_header(c->r, t->hidden);
	http_req_note(c->r, "photo", "unchanged");
	http_reply(c->r, 304, NULL, NULL, 0);
	call_end(c);
	return true;
}

static void
tag_read_run(struct store *st, void *arg)
{
	struct master_call *c = arg;
	ps_err rc = store_mailbox_get(st, c->photo_email, &c->mb);

	if (rc != PS_OK)
		call_failed(c, rc);
}

static void
tag_read_done(void *arg)
{
	struct master_call *c = arg;
	struct master_tag t = { 0 };

	if (call_gone(c))
		return;
	if (c->rc == PS_OK || c->rc == PS_ENOTFOUND) {
		t.has_photo = c->rc == PS_OK && c->mb.etag[0] != '\0';
		str_copy(t.etag, c->mb.etag, sizeof(t.etag));
		t.updated = c->mb.photo_updated;
		t.hidden = c->mb.photo_hidden;
		master_cache_tag_put(c->s->cache, c->photo_email, c->stamp, &t);
	}
	store_mailbox_cleanup(&c->mb);
	if (!rest_photo_unchanged(c, c->photo_email, &t))
		photo_read(c, c->photo_email, c->code, rest_photo_answer);
}

static void
rest_photo_go(struct master_call *c)
{
	struct http_req *r = c->r;
	const char *email = http_req_query_ci(r, "email");
	const char *size = http_req_query_ci(r, "size");
	const struct master_tag *t;
	struct master_cached *ph;
	int code;

	if (email == NULL || !email_valid(email)) {
		call_error(c, 400, "email= must be an SMTP address");
		return;
	}
	code = ews_size_index(size ? size : "");
	if (code < 0) {
		call_error(c, 400, "size= must be one of HR48x48, HR64x64, "
		    "HR96x96, HR120x120, HR240x240, HR360x360, HR432x432, "
		    "HR504x504, HR648x648");
		return;
	}
	http_req_note(r, "email", email);
	http_req_note(r, "size", ews_size_name(code));
	if ((ph = master_cache_photo(c->s->cache, email, code)) != NULL) {
		rest_photo_answer(c, photo_for_caller(c, email, ph));
		return;
	}
	if (http_req_header(r, "If-None-Match") == NULL) {
		photo_read(c, email, code, rest_photo_answer);
		return;
	}
	/* Asked whether it changed: the photo's tag may be all it takes. */
	if ((t = master_cache_tag(c->s->cache, email)) != NULL) {
		if (!rest_photo_unchanged(c, email, t))
			photo_read(c, email, code, rest_photo_answer);
		return;
	}
	c->photo_email = email;
	c->code = code;
	c->rc = PS_OK;
	c->stamp = master_cache_stamp(c->s->cache);
	if (store_pool_read(c->s->pool, tag_read_run, tag_read_done, c) !=
	    PS_OK)
		call_busy(c, "store");
}

static void
soap_photo_answer(struct master_call *c, struct master_cached *ph)
{
	struct http_req *r = c->r;
	const char *inm = http_req_header(r, "If-None-Match");
	int status = 200;

	buf_init(&c->out, 4 * 1024 * 1024);
	if (ph == NULL && !store_pool_up(c->s->pool)) {
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		ews_fault(&c->out, false, "the store cannot be reached: try "
		    "again in a moment");
		status = 503;
	} else if (ph == NULL) {
		ews_fault(&c->out, false, "the store failed");
		status = 500;
	} else if (ph->data == NULL) {
		/* The EWS Managed API maps 404 to PhotoOrUserNotFound. */
		ews_photo_response(&c->out, true, NULL, 0, NULL);
		status = 404;
	} else {
		photo_headers(r, ph->etag, ph->updated);
		photo_hidden_header(r, ph->hidden);
		if (http_etag_match(inm, ph->etag))
			ews_photo_response(&c->out, false, NULL, 0, NULL);
		else
			ews_photo_response(&c->out, true, ph->data, ph->len,
			    "image/jpeg");
	}
	master_cached_unref(ph);
	http_reply_buf(r, status, XML_TYPE, &c->out);
	call_end(c);
}

/* SetUserPhoto's outcome (change.c) as EWS answers it. */
static void
set_photo_done(struct master_change *ch, void *arg)
{
	struct master_call *c = arg;
	struct http_req *r = c->r;
	const char *code = NULL;
	int status = 200;

	if (call_gone(c))
		return;
	if (ch->email[0])
		http_req_note(r, "email", ch->email);
	buf_init(&c->out, 64 * 1024);
	switch (ch->result) {
	case MASTER_CHANGE_OK:
	case MASTER_CHANGE_NO_PHOTO:
		break;
	case MASTER_CHANGE_NOT_OWNER:
		/* As Exchange: another mailbox's photo is not the caller's. */
		code = "ErrorAccessDenied";
		break;
	case MASTER_CHANGE_TOO_LARGE:
		code = "ErrorMessageSizeExceeded";
		break;
	case MASTER_CHANGE_BAD_IMAGE:
		code = "ErrorInvalidRequest";
		break;
	case MASTER_CHANGE_BUSY:
		http_reply_header(r, "Retry-After", BUSY_RETRY_S);
		code = "ErrorServerBusy";
		break;
	case MASTER_CHANGE_MALFORMED:
		ews_fault(&c->out, true, ch->message);
		status = 400;
		goto out;
	case MASTER_CHANGE_OTHER_OPERATION:
		ews_fault(&c->out, true, ch->message);
		status = 500;
		goto out;
	case MASTER_CHANGE_STORE_DOWN:
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		ews_fault(&c->out, false, "the store cannot be reached: try "
		    "again in a moment");
		status = 503;
		goto out;
	case MASTER_CHANGE_STORE_FAILED:
		ews_fault(&c->out, false, "the store failed");
		status = 500;
		goto out;
	}
	if (code) {
		char *msg = xasprintf("%s%s. The photo has not changed.",
		    ch->result == MASTER_CHANGE_BAD_IMAGE ? "That file cannot "
		    "be used as a photo: " : "", ch->message);

		http_req_note(r, "error", code);
		ews_set_photo_response(&c->out, code, msg);
		free(msg);
	} else {
		ews_set_photo_response(&c->out, NULL, NULL);
	}
out:
	http_reply_buf(r, status, XML_TYPE, &c->out);
	call_end(c);
}

/*
 * SetUserPhoto: for the signed-in mailbox alone (a partner's app-only
 * token has none); the request is read, and the image rendered, off the
 * loop (change.c).
 */
static void
set_photo_go(struct master_call *c)
{
	struct master_change *ch = &c->change;
	size_t len;

	http_req_set_route(c->r, "setuserphoto_soap");
	ch->srv = c->s;
	ch->req_id = http_req_id(c->r);
	ch->via = "ews";
	str_copy(ch->owner, c->p.user, sizeof(ch->owner));
	ch->body = http_req_body(c->r, &len);
	ch->len = len;
	ch->soap = true;
	ch->max_image = IMAGE_MAX_BYTES;
	ch->done = set_photo_done;
	ch->arg = c;
	master_change_set(ch);
}

/* ---- EWS over SOAP: one dispatch by operation ---- */

static void
soap_reply(struct master_call *c, int status)
{
	http_reply_buf(c->r, status, XML_TYPE, &c->out);
	call_end(c);
}

static void
ews_get_user_photo(struct master_call *c)
{
	int code;

	http_req_note(c->r, "email", c->ews->photo.email);
	if ((code = ews_size_index(c->ews->photo.size)) < 0) {
		ews_error_response(&c->out, "ErrorInvalidPhotoSize",
		    "The requested photo size is not valid.");
		soap_reply(c, 200);
		return;
	}
	buf_cleanup(&c->out);
	photo_find(c, c->ews->photo.email, code, soap_photo_answer);
}

/*
 * GetFolder and FindItem: the caller's own mailbox, which holds no items
 * (answered from the request alone). A partner's app-only token names
 * the mailbox in the first DistinguishedFolderId.
 */
static void
ews_folders(struct master_call *c)
{
	const char *mailbox = c->p.user;

	if (mailbox[0] == '\0')
		mailbox = c->ews->folder.ids[0].mailbox;
	if (mailbox[0] == '\0')
		ews_operation_error(&c->out, c->ews->op_name,
		    "ErrorMissingEmailAddress", "When making a request with "
		    "an account that does not have a mailbox, you must "
		    "specify the mailbox primary SMTP address for any "
		    "distinguished folder Ids.");
	else if (c->ews->op == EWS_OP_FIND_ITEM)
		ews_find_item_response(&c->out, &c->ews->folder, mailbox);
	else
		ews_folder_response(&c->out, &c->ews->folder, mailbox);
	soap_reply(c, 200);
}

static ps_err
resolve_collect(void *arg, const struct store_mailbox *m)
{
	people_index_add(arg, m->email, m->name);
	return PS_OK;
}

/*
 * On the read lane: every mailbox (not disabled) into a new index of
 * them, for this query and, when no change came meanwhile, the next.
 */
static void
resolve_run(struct store *st, void *arg)
{
	struct master_call *c = arg;
	ps_err rc;

	c->people = people_index_new();
	if ((rc = store_mailbox_each(st, resolve_collect, c->people)) !=
	    PS_OK) {
		call_failed(c, rc);
		return;
	}
	people_index_seal(c->people);
}

/*
 * On the loop: an address that is a mailbox's is that one person, as
 * Exchange resolves an exact address; otherwise every mailbox whose
 * address, name or a word of its name starts with the entry, at most
 * EWS_RESOLVE_MAX, in order of name (people.h).
 */
static void
resolve_answer(struct master_call *c, const struct people_index *ix)
{
	struct people_hit *hits = xcalloc(EWS_RESOLVE_MAX, sizeof(*hits));
	struct ews_person *people = xcalloc(EWS_RESOLVE_MAX,
	    sizeof(*people));
	char count[24];
	size_t i, n;
	bool more;

	n = people_index_find(ix, c->ews->resolve.query,
	    c->ews->resolve.exact, hits, EWS_RESOLVE_MAX, &more);
	for (i = 0; i < n; i++) {
		people[i].email = hits[i].email;
		people[i].name = hits[i].name;
	}
	snprintf(count, sizeof(count), "%zu%s", n, more ? "+" : "");
	http_req_note(c->r, "found", count);
	ews_resolve_response(&c->out, people, n, more,
	    c->ews->resolve.full_contact);
	free(people);
	free(hits);
	soap_reply(c, 200);
}

static void
resolve_done(void *arg)
{
	struct master_call *c = arg;
	struct master_srv *s = c->s;

	/* Read with no change after it: kept for the next queries. */
	if (c->rc == PS_OK && c->people_generation ==
	    s->mailbox_generation) {
		people_index_set_generation(c->people, c->people_generation);
		people_index_free(s->people);
		s->people = c->people;
		c->people = NULL;
	}
	if (call_gone(c))
		return;
	if (c->rc != PS_OK) {
		log_warn(http_req_id(c->r), "serve.store_failed", "what=%s "
		    "error=%s", "resolve", log_q(c->err));
		call_store_failed(c);
		return;
	}
	resolve_answer(c, c->people ? c->people : s->people);
}

static void
ews_resolve_names(struct master_call *c)
{
	const struct ews_resolve_request *rs = &c->ews->resolve;

	/* The budget of the query: a longer entry finds no one. */
	if (rs->too_long || rs->query[0] == '\0') {
		http_req_note(c->r, "found", rs->too_long ? "refused" : "0");
		if (rs->too_long)
			ews_operation_error(&c->out, "ResolveNames",
			    "ErrorNameResolutionNoResults", "The name to "
			    "resolve is longer than 255 bytes.");
		else
			ews_resolve_response(&c->out, NULL, 0, false, false);
		soap_reply(c, 200);
		return;
	}
	/* The index of the mailboxes, while no change came after it. */
	if (c->s->people && people_index_generation(c->s->people) ==
	    c->s->mailbox_generation) {
		resolve_answer(c, c->s->people);
		return;
	}
	c->rc = PS_OK;
	c->people_generation = c->s->mailbox_generation;
	if (store_pool_read(c->s->pool, resolve_run, resolve_done, c) !=
	    PS_OK)
		call_busy(c, "store");
}

/*
 * POST /EWS/Exchange.asmx: the operation is the Body's element; each
 * operation the master offers has its handler here, and any other gets
 * Exchange's ErrorInvalidOperation as a SOAP answer with status 200.
 * The request's log line names the operation (op=).
 */
static void
soap_go(struct master_call *c)
{
	struct http_req *r = c->r;
	const char *body;
	size_t len;
	ps_err rc;

	body = http_req_body(r, &len);
	/* Larger than any other operation's: read off the loop. */
	if (len > XML_MAX_BYTES) {
		set_photo_go(c);
		return;
	}
	buf_init(&c->out, 4 * 1024 * 1024);
	c->ews = xcalloc(1, sizeof(*c->ews));
	rc = ews_parse(body, len, c->ews);
	if (c->ews->op_name[0])
		http_req_note(r, "op", c->ews->op_name);
	if (rc != PS_OK) {
		/* Malformed: a client's fault, and nothing was done. */
		http_req_note(r, "error", ps_errmsg());
		ews_fault(&c->out, true, ps_errmsg());
		soap_reply(c, 400);
		return;
	}
	switch (c->ews->op) {
	case EWS_OP_GET_USER_PHOTO:
		ews_get_user_photo(c);
		break;
	case EWS_OP_GET_FOLDER:
	case EWS_OP_FIND_ITEM:
		ews_folders(c);
		break;
	case EWS_OP_RESOLVE_NAMES:
		ews_resolve_names(c);
		break;
	case EWS_OP_CONVERT_ID:
		/* The ids are the caller's own folders' (DavMail reads its
		 * address from the answer). */
		ews_convert_response(&c->out, &c->ews->convert, c->p.user);
		soap_reply(c, 200);
		break;
	case EWS_OP_SET_USER_PHOTO:
		/* Read again, whole, off the loop (change.c). */
		buf_cleanup(&c->out);
		set_photo_go(c);
		break;
	case EWS_OP_OTHER:
		ews_operation_error(&c->out, c->ews->op_name,
		    "ErrorInvalidOperation", "This operation is not offered "
		    "by this server: it serves user photos only.");
		soap_reply(c, 200);
		break;
	}
}

/*
 * The service's description (services.wsdl, messages.xsd, types.xsd),
 * to signed-in users as Exchange.
 */
static void
schema_go(struct master_call *c)
{
	const char *name = strrchr(http_req_path(c->r), '/') + 1, *doc;
	size_t len;

	if ((doc = ews_schema(name, &len)) == NULL) {
		call_error(c, 404, "no such document");
		return;
	}
	http_reply_header(c->r, "Cache-Control", "private, max-age=3600");
	http_reply(c->r, 200, XML_TYPE, doc, len);
	call_end(c);
}

/*
 * A signed-in GET of /EWS/Exchange.asmx: Exchange answers 200 with its
 * web service framework's page saying that this is a service and where
 * its WSDL is; this is ours, in our words.
 */
static void
ews_page_go(struct master_call *c)
{
	buf_init(&c->out, 4096);
	buf_adds(&c->out, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><title>Exchange Web Services</title>"
	    "</head>\n<body><h1>Exchange Web Services</h1>\n<p>This is the "
	    "EWS endpoint of this photo server: clients POST SOAP requests "
	    "here. The operations it answers are described in <a href=\"");
	xml_add_text(&c->out, c->s->base_url);
	buf_adds(&c->out, "/EWS/Services.wsdl\">");
	xml_add_text(&c->out, c->s->base_url);
	buf_adds(&c->out, "/EWS/Services.wsdl</a>.</p>\n</body></html>\n");
	http_reply_buf(c->r, 200, "text/html; charset=utf-8", &c->out);
	call_end(c);
}

/*
 * GET /OAB/<realm>/oab.xml: the offline address book's manifest
 * ([MS-OXWOAB]), which lists no address books: the master keeps photos,
 * not an address book; clients search with ResolveNames.
 */
static void
oab_go(struct master_call *c)
{
	static const char manifest[] =
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<OAB>\n"
	    "</OAB>\n";

	http_reply_header(c->r, "Cache-Control", "private, max-age=3600");
	http_reply(c->r, 200, XML_TYPE, manifest, sizeof(manifest) - 1);
	call_end(c);
}

/*
 * GET /ready, for load balancers (no sign-in): 200 "ready" while this
 * node takes work (it listens once its indexes are loaded, and its store
 * answers a read on the read lane), else 503 and one word: "draining"
 * after SIGTERM, "store" when the store cannot be reached, "busy" when
 * the read lane's queue is full. A 200 is logged at debug level only: a
 * balancer asks every few seconds.
 */
static void
ready_answer(void *arg, ps_err rc, const char *message)
{
	struct http_req *r = arg;

	if (rc == PS_OK) {
		http_req_quiet(r);
		http_reply(r, 200, READY_TYPE, "ready\n", 6);
		return;
	}
	http_req_note(r, "error", message);
	http_reply(r, 503, READY_TYPE, "store\n", 6);
}

static void
handle_ready(struct master_srv *s, struct http_req *r)
{
	if (s->draining) {
		http_reply(r, 503, READY_TYPE, "draining\n", 9);
		return;
	}
	http_req_defer(r);
	if (store_pool_probe(s->pool, ready_answer, r) != PS_OK)
		http_reply(r, 503, READY_TYPE, "busy\n", 5);
}

/* ---- for the Graph routes (graph.c) ---- */

struct http_req *
master_call_req(struct master_call *c)
{
	return c->r;
}

struct master_srv *
master_call_srv(struct master_call *c)
{
	return c->s;
}

const char *
master_call_user(const struct master_call *c)
{
	return c->p.user;
}

void
master_call_set_ext(struct master_call *c, void *ext, void (*ext_free)(void *))
{
	c->ext = ext;
	c->ext_free = ext_free;
}

void *
master_call_ext(struct master_call *c)
{
	return c->ext;
}

void
master_call_end(struct master_call *c)
{
	call_end(c);
}

bool
master_call_gone(struct master_call *c)
{
	return call_gone(c);
}

void
master_call_busy(struct master_call *c)
{
	call_busy(c, "store");
}

void
master_call_photo(struct master_call *c, const char *email, int code,
    void (*then)(struct master_call *, struct master_cached *))
{
	photo_find(c, email, code, then);
}

void
master_photo_headers(struct http_req *r, const char *etag, int64_t updated)
{
	photo_headers(r, etag, updated);
}

/* ---- routing ---- */

static const struct route routes[] = {
	{ "/autodiscover/autodiscover.xml", R_POX, true, true, true, 0,
	    "autodiscover_pox" },
	{ "/autodiscover/autodiscover.svc", R_SOAP, false, true, true, 0,
	    "autodiscover_soap" },
	{ "/autodiscover/metadata/json/1", R_METADATA, true, false, false, 0,
	    "metadata" },
	{ "/ews/exchange.asmx/s/getuserphoto", R_REST_PHOTO, true, false,
	    false, 0, "getuserphoto_rest" },
	{ "/ews/exchange.asmx", R_EWS, true, true, true, 0,
	    "getuserphoto_soap" },
	{ "/ews/services.wsdl", R_SCHEMA, true, false, false, 0, "ews_schema" },
	{ "/ews/messages.xsd", R_SCHEMA, true, false, false, 0, "ews_schema" },
	{ "/ews/types.xsd", R_SCHEMA, true, false, false, 0, "ews_schema" },
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
	{ "/ecp/photo/visibility", R_ECP, false, true, false, ECP_VISIBILITY,
	  "ecp" },
	{ "/metrics", R_METRICS, true, false, false, 0, "metrics" },
	{ "/ready", R_READY, true, false, false, 0, "ready" },
};

/* The offline address book's manifest: its path holds the realm. */
static const struct route oab_route = {
	NULL, R_OAB, true, false, false, 0, "oab",
};

/*
 * Routes that authenticate before they look at the method, as Exchange's
 * EWS, Autodiscover and OAB directories do.
 */
static bool
route_signin_first(const struct route *rt)
{
	switch (rt->id) {
	case R_POX:
	case R_SOAP:
	case R_REST_PHOTO:
	case R_EWS:
	case R_SCHEMA:
	case R_OAB:
		return true;
	default:
		return false;
	}
}

/* False (and 405 with Allow answered) for a method the route refuses. */
static bool
route_method_ok(const struct route *rt, struct http_req *r)
{
	enum http_method m = http_req_method(r);

	if ((m == HTTP_GET || m == HTTP_HEAD) ? rt->get : m == HTTP_POST ?
	    rt->post : false)
		return true;
	http_reply_header(r, "Allow", rt->get && rt->post ?
	    "GET, HEAD, POST" : rt->get ? "GET, HEAD" : "POST");
	http_reply_error(r, 405, "method not allowed here");
	return false;
}

/* Signed in: the method, then the route's handler. */
static void
signed_in(struct master_call *c)
{
	if (!route_method_ok(c->rt, c->r)) {
		call_end(c);
		return;
	}
	switch (c->rt->id) {
	case R_POX:
	case R_SOAP:
		autodiscover_go(c);
		break;
	case R_REST_PHOTO:
		rest_photo_go(c);
		break;
	case R_EWS:
		if (http_req_method(c->r) == HTTP_POST)
			soap_go(c);
		else
			ews_page_go(c);
		break;
	case R_SCHEMA:
		schema_go(c);
		break;
	case R_OAB:
		oab_go(c);
		break;
	default:
		call_error(c, 404, "no such endpoint");
		break;
	}
}

/* Every path under /v1.0/: the Graph photo API, routed by graph.c. */
static const struct route graph_route = {
	"/v1.0/", R_GRAPH, true, false, false, 0, "graph",
};

static bool
route_is_graph(const struct route *rt)
{
	return rt != NULL && rt->id == R_GRAPH;
}

/* The largest body a route takes (after sign-in). */
static size_t
route_body_max(const struct route *rt)
{
	if (rt->id == R_EWS)
		return EWS_SET_PHOTO_MAX(IMAGE_MAX_BYTES);
	if (rt->id == R_GRAPH)
		return GRAPH_PHOTO_MAX;
	return XML_MAX_BYTES;
}

/* Authenticated at the gate: the body may be read. */
static void
gate_open(struct master_call *c)
{
	http_req_body_allow(c->r, route_body_max(c->rt));
	call_end(c);
}

/* The Graph routes' handler, once authenticated. */
static void
graph_go(struct master_call *c)
{
	graph_handle(c);
}

/* The route's handler, once what is kept in memory is current. */
static void
call_dispatch(struct master_call *c)
{
	if (c->gate) {
		authenticate(c, gate_open);
		return;
	}
	switch (c->rt->id) {
	case R_POX:
		probe_headers(c->r);
		authenticate(c, signed_in);
		break;
	case R_SOAP:
		c->soap = true;
		authenticate(c, signed_in);
		break;
	case R_REST_PHOTO:
	case R_EWS:
	case R_SCHEMA:
	case R_OAB:
		authenticate(c, signed_in);
		break;
	case R_GRAPH:
		authenticate(c, graph_go);
		break;
	case R_ECP:
		/* The page keeps its own state for the request. */
		ecp_handle(c->s->ecp, c->r, c->rt->ecp);
		call_end(c);
		break;
	default:
		call_error(c, 404, "no such endpoint");
		break;
	}
}

/*
 * On with a request once every change committed before it arrived has
 * been applied (also the follower's resume callback).
 */
static void
call_current(void *arg)
{
	struct master_call *c = arg;

	if (call_gone(c))
		return;
	call_dispatch(c);
}

/* Until then the request waits, deferred. */
static void
call_go(struct master_call *c)
{
	struct master_srv *s = c->s;

	if (!store_follower_current(s->follower)) {
		store_follower_wait(s->follower, call_current, c);
		return;
	}
	call_dispatch(c);
}

static const struct route *
route_find(struct master_srv *s, struct http_req *r)
{
	const char *path = http_req_path(r);
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(path, routes[i].path) == 0)
			return &routes[i];
	if (strcmp(path, s->oab_path) == 0)
		return &oab_route;
	if (strncmp(path, graph_route.path, strlen(graph_route.path)) == 0)
		return &graph_route;
	return NULL;
}

/*
 * The body gate: a body over HTTP_SMALL_BODY is read only where one is
 * needed and only after sign-in, so that no one can make the server hold
 * large bodies without credentials. The XML endpoints: once the caller
 * is authenticated (a valid token, a Basic credential verified before or
 * checked now through the guard), up to XML_MAX_BYTES. The page's upload:
 * for a signed-in session, an image and its form (ecp.c). Anything else:
 * 413 before the body is read.
 */
static void
gate(struct http_req *r, void *arg)
{
	struct master_srv *s = arg;
	const struct route *rt = route_find(s, r);
	struct master_call *c;

	if (rt)
		http_req_set_route(r, rt->name);
	if (rt && rt->id == R_ECP && rt->ecp == ECP_UPLOAD &&
	    http_req_method(r) == HTTP_POST) {
		ecp_gate(s->ecp, r);
		return;
	}
	if (rt && rt->id == R_GRAPH) {
		/* A photo being set: larger than 4 MB is refused unread. */
		if (!graph_gate(r))
			return;
	} else if (rt == NULL || !rt->xml || http_req_method(r) !=
	    HTTP_POST) {
		http_reply_error(r, 413, "this endpoint takes no body this "
		    "large");
		return;
	}
	c = call_new(s, r, rt);
	c->gate = true;
	call_go(c);
}

static void
handle(struct http_req *r, void *arg)
{
	struct master_srv *s = arg;
	const struct route *rt = route_find(s, r);
	size_t len;

	if (rt == NULL) {
		http_reply_error(r, 404, "no such endpoint");
		return;
	}
	http_req_set_route(r, rt->name);
	/*
	 * Those that sign in first check the method once signed in;
	 * Graph's methods are graph.c's to check, after sign-in.
	 */
	if (rt->id != R_GRAPH && !route_signin_first(rt) &&
	    !route_method_ok(rt, r))
		return;
	/* The server takes uploads; XML stays within its own limit. */
	http_req_body(r, &len);
	if (rt->xml && len > route_body_max(rt)) {
		http_reply_error(r, 413, "the XML body is larger than allowed");
		return;
	}
	if (rt->id == R_READY) {
		handle_ready(s, r);
		return;
	}
	/* Nothing kept in memory: answered at once. */
	if (rt->id == R_METRICS) {
		struct store_pool_health health;

		metrics_set("photosync_store_queued", NULL,
		    (double)store_pool_pending(s->pool));
		store_pool_health(s->pool, &health);
		metrics_set("photosync_store_up", NULL, health.up ? 1 : 0);
		metrics_set("photosync_store_unreachable_total", NULL,
		    (double)health.unreachable);
		metrics_set(
		    "photosync_store_last_failure_timestamp_seconds", NULL,
		    (double)health.last_failure);
		metrics_set("photosync_image_queued", NULL,
		    (double)ecp_uploads_pending(s->ecp));
		metrics_set("photosync_auth_pending", NULL,
		    (double)auth_guard_pending(s->guard));
		metrics_set("photosync_auth_throttled", NULL,
		    (double)auth_guard_throttled(s->guard));
		http_reply_metrics(r, s->metrics_acl);
		return;
	}
	if (rt->id == R_METADATA) {
		handle_metadata(s, r);
		return;
	}
	call_go(call_new(s, r, rt));
}

/* At the very end of a stop: whatever still waits gets 503. */
static void
calls_abort(struct master_srv *s)
{
	struct master_call *c, *next;

	/* call_error() frees `c` and only `c`; no call starts meanwhile. */
	for (c = s->calls; c; c = next) {
		next = c->next;
		http_reply_header(c->r, "Retry-After", BUSY_RETRY_S);
		call_error(c, 503, "the server is stopping");
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

	s->draining = true;
	http_server_drain(s->http, serve_drained, s);
}

/*
 * SIGHUP: the TLS certificate and key files are read again (two small
 * local files, on the loop as at start-up: an admin's rare act), then
 * the sign-in settings (`sso set`, `kerberos set`) on the store's read
 * lane, where the Kerberos keytab is read too. All of it is put in use
 * together on the loop, or nothing when any part fails. Connections
 * accepted from then on get the new certificate, open ones keep theirs;
 * exchanges running with the old Kerberos acceptor hold it until done.
 */
struct reload {
	struct master_srv	*s;
	struct master_state	 set;		/* the sign-in fields only */
	struct auth_sso		*sso;
	struct auth_negotiate	*kerberos;
	ps_err			 rc;
	char			 why[512];	/* rc's sentence */
};

static ps_err kerberos_load(const struct master_state *,
	    struct auth_negotiate **);

/* On the read lane. */
static void
reload_read(struct store *st, void *arg)
{
	struct reload *rl = arg;

	if ((rl->rc = master_signin_read(st, &rl->set)) != PS_OK ||
	    (rl->rc = auth_sso_new(rl->set.sso_header, rl->set.sso_proxies,
	    &rl->sso)) != PS_OK ||
	    (rl->rc = kerberos_load(&rl->set, &rl->kerberos)) != PS_OK)
		str_copy(rl->why, ps_errmsg(), sizeof(rl->why));
}

static void
reload_done(void *arg)
{
	struct reload *rl = arg;
	struct master_srv *s = rl->s;
	struct master_state *ms = s->ms;

	if (s->sigs == NULL || s->draining) {
		/* Stopping: nothing is put in use. */
		http_tls_drop(s->tls);
		goto out;
	}
	if (rl->rc != PS_OK) {
		http_tls_drop(s->tls);
		ps_errf(rl->rc, "%s", rl->why);
		http_signals_reloaded(s->sigs, rl->rc);
		goto out;
	}
	http_tls_swap(s->tls);
	auth_sso_free(s->sso);
	s->sso = rl->sso;
	rl->sso = NULL;
	auth_negotiate_free(s->kerberos);
	s->kerberos = rl->kerberos;
	rl->kerberos = NULL;
	str_copy(ms->sso_header, rl->set.sso_header, sizeof(ms->sso_header));
	str_copy(ms->sso_proxies, rl->set.sso_proxies,
	    sizeof(ms->sso_proxies));
	str_copy(ms->kerberos_keytab, rl->set.kerberos_keytab,
	    sizeof(ms->kerberos_keytab));
	str_copy(ms->kerberos_service, rl->set.kerberos_service,
	    sizeof(ms->kerberos_service));
	str_copy(ms->kerberos_realms, rl->set.kerberos_realms,
	    sizeof(ms->kerberos_realms));
	http_signals_reloaded(s->sigs, PS_OK);
out:
	auth_sso_free(rl->sso);
	auth_negotiate_free(rl->kerberos);
	free(rl);
}

static void
serve_reload(void *arg)
{
	struct master_srv *s = arg;
	struct reload *rl;
	ps_err rc;

	if ((rc = http_tls_reread(s->tls)) != PS_OK) {
		http_signals_reloaded(s->sigs, rc);
		return;
	}
	rl = xcalloc(1, sizeof(*rl));
	rl->s = s;
	if ((rc = store_pool_read(s->pool, reload_read, reload_done, rl)) !=
	    PS_OK) {
		free(rl);
		http_tls_drop(s->tls);
		http_signals_reloaded(s->sigs, rc);
	}
}

/* The acceptor of `master kerberos set`'s keytab, or NULL when off. */
static ps_err
kerberos_load(const struct master_state *ms, struct auth_negotiate **out)
{
	ps_err rc;

	*out = NULL;
	if (ms->kerberos_keytab[0] == '\0')
		return PS_OK;
	if ((rc = auth_negotiate_new(ms->kerberos_keytab,
	    ms->kerberos_service, out)) != PS_OK)
		return ps_errf(rc, "Kerberos sign-in (master kerberos set): %s",
		    ps_errmsg());
	return PS_OK;
}

ps_err
master_serve(struct master_state *ms, const char *listen_host,
    int listen_port, const char *port_file, const char *metrics_allow)
{
	struct master_srv s = { .ms = ms };
	struct http_signals *sigs = NULL;
	struct store_follower *follower;
	char *cert = master_path(ms, MASTER_TLS_CERT);
	char *key = master_path(ms, MASTER_TLS_KEY);
	char *db = store_locate(ms->dir, MASTER_DB);
	int64_t head;
	ps_err rc;

	signal(SIGPIPE, SIG_IGN);
	s.base = event_base_new();
	s.cache = master_cache_new();
	if ((rc = metrics_acl_parse(metrics_allow, &s.metrics_acl)) != PS_OK ||
	    (rc = auth_sso_new(ms->sso_header, ms->sso_proxies, &s.sso)) !=
	    PS_OK ||
	    (rc = kerberos_load(ms, &s.kerberos)) != PS_OK ||
	    (rc = http_tls_new(cert, key, &s.tls)) != PS_OK ||
	    (rc = store_pool_open(s.base, db, STORE_MASTER, &s.pool)) !=
	    PS_OK)
		goto out;
	if ((s.guard = auth_guard_new(s.base, NULL)) == NULL ||
	    (s.ecp = ecp_new(&s)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	s.dir_passwords = dir_passwords_new();
	auth_guard_set_external(s.guard, dir_passwords_check,
	    s.dir_passwords);
	/* Without the store's key the node throttles alone (docs/scaling.md). */
	if (auth_share_new(s.base, ms->store, s.pool, s.guard, &s.share) !=
	    PS_OK)
		log_warn(NULL, "auth.share_off", "error=%s", log_q(ps_errmsg()));
	metrics_declare("photosync_store_queued", "gauge",
	    "Store jobs queued or running on the store's lanes.");
	metrics_declare("photosync_store_up", "gauge",
	    "1 when the last store job reached the store, 0 when not.");
	metrics_declare("photosync_store_unreachable_total", "counter",
	    "Store jobs that ended without reaching the store.");
	metrics_declare("photosync_store_last_failure_timestamp_seconds",
	    "gauge", "When a store job last failed to reach the store "
	    "(Unix time; 0: never).");
	metrics_declare("photosync_busy_total", "counter",
	    "Requests answered 503 because a queue was full.");
	metrics_declare("photosync_image_queued", "gauge",
	    "Uploads rendering or waiting: the change-photo page's, "
	    "SetUserPhoto's and Graph's.");
	s.http = http_server_new(s.base, "master", handle, &s);
	http_server_buffer_logs(s.http);
	http_server_set_body_gate(s.http, gate, &s);
	http_server_set_error_body(s.http, graph_error_body, NULL);
	if ((rc = http_server_listen(s.http, listen_host ? listen_host :
	    ms->host, listen_port ? listen_port : ms->port, s.tls,
	    &s.port)) != PS_OK)
		goto out;
	/* Behind a load balancer, the URLs given out are the balancer's. */
	s.public_port = listen_port && ms->port ? ms->port : s.port;
	s.base_url = setup_https_origin(ms->host, s.public_port);
	s.oab_path = xasprintf("/oab/%s/oab.xml", ms->realm);
	str_lower(s.oab_path);
	/*
	 * Where the feed stands before the partners are read: a change
	 * committed meanwhile is then read from the feed, not missed.
	 */
	if ((rc = store_feed_head(ms->store, &head)) != PS_OK)
		goto out;
	if (partners_read(ms->store, &s.partners) != PS_OK)
		log_warn(NULL, "partner.load_failed", "error=%s",
		    log_q(ps_errmsg()));
	s.follower = store_follower_new(s.base, s.pool, db, head, &follow_ops,
	    &s);
	if ((s.notifier = notifier_new(&s)) == NULL) {
		rc = PS_ECRYPTO;
		goto out;
	}
	if ((s.directory = dir_schedule_start(s.base, db, STORE_MASTER,
	    "mailboxes", master_directory_ops_for, NULL)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	if ((s.dirphoto = dirphoto_writer_start(s.base, db)) == NULL) {
		rc = PS_EIO;
		goto out;
	}
	if (port_file) {
		char portbuf[16];

		snprintf(portbuf, sizeof(portbuf), "%d\n", s.port);
		if ((rc = file_write_atomic(port_file, portbuf,
		    strlen(portbuf), 0600)) != PS_OK)
			goto out;
	}
	sigs = http_signals_watch(s.base, serve_stop, &s);
	s.sigs = sigs;
	http_signals_on_reload(sigs, serve_reload, &s);
	log_info(NULL, "serve.listening", "url=%s realm=%s domain=%s "
	    "partners=%zu", log_q(s.base_url), ms->realm, log_q(ms->domain),
	    s.partners->n);
	printf("photosync master: serving %s (domain %s)\n", s.base_url,
	    ms->domain);
	fflush(stdout);
	/* The port answers: the kernel queues connections from here on. */
	service_notify("READY=1");
	event_base_dispatch(s.base);
	rc = PS_OK;
out:
	/* A reload still on the read lane finds it gone (reload_done). */
	s.sigs = NULL;
	http_signals_free(sigs);
	dir_schedule_stop(s.directory);
	dirphoto_writer_stop(s.dirphoto);
	s.dirphoto = NULL;
	/*
	 * Stopping: uploads being rendered finish, then the notifier stops;
	 * the follower's waiting requests go on; the store's lanes run what
	 * is queued to its end (those jobs' callbacks still find everything
	 * above); the guard answers none of the checks it still has, so what
	 * still waits is answered here.
	 */
	ecp_drain(s.ecp);
	notifier_free(s.notifier);
	s.notifier = NULL;
	follower = s.follower;
	s.follower = NULL;
	store_follower_free(follower);
	store_pool_free(s.pool);
	s.pool = NULL;
	auth_share_free(s.share);
	s.share = NULL;
	auth_guard_free(s.guard);
	s.guard = NULL;
	/* After the guard, whose threads check with it. */
	dir_passwords_free(s.dir_passwords);
	s.dir_passwords = NULL;
	calls_abort(&s);
	ecp_free(s.ecp);
	metrics_acl_free(s.metrics_acl);
	auth_sso_free(s.sso);
	auth_negotiate_free(s.kerberos);
	http_server_free(s.http);
	http_tls_free(s.tls);
	partners_free(s.partners);
	graph_ids_free(s.graph_ids);
	people_index_free(s.people);
	master_cache_free(s.cache);
	event_base_free(s.base);
	free(s.base_url);
	free(s.oab_path);
	free(cert);
	free(key);
	free(db);
	return rc;
}
