/*
 * photosync demo --directory: the demo's people in an OpenLDAP slapd of
 * the demo's own (D/ldap: a generated slapd.conf, an MDB database loaded
 * with slapadd, listening on 127.0.0.1, port N+3: N+2 is the KDC's with --sso), and the master's
 * mailboxes and the portal's users read from it (`mailbox sync`, `user
 * sync`, OpenLDAP's attribute names) instead of added one by one, with
 * passwords checked by the directory and a sync every hour in `serve`
 * (`directory set`). test3 is in the directory but has no mailbox: the
 * master's filter leaves it out, as in the article. slapd loads the
 * project's thumbnailPhoto schema (embedded from data/ldap) and the
 * people are extensibleObject too, so that the master writes their
 * photos to thumbnailPhoto and jpegPhoto (`directory set --photos on`).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/file.h"
#include "common/xalloc.h"
#include "demo_int.h"

#define LDAP_BASE	"dc=contoso,dc=com"
#define LDAP_ADMIN	"cn=admin," LDAP_BASE
/* The master's people: everyone but test3, who has no mailbox. */
#define MASTER_FILTER	"(&(objectClass=inetOrgPerson)(!(uid=test3)))"

static const char *const people[][3] = {
	{ "test1", "Test One", "One" },
	{ "test2", "Test Two", "Two" },
	{ "test3", "Test Three", "Three" },
};

/* slapd's programs: on PATH, else in /usr/sbin (Debian's slapd). */
static char *
program(const char *name)
{
	char *p = xasprintf("/usr/sbin/%s", name);

	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return xstrdup(name);
}

static char *
ldap_dir(const struct demo *d)
{
	return file_join(d->dir, "ldap");
}

char *
demo_directory_uri(const struct demo *d)
{
	return xasprintf("ldap://127.0.0.1:%d", DEMO_LDAP_PORT(d));
}

/* Runs slapadd on `ldif` into the database of `conf`. */
static ps_err
slapadd(struct demo *d, const char *conf, const char *ldif_path)
{
	char *prog = program("slapadd");
	const char *argv[] = { "slapadd", "-f", conf, "-q", "-l", ldif_path,
	    NULL };
	ps_err rc;

	rc = demo_run_logged(d, prog, argv, NULL, "slapadd",
	    "; is slapd installed? scripts/deps.sh test");
	free(prog);
	return rc;
}

ps_err
demo_directory_make(struct demo *d)
{
	char *dir = ldap_dir(d), *db = file_join(dir, "db");
	char *conf = file_join(dir, "slapd.conf");
	char *ldif_path = file_join(dir, "people.ldif");
	char *schema_path = file_join(dir, "thumbnailphoto.schema");
	char *text = NULL, *ldif = NULL, *more;
	const char *schema;
	size_t i, schema_len;
	ps_err rc;

	if ((rc = file_mkdir(dir)) != PS_OK || (rc = file_mkdir(db)) != PS_OK)
		goto out;
	schema = demo_ldap_schema("thumbnailphoto.schema", &schema_len);
	if ((rc = file_write_atomic(schema_path, schema, schema_len, 0600)) !=
	    PS_OK)
		goto out;
	text = xasprintf(
	    "include /etc/ldap/schema/core.schema\n"
	    "include /etc/ldap/schema/cosine.schema\n"
	    "include /etc/ldap/schema/inetorgperson.schema\n"
	    "include %s\n"
	    "modulepath /usr/lib/ldap\n"
	    "moduleload back_mdb\n"
	    "pidfile %s/slapd.pid\n"
	    "database mdb\n"
	    "maxsize 104857600\n"
	    "suffix \"" LDAP_BASE "\"\n"
	    "rootdn \"" LDAP_ADMIN "\"\n"
	    "rootpw %s\n"
	    "directory %s\n"
	    "index objectClass,uid,mail eq\n"
	    "access to attrs=userPassword by self write by anonymous auth "
	    "by * none\n"
	    "access to * by * read\n", schema_path, dir, d->password, db);
	if ((rc = file_write_atomic(conf, text, strlen(text), 0600)) !=
	    PS_OK)
		goto out;
	ldif = xstrdup("dn: " LDAP_BASE "\nobjectClass: dcObject\n"
	    "objectClass: organization\no: contoso\ndc: contoso\n\n"
	    "dn: ou=people," LDAP_BASE "\nobjectClass: organizationalUnit\n"
	    "ou: people\n\n");
	for (i = 0; i < sizeof(people) / sizeof(people[0]); i++) {
		more = xasprintf("%sdn: uid=%s,ou=people," LDAP_BASE "\n"
		    "objectClass: inetOrgPerson\nobjectClass: extensibleObject\n"
		    "uid: %s\ncn: %s\nsn: %s\n"
		    "mail: %s@" DEMO_DOMAIN "\nuserPassword: %s\n\n", ldif,
		    people[i][0], people[i][0], people[i][1], people[i][2],
		    people[i][0], d->password);
		free(ldif);
		ldif = more;
	}
	if ((rc = file_write_atomic(ldif_path, ldif, strlen(ldif), 0600)) ==
	    PS_OK)
		rc = slapadd(d, conf, ldif_path);
out:
	free(text);
	free(ldif);
	free(ldif_path);
	free(schema_path);
	free(conf);
	free(db);
	free(dir);
	return rc;
}

/* Whether something accepts connections on 127.0.0.1:port. */
static bool
accepting(int port)
{
	struct sockaddr_in sa = { 0 };
	int fd;
	bool yes;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return false;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	yes = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return yes;
}

ps_err
demo_directory_start(struct demo *d)
{
	char *dir = ldap_dir(d), *conf = file_join(dir, "slapd.conf");
	char *uri = demo_directory_uri(d), *prog = program("slapd");
	char *log = file_join(d->dir, "slapd.log");
	int i, fd, status;
	ps_err rc = PS_OK;

	if (demo_port_taken(DEMO_LDAP_PORT(d))) {
		rc = ps_errf(PS_EIO, "port %d, the directory's, is in use by "
		    "another program", DEMO_LDAP_PORT(d));
		goto out;
	}
	fflush(stdout);
	if ((d->ldap_pid = fork()) < 0) {
		d->ldap_pid = 0;
		rc = ps_errf(PS_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	if (d->ldap_pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		/* A demo killed outright leaves no slapd behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* -d 0: in the foreground, a child the demo can stop. */
		execlp(prog, "slapd", "-f", conf, "-h", uri, "-d", "0",
		    (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !accepting(DEMO_LDAP_PORT(d)); i++) {
		if (waitpid(d->ldap_pid, &status, WNOHANG) == d->ldap_pid) {
			d->ldap_pid = 0;
			rc = ps_errf(PS_EIO, "slapd stopped at start; see %s",
			    log);
			goto out;
		}
		usleep(50000);
	}
	if (i == 200)
		rc = ps_errf(PS_ETIMEOUT, "slapd did not start; see %s", log);
out:
	free(log);
	free(prog);
	free(uri);
	free(conf);
	free(dir);
	return rc;
}

/*
 * `ROLE directory set` and the first `mailbox sync` or `user sync` of
 * `dir`, with `filter` (NULL: the people).
 */
static ps_err
wire(struct demo *d, const char *role, const char *dir, const char *filter)
{
	char *uri = demo_directory_uri(d);
	bool master = strcmp(role, "master") == 0;
	const char *sync_verb = master ? "mailbox" : "user";
	ps_err rc;

	{
		/*
		 * The master (the only one with a filter) writes the photos,
		 * binding as it reads; the portal's list ends at the NULL.
		 */
		const char *a[] = { role, "directory", "set", "--dir", dir,
		    "--ldap", uri, "--base", LDAP_BASE, "--bind-dn",
		    LDAP_ADMIN, "--password-file", d->password_file,
		    "--attributes", "openldap", "--every", "1h",
		    "--passwords", "on", master ? "--photos" : NULL, "on",
		    "--filter", filter, NULL };
		rc = demo_run_self(d, a);
	}
	if (rc == PS_OK) {
		const char *a[] = { role, sync_verb, "sync", "--dir", dir,
		    "--ldap", uri, "--base", LDAP_BASE, "--bind-dn",
		    LDAP_ADMIN, "--password-file", d->password_file,
		    "--attributes", "openldap", filter ? "--filter" : NULL,
		    filter, NULL };
		rc = demo_run_self(d, a);
	}
	free(uri);
	return rc;
}

ps_err
demo_directory_master(struct demo *d)
{
	return wire(d, "master", d->master_dir, MASTER_FILTER);
}

ps_err
demo_directory_portal(struct demo *d)
{
	return wire(d, "portal", d->portal_dir, NULL);
}
