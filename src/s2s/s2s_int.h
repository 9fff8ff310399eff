/*
 * Internals shared by the s2s module's metadata documents (metadata.c)
 * and tokens (token.c).
 */
#ifndef PS_S2S_INT_H
#define PS_S2S_INT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A principal or realm part as it may appear in an issuer, an audience or
 * a realm: 1 to 200 bytes of printable ASCII without the separators '@'
 * and '/', quotes, backslashes or spaces.
 */
bool	s2s_part_valid(const char *s, size_t n);

#endif
