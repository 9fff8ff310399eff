/*
 * Unit tests of the URL module: absolute URLs parsed strictly (the tricks
 * by which a URL names another host than it seems to), origins, dot
 * segments, and return URLs (every way a "path" can leave our origin).
 */
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "common/xalloc.h"
#include "t.h"

static void
test_parse(void)
{
	struct url u;
	char origin[300], msg[200];
	size_t i;
	static const char *const bad[] = {
		"", "/path", "//evil.example/", "javascript:alert(1)",
		"ftp://host/", "https:", "https:/host", "https://",
		"https:///path", "https://user@host/", "https://host@evil/",
		"https://host\\@evil/", "https://host:443\\@evil.example/",
		"https://ho st/", "https://host/a b", "https://host/\t",
		"https://host/\r\nSet-Cookie:x", "https://host/\x7f",
		"https://host/\xc3\xa9", "https://host/<script>",
		"https://host/\"", "https://host/%zz", "https://host/%4",
		"https://ev%69l.example/", "https://host:/", "https://host:0/",
		"https://host:65536/", "https://host:99999999999999999999/",
		"https://host:-1/", "https://host:12a/", "https://[::1/",
		"https://[]/", "https://[evil.example]/", "https://[::1]x/",
		"https://host:443:443/", " https://host/", "https://host/ ",
	};

	ok(url_parse("https://Host.Example:8443/a/b?c=d#e", 0, &u) == PS_OK,
	    "a full https URL parses");
	ok(u.https && u.port == 8443 && u.port_given && !u.ipv6,
	    "scheme and port");
	is_str(u.host, "host.example", "the host, in lower case");
	is_str(u.rest, "/a/b?c=d#e", "the rest from the path on");
	ok(url_origin(&u, origin, sizeof(origin)) == PS_OK,
	    "an origin fits");
	is_str(origin, "https://host.example:8443", "the origin");

	ok(url_parse("HTTPS://h", 0, &u) == PS_OK && u.port == 443 &&
	    !u.port_given && strcmp(u.rest, "") == 0,
	    "no path, the default port");
	ok(url_parse("https://h?q", 0, &u) == PS_OK &&
	    strcmp(u.rest, "?q") == 0, "a query right after the host");
	ok(url_parse("https://[2001:DB8::1]:444/x", 0, &u) == PS_OK &&
	    u.ipv6 && u.port == 444, "an IPv6 address with a port");
	is_str(u.host, "2001:db8::1", "IPv6 without brackets, lower case");
	url_origin(&u, origin, sizeof(origin));
	is_str(origin, "https://[2001:db8::1]:444", "IPv6 origin in brackets");
	ok(url_parse("https://127.0.0.1/", 0, &u) == PS_OK &&
	    strcmp(u.host, "127.0.0.1") == 0, "an IPv4 address");
	ok(url_parse("https://my_host.local/", 0, &u) == PS_EINVAL,
	    "an underscore in a host name (no DNS host name has one)");
	ok(url_parse("https://h/a%2Fb", 0, &u) == PS_OK, "escapes in the path");

	ok(url_parse("http://h/", 0, &u) == PS_EINVAL, "http refused by "
	    "default");
	ok(url_parse("http://h/", URL_HTTP, &u) == PS_OK && !u.https &&
	    u.port == 80, "http with URL_HTTP, port 80");
	ok(url_parse("https://h:0/", URL_ANY_PORT, &u) == PS_OK &&
	    u.port == 0 && u.port_given, "port 0 with URL_ANY_PORT");
	ok(url_parse("HTTPS://LocalHost", 0, &u) == PS_OK &&
	    url_origin(&u, origin, sizeof(origin)) == PS_OK &&
	    strcmp(origin, "https://localhost:443") == 0,
	    "an origin always names its port");
	ok(url_parse("http://h:8080/x", URL_HTTP, &u) == PS_OK &&
	    url_origin(&u, origin, sizeof(origin)) == PS_OK &&
	    strcmp(origin, "http://h:8080") == 0, "an http origin");
	ok(url_parse("https://h/", URL_NO_PATH, &u) == PS_OK,
	    "URL_NO_PATH takes a single slash");
	ok(url_parse("https://h/x", URL_NO_PATH, &u) == PS_EINVAL,
	    "URL_NO_PATH refuses a path");
	ok(url_parse("https://h?x", URL_NO_PATH, &u) == PS_EINVAL,
	    "URL_NO_PATH refuses a query");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(msg, sizeof(msg), "refused: \"%s\"", bad[i]);
		ok(url_parse(bad[i], URL_HTTP, &u) == PS_EINVAL, msg);
	}
	{
		char *huge = xmalloc(URL_MAX + 2);

		memcpy(huge, "https://h/", 10);
		memset(huge + 10, 'a', URL_MAX + 1 - 10);
		huge[URL_MAX + 1] = '\0';
		ok(url_parse(huge, 0, &u) == PS_EINVAL, "too long: refused");
		huge[URL_MAX] = '\0';
		ok(url_parse(huge, 0, &u) == PS_OK, "URL_MAX bytes: fine");
		memset(huge + 8, 'h', URL_HOST_MAX + 1);
		huge[8 + URL_HOST_MAX + 1] = '\0';
		ok(url_parse(huge, 0, &u) == PS_EINVAL, "a host too long");
		huge[8 + URL_HOST_MAX] = '\0';
		ok(url_parse(huge, 0, &u) == PS_OK &&
		    url_origin(&u, origin, 40) == PS_ELIMIT,
		    "an origin that does not fit is refused");
		free(huge);
	}
}

static void
test_dots(void)
{
	ok(!url_path_has_dot_segment("/avatars/x.png?a=/../"),
	    "dots in a name and in the query are fine");
	ok(!url_path_has_dot_segment(""), "no path");
	ok(url_path_has_dot_segment("/a/../b"), "..");
	ok(url_path_has_dot_segment("/a/./b"), ".");
	ok(url_path_has_dot_segment("/a/.."), ".. at the end");
	ok(url_path_has_dot_segment("/a/."), ". at the end");
	ok(url_path_has_dot_segment("/a/%2e%2E/b"), "encoded dots");
	ok(url_path_has_dot_segment("/a/..?x"), ".. before a query");
}

static void
test_return(void)
{
	char msg[200], *huge;
	size_t i;
	static const char *const good[] = {
		"/", "/my", "/people?q=a&b=c", "/my#top", "/a/b/../c",
		"/search?q=50%25off", "/%7Euser", "/a%2Fb", "/a:b",
	};
	static const char *const bad[] = {
		"", "my", "//evil.example", "///evil.example",
		"/\\evil.example", "/\\/evil.example", "\\\\evil.example",
		"/\t/evil.example", "/%09/evil.example", "/%09%2f/evil",
		"\t//evil.example", "/ /evil.example", "/\r\nSet-Cookie:x=1",
		"/%0d%0aSet-Cookie:x=1", "/%0D%0ALocation:x", "/%2f/evil",
		"/%2F/evil", "/%5cevil.example", "/%5C%5Cevil", "/a\\b",
		"/a%5cb", "/a%00b", "/a%zz", "/a%4", "/a%",
		"https://evil.example/", "https:evil.example",
		"http://evil.example", "javascript:alert(1)",
		"/\x7f", "/\xc3\xa9", "/a\x0b", "/a\x0c", "/a%e2%80%a8",
		"/%20/evil", "/%7f",
	};

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(msg, sizeof(msg), "a return path: \"%s\"", good[i]);
		ok(url_return_path_ok(good[i]), msg);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(msg, sizeof(msg), "not a return path: \"%s\"",
		    bad[i]);
		ok(!url_return_path_ok(bad[i]), msg);
	}
	ok(!url_return_path_ok(NULL), "NULL is not a return path");
	huge = xmalloc(URL_RETURN_MAX + 2);
	huge[0] = '/';
	memset(huge + 1, 'a', URL_RETURN_MAX);
	huge[URL_RETURN_MAX + 1] = '\0';
	ok(!url_return_path_ok(huge), "longer than URL_RETURN_MAX: refused");
	huge[URL_RETURN_MAX] = '\0';
	ok(url_return_path_ok(huge), "URL_RETURN_MAX bytes: fine");
	free(huge);
}

int
main(void)
{
	test_parse();
	test_dots();
	test_return();
	return done();
}
