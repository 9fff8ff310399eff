/*
 * Fuzz target: what src/directory makes of the values a directory server
 * returns: an attribute's value as a person's field (dir_value_text, hex
 * for objectGUID, text for the others) and the search filter built from
 * a person's id to find the entry again (dir_id_filter, both schemas).
 * A value that fits comes back whole (as its lower-case hex, or the text
 * itself); the filter of an id is "(attr=value)" whose value holds no
 * unescaped '*', '(', ')' or '\' and unescapes to the id (objectGUID:
 * to the value's bytes). So an entry read is found again by its id.
 */
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "directory/ldap.h"
#include "fuzz.h"

/*
 * The value of "(<attr>=<value>)" unescaped into out (room for strlen
 * of the filter); its length. Aborts on a filter of another shape.
 */
static size_t
unescape_filter(const char *f, const char *attr, unsigned char *out)
{
	size_t al = strlen(attr), fl = strlen(f), n = 0;
	const char *v, *end;
	int hi, lo;

	if (fl < al + 3 || f[0] != '(' || strncmp(f + 1, attr, al) != 0 ||
	    f[al + 1] != '=' || f[fl - 1] != ')')
		abort();
	end = f + fl - 1;
	for (v = f + al + 2; v < end; v++) {
		if (*v == '*' || *v == '(' || *v == ')')
			abort();
		if (*v != '\\') {
			out[n++] = (unsigned char)*v;
			continue;
		}
		if (end - v < 3 || (hi = hex_digit(v[1])) < 0 ||
		    (lo = hex_digit(v[2])) < 0)
			abort();
		out[n++] = (unsigned char)(hi * 16 + lo);
		v += 2;
	}
	return n;
}

static void
check_guid(const uint8_t *data, size_t size)
{
	char id[80];
	unsigned char *back;
	char *f;

	dir_value_text(data, size, true, id, sizeof(id));
	if (size * 2 >= sizeof(id) || size == 0) {
		if (id[0] != '\0')
			abort();
		if (size == 0 && dir_id_filter(DIR_SCHEMA_AD, id) != NULL)
			abort();
		return;
	}
	if (strlen(id) != size * 2 ||
	    (f = dir_id_filter(DIR_SCHEMA_AD, id)) == NULL)
		abort();
	back = malloc(strlen(f) + 1);
	if (unescape_filter(f, "objectGUID", back) != size ||
	    memcmp(back, data, size) != 0)
		abort();
	free(back);
	free(f);
}

static void
check_text(const uint8_t *data, size_t size)
{
	char text[256];
	unsigned char *back;
	size_t n;
	char *f;

	dir_value_text(data, size, false, text, sizeof(text));
	if (size >= sizeof(text) || memchr(data, '\0', size) != NULL) {
		if (text[0] != '\0')
			abort();
		return;
	}
	if (strlen(text) != size || memcmp(text, data, size) != 0)
		abort();
	if ((f = dir_id_filter(DIR_SCHEMA_OPENLDAP, text)) == NULL)
		abort();
	back = malloc(strlen(f) + 1);
	n = unescape_filter(f, "entryUUID", back);
	if (n != size || memcmp(back, text, size) != 0)
		abort();
	free(back);
	free(f);
	/* As an AD id: only lower-case hex of whole bytes is taken. */
	if ((f = dir_id_filter(DIR_SCHEMA_AD, text)) != NULL) {
		if (size == 0 || size % 2 != 0 ||
		    strspn(text, "0123456789abcdef") != size)
			abort();
		free(f);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_guid(data, size);
	check_text(data, size);
	return 0;
}
