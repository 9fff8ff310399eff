/*
 * The PostgreSQL driver of the store (driver.h): the only user of libpq.
 *
 * A connection per struct store, opened from a postgresql:// URI and,
 * when the state directory keeps one, a passfile. Statements are
 * prepared on the server once per connection (named "ps<n>") the first
 * time they run, with the types of the values bound then: integers are
 * sent as int8, blobs as bytea (binary), text as untyped literals so
 * that the server infers the column's type (citext compares without
 * case). Results come back in binary and whole: a callback may run other
 * statements on the same connection while its caller reads rows.
 *
 * A lost connection is reset at the next call that is not inside a
 * transaction (the transaction died with it); while the server cannot be
 * reached every call fails with PS_ESTORE saying so.
 *
 * The schema (the migrations below) mirrors SQLite's: bigint for
 * INTEGER, citext COLLATE "C" for TEXT COLLATE NOCASE (ASCII case
 * folding and byte order, as SQLite's NOCASE), bytea stored EXTERNAL
 * (JPEGs do not compress: no attempt is made). The role's mark and the
 * schema version are the one row of table photosync_store.
 *
 * The change feed, as store.h describes it, with:
 *
 *   - triggers in PL/pgSQL writing the rows in the change's transaction,
 *     the process's origin taken from the session setting
 *     photosync.origin, set at connect (a session without it, psql say,
 *     writes origin 0: its changes reach every server);
 *   - the sequence from an identity column, in commit order: PostgreSQL
 *     hands sequence numbers out when asked, not at commit, so a reader
 *     could otherwise see 7 committed before 6 and skip 6 for good. So
 *     every statement that changes a table with a feed first takes a
 *     transaction-level advisory lock (a BEFORE ... FOR EACH STATEMENT
 *     trigger, before any row is touched, so it cannot deadlock with row
 *     locks), held until commit: feed-writing transactions run one at a
 *     time, each commit visible before the next takes a number. This is
 *     SQLite's one writer at a time, across nodes;
 *   - a NOTIFY on channel photosync_feed from each transaction that
 *     wrote a row (sent at commit), which the followers LISTEN for
 *     (store_listen_*); the feed's sequence number catches up whatever
 *     a follower missed while it was not listening.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "driver.h"

/* The types this driver sends and reads (pg_type.h's fixed OIDs). */
#define OID_BOOL	16
#define OID_BYTEA	17
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23

/* The advisory lock of feed-writing transactions ("PSF1", 1). */
#define FEED_LOCK	"1347634737, 1"

/* Seconds a connection attempt may take, unless the URI says. */
#define CONNECT_TIMEOUT	"10"

struct pg_conn {
	PGconn		*pg;
	char		*uri;
	char		*password;	/* NULL: from the passfile, if any */
	char		*passfile;
	unsigned	 gen;		/* connection number: after a reset,
					   statements are prepared again */
	unsigned	 names;		/* statement names given */
	bool		 in_tx;		/* begin() was called, not ended */
	char		 error[512];	/* the last error met */
};

struct pg_stmt {
	struct db_stmt	 base;
	char		*sql;		/* with $N parameters */
	char		 name[16];	/* "": not kept (unnamed) */
	unsigned	 prepared;	/* the gen it was prepared in, or 0 */
	int		 n;		/* parameters */
	Oid		*types;
	char		**values;	/* owned copies, or borrowed blobs */
	bool		*owned;
	int		*lengths;
	int		*formats;
	char		(*ints)[8];	/* big-endian int8 values */
	PGresult	*res;
	int		 row;
	int64_t		 changes;
};

static struct pg_conn *
conn_of(struct store *st)
{
	return st->conn;
}

static void
set_error(struct pg_conn *c, const char *msg)
{
	size_t n;

	str_copy(c->error, msg && *msg ? msg : "unknown error",
	    sizeof(c->error));
	/* libpq's messages end with a newline, sometimes two lines. */
	n = strlen(c->error);
	while (n > 0 && (c->error[n - 1] == '\n' || c->error[n - 1] == ' '))
		c->error[--n] = '\0';
	for (n = 0; c->error[n]; n++)
		if (c->error[n] == '\n' || c->error[n] == '\t')
			c->error[n] = ' ';
}

static ps_err
pg_fail(struct store *st, const char *what)
{
	struct pg_conn *c = conn_of(st);

	log_err(NULL, "store.error", "what=%s error=%s", log_q(what),
	    log_q(c->error));
	return ps_errf(PS_ESTORE, "%s: %s (%s)", what, c->error, st->where);
}

static const char *
pg_errmsg(struct store *st)
{
	return conn_of(st)->error;
}

/* The server's notices ("already exists, skipping") are not ours to show. */
static void
notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/*
 * Sets this connection's origin for the feed's triggers: a session
 * setting, so it outlives transactions.
 */
static bool
conn_setup(struct pg_conn *c)
{
	char origin[24];
	const char *values[1] = { origin };
	PGresult *r;
	bool ok;

	PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
	snprintf(origin, sizeof(origin), "%lld",
	    (long long)store_feed_origin());
	r = PQexecParams(c->pg, "SELECT set_config('photosync.origin', $1, "
	    "false)", 1, NULL, values, NULL, NULL, 0);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		set_error(c, PQerrorMessage(c->pg));
	PQclear(r);
	return ok;
}

/* A new connection from the URI, the password and the passfile. */
static PGconn *
conn_new(const char *uri, const char *password, const char *passfile)
{
	const char *keys[6], *values[6];
	int n = 0;

	/* Those after "dbname" override what the URI says; before, not. */
	keys[n] = "connect_timeout";
	values[n++] = CONNECT_TIMEOUT;
	keys[n] = "fallback_application_name";
	values[n++] = "photosync";
	keys[n] = "dbname";
	values[n++] = uri;
	if (password) {
		keys[n] = "password";
		values[n++] = password;
	}
	if (passfile) {
		keys[n] = "passfile";
		values[n++] = passfile;
	}
	keys[n] = values[n] = NULL;
	return PQconnectdbParams(keys, values, 1);
}

/*
 * Makes sure the connection is up: a lost one is reset, unless a
 * transaction was open on it (it is gone: the caller's next commit
 * fails). False, with c->error, when the server cannot be reached.
 */
static bool
conn_ensure(struct pg_conn *c)
{
	if (PQstatus(c->pg) == CONNECTION_OK)
		return true;
	if (c->in_tx) {
		set_error(c, "the connection to the store was lost in a "
		    "transaction");
		return false;
	}
	PQfinish(c->pg);
	c->pg = conn_new(c->uri, c->password, c->passfile);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char msg[400];

		snprintf(msg, sizeof(msg), "the store is unreachable: %s",
		    PQerrorMessage(c->pg));
		set_error(c, msg);
		return false;
	}
	c->gen++;
	if (!conn_setup(c))
		return false;
	log_info(NULL, "store.reconnected", "address=%s", log_q(c->uri));
	return true;
}

/*
 * Runs SQL that returns no rows (several statements may be given);
 * false with c->error.
 */
static bool
run(struct pg_conn *c, const char *sql)
{
	PGresult *r;
	bool ok;

	if (!conn_ensure(c))
		return false;
	r = PQexec(c->pg, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		set_error(c, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static ps_err
pg_exec(struct store *st, const char *sql)
{
	if (!run(conn_of(st), sql))
		return pg_fail(st, "exec");
	return PS_OK;
}

static ps_err
pg_begin(struct store *st)
{
	struct pg_conn *c = conn_of(st);

	if (c->in_tx) {
		set_error(c, "cannot start a transaction within a "
		    "transaction");
		return pg_fail(st, "begin");
	}
	if (!run(c, "BEGIN"))
		return pg_fail(st, "begin");
	c->in_tx = true;
	return PS_OK;
}

static bool
pg_in_tx(struct store *st)
{
	struct pg_conn *c = conn_of(st);

	return c->in_tx && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) == PQTRANS_INTRANS;
}

static bool
pg_connected(struct store *st)
{
	return PQstatus(conn_of(st)->pg) == CONNECTION_OK;
}

/* A failure here is logged; the reason recorded stays the first error. */
static void
pg_rollback(struct store *st)
{
	struct pg_conn *c = conn_of(st);
	PGresult *r;

	if (!c->in_tx)
		return;
	c->in_tx = false;
	if (PQstatus(c->pg) != CONNECTION_OK)
		return;
	r = PQexec(c->pg, "ROLLBACK");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		log_err(NULL, "store.error", "what=rollback error=%s",
		    log_q(PQresultErrorMessage(r)));
	PQclear(r);
}

static ps_err
pg_commit(struct store *st)
{
	struct pg_conn *c = conn_of(st);
	PGresult *r;
	ps_err rc = PS_OK;

	r = PQexec(c->pg, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_error(c, PQresultErrorMessage(r));
		rc = pg_fail(st, "commit");
	}
	PQclear(r);
	c->in_tx = false;
	if (rc == PS_OK)
		store_feed_bump(st);
	return rc;
}

/* One integer that `sql` reads (text results); false with c->error. */
static bool
read_int(struct pg_conn *c, const char *sql, int nparams,
    const char *const *params, int *out)
{
	PGresult *r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL,
	    NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		set_error(c, PQresultErrorMessage(r));
	else
		*out = PQntuples(r) > 0 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return ok;
}

/*
 * The mark and the version, after taking the feed's lock, so that two
 * nodes starting at once do not both migrate (the second waits, then
 * finds the schema up to date). In store_migrate()'s transaction.
 */
static ps_err
pg_mark_get(struct store *st, int *mark, int *version)
{
	struct pg_conn *c = conn_of(st);
	int exists = 0;

	*mark = STORE_MARK_NONE;
	*version = 0;
	if (!run(c, "SELECT pg_advisory_xact_lock(" FEED_LOCK ")") ||
	    !read_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = "
	    "current_schema() AND tablename = 'photosync_store'", 0, NULL,
	    &exists))
		return pg_fail(st, "read the store's role");
	if (!exists)
		return PS_OK;
	if (!read_int(c, "SELECT mark FROM photosync_store", 0, NULL, mark) ||
	    !read_int(c, "SELECT version FROM photosync_store", 0, NULL,
	    version))
		return pg_fail(st, "read schema version");
	return PS_OK;
}

static ps_err
pg_mark_set(struct store *st, int mark, int version)
{
	char *sql = xasprintf("CREATE TABLE IF NOT EXISTS photosync_store ("
	    "mark integer NOT NULL, version integer NOT NULL);"
	    "DELETE FROM photosync_store;"
	    "INSERT INTO photosync_store (mark, version) VALUES (%d, %d)",
	    mark, version);
	ps_err rc = pg_exec(st, sql);

	free(sql);
	return rc;
}

static ps_err
pg_has_table(struct store *st, const char *name, bool *yes)
{
	struct pg_conn *c = conn_of(st);
	const char *params[1] = { name };
	int n = 0;

	if (!read_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = "
	    "current_schema() AND tablename = $1", 1, params, &n))
		return pg_fail(st, "read the store's tables");
	*yes = n > 0;
	return PS_OK;
}

/* ---- statements ---- */

/*
 * SQLite's parameters as PostgreSQL's: `?N` is $N, a bare `?` one more
 * than the highest number before it. Quoted strings are left as they
 * are. *n receives the highest number.
 */
static char *
sql_translate(const char *sql, int *n)
{
	char *out = xmalloc(strlen(sql) * 3 + 1), *o = out;
	bool quoted = false;
	int highest = 0, num;
	const char *p;

	for (p = sql; *p; p++) {
		if (*p == '\'')
			quoted = !quoted;
		if (quoted || *p != '?') {
			*o++ = *p;
			continue;
		}
		if (p[1] >= '0' && p[1] <= '9') {
			num = (int)strtol(p + 1, (char **)&p, 10);
			p--;
		} else {
			num = highest + 1;
		}
		if (num > highest)
			highest = num;
		o += sprintf(o, "$%d", num);
	}
	*o = '\0';
	*n = highest;
	return out;
}

static struct db_stmt *
pg_prepare(struct store *st, const char *sql, bool keep)
{
	struct pg_conn *c = conn_of(st);
	struct pg_stmt *s = xcalloc(1, sizeof(*s));
	size_t n;

	s->sql = sql_translate(sql, &s->n);
	n = (size_t)s->n + 1;
	s->types = xcalloc(n, sizeof(*s->types));
	s->values = xcalloc(n, sizeof(*s->values));
	s->owned = xcalloc(n, sizeof(*s->owned));
	s->lengths = xcalloc(n, sizeof(*s->lengths));
	s->formats = xcalloc(n, sizeof(*s->formats));
	s->ints = xcalloc(n, sizeof(*s->ints));
	s->row = -1;
	if (keep)
		snprintf(s->name, sizeof(s->name), "ps%u", ++c->names);
	return &s->base;
}

static void
clear_values(struct pg_stmt *s)
{
	int i;

	for (i = 0; i < s->n; i++) {
		if (s->owned[i])
			free(s->values[i]);
		s->values[i] = NULL;
		s->owned[i] = false;
		s->lengths[i] = 0;
		s->formats[i] = 0;
	}
}

static void
pg_reset(struct db_stmt *q)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	clear_values(s);
}

static void
pg_finalize(struct db_stmt *q)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	/* A named statement stays on the server until the connection ends. */
	pg_reset(q);
	free(s->sql);
	free(s->types);
	free(s->values);
	free(s->owned);
	free(s->lengths);
	free(s->formats);
	free(s->ints);
	free(s);
}

/*
 * The index of parameter i (from 1), its old value freed; -1 when the
 * statement has no such parameter.
 */
static int
param(struct pg_stmt *s, int i)
{
	if (i < 1 || i > s->n)
		return -1;
	if (s->owned[i - 1])
		free(s->values[i - 1]);
	s->owned[i - 1] = false;
	return i - 1;
}

static void
pg_bind_int64(struct db_stmt *q, int i, int64_t v)
{
	struct pg_stmt *s = (struct pg_stmt *)q;
	uint64_t u = (uint64_t)v;
	int k = param(s, i), b;

	if (k < 0)
		return;
	for (b = 0; b < 8; b++)
		s->ints[k][b] = (char)(u >> (56 - 8 * b));
	s->values[k] = s->ints[k];
	s->lengths[k] = 8;
	s->formats[k] = 1;
	if (s->types[k] == 0)
		s->types[k] = OID_INT8;
}

static void
pg_bind_text(struct db_stmt *q, int i, const char *v)
{
	struct pg_stmt *s = (struct pg_stmt *)q;
	int k = param(s, i);

	if (k < 0)
		return;
	s->values[k] = v ? xstrdup(v) : NULL;
	s->owned[k] = v != NULL;
	s->lengths[k] = 0;
	s->formats[k] = 0;
}

static void
pg_bind_blob(struct db_stmt *q, int i, const void *p, size_t len)
{
	struct pg_stmt *s = (struct pg_stmt *)q;
	int k = param(s, i);

	if (k < 0)
		return;
	/* An empty blob is not NULL: any valid pointer will do. */
	s->values[k] = (char *)(p ? p : "");
	s->lengths[k] = (int)len;
	s->formats[k] = 1;
	if (s->types[k] == 0)
		s->types[k] = OID_BYTEA;
}

/* Whether the command changed rows outside a transaction (a commit). */
static bool
is_write(const PGresult *r)
{
	const char *tag = PQcmdStatus((PGresult *)r);

	return strncmp(tag, "INSERT", 6) == 0 ||
	    strncmp(tag, "UPDATE", 6) == 0 || strncmp(tag, "DELETE", 6) == 0;
}

/* Runs the statement; its rows are then read one step at a time. */
static enum db_step
pg_run(struct store *st, struct pg_stmt *s)
{
	struct pg_conn *c = conn_of(st);
	const char *state;
	bool constraint;
	PGresult *r;

	if (!conn_ensure(c))
		return DB_ERROR;
	if (s->name[0] && s->prepared != c->gen + 1) {
		r = PQprepare(c->pg, s->name, s->sql, s->n, s->types);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			set_error(c, PQresultErrorMessage(r));
			PQclear(r);
			return DB_ERROR;
		}
		PQclear(r);
		s->prepared = c->gen + 1;
	}
	if (s->name[0])
		r = PQexecPrepared(c->pg, s->name, s->n,
		    (const char *const *)s->values, s->lengths, s->formats, 1);
	else
		r = PQexecParams(c->pg, s->sql, s->n, s->types,
		    (const char *const *)s->values, s->lengths, s->formats, 1);
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
		s->res = r;
		s->row = -1;
		s->changes = strtoll(PQcmdTuples(r), NULL, 10);
		if (!c->in_tx && is_write(r))
			store_feed_bump(st);
		return DB_DONE;
	default:
		set_error(c, PQresultErrorMessage(r));
		state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		/* Class 23: integrity constraint violation. */
		constraint = state && strncmp(state, "23", 2) == 0;
		PQclear(r);
		return constraint ? DB_CONSTRAINT : DB_ERROR;
	}
}

static enum db_step
pg_step(struct store *st, struct db_stmt *q)
{
	struct pg_stmt *s = (struct pg_stmt *)q;
	enum db_step r;

	if (s->res == NULL && (r = pg_run(st, s)) != DB_DONE)
		return r;
	if (PQresultStatus(s->res) != PGRES_TUPLES_OK)
		return DB_DONE;
	if (s->row + 1 < PQntuples(s->res)) {
		s->row++;
		return DB_ROW;
	}
	return DB_DONE;
}

static int64_t
pg_changes(struct store *st, struct db_stmt *q)
{
	(void)st;
	return ((struct pg_stmt *)q)->changes;
}

static bool
pg_col_null(struct db_stmt *q, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	return PQgetisnull(s->res, s->row, i) != 0;
}

static int64_t
pg_col_int64(struct db_stmt *q, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)q;
	const unsigned char *p;
	uint64_t v = 0;
	int len, b;

	if (PQgetisnull(s->res, s->row, i))
		return 0;
	p = (const unsigned char *)PQgetvalue(s->res, s->row, i);
	len = PQgetlength(s->res, s->row, i);
	switch (PQftype(s->res, i)) {
	case OID_INT8:
	case OID_INT4:
	case OID_INT2:
	case OID_BOOL:
		for (b = 0; b < len; b++)
			v = v << 8 | p[b];
		/* Sign-extend the narrower ones. */
		if (len < 8 && len > 0 && (p[0] & 0x80))
			v |= ~(uint64_t)0 << (8 * len);
		return (int64_t)v;
	default:
		return strtoll((const char *)p, NULL, 10);
	}
}

static const char *
pg_col_text(struct db_stmt *q, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	if (PQgetisnull(s->res, s->row, i))
		return NULL;
	return PQgetvalue(s->res, s->row, i);
}

static const void *
pg_col_blob(struct db_stmt *q, int i, size_t *len)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	*len = (size_t)PQgetlength(s->res, s->row, i);
	return PQgetvalue(s->res, s->row, i);
}

static enum db_type
pg_col_type(struct db_stmt *q, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)q;

	if (PQgetisnull(s->res, s->row, i))
		return DB_NULL;
	switch (PQftype(s->res, i)) {
	case OID_INT8:
	case OID_INT4:
	case OID_INT2:
	case OID_BOOL:
		return DB_INT;
	case OID_BYTEA:
		return DB_BLOB;
	default:
		return DB_TEXT;
	}
}

/* The identity column's sequence goes on after the largest id copied. */
static ps_err
pg_ids_follow(struct store *st, const char *table, const char *column)
{
	char *sql = xasprintf("SELECT setval(pg_get_serial_sequence('%s', "
	    "'%s'), coalesce(max(%s), 0) + 1, false) FROM %s", table, column,
	    column, table);
	ps_err rc = pg_exec(st, sql);

	free(sql);
	return rc;
}

static void
pg_close(struct store *st)
{
	struct pg_conn *c = conn_of(st);

	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c->uri);
	if (c->password)
		xfree_secret(c->password, strlen(c->password));
	free(c->passfile);
	free(c);
	st->conn = NULL;
}

/* ---- migrations ---- */

/*
 * The change feed's tables and functions, shared by both roles'
 * migrations (SQLite's FEED_SCHEMA, store_sqlite.c, says what each is).
 * ps_feed_add(kind, key) writes one row unless the transaction has
 * written the same already, and asks for the NOTIFY sent at commit (one
 * per transaction). Since the feed's lock is held from the transaction's
 * first feed row to its commit, its rows are the newest of the feed: the
 * transaction-local setting photosync.tx_first ("<tx>:<its first seq>")
 * bounds the look back to them. (SQLite looks at the newest row alone,
 * which its cascades keep in order; PostgreSQL's fire in another order.)
 */
#define FEED_SCHEMA							\
	"CREATE TABLE feed ("						\
	"  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"	\
	"  kind text NOT NULL,"						\
	"  key text NOT NULL,"						\
	"  origin bigint NOT NULL,"					\
	"  tx bigint NOT NULL,"						\
	"  at bigint NOT NULL);"					\
	"CREATE TABLE feed_pruned (pruned bigint NOT NULL);"		\
	"INSERT INTO feed_pruned (pruned) VALUES (0);"			\
	"CREATE FUNCTION ps_feed_lock() RETURNS trigger LANGUAGE plpgsql "\
	"AS $$ BEGIN"							\
	"  PERFORM pg_advisory_xact_lock(" FEED_LOCK ");"		\
	"  RETURN NULL; "						\
	"END $$;"							\
	"CREATE FUNCTION ps_feed_add(k text, v text) RETURNS void "	\
	"LANGUAGE plpgsql AS $$ DECLARE"				\
	"  o bigint := coalesce(nullif(current_setting("		\
	"    'photosync.origin', true), ''), '0')::bigint;"		\
	"  t bigint := txid_current();"				\
	"  tx_first text := current_setting('photosync.tx_first', true);" \
	"  s bigint; "							\
	"BEGIN"								\
	"  IF v IS NULL THEN RETURN; END IF;"				\
	"  IF split_part(tx_first, ':', 1) = t::text THEN" \
	"    IF EXISTS (SELECT 1 FROM feed f WHERE"			\
	"      f.seq >= split_part(tx_first, ':', 2)::bigint AND" \
	"      f.kind = k AND f.key = v) THEN"				\
	"      RETURN;"							\
	"    END IF;"							\
	"  END IF;"							\
	"  INSERT INTO feed (kind, key, origin, tx, at) VALUES (k, v, o,"\
	"    t, floor(extract(epoch FROM clock_timestamp()))::bigint)"	\
	"    RETURNING seq INTO s;"					\
	"  IF split_part(tx_first, ':', 1) IS DISTINCT FROM t::text THEN" \
	"    PERFORM set_config('photosync.tx_first', t || ':' || s,"	\
	"      true);"							\
	"    PERFORM pg_notify('photosync_feed', '');"			\
	"  END IF; "							\
	"END $$;"

/* One feed row: `key` an expression of NEW or OLD. */
#define FEED_ROW(kind, key)						\
	"PERFORM ps_feed_add('" kind "', (" key ")::text);"

/*
 * The triggers writing the feed for every change to `table`: the lock
 * before each statement, and the rows (FEED_ROWs) after each row. An
 * update writes the old key and the new (when they are the same, the
 * second is left out). Deletions by ON DELETE CASCADE fire them too.
 */
#define FEED_TRIGGERS(table, on_insert, on_update, on_delete)		\
	"CREATE FUNCTION feed_" table "() RETURNS trigger LANGUAGE "	\
	"plpgsql AS $$ BEGIN"						\
	"  IF TG_OP = 'INSERT' THEN " on_insert				\
	"  ELSIF TG_OP = 'UPDATE' THEN " on_update			\
	"  ELSE " on_delete						\
	"  END IF;"							\
	"  RETURN NULL; "						\
	"END $$;"							\
	"CREATE TRIGGER feed_" table "_lock BEFORE INSERT OR UPDATE OR "\
	"DELETE ON " table " FOR EACH STATEMENT EXECUTE FUNCTION "	\
	"ps_feed_lock();"						\
	"CREATE TRIGGER feed_" table " AFTER INSERT OR UPDATE OR DELETE "\
	"ON " table " FOR EACH ROW EXECUTE FUNCTION feed_" table "();"

#define FEED_TABLE(table, kind, new_key, old_key)			\
	FEED_TRIGGERS(table, FEED_ROW(kind, new_key),			\
	    FEED_ROW(kind, old_key) FEED_ROW(kind, new_key),		\
	    FEED_ROW(kind, old_key))

/*
 * Leases (store.h), as SQLite's: no feed, so taking one waits for no
 * feed lock; the key's row lock alone orders two nodes taking the same.
 */
#define LEASES_SCHEMA							\
	"CREATE TABLE leases ("						\
	"  name text PRIMARY KEY,"					\
	"  holder bigint NOT NULL,"					\
	"  expires bigint NOT NULL);"

/*
 * Sign-in failure counts, as SQLite's (SIGNIN_SCHEMA there): inserts
 * and updates write the feed (under its lock), deletes (pruning) do not.
 */
#define SIGNIN_SCHEMA							\
	"CREATE TABLE signin_key ("					\
	"  id integer PRIMARY KEY CHECK (id = 1),"			\
	"  key text NOT NULL);"						\
	"CREATE TABLE signin_counts ("					\
	"  name text PRIMARY KEY,"					\
	"  failures bigint NOT NULL,"					\
	"  last bigint NOT NULL);"					\
	"CREATE INDEX signin_counts_last ON signin_counts (last);"	\
	"CREATE FUNCTION feed_signin_counts() RETURNS trigger "	\
	"LANGUAGE plpgsql AS $$ BEGIN "					\
	FEED_ROW("signin_count", "NEW.name")				\
	"  RETURN NULL; "						\
	"END $$;"							\
	"CREATE TRIGGER feed_signin_counts_lock BEFORE INSERT OR UPDATE "\
	"ON signin_counts FOR EACH STATEMENT EXECUTE FUNCTION "		\
	"ps_feed_lock();"						\
	"CREATE TRIGGER feed_signin_counts AFTER INSERT OR UPDATE ON "	\
	"signin_counts FOR EACH ROW EXECUTE FUNCTION "			\
	"feed_signin_counts();"

/* Case-insensitive text, compared and ordered as SQLite's NOCASE. */
#define NOCASE	"citext COLLATE \"C\""

/*
 * Numbered as SQLite's (store_sqlite.c), one for one: migration N makes
 * the same tables, columns and feed rows on both. Frozen once released.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char *const master_migrations[] = {
	/* 1: the first schema */
	"CREATE EXTENSION IF NOT EXISTS citext;"
	"CREATE TABLE config (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE TABLE mailboxes ("
	"  email " NOCASE " PRIMARY KEY,"
	"  name text NOT NULL DEFAULT '',"
	"  pwhash text,"
	"  created bigint NOT NULL);"
	"CREATE TABLE photos ("
	"  email " NOCASE " PRIMARY KEY"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  etag text NOT NULL,"
	"  side bigint NOT NULL,"
	"  updated bigint NOT NULL);"
	"CREATE TABLE photo_sizes ("
	"  email " NOCASE " NOT NULL"
	"    REFERENCES photos(email) ON DELETE CASCADE,"
	"  code bigint NOT NULL,"
	"  side bigint NOT NULL,"
	"  data bytea NOT NULL,"
	"  PRIMARY KEY (email, code));"
	"ALTER TABLE photo_sizes ALTER COLUMN data SET STORAGE EXTERNAL;"
	"CREATE TABLE partners ("
	"  name " NOCASE " PRIMARY KEY,"
	"  issuer text NOT NULL UNIQUE,"
	"  metadata_url text,"
	"  metadata text NOT NULL,"
	"  fetched bigint NOT NULL,"
	"  added bigint NOT NULL);",
	/* 2: the change-photo page (ECP) */
	"CREATE TABLE sessions ("
	"  key text PRIMARY KEY,"
	"  email " NOCASE " NOT NULL"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  csrf text NOT NULL,"
	"  created bigint NOT NULL,"
	"  expires bigint NOT NULL);"
	"CREATE INDEX sessions_email ON sessions (email);"
	"CREATE INDEX sessions_expires ON sessions (expires);"
	"CREATE TABLE previews ("
	"  email " NOCASE " PRIMARY KEY"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE,"
	"  id text NOT NULL,"
	"  side bigint NOT NULL,"
	"  created bigint NOT NULL,"
	"  expires bigint NOT NULL);"
	"CREATE INDEX previews_expires ON previews (expires);"
	"CREATE TABLE preview_sizes ("
	"  email " NOCASE " NOT NULL"
	"    REFERENCES previews(email) ON DELETE CASCADE,"
	"  code bigint NOT NULL,"
	"  side bigint NOT NULL,"
	"  data bytea NOT NULL,"
	"  PRIMARY KEY (email, code));"
	"ALTER TABLE preview_sizes ALTER COLUMN data SET STORAGE EXTERNAL;",
	/* 3: change notifications to partners */
	"ALTER TABLE partners ADD COLUMN notify bigint NOT NULL DEFAULT 1;"
	"ALTER TABLE partners ADD COLUMN ca_file text NOT NULL DEFAULT '';"
	"CREATE TABLE outbox ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  partner " NOCASE " NOT NULL"
	"    REFERENCES partners(name) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  email " NOCASE " NOT NULL,"
	"  created bigint NOT NULL,"
	"  attempts bigint NOT NULL DEFAULT 0,"
	"  next_attempt bigint NOT NULL,"
	"  last_error text NOT NULL DEFAULT '');"
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
	/* 7: mailboxes read from a directory */
	"ALTER TABLE mailboxes ADD COLUMN directory_id text;"
	"ALTER TABLE mailboxes ADD COLUMN disabled bigint NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX mailboxes_directory_id ON mailboxes "
	"  (directory_id);",
	/*
	 * 8: the directory outbox (one row per mailbox, replaced by a newer
	 * change); photo_hidden, for hiding a photo (store_photo_hide)
	 */
	"CREATE TABLE directory_outbox ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  email " NOCASE " NOT NULL UNIQUE"
	"    REFERENCES mailboxes(email) ON DELETE CASCADE ON UPDATE CASCADE,"
	"  created bigint NOT NULL,"
	"  attempts bigint NOT NULL DEFAULT 0,"
	"  next_attempt bigint NOT NULL,"
	"  last_error text NOT NULL DEFAULT '');"
	"CREATE INDEX directory_outbox_due ON directory_outbox (next_attempt);"
	"ALTER TABLE mailboxes ADD COLUMN photo_hidden bigint NOT NULL "
	"  DEFAULT 0;"
	FEED_TABLE("directory_outbox", "directory_outbox", "NEW.id", "OLD.id"),
};

static const char *const portal_migrations[] = {
	/* 1: the first schema */
	"CREATE EXTENSION IF NOT EXISTS citext;"
	"CREATE TABLE config (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE TABLE webapps ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  url " NOCASE " NOT NULL UNIQUE,"
	"  host text NOT NULL,"
	"  port bigint NOT NULL,"
	"  realm text NOT NULL,"
	"  photo_import bigint NOT NULL,"
	"  photo_expiration bigint NOT NULL,"
	"  photo_error_expiration bigint NOT NULL,"
	"  autodiscover_domain text NOT NULL DEFAULT '',"
	"  sync_any bigint NOT NULL DEFAULT 0,"
	"  size_s bigint NOT NULL, size_m bigint NOT NULL,"
	"  size_l bigint NOT NULL,"
	"  ca_file text NOT NULL DEFAULT '',"
	"  allow_oauth_http bigint NOT NULL DEFAULT 0,"
	"  created bigint NOT NULL);"
	"CREATE TABLE users ("
	"  account " NOCASE " PRIMARY KEY,"
	"  email " NOCASE " NOT NULL UNIQUE,"
	"  name text NOT NULL DEFAULT '',"
	"  pwhash text,"
	"  created bigint NOT NULL);"
	"CREATE INDEX users_file_prefix ON users "
	"  (replace(account, '\\', '_'));"
	"CREATE TABLE issuers ("
	"  name " NOCASE " PRIMARY KEY,"
	"  issuer text NOT NULL,"
	"  realm text NOT NULL,"
	"  metadata_url text,"
	"  metadata text NOT NULL,"
	"  fetched bigint NOT NULL);"
	"CREATE TABLE thumbs ("
	"  webapp bigint NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  account " NOCASE " NOT NULL"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  source text NOT NULL,"
	"  etag text NOT NULL,"
	"  updated bigint NOT NULL,"
	"  s bytea NOT NULL, m bytea NOT NULL, l bytea NOT NULL,"
	"  PRIMARY KEY (webapp, account));"
	"ALTER TABLE thumbs ALTER COLUMN s SET STORAGE EXTERNAL,"
	"  ALTER COLUMN m SET STORAGE EXTERNAL,"
	"  ALTER COLUMN l SET STORAGE EXTERNAL;"
	"CREATE TABLE sync_state ("
	"  webapp bigint NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  account " NOCASE " NOT NULL"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  last_success bigint NOT NULL DEFAULT 0,"
	"  last_error bigint NOT NULL DEFAULT 0,"
	"  reason text NOT NULL DEFAULT '',"
	"  master_etag text NOT NULL DEFAULT '',"
	"  has_mailbox bigint NOT NULL DEFAULT -1,"
	"  PRIMARY KEY (webapp, account));"
	"CREATE TABLE sessions ("
	"  key text PRIMARY KEY,"
	"  account " NOCASE " NOT NULL"
	"    REFERENCES users(account) ON DELETE CASCADE,"
	"  webapp bigint NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,"
	"  csrf text NOT NULL,"
	"  expires bigint NOT NULL);",
	/* 2: operations: background refresh, notifications, avatars */
	"ALTER TABLE webapps ADD COLUMN background_refresh bigint NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE webapps ADD COLUMN notifications bigint NOT NULL "
	"  DEFAULT 1;"
	"ALTER TABLE webapps ADD COLUMN avatar_anyone bigint NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE webapps ADD COLUMN avatar_defaults text NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE users ADD COLUMN email_md5 text;"
	"ALTER TABLE users ADD COLUMN email_sha256 text;"
	"CREATE INDEX users_email_md5 ON users (email_md5);"
	"CREATE INDEX users_email_sha256 ON users (email_sha256);"
	"ALTER TABLE thumbs ADD COLUMN hr bytea;"
	"ALTER TABLE thumbs ALTER COLUMN hr SET STORAGE EXTERNAL;",
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
	FEED_TABLE("thumbs", "thumb",
	    "NEW.webapp || '/' || lower(NEW.account)",
	    "OLD.webapp || '/' || lower(OLD.account)")
	FEED_TABLE("sync_state", "sync",
	    "NEW.webapp || '/' || lower(NEW.account)",
	    "OLD.webapp || '/' || lower(OLD.account)")
	FEED_TABLE("sessions", "session", "NEW.key", "OLD.key"),
	/* 4: how long an owner waits for a sync; a master's Retry-After */
	"ALTER TABLE webapps ADD COLUMN owner_wait_ms bigint NOT NULL "
	"  DEFAULT 2000;"
	"ALTER TABLE sync_state ADD COLUMN retry_after bigint NOT NULL "
	"  DEFAULT 0;",
	/* 5: leases, work shared between nodes (store.h); no feed */
	LEASES_SCHEMA,
	/* 6: sign-in failure counts shared between nodes (store.h) */
	SIGNIN_SCHEMA,
	/* 7: sign-in by a single sign-on proxy (auth/sso.h); off by default */
	"ALTER TABLE webapps ADD COLUMN sso_header text NOT NULL DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN sso_proxies text NOT NULL DEFAULT '';",
	/* 8: Kerberos sign-in; users read from a directory */
	"ALTER TABLE webapps ADD COLUMN keytab text NOT NULL DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN kerberos_service text NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE webapps ADD COLUMN kerberos_realms text NOT NULL "
	"  DEFAULT '';"
	"ALTER TABLE users ADD COLUMN directory_id text;"
	"ALTER TABLE users ADD COLUMN disabled bigint NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX users_directory_id ON users (directory_id);",
	/* 9: a photo the master shows its owner alone */
	"ALTER TABLE thumbs ADD COLUMN hidden bigint NOT NULL DEFAULT 0;",
};
#pragma GCC diagnostic pop

static const struct db_driver pg_driver = {
	.name = "PostgreSQL",
	.migrations = { master_migrations, portal_migrations },
	.nmigrations = {
		sizeof(master_migrations) / sizeof(master_migrations[0]),
		sizeof(portal_migrations) / sizeof(portal_migrations[0]),
	},
	.close = pg_close,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.reset = pg_reset,
	.bind_int64 = pg_bind_int64,
	.bind_text = pg_bind_text,
	.bind_blob = pg_bind_blob,
	.step = pg_step,
	.changes = pg_changes,
	.col_null = pg_col_null,
	.col_int64 = pg_col_int64,
	.col_text = pg_col_text,
	.col_blob = pg_col_blob,
	.col_type = pg_col_type,
	.fail = pg_fail,
	.errmsg = pg_errmsg,
	.exec = pg_exec,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.in_tx = pg_in_tx,
	.connected = pg_connected,
	.mark_get = pg_mark_get,
	.mark_set = pg_mark_set,
	.has_table = pg_has_table,
	.ids_follow = pg_ids_follow,
};

/* ---- opening ---- */

/*
 * The URI is shown in messages as given: init refused one with a
 * password in it.
 */
ps_err
store_pg_connect(struct store *st, const char *uri, const char *password,
    const char *passfile)
{
	struct pg_conn *c = xcalloc(1, sizeof(*c));

	c->uri = xstrdup(uri);
	c->password = password ? xstrdup(password) : NULL;
	c->passfile = passfile ? xstrdup(passfile) : NULL;
	st->drv = &pg_driver;
	st->conn = c;
	st->where = xstrdup(uri);
	c->pg = conn_new(c->uri, c->password, c->passfile);
	/* Not logged: the caller says it (init on one line, a server's log). */
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_error(c, PQerrorMessage(c->pg));
		return ps_errf(PS_ESTORE, "cannot connect to the store at %s: "
		    "%s", uri, c->error);
	}
	if (!conn_setup(c))
		return pg_fail(st, "connect");
	return PS_OK;
}

ps_err
store_uri_check(const char *uri)
{
	PQconninfoOption *opts, *o;
	char *err = NULL;
	ps_err rc = PS_OK;

	if (!store_is_uri(uri))
		return ps_errf(PS_EINVAL, "--store must be a postgresql:// "
		    "address");
	if ((opts = PQconninfoParse(uri, &err)) == NULL) {
		rc = ps_errf(PS_EINVAL, "--store: %s", err ? err :
		    "cannot parse the address");
		if (err)
			PQfreemem(err);
		return rc;
	}
	for (o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val &&
		    o->val[0]) {
			rc = ps_errf(PS_EINVAL, "--store must not carry a "
			    "password (it would show in process lists and "
			    "be kept in the clear): give it with "
			    "--store-password-file");
			break;
		}
	PQconninfoFree(opts);
	return rc;
}

/* ---- LISTEN ---- */

struct store_listen {
	PGconn	*pg;
};

struct store_listen *
store_listen_open(const char *address)
{
	struct store_listen *l = NULL;
	char *uri = NULL, *passfile = NULL;
	PGconn *pg = NULL;
	PGresult *r = NULL;

	if (!store_listens(address))
		return NULL;	/* SQLite: the shared counter is enough */
	if (store_address_read(address, &uri, &passfile) != PS_OK)
		goto out;
	pg = conn_new(uri, NULL, passfile);
	if (PQstatus(pg) != CONNECTION_OK) {
		ps_errf(PS_ESTORE, "cannot connect to the store at %s: %s",
		    uri, PQerrorMessage(pg));
		goto out;
	}
	r = PQexec(pg, "LISTEN photosync_feed");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ps_errf(PS_ESTORE, "cannot listen to the store's feed: %s",
		    PQresultErrorMessage(r));
		goto out;
	}
	if (PQsetnonblocking(pg, 1) != 0) {
		ps_errf(PS_ESTORE, "cannot listen to the store's feed: %s",
		    PQerrorMessage(pg));
		goto out;
	}
	l = xcalloc(1, sizeof(*l));
	l->pg = pg;
	pg = NULL;
out:
	PQclear(r);
	PQfinish(pg);
	free(uri);
	free(passfile);
	return l;
}

int
store_listen_fd(const struct store_listen *l)
{
	return PQsocket(l->pg);
}

ps_err
store_listen_drain(struct store_listen *l, bool *notified)
{
	PGnotify *n;

	*notified = false;
	if (PQconsumeInput(l->pg) == 0 || PQstatus(l->pg) != CONNECTION_OK)
		return ps_errf(PS_ESTORE, "the store's feed connection was "
		    "lost: %s", PQerrorMessage(l->pg));
	while ((n = PQnotifies(l->pg)) != NULL) {
		*notified = true;
		PQfreemem(n);
	}
	return PS_OK;
}

void
store_listen_close(struct store_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg);
	free(l);
}
