/*
 * Helpers shared by the admin commands of both roles: host and URL
 * parsing, key and certificate files in a state directory, loading a
 * peer's S2S metadata document from an HTTPS URL or a file, and moving a
 * store to PostgreSQL.
 */
#ifndef PS_SETUP_H
#define PS_SETUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "pki/pki.h"
#include "s2s/s2s.h"

struct store;

/*
 * Splits "host[:port]" or "[v6]:port" (port defaults to `default_port`),
 * refusing empty hosts and hosts with '/', ' ', '@', '?' or '#'. The host
 * comes back in lower case; the caller frees it.
 */
ps_err	setup_host_port(const char *s, int default_port, char **host,
	    int *port);
/*
 * A port number given alone (serve --listen-port): 1 to 65535, digits
 * only; PS_EINVAL with a sentence naming `what` otherwise.
 */
ps_err	setup_port(const char *s, const char *what, int *port);
/*
 * Splits "https://host[:port]" (nothing after the authority but "/"; port
 * 0 for "any port"), parsed by url_parse() (common/url.h). The host comes
 * back in lower case, an IPv6 address without brackets; the caller frees
 * it.
 */
ps_err	setup_https_url(const char *url, char **host, int *port);
/*
 * The host and port of any http(s) URL (a path may follow), parsed by
 * url_parse(); the port defaults to 443 or 80. The caller frees *host.
 */
ps_err	setup_https_url_host(const char *url, char **host, int *port);
bool	setup_is_ip(const char *host);
/*
 * The origin "https://host[:port]" (the port left out when 443, an IPv6
 * address in brackets). The caller frees it.
 */
char	*setup_https_origin(const char *host, int port);

/*
 * Makes `dir` a state directory, before `init` writes anything in it:
 * created with mode 0700, or, when it exists, set to 0700 whatever its
 * mode was (PS_EIO when it cannot be: another user's directory), and
 * the process's umask 077 from then on, so that every file made in it,
 * SQLite's database and journals too, is its owner's alone (0600).
 */
ps_err	setup_state_dir(const char *dir);

/*
 * `store migrate --to URI` of either role: copies the store `st` of the
 * state directory `dir` (its SQLite file `db_file`) into the PostgreSQL
 * database at `uri` with store_move(), printing each table's progress
 * and the outcome on standard output. The SQLite file is left as it was.
 */
ps_err	setup_store_migrate(struct store *st, const char *dir,
	    const char *db_file, const char *uri, const char *password_file);

/*
 * Writes a new RSA key and a certificate for `spec` into dir/keyname and
 * dir/certname, both 0600. With `ca_key` the certificate is signed by
 * that CA (whose certificate is ca_der), otherwise it is self-signed.
 */
ps_err	setup_key_and_cert(const char *dir, const char *keyname,
	    const char *certname, const struct pki_cert_spec *spec,
	    const struct pki_key *ca_key, const unsigned char *ca_der,
	    size_t ca_len);
/* A TLS server certificate spec for `host` (DNS or IP subjectAltName). */
void	setup_tls_spec(struct pki_cert_spec *spec, const char *host,
	    const char **name_slot);
/* Copies `from` to dir/name with `mode`. */
ps_err	setup_copy_file(const char *from, const char *dir, const char *name,
	    mode_t mode);

/*
 * Loads a metadata document from `url` (an https URL that url_parse()
 * takes, fetched verified against `ca_file` or the system's CAs) or from
 * `file`, into `doc`, and parses it into `md`.
 */
ps_err	setup_metadata_load(const char *url, const char *file,
	    const char *ca_file, struct buf *doc, struct s2s_metadata *md);

#endif
