/*
 * EWS GetUserPhoto in SOAP (POST /EWS/Exchange.asmx) and the photo size
 * codes shared with the REST form. Wire facts: reference exchange-wire.md
 * §3 ([MS-OXWSCONT], EWS Managed API strictness notes).
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
	char	operation[64];	/* the Body's element, when there is one */
};

/*
 * Parses a SOAP request. PS_OK and `out` filled for GetUserPhoto;
 * PS_ENOTFOUND (with the operation's element name in the message and in
 * out->operation) for any other operation; PS_EINVAL/PS_ELIMIT for
 * malformed or oversized XML.
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

/*
 * SetUserPhoto (Exchange 2016's messages.xsd: m:Email, m:Content in
 * base64, m:TypeOfPhoto optional). Its document carries an image of up
 * to `max_image` bytes in base64, so it may be larger than XML_MAX_BYTES:
 * at most EWS_SET_PHOTO_MAX(max_image) bytes, parsed off the loop.
 */
#define EWS_SET_PHOTO_MAX(max_image)	((max_image) / 3 * 4 + 4 + \
	    64 * 1024)

struct ews_set_photo_request {
	char		 email[256];
	unsigned char	*content;	/* the image, decoded; owned */
	size_t		 len;
};

/*
 * Parses a SetUserPhoto request of at most EWS_SET_PHOTO_MAX(max_image)
 * bytes (white space in the base64 is skipped). PS_OK and `out` filled;
 * PS_ENOTFOUND (operation named) for another operation; PS_ELIMIT when
 * the document or the image is larger than allowed (out->len: about the
 * image's size, 0 when not known); PS_EINVAL when
 * malformed, with the reason in ps_errmsg(). Free with
 * ews_set_photo_request_cleanup().
 */
ps_err	ews_parse_set_photo(const char *body, size_t len, size_t max_image,
	    struct ews_set_photo_request *out);
void	ews_set_photo_request_cleanup(struct ews_set_photo_request *);

/*
 * SetUserPhotoResponse: ResponseClass="Success" with NoError when
 * `response_code` is NULL, else ResponseClass="Error" with MessageText
 * and ResponseCode (e.g. "ErrorAccessDenied").
 */
ps_err	ews_set_photo_response(struct buf *out, const char *response_code,
	    const char *message);

/* A SOAP 1.1 Fault (s:Client or s:Server) with a message. */
ps_err	ews_fault(struct buf *out, bool client, const char *message);

#endif
