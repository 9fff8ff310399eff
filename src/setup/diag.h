/*
 * The report of the diagnose commands of both roles: one line per step,
 * "PASS", "FAIL" or "SKIP", the step's name and what was found, and after
 * a failure the most likely fix in one sentence. Also the three steps of
 * the way to a server (dns, tcp, tls) from an xfer_probe().
 */
#ifndef PS_DIAG_H
#define PS_DIAG_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "xfer/xfer.h"

enum diag_verdict { DIAG_PASS, DIAG_FAIL, DIAG_SKIP };

struct diag {
	int		 n_pass, n_fail, n_skip;
	const char	*scope;		/* named before failed steps, or NULL */
	char		 failed[512];	/* the names of the failed steps */
};

/*
 * Prints one step: "PASS  name         what", and for a failure with a
 * `fix`, "      fix: fix" on the next line.
 */
void	diag_step(struct diag *, enum diag_verdict, const char *name,
	    const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The closing line; returns the exit status (0: no step failed). */
int	diag_end(struct diag *);

/* What to do when the way to a server fails, in the caller's terms. */
struct diag_route_fix {
	const char	*dns;		/* the name does not resolve */
	const char	*connect;	/* nothing answers at host:port */
	const char	*ca;		/* the certificate does not verify */
};

/*
 * Prints the dns, tcp and tls steps of `p` (from xfer_probe on `url`),
 * the stages after a failed one as SKIP; `prefix` goes before each step
 * name ("" or e.g. "metadata-"). Returns true when all passed.
 */
bool	diag_route(struct diag *, const char *prefix,
	    const struct xfer_probe *p, const struct diag_route_fix *);

/*
 * The first step of both roles' diagnose, "store": whether the store at
 * `address` (store_locate() in `dir`) opens (store_check()). True with
 * what it is in `what`, for the caller's PASS step in its own report;
 * false after printing the step's FAIL (the address, never a password,
 * and the server's error), its fix and the closing line: nothing else
 * can be checked without the store.
 */
bool	diag_store(const char *address, enum store_role, const char *dir,
	    char *what, size_t n);

/* "42 seconds", "5 minutes", "3 hours", "2 days" into buf. */
const char *diag_ago(int64_t seconds, char buf[32]);

#endif
