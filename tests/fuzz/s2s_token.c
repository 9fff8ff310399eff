/*
 * Fuzz target: S2S tokens as the master validates them
 * (s2s_token_validate): the JWS framing, base64url and JSON of the outer
 * (alg none) token and of the signed actor token, the RS256 signature of
 * one partner's certificate, and the claims (audience, times, issuer,
 * user claims, the addresses digest). An input whose first byte is '{'
 * is taken as the outer token's claims, wrapped here, so that mutations
 * reach the claims read after the actor's signature. A token that
 * validates names the partner that signed it and a user unless it is
 * app-only; one that does not leaves the identity empty.
 */
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "fuzz.h"
#include "s2s/s2s.h"

/* The partner: tests/unit/s2s_tool's SharePoint, its minted realms. */
static const char partner_metadata[] =
	"{\"issuer\":\"00000003-0000-0ff1-ce00-000000000000@3b0c1b6e-9d5"
	"2-4a42-8a5a-1c0e6f2d7a10\",\"keys\":[{\"keyValue\":{\"type\":\"x509c"
	"ertificate\",\"value\":\"MIIDMTCCAhmgAwIBAgIQVbi8rIwUm6NKy8gJwOj"
	"hHjANBgkqhkiG9w0BAQsFADAZMRcwFQYDVQQDDA5TaGFyZVBvaW50IFNUUzA"
	"eFw0yNjEyMDUwNDUyNTZaFw0yNjEyMDYwNDUyNTZaMBkxFzAVBgNVBAMMDlN"
	"oYXJlUG9pbnQgU1RTMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQE"
	"ArH2i9fUa31JTSH8KvbLFtlfJOO7njmFOGHIedR9Vpwk4GBOqOJ5APQy6tGY"
	"Fr+P9+rXrrXvDpHwWbgUFT3ioF0fhE8duaON+qDy+oaE6uZ6JCNC2Y6IDyPO"
	"DkljLJUbuCL845j92ZsVtSl1RnxeInP6snEfJkjgHO4k9/BpDbYqcNqY5jf2"
	"HdZzxwz9HB00Q6r4tR7L7p4jEtWhVArc6fQlBiOy/ZYcqXPjEFFsUqQIP9N2"
	"rDyTdKv9mZSJKCIhOJuoN1YaBc7oB8qMVmasQsxgDPdjPyQRHg2UgZjCYFOo"
	"weAtXGcwCoh1ZAQvE2Gnb/paslXIH6YbIerCUDSojZwIDAQABo3UwczAMBgN"
	"VHRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIFoDATBgNVHSUEDDAKBggrBgEFBQc"
	"DATAdBgNVHQ4EFgQUd0rRDO3lbU4ZUHIjnRxA2poBaAwwHwYDVR0jBBgwFoA"
	"Ud0rRDO3lbU4ZUHIjnRxA2poBaAwwDQYJKoZIhvcNAQELBQADggEBADqZUwn"
	"AYZ1/wcBDEYzwCPORCv2co96QCmKxrX86XIoCXUlC7mJ/M6msbrVPQElMDPv"
	"trL9mtrSWLByGfgQWDCRFlcQhnPufPK6hWSUGyJXls9Vx2wnNqVdPksUWl4v"
	"kw+1KxwAxtPcPlAsR4BUwCzdp/aU6VsjVciWkji1l33aSr+zYSrRtegguzUv"
	"fCcxymQTJzDcUoSwfSiQEvA5whIihz7d0zkUs8KvbxTHWANrA1Dtvow2BYaV"
	"mx5erPwiSEloH+XQpxOd/Kh91ihMpAjJwwVZ/W8cxoIoJTo6Pqe7Z7kOnwio"
	"xZjZWPi5IdIgjJU4vlCaKiVd97oHpspAPjgE=\"},\"usage\":\"Signing\"}],"
	"\"name\":\"00000003-0000-0ff1-ce00-000000000000\",\"realm\":\"3b0c1"
	"b6e-9d52-4a42-8a5a-1c0e6f2d7a10\",\"serviceName\":\"00000003-000"
	"0-0ff1-ce00-000000000000\"}";

#define SP_ISSUER	"00000003-0000-0ff1-ce00-000000000000@" \
	"3b0c1b6e-9d52-4a42-8a5a-1c0e6f2d7a10"
#define OUTER_HEADER	"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0"	/* none */
#define MINTED_AT	1796449976	/* the seeds' "now" */

static struct s2s_metadata md;
static struct s2s_partner partner;
static const struct s2s_expect expect = {
	.client_id = S2S_EXCHANGE_ID,
	.host = "mail.contoso.com",
	.port = 443,
	.realm = "9a8b7c6d-1111-4222-8333-944455566677",
	.now = MINTED_AT + 60,
};

static void
setup(void)
{
	if (partner.issuer != NULL)
		return;
	if (s2s_metadata_parse(partner_metadata, strlen(partner_metadata),
	    &md) != PS_OK)
		abort();
	partner.issuer = md.issuer;
	partner.realm = md.realm;
	partner.certs = md.certs;
	partner.n_certs = md.n_certs;
}

static void
check(const char *token)
{
	struct s2s_identity id;
	size_t i;

	memset(&id, 'x', sizeof(id));
	if (s2s_token_validate(token, &expect, &partner, 1, &id) != PS_OK) {
		for (i = 0; i < sizeof(id); i++)
			if (((const unsigned char *)&id)[i] != 0)
				abort();
		return;
	}
	if (strcmp(id.partner, SP_ISSUER) != 0 ||
	    memchr(id.user, '\0', sizeof(id.user)) == NULL ||
	    memchr(id.addresses, '\0', sizeof(id.addresses)) == NULL)
		abort();
	if (id.app_only)
		return;
	if (id.user[0] == '\0' || (strcmp(id.user, id.smtp) != 0 &&
	    strcmp(id.user, id.upn) != 0 && strcmp(id.user, id.nameid) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *token, *claims;

	setup();
	if (size > 0 && data[0] == '{') {
		claims = b64_encode(data, size, true);
		token = xasprintf("%s.%s.", OUTER_HEADER, claims);
		free(claims);
	} else {
		token = xmalloc(size + 1);
		memcpy(token, data, size);
		token[size] = '\0';
	}
	check(token);
	free(token);
	return 0;
}
