/*
 * Internals shared by the portal's files.
 */
#ifndef PS_PORTAL_INT_H
#define PS_PORTAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

#define PORTAL_DB	"portal.db"

/* Defaults of a new web application (reference A5, DESIGN §1). */
#define PORTAL_DEFAULT_EXPIRATION	(6 * 3600)
#define PORTAL_DEFAULT_ERROR_EXPIRATION	(1 * 3600)
#define PORTAL_DEFAULT_S		48
#define PORTAL_DEFAULT_M		72
#define PORTAL_DEFAULT_L		300
/* The high-resolution source kept beside S/M/L, for avatars. */
#define PORTAL_HR_SIDE			648

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

/* ---- the running server (serve.c, sync.c) ---- */

struct event;
struct event_base;
struct http_server;
struct http_tls;
struct pki_key;
struct xfer_loop;
struct work_pool;
struct sync_job;
struct auth_cache;
struct refresh;
struct metrics_acl;
struct portal_index;

/* Photos used when a user has none: one JPEG per size. */
struct placeholder {
	unsigned char	*data[3];
	size_t		 len[3];
	int		 sides[3];
};

struct webapp_ctx {
	struct portal_srv	*srv;
	struct store_webapp	 w;		/* settings, kept current */
	struct http_server	*http;
	struct http_tls		*tls;
	int			 port;		/* bound */
	char			*base_url;
	struct pki_key		*s2s_key;
	unsigned char		*s2s_cert;
	size_t			 s2s_cert_len;
	struct placeholder	 placeholder;
	/* the background refresher (background.c) */
	struct event		*bg_timer;
	char			 bg_cursor[256];
	int			 bg_inflight;
};

struct portal_srv {
	struct portal_state	*ps;
	struct event_base	*base;
	struct auth_cache	*auth_cache;
	struct xfer_loop	*xfer;
	struct work_pool	*pool;
	struct webapp_ctx	*apps;
	size_t			 n_apps;
	int64_t			 version;	/* store data version seen */
	uint64_t		 issuers_sig;	/* issuers_signature() */
	struct sync_job		*jobs;		/* in flight, single-flight */
	struct refresh		*refresh;	/* set by portal refresh */
	struct metrics_acl	*metrics_acl;	/* who may read /metrics */
	struct portal_index	*index;		/* the serving path's (index.h) */
	struct ad_cache_entry	*ad_cache;	/* Autodiscover answers */
	struct token_cache_entry *tokens;	/* S2S tokens, reused */
};

/*
 * Sets up the event loop, transfers, workers and the web applications
 * (all, or only the one at `only_url`) with their signing keys; no
 * listener. Clean up with portal_srv_cleanup() even after a failure.
 */
ps_err	portal_srv_init(struct portal_srv *, struct portal_state *,
	    const char *only_url);
void	portal_srv_cleanup(struct portal_srv *);

/* A digest of the trusted issuers, to notice when they change. */
uint64_t issuers_signature(struct store *);

/* Re-reads settings when an admin command changed the store. */
void	portal_refresh(struct portal_srv *);

/* How a sync ended. */
enum sync_result {
	SYNC_UPDATED,		/* a new photo was stored */
	SYNC_UNCHANGED,		/* the master answered 304 */
	SYNC_NO_PHOTO,		/* the master has no photo (404) */
	SYNC_NO_MAILBOX,	/* Autodiscover knows no mailbox */
	SYNC_BUSY,		/* the master asked us to wait (429, 503) */
	SYNC_FAILED,		/* anything else; see reason */
};

struct sync_outcome {
	enum sync_result	 result;
	char			 reason[512];
	long			 retry_after;	/* seconds, -1 if not given */
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
 * one is due. When one is started (or joined, single-flight), returns
 * SYNC_STARTED and calls `fn` once, later or before returning; with
 * SYNC_DEADLINE the call comes at the latest after SYNC_WAIT_MS.
 * Otherwise returns why not, and `fn` is not called.
 */
#define SYNC_WAIT_MS	2500
#define SYNC_FORCE	1	/* ignore the windows */
#define SYNC_DEADLINE	2	/* a request waits at most SYNC_WAIT_MS */
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
/* Forgets a waiter whose request went away (not called back). */
void	sync_cancel_wait(struct portal_srv *, void *arg);
void	sync_shutdown(struct portal_srv *);
/*
 * Forgets the cached Autodiscover answers and tokens of a web application
 * (its autodiscover domain, CA or issuers changed).
 */
void	sync_forget(struct portal_srv *, int64_t webapp);
/* Syncs in flight, for metrics. */
size_t	sync_in_flight(const struct portal_srv *);

/* The background refresher of a web application (background.c). */
void	background_start(struct webapp_ctx *);
void	background_stop(struct webapp_ctx *);

/*
 * GET /avatar/<hash>[.jpg|.png] (avatar.c), Libravatar/Gravatar style.
 * The caller has checked access: the web application's avatar_anyone, or
 * a signed-in request. Answers now or later (a render on the workers).
 */
struct http_req;
/* Frees the cache of rendered avatars (at exit). */
void	avatar_shutdown(void);
void	avatar_handle(struct webapp_ctx *, struct http_req *);

/* Runs the server until SIGINT/SIGTERM. */
ps_err	portal_serve(struct portal_state *, const char *listen_host,
	    const char *port_file, const char *metrics_allow);

#endif
