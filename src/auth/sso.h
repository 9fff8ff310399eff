/*
 * Sign-in by a single sign-on reverse proxy: the proxy authenticates the
 * user itself and names the account in a header of its own choosing
 * (e.g. X-Remote-User), which is believed only when the request comes
 * from one of the proxies' addresses. From any other peer every spelling
 * of that header (any case, `_` for `-`, several copies) is ignored, so a
 * client cannot name itself; from a proxy, several copies or an empty
 * value mean the proxy appends instead of replacing: refused.
 *
 * This module only decides who a request says it is and whether to
 * believe it (auth_sso_examine()); the account is looked up on the
 * store's read lane by the sign-in flow (signin.h,
 * auth_signin_sso_start()), with the role's own lookup. Another way of
 * establishing who a request is (such as Kerberos) sits beside this one
 * in the same way: a decision here, the lookup there.
 *
 * The settings are the role's (the portal's per web application, the
 * master's configuration); auth_sso_new() checks and compiles them.
 */
#ifndef PS_AUTH_SSO_H
#define PS_AUTH_SSO_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define AUTH_SSO_HEADER_MAX	64	/* a header name's bytes, NUL incl. */
#define AUTH_SSO_PROXIES_MAX	1024	/* the proxies' list, NUL incl. */
#define AUTH_SSO_USER_MAX	256	/* a value's bytes, NUL included */

struct http_req;
struct auth_sso;

/*
 * PS_OK when `name` may be the identity header: an HTTP token (RFC 9110
 * 5.6.2) of at most AUTH_SSO_HEADER_MAX - 1 bytes that is not, in any
 * spelling, a header the servers read themselves (Authorization, Cookie,
 * Host, Content-Type, ...). Else PS_EINVAL with a sentence.
 */
ps_err	auth_sso_header_check(const char *name);
/*
 * PS_OK when `list` is a list of IPv4 or IPv6 addresses and CIDR
 * networks separated by commas or spaces, with at least one. Else
 * PS_EINVAL with a sentence naming the entry that is wrong.
 */
ps_err	auth_sso_proxies_check(const char *list);
/*
 * True when the field name `field`, as a client sent it, is a spelling
 * of `header`: the same without case, `_` and `-` taken as one.
 */
bool	auth_sso_name_matches(const char *header, const char *field);

/*
 * The settings compiled: `header` the identity header's name and
 * `proxies` the addresses it is taken from (both checked as above). Either
 * NULL or empty: sign-in by a proxy is off and *out is NULL, which every
 * function here takes as "off". Free with auth_sso_free().
 */
ps_err	auth_sso_new(const char *header, const char *proxies,
	    struct auth_sso **out);
void	auth_sso_free(struct auth_sso *);
/* True when `peer` (an address as text) is one of the proxies. */
bool	auth_sso_is_proxy(const struct auth_sso *, const char *peer);

enum auth_sso_verdict {
	AUTH_SSO_NONE,		/* off, or no such header: as without it */
	AUTH_SSO_IGNORED,	/* sent by a peer that is not a proxy */
	AUTH_SSO_BAD,		/* from a proxy, but several or empty: 400 */
	AUTH_SSO_USER,		/* from a proxy: the account it names */
};

/* One header field of a request: its name as sent and its value. */
struct auth_sso_field {
	const char	*name;
	const char	*value;
};

/*
 * What the `n` header fields of a request from `peer` say. AUTH_SSO_USER:
 * *user is the value (borrowed from `fields`). AUTH_SSO_BAD: `why` (n
 * bytes) says what was wrong.
 */
enum auth_sso_verdict auth_sso_examine(const struct auth_sso *,
	    const char *peer, const struct auth_sso_field *fields, size_t n,
	    const char **user, char *why, size_t whylen);

/*
 * auth_sso_examine() for a request of the HTTP server, logging its
 * outcome: auth.sso_ignored (info, the first time on a connection) and
 * auth.refused method=sso (AUTH_SSO_BAD). *user is borrowed from the
 * request.
 */
enum auth_sso_verdict auth_sso_request(const struct auth_sso *,
	    struct http_req *, const char **user);

#endif
