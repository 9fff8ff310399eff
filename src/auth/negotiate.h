/*
 * Kerberos sign-in through SPNEGO, HTTP's Negotiate scheme (RFC 4559),
 * with MIT Kerberos' GSSAPI: the one module of the project that uses it.
 *
 * A server holds one acceptor per keytab (a web application's, or the
 * master's): the credentials read from the keytab once, for any service
 * principal it holds, so the name a browser asks a ticket for (HTTP/ and
 * the host it typed) need only be in the keytab. One exchange is one
 * call: the client's token in, the client's principal and the token of
 * mutual authentication out. Kerberos through SPNEGO takes one leg; an
 * exchange that needs more (NTLM wrapped in SPNEGO, say) is refused.
 *
 * auth_negotiate_accept() may read the keytab and the replay cache, so
 * it runs on a worker, never on the loop; an acceptor may be used by
 * several workers at once. Refusals carry a reason for the log, in words
 * (never the token): expired ticket, ticket for another service, replay,
 * malformed token, and GSSAPI's own message for the rest.
 */
#ifndef PS_AUTH_NEGOTIATE_H
#define PS_AUTH_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct auth_negotiate;

/* The longest Negotiate token taken, base64 (tickets with large PACs
 * from Active Directory run to a few KiB; 12 KiB binary). */
#define AUTH_NEGOTIATE_MAX_TOKEN	16384

/*
 * An acceptor for `service` ("HTTP/portal.contoso.com", with or without
 * "@REALM"; NULL or "": any service principal `keytab` holds), from
 * `keytab` (a path; read now, so that a missing or unreadable keytab, or
 * one without a key for the service, is an error here, not at the first
 * sign-in). It may read the file: off the loop, or before the loop runs.
 *
 * Exchanges borrow an acceptor while they run on workers: each takes a
 * hold (auth_negotiate_hold(), on the loop) and lets it go with
 * auth_negotiate_free(), as the owner does with the acceptor it made;
 * the last of them frees it. So a web application's settings may change
 * (a new acceptor) with exchanges of the old one still running.
 */
ps_err	auth_negotiate_new(const char *keytab, const char *service,
	    struct auth_negotiate **out);
struct auth_negotiate *auth_negotiate_hold(struct auth_negotiate *);
void	auth_negotiate_free(struct auth_negotiate *);

/*
 * Checks a realm map ("CONTOSO.COM=CONTOSO, FABRIKAM.COM=FABRIKAM"):
 * every entry REALM=NAME with both sides non-empty and without spaces.
 * PS_EINVAL with a sentence otherwise. "" is a valid (empty) map.
 */
ps_err	auth_negotiate_realms_check(const char *map);

enum auth_negotiate_verdict {
	AUTH_NEGOTIATE_OK,		/* principal (and maybe reply) set */
	AUTH_NEGOTIATE_REFUSED,		/* why set: 401 */
};

struct auth_negotiate_result {
	enum auth_negotiate_verdict verdict;
	char	 principal[256];	/* OK: "test1@CONTOSO.COM" */
	char	*reply;			/* OK: base64 token for the answer's
					   WWW-Authenticate (owned), or NULL */
	char	 why[256];		/* REFUSED: the reason, in words */
};

/*
 * One exchange: `header` is the request's Authorization value
 * ("Negotiate <base64>"). On a worker. PS_OK with the verdict in *res
 * (free res->reply with auth_negotiate_result_cleanup()); PS_EINVAL when
 * the header is not a Negotiate one.
 */
ps_err	auth_negotiate_accept(struct auth_negotiate *, const char *header,
	    struct auth_negotiate_result *res);
void	auth_negotiate_result_cleanup(struct auth_negotiate_result *);

/*
 * The account of a principal, on the portal ("test1@CONTOSO.COM" ->
 * "contoso\test1"): the realm is mapped to a NetBIOS domain by `map`, a
 * list of "REALM=DOMAIN" separated by commas or spaces (realms compared
 * without case); a realm the map does not name gets its first label
 * ("CONTOSO.COM" -> "contoso") when `first_label` is set, and is
 * refused otherwise. Principals with an instance ("a/b@R") are services,
 * never users: refused. PS_EAUTH with a sentence when refused.
 */
ps_err	auth_principal_account(const char *principal, const char *map,
	    bool first_label, char *account, size_t n);

/*
 * The mailbox address of a principal, on the master: "user@REALM" ->
 * "user@<domain>" with the mail domain `map` gives the realm
 * ("CONTOSO.COM=contoso.com"); with an empty map the principal itself,
 * in lower case, as its address (an Active Directory UPN that is the
 * user's address). A realm that a non-empty map does not name, and
 * service principals, are refused: PS_EAUTH with a sentence.
 */
ps_err	auth_principal_mailbox(const char *principal, const char *map,
	    char *address, size_t n);

#endif
