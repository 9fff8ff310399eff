/*
 * S2S tokens (reference exchange-wire.md §4.4-§4.6): minting the portal's
 * outer token around a signed actor token, and validating such tokens on
 * the master.
 *
 * A token is a compact JWS (RFC 7515 7.1): three base64url parts. The
 * decoder is strict: only the URL-safe alphabet, no padding, no stray
 * bits, no whitespace; JSON with duplicate member names is refused (RFC
 * 7515 5.2 leaves that to us). Claim names are case-sensitive (RFC 7519
 * 4). Refusal reasons are one line built from constant text only, never
 * from the token or its claim values.
 *
 * Tokens are bearer credentials: our own copies are wiped before they are
 * freed. Thread safety: no shared state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "s2s.h"
#include "s2s_int.h"

#define TOK_MAX_TIME	253402300799LL	/* 9999-12-31T23:59:59Z */
#define TOK_NII_AD	"urn:office:idp:activedirectory"
/* User claims must fit struct s2s_identity's fields. */
#define TOK_MAX_USER	sizeof(((struct s2s_identity *)0)->smtp)

/* One compact JWS, split and partly decoded. */
struct jws {
	const char	*hdr_b64;	/* borrowed from the token */
	size_t		 hdr_len;
	const char	*pay_b64;
	size_t		 pay_len;
	const char	*sig_b64;
	size_t		 sig_len;
	json_t		*header;	/* owned */
	json_t		*claims;	/* owned, NULL until decoded */
	const char	*alg;		/* borrowed from header */
};

static void
jws_cleanup(struct jws *j)
{
	json_decref(j->header);
	json_decref(j->claims);
	memset(j, 0, sizeof(*j));
}

/* --- strict decoding --- */

/*
 * RFC 7515 2 / RFC 4648 5: base64url without padding. Canonical only: the
 * input must be what we would produce ourselves, so one token has exactly
 * one encoding.
 */
static bool
b64url_strict(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char *d = NULL;
	size_t i, dlen = 0;
	char *re;
	bool ok;

	*out = NULL;
	*outlen = 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	if (n % 4 == 1 || b64_decode(s, n, &d, &dlen) != PS_OK)
		return false;
	re = b64_encode(d, dlen, true);
	ok = strlen(re) == n && memcmp(re, s, n) == 0;
	free(re);
	if (!ok) {
		free(d);
		return false;
	}
	*out = d;
	*outlen = dlen;
	return true;
}

/* A base64url part holding a JSON object. */
static ps_err
b64_json(const char *s, size_t n, const char *what, const char *part,
    json_t **out)
{
	unsigned char *d;
	size_t dlen;
	json_error_t jerr;

	*out = NULL;
	if (n == 0 || !b64url_strict(s, n, &d, &dlen))
		return ps_errf(PS_EAUTH, "%s: %s is not base64url", what, part);
	*out = json_loadb((const char *)d, dlen, JSON_REJECT_DUPLICATES,
	    &jerr);
	xfree_secret(d, dlen);
	if (*out == NULL)
		return ps_errf(PS_EAUTH, "%s: %s is not valid JSON", what,
		    part);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return ps_errf(PS_EAUTH, "%s: %s is not a JSON object", what,
		    part);
	}
	return PS_OK;
}

/*
 * Splits `tok` into its three parts and decodes the header (RFC 7515
 * 5.2). The claims are left for later: the actor's are read only after
 * its signature has been verified.
 */
static ps_err
jws_open(const char *tok, size_t len, const char *what, struct jws *j)
{
	const char *d1, *d2;
	json_t *v;
	ps_err rc;

	memset(j, 0, sizeof(*j));
	d1 = memchr(tok, '.', len);
	d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) :
	    NULL;
	if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) !=
	    NULL)
		return ps_errf(PS_EAUTH, "%s: not a compact JWS of three parts",
		    what);
	j->hdr_b64 = tok;
	j->hdr_len = (size_t)(d1 - tok);
	j->pay_b64 = d1 + 1;
	j->pay_len = (size_t)(d2 - j->pay_b64);
	j->sig_b64 = d2 + 1;
	j->sig_len = len - (size_t)(j->sig_b64 - tok);
	if ((rc = b64_json(j->hdr_b64, j->hdr_len, what, "header",
	    &j->header)) != PS_OK)
		return rc;
	v = json_object_get(j->header, "alg");
	if (!json_is_string(v))
		return ps_errf(PS_EAUTH, "%s: header has no alg", what);
	j->alg = json_string_value(v);
	/* RFC 7519 5.1: typ, when present, is "JWT" in any case. */
	v = json_object_get(j->header, "typ");
	if (v != NULL && (!json_is_string(v) ||
	    !str_case_eq(json_string_value(v), "JWT")))
		return ps_errf(PS_EAUTH, "%s: header typ is not JWT", what);
	/* RFC 7515 4.1.11: we understand no extension, so none is critical. */
	if (json_object_get(j->header, "crit") != NULL)
		return ps_errf(PS_EAUTH, "%s: header has crit extensions",
		    what);
	return PS_OK;
}

static ps_err
jws_claims(struct jws *j, const char *what)
{
	return b64_json(j->pay_b64, j->pay_len, what, "payload", &j->claims);
}

/* --- claims --- */

/* A string claim; NULL when absent. Present but not a string refuses. */
static ps_err
claim_str(json_t *claims, const char *name, const char *what,
    const char **out)
{
	json_t *v = json_object_get(claims, name);

	*out = NULL;
	if (v == NULL)
		return PS_OK;
	if (!json_is_string(v))
		return ps_errf(PS_EAUTH, "%s: claim %s is not a string", what,
		    name);
	*out = json_string_value(v);
	return PS_OK;
}

/*
 * A NumericDate (RFC 7519 2): a JSON number, or, as Microsoft's S2S
 * library writes it, a JSON string of decimal digits (§4.4, S14).
 */
static ps_err
claim_time(json_t *claims, const char *name, const char *what,
    bool *present, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	const char *s;
	size_t i, n;
	int64_t t = 0;

	*present = v != NULL;
	*out = 0;
	if (v == NULL)
		return PS_OK;
	if (json_is_integer(v)) {
		t = (int64_t)json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);

		if (!isfinite(d) || d < 0 || d > (double)TOK_MAX_TIME)
			goto bad;
		t = (int64_t)d;
	} else if (json_is_string(v)) {
		s = json_string_value(v);
		n = strlen(s);
		if (n == 0 || n > 12)
			goto bad;
		for (i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				goto bad;
			t = t * 10 + (s[i] - '0');
		}
	} else
		goto bad;
	if (t < 0 || t > TOK_MAX_TIME)
		goto bad;
	*out = t;
	return PS_OK;
bad:
	return ps_errf(PS_EAUTH, "%s: claim %s is not a NumericDate", what,
	    name);
}

/*
 * §4.6 step 6: exp is required, nbf optional, both with clock skew; and
 * the token's lifetime at most S2S_MAX_LIFETIME, counted from nbf, or
 * from now (less the skew) when there is none.
 */
static ps_err
check_times(json_t *claims, const char *what, int64_t now)
{
	int64_t nbf, exp;
	bool has_nbf, has_exp;
	ps_err rc;

	if ((rc = claim_time(claims, "nbf", what, &has_nbf, &nbf)) != PS_OK ||
	    (rc = claim_time(claims, "exp", what, &has_exp, &exp)) != PS_OK)
		return rc;
	if (!has_exp)
		return ps_errf(PS_EAUTH, "%s: no exp claim", what);
	if (has_nbf && nbf > exp)
		return ps_errf(PS_EAUTH, "%s: nbf is after exp", what);
	/* RFC 7519 4.1.4: not accepted on or after exp. */
	if (now >= exp + S2S_CLOCK_SKEW)
		return ps_errf(PS_EAUTH, "%s: expired", what);
	if (has_nbf && nbf > now + S2S_CLOCK_SKEW)
		return ps_errf(PS_EAUTH, "%s: not yet valid", what);
	if (has_nbf ? exp - nbf > S2S_MAX_LIFETIME :
	    exp - now > S2S_MAX_LIFETIME + S2S_CLOCK_SKEW)
		return ps_errf(PS_EAUTH, "%s: lifetime longer than %d hours",
		    what, S2S_MAX_LIFETIME / 3600);
	return PS_OK;
}

/*
 * §4.1, §4.6 step 5: aud is exactly "<client_id>/<host>@<realm>". The
 * client id compares case-sensitively, the host case-insensitively and
 * may carry our port, the realm is ours or the partner's (exact).
 */
static ps_err
check_aud(json_t *claims, const char *what, const struct s2s_expect *ex,
    const char *partner_realm)
{
	const char *aud, *slash, *at, *host, *colon, *realm;
	size_t hlen, plen, i;
	long port = 0;
	ps_err rc;

	if ((rc = claim_str(claims, "aud", what, &aud)) != PS_OK)
		return rc;
	if (aud == NULL)
		return ps_errf(PS_EAUTH, "%s: no aud claim", what);
	slash = strchr(aud, '/');
	at = slash != NULL ? strchr(slash + 1, '@') : NULL;
	if (at == NULL)
		return ps_errf(PS_EAUTH, "%s: aud is not "
		    "<client_id>/<host>@<realm>", what);
	if (memchr(aud, '@', (size_t)(slash - aud)) != NULL ||
	    memchr(slash + 1, '/', (size_t)(at - slash - 1)) != NULL ||
	    strchr(at + 1, '/') != NULL || strchr(at + 1, '@') != NULL)
		return ps_errf(PS_EAUTH, "%s: aud has extra parts", what);
	if ((size_t)(slash - aud) != strlen(ex->client_id) ||
	    memcmp(aud, ex->client_id, (size_t)(slash - aud)) != 0)
		return ps_errf(PS_EAUTH, "%s: aud is not for client id %s",
		    what, ex->client_id);

	host = slash + 1;
	hlen = (size_t)(at - host);
	colon = memchr(host, ':', hlen);
	if (colon != NULL) {
		plen = (size_t)(at - colon - 1);
		if (plen == 0 || plen > 5 || colon[1] == '0')
			return ps_errf(PS_EAUTH, "%s: aud has a bad port",
			    what);
		for (i = 0; i < plen; i++) {
			if (colon[1 + i] < '0' || colon[1 + i] > '9')
				return ps_errf(PS_EAUTH, "%s: aud has a bad "
				    "port", what);
			port = port * 10 + (colon[1 + i] - '0');
		}
		if (ex->port <= 0 || port != ex->port)
			return ps_errf(PS_EAUTH, "%s: aud is for another port",
			    what);
		hlen = (size_t)(colon - host);
	}
	if (hlen != strlen(ex->host) || strncasecmp(host, ex->host, hlen) != 0)
		return ps_errf(PS_EAUTH, "%s: aud is not for host %s", what,
		    ex->host);

	realm = at + 1;
	if (strcmp(realm, ex->realm) != 0 && (partner_realm == NULL ||
	    strcmp(realm, partner_realm) != 0))
		return ps_errf(PS_EAUTH, "%s: aud is for another realm", what);
	return PS_OK;
}

/* The realm of a principal "<id>@<realm>"; NULL if malformed. */
static const char *
principal_realm(const char *p)
{
	const char *at = strchr(p, '@');

	if (at == NULL || at == p || at[1] == '\0' || strchr(at + 1, '@'))
		return NULL;
	return at + 1;
}

/*
 * The realm a partner's tokens name: its configured realm, unless that is
 * empty or the wildcard, then its issuer's.
 */
static const char *
partner_realm(const struct s2s_partner *p)
{
	if (p->realm != NULL && p->realm[0] != '\0' &&
	    strcmp(p->realm, "*") != 0)
		return p->realm;
	return p->issuer != NULL ? principal_realm(p->issuer) : NULL;
}

/* "true" as JSON or as a string (.NET writes the string, §4.4). */
static bool
claim_true(json_t *claims, const char *name)
{
	json_t *v = json_object_get(claims, name);

	return json_is_true(v) || (json_is_string(v) &&
	    str_case_eq(json_string_value(v), "true"));
}

/*
 * Copies a user claim into `dst`; "" when absent. Refused when not a
 * string, too long for the identity, or holding control characters.
 */
static ps_err
copy_claim(json_t *claims, const char *name, const char *what, char *dst,
    size_t n)
{
	const char *s;
	size_t i;
	ps_err rc;

	dst[0] = '\0';
	if ((rc = claim_str(claims, name, what, &s)) != PS_OK)
		return rc;
	if (s == NULL)
		return PS_OK;
	for (i = 0; s[i] != '\0'; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return ps_errf(PS_EAUTH, "%s: claim %s has control "
			    "characters", what, name);
	}
	if (!str_copy(dst, s, n))
		return ps_errf(PS_EAUTH, "%s: claim %s is too long", what,
		    name);
	return PS_OK;
}

/* A digest as s2s_addresses_digest() writes it. */
static bool
addresses_digest_ok(const char *s)
{
	unsigned char *d;
	size_t dlen;

	if (strlen(s) != S2S_ADDRESSES_LEN - 1 ||
	    !b64url_strict(s, strlen(s), &d, &dlen))
		return false;
	free(d);
	return true;
}

/*
 * The signed token's S2S_ADDRESSES_CLAIM into `dst` ("" when absent);
 * present, it must be a digest as s2s_addresses_digest() writes it.
 */
static ps_err
copy_addresses(json_t *claims, const char *what,
    char dst[S2S_ADDRESSES_LEN])
{
	const char *s;
	ps_err rc;

	dst[0] = '\0';
	if ((rc = claim_str(claims, S2S_ADDRESSES_CLAIM, what, &s)) != PS_OK)
		return rc;
	if (s == NULL)
		return PS_OK;
	if (!addresses_digest_ok(s))
		return ps_errf(PS_EAUTH, "%s: claim %s is not a SHA-256 "
		    "digest", what, S2S_ADDRESSES_CLAIM);
	memcpy(dst, s, S2S_ADDRESSES_LEN);
	return PS_OK;
}

/* --- validation --- */

/* The certificate whose SHA-1 thumbprint is `x5t`, among all partners'. */
static const struct s2s_cert *
find_cert(const struct s2s_partner *partners, size_t n,
    const unsigned char x5t[20])
{
	size_t i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < partners[i].n_certs; k++)
			if (memcmp(partners[i].certs[k].sha1, x5t, 20) == 0)
				return &partners[i].certs[k];
	return NULL;
}

/* The partner named `iss` that publishes the thumbprint `x5t`. */
static const struct s2s_partner *
find_partner(const struct s2s_partner *partners, size_t n, const char *iss,
    const unsigned char x5t[20])
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		if (partners[i].issuer == NULL ||
		    strcmp(partners[i].issuer, iss) != 0)
			continue;
		for (k = 0; k < partners[i].n_certs; k++)
			if (memcmp(partners[i].certs[k].sha1, x5t, 20) == 0)
				return &partners[i];
	}
	return NULL;
}

/*
 * Signatures already verified, by a digest of the certificate and the
 * signed token: a partner sends the same actor token with every user's
 * token until it expires, and the RSA verification (with decoding the
 * certificate) is most of the work of a validation. Only the signature
 * check is remembered; the claims are read and checked every time. Per
 * thread, a few entries, replaced in turn.
 */
#define SIG_MEMO	8

static _Thread_local struct {
	unsigned char	d[SIG_MEMO][32];
	unsigned	next;
} sig_memo;

static void
sig_digest(const struct s2s_cert *cert, const char *tok, size_t len,
    unsigned char out[32])
{
	unsigned char buf[32 + 20];

	pki_sha256(tok, len, buf);
	memcpy(buf + 32, cert->sha1, 20);
	pki_sha256(buf, sizeof(buf), out);
}

static bool
sig_verified_before(const unsigned char d[32])
{
	unsigned i;

	for (i = 0; i < SIG_MEMO; i++)
		if (memcmp(sig_memo.d[i], d, 32) == 0)
			return true;
	return false;
}

static void
sig_remember(const unsigned char d[32])
{
	memcpy(sig_memo.d[sig_memo.next++ % SIG_MEMO], d, 32);
}

/*
 * §4.6 steps 2, 3, 5 and 6 for the actor token (or for a signed token
 * presented alone, the app-only case). On success `j` holds the claims
 * and *partner the partner that signed it.
 */
static ps_err
actor_validate(const char *tok, size_t len, const struct s2s_expect *ex,
    const struct s2s_partner *partners, size_t n_partners, struct jws *j,
    const struct s2s_partner **partner)
{
	const char *what = "actor token", *x5t, *iss, *nameid, *realm;
	const struct s2s_cert *cert;
	unsigned char *tp = NULL, *sig = NULL, memo[32];
	size_t tplen = 0, siglen = 0;
	json_t *v;
	ps_err rc;

	*partner = NULL;
	if ((rc = jws_open(tok, len, what, j)) != PS_OK)
		goto out;
	rc = PS_EAUTH;
	/* Step 2: RS256 exactly; "none", HMAC and others are refused. */
	if (strcmp(j->alg, "RS256") != 0) {
		ps_errf(rc, "%s: alg is not RS256", what);
		goto out;
	}
	v = json_object_get(j->header, "x5t");
	if (!json_is_string(v)) {
		ps_errf(rc, "%s: header has no x5t", what);
		goto out;
	}
	x5t = json_string_value(v);
	if (!b64url_strict(x5t, strlen(x5t), &tp, &tplen) || tplen != 20) {
		ps_errf(rc, "%s: x5t is not a base64url SHA-1 thumbprint",
		    what);
		goto out;
	}
	/* Only certificates from registered partner metadata count. */
	cert = find_cert(partners, n_partners, tp);
	if (cert == NULL) {
		ps_errf(rc, "%s: x5t names no partner certificate", what);
		goto out;
	}
	/* Verify before reading any claim (the S19 lesson). */
	if (j->sig_len == 0 || !b64url_strict(j->sig_b64, j->sig_len, &sig,
	    &siglen)) {
		ps_errf(rc, "%s: signature is not base64url", what);
		goto out;
	}
	sig_digest(cert, tok, len, memo);
	if (!sig_verified_before(memo)) {
		if (pki_verify_rs256(cert->der, cert->len, tok,
		    j->hdr_len + 1 + j->pay_len, sig, siglen) != PS_OK) {
			ps_errf(rc, "%s: bad signature", what);
			goto out;
		}
		sig_remember(memo);
	}
	if ((rc = jws_claims(j, what)) != PS_OK)
		goto out;
	rc = PS_EAUTH;
	if (json_object_get(j->claims, "actortoken") != NULL) {
		ps_errf(rc, "%s: a signed token carries an actortoken", what);
		goto out;
	}

	/* Step 3: iss == nameid == the partner's issuer, same realm. */
	if ((rc = claim_str(j->claims, "iss", what, &iss)) != PS_OK ||
	    (rc = claim_str(j->claims, "nameid", what, &nameid)) != PS_OK)
		goto out;
	rc = PS_EAUTH;
	if (iss == NULL || nameid == NULL) {
		ps_errf(rc, "%s: iss or nameid missing", what);
		goto out;
	}
	if (strcmp(iss, nameid) != 0) {
		ps_errf(rc, "%s: iss and nameid differ", what);
		goto out;
	}
	if ((realm = principal_realm(nameid)) == NULL) {
		ps_errf(rc, "%s: nameid is not <id>@<realm>", what);
		goto out;
	}
	*partner = find_partner(partners, n_partners, iss, tp);
	if (*partner == NULL) {
		ps_errf(rc, "%s: issuer is not the partner whose certificate "
		    "signed it", what);
		goto out;
	}
	if (partner_realm(*partner) == NULL ||
	    strcmp(realm, partner_realm(*partner)) != 0) {
		ps_errf(rc, "%s: nameid realm is not the partner's realm",
		    what);
		goto out;
	}

	if ((rc = check_aud(j->claims, what, ex, partner_realm(*partner))) !=
	    PS_OK || (rc = check_times(j->claims, what, ex->now)) != PS_OK)
		goto out;
	rc = PS_OK;
out:
	free(tp);
	free(sig);
	if (rc != PS_OK)
		*partner = NULL;
	return rc;
}

ps_err
s2s_token_validate(const char *token, const struct s2s_expect *expect,
    const struct s2s_partner *partners, size_t n_partners,
    struct s2s_identity *id)
{
	const char *what = "outer token", *user, *iss, *nameid, *actor_tok;
	const struct s2s_partner *partner;
	struct s2s_expect ex;
	struct jws outer, actor;
	size_t len;
	ps_err rc = PS_EAUTH;

	memset(&outer, 0, sizeof(outer));
	memset(&actor, 0, sizeof(actor));
	memset(id, 0, sizeof(*id));
	if (expect == NULL || expect->client_id == NULL ||
	    expect->host == NULL || expect->realm == NULL)
		return ps_errf(PS_EINVAL, "token validation without "
		    "expectations");
	ex = *expect;
	if (ex.now == 0)
		ex.now = time_now();
	if (token == NULL || token[0] == '\0')
		return ps_errf(rc, "no token");
	len = strnlen(token, S2S_MAX_TOKEN + 1);
	if (len > S2S_MAX_TOKEN)
		return ps_errf(rc, "token larger than %d bytes", S2S_MAX_TOKEN);

	if ((rc = jws_open(token, len, "token", &outer)) != PS_OK)
		goto out;
	if (strcmp(outer.alg, "none") != 0) {
		/*
		 * §4.4, §4.6 step 1: a signed token alone is the app-only
		 * token, checked as an actor token; there is no user.
		 */
		jws_cleanup(&outer);
		rc = actor_validate(token, len, &ex, partners, n_partners,
		    &actor, &partner);
		if (rc != PS_OK)
			goto out;
		if ((rc = claim_str(actor.claims, "nameid", "actor token",
		    &nameid)) != PS_OK)
			goto out;
		if (!str_copy(id->partner, nameid, sizeof(id->partner))) {
			rc = ps_errf(PS_EAUTH, "actor token: nameid too long");
			goto out;
		}
		id->app_only = true;
		rc = copy_addresses(actor.claims, "actor token",
		    id->addresses);
		goto out;
	}

	/* §4.5, §4.6 step 1: alg none only around an actor token. */
	rc = PS_EAUTH;
	if (outer.sig_len != 0) {
		ps_errf(rc, "%s: alg none with a signature", what);
		goto out;
	}
	if ((rc = jws_claims(&outer, what)) != PS_OK)
		goto out;
	if ((rc = claim_str(outer.claims, "actortoken", what, &actor_tok)) !=
	    PS_OK)
		goto out;
	if (actor_tok == NULL) {
		rc = ps_errf(PS_EAUTH, "%s: unsigned token without an "
		    "actortoken", what);
		goto out;
	}
	if ((rc = actor_validate(actor_tok, strlen(actor_tok), &ex, partners,
	    n_partners, &actor, &partner)) != PS_OK)
		goto out;
	if ((rc = claim_str(actor.claims, "nameid", "actor token",
	    &nameid)) != PS_OK)
		goto out;

	/* Step 4: outer iss is the actor's nameid, case-sensitively. */
	if ((rc = claim_str(outer.claims, "iss", what, &iss)) != PS_OK)
		goto out;
	rc = PS_EAUTH;
	if (iss == NULL || nameid == NULL || strcmp(iss, nameid) != 0) {
		ps_errf(rc, "%s: iss is not the actor's nameid", what);
		goto out;
	}
	if ((rc = check_aud(outer.claims, what, &ex,
	    partner_realm(partner))) != PS_OK ||
	    (rc = check_times(outer.claims, what, ex.now)) != PS_OK)
		goto out;

	/* Steps 7 and 8: user claims only from a delegation-trusted actor. */
	if ((rc = copy_claim(outer.claims, "smtp", what, id->smtp,
	    sizeof(id->smtp))) != PS_OK ||
	    (rc = copy_claim(outer.claims, "upn", what, id->upn,
	    sizeof(id->upn))) != PS_OK ||
	    (rc = copy_claim(outer.claims, "nameid", what, id->nameid,
	    sizeof(id->nameid))) != PS_OK)
		goto out;
	rc = PS_EAUTH;
	if (id->smtp[0] == '\0' && id->upn[0] == '\0' &&
	    id->nameid[0] == '\0') {
		ps_errf(rc, "%s: no user claim (smtp, upn or nameid)", what);
		goto out;
	}
	if (!claim_true(actor.claims, "trustedfordelegation")) {
		ps_errf(rc, "actor token: not trusted for delegation");
		goto out;
	}
	if (!str_copy(id->partner, nameid, sizeof(id->partner))) {
		ps_errf(rc, "actor token: nameid too long");
		goto out;
	}
	user = id->smtp[0] ? id->smtp : id->upn[0] ? id->upn : id->nameid;
	str_copy(id->user, user, sizeof(id->user));
	rc = copy_addresses(actor.claims, "actor token", id->addresses);
out:
	jws_cleanup(&outer);
	jws_cleanup(&actor);
	if (rc != PS_OK) {
		memset(id, 0, sizeof(*id));
		if (rc != PS_EAUTH) {
			char why[256];

			str_copy(why, ps_errmsg(), sizeof(why));
			rc = ps_errf(PS_EAUTH, "%s", why);
		}
	}
	return rc;
}

/* --- binding to addresses --- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

ps_err
s2s_addresses_digest(const char *const *addresses, size_t n,
    char out[S2S_ADDRESSES_LEN])
{
	unsigned char digest[32];
	char **low, *enc;
	struct buf b;
	size_t i, k;
	ps_err rc = PS_EINVAL;

	out[0] = '\0';
	if (n == 0)
		return ps_errf(rc, "no address to bind a token to");
	low = xcalloc(n, sizeof(*low));
	buf_init(&b, S2S_MAX_TOKEN);
	for (i = 0; i < n; i++) {
		for (k = 0; addresses[i][k] != '\0'; k++)
			if ((unsigned char)addresses[i][k] < 0x20 ||
			    addresses[i][k] == 0x7f)
				break;
		if (k == 0 || addresses[i][k] != '\0') {
			ps_errf(rc, "an address to bind a token to is empty or "
			    "holds a control character");
			goto out;
		}
		low[i] = xstrdup(addresses[i]);
		str_lower(low[i]);
	}
	qsort(low, n, sizeof(*low), cmp_str);
	for (i = 0; i < n; i++) {
		if (buf_adds(&b, low[i]) != PS_OK ||
		    buf_add(&b, "\n", 1) != PS_OK) {
			rc = ps_errf(PS_ELIMIT, "too many addresses to bind a "
			    "token to");
			goto out;
		}
	}
	pki_sha256(b.b_data, b.b_len, digest);
	enc = b64_encode(digest, sizeof(digest), true);
	str_copy(out, enc, S2S_ADDRESSES_LEN);
	free(enc);
	rc = PS_OK;
out:
	for (i = 0; i < n; i++)
		free(low[i]);
	free(low);
	buf_cleanup(&b);
	return rc;
}

/* --- minting --- */

/* A principal, host or realm part we are willing to put in a token. */
static bool
mint_part_ok(const char *s)
{
	return s != NULL && s2s_part_valid(s, strlen(s));
}

/* A user claim: printable, short enough for the validator's identity. */
static bool
mint_user_ok(const char *s)
{
	size_t i;

	if (s == NULL)
		return true;
	if (s[0] == '\0' || strlen(s) >= TOK_MAX_USER)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* base64url(compact JSON of `j`) in a new string; consumes `j`. */
static char *
b64_of_json(json_t *j)
{
	char *s, *e;
	size_t n;

	if (j == NULL)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	e = b64_encode(s, n, true);
	explicit_bzero(s, n);
	free(s);
	return e;
}

/*
 * The length of `s` as a JSON string, quotes included, written as
 * jansson writes it (only '"' and '\\' escaped); 0 when jansson would
 * refuse it (not UTF-8: overlong forms, surrogates and code points past
 * U+10FFFF too) or it holds a control character, which no claim may.
 */
static size_t
json_str_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 2, k, i;
	uint32_t cp;

	while (*p != '\0') {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p < 0x80) {
			n += *p == '"' || *p == '\\' ? 2 : 1;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			k = 1;
			cp = *p & 0x1f;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			k = 2;
			cp = *p & 0x0f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			k = 3;
			cp = *p & 0x07;
		} else
			return 0;
		for (i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		n += k + 1;
		p += k + 1;
	}
	return n;
}

/* Writes `s` as json_str_len() counted it; returns the end. */
static char *
json_str_put(char *out, const char *s)
{
	*out++ = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			*out++ = '\\';
		*out++ = *s;
	}
	*out++ = '"';
	return out;
}

/*
 * The outer token's claims (§4.5) as compact JSON, in a new string of
 * exactly the right size (it carries the actor token: no copies left
 * behind), byte for byte what json_dumps() made of them: a mint per
 * user, and jansson's objects cost a refresh more than the rest of
 * building the token. NULL when a value is not valid in a claim.
 */
static char *
outer_claims(const char *const *kv, size_t n)
{
	size_t i, len = 1, vlen;
	char *out, *o;

	for (i = 0; i < n; i += 2) {
		if (kv[i + 1] == NULL)
			continue;
		if ((vlen = json_str_len(kv[i + 1])) == 0)
			return NULL;
		len += strlen(kv[i]) + 3 + vlen + 1;
	}
	o = out = xmalloc(len + 1);
	*o++ = '{';
	for (i = 0; i < n; i += 2) {
		if (kv[i + 1] == NULL)
			continue;
		if (o != out + 1)
			*o++ = ',';
		o = json_str_put(o, kv[i]);
		*o++ = ':';
		o = json_str_put(o, kv[i + 1]);
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

/*
 * "<a>.<b>.<c>" in a new string of exactly the right size (no growing
 * buffer that would leave unwiped copies of a credential behind).
 */
static char *
join3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = xmalloc(la + lb + lc + 3);

	memcpy(s, a, la);
	s[la] = '.';
	memcpy(s + la + 1, b, lb);
	s[la + 1 + lb] = '.';
	memcpy(s + la + lb + 2, c, lc + 1);
	return s;
}

static void
free_str_secret(char *s)
{
	if (s != NULL)
		xfree_secret(s, strlen(s));
}

/* The signed actor token (§4.4) as a compact JWS. */
static ps_err
mint_actor(const struct s2s_mint *m, const char *aud, const char *iss,
    const char *nbf, const char *exp, bool delegate, char **out)
{
	unsigned char sha1[20], *sig = NULL;
	char *x5t, *hdr = NULL, *pay = NULL, *input = NULL, *s = NULL;
	size_t siglen = 0;
	json_t *claims;
	ps_err rc = PS_ENOMEM;

	*out = NULL;
	pki_sha1(m->cert_der, m->cert_len, sha1);
	x5t = b64_encode(sha1, sizeof(sha1), true);
	hdr = b64_of_json(json_pack("{s:s, s:s, s:s}", "typ", "JWT", "alg",
	    "RS256", "x5t", x5t));
	free(x5t);
	/* S14's order; trustedfordelegation only for user+app tokens. */
	claims = json_pack("{s:s, s:s, s:s, s:s, s:s}", "aud", aud, "iss",
	    iss, "nbf", nbf, "exp", exp, "nameid", iss);
	if (claims != NULL && delegate && json_object_set_new(claims,
	    "trustedfordelegation", json_string("true")) != 0) {
		json_decref(claims);
		claims = NULL;
	}
	if (claims != NULL && m->addresses != NULL && json_object_set_new(
	    claims, S2S_ADDRESSES_CLAIM, json_string(m->addresses)) != 0) {
		json_decref(claims);
		claims = NULL;
	}
	pay = b64_of_json(claims);
	if (hdr == NULL || pay == NULL) {
		ps_errf(rc, "cannot build the actor token");
		goto out;
	}
	/* RFC 7515 5.1: the signing input is "<header>.<payload>". */
	input = xasprintf("%s.%s", hdr, pay);
	if ((rc = pki_sign_rs256(m->key, input, strlen(input), &sig,
	    &siglen)) != PS_OK)
		goto out;
	s = b64_encode(sig, siglen, true);
	*out = join3(hdr, pay, s);
	rc = PS_OK;
out:
	free(sig);
	free(s);
	free(hdr);
	free_str_secret(pay);
	free_str_secret(input);
	return rc;
}

/*
 * True when `cert` belongs to `key`. Decoding the certificate to compare
 * costs more than the signature itself, and a server mints with the same
 * pair again and again, so the last pair found matching is remembered
 * (by the key and the certificate's digest).
 */
static bool
key_and_cert_match(const struct pki_key *key, const unsigned char *der,
    size_t len)
{
	static _Thread_local const struct pki_key *last_key;
	static _Thread_local unsigned char last_cert[20];
	unsigned char d[20];

	pki_sha1(der, len, d);
	if (key == last_key && memcmp(d, last_cert, sizeof(d)) == 0)
		return true;
	if (!pki_cert_matches_key(der, len, key))
		return false;
	last_key = key;
	memcpy(last_cert, d, sizeof(d));
	return true;
}

/*
 * Checks what a token is minted from and builds its audience and issuer
 * (the caller frees both) and time.
 */
static ps_err
mint_start(const struct s2s_mint *m, char **aud, char **iss, int64_t *now)
{
	ps_err rc = PS_EINVAL;

	if (m == NULL || m->key == NULL || m->cert_der == NULL ||
	    !key_and_cert_match(m->key, m->cert_der, m->cert_len))
		return ps_errf(rc, "token signing needs a key and its "
		    "certificate");
	if (!mint_part_ok(m->client_id) || !mint_part_ok(m->realm) ||
	    !mint_part_ok(m->target_id) || !mint_part_ok(m->target_host) ||
	    !mint_part_ok(m->target_realm))
		return ps_errf(rc, "invalid principal, host or realm for a "
		    "token");
	if (!mint_user_ok(m->smtp) || !mint_user_ok(m->upn))
		return ps_errf(rc, "invalid user claim for a token");
	if (m->lifetime <= 0 || m->lifetime > S2S_MAX_LIFETIME)
		return ps_errf(rc, "token lifetime out of range");
	if (m->addresses != NULL && !addresses_digest_ok(m->addresses))
		return ps_errf(rc, "invalid address digest for a token");
	if (m->addresses != NULL && m->actor != NULL)
		return ps_errf(rc, "an address digest cannot be added to an "
		    "actor token signed already");
	*now = m->now != 0 ? m->now : time_now();
	if (*now < 0 || *now > TOK_MAX_TIME - S2S_MAX_LIFETIME)
		return ps_errf(rc, "token time out of range");
	/* §4.1: principals, hosts and realms are lower case on the wire. */
	*aud = xasprintf("%s/%s@%s", m->target_id, m->target_host,
	    m->target_realm);
	str_lower(*aud);
	*iss = xasprintf("%s@%s", m->client_id, m->realm);
	str_lower(*iss);
	return PS_OK;
}

ps_err
s2s_actor_mint(const struct s2s_mint *m, char **actor, int64_t *expires)
{
	char *aud = NULL, *iss = NULL, nbf[24], exp[24];
	int64_t now;
	ps_err rc;

	*actor = NULL;
	if ((rc = mint_start(m, &aud, &iss, &now)) != PS_OK)
		goto out;
	snprintf(nbf, sizeof(nbf), "%lld", (long long)now);
	snprintf(exp, sizeof(exp), "%lld", (long long)(now + m->lifetime));
	if ((rc = mint_actor(m, aud, iss, nbf, exp, true, actor)) == PS_OK)
		*expires = now + m->lifetime;
out:
	free(aud);
	free(iss);
	return rc;
}

ps_err
s2s_token_mint(const struct s2s_mint *m, char **token)
{
	char *aud = NULL, *iss = NULL, *actor = NULL, *hdr = NULL,
	    *pay = NULL, *tok = NULL, *claims, nbf[24], exp[24];
	const char *user;
	int64_t now, until;
	ps_err rc;

	*token = NULL;
	if ((rc = mint_start(m, &aud, &iss, &now)) != PS_OK)
		goto out;
	until = now + m->lifetime;
	user = m->smtp != NULL ? m->smtp : m->upn;
	if (m->actor != NULL && user != NULL) {
		if (m->actor_expires <= now) {
			rc = ps_errf(PS_EINVAL, "the actor token has expired");
			goto out;
		}
		if (m->actor_expires < until)
			until = m->actor_expires;
	}
	/* §4.4: NumericDates as JSON strings, as Microsoft's library does. */
	snprintf(nbf, sizeof(nbf), "%lld", (long long)now);
	snprintf(exp, sizeof(exp), "%lld", (long long)until);

	if (m->actor != NULL && user != NULL)
		actor = xstrdup(m->actor);
	else if ((rc = mint_actor(m, aud, iss, nbf, exp, user != NULL,
	    &actor)) != PS_OK)
		goto out;

	if (user == NULL) {
		/* §4.4: the actor token alone is the app-only token. */
		tok = actor;
		actor = NULL;
	} else {
		/* §4.5: the unsigned outer token carrying the user. */
		const char *kv[] = { "aud", aud, "iss", iss, "nbf", nbf,
		    "exp", exp, "nameid", user, "nii", TOK_NII_AD, "smtp",
		    m->smtp, "upn", m->upn, "actortoken", actor };

		if ((claims = outer_claims(kv, sizeof(kv) / sizeof(*kv))) ==
		    NULL) {
			rc = ps_errf(PS_EINVAL, "cannot build the outer token");
			goto out;
		}
		/* {"typ":"JWT","alg":"none"} */
		hdr = xstrdup("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0");
		pay = b64_encode(claims, strlen(claims), true);
		free_str_secret(claims);
		/* An empty signature after the trailing dot (§4.5, S15). */
		tok = join3(hdr, pay, "");
	}
	if (strlen(tok) > S2S_MAX_TOKEN) {
		rc = ps_errf(PS_ELIMIT, "token larger than %d bytes",
		    S2S_MAX_TOKEN);
		goto out;
	}
	*token = tok;
	tok = NULL;
	rc = PS_OK;
out:
	free_str_secret(tok);
	free_str_secret(actor);
	free_str_secret(pay);
	free(hdr);
	free(aud);
	free(iss);
	return rc;
}
