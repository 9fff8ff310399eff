/*
 * A small driver of s2s for the cross-check against third-party JWT
 * libraries (s2s_crosscheck.py):
 *
 *   s2s_tool mint DIR
 *	makes a fresh key and self-signed certificate, mints a user token
 *	and an app-only token, and writes DIR/{key.pem,cert.pem,token,
 *	apponly,metadata.json}; prints the parameters as one JSON line.
 *   s2s_tool validate TOKENFILE METADATAFILE
 *	registers the partner described by METADATAFILE (either product's
 *	shape) and validates the token as the master would; prints
 *	"OK user=... partner=... app_only=0|1" and exits 0, or
 *	"REFUSED <reason>" and exits 1. Exit 2 on usage or I/O errors.
 *
 * The master's expectations are fixed: client id 00000002-..., host
 * mail.contoso.com, port 443, realm EX_REALM below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "s2s/s2s.h"

#define SP_REALM	"3b0c1b6e-9d52-4a42-8a5a-1c0e6f2d7a10"
#define EX_REALM	"9a8b7c6d-1111-4222-8333-944455566677"
#define HOST		"mail.contoso.com"
#define PORT		443
#define USER		"test1@contoso.com"
#define LIFETIME	3600

static int
fail(const char *what)
{
	fprintf(stderr, "s2s_tool: %s: %s\n", what, ps_errmsg());
	return 2;
}

static int
write_str(const char *dir, const char *name, const char *s)
{
	char *path = file_join(dir, name);
	ps_err rc = file_write_atomic(path, s, strlen(s), 0600);

	free(path);
	return rc == PS_OK ? 0 : fail(name);
}

static int
mint(const char *dir)
{
	struct pki_cert_spec spec = { .common_name = "SharePoint STS",
	    .days = 1 };
	struct s2s_mint m;
	struct pki_key *key = NULL;
	struct buf doc;
	unsigned char *der = NULL;
	size_t len = 0;
	char *tok = NULL, *app = NULL, *p;
	int64_t now = time_now();
	int rc = 2;

	buf_init(&doc, S2S_MAX_METADATA);
	if (pki_key_generate(&key) != PS_OK ||
	    pki_cert_create(key, &spec, NULL, NULL, 0, &der, &len) != PS_OK) {
		rc = fail("key");
		goto out;
	}
	p = file_join(dir, "key.pem");
	if (pki_key_save(key, p) != PS_OK) {
		free(p);
		rc = fail("key.pem");
		goto out;
	}
	free(p);
	p = file_join(dir, "cert.pem");
	if (pki_cert_save(der, len, p) != PS_OK) {
		free(p);
		rc = fail("cert.pem");
		goto out;
	}
	free(p);
	memset(&m, 0, sizeof(m));
	m.key = key;
	m.cert_der = der;
	m.cert_len = len;
	m.client_id = S2S_SHAREPOINT_ID;
	m.realm = SP_REALM;
	m.target_id = S2S_EXCHANGE_ID;
	m.target_host = HOST;
	m.target_realm = EX_REALM;
	m.smtp = USER;
	m.now = now;
	m.lifetime = LIFETIME;
	if (s2s_token_mint(&m, &tok) != PS_OK) {
		rc = fail("mint");
		goto out;
	}
	m.smtp = NULL;
	if (s2s_token_mint(&m, &app) != PS_OK) {
		rc = fail("mint app-only");
		goto out;
	}
	if (s2s_metadata_sharepoint(&doc, SP_REALM, der, len) != PS_OK) {
		rc = fail("metadata");
		goto out;
	}
	if ((rc = write_str(dir, "token", tok)) != 0 ||
	    (rc = write_str(dir, "apponly", app)) != 0 ||
	    (rc = write_str(dir, "metadata.json", buf_str(&doc))) != 0)
		goto out;
	printf("{\"client_id\":\"%s\",\"realm\":\"%s\",\"target_id\":\"%s\","
	    "\"host\":\"%s\",\"port\":%d,\"target_realm\":\"%s\","
	    "\"smtp\":\"%s\",\"now\":%lld,\"lifetime\":%d}\n",
	    S2S_SHAREPOINT_ID, SP_REALM, S2S_EXCHANGE_ID, HOST, PORT,
	    EX_REALM, USER, (long long)now, LIFETIME);
	rc = 0;
out:
	free(tok);
	free(app);
	free(der);
	buf_cleanup(&doc);
	pki_key_free(key);
	return rc;
}

static int
validate(const char *token_file, const char *md_file)
{
	struct s2s_expect ex = {
		.client_id = S2S_EXCHANGE_ID, .host = HOST, .port = PORT,
		.realm = EX_REALM, .now = 0,
	};
	struct s2s_metadata md;
	struct s2s_partner partner;
	struct s2s_identity id;
	char *tok = NULL, *doc = NULL;
	size_t tlen = 0, dlen = 0;
	int rc = 2;

	memset(&md, 0, sizeof(md));
	if (file_read(token_file, 4 * S2S_MAX_TOKEN, &tok, &tlen) != PS_OK) {
		rc = fail(token_file);
		goto out;
	}
	/* One trailing newline, as an editor or echo would leave it. */
	if (tlen > 0 && tok[tlen - 1] == '\n')
		tok[--tlen] = '\0';
	if (file_read(md_file, S2S_MAX_METADATA, &doc, &dlen) != PS_OK ||
	    s2s_metadata_parse(doc, dlen, &md) != PS_OK) {
		rc = fail(md_file);
		goto out;
	}
	partner.issuer = md.issuer;
	partner.realm = md.realm;
	partner.certs = md.certs;
	partner.n_certs = md.n_certs;
	if (s2s_token_validate(tok, &ex, &partner, 1, &id) != PS_OK) {
		printf("REFUSED %s\n", ps_errmsg());
		rc = 1;
		goto out;
	}
	printf("OK user=%s partner=%s app_only=%d addresses=%s\n", id.user,
	    id.partner, id.app_only ? 1 : 0, id.addresses);
	rc = 0;
out:
	s2s_metadata_cleanup(&md);
	if (tok != NULL)
		xfree_secret(tok, tlen);
	free(doc);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "mint") == 0)
		return mint(argv[2]);
	if (argc == 4 && strcmp(argv[1], "validate") == 0)
		return validate(argv[2], argv[3]);
	fprintf(stderr, "usage: s2s_tool mint DIR\n"
	    "       s2s_tool validate TOKENFILE METADATAFILE\n");
	return 2;
}
