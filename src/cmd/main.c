/*
 * photosync: one program, subcommands like git. This file only dispatches
 * to the roles; everything else lives in the core library.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "common/log.h"
#include "demo/demo.h"
#include "master/master.h"
#include "portal/portal.h"
#include "ps_version.h"
#include "xfer/xfer.h"

static const char usage_text[] =
"usage: photosync ROLE COMMAND [options]\n"
"\n"
"High-resolution user photos from the mail server, everywhere.\n"
"\n"
"roles:\n"
"  master    the mail server's part: mailboxes, photos, Autodiscover,\n"
"            EWS GetUserPhoto, S2S OAuth (photosync master --help)\n"
"  portal    the portal's part: user profiles, the User Photos cache,\n"
"            on-demand sync from the master (photosync portal --help)\n"
"  demo      both, wired together on this machine (photosync demo --help)\n"
"  version   print the version (also: photosync --version)\n"
"\n"
"photosync --help (or -h) prints this help.\n"
"Logs go to standard error, one logfmt event per line; set\n"
"PHOTOSYNC_DEBUG=1 for debug events.\n";

int
main(int argc, char **argv)
{
	const char *role = argc > 1 ? argv[1] : NULL;
	int debug = getenv("PHOTOSYNC_DEBUG") != NULL;

	/* A file size limit fails the write (the store and the log say
	 * so) instead of killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	/*
	 * Photos are decoded into buffers of a few hundred KiB, many times
	 * a second: from the heap, reused, rather than mapped and unmapped
	 * each time (glibc's default above 128 KiB), whose page faults cost
	 * more than the resizing itself. Freed memory over 8 MiB at the
	 * heap's top still goes back to the system, and buffers of 1 MiB and
	 * more (request bodies) are still mapped, so memory is given back.
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	if (role == NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (strcmp(role, "--help") == 0 || strcmp(role, "-h") == 0 ||
	    strcmp(role, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(role, "version") == 0 || strcmp(role, "--version") == 0) {
		printf("photosync %s\n", PS_VERSION);
		return 0;
	}
	if (auth_init() != PS_OK || xfer_global_init() != PS_OK) {
		fprintf(stderr, "photosync: %s\n", ps_errmsg());
		return 1;
	}
	if (strcmp(role, "master") == 0) {
		log_init("master", debug ? LOG_DEBUG : LOG_INFO);
		return master_main(argc - 1, argv + 1);
	}
	if (strcmp(role, "demo") == 0) {
		log_init("demo", debug ? LOG_DEBUG : LOG_INFO);
		return demo_main(argc - 1, argv + 1);
	}
	if (strcmp(role, "portal") == 0) {
		log_init("portal", debug ? LOG_DEBUG : LOG_INFO);
		return portal_main(argc - 1, argv + 1);
	}
	fprintf(stderr, "photosync: unknown role \"%s\" (see photosync "
	    "--help)\n", role);
	return 2;
}
