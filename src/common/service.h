/*
 * Telling the service manager how a serving process stands (systemd's
 * notification protocol, Type=notify): one datagram of "KEY=VALUE" lines
 * to the AF_UNIX socket named by $NOTIFY_SOCKET, a path or, starting
 * with '@', an abstract name. Without $NOTIFY_SOCKET nothing is sent.
 * Our own few lines rather than libsystemd: one more shared library and
 * its dependencies in a process that needs one system call of it.
 */
#ifndef PS_SERVICE_H
#define PS_SERVICE_H

/*
 * Sends `state` ("READY=1", "STOPPING=1", "RELOADING=1", several
 * newline-separated). A failure is logged (service.notify_failed) and
 * otherwise ignored: the manager's timeout tells the admin. Never blocks:
 * the socket is non-blocking, the datagram small. Any thread.
 */
void	service_notify(const char *state);

#endif
