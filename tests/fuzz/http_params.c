/*
 * Fuzz target: query strings and form bodies (http_parse_params,
 * http_pct_decode, http_form_value) and percent-encoding (http_encode):
 * decoding never grows a string, and what is encoded decodes back.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/parse.h"
#include "http/server.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_param params[HTTP_MAX_PARAMS];
	char *s = malloc(size + 1), *out = malloc(size + 1), *v, *enc;
	size_t n, i, len;

	memcpy(s, data, size);
	s[size] = '\0';
	if (http_pct_decode(s, size, size > 0 && data[0] & 1, out) > size)
		abort();
	v = http_form_value(s, "password");
	free(v);
	/* What is encoded for a query decodes to the same string. */
	len = strlen(s);
	enc = http_encode(s);
	if (http_pct_decode(enc, strlen(enc), true, out) != len ||
	    memcmp(out, s, len) != 0)
		abort();
	free(enc);
	n = http_parse_params(s, params, HTTP_MAX_PARAMS);
	if (n > HTTP_MAX_PARAMS)
		abort();
	for (i = 0; i < n; i++)
		if (params[i].name < s || params[i].name > s + size ||
		    params[i].value < s || params[i].value > s + size)
			abort();
	free(s);
	free(out);
	return 0;
}
