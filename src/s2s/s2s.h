/*
 * Server-to-server OAuth, as Exchange and SharePoint 2013 speak it: the
 * JSON metadata documents each side publishes, and the self-issued tokens
 * (an RS256 actor token with x5t, wrapped in an unsigned outer token that
 * carries the user). The only user of jansson. Wire facts: reference
 * exchange-wire.md §4 ([MS-XOAUTH], [MS-SPS2SAUTH], TokenHelper).
 */
#ifndef PS_S2S_H
#define PS_S2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "pki/pki.h"

#define S2S_EXCHANGE_ID		"00000002-0000-0ff1-ce00-000000000000"
#define S2S_SHAREPOINT_ID	"00000003-0000-0ff1-ce00-000000000000"
#define S2S_MAX_TOKEN		16384
#define S2S_MAX_METADATA	(256 * 1024)
#define S2S_CLOCK_SKEW		300	/* seconds */
/*
 * The longest lifetime (exp - nbf) a token may have, minted or accepted:
 * 12 hours, what SharePoint's TokenHelper gives its high-trust actor and
 * outer tokens (reference exchange-wire.md §4.4). A token valid for
 * longer is a credential that outlives any revocation; it is refused.
 */
#define S2S_MAX_LIFETIME	(12 * 3600)	/* seconds */

/* --- metadata documents --- */

/*
 * Exchange's /autodiscover/metadata/json/1: id, version, name "Exchange",
 * realm, serviceName, issuer, allowedAudiences, keys (usage, keyinfo.x5t as
 * standard base64 of the SHA-1 thumbprint, keyvalue x509Certificate base64
 * DER), endpoints (location = `location_url`).
 */
ps_err	s2s_metadata_exchange(struct buf *out, const char *realm,
	    const unsigned char *cert_der, size_t cert_len,
	    const char *location_url);
/*
 * SharePoint's /_layouts/15/metadata/json/1 shape: issuer
 * "00000003-...@<realm>", keys[].keyValue (type x509certificate, value
 * base64 DER), usage "Signing", name, serviceName, plus realm.
 */
ps_err	s2s_metadata_sharepoint(struct buf *out, const char *realm,
	    const unsigned char *cert_der, size_t cert_len);

struct s2s_cert {
	unsigned char	*der;
	size_t		 len;
	unsigned char	 sha1[20];	/* thumbprint, for x5t */
};

struct s2s_metadata {
	char		*name;		/* "Exchange", or "" */
	char		*service_name;	/* principal id, "0000000x-..." */
	char		*realm;		/* realm GUID (or "*") */
	char		*issuer;	/* "<id>@<realm>" */
	struct s2s_cert	*certs;		/* signing certificates */
	size_t		 n_certs;
};

/*
 * Parses either product's document, key names and enum values compared
 * case-insensitively; the realm comes from "realm" or from the issuer's
 * part after '@'. Refuses (PS_EINVAL, with the reason) documents without
 * an issuer, a realm or at least one signing certificate that parses.
 */
ps_err	s2s_metadata_parse(const char *json, size_t len,
	    struct s2s_metadata *out);
void	s2s_metadata_cleanup(struct s2s_metadata *);

/* --- tokens --- */

/* What the validating side (the master) knows about one partner. */
struct s2s_partner {
	const char		*issuer;	/* "<id>@<realm>" */
	const char		*realm;
	const struct s2s_cert	*certs;
	size_t			 n_certs;
};

struct s2s_expect {
	const char	*client_id;	/* our principal, S2S_EXCHANGE_ID */
	const char	*host;		/* our host name, no port */
	int		 port;		/* our port; "host:port" also ok */
	const char	*realm;		/* our realm; the partner's is ok too */
	int64_t		 now;		/* 0: the current time */
};

/*
 * A token can be bound to the addresses of what it is sent with (the
 * master's change notices, so that a captured one cannot be replayed for
 * another user): the signed token's claim S2S_ADDRESSES_CLAIM holds
 * s2s_addresses_digest() of them.
 */
#define S2S_ADDRESSES_CLAIM	"photosync_addresses_sha256"
#define S2S_ADDRESSES_LEN	44	/* 43 base64url characters, NUL */

/*
 * base64url (no padding) of SHA-256 over the addresses, each in lower
 * case and followed by "\n", in byte order: the same digest whatever the
 * order or case they are given in. PS_EINVAL for none, or an address
 * that is empty or holds a control character; PS_ELIMIT past
 * S2S_MAX_TOKEN bytes of them.
 */
ps_err	s2s_addresses_digest(const char *const *addresses, size_t n,
	    char out[S2S_ADDRESSES_LEN]);

struct s2s_identity {
	char	partner[256];	/* the actor's nameid, "<id>@<realm>" */
	char	smtp[256];	/* user claims, "" when absent */
	char	upn[256];
	char	nameid[256];
	char	user[256];	/* smtp, else upn, else nameid */
	bool	app_only;	/* no user: actor token alone */
	/* The signed token's S2S_ADDRESSES_CLAIM; "" when absent. */
	char	addresses[S2S_ADDRESSES_LEN];
};

/*
 * Validates a bearer token as reference §4.6 says: the outer token may be
 * alg "none" only when it carries an actortoken; the actor must be RS256
 * with an x5t naming a certificate of one of `partners`, and its signature
 * must verify; actor iss and nameid must be that partner's issuer (same
 * realm); outer iss == actor nameid; aud on both exactly
 * "<client_id>/<host[:port]>@<realm>" (realm ours or the partner's); nbf/exp
 * within S2S_CLOCK_SKEW, and each token's exp - nbf (without nbf: exp -
 * now, less the skew) at most S2S_MAX_LIFETIME; trustedfordelegation
 * "true" before user claims are honoured; the signed token's
 * S2S_ADDRESSES_CLAIM, when present, a digest (it is the caller's to
 * compare). PS_OK fills `id`; PS_EAUTH with a one-line reason (never the
 * token) otherwise.
 */
ps_err	s2s_token_validate(const char *token, const struct s2s_expect *,
	    const struct s2s_partner *partners, size_t n_partners,
	    struct s2s_identity *id);

/* The portal side: a token for `audience_host` acting as `user_*`. */
struct s2s_mint {
	const struct pki_key	*key;		/* our signing key */
	const unsigned char	*cert_der;	/* its certificate */
	size_t			 cert_len;
	const char		*client_id;	/* ours: S2S_SHAREPOINT_ID */
	const char		*realm;		/* ours */
	const char		*target_id;	/* S2S_EXCHANGE_ID */
	const char		*target_host;	/* "host" or "host:port" */
	const char		*target_realm;	/* the master's realm */
	const char		*smtp;		/* user's address, or NULL */
	const char		*upn;		/* or NULL */
	int64_t			 now;		/* 0: the current time */
	int			 lifetime;	/* s, to S2S_MAX_LIFETIME */
	/*
	 * An actor token from s2s_actor_mint() with the same key, client,
	 * realms and target, to wrap instead of signing a new one, and when
	 * it expires; NULL: sign one. The actor names only the application,
	 * so one serves every user until it expires: a sender that mints a
	 * token per user saves the RSA signature of each.
	 */
	const char		*actor;
	int64_t			 actor_expires;
	/*
	 * s2s_addresses_digest() of the addresses the token is sent with,
	 * signed into it (the actor token) as S2S_ADDRESSES_CLAIM; NULL:
	 * none. Not with `actor`, which is signed already.
	 */
	const char		*addresses;
};

/*
 * Mints an outer token (alg none) around a signed actor token; with
 * neither smtp nor upn, the actor token alone (app-only, §4.4). With
 * m->actor, the outer token expires with that actor at the latest. The
 * caller frees *token (a bearer credential: wipe it first).
 */
ps_err	s2s_token_mint(const struct s2s_mint *, char **token);

/*
 * The actor token of a user token (trustedfordelegation; smtp and upn
 * are ignored) and when it expires, for later s2s_token_mint() calls
 * through m->actor. The caller frees *actor (wipe it first).
 */
ps_err	s2s_actor_mint(const struct s2s_mint *, char **actor,
	    int64_t *expires);

#endif
