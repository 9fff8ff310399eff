/*
 * photosync master diagnose: the master's side of the S2S trust.
 *
 *   the master:   s2s-cert, tls-cert (time-valid)
 *   each partner: stored -> dns, tcp, tls (its metadata URL) -> fetch ->
 *                 certificates (live against stored) -> cert-dates ->
 *                 issuer (stored and live agree, realm consistent)
 *
 * Each step prints PASS, FAIL with the most likely fix in one sentence,
 * or SKIP when it cannot run. A partner registered from a file has no URL
 * to check; that is said, and its stored document is still checked. The
 * store is only read: a changed certificate is reported, not refreshed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "diagnose.h"
#include "master_int.h"
#include "pki/pki.h"
#include "s2s/s2s.h"
#include "setup/diag.h"
#include "xfer/xfer.h"

#define MD_TIMEOUT_MS	10000

struct mdg {
	struct diag		 d;
	struct master_state	*ms;
	const char		*ca_file;
	char			 fix[600];
};

/* The partners to check, copied out of the store walk. */
struct partner_list {
	struct store_partner	*p;
	size_t			 n;
};

static ps_err
collect_partner(void *arg, const struct store_partner *p)
{
	struct partner_list *l = arg;
	struct store_partner *c;

	l->p = xrealloc(l->p, (l->n + 1) * sizeof(*l->p));
	c = &l->p[l->n++];
	*c = *p;
	c->metadata_url = p->metadata_url ? xstrdup(p->metadata_url) : NULL;
	c->metadata = p->metadata ? xstrdup(p->metadata) : NULL;
	return PS_OK;
}

/* A certificate's dates as a step: valid (until when) or not. */
static void
cert_step(struct mdg *g, const char *name, const char *what,
    const unsigned char *der, size_t len, const char *fix)
{
	char when[40];
	int64_t t;

	if (pki_cert_check_time(der, len, time_now()) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, name, fix, "%s: %s", what,
		    ps_errmsg());
		return;
	}
	t = pki_cert_not_after(der, len);
	diag_step(&g->d, DIAG_PASS, name, NULL, "%s is valid until %s", what,
	    t > 0 ? time_http(t, when) : "(unknown)");
}

static void
check_self(struct mdg *g)
{
	unsigned char *der = NULL;
	size_t len = 0;
	char *path = master_path(g->ms, MASTER_TLS_CERT);

	snprintf(g->fix, sizeof(g->fix), "the S2S signing certificate is "
	    "made by photosync master init: re-create the master, then "
	    "refresh it at every portal (photosync portal issuer refresh)");
	cert_step(g, "s2s-cert", "the master's S2S signing certificate",
	    g->ms->s2s_cert, g->ms->s2s_cert_len, g->fix);
	if (pki_cert_load(path, &der, &len) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "tls-cert", "put the master's "
		    "TLS certificate (PEM) back in the state directory", "%s",
		    ps_errmsg());
	} else {
		snprintf(g->fix, sizeof(g->fix), "replace %s and its key "
		    "with a current certificate for %s", path, g->ms->host);
		cert_step(g, "tls-cert", "the master's TLS certificate", der,
		    len, g->fix);
	}
	free(der);
	free(path);
}

static void
thumb_hex(const struct s2s_metadata *md, char out[41])
{
	if (md->n_certs)
		hex_encode(md->certs[0].sha1, 20, out);
	else
		str_copy(out, "(none)", 41);
}

/* Whether every certificate of `live` is among the stored ones. */
static bool
same_certs(const struct s2s_metadata *stored, const struct s2s_metadata *live)
{
	size_t i, k;
	bool found;

	if (stored->n_certs != live->n_certs)
		return false;
	for (i = 0; i < live->n_certs; i++) {
		found = false;
		for (k = 0; k < stored->n_certs && !found; k++)
			found = memcmp(stored->certs[k].sha1,
			    live->certs[i].sha1, 20) == 0;
		if (!found)
			return false;
	}
	return true;
}

static void
cert_dates(struct mdg *g, const struct store_partner *p,
    const struct s2s_metadata *md, const char *whose)
{
	char what[200];
	size_t i;

	snprintf(g->fix, sizeof(g->fix), "the portal must publish a current "
	    "signing certificate; then run photosync master partner refresh "
	    "--dir %s %s", g->ms->dir, p->name);
	for (i = 0; i < md->n_certs; i++) {
		snprintf(what, sizeof(what), "the %s signing certificate%s",
		    whose, md->n_certs > 1 ? " (one of several)" : "");
		if (pki_cert_check_time(md->certs[i].der, md->certs[i].len,
		    time_now()) != PS_OK || i + 1 == md->n_certs) {
			cert_step(g, "cert-dates", what, md->certs[i].der,
			    md->certs[i].len, g->fix);
			return;
		}
	}
}

static void
check_partner(struct mdg *g, const struct store_partner *p)
{
	struct s2s_metadata stored = { 0 }, live = { 0 };
	/* As partner refresh: --ca-file, else the one it was added with. */
	struct xfer_opts xo = { .ca_file = g->ca_file ? g->ca_file :
	    p->ca_file[0] ? p->ca_file : NULL, .timeout_ms = MD_TIMEOUT_MS,
	    .max_bytes = S2S_MAX_METADATA };
	struct xfer_probe probe;
	struct xfer_result r;
	char dns[300], conn[600], ca[300], ago[32], a[41], b[41];
	struct diag_route_fix fx = { dns, conn, ca };
	struct buf doc;
	bool have_live = false;

	buf_init(&doc, S2S_MAX_METADATA);
	g->d.scope = p->name;
	printf("partner %s (%s)\n", p->name, p->metadata_url ?
	    p->metadata_url : "registered from a file");
	diag_ago(time_now() - p->fetched, ago);
	snprintf(g->fix, sizeof(g->fix), "register it again: photosync "
	    "master partner %s --dir %s %s", p->metadata_url ? "refresh" :
	    "add --metadata-file F --name", g->ms->dir, p->name);
	if (p->metadata == NULL || s2s_metadata_parse(p->metadata,
	    strlen(p->metadata), &stored) != PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "stored", g->fix, "the stored "
		    "metadata does not parse: %s", ps_errmsg());
		goto out;
	}
	diag_step(&g->d, DIAG_PASS, "stored", NULL, "issuer %s, %zu "
	    "certificate%s, fetched %s ago%s", stored.issuer, stored.n_certs,
	    stored.n_certs == 1 ? "" : "s", ago, p->metadata_url ? "" :
	    " from a file");
	if (p->metadata_url == NULL) {
		diag_step(&g->d, DIAG_SKIP, "metadata-url", NULL, "registered "
		    "from a file: there is no URL to compare with; when the "
		    "portal's certificate changes, add it again with "
		    "photosync master partner add --dir %s --name %s "
		    "--metadata-file F", g->ms->dir, p->name);
		cert_dates(g, p, &stored, "stored");
		goto issuer;
	}
	xfer_probe(p->metadata_url, &xo, &probe);
	snprintf(dns, sizeof(dns), "correct the portal's name in DNS, or "
	    "register the partner again with its right --metadata-url");
	snprintf(conn, sizeof(conn), "nothing answers at %.100s:%d: start "
	    "the portal (photosync portal serve), open the way through any "
	    "firewall, or register the partner again with its right "
	    "--metadata-url", probe.host, probe.port);
	snprintf(ca, sizeof(ca), "give the CA that signed the portal's "
	    "certificate with --ca-file F (and to partner refresh --ca-file "
	    "F, which keeps it)%s%s%s", xo.ca_file ? "; " : "",
	    xo.ca_file ? xo.ca_file : "", xo.ca_file ? " did not sign it" :
	    "");
	if (!diag_route(&g->d, "", &probe, &fx)) {
		diag_step(&g->d, DIAG_SKIP, "fetch", NULL, "the portal cannot "
		    "be reached");
		diag_step(&g->d, DIAG_SKIP, "certificates", NULL, "no live "
		    "document");
		cert_dates(g, p, &stored, "stored");
		goto issuer;
	}
	if (xfer_call("GET", p->metadata_url, NULL, NULL, 0, &xo, &doc, &r) !=
	    PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "fetch", "look at the portal's "
		    "log for this request", "GET %s: %s", p->metadata_url,
		    r.error);
	} else if (r.status != 200) {
		diag_step(&g->d, DIAG_FAIL, "fetch", g->fix, "GET %s answered "
		    "HTTP %ld (the metadata URL is wrong?)", p->metadata_url,
		    r.status);
	} else if (s2s_metadata_parse(doc.b_data, doc.b_len, &live) !=
	    PS_OK) {
		diag_step(&g->d, DIAG_FAIL, "fetch", "check that the URL is "
		    "the portal's /_layouts/15/metadata/json/1", "%s is not "
		    "S2S metadata: %s", p->metadata_url, ps_errmsg());
	} else {
		diag_step(&g->d, DIAG_PASS, "fetch", NULL, "HTTP 200 in %lld "
		    "ms, %zu bytes, S2S metadata of %s", (long long)
		    r.elapsed_ms, doc.b_len, live.issuer);
		have_live = true;
	}
	if (!have_live) {
		diag_step(&g->d, DIAG_SKIP, "certificates", NULL, "no live "
		    "document");
		cert_dates(g, p, &stored, "stored");
		goto issuer;
	}
	thumb_hex(&stored, a);
	thumb_hex(&live, b);
	if (!same_certs(&stored, &live)) {
		snprintf(g->fix, sizeof(g->fix), "run photosync master "
		    "partner refresh --dir %s %s", g->ms->dir, p->name);
		diag_step(&g->d, DIAG_FAIL, "certificates", g->fix, "the "
		    "portal's signing certificate changed: stored thumbprint "
		    "%s, published %s: its tokens are refused until it is "
		    "refreshed", a, b);
	} else {
		diag_step(&g->d, DIAG_PASS, "certificates", NULL, "the "
		    "published certificate%s the stored one%s (thumbprint %s)",
		    live.n_certs == 1 ? " is" : "s are", live.n_certs == 1 ?
		    "" : "s", b);
	}
	cert_dates(g, p, &live, "published");
issuer:
	snprintf(g->fix, sizeof(g->fix), "run photosync master partner "
	    "refresh --dir %s %s", g->ms->dir, p->name);
	if (strcasecmp(p->issuer, stored.issuer) != 0) {
		diag_step(&g->d, DIAG_FAIL, "issuer", g->fix, "the stored "
		    "issuer %s does not match its document's %s", p->issuer,
		    stored.issuer);
	} else if (have_live && strcasecmp(live.issuer, stored.issuer) != 0) {
		diag_step(&g->d, DIAG_FAIL, "issuer", g->fix, "the portal now "
		    "publishes issuer %s (realm %s), stored %s (realm %s): was "
		    "it re-created?", live.issuer, live.realm, stored.issuer,
		    stored.realm);
	} else {
		diag_step(&g->d, DIAG_PASS, "issuer", NULL, "%s, realm %s "
		    "(%s)", stored.issuer, stored.realm,
		    strncasecmp(stored.issuer, S2S_SHAREPOINT_ID,
		    strlen(S2S_SHAREPOINT_ID)) == 0 ? "SharePoint's principal" :
		    "not SharePoint's principal " S2S_SHAREPOINT_ID);
	}
out:
	g->d.scope = NULL;
	s2s_metadata_cleanup(&stored);
	s2s_metadata_cleanup(&live);
	buf_cleanup(&doc);
}

int
master_diagnose_run(struct master_state *ms, const char *store_what,
    const char *partner, const char *ca_file)
{
	struct mdg g = { .ms = ms, .ca_file = ca_file };
	struct partner_list l = { 0 };
	struct store_partner one = { 0 };
	size_t i;
	ps_err rc;

	printf("diagnose master %s:%d (realm %s)\n", ms->host, ms->port,
	    ms->realm);
	diag_step(&g.d, DIAG_PASS, "store", NULL, "%s", store_what);
	check_self(&g);
	if (partner) {
		if ((rc = store_partner_get(ms->store, partner, &one)) ==
		    PS_OK) {
			collect_partner(&l, &one);
		} else {
			snprintf(g.fix, sizeof(g.fix), "see the partners "
			    "with photosync master partner list --dir %s",
			    ms->dir);
			diag_step(&g.d, DIAG_FAIL, "partner", rc ==
			    PS_ENOTFOUND ? g.fix : NULL, "%s: %s", partner,
			    rc == PS_ENOTFOUND ? "no such partner" :
			    ps_errmsg());
		}
	} else if (store_partner_each(ms->store, collect_partner, &l) !=
	    PS_OK) {
		diag_step(&g.d, DIAG_FAIL, "partner", NULL, "%s",
		    ps_errmsg());
	} else if (l.n == 0) {
		snprintf(g.fix, sizeof(g.fix), "trust the portal: photosync "
		    "master partner add --dir %s --name SharePoint "
		    "--metadata-url https://PORTAL/_layouts/15/metadata/json/1",
		    ms->dir);
		diag_step(&g.d, DIAG_FAIL, "partner", g.fix, "no partner is "
		    "registered: every token is refused");
	}
	for (i = 0; i < l.n; i++)
		check_partner(&g, &l.p[i]);
	for (i = 0; i < l.n; i++)
		store_partner_cleanup(&l.p[i]);
	free(l.p);
	store_partner_cleanup(&one);
	return diag_end(&g.d);
}
