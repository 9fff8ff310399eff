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

#endif
