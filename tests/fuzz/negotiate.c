/*
 * Fuzz target: the Negotiate (SPNEGO/Kerberos) sign-in's reading of an
 * Authorization header (auth_negotiate_accept): the scheme, the base64
 * framing and its limits, then GSSAPI's acceptor with a real service
 * key (HTTP/portal.contoso.com of a throwaway test realm, below), and
 * the principal's account (auth_principal_account). An input that does
 * not start with 'N' or 'n' is taken as the token itself and sent as
 * "Negotiate <base64>", so that mutations reach the DER inside. Every
 * Negotiate header gets a verdict: a principal, or a refusal with its
 * reason; anything else is PS_EINVAL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/negotiate.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "fuzz.h"

/*
 * The keytab of HTTP/portal.contoso.com@CONTOSO.COM, made by tests/kdc.py
 * for the seeds; the key belongs to no real realm.
 */
static const unsigned char keytab[] = {
	0x05, 0x02, 0x00, 0x00, 0x00, 0x5a, 0x00, 0x02, 0x00, 0x0b,
	0x43, 0x4f, 0x4e, 0x54, 0x4f, 0x53, 0x4f, 0x2e, 0x43, 0x4f,
	0x4d, 0x00, 0x04, 0x48, 0x54, 0x54, 0x50, 0x00, 0x12, 0x70,
	0x6f, 0x72, 0x74, 0x61, 0x6c, 0x2e, 0x63, 0x6f, 0x6e, 0x74,
	0x6f, 0x73, 0x6f, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x00,
	0x01, 0x6b, 0x13, 0xa8, 0x94, 0x02, 0x00, 0x12, 0x00, 0x20,
	0xcd, 0x4c, 0xf5, 0x69, 0x8c, 0x32, 0xf1, 0x38, 0x6d, 0x94,
	0x5e, 0x30, 0x4f, 0x35, 0x67, 0x7d, 0x17, 0x7f, 0xb4, 0x15,
	0xda, 0x78, 0x9c, 0x2a, 0xc2, 0xc4, 0xc7, 0x41, 0xa2, 0x5e,
	0xd3, 0x27, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x4a,
	0x00, 0x02, 0x00, 0x0b, 0x43, 0x4f, 0x4e, 0x54, 0x4f, 0x53,
	0x4f, 0x2e, 0x43, 0x4f, 0x4d, 0x00, 0x04, 0x48, 0x54, 0x54,
	0x50, 0x00, 0x12, 0x70, 0x6f, 0x72, 0x74, 0x61, 0x6c, 0x2e,
	0x63, 0x6f, 0x6e, 0x74, 0x6f, 0x73, 0x6f, 0x2e, 0x63, 0x6f,
	0x6d, 0x00, 0x00, 0x00, 0x01, 0x6b, 0x13, 0xa8, 0x94, 0x02,
	0x00, 0x11, 0x00, 0x10, 0x34, 0x7f, 0x48, 0x9d, 0x49, 0x72,
	0xbd, 0xe6, 0x0d, 0x34, 0xd9, 0x43, 0x78, 0x70, 0x91, 0x50,
	0x00, 0x00, 0x00, 0x02
};

static struct auth_negotiate *an;
static char keytab_path[4096];

static void
remove_keytab(void)
{
	auth_negotiate_free(an);
	unlink(keytab_path);
}

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	FILE *f;
	int fd;

	if (an != NULL)
		return;
	/* No replay cache: the same seed is accepted each time it runs. */
	setenv("KRB5RCACHETYPE", "none", 1);
	/* TMPDIR: the test's own directory under meson (tmpguard). */
	if (snprintf(keytab_path, sizeof(keytab_path), "%s/fuzz-keytab-XXXXXX",
	    tmp && *tmp ? tmp : P_tmpdir) >= (int)sizeof(keytab_path) ||
	    (fd = mkstemp(keytab_path)) < 0 || (f = fdopen(fd, "wb")) == NULL ||
	    fwrite(keytab, 1, sizeof(keytab), f) != sizeof(keytab) ||
	    fclose(f) != 0)
		abort();
	atexit(remove_keytab);
	if (auth_negotiate_new(keytab_path, NULL, &an) != PS_OK)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_negotiate_result res;
	char *header, *b64, account[256];
	ps_err rc;

	setup();
	if (size > 0 && data[0] != 'N' && data[0] != 'n') {
		b64 = b64_encode(data, size, false);
		header = xasprintf("Negotiate %s", b64);
		free(b64);
	} else {
		header = xmalloc(size + 1);
		memcpy(header, data, size);
		header[size] = '\0';
	}
	rc = auth_negotiate_accept(an, header, &res);
	if ((rc == PS_EINVAL) != !str_case_prefix(header, "Negotiate"))
		abort();
	if (rc == PS_OK) {
		if (res.verdict == AUTH_NEGOTIATE_OK) {
			if (res.principal[0] == '\0' ||
			    memchr(res.principal, '\0',
			    sizeof(res.principal)) == NULL)
				abort();
			(void)auth_principal_account(res.principal, "", true,
			    account, sizeof(account));
		} else if (res.verdict != AUTH_NEGOTIATE_REFUSED ||
		    res.why[0] == '\0' || res.reply != NULL)
			abort();
	} else if (rc != PS_EINVAL)
		abort();
	auth_negotiate_result_cleanup(&res);
	free(header);
	return 0;
}
