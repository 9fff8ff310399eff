/*
 * A growable byte buffer with a mandatory cap (curl's dynbuf idea): input
 * can never make it grow past `max`, appending past the cap fails with
 * PS_ELIMIT. The contents are always NUL-terminated for convenience.
 */
#ifndef PS_BUF_H
#define PS_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

struct buf {
	char	*b_data;	/* owned; NULL until the first append */
	size_t	 b_len;
	size_t	 b_cap;
	size_t	 b_max;		/* hard limit on b_len */
};

void	buf_init(struct buf *, size_t max);
void	buf_cleanup(struct buf *);	/* frees the data, keeps max */
void	buf_reset(struct buf *);	/* empties, keeps memory */
/* Room for `more` bytes beyond b_len; PS_ELIMIT past the cap. */
ps_err	buf_reserve(struct buf *, size_t more);
ps_err	buf_add(struct buf *, const void *, size_t);
ps_err	buf_adds(struct buf *, const char *);
ps_err	buf_addf(struct buf *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ps_err	buf_vaddf(struct buf *, const char *fmt, va_list)
    __attribute__((format(printf, 2, 0)));
/* Appends `s` escaped for XML/HTML text and attribute values. */
ps_err	buf_add_xml(struct buf *, const char *s);
/* Hands the data to the caller (free() it); the buffer becomes empty. */
char	*buf_take(struct buf *, size_t *len);
/*
 * Moves src's bytes to dst without copying them: dst's own are freed, src
 * is left empty. Each keeps its cap; dst's is not checked against the
 * bytes moved in.
 */
void	buf_move(struct buf *dst, struct buf *src);
/* The contents, never NULL; borrowed until the next change. */
const char *buf_str(const struct buf *);

#endif
