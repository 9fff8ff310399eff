/*
 * Whole-file reads and atomic writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "file.h"
#include "xalloc.h"

ps_err
file_read(const char *path, size_t max, char **data, size_t *len)
{
	struct buf b;
	char chunk[65536];
	ps_err rc = PS_OK;
	int fd;

	fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY |
	    O_CLOEXEC);
	if (fd < 0)
		return ps_errf(PS_EIO, "cannot open %s: %s", path,
		    strerror(errno));
	buf_init(&b, max);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ps_errf(PS_EIO, "cannot read %s: %s", path,
			    strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (buf_add(&b, chunk, (size_t)n) != PS_OK) {
			rc = ps_errf(PS_ELIMIT, "%s is larger than %zu bytes",
			    path, max);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc != PS_OK) {
		buf_cleanup(&b);
		return rc;
	}
	*data = buf_take(&b, len);
	return PS_OK;
}

ps_err
file_write_atomic(const char *path, const void *data, size_t len,
    mode_t mode)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	const char *p = data;
	ps_err rc = PS_EIO;
	int fd;

	/* A fresh file, never one someone else prepared with wider modes. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd >= 0 && fchmod(fd, mode) != 0) {
		close(fd);
		unlink(tmp);
		fd = -1;
	}
	if (fd < 0) {
		ps_errf(PS_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ps_errf(PS_EIO, "cannot write %s: %s", tmp,
			    strerror(errno));
			close(fd);
			unlink(tmp);
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		ps_errf(PS_EIO, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = PS_OK;
out:
	free(tmp);
	return rc;
}

ps_err
file_mkdir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return ps_errf(PS_EIO, "cannot create directory %s: %s", path,
		    strerror(errno));
	return PS_OK;
}

char *
file_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);

	if (n > 0 && dir[n - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}
