/*
 * URLs: one strict parser for absolute http(s) URLs and the check of
 * return URLs, so that every place that reads a URL refuses the same
 * tricks (user information, backslashes, encoded hosts, whitespace).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "url.h"
#include "xalloc.h"

/* Printable ASCII that RFC 3986 does not allow anywhere in a URL. */
#define URL_NEVER	" \"<>\\^`{|}"

/* Whether every byte may appear in a URL and every '%' is an escape. */
static bool
url_chars_ok(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || strchr(URL_NEVER, *p))
			return false;
		if (*p == '%' && (hex_digit(p[1]) < 0 || hex_digit(p[2]) < 0))
			return false;
	}
	return true;
}

static bool
host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/*
 * The host of [a, end): a name, or a bracketed IPv6 address. `s` is the
 * whole URL, for the reason.
 */
static ps_err
parse_host(const char *s, const char *a, const char *end, struct url *u,
    const char **host_end)
{
	const char *c, *first, *last;
	size_t hl;

	*host_end = end;
	if (*a == '[') {
		last = memchr(a, ']', (size_t)(end - a));
		if (last == NULL)
			return ps_errf(PS_EINVAL, "\"%s\": an unclosed IPv6 "
			    "address", s);
		first = a + 1;
		for (c = first; c < last; c++)
			if (hex_digit(*c) < 0 && *c != ':' && *c != '.')
				return ps_errf(PS_EINVAL, "\"%s\": an IPv6 "
				    "address with characters it cannot "
				    "have", s);
		if (memchr(first, ':', (size_t)(last - first)) == NULL)
			return ps_errf(PS_EINVAL, "\"%s\": brackets around "
			    "something other than an IPv6 address", s);
		*host_end = last + 1;
		u->ipv6 = true;
	} else {
		first = a;
		for (last = a; last < end && *last != ':'; last++)
			if (!host_char(*last))
				return ps_errf(PS_EINVAL, "\"%s\": characters "
				    "a host name cannot have", s);
		*host_end = last;
	}
	hl = (size_t)(last - first);
	if (hl == 0)
		return ps_errf(PS_EINVAL, "\"%s\": no host", s);
	if (hl > URL_HOST_MAX)
		return ps_errf(PS_EINVAL, "a host name longer than %d bytes",
		    URL_HOST_MAX);
	memcpy(u->host, first, hl);
	u->host[hl] = '\0';
	str_lower(u->host);
	return PS_OK;
}

/* The port of ":digits" in [p, end), when there is one. */
static ps_err
parse_port(const char *s, const char *p, const char *end, unsigned flags,
    struct url *u)
{
	long port = 0;

	if (p == end)
		return PS_OK;
	if (*p != ':')
		return ps_errf(PS_EINVAL, "\"%s\": a malformed host", s);
	if (++p == end)
		return ps_errf(PS_EINVAL, "\"%s\": an empty port", s);
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			return ps_errf(PS_EINVAL, "\"%s\": an invalid port",
			    s);
		port = port * 10 + (*p - '0');
	}
	if ((port == 0 && !(flags & URL_ANY_PORT)) || port > 65535)
		return ps_errf(PS_EINVAL, "\"%s\": an invalid port", s);
	u->port = (int)port;
	u->port_given = true;
	return PS_OK;
}

ps_err
url_parse(const char *s, unsigned flags, struct url *u)
{
	const char *a, *end, *host_end;
	ps_err rc;

	memset(u, 0, sizeof(*u));
	if (strlen(s) > URL_MAX)
		return ps_errf(PS_EINVAL, "a URL longer than %d bytes",
		    URL_MAX);
	if (!url_chars_ok(s))
		return ps_errf(PS_EINVAL, "spaces, control characters, "
		    "backslashes or other characters a URL cannot have");
	if (str_case_prefix(s, "https://")) {
		u->https = true;
		u->port = 443;
		a = s + 8;
	} else if ((flags & URL_HTTP) && str_case_prefix(s, "http://")) {
		u->port = 80;
		a = s + 7;
	} else if (str_case_prefix(s, "http://")) {
		return ps_errf(PS_EINVAL, "\"%s\" is not an https:// URL "
		    "(plain http is not allowed here)", s);
	} else {
		return ps_errf(PS_EINVAL, "\"%s\" is not an %s URL", s,
		    (flags & URL_HTTP) ? "http:// or https://" : "https://");
	}
	end = a + strcspn(a, "/?#");
	if (memchr(a, '@', (size_t)(end - a)) != NULL)
		return ps_errf(PS_EINVAL, "\"%s\": user information in the "
		    "URL", s);
	if ((rc = parse_host(s, a, end, u, &host_end)) != PS_OK ||
	    (rc = parse_port(s, host_end, end, flags, u)) != PS_OK)
		return rc;
	u->rest = end;
	if ((flags & URL_NO_PATH) && *end != '\0' && strcmp(end, "/") != 0)
		return ps_errf(PS_EINVAL, "\"%s\": give the URL without a "
		    "path", s);
	return PS_OK;
}

ps_err
url_origin(const struct url *u, char *out, size_t n)
{
	int len;

	len = snprintf(out, n, u->ipv6 ? "%s://[%s]:%d" : "%s://%s:%d",
	    u->https ? "https" : "http", u->host, u->port);
	if (len < 0 || (size_t)len >= n)
		return ps_errf(PS_ELIMIT, "a host name too long for an "
		    "origin");
	return PS_OK;
}

bool
url_path_has_dot_segment(const char *rest)
{
	size_t n = strcspn(rest, "?#");
	const char *s, *end = rest + n;

	for (s = rest; s < end; s++) {
		if (s[0] == '%' && s[1] == '2' && (s[2] == 'e' || s[2] == 'E'))
			return true;
		if (s[0] == '/' && s[1] == '.' && (s + 2 == end ||
		    s[2] == '/' || (s[2] == '.' && (s + 3 == end ||
		    s[3] == '/'))))
			return true;
	}
	return false;
}

/*
 * The checks of url_return_path_ok() on one form of the path: a single
 * leading slash, then only characters that cannot turn it into another
 * origin once a browser has stripped or normalised them; with `escapes`,
 * every '%' starts a valid escape (the decoded form may hold a lone '%').
 */
static bool
return_form_ok(const char *p, bool escapes)
{
	const unsigned char *s;

	if (p[0] != '/' || p[1] == '/' || p[1] == '\\')
		return false;
	for (s = (const unsigned char *)p; *s; s++) {
		if (*s <= 0x20 || *s >= 0x7f || *s == '\\')
			return false;
		if (escapes && *s == '%' && (hex_digit(s[1]) < 0 ||
		    hex_digit(s[2]) < 0))
			return false;
	}
	return true;
}

bool
url_return_path_ok(const char *p)
{
	char *once, *o;
	const char *s;
	size_t len;
	bool ok;

	if (p == NULL || (len = strlen(p)) == 0 || len > URL_RETURN_MAX ||
	    !return_form_ok(p, true))
		return false;
	/* Decoded once, as a browser or a proxy may; an encoded NUL ends. */
	once = xmalloc(len + 1);
	for (s = p, o = once; *s; o++) {
		if (*s == '%') {
			*o = (char)(hex_digit(s[1]) * 16 + hex_digit(s[2]));
			s += 3;
		} else
			*o = *s++;
	}
	*o = '\0';
	ok = (size_t)(o - once) == strlen(once) && return_form_ok(once, false);
	free(once);
	return ok;
}
