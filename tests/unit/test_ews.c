/*
 * Unit tests of EWS over SOAP: size codes, request parsing (prefix
 * variations, other operations, bad input), the dispatch by operation
 * (GetFolder, ResolveNames, any other), the exact shape of the photo,
 * error, fault, folder, name-resolution and ErrorInvalidOperation
 * answers (reference exchange-wire.md §3.2), and the embedded WSDL
 * against the operations the table answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/ews.h"
#include "xml/xml.h"
#include "t.h"

#define NS_S	"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_M	"http://schemas.microsoft.com/exchange/services/2006/messages"
#define NS_T	"http://schemas.microsoft.com/exchange/services/2006/types"

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
	    "<m:SyncFolderHierarchy xmlns:m=\"" NS_M "\"/></s:Body>"
	    "</s:Envelope>", &r);
	ok(rc == PS_ENOTFOUND, "other operation is ENOTFOUND");
	ok(strstr(ps_errmsg(), "SyncFolderHierarchy") != NULL,
	    "message names SyncFolderHierarchy");
	rc = parse("<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<m:SetUserPhoto xmlns:m=\"" NS_M "\"><m:Email>a@b.example"
	    "</m:Email><m:Content>AAAA</m:Content></m:SetUserPhoto>"
	    "</s:Body></s:Envelope>", &r);
	ok(rc == PS_ENOTFOUND && strstr(ps_errmsg(), "SetUserPhoto"),
	    "SetUserPhoto not offered (§3.3, Exchange 2016+)");
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

static ps_err
parse_all(const char *body, struct ews_request *r)
{
	char *env = xasprintf("<s:Envelope xmlns:s=\"" NS_S "\""
	    " xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\"><s:Body>%s"
	    "</s:Body></s:Envelope>", body);
	ps_err rc = ews_parse(env, strlen(env), r);

	free(env);
	return rc;
}

static void
test_dispatch(void)
{
	struct ews_request *r = xcalloc(1, sizeof(*r));
	struct buf b;
	int i;

	ok(parse_all("<m:GetUserPhoto><m:Email>a@b.example</m:Email>"
	    "<m:SizeRequested>HR48x48</m:SizeRequested></m:GetUserPhoto>",
	    r) == PS_OK && r->op == EWS_OP_GET_USER_PHOTO &&
	    strcmp(r->photo.email, "a@b.example") == 0, "GetUserPhoto");
	ok(parse_all("<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly"
	    "</t:BaseShape></m:FolderShape><m:FolderIds>"
	    "<t:DistinguishedFolderId Id=\"msgfolderroot\"><t:Mailbox>"
	    "<t:EmailAddress>A@B.example</t:EmailAddress></t:Mailbox>"
	    "</t:DistinguishedFolderId><t:FolderId Id=\"AQID\"/>"
	    "</m:FolderIds></m:GetFolder>", r) == PS_OK &&
	    r->op == EWS_OP_GET_FOLDER, "GetFolder");
	is_int((int)r->folder.n, 2, "two folder ids");
	ok(r->folder.ids[0].distinguished && !r->folder.ids[1].distinguished,
	    "distinguished, then a FolderId");
	is_str(r->folder.ids[0].id, "msgfolderroot", "distinguished id");
	is_str(r->folder.ids[0].mailbox, "a@b.example", "mailbox lowered");
	is_str(r->folder.ids[1].id, "AQID", "FolderId as sent");
	ok(parse_all("<m:GetFolder><m:FolderShape/></m:GetFolder>", r) ==
	    PS_EINVAL, "GetFolder without FolderIds");
	ok(parse_all("<m:GetFolder><m:FolderIds/></m:GetFolder>", r) ==
	    PS_EINVAL, "GetFolder with no ids");
	ok(parse_all("<m:GetFolder><m:FolderIds><t:ItemId Id=\"x\"/>"
	    "</m:FolderIds></m:GetFolder>", r) == PS_EINVAL,
	    "GetFolder with an item id");
	buf_init(&b, 1 << 20);
	buf_adds(&b, "<m:GetFolder><m:FolderIds>");
	for (i = 0; i <= EWS_FOLDER_IDS_MAX; i++)
		buf_adds(&b, "<t:DistinguishedFolderId Id=\"inbox\"/>");
	buf_adds(&b, "</m:FolderIds></m:GetFolder>");
	ok(parse_all(buf_str(&b), r) == PS_ELIMIT, "33 folder ids: refused");
	buf_cleanup(&b);

	ok(parse_all("<m:ResolveNames ReturnFullContactData=\"true\">"
	    "<m:UnresolvedEntry> SMTP:Anna@B.example </m:UnresolvedEntry>"
	    "</m:ResolveNames>", r) == PS_OK &&
	    r->op == EWS_OP_RESOLVE_NAMES, "ResolveNames");
	is_str(r->resolve.query, "Anna@B.example", "smtp: dropped, trimmed");
	ok(r->resolve.full_contact && !r->resolve.too_long,
	    "ReturnFullContactData");
	ok(!r->resolve.exact, "not exact");
	ok(parse_all("<m:ResolveNames ReturnFullContactData=\"false\">"
	    "<m:UnresolvedEntry>=smtp:a@b.example</m:UnresolvedEntry>"
	    "</m:ResolveNames>", r) == PS_OK && r->resolve.exact &&
	    strcmp(r->resolve.query, "a@b.example") == 0,
	    "=smtp: (DavMail's equality on mail)");
	ok(parse_all("<m:ResolveNames ReturnFullContactData=\"false\">"
	    "<m:UnresolvedEntry>ann</m:UnresolvedEntry></m:ResolveNames>",
	    r) == PS_OK && !r->resolve.full_contact, "no full contact");
	ok(parse_all("<m:ResolveNames ReturnFullContactData=\"false\"/>", r) ==
	    PS_EINVAL, "ResolveNames without UnresolvedEntry");
	buf_init(&b, 1 << 20);
	buf_adds(&b, "<m:ResolveNames ReturnFullContactData=\"false\">"
	    "<m:UnresolvedEntry>");
	for (i = 0; i < 26; i++)
		buf_adds(&b, "aaaaaaaaaa");
	buf_adds(&b, "</m:UnresolvedEntry></m:ResolveNames>");
	ok(parse_all(buf_str(&b), r) == PS_OK && r->resolve.too_long &&
	    r->resolve.query[0] == '\0', "an entry over 255 bytes: marked");
	buf_cleanup(&b);

	ok(parse_all("<m:SyncFolderHierarchy/>", r) == PS_OK &&
	    r->op == EWS_OP_OTHER, "another operation parses");
	is_str(r->op_name, "SyncFolderHierarchy", "... with its name");
	ok(parse_all("<m:FindItem Traversal=\"Shallow\"><m:ItemShape>"
	    "<t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
	    "<m:ParentFolderIds><t:DistinguishedFolderId Id=\"contacts\"/>"
	    "</m:ParentFolderIds></m:FindItem>", r) == PS_OK &&
	    r->op == EWS_OP_FIND_ITEM && r->folder.n == 1 &&
	    strcmp(r->folder.ids[0].id, "contacts") == 0, "FindItem");
	ok(parse_all("<m:FindItem Traversal=\"Shallow\"/>", r) == PS_EINVAL,
	    "FindItem without ParentFolderIds");
	{
		/* 62 ASCII letters, then a two-byte letter: cut before it. */
		char *name = xasprintf("%s\xc3\xa9Op", "aaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		char *body = xasprintf("<m:%s/>", name);

		ok(parse_all(body, r) == PS_OK && strlen(r->op_name) == 62,
		    "a long name is cut whole");
		free(body);
		free(name);
	}
	ok(parse_all("<q:GetFolder xmlns:q=\"urn:wrong\"/>", r) == PS_OK &&
	    r->op == EWS_OP_OTHER, "GetFolder in a wrong namespace: other");
	free(r);
}

/* The Folders/<kind> of the i-th GetFolderResponseMessage. */
static const struct xml_node *
folder_at(struct xml_doc *d, int i, const char **code)
{
	const struct xml_node *n = xml_path(xml_root(d),
	    "Body/GetFolderResponse/ResponseMessages");
	const struct xml_node *msg = xml_first_element(n);

	while (msg && i-- > 0)
		msg = xml_next_element(msg);
	*code = msg ? xml_text(xml_child(msg, NS_M, "ResponseCode")) : NULL;
	return msg ? xml_first_element(xml_child(msg, NS_M, "Folders")) :
	    NULL;
}

static void
test_folder_response(void)
{
	struct ews_folder_request *req = xcalloc(1, sizeof(*req));
	static const char *const names[] = { "root", "msgfolderroot", "inbox",
	    "calendar", "contacts", "tasks", "archiveroot" };
	const struct xml_node *f;
	struct xml_doc *d;
	const char *code;
	char inbox[64], cal[64];
	struct buf b;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		req->ids[i].distinguished = true;
		str_copy(req->ids[i].id, names[i], sizeof(req->ids[i].id));
	}
	req->n = i;
	buf_init(&b, 1 << 20);
	ok(ews_folder_response(&b, req, "a@b.example") == PS_OK, "built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	ok(xml_child(xml_child(xml_root(d), NS_S, "Header"), NS_T,
	    "ServerVersionInfo") != NULL, "ServerVersionInfo");
	f = folder_at(d, 0, &code);
	ok(f && strcmp(xml_name(f), "Folder") == 0 &&
	    xml_child(f, NS_T, "ParentFolderId") == NULL, "root: no parent");
	f = folder_at(d, 2, &code);
	is_str(code, "NoError", "inbox found");
	is_str(xml_text(xml_child(f, NS_T, "DisplayName")), "Inbox", "Inbox");
	is_str(xml_text(xml_child(f, NS_T, "TotalCount")), "0", "empty");
	is_str(xml_text(xml_child(f, NS_T, "UnreadCount")), "0", "unread 0");
	str_copy(inbox, xml_attr(xml_child(f, NS_T, "FolderId"), "Id"),
	    sizeof(inbox));
	f = folder_at(d, 3, &code);
	is_str(xml_name(f), "CalendarFolder", "calendar's kind");
	ok(xml_child(f, NS_T, "UnreadCount") == NULL,
	    "no UnreadCount in a CalendarFolder (schema order)");
	str_copy(cal, xml_attr(xml_child(f, NS_T, "FolderId"), "Id"),
	    sizeof(cal));
	is_str(xml_name(folder_at(d, 4, &code)), "ContactsFolder", "contacts");
	is_str(xml_name(folder_at(d, 5, &code)), "TasksFolder", "tasks");
	folder_at(d, 6, &code);
	is_str(code, "ErrorFolderNotFound", "no archive");
	ok(strcmp(inbox, cal) != 0, "folders differ");
	xml_free(d);

	/* The ids are read back, for this mailbox only. */
	memset(req, 0, sizeof(*req));
	str_copy(req->ids[0].id, cal, sizeof(req->ids[0].id));
	str_copy(req->ids[1].id, "!!!", sizeof(req->ids[1].id));
	str_copy(req->ids[2].id, "AQID", sizeof(req->ids[2].id));
	req->ids[3].distinguished = true;
	str_copy(req->ids[3].id, "inbox", sizeof(req->ids[3].id));
	str_copy(req->ids[3].mailbox, "c@d.example",
	    sizeof(req->ids[3].mailbox));
	req->n = 4;
	buf_reset(&b);
	ews_folder_response(&b, req, "a@b.example");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	f = folder_at(d, 0, &code);
	is_str(xml_text(xml_child(f, NS_T, "DisplayName")), "Calendar",
	    "a FolderId given out names its folder");
	is_str(xml_attr(xml_child(f, NS_T, "FolderId"), "Id"), cal,
	    "... with the same id");
	folder_at(d, 1, &code);
	is_str(code, "ErrorInvalidIdMalformed", "not base64: malformed");
	folder_at(d, 2, &code);
	is_str(code, "ErrorInvalidIdMalformed", "not ours: malformed");
	folder_at(d, 3, &code);
	is_str(code, "ErrorAccessDenied", "another mailbox's folder");
	xml_free(d);
	buf_reset(&b);
	req->n = 1;
	ews_folder_response(&b, req, "c@d.example");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	folder_at(d, 0, &code);
	is_str(code, "ErrorFolderNotFound", "a FolderId of another mailbox");
	xml_free(d);

	/* FindItem: a folder found holds nothing; the others refused. */
	memset(req, 0, sizeof(*req));
	req->ids[0].distinguished = true;
	str_copy(req->ids[0].id, "contacts", sizeof(req->ids[0].id));
	req->ids[1].distinguished = true;
	str_copy(req->ids[1].id, "archiveroot", sizeof(req->ids[1].id));
	req->n = 2;
	buf_reset(&b);
	ok(ews_find_item_response(&b, req, "a@b.example") == PS_OK,
	    "FindItem built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	{
		const struct xml_node *msg = xml_first_element(xml_path(
		    xml_root(d), "Body/FindItemResponse/ResponseMessages"));
		const struct xml_node *rf = xml_child(msg, NS_M, "RootFolder");

		is_str(xml_attr(msg, "ResponseClass"), "Success", "found");
		is_str(xml_attr(rf, "TotalItemsInView"), "0", "no items");
		is_str(xml_attr(rf, "IncludesLastItemInRange"), "true",
		    "the last");
		ok(xml_child(rf, NS_T, "Items") != NULL &&
		    xml_first_element(xml_child(rf, NS_T, "Items")) == NULL,
		    "Items empty");
		msg = xml_next_element(msg);
		is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
		    "ErrorFolderNotFound", "no archive");
	}
	xml_free(d);
	buf_cleanup(&b);
	free(req);
}

/* The prefix search (exact = false). */
#define EWS_MATCH(q, e, n)	ews_resolve_match(q, false, e, n)

static void
test_resolve(void)
{
	struct ews_person p[EWS_RESOLVE_MAX + 1];
	const struct xml_node *msg, *rs;
	struct xml_doc *d;
	struct buf b;
	int i, n;

	ok(EWS_MATCH("ann", "anna.berg@b.example", "Anna Berg"),
	    "address prefix");
	ok(EWS_MATCH("BERG", "x@b.example", "Anna Berg"),
	    "a word of the name, any case");
	ok(EWS_MATCH("anna b", "x@b.example", "Anna Berg"),
	    "the name's start, across words");
	ok(EWS_MATCH("smith", "x@b.example", "Jones-Smith, Ann"),
	    "after a dash");
	ok(!EWS_MATCH("erg", "x@b.example", "Anna Berg"),
	    "not inside a word");
	ok(!EWS_MATCH("b.example", "anna@b.example", "Anna"),
	    "not the address's domain");
	ok(!EWS_MATCH("", "anna@b.example", "Anna"), "empty: nothing");
	/* "=": whole values only. */
	ok(ews_resolve_match("anna berg", true, "x@b.example", "Anna Berg"),
	    "=: the whole name");
	ok(ews_resolve_match("berg", true, "x@b.example", "Anna Berg"),
	    "=: a whole word");
	ok(ews_resolve_match("X@B.example", true, "x@b.example", "Anna"),
	    "=: the whole address");
	ok(ews_resolve_match("x", true, "x@b.example", "Anna"),
	    "=: the address's local part");
	ok(!ews_resolve_match("ann", true, "anna@b.example", "Anna Berg"),
	    "=: not a prefix of the name");
	ok(!ews_resolve_match("ber", true, "x@b.example", "Anna Berg"),
	    "=: not a prefix of a word");
	ok(!ews_resolve_match("x@b", true, "x@b.example", "Anna"),
	    "=: not a prefix of the address");

	buf_init(&b, 1 << 20);
	ok(ews_resolve_response(&b, NULL, 0, false, false) == PS_OK, "none");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	msg = xml_path(xml_root(d), "Body/ResolveNamesResponse/"
	    "ResponseMessages/ResolveNamesResponseMessage");
	is_str(xml_attr(msg, "ResponseClass"), "Error", "none: Error");
	is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
	    "ErrorNameResolutionNoResults", "none: the code");
	xml_free(d);

	p[0].email = "a&b@c.example";
	p[0].name = "A <B>";
	buf_reset(&b);
	ews_resolve_response(&b, p, 1, false, true);
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed, escaped");
	msg = xml_path(xml_root(d), "Body/ResolveNamesResponse/"
	    "ResponseMessages/ResolveNamesResponseMessage");
	is_str(xml_attr(msg, "ResponseClass"), "Success", "one: Success");
	rs = xml_child(msg, NS_M, "ResolutionSet");
	is_str(xml_attr(rs, "TotalItemsInView"), "1", "one in view");
	is_str(xml_attr(rs, "IncludesLastItemInRange"), "true", "the last");
	is_str(xml_text(xml_path(rs, "Resolution/Mailbox/Name")), "A <B>",
	    "Name");
	is_str(xml_text(xml_path(rs, "Resolution/Mailbox/EmailAddress")),
	    "a&b@c.example", "EmailAddress");
	is_str(xml_text(xml_path(rs, "Resolution/Mailbox/RoutingType")),
	    "SMTP", "RoutingType");
	is_str(xml_text(xml_path(rs, "Resolution/Mailbox/MailboxType")),
	    "Mailbox", "MailboxType");
	is_str(xml_text(xml_path(rs, "Resolution/Contact/EmailAddresses/"
	    "Entry")), "SMTP:a&b@c.example", "the Contact's address");
	xml_free(d);

	for (i = 0; i <= EWS_RESOLVE_MAX; i++) {
		p[i].email = "x@c.example";
		p[i].name = "";
	}
	buf_reset(&b);
	ews_resolve_response(&b, p, EWS_RESOLVE_MAX + 1, false, false);
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	msg = xml_path(xml_root(d), "Body/ResolveNamesResponse/"
	    "ResponseMessages/ResolveNamesResponseMessage");
	is_str(xml_attr(msg, "ResponseClass"), "Warning", "many: Warning");
	is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
	    "ErrorNameResolutionMultipleResults", "many: the code");
	rs = xml_child(msg, NS_M, "ResolutionSet");
	for (n = 0, msg = xml_first_element(rs); msg;
	    msg = xml_next_element(msg))
		n++;
	is_int(n, EWS_RESOLVE_MAX, "at most 100");
	is_str(xml_attr(rs, "IncludesLastItemInRange"), "false", "more");
	ok(xml_path(rs, "Resolution/Contact") == NULL, "no Contact unasked");
	is_str(xml_text(xml_path(rs, "Resolution/Mailbox/Name")),
	    "x@c.example", "no name: the address");
	xml_free(d);
	buf_cleanup(&b);
}

static void
test_operation_error(void)
{
	const struct xml_node *msg;
	struct xml_doc *d;
	struct buf b;

	buf_init(&b, 1 << 20);
	ok(ews_operation_error(&b, "FindItem", "ErrorInvalidOperation",
	    "not offered") == PS_OK, "built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	ok(xml_child(xml_child(xml_root(d), NS_S, "Header"), NS_T,
	    "ServerVersionInfo") != NULL, "ServerVersionInfo");
	msg = xml_path(xml_root(d), "Body/FindItemResponse/ResponseMessages/"
	    "FindItemResponseMessage");
	ok(msg && strcmp(xml_ns(msg), NS_M) == 0, "<op>ResponseMessage");
	is_str(xml_attr(msg, "ResponseClass"), "Error", "Error");
	is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
	    "ErrorInvalidOperation", "the code");
	xml_free(d);
	buf_cleanup(&b);
}

static void
test_convert(void)
{
	struct ews_request *r = xcalloc(1, sizeof(*r));
	struct ews_folder_request *fr = xcalloc(1, sizeof(*fr));
	const struct xml_node *msg, *alt;
	struct xml_doc *d;
	char root[64], *body;
	struct buf b;

	/* The root folder's id, as GetFolder gives it out. */
	fr->ids[0].distinguished = true;
	str_copy(fr->ids[0].id, "root", sizeof(fr->ids[0].id));
	fr->n = 1;
	buf_init(&b, 1 << 20);
	ews_folder_response(&b, fr, "a@b.example");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	str_copy(root, xml_attr(xml_path(xml_root(d), "Body/GetFolderResponse/"
	    "ResponseMessages/GetFolderResponseMessage/Folders/Folder/"
	    "FolderId"), "Id"), sizeof(root));
	xml_free(d);

	body = xasprintf("<m:ConvertId DestinationFormat=\"EwsLegacyId\">"
	    "<m:SourceIds><t:AlternateId Format=\"EwsId\" Id=\"%s\""
	    " Mailbox=\"blah@blah.com\"/><t:AlternatePublicFolderId"
	    " Format=\"EwsId\" FolderId=\"x\"/><t:AlternateId"
	    " Format=\"EntryId\" Id=\"%s\" Mailbox=\"x\"/></m:SourceIds>"
	    "</m:ConvertId>", root, root);
	ok(parse_all(body, r) == PS_OK && r->op == EWS_OP_CONVERT_ID,
	    "ConvertId");
	free(body);
	is_int((int)r->convert.n, 3, "three ids");
	is_str(r->convert.destination, "EwsLegacyId", "destination");
	ok(r->convert.ids[0].alternate && !r->convert.ids[1].alternate,
	    "an AlternateId, then another kind");
	buf_reset(&b);
	ok(ews_convert_response(&b, &r->convert, "a@b.example") == PS_OK,
	    "built");
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "well-formed");
	msg = xml_first_element(xml_path(xml_root(d), "Body/ConvertIdResponse/"
	    "ResponseMessages"));
	is_str(xml_attr(msg, "ResponseClass"), "Success", "ours: Success");
	alt = xml_child(msg, NS_M, "AlternateId");
	is_str(xml_attr(alt, "Mailbox"), "a@b.example", "... its mailbox");
	is_str(xml_attr(alt, "Id"), root, "... the same id");
	is_str(xml_attr(alt, "Format"), "EwsLegacyId", "... in the format");
	msg = xml_next_element(msg);
	is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
	    "ErrorInvalidIdMalformed", "another kind of id: malformed");
	msg = xml_next_element(msg);
	is_str(xml_text(xml_child(msg, NS_M, "ResponseCode")),
	    "ErrorInvalidIdMalformed", "another format: malformed");
	xml_free(d);
	buf_reset(&b);
	r->convert.n = 1;
	ews_convert_response(&b, &r->convert, "c@d.example");
	ok(strstr(buf_str(&b), "ErrorInvalidIdMalformed") != NULL,
	    "another mailbox's id: malformed");
	ok(parse_all("<m:ConvertId><m:SourceIds/></m:ConvertId>", r) ==
	    PS_EINVAL, "no DestinationFormat");
	ok(parse_all("<m:ConvertId DestinationFormat=\"EwsId\"><m:SourceIds/>"
	    "</m:ConvertId>", r) == PS_EINVAL, "no ids");
	buf_cleanup(&b);
	free(fr);
	free(r);
}

/* Operations of the WSDL still answered on another branch only. */
static bool
pending(const char *op)
{
	return strcmp(op, "SetUserPhoto") == 0;
}

static void
test_schema(void)
{
	static const char *const names[] = { "services.wsdl", "messages.xsd",
	    "types.xsd" };
	const struct xml_node *pt, *op;
	struct xml_doc *d;
	const char *doc;
	char msg[96];
	size_t len, i, n = 0;
	bool found;

	for (i = 0; i < 3; i++) {
		doc = ews_schema(names[i], &len);
		snprintf(msg, sizeof(msg), "%s is well-formed", names[i]);
		ok(doc && xml_parse(doc, len, &d) == PS_OK, msg);
		if (doc)
			xml_free(d);
	}
	ok(ews_schema("other.xsd", &len) == NULL, "no other document");
	doc = ews_schema("services.wsdl", &len);
	if (doc == NULL || xml_parse(doc, len, &d) != PS_OK)
		return;
	pt = xml_child(xml_root(d), "http://schemas.xmlsoap.org/wsdl/",
	    "portType");
	/* Each operation of the WSDL is one the table answers ... */
	for (op = xml_first_element(pt); op; op = xml_next_element(op)) {
		const char *name = xml_attr(op, "name");

		n++;
		found = pending(name);
		for (i = 0; ews_operation_names[i] && !found; i++)
			found = strcmp(ews_operation_names[i], name) == 0;
		snprintf(msg, sizeof(msg), "the WSDL's %s is answered", name);
		ok(found, msg);
	}
	/* ... and each the table answers is in the WSDL. */
	for (i = 0; ews_operation_names[i]; i++) {
		found = false;
		for (op = xml_first_element(pt); op && !found;
		    op = xml_next_element(op))
			found = strcmp(xml_attr(op, "name"),
			    ews_operation_names[i]) == 0;
		snprintf(msg, sizeof(msg), "%s is in the WSDL",
		    ews_operation_names[i]);
		ok(found, msg);
	}
	ok(n >= 4, "the WSDL names the operations");
	xml_free(d);
}

int main(void);

int
main(void)
{
	test_sizes();
	test_request();
	test_photo_response();
	test_error_and_fault();
	test_dispatch();
	test_folder_response();
	test_resolve();
	test_operation_error();
	test_convert();
	test_schema();
	return done();
}
