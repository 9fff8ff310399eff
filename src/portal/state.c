/*
 * The portal's state directory.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/xalloc.h"
#include "portal_int.h"

ps_err
portal_state_open(const char *dir, struct portal_state *ps)
{
	char *db = store_locate(dir, PORTAL_DB);
	ps_err rc;

	memset(ps, 0, sizeof(*ps));
	ps->dir = xstrdup(dir);
	rc = store_open(db, STORE_PORTAL, false, &ps->store);
	free(db);
	if (rc == PS_ENOTFOUND)
		rc = ps_errf(rc, "%s is not a portal state directory (run "
		    "photosync portal init --dir %s --url URL first)", dir,
		    dir);
	if (rc != PS_OK)
		portal_state_close(ps);
	return rc;
}

void
portal_state_close(struct portal_state *ps)
{
	store_close(ps->store);
	free(ps->dir);
	memset(ps, 0, sizeof(*ps));
}

char *
portal_webapp_file(int64_t id, const char *what)
{
	return xasprintf("webapp-%" PRId64 "-%s.pem", id, what);
}

char *
portal_webapp_path(const char *dir, int64_t id, const char *what)
{
	char *name = portal_webapp_file(id, what);
	char *path = file_join(dir, name);

	free(name);
	return path;
}
