/*
 * logfmt event lines. Each line is formatted into one buffer and written
 * with a single write(2), so lines of concurrent threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_proc = "photosync";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "err", "warn", "info", "debug" };

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
	/* Nothing useful can be done when stderr is gone. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
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
