/*
 * Capped growable buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->b_max = max;
}

void
buf_cleanup(struct buf *b)
{
	free(b->b_data);
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->b_len = 0;
	if (b->b_data)
		b->b_data[0] = '\0';
}

ps_err
buf_reserve(struct buf *b, size_t more)
{
	size_t need, cap;

	if (more > b->b_max || b->b_len > b->b_max - more)
		return ps_errf(PS_ELIMIT, "more than %zu bytes", b->b_max);
	need = b->b_len + more + 1;
	if (need <= b->b_cap)
		return PS_OK;
	/* Doubling for appends; exactly the room asked for beyond that. */
	cap = b->b_cap ? b->b_cap * 2 : 256;
	if (cap < need)
		cap = need;
	b->b_data = xrealloc(b->b_data, cap);
	b->b_cap = cap;
	return PS_OK;
}

ps_err
buf_add(struct buf *b, const void *p, size_t n)
{
	ps_err rc;

	if ((rc = buf_reserve(b, n)) != PS_OK)
		return rc;
	if (n)
		memcpy(b->b_data + b->b_len, p, n);
	b->b_len += n;
	b->b_data[b->b_len] = '\0';
	return PS_OK;
}

ps_err
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

ps_err
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	ps_err rc;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return ps_errf(PS_EINVAL, "bad format");
	if ((rc = buf_reserve(b, (size_t)n)) != PS_OK)
		return rc;
	vsnprintf(b->b_data + b->b_len, (size_t)n + 1, fmt, ap);
	b->b_len += (size_t)n;
	return PS_OK;
}

ps_err
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	ps_err rc;

	va_start(ap, fmt);
	rc = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

ps_err
buf_add_xml(struct buf *b, const char *s)
{
	ps_err rc = PS_OK;
	const char *run = s;

	for (; *s && rc == PS_OK; s++) {
		const char *rep = NULL;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		if ((rc = buf_add(b, run, (size_t)(s - run))) == PS_OK)
			rc = buf_adds(b, rep);
		run = s + 1;
	}
	if (rc == PS_OK)
		rc = buf_add(b, run, (size_t)(s - run));
	return rc;
}

void
buf_move(struct buf *dst, struct buf *src)
{
	free(dst->b_data);
	dst->b_data = src->b_data;
	dst->b_len = src->b_len;
	dst->b_cap = src->b_cap;
	src->b_data = NULL;
	src->b_len = src->b_cap = 0;
}

char *
buf_take(struct buf *b, size_t *len)
{
	char *p;

	if (b->b_data == NULL)
		b->b_data = xcalloc(1, 1);
	p = b->b_data;
	if (len)
		*len = b->b_len;
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
	return p;
}

const char *
buf_str(const struct buf *b)
{
	return b->b_data ? b->b_data : "";
}
