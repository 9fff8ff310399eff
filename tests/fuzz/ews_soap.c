/*
 * Fuzz target: EWS requests over SOAP (ews_parse) and the answers built
 * from what they hold. Whatever arrives, a request that parses names an
 * operation, and each answer the master would build from it (the
 * operation's own, or ErrorInvalidOperation under the request's element
 * name) is well-formed XML; one that does not parse leaves no operation
 * the server would act on. The same body as a SetUserPhoto request
 * (ews_parse_set_photo, with a small image limit): one that parses names
 * an address and an image within the limit.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xalloc.h"
#include "exchange/ews.h"
#include "fuzz.h"
#include "xml/xml.h"

/* The answer in `b` must parse; it is then emptied for the next. */
static void
check_xml(struct buf *b, ps_err rc)
{
	struct xml_doc *d;

	if (rc != PS_OK)
		abort();
	if (xml_parse(b->b_data, b->b_len, &d) != PS_OK)
		abort();
	xml_free(d);
	buf_reset(b);
}

#define SET_PHOTO_MAX_IMAGE	4096

static void
check_set_photo(const uint8_t *data, size_t size)
{
	struct ews_set_photo_request sp;
	ps_err rc;

	memset(&sp, 0, sizeof(sp));
	rc = ews_parse_set_photo((const char *)data, size, SET_PHOTO_MAX_IMAGE,
	    &sp);
	if (rc == PS_OK && (sp.email[0] == '\0' ||
	    memchr(sp.email, '\0', sizeof(sp.email)) == NULL ||
	    sp.len > SET_PHOTO_MAX_IMAGE || (sp.len > 0 && sp.content == NULL)))
		abort();
	ews_set_photo_request_cleanup(&sp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ews_request *r = xcalloc(1, sizeof(*r));
	struct ews_person p;
	struct buf b;

	check_set_photo(data, size);
	buf_init(&b, 4 * 1024 * 1024);
	if (ews_parse((const char *)data, size, r) != PS_OK)
		goto out;
	if (r->op_name[0] == '\0')
		abort();
	check_xml(&b, ews_operation_error(&b, r->op_name,
	    "ErrorInvalidOperation", r->op_name));
	switch (r->op) {
	case EWS_OP_GET_FOLDER:
		if (r->folder.n == 0 || r->folder.n > EWS_FOLDER_IDS_MAX)
			abort();
		check_xml(&b, ews_folder_response(&b, &r->folder,
		    "a@b.example"));
		break;
	case EWS_OP_FIND_ITEM:
		if (r->folder.n == 0 || r->folder.n > EWS_FOLDER_IDS_MAX)
			abort();
		check_xml(&b, ews_find_item_response(&b, &r->folder,
		    "a@b.example"));
		break;
	case EWS_OP_CONVERT_ID:
		if (r->convert.n == 0 || r->convert.n > EWS_CONVERT_IDS_MAX)
			abort();
		check_xml(&b, ews_convert_response(&b, &r->convert,
		    "a@b.example"));
		break;
	case EWS_OP_RESOLVE_NAMES:
		if (strlen(r->resolve.query) > EWS_RESOLVE_QUERY_MAX)
			abort();
		/* The entry itself as a person's name and address. */
		p.email = r->resolve.query;
		p.name = r->resolve.query;
		(void)ews_resolve_match(r->resolve.query, r->resolve.exact,
		    p.email, p.name);
		check_xml(&b, ews_resolve_response(&b, &p, 1, false,
		    r->resolve.full_contact));
		break;
	case EWS_OP_GET_USER_PHOTO:
		if (r->photo.email[0] == '\0' || r->photo.size[0] == '\0')
			abort();
		(void)ews_size_index(r->photo.size);
		check_xml(&b, ews_error_response(&b, "ErrorInvalidPhotoSize",
		    r->photo.email));
		break;
	default:
		break;
	}
out:
	buf_cleanup(&b);
	free(r);
	return 0;
}
