/*
 * photosync portal diagnose: one user's sync, step by step, with the
 * portal's real settings, changing nothing stored.
 */
#ifndef PS_PORTAL_DIAGNOSE_H
#define PS_PORTAL_DIAGNOSE_H

struct portal_state;

/*
 * Runs each step of a sync of `who` (an account "contoso\test1", its
 * claims form, or an e-mail address) for the web application `url` (its
 * canonical URL, or NULL for the only one) and prints one line per step:
 * PASS, FAIL with the most likely fix, or SKIP when an earlier step it
 * needs failed. Reads the store only. The first step, "store", passes
 * with `store_what` (diag_store(), which the caller ran before opening
 * the state). Returns the exit status: 0 when no step failed, 1
 * otherwise.
 */
int	portal_diagnose_run(struct portal_state *, const char *store_what,
	    const char *url, const char *who);

#endif
