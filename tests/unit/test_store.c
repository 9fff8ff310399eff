/*
 * Unit tests of the store, against real SQLite files in a temporary
 * directory: migrations (from an empty file, and from stores of the
 * first schema, tests/data/store/master-1.sql and portal-1.sql, with
 * their rows kept), the change feed (every kind of change writes the
 * rows store.h promises, other processes' rows are read and our own left
 * out, pruning, the shared counter), the error cases of every function
 * (missing rows, constraint violations, files that are not stores), and
 * a full disk (a child process with a small RLIMIT_FSIZE).
 *
 * When the environment gives a PostgreSQL database
 * (PHOTOSYNC_TEST_PG_URI, a URI to a server the test environment
 * started), the tests that do not look at SQLite's files run again on
 * PostgreSQL, each store in a database of its own that this program
 * creates and drops; and PostgreSQL's own cases run (the address and its
 * password, the role's mark, a newer schema, an unreachable server, a
 * lost connection, LISTEN, commit order).
 *
 * "Another process" is a forked child: the parent closes its stores
 * before forking, so no SQLite connection crosses a fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "t.h"

/* Each role's schema: its number of migration steps (store_*.c). */
#define MASTER_SCHEMA		8
#define MASTER_SCHEMA_TEXT	"8"
#define PORTAL_SCHEMA		9
#define PORTAL_SCHEMA_TEXT	"9"

static char *dir;	/* the temporary directory, removed at the end */

static const char *pg_uri;	/* PHOTOSYNC_TEST_PG_URI, or NULL */
static bool on_pg;		/* the shared tests now run on PostgreSQL */
static char *pg_dbs[64];	/* the databases made, dropped at the end */
static int npg_dbs;

static char *
path_in(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* pg_uri with the database `db` in place of its own. */
static char *
uri_with_db(const char *db)
{
	const char *host = strstr(pg_uri, "://") + 3;
	const char *query = strchr(host, '?');
	size_t hostlen = query ? (size_t)(query - host) : strlen(host);
	const char *slash = memchr(host, '/', hostlen);
	size_t keep = (size_t)((slash ? slash : host + hostlen) - pg_uri);

	return xasprintf("%.*s/%s%s", (int)keep, pg_uri, db, query ? query :
	    "");
}

/* Runs `sql` on database `uri`; false (and says why) when it fails. */
static bool
pg_run(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r = NULL;
	bool good = PQstatus(c) == CONNECTION_OK;

	if (good) {
		r = PQexec(c, sql);
		good = PQresultStatus(r) == PGRES_COMMAND_OK ||
		    PQresultStatus(r) == PGRES_TUPLES_OK;
	}
	if (!good)
		printf("# %s: %s\n", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return good;
}

/* The one integer `sql` reads on database `uri`, or -1. */
static long
pg_int(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r = PQexec(c, sql);
	long v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atol(PQgetvalue(r, 0, 0));
	else
		printf("# %s: %s\n", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return v;
}

/*
 * Where a test's store goes: a file in the temporary directory, or on
 * PostgreSQL a new empty database (the name is only SQLite's).
 */
static char *
store_addr(const char *name)
{
	char *sql, *db;

	if (!on_pg)
		return path_in(name);
	db = xasprintf("photosync_test_%ld_%d", (long)getpid(), npg_dbs);
	sql = xasprintf("CREATE DATABASE %s", db);
	if (npg_dbs == (int)(sizeof(pg_dbs) / sizeof(pg_dbs[0])) ||
	    !pg_run(pg_uri, sql)) {
		printf("# cannot create database %s\n", db);
		exit(1);
	}
	free(sql);
	pg_dbs[npg_dbs++] = db;
	return uri_with_db(db);
}

static void
pg_drop_all(void)
{
	char *sql;
	int i;

	for (i = 0; i < npg_dbs; i++) {
		sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
		    pg_dbs[i]);
		pg_run(pg_uri, sql);
		free(sql);
		free(pg_dbs[i]);
	}
	npg_dbs = 0;
}

/* The whole file as a string, or NULL; the caller frees. */
static char *
slurp_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		s = xcalloc(1, (size_t)n + 1);
		if (fread(s, 1, (size_t)n, f) != (size_t)n) {
			free(s);
			s = NULL;
		}
	}
	fclose(f);
	return s;
}

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static struct store *
open_or_die(const char *path, enum store_role role)
{
	struct store *st = NULL;

	if (store_open(path, role, true, &st) != PS_OK) {
		printf("# cannot open %s: %s\n", path, ps_errmsg());
		exit(1);
	}
	return st;
}

/*
 * Runs act(store) in a child process with its own connection; true when
 * it returned `want`.
 */
static bool
in_child(const char *path, enum store_role role,
    ps_err (*act)(struct store *), ps_err want)
{
	struct store *st;
	int status;
	pid_t pid;
	ps_err rc;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		return false;
	if (pid == 0) {
		rc = store_open(path, role, false, &st);
		if (rc == PS_OK) {
			rc = act(st);
			store_close(st);
		}
		if (rc != want)
			fprintf(stderr, "child: %s (%s)\n", ps_strerror(rc),
			    ps_errmsg());
		_exit(rc == want ? 0 : 1);
	}
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0;
}

/* ---- reading the feed ---- */

static const char *const kind_names[] = {
	[STORE_CHANGE_CONFIG] = "config",
	[STORE_CHANGE_MAILBOX] = "mailbox",
	[STORE_CHANGE_PHOTO] = "photo",
	[STORE_CHANGE_PREVIEW] = "preview",
	[STORE_CHANGE_PARTNER] = "partner",
	[STORE_CHANGE_MAILBOX_SESSION] = "mailbox_session",
	[STORE_CHANGE_OUTBOX] = "outbox",
	[STORE_CHANGE_DIRECTORY_OUTBOX] = "directory_outbox",
	[STORE_CHANGE_WEBAPP] = "webapp",
	[STORE_CHANGE_USER] = "user",
	[STORE_CHANGE_USER_EMAIL] = "user_email",
	[STORE_CHANGE_ISSUER] = "issuer",
	[STORE_CHANGE_THUMB] = "thumb",
	[STORE_CHANGE_SYNC] = "sync",
	[STORE_CHANGE_SESSION] = "session",
	[STORE_CHANGE_SIGNIN_COUNT] = "signin_count",
};

#define MAX_ROWS 32

struct rows {
	char	 row[MAX_ROWS][340];	/* "kind key" */
	int64_t	 seq[MAX_ROWS];
	int	 n;
};

static ps_err
collect(void *arg, const struct store_change *c)
{
	struct rows *r = arg;

	if (r->n == MAX_ROWS)
		return PS_ELIMIT;
	snprintf(r->row[r->n], sizeof(r->row[0]), "%s %s",
	    kind_names[c->kind], c->key);
	r->seq[r->n++] = c->seq;
	return PS_OK;
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The rows as one sorted line, "a x, b y": the order within a commit is
 * SQLite's. */
static char *
rows_line(char **v, int n)
{
	size_t len = 1;
	char *s;
	int i;

	qsort(v, (size_t)n, sizeof(*v), row_cmp);
	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 2;
	s = xcalloc(1, len);
	for (i = 0; i < n; i++) {
		if (i)
			strcat(s, ", ");
		strcat(s, v[i]);
	}
	return s;
}

/* Changes by other processes after `after`; *last as the store says. */
static ps_err
feed_since(const char *path, enum store_role role, int64_t after,
    struct rows *r, int64_t *last)
{
	struct store *st = open_or_die(path, role);
	ps_err rc;

	memset(r, 0, sizeof(*r));
	rc = store_feed_read(st, after, 1000, collect, r, last);
	store_close(st);
	return rc;
}

static int64_t
feed_head(const char *path, enum store_role role)
{
	struct store *st = open_or_die(path, role);
	int64_t head = -1;

	if (store_feed_head(st, &head) != PS_OK)
		printf("# head: %s\n", ps_errmsg());
	store_close(st);
	return head;
}

/* ---- the feed, change by change ---- */

/* An outbox row's id, chosen by the parent for the next child. */
static int64_t outbox_id;

struct feed_case {
	const char	*what;
	ps_err		(*act)(struct store *);
	ps_err		 rc;		/* what act returns */
	/* the rows it writes, "kind key", ", "-separated, in any order;
	 * "#" stands for outbox_id */
	const char	*want;
	/*
	 * and the outbox rows of this address (notifications of a photo
	 * change replace the address's pending ones; "*": of any address)
	 * that were there before or are there after
	 */
	const char	*outbox;
};

struct ids {
	int64_t	 id[64];
	char	 email[64][256];
	int	 n;
};

static ps_err
collect_id(void *arg, const struct store_outbox *o)
{
	struct ids *ids = arg;

	if (ids->n < 64) {
		str_copy(ids->email[ids->n], o->email, sizeof(ids->email[0]));
		ids->id[ids->n++] = o->id;
	}
	return PS_OK;
}

static void
outbox_ids(const char *path, struct ids *ids)
{
	struct store *st = open_or_die(path, STORE_MASTER);

	memset(ids, 0, sizeof(*ids));
	(void)store_outbox_due(st, INT64_MAX, 64, collect_id, ids);
	store_close(st);
}

/* Adds "outbox <id>" for each id of `email` ("*": any) not yet in `v`. */
static void
want_outbox(char **v, int *n, const struct ids *ids, const char *email)
{
	char *row;
	int i, j;

	for (i = 0; i < ids->n; i++) {
		if (strcmp(email, "*") != 0 && strcmp(email, ids->email[i]))
			continue;
		row = xasprintf("outbox %lld", (long long)ids->id[i]);
		for (j = 0; j < *n && strcmp(v[j], row) != 0; j++)
			;
		if (j < *n)
			free(row);
		else
			v[(*n)++] = row;
	}
}

static void
feed_case_run(const char *path, enum store_role role,
    const struct feed_case *fc)
{
	struct ids before = { .n = 0 }, after;
	struct rows got;
	char *want[MAX_ROWS * 2], *have[MAX_ROWS], *w, *s, *tok, *save;
	char *want_line, *have_line, what[200];
	int64_t head, last;
	int nwant = 0, i;
	ps_err rc;

	if (role == STORE_MASTER) {
		outbox_ids(path, &before);
		outbox_id = before.n ? before.id[0] : 0;
	}
	head = feed_head(path, role);
	snprintf(what, sizeof(what), "%s: returns %s", fc->what,
	    ps_strerror(fc->rc));
	ok(in_child(path, role, fc->act, fc->rc), what);
	rc = feed_since(path, role, head, &got, &last);
	snprintf(what, sizeof(what), "%s: the feed reads", fc->what);
	is_int(rc, PS_OK, what);

	/* What the case promises, with the outbox rows made concrete. */
	w = xstrdup(fc->want);
	for (tok = strtok_r(w, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if ((s = strchr(tok, '#')) != NULL)
			want[nwant++] = xasprintf("%.*s%lld", (int)(s - tok),
			    tok, (long long)outbox_id);
		else
			want[nwant++] = xstrdup(tok);
	}
	free(w);
	if (fc->outbox) {
		outbox_ids(path, &after);
		want_outbox(want, &nwant, &before, fc->outbox);
		want_outbox(want, &nwant, &after, fc->outbox);
	}
	for (i = 0; i < got.n; i++)
		have[i] = got.row[i];
	want_line = rows_line(want, nwant);
	have_line = rows_line(have, got.n);
	snprintf(what, sizeof(what), "%s: writes [%s]", fc->what, want_line);
	is_str(have_line, want_line, what);
	for (i = 1; i < got.n; i++)
		if (got.seq[i] <= got.seq[i - 1])
			break;
	snprintf(what, sizeof(what), "%s: in increasing order, after the "
	    "head", fc->what);
	ok(i >= got.n && (got.n == 0 || (got.seq[0] > head &&
	    last == got.seq[got.n - 1])), what);
	for (i = 0; i < nwant; i++)
		free(want[i]);
	free(want_line);
	free(have_line);
}

/* -- portal -- */

static const unsigned char jpeg_s[] = "small", jpeg_m[] = "medium",
    jpeg_l[] = "large", jpeg_hr[] = "high resolution";

static ps_err
thumb_put(struct store *st, int64_t webapp, const char *account)
{
	const unsigned char *const data[4] = { jpeg_s, jpeg_m, jpeg_l,
	    jpeg_hr };
	const size_t len[4] = { sizeof(jpeg_s), sizeof(jpeg_m),
	    sizeof(jpeg_l), sizeof(jpeg_hr) };

	return store_thumb_put(st, webapp, account, "master", "etag1", data,
	    len);
}

static ps_err
p_webapp_add(struct store *st)
{
	struct store_webapp w = { .port = 443, .photo_import = true,
	    .photo_expiration = 3600, .photo_error_expiration = 600,
	    .size_s = 48, .size_m = 72, .size_l = 200 };

	str_copy(w.url, "https://portal.contoso.com", sizeof(w.url));
	str_copy(w.host, "portal.contoso.com", sizeof(w.host));
	guid_new(w.realm);
	return store_webapp_add(st, &w);
}

static ps_err
p_webapp2_add(struct store *st)
{
	struct store_webapp w = { .port = 8443, .size_s = 48, .size_m = 72,
	    .size_l = 200 };

	str_copy(w.url, "https://team.contoso.com:8443", sizeof(w.url));
	str_copy(w.host, "team.contoso.com", sizeof(w.host));
	guid_new(w.realm);
	return store_webapp_add(st, &w);
}

static ps_err
p_webapp_update(struct store *st)
{
	struct store_webapp w;
	ps_err rc;

	if ((rc = store_webapp_get(st, "HTTPS://portal.contoso.com", &w)) !=
	    PS_OK)
		return rc;
	w.photo_expiration = 7200;
	return store_webapp_update(st, &w);
}

static ps_err
p_user_add(struct store *st)
{
	struct store_user u = { 0 };

	str_copy(u.account, "Contoso\\Test1", sizeof(u.account));
	str_copy(u.email, "Test1@Contoso.com", sizeof(u.email));
	str_copy(u.name, "Test One", sizeof(u.name));
	return store_user_add(st, &u);
}

static ps_err
p_user2_add(struct store *st)
{
	struct store_user u = { 0 };

	str_copy(u.account, "contoso\\test2", sizeof(u.account));
	str_copy(u.email, "test2@contoso.com", sizeof(u.email));
	return store_user_add(st, &u);
}

static ps_err
p_user_password(struct store *st)
{
	return store_user_set_password(st, "CONTOSO\\test1", "$argon2id$x");
}

static ps_err
p_user_hashes(struct store *st)
{
	return store_user_set_hashes(st, "contoso\\test1",
	    "0123456789abcdef0123456789abcdef", NULL);
}

static ps_err
p_thumb1(struct store *st)
{
	return thumb_put(st, 1, "CONTOSO\\Test1");
}

static ps_err
p_thumb2(struct store *st)
{
	return thumb_put(st, 2, "contoso\\test1");
}

static ps_err
p_thumb2_remove(struct store *st)
{
	return store_thumb_remove(st, 2, "contoso\\test1");
}

static ps_err
p_sync1(struct store *st)
{
	struct store_sync s = { .last_success = 1000, .has_mailbox = 1 };

	return store_sync_put(st, 1, "Contoso\\Test1", &s);
}

static ps_err
p_sync2(struct store *st)
{
	struct store_sync s = { .last_error = 1000, .has_mailbox = -1 };

	str_copy(s.reason, "autodiscover failed", sizeof(s.reason));
	return store_sync_put(st, 2, "contoso\\test1", &s);
}

static ps_err
session_put(struct store *st, const char *key)
{
	struct store_session s = { .webapp = 1, .expires = INT64_MAX / 2 };

	str_copy(s.account, "contoso\\test1", sizeof(s.account));
	str_copy(s.csrf, "csrf", sizeof(s.csrf));
	return store_session_put(st, key, &s);
}

static ps_err
p_session_k1(struct store *st)
{
	return session_put(st, "k1");
}

static ps_err
p_session_k1_remove(struct store *st)
{
	return store_session_remove(st, "k1");
}

static ps_err
p_session_k2(struct store *st)
{
	return session_put(st, "k2");
}

static ps_err
p_issuer_put(struct store *st)
{
	struct store_issuer i = { .metadata = "{}", .fetched = 1 };

	str_copy(i.name, "Exchange", sizeof(i.name));
	str_copy(i.issuer, "00000002-0000-0ff1-ce00-000000000000@realm",
	    sizeof(i.issuer));
	str_copy(i.realm, "realm", sizeof(i.realm));
	return store_issuer_put(st, &i);
}

static ps_err
p_issuer_remove(struct store *st)
{
	return store_issuer_remove(st, "EXCHANGE");
}

static ps_err
p_config(struct store *st)
{
	return store_config_set(st, "Realm", "5658bfd5");
}

static ps_err
p_user_remove(struct store *st)
{
	return store_user_remove(st, "Contoso\\TEST1");
}

static ps_err
p_user_again(struct store *st)
{
	struct store_user u = { 0 };

	str_copy(u.account, "contoso\\test2", sizeof(u.account));
	str_copy(u.email, "other@contoso.com", sizeof(u.email));
	return store_user_add(st, &u);
}

static ps_err
p_thumb_nobody(struct store *st)
{
	return thumb_put(st, 1, "contoso\\nobody");
}

static ps_err
p_webapp_again(struct store *st)
{
	return p_webapp_add(st);
}

static const struct feed_case portal_cases[] = {
	{ "webapp add", p_webapp_add, PS_OK, "webapp 1", NULL },
	{ "second webapp add", p_webapp2_add, PS_OK, "webapp 2", NULL },
	{ "webapp update", p_webapp_update, PS_OK, "webapp 1", NULL },
	{ "user add", p_user_add, PS_OK,
	    "user contoso\\test1, user_email test1@contoso.com", NULL },
	{ "second user add", p_user2_add, PS_OK,
	    "user contoso\\test2, user_email test2@contoso.com", NULL },
	{ "user password", p_user_password, PS_OK,
	    "user contoso\\test1, user_email test1@contoso.com", NULL },
	{ "user hashes", p_user_hashes, PS_OK,
	    "user contoso\\test1, user_email test1@contoso.com", NULL },
	{ "thumb put", p_thumb1, PS_OK, "thumb 1/contoso\\test1", NULL },
	{ "thumb put again (replace)", p_thumb1, PS_OK,
	    "thumb 1/contoso\\test1", NULL },
	{ "thumb put, second webapp", p_thumb2, PS_OK,
	    "thumb 2/contoso\\test1", NULL },
	{ "thumb remove", p_thumb2_remove, PS_OK, "thumb 2/contoso\\test1",
	    NULL },
	{ "sync put", p_sync1, PS_OK, "sync 1/contoso\\test1", NULL },
	{ "sync put again (replace)", p_sync1, PS_OK,
	    "sync 1/contoso\\test1", NULL },
	{ "sync put, second webapp", p_sync2, PS_OK, "sync 2/contoso\\test1",
	    NULL },
	{ "session put", p_session_k1, PS_OK, "session k1", NULL },
	{ "session put again (replace)", p_session_k1, PS_OK, "session k1",
	    NULL },
	{ "session remove", p_session_k1_remove, PS_OK, "session k1", NULL },
	{ "issuer put", p_issuer_put, PS_OK, "issuer exchange", NULL },
	{ "issuer put again (update)", p_issuer_put, PS_OK,
	    "issuer exchange", NULL },
	{ "issuer remove", p_issuer_remove, PS_OK, "issuer exchange", NULL },
	{ "config set", p_config, PS_OK, "config Realm", NULL },
	{ "thumb put again, second webapp", p_thumb2, PS_OK,
	    "thumb 2/contoso\\test1", NULL },
	{ "session put for the removal", p_session_k2, PS_OK, "session k2",
	    NULL },
	{ "user remove: cascades", p_user_remove, PS_OK,
	    "user contoso\\test1, user_email test1@contoso.com, "
	    "thumb 1/contoso\\test1, thumb 2/contoso\\test1, "
	    "sync 1/contoso\\test1, sync 2/contoso\\test1, session k2",
	    NULL },
	{ "user add, taken account", p_user_again, PS_EEXIST, "", NULL },
	{ "thumb put, no such user", p_thumb_nobody, PS_ENOTFOUND, "",
	    NULL },
	{ "issuer remove, absent", p_issuer_remove, PS_ENOTFOUND, "", NULL },
	{ "webapp add, taken URL", p_webapp_again, PS_EEXIST, "", NULL },
};

/* -- master -- */

static const unsigned char px1[] = "photo 48", px2[] = "photo 96",
    px3[] = "photo 648";

static ps_err
photo_put(struct store *st, const char *email, const char *etag)
{
	const struct store_photo_size sizes[] = {
		{ 0, 48, px1, sizeof(px1) },
		{ 1, 96, px2, sizeof(px2) },
		{ 8, 648, px3, sizeof(px3) },
	};

	return store_photo_put(st, email, etag, sizes, 3);
}

static ps_err
preview_put(struct store *st, const char *email)
{
	const struct store_photo_size sizes[] = {
		{ 0, 48, px1, sizeof(px1) },
		{ 8, 648, px3, sizeof(px3) },
	};

	return store_preview_put(st, email, "preview1", INT64_MAX / 2, sizes,
	    2);
}

static ps_err
m_mailbox_add(struct store *st)
{
	return store_mailbox_add(st, "Test1@Contoso.com", "Test One",
	    "$argon2id$x");
}

static ps_err
m_mailbox2_add(struct store *st)
{
	return store_mailbox_add(st, "test2@contoso.com", NULL, NULL);
}

static ps_err
m_partner_put(struct store *st)
{
	struct store_partner p = { .metadata = "{}", .fetched = 1,
	    .notify = true };
	char url[] = "https://portal.contoso.com/_layouts/15/metadata/json/1";

	str_copy(p.name, "Portal", sizeof(p.name));
	str_copy(p.issuer, "00000003-0000-0ff1-ce00-000000000000@realm",
	    sizeof(p.issuer));
	p.metadata_url = url;
	return store_partner_put(st, &p);
}

static ps_err
m_session1(struct store *st)
{
	return store_mailbox_session_put(st, "s1", "TEST1@contoso.com", "c",
	    INT64_MAX / 2);
}

static ps_err
m_session2(struct store *st)
{
	return store_mailbox_session_put(st, "s2", "test1@contoso.com", "c",
	    INT64_MAX / 2);
}

static ps_err
m_session2_remove(struct store *st)
{
	return store_mailbox_session_remove(st, "s2");
}

static ps_err
m_password(struct store *st)
{
	return store_mailbox_set_password(st, "test1@CONTOSO.com",
	    "$argon2id$y");
}

static ps_err
m_photo1(struct store *st)
{
	return photo_put(st, "Test1@contoso.com", "e1");
}

static ps_err
m_photo1_again(struct store *st)
{
	return photo_put(st, "test1@contoso.com", "e2");
}

static ps_err
m_photo2(struct store *st)
{
	return photo_put(st, "test2@contoso.com", "f1");
}

static ps_err
m_photo1_remove(struct store *st)
{
	return store_photo_remove(st, "test1@contoso.com");
}

static ps_err
m_outbox_retry(struct store *st)
{
	return store_outbox_retry(st, outbox_id, 1, "portal down");
}

static ps_err
m_outbox_done(struct store *st)
{
	return store_outbox_done(st, outbox_id);
}

static ps_err
m_preview(struct store *st)
{
	return preview_put(st, "Test1@contoso.com");
}

static ps_err
m_preview_save(struct store *st)
{
	return store_preview_save(st, "test1@contoso.com", "e3");
}

static ps_err
m_preview_remove(struct store *st)
{
	return store_preview_remove(st, "test1@contoso.com");
}

static ps_err
m_config(struct store *st)
{
	return store_config_set(st, "domain", "contoso.com");
}

static ps_err
m_mailbox_remove(struct store *st)
{
	return store_mailbox_remove(st, "TEST1@contoso.com");
}

static ps_err
m_partner_remove(struct store *st)
{
	return store_partner_remove(st, "portal");
}

static ps_err
m_mailbox_again(struct store *st)
{
	return store_mailbox_add(st, "test2@CONTOSO.com", NULL, NULL);
}

static ps_err
m_photo_nobody(struct store *st)
{
	return photo_put(st, "nobody@contoso.com", "e9");
}

static ps_err
m_preview_save_none(struct store *st)
{
	return store_preview_save(st, "test2@contoso.com", "e9");
}

static const struct feed_case master_cases[] = {
	{ "mailbox add", m_mailbox_add, PS_OK, "mailbox test1@contoso.com",
	    NULL },
	{ "second mailbox add", m_mailbox2_add, PS_OK,
	    "mailbox test2@contoso.com", NULL },
	{ "partner put", m_partner_put, PS_OK, "partner portal", NULL },
	{ "partner put again (update)", m_partner_put, PS_OK,
	    "partner portal", NULL },
	{ "mailbox session put", m_session1, PS_OK, "mailbox_session s1",
	    NULL },
	{ "mailbox password: ends its sessions", m_password, PS_OK,
	    "mailbox test1@contoso.com, mailbox_session s1", NULL },
	{ "mailbox session put, again", m_session2, PS_OK,
	    "mailbox_session s2", NULL },
	{ "mailbox session remove", m_session2_remove, PS_OK,
	    "mailbox_session s2", NULL },
	{ "photo put: one row for all sizes", m_photo1, PS_OK,
	    "photo test1@contoso.com", "test1@contoso.com" },
	{ "photo put again", m_photo1_again, PS_OK,
	    "photo test1@contoso.com", "test1@contoso.com" },
	{ "outbox retry", m_outbox_retry, PS_OK, "outbox #", NULL },
	{ "outbox done", m_outbox_done, PS_OK, "outbox #", NULL },
	{ "photo remove", m_photo1_remove, PS_OK, "photo test1@contoso.com",
	    "test1@contoso.com" },
	{ "preview put", m_preview, PS_OK, "preview test1@contoso.com",
	    NULL },
	{ "preview save", m_preview_save, PS_OK,
	    "photo test1@contoso.com, preview test1@contoso.com",
	    "test1@contoso.com" },
	{ "preview put, again", m_preview, PS_OK,
	    "preview test1@contoso.com", NULL },
	{ "preview remove", m_preview_remove, PS_OK,
	    "preview test1@contoso.com", NULL },
	{ "config set", m_config, PS_OK, "config domain", NULL },
	{ "preview put for the removal", m_preview, PS_OK,
	    "preview test1@contoso.com", NULL },
	{ "mailbox session put for the removal", m_session1, PS_OK,
	    "mailbox_session s1", NULL },
	{ "mailbox remove: cascades", m_mailbox_remove, PS_OK,
	    "mailbox test1@contoso.com, photo test1@contoso.com, "
	    "preview test1@contoso.com, mailbox_session s1", NULL },
	{ "photo put, second mailbox", m_photo2, PS_OK,
	    "photo test2@contoso.com", "test2@contoso.com" },
	{ "partner remove: cascades to its notifications", m_partner_remove,
	    PS_OK, "partner portal", "*" },
	{ "mailbox add, taken address", m_mailbox_again, PS_EEXIST, "",
	    NULL },
	{ "photo put, no such mailbox", m_photo_nobody, PS_ENOTFOUND, "",
	    NULL },
	{ "preview save, none pending", m_preview_save_none, PS_ENOTFOUND, "",
	    NULL },
};

static void
test_feed_cases(void)
{
	char *portal = store_addr("cases-portal.db");
	char *master = store_addr("cases-master.db");
	size_t i;

	store_close(open_or_die(portal, STORE_PORTAL));
	store_close(open_or_die(master, STORE_MASTER));
	for (i = 0; i < sizeof(portal_cases) / sizeof(*portal_cases); i++)
		feed_case_run(portal, STORE_PORTAL, &portal_cases[i]);
	for (i = 0; i < sizeof(master_cases) / sizeof(*master_cases); i++)
		feed_case_run(master, STORE_MASTER, &master_cases[i]);
	free(portal);
	free(master);
}

/* ---- migrations ---- */

/* A big-endian number of `n` bytes at `off` in a file's SQLite header. */
static long
header_number(const char *path, off_t off, size_t n)
{
	unsigned char b[4];
	int fd = open(path, O_RDONLY);
	long v = -1;
	size_t i;

	if (fd >= 0 && pread(fd, b, n, off) == (ssize_t)n)
		for (i = 0, v = 0; i < n; i++)
			v = v << 8 | b[i];
	if (fd >= 0)
		close(fd);
	return v;
}

/* The file's SQLite user_version (header offset 60): its schema. */
static long
schema_version(const char *path)
{
	return header_number(path, 60, 4);
}

/* The file's SQLite application_id (header offset 68): its role's mark. */
static long
application_id(const char *path)
{
	return header_number(path, 68, 4);
}

/* The file's page size (header offset 16). */
static long
page_size(const char *path)
{
	return header_number(path, 16, 2);
}

static void
test_migrations(void)
{
	char *master = path_in("migrate-master.db");
	char *portal = path_in("migrate-portal.db");
	char *missing = path_in("missing.db");
	static const unsigned char v99[4] = { 0, 0, 0, 99 };
	struct store *st = NULL;
	int64_t head = -1;
	int fd;

	/* The last connection's close checkpoints: the header is current. */
	st = open_or_die(master, STORE_MASTER);
	ok(store_feed_head(st, &head) == PS_OK && head == 0,
	    "master: migrated from empty, the feed is empty");
	store_close(st);
	is_int(schema_version(master), MASTER_SCHEMA, "master: schema version "
	    MASTER_SCHEMA_TEXT);
	is_int(page_size(master), 16384, "a new store's pages are 16 KiB");
	st = open_or_die(portal, STORE_PORTAL);
	ok(store_feed_head(st, &head) == PS_OK && head == 0,
	    "portal: migrated from empty, the feed is empty");
	store_close(st);
	is_int(schema_version(portal), PORTAL_SCHEMA, "portal: schema version "
	    PORTAL_SCHEMA_TEXT);
	st = NULL;
	ok(store_open(portal, STORE_PORTAL, false, &st) == PS_OK,
	    "a current store opens again");
	store_close(st);
	is_int(schema_version(portal), PORTAL_SCHEMA,
	    "and stays at its version");

	fd = open(portal, O_WRONLY);
	ok(fd >= 0 && pwrite(fd, v99, 4, 60) == 4, "version set to 99");
	if (fd >= 0)
		close(fd);
	st = NULL;
	is_int(store_open(portal, STORE_PORTAL, false, &st), PS_ESTORE,
	    "a store newer than this program is refused");
	ok(st == NULL && strstr(ps_errmsg(), "schema version 99, newer than "
	    "this photosync knows (" PORTAL_SCHEMA_TEXT ")") &&
	    strstr(ps_errmsg(), portal),
	    "with a clear error naming the file and both versions");
	is_int(schema_version(portal), 99, "and is left as it was");
	is_int(store_open(missing, STORE_MASTER, false, &st), PS_ENOTFOUND,
	    "no store and no create: not found");
	ok(access(missing, F_OK) != 0, "and nothing was created");
	free(master);
	free(portal);
	free(missing);
}

/*
 * Makes the store `path` from the SQL file `sql` (a store of an older
 * schema, as that version of photosync wrote it), with SQLite itself:
 * no code of the store runs. True when it worked.
 */
static bool
store_from_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *text, *err = NULL;
	bool good;

	text = slurp_file(sql);
	good = text != NULL && sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, text, NULL, NULL, &err) == SQLITE_OK;
	if (err != NULL)
		printf("# %s: %s\n", sql, err);
	sqlite3_free(err);
	sqlite3_close(db);
	free(text);
	return good;
}

static void
test_migrate_master_1(void)
{
	char *path = path_in("master-1.db");
	struct store *st = NULL;
	struct store_mailbox m = { 0 };
	struct store_photo p = { 0 };
	struct store_partner pa = { 0 };
	char *value = NULL;
	int64_t head = -1, head2 = -1;

	ok(store_from_sql(path, "../data/store/master-1.sql"),
	    "master: a store of schema 1 made");
	is_int(schema_version(path), 1, "master: it is at version 1");
	is_int(application_id(path), 0, "master: without a role's mark");
	ok(store_open(path, STORE_PORTAL, false, &st) == PS_ESTORE &&
	    st == NULL && strstr(ps_errmsg(), "not a portal's store"),
	    "master: an unmarked master's store is no portal's");
	is_int(schema_version(path), 1, "  and is left as it was");
	is_int(store_open(path, STORE_MASTER, false, &st), PS_OK,
	    "master: the current code opens it");
	if (st == NULL) {
		printf("#   %s\n", ps_errmsg());
		free(path);
		return;
	}
	ok(store_config_get(st, "realm", &value) == PS_OK && value &&
	    strcmp(value, "old-realm") == 0, "master 1: the setting is kept");
	free(value);
	ok(store_mailbox_get(st, "OLD@contoso.com", &m) == PS_OK &&
	    strcmp(m.name, "Old Mailbox") == 0 && m.pwhash &&
	    strncmp(m.pwhash, "$argon2id$", 10) == 0 &&
	    m.created == 1700000000 && strcmp(m.etag, "old-etag") == 0,
	    "master 1: the mailbox, its password and its photo's ETag kept");
	store_mailbox_cleanup(&m);
	ok(store_photo_get(st, "old@contoso.com", 1, &p) == PS_OK &&
	    p.side == 96 && p.len == 8 && memcmp(p.data, "photo 96", 8) == 0,
	    "master 1: the photo's sizes kept");
	store_photo_cleanup(&p);
	ok(store_partner_get(st, "sharepoint", &pa) == PS_OK &&
	    pa.metadata_url && strstr(pa.metadata_url, "portal.contoso.com") &&
	    pa.notify && pa.ca_file[0] == '\0' && pa.added == 1700000004,
	    "master 1: the partner kept, with notifications on (migration 3)");
	store_partner_cleanup(&pa);
	ok(store_feed_head(st, &head) == PS_OK && head == 0,
	    "master 1: the feed is there (migration 4), empty");
	is_int(store_photo_put(st, "old@contoso.com", "new-etag", NULL, 0),
	    PS_OK, "master 1: a photo change");
	ok(store_feed_head(st, &head2) == PS_OK && head2 > head,
	    "master 1: the change wrote the feed (its triggers work)");
	is_int(store_outbox_pending(st), 1,
	    "master 1: and queued a notice to the old partner (outbox)");
	store_close(st);
	is_int(schema_version(path), MASTER_SCHEMA, "master 1: now at version "
	    MASTER_SCHEMA_TEXT);
	is_int(application_id(path), 0x50534d31, "master 1: now marked as a "
	    "master's store");
	is_int(page_size(path), 4096, "master 1: its pages keep their size");
	free(path);
}

static void
test_migrate_portal_1(void)
{
	char *path = path_in("portal-1.db");
	struct store *st = NULL;
	struct store_webapp w = { 0 };
	struct store_user u = { 0 };
	struct store_issuer is = { 0 };
	struct store_thumb t = { 0 };
	struct store_sync sy = { 0 };
	struct store_session se = { 0 };
	char *value = NULL;
	int64_t head = -1, head2 = -1;

	ok(store_from_sql(path, "../data/store/portal-1.sql"),
	    "portal: a store of schema 1 made");
	is_int(schema_version(path), 1, "portal: it is at version 1");
	ok(store_open(path, STORE_MASTER, false, &st) == PS_ESTORE &&
	    st == NULL && strstr(ps_errmsg(), "not a master's store"),
	    "portal: an unmarked portal's store is no master's");
	is_int(schema_version(path), 1, "  and is left as it was");
	is_int(store_open(path, STORE_PORTAL, false, &st), PS_OK,
	    "portal: the current code opens it");
	if (st == NULL) {
		printf("#   %s\n", ps_errmsg());
		free(path);
		return;
	}
	ok(store_config_get(st, "setup", &value) == PS_OK && value &&
	    strcmp(value, "done") == 0, "portal 1: the setting is kept");
	free(value);
	ok(store_webapp_get(st, "https://PORTAL.contoso.com", &w) == PS_OK &&
	    w.id == 1 && w.photo_import && w.photo_expiration == 21600 &&
	    w.sync_any && w.size_l == 300 &&
	    strcmp(w.autodiscover_domain, "mail.contoso.com") == 0 &&
	    strcmp(w.ca_file, "/etc/ca.pem") == 0,
	    "portal 1: the web application and its settings kept");
	ok(w.background_refresh == 0 && w.notifications && !w.avatar_anyone &&
	    w.avatar_defaults[0] == '\0',
	    "portal 1: the settings of migration 2 have their defaults");
	ok(store_user_get(st, "CONTOSO\\old", &u) == PS_OK &&
	    strcmp(u.email, "old@contoso.com") == 0 &&
	    strcmp(u.name, "Old User") == 0 && u.pwhash != NULL &&
	    u.email_md5[0] == '\0',
	    "portal 1: the user kept (address hashes unknown until set)");
	store_user_cleanup(&u);
	ok(store_user_get_by_prefix(st, "contoso_old", &u) == PS_OK,
	    "portal 1: found by library file prefix (migration 1's index)");
	store_user_cleanup(&u);
	ok(store_issuer_get(st, "exchange", &is) == PS_OK &&
	    strcmp(is.realm, "old-realm") == 0, "portal 1: the issuer kept");
	store_issuer_cleanup(&is);
	ok(store_thumb_get(st, 1, "contoso\\old", STORE_M, &t) == PS_OK &&
	    strcmp(t.etag, "old-etag") == 0 && t.len == 2 &&
	    memcmp(t.data, "M1", 2) == 0, "portal 1: the photos kept");
	store_thumb_cleanup(&t);
	is_int(store_thumb_get(st, 1, "contoso\\old", STORE_HR, &t),
	    PS_ENOTFOUND, "portal 1: no high-resolution source for them");
	ok(store_sync_get(st, 1, "contoso\\old", &sy) == PS_OK &&
	    sy.last_success == 1700000004 &&
	    strcmp(sy.master_etag, "master-etag") == 0 && sy.has_mailbox == 1,
	    "portal 1: the sync state kept");
	ok(store_session_get(st, "old-session", &se) == PS_OK &&
	    strcmp(se.account, "contoso\\old") == 0 &&
	    strcmp(se.csrf, "old-csrf") == 0, "portal 1: the session kept");
	ok(store_feed_head(st, &head) == PS_OK && head == 0,
	    "portal 1: the feed is there (migration 3), empty");
	is_int(store_user_set_hashes(st, "contoso\\old", "0123456789abcdef"
	    "0123456789abcdef", "aa"), PS_OK, "portal 1: a change");
	ok(store_feed_head(st, &head2) == PS_OK && head2 > head,
	    "portal 1: the change wrote the feed (its triggers work)");
	store_close(st);
	is_int(schema_version(path), PORTAL_SCHEMA, "portal 1: now at version "
	    PORTAL_SCHEMA_TEXT);
	is_int(application_id(path), 0x50535031, "portal 1: now marked as a "
	    "portal's store");
	free(path);
}

/* ---- own rows, other processes' rows, limits ---- */

static const char *child_key;

static ps_err
child_config(struct store *st)
{
	return store_config_set(st, child_key, "child");
}

static ps_err
refuse(void *arg, const struct store_change *c)
{
	(void)arg;
	(void)c;
	return ps_errf(PS_EINVAL, "refused");
}

static int64_t
own_config(const char *path, const char *key)
{
	struct store *st = open_or_die(path, STORE_PORTAL);
	int64_t head = -1;

	if (store_config_set(st, key, "parent") != PS_OK ||
	    store_feed_head(st, &head) != PS_OK)
		printf("# own write: %s\n", ps_errmsg());
	store_close(st);
	return head;
}

static void
test_feed_origin(void)
{
	char *path = store_addr("origin.db");
	struct store *st;
	struct rows r;
	int64_t start, last, own_c, head;
	ps_err rc;

	store_close(open_or_die(path, STORE_PORTAL));
	start = feed_head(path, STORE_PORTAL);
	own_config(path, "a");
	head = feed_head(path, STORE_PORTAL);
	ok(head > start, "this process's change wrote a row");
	rc = feed_since(path, STORE_PORTAL, start, &r, &last);
	ok(rc == PS_OK && r.n == 0, "own rows are left out");
	is_int(last, head, "but read past");

	child_key = "b";
	ok(in_child(path, STORE_PORTAL, child_config, PS_OK),
	    "another process changes a setting");
	rc = feed_since(path, STORE_PORTAL, last, &r, &last);
	ok(rc == PS_OK && r.n == 1, "its row is read");
	is_str(r.row[0], "config b", "kind and key");

	start = last;
	own_c = own_config(path, "c");
	child_key = "d";
	ok(in_child(path, STORE_PORTAL, child_config, PS_OK),
	    "interleaved: another process");
	head = own_config(path, "e");
	rc = feed_since(path, STORE_PORTAL, start, &r, &last);
	ok(rc == PS_OK && r.n == 1 && strcmp(r.row[0], "config d") == 0,
	    "only the other process's row among ours");
	is_int(last, head, "the last row examined is ours");

	st = open_or_die(path, STORE_PORTAL);
	memset(&r, 0, sizeof(r));
	rc = store_feed_read(st, start, 1, collect, &r, &last);
	ok(rc == PS_OK && r.n == 0 && last == own_c,
	    "limit 1 examines one row (our own)");
	rc = store_feed_read(st, last, 1, collect, &r, &last);
	ok(rc == PS_OK && r.n == 1 && last == r.seq[0] && last > own_c,
	    "the next call goes on after it");
	rc = store_feed_read(st, own_c, 10, refuse, NULL, &last);
	ok(rc == PS_EINVAL && last == own_c,
	    "a callback's error stops the read before its row");
	store_close(st);
	free(path);
}

/* ---- pruning ---- */

static void
test_feed_prune(void)
{
	char *path = store_addr("prune.db");
	struct store *st;
	struct rows r;
	int64_t head, head2, last;
	ps_err rc;
	int i;

	store_close(open_or_die(path, STORE_PORTAL));
	child_key = "x";
	for (i = 0; i < 3; i++)
		ok(in_child(path, STORE_PORTAL, child_config, PS_OK),
		    "another process writes");
	st = open_or_die(path, STORE_PORTAL);
	store_feed_head(st, &head);
	is_int(store_feed_prune(st, 0), PS_OK, "pruning nothing");
	memset(&r, 0, sizeof(r));
	rc = store_feed_read(st, 0, 100, collect, &r, &last);
	ok(rc == PS_OK && r.n == 3, "everything is still there");
	is_int(store_feed_prune(st, time_now() + 60), PS_OK,
	    "pruning every row older than a minute from now");
	store_feed_head(st, &head2);
	is_int(head2, head, "the newest row is kept, pruning wrote none");
	memset(&r, 0, sizeof(r));
	rc = store_feed_read(st, 0, 100, collect, &r, &last);
	is_int(rc, PS_ELIMIT, "a reader from before the pruned rows is told");
	ok(r.n == 0 && strstr(ps_errmsg(), "pruned"),
	    "and given no rows, with a reason");
	rc = store_feed_read(st, head - 1, 100, collect, &r, &last);
	ok(rc == PS_OK && r.n == 1 && r.seq[0] == head,
	    "a reader just before the newest row reads it");
	store_close(st);

	ok(in_child(path, STORE_PORTAL, child_config, PS_OK),
	    "another process writes after the pruning");
	rc = feed_since(path, STORE_PORTAL, head, &r, &last);
	ok(rc == PS_OK && r.n == 1 && r.seq[0] > head,
	    "its row has a new number");
	st = open_or_die(path, STORE_PORTAL);
	is_int(store_feed_prune(st, time_now() + 60), PS_OK, "pruning again");
	memset(&r, 0, sizeof(r));
	rc = store_feed_read(st, head, 100, collect, &r, &last);
	ok(rc == PS_OK && r.n == 1, "a reader at the previous head misses "
	    "nothing");
	rc = store_feed_read(st, head - 1, 100, collect, &r, &last);
	is_int(rc, PS_ELIMIT, "one before it is now behind the pruning");
	store_close(st);
	free(path);
}

/* ---- the shared counter ---- */

static ps_err
child_read(struct store *st)
{
	int64_t head;

	return store_feed_head(st, &head);
}

static void
test_feed_watch(void)
{
	char *path = path_in("watch.db"), *feed = path_in("watch.db-feed");
	char *fresh = path_in("fresh.db"), *bad = path_in("bad.db");
	char *bad_feed = path_in("bad.db-feed");
	struct store_feed_watch *w;
	struct store *st;
	struct stat sb;
	uint64_t v0, v1;

	store_close(open_or_die(path, STORE_MASTER));
	ok(stat(feed, &sb) != 0 && errno == ENOENT,
	    "creating a store makes no counter file (nothing watches it yet)");
	store_close(open_or_die(path, STORE_MASTER));
	ok(stat(feed, &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
	    sb.st_size >= 4096, "opening it again makes it, 0600");
	w = store_feed_watch_open(path);
	ok(w != NULL, "a server maps it");
	v0 = w ? store_feed_watch_value(w) : 0;
	child_key = "y";
	ok(in_child(path, STORE_MASTER, child_config, PS_OK),
	    "another process commits");
	v1 = w ? store_feed_watch_value(w) : 0;
	ok(v1 > v0, "the counter moved");
	ok(in_child(path, STORE_MASTER, child_read, PS_OK),
	    "another process only reads");
	is_int(w ? store_feed_watch_value(w) : 0, v1, "the counter stays");
	store_feed_watch_close(w);

	w = store_feed_watch_open(fresh);
	ok(w != NULL && store_feed_watch_value(w) == 0,
	    "watching before any store_open creates the file at 0");
	store_feed_watch_close(w);

	/* The counter file cannot be made: the store works without it. */
	store_close(open_or_die(bad, STORE_MASTER));
	ok(mkdir(bad_feed, 0700) == 0, "the counter's name is taken");
	st = NULL;
	ok(store_open(bad, STORE_MASTER, false, &st) == PS_OK && st &&
	    store_config_set(st, "k", "v") == PS_OK,
	    "the store opens and changes anyway");
	store_close(st);
	w = store_feed_watch_open(bad);
	ok(w == NULL && strstr(ps_errmsg(), bad_feed),
	    "a server cannot watch it, and is told why");
	free(path);
	free(feed);
	free(fresh);
	free(bad);
	free(bad_feed);
}

/* ---- WAL checkpoints still happen ---- */

static void
test_checkpoint(void)
{
	char *path = path_in("wal.db"), *wal = path_in("wal.db-wal");
	unsigned char b[2] = { 0, 0 };
	struct store *st = open_or_die(path, STORE_PORTAL);
	struct stat sb;
	char value[16], *v;
	long page;
	int fd, i;
	ps_err rc = PS_OK;

	/*
	 * Each commit writes at least two pages (the setting, the feed).
	 * The reads between them stop at their first row: a statement kept
	 * for the next call must not keep reading (a reader holds the WAL).
	 */
	for (i = 0; i < 1500 && rc == PS_OK; i++) {
		snprintf(value, sizeof(value), "%d", i);
		rc = store_config_set(st, "counter", value);
		if (rc == PS_OK && (rc = store_config_get(st, "counter", &v)) ==
		    PS_OK)
			free(v);
	}
	is_int(rc, PS_OK, "1500 commits, each read back");
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		if (pread(fd, b, 2, 16) != 2)
			b[0] = b[1] = 0;
		close(fd);
	}
	page = b[0] << 8 | b[1];
	if (page == 1)
		page = 65536;
	ok(stat(wal, &sb) == 0 && page > 0 &&
	    sb.st_size <= 32 + 1100 * (page + 24),
	    "the WAL was checkpointed at 1000 frames, not left to grow");
	store_close(st);
	free(path);
	free(wal);
}

/* ---- a callback that runs its caller's statement ---- */

static int each_rows;

static ps_err
count_user(void *arg, const struct store_user *u)
{
	(void)arg;
	(void)u;
	each_rows++;
	return PS_OK;
}

static ps_err
nested_each(void *arg, const struct store_user *u)
{
	struct store *st = arg;
	struct store_user again;
	ps_err rc;

	each_rows += 100;
	if ((rc = store_user_get(st, u->account, &again)) != PS_OK)
		return rc;
	store_user_cleanup(&again);
	return store_user_each(st, count_user, NULL);
}

static void
test_nested(void)
{
	char *path = store_addr("nested.db");
	struct store *st = open_or_die(path, STORE_PORTAL);
	struct store_user u = { 0 };
	int i;

	for (i = 0; i < 3; i++) {
		snprintf(u.account, sizeof(u.account), "contoso\\u%d", i);
		snprintf(u.email, sizeof(u.email), "u%d@contoso.com", i);
		store_user_add(st, &u);
	}
	each_rows = 0;
	is_int(store_user_each(st, nested_each, st), PS_OK,
	    "a callback lists the users while they are being listed");
	is_int(each_rows, 3 * 100 + 3 * 3, "each list saw every user once");
	each_rows = 0;
	ok(store_user_each(st, count_user, NULL) == PS_OK && each_rows == 3,
	    "and the statement works again afterwards");
	store_close(st);
	free(path);
}

/* ---- errors ---- */

static void
test_errors(void)
{
	char *path = store_addr("errors.db");
	struct store *st = open_or_die(path, STORE_MASTER);
	const struct store_photo_size twice[] = {
		{ 0, 48, px1, sizeof(px1) },
		{ 0, 48, px2, sizeof(px2) },
	};
	struct store_mailbox m;
	struct store_photo p;
	struct store_partner pa;
	int64_t head, head2;

	ok(store_mailbox_add(st, "a@contoso.com", "A", NULL) == PS_OK &&
	    photo_put(st, "a@contoso.com", "e1") == PS_OK, "a photo");
	store_feed_head(st, &head);
	is_int(store_photo_put(st, "a@contoso.com", "e2", twice, 2),
	    PS_EEXIST, "a photo put that fails half-way");
	ok(store_photo_get(st, "a@contoso.com", 8, &p) == PS_OK &&
	    strcmp(p.etag, "e1") == 0 && p.len == sizeof(px3) &&
	    memcmp(p.data, px3, p.len) == 0,
	    "leaves the previous photo, every size");
	store_photo_cleanup(&p);
	store_feed_head(st, &head2);
	is_int(head2, head, "and no feed row");
	is_int(store_mailbox_get(st, "b@contoso.com", &m), PS_ENOTFOUND,
	    "mailbox get: absent");
	ok(strstr(ps_errmsg(), "b@contoso.com") != NULL, "names it");
	is_int(store_mailbox_remove(st, "b@contoso.com"), PS_ENOTFOUND,
	    "mailbox remove: absent");
	is_int(store_mailbox_set_password(st, "b@contoso.com", "x"),
	    PS_ENOTFOUND, "mailbox password: absent");
	is_int(store_photo_remove(st, "b@contoso.com"), PS_ENOTFOUND,
	    "photo remove: no photo");
	is_int(store_preview_remove(st, "a@contoso.com"), PS_ENOTFOUND,
	    "preview remove: none pending");
	is_int(store_partner_remove(st, "nobody"), PS_ENOTFOUND,
	    "partner remove: absent");
	is_int(store_partner_get(st, "nobody", &pa), PS_ENOTFOUND,
	    "partner get: absent");
	is_int(store_mailbox_session_put(st, "k", "a@contoso.com", "c",
	    INT64_MAX / 2), PS_ENOTFOUND,
	    "a session of a mailbox without a password: refused");
	is_int(store_end(st, true), PS_ESTORE,
	    "committing without a transaction fails");
	ok(strstr(ps_errmsg(), "nothing to commit") != NULL, "and says so");
	ok(store_begin(st) == PS_OK && store_end(st, false) == PS_OK &&
	    store_config_set(st, "k", "v") == PS_OK,
	    "a rolled back transaction leaves the store usable");
	store_close(st);
	free(path);
}

static ps_err
never_called(void *arg, const void *row)
{
	(void)row;
	(*(int *)arg)++;
	return PS_OK;
}

/* The error cases of the master's functions. */
static void
test_errors_master(void)
{
	char *path = store_addr("errors-master.db");
	struct store *st = open_or_die(path, STORE_MASTER);
	const struct store_photo_size one[] = { { 0, 48, px1, sizeof(px1) } };
	struct store_partner pa = { 0 }, pb = { 0 };
	struct store_mailbox_session ms;
	struct store_photo p;
	char *value = (char *)"unchanged";
	int calls = 0;

	ok(store_mailbox_add(st, "a@contoso.com", "A", "$argon2id$x") ==
	    PS_OK, "a mailbox");
	is_int(store_mailbox_add(st, "A@Contoso.com", "B", NULL), PS_EEXIST,
	    "mailbox add: a taken address (in another case)");
	is_int(store_config_get(st, "nothing", &value), PS_ENOTFOUND,
	    "config get: absent");
	ok(value == NULL || strcmp(value, "unchanged") == 0,
	    "and no value returned");
	is_int(store_photo_put(st, "b@contoso.com", "e", one, 1),
	    PS_ENOTFOUND, "photo put: no such mailbox");
	is_int(store_photo_get(st, "a@contoso.com", 0, &p), PS_ENOTFOUND,
	    "photo get: a mailbox without a photo");
	is_int(store_photo_get(st, "b@contoso.com", 0, &p), PS_ENOTFOUND,
	    "photo get: no such mailbox");
	is_int(store_preview_put(st, "b@contoso.com", "id", INT64_MAX / 2,
	    one, 1), PS_ENOTFOUND, "preview put: no such mailbox");
	is_int(store_preview_get(st, "a@contoso.com", 0, &p), PS_ENOTFOUND,
	    "preview get: none pending");
	is_int(store_preview_save(st, "a@contoso.com", "e"), PS_ENOTFOUND,
	    "preview save: none pending");
	is_int(store_photo_get(st, "a@contoso.com", 0, &p), PS_ENOTFOUND,
	    "and no photo was made");
	ok(store_preview_put(st, "a@contoso.com", "old", 1, one, 1) == PS_OK,
	    "an expired preview");
	is_int(store_preview_get(st, "a@contoso.com", 0, &p), PS_ENOTFOUND,
	    "preview get: expired");
	is_int(store_preview_save(st, "a@contoso.com", "e"), PS_ENOTFOUND,
	    "preview save: expired");
	is_int(store_mailbox_session_put(st, "k", "b@contoso.com", "c",
	    INT64_MAX / 2), PS_ENOTFOUND, "mailbox session put: no mailbox");
	is_int(store_mailbox_session_get(st, "nothing", &ms), PS_ENOTFOUND,
	    "mailbox session get: absent");
	ok(store_mailbox_session_put(st, "old", "a@contoso.com", "c", 1) ==
	    PS_OK, "an expired session");
	is_int(store_mailbox_session_get(st, "old", &ms), PS_ENOTFOUND,
	    "mailbox session get: expired");
	is_int(store_mailbox_session_remove(st, "nothing"), PS_OK,
	    "mailbox session remove: absent is not an error");
	/* A notice whose partner was removed while it was being sent. */
	is_int(store_outbox_done(st, 12345), PS_OK,
	    "outbox done: a notice already gone is not an error");
	is_int(store_outbox_retry(st, 12345, 1, "x"), PS_OK,
	    "outbox retry: a notice already gone is not an error");
	is_int(store_outbox_pending(st), 0, "and none is made");
	is_int(store_outbox_due(st, INT64_MAX, 10,
	    (ps_err (*)(void *, const struct store_outbox *))never_called,
	    &calls), PS_OK, "outbox due: none");
	is_int(calls, 0, "and nothing listed");
	str_copy(pa.name, "P1", sizeof(pa.name));
	str_copy(pa.issuer, "i@r", sizeof(pa.issuer));
	pa.metadata = (char *)"{}";
	pb = pa;
	str_copy(pb.name, "P2", sizeof(pb.name));
	ok(store_partner_put(st, &pa) == PS_OK, "a partner");
	is_int(store_partner_put(st, &pb), PS_EEXIST,
	    "partner put: another name with a taken issuer");
	is_int(store_partner_get(st, "P2", &pb), PS_ENOTFOUND,
	    "and it was not added");
	is_int(store_mailbox_set_password(st, "b@contoso.com", NULL),
	    PS_ENOTFOUND, "mailbox password: no such mailbox");
	is_int(store_mailbox_remove(st, "a@contoso.com"), PS_OK,
	    "the mailbox removed");
	is_int(store_mailbox_session_get(st, "k", &ms), PS_ENOTFOUND,
	    "its sessions are gone with it");
	is_int(store_begin(st), PS_OK, "a transaction");
	is_int(store_begin(st), PS_ESTORE, "begin: within a transaction");
	is_int(store_end(st, false), PS_OK, "and the first one still ends");
	store_close(st);
	free(path);
}

/* The error cases of the portal's functions. */
static void
test_errors_portal(void)
{
	char *path = store_addr("errors-portal.db");
	struct store *st = open_or_die(path, STORE_PORTAL);
	const unsigned char *const data[4] = { px1, px1, px1, px1 };
	const size_t len[4] = { sizeof(px1), sizeof(px1), sizeof(px1),
	    sizeof(px1) };
	struct store_webapp w = { 0 }, w2;
	struct store_user u = { 0 }, got;
	struct store_issuer is;
	struct store_thumb t;
	struct store_sync sy = { .last_success = 5 };
	struct store_session se = { 0 };
	char etag[64];
	int64_t n = -1;

	str_copy(w.url, "https://portal.contoso.com", sizeof(w.url));
	str_copy(w.host, "portal.contoso.com", sizeof(w.host));
	w.port = 443;
	str_copy(w.realm, "r", sizeof(w.realm));
	w.size_s = 48;
	w.size_m = 72;
	w.size_l = 300;
	ok(store_webapp_add(st, &w) == PS_OK && w.id > 0, "a web application");
	w2 = w;
	str_copy(w2.url, "https://PORTAL.contoso.com", sizeof(w2.url));
	is_int(store_webapp_add(st, &w2), PS_EEXIST,
	    "webapp add: a taken URL (in another case)");
	w2 = w;
	str_copy(w2.url, "https://second.contoso.com", sizeof(w2.url));
	ok(store_webapp_add(st, &w2) == PS_OK && w2.id == w.id + 1,
	    "webapp add: the next id, none spent on the refused add");
	is_int(store_webapp_get(st, "https://other", &w2), PS_ENOTFOUND,
	    "webapp get: absent");
	w2 = w;
	w2.id = 999;
	is_int(store_webapp_update(st, &w2), PS_ENOTFOUND,
	    "webapp update: no such web application");

	str_copy(u.account, "contoso\\a", sizeof(u.account));
	str_copy(u.email, "a@contoso.com", sizeof(u.email));
	ok(store_user_add(st, &u) == PS_OK, "a user");
	str_copy(u.account, "CONTOSO\\A", sizeof(u.account));
	str_copy(u.email, "other@contoso.com", sizeof(u.email));
	is_int(store_user_add(st, &u), PS_EEXIST,
	    "user add: a taken account (in another case)");
	str_copy(u.account, "contoso\\b", sizeof(u.account));
	str_copy(u.email, "A@contoso.com", sizeof(u.email));
	is_int(store_user_add(st, &u), PS_EEXIST,
	    "user add: a taken address (in another case)");
	ok(store_user_count(st, &n) == PS_OK && n == 1,
	    "and neither was added");
	is_int(store_user_get(st, "contoso\\b", &got), PS_ENOTFOUND,
	    "user get: absent");
	is_int(store_user_get_by_email(st, "b@contoso.com", &got),
	    PS_ENOTFOUND, "user get by address: absent");
	is_int(store_user_get_by_hash(st, "0123456789abcdef0123456789abcdef",
	    &got), PS_ENOTFOUND, "user get by hash: absent");
	is_int(store_user_get_by_prefix(st, "contoso_b", &got), PS_ENOTFOUND,
	    "user get by file prefix: absent");
	is_int(store_user_remove(st, "contoso\\b"), PS_ENOTFOUND,
	    "user remove: absent");
	is_int(store_user_set_password(st, "contoso\\b", NULL), PS_ENOTFOUND,
	    "user password: absent");
	/* The portal fills them in for users it lists: one removed since. */
	is_int(store_user_set_hashes(st, "contoso\\b", "x", "y"), PS_OK,
	    "user hashes: a user gone is not an error");
	is_int(store_user_get_by_hash(st, "x", &got), PS_ENOTFOUND,
	    "and no user has them");

	is_int(store_issuer_get(st, "nobody", &is), PS_ENOTFOUND,
	    "issuer get: absent");
	is_int(store_issuer_remove(st, "nobody"), PS_ENOTFOUND,
	    "issuer remove: absent");

	is_int(store_thumb_put(st, w.id, "contoso\\b", "master", "e", data,
	    len), PS_ENOTFOUND, "thumb put: no such user");
	is_int(store_thumb_put(st, 999, "contoso\\a", "master", "e", data,
	    len), PS_ENOTFOUND, "thumb put: no such web application");
	is_int(store_thumb_get(st, w.id, "contoso\\a", STORE_L, &t),
	    PS_ENOTFOUND, "thumb get: no photo");
	is_int(store_thumb_etag(st, w.id, "contoso\\a", etag), PS_ENOTFOUND,
	    "thumb ETag: no photo");
	is_int(store_thumb_remove(st, w.id, "contoso\\a"), PS_ENOTFOUND,
	    "thumb remove: no photo");

	memset(&got, 0, sizeof(got));
	ok(store_sync_get(st, w.id, "contoso\\b", (struct store_sync *)
	    memset(&sy, 0xff, sizeof(sy))) == PS_OK && sy.last_success == 0 &&
	    sy.has_mailbox == -1 && sy.reason[0] == '\0',
	    "sync get: an unknown user gets a zeroed state");
	sy.last_success = 5;
	is_int(store_sync_put(st, w.id, "contoso\\b", &sy), PS_ENOTFOUND,
	    "sync put: no such user");
	is_int(store_sync_put(st, 999, "contoso\\a", &sy), PS_ENOTFOUND,
	    "sync put: no such web application");

	str_copy(se.account, "contoso\\b", sizeof(se.account));
	se.webapp = w.id;
	se.expires = INT64_MAX / 2;
	is_int(store_session_put(st, "k", &se), PS_ENOTFOUND,
	    "session put: no such user, refused");
	ok(strstr(ps_errmsg(), "no user contoso\\b") != NULL,
	    "  says so");
	str_copy(se.account, "contoso\\a", sizeof(se.account));
	se.webapp = 999;
	is_int(store_session_put(st, "k", &se), PS_ENOTFOUND,
	    "session put: no such web application, refused");
	is_int(store_session_get(st, "k", &se), PS_ENOTFOUND,
	    "session get: absent (neither was stored)");
	str_copy(se.account, "contoso\\a", sizeof(se.account));
	se.webapp = w.id;
	se.expires = 1;
	ok(store_session_put(st, "old", &se) == PS_OK, "an expired session");
	is_int(store_session_get(st, "old", &se), PS_ENOTFOUND,
	    "session get: expired");
	is_int(store_session_remove(st, "nothing"), PS_OK,
	    "session remove: absent is not an error");
	store_close(st);
	free(path);
}

/* Files that are not stores, or not this role's. */
static void
test_errors_open(void)
{
	char *junk = path_in("junk.db"), *nodir = path_in("no/such/dir.db");
	char *master = path_in("role-master.db");
	char *portal = path_in("role-portal.db");
	struct store *st = NULL;
	FILE *f;

	if ((f = fopen(junk, "w")) != NULL) {
		fputs("this is not a database, but it is long enough to have "
		    "a header of a hundred bytes: xxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
		    f);
		fclose(f);
	}
	is_int(store_open(junk, STORE_PORTAL, false, &st), PS_ESTORE,
	    "open: a file that is not a database");
	ok(st == NULL && strstr(ps_errmsg(), junk) != NULL,
	    "with an error naming the file");
	is_int(store_open(nodir, STORE_PORTAL, true, &st), PS_ESTORE,
	    "open with create: a directory that does not exist");
	ok(st == NULL && strstr(ps_errmsg(), nodir) != NULL,
	    "with an error naming the file");
	st = open_or_die(portal, STORE_PORTAL);
	store_close(st);
	st = NULL;
	ok(store_open(portal, STORE_MASTER, false, &st) != PS_OK && st == NULL,
	    "open: a portal's store as the master's is refused");
	is_int(schema_version(portal), PORTAL_SCHEMA, "and is left as it was");
	st = open_or_die(master, STORE_MASTER);
	store_close(st);
	st = NULL;
	ok(store_open(master, STORE_PORTAL, false, &st) != PS_OK && st == NULL,
	    "open: a master's store as the portal's is refused");
	is_int(schema_version(master), MASTER_SCHEMA, "and is left as it was");
	free(junk);
	free(nodir);
	free(master);
	free(portal);
}

/* ---- a full disk ---- */

#define BIG	(4 << 20)	/* larger than anything already written */

/* The largest of the store's files. */
static off_t
store_files_size(const char *path)
{
	static const char *const ext[] = { "", "-wal", "-shm" };
	struct stat sb;
	off_t max = 0;
	size_t i;
	char *p;

	for (i = 0; i < 3; i++) {
		p = xasprintf("%s%s", path, ext[i]);
		if (stat(p, &sb) == 0 && sb.st_size > max)
			max = sb.st_size;
		free(p);
	}
	return max;
}

/*
 * In a child, with stderr to `log`: no file may grow past its size now
 * (RLIMIT_FSIZE, SIGXFSZ ignored, so writes fail with EFBIG), then
 * `fail` runs and must fail; its outcome and message go to `out`. Then
 * the limit is lifted and `after` must succeed on the same connection.
 */
static bool
full_child(const char *path, enum store_role role, const char *log,
    const char *out, ps_err (*fail)(struct store *),
    ps_err (*after)(struct store *))
{
	struct rlimit rl;
	struct store *st;
	int status, fd;
	FILE *f;
	pid_t pid;
	ps_err rc;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		return false;
	if (pid == 0) {
		if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
		    dup2(fd, STDERR_FILENO) < 0 ||
		    (f = fopen(out, "w")) == NULL)
			_exit(2);
		if (store_open(path, role, false, &st) != PS_OK)
			_exit(3);
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &rl);
		rl.rlim_cur = (rlim_t)store_files_size(path) + 8192;
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(4);
		rc = fail(st);
		fprintf(f, "%s\n%s\n", ps_strerror(rc), ps_errmsg());
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(5);
		rc = after(st);
		fprintf(f, "%s\n", ps_strerror(rc));
		fclose(f);
		store_close(st);
		_exit(0);
	}
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0;
}

static char *
slurp(const char *path)
{
	char *s = xcalloc(1, 1 << 16);
	int fd = open(path, O_RDONLY);
	ssize_t n = 0;

	if (fd >= 0) {
		n = read(fd, s, (1 << 16) - 1);
		close(fd);
	}
	s[n > 0 ? n : 0] = '\0';
	return s;
}

static int
count(const char *s, const char *what)
{
	int n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

static ps_err
big_thumb_in_tx(struct store *st)
{
	unsigned char *big = xcalloc(1, BIG);
	const unsigned char *const data[4] = { big, big, big, big };
	const size_t len[4] = { BIG, BIG, BIG, BIG };
	ps_err rc, end;

	/* As the portal's sync stores a photo and its state. */
	if ((rc = store_begin(st)) != PS_OK)
		goto out;
	rc = store_thumb_put(st, 1, "contoso\\test1", "master", "etag2", data,
	    len);
	end = store_end(st, rc == PS_OK);
	if (rc == PS_OK)
		rc = end;
out:
	free(big);
	return rc;
}

static ps_err
after_full(struct store *st)
{
	return store_config_set(st, "after", "full");
}

static ps_err
big_photo(struct store *st)
{
	unsigned char *big = xcalloc(1, BIG);
	const struct store_photo_size sizes[] = {
		{ 0, 48, big, BIG }, { 1, 96, big, BIG },
	};
	ps_err rc = store_photo_put(st, "a@contoso.com", "e2", sizes, 2);

	free(big);
	return rc;
}

/* Checks what full_child wrote. */
static void
full_check(const char *role, const char *log, const char *out)
{
	char *l = slurp(log), *o = slurp(out), what[128];

	snprintf(what, sizeof(what), "%s: the failed change reports the "
	    "store failed", role);
	ok(strncmp(o, "store failure\n", 14) == 0, what);
	snprintf(what, sizeof(what), "%s: with the disk's error, not a "
	    "failed rollback", role);
	ok(strstr(o, "disk") != NULL && strstr(o, "rollback") == NULL &&
	    strstr(o, "no transaction") == NULL, what);
	if (strstr(o, "disk") == NULL)
		printf("#   got: %s", o);
	snprintf(what, sizeof(what), "%s: logged once, with that error",
	    role);
	ok(count(l, "ev=store.error") == 1 && strstr(l, "disk") &&
	    strstr(l, "no transaction") == NULL, what);
	snprintf(what, sizeof(what), "%s: the same connection works once "
	    "there is room", role);
	ok(strstr(o, "\nsuccess\n") != NULL, what);
	free(l);
	free(o);
}

static void
test_full_disk(void)
{
	char *portal = path_in("full-portal.db"), *master =
	    path_in("full-master.db");
	char *log = path_in("full.log"), *out = path_in("full.out");
	struct store_thumb t;
	struct store_photo p;
	struct store *st;
	struct rows r;
	int64_t head, last;
	char *v = NULL;

	st = open_or_die(portal, STORE_PORTAL);
	ok(p_webapp_add(st) == PS_OK && p_user_add(st) == PS_OK &&
	    thumb_put(st, 1, "contoso\\test1") == PS_OK, "portal: a photo");
	store_feed_head(st, &head);
	store_close(st);
	ok(full_child(portal, STORE_PORTAL, log, out, big_thumb_in_tx,
	    after_full), "portal: a child on a full disk");
	full_check("portal", log, out);
	st = open_or_die(portal, STORE_PORTAL);
	ok(store_thumb_get(st, 1, "contoso\\test1", STORE_L, &t) == PS_OK &&
	    strcmp(t.etag, "etag1") == 0 && t.len == sizeof(jpeg_l) &&
	    memcmp(t.data, jpeg_l, t.len) == 0,
	    "portal: the previous photo is intact");
	store_thumb_cleanup(&t);
	ok(store_config_get(st, "after", &v) == PS_OK && strcmp(v, "full") ==
	    0, "portal: the change made after is there");
	free(v);
	memset(&r, 0, sizeof(r));
	ok(store_feed_read(st, head, 100, collect, &r, &last) == PS_OK &&
	    r.n == 1 && strcmp(r.row[0], "config after") == 0,
	    "portal: the failed change wrote no feed row");
	ok(thumb_put(st, 1, "contoso\\test1") == PS_OK,
	    "portal: and the store takes changes again");
	store_close(st);

	st = open_or_die(master, STORE_MASTER);
	ok(store_mailbox_add(st, "a@contoso.com", NULL, NULL) == PS_OK &&
	    photo_put(st, "a@contoso.com", "e1") == PS_OK, "master: a photo");
	store_close(st);
	ok(full_child(master, STORE_MASTER, log, out, big_photo, after_full),
	    "master: a child on a full disk");
	full_check("master", log, out);
	st = open_or_die(master, STORE_MASTER);
	ok(store_photo_get(st, "a@contoso.com", 1, &p) == PS_OK &&
	    strcmp(p.etag, "e1") == 0 && p.len == sizeof(px2) &&
	    memcmp(p.data, px2, p.len) == 0,
	    "master: the previous photo is intact");
	store_photo_cleanup(&p);
	store_close(st);
	free(portal);
	free(master);
	free(log);
	free(out);
}

/* ---- listings: every row once, in the order store.h says ---- */

/* The names a listing gave, ", "-separated. */
struct names {
	char	 line[1024];
	int	 n;
};

static void
names_add(struct names *l, const char *name)
{
	size_t len = strlen(l->line);

	snprintf(l->line + len, sizeof(l->line) - len, "%s%s",
	    l->n++ ? ", " : "", name);
}

static ps_err
name_issuer(void *arg, const struct store_issuer *i)
{
	names_add(arg, i->name);
	return PS_OK;
}

static ps_err
name_partner(void *arg, const struct store_partner *p)
{
	names_add(arg, p->name);
	return PS_OK;
}

static ps_err
name_mailbox(void *arg, const struct store_mailbox *m)
{
	names_add(arg, m->email);
	return PS_OK;
}

static ps_err
name_user(void *arg, const struct store_user *u)
{
	names_add(arg, u->account);
	return PS_OK;
}

static ps_err
name_webapp(void *arg, const struct store_webapp *w)
{
	names_add(arg, w->url);
	return PS_OK;
}

static ps_err
name_sync(void *arg, const char *account, const struct store_sync *sy)
{
	char row[300];

	snprintf(row, sizeof(row), "%s=%lld", account,
	    (long long)sy->last_success);
	names_add(arg, row);
	return PS_OK;
}

/*
 * Names whose order differs between byte order without case and a
 * language's collation (which skips punctuation): "_x" sorts first.
 */
static const char *const list_names[] = { "Zeta", "alpha", "_x", "Beta" };
#define LIST_ORDER	"_x, alpha, Beta, Zeta"

static void
test_lists(void)
{
	char *portal = store_addr("lists-portal.db");
	char *master = store_addr("lists-master.db");
	struct store *st = open_or_die(portal, STORE_PORTAL);
	struct store_issuer is = { .metadata = "{}", .fetched = 1 };
	struct store_partner pa = { .metadata = "{}", .fetched = 1 };
	struct store_user u = { 0 };
	struct store_sync sy = { .has_mailbox = 1 };
	struct names l;
	size_t i;

	for (i = 0; i < 4; i++) {
		str_copy(is.name, list_names[i], sizeof(is.name));
		snprintf(is.issuer, sizeof(is.issuer), "issuer%zu", i);
		store_issuer_put(st, &is);
		snprintf(u.account, sizeof(u.account), "Contoso\\%s",
		    list_names[i]);
		snprintf(u.email, sizeof(u.email), "%s@contoso.com",
		    list_names[i]);
		store_user_add(st, &u);
	}
	memset(&l, 0, sizeof(l));
	ok(store_issuer_each(st, name_issuer, &l) == PS_OK && l.n == 4,
	    "issuers: every one");
	is_str(l.line, LIST_ORDER, "issuers: by name, case and punctuation "
	    "as SQLite's NOCASE");
	memset(&l, 0, sizeof(l));
	ok(store_user_page(st, "", 2, name_user, &l) == PS_OK,
	    "users: a first page");
	is_str(l.line, "contoso\\_x, contoso\\alpha", "of two, in order");
	memset(&l, 0, sizeof(l));
	ok(store_user_page(st, "contoso\\alpha", 10, name_user, &l) ==
	    PS_OK, "users: the page after");
	is_str(l.line, "contoso\\beta, contoso\\zeta", "the rest");
	ok(p_webapp_add(st) == PS_OK && p_webapp2_add(st) == PS_OK,
	    "two web applications");
	memset(&l, 0, sizeof(l));
	ok(store_webapp_each(st, name_webapp, &l) == PS_OK, "listed");
	is_str(l.line, "https://portal.contoso.com, "
	    "https://team.contoso.com:8443", "by id");
	sy.last_success = 7;
	ok(store_sync_put(st, 1, "CONTOSO\\Beta", &sy) == PS_OK &&
	    store_sync_put(st, 2, "contoso\\alpha", &sy) == PS_OK,
	    "sync states of two web applications");
	memset(&l, 0, sizeof(l));
	ok(store_sync_each(st, 1, name_sync, &l) == PS_OK, "listed");
	is_str(l.line, "contoso\\beta=7", "one web application's only");
	store_close(st);

	st = open_or_die(master, STORE_MASTER);
	for (i = 0; i < 4; i++) {
		char email[64];

		str_copy(pa.name, list_names[i], sizeof(pa.name));
		snprintf(pa.issuer, sizeof(pa.issuer), "issuer%zu", i);
		store_partner_put(st, &pa);
		snprintf(email, sizeof(email), "%s@contoso.com",
		    list_names[i]);
		store_mailbox_add(st, email, NULL, NULL);
	}
	memset(&l, 0, sizeof(l));
	ok(store_partner_each(st, name_partner, &l) == PS_OK, "partners");
	is_str(l.line, LIST_ORDER, "partners: by name as SQLite's NOCASE");
	memset(&l, 0, sizeof(l));
	ok(store_mailbox_each(st, name_mailbox, &l) == PS_OK, "mailboxes");
	is_str(l.line, "_x@contoso.com, alpha@contoso.com, beta@contoso.com, "
	    "zeta@contoso.com", "mailboxes: by address");
	store_close(st);
	free(portal);
	free(master);
}

/* The tests that run on both backends. */
/* ---- leases ---- */

/*
 * A batch of leases in one transaction: each ask says whether it was
 * taken, in the caller's order (the store takes them in its own).
 */
static void
test_lease_batch(struct store *a, struct store *b)
{
	struct store_lease_ask asks[3] = {
		{ "sync/1/c", 3000, 3030, true },
		{ "sync/1/held", 3000, 3030, true },
		{ "sync/1/b", 3000, 3030, false },
	};

	ok(store_lease_take(b, "sync/1/held", 22, 3000, 3030, &asks[1].taken)
	    == PS_OK && asks[1].taken, "batch: another holder has one");
	ok(store_begin(a) == PS_OK && store_lease_take_each(a, asks, 3, 11) ==
	    PS_OK && store_end(a, true) == PS_OK, "batch: taken in one "
	    "transaction");
	ok(asks[0].taken && !asks[1].taken && asks[2].taken,
	    "batch: the free ones taken, the held one not, in the order "
	    "given");
	ok(store_lease_take_each(a, asks, 0, 11) == PS_OK,
	    "batch: an empty batch is no error");
}

/*
 * Leases on both roles' stores: taken when free, expired or ours; not
 * while another holds it; renewed and released only by their holder;
 * two connections (two nodes) see one lease. Times are the test's own.
 */
static void
test_leases(void)
{
	static const enum store_role roles[2] = { STORE_MASTER, STORE_PORTAL };
	char *addr;
	struct store *a, *b;
	int64_t head = 0, last = -1;
	bool yes;
	int i;

	ok(store_lease_holder() != 0 && store_lease_holder() ==
	    store_lease_holder(), "a process has one holder id");
	for (i = 0; i < 2; i++) {
		addr = store_addr(i == 0 ? "lease-master.db" :
		    "lease-portal.db");
		a = open_or_die(addr, roles[i]);
		b = open_or_die(addr, roles[i]);
		store_feed_head(a, &head);
		yes = false;
		ok(store_lease_take(a, "sync/1/x", 11, 1000, 1030, &yes) ==
		    PS_OK && yes, "a free lease is taken");
		yes = true;
		ok(store_lease_take(b, "sync/1/x", 22, 1029, 1059, &yes) ==
		    PS_OK && !yes, "another holder does not get it before it "
		    "expires");
		yes = false;
		ok(store_lease_take(b, "sync/1/y", 22, 1029, 1059, &yes) ==
		    PS_OK && yes, "a lease of another name is free");
		yes = false;
		ok(store_lease_take(a, "sync/1/x", 11, 1029, 1060, &yes) ==
		    PS_OK && yes, "its holder takes it again (its expiry "
		    "moves)");
		yes = true;
		ok(store_lease_take(b, "sync/1/x", 22, 1059, 1089, &yes) ==
		    PS_OK && !yes, "so another still cannot at the first "
		    "expiry");
		yes = false;
		ok(store_lease_take(b, "sync/1/x", 22, 1060, 1090, &yes) ==
		    PS_OK && yes, "an expired lease is taken by another");
		yes = true;
		ok(store_lease_renew(a, "sync/1/x", 11, 2000, &yes) == PS_OK &&
		    !yes, "the old holder cannot renew it");
		ok(store_lease_release(a, "sync/1/x", 11) == PS_OK,
		    "nor release it (no error)");
		yes = true;
		ok(store_lease_take(a, "sync/1/x", 11, 1061, 1091, &yes) ==
		    PS_OK && !yes, "it is still the new holder's");
		yes = false;
		ok(store_lease_renew(b, "sync/1/x", 22, 1200, &yes) == PS_OK &&
		    yes, "its holder renews it");
		yes = true;
		ok(store_lease_take(a, "sync/1/x", 11, 1100, 1130, &yes) ==
		    PS_OK && !yes, "renewed, it holds past its first expiry");
		ok(store_lease_release(b, "sync/1/x", 22) == PS_OK,
		    "its holder releases it");
		yes = false;
		ok(store_lease_take(a, "sync/1/x", 11, 1101, 1131, &yes) ==
		    PS_OK && yes, "released, it is free at once");
		ok(store_lease_release(a, "sync/1/none", 11) == PS_OK,
		    "releasing a lease nobody holds is no error");
		ok(store_feed_head(b, &last) == PS_OK && last == head,
		    "leases write no feed rows");
		test_lease_batch(a, b);
		store_close(a);
		store_close(b);
		free(addr);
	}
}

/* ---- sign-in failure counts ---- */

/*
 * The counts nodes share, on both roles' stores through two connections
 * (two nodes): one key for all; failures added up over both, forgotten
 * after `forget_before`, cleared, pruned; changes write the feed, pruning
 * does not. Times are the test's own.
 */
static void
test_signin_counts(void)
{
	static const enum store_role roles[2] = { STORE_MASTER, STORE_PORTAL };
	unsigned char ka[STORE_SIGNIN_KEY_BYTES], kb[STORE_SIGNIN_KEY_BYTES];
	static const unsigned char zero[STORE_SIGNIN_KEY_BYTES];
	char *addr;
	struct store *a, *b;
	int64_t head = 0, after = 0, total = 0, n = -1, last = -1;
	int i;

	for (i = 0; i < 2; i++) {
		addr = store_addr(i == 0 ? "signin-master.db" :
		    "signin-portal.db");
		a = open_or_die(addr, roles[i]);
		b = open_or_die(addr, roles[i]);
		ok(store_signin_key(a, ka) == PS_OK &&
		    store_signin_key(b, kb) == PS_OK && memcmp(ka, kb,
		    sizeof(ka)) == 0 && memcmp(ka, zero, sizeof(ka)) != 0,
		    "one sign-in key, made on first use, for both nodes");
		store_feed_head(a, &head);
		ok(store_signin_add(a, "a:x", 3, 1000, 100, &total) == PS_OK &&
		    total == 3, "3 failures counted");
		ok(store_signin_add(b, "a:x", 2, 1001, 101, &total) == PS_OK &&
		    total == 5, "2 more from another node: 5 in all");
		ok(store_feed_head(a, &after) == PS_OK && after > head,
		    "a count changed writes the feed");
		ok(store_signin_get(a, "a:x", &n, &last) == PS_OK && n == 5 &&
		    last == 1001, "read back: 5, the last at 1001");
		is_int(store_signin_get(a, "p:y", &n, &last), PS_ENOTFOUND,
		    "none for another name");
		ok(store_signin_add(a, "a:x", 1, 2000, 1001, &total) ==
		    PS_OK && total == 1, "after the quiet, counting restarts");
		ok(store_signin_clear(b, "a:x", 2001) == PS_OK &&
		    store_signin_get(a, "a:x", &n, &last) == PS_OK && n == 0 &&
		    last == 2001,
		    "cleared: 0 failures");
		ok(store_signin_add(a, "a:x", 2, 2002, 1002, &total) ==
		    PS_OK && total == 2, "counted again from 0");
		ok(store_signin_add(a, "p:y", 4, 1500, 500, &total) == PS_OK &&
		    total == 4, "another count");
		store_feed_head(a, &head);
		ok(store_signin_prune(b, 1500) == PS_OK &&
		    store_signin_get(a, "p:y", &n, &last) == PS_ENOTFOUND &&
		    store_signin_get(a, "a:x", &n, &last) == PS_OK && n == 2,
		    "pruned: the old count goes, the new stays");
		ok(store_feed_head(a, &after) == PS_OK && after == head,
		    "pruning writes no feed rows");
		store_close(a);
		store_close(b);
		free(addr);
	}
}

/* Collects the ids of claimed notices. */
static ps_err
claimed_id(void *arg, const struct store_outbox *o)
{
	struct ids *ids = arg;

	ids->id[ids->n++] = o->id;
	return PS_OK;
}

static int
claim(struct store *st, int64_t holder, int64_t now, struct ids *ids)
{
	memset(ids, 0, sizeof(*ids));
	if (store_outbox_claim(st, holder, now, now + 30, 10, claimed_id,
	    ids) != PS_OK)
		return -1;
	return ids->n;
}

/*
 * Notices claimed by one node at a time (two connections, two holders):
 * what one claimed the other does not get until the claim expires; one
 * delivered, or put off, is not claimed again.
 */
static void
test_outbox_claim(void)
{
	char *addr = store_addr("claim-master.db"), name[32];
	struct store *a = open_or_die(addr, STORE_MASTER);
	struct store *b = open_or_die(addr, STORE_MASTER);
	int64_t now = time_now() + 1, first, second;
	struct ids ids;

	ok(m_partner_put(a) == PS_OK && m_mailbox_add(a) == PS_OK &&
	    m_mailbox2_add(a) == PS_OK && photo_put(a, "test1@contoso.com",
	    "e1") == PS_OK && photo_put(a, "test2@contoso.com", "e2") ==
	    PS_OK, "two photo changes queue two notices");
	is_int(claim(a, 11, now, &ids), 2, "a node claims both");
	first = ids.id[0];
	second = ids.id[1];
	is_int(claim(b, 22, now, &ids), 0, "another node claims none of them");
	is_int(claim(a, 11, now + 1, &ids), 2, "the first claims them again");
	store_outbox_lease_name(first, name, sizeof(name));
	ok(store_outbox_done(a, first) == PS_OK && store_lease_release(a,
	    name, 11) == PS_OK, "it delivers one and gives its claim back");
	is_int(claim(b, 22, now + 29, &ids), 0, "the other's claim still "
	    "holds: nothing for the second node");
	ok(claim(b, 22, now + 31, &ids) == 1 && ids.id[0] == second,
	    "once it expires, the second node claims the notice left (a node "
	    "that died mid-delivery)");
	store_outbox_lease_name(second, name, sizeof(name));
	ok(store_outbox_retry(b, second, now + 3600, "HTTP 503") == PS_OK &&
	    store_lease_release(b, name, 22) == PS_OK, "it puts it off");
	is_int(claim(a, 11, now + 32, &ids), 0, "a notice put off is not due");
	is_int(claim(a, 11, now + 3600, &ids), 1, "until its next attempt");
	store_close(a);
	store_close(b);
	free(addr);
}

/* Collects the ids (and the last row) of claimed directory writes. */
struct dir_claimed {
	struct ids			ids;
	struct store_directory_outbox	last;
};

static ps_err
claimed_dir_id(void *arg, const struct store_directory_outbox *o)
{
	struct dir_claimed *c = arg;

	c->ids.id[c->ids.n++] = o->id;
	c->last = *o;
	return PS_OK;
}

static int
dir_claim(struct store *st, int64_t holder, int64_t now,
    struct dir_claimed *c)
{
	memset(c, 0, sizeof(*c));
	if (store_directory_outbox_claim(st, holder, now, now + 30, 10,
	    claimed_dir_id, c) != PS_OK)
		return -1;
	return c->ids.n;
}

/*
 * The directory outbox: queued by a photo change of a mailbox from the
 * directory while directory.photos is on, one row per mailbox (the
 * newest change replaces the row), claimed with the address's lease by
 * one node at a time, put off, removed with its mailbox.
 */
static void
test_directory_outbox(void)
{
	char *addr = store_addr("dirout-master.db"), name[300];
	struct store *a = open_or_die(addr, STORE_MASTER);
	struct store *b = open_or_die(addr, STORE_MASTER);
	struct store_mailbox m = { .email = "dir1@contoso.com",
	    .name = "Dir One", .directory_id = "abc-1" };
	int64_t now = time_now() + 1, first, head, after;
	struct dir_claimed c;

	ok(store_begin(a) == PS_OK && store_mailbox_directory_put(a, &m,
	    NULL) == PS_OK && store_end(a, true) == PS_OK &&
	    m_mailbox_add(a) == PS_OK, "a mailbox from the directory, one by "
	    "hand");
	ok(photo_put(a, "dir1@contoso.com", "e1") == PS_OK &&
	    store_directory_outbox_pending(a) == 0, "photos to the directory "
	    "off: a change queues nothing");
	ok(store_config_set(a, "directory.photos", "on") == PS_OK &&
	    photo_put(a, "test1@contoso.com", "e1") == PS_OK &&
	    store_directory_outbox_pending(a) == 0, "on: a mailbox made by "
	    "hand has no entry, nothing queued");
	store_feed_head(a, &head);
	ok(photo_put(a, "DIR1@contoso.com", "e2") == PS_OK &&
	    store_directory_outbox_pending(a) == 1, "on: a change of the "
	    "directory's mailbox queues its write");
	ok(store_feed_head(a, &after) == PS_OK && after > head,
	    "in the change feed");
	ok(photo_put(a, "dir1@contoso.com", "e3") == PS_OK &&
	    store_directory_outbox_pending(a) == 1, "a second change: still "
	    "one write");
	ok(dir_claim(a, 11, now, &c) == 1 && strcmp(c.last.email,
	    "dir1@contoso.com") == 0 && strcmp(c.last.directory_id, "abc-1")
	    == 0 && !c.last.disabled && c.last.attempts == 0,
	    "a node claims it, with the mailbox's entry id");
	first = c.ids.id[0];
	is_int(dir_claim(b, 22, now, &c), 0, "another node does not");
	ok(store_photo_remove(a, "dir1@contoso.com") == PS_OK &&
	    store_directory_outbox_pending(a) == 1, "a removal while it is "
	    "being written: queued again, one row");
	is_int(dir_claim(b, 22, now, &c), 0, "the newer write waits for the "
	    "address's claim");
	store_directory_outbox_lease_name("dir1@contoso.com", name,
	    sizeof(name));
	ok(store_directory_outbox_done(a, first) == PS_OK &&
	    store_lease_release(a, name, 11) == PS_OK &&
	    store_directory_outbox_pending(a) == 1, "the first delivery done "
	    "leaves the newer write queued");
	ok(dir_claim(b, 22, now, &c) == 1 && c.ids.id[0] != first,
	    "which the other node then claims");
	ok(store_directory_outbox_retry(b, c.ids.id[0], now + 600,
	    "the directory is down") == PS_OK && store_lease_release(b, name,
	    22) == PS_OK, "it puts it off");
	is_int(dir_claim(a, 11, now + 1, &c), 0, "not due before its next "
	    "attempt");
	ok(dir_claim(a, 11, now + 600, &c) == 1 && c.last.attempts == 1 &&
	    strcmp(c.last.last_error, "the directory is down") == 0,
	    "due then, with its attempts and last error");
	str_copy(m.email, "dir.one@contoso.com", sizeof(m.email));
	ok(store_begin(a) == PS_OK && store_mailbox_directory_put(a, &m,
	    "dir1@contoso.com") == PS_OK && store_end(a, true) == PS_OK &&
	    dir_claim(a, 11, now + 700, &c) == 1 &&
	    strcmp(c.last.email, "dir.one@contoso.com") == 0,
	    "a new address takes the queued write with it");
	store_directory_outbox_lease_name("dir.one@contoso.com", name,
	    sizeof(name));
	(void)store_lease_release(a, name, 11);
	ok(store_mailbox_remove(a, "dir.one@contoso.com") == PS_OK &&
	    store_directory_outbox_pending(a) == 0, "a removed mailbox takes "
	    "its write with it");
	store_close(a);
	store_close(b);
	free(addr);
}

static ps_err
hide_outbox_done(void *arg, const struct store_outbox *o)
{
	return store_outbox_done(arg, o->id);
}

/* Hiding a photo: the mailbox's mark, a new tag, notices, the directory. */
static void
test_photo_hide(void)
{
	char *addr = store_addr("hide-master.db");
	struct store *st = open_or_die(addr, STORE_MASTER);
	struct store_mailbox mb, m = { .email = "dir1@contoso.com",
	    .name = "Dir One", .directory_id = "abc-1" };
	struct store_photo p;
	struct dir_claimed c;
	char name[300];
	bool changed = true;

	ok(store_begin(st) == PS_OK && store_mailbox_directory_put(st, &m,
	    NULL) == PS_OK && store_end(st, true) == PS_OK &&
	    m_partner_put(st) == PS_OK && store_config_set(st,
	    "directory.photos", "on") == PS_OK && photo_put(st,
	    "dir1@contoso.com", "e1") == PS_OK, "hide: a directory mailbox "
	    "with a photo, a partner");
	ok(store_mailbox_get(st, "dir1@contoso.com", &mb) == PS_OK &&
	    !mb.photo_hidden, "hide: shown at first");
	store_mailbox_cleanup(&mb);
	ok(store_outbox_due(st, INT64_MAX / 2, 10, hide_outbox_done, st) ==
	    PS_OK && store_outbox_pending(st) == 0 && dir_claim(st, 33,
	    time_now() + 1, &c) == 1 && store_directory_outbox_done(st,
	    c.ids.id[0]) == PS_OK && store_directory_outbox_pending(st) == 0,
	    "hide: the queues emptied");
	store_directory_outbox_lease_name("dir1@contoso.com", name,
	    sizeof(name));
	(void)store_lease_release(st, name, 33);
	ok(store_photo_hide(st, "DIR1@contoso.com", true, "e2", &changed) ==
	    PS_OK && changed, "hide: hidden");
	ok(store_mailbox_get(st, "dir1@contoso.com", &mb) == PS_OK &&
	    mb.photo_hidden && strcmp(mb.etag, "e2") == 0, "hide: the mark "
	    "read with the mailbox, and the photo has the new tag");
	store_mailbox_cleanup(&mb);
	ok(store_photo_get(st, "dir1@contoso.com", 1, &p) == PS_OK &&
	    p.hidden && strcmp(p.etag, "e2") == 0, "hide: and with the photo");
	store_photo_cleanup(&p);
	is_int((int)store_outbox_pending(st), 1, "hide: a notice queued");
	is_int((int)store_directory_outbox_pending(st), 1, "hide: and the "
	    "directory's write");
	ok(store_photo_hide(st, "dir1@contoso.com", true, "e3", &changed) ==
	    PS_OK && !changed, "hide: again, nothing changes");
	ok(photo_put(st, "dir1@contoso.com", "e4") == PS_OK &&
	    store_photo_get(st, "dir1@contoso.com", 1, &p) == PS_OK &&
	    p.hidden, "hide: a new photo stays hidden");
	store_photo_cleanup(&p);
	ok(store_photo_hide(st, "dir1@contoso.com", false, "e5", &changed) ==
	    PS_OK && changed && store_photo_get(st, "dir1@contoso.com", 1,
	    &p) == PS_OK && !p.hidden && strcmp(p.etag, "e5") == 0,
	    "hide: shown again, with a new tag");
	store_photo_cleanup(&p);
	is_int(store_photo_hide(st, "nobody@contoso.com", true, "e6",
	    &changed), PS_ENOTFOUND, "hide: no such mailbox");
	ok(!changed, "hide: nothing changed");
	store_close(st);
	free(addr);
}

static void
test_shared(const char *backend)
{
	printf("# the store's functions on %s\n", backend);
	test_feed_cases();
	test_feed_origin();
	test_feed_prune();
	test_nested();
	test_errors();
	test_errors_master();
	test_errors_portal();
	test_lists();
	test_leases();
	test_signin_counts();
	test_outbox_claim();
	test_directory_outbox();
	test_photo_hide();
}

/* ---- PostgreSQL's own cases ---- */

/* The addresses init takes and refuses. */
static void
test_pg_uri(void)
{
	is_int(store_uri_check("postgresql://app@db.contoso.com/photos"),
	    PS_OK, "an address without a password is taken");
	is_int(store_uri_check("postgres://db.contoso.com:5433/photos?"
	    "sslmode=require"), PS_OK, "postgres:// too");
	is_int(store_uri_check("postgresql://app:secret@db.contoso.com/"
	    "photos"), PS_EINVAL, "a password in the address is refused");
	ok(strstr(ps_errmsg(), "--store-password-file") != NULL,
	    "saying where it goes");
	is_int(store_uri_check("postgresql://app@db/photos?password=secret"),
	    PS_EINVAL, "also as a parameter");
	is_int(store_uri_check("mysql://db/photos"), PS_EINVAL,
	    "another scheme is refused");
	ok(store_is_uri("postgresql://x/y") && !store_is_uri("/var/x.db"),
	    "a URI is told from a file");
}

/* The other role's store, a newer schema, an unreachable server. */
static void
test_pg_refusals(void)
{
	char *master = store_addr("pg-role"), *bad;
	struct store *st = NULL;
	int64_t head = -1;

	store_close(open_or_die(master, STORE_MASTER));
	is_int(pg_int(master, "SELECT version FROM photosync_store"),
	    MASTER_SCHEMA,
	    "a new database gets every migration");
	is_int(store_open(master, STORE_PORTAL, true, &st), PS_ESTORE,
	    "a master's store is no portal's");
	ok(st == NULL && strstr(ps_errmsg(), "is not a portal's store"),
	    "and says so");
	ok(pg_run(master, "UPDATE photosync_store SET version = 99"),
	    "the schema is made newer");
	is_int(store_open(master, STORE_MASTER, true, &st), PS_ESTORE,
	    "a newer schema is refused");
	ok(st == NULL && strstr(ps_errmsg(), "newer than this photosync"),
	    "and says so");
	is_int(pg_int(master, "SELECT version FROM photosync_store"), 99,
	    "and left as it was");
	ok(pg_run(master, "UPDATE photosync_store SET version = "
	    MASTER_SCHEMA_TEXT),
	    "(put back)");
	st = open_or_die(master, STORE_MASTER);
	ok(store_feed_head(st, &head) == PS_OK && head == 0,
	    "reopened at the same version: nothing migrated twice");
	store_close(st);
	bad = xasprintf("postgresql://nobody@/photos?host=%s/no-such-dir",
	    dir);
	is_int(store_open(bad, STORE_MASTER, true, &st), PS_ESTORE,
	    "an unreachable server is PS_ESTORE");
	ok(st == NULL && strstr(ps_errmsg(), "cannot connect to the store"),
	    "saying so");
	free(bad);
	free(master);
}

/* init's files: the address and the password, found from the directory. */
static void
test_pg_address(void)
{
	char *uri = store_addr("pg-address"), *sub = path_in("state");
	char *addr = NULL, *pass = NULL, *feed = NULL, *text = NULL;
	char *located = NULL;
	struct store *st = NULL;
	struct stat sb;
	char *v = NULL;

	mkdir(sub, 0700);
	located = store_locate(sub, "portal.db");
	ok(strstr(located, "/portal.db") != NULL,
	    "without an address file the store is the SQLite file");
	free(located);
	ok(store_open_pg(uri, "pa:ss\\word", STORE_PORTAL, &st) == PS_OK,
	    "init opens the store with its password");
	store_close(st);
	st = NULL;
	is_int(store_remember(sub, uri, "pa:ss\\word"), PS_OK,
	    "the address and the password are kept");
	addr = xasprintf("%s/%s", sub, STORE_ADDRESS_FILE);
	pass = xasprintf("%s/%s", sub, STORE_PASSWORD_FILE);
	ok(stat(pass, &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
	    (text = slurp_file(pass)) != NULL &&
	    strcmp(text, "*:*:*:*:pa\\:ss\\\\word\n") == 0,
	    "the password in libpq's passfile format, mode 0600");
	free(text);
	text = NULL;	/* the next check may fail before it sets text */
	ok(stat(addr, &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
	    (text = slurp_file(addr)) != NULL && strncmp(text, uri,
	    strlen(uri)) == 0, "the address, mode 0600");
	free(text);
	is_int(store_remember(sub, uri, NULL), PS_EIO,
	    "never written over");
	located = store_locate(sub, "portal.db");
	is_str(located, addr, "the directory now names the address file");
	ok(store_open(located, STORE_PORTAL, false, &st) == PS_OK &&
	    store_config_set(st, "k", "v") == PS_OK,
	    "a later command opens the store from the directory alone");
	store_close(st);
	st = open_or_die(uri, STORE_PORTAL);
	ok(store_config_get(st, "k", &v) == PS_OK && strcmp(v, "v") == 0,
	    "in the same database");
	free(v);
	store_close(st);
	feed = xasprintf("%s-feed", addr);
	ok(access(feed, F_OK) == 0, "with the feed's counter beside it");
	store_forget(sub);
	ok(access(addr, F_OK) != 0 && access(pass, F_OK) != 0 &&
	    access(feed, F_OK) != 0, "forgotten: the files are gone");
	rmdir(sub);
	free(located);
	free(feed);
	free(addr);
	free(pass);
	free(sub);
	free(uri);
}

/* A lost connection is opened again at the next call. */
static void
test_pg_reconnect(void)
{
	char *uri = store_addr("pg-reconnect"), *sql, *db;
	struct store *st = open_or_die(uri, STORE_PORTAL);
	char *v = NULL;
	ps_err rc;

	db = strrchr(pg_dbs[npg_dbs - 1], '_') ? pg_dbs[npg_dbs - 1] : NULL;
	sql = xasprintf("SELECT count(pg_terminate_backend(pid)) FROM "
	    "pg_stat_activity WHERE datname = '%s' AND pid <> "
	    "pg_backend_pid()", db);
	is_int(pg_int(pg_uri, sql), 1, "the store's connection is killed");
	rc = store_config_set(st, "after", "kill");
	ok(rc == PS_OK || rc == PS_ESTORE,
	    "the next call may fail with PS_ESTORE");
	if (rc != PS_OK)
		rc = store_config_set(st, "after", "kill");
	is_int(rc, PS_OK, "then the connection is opened again");
	ok(store_config_get(st, "after", &v) == PS_OK && strcmp(v, "kill") ==
	    0, "and works");
	free(v);
	store_close(st);
	free(sql);
	free(uri);
}

/* A commit by another process is heard on the LISTEN connection. */
static void
test_pg_listen(void)
{
	char *uri = store_addr("pg-listen"), *file = path_in("portal.db");
	struct store_listen *l;
	struct pollfd pfd;
	bool notified = false;
	int i;

	store_close(open_or_die(uri, STORE_PORTAL));
	ok(store_listen_open(file) == NULL,
	    "a SQLite store has nothing to listen to");
	free(file);
	l = store_listen_open(uri);
	ok(l != NULL, "listening to the feed");
	if (l == NULL) {
		free(uri);
		return;
	}
	child_key = "heard";
	ok(in_child(uri, STORE_PORTAL, child_config, PS_OK),
	    "another process commits a change");
	pfd.fd = store_listen_fd(l);
	pfd.events = POLLIN;
	/* Waits for the notification itself (bounded only against a hang). */
	for (i = 0; i < 600 && !notified; i++)
		if (poll(&pfd, 1, 100) > 0 &&
		    store_listen_drain(l, &notified) != PS_OK)
			break;
	ok(notified, "its notification arrives");
	store_listen_close(l);
	free(uri);
}

static ps_err
child_write_b(struct store *st)
{
	return store_config_set(st, "b", "child");
}

/*
 * Sequence numbers in commit order: a transaction that writes the feed
 * holds the feed's lock to its commit, so another writer waits, and
 * takes its number after.
 */
static void
test_pg_commit_order(void)
{
	char *uri = store_addr("pg-order"), *waiting;
	struct store *st = open_or_die(uri, STORE_PORTAL);
	int64_t head = 0, last = 0, a_seq = 0;
	struct rows r;
	int status, i;
	long waiters = 0;
	pid_t pid;

	store_feed_head(st, &head);
	ok(store_begin(st) == PS_OK && store_config_set(st, "a", "parent") ==
	    PS_OK, "a transaction writes a row and stays open");
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct store *cst = NULL;

		_exit(store_open(uri, STORE_PORTAL, false, &cst) == PS_OK &&
		    child_write_b(cst) == PS_OK ? 0 : 1);
	}
	waiting = xasprintf("SELECT count(*) FROM pg_locks WHERE locktype = "
	    "'advisory' AND NOT granted AND database = (SELECT oid FROM "
	    "pg_database WHERE datname = '%s')", pg_dbs[npg_dbs - 1]);
	/* Waits for the child to be waiting (bounded only against a hang). */
	for (i = 0; i < 600 && waiters < 1; i++) {
		waiters = pg_int(uri, waiting);
		if (waiters < 1)
			poll(NULL, 0, 100);
	}
	is_int(waiters, 1, "another process's change waits for the lock");
	ok(store_end(st, true) == PS_OK, "the first commits");
	ok(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "then the other goes on");
	a_seq = pg_int(uri, "SELECT seq FROM feed WHERE key = 'a'");
	memset(&r, 0, sizeof(r));
	ok(store_feed_read(st, head, 100, collect, &r, &last) == PS_OK &&
	    r.n == 1 && strcmp(r.row[0], "config b") == 0 && r.seq[0] > a_seq,
	    "the later commit has the higher number");
	store_close(st);
	free(waiting);
	free(uri);
}

/*
 * In a child process: a transaction taking the leases "sync/1/<first>"
 * and "sync/1/<second>" for `holder`, in that order as given. Exits 10
 * plus the number taken, 1 on an error (a deadlock, said on stdout).
 */
static pid_t
child_lease_batch(const char *uri, const char *first, const char *second,
    int64_t holder)
{
	char n1[32], n2[32];
	struct store_lease_ask asks[2] = {
		{ n1, 1000, 1030, false },
		{ n2, 1000, 1030, false },
	};
	struct store *cst = NULL;
	ps_err rc;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) != 0)
		return pid;
	snprintf(n1, sizeof(n1), "sync/1/%s", first);
	snprintf(n2, sizeof(n2), "sync/1/%s", second);
	if ((rc = store_open(uri, STORE_PORTAL, false, &cst)) == PS_OK &&
	    (rc = store_begin(cst)) == PS_OK) {
		rc = store_lease_take_each(cst, asks, 2, holder);
		if (store_end(cst, rc == PS_OK) != PS_OK && rc == PS_OK)
			rc = PS_ESTORE;
	}
	if (rc != PS_OK)
		printf("# holder %lld: %s\n", (long long)holder, ps_errmsg());
	fflush(stdout);
	_exit(rc == PS_OK ? 10 + asks[0].taken + asks[1].taken : 1);
}

/* Waits until `n` sessions of the test's last database wait for a lock. */
static long
wait_lock_waiters(const char *uri, long n)
{
	char *sql = xasprintf("SELECT count(*) FROM pg_stat_activity WHERE "
	    "datname = '%s' AND wait_event_type = 'Lock'",
	    pg_dbs[npg_dbs - 1]);
	long waiters = 0;
	int i;

	/* (bounded only against a hang) */
	for (i = 0; i < 600 && waiters < n; i++) {
		waiters = pg_int(uri, sql);
		if (waiters < n)
			poll(NULL, 0, 50);
	}
	free(sql);
	return waiters;
}

/*
 * Two nodes' lease batches that share users, given in opposite orders,
 * both complete: one takes the leases, the other finds them held. A
 * third session holds the first name's row, so that the first batch
 * waits on it, and the second batch starts while it waits: taken in the
 * order given, the second would take "b" and then wait for "a", and the
 * first, given "a", would wait for "b": a deadlock, one refused.
 */
static void
test_pg_lease_order(void)
{
	char *uri = store_addr("pg-lease-order");
	struct store *st = open_or_die(uri, STORE_PORTAL);
	PGconn *gate = PQconnectdb(uri);
	PGresult *r;
	int status_a = -1, status_b = -1;
	bool yes = false;
	pid_t a, b;

	ok(store_lease_take(st, "sync/1/a", 99, 0, 100, &yes) == PS_OK &&
	    yes && store_lease_take(st, "sync/1/b", 99, 0, 100, &yes) ==
	    PS_OK && yes, "two leases, expired by the time of the batches");
	r = PQexec(gate, "BEGIN; SELECT name FROM leases WHERE name = "
	    "'sync/1/a' FOR UPDATE");
	ok(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1,
	    "a third session holds the row of \"sync/1/a\"");
	PQclear(r);
	a = child_lease_batch(uri, "a", "b", 11);
	is_int(wait_lock_waiters(uri, 1), 1, "the first batch waits for it");
	b = child_lease_batch(uri, "b", "a", 22);
	is_int(wait_lock_waiters(uri, 2), 2, "the second batch, given the "
	    "other order, waits too");
	r = PQexec(gate, "COMMIT");
	PQclear(r);
	ok(waitpid(a, &status_a, 0) == a && waitpid(b, &status_b, 0) == b,
	    "both batches ended");
	ok(WIFEXITED(status_a) && WIFEXITED(status_b) &&
	    WEXITSTATUS(status_a) + WEXITSTATUS(status_b) == 22 &&
	    (WEXITSTATUS(status_a) == 12 || WEXITSTATUS(status_b) == 12),
	    "one took both leases, the other found both held, neither "
	    "refused (no deadlock)");
	PQfinish(gate);
	store_close(st);
	free(uri);
}

static void
test_pg(void)
{
	printf("# PostgreSQL's own cases\n");
	test_pg_uri();
	test_pg_refusals();
	test_pg_address();
	test_pg_reconnect();
	test_pg_listen();
	test_pg_commit_order();
	test_pg_lease_order();
}

int
main(void)
{
	char *sql;

	if ((dir = t_tmpdir("photosync-store")) == NULL)
		return 1;
	test_migrations();
	test_migrate_master_1();
	test_migrate_portal_1();
	test_feed_watch();
	test_checkpoint();
	test_errors_open();
	test_full_disk();
	test_shared("SQLite");
	pg_uri = getenv("PHOTOSYNC_TEST_PG_URI");
	if (pg_uri && *pg_uri) {
		on_pg = true;
		test_shared("PostgreSQL");
		test_pg();
		pg_drop_all();
		sql = xasprintf("SELECT count(*) FROM pg_database WHERE "
		    "datname LIKE 'photosync\\_test\\_%ld\\_%%'",
		    (long)getpid());
		is_int(pg_int(pg_uri, sql), 0,
		    "PostgreSQL: the test databases are gone");
		free(sql);
	} else {
		printf("# PHOTOSYNC_TEST_PG_URI is not set: the store is "
		    "tested on SQLite only\n");
	}
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	ok(access(dir, F_OK) != 0, "the temporary directory is gone");
	free(dir);
	return done();
}
