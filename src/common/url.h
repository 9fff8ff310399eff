/*
 * URLs: the one parser of absolute http(s) URLs (configured peers,
 * metadata URLs, a partner's way back, allowed redirect targets), and
 * the check of return URLs (where a browser is sent after signing in).
 * Pure functions; no third-party library.
 */
#ifndef PS_URL_H
#define PS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define URL_MAX		4096	/* longest URL url_parse() accepts */
#define URL_RETURN_MAX	2048	/* longest return URL accepted */
#define URL_HOST_MAX	255	/* longest host name, in bytes */

/* What url_parse() accepts besides an https URL. */
#define URL_HTTP	0x01	/* http:// too */
#define URL_NO_PATH	0x02	/* nothing after the authority but "/" */
#define URL_ANY_PORT	0x04	/* port 0: a listener's "any port" */

/*
 * An absolute URL split up. `rest` points into the parsed string (the
 * caller keeps that alive): the path, query and fragment as written, ""
 * when the URL ends with its authority.
 */
struct url {
	bool		 https;		/* false: http (URL_HTTP) */
	/* lower case; an IPv6 address without brackets */
	char		 host[URL_HOST_MAX + 1];
	bool		 ipv6;
	int		 port;		/* as given, else 443 or 80 */
	bool		 port_given;
	const char	*rest;
};

/*
 * Parses an absolute https URL (http too with URL_HTTP) strictly, as RFC
 * 3986 writes one: printable ASCII only, none of the characters a URL
 * cannot have (space, quotes, angle brackets, backslash, ^ ` { | }), a
 * '%' only before two hex digits; no user information (the "@" trick); a
 * host name or IPv4 address of letters, digits, '-' and '.', or a
 * bracketed IPv6 address; an optional port from 1 to 65535 (0 too with
 * URL_ANY_PORT; an empty one refused). PS_EINVAL with a sentence saying
 * why otherwise.
 */
ps_err	url_parse(const char *s, unsigned flags, struct url *u);

/*
 * The origin of a parsed URL in the form compared for "same origin":
 * "https://host:port", always with the port, lower case, an IPv6 address
 * in brackets. PS_ELIMIT when it does not fit in `n` bytes.
 */
ps_err	url_origin(const struct url *u, char *out, size_t n);

/*
 * Whether the path of `rest` (up to '?' or '#') has a "." or ".."
 * segment, or an encoded dot anywhere, by which a browser would leave a
 * path prefix.
 */
bool	url_path_has_dot_segment(const char *rest);

/*
 * Whether `p` may be a return URL: a path on our own origin. It starts
 * with a single "/" (neither "//" nor "/\"), has no scheme or authority,
 * no whitespace, control, non-ASCII or backslash character anywhere, is
 * at most URL_RETURN_MAX bytes, and each '%' starts a valid escape.
 * Percent-decoded once, as a browser or a proxy may, it still starts
 * with a single "/" and has none of those characters (so "/%09/x",
 * "/%2f/x" and "/%0d%0a" are refused). NULL and "" are not.
 */
bool	url_return_path_ok(const char *p);

#endif
