/*
 * Internals shared by the master's files: the state directory, photo
 * changes, the change-photo page, and the server.
 */
#ifndef PS_MASTER_INT_H
#define PS_MASTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "exchange/ews.h"
#include "image/image.h"
#include "store/store.h"

struct event_base;
struct http_req;

/* The files of a master state directory. */
#define MASTER_DB		"master.db"
#define MASTER_S2S_KEY		"s2s-key.pem"
#define MASTER_S2S_CERT		"s2s-cert.pem"
#define MASTER_TLS_KEY		"tls-key.pem"
#define MASTER_TLS_CERT		"tls-cert.pem"

struct master_state {
	char		*dir;
	struct store	*store;
	char		*host;		/* host name or address, no port */
	int		 port;		/* 0: chosen when serving */
	char		*domain;	/* mail domain */
	char		*realm;		/* GUID */
	unsigned char	*s2s_cert;	/* DER */
	size_t		 s2s_cert_len;
	/* sign-in by a single sign-on proxy (auth/sso.h); "": off */
	char		 sso_header[64];
	char		 sso_proxies[1024];
	/* Kerberos sign-in (auth/negotiate.h, `master kerberos set`): the
	 * keytab ("": off), its service ("": any it holds), the realms'
	 * mail domains ("REALM=domain, ..."; "": the principal's own) */
	char		 kerberos_keytab[512];
	char		 kerberos_service[256];
	char		 kerberos_realms[1024];
};

/* Opens an initialised state directory. */
ps_err	master_state_open(const char *dir, struct master_state *);
/*
 * Reads the sign-in settings (sso_* and kerberos_*, "" when not set)
 * from `st` into those fields of `ms`, and no other: at the start, and
 * again when a server reloads. It reads the store: off the loop.
 */
ps_err	master_signin_read(struct store *st, struct master_state *ms);
void	master_state_close(struct master_state *);
/* A path inside the state directory; the caller frees it. */
char	*master_path(const struct master_state *, const char *name);

/* An upload rendered into the sizes a photo is stored at. */
struct master_photo {
	struct image_jpeg	 jpeg[EWS_SIZE_COUNT];
	/* What to store: each code rendered at its own side, then the
	 * first code the source was too small for (at the source's side);
	 * the sizes point into jpeg[]. */
	struct store_photo_size	 sizes[EWS_SIZE_COUNT];
	size_t			 n;
	int			 src_side;	/* the source square's side */
};

/*
 * Decodes an upload once with the default image limits and renders the
 * high-resolution sizes, never upscaled. Touches no store, so it may run
 * on a worker thread. On failure (PS_ELIMIT, PS_EIMAGE, with a sentence
 * in ps_errmsg()) *out is empty. Free with master_photo_free().
 */
ps_err	master_photo_render(const void *data, size_t len,
	    struct master_photo *out);
void	master_photo_free(struct master_photo *);
/* A new random ETag into etag (64 bytes). */
void	master_etag_new(char *etag);
/*
 * Renders an uploaded image into the stored high-resolution sizes and
 * replaces the mailbox's photo atomically with a new ETag (written to
 * etag, 64 bytes). On any failure the stored photo is unchanged.
 */
ps_err	master_photo_set(struct store *, const char *email,
	    const void *data, size_t len, char *etag);


/* ---- the running server (serve.c), shared with ecp.c and notify.c ---- */

struct http_server;
struct http_tls;
struct metrics_acl;
struct store_pool;
struct store_follower;
struct auth_guard;
struct auth_share;
struct s2s_metadata;
struct s2s_partner;
struct master_cache;
struct master_ecp;
struct notifier;
struct master_call;

/*
 * The registered partners as the server keeps them: parsed for token
 * validation, and the origins of their metadata URLs for the page's
 * "Back to" link. Replaced whole when the feed says a partner changed.
 */
struct master_partners {
	struct s2s_metadata	*md;
	struct s2s_partner	*list;		/* views into md */
	size_t			 n;
	char			**origins;	/* url_origin() form */
	size_t			 n_origins;
};

struct auth_sso;
struct auth_negotiate;

struct dir_schedule;
struct dir_passwords;
struct graph_ids;
struct people_index;

struct http_signals;

struct master_srv {
	struct master_state	*ms;
	struct event_base	*base;
	struct http_server	*http;
	struct http_tls		*tls;
	/*
	 * Every store call made while serving goes through the pool's lanes
	 * (ms->store is for start-up, before serving); what is answered
	 * from memory is kept current by the follower.
	 */
	struct store_pool	*pool;
	struct store_follower	*follower;
	struct auth_guard	*guard;		/* every password check */
	struct auth_share	*share;		/* its counts, to other nodes */
	struct master_cache	*cache;
	struct master_ecp	*ecp;
	struct notifier		*notifier;
	struct metrics_acl	*metrics_acl;
	struct auth_sso		*sso;		/* NULL: no proxy's sign-in */
	struct auth_negotiate	*kerberos;	/* NULL: no Kerberos sign-in */
	struct dir_schedule	*directory;	/* the directory sync's */
	struct dirphoto_writer	*dirphoto;	/* photos to the directory */
	struct dir_passwords	*dir_passwords;	/* --passwords on */
	char			*base_url;	/* https://host[:port] */
	char			*oab_path;	/* /oab/<realm>/oab.xml */
	int			 port;		/* bound */
	/* In URLs and token audiences: a load balancer's, or the bound. */
	int			 public_port;
	struct master_partners	*partners;
	/*
	 * Counts the feed's mailbox changes (and lost feeds): what was read
	 * of the mailboxes before is stale once it moved. Graph's ids of the
	 * mailboxes (graph.c), as of a generation; NULL until first needed.
	 */
	uint64_t		 mailbox_generation;
	struct graph_ids	*graph_ids;
	struct people_index	*people;	/* ResolveNames' (people.h) */
	/* Requests in flight (deferred); 503 for those left at the stop. */
	struct master_call	*calls;
	bool			 draining;	/* SIGTERM: /ready says so */
	struct http_signals	*sigs;		/* SIGHUP ends its reload */
};

struct auth_signin;
/*
 * The token of mutual authentication of a Kerberos sign-in `si`, when
 * it has one, in the answer's WWW-Authenticate (serve.c).
 */
void	master_negotiate_reply(struct http_req *, const struct auth_signin *si);

/*
 * On a store lane: for a mailbox from the directory whose passwords the
 * directory checks (directory/passwords.h), replaces *pwhash with the
 * guard's AUTH_GUARD_EXTERNAL. PS_OK otherwise, *pwhash unchanged.
 */
ps_err	master_directory_password(struct master_srv *, struct store *,
	    const struct store_mailbox *, char **pwhash);

/*
 * Answers 503 with Retry-After for a budget used up: `what` is "store" (a
 * lane's queue; logged as serve.busy with the reason in ps_errmsg()) or
 * "signin" (the guard's queue, which logs its refusals itself).
 */
void	master_reply_busy(struct http_req *, const char *what);
/* ---- a request in serve.c, for the Graph routes (graph.c) ---- */

struct master_cached;
/* Borrowed for the call's life. */
struct http_req *master_call_req(struct master_call *);
struct master_srv *master_call_srv(struct master_call *);
/* The signed-in mailbox's address; "" for a partner's app-only token. */
const char *master_call_user(const struct master_call *);
/* A route's own state, freed with ext_free when the call ends. */
void	master_call_set_ext(struct master_call *, void *ext,
	    void (*ext_free)(void *));
void	*master_call_ext(struct master_call *);
/* After the answer (or instead of one, when the client left). */
void	master_call_end(struct master_call *);
/* True (and the call ended) when the client left while it waited. */
bool	master_call_gone(struct master_call *);
/* A store lane's queue is full: 503 with Retry-After, the call ended. */
void	master_call_busy(struct master_call *);
/*
 * The photo of `email` at size `code`: from the index at once, or read
 * on the read lane; then(c, ph) with a reference (NULL: the store
 * failed; data NULL: no photo or no such mailbox).
 */
void	master_call_photo(struct master_call *, const char *email, int code,
	    void (*then)(struct master_call *, struct master_cached *));
/* A photo answer's ETag, Cache-Control, Expires and Last-Modified. */
void	master_photo_headers(struct http_req *, const char *etag,
	    int64_t updated);

/* ---- the Graph photo API (graph.c) ---- */

/* Graph's limit on a photo set with PUT or PATCH (its 4 MB). */
#define GRAPH_PHOTO_MAX		((size_t)4 * 1024 * 1024)
/*
 * At the body gate, for a request under /v1.0/ with a body larger than
 * HTTP_SMALL_BODY: true to go on (sign-in, then up to GRAPH_PHOTO_MAX
 * bytes); false when it was answered (413 with Graph's error body: a
 * declared length over the limit, or a method that takes no body).
 */
bool	graph_gate(struct http_req *);
/*
 * Answers with Graph's error body: {"error":{"code","message",
 * "innerError":{"date","request-id","client-request-id"}}}.
 */
void	graph_reply_error(struct http_req *, int status, const char *code,
	    const char *message);
/* Answers a signed-in request under /v1.0/ (every method). */
void	graph_handle(struct master_call *);
/* The server's error_body hook (http_server_set_error_body). */
bool	graph_error_body(struct http_req *, int status, const char *message,
	    void *arg);
/* Frees the server's index of Graph ids; NULL is a no-op. */
void	graph_ids_free(struct graph_ids *);

enum graph_what {
	G_PHOTO,	/* .../photo: the largest size stored */
	G_PHOTOS,	/* .../photos: the list */
	G_SIZE,		/* .../photos/{size} */
};

/* What a Graph request's path names. */
struct graph_path {
	enum graph_what	 what;
	bool		 value;		/* .../$value */
	int		 code;		/* G_SIZE: ews_size_index(), -1 none */
	bool		 me;
	char		 who[256];	/* users/{who}/..., as in the path */
};

/*
 * Reads a path (lower case) /v1.0/{me|users/{x}}/photo[/$value] or
 * .../photos[/{size}[/$value]] into `out`; false when it is none of
 * these.
 */
bool	graph_parse_path(const char *path, struct graph_path *out);

/* ---- the change-photo page (ecp.c), served by serve.c ---- */

/* An image upload and the multipart form around it. */
#define MASTER_UPLOAD_MAX	((size_t)IMAGE_MAX_BYTES + 64 * 1024)

enum ecp_route {
	ECP_HOME,	/* GET /ecp/: to the page */
	ECP_PAGE,	/* GET /ecp/PersonalSettings/EditAccount.aspx */
	ECP_LOGIN,	/* POST /ecp/login */
	ECP_LOGOUT,	/* POST /ecp/logout */
	ECP_PHOTO,	/* GET /ecp/photo.ashx?kind=current|preview&size= */
	ECP_UPLOAD,	/* POST /ecp/photo/upload (multipart) */
	ECP_SAVE,	/* POST /ecp/photo/save */
	ECP_CANCEL,	/* POST /ecp/photo/cancel */
	ECP_REMOVE,	/* POST /ecp/photo/remove */
	ECP_VISIBILITY,	/* POST /ecp/photo/visibility (hide=yes|no) */
};

/*
 * The page's state for one server (borrowed; its pool, guard, cache and
 * notifier are used) and a worker pool for rendering uploads. NULL with
 * the reason in ps_errmsg() when the worker pool cannot start.
 */
struct master_ecp *ecp_new(struct master_srv *);
/*
 * For a graceful stop: lets the uploads being rendered finish (their
 * previews are then written through the store's write lane).
 */
void	ecp_drain(struct master_ecp *);
/*
 * Answers the requests still waiting (503) and frees everything. Call it
 * after the store's pool and the guard are freed (nothing then calls
 * back) and before the HTTP server is freed. NULL is a no-op.
 */
void	ecp_free(struct master_ecp *);
/*
 * Answers one request for `route` (the method is already checked), now
 * or later: reads go through the read lane, changes the write lane,
 * passwords the guard.
 */
void	ecp_handle(struct master_ecp *, struct http_req *, enum ecp_route);
/*
 * The body gate for an upload (serve.c's gate): a signed-in session may
 * send an image and its form (MASTER_UPLOAD_MAX); without one, the
 * signed-out answer, before the body is read.
 */
void	ecp_gate(struct master_ecp *, struct http_req *);
/* Uploads rendering or waiting for a worker, for metrics. */
size_t	ecp_uploads_pending(struct master_ecp *);
/*
 * The page's render workers (borrowed), capped at the renders it allows
 * at once: every upload of the server is rendered there (change.c).
 */
struct work_pool *ecp_renderers(struct master_ecp *);

/* ---- a photo changed by its owner from a client (change.c) ---- */

enum master_change_result {
	MASTER_CHANGE_OK,		/* stored (etag), or removed */
	MASTER_CHANGE_NO_PHOTO,		/* a removal: there was none */
	MASTER_CHANGE_MALFORMED,	/* unreadable request (message) */
	MASTER_CHANGE_OTHER_OPERATION,	/* SOAP: not SetUserPhoto */
	MASTER_CHANGE_NOT_OWNER,	/* SOAP: another mailbox named */
	MASTER_CHANGE_TOO_LARGE,	/* over max_image (message) */
	MASTER_CHANGE_BAD_IMAGE,	/* the pipeline's reason (message) */
	MASTER_CHANGE_BUSY,		/* renders or the lane full */
	MASTER_CHANGE_STORE_FAILED,	/* 500 (message) */
	MASTER_CHANGE_STORE_DOWN,	/* 503 with Retry-After */
};

/*
 * One change, kept by the caller (in its request's state) until done()
 * was called; master_change_cleanup() after. The caller sets the fields
 * before the outcome; the body is borrowed and must stay put (the
 * request's).
 */
struct master_change {
	struct master_srv	*srv;
	const char		*req_id;	/* for the log */
	const char		*via;		/* "ews" or "graph" */
	char			 owner[256];	/* the signed-in mailbox */
	const void		*body;
	size_t			 len;
	bool			 soap;		/* body: SetUserPhoto */
	size_t			 max_image;	/* bytes of image allowed */
	void			(*done)(struct master_change *, void *arg);
	void			*arg;
	/* the outcome */
	enum master_change_result result;
	char			 message[512];	/* a sentence for refusals */
	char			 etag[64];	/* the new photo's */
	char			 email[256];	/* SOAP: the address named */
	size_t			 image_len;
	/* private */
	ps_err			 rc;
	struct ews_set_photo_request set;
	struct master_photo	 photo;
};

/*
 * Sets the owner's photo from the body (an image, or a SetUserPhoto
 * request when soap): read and rendered on the render workers, stored on
 * the write lane; done() is called once on the loop, maybe before this
 * returns. A refusal changes nothing and is logged.
 */
void	master_change_set(struct master_change *);
/* Removes the owner's photo on the write lane, then done(). */
void	master_change_remove(struct master_change *);
void	master_change_cleanup(struct master_change *);

/*
 * The sender of change notifications to partners (notify.c), on the
 * server's event loop; its store reads and writes go through the pool.
 * NULL when the S2S key cannot be read.
 */
struct notifier *notifier_new(struct master_srv *);
/* Looks at the outbox now (a change queued notifications). */
void	notifier_wake(struct notifier *);
/*
 * Cancels the transfers in flight (their rows stay queued). Store jobs
 * already queued finish later (store_pool_free). NULL is a no-op.
 */
void	notifier_free(struct notifier *);

/* ---- the server's in-memory index of photos and credentials (cache.c) */

struct auth_creds;

/* A stored photo of one size, shared; unref when done. */
struct master_cached {
	int		 refs;
	char		 etag[64];
	int		 side;
	int64_t		 updated;
	unsigned char	*data;	/* NULL: the mailbox has no photo */
	size_t		 len;
	bool		 hidden;	/* its owner alone may see it */
};

struct master_cache *master_cache_new(void);
void	master_cache_free(struct master_cache *);
/*
 * A stamp to take before reading the store for the index: what was read
 * is kept only if its address did not change after the stamp.
 */
uint64_t master_cache_stamp(const struct master_cache *);
/* Drops the photos, the tag and the verified credentials of `email`. */
void	master_cache_drop(struct master_cache *, const char *email);
/* Drops everything (the feed was lost). */
void	master_cache_drop_all(struct master_cache *);
/*
 * The Basic credentials verified (auth/creds.h), each with its mailbox's
 * address (MASTER_CRED_DATA bytes); borrowed for the cache's life.
 */
#define MASTER_CRED_DATA	256
struct auth_creds *master_cache_creds(struct master_cache *);
/*
 * The photo of `email` at size `code` (stored, or the largest stored), a
 * reference the caller releases with master_cached_unref(); its data is
 * NULL when the mailbox has no photo (or does not exist). NULL on a miss:
 * read the store off the loop, then master_cache_photo_put().
 */
struct master_cached *master_cache_photo(struct master_cache *,
	    const char *email, int code);
/*
 * What a miss read for `email` and `code`: the photo `sp` (its data is
 * taken) or, with `sp` NULL, none. Returns a reference for the answer,
 * kept in the index too unless the address changed since `stamp`.
 */
struct master_cached *master_cache_photo_put(struct master_cache *,
	    const char *email, int code, uint64_t stamp,
	    struct store_photo *sp);
void	master_cached_unref(void *);
/*
 * True when the photo of `owner` is hidden from `viewer` (its owner, in
 * any case, sees it; "" is nobody's, a partner's app-only token): every
 * answer to `viewer` is then as if there were no photo.
 */
bool	master_photo_hidden_from(bool hidden, const char *viewer,
	    const char *owner);

/*
 * The photo's tag of an address (every size has the same ETag): enough
 * to answer a conditional request 304 without the photo's bytes, which a
 * master that is asked again and again whether photos changed (a portal's
 * refresh of every user) would otherwise read and keep for nothing.
 */
struct master_tag {
	bool	 has_photo;
	bool	 hidden;	/* its owner alone may see it */
	char	 etag[64];
	int64_t	 updated;
};

/* Borrowed until the next call into the index; NULL on a miss. */
const struct master_tag *master_cache_tag(struct master_cache *,
	    const char *email);
/* What a miss read (copied), kept unless the address changed since. */
void	master_cache_tag_put(struct master_cache *, const char *email,
	    uint64_t stamp, const struct master_tag *);

/*
 * Runs the server until SIGINT/SIGTERM, on `listen_port` when it is not
 * 0 (a node behind a load balancer: the URLs it gives out keep the
 * configured port), else on the configured one.
 */
ps_err	master_serve(struct master_state *, const char *listen_host,
	    int listen_port, const char *port_file,
	    const char *metrics_allow);

#endif
