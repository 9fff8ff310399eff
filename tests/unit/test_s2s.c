/*
 * Unit tests of s2s: metadata documents in both products' shapes, minting
 * (checked part by part against reference §4.4/§4.5), and validation
 * (§4.6) against hand-built tokens, one forged property at a time: each
 * forgery must be refused with the right reason, and the reason must not
 * leak the token.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "s2s/s2s.h"
#include "t.h"

#define SP_REALM	"3b0c1b6e-9d52-4a42-8a5a-1c0e6f2d7a10"
#define EX_REALM	"9a8b7c6d-1111-4222-8333-944455566677"
#define OTHER_REALM	"0f0e0d0c-0b0a-4908-8706-050403020100"
#define HOST		"mail.contoso.com"
#define PORT		8443
#define NOW		1700000000LL
#define SP_ISS		S2S_SHAREPOINT_ID "@" SP_REALM
#define AUD		S2S_EXCHANGE_ID "/" HOST "@" EX_REALM
#define USER		"test1@contoso.com"
#define DATA		"../data/s2s/"

enum sign { SIGN_RS256, SIGN_NONE, SIGN_HS256, SIGN_JUNK };

static struct pki_key *sp_key, *other_key;
static unsigned char *sp_der, *other_der;
static size_t sp_len, other_len;
static char sp_x5t[64], other_x5t[64];
static struct s2s_metadata sp_md;
static struct s2s_partner partner;
static const struct s2s_expect expect = {
	.client_id = S2S_EXCHANGE_ID, .host = HOST, .port = PORT,
	.realm = EX_REALM, .now = NOW,
};

/* --- helpers --- */

/* A JSON string literal; from a small ring of buffers. */
static const char *
q(const char *s)
{
	static char ring[32][8192];
	static int i;
	char *b = ring[i++ % 32];

	snprintf(b, sizeof(ring[0]), "\"%s\"", s);
	return b;
}

/* {"k1":v1,...}: values are raw JSON, NULL values are left out. */
static char *
obj(const char *k, ...)
{
	struct buf b;
	const char *v;
	bool first = true;
	va_list ap;

	buf_init(&b, 65536);
	buf_adds(&b, "{");
	va_start(ap, k);
	for (; k != NULL; k = va_arg(ap, const char *)) {
		v = va_arg(ap, const char *);
		if (v == NULL)
			continue;
		buf_addf(&b, "%s\"%s\":%s", first ? "" : ",", k, v);
		first = false;
	}
	va_end(ap);
	buf_adds(&b, "}");
	return buf_take(&b, NULL);
}

static char *
b64u(const char *s)
{
	return b64_encode(s, strlen(s), true);
}

/* A compact JWS of raw header and claims JSON. */
static char *
jws(const char *hdr, const char *claims, enum sign how,
    const struct pki_key *key)
{
	char *h = b64u(hdr), *p = b64u(claims), *input, *s = NULL, *out;
	unsigned char *sig = NULL, mac[32];
	unsigned int maclen = 0;
	size_t siglen = 0;

	input = xasprintf("%s.%s", h, p);
	switch (how) {
	case SIGN_RS256:
		if (pki_sign_rs256(key, input, strlen(input), &sig, &siglen) ==
		    PS_OK)
			s = b64_encode(sig, siglen, true);
		break;
	case SIGN_HS256:
		/* Algorithm confusion: the public certificate as HMAC key. */
		HMAC(EVP_sha256(), sp_der, (int)sp_len,
		    (const unsigned char *)input, strlen(input), mac, &maclen);
		s = b64_encode(mac, maclen, true);
		break;
	case SIGN_JUNK:
		s = xstrdup("c2lnbmF0dXJl");
		break;
	case SIGN_NONE:
		s = xstrdup("");
		break;
	}
	out = xasprintf("%s.%s", input, s ? s : "");
	free(h);
	free(p);
	free(input);
	free(sig);
	free(s);
	return out;
}

/* Everything that goes into one test token, as raw JSON values. */
struct tok {
	const char		*a_hdr;
	const char		*a_aud, *a_iss, *a_nameid, *a_nbf, *a_exp,
				*a_tfd, *a_xk, *a_xv;
	enum sign		 a_sign;
	const struct pki_key	*a_key;
	bool			 app_only;	/* the actor alone */
	const char		*o_hdr;
	const char		*o_aud, *o_iss, *o_nbf, *o_exp, *o_smtp,
				*o_upn, *o_nameid, *o_xk, *o_xv;
	bool			 no_actortoken;
	enum sign		 o_sign;
};

static char actor_hdr[256];

static struct tok
good(void)
{
	struct tok t = {
		.a_hdr = actor_hdr,
		.a_aud = "\"" AUD "\"", .a_iss = "\"" SP_ISS "\"",
		.a_nameid = "\"" SP_ISS "\"",
		.a_nbf = "\"1700000000\"", .a_exp = "\"1700003600\"",
		.a_tfd = "\"true\"", .a_sign = SIGN_RS256, .a_key = sp_key,
		.o_hdr = "{\"typ\":\"JWT\",\"alg\":\"none\"}",
		.o_aud = "\"" AUD "\"", .o_iss = "\"" SP_ISS "\"",
		.o_nbf = "\"1700000000\"", .o_exp = "\"1700003600\"",
		.o_smtp = "\"" USER "\"", .o_nameid = "\"" USER "\"",
		.o_sign = SIGN_NONE,
	};

	return t;
}

static char *
make(const struct tok *t)
{
	char *ac, *actor, *oc, *out;
	char *quoted;

	ac = obj("aud", t->a_aud, "iss", t->a_iss, "nbf", t->a_nbf, "exp",
	    t->a_exp, "nameid", t->a_nameid, "trustedfordelegation", t->a_tfd,
	    t->a_xk ? t->a_xk : "x", t->a_xv, (const char *)NULL);
	actor = jws(t->a_hdr, ac, t->a_sign, t->a_key);
	free(ac);
	if (t->app_only)
		return actor;
	quoted = xasprintf("\"%s\"", actor);
	oc = obj("aud", t->o_aud, "iss", t->o_iss, "nbf", t->o_nbf, "exp",
	    t->o_exp, "nameid", t->o_nameid, "smtp", t->o_smtp, "upn",
	    t->o_upn, "actortoken", t->no_actortoken ? NULL : quoted,
	    t->o_xk ? t->o_xk : "x", t->o_xv, (const char *)NULL);
	out = jws(t->o_hdr, oc, t->o_sign, sp_key);
	free(quoted);
	free(oc);
	free(actor);
	return out;
}

static ps_err
check(const char *tok, struct s2s_identity *id)
{
	return s2s_token_validate(tok, &expect, &partner, 1, id);
}

/* Refused with PS_EAUTH, a reason containing `why`, one line, no token. */
static void
refused_tok(const char *tok, const char *why, const char *what)
{
	struct s2s_identity id;
	ps_err rc = check(tok, &id);
	const char *msg = ps_errmsg();

	if (!ok(rc == PS_EAUTH && strstr(msg, why) != NULL &&
	    strchr(msg, '\n') == NULL && strstr(msg, "eyJ") == NULL &&
	    strstr(msg, USER) == NULL && id.user[0] == '\0' &&
	    id.partner[0] == '\0', what))
		printf("#   rc %d, reason \"%s\", want \"%s\"\n", rc, msg, why);
}

static void
refused(const struct tok *t, const char *why, const char *what)
{
	char *tok = make(t);

	refused_tok(tok, why, what);
	free(tok);
}

static void
accepted(const struct tok *t, const char *user, const char *what)
{
	struct s2s_identity id;
	char *tok = make(t);
	ps_err rc = check(tok, &id);

	if (!ok(rc == PS_OK && strcmp(id.user, user) == 0 &&
	    strcmp(id.partner, SP_ISS) == 0 && id.app_only == (user[0] ==
	    '\0'), what))
		printf("#   rc %d, reason \"%s\", user \"%s\"\n", rc,
		    rc ? ps_errmsg() : "", id.user);
	free(tok);
}

/* a followed by b, in a new string. */
static char *
cat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = xmalloc(la + lb + 1);

	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* Part `i` of a compact JWS, base64url-decoded, as a string. */
static char *
part(const char *tok, int i)
{
	const char *p = tok, *e;
	unsigned char *d = NULL;
	size_t n = 0;
	char *s;

	while (i-- > 0)
		p = strchr(p, '.') + 1;
	e = strchr(p, '.');
	if (e == NULL)
		e = p + strlen(p);
	if (b64_decode(p, (size_t)(e - p), &d, &n) != PS_OK)
		return xstrdup("(bad base64)");
	s = xstrndup((const char *)d, n);
	free(d);
	return s;
}

/* --- setup --- */

static void
setup(void)
{
	struct pki_cert_spec spec = { .common_name = "SharePoint STS",
	    .days = 365 };
	unsigned char tp[20];
	struct buf doc;
	char *s;

	ok(pki_key_generate(&sp_key) == PS_OK && pki_cert_create(sp_key,
	    &spec, NULL, NULL, 0, &sp_der, &sp_len) == PS_OK,
	    "portal signing key and certificate");
	spec.common_name = "intruder";
	ok(pki_key_generate(&other_key) == PS_OK && pki_cert_create(other_key,
	    &spec, NULL, NULL, 0, &other_der, &other_len) == PS_OK,
	    "unregistered key and certificate");
	pki_sha1(sp_der, sp_len, tp);
	s = b64_encode(tp, 20, true);
	str_copy(sp_x5t, s, sizeof(sp_x5t));
	free(s);
	pki_sha1(other_der, other_len, tp);
	s = b64_encode(tp, 20, true);
	str_copy(other_x5t, s, sizeof(other_x5t));
	free(s);
	snprintf(actor_hdr, sizeof(actor_hdr),
	    "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"x5t\":\"%s\"}", sp_x5t);

	/* The partner, as the master learns it: from the portal's document. */
	buf_init(&doc, S2S_MAX_METADATA);
	ok(s2s_metadata_sharepoint(&doc, SP_REALM, sp_der, sp_len) == PS_OK &&
	    s2s_metadata_parse(doc.b_data, doc.b_len, &sp_md) == PS_OK,
	    "partner registered from its SharePoint-shape metadata");
	buf_cleanup(&doc);
	partner.issuer = sp_md.issuer;
	partner.realm = sp_md.realm;
	partner.certs = sp_md.certs;
	partner.n_certs = sp_md.n_certs;
}

/* --- metadata --- */

static void
test_metadata_exchange(void)
{
	struct s2s_metadata md;
	struct buf doc;
	unsigned char tp[20];
	char *x5t, *want;
	const char *id;

	buf_init(&doc, S2S_MAX_METADATA);
	ok(s2s_metadata_exchange(&doc, EX_REALM, sp_der, sp_len,
	    "https://" HOST "/autodiscover/metadata/json/1") == PS_OK,
	    "Exchange document written");
	pki_sha1(sp_der, sp_len, tp);
	x5t = b64_encode(tp, 20, false);
	want = xasprintf("\"keyinfo\":{\"x5t\":\"%s\"}", x5t);
	ok(strstr(doc.b_data, want) != NULL,
	    "x5t is standard base64 of SHA-1(DER)");
	free(want);
	free(x5t);
	ok(strncmp(doc.b_data, "{\"id\":\"_", 8) == 0 &&
	    strstr(doc.b_data, "\"version\":\"1.0\",\"name\":\"Exchange\","
	    "\"realm\":\"" EX_REALM "\",\"serviceName\":\"" S2S_EXCHANGE_ID
	    "\",\"issuer\":\"" S2S_EXCHANGE_ID "@" EX_REALM "\","
	    "\"allowedAudiences\":[\"" S2S_EXCHANGE_ID "@" EX_REALM "\"],"
	    "\"keys\":[{\"usage\":\"signing\",\"keyinfo\":") != NULL,
	    "Exchange keys in Exchange's order");
	id = doc.b_data + 8;
	{
		char g[37];

		str_copy(g, id, sizeof(g));
		ok(guid_valid(g) && id[36] == '"', "id is \"_<guid>\"");
	}
	ok(strstr(doc.b_data, "\"keyvalue\":{\"type\":\"x509Certificate\","
	    "\"value\":\"") != NULL && strstr(doc.b_data, "\"endpoints\":[{"
	    "\"location\":\"https://" HOST "/autodiscover/metadata/json/1\","
	    "\"protocol\":\"OAuth2\",\"usage\":\"metadata\"}]}") != NULL,
	    "keyvalue and endpoints shapes");
	ok(s2s_metadata_parse(doc.b_data, doc.b_len, &md) == PS_OK,
	    "Exchange document re-parses");
	is_str(md.name, "Exchange", "name");
	is_str(md.service_name, S2S_EXCHANGE_ID, "serviceName");
	is_str(md.realm, EX_REALM, "realm");
	is_str(md.issuer, S2S_EXCHANGE_ID "@" EX_REALM, "issuer");
	ok(md.n_certs == 1 && md.certs[0].len == sp_len &&
	    memcmp(md.certs[0].der, sp_der, sp_len) == 0 &&
	    memcmp(md.certs[0].sha1, tp, 20) == 0,
	    "certificate and thumbprint");
	s2s_metadata_cleanup(&md);
	{
		struct buf again;

		buf_init(&again, S2S_MAX_METADATA);
		s2s_metadata_exchange(&again, EX_REALM, sp_der, sp_len,
		    "https://" HOST "/autodiscover/metadata/json/1");
		is_str(again.b_data, doc.b_data, "document is stable");
		buf_cleanup(&again);
	}
	buf_cleanup(&doc);
	buf_init(&doc, S2S_MAX_METADATA);
	ok(s2s_metadata_exchange(&doc, "bad realm", sp_der, sp_len, "x") ==
	    PS_EINVAL, "bad realm refused");
	ok(s2s_metadata_exchange(&doc, EX_REALM, (const unsigned char *)"xx",
	    2, "x") == PS_EINVAL, "bad certificate refused");
	buf_cleanup(&doc);
	buf_init(&doc, 100);
	ok(s2s_metadata_exchange(&doc, EX_REALM, sp_der, sp_len, "x") ==
	    PS_ELIMIT, "buffer cap honoured");
	buf_cleanup(&doc);
}

static void
test_metadata_sharepoint(void)
{
	static const char pre[] = "{\"issuer\":\"" SP_ISS "\",\"keys\":[{"
	    "\"keyValue\":{\"type\":\"x509certificate\",\"value\":\"";
	struct buf doc;

	buf_init(&doc, S2S_MAX_METADATA);
	ok(s2s_metadata_sharepoint(&doc, SP_REALM, sp_der, sp_len) == PS_OK &&
	    strncmp(doc.b_data, pre, strlen(pre)) == 0 &&
	    strstr(doc.b_data, "\"usage\":\"Signing\"}],\"name\":\""
	    S2S_SHAREPOINT_ID "\",\"realm\":\"" SP_REALM "\",\"serviceName\":\""
	    S2S_SHAREPOINT_ID "\"}") != NULL, "SharePoint shape (§4.2)");
	buf_cleanup(&doc);
	is_str(sp_md.realm, SP_REALM, "parsed realm");
	is_str(sp_md.issuer, SP_ISS, "parsed issuer");
	is_str(sp_md.name, S2S_SHAREPOINT_ID, "parsed name");
	ok(sp_md.n_certs == 1, "one certificate");
}

static void
parse_file(const char *name, const char *realm, const char *svc,
    const char *what)
{
	struct s2s_metadata md;
	char *path = xasprintf(DATA "%s", name), *data = NULL, *der = NULL;
	size_t len = 0, dlen = 0;
	ps_err rc;

	rc = file_read(path, S2S_MAX_METADATA, &data, &len);
	if (rc == PS_OK)
		rc = s2s_metadata_parse(data, len, &md);
	if (rc == PS_OK)
		file_read(DATA "sharepoint-sts.der", 65536, &der, &dlen);
	if (!ok(rc == PS_OK && strcmp(md.realm, realm) == 0 &&
	    strcmp(md.service_name, svc) == 0 && md.n_certs == 1 &&
	    md.certs[0].len == dlen && memcmp(md.certs[0].der, der, dlen) == 0,
	    what))
		printf("#   %s\n", rc ? ps_errmsg() : "fields differ");
	if (rc == PS_OK)
		s2s_metadata_cleanup(&md);
	free(der);
	free(data);
	free(path);
}

static void
bad_doc(const char *json, ps_err want, const char *why, const char *what)
{
	struct s2s_metadata md;
	ps_err rc = s2s_metadata_parse(json, strlen(json), &md);

	if (!ok(rc == want && strstr(ps_errmsg(), why) != NULL &&
	    md.n_certs == 0 && md.issuer == NULL, what))
		printf("#   rc %d \"%s\"\n", rc, ps_errmsg());
	if (rc == PS_OK)
		s2s_metadata_cleanup(&md);
}

static void
test_metadata_parse(void)
{
	char *b64 = b64_encode(sp_der, sp_len, false), *doc, *pem;
	struct s2s_metadata md;
	unsigned char tp[20];
	char *x5t;

	parse_file("sharepoint-metadata.json", SP_REALM, S2S_SHAREPOINT_ID,
	    "SharePoint capture shape (keyValue, Signing) parses");
	parse_file("exchange-metadata.json", SP_REALM, S2S_EXCHANGE_ID,
	    "Exchange fixture parses");

	/* Key names and enums in any case; realm from the issuer. */
	doc = xasprintf("{\"ISSUER\":\"" SP_ISS "\",\"Keys\":[{\"USAGE\":"
	    "\"SIGNING\",\"KeyValue\":{\"Type\":\"X509CERTIFICATE\",\"Value\":"
	    "\"%s\"}}]}", b64);
	ok(s2s_metadata_parse(doc, strlen(doc), &md) == PS_OK &&
	    strcmp(md.realm, SP_REALM) == 0 &&
	    strcmp(md.service_name, S2S_SHAREPOINT_ID) == 0 &&
	    strcmp(md.name, "") == 0, "any casing; realm and serviceName "
	    "from the issuer");
	s2s_metadata_cleanup(&md);
	free(doc);

	/* Unusable keys are skipped while one usable key remains. */
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"keys\":["
	    "{\"usage\":\"encryption\",\"keyValue\":{\"type\":"
	    "\"x509certificate\",\"value\":\"%s\"}},"
	    "{\"usage\":\"signing\",\"keyValue\":{\"type\":"
	    "\"x509certificate\",\"value\":\"AAAA\"}},"
	    "{\"usage\":\"signing\",\"keyValue\":{\"type\":"
	    "\"x509certificate\",\"value\":\"%s\"}}]}", b64, b64);
	ok(s2s_metadata_parse(doc, strlen(doc), &md) == PS_OK &&
	    md.n_certs == 1, "non-signing and bad keys skipped");
	s2s_metadata_cleanup(&md);
	free(doc);

	bad_doc("{\"issuer\":\"" SP_ISS "\",\"keys\":[]}", PS_EINVAL,
	    "no keys", "empty keys refused");
	bad_doc("{\"issuer\":\"" SP_ISS "\"}", PS_EINVAL, "no keys",
	    "missing keys refused");
	bad_doc("{\"issuer\":\"" SP_ISS "\",\"keys\":[{\"usage\":\"signing\","
	    "\"keyValue\":{\"type\":\"x509certificate\",\"value\":"
	    "\"MIIBAAAA\"}}]}", PS_EINVAL, "no usable signing certificate",
	    "bad certificate refused");
	pem = xasprintf("-----BEGIN CERTIFICATE-----\n%s\n"
	    "-----END CERTIFICATE-----\n", b64);
	x5t = b64_encode(pem, strlen(pem), false);
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"keys\":[{\"usage\":"
	    "\"signing\",\"keyValue\":{\"type\":\"x509certificate\",\"value\":"
	    "\"%s\"}}]}", x5t);
	bad_doc(doc, PS_EINVAL, "base64 DER", "base64 of PEM refused");
	free(doc);
	free(x5t);
	free(pem);
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"keys\":[{\"usage\":"
	    "\"signing\",\"keyValue\":{\"type\":\"RSA\",\"value\":\"%s\"}}]}",
	    b64);
	bad_doc(doc, PS_EINVAL, "not an X.509", "other key type refused");
	free(doc);
	pki_sha1(other_der, other_len, tp);
	x5t = b64_encode(tp, 20, false);
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"keys\":[{\"usage\":"
	    "\"signing\",\"keyinfo\":{\"x5t\":\"%s\"},\"keyvalue\":{\"type\":"
	    "\"x509Certificate\",\"value\":\"%s\"}}]}", x5t, b64);
	bad_doc(doc, PS_EINVAL, "x5t", "x5t of another certificate refused");
	free(doc);
	free(x5t);
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"keys\":[{\"usage\":"
	    "\"signing\",\"keyValue\":{\"type\":\"x509certificate\",\"value\":"
	    "\"%s\"},\"keyvalue\":{}}]}", b64);
	bad_doc(doc, PS_EINVAL, "different cases",
	    "keyValue and keyvalue together refused");
	free(doc);
	doc = xasprintf("{\"issuer\":\"" SP_ISS "\",\"realm\":\"" OTHER_REALM
	    "\",\"keys\":[{\"usage\":\"signing\",\"keyValue\":{\"type\":"
	    "\"x509certificate\",\"value\":\"%s\"}}]}", b64);
	bad_doc(doc, PS_EINVAL, "does not match", "realm contradicting the "
	    "issuer refused");
	free(doc);
	doc = xasprintf("{\"issuer\":\"" S2S_SHAREPOINT_ID "\",\"keys\":[{"
	    "\"usage\":\"signing\",\"keyValue\":{\"type\":\"x509certificate\","
	    "\"value\":\"%s\"}}]}", b64);
	bad_doc(doc, PS_EINVAL, "issuer", "issuer without realm refused");
	free(doc);
	bad_doc("{\"keys\":[]}", PS_EINVAL, "issuer", "no issuer refused");
	bad_doc("{\"issuer\":\"a@b\",", PS_EINVAL, "not valid JSON",
	    "truncated JSON refused");
	bad_doc("[1]", PS_EINVAL, "not a JSON object", "array refused");
	bad_doc("{\"issuer\":\"a@b\",\"issuer\":\"c@d\",\"keys\":[]}",
	    PS_EINVAL, "JSON", "duplicate member refused");
	bad_doc("{\"issuer\":5,\"keys\":[]}", PS_EINVAL, "not a string",
	    "non-string issuer refused");
	{
		char *big = xmalloc(S2S_MAX_METADATA + 2);

		memset(big, ' ', S2S_MAX_METADATA + 1);
		big[S2S_MAX_METADATA + 1] = '\0';
		bad_doc(big, PS_ELIMIT, "larger than", "oversized refused");
		free(big);
	}
	free(b64);
}

/* --- minting --- */

static struct s2s_mint
mint_args(void)
{
	struct s2s_mint m = {
		.key = sp_key, .cert_der = sp_der, .cert_len = sp_len,
		.client_id = S2S_SHAREPOINT_ID, .realm = SP_REALM,
		.target_id = S2S_EXCHANGE_ID, .target_host = HOST,
		.target_realm = EX_REALM, .smtp = USER, .now = NOW,
		.lifetime = 3600,
	};

	return m;
}

/*
 * The outer claims are written by hand; they must be what jansson writes
 * for the same object, quotes and backslashes escaped, UTF-8 as it is,
 * and refused where jansson refuses (not UTF-8).
 */
static void
test_mint_claims_json(void)
{
	static const char *const good[] = {
		"\"odd\\name\"@contoso.com",	/* quoted local part */
		"j\xc3\xbcrgen@contoso.com",		/* U+00FC */
		"\xe2\x82\xac\xf0\x9f\x98\x80@contoso.com", /* 3 and 4 bytes */
	};
	static const char *const bad[] = {
		"\xc3@contoso.com",			/* cut short */
		"\xc0\xaf@contoso.com",		/* overlong '/' */
		"\xed\xa0\x80@contoso.com",		/* a surrogate */
		"\xf4\x90\x80\x80@contoso.com",	/* past U+10FFFF */
	};
	struct s2s_mint m;
	char *tok, *pay, *ac, *want, *actor, what[80];
	json_t *j;
	size_t i;
	bool same;

	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		m = mint_args();
		m.smtp = good[i];
		tok = NULL;
		snprintf(what, sizeof(what), "claims %zu: minted", i);
		if (!ok(s2s_token_mint(&m, &tok) == PS_OK, what))
			continue;
		pay = part(tok, 1);
		ac = strstr(pay, "\"actortoken\":\"");
		actor = ac ? xstrndup(ac + 14, strlen(ac + 14) - 2) : NULL;
		j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "aud",
		    AUD, "iss", SP_ISS, "nbf", "1700000000", "exp",
		    "1700003600", "nameid", good[i], "nii",
		    "urn:office:idp:activedirectory", "smtp", good[i],
		    "actortoken", actor ? actor : "");
		want = j ? json_dumps(j, JSON_COMPACT) : NULL;
		same = want != NULL && strcmp(pay, want) == 0;
		snprintf(what, sizeof(what), "claims %zu: byte for byte what "
		    "jansson writes", i);
		ok(same, what);
		if (!same)
			printf("# ours    %s\n# jansson %s\n", pay,
			    want ? want : "-");
		json_decref(j);
		free(want);
		free(actor);
		free(pay);
		free(tok);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		m = mint_args();
		m.smtp = bad[i];
		tok = NULL;
		snprintf(what, sizeof(what), "not UTF-8 (%zu): refused", i);
		ok(s2s_token_mint(&m, &tok) != PS_OK && tok == NULL, what);
		free(tok);
	}
}

static void
test_mint(void)
{
	struct s2s_mint m = mint_args();
	struct s2s_identity id;
	char *tok = NULL, *s, *actor, *want, *ac;
	size_t n;

	if (!ok(s2s_token_mint(&m, &tok) == PS_OK && tok != NULL, "minted")) {
		free(tok);
		return;
	}
	n = strlen(tok);
	ok(n > 0 && tok[n - 1] == '.', "outer token ends with an empty "
	    "signature");
	s = part(tok, 0);
	is_str(s, "{\"typ\":\"JWT\",\"alg\":\"none\"}", "outer header");
	free(s);
	s = part(tok, 1);
	ac = strstr(s, ",\"actortoken\":\"");
	ok(ac != NULL, "outer carries actortoken");
	if (ac == NULL) {
		free(s);
		free(tok);
		return;
	}
	actor = xstrndup(ac + 15, strlen(ac + 15) - 2);
	*ac = '\0';
	is_str(s, "{\"aud\":\"" AUD "\",\"iss\":\"" SP_ISS "\",\"nbf\":"
	    "\"1700000000\",\"exp\":\"1700003600\",\"nameid\":\"" USER "\","
	    "\"nii\":\"urn:office:idp:activedirectory\",\"smtp\":\"" USER "\"",
	    "outer claims (§4.5)");
	free(s);
	s = part(actor, 0);
	want = xasprintf("{\"typ\":\"JWT\",\"alg\":\"RS256\",\"x5t\":\"%s\"}",
	    sp_x5t);
	is_str(s, want, "actor header: x5t = base64url SHA-1 of DER");
	free(want);
	free(s);
	s = part(actor, 1);
	is_str(s, "{\"aud\":\"" AUD "\",\"iss\":\"" SP_ISS "\",\"nbf\":"
	    "\"1700000000\",\"exp\":\"1700003600\",\"nameid\":\"" SP_ISS "\","
	    "\"trustedfordelegation\":\"true\"}", "actor claims (§4.4)");
	free(s);
	free(actor);

	ok(check(tok, &id) == PS_OK, "minted token validates");
	is_str(id.user, USER, "user is the smtp");
	is_str(id.smtp, USER, "smtp claim");
	is_str(id.nameid, USER, "nameid claim");
	is_str(id.partner, SP_ISS, "partner is the actor nameid");
	ok(!id.app_only, "not app-only");
	free(tok);

	/* upn only. */
	m.smtp = NULL;
	m.upn = "test2@contoso.com";
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK &&
	    strcmp(id.user, "test2@contoso.com") == 0 && id.smtp[0] == '\0',
	    "upn-only token: user is the upn");
	free(tok);

	/* No user: the actor alone, app-only, no trustedfordelegation. */
	m.upn = NULL;
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK &&
	    id.app_only && id.user[0] == '\0' &&
	    strcmp(id.partner, SP_ISS) == 0, "app-only token validates");
	s = part(tok, 1);
	ok(strstr(s, "trustedfordelegation") == NULL && tok[strlen(tok) - 1]
	    != '.', "app-only token is the signed actor alone");
	free(s);
	free(tok);

	/* Host with port, mixed case: lower-cased on the wire (§4.1). */
	m = mint_args();
	m.target_host = "Mail.Contoso.COM:8443";
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK,
	    "host:port audience validates");
	s = part(tok, 1);
	ok(strstr(s, "/mail.contoso.com:8443@") != NULL, "audience lower "
	    "case");
	free(s);
	free(tok);
	m.now = 0;
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_EAUTH &&
	    strstr(ps_errmsg(), "not yet valid") != NULL,
	    "now = 0 mints with the current time");
	free(tok);

	m = mint_args();
	m.cert_der = other_der;
	m.cert_len = other_len;
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL && tok == NULL,
	    "certificate of another key refused");
	m = mint_args();
	m.lifetime = 0;
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL, "zero lifetime refused");
	m.lifetime = S2S_MAX_LIFETIME + 1;
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL, "a lifetime the validator "
	    "would refuse is not minted");
	m.lifetime = S2S_MAX_LIFETIME;
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK,
	    "the longest lifetime minted validates");
	free(tok);
	m = mint_args();
	m.client_id = "a@b";
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL, "client id with @ refused");
	m = mint_args();
	m.target_host = "evil/host";
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL, "host with / refused");
	m = mint_args();
	m.smtp = "a\nb@contoso.com";
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL, "smtp with newline "
	    "refused");
}

/* A kept actor token serves every user's token until it expires. */
static void
test_mint_actor(void)
{
	struct s2s_mint m = mint_args();
	struct s2s_identity id;
	char *actor = NULL, *t1 = NULL, *t2 = NULL, *s;
	int64_t expires = 0;

	ok(s2s_actor_mint(&m, &actor, &expires) == PS_OK && actor != NULL &&
	    expires == NOW + 3600, "actor token minted, expiring with it");
	s = part(actor, 1);
	ok(s && strstr(s, "\"trustedfordelegation\":\"true\"") != NULL,
	    "the kept actor is trusted for delegation");
	free(s);
	m.actor = actor;
	m.actor_expires = expires;
	m.now = NOW + 60;
	ok(s2s_token_mint(&m, &t1) == PS_OK && check(t1, &id) == PS_OK &&
	    strcmp(id.user, USER) == 0, "a token around the kept actor "
	    "validates");
	m.smtp = "test2@contoso.com";
	ok(s2s_token_mint(&m, &t2) == PS_OK && check(t2, &id) == PS_OK &&
	    strcmp(id.user, "test2@contoso.com") == 0, "another user's token "
	    "around the same actor validates");
	s = part(t2, 1);
	ok(s && strstr(s, actor) != NULL && strstr(s,
	    "\"exp\":\"1700003600\"") != NULL, "it carries that actor and "
	    "expires with it, not an hour after it was made");
	free(s);
	free(t1);
	free(t2);
	t1 = NULL;
	m.now = NOW + 3600;
	ok(s2s_token_mint(&m, &t1) == PS_EINVAL && t1 == NULL &&
	    strstr(ps_errmsg(), "expired") != NULL, "an expired actor is "
	    "not wrapped");
	free(actor);
}

/* --- validation: the good path and each forgery --- */

static void
test_validate_good(void)
{
	struct tok t = good();

	accepted(&t, USER, "hand-built token accepted");
	t.a_nbf = t.o_nbf = "1700000000";
	t.a_exp = t.o_exp = "1700003600";
	accepted(&t, USER, "numeric nbf/exp accepted");
	t = good();
	t.o_smtp = NULL;
	t.o_upn = q("upn@contoso.com");
	accepted(&t, "upn@contoso.com", "user from upn without smtp");
	t.o_upn = NULL;
	accepted(&t, USER, "user from nameid alone");
	t = good();
	t.o_upn = q("upn@contoso.com");
	accepted(&t, USER, "smtp preferred over upn");
	t = good();
	t.a_tfd = "true";
	accepted(&t, USER, "trustedfordelegation as JSON true");
	t.a_tfd = "\"True\"";
	accepted(&t, USER, "trustedfordelegation \"True\" (.NET bool)");
	t = good();
	t.a_aud = t.o_aud = q(S2S_EXCHANGE_ID "/MAIL.Contoso.Com@" EX_REALM);
	accepted(&t, USER, "host compares case-insensitively");
	t.a_aud = t.o_aud = q(S2S_EXCHANGE_ID "/" HOST ":8443@" EX_REALM);
	accepted(&t, USER, "host:port with our port");
	t.a_aud = t.o_aud = q(S2S_EXCHANGE_ID "/" HOST "@" SP_REALM);
	accepted(&t, USER, "partner's realm in aud");
	t = good();
	t.a_nbf = t.o_nbf = "\"1699990000\"";
	t.a_exp = t.o_exp = "\"1699999800\"";
	accepted(&t, USER, "expired 200 s ago: within skew");
	t = good();
	t.a_nbf = t.o_nbf = "\"1700000200\"";
	accepted(&t, USER, "valid in 200 s: within skew");
	t = good();
	t.app_only = true;
	accepted(&t, "", "signed actor alone: app-only");
	t.a_tfd = NULL;
	accepted(&t, "", "app-only needs no trustedfordelegation");
}

static void
test_validate_alg(void)
{
	struct tok t = good();
	char hdr[256];

	t.no_actortoken = true;
	refused(&t, "without an actortoken", "outer alg none without "
	    "actortoken");
	t = good();
	t.o_sign = SIGN_JUNK;
	refused(&t, "alg none with a signature", "outer alg none with a "
	    "signature");

	t = good();
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"none\","
	    "\"x5t\":\"%s\"}", sp_x5t);
	t.a_hdr = hdr;
	t.a_sign = SIGN_NONE;
	refused(&t, "alg is not RS256", "actor alg none");

	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"HS256\","
	    "\"x5t\":\"%s\"}", sp_x5t);
	t.a_sign = SIGN_HS256;
	refused(&t, "alg is not RS256", "actor HS256 keyed with the "
	    "certificate (alg confusion)");
	t.app_only = true;
	refused(&t, "alg is not RS256", "HS256 token alone (alg confusion)");

	t = good();
	t.a_hdr = hdr;
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"RS256 \","
	    "\"x5t\":\"%s\"}", sp_x5t);
	refused(&t, "alg is not RS256", "alg \"RS256 \" refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"rs256\","
	    "\"x5t\":\"%s\"}", sp_x5t);
	refused(&t, "alg is not RS256", "alg \"rs256\" refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"ES256\","
	    "\"x5t\":\"%s\"}", sp_x5t);
	refused(&t, "alg is not RS256", "alg ES256 refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"x5t\":\"%s\"}",
	    sp_x5t);
	refused(&t, "no alg", "missing alg refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":[\"RS256\"],"
	    "\"x5t\":\"%s\"}", sp_x5t);
	refused(&t, "no alg", "alg as an array refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"RS256\","
	    "\"x5t\":\"%s\",\"crit\":[\"exp\"]}", sp_x5t);
	refused(&t, "crit", "crit header refused");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JOSE+JSON\",\"alg\":\"RS256\","
	    "\"x5t\":\"%s\"}", sp_x5t);
	refused(&t, "typ is not JWT", "typ other than JWT refused");
	t = good();
	t.o_hdr = "{\"typ\":\"JWT\",\"alg\":\"None\"}";
	refused(&t, "alg is not RS256", "outer alg \"None\" is not none");
}

static void
test_validate_key(void)
{
	struct tok t = good();
	char hdr[256];
	char *a, *b, *spliced, *dot;

	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"RS256\","
	    "\"x5t\":\"%s\"}", other_x5t);
	t.a_hdr = hdr;
	t.a_key = other_key;
	refused(&t, "x5t names no partner certificate", "x5t of an "
	    "unregistered certificate");
	t = good();
	t.a_key = other_key;
	refused(&t, "bad signature", "right x5t, another key's signature");
	t.a_sign = SIGN_JUNK;
	refused(&t, "bad signature", "junk signature");
	t.a_sign = SIGN_NONE;
	refused(&t, "signature is not base64url", "empty signature");
	t = good();
	t.a_hdr = "{\"typ\":\"JWT\",\"alg\":\"RS256\"}";
	refused(&t, "no x5t", "missing x5t");
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"alg\":\"RS256\","
	    "\"x5t\":\"%s=\"}", sp_x5t);
	t.a_hdr = hdr;
	refused(&t, "x5t is not", "padded x5t refused");
	t.a_hdr = "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"x5t\":\"AAAA\"}";
	refused(&t, "x5t is not", "short x5t refused");

	/* Tampered payload: signed claims of one token, payload of another. */
	t = good();
	t.app_only = true;
	a = make(&t);
	t.a_aud = q(S2S_EXCHANGE_ID "/" HOST "@" SP_REALM);
	t.a_exp = "\"1800000000\"";
	b = make(&t);
	dot = strrchr(b, '.');
	*dot = '\0';
	spliced = xasprintf("%s%s", b, strrchr(a, '.'));
	refused_tok(spliced, "bad signature", "tampered payload");
	free(spliced);
	/* And inside an outer token. */
	spliced = xasprintf("\"%s%s\"", b, strrchr(a, '.'));
	t = good();
	t.no_actortoken = true;
	t.o_xk = "actortoken";
	t.o_xv = spliced;
	refused(&t, "bad signature", "tampered actor inside an outer token");
	free(spliced);
	free(a);
	free(b);
}

static void
test_validate_principals(void)
{
	struct tok t = good();
	struct s2s_partner p2;
	struct s2s_identity id;
	char *tok;

	t.a_iss = t.a_nameid = t.o_iss = q("00000004-0000-0ff1-ce00-"
	    "000000000000@" SP_REALM);
	refused(&t, "issuer is not the partner", "actor iss/nameid of "
	    "another principal");
	t = good();
	t.a_nameid = q("00000004-0000-0ff1-ce00-000000000000@" SP_REALM);
	refused(&t, "iss and nameid differ", "actor iss != nameid");
	t = good();
	t.a_nameid = NULL;
	refused(&t, "iss or nameid missing", "actor nameid missing");
	t = good();
	t.a_iss = t.a_nameid = t.o_iss = q(S2S_SHAREPOINT_ID "@" OTHER_REALM);
	refused(&t, "issuer is not the partner", "actor in another realm");
	t = good();
	t.a_iss = t.a_nameid = t.o_iss = q(S2S_SHAREPOINT_ID);
	refused(&t, "nameid is not <id>@<realm>", "actor nameid without "
	    "realm");

	/* A partner whose configured realm is not its issuer's. */
	p2 = partner;
	p2.realm = OTHER_REALM;
	t = good();
	tok = make(&t);
	ok(s2s_token_validate(tok, &expect, &p2, 1, &id) == PS_EAUTH &&
	    strstr(ps_errmsg(), "nameid realm is not the partner's realm"),
	    "nameid realm must be the partner's realm");
	p2.realm = "*";
	ok(s2s_token_validate(tok, &expect, &p2, 1, &id) == PS_OK,
	    "wildcard partner realm falls back to the issuer's");
	ok(s2s_token_validate(tok, &expect, NULL, 0, &id) == PS_EAUTH &&
	    strstr(ps_errmsg(), "no partner certificate"),
	    "no partners: refused");
	free(tok);

	t = good();
	t.o_iss = q("00000004-0000-0ff1-ce00-000000000000@" SP_REALM);
	refused(&t, "iss is not the actor's nameid", "outer iss != actor "
	    "nameid");
	t.o_iss = q("00000003-0000-0FF1-CE00-000000000000@" SP_REALM);
	refused(&t, "iss is not the actor's nameid", "outer iss differs in "
	    "case only");
	t.o_iss = NULL;
	refused(&t, "iss is not the actor's nameid", "outer iss missing");
	t = good();
	t.a_xk = "actortoken";
	t.a_xv = q("x.y.z");
	refused(&t, "carries an actortoken", "signed token with actortoken");
}

/* Each audience forgery, on the actor and then on the outer token. */
static void
aud_case(const char *aud, const char *why, const char *what)
{
	struct tok t = good();
	char *w;

	t.a_aud = aud;
	w = xasprintf("actor: %s", what);
	refused(&t, why, w);
	free(w);
	t = good();
	t.o_aud = aud;
	w = xasprintf("outer: %s", what);
	refused(&t, why, w);
	free(w);
}

static void
test_validate_aud(void)
{
	aud_case(q("00000003-0000-0ff1-ce00-000000000000/" HOST "@" EX_REALM),
	    "not for client id", "wrong client_id");
	aud_case(q("00000002-0000-0FF1-CE00-000000000000/" HOST "@" EX_REALM),
	    "not for client id", "client_id in another case");
	aud_case(q(S2S_EXCHANGE_ID "/evil.contoso.com@" EX_REALM),
	    "not for host", "wrong host");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST ".@" EX_REALM), "not for host",
	    "host with trailing dot");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST ":443@" EX_REALM),
	    "another port", "wrong port");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST ":08443@" EX_REALM), "bad port",
	    "port with a leading zero");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST ":@" EX_REALM), "bad port",
	    "empty port");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST ":84a3@" EX_REALM), "bad port",
	    "non-numeric port");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST "@" OTHER_REALM),
	    "another realm", "wrong realm");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST "@9A8B7C6D-1111-4222-8333-"
	    "944455566677"), "another realm", "realm in another case");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST "@*"), "another realm",
	    "wildcard realm");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST "/x@" EX_REALM), "extra parts",
	    "extra path part");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST "@" EX_REALM "@x"), "extra parts",
	    "extra realm part");
	aud_case(q("x@" S2S_EXCHANGE_ID "/" HOST "@" EX_REALM), "extra parts",
	    "extra principal part");
	aud_case(q(S2S_EXCHANGE_ID "@" EX_REALM), "not <client_id>",
	    "no host part");
	aud_case(q(S2S_EXCHANGE_ID "/" HOST), "not <client_id>",
	    "no realm part");
	aud_case("[" "\"" AUD "\"" "]", "claim aud is not a string",
	    "aud as an array");
	aud_case(NULL, "no aud claim", "aud missing");
}

static void
test_validate_times(void)
{
	struct tok t = good();

	t.a_nbf = "\"1699990000\"";
	t.a_exp = "\"1699999699\"";
	refused(&t, "actor token: expired", "actor expired beyond skew");
	t = good();
	t.o_nbf = "1699990000";
	t.o_exp = "1699999699";
	refused(&t, "outer token: expired", "outer expired beyond skew");
	t = good();
	t.a_nbf = "\"1700000301\"";
	refused(&t, "actor token: not yet valid", "actor not yet valid");
	t = good();
	t.o_nbf = "1700000301";
	refused(&t, "outer token: not yet valid", "outer not yet valid");
	t = good();
	t.a_exp = NULL;
	refused(&t, "actor token: no exp", "actor without exp");
	t = good();
	t.o_exp = NULL;
	refused(&t, "outer token: no exp", "outer without exp");
	t = good();
	t.a_nbf = "\"1700000000 \"";
	refused(&t, "not a NumericDate", "nbf with a space");
	t.a_nbf = "\"-1\"";
	refused(&t, "not a NumericDate", "negative nbf string");
	t.a_nbf = "true";
	refused(&t, "not a NumericDate", "boolean nbf");
	t = good();
	t.o_exp = "\"\"";
	refused(&t, "not a NumericDate", "empty exp");
	t = good();
	t.a_nbf = "\"1700003601\"";
	refused(&t, "nbf is after exp", "nbf after exp");
	t = good();
	t.a_exp = "99999999999999999999";
	refused(&t, "JSON", "exp too large for JSON integers");

	/* At most S2S_MAX_LIFETIME (12 h) between nbf and exp, each token. */
	t = good();
	t.a_exp = t.o_exp = "\"1700043200\"";
	accepted(&t, USER, "a lifetime of exactly 12 hours accepted");
	t.a_exp = "\"1700043201\"";
	refused(&t, "actor token: lifetime longer than 12 hours",
	    "actor valid a second longer than 12 hours");
	t = good();
	t.o_exp = "1700043201";
	refused(&t, "outer token: lifetime longer than 12 hours",
	    "outer valid a second longer than 12 hours");
	t = good();
	t.a_nbf = t.o_nbf = "\"1699999000\"";
	t.a_exp = t.o_exp = "\"4855759000\"";
	refused(&t, "actor token: lifetime longer than 12 hours",
	    "a token valid for 100 years refused");
	/* Without nbf, counted from now, with the clock skew. */
	t = good();
	t.a_nbf = t.o_nbf = NULL;
	t.a_exp = t.o_exp = "\"1700043500\"";
	accepted(&t, USER, "no nbf: exp 12 hours and the skew ahead accepted");
	t.o_exp = "\"1700043501\"";
	refused(&t, "outer token: lifetime longer than 12 hours",
	    "no nbf: exp a second further refused");
	t = good();
	t.app_only = true;
	t.a_nbf = NULL;
	t.a_exp = "\"4855759000\"";
	refused(&t, "actor token: lifetime longer than 12 hours",
	    "app-only token without nbf valid for 100 years refused");
}

static void
test_validate_user(void)
{
	struct tok t = good();

	t.a_tfd = NULL;
	refused(&t, "not trusted for delegation", "trustedfordelegation "
	    "missing with user claims");
	t.a_tfd = "\"false\"";
	refused(&t, "not trusted for delegation", "trustedfordelegation "
	    "\"false\"");
	t.a_tfd = "false";
	refused(&t, "not trusted for delegation", "trustedfordelegation "
	    "false");
	t.a_tfd = "1";
	refused(&t, "not trusted for delegation", "trustedfordelegation 1");
	t = good();
	t.o_smtp = t.o_nameid = NULL;
	refused(&t, "no user claim", "outer token without a user");
	t = good();
	t.o_smtp = q("a\\nb@contoso.com");
	refused(&t, "control characters", "smtp with a newline");
	t = good();
	t.o_smtp = "42";
	refused(&t, "claim smtp is not a string", "smtp as a number");
	{
		char longv[400];

		memset(longv, 'a', 300);
		longv[300] = '\0';
		t = good();
		t.o_upn = q(longv);
		refused(&t, "too long", "overlong upn");
	}
}

static void
test_validate_syntax(void)
{
	struct tok t = good();
	char *tok, *bad, *big;
	size_t n;

	tok = make(&t);
	if (!ok(tok != NULL, "test token built"))
		return;
	n = strlen(tok);
	refused_tok("", "no token", "empty token");
	refused_tok(NULL, "no token", "NULL token");
	refused_tok("abc", "three parts", "one part");
	refused_tok("a.b", "three parts", "two parts");
	bad = cat(tok, ".");
	refused_tok(bad, "three parts", "four parts");
	free(bad);
	bad = cat(tok, "=");
	/* The outer signature part of "=" is not empty. */
	refused_tok(bad, "alg none with a signature", "trailing padding");
	free(bad);
	bad = xasprintf("%.*s=.%s", (int)(strchr(tok, '.') - tok), tok,
	    strchr(tok, '.') + 1);
	refused_tok(bad, "header is not base64url", "padded header");
	free(bad);
	bad = xstrdup(tok);
	bad[3] = '+';
	refused_tok(bad, "header is not base64url", "standard alphabet");
	bad[3] = ' ';
	refused_tok(bad, "header is not base64url", "space inside");
	free(bad);
	/* "e30" is "{}" ; "e31" has stray low bits: not canonical. */
	refused_tok("e31.e30.", "header is not base64url",
	    "non-canonical base64url");
	refused_tok("e30.e30.", "no alg", "empty header object");
	bad = b64u("{\"alg\":\"none\"");
	big = xasprintf("%s.e30.", bad);
	refused_tok(big, "header is not valid JSON", "truncated header JSON");
	free(big);
	free(bad);
	bad = b64u("[\"alg\",\"none\"]");
	big = xasprintf("%s.e30.", bad);
	refused_tok(big, "header is not a JSON object", "header is an array");
	free(big);
	free(bad);
	bad = b64u("{\"alg\":\"none\",\"alg\":\"none\"}");
	big = xasprintf("%s.e30.", bad);
	refused_tok(big, "header is not valid JSON", "duplicate header "
	    "member");
	free(big);
	free(bad);
	bad = b64u("{\"typ\":\"JWT\",\"alg\":\"none\"}");
	{
		char *c = b64u("{\"aud\":\"x\"}");

		big = xasprintf("%s.%s.", bad, c);
		refused_tok(big, "without an actortoken", "claims decode");
		free(big);
		free(c);
	}
	big = xasprintf("%s.%s.", bad, "eyJhdWQiOi");
	refused_tok(big, "payload is not", "bad payload base64url");
	free(big);
	big = xasprintf("%s..", bad);
	refused_tok(big, "payload is not base64url", "empty payload");
	free(big);
	free(bad);
	t.o_xk = "smtp";
	t.o_xv = q("dup@contoso.com");
	bad = make(&t);
	refused_tok(bad, "payload is not valid JSON", "duplicate claim");
	free(bad);

	big = xmalloc(S2S_MAX_TOKEN + 2);
	memset(big, 'a', S2S_MAX_TOKEN + 1);
	big[S2S_MAX_TOKEN + 1] = '\0';
	memcpy(big, tok, n);
	refused_tok(big, "larger than", "oversized token");
	free(big);
	free(tok);
}

/* Binding a token to the addresses it is sent with. */
static void
test_addresses(void)
{
	static const char *const one[] = { "test1@contoso.com" };
	static const char *const two[] = { "Test1@Contoso.com",
	    "a@contoso.com" };
	static const char *const two_sorted[] = { "a@contoso.com",
	    "test1@contoso.com" };
	static const char *const other[] = { "test2@contoso.com" };
	static const char *const empty[] = { "" };
	static const char *const ctl[] = { "test1@contoso.com\n" };
	char d1[S2S_ADDRESSES_LEN], d2[S2S_ADDRESSES_LEN];
	char d3[S2S_ADDRESSES_LEN], d4[S2S_ADDRESSES_LEN];
	char xv[S2S_ADDRESSES_LEN + 2];
	struct s2s_identity id;
	struct s2s_mint m;
	struct tok t;
	char *tok = NULL, *pay;

	/* Vectors from Python's hashlib: sha256("test1@contoso.com\n"). */
	ok(s2s_addresses_digest(one, 1, d1) == PS_OK && strcmp(d1,
	    "V4dYYtLXnYa9XZlxrFmliwwaHGsoVF096cfNLNFaWy4") == 0,
	    "digest of one address: SHA-256 of it and a newline, base64url");
	ok(s2s_addresses_digest(two, 2, d2) == PS_OK && strcmp(d2,
	    "FalQIQBAPlkF0pXlxbm_SR41B0SXneCgQgXNHmlnSn4") == 0,
	    "digest of two: lower case, sorted, each ending in a newline");
	ok(s2s_addresses_digest(two_sorted, 2, d3) == PS_OK &&
	    strcmp(d2, d3) == 0, "the same whatever the order and case");
	ok(s2s_addresses_digest(other, 1, d4) == PS_OK && strcmp(d1, d4) != 0,
	    "another address, another digest");
	ok(s2s_addresses_digest(one, 0, d4) == PS_EINVAL && d4[0] == '\0',
	    "no address refused");
	ok(s2s_addresses_digest(empty, 1, d4) == PS_EINVAL,
	    "an empty address refused");
	ok(s2s_addresses_digest(ctl, 1, d4) == PS_EINVAL,
	    "an address with a line break refused");

	/* Minted into the signed token, read back by the validator. */
	m = mint_args();
	m.smtp = NULL;
	m.addresses = d1;
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK &&
	    id.app_only && strcmp(id.addresses, d1) == 0,
	    "app-only token bound to an address: the validator reads it");
	pay = tok ? part(tok, 1) : NULL;
	ok(pay && strstr(pay, "\"" S2S_ADDRESSES_CLAIM "\":\"") != NULL,
	    "the claim is in the signed payload");
	free(pay);
	free(tok);
	tok = NULL;
	m = mint_args();
	m.addresses = d2;
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK &&
	    strcmp(id.addresses, d2) == 0 && strcmp(id.user, USER) == 0,
	    "user token bound to addresses: the actor carries the digest");
	free(tok);
	tok = NULL;
	m = mint_args();
	ok(s2s_token_mint(&m, &tok) == PS_OK && check(tok, &id) == PS_OK &&
	    id.addresses[0] == '\0', "an unbound token: no addresses");
	free(tok);
	tok = NULL;
	m = mint_args();
	m.smtp = NULL;
	m.addresses = "not a digest";
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL && tok == NULL,
	    "minting with a malformed digest refused");
	m = mint_args();
	m.actor = "a.b.c";
	m.actor_expires = NOW + 60;
	m.addresses = d1;
	ok(s2s_token_mint(&m, &tok) == PS_EINVAL && tok == NULL,
	    "a digest cannot be added to an actor signed already");

	/* Only the signed token's claim counts, and only a digest. */
	t = good();
	t.app_only = true;
	t.a_xk = S2S_ADDRESSES_CLAIM;
	snprintf(xv, sizeof(xv), "\"%s\"", d1);
	t.a_xv = xv;
	tok = make(&t);
	ok(check(tok, &id) == PS_OK && strcmp(id.addresses, d1) == 0,
	    "a hand-made signed claim is read");
	free(tok);
	t.a_xv = "\"V4dYYtLXnYa9XZlxrFmliwwaHGsoVF096cfNLNFaWy\"";
	refused(&t, "is not a SHA-256 digest", "a digest cut short refused");
	t.a_xv = "\"V4dYYtLXnYa9XZlxrFmliwwaHGsoVF096cfNLNFaWy4=\"";
	refused(&t, "is not a SHA-256 digest", "a padded digest refused");
	t.a_xv = "[]";
	refused(&t, "is not a string", "a digest that is no string refused");
	t = good();
	t.o_xk = S2S_ADDRESSES_CLAIM;
	t.o_xv = xv;
	tok = make(&t);
	ok(check(tok, &id) == PS_OK && id.addresses[0] == '\0',
	    "the unsigned outer token's claim is ignored");
	free(tok);
}

int
main(void)
{
	setup();
	test_metadata_exchange();
	test_metadata_sharepoint();
	test_metadata_parse();
	test_mint();
	test_mint_claims_json();
	test_mint_actor();
	test_validate_good();
	test_validate_alg();
	test_validate_key();
	test_validate_principals();
	test_validate_aud();
	test_validate_times();
	test_validate_user();
	test_validate_syntax();
	test_addresses();
	s2s_metadata_cleanup(&sp_md);
	pki_key_free(sp_key);
	pki_key_free(other_key);
	free(sp_der);
	free(other_der);
	return done();
}
