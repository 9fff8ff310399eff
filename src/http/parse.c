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

/* Longest chunk-size line or trailer section we wait for. */
#define CHUNK_LINE_MAX	1024
#define TRAILER_MAX	(8 * 1024)

/*
 * Reads the chunk-size line at buf[*pos]: its size, and *pos moved past
 * the line. MORE when the line has not all arrived.
 */
static enum http_parse_result
chunk_size(const char *buf, size_t len, size_t *pos, size_t max,
    size_t *size, int *status, const char **why)
{
	const char *p = buf + *pos, *nl;
	size_t n = 0;
	int d;

	nl = memchr(p, '\n', len - *pos);
	if (nl == NULL) {
		if (len - *pos > CHUNK_LINE_MAX)
			FAIL(400, "a chunk size line is too long");
		return HTTP_PARSE_MORE;
	}
	if ((d = hex_digit((unsigned char)*p)) < 0)
		FAIL(400, "a chunk size is not valid");
	for (; (d = hex_digit((unsigned char)*p)) >= 0; p++) {
		if (n > max)
			FAIL(413, "the body is too large");
		n = n * 16 + (size_t)d;
	}
	/* Chunk extensions (after ';') are allowed and ignored. */
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == ';')
		p = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	if (*p == '\r')
		p++;
	if (p != nl)
		FAIL(400, "a chunk size line is not valid");
	*size = n;
	*pos = (size_t)(nl + 1 - buf);
	return HTTP_PARSE_DONE;
}

/* The CRLF (or LF) after a chunk's data at buf[*pos]. */
static enum http_parse_result
chunk_end(const char *buf, size_t len, size_t *pos, int *status,
    const char **why)
{
	size_t p = *pos;

	if (p < len && buf[p] == '\r')
		p++;
	if (p >= len)
		return HTTP_PARSE_MORE;
	if (buf[p] != '\n')
		FAIL(400, "a chunk does not end with CRLF");
	*pos = p + 1;
	return HTTP_PARSE_DONE;
}

enum http_parse_result
http_parse_chunked(char *buf, size_t len, size_t max, size_t *body_len,
    size_t *used, int *status, const char **why)
{
	size_t pos = 0, total = 0, size, out, trailer;
	enum http_parse_result res;

	/* First make sure the whole message is here, then move the data. */
	for (;;) {
		res = chunk_size(buf, len, &pos, max, &size, status, why);
		if (res != HTTP_PARSE_DONE)
			return res;
		if (size == 0)
			break;
		if (size > max - total)
			FAIL(413, "the body is too large");
		total += size;
		if (len - pos < size)
			return HTTP_PARSE_MORE;
		pos += size;
		if ((res = chunk_end(buf, len, &pos, status, why)) !=
		    HTTP_PARSE_DONE)
			return res;
	}
	/* The trailer section: fields we ignore, then an empty line. */
	for (trailer = pos;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);

		if (pos - trailer > TRAILER_MAX)
			FAIL(400, "the trailer section is too large");
		if (nl == NULL)
			return HTTP_PARSE_MORE;
		if (nl == buf + pos || (nl == buf + pos + 1 &&
		    buf[pos] == '\r')) {
			pos = (size_t)(nl + 1 - buf);
			break;
		}
		pos = (size_t)(nl + 1 - buf);
	}
	*used = pos;
	for (pos = 0, out = 0;;) {
		(void)chunk_size(buf, len, &pos, max, &size, status, why);
		if (size == 0)
			break;
		memmove(buf + out, buf + pos, size);
		out += size;
		pos += size;
		(void)chunk_end(buf, len, &pos, status, why);
	}
	*body_len = out;
	return HTTP_PARSE_DONE;
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
