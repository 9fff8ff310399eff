/*
 * Internals shared by the portal's files.
 */
#ifndef PS_PORTAL_INT_H
#define PS_PORTAL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"
#include "token.h"

#define PORTAL_DB	"portal.db"

/* Defaults of a new web application (reference A5, DESIGN §1). */
#define PORTAL_DEFAULT_EXPIRATION	(6 * 3600)
#define PORTAL_DEFAULT_ERROR_EXPIRATION	(1 * 3600)
/* How long an owner's request waits for its sync, per web application. */
#define PORTAL_DEFAULT_OWNER_WAIT_MS	2000
#define PORTAL_MAX_OWNER_WAIT_MS	10000
#define PORTAL_DEFAULT_S		48
#define PORTAL_DEFAULT_M		72
#define PORTAL_DEFAULT_L		300
/* The high-resolution source kept beside S/M/L, for avatars. */
#define PORTAL_HR_SIDE			648
/* Image work queued or running at once, at most; past it 503. */
#define PORTAL_IMAGE_QUEUE		64

struct portal_state {
	char		*dir;
	struct store	*store;
};

ps_err	portal_state_open(const char *dir, struct portal_state *);
void	portal_state_close(struct portal_state *);

/*
 * The name of a web application's key or certificate file in the state
 * directory, webapp-<id>-<what>.pem with what one of "s2s-key",
 * "s2s-cert", "tls-key", "tls-cert"; and its path. The caller frees them.
 */
char	*portal_webapp_file(int64_t id, const char *what);
char	*portal_webapp_path(const char *dir, int64_t id, const char *what);

/* ---- the running server (engine.c, serve.c, sync.c, ...) ---- */

struct event;
struct event_base;
struct http_server;
struct http_tls;
struct http_req;
struct pki_key;
struct xfer_loop;
struct work_pool;
struct sync_job;
struct refresh;
struct metrics_acl;
struct portal_index;
struct dir_schedule;
struct dir_passwords;
struct portal_directory;
struct store_pool;
struct store_follower;
struct auth_guard;
struct auth_share;
struct lru;

/* Photos used when a user has none: one JPEG per size. */
struct placeholder {
	unsigned char	*data[3];
	size_t		 len[3];
	int		 sides[3];
};

struct auth_sso;
struct auth_negotiate;

struct webapp_ctx {
	struct portal_srv	*srv;
	struct store_webapp	 w;		/* settings, kept current */
	struct auth_sso		*sso;		/* w's sso_*; NULL: off */
	/* Kerberos sign-in: the acceptor of w's keytab and service (owned);
	 * NULL: off. Loaded again on a worker when they change; kerberos_gen
	 * tells the latest load from older ones finishing late. */
	struct auth_negotiate	*kerberos;
	uint64_t		 kerberos_gen;
	struct http_server	*http;
	struct http_tls		*tls;
	int			 port;		/* bound */
	/* In URLs and token audiences: a load balancer's, or the bound. */
	int			 public_port;
	char			*base_url;
	struct pki_key		*s2s_key;
	unsigned char		*s2s_cert;
	size_t			 s2s_cert_len;
	struct placeholder	 placeholder;
	/* Bumped when what was learnt from the master no longer holds (a
	 * new autodiscover domain, CA file or issuer): sync.c's caches. */
	uint64_t		 caches_gen;
	/* the background refresher (background.c) */
	struct event		*bg_timer;
	char			 bg_cursor[256];
	int			 bg_inflight;
	bool			 bg_paging;	/* a page is being read */
};

struct portal_srv {
	struct portal_state	*ps;
	struct event_base	*base;
	struct store_pool	*store;		/* the store off the loop */
	struct xfer_loop	*xfer;
	struct work_pool	*pool;		/* image work */
	struct webapp_ctx	*apps;
	size_t			 n_apps;
	struct portal_issuers	 issuers;	/* the trusted masters */
	struct sync_job		*jobs;		/* in flight, single-flight */
	struct refresh		*refresh;	/* set by portal refresh */
	/* serve only */
	struct store_follower	*follower;	/* the change feed */
	struct auth_guard	*guard;		/* sign-in attempts */
	struct auth_share	*share;		/* its counts, to other nodes */
	struct metrics_acl	*metrics_acl;	/* who may read /metrics */
	struct portal_index	*index;		/* the serving path's (index.h) */
	struct dir_schedule	*directory;	/* the directory sync's */
	struct portal_directory	*directory_ops;	/* its thread's */
	struct dir_passwords	*dir_passwords;	/* --passwords on */
	bool			 draining;	/* SIGTERM: /ready says so */
	/* sync.c's bounded maps */
	struct lru		*ad_cache;	/* Autodiscover answers */
	struct lru		*states;	/* sync states */
	struct lru		*master_holds;	/* hosts that answered 503 */
	uint64_t		 states_epoch;
	struct sync_job		*write_pending;	/* outcomes to write */
	bool			 writing;	/* a batch is being written */
	struct sync_job		*lease_pending;	/* lease tries to make */
	bool			 leasing;	/* a batch of them is made */
	struct event		*lease_soon;	/* the next batch, this turn */
	/*
	 * Syncs calling the master (from Autodiscover until GetUserPhoto
	 * answered), and at most how many may at once (0: no bound). A
	 * sync past its state and lease waits in master_wait for a place:
	 * `portal refresh` bounds its calls to the master, while more
	 * syncs read their states and take their leases in batches ahead
	 * of them, and render and write after them.
	 */
	int			 at_master;
	int			 master_limit;
	struct sync_job		*master_wait;	/* FIFO, by master_wait_next */
	struct sync_job		**master_wait_tail;
	struct lru		*tokens;	/* S2S tokens kept (token.h) */
	bool			 stopping;	/* sync_stop() was called */
	/*
	 * `portal refresh`: when its pass began (time_now()); a forced
	 * sync answers with another node's outcome stored since. 0: each
	 * forced sync counts from its own start.
	 */
	int64_t			 pass_started;
};

/*
 * Sets up the event loop, the store's lanes, transfers, workers and the
 * web applications (all, or only the one at `only_url`) with their
 * signing keys and the trusted issuers; no listener. Clean up with
 * portal_srv_cleanup() even after a failure.
 */
ps_err	portal_srv_init(struct portal_srv *, struct portal_state *,
	    const char *only_url);
void	portal_srv_cleanup(struct portal_srv *);

/* How a sync ended. */
enum sync_result {
	SYNC_UPDATED,		/* a new photo was stored */
	SYNC_UNCHANGED,		/* the master answered 304 */
	SYNC_NO_PHOTO,		/* the master has no photo (404) */
	SYNC_NO_MAILBOX,	/* Autodiscover knows no mailbox */
	SYNC_BUSY,		/* the master asked us to wait (429, 503) */
	SYNC_FAILED,		/* anything else; see reason */
	/* none was due (decided once the state was read from the store) */
	SYNC_FRESH,		/* within the photo expiration */
	SYNC_ERROR_WINDOW,	/* within the error expiration */
};

struct sync_outcome {
	enum sync_result	 result;
	char			 reason[512];
	long			 retry_after;	/* seconds, -1 if not given */
	const char		*ecp_photo_url;	/* when known; borrowed */
	bool			 elsewhere;	/* the outcome another node
						   stored: this one called
						   nobody */
};

const char *sync_result_name(enum sync_result);

/*
 * Called when a sync finished (`o` says how), or, for a request that
 * waits with a deadline, when the deadline passed first (`o` NULL); either
 * way the caller now serves what is stored.
 */
typedef void (*sync_wait_fn)(void *arg, const struct sync_outcome *o);

/*
 * Asks for a sync of `owner`'s photo. Unless SYNC_FORCE, the web
 * application's import setting and the expiration windows decide whether
 * one is due. When the user's state is in memory the decision is made at
 * once: a sync started (or joined, single-flight) returns SYNC_STARTED
 * and `fn` is called once, later; otherwise it returns why not, and `fn`
 * is not called. When the state must first be read from the store, it
 * returns SYNC_STARTED and `fn` gets either the sync's outcome or
 * SYNC_FRESH / SYNC_ERROR_WINDOW. With SYNC_DEADLINE the call comes at
 * the latest after the web application's owner_wait_ms of the sync.
 */
#define SYNC_FORCE	1	/* ignore the windows */
#define SYNC_DEADLINE	2	/* a request waits at most owner_wait_ms */
/* The photo changed at the master (a change notice): a sync running now
 * may have missed it, so one more (forced) follows it. */
#define SYNC_AGAIN	4
enum sync_start {
	SYNC_STARTED,
	SYNC_NOT_DUE_FRESH,	/* within the photo expiration */
	SYNC_NOT_DUE_ERROR,	/* within the error expiration */
	SYNC_OFF,		/* photo import is off */
};
enum sync_start sync_request(struct webapp_ctx *,
	    const struct store_user *owner, const char *reqid, int flags,
	    sync_wait_fn fn, void *arg);

/*
 * What Autodiscover says about a user: has_mailbox 1 with the ECP photo
 * URL, 0 (no mailbox), or -1 with the reason it could not be found out.
 */
typedef void (*sync_discover_fn)(void *arg, int has_mailbox,
    const char *ecp_photo_url, const char *reason);

/*
 * Finds out whether the user has a mailbox at the master, from the cache
 * of Autodiscover answers or by asking (on the loop). `fn` is called once,
 * possibly before sync_discover returns.
 */
void	sync_discover(struct webapp_ctx *, const struct store_user *user,
	    const char *reqid, sync_discover_fn fn, void *arg);
/*
 * Asks Autodiscover about up to AD_MAX_USERS of `users` in one call (an
 * app-only token), so that their syncs find the answers kept and make
 * one call to the master each instead of two (`portal refresh`). Users
 * with no mailbox in the answer, and any failure, are left to their own
 * syncs, which find out and record it. done(arg) is called once, maybe
 * before it returns.
 */
void	sync_discover_prefetch(struct webapp_ctx *,
	    const struct store_user *const *users, size_t n,
	    const char *reqid, void (*done)(void *), void *arg);
/*
 * Reads the sync state of every user of the web application from `st`
 * (before the loop runs: `portal refresh`), so that their syncs need no
 * store read each; `accounts` without a stored state get the zeroed one.
 */
ps_err	sync_preload(struct webapp_ctx *, struct store *,
	    const char *const *accounts, size_t n);
/* Sets up sync.c's maps (portal_srv_init calls it). */
void	sync_caches_init(struct portal_srv *);
/*
 * Before the store's lanes stop: the leases of the syncs in flight are
 * given back, and no sync calls the master any more.
 */
void	sync_stop(struct portal_srv *);
void	sync_shutdown(struct portal_srv *);
/*
 * Forgets the Autodiscover answers and S2S tokens learnt for a web
 * application (its autodiscover domain, CA or issuers changed).
 */
void	sync_forget(struct portal_srv *, int64_t webapp);
/* Another process changed a sync state or photo (the change feed). */
void	sync_changed(struct portal_srv *, const struct store_change *);
/* The change feed was lost: forget every state held in memory. */
void	sync_clear(struct portal_srv *);
/* Syncs in flight, for metrics. */
size_t	sync_in_flight(const struct portal_srv *);

/* The background refresher of a web application (background.c). */
void	background_start(struct webapp_ctx *);
void	background_stop(struct webapp_ctx *);

/* ---- serving (serve.c and the route files) ---- */

#define PORTAL_HTML_TYPE	"text/html; charset=utf-8"
#define PORTAL_TEXT_TYPE	"text/plain; charset=utf-8"

/* The signed-in user of a request. */
struct viewer {
	struct store_user	user;		/* no password hash */
	char			csrf[65];	/* session's, or "" (Basic) */
	bool			basic;
};

/*
 * A route's handler, once the request is signed in; `v` is borrowed for
 * the call (copy what outlives it).
 */
typedef void (*signed_in_fn)(struct webapp_ctx *, struct http_req *,
    const struct viewer *v);

/*
 * Signs the request in (signin.c): Basic credentials or the session
 * cookie, from the index of verified credentials or, the first time,
 * through the store and the sign-in guard (later, from a callback). Then
 * calls `then` (never NULL); or answers itself: the sign-in form (a
 * browser), 401, 429 when failures must be waited out, 503 when busy.
 */
void	signin_request(struct webapp_ctx *, struct http_req *,
	    signed_in_fn then);
/*
 * The Kerberos acceptor of a web application's keytab and service, or
 * NULL (off, or not loadable: logged as webapp.kerberos_refused).
 * Reads the keytab: before the loop runs, or on a worker.
 */
struct auth_negotiate *signin_kerberos_load(const struct store_webapp *);
/* GET shows the sign-in form, POST signs in (a session cookie). */
void	signin_login(struct webapp_ctx *, struct http_req *);
void	signin_logout(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);

/* Pages and photos (photos.c, profile.c, notice.c, avatar.c). */
void	photos_userphoto(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	photos_library(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	profile_my(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	profile_person(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	profile_people(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	profile_changephoto(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	profile_photochanged(struct webapp_ctx *, struct http_req *,
	    const struct viewer *);
void	notice_receive(struct webapp_ctx *, struct http_req *);

/* An HTML page with the portal's headers; empties `b`. */
void	reply_html(struct http_req *, int status, struct buf *b);
/* The error page, for a signed-in user. */
void	reply_error_page(struct http_req *, const struct viewer *,
	    int status, const char *message);
/* 503 with Retry-After, for a budget used up (the reason in the log). */
void	reply_busy(struct http_req *, const char *what);
/* A lookup the store could not answer: 503 when busy (PS_EBUSY), else 500. */
void	reply_unread(struct portal_srv *, struct http_req *, ps_err rc);

/*
 * GET /avatar/<hash>[.jpg|.png] (avatar.c), Libravatar/Gravatar style.
 * The caller has checked access: the web application's avatar_anyone, or
 * a signed-in request. Answers now or later (a render on the workers).
 */
/* Frees the cache of rendered avatars (at exit). */
void	avatar_shutdown(void);
/*
 * `viewer` is the signed-in account ("" or NULL: anonymous): a photo the
 * master marked hidden is its owner's alone, the default for anyone else.
 */
void	avatar_handle(struct webapp_ctx *, struct http_req *,
	    const char *viewer);
/*
 * What avatar_handle reads from a request, on their own for the fuzz
 * target. avatar_hash_parse: the path after "/avatar/", lower-cased hex
 * with an optional .jpg, .jpeg or .png: 0 with hex[] (NUL-terminated) and
 * digest[] (*digest_len bytes) filled, 404 for hex digits of a length
 * other than MD5's or SHA-256's, 400 for anything else (no other
 * character, no '/' or "..", ever reaches a lookup).
 * avatar_size_parse: the size asked for, as Libravatar reads it, `size`
 * over `s` (either NULL): anything but a positive whole number means the
 * default, more than the maximum means the maximum.
 * avatar_default_allowed: whether `url` (d=) may be a redirect target: an
 * https URL that parses, without "." or ".." segments, and one of
 * `allow`'s prefixes (comma- or space-separated https URLs) has its host
 * and port and a path its path starts with; NULL, or the reason it may
 * not, in *why.
 */
int	avatar_hash_parse(const char *hash, char hex[65],
	    unsigned char digest[32], size_t *digest_len);
int	avatar_size_parse(const char *size, const char *s);
bool	avatar_default_allowed(const char *url, const char *allow,
	    const char **why);

/*
 * Runs the server until SIGINT/SIGTERM, every web application on
 * `listen_port` when it is not 0 (a node behind a load balancer: they
 * share it, routed by Host, and the URLs they give out keep their
 * configured ports), else each on its URL's port.
 */
ps_err	portal_serve(struct portal_state *, const char *listen_host,
	    int listen_port, const char *port_file,
	    const char *metrics_allow);

#endif
