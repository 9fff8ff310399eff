/*
 * The admin commands' --help, stated once per command: a role's help
 * lists every command, and `photosync ROLE COMMAND [VERB] --help` prints
 * that command's alone, from the same table.
 */
#ifndef PS_HELP_H
#define PS_HELP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One command ("webapp set") of a role. */
struct help_entry {
	const char	*cmd;		/* "webapp" */
	const char	*verb;		/* "set", or NULL for none */
	/* Its options; later lines begin with 7 spaces. */
	const char	*synopsis;
	/* What it does, lines indented by 6 spaces, or NULL. */
	const char	*about;
	/* Printed after it in its own help only (a list of settings), or
	 * NULL. */
	const char	*more;
};

struct help {
	const char		*role;		/* "portal" */
	const char		*intro;		/* after its usage line */
	const struct help_entry	*entries;
	size_t			 n;
	const char		*outro;		/* after its commands */
	const char		*footer;	/* ends every help */
};

/* The role's help: its usage line, intro, every command, outro, footer. */
void	help_role(FILE *, const struct help *);
/*
 * The help of `cmd` `verb`, or of every verb of `cmd` when `verb` is NULL
 * or not one of them. Returns false, printing nothing, when the role has
 * no command `cmd`.
 */
bool	help_command(FILE *, const struct help *, const char *cmd,
	    const char *verb);

#endif
