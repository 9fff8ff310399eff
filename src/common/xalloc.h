/*
 * Allocation that cannot fail: on exhaustion the process logs and aborts
 * (the redis/h2o policy). Sizes that come from input are checked against a
 * limit before they reach these functions (see buf.h).
 */
#ifndef PS_XALLOC_H
#define PS_XALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
/* printf into a new string; the caller frees it. */
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wipes `len` bytes at `p` and frees it; for secrets. NULL is a no-op. */
void	 xfree_secret(void *p, size_t len);

#endif
