/*
 * Fuzz target: a partner's S2S metadata document (s2s_metadata_parse),
 * either product's shape, as `master partner add` and the portal's
 * issuers read it. One that parses has an issuer, a realm and at least
 * one certificate whose thumbprint is its SHA-1; written again as the
 * Exchange document (s2s_metadata_exchange) with its realm and first
 * certificate, it parses back to the same realm and certificate.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "common/buf.h"
#include "fuzz.h"
#include "s2s/s2s.h"

static void
check(const struct s2s_metadata *md)
{
	struct s2s_metadata again;
	unsigned char sha1[20];
	struct buf b;
	size_t i;

	if (md->issuer == NULL || md->issuer[0] == '\0' ||
	    md->realm == NULL || md->realm[0] == '\0' || md->n_certs == 0 ||
	    md->certs == NULL)
		abort();
	for (i = 0; i < md->n_certs; i++) {
		if (md->certs[i].der == NULL || md->certs[i].len == 0)
			abort();
		SHA1(md->certs[i].der, md->certs[i].len, sha1);
		if (memcmp(sha1, md->certs[i].sha1, sizeof(sha1)) != 0)
			abort();
	}
	buf_init(&b, S2S_MAX_METADATA);
	if (s2s_metadata_exchange(&b, md->realm, md->certs[0].der,
	    md->certs[0].len, "https://mail.contoso.com/autodiscover/metadata/"
	    "json/1") == PS_OK) {
		if (s2s_metadata_parse(b.b_data, b.b_len, &again) != PS_OK ||
		    strcmp(again.realm, md->realm) != 0 ||
		    again.n_certs < 1 || again.certs[0].len != md->certs[0].len ||
		    memcmp(again.certs[0].der, md->certs[0].der,
		    md->certs[0].len) != 0)
			abort();
		s2s_metadata_cleanup(&again);
	}
	buf_cleanup(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s2s_metadata md;

	memset(&md, 0, sizeof(md));
	if (s2s_metadata_parse((const char *)data, size, &md) == PS_OK)
		check(&md);
	s2s_metadata_cleanup(&md);
	return 0;
}
