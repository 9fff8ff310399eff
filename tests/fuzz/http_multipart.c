/*
 * Fuzz target: the multipart/form-data parser (http_multipart_field),
 * and its look at a form's first bytes (http_multipart_head_field) as
 * the ECP and portal uploads read their "csrf" field before the photo.
 * The input's first line is the Content-Type header, the rest the body;
 * a field found must lie inside the body, and one found in the first
 * bytes is the one the whole body gives.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/server.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *names[] = { "photo", "file", "csrf", "" };
	const uint8_t *nl = memchr(data, '\n', size);
	struct http_part part, head;
	size_t clen, blen, i;
	char *ctype, *body;

	if (nl == NULL)
		return 0;
	clen = (size_t)(nl - data);
	ctype = malloc(clen + 1);
	memcpy(ctype, data, clen);
	ctype[clen] = '\0';
	blen = size - clen - 1;
	body = malloc(blen + 1);
	memcpy(body, nl + 1, blen);
	body[blen] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (http_multipart_field(ctype, body, blen, names[i], &part) !=
		    PS_OK)
			continue;
		if (part.data < (const unsigned char *)body ||
		    part.data + part.len > (const unsigned char *)body + blen ||
		    strlen(part.filename) >= sizeof(part.filename) ||
		    strlen(part.content_type) >= sizeof(part.content_type))
			abort();
		if (http_multipart_head_field(ctype, body, blen, names[i],
		    &head) != PS_OK)
			continue;
		if (head.data != part.data || head.len != part.len ||
		    head.data + head.len > (const unsigned char *)body +
		    HTTP_FORM_HEAD)
			abort();
	}
	free(ctype);
	free(body);
	return 0;
}
