/*
 * Bringing the store in line with the organisation's directory: the
 * portal's users (`portal user sync`) and the master's mailboxes
 * (`master mailbox sync`) from the people the directory has, keyed by
 * the directory's id (objectGUID, entryUUID), so that a renamed account
 * or a changed address keeps its photos and state.
 *
 * One run reads the whole directory first (with no filter given, the
 * schema's people that have an address), and checks it (every entry
 * has what a record needs, no two entries share an id, an account or an
 * address, none takes what another record of the store holds); only a
 * complete, successful search leads to any change, so a directory that
 * is down, refuses the bind or answers something unusable changes
 * nothing, and never disables everyone. Then the changes are written in
 * batches, one transaction each: a record is written whole or not at
 * all. Records added by hand (no directory id) are left alone.
 *
 * The role's part (what a record is made of, how it is read and written)
 * is a struct dir_sync_ops; the calls wait on the network and the store:
 * an admin command's, or a serve's work thread, never the event loop.
 */
#ifndef PS_DIRECTORY_SYNC_H
#define PS_DIRECTORY_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "directory/ldap.h"

struct store;

/* The directory options of the sync commands and of `directory set`. */
struct dir_options {
	const char	*ldap;		/* --ldap URL */
	const char	*base;		/* --base DN */
	const char	*filter;	/* --filter F, or NULL */
	const char	*bind_dn;	/* --bind-dn DN, or NULL: anonymous */
	const char	*password_file;	/* --password-file F, with bind_dn */
	const char	*ca_file;	/* --ca-file F, or NULL */
	const char	*attributes;	/* --attributes ad|openldap, or NULL */
	bool		 starttls;	/* --starttls */
};

/*
 * Checks `o` and makes `cfg` of it (its strings borrowed from `o`, the
 * password read from o->password_file into *password, which the caller
 * frees with xfree_secret(); NULL when anonymous). PS_EINVAL with a
 * sentence naming the option when one is missing or wrong.
 */
ps_err	dir_options_check(const struct dir_options *o, struct dir_config *cfg,
	    char **password);
/*
 * A bind password: the first line of file `path` ("-": standard input)
 * into *password (free with xfree_secret()). PS_EINVAL when it is empty.
 */
ps_err	dir_password_file_read(const char *path, char **password);

/*
 * A record of the store as the sync sees it: a user (key: the account)
 * or a mailbox (key: the address). Strings are owned by whoever made
 * the record; id is NULL for a record made by hand.
 */
struct dir_record {
	char	*id;		/* the directory's id, lower case */
	char	*key;		/* account or address, lower case */
	char	*mail;		/* lower case */
	char	*name;
	char	*dn;		/* the entry's DN (directory side only) */
	bool	 disabled;
};

struct dir_sync_ops {
	const char	*what;		/* "user", "mailbox": for messages */
	const char	*key_name;	/* "account", "address" */
	/*
	 * The record of person `p`: key, mail and name, xstrdup()ed.
	 * PS_EINVAL with a sentence when the person cannot be one (no
	 * address, an account name that is not valid).
	 */
	ps_err	(*record_of)(void *arg, const struct dir_person *p,
		    struct dir_record *out);
	/* Gives every record of the store to `add`, hand-made ones too. */
	ps_err	(*load)(void *arg, struct store *,
		    ps_err (*add)(void *, const struct dir_record *),
		    void *add_arg);
	/*
	 * Writes `now` (id, key, mail, name, disabled) inside the caller's
	 * transaction; `was` is its key in the store, NULL for a new one.
	 */
	ps_err	(*put)(void *arg, struct store *, const struct dir_record *now,
		    const char *was);
	void	*arg;
};

/* What a run did (or, dry, would do). Each record counts once. */
struct dir_sync_counts {
	size_t	added;		/* new to the store */
	size_t	updated;	/* name or (users) address changed */
	size_t	renamed;	/* key changed: account, or the address */
	size_t	disabled;	/* left the directory, or disabled there */
	size_t	restored;	/* found again, or enabled again */
	size_t	unchanged;	/* the store had it as it is */
};

struct dir_sync_run {
	bool	 dry_run;	/* plan and count, write nothing */
	size_t	 batch;		/* records per transaction; 0: 500 */
	FILE	*progress;	/* NULL: silent; else a line kept up to date */
};

/*
 * Reads the directory as `cfg` says and brings the records of `st` in
 * line with it (above). On failure nothing was changed, unless the store
 * failed while writing: then the batches before the failing one stay
 * (each record whole), and the sentence says how many were written.
 */
ps_err	dir_sync(const struct dir_config *cfg, struct store *st,
	    const struct dir_sync_ops *ops, const struct dir_sync_run *run,
	    struct dir_sync_counts *counts);

/*
 * The sync commands (portal user sync, master mailbox sync): checks `o`,
 * runs dir_sync() with a progress line when stderr is a terminal, and
 * prints the report on stdout ("synced users from URL: added 3, ...";
 * `plural` names the records). On failure nothing is printed and the
 * reason is in ps_errmsg().
 */
ps_err	dir_sync_command(const struct dir_options *o, struct store *st,
	    const struct dir_sync_ops *ops, bool dry_run, const char *plural);

/* "added 3, updated 1, ..." for the report and the log. */
void	dir_sync_counts_text(const struct dir_sync_counts *c, char *out,
	    size_t n);

#endif
