/*
 * logfmt event lines. Each line is formatted into one buffer and written
 * with a single write(2), so lines of concurrent threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_proc = "photosync";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "err", "warn", "info", "debug" };

#define LOG_BUFFER 65536

/* The buffer of the thread that called log_buffer_start(). */
static _Thread_local struct {
	bool	on;
	size_t	len;
	void	(*schedule)(void);
	char	data[LOG_BUFFER];
} *lbuf;

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		/* Nothing useful can be done when stderr is gone. */
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void
log_buffer_start(void (*schedule)(void))
{
	if (lbuf == NULL)
		lbuf = calloc(1, sizeof(*lbuf));
	if (lbuf == NULL)
		return;
	lbuf->on = true;
	lbuf->schedule = schedule;
}

void
log_flush(void)
{
	if (lbuf && lbuf->len) {
		write_all(lbuf->data, lbuf->len);
		lbuf->len = 0;
	}
}

void
log_buffer_stop(void)
{
	log_flush();
	if (lbuf)
		lbuf->on = false;
}

static void
emit(enum log_level lvl, const char *line, size_t n)
{
	if (lbuf == NULL || !lbuf->on) {
		write_all(line, n);
		return;
	}
	if (lbuf->len + n > LOG_BUFFER)
		log_flush();
	if (lbuf->len == 0 && lbuf->schedule)
		lbuf->schedule();
	memcpy(lbuf->data + lbuf->len, line, n);
	lbuf->len += n;
	if (lvl == LOG_ERR)
		log_flush();
}

void
log_init(const char *proc, enum log_level min)
{
	log_proc = proc;
	log_min = min;
}

bool
log_enabled(enum log_level lvl)
{
	return lvl <= log_min;
}

void
log_event(enum log_level lvl, const char *reqid, const char *ev,
    const char *fmt, ...)
{
	char line[4096];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	int r;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ lvl=%s proc=%s",
	    ts.tv_nsec / 1000000, level_names[lvl], log_proc);
	n += (size_t)r;
	if (reqid && *reqid) {
		r = snprintf(line + n, sizeof(line) - n, " req=%s",
		    log_q(reqid));
		n += (size_t)r < sizeof(line) - n ? (size_t)r : 0;
	}
	r = snprintf(line + n, sizeof(line) - n, " ev=%s", ev);
	n += (size_t)r < sizeof(line) - n ? (size_t)r : 0;
	if (fmt && *fmt && n + 2 < sizeof(line)) {
		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ? (size_t)r :
			    sizeof(line) - n - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	emit(lvl, line, n);
}

static int
is_bare(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("-_.@/:+,\\|", c) != NULL;
}

const char *
log_q(const char *s)
{
	static _Thread_local char ring[8][256];
	static _Thread_local unsigned slot;
	char *out = ring[slot++ % 8];
	size_t n = 0, i, max = 200;
	int bare = 1;

	if (s == NULL)
		s = "";
	for (i = 0; s[i] && i < max; i++)
		if (!is_bare((unsigned char)s[i]))
			bare = 0;
	if (bare && s[0] && strlen(s) <= max) {
		memcpy(out, s, strlen(s) + 1);
		return out;
	}
	out[n++] = '"';
	for (i = 0; s[i] && i < max && n < 240; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(out + n, 256 - n, "\\x%02x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	if (s[i])
		out[n++] = '~';	/* truncated */
	out[n++] = '"';
	out[n] = '\0';
	return out;
}
