/*
 * Admin helpers shared by the master's and the portal's commands.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "setup.h"
#include "store/store.h"
#include "xfer/xfer.h"

ps_err
setup_host_port(const char *s, int default_port, char **host, int *port)
{
	const char *colon;
	char *end;
	long p = default_port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return ps_errf(PS_EINVAL, "invalid host \"%s\"", s);
		*host = xstrndup(s + 1, (size_t)(close - s - 1));
		if (close[1] != '\0' && close[1] != ':') {
			free(*host);
			return ps_errf(PS_EINVAL, "invalid host \"%s\"", s);
		}
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		*host = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
	}
	if (colon) {
		p = strtol(colon + 1, &end, 10);
		if (*end || colon[1] == '\0' || p < 0 || p > 65535) {
			free(*host);
			return ps_errf(PS_EINVAL, "invalid port in \"%s\"", s);
		}
	}
	if ((*host)[0] == '\0' || strpbrk(*host, "/ @?#\\")) {
		free(*host);
		return ps_errf(PS_EINVAL, "invalid host \"%s\"", s);
	}
	str_lower(*host);
	*port = (int)p;
	return PS_OK;
}

ps_err
setup_port(const char *s, const char *what, int *port)
{
	char *end;
	long p = 0;

	/* strtol alone would take leading blanks and signs. */
	if (*s >= '0' && *s <= '9')
		p = strtol(s, &end, 10);
	if (p < 1 || p > 65535 || *end != '\0')
		return ps_errf(PS_EINVAL, "%s: \"%s\" is not a port: a number "
		    "from 1 to 65535", what, s);
	*port = (int)p;
	return PS_OK;
}

ps_err
setup_https_url(const char *url, char **host, int *port)
{
	struct url u;
	ps_err rc;

	if ((rc = url_parse(url, URL_NO_PATH | URL_ANY_PORT, &u)) != PS_OK)
		return rc;
	*host = xstrdup(u.host);
	*port = u.port;
	return PS_OK;
}

ps_err
setup_https_url_host(const char *url, char **host, int *port)
{
	struct url u;
	ps_err rc;

	if ((rc = url_parse(url, URL_HTTP, &u)) != PS_OK)
		return rc;
	*host = xstrdup(u.host);
	*port = u.port;
	return PS_OK;
}

char *
setup_https_origin(const char *host, int port)
{
	if (port == 443)
		return strchr(host, ':') ? xasprintf("https://[%s]", host) :
		    xasprintf("https://%s", host);
	if (strchr(host, ':'))
		return xasprintf("https://[%s]:%d", host, port);
	return xasprintf("https://%s:%d", host, port);
}

bool
setup_is_ip(const char *h)
{
	return strspn(h, "0123456789.") == strlen(h) || strchr(h, ':');
}

ps_err
setup_state_dir(const char *dir)
{
	struct stat sb;

	/* Before anything is made: SQLite's files take the umask's mode. */
	umask(077);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ps_errf(PS_EIO, "cannot create directory %s: %s", dir,
		    strerror(errno));
	if (stat(dir, &sb) != 0)
		return ps_errf(PS_EIO, "cannot read %s: %s", dir,
		    strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return ps_errf(PS_EINVAL, "%s is not a directory", dir);
	/* Made before by someone else, or with a wider mode: ours alone. */
	if ((sb.st_mode & 07777) != 0700 && chmod(dir, 0700) != 0)
		return ps_errf(PS_EIO, "cannot make %s private (mode 0700): "
		    "%s", dir, strerror(errno));
	return PS_OK;
}

ps_err
setup_key_and_cert(const char *dir, const char *keyname,
    const char *certname, const struct pki_cert_spec *spec,
    const struct pki_key *ca_key, const unsigned char *ca_der,
    size_t ca_len)
{
	struct pki_key *key = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	char *kp = file_join(dir, keyname), *cp = file_join(dir, certname);
	ps_err rc;

	if ((rc = pki_key_generate(&key)) != PS_OK ||
	    (rc = pki_cert_create(key, spec, ca_key, ca_der, ca_len, &der,
	    &len)) != PS_OK ||
	    (rc = pki_key_save(key, kp)) != PS_OK)
		goto out;
	rc = pki_cert_save(der, len, cp);
out:
	pki_key_free(key);
	free(der);
	free(kp);
	free(cp);
	return rc;
}

void
setup_tls_spec(struct pki_cert_spec *spec, const char *host,
    const char **name_slot)
{
	memset(spec, 0, sizeof(*spec));
	*name_slot = host;
	spec->common_name = host;
	if (setup_is_ip(host)) {
		spec->ips = name_slot;
		spec->n_ips = 1;
	} else {
		spec->dns_names = name_slot;
		spec->n_dns = 1;
	}
	spec->days = 825;
}

ps_err
setup_copy_file(const char *from, const char *dir, const char *name,
    mode_t mode)
{
	char *data = NULL, *to = file_join(dir, name);
	size_t len = 0;
	ps_err rc;

	if ((rc = file_read(from, 1024 * 1024, &data, &len)) == PS_OK)
		rc = file_write_atomic(to, data, len, mode);
	if (data)
		xfree_secret(data, len);
	free(to);
	return rc;
}

ps_err
setup_metadata_load(const char *url, const char *file, const char *ca_file,
    struct buf *doc, struct s2s_metadata *md)
{
	struct xfer_opts xo = { .ca_file = ca_file,
	    .max_bytes = S2S_MAX_METADATA };
	char *data = NULL;
	size_t len = 0;
	long status = 0;
	struct url u;
	ps_err rc;

	if (url) {
		if ((rc = url_parse(url, 0, &u)) != PS_OK ||
		    (rc = xfer_get(url, &xo, &status, doc)) != PS_OK)
			return rc;
		if (status != 200)
			return ps_errf(PS_EUPSTREAM, "%s answered HTTP %ld",
			    url, status);
	} else {
		if ((rc = file_read(file, S2S_MAX_METADATA, &data, &len)) !=
		    PS_OK)
			return rc;
		rc = buf_add(doc, data, len);
		free(data);
		if (rc != PS_OK)
			return rc;
	}
	if ((rc = s2s_metadata_parse(doc->b_data, doc->b_len, md)) != PS_OK)
		return ps_errf(rc, "the metadata document is not usable: %s",
		    ps_errmsg());
	return PS_OK;
}

static void
migrate_progress(void *arg, const char *table, int64_t done, int64_t total)
{
	(void)arg;
	printf("  %-16s %lld/%lld rows\n", table, (long long)done,
	    (long long)total);
	fflush(stdout);
}

ps_err
setup_store_migrate(struct store *st, const char *dir, const char *db_file,
    const char *uri, const char *password_file)
{
	ps_err rc;

	printf("copying the store of %s into %s\n", dir, uri);
	fflush(stdout);
	if ((rc = store_move(st, dir, uri, password_file, migrate_progress,
	    NULL)) != PS_OK)
		return rc;
	printf("checked: every table holds the same rows\n"
	    "%s now uses %s; %s is left as it was\n", dir, uri, db_file);
	return PS_OK;
}
