/*
 * Fuzz target: the small parsers of names and settings. Account names
 * (account_parse: DOMAIN\user, i:0#.w|DOMAIN\user or an address, and
 * the library's file names; auth_principal_account and
 * auth_principal_mailbox with realm maps, the map check
 * auth_negotiate_realms_check), Basic credentials (auth_basic_parse),
 * addresses (email_valid), durations and sizes as
 * the settings take them (duration_parse, duration_format, size_parse),
 * and cookies (http_cookie_value). The input is split at its first two
 * newlines into a name, a map and a third string (a cookie's name).
 * A duration that parses formats to a string that parses to the same
 * seconds; a parsed account is lower case, free of path characters and
 * parses again to itself, and its library file name gives its prefix
 * back; an account or mailbox is terminated within its buffer and
 * never names a service principal; Basic credentials give back the user
 * and password they were encoded from; a cookie's value has no ';'.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/negotiate.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "fuzz.h"
#include "http/parse.h"
#include "portal/account.h"

/* A service ("a/b@R") or no realm: what must be refused. */
static bool
not_a_user(const char *s)
{
	const char *at = strrchr(s, '@');

	return at == NULL || at == s || at[1] == '\0' ||
	    memchr(s, '/', (size_t)(at - s)) != NULL;
}

static void
check_principal(const char *s, const char *map)
{
	char out[256];
	bool first;

	for (first = false; ; first = true) {
		memset(out, 'x', sizeof(out));
		if (auth_principal_account(s, map, first, out, sizeof(out)) ==
		    PS_OK) {
			if (memchr(out, '\0', sizeof(out)) == NULL ||
			    not_a_user(s))
				abort();
		}
		if (first)
			break;
	}
	memset(out, 'x', sizeof(out));
	if (auth_principal_mailbox(s, map, out, sizeof(out)) == PS_OK &&
	    (memchr(out, '\0', sizeof(out)) == NULL || not_a_user(s)))
		abort();
	(void)auth_negotiate_realms_check(map);
}

static void
check_account(const char *s)
{
	char out[ACCOUNT_MAX], again[ACCOUNT_MAX], prefix[ACCOUNT_MAX];
	char back[ACCOUNT_MAX], *file, size = 0;
	bool is_email, again_email;
	const char *c;

	if (account_parse(s, out, &is_email) != PS_OK)
		return;
	for (c = out; *c; c++)
		if ((*c >= 'A' && *c <= 'Z') || *c == '/' ||
		    (unsigned char)*c < 0x20)
			abort();
	if (strstr(out, "..") != NULL ||
	    account_parse(out, again, &again_email) != PS_OK ||
	    strcmp(again, out) != 0 || again_email != is_email)
		abort();
	account_file_prefix(out, prefix);
	file = xasprintf("%s_LThumb.jpg", prefix);
	if (account_parse_file(file, back, &size) != PS_OK ||
	    strcmp(back, prefix) != 0 || size != 'L')
		abort();
	free(file);
}

static void
check_basic(const char *s)
{
	char *user = NULL, *password = NULL, *plain, *enc, *header;
	char *u2 = NULL, *p2 = NULL;

	if (auth_basic_parse(s, &user, &password) != PS_OK)
		return;
	if (strchr(user, ':') != NULL)
		abort();
	/* Encoded again, the same pair comes back. */
	plain = xasprintf("%s:%s", user, password);
	enc = b64_encode(plain, strlen(plain), false);
	header = xasprintf("Basic %s", enc);
	if (auth_basic_parse(header, &u2, &p2) != PS_OK ||
	    strcmp(u2, user) != 0 || strcmp(p2, password) != 0)
		abort();
	free(header);
	free(enc);
	free(plain);
	free(u2);
	free(p2);
	free(user);
	free(password);
}

static void
check_duration(const char *s)
{
	int64_t secs, again;
	char buf[32];

	if (duration_parse(s, &secs) != PS_OK)
		return;
	if (secs < 0 || duration_parse(duration_format(secs, buf), &again) !=
	    PS_OK || again != secs)
		abort();
}

static void
check_cookie(const char *header, const char *name)
{
	char value[64];

	memset(value, 'x', sizeof(value));
	if (http_cookie_value(header, name[0] ? name : "ps_session", value,
	    sizeof(value)) && (memchr(value, '\0', sizeof(value)) == NULL ||
	    strchr(value, ';') != NULL))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1), *map = NULL, *third = NULL, *nl;
	size_t bytes;

	memcpy(s, data, size);
	s[size] = '\0';
	if ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		map = nl + 1;
		if ((nl = strchr(map, '\n')) != NULL) {
			*nl = '\0';
			third = nl + 1;
		}
	}
	check_principal(s, map ? map : "");
	check_account(s);
	check_basic(s);
	(void)email_valid(s);
	check_duration(s);
	if (size_parse(s, &bytes) == PS_OK && bytes == 0 && s[0] != '0')
		abort();
	check_cookie(s, third ? third : "");
	if (map != NULL) {
		check_duration(map);
		check_cookie(map, s);
	}
	free(s);
	return 0;
}
