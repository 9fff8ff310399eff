/*
 * The directory sync inside `serve`: the settings `directory set` keeps
 * in the role's config table, and a schedule that runs the sync on a
 * thread of its own, never on the event loop.
 *
 * Settings (config keys "directory.*"): the directory's options as the
 * sync commands take them, its bind password (kept in the store, so
 * that every node of a shared store has it; never printed), the period
 * (0: off), whether passwords are checked by the directory, and the
 * portal's accounts' domain.
 *
 * The schedule looks at the settings every DIR_SCHEDULE_TICK seconds
 * (and once at start) on its thread, with a store connection of its
 * own. When a period (as the settings say now; a minute at most after a
 * failed run) has passed since this process's last run it takes the
 * store's lease "directory-sync" until the next one is due: of several
 * nodes of one store, one runs each period. The outcome goes to
 * the loop, which logs it (directory.sync, directory.sync_failed) and
 * sets the metrics photosync_directory_sync_*.
 */
#ifndef PS_DIRECTORY_SCHEDULE_H
#define PS_DIRECTORY_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "directory/sync.h"
#include "store/store.h"

#define DIR_SCHEDULE_TICK	5	/* seconds */

struct dir_settings {
	char	*ldap, *base, *filter, *bind_dn, *password, *ca_file;
	char	*attributes;	/* "ad", "openldap" */
	char	*domain;	/* the portal's accounts' domain, or NULL */
	bool	 starttls;
	int64_t	 every;		/* seconds; 0: no schedule */
	bool	 passwords;	/* sign-in passwords checked by a bind */
};

/* Frees the strings (the password wiped) and zeroes `s`. */
void	dir_settings_cleanup(struct dir_settings *s);
/* Reads them; none stored: s->ldap NULL, every 0, passwords off. */
ps_err	dir_settings_load(struct store *, struct dir_settings *s);
/* Writes them all, in one transaction. */
ps_err	dir_settings_save(struct store *, const struct dir_settings *s);
/* The directory's configuration of `s` (strings borrowed from `s`). */
void	dir_settings_config(const struct dir_settings *s,
	    struct dir_config *cfg);

/* What `directory set` was given; NULL members are left as they are. */
struct dir_settings_change {
	const struct dir_options *dir;	/* dir->ldap NULL: unchanged */
	const char	*every;		/* DURATION, or "off" */
	const char	*passwords;	/* "on", "off" */
	const char	*domain;	/* the portal's accounts' domain */
};

/*
 * `directory set`: applies `ch` to the stored settings, checked first
 * (the directory's options by dir_options_check(), all given together
 * since they replace the stored ones; a period of at least a minute; a
 * schedule or passwords only with a directory), and stores them in one
 * transaction. The result in *out (dir_settings_cleanup()). PS_EINVAL
 * with a sentence, nothing stored, when a setting is wrong.
 */
ps_err	dir_settings_change(struct store *,
	    const struct dir_settings_change *ch, struct dir_settings *out);
/* `directory show`: the settings, the password never. */
void	dir_settings_print(FILE *, const struct dir_settings *s);

struct event_base;
struct dir_schedule;

/*
 * The role's part: the sync's operations for these settings (the
 * portal's need the domain). PS_EINVAL with a sentence when they
 * cannot be made. Called on the schedule's thread.
 */
typedef ps_err (*dir_ops_fn)(void *arg, const struct dir_settings *,
	    struct dir_sync_ops *ops);

/*
 * Starts the schedule of a server whose store is at `address` (what
 * store_open() takes), for `role`; `what` names the records in the log
 * ("users", "mailboxes"). `arg` is given to `ops_for` and must outlive
 * the schedule. NULL when its thread cannot start (the reason in
 * ps_errmsg()). Loop thread.
 */
struct dir_schedule *dir_schedule_start(struct event_base *,
	    const char *address, enum store_role role, const char *what,
	    dir_ops_fn ops_for, void *arg);
/* Stops it, waiting for a run in progress to end. NULL is a no-op. */
void	dir_schedule_stop(struct dir_schedule *);

#endif
