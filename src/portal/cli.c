/*
 * The portal's admin commands: init, webapp, user, issuer, serve. Each
 * prints what it did, a clear error otherwise, and changes nothing stored
 * when it fails. A running portal picks changes up within a second.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "auth/auth.h"
#include "auth/negotiate.h"
#include "auth/sso.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "diagnose.h"
#include "directory.h"
#include "directory/schedule.h"
#include "http/server.h"
#include "portal.h"
#include "portal_int.h"
#include "refresh.h"
#include "s2s/s2s.h"
#include "setup/diag.h"
#include "setup/help.h"
#include "setup/setup.h"

/* What `webapp add` and `webapp set` may set. */
static const char settings_text[] =
"web application SETTINGS (durations carry their unit: 90m, 6h, 2d):\n"
"  --photo-import on|off            fetch photos from the mail server\n"
"  --photo-expiration DURATION      how long a fetched photo is fresh\n"
"  --photo-error-expiration DURATION  how long to wait after a failure\n"
"  --owner-wait MS                  how long an owner's request waits for\n"
"                                   the sync, 0-10000 ms (default 2000)\n"
"  --autodiscover-domain HOST[:PORT]  default: autodiscover.<mail domain>\n"
"  --sync-trigger large|any         which thumbnail size triggers a sync\n"
"  --thumbnail-sizes S,M,L          pixels, default 48,72,300\n"
"  --ca-file F                      CA certificates for the mail server\n"
"                                   (\"\" for the system's)\n"
"  --allow-oauth-over-http on|off   default off\n"
"  --background-refresh DURATION|off  refresh every user's photo this often\n"
"                                   without their visiting (default off)\n"
"  --notifications on|off           accept the master's change notices\n"
"                                   (default on)\n"
"  --avatar-access signed-in|anyone who may fetch /avatar/ (default\n"
"                                   signed-in)\n"
"  --avatar-default-allow URLS      https:// prefixes allowed as d= URLs\n"
"  --sso-header NAME|off            sign in whoever a single sign-on proxy\n"
"                                   names in this header (default off)\n"
"  --sso-proxy ADDRESSES|none       the proxies the header is taken from:\n"
"                                   IPv4/IPv6 addresses and CIDR networks,\n"
"                                   comma-separated (default none)\n"
"  --keytab FILE|off                Kerberos sign-in (SPNEGO, HTTP\n"
"                                   Negotiate) with this keytab (default off)\n"
"  --kerberos-service HTTP/HOST[@REALM]|default  the service principal\n"
"                                   taken (default: any the keytab holds)\n"
"  --kerberos-realms \"REALM=DOMAIN, ...\"  the NetBIOS domain of each\n"
"                                   realm: user@REALM signs in as\n"
"                                   DOMAIN\\user (default: the realm's\n"
"                                   first label; with a map, only its\n"
"                                   realms)\n";

static const struct help_entry commands[] = {
	{ "init", NULL, "--dir D --url https://HOST[:PORT] [--tls-cert F "
	  "--tls-key F]\n"
	  "       [--store postgresql://[USER@]HOST[:PORT]/DB "
	  "[--store-password-file F]]",
	  "      create a state directory and its first web application;\n"
	  "      --store: the store in that PostgreSQL database (which must "
	  "exist)\n"
	  "      instead of SQLite in D; its password from the file, never in "
	  "the\n"
	  "      address\n",
	  NULL },
	{ "webapp", "add", "--dir D --url U [--tls-cert F --tls-key F] "
	  "[SETTINGS]", NULL, settings_text },
	{ "webapp", "show", "--dir D [--url U]", NULL, NULL },
	{ "webapp", "set", "--dir D [--url U] SETTINGS", NULL,
	  settings_text },
	{ "webapp", "list", "--dir D", NULL, NULL },
	{ "user", "add", "--dir D ACCOUNT --email ADDRESS [--name N] "
	  "[--password-file F]", NULL, NULL },
	{ "user", "remove", "--dir D ACCOUNT", NULL, NULL },
	{ "user", "list", "--dir D", NULL, NULL },
	{ "user", "passwd", "--dir D ACCOUNT --password-file F", NULL, NULL },
	{ "user", "show", "--dir D ACCOUNT [--url U]    sync state and photo "
	  "source", NULL, NULL },
	{ "user", "sync", "--dir D --ldap URL --base DN [--filter F]\n"
	  "       [--bind-dn DN --password-file F] [--starttls] "
	  "[--ca-file F]\n"
	  "       [--attributes ad|openldap] [--domain D] [--dry-run]",
	  "      add, update, rename, disable and restore the users the "
	  "directory\n"
	  "      has (keyed by objectGUID or entryUUID, so a renamed account "
	  "keeps\n"
	  "      its photo); accounts are DOMAIN\\login, DOMAIN from --domain "
	  "or\n"
	  "      the base's first dc=; --attributes: ad (default: "
	  "sAMAccountName,\n"
	  "      mail, displayName) or openldap (uid, mail, cn); users added "
	  "by\n"
	  "      hand are left alone; --dry-run: say what would change\n",
	  NULL },
	{ "directory", "set", "--dir D [--ldap URL --base DN [--filter F]\n"
	  "       [--bind-dn DN --password-file F] [--starttls] "
	  "[--ca-file F]\n"
	  "       [--attributes ad|openldap]] [--domain D] "
	  "[--every DURATION|off]\n"
	  "       [--passwords on|off]",
	  "      keep the directory's settings (as user sync takes them; "
	  "the bind\n"
	  "      password is kept in the store): --every: serve runs the "
	  "user sync\n"
	  "      this often, one node of a shared store at a time (at least "
	  "1m;\n"
	  "      default off); --passwords on: the password sign-ins of "
	  "users from\n"
	  "      the directory are checked by a bind as them (default off)\n",
	  NULL },
	{ "directory", "show", "--dir D", NULL, NULL },
	{ "refresh", NULL, "--dir D (--user ACCOUNT... | --all) [--force]\n"
	  "       [--concurrency N] [--url U]",
	  "      fetch photos for users who never visited (windows respected\n"
	  "      unless --force; 429/503 Retry-After honoured; Ctrl-C is "
	  "safe);\n"
	  "      --concurrency: calls to the master at once (default 4)\n",
	  NULL },
	{ "issuer", "add", "--dir D --name N (--metadata-url URL "
	  "[--ca-file F] |\n"
	  "       --metadata-file F)", NULL, NULL },
	{ "issuer", "refresh", "--dir D --name N [--ca-file F]", NULL, NULL },
	{ "issuer", "remove", "--dir D --name N", NULL, NULL },
	{ "issuer", "list", "--dir D", NULL, NULL },
	{ "store", "migrate", "--dir D --to postgresql://[USER@]HOST[:PORT]/DB "
	  "\n       [--store-password-file F]",
	  "      copy the store into that PostgreSQL database (empty, or "
	  "just made),\n"
	  "      check the copy, and use it from now on; the SQLite file is "
	  "left\n"
	  "      as it was (stop the server first)\n", NULL },
	{ "diagnose", NULL, "--dir D [--url U] ACCOUNT|EMAIL",
	  "      run each step of that user's sync and say which fails and "
	  "why\n"
	  "      (changes nothing; exit status 1 when a step fails)\n", NULL },
	{ "serve", NULL, "--dir D [--listen ADDRESS] [--port-file F]\n"
	  "       [--listen-port N]            every web application on port "
	  "N; the\n"
	  "                                    URLs given out keep their "
	  "ports (a\n"
	  "                                    node behind a load balancer)\n"
	  "       [--metrics-allow ADDRESSES]  who may read /metrics (default\n"
	  "                                    loopback: 127.0.0.0/8,::1/128)\n"
	  "       [--max-connections N]        connections open at once "
	  "(default\n"
	  "                                    from the descriptor limit)\n"
	  "       [--body-memory SIZE]         request bodies held at once\n"
	  "                                    (default 128M)", NULL, NULL },
};

static const struct help help = {
	"portal",
	"The portal's part of the photo sync: user profiles, the User "
	"Photos\n"
	"cache (S/M/L thumbnails), on-demand sync from the mail server.\n"
	"photosync portal COMMAND [VERB] --help prints one command's help.\n",
	commands, sizeof(commands) / sizeof(commands[0]),
	settings_text,
	"ACCOUNT is DOMAIN\\user (e.g. 'contoso\\test1'). Passwords are read "
	"from\n"
	"a file (\"-\" for standard input), never from the command line.\n"
	"See docs/portal.md.\n",
};

struct opts {
	const char	*dir, *url, *tls_cert, *tls_key, *name, *email;
	const char	*password_file, *metadata_url, *metadata_file;
	const char	*ca_file, *listen, *port_file, *metrics_allow;
	const char	*max_connections, *body_memory, *listen_port;
	const char	*photo_import, *photo_expiration, *error_expiration;
	const char	*autodiscover_domain, *sync_trigger, *sizes;
	const char	*allow_http, *background, *notifications, *avatar_access;
	const char	*avatar_defaults, *owner_wait, *sso_header, *sso_proxy;
	const char	*keytab, *kerberos_service, *kerberos_realms;
	const char	*store, *store_password_file, *to;
	const char	*ldap, *base, *filter, *bind_dn, *attributes, *domain;
	const char	*every, *passwords;
	bool		 ca_file_set, all, force, help, starttls, dry_run;
	int		 concurrency;
	const char	*users[64];
	size_t		 n_users;
	const char	*args[4];
	int		 nargs;
};

static int
fail(const char *what)
{
	fprintf(stderr, "photosync portal: %s%s%s\n", what ? what : "",
	    what ? ": " : "", ps_errmsg());
	return 1;
}

static int
usage_error(const char *msg)
{
	fprintf(stderr, "photosync portal: %s\n(see photosync portal "
	    "--help)\n", msg);
	return 2;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_DIR = 256, O_URL, O_CERT, O_KEY, O_NAME, O_EMAIL, O_PW,
	    O_MDURL, O_MDFILE, O_CA, O_LISTEN, O_PORTFILE, O_IMPORT, O_EXP,
	    O_ERREXP, O_AD, O_TRIGGER, O_SIZES, O_HTTP, O_USER, O_ALL, O_FORCE,
	    O_CONC, O_METRICS, O_MAXCONN, O_BODYMEM, O_BG, O_NOTIF, O_AVACC,
	    O_AVDEF, O_OWNERWAIT, O_STORE, O_STOREPW, O_TO, O_LISTENPORT,
	    O_SSOHEADER, O_SSOPROXY, O_KEYTAB, O_KRBSERVICE, O_KRBREALMS,
	    O_LDAP, O_BASE, O_FILTER, O_BINDDN, O_STARTTLS, O_ATTRS, O_DOMAIN,
	    O_DRYRUN, O_EVERY, O_PASSWORDS };
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, O_DIR },
		{ "url", required_argument, NULL, O_URL },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "name", required_argument, NULL, O_NAME },
		{ "email", required_argument, NULL, O_EMAIL },
		{ "password-file", required_argument, NULL, O_PW },
		{ "metadata-url", required_argument, NULL, O_MDURL },
		{ "metadata-file", required_argument, NULL, O_MDFILE },
		{ "ca-file", required_argument, NULL, O_CA },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		{ "listen-port", required_argument, NULL, O_LISTENPORT },
		{ "photo-import", required_argument, NULL, O_IMPORT },
		{ "photo-expiration", required_argument, NULL, O_EXP },
		{ "photo-error-expiration", required_argument, NULL, O_ERREXP },
		{ "autodiscover-domain", required_argument, NULL, O_AD },
		{ "sync-trigger", required_argument, NULL, O_TRIGGER },
		{ "thumbnail-sizes", required_argument, NULL, O_SIZES },
		{ "allow-oauth-over-http", required_argument, NULL, O_HTTP },
		{ "user", required_argument, NULL, O_USER },
		{ "all", no_argument, NULL, O_ALL },
		{ "force", no_argument, NULL, O_FORCE },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "metrics-allow", required_argument, NULL, O_METRICS },
		{ "max-connections", required_argument, NULL, O_MAXCONN },
		{ "body-memory", required_argument, NULL, O_BODYMEM },
		{ "background-refresh", required_argument, NULL, O_BG },
		{ "notifications", required_argument, NULL, O_NOTIF },
		{ "avatar-access", required_argument, NULL, O_AVACC },
		{ "avatar-default-allow", required_argument, NULL, O_AVDEF },
		{ "owner-wait", required_argument, NULL, O_OWNERWAIT },
		{ "sso-header", required_argument, NULL, O_SSOHEADER },
		{ "sso-proxy", required_argument, NULL, O_SSOPROXY },
		{ "keytab", required_argument, NULL, O_KEYTAB },
		{ "kerberos-service", required_argument, NULL, O_KRBSERVICE },
		{ "kerberos-realms", required_argument, NULL, O_KRBREALMS },
		{ "store", required_argument, NULL, O_STORE },
		{ "store-password-file", required_argument, NULL, O_STOREPW },
		{ "to", required_argument, NULL, O_TO },
		{ "ldap", required_argument, NULL, O_LDAP },
		{ "base", required_argument, NULL, O_BASE },
		{ "filter", required_argument, NULL, O_FILTER },
		{ "bind-dn", required_argument, NULL, O_BINDDN },
		{ "starttls", no_argument, NULL, O_STARTTLS },
		{ "attributes", required_argument, NULL, O_ATTRS },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "dry-run", no_argument, NULL, O_DRYRUN },
		{ "every", required_argument, NULL, O_EVERY },
		{ "passwords", required_argument, NULL, O_PASSWORDS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_DIR: o->dir = optarg; break;
		case O_URL: o->url = optarg; break;
		case O_CERT: o->tls_cert = optarg; break;
		case O_KEY: o->tls_key = optarg; break;
		case O_NAME: o->name = optarg; break;
		case O_EMAIL: o->email = optarg; break;
		case O_PW: o->password_file = optarg; break;
		case O_MDURL: o->metadata_url = optarg; break;
		case O_MDFILE: o->metadata_file = optarg; break;
		case O_CA: o->ca_file = optarg; o->ca_file_set = true; break;
		case O_LISTEN: o->listen = optarg; break;
		case O_PORTFILE: o->port_file = optarg; break;
		case O_LISTENPORT: o->listen_port = optarg; break;
		case O_IMPORT: o->photo_import = optarg; break;
		case O_EXP: o->photo_expiration = optarg; break;
		case O_ERREXP: o->error_expiration = optarg; break;
		case O_AD: o->autodiscover_domain = optarg; break;
		case O_TRIGGER: o->sync_trigger = optarg; break;
		case O_SIZES: o->sizes = optarg; break;
		case O_HTTP: o->allow_http = optarg; break;
		case O_USER:
			if (o->n_users == 64)
				return -1;
			o->users[o->n_users++] = optarg;
			break;
		case O_ALL: o->all = true; break;
		case O_METRICS: o->metrics_allow = optarg; break;
		case O_MAXCONN: o->max_connections = optarg; break;
		case O_BODYMEM: o->body_memory = optarg; break;
		case O_BG: o->background = optarg; break;
		case O_NOTIF: o->notifications = optarg; break;
		case O_AVACC: o->avatar_access = optarg; break;
		case O_AVDEF: o->avatar_defaults = optarg; break;
		case O_OWNERWAIT: o->owner_wait = optarg; break;
		case O_SSOHEADER: o->sso_header = optarg; break;
		case O_SSOPROXY: o->sso_proxy = optarg; break;
		case O_KEYTAB: o->keytab = optarg; break;
		case O_KRBSERVICE: o->kerberos_service = optarg; break;
		case O_KRBREALMS: o->kerberos_realms = optarg; break;
		case O_STORE: o->store = optarg; break;
		case O_STOREPW: o->store_password_file = optarg; break;
		case O_TO: o->to = optarg; break;
		case O_LDAP: o->ldap = optarg; break;
		case O_BASE: o->base = optarg; break;
		case O_FILTER: o->filter = optarg; break;
		case O_BINDDN: o->bind_dn = optarg; break;
		case O_STARTTLS: o->starttls = true; break;
		case O_ATTRS: o->attributes = optarg; break;
		case O_DOMAIN: o->domain = optarg; break;
		case O_DRYRUN: o->dry_run = true; break;
		case O_EVERY: o->every = optarg; break;
		case O_PASSWORDS: o->passwords = optarg; break;
		case O_FORCE: o->force = true; break;
		case O_CONC:
			o->concurrency = atoi(optarg);
			if (o->concurrency < 1 || o->concurrency > 64)
				return -1;
			break;
		case 'h': o->help = true; break;
		default: return -1;
		}
	}
	for (; optind < argc; optind++) {
		if (o->nargs == 4)
			return -1;
		o->args[o->nargs++] = argv[optind];
	}
	return 0;
}

/* ---- web application settings ---- */

static ps_err
parse_onoff(const char *name, const char *v, bool *out)
{
	if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
		*out = true;
	else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
		*out = false;
	else
		return ps_errf(PS_EINVAL, "%s must be on or off, not \"%s\"",
		    name, v);
	return PS_OK;
}

static ps_err
parse_sizes(const char *v, struct store_webapp *w)
{
	int s, m, l;
	char tail;

	if (sscanf(v, "%d,%d,%d%c", &s, &m, &l, &tail) != 3 || s < 16 ||
	    s > 1024 || m < 16 || m > 1024 || l < 16 || l > 1024)
		return ps_errf(PS_EINVAL, "--thumbnail-sizes must be three "
		    "pixel sizes S,M,L between 16 and 1024, e.g. 48,72,300");
	if (!(s <= m && m <= l))
		return ps_errf(PS_EINVAL, "--thumbnail-sizes must grow: S <= M "
		    "<= L");
	w->size_s = s;
	w->size_m = m;
	w->size_l = l;
	return PS_OK;
}

/*
 * Each allowed default-image URL prefix must be an https:// URL as the
 * avatars read one (common/url.h, no dot segments): a prefix they could
 * never match is refused here.
 */
static ps_err
check_default_allow(const char *list)
{
	char *copy = xstrdup(list), *tok, *save = NULL;
	struct url u;
	ps_err rc = PS_OK;

	for (tok = strtok_r(copy, ", ", &save); tok && rc == PS_OK;
	    tok = strtok_r(NULL, ", ", &save))
		if (url_parse(tok, 0, &u) != PS_OK ||
		    url_path_has_dot_segment(u.rest))
			rc = ps_errf(PS_EINVAL, "--avatar-default-allow: \"%s\" "
			    "is not an https:// URL prefix", tok);
	free(copy);
	return rc;
}

/* Applies the SETTINGS options to `w`; nothing is stored here. */
/*
 * Kerberos sign-in: the keytab (an absolute path, as `serve` runs
 * elsewhere), the service and the realm map, checked together: the
 * keytab must be readable and hold a key for the service.
 */
static ps_err
apply_kerberos(const struct opts *o, struct store_webapp *w, int *changed)
{
	struct auth_negotiate *an = NULL;
	char *abs = NULL;
	ps_err rc = PS_OK;

	if (o->keytab && strcmp(o->keytab, "off") == 0) {
		w->keytab[0] = '\0';
		(*changed)++;
	} else if (o->keytab) {
		if ((abs = realpath(o->keytab, NULL)) == NULL)
			return ps_errf(PS_ENOTFOUND, "--keytab: cannot read "
			    "%s", o->keytab);
		if (!str_copy(w->keytab, abs, sizeof(w->keytab))) {
			rc = ps_errf(PS_EINVAL, "--keytab: the path is too "
			    "long");
			goto out;
		}
		(*changed)++;
	}
	if (o->kerberos_service) {
		const char *svc = strcmp(o->kerberos_service, "default") ?
		    o->kerberos_service : "";

		if (svc[0] && strchr(svc, '/') == NULL) {
			rc = ps_errf(PS_EINVAL, "--kerberos-service: %s is not "
			    "SERVICE/HOST[@REALM]", svc);
			goto out;
		}
		if (!str_copy(w->kerberos_service, svc,
		    sizeof(w->kerberos_service))) {
			rc = ps_errf(PS_EINVAL, "--kerberos-service is too "
			    "long");
			goto out;
		}
		(*changed)++;
	}
	if (o->kerberos_realms) {
		if ((rc = auth_negotiate_realms_check(o->kerberos_realms)) !=
		    PS_OK) {
			rc = ps_errf(rc, "--kerberos-realms: %s", ps_errmsg());
			goto out;
		}
		if (!str_copy(w->kerberos_realms, o->kerberos_realms,
		    sizeof(w->kerberos_realms))) {
			rc = ps_errf(PS_EINVAL, "--kerberos-realms is too "
			    "long");
			goto out;
		}
		(*changed)++;
	}
	if ((o->keytab || o->kerberos_service) && w->keytab[0]) {
		if ((rc = auth_negotiate_new(w->keytab, w->kerberos_service,
		    &an)) != PS_OK)
			rc = ps_errf(rc, "--keytab: %s", ps_errmsg());
		auth_negotiate_free(an);
	}
out:
	free(abs);
	return rc;
}

static ps_err
apply_settings(const struct opts *o, struct store_webapp *w, int *changed)
{
	ps_err rc;
	char *h = NULL;
	int p;

	*changed = 0;
	if (o->photo_import) {
		if ((rc = parse_onoff("--photo-import", o->photo_import,
		    &w->photo_import)) != PS_OK)
			return rc;
		(*changed)++;
	}
	if (o->photo_expiration) {
		if ((rc = duration_parse(o->photo_expiration,
		    &w->photo_expiration)) != PS_OK)
			return ps_errf(rc, "--photo-expiration: %s",
			    ps_errmsg());
		(*changed)++;
	}
	if (o->error_expiration) {
		if ((rc = duration_parse(o->error_expiration,
		    &w->photo_error_expiration)) != PS_OK)
			return ps_errf(rc, "--photo-error-expiration: %s",
			    ps_errmsg());
		(*changed)++;
	}
	if (o->autodiscover_domain) {
		if (o->autodiscover_domain[0] != '\0') {
			if ((rc = setup_host_port(o->autodiscover_domain, 443,
			    &h, &p)) != PS_OK)
				return ps_errf(rc, "--autodiscover-domain: %s",
				    ps_errmsg());
			free(h);
		}
		str_copy(w->autodiscover_domain, o->autodiscover_domain,
		    sizeof(w->autodiscover_domain));
		str_lower(w->autodiscover_domain);
		(*changed)++;
	}
	if (o->sync_trigger) {
		if (strcmp(o->sync_trigger, "large") == 0)
			w->sync_any = false;
		else if (strcmp(o->sync_trigger, "any") == 0)
			w->sync_any = true;
		else
			return ps_errf(PS_EINVAL, "--sync-trigger must be large "
			    "or any");
		(*changed)++;
	}
	if (o->sizes) {
		if ((rc = parse_sizes(o->sizes, w)) != PS_OK)
			return rc;
		(*changed)++;
	}
	if (o->ca_file_set) {
		char *abs = NULL;

		if (o->ca_file[0] && (abs = realpath(o->ca_file, NULL)) ==
		    NULL)
			return ps_errf(PS_EINVAL, "--ca-file %s does not exist",
			    o->ca_file);
		str_copy(w->ca_file, abs ? abs : "", sizeof(w->ca_file));
		free(abs);
		(*changed)++;
	}
	if (o->allow_http) {
		if ((rc = parse_onoff("--allow-oauth-over-http", o->allow_http,
		    &w->allow_oauth_http)) != PS_OK)
			return rc;
		(*changed)++;
	}
	if (o->background) {
		if (strcmp(o->background, "off") == 0)
			w->background_refresh = 0;
		else if ((rc = duration_parse(o->background,
		    &w->background_refresh)) != PS_OK)
			return ps_errf(rc, "--background-refresh: %s (or off)",
			    ps_errmsg());
		else if (w->background_refresh < 3600)
			return ps_errf(PS_EINVAL, "--background-refresh must be "
			    "at least 1h (or off), so that the master is never "
			    "stampeded");
		(*changed)++;
	}
	if (o->notifications) {
		if ((rc = parse_onoff("--notifications", o->notifications,
		    &w->notifications)) != PS_OK)
			return rc;
		(*changed)++;
	}
	if (o->avatar_access) {
		if (strcmp(o->avatar_access, "signed-in") == 0)
			w->avatar_anyone = false;
		else if (strcmp(o->avatar_access, "anyone") == 0)
			w->avatar_anyone = true;
		else
			return ps_errf(PS_EINVAL, "--avatar-access must be "
			    "signed-in or anyone");
		(*changed)++;
	}
	if (o->owner_wait) {
		char *end;
		long ms;

		errno = 0;
		ms = strtol(o->owner_wait, &end, 10);
		if (errno != 0 || end == o->owner_wait || *end != '\0' ||
		    !isdigit((unsigned char)o->owner_wait[0]) || ms < 0 ||
		    ms > PORTAL_MAX_OWNER_WAIT_MS)
			return ps_errf(PS_EINVAL, "--owner-wait takes "
			    "milliseconds from 0 to %d, not \"%s\"",
			    PORTAL_MAX_OWNER_WAIT_MS, o->owner_wait);
		w->owner_wait_ms = (int)ms;
		(*changed)++;
	}
	if (o->avatar_defaults) {
		if ((rc = check_default_allow(o->avatar_defaults)) != PS_OK)
			return rc;
		if (!str_copy(w->avatar_defaults, o->avatar_defaults,
		    sizeof(w->avatar_defaults)))
			return ps_errf(PS_EINVAL, "--avatar-default-allow is "
			    "too long");
		(*changed)++;
	}
	if (o->sso_header) {
		const char *name = strcmp(o->sso_header, "off") ?
		    o->sso_header : "";

		if (name[0] && (rc = auth_sso_header_check(name)) != PS_OK)
			return ps_errf(rc, "--sso-header: %s", ps_errmsg());
		str_copy(w->sso_header, name, sizeof(w->sso_header));
		(*changed)++;
	}
	if (o->sso_proxy) {
		const char *list = strcmp(o->sso_proxy, "none") ?
		    o->sso_proxy : "";

		if (list[0] && (rc = auth_sso_proxies_check(list)) != PS_OK)
			return ps_errf(rc, "--sso-proxy: %s", ps_errmsg());
		str_copy(w->sso_proxies, list, sizeof(w->sso_proxies));
		(*changed)++;
	}
	return apply_kerberos(o, w, changed);
}

static void
print_webapp(const struct store_webapp *w)
{
	char a[32], b[32], c[32];

	printf("web application %s\n"
	    "  photo-import            %s\n"
	    "  photo-expiration        %s\n"
	    "  photo-error-expiration  %s\n"
	    "  owner-wait              %d ms\n"
	    "  autodiscover-domain     %s\n"
	    "  sync-trigger            %s\n"
	    "  thumbnail-sizes         %d,%d,%d (S,M,L pixels)\n"
	    "  ca-file                 %s\n"
	    "  allow-oauth-over-http   %s\n"
	    "  background-refresh      %s\n"
	    "  notifications           %s\n"
	    "  avatar-access           %s\n"
	    "  avatar-default-allow    %s\n"
	    "  sso-header              %s\n"
	    "  sso-proxy               %s\n"
	    "  keytab                  %s\n"
	    "  kerberos-service        %s\n"
	    "  kerberos-realms         %s\n"
	    "  realm                   %s\n",
	    w->url, w->photo_import ? "on" : "off",
	    duration_format(w->photo_expiration, a),
	    duration_format(w->photo_error_expiration, b),
	    w->owner_wait_ms,
	    w->autodiscover_domain[0] ? w->autodiscover_domain :
	    "(autodiscover.<mail domain>)", w->sync_any ? "any" : "large",
	    w->size_s, w->size_m, w->size_l,
	    w->ca_file[0] ? w->ca_file : "(system CAs)",
	    w->allow_oauth_http ? "on" : "off", w->background_refresh ?
	    duration_format(w->background_refresh, c) : "off",
	    w->notifications ? "on" : "off", w->avatar_anyone ? "anyone" :
	    "signed-in", w->avatar_defaults[0] ? w->avatar_defaults :
	    "(none: 404, mp and identicon only)", w->sso_header[0] ?
	    w->sso_header : "off", w->sso_proxies[0] ? w->sso_proxies :
	    "none", w->keytab[0] ? w->keytab : "off", w->kerberos_service[0] ?
	    w->kerberos_service : "default (any in the keytab)",
	    w->kerberos_realms[0] ? w->kerberos_realms :
	    "(none: each realm's first label)", w->realm);
}

/* Creates a web application: keys, certificates, the row. */
static int
webapp_create(const char *dir, struct store *st, const struct opts *o)
{
	struct store_webapp w = {
		.photo_import = false,
		.photo_expiration = PORTAL_DEFAULT_EXPIRATION,
		.photo_error_expiration = PORTAL_DEFAULT_ERROR_EXPIRATION,
		.size_s = PORTAL_DEFAULT_S,
		.size_m = PORTAL_DEFAULT_M,
		.size_l = PORTAL_DEFAULT_L,
		.notifications = true,
		.owner_wait_ms = PORTAL_DEFAULT_OWNER_WAIT_MS,
	};
	struct pki_cert_spec spec = { 0 };
	const char *names[1];
	char *host = NULL, *f1 = NULL, *f2 = NULL, *origin;
	int port, changed, ret = 1;
	bool began = false;

	if (o->url == NULL)
		return usage_error("--url https://HOST[:PORT] is required");
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return usage_error("--tls-cert and --tls-key go together");
	if (setup_https_url(o->url, &host, &port) != PS_OK)
		return fail("--url");
	if (apply_settings(o, &w, &changed) != PS_OK)
		goto err;
	str_copy(w.host, host, sizeof(w.host));
	w.port = port;
	origin = setup_https_origin(host, port);
	str_copy(w.url, origin, sizeof(w.url));
	free(origin);
	guid_new(w.realm);
	if (store_begin(st) != PS_OK)
		goto err;
	began = true;
	if (store_webapp_add(st, &w) != PS_OK)
		goto err;
	spec.common_name = "photosync portal S2S signing";
	spec.days = 3650;
	f1 = portal_webapp_file(w.id, "s2s-key");
	f2 = portal_webapp_file(w.id, "s2s-cert");
	if (setup_key_and_cert(dir, f1, f2, &spec, NULL, NULL, 0) != PS_OK)
		goto err;
	free(f1);
	free(f2);
	f1 = portal_webapp_file(w.id, "tls-key");
	f2 = portal_webapp_file(w.id, "tls-cert");
	if (o->tls_cert) {
		if (setup_copy_file(o->tls_cert, dir, f2, 0600) != PS_OK ||
		    setup_copy_file(o->tls_key, dir, f1, 0600) != PS_OK)
			goto err;
	} else {
		setup_tls_spec(&spec, host, names);
		if (setup_key_and_cert(dir, f1, f2, &spec, NULL, NULL, 0) !=
		    PS_OK)
			goto err;
	}
	if (store_end(st, true) != PS_OK) {
		began = false;
		goto err;
	}
	began = false;
	print_webapp(&w);
	ret = 0;
	goto out;
err:
	ret = fail(NULL);
out:
	if (began)
		store_end(st, false);
	free(f1);
	free(f2);
	free(host);
	return ret;
}

static int
cmd_init(struct opts *o)
{
	struct store *st = NULL;
	char *db, *addr, *pw = NULL;
	struct stat sb;
	int ret = 1;

	if (o->dir == NULL || o->url == NULL)
		return usage_error("init needs --dir and --url");
	if (o->store_password_file && o->store == NULL)
		return usage_error("--store-password-file goes with --store");
	db = file_join(o->dir, PORTAL_DB);
	addr = file_join(o->dir, STORE_ADDRESS_FILE);
	if (stat(db, &sb) == 0 || stat(addr, &sb) == 0) {
		fprintf(stderr, "photosync portal: %s is already initialised "
		    "(use webapp add for another web application)\n", o->dir);
		goto out;
	}
	/*
	 * PostgreSQL first: a store that cannot be reached, is another
	 * role's or is newer than this program leaves nothing behind; the
	 * directory keeps its address once the store is ready.
	 */
	if (o->store) {
		if (store_open_given(o->store, o->store_password_file,
		    STORE_PORTAL, &st, &pw) != PS_OK ||
		    setup_state_dir(o->dir) != PS_OK ||
		    store_remember(o->dir, o->store, pw) != PS_OK) {
			ret = fail("init");
			goto out;
		}
	} else if (setup_state_dir(o->dir) != PS_OK ||
	    store_open(db, STORE_PORTAL, true, &st) != PS_OK) {
		ret = fail("init");
		goto out;
	}
	ret = webapp_create(o->dir, st, o);
	store_close(st);
	st = NULL;
	if (ret != 0 && o->store)
		store_forget(o->dir);
	else if (ret != 0)
		unlink(db);
	else
		printf("initialised portal in %s\n", o->dir);
out:
	store_close(st);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(addr);
	free(db);
	return ret;
}

/* ---- store migrate ---- */

static int
cmd_store(struct portal_state *ps, struct opts *o, const char *verb)
{
	if (strcmp(verb, "migrate") != 0)
		return usage_error("store: the only command is migrate");
	if (o->to == NULL)
		return usage_error("store migrate needs --to postgresql://...");
	if (setup_store_migrate(ps->store, ps->dir, PORTAL_DB, o->to,
	    o->store_password_file) != PS_OK)
		return fail("store migrate");
	return 0;
}

struct pick {
	struct store_webapp	w;
	int			n;
};

static ps_err
count_webapp(void *arg, const struct store_webapp *w)
{
	struct pick *p = arg;

	if (p->n++ == 0)
		p->w = *w;
	return PS_OK;
}

/* The web application named by --url, or the only one. */
static ps_err
pick_webapp(struct store *st, const char *url, struct store_webapp *w)
{
	struct pick p = { .n = 0 };
	char *host = NULL, *canon;
	int port;
	ps_err rc;

	if (url) {
		if ((rc = setup_https_url(url, &host, &port)) != PS_OK)
			return rc;
		canon = setup_https_origin(host, port);
		free(host);
		rc = store_webapp_get(st, canon, w);
		free(canon);
		return rc;
	}
	if ((rc = store_webapp_each(st, count_webapp, &p)) != PS_OK)
		return rc;
	if (p.n != 1)
		return ps_errf(PS_EINVAL, "there are %d web applications; say "
		    "which with --url", p.n);
	*w = p.w;
	return PS_OK;
}

static ps_err
list_webapp(void *arg, const struct store_webapp *w)
{
	(void)arg;
	printf("%-40s import %-3s  realm %s\n", w->url, w->photo_import ?
	    "on" : "off", w->realm);
	return PS_OK;
}

static int
cmd_webapp(struct portal_state *ps, struct opts *o, const char *verb)
{
	struct store_webapp w;
	int changed;

	if (strcmp(verb, "add") == 0)
		return webapp_create(ps->dir, ps->store, o);
	if (strcmp(verb, "list") == 0)
		return store_webapp_each(ps->store, list_webapp, NULL) ==
		    PS_OK ? 0 : fail(NULL);
	if (strcmp(verb, "show") != 0 && strcmp(verb, "set") != 0)
		return usage_error("webapp commands: add, show, set, list");
	if (pick_webapp(ps->store, o->url, &w) != PS_OK)
		return fail(NULL);
	if (strcmp(verb, "set") == 0) {
		if (apply_settings(o, &w, &changed) != PS_OK)
			return fail(NULL);
		if (changed == 0)
			return usage_error("webapp set needs at least one "
			    "setting");
		if (store_webapp_update(ps->store, &w) != PS_OK)
			return fail(NULL);
	}
	print_webapp(&w);
	return 0;
}

/* ---- users ---- */

static ps_err
print_user(void *arg, const struct store_user *u)
{
	(void)arg;
	printf("%-28s %-32s %s\n", u->account, u->email, u->name[0] ?
	    u->name : "-");
	return PS_OK;
}

static ps_err pick_webapp(struct store *, const char *,
    struct store_webapp *);

static void
print_when(const char *label, int64_t t)
{
	char when[40];

	if (t)
		printf("  %-22s %s\n", label, time_http(t, when));
	else
		printf("  %-22s never\n", label);
}

static int
user_show(struct portal_state *ps, const char *account, const char *url)
{
	struct store_user u = { 0 };
	struct store_webapp w;
	struct store_sync s;
	struct store_thumb t = { 0 };
	int64_t next = 0, now = time_now();
	char when[40];

	if (store_user_get(ps->store, account, &u) != PS_OK ||
	    pick_webapp(ps->store, url, &w) != PS_OK ||
	    store_sync_get(ps->store, w.id, account, &s) != PS_OK) {
		store_user_cleanup(&u);
		return fail(NULL);
	}
	printf("user %s <%s>%s%s\n  web application        %s\n",
	    u.account, u.email, u.name[0] ? " " : "", u.name, w.url);
	if (store_thumb_get(ps->store, w.id, account, STORE_S, &t) == PS_OK)
		printf("  photo                  from the %s, etag %s, stored "
		    "%s\n", strcmp(t.source, "master") == 0 ? "master" :
		    "portal (uploaded)", t.etag, time_http(t.updated, when));
	else
		printf("  photo                  none (placeholder)\n");
	printf("  mailbox                %s\n", s.has_mailbox == 1 ? "yes" :
	    s.has_mailbox == 0 ? "no" : "unknown");
	print_when("last success", s.last_success);
	print_when("last error", s.last_error);
	if (s.last_error)
		printf("  reason                 %s\n", s.reason);
	printf("  master etag            %s\n", s.master_etag[0] ?
	    s.master_etag : "-");
	if (s.last_success)
		next = s.last_success + w.photo_expiration;
	if (s.last_error && s.last_error + w.photo_error_expiration > next)
		next = s.last_error + w.photo_error_expiration;
	if (s.last_error && s.last_error + s.retry_after > next)
		next = s.last_error + s.retry_after;
	if (!w.photo_import)
		printf("  next sync              never (photo import is off)\n");
	else if (next <= now)
		printf("  next sync              at the owner's next request of "
		    "the %s photo\n", w.sync_any ? "S, M or L" : "L");
	else
		printf("  next sync              not before %s\n",
		    time_http(next, when));
	store_thumb_cleanup(&t);
	store_user_cleanup(&u);
	return 0;
}

/* The directory options of `o`, as the sync and `directory set` take. */
static void
dir_options_of(const struct opts *o, struct dir_options *d)
{
	memset(d, 0, sizeof(*d));
	d->ldap = o->ldap;
	d->base = o->base;
	d->filter = o->filter;
	d->bind_dn = o->bind_dn;
	d->password_file = o->password_file;
	d->ca_file = o->ca_file;
	d->attributes = o->attributes;
	d->starttls = o->starttls;
}

static int
user_sync(struct portal_state *ps, const struct opts *o)
{
	struct portal_directory pd;
	struct dir_sync_ops ops;
	struct dir_options d;

	dir_options_of(o, &d);
	if (portal_directory_init(&pd, o->domain, o->base) != PS_OK)
		return fail("user sync");
	portal_directory_ops(&pd, &ops);
	if (dir_sync_command(&d, ps->store, &ops, o->dry_run, "users") !=
	    PS_OK)
		return fail("user sync");
	return 0;
}

static int
cmd_directory(struct portal_state *ps, const struct opts *o,
    const char *verb)
{
	struct dir_settings_change ch = { 0 };
	struct dir_settings set = { 0 };
	struct portal_directory pd;
	struct dir_options d;

	if (strcmp(verb, "show") == 0) {
		if (dir_settings_load(ps->store, &set) != PS_OK)
			return fail("directory show");
		dir_settings_print(stdout, &set);
		dir_settings_cleanup(&set);
		return 0;
	}
	if (strcmp(verb, "set") != 0)
		return usage_error("directory commands: set, show");
	dir_options_of(o, &d);
	ch.dir = &d;
	ch.every = o->every;
	ch.passwords = o->passwords;
	ch.domain = o->domain;
	if ((o->ldap || o->domain) && portal_directory_init(&pd, o->domain,
	    o->base) != PS_OK)
		return fail("directory set");
	if (dir_settings_change(ps->store, &ch, &set) != PS_OK)
		return fail("directory set");
	dir_settings_print(stdout, &set);
	dir_settings_cleanup(&set);
	return 0;
}

static int
cmd_user(struct portal_state *ps, struct opts *o, const char *verb)
{
	const char *arg = o->nargs > 2 ? o->args[2] : NULL;
	struct store_user u = { 0 }, other = { 0 };
	char account[ACCOUNT_MAX], prefix[ACCOUNT_MAX];
	char *hash = NULL;
	bool is_email;
	int ret = 1;

	if (strcmp(verb, "list") == 0)
		return store_user_each(ps->store, print_user, NULL) == PS_OK ?
		    0 : fail(NULL);
	if (strcmp(verb, "sync") == 0)
		return arg ? usage_error("user sync takes no ACCOUNT") :
		    user_sync(ps, o);
	if (arg == NULL)
		return usage_error("user needs an ACCOUNT (DOMAIN\\user)");
	if (account_parse(arg, account, &is_email) != PS_OK)
		return fail(NULL);
	if (is_email)
		return usage_error("ACCOUNT must be DOMAIN\\user; the address "
		    "goes in --email");
	if (o->password_file &&
	    auth_password_file_hash(o->password_file, &hash) != PS_OK)
		goto err;
	if (strcmp(verb, "add") == 0) {
		if (o->email == NULL || !email_valid(o->email)) {
			ret = usage_error("user add needs --email ADDRESS, a "
			    "valid e-mail address");
			goto out;
		}
		str_copy(u.account, account, sizeof(u.account));
		str_copy(u.email, o->email, sizeof(u.email));
		str_copy(u.name, o->name ? o->name : "", sizeof(u.name));
		account_email_hashes(u.email, u.email_md5, u.email_sha256);
		u.pwhash = hash;
		/* Library file names must stay one user's: contoso\a_b and
		 * contoso_a\b would both be contoso_a_b_LThumb.jpg. */
		account_file_prefix(account, prefix);
		if (store_user_get_by_prefix(ps->store, prefix, &other) ==
		    PS_OK && strcasecmp(other.account, account) != 0) {
			fprintf(stderr, "photosync portal: %s would share its "
			    "photo file names (%s_LThumb.jpg) with %s; choose "
			    "another account name\n", account, prefix,
			    other.account);
			store_user_cleanup(&other);
			goto out;
		}
		store_user_cleanup(&other);
		if (store_user_add(ps->store, &u) != PS_OK)
			goto err;
		printf("added user %s <%s>%s\n", account, o->email, hash ? "" :
		    " (no password: cannot sign in)");
	} else if (strcmp(verb, "remove") == 0) {
		if (store_user_remove(ps->store, account) != PS_OK)
			goto err;
		printf("removed user %s and their cached photos\n", account);
	} else if (strcmp(verb, "show") == 0) {
		ret = user_show(ps, account, o->url);
		goto out;
	} else if (strcmp(verb, "passwd") == 0) {
		if (hash == NULL) {
			ret = usage_error("user passwd needs --password-file");
			goto out;
		}
		if (store_user_set_password(ps->store, account, hash) != PS_OK)
			goto err;
		printf("changed the password of %s\n", account);
	} else {
		ret = usage_error("user commands: add, remove, list, show, "
		    "passwd, sync");
		goto out;
	}
	ret = 0;
	goto out;
err:
	ret = fail(NULL);
out:
	if (hash)
		xfree_secret(hash, strlen(hash));
	return ret;
}

/* ---- issuers ---- */

static ps_err
print_issuer(void *arg, const struct store_issuer *i)
{
	char when[40];

	(void)arg;
	printf("%-16s %-60s fetched %s\n  from %s\n", i->name, i->issuer,
	    time_http(i->fetched, when), i->metadata_url ? i->metadata_url :
	    "(file)");
	return PS_OK;
}

static int
issuer_store(struct portal_state *ps, const char *name, const char *url,
    const char *file, const char *ca_file, bool refresh)
{
	struct s2s_metadata md = { 0 };
	struct store_issuer is = { 0 };
	struct buf doc;
	int ret = 1;

	buf_init(&doc, S2S_MAX_METADATA);
	if (setup_metadata_load(url, file, ca_file, &doc, &md) != PS_OK)
		goto err;
	str_copy(is.name, name, sizeof(is.name));
	str_copy(is.issuer, md.issuer, sizeof(is.issuer));
	str_copy(is.realm, md.realm, sizeof(is.realm));
	is.metadata_url = (char *)url;
	is.metadata = (char *)buf_str(&doc);
	is.fetched = time_now();
	if (store_issuer_put(ps->store, &is) != PS_OK)
		goto err;
	printf("%s issuer %s\n  issuer  %s\n  realm   %s\n", refresh ?
	    "refreshed" : "trusted", name, md.issuer, md.realm);
	ret = 0;
	goto out;
err:
	ret = fail("issuer");
out:
	s2s_metadata_cleanup(&md);
	buf_cleanup(&doc);
	return ret;
}

static int
cmd_issuer(struct portal_state *ps, struct opts *o, const char *verb)
{
	const char *name = o->name ? o->name : o->nargs > 2 ? o->args[2] :
	    NULL;
	struct store_issuer is = { 0 };
	int ret;

	if (strcmp(verb, "list") == 0)
		return store_issuer_each(ps->store, print_issuer, NULL) ==
		    PS_OK ? 0 : fail(NULL);
	if (name == NULL)
		return usage_error("issuer needs --name N");
	if (strcmp(verb, "add") == 0) {
		if (!o->metadata_url == !o->metadata_file)
			return usage_error("issuer add needs --metadata-url "
			    "or --metadata-file");
		return issuer_store(ps, name, o->metadata_url,
		    o->metadata_file, o->ca_file, false);
	}
	if (strcmp(verb, "remove") == 0) {
		if (store_issuer_remove(ps->store, name) != PS_OK)
			return fail(NULL);
		printf("removed issuer %s\n", name);
		return 0;
	}
	if (strcmp(verb, "refresh") == 0) {
		if (store_issuer_get(ps->store, name, &is) != PS_OK)
			return fail(NULL);
		if (is.metadata_url == NULL) {
			store_issuer_cleanup(&is);
			fprintf(stderr, "photosync portal: issuer %s was added "
			    "from a file; add it again with --metadata-file\n",
			    name);
			return 1;
		}
		ret = issuer_store(ps, name, is.metadata_url, NULL,
		    o->ca_file, true);
		store_issuer_cleanup(&is);
		return ret;
	}
	return usage_error("issuer commands: add, refresh, remove, list");
}

int
portal_main(int argc, char **argv)
{
	struct portal_state ps;
	struct opts o;
	const char *cmd, *verb;
	char store_what[600];
	int ret;

	if (argc < 2) {
		help_role(stderr, &help);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0) {
		help_role(stdout, &help);
		return 0;
	}
	if (parse_opts(argc, argv, &o) != 0)
		return usage_error("invalid arguments");
	/* COMMAND [VERB] --help: that command's; --help alone: all. */
	if (o.help) {
		if (o.args[0] == NULL || !help_command(stdout, &help,
		    o.args[0], o.args[1]))
			help_role(stdout, &help);
		return 0;
	}
	cmd = o.args[0];
	if (cmd == NULL)
		return usage_error("missing command");
	/* Admin commands speak on stdout/stderr; refresh sums failures up. */
	if (strcmp(cmd, "serve") != 0 && !log_enabled(LOG_DEBUG))
		log_init("portal", strcmp(cmd, "refresh") == 0 ? LOG_ERR :
		    LOG_WARN);
	if (strcmp(cmd, "init") == 0)
		return cmd_init(&o);
	if (o.dir == NULL)
		return usage_error("--dir D is required");
	verb = o.nargs > 1 ? o.args[1] : "";
	if (strcmp(cmd, "webapp") && strcmp(cmd, "user") &&
	    strcmp(cmd, "issuer") && strcmp(cmd, "serve") &&
	    strcmp(cmd, "refresh") && strcmp(cmd, "diagnose") &&
	    strcmp(cmd, "store") && strcmp(cmd, "directory"))
		return usage_error("unknown command");
	if (strcmp(cmd, "diagnose") == 0 && o.nargs != 2)
		return usage_error("diagnose needs one ACCOUNT or EMAIL");
	/* diagnose: the store first, a step of its own. */
	if (strcmp(cmd, "diagnose") == 0) {
		char *db = store_locate(o.dir, PORTAL_DB);
		bool opens = diag_store(db, STORE_PORTAL, o.dir, store_what,
		    sizeof(store_what));

		free(db);
		if (!opens)
			return 1;
	}
	if (portal_state_open(o.dir, &ps) != PS_OK)
		return fail(NULL);
	if (strcmp(cmd, "serve") == 0) {
		int lport = 0;

		if (http_set_limits_from_options(o.max_connections,
		    o.body_memory) != PS_OK || (o.listen_port &&
		    setup_port(o.listen_port, "--listen-port", &lport) !=
		    PS_OK))
			ret = fail("serve");
		else
			ret = portal_serve(&ps, o.listen, lport, o.port_file,
			    o.metrics_allow) == PS_OK ? 0 : fail("serve");
	} else if (strcmp(cmd, "refresh") == 0) {
		int k;

		/* Accounts may also follow the command: refresh --user A B. */
		for (k = 1; k < o.nargs && o.n_users < 64; k++)
			o.users[o.n_users++] = o.args[k];
		struct store_webapp w;

		if (!o.all == !o.n_users)
			ret = usage_error("refresh needs --user ACCOUNT... or "
			    "--all");
		else if (o.url && pick_webapp(ps.store, o.url, &w) != PS_OK)
			ret = fail(NULL);
		else
			ret = portal_refresh_run(&ps, o.url ? w.url : NULL,
			    o.users, o.n_users, o.all, o.force,
			    o.concurrency);
	} else if (strcmp(cmd, "diagnose") == 0) {
		struct store_webapp w;

		if (o.url && pick_webapp(ps.store, o.url, &w) != PS_OK)
			ret = fail(NULL);
		else
			ret = portal_diagnose_run(&ps, store_what,
			    o.url ? w.url : NULL, o.args[1]);
	} else if (strcmp(cmd, "store") == 0)
		ret = cmd_store(&ps, &o, verb);
	else if (strcmp(cmd, "webapp") == 0)
		ret = cmd_webapp(&ps, &o, verb);
	else if (strcmp(cmd, "user") == 0)
		ret = cmd_user(&ps, &o, verb);
	else if (strcmp(cmd, "directory") == 0)
		ret = cmd_directory(&ps, &o, verb);
	else
		ret = cmd_issuer(&ps, &o, verb);
	portal_state_close(&ps);
	return ret;
}
