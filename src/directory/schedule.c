/*
 * The directory's settings in the config table, and the sync's schedule
 * inside serve: a timer on the loop, the run on a thread of its own,
 * the outcome logged on the loop. See schedule.h.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "metrics/metrics.h"
#include "schedule.h"
#include "work/work.h"

#define LEASE_NAME	"directory-sync"
#define RETRY_S		60	/* after a failed run, at most */

/* ---- settings ---- */

static const char *const string_keys[] = {
	"directory.ldap", "directory.base", "directory.filter",
	"directory.bind_dn", "directory.password", "directory.ca_file",
	"directory.attributes", "directory.domain",
};

/* The string fields of `s` in string_keys' order. */
static char **
string_field(struct dir_settings *s, size_t i)
{
	char **f[] = { &s->ldap, &s->base, &s->filter, &s->bind_dn,
	    &s->password, &s->ca_file, &s->attributes, &s->domain };

	return f[i];
}

void
dir_settings_cleanup(struct dir_settings *s)
{
	size_t i;

	if (s->password)
		xfree_secret(s->password, strlen(s->password));
	s->password = NULL;
	for (i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]); i++)
		free(*string_field(s, i));
	memset(s, 0, sizeof(*s));
}

/* The setting `key` into *value (NULL when it is not set or empty). */
static ps_err
setting_get(struct store *st, const char *key, char **value)
{
	ps_err rc = store_config_get(st, key, value);

	if (rc == PS_ENOTFOUND) {
		*value = NULL;
		return PS_OK;
	}
	if (rc == PS_OK && **value == '\0') {
		free(*value);
		*value = NULL;
	}
	return rc;
}

ps_err
dir_settings_load(struct store *st, struct dir_settings *s)
{
	char *v = NULL;
	size_t i;
	ps_err rc = PS_OK;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]) &&
	    rc == PS_OK; i++)
		rc = setting_get(st, string_keys[i], string_field(s, i));
	if (rc == PS_OK && (rc = setting_get(st, "directory.starttls", &v)) ==
	    PS_OK && v) {
		s->starttls = strcmp(v, "on") == 0;
		free(v);
	}
	if (rc == PS_OK && (rc = setting_get(st, "directory.every", &v)) ==
	    PS_OK && v) {
		s->every = strtoll(v, NULL, 10);
		free(v);
	}
	if (rc == PS_OK && (rc = setting_get(st, "directory.passwords", &v)) ==
	    PS_OK && v) {
		s->passwords = strcmp(v, "on") == 0;
		free(v);
	}
	if (rc != PS_OK)
		dir_settings_cleanup(s);
	return rc;
}

ps_err
dir_settings_save(struct store *st, const struct dir_settings *s)
{
	struct dir_settings *w = (struct dir_settings *)s;
	char every[32];
	size_t i;
	ps_err rc;

	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	for (i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]) &&
	    rc == PS_OK; i++)
		rc = store_config_set(st, string_keys[i],
		    *string_field(w, i) ? *string_field(w, i) : "");
	snprintf(every, sizeof(every), "%lld", (long long)s->every);
	if (rc == PS_OK)
		rc = store_config_set(st, "directory.starttls", s->starttls ?
		    "on" : "off");
	if (rc == PS_OK)
		rc = store_config_set(st, "directory.every", every);
	if (rc == PS_OK)
		rc = store_config_set(st, "directory.passwords", s->passwords ?
		    "on" : "off");
	if (rc != PS_OK) {
		(void)store_end(st, false);
		return rc;
	}
	return store_end(st, true);
}

void
dir_settings_config(const struct dir_settings *s, struct dir_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->uri = s->ldap;
	cfg->base = s->base;
	cfg->filter = s->filter;
	cfg->bind_dn = s->bind_dn;
	cfg->password = s->password;
	cfg->ca_file = s->ca_file;
	cfg->starttls = s->starttls;
	cfg->schema = s->attributes && strcmp(s->attributes, "openldap") ==
	    0 ? DIR_SCHEMA_OPENLDAP : DIR_SCHEMA_AD;
}

static void
replace_string(char **field, const char *value)
{
	free(*field);
	*field = value && *value ? xstrdup(value) : NULL;
}

ps_err
dir_settings_change(struct store *st, const struct dir_settings_change *ch,
    struct dir_settings *out)
{
	const struct dir_options *o = ch->dir;
	struct dir_config cfg;
	char *password = NULL;
	bool other;
	ps_err rc;

	if ((rc = dir_settings_load(st, out)) != PS_OK)
		return rc;
	other = o && (o->base || o->filter || o->bind_dn || o->password_file ||
	    o->ca_file || o->attributes || o->starttls);
	if (o && o->ldap == NULL && other) {
		rc = ps_errf(PS_EINVAL, "the directory's options replace the "
		    "stored ones: give --ldap and --base with them");
		goto out;
	}
	if (o && o->ldap) {
		if ((rc = dir_options_check(o, &cfg, &password)) != PS_OK)
			goto out;
		replace_string(&out->ldap, o->ldap);
		replace_string(&out->base, o->base);
		replace_string(&out->filter, o->filter);
		replace_string(&out->bind_dn, o->bind_dn);
		if (out->password)
			xfree_secret(out->password, strlen(out->password));
		out->password = password;
		replace_string(&out->ca_file, o->ca_file);
		replace_string(&out->attributes, o->attributes ? o->attributes :
		    "ad");
		out->starttls = o->starttls;
	}
	if (ch->domain)
		replace_string(&out->domain, ch->domain);
	if (ch->every && strcmp(ch->every, "off") == 0)
		out->every = 0;
	else if (ch->every) {
		if ((rc = duration_parse(ch->every, &out->every)) != PS_OK)
			goto out;
		if (out->every < 60) {
			rc = ps_errf(PS_EINVAL, "--every must be at least 1m "
			    "(or off), not %s", ch->every);
			goto out;
		}
	}
	if (ch->passwords && strcmp(ch->passwords, "on") == 0)
		out->passwords = true;
	else if (ch->passwords && strcmp(ch->passwords, "off") == 0)
		out->passwords = false;
	else if (ch->passwords) {
		rc = ps_errf(PS_EINVAL, "--passwords must be on or off, not "
		    "\"%s\"", ch->passwords);
		goto out;
	}
	if (out->ldap == NULL && (out->every > 0 || out->passwords)) {
		rc = ps_errf(PS_EINVAL, "no directory is set: give --ldap URL "
		    "--base DN (and its other options) first");
		goto out;
	}
	rc = dir_settings_save(st, out);
out:
	if (rc != PS_OK)
		dir_settings_cleanup(out);
	return rc;
}

void
dir_settings_print(FILE *f, const struct dir_settings *s)
{
	char every[32];

	if (s->ldap == NULL) {
		fprintf(f, "directory       none\n");
		return;
	}
	fprintf(f, "directory       %s%s\n", s->ldap, s->starttls ?
	    " (StartTLS)" : "");
	fprintf(f, "base            %s\n", s->base ? s->base : "");
	fprintf(f, "filter          %s\n", s->filter ? s->filter :
	    "(the attributes' default)");
	fprintf(f, "bind            %s\n", s->bind_dn ? s->bind_dn :
	    "anonymous");
	fprintf(f, "ca file         %s\n", s->ca_file ? s->ca_file :
	    "(the system's)");
	fprintf(f, "attributes      %s\n", s->attributes ? s->attributes :
	    "ad");
	if (s->domain)
		fprintf(f, "domain          %s\n", s->domain);
	fprintf(f, "every           %s\n", s->every > 0 ?
	    duration_format(s->every, every) : "off");
	fprintf(f, "passwords       %s\n", s->passwords ? "from the "
	    "directory" : "local");
}

/* ---- the schedule ---- */

struct dir_schedule {
	struct event_base	*base;
	struct event		*tick;
	struct work_pool	*pool;		/* one thread: the runs */
	char			*address;
	enum store_role		 role;
	const char		*what;
	dir_ops_fn		 ops_for;
	void			*arg;
	/* the loop's */
	bool			 busy;		/* a look is on the thread */
	/* the look's (its thread's while busy) */
	struct store		*st;
	int64_t			 last_run;	/* when this process last ran */
	bool			 last_failed;
	bool			 ran;
	bool			 elsewhere;	/* another holds the lease */
	int64_t			 started;
	double			 seconds;
	struct dir_sync_counts	 counts;
	ps_err			 rc;
	char			 err[512];
};

static void
run_look(void *arg)
{
	struct dir_schedule *sc = arg;
	struct dir_settings set;
	struct dir_config cfg;
	struct dir_sync_ops ops;
	struct dir_sync_run run = { 0 };
	struct timespec t0, t1;
	bool taken = false;
	ps_err rc;

	sc->ran = false;
	sc->elsewhere = false;
	sc->started = time_now();
	if (sc->st == NULL && store_open(sc->address, sc->role, false,
	    &sc->st) != PS_OK)
		return;
	if (dir_settings_load(sc->st, &set) != PS_OK)
		goto lost;
	/* The settings of this look: a new period counts at once. */
	if (set.ldap == NULL || set.every <= 0 || (sc->last_run != 0 &&
	    sc->started < sc->last_run + (sc->last_failed &&
	    set.every > RETRY_S ? RETRY_S : set.every))) {
		dir_settings_cleanup(&set);
		return;
	}
	if (store_lease_take(sc->st, LEASE_NAME, store_lease_holder(),
	    sc->started, sc->started + set.every, &taken) != PS_OK) {
		dir_settings_cleanup(&set);
		goto lost;
	}
	if (!taken) {
		sc->elsewhere = true;
		dir_settings_cleanup(&set);
		return;
	}
	sc->ran = true;
	sc->last_run = sc->started;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = sc->ops_for(sc->arg, &set, &ops)) == PS_OK) {
		dir_settings_config(&set, &cfg);
		rc = dir_sync(&cfg, sc->st, &ops, &run, &sc->counts);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sc->seconds = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	sc->rc = rc;
	sc->last_failed = rc != PS_OK;
	if (rc != PS_OK) {
		str_copy(sc->err, ps_errmsg(), sizeof(sc->err));
		/* Another node (or this one) tries again within a minute. */
		if (set.every > RETRY_S)
			(void)store_lease_renew(sc->st, LEASE_NAME,
			    store_lease_holder(), sc->started + RETRY_S,
			    &taken);
	}
	dir_settings_cleanup(&set);
	if (store_connected(sc->st))
		return;
lost:
	/* Opened again at the next look. */
	store_close(sc->st);
	sc->st = NULL;
}

static void
report(struct dir_schedule *sc)
{
	static const char *const names[] = { "added", "updated", "renamed",
	    "disabled", "restored", "unchanged" };
	const size_t v[] = { sc->counts.added, sc->counts.updated,
	    sc->counts.renamed, sc->counts.disabled, sc->counts.restored,
	    sc->counts.unchanged };
	char labels[64];
	size_t i;

	metrics_set("photosync_directory_sync_last_run_timestamp_seconds",
	    NULL, (double)sc->started);
	metrics_set("photosync_directory_sync_last_success", NULL,
	    sc->rc == PS_OK ? 1 : 0);
	metrics_set("photosync_directory_sync_last_duration_seconds", NULL,
	    sc->seconds);
	metrics_add("photosync_directory_sync_runs_total", sc->rc == PS_OK ?
	    "result=\"ok\"" : "result=\"failed\"", 1);
	if (sc->rc != PS_OK) {
		log_err(NULL, "directory.sync_failed", "records=%s error=%s",
		    sc->what, log_q(sc->err));
		return;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(labels, sizeof(labels), "change=\"%s\"", names[i]);
		metrics_set("photosync_directory_sync_last_records", labels,
		    (double)v[i]);
	}
	log_info(NULL, "directory.sync", "records=%s added=%zu updated=%zu "
	    "renamed=%zu disabled=%zu restored=%zu unchanged=%zu ms=%.0f",
	    sc->what, sc->counts.added, sc->counts.updated,
	    sc->counts.renamed, sc->counts.disabled, sc->counts.restored,
	    sc->counts.unchanged, sc->seconds * 1000);
}

static void
look_done(void *arg)
{
	struct dir_schedule *sc = arg;

	sc->busy = false;
	if (sc->ran)
		report(sc);
	else if (sc->elsewhere)
		log_debug(NULL, "directory.sync_elsewhere", "records=%s",
		    sc->what);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct dir_schedule *sc = arg;

	(void)fd;
	(void)what;
	if (sc->busy)
		return;
	sc->busy = true;
	work_submit(sc->pool, run_look, look_done, sc);
}

struct dir_schedule *
dir_schedule_start(struct event_base *base, const char *address,
    enum store_role role, const char *what, dir_ops_fn ops_for, void *arg)
{
	struct dir_schedule *sc = xcalloc(1, sizeof(*sc));
	struct timeval tv = { DIR_SCHEDULE_TICK, 0 };

	sc->base = base;
	sc->address = xstrdup(address);
	sc->role = role;
	sc->what = what;
	sc->ops_for = ops_for;
	sc->arg = arg;
	if ((sc->pool = work_pool_new(base, 1)) == NULL) {
		free(sc->address);
		free(sc);
		return NULL;
	}
	metrics_declare("photosync_directory_sync_last_run_timestamp_seconds",
	    "gauge", "When the directory sync last ran on this node (Unix "
	    "time).");
	metrics_declare("photosync_directory_sync_last_success", "gauge",
	    "1 when the last directory sync succeeded, 0 when it failed.");
	metrics_declare("photosync_directory_sync_last_duration_seconds",
	    "gauge", "How long the last directory sync took.");
	metrics_declare("photosync_directory_sync_last_records", "gauge",
	    "What the last successful directory sync did, by change.");
	metrics_declare("photosync_directory_sync_runs_total", "counter",
	    "Directory syncs run on this node, by result.");
	sc->tick = event_new(base, -1, EV_PERSIST, on_tick, sc);
	event_add(sc->tick, &tv);
	/* A first look at once. */
	event_active(sc->tick, EV_TIMEOUT, 0);
	return sc;
}

void
dir_schedule_stop(struct dir_schedule *sc)
{
	if (sc == NULL)
		return;
	event_free(sc->tick);
	work_pool_free(sc->pool);
	if (sc->st)
		store_close(sc->st);
	free(sc->address);
	free(sc);
}
