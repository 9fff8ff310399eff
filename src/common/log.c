/*
 * logfmt event lines. Each line is formatted into one buffer; everything
 * written to stderr goes through one mutex, so lines of concurrent
 * threads never interleave.
 *
 * Writing never waits for long and never tears a line. stderr may refuse
 * bytes for a while (a pipe nobody reads, a full disk, a file at its size
 * limit): what was not written, from the unwritten end of a line on, is
 * kept (up to LOG_PENDING bytes) and every later line or flush first
 * writes it; lines that do not fit are dropped and counted, and once
 * everything kept has been written one `log.dropped count=N` line says
 * how many. When stderr is gone (closed, a pipe without a reader) lines
 * are dropped and counted at once: nothing else can be done with them.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "str.h"

static const char *log_proc = "photosync";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "err", "warn", "info", "debug" };

#define LOG_LINE	4096		/* longest line, newline included */
#define LOG_BUFFER	65536		/* the loop thread's gathered lines */
#define LOG_PENDING	(1 << 20)	/* kept while stderr refuses them */

/* The buffer of the thread that called log_buffer_start(). */
static _Thread_local struct {
	bool	on;
	size_t	len;
	void	(*schedule)(void);
	char	data[LOG_BUFFER];
} *lbuf;

/* What stderr has not taken yet; out_mu guards it and every write. */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	size_t		len;
	uint64_t	dropped;	/* lines, since the last report */
	char		data[LOG_PENDING];
} kept;
/* Whether kept.len or kept.dropped is not 0, for log_flush. */
static atomic_bool kept_owed;

static size_t	line_format(char *, enum log_level, const char *,
		    const char *, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
static size_t	line_vformat(char *, enum log_level, const char *,
		    const char *, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));

static size_t
count_lines(const char *p, size_t n)
{
	const char *end = p + n;
	size_t lines = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		lines++;
		p++;
	}
	return lines;
}

/*
 * What stderr is, learnt by its first write (under out_mu) rather than
 * asked at every write: the loop writes after every round of answers.
 * 0 until known; a refused write and log_init forget it, so stderr
 * pointed elsewhere (dup2) is learnt again.
 */
static mode_t stderr_kind;

/*
 * One write(2) to stderr that cannot wait: a socket is sent to without
 * waiting; a pipe, FIFO or terminal is written only when poll(2) says it
 * has room, at most PIPE_BUF bytes of whole lines (a write the kernel
 * makes at once, which another process's lines cannot split). A regular
 * file is written as it is: a full disk answers at once.
 */
static ssize_t
write_some(int fd, const char *p, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	const char *nl;
	struct stat sb;

	if (stderr_kind == 0) {
		if (fstat(fd, &sb) != 0)
			return -1;
		stderr_kind = sb.st_mode & S_IFMT;
	}
	if (stderr_kind == S_IFREG)
		return write(fd, p, n);
	if (stderr_kind == S_IFSOCK)
		return send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (poll(&pfd, 1, 0) <= 0) {
		errno = EAGAIN;
		return -1;
	}
	if (n > PIPE_BUF) {
		nl = memrchr(p, '\n', PIPE_BUF);
		n = nl ? (size_t)(nl - p) + 1 : PIPE_BUF;
	}
	return write(fd, p, n);
}

/*
 * Writes p[0..n) to stderr until it is written or stderr refuses;
 * returns the bytes written. *gone is set when stderr will not take
 * anything again (closed, a pipe without a reader), as opposed to "not
 * now" (full, or at a size limit).
 */
static size_t
write_all(const char *p, size_t n, bool *gone)
{
	size_t done = 0;
	ssize_t w;

	*gone = false;
	while (done < n) {
		w = write_some(STDERR_FILENO, p + done, n - done);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		stderr_kind = 0;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOSPC && errno != EFBIG && errno != EDQUOT &&
		    errno != ENOBUFS && errno != ENOMEM)
			*gone = true;
		break;
	}
	return done;
}

/* Keeps whole lines of p[0..n) while they fit; drops and counts the rest. */
static void
out_keep(const char *p, size_t n)
{
	size_t room = LOG_PENDING - kept.len, take = n;
	const char *nl;

	if (n > room) {
		nl = room ? memrchr(p, '\n', room) : NULL;
		take = nl ? (size_t)(nl - p) + 1 : 0;
		kept.dropped += count_lines(p + take, n - take);
	}
	memcpy(kept.data + kept.len, p, take);
	kept.len += take;
}

/*
 * Writes p[0..n) (whole lines, or the rest of one and whole lines)
 * when nothing is kept; keeps what stderr did not take.
 */
static void
out_write(const char *p, size_t n)
{
	size_t w;
	bool gone;

	if (kept.len > 0) {
		out_keep(p, n);
		return;
	}
	w = write_all(p, n, &gone);
	if (gone)
		kept.dropped += count_lines(p + w, n - w);
	else if (w < n)
		out_keep(p + w, n - w);
}

/* Writes what was kept, then says how many lines were dropped. */
static void
out_retry(void)
{
	char line[LOG_LINE];
	uint64_t dropped;
	size_t w, n;
	bool gone;

	if (kept.len > 0) {
		w = write_all(kept.data, kept.len, &gone);
		if (gone) {
			kept.dropped += count_lines(kept.data + w,
			    kept.len - w);
			w = kept.len;
		}
		memmove(kept.data, kept.data + w, kept.len - w);
		kept.len -= w;
	}
	if (kept.len == 0 && kept.dropped > 0) {
		dropped = kept.dropped;
		kept.dropped = 0;
		n = line_format(line, LOG_WARN, NULL, "log.dropped",
		    "count=%llu", (unsigned long long)dropped);
		w = write_all(line, n, &gone);
		if (gone)
			kept.dropped = dropped;	/* still to be told */
		else if (w < n)
			out_keep(line + w, n - w);
	}
}

/* Lines to stderr, after what was kept. Takes the mutex. */
static void
out_put(const char *p, size_t n)
{
	pthread_mutex_lock(&out_mu);
	out_retry();
	if (n > 0)
		out_write(p, n);
	atomic_store_explicit(&kept_owed, kept.len > 0 || kept.dropped > 0,
	    memory_order_relaxed);
	pthread_mutex_unlock(&out_mu);
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
		out_put(lbuf->data, lbuf->len);
		lbuf->len = 0;
	} else if (atomic_load_explicit(&kept_owed, memory_order_relaxed)) {
		out_put(NULL, 0);
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
		out_put(line, n);
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
	pthread_mutex_lock(&out_mu);
	stderr_kind = 0;
	pthread_mutex_unlock(&out_mu);
}

bool
log_enabled(enum log_level lvl)
{
	return lvl <= log_min;
}

/* Formats one line, newline included, into line[LOG_LINE]. */
static size_t
line_vformat(char *line, enum log_level lvl, const char *reqid,
    const char *ev, const char *fmt, va_list ap)
{
	/* The second's text, made once a second per thread, not per line. */
	static _Thread_local struct {
		time_t	sec;
		size_t	len;
		char	text[32];
	} stamp = { .sec = -1 };
	const size_t size = LOG_LINE;
	struct timespec ts;
	struct tm tm;
	long ms;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != stamp.sec) {
		gmtime_r(&ts.tv_sec, &tm);
		stamp.len = strftime(stamp.text, sizeof(stamp.text),
		    "ts=%Y-%m-%dT%H:%M:%S", &tm);
		stamp.sec = ts.tv_sec;
	}
	memcpy(line, stamp.text, stamp.len);
	n = stamp.len;
	ms = ts.tv_nsec / 1000000;
	line[n++] = '.';
	line[n++] = (char)('0' + ms / 100);
	line[n++] = (char)('0' + ms / 10 % 10);
	line[n++] = (char)('0' + ms % 10);
	line[n] = '\0';
	n = str_cat(line, size, n, "Z lvl=");
	n = str_cat(line, size, n, level_names[lvl]);
	n = str_cat(line, size, n, " proc=");
	n = str_cat(line, size, n, log_proc);
	if (reqid && *reqid) {
		n = str_cat(line, size, n, " req=");
		n = str_cat(line, size, n, log_q(reqid));
	}
	n = str_cat(line, size, n, " ev=");
	n = str_cat(line, size, n, ev);
	if (fmt && *fmt && n + 2 < size) {
		line[n++] = ' ';
		r = vsnprintf(line + n, size - n, fmt, ap);
		if (r > 0)
			n += (size_t)r < size - n ? (size_t)r : size - n - 1;
	}
	if (n >= size - 1)
		n = size - 2;
	line[n++] = '\n';
	return n;
}

static size_t
line_format(char *line, enum log_level lvl, const char *reqid,
    const char *ev, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = line_vformat(line, lvl, reqid, ev, fmt, ap);
	va_end(ap);
	return n;
}

void
log_event(enum log_level lvl, const char *reqid, const char *ev,
    const char *fmt, ...)
{
	char line[LOG_LINE];
	va_list ap;
	size_t n;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	n = line_vformat(line, lvl, reqid, ev, fmt, ap);
	va_end(ap);
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
