/*
 * The store: everything photosync keeps that is not a key file.
 *
 * One store per state directory (the master's or the portal's). The
 * embedded backend is SQLite in WAL mode, so the admin commands and a
 * running server share it safely: a change committed by one process is
 * seen by the next query of the other. Every multi-row change is one
 * transaction; a failure or a crash leaves the previous state intact.
 * Schema changes are numbered migrations applied at open.
 *
 * Not thread-safe: one struct store per thread.
 */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct store;

enum store_role { STORE_MASTER, STORE_PORTAL };

/*
 * Opens (with `create`, creates) the store at `path` and brings its schema
 * up to date. PS_ENOTFOUND when it does not exist and !create.
 */
ps_err	store_open(const char *path, enum store_role, bool create,
	    struct store **out);
void	store_close(struct store *);

/*
 * A number that changes whenever any process commits a change to the
 * store, so a server can keep derived caches and rebuild them only then.
 */
int64_t	store_data_version(struct store *);

/* Settings: small key/value pairs. The caller frees *value. */
ps_err	store_config_get(struct store *, const char *key, char **value);
ps_err	store_config_set(struct store *, const char *key, const char *value);

/* ---- master: mailboxes ---- */

struct store_mailbox {
	char	 email[256];	/* lower case */
	char	 name[256];
	char	*pwhash;	/* Argon2id string, or NULL; owned */
	int64_t	 created;
	char	 etag[64];	/* "" when there is no photo */
	int64_t	 photo_updated;
	int	 photo_side;	/* side of the largest stored size */
};

void	store_mailbox_cleanup(struct store_mailbox *);
/* PS_EEXIST when the address is taken. */
ps_err	store_mailbox_add(struct store *, const char *email, const char *name,
	    const char *pwhash);
/* Removes the mailbox and its photo. PS_ENOTFOUND if absent. */
ps_err	store_mailbox_remove(struct store *, const char *email);
/* Case-insensitive lookup. PS_ENOTFOUND if absent. */
ps_err	store_mailbox_get(struct store *, const char *email,
	    struct store_mailbox *out);
ps_err	store_mailbox_set_password(struct store *, const char *email,
	    const char *pwhash);
/* Calls `fn` for each mailbox in address order; stops on non-PS_OK. */
ps_err	store_mailbox_each(struct store *,
	    ps_err (*fn)(void *, const struct store_mailbox *), void *arg);

/* ---- master: photos ---- */

struct store_photo_size {
	int			 code;	/* index of the size code, 0..8 */
	int			 side;	/* pixels actually stored */
	const unsigned char	*data;
	size_t			 len;
};

/*
 * Replaces the mailbox's photo with `n` sizes and `etag`, atomically.
 * PS_ENOTFOUND if there is no such mailbox.
 */
ps_err	store_photo_put(struct store *, const char *email, const char *etag,
	    const struct store_photo_size *sizes, size_t n);
/* Removes the photo; PS_ENOTFOUND if there was none. */
ps_err	store_photo_remove(struct store *, const char *email);

struct store_photo {
	char		 etag[64];
	int		 code;	/* the code of the size returned */
	int		 side;
	unsigned char	*data;	/* owned; free() */
	size_t		 len;
	int64_t		 updated;
};

/*
 * Fetches size `code` of the photo, or when that size is not stored (the
 * source was smaller), the largest size stored. PS_ENOTFOUND when the
 * mailbox has no photo. Free with store_photo_cleanup().
 */
ps_err	store_photo_get(struct store *, const char *email, int code,
	    struct store_photo *out);
void	store_photo_cleanup(struct store_photo *);

/* ---- master: partners (portals trusted for S2S) ---- */

struct store_partner {
	char	 name[128];
	char	 issuer[256];	/* "<principal>@<realm>" */
	char	*metadata_url;	/* NULL when registered from a file */
	char	*metadata;	/* the JSON document as fetched */
	int64_t	 fetched;
	int64_t	 added;
};

void	store_partner_cleanup(struct store_partner *);
/* Adds, or replaces the partner with the same name. */
ps_err	store_partner_put(struct store *, const struct store_partner *);
/* By name or issuer. PS_ENOTFOUND if absent. */
ps_err	store_partner_remove(struct store *, const char *name_or_issuer);
ps_err	store_partner_get(struct store *, const char *name_or_issuer,
	    struct store_partner *out);
ps_err	store_partner_each(struct store *,
	    ps_err (*fn)(void *, const struct store_partner *), void *arg);

#endif
