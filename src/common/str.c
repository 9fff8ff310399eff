/*
 * String, encoding, randomness and time helpers.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "str.h"
#include "xalloc.h"

bool
str_case_eq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

bool
str_case_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

bool
str_copy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (n == 0)
		return false;
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return false;
	}
	memcpy(dst, src, len + 1);
	return true;
}

bool
str_ct_eq(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;

	while (n--)
		d |= *x++ ^ *y++;
	return d == 0;
}

void
rand_bytes(void *p, size_t n)
{
	unsigned char *q = p;

	while (n > 0) {
		ssize_t r = getrandom(q, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		q += r;
		n -= (size_t)r;
	}
}

void
hex_encode(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Request ids correlate log lines; they need to be unique, not secret. A
 * per-thread xorshift generator seeded from the kernel avoids a system
 * call per request.
 */
size_t
str_cat(char *dst, size_t size, size_t at, const char *s)
{
	size_t n;

	if (at >= size)
		return at;
	n = strnlen(s, size - 1 - at);
	memcpy(dst + at, s, n);
	at += n;
	dst[at] = '\0';
	return at;
}

size_t
str_cat_int(char *dst, size_t size, size_t at, int64_t v)
{
	char digits[24], *p = digits + sizeof(digits);
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	*--p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	return str_cat(dst, size, at, p);
}

void
reqid_new(char out[17])
{
	static _Thread_local uint64_t state;
	uint64_t x;
	int i;

	while (state == 0)
		rand_bytes(&state, sizeof(state));
	x = state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	state = x;
	for (i = 15; i >= 0; i--, x >>= 4)
		out[i] = "0123456789abcdef"[x & 15];
	out[16] = '\0';
}

void
guid_new(char out[37])
{
	unsigned char b[16];
	char h[33];

	rand_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	hex_encode(b, sizeof(b), h);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12,
	    h + 16, h + 20);
}

bool
guid_valid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

char *
b64_encode(const void *p, size_t n, bool url)
{
	static const char std[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char safe[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *alpha = url ? safe : std;
	const unsigned char *b = p;
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = alpha[b[i] >> 2];
		*o++ = alpha[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
		*o++ = alpha[((b[i + 1] & 15) << 2) | (b[i + 2] >> 6)];
		*o++ = alpha[b[i + 2] & 63];
	}
	if (i < n) {
		*o++ = alpha[b[i] >> 2];
		if (i + 1 < n) {
			*o++ = alpha[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
			*o++ = alpha[(b[i + 1] & 15) << 2];
		} else {
			*o++ = alpha[(b[i] & 3) << 4];
			if (!url)
				*o++ = '=';
		}
		if (!url)
			*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

ps_err
b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char *o;
	uint32_t acc = 0;
	size_t i, len = 0;
	int bits = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return ps_errf(PS_EINVAL, "invalid base64 length");
	o = xmalloc(n * 3 / 4 + 1);
	for (i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);

		if (v < 0) {
			free(o);
			return ps_errf(PS_EINVAL, "invalid base64 character");
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[len++] = (unsigned char)(acc >> bits);
		}
	}
	*out = o;
	*outlen = len;
	return PS_OK;
}

ps_err
duration_parse(const char *s, int64_t *seconds)
{
	const char *units = "use a number with a unit: s (seconds), "
	    "m (minutes), h (hours), d (days) or w (weeks), e.g. 90m, 6h, 2d";
	char *end;
	long long v;
	int64_t mult;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return ps_errf(PS_EINVAL, "invalid duration \"%s\": %s",
		    s ? s : "", units);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0 || v > 100LL * 365 * 86400)
		return ps_errf(PS_EINVAL, "duration \"%s\" out of range", s);
	if (end[0] == '\0')
		return ps_errf(PS_EINVAL, "duration \"%s\" has no unit: %s",
		    s, units);
	if (end[1] != '\0')
		return ps_errf(PS_EINVAL, "invalid duration \"%s\": %s", s,
		    units);
	switch (end[0]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default:
		return ps_errf(PS_EINVAL, "invalid duration unit in \"%s\": %s",
		    s, units);
	}
	if (v > 100LL * 365 * 86400 / mult)
		return ps_errf(PS_EINVAL, "duration \"%s\" out of range", s);
	*seconds = v * mult;
	return PS_OK;
}

ps_err
size_parse(const char *s, size_t *bytes)
{
	const char *units = "use a number with a unit: K, M or G (1024, "
	    "1024^2, 1024^3 bytes), e.g. 64M";
	unsigned long long v;
	unsigned shift;
	char *end;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return ps_errf(PS_EINVAL, "invalid size \"%s\": %s",
		    s ? s : "", units);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return ps_errf(PS_EINVAL, "size \"%s\" out of range", s);
	if (end[0] == '\0')
		return ps_errf(PS_EINVAL, "size \"%s\" has no unit: %s", s,
		    units);
	if (end[1] != '\0')
		return ps_errf(PS_EINVAL, "invalid size \"%s\": %s", s, units);
	switch (end[0]) {
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	default:
		return ps_errf(PS_EINVAL, "invalid size unit in \"%s\": %s", s,
		    units);
	}
	if (v > (SIZE_MAX >> shift))
		return ps_errf(PS_EINVAL, "size \"%s\" out of range", s);
	*bytes = (size_t)v << shift;
	return PS_OK;
}

const char *
duration_format(int64_t s, char buf[32])
{
	if (s == 0)
		snprintf(buf, 32, "0m");
	else if (s % (7 * 86400) == 0)
		snprintf(buf, 32, "%" PRId64 "w", s / (7 * 86400));
	else if (s % 86400 == 0)
		snprintf(buf, 32, "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(buf, 32, "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(buf, 32, "%" PRId64 "m", s / 60);
	else
		snprintf(buf, 32, "%" PRId64 "s", s);
	return buf;
}

bool
email_valid(const char *s)
{
	const char *at = strchr(s, '@'), *p;
	size_t len = strlen(s);

	if (at == NULL || at == s || len > 254 || strchr(at + 1, '@'))
		return false;
	for (p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || strchr("\"'/\\<>()[],;:`", c))
			return false;
	}
	if (at[1] == '\0' || at[1] == '.' || s[len - 1] == '.' ||
	    strstr(at, ".."))
		return false;
	return strchr(at + 1, '.') != NULL || strcmp(at + 1, "localhost") == 0;
}

int64_t
time_now(void)
{
	return (int64_t)time(NULL);
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
time_http(int64_t t, char buf[40])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return buf;
}
