/*
 * Fuzz target: the master's Autodiscover, POX (autodiscover_pox) and
 * SOAP GetUserSettings (autodiscover_soap), on one request body each.
 * Whatever arrives, the answer has an HTTP status, is well-formed XML
 * when it has a body, and the outcome's strings are terminated and within
 * their fields; an address the lookup is asked about came from the
 * request.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "fuzz.h"
#include "xml/xml.h"

/* Known mailboxes, one whose name needs escaping, one store failure. */
static ps_err
lookup(void *arg, const char *email, char **display_name)
{
	(void)arg;
	if (email == NULL || strlen(email) > 1024)
		abort();
	if (str_case_eq(email, "test1@contoso.com")) {
		*display_name = xstrdup("Test One");
		return PS_OK;
	}
	if (str_case_eq(email, "test2@contoso.com")) {
		*display_name = xstrdup("Zo\xc3\xab & <Two>");
		return PS_OK;
	}
	if (str_case_eq(email, "broken@contoso.com"))
		return ps_errf(PS_ESTORE, "store is down");
	return PS_ENOTFOUND;
}

static const struct ad_server srv = {
	.base_url = "https://mail.contoso.com",
	.domain = "contoso.com",
	.deployment_id = "0f0c4a8e-2a57-4c39-9d4f-1d6c2d3c9b11",
	.lookup = lookup,
};

static void
check(const struct buf *b, const struct ad_outcome *oc)
{
	struct xml_doc *d;

	if (oc->status < 200 || oc->status > 599 || oc->result == NULL ||
	    memchr(oc->email, '\0', sizeof(oc->email)) == NULL ||
	    memchr(oc->emails, '\0', sizeof(oc->emails)) == NULL)
		abort();
	if (b->b_len == 0)
		return;
	if (xml_parse(b->b_data, b->b_len, &d) != PS_OK)
		abort();
	xml_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ad_outcome oc;
	struct buf b;

	buf_init(&b, 4 * 1024 * 1024);
	memset(&oc, 0, sizeof(oc));
	autodiscover_pox(&srv, (const char *)data, size, &b, &oc);
	check(&b, &oc);
	buf_reset(&b);
	memset(&oc, 0, sizeof(oc));
	autodiscover_soap(&srv, (const char *)data, size, &b, &oc);
	check(&b, &oc);
	if (oc.users > AD_MAX_USERS)
		abort();
	buf_cleanup(&b);
	return 0;
}
