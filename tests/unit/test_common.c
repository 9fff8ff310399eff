/*
 * Unit tests of the common helpers: buffers, encodings, durations,
 * addresses, log escaping, and log lines when stderr refuses them (each
 * case in a child process, whose stderr is a file with a size limit,
 * /dev/full, a pipe nobody reads, or closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "t.h"

static void
test_buf(void)
{
	struct buf b, dst;
	char *data;

	buf_init(&b, 8);
	ok(buf_adds(&b, "12345678") == PS_OK, "fills up to the cap");
	ok(buf_adds(&b, "9") == PS_ELIMIT, "refuses past the cap");
	is_str(buf_str(&b), "12345678", "contents intact after refusal");
	buf_cleanup(&b);
	buf_init(&b, 100);
	buf_add_xml(&b, "a<b>&\"c'");
	is_str(buf_str(&b), "a&lt;b&gt;&amp;&quot;c&#39;", "xml escaping");
	buf_cleanup(&b);

	buf_init(&b, 1000);
	ok(buf_reserve(&b, 600) == PS_OK && b.b_cap == 601,
	    "a reservation beyond doubling is exact");
	ok(buf_reserve(&b, 1001) == PS_ELIMIT, "a reservation past the cap "
	    "is refused");
	buf_init(&dst, 4);
	buf_adds(&dst, "old");
	buf_adds(&b, "moved, not copied");
	data = b.b_data;
	buf_move(&dst, &b);
	ok(dst.b_data == data && dst.b_len == 17 && dst.b_max == 4,
	    "move hands over the bytes; the cap stays");
	is_str(buf_str(&dst), "moved, not copied", "moved contents");
	ok(b.b_data == NULL && b.b_len == 0 && b.b_max == 1000,
	    "the source is left empty, its cap kept");
	ok(buf_adds(&b, "again") == PS_OK, "the source can be used again");
	buf_cleanup(&b);
	buf_cleanup(&dst);
}

static void
test_b64(void)
{
	unsigned char *d;
	size_t n;
	char *s;

	s = b64_encode("\xfb\xff", 2, false);
	is_str(s, "+/8=", "standard alphabet with padding");
	free(s);
	s = b64_encode("\xfb\xff", 2, true);
	is_str(s, "-_8", "url alphabet without padding");
	free(s);
	ok(b64_decode("-_8", 3, &d, &n) == PS_OK && n == 2 &&
	    memcmp(d, "\xfb\xff", 2) == 0, "decodes url form");
	free(d);
	ok(b64_decode("+/8=", 4, &d, &n) == PS_OK && n == 2,
	    "decodes standard form");
	free(d);
	ok(b64_decode("a*bc", 4, &d, &n) == PS_EINVAL, "refuses junk");
	ok(b64_decode("abcde", 5, &d, &n) == PS_EINVAL, "refuses bad length");
}

static void
test_duration(void)
{
	int64_t s;
	char buf[32];

	ok(duration_parse("6h", &s) == PS_OK && s == 21600, "6h");
	ok(duration_parse("90m", &s) == PS_OK && s == 5400, "90m");
	ok(duration_parse("2d", &s) == PS_OK && s == 172800, "2d");
	ok(duration_parse("0m", &s) == PS_OK && s == 0, "0m");
	ok(duration_parse("6", &s) == PS_EINVAL &&
	    strstr(ps_errmsg(), "h (hours)") != NULL,
	    "bare number refused, units named");
	ok(duration_parse("6x", &s) == PS_EINVAL, "unknown unit refused");
	ok(duration_parse("-1h", &s) == PS_EINVAL, "negative refused");
	ok(duration_parse("6hh", &s) == PS_EINVAL, "trailing junk refused");
	is_str(duration_format(21600, buf), "6h", "formats hours");
	is_str(duration_format(5400, buf), "90m", "formats minutes");
	is_str(duration_format(0, buf), "0m", "formats zero");
}

static void
test_size(void)
{
	size_t n;

	ok(size_parse("64M", &n) == PS_OK && n == (size_t)64 << 20, "64M");
	ok(size_parse("512K", &n) == PS_OK && n == 512 * 1024, "512K");
	ok(size_parse("2G", &n) == PS_OK && n == (size_t)2 << 30, "2G");
	ok(size_parse("64", &n) == PS_EINVAL &&
	    strstr(ps_errmsg(), "K, M or G") != NULL,
	    "a bare size refused, units named");
	ok(size_parse("64MB", &n) == PS_EINVAL, "trailing junk refused");
	ok(size_parse("-1M", &n) == PS_EINVAL, "a negative size refused");
	ok(size_parse("99999999999999999999G", &n) == PS_EINVAL,
	    "an overflowing size refused");
}

static void
test_email(void)
{
	ok(email_valid("test1@contoso.com"), "plain address");
	ok(!email_valid("test1"), "no @");
	ok(!email_valid("../x@contoso.com"), "slash refused");
	ok(!email_valid("a\\b@contoso.com"), "backslash refused");
	ok(!email_valid("a b@contoso.com"), "space refused");
	ok(!email_valid("a@b@contoso.com"), "two @ refused");
	ok(!email_valid("a@contoso..com"), "double dot refused");
}

static void
test_ids(void)
{
	char g[37], r[17], r2[17];

	guid_new(g);
	ok(guid_valid(g), "new guid is valid");
	ok(g[14] == '4', "version 4");
	ok(!guid_valid("not-a-guid"), "junk is not a guid");
	reqid_new(r);
	is_int(strlen(r), 16, "request id has 16 hex digits");
	ok(strspn(r, "0123456789abcdef") == 16, "in lower case");
	reqid_new(r2);
	ok(strcmp(r, r2) != 0, "and the next one differs");
	is_int(hex_digit('0') + hex_digit('9'), 9, "hex digits 0 and 9");
	is_int(hex_digit('a') + hex_digit('F'), 25, "hex digits in either case");
	ok(hex_digit('g') < 0 && hex_digit('/') < 0 && hex_digit(0x80) < 0 &&
	    hex_digit(-1) < 0, "not hex digits");
}

static void
test_str_cat(void)
{
	char s[12];
	size_t n;

	n = str_cat(s, sizeof(s), 0, "1/");
	n = str_cat_int(s, sizeof(s), n, -42);
	n = str_cat(s, sizeof(s), n, "/x");
	is_str(s, "1/-42/x", "pieces and a negative number");
	is_int(n, 7, "its length");
	n = str_cat_int(s, sizeof(s), 0, INT64_MIN);
	is_str(s, "-9223372036", "the smallest number, cut to the size");
	is_int(n, 11, "the length is what fits");
	is_int(str_cat(s, sizeof(s), n, "more"), 11, "a full string stays");
	is_str(s, "-9223372036", "as it was");
	n = str_cat_int(s, sizeof(s), 0, 0);
	is_str(s, "0", "zero");
	is_int(n, 1, "its length");
	n = str_cat(s, 1, 0, "abc");
	ok(n == 0 && s[0] == '\0', "a one-byte buffer holds the empty "
	    "string");
}

static void
test_log_q(void)
{
	is_str(log_q("test1@contoso.com"), "test1@contoso.com", "bare value");
	is_str(log_q("a b"), "\"a b\"", "quoted value");
	is_str(log_q("x\"y\n"), "\"x\\\"y\\n\"", "escapes");
	is_str(log_q(""), "\"\"", "empty value quoted");
}

/* ---- log lines when stderr refuses them ---- */

#define PAD	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static char *log_dir;

static void
log_line(int i)
{
	/* Every such line has the same length. */
	log_info(NULL, "test.line", "i=%05d pad=%s", i, PAD);
}

/* Runs fn() in a child; true when it exited 0. */
static bool
log_child(void (*fn)(const char *), const char *file)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		return false;
	if (pid == 0) {
		fn(file);
		_exit(0);
	}
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0;
}

static void
stderr_to(const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(2);
	close(fd);
}

#define FSIZE_LINES	10000	/* about 1.6 MB: more than is kept */

/*
 * A file that may not grow past ten and a half lines: the eleventh line
 * is cut by the limit, the rest refused (EFBIG). Then the limit goes.
 */
static void
fsize_child(const char *file, bool buffered)
{
	struct rlimit rl;
	off_t at;
	int i;

	stderr_to(file);
	signal(SIGXFSZ, SIG_IGN);
	if (buffered)
		log_buffer_start(NULL);
	log_line(0);
	log_flush();
	at = lseek(STDERR_FILENO, 0, SEEK_END);
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = (rlim_t)(at * 11 + at / 2);
	if (at <= 0 || setrlimit(RLIMIT_FSIZE, &rl) != 0)
		_exit(3);
	for (i = 1; i < FSIZE_LINES; i++) {
		log_line(i);
		if (i % 7 == 0)
			log_flush();	/* as a loop iteration ends */
	}
	log_flush();
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		_exit(4);
	log_info(NULL, "test.after", NULL);
	log_flush();
}

static void
fsize_unbuffered(const char *file)
{
	fsize_child(file, false);
}

static void
fsize_buffered(const char *file)
{
	fsize_child(file, true);
}

/* /dev/full refuses everything (ENOSPC); then stderr is a file again. */
static void
devfull_child(const char *file)
{
	int fd = open("/dev/full", O_WRONLY), i;

	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(2);
	close(fd);
	for (i = 0; i < FSIZE_LINES; i++)
		log_line(i);
	stderr_to(file);
	log_info(NULL, "test.after", NULL);
}

/*
 * A pipe nobody reads: logging must not wait. Then the child reads what
 * the pipe holds, a round at a time, and keeps it in `file`.
 */
static void
pipe_child(const char *file)
{
	char buf[65536];
	int p[2], fd, i;
	ssize_t n;
	bool more = true;

	if (pipe(p) != 0 || dup2(p[1], STDERR_FILENO) < 0 ||
	    fcntl(p[0], F_SETFL, O_NONBLOCK) != 0 ||
	    (fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		_exit(2);
	close(p[1]);
	for (i = 0; i < FSIZE_LINES; i++)
		log_line(i);
	while (more) {
		more = false;
		while ((n = read(p[0], buf, sizeof(buf))) > 0) {
			if (write(fd, buf, (size_t)n) != n)
				_exit(3);
			more = true;
		}
		log_flush();
	}
	log_info(NULL, "test.after", NULL);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			_exit(3);
	close(fd);
}

#define GONE_LINES	5

/* stderr closed (EBADF), then a pipe without a reader (EPIPE). */
static void
closed_child(const char *file)
{
	int p[2], i;

	signal(SIGPIPE, SIG_IGN);
	if (pipe(p) != 0)
		_exit(2);
	close(STDERR_FILENO);
	for (i = 0; i < GONE_LINES; i++)
		log_line(i);
	if (dup2(p[1], STDERR_FILENO) < 0)
		_exit(2);
	close(p[0]);
	close(p[1]);
	for (i = GONE_LINES; i < 2 * GONE_LINES; i++)
		log_line(i);
	stderr_to(file);
	log_info(NULL, "test.after", NULL);
}

static char *
read_all(const char *file, size_t *len)
{
	struct stat sb;
	char *s = NULL;
	int fd = open(file, O_RDONLY);

	*len = 0;
	if (fd >= 0 && fstat(fd, &sb) == 0) {
		s = xcalloc(1, (size_t)sb.st_size + 1);
		if (read(fd, s, (size_t)sb.st_size) == sb.st_size)
			*len = (size_t)sb.st_size;
	}
	if (fd >= 0)
		close(fd);
	return s ? s : xcalloc(1, 1);
}

/*
 * The log must hold only whole lines: test.line i=0..k in order, each
 * intact, then at most one log.dropped count=d with k + 1 + d == `lines`
 * (every line written or counted), then test.after. Returns d, or -1.
 */
static long
log_check(const char *file, int lines, const char *what)
{
	char *s, *line, *end, *nl, msg[200], want[32];
	long next = 0, dropped = -1, reports = 0;
	bool whole = true, after = false;
	size_t len;

	s = read_all(file, &len);
	end = s + len;
	for (line = s; line < end && whole; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL ||
		    strncmp(line, "ts=", 3) != 0 || after) {
			whole = false;
			break;
		}
		*nl = '\0';
		snprintf(want, sizeof(want), "i=%05ld pad=", next);
		if (strstr(line, " ev=test.line ")) {
			whole = strstr(line, want) != NULL && strcmp(nl -
			    strlen(PAD), PAD) == 0 && reports == 0;
			next++;
		} else if (strstr(line, " lvl=warn ") &&
		    strstr(line, " ev=log.dropped count=")) {
			dropped = strtol(strstr(line, "count=") + 6, NULL, 10);
			reports++;
		} else if (strstr(line, " ev=test.after")) {
			after = true;
		} else {
			whole = false;
		}
	}
	snprintf(msg, sizeof(msg), "%s: only whole lines, in order", what);
	ok(whole && after && reports <= 1, msg);
	if (!whole)
		printf("#   at byte %zu: %.80s\n", (size_t)(line - s), line);
	snprintf(msg, sizeof(msg), "%s: every line written or counted "
	    "(%ld + %ld)", what, next, dropped);
	ok(next + (dropped > 0 ? dropped : 0) == lines, msg);
	free(s);
	return dropped;
}

static void
test_log_refused(void)
{
	char *file = xasprintf("%s/log", log_dir);
	long d;

	ok(log_child(fsize_unbuffered, file), "file size limit: the child");
	d = log_check(file, FSIZE_LINES, "file size limit");
	ok(d > 0, "file size limit: lines were dropped, and said so once");
	ok(log_child(fsize_buffered, file),
	    "file size limit, buffered: the child");
	d = log_check(file, FSIZE_LINES, "file size limit, buffered");
	ok(d > 0, "file size limit, buffered: dropped lines are told");
	ok(log_child(devfull_child, file), "/dev/full: the child");
	d = log_check(file, FSIZE_LINES, "/dev/full");
	ok(d > 0, "/dev/full: dropped lines are told");
	ok(log_child(pipe_child, file),
	    "a pipe nobody reads: logging did not wait");
	d = log_check(file, FSIZE_LINES, "a full pipe");
	ok(d > 0, "a full pipe: dropped lines are told");
	ok(log_child(closed_child, file), "closed stderr: the child");
	d = log_check(file, 2 * GONE_LINES, "closed stderr");
	is_int(d, 2 * GONE_LINES, "closed stderr: every line counted");
	unlink(file);
	free(file);
}

int
main(void)
{
	test_buf();
	test_b64();
	test_duration();
	test_size();
	test_email();
	test_ids();
	test_str_cat();
	test_log_q();
	if ((log_dir = t_tmpdir("photosync-log")) == NULL)
		return 1;
	test_log_refused();
	ok(rmdir(log_dir) == 0, "the temporary directory is gone");
	free(log_dir);
	return done();
}
