/*
 * Account names and library file names.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "pki/pki.h"

static bool
name_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '-' || c == '_' || c == '$';
}

static bool
name_part_valid(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || n > 100 || p[0] == '.')
		return false;
	for (i = 0; i < n; i++)
		if (!name_char((unsigned char)p[i]))
			return false;
	return strstr(p, "..") == NULL || (size_t)(strstr(p, "..") - p) >= n;
}

ps_err
account_parse(const char *in, char out[ACCOUNT_MAX], bool *is_email)
{
	const char *s = in, *bs;

	*is_email = false;
	if (in == NULL || *in == '\0')
		return ps_errf(PS_EINVAL, "no account name given");
	/* The Windows claims form: i:0#.w|domain\user. */
	if (strncasecmp(s, "i:0#.w|", 7) == 0)
		s += 7;
	if (strlen(s) >= ACCOUNT_MAX)
		return ps_errf(PS_EINVAL, "the account name is too long");
	if (strchr(s, '@') && strchr(s, '\\') == NULL) {
		/* ".." is refused here too, as promised (and no address
		 * has it unquoted). */
		if (!email_valid(s) || strstr(s, "..") != NULL)
			return ps_errf(PS_EINVAL, "\"%s\" is not a valid "
			    "e-mail address", in);
		str_copy(out, s, ACCOUNT_MAX);
		str_lower(out);
		*is_email = true;
		return PS_OK;
	}
	bs = strchr(s, '\\');
	if (bs == NULL || strchr(bs + 1, '\\') ||
	    !name_part_valid(s, (size_t)(bs - s)) ||
	    !name_part_valid(bs + 1, strlen(bs + 1)))
		return ps_errf(PS_EINVAL, "\"%s\" is not an account name "
		    "(DOMAIN\\user, i:0#.w|DOMAIN\\user or an e-mail address)",
		    in);
	str_copy(out, s, ACCOUNT_MAX);
	str_lower(out);
	return PS_OK;
}

void
account_file_prefix(const char *account, char out[ACCOUNT_MAX])
{
	size_t i;

	str_copy(out, account, ACCOUNT_MAX);
	for (i = 0; out[i]; i++)
		if (out[i] == '\\' || out[i] == '@')
			out[i] = '_';
}

ps_err
account_parse_file(const char *name, char prefix[ACCOUNT_MAX], char *size)
{
	size_t n = strlen(name);
	char letter;

	/* <prefix>_XThumb.jpg: "_X" and the 9 characters of "Thumb.jpg". */
	if (n <= 11 || n - 11 >= ACCOUNT_MAX ||
	    strcasecmp(name + n - 9, "thumb.jpg") != 0 || name[n - 11] != '_')
		goto bad;
	letter = (char)toupper((unsigned char)name[n - 10]);
	if (letter != 'S' && letter != 'M' && letter != 'L')
		goto bad;
	memcpy(prefix, name, n - 11);
	prefix[n - 11] = '\0';
	str_lower(prefix);
	if (strchr(prefix, '/') || strchr(prefix, '\\') ||
	    strstr(prefix, "..") || prefix[0] == '\0')
		goto bad;
	*size = letter;
	return PS_OK;
bad:
	return ps_errf(PS_EINVAL, "\"%s\" is not a photo of the User Photos "
	    "library", name);
}

void
account_email_hashes(const char *email, char md5[33], char sha256[65])
{
	unsigned char d5[16], d256[32];
	char *e;
	size_t n;

	while (*email == ' ' || *email == '\t')
		email++;
	e = xstrdup(email);
	n = strlen(e);
	while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t' ||
	    e[n - 1] == '\n' || e[n - 1] == '\r'))
		e[--n] = '\0';
	str_lower(e);
	pki_md5(e, n, d5);
	pki_sha256(e, n, d256);
	hex_encode(d5, sizeof(d5), md5);
	hex_encode(d256, sizeof(d256), sha256);
	free(e);
}
