/*
 * Fuzz target: the URL module (url_parse, url_origin,
 * url_path_has_dot_segment, url_return_path_ok). What parses names a
 * host of allowed characters in lower case and a port in range, its
 * origin parses again to the same host and port, and what is taken as a
 * return URL is a path that cannot leave our origin.
 */
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "fuzz.h"

/* What url_parse(s, flags) gave, checked against s. */
static void
check_parsed(const char *s, unsigned flags, const struct url *u)
{
	char origin[URL_HOST_MAX + 32];
	struct url again;
	const char *c;

	if (u->host[0] == '\0' || u->port > 65535 ||
	    u->port < ((flags & URL_ANY_PORT) ? 0 : 1) ||
	    u->rest < s || u->rest > s + strlen(s))
		abort();
	for (c = u->host; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    *c == '-' || *c == '.' || (u->ipv6 && *c == ':')))
			abort();
	if (url_origin(u, origin, sizeof(origin)) != PS_OK ||
	    url_parse(origin, URL_HTTP | URL_ANY_PORT, &again) != PS_OK ||
	    strcmp(again.host, u->host) != 0 || again.port != u->port ||
	    again.https != u->https || again.ipv6 != u->ipv6)
		abort();
	(void)url_path_has_dot_segment(u->rest);
}

/* A return URL that passed: the raw form's own guarantees. */
static void
check_return(const char *s)
{
	const unsigned char *c;

	if (s[0] != '/' || s[1] == '/' || s[1] == '\\' ||
	    strlen(s) > URL_RETURN_MAX)
		abort();
	for (c = (const unsigned char *)s; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || *c == '\\')
			abort();
	if (strstr(s, "%2f") == s + 1 || strstr(s, "%2F") == s + 1 ||
	    strstr(s, "%5c") == s + 1 || strstr(s, "%5C") == s + 1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct url u;
	unsigned flags;

	memcpy(s, data, size);
	s[size] = '\0';
	for (flags = 0; flags < 8; flags++)
		if (url_parse(s, flags, &u) == PS_OK)
			check_parsed(s, flags, &u);
	if (url_return_path_ok(s))
		check_return(s);
	(void)url_path_has_dot_segment(s);
	free(s);
	return 0;
}
