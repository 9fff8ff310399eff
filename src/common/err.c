/*
 * The error type: constant descriptions and the thread-local reason.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#undef ps_errf	/* the function, not the analyzer's view of it (err.h) */

static _Thread_local char errmsg[512];

const char *
ps_strerror(ps_err rc)
{
	switch (rc) {
	case PS_OK:		return "success";
	case PS_ENOMEM:		return "out of memory";
	case PS_EINVAL:		return "invalid input";
	case PS_ELIMIT:		return "limit exceeded";
	case PS_ENOTFOUND:	return "not found";
	case PS_EEXIST:		return "already exists";
	case PS_ETIMEOUT:	return "timed out";
	case PS_EUPSTREAM:	return "remote peer failed";
	case PS_EAUTH:		return "not authorized";
	case PS_ESTORE:		return "store failure";
	case PS_EIMAGE:		return "image failure";
	case PS_EIO:		return "input/output failure";
	case PS_ECRYPTO:	return "cryptographic failure";
	case PS_EBUSY:		return "busy, try again later";
	}
	return "unknown error";
}

ps_err
ps_errf(ps_err rc, const char *fmt, ...)
{
	char msg[sizeof(errmsg)];
	va_list ap;

	/* Through a copy: callers may pass ps_errmsg() as an argument. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(errmsg, msg, sizeof(errmsg));
	return rc;
}

const char *
ps_errmsg(void)
{
	return errmsg[0] ? errmsg : "unknown error";
}

void
ps_errclear(void)
{
	errmsg[0] = '\0';
}
