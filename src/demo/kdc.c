/*
 * photosync demo --sso: single sign-on for the demo's users, with a
 * Kerberos KDC of the realm CONTOSO.COM of the demo's own, in D/kdc.
 *
 * MIT's KDC programs (krb5-kdc, krb5-admin-server) make it: kdb5_util
 * the database, kadmin.local the users test1..3 (the demo's password)
 * and the service HTTP/localhost with its keytab, krb5kdc serves it on
 * 127.0.0.1, port N+2, until the demo stops. Both roles are on
 * `localhost`, and a service principal names a host, not a port: they
 * share HTTP/localhost and its keytab. Nothing outside D is read or
 * written: every program gets KRB5_CONFIG and KRB5_KDC_PROFILE pointing
 * into D/kdc, and the servers keep their replay caches there
 * (KRB5RCACHEDIR). A browser profile in D/kdc/chromium starts as one
 * that has seen a Negotiate challenge (Chromium on Linux loads GSSAPI
 * only then).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "demo_int.h"

#define DEMO_REALM	"CONTOSO.COM"
#define DEMO_SERVICE	"HTTP/" DEMO_HOST "@" DEMO_REALM

/*
 * A program of MIT's KDC: on the PATH, or in /usr/sbin (a user's PATH may
 * lack it). NULL when missing.
 */
static char *
kdc_program(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *p, *found = NULL;

	copy = xasprintf("%s:/usr/sbin:/sbin", path ? path : "/usr/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		p = file_join(dir, name);
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

/* D/kdc/NAME, or D/kdc itself for NULL. */
static char *
kdc_path(const struct demo *d, const char *name)
{
	char *dir = file_join(d->dir, "kdc");
	char *p;

	if (name == NULL)
		return dir;
	p = file_join(dir, name);
	free(dir);
	return p;
}

/* In a child: the KDC's configuration, not the machine's. */
static void
kdc_env(const struct demo *d)
{
	char *conf = kdc_path(d, "krb5.conf");
	char *kdc = kdc_path(d, "kdc.conf");

	setenv("KRB5_CONFIG", conf, 1);
	setenv("KRB5_KDC_PROFILE", kdc, 1);
	free(conf);
	free(kdc);
}

/*
 * Runs one of the KDC's programs (argv[0] its name) with the KDC's
 * configuration, its output in the set-up log; PS_OK when it exits 0.
 */
static ps_err
kdc_run(struct demo *d, const char *const *argv)
{
	char *prog = kdc_program(argv[0]);
	ps_err rc;

	if (prog == NULL)
		return ps_errf(PS_ENOTFOUND, "%s not found: install krb5-kdc "
		    "and krb5-admin-server (scripts/deps.sh demo)", argv[0]);
	rc = demo_run_logged(d, prog, argv, kdc_env, argv[0], NULL);
	free(prog);
	return rc;
}

static ps_err
kadmin(struct demo *d, const char *query)
{
	const char *argv[] = { "kadmin.local", "-r", DEMO_REALM, "-q", query,
	    NULL };

	return kdc_run(d, argv);
}

/* The KDC's configuration files, for the port N+2. */
static ps_err
kdc_write_conf(struct demo *d)
{
	char *conf = kdc_path(d, "krb5.conf"), *kdc = kdc_path(d, "kdc.conf");
	char *acl = kdc_path(d, "kadm5.acl"), *log = kdc_path(d, "kdc.log");
	char *db = kdc_path(d, "principal"), *stash = kdc_path(d, "stash");
	struct buf b;
	ps_err rc;

	buf_init(&b, 8192);
	buf_addf(&b, "[libdefaults]\n"
	    " default_realm = " DEMO_REALM "\n"
	    " dns_lookup_kdc = false\n"
	    " dns_lookup_realm = false\n"
	    " dns_canonicalize_hostname = false\n"
	    " rdns = false\n"
	    " udp_preference_limit = 1\n"
	    "[realms]\n"
	    " " DEMO_REALM " = {\n  kdc = 127.0.0.1:%d\n }\n"
	    "[domain_realm]\n"
	    " " DEMO_HOST " = " DEMO_REALM "\n", d->port_base + 2);
	if ((rc = file_write_atomic(conf, b.b_data, b.b_len, 0644)) != PS_OK)
		goto out;
	buf_reset(&b);
	buf_addf(&b, "[kdcdefaults]\n"
	    " kdc_listen = 127.0.0.1:%d\n"
	    " kdc_tcp_listen = 127.0.0.1:%d\n"
	    "[realms]\n"
	    " " DEMO_REALM " = {\n"
	    "  database_name = %s\n"
	    "  key_stash_file = %s\n"
	    "  acl_file = %s\n"
	    " }\n"
	    "[logging]\n"
	    " kdc = FILE:%s\n", d->port_base + 2, d->port_base + 2, db, stash,
	    acl, log);
	if ((rc = file_write_atomic(kdc, b.b_data, b.b_len, 0600)) != PS_OK)
		goto out;
	rc = file_write_atomic(acl, "", 0, 0600);
out:
	buf_cleanup(&b);
	free(conf);
	free(kdc);
	free(acl);
	free(log);
	free(db);
	free(stash);
	return rc;
}

/* Chromium's browser-wide preferences: it has seen Negotiate. */
static ps_err
kdc_browser_profile(struct demo *d)
{
	static const char state[] = "{\"net\": "
	    "{\"received_http_auth_negotiate_headers\": true}}\n";
	char *dir = kdc_path(d, "chromium");
	char *file = file_join(dir, "Local State");
	ps_err rc = PS_OK;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		rc = ps_errf(PS_EIO, "%s: %s", dir, strerror(errno));
	else
		rc = file_write_atomic(file, state, strlen(state), 0600);
	free(dir);
	free(file);
	return rc;
}

ps_err
demo_kdc_set_up(struct demo *d)
{
	char *dir = kdc_path(d, NULL), *keytab = kdc_path(d, "http.keytab");
	char *done = kdc_path(d, "ready"), *q = NULL;
	char master_pw[33];
	unsigned char rnd[16];
	struct stat sb;
	ps_err rc = PS_OK;
	int i;

	if (stat(done, &sb) == 0)
		goto out;
	printf("  Kerberos realm " DEMO_REALM " (KDC on port %d) .. ",
	    d->port_base + 2);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = ps_errf(PS_EIO, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = kdc_write_conf(d)) != PS_OK)
		goto fail;
	rand_bytes(rnd, sizeof(rnd));
	for (i = 0; i < 16; i++)
		snprintf(master_pw + 2 * i, 3, "%02x", rnd[i]);
	{
		const char *a[] = { "kdb5_util", "create", "-s", "-r",
		    DEMO_REALM, "-P", master_pw, NULL };
		if ((rc = kdc_run(d, a)) != PS_OK)
			goto fail;
	}
	explicit_bzero(master_pw, sizeof(master_pw));
	/* The demo's users, with the demo's password (printed anyway). */
	for (i = 1; i <= 3 && rc == PS_OK; i++) {
		q = xasprintf("addprinc -pw %s test%d", d->password, i);
		rc = kadmin(d, q);
		free(q);
	}
	if (rc != PS_OK ||
	    (rc = kadmin(d, "addprinc -randkey " DEMO_SERVICE)) != PS_OK)
		goto fail;
	q = xasprintf("ktadd -k %s " DEMO_SERVICE, keytab);
	rc = kadmin(d, q);
	free(q);
	if (rc != PS_OK || (rc = kdc_browser_profile(d)) != PS_OK)
		goto fail;
	{
		const char *a[] = { "portal", "webapp", "set", "--dir",
		    d->portal_dir, "--keytab", keytab, "--kerberos-service",
		    DEMO_SERVICE, "--kerberos-realms", DEMO_REALM "=CONTOSO",
		    NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto fail;
	}
	{
		const char *a[] = { "master", "kerberos", "set", "--dir",
		    d->master_dir, "--keytab", keytab, "--service",
		    DEMO_SERVICE, "--realms", DEMO_REALM "=" DEMO_DOMAIN,
		    NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto fail;
	}
	if ((rc = demo_mark_done(done, d->port_base)) != PS_OK)
		goto fail;
	printf("ok\n");
	goto out;
fail:
	printf("failed\n");
out:
	free(dir);
	free(keytab);
	free(done);
	return rc;
}

ps_err
demo_kdc_start(struct demo *d)
{
	char *prog = kdc_program("krb5kdc");
	char *log = kdc_path(d, "kdc.log"), *rcache = kdc_path(d, NULL);
	char *conf = kdc_path(d, "krb5.conf");
	char *data = NULL;
	size_t len, seen = 0;
	int i, status, fd;
	ps_err rc = PS_OK;

	if (prog == NULL) {
		rc = ps_errf(PS_ENOTFOUND, "krb5kdc not found: install "
		    "krb5-kdc (scripts/deps.sh demo)");
		goto out;
	}
	if (demo_port_taken(d->port_base + 2)) {
		rc = ps_errf(PS_EEXIST, "port %d (the demo's KDC) is in use by "
		    "another program", d->port_base + 2);
		goto out;
	}
	/* Only what this start writes counts: the log is kept. */
	if (file_read(log, 1 << 24, &data, &seen) != PS_OK)
		seen = 0;
	free(data);
	data = NULL;
	fflush(stdout);
	if ((d->kdc_pid = fork()) < 0) {
		d->kdc_pid = 0;
		rc = ps_errf(PS_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	if (d->kdc_pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		kdc_env(d);
		execl(prog, "krb5kdc", "-n", "-r", DEMO_REALM, (char *)NULL);
		_exit(127);
	}
	/* It says "commencing operation" in its log once it serves. */
	for (i = 0; i < 400; i++) {
		if (file_read(log, 1 << 24, &data, &len) == PS_OK &&
		    len > seen && strstr(data + seen, "commencing operation"))
			break;
		free(data);
		data = NULL;
		if (waitpid(d->kdc_pid, &status, WNOHANG) == d->kdc_pid) {
			d->kdc_pid = 0;
			rc = ps_errf(PS_EIO, "the KDC stopped at start; see %s",
			    d->log);
			goto out;
		}
		usleep(50000);
	}
	if (data == NULL) {
		rc = ps_errf(PS_ETIMEOUT, "the KDC did not start; see %s",
		    log);
		goto out;
	}
	/* For the servers started next: the replay cache in D/kdc. */
	setenv("KRB5_CONFIG", conf, 1);
	setenv("KRB5RCACHEDIR", rcache, 1);
out:
	free(data);
	free(prog);
	free(log);
	free(rcache);
	free(conf);
	return rc;
}

void
demo_kdc_print(const struct demo *d, int pport)
{
	char *conf = kdc_path(d, "krb5.conf"), *cc = kdc_path(d, "cc-test1");
	char *profile = kdc_path(d, "chromium");

	printf("  Single sign-on (Kerberos, realm " DEMO_REALM "; the KDC "
	    "on port %d):\n"
	    "  get test1's ticket (the password above), then start a browser "
	    "with it:\n"
	    "    export KRB5_CONFIG=%s KRB5CCNAME=FILE:%s\n"
	    "    kinit test1\n"
	    "    chromium --auth-server-allowlist=" DEMO_HOST " "
	    "--user-data-dir=%s \\\n"
	    "      https://" DEMO_HOST ":%d/my\n"
	    "  (Firefox: network.negotiate-auth.trusted-uris = " DEMO_HOST
	    "); or curl --negotiate -u : --cacert %s https://" DEMO_HOST
	    ":%d/my\n\n", d->port_base + 2, conf, cc, profile, pport,
	    d->ca_cert, pport);
	free(conf);
	free(cc);
	free(profile);
}
