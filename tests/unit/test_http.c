/*
 * Unit tests of the HTTP module's text handling: request heads parsed in
 * place (and every malformed form refused with its status), chunked
 * bodies decoded as they arrive (each byte looked at once),
 * percent-decoding, query strings and forms, multipart fields.
 * The server's behaviour on the wire is tested against the real binary
 * (tests/integration/test_http_wire.py).
 */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "http/parse.h"
#include "http/server.h"
#include "t.h"

/* Parses a copy of `text`; returns the result, the head in *h. */
static enum http_parse_result
head_of(const char *text, struct http_head *h, int *status, char **copy)
{
	const char *why = NULL;

	*copy = xstrdup(text);
	*status = 0;
	return http_parse_head(*copy, strlen(text), 32 * 1024, h, status,
	    &why);
}

static void
refused(const char *text, int want, const char *what)
{
	struct http_head h;
	int status;
	char *copy;

	is_int(head_of(text, &h, &status, &copy), HTTP_PARSE_ERROR, what);
	is_int(status, want, what);
	free(copy);
}

static void
test_heads(void)
{
	struct http_head h;
	int status;
	char *copy;
	const char *get = "GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n"
	    "Authorization:   Basic abc  \r\nX-Empty:\r\n\r\nBODY";
	size_t i;

	is_int(head_of(get, &h, &status, &copy), HTTP_PARSE_DONE,
	    "a GET is complete");
	is_str(h.method, "GET", "method");
	is_str(h.target, "/a%20b?x=1", "target as sent");
	is_int(h.minor, 1, "HTTP/1.1");
	is_int(h.nfields, 3, "three fields");
	is_str(http_head_field(&h, "host"), "h", "names match in any case");
	is_str(http_head_field(&h, "AUTHORIZATION"), "Basic abc",
	    "values lose surrounding whitespace");
	is_str(http_head_field(&h, "x-empty"), "", "an empty value");
	ok(http_head_field(&h, "Cookie") == NULL, "an absent field is NULL");
	is_int(h.head_len, strlen(get) - 4, "head_len stops at the body");
	ok(h.keep_alive, "1.1 keeps the connection by default");
	is_int(h.content_length, -1, "no Content-Length");
	free(copy);

	/* Every prefix of a head is incomplete and left as it was. */
	copy = xstrdup(get);
	for (i = 0; i < strlen(get) - 4; i++) {
		const char *why;

		if (http_parse_head(copy, i, 32 * 1024, &h, &status, &why) !=
		    HTTP_PARSE_MORE || memcmp(copy, get, strlen(get)) != 0)
			break;
	}
	is_int(i, strlen(get) - 4, "every prefix asks for more, unchanged");
	free(copy);

	is_int(head_of("\r\n\nGET / HTTP/1.0\nConnection: keep-alive\n\n",
	    &h, &status, &copy), HTTP_PARSE_DONE,
	    "bare LF lines, empty lines before the request line");
	is_int(h.minor, 0, "HTTP/1.0");
	ok(h.keep_alive, "1.0 with Connection: keep-alive");
	free(copy);
	is_int(head_of("GET / HTTP/1.0\r\n\r\n", &h, &status, &copy),
	    HTTP_PARSE_DONE, "1.0 without fields");
	ok(!h.keep_alive, "1.0 closes by default");
	free(copy);
	is_int(head_of("GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", &h,
	    &status, &copy), HTTP_PARSE_DONE, "Connection with a list");
	ok(!h.keep_alive, "Connection: close among other tokens");
	free(copy);
	is_int(head_of("POST /x HTTP/1.1\r\nContent-Length: 12\r\n"
	    "content-length: 12\r\nExpect: 100-Continue\r\n\r\n", &h, &status,
	    &copy), HTTP_PARSE_DONE, "repeated equal lengths");
	is_int(h.content_length, 12, "Content-Length");
	ok(h.expect_continue, "Expect: 100-continue, any case");
	free(copy);
	is_int(head_of("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n"
	    "\r\n", &h, &status, &copy), HTTP_PARSE_DONE, "chunked");
	ok(h.chunked, "Transfer-Encoding: chunked");
	free(copy);
	is_int(head_of("GET http://h/p?q HTTP/1.1\r\n\r\n", &h, &status,
	    &copy), HTTP_PARSE_DONE, "absolute-form target");
	free(copy);

	refused("GET /\r\n\r\n", 400, "HTTP/0.9 request line");
	refused("GET  / HTTP/1.1\r\n\r\n", 400, "two spaces");
	refused("G(T / HTTP/1.1\r\n\r\n", 400, "a method that is no token");
	refused("GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 over 1.1 framing");
	refused("GET / HTTPS/1.1\r\n\r\n", 400, "not HTTP");
	refused("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "obs-fold");
	refused("GET / HTTP/1.1\r\nA b: c\r\n\r\n", 400, "space in a name");
	refused("GET / HTTP/1.1\r\nA : c\r\n\r\n", 400,
	    "space before the colon");
	refused("GET / HTTP/1.1\r\nnocolon\r\n\r\n", 400, "no colon");
	refused("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400, "a stray CR");
	refused("GET / HTTP/1.1\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\n", 400, "conflicting lengths");
	refused("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400,
	    "a negative length");
	refused("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n"
	    "\r\n", 400, "an overflowing length");
	refused("GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    501, "a coding other than chunked");
	refused("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 3\r\n\r\n", 400, "both framings");
	{
		char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
		const char *why;

		is_int(http_parse_head(nul, sizeof(nul) - 1, 1024, &h,
		    &status, &why), HTTP_PARSE_ERROR, "a NUL in the head");
		is_int(status, 400, "a NUL in the head: 400");
	}
	{
		char *big = xmalloc(40000), *many = xmalloc(70 * 8 + 64);
		const char *why;

		memset(big, 'a', 40000);
		memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
		is_int(http_parse_head(big, 40000, 32 * 1024, &h, &status,
		    &why), HTTP_PARSE_ERROR, "a head over the limit");
		is_int(status, 431, "a head over the limit: 431");
		strcpy(many, "GET / HTTP/1.1\r\n");
		for (i = 0; i < 70; i++)
			strcat(many, "A: b\r\n");
		strcat(many, "\r\n");
		is_int(http_parse_head(many, strlen(many), 32 * 1024, &h,
		    &status, &why), HTTP_PARSE_ERROR, "70 fields");
		is_int(status, 431, "70 fields: 431");
		free(big);
		free(many);
	}
}

/* Decodes `text` in one call; a chunk over `max` is the server's 413. */
static enum http_parse_result
chunked(const char *text, size_t max, char **out, size_t *len, size_t *used,
    int *status)
{
	struct http_chunked d;
	enum http_parse_result res;
	const char *why;

	*out = xstrdup(text);
	http_chunked_init(&d, max);
	res = http_chunked_feed(&d, *out, strlen(text), used, status, &why);
	if (res == HTTP_PARSE_LIMIT) {
		*status = 413;
		res = HTTP_PARSE_ERROR;
	}
	*len = d.body_len;
	return res;
}

/*
 * Feeds `text` `step` bytes per call, as reads would bring it: each call
 * gets the decoded body so far and the new bytes after it. Returns the
 * last result; the decoder in *d.
 */
static enum http_parse_result
fed(const char *text, size_t step, size_t max, struct http_chunked *d,
    char *buf, size_t *used)
{
	size_t n = strlen(text), have = 0, off = 0, k;
	enum http_parse_result res = HTTP_PARSE_MORE;
	const char *why;
	int status;

	http_chunked_init(d, max);
	while (off < n && res == HTTP_PARSE_MORE) {
		k = n - off < step ? n - off : step;
		memcpy(buf + have, text + off, k);
		off += k;
		res = http_chunked_feed(d, buf, have + k, used, &status, &why);
		if (res == HTTP_PARSE_MORE)
			have = *used;
	}
	if (res == HTTP_PARSE_DONE)
		*used += off - (have + k);	/* as if sent in one piece */
	return res;
}

static void
test_chunked(void)
{
	const char *body = "5\r\nhello\r\n1;ext=\"x\"\r\n \r\n6\r\n world\r\n"
	    "0\r\nTrailer: t\r\n\r\nNEXT";
	struct http_chunked d;
	char *b, *many, *buf;
	size_t len, used, i, step, n;
	int status;
	bool same = true;

	is_int(chunked(body, 1000, &b, &len, &used, &status), HTTP_PARSE_DONE,
	    "chunks with an extension and a trailer");
	is_int(len, 12, "decoded length");
	ok(memcmp(b, "hello  world", 12) == 0, "decoded in place");
	is_int(used, strlen(body) - 4, "used stops before the next request");
	free(b);
	/* Every split into reads decodes the same, and looks once. */
	buf = xmalloc(strlen(body) + 1);
	for (step = 1; step < strlen(body); step++) {
		if (fed(body, step, 1000, &d, buf, &used) != HTTP_PARSE_DONE ||
		    d.body_len != 12 || memcmp(buf, "hello  world", 12) != 0 ||
		    used != strlen(body) - 4)
			same = false;
	}
	ok(same, "fed in pieces of every size: the same body and end");
	fed(body, 1, 1000, &d, buf, &used);
	is_int(d.examined, strlen(body) - 4, "a byte per call: every byte "
	    "looked at once");
	free(buf);

	/*
	 * The work is linear: 20,000 one-byte chunks fed a byte per call
	 * are looked at once each (reading the whole body again after each
	 * read would look at ~2 * 10^9 bytes).
	 */
	n = 20000;
	many = xmalloc(n * 6 + 6);
	for (i = 0; i < n; i++)
		memcpy(many + i * 6, "1\r\nx\r\n", 6);
	memcpy(many + n * 6, "0\r\n\r\n", 6);
	buf = xmalloc(n * 6 + 6);
	is_int(fed(many, 1, n, &d, buf, &used), HTTP_PARSE_DONE,
	    "20,000 one-byte chunks a byte at a time");
	is_int(d.body_len, n, "all of them decoded");
	is_int(d.examined, n * 6 + 5, "each byte looked at once");
	for (i = 0; i < n && buf[i] == 'x'; i++)
		;
	is_int(i, n, "the body is the chunks' data");
	is_int(fed(many, 4096, n - 1, &d, buf, &used), HTTP_PARSE_LIMIT,
	    "one byte over the limit: refused as it arrives");
	is_int(d.body_len, n - 1, "having decoded up to the limit");
	free(buf);
	free(many);

	/* The limit can be raised, and the decoder goes on. */
	b = xstrdup("4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n");
	http_chunked_init(&d, 6);
	{
		const char *why;

		is_int(http_chunked_feed(&d, b, strlen(b), &used, &status,
		    &why), HTTP_PARSE_LIMIT, "the second chunk is over 6");
		is_int(d.body_len, 4, "the first is decoded");
		d.max = 8;
		is_int(http_chunked_feed(&d, b, used, &used, &status, &why),
		    HTTP_PARSE_DONE, "raised to 8: done");
		ok(d.body_len == 8 && memcmp(b, "abcdefgh", 8) == 0,
		    "the whole body");
	}
	free(b);

	is_int(chunked("0\n\n", 10, &b, &len, &used, &status),
	    HTTP_PARSE_DONE, "an empty body with bare LFs");
	is_int(len, 0, "empty");
	free(b);
	is_int(chunked("zz\r\n", 10, &b, &len, &used, &status),
	    HTTP_PARSE_ERROR, "a size that is not hex");
	is_int(status, 400, "not hex: 400");
	free(b);
	is_int(chunked("3\r\nabcX\r\n", 10, &b, &len, &used, &status),
	    HTTP_PARSE_ERROR, "data longer than its size");
	is_int(status, 400, "longer: 400");
	free(b);
	is_int(chunked("5x\r\nhello\r\n", 10, &b, &len, &used, &status),
	    HTTP_PARSE_ERROR, "junk after the size");
	is_int(status, 400, "junk: 400");
	free(b);
	is_int(chunked("\r\nhello\r\n", 10, &b, &len, &used, &status),
	    HTTP_PARSE_ERROR, "an empty size line");
	free(b);
	is_int(chunked("8\r\n12345678\r\n8\r\n12345678\r\n", 10, &b, &len,
	    &used, &status), HTTP_PARSE_ERROR, "over the body limit");
	is_int(status, 413, "over the limit: 413");
	free(b);
	is_int(chunked("fffffffffffffffffffffff\r\n", 10, &b, &len, &used,
	    &status), HTTP_PARSE_ERROR, "an overflowing size");
	is_int(status, 413, "overflowing: 413");
	free(b);
	many = xmalloc(2100);
	memset(many, ' ', 2100);
	many[0] = '1';
	many[2099] = '\0';
	is_int(chunked(many, 10, &b, &len, &used, &status), HTTP_PARSE_ERROR,
	    "a size line over 1 KiB, unfinished");
	is_int(status, 400, "too long: 400");
	free(b);
	free(many);
	many = xmalloc(900 * 11 + 4);
	strcpy(many, "0\r\n");
	for (i = 0; i < 900; i++)
		strcat(many, "X-T: abcd\r\n");
	is_int(chunked(many, 10, &b, &len, &used, &status), HTTP_PARSE_ERROR,
	    "a trailer section over 8 KiB");
	is_int(status, 400, "a large trailer: 400");
	free(b);
	free(many);
}

static void
test_text(void)
{
	struct http_param p[4];
	char out[64], q[] = "a=1&b=x+y%2Fz&&flag&c=%zz&d=%41&e=5";
	char *v, *e;
	size_t n;
	struct http_part part;
	const char *form = "--XyZ\r\nContent-Disposition: form-data; "
	    "name=\"photo\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg"
	    "\r\n\r\nJPEGDATA\r\n--XyZ--\r\n";

	is_int(http_pct_decode("a%2fb+c%", 8, false, out), 6,
	    "path decoding keeps '+' and a bad escape");
	is_str(out, "a/b+c%", "path decoded");
	http_pct_decode("a+b%20c", 7, true, out);
	is_str(out, "a b c", "query decoding turns '+' into a space");
	n = http_parse_params(q, p, 4);
	is_int(n, 4, "at most max pairs");
	is_str(p[1].value, "x y/z", "a decoded value");
	is_str(p[2].name, "flag", "a name without '='");
	is_str(p[2].value, "", "has an empty value");
	is_str(p[3].value, "%zz", "a malformed escape is kept");
	v = http_form_value("user=contoso%5Ctest1&password=a+b", "password");
	is_str(v, "a b", "a form field");
	free(v);
	ok(http_form_value("a=1", "b") == NULL, "an absent form field");
	e = http_encode("a b/c~d\xc3\xa9");
	is_str(e, "a%20b%2Fc~d%C3%A9", "percent-encoding for a query");
	free(e);
	is_int(http_multipart_field("multipart/form-data; boundary=XyZ", form,
	    strlen(form), "photo", &part), PS_OK, "a multipart file field");
	is_str(part.filename, "me.jpg", "its file name");
	ok(part.len == 8 && memcmp(part.data, "JPEGDATA", 8) == 0,
	    "its bytes");
	is_int(http_multipart_field("multipart/form-data; boundary=XyZ", form,
	    strlen(form), "other", &part), PS_ENOTFOUND, "an absent field");
}

int
main(void)
{
	test_heads();
	test_chunked();
	test_text();
	return done();
}
