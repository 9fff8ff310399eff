/*
 * Unit tests of the HTTP module's text handling: request heads parsed in
 * place (and every malformed form refused with its status), chunked
 * bodies decoded as they arrive (each byte looked at once),
 * percent-decoding, query strings and forms, multipart fields,
 * If-None-Match against an entity tag.
 * The body gate, the connection cap with every connection busy, and
 * draining are tested with a small server of this program's own on
 * loopback (the handlers and the gate are the test's), driven by a client
 * thread; the rest of the server's behaviour on the wire is tested
 * against the real binary (tests/integration/test_http_wire.py,
 * test_http_budgets.py).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/buf.h"
#include "common/xalloc.h"
#include "http/parse.h"
#include "http/server.h"
#include "t.h"

static void test_form_head(void);

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

/* RFC 9110 13.1.2 and 8.8.3, with the unquoted tags we refuse. */
static void
test_etag(void)
{
	static const char *const match[] = {
		"\"v1\"", "W/\"v1\"", "*", " * ", "\t*\t",
		"\"x\", \"v1\"", "\"x\",\"v1\"", "\"v1\",\"x\"",
		"W/\"x\" , W/\"v1\"", ", ,\"v1\",,", " \"v1\" ",
		"\"x\",\t\"v1\"",
	};
	static const char *const no_match[] = {
		"", " ", ",", "\"v2\"", "\"V1\"", "\"v\"", "\"v1x\"",
		"\"\"", "\"x\", \"v\"",
		/* not entity tags: unquoted, half quoted, misplaced W/ */
		"v1", "W/v1", "\"v1", "v1\"", "\"x\", v1", "v1, \"x\"",
		"w/\"v1\"", "W/ \"v1\"", "W\"v1\"", "\"v1\"W/",
		"\"v1\" \"x\"", "\"v 1\"", "\"v1\", x\"",
		/* a list with garbage after the matching tag */
		"\"v1\", *", "*, \"v1\"", "\"v1\", garbage", "**", "* x",
		"\"v1\"\x01",
	};
	char msg[120];
	size_t i;

	for (i = 0; i < sizeof(match) / sizeof(match[0]); i++) {
		snprintf(msg, sizeof(msg), "If-None-Match: %s matches v1",
		    match[i]);
		ok(http_etag_match(match[i], "v1"), msg);
	}
	for (i = 0; i < sizeof(no_match) / sizeof(no_match[0]); i++) {
		snprintf(msg, sizeof(msg), "If-None-Match: %s does not match "
		    "v1", no_match[i]);
		ok(!http_etag_match(no_match[i], "v1"), msg);
	}
	ok(!http_etag_match(NULL, "v1"), "no If-None-Match matches nothing");
	ok(http_etag_match("\"a,b\"", "a,b"), "a comma inside a tag");
	ok(!http_etag_match("\"a,b\"", "a"), "... is not a list separator");
	ok(!http_etag_match("\"a,b\"", "b"), "... either way");
	ok(http_etag_match("W/\"\x80\xff\"", "\x80\xff"),
	    "obs-text in a tag");
	ok(http_etag_match("\"\"", ""), "an empty tag matches an empty one");
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
	test_form_head();
}


/*
 * A form of a CSRF field and a file of `file_len` bytes, in either order:
 * the field is found by http_multipart_head_field() when it comes first,
 * or when the whole form fits the head; not when a large file precedes
 * it.
 */
static char *
form_of(bool csrf_first, size_t file_len, size_t *len)
{
	struct buf b;
	char *file = xmalloc(file_len);
	const char *csrf = "--XyZ\r\nContent-Disposition: form-data; "
	    "name=\"csrf\"\r\n\r\ntoken\r\n";

	memset(file, 'j', file_len);
	buf_init(&b, file_len + 4096);
	if (csrf_first)
		buf_adds(&b, csrf);
	buf_adds(&b, "--XyZ\r\nContent-Disposition: form-data; "
	    "name=\"photo\"; filename=\"me.jpg\"\r\n\r\n");
	buf_add(&b, file, file_len);
	buf_adds(&b, "\r\n");
	if (!csrf_first)
		buf_adds(&b, csrf);
	buf_adds(&b, "--XyZ--\r\n");
	free(file);
	return buf_take(&b, len);
}

static void
test_form_head(void)
{
	const char *ct = "multipart/form-data; boundary=XyZ";
	struct http_part part;
	size_t len;
	char *f;

	f = form_of(true, 1 << 20, &len);
	ok(http_multipart_head_field(ct, f, len, "csrf", &part) == PS_OK &&
	    part.len == 5 && memcmp(part.data, "token", 5) == 0,
	    "form head: a CSRF field before a 1 MiB file is found");
	free(f);
	f = form_of(false, 1 << 20, &len);
	is_int(http_multipart_head_field(ct, f, len, "csrf", &part),
	    PS_ENOTFOUND, "form head: after a 1 MiB file it is not looked "
	    "for");
	is_int(http_multipart_field(ct, f, len, "csrf", &part), PS_OK,
	    "(the whole form has it)");
	free(f);
	f = form_of(false, 1000, &len);
	is_int(http_multipart_head_field(ct, f, len, "csrf", &part), PS_OK,
	    "form head: after a small file, within the head, it is found");
	free(f);
}

/* ---- a server of our own: the body gate, the cap, draining ---- */

#define HELD_MAX	8

struct gate_test {
	struct event_base	*base;
	struct http_server	*srv;
	int			 port;
	atomic_int		 gate_calls, handler_calls, held_n;
	atomic_int		 drained;
	struct http_req		*held[HELD_MAX];	/* loop thread only */
	struct http_req		*later;
	struct event		*later_ev, *release_ev, *drain_ev;
};

/* The handler: "/hold" keeps the request; the rest say the body's size. */
static void
gt_handler(struct http_req *r, void *arg)
{
	struct gate_test *gt = arg;
	char text[64];
	size_t len;

	gt->handler_calls++;
	if (strcmp(http_req_path(r), "/hold") == 0 && gt->held_n < HELD_MAX) {
		http_req_defer(r);
		gt->held[gt->held_n] = r;
		gt->held_n++;
		return;
	}
	http_req_body(r, &len);
	snprintf(text, sizeof(text), "len=%zu", len);
	http_reply(r, 200, "text/plain", text, strlen(text));
}

static void
gt_gate(struct http_req *r, void *arg)
{
	struct gate_test *gt = arg;
	const char *path = http_req_path(r);

	gt->gate_calls++;
	if (strcmp(path, "/allow") == 0)
		http_req_body_allow(r, 200000);
	else if (strcmp(path, "/allow-small") == 0)
		http_req_body_allow(r, 80000);
	else if (strcmp(path, "/later") == 0) {
		gt->later = r;
		event_active(gt->later_ev, EV_TIMEOUT, 0);
	} else
		http_reply_error(r, 403, "no large bodies here");
}

static void
gt_later(evutil_socket_t fd, short what, void *arg)
{
	struct gate_test *gt = arg;

	(void)fd;
	(void)what;
	http_req_body_allow(gt->later, 200000);
	gt->later = NULL;
}

static void
gt_release(evutil_socket_t fd, short what, void *arg)
{
	struct gate_test *gt = arg;
	int i, n = gt->held_n;

	(void)fd;
	(void)what;
	gt->held_n = 0;
	for (i = 0; i < n; i++)
		http_reply(gt->held[i], 200, "text/plain", "held", 4);
}

static void
gt_drained(void *arg)
{
	struct gate_test *gt = arg;

	gt->drained = 1;
	event_base_loopexit(gt->base, NULL);
}

static void
gt_drain(evutil_socket_t fd, short what, void *arg)
{
	struct gate_test *gt = arg;

	(void)fd;
	(void)what;
	http_server_drain(gt->srv, gt_drained, gt);
}

static int
gt_connect(struct gate_test *gt)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)gt->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
gt_send(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/*
 * Reads one answer: its status (0 when the connection closed first or a
 * read timed out), whether it said Connection: close, and its body.
 */
/* The head of the last answer gt_answer() read. */
static char gt_last_head[4096];

static int
gt_answer(int fd, bool *closes, char *body, size_t bodyn)
{
	char buf[4096];
	size_t have = 0, cl = 0, hl;
	char *end, *p;
	ssize_t n;
	int status;

	for (;;) {
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
		if (have + 1 >= sizeof(buf) ||
		    (n = recv(fd, buf + have, 1, 0)) <= 0)
			return 0;
		have += (size_t)n;
	}
	hl = (size_t)(end + 4 - buf);
	memcpy(gt_last_head, buf, hl + 1);
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return 0;
	if ((p = strcasestr(buf, "\r\nContent-Length: ")) != NULL && p < end)
		cl = strtoul(p + 18, NULL, 10);
	if (closes)
		*closes = (p = strcasestr(buf, "\r\nConnection: close")) !=
		    NULL && p < end;
	if (status < 200)
		cl = 0;
	if (hl != have || cl >= bodyn)
		return 0;		/* the test reads one byte at a time */
	for (have = 0; have < cl; have += (size_t)n)
		if ((n = recv(fd, body + have, cl - have, 0)) <= 0)
			return 0;
	body[cl] = '\0';
	return status;
}

/* True when the server closed the connection (EOF, not a timeout). */
static bool
gt_closed(int fd)
{
	char c;
	ssize_t n;

	while ((n = recv(fd, &c, 1, 0)) > 0)
		;
	return n == 0 || errno == ECONNRESET;
}

/* Waits until `v` reaches `want` (the loop thread is moving it). */
static bool
gt_wait(atomic_int *v, int want)
{
	int i;

	for (i = 0; i < 1000 && *v < want; i++)
		usleep(10000);
	return *v >= want;
}

static void
gt_post(int fd, const char *path, size_t len, bool expect, bool with_body)
{
	char head[256];
	char *body;

	snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: %zu\r\n%s\r\n", path, len,
	    expect ? "Expect: 100-continue\r\n" : "");
	gt_send(fd, head, strlen(head));
	if (!with_body)
		return;
	body = xmalloc(len);
	memset(body, 'b', len);
	gt_send(fd, body, len);
	free(body);
}

/* A chunked POST of `n` chunks of 1000 bytes. */
static void
gt_chunked(int fd, const char *path, int n)
{
	char head[256], chunk[1010];
	int i;

	snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: t\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", path);
	gt_send(fd, head, strlen(head));
	memcpy(chunk, "3e8\r\n", 5);
	memset(chunk + 5, 'c', 1000);
	memcpy(chunk + 1005, "\r\n", 2);
	for (i = 0; i < n; i++)
		gt_send(fd, chunk, 1007);
	gt_send(fd, "0\r\n\r\n", 5);
}

static void *
gt_client(void *arg)
{
	struct gate_test *gt = arg;
	char body[256];
	bool closes = false;
	int fd, a, b, c, d, e, calls;

	/* A small body goes straight to the handler. */
	fd = gt_connect(gt);
	gt_post(fd, "/refuse", 1000, false, true);
	is_int(gt_answer(fd, NULL, body, sizeof(body)), 200,
	    "a small body on a refusing route: 200");
	ok(strcasestr(gt_last_head, "\r\nStrict-Transport-Security:") ==
	    NULL, "no Strict-Transport-Security over plain HTTP");
	is_str(body, "len=1000", "the handler had the body");
	is_int(gt->gate_calls, 0, "the gate was not asked");
	gt_chunked(fd, "/refuse", 10);
	is_int(gt_answer(fd, NULL, body, sizeof(body)), 200,
	    "a small chunked body: 200");
	is_str(body, "len=10000", "all of it");
	is_int(gt->gate_calls, 0, "the gate was not asked");
	close(fd);

	/* Refused by the gate before the body, instead of 100 Continue. */
	fd = gt_connect(gt);
	calls = gt->handler_calls;
	gt_post(fd, "/refuse", 100000, true, false);
	is_int(gt_answer(fd, &closes, body, sizeof(body)), 403,
	    "a large body refused by the gate: 403, not 100 Continue");
	ok(closes, "Connection: close");
	ok(gt_closed(fd), "then the connection closes");
	is_int(gt->gate_calls, 1, "the gate was asked once");
	is_int(gt->handler_calls, calls, "the handler was not called");
	close(fd);

	/* Allowed: 100 Continue after the gate, then the handler. */
	fd = gt_connect(gt);
	gt_post(fd, "/allow", 100000, true, false);
	is_int(gt_answer(fd, NULL, body, sizeof(body)), 100,
	    "allowed by the gate: 100 Continue");
	{
		char *big = xmalloc(100000);

		memset(big, 'b', 100000);
		gt_send(fd, big, 100000);
		free(big);
	}
	is_int(gt_answer(fd, &closes, body, sizeof(body)), 200,
	    "then the handler's answer");
	is_str(body, "len=100000", "with the whole body");
	ok(!closes, "the connection is kept");
	gt_post(fd, "/allow-small", 100000, false, true);
	is_int(gt_answer(fd, &closes, body, sizeof(body)), 413,
	    "a body over what the gate allowed: 413");
	close(fd);

	/* The gate decides later, from a callback. */
	fd = gt_connect(gt);
	gt_post(fd, "/later", 150000, false, true);
	is_int(gt_answer(fd, NULL, body, sizeof(body)), 200,
	    "allowed later by a callback: 200");
	is_str(body, "len=150000", "with the whole body");
	close(fd);

	/* A chunked body that grows past the small size. */
	fd = gt_connect(gt);
	calls = gt->gate_calls;
	gt_chunked(fd, "/refuse", 70);
	is_int(gt_answer(fd, &closes, body, sizeof(body)), 403,
	    "a chunked body growing past 64 KiB asks the gate: 403");
	is_int(gt->gate_calls, calls + 1, "the gate was asked");
	close(fd);
	fd = gt_connect(gt);
	gt_chunked(fd, "/allow", 70);
	is_int(gt_answer(fd, NULL, body, sizeof(body)), 200,
	    "one the gate allows: 200");
	is_str(body, "len=70000", "with the whole body");
	close(fd);

	/* The cap (3): one idle connection is closed for a new one... */
	a = gt_connect(gt);
	b = gt_connect(gt);
	gt_send(a, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n", 31);
	gt_send(b, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n", 31);
	ok(gt_wait(&gt->held_n, 2), "two requests held by the handler");
	c = gt_connect(gt);
	gt_send(c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 28);
	is_int(gt_answer(c, NULL, body, sizeof(body)), 200,
	    "a third connection, answered and idle");
	d = gt_connect(gt);
	gt_send(d, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n", 31);
	ok(gt_wait(&gt->held_n, 3), "a fourth connection is served...");
	ok(gt_closed(c), "...closing the idle third");
	/* ...and when every connection is with a handler, a new one goes. */
	e = gt_connect(gt);
	gt_send(e, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 28);
	ok(gt_answer(e, NULL, body, sizeof(body)) == 0 && gt_closed(e),
	    "every connection busy: a new one is closed unanswered");
	close(e);
	close(c);

	/* Draining: held requests are answered; then nothing is left. */
	c = gt_connect(gt);
	gt_send(c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 28);
	ok(c < 0 || gt_answer(c, NULL, body, sizeof(body)) == 0,
	    "still full: not served");
	if (c >= 0)
		close(c);
	event_active(gt->drain_ev, EV_TIMEOUT, 0);
	for (fd = 0; fd < 1000 && (c = gt_connect(gt)) >= 0; fd++) {
		close(c);
		usleep(10000);
	}
	ok(c < 0, "draining: new connections are refused");
	ok(!gt->drained, "not drained while requests are held");
	event_active(gt->release_ev, EV_TIMEOUT, 0);
	is_int(gt_answer(a, &closes, body, sizeof(body)), 200,
	    "a held request is answered after the drain began");
	ok(closes, "with Connection: close");
	ok(gt_closed(a), "then its connection closes");
	ok(gt_answer(b, NULL, body, sizeof(body)) == 200 &&
	    gt_answer(d, NULL, body, sizeof(body)) == 200,
	    "so are the others");
	close(a);
	close(b);
	close(d);
	ok(gt_wait(&gt->drained, 1), "then drained() is called");
	return NULL;
}

static void
test_gate(void)
{
	struct gate_test gt = { 0 };
	struct http_limits lim = http_default_limits;
	pthread_t client;

	log_init("test_http", LOG_ERR);
	evthread_use_pthreads();
	lim.max_connections = 3;
	http_set_limits(&lim);
	gt.base = event_base_new();
	gt.srv = http_server_new(gt.base, "test", gt_handler, &gt);
	http_server_set_body_gate(gt.srv, gt_gate, &gt);
	gt.later_ev = event_new(gt.base, -1, 0, gt_later, &gt);
	gt.release_ev = event_new(gt.base, -1, 0, gt_release, &gt);
	gt.drain_ev = event_new(gt.base, -1, 0, gt_drain, &gt);
	if (http_server_listen(gt.srv, "127.0.0.1", 0, NULL, &gt.port) !=
	    PS_OK) {
		ok(false, "listening on loopback");
		return;
	}
	pthread_create(&client, NULL, gt_client, &gt);
	event_base_dispatch(gt.base);
	pthread_join(client, NULL);
	event_free(gt.later_ev);
	event_free(gt.release_ev);
	event_free(gt.drain_ev);
	http_server_free(gt.srv);
	event_base_free(gt.base);
}

int
main(void)
{
	test_heads();
	test_chunked();
	test_text();
	test_etag();
	test_gate();
	return done();
}
