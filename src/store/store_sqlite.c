/*
 * The SQLite backend of the store: the only user of SQLite.
 *
 * WAL mode with a busy timeout, so admin commands and a running server can
 * share one file. Migrations are numbered SQL scripts per role; the
 * database's user_version records how many were applied.
 *
 * The change feed (store.h) is written by triggers the migrations install
 * on every table a server may cache. They call two functions this file
 * registers on each connection: ps_feed_origin() (this process) and
 * ps_feed_tx() (this connection's transaction, so that one transaction
 * writes one row per changed object however many rows of it changed). A
 * tool that does not register them (the sqlite3 shell) can read the store
 * but not change it, so no change escapes the feed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store.h"

/* The counter is shared between processes: only a lock-free atomic works. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be "
    "lock-free");

/* A WAL this long is copied back into the database (SQLite's default). */
#define WAL_CHECKPOINT_FRAMES	1000

/* The mapped "-feed" file: its first 8 bytes are the counter. */
struct store_feed_watch {
	_Atomic uint64_t	*counter;
	size_t			 len;
};

/* Statements kept compiled per connection (a power of two). */
#define STMT_CACHE	128

struct stmt_slot {
	char		*sql;	/* owned; NULL: the slot is empty */
	sqlite3_stmt	*q;
	bool		 busy;	/* given by prep(), not yet back */
};

struct store {
	sqlite3			*db;
	enum store_role		 role;
	char			*path;
	int64_t			 tx;	/* this connection's transaction */
	struct store_feed_watch	*bump;	/* NULL: commits are not announced */
	struct stmt_slot	 stmts[STMT_CACHE];
};

/* ---- migrations ---- */

/*
 * The change feed's tables, shared by both roles' migrations. Frozen once
 * released, like every migration: a change is a new migration.
 *
 *   feed         one row per changed object: seq (AUTOINCREMENT, so a
 *                number is never used twice, even after pruning), kind
 *                and key (store.h), origin (the process), tx (its
 *                transaction) and at (seconds since 1970);
 *   feed_pruned  one row: the highest seq store_feed_prune() deleted;
 *                no trigger watches it, so pruning writes no feed rows;
 *   feed_add     a view the tables' triggers insert (kind, key) into,
 *                one row per statement; its trigger fills in the rest,
 *                and leaves the row out when it is the same as the
 *                newest row of the same transaction (a photo's nine
 *                sizes and the photo itself: one row). RAISE(IGNORE)
 *                ends only that one-row statement. Looking at the
 *                newest row alone is what keeps it cheap (an index or a
 *                longer look back cost several times more per row); a
 *                transaction that comes back to a key later writes it
 *                twice, which costs a reader nothing.
 */
#define FEED_SCHEMA							\
	"CREATE TABLE feed ("						\
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"			\
	"  kind TEXT NOT NULL,"						\
	"  key TEXT NOT NULL,"						\
	"  origin INTEGER NOT NULL,"					\
	"  tx INTEGER NOT NULL,"					\
	"  at INTEGER NOT NULL);"					\
	"CREATE TABLE feed_pruned (pruned INTEGER NOT NULL);"		\
	"INSERT INTO feed_pruned (pruned) VALUES (0);"			\
	"CREATE VIEW feed_add (kind, key) AS"				\
	"  SELECT kind, key FROM feed WHERE 0;"				\
	"CREATE TRIGGER feed_add_row INSTEAD OF INSERT ON feed_add "	\
	"BEGIN"								\
	"  SELECT RAISE(IGNORE) WHERE NEW.key IS NULL OR EXISTS"	\
	"    (SELECT 1 FROM feed WHERE"					\
	"    seq = (SELECT max(seq) FROM feed) AND"			\
	"    tx = ps_feed_tx() AND origin = ps_feed_origin() AND"	\
	"    kind = NEW.kind AND key = CAST(NEW.key AS TEXT));"		\
	"  INSERT INTO feed (kind, key, origin, tx, at) VALUES"		\
	"    (NEW.kind, CAST(NEW.key AS TEXT), ps_feed_origin(),"	\
	"    ps_feed_tx(), CAST(strftime('%s', 'now') AS INTEGER));"	\
	"END;"

/* One feed row: `key` is an SQL expression of NEW or OLD. */
#define FEED_ROW(kind, key)						\
	"INSERT INTO feed_add (kind, key) VALUES ('" kind "', " key ");"

/*
 * Triggers writing the feed for every change to `table`: `on_insert`,
 * `on_update` and `on_delete` are FEED_ROWs. An update writes the old
 * key and the new (it may have changed; when not, the second is left
 * out). Deletions by ON DELETE CASCADE fire them too, and so do the
 * deletions of INSERT OR REPLACE (recursive_triggers is on for every
 * connection).
 */
#define FEED_TRIGGERS(table, on_insert, on_update, on_delete)		\
	"CREATE TRIGGER feed_" table "_insert AFTER INSERT ON " table	\
	" BEGIN " on_insert " END;"					\
	"CREATE TRIGGER feed_" table "_update AFTER UPDATE ON " table	\
	" BEGIN " on_update " END;"					\
	"CREATE TRIGGER feed_" table "_delete AFTER DELETE ON " table	\
	" BEGIN " on_delete " END;"

/* The common case: one kind, its key one expression of the row. */
#define FEED_TABLE(table, kind, new_key, old_key)			\
	FEED_TRIGGERS(table, FEED_ROW(kind, new_key),			\
	    FEED_ROW(kind, old_key) FEED_ROW(kind, new_key),		\
	    FEED_ROW(kind, old_key))

/*
 * A migration is one string, run as one transaction; with its change-feed
 * triggers it is longer than the 4095 characters ISO C asks every compiler
 * to take (-Wpedantic says so), which GCC and Clang take.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char *const master_migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE mailboxes ("
	"  email TEXT PRIMARY KEY COLLATE NOCASE,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  pwhash TEXT,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE photos ("
	"  email TEXT PRIMARY KEY COLLATE NOCASE"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  etag TEXT NOT NULL,"
	"  side INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE photo_sizes ("
	"  email TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES photos(email) ON DELETE CASCADE,"
	"  code INTEGER NOT NULL,"
	"  side INTEGER NOT NULL,"
	"  data BLOB NOT NULL,"
	"  PRIMARY KEY (email, code));"
	"CREATE TABLE partners ("
	"  name TEXT PRIMARY KEY COLLATE NOCASE,"
	"  issuer TEXT NOT NULL UNIQUE,"
	"  metadata_url TEXT,"
	"  metadata TEXT NOT NULL,"
	"  fetched INTEGER NOT NULL,"
	"  added INTEGER NOT NULL);",
	/*
	 * 2: the change-photo page (ECP): browser sessions, kept by a digest
	 * of the cookie, and one pending photo preview per mailbox.
	 */
	"CREATE TABLE sessions ("
	"  key TEXT PRIMARY KEY,"
	"  email TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  csrf TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX sessions_email ON sessions (email);"
	"CREATE INDEX sessions_expires ON sessions (expires);"
	"CREATE TABLE previews ("
	"  email TEXT PRIMARY KEY COLLATE NOCASE"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  id TEXT NOT NULL,"
	"  side INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX previews_expires ON previews (expires);"
	"CREATE TABLE preview_sizes ("
	"  email TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES previews(email) ON DELETE CASCADE,"
	"  code INTEGER NOT NULL,"
	"  side INTEGER NOT NULL,"
	"  data BLOB NOT NULL,"
	"  PRIMARY KEY (email, code));",
	/* 3: change notifications to partners */
	"ALTER TABLE partners ADD COLUMN notify INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE partners ADD COLUMN ca_file TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  partner TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES partners(name) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  email TEXT NOT NULL COLLATE NOCASE,"
	"  created INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt INTEGER NOT NULL,"
	"  last_error TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX outbox_due ON outbox (next_attempt);",
	/* 4: the change feed (store.h) */
	FEED_SCHEMA
	FEED_TABLE("config", "config", "NEW.key", "OLD.key")
	FEED_TABLE("mailboxes", "mailbox", "lower(NEW.email)",
	    "lower(OLD.email)")
	FEED_TABLE("photos", "photo", "lower(NEW.email)", "lower(OLD.email)")
	FEED_TABLE("photo_sizes", "photo", "lower(NEW.email)",
	    "lower(OLD.email)")
	FEED_TABLE("previews", "preview", "lower(NEW.email)",
	    "lower(OLD.email)")
	FEED_TABLE("preview_sizes", "preview", "lower(NEW.email)",
	    "lower(OLD.email)")
	FEED_TABLE("partners", "partner", "lower(NEW.name)",
	    "lower(OLD.name)")
	FEED_TABLE("sessions", "mailbox_session", "NEW.key", "OLD.key")
	FEED_TABLE("outbox", "outbox", "NEW.id", "OLD.id"),
};

static const char *const portal_migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE webapps ("
	"  id INTEGER PRIMARY KEY,"
	"  url TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  realm TEXT NOT NULL,"
	"  photo_import INTEGER NOT NULL,"
	"  photo_expiration INTEGER NOT NULL,"
	"  photo_error_expiration INTEGER NOT NULL,"
	"  autodiscover_domain TEXT NOT NULL DEFAULT '',"
	"  sync_any INTEGER NOT NULL DEFAULT 0,"
	"  size_s INTEGER NOT NULL, size_m INTEGER NOT NULL,"
	"  size_l INTEGER NOT NULL,"
	"  ca_file TEXT NOT NULL DEFAULT '',"
	"  allow_oauth_http INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE users ("
	"  account TEXT PRIMARY KEY COLLATE NOCASE,"
	"  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  pwhash TEXT,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX users_file_prefix ON users "
	"  (replace(account, '\\', '_'));"
	"CREATE TABLE issuers ("
	"  name TEXT PRIMARY KEY COLLATE NOCASE,"
	"  issuer TEXT NOT NULL,"
	"  realm TEXT NOT NULL,"
	"  metadata_url TEXT,"
	"  metadata TEXT NOT NULL,"
	"  fetched INTEGER NOT NULL);"
	"CREATE TABLE thumbs ("
	"  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  account TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  source TEXT NOT NULL,"
	"  etag TEXT NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  s BLOB NOT NULL, m BLOB NOT NULL, l BLOB NOT NULL,"
	"  PRIMARY KEY (webapp, account));"
	"CREATE TABLE sync_state ("
	"  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  account TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  last_success INTEGER NOT NULL DEFAULT 0,"
	"  last_error INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  master_etag TEXT NOT NULL DEFAULT '',"
	"  has_mailbox INTEGER NOT NULL DEFAULT -1,"
	"  PRIMARY KEY (webapp, account));"
	"CREATE TABLE sessions ("
	"  key TEXT PRIMARY KEY,"
	"  account TEXT NOT NULL COLLATE NOCASE"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  csrf TEXT NOT NULL,"
	"  expires INTEGER NOT NULL);",
	/* 2: operations: background refresh, notifications, avatars */
	"ALTER TABLE webapps ADD COLUMN background_refresh INTEGER NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE webapps ADD COLUMN notifications INTEGER NOT NULL "
	"  DEFAULT 1;"
	"ALTER TABLE webapps ADD COLUMN avatar_anyone INTEGER NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE webapps ADD COLUMN avatar_defaults TEXT NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE users ADD COLUMN email_md5 TEXT;"
	"ALTER TABLE users ADD COLUMN email_sha256 TEXT;"
	"CREATE INDEX users_email_md5 ON users (email_md5);"
	"CREATE INDEX users_email_sha256 ON users (email_sha256);"
	"ALTER TABLE thumbs ADD COLUMN hr BLOB;",
	/* 3: the change feed (store.h) */
	FEED_SCHEMA
	FEED_TABLE("config", "config", "NEW.key", "OLD.key")
	FEED_TABLE("webapps", "webapp", "NEW.id", "OLD.id")
	FEED_TRIGGERS("users",
	    FEED_ROW("user", "lower(NEW.account)")
	    FEED_ROW("user_email", "lower(NEW.email)"),
	    FEED_ROW("user", "lower(OLD.account)")
	    FEED_ROW("user", "lower(NEW.account)")
	    FEED_ROW("user_email", "lower(OLD.email)")
	    FEED_ROW("user_email", "lower(NEW.email)"),
	    FEED_ROW("user", "lower(OLD.account)")
	    FEED_ROW("user_email", "lower(OLD.email)"))
	FEED_TABLE("issuers", "issuer", "lower(NEW.name)", "lower(OLD.name)")
	FEED_TABLE("thumbs", "thumb", "NEW.webapp || '/' || lower(NEW.account)",
	    "OLD.webapp || '/' || lower(OLD.account)")
	FEED_TABLE("sync_state", "sync",
	    "NEW.webapp || '/' || lower(NEW.account)",
	    "OLD.webapp || '/' || lower(OLD.account)")
	FEED_TABLE("sessions", "session", "NEW.key", "OLD.key"),
	/* 4: how long an owner waits for a sync; a master's Retry-After */
	"ALTER TABLE webapps ADD COLUMN owner_wait_ms INTEGER NOT NULL "
	"  DEFAULT 2000;"
	"ALTER TABLE sync_state ADD COLUMN retry_after INTEGER NOT NULL "
	"  DEFAULT 0;",
};
#pragma GCC diagnostic pop

/*
 * Records and logs SQLite's error, once, where it is detected. For a file
 * that could not be written the system's reason comes too ("disk I/O
 * error: File too large").
 */
static ps_err
store_fail(struct store *st, const char *what)
{
	int code = sqlite3_errcode(st->db), sys = sqlite3_system_errno(st->db);
	char error[256];

	if (sys != 0 && (code == SQLITE_IOERR || code == SQLITE_FULL ||
	    code == SQLITE_CANTOPEN))
		snprintf(error, sizeof(error), "%s: %s",
		    sqlite3_errmsg(st->db), strerror(sys));
	else
		str_copy(error, sqlite3_errmsg(st->db), sizeof(error));
	log_err(NULL, "store.error", "what=%s error=%s", log_q(what),
	    log_q(error));
	return ps_errf(PS_ESTORE, "%s: %s (%s)", what, error, st->path);
}

static ps_err
store_exec(struct store *st, const char *sql)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return store_fail(st, "exec");
	return PS_OK;
}

/* ---- transactions ---- */

ps_err
store_begin(struct store *st)
{
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return store_fail(st, "begin");
	return PS_OK;
}

/*
 * Rolls the transaction back, if there still is one. After some errors
 * (a full disk, an I/O error, out of memory) SQLite has rolled it back
 * itself, and a ROLLBACK would only fail with "no transaction is active"
 * and hide the real error. A failure here is logged, but the reason
 * recorded for the caller stays the first error, the one that matters.
 */
static void
store_rollback(struct store *st)
{
	if (sqlite3_get_autocommit(st->db))
		return;
	if (sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_err(NULL, "store.error", "what=rollback error=%s",
		    log_q(sqlite3_errmsg(st->db)));
}

ps_err
store_end(struct store *st, bool commit)
{
	ps_err rc;

	if (!commit) {
		store_rollback(st);
		return PS_OK;
	}
	if (sqlite3_get_autocommit(st->db))
		return ps_errf(PS_ESTORE, "nothing to commit: the transaction "
		    "was rolled back (last error: %s) (%s)",
		    sqlite3_errmsg(st->db), st->path);
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return PS_OK;
	rc = store_fail(st, "commit");
	store_rollback(st);
	return rc;
}

/* Ends a transaction as `rc` says: commits on PS_OK, else rolls back. */
static ps_err
tx_finish(struct store *st, ps_err rc)
{
	ps_err end = store_end(st, rc == PS_OK);

	return rc == PS_OK ? end : rc;
}

/*
 * Which role's store a file is: SQLite's application_id, set when a store
 * is made. Both roles' schemas have the same number of versions, so the
 * version cannot tell them apart. A store made before the mark has none
 * (0): its role is told by a table only that role's first schema has, and
 * the mark is added.
 */
#define APP_ID_MASTER	0x50534d31	/* "PSM1" */
#define APP_ID_PORTAL	0x50535031	/* "PSP1" */

/* One integer that `sql` reads; `what` names it in an error. */
static ps_err
store_int(struct store *st, const char *sql, const char *what, int *out)
{
	sqlite3_stmt *q = NULL;
	ps_err rc = PS_OK;

	if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW)
		rc = store_fail(st, what);
	else
		*out = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return rc;
}

/* Refuses another role's store; marks an unmarked one. In a transaction. */
static ps_err
store_check_role(struct store *st, int version)
{
	int want = st->role == STORE_MASTER ? APP_ID_MASTER : APP_ID_PORTAL;
	int id = 0, other = 0;
	bool marked;
	char *set;
	ps_err rc;

	if ((rc = store_int(st, "PRAGMA application_id", "read the store's "
	    "role", &id)) != PS_OK)
		return rc;
	marked = id != 0;
	if (id == 0 && version > 0) {
		/* The other role's first table. */
		rc = store_int(st, st->role == STORE_MASTER ?
		    "SELECT count(*) FROM sqlite_master WHERE name = 'webapps'" :
		    "SELECT count(*) FROM sqlite_master WHERE name = "
		    "'mailboxes'", "read the store's tables", &other);
		if (rc != PS_OK)
			return rc;
		id = other == 0 ? want : st->role == STORE_MASTER ?
		    APP_ID_PORTAL : APP_ID_MASTER;
	}
	if (id != 0 && id != want)
		return ps_errf(PS_ESTORE, "%s is not a %s's store (it is %s)",
		    st->path, st->role == STORE_MASTER ? "master" : "portal",
		    id == APP_ID_MASTER ? "a master's" : id == APP_ID_PORTAL ?
		    "a portal's" : "another application's");
	if (marked)
		return PS_OK;
	set = xasprintf("PRAGMA application_id = %d", want);
	rc = store_exec(st, set);
	free(set);
	return rc;
}

static ps_err
store_migrate(struct store *st)
{
	const char *const *steps;
	size_t nsteps, i;
	int version = 0;
	ps_err rc;

	if (st->role == STORE_MASTER) {
		steps = master_migrations;
		nsteps = sizeof(master_migrations) / sizeof(*steps);
	} else {
		steps = portal_migrations;
		nsteps = sizeof(portal_migrations) / sizeof(*steps);
	}
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	if ((rc = store_int(st, "PRAGMA user_version", "read schema version",
	    &version)) != PS_OK)
		goto out;
	if ((rc = store_check_role(st, version)) != PS_OK)
		goto out;
	if (version < 0 || (size_t)version > nsteps) {
		rc = ps_errf(PS_ESTORE, "%s has schema version %d, newer than "
		    "this photosync knows (%zu)", st->path, version, nsteps);
		goto out;
	}
	for (i = (size_t)version; i < nsteps; i++) {
		char *set;

		if ((rc = store_exec(st, steps[i])) != PS_OK)
			goto out;
		set = xasprintf("PRAGMA user_version = %zu", i + 1);
		rc = store_exec(st, set);
		free(set);
		if (rc != PS_OK)
			goto out;
		log_info(NULL, "store.migrated", "path=%s version=%zu",
		    log_q(st->path), i + 1);
	}
	rc = PS_OK;
out:
	return tx_finish(st, rc);
}

/* ---- the change feed: origin, transactions, the shared counter ---- */

/* This process's origin; 0 until drawn, and again in a forked child. */
static _Atomic int64_t feed_origin;
static pthread_once_t feed_fork_once = PTHREAD_ONCE_INIT;
/* Transaction numbers, unique in the process across its connections. */
static _Atomic int64_t feed_tx_last;

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

static int64_t
feed_origin_get(void)
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

static int64_t
feed_tx_new(void)
{
	return atomic_fetch_add(&feed_tx_last, 1) + 1;
}

/* ps_feed_origin(): this process, for the feed's triggers. */
static void
sql_feed_origin(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int64(ctx, feed_origin_get());
}

/* ps_feed_tx(): this connection's transaction. */
static void
sql_feed_tx(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct store *st = sqlite3_user_data(ctx);

	(void)argc;
	(void)argv;
	sqlite3_result_int64(ctx, st->tx);
}

/* Each commit ends a transaction: the next one gets a new number. */
static int
on_commit(void *arg)
{
	struct store *st = arg;

	st->tx = feed_tx_new();
	return 0;
}

/*
 * Called by SQLite after each commit in WAL mode, once the write lock is
 * released: announces the commit through the shared counter. Installing
 * it replaces SQLite's automatic checkpoint, so this checkpoints as that
 * did (passive: never waits for readers).
 */
static int
on_wal_commit(void *arg, sqlite3 *db, const char *schema, int frames)
{
	struct store *st = arg;

	if (st->bump)
		atomic_fetch_add_explicit(st->bump->counter, 1,
		    memory_order_release);
	if (frames >= WAL_CHECKPOINT_FRAMES)
		(void)sqlite3_wal_checkpoint_v2(db, schema,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

/*
 * Maps path + "-feed"; when `create`, creates it (mode 0600, one page) if
 * absent.
 */
static struct store_feed_watch *
feed_map(const char *store_path, bool writable, bool create)
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

struct store_feed_watch *
store_feed_watch_open(const char *store_path)
{
	return feed_map(store_path, false, true);
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

/*
 * What every connection needs before its first statement. A connection
 * that has just created the store maps the counter only if something
 * already watches it: the counter file is not created for a store that
 * did not exist, so an init that fails can remove the database alone.
 */
static ps_err
store_connect(struct store *st, bool created)
{
	/* INNOCUOUS: the triggers may call them with trusted_schema off. */
	if (sqlite3_create_function_v2(st->db, "ps_feed_origin", 0,
	    SQLITE_UTF8 | SQLITE_INNOCUOUS, NULL, sql_feed_origin, NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_create_function_v2(st->db, "ps_feed_tx", 0,
	    SQLITE_UTF8 | SQLITE_INNOCUOUS, st, sql_feed_tx, NULL, NULL,
	    NULL) != SQLITE_OK)
		return store_fail(st, "register feed functions");
	sqlite3_commit_hook(st->db, on_commit, st);
	st->bump = feed_map(st->path, true, !created);
	if (st->bump == NULL && !created)
		log_warn(NULL, "store.feed_counter_failed", "path=%s error=%s "
		    "note=%s", log_q(st->path), log_q(ps_errmsg()),
		    log_q("this process's commits are not announced to "
		    "servers"));
	sqlite3_wal_hook(st->db, on_wal_commit, st);
	sqlite3_busy_timeout(st->db, 5000);
	/*
	 * recursive_triggers: the rows INSERT OR REPLACE deletes fire the
	 * feed's delete triggers too. trusted_schema off: a tampered file
	 * cannot make this process run functions it does not expect.
	 */
	return store_exec(st, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA recursive_triggers=ON; PRAGMA trusted_schema=OFF;");
}

ps_err
store_open(const char *path, enum store_role role, bool create,
    struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	bool creating = create && access(path, F_OK) != 0;
	ps_err rc;

	st->role = role;
	st->path = xstrdup(path);
	st->tx = feed_tx_new();
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		if (!create) {
			rc = ps_errf(PS_ENOTFOUND, "no store at %s (run init "
			    "first)", path);
			goto fail;
		}
		rc = store_fail(st, "open");
		goto fail;
	}
	if ((rc = store_connect(st, creating)) != PS_OK)
		goto fail;
	if ((rc = store_migrate(st)) != PS_OK)
		goto fail;
	*out = st;
	return PS_OK;
fail:
	store_close(st);
	return rc;
}

void
store_close(struct store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(st->stmts[i].q);
		free(st->stmts[i].sql);
	}
	sqlite3_close(st->db);
	store_feed_watch_close(st->bump);
	free(st->path);
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
 * feed's triggers of the tables it changes, which costs more than
 * running it; so each is compiled once per connection. Give it back
 * with unprep(). NULL (logged) when it cannot be prepared.
 */
static sqlite3_stmt *
prep(struct store *st, const char *sql)
{
	struct stmt_slot *s = stmt_slot(st, sql);
	sqlite3_stmt *q = NULL;

	if (s && s->sql && !s->busy) {
		s->busy = true;
		return s->q;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, s && s->sql == NULL ?
	    SQLITE_PREPARE_PERSISTENT : 0, &q, NULL) != SQLITE_OK) {
		store_fail(st, "prepare");
		return NULL;
	}
	if (s && s->sql == NULL) {
		s->sql = xstrdup(sql);
		s->q = q;
		s->busy = true;
	}
	return q;
}

/*
 * Gives back a statement prep() gave: a cached one is reset (which ends
 * its read of the database) for the next call, another is finalized.
 * NULL is a no-op.
 */
static void
unprep(struct store *st, sqlite3_stmt *q)
{
	struct stmt_slot *s;

	if (q == NULL)
		return;
	s = stmt_slot(st, sqlite3_sql(q));
	if (s && s->q == q) {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		s->busy = false;
		return;
	}
	sqlite3_finalize(q);
}

static void
bind_text(sqlite3_stmt *q, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(q, i);
}

static const char *
col_text(sqlite3_stmt *q, int i)
{
	const unsigned char *s = sqlite3_column_text(q, i);

	return s ? (const char *)s : "";
}

static char *
col_dup(sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		return NULL;
	return xstrdup(col_text(q, i));
}

/* Runs a statement that returns no rows; counts changed rows. */
static ps_err
step_done(struct store *st, sqlite3_stmt *q, int *changes)
{
	int r = sqlite3_step(q);

	if (r == SQLITE_CONSTRAINT)
		return ps_errf(PS_EEXIST, "already exists");
	if (r != SQLITE_DONE)
		return store_fail(st, "write");
	if (changes)
		*changes = sqlite3_changes(st->db);
	return PS_OK;
}

/* ---- config ---- */

ps_err
store_config_get(struct store *st, const char *key, char **value)
{
	sqlite3_stmt *q = prep(st, "SELECT value FROM config WHERE key = ?");
	ps_err rc = PS_ESTORE;
	int r;

	if (q == NULL)
		return rc;
	bind_text(q, 1, key);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		*value = xstrdup(col_text(q, 0));
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "INSERT INTO config (key, value) "
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
	{ "webapp",		STORE_CHANGE_WEBAPP },
	{ "user",		STORE_CHANGE_USER },
	{ "user_email",		STORE_CHANGE_USER_EMAIL },
	{ "issuer",		STORE_CHANGE_ISSUER },
	{ "thumb",		STORE_CHANGE_THUMB },
	{ "sync",		STORE_CHANGE_SYNC },
	{ "session",		STORE_CHANGE_SESSION },
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
	sqlite3_stmt *q = prep(st, "SELECT coalesce(max(seq), 0) FROM feed");
	ps_err rc = PS_ESTORE;

	if (q == NULL)
		return rc;
	if (sqlite3_step(q) == SQLITE_ROW) {
		*seq = sqlite3_column_int64(q, 0);
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
	sqlite3_stmt *q = prep(st, "SELECT seq, kind, key, origin, (SELECT "
	    "pruned FROM feed_pruned) FROM feed WHERE seq > ? ORDER BY seq "
	    "LIMIT ?");
	int64_t self = feed_origin_get(), seq;
	struct store_change c;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	*last = after;
	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, after);
	sqlite3_bind_int(q, 2, limit);
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(q, 0);
		if (*last == after && sqlite3_column_int64(q, 4) > after) {
			rc = ps_errf(PS_ELIMIT, "the change feed was pruned "
			    "past %lld", (long long)after);
			break;
		}
		if (sqlite3_column_int64(q, 3) != self &&
		    feed_kind(col_text(q, 1), &c.kind)) {
			c.seq = seq;
			str_copy(c.key, col_text(q, 2), sizeof(c.key));
			if ((rc = fn(arg, &c)) != PS_OK)
				break;
		}
		*last = seq;
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "read the change feed");
	unprep(st, q);
	return rc;
}

ps_err
store_feed_prune(struct store *st, int64_t before)
{
	sqlite3_stmt *q = NULL;
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
	sqlite3_bind_int64(q, 1, before);
	if (sqlite3_step(q) != SQLITE_ROW) {
		rc = store_fail(st, "read the change feed");
		goto out;
	}
	upto = sqlite3_column_int64(q, 0);
	unprep(st, q);
	q = NULL;
	rc = PS_OK;
	if (upto == 0)
		goto out;
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM feed WHERE seq <= ?")) == NULL)
		goto out;
	sqlite3_bind_int64(q, 1, upto);
	if ((rc = step_done(st, q, &rows)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "UPDATE feed_pruned SET pruned = max(pruned, ?)")) ==
	    NULL)
		goto out;
	sqlite3_bind_int64(q, 1, upto);
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
	sqlite3_stmt *q = prep(st, "INSERT INTO mailboxes (email, name, "
	    "pwhash, created) VALUES (lower(?), ?, ?, ?)");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	bind_text(q, 2, name ? name : "");
	bind_text(q, 3, pwhash);
	sqlite3_bind_int64(q, 4, time_now());
	rc = step_done(st, q, NULL);
	if (rc == PS_EEXIST)
		ps_errf(rc, "mailbox %s already exists", email);
	unprep(st, q);
	return rc;
}

ps_err
store_mailbox_remove(struct store *st, const char *email)
{
	sqlite3_stmt *q = prep(st, "DELETE FROM mailboxes WHERE email = ?");
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
	"coalesce(p.updated, 0), coalesce(p.side, 0) FROM mailboxes m "	\
	"LEFT JOIN photos p ON p.email = m.email"

static void
mailbox_row(sqlite3_stmt *q, struct store_mailbox *m)
{
	memset(m, 0, sizeof(*m));
	str_copy(m->email, col_text(q, 0), sizeof(m->email));
	str_copy(m->name, col_text(q, 1), sizeof(m->name));
	m->pwhash = col_dup(q, 2);
	m->created = sqlite3_column_int64(q, 3);
	str_copy(m->etag, col_text(q, 4), sizeof(m->etag));
	m->photo_updated = sqlite3_column_int64(q, 5);
	m->photo_side = sqlite3_column_int(q, 6);
}

ps_err
store_mailbox_get(struct store *st, const char *email,
    struct store_mailbox *out)
{
	sqlite3_stmt *q = prep(st, "SELECT " MAILBOX_COLUMNS
	    " WHERE m.email = ?");
	ps_err rc;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		mailbox_row(q, out);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = NULL;
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

ps_err
store_mailbox_each(struct store *st,
    ps_err (*fn)(void *, const struct store_mailbox *), void *arg)
{
	sqlite3_stmt *q = prep(st, "SELECT " MAILBOX_COLUMNS
	    " ORDER BY m.email");
	struct store_mailbox m;
	ps_err rc = PS_OK;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		mailbox_row(q, &m);
		rc = fn(arg, &m);
		store_mailbox_cleanup(&m);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "list mailboxes");
	unprep(st, q);
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
	sqlite3_stmt *q;
	size_t i;
	ps_err rc = PS_OK;

	for (i = 0; i < sizeof(steps) / sizeof(*steps) && rc == PS_OK; i++) {
		if ((q = prep(st, steps[i])) == NULL)
			return PS_ESTORE;
		bind_text(q, 1, email);
		if (sqlite3_bind_parameter_count(q) >= 2)
			sqlite3_bind_int64(q, 2, time_now());
		rc = step_done(st, q, NULL);
		unprep(st, q);
	}
	return rc;
}

ps_err
store_outbox_due(struct store *st, int64_t now, int limit,
    ps_err (*fn)(void *, const struct store_outbox *), void *arg)
{
	sqlite3_stmt *q = prep(st, "SELECT id, partner, email, created, "
	    "attempts, last_error FROM outbox WHERE next_attempt <= ? ORDER BY "
	    "next_attempt LIMIT ?");
	struct store_outbox o;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, now);
	sqlite3_bind_int(q, 2, limit);
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		memset(&o, 0, sizeof(o));
		o.id = sqlite3_column_int64(q, 0);
		str_copy(o.partner, col_text(q, 1), sizeof(o.partner));
		str_copy(o.email, col_text(q, 2), sizeof(o.email));
		o.created = sqlite3_column_int64(q, 3);
		o.attempts = sqlite3_column_int(q, 4);
		str_copy(o.last_error, col_text(q, 5), sizeof(o.last_error));
		rc = fn(arg, &o);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "read outbox");
	unprep(st, q);
	return rc;
}

ps_err
store_outbox_done(struct store *st, int64_t id)
{
	sqlite3_stmt *q = prep(st, "DELETE FROM outbox WHERE id = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, id);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_outbox_retry(struct store *st, int64_t id, int64_t next_attempt,
    const char *error)
{
	sqlite3_stmt *q = prep(st, "UPDATE outbox SET attempts = attempts + "
	    "1, next_attempt = ?, last_error = ? WHERE id = ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, next_attempt);
	bind_text(q, 2, error);
	sqlite3_bind_int64(q, 3, id);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

int64_t
store_outbox_pending(struct store *st)
{
	sqlite3_stmt *q = prep(st, "SELECT count(*) FROM outbox");
	int64_t n = -1;

	if (q && sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int64(q, 0);
	unprep(st, q);
	return n;
}

/* ---- photos ---- */

ps_err
store_photo_put(struct store *st, const char *email, const char *etag,
    const struct store_photo_size *sizes, size_t n)
{
	sqlite3_stmt *q = NULL;
	ps_err rc;
	int changes = 0, side = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (sizes[i].side > side)
			side = sizes[i].side;
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
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
	sqlite3_bind_int(q, 2, side);
	sqlite3_bind_int64(q, 3, time_now());
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
		sqlite3_reset(q);
		bind_text(q, 1, email);
		sqlite3_bind_int(q, 2, sizes[i].code);
		sqlite3_bind_int(q, 3, sizes[i].side);
		sqlite3_bind_blob(q, 4, sizes[i].data, (int)sizes[i].len,
		    SQLITE_STATIC);
		if ((rc = step_done(st, q, NULL)) != PS_OK)
			goto out;
	}
	rc = outbox_enqueue(st, email);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

ps_err
store_photo_remove(struct store *st, const char *email)
{
	sqlite3_stmt *q;
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
		rc = outbox_enqueue(st, email);
out:
	return tx_finish(st, rc);
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
	sqlite3_stmt *q = prep(st, "SELECT p.etag, s.code, s.side, s.data, "
	    "p.updated FROM photos p JOIN photo_sizes s ON s.email = p.email "
	    "WHERE p.email = ? ORDER BY (s.code = ?) DESC, s.side DESC "
	    "LIMIT 1");
	ps_err rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	sqlite3_bind_int(q, 2, code);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		const void *d = sqlite3_column_blob(q, 3);

		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		out->code = sqlite3_column_int(q, 1);
		out->side = sqlite3_column_int(q, 2);
		out->len = (size_t)sqlite3_column_bytes(q, 3);
		out->data = xmalloc(out->len);
		if (out->len)
			memcpy(out->data, d, out->len);
		out->updated = sqlite3_column_int64(q, 4);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "INSERT INTO partners (name, issuer, "
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
	sqlite3_bind_int64(q, 5, p->fetched);
	sqlite3_bind_int64(q, 6, p->added ? p->added : time_now());
	sqlite3_bind_int(q, 7, p->notify);
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
	sqlite3_stmt *q = prep(st, "DELETE FROM partners WHERE name = ? OR "
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
partner_row(sqlite3_stmt *q, struct store_partner *p)
{
	memset(p, 0, sizeof(*p));
	str_copy(p->name, col_text(q, 0), sizeof(p->name));
	str_copy(p->issuer, col_text(q, 1), sizeof(p->issuer));
	p->metadata_url = col_dup(q, 2);
	p->metadata = col_dup(q, 3);
	p->fetched = sqlite3_column_int64(q, 4);
	p->added = sqlite3_column_int64(q, 5);
	p->notify = sqlite3_column_int(q, 6) != 0;
	str_copy(p->ca_file, col_text(q, 7), sizeof(p->ca_file));
}

ps_err
store_partner_get(struct store *st, const char *name_or_issuer,
    struct store_partner *out)
{
	sqlite3_stmt *q = prep(st, "SELECT name, issuer, metadata_url, "
	    "metadata, fetched, added, notify, ca_file FROM partners WHERE "
	    "name = ? OR "
	    "issuer = ?");
	ps_err rc;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name_or_issuer);
	bind_text(q, 2, name_or_issuer);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		partner_row(q, out);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "SELECT name, issuer, metadata_url, "
	    "metadata, fetched, added, notify, ca_file FROM partners ORDER BY "
	    "name");
	struct store_partner p;
	ps_err rc = PS_OK;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		partner_row(q, &p);
		rc = fn(arg, &p);
		store_partner_cleanup(&p);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "list partners");
	unprep(st, q);
	return rc;
}

/* ---- master: browser sessions of the change-photo page ---- */

ps_err
store_mailbox_session_put(struct store *st, const char *key,
    const char *email, const char *csrf, int64_t expires)
{
	sqlite3_stmt *q = NULL;
	int64_t now = time_now();
	int changes = 0;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "DELETE FROM sessions WHERE expires <= ?")) == NULL)
		goto out;
	sqlite3_bind_int64(q, 1, now);
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
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_int64(q, 4, expires);
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
	sqlite3_stmt *q = prep(st, "SELECT s.email, s.csrf, s.expires FROM "
	    "sessions s JOIN mailboxes m ON m.email = s.email WHERE s.key = ? "
	    "AND s.expires > ? AND m.pwhash IS NOT NULL");
	ps_err rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	sqlite3_bind_int64(q, 2, time_now());
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		str_copy(out->email, col_text(q, 0), sizeof(out->email));
		str_copy(out->csrf, col_text(q, 1), sizeof(out->csrf));
		out->expires = sqlite3_column_int64(q, 2);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "DELETE FROM sessions WHERE key = ? OR "
	    "expires <= ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	sqlite3_bind_int64(q, 2, time_now());
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

/* ---- master: pending photo previews ---- */

ps_err
store_preview_put(struct store *st, const char *email, const char *id,
    int64_t expires, const struct store_photo_size *sizes, size_t n)
{
	sqlite3_stmt *q = NULL;
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
	sqlite3_bind_int64(q, 2, now);
	if ((rc = step_done(st, q, NULL)) != PS_OK)
		goto out;
	unprep(st, q);
	rc = PS_ESTORE;
	if ((q = prep(st, "INSERT INTO previews (email, id, side, created, "
	    "expires) SELECT email, ?, ?, ?, ? FROM mailboxes WHERE email = ?"))
	    == NULL)
		goto out;
	bind_text(q, 1, id);
	sqlite3_bind_int(q, 2, side);
	sqlite3_bind_int64(q, 3, now);
	sqlite3_bind_int64(q, 4, expires);
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
		sqlite3_reset(q);
		bind_text(q, 1, email);
		sqlite3_bind_int(q, 2, sizes[i].code);
		sqlite3_bind_int(q, 3, sizes[i].side);
		sqlite3_bind_blob(q, 4, sizes[i].data, (int)sizes[i].len,
		    SQLITE_STATIC);
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
	sqlite3_stmt *q = prep(st, "SELECT p.id, s.code, s.side, s.data, "
	    "p.created FROM previews p JOIN preview_sizes s ON s.email = "
	    "p.email WHERE p.email = ? AND p.expires > ? ORDER BY (s.code = ?) "
	    "DESC, s.side DESC LIMIT 1");
	ps_err rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, email);
	sqlite3_bind_int64(q, 2, time_now());
	sqlite3_bind_int(q, 3, code);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		const void *d = sqlite3_column_blob(q, 3);

		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		out->code = sqlite3_column_int(q, 1);
		out->side = sqlite3_column_int(q, 2);
		out->len = (size_t)sqlite3_column_bytes(q, 3);
		out->data = xmalloc(out->len);
		if (out->len)
			memcpy(out->data, d, out->len);
		out->updated = sqlite3_column_int64(q, 4);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = NULL;
	size_t i;
	ps_err rc;
	int r;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = PS_ESTORE;
	if ((q = prep(st, "SELECT 1 FROM previews WHERE email = ? AND expires "
	    "> ?")) == NULL)
		goto out;
	bind_text(q, 1, email);
	sqlite3_bind_int64(q, 2, time_now());
	r = sqlite3_step(q);
	if (r == SQLITE_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no pending preview", email);
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = store_fail(st, "read preview");
		goto out;
	}
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		unprep(st, q);
		rc = PS_ESTORE;
		if ((q = prep(st, steps[i])) == NULL)
			goto out;
		bind_text(q, 1, email);
		if (sqlite3_bind_parameter_count(q) >= 2) {
			bind_text(q, 2, etag);
			sqlite3_bind_int64(q, 3, time_now());
		}
		if ((rc = step_done(st, q, NULL)) != PS_OK)
			goto out;
	}
	rc = outbox_enqueue(st, email);
out:
	unprep(st, q);
	return tx_finish(st, rc);
}

ps_err
store_preview_remove(struct store *st, const char *email)
{
	sqlite3_stmt *q = prep(st, "DELETE FROM previews WHERE email = ?");
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
	"photo_error_expiration, autodiscover_domain, sync_any, size_s, "	\
	"size_m, size_l, ca_file, allow_oauth_http, created, "		\
	"background_refresh, notifications, avatar_anyone, avatar_defaults, " \
	"owner_wait_ms"

static void
webapp_row(sqlite3_stmt *q, struct store_webapp *w)
{
	memset(w, 0, sizeof(*w));
	w->id = sqlite3_column_int64(q, 0);
	str_copy(w->url, col_text(q, 1), sizeof(w->url));
	str_copy(w->host, col_text(q, 2), sizeof(w->host));
	w->port = sqlite3_column_int(q, 3);
	str_copy(w->realm, col_text(q, 4), sizeof(w->realm));
	w->photo_import = sqlite3_column_int(q, 5) != 0;
	w->photo_expiration = sqlite3_column_int64(q, 6);
	w->photo_error_expiration = sqlite3_column_int64(q, 7);
	str_copy(w->autodiscover_domain, col_text(q, 8),
	    sizeof(w->autodiscover_domain));
	w->sync_any = sqlite3_column_int(q, 9) != 0;
	w->size_s = sqlite3_column_int(q, 10);
	w->size_m = sqlite3_column_int(q, 11);
	w->size_l = sqlite3_column_int(q, 12);
	str_copy(w->ca_file, col_text(q, 13), sizeof(w->ca_file));
	w->allow_oauth_http = sqlite3_column_int(q, 14) != 0;
	w->created = sqlite3_column_int64(q, 15);
	w->background_refresh = sqlite3_column_int64(q, 16);
	w->notifications = sqlite3_column_int(q, 17) != 0;
	w->avatar_anyone = sqlite3_column_int(q, 18) != 0;
	str_copy(w->avatar_defaults, col_text(q, 19),
	    sizeof(w->avatar_defaults));
	w->owner_wait_ms = sqlite3_column_int(q, 20);
}

static void
webapp_bind(sqlite3_stmt *q, const struct store_webapp *w)
{
	bind_text(q, 1, w->url);
	bind_text(q, 2, w->host);
	sqlite3_bind_int(q, 3, w->port);
	bind_text(q, 4, w->realm);
	sqlite3_bind_int(q, 5, w->photo_import);
	sqlite3_bind_int64(q, 6, w->photo_expiration);
	sqlite3_bind_int64(q, 7, w->photo_error_expiration);
	bind_text(q, 8, w->autodiscover_domain);
	sqlite3_bind_int(q, 9, w->sync_any);
	sqlite3_bind_int(q, 10, w->size_s);
	sqlite3_bind_int(q, 11, w->size_m);
	sqlite3_bind_int(q, 12, w->size_l);
	bind_text(q, 13, w->ca_file);
	sqlite3_bind_int(q, 14, w->allow_oauth_http);
	sqlite3_bind_int64(q, 16, w->background_refresh);
	sqlite3_bind_int(q, 17, w->notifications);
	sqlite3_bind_int(q, 18, w->avatar_anyone);
	bind_text(q, 19, w->avatar_defaults);
	sqlite3_bind_int(q, 20, w->owner_wait_ms);
}

ps_err
store_webapp_add(struct store *st, struct store_webapp *w)
{
	sqlite3_stmt *q = prep(st, "INSERT INTO webapps (url, host, port, "
	    "realm, photo_import, photo_expiration, photo_error_expiration, "
	    "autodiscover_domain, sync_any, size_s, size_m, size_l, ca_file, "
	    "allow_oauth_http, created, background_refresh, notifications, "
	    "avatar_anyone, avatar_defaults, owner_wait_ms) VALUES (?1, ?2, "
	    "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
	    "?17, ?18, ?19, ?20)");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	webapp_bind(q, w);
	w->created = time_now();
	sqlite3_bind_int64(q, 15, w->created);
	rc = step_done(st, q, NULL);
	if (rc == PS_OK)
		w->id = sqlite3_last_insert_rowid(st->db);
	else if (rc == PS_EEXIST)
		ps_errf(rc, "web application %s already exists", w->url);
	unprep(st, q);
	return rc;
}

ps_err
store_webapp_update(struct store *st, const struct store_webapp *w)
{
	sqlite3_stmt *q = prep(st, "UPDATE webapps SET url = ?, host = ?, "
	    "port = ?, realm = ?, photo_import = ?, photo_expiration = ?, "
	    "photo_error_expiration = ?, autodiscover_domain = ?, sync_any = "
	    "?, size_s = ?, size_m = ?, size_l = ?, ca_file = ?, "
	    "allow_oauth_http = ?14, background_refresh = ?16, notifications "
	    "= ?17, avatar_anyone = ?18, avatar_defaults = ?19, "
	    "owner_wait_ms = ?20 WHERE id = ?15");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	webapp_bind(q, w);
	sqlite3_bind_int64(q, 15, w->id);
	rc = step_done(st, q, &changes);
	unprep(st, q);
	if (rc == PS_OK && changes == 0)
		rc = ps_errf(PS_ENOTFOUND, "no web application %s", w->url);
	return rc;
}

ps_err
store_webapp_get(struct store *st, const char *url, struct store_webapp *out)
{
	sqlite3_stmt *q = prep(st, "SELECT " WEBAPP_COLUMNS " FROM webapps "
	    "WHERE url = ?");
	ps_err rc;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, url);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		webapp_row(q, out);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "SELECT " WEBAPP_COLUMNS " FROM webapps "
	    "ORDER BY id");
	struct store_webapp w;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		webapp_row(q, &w);
		rc = fn(arg, &w);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
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
	sqlite3_stmt *q = prep(st, "INSERT INTO users (account, email, name, "
	    "pwhash, created, email_md5, email_sha256) VALUES (lower(?), "
	    "lower(?), ?, ?, ?, nullif(?, ''), nullif(?, ''))");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, u->account);
	bind_text(q, 2, u->email);
	bind_text(q, 3, u->name);
	bind_text(q, 4, u->pwhash);
	sqlite3_bind_int64(q, 5, time_now());
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
	sqlite3_stmt *q = prep(st, "DELETE FROM users WHERE account = ?");
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

#define USER_COLUMNS \
	"account, email, name, pwhash, created, email_md5, email_sha256"

static void
user_row(sqlite3_stmt *q, struct store_user *u)
{
	memset(u, 0, sizeof(*u));
	str_copy(u->account, col_text(q, 0), sizeof(u->account));
	str_copy(u->email, col_text(q, 1), sizeof(u->email));
	str_copy(u->name, col_text(q, 2), sizeof(u->name));
	u->pwhash = col_dup(q, 3);
	u->created = sqlite3_column_int64(q, 4);
	str_copy(u->email_md5, col_text(q, 5), sizeof(u->email_md5));
	str_copy(u->email_sha256, col_text(q, 6), sizeof(u->email_sha256));
}

static ps_err
user_get_by(struct store *st, const char *column, const char *value,
    struct store_user *out)
{
	char *sql = xasprintf("SELECT " USER_COLUMNS " FROM users WHERE %s = "
	    "?", column);
	sqlite3_stmt *q = prep(st, sql);
	ps_err rc;
	int r;

	free(sql);
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, value);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		user_row(q, out);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "UPDATE users SET email_md5 = ?, "
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
	sqlite3_stmt *q = prep(st, "SELECT " USER_COLUMNS " FROM users WHERE "
	    "account > ? ORDER BY account LIMIT ?");
	struct store_user u;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, after);
	sqlite3_bind_int(q, 2, limit);
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		user_row(q, &u);
		rc = fn(arg, &u);
		store_user_cleanup(&u);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "list users");
	unprep(st, q);
	return rc;
}

ps_err
store_user_count(struct store *st, int64_t *n)
{
	sqlite3_stmt *q = prep(st, "SELECT count(*) FROM users");
	ps_err rc = PS_ESTORE;

	if (q && sqlite3_step(q) == SQLITE_ROW) {
		*n = sqlite3_column_int64(q, 0);
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
	sqlite3_stmt *q = NULL;
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

ps_err
store_user_each(struct store *st,
    ps_err (*fn)(void *, const struct store_user *), void *arg)
{
	sqlite3_stmt *q = prep(st, "SELECT " USER_COLUMNS " FROM users ORDER "
	    "BY account");
	struct store_user u;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		user_row(q, &u);
		rc = fn(arg, &u);
		store_user_cleanup(&u);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "list users");
	unprep(st, q);
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
	sqlite3_stmt *q = prep(st, "INSERT INTO issuers (name, issuer, realm, "
	    "metadata_url, metadata, fetched) VALUES (?, ?, ?, ?, ?, ?) "
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
	sqlite3_bind_int64(q, 6, i->fetched);
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}

ps_err
store_issuer_remove(struct store *st, const char *name)
{
	sqlite3_stmt *q = prep(st, "DELETE FROM issuers WHERE name = ?");
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
issuer_row(sqlite3_stmt *q, struct store_issuer *i)
{
	memset(i, 0, sizeof(*i));
	str_copy(i->name, col_text(q, 0), sizeof(i->name));
	str_copy(i->issuer, col_text(q, 1), sizeof(i->issuer));
	str_copy(i->realm, col_text(q, 2), sizeof(i->realm));
	i->metadata_url = col_dup(q, 3);
	i->metadata = col_dup(q, 4);
	i->fetched = sqlite3_column_int64(q, 5);
}

ps_err
store_issuer_get(struct store *st, const char *name, struct store_issuer *out)
{
	sqlite3_stmt *q = prep(st, "SELECT name, issuer, realm, metadata_url, "
	    "metadata, fetched FROM issuers WHERE name = ?");
	ps_err rc;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, name);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		issuer_row(q, out);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "SELECT name, issuer, realm, metadata_url, "
	    "metadata, fetched FROM issuers ORDER BY name");
	struct store_issuer i;
	ps_err rc = PS_OK;
	int r = SQLITE_DONE;

	if (q == NULL)
		return PS_ESTORE;
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		issuer_row(q, &i);
		rc = fn(arg, &i);
		store_issuer_cleanup(&i);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
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
	sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO thumbs (webapp, "
	    "account, source, etag, updated, s, m, l, hr) VALUES (?, (SELECT "
	    "account FROM users WHERE account = ?), ?, ?, ?, ?, ?, ?, ?)");
	ps_err rc;
	int i;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	bind_text(q, 3, source);
	bind_text(q, 4, etag);
	sqlite3_bind_int64(q, 5, time_now());
	for (i = 0; i < 3; i++)
		sqlite3_bind_blob(q, 6 + i, data[i], (int)len[i],
		    SQLITE_STATIC);
	if (data[STORE_HR])
		sqlite3_bind_blob(q, 9, data[STORE_HR], (int)len[STORE_HR],
		    SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 9);
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
		"SELECT etag, source, updated, s FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, m FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, l FROM thumbs WHERE webapp = ? "
		"AND account = ?",
		"SELECT etag, source, updated, hr FROM thumbs WHERE webapp = ? "
		"AND account = ? AND hr IS NOT NULL",
	};
	sqlite3_stmt *q = prep(st, sql[size]);
	ps_err rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		const void *d = sqlite3_column_blob(q, 3);

		str_copy(out->etag, col_text(q, 0), sizeof(out->etag));
		str_copy(out->source, col_text(q, 1), sizeof(out->source));
		out->updated = sqlite3_column_int64(q, 2);
		out->len = (size_t)sqlite3_column_bytes(q, 3);
		out->data = xmalloc(out->len);
		if (out->len)
			memcpy(out->data, d, out->len);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
		rc = ps_errf(PS_ENOTFOUND, "%s has no photo", account);
	} else {
		rc = store_fail(st, "read photo");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_thumb_etag(struct store *st, int64_t webapp, const char *account,
    char *etag)
{
	sqlite3_stmt *q = prep(st, "SELECT etag FROM thumbs WHERE webapp = ? "
	    "AND account = ?");
	ps_err rc;
	int r;

	etag[0] = '\0';
	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		str_copy(etag, col_text(q, 0), 64);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "DELETE FROM thumbs WHERE webapp = ? AND "
	    "account = ?");
	int changes = 0;
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
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
	sqlite3_stmt *q = prep(st, "SELECT last_success, last_error, reason, "
	    "master_etag, has_mailbox, retry_after FROM sync_state WHERE "
	    "webapp = ? AND account = ?");
	ps_err rc = PS_OK;
	int r;

	memset(out, 0, sizeof(*out));
	out->has_mailbox = -1;
	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		out->last_success = sqlite3_column_int64(q, 0);
		out->last_error = sqlite3_column_int64(q, 1);
		str_copy(out->reason, col_text(q, 2), sizeof(out->reason));
		str_copy(out->master_etag, col_text(q, 3),
		    sizeof(out->master_etag));
		out->has_mailbox = sqlite3_column_int(q, 4);
		out->retry_after = sqlite3_column_int64(q, 5);
	} else if (r != SQLITE_DONE) {
		rc = store_fail(st, "read sync state");
	}
	unprep(st, q);
	return rc;
}

ps_err
store_sync_put(struct store *st, int64_t webapp, const char *account,
    const struct store_sync *s)
{
	sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO sync_state (webapp, "
	    "account, last_success, last_error, reason, master_etag, "
	    "has_mailbox, retry_after) VALUES (?, (SELECT account FROM users "
	    "WHERE account = ?), ?, ?, ?, ?, ?, ?)");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	bind_text(q, 2, account);
	sqlite3_bind_int64(q, 3, s->last_success);
	sqlite3_bind_int64(q, 4, s->last_error);
	bind_text(q, 5, s->reason);
	bind_text(q, 6, s->master_etag);
	sqlite3_bind_int(q, 7, s->has_mailbox);
	sqlite3_bind_int64(q, 8, s->retry_after);
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
	sqlite3_stmt *q = prep(st, "SELECT account, last_success, last_error, "
	    "reason, master_etag, has_mailbox, retry_after FROM sync_state "
	    "WHERE webapp = ?");
	struct store_sync sy;
	ps_err rc = PS_OK;
	int r;

	if (q == NULL)
		return PS_ESTORE;
	sqlite3_bind_int64(q, 1, webapp);
	while (rc == PS_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
		memset(&sy, 0, sizeof(sy));
		sy.last_success = sqlite3_column_int64(q, 1);
		sy.last_error = sqlite3_column_int64(q, 2);
		str_copy(sy.reason, col_text(q, 3), sizeof(sy.reason));
		str_copy(sy.master_etag, col_text(q, 4),
		    sizeof(sy.master_etag));
		sy.has_mailbox = sqlite3_column_int(q, 5);
		sy.retry_after = sqlite3_column_int64(q, 6);
		rc = fn(arg, col_text(q, 0), &sy);
	}
	if (rc == PS_OK && r != SQLITE_DONE)
		rc = store_fail(st, "read sync states");
	unprep(st, q);
	return rc;
}

/* ---- portal: sessions ---- */

ps_err
store_session_put(struct store *st, const char *key,
    const struct store_session *s)
{
	sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO sessions (key, "
	    "account, webapp, csrf, expires) VALUES (?, ?, ?, ?, ?)");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	bind_text(q, 2, s->account);
	sqlite3_bind_int64(q, 3, s->webapp);
	bind_text(q, 4, s->csrf);
	sqlite3_bind_int64(q, 5, s->expires);
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
	sqlite3_stmt *q = prep(st, "SELECT account, webapp, csrf, expires "
	    "FROM sessions WHERE key = ? AND expires > ?");
	ps_err rc;
	int r;

	memset(out, 0, sizeof(*out));
	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	sqlite3_bind_int64(q, 2, time_now());
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		str_copy(out->account, col_text(q, 0), sizeof(out->account));
		out->webapp = sqlite3_column_int64(q, 1);
		str_copy(out->csrf, col_text(q, 2), sizeof(out->csrf));
		out->expires = sqlite3_column_int64(q, 3);
		rc = PS_OK;
	} else if (r == SQLITE_DONE) {
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
	sqlite3_stmt *q = prep(st, "DELETE FROM sessions WHERE key = ? OR "
	    "expires <= ?");
	ps_err rc;

	if (q == NULL)
		return PS_ESTORE;
	bind_text(q, 1, key);
	sqlite3_bind_int64(q, 2, time_now());
	rc = step_done(st, q, NULL);
	unprep(st, q);
	return rc;
}
