/*
 * The S2S tokens the portal sends to the master: the trusted issuers
 * (masters) as the portal knows them, which issuer's realm a token is
 * for, and the minting. One place for both users, the sync (sync.c) and
 * photosync portal diagnose (diagnose.c), so that diagnose tests exactly
 * the token a sync sends.
 */
#ifndef PS_PORTAL_TOKEN_H
#define PS_PORTAL_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "s2s/s2s.h"

struct lru;
struct store;
struct webapp_ctx;

#define PORTAL_TOKEN_LIFETIME	3600	/* seconds */

/* A trusted token issuer (`portal issuer add`), parsed once. */
struct portal_issuer {
	char			name[128];
	char			issuer[256];
	char			realm[64];
	char			host[256];	/* of its metadata URL, or "" */
	bool			md_ok;		/* its document parsed */
	struct s2s_metadata	md;
};

struct portal_issuers {
	struct portal_issuer	*v;
	size_t			 n;
};

/* Reads every issuer from the store. Clean up with the function below. */
ps_err	portal_issuers_load(struct store *, struct portal_issuers *out);
void	portal_issuers_cleanup(struct portal_issuers *);

/* The issuer a token is minted for. */
struct portal_token_pick {
	char	name[128];	/* the trusted issuer's name, "" if none */
	char	realm[64];	/* its realm: the token's target realm */
	char	authority[300];	/* the audience's "host" or "host:port" */
	bool	by_host;	/* its metadata URL is on the target host;
				   otherwise it is the first issuer */
	int	n_issuers;	/* how many issuers are trusted */
};

/*
 * Chooses the issuer for a call to `url`: the trusted issuer whose
 * metadata URL is on `url`'s host, else the first one. PS_EAUTH, with a
 * sentence saying how to add one, when no issuer is trusted; `pick` is
 * filled as far as it got either way.
 */
ps_err	portal_token_pick(const struct portal_issuers *, const char *url,
	    struct portal_token_pick *pick);

/*
 * Mints a token acting as `email` (NULL: the application's own, app-only)
 * for `pick` (from portal_token_pick()),
 * signed with `app`'s S2S key; only app->w.id, w.realm, s2s_key, s2s_cert
 * and s2s_cert_len are used. `tokens` (NULL: none) keeps tokens for
 * reuse until shortly before they expire (DESIGN §5): each user's, the
 * app-only one, and the signed actor token per web application and
 * audience, which serves every user, so a new user's token costs no
 * signature. The caller frees
 * *token with xfree_secret().
 */
ps_err	portal_token_mint(const struct webapp_ctx *app,
	    const struct portal_token_pick *pick, const char *email,
	    struct lru *tokens, char **token);

/* A bounded map of kept tokens for portal_token_mint() (wiped when
 * dropped); free with lru_free(). */
struct lru *portal_tokens_new(void);

#endif
