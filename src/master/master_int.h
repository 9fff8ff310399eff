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
	/*
	 * Bumped whenever this process changes a photo, so that the server's
	 * in-memory photos are dropped (changes by other processes move the
	 * store's data version instead).
	 */
	uint64_t	 photo_generation;
};

/* Opens an initialised state directory. */
ps_err	master_state_open(const char *dir, struct master_state *);
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

/* ---- the change-photo page (ecp.c), served by serve.c ---- */

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
};

struct master_ecp;

/*
 * The page's state for one server: the store (borrowed from `ms`) and a
 * worker pool on `base` for rendering uploads. NULL with the reason in
 * ps_errmsg() when the pool cannot start.
 */
struct master_ecp *ecp_new(struct master_state *ms, struct event_base *base);
/* Answers the uploads still rendering (503) and frees everything. Call
 * it before the HTTP server is freed. NULL is a no-op. */
void	ecp_free(struct master_ecp *);
/* Answers one request for `route` (the method is already checked). */
void	ecp_handle(struct master_ecp *, struct http_req *, enum ecp_route);

/*
 * The sender of change notifications to partners (notify.c), on the
 * server's event loop. NULL when the S2S key cannot be read.
 */
struct event_base;
struct notifier;
struct notifier *notifier_new(struct master_state *, struct event_base *);
void	notifier_free(struct notifier *);

/* The server's in-memory index of photos and credentials (cache.c). */
struct master_cache;

/* A stored photo of one size, shared; unref when done. */
struct master_cached {
	int		 refs;
	char		 etag[64];
	int		 side;
	int64_t		 updated;
	unsigned char	*data;	/* NULL: the mailbox has no photo */
	size_t		 len;
};

struct master_cache *master_cache_new(void);
void	master_cache_free(struct master_cache *);
/* Drops everything when the store changed; call once per request. */
void	master_cache_check(struct master_cache *, struct master_state *);
/* A Basic header verified less than 5 minutes ago: its mailbox. */
bool	master_cache_cred(struct master_cache *, const char *header,
	    char email[256]);
void	master_cache_cred_put(struct master_cache *, const char *header,
	    const char *email);
/*
 * The photo of `email` at size `code` (stored, or the largest stored), a
 * reference the caller releases with master_cached_unref(). NULL with
 * *rc PS_ENOTFOUND when there is none, PS_ESTORE when the store failed.
 */
struct master_cached *master_cache_photo(struct master_cache *,
	    struct store *, const char *email, int code, ps_err *rc);
void	master_cached_unref(void *);

/* Runs the server until SIGINT/SIGTERM. */
ps_err	master_serve(struct master_state *, const char *listen_host,
	    const char *port_file, const char *metrics_allow);

#endif
