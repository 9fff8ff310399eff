/*
 * The credentials a server has verified, the one cache of them that both
 * roles use (the portal's index and the master's cache each own one): a
 * request whose Basic header or session cookie was verified a moment ago
 * is signed in on the loop with one lookup, without a store call and
 * without Argon2id. (The sign-in guard's remembered verdicts, guard.h,
 * are what a credential that misses here costs: a store read, no
 * Argon2id.)
 *
 * An entry is found by a key that names a credential without being one
 * (auth_creds_basic_key(): a keyed digest of the Authorization header;
 * auth_creds_session_key(): the store key of a session cookie;
 * auth_creds_sso_key(): a keyed digest of the account a single sign-on
 * proxy named), and holds
 * the account it signs in and the role's data (a fixed number of bytes
 * per cache: what the role needs to answer, such as the portal's user or
 * the master's address), copied in. It is honoured for AUTH_CREDS_TTL
 * seconds, and only while its account is unchanged: auth_creds_drop()
 * (a new password, a removed account, any change of the account) ends
 * every credential of that account at once, in O(1): credentials hold a
 * reference to their account's record, which a drop marks ended.
 *
 * A credential is verified off the loop, so a change may land while it
 * is checked: take auth_creds_stamp() before the store is read;
 * auth_creds_put() keeps the credential only if its account did not
 * change since. The accounts known to have changed are bounded;
 * forgetting one raises a floor below which every stamp is stale, so
 * forgetting never lets a stale credential in.
 *
 * Memory is bounded: the credentials by a budget of max_entries *
 * (data_len + 176) bytes, which their data, keys and the map's own bytes
 * count against (at least `max_entries` fit), the least recently used
 * going first; the account records (24 bytes and a key each) by
 * AUTH_CREDS_ACCOUNT_BYTES.
 * Loop thread only; the clock is injectable.
 */
#ifndef PS_AUTH_CREDS_H
#define PS_AUTH_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_CREDS_TTL		300	/* s: as the guard's remember_ms */
/* The account records' budget, keys and the map's bytes included. */
#define AUTH_CREDS_ACCOUNT_BYTES	(2u << 20)
#define AUTH_CREDS_KEY_MAX	96	/* a key's bytes, NUL included */

struct auth_creds;

/*
 * An empty cache with room for `max_entries` credentials, each with
 * `data_len` bytes of the role's data; `now_s` is the clock in seconds
 * (NULL: time_now()). Free with auth_creds_free() (NULL is a no-op).
 */
struct auth_creds *auth_creds_new(size_t max_entries, size_t data_len,
	    int64_t (*now_s)(void));
void	auth_creds_free(struct auth_creds *);

/*
 * The key of a Basic credential: a keyed digest (auth_fingerprint()) of
 * the whole Authorization header, per `scope` (a web application, or 0).
 */
void	auth_creds_basic_key(const char *header, int64_t scope,
	    char key[AUTH_CREDS_KEY_MAX]);
/*
 * The key of an account as a single sign-on proxy named it (auth/sso.h),
 * as sent (a keyed digest), per `scope`: the proxy's word, remembered
 * like a credential so that its account is not read for every request,
 * and ended like one when the account changes or goes.
 */
void	auth_creds_sso_key(const char *user, int64_t scope,
	    char key[AUTH_CREDS_KEY_MAX]);
/* The key of a session, from its store key (auth_web_session_key()). */
void	auth_creds_session_key(const char *store_key,
	    char key[AUTH_CREDS_KEY_MAX]);

/*
 * The data of the credential of `key` when it was verified less than
 * AUTH_CREDS_TTL seconds ago and its account is unchanged since, else
 * NULL. Borrowed until the next call into the cache. Allocates nothing.
 */
const void *auth_creds_get(struct auth_creds *, const char *key);

/* What to pass to auth_creds_put() for a store read that starts now. */
uint64_t auth_creds_stamp(const struct auth_creds *);
/*
 * Remembers `key` as verified now for `account` (compared without case),
 * with `data` (data_len bytes, copied), unless the account changed after
 * `stamp` was taken. Replaces what `key` had.
 */
void	auth_creds_put(struct auth_creds *, const char *key,
	    const char *account, uint64_t stamp, const void *data);
/* Forgets one credential (a session ended). */
void	auth_creds_forget(struct auth_creds *, const char *key);
/* Ends every credential of `account`: it changed or was removed. */
void	auth_creds_drop(struct auth_creds *, const char *account);
/* Ends every credential (the change feed was lost). */
void	auth_creds_clear(struct auth_creds *);
/* Credentials held (tests, metrics). */
size_t	auth_creds_count(const struct auth_creds *);

#endif
