/*
 * Internals shared by the xfer module's blocking (xfer.c) and
 * event-driven (xfer_multi.c) transfers.
 */
#ifndef PS_XFER_INT_H
#define PS_XFER_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Splits one header line as libcurl hands it over ("Name: value\r\n")
 * into its name and its value, trimmed. False for anything that is not a
 * header line (the status line, the blank line) or that holds a NUL.
 */
bool	xfer_header_split(const char *p, size_t len, size_t *nlen,
	    const char **v, size_t *vlen);

/* Copies a header value; cut to fit, or with `whole` "" if it does not. */
void	xfer_value_copy(char *dst, size_t dstlen, const char *v, size_t vlen,
	    bool whole);

/*
 * True when the server's certificate was refused (not trusted, wrong
 * name, pinned key, revoked): "TLS verification failed", as against a
 * handshake that failed for another reason.
 */
bool	xfer_tls_verify_failed(CURLcode);

#endif
