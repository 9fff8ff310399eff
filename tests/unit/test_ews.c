/*
 * Unit tests of EWS GetUserPhoto over SOAP: size codes, request parsing
 * (prefix variations, other operations, bad input) and the exact shape of
 * the photo, error and fault answers (reference exchange-wire.md §3.2);
 * SetUserPhoto's parser and answers (§3.3).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "exchange/ews.h"
#include "xml/xml.h"
#include "t.h"

#define NS_S	"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_M	"http://schemas.microsoft.com/exchange/services/2006/messages"
#define NS_T	"http://schemas.microsoft.com/exchange/services/2006/types"
#define EWS_SET_GET \
	"<soap:Envelope xmlns:soap=\"" NS_S "\" xmlns:m=\"" NS_M "\">" \
	"<soap:Body><m:GetUserPhoto><m:Email>a@b.c</m:Email>" \
	"<m:SizeRequested>HR48x48</m:SizeRequested></m:GetUserPhoto>" \
	"</soap:Body></soap:Envelope>"

static void
test_sizes(void)
{
	int i;

	is_int(EWS_SIZE_COUNT, 9, "nine size codes");
	is_int(ews_sizes[0], 48, "smallest 48");
	is_int(ews_sizes[8], 648, "largest 648");
	is_int(ews_size_index("HR648x648"), 8, "HR648x648");
	is_int(ews_size_index("HR48x48"), 0, "HR48x48");
	is_int(ews_size_index("HR96X96"), 2, "HR96X96 (upper-case X)");
	is_int(ews_size_index("hr64x64"), 1, "lower-case hr");
	is_int(ews_size_index("Hr240X240"), 4, "mixed case");
	is_int(ews_size_index("HR100x100"), -1, "not a code");
	is_int(ews_size_index("HR96x64"), -1, "non-square refused");
	is_int(ews_size_index("HR096x096"), -1, "leading zero refused");
	is_int(ews_size_index("HR96x96 "), -1, "trailing space refused");
	is_int(ews_size_index("HR96"), -1, "truncated refused");
	is_int(ews_size_index("96x96"), -1, "no HR refused");
	is_int(ews_size_index(""), -1, "empty refused");
	is_int(ews_size_index(NULL), -1, "NULL refused");
	is_int(ews_size_index("HR1024x1024"), -1, "2016 codes not offered");
	is_str(ews_size_name(8), "HR648x648", "canonical name 648");
	is_str(ews_size_name(2), "HR96x96", "canonical name 96");
	ok(ews_size_name(9) == NULL && ews_size_name(-1) == NULL,
	    "name out of range");
	for (i = 0; i < EWS_SIZE_COUNT; i++)
		if (ews_size_index(ews_size_name(i)) != i)
			break;
	is_int(i, EWS_SIZE_COUNT, "names round-trip");
}

static ps_err
parse(const char *s, struct ews_photo_request *r)
{
	return ews_parse_request(s, strlen(s), r);
}

static void
test_request(void)
{
	struct ews_photo_request r;
	ps_err rc;

	/* The EWS Managed API shape (§3.2). */
	rc = parse("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope"
	    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
	    " xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\""
	    " xmlns:soap=\"" NS_S "\">\n"
	    "  <soap:Header>\n"
	    "    <t:RequestServerVersion Version=\"Exchange2013\" />\n"
	    "  </soap:Header>\n"
	    "  <soap:Body>\n"
	    "    <m:GetUserPhoto>\n"
	    "      <m:Email>test1@contoso.com</m:Email>\n"
	    "      <m:SizeRequested>HR648x648</m:SizeRequested>\n"
	    "    </m:GetUserPhoto>\n"
	    "  </soap:Body>\n"
	    "</soap:Envelope>\n", &r);
	ok(rc == PS_OK, "EWS Managed API request");
	is_str(r.email, "test1@contoso.com", "email");
	is_str(r.size, "HR648x648", "size as sent");

	/* Default namespace, s: prefix, no header, whitespace. */
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserPhoto xmlns=\"" NS_M "\"><Email> a@b.example </Email>"
	    "<SizeRequested>HR96X96</SizeRequested></GetUserPhoto>"
	    "</s:Body></s:Envelope>", &r);
	ok(rc == PS_OK, "default namespace, no header");
	is_str(r.email, "a@b.example", "email trimmed");
	is_str(r.size, "HR96X96", "size kept as sent");

	/* Odd prefixes, declared late (DavMail/SIPE-like). */
	rc = parse("<x:Envelope xmlns:x=\"" NS_S "\"><x:Body>"
	    "<q:GetUserPhoto xmlns:q=\"" NS_M "\"><q:Email>c@d.example"
	    "</q:Email><q:SizeRequested>HR48x48</q:SizeRequested>"
	    "</q:GetUserPhoto></x:Body></x:Envelope>", &r);
	ok(rc == PS_OK && strcmp(r.email, "c@d.example") == 0,
	    "arbitrary prefixes");

	/* Other operations name their element. */
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<m:FindItem xmlns:m=\"" NS_M "\"/></s:Body></s:Envelope>", &r);
	ok(rc == PS_ENOTFOUND, "other operation is ENOTFOUND");
	ok(strstr(ps_errmsg(), "FindItem") != NULL, "message names FindItem");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<m:SetUserPhoto xmlns:m=\"" NS_M "\"><m:Email>a@b.example"
	    "</m:Email><m:Content>AAAA</m:Content></m:SetUserPhoto>"
	    "</s:Body></s:Envelope>", &r);
	ok(rc == PS_ENOTFOUND && strstr(ps_errmsg(), "SetUserPhoto"),
	    "SetUserPhoto is not GetUserPhoto: it has its own parser");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserPhoto xmlns=\"urn:wrong\"><Email>a@b.example</Email>"
	    "<SizeRequested>HR48x48</SizeRequested></GetUserPhoto>"
	    "</s:Body></s:Envelope>", &r);
	ok(rc == PS_ENOTFOUND, "GetUserPhoto in a wrong namespace");

	/* Bad input. */
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<m:GetUserPhoto xmlns:m=\"" NS_M "\"><m:SizeRequested>HR48x48"
	    "</m:SizeRequested></m:GetUserPhoto></s:Body></s:Envelope>", &r);
	ok(rc == PS_EINVAL, "missing Email");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<m:GetUserPhoto xmlns:m=\"" NS_M "\"><m:Email>a@b.example"
	    "</m:Email></m:GetUserPhoto></s:Body></s:Envelope>", &r);
	ok(rc == PS_EINVAL, "missing SizeRequested");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body/></s:Envelope>",
	    &r);
	ok(rc == PS_EINVAL, "empty Body");
	rc = parse("<s:Envelope xmlns:s=\"urn:not-soap\"><s:Body>"
	    "<m:GetUserPhoto xmlns:m=\"" NS_M "\"/></s:Body></s:Envelope>",
	    &r);
	ok(rc == PS_EINVAL, "not a SOAP envelope");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>", &r);
	ok(rc == PS_EINVAL, "malformed");
	rc = parse("<!DOCTYPE s [<!ENTITY e \"x\">]><s:Envelope xmlns:s=\""
	    NS_S "\"/>", &r);
	ok(rc == PS_EINVAL, "DOCTYPE refused");
	{
		struct buf b;

		buf_init(&b, 1 << 20);
		buf_adds(&b, "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
		    "<m:GetUserPhoto xmlns:m=\"" NS_M "\"><m:Email>");
		for (int i = 0; i < 30; i++)
			buf_adds(&b, "aaaaaaaaaa");	/* 300 > 255 */
		buf_adds(&b, "@b.example</m:Email><m:SizeRequested>HR48x48"
		    "</m:SizeRequested></m:GetUserPhoto></s:Body>"
		    "</s:Envelope>");
		rc = parse(buf_str(&b), &r);
		ok(rc == PS_EINVAL && r.email[0] == '\0',
		    "overlong Email refused");
		buf_cleanup(&b);
	}
	ok(ews_parse_request(NULL, 0, &r) == PS_EINVAL, "no body");
}

/* Checks the envelope and header common to every SOAP answer. */
static const struct xml_node *
check_envelope(struct xml_doc *d, const char *what)
{
	const struct xml_node *env = xml_root(d), *svi;
	char msg[128];

	snprintf(msg, sizeof(msg), "%s: SOAP 1.1 envelope", what);
	ok(strcmp(xml_name(env), "Envelope") == 0 &&
	    strcmp(xml_ns(env), NS_S) == 0, msg);
	svi = xml_child(xml_child(env, NS_S, "Header"), NS_T,
	    "ServerVersionInfo");
	snprintf(msg, sizeof(msg), "%s: ServerVersionInfo attributes", what);
	ok(svi != NULL && xml_attr(svi, "MajorVersion") &&
	    strcmp(xml_attr(svi, "MajorVersion"), "15") == 0 &&
	    strcmp(xml_attr(svi, "MinorVersion"), "0") == 0 &&
	    xml_attr(svi, "MajorBuildNumber") &&
	    xml_attr(svi, "MinorBuildNumber") &&
	    strcmp(xml_attr(svi, "Version"), "Exchange2013") == 0, msg);
	return xml_child(xml_child(env, NS_S, "Body"), NS_M,
	    "GetUserPhotoResponse");
}

/* The local names of the element children, comma-separated. */
static void
child_names(const struct xml_node *n, char *out, size_t len)
{
	const struct xml_node *c;

	out[0] = '\0';
	for (c = xml_first_element(n); c != NULL; c = xml_next_element(c)) {
		if (out[0] != '\0')
			strncat(out, ",", len - strlen(out) - 1);
		strncat(out, xml_name(c), len - strlen(out) - 1);
	}
}

static void
test_photo_response(void)
{
	static const unsigned char jpeg[] = { 0xff, 0xd8, 0xff, 0xe0, 0x00,
	    0x10, 'J', 'F', 'I', 'F', 0x00, 0xff, 0xd9 };
	struct xml_doc *d;
	const struct xml_node *r;
	struct buf b;
	char names[256];
	unsigned char *raw;
	size_t n;

	buf_init(&b, 1 << 20);
	ok(ews_photo_response(&b, true, jpeg, sizeof(jpeg), "image/jpeg") ==
	    PS_OK, "photo response built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	r = check_envelope(d, "photo");
	ok(r != NULL, "GetUserPhotoResponse directly in Body");
	is_str(xml_attr(r, "ResponseClass"), "Success", "ResponseClass");
	child_names(r, names, sizeof(names));
	is_str(names, "ResponseCode,HasChanged,PictureData,ContentType",
	    "children in order");
	is_str(xml_text(xml_child(r, NS_M, "ResponseCode")), "NoError",
	    "NoError");
	is_str(xml_text(xml_child(r, NS_M, "HasChanged")), "true",
	    "HasChanged true");
	is_str(xml_text(xml_child(r, NS_M, "ContentType")), "image/jpeg",
	    "ContentType");
	ok(b64_decode(xml_text(xml_child(r, NS_M, "PictureData")),
	    strlen(xml_text(xml_child(r, NS_M, "PictureData"))), &raw, &n) ==
	    PS_OK && n == sizeof(jpeg) && memcmp(raw, jpeg, n) == 0,
	    "PictureData is the base64 of the photo");
	free(raw);
	xml_free(d);
	ok(strstr(b.b_data, "<PictureData>/9j/") != NULL,
	    "PictureData on the same line as its tag");

	/* Unchanged: HasChanged false, PictureData present and empty. */
	buf_reset(&b);
	ok(ews_photo_response(&b, false, NULL, 0, NULL) == PS_OK,
	    "unchanged response built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	r = check_envelope(d, "unchanged");
	child_names(r, names, sizeof(names));
	is_str(names, "ResponseCode,HasChanged,PictureData",
	    "no ContentType without data");
	is_str(xml_text(xml_child(r, NS_M, "HasChanged")), "false",
	    "HasChanged false");
	is_str(xml_text(xml_child(r, NS_M, "PictureData")), "",
	    "empty PictureData");
	xml_free(d);

	/* Data without a type defaults to JPEG (§3.1). */
	buf_reset(&b);
	ews_photo_response(&b, true, jpeg, sizeof(jpeg), NULL);
	ok(strstr(buf_str(&b), "<ContentType>image/jpeg</ContentType>") !=
	    NULL, "default ContentType");

	/* A cap too small leaves the buffer as it was. */
	buf_cleanup(&b);
	buf_init(&b, 600);
	buf_adds(&b, "keep");
	ok(ews_photo_response(&b, true, jpeg, sizeof(jpeg), NULL) ==
	    PS_ELIMIT, "over the cap");
	is_str(buf_str(&b), "keep", "rolled back");
	buf_cleanup(&b);
}

static void
test_error_and_fault(void)
{
	struct xml_doc *d;
	const struct xml_node *r, *f;
	struct buf b;
	char names[256];

	buf_init(&b, 1 << 16);
	ok(ews_error_response(&b, "ErrorInvalidPhotoSize",
	    "The size <HR7x7> is not valid.") == PS_OK, "error built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	r = check_envelope(d, "error");
	is_str(xml_attr(r, "ResponseClass"), "Error", "ResponseClass Error");
	child_names(r, names, sizeof(names));
	ok(strncmp(names, "MessageText,ResponseCode,DescriptiveLinkKey",
	    strlen("MessageText,ResponseCode,DescriptiveLinkKey")) == 0,
	    "MessageText, ResponseCode, DescriptiveLinkKey first");
	is_str(xml_text(xml_child(r, NS_M, "ResponseCode")),
	    "ErrorInvalidPhotoSize", "response code");
	is_str(xml_text(xml_child(r, NS_M, "MessageText")),
	    "The size <HR7x7> is not valid.", "message escaped and intact");
	xml_free(d);

	buf_reset(&b);
	ok(ews_fault(&b, true, "bad & worse") == PS_OK, "fault built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	f = xml_path(xml_root(d), "Body/Fault");
	ok(f != NULL && strcmp(xml_ns(f), NS_S) == 0, "s:Fault in Body");
	is_str(xml_text(xml_child(f, NULL, "faultcode")), "s:Client",
	    "client fault code");
	is_str(xml_text(xml_child(f, NULL, "faultstring")), "bad & worse",
	    "fault string");
	xml_free(d);
	buf_reset(&b);
	ews_fault(&b, false, "oops");
	ok(strstr(buf_str(&b), "<faultcode>s:Server</faultcode>") != NULL,
	    "server fault code");
	buf_cleanup(&b);
}

/* A SetUserPhoto envelope around `email` and `content` (NULL: none). */
static char *
set_doc(const char *email, const char *content)
{
	struct buf b;

	buf_init(&b, 64 * 1024 * 1024);
	buf_adds(&b, "<soap:Envelope xmlns:soap=\"" NS_S "\" xmlns:m=\""
	    NS_M "\"><soap:Body><m:SetUserPhoto><m:Email>");
	buf_adds(&b, email);
	buf_adds(&b, "</m:Email>");
	if (content) {
		buf_adds(&b, "<m:Content>");
		buf_adds(&b, content);
		buf_adds(&b, "</m:Content>");
	}
	buf_adds(&b, "<m:TypeOfPhoto>UserPhoto</m:TypeOfPhoto>"
	    "</m:SetUserPhoto></soap:Body></soap:Envelope>");
	return buf_take(&b, NULL);
}

static void
test_set_photo(void)
{
	struct ews_set_photo_request r;
	struct ews_photo_request g;
	struct xml_doc *x;
	struct buf out;
	unsigned char *big;
	char *b64, *doc;
	size_t n = 12 * 1024 * 1024;
	ps_err rc;

	doc = set_doc("Test1@contoso.com", "/9j/\n4AA=\n");
	rc = ews_parse_set_photo(doc, strlen(doc), 1024, &r);
	ok(rc == PS_OK && strcmp(r.email, "Test1@contoso.com") == 0 &&
	    r.len == 5 && memcmp(r.content, "\xff\xd8\xff\xe0", 5) == 0,
	    "SetUserPhoto: Email, Content decoded past its line breaks");
	ews_set_photo_request_cleanup(&r);
	ok(ews_parse_request(doc, strlen(doc), &g) == PS_ENOTFOUND &&
	    strcmp(g.operation, "SetUserPhoto") == 0,
	    "GetUserPhoto's parser names the operation");
	free(doc);

	doc = set_doc("a@b.c", NULL);
	rc = ews_parse_set_photo(doc, strlen(doc), 1024, &r);
	ok(rc == PS_EINVAL && strstr(ps_errmsg(), "without Content"),
	    "no Content: refused");
	free(doc);
	doc = set_doc("a@b.c", "!!!!");
	rc = ews_parse_set_photo(doc, strlen(doc), 1024, &r);
	ok(rc == PS_EINVAL && strstr(ps_errmsg(), "base64") && !r.content,
	    "Content not base64: refused");
	free(doc);
	doc = set_doc("a@b.c", "AAAAAAAA");
	rc = ews_parse_set_photo(doc, strlen(doc), 5, &r);
	ok(rc == PS_ELIMIT && r.content == NULL && r.len == 6,
	    "an image over the limit: PS_ELIMIT, its size told");
	free(doc);
	rc = ews_parse_set_photo(EWS_SET_GET, strlen(EWS_SET_GET), 5, &r);
	ok(rc == PS_ENOTFOUND, "another operation: PS_ENOTFOUND");

	/* Past XML_MAX_BYTES and libxml2's 10 MB text node. */
	big = calloc(1, n);
	big[0] = 0xff;
	b64 = b64_encode(big, n, false);
	doc = set_doc("a@b.c", b64);
	rc = ews_parse_set_photo(doc, strlen(doc), n, &r);
	ok(rc == PS_OK && r.len == n && r.content[0] == 0xff,
	    "a 12 MiB image in a 16 MiB document");
	ews_set_photo_request_cleanup(&r);
	rc = ews_parse_set_photo(doc, strlen(doc), n / 2, &r);
	ok(rc == PS_ELIMIT, "the same over a 6 MiB limit: PS_ELIMIT");
	ok(xml_parse(doc, strlen(doc), &x) == PS_ELIMIT && x == NULL,
	    "xml_parse keeps its own 1 MiB limit");
	free(doc);
	free(b64);
	free(big);

	buf_init(&out, 64 * 1024);
	ok(ews_set_photo_response(&out, NULL, NULL) == PS_OK &&
	    strstr(buf_str(&out), "<SetUserPhotoResponse ResponseClass="
	    "\"Success\" xmlns=\"" NS_M "\">") &&
	    strstr(buf_str(&out), "<ResponseCode>NoError</ResponseCode>") &&
	    strstr(buf_str(&out), "ServerVersionInfo"),
	    "SetUserPhotoResponse Success, NoError");
	buf_reset(&out);
	ok(ews_set_photo_response(&out, "ErrorAccessDenied", "a <b>") ==
	    PS_OK && strstr(buf_str(&out), "ResponseClass=\"Error\"") &&
	    strstr(buf_str(&out), "<MessageText>a &lt;b&gt;</MessageText>") &&
	    strstr(buf_str(&out), "<ResponseCode>ErrorAccessDenied<"),
	    "SetUserPhotoResponse Error: MessageText escaped, ResponseCode");
	buf_cleanup(&out);
}

int main(void);

int
main(void)
{
	test_sizes();
	test_request();
	test_photo_response();
	test_error_and_fault();
	test_set_photo();
	return done();
}
