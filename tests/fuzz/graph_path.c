/*
 * Fuzz target: the Graph photo API's request paths on the master
 * (graph_parse_path): /v1.0/{me|users/{x}}/photo[/$value] and
 * .../photos[/{size}[/$value]]. A path that is taken names a user (me,
 * or a non-empty {x} without '/') and one of the three resources, a
 * known size or -1; written again from what was read (a known size in
 * its own spelling), it is taken again with the same meaning, and for
 * photo and photos it is the path itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "exchange/ews.h"
#include "fuzz.h"
#include "master/master_int.h"

static void
check(const char *path, const struct graph_path *gp)
{
	struct graph_path again;
	char size[32], *rebuilt;

	if (gp->me != (gp->who[0] == '\0') || strchr(gp->who, '/') != NULL ||
	    gp->code < -1 || gp->code >= EWS_SIZE_COUNT ||
	    (gp->what != G_SIZE && gp->code != 0) ||
	    (gp->what == G_PHOTOS && gp->value))
		abort();
	if (gp->what == G_SIZE && gp->code < 0)
		return;		/* answered 404: nothing to write again */
	if (gp->what == G_SIZE)
		snprintf(size, sizeof(size), "photos/%dx%d",
		    ews_sizes[gp->code], ews_sizes[gp->code]);
	else
		snprintf(size, sizeof(size), "%s", gp->what == G_PHOTO ?
		    "photo" : "photos");
	if (gp->me)
		rebuilt = xasprintf("/v1.0/me/%s%s", size,
		    gp->value ? "/$value" : "");
	else
		rebuilt = xasprintf("/v1.0/users/%s/%s%s", gp->who, size,
		    gp->value ? "/$value" : "");
	if (!graph_parse_path(rebuilt, &again) || again.what != gp->what ||
	    again.value != gp->value || again.code != gp->code ||
	    again.me != gp->me || strcmp(again.who, gp->who) != 0)
		abort();
	if (gp->what != G_SIZE && strcmp(rebuilt, path) != 0)
		abort();
	free(rebuilt);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct graph_path gp;
	char *path = xmalloc(size + 1);

	memcpy(path, data, size);
	path[size] = '\0';
	if (graph_parse_path(path, &gp))
		check(path, &gp);
	free(path);
	return 0;
}
