/*
 * What the one-node demo (demo.c) and the cluster demo (cluster.c)
 * share: the demo's directory and password, and the steps both take
 * (photosync's own admin commands and servers run as child processes).
 */
#ifndef PS_DEMO_INT_H
#define PS_DEMO_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include <signal.h>

#include "common/err.h"

#define DEMO_DOMAIN	"contoso.com"
#define DEMO_HOST	"localhost"

/* The cluster demo: at most this many portal nodes. */
#define CLUSTER_MAX_NODES	16
#define CLUSTER_MAX_NODES_S	"16"
/* D/cluster: D holds a cluster demo (written when its set-up is done). */
#define CLUSTER_MARK		"cluster"

/* Every path is owned (freed by demo_main). */
struct demo {
	char	*dir, *ca_dir, *master_dir, *portal_dir, *password_file;
	char	*ca_cert, *log, *ports_file, *trusted_file;
	int	 port_base;
	char	 password[32];
	pid_t	 master_pid, portal_pid;
	/*
	 * The cluster's stores (cluster.c): the postgresql:// addresses the
	 * master's and the portal's init get with --store, and the file
	 * with their password (--store-password-file). NULL: SQLite.
	 */
	char	*master_store, *portal_store, *store_password_file;
	/* --sso (kdc.c): the KDC runs as kdc_pid while the demo does */
	bool	 sso;
	pid_t	 kdc_pid;
	/* --directory (directory.c): the people from a slapd of the demo */
	bool	 directory;
	pid_t	 ldap_pid;
};

/* D/directory: D holds a demo of --directory. */
/* Its slapd's port: N+3, N+2 being the KDC's when --sso is given too. */
#define DEMO_LDAP_PORT(d)	((d)->port_base + 3)
#define DIRECTORY_MARK		"directory"

/* Prints "photosync demo: WHAT: <error>" on stderr; returns 1. */
int	demo_fail(const char *what);
/* Whether another program holds `port` on 127.0.0.1. */
bool	demo_port_taken(int port);
/* Records that a stage is done: `path` holds the port base. */
ps_err	demo_mark_done(const char *path, int port_base);
/*
 * Runs `path` (a path, or a name looked up on PATH) with `argv`, its
 * output appended to d->log; `child` (NULL: none) is called in the child
 * first (its environment). PS_EIO with "WHAT failed (see LOG HINT)"
 * unless it exits 0.
 */
ps_err	demo_run_logged(struct demo *, const char *path,
	    const char *const *argv, void (*child)(const struct demo *),
	    const char *what, const char *hint);
/* Runs `photosync ARGS...` (NULL-ended); its output goes to d->log. */
ps_err	demo_run_self(struct demo *, const char *const *args);
/*
 * Starts `photosync ROLE serve --dir DIR` in the background on
 * 127.0.0.1, on `listen_port` when it is not 0 (serve --listen-port),
 * its output in D/NAME.log; waits until it listens and sets *pid and
 * *port (the bound port). The server gets SIGTERM should the demo die.
 */
ps_err	demo_start_server(struct demo *, const char *role, const char *name,
	    const char *dir, int listen_port, pid_t *pid, int *port);
/* SIGTERM, then SIGKILL after 5 s; waits for it. 0 is a no-op. */
void	demo_stop_server(pid_t);
/*
 * The set-up: the local CA and the TLS certificates, the master with
 * its mailboxes and photos, the portal with its users and settings
 * (on d->master_store and d->portal_store when set).
 */
ps_err	demo_set_up(struct demo *);
/* Article steps 4 and 5 through the ports N and N+1 (servers running). */
ps_err	demo_trust(struct demo *);
/* DIR/demo.env, for scripts. */
ps_err	demo_write_env(struct demo *);
/*
 * The "point a browser at" text, the master on port `mport` and the
 * portal on `pport`; `logs` says where the logs are.
 */
void	demo_print_running(struct demo *, int mport, int pport,
	    const char *logs);

/*
 * demo --sso (kdc.c): once, the KDC's database in D/kdc with the demo's
 * users (its password) and the service HTTP/localhost, whose keytab both
 * roles are given (webapp set --keytab, master kerberos set): before the
 * servers start. Then demo_kdc_start() starts the KDC on port N+2
 * (d->kdc_pid; stopped with demo_stop_server()) and points the servers
 * started after it at D/kdc (KRB5_CONFIG, KRB5RCACHEDIR);
 * demo_kdc_print() says how to get a ticket and use it, the portal on
 * `pport`.
 */
ps_err	demo_kdc_set_up(struct demo *);
ps_err	demo_kdc_start(struct demo *);
void	demo_kdc_print(const struct demo *, int pport);

/*
 * photosync demo --nodes N (cluster.c): PostgreSQL, two master nodes, N
 * portal nodes and HAProxy in front of each role, in d->dir, until
 * SIGINT or SIGTERM (`stop` becomes true). `set_up_done` and `trusted`
 * say how far an earlier run got. Returns the exit status.
 */
int	demo_cluster(struct demo *, int nodes, bool set_up_done, bool trusted,
	    volatile sig_atomic_t *stop);

/*
 * demo --directory (directory.c): D/ldap, slapd's configuration and
 * data with the demo's people (once, at the set-up); slapd started on
 * 127.0.0.1, port N+3 (each run; d->ldap_pid); the master's and the
 * portal's directory settings and first syncs (at the set-up, slapd
 * running, instead of mailbox add and user add), the master writing the
 * photos to the people's entries; its address (the caller frees).
 */
ps_err	demo_directory_make(struct demo *);
ps_err	demo_directory_start(struct demo *);
ps_err	demo_directory_master(struct demo *);
ps_err	demo_directory_portal(struct demo *);
char	*demo_directory_uri(const struct demo *);
/*
 * The project's data/ldap/thumbnailphoto.schema, embedded at build time
 * (name "thumbnailphoto.schema"; NULL for another name): static, with
 * its length in *len.
 */
const char *demo_ldap_schema(const char *name, size_t *len);

#endif
