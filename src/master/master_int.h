/*
 * Internals shared by the master's files: the state directory, photo
 * changes, and the server.
 */
#ifndef PS_MASTER_INT_H
#define PS_MASTER_INT_H

#include <stddef.h>

#include "common/err.h"
#include "store/store.h"

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
};

/* Opens an initialised state directory. */
ps_err	master_state_open(const char *dir, struct master_state *);
void	master_state_close(struct master_state *);
/* A path inside the state directory; the caller frees it. */
char	*master_path(const struct master_state *, const char *name);

/*
 * Renders an uploaded image into the stored high-resolution sizes and
 * replaces the mailbox's photo atomically with a new ETag (written to
 * etag, 64 bytes). On any failure the stored photo is unchanged.
 */
ps_err	master_photo_set(struct store *, const char *email,
	    const void *data, size_t len, char *etag);

/* Runs the server until SIGINT/SIGTERM. */
ps_err	master_serve(struct master_state *, const char *listen_host,
	    const char *port_file);

#endif
