/*
 * Small string, encoding, randomness and time helpers used everywhere.
 * Pure functions; no third-party library.
 */
#ifndef PS_STR_H
#define PS_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

bool	 str_case_eq(const char *, const char *);
bool	 str_case_prefix(const char *s, const char *prefix);
void	 str_lower(char *);
/* Copies at most n-1 bytes and terminates; returns false if truncated. */
bool	 str_copy(char *dst, const char *src, size_t n);
/*
 * Builds a string in dst[size] (size > 0) piece by piece where snprintf's
 * cost shows (every request's keys and fields): appends `s`, or the
 * decimal `v`, at dst[at], truncating like snprintf, and returns the new
 * length.
 */
size_t	 str_cat(char *dst, size_t size, size_t at, const char *s);
size_t	 str_cat_int(char *dst, size_t size, size_t at, int64_t v);
/* Constant-time comparison of two equal-length byte strings. */
bool	 str_ct_eq(const void *, const void *, size_t);

/* Fills `p` from the kernel's random source; aborts if it cannot. */
void	 rand_bytes(void *p, size_t n);
/* Lower-case hex of `n` bytes into `out` (2n+1 bytes). */
void	 hex_encode(const void *p, size_t n, char *out);
/* The value of one hex digit, either case; -1 for anything else. */
int	 hex_digit(int c);
/* A 64-bit random id as 16 hex digits (log correlation). */
void	 reqid_new(char out[17]);
/* A random (version 4) GUID in lower case, 36 characters. */
void	 guid_new(char out[37]);
/* True when s is a GUID in canonical 8-4-4-4-12 hex form. */
bool	 guid_valid(const char *s);

/*
 * Base64. encode: url=false gives the standard alphabet with padding,
 * url=true the URL-safe alphabet without padding; the caller frees the
 * result. decode accepts either alphabet, with or without padding, and
 * fails with PS_EINVAL on anything else; the caller frees *out.
 */
char	*b64_encode(const void *p, size_t n, bool url);
ps_err	 b64_decode(const char *s, size_t n, unsigned char **out,
	    size_t *outlen);

/*
 * Durations carry their unit: "0m", "90m", "6h", "2d", also "30s" and
 * "1w". A bare number is refused with a message that names the units.
 */
ps_err	 duration_parse(const char *s, int64_t *seconds);
/* Formats with the largest exact unit ("6h", "90m", "0m"). */
const char *duration_format(int64_t seconds, char buf[32]);

/*
 * Sizes carry their unit: "512K", "64M", "2G" (powers of 1024). A bare
 * number is refused with a message that names the units.
 */
ps_err	 size_parse(const char *s, size_t *bytes);

/*
 * An SMTP address as photosync accepts it: local@domain, printable ASCII
 * without spaces, quotes, slashes, backslashes or control characters,
 * at most 254 bytes, a dot in the domain or "localhost".
 */
bool	 email_valid(const char *);

/* Wall-clock seconds since 1970, and a monotonic clock in milliseconds. */
int64_t	 time_now(void);
int64_t	 time_mono_ms(void);
/* RFC 1123 date ("Wed, 25 Nov 2026 15:30:00 GMT") into buf. */
const char *time_http(int64_t t, char buf[40]);

#endif
