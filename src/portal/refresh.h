/*
 * photosync portal refresh: the whole cache, or some users, in one
 * command.
 */
#ifndef PS_REFRESH_H
#define PS_REFRESH_H

#include <stdbool.h>
#include <stddef.h>

struct portal_state;
struct refresh;

/*
 * Refreshes `accounts` (account names or addresses), or every user with
 * `all`, in every web application (or only `url`), `concurrency` at a
 * time. Prints progress and a summary; returns the exit status (0 when
 * nothing failed).
 */
int	portal_refresh_run(struct portal_state *, const char *url,
	    const char *const *accounts, size_t n_accounts, bool all,
	    bool force, int concurrency);

#endif
