/*
 * Logging: one event per line in logfmt, to stderr.
 *
 *   ts=2026-11-25T15:30:00.123Z lvl=info proc=master req=7f3a9c2e01b4d6a8
 *   ev=photo.served email=test1@contoso.com size=HR648x648 status=200
 *
 * Event names are stable and listed in docs/logging.md. Values that come
 * from outside go through log_q(), which quotes and escapes them and caps
 * their length. Tokens, passwords and Authorization headers are never
 * passed to the log.
 */
#ifndef PS_LOG_H
#define PS_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the process name printed as proc= and the lowest level printed. */
void	log_init(const char *proc, enum log_level min);
bool	log_enabled(enum log_level);

/*
 * Writes one event. `reqid` may be NULL (no req= field). `fmt` formats the
 * rest of the line as key=value pairs; it may be NULL.
 */
void	log_event(enum log_level, const char *reqid, const char *ev,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Buffering, for a server's event loop thread: lines of this thread are
 * gathered and written together by log_flush(), which the server calls
 * at the end of each loop iteration (`schedule` is called when a line
 * lands in an empty buffer, so the server can arrange that). Errors and
 * full buffers are written at once; other threads write as before.
 */
void	log_buffer_start(void (*schedule)(void));
void	log_flush(void);
/* Flushes and writes each line at once again. */
void	log_buffer_stop(void);

/*
 * Returns `s` as a logfmt value: bare when it is made of safe characters,
 * otherwise double-quoted with \" \\ \n \t and \xNN escapes; capped at 200
 * characters. The result is borrowed from a small per-thread ring of
 * buffers, valid for the next few calls on the same thread, which is enough
 * for one log_event() call with up to eight values.
 */
const char *log_q(const char *s);

/*
 * The level is checked before the arguments are evaluated: a process
 * that logs only errors (portal refresh) formats no value for lines it
 * would drop.
 */
#define log_at(lvl, req, ev, ...)					\
	do {								\
		if (log_enabled(lvl))					\
			log_event(lvl, req, ev, __VA_ARGS__);		\
	} while (0)
#define log_err(req, ev, ...)	log_at(LOG_ERR, req, ev, __VA_ARGS__)
#define log_warn(req, ev, ...)	log_at(LOG_WARN, req, ev, __VA_ARGS__)
#define log_info(req, ev, ...)	log_at(LOG_INFO, req, ev, __VA_ARGS__)
#define log_debug(req, ev, ...)	log_at(LOG_DEBUG, req, ev, __VA_ARGS__)

#endif
