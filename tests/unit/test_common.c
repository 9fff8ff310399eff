/*
 * Unit tests of the common helpers: buffers, encodings, durations,
 * addresses, log escaping.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "t.h"

static void
test_buf(void)
{
	struct buf b;

	buf_init(&b, 8);
	ok(buf_adds(&b, "12345678") == PS_OK, "fills up to the cap");
	ok(buf_adds(&b, "9") == PS_ELIMIT, "refuses past the cap");
	is_str(buf_str(&b), "12345678", "contents intact after refusal");
	buf_cleanup(&b);
	buf_init(&b, 100);
	buf_add_xml(&b, "a<b>&\"c'");
	is_str(buf_str(&b), "a&lt;b&gt;&amp;&quot;c&#39;", "xml escaping");
	buf_cleanup(&b);
}

static void
test_b64(void)
{
	unsigned char *d;
	size_t n;
	char *s;

	s = b64_encode("\xfb\xff", 2, false);
	is_str(s, "+/8=", "standard alphabet with padding");
	free(s);
	s = b64_encode("\xfb\xff", 2, true);
	is_str(s, "-_8", "url alphabet without padding");
	free(s);
	ok(b64_decode("-_8", 3, &d, &n) == PS_OK && n == 2 &&
	    memcmp(d, "\xfb\xff", 2) == 0, "decodes url form");
	free(d);
	ok(b64_decode("+/8=", 4, &d, &n) == PS_OK && n == 2,
	    "decodes standard form");
	free(d);
	ok(b64_decode("a*bc", 4, &d, &n) == PS_EINVAL, "refuses junk");
	ok(b64_decode("abcde", 5, &d, &n) == PS_EINVAL, "refuses bad length");
}

static void
test_duration(void)
{
	int64_t s;
	char buf[32];

	ok(duration_parse("6h", &s) == PS_OK && s == 21600, "6h");
	ok(duration_parse("90m", &s) == PS_OK && s == 5400, "90m");
	ok(duration_parse("2d", &s) == PS_OK && s == 172800, "2d");
	ok(duration_parse("0m", &s) == PS_OK && s == 0, "0m");
	ok(duration_parse("6", &s) == PS_EINVAL &&
	    strstr(ps_errmsg(), "h (hours)") != NULL,
	    "bare number refused, units named");
	ok(duration_parse("6x", &s) == PS_EINVAL, "unknown unit refused");
	ok(duration_parse("-1h", &s) == PS_EINVAL, "negative refused");
	ok(duration_parse("6hh", &s) == PS_EINVAL, "trailing junk refused");
	is_str(duration_format(21600, buf), "6h", "formats hours");
	is_str(duration_format(5400, buf), "90m", "formats minutes");
	is_str(duration_format(0, buf), "0m", "formats zero");
}

static void
test_size(void)
{
	size_t n;

	ok(size_parse("64M", &n) == PS_OK && n == (size_t)64 << 20, "64M");
	ok(size_parse("512K", &n) == PS_OK && n == 512 * 1024, "512K");
	ok(size_parse("2G", &n) == PS_OK && n == (size_t)2 << 30, "2G");
	ok(size_parse("64", &n) == PS_EINVAL &&
	    strstr(ps_errmsg(), "K, M or G") != NULL,
	    "a bare size refused, units named");
	ok(size_parse("64MB", &n) == PS_EINVAL, "trailing junk refused");
	ok(size_parse("-1M", &n) == PS_EINVAL, "a negative size refused");
	ok(size_parse("99999999999999999999G", &n) == PS_EINVAL,
	    "an overflowing size refused");
}

static void
test_email(void)
{
	ok(email_valid("test1@contoso.com"), "plain address");
	ok(!email_valid("test1"), "no @");
	ok(!email_valid("../x@contoso.com"), "slash refused");
	ok(!email_valid("a\\b@contoso.com"), "backslash refused");
	ok(!email_valid("a b@contoso.com"), "space refused");
	ok(!email_valid("a@b@contoso.com"), "two @ refused");
	ok(!email_valid("a@contoso..com"), "double dot refused");
}

static void
test_ids(void)
{
	char g[37], r[17];

	guid_new(g);
	ok(guid_valid(g), "new guid is valid");
	ok(g[14] == '4', "version 4");
	ok(!guid_valid("not-a-guid"), "junk is not a guid");
	reqid_new(r);
	is_int(strlen(r), 16, "request id has 16 hex digits");
	is_int(hex_digit('0') + hex_digit('9'), 9, "hex digits 0 and 9");
	is_int(hex_digit('a') + hex_digit('F'), 25, "hex digits in either case");
	ok(hex_digit('g') < 0 && hex_digit('/') < 0 && hex_digit(0x80) < 0 &&
	    hex_digit(-1) < 0, "not hex digits");
}

static void
test_log_q(void)
{
	is_str(log_q("test1@contoso.com"), "test1@contoso.com", "bare value");
	is_str(log_q("a b"), "\"a b\"", "quoted value");
	is_str(log_q("x\"y\n"), "\"x\\\"y\\n\"", "escapes");
	is_str(log_q(""), "\"\"", "empty value quoted");
}

int
main(void)
{
	test_buf();
	test_b64();
	test_duration();
	test_size();
	test_email();
	test_ids();
	test_log_q();
	return done();
}
