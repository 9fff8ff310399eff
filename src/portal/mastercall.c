/*
 * The portal's calls to the master (mastercall.h): every request the
 * sync and diagnose send, and how they read the answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "mastercall.h"
#include "token.h"

#define XML_TYPE	"Content-Type: text/xml; charset=utf-8"

/* What Autodiscover is asked for (reference §2.4). */
static const char *const ad_settings[] = {
	"ExternalPhotosUrl", "InternalPhotosUrl", "ExternalEcpPhotoUrl",
	"InternalEcpPhotoUrl", "ExternalEwsUrl",
};
#define N_AD_SETTINGS	(sizeof(ad_settings) / sizeof(*ad_settings))

void
mcall_cleanup(struct mcall *m)
{
	size_t i;

	if (m->headers) {
		for (i = 0; m->headers[i]; i++)
			xfree_secret(m->headers[i], strlen(m->headers[i]));
		free(m->headers);
	}
	free(m->url);
	buf_cleanup(&m->body);
	memset(m, 0, sizeof(*m));
}

/* Tokens go over https only, unless the web application allows http. */
static ps_err
url_ok(const struct store_webapp *w, const char *url)
{
	if (str_case_prefix(url, "https://") || (w->allow_oauth_http &&
	    str_case_prefix(url, "http://")))
		return PS_OK;
	return ps_errf(PS_EINVAL, "refusing OAuth over plain HTTP to %s "
	    "(allow-oauth-over-http is off)", url);
}

/*
 * Starts `m`: the URL, a token acting as `email` (NULL: app-only) and
 * its Authorization header, and `extra` headers (NULL-terminated).
 */
static ps_err
start(struct mcall *m, const struct webapp_ctx *app,
    const struct portal_issuers *issuers, struct lru *tokens,
    const char *method, const char *url, const char *email,
    const char *extra1, const char *extra2, size_t max_bytes)
{
	struct portal_token_pick pick;
	char *token = NULL;
	size_t n = 0;
	ps_err rc;

	memset(m, 0, sizeof(*m));
	buf_init(&m->body, 1024 * 1024 * 8);
	m->method = method;
	/* Every call here only reads (GetUserSettings, GetUserPhoto). */
	m->idempotent = true;
	m->url = xstrdup(url);
	m->max_bytes = max_bytes;
	if ((rc = url_ok(&app->w, url)) != PS_OK)
		goto out;
	/* The issuer, its realm and the audience, as diagnose shows them. */
	if ((rc = portal_token_pick(issuers, url, &pick)) != PS_OK ||
	    (rc = portal_token_mint(app, &pick, email, tokens, &token)) !=
	    PS_OK)
		goto out;
	m->headers = xcalloc(4, sizeof(*m->headers));
	m->headers[n++] = xasprintf("Authorization: Bearer %s", token);
	if (extra1)
		m->headers[n++] = xstrdup(extra1);
	if (extra2)
		m->headers[n++] = xstrdup(extra2);
	rc = PS_OK;
out:
	if (token)
		xfree_secret(token, strlen(token));
	if (rc != PS_OK)
		mcall_cleanup(m);
	return rc;
}

ps_err
mcall_autodiscover(struct mcall *m, const struct webapp_ctx *app,
    const struct portal_issuers *issuers, struct lru *tokens,
    const char *url, const char *email)
{
	ps_err rc;

	if ((rc = start(m, app, issuers, tokens, "POST", url, email,
	    XML_TYPE, NULL, MCALL_MAX_XML)) != PS_OK)
		return rc;
	if ((rc = autodiscover_soap_request(&m->body, url, email,
	    ad_settings, N_AD_SETTINGS)) != PS_OK)
		mcall_cleanup(m);
	return rc;
}

ps_err
mcall_autodiscover_many(struct mcall *m, const struct webapp_ctx *app,
    const struct portal_issuers *issuers, struct lru *tokens,
    const char *url, const char *const *emails, size_t n)
{
	ps_err rc;

	if ((rc = start(m, app, issuers, tokens, "POST", url, NULL, XML_TYPE,
	    NULL, MCALL_MAX_XML_MANY)) != PS_OK)
		return rc;
	if ((rc = autodiscover_soap_request_many(&m->body, url, emails, n,
	    ad_settings, N_AD_SETTINGS)) != PS_OK)
		mcall_cleanup(m);
	return rc;
}

ps_err
mcall_photo(struct mcall *m, const struct webapp_ctx *app,
    const struct portal_issuers *issuers, struct lru *tokens,
    const char *photos_url, const char *mailbox, const char *email,
    const char *master_etag)
{
	size_t n = strlen(photos_url);
	char *enc = http_encode(mailbox), *url, *inm = NULL;
	ps_err rc;

	/* ExternalPhotosUrl is the EWS URL plus "/s" (reference §2.4). */
	url = xasprintf("%.*s/GetUserPhoto?email=%s&size=HR648x648",
	    (int)(n && photos_url[n - 1] == '/' ? n - 1 : n), photos_url,
	    enc);
	if (master_etag && master_etag[0])
		inm = xasprintf("If-None-Match: \"%s\"", master_etag);
	rc = start(m, app, issuers, tokens, "GET", url, email, inm, NULL,
	    MCALL_MAX_PHOTO);
	free(inm);
	free(url);
	free(enc);
	return rc;
}

ps_err
mcall_autodiscover_url(const struct store_webapp *w, const char *email,
    char **url)
{
	return autodiscover_url(w->autodiscover_domain, email, url);
}

enum ad_verdict
mcall_autodiscover_read(long status, const char *body, size_t len,
    struct ad_user_settings *us, char *why, size_t n)
{
	memset(us, 0, sizeof(*us));
	if (status != 200) {
		snprintf(why, n, "Autodiscover answered HTTP %ld", status);
		return AD_ERROR;
	}
	if (autodiscover_soap_parse(body, len, us) != PS_OK) {
		str_copy(why, ps_errmsg(), n);
		return AD_ERROR;
	}
	return autodiscover_verdict(us, why, n);
}

ps_err
mcall_redirect(const struct store_webapp *w, enum ad_verdict v,
    const char *target, char *email, size_t email_size, char **url)
{
	*url = NULL;
	if (v != AD_REDIRECT_ADDRESS) {
		*url = xstrdup(target);
		return PS_OK;
	}
	if (strlen(target) >= email_size || !email_valid(target))
		return ps_errf(PS_EINVAL, "Autodiscover redirected to "
		    "something that is not an address");
	str_copy(email, target, email_size);
	return autodiscover_url(w->autodiscover_domain, email, url);
}

enum mcall_photo_answer
mcall_photo_read(long status, const char *content_type, long retry_after,
    char *why, size_t n)
{
	switch (status) {
	case 200:
		if (str_case_prefix(content_type, "image/"))
			return MCALL_PHOTO_NEW;
		snprintf(why, n, "the answer is %s, not an image",
		    content_type[0] ? content_type : "untyped");
		return MCALL_PHOTO_ERROR;
	case 304:
		return MCALL_PHOTO_UNCHANGED;
	case 404:
		return MCALL_PHOTO_NONE;
	case 429:
	case 503:
		snprintf(why, n, "the master is busy (HTTP %ld, retry after "
		    "%lds)", status, retry_after);
		return MCALL_PHOTO_BUSY;
	default:
		snprintf(why, n, "the master answered HTTP %ld", status);
		return MCALL_PHOTO_ERROR;
	}
}

void
mcall_etag(const char *in, char *out, size_t n)
{
	size_t len;

	if (strncmp(in, "W/", 2) == 0)
		in += 2;
	if (*in == '"')
		in++;
	str_copy(out, in, n);
	len = strlen(out);
	if (len && out[len - 1] == '"')
		out[len - 1] = '\0';
}
