/*
 * What both roles' browser sign-ins share (portal/signin.c for the
 * portal's pages, master/ecp.c for the change-photo page): the forms'
 * tokens and their comparison, and the rule that a request changing
 * something must not come from another site's page, however it is
 * authenticated (a session cookie, or Basic credentials a browser keeps
 * and sends by itself to any page that posts to us).
 */
#ifndef PS_AUTH_WEB_H
#define PS_AUTH_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_HEX	64	/* a token's hex digits (256 random bits) */

struct http_req;

/*
 * How one role's browser sign-in is spelled: its documented cookie names
 * and paths. Both roles' cookies are HttpOnly and Secure; the login
 * form's token cookie is SameSite=Strict, the session's SameSite=Lax.
 */
struct auth_web {
	const char	*session_cookie;	/* "ps_session" */
	const char	*session_path;		/* "/" */
	int		 session_max_age;	/* s; 0: browser session */
	const char	*login_cookie;		/* "ps_csrf" */
	const char	*login_path;		/* "/login" */
};

/*
 * The login form's double submit: a new token into `out` (for the form's
 * `csrf` field) and, on `r`'s answer, the cookie that must come back with
 * it.
 */
void	auth_web_login_token(const struct auth_web *, struct http_req *,
	    char out[AUTH_TOKEN_HEX + 1]);
/* True when the form's `field` (NULL: absent) equals the login cookie. */
bool	auth_web_login_token_ok(const struct auth_web *,
	    const struct http_req *, const char *field);

/*
 * A new session: the cookie's value, the key the store keeps it under
 * (auth_session_key()), and its own CSRF token for the forms.
 */
void	auth_web_session_new(char cookie[AUTH_TOKEN_HEX + 1], char key[65],
	    char csrf[AUTH_TOKEN_HEX + 1]);
/*
 * The store key of the request's session cookie, false when it has none
 * (the cookie's value is wiped from the stack).
 */
bool	auth_web_session_key(const struct auth_web *, const struct http_req *,
	    char key[65]);
/* On `r`'s answer: the session cookie set, the login cookie cleared. */
void	auth_web_session_set(const struct auth_web *, struct http_req *,
	    const char *cookie);
/* On `r`'s answer: the session cookie cleared (signing out). */
void	auth_web_session_clear(const struct auth_web *, struct http_req *);

/*
 * On `r`'s answer: Retry-After for a wait of `wait_ms` (a 429 or a 503),
 * in whole seconds rounded up (auth_retry_after_s()).
 */
void	auth_web_retry_after(struct http_req *, int64_t wait_ms);

/* A new random token (a session cookie, a form's CSRF token). */
void	auth_token_new(char out[AUTH_TOKEN_HEX + 1]);

/*
 * True when `got` (`len` bytes, not NUL-terminated, may be NULL) is the
 * non-empty token `want`, compared in constant time.
 */
bool	auth_token_eq(const char *want, const void *got, size_t len);

/*
 * True when a request was sent by a browser for a page of another origin
 * than the one it is addressed to, from its headers (each NULL when
 * absent): Sec-Fetch-Site other than "same-origin" or "none" ("same-site"
 * included: a sibling host is another site's page), or an Origin other
 * than "https://" followed by the Host header (compared without case, an
 * explicit port 443 as none), "null" included. A client that sends
 * neither header (a script, a mail client) is no browser page and passes;
 * browsers send Origin with every POST. `why` then receives a sentence
 * (static storage).
 */
bool	auth_cross_site_headers(const char *origin, const char *fetch_site,
	    const char *host, const char **why);
/* The same, from the request's own headers. */
bool	auth_cross_site(const struct http_req *, const char **why);

/*
 * The rule both roles apply to every POST of a signed-in browser or
 * client, before it acts: true (and `auth.csrf_refused` logged, with
 * `method` ("basic", "session") and `user`) when `r` is a POST sent by
 * another site's page; the caller then answers 403 and changes nothing.
 */
bool	auth_post_cross_site(struct http_req *, const char *method,
	    const char *user);

#endif
