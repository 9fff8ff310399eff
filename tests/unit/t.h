/*
 * A tiny TAP harness for the unit tests: ok(), is_int(), is_str(), and
 * done() which prints the plan and returns the exit status. Each test file
 * is one program; meson reads its TAP output.
 */
#ifndef PS_T_H
#define PS_T_H

#include <stdio.h>
#include <string.h>

static int t_count, t_failed;

static inline int
t_ok(int cond, const char *file, int line, const char *what)
{
	t_count++;
	if (!cond)
		t_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", t_count, what);
	if (!cond)
		printf("#   at %s:%d\n", file, line);
	fflush(stdout);
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

static inline int
done(void)
{
	printf("1..%d\n", t_count);
	return t_failed ? 1 : 0;
}

#endif
