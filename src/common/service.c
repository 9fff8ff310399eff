/*
 * The notification datagram to the service manager (service.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/service.h"

void
service_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len;
	socklen_t slen;
	int fd, e = 0;

	if (path == NULL || path[0] == '\0')
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path)) {
		log_warn(NULL, "service.notify_failed", "socket=%s error=%s",
		    log_q(path), log_q("not an absolute path or @name, or "
		    "too long"));
		return;
	}
	memcpy(addr.sun_path, path, len);
	/* An abstract name: the '@' stands for the leading NUL. */
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		e = errno;
	else if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&addr, slen) < 0)
		e = errno;
	if (fd >= 0)
		close(fd);
	if (e != 0)
		log_warn(NULL, "service.notify_failed", "socket=%s error=%s",
		    log_q(path), log_q(strerror(e)));
}
