/*
 * The master's mailboxes from the organisation's directory: the record a
 * person makes (the address from mail, the name from displayName or cn),
 * read and written through the store's directory functions, for `master
 * mailbox sync` and the schedule of `serve` (directory/sync.h does the
 * rest).
 */
#ifndef PS_MASTER_DIRECTORY_H
#define PS_MASTER_DIRECTORY_H

#include "directory/sync.h"

/* The sync's operations on the master's mailboxes. */
void	master_directory_ops(struct dir_sync_ops *ops);

struct dir_settings;

/* For the schedule (directory/schedule.h); `arg` is not used. */
ps_err	master_directory_ops_for(void *arg, const struct dir_settings *s,
	    struct dir_sync_ops *ops);

#endif
