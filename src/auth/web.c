/*
 * Browser sign-in helpers shared by both roles: tokens and the cross-site
 * rule (see web.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "common/log.h"
#include "guard.h"
#include "web.h"
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

/* Set-Cookie on `r`'s answer; `max_age` < 0: none (a browser session). */
static void
cookie_set(struct http_req *r, const char *name, const char *value,
    const char *path, const char *same_site, int max_age)
{
	char hdr[512], age[32] = "";

	if (max_age >= 0)
		snprintf(age, sizeof(age), "; Max-Age=%d", max_age);
	snprintf(hdr, sizeof(hdr), "%s=%s; Path=%s; HttpOnly; Secure; "
	    "SameSite=%s%s", name, value, path, same_site, age);
	http_reply_header(r, "Set-Cookie", hdr);
	explicit_bzero(hdr, sizeof(hdr));
}

void
auth_web_login_token(const struct auth_web *w, struct http_req *r,
    char out[AUTH_TOKEN_HEX + 1])
{
	auth_token_new(out);
	cookie_set(r, w->login_cookie, out, w->login_path, "Strict", -1);
}

bool
auth_web_login_token_ok(const struct auth_web *w, const struct http_req *r,
    const char *field)
{
	char want[AUTH_TOKEN_HEX + 1];
	bool good;

	good = field != NULL && http_req_cookie(r, w->login_cookie, want,
	    sizeof(want)) && auth_token_eq(want, field, strlen(field));
	explicit_bzero(want, sizeof(want));
	return good;
}

void
auth_web_retry_after(struct http_req *r, int64_t wait_ms)
{
	char s[24];

	/* RFC 9110 10.2.3: whole seconds, rounded up: no early retry. */
	snprintf(s, sizeof(s), "%lld", (long long)auth_retry_after_s(wait_ms));
	http_reply_header(r, "Retry-After", s);
}

void
auth_web_session_new(char cookie[AUTH_TOKEN_HEX + 1], char key[65],
    char csrf[AUTH_TOKEN_HEX + 1])
{
	auth_token_new(cookie);
	auth_session_key(cookie, key);
	auth_token_new(csrf);
}

bool
auth_web_session_key(const struct auth_web *w, const struct http_req *r,
    char key[65])
{
	char cookie[129];

	if (!http_req_cookie(r, w->session_cookie, cookie, sizeof(cookie)))
		return false;
	auth_session_key(cookie, key);
	explicit_bzero(cookie, sizeof(cookie));
	return true;
}

void
auth_web_session_set(const struct auth_web *w, struct http_req *r,
    const char *cookie)
{
	cookie_set(r, w->session_cookie, cookie, w->session_path, "Lax",
	    w->session_max_age > 0 ? w->session_max_age : -1);
	cookie_set(r, w->login_cookie, "", w->login_path, "Strict", 0);
}

void
auth_web_session_clear(const struct auth_web *w, struct http_req *r)
{
	cookie_set(r, w->session_cookie, "", w->session_path, "Lax", 0);
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
		if (!(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') &&
		    strchr(".-:[]", s[i]) == NULL)
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
