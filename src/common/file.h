/*
 * Whole-file reads with a size cap, and atomic writes (temporary file,
 * fsync, rename), so a crash never leaves a half-written file behind.
 */
#ifndef PS_FILE_H
#define PS_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Reads `path` ("-" is standard input); the caller frees *data. */
ps_err	file_read(const char *path, size_t max, char **data, size_t *len);
ps_err	file_write_atomic(const char *path, const void *data, size_t len,
	    mode_t mode);
/* Creates a directory with mode 0700 if it does not exist. */
ps_err	file_mkdir(const char *path);
/* Joins a directory and a file name; the caller frees the result. */
char	*file_join(const char *dir, const char *name);

#endif
