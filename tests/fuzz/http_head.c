/*
 * Fuzz target: the request head parser (http_parse_head). The input is
 * parsed in a buffer of exactly its size, as a whole and, for the first
 * byte's worth of prefixes, as the parts a slow client sends; what a
 * complete head says must point inside the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/parse.h"
#include "http/server.h"

static void
check_head(const char *buf, size_t len, const struct http_head *h)
{
	size_t i;

	if (h->head_len == 0 || h->head_len > len)
		abort();
	if (h->method < buf || h->method >= buf + h->head_len ||
	    h->target < buf || h->target >= buf + h->head_len)
		abort();
	if (h->nfields > HTTP_MAX_FIELDS || (h->minor != 0 && h->minor != 1))
		abort();
	for (i = 0; i < h->nfields; i++)
		if (h->fields[i].name < buf || h->fields[i].value < buf ||
		    h->fields[i].name >= buf + h->head_len ||
		    h->fields[i].value >= buf + h->head_len ||
		    strlen(h->fields[i].value) > h->head_len)
			abort();
	(void)http_head_field(h, "content-length");
	(void)http_head_field(h, "client-request-id");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head h;
	const char *why;
	char *buf;
	size_t max = 4096, i;
	int status;
	enum http_parse_result res;

	if (size == 0)
		return 0;
	buf = malloc(size);
	memcpy(buf, data, size);
	/* A prefix that is not complete must be left as it was. */
	for (i = 0; i < size && i < (size_t)data[0]; i++)
		if (http_parse_head(buf, i, max, &h, &status, &why) !=
		    HTTP_PARSE_MORE)
			break;
		else if (memcmp(buf, data, size) != 0)
			abort();
	res = http_parse_head(buf, size, max, &h, &status, &why);
	if (res == HTTP_PARSE_DONE)
		check_head(buf, size, &h);
	else if (res == HTTP_PARSE_ERROR && (status < 400 || status > 505 ||
	    why == NULL))
		abort();
	free(buf);
	return 0;
}
