/*
 * Browser sign-in helpers shared by both roles: tokens and the cross-site
 * rule (see web.h).
 */
#include <string.h>
#include <strings.h>

#include "web.h"
#include "common/log.h"
#include "common/str.h"
#include "http/server.h"

#define HOST_MAX	512

void
auth_token_new(char out[AUTH_TOKEN_HEX + 1])
{
	unsigned char rnd[AUTH_TOKEN_HEX / 2];

	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), out);
	explicit_bzero(rnd, sizeof(rnd));
}

bool
auth_token_eq(const char *want, const void *got, size_t len)
{
	return want != NULL && want[0] != '\0' && got != NULL &&
	    len == strlen(want) && str_ct_eq(want, got, len);
}

/*
 * `len` bytes of a host[:port] without an explicit ":443", into `out`;
 * false when it does not fit or has a character no host or port has.
 */
static bool
host_normal(const char *s, size_t len, char out[HOST_MAX])
{
	size_t i;

	if (len == 0 || len >= HOST_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789.-:[]", s[i]) == NULL)
			return false;
	if (len > 4 && memcmp(s + len - 4, ":443", 4) == 0 &&
	    s[len - 5] != ':')
		len -= 4;
	memcpy(out, s, len);
	out[len] = '\0';
	return true;
}

bool
auth_cross_site_headers(const char *origin, const char *fetch_site,
    const char *host, const char **why)
{
	char want[HOST_MAX], got[HOST_MAX];

	if (fetch_site != NULL && strcasecmp(fetch_site, "same-origin") != 0 &&
	    strcasecmp(fetch_site, "none") != 0) {
		*why = "Sec-Fetch-Site says another site's page sent it";
		return true;
	}
	if (origin == NULL)
		return false;
	if (!str_case_prefix(origin, "https://")) {
		*why = "its Origin is not an https origin (or is \"null\")";
		return true;
	}
	if (host == NULL || !host_normal(host, strlen(host), want)) {
		*why = "it has an Origin but no usable Host to compare it with";
		return true;
	}
	if (!host_normal(origin + 8, strlen(origin + 8), got) ||
	    strcasecmp(got, want) != 0) {
		*why = "its Origin is another site's";
		return true;
	}
	return false;
}

bool
auth_cross_site(const struct http_req *r, const char **why)
{
	return auth_cross_site_headers(http_req_header(r, "Origin"),
	    http_req_header(r, "Sec-Fetch-Site"), http_req_header(r, "Host"),
	    why);
}

bool
auth_post_cross_site(struct http_req *r, const char *method,
    const char *user)
{
	const char *why;

	if (http_req_method(r) != HTTP_POST || !auth_cross_site(r, &why))
		return false;
	log_info(http_req_id(r), "auth.csrf_refused", "method=%s user=%s "
	    "path=%s origin=%s reason=%s", method, log_q(user),
	    log_q(http_req_path(r)), log_q(http_req_header(r, "Origin")),
	    log_q(why));
	return true;
}
