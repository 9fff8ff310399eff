/*
 * EWS in SOAP (POST /EWS/Exchange.asmx): the operations the master
 * answers (GetUserPhoto, GetFolder and FindItem of an empty mailbox,
 * ResolveNames, ConvertId of its own ids), Exchange's refusal of any
 * other, the service's published description, and the photo size codes
 * shared with the REST form. Wire facts: reference exchange-wire.md §3
 * ([MS-OXWSCONT], EWS Managed API strictness notes), [MS-OXWSFOLD],
 * [MS-OXWSSRCH], [MS-OXWSRSLNM], [MS-OXWSCNVID].
 */
#ifndef PS_EWS_H
#define PS_EWS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/*
 * The server version the master claims in every SOAP header, Autodiscover
 * included: Exchange 2013 RTM, build 15.0.516.32, schema "Exchange2013"
 * (reference §2.2, §3.2). Kept together so that the EWS and Autodiscover
 * answers never disagree.
 */
#define EWS_VERSION_MAJOR	15
#define EWS_VERSION_MINOR	0
#define EWS_VERSION_BUILD	516
#define EWS_VERSION_REVISION	32
#define EWS_VERSION_NAME	"Exchange2013"

/* The nine high-resolution size codes, smallest first. */
#define EWS_SIZE_COUNT 9
extern const int ews_sizes[EWS_SIZE_COUNT];	/* 48, 64, ..., 648 */

/*
 * Parses a size code ("HR648x648", any case, also "HR96X96") into its
 * index in ews_sizes; -1 if it is not one of the nine.
 */
int	ews_size_index(const char *code);
/* The canonical spelling of size code `index` ("HR648x648"). */
const char *ews_size_name(int index);

struct ews_photo_request {
	char	email[256];
	char	size[32];	/* as sent */
};

/*
 * The operations the master answers, one row each in ews.c's table (and
 * one operation each in services.wsdl); EWS_OP_OTHER is any other
 * element in the Body, answered with ErrorInvalidOperation.
 */
enum ews_op {
	EWS_OP_OTHER,
	EWS_OP_GET_USER_PHOTO,
	EWS_OP_GET_FOLDER,
	EWS_OP_RESOLVE_NAMES,
	EWS_OP_CONVERT_ID,
	EWS_OP_FIND_ITEM,
};

/* GetFolder: at most this many folder ids in one request. */
#define EWS_FOLDER_IDS_MAX	32

struct ews_folder_ref {
	bool	distinguished;	/* DistinguishedFolderId, else FolderId */
	char	id[256];	/* the Id attribute as sent */
	char	mailbox[256];	/* DistinguishedFolderId's Mailbox, or "" */
};

struct ews_folder_request {
	struct ews_folder_ref	ids[EWS_FOLDER_IDS_MAX];
	size_t			n;
};

/* ResolveNames: the longest UnresolvedEntry searched for (bytes). */
#define EWS_RESOLVE_QUERY_MAX	255
/* ResolveNames answers at most this many people, as Exchange does. */
#define EWS_RESOLVE_MAX		100

struct ews_resolve_request {
	char	query[EWS_RESOLVE_QUERY_MAX + 1];	/* trimmed, no = smtp: */
	bool	exact;		/* "=" before it: whole values only */
	bool	too_long;	/* the entry was over the budget */
	bool	full_contact;	/* ReturnFullContactData */
};

/* ConvertId: at most this many ids in one request. */
#define EWS_CONVERT_IDS_MAX	32

struct ews_convert_ref {
	bool	alternate;	/* an AlternateId (else another kind) */
	char	format[32];	/* its Format as sent */
	char	id[256];
};

struct ews_convert_request {
	char			destination[32];	/* DestinationFormat */
	struct ews_convert_ref	ids[EWS_CONVERT_IDS_MAX];
	size_t			n;
};

struct ews_request {
	enum ews_op		op;
	char			op_name[64];	/* the Body's element */
	struct ews_photo_request photo;		/* EWS_OP_GET_USER_PHOTO */
	/* EWS_OP_GET_FOLDER's FolderIds, EWS_OP_FIND_ITEM's ParentFolderIds */
	struct ews_folder_request folder;
	struct ews_resolve_request resolve;	/* EWS_OP_RESOLVE_NAMES */
	struct ews_convert_request convert;	/* EWS_OP_CONVERT_ID */
};

/*
 * Parses a SOAP request and dispatches on the operation's element name.
 * PS_OK with `out` filled for the operations of the table, and for any
 * other operation with op EWS_OP_OTHER and its name; PS_EINVAL/PS_ELIMIT
 * (with a sentence) for malformed or oversized XML or an operation
 * missing what it requires.
 */
ps_err	ews_parse(const char *body, size_t len, struct ews_request *out);

/* The names of the operations of the table, NULL-terminated. */
extern const char *const ews_operation_names[];

/*
 * GetUserPhoto only: PS_OK and `out` filled for GetUserPhoto,
 * PS_ENOTFOUND (the operation's name in the message) for any other.
 */
ps_err	ews_parse_request(const char *body, size_t len,
	    struct ews_photo_request *out);

/*
 * The three answers below append a whole SOAP document to `out`; on
 * failure (PS_ELIMIT at the cap) `out` is left as it was.
 *
 * GetUserPhotoResponse with ResponseClass="Success": HasChanged, then
 * PictureData (base64 of `data`, empty when len == 0), then ContentType
 * when there is data. ServerVersionInfo in the header.
 */
ps_err	ews_photo_response(struct buf *out, bool has_changed,
	    const void *data, size_t len, const char *content_type);

/*
 * GetUserPhotoResponse with ResponseClass="Error", MessageText and
 * ResponseCode (e.g. "ErrorInvalidPhotoSize"), as the EWS Managed API
 * reads it.
 */
ps_err	ews_error_response(struct buf *out, const char *response_code,
	    const char *message);

/* A SOAP 1.1 Fault (s:Client or s:Server) with a message. */
ps_err	ews_fault(struct buf *out, bool client, const char *message);

/*
 * GetFolderResponse for `req` in the mailbox `mailbox` (lower case),
 * which holds no items: one GetFolderResponseMessage per folder id, in
 * order; a distinguished folder the master knows, or a FolderId it gave
 * out for this mailbox, is answered with counts of 0 and an Id stable per
 * mailbox and folder; anything else with ErrorFolderNotFound (or
 * ErrorInvalidIdMalformed, ErrorAccessDenied for another mailbox's).
 */
ps_err	ews_folder_response(struct buf *out,
	    const struct ews_folder_request *req, const char *mailbox);

/*
 * FindItemResponse for the folders of `req` in `mailbox`: each folder
 * found as GetFolder finds it holds no items (RootFolder with
 * TotalItemsInView 0 and an empty Items); the others refused as
 * GetFolder refuses them.
 */
ps_err	ews_find_item_response(struct buf *out,
	    const struct ews_folder_request *req, const char *mailbox);

/*
 * ConvertIdResponse for `req`: the ids the master gave out for
 * `mailbox` (folder ids), between the formats EwsId and EwsLegacyId
 * (the same string: the master's ids have one form), answered as an
 * AlternateId whose Mailbox is `mailbox` (which is what clients read to
 * learn the signed-in mailbox's address); any other id or format
 * ErrorInvalidIdMalformed, one message per id.
 */
ps_err	ews_convert_response(struct buf *out,
	    const struct ews_convert_request *req, const char *mailbox);

/* One person found by ResolveNames. */
struct ews_person {
	const char	*email;
	const char	*name;	/* "" when unknown */
};

/*
 * True when `query` finds the mailbox: a case-insensitive (ASCII) prefix
 * of its address, of its display name, or of a word of the name; when
 * `exact` (the entry began with "=", as Exchange's ambiguous name
 * resolution reads it), the whole address, its local part, the whole
 * name or a whole word of it.
 */
bool	ews_resolve_match(const char *query, bool exact, const char *email,
	    const char *name);

/*
 * ResolveNamesResponse for `n` people (at most EWS_RESOLVE_MAX are
 * written; `more` says that more were found): none gives
 * ErrorNameResolutionNoResults, one a Success, more a Warning
 * ErrorNameResolutionMultipleResults with them all, as Exchange.
 * Contact data (DisplayName, EmailAddresses) when `full_contact`.
 */
ps_err	ews_resolve_response(struct buf *out, const struct ews_person *p,
	    size_t n, bool more, bool full_contact);

/*
 * The answer of an operation the master does not offer: HTTP 200 with
 * <op>Response / ResponseMessages / <op>ResponseMessage
 * ResponseClass="Error" and `response_code` (ErrorInvalidOperation for
 * an operation it does not offer) as Exchange answers a request it
 * refuses; `op` is an XML name (the request's element).
 */
ps_err	ews_operation_error(struct buf *out, const char *op,
	    const char *response_code, const char *message);

/*
 * The published descriptions of the service (services.wsdl,
 * messages.xsd, types.xsd, embedded at build time): the document named
 * `name` (lower case), or NULL.
 */
const char *ews_schema(const char *name, size_t *len);

#endif
