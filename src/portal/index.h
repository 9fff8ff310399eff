/*
 * The portal's in-memory index of its serving path: users by the names
 * requests use, credentials already verified, and photos by web
 * application, account and size, as shared immutable buffers. A cached
 * photo request then costs hash lookups and no store query, no copy.
 *
 * Everything is dropped whenever another process changed the store (the
 * data version moved: an admin command, portal refresh), and a user's
 * photos when this process stores new ones. Loop thread only.
 */
#ifndef PS_INDEX_H
#define PS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define INDEX_PHOTO_BYTES	(64u * 1024 * 1024)
#define INDEX_CRED_TTL		300	/* seconds, as auth.h's cache */

struct portal_index;

struct portal_index *index_new(void);
void	index_free(struct portal_index *);
/* Forgets everything. */
void	index_clear(struct portal_index *);

/*
 * A user by account, claims form or e-mail ("name", as typed), or by
 * library file prefix ("prefix"). PS_ENOTFOUND is remembered too. The
 * result has no password hash.
 */
ps_err	index_user(struct portal_index *, struct store *, const char *name,
	    struct store_user *out);
ps_err	index_user_by_prefix(struct portal_index *, struct store *,
	    const char *prefix, struct store_user *out);

/*
 * Verified credentials: `secret` is an Authorization header or a session
 * cookie (only its keyed digest is kept). get fills `out` (and the
 * session's CSRF token) when the same secret was verified for `webapp`
 * less than INDEX_CRED_TTL seconds ago.
 */
bool	index_cred_get(struct portal_index *, int64_t webapp,
	    const char *secret, struct store_user *out, char csrf[65]);
void	index_cred_put(struct portal_index *, int64_t webapp,
	    const char *secret, const struct store_user *u, const char *csrf);
void	index_cred_forget(struct portal_index *, int64_t webapp,
	    const char *secret);

/* A stored photo of one size; data NULL means "no photo". Shared. */
struct cached_photo {
	int		 refs;
	char		 etag[64];
	char		 source[16];
	unsigned char	*data;
	size_t		 len;
};

/*
 * The photo of `account` at `size` (S, M or L), from the index or the
 * store. The caller holds a reference: cached_photo_unref() when done.
 * NULL (with the reason) when the store failed.
 */
struct cached_photo *index_photo(struct portal_index *, struct store *,
	    int64_t webapp, const char *account, enum store_thumb_size size);
void	cached_photo_unref(void *photo);
/* This process stored or removed `account`'s photos. */
void	index_photo_forget(struct portal_index *, int64_t webapp,
	    const char *account);

#endif
