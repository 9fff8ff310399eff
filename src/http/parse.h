/*
 * HTTP/1.1 requests read in place (RFC 9112): the request line and header
 * fields are split where they lie in the connection's buffer, without
 * copying, and chunked bodies are decoded in place as they arrive. Pure
 * functions, no I/O: the server (conn.c) feeds them bytes and the unit
 * tests and fuzz targets feed them every malformed form we refuse.
 *
 * The text helpers for what follows the head (percent-decoding, query
 * strings, form bodies) are here too.
 */
#ifndef PS_HTTP_PARSE_H
#define PS_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_FIELDS		64	/* header fields per request */
#define HTTP_MAX_PARAMS		64	/* query parameters kept */

struct http_field {
	const char	*name;		/* as sent; NUL-terminated in place */
	const char	*value;		/* without surrounding whitespace */
};

/* What a complete request head says, pointing into the parsed buffer. */
struct http_head {
	const char		*method;	/* the token as sent */
	const char		*target;	/* the request target as sent */
	int			 minor;		/* HTTP/1.<minor>: 0 or 1 */
	struct http_field	 fields[HTTP_MAX_FIELDS];
	size_t			 nfields;
	size_t			 head_len;	/* bytes up to the body */
	int64_t			 content_length; /* -1: none given */
	bool			 chunked;
	bool			 keep_alive;	/* from version and Connection */
	bool			 expect_continue;
};

enum http_parse_result {
	HTTP_PARSE_DONE,	/* complete; see head_len / the body length */
	HTTP_PARSE_MORE,	/* incomplete: read more and call again */
	HTTP_PARSE_ERROR,	/* malformed: answer *status and close */
	HTTP_PARSE_LIMIT,	/* over the size allowed (http_chunked_feed) */
};

/*
 * Parses the head at buf[0..len) when it is complete, writing NULs into
 * buf to end the strings `h` points to. Until the head is complete buf is
 * not changed, nor is `h`; after, `h` is reset first, so that on an error
 * it holds what was read before it (or nothing). A head longer than `max` bytes is an error (431). On
 * HTTP_PARSE_ERROR, *status is the status to answer (400, 431, 501, 505)
 * and *why a static message.
 */
enum http_parse_result http_parse_head(char *buf, size_t len, size_t max,
	    struct http_head *h, int *status, const char **why);

/* A header field's value (case-insensitive name), or NULL. */
const char *http_head_field(const struct http_head *, const char *name);

/*
 * A chunked body decoded as it arrives, in place: every byte is looked at
 * once, however the body is split into reads. The caller keeps the
 * decoded body at buf[0..body_len) and appends what it reads after it;
 * each call decodes the new bytes onto the end of the decoded body, so
 * the buffer never holds more than the decoded body and the bytes of
 * the last read.
 */
struct http_chunked {
	size_t		 max;		/* decoded bytes allowed */
	size_t		 body_len;	/* decoded so far, at buf[0] */
	size_t		 chunk_left;	/* data bytes of this chunk to come */
	size_t		 size;		/* the chunk size being read */
	size_t		 line_len;	/* bytes of the size line so far */
	size_t		 trailer_len;	/* bytes of the trailer so far */
	uint64_t	 examined;	/* bytes looked at, ever (the tests) */
	int		 state;
};

void	http_chunked_init(struct http_chunked *, size_t max);
/*
 * Decodes buf[d->body_len..len) (the bytes that arrived since the last
 * call, after the decoded body) in place:
 *   HTTP_PARSE_MORE: all of them were taken; the decoded body is at
 *	buf[0..d->body_len) and *used == d->body_len: nothing after it is
 *	needed any more.
 *   HTTP_PARSE_DONE: the last chunk and the trailer have arrived; the
 *	body is at buf[0..d->body_len) and the message took *used bytes
 *	of buf (what follows is the next request's).
 *   HTTP_PARSE_LIMIT: the chunk whose size line was just read would
 *	take the body past d->max (d->chunk_left is its size). The bytes
 *	not decoded yet were moved to buf[d->body_len..*used). Raise
 *	d->max and call again to go on, or refuse with 413.
 *   HTTP_PARSE_ERROR: malformed (*status 400, *why); d is spent.
 */
enum http_parse_result http_chunked_feed(struct http_chunked *, char *buf,
	    size_t len, size_t *used, int *status, const char **why);

/*
 * Percent-decodes s[0..n) into out (room for n + 1 bytes), '+' as a space
 * when `plus`; malformed escapes are kept as they are. Returns the decoded
 * length; out is NUL-terminated.
 */
size_t	http_pct_decode(const char *s, size_t n, bool plus, char *out);

struct http_param {
	char	*name;
	char	*value;
};

/*
 * Splits a query string or an x-www-form-urlencoded body, decoding in
 * place ('+' is a space): `s` is changed and the pairs point into it. A
 * name without '=' has the value "". Keeps at most `max` pairs; returns
 * how many.
 */
size_t	http_parse_params(char *s, struct http_param *out, size_t max);

/*
 * The value of cookie `name` in a Cookie header `header` (NULL: none),
 * the first pair of that name, into buf; false when absent or longer
 * than n - 1.
 */
bool	http_cookie_value(const char *header, const char *name, char *buf,
	    size_t n);

#endif
