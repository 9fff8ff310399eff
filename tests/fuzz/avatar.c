/*
 * Fuzz target: what the portal's avatar endpoint reads from a request
 * (portal/avatar.c): the hash in its path (avatar_hash_parse), the size
 * asked for (avatar_size_parse) and the default image's URL, d=, against
 * the web application's allowed prefixes (avatar_default_allowed). The
 * input is split at its first four newlines into the path after
 * "/avatar/", `size`, `s`, d= and the allow list.
 * A hash that is taken is 32 or 64 lower-case hex digits, the digest is
 * those digits read as bytes, and no other answer than 400 or 404 comes
 * back otherwise; a size is within 1..512; a URL that is allowed parses
 * as https without dot segments and shares host, port and the start of
 * its path with a prefix of the list; a refused one says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "common/xalloc.h"
#include "fuzz.h"
#include "portal/portal_int.h"

/* The next field of the input, NUL-terminated in place, or "". */
static char *
field(char **p)
{
	char *f = *p, *nl;

	if (f == NULL)
		return "";
	if ((nl = strchr(f, '\n')) != NULL) {
		*nl = '\0';
		*p = nl + 1;
	} else
		*p = NULL;
	return f;
}

static void
check_hash(const char *h)
{
	char hex[65], again[65];
	unsigned char digest[32];
	size_t n = 0, i;
	int rc;

	memset(hex, 'x', sizeof(hex));
	rc = avatar_hash_parse(h, hex, digest, &n);
	if (rc == 400 || rc == 404)
		return;
	if (rc != 0 || (n != 16 && n != 32) || strlen(hex) != 2 * n ||
	    strspn(hex, "0123456789abcdef") != 2 * n ||
	    strncmp(hex, h, 2 * n) != 0)
		abort();
	for (i = 0; i < n; i++)
		snprintf(again + 2 * i, 3, "%02x", digest[i]);
	if (strcmp(again, hex) != 0)
		abort();
}

static void
check_default(const char *url, const char *allow)
{
	struct url u, pre;
	const char *why = "unset";
	char *copy, *tok, *save = NULL;
	bool found = false;

	if (!avatar_default_allowed(url, allow, &why)) {
		if (why == NULL || why[0] == '\0')
			abort();
		return;
	}
	if (why != NULL || url_parse(url, 0, &u) != PS_OK || !u.https ||
	    url_path_has_dot_segment(u.rest))
		abort();
	copy = xstrdup(allow);
	for (tok = strtok_r(copy, ", ", &save); tok && !found;
	    tok = strtok_r(NULL, ", ", &save))
		found = url_parse(tok, 0, &pre) == PS_OK &&
		    strcmp(pre.host, u.host) == 0 && pre.port == u.port &&
		    strncmp(u.rest, pre.rest, strlen(pre.rest)) == 0;
	free(copy);
	if (!found)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = xmalloc(size + 1), *p = in;
	const char *hash, *sz, *s, *url;
	int px;

	memcpy(in, data, size);
	in[size] = '\0';
	hash = field(&p);
	sz = field(&p);
	s = field(&p);
	url = field(&p);
	check_hash(hash);
	px = avatar_size_parse(sz[0] ? sz : NULL, s[0] ? s : NULL);
	if (px < 1 || px > 512)
		abort();
	check_default(url, p ? p : "");
	free(in);
	return 0;
}
