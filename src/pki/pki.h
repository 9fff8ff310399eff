/*
 * Keys, certificates and signatures: the only user of OpenSSL's crypto
 * (the TLS of the HTTP server's connections, in http/server.c, is the one
 * other place OpenSSL is touched).
 *
 * RSA-2048 keys, X.509 certificates (self-signed, or signed by a local
 * CA), SHA-1 thumbprints for JWT x5t, RS256 signing and verification.
 */
#ifndef PS_PKI_H
#define PS_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct pki_key;		/* an RSA private key */

ps_err	pki_key_generate(struct pki_key **out);
/* PEM private key file; written with mode 0600. */
ps_err	pki_key_load(const char *path, struct pki_key **out);
ps_err	pki_key_save(const struct pki_key *, const char *path);
void	pki_key_free(struct pki_key *);

struct pki_cert_spec {
	const char	*common_name;
	const char	*const *dns_names;	/* subjectAltName DNS */
	size_t		 n_dns;
	const char	*const *ips;		/* subjectAltName IP */
	size_t		 n_ips;
	int		 days;			/* validity from now - 1h */
	bool		 is_ca;
};

/*
 * Creates a certificate for `subject`'s public key. With `issuer` NULL it
 * is self-signed; otherwise it is signed by `issuer` whose certificate is
 * `issuer_der`. The caller frees *der.
 */
ps_err	pki_cert_create(const struct pki_key *subject,
	    const struct pki_cert_spec *, const struct pki_key *issuer,
	    const unsigned char *issuer_der, size_t issuer_len,
	    unsigned char **der, size_t *der_len);
/*
 * PEM certificate files (the first certificate of the file on load),
 * written with mode 0600 like every file of a state directory.
 */
ps_err	pki_cert_save(const unsigned char *der, size_t len, const char *path);
ps_err	pki_cert_load(const char *path, unsigned char **der, size_t *len);
/* True when `der` is a certificate whose public key matches `key`. */
bool	pki_cert_matches_key(const unsigned char *der, size_t len,
	    const struct pki_key *key);
/*
 * PS_OK when `der` parses and `now` lies within its validity; otherwise
 * PS_ECRYPTO with the reason ("expired on ...", "not yet valid").
 */
ps_err	pki_cert_check_time(const unsigned char *der, size_t len,
	    int64_t now);
/* The notAfter time, seconds since 1970; -1 if it cannot be read. */
int64_t	pki_cert_not_after(const unsigned char *der, size_t len);
/* The subject's common name into buf; "" if none. */
void	pki_cert_subject_cn(const unsigned char *der, size_t len, char *buf,
	    size_t n);

void	pki_sha1(const void *, size_t, unsigned char out[20]);
void	pki_sha256(const void *, size_t, unsigned char out[32]);
void	pki_md5(const void *, size_t, unsigned char out[16]);

/* RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256"). The caller frees *sig. */
ps_err	pki_sign_rs256(const struct pki_key *, const void *data, size_t len,
	    unsigned char **sig, size_t *sig_len);
/* PS_OK on a valid signature by the certificate's key, PS_EAUTH if not. */
ps_err	pki_verify_rs256(const unsigned char *cert_der, size_t cert_len,
	    const void *data, size_t len, const unsigned char *sig,
	    size_t sig_len);

#endif
