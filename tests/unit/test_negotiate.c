/*
 * Tests of auth/negotiate.c against a real MIT KDC (tests/kdc.py runs
 * this program with a realm, test1's ticket and two service keytabs):
 * the client's side is GSSAPI's own gss_init_sec_context(), as a
 * browser's. An exchange accepted with the principal and a mutual
 * authentication token; the same token again (a replay), a ticket for
 * a service the keytab does not hold, garbage and an empty token each
 * refused with its reason; a missing keytab an error at once. And the
 * mapping of principals to accounts, which needs no KDC.
 */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <stdlib.h>
#include <string.h>

#include "auth/negotiate.h"
#include "common/str.h"
#include "t.h"

/* SPNEGO, 1.3.6.1.5.5.2 (MIT's headers do not name it). */
static gss_OID_desc spnego = { 6, (void *)"\x2b\x06\x01\x05\x05\x02" };

/* A client's "Negotiate <base64>" for `service` (host-based). */
static char *
client_header(const char *service)
{
	gss_buffer_desc nb, out = GSS_C_EMPTY_BUFFER;
	gss_name_t target = GSS_C_NO_NAME;
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	OM_uint32 major, minor;
	char *b64, *h = NULL;

	nb.value = (void *)service;
	nb.length = strlen(service);
	if (GSS_ERROR(gss_import_name(&minor, &nb,
	    GSS_C_NT_HOSTBASED_SERVICE, &target)))
		return NULL;
	major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx,
	    target, &spnego, GSS_C_MUTUAL_FLAG, 0,
	    GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL,
	    NULL);
	if (!GSS_ERROR(major) && out.length) {
		b64 = b64_encode(out.value, out.length, false);
		h = malloc(strlen(b64) + 11);
		strcpy(h, "Negotiate ");
		strcat(h, b64);
		free(b64);
	}
	gss_release_buffer(&minor, &out);
	gss_release_name(&minor, &target);
	if (ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
	return h;
}

static void
test_mapping(void)
{
	char acc[256];

	ok(auth_principal_account("test1@CONTOSO.COM", NULL, true, acc,
	    sizeof(acc)) == PS_OK, "a principal maps by its realm's first "
	    "label");
	is_str(acc, "contoso\\test1", "to contoso\\test1");
	ok(auth_principal_account("Test1@EU.CONTOSO.COM",
	    "EU.CONTOSO.COM=CONTOSO-EU, contoso.com=contoso", true, acc,
	    sizeof(acc)) == PS_OK, "a mapped realm");
	is_str(acc, "contoso-eu\\test1", "gets its domain, in lower case");
	ok(auth_principal_account("test1@FABRIKAM.COM", "CONTOSO.COM=C",
	    false, acc, sizeof(acc)) == PS_EAUTH,
	    "a realm the map does not name, without first labels: refused");
	ok(auth_principal_account("HTTP/portal.contoso.com@CONTOSO.COM",
	    NULL, true, acc, sizeof(acc)) == PS_EAUTH,
	    "a service principal: refused");
	ok(auth_principal_account("test1", NULL, true, acc, sizeof(acc)) ==
	    PS_EAUTH, "no realm: refused");
	ok(auth_principal_account("@CONTOSO.COM", NULL, true, acc,
	    sizeof(acc)) == PS_EAUTH, "no user: refused");
	ok(auth_principal_account("a\\b@CONTOSO.COM", NULL, true, acc,
	    sizeof(acc)) == PS_EAUTH, "a backslash in the user: refused");
	ok(auth_principal_account("test1@CONTOSO.COM", NULL, true, acc, 8) ==
	    PS_EAUTH, "too long for the account: refused");

	ok(auth_principal_mailbox("Test1@CONTOSO.COM", "", acc,
	    sizeof(acc)) == PS_OK, "a mailbox without a realm map");
	is_str(acc, "test1@contoso.com", "is the principal, lower case");
	ok(auth_principal_mailbox("test1@CORP.CONTOSO.COM",
	    "FABRIKAM.COM=fabrikam.com, corp.contoso.com=contoso.com", acc,
	    sizeof(acc)) == PS_OK, "a mapped realm");
	is_str(acc, "test1@contoso.com", "gets the map's mail domain");
	ok(auth_principal_mailbox("test1@CONTOSO.COM", "FABRIKAM.COM=f.com",
	    acc, sizeof(acc)) == PS_EAUTH, "a realm the map lacks: refused");
	ok(auth_principal_mailbox("HTTP/x@CONTOSO.COM", "", acc,
	    sizeof(acc)) == PS_EAUTH, "a service principal: no mailbox");

	ok(auth_negotiate_realms_check("") == PS_OK &&
	    auth_negotiate_realms_check("CONTOSO.COM=CONTOSO, A.B=c.d") ==
	    PS_OK, "realm maps: empty, two entries");
	ok(auth_negotiate_realms_check("CONTOSO.COM") == PS_EINVAL &&
	    auth_negotiate_realms_check("=X") == PS_EINVAL &&
	    auth_negotiate_realms_check("A=") == PS_EINVAL &&
	    auth_negotiate_realms_check("A=B=C") == PS_EINVAL,
	    "realm maps without REALM=NAME: refused");
}

static void
test_exchange(const char *keytab, const char *other_keytab)
{
	struct auth_negotiate_result res;
	struct auth_negotiate *an = NULL, *other = NULL;
	char *h;

	ok(auth_negotiate_new("/nonexistent/keytab", NULL, &an) ==
	    PS_ENOTFOUND &&
	    an == NULL, "a missing keytab: an error at once");
	if (!ok(auth_negotiate_new(keytab, NULL, &an) == PS_OK,
	    "an acceptor from the service's keytab")) {
		printf("# %s\n", ps_errmsg());
		return;
	}
	ok(auth_negotiate_new(keytab, "HTTP/other.contoso.com", &other) ==
	    PS_EINVAL && other == NULL && strstr(ps_errmsg(), "no key") !=
	    NULL, "a service the keytab lacks: an error at once");
	printf("# %s\n", ps_errmsg());
	if (ok(auth_negotiate_new(keytab, "HTTP/portal.contoso.com@CONTOSO.COM",
	    &other) == PS_OK, "a service the keytab holds, named")) {
		/* Held by an exchange: the owner's free leaves it usable. */
		auth_negotiate_hold(other);
		auth_negotiate_free(other);
		h = client_header("HTTP@portal.contoso.com");
		ok(h && auth_negotiate_accept(other, h, &res) == PS_OK &&
		    res.verdict == AUTH_NEGOTIATE_OK, "that acceptor, still "
		    "held, accepts its ticket");
		auth_negotiate_result_cleanup(&res);
		free(h);
		auth_negotiate_free(other);
		other = NULL;
	}
	h = client_header("HTTP@portal.contoso.com");
	if (!ok(h != NULL, "test1's client token for HTTP/portal"))
		goto out;
	ok(auth_negotiate_accept(an, h, &res) == PS_OK &&
	    res.verdict == AUTH_NEGOTIATE_OK, "accepted");
	if (res.verdict != AUTH_NEGOTIATE_OK)
		printf("# %s\n", res.why);
	is_str(res.principal, "test1@CONTOSO.COM", "as test1@CONTOSO.COM");
	ok(res.reply != NULL && res.reply[0],
	    "with a token of mutual authentication");
	auth_negotiate_result_cleanup(&res);

	ok(auth_negotiate_accept(an, h, &res) == PS_OK &&
	    res.verdict == AUTH_NEGOTIATE_REFUSED &&
	    strstr(res.why, "replayed") != NULL,
	    "the same token again: refused as a replay");
	printf("# %s\n", res.why);
	auth_negotiate_result_cleanup(&res);
	free(h);

	h = client_header("HTTP@other.contoso.com");
	ok(h != NULL && auth_negotiate_accept(an, h, &res) == PS_OK &&
	    res.verdict == AUTH_NEGOTIATE_REFUSED &&
	    strstr(res.why, "another service") != NULL,
	    "a ticket for a service the keytab does not hold: refused");
	printf("# %s\n", res.why);
	auth_negotiate_result_cleanup(&res);
	if (ok(auth_negotiate_new(other_keytab, NULL, &other) == PS_OK,
	    "that service's own acceptor") && h != NULL) {
		ok(auth_negotiate_accept(other, h, &res) == PS_OK &&
		    res.verdict == AUTH_NEGOTIATE_OK,
		    "accepts that ticket");
		auth_negotiate_result_cleanup(&res);
	}
	free(h);

	ok(auth_negotiate_accept(an, "Negotiate YWJjZGVmZ2hpams=", &res) ==
	    PS_OK && res.verdict == AUTH_NEGOTIATE_REFUSED &&
	    strstr(res.why, "malformed") != NULL,
	    "garbage that is base64: refused as malformed");
	printf("# %s\n", res.why);
	auth_negotiate_result_cleanup(&res);
	ok(auth_negotiate_accept(an, "Negotiate !!!", &res) == PS_OK &&
	    res.verdict == AUTH_NEGOTIATE_REFUSED,
	    "not base64: refused");
	ok(auth_negotiate_accept(an, "Negotiate", &res) == PS_OK &&
	    res.verdict == AUTH_NEGOTIATE_REFUSED, "no token: refused");
	ok(auth_negotiate_accept(an, "Basic dGVzdDE6eA==", &res) ==
	    PS_EINVAL, "not Negotiate: not this module's");
out:
	auth_negotiate_free(an);
	auth_negotiate_free(other);
}

int
main(void)
{
	const char *keytab = getenv("PHOTOSYNC_TEST_KEYTAB");
	const char *other = getenv("PHOTOSYNC_TEST_OTHER_KEYTAB");

	test_mapping();
	if (keytab == NULL || other == NULL)
		printf("Bail out! run through tests/kdc.py run --\n");
	else
		test_exchange(keytab, other);
	return done();
}
