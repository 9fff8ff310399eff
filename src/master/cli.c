/*
 * The master's admin commands: init, mailbox, photo, partner, serve.
 * Each prints what it did on standard output, a clear error on standard
 * error, and exits non-zero on failure with nothing stored changed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/negotiate.h"
#include "auth/sso.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "diagnose.h"
#include "directory.h"
#include "dirphoto.h"
#include "directory/schedule.h"
#include "import.h"
#include "exchange/ews.h"
#include "http/server.h"
#include "image/image.h"
#include "master.h"
#include "master_int.h"
#include "pki/pki.h"
#include "s2s/s2s.h"
#include "setup/diag.h"
#include "setup/help.h"
#include "setup/setup.h"

static const struct help_entry commands[] = {
	{ "init", NULL, "--dir D --host HOST[:PORT] --domain DOMAIN\n"
	  "       [--tls-cert F --tls-key F]\n"
	  "       [--store postgresql://[USER@]HOST[:PORT]/DB "
	  "[--store-password-file F]]",
	  "      create a state directory: store, realm, S2S signing key and\n"
	  "      certificate, TLS certificate for HOST (self-signed unless "
	  "given);\n"
	  "      --store: the store in that PostgreSQL database (which must "
	  "exist)\n"
	  "      instead of SQLite in D; its password from the file, never in "
	  "the\n"
	  "      address\n", NULL },
	{ "serve", NULL, "--dir D [--listen ADDRESS] [--port-file F]\n"
	  "       [--listen-port N]            listen on port N; the URLs "
	  "given out\n"
	  "                                    keep the configured port (a "
	  "node\n"
	  "                                    behind a load balancer)\n"
	  "       [--metrics-allow ADDRESSES]  who may read /metrics (default\n"
	  "                                    loopback: 127.0.0.0/8,::1/128)\n"
	  "       [--max-connections N]        connections open at once "
	  "(default\n"
	  "                                    from the descriptor limit)\n"
	  "       [--body-memory SIZE]         request bodies held at once\n"
	  "                                    (default 128M)",
	  "      answer HTTPS on HOST:PORT (PORT 0: any free port)\n", NULL },
	{ "mailbox", "add", "--dir D ADDRESS [--name N] [--password-file F]",
	  NULL, NULL },
	{ "mailbox", "remove", "--dir D ADDRESS", NULL, NULL },
	{ "mailbox", "list", "--dir D", NULL, NULL },
	{ "mailbox", "passwd", "--dir D ADDRESS --password-file F", NULL,
	  NULL },
	{ "mailbox", "sync", "--dir D --ldap URL --base DN [--filter F]\n"
	  "       [--bind-dn DN --password-file F] [--starttls] "
	  "[--ca-file F]\n"
	  "       [--attributes ad|openldap] [--dry-run]",
	  "      add, update, re-address, disable and restore the mailboxes "
	  "of the\n"
	  "      directory's people (keyed by objectGUID or entryUUID, so a "
	  "changed\n"
	  "      address keeps its photo): the address from mail, the name "
	  "from\n"
	  "      displayName (ad, the default) or cn (openldap); mailboxes "
	  "added by\n"
	  "      hand are left alone; --dry-run: say what would change\n",
	  NULL },
	{ "photo", "set", "--dir D ADDRESS --file F     (JPEG, PNG, WebP, "
	  "HEIF, GIF)", NULL, NULL },
	{ "photo", "import", "--dir D (FOLDER | --csv FILE | "
	  "--from-directory)\n"
	  "       [--dry-run] [--threads N]",
	  "      set many mailboxes' photos at once, as photo set does each: "
	  "from the\n"
	  "      files of FOLDER named ADDRESS.jpg (.jpeg, .png, .webp, .heic, "
	  ".heif,\n"
	  "      .gif); from a CSV of ADDRESS,FILE rows (a header row allowed, "
	  "fields\n"
	  "      in double quotes allowed, FILE relative to the CSV's folder); "
	  "or from\n"
	  "      the directory of `directory set` (each entry's jpegPhoto, "
	  "else its\n"
	  "      thumbnailPhoto). Rendered on N threads (default: one per "
	  "core),\n"
	  "      stored in batches; skipped: no such mailbox, a disabled one, "
	  "or the\n"
	  "      photo it has already; refused (that mailbox unchanged): not "
	  "an image,\n"
	  "      over a limit, a second photo for one mailbox. --dry-run: "
	  "check and\n"
	  "      render everything, store nothing. Progress on standard "
	  "error, each\n"
	  "      refusal and a summary on standard output. Exit 0: every "
	  "photo stored\n"
	  "      or skipped; 3: some refused; 1: the source or the store "
	  "failed (what\n"
	  "      was stored stays); 2: wrong arguments\n", NULL },
	{ "photo", "remove", "--dir D ADDRESS", NULL, NULL },
	{ "photo", "show", "--dir D ADDRESS [--size HRnxn --output F]", NULL,
	  NULL },
	{ "partner", "add", "--dir D [--name N] (--metadata-url URL "
	  "[--ca-file F] |\n"
	  "       --metadata-file F) [--notify on|off]",
	  "      --notify: send it change notifications (default on; needs "
	  "the URL)\n", NULL },
	{ "partner", "refresh", "--dir D NAME [--ca-file F] "
	  "[--notify on|off]", NULL, NULL },
	{ "partner", "remove", "--dir D NAME", NULL, NULL },
	{ "partner", "list", "--dir D", NULL, NULL },
	{ "sso", "set", "--dir D [--sso-header NAME|off] "
	  "[--sso-proxy ADDRESSES|none]",
	  "      sign in whoever a single sign-on proxy names in header NAME\n"
	  "      (default off), taken only from the proxies' ADDRESSES: "
	  "IPv4/IPv6\n"
	  "      addresses and CIDR networks, comma-separated (default none);"
	  "\n"
	  "      a running serve takes them at its next start\n", NULL },
	{ "sso", "show", "--dir D", NULL, NULL },
	{ "kerberos", "set", "--dir D [--keytab FILE|off] "
	  "[--service HTTP/HOST[@REALM]|default]\n"
	  "       [--realms \"REALM=MAILDOMAIN, ...\"]",
	  "      Kerberos sign-in (SPNEGO, HTTP Negotiate) on the change-photo "
	  "page,\n"
	  "      EWS and Autodiscover with the keytab's key for the service "
	  "(default:\n"
	  "      any it holds); user@REALM is the mailbox user@MAILDOMAIN "
	  "(without\n"
	  "      a map: the principal itself); a running serve takes them at "
	  "its\n"
	  "      next start\n", NULL },
	{ "kerberos", "show", "--dir D", NULL, NULL },
	{ "directory", "set", "--dir D [--ldap URL --base DN [--filter F]\n"
	  "       [--bind-dn DN --password-file F] [--starttls] "
	  "[--ca-file F]\n"
	  "       [--attributes ad|openldap]] [--every DURATION|off] "
	  "[--passwords on|off]\n"
	  "       [--photos on|off] [--photo-attributes "
	  "thumbnailPhoto,jpegPhoto]\n"
	  "       [--jpeg-photo-size SIDE] [--photo-bind-dn DN|reading "
	  "--photo-password-file F]",
	  "      keep the directory's settings (as mailbox sync takes them; "
	  "the bind\n"
	  "      password is kept in the store): --every: serve runs the "
	  "mailbox\n"
	  "      sync this often, one node of a shared store at a time (at "
	  "least 1m;\n"
	  "      default off); --passwords on: the password sign-ins of "
	  "mailboxes\n"
	  "      from the directory are checked by a bind as them (default "
	  "off);\n"
	  "      --photos on: serve writes every photo change of a mailbox "
	  "from the\n"
	  "      directory to its entry (thumbnailPhoto 96x96 at most 10 KB, "
	  "jpegPhoto\n"
	  "      of SIDE, default 648), bound as --photo-bind-dn (default: "
	  "the\n"
	  "      reading bind)\n", NULL },
	{ "directory", "show", "--dir D", NULL, NULL },
	{ "directory", "publish", "--dir D",
	  "      write every directory mailbox's photo (or its absence) to "
	  "its entry\n      now\n", NULL },
	{ "store", "migrate", "--dir D --to postgresql://[USER@]HOST[:PORT]/DB "
	  "\n       [--store-password-file F]",
	  "      copy the store into that PostgreSQL database (empty, or "
	  "just made),\n"
	  "      check the copy, and use it from now on; the SQLite file is "
	  "left\n"
	  "      as it was (stop the server first)\n", NULL },
	{ "diagnose", NULL, "--dir D [--partner NAME] [--ca-file F]",
	  "      check the master's certificates and each partner's metadata "
	  "URL,\n"
	  "      document and certificates (changes nothing; exit 1 on a "
	  "failure)\n", NULL },
};

static const struct help help = {
	"master",
	"The mail server's part of the photo sync: mailboxes with "
	"high-resolution\n"
	"photos, Autodiscover, EWS GetUserPhoto and S2S OAuth for partner "
	"portals.\n"
	"photosync master COMMAND [VERB] --help prints one command's help.\n",
	commands, sizeof(commands) / sizeof(commands[0]),
	NULL,
	"Passwords are read from a file (\"-\" for standard input), never "
	"from\n"
	"the command line. See docs/master.md.\n",
};

struct opts {
	const char	*dir, *host, *domain, *tls_cert, *tls_key, *name;
	const char	*password_file, *file, *size, *output, *metadata_url;
	const char	*metadata_file, *ca_file, *listen, *port_file, *notify;
	const char	*metrics_allow, *partner, *max_connections;
	const char	*listen_port, *sso_header, *sso_proxy;
	const char	*keytab, *service, *realms;
	const char	*body_memory, *store, *store_password_file, *to;
	const char	*ldap, *base, *filter, *bind_dn, *attributes;
	const char	*every, *passwords, *csv, *threads;
	const char	*photos, *photo_bind_dn, *photo_password_file;
	const char	*photo_attributes, *jpeg_photo_size;
	bool		 help, starttls, dry_run, from_directory;
	const char	*args[4];
	int		 nargs;
};

static int
fail(const char *what)
{
	fprintf(stderr, "photosync master: %s%s%s\n", what ? what : "",
	    what ? ": " : "", ps_errmsg());
	return 1;
}

static int
usage_error(const char *msg)
{
	fprintf(stderr, "photosync master: %s\n(see photosync master "
	    "--help)\n", msg);
	return 2;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "host", required_argument, NULL, 'H' },
		{ "domain", required_argument, NULL, 'D' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "name", required_argument, NULL, 'n' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "metadata-url", required_argument, NULL, 'u' },
		{ "metadata-file", required_argument, NULL, 'm' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "listen-port", required_argument, NULL, 'L' },
		{ "partner", required_argument, NULL, 'R' },
		{ "notify", required_argument, NULL, 'N' },
		{ "metrics-allow", required_argument, NULL, 'M' },
		{ "max-connections", required_argument, NULL, 'x' },
		{ "body-memory", required_argument, NULL, 'B' },
		{ "store", required_argument, NULL, 'S' },
		{ "store-password-file", required_argument, NULL, 'W' },
		{ "to", required_argument, NULL, 'T' },
		{ "sso-header", required_argument, NULL, 'O' },
		{ "sso-proxy", required_argument, NULL, 'X' },
		{ "keytab", required_argument, NULL, 'K' },
		{ "service", required_argument, NULL, 'V' },
		{ "realms", required_argument, NULL, 'E' },
		{ "ldap", required_argument, NULL, 256 },
		{ "base", required_argument, NULL, 257 },
		{ "filter", required_argument, NULL, 258 },
		{ "bind-dn", required_argument, NULL, 259 },
		{ "starttls", no_argument, NULL, 260 },
		{ "attributes", required_argument, NULL, 261 },
		{ "dry-run", no_argument, NULL, 262 },
		{ "every", required_argument, NULL, 263 },
		{ "passwords", required_argument, NULL, 264 },
		{ "photos", required_argument, NULL, 265 },
		{ "photo-bind-dn", required_argument, NULL, 266 },
		{ "photo-password-file", required_argument, NULL, 267 },
		{ "photo-attributes", required_argument, NULL, 268 },
		{ "jpeg-photo-size", required_argument, NULL, 269 },
		{ "csv", required_argument, NULL, 270 },
		{ "from-directory", no_argument, NULL, 271 },
		{ "threads", required_argument, NULL, 272 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->dir = optarg; break;
		case 'H': o->host = optarg; break;
		case 'D': o->domain = optarg; break;
		case 'c': o->tls_cert = optarg; break;
		case 'k': o->tls_key = optarg; break;
		case 'n': o->name = optarg; break;
		case 'p': o->password_file = optarg; break;
		case 'f': o->file = optarg; break;
		case 's': o->size = optarg; break;
		case 'o': o->output = optarg; break;
		case 'u': o->metadata_url = optarg; break;
		case 'm': o->metadata_file = optarg; break;
		case 'C': o->ca_file = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'P': o->port_file = optarg; break;
		case 'L': o->listen_port = optarg; break;
		case 'R': o->partner = optarg; break;
		case 'N':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return -1;
			o->notify = optarg;
			break;
		case 'M': o->metrics_allow = optarg; break;
		case 'x': o->max_connections = optarg; break;
		case 'B': o->body_memory = optarg; break;
		case 'S': o->store = optarg; break;
		case 'W': o->store_password_file = optarg; break;
		case 'T': o->to = optarg; break;
		case 'O': o->sso_header = optarg; break;
		case 'X': o->sso_proxy = optarg; break;
		case 'K': o->keytab = optarg; break;
		case 'V': o->service = optarg; break;
		case 'E': o->realms = optarg; break;
		case 256: o->ldap = optarg; break;
		case 257: o->base = optarg; break;
		case 258: o->filter = optarg; break;
		case 259: o->bind_dn = optarg; break;
		case 260: o->starttls = true; break;
		case 261: o->attributes = optarg; break;
		case 262: o->dry_run = true; break;
		case 263: o->every = optarg; break;
		case 264: o->passwords = optarg; break;
		case 265: o->photos = optarg; break;
		case 266: o->photo_bind_dn = optarg; break;
		case 267: o->photo_password_file = optarg; break;
		case 268: o->photo_attributes = optarg; break;
		case 269: o->jpeg_photo_size = optarg; break;
		case 270: o->csv = optarg; break;
		case 271: o->from_directory = true; break;
		case 272: o->threads = optarg; break;
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

/* ---- init ---- */

static int
cmd_init(struct opts *o)
{
	struct store *st = NULL;
	char *host = NULL, *db = NULL, *addr = NULL, *pw = NULL, *probe;
	char realm[37], portbuf[16];
	bool remembered = false;
	const char *names[1];
	struct pki_cert_spec spec = { 0 };
	struct stat sb;
	int port = 0, ret = 1;

	if (!o->dir || !o->host || !o->domain)
		return usage_error("init needs --dir, --host and --domain");
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return usage_error("--tls-cert and --tls-key go together");
	if (o->store_password_file && o->store == NULL)
		return usage_error("--store-password-file goes with --store");
	if (setup_host_port(o->host, 443, &host, &port) != PS_OK)
		return fail(NULL);
	probe = xasprintf("postmaster@%s", o->domain);
	if (!email_valid(probe)) {
		free(probe);
		free(host);
		return usage_error("--domain must be a mail domain such as "
		    "contoso.com");
	}
	free(probe);
	db = file_join(o->dir, MASTER_DB);
	addr = file_join(o->dir, STORE_ADDRESS_FILE);
	if (stat(db, &sb) == 0 || stat(addr, &sb) == 0) {
		fprintf(stderr, "photosync master: %s is already initialised "
		    "(remove it to start over)\n", o->dir);
		goto out;
	}
	/*
	 * PostgreSQL first: a store that cannot be reached, is another
	 * role's or is newer than this program leaves nothing behind.
	 */
	if (o->store && store_open_given(o->store, o->store_password_file,
	    STORE_MASTER, &st, &pw) != PS_OK)
		goto err;
	if (setup_state_dir(o->dir) != PS_OK)
		goto err;
	/* Keys first: a failure here leaves no half-made store behind. */
	spec.common_name = "photosync master S2S signing";
	spec.days = 3650;
	if (setup_key_and_cert(o->dir, MASTER_S2S_KEY, MASTER_S2S_CERT,
	    &spec, NULL, NULL, 0) != PS_OK)
		goto err;
	if (o->tls_cert) {
		if (setup_copy_file(o->tls_cert, o->dir, MASTER_TLS_CERT,
		    0600) != PS_OK || setup_copy_file(o->tls_key, o->dir,
		    MASTER_TLS_KEY, 0600) != PS_OK)
			goto err;
	} else {
		setup_tls_spec(&spec, host, names);
		if (setup_key_and_cert(o->dir, MASTER_TLS_KEY, MASTER_TLS_CERT,
		    &spec, NULL, NULL, 0) != PS_OK)
			goto err;
	}
	guid_new(realm);
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	if (o->store) {
		if (store_remember(o->dir, o->store, pw) != PS_OK)
			goto err;
		remembered = true;
	} else if (store_open(db, STORE_MASTER, true, &st) != PS_OK) {
		goto err;
	}
	if (store_config_set(st, "host", host) != PS_OK ||
	    store_config_set(st, "port", portbuf) != PS_OK ||
	    store_config_set(st, "domain", o->domain) != PS_OK ||
	    store_config_set(st, "realm", realm) != PS_OK)
		goto err;
	printf("initialised master in %s\n  host    %s:%d\n  domain  %s\n"
	    "  realm   %s\n  tls     %s\n  store   %s\n", o->dir, host,
	    port, o->domain, realm, o->tls_cert ? "given certificate" :
	    "self-signed", o->store ? o->store : "SQLite, in the directory");
	ret = 0;
	goto out;
err:
	ret = fail("init");
	if (remembered)
		store_forget(o->dir);
out:
	store_close(st);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(addr);
	free(db);
	free(host);
	return ret;
}

/* ---- store migrate ---- */

static int
cmd_store(struct master_state *ms, struct opts *o, const char *verb)
{
	if (strcmp(verb, "migrate") != 0)
		return usage_error("store: the only command is migrate");
	if (o->to == NULL)
		return usage_error("store migrate needs --to postgresql://...");
	if (setup_store_migrate(ms->store, ms->dir, MASTER_DB, o->to,
	    o->store_password_file) != PS_OK)
		return fail("store migrate");
	return 0;
}

/* ---- mailbox ---- */

static ps_err
print_mailbox(void *arg, const struct store_mailbox *m)
{
	(void)arg;
	printf("%-32s %-24s %s\n", m->email, m->name[0] ? m->name : "-",
	    m->etag[0] ? "photo" : "no photo");
	return PS_OK;
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
mailbox_sync(struct master_state *ms, const struct opts *o)
{
	struct dir_sync_ops ops;
	struct dir_options d;

	dir_options_of(o, &d);
	master_directory_ops(&ops);
	if (dir_sync_command(&d, ms->store, &ops, o->dry_run, "mailboxes") !=
	    PS_OK)
		return fail("mailbox sync");
	return 0;
}

static int
cmd_directory(struct master_state *ms, const struct opts *o,
    const char *verb)
{
	struct dir_settings_change ch = { 0 };
	struct dir_settings set = { 0 };
	struct dirphoto_change pch = { o->photos, o->photo_bind_dn,
	    o->photo_password_file, o->photo_attributes, o->jpeg_photo_size };
	struct dirphoto_settings ps = { 0 };
	struct dir_options d;
	int ret = 1;

	if (strcmp(verb, "show") == 0) {
		if (dir_settings_load(ms->store, &set) != PS_OK ||
		    dirphoto_settings_load(ms->store, &ps) != PS_OK) {
			dir_settings_cleanup(&set);
			return fail("directory show");
		}
		dir_settings_print(stdout, &set);
		dirphoto_settings_print(stdout, &ps);
		dir_settings_cleanup(&set);
		dirphoto_settings_cleanup(&ps);
		return 0;
	}
	if (strcmp(verb, "publish") == 0)
		return dirphoto_publish(ms->store) == PS_OK ? 0 :
		    fail("directory publish");
	if (strcmp(verb, "set") != 0)
		return usage_error("directory commands: set, show, publish");
	dir_options_of(o, &d);
	ch.dir = &d;
	ch.every = o->every;
	ch.passwords = o->passwords;
	/* The photos' settings checked before anything is stored. */
	if (dir_settings_load(ms->store, &set) != PS_OK ||
	    dirphoto_settings_check(ms->store, o->ldap != NULL ||
	    set.ldap != NULL, &pch, &ps) != PS_OK) {
		ret = fail("directory set");
		goto out;
	}
	dir_settings_cleanup(&set);
	if (dir_settings_change(ms->store, &ch, &set) != PS_OK ||
	    (dirphoto_change_given(&pch) && dirphoto_settings_save(ms->store,
	    &ps) != PS_OK)) {
		ret = fail("directory set");
		goto out;
	}
	dir_settings_print(stdout, &set);
	dirphoto_settings_print(stdout, &ps);
	ret = 0;
out:
	dir_settings_cleanup(&set);
	dirphoto_settings_cleanup(&ps);
	return ret;
}

static int
cmd_mailbox(struct master_state *ms, struct opts *o, const char *verb)
{
	const char *email = o->nargs > 2 ? o->args[2] : NULL;
	char *hash = NULL;
	int ret = 1;

	if (strcmp(verb, "list") == 0) {
		if (store_mailbox_each(ms->store, print_mailbox, NULL) != PS_OK)
			return fail("mailbox list");
		return 0;
	}
	if (strcmp(verb, "sync") == 0)
		return email ? usage_error("mailbox sync takes no ADDRESS") :
		    mailbox_sync(ms, o);
	if (email == NULL)
		return usage_error("mailbox needs an ADDRESS");
	if (!email_valid(email)) {
		fprintf(stderr, "photosync master: \"%s\" is not a valid "
		    "e-mail address\n", email);
		return 1;
	}
	if (o->password_file &&
	    auth_password_file_hash(o->password_file, &hash) != PS_OK)
		goto err;
	if (strcmp(verb, "add") == 0) {
		if (store_mailbox_add(ms->store, email, o->name, hash) != PS_OK)
			goto err;
		printf("added mailbox %s%s\n", email, hash ? "" :
		    " (no password: it cannot sign in)");
	} else if (strcmp(verb, "remove") == 0) {
		if (store_mailbox_remove(ms->store, email) != PS_OK)
			goto err;
		printf("removed mailbox %s and its photo\n", email);
	} else if (strcmp(verb, "passwd") == 0) {
		if (hash == NULL) {
			ret = usage_error("passwd needs --password-file");
			goto out;
		}
		if (store_mailbox_set_password(ms->store, email, hash) != PS_OK)
			goto err;
		printf("changed the password of %s\n", email);
	} else {
		ret = usage_error("mailbox commands: add, remove, list, "
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

/* ---- photo ---- */

static int
photo_import(struct master_state *ms, const struct opts *o)
{
	struct import_opts io = { 0 };
	char *end;
	long n;

	io.folder = o->nargs > 2 ? o->args[2] : NULL;
	io.csv = o->csv;
	io.from_directory = o->from_directory;
	io.dry_run = o->dry_run;
	if (o->nargs > 3 || (io.folder != NULL) + (io.csv != NULL) +
	    io.from_directory != 1)
		return usage_error("photo import takes one source: a FOLDER, "
		    "--csv FILE or --from-directory");
	if (o->threads) {
		n = strtol(o->threads, &end, 10);
		if (*o->threads == '\0' || *end != '\0' || n < 1 || n > 64)
			return usage_error("--threads must be from 1 to 64");
		io.threads = (int)n;
	}
	return master_photo_import(ms, &io);
}

static int
cmd_photo(struct master_state *ms, struct opts *o, const char *verb)
{
	const char *email = o->nargs > 2 ? o->args[2] : NULL;
	struct store_mailbox m = { 0 };
	struct store_photo p = { 0 };
	char etag[64], when[40];
	char *data = NULL;
	size_t len = 0;
	int ret = 1, code;

	if (strcmp(verb, "import") == 0)
		return photo_import(ms, o);
	if (email == NULL)
		return usage_error("photo needs an ADDRESS");
	if (strcmp(verb, "set") == 0) {
		if (o->file == NULL)
			return usage_error("photo set needs --file F");
		if (store_mailbox_get(ms->store, email, &m) != PS_OK ||
		    file_read(o->file, IMAGE_MAX_BYTES, &data, &len) != PS_OK ||
		    master_photo_set(ms->store, email, data, len, etag) !=
		    PS_OK)
			goto err;
		printf("stored the photo of %s (etag %s)\n", email, etag);
	} else if (strcmp(verb, "remove") == 0) {
		if (store_photo_remove(ms->store, email) != PS_OK)
			goto err;
		printf("removed the photo of %s\n", email);
	} else if (strcmp(verb, "show") == 0) {
		if (store_mailbox_get(ms->store, email, &m) != PS_OK)
			goto err;
		if (m.etag[0] == '\0') {
			printf("%s has no photo\n", email);
			ret = 0;
			goto out;
		}
		printf("address  %s\netag     %s\nupdated  %s\nlargest  "
		    "%dx%d\n", m.email, m.etag, time_http(m.photo_updated,
		    when), m.photo_side, m.photo_side);
		if (o->output) {
			code = ews_size_index(o->size ? o->size : "HR648x648");
			if (code < 0) {
				ret = usage_error("--size must be a code from "
				    "HR48x48 to HR648x648");
				goto out;
			}
			if (store_photo_get(ms->store, email, code, &p) !=
			    PS_OK || file_write_atomic(o->output, p.data,
			    p.len, 0644) != PS_OK)
				goto err;
			printf("wrote %s (%dx%d, %zu bytes) to %s\n",
			    ews_size_name(code), p.side, p.side, p.len,
			    o->output);
		}
	} else {
		return usage_error("photo commands: set, import, remove, "
		    "show");
	}
	ret = 0;
	goto out;
err:
	ret = fail(NULL);
out:
	free(data);
	store_photo_cleanup(&p);
	store_mailbox_cleanup(&m);
	return ret;
}

/* ---- partner ---- */

static ps_err
print_partner(void *arg, const struct store_partner *p)
{
	char when[40];

	(void)arg;
	printf("%-20s %-60s fetched %s\n  from %s\n", p->name, p->issuer,
	    time_http(p->fetched, when),
	    p->metadata_url ? p->metadata_url : "(file)");
	return PS_OK;
}

/*
 * Registers (or refreshes) a partner. `notify` -1 keeps what it had (on
 * for a new one); the CA file is kept to verify its TLS certificate when
 * notifications are sent.
 */
static int
partner_store(struct master_state *ms, const char *name, const char *url,
    const char *file, const char *ca_file, int64_t added, int notify)
{
	struct s2s_metadata md = { 0 };
	struct store_partner p = { 0 };
	struct buf doc;
	int ret = 1;

	buf_init(&doc, S2S_MAX_METADATA);
	if (setup_metadata_load(url, file, ca_file, &doc, &md) != PS_OK)
		goto err;
	str_copy(p.name, name ? name : md.issuer, sizeof(p.name));
	str_copy(p.issuer, md.issuer, sizeof(p.issuer));
	p.metadata_url = (char *)url;
	p.metadata = (char *)buf_str(&doc);
	p.fetched = time_now();
	p.added = added;
	p.notify = notify != 0;
	if (ca_file) {
		char *abs = realpath(ca_file, NULL);

		str_copy(p.ca_file, abs ? abs : ca_file, sizeof(p.ca_file));
		free(abs);
	}
	if (store_partner_put(ms->store, &p) != PS_OK)
		goto err;
	printf("%s partner %s\n  issuer  %s\n  certificates %zu\n"
	    "  notifications %s\n", added ? "refreshed" : "registered",
	    p.name, md.issuer, md.n_certs, !p.notify ? "off" : url ? "on" :
	    "off (registered from a file: no address to send them to)");
	ret = 0;
	goto out;
err:
	ret = fail("partner");
out:
	s2s_metadata_cleanup(&md);
	buf_cleanup(&doc);
	return ret;
}

static int
cmd_partner(struct master_state *ms, struct opts *o, const char *verb)
{
	const char *name = o->nargs > 2 ? o->args[2] : o->name;
	struct store_partner p = { 0 };
	int ret;

	if (strcmp(verb, "list") == 0) {
		if (store_partner_each(ms->store, print_partner, NULL) != PS_OK)
			return fail("partner list");
		return 0;
	}
	if (strcmp(verb, "add") == 0) {
		if (!o->metadata_url == !o->metadata_file)
			return usage_error("partner add needs --metadata-url "
			    "or --metadata-file");
		return partner_store(ms, o->name, o->metadata_url,
		    o->metadata_file, o->ca_file, 0, o->notify ?
		    strcmp(o->notify, "off") != 0 : 1);
	}
	if (name == NULL)
		return usage_error("which partner? (give its NAME)");
	if (strcmp(verb, "remove") == 0) {
		if (store_partner_remove(ms->store, name) != PS_OK)
			return fail("partner remove");
		printf("removed partner %s; its tokens are refused from now "
		    "on\n", name);
		return 0;
	}
	if (strcmp(verb, "refresh") == 0) {
		if (store_partner_get(ms->store, name, &p) != PS_OK)
			return fail("partner refresh");
		if (p.metadata_url == NULL) {
			store_partner_cleanup(&p);
			fprintf(stderr, "photosync master: partner %s was "
			    "registered from a file; add it again with "
			    "--metadata-file\n", name);
			return 1;
		}
		ret = partner_store(ms, p.name, p.metadata_url, NULL,
		    o->ca_file ? o->ca_file : p.ca_file[0] ? p.ca_file : NULL,
		    p.added ? p.added : 1, o->notify ? strcmp(o->notify,
		    "off") != 0 : p.notify);
		store_partner_cleanup(&p);
		return ret;
	}
	return usage_error("partner commands: add, refresh, remove, list");
}

/* ---- single sign-on (auth/sso.h) ---- */

static int
cmd_sso(struct master_state *ms, struct opts *o, const char *verb)
{
	const char *header, *proxies;

	if (strcmp(verb, "show") == 0) {
		printf("sso-header  %s\nsso-proxy   %s\n", ms->sso_header[0] ?
		    ms->sso_header : "off", ms->sso_proxies[0] ?
		    ms->sso_proxies : "none");
		return 0;
	}
	if (strcmp(verb, "set") != 0)
		return usage_error("sso commands: set, show");
	if (o->sso_header == NULL && o->sso_proxy == NULL)
		return usage_error("sso set needs --sso-header or --sso-proxy");
	header = o->sso_header == NULL ? ms->sso_header :
	    strcmp(o->sso_header, "off") ? o->sso_header : "";
	proxies = o->sso_proxy == NULL ? ms->sso_proxies :
	    strcmp(o->sso_proxy, "none") ? o->sso_proxy : "";
	if (header[0] && auth_sso_header_check(header) != PS_OK)
		return fail("--sso-header");
	if (proxies[0] && auth_sso_proxies_check(proxies) != PS_OK)
		return fail("--sso-proxy");
	if (store_config_set(ms->store, "sso_header", header) != PS_OK ||
	    store_config_set(ms->store, "sso_proxies", proxies) != PS_OK)
		return fail("sso set");
	return 0;
}

/* ---- Kerberos sign-in (auth/negotiate.h) ---- */

static int
cmd_kerberos(struct master_state *ms, struct opts *o, const char *verb)
{
	struct auth_negotiate *an = NULL;
	char keytab[sizeof(ms->kerberos_keytab)];
	const char *service, *realms;
	char *abs = NULL;
	int ret = 0;

	if (strcmp(verb, "show") == 0) {
		printf("keytab   %s\nservice  %s\nrealms   %s\n",
		    ms->kerberos_keytab[0] ? ms->kerberos_keytab : "off",
		    ms->kerberos_service[0] ? ms->kerberos_service :
		    "default (any in the keytab)", ms->kerberos_realms[0] ?
		    ms->kerberos_realms : "(none: the principal is the "
		    "address)");
		return 0;
	}
	if (strcmp(verb, "set") != 0)
		return usage_error("kerberos commands: set, show");
	if (o->keytab == NULL && o->service == NULL && o->realms == NULL)
		return usage_error("kerberos set needs --keytab, --service or "
		    "--realms");
	str_copy(keytab, ms->kerberos_keytab, sizeof(keytab));
	if (o->keytab && strcmp(o->keytab, "off") == 0) {
		keytab[0] = '\0';
	} else if (o->keytab) {
		/* Absolute: serve may run from another directory. */
		if ((abs = realpath(o->keytab, NULL)) == NULL) {
			ps_errf(PS_ENOTFOUND, "cannot read %s", o->keytab);
			return fail("--keytab");
		}
		if (!str_copy(keytab, abs, sizeof(keytab))) {
			ps_errf(PS_EINVAL, "the path is too long");
			ret = fail("--keytab");
			goto out;
		}
	}
	service = o->service == NULL ? ms->kerberos_service :
	    strcmp(o->service, "default") ? o->service : "";
	realms = o->realms == NULL ? ms->kerberos_realms : o->realms;
	if (service[0] && (strchr(service, '/') == NULL ||
	    strlen(service) >= sizeof(ms->kerberos_service))) {
		ps_errf(PS_EINVAL, "%s is not SERVICE/HOST[@REALM]", service);
		ret = fail("--service");
		goto out;
	}
	if (strlen(realms) >= sizeof(ms->kerberos_realms))
		ps_errf(PS_EINVAL, "the map is too long");
	if (strlen(realms) >= sizeof(ms->kerberos_realms) ||
	    auth_negotiate_realms_check(realms) != PS_OK) {
		ret = fail("--realms");
		goto out;
	}
	/* The keytab must hold the service's key: checked before storing. */
	if (keytab[0] && auth_negotiate_new(keytab, service, &an) != PS_OK) {
		ret = fail("--keytab");
		goto out;
	}
	if (store_config_set(ms->store, "kerberos_keytab", keytab) != PS_OK ||
	    store_config_set(ms->store, "kerberos_service", service) !=
	    PS_OK ||
	    store_config_set(ms->store, "kerberos_realms", realms) != PS_OK)
		ret = fail("kerberos set");
out:
	auth_negotiate_free(an);
	free(abs);
	return ret;
}

int
master_main(int argc, char **argv)
{
	struct master_state ms;
	struct opts o;
	char store_what[600];
	const char *cmd, *verb;
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
	if (strcmp(cmd, "init") == 0)
		return cmd_init(&o);
	if (o.dir == NULL)
		return usage_error("--dir D is required");
	verb = o.nargs > 1 ? o.args[1] : "";
	if (strcmp(cmd, "mailbox") && strcmp(cmd, "photo") &&
	    strcmp(cmd, "partner") && strcmp(cmd, "serve") &&
	    strcmp(cmd, "diagnose") && strcmp(cmd, "store") &&
	    strcmp(cmd, "sso") && strcmp(cmd, "kerberos") &&
	    strcmp(cmd, "directory"))
		return usage_error("unknown command");
	/* Admin commands speak on stdout/stderr; events only for serve. */
	if (strcmp(cmd, "serve") != 0 && !log_enabled(LOG_DEBUG))
		log_init("master", LOG_WARN);
	/* diagnose: the store first, a step of its own. */
	if (strcmp(cmd, "diagnose") == 0) {
		char *db = store_locate(o.dir, MASTER_DB);
		bool opens = diag_store(db, STORE_MASTER, o.dir, store_what,
		    sizeof(store_what));

		free(db);
		if (!opens)
			return 1;
	}
	if (master_state_open(o.dir, &ms) != PS_OK)
		return fail(NULL);
	if (strcmp(cmd, "serve") == 0) {
		int lport = 0;

		if (http_set_limits_from_options(o.max_connections,
		    o.body_memory) != PS_OK || (o.listen_port &&
		    setup_port(o.listen_port, "--listen-port", &lport) !=
		    PS_OK))
			ret = fail("serve");
		else
			ret = master_serve(&ms, o.listen, lport, o.port_file,
			    o.metrics_allow) == PS_OK ? 0 : fail("serve");
	}
	else if (strcmp(cmd, "mailbox") == 0)
		ret = cmd_mailbox(&ms, &o, verb);
	else if (strcmp(cmd, "photo") == 0)
		ret = cmd_photo(&ms, &o, verb);
	else if (strcmp(cmd, "store") == 0)
		ret = cmd_store(&ms, &o, verb);
	else if (strcmp(cmd, "sso") == 0)
		ret = cmd_sso(&ms, &o, verb);
	else if (strcmp(cmd, "kerberos") == 0)
		ret = cmd_kerberos(&ms, &o, verb);
	else if (strcmp(cmd, "directory") == 0)
		ret = cmd_directory(&ms, &o, verb);
	else if (strcmp(cmd, "diagnose") == 0)
		ret = master_diagnose_run(&ms, store_what, o.partner ?
		    o.partner : o.nargs > 1 ? o.args[1] : NULL, o.ca_file);
	else
		ret = cmd_partner(&ms, &o, verb);
	master_state_close(&ms);
	return ret;
}
