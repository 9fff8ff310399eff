/*
 * The portal's users from the organisation's directory: the record a
 * person makes (account DOMAIN\login, address, name), read and written
 * through the store's directory functions, for `portal user sync` and
 * the schedule of `serve` (directory/sync.h does the rest).
 */
#ifndef PS_PORTAL_DIRECTORY_H
#define PS_PORTAL_DIRECTORY_H

#include <stdbool.h>

#include "directory/sync.h"

#define PORTAL_DOMAIN_MAX	64

struct portal_directory {
	char	domain[PORTAL_DOMAIN_MAX];	/* accounts' DOMAIN, lower */
};

/*
 * Sets up `pd` for accounts DOMAIN\login: `domain`, or when NULL the
 * first dc= of `base` (dc=contoso,dc=com: contoso). PS_EINVAL when there
 * is none or it cannot be an account's domain.
 */
ps_err	portal_directory_init(struct portal_directory *pd, const char *domain,
	    const char *base);

/* The sync's operations on the portal's users; `pd` must outlive them. */
void	portal_directory_ops(struct portal_directory *pd,
	    struct dir_sync_ops *ops);

struct dir_settings;

/*
 * For the schedule (directory/schedule.h): `arg` is a struct
 * portal_directory that the schedule's thread alone uses.
 */
ps_err	portal_directory_ops_for(void *arg, const struct dir_settings *s,
	    struct dir_sync_ops *ops);

#endif
