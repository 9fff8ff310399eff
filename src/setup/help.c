/*
 * The admin commands' --help from one table per role (help.h).
 */
#include <string.h>

#include "help.h"

static void
entry_line(FILE *f, const struct help_entry *e)
{
	fprintf(f, "%s%s%s %s\n", e->cmd, e->verb ? " " : "",
	    e->verb ? e->verb : "", e->synopsis);
}

void
help_role(FILE *f, const struct help *h)
{
	size_t i;

	fprintf(f, "usage: photosync %s COMMAND [options]\n\n%s\ncommands:\n",
	    h->role, h->intro);
	for (i = 0; i < h->n; i++) {
		fputs("  ", f);
		entry_line(f, &h->entries[i]);
		if (h->entries[i].about)
			fputs(h->entries[i].about, f);
	}
	if (h->outro)
		fprintf(f, "\n%s", h->outro);
	fprintf(f, "\n%s", h->footer);
}

bool
help_command(FILE *f, const struct help *h, const char *cmd,
    const char *verb)
{
	const struct help_entry *e;
	const char *more = NULL;
	size_t i, shown = 0;
	bool known_verb = false;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->entries[i].cmd, cmd) == 0 && verb &&
		    h->entries[i].verb && strcmp(h->entries[i].verb, verb) == 0)
			known_verb = true;
	for (i = 0; i < h->n; i++) {
		e = &h->entries[i];
		if (strcmp(e->cmd, cmd) != 0 || (known_verb &&
		    (e->verb == NULL || strcmp(e->verb, verb) != 0)))
			continue;
		fprintf(f, "%s photosync %s ", shown ? "      " : "usage:",
		    h->role);
		entry_line(f, e);
		if (e->about)
			fputs(e->about, f);
		shown++;
		if (e->more)
			more = e->more;
	}
	if (shown == 0)
		return false;
	/* Entries that have one share it (add and set: the settings). */
	if (more)
		fprintf(f, "\n%s", more);
	fprintf(f, "\n%s", h->footer);
	return true;
}
