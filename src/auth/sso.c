/*
 * Sign-in by a single sign-on reverse proxy (sso.h): the settings'
 * checks, the header's spellings, the proxies' addresses (the same
 * address lists as /metrics' allow-list, metrics/metrics.h), and what a
 * request's header fields say.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/parse.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "sso.h"

struct auth_sso {
	char			 header[AUTH_SSO_HEADER_MAX];
	struct metrics_acl	*proxies;
};

/*
 * Headers the servers read themselves (or a proxy or TLS layer does):
 * naming one as the identity header would let it stand for two things.
 */
static const char *const reserved[] = {
	"Accept", "Authorization", "Connection", "Content-Length",
	"Content-Type", "Cookie", "Expect", "Host", "If-None-Match",
	"Origin", "Proxy-Authorization", "Referer", "Sec-Fetch-Mode",
	"Sec-Fetch-Site", "Transfer-Encoding", "Upgrade",
	"client-request-id", "Forwarded", "X-Forwarded-For",
};

/* RFC 9110 5.6.2: tchar. */
static bool
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

bool
auth_sso_name_matches(const char *header, const char *field)
{
	for (; *header && *field; header++, field++) {
		char a = (char)tolower((unsigned char)*header);
		char b = (char)tolower((unsigned char)*field);

		if (a == '_')
			a = '-';
		if (b == '_')
			b = '-';
		if (a != b)
			return false;
	}
	return *header == '\0' && *field == '\0';
}

ps_err
auth_sso_header_check(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0')
		return ps_errf(PS_EINVAL, "the identity header needs a name");
	if (strlen(name) >= AUTH_SSO_HEADER_MAX)
		return ps_errf(PS_EINVAL, "the identity header's name is "
		    "longer than %d bytes", AUTH_SSO_HEADER_MAX - 1);
	for (i = 0; name[i]; i++)
		if (!is_tchar((unsigned char)name[i]))
			return ps_errf(PS_EINVAL, "\"%s\" is not a header "
			    "name (letters, digits and !#$%%&'*+-.^_`|~ only)",
			    name);
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (auth_sso_name_matches(reserved[i], name))
			return ps_errf(PS_EINVAL, "\"%s\" cannot be the "
			    "identity header: the servers read %s themselves",
			    name, reserved[i]);
	return PS_OK;
}

ps_err
auth_sso_proxies_check(const char *list)
{
	struct metrics_acl *acl;
	ps_err rc;

	/* An empty list would mean loopback to the /metrics parser. */
	if (list == NULL || list[strspn(list, ", ")] == '\0')
		return ps_errf(PS_EINVAL, "no proxy address given");
	if (strlen(list) >= AUTH_SSO_PROXIES_MAX)
		return ps_errf(PS_EINVAL, "the proxies' list is longer than "
		    "%d bytes", AUTH_SSO_PROXIES_MAX - 1);
	if ((rc = metrics_acl_parse(list, &acl)) != PS_OK)
		return ps_errf(rc, "proxy address %s", ps_errmsg());
	metrics_acl_free(acl);
	return PS_OK;
}

ps_err
auth_sso_new(const char *header, const char *proxies, struct auth_sso **out)
{
	struct auth_sso *sso;
	ps_err rc;

	*out = NULL;
	if (header == NULL || header[0] == '\0' || proxies == NULL ||
	    proxies[0] == '\0')
		return PS_OK;
	if ((rc = auth_sso_header_check(header)) != PS_OK ||
	    (rc = auth_sso_proxies_check(proxies)) != PS_OK)
		return rc;
	sso = xcalloc(1, sizeof(*sso));
	str_copy(sso->header, header, sizeof(sso->header));
	if ((rc = metrics_acl_parse(proxies, &sso->proxies)) != PS_OK) {
		free(sso);
		return rc;
	}
	*out = sso;
	return PS_OK;
}

void
auth_sso_free(struct auth_sso *sso)
{
	if (sso == NULL)
		return;
	metrics_acl_free(sso->proxies);
	free(sso);
}

bool
auth_sso_is_proxy(const struct auth_sso *sso, const char *peer)
{
	return sso != NULL && peer != NULL &&
	    metrics_acl_allows(sso->proxies, peer);
}

enum auth_sso_verdict
auth_sso_examine(const struct auth_sso *sso, const char *peer,
    const struct auth_sso_field *fields, size_t n, const char **user,
    char *why, size_t whylen)
{
	const char *value = NULL;
	size_t i, copies = 0;

	*user = NULL;
	if (sso == NULL)
		return AUTH_SSO_NONE;
	for (i = 0; i < n; i++) {
		if (!auth_sso_name_matches(sso->header, fields[i].name))
			continue;
		copies++;
		value = fields[i].value;
	}
	if (copies == 0)
		return AUTH_SSO_NONE;
	if (!auth_sso_is_proxy(sso, peer))
		return AUTH_SSO_IGNORED;
	if (copies > 1) {
		snprintf(why, whylen, "the proxy sent %s %zu times: it must "
		    "replace the header, not append to it", sso->header,
		    copies);
		return AUTH_SSO_BAD;
	}
	if (value == NULL || value[0] == '\0') {
		snprintf(why, whylen, "the proxy sent an empty %s",
		    sso->header);
		return AUTH_SSO_BAD;
	}
	if (strlen(value) >= AUTH_SSO_USER_MAX) {
		snprintf(why, whylen, "the proxy's %s is longer than %d bytes",
		    sso->header, AUTH_SSO_USER_MAX - 1);
		return AUTH_SSO_BAD;
	}
	*user = value;
	return AUTH_SSO_USER;
}

enum auth_sso_verdict
auth_sso_request(const struct auth_sso *sso, struct http_req *r,
    const char **user)
{
	struct auth_sso_field fields[HTTP_MAX_FIELDS];
	enum auth_sso_verdict v;
	char why[160];
	size_t n;

	*user = NULL;
	if (sso == NULL)
		return AUTH_SSO_NONE;
	for (n = 0; n < HTTP_MAX_FIELDS && http_req_field(r, n,
	    &fields[n].name, &fields[n].value); n++)
		;
	v = auth_sso_examine(sso, http_req_peer(r), fields, n, user, why,
	    sizeof(why));
	if (v == AUTH_SSO_IGNORED && http_req_conn_first_note(r))
		log_info(http_req_id(r), "auth.sso_ignored", "peer=%s "
		    "header=%s reason=%s", log_q(http_req_peer(r)),
		    log_q(sso->header), log_q("the peer is not a configured "
		    "proxy"));
	else if (v == AUTH_SSO_BAD)
		log_info(http_req_id(r), "auth.refused", "method=sso peer=%s "
		    "reason=%s", log_q(http_req_peer(r)), log_q(why));
	return v;
}
