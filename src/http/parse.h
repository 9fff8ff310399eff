/*
 * HTTP/1.1 requests read in place (RFC 9112): the request line and header
 * fields are split where they lie in the connection's buffer, without
 * copying, and chunked bodies are decoded in place. Pure functions, no
 * I/O: the server (server.c) feeds them bytes and the unit tests feed them
 * every malformed form we refuse.
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
 * Decodes a chunked body that starts at buf[0], in place. Done when the
 * last chunk and the trailer have arrived: the decoded body is then at
 * buf[0..*body_len) and the message took *used bytes of buf. A body over
 * `max` decoded bytes is an error (413), as is a malformed one (400).
 */
enum http_parse_result http_parse_chunked(char *buf, size_t len, size_t max,
	    size_t *body_len, size_t *used, int *status, const char **why);

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

#endif
