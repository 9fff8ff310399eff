/*
 * The store's driver layer (inside src/store only): what store.c needs of
 * a database, so that the store's functions and their SQL are written
 * once, over SQLite (store_sqlite.c) and PostgreSQL (store_pg.c) alike.
 *
 * SQL given to a driver is SQLite's dialect where the two agree: `?` and
 * `?N` parameters (the PostgreSQL driver numbers them $N as SQLite does:
 * a bare `?` takes one more than the highest number used before it),
 * INSERT ... ON CONFLICT ... DO UPDATE, RETURNING. What differs (the
 * schema, the change feed's triggers, the role's mark and the schema
 * version) is each driver's own: its migrations and its hooks below.
 *
 * A statement is prepared once per connection and kept (store.c's
 * cache), or prepared for one use when a callback runs the statement its
 * caller is stepping. A driver reports errors itself: each function that
 * fails has recorded a sentence with ps_errf() (PS_ESTORE) and logged
 * store.error once.
 */
#ifndef PS_STORE_DRIVER_H
#define PS_STORE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store.h"

/* What a statement's step gave. */
enum db_step {
	DB_ROW,		/* a row is there to read */
	DB_DONE,	/* no more rows; a change is made */
	DB_CONSTRAINT,	/* a constraint refused the change (not logged) */
	DB_ERROR,	/* anything else: drv->fail() reports it */
};

/* A column's value's type (store_copy()). */
enum db_type { DB_NULL, DB_INT, DB_TEXT, DB_BLOB };

/* The first member of each driver's statement. */
struct db_stmt {
	const struct db_driver	*drv;
	struct stmt_slot	*slot;	/* in the cache; NULL: one use */
};

/* How many statements a connection keeps compiled (a power of two). */
#define STMT_CACHE	128

struct stmt_slot {
	char		*sql;	/* owned; NULL: the slot is empty */
	struct db_stmt	*q;
	bool		 busy;	/* given by prep(), not yet back */
};

struct db_driver;

/* One connection to a store, whichever the backend. */
struct store {
	const struct db_driver	*drv;
	void			*conn;	/* the driver's, owned by it */
	enum store_role		 role;
	char			*where;	/* for messages: path, or address
					   without its password */
	struct store_feed_watch	*bump;	/* NULL: commits are not announced */
	struct stmt_slot	 stmts[STMT_CACHE];
};

/* The role's mark a store carries (SQLite: its application_id). */
#define STORE_MARK_NONE		0
#define STORE_MARK_MASTER	0x50534d31	/* "PSM1" */
#define STORE_MARK_PORTAL	0x50535031	/* "PSP1" */

struct db_driver {
	const char	*name;		/* "SQLite", "PostgreSQL" */
	/* Each role's migrations, numbered from 1 as the array is. */
	const char *const	*migrations[2];	/* [STORE_MASTER], [..PORTAL] */
	size_t			 nmigrations[2];

	void	(*close)(struct store *);

	/* A statement of `sql`; `keep`: it will be reused. NULL: failed. */
	struct db_stmt *(*prepare)(struct store *, const char *sql,
		    bool keep);
	void	(*finalize)(struct db_stmt *);
	/* Forgets the rows read and the values bound. */
	void	(*reset)(struct db_stmt *);
	void	(*bind_int64)(struct db_stmt *, int i, int64_t);
	/* NULL binds SQL NULL. The value is copied. */
	void	(*bind_text)(struct db_stmt *, int i, const char *);
	/* Borrowed until the statement is reset. */
	void	(*bind_blob)(struct db_stmt *, int i, const void *,
		    size_t len);
	enum db_step (*step)(struct store *, struct db_stmt *);
	/* Rows changed by the statement's last step to DB_DONE. */
	int64_t	(*changes)(struct store *, struct db_stmt *);
	bool	(*col_null)(struct db_stmt *, int i);
	int64_t	(*col_int64)(struct db_stmt *, int i);
	/* NULL for SQL NULL; valid until the next step or reset. */
	const char *(*col_text)(struct db_stmt *, int i);
	const void *(*col_blob)(struct db_stmt *, int i, size_t *len);
	enum db_type (*col_type)(struct db_stmt *, int i);

	/*
	 * Records (PS_ESTORE, with `what` and the connection's last error)
	 * and logs store.error, once, the error a step or a prepare met.
	 */
	ps_err	(*fail)(struct store *, const char *what);
	/* The connection's last error, for a message. */
	const char *(*errmsg)(struct store *);

	/* Runs SQL of one or more statements that return no rows. */
	ps_err	(*exec)(struct store *, const char *sql);
	ps_err	(*begin)(struct store *);
	/* Commits; on failure, everything is rolled back. */
	ps_err	(*commit)(struct store *);
	/* Rolls back if a transaction is open; a failure is only logged. */
	void	(*rollback)(struct store *);
	/* True when a transaction is open (not rolled back by the server). */
	bool	(*in_tx)(struct store *);
	/*
	 * False when the last call found the server unreachable or lost
	 * the connection (no call is made: the connection's state).
	 */
	bool	(*connected)(struct store *);

	/* The store's mark (STORE_MARK_*) and schema version. In a tx. */
	ps_err	(*mark_get)(struct store *, int *mark, int *version);
	ps_err	(*mark_set)(struct store *, int mark, int version);
	/* Whether a table of this name exists (a store made before marks). */
	ps_err	(*has_table)(struct store *, const char *name, bool *yes);
	/*
	 * After rows were copied in with their ids: the next id `table`
	 * hands out is past them (PostgreSQL's identity columns; SQLite
	 * needs nothing).
	 */
	ps_err	(*ids_follow)(struct store *, const char *table,
		    const char *column);
};

/*
 * The drivers: each sets st->drv and st->conn, or returns the reason.
 * SQLite: PS_ENOTFOUND when `path` does not exist and !create; *created
 * when this call made the file. PostgreSQL: `password` (may be NULL) is
 * given to libpq as such, `passfile` (may be NULL) as its passfile.
 */
ps_err	store_sqlite_connect(struct store *, const char *path, bool create,
	    bool *created);
ps_err	store_pg_connect(struct store *, const char *uri,
	    const char *password, const char *passfile);

/*
 * The URI and passfile (NULL: none) of a store's address: a bare URI, or
 * a state directory's STORE_ADDRESS_FILE (PS_ENOTFOUND when absent). The
 * caller frees both.
 */
ps_err	store_address_read(const char *address, char **uri, char **passfile);

/* This process's change-feed origin (store.h), drawn once. */
int64_t	store_feed_origin(void);

/*
 * Maps path + "-feed", the feed's shared counter (store.h); `create`:
 * creates it (0600) if absent. NULL with ps_errmsg() set.
 */
struct store_feed_watch *store_feed_map(const char *path, bool writable,
	    bool create);
/* Announces a commit through st->bump, if any. */
void	store_feed_bump(struct store *);

#endif
