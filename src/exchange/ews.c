/*
 * EWS GetUserPhoto over SOAP (POST /EWS/Exchange.asmx): the request
 * parser and the three answers (photo, error, fault), plus the photo size
 * codes shared with the REST form.
 *
 * Wire facts: reference exchange-wire.md §3.1 (size codes) and §3.2 (SOAP
 * shapes, EWS Managed API strictness). Parsing goes through the hardened
 * xml module; output is built in a capped struct buf. Pure functions, safe
 * on any thread.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "ews.h"
#include "xml/xml.h"

#define NS_SOAP		"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_MESSAGES	"http://schemas.microsoft.com/exchange/services/2006/" \
	"messages"
#define NS_TYPES	"http://schemas.microsoft.com/exchange/services/2006/" \
	"types"
#define NS_XSI		"http://www.w3.org/2001/XMLSchema-instance"
#define NS_XSD		"http://www.w3.org/2001/XMLSchema"

/* §3.1: the Exchange 2013 size codes (types.xsd UserPhotoSizeType). */
const int ews_sizes[EWS_SIZE_COUNT] = {
	48, 64, 96, 120, 240, 360, 432, 504, 648,
};

static const char *const size_names[EWS_SIZE_COUNT] = {
	"HR48x48", "HR64x64", "HR96x96", "HR120x120", "HR240x240",
	"HR360x360", "HR432x432", "HR504x504", "HR648x648",
};

/* --- size codes ----------------------------------------------------- */

/* Reads 1-4 decimal digits without a leading zero; -1 if there are none. */
static int
read_dim(const char **pp)
{
	const char *p = *pp;
	int v = 0, n = 0;

	if (*p == '0')
		return -1;
	while (*p >= '0' && *p <= '9' && n < 5) {
		v = v * 10 + (*p - '0');
		p++;
		n++;
	}
	if (n == 0 || n > 4)
		return -1;
	*pp = p;
	return v;
}

int
ews_size_index(const char *code)
{
	const char *p = code;
	int w, h, i;

	/* §3.1 [I]: parse case-insensitively ("HR96X96", "hr64x64"). */
	if (code == NULL || !str_case_prefix(code, "HR"))
		return -1;
	p += 2;
	if ((w = read_dim(&p)) < 0 || (*p != 'x' && *p != 'X'))
		return -1;
	p++;
	if ((h = read_dim(&p)) < 0 || *p != '\0' || w != h)
		return -1;
	for (i = 0; i < EWS_SIZE_COUNT; i++)
		if (ews_sizes[i] == w)
			return i;
	return -1;
}

const char *
ews_size_name(int index)
{
	if (index < 0 || index >= EWS_SIZE_COUNT)
		return NULL;
	return size_names[index];
}

/* --- request -------------------------------------------------------- */

/* A child in the messages namespace, else one of that name in any. */
static const struct xml_node *
m_child(const struct xml_node *n, const char *name)
{
	const struct xml_node *c;

	if ((c = xml_child(n, NS_MESSAGES, name)) != NULL)
		return c;
	return xml_child(n, NULL, name);
}

ps_err
ews_parse_request(const char *body, size_t len,
    struct ews_photo_request *out)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *env, *b, *op;
	const char *email, *size;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = xml_parse(body, len, &doc)) != PS_OK)
		goto out;
	rc = PS_EINVAL;
	env = xml_root(doc);
	if (strcmp(xml_name(env), "Envelope") != 0 ||
	    strcmp(xml_ns(env), NS_SOAP) != 0) {
		rc = ps_errf(PS_EINVAL, "not a SOAP 1.1 envelope");
		goto out;
	}
	if ((b = xml_child(env, NS_SOAP, "Body")) == NULL) {
		rc = ps_errf(PS_EINVAL, "SOAP envelope without a Body");
		goto out;
	}
	if ((op = xml_first_element(b)) == NULL) {
		rc = ps_errf(PS_EINVAL, "empty SOAP Body");
		goto out;
	}
	(void)str_copy(out->operation, xml_name(op), sizeof(out->operation));
	/*
	 * §2.1/§3.2: EWS sends no SOAPAction header worth trusting; the
	 * operation is the element in the Body.
	 */
	if (strcmp(xml_name(op), "GetUserPhoto") != 0 ||
	    strcmp(xml_ns(op), NS_MESSAGES) != 0) {
		rc = ps_errf(PS_ENOTFOUND, "unsupported EWS operation %s",
		    xml_name(op));
		goto out;
	}
	/* §3.2: m:Email and m:SizeRequested, both required. */
	email = xml_text(m_child(op, "Email"));
	size = xml_text(m_child(op, "SizeRequested"));
	if (email == NULL || *email == '\0') {
		rc = ps_errf(PS_EINVAL, "GetUserPhoto without Email");
		goto out;
	}
	if (size == NULL || *size == '\0') {
		rc = ps_errf(PS_EINVAL, "GetUserPhoto without SizeRequested");
		goto out;
	}
	if (!str_copy(out->email, email, sizeof(out->email)) ||
	    !str_copy(out->size, size, sizeof(out->size))) {
		out->email[0] = out->size[0] = '\0';
		rc = ps_errf(PS_EINVAL, "GetUserPhoto Email or size too long");
		goto out;
	}
	rc = PS_OK;
out:
	xml_free(doc);
	return rc;
}

/* The operation element of a SOAP envelope, or NULL (reason set). */
static const struct xml_node *
soap_operation(const struct xml_doc *doc, ps_err *rc)
{
	const struct xml_node *env, *b, *op;

	env = xml_root(doc);
	if (strcmp(xml_name(env), "Envelope") != 0 ||
	    strcmp(xml_ns(env), NS_SOAP) != 0) {
		*rc = ps_errf(PS_EINVAL, "not a SOAP 1.1 envelope");
		return NULL;
	}
	if ((b = xml_child(env, NS_SOAP, "Body")) == NULL) {
		*rc = ps_errf(PS_EINVAL, "SOAP envelope without a Body");
		return NULL;
	}
	if ((op = xml_first_element(b)) == NULL) {
		*rc = ps_errf(PS_EINVAL, "empty SOAP Body");
		return NULL;
	}
	return op;
}

ps_err
ews_parse_set_photo(const char *body, size_t len, size_t max_image,
    struct ews_set_photo_request *out)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *op;
	const char *email, *content, *p;
	char *packed = NULL;
	size_t n = 0;
	ps_err rc = PS_EINVAL;

	memset(out, 0, sizeof(*out));
	if ((rc = xml_parse_max(body, len, EWS_SET_PHOTO_MAX(max_image),
	    &doc)) != PS_OK)
		goto out;
	if ((op = soap_operation(doc, &rc)) == NULL)
		goto out;
	if (strcmp(xml_name(op), "SetUserPhoto") != 0 ||
	    strcmp(xml_ns(op), NS_MESSAGES) != 0) {
		rc = ps_errf(PS_ENOTFOUND, "unsupported EWS operation %s",
		    xml_name(op));
		goto out;
	}
	email = xml_text(m_child(op, "Email"));
	content = xml_text(m_child(op, "Content"));
	if (email == NULL || *email == '\0') {
		rc = ps_errf(PS_EINVAL, "SetUserPhoto without Email");
		goto out;
	}
	if (content == NULL || *content == '\0') {
		rc = ps_errf(PS_EINVAL, "SetUserPhoto without Content");
		goto out;
	}
	if (!str_copy(out->email, email, sizeof(out->email))) {
		out->email[0] = '\0';
		rc = ps_errf(PS_EINVAL, "SetUserPhoto Email too long");
		goto out;
	}
	/* xs:base64Binary may be wrapped: the white space goes first. */
	packed = malloc(strlen(content) + 1);
	if (packed == NULL) {
		rc = ps_errf(PS_ENOMEM, "no memory for the photo");
		goto out;
	}
	for (p = content; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			packed[n++] = *p;
	packed[n] = '\0';
	if (n / 4 * 3 > max_image + 2) {
		out->len = n / 4 * 3;	/* about; for the refusal */
		rc = ps_errf(PS_ELIMIT, "the photo is larger than %zu bytes",
		    max_image);
		goto out;
	}
	if (b64_decode(packed, n, &out->content, &out->len) != PS_OK) {
		rc = ps_errf(PS_EINVAL, "SetUserPhoto Content is not base64");
		goto out;
	}
	if (out->len > max_image) {
		rc = ps_errf(PS_ELIMIT, "the photo is larger than %zu bytes",
		    max_image);
		goto out;
	}
	rc = PS_OK;
out:
	if (rc != PS_OK) {
		free(out->content);
		out->content = NULL;
		if (rc != PS_ELIMIT)
			out->len = 0;
	}
	free(packed);
	xml_free(doc);
	return rc;
}

void
ews_set_photo_request_cleanup(struct ews_set_photo_request *r)
{
	free(r->content);
	memset(r, 0, sizeof(*r));
}

/* --- responses ------------------------------------------------------ */

/*
 * The envelope up to the opening of the Body. §3.2: ServerVersionInfo
 * carries its version as attributes, in the types namespace.
 */
static ps_err
soap_open(struct buf *b)
{
	return buf_addf(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<s:Envelope xmlns:s=\"" NS_SOAP "\">\n"
	    "  <s:Header>\n"
	    "    <h:ServerVersionInfo MajorVersion=\"%d\""
	    " MinorVersion=\"%d\" MajorBuildNumber=\"%d\""
	    " MinorBuildNumber=\"%d\" Version=\"%s\""
	    " xmlns:h=\"" NS_TYPES "\" xmlns=\"" NS_TYPES "\""
	    " xmlns:xsi=\"" NS_XSI "\" xmlns:xsd=\"" NS_XSD "\" />\n"
	    "  </s:Header>\n"
	    "  <s:Body xmlns:xsi=\"" NS_XSI "\" xmlns:xsd=\"" NS_XSD "\">\n",
	    EWS_VERSION_MAJOR, EWS_VERSION_MINOR, EWS_VERSION_BUILD,
	    EWS_VERSION_REVISION, EWS_VERSION_NAME);
}

static ps_err
soap_close(struct buf *b)
{
	return buf_adds(b, "  </s:Body>\n</s:Envelope>\n");
}

/* Undoes a partial append so that a failed answer leaves `out` as it was. */
static ps_err
rollback(struct buf *b, size_t len, ps_err rc)
{
	if (rc != PS_OK && b->b_data != NULL) {
		b->b_len = len;
		b->b_data[len] = '\0';
	}
	return rc;
}

ps_err
ews_photo_response(struct buf *out, bool has_changed, const void *data,
    size_t len, const char *content_type)
{
	size_t start = out->b_len;
	char *b64 = NULL;
	ps_err rc;

	if ((rc = soap_open(out)) != PS_OK)
		goto out;
	/*
	 * §3.2: GetUserPhotoResponse sits directly in the Body. The EWS
	 * Managed API reads HasChanged, then requires PictureData (empty is
	 * fine), then requires ContentType when PictureData is not empty.
	 */
	rc = buf_addf(out,
	    "    <GetUserPhotoResponse ResponseClass=\"Success\""
	    " xmlns=\"" NS_MESSAGES "\">\n"
	    "      <ResponseCode>NoError</ResponseCode>\n"
	    "      <HasChanged>%s</HasChanged>\n"
	    "      <PictureData>", has_changed ? "true" : "false");
	if (rc != PS_OK)
		goto out;
	if (len > 0) {
		b64 = b64_encode(data, len, false);
		if ((rc = buf_adds(out, b64)) != PS_OK)
			goto out;
	}
	if ((rc = buf_adds(out, "</PictureData>\n")) != PS_OK)
		goto out;
	if (len > 0) {
		if (content_type == NULL || *content_type == '\0')
			content_type = "image/jpeg";
		if ((rc = buf_adds(out, "      <ContentType>")) != PS_OK ||
		    (rc = xml_add_text(out, content_type)) != PS_OK ||
		    (rc = buf_adds(out, "</ContentType>\n")) != PS_OK)
			goto out;
	}
	if ((rc = buf_adds(out, "    </GetUserPhotoResponse>\n")) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	free(b64);
	return rollback(out, start, rc);
}

ps_err
ews_error_response(struct buf *out, const char *response_code,
    const char *message)
{
	size_t start = out->b_len;
	ps_err rc;

	/*
	 * §3.2: for ResponseClass="Error" the EWS Managed API reads
	 * MessageText, ResponseCode and DescriptiveLinkKey in that order and
	 * skips the rest. HasChanged follows because the schema requires it.
	 */
	if ((rc = soap_open(out)) != PS_OK ||
	    (rc = buf_adds(out,
	    "    <GetUserPhotoResponse ResponseClass=\"Error\""
	    " xmlns=\"" NS_MESSAGES "\">\n"
	    "      <MessageText>")) != PS_OK ||
	    (rc = xml_add_text(out, message ? message : "")) != PS_OK ||
	    (rc = buf_adds(out, "</MessageText>\n      <ResponseCode>")) !=
	    PS_OK ||
	    (rc = xml_add_text(out, response_code ? response_code :
	    "ErrorInternalServerError")) != PS_OK ||
	    (rc = buf_adds(out, "</ResponseCode>\n"
	    "      <DescriptiveLinkKey>0</DescriptiveLinkKey>\n"
	    "      <HasChanged>false</HasChanged>\n"
	    "    </GetUserPhotoResponse>\n")) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}

ps_err
ews_set_photo_response(struct buf *out, const char *response_code,
    const char *message)
{
	size_t start = out->b_len;
	ps_err rc;

	if ((rc = soap_open(out)) != PS_OK)
		goto out;
	if (response_code == NULL)
		rc = buf_adds(out,
		    "    <SetUserPhotoResponse ResponseClass=\"Success\""
		    " xmlns=\"" NS_MESSAGES "\">\n"
		    "      <ResponseCode>NoError</ResponseCode>\n"
		    "    </SetUserPhotoResponse>\n");
	else if ((rc = buf_adds(out,
	    "    <SetUserPhotoResponse ResponseClass=\"Error\""
	    " xmlns=\"" NS_MESSAGES "\">\n"
	    "      <MessageText>")) == PS_OK &&
	    (rc = xml_add_text(out, message ? message : "")) == PS_OK &&
	    (rc = buf_adds(out, "</MessageText>\n      <ResponseCode>")) ==
	    PS_OK &&
	    (rc = xml_add_text(out, response_code)) == PS_OK)
		rc = buf_adds(out, "</ResponseCode>\n"
		    "      <DescriptiveLinkKey>0</DescriptiveLinkKey>\n"
		    "    </SetUserPhotoResponse>\n");
	if (rc != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}

ps_err
ews_fault(struct buf *out, bool client, const char *message)
{
	size_t start = out->b_len;
	ps_err rc;

	if ((rc = buf_addf(out,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<s:Envelope xmlns:s=\"" NS_SOAP "\">\n"
	    "  <s:Body>\n"
	    "    <s:Fault>\n"
	    "      <faultcode>%s</faultcode>\n"
	    "      <faultstring xml:lang=\"en-US\">",
	    client ? "s:Client" : "s:Server")) != PS_OK ||
	    (rc = xml_add_text(out, message ? message : "")) != PS_OK ||
	    (rc = buf_adds(out, "</faultstring>\n"
	    "    </s:Fault>\n"
	    "  </s:Body>\n"
	    "</s:Envelope>\n")) != PS_OK)
		goto out;
out:
	return rollback(out, start, rc);
}
