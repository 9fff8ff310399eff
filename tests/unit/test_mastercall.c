/*
 * Unit tests of the portal's calls to the master (portal/mastercall.c):
 * how an Autodiscover or GetUserPhoto answer is read, where a redirect
 * leads, and the master's ETag; the sync and diagnose both read answers
 * through these; and the tokens these calls carry, kept for reuse
 * (portal/token.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lru.h"
#include "common/xalloc.h"
#include "pki/pki.h"
#include "portal/mastercall.h"
#include "portal/portal_int.h"
#include "portal/token.h"
#include "t.h"

#define NS_S	"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_AD	"http://schemas.microsoft.com/exchange/2010/Autodiscover"

static const char *
answer(const char *code, const char *target)
{
	static char doc[2048];

	snprintf(doc, sizeof(doc), "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserSettingsResponseMessage xmlns=\"" NS_AD "\"><Response>"
	    "<ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>"
	    "<UserResponse><ErrorCode>%s</ErrorCode><ErrorMessage>m"
	    "</ErrorMessage><RedirectTarget>%s</RedirectTarget>"
	    "<UserSettingErrors/><UserSettings/></UserResponse>"
	    "</UserResponses></Response></GetUserSettingsResponseMessage>"
	    "</s:Body></s:Envelope>", code, target);
	return doc;
}

static void
test_autodiscover_read(void)
{
	struct ad_user_settings us;
	const char *d;
	char why[256];

	is_int(mcall_autodiscover_read(500, "", 0, &us, why, sizeof(why)),
	    AD_ERROR, "HTTP 500: an error");
	is_str(why, "Autodiscover answered HTTP 500", "  says the status");
	is_int(mcall_autodiscover_read(200, "<html/>", 7, &us, why,
	    sizeof(why)), AD_ERROR, "HTML: an error");
	d = answer("InvalidUser", "");
	is_int(mcall_autodiscover_read(200, d, strlen(d), &us, why,
	    sizeof(why)), AD_NO_MAILBOX, "InvalidUser: no mailbox");
	ad_user_settings_cleanup(&us);
	d = answer("ServerBusy", "");
	is_int(mcall_autodiscover_read(200, d, strlen(d), &us, why,
	    sizeof(why)), AD_ERROR, "ServerBusy: an error");
	ad_user_settings_cleanup(&us);
	d = answer("RedirectUrl", "https://b.example/autodiscover/"
	    "autodiscover.svc");
	is_int(mcall_autodiscover_read(200, d, strlen(d), &us, why,
	    sizeof(why)), AD_REDIRECT_URL, "RedirectUrl");
	is_str(us.redirect_target, "https://b.example/autodiscover/"
	    "autodiscover.svc", "  its target");
	ad_user_settings_cleanup(&us);
}

static void
test_redirect(void)
{
	struct store_webapp w = { 0 };
	char email[64] = "u@contoso.com", *url;

	ok(mcall_redirect(&w, AD_REDIRECT_ADDRESS, "v@fabrikam.com", email,
	    sizeof(email), &url) == PS_OK, "RedirectAddress");
	is_str(email, "v@fabrikam.com", "  the new address");
	is_str(url, "https://autodiscover.fabrikam.com/autodiscover/"
	    "autodiscover.svc", "  asked at its domain");
	free(url);
	strcpy(w.autodiscover_domain, "ad.example:8443");
	ok(mcall_redirect(&w, AD_REDIRECT_ADDRESS, "x@contoso.com", email,
	    sizeof(email), &url) == PS_OK && strcmp(url, "https://"
	    "ad.example:8443/autodiscover/autodiscover.svc") == 0,
	    "RedirectAddress with --autodiscover-domain: asked there");
	free(url);
	is_int(mcall_redirect(&w, AD_REDIRECT_ADDRESS, "not an address",
	    email, sizeof(email), &url), PS_EINVAL, "a target that is no "
	    "address");
	is_str(email, "x@contoso.com", "  leaves the address");
	ok(mcall_redirect(&w, AD_REDIRECT_URL, "https://c.example/a", email,
	    sizeof(email), &url) == PS_OK && strcmp(url,
	    "https://c.example/a") == 0, "RedirectUrl: that URL");
	free(url);
}

static void
test_photo_read(void)
{
	char why[256];

	is_int(mcall_photo_read(200, "image/jpeg", -1, why, sizeof(why)),
	    MCALL_PHOTO_NEW, "200 image: a photo");
	is_int(mcall_photo_read(200, "text/html", -1, why, sizeof(why)),
	    MCALL_PHOTO_ERROR, "200 HTML: an error");
	is_str(why, "the answer is text/html, not an image", "  says why");
	is_int(mcall_photo_read(304, "", -1, why, sizeof(why)),
	    MCALL_PHOTO_UNCHANGED, "304: unchanged");
	is_int(mcall_photo_read(404, "", -1, why, sizeof(why)),
	    MCALL_PHOTO_NONE, "404: no photo");
	is_int(mcall_photo_read(429, "", 600, why, sizeof(why)),
	    MCALL_PHOTO_BUSY, "429: busy");
	is_str(why, "the master is busy (HTTP 429, retry after 600s)",
	    "  with Retry-After");
	is_int(mcall_photo_read(503, "", -1, why, sizeof(why)),
	    MCALL_PHOTO_BUSY, "503: busy");
	is_int(mcall_photo_read(401, "", -1, why, sizeof(why)),
	    MCALL_PHOTO_ERROR, "401: an error");
	is_str(why, "the master answered HTTP 401", "  says the status");
}

static void
test_etag(void)
{
	char out[64];

	mcall_etag("\"abc\"", out, sizeof(out));
	is_str(out, "abc", "quotes stripped");
	mcall_etag("W/\"abc\"", out, sizeof(out));
	is_str(out, "abc", "weak prefix stripped");
	mcall_etag("abc", out, sizeof(out));
	is_str(out, "abc", "unquoted kept");
	mcall_etag("", out, sizeof(out));
	is_str(out, "", "none");
}

/*
 * A kept token is the one returned until it nears its end: after the
 * web application's key changes, a kept token still carries the first
 * key's signature, and one minted without the map the new key's.
 */
static void
test_tokens_kept(void)
{
	struct pki_cert_spec spec = { .common_name = "portal", .days = 1 };
	struct portal_token_pick pick = { .realm = "fabrikam",
	    .authority = "mail.contoso.com" };
	struct pki_key *key1 = NULL, *key2 = NULL;
	unsigned char *cert1 = NULL, *cert2 = NULL;
	size_t len1 = 0, len2 = 0;
	struct webapp_ctx app;
	struct lru *tokens = portal_tokens_new();
	char *app1 = NULL, *app2 = NULL, *app3 = NULL, *u1 = NULL, *u2 = NULL,
	    *u3 = NULL;

	ok(pki_key_generate(&key1) == PS_OK && pki_key_generate(&key2) ==
	    PS_OK && pki_cert_create(key1, &spec, NULL, NULL, 0, &cert1,
	    &len1) == PS_OK && pki_cert_create(key2, &spec, NULL, NULL, 0,
	    &cert2, &len2) == PS_OK, "two signing keys and certificates");
	memset(&app, 0, sizeof(app));
	app.w.id = 1;
	snprintf(app.w.realm, sizeof(app.w.realm), "contoso");
	app.s2s_key = key1;
	app.s2s_cert = cert1;
	app.s2s_cert_len = len1;
	ok(portal_token_mint(&app, &pick, NULL, tokens, &app1) == PS_OK &&
	    portal_token_mint(&app, &pick, "test1@contoso.com", tokens, &u1) ==
	    PS_OK, "an app-only token and a user's, kept");
	app.s2s_key = key2;
	app.s2s_cert = cert2;
	app.s2s_cert_len = len2;
	ok(portal_token_mint(&app, &pick, NULL, tokens, &app2) == PS_OK &&
	    app1 && app2 && strcmp(app1, app2) == 0,
	    "the app-only token is kept: the next call gets the same one");
	ok(portal_token_mint(&app, &pick, "test1@contoso.com", tokens, &u2) ==
	    PS_OK && u1 && u2 && strcmp(u1, u2) == 0,
	    "the user's token is kept");
	ok(portal_token_mint(&app, &pick, NULL, NULL, &app3) == PS_OK &&
	    app1 && app3 && strcmp(app1, app3) != 0 &&
	    portal_token_mint(&app, &pick, "test1@contoso.com", NULL, &u3) ==
	    PS_OK && u1 && u3 && strcmp(u1, u3) != 0,
	    "without the map, each is minted (with the new key)");
	free(app1);
	free(app2);
	free(app3);
	free(u1);
	free(u2);
	free(u3);
	lru_free(tokens);
	free(cert1);
	free(cert2);
	pki_key_free(key1);
	pki_key_free(key2);
}

int main(void);

int
main(void)
{
	test_autodiscover_read();
	test_redirect();
	test_photo_read();
	test_etag();
	test_tokens_kept();
	return done();
}
