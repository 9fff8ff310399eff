/*
 * The store: everything photosync keeps that is not a key file.
 *
 * One store per state directory (the master's or the portal's), on one of
 * two backends with the same behaviour:
 *
 *   - SQLite (the embedded default): a file in the state directory, in
 *     WAL mode, so the admin commands and a running server share it
 *     safely: a change committed by one process is seen by the next
 *     query of the other;
 *   - PostgreSQL (several nodes on one store): a database named by a
 *     postgresql:// address that the state directory keeps (below).
 *
 * Every multi-row change is one transaction; a failure or a crash leaves
 * the previous state intact. Schema changes are numbered migrations
 * applied at open, numbered the same on both backends.
 *
 * Not thread-safe: one struct store per thread.
 */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct store;

enum store_role { STORE_MASTER, STORE_PORTAL };

/*
 * A state directory on PostgreSQL holds, instead of the SQLite file, the
 * store's address (STORE_ADDRESS_FILE: one line, a postgresql:// URI
 * without a password, mode 0600) and the password in libpq's passfile
 * format (STORE_PASSWORD_FILE, mode 0600; absent when none is needed).
 */
#define STORE_ADDRESS_FILE	"store-address"
#define STORE_PASSWORD_FILE	"store-password"

/*
 * Where the store of state directory `dir` is, for store_open(): its
 * STORE_ADDRESS_FILE when there is one, else the SQLite file `file` in
 * it. The caller frees.
 */
char	*store_locate(const char *dir, const char *file);

/*
 * Opens (with `create`, creates) the store at `address` and brings its
 * schema up to date. `address` is a SQLite file, a state directory's
 * STORE_ADDRESS_FILE (store_locate()), or a postgresql:// URI. PS_ENOTFOUND
 * when it does not exist and !create (a PostgreSQL database is never
 * created: it must exist); PS_ESTORE when it cannot be reached, is
 * another role's store, or its schema is newer than this program knows.
 * Also maps the change feed's counter (below) to announce this
 * connection's commits, creating the file unless this call created the
 * store (a bare URI has none); when it cannot, logs
 * store.feed_counter_failed and goes on without announcing.
 */
ps_err	store_open(const char *address, enum store_role, bool create,
	    struct store **out);
/*
 * store_open() of a postgresql:// URI with its password (NULL: none), for
 * init, before the state directory keeps them.
 */
ps_err	store_open_pg(const char *uri, const char *password, enum store_role,
	    struct store **out);
/*
 * What init and `store migrate` do with the --store URI they are given:
 * checks it (store_uri_check()), reads the password from
 * `password_file` when not NULL (store_password_read()), and opens the
 * store with store_open_pg(). On success *password is the password (or
 * NULL), for store_remember(); the caller frees it with xfree_secret().
 */
ps_err	store_open_given(const char *uri, const char *password_file,
	    enum store_role, struct store **out, char **password);
void	store_close(struct store *);
/*
 * For diagnose: opens the store at `address` (store_locate()) as
 * store_open() does, creating nothing, and closes it again. PS_OK with
 * what it is in `what` ("PostgreSQL at URI", "SQLite at PATH": never a
 * password); otherwise the reason in ps_errmsg() (the address and the
 * server's error), with *reached false when the server could not be
 * reached at all (true: it answered, and refused the store or failed).
 */
ps_err	store_check(const char *address, enum store_role, char *what,
	    size_t n, bool *reached);
/*
 * False when the store's server could not be reached or the connection
 * was lost at the last call (PostgreSQL); a file store is always
 * connected. Makes no call: the connection's state as the last call left
 * it. The connection's thread only.
 */
bool	store_connected(struct store *);

/* True when `address` is a postgresql:// (or postgres://) URI. */
bool	store_is_uri(const char *address);
/*
 * Checks a URI given to init: PS_EINVAL, with a sentence, when it is not
 * a postgresql:// URI or carries a password.
 */
ps_err	store_uri_check(const char *uri);
/*
 * Writes the state directory's STORE_PASSWORD_FILE (when `password` is
 * not NULL) and STORE_ADDRESS_FILE, both 0600, the address last; never
 * over a file that is there. On failure, what this call wrote is
 * removed.
 */
ps_err	store_remember(const char *dir, const char *uri,
	    const char *password);
/*
 * The store's password: the first line of `path` ("-": standard input),
 * not empty. The caller frees it with xfree_secret().
 */
ps_err	store_password_read(const char *path, char **password);
/*
 * Copies every row of `from` into `to`, a store of the same role (any
 * backends; `store migrate` copies SQLite into PostgreSQL) that holds no
 * rows yet (PS_EEXIST otherwise), in one transaction of `to`; before
 * the commit, checks that each table holds the same rows on both (their
 * count and a digest of every value), else nothing is kept. `from` is
 * only read. progress(arg, table, rows copied, rows in all), may be NULL,
 * is called every 500 rows and at the end of each table.
 */
ps_err	store_copy(struct store *from, struct store *to,
	    void (*progress)(void *, const char *table, int64_t done,
	    int64_t total), void *arg);
/*
 * `store migrate`: copies the store `from` of state directory `dir` into
 * the PostgreSQL database `uri` (password from `password_file`, may be
 * NULL) with store_copy(), then has `dir` keep the address and password
 * (store_remember()), so that every later command uses the copy. The
 * source is left as it was. PS_EINVAL when `dir`'s store is on
 * PostgreSQL already.
 */
ps_err	store_move(struct store *from, const char *dir, const char *uri,
	    const char *password_file,
	    void (*progress)(void *, const char *table, int64_t done,
	    int64_t total), void *arg);
/* Removes what store_remember() wrote (init failing later). */
void	store_forget(const char *dir);

/* ---- the change feed ---- */

/*
 * Every committed change to the store also records, in the same
 * transaction, what changed: one row per changed object, with a sequence
 * number (increasing in commit order, never reused), a kind and a key. The
 * migrations install triggers that write these rows, so no change can
 * forget them, whoever makes it (a server, an admin command, `portal
 * refresh`); a tool that does not register the store's functions (the
 * sqlite3 shell) cannot change the store at all. A transaction does not
 * repeat the row it has just written (a photo and its sizes: one row); a
 * key it comes back to later may appear twice. A server keeps in-memory
 * copies of store rows and drops exactly the keys the feed names.
 *
 * Each row also records the process that made the change (a random
 * origin drawn once per process); store_feed_read() leaves out this
 * process's own rows, since a server drops the keys of its own changes
 * itself, at once.
 */
enum store_change_kind {
	STORE_CHANGE_CONFIG,		/* key: the setting's name */
	/* master */
	STORE_CHANGE_MAILBOX,		/* key: address, lower case */
	STORE_CHANGE_PHOTO,		/* key: address: photo or sizes */
	STORE_CHANGE_PREVIEW,		/* key: address */
	STORE_CHANGE_PARTNER,		/* key: name, lower case */
	STORE_CHANGE_MAILBOX_SESSION,	/* key: the session's key */
	STORE_CHANGE_OUTBOX,		/* key: the notification's id
					 * (a deleted one's may be reused) */
	STORE_CHANGE_DIRECTORY_OUTBOX,	/* key: the directory write's id */
	/* portal */
	STORE_CHANGE_WEBAPP,		/* key: id, decimal */
	STORE_CHANGE_USER,		/* key: account, lower case */
	STORE_CHANGE_USER_EMAIL,	/* key: an address a user had or has */
	STORE_CHANGE_ISSUER,		/* key: name, lower case */
	STORE_CHANGE_THUMB,		/* key: "<webapp id>/<account>" */
	STORE_CHANGE_SYNC,		/* key: "<webapp id>/<account>" */
	STORE_CHANGE_SESSION,		/* key: the session's key */
	/* both */
	STORE_CHANGE_SIGNIN_COUNT,	/* key: the count's name */
};

struct store_change {
	int64_t			 seq;
	enum store_change_kind	 kind;
	char			 key[320];
};

/*
 * The newest sequence number in the feed (0 when empty): where a server
 * that has just loaded what it caches starts reading.
 */
ps_err	store_feed_head(struct store *, int64_t *seq);

/*
 * Calls `fn` for each change after `after` made by other processes,
 * oldest first, examining at most `limit` rows; *last receives the last
 * sequence number examined (this process's own rows included), where the
 * next call starts. Stops when `fn` returns other than PS_OK and returns
 * that; *last is then the row before the one `fn` refused. PS_ELIMIT
 * (and `fn` is not called) when rows after `after` were already pruned:
 * the caller cannot know what changed and must drop everything it
 * caches, then go on from store_feed_head().
 */
ps_err	store_feed_read(struct store *, int64_t after, int limit,
	    ps_err (*fn)(void *, const struct store_change *), void *arg,
	    int64_t *last);

/*
 * Deletes the rows up to the newest one older than `before` (a
 * time_now() value), always keeping the newest row of all, and remembers
 * how far it pruned (for PS_ELIMIT above). Writes no feed rows itself.
 */
ps_err	store_feed_prune(struct store *, int64_t before);

/*
 * Telling a server, without a store call, that the feed may have moved:
 * a counter in a small file beside the store (path + "-feed", mode 0600;
 * on PostgreSQL beside the state directory's STORE_ADDRESS_FILE) that
 * every process of this machine bumps after each commit. (Other nodes'
 * commits on PostgreSQL are heard through store_listen_open() below: the
 * counter is kept there for what admin commands on the same machine do,
 * so that the next request sees it without waiting for a notification.)
 * Reading it is an atomic load from shared memory, so the event loop may
 * do it on every request; a server that sees it move reads the feed (off
 * the loop) before it answers from what it caches, so a change an admin
 * command has made is seen by the next request.
 */
struct store_feed_watch;

/*
 * Maps the counter of the store at `store_path`, creating the file if
 * absent. NULL, with the reason in ps_errmsg(), when the file cannot be
 * mapped. Close with store_feed_watch_close().
 */
struct store_feed_watch *store_feed_watch_open(const char *store_path);
void	store_feed_watch_close(struct store_feed_watch *);
/* The counter's value now. Any thread. */
uint64_t store_feed_watch_value(const struct store_feed_watch *);

/*
 * On PostgreSQL, a server also hears of commits from other nodes at
 * once: a connection of its own that LISTENs to the notification each
 * feed-writing transaction sends at commit. Its socket becomes readable
 * when one arrives (or when the connection is lost). NULL for a SQLite
 * store, or, with the reason in ps_errmsg(), when the store cannot be
 * reached. `address` as store_open()'s. Connecting waits for the
 * server: not on the event loop.
 */
struct store_listen;

/* True when the store at `address` is on PostgreSQL (one listens). */
bool	store_listens(const char *address);
struct store_listen *store_listen_open(const char *address);
int	store_listen_fd(const struct store_listen *);
/*
 * Reads what arrived without waiting; *notified when a notification was
 * among it. PS_ESTORE when the connection is lost (close it; open
 * another later).
 */
ps_err	store_listen_drain(struct store_listen *, bool *notified);
void	store_listen_close(struct store_listen *);

/* Settings: small key/value pairs. The caller frees *value. */
ps_err	store_config_get(struct store *, const char *key, char **value);
ps_err	store_config_set(struct store *, const char *key, const char *value);

/* ---- master: mailboxes ---- */

struct store_mailbox {
	char	 email[256];	/* lower case */
	char	 name[256];
	char	*pwhash;	/* Argon2id string, or NULL; owned */
	int64_t	 created;
	char	 etag[64];	/* "" when there is no photo */
	int64_t	 photo_updated;
	int	 photo_side;	/* side of the largest stored size */
	char	 directory_id[80];	/* "" for one added by hand */
	bool	 disabled;	/* it left the directory: kept, not served */
	bool	 photo_hidden;	/* its owner alone may see its photo */
};

/*
 * A disabled mailbox (one that left the directory, or is disabled there)
 * is as if absent to every function here but store_mailbox_directory_*:
 * it is not found, listed, served, nor signed in, and its photo stays.
 */
void	store_mailbox_cleanup(struct store_mailbox *);
/* PS_EEXIST when the address is taken. */
ps_err	store_mailbox_add(struct store *, const char *email, const char *name,
	    const char *pwhash);
/* Removes the mailbox and its photo. PS_ENOTFOUND if absent. */
ps_err	store_mailbox_remove(struct store *, const char *email);
/* Case-insensitive lookup. PS_ENOTFOUND if absent. */
ps_err	store_mailbox_get(struct store *, const char *email,
	    struct store_mailbox *out);
ps_err	store_mailbox_set_password(struct store *, const char *email,
	    const char *pwhash);
/* Calls `fn` for each mailbox in address order; stops on non-PS_OK. */
ps_err	store_mailbox_each(struct store *,
	    ps_err (*fn)(void *, const struct store_mailbox *), void *arg);
/*
 * For the directory's sync: every mailbox, disabled ones and those added
 * by hand too, in address order (directory_id and disabled filled in).
 */
ps_err	store_mailbox_directory_each(struct store *,
	    ps_err (*fn)(void *, const struct store_mailbox *), void *arg);
/*
 * For the directory's sync, inside the caller's transaction: stores `m`
 * (email, name, directory_id, disabled) as the mailbox of the directory's
 * entry m->directory_id. `was` is its address in the store, or NULL for
 * an entry new to the store. A changed address keeps the photo, the
 * pending preview and the sessions (moved to the new address); a
 * disabled mailbox's sessions end. PS_EEXIST when the address is
 * another mailbox's.
 */
ps_err	store_mailbox_directory_put(struct store *,
	    const struct store_mailbox *m, const char *was);

/* ---- master: photos ---- */

struct store_photo_size {
	int			 code;	/* index of the size code, 0..8 */
	int			 side;	/* pixels actually stored */
	const unsigned char	*data;
	size_t			 len;
};

/*
 * Replaces the mailbox's photo with `n` sizes and `etag`, atomically.
 * PS_ENOTFOUND if there is no such mailbox.
 */
ps_err	store_photo_put(struct store *, const char *email, const char *etag,
	    const struct store_photo_size *sizes, size_t n);
/*
 * As store_photo_put(), inside the caller's transaction (store_begin()),
 * so that a bulk import writes many photos per commit; the change
 * notices are queued in that transaction too. On failure the caller
 * rolls the transaction back (PS_ENOTFOUND, no such mailbox, leaves it
 * usable: nothing was written for this address).
 */
ps_err	store_photo_put_in(struct store *, const char *email,
	    const char *etag, const struct store_photo_size *sizes, size_t n);
/* Removes the photo; PS_ENOTFOUND if there was none. */
ps_err	store_photo_remove(struct store *, const char *email);
/*
 * Hides the mailbox's photo from everyone but its owner (`hidden`), or
 * shows it again, in one transaction that gives a stored photo the new
 * `etag` (so that a conditional request notices) and queues the change
 * notices and the directory write as a photo change does. The flag is
 * the mailbox's: a photo stored later stays hidden. *changed is false,
 * and nothing written, when it already was as asked. PS_ENOTFOUND if
 * there is no such mailbox.
 */
ps_err	store_photo_hide(struct store *, const char *email, bool hidden,
	    const char *etag, bool *changed);

struct store_photo {
	char		 etag[64];
	int		 code;	/* the code of the size returned */
	int		 side;
	unsigned char	*data;	/* owned; free() */
	size_t		 len;
	int64_t		 updated;
	bool		 hidden;	/* shown to the mailbox's owner alone */
};

/*
 * Fetches size `code` of the photo, or when that size is not stored (the
 * source was smaller), the largest size stored. PS_ENOTFOUND when the
 * mailbox has no photo or is disabled. Free with store_photo_cleanup().
 */
ps_err	store_photo_get(struct store *, const char *email, int code,
	    struct store_photo *out);
void	store_photo_cleanup(struct store_photo *);

/* ---- master: change notifications to partners ---- */

/*
 * Every photo change (store_photo_put, store_photo_remove,
 * store_preview_save) queues, in its own transaction, one notification
 * per partner that wants them (notify on, registered from a URL).
 */
struct store_outbox {
	int64_t	 id;
	char	 partner[128];
	char	 email[256];
	int64_t	 created;
	int	 attempts;
	char	 last_error[256];
};

/* The notifications due at `now`, oldest first, at most `limit`. */
ps_err	store_outbox_due(struct store *, int64_t now, int limit,
	    ps_err (*fn)(void *, const struct store_outbox *), void *arg);
ps_err	store_outbox_done(struct store *, int64_t id);
ps_err	store_outbox_retry(struct store *, int64_t id, int64_t next_attempt,
	    const char *error);
/* How many are queued; -1 when it cannot be read. */
int64_t	store_outbox_pending(struct store *);

/* ---- master: partners (portals trusted for S2S) ---- */

struct store_partner {
	char	 name[128];
	char	 issuer[256];	/* "<principal>@<realm>" */
	char	*metadata_url;	/* NULL when registered from a file */
	char	*metadata;	/* the JSON document as fetched */
	int64_t	 fetched;
	int64_t	 added;
	bool	 notify;	/* send it change notifications */
	char	 ca_file[512];	/* CA for its TLS certificate; "": system */
};

void	store_partner_cleanup(struct store_partner *);
/* Adds, or replaces the partner with the same name. */
ps_err	store_partner_put(struct store *, const struct store_partner *);
/* By name or issuer. PS_ENOTFOUND if absent. */
ps_err	store_partner_remove(struct store *, const char *name_or_issuer);
ps_err	store_partner_get(struct store *, const char *name_or_issuer,
	    struct store_partner *out);
ps_err	store_partner_each(struct store *,
	    ps_err (*fn)(void *, const struct store_partner *), void *arg);

/* ---- master: browser sessions of the change-photo page (ECP) ---- */

struct store_mailbox_session {
	char	 email[256];	/* lower case */
	char	 csrf[65];	/* the session's form token */
	int64_t	 expires;
};

/*
 * Starts a session of a mailbox that has a password, and drops the
 * expired ones. `key` is a digest of the cookie value; the cookie itself
 * is not kept. PS_ENOTFOUND when the mailbox is absent or has no
 * password. Changing or removing the mailbox's password, or removing the
 * mailbox, ends its sessions.
 */
ps_err	store_mailbox_session_put(struct store *, const char *key,
	    const char *email, const char *csrf, int64_t expires);
/* PS_ENOTFOUND when absent, expired, or the mailbox cannot sign in. */
ps_err	store_mailbox_session_get(struct store *, const char *key,
	    struct store_mailbox_session *out);
/* Ends the session `key` (absent is not an error) and expired ones. */
ps_err	store_mailbox_session_remove(struct store *, const char *key);

/* ---- master: pending photo previews (the ECP page) ---- */

/*
 * Replaces the mailbox's pending preview with `n` sizes, identified by
 * `id` (for URLs), until `expires`; drops expired previews of every
 * mailbox. The photo is not touched. PS_ENOTFOUND if there is no such
 * mailbox.
 */
ps_err	store_preview_put(struct store *, const char *email, const char *id,
	    int64_t expires, const struct store_photo_size *sizes, size_t n);
/*
 * As store_photo_get, for the pending (unexpired) preview; `etag` holds
 * its id and `updated` when it was made. PS_ENOTFOUND when there is none.
 */
ps_err	store_preview_get(struct store *, const char *email, int code,
	    struct store_photo *out);
/*
 * Makes the pending preview the mailbox's photo with `etag`, all sizes at
 * once, and deletes the preview, in one transaction. PS_ENOTFOUND (and
 * nothing changed) when there is no pending preview.
 */
ps_err	store_preview_save(struct store *, const char *email,
	    const char *etag);
/* Discards the preview; PS_ENOTFOUND if there was none. */
ps_err	store_preview_remove(struct store *, const char *email);

/* ---- transactions, for changes that span several calls ---- */

ps_err	store_begin(struct store *);
/*
 * Commits when `commit`, rolls back otherwise; returns PS_ESTORE if the
 * commit failed (everything rolled back). A transaction that SQLite has
 * already rolled back itself (a full disk, an I/O error) is not rolled
 * back again: the reason recorded stays the error that did it.
 */
ps_err	store_end(struct store *, bool commit);

/* ---- portal: web applications ---- */

struct store_webapp {
	int64_t	 id;
	char	 url[256];		/* "https://host[:port]" */
	char	 host[256];
	int	 port;
	char	 realm[40];		/* GUID, the S2S realm */
	bool	 photo_import;
	int64_t	 photo_expiration;	/* seconds */
	int64_t	 photo_error_expiration;
	char	 autodiscover_domain[256];	/* "" = autodiscover.<domain> */
	bool	 sync_any;		/* any size triggers, not only L */
	int	 size_s, size_m, size_l;
	char	 ca_file[512];		/* "" = the system's CAs */
	bool	 allow_oauth_http;
	int64_t	 created;
	int64_t	 background_refresh;	/* seconds; 0: off */
	bool	 notifications;		/* accept the master's notices */
	bool	 avatar_anyone;		/* /avatar/ without signing in */
	char	 avatar_defaults[1024];	/* allowed d= URL prefixes */
	int	 owner_wait_ms;		/* how long an owner's request waits
					   for a sync (default 2000) */
	char	 sso_header[64];	/* a proxy's identity header; "": off */
	char	 sso_proxies[1024];	/* the addresses it is taken from */
	char	 keytab[512];		/* Kerberos sign-in; "": off */
	char	 kerberos_service[256];	/* "HTTP/host[@REALM]"; "": any in
					   the keytab */
	char	 kerberos_realms[1024];	/* "REALM=DOMAIN, ..." */
};

/* Sets w->id. PS_EEXIST when the URL is taken. */
ps_err	store_webapp_add(struct store *, struct store_webapp *w);
ps_err	store_webapp_update(struct store *, const struct store_webapp *);
/* By URL (case-insensitive). */
ps_err	store_webapp_get(struct store *, const char *url,
	    struct store_webapp *out);
ps_err	store_webapp_each(struct store *,
	    ps_err (*fn)(void *, const struct store_webapp *), void *arg);

/* ---- portal: users ---- */

struct store_user {
	char	 account[256];	/* "contoso\test1", lower case */
	char	 email[256];	/* lower case */
	char	 name[256];
	char	*pwhash;	/* owned; NULL: cannot sign in */
	int64_t	 created;
	char	 email_md5[33];	/* hex digests of the address, for */
	char	 email_sha256[65];	/* avatar URLs; "" until known */
	char	 directory_id[80];	/* "" for a user added by hand */
	bool	 disabled;	/* left the directory: kept, not served */
};

/*
 * A disabled user (one that left the directory, or is disabled there) is
 * as if absent to every function here but store_user_directory_*: not
 * found, listed nor counted, so neither served nor signed in; the photos
 * and sync states stay for the day the directory has them again.
 */
void	store_user_cleanup(struct store_user *);
ps_err	store_user_add(struct store *, const struct store_user *);
/* Removes the user, the photos and sync state of all web applications. */
ps_err	store_user_remove(struct store *, const char *account);
ps_err	store_user_get(struct store *, const char *account,
	    struct store_user *out);
ps_err	store_user_get_by_email(struct store *, const char *email,
	    struct store_user *out);
/* By the MD5 or SHA-256 hex digest of the address (avatar URLs). */
ps_err	store_user_get_by_hash(struct store *, const char *hex,
	    struct store_user *out);
ps_err	store_user_set_hashes(struct store *, const char *account,
	    const char *md5, const char *sha256);
/*
 * Up to `limit` users whose account sorts after `after` ("" for the
 * first), in account order: a cursor over all users.
 */
ps_err	store_user_page(struct store *, const char *after, int limit,
	    ps_err (*fn)(void *, const struct store_user *), void *arg);
ps_err	store_user_count(struct store *, int64_t *n);
/* By library file prefix: "contoso_test1" for "contoso\\test1". */
ps_err	store_user_get_by_prefix(struct store *, const char *prefix,
	    struct store_user *out);
/*
 * Sets (or, NULL, removes) the account's password and ends the account's
 * browser sessions in the same transaction.
 */
ps_err	store_user_set_password(struct store *, const char *account,
	    const char *pwhash);
ps_err	store_user_each(struct store *,
	    ps_err (*fn)(void *, const struct store_user *), void *arg);
/*
 * For the directory's sync: every user, disabled ones and those added by
 * hand too, in account order (directory_id and disabled filled in).
 */
ps_err	store_user_directory_each(struct store *,
	    ps_err (*fn)(void *, const struct store_user *), void *arg);
/*
 * For the directory's sync, inside the caller's transaction: stores `u`
 * (account, email, name, hashes, directory_id, disabled) as the user of
 * the directory's entry u->directory_id. `was` is its account in the
 * store, or NULL for an entry new to the store. A changed account keeps
 * the photos, sync states and sessions of every web application (moved
 * to the new account); a disabled user's sessions end. PS_EEXIST when
 * the account or the address is another user's.
 */
ps_err	store_user_directory_put(struct store *, const struct store_user *u,
	    const char *was);

/* ---- portal: trusted token issuers (masters) ---- */

struct store_issuer {
	char	 name[128];
	char	 issuer[256];
	char	 realm[64];
	char	*metadata_url;
	char	*metadata;
	int64_t	 fetched;
};

void	store_issuer_cleanup(struct store_issuer *);
/* Adds, or replaces the issuer with the same name. */
ps_err	store_issuer_put(struct store *, const struct store_issuer *);
ps_err	store_issuer_remove(struct store *, const char *name);
ps_err	store_issuer_get(struct store *, const char *name,
	    struct store_issuer *out);
ps_err	store_issuer_each(struct store *,
	    ps_err (*fn)(void *, const struct store_issuer *), void *arg);

/* ---- portal: the User Photos library (S/M/L per user and webapp) ---- */

/* STORE_HR is the high-resolution source (up to 648 pixels), kept for
 * avatars of any size; it may be missing for photos stored before. */
enum store_thumb_size { STORE_S, STORE_M, STORE_L, STORE_HR };

struct store_thumb {
	char		 etag[64];	/* changes only when the photo does */
	char		 source[16];	/* "master" or "local" */
	int64_t		 updated;
	unsigned char	*data;		/* owned; free() */
	size_t		 len;
	bool		 hidden;	/* the master's: its owner alone sees
					   it (store_thumb_hide) */
};

void	store_thumb_cleanup(struct store_thumb *);
/* Replaces all sizes at once: S, M, L and the high-resolution source. */
ps_err	store_thumb_put(struct store *, int64_t webapp, const char *account,
	    const char *source, const char *etag,
	    const unsigned char *const data[4], const size_t len[4]);
/* PS_ENOTFOUND when the user has no photo in this web application. */
ps_err	store_thumb_get(struct store *, int64_t webapp, const char *account,
	    enum store_thumb_size, struct store_thumb *out);
/* Only the ETag (64 bytes); PS_ENOTFOUND when the user has no photo. */
ps_err	store_thumb_etag(struct store *, int64_t webapp, const char *account,
	    char *etag);
/* PS_ENOTFOUND when there was none. */
ps_err	store_thumb_remove(struct store *, int64_t webapp,
	    const char *account);
/*
 * Marks the user's photo as one the master shows its owner alone (or
 * not); a photo put later keeps the mark until this is called again.
 * PS_OK too when the user has no photo (nothing to mark).
 */
ps_err	store_thumb_hide(struct store *, int64_t webapp, const char *account,
	    bool hidden);

/* ---- portal: sync state per user and web application ---- */

struct store_sync {
	int64_t	 last_success;	/* 0: never */
	int64_t	 last_error;	/* 0: none since the last success */
	char	 reason[512];	/* of the last error */
	char	 master_etag[128];	/* of the master's photo we hold, ""
					   if none (none, or one uploaded) */
	int	 has_mailbox;	/* -1 unknown, 0 no, 1 yes */
	int64_t	 retry_after;	/* seconds after last_error the master
				   asked us to wait (Retry-After), 0: none */
};

/* Never fails with PS_ENOTFOUND: an unknown user gets a zeroed state. */
ps_err	store_sync_get(struct store *, int64_t webapp, const char *account,
	    struct store_sync *out);
ps_err	store_sync_put(struct store *, int64_t webapp, const char *account,
	    const struct store_sync *);
/*
 * Calls `fn` for every stored sync state of a web application, with the
 * account (a user with no state row has the zeroed state); stops on
 * non-PS_OK.
 */
ps_err	store_sync_each(struct store *, int64_t webapp,
	    ps_err (*fn)(void *, const char *account,
	    const struct store_sync *), void *arg);

/* ---- portal: browser sessions ---- */

struct store_session {
	char	 account[256];
	int64_t	 webapp;
	char	 csrf[65];
	int64_t	 expires;
};

/* `key` is a digest of the cookie value; the cookie itself is not kept. */
ps_err	store_session_put(struct store *, const char *key,
	    const struct store_session *);
/* PS_ENOTFOUND when absent or expired. */
ps_err	store_session_get(struct store *, const char *key,
	    struct store_session *out);
ps_err	store_session_remove(struct store *, const char *key);


/* ---- leases: work shared between nodes ---- */

/*
 * A lease is a named claim on a piece of work ("sync/<webapp>/<account>",
 * "outbox/<id>") by one process, its holder, until a time: nodes sharing
 * a store do the work once, and the work of a node that died is taken by
 * another once its lease has expired. Times are the caller's (seconds
 * since 1970: time_now(), or a test's clock), compared as given, so the
 * nodes' clocks must agree to within a small part of a lease's length.
 * Leases write no feed rows and, on PostgreSQL, take no feed lock.
 */

/*
 * This process's holder id: random, drawn once per process (again in a
 * forked child), the same as its change-feed origin. Any thread.
 */
int64_t	store_lease_holder(void);

/*
 * Takes the lease `name` for `holder` until `expires`: when it is free,
 * expired at `now`, or `holder`'s already (its expiry then moves to
 * `expires`). One statement, atomic: of two processes taking the same
 * lease at once, one gets it. *taken says whether this one did.
 */
ps_err	store_lease_take(struct store *, const char *name, int64_t holder,
	    int64_t now, int64_t expires, bool *taken);

/* One lease of a batch for store_lease_take_each(). */
struct store_lease_ask {
	const char	*name;		/* borrowed */
	int64_t		 now;
	int64_t		 expires;
	bool		 taken;		/* set: whether this holder got it */
};

/*
 * Takes each of `n` leases for `holder`, as store_lease_take(), in the
 * order of their names whatever the order of `asks`: on PostgreSQL a
 * take locks its row until the commit, and two processes' batches that
 * share names would otherwise each hold a row the other waits for (a
 * deadlock, one of them refused). Call it inside a transaction, for
 * one commit. It stops at the first error; the takes made before it
 * stand only if the caller commits.
 */
ps_err	store_lease_take_each(struct store *, struct store_lease_ask *asks,
	    size_t n, int64_t holder);

/*
 * Moves the expiry of `holder`'s lease `name` to `expires`. *held is
 * false (and nothing changes) when the lease is not `holder`'s (any
 * more: another took it after it expired).
 */
ps_err	store_lease_renew(struct store *, const char *name, int64_t holder,
	    int64_t expires, bool *held);

/* Gives up `holder`'s lease `name`; absent or another's: no change. */
ps_err	store_lease_release(struct store *, const char *name,
	    int64_t holder);

/*
 * Master: claims change notifications for delivery by `holder`, each
 * with the lease "outbox/<id>" until `expires`: the notices due at `now`
 * that no other holder's unexpired lease claims, oldest first, at most
 * `limit`. Calls `fn` for each notice this call claimed and that is
 * still due once claimed (one delivered and released meanwhile by
 * another node is not), so that of several nodes one delivers each.
 * The caller gives each lease back with store_lease_release() (name:
 * store_outbox_lease_name()) once the notice's outcome is written, or
 * lets it expire (a node that died mid-delivery: another claims it).
 */
ps_err	store_outbox_claim(struct store *, int64_t holder, int64_t now,
	    int64_t expires, int limit,
	    ps_err (*fn)(void *, const struct store_outbox *), void *arg);
/* "outbox/<id>": the lease of a notice, into `name` (n >= 32). */
void	store_outbox_lease_name(int64_t id, char *name, size_t n);

/* ---- master: photos to the directory's entries ---- */

/*
 * Every photo change (store_photo_put, store_photo_remove,
 * store_preview_save) of a mailbox from the directory queues, in its
 * own transaction and when the config's directory.photos is "on", one
 * write of its photo to its directory entry: one row per mailbox, a
 * newer change replacing an older one (a new id). The writer writes
 * what the mailbox has when it delivers.
 */
struct store_directory_outbox {
	int64_t	 id;
	char	 email[256];
	char	 directory_id[80];	/* the mailbox's, "" if none now */
	bool	 disabled;		/* the mailbox's */
	int64_t	 created;
	int	 attempts;
	char	 last_error[256];
};

/*
 * Claims due writes for `holder` as store_outbox_claim() claims notices,
 * each with the lease "directory-photo/<address>" until `expires`
 * (name: store_directory_outbox_lease_name(), n >= 300), given back by
 * the caller with store_lease_release() once the outcome is written.
 */
ps_err	store_directory_outbox_claim(struct store *, int64_t holder,
	    int64_t now, int64_t expires, int limit,
	    ps_err (*fn)(void *, const struct store_directory_outbox *),
	    void *arg);
void	store_directory_outbox_lease_name(const char *email, char *name,
	    size_t n);
/* Written (or nothing to write): the row goes; a newer one stays. */
ps_err	store_directory_outbox_done(struct store *, int64_t id);
ps_err	store_directory_outbox_retry(struct store *, int64_t id,
	    int64_t next_attempt, const char *error);
/* How many are queued; -1 when it cannot be read. */
int64_t	store_directory_outbox_pending(struct store *);

/* ---- sign-in failure counts shared between nodes (both roles) ---- */

/*
 * The sign-in guards of the nodes sharing a store share their failure
 * counts (auth/share.h) through a table of counts by name (an opaque
 * string of at most STORE_SIGNIN_NAME_MAX bytes), each with its number
 * of failures and the time of the last (seconds since 1970). A count
 * changed writes the feed (STORE_CHANGE_SIGNIN_COUNT, key: its name), so
 * that the other nodes read it; pruning writes none. The counts are not
 * copied by store_copy(): they are forgotten within minutes anyway.
 */
#define STORE_SIGNIN_KEY_BYTES	32
#define STORE_SIGNIN_NAME_MAX	64

/*
 * The key the nodes name counts with: the one the store keeps, or, when
 * it keeps none yet, a random one made and kept now (of two processes
 * doing so at once, both get the first one kept).
 */
ps_err	store_signin_key(struct store *,
	    unsigned char key[STORE_SIGNIN_KEY_BYTES]);

/*
 * Adds `failures` to the count `name` at `now`: to the failures there
 * when the last was after `forget_before`, else in place of them (they
 * are forgotten). *total receives the count after the addition, all
 * nodes' failures included.
 */
ps_err	store_signin_add(struct store *, const char *name, int64_t failures,
	    int64_t now, int64_t forget_before, int64_t *total);
/* Clears the count `name` (a success) when it has failures. */
ps_err	store_signin_clear(struct store *, const char *name, int64_t now);
/*
 * The failures of the count `name` into *failures (0: cleared) and the
 * time of its last change into *last; PS_ENOTFOUND when there is none.
 * Whether they are forgotten by now is the caller's to say.
 */
ps_err	store_signin_get(struct store *, const char *name, int64_t *failures,
	    int64_t *last);
/* Deletes the counts whose last change was at or before `before`. */
ps_err	store_signin_prune(struct store *, int64_t before);

#endif
