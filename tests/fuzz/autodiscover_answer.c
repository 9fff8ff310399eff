/*
 * Fuzz target: what the portal reads from a master. The Autodiscover
 * SOAP answer (autodiscover_soap_parse and _parse_many, as
 * mcall_autodiscover_read uses them), its verdict and where a redirect
 * leads (autodiscover_url, ad_hops_add), and of a GetUserPhoto answer
 * the ETag (mcall_etag), Content-Type (mcall_photo_read) and Retry-After
 * (xfer_retry_after_parse, on a fixed clock). An answer
 * that parses gives a verdict with its sentence; a redirect target is
 * either refused or gives an https URL of our path on a host name; a
 * request built for a redirected address is well-formed XML; the ETag
 * read is terminated within its buffer and, for a header without quotes
 * or W/, the header itself; a Retry-After is absent (-1) or 0..2^30
 * seconds, and delay-seconds of up to nine digits are their number.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "fuzz.h"
#include "portal/mastercall.h"
#include "xfer/xfer.h"
#include "xml/xml.h"

#define MANY	3

static const char *const settings[] = { "ExternalPhotosUrl",
	"InternalPhotosUrl", "ExternalEcpPhotoUrl", "UserDisplayName" };

static void
check_redirect(const char *target)
{
	struct ad_hops hops = { 0 };
	struct xml_doc *d;
	struct buf b;
	struct url u;
	char *url;

	if (autodiscover_url(NULL, target, &url) != PS_OK) {
		if (url != NULL)
			abort();
		return;
	}
	if (url_parse(url, 0, &u) != PS_OK || !u.https ||
	    strcmp(u.rest, "/autodiscover/autodiscover.svc") != 0)
		abort();
	(void)ad_hops_add(&hops, url, target);
	if (ad_hops_add(&hops, url, target) == PS_OK)
		abort();	/* the same hop twice is a loop */
	buf_init(&b, 1 << 20);
	if (autodiscover_soap_request(&b, url, target, settings,
	    sizeof(settings) / sizeof(settings[0])) == PS_OK) {
		if (xml_parse(b.b_data, b.b_len, &d) != PS_OK)
			abort();
		xml_free(d);
	}
	buf_cleanup(&b);
	ad_hops_cleanup(&hops);
	free(url);
}

static void
check_settings(const struct ad_user_settings *us)
{
	char why[256];
	enum ad_verdict v;

	why[0] = '\0';
	v = autodiscover_verdict(us, why, sizeof(why));
	if (why[0] == '\0' || memchr(why, '\0', sizeof(why)) == NULL)
		abort();
	switch (v) {
	case AD_MAILBOX:
		if (us->photos_url == NULL || us->ecp_photo_url == NULL)
			abort();
		break;
	case AD_REDIRECT_ADDRESS:
	case AD_REDIRECT_URL:
		if (us->redirect_target == NULL)
			abort();
		check_redirect(us->redirect_target);
		break;
	case AD_NO_MAILBOX:
	case AD_ERROR:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ad_user_settings us, many[MANY];
	char why[256], etag[64], *s;
	size_t i, n;
	long wait;

	if (mcall_autodiscover_read(200, (const char *)data, size, &us, why,
	    sizeof(why)) != AD_ERROR || us.error_code != NULL)
		check_settings(&us);
	ad_user_settings_cleanup(&us);
	if (autodiscover_soap_parse_many((const char *)data, size, many,
	    MANY) == PS_OK)
		for (i = 0; i < MANY; i++)
			check_settings(&many[i]);
	for (i = 0; i < MANY; i++)
		ad_user_settings_cleanup(&many[i]);

	/* The input as a GetUserPhoto answer's ETag and Content-Type. */
	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	memset(etag, 'x', sizeof(etag));
	mcall_etag(s, etag, sizeof(etag));
	n = strnlen(etag, sizeof(etag));
	if (n == sizeof(etag))
		abort();
	/* Without quotes or W/, the tag is the header itself (cut). */
	if (strchr(s, '"') == NULL && strncmp(s, "W/", 2) != 0 &&
	    strncmp(etag, s, n) != 0)
		abort();
	why[0] = '\0';
	if (mcall_photo_read(200, s, -1, why, sizeof(why)) ==
	    MCALL_PHOTO_ERROR && why[0] == '\0')
		abort();
	wait = xfer_retry_after_parse(s, size, 784111777);
	if (wait < -1 || wait > 1L << 30 || (size > 0 && size <= 9 &&
	    strspn(s, "0123456789") == size && wait != atol(s)))
		abort();
	free(s);
	return 0;
}
