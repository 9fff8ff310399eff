/*
 * The S2S tokens the portal sends to the master (token.h): the issuers,
 * the issuer choice and the minting, shared by the sync and diagnose.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "portal_int.h"
#include "setup/setup.h"
#include "token.h"

/* Reuse a token until this long before it expires (seconds). */
#define TOKEN_REUSE_MARGIN	300
/* Tokens kept: a user's is about 1.5 KB. */
#define TOKENS_BYTES		(16u * 1024 * 1024)

static ps_err
collect_issuer(void *arg, const struct store_issuer *is)
{
	struct portal_issuers *l = arg;
	struct portal_issuer *p;
	char *host = NULL;
	int port;

	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	p = &l->v[l->n++];
	memset(p, 0, sizeof(*p));
	str_copy(p->name, is->name, sizeof(p->name));
	str_copy(p->issuer, is->issuer, sizeof(p->issuer));
	str_copy(p->realm, is->realm, sizeof(p->realm));
	if (is->metadata_url && setup_https_url_host(is->metadata_url, &host,
	    &port) == PS_OK)
		str_copy(p->host, host, sizeof(p->host));
	free(host);
	p->md_ok = is->metadata && s2s_metadata_parse(is->metadata,
	    strlen(is->metadata), &p->md) == PS_OK;
	return PS_OK;
}

ps_err
portal_issuers_load(struct store *st, struct portal_issuers *out)
{
	memset(out, 0, sizeof(*out));
	return store_issuer_each(st, collect_issuer, out);
}

void
portal_issuers_cleanup(struct portal_issuers *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].md_ok)
			s2s_metadata_cleanup(&l->v[i].md);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

ps_err
portal_token_pick(const struct portal_issuers *l, const char *url,
    struct portal_token_pick *pick)
{
	const struct portal_issuer *chosen = NULL;
	char *host = NULL;
	int port;
	size_t i;
	ps_err rc;

	memset(pick, 0, sizeof(*pick));
	if ((rc = setup_https_url_host(url, &host, &port)) != PS_OK)
		return rc;
	if (port == 443)
		snprintf(pick->authority, sizeof(pick->authority), "%s", host);
	else
		snprintf(pick->authority, sizeof(pick->authority), "%s:%d",
		    host, port);
	pick->n_issuers = (int)l->n;
	/* The last issuer whose metadata URL is on the target host wins. */
	for (i = 0; i < l->n; i++)
		if (l->v[i].host[0] && strcmp(l->v[i].host, host) == 0)
			chosen = &l->v[i];
	free(host);
	if (l->n == 0)
		return ps_errf(PS_EAUTH, "no trusted token issuer: run "
		    "photosync portal issuer add --metadata-url "
		    "https://<master>/autodiscover/metadata/json/1");
	pick->by_host = chosen != NULL && chosen->realm[0] != '\0';
	if (!pick->by_host)
		chosen = &l->v[0];
	str_copy(pick->name, chosen->name, sizeof(pick->name));
	str_copy(pick->realm, chosen->realm, sizeof(pick->realm));
	return PS_OK;
}

/* A kept token (an actor's, or a user's), wiped when dropped. */
struct kept_token {
	char	*token;
	int64_t	 expires;
};

static void
kept_free(void *p)
{
	struct kept_token *k = p;

	xfree_secret(k->token, strlen(k->token));
	free(k);
}

struct lru *
portal_tokens_new(void)
{
	return lru_new(TOKENS_BYTES, kept_free);
}

/* The kept token under `key`, if it is far enough from expiring. */
static struct kept_token *
kept_get(struct lru *tokens, const char *key, int64_t now)
{
	struct kept_token *k = lru_get(tokens, key);

	if (k && k->expires - TOKEN_REUSE_MARGIN <= now) {
		lru_remove(tokens, key);
		k = NULL;
	}
	return k;
}

static void
kept_put(struct lru *tokens, const char *key, const char *token,
    int64_t expires)
{
	struct kept_token *k = xcalloc(1, sizeof(*k));

	k->token = xstrdup(token);
	k->expires = expires;
	lru_put(tokens, key, k, sizeof(*k) + strlen(token) + strlen(key));
}

ps_err
portal_token_mint(const struct webapp_ctx *app,
    const struct portal_token_pick *pick, const char *email,
    struct lru *tokens, char **token)
{
	struct s2s_mint m = { 0 };
	struct kept_token *k;
	char akey[512], ukey[800], *actor = NULL;
	int64_t actor_expires = 0;
	ps_err rc;

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
	if (tokens == NULL)
		return s2s_token_mint(&m, token);
	/*
	 * No user: the actor alone, the application's own (app-only), kept
	 * too: every Autodiscover batch of a refresh needs one.
	 */
	if (email == NULL) {
		snprintf(akey, sizeof(akey), "o/%" PRId64 "/%s/%s", app->w.id,
		    pick->authority, pick->realm);
		if ((k = kept_get(tokens, akey, m.now)) != NULL) {
			*token = xstrdup(k->token);
			return PS_OK;
		}
		if ((rc = s2s_token_mint(&m, token)) == PS_OK)
			kept_put(tokens, akey, *token, m.now + m.lifetime);
		return rc;
	}
	snprintf(akey, sizeof(akey), "a/%" PRId64 "/%s/%s", app->w.id,
	    pick->authority, pick->realm);
	snprintf(ukey, sizeof(ukey), "u/%" PRId64 "/%s/%s/%s", app->w.id,
	    pick->authority, pick->realm, email);
	/* DESIGN §5: a token is reused until shortly before it expires. */
	if ((k = kept_get(tokens, ukey, m.now)) != NULL) {
		*token = xstrdup(k->token);
		return PS_OK;
	}
	if ((k = kept_get(tokens, akey, m.now)) == NULL) {
		if ((rc = s2s_actor_mint(&m, &actor, &actor_expires)) != PS_OK)
			return rc;
		kept_put(tokens, akey, actor, actor_expires);
		xfree_secret(actor, strlen(actor));
		k = lru_get(tokens, akey);
	}
	m.actor = k->token;
	m.actor_expires = k->expires;
	if ((rc = s2s_token_mint(&m, token)) == PS_OK)
		kept_put(tokens, ukey, *token, k->expires < m.now +
		    PORTAL_TOKEN_LIFETIME ? k->expires : m.now +
		    PORTAL_TOKEN_LIFETIME);
	return rc;
}
