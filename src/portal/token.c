/*
 * The S2S tokens the portal sends to the master (token.h): the issuer
 * choice and the minting, shared by the sync and diagnose.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "portal_int.h"
#include "s2s/s2s.h"
#include "setup/setup.h"
#include "token.h"

struct issuer_walk {
	const char			*host;
	struct portal_token_pick	*pick;
	char				 first_name[128];
	char				 first_realm[64];
};

static ps_err
pick_issuer(void *arg, const struct store_issuer *is)
{
	struct issuer_walk *iw = arg;
	struct portal_token_pick *p = iw->pick;
	char *host = NULL;
	int port;

	if (p->n_issuers++ == 0) {
		str_copy(iw->first_name, is->name, sizeof(iw->first_name));
		str_copy(iw->first_realm, is->realm, sizeof(iw->first_realm));
	}
	if (is->metadata_url && setup_https_url_host(is->metadata_url, &host,
	    &port) == PS_OK) {
		/* As before the refactor: the last such issuer wins. */
		if (strcmp(host, iw->host) == 0) {
			str_copy(p->name, is->name, sizeof(p->name));
			str_copy(p->realm, is->realm, sizeof(p->realm));
			p->by_host = true;
		}
		free(host);
	}
	return PS_OK;
}

ps_err
portal_token_pick(struct store *st, const char *url,
    struct portal_token_pick *pick)
{
	struct issuer_walk iw = { .pick = pick };
	char *host = NULL;
	int port;
	ps_err rc;

	memset(pick, 0, sizeof(*pick));
	if ((rc = setup_https_url_host(url, &host, &port)) != PS_OK)
		return rc;
	if (port == 443)
		snprintf(pick->authority, sizeof(pick->authority), "%s", host);
	else
		snprintf(pick->authority, sizeof(pick->authority), "%s:%d",
		    host, port);
	iw.host = host;
	if ((rc = store_issuer_each(st, pick_issuer, &iw)) != PS_OK)
		goto out;
	if (pick->n_issuers == 0) {
		rc = ps_errf(PS_EAUTH, "no trusted token issuer: run "
		    "photosync portal issuer add --metadata-url "
		    "https://<master>/autodiscover/metadata/json/1");
		goto out;
	}
	if (!pick->by_host || pick->realm[0] == '\0') {
		pick->by_host = false;
		str_copy(pick->name, iw.first_name, sizeof(pick->name));
		str_copy(pick->realm, iw.first_realm, sizeof(pick->realm));
	}
out:
	free(host);
	return rc;
}

ps_err
portal_token_mint(const struct webapp_ctx *app,
    const struct portal_token_pick *pick, const char *email, char **token)
{
	struct s2s_mint m = { 0 };

	m.key = app->s2s_key;
	m.cert_der = app->s2s_cert;
	m.cert_len = app->s2s_cert_len;
	m.client_id = S2S_SHAREPOINT_ID;
	m.realm = app->w.realm;
	m.target_id = S2S_EXCHANGE_ID;
	m.target_host = pick->authority;
	m.target_realm = pick->realm;
	m.smtp = email;
	m.upn = email;
	m.now = time_now();
	m.lifetime = PORTAL_TOKEN_LIFETIME;
	return s2s_token_mint(&m, token);
}
