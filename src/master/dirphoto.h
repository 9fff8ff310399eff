/*
 * The master's photos in the directory: every photo change of a mailbox
 * from the directory is written to its entry, as thumbnailPhoto (Active
 * Directory's: 96 by 96, at most 10 KB) and jpegPhoto (inetOrgPerson's:
 * the size the settings say); a removal clears both.
 *
 * The change queues the write in the store (the directory outbox, in the
 * change's own transaction: store.h); `serve` delivers it here, on a
 * thread of its own with a store connection of its own, never on the
 * event loop: the due writes are claimed with the address's lease (of
 * several nodes, one writes each), and each writes what the mailbox has
 * at that moment, so a burst of changes costs one write. A directory
 * that cannot be written (down, refusing) puts the write off with a
 * growing wait (5 s doubling, at most an hour), never drops it.
 * `directory publish` writes every mailbox's photo at once.
 *
 * Settings (config keys, next to the directory's "directory.*"):
 * directory.photos (on/off), directory.photo_bind_dn and
 * directory.photo_password (a bind with the right to write; empty: the
 * reading bind's), directory.photo_attributes (thumbnailPhoto,
 * jpegPhoto or both), directory.jpeg_photo_size (a side of the nine).
 */
#ifndef PS_MASTER_DIRPHOTO_H
#define PS_MASTER_DIRPHOTO_H

#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"
#include "store/store.h"

#define DIRPHOTO_THUMB_SIDE	96
#define DIRPHOTO_THUMB_MAX	(10 * 1024)	/* what Outlook expects */
#define DIRPHOTO_AD_MAX		(100 * 1024)	/* AD's rangeUpper */
#define DIRPHOTO_JPEG_DEFAULT	648

struct dirphoto_settings {
	bool	 on;
	char	*bind_dn;	/* NULL: the reading bind's */
	char	*password;	/* with bind_dn; never printed */
	bool	 thumbnail;	/* thumbnailPhoto written */
	bool	 jpeg;		/* jpegPhoto written */
	int	 jpeg_side;	/* one of the nine sides */
};

/* Frees the strings (the password wiped) and zeroes `s`. */
void	dirphoto_settings_cleanup(struct dirphoto_settings *s);
/* Reads them; none stored: off, both attributes, 648. */
ps_err	dirphoto_settings_load(struct store *, struct dirphoto_settings *s);

/* What `directory set` was given; NULL members are left as they are. */
struct dirphoto_change {
	const char	*photos;	/* "on", "off" */
	const char	*bind_dn;	/* a DN, or "reading" */
	const char	*password_file;	/* with bind_dn */
	const char	*attributes;	/* "thumbnailPhoto,jpegPhoto", ... */
	const char	*jpeg_size;	/* "648" */
};

/* Whether `ch` changes anything. */
bool	dirphoto_change_given(const struct dirphoto_change *ch);
/*
 * The stored settings with `ch` applied, checked (`has_directory`:
 * whether a directory is set, which "on" needs), into *out; nothing
 * stored. PS_EINVAL with a sentence when a setting is wrong.
 */
ps_err	dirphoto_settings_check(struct store *, bool has_directory,
	    const struct dirphoto_change *ch, struct dirphoto_settings *out);
/* Stores `s`, in one transaction. */
ps_err	dirphoto_settings_save(struct store *,
	    const struct dirphoto_settings *s);
/* For `directory show`: the settings, the password never. */
void	dirphoto_settings_print(FILE *, const struct dirphoto_settings *s);

/*
 * `directory publish`: writes every mailbox's photo (or its absence) to
 * its entry at once, with progress on a terminal and a summary on
 * standard output. PS_OK when every write succeeded.
 */
ps_err	dirphoto_publish(struct store *);

struct event_base;
struct dirphoto_writer;

/*
 * Starts the delivery of the queued writes in serve, for the store at
 * `address` (what store_open() takes). NULL when its thread cannot
 * start. Loop thread.
 */
struct dirphoto_writer *dirphoto_writer_start(struct event_base *,
	    const char *address);
/* Looks at the outbox now (a change was queued). */
void	dirphoto_writer_wake(struct dirphoto_writer *);
/* Stops it, waiting for a delivery in progress. NULL is a no-op. */
void	dirphoto_writer_stop(struct dirphoto_writer *);

#endif
