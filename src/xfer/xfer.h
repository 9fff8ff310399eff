/*
 * HTTP client transfers: the only user of libcurl.
 *
 * This first part is the blocking form used by admin commands (fetching a
 * partner's metadata document). TLS certificates are always verified,
 * against the system store or a given CA file; plain http:// is refused
 * unless the caller allows it.
 */
#ifndef PS_XFER_H
#define PS_XFER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct xfer_opts {
	const char	*ca_file;	/* NULL: the system's CAs */
	long		 timeout_ms;	/* whole transfer; 0: 15 s */
	size_t		 max_bytes;	/* body cap */
	bool		 allow_http;
	const char	*reqid;		/* sent as client-request-id */
};

ps_err	xfer_global_init(void);

/*
 * GETs `url` into `body` (initialised by the caller; its cap applies too).
 * PS_OK with *status set for any HTTP answer; PS_EUPSTREAM with the reason
 * (DNS, connection, TLS verification, timeout, body too large) otherwise.
 */
ps_err	xfer_get(const char *url, const struct xfer_opts *, long *status,
	    struct buf *body);

#endif
