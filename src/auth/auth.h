/*
 * Passwords: Argon2id hashing and verification (the only user of
 * libsodium), Basic credentials, and the keyed digests that let tables
 * of credentials (the sign-in guard's, the roles' verified headers)
 * index them without holding them.
 */
#ifndef PS_AUTH_H
#define PS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define AUTH_MAX_PASSWORD	1024
#define AUTH_DIGEST_KEY_BYTES	32

ps_err	auth_init(void);
/* An Argon2id string for `password`; the caller frees it. */
ps_err	auth_password_hash(const char *password, char **hash);
/* PS_OK when `password` matches `hash`, PS_EAUTH otherwise. */
ps_err	auth_password_verify(const char *hash, const char *password);

/*
 * Reads a password from the first line of `path` ("-" for standard input),
 * refusing an empty one, and returns only its Argon2id string (the
 * password itself is wiped at once). The caller frees it with
 * xfree_secret().
 */
ps_err	auth_password_file_hash(const char *path, char **hash);

/*
 * Splits an "Authorization: Basic ..." value into user and password.
 * The caller frees both (the password with xfree_secret()).
 */
ps_err	auth_basic_parse(const char *header, char **user, char **password);

/*
 * A keyed digest of a secret (an Authorization header, a cookie) as 32
 * hex digits, to index verified credentials without keeping them. The
 * key is random per process.
 */
void	auth_fingerprint(const char *secret, char out[33]);

/*
 * A keyed digest (BLAKE2b) of the `n` strings of `parts`, each with its
 * terminating NUL so that no two lists collide (a NULL part counts as
 * ""), into `outlen` bytes (16 to 64). For tables of credentials that
 * must not hold them; `key` is random per table (rand_bytes()).
 */
void	auth_digest(const unsigned char key[AUTH_DIGEST_KEY_BYTES],
	    const char *const *parts, size_t n, unsigned char *out,
	    size_t outlen);

/*
 * The key under which a session is stored: SHA-256 of the cookie value
 * as 64 hex digits, so the store never holds a usable cookie.
 */
void	auth_session_key(const char *cookie, char out[65]);

#endif
