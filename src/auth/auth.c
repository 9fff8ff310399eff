/*
 * Argon2id passwords, Basic credentials and keyed digests (libsodium).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"

_Static_assert(AUTH_DIGEST_KEY_BYTES == crypto_generichash_KEYBYTES,
    "auth_digest keys are BLAKE2b keys");

ps_err
auth_init(void)
{
	if (sodium_init() < 0)
		return ps_errf(PS_ECRYPTO, "libsodium failed to start");
	return PS_OK;
}

ps_err
auth_password_hash(const char *password, char **hash)
{
	char out[crypto_pwhash_STRBYTES];

	if (crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return ps_errf(PS_ENOMEM, "not enough memory to hash a "
		    "password");
	*hash = xstrdup(out);
	return PS_OK;
}

ps_err
auth_password_verify(const char *hash, const char *password)
{
	if (hash == NULL || *hash == '\0')
		return ps_errf(PS_EAUTH, "no password is set");
	if (crypto_pwhash_str_verify(hash, password, strlen(password)) != 0)
		return ps_errf(PS_EAUTH, "wrong password");
	return PS_OK;
}

/* The first line of `path`, not empty; freed with xfree_secret(). */
static ps_err
password_read(const char *path, char **password)
{
	char *data = NULL;
	size_t len = 0;
	ps_err rc;

	if ((rc = file_read(path, AUTH_MAX_PASSWORD, &data, &len)) != PS_OK)
		return rc;
	len = strcspn(data, "\r\n");
	if (len == 0) {
		xfree_secret(data, strlen(data));
		return ps_errf(PS_EINVAL, "the password file %s is empty",
		    path);
	}
	*password = xstrndup(data, len);
	xfree_secret(data, strlen(data));
	return PS_OK;
}

ps_err
auth_password_file_hash(const char *path, char **hash)
{
	char *pw = NULL;
	ps_err rc;

	if ((rc = password_read(path, &pw)) != PS_OK)
		return rc;
	rc = auth_password_hash(pw, hash);
	xfree_secret(pw, strlen(pw));
	return rc;
}

ps_err
auth_basic_parse(const char *header, char **user, char **password)
{
	unsigned char *dec = NULL;
	size_t len = 0;
	char *colon;

	if (!str_case_prefix(header, "Basic "))
		return ps_errf(PS_EAUTH, "not Basic credentials");
	header += 6;
	while (*header == ' ')
		header++;
	if (strlen(header) > 4 * AUTH_MAX_PASSWORD ||
	    b64_decode(header, strlen(header), &dec, &len) != PS_OK)
		return ps_errf(PS_EAUTH, "malformed Basic credentials");
	colon = memchr(dec, ':', len);
	if (colon == NULL || memchr(dec, '\0', len) != NULL) {
		xfree_secret(dec, len);
		return ps_errf(PS_EAUTH, "malformed Basic credentials");
	}
	*user = xstrndup((char *)dec, (size_t)(colon - (char *)dec));
	*password = xstrndup(colon + 1, len - (size_t)(colon + 1 -
	    (char *)dec));
	xfree_secret(dec, len);
	return PS_OK;
}

void
auth_fingerprint(const char *secret, char out[33])
{
	static unsigned char key[crypto_generichash_KEYBYTES];
	static bool keyed;
	unsigned char d[16];

	if (!keyed) {
		randombytes_buf(key, sizeof(key));
		keyed = true;
	}
	crypto_generichash(d, sizeof(d), (const unsigned char *)secret,
	    strlen(secret), key, sizeof(key));
	hex_encode(d, sizeof(d), out);
}

void
auth_digest(const unsigned char key[AUTH_DIGEST_KEY_BYTES],
    const char *const *parts, size_t n, unsigned char *out, size_t outlen)
{
	crypto_generichash_state st;
	const char *p;
	size_t i;

	crypto_generichash_init(&st, key, AUTH_DIGEST_KEY_BYTES, outlen);
	for (i = 0; i < n; i++) {
		p = parts[i] ? parts[i] : "";
		crypto_generichash_update(&st, (const unsigned char *)p,
		    strlen(p) + 1);
	}
	crypto_generichash_final(&st, out, outlen);
}

void
auth_session_key(const char *cookie, char out[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(d, (const unsigned char *)cookie, strlen(cookie));
	hex_encode(d, sizeof(d), out);
}
