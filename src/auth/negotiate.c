/*
 * SPNEGO (HTTP Negotiate) sign-in with MIT Kerberos' GSSAPI: acceptor
 * credentials from a keytab, one accept per request on a worker, the
 * refusal reasons in words, and the mapping of a principal to an
 * account. See negotiate.h.
 */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "negotiate.h"

struct auth_negotiate {
	gss_cred_id_t	 cred;
	char		*keytab;
	int		 holds;		/* the owner's and exchanges' */
};

/*
 * GSSAPI's message for a status: the major's, then its mechanism's minor
 * (only the minor's when the major just says "see the minor").
 */
static void
gss_message(OM_uint32 major, OM_uint32 minor, char *out, size_t n)
{
	bool minor_only = GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE &&
	    minor != 0;
	OM_uint32 ctx = 0, min;
	gss_buffer_desc msg;
	size_t used = 0;
	int type = minor_only ? GSS_C_MECH_CODE : GSS_C_GSS_CODE;
	OM_uint32 code = minor_only ? minor : major;

	out[0] = '\0';
	for (;;) {
		if (gss_display_status(&min, code, type, GSS_C_NO_OID, &ctx,
		    &msg) != GSS_S_COMPLETE)
			break;
		if (msg.length && used + 3 < n) {
			used += (size_t)snprintf(out + used, n - used, "%s%.*s",
			    used ? ": " : "", (int)msg.length,
			    (const char *)msg.value);
			if (used >= n)
				used = n - 1;
		}
		gss_release_buffer(&min, &msg);
		if (ctx != 0)
			continue;
		if (type == GSS_C_MECH_CODE || minor == 0)
			break;
		type = GSS_C_MECH_CODE;
		code = minor;
	}
}

ps_err
auth_negotiate_new(const char *keytab, const char *service,
    struct auth_negotiate **out)
{
	gss_key_value_element_desc el = { "keytab", keytab };
	gss_key_value_set_desc store = { 1, &el };
	gss_buffer_desc sname;
	gss_name_t name = GSS_C_NO_NAME;
	struct auth_negotiate *an;
	OM_uint32 major, minor;
	char msg[256];
	ps_err rc = PS_OK;

	*out = NULL;
	if (access(keytab, R_OK) != 0)
		return ps_errf(PS_ENOTFOUND, "cannot read the keytab %s",
		    keytab);
	an = xcalloc(1, sizeof(*an));
	an->keytab = xstrdup(keytab);
	an->holds = 1;
	if (service && service[0]) {
		sname.value = (void *)service;
		sname.length = strlen(service);
		major = gss_import_name(&minor, &sname,
		    (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &name);
		if (GSS_ERROR(major)) {
			gss_message(major, minor, msg, sizeof(msg));
			rc = ps_errf(PS_EINVAL, "the service %s is not a "
			    "Kerberos principal name: %s", service, msg);
			goto out;
		}
	}
	major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE,
	    GSS_C_NO_OID_SET, GSS_C_ACCEPT, &store, &an->cred, NULL, NULL);
	if (GSS_ERROR(major)) {
		gss_message(major, minor, msg, sizeof(msg));
		if (name != GSS_C_NO_NAME)
			rc = ps_errf(PS_EINVAL, "the keytab %s holds no key "
			    "for the service %s: %s", keytab, service, msg);
		else
			rc = ps_errf(PS_EINVAL, "the keytab %s gives no "
			    "Kerberos service key: %s", keytab, msg);
		goto out;
	}
	*out = an;
	an = NULL;
out:
	if (name != GSS_C_NO_NAME)
		gss_release_name(&minor, &name);
	auth_negotiate_free(an);
	return rc;
}

struct auth_negotiate *
auth_negotiate_hold(struct auth_negotiate *an)
{
	if (an)
		an->holds++;
	return an;
}

void
auth_negotiate_free(struct auth_negotiate *an)
{
	OM_uint32 minor;

	if (an == NULL || --an->holds > 0)
		return;
	if (an->cred != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&minor, &an->cred);
	free(an->keytab);
	free(an);
}

/*
 * Words for the refusals a user or an admin meets, GSSAPI's message
 * after them. Through SPNEGO the minor codes are renumbered by GSSAPI's
 * mechanism glue, so Kerberos' own cases are told by Kerberos' messages.
 */
static const struct {
	const char	*says;		/* in Kerberos' message */
	const char	*reason;
} krb5_refusals[] = {
	{ "replay", "replayed token" },
	{ "expired", "expired ticket" },
	{ "not found in keytab", "ticket for another service" },
	{ "wrong principal", "ticket for another service" },
	{ "key version", "ticket for another service or key" },
	{ "cannot find key", "ticket for another service or key" },
	{ "integrity check", "ticket for another service or key" },
	{ "clock skew", "clock skew too great" },
};

/*
 * An acceptor for one service says "Cannot decrypt ticket for A using
 * keytab key for B": another service when A is not B, else the key
 * (the keytab is older than the service's key).
 */
static const char *
other_service(const char *msg)
{
	static const char says[] = "cannot decrypt ticket for ";
	const char *a, *b;
	size_t al;

	if ((a = strcasestr(msg, says)) == NULL)
		return NULL;
	a += sizeof(says) - 1;
	al = strcspn(a, " ");
	if ((b = strstr(a + al, " using keytab key for ")) == NULL)
		return NULL;
	b += strlen(" using keytab key for ");
	if (strncmp(a, b, al) == 0 && (b[al] == '\0' || b[al] == ' ' ||
	    b[al] == ','))
		return "ticket for another key (the keytab is out of date)";
	return "ticket for another service";
}

static void
refusal_reason(OM_uint32 major, OM_uint32 minor, char *why, size_t n)
{
	const char *reason = NULL;
	char msg[200];
	size_t i;

	gss_message(major, minor, msg, sizeof(msg));
	reason = other_service(msg);
	for (i = 0; reason == NULL && i < sizeof(krb5_refusals) /
	    sizeof(*krb5_refusals); i++)
		if (strcasestr(msg, krb5_refusals[i].says) != NULL)
			reason = krb5_refusals[i].reason;
	if (reason == NULL) {
		switch (GSS_ROUTINE_ERROR(major)) {
		case GSS_S_DEFECTIVE_TOKEN:
		case GSS_S_BAD_MECH:
			reason = "malformed token";
			break;
		case GSS_S_CREDENTIALS_EXPIRED:
			reason = "expired ticket";
			break;
		case GSS_S_DUPLICATE_TOKEN:
		case GSS_S_OLD_TOKEN:
			reason = "replayed token";
			break;
		default:
			reason = "refused by GSSAPI";
		}
	}
	snprintf(why, n, "%s (%s)", reason, msg);
}

ps_err
auth_negotiate_accept(struct auth_negotiate *an, const char *header,
    struct auth_negotiate_result *res)
{
	gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
	gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_name_t client = GSS_C_NO_NAME;
	OM_uint32 major, minor;
	unsigned char *token = NULL;
	size_t len = 0, hl;

	memset(res, 0, sizeof(*res));
	res->verdict = AUTH_NEGOTIATE_REFUSED;
	if (!str_case_prefix(header, "Negotiate"))
		return ps_errf(PS_EINVAL, "not Negotiate credentials");
	header += 9;
	while (*header == ' ')
		header++;
	hl = strlen(header);
	if (hl == 0 || hl > AUTH_NEGOTIATE_MAX_TOKEN ||
	    b64_decode(header, hl, &token, &len) != PS_OK || len == 0) {
		snprintf(res->why, sizeof(res->why), "malformed token (not "
		    "base64, empty, or over %d bytes)",
		    AUTH_NEGOTIATE_MAX_TOKEN);
		free(token);
		return PS_OK;
	}
	in.value = token;
	in.length = len;
	major = gss_accept_sec_context(&minor, &ctx, an->cred, &in,
	    GSS_C_NO_CHANNEL_BINDINGS, &client, NULL, &out, NULL, NULL, NULL);
	if (major == GSS_S_CONTINUE_NEEDED) {
		snprintf(res->why, sizeof(res->why), "the exchange needs more "
		    "than one step (not Kerberos: NTLM?), which is not "
		    "supported");
		goto out;
	}
	if (GSS_ERROR(major)) {
		refusal_reason(major, minor, res->why, sizeof(res->why));
		goto out;
	}
	if (GSS_ERROR(gss_display_name(&minor, client, &name, NULL)) ||
	    name.length == 0 || name.length >= sizeof(res->principal) ||
	    memchr(name.value, '\0', name.length) != NULL) {
		snprintf(res->why, sizeof(res->why), "the client's name cannot "
		    "be read");
		goto out;
	}
	memcpy(res->principal, name.value, name.length);
	res->principal[name.length] = '\0';
	if (out.length)
		res->reply = b64_encode(out.value, out.length, false);
	res->verdict = AUTH_NEGOTIATE_OK;
out:
	gss_release_buffer(&minor, &out);
	gss_release_buffer(&minor, &name);
	if (client != GSS_C_NO_NAME)
		gss_release_name(&minor, &client);
	if (ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
	free(token);
	return PS_OK;
}

void
auth_negotiate_result_cleanup(struct auth_negotiate_result *res)
{
	free(res->reply);
	res->reply = NULL;
}

/* The domain `map` gives `realm` ("R1=D1, R2=D2"), into `domain`. */
static bool
map_realm(const char *map, const char *realm, char *domain, size_t n)
{
	size_t rl = strlen(realm);
	const char *p = map, *eq, *end;

	while (p && *p) {
		p += strspn(p, ", \t");
		end = p + strcspn(p, ", \t");
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL && (size_t)(eq - p) == rl &&
		    strncasecmp(p, realm, rl) == 0 && end > eq + 1 &&
		    (size_t)(end - eq - 1) < n) {
			memcpy(domain, eq + 1, (size_t)(end - eq - 1));
			domain[end - eq - 1] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

/*
 * A user's principal "user@REALM": *ul the length of its user part, *at
 * its '@'. Services ("a/b@R"), a principal without a realm, and user
 * parts with '@' or '\\' are refused (PS_EAUTH with a sentence).
 */
static ps_err
principal_user(const char *principal, size_t *ul, const char **at)
{
	*at = strrchr(principal, '@');
	if (*at == NULL || *at == principal || (*at)[1] == '\0')
		return ps_errf(PS_EAUTH, "the principal %s has no realm",
		    principal);
	*ul = (size_t)(*at - principal);
	if (memchr(principal, '/', *ul) != NULL)
		return ps_errf(PS_EAUTH, "the principal %s is a service, not "
		    "a user", principal);
	if (memchr(principal, '@', *ul) != NULL ||
	    memchr(principal, '\\', *ul) != NULL)
		return ps_errf(PS_EAUTH, "the principal %s is not a user "
		    "name", principal);
	return PS_OK;
}

ps_err
auth_principal_account(const char *principal, const char *map,
    bool first_label, char *account, size_t n)
{
	const char *at;
	char domain[128];
	size_t ul;
	ps_err rc;

	if ((rc = principal_user(principal, &ul, &at)) != PS_OK)
		return rc;
	if (!map_realm(map ? map : "", at + 1, domain, sizeof(domain))) {
		size_t dl = strcspn(at + 1, ".");

		if (!first_label || dl == 0 || dl >= sizeof(domain))
			return ps_errf(PS_EAUTH, "the realm %s maps to no "
			    "domain", at + 1);
		memcpy(domain, at + 1, dl);
		domain[dl] = '\0';
	}
	if ((size_t)snprintf(account, n, "%s\\%.*s", domain, (int)ul,
	    principal) >= n)
		return ps_errf(PS_EAUTH, "the principal %s is too long",
		    principal);
	str_lower(account);
	return PS_OK;
}

ps_err
auth_negotiate_realms_check(const char *map)
{
	const char *p = map, *eq, *end;

	while (*p) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		end = p + strcspn(p, ", \t");
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL || eq == p || eq + 1 == end ||
		    memchr(eq + 1, '=', (size_t)(end - eq - 1)) != NULL)
			return ps_errf(PS_EINVAL, "\"%.*s\" is not REALM=NAME",
			    (int)(end - p), p);
		if ((size_t)(end - eq - 1) >= 128)
			return ps_errf(PS_EINVAL, "\"%.*s\": the name is too "
			    "long", (int)(end - p), p);
		p = end;
	}
	return PS_OK;
}

ps_err
auth_principal_mailbox(const char *principal, const char *map,
    char *address, size_t n)
{
	const char *at;
	char domain[128];
	size_t ul;
	ps_err rc;

	if ((rc = principal_user(principal, &ul, &at)) != PS_OK)
		return rc;
	if (map == NULL || map[0] == '\0')
		str_copy(domain, at + 1, sizeof(domain));
	else if (!map_realm(map, at + 1, domain, sizeof(domain)))
		return ps_errf(PS_EAUTH, "the realm %s maps to no mail "
		    "domain", at + 1);
	if ((size_t)snprintf(address, n, "%.*s@%s", (int)ul, principal,
	    domain) >= n)
		return ps_errf(PS_EAUTH, "the principal %s is too long",
		    principal);
	str_lower(address);
	return PS_OK;
}
