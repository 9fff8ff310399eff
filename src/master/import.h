/*
 * `master photo import` (import.c): many mailboxes' photos at once from
 * a folder, a CSV or the directory, rendered on every core and written
 * in batches.
 */
#ifndef PS_MASTER_IMPORT_H
#define PS_MASTER_IMPORT_H

#include <stdbool.h>

struct master_state;

/* Exit codes besides 0 (every photo stored or skipped) and 2 (usage). */
#define IMPORT_EXIT_FAILED	1	/* the source or the store failed */
#define IMPORT_EXIT_REFUSED	3	/* done, but some photos refused */

struct import_opts {
	const char	*folder;	/* files named ADDRESS.EXT */
	const char	*csv;		/* rows ADDRESS,FILE */
	bool		 from_directory;	/* jpegPhoto, thumbnailPhoto */
	bool		 dry_run;	/* check and render, store nothing */
	int		 threads;	/* render threads; 0: one per core */
};

/*
 * Runs the import of exactly one of the sources of `o` into the master's
 * store, printing refusals and a summary on stdout, progress on stderr.
 * Returns the command's exit code.
 */
int	master_photo_import(struct master_state *, const struct import_opts *);

#endif
