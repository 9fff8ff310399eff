/*
 * The SQLite driver of the store (driver.h): the only user of SQLite.
 *
 * WAL mode with a busy timeout, so admin commands and a running server can
 * share one file. Migrations are numbered SQL scripts per role; the
 * database's user_version records how many were applied, its
 * application_id the role.
 *
 * The change feed (store.h) is written by triggers the migrations install
 * on every table a server may cache. They call two functions this file
 * registers on each connection: ps_feed_origin() (this process) and
 * ps_feed_tx() (this connection's transaction, so that one transaction
 * writes one row per changed object however many rows of it changed). A
 * tool that does not register them (the sqlite3 shell) can read the store
 * but not change it, so no change escapes the feed. SQLite has one writer
 * at a time, so sequence numbers are in commit order.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "driver.h"

/* A WAL this long is copied back into the database (SQLite's default). */
#define WAL_CHECKPOINT_FRAMES	1000

struct sqlite_conn {
	sqlite3		*db;
	char		*path;
	int64_t		 tx;	/* this connection's transaction */
};

struct sqlite_stmt {
	struct db_stmt	 base;
	sqlite3_stmt	*q;
};

static sqlite3 *
conn_db(struct store *st)
{
	return ((struct sqlite_conn *)st->conn)->db;
}

static sqlite3_stmt *
stmt_q(struct db_stmt *q)
{
	return ((struct sqlite_stmt *)q)->q;
}

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
 * Leases (store.h), the same table in both roles: no server caches them,
 * so no trigger writes the feed for them. Frozen once released.
 */
#define LEASES_SCHEMA							\
	"CREATE TABLE leases ("						\
	"  name TEXT PRIMARY KEY,"					\
	"  holder INTEGER NOT NULL,"					\
	"  expires INTEGER NOT NULL);"

/*
 * Sign-in failure counts shared between nodes (store.h), the same tables
 * in both roles. signin_key holds one row, the key every node names
 * accounts and addresses with. A count's insert or update writes the
 * feed (how other nodes learn it); pruning (a delete) writes none.
 * Frozen once released.
 */
#define SIGNIN_SCHEMA							\
	"CREATE TABLE signin_key ("					\
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"			\
	"  key TEXT NOT NULL);"						\
	"CREATE TABLE signin_counts ("					\
	"  name TEXT PRIMARY KEY,"					\
	"  failures INTEGER NOT NULL,"					\
	"  last INTEGER NOT NULL);"					\
	"CREATE INDEX signin_counts_last ON signin_counts (last);"	\
	"CREATE TRIGGER feed_signin_counts_insert AFTER INSERT ON "	\
	"signin_counts BEGIN "						\
	FEED_ROW("signin_count", "NEW.name") " END;"			\
	"CREATE TRIGGER feed_signin_counts_update AFTER UPDATE ON "	\
	"signin_counts BEGIN "						\
	FEED_ROW("signin_count", "NEW.name") " END;"

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
	/* 5: leases, work shared between nodes (store.h); no feed */
	LEASES_SCHEMA,
	/* 6: sign-in failure counts shared between nodes (store.h) */
	SIGNIN_SCHEMA,
	/*
	 * 7: mailboxes read from a directory, keyed by its id so a renamed
	 * entry keeps its photo; a disabled mailbox is kept but not served
	 */
	"ALTER TABLE mailboxes ADD COLUMN directory_id TEXT;"
	"ALTER TABLE mailboxes ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX mailboxes_directory_id ON mailboxes "
	"  (directory_id);",
	/*
	 * 8: the directory outbox, one row per mailbox whose photo is to be
	 * written to its directory entry (a newer change replaces the row:
	 * its new id, never one used before, tells a delivery that read
	 * the older one); and photo_hidden, for hiding a photo
	 * (store_photo_hide)
	 */
	"CREATE TABLE directory_outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  email TEXT NOT NULL UNIQUE COLLATE NOCASE"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  created INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt INTEGER NOT NULL,"
	"  last_error TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX directory_outbox_due ON directory_outbox (next_attempt);"
	"ALTER TABLE mailboxes ADD COLUMN photo_hidden INTEGER NOT NULL "
	"  DEFAULT 0;"
	FEED_TABLE("directory_outbox", "directory_outbox", "NEW.id", "OLD.id"),
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
	/* 5: leases, work shared between nodes (store.h); no feed */
	LEASES_SCHEMA,
	/* 6: sign-in failure counts shared between nodes (store.h) */
	SIGNIN_SCHEMA,
	/* 7: sign-in by a single sign-on proxy (auth/sso.h); off by default */
	"ALTER TABLE webapps ADD COLUMN sso_header TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN sso_proxies TEXT NOT NULL DEFAULT '';",
	/*
	 * 8: Kerberos sign-in per web application (auth/negotiate.h), off
	 * while keytab is empty; users read from a directory, keyed by its id
	 * so a renamed account keeps its photo; a disabled user is kept but
	 * neither signs in nor is served
	 */
	"ALTER TABLE webapps ADD COLUMN keytab TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN kerberos_service TEXT NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN kerberos_realms TEXT NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE users ADD COLUMN directory_id TEXT;"
	"ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX users_directory_id ON users (directory_id);",
	/*
	 * 9: a photo the master shows its owner alone (hidden there): the
	 * portal shows it to that user alone too
	 */
	"ALTER TABLE thumbs ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;",
};
#pragma GCC diagnostic pop

/*
 * Records and logs SQLite's error, once, where it is detected. For a file
 * that could not be written the system's reason comes too ("disk I/O
 * error: File too large").
 */
static ps_err
sq_fail(struct store *st, const char *what)
{
	sqlite3 *db = conn_db(st);
	int code = sqlite3_errcode(db), sys = sqlite3_system_errno(db);
	char error[256];

	if (sys != 0 && (code == SQLITE_IOERR || code == SQLITE_FULL ||
	    code == SQLITE_CANTOPEN))
		snprintf(error, sizeof(error), "%s: %s", sqlite3_errmsg(db),
		    strerror(sys));
	else
		str_copy(error, sqlite3_errmsg(db), sizeof(error));
	log_err(NULL, "store.error", "what=%s error=%s", log_q(what),
	    log_q(error));
	return ps_errf(PS_ESTORE, "%s: %s (%s)", what, error, st->where);
}

static const char *
sq_errmsg(struct store *st)
{
	return sqlite3_errmsg(conn_db(st));
}

static ps_err
sq_exec(struct store *st, const char *sql)
{
	if (sqlite3_exec(conn_db(st), sql, NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(st, "exec");
	return PS_OK;
}

static ps_err
sq_begin(struct store *st)
{
	if (sqlite3_exec(conn_db(st), "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sq_fail(st, "begin");
	return PS_OK;
}

static bool
sq_in_tx(struct store *st)
{
	return !sqlite3_get_autocommit(conn_db(st));
}

/* A file: there is no server to lose. */
static bool
sq_connected(struct store *st)
{
	(void)st;
	return true;
}

/*
 * Rolls the transaction back, if there still is one. After some errors
 * (a full disk, an I/O error, out of memory) SQLite has rolled it back
 * itself, and a ROLLBACK would only fail with "no transaction is active"
 * and hide the real error. A failure here is logged, but the reason
 * recorded for the caller stays the first error, the one that matters.
 */
static void
sq_rollback(struct store *st)
{
	if (!sq_in_tx(st))
		return;
	if (sqlite3_exec(conn_db(st), "ROLLBACK", NULL, NULL, NULL) !=
	    SQLITE_OK)
		log_err(NULL, "store.error", "what=rollback error=%s",
		    log_q(sqlite3_errmsg(conn_db(st))));
}

static ps_err
sq_commit(struct store *st)
{
	ps_err rc;

	if (sqlite3_exec(conn_db(st), "COMMIT", NULL, NULL, NULL) ==
	    SQLITE_OK)
		return PS_OK;
	rc = sq_fail(st, "commit");
	sq_rollback(st);
	return rc;
}

/* One integer that `sql` reads; `what` names it in an error. */
static ps_err
sq_int(struct store *st, const char *sql, const char *what, int *out)
{
	sqlite3_stmt *q = NULL;
	ps_err rc = PS_OK;

	if (sqlite3_prepare_v2(conn_db(st), sql, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW)
		rc = sq_fail(st, what);
	else
		*out = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return rc;
}

static ps_err
sq_mark_get(struct store *st, int *mark, int *version)
{
	ps_err rc;

	if ((rc = sq_int(st, "PRAGMA application_id", "read the store's role",
	    mark)) != PS_OK)
		return rc;
	return sq_int(st, "PRAGMA user_version", "read schema version",
	    version);
}

static ps_err
sq_mark_set(struct store *st, int mark, int version)
{
	char *set = xasprintf("PRAGMA application_id = %d; PRAGMA "
	    "user_version = %d", mark, version);
	ps_err rc = sq_exec(st, set);

	free(set);
	return rc;
}

static ps_err
sq_has_table(struct store *st, const char *name, bool *yes)
{
	char *sql = xasprintf("SELECT count(*) FROM sqlite_master WHERE "
	    "name = '%s'", name);
	int n = 0;
	ps_err rc = sq_int(st, sql, "read the store's tables", &n);

	free(sql);
	*yes = n > 0;
	return rc;
}

/* ---- statements ---- */

static struct db_stmt *
sq_prepare(struct store *st, const char *sql, bool keep)
{
	struct sqlite_stmt *s;
	sqlite3_stmt *q = NULL;

	if (sqlite3_prepare_v3(conn_db(st), sql, -1, keep ?
	    SQLITE_PREPARE_PERSISTENT : 0, &q, NULL) != SQLITE_OK)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->q = q;
	return &s->base;
}

static void
sq_finalize(struct db_stmt *q)
{
	sqlite3_finalize(stmt_q(q));
	free(q);
}

static void
sq_reset(struct db_stmt *q)
{
	sqlite3_reset(stmt_q(q));
	sqlite3_clear_bindings(stmt_q(q));
}

static void
sq_bind_int64(struct db_stmt *q, int i, int64_t v)
{
	sqlite3_bind_int64(stmt_q(q), i, v);
}

static void
sq_bind_text(struct db_stmt *q, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(stmt_q(q), i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(stmt_q(q), i);
}

static void
sq_bind_blob(struct db_stmt *q, int i, const void *p, size_t len)
{
	sqlite3_bind_blob64(stmt_q(q), i, p, len, SQLITE_STATIC);
}

/*
 * A statement stepped again after its last row starts over (SQLite's
 * rule): so a loop over rows that rebinds resets first, as store.c
 * does.
 */
static enum db_step
sq_step(struct store *st, struct db_stmt *q)
{
	(void)st;
	switch (sqlite3_step(stmt_q(q))) {
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_DONE:
		return DB_DONE;
	case SQLITE_CONSTRAINT:
		return DB_CONSTRAINT;
	default:
		return DB_ERROR;
	}
}

static int64_t
sq_changes(struct store *st, struct db_stmt *q)
{
	(void)q;
	return sqlite3_changes(conn_db(st));
}

static bool
sq_col_null(struct db_stmt *q, int i)
{
	return sqlite3_column_type(stmt_q(q), i) == SQLITE_NULL;
}

static int64_t
sq_col_int64(struct db_stmt *q, int i)
{
	return sqlite3_column_int64(stmt_q(q), i);
}

static const char *
sq_col_text(struct db_stmt *q, int i)
{
	return (const char *)sqlite3_column_text(stmt_q(q), i);
}

static const void *
sq_col_blob(struct db_stmt *q, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(stmt_q(q), i);

	*len = (size_t)sqlite3_column_bytes(stmt_q(q), i);
	return p;
}

static enum db_type
sq_col_type(struct db_stmt *q, int i)
{
	switch (sqlite3_column_type(stmt_q(q), i)) {
	case SQLITE_NULL:
		return DB_NULL;
	case SQLITE_INTEGER:
		return DB_INT;
	case SQLITE_BLOB:
		return DB_BLOB;
	default:
		return DB_TEXT;
	}
}

/* SQLite's INTEGER PRIMARY KEY goes on from the largest id there is. */
static ps_err
sq_ids_follow(struct store *st, const char *table, const char *column)
{
	(void)st;
	(void)table;
	(void)column;
	return PS_OK;
}

/* ---- the change feed's functions, and the commit hooks ---- */

/* Transaction numbers, unique in the process across its connections. */
static _Atomic int64_t feed_tx_last;

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
	sqlite3_result_int64(ctx, store_feed_origin());
}

/* ps_feed_tx(): this connection's transaction. */
static void
sql_feed_tx(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct sqlite_conn *c = sqlite3_user_data(ctx);

	(void)argc;
	(void)argv;
	sqlite3_result_int64(ctx, c->tx);
}

/* Each commit ends a transaction: the next one gets a new number. */
static int
on_commit(void *arg)
{
	struct sqlite_conn *c = arg;

	c->tx = feed_tx_new();
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

	store_feed_bump(st);
	if (frames >= WAL_CHECKPOINT_FRAMES)
		(void)sqlite3_wal_checkpoint_v2(db, schema,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static void
sq_close(struct store *st)
{
	struct sqlite_conn *c = st->conn;

	if (c == NULL)
		return;
	sqlite3_close(c->db);
	free(c->path);
	free(c);
	st->conn = NULL;
}

static const struct db_driver sqlite_driver = {
	.name = "SQLite",
	.migrations = { master_migrations, portal_migrations },
	.nmigrations = {
		sizeof(master_migrations) / sizeof(master_migrations[0]),
		sizeof(portal_migrations) / sizeof(portal_migrations[0]),
	},
	.close = sq_close,
	.prepare = sq_prepare,
	.finalize = sq_finalize,
	.reset = sq_reset,
	.bind_int64 = sq_bind_int64,
	.bind_text = sq_bind_text,
	.bind_blob = sq_bind_blob,
	.step = sq_step,
	.changes = sq_changes,
	.col_null = sq_col_null,
	.col_int64 = sq_col_int64,
	.col_text = sq_col_text,
	.col_blob = sq_col_blob,
	.col_type = sq_col_type,
	.fail = sq_fail,
	.errmsg = sq_errmsg,
	.exec = sq_exec,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.in_tx = sq_in_tx,
	.connected = sq_connected,
	.mark_get = sq_mark_get,
	.mark_set = sq_mark_set,
	.has_table = sq_has_table,
	.ids_follow = sq_ids_follow,
};

/* ---- opening ---- */

ps_err
store_sqlite_connect(struct store *st, const char *path, bool create,
    bool *created)
{
	struct sqlite_conn *c = xcalloc(1, sizeof(*c));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	ps_err rc;

	*created = create && access(path, F_OK) != 0;
	c->path = xstrdup(path);
	c->tx = feed_tx_new();
	st->drv = &sqlite_driver;
	st->conn = c;
	st->where = xstrdup(path);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
		if (!create)
			return ps_errf(PS_ENOTFOUND, "no store at %s (run init "
			    "first)", path);
		return sq_fail(st, "open");
	}
	/* INNOCUOUS: the triggers may call them with trusted_schema off. */
	if (sqlite3_create_function_v2(c->db, "ps_feed_origin", 0,
	    SQLITE_UTF8 | SQLITE_INNOCUOUS, NULL, sql_feed_origin, NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_create_function_v2(c->db, "ps_feed_tx", 0,
	    SQLITE_UTF8 | SQLITE_INNOCUOUS, c, sql_feed_tx, NULL, NULL,
	    NULL) != SQLITE_OK)
		return sq_fail(st, "register feed functions");
	sqlite3_commit_hook(c->db, on_commit, c);
	sqlite3_wal_hook(c->db, on_wal_commit, st);
	sqlite3_busy_timeout(c->db, 5000);
	/*
	 * A new file's pages are 16 KiB, not 4: a photo's sizes (the
	 * portal's high-resolution copy is ~100 KB) are written as a
	 * quarter of the WAL frames, each a write(2) and, at the
	 * checkpoint, another. Only before the first write; an existing
	 * file keeps its size.
	 */
	if (*created && (rc = sq_exec(st, "PRAGMA page_size=16384;")) !=
	    PS_OK)
		return rc;
	/*
	 * recursive_triggers: the rows INSERT OR REPLACE deletes fire the
	 * feed's delete triggers too. trusted_schema off: a tampered file
	 * cannot make this process run functions it does not expect.
	 */
	return sq_exec(st, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA recursive_triggers=ON; PRAGMA trusted_schema=OFF;");
}
