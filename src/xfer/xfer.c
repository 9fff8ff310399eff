/*
 * Blocking libcurl transfers for the admin commands.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "xfer.h"

ps_err
xfer_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return ps_errf(PS_EIO, "libcurl failed to start");
	return PS_OK;
}

struct sink {
	struct buf	*body;
	size_t		 max;
	bool		 too_big;
};

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;

	if (s->body->b_len + len > s->max || buf_add(s->body, p, len) !=
	    PS_OK) {
		s->too_big = true;
		return 0;
	}
	return len;
}

ps_err
xfer_get(const char *url, const struct xfer_opts *o, long *status,
    struct buf *body)
{
	struct sink s = { body, o->max_bytes ? o->max_bytes : body->b_max,
	    false };
	struct curl_slist *hdrs = NULL;
	char err[CURL_ERROR_SIZE] = "";
	CURL *c;
	CURLcode cc;
	ps_err rc = PS_OK;

	if (!str_case_prefix(url, "https://") &&
	    !(o->allow_http && str_case_prefix(url, "http://")))
		return ps_errf(PS_EINVAL, "%s is not an https:// URL", url);
	if ((c = curl_easy_init()) == NULL)
		return ps_errf(PS_ENOMEM, "cannot start a transfer");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->allow_http ?
	    "https,http" : "https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms :
	    15000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "photosync/0.1");
	if (o->reqid) {
		char *h = xasprintf("client-request-id: %s", o->reqid);

		hdrs = curl_slist_append(hdrs, h);
		hdrs = curl_slist_append(hdrs, "return-client-request-id: "
		    "true");
		free(h);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	cc = curl_easy_perform(c);
	if (s.too_big) {
		rc = ps_errf(PS_EUPSTREAM, "the answer from %s is larger than "
		    "%zu bytes", url, s.max);
	} else if (cc != CURLE_OK) {
		rc = ps_errf(PS_EUPSTREAM, "cannot fetch %s: %s", url,
		    err[0] ? err : curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}
