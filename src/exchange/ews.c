/*
 * EWS over SOAP (POST /EWS/Exchange.asmx): the request parser, which
 * dispatches on the operation's element through one table (GetUserPhoto,
 * GetFolder, ResolveNames, ConvertId; anything else is named for the
 * ErrorInvalidOperation answer), the answers of each operation, the
 * fault, and the photo size codes shared with the REST form.
 *
 * Wire facts: reference exchange-wire.md §3.1 (size codes) and §3.2 (SOAP
 * shapes, EWS Managed API strictness). Parsing goes through the hardened
 * xml module; output is built in a capped struct buf. Pure functions, safe
 * on any thread.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "pki/pki.h"
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

/* --- request ------------------------------------------------------- */

/* A child in the messages namespace, else one of that name in any. */
static const struct xml_node *
m_child(const struct xml_node *n, const char *name)
{
	const struct xml_node *c;

	if ((c = xml_child(n, NS_MESSAGES, name)) != NULL)
		return c;
	return xml_child(n, NULL, name);
}

/* A child in the types namespace, else one of that name in any. */
static const struct xml_node *
t_child(const struct xml_node *n, const char *name)
{
	const struct xml_node *c;

	if ((c = xml_child(n, NS_TYPES, name)) != NULL)
		return c;
	return xml_child(n, NULL, name);
}

static ps_err
parse_get_user_photo(const struct xml_node *op, struct ews_request *out)
{
	struct ews_photo_request *p = &out->photo;
	const char *email, *size;

	/* §3.2: m:Email and m:SizeRequested, both required. */
	email = xml_text(m_child(op, "Email"));
	size = xml_text(m_child(op, "SizeRequested"));
	if (email == NULL || *email == '\0')
		return ps_errf(PS_EINVAL, "GetUserPhoto without Email");
	if (size == NULL || *size == '\0')
		return ps_errf(PS_EINVAL, "GetUserPhoto without SizeRequested");
	if (!str_copy(p->email, email, sizeof(p->email)) ||
	    !str_copy(p->size, size, sizeof(p->size))) {
		memset(p, 0, sizeof(*p));
		return ps_errf(PS_EINVAL, "GetUserPhoto Email or size too long");
	}
	return PS_OK;
}

/*
 * Folder ids (t:DistinguishedFolderId with Id and an optional
 * t:Mailbox/t:EmailAddress, or t:FolderId with Id) in `ids`, the
 * operation's FolderIds or ParentFolderIds, into `f`.
 */
static ps_err
parse_folder_ids(const struct xml_node *ids, const char *op,
    struct ews_folder_request *f)
{
	const struct xml_node *c;
	const char *id, *mb;

	if (ids == NULL)
		return ps_errf(PS_EINVAL, "%s without folder ids", op);
	for (c = xml_first_element(ids); c != NULL; c = xml_next_element(c)) {
		struct ews_folder_ref *ref;
		bool dist = strcmp(xml_name(c), "DistinguishedFolderId") == 0;

		if (!dist && strcmp(xml_name(c), "FolderId") != 0)
			return ps_errf(PS_EINVAL, "%s: unexpected %s among its "
			    "folder ids", op, xml_name(c));
		if (f->n == EWS_FOLDER_IDS_MAX)
			return ps_errf(PS_ELIMIT, "%s names more than %d "
			    "folders", op, EWS_FOLDER_IDS_MAX);
		ref = &f->ids[f->n];
		ref->distinguished = dist;
		if ((id = xml_attr(c, "Id")) == NULL || *id == '\0')
			return ps_errf(PS_EINVAL, "%s: a folder id without Id",
			    op);
		mb = dist ? xml_text(t_child(t_child(c, "Mailbox"),
		    "EmailAddress")) : NULL;
		if (!str_copy(ref->id, id, sizeof(ref->id)) ||
		    !str_copy(ref->mailbox, mb ? mb : "",
		    sizeof(ref->mailbox)))
			return ps_errf(PS_EINVAL, "%s: a folder id or mailbox "
			    "is too long", op);
		str_lower(ref->mailbox);
		f->n++;
	}
	if (f->n == 0)
		return ps_errf(PS_EINVAL, "%s with no folder ids", op);
	return PS_OK;
}

/*
 * [MS-OXWSFOLD] GetFolder: m:FolderShape (every folder is answered with
 * the same few properties, whatever the shape asks) and m:FolderIds.
 */
static ps_err
parse_get_folder(const struct xml_node *op, struct ews_request *out)
{
	return parse_folder_ids(m_child(op, "FolderIds"), "GetFolder",
	    &out->folder);
}

/*
 * [MS-OXWSSRCH] FindItem: m:ParentFolderIds; the shape, the view, the
 * restriction and the order do not matter to folders that hold nothing.
 */
static ps_err
parse_find_item(const struct xml_node *op, struct ews_request *out)
{
	return parse_folder_ids(m_child(op, "ParentFolderIds"), "FindItem",
	    &out->folder);
}

/*
 * [MS-OXWSRSLNM] ResolveNames: the attribute ReturnFullContactData and
 * m:UnresolvedEntry. Exchange also reads "=" before an entry as "whole
 * values only" and "smtp:" before an address (DavMail sends both,
 * "=smtp:a@b" for an LDAP equality on mail).
 */
static ps_err
parse_resolve_names(const struct xml_node *op, struct ews_request *out)
{
	struct ews_resolve_request *rs = &out->resolve;
	const char *full = xml_attr(op, "ReturnFullContactData");
	const char *q = xml_text(m_child(op, "UnresolvedEntry"));

	if (q == NULL)
		return ps_errf(PS_EINVAL, "ResolveNames without "
		    "UnresolvedEntry");
	rs->full_contact = full != NULL && (strcmp(full, "true") == 0 ||
	    strcmp(full, "1") == 0);
	if (*q == '=') {
		rs->exact = true;
		q++;
	}
	if (str_case_prefix(q, "smtp:"))
		q += 5;
	if (strlen(q) > EWS_RESOLVE_QUERY_MAX) {
		rs->too_long = true;
		return PS_OK;
	}
	str_copy(rs->query, q, sizeof(rs->query));
	return PS_OK;
}

/*
 * [MS-OXWSCNVID] ConvertId: the attribute DestinationFormat and
 * m:SourceIds with t:AlternateId (Format, Id, Mailbox) elements; other
 * kinds of id are kept to be answered as not convertible.
 */
static ps_err
parse_convert_id(const struct xml_node *op, struct ews_request *out)
{
	struct ews_convert_request *cv = &out->convert;
	const char *dest = xml_attr(op, "DestinationFormat");
	const struct xml_node *ids, *c;

	if (dest == NULL || !str_copy(cv->destination, dest,
	    sizeof(cv->destination)))
		return ps_errf(PS_EINVAL, "ConvertId without a valid "
		    "DestinationFormat");
	if ((ids = m_child(op, "SourceIds")) == NULL)
		return ps_errf(PS_EINVAL, "ConvertId without SourceIds");
	for (c = xml_first_element(ids); c != NULL; c = xml_next_element(c)) {
		struct ews_convert_ref *ref;
		const char *fmt = xml_attr(c, "Format");
		const char *id = xml_attr(c, "Id");

		if (cv->n == EWS_CONVERT_IDS_MAX)
			return ps_errf(PS_ELIMIT, "ConvertId asks for more "
			    "than %d ids", EWS_CONVERT_IDS_MAX);
		ref = &cv->ids[cv->n++];
		ref->alternate = strcmp(xml_name(c), "AlternateId") == 0;
		/* Too long for any of ours: answered as malformed. */
		if (!str_copy(ref->format, fmt ? fmt : "", sizeof(ref->format)) ||
		    !str_copy(ref->id, id ? id : "", sizeof(ref->id)))
			ref->alternate = false;
	}
	if (cv->n == 0)
		return ps_errf(PS_EINVAL, "ConvertId with no ids");
	return PS_OK;
}

/* One row per operation: what the master answers, and nothing else. */
static const struct ews_op_def {
	const char	*name;
	enum ews_op	 op;
	ps_err		(*parse)(const struct xml_node *, struct ews_request *);
} ews_ops[] = {
	{ "GetUserPhoto", EWS_OP_GET_USER_PHOTO, parse_get_user_photo },
	{ "GetFolder", EWS_OP_GET_FOLDER, parse_get_folder },
	{ "ResolveNames", EWS_OP_RESOLVE_NAMES, parse_resolve_names },
	{ "ConvertId", EWS_OP_CONVERT_ID, parse_convert_id },
	{ "FindItem", EWS_OP_FIND_ITEM, parse_find_item },
};

const char *const ews_operation_names[] = {
	"GetUserPhoto", "GetFolder", "ResolveNames", "ConvertId", "FindItem",
	NULL,
};

ps_err
ews_parse(const char *body, size_t len, struct ews_request *out)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *env, *b, *op;
	size_t i;
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
	/*
	 * §2.1/§3.2: EWS sends no SOAPAction header worth trusting; the
	 * operation is the element in the Body. An element name is an XML
	 * name, safe to write back and to log; a long one is cut.
	 */
	if (!str_copy(out->op_name, xml_name(op), sizeof(out->op_name))) {
		/* Cut whole: never in the middle of a UTF-8 sequence. */
		size_t n = strlen(out->op_name);

		while (n > 0 && ((unsigned char)out->op_name[n - 1] & 0xc0) ==
		    0x80)
			n--;
		if (n > 0 && ((unsigned char)out->op_name[n - 1] & 0x80))
			n--;
		out->op_name[n] = '\0';
	}
	out->op = EWS_OP_OTHER;
	rc = PS_OK;
	if (strcmp(xml_ns(op), NS_MESSAGES) != 0)
		goto out;
	for (i = 0; i < sizeof(ews_ops) / sizeof(ews_ops[0]); i++) {
		if (strcmp(xml_name(op), ews_ops[i].name) != 0)
			continue;
		out->op = ews_ops[i].op;
		rc = ews_ops[i].parse(op, out);
		break;
	}
out:
	xml_free(doc);
	return rc;
}

ps_err
ews_parse_request(const char *body, size_t len,
    struct ews_photo_request *out)
{
	struct ews_request *req = xcalloc(1, sizeof(*req));
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = ews_parse(body, len, req)) != PS_OK)
		goto out;
	if (req->op != EWS_OP_GET_USER_PHOTO) {
		rc = ps_errf(PS_ENOTFOUND, "unsupported EWS operation %s",
		    req->op_name);
		goto out;
	}
	*out = req->photo;
out:
	free(req);
	return rc;
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

/* --- GetFolder ------------------------------------------------------ */

/*
 * The folders of a mailbox that holds no items: the distinguished
 * folders Exchange 2013 creates in every mailbox (types.xsd
 * DistinguishedFolderIdNameType, less the archive's and the public
 * folders', which a mailbox without them answers ErrorFolderNotFound).
 * The element is the folder's kind; `ipm` folders sit under the message
 * folder root, the others under the root.
 */
static const struct ews_folder {
	const char	*id;
	const char	*element;	/* Folder, CalendarFolder, ... */
	const char	*folder_class;	/* "" for none */
	const char	*display_name;
	bool		 ipm;
} ews_folders[] = {
	{ "root", "Folder", "", "Root", false },
	{ "msgfolderroot", "Folder", "IPF.Note", "Top of Information Store",
	    false },
	{ "inbox", "Folder", "IPF.Note", "Inbox", true },
	{ "outbox", "Folder", "IPF.Note", "Outbox", true },
	{ "sentitems", "Folder", "IPF.Note", "Sent Items", true },
	{ "deleteditems", "Folder", "IPF.Note", "Deleted Items", true },
	{ "drafts", "Folder", "IPF.Note", "Drafts", true },
	{ "junkemail", "Folder", "IPF.Note", "Junk Email", true },
	{ "calendar", "CalendarFolder", "IPF.Appointment", "Calendar", true },
	{ "contacts", "ContactsFolder", "IPF.Contact", "Contacts", true },
	{ "tasks", "TasksFolder", "IPF.Task", "Tasks", true },
	{ "notes", "Folder", "IPF.StickyNote", "Notes", true },
	{ "journal", "Folder", "IPF.Journal", "Journal", true },
	{ "conversationhistory", "Folder", "IPF.Note",
	    "Conversation History", true },
	{ "syncissues", "Folder", "IPF.Note", "Sync Issues", true },
	{ "conflicts", "Folder", "IPF.Note", "Conflicts", true },
	{ "localfailures", "Folder", "IPF.Note", "Local Failures", true },
	{ "serverfailures", "Folder", "IPF.Note", "Server Failures", true },
	{ "recipientcache", "ContactsFolder", "IPF.Contact.RecipientCache",
	    "Recipient Cache", true },
	{ "quickcontacts", "ContactsFolder", "IPF.Contact.MOC.QuickContacts",
	    "Quick Contacts", true },
	{ "imcontactlist", "ContactsFolder", "IPF.Contact.MOC.ImContactList",
	    "IM Contact List", true },
	{ "searchfolders", "Folder", "", "Finder", false },
	{ "recoverableitemsroot", "Folder", "", "Recoverable Items", false },
	{ "recoverableitemsdeletions", "Folder", "", "Deletions", false },
	{ "recoverableitemsversions", "Folder", "", "Versions", false },
	{ "recoverableitemspurges", "Folder", "", "Purges", false },
	{ "adminauditlogs", "Folder", "", "AdminAuditLogs", false },
};

#define EWS_FOLDER_COUNT (sizeof(ews_folders) / sizeof(ews_folders[0]))
#define FOLDER_ID_VERSION	1
#define FOLDER_ID_HASH		16

/*
 * A folder's Id: base64 of a version byte, the folder's index and the
 * first bytes of the SHA-256 of the mailbox's address, so stable per
 * mailbox and folder, and read back without a store.
 */
static char *
folder_id(const char *mailbox, size_t index)
{
	unsigned char raw[2 + FOLDER_ID_HASH], h[32];

	pki_sha256(mailbox, strlen(mailbox), h);
	raw[0] = FOLDER_ID_VERSION;
	raw[1] = (unsigned char)index;
	memcpy(raw + 2, h, FOLDER_ID_HASH);
	return b64_encode(raw, sizeof(raw), false);
}

/*
 * The folder a FolderId names: its index, or -1 with the response code
 * (ErrorInvalidIdMalformed, or ErrorFolderNotFound for another
 * mailbox's or an unknown folder).
 */
static int
folder_from_id(const char *id, const char *mailbox, const char **code)
{
	unsigned char *raw = NULL, h[32];
	size_t n;
	int index = -1;

	*code = "ErrorInvalidIdMalformed";
	if (b64_decode(id, strlen(id), &raw, &n) != PS_OK)
		return -1;
	if (n == 2 + FOLDER_ID_HASH && raw[0] == FOLDER_ID_VERSION) {
		*code = "ErrorFolderNotFound";
		pki_sha256(mailbox, strlen(mailbox), h);
		if (raw[1] < EWS_FOLDER_COUNT &&
		    memcmp(raw + 2, h, FOLDER_ID_HASH) == 0)
			index = raw[1];
	}
	free(raw);
	return index;
}

static int
folder_distinguished(const char *id)
{
	size_t i;

	for (i = 0; i < EWS_FOLDER_COUNT; i++)
		if (strcmp(ews_folders[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* A response message with ResponseClass="Error" (messages namespace m). */
static ps_err
error_message(struct buf *b, const char *element, const char *code,
    const char *message)
{
	ps_err rc;

	if ((rc = buf_addf(b, "        <m:%s ResponseClass=\"Error\">\n"
	    "          <m:MessageText>", element)) != PS_OK ||
	    (rc = xml_add_text(b, message)) != PS_OK ||
	    (rc = buf_addf(b, "</m:MessageText>\n"
	    "          <m:ResponseCode>%s</m:ResponseCode>\n"
	    "          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>\n"
	    "        </m:%s>\n", code, element)) != PS_OK)
		return rc;
	return PS_OK;
}

static ps_err
folder_message(struct buf *b, const char *mailbox, size_t index)
{
	const struct ews_folder *f = &ews_folders[index];
	char *id = folder_id(mailbox, index);
	char *parent = NULL;
	ps_err rc;

	/* The root has no parent; the message folders' is msgfolderroot. */
	if (index != 0)
		parent = folder_id(mailbox, f->ipm ? 1 : 0);
	rc = buf_addf(b,
	    "        <m:GetFolderResponseMessage ResponseClass=\"Success\">\n"
	    "          <m:ResponseCode>NoError</m:ResponseCode>\n"
	    "          <m:Folders>\n"
	    "            <t:%s>\n"
	    "              <t:FolderId Id=\"%s\" ChangeKey=\"AQAAAA==\"/>\n",
	    f->element, id);
	if (rc == PS_OK && parent)
		rc = buf_addf(b, "              <t:ParentFolderId Id=\"%s\""
		    " ChangeKey=\"AQAAAA==\"/>\n", parent);
	if (rc == PS_OK && f->folder_class[0])
		rc = buf_addf(b, "              <t:FolderClass>%s"
		    "</t:FolderClass>\n", f->folder_class);
	/*
	 * types.xsd: UnreadCount belongs to the plain Folder only; the
	 * calendar, contacts and tasks folders end with ChildFolderCount.
	 */
	if (rc == PS_OK)
		rc = buf_addf(b,
		    "              <t:DisplayName>%s</t:DisplayName>\n"
		    "              <t:TotalCount>0</t:TotalCount>\n"
		    "              <t:ChildFolderCount>0</t:ChildFolderCount>\n"
		    "%s"
		    "            </t:%s>\n"
		    "          </m:Folders>\n"
		    "        </m:GetFolderResponseMessage>\n",
		    f->display_name, strcmp(f->element, "Folder") == 0 ?
		    "              <t:UnreadCount>0</t:UnreadCount>\n" : "",
		    f->element);
	free(id);
	free(parent);
	return rc;
}

/* The opening of an operation's response with ResponseMessages. */
static ps_err
messages_open(struct buf *b, const char *op)
{
	return buf_addf(b,
	    "    <m:%sResponse xmlns:m=\"" NS_MESSAGES "\""
	    " xmlns:t=\"" NS_TYPES "\">\n"
	    "      <m:ResponseMessages>\n", op);
}

static ps_err
messages_close(struct buf *b, const char *op)
{
	return buf_addf(b,
	    "      </m:ResponseMessages>\n"
	    "    </m:%sResponse>\n", op);
}

/*
 * The folder `ref` names in `mailbox`: its index, or -1 with the
 * response code and message of the refusal.
 */
static int
folder_of(const struct ews_folder_ref *ref, const char *mailbox,
    const char **code, const char **message)
{
	int index;

	if (ref->distinguished && ref->mailbox[0] &&
	    strcmp(ref->mailbox, mailbox) != 0) {
		*code = "ErrorAccessDenied";
		*message = "Access is denied. Check credentials and try again.";
		return -1;
	}
	if (ref->distinguished) {
		index = folder_distinguished(ref->id);
		*code = "ErrorFolderNotFound";
	} else {
		index = folder_from_id(ref->id, mailbox, code);
	}
	*message = strcmp(*code, "ErrorFolderNotFound") == 0 ?
	    "The specified folder could not be found in the store." :
	    "Id is malformed.";
	return index;
}

/* FindItem's answer for one folder that holds nothing. */
static ps_err
find_item_message(struct buf *b)
{
	return buf_adds(b,
	    "        <m:FindItemResponseMessage ResponseClass=\"Success\">\n"
	    "          <m:ResponseCode>NoError</m:ResponseCode>\n"
	    "          <m:RootFolder IndexedPagingOffset=\"0\""
	    " TotalItemsInView=\"0\" IncludesLastItemInRange=\"true\">\n"
	    "            <t:Items/>\n"
	    "          </m:RootFolder>\n"
	    "        </m:FindItemResponseMessage>\n");
}

/* GetFolder's or FindItem's answer: one message per folder id. */
static ps_err
folders_response(struct buf *out, const char *op,
    const struct ews_folder_request *req, const char *mailbox)
{
	size_t start = out->b_len, i;
	const char *code, *message;
	char element[64];
	bool find = strcmp(op, "FindItem") == 0;
	int index;
	ps_err rc;

	snprintf(element, sizeof(element), "%sResponseMessage", op);
	if ((rc = soap_open(out)) != PS_OK ||
	    (rc = messages_open(out, op)) != PS_OK)
		goto out;
	for (i = 0; i < req->n && rc == PS_OK; i++) {
		index = folder_of(&req->ids[i], mailbox, &code, &message);
		if (index < 0)
			rc = error_message(out, element, code, message);
		else if (find)
			rc = find_item_message(out);
		else
			rc = folder_message(out, mailbox, (size_t)index);
	}
	if (rc != PS_OK ||
	    (rc = messages_close(out, op)) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}

ps_err
ews_folder_response(struct buf *out, const struct ews_folder_request *req,
    const char *mailbox)
{
	return folders_response(out, "GetFolder", req, mailbox);
}

ps_err
ews_find_item_response(struct buf *out, const struct ews_folder_request *req,
    const char *mailbox)
{
	return folders_response(out, "FindItem", req, mailbox);
}

/* --- ConvertId ------------------------------------------------------ */

/* The two formats of an EWS id; the master's ids read the same in both. */
static bool
ews_id_format(const char *format)
{
	return strcmp(format, "EwsId") == 0 ||
	    strcmp(format, "EwsLegacyId") == 0;
}

ps_err
ews_convert_response(struct buf *out, const struct ews_convert_request *req,
    const char *mailbox)
{
	size_t start = out->b_len, i;
	const char *code;
	ps_err rc;

	if ((rc = soap_open(out)) != PS_OK ||
	    (rc = messages_open(out, "ConvertId")) != PS_OK)
		goto out;
	for (i = 0; i < req->n && rc == PS_OK; i++) {
		const struct ews_convert_ref *ref = &req->ids[i];

		if (!ref->alternate || !ews_id_format(ref->format) ||
		    !ews_id_format(req->destination) || mailbox[0] == '\0' ||
		    folder_from_id(ref->id, mailbox, &code) < 0) {
			rc = error_message(out, "ConvertIdResponseMessage",
			    "ErrorInvalidIdMalformed", "Id is malformed.");
			continue;
		}
		if ((rc = buf_addf(out,
		    "        <m:ConvertIdResponseMessage"
		    " ResponseClass=\"Success\">\n"
		    "          <m:ResponseCode>NoError</m:ResponseCode>\n"
		    "          <m:AlternateId xsi:type=\"t:AlternateIdType\""
		    " Format=\"%s\" Id=\"", req->destination)) != PS_OK ||
		    (rc = xml_add_text(out, ref->id)) != PS_OK ||
		    (rc = buf_adds(out, "\" Mailbox=\"")) != PS_OK ||
		    (rc = xml_add_text(out, mailbox)) != PS_OK)
			break;
		rc = buf_adds(out, "\"/>\n"
		    "        </m:ConvertIdResponseMessage>\n");
	}
	if (rc != PS_OK ||
	    (rc = messages_close(out, "ConvertId")) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}

/* --- ResolveNames --------------------------------------------------- */

static bool
word_end(char c)
{
	return c == '\0' || c == ' ' || c == '.' || c == ',' || c == '-';
}

/*
 * ASCII case-insensitive prefix (other bytes must be equal); when
 * `whole`, what follows it in `s` must be `end` or, for a word, the end
 * of a word.
 */
static bool
prefix_ci(const char *s, const char *prefix, bool whole, char end)
{
	for (; *prefix; s++, prefix++) {
		unsigned char a = (unsigned char)*s, b = (unsigned char)*prefix;

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return !whole || *s == '\0' || *s == end;
}

bool
ews_resolve_match(const char *query, bool exact, const char *email,
    const char *name)
{
	const char *p;

	if (query == NULL || *query == '\0')
		return false;
	/* The address, or (whole) its local part; the name. */
	if (prefix_ci(email, query, exact, '@') ||
	    prefix_ci(name, query, exact, '\0'))
		return true;
	/* Each word of the name: after a space, a dot, a comma or a dash. */
	for (p = name; *p; p++) {
		const char *w = p + 1;

		if (!word_end(*p) || *w == '\0' ||
		    !prefix_ci(w, query, false, '\0'))
			continue;
		if (!exact || word_end(w[strlen(query)]))
			return true;
	}
	return false;
}

static ps_err
resolution(struct buf *b, const struct ews_person *p, bool full)
{
	const char *name = p->name && p->name[0] ? p->name : p->email;
	ps_err rc;

	if ((rc = buf_adds(b, "            <t:Resolution>\n"
	    "              <t:Mailbox>\n"
	    "                <t:Name>")) != PS_OK ||
	    (rc = xml_add_text(b, name)) != PS_OK ||
	    (rc = buf_adds(b, "</t:Name>\n"
	    "                <t:EmailAddress>")) != PS_OK ||
	    (rc = xml_add_text(b, p->email)) != PS_OK ||
	    (rc = buf_adds(b, "</t:EmailAddress>\n"
	    "                <t:RoutingType>SMTP</t:RoutingType>\n"
	    "                <t:MailboxType>Mailbox</t:MailboxType>\n"
	    "              </t:Mailbox>\n")) != PS_OK)
		return rc;
	if (full) {
		if ((rc = buf_adds(b, "              <t:Contact>\n"
		    "                <t:DisplayName>")) != PS_OK ||
		    (rc = xml_add_text(b, name)) != PS_OK ||
		    (rc = buf_adds(b, "</t:DisplayName>\n"
		    "                <t:EmailAddresses>\n"
		    "                  <t:Entry Key=\"EmailAddress1\">SMTP:"))
		    != PS_OK ||
		    (rc = xml_add_text(b, p->email)) != PS_OK ||
		    (rc = buf_adds(b, "</t:Entry>\n"
		    "                </t:EmailAddresses>\n"
		    "                <t:ContactSource>ActiveDirectory"
		    "</t:ContactSource>\n"
		    "              </t:Contact>\n")) != PS_OK)
			return rc;
	}
	return buf_adds(b, "            </t:Resolution>\n");
}

ps_err
ews_resolve_response(struct buf *out, const struct ews_person *p, size_t n,
    bool more, bool full_contact)
{
	size_t start = out->b_len, i;
	ps_err rc;

	if (n > EWS_RESOLVE_MAX) {
		n = EWS_RESOLVE_MAX;
		more = true;
	}
	if ((rc = soap_open(out)) != PS_OK ||
	    (rc = messages_open(out, "ResolveNames")) != PS_OK)
		goto out;
	if (n == 0) {
		rc = error_message(out, "ResolveNamesResponseMessage",
		    "ErrorNameResolutionNoResults", "No results were found.");
	} else {
		/*
		 * One person is a Success; more are a Warning with every
		 * one of them, which clients show as a list to choose from.
		 */
		rc = n == 1 ? buf_adds(out,
		    "        <m:ResolveNamesResponseMessage"
		    " ResponseClass=\"Success\">\n"
		    "          <m:ResponseCode>NoError</m:ResponseCode>\n") :
		    buf_adds(out,
		    "        <m:ResolveNamesResponseMessage"
		    " ResponseClass=\"Warning\">\n"
		    "          <m:MessageText>Multiple results were found."
		    "</m:MessageText>\n"
		    "          <m:ResponseCode>ErrorNameResolutionMultipleResults"
		    "</m:ResponseCode>\n"
		    "          <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>\n");
		if (rc == PS_OK)
			rc = buf_addf(out, "          <m:ResolutionSet"
			    " TotalItemsInView=\"%zu\""
			    " IncludesLastItemInRange=\"%s\">\n", n,
			    more ? "false" : "true");
		for (i = 0; i < n && rc == PS_OK; i++)
			rc = resolution(out, &p[i], full_contact);
		if (rc == PS_OK)
			rc = buf_adds(out, "          </m:ResolutionSet>\n"
			    "        </m:ResolveNamesResponseMessage>\n");
	}
	if (rc != PS_OK ||
	    (rc = messages_close(out, "ResolveNames")) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}

/* --- any other operation ------------------------------------------- */

ps_err
ews_operation_error(struct buf *out, const char *op,
    const char *response_code, const char *message)
{
	size_t start = out->b_len;
	char element[96];
	ps_err rc;

	snprintf(element, sizeof(element), "%sResponseMessage", op);
	if ((rc = soap_open(out)) != PS_OK ||
	    (rc = messages_open(out, op)) != PS_OK ||
	    (rc = error_message(out, element, response_code, message)) !=
	    PS_OK ||
	    (rc = messages_close(out, op)) != PS_OK)
		goto out;
	rc = soap_close(out);
out:
	return rollback(out, start, rc);
}
