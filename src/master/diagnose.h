/*
 * photosync master diagnose: the master's side of the trust with its
 * partner portals, checked step by step, changing nothing stored.
 */
#ifndef PS_MASTER_DIAGNOSE_H
#define PS_MASTER_DIAGNOSE_H

struct master_state;

/*
 * Checks the master's own certificates, then for the partner `partner`
 * (a name or issuer; NULL: every partner) its stored metadata, the way to
 * its metadata URL (dns, tcp, tls verified against `ca_file` or the
 * system's CAs), the live document, its certificates against the stored
 * ones, their validity dates and the issuer and realm. Prints one line
 * per step (PASS, FAIL with the most likely fix, SKIP). Reads the store
 * only. The first step, "store", passes with `store_what` (diag_store(),
 * which the caller ran before opening the state). Returns the exit
 * status: 0 when no step failed, 1 otherwise.
 */
int	master_diagnose_run(struct master_state *, const char *store_what,
	    const char *partner, const char *ca_file);

#endif
