/*
 * Reading the organisation's directory over LDAP (OpenLDAP's libldap:
 * the one module of the project that uses it): the people under a base,
 * each as a struct dir_person, with Active Directory's attribute names by
 * default or OpenLDAP's, over ldap:// (StartTLS when asked), ldaps://,
 * with a CA file, bound as a user or anonymously, in pages so that a
 * directory that caps a search's answers (Active Directory's
 * MaxPageSize, slapd's sizelimit) gives all of them.
 *
 * The calls wait for the network: a command's, or a worker's, never the
 * event loop's. Errors are sentences that say which step failed (the
 * connection, StartTLS, the bind, the search) and the server's words.
 */
#ifndef PS_DIRECTORY_LDAP_H
#define PS_DIRECTORY_LDAP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Which attribute names the directory uses. */
enum dir_schema {
	DIR_SCHEMA_AD,		/* objectGUID sAMAccountName userPrincipalName
				   mail displayName userAccountControl */
	DIR_SCHEMA_OPENLDAP,	/* entryUUID uid mail cn */
};

struct dir_config {
	const char	*uri;		/* ldap://host[:port] or ldaps:// */
	const char	*base;		/* the DN searched under */
	const char	*filter;	/* NULL: the schema's people */
	const char	*bind_dn;	/* NULL: anonymous */
	const char	*password;	/* with bind_dn */
	const char	*ca_file;	/* NULL: the system's */
	bool		 starttls;	/* ldap:// upgraded, or refused */
	enum dir_schema	 schema;
	int		 page_size;	/* 0: 500 */
	int		 timeout_s;	/* each step; 0: 30 */
};

/* One person as the directory has them; strings "" when absent. */
struct dir_person {
	char	 id[80];	/* objectGUID in hex, or entryUUID: stays */
	char	 dn[512];
	char	 login[256];	/* sAMAccountName, or uid */
	char	 upn[256];	/* userPrincipalName ("" on OpenLDAP) */
	char	 mail[256];
	char	 name[256];	/* displayName, or cn */
	bool	 disabled;	/* AD: userAccountControl's ACCOUNTDISABLE */
};

/*
 * Called for each person found, in the directory's order; a non-PS_OK
 * answer stops the search and is returned. `done` counts the people
 * given so far, for progress.
 */
typedef ps_err (*dir_person_fn)(void *arg, const struct dir_person *,
    size_t done);

/*
 * An attribute's value as a person's field: its bytes in lower-case hex
 * when `hex` (objectGUID), else the text itself; "" when it does not fit
 * in `n` bytes with the NUL, or (text) holds a NUL.
 */
void	dir_value_text(const void *val, size_t len, bool hex, char *out,
	    size_t n);

/*
 * The search filter of a person's id (dir_person.id): "(objectGUID=\xx
 * ...)" with each byte of the hex id escaped (RFC 4515), NULL when the id
 * is not even-length lower-case hex; "(entryUUID=...)" with the id as it
 * is, '*', '(', ')' and '\' escaped. The caller frees it.
 */
char	*dir_id_filter(enum dir_schema, const char *id);

/* The schema's filter of people, what a NULL cfg->filter means. */
const char *dir_people_filter(enum dir_schema);

/*
 * Connects, binds and searches as `cfg` says, giving each person with an
 * id and a login to `fn` (entries without either are skipped and
 * counted in *skipped, when not NULL).
 */
ps_err	dir_search(const struct dir_config *cfg, dir_person_fn fn,
	    void *arg, size_t *skipped);

/*
 * Called by dir_photos() for each entry that has a photo: its DN, its
 * address (mail; "" when it has none or it is too long), the attribute
 * the photo came from ("jpegPhoto", "thumbnailPhoto") and the value's
 * bytes (borrowed for the call). Non-PS_OK stops the search.
 */
typedef ps_err (*dir_photo_fn)(void *arg, const char *dn, const char *mail,
    const char *attr, const void *data, size_t len);

/*
 * Connects, binds and searches as `cfg` says (the same people as
 * dir_search()), reading each entry's binary photo attributes: the first
 * value of jpegPhoto, or when it has none, of thumbnailPhoto. Entries
 * with neither are passed over.
 */
ps_err	dir_photos(const struct dir_config *cfg, dir_photo_fn fn, void *arg);

/*
 * Checks `password` for the person `login` under the base: finds the
 * entry (bound as cfg says) by its login (sAMAccountName, uid; of
 * "DOMAIN\login", the part after the backslash), or by its mail when
 * `login` is an address (has an "@" and no backslash); then binds as
 * it. PS_OK: right; PS_EAUTH: wrong, or no such person; other errors:
 * the directory could not say (PS_EUPSTREAM when it refused the bind of
 * the search itself: cfg's, not the person's).
 */
ps_err	dir_check_password(const struct dir_config *cfg, const char *login,
	    const char *password);

/* ---- writing attributes of an entry ---- */

/* A connection bound as cfg says, for several writes. */
struct dir_conn;

/* Connects and binds as `cfg` says (cfg must outlive the connection). */
ps_err	dir_connect(const struct dir_config *cfg, struct dir_conn **out);
/* NULL is a no-op. */
void	dir_disconnect(struct dir_conn *);

/*
 * The DN of the entry whose id (struct dir_person's: objectGUID in hex,
 * or entryUUID) is `id`, searched under cfg->base. PS_ENOTFOUND when no
 * entry has it.
 */
ps_err	dir_find_dn(struct dir_conn *, const char *id, char *dn, size_t n);

/* The most ids dir_find_dns() looks up in one search. */
#define DIR_FIND_BATCH	100

/* What dir_find_dns() found of one id. */
struct dir_found {
	int	count;		/* entries with the id; -1: not an id */
	char	dn[512];	/* the first one's, when count > 0 */
};

/*
 * Looks up the entries of `n` ids (at most DIR_FIND_BATCH) under
 * cfg->base in one search (an OR of the ids, in pages): found[i] says
 * how many entries have ids[i] and the DN of the first. An error is the
 * search's (or a DN that cannot be read), for all of them.
 */
ps_err	dir_find_dns(struct dir_conn *, const char *const *ids, size_t n,
	    struct dir_found *found);

/* One attribute's value to write; data NULL: the attribute removed. */
struct dir_binary {
	const char		*attr;	/* "thumbnailPhoto", "jpegPhoto" */
	const unsigned char	*data;
	size_t			 len;
};

/*
 * Replaces the `n` attributes of entry `dn` in one modify (atomic: all
 * or none); an attribute removed that the entry lacks is no error.
 */
ps_err	dir_put_binary(struct dir_conn *, const char *dn,
	    const struct dir_binary *attrs, size_t n);

#endif
