/*
 * photosync demo: sets up and runs the environment of the seed article on
 * loopback, the way an administrator would, by running photosync's own
 * admin commands and servers as child processes:
 *
 *   a local CA; a master (mail domain contoso.com) with mailboxes
 *   test1@contoso.com and test2@contoso.com holding distinct generated
 *   high-resolution photos; a portal with users contoso\test1,
 *   contoso\test2 (mailboxes) and contoso\test3 (none); trust both ways
 *   through the metadata URLs (article steps 4 and 5); photo import on
 *   with 6h/1h windows (step 6).
 *
 * It writes DIR/demo.env for scripts, prints where to point a browser and
 * serves until interrupted. Running it again on the same directory reuses
 * what is there and finishes what an earlier run left undone: DIR/ports
 * (the port base, written when the set-up is complete) and DIR/trusted
 * (written when both trust steps are) say how far it got.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "demo.h"
#include "demo_int.h"
#include "image/image.h"
#include "pki/pki.h"
#include "setup/setup.h"

static const char usage_text[] =
"usage: photosync demo [--dir D] [--port-base N]\n"
"                     [--nodes K | [--sso] [--directory]]\n"
"       photosync demo --help\n"
"\n"
"Sets up and runs the seed article's environment on this machine: a\n"
"master with test1@contoso.com and test2@contoso.com (generated\n"
"high-resolution photos), a portal with contoso\\test1, contoso\\test2 and\n"
"contoso\\test3 (no mailbox), trust both ways, a local CA. The master\n"
"listens on port N (default 8443), the portal on N+1. State goes to D\n"
"(default ./demo); D/demo.env describes it for scripts. Ctrl-C stops it.\n"
"D remembers its ports: a later run on D uses them.\n"
"\n"
"--nodes K (2 to " CLUSTER_MAX_NODES_S "): a cluster instead: PostgreSQL in "
"D (port N+2,\n"
"a Unix socket in D/pg), two master nodes (N+3, N+4) and K portal nodes\n"
"(N+5 on) on it, and HAProxy on N and N+1 in front of each role.\n"
"Without --nodes: one node of each role on SQLite.\n"
"\n"
"--sso: single sign-on too: a Kerberos KDC of the realm CONTOSO.COM on\n"
"port N+2 (MIT's krb5kdc, its database in D/kdc) with the users test1,\n"
"test2 and test3 (the demo's password) and the service HTTP/localhost,\n"
"whose keytab both roles take; it prints how to get a ticket (kinit) and\n"
"start a browser that uses it.\n"
"\n"
"--directory: the people in an OpenLDAP slapd of the demo's own (D/ldap,\n"
"port N+3): the mailboxes and users come from it (mailbox sync, user\n"
"sync), their passwords are checked by it, and serve syncs hourly.\n";

static volatile sig_atomic_t stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

int
demo_fail(const char *what)
{
	fprintf(stderr, "photosync demo: %s: %s\n", what, ps_errmsg());
	return 1;
}

/*
 * A port base given on the command line or read from DIR/ports: a number
 * from 1 to 65534, the master taking it and the portal the next one.
 */
static ps_err
parse_port_base(const char *s, int *base)
{
	char *end;
	long v = 0;

	/* strtol alone would take leading blanks and signs. */
	if (*s >= '0' && *s <= '9') {
		errno = 0;
		v = strtol(s, &end, 10);
		/* DIR/ports ends its line. */
		if ((*end != '\0' && strcmp(end, "\n") != 0) || errno != 0)
			v = 0;
	}
	if (v < 1 || v > 65534)
		return ps_errf(PS_EINVAL, "\"%s\" is not a port base: it must "
		    "be a number from 1 to 65534 (the demo uses N and N+1)", s);
	*base = (int)v;
	return PS_OK;
}

/* --nodes K: a cluster's number of portal nodes. */
static ps_err
parse_nodes(const char *s, int *nodes)
{
	char *end;
	long v = 0;

	if (*s >= '0' && *s <= '9')
		v = strtol(s, &end, 10);
	if (v < 2 || v > CLUSTER_MAX_NODES || *end != '\0')
		return ps_errf(PS_EINVAL, "\"%s\" is not a number of portal "
		    "nodes from 2 to %d", s, CLUSTER_MAX_NODES);
	*nodes = (int)v;
	return PS_OK;
}

/*
 * Whether another program holds `port` on the loopback address the
 * servers listen on, tried the way the servers bind (SO_REUSEADDR), so a
 * connection of an earlier run still closing does not count. A probe that
 * cannot be made says no: the server's own start then reports.
 */
bool
demo_port_taken(int port)
{
	struct sockaddr_in sa = { 0 };
	int fd, one = 1;
	bool taken;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	taken = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
	    errno == EADDRINUSE;
	close(fd);
	return taken;
}

/*
 * Says on the terminal which of the demo's ports another program holds
 * and what to do; returns whether one was. A directory already set up
 * keeps its ports (its certificates and URLs name them), so other ports
 * mean another directory.
 */
static bool
report_taken_port(const struct demo *d, bool set_up_done)
{
	char suggest[16] = "N";
	int port, p;

	if (demo_port_taken(d->port_base))
		port = d->port_base;
	else if (demo_port_taken(d->port_base + 1))
		port = d->port_base + 1;
	else
		return false;
	/* A free pair to suggest; N when there is none above. */
	for (p = d->port_base + 2; p < 65534; p += 2)
		if (!demo_port_taken(p) && !demo_port_taken(p + 1))
			break;
	fprintf(stderr, "photosync demo: port %d is in use by another "
	    "program (the demo needs ports %d and %d).\n", port, d->port_base,
	    d->port_base + 1);
	if (p < 65534)
		snprintf(suggest, sizeof(suggest), "%d", p);
	if (set_up_done)
		fprintf(stderr, "  Stop that program and run the demo again, "
		    "or run one on other ports in\n  another directory: "
		    "photosync demo --dir DIR --port-base %s\n", suggest);
	else
		fprintf(stderr, "  Stop that program and run the demo again, "
		    "or choose other ports:\n  photosync demo --port-base %s "
		    "(make demo DEMO_ARGS=\"--port-base %s\")\n", suggest,
		    suggest);
	return true;
}

/* Records that a stage is done: the file is written last. */
ps_err
demo_mark_done(const char *path, int port_base)
{
	char line[16];

	snprintf(line, sizeof(line), "%d\n", port_base);
	return file_write_atomic(path, line, strlen(line), 0600);
}

/* Runs `photosync ARGS...`; its output goes to the setup log. */
ps_err
demo_run_logged(struct demo *d, const char *path, const char *const *argv,
    void (*child)(const struct demo *), const char *what, const char *hint)
{
	pid_t pid;
	int status, fd;

	fflush(stdout);
	if ((pid = fork()) < 0)
		return ps_errf(PS_EIO, "fork: %s", strerror(errno));
	if (pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (child)
			child(d);
		execvp(path, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return ps_errf(PS_EIO, "%s failed (see %s%s)", what, d->log,
		    hint ? hint : "");
	return PS_OK;
}

ps_err
demo_run_self(struct demo *d, const char *const *args)
{
	const char *argv[24];
	char what[128];
	int n = 0;

	argv[n++] = "photosync";
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(what, sizeof(what), "photosync %s %s", argv[1], argv[2]);
	return demo_run_logged(d, "/proc/self/exe", argv, NULL, what, NULL);
}

ps_err
demo_start_server(struct demo *d, const char *role, const char *name,
    const char *dir, int listen_port, pid_t *pid, int *port)
{
	char *log = xasprintf("%s/%s.log", d->dir, name);
	char *portfile = xasprintf("%s/%s.port", d->dir, name);
	char lport[16];
	char *data = NULL;
	size_t len;
	int fd, i;
	ps_err rc = PS_OK;

	unlink(portfile);
	fflush(stdout);
	if ((*pid = fork()) < 0) {
		rc = ps_errf(PS_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	if (*pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		/* A demo killed outright leaves no server behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		snprintf(lport, sizeof(lport), "%d", listen_port);
		if (listen_port)
			execl("/proc/self/exe", "photosync", role, "serve",
			    "--dir", dir, "--listen", "127.0.0.1",
			    "--listen-port", lport, "--port-file", portfile,
			    (char *)NULL);
		else
			execl("/proc/self/exe", "photosync", role, "serve",
			    "--dir", dir, "--listen", "127.0.0.1",
			    "--port-file", portfile, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		int status;

		if (file_read(portfile, 64, &data, &len) == PS_OK)
			break;
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			rc = ps_errf(PS_EIO, "the %s stopped at start; see %s",
			    name, log);
			goto out;
		}
		usleep(50000);
	}
	if (data == NULL) {
		rc = ps_errf(PS_ETIMEOUT, "the %s did not start; see %s", name,
		    log);
		goto out;
	}
	*port = atoi(data);
out:
	free(data);
	free(log);
	free(portfile);
	return rc;
}

void
demo_stop_server(pid_t pid)
{
	int i;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The CA and the two servers' TLS certificates, signed by it. */
static ps_err
make_pki(struct demo *d)
{
	struct pki_cert_spec spec = { 0 };
	const char *dns[] = { DEMO_HOST }, *ips[] = { "127.0.0.1" };
	struct pki_key *ca_key = NULL;
	unsigned char *ca_der = NULL;
	size_t ca_len = 0;
	char *kp;
	ps_err rc;

	if ((rc = setup_state_dir(d->ca_dir)) != PS_OK)
		return rc;
	spec.common_name = "photosync demo CA";
	spec.days = 3650;
	spec.is_ca = true;
	if ((rc = setup_key_and_cert(d->ca_dir, "ca-key.pem", "ca-cert.pem",
	    &spec, NULL, NULL, 0)) != PS_OK)
		return rc;
	kp = file_join(d->ca_dir, "ca-key.pem");
	rc = pki_key_load(kp, &ca_key);
	free(kp);
	if (rc != PS_OK || (rc = pki_cert_load(d->ca_cert, &ca_der,
	    &ca_len)) != PS_OK)
		goto out;
	memset(&spec, 0, sizeof(spec));
	spec.common_name = DEMO_HOST;
	spec.dns_names = dns;
	spec.n_dns = 1;
	spec.ips = ips;
	spec.n_ips = 1;
	spec.days = 825;
	if ((rc = setup_key_and_cert(d->ca_dir, "master-tls-key.pem",
	    "master-tls-cert.pem", &spec, ca_key, ca_der, ca_len)) != PS_OK)
		goto out;
	rc = setup_key_and_cert(d->ca_dir, "portal-tls-key.pem",
	    "portal-tls-cert.pem", &spec, ca_key, ca_der, ca_len);
out:
	pki_key_free(ca_key);
	free(ca_der);
	return rc;
}

static ps_err
make_photo(struct demo *d, uint32_t seed, const char *name, char **path)
{
	struct image_jpeg j = { 0 };
	ps_err rc;

	*path = xasprintf("%s/%s", d->dir, name);
	if ((rc = image_generate(seed, 648, &j)) != PS_OK)
		return rc;
	rc = file_write_atomic(*path, j.data, j.len, 0600);
	image_jpeg_free(&j);
	return rc;
}

ps_err
demo_set_up(struct demo *d)
{
	char hostport[64], url[96], pport[16], *photo = NULL;
	const char *ca = d->ca_cert;
	ps_err rc;
	int i;
	static const char *const users[][3] = {
		{ "contoso\\test1", "test1@contoso.com", "Test One" },
		{ "contoso\\test2", "test2@contoso.com", "Test Two" },
		{ "contoso\\test3", "test3@contoso.com", "Test Three" },
	};
	char *mcert = file_join(d->ca_dir, "master-tls-cert.pem");
	char *mkey = file_join(d->ca_dir, "master-tls-key.pem");
	char *pcert = file_join(d->ca_dir, "portal-tls-cert.pem");
	char *pkey = file_join(d->ca_dir, "portal-tls-key.pem");

	snprintf(hostport, sizeof(hostport), DEMO_HOST ":%d", d->port_base);
	snprintf(url, sizeof(url), "https://" DEMO_HOST ":%d",
	    d->port_base + 1);
	snprintf(pport, sizeof(pport), "%d", d->port_base + 1);
	printf("setting up in %s\n", d->dir);
	printf("  local CA ............................ ");
	if ((rc = make_pki(d)) != PS_OK)
		goto out;
	printf("ok\n  master %s (domain " DEMO_DOMAIN ") .. ", hostport);
	{
		const char *a[] = { "master", "init", "--dir", d->master_dir,
		    "--host", hostport, "--domain", DEMO_DOMAIN, "--tls-cert",
		    mcert, "--tls-key", mkey, d->master_store ? "--store" :
		    NULL, d->master_store, "--store-password-file",
		    d->store_password_file, NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	/* --directory: the mailboxes come from the directory. */
	if (d->directory && (rc = demo_directory_master(d)) != PS_OK)
		goto out;
	for (i = 0; i < 2; i++) {
		const char *a[] = { "master", "mailbox", "add", "--dir",
		    d->master_dir, users[i][1], "--name", users[i][2],
		    "--password-file", d->password_file, NULL };
		char name[32];

		if (!d->directory && (rc = demo_run_self(d, a)) != PS_OK)
			goto out;
		snprintf(name, sizeof(name), "photo-test%d.jpg", i + 1);
		if ((rc = make_photo(d, (uint32_t)i + 1, name, &photo)) !=
		    PS_OK)
			goto out;
		{
			const char *b[] = { "master", "photo", "set", "--dir",
			    d->master_dir, users[i][1], "--file", photo, NULL };
			rc = demo_run_self(d, b);
		}
		free(photo);
		photo = NULL;
		if (rc != PS_OK)
			goto out;
	}
	printf("ok\n  portal %s ........ ", url);
	{
		const char *a[] = { "portal", "init", "--dir", d->portal_dir,
		    "--url", url, "--tls-cert", pcert, "--tls-key", pkey,
		    d->portal_store ? "--store" : NULL, d->portal_store,
		    "--store-password-file", d->store_password_file, NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	if (d->directory && (rc = demo_directory_portal(d)) != PS_OK)
		goto out;
	for (i = 0; i < 3 && !d->directory; i++) {
		const char *a[] = { "portal", "user", "add", "--dir",
		    d->portal_dir, users[i][0], "--email", users[i][1],
		    "--name", users[i][2], "--password-file",
		    d->password_file, NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	{
		/* Article step 6: import on, 6 h and 1 h windows. */
		const char *a[] = { "portal", "webapp", "set", "--dir",
		    d->portal_dir, "--photo-import", "on",
		    "--photo-expiration", "6h", "--photo-error-expiration",
		    "1h", "--autodiscover-domain", hostport, "--ca-file", ca,
		    NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	printf("ok\n");
out:
	if (rc != PS_OK)
		printf("failed\n");
	free(photo);
	free(mcert);
	free(mkey);
	free(pcert);
	free(pkey);
	return rc;
}

/* Article steps 4 and 5: each side trusts the other's metadata URL. */
ps_err
demo_trust(struct demo *d)
{
	char murl[128], purl[128];
	ps_err rc;

	snprintf(murl, sizeof(murl), "https://" DEMO_HOST ":%d/autodiscover/"
	    "metadata/json/1", d->port_base);
	snprintf(purl, sizeof(purl), "https://" DEMO_HOST ":%d/_layouts/15/"
	    "metadata/json/1", d->port_base + 1);
	printf("  portal trusts the master (issuer add) .. ");
	{
		const char *a[] = { "portal", "issuer", "add", "--dir",
		    d->portal_dir, "--name", "Exchange", "--metadata-url", murl,
		    "--ca-file", d->ca_cert, NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	printf("ok\n  master trusts the portal (partner add) . ");
	{
		const char *a[] = { "master", "partner", "add", "--dir",
		    d->master_dir, "--name", "SharePoint", "--metadata-url",
		    purl, "--ca-file", d->ca_cert, NULL };
		if ((rc = demo_run_self(d, a)) != PS_OK)
			goto out;
	}
	printf("ok\n");
out:
	if (rc != PS_OK)
		printf("failed\n");
	return rc;
}

ps_err
demo_write_env(struct demo *d)
{
	struct buf b;
	ps_err rc;
	char *path = file_join(d->dir, "demo.env");

	buf_init(&b, 8192);
	buf_addf(&b, "# photosync demo environment, for scripts: . %s\n"
	    "PORTAL_URL='https://" DEMO_HOST ":%d'\n"
	    "MASTER_URL='https://" DEMO_HOST ":%d'\n"
	    "AUTODISCOVER_DOMAIN='" DEMO_HOST ":%d'\n"
	    "MAIL_DOMAIN='" DEMO_DOMAIN "'\n"
	    "CA_FILE='%s'\n"
	    "PORTAL_DIR='%s'\n"
	    "MASTER_DIR='%s'\n"
	    "DEMO_PASSWORD='%s'\n"
	    "DEMO_USERS='contoso\\test1 contoso\\test2 contoso\\test3'\n",
	    path, d->port_base + 1, d->port_base, d->port_base, d->ca_cert,
	    d->portal_dir, d->master_dir, d->password);
	rc = file_write_atomic(path, b.b_data, b.b_len, 0600);
	buf_cleanup(&b);
	free(path);
	return rc;
}

static ps_err
load_or_make_password(struct demo *d)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
	unsigned char rnd[12];
	char *data = NULL;
	size_t len = 0, i;
	ps_err rc;

	if (file_read(d->password_file, 64, &data, &len) == PS_OK) {
		len = strcspn(data, "\n");
		str_copy(d->password, data, len + 1 < sizeof(d->password) ?
		    len + 1 : sizeof(d->password));
		free(data);
		return PS_OK;
	}
	rand_bytes(rnd, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		d->password[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	d->password[sizeof(rnd)] = '\0';
	data = xasprintf("%s\n", d->password);
	rc = file_write_atomic(d->password_file, data, strlen(data), 0600);
	free(data);
	return rc;
}

void
demo_print_running(struct demo *d, int mport, int pport, const char *logs)
{
	char *self = realpath("/proc/self/exe", NULL);

	printf("\nphotosync demo is running.\n\n"
	    "  Point a browser at  https://" DEMO_HOST ":%d/my\n"
	    "  and sign in as      contoso\\test1 (or contoso\\test2, "
	    "contoso\\test3)\n"
	    "  with the password   %s\n\n"
	    "  The certificates come from a local CA: %s\n"
	    "  (import it into the browser, or accept the warning).\n\n"
	    "  The master (mail server) is https://" DEMO_HOST ":%d; fetch a "
	    "photo with curl:\n"
	    "    curl --cacert %s -u test1@contoso.com:%s \\\n"
	    "      'https://" DEMO_HOST ":%d/ews/exchange.asmx/s/GetUserPhoto"
	    "?email=test1@contoso.com&size=HR648x648' -o test1.jpg\n\n"
	    "  Scripts: . %s/demo.env   Logs: %s\n"
	    "  Admin commands work meanwhile, e.g.\n"
	    "    %s portal webapp show --dir %s\n\n", pport, d->password,
	    d->ca_cert, mport, d->ca_cert, d->password, mport, d->dir, logs,
	    self ? self : "photosync", d->portal_dir);
	if (d->directory) {
		char *uri = demo_directory_uri(d);

		printf("  The people come from the directory %s (%s/ldap);"
		    "\n  their passwords are checked by it.\n\n", uri,
		    d->dir);
		free(uri);
	}
	free(self);
}

/* One master and one portal on SQLite, until stopped. */
static int
run_one_node(struct demo *d, bool set_up_done, bool trusted)
{
	char *logs = NULL;
	int mport = 0, pport = 0;

	/* Before anything is made, so other ports can still be chosen. */
	if (report_taken_port(d, set_up_done))
		return 1;
	if (d->directory) {
		if ((!set_up_done && demo_directory_make(d) != PS_OK) ||
		    demo_directory_start(d) != PS_OK)
			return demo_fail("directory");
	}
	if (!set_up_done) {
		if (demo_set_up(d) != PS_OK)
			return demo_fail("set-up");
		if (demo_mark_done(d->ports_file, d->port_base) != PS_OK)
			return demo_fail("set-up");
	}
	/* Before the servers: the master reads its keytab at start. */
	if (d->sso && (demo_kdc_set_up(d) != PS_OK ||
	    demo_kdc_start(d) != PS_OK))
		return demo_fail("single sign-on");
	if (demo_start_server(d, "master", "master", d->master_dir, 0,
	    &d->master_pid, &mport) != PS_OK || demo_start_server(d,
	    "portal", "portal", d->portal_dir, 0, &d->portal_pid, &pport) !=
	    PS_OK) {
		/* Taken since the check: the same advice. */
		if (!report_taken_port(d, true))
			demo_fail("start");
		return 1;
	}
	if (!trusted) {
		if (set_up_done)
			printf("finishing the set-up in %s\n", d->dir);
		if (demo_trust(d) != PS_OK ||
		    demo_mark_done(d->trusted_file, d->port_base) != PS_OK)
			return demo_fail("trust");
	}
	if (demo_write_env(d) != PS_OK)
		return demo_fail("demo.env");
	logs = xasprintf("%s/{master,portal}.log", d->dir);
	demo_print_running(d, mport, pport, logs);
	if (d->sso)
		demo_kdc_print(d, pport);
	free(logs);
	printf("Press Ctrl-C to stop.\n");
	fflush(stdout);
	while (!stop_requested) {
		int status;
		pid_t p = waitpid(-1, &status, WNOHANG);

		if (p == d->master_pid || p == d->portal_pid) {
			fprintf(stderr, "photosync demo: the %s stopped; see "
			    "%s/%s.log\n", p == d->master_pid ? "master" :
			    "portal", d->dir, p == d->master_pid ? "master" :
			    "portal");
			if (p == d->master_pid)
				d->master_pid = 0;
			else
				d->portal_pid = 0;
			return 1;
		}
		usleep(200000);
	}
	printf("\nstopping\n");
	return 0;
}

int
demo_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "port-base", required_argument, NULL, 'p' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "sso", no_argument, NULL, 's' },
		{ "directory", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo d = { 0 };
	const char *dir = "demo", *port_arg = NULL;
	struct stat sb;
	int c, ret = 1, stored = 0, nodes = 0;
	bool set_up_done, trusted, cluster;
	char *abs, *data = NULL, *cluster_file = NULL, *directory_file = NULL;
	size_t len;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'p': port_arg = optarg; break;
		case 'n':
			if (parse_nodes(optarg, &nodes) != PS_OK) {
				fprintf(stderr, "photosync demo: --nodes: %s\n",
				    ps_errmsg());
				return 2;
			}
			break;
		case 's': d.sso = true; break;
		case 'D': d.directory = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind < argc || ((d.sso || d.directory) && nodes)) {
		fputs(usage_text, stderr);
		return 2;
	}
	d.port_base = 8443;
	if (port_arg != NULL && parse_port_base(port_arg, &d.port_base) !=
	    PS_OK) {
		fprintf(stderr, "photosync demo: --port-base: %s\n",
		    ps_errmsg());
		return 2;
	}
	if (setup_state_dir(dir) != PS_OK)
		return demo_fail("state directory");
	abs = realpath(dir, NULL);
	d.dir = xstrdup(abs ? abs : dir);
	free(abs);
	d.ca_dir = file_join(d.dir, "ca");
	/* A cluster's first nodes are where the admin commands run. */
	d.master_dir = file_join(d.dir, nodes ? "master-1" : "master");
	d.portal_dir = file_join(d.dir, nodes ? "portal-1" : "portal");
	d.password_file = file_join(d.dir, "password");
	d.ca_cert = file_join(d.ca_dir, "ca-cert.pem");
	d.log = file_join(d.dir, "setup.log");
	d.ports_file = file_join(d.dir, "ports");
	d.trusted_file = file_join(d.dir, "trusted");
	cluster_file = file_join(d.dir, CLUSTER_MARK);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	set_up_done = file_read(d.ports_file, 64, &data, &len) == PS_OK;
	cluster = stat(cluster_file, &sb) == 0;
	if (set_up_done) {
		if (parse_port_base(data, &stored) != PS_OK) {
			ret = demo_fail(d.ports_file);
			goto out;
		}
		if (port_arg != NULL && stored != d.port_base) {
			fprintf(stderr, "photosync demo: %s is set up for "
			    "ports %d and %d; for other ports, choose another "
			    "--dir (or remove this one)\n", d.dir, stored,
			    stored + 1);
			ret = 2;
			goto out;
		}
		d.port_base = stored;
	}
	if (cluster != (nodes > 0) && (set_up_done || cluster)) {
		fprintf(stderr, "photosync demo: %s holds a %s demo; run it %s "
		    "--nodes, or choose another --dir\n", d.dir, cluster ?
		    "cluster" : "one-node", cluster ? "with" : "without");
		ret = 2;
		goto out;
	}
	if (!set_up_done && (stat(d.master_dir, &sb) == 0 ||
	    stat(d.portal_dir, &sb) == 0)) {
		fprintf(stderr, "photosync demo: %s holds a demo whose set-up "
		    "did not finish (or one of an earlier version); remove it "
		    "and start again\n", d.dir);
		goto out;
	}
	directory_file = file_join(d.dir, DIRECTORY_MARK);
	if ((set_up_done || stat(d.master_dir, &sb) == 0) &&
	    (stat(directory_file, &sb) == 0) != d.directory) {
		fprintf(stderr, "photosync demo: %s holds a demo %s "
		    "--directory; run it so, or choose another --dir\n", d.dir,
		    d.directory ? "without" : "with");
		ret = 2;
		goto out;
	}
	if (d.directory && !set_up_done && demo_mark_done(directory_file,
	    d.port_base) != PS_OK) {
		ret = demo_fail("directory");
		goto out;
	}
	trusted = stat(d.trusted_file, &sb) == 0;
	if (load_or_make_password(&d) != PS_OK) {
		ret = demo_fail("password");
		goto out;
	}
	if (nodes)
		ret = demo_cluster(&d, nodes, set_up_done, trusted,
		    &stop_requested);
	else
		ret = run_one_node(&d, set_up_done, trusted);
out:
	demo_stop_server(d.portal_pid);
	demo_stop_server(d.master_pid);
	demo_stop_server(d.kdc_pid);
	demo_stop_server(d.ldap_pid);
	free(directory_file);
	free(d.dir);
	free(d.ca_dir);
	free(d.master_dir);
	free(d.portal_dir);
	free(d.password_file);
	free(d.ca_cert);
	free(d.log);
	free(d.ports_file);
	free(d.trusted_file);
	free(d.master_store);
	free(d.portal_store);
	free(d.store_password_file);
	free(cluster_file);
	free(data);
	return ret;
}
