/*
 * Keys, certificates and signatures with OpenSSL 3, through the EVP and
 * X509 interfaces only (deprecated APIs are compiled out below, so a
 * stray RSA_* call fails the build).
 *
 * Every function leaves OpenSSL's per-thread error queue empty when it
 * returns: the TLS code in http/ reads that queue after SSL calls and must
 * not see our leftovers. Private key material that passes through our own
 * memory (PEM text) is wiped before it is freed.
 *
 * Thread safety: no shared state; OpenSSL 3 is thread-safe.
 */
#define OPENSSL_API_COMPAT	30000
#define OPENSSL_NO_DEPRECATED	1

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "pki.h"

#define PKI_RSA_BITS		2048
#define PKI_MAX_PEM		(64 * 1024)	/* a key or certificate file */
#define PKI_MAX_DAYS		36500
#define PKI_SERIAL_LEN		16

struct pki_key {
	EVP_PKEY	*pkey;
};

/* --- helpers --- */

/*
 * Records `what` plus OpenSSL's first queued error as the reason, and
 * empties the queue.
 */
static ps_err
ossl_err(ps_err rc, const char *what)
{
	unsigned long e = ERR_get_error();
	char detail[256];

	if (e != 0) {
		ERR_error_string_n(e, detail, sizeof(detail));
		ps_errf(rc, "%s: %s", what, detail);
	} else
		ps_errf(rc, "%s", what);
	ERR_clear_error();
	return rc;
}

/* Parses exactly one DER certificate; trailing bytes are refused. */
static X509 *
cert_parse(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

/*
 * Signing certificates are verified against again and again (every token
 * of a partner names the same one), so the last few parsed are kept, by
 * SHA-1 of their DER; a caller gets a reference and X509_free()s it.
 */
#define CERT_CACHE_SLOTS 8

static struct {
	unsigned char	 sha1[20];
	X509		*x;
} cert_cache[CERT_CACHE_SLOTS];
static unsigned cert_cache_next;
static pthread_mutex_t cert_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static X509 *
cert_parse_cached(const unsigned char *der, size_t len)
{
	unsigned char d[20];
	X509 *x = NULL;
	unsigned i;

	if (der == NULL || len == 0)
		return NULL;
	pki_sha1(der, len, d);
	pthread_mutex_lock(&cert_cache_lock);
	for (i = 0; i < CERT_CACHE_SLOTS; i++)
		if (cert_cache[i].x && memcmp(cert_cache[i].sha1, d, 20) == 0) {
			x = cert_cache[i].x;
			X509_up_ref(x);
			break;
		}
	pthread_mutex_unlock(&cert_cache_lock);
	if (x != NULL || (x = cert_parse(der, len)) == NULL)
		return x;
	pthread_mutex_lock(&cert_cache_lock);
	i = cert_cache_next++ % CERT_CACHE_SLOTS;
	X509_free(cert_cache[i].x);
	memcpy(cert_cache[i].sha1, d, 20);
	cert_cache[i].x = x;
	X509_up_ref(x);
	pthread_mutex_unlock(&cert_cache_lock);
	return x;
}

/* The certificate's DER encoding in a new buffer. */
static ps_err
cert_der(X509 *x, unsigned char **der, size_t *der_len)
{
	unsigned char *p;
	int n;

	n = i2d_X509(x, NULL);
	if (n <= 0)
		return ossl_err(PS_ECRYPTO, "cannot encode certificate");
	*der = xmalloc((size_t)n);
	p = *der;
	if (i2d_X509(x, &p) != n) {
		free(*der);
		*der = NULL;
		return ossl_err(PS_ECRYPTO, "cannot encode certificate");
	}
	*der_len = (size_t)n;
	return PS_OK;
}

/* An ASN1_TIME as seconds since 1970; false if it cannot be read. */
static bool
asn1_time_epoch(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return false;
	}
	*out = (int64_t)timegm(&tm);
	return true;
}

static void
format_utc(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, 32, "@%lld", (long long)t);
}

/*
 * PEM private keys are never encrypted here; this callback makes OpenSSL
 * fail on an encrypted one instead of prompting on the terminal.
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* --- keys --- */

ps_err
pki_key_generate(struct pki_key **out)
{
	EVP_PKEY *pkey;

	*out = NULL;
	pkey = EVP_RSA_gen(PKI_RSA_BITS);
	if (pkey == NULL)
		return ossl_err(PS_ECRYPTO, "cannot generate an RSA key");
	*out = xcalloc(1, sizeof(**out));
	(*out)->pkey = pkey;
	return PS_OK;
}

ps_err
pki_key_load(const char *path, struct pki_key **out)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	size_t len = 0;
	ps_err rc;

	*out = NULL;
	rc = file_read(path, PKI_MAX_PEM, &pem, &len);
	if (rc != PS_OK)
		return rc;
	rc = PS_ECRYPTO;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		ossl_err(PS_ENOMEM, "cannot read key");
		rc = PS_ENOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (pkey == NULL) {
		ERR_clear_error();
		ps_errf(rc, "%s: no unencrypted PEM private key", path);
		goto out;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA") ||
	    EVP_PKEY_get_bits(pkey) < PKI_RSA_BITS) {
		ps_errf(rc, "%s: not an RSA key of at least %d bits", path,
		    PKI_RSA_BITS);
		goto out;
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->pkey = pkey;
	pkey = NULL;
	rc = PS_OK;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	xfree_secret(pem, len);
	ERR_clear_error();
	return rc;
}

ps_err
pki_key_save(const struct pki_key *key, const char *path)
{
	BUF_MEM *mem = NULL;
	BIO *bio;
	ps_err rc = PS_ECRYPTO;

	/*
	 * A secure-memory BIO: its buffer is cleansed when it grows and
	 * when it is freed, so the PEM text leaves no copy behind.
	 */
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		return ossl_err(PS_ENOMEM, "cannot save key");
	if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL) {
		ossl_err(rc, "cannot encode private key");
		goto out;
	}
	rc = file_write_atomic(path, mem->data, mem->length, 0600);
out:
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

void
pki_key_free(struct pki_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);	/* cleanses the key material */
	free(key);
}

/* --- certificates --- */

/* Host names as they may appear in a DNS subjectAltName. */
static bool
dns_name_valid(const char *s)
{
	size_t i, n = strlen(s), label = 0;

	if (n == 0 || n > 253)
		return false;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-') || ++label > 63)
			return false;
	}
	return label > 0;
}

static ps_err
add_san(X509 *x, const struct pki_cert_spec *spec)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	ASN1_OCTET_STRING *ip = NULL;
	ps_err rc = PS_ECRYPTO;
	size_t i;

	if (spec->n_dns == 0 && spec->n_ips == 0)
		return PS_OK;
	gens = GENERAL_NAMES_new();
	if (gens == NULL)
		return ossl_err(PS_ENOMEM, "cannot build subjectAltName");
	for (i = 0; i < spec->n_dns; i++) {
		if (!dns_name_valid(spec->dns_names[i])) {
			rc = ps_errf(PS_EINVAL, "invalid DNS name \"%s\"",
			    spec->dns_names[i]);
			goto out;
		}
		gen = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		if (gen == NULL || ia5 == NULL || ASN1_STRING_set(ia5,
		    spec->dns_names[i], -1) != 1) {
			ossl_err(rc, "cannot build subjectAltName");
			goto out;
		}
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		ia5 = NULL;
		if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
			ossl_err(rc, "cannot build subjectAltName");
			goto out;
		}
		gen = NULL;
	}
	for (i = 0; i < spec->n_ips; i++) {
		ip = a2i_IPADDRESS(spec->ips[i]);
		if (ip == NULL) {
			ERR_clear_error();
			rc = ps_errf(PS_EINVAL, "invalid IP address \"%s\"",
			    spec->ips[i]);
			goto out;
		}
		gen = GENERAL_NAME_new();
		if (gen == NULL) {
			ossl_err(rc, "cannot build subjectAltName");
			goto out;
		}
		GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
		ip = NULL;
		if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
			ossl_err(rc, "cannot build subjectAltName");
			goto out;
		}
		gen = NULL;
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_DEFAULT) != 1) {
		ossl_err(rc, "cannot add subjectAltName");
		goto out;
	}
	rc = PS_OK;
out:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return rc;
}

/* Adds one extension given in openssl.cnf syntax (constant values only). */
static ps_err
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return ossl_err(PS_ECRYPTO, "cannot build certificate "
		    "extension");
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return ossl_err(PS_ECRYPTO, "cannot add certificate extension");
	return PS_OK;
}

static ps_err
set_serial(X509 *x)
{
	unsigned char b[PKI_SERIAL_LEN];
	BIGNUM *bn;
	ps_err rc = PS_OK;

	/* 128 random bits, positive and of fixed length (RFC 5280 4.1.2.2). */
	rand_bytes(b, sizeof(b));
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn,
	    X509_get_serialNumber(x)) == NULL)
		rc = ossl_err(PS_ECRYPTO, "cannot set serial number");
	BN_free(bn);
	return rc;
}

ps_err
pki_cert_create(const struct pki_key *subject,
    const struct pki_cert_spec *spec, const struct pki_key *issuer,
    const unsigned char *issuer_der, size_t issuer_len,
    unsigned char **der, size_t *der_len)
{
	X509 *x = NULL, *ica = NULL;
	X509_NAME *name = NULL;
	X509V3_CTX ctx;
	EVP_PKEY *signer;
	time_t now = time(NULL);
	ps_err rc = PS_EINVAL;

	*der = NULL;
	*der_len = 0;
	if (subject == NULL || spec == NULL || spec->common_name == NULL ||
	    spec->common_name[0] == '\0') {
		ps_errf(rc, "a certificate needs a subject key and a common "
		    "name");
		goto out;
	}
	if (spec->days < 0 || spec->days > PKI_MAX_DAYS) {
		ps_errf(rc, "certificate validity of %d days is out of range",
		    spec->days);
		goto out;
	}
	if ((issuer == NULL) != (issuer_der == NULL)) {
		ps_errf(rc, "an issuer needs both its key and its certificate");
		goto out;
	}
	signer = subject->pkey;
	if (issuer != NULL) {
		ica = cert_parse(issuer_der, issuer_len);
		if (ica == NULL) {
			ps_errf(rc, "the issuer certificate does not parse");
			goto out;
		}
		if (X509_check_private_key(ica, issuer->pkey) != 1) {
			ERR_clear_error();
			ps_errf(rc, "the issuer key does not match its "
			    "certificate");
			goto out;
		}
		if (X509_check_ca(ica) == 0) {
			ps_errf(rc, "the issuer certificate is not a CA");
			goto out;
		}
		signer = issuer->pkey;
	}

	rc = PS_ECRYPTO;
	x = X509_new();
	name = X509_NAME_new();
	if (x == NULL || name == NULL) {
		ossl_err(rc, "cannot create certificate");
		goto out;
	}
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)spec->common_name, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, ica != NULL ?
	    X509_get_subject_name(ica) : name) != 1 ||
	    X509_set_pubkey(x, subject->pkey) != 1) {
		ossl_err(rc, "cannot fill certificate");
		goto out;
	}
	/* Valid from an hour ago (clock skew between hosts), for `days`. */
	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &now) ==
	    NULL || X509_time_adj_ex(X509_getm_notAfter(x), spec->days,
	    -3600, &now) == NULL) {
		ossl_err(rc, "cannot set certificate validity");
		goto out;
	}
	if ((rc = set_serial(x)) != PS_OK)
		goto out;

	/*
	 * Extensions (RFC 5280 4.2). The subject key identifier goes in
	 * before the authority key identifier, which for a self-signed
	 * certificate is derived from it.
	 */
	X509V3_set_ctx(&ctx, ica != NULL ? ica : x, x, NULL, NULL, 0);
	if (spec->is_ca) {
		if ((rc = add_ext(x, &ctx, NID_basic_constraints,
		    "critical,CA:TRUE")) != PS_OK ||
		    (rc = add_ext(x, &ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign")) != PS_OK)
			goto out;
	} else {
		if ((rc = add_ext(x, &ctx, NID_basic_constraints,
		    "critical,CA:FALSE")) != PS_OK ||
		    (rc = add_ext(x, &ctx, NID_key_usage,
		    "critical,digitalSignature,keyEncipherment")) != PS_OK ||
		    (rc = add_ext(x, &ctx, NID_ext_key_usage,
		    "serverAuth")) != PS_OK)
			goto out;
	}
	if ((rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) !=
	    PS_OK || (rc = add_ext(x, &ctx, NID_authority_key_identifier,
	    "keyid:always")) != PS_OK || (rc = add_san(x, spec)) != PS_OK)
		goto out;

	rc = PS_ECRYPTO;
	if (X509_sign(x, signer, EVP_sha256()) <= 0) {
		ossl_err(rc, "cannot sign certificate");
		goto out;
	}
	rc = cert_der(x, der, der_len);
out:
	X509_NAME_free(name);
	X509_free(x);
	X509_free(ica);
	ERR_clear_error();
	return rc;
}

ps_err
pki_cert_save(const unsigned char *der, size_t len, const char *path)
{
	BUF_MEM *mem = NULL;
	BIO *bio = NULL;
	X509 *x;
	ps_err rc = PS_ECRYPTO;

	x = cert_parse(der, len);
	if (x == NULL)
		return ps_errf(PS_EINVAL, "cannot save %s: not a certificate",
		    path);
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, x) != 1 ||
	    BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL) {
		ossl_err(rc, "cannot encode certificate");
		goto out;
	}
	rc = file_write_atomic(path, mem->data, mem->length, 0600);
out:
	BIO_free(bio);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

ps_err
pki_cert_load(const char *path, unsigned char **der, size_t *len)
{
	X509 *x = NULL;
	BIO *bio = NULL;
	char *pem = NULL;
	size_t plen = 0;
	ps_err rc;

	*der = NULL;
	*len = 0;
	rc = file_read(path, PKI_MAX_PEM, &pem, &plen);
	if (rc != PS_OK)
		return rc;
	rc = PS_ECRYPTO;
	bio = BIO_new_mem_buf(pem, (int)plen);
	if (bio == NULL) {
		ossl_err(rc, "cannot read certificate");
		goto out;
	}
	x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	if (x == NULL) {
		ERR_clear_error();
		ps_errf(rc, "%s: no PEM certificate", path);
		goto out;
	}
	rc = cert_der(x, der, len);
out:
	X509_free(x);
	BIO_free(bio);
	free(pem);
	ERR_clear_error();
	return rc;
}

bool
pki_cert_matches_key(const unsigned char *der, size_t len,
    const struct pki_key *key)
{
	X509 *x;
	bool match;

	if (key == NULL)
		return false;
	x = cert_parse(der, len);
	if (x == NULL)
		return false;
	match = EVP_PKEY_eq(X509_get0_pubkey(x), key->pkey) == 1;
	X509_free(x);
	ERR_clear_error();
	return match;
}

ps_err
pki_cert_check_time(const unsigned char *der, size_t len, int64_t now)
{
	int64_t nb, na;
	char when[32];
	X509 *x;
	ps_err rc = PS_ECRYPTO;

	x = cert_parse(der, len);
	if (x == NULL)
		return ps_errf(rc, "certificate does not parse");
	if (!asn1_time_epoch(X509_get0_notBefore(x), &nb) ||
	    !asn1_time_epoch(X509_get0_notAfter(x), &na)) {
		ps_errf(rc, "certificate validity cannot be read");
		goto out;
	}
	if (now < nb) {
		format_utc(nb, when);
		ps_errf(rc, "certificate not yet valid (from %s)", when);
		goto out;
	}
	if (now > na) {
		format_utc(na, when);
		ps_errf(rc, "certificate expired on %s", when);
		goto out;
	}
	rc = PS_OK;
out:
	X509_free(x);
	return rc;
}

int64_t
pki_cert_not_after(const unsigned char *der, size_t len)
{
	int64_t na = -1;
	X509 *x;

	x = cert_parse(der, len);
	if (x == NULL)
		return -1;
	if (!asn1_time_epoch(X509_get0_notAfter(x), &na))
		na = -1;
	X509_free(x);
	return na;
}

void
pki_cert_subject_cn(const unsigned char *der, size_t len, char *buf,
    size_t n)
{
	X509_NAME_ENTRY *e;
	X509_NAME *name;
	unsigned char *utf8 = NULL;
	X509 *x;
	int i;

	if (n == 0)
		return;
	buf[0] = '\0';
	x = cert_parse(der, len);
	if (x == NULL)
		return;
	name = X509_get_subject_name(x);
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i >= 0 && (e = X509_NAME_get_entry(name, i)) != NULL &&
	    ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) >= 0 &&
	    utf8 != NULL)
		str_copy(buf, (const char *)utf8, n);
	OPENSSL_free(utf8);
	X509_free(x);
	ERR_clear_error();
}

/* --- digests --- */

static void
digest(const EVP_MD *md, const void *p, size_t n, unsigned char *out)
{
	/* Cannot fail with the default provider: a broken invariant. */
	if (EVP_Digest(p, n, out, NULL, md, NULL) != 1)
		abort();
}

void
pki_sha1(const void *p, size_t n, unsigned char out[20])
{
	digest(EVP_sha1(), p, n, out);
}

void
pki_sha256(const void *p, size_t n, unsigned char out[32])
{
	digest(EVP_sha256(), p, n, out);
}

void
pki_md5(const void *p, size_t n, unsigned char out[16])
{
	digest(EVP_md5(), p, n, out);
}

/* --- RS256 (RFC 7518 3.3: RSASSA-PKCS1-v1_5 with SHA-256) --- */

ps_err
pki_sign_rs256(const struct pki_key *key, const void *data, size_t len,
    unsigned char **sig, size_t *sig_len)
{
	EVP_MD_CTX *md;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *s = NULL;
	size_t n = 0;
	ps_err rc = PS_ECRYPTO;

	*sig = NULL;
	*sig_len = 0;
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL,
	    key->pkey) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_DigestSign(md, NULL, &n, data, len) != 1) {
		ossl_err(rc, "cannot sign");
		goto out;
	}
	s = xmalloc(n);
	if (EVP_DigestSign(md, s, &n, data, len) != 1) {
		free(s);
		ossl_err(rc, "cannot sign");
		goto out;
	}
	*sig = s;
	*sig_len = n;
	rc = PS_OK;
out:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

ps_err
pki_verify_rs256(const unsigned char *cert_der, size_t cert_len,
    const void *data, size_t len, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pub;
	X509 *x;
	ps_err rc = PS_ECRYPTO;

	x = cert_parse_cached(cert_der, cert_len);
	if (x == NULL)
		return ps_errf(rc, "signing certificate does not parse");
	pub = X509_get0_pubkey(x);
	if (pub == NULL || !EVP_PKEY_is_a(pub, "RSA") ||
	    EVP_PKEY_get_bits(pub) < PKI_RSA_BITS) {
		ps_errf(rc, "signing certificate has no RSA key of at least "
		    "%d bits", PKI_RSA_BITS);
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL,
	    pub) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
		ossl_err(rc, "cannot verify");
		goto out;
	}
	/* RFC 7518 3.3: the signature is exactly the modulus length. */
	if (sig == NULL || sig_len != (size_t)EVP_PKEY_get_size(pub) ||
	    EVP_DigestVerify(md, sig, sig_len, data, len) != 1) {
		rc = ps_errf(PS_EAUTH, "bad RS256 signature");
		goto out;
	}
	rc = PS_OK;
out:
	EVP_MD_CTX_free(md);
	X509_free(x);
	ERR_clear_error();
	return rc;
}
