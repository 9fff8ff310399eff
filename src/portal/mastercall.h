/*
 * The portal's calls to the master, built and read in one place: the
 * Autodiscover request (URL, settings asked for, body), the GetUserPhoto
 * URL, the headers with the S2S token, the limits, and what an answer
 * means. The sync (sync.c, on the loop) and diagnose (diagnose.c,
 * blocking) send exactly these requests and read answers with these
 * functions, so what diagnose checks is what the sync does.
 */
#ifndef PS_MASTERCALL_H
#define PS_MASTERCALL_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "exchange/autodiscover.h"
#include "portal_int.h"

#define MCALL_TIMEOUT_MS	10000		/* a whole call */
#define MCALL_MAX_PHOTO		(8u * 1024 * 1024)
#define MCALL_MAX_XML		(512u * 1024)	/* one user's answer */
#define MCALL_MAX_XML_MANY	(MCALL_MAX_XML * 8)	/* AD_MAX_USERS' */

/*
 * One request to the master. Everything is owned: free with
 * mcall_cleanup() (the headers, which carry the token, are wiped).
 */
struct mcall {
	const char	*method;	/* "GET" or "POST" */
	char		*url;
	char		**headers;	/* "Name: value", NULL-terminated */
	struct buf	 body;		/* empty for a GET */
	size_t		 max_bytes;	/* the answer's cap */
	bool		 idempotent;	/* may be sent twice: it only reads
					   (a GET, Autodiscover's POST) */
};

/*
 * Autodiscover (SOAP GetUserSettings) at `url` about `email`, with a
 * token acting as `email`. `tokens` (NULL: none) keeps tokens
 * (token.h). PS_EINVAL (with a sentence) for a URL OAuth may not go to:
 * http unless the web application allows it.
 */
ps_err	mcall_autodiscover(struct mcall *, const struct webapp_ctx *,
	    const struct portal_issuers *, struct lru *tokens,
	    const char *url, const char *email);
/* The same about several addresses (1 to AD_MAX_USERS), app-only. */
ps_err	mcall_autodiscover_many(struct mcall *, const struct webapp_ctx *,
	    const struct portal_issuers *, struct lru *tokens,
	    const char *url, const char *const *emails, size_t n);
/*
 * GetUserPhoto HR648x648 of `mailbox` under `photos_url` (the
 * ExternalPhotosUrl, "<EWS>/s"), acting as `email`; If-None-Match with
 * `master_etag` unless NULL or "".
 */
ps_err	mcall_photo(struct mcall *, const struct webapp_ctx *,
	    const struct portal_issuers *, struct lru *tokens,
	    const char *photos_url, const char *mailbox, const char *email,
	    const char *master_etag);
void	mcall_cleanup(struct mcall *);

/*
 * Where the first Autodiscover question goes for `email`
 * (exchange's autodiscover_url() with the web application's domain).
 */
ps_err	mcall_autodiscover_url(const struct store_webapp *,
	    const char *email, char **url);

/*
 * Reads an Autodiscover answer (HTTP `status`, `body`): a 200 that
 * parses gives autodiscover_verdict()'s verdict and `us` filled (clean
 * up with ad_user_settings_cleanup()); any other status, or an answer
 * that does not parse, is AD_ERROR. `why` gets the sentence the sync
 * logs.
 */
enum ad_verdict mcall_autodiscover_read(long status, const char *body,
	    size_t len, struct ad_user_settings *us, char *why, size_t n);

/*
 * After AD_REDIRECT_ADDRESS or AD_REDIRECT_URL with `target`: the next
 * question's URL (owned) and address (into `email`, which holds the
 * current one). PS_EINVAL for a target that is not an address.
 */
ps_err	mcall_redirect(const struct store_webapp *, enum ad_verdict,
	    const char *target, char *email, size_t email_size, char **url);

/* What a GetUserPhoto answer means. */
enum mcall_photo_answer {
	MCALL_PHOTO_NEW,	/* 200 with an image type */
	MCALL_PHOTO_UNCHANGED,	/* 304 */
	MCALL_PHOTO_NONE,	/* 404: the user has no photo there */
	MCALL_PHOTO_BUSY,	/* 429 or 503 */
	MCALL_PHOTO_ERROR,	/* anything else, a 200 that is no image */
};

/*
 * Reads a GetUserPhoto answer's status and Content-Type; `retry_after`
 * is the answer's Retry-After in seconds (-1: none or not known). `why`
 * gets the sentence the sync logs for BUSY and ERROR.
 */
enum mcall_photo_answer mcall_photo_read(long status,
	    const char *content_type, long retry_after, char *why, size_t n);

/* The master's ETag header without W/ and quotes, into `out`. */
void	mcall_etag(const char *header, char *out, size_t n);

#endif
