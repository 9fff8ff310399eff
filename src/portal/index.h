/*
 * The portal's in-memory index of its serving path: users by the names
 * requests use, credentials already verified, and photos by web
 * application, account and size, as shared immutable buffers. A cached
 * photo request then costs hash lookups, no store call and no copy.
 *
 * A lookup that misses is answered from the store's read lane, later,
 * through a callback; what it read is kept unless the same kind of entry
 * was dropped while it was being read (it might be older than the drop).
 * Entries are dropped precisely: for changes of other processes by
 * index_changed() (the change feed), for this process's own by the code
 * that made them (index_photo_forget). Loop thread only.
 */
#ifndef PS_INDEX_H
#define PS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define INDEX_PHOTO_BYTES	(64u * 1024 * 1024)

struct portal_index;
struct store_pool;
struct auth_creds;

/* `pool` is borrowed; it must outlive the index. */
struct portal_index *index_new(struct store_pool *);
void	index_free(struct portal_index *);
/* Forgets everything (the change feed was lost). */
void	index_clear(struct portal_index *);
/* Drops what a change made by another process names. */
void	index_changed(struct portal_index *, const struct store_change *);

/* ---- users ---- */

enum index_by {
	INDEX_BY_NAME,		/* account, claims form or e-mail, as typed */
	INDEX_BY_PREFIX,	/* library file prefix: "contoso_test1" */
	INDEX_BY_HASH,		/* MD5 or SHA-256 hex of the address */
};

/*
 * Called once with the user (no password hash; borrowed for the call),
 * or with rc PS_ENOTFOUND (no such user), PS_EINVAL (not a valid name,
 * with the reason in ps_errmsg()), PS_EBUSY or PS_ESTORE (the store could
 * not be asked) and u NULL.
 */
typedef void (*index_user_fn)(void *arg, ps_err rc,
	    const struct store_user *u);

/* Finds a user, from memory or the store; fn may run before it returns. */
void	index_user(struct portal_index *, enum index_by, const char *name,
	    index_user_fn, void *arg);

/* ---- verified credentials ---- */

/*
 * What the portal keeps with a verified credential (auth/creds.h): the
 * key of a Basic header or of a session cookie, and this. The index
 * ends a user's credentials when the change feed says the user changed
 * (a new password, say), and a session's when it was removed.
 */
struct index_cred {
	int64_t			webapp;		/* where it was verified */
	struct store_user	user;		/* no password hash */
	char			csrf[65];	/* a session's; "" for Basic */
};

/* The index's credentials, borrowed for the index's life. */
struct auth_creds *index_creds(struct portal_index *);

/* ---- photos ---- */

/* A stored photo of one size; data NULL means "no photo". Shared. */
struct cached_photo {
	int		 refs;
	char		 etag[64];
	char		 source[16];
	unsigned char	*data;
	size_t		 len;
	bool		 hidden;	/* its owner alone sees it */
};

/*
 * Called once with rc PS_OK and a reference to the photo (release it
 * with cached_photo_unref()), or with PS_EBUSY or PS_ESTORE (the reason
 * in ps_errmsg()) and NULL when the store could not be asked.
 */
typedef void (*index_photo_fn)(void *arg, ps_err rc, struct cached_photo *);

/* The photo of `account` at `size`, from memory or the store. */
void	index_photo(struct portal_index *, int64_t webapp,
	    const char *account, enum store_thumb_size, index_photo_fn,
	    void *arg);
void	cached_photo_unref(void *photo);
/* This process stored or removed `account`'s photos. */
void	index_photo_forget(struct portal_index *, int64_t webapp,
	    const char *account);

#endif
