/*
 * A tiny TAP harness for the unit tests: ok(), is_int(), is_str(), and
 * done() which prints the plan and returns the exit status. Each test file
 * is one program; meson reads its TAP output.
 */
#ifndef PS_T_H
#define PS_T_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_count, t_failed;

static inline void
t_report(int cond, const char *file, int line, const char *what)
{
	const char *c;

	t_count++;
	if (!cond)
		t_failed++;
	printf("%sok %d - ", cond ? "" : "not ", t_count);
	/* A description quoting bad input stays on its TAP line. */
	for (c = what; *c; c++) {
		if (*c == '\r' || *c == '\n')
			fputs(*c == '\r' ? "\\r" : "\\n", stdout);
		else
			putchar(*c);
	}
	putchar('\n');
	if (!cond)
		printf("#   at %s:%d\n", file, line);
	fflush(stdout);
}

/*
 * Kept this small so that the static analyzer follows it into every
 * check of a long test, and sees that a failed check's `if (!ok(...))`
 * is taken.
 */
static inline int
t_ok(int cond, const char *file, int line, const char *what)
{
	t_report(cond, file, line, what);
	return cond;
}

#define ok(cond, what) t_ok(!!(cond), __FILE__, __LINE__, what)
#define is_int(got, want, what)						\
	do {								\
		long long g_ = (long long)(got), w_ = (long long)(want);\
		if (!ok(g_ == w_, what))				\
			printf("#   got %lld, want %lld\n", g_, w_);	\
	} while (0)
#define is_str(got, want, what)						\
	do {								\
		const char *g_ = (got), *w_ = (want);			\
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, what))		\
			printf("#   got \"%s\", want \"%s\"\n",		\
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)");	\
	} while (0)

/*
 * Makes a new empty directory NAME-XXXXXX for a test program's files, in
 * TMPDIR (the suite gives every test a fresh one and fails the test when
 * anything is left in it: tests/tmpguard.py), else in P_tmpdir. Returns
 * the path, which the caller frees after removing the directory; on
 * failure prints "Bail out!" and returns NULL.
 */
static inline char *
t_tmpdir(const char *name)
{
	const char *parent = getenv("TMPDIR");
	char *path;
	size_t len;

	if (parent == NULL || *parent == '\0')
		parent = P_tmpdir;
	len = strlen(parent) + strlen(name) + sizeof("/-XXXXXX");
	if ((path = malloc(len)) == NULL) {
		printf("Bail out! out of memory\n");
		return NULL;
	}
	snprintf(path, len, "%s/%s-XXXXXX", parent, name);
	if (mkdtemp(path) == NULL) {
		printf("Bail out! cannot make a directory in %s: %s\n", parent,
		    strerror(errno));
		free(path);
		return NULL;
	}
	return path;
}

static inline int
done(void)
{
	printf("1..%d\n", t_count);
	return t_failed ? 1 : 0;
}

#endif
