/*
 * Unit tests of pki: key and certificate round trips through PEM files,
 * a CA-signed leaf that OpenSSL's own verifier (in-process, and the
 * openssl command when installed) accepts for "localhost" and 127.0.0.1,
 * certificate extensions, validity checks, thumbprints and RS256.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "pki/pki.h"
#include "t.h"

static char *tmpdir;	/* from t_tmpdir(), removed at the end */

static char *
tmp_path(const char *name)
{
	return file_join(tmpdir, name);
}

static X509 *
x509_of(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;

	return d2i_X509(NULL, &p, (long)len);
}

static bool
hex_is(const unsigned char *b, size_t n, const char *want)
{
	char h[129];

	hex_encode(b, n, h);
	return strcmp(h, want) == 0;
}

static void
test_digests(void)
{
	unsigned char d[32];

	/* FIPS 180-2 and RFC 1321 test vectors for "abc". */
	pki_sha1("abc", 3, d);
	ok(hex_is(d, 20, "a9993e364706816aba3e25717850c26c9cd0d89d"),
	    "sha1(abc)");
	pki_sha256("abc", 3, d);
	ok(hex_is(d, 32, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad"), "sha256(abc)");
	pki_md5("abc", 3, d);
	ok(hex_is(d, 16, "900150983cd24fb0d6963f7d28e17f72"), "md5(abc)");
}

static void
test_keys(struct pki_key **keyp)
{
	struct pki_key *key = NULL, *loaded = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	struct stat st;
	char *path = tmp_path("key.pem"), *junk = tmp_path("junk.pem");
	struct pki_cert_spec spec = { .common_name = "k", .days = 1 };

	ok(pki_key_generate(&key) == PS_OK && key != NULL, "key generated");
	ok(pki_key_save(key, path) == PS_OK, "key saved");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	    "key file mode 0600");
	ok(pki_key_load(path, &loaded) == PS_OK && loaded != NULL,
	    "key loads back");
	ok(pki_cert_create(key, &spec, NULL, NULL, 0, &der, &len) == PS_OK,
	    "self-signed cert for the key");
	ok(pki_cert_matches_key(der, len, loaded),
	    "loaded key matches the original's certificate");
	pki_key_free(loaded);
	loaded = NULL;

	ok(pki_key_load("/nonexistent/key.pem", &loaded) == PS_EIO &&
	    loaded == NULL, "missing key file: PS_EIO");
	{
		static const char pem[] = "-----BEGIN PRIVATE KEY-----\n"
		    "AAAA\n-----END PRIVATE KEY-----\n";

		file_write_atomic(junk, pem, strlen(pem), 0600);
	}
	ok(pki_key_load(junk, &loaded) == PS_ECRYPTO && loaded == NULL,
	    "junk key file refused");
	ok(ERR_peek_error() == 0, "OpenSSL error queue left empty");
	free(der);
	free(path);
	free(junk);
	*keyp = key;
}

/* An encrypted key must fail, not prompt for a passphrase. */
static void
test_encrypted_key(const struct pki_key *unused)
{
	struct pki_key *loaded = NULL;
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	char *path = tmp_path("enc.pem");
	FILE *f = fopen(path, "w");

	(void)unused;
	ok(f != NULL && pk != NULL && PEM_write_PrivateKey(f, pk,
	    EVP_aes_256_cbc(), (unsigned char *)"secret", 6, NULL, NULL) == 1,
	    "encrypted key written");
	if (f != NULL)
		fclose(f);
	ok(pki_key_load(path, &loaded) == PS_ECRYPTO && loaded == NULL,
	    "encrypted key refused without prompting");
	EVP_PKEY_free(pk);
	free(path);
}

static int
ext_count(X509 *x, int nid)
{
	return X509_get_ext_by_NID(x, nid, -1) >= 0 ? 1 : 0;
}

static bool
verify_in_process(const unsigned char *ca, size_t ca_len,
    const unsigned char *leaf, size_t leaf_len, const char *host,
    const char *ip)
{
	X509 *xca = x509_of(ca, ca_len), *xl = x509_of(leaf, leaf_len);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *vp;
	bool good = false;

	if (xca == NULL || xl == NULL || store == NULL || ctx == NULL ||
	    X509_STORE_add_cert(store, xca) != 1 ||
	    X509_STORE_CTX_init(ctx, store, xl, NULL) != 1)
		goto out;
	vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
	if (host != NULL)
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
	if (ip != NULL)
		X509_VERIFY_PARAM_set1_ip_asc(vp, ip);
	good = X509_verify_cert(ctx) == 1;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(xca);
	X509_free(xl);
	ERR_clear_error();
	return good;
}

static void
test_certs(const struct pki_key *cakey)
{
	static const char *const dns[] = { "localhost", "photos.example" };
	static const char *const ips[] = { "127.0.0.1", "::1" };
	struct pki_cert_spec caspec = {
		.common_name = "photosync test CA", .days = 30, .is_ca = true,
	};
	struct pki_cert_spec leafspec = {
		.common_name = "localhost", .dns_names = dns, .n_dns = 2,
		.ips = ips, .n_ips = 2, .days = 30,
	};
	struct pki_key *leafkey = NULL, *otherkey = NULL;
	unsigned char *ca = NULL, *leaf = NULL, *other = NULL, *bad = NULL;
	unsigned char *loaded = NULL, tp[20], tp2[20];
	unsigned int tplen = 0;
	size_t ca_len = 0, leaf_len = 0, other_len = 0, bad_len = 0,
	    loaded_len = 0;
	char cn[64], *capath = tmp_path("ca.pem"),
	    *leafpath = tmp_path("leaf.pem"), *cmd;
	int64_t now = time_now(), na;
	X509 *x, *xca;
	const ASN1_INTEGER *serial;

	ok(pki_cert_create(cakey, &caspec, NULL, NULL, 0, &ca, &ca_len) ==
	    PS_OK, "CA certificate created");
	ok(pki_key_generate(&leafkey) == PS_OK, "leaf key");
	ok(pki_cert_create(leafkey, &leafspec, cakey, ca, ca_len, &leaf,
	    &leaf_len) == PS_OK, "leaf signed by the CA");
	ok(pki_cert_matches_key(leaf, leaf_len, leafkey), "leaf matches key");
	ok(!pki_cert_matches_key(leaf, leaf_len, cakey),
	    "leaf does not match the CA key");

	/* PEM round trip. */
	ok(pki_cert_save(ca, ca_len, capath) == PS_OK &&
	    pki_cert_save(leaf, leaf_len, leafpath) == PS_OK, "certs saved");
	ok(pki_cert_load(leafpath, &loaded, &loaded_len) == PS_OK &&
	    loaded_len == leaf_len && memcmp(loaded, leaf, leaf_len) == 0,
	    "cert PEM round trip is byte-identical");
	free(loaded);
	ok(pki_cert_load("/nonexistent.pem", &loaded, &loaded_len) == PS_EIO,
	    "missing cert file");

	pki_cert_subject_cn(ca, ca_len, cn, sizeof(cn));
	is_str(cn, "photosync test CA", "CA common name");
	pki_cert_subject_cn((const unsigned char *)"x", 1, cn, sizeof(cn));
	is_str(cn, "", "no CN from junk");

	/* Verification by OpenSSL, in-process and by the command. */
	ok(verify_in_process(ca, ca_len, leaf, leaf_len, "localhost", NULL),
	    "X509_verify_cert accepts the leaf for localhost");
	ok(verify_in_process(ca, ca_len, leaf, leaf_len, NULL, "127.0.0.1"),
	    "X509_verify_cert accepts the leaf for 127.0.0.1");
	ok(verify_in_process(ca, ca_len, leaf, leaf_len, "LOCALHOST", NULL),
	    "host name match ignores case");
	ok(!verify_in_process(ca, ca_len, leaf, leaf_len, "evil.example",
	    NULL), "wrong host refused");
	ok(!verify_in_process(ca, ca_len, leaf, leaf_len, NULL, "127.0.0.2"),
	    "wrong IP refused");
	if (system("command -v openssl >/dev/null 2>&1") == 0) {
		cmd = xasprintf("openssl verify -purpose sslserver "
		    "-verify_hostname localhost -verify_ip 127.0.0.1 "
		    "-CAfile %s %s >/dev/null 2>&1", capath, leafpath);
		ok(system(cmd) == 0, "openssl verify accepts the leaf");
		free(cmd);
		cmd = xasprintf("openssl verify -CAfile %s %s >/dev/null 2>&1",
		    leafpath, capath);
		ok(system(cmd) != 0, "openssl verify refuses CA by leaf");
		free(cmd);
	} else {
		ok(1, "# SKIP openssl command not installed");
		ok(1, "# SKIP openssl command not installed");
	}

	/* Extensions (RFC 5280 4.2). */
	x = x509_of(ca, ca_len);
	ok(x != NULL && X509_get_version(x) == X509_VERSION_3 &&
	    (X509_get_extension_flags(x) & EXFLAG_CA) &&
	    (X509_get_key_usage(x) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN) &&
	    ext_count(x, NID_subject_key_identifier) &&
	    ext_count(x, NID_authority_key_identifier),
	    "CA: v3, CA:TRUE, keyCertSign+cRLSign, SKI, AKID");
	ok(x != NULL && X509_get_signature_nid(x) ==
	    NID_sha256WithRSAEncryption, "CA signed with SHA-256");
	X509_free(x);
	x = x509_of(leaf, leaf_len);
	serial = x != NULL ? X509_get0_serialNumber(x) : NULL;
	ok(x != NULL && !(X509_get_extension_flags(x) & EXFLAG_CA) &&
	    X509_get_key_usage(x) == (KU_DIGITAL_SIGNATURE |
	    KU_KEY_ENCIPHERMENT) && (X509_get_extended_key_usage(x) &
	    XKU_SSL_SERVER) && ext_count(x, NID_subject_alt_name) &&
	    ext_count(x, NID_basic_constraints),
	    "leaf: CA:FALSE, digitalSignature+keyEncipherment, serverAuth, "
	    "SAN");
	ok(serial != NULL && ASN1_STRING_length(serial) == 16 &&
	    ASN1_STRING_type(serial) == V_ASN1_INTEGER,
	    "random positive 128-bit serial");
	xca = x509_of(ca, ca_len);
	ok(x != NULL && xca != NULL && X509_check_issued(xca, x) ==
	    X509_V_OK, "leaf AKID names the CA");
	X509_free(xca);
	/* Thumbprint (x5t) is SHA-1 of the DER. */
	pki_sha1(leaf, leaf_len, tp);
	ok(x != NULL && X509_digest(x, EVP_sha1(), tp2, &tplen) == 1 &&
	    tplen == 20 && memcmp(tp, tp2, 20) == 0,
	    "thumbprint equals X509_digest SHA-1");
	X509_free(x);

	/* Validity. */
	ok(pki_cert_check_time(leaf, leaf_len, now) == PS_OK, "valid now");
	ok(pki_cert_check_time(leaf, leaf_len, now - 1800) == PS_OK,
	    "valid half an hour ago (notBefore = now - 1h)");
	ok(pki_cert_check_time(leaf, leaf_len, now - 7200) == PS_ECRYPTO &&
	    strstr(ps_errmsg(), "not yet valid") != NULL,
	    "not yet valid two hours ago");
	ok(pki_cert_check_time(leaf, leaf_len, now + 31 * 86400) ==
	    PS_ECRYPTO && strstr(ps_errmsg(), "expired on") != NULL,
	    "expired after 31 days");
	na = pki_cert_not_after(leaf, leaf_len);
	ok(na >= now - 3600 + 30 * 86400 - 5 &&
	    na <= now - 3600 + 30 * 86400 + 5, "notAfter = now - 1h + 30d");
	ok(pki_cert_not_after((const unsigned char *)"junk", 4) == -1,
	    "notAfter of junk is -1");
	caspec.days = 0;
	ok(pki_cert_create(leafkey, &caspec, NULL, NULL, 0, &bad, &bad_len) ==
	    PS_OK && pki_cert_check_time(bad, bad_len, now) == PS_ECRYPTO,
	    "0-day certificate is already expired");
	free(bad);
	bad = NULL;
	ok(pki_cert_check_time((const unsigned char *)"junk", 4, now) ==
	    PS_ECRYPTO, "junk certificate refused by the time check");

	/* Refusals. */
	caspec.days = -1;
	ok(pki_cert_create(leafkey, &caspec, NULL, NULL, 0, &bad, &bad_len) ==
	    PS_EINVAL && bad == NULL, "negative validity refused");
	caspec.days = 30;
	ok(pki_key_generate(&otherkey) == PS_OK &&
	    pki_cert_create(otherkey, &leafspec, leafkey, leaf, leaf_len,
	    &other, &other_len) == PS_EINVAL, "a leaf cannot issue");
	ok(pki_cert_create(otherkey, &leafspec, otherkey, ca, ca_len,
	    &other, &other_len) == PS_EINVAL,
	    "issuer key must match issuer certificate");
	{
		static const char *const baddns[] = { "a b.example" };
		static const char *const badip[] = { "300.1.1.1" };
		struct pki_cert_spec s = leafspec;

		s.dns_names = baddns;
		s.n_dns = 1;
		ok(pki_cert_create(otherkey, &s, cakey, ca, ca_len, &other,
		    &other_len) == PS_EINVAL, "bad DNS name refused");
		s = leafspec;
		s.ips = badip;
		s.n_ips = 1;
		ok(pki_cert_create(otherkey, &s, cakey, ca, ca_len, &other,
		    &other_len) == PS_EINVAL, "bad IP refused");
		s = leafspec;
		s.common_name = "";
		ok(pki_cert_create(otherkey, &s, NULL, NULL, 0, &other,
		    &other_len) == PS_EINVAL, "empty common name refused");
	}
	/* A leaf signed by another CA does not verify against ours. */
	caspec.common_name = "other CA";
	ok(pki_cert_create(otherkey, &caspec, NULL, NULL, 0, &other,
	    &other_len) == PS_OK, "second CA");
	free(leaf);
	leaf = NULL;
	ok(pki_cert_create(leafkey, &leafspec, otherkey, other, other_len,
	    &leaf, &leaf_len) == PS_OK && !verify_in_process(ca, ca_len, leaf,
	    leaf_len, "localhost", NULL), "foreign leaf refused by our CA");
	ok(ERR_peek_error() == 0, "OpenSSL error queue left empty");

	pki_key_free(leafkey);
	pki_key_free(otherkey);
	free(ca);
	free(leaf);
	free(other);
	free(capath);
	free(leafpath);
}

static void
test_rs256(const struct pki_key *key)
{
	struct pki_cert_spec spec = { .common_name = "signer", .days = 1 };
	struct pki_key *other = NULL;
	unsigned char *der = NULL, *oder = NULL, *sig = NULL;
	size_t len = 0, olen = 0, siglen = 0;
	static const char msg[] = "eyJhbGciOiJSUzI1NiJ9.eyJhIjoiYiJ9";

	ok(pki_cert_create(key, &spec, NULL, NULL, 0, &der, &len) == PS_OK,
	    "signer cert");
	ok(pki_key_generate(&other) == PS_OK && pki_cert_create(other, &spec,
	    NULL, NULL, 0, &oder, &olen) == PS_OK, "other cert");
	ok(pki_sign_rs256(key, msg, strlen(msg), &sig, &siglen) == PS_OK &&
	    siglen == 256, "signed, 256-byte signature");
	ok(pki_verify_rs256(der, len, msg, strlen(msg), sig, siglen) ==
	    PS_OK, "signature verifies");
	ok(pki_verify_rs256(der, len, msg, strlen(msg) - 1, sig, siglen) ==
	    PS_EAUTH, "changed data refused");
	ok(pki_verify_rs256(oder, olen, msg, strlen(msg), sig, siglen) ==
	    PS_EAUTH, "other key refused");
	ok(pki_verify_rs256(der, len, msg, strlen(msg), sig, siglen - 1) ==
	    PS_EAUTH, "truncated signature refused");
	sig[10] ^= 1;
	ok(pki_verify_rs256(der, len, msg, strlen(msg), sig, siglen) ==
	    PS_EAUTH, "flipped bit refused");
	ok(pki_verify_rs256(der, len, msg, strlen(msg), NULL, 0) == PS_EAUTH,
	    "no signature refused");
	ok(pki_verify_rs256((const unsigned char *)"junk", 4, msg,
	    strlen(msg), sig, siglen) == PS_ECRYPTO, "junk cert refused");
	{
		/* Trailing bytes after the DER are refused. */
		unsigned char *ext = malloc(len + 1);

		memcpy(ext, der, len);
		ext[len] = 0;
		ok(pki_cert_not_after(ext, len + 1) == -1,
		    "trailing garbage after DER refused");
		free(ext);
	}
	ok(ERR_peek_error() == 0, "OpenSSL error queue left empty");
	pki_key_free(other);
	free(der);
	free(oder);
	free(sig);
}

static void
cleanup_tmp(void)
{
	static const char *const names[] = { "key.pem", "junk.pem", "enc.pem",
	    "ca.pem", "leaf.pem" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *p = tmp_path(names[i]);

		unlink(p);
		free(p);
	}
	rmdir(tmpdir);
	free(tmpdir);
}

int
main(void)
{
	struct pki_key *key = NULL;

	if ((tmpdir = t_tmpdir("test_pki")) == NULL)
		return 1;
	test_digests();
	test_keys(&key);
	test_encrypted_key(key);
	test_certs(key);
	test_rs256(key);
	pki_key_free(key);
	cleanup_tmp();
	return done();
}
