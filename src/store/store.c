/*
 * The store's functions (store.h), written once over the driver layer
 * (driver.h): the SQL here runs on SQLite (store_sqlite.c) and on
 * PostgreSQL (store_pg.c) alike. What is not SQL is here too: opening a
 * store by its address, the migrations' bookkeeping (the role's mark and
 * the schema version), the feed's origin and its shared counter.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "driver.h"
#include "store.h"

/* The counter is shared between processes: only a lock-free atomic works. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be "
    "lock-free");

/* The mapped "-feed" file: its first 8 bytes are the counter. */
struct store_feed_watch {
	_Atomic uint64_t	*counter;
	size_t			 len;
};

/* Records and logs the connection's last error, once, where it is met. */
static ps_err
store_fail(struct store *st, const char *what)
{
	ps_err rc = st->drv->fail(st, what);

	assert(rc == PS_ESTORE);	/* never a success (driver.h) */
	return rc;
}

/* ---- transactions ---- */

ps_err
store_begin(struct store *st)
{
	return st->drv->begin(st);
}

/*
 * After some errors the backend has rolled the transaction back itself
 * (SQLite: a full disk, an I/O error; PostgreSQL: any error), and a
 * commit can only fail: the reason recorded stays the error that did it.
 */
ps_err
store_end(struct store *st, bool commit)
{
	if (!commit) {
		st->drv->rollback(st);
		return PS_OK;
	}
	if (!st->drv->in_tx(st)) {
		ps_err rc = ps_errf(PS_ESTORE, "nothing to commit: the "
		    "transaction was rolled back (last error: %s) (%s)",
		    st->drv->errmsg(st), st->where);

		st->drv->rollback(st);
		return rc;
	}
	return st->drv->commit(st);
}

/* Ends a transaction as `rc` says: commits on PS_OK, else rolls back. */
static ps_err
tx_finish(struct store *st, ps_err rc)
{
	ps_err end = store_end(st, rc == PS_OK);

	return rc == PS_OK ? end : rc;
}

/* ---- migrations ---- */

/*
 * Refuses another role's store; marks an unmarked one. Both roles'
 * schemas have the same number of versions, so the version cannot tell
 * them apart. A store made before the mark has none: its role is told by
 * a table only that role's first schema has, and the mark is added. In a
 * transaction.
 */
static ps_err
store_check_role(struct store *st, int mark, int version)
{
	int want = st->role == STORE_MASTER ? STORE_MARK_MASTER :
	    STORE_MARK_PORTAL;
	bool other = false;
	ps_err rc;

	if (mark == STORE_MARK_NONE && version > 0) {
		/* The other role's first table. */
		if ((rc = st->drv->has_table(st, st->role == STORE_MASTER ?
		    "webapps" : "mailboxes", &other)) != PS_OK)
			return rc;
		mark = !other ? want : st->role == STORE_MASTER ?
		    STORE_MARK_PORTAL : STORE_MARK_MASTER;
	}
	if (mark != STORE_MARK_NONE && mark != want)
		return ps_errf(PS_ESTORE, "%s is not a %s's store (it is %s)",
		    st->where, st->role == STORE_MASTER ? "master" : "portal",
		    mark == STORE_MARK_MASTER ? "a master's" :
		    mark == STORE_MARK_PORTAL ? "a portal's" :
		    "another application's");
	return PS_OK;
}

static ps_err
store_migrate(struct store *st)
{
	const char *const *steps = st->drv->migrations[st->role];
	size_t nsteps = st->drv->nmigrations[st->role], i;
	int want = st->role == STORE_MASTER ? STORE_MARK_MASTER :
	    STORE_MARK_PORTAL;
	int mark = 0, version = 0;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	if ((rc = st->drv->mark_get(st, &mark, &version)) != PS_OK)
		goto out;
	if ((rc = store_check_role(st, mark, version)) != PS_OK)
		goto out;
	if (version < 0 || (size_t)version > nsteps) {
		rc = ps_errf(PS_ESTORE, "%s has schema version %d, newer than "
		    "this photosync knows (%zu)", st->where, version, nsteps);
		goto out;
	}
	if (mark == STORE_MARK_NONE &&
	    (rc = st->drv->mark_set(st, want, version)) != PS_OK)
		goto out;
	for (i = (size_t)version; i < nsteps; i++) {
		if ((rc = st->drv->exec(st, steps[i])) != PS_OK ||
		    (rc = st->drv->mark_set(st, want, (int)i + 1)) != PS_OK)
			goto out;
		log_info(NULL, "store.migrated", "path=%s version=%zu",
		    log_q(st->where), i + 1);
	}
	rc = PS_OK;
out:
	return tx_finish(st, rc);
}

/* ---- the change feed: origin, the shared counter ---- */

/* This process's origin; 0 until drawn, and again in a forked child. */
static _Atomic int64_t feed_origin;
static pthread_once_t feed_fork_once = PTHREAD_ONCE_INIT;

static void
feed_forked(void)
{
	atomic_store(&feed_origin, 0);
}

static void
feed_watch_forks(void)
{
	(void)pthread_atfork(NULL, NULL, feed_forked);
}

int64_t
store_feed_origin(void)
{
	int64_t origin = atomic_load(&feed_origin), none = 0;

	if (origin != 0)
		return origin;
	pthread_once(&feed_fork_once, feed_watch_forks);
	do {
		rand_bytes(&origin, sizeof(origin));
		origin &= INT64_MAX;
	} while (origin == 0);
	if (!atomic_compare_exchange_strong(&feed_origin, &none, origin))
		return none;	/* another thread drew first */
	return origin;
}

struct store_feed_watch *
store_feed_map(const char *store_path, bool writable, bool create)
{
	struct store_feed_watch *w = NULL;
	char *path = xasprintf("%s-feed", store_path);
	long page = sysconf(_SC_PAGESIZE);
	struct stat sb;
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT :
	    0), 0600);
	if (fd < 0) {
		ps_errf(PS_EIO, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0 || (sb.st_size < page &&
	    ftruncate(fd, page) != 0)) {
		ps_errf(PS_EIO, "cannot size %s: %s", path, strerror(errno));
		goto out;
	}
	p = mmap(NULL, (size_t)page, PROT_READ | (writable ? PROT_WRITE : 0),
	    MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ps_errf(PS_EIO, "cannot map %s: %s", path, strerror(errno));
		goto out;
	}
	w = xcalloc(1, sizeof(*w));
	w->counter = p;
	w->len = (size_t)page;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return w;
}

void
store_feed_bump(struct store *st)
{
	if (st->bump)
		atomic_fetch_add_explicit(st->bump->counter, 1,
		    memory_order_release);
}

struct store_feed_watch *
store_feed_watch_open(const char *store_path)
{
	return store_feed_map(store_path, false, true);
}

void
store_feed_watch_close(struct store_feed_watch *w)
{
	if (w == NULL)
		return;
	munmap((void *)w->counter, w->len);
	free(w);
}

uint64_t
store_feed_watch_value(const struct store_feed_watch *w)
{
	return atomic_load_explicit(w->counter, memory_order_acquire);
}

/* ---- opening ---- */

bool
store_is_uri(const char *address)
{
	return strncmp(address, "postgresql://", 13) == 0 ||
	    strncmp(address, "postgres://", 11) == 0;
}

/* The file name's last component. */
static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

ps_err
store_address_read(const char *address, char **uri, char **passfile)
{
	char line[4096], *dir, *slash;
	FILE *f;
	ps_err rc = PS_OK;

	*uri = *passfile = NULL;
	if (store_is_uri(address)) {
		*uri = xstrdup(address);
		return PS_OK;
	}
	if ((f = fopen(address, "r")) == NULL)
		return errno == ENOENT ? ps_errf(PS_ENOTFOUND, "no store at "
		    "%s (run init first)", address) : ps_errf(PS_ESTORE,
		    "cannot read %s: %s", address, strerror(errno));
	if (fgets(line, sizeof(line), f) == NULL) {
		rc = ps_errf(PS_ESTORE, "%s is empty", address);
		goto out;
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (!store_is_uri(line)) {
		rc = ps_errf(PS_ESTORE, "%s does not hold a postgresql:// "
		    "address", address);
		goto out;
	}
	*uri = xstrdup(line);
	dir = xstrdup(address);
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[1] = '\0';
	else
		dir[0] = '\0';
	*passfile = xasprintf("%s%s", dir, STORE_PASSWORD_FILE);
	free(dir);
	if (access(*passfile, F_OK) != 0) {
		free(*passfile);
		*passfile = NULL;
	}
out:
	fclose(f);
	return rc;
}

ps_err
store_password_read(const char *path, char **password)
{
	char *data = NULL;
	size_t len = 0;
	ps_err rc;

	if ((rc = file_read(path, 4096, &data, &len)) != PS_OK)
		return rc;
	len = strcspn(data, "\r\n");
	if (len == 0) {
		xfree_secret(data, strlen(data));
		return ps_errf(PS_EINVAL, "the store's password file %s is "
		    "empty", path);
	}
	*password = xstrndup(data, len);
	xfree_secret(data, strlen(data));
	return PS_OK;
}

char *
store_locate(const char *dir, const char *file)
{
	char *address = xasprintf("%s/%s", dir, STORE_ADDRESS_FILE);

	if (access(address, F_OK) == 0)
		return address;
	free(address);
	return xasprintf("%s/%s", dir, file);
}

/*
 * Writes `data` to dir/name, mode 0600, refusing to replace a file that
 * is there (init never overwrites).
 */
static ps_err
write_private(const char *dir, const char *name, const char *data)
{
	char *path = xasprintf("%s/%s", dir, name);
	size_t len = strlen(data);
	ps_err rc = PS_OK;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		rc = ps_errf(PS_EIO, "cannot create %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		rc = ps_errf(PS_EIO, "cannot write %s: %s", path,
		    strerror(errno));
		unlink(path);
	}
	close(fd);
out:
	free(path);
	return rc;
}

ps_err
store_remember(const char *dir, const char *uri, const char *password)
{
	char *line, *entry, *o;
	const char *p;
	ps_err rc;

	if (password) {
		/* libpq's passfile: host:port:db:user:password, any of each. */
		entry = xmalloc(strlen(password) * 2 + 16);
		o = entry + sprintf(entry, "*:*:*:*:");
		for (p = password; *p; p++) {
			if (*p == ':' || *p == '\\')
				*o++ = '\\';
			*o++ = *p;
		}
		*o++ = '\n';
		*o = '\0';
		rc = write_private(dir, STORE_PASSWORD_FILE, entry);
		xfree_secret(entry, strlen(entry));
		if (rc != PS_OK)
			return rc;
	}
	line = xasprintf("%s\n", uri);
	rc = write_private(dir, STORE_ADDRESS_FILE, line);
	free(line);
	if (rc != PS_OK && password) {
		line = xasprintf("%s/%s", dir, STORE_PASSWORD_FILE);
		unlink(line);
		free(line);
	}
	return rc;
}

void
store_forget(const char *dir)
{
	const char *const names[] = { STORE_ADDRESS_FILE, STORE_PASSWORD_FILE,
	    STORE_ADDRESS_FILE "-feed" };
	char *path;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path = xasprintf("%s/%s", dir, names[i]);
		unlink(path);
		free(path);
	}
}

bool
store_listens(const char *address)
{
	return store_is_uri(address) ||
	    strcmp(base_name(address), STORE_ADDRESS_FILE) == 0;
}

/*
 * Opens the store at `address`: a SQLite file, a state directory's
 * STORE_ADDRESS_FILE, or a postgresql:// URI (with `password`, which may
 * be NULL). The shared counter of a store named by a file is that file +
 * "-feed"; a bare URI has none. `reached` (may be NULL): on a failure,
 * false when the store's server could not be reached at all.
 */
static ps_err
store_open_at(const char *address, const char *password,
    enum store_role role, bool create, struct store **out, bool *reached)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char *uri = NULL, *passfile = NULL;
	bool created = false, counter = true;
	ps_err rc;

	*out = NULL;
	st->role = role;
	if (store_is_uri(address)) {
		counter = false;
		rc = store_pg_connect(st, address, password, NULL);
	} else if (strcmp(base_name(address), STORE_ADDRESS_FILE) == 0) {
		if ((rc = store_address_read(address, &uri, &passfile)) ==
		    PS_OK)
			rc = store_pg_connect(st, uri, password, passfile);
	} else {
		rc = store_sqlite_connect(st, address, create, &created);
	}
	if (rc != PS_OK)
		goto fail;
	/*
	 * A connection that has just created the store maps the counter
	 * only if something already watches it: the counter file is not
	 * created for a store that did not exist, so an init that fails can
	 * remove the database alone.
	 */
	if (counter) {
		st->bump = store_feed_map(address, true, !created);
		if (st->bump == NULL && !created)
			log_warn(NULL, "store.feed_counter_failed", "path=%s "
			    "error=%s note=%s", log_q(address),
			    log_q(ps_errmsg()), log_q("this process's "
			    "commits are not announced to servers"));
	}
	if ((rc = store_migrate(st)) != PS_OK)
		goto fail;
	*out = st;
	rc = PS_OK;
	goto out;
fail:
	if (reached)
		*reached = st->drv == NULL || st->drv->connected(st);
	store_close(st);
out:
	free(uri);
	free(passfile);
	return rc;
}

ps_err
store_open(const char *address, enum store_role role, bool create,
    struct store **out)
{
	return store_open_at(address, NULL, role, create, out, NULL);
}

ps_err
store_open_pg(const char *uri, const char *password, enum store_role role,
    struct store **out)
{
	return store_open_at(uri, password, role, true, out, NULL);
}

ps_err
store_check(const char *address, enum store_role role, char *what,
    size_t n, bool *reached)
{
	struct store *st;
	ps_err rc;

	*reached = true;
	if ((rc = store_open_at(address, NULL, role, false, &st, reached)) !=
	    PS_OK)
		return rc;
	snprintf(what, n, "%s at %s", st->drv->name, st->where);
	store_close(st);
	return PS_OK;
}

ps_err
store_open_given(const char *uri, const char *password_file,
    enum store_role role, struct store **out, char **password)
{
	char *pw = NULL;
	ps_err rc;

	*password = NULL;
	if ((rc = store_uri_check(uri)) != PS_OK ||
	    (password_file && (rc = store_password_read(password_file,
	    &pw)) != PS_OK) ||
	    (rc = store_open_pg(uri, pw, role, out)) != PS_OK) {
		if (pw)
			xfree_secret(pw, strlen(pw));
		return rc;
	}
	*password = pw;
	return PS_OK;
}

bool
store_connected(struct store *st)
{
	return st->drv->connected(st);
}

void
store_close(struct store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < STMT_CACHE; i++) {
		if (st->stmts[i].q)
			st->drv->finalize(st->stmts[i].q);
		free(st->stmts[i].sql);
	}
	if (st->drv)
		st->drv->close(st);
	store_feed_watch_close(st->bump);
	free(st->where);
	free(st);
}

/* ---- small statement helpers ---- */

/*
 * The slot of `sql` in the connection's statement cache: the one that
 * holds it, else the empty one it would go to; NULL when the cache is
 * full.
 */
static struct stmt_slot *
stmt_slot(struct store *st, const char *sql)
{
	uint32_t h = 2166136261u;
	const char *p;
	size_t i, n;

	for (p = sql; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (n = 0; n < STMT_CACHE; n++) {
		i = (h + n) & (STMT_CACHE - 1);
		if (st->stmts[i].sql == NULL || strcmp(st->stmts[i].sql, sql) ==
		    0)
			return &st->stmts[i];
	}
	return NULL;
}

/*
 * A statement for `sql`, from the connection's cache when it is there
 * and not in use (a callback may run the statement its caller is
 * stepping: it gets one of its own). Compiling a statement compiles the
 * feed's triggers of the tables it changes (SQLite), or costs a round
 * trip (PostgreSQL); so each is compiled once per connection. Give it
 * back with unprep(). NULL (logged) when it cannot be prepared.
 */
static struct db_stmt *
prep(struct store *st, const char *sql)
{
	struct stmt_slot *s = stmt_slot(st, sql);
	struct db_stmt *q;

	if (s && s->sql && !s->busy) {
		s->busy = true;
		return s->q;
	}
	if ((q = st->drv->prepare(st, sql, s && s->sql == NULL)) == NULL) {
		store_fail(st, "prepare");
		return NULL;
	}
	q->drv = st->drv;
	q->slot = NULL;
	if (s && s->sql == NULL) {
		s->sql = xstrdup(sql);
		s->q = q;
		s->busy = true;
		q->slot = s;
	}
	return q;
}

/*
 * Gives back a statement prep() gave: a cached one is reset (which ends
 * its read of the database) for the next call, another is finalized.
 * NULL is a no-op.
 */
static void
unprep(struct store *st, struct db_stmt *q)
{
	(void)st;
	if (q == NULL)
		return;
	if (q->slot) {
		q->drv->reset(q);
		q->slot->busy = false;
		return;
	}
	q->drv->finalize(q);
}

static enum db_step
step(struct store *st, struct db_stmt *q)
{
	return st->drv->step(st, q);
}

static void
bind_text(struct db_stmt *q, int i, const char *s)
{
	q->drv->bind_text(q, i, s);
}

static void
bind_int64(struct db_stmt *q, int i, int64_t v)
{
	q->drv->bind_int64(q, i, v);
}

static void
bind_blob(struct db_stmt *q, int i, const void *p, size_t len)
{
	q->drv->bind_blob(q, i, p, len);
}

static int64_t
col_int64(struct db_stmt *q, int i)
{
	return q->drv->col_int64(q, i);
}

static const char *
col_text(struct db_stmt *q, int i)
{
	const char *s = q->drv->col_text(q, i);

	return s ? s : "";
}

static char *
col_dup(struct db_stmt *q, int i)
{
	const char *s = q->drv->col_text(q, i);

	return s ? xstrdup(s) : NULL;
}

/* A copy of a blob column: *len bytes, never NULL. */
static unsigned char *
col_blob_dup(struct db_stmt *q, int i, size_t *len)
{
	const void *d = q->drv->col_blob(q, i, len);
	unsigned char *p = xmalloc(*len ? *len : 1);

	if (*len)
		memcpy(p, d, *len);
	return p;
}

/* Runs a statement that returns no rows; counts changed rows. */
static ps_err
step_done(struct store *st, struct db_stmt *q, int *changes)
{
	enum db_step r = step(st, q);

	if (r == DB_CONSTRAINT)
		return ps_errf(PS_EEXIST, "already exists");
	if (r != DB_DONE)
		return store_fail(st, "write");
	if (changes)
		*changes = (int)st->drv->changes(st, q);
	return PS_OK;
}

/* ---- config ---- */

ps_err
store_config_get(struct store *st, const char *key, char **value)
{
	struct db_stmt *q = prep(st, "SELECT value FROM config WHERE key = ?");
	ps_err rc = PS_ESTORE;
	enum db_step r;

	if (q == NULL)
		return rc;
	bind_text(q, 1, key);
	r = step(st, q);
	if (r == DB_ROW) {
		*value = xstrdup(col_text(q, 0));
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "setting %s is not set", key);
	} else {
		rc = store_fail(st, "read setting");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_config_set(struct store *st, const char *key, const char *value)
{
	struct db_stmt *q = prep(st, "INSERT INTO config (key, value) "
	    "VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
	    "excluded.value");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_text(q, 2, value);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

/* ---- the change feed ---- */

/* The kinds as the triggers write them. */
static const struct {
	const char		*name;
	enum store_change_kind	 kind;
} feed_kinds[] = {
	{ "config",		STORE_CHANGE_CONFIG },
	{ "mailbox",		STORE_CHANGE_MAILBOX },
	{ "photo",		STORE_CHANGE_PHOTO },
	{ "preview",		STORE_CHANGE_PREVIEW },
	{ "partner",		STORE_CHANGE_PARTNER },
	{ "mailbox_session",	STORE_CHANGE_MAILBOX_SESSION },
	{ "outbox",		STORE_CHANGE_OUTBOX },
	{ "directory_outbox",	STORE_CHANGE_DIRECTORY_OUTBOX },
	{ "webapp",		STORE_CHANGE_WEBAPP },
	{ "user",		STORE_CHANGE_USER },
	{ "user_email",		STORE_CHANGE_USER_EMAIL },
	{ "issuer",		STORE_CHANGE_ISSUER },
	{ "thumb",		STORE_CHANGE_THUMB },
	{ "sync",		STORE_CHANGE_SYNC },
	{ "session",		STORE_CHANGE_SESSION },
	{ "signin_count",	STORE_CHANGE_SIGNIN_COUNT },
};

static bool
feed_kind(const char *name, enum store_change_kind *kind)
{
	size_t i;

	for (i = 0; i < sizeof(feed_kinds) / sizeof(feed_kinds[0]); i++)
		if (strcmp(feed_kinds[i].name, name) == 0) {
			*kind = feed_kinds[i].kind;
			return true;
		}
	return false;
}

ps_err
store_feed_head(struct store *st, int64_t *seq)
{
	struct db_stmt *q = prep(st, "SELECT coalesce(max(seq), 0) FROM feed");
	ps_err rc = PS_ESTORE;

	if (q == NULL)
		return rc;
	if (step(st, q) == DB_ROW) {
		*seq = col_int64(q, 0);
		rc = PS_OK;
	} else {
		rc = store_fail(st, "read the change feed");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_feed_read(struct store *st, int64_t after, int limit,
    ps_err (*fn)(void *, const struct store_change *), void *arg,
    int64_t *last)
{
	/*
	 * One statement, so one snapshot: the rows and how far the feed was
	 * pruned agree. Pruning keeps the newest row, so when rows after
	 * `after` were pruned there is a newer row to carry the news.
	 */
	struct db_stmt *q = prep(st, "SELECT seq, kind, key, origin, (SELECT "
	    "pruned FROM feed_pruned) FROM feed WHERE seq > ? ORDER BY seq "
	    "LIMIT ?");
	int64_t self = store_feed_origin(), seq;
	struct store_change c;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	*last = after;
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, after);
	bind_int64(q, 2, limit);
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		seq = col_int64(q, 0);
		if (*last == after && col_int64(q, 4) > after) {
			rc = ps_errf(PS_ELIMIT, "the change feed was pruned "
			    "past %lld", (long long)after);
			break;
		}
		if (col_int64(q, 3) != self &&
		    feed_kind(col_text(q, 1), &c.kind)) {
			c.seq = seq;
			str_copy(c.key, col_text(q, 2), sizeof(c.key));
			if ((rc = fn(arg, &c)) != PS_OK)
				break;
		}
		*last = seq;
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "read the change feed");
	unprep(st, q);
	return rc;
}

ps_err
store_feed_prune(struct store *st, int64_t before)
{
	struct db_stmt *q = NULL;
	int64_t upto = 0;
	int rows = 0;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	/* Everything up to the newest row older than `before`, but that. */
	rc = PS_ESTORE;
	if ((q = prep(st, "SELECT coalesce(max(seq), 0) FROM feed WHERE at < "
	    "? AND seq < (SELECT max(seq) FROM feed)")) == NULL)
		goto out;
	bind_int64(q, 1, before);
	if (step(st, q) != DB_ROW) {
		rc = store_fail(st, "read the change feed");
		goto out;
	}
	upto = col_int64(q, 0);
	unprep(st, q);
	q = NULL;
	rc = PS_OK;
	if (upto == 0)
		goto out;
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM feed WHERE seq <= ?")) == NULL)
		goto out;
	bind_int64(q, 1, upto);
	if ((rc = step_done(st, q, &rows)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "UPDATE feed_pruned SET pruned = ?1 WHERE pruned < "
	    "?1")) == NULL)
		goto out;
	bind_int64(q, 1, upto);
	rc = step_done(st, q, NULL);
out:
	unprep(st, q);
	if ((rc = tx_finish(st, rc)) == PS_OK && rows > 0)
		log_debug(NULL, "store.feed_pruned", "upto=%lld rows=%d",
		    (long long)upto, rows);
	return rc;
}

/* ---- mailboxes ---- */

void
store_mailbox_cleanup(struct store_mailbox *m)
{
	if (m->pwhash)
		xfree_secret(m->pwhash, strlen(m->pwhash));
	memset(m, 0, sizeof(*m));
}

ps_err
store_mailbox_add(struct store *st, const char *email, const char *name,
    const char *pwhash)
{
	struct db_stmt *q = prep(st, "INSERT INTO mailboxes (email, name, "
	    "pwhash, created) VALUES (lower(?), ?, ?, ?)");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	bind_text(q, 2, name ? name : "");
	bind_text(q, 3, pwhash);
	bind_int64(q, 4, time_now());
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		ps_errf(rc, "mailbox %s already exists", email);
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_remove(struct store *st, const char *email)
{
	struct db_stmt *q = prep(st, "DELETE FROM mailboxes WHERE email = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s", email);
	return rc;
}

#define MAILBOX_COLUMNS							\
	"m.email, m.name, m.pwhash, m.created, coalesce(p.etag, ''), "	\
	"coalesce(p.updated, 0), coalesce(p.side, 0), "			\
	"coalesce(m.directory_id, ''), m.disabled, m.photo_hidden "	\
	"FROM mailboxes m LEFT JOIN photos p ON p.email = m.email"

static void
mailbox_row(struct db_stmt *q, struct store_mailbox *m)
{
	memset(m, 0, sizeof(*m));
	str_copy(m->email, col_text(q, 0), sizeof(m->email));
	str_copy(m->name, col_text(q, 1), sizeof(m->name));
	m->pwhash = col_dup(q, 2);
	m->created = col_int64(q, 3);
	str_copy(m->etag, col_text(q, 4), sizeof(m->etag));
	m->photo_updated = col_int64(q, 5);
	m->photo_side = (int)col_int64(q, 6);
	str_copy(m->directory_id, col_text(q, 7), sizeof(m->directory_id));
	m->disabled = col_int64(q, 8) != 0;
	m->photo_hidden = col_int64(q, 9) != 0;
}

ps_err
store_mailbox_get(struct store *st, const char *email,
    struct store_mailbox *out)
{
	struct db_stmt *q = prep(st, "SELECT " MAILBOX_COLUMNS
	    " WHERE m.email = ? AND m.disabled = 0");
	ps_err rc;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	r = step(st, q);
	if (r == DB_ROW) {
		mailbox_row(q, out);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s", email);
	} else {
		rc = store_fail(st, "read mailbox");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_set_password(struct store *st, const char *email,
    const char *pwhash)
{
	struct db_stmt *q = NULL;
	int changes = 0;
	ps_err rc;

	/* A new password ends the mailbox's browser sessions with it. */
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "UPDATE mailboxes SET pwhash = ? WHERE email = ?"))
	    == NULL)
		goto out;
	bind_text(q, 1, pwhash);
	bind_text(q, 2, email);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	if (changes == 0) {
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s", email);
		goto out;
	}
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM sessions WHERE email = ?")) == NULL)
		goto out;
	bind_text(q, 1, email);
	rc = step_done(st, q, NULL);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

static ps_err
mailbox_each_where(struct store *st, const char *sql,
    ps_err (*fn)(void *, const struct store_mailbox *), void *arg)
{
	struct db_stmt *q = prep(st, sql);
	struct store_mailbox m;
	ps_err rc = PS_OK;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		mailbox_row(q, &m);
		rc = fn(arg, &m);
		store_mailbox_cleanup(&m);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list mailboxes");
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_each(struct store *st,
    ps_err (*fn)(void *, const struct store_mailbox *), void *arg)
{
	return mailbox_each_where(st, "SELECT " MAILBOX_COLUMNS
	    " WHERE m.disabled = 0 ORDER BY m.email", fn, arg);
}

ps_err
store_mailbox_directory_each(struct store *st,
    ps_err (*fn)(void *, const struct store_mailbox *), void *arg)
{
	return mailbox_each_where(st, "SELECT " MAILBOX_COLUMNS
	    " ORDER BY m.email", fn, arg);
}

/*
 * Runs `sql`, which returns no rows, with the values `types` names in
 * order: 't' a string (NULL: SQL NULL), 'i' an int64_t.
 */
static ps_err
run_sql(struct store *st, const char *sql, const char *types, ...)
{
	struct db_stmt *q = prep(st, sql);
	va_list ap;
	ps_err rc;
	int i;

	if (q == NULL)
		return PS_ESTORE;
	va_start(ap, types);
	for (i = 0; types[i]; i++) {
		if (types[i] == 'i')
			bind_int64(q, i + 1, va_arg(ap, int64_t));
		else
			bind_text(q, i + 1, va_arg(ap, const char *));
	}
	va_end(ap);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_directory_put(struct store *st, const struct store_mailbox *m,
    const char *was)
{
	ps_err rc;

	if (was == NULL) {
		rc = run_sql(st, "INSERT INTO mailboxes (email, name, created, "
		    "directory_id, disabled) VALUES (lower(?), ?, ?, ?, ?)",
		    "ttiti", m->email, m->name, time_now(), m->directory_id,
		    (int64_t)m->disabled);
		goto out;
	}
	if (strcasecmp(was, m->email) == 0) {
		rc = run_sql(st, "UPDATE mailboxes SET name = ?, "
		    "directory_id = ?, disabled = ? WHERE email = ?", "ttit",
		    m->name, m->directory_id, (int64_t)m->disabled, was);
		goto sessions;
	}
	/*
	 * A new address: a new row under it takes over the old one's photo,
	 * preview, sessions and queued directory write, then the old row
	 * goes. Photo and preview
	 * rows are copied, not renamed, because their sizes refer to them;
	 * the old row first gives up its directory id, which is unique.
	 */
	if ((rc = run_sql(st, "UPDATE mailboxes SET directory_id = NULL "
	    "WHERE email = ?", "t", was)) != PS_OK ||
	    (rc = run_sql(st, "INSERT INTO mailboxes (email, name, pwhash, "
	    "created, directory_id, disabled) SELECT lower(?1), ?2, pwhash, "
	    "created, ?3, ?4 FROM mailboxes WHERE email = ?5", "tttit",
	    m->email, m->name, m->directory_id, (int64_t)m->disabled,
	    was)) != PS_OK ||
	    (rc = run_sql(st, "INSERT INTO photos (email, etag, side, "
	    "updated) SELECT lower(?1), etag, side, updated FROM photos WHERE "
	    "email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "UPDATE photo_sizes SET email = lower(?1) WHERE "
	    "email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "INSERT INTO previews (email, id, side, "
	    "created, expires) SELECT lower(?1), id, side, created, expires "
	    "FROM previews WHERE email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "UPDATE preview_sizes SET email = lower(?1) "
	    "WHERE email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "UPDATE sessions SET email = lower(?1) WHERE "
	    "email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "UPDATE directory_outbox SET email = lower(?1) "
	    "WHERE email = ?2", "tt", m->email, was)) != PS_OK ||
	    (rc = run_sql(st, "DELETE FROM mailboxes WHERE email = ?", "t",
	    was)) != PS_OK)
		goto out;
sessions:
	if (rc == PS_OK && m->disabled)
		rc = run_sql(st, "DELETE FROM sessions WHERE email = ?", "t",
		    m->email);
out:
	if (rc == PS_EEXIST)
		ps_errf(rc, "the address %s is another mailbox's", m->email);
	return rc;
}

/* ---- change notifications (master) ---- */

/*
 * Queues a notification of `email`'s photo change for every partner that
 * wants them; called inside the transaction of the change itself, so a
 * change is never stored without its notifications, nor the reverse.
 * An older pending notification of the same address is replaced.
 */
static ps_err
outbox_enqueue(struct store *st, const char *email)
{
	static const char *const steps[] = {
		"DELETE FROM outbox WHERE email = ?1",
		"INSERT INTO outbox (partner, email, created, next_attempt) "
		"SELECT name, lower(?1), ?2, ?2 FROM partners WHERE notify = 1 "
		"AND metadata_url IS NOT NULL",
	};
	struct db_stmt *q;
	size_t i;
	ps_err rc = PS_OK;

	for (i = 0; i < sizeof(steps) / sizeof(*steps) && rc == PS_OK; i++) {
		if ((q = prep(st, steps[i])) == NULL)
			return PS_ESTORE;
		bind_text(q, 1, email);
		if (i == 1)
			bind_int64(q, 2, time_now());
		rc = step_done(st, q, NULL);
		unprep(st, q);
	}
	return rc;
}

/*
 * Queues the write of `email`'s photo to its directory entry when the
 * mailbox came from the directory and the master writes photos there
 * (config directory.photos on); in the change's own transaction. A
 * pending write of the address is replaced (a new id), so a delivery
 * that read the older state leaves the newer one queued.
 */
static ps_err
directory_outbox_enqueue(struct store *st, const char *email)
{
	ps_err rc = run_sql(st, "DELETE FROM directory_outbox WHERE email = "
	    "?1", "t", email);

	if (rc != PS_OK)
		return rc;
	return run_sql(st, "INSERT INTO directory_outbox (email, created, "
	    "next_attempt) SELECT email, ?2, ?2 FROM mailboxes WHERE email = "
	    "?1 AND directory_id IS NOT NULL AND EXISTS (SELECT 1 FROM config "
	    "WHERE key = 'directory.photos' AND value = 'on')", "ti", email,
	    time_now());
}

/* What every change of a photo queues: notices and the directory's. */
static ps_err
photo_changed(struct store *st, const char *email)
{
	ps_err rc = outbox_enqueue(st, email);

	return rc == PS_OK ? directory_outbox_enqueue(st, email) : rc;
}

ps_err
store_outbox_due(struct store *st, int64_t now, int limit,
    ps_err (*fn)(void *, const struct store_outbox *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT id, partner, email, created, "
	    "attempts, last_error FROM outbox WHERE next_attempt <= ? ORDER BY "
	    "next_attempt LIMIT ?");
	struct store_outbox o;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, now);
	bind_int64(q, 2, limit);
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		memset(&o, 0, sizeof(o));
		o.id = col_int64(q, 0);
		str_copy(o.partner, col_text(q, 1), sizeof(o.partner));
		str_copy(o.email, col_text(q, 2), sizeof(o.email));
		o.created = col_int64(q, 3);
		o.attempts = (int)col_int64(q, 4);
		str_copy(o.last_error, col_text(q, 5), sizeof(o.last_error));
		rc = fn(arg, &o);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "read outbox");
	unprep(st, q);
	return rc;
}

ps_err
store_outbox_done(struct store *st, int64_t id)
{
	struct db_stmt *q = prep(st, "DELETE FROM outbox WHERE id = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, id);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_outbox_retry(struct store *st, int64_t id, int64_t next_attempt,
    const char *error)
{
	struct db_stmt *q = prep(st, "UPDATE outbox SET attempts = attempts + "
	    "1, next_attempt = ?, last_error = ? WHERE id = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, next_attempt);
	bind_text(q, 2, error);
	bind_int64(q, 3, id);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

/* What a `SELECT count(*)` says; -1 when it cannot be read. */
static int64_t
count_rows(struct store *st, const char *sql)
{
	struct db_stmt *q = prep(st, sql);
	int64_t n = -1;

	if (q && step(st, q) == DB_ROW)
		n = col_int64(q, 0);
	unprep(st, q);
	return n;
}

int64_t
store_outbox_pending(struct store *st)
{
	return count_rows(st, "SELECT count(*) FROM outbox");
}

/* ---- photos ---- */

ps_err
store_photo_put_in(struct store *st, const char *email, const char *etag,
    const struct store_photo_size *sizes, size_t n)
{
	struct db_stmt *q = NULL;
	ps_err rc;
	int changes = 0, side = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (sizes[i].side > side)
			side = sizes[i].side;
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM photos WHERE email = ?")) == NULL)
		goto out;
	bind_text(q, 1, email);
	if ((rc = step_done(st, q, NULL)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO photos (email, etag, side, updated) "
	    "SELECT email, ?, ?, ? FROM mailboxes WHERE email = ?")) == NULL)
		goto out;
	bind_text(q, 1, etag);
	bind_int64(q, 2, side);
	bind_int64(q, 3, time_now());
	bind_text(q, 4, email);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	if (changes == 0) {
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s", email);
		goto out;
	}
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO photo_sizes (email, code, side, data) "
	    "VALUES ((SELECT email FROM mailboxes WHERE email = ?), ?, ?, ?)"))
	    == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		st->drv->reset(q);
		bind_text(q, 1, email);
		bind_int64(q, 2, sizes[i].code);
		bind_int64(q, 3, sizes[i].side);
		bind_blob(q, 4, sizes[i].data, sizes[i].len);
		if ((rc = step_done(st, q, NULL)) != PS_OK)
			goto out;
	}
	rc = photo_changed(st, email);
out:
	unprep(st, q);
	return rc;
}

ps_err
store_photo_put(struct store *st, const char *email, const char *etag,
    const struct store_photo_size *sizes, size_t n)
{
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	return tx_finish(st, store_photo_put_in(st, email, etag, sizes, n));
}

ps_err
store_photo_remove(struct store *st, const char *email)
{
	struct db_stmt *q;
	int changes = 0;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	if ((q = prep(st, "DELETE FROM photos WHERE email = ?")) == NULL) {
		rc = PS_ESTORE;
		goto out;
	}
	bind_text(q, 1, email);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "%s has no photo", email);
	if (rc == PS_OK)
		rc = photo_changed(st, email);
out:
	return tx_finish(st, rc);
}

ps_err
store_photo_hide(struct store *st, const char *email, bool hidden,
    const char *etag, bool *changed)
{
	struct db_stmt *q = NULL;
	int changes = 0;
	ps_err rc;

	*changed = false;
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "UPDATE mailboxes SET photo_hidden = ? WHERE "
	    "email = ? AND disabled = 0 AND photo_hidden <> ?")) == NULL)
		goto out;
	bind_int64(q, 1, hidden);
	bind_text(q, 2, email);
	bind_int64(q, 3, hidden);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	unprep(st, q);
	q = NULL;
	if (changes == 0) {
		/* Absent, or already as asked: which one, for the caller. */
		struct store_mailbox m;

		if ((rc = store_mailbox_get(st, email, &m)) == PS_OK)
			store_mailbox_cleanup(&m);
		goto out;
	}
	/* A new tag, so that whoever asks whether it changed learns so. */
	if ((rc = run_sql(st, "UPDATE photos SET etag = ?, updated = ? WHERE "
	    "email = ?", "tit", etag, time_now(), email)) != PS_OK)
		goto out;
	if ((rc = photo_changed(st, email)) == PS_OK)
		*changed = true;
out:
	unprep(st, q);
	rc = tx_finish(st, rc);
	if (rc != PS_OK)
		*changed = false;
	return rc;
}

ps_err
store_photo_get(struct store *st, const char *email, int code,
    struct store_photo *out)
{
	/*
	 * The size asked for if stored, else the largest stored: a source
	 * smaller than the size code is never upscaled ([MS-OXWSPHOTO]
	 * 3.1.5.1.1: "the largest available").
	 */
	struct db_stmt *q = prep(st, "SELECT p.etag, s.code, s.side, s.data, "
	    "p.updated, m.photo_hidden FROM photos p JOIN photo_sizes s ON s.email = p.email "
	    "JOIN mailboxes m ON m.email = p.email AND m.disabled = 0 "
	    "WHERE p.email = ? ORDER BY (s.code = ?) DESC, s.side DESC "
	    "LIMIT 1");
	ps_err rc;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	bind_int64(q, 2, code);
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		out->code = (int)col_int64(q, 1);
		out->side = (int)col_int64(q, 2);
		out->data = col_blob_dup(q, 3, &out->len);
		out->updated = col_int64(q, 4);
		out->hidden = col_int64(q, 5) != 0;
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no photo", email);
	} else {
		rc = store_fail(st, "read photo");
	}
	unprep(st, q);
	return rc;
}

void
store_photo_cleanup(struct store_photo *p)
{
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* ---- partners ---- */

void
store_partner_cleanup(struct store_partner *p)
{
	free(p->metadata_url);
	free(p->metadata);
	memset(p, 0, sizeof(*p));
}

ps_err
store_partner_put(struct store *st, const struct store_partner *p)
{
	struct db_stmt *q = prep(st, "INSERT INTO partners (name, issuer, "
	    "metadata_url, metadata, fetched, added, notify, ca_file) VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET issuer "
	    "= excluded.issuer, metadata_url = excluded.metadata_url, metadata "
	    "= excluded.metadata, fetched = excluded.fetched, notify = "
	    "excluded.notify, ca_file = excluded.ca_file");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, p->name);
	bind_text(q, 2, p->issuer);
	bind_text(q, 3, p->metadata_url);
	bind_text(q, 4, p->metadata);
	bind_int64(q, 5, p->fetched);
	bind_int64(q, 6, p->added ? p->added : time_now());
	bind_int64(q, 7, p->notify);
	bind_text(q, 8, p->ca_file);
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		ps_errf(rc, "another partner already has issuer %s",
		    p->issuer);
	unprep(st, q);
	return rc;
}

ps_err
store_partner_remove(struct store *st, const char *name_or_issuer)
{
	struct db_stmt *q = prep(st, "DELETE FROM partners WHERE name = ? OR "
	    "issuer = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name_or_issuer);
	bind_text(q, 2, name_or_issuer);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no partner %s", name_or_issuer);
	return rc;
}

static void
partner_row(struct db_stmt *q, struct store_partner *p)
{
	memset(p, 0, sizeof(*p));
	str_copy(p->name, col_text(q, 0), sizeof(p->name));
	str_copy(p->issuer, col_text(q, 1), sizeof(p->issuer));
	p->metadata_url = col_dup(q, 2);
	p->metadata = col_dup(q, 3);
	p->fetched = col_int64(q, 4);
	p->added = col_int64(q, 5);
	p->notify = (int)col_int64(q, 6) != 0;
	str_copy(p->ca_file, col_text(q, 7), sizeof(p->ca_file));
}

ps_err
store_partner_get(struct store *st, const char *name_or_issuer,
    struct store_partner *out)
{
	struct db_stmt *q = prep(st, "SELECT name, issuer, metadata_url, "
	    "metadata, fetched, added, notify, ca_file FROM partners WHERE "
	    "name = ? OR "
	    "issuer = ?");
	ps_err rc;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name_or_issuer);
	bind_text(q, 2, name_or_issuer);
	r = step(st, q);
	if (r == DB_ROW) {
		partner_row(q, out);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no partner %s", name_or_issuer);
	} else {
		rc = store_fail(st, "read partner");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_partner_each(struct store *st,
    ps_err (*fn)(void *, const struct store_partner *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT name, issuer, metadata_url, "
	    "metadata, fetched, added, notify, ca_file FROM partners ORDER BY "
	    "name");
	struct store_partner p;
	ps_err rc = PS_OK;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		partner_row(q, &p);
		rc = fn(arg, &p);
		store_partner_cleanup(&p);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list partners");
	unprep(st, q);
	return rc;
}

/* ---- master: browser sessions of the change-photo page ---- */

ps_err
store_mailbox_session_put(struct store *st, const char *key,
    const char *email, const char *csrf, int64_t expires)
{
	struct db_stmt *q = NULL;
	int64_t now = time_now();
	int changes = 0;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM sessions WHERE expires <= ?")) == NULL)
		goto out;
	bind_int64(q, 1, now);
	if ((rc = step_done(st, q, NULL)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO sessions (key, email, csrf, created, "
	    "expires) SELECT ?, email, ?, ?, ? FROM mailboxes WHERE email = "
	    "? AND pwhash IS NOT NULL")) == NULL)
		goto out;
	bind_text(q, 1, key);
	bind_text(q, 2, csrf);
	bind_int64(q, 3, now);
	bind_int64(q, 4, expires);
	bind_text(q, 5, email);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	if (changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s that can sign in",
		    email);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

ps_err
store_mailbox_session_get(struct store *st, const char *key,
    struct store_mailbox_session *out)
{
	struct db_stmt *q = prep(st, "SELECT s.email, s.csrf, s.expires FROM "
	    "sessions s JOIN mailboxes m ON m.email = s.email WHERE s.key = ? "
	    "AND s.expires > ? AND m.pwhash IS NOT NULL");
	ps_err rc;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_int64(q, 2, time_now());
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(out->email, col_text(q, 0), sizeof(out->email));
		str_copy(out->csrf, col_text(q, 1), sizeof(out->csrf));
		out->expires = col_int64(q, 2);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no such session");
	} else {
		rc = store_fail(st, "read session");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_session_remove(struct store *st, const char *key)
{
	struct db_stmt *q = prep(st, "DELETE FROM sessions WHERE key = ? OR "
	    "expires <= ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_int64(q, 2, time_now());
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

/* ---- master: pending photo previews ---- */

ps_err
store_preview_put(struct store *st, const char *email, const char *id,
    int64_t expires, const struct store_photo_size *sizes, size_t n)
{
	struct db_stmt *q = NULL;
	int64_t now = time_now();
	int changes = 0, side = 0;
	size_t i;
	ps_err rc;

	for (i = 0; i < n; i++)
		if (sizes[i].side > side)
			side = sizes[i].side;
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	/* This mailbox's preview, and everyone's expired ones, go. */
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM previews WHERE email = ? OR expires "
	    "<= ?")) == NULL)
		goto out;
	bind_text(q, 1, email);
	bind_int64(q, 2, now);
	if ((rc = step_done(st, q, NULL)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO previews (email, id, side, created, "
	    "expires) SELECT email, ?, ?, ?, ? FROM mailboxes WHERE email = ?"))
	    == NULL)
		goto out;
	bind_text(q, 1, id);
	bind_int64(q, 2, side);
	bind_int64(q, 3, now);
	bind_int64(q, 4, expires);
	bind_text(q, 5, email);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	if (changes == 0) {
		rc = ps_errf(PS_ENOTFOUND, "no mailbox %s", email);
		goto out;
	}
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO preview_sizes (email, code, side, data) "
	    "VALUES ((SELECT email FROM mailboxes WHERE email = ?), ?, ?, ?)"))
	    == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		st->drv->reset(q);
		bind_text(q, 1, email);
		bind_int64(q, 2, sizes[i].code);
		bind_int64(q, 3, sizes[i].side);
		bind_blob(q, 4, sizes[i].data, sizes[i].len);
		if ((rc = step_done(st, q, NULL)) != PS_OK)
			goto out;
	}
	rc = PS_OK;
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

ps_err
store_preview_get(struct store *st, const char *email, int code,
    struct store_photo *out)
{
	/* As store_photo_get: the size asked for, else the largest. */
	struct db_stmt *q = prep(st, "SELECT p.id, s.code, s.side, s.data, "
	    "p.created FROM previews p JOIN preview_sizes s ON s.email = "
	    "p.email WHERE p.email = ? AND p.expires > ? ORDER BY (s.code = ?) "
	    "DESC, s.side DESC LIMIT 1");
	ps_err rc;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	bind_int64(q, 2, time_now());
	bind_int64(q, 3, code);
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		out->code = (int)col_int64(q, 1);
		out->side = (int)col_int64(q, 2);
		out->data = col_blob_dup(q, 3, &out->len);
		out->updated = col_int64(q, 4);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no pending preview", email);
	} else {
		rc = store_fail(st, "read preview");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_preview_save(struct store *st, const char *email, const char *etag)
{
	static const char *const steps[] = {
		"DELETE FROM photos WHERE email = ?1",
		"INSERT INTO photos (email, etag, side, updated) SELECT email, "
		"?2, side, ?3 FROM previews WHERE email = ?1",
		"INSERT INTO photo_sizes (email, code, side, data) SELECT "
		"email, code, side, data FROM preview_sizes WHERE email = ?1",
		"DELETE FROM previews WHERE email = ?1",
	};
	struct db_stmt *q = NULL;
	size_t i;
	ps_err rc;
	enum db_step r;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "SELECT 1 FROM previews WHERE email = ? AND expires "
	    "> ?")) == NULL)
		goto out;
	bind_text(q, 1, email);
	bind_int64(q, 2, time_now());
	r = step(st, q);
	if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no pending preview", email);
		goto out;
	}
	if (r != DB_ROW) {
		rc = store_fail(st, "read preview");
		goto out;
	}
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		unprep(st, q);
		rc = PS_ESTORE;
		if ((q = prep(st, steps[i])) == NULL)
			goto out;
		bind_text(q, 1, email);
		if (i == 1) {
			bind_text(q, 2, etag);
			bind_int64(q, 3, time_now());
		}
		if ((rc = step_done(st, q, NULL)) != PS_OK)
			goto out;
	}
	rc = photo_changed(st, email);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

ps_err
store_preview_remove(struct store *st, const char *email)
{
	struct db_stmt *q = prep(st, "DELETE FROM previews WHERE email = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "%s has no pending preview", email);
	return rc;
}

/* ---- portal: web applications ---- */

#define WEBAPP_COLUMNS							\
	"id, url, host, port, realm, photo_import, photo_expiration, "	\
	"photo_error_expiration, autodiscover_domain, sync_any, size_s, " \
	"size_m, size_l, ca_file, allow_oauth_http, created, "		\
	"background_refresh, notifications, avatar_anyone, avatar_defaults, " \
	"owner_wait_ms, sso_header, sso_proxies, keytab, "		\
	"kerberos_service, kerberos_realms"

static void
webapp_row(struct db_stmt *q, struct store_webapp *w)
{
	memset(w, 0, sizeof(*w));
	w->id = col_int64(q, 0);
	str_copy(w->url, col_text(q, 1), sizeof(w->url));
	str_copy(w->host, col_text(q, 2), sizeof(w->host));
	w->port = (int)col_int64(q, 3);
	str_copy(w->realm, col_text(q, 4), sizeof(w->realm));
	w->photo_import = (int)col_int64(q, 5) != 0;
	w->photo_expiration = col_int64(q, 6);
	w->photo_error_expiration = col_int64(q, 7);
	str_copy(w->autodiscover_domain, col_text(q, 8),
	    sizeof(w->autodiscover_domain));
	w->sync_any = (int)col_int64(q, 9) != 0;
	w->size_s = (int)col_int64(q, 10);
	w->size_m = (int)col_int64(q, 11);
	w->size_l = (int)col_int64(q, 12);
	str_copy(w->ca_file, col_text(q, 13), sizeof(w->ca_file));
	w->allow_oauth_http = (int)col_int64(q, 14) != 0;
	w->created = col_int64(q, 15);
	w->background_refresh = col_int64(q, 16);
	w->notifications = (int)col_int64(q, 17) != 0;
	w->avatar_anyone = (int)col_int64(q, 18) != 0;
	str_copy(w->avatar_defaults, col_text(q, 19),
	    sizeof(w->avatar_defaults));
	w->owner_wait_ms = (int)col_int64(q, 20);
	str_copy(w->sso_header, col_text(q, 21), sizeof(w->sso_header));
	str_copy(w->sso_proxies, col_text(q, 22), sizeof(w->sso_proxies));
	str_copy(w->keytab, col_text(q, 23), sizeof(w->keytab));
	str_copy(w->kerberos_service, col_text(q, 24),
	    sizeof(w->kerberos_service));
	str_copy(w->kerberos_realms, col_text(q, 25),
	    sizeof(w->kerberos_realms));
}

static void
webapp_bind(struct db_stmt *q, const struct store_webapp *w)
{
	bind_text(q, 1, w->url);
	bind_text(q, 2, w->host);
	bind_int64(q, 3, w->port);
	bind_text(q, 4, w->realm);
	bind_int64(q, 5, w->photo_import);
	bind_int64(q, 6, w->photo_expiration);
	bind_int64(q, 7, w->photo_error_expiration);
	bind_text(q, 8, w->autodiscover_domain);
	bind_int64(q, 9, w->sync_any);
	bind_int64(q, 10, w->size_s);
	bind_int64(q, 11, w->size_m);
	bind_int64(q, 12, w->size_l);
	bind_text(q, 13, w->ca_file);
	bind_int64(q, 14, w->allow_oauth_http);
	bind_int64(q, 16, w->background_refresh);
	bind_int64(q, 17, w->notifications);
	bind_int64(q, 18, w->avatar_anyone);
	bind_text(q, 19, w->avatar_defaults);
	bind_int64(q, 20, w->owner_wait_ms);
	bind_text(q, 21, w->sso_header);
	bind_text(q, 22, w->sso_proxies);
	bind_text(q, 23, w->keytab);
	bind_text(q, 24, w->kerberos_service);
	bind_text(q, 25, w->kerberos_realms);
}

ps_err
store_webapp_add(struct store *st, struct store_webapp *w)
{
	/*
	 * The id is the largest + 1, as SQLite gives an INTEGER PRIMARY
	 * KEY: an identity sequence would also spend a number on an add
	 * that is refused (a URL taken), and the web applications' names
	 * (webapp-N) would then differ between the backends.
	 */
	struct db_stmt *q = prep(st, "INSERT INTO webapps (id, url, host, "
	    "port, realm, photo_import, photo_expiration, "
	    "photo_error_expiration, autodiscover_domain, sync_any, size_s, "
	    "size_m, size_l, ca_file, allow_oauth_http, created, "
	    "background_refresh, notifications, avatar_anyone, "
	    "avatar_defaults, owner_wait_ms, sso_header, sso_proxies, keytab, "
	    "kerberos_service, kerberos_realms) VALUES "
	    "((SELECT coalesce(max(id), 0) + 1 FROM webapps), ?1, ?2, ?3, ?4, "
	    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
	    "?19, ?20, ?21, ?22, ?23, ?24, ?25) RETURNING id");
	enum db_step r;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	webapp_bind(q, w);
	w->created = time_now();
	bind_int64(q, 15, w->created);
	r = step(st, q);
	if (r == DB_ROW) {
		w->id = col_int64(q, 0);
		rc = PS_OK;
	} else if (r == DB_CONSTRAINT) {
		rc = ps_errf(PS_EEXIST, "web application %s already exists",
		    w->url);
	} else {
		rc = store_fail(st, "add web application");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_webapp_update(struct store *st, const struct store_webapp *w)
{
	struct db_stmt *q = prep(st, "UPDATE webapps SET url = ?, host = ?, "
	    "port = ?, realm = ?, photo_import = ?, photo_expiration = ?, "
	    "photo_error_expiration = ?, autodiscover_domain = ?, sync_any = "
	    "?, size_s = ?, size_m = ?, size_l = ?, ca_file = ?, "
	    "allow_oauth_http = ?14, background_refresh = ?16, notifications "
	    "= ?17, avatar_anyone = ?18, avatar_defaults = ?19, "
	    "owner_wait_ms = ?20, sso_header = ?21, sso_proxies = ?22, "
	    "keytab = ?23, kerberos_service = ?24, kerberos_realms = ?25 "
	    "WHERE id = ?15");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	webapp_bind(q, w);
	bind_int64(q, 15, w->id);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no web application %s", w->url);
	return rc;
}

ps_err
store_webapp_get(struct store *st, const char *url, struct store_webapp *out)
{
	struct db_stmt *q = prep(st, "SELECT " WEBAPP_COLUMNS " FROM webapps "
	    "WHERE url = ?");
	ps_err rc;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, url);
	r = step(st, q);
	if (r == DB_ROW) {
		webapp_row(q, out);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no web application %s", url);
	} else {
		rc = store_fail(st, "read web application");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_webapp_each(struct store *st,
    ps_err (*fn)(void *, const struct store_webapp *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT " WEBAPP_COLUMNS " FROM webapps "
	    "ORDER BY id");
	struct store_webapp w;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		webapp_row(q, &w);
		rc = fn(arg, &w);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list web applications");
	unprep(st, q);
	return rc;
}

/* ---- portal: users ---- */

void
store_user_cleanup(struct store_user *u)
{
	if (u->pwhash)
		xfree_secret(u->pwhash, strlen(u->pwhash));
	memset(u, 0, sizeof(*u));
}

ps_err
store_user_add(struct store *st, const struct store_user *u)
{
	struct db_stmt *q = prep(st, "INSERT INTO users (account, email, name, "
	    "pwhash, created, email_md5, email_sha256) VALUES (lower(?), "
	    "lower(?), ?, ?, ?, nullif(?, ''), nullif(?, ''))");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, u->account);
	bind_text(q, 2, u->email);
	bind_text(q, 3, u->name);
	bind_text(q, 4, u->pwhash);
	bind_int64(q, 5, time_now());
	bind_text(q, 6, u->email_md5);
	bind_text(q, 7, u->email_sha256);
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		ps_errf(rc, "a user with account %s or address %s already "
		    "exists", u->account, u->email);
	unprep(st, q);
	return rc;
}

ps_err
store_user_remove(struct store *st, const char *account)
{
	struct db_stmt *q = prep(st, "DELETE FROM users WHERE account = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, account);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no user %s", account);
	return rc;
}

#define USER_COLUMNS							\
	"account, email, name, pwhash, created, email_md5, "		\
	"email_sha256, coalesce(directory_id, ''), disabled"

static void
user_row(struct db_stmt *q, struct store_user *u)
{
	memset(u, 0, sizeof(*u));
	str_copy(u->account, col_text(q, 0), sizeof(u->account));
	str_copy(u->email, col_text(q, 1), sizeof(u->email));
	str_copy(u->name, col_text(q, 2), sizeof(u->name));
	u->pwhash = col_dup(q, 3);
	u->created = col_int64(q, 4);
	str_copy(u->email_md5, col_text(q, 5), sizeof(u->email_md5));
	str_copy(u->email_sha256, col_text(q, 6), sizeof(u->email_sha256));
	str_copy(u->directory_id, col_text(q, 7), sizeof(u->directory_id));
	u->disabled = col_int64(q, 8) != 0;
}

static ps_err
user_get_by(struct store *st, const char *column, const char *value,
    struct store_user *out)
{
	char *sql = xasprintf("SELECT " USER_COLUMNS " FROM users WHERE %s = "
	    "? AND disabled = 0", column);
	struct db_stmt *q = prep(st, sql);
	ps_err rc;
	enum db_step r;

	free(sql);
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, value);
	r = step(st, q);
	if (r == DB_ROW) {
		user_row(q, out);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no user %s", value);
	} else {
		rc = store_fail(st, "read user");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_user_get(struct store *st, const char *account, struct store_user *out)
{
	return user_get_by(st, "account", account, out);
}

ps_err
store_user_get_by_email(struct store *st, const char *email,
    struct store_user *out)
{
	return user_get_by(st, "email", email, out);
}

ps_err
store_user_get_by_hash(struct store *st, const char *hex,
    struct store_user *out)
{
	return user_get_by(st, strlen(hex) == 32 ? "email_md5" :
	    "email_sha256", hex, out);
}

ps_err
store_user_set_hashes(struct store *st, const char *account,
    const char *md5, const char *sha256)
{
	struct db_stmt *q = prep(st, "UPDATE users SET email_md5 = ?, "
	    "email_sha256 = ? WHERE account = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, md5);
	bind_text(q, 2, sha256);
	bind_text(q, 3, account);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_user_page(struct store *st, const char *after, int limit,
    ps_err (*fn)(void *, const struct store_user *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT " USER_COLUMNS " FROM users WHERE "
	    "account > ? AND disabled = 0 ORDER BY account LIMIT ?");
	struct store_user u;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, after);
	bind_int64(q, 2, limit);
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		user_row(q, &u);
		rc = fn(arg, &u);
		store_user_cleanup(&u);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list users");
	unprep(st, q);
	return rc;
}

ps_err
store_user_count(struct store *st, int64_t *n)
{
	struct db_stmt *q = prep(st, "SELECT count(*) FROM users WHERE "
	    "disabled = 0");
	ps_err rc = PS_ESTORE;

	if (q && step(st, q) == DB_ROW) {
		*n = col_int64(q, 0);
		rc = PS_OK;
	}
	unprep(st, q);
	return rc;
}

ps_err
store_user_get_by_prefix(struct store *st, const char *prefix,
    struct store_user *out)
{
	return user_get_by(st, "replace(account, '\\', '_')", prefix, out);
}

ps_err
store_user_set_password(struct store *st, const char *account,
    const char *pwhash)
{
	struct db_stmt *q = NULL;
	int changes = 0;
	ps_err rc;

	/* A new password ends the account's browser sessions with it. */
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "UPDATE users SET pwhash = ? WHERE account = ?")) ==
	    NULL)
		goto out;
	bind_text(q, 1, pwhash);
	bind_text(q, 2, account);
	if ((rc = step_done(st, q, &changes)) != PS_OK)
		goto out;
	if (changes == 0) {
		rc = ps_errf(PS_ENOTFOUND, "no user %s", account);
		goto out;
	}
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM sessions WHERE account = ?")) == NULL)
		goto out;
	bind_text(q, 1, account);
	rc = step_done(st, q, NULL);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

static ps_err
user_each_where(struct store *st, const char *sql,
    ps_err (*fn)(void *, const struct store_user *), void *arg)
{
	struct db_stmt *q = prep(st, sql);
	struct store_user u;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		user_row(q, &u);
		rc = fn(arg, &u);
		store_user_cleanup(&u);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list users");
	unprep(st, q);
	return rc;
}

ps_err
store_user_each(struct store *st,
    ps_err (*fn)(void *, const struct store_user *), void *arg)
{
	return user_each_where(st, "SELECT " USER_COLUMNS " FROM users WHERE "
	    "disabled = 0 ORDER BY account", fn, arg);
}

ps_err
store_user_directory_each(struct store *st,
    ps_err (*fn)(void *, const struct store_user *), void *arg)
{
	return user_each_where(st, "SELECT " USER_COLUMNS " FROM users ORDER "
	    "BY account", fn, arg);
}

/* The tables whose rows belong to a user, by account. */
static const char *const user_children[] = {
	"UPDATE thumbs SET account = lower(?1) WHERE account = ?2",
	"UPDATE sync_state SET account = lower(?1) WHERE account = ?2",
	"UPDATE sessions SET account = lower(?1) WHERE account = ?2",
};

ps_err
store_user_directory_put(struct store *st, const struct store_user *u,
    const char *was)
{
	char *moving = NULL;
	size_t i;
	ps_err rc;

	if (was == NULL) {
		rc = run_sql(st, "INSERT INTO users (account, email, name, "
		    "created, email_md5, email_sha256, directory_id, disabled) "
		    "VALUES (lower(?), lower(?), ?, ?, nullif(?, ''), "
		    "nullif(?, ''), ?, ?)", "tttittti", u->account, u->email,
		    u->name, time_now(), u->email_md5, u->email_sha256,
		    u->directory_id, (int64_t)u->disabled);
		goto out;
	}
	if (strcasecmp(was, u->account) == 0) {
		rc = run_sql(st, "UPDATE users SET email = lower(?), name = ?, "
		    "email_md5 = nullif(?, ''), email_sha256 = nullif(?, ''), "
		    "directory_id = ?, disabled = ? WHERE account = ?",
		    "tttttit", u->email, u->name, u->email_md5,
		    u->email_sha256, u->directory_id, (int64_t)u->disabled,
		    was);
		goto sessions;
	}
	/*
	 * A new account: a new row takes over the old one's photos, sync
	 * states and sessions, then the old row goes. The old row first
	 * gives up its directory id and its address, which are unique, for
	 * an address no user can have (".invalid" is reserved).
	 */
	moving = xasprintf("moving-%s@directory.invalid", u->directory_id);
	if ((rc = run_sql(st, "UPDATE users SET directory_id = NULL, email = "
	    "?, email_md5 = NULL, email_sha256 = NULL WHERE account = ?",
	    "tt", moving, was)) != PS_OK ||
	    (rc = run_sql(st, "INSERT INTO users (account, email, name, "
	    "pwhash, created, email_md5, email_sha256, directory_id, "
	    "disabled) SELECT lower(?1), lower(?2), ?3, pwhash, created, "
	    "nullif(?4, ''), nullif(?5, ''), ?6, ?7 FROM users WHERE "
	    "account = ?8", "ttttttit", u->account, u->email, u->name,
	    u->email_md5, u->email_sha256, u->directory_id,
	    (int64_t)u->disabled, was)) != PS_OK)
		goto out;
	for (i = 0; i < sizeof(user_children) / sizeof(user_children[0]);
	    i++)
		if ((rc = run_sql(st, user_children[i], "tt", u->account,
		    was)) != PS_OK)
			goto out;
	if ((rc = run_sql(st, "DELETE FROM users WHERE account = ?", "t",
	    was)) != PS_OK)
		goto out;
sessions:
	if (rc == PS_OK && u->disabled)
		rc = run_sql(st, "DELETE FROM sessions WHERE account = ?", "t",
		    u->account);
out:
	free(moving);
	if (rc == PS_EEXIST)
		ps_errf(rc, "the account %s or the address %s is another "
		    "user's", u->account, u->email);
	return rc;
}

/* ---- portal: issuers ---- */

void
store_issuer_cleanup(struct store_issuer *i)
{
	free(i->metadata_url);
	free(i->metadata);
	memset(i, 0, sizeof(*i));
}

ps_err
store_issuer_put(struct store *st, const struct store_issuer *i)
{
	struct db_stmt *q = prep(st, "INSERT INTO issuers (name, issuer, "
	    "realm, metadata_url, metadata, fetched) VALUES (?, ?, ?, ?, ?, ?) "
	    "ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, realm "
	    "= excluded.realm, metadata_url = excluded.metadata_url, metadata "
	    "= excluded.metadata, fetched = excluded.fetched");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, i->name);
	bind_text(q, 2, i->issuer);
	bind_text(q, 3, i->realm);
	bind_text(q, 4, i->metadata_url);
	bind_text(q, 5, i->metadata);
	bind_int64(q, 6, i->fetched);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_issuer_remove(struct store *st, const char *name)
{
	struct db_stmt *q = prep(st, "DELETE FROM issuers WHERE name = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no issuer %s", name);
	return rc;
}

static void
issuer_row(struct db_stmt *q, struct store_issuer *i)
{
	memset(i, 0, sizeof(*i));
	str_copy(i->name, col_text(q, 0), sizeof(i->name));
	str_copy(i->issuer, col_text(q, 1), sizeof(i->issuer));
	str_copy(i->realm, col_text(q, 2), sizeof(i->realm));
	i->metadata_url = col_dup(q, 3);
	i->metadata = col_dup(q, 4);
	i->fetched = col_int64(q, 5);
}

ps_err
store_issuer_get(struct store *st, const char *name, struct store_issuer *out)
{
	struct db_stmt *q = prep(st, "SELECT name, issuer, realm, "
	    "metadata_url, metadata, fetched FROM issuers WHERE name = ?");
	ps_err rc;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	r = step(st, q);
	if (r == DB_ROW) {
		issuer_row(q, out);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no issuer %s", name);
	} else {
		rc = store_fail(st, "read issuer");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_issuer_each(struct store *st,
    ps_err (*fn)(void *, const struct store_issuer *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT name, issuer, realm, "
	    "metadata_url, metadata, fetched FROM issuers ORDER BY name");
	struct store_issuer i;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		issuer_row(q, &i);
		rc = fn(arg, &i);
		store_issuer_cleanup(&i);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "list issuers");
	unprep(st, q);
	return rc;
}

/* ---- portal: thumbnails ---- */

void
store_thumb_cleanup(struct store_thumb *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

ps_err
store_thumb_put(struct store *st, int64_t webapp, const char *account,
    const char *source, const char *etag,
    const unsigned char *const data[4], const size_t len[4])
{
	struct db_stmt *q = prep(st, "INSERT INTO thumbs (webapp, account, "
	    "source, etag, updated, s, m, l, hr) VALUES (?, (SELECT account "
	    "FROM users WHERE account = ?), ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
	    "(webapp, account) DO UPDATE SET source = excluded.source, etag = "
	    "excluded.etag, updated = excluded.updated, s = excluded.s, m = "
	    "excluded.m, l = excluded.l, hr = excluded.hr");
	ps_err rc;
	int i;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	bind_text(q, 3, source);
	bind_text(q, 4, etag);
	bind_int64(q, 5, time_now());
	for (i = 0; i < 3; i++)
		bind_blob(q, 6 + i, data[i], len[i]);
	if (data[STORE_HR])
		bind_blob(q, 9, data[STORE_HR], len[STORE_HR]);
	else
		bind_text(q, 9, NULL);
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		rc = ps_errf(PS_ENOTFOUND, "no user %s", account);
	unprep(st, q);
	return rc;
}

ps_err
store_thumb_get(struct store *st, int64_t webapp, const char *account,
    enum store_thumb_size size, struct store_thumb *out)
{
	static const char *const sql[] = {
		"SELECT etag, source, updated, s, hidden FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, m, hidden FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, l, hidden FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, hr, hidden FROM thumbs WHERE webapp = ? "
		"AND account = ? AND hr IS NOT NULL",
	};
	struct db_stmt *q = prep(st, sql[size]);
	ps_err rc;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		str_copy(out->source, col_text(q, 1), sizeof(out->source));
		out->updated = col_int64(q, 2);
		out->data = col_blob_dup(q, 3, &out->len);
		out->hidden = col_int64(q, 4) != 0;
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no photo", account);
	} else {
		rc = store_fail(st, "read photo");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_thumb_hide(struct store *st, int64_t webapp, const char *account,
    bool hidden)
{
	/* Unchanged rows are not written: no feed row, no dropped index. */
	return run_sql(st, "UPDATE thumbs SET hidden = ?1 WHERE webapp = ?2 "
	    "AND account = ?3 AND hidden <> ?1", "iit", (int64_t)hidden,
	    webapp, account);
}

ps_err
store_thumb_etag(struct store *st, int64_t webapp, const char *account,
    char *etag)
{
	struct db_stmt *q = prep(st, "SELECT etag FROM thumbs WHERE webapp = ? "
	    "AND account = ?");
	ps_err rc;
	enum db_step r;

	etag[0] = '\0';
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(etag, col_text(q, 0), 64);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = PS_ENOTFOUND;
	} else {
		rc = store_fail(st, "read photo");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_thumb_remove(struct store *st, int64_t webapp, const char *account)
{
	struct db_stmt *q = prep(st, "DELETE FROM thumbs WHERE webapp = ? AND "
	    "account = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "%s has no photo", account);
	return rc;
}

/* ---- portal: sync state ---- */

ps_err
store_sync_get(struct store *st, int64_t webapp, const char *account,
    struct store_sync *out)
{
	struct db_stmt *q = prep(st, "SELECT last_success, last_error, reason, "
	    "master_etag, has_mailbox, retry_after FROM sync_state WHERE "
	    "webapp = ? AND account = ?");
	ps_err rc = PS_OK;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	out->has_mailbox = -1;
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = step(st, q);
	if (r == DB_ROW) {
		out->last_success = col_int64(q, 0);
		out->last_error = col_int64(q, 1);
		str_copy(out->reason, col_text(q, 2), sizeof(out->reason));
		str_copy(out->master_etag, col_text(q, 3),
		    sizeof(out->master_etag));
		out->has_mailbox = (int)col_int64(q, 4);
		out->retry_after = col_int64(q, 5);
	} else if (r != DB_DONE) {
		rc = store_fail(st, "read sync state");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_sync_put(struct store *st, int64_t webapp, const char *account,
    const struct store_sync *s)
{
	struct db_stmt *q = prep(st, "INSERT INTO sync_state (webapp, "
	    "account, last_success, last_error, reason, master_etag, "
	    "has_mailbox, retry_after) VALUES (?, (SELECT account FROM users "
	    "WHERE account = ?), ?, ?, ?, ?, ?, ?) ON CONFLICT (webapp, "
	    "account) DO UPDATE SET last_success = excluded.last_success, "
	    "last_error = excluded.last_error, reason = excluded.reason, "
	    "master_etag = excluded.master_etag, has_mailbox = "
	    "excluded.has_mailbox, retry_after = excluded.retry_after");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	bind_int64(q, 3, s->last_success);
	bind_int64(q, 4, s->last_error);
	bind_text(q, 5, s->reason);
	bind_text(q, 6, s->master_etag);
	bind_int64(q, 7, s->has_mailbox);
	bind_int64(q, 8, s->retry_after);
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		rc = ps_errf(PS_ENOTFOUND, "no user %s", account);
	unprep(st, q);
	return rc;
}

ps_err
store_sync_each(struct store *st, int64_t webapp,
    ps_err (*fn)(void *, const char *, const struct store_sync *),
    void *arg)
{
	struct db_stmt *q = prep(st, "SELECT account, last_success, "
	    "last_error, reason, master_etag, has_mailbox, retry_after FROM "
	    "sync_state WHERE webapp = ?");
	struct store_sync sy;
	ps_err rc = PS_OK;
	enum db_step r;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, webapp);
	while (rc == PS_OK && (r = step(st, q)) == DB_ROW) {
		memset(&sy, 0, sizeof(sy));
		sy.last_success = col_int64(q, 1);
		sy.last_error = col_int64(q, 2);
		str_copy(sy.reason, col_text(q, 3), sizeof(sy.reason));
		str_copy(sy.master_etag, col_text(q, 4),
		    sizeof(sy.master_etag));
		sy.has_mailbox = (int)col_int64(q, 5);
		sy.retry_after = col_int64(q, 6);
		rc = fn(arg, col_text(q, 0), &sy);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(st, "read sync states");
	unprep(st, q);
	return rc;
}

/* ---- portal: sessions ---- */

ps_err
store_session_put(struct store *st, const char *key,
    const struct store_session *s)
{
	struct db_stmt *q = prep(st, "INSERT INTO sessions (key, account, "
	    "webapp, csrf, expires) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) "
	    "DO UPDATE SET account = excluded.account, webapp = "
	    "excluded.webapp, csrf = excluded.csrf, expires = "
	    "excluded.expires");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_text(q, 2, s->account);
	bind_int64(q, 3, s->webapp);
	bind_text(q, 4, s->csrf);
	bind_int64(q, 5, s->expires);
	rc = step_done(st, q, NULL);
	/* The key replaces: only the user or web application can be amiss. */
	if (rc == PS_EEXIST)
		rc = ps_errf(PS_ENOTFOUND, "no user %s in web application "
		    "%lld", s->account, (long long)s->webapp);
	unprep(st, q);
	return rc;
}

ps_err
store_session_get(struct store *st, const char *key,
    struct store_session *out)
{
	struct db_stmt *q = prep(st, "SELECT account, webapp, csrf, expires "
	    "FROM sessions WHERE key = ? AND expires > ?");
	ps_err rc;
	enum db_step r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_int64(q, 2, time_now());
	r = step(st, q);
	if (r == DB_ROW) {
		str_copy(out->account, col_text(q, 0), sizeof(out->account));
		out->webapp = col_int64(q, 1);
		str_copy(out->csrf, col_text(q, 2), sizeof(out->csrf));
		out->expires = col_int64(q, 3);
		rc = PS_OK;
	} else if (r == DB_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "no such session");
	} else {
		rc = store_fail(st, "read session");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_session_remove(struct store *st, const char *key)
{
	struct db_stmt *q = prep(st, "DELETE FROM sessions WHERE key = ? OR "
	    "expires <= ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_int64(q, 2, time_now());
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

/* ---- copying a store (migrating to PostgreSQL) ---- */

/*
 * Each role's tables, parents before the rows that refer to them, with
 * their columns; `id`: the column that hands out ids, if any. The feed's
 * own tables are not copied: the copy's triggers write its feed.
 */
struct copy_table {
	const char	*name;
	const char	*columns;
	const char	*id;
};

static const struct copy_table master_tables[] = {
	{ "config", "key, value", NULL },
	{ "mailboxes", "email, name, pwhash, created, directory_id, disabled, "
	    "photo_hidden", NULL },
	{ "photos", "email, etag, side, updated", NULL },
	{ "photo_sizes", "email, code, side, data", NULL },
	{ "partners", "name, issuer, metadata_url, metadata, fetched, added, "
	    "notify, ca_file", NULL },
	{ "sessions", "key, email, csrf, created, expires", NULL },
	{ "previews", "email, id, side, created, expires", NULL },
	{ "preview_sizes", "email, code, side, data", NULL },
	{ "outbox", "id, partner, email, created, attempts, next_attempt, "
	    "last_error", "id" },
	{ "directory_outbox", "id, email, created, attempts, next_attempt, "
	    "last_error", "id" },
};

static const struct copy_table portal_tables[] = {
	{ "config", "key, value", NULL },
	{ "webapps", WEBAPP_COLUMNS, "id" },
	{ "users", "account, email, name, pwhash, created, email_md5, "
	    "email_sha256, directory_id, disabled", NULL },
	{ "issuers", "name, issuer, realm, metadata_url, metadata, fetched",
	    NULL },
	{ "thumbs", "webapp, account, source, etag, updated, s, m, l, hr, "
	    "hidden",
	    NULL },
	{ "sync_state", "webapp, account, last_success, last_error, reason, "
	    "master_etag, has_mailbox, retry_after", NULL },
	{ "sessions", "key, account, webapp, csrf, expires", NULL },
};

/* How many columns a column list names. */
static int
column_count(const char *columns)
{
	int n = 1;

	for (; *columns; columns++)
		if (*columns == ',')
			n++;
	return n;
}

/*
 * Adds the row's digest to *sum: FNV-1a over each value with its type.
 * A sum, so that the order the rows come in does not matter (the two
 * backends may order a table without ORDER BY differently).
 */
static void
row_digest(struct db_stmt *q, int ncols, uint64_t *sum)
{
	uint64_t h = 14695981039346656037u;
	const unsigned char *p;
	enum db_type t;
	char num[24];
	size_t len, k;
	int i;

	for (i = 0; i < ncols; i++) {
		t = q->drv->col_type(q, i);
		h = (h ^ (uint64_t)t) * 1099511628211u;
		if (t == DB_NULL)
			continue;
		if (t == DB_INT) {
			len = (size_t)snprintf(num, sizeof(num), "%lld",
			    (long long)col_int64(q, i));
			p = (const unsigned char *)num;
		} else {
			p = q->drv->col_blob(q, i, &len);
		}
		for (k = 0; k < len; k++)
			h = (h ^ p[k]) * 1099511628211u;
		h = (h ^ 0xff) * 1099511628211u;
	}
	*sum += h;
}

/* The rows of `t` in `st`: how many, and the sum of their digests. */
static ps_err
table_digest(struct store *st, const struct copy_table *t, int64_t *rows,
    uint64_t *sum)
{
	char *sql = xasprintf("SELECT %s FROM %s", t->columns, t->name);
	struct db_stmt *q = prep(st, sql);
	int ncols = column_count(t->columns);
	enum db_step r = DB_DONE;
	ps_err rc = PS_OK;

	free(sql);
	*rows = 0;
	*sum = 0;
	if (q == NULL)
		return PS_ESTORE;
	while ((r = step(st, q)) == DB_ROW) {
		row_digest(q, ncols, sum);
		(*rows)++;
	}
	if (r != DB_DONE)
		rc = store_fail(st, "read a table");
	unprep(st, q);
	return rc;
}

/* Copies the rows of `t`, reporting progress every so many. */
static ps_err
table_copy(struct store *from, struct store *to, const struct copy_table *t,
    int64_t total, void (*progress)(void *, const char *, int64_t, int64_t),
    void *arg)
{
	int ncols = column_count(t->columns), i;
	char *sql = xasprintf("SELECT %s FROM %s", t->columns, t->name);
	struct db_stmt *q = prep(from, sql), *ins = NULL;
	char *marks = NULL;
	size_t mlen = 0;
	enum db_step r = DB_DONE;
	int64_t done = 0;
	size_t len;
	const void *p;
	ps_err rc = PS_ESTORE;

	free(sql);
	if (q == NULL)
		goto out;
	marks = xcalloc(1, (size_t)ncols * 3 + 1);
	for (i = 0; i < ncols; i++)
		mlen += (size_t)sprintf(marks + mlen, "%s?", i ? ", " : "");
	sql = xasprintf("INSERT INTO %s (%s) VALUES (%s)", t->name,
	    t->columns, marks);
	ins = prep(to, sql);
	free(sql);
	if (ins == NULL)
		goto out;
	rc = PS_OK;
	while (rc == PS_OK && (r = step(from, q)) == DB_ROW) {
		to->drv->reset(ins);
		for (i = 0; i < ncols; i++) {
			switch (q->drv->col_type(q, i)) {
			case DB_NULL:
				bind_text(ins, i + 1, NULL);
				break;
			case DB_INT:
				bind_int64(ins, i + 1, col_int64(q, i));
				break;
			case DB_TEXT:
				bind_text(ins, i + 1, col_text(q, i));
				break;
			case DB_BLOB:
				p = q->drv->col_blob(q, i, &len);
				bind_blob(ins, i + 1, p, len);
				break;
			}
		}
		if ((rc = step_done(to, ins, NULL)) == PS_EEXIST)
			rc = ps_errf(PS_ESTORE, "a row of %s was refused by "
			    "the copy (%s)", t->name, to->drv->errmsg(to));
		if (rc == PS_OK && ++done % 500 == 0 && progress)
			progress(arg, t->name, done, total);
	}
	if (rc == PS_OK && r != DB_DONE)
		rc = store_fail(from, "read a table");
	if (rc == PS_OK && progress)
		progress(arg, t->name, done, total);
	if (rc == PS_OK && t->id)
		rc = to->drv->ids_follow(to, t->name, t->id);
out:
	free(marks);
	unprep(to, ins);
	unprep(from, q);
	return rc;
}

ps_err
store_copy(struct store *from, struct store *to,
    void (*progress)(void *, const char *table, int64_t done,
    int64_t total), void *arg)
{
	const struct copy_table *tables = from->role == STORE_MASTER ?
	    master_tables : portal_tables;
	size_t n = from->role == STORE_MASTER ?
	    sizeof(master_tables) / sizeof(master_tables[0]) :
	    sizeof(portal_tables) / sizeof(portal_tables[0]), i;
	int64_t rows, rows2, *totals = xcalloc(n, sizeof(*totals));
	uint64_t sum, sum2;
	ps_err rc = PS_OK;

	if (from->role != to->role) {
		rc = ps_errf(PS_EINVAL, "cannot copy a %s's store into a %s's",
		    from->role == STORE_MASTER ? "master" : "portal",
		    to->role == STORE_MASTER ? "master" : "portal");
		goto out;
	}
	for (i = 0; i < n && rc == PS_OK; i++) {
		if ((rc = table_digest(to, &tables[i], &rows, &sum)) != PS_OK)
			goto out;
		if (rows != 0)
			rc = ps_errf(PS_EEXIST, "%s already holds a store with "
			    "rows (table %s): the copy goes into an empty one",
			    to->where, tables[i].name);
		else if ((rc = table_digest(from, &tables[i], &totals[i],
		    &sum)) != PS_OK)
			goto out;
	}
	if (rc != PS_OK)
		goto out;
	/* One transaction: a copy that fails leaves the target empty. */
	if ((rc = store_begin(to)) != PS_OK)
		goto out;
	for (i = 0; i < n && rc == PS_OK; i++)
		rc = table_copy(from, to, &tables[i], totals[i], progress, arg);
	/* The check, before the commit: every table the same on both. */
	for (i = 0; i < n && rc == PS_OK; i++) {
		if ((rc = table_digest(from, &tables[i], &rows, &sum)) !=
		    PS_OK ||
		    (rc = table_digest(to, &tables[i], &rows2, &sum2)) !=
		    PS_OK)
			break;
		if (rows != rows2 || sum != sum2)
			rc = ps_errf(PS_ESTORE, "the copy of table %s differs "
			    "from the source (%lld rows, %lld copied): "
			    "nothing was kept", tables[i].name,
			    (long long)rows, (long long)rows2);
	}
	rc = tx_finish(to, rc);
out:
	free(totals);
	return rc;
}

ps_err
store_move(struct store *from, const char *dir, const char *uri,
    const char *password_file,
    void (*progress)(void *, const char *table, int64_t done,
    int64_t total), void *arg)
{
	char *addr = xasprintf("%s/%s", dir, STORE_ADDRESS_FILE), *pw = NULL;
	struct store *to = NULL;
	ps_err rc;

	if (access(addr, F_OK) == 0) {
		rc = ps_errf(PS_EINVAL, "%s's store is on PostgreSQL already "
		    "(%s)", dir, addr);
		goto out;
	}
	if ((rc = store_open_given(uri, password_file, from->role, &to,
	    &pw)) != PS_OK ||
	    (rc = store_copy(from, to, progress, arg)) != PS_OK)
		goto out;
	rc = store_remember(dir, uri, pw);
out:
	store_close(to);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(addr);
	return rc;
}

/* ---- leases: work shared between nodes ---- */

int64_t
store_lease_holder(void)
{
	return store_feed_origin();
}

/*
 * The row is written when there is none, or the WHERE of the update
 * holds for the one there (expired, or ours); RETURNING gives a row only
 * then. On PostgreSQL a second taker of a name being inserted waits for
 * the first's commit, then sees its row: one of them gets the lease.
 */
ps_err
store_lease_take(struct store *st, const char *name, int64_t holder,
    int64_t now, int64_t expires, bool *taken)
{
	struct db_stmt *q = prep(st, "INSERT INTO leases (name, holder, "
	    "expires) VALUES (?1, ?2, ?4) ON CONFLICT (name) DO UPDATE SET "
	    "holder = excluded.holder, expires = excluded.expires WHERE "
	    "leases.expires <= ?3 OR leases.holder = excluded.holder "
	    "RETURNING holder");
	ps_err rc = PS_OK;
	enum db_step r;

	*taken = false;
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	bind_int64(q, 2, holder);
	bind_int64(q, 3, now);
	bind_int64(q, 4, expires);
	r = step(st, q);
	if (r == DB_ROW)
		*taken = col_int64(q, 0) == holder;
	else if (r != DB_DONE)
		rc = store_fail(st, "take lease");
	unprep(st, q);
	return rc;
}

static int
lease_ask_cmp(const void *a, const void *b)
{
	const struct store_lease_ask *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/*
 * The one order every process takes a batch's rows in is the names'
 * (strcmp): of two batches sharing rows, the one that has the first
 * shared row takes the others too before the second gets any of them.
 */
ps_err
store_lease_take_each(struct store *st, struct store_lease_ask *asks,
    size_t n, int64_t holder)
{
	struct store_lease_ask **order;
	ps_err rc = PS_OK;
	size_t i;

	for (i = 0; i < n; i++)
		asks[i].taken = false;
	if (n == 0)
		return PS_OK;
	order = xcalloc(n, sizeof(*order));
	for (i = 0; i < n; i++)
		order[i] = &asks[i];
	qsort(order, n, sizeof(*order), lease_ask_cmp);
	for (i = 0; i < n && rc == PS_OK; i++)
		rc = store_lease_take(st, order[i]->name, holder,
		    order[i]->now, order[i]->expires, &order[i]->taken);
	free(order);
	return rc;
}

ps_err
store_lease_renew(struct store *st, const char *name, int64_t holder,
    int64_t expires, bool *held)
{
	struct db_stmt *q = prep(st, "UPDATE leases SET expires = ? WHERE "
	    "name = ? AND holder = ?");
	int changes = 0;
	ps_err rc;

	*held = false;
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, expires);
	bind_text(q, 2, name);
	bind_int64(q, 3, holder);
	if ((rc = step_done(st, q, &changes)) == PS_OK)
		*held = changes > 0;
	unprep(st, q);
	return rc;
}

ps_err
store_lease_release(struct store *st, const char *name, int64_t holder)
{
	struct db_stmt *q = prep(st, "DELETE FROM leases WHERE name = ? AND "
	    "holder = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	bind_int64(q, 2, holder);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

void
store_outbox_lease_name(int64_t id, char *name, size_t n)
{
	snprintf(name, n, "outbox/%lld", (long long)id);
}

/* The candidates of store_outbox_claim(), read before claiming. */
struct outbox_rows {
	struct store_outbox	*rows;
	int			 n;
};

/*
 * Whether row `id` of a queue (`sql`: a select of it by id, ?1, due at
 * ?2) is still queued and due at `now`.
 */
static ps_err
queue_row_due(struct store *st, const char *sql, const char *what,
    int64_t id, int64_t now, bool *due)
{
	struct db_stmt *q = prep(st, sql);
	enum db_step r;
	ps_err rc = PS_OK;

	*due = false;
	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, id);
	bind_int64(q, 2, now);
	r = step(st, q);
	if (r == DB_ROW)
		*due = true;
	else if (r != DB_DONE)
		rc = store_fail(st, what);
	unprep(st, q);
	return rc;
}

/* Whether notice `id` is still queued and due at `now`. */
static ps_err
outbox_still_due(struct store *st, int64_t id, int64_t now, bool *due)
{
	return queue_row_due(st, "SELECT 1 FROM outbox WHERE id = ?1 AND "
	    "next_attempt <= ?2", "read outbox", id, now, due);
}

/*
 * The candidates are read first (no other statement runs while they
 * are stepped); each is then taken with its lease, one statement each,
 * and read again under it: a node that delivered a notice deletes it (or
 * moves its next attempt) before it releases the lease, so a notice
 * claimed after that release is seen gone.
 */
ps_err
store_outbox_claim(struct store *st, int64_t holder, int64_t now,
    int64_t expires, int limit,
    ps_err (*fn)(void *, const struct store_outbox *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT id, partner, email, created, "
	    "attempts, last_error FROM outbox WHERE next_attempt <= ?1 AND "
	    "NOT EXISTS (SELECT 1 FROM leases WHERE leases.name = 'outbox/' "
	    "|| outbox.id AND leases.expires > ?1 AND leases.holder <> ?2) "
	    "ORDER BY next_attempt, id LIMIT ?3");
	struct outbox_rows c = { 0 };
	char name[32];
	bool taken, due;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;
	int i;

	if (q == NULL)
		return PS_ESTORE;
	c.rows = xcalloc(limit > 0 ? (size_t)limit : 1, sizeof(*c.rows));
	bind_int64(q, 1, now);
	bind_int64(q, 2, holder);
	bind_int64(q, 3, limit);
	while (c.n < limit && (r = step(st, q)) == DB_ROW) {
		struct store_outbox *o = &c.rows[c.n++];

		o->id = col_int64(q, 0);
		str_copy(o->partner, col_text(q, 1), sizeof(o->partner));
		str_copy(o->email, col_text(q, 2), sizeof(o->email));
		o->created = col_int64(q, 3);
		o->attempts = (int)col_int64(q, 4);
		str_copy(o->last_error, col_text(q, 5), sizeof(o->last_error));
	}
	if (r != DB_DONE && r != DB_ROW)
		rc = store_fail(st, "read outbox");
	unprep(st, q);
	for (i = 0; rc == PS_OK && i < c.n; i++) {
		store_outbox_lease_name(c.rows[i].id, name, sizeof(name));
		if ((rc = store_lease_take(st, name, holder, now, expires,
		    &taken)) != PS_OK || !taken)
			continue;
		if ((rc = outbox_still_due(st, c.rows[i].id, now, &due)) !=
		    PS_OK)
			break;
		if (!due)
			rc = store_lease_release(st, name, holder);
		else
			rc = fn(arg, &c.rows[i]);
	}
	free(c.rows);
	return rc;
}

/* ---- master: photos to the directory's entries ---- */

void
store_directory_outbox_lease_name(const char *email, char *name, size_t n)
{
	snprintf(name, n, "directory-photo/%s", email);
}

/* The candidates of store_directory_outbox_claim(), read first. */
struct directory_outbox_rows {
	struct store_directory_outbox	*rows;
	int				 n;
};

/* Whether write `id` is still queued and due at `now`. */
static ps_err
directory_outbox_still_due(struct store *st, int64_t id, int64_t now,
    bool *due)
{
	return queue_row_due(st, "SELECT 1 FROM directory_outbox WHERE id = "
	    "?1 AND next_attempt <= ?2", "read the directory outbox", id, now,
	    due);
}

/*
 * As store_outbox_claim(), with the lease of the address rather than of
 * the row: a write queued again while an older one of the same mailbox
 * is being delivered waits for that delivery's lease.
 */
ps_err
store_directory_outbox_claim(struct store *st, int64_t holder, int64_t now,
    int64_t expires, int limit,
    ps_err (*fn)(void *, const struct store_directory_outbox *), void *arg)
{
	struct db_stmt *q = prep(st, "SELECT o.id, o.email, "
	    "coalesce(m.directory_id, ''), m.disabled, o.created, o.attempts, "
	    "o.last_error FROM directory_outbox o JOIN mailboxes m ON m.email "
	    "= o.email WHERE o.next_attempt <= ?1 AND NOT EXISTS (SELECT 1 "
	    "FROM leases WHERE leases.name = 'directory-photo/' || o.email "
	    "AND leases.expires > ?1 AND leases.holder <> ?2) ORDER BY "
	    "o.next_attempt, o.id LIMIT ?3");
	struct directory_outbox_rows c = { 0 };
	char name[300];
	bool taken, due;
	ps_err rc = PS_OK;
	enum db_step r = DB_DONE;
	int i;

	if (q == NULL)
		return PS_ESTORE;
	c.rows = xcalloc(limit > 0 ? (size_t)limit : 1, sizeof(*c.rows));
	bind_int64(q, 1, now);
	bind_int64(q, 2, holder);
	bind_int64(q, 3, limit);
	while (c.n < limit && (r = step(st, q)) == DB_ROW) {
		struct store_directory_outbox *o = &c.rows[c.n++];

		o->id = col_int64(q, 0);
		str_copy(o->email, col_text(q, 1), sizeof(o->email));
		str_copy(o->directory_id, col_text(q, 2),
		    sizeof(o->directory_id));
		o->disabled = col_int64(q, 3) != 0;
		o->created = col_int64(q, 4);
		o->attempts = (int)col_int64(q, 5);
		str_copy(o->last_error, col_text(q, 6), sizeof(o->last_error));
	}
	if (r != DB_DONE && r != DB_ROW)
		rc = store_fail(st, "read the directory outbox");
	unprep(st, q);
	for (i = 0; rc == PS_OK && i < c.n; i++) {
		store_directory_outbox_lease_name(c.rows[i].email, name,
		    sizeof(name));
		if ((rc = store_lease_take(st, name, holder, now, expires,
		    &taken)) != PS_OK || !taken)
			continue;
		if ((rc = directory_outbox_still_due(st, c.rows[i].id, now,
		    &due)) != PS_OK)
			break;
		if (!due)
			rc = store_lease_release(st, name, holder);
		else
			rc = fn(arg, &c.rows[i]);
	}
	free(c.rows);
	return rc;
}

ps_err
store_directory_outbox_done(struct store *st, int64_t id)
{
	return run_sql(st, "DELETE FROM directory_outbox WHERE id = ?1", "i",
	    id);
}

ps_err
store_directory_outbox_retry(struct store *st, int64_t id,
    int64_t next_attempt, const char *error)
{
	return run_sql(st, "UPDATE directory_outbox SET attempts = attempts "
	    "+ 1, next_attempt = ?1, last_error = ?2 WHERE id = ?3", "iti",
	    next_attempt, error, id);
}

int64_t
store_directory_outbox_pending(struct store *st)
{
	return count_rows(st, "SELECT count(*) FROM directory_outbox");
}

/* ---- sign-in failure counts shared between nodes ---- */

/* Reads the kept key into `key`; PS_ENOTFOUND when none is kept. */
static ps_err
signin_key_read(struct store *st, unsigned char key[STORE_SIGNIN_KEY_BYTES])
{
	struct db_stmt *q = prep(st, "SELECT key FROM signin_key WHERE "
	    "id = 1");
	const char *hex;
	ps_err rc = PS_ENOTFOUND;
	enum db_step r;
	size_t i;
	int hi, lo;

	if (q == NULL)
		return PS_ESTORE;
	r = step(st, q);
	if (r == DB_ROW) {
		hex = col_text(q, 0);
		rc = strlen(hex) == 2 * STORE_SIGNIN_KEY_BYTES ? PS_OK :
		    ps_errf(PS_ESTORE, "the store's sign-in key is not %d hex "
		    "digits", 2 * STORE_SIGNIN_KEY_BYTES);
		for (i = 0; rc == PS_OK && i < STORE_SIGNIN_KEY_BYTES; i++) {
			hi = hex_digit((unsigned char)hex[2 * i]);
			lo = hex_digit((unsigned char)hex[2 * i + 1]);
			if (hi < 0 || lo < 0)
				rc = ps_errf(PS_ESTORE, "the store's sign-in "
				    "key is not hex");
			else
				key[i] = (unsigned char)(hi << 4 | lo);
		}
	} else if (r != DB_DONE) {
		rc = store_fail(st, "read the sign-in key");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_signin_key(struct store *st, unsigned char key[STORE_SIGNIN_KEY_BYTES])
{
	unsigned char made[STORE_SIGNIN_KEY_BYTES];
	char hex[2 * STORE_SIGNIN_KEY_BYTES + 1];
	struct db_stmt *q;
	ps_err rc;

	if ((rc = signin_key_read(st, key)) != PS_ENOTFOUND)
		return rc;
	/* None yet: ours, unless another process keeps one first. */
	rand_bytes(made, sizeof(made));
	hex_encode(made, sizeof(made), hex);
	explicit_bzero(made, sizeof(made));
	if ((q = prep(st, "INSERT INTO signin_key (id, key) VALUES (1, ?) "
	    "ON CONFLICT (id) DO NOTHING")) == NULL) {
		rc = PS_ESTORE;
		goto out;
	}
	bind_text(q, 1, hex);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	if (rc == PS_OK && (rc = signin_key_read(st, key)) == PS_ENOTFOUND)
		rc = ps_errf(PS_ESTORE, "the sign-in key was not kept");
out:
	explicit_bzero(hex, sizeof(hex));
	return rc;
}

ps_err
store_signin_add(struct store *st, const char *name, int64_t failures,
    int64_t now, int64_t forget_before, int64_t *total)
{
	struct db_stmt *q = prep(st, "INSERT INTO signin_counts (name, "
	    "failures, last) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO "
	    "UPDATE SET failures = CASE WHEN signin_counts.last <= ?4 THEN "
	    "excluded.failures ELSE signin_counts.failures + "
	    "excluded.failures END, last = CASE WHEN signin_counts.last > "
	    "excluded.last THEN signin_counts.last ELSE excluded.last END "
	    "RETURNING failures");
	ps_err rc = PS_OK;

	*total = 0;
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	bind_int64(q, 2, failures);
	bind_int64(q, 3, now);
	bind_int64(q, 4, forget_before);
	if (step(st, q) == DB_ROW)
		*total = col_int64(q, 0);
	else
		rc = store_fail(st, "count a sign-in failure");
	unprep(st, q);
	return rc;
}

ps_err
store_signin_clear(struct store *st, const char *name, int64_t now)
{
	struct db_stmt *q = prep(st, "UPDATE signin_counts SET failures = 0, "
	    "last = ? WHERE name = ? AND failures > 0");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, now);
	bind_text(q, 2, name);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_signin_get(struct store *st, const char *name, int64_t *failures,
    int64_t *last)
{
	struct db_stmt *q = prep(st, "SELECT failures, last FROM "
	    "signin_counts WHERE name = ?");
	ps_err rc = PS_ENOTFOUND;
	enum db_step r;

	*failures = *last = 0;
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	r = step(st, q);
	if (r == DB_ROW) {
		*failures = col_int64(q, 0);
		*last = col_int64(q, 1);
		rc = PS_OK;
	} else if (r != DB_DONE) {
		rc = store_fail(st, "read a sign-in count");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_signin_prune(struct store *st, int64_t before)
{
	struct db_stmt *q = prep(st, "DELETE FROM signin_counts WHERE "
	    "last <= ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_int64(q, 1, before);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}
