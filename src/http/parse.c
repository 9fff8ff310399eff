/*
 * Reading HTTP/1.1 requests in place; see parse.h. Strict where laxness
 * has let requests be read two ways (RFC 9112 §6.3, §11.2): folded header
 * lines, a Content-Length next to Transfer-Encoding, conflicting lengths
 * and codings other than chunked are refused. Lenient where clients
 * differ harmlessly: a bare LF ends a line, empty lines before the
 * request line are skipped.
 */
#include <string.h>
#include <strings.h>

#include "common/str.h"
#include "parse.h"

/* tchar of RFC 9110 §5.6.2. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The end of the line starting at p (its '\n'), or NULL. */
static char *
line_end(char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* Ends the line at nl (dropping a CR before it); false on a stray CR. */
static bool
line_cut(char *start, char *nl)
{
	char *p;

	if (nl > start && nl[-1] == '\r')
		nl[-1] = '\0';
	*nl = '\0';
	for (p = start; *p; p++)
		if (*p == '\r')
			return false;
	return true;
}

/* The offset just past the empty line that ends the head, or 0. */
static size_t
head_end(const char *buf, size_t len, size_t from)
{
	const char *p = buf + from, *end = buf + len;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - buf);
		if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - buf);
		if (p >= end - 1)
			break;
	}
	return 0;
}

static bool
token_list_has(const char *v, const char *tok)
{
	size_t tl = strlen(tok);

	while (*v) {
		size_t n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ", \t");
		if (n == tl && strncasecmp(v, tok, tl) == 0)
			return true;
		v += n;
	}
	return false;
}

#define FAIL(st, msg) do {						\
	*status = (st);							\
	*why = (msg);							\
	return HTTP_PARSE_ERROR;					\
} while (0)

static enum http_parse_result
parse_request_line(char *line, struct http_head *h, int *status,
    const char **why)
{
	char *sp1, *sp2, *v;

	sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line)
		FAIL(400, "the request line is not valid");
	*sp1 = '\0';
	for (v = line; *v; v++)
		if (!is_tchar((unsigned char)*v))
			FAIL(400, "the method is not valid");
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || sp2 == sp1 + 1)
		FAIL(400, "the request line is not valid");
	*sp2 = '\0';
	for (v = sp1 + 1; *v; v++)
		if ((unsigned char)*v <= 0x20 || *v == 0x7f)
			FAIL(400, "the request target is not valid");
	v = sp2 + 1;
	if (strncmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
	    v[6] != '.' || v[7] < '0' || v[7] > '9' || v[8] != '\0')
		FAIL(400, "the HTTP version is not valid");
	if (v[5] != '1')
		FAIL(505, "only HTTP/1.0 and HTTP/1.1 are served");
	h->method = line;
	h->target = sp1 + 1;
	h->minor = v[7] == '0' ? 0 : 1;
	return HTTP_PARSE_DONE;
}

static enum http_parse_result
parse_field(char *line, struct http_head *h, int *status, const char **why)
{
	char *colon, *v, *e;

	if (*line == ' ' || *line == '\t')
		FAIL(400, "folded header lines are not accepted");
	colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		FAIL(400, "a header line is not valid");
	*colon = '\0';
	for (v = line; *v; v++)
		if (!is_tchar((unsigned char)*v))
			FAIL(400, "a header name is not valid");
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (h->nfields == HTTP_MAX_FIELDS)
		FAIL(431, "too many header fields");
	h->fields[h->nfields].name = line;
	h->fields[h->nfields].value = v;
	h->nfields++;
	return HTTP_PARSE_DONE;
}

/* What the fields say about the body and the connection. */
static enum http_parse_result
parse_semantics(struct http_head *h, int *status, const char **why)
{
	size_t i;

	h->content_length = -1;
	h->keep_alive = h->minor == 1;
	for (i = 0; i < h->nfields; i++) {
		const char *n = h->fields[i].name, *v = h->fields[i].value;

		if (strcasecmp(n, "Content-Length") == 0) {
			int64_t cl = 0;
			const char *p;

			if (*v == '\0')
				FAIL(400, "Content-Length is not valid");
			for (p = v; *p; p++) {
				if (*p < '0' || *p > '9' ||
				    cl > (INT64_MAX - 9) / 10)
					FAIL(400, "Content-Length is not valid");
				cl = cl * 10 + (*p - '0');
			}
			if (h->content_length >= 0 && h->content_length != cl)
				FAIL(400, "conflicting Content-Length fields");
			h->content_length = cl;
		} else if (strcasecmp(n, "Transfer-Encoding") == 0) {
			if (h->chunked || strcasecmp(v, "chunked") != 0)
				FAIL(501, "only the chunked transfer coding "
				    "is accepted");
			h->chunked = true;
		} else if (strcasecmp(n, "Connection") == 0) {
			if (token_list_has(v, "close"))
				h->keep_alive = false;
			else if (token_list_has(v, "keep-alive"))
				h->keep_alive = true;
		} else if (strcasecmp(n, "Expect") == 0) {
			h->expect_continue = h->minor == 1 &&
			    strcasecmp(v, "100-continue") == 0;
		}
	}
	if (h->chunked && h->content_length >= 0)
		FAIL(400, "both Content-Length and Transfer-Encoding");
	return HTTP_PARSE_DONE;
}

enum http_parse_result
http_parse_head(char *buf, size_t len, size_t max, struct http_head *h,
    int *status, const char **why)
{
	char *p, *end, *nl;
	size_t skip = 0, hl;
	enum http_parse_result res;

	/* Empty lines before the request line are ignored (§2.2). */
	while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	hl = head_end(buf, len, skip);
	if (hl == 0 && len <= max)
		return HTTP_PARSE_MORE;
	memset(h, 0, sizeof(*h));
	if (hl == 0 || hl > max)
		FAIL(431, "the request head is too large");
	if (memchr(buf, '\0', hl) != NULL)
		FAIL(400, "the request head contains a NUL byte");
	h->head_len = hl;
	p = buf + skip;
	end = buf + hl;
	nl = line_end(p, end);
	if (!line_cut(p, nl))
		FAIL(400, "the request line is not valid");
	if ((res = parse_request_line(p, h, status, why)) != HTTP_PARSE_DONE)
		return res;
	for (p = nl + 1; p < end; p = nl + 1) {
		nl = line_end(p, end);
		if (!line_cut(p, nl))
			FAIL(400, "a header line is not valid");
		if (*p == '\0')
			break;			/* the empty line */
		if ((res = parse_field(p, h, status, why)) != HTTP_PARSE_DONE)
			return res;
	}
	return parse_semantics(h, status, why);
}

const char *
http_head_field(const struct http_head *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->nfields; i++)
		if (strcasecmp(h->fields[i].name, name) == 0)
			return h->fields[i].value;
	return NULL;
}

/* Longest chunk-size line or trailer section we accept. */
#define CHUNK_LINE_MAX	1024
#define TRAILER_MAX	(8 * 1024)

/* Where the chunked decoder is in the message (RFC 9112 §7.1). */
enum chunk_state {
	CH_SIZE_FIRST,		/* the first digit of a chunk size */
	CH_SIZE,		/* more digits */
	CH_SIZE_BWS,		/* whitespace after them */
	CH_EXT,			/* an extension, ignored up to LF */
	CH_SIZE_LF,		/* the LF after the size line's CR */
	CH_DATA,		/* chunk_left bytes of data */
	CH_DATA_CR,		/* the CR (or LF) after the data */
	CH_DATA_LF,		/* the LF after that CR */
	CH_TRAILER,		/* the start of a trailer line */
	CH_TRAILER_CR,		/* a CR at the start of a trailer line */
	CH_TRAILER_LINE,	/* a trailer field, ignored up to LF */
	CH_DONE,
	CH_FAILED,
};

void
http_chunked_init(struct http_chunked *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max;
	d->state = CH_SIZE_FIRST;
}

#undef FAIL
#define FAIL(st, msg) do {						\
	d->state = CH_FAILED;						\
	*status = (st);							\
	*why = (msg);							\
	return HTTP_PARSE_ERROR;					\
} while (0)

/* A size line has ended: the chunk's data, or the trailer after "0". */
static enum http_parse_result
chunk_line_done(struct http_chunked *d)
{
	d->line_len = 0;
	if (d->size == 0) {
		d->state = CH_TRAILER;
		return HTTP_PARSE_MORE;
	}
	d->chunk_left = d->size;
	d->state = CH_DATA;
	if (d->size > d->max - d->body_len)
		return HTTP_PARSE_LIMIT;
	return HTTP_PARSE_MORE;
}

enum http_parse_result
http_chunked_feed(struct http_chunked *d, char *buf, size_t len,
    size_t *used, int *status, const char **why)
{
	size_t pos = d->body_len, n;
	enum http_parse_result res = HTTP_PARSE_MORE;
	int digit;

	if (d->state == CH_FAILED)
		FAIL(400, "the chunked body is not valid");
	if (d->state == CH_DATA && d->chunk_left > d->max - d->body_len)
		res = HTTP_PARSE_LIMIT;
	while (res == HTTP_PARSE_MORE && pos < len && d->state != CH_DONE) {
		unsigned char ch = (unsigned char)buf[pos];

		if (d->state == CH_DATA) {
			/* Data is moved down onto the decoded body in runs. */
			n = len - pos < d->chunk_left ? len - pos :
			    d->chunk_left;
			if (pos != d->body_len)
				memmove(buf + d->body_len, buf + pos, n);
			d->body_len += n;
			d->chunk_left -= n;
			d->examined += n;
			pos += n;
			if (d->chunk_left == 0)
				d->state = CH_DATA_CR;
			continue;
		}
		d->examined++;
		pos++;
		if (d->state <= CH_SIZE_LF && ++d->line_len > CHUNK_LINE_MAX)
			FAIL(400, "a chunk size line is too long");
		switch (d->state) {
		case CH_SIZE_FIRST:
		case CH_SIZE:
			if ((digit = hex_digit(ch)) >= 0) {
				/* Saturates: the limit refuses it anyway. */
				d->size = d->size > (SIZE_MAX >> 4) ?
				    SIZE_MAX : d->size * 16 + (size_t)digit;
				d->state = CH_SIZE;
				break;
			}
			if (d->state == CH_SIZE_FIRST)
				FAIL(400, "a chunk size is not valid");
			d->state = CH_SIZE_BWS;
			__attribute__((fallthrough));
		case CH_SIZE_BWS:
			if (ch == ' ' || ch == '\t')
				break;
			if (ch == ';')
				d->state = CH_EXT;
			else if (ch == '\r')
				d->state = CH_SIZE_LF;
			else if (ch == '\n')
				res = chunk_line_done(d);
			else
				FAIL(400, "a chunk size line is not valid");
			break;
		case CH_EXT:
			/* Chunk extensions are allowed and ignored. */
			if (ch == '\n')
				res = chunk_line_done(d);
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				FAIL(400, "a chunk size line is not valid");
			res = chunk_line_done(d);
			break;
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (ch == '\r' && d->state == CH_DATA_CR) {
				d->state = CH_DATA_LF;
				break;
			}
			if (ch != '\n')
				FAIL(400, "a chunk does not end with CRLF");
			d->size = 0;
			d->state = CH_SIZE_FIRST;
			break;
		case CH_TRAILER:
		case CH_TRAILER_CR:
		case CH_TRAILER_LINE:
			/* Trailer fields are allowed and ignored. */
			if (++d->trailer_len > TRAILER_MAX)
				FAIL(400, "the trailer section is too large");
			if (ch == '\n')
				d->state = d->state == CH_TRAILER_LINE ?
				    CH_TRAILER : CH_DONE;
			else if (ch == '\r' && d->state == CH_TRAILER)
				d->state = CH_TRAILER_CR;
			else
				d->state = CH_TRAILER_LINE;
			break;
		}
	}
	if (d->state == CH_DONE) {
		*used = pos;
		return HTTP_PARSE_DONE;
	}
	/* What is not decoded yet waits right after the decoded body. */
	if (pos > d->body_len && pos < len)
		memmove(buf + d->body_len, buf + pos, len - pos);
	*used = d->body_len + (len - pos);
	return res;
}

size_t
http_pct_decode(const char *s, size_t n, bool plus, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n &&
		    (hi = hex_digit((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hex_digit((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (plus && s[i] == '+')
			out[o++] = ' ';
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return o;
}

size_t
http_parse_params(char *s, struct http_param *out, size_t max)
{
	size_t n = 0;
	char *piece;

	while (s && *s && n < max) {
		char *eq;

		piece = s;
		s = strchr(s, '&');
		if (s)
			*s++ = '\0';
		if (*piece == '\0')
			continue;
		eq = strchr(piece, '=');
		if (eq)
			*eq++ = '\0';
		else
			eq = piece + strlen(piece);
		http_pct_decode(piece, strlen(piece), true, piece);
		http_pct_decode(eq, strlen(eq), true, eq);
		out[n].name = piece;
		out[n].value = eq;
		n++;
	}
	return n;
}

bool
http_cookie_value(const char *header, const char *name, char *buf, size_t n)
{
	size_t nl = strlen(name), vl;
	const char *p;

	for (p = header; p && *p; ) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			p += nl + 1;
			vl = strcspn(p, ";");
			if (vl >= n)
				return false;
			memcpy(buf, p, vl);
			buf[vl] = '\0';
			return true;
		}
		p = strchr(p, ';');
	}
	return false;
}
