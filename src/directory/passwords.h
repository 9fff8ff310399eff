/*
 * Passwords from the organisation's directory (`directory set
 * --passwords on`): a server's sign-in guard checks the password of a
 * user or mailbox that came from the directory by a bind as that person
 * (dir_check_password()), on the guard's threads, instead of a stored
 * hash (auth/guard.h: AUTH_GUARD_EXTERNAL).
 *
 * The role's account lookup, on the store's read lane, tells whether
 * the setting is on and keeps the directory's settings it read for the
 * checks that follow; the check copies them under a lock. Any thread.
 */
#ifndef PS_DIRECTORY_PASSWORDS_H
#define PS_DIRECTORY_PASSWORDS_H

#include <stdbool.h>

#include "common/err.h"

struct store;
struct dir_passwords;

struct dir_passwords *dir_passwords_new(void);
void	dir_passwords_free(struct dir_passwords *);

/*
 * On a store thread: reads the directory's settings from `st`, keeps
 * them, and says in *on whether passwords come from the directory.
 */
ps_err	dir_passwords_refresh(struct dir_passwords *, struct store *st,
	    bool *on);

/*
 * An auth_guard_external_fn (`arg` a struct dir_passwords): checks
 * `password` for `account` ("DOMAIN\login" or an address) with the
 * settings last kept. PS_OK right, PS_EAUTH wrong, anything else (no
 * directory set, the directory down or refusing the search's bind) the
 * directory could not say.
 */
ps_err	dir_passwords_check(void *arg, const char *account,
	    const char *password);

#endif
