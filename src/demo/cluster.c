/*
 * photosync demo --nodes K: the demo as a cluster on this machine, laid
 * out as several machines would run it, in the demo's directory D with
 * the port base N:
 *
 *   - PostgreSQL (initdb and pg_ctl) in D/pg, listening on a Unix socket
 *     in D/pg only, with port N+2 naming it; one database per role
 *     (demo_master, demo_portal), owned by the role photosync,
 *     whose password (D/pg-password) reaches init through
 *     --store-password-file and then lives in each state directory's
 *     passfile, never on a command line;
 *   - two master nodes (D/master-1, D/master-2: serve --listen-port N+3,
 *     N+4) and K portal nodes (D/portal-1 ...: N+5 on), each with its
 *     own state directory: the first of each role is made by init on
 *     PostgreSQL, the others copy its keys, certificates and store
 *     address, so the nodes are interchangeable (one TLS certificate per
 *     role's host name, the same S2S keys; the trust is in the store);
 *   - HAProxy (D/haproxy.cfg, written at each start) on N for the
 *     masters and N+1 for the portals, mode tcp: TLS goes through to the
 *     nodes, and each node is checked with GET /ready over TLS.
 *
 * So the URLs, and the "point a browser at" lines, are the one-node
 * demo's. As root, PostgreSQL's programs run as the `postgres` user
 * (initdb and the server refuse root): D/pg is given to it, and the
 * directories above it that it cannot search get the search bit for
 * others while the demo runs. SIGINT/SIGTERM stops HAProxy, the nodes
 * and PostgreSQL; a later run on D starts them again (PostgreSQL with
 * pg_ctl; one still running from a demo that was killed is used).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "demo_int.h"
#include "setup/setup.h"
#include "store/store.h"

#define MASTER_NODES	2
#define PG_ROLE		"photosync"
#define PG_SOCKET_MAX	107	/* a Unix socket's path, sun_path - 1 */
#define MAX_OPENED	32

/* Ports from the port base N. */
#define PORT_PG(n)		((n) + 2)
#define PORT_MASTER(n, i)	((n) + 3 + (i))
#define PORT_PORTAL(n, i)	((n) + 3 + MASTER_NODES + (i))

struct opened_dir {
	char	*path;
	mode_t	 mode;		/* before the demo gave the search bit */
};

struct cluster {
	struct demo		*d;
	int			 nodes;
	char			*pg_dir, *pg_data, *pg_log, *pg_bin;
	char			*pg_password_file, *haproxy_cfg;
	/* Who runs PostgreSQL: the postgres user as root, else us. */
	bool			 as_user;
	uid_t			 uid;
	gid_t			 gid;
	char			 superuser[64];
	pid_t			 masters[MASTER_NODES];
	pid_t			 portals[CLUSTER_MAX_NODES];
	pid_t			 haproxy;
	bool			 pg_running;
	struct opened_dir	 opened[MAX_OPENED];
	size_t			 n_opened;
};

/* The newest of Debian's PostgreSQL servers: /usr/lib/postgresql/V/bin. */
static ps_err
find_pg_bin(char **bin)
{
	glob_t g;
	size_t i;
	long best = -1, v;
	const char *pick = NULL;

	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
		return ps_errf(PS_ENOTFOUND, "PostgreSQL is not installed (no "
		    "/usr/lib/postgresql/*/bin/initdb): scripts/deps.sh demo "
		    "installs it");
	for (i = 0; i < g.gl_pathc; i++) {
		v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"),
		    NULL, 10);
		if (pick == NULL || v > best) {
			best = v;
			pick = g.gl_pathv[i];
		}
	}
	/* glob() returned 0: it matched, so one path was picked. */
	assert(pick != NULL);
	*bin = xstrndup(pick, strlen(pick) - strlen("/initdb"));
	globfree(&g);
	return PS_OK;
}

/* HAProxy on the PATH (or in /usr/sbin, which a user's PATH may lack). */
static char *
find_haproxy(void)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *p, *found = NULL;

	copy = xasprintf("%s:/usr/sbin:/sbin", path ? path : "/usr/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		p = file_join(dir, "haproxy");
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

/* Who runs PostgreSQL, and its superuser's name (peer authentication). */
static ps_err
pick_server_user(struct cluster *c)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		c->as_user = false;
		if ((pw = getpwuid(geteuid())) == NULL)
			return ps_errf(PS_EIO, "no user name for uid %u",
			    (unsigned)geteuid());
	} else {
		c->as_user = true;
		if ((pw = getpwnam("postgres")) == NULL)
			return ps_errf(PS_ENOTFOUND, "running as root, and no "
			    "postgres user to run PostgreSQL as (Debian's "
			    "postgresql package makes it: scripts/deps.sh "
			    "demo)");
	}
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	if (!str_copy(c->superuser, pw->pw_name, sizeof(c->superuser)))
		return ps_errf(PS_EINVAL, "the user name %s is too long",
		    pw->pw_name);
	return PS_OK;
}

/*
 * Runs one of PostgreSQL's programs as its user, in D/pg, with `input`
 * (or nothing) on its standard input and its output in the set-up log.
 * Returns its exit status in *status when `status` is not NULL (then
 * any status is PS_OK), else PS_OK only for 0.
 */
static ps_err
run_pg(struct cluster *c, const char *const *argv, const char *input,
    int *status)
{
	int in[2] = { -1, -1 }, st, fd;
	pid_t pid;
	size_t off = 0, len = input ? strlen(input) : 0;
	ssize_t n;

	if (pipe(in) != 0)
		return ps_errf(PS_EIO, "pipe: %s", strerror(errno));
	fflush(stdout);
	if ((pid = fork()) < 0) {
		close(in[0]);
		close(in[1]);
		return ps_errf(PS_EIO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(in[1]);
		dup2(in[0], STDIN_FILENO);
		close(in[0]);
		/* Opened before giving up root: the log is ours. */
		fd = open(c->d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (c->as_user && (setgroups(0, NULL) != 0 ||
		    setgid(c->gid) != 0 || setuid(c->uid) != 0))
			_exit(126);
		/* Our own directory may be closed to that user. */
		if (chdir(c->pg_dir) != 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	while (off < len && (n = write(in[1], input + off, len - off)) > 0)
		off += (size_t)n;
	close(in[1]);
	if (waitpid(pid, &st, 0) < 0)
		return ps_errf(PS_EIO, "waitpid: %s", strerror(errno));
	if (status) {
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		return PS_OK;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return ps_errf(PS_EIO, "%s failed (see %s)", argv[0],
		    c->d->log);
	return PS_OK;
}

static char *
pg_program(struct cluster *c, const char *name)
{
	return file_join(c->pg_bin, name);
}

/*
 * As root: lets the postgres user reach D/pg. Each directory from D up
 * that others cannot search gets the search bit (only that) until
 * restore_path(); one that is not ours is an error.
 */
static ps_err
open_path(struct cluster *c)
{
	char *dir = xstrdup(c->d->dir), *slash;
	struct stat sb;
	ps_err rc = PS_OK;

	if (!c->as_user)
		goto out;
	for (;;) {
		if (stat(dir[0] ? dir : "/", &sb) != 0) {
			rc = ps_errf(PS_EIO, "%s: %s", dir, strerror(errno));
			goto out;
		}
		if (!(sb.st_mode & S_IXOTH)) {
			if (sb.st_uid != geteuid() || c->n_opened ==
			    MAX_OPENED) {
				rc = ps_errf(PS_EIO, "%s cannot be searched "
				    "by the postgres user that runs "
				    "PostgreSQL: choose a --dir it can reach",
				    dir);
				goto out;
			}
			if (chmod(dir, (sb.st_mode & 07777) | S_IXOTH) != 0) {
				rc = ps_errf(PS_EIO, "chmod %s: %s", dir,
				    strerror(errno));
				goto out;
			}
			c->opened[c->n_opened].path = xstrdup(dir);
			c->opened[c->n_opened++].mode = sb.st_mode & 07777;
			printf("  (%s may be searched by others while the demo "
			    "runs: PostgreSQL runs as postgres)\n", dir);
		}
		if ((slash = strrchr(dir, '/')) == NULL || dir[0] == '\0')
			break;
		*slash = '\0';
	}
out:
	free(dir);
	return rc;
}

static void
restore_path(struct cluster *c)
{
	while (c->n_opened > 0) {
		c->n_opened--;
		chmod(c->opened[c->n_opened].path, c->opened[c->n_opened].mode);
		free(c->opened[c->n_opened].path);
	}
}

/* A file of PostgreSQL's, written by us and given to its user. */
static ps_err
write_pg_file(struct cluster *c, const char *path, const char *text,
    bool append)
{
	int fd;
	size_t len = strlen(text);

	fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
	    0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		if (fd >= 0)
			close(fd);
		return ps_errf(PS_EIO, "cannot write %s: %s", path,
		    strerror(errno));
	}
	close(fd);
	if (c->as_user && chown(path, c->uid, c->gid) != 0)
		return ps_errf(PS_EIO, "chown %s: %s", path, strerror(errno));
	return PS_OK;
}

/* `s` as a single-quoted SQL or configuration literal. */
static void
add_quoted(struct buf *b, const char *s)
{
	buf_add(b, "'", 1);
	for (; *s; s++) {
		if (*s == '\'')
			buf_add(b, "'", 1);
		buf_add(b, s, 1);
	}
	buf_add(b, "'", 1);
}

/*
 * The cluster: initdb (superuser: the server's user, by peer
 * authentication over the socket; every other role by password), and
 * its configuration: no TCP, the socket in D/pg. initdb does not wait
 * for its files to reach the disk (--no-sync: seconds saved; a machine
 * that crashes meanwhile leaves a set-up that the next run refuses as
 * unfinished); the server itself syncs as usual.
 */
static ps_err
pg_make(struct cluster *c)
{
	char *initdb = pg_program(c, "initdb");
	char *hba = file_join(c->pg_data, "pg_hba.conf");
	char *conf = file_join(c->pg_data, "postgresql.conf");
	const char *argv[] = { initdb, "-D", c->pg_data, "-U", c->superuser,
	    "-A", "peer", "-E", "UTF8", "--locale=C", "--no-sync", NULL };
	struct buf b;
	ps_err rc;

	buf_init(&b, 4096);
	if (mkdir(c->pg_dir, 0700) != 0) {
		rc = ps_errf(PS_EIO, "mkdir %s: %s", c->pg_dir,
		    strerror(errno));
		goto out;
	}
	if (c->as_user && chown(c->pg_dir, c->uid, c->gid) != 0) {
		rc = ps_errf(PS_EIO, "chown %s: %s", c->pg_dir,
		    strerror(errno));
		goto out;
	}
	if ((rc = run_pg(c, argv, NULL, NULL)) != PS_OK)
		goto out;
	buf_addf(&b, "# written by photosync demo\n"
	    "local all %s peer\n"
	    "local all all scram-sha-256\n", c->superuser);
	if ((rc = write_pg_file(c, hba, b.b_data, false)) != PS_OK)
		goto out;
	buf_reset(&b);
	buf_addf(&b, "\n# photosync demo: a Unix socket in D/pg, no TCP\n"
	    "listen_addresses = ''\nport = %d\nunix_socket_directories = ",
	    PORT_PG(c->d->port_base));
	add_quoted(&b, c->pg_dir);
	buf_adds(&b, "\npassword_encryption = 'scram-sha-256'\n");
	rc = write_pg_file(c, conf, b.b_data, true);
out:
	buf_cleanup(&b);
	free(initdb);
	free(hba);
	free(conf);
	return rc;
}

/* Starts the server, or finds it running (a demo that was killed). */
static ps_err
pg_start(struct cluster *c)
{
	char *pg_ctl = pg_program(c, "pg_ctl");
	const char *status[] = { pg_ctl, "-D", c->pg_data, "status", NULL };
	const char *start[] = { pg_ctl, "-D", c->pg_data, "-l", c->pg_log,
	    "-w", "-t", "60", "start", NULL };
	int st = 1;
	ps_err rc;

	if ((rc = run_pg(c, status, NULL, &st)) != PS_OK)
		goto out;
	if (st != 0 && (rc = run_pg(c, start, NULL, NULL)) != PS_OK) {
		rc = ps_errf(PS_EIO, "PostgreSQL did not start: see %s and "
		    "%s", c->pg_log, c->d->log);
		goto out;
	}
	c->pg_running = true;
out:
	free(pg_ctl);
	return rc;
}

static void
pg_stop(struct cluster *c)
{
	char *pg_ctl = pg_program(c, "pg_ctl");
	const char *stop[] = { pg_ctl, "-D", c->pg_data, "-m", "fast", "-w",
	    "-t", "60", "stop", NULL };

	if (c->pg_running && run_pg(c, stop, NULL, NULL) != PS_OK)
		fprintf(stderr, "photosync demo: stopping PostgreSQL: %s\n",
		    ps_errmsg());
	c->pg_running = false;
	free(pg_ctl);
}

/*
 * The role photosync with a new password (kept in D/pg-password for
 * init's --store-password-file) and a database for each role. The SQL
 * goes to psql on its standard input, so the password is on no command
 * line.
 */
static ps_err
pg_roles(struct cluster *c)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz"
	    "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char *psql = pg_program(c, "psql"), port[16], pw[33], *line;
	const char *argv[] = { psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
	    "-h", c->pg_dir, "-p", port, "-U", c->superuser, "-d",
	    "postgres", NULL };
	unsigned char rnd[32];
	struct buf sql;
	size_t i;
	ps_err rc;

	rand_bytes(rnd, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		pw[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	pw[sizeof(rnd)] = '\0';
	line = xasprintf("%s\n", pw);
	rc = file_write_atomic(c->pg_password_file, line, strlen(line),
	    0600);
	xfree_secret(line, strlen(line));
	if (rc != PS_OK)
		goto out;
	snprintf(port, sizeof(port), "%d", PORT_PG(c->d->port_base));
	buf_init(&sql, 4096);
	buf_adds(&sql, "CREATE ROLE " PG_ROLE " LOGIN PASSWORD ");
	add_quoted(&sql, pw);
	buf_adds(&sql, ";\nCREATE DATABASE demo_master OWNER " PG_ROLE
	    ";\nCREATE DATABASE demo_portal OWNER " PG_ROLE ";\n");
	rc = run_pg(c, argv, sql.b_data, NULL);
	explicit_bzero(sql.b_data, sql.b_len);
	buf_cleanup(&sql);
out:
	explicit_bzero(pw, sizeof(pw));
	free(psql);
	return rc;
}

/* The libpq URI of database `db` over D/pg's socket, as photosync. */
static char *
pg_uri(struct cluster *c, const char *db)
{
	struct buf b;
	const char *p;
	char *uri;

	buf_init(&b, 1024);
	buf_addf(&b, "postgresql://" PG_ROLE "@/%s?host=", db);
	for (p = c->pg_dir; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/-._~", *p))
			buf_add(&b, p, 1);
		else
			buf_addf(&b, "%%%02X", (unsigned char)*p);
	}
	buf_addf(&b, "&port=%d", PORT_PG(c->d->port_base));
	uri = xstrdup(b.b_data);
	buf_cleanup(&b);
	return uri;
}

/* What makes a node of a role: its keys, certificates, store address. */
static bool
node_file(const char *name)
{
	size_t n = strlen(name);

	return (n > 4 && strcmp(name + n - 4, ".pem") == 0) ||
	    strcmp(name, STORE_ADDRESS_FILE) == 0 ||
	    strcmp(name, STORE_PASSWORD_FILE) == 0;
}

/* Another node's state directory: the first node's files, copied. */
static ps_err
copy_node(const char *from, const char *to)
{
	struct stat sb;
	struct dirent *e;
	DIR *dir;
	char *src, *dst, *data = NULL;
	size_t len;
	ps_err rc = PS_OK;

	if (stat(to, &sb) == 0)
		return PS_OK;
	if ((dir = opendir(from)) == NULL)
		return ps_errf(PS_EIO, "%s: %s", from, strerror(errno));
	/* Under another name first: a half-made node is never used. */
	dst = xasprintf("%s.new", to);
	if ((rc = setup_state_dir(dst)) != PS_OK)
		goto out;
	while (rc == PS_OK && (e = readdir(dir)) != NULL) {
		if (!node_file(e->d_name))
			continue;
		src = file_join(from, e->d_name);
		free(data);
		data = NULL;
		rc = file_read(src, 1 << 20, &data, &len);
		free(src);
		if (rc != PS_OK)
			break;
		src = file_join(dst, e->d_name);
		rc = file_write_atomic(src, data, len, 0600);
		free(src);
	}
	if (rc == PS_OK && rename(dst, to) != 0)
		rc = ps_errf(PS_EIO, "rename %s: %s", dst, strerror(errno));
out:
	if (data)
		xfree_secret(data, len);
	closedir(dir);
	free(dst);
	return rc;
}

static char *
node_dir(struct cluster *c, const char *role, int i)
{
	char name[32];

	snprintf(name, sizeof(name), "%s-%d", role, i + 1);
	return file_join(c->d->dir, name);
}

static ps_err
copy_nodes(struct cluster *c)
{
	char *to;
	int i;
	ps_err rc = PS_OK;

	for (i = 1; rc == PS_OK && i < MASTER_NODES + c->nodes; i++) {
		if (i == MASTER_NODES)
			continue;	/* portal-1 is the first portal */
		to = i < MASTER_NODES ? node_dir(c, "master", i) :
		    node_dir(c, "portal", i - MASTER_NODES);
		rc = copy_node(i < MASTER_NODES ? c->d->master_dir :
		    c->d->portal_dir, to);
		free(to);
	}
	return rc;
}

/*
 * HAProxy's configuration: one frontend per role on the demo's ports,
 * TLS passed through (mode tcp), every node checked with GET /ready
 * over TLS (the nodes' certificates are the demo CA's: not verified by
 * the check, which asks only whether the node takes work).
 */
static ps_err
write_haproxy(struct cluster *c)
{
	int n = c->d->port_base, i;
	struct buf b;
	ps_err rc;

	buf_init(&b, 16384);
	buf_addf(&b, "# written by photosync demo --nodes %d at each start\n"
	    "global\n"
	    "\tmaxconn 4096\n"
	    "\n"
	    "defaults\n"
	    "\tmode tcp\n"
	    "\ttimeout connect 5s\n"
	    "\ttimeout client 5m\n"
	    "\ttimeout server 5m\n"
	    "\ttimeout check 5s\n"
	    "\tretries 2\n"
	    "\toption redispatch\n"
	    "\toption httpchk\n"
	    "\thttp-check send meth GET uri /ready ver HTTP/1.1 "
	    "hdr Host " DEMO_HOST "\n"
	    "\thttp-check expect status 200\n"
	    "\tdefault-server check check-ssl verify none check-sni "
	    DEMO_HOST " inter 2s fall 2 rise 1\n", c->nodes);
	buf_addf(&b, "\nfrontend master\n\tbind 127.0.0.1:%d\n"
	    "\tdefault_backend masters\n\nbackend masters\n", n);
	for (i = 0; i < MASTER_NODES; i++)
		buf_addf(&b, "\tserver master-%d 127.0.0.1:%d\n", i + 1,
		    PORT_MASTER(n, i));
	buf_addf(&b, "\nfrontend portal\n\tbind 127.0.0.1:%d\n"
	    "\tdefault_backend portals\n\nbackend portals\n", n + 1);
	for (i = 0; i < c->nodes; i++)
		buf_addf(&b, "\tserver portal-%d 127.0.0.1:%d\n", i + 1,
		    PORT_PORTAL(n, i));
	rc = file_write_atomic(c->haproxy_cfg, b.b_data, b.b_len, 0600);
	buf_cleanup(&b);
	return rc;
}

/* Whether something accepts connections on 127.0.0.1:port. */
static bool
accepting(int port)
{
	struct sockaddr_in sa = { 0 };
	int fd;
	bool ok;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return false;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* HAProxy in the foreground, as our child; until both ports accept. */
static ps_err
start_haproxy(struct cluster *c, const char *haproxy)
{
	char *log = file_join(c->d->dir, "haproxy.log");
	int fd, i, status, n = c->d->port_base;
	ps_err rc = PS_OK;

	fflush(stdout);
	if ((c->haproxy = fork()) < 0) {
		rc = ps_errf(PS_EIO, "fork: %s", strerror(errno));
		goto out;
	}
	if (c->haproxy == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(haproxy, "haproxy", "-db", "-f", c->haproxy_cfg,
		    (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		if (accepting(n) && accepting(n + 1))
			goto out;
		if (waitpid(c->haproxy, &status, WNOHANG) == c->haproxy) {
			c->haproxy = 0;
			break;
		}
		usleep(50000);
	}
	rc = ps_errf(PS_EIO, "HAProxy did not start: see %s", log);
out:
	free(log);
	return rc;
}

/* Every port the cluster listens on, free (before anything starts). */
static bool
ports_free(struct cluster *c, bool set_up_done)
{
	int n = c->d->port_base, last = PORT_PORTAL(n, c->nodes - 1), p;

	for (p = n; p <= last; p++) {
		if (p == PORT_PG(n) || !demo_port_taken(p))
			continue;
		fprintf(stderr, "photosync demo: port %d is in use by another "
		    "program (the cluster needs ports %d to %d).\n", p, n,
		    last);
		fprintf(stderr, "  Stop that program and run the demo again%s"
		    "\n", set_up_done ? ", or run one in another directory "
		    "with another --port-base" : ", or choose another "
		    "--port-base");
		return false;
	}
	return true;
}

static ps_err
set_up_cluster(struct cluster *c)
{
	struct demo *d = c->d;
	char *mark = file_join(d->dir, CLUSTER_MARK);
	ps_err rc;

	printf("PostgreSQL for the cluster in %s (port %d) .. ", c->pg_dir,
	    PORT_PG(d->port_base));
	fflush(stdout);
	if ((rc = pg_make(c)) != PS_OK || (rc = pg_start(c)) != PS_OK ||
	    (rc = pg_roles(c)) != PS_OK) {
		printf("failed\n");
		goto out;
	}
	printf("ok\n");
	d->master_store = pg_uri(c, "demo_master");
	d->portal_store = pg_uri(c, "demo_portal");
	d->store_password_file = xstrdup(c->pg_password_file);
	if ((rc = demo_set_up(d)) != PS_OK ||
	    (rc = demo_mark_done(mark, d->port_base)) != PS_OK)
		goto out;
	rc = demo_mark_done(d->ports_file, d->port_base);
out:
	free(mark);
	return rc;
}

/* Every node's serve, on its own port. */
static ps_err
start_nodes(struct cluster *c)
{
	char name[32], *dir;
	int i, port;
	ps_err rc = PS_OK;

	for (i = 0; rc == PS_OK && i < MASTER_NODES; i++) {
		snprintf(name, sizeof(name), "master-%d", i + 1);
		dir = node_dir(c, "master", i);
		rc = demo_start_server(c->d, "master", name, dir,
		    PORT_MASTER(c->d->port_base, i), &c->masters[i], &port);
		free(dir);
	}
	for (i = 0; rc == PS_OK && i < c->nodes; i++) {
		snprintf(name, sizeof(name), "portal-%d", i + 1);
		dir = node_dir(c, "portal", i);
		rc = demo_start_server(c->d, "portal", name, dir,
		    PORT_PORTAL(c->d->port_base, i), &c->portals[i], &port);
		free(dir);
	}
	return rc;
}

/*
 * Which of our children `pid` was, for the message (forgotten: it is
 * gone); NULL: none of them.
 */
static const char *
child_gone(struct cluster *c, pid_t pid, char *buf, size_t size)
{
	int i;

	if (pid == c->haproxy) {
		c->haproxy = 0;
		return "haproxy";
	}
	for (i = 0; i < MASTER_NODES; i++)
		if (pid == c->masters[i]) {
			c->masters[i] = 0;
			snprintf(buf, size, "master-%d", i + 1);
			return buf;
		}
	for (i = 0; i < c->nodes; i++)
		if (pid == c->portals[i]) {
			c->portals[i] = 0;
			snprintf(buf, size, "portal-%d", i + 1);
			return buf;
		}
	return NULL;
}

static bool
any_running(const pid_t *pids, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			return true;
	return false;
}

static void
print_running(struct cluster *c)
{
	struct demo *d = c->d;
	int n = d->port_base;
	char *logs = xasprintf("%s/{master-1,master-2,portal-1..%d,"
	    "haproxy}.log", d->dir, c->nodes);

	demo_print_running(d, n, n + 1, logs);
	printf("  A cluster: HAProxy (%s) passes ports %d and %d to\n"
	    "  2 master nodes (ports %d-%d) and %d portal nodes "
	    "(ports %d-%d),\n"
	    "  all on PostgreSQL in %s (socket there, port %d).\n"
	    "  Each node answers GET /ready; stop one and HAProxy sends its "
	    "work\n  to the others.\n\n", c->haproxy_cfg, n, n + 1,
	    PORT_MASTER(n, 0), PORT_MASTER(n, MASTER_NODES - 1), c->nodes,
	    PORT_PORTAL(n, 0), PORT_PORTAL(n, c->nodes - 1), c->pg_dir,
	    PORT_PG(n));
	free(logs);
}

static void
stop_all(struct cluster *c)
{
	int i;

	demo_stop_server(c->haproxy);
	c->haproxy = 0;
	for (i = 0; i < c->nodes; i++) {
		demo_stop_server(c->portals[i]);
		c->portals[i] = 0;
	}
	for (i = 0; i < MASTER_NODES; i++) {
		demo_stop_server(c->masters[i]);
		c->masters[i] = 0;
	}
	pg_stop(c);
	restore_path(c);
}

int
demo_cluster(struct demo *d, int nodes, bool set_up_done, bool trusted,
    volatile sig_atomic_t *stop)
{
	struct cluster c = { .d = d, .nodes = nodes };
	struct stat sb;
	char *haproxy = NULL, *sock, buf[32];
	const char *who;
	int ret = 1, status;
	pid_t p;

	c.pg_dir = file_join(d->dir, "pg");
	c.pg_data = file_join(c.pg_dir, "data");
	c.pg_log = file_join(c.pg_dir, "postgresql.log");
	c.pg_password_file = file_join(d->dir, "pg-password");
	c.haproxy_cfg = file_join(d->dir, "haproxy.cfg");
	if (PORT_PORTAL(d->port_base, nodes - 1) > 65535) {
		fprintf(stderr, "photosync demo: with %d portal nodes the "
		    "cluster needs ports %d to %d: choose a lower "
		    "--port-base\n", nodes, d->port_base,
		    PORT_PORTAL(d->port_base, nodes - 1));
		ret = 2;
		goto out;
	}
	sock = xasprintf("%s/.s.PGSQL.%d", c.pg_dir, PORT_PG(d->port_base));
	if (strlen(sock) > PG_SOCKET_MAX) {
		fprintf(stderr, "photosync demo: PostgreSQL's socket %s would "
		    "be longer than a Unix socket's %d bytes: choose a "
		    "shorter --dir\n", sock, PG_SOCKET_MAX);
		free(sock);
		goto out;
	}
	free(sock);
	if (!set_up_done && stat(c.pg_dir, &sb) == 0) {
		fprintf(stderr, "photosync demo: %s holds a demo whose set-up "
		    "did not finish; remove it and start again\n", d->dir);
		goto out;
	}
	if ((haproxy = find_haproxy()) == NULL) {
		fprintf(stderr, "photosync demo: HAProxy is not installed: "
		    "scripts/deps.sh demo installs it\n");
		goto out;
	}
	if (find_pg_bin(&c.pg_bin) != PS_OK ||
	    pick_server_user(&c) != PS_OK) {
		demo_fail("PostgreSQL");
		goto out;
	}
	if (!ports_free(&c, set_up_done))
		goto out;
	if (open_path(&c) != PS_OK) {
		demo_fail("PostgreSQL");
		goto out;
	}
	if (!set_up_done) {
		if (set_up_cluster(&c) != PS_OK) {
			demo_fail("set-up");
			goto out;
		}
	} else if (pg_start(&c) != PS_OK) {
		demo_fail("PostgreSQL");
		goto out;
	}
	if (copy_nodes(&c) != PS_OK || write_haproxy(&c) != PS_OK) {
		demo_fail("nodes");
		goto out;
	}
	if (start_nodes(&c) != PS_OK) {
		demo_fail("start");
		goto out;
	}
	if (start_haproxy(&c, haproxy) != PS_OK) {
		demo_fail("HAProxy");
		goto out;
	}
	if (!trusted) {
		if (set_up_done)
			printf("finishing the set-up in %s\n", d->dir);
		if (demo_trust(d) != PS_OK ||
		    demo_mark_done(d->trusted_file, d->port_base) != PS_OK) {
			demo_fail("trust");
			goto out;
		}
	}
	if (demo_write_env(d) != PS_OK) {
		demo_fail("demo.env");
		goto out;
	}
	print_running(&c);
	printf("Press Ctrl-C to stop.\n");
	fflush(stdout);
	/*
	 * A node that stops is the cluster's point: HAProxy sends its work
	 * to the others. Without HAProxy, or without any node of a role,
	 * the demo stops.
	 */
	while (!*stop) {
		p = waitpid(-1, &status, WNOHANG);
		if (p > 0 && (who = child_gone(&c, p, buf, sizeof(buf)))) {
			fprintf(stderr, "photosync demo: %s stopped; see "
			    "%s/%s.log\n", who, d->dir, who);
			if (c.haproxy == 0 || !any_running(c.masters,
			    MASTER_NODES) || !any_running(c.portals, c.nodes))
				goto out;
			fprintf(stderr, "  HAProxy sends its work to the other "
			    "nodes.\n");
		}
		usleep(200000);
	}
	printf("\nstopping\n");
	ret = 0;
out:
	stop_all(&c);
	free(haproxy);
	free(c.pg_dir);
	free(c.pg_data);
	free(c.pg_log);
	free(c.pg_bin);
	free(c.pg_password_file);
	free(c.haproxy_cfg);
	return ret;
}
