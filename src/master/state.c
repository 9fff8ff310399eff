/*
 * The master's state directory: opening it and reading its settings.
 */
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "master_int.h"
#include "pki/pki.h"

char *
master_path(const struct master_state *ms, const char *name)
{
	return file_join(ms->dir, name);
}

/* A sign-in setting (a proxy's, Kerberos'): "" when never set (off). */
static ps_err
sso_setting(struct store *st, const char *key, char *out, size_t n)
{
	char *v = NULL;
	ps_err rc = store_config_get(st, key, &v);

	out[0] = '\0';
	if (rc == PS_ENOTFOUND)
		return PS_OK;
	if (rc != PS_OK)
		return rc;
	str_copy(out, v, n);
	free(v);
	return PS_OK;
}

ps_err
master_signin_read(struct store *st, struct master_state *ms)
{
	ps_err rc;

	if ((rc = sso_setting(st, "sso_header", ms->sso_header,
	    sizeof(ms->sso_header))) != PS_OK ||
	    (rc = sso_setting(st, "sso_proxies", ms->sso_proxies,
	    sizeof(ms->sso_proxies))) != PS_OK ||
	    (rc = sso_setting(st, "kerberos_keytab",
	    ms->kerberos_keytab, sizeof(ms->kerberos_keytab))) != PS_OK ||
	    (rc = sso_setting(st, "kerberos_service",
	    ms->kerberos_service, sizeof(ms->kerberos_service))) != PS_OK ||
	    (rc = sso_setting(st, "kerberos_realms",
	    ms->kerberos_realms, sizeof(ms->kerberos_realms))) != PS_OK)
		return rc;
	return PS_OK;
}

ps_err
master_state_open(const char *dir, struct master_state *ms)
{
	char *db = store_locate(dir, MASTER_DB), *port = NULL, *cert;
	ps_err rc;

	memset(ms, 0, sizeof(*ms));
	ms->dir = xstrdup(dir);
	rc = store_open(db, STORE_MASTER, false, &ms->store);
	free(db);
	if (rc == PS_ENOTFOUND)
		rc = ps_errf(rc, "%s is not a master state directory (run "
		    "photosync master init --dir %s first)", dir, dir);
	if (rc != PS_OK)
		goto fail;
	if ((rc = store_config_get(ms->store, "host", &ms->host)) != PS_OK ||
	    (rc = store_config_get(ms->store, "port", &port)) != PS_OK ||
	    (rc = store_config_get(ms->store, "domain", &ms->domain)) !=
	    PS_OK ||
	    (rc = store_config_get(ms->store, "realm", &ms->realm)) != PS_OK)
		goto fail;
	ms->port = atoi(port);
	if ((rc = master_signin_read(ms->store, ms)) != PS_OK)
		goto fail;
	cert = master_path(ms, MASTER_S2S_CERT);
	rc = pki_cert_load(cert, &ms->s2s_cert, &ms->s2s_cert_len);
	free(cert);
	if (rc != PS_OK)
		goto fail;
	free(port);
	return PS_OK;
fail:
	free(port);
	master_state_close(ms);
	return rc;
}

void
master_state_close(struct master_state *ms)
{
	store_close(ms->store);
	free(ms->dir);
	free(ms->host);
	free(ms->domain);
	free(ms->realm);
	free(ms->s2s_cert);
	memset(ms, 0, sizeof(*ms));
}
