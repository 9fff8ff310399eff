/*
 * Fuzz target: the chunked body decoder (http_chunked_feed). The first
 * byte sets the size of the reads and the limit; the rest is fed as the
 * server feeds a connection's reads (the decoded body, then the new
 * bytes). Every way of splitting the input must decode the same body,
 * looking at each byte once.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/parse.h"

struct outcome {
	enum http_parse_result	 res;
	size_t			 body_len, used;
	char			*body;
};

static void
decode(const uint8_t *in, size_t n, size_t step, size_t max,
    struct outcome *o)
{
	struct http_chunked d;
	char *buf = malloc(n + 1);
	size_t have = 0, off = 0, k, fed = 0, used = 0;
	const char *why;
	int status;

	http_chunked_init(&d, max);
	o->res = HTTP_PARSE_MORE;
	while (o->res == HTTP_PARSE_MORE ||
	    (o->res == HTTP_PARSE_LIMIT && d.max == max)) {
		if (o->res == HTTP_PARSE_LIMIT) {
			/* Raised once, as a gate would. */
			d.max = max * 2;
			fed = have;
		} else {
			if (off == n)
				break;
			k = n - off < step ? n - off : step;
			memcpy(buf + have, in + off, k);
			off += k;
			fed = have + k;
		}
		o->res = http_chunked_feed(&d, buf, fed, &used, &status,
		    &why);
		if (o->res == HTTP_PARSE_MORE && used != d.body_len)
			abort();
		if (o->res == HTTP_PARSE_LIMIT && (used < d.body_len ||
		    used > fed))
			abort();
		if (o->res == HTTP_PARSE_ERROR && (status != 400 ||
		    why == NULL))
			abort();
		have = used;
	}
	if (d.body_len > d.max)
		abort();
	if (o->res == HTTP_PARSE_DONE) {
		/* Where the message ends, counted in the input. */
		used += off - fed;
		if (used > n || d.examined != used)
			abort();
	}
	o->body_len = d.body_len;
	o->used = used;
	o->body = buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, split;
	size_t step, max;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] & 15) + 1;
	max = (size_t)(data[0] >> 4) * 64 + 1;
	decode(data + 1, size - 1, size, max, &whole);
	decode(data + 1, size - 1, step, max, &split);
	if (whole.res != split.res)
		abort();
	if (whole.res == HTTP_PARSE_DONE && (whole.body_len != split.body_len
	    || whole.used != split.used ||
	    memcmp(whole.body, split.body, whole.body_len) != 0))
		abort();
	free(whole.body);
	free(split.body);
	return 0;
}
