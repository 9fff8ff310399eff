/*
 * photosync portal diagnose: one user's sync, step by step.
 *
 *   user, settings -> dns, tcp, tls (the Autodiscover host) ->
 *   issuer, metadata, signing-cert -> token -> verdict, autodiscover
 *   (SOAP GetUserSettings) -> photo (GetUserPhoto HR648x648) -> image
 *
 * Each step prints PASS, FAIL with the most likely fix in one sentence,
 * or SKIP when a step it needs failed. The calls are a sync's: built and
 * read by the same module (mastercall.c: Autodiscover URL, body, token,
 * headers, limits, what an answer means, redirects followed) and verified
 * as TLS is for a sync; but blocking, one at a time, without
 * If-None-Match, and nothing is stored: no sync state, no photo, no
 * cache. The store is only read. Tokens are never printed; the
 * request id sent as client-request-id is, to find the calls in the
 * master's log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "account.h"
#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "diagnose.h"
#include "mastercall.h"
#include "exchange/autodiscover.h"
#include "http/server.h"
#include "image/image.h"
#include "pki/pki.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "setup/diag.h"
#include "setup/setup.h"
#include "token.h"
#include "xfer/xfer.h"


struct dg {
	struct diag		 d;
	struct portal_state	*ps;
	struct webapp_ctx	 app;		/* settings and signing key */
	struct store_user	 user;
	char			 reqid[17];
	char			*ad_url;
	struct xfer_opts	 xo;
	struct xfer_probe	 probe;
	/* what the steps found */
	bool			 user_ok, route_ok, issuer_ok, token_ok;
	bool			 accepted, ad_ok, photo_ok;
	struct portal_issuers issuers;
	struct portal_token_pick pick;
	struct store_issuer	 issuer;
	char			*token;
	char			*photos_url;
	char			 mailbox[256];	/* where Autodiscover ended */
	struct buf		 photo;
	char			 fix[2048];
};

/* ---- helpers ---- */

static void
sha1_hex(const unsigned char sha1[20], char out[41])
{
	hex_encode(sha1, 20, out);
}

/* The value of `key="..."` in a header value, or "" (cut to fit). */
static void
header_param(const char *h, const char *key, char *out, size_t n)
{
	size_t klen = strlen(key);
	const char *p = h, *end;

	out[0] = '\0';
	while ((p = strstr(p, key)) != NULL) {
		if ((p == h || p[-1] == ' ' || p[-1] == ',' || p[-1] == ';') &&
		    strncmp(p + klen, "=\"", 2) == 0) {
			p += klen + 2;
			if ((end = strchr(p, '"')) == NULL)
				end = p + strlen(p);
			if ((size_t)(end - p) >= n)
				end = p + n - 1;
			memcpy(out, p, (size_t)(end - p));
			out[end - p] = '\0';
			return;
		}
		p += klen;
	}
}

/* Whether `item` is one of the comma-separated `list`. */
static bool
list_has(const char *list, const char *item)
{
	size_t n = strlen(item);
	const char *p = list;

	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncasecmp(p, item, n) == 0 && (p[n] == '\0' ||
		    p[n] == ',' || p[n] == ' '))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* The "fix" for an issuer that is out of date. */
static const char *
issuer_fix(struct dg *g, const char *what)
{
	if (g->issuer.metadata_url)
		snprintf(g->fix, sizeof(g->fix), "%s: run photosync portal "
		    "issuer refresh --dir %s --name %s", what, g->ps->dir,
		    g->issuer.name);
	else
		snprintf(g->fix, sizeof(g->fix), "%s: add it again from the "
		    "master's metadata, photosync portal issuer add --dir %s "
		    "--name %s --metadata-url https://%s/autodiscover/"
		    "metadata/json/1", what, g->ps->dir, g->issuer.name,
		    g->pick.authority);
	return g->fix;
}

/*
 * Explains the master's 401: its x-ms-diagnostics reason, and from its
 * Bearer challenge whether it trusts this web application at all and
 * which realm it has. Fills `why` and g->fix.
 */
static void
explain_401(struct dg *g, const struct xfer_result *r, char *why, size_t n)
{
	char reason[400], realm[80], trusted[1200], me[128];
	bool trusts;

	header_param(r->diagnostics, "reason", reason, sizeof(reason));
	header_param(r->www_authenticate, "realm", realm, sizeof(realm));
	header_param(r->www_authenticate, "trusted_issuers", trusted,
	    sizeof(trusted));
	snprintf(me, sizeof(me), "%s@%s", S2S_SHAREPOINT_ID, g->app.w.realm);
	trusts = list_has(trusted, me);
	snprintf(why, n, "the master refused the token (HTTP 401): %s",
	    reason[0] ? reason : r->diagnostics[0] ? r->diagnostics :
	    "no reason given (no x-ms-diagnostics header)");
	if (strncasecmp(r->www_authenticate, "bearer", 6) == 0 && !trusts) {
		snprintf(g->fix, sizeof(g->fix), "the master does not trust "
		    "this web application (%s; it trusts %.300s): at the "
		    "master run photosync master partner add --dir D --name "
		    "SharePoint --metadata-url %s/_layouts/15/metadata/json/1",
		    me, trusted[0] ? trusted : "no portal", g->app.w.url);
	} else if (strstr(reason, "another realm") || (realm[0] &&
	    strcmp(realm, g->pick.realm) != 0)) {
		char what[300];

		snprintf(what, sizeof(what), "the issuer's realm is out of "
		    "date (the master's is %s, tokens are minted for %s)",
		    realm[0] ? realm : "another", g->pick.realm);
		issuer_fix(g, what);
	} else if (strstr(reason, "expired") || strstr(reason,
	    "not yet valid")) {
		snprintf(g->fix, sizeof(g->fix), "the clocks of the portal "
		    "and the master differ by more than 5 minutes: "
		    "synchronise them (NTP)");
	} else if (strstr(reason, "aud is not for host") ||
	    strstr(reason, "another port")) {
		snprintf(g->fix, sizeof(g->fix), "the master knows itself by "
		    "another name: set the host and port of its published "
		    "URLs with photosync portal webapp set --dir %s "
		    "--autodiscover-domain HOST:PORT", g->ps->dir);
	} else if (strstr(reason, "x5t") || strstr(reason, "signature") ||
	    strstr(reason, "partner")) {
		snprintf(g->fix, sizeof(g->fix), "the master holds an old copy "
		    "of this web application's metadata: at the master run "
		    "photosync master partner refresh --dir D NAME");
	} else {
		snprintf(g->fix, sizeof(g->fix), "look for request id %s in "
		    "the master's log (grep req=%s)", g->reqid, g->reqid);
	}
}

/* The fix for a call that got no answer, by the stage it stopped at. */
static const char *
call_fix(struct dg *g, const struct xfer_result *r, const char *url)
{
	switch (r->stage) {
	case XFER_STAGE_DNS:
	case XFER_STAGE_CONNECT:
		snprintf(g->fix, sizeof(g->fix), "make %s reachable from the "
		    "portal (is the master running?)", url);
		break;
	case XFER_STAGE_TLS:
		snprintf(g->fix, sizeof(g->fix), "give the CA that signed the "
		    "master's certificate with photosync portal webapp set "
		    "--dir %s --ca-file F", g->ps->dir);
		break;
	default:
		snprintf(g->fix, sizeof(g->fix), "the master did not answer "
		    "properly: look for request id %s in its log", g->reqid);
	}
	return g->fix;
}

/* ---- steps ---- */

static void
step_user(struct dg *g, const char *who)
{
	char account[ACCOUNT_MAX];
	bool is_email;
	ps_err rc;

	if (account_parse(who, account, &is_email) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "user", "give DOMAIN\\user, "
		    "i:0#.w|DOMAIN\\user or an e-mail address", "\"%s\": %s",
		    who, ps_errmsg());
		return;
	}
	rc = is_email ? store_user_get_by_email(g->ps->store, account,
	    &g->user) : store_user_get(g->ps->store, account, &g->user);
	if (rc != PS_OK) {
		snprintf(g->fix, sizeof(g->fix), "add the user: photosync "
		    "portal user add --dir %s 'DOMAIN\\user' --email ADDRESS",
		    g->ps->dir);
		diag_step(&g->d, DIAG_FAIL, "user", rc == PS_ENOTFOUND ?
		    g->fix : NULL, "%s: %s", account, rc == PS_ENOTFOUND ?
		    "no such user in the portal" : ps_errmsg());
		return;
	}
	diag_step(&g->d, DIAG_PASS, "user", NULL, "%s <%s>", g->user.account,
	    g->user.email);
	g->user_ok = true;
}

static void
step_settings(struct dg *g)
{
	const struct store_webapp *w = &g->app.w;

	if (mcall_autodiscover_url(w, g->user.email, &g->ad_url) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "settings", "give the user an "
		    "address with a domain, or set --autodiscover-domain",
		    "%s", ps_errmsg());
		return;
	}
	g->xo.ca_file = w->ca_file[0] ? w->ca_file : NULL;
	g->xo.timeout_ms = MCALL_TIMEOUT_MS;
	g->xo.reqid = g->reqid;
	if (!w->photo_import) {
		snprintf(g->fix, sizeof(g->fix), "turn it on with photosync "
		    "portal webapp set --dir %s --photo-import on", g->ps->dir);
		diag_step(&g->d, DIAG_FAIL, "settings", g->fix, "photo import "
		    "is off: the portal never asks the master (Autodiscover "
		    "would be %s)", g->ad_url);
		return;
	}
	if (w->ca_file[0] && access(w->ca_file, R_OK) != 0) {
		snprintf(g->fix, sizeof(g->fix), "give a readable PEM file "
		    "with photosync portal webapp set --dir %s --ca-file F",
		    g->ps->dir);
		diag_step(&g->d, DIAG_FAIL, "settings", g->fix, "the CA file "
		    "%s cannot be read", w->ca_file);
		return;
	}
	diag_step(&g->d, DIAG_PASS, "settings", NULL, "photo import on; "
	    "Autodiscover at %s (%s); CA %s; OAuth over http %s", g->ad_url,
	    w->autodiscover_domain[0] ? "--autodiscover-domain" :
	    "autodiscover.<mail domain>", w->ca_file[0] ? w->ca_file :
	    "the system's", w->allow_oauth_http ? "allowed" : "refused");
}

static void
step_route(struct dg *g)
{
	char dns[300], conn[600], ca[900];
	struct diag_route_fix fx = { dns, conn, ca };

	xfer_probe(g->ad_url, &g->xo, &g->probe);
	snprintf(dns, sizeof(dns), "correct the name's DNS record, or point "
	    "the portal at the master with photosync portal webapp set "
	    "--dir %s --autodiscover-domain HOST[:PORT]", g->ps->dir);
	snprintf(conn, sizeof(conn), "nothing answers at %.100s:%d: start the "
	    "master (photosync master serve), open the way through any "
	    "firewall, or correct the port with photosync portal webapp set "
	    "--dir %s --autodiscover-domain HOST:PORT", g->probe.host,
	    g->probe.port, g->ps->dir);
	snprintf(ca, sizeof(ca), "give the CA that signed the master's "
	    "certificate with photosync portal webapp set --dir %s --ca-file "
	    "F%s%s%s", g->ps->dir, g->xo.ca_file ? " (" : "",
	    g->xo.ca_file ? g->xo.ca_file : "", g->xo.ca_file ?
	    " did not sign it)" : "");
	g->route_ok = diag_route(&g->d, "", &g->probe, &fx);
}

static void
step_issuer(struct dg *g)
{
	ps_err rc;

	if ((rc = portal_issuers_load(g->ps->store, &g->issuers)) ==
	    PS_OK)
		rc = portal_token_pick(&g->issuers, g->ad_url, &g->pick);
	if (rc != PS_OK && g->pick.n_issuers == 0 && rc == PS_EAUTH) {
		snprintf(g->fix, sizeof(g->fix), "trust the master: photosync "
		    "portal issuer add --dir %s --name Exchange --metadata-url "
		    "https://%s/autodiscover/metadata/json/1 [--ca-file F]",
		    g->ps->dir, g->pick.authority);
		diag_step(&g->d, DIAG_FAIL, "issuer", g->fix, "no trusted "
		    "token issuer: the portal cannot mint a token");
		return;
	}
	if (rc != PS_OK || store_issuer_get(g->ps->store, g->pick.name,
	    &g->issuer) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "issuer", NULL, "%s",
		    ps_errmsg());
		return;
	}
	diag_step(&g->d, DIAG_PASS, "issuer", NULL, "%s: %s, realm %s (%s)",
	    g->issuer.name, g->issuer.issuer, g->issuer.realm,
	    g->pick.by_host ? "its metadata URL is on the Autodiscover host" :
	    g->pick.n_issuers > 1 ? "the first issuer; none has its "
	    "metadata URL on the Autodiscover host" : "the only issuer");
	g->issuer_ok = true;
}

/* Whether `url` is on the host and port `p` probed. */
static bool
same_authority(const char *url, const struct xfer_probe *p)
{
	char *host = NULL;
	int port;
	bool same;

	if (setup_https_url_host(url, &host, &port) != PS_OK)
		return false;
	same = strcasecmp(host, p->host) == 0 && port == p->port;
	free(host);
	return same;
}

/* Whether two documents name the same issuer, realm and certificates. */
static bool
same_metadata(const struct s2s_metadata *a, const struct s2s_metadata *b,
    char *why, size_t n)
{
	char ha[41], hb[41];
	size_t i, k;
	bool found;

	if (strcmp(a->realm, b->realm) != 0) {
		snprintf(why, n, "the realm changed: stored %s, the master "
		    "now publishes %s", a->realm, b->realm);
		return false;
	}
	if (strcasecmp(a->issuer, b->issuer) != 0) {
		snprintf(why, n, "the issuer changed: stored %s, the master "
		    "now publishes %s", a->issuer, b->issuer);
		return false;
	}
	for (i = 0; i < b->n_certs; i++) {
		found = false;
		for (k = 0; k < a->n_certs && !found; k++)
			found = memcmp(a->certs[k].sha1, b->certs[i].sha1,
			    20) == 0;
		if (!found) {
			sha1_hex(a->n_certs ? a->certs[0].sha1 :
			    b->certs[i].sha1, ha);
			sha1_hex(b->certs[i].sha1, hb);
			snprintf(why, n, "the master's signing certificate "
			    "changed: stored thumbprint %s, published %s",
			    ha, hb);
			return false;
		}
	}
	return true;
}

static void
step_metadata(struct dg *g, struct s2s_metadata *stored)
{
	struct s2s_metadata live = { 0 };
	struct xfer_result r;
	struct xfer_opts xo = g->xo;
	struct buf doc;
	char *url, ago[32], why[300];

	buf_init(&doc, S2S_MAX_METADATA);
	if (!g->issuer_ok) {
		diag_step(&g->d, DIAG_SKIP, "metadata", NULL, "no issuer");
		goto out;
	}
	if (s2s_metadata_parse(g->issuer.metadata, strlen(g->issuer.metadata),
	    stored) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "metadata", issuer_fix(g, "the "
		    "stored document is unusable"), "the stored metadata of "
		    "%s does not parse: %s", g->issuer.name, ps_errmsg());
		goto out;
	}
	diag_ago(time_now() - g->issuer.fetched, ago);
	if (!g->route_ok && g->issuer.metadata_url &&
	    same_authority(g->issuer.metadata_url, &g->probe)) {
		/* The dns, tcp or tls step said why already. */
		diag_step(&g->d, DIAG_SKIP, "metadata", NULL, "stored %s ago; "
		    "%s is on the master that cannot be reached", ago,
		    g->issuer.metadata_url);
		goto out;
	}
	if (g->issuer.metadata_url) {
		url = xstrdup(g->issuer.metadata_url);
	} else if (g->route_ok) {
		/* Registered from a file: ask the master where it lives. */
		url = xasprintf("https://%s/autodiscover/metadata/json/1",
		    g->pick.authority);
	} else {
		diag_step(&g->d, DIAG_SKIP, "metadata", NULL, "registered "
		    "from a file %s ago; the master cannot be reached to "
		    "compare", ago);
		goto out;
	}
	xo.max_bytes = S2S_MAX_METADATA;
	xo.reqid = NULL;
	if (xfer_call("GET", url, NULL, NULL, 0, &xo, &doc, &r) != PS_OK) {
		snprintf(g->fix, sizeof(g->fix), "make %s reachable from the "
		    "portal and verifiable with the web application's CA "
		    "(the stored copy is used meanwhile)", url);
		diag_step(&g->d, DIAG_FAIL, "metadata", g->fix, "stored %s "
		    "ago; cannot fetch %s to compare: %s", ago, url, r.error);
	} else if (r.status != 200) {
		diag_step(&g->d, DIAG_FAIL, "metadata", issuer_fix(g, "the "
		    "metadata URL is wrong"), "stored %s ago; %s answered "
		    "HTTP %ld", ago, url, r.status);
	} else if (s2s_metadata_parse(doc.b_data, doc.b_len, &live) !=
	    PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "metadata", issuer_fix(g, "the "
		    "metadata URL is wrong"), "stored %s ago; %s is not S2S "
		    "metadata: %s", ago, url, ps_errmsg());
	} else if (!same_metadata(stored, &live, why, sizeof(why))) {
		diag_step(&g->d, DIAG_FAIL, "metadata", issuer_fix(g, "the "
		    "stored copy is stale"), "stale (stored %s ago%s): %s",
		    ago, g->issuer.metadata_url ? "" : " from a file", why);
	} else {
		diag_step(&g->d, DIAG_PASS, "metadata", NULL, "fresh: stored "
		    "%s ago%s; %s publishes the same issuer, realm and "
		    "certificate", ago, g->issuer.metadata_url ? "" :
		    " from a file", url);
	}
	free(url);
out:
	s2s_metadata_cleanup(&live);
	buf_cleanup(&doc);
}

static void
step_signing_cert(struct dg *g, const struct s2s_metadata *stored)
{
	int64_t now = time_now(), first = -1, t;
	char when[40];
	size_t i;

	if (!g->issuer_ok || stored->n_certs == 0) {
		diag_step(&g->d, DIAG_SKIP, "signing-cert", NULL, "no usable "
		    "issuer metadata");
		return;
	}
	for (i = 0; i < stored->n_certs; i++) {
		if (pki_cert_check_time(stored->certs[i].der,
		    stored->certs[i].len, now) != PS_OK) {
			diag_step(&g->d, DIAG_FAIL, "signing-cert",
			    issuer_fix(g, "the master's S2S certificate is "
			    "out of date; once it is renewed at the master"),
			    "the certificate of %s: %s", g->issuer.name,
			    ps_errmsg());
			return;
		}
		t = pki_cert_not_after(stored->certs[i].der,
		    stored->certs[i].len);
		if (first < 0 || (t >= 0 && t < first))
			first = t;
	}
	diag_step(&g->d, DIAG_PASS, "signing-cert", NULL, "%zu certificate%s "
	    "of %s valid, until %s", stored->n_certs, stored->n_certs == 1 ?
	    "" : "s", g->issuer.name, first > 0 ? time_http(first, when) :
	    "(unknown)");
}

/* Loads the web application's S2S key and certificate. */
static ps_err
load_key(struct dg *g)
{
	char *key = portal_webapp_path(g->ps->dir, g->app.w.id, "s2s-key");
	char *cert = portal_webapp_path(g->ps->dir, g->app.w.id, "s2s-cert");
	ps_err rc;

	if ((rc = pki_key_load(key, &g->app.s2s_key)) == PS_OK)
		rc = pki_cert_load(cert, &g->app.s2s_cert,
		    &g->app.s2s_cert_len);
	free(key);
	free(cert);
	return rc;
}

static void
step_token(struct dg *g)
{
	if (!g->issuer_ok) {
		diag_step(&g->d, DIAG_SKIP, "token", NULL, "no issuer to mint "
		    "for");
		return;
	}
	if (load_key(g) != PS_OK) {
		snprintf(g->fix, sizeof(g->fix), "the web application's S2S "
		    "key files (webapp-%lld-s2s-key.pem, -s2s-cert.pem) in %s "
		    "must be readable by this user", (long long)g->app.w.id,
		    g->ps->dir);
		diag_step(&g->d, DIAG_FAIL, "token", g->fix, "%s",
		    ps_errmsg());
		return;
	}
	if (portal_token_mint(&g->app, &g->pick, g->user.email, NULL,
	    &g->token) !=
	    PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "token", NULL, "cannot mint: %s",
		    ps_errmsg());
		return;
	}
	diag_step(&g->d, DIAG_PASS, "token", NULL, "minted for %s: audience "
	    "%s/%s@%s, issuer %s@%s, valid %d minutes (not shown)",
	    g->user.email, S2S_EXCHANGE_ID, g->pick.authority, g->pick.realm,
	    S2S_SHAREPOINT_ID, g->app.w.realm, PORTAL_TOKEN_LIFETIME / 60);
	g->token_ok = true;
}

/* One call as mastercall.c built it, blocking. */
static ps_err
call(struct dg *g, const struct mcall *m, struct buf *body,
    struct xfer_result *r)
{
	struct xfer_opts xo = g->xo;

	xo.max_bytes = m->max_bytes;
	xo.allow_http = g->app.w.allow_oauth_http;
	return xfer_call(m->method, m->url, (const char *const *)m->headers,
	    m->body.b_len ? m->body.b_data : NULL, m->body.b_len, &xo, body,
	    r);
}

/* The verdict step, from the first Autodiscover answer. */
static bool
verdict(struct dg *g, const struct xfer_result *r)
{
	char why[600];

	if (r->status == 401) {
		explain_401(g, r, why, sizeof(why));
		diag_step(&g->d, DIAG_FAIL, "verdict", g->fix, "%s", why);
		diag_step(&g->d, DIAG_SKIP, "autodiscover", NULL, "the token "
		    "was refused");
		return false;
	}
	if (r->status / 100 == 2) {
		diag_step(&g->d, DIAG_PASS, "verdict", NULL, "the master "
		    "accepted the token (Autodiscover answered HTTP %ld)",
		    r->status);
		g->accepted = true;
	} else {
		diag_step(&g->d, DIAG_SKIP, "verdict", NULL, "no verdict: "
		    "Autodiscover answered HTTP %ld", r->status);
	}
	return true;
}

/* The autodiscover step for an answer that is not a mailbox's. */
static void
autodiscover_fail(struct dg *g, const struct xfer_result *r,
    const struct ad_user_settings *us, enum ad_verdict v, const char *url,
    const char *why)
{
	if (v == AD_NO_MAILBOX && (us->photos_url == NULL ||
	    us->ecp_photo_url == NULL) && (us->error_code == NULL ||
	    strcmp(us->error_code, "NoError") == 0)) {
		diag_step(&g->d, DIAG_FAIL, "autodiscover", "the master must "
		    "publish a photos URL and an ECP photo URL for this "
		    "mailbox: check its Autodiscover (photosync master init "
		    "--host)", "HTTP 200, but %s%s%s missing: \"PhotosUrl or "
		    "EcpPhotoUrl is null (from AutoDiscover)\", which a sync "
		    "counts as no mailbox", us->photos_url ? "" :
		    "ExternalPhotosUrl and InternalPhotosUrl",
		    !us->photos_url && !us->ecp_photo_url ? ", " : "",
		    us->ecp_photo_url ? "" : "ExternalEcpPhotoUrl and "
		    "InternalEcpPhotoUrl");
	} else if (v == AD_NO_MAILBOX) {
		snprintf(g->fix, sizeof(g->fix), "create the mailbox at the "
		    "master (photosync master mailbox add --dir D %s), or "
		    "correct the user's address in the portal", g->mailbox);
		diag_step(&g->d, DIAG_FAIL, "autodiscover", g->fix, "%s "
		    "(for %s), which a sync records as no mailbox", why,
		    g->mailbox);
	} else if (r->status == 429 || r->status == 503) {
		diag_step(&g->d, DIAG_FAIL, "autodiscover", "wait until the "
		    "master is less busy and try again", "the master is busy "
		    "(HTTP %ld)", r->status);
	} else if (r->status == 404 || (r->status == 200 &&
	    v == AD_ERROR && strncmp(why, "Autodiscover says", 17) != 0)) {
		snprintf(g->fix, sizeof(g->fix), "point the portal at the "
		    "master's Autodiscover with photosync portal webapp set "
		    "--dir %s --autodiscover-domain HOST[:PORT]", g->ps->dir);
		diag_step(&g->d, DIAG_FAIL, "autodiscover", g->fix, "%s: %s",
		    url, why);
	} else if (r->status == 200) {
		diag_step(&g->d, DIAG_FAIL, "autodiscover", "look for request "
		    "id in the master's log; a sync counts this as an error "
		    "and keeps the mailbox status it had", "%s", why);
	} else {
		diag_step(&g->d, DIAG_FAIL, "autodiscover", call_fix(g, r,
		    url), "%s", why);
	}
}

/*
 * Autodiscover as a sync asks it: the same request, the same reading of
 * the answer, the same redirects followed.
 */
static void
step_autodiscover(struct dg *g)
{
	struct ad_user_settings us = { 0 };
	struct ad_hops hops = { 0 };
	struct xfer_result r;
	struct mcall m = { 0 };
	struct buf body;
	enum ad_verdict v;
	char *url = NULL, *next = NULL, why[600];
	bool first = true;

	buf_init(&body, MCALL_MAX_XML);
	if (!g->route_ok || !g->token_ok) {
		diag_step(&g->d, DIAG_SKIP, "verdict", NULL, "%s",
		    !g->route_ok ? "the master cannot be reached" :
		    "no token");
		diag_step(&g->d, DIAG_SKIP, "autodiscover", NULL, "%s",
		    !g->route_ok ? "the master cannot be reached" :
		    "no token");
		goto out;
	}
	url = xstrdup(g->ad_url);
	str_copy(g->mailbox, g->user.email, sizeof(g->mailbox));
	for (;;) {
		if (ad_hops_add(&hops, url, g->mailbox) != PS_OK) {
			diag_step(&g->d, DIAG_FAIL, "autodiscover", "correct "
			    "the redirects at the master", "%s", ps_errmsg());
			goto out;
		}
		mcall_cleanup(&m);
		if (mcall_autodiscover(&m, &g->app, &g->issuers, NULL, url,
		    g->mailbox) != PS_OK) {
			if (first)
				diag_step(&g->d, DIAG_SKIP, "verdict", NULL,
				    "no request");
			diag_step(&g->d, DIAG_FAIL, "autodiscover", NULL,
			    "cannot build the request: %s", ps_errmsg());
			goto out;
		}
		buf_reset(&body);
		if (call(g, &m, &body, &r) != PS_OK) {
			if (first)
				diag_step(&g->d, DIAG_SKIP, "verdict", NULL,
				    "no answer");
			diag_step(&g->d, DIAG_FAIL, "autodiscover", call_fix(g,
			    &r, url), "POST %s: %s", url, r.error);
			goto out;
		}
		if (first && !verdict(g, &r))
			goto out;
		first = false;
		ad_user_settings_cleanup(&us);
		v = mcall_autodiscover_read(r.status, body.b_data, body.b_len,
		    &us, why, sizeof(why));
		if (v != AD_REDIRECT_ADDRESS && v != AD_REDIRECT_URL)
			break;
		printf("      redirect  %s\n", why);
		if (mcall_redirect(&g->app.w, v, us.redirect_target,
		    g->mailbox, sizeof(g->mailbox), &next) != PS_OK) {
			diag_step(&g->d, DIAG_FAIL, "autodiscover", "correct "
			    "the redirect at the master", "%s", ps_errmsg());
			goto out;
		}
		free(url);
		url = next;
		next = NULL;
	}
	if (v != AD_MAILBOX) {
		autodiscover_fail(g, &r, &us, v, url, why);
		goto out;
	}
	diag_step(&g->d, DIAG_PASS, "autodiscover", NULL, "HTTP %ld in %lld "
	    "ms%s%s: photos URL %s, ECP photo URL %s%s%s%s%s", r.status,
	    (long long)r.elapsed_ms, hops.n > 1 ? ", after redirects, for " :
	    "", hops.n > 1 ? g->mailbox : "", us.photos_url,
	    us.ecp_photo_url, !us.external_photos || !us.external_ecp_photo ?
	    " (missing: " : "", us.external_photos ? "" : "ExternalPhotosUrl",
	    !us.external_photos && !us.external_ecp_photo ? ", " :
	    us.external_ecp_photo ? "" : "ExternalEcpPhotoUrl",
	    !us.external_photos || !us.external_ecp_photo ? "; the Internal "
	    "ones are used)" : "");
	g->photos_url = xstrdup(us.photos_url);
	g->ad_ok = true;
out:
	ad_user_settings_cleanup(&us);
	ad_hops_cleanup(&hops);
	mcall_cleanup(&m);
	buf_cleanup(&body);
	free(url);
}

static void
step_photo(struct dg *g)
{
	struct xfer_result r;
	struct mcall m = { 0 };
	char why[600];
	ps_err rc;

	if (!g->ad_ok) {
		diag_step(&g->d, DIAG_SKIP, "photo", NULL, "no photos URL");
		return;
	}
	if ((rc = mcall_photo(&m, &g->app, &g->issuers, NULL, g->photos_url,
	    g->mailbox, g->user.email, NULL)) != PS_OK) {
		if (rc == PS_EINVAL) {
			snprintf(g->fix, sizeof(g->fix), "have the master "
			    "publish https URLs, or (on a trusted network "
			    "only) photosync portal webapp set --dir %s "
			    "--allow-oauth-over-http on", g->ps->dir);
			diag_step(&g->d, DIAG_FAIL, "photo", g->fix, "%s",
			    ps_errmsg());
		} else {
			diag_step(&g->d, DIAG_FAIL, "photo", NULL, "no token "
			    "for %s: %s", g->photos_url, ps_errmsg());
		}
		goto out;
	}
	if (call(g, &m, &g->photo, &r) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "photo", call_fix(g, &r, m.url),
		    "GET %s: %s", m.url, r.error);
		goto out;
	}
	switch (mcall_photo_read(r.status, r.content_type, -1, why,
	    sizeof(why))) {
	case MCALL_PHOTO_NEW:
		diag_step(&g->d, DIAG_PASS, "photo", NULL, "HTTP 200 in %lld "
		    "ms: %zu bytes, %s, ETag %s", (long long)r.elapsed_ms,
		    g->photo.b_len, r.content_type, r.etag[0] ? r.etag :
		    "(none)");
		g->photo_ok = true;
		break;
	case MCALL_PHOTO_NONE:
		snprintf(g->fix, sizeof(g->fix), "set a photo at the master: "
		    "photosync master photo set --dir D %s --file F (or the "
		    "user uploads one on the change-photo page)", g->mailbox);
		diag_step(&g->d, DIAG_FAIL, "photo", g->fix, "no photo: the "
		    "master has none for %s (HTTP 404)", g->mailbox);
		break;
	case MCALL_PHOTO_BUSY:
		diag_step(&g->d, DIAG_FAIL, "photo", "wait until the master "
		    "is less busy and try again", "the master is busy (HTTP "
		    "%ld)", r.status);
		break;
	case MCALL_PHOTO_UNCHANGED:
	case MCALL_PHOTO_ERROR:
		if (r.status == 401) {
			explain_401(g, &r, why, sizeof(why));
			diag_step(&g->d, DIAG_FAIL, "photo", g->fix, "%s", why);
		} else if (r.status == 200) {
			diag_step(&g->d, DIAG_FAIL, "photo", "check that the "
			    "photos URL Autodiscover publishes is the master's "
			    "EWS (.../EWS/Exchange.asmx/s)", "HTTP 200 but %s "
			    "(%zu bytes)", why, g->photo.b_len);
		} else {
			diag_step(&g->d, DIAG_FAIL, "photo", call_fix(g, &r,
			    m.url), "GetUserPhoto answered HTTP %ld",
			    r.status);
		}
	}
out:
	mcall_cleanup(&m);
}

static void
step_image(struct dg *g)
{
	struct image_jpeg out = { 0 };
	int side = g->app.w.size_s, src = 0;

	if (!g->photo_ok) {
		diag_step(&g->d, DIAG_SKIP, "image", NULL, "no photo");
		return;
	}
	if (image_render(g->photo.b_data, g->photo.b_len,
	    &image_default_limits, &side, 1, &out, &src) != PS_OK) {
		snprintf(g->fix, sizeof(g->fix), "the master's photo is "
		    "unusable: set it again at the master (photosync master "
		    "photo set --dir D %s --file F)", g->user.email);
		diag_step(&g->d, DIAG_FAIL, "image", g->fix, "%s",
		    ps_errmsg());
		return;
	}
	diag_step(&g->d, DIAG_PASS, "image", NULL, "decodes: a %dx%d square, "
	    "renders the %dx%d thumbnail (%zu bytes)", src, src, out.side,
	    out.side, out.len);
	image_jpeg_free(&out);
}

/* ---- entry ---- */

struct webapp_find {
	const char		*url;
	struct store_webapp	 w;
	int			 n, found;
};

static ps_err
find_webapp(void *arg, const struct store_webapp *w)
{
	struct webapp_find *f = arg;

	f->n++;
	if (f->url == NULL || strcasecmp(f->url, w->url) == 0) {
		if (f->found++ == 0)
			f->w = *w;
	}
	return PS_OK;
}

int
portal_diagnose_run(struct portal_state *ps, const char *store_what,
    const char *url, const char *who)
{
	struct dg *g = xcalloc(1, sizeof(*g));
	struct webapp_find f = { .url = url };
	struct s2s_metadata stored = { 0 };
	int ret = 1;

	g->ps = ps;
	buf_init(&g->photo, MCALL_MAX_PHOTO);
	if (store_webapp_each(ps->store, find_webapp, &f) != PS_OK) {
		fprintf(stderr, "photosync portal diagnose: %s\n",
		    ps_errmsg());
		goto out;
	}
	if (f.found != 1) {
		fprintf(stderr, "photosync portal diagnose: %s\n", url ?
		    "no such web application" : f.n == 0 ? "no web "
		    "application (photosync portal webapp add)" : "there are "
		    "several web applications; say which with --url");
		goto out;
	}
	g->app.w = f.w;
	reqid_new(g->reqid);
	printf("diagnose %s on %s (request id %s)\n", who, g->app.w.url,
	    g->reqid);
	diag_step(&g->d, DIAG_PASS, "store", NULL, "%s", store_what);
	step_user(g, who);
	if (!g->user_ok) {
		diag_step(&g->d, DIAG_SKIP, "(the rest)", NULL, "no user to "
		    "sync");
		ret = diag_end(&g->d);
		goto out;
	}
	step_settings(g);
	step_route(g);
	step_issuer(g);
	step_metadata(g, &stored);
	step_signing_cert(g, &stored);
	step_token(g);
	step_autodiscover(g);
	step_photo(g);
	step_image(g);
	ret = diag_end(&g->d);
out:
	s2s_metadata_cleanup(&stored);
	if (g->token)
		xfree_secret(g->token, strlen(g->token));
	pki_key_free(g->app.s2s_key);
	free(g->app.s2s_cert);
	store_user_cleanup(&g->user);
	store_issuer_cleanup(&g->issuer);
	portal_issuers_cleanup(&g->issuers);
	buf_cleanup(&g->photo);
	free(g->ad_url);
	free(g->photos_url);
	free(g);
	return ret;
}
