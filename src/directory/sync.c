/*
 * One sync of the store's users or mailboxes with the directory: read
 * everything, check it, plan, then write in batches. See sync.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "sync.h"

#define BATCH_DEFAULT		500
#define PASSWORD_MAX		4096
#define PROGRESS_EVERY		1000

ps_err
dir_password_file_read(const char *path, char **password)
{
	char *data = NULL;
	size_t len = 0;
	ps_err rc;

	*password = NULL;
	if ((rc = file_read(path, PASSWORD_MAX, &data, &len)) != PS_OK)
		return rc;
	len = strcspn(data, "\r\n");
	data[len] = '\0';
	if (len == 0) {
		xfree_secret(data, len);
		return ps_errf(PS_EINVAL, "the password file %s is empty",
		    path);
	}
	*password = data;
	return PS_OK;
}

ps_err
dir_options_check(const struct dir_options *o, struct dir_config *cfg,
    char **password)
{
	ps_err rc;

	memset(cfg, 0, sizeof(*cfg));
	*password = NULL;
	if (o->ldap == NULL)
		return ps_errf(PS_EINVAL, "--ldap URL is required "
		    "(ldap://host[:port] or ldaps://host[:port])");
	if (strncasecmp(o->ldap, "ldap://", 7) != 0 &&
	    strncasecmp(o->ldap, "ldaps://", 8) != 0)
		return ps_errf(PS_EINVAL, "--ldap must be ldap://host[:port] "
		    "or ldaps://host[:port], not \"%s\"", o->ldap);
	if (o->starttls && strncasecmp(o->ldap, "ldaps://", 8) == 0)
		return ps_errf(PS_EINVAL, "--starttls is for ldap:// (an "
		    "ldaps:// address is TLS from the start)");
	if (o->base == NULL || *o->base == '\0')
		return ps_errf(PS_EINVAL, "--base DN is required (the DN "
		    "the people are under, e.g. dc=contoso,dc=com)");
	if (o->attributes == NULL || strcmp(o->attributes, "ad") == 0)
		cfg->schema = DIR_SCHEMA_AD;
	else if (strcmp(o->attributes, "openldap") == 0)
		cfg->schema = DIR_SCHEMA_OPENLDAP;
	else
		return ps_errf(PS_EINVAL, "--attributes must be ad "
		    "(sAMAccountName, mail, displayName, objectGUID) or "
		    "openldap (uid, mail, cn, entryUUID), not \"%s\"",
		    o->attributes);
	if (o->filter && (o->filter[0] != '(' ||
	    o->filter[strlen(o->filter) - 1] != ')'))
		return ps_errf(PS_EINVAL, "--filter must be an LDAP filter in "
		    "parentheses, e.g. (objectClass=person), not \"%s\"",
		    o->filter);
	if (!o->bind_dn != !o->password_file)
		return ps_errf(PS_EINVAL, "--bind-dn and --password-file go "
		    "together (neither: an anonymous bind)");
	if (o->password_file && (rc = dir_password_file_read(o->password_file,
	    password)) != PS_OK)
		return rc;
	cfg->uri = o->ldap;
	cfg->base = o->base;
	cfg->filter = o->filter;
	cfg->bind_dn = o->bind_dn;
	cfg->password = *password;
	cfg->ca_file = o->ca_file && *o->ca_file ? o->ca_file : NULL;
	cfg->starttls = o->starttls;
	return PS_OK;
}

/* ---- records ---- */

struct records {
	struct dir_record	*v;
	size_t			 n, cap;
};

static void
record_free(struct dir_record *r)
{
	free(r->id);
	free(r->key);
	free(r->mail);
	free(r->name);
	free(r->dn);
	memset(r, 0, sizeof(*r));
}

static void
records_free(struct records *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		record_free(&rs->v[i]);
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

/* Appends `r`, whose strings the list now owns. */
static void
records_take(struct records *rs, const struct dir_record *r)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 256;
		rs->v = xrealloc(rs->v, rs->cap * sizeof(*rs->v));
	}
	rs->v[rs->n++] = *r;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int
by_id(const void *a, const void *b)
{
	const struct dir_record *x = a, *y = b;

	return strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

static int
ptr_by_key(const void *a, const void *b)
{
	const struct dir_record *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

static int
ptr_by_mail(const void *a, const void *b)
{
	const struct dir_record *const *x = a, *const *y = b;

	return strcmp((*x)->mail, (*y)->mail);
}

/* Sorts `rs` by id (hand-made records, without one, first). */
static void
records_sort(struct records *rs)
{
	if (rs->n > 0)
		qsort(rs->v, rs->n, sizeof(*rs->v), by_id);
}

/* The record of `rs` (sorted by id) with the id of `probe`, or NULL. */
static struct dir_record *
records_find(const struct records *rs, const struct dir_record *probe)
{
	return rs->n > 0 ? bsearch(probe, rs->v, rs->n, sizeof(*rs->v),
	    by_id) : NULL;
}

/* Pointers to the records of `rs`, sorted by `cmp`; the caller frees. */
static const struct dir_record **
index_of(const struct records *rs, int (*cmp)(const void *, const void *))
{
	const struct dir_record **ix = xmalloc((rs->n ? rs->n : 1) *
	    sizeof(*ix));
	size_t i;

	for (i = 0; i < rs->n; i++)
		ix[i] = &rs->v[i];
	qsort(ix, rs->n, sizeof(*ix), cmp);
	return ix;
}

/* The record of `ix` (sorted by `cmp`) equal to `probe`, or NULL. */
static const struct dir_record *
index_find(const struct dir_record **ix, size_t n,
    int (*cmp)(const void *, const void *), const struct dir_record *probe)
{
	const struct dir_record *const *hit = bsearch(&probe, ix, n,
	    sizeof(*ix), cmp);

	return hit ? *hit : NULL;
}

/* ---- reading the directory ---- */

struct reading {
	const struct dir_sync_ops	*ops;
	struct records			*people;
	FILE				*progress;
	time_t				 shown;
};

static ps_err
take_person(void *arg, const struct dir_person *p, size_t done)
{
	struct reading *rd = arg;
	struct dir_record r = { 0 };
	ps_err rc;

	if ((rc = rd->ops->record_of(rd->ops->arg, p, &r)) != PS_OK) {
		record_free(&r);
		return ps_errf(rc, "the directory's entry %s: %s", p->dn,
		    ps_errmsg());
	}
	r.id = xstrdup(p->id);
	r.dn = xstrdup(p->dn);
	r.disabled = p->disabled;
	records_take(rd->people, &r);
	if (rd->progress && (done % PROGRESS_EVERY == 0 ||
	    time(NULL) != rd->shown)) {
		rd->shown = time(NULL);
		fprintf(rd->progress, "\rdirectory: read %zu entries", done);
		fflush(rd->progress);
	}
	return PS_OK;
}

static ps_err
take_stored(void *arg, const struct dir_record *r)
{
	struct dir_record c = { 0 };

	c.id = r->id && *r->id ? xstrdup(r->id) : NULL;
	c.key = xstrdup(r->key);
	c.mail = xstrdup(r->mail);
	c.name = xstrdup(r->name);
	c.disabled = r->disabled;
	records_take(arg, &c);
	return PS_OK;
}

/*
 * No two entries of the directory may share an id, a key or an
 * address: the store could not keep them apart. `people` is sorted by
 * id.
 */
static ps_err
check_unique(const struct dir_sync_ops *ops, const struct records *people)
{
	const struct dir_record **ix;
	ps_err rc = PS_OK;
	size_t i;

	for (i = 1; i < people->n; i++)
		if (strcmp(people->v[i - 1].id, people->v[i].id) == 0)
			return ps_errf(PS_EINVAL, "the directory's entries %s "
			    "and %s have the same id %s", people->v[i - 1].dn,
			    people->v[i].dn, people->v[i].id);
	ix = index_of(people, ptr_by_key);
	for (i = 1; i < people->n && rc == PS_OK; i++)
		if (strcmp(ix[i - 1]->key, ix[i]->key) == 0)
			rc = ps_errf(PS_EINVAL, "the directory's entries %s "
			    "and %s would both be the %s %s", ix[i - 1]->dn,
			    ix[i]->dn, ops->key_name, ix[i]->key);
	free(ix);
	if (rc != PS_OK)
		return rc;
	ix = index_of(people, ptr_by_mail);
	for (i = 1; i < people->n && rc == PS_OK; i++)
		if (strcmp(ix[i - 1]->mail, ix[i]->mail) == 0)
			rc = ps_errf(PS_EINVAL, "the directory's entries %s "
			    "and %s have the same address %s", ix[i - 1]->dn,
			    ix[i]->dn, ix[i]->mail);
	free(ix);
	return rc;
}

/* ---- the plan ---- */

enum change { CH_ADD, CH_UPDATE, CH_RENAME, CH_DISABLE, CH_RESTORE };

struct step {
	const struct dir_record	*now;
	const char		*was;	/* NULL: added */
	enum change		 change;
};

struct plan {
	struct step	*v;
	size_t		 n;
	struct records	 leaving;	/* the disabled copies of leavers */
};

/*
 * Whether the key or the address (per `cmp`) of `probe` is held in the
 * store by a record other than `self`, which is then *holder.
 */
static bool
held_by_other(const struct dir_record **ix, size_t n,
    int (*cmp)(const void *, const void *), const struct dir_record *probe,
    const struct dir_record *self, const struct dir_record **holder)
{
	*holder = index_find(ix, n, cmp, probe);
	return *holder != NULL && *holder != self;
}

static ps_err
conflict(const struct dir_sync_ops *ops, const struct dir_record *d,
    const char *what, const char *value, const struct dir_record *h)
{
	return ps_errf(PS_EEXIST, "the directory's entry %s would take the "
	    "%s %s, which the %s %s holds (%s); nothing was changed", d->dn,
	    what, value, ops->what, h->key, h->id == NULL ? "added by hand: "
	    "remove it, or leave this entry out with --filter" : h->disabled ?
	    "it left the directory: remove it to give its name away" :
	    "from the directory under another id");
}

static ps_err
plan_make(const struct dir_sync_ops *ops, const struct records *people,
    const struct records *stored, struct plan *pl,
    struct dir_sync_counts *c)
{
	const struct dir_record **by_key = index_of(stored, ptr_by_key);
	const struct dir_record **by_mail = index_of(stored, ptr_by_mail);
	const struct dir_record *s, *h;
	struct dir_record probe;
	struct step *st;
	bool *adopted = xcalloc(stored->n + 1, sizeof(*adopted));
	size_t i;
	ps_err rc = PS_OK;

	pl->v = xmalloc((people->n + stored->n + 1) * sizeof(*pl->v));
	pl->n = 0;
	for (i = 0; i < people->n && rc == PS_OK; i++) {
		const struct dir_record *d = &people->v[i];

		/* stored is sorted by id, hand-made ones ("") first. */
		s = records_find(stored, d);
		/*
		 * An entry made again (a new id: OpenLDAP's entryUUID, a
		 * re-created account) under the key of a record whose entry
		 * is gone is that record again: it keeps its photo.
		 */
		if (s == NULL && (h = index_find(by_key, stored->n,
		    ptr_by_key, d)) != NULL && h->id != NULL &&
		    records_find(people, h) == NULL) {
			s = h;
			adopted[h - stored->v] = true;
		}
		if (held_by_other(by_key, stored->n, ptr_by_key, d, s, &h)) {
			rc = conflict(ops, d, ops->key_name, d->key, h);
			break;
		}
		if (held_by_other(by_mail, stored->n, ptr_by_mail, d, s, &h)) {
			rc = conflict(ops, d, "address", d->mail, h);
			break;
		}
		st = &pl->v[pl->n];
		st->now = d;
		st->was = s ? s->key : NULL;
		if (s == NULL) {
			st->change = CH_ADD;
			c->added++;
		} else if (s->disabled && !d->disabled) {
			st->change = CH_RESTORE;
			c->restored++;
		} else if (!s->disabled && d->disabled) {
			st->change = CH_DISABLE;
			c->disabled++;
		} else if (strcmp(s->key, d->key) != 0) {
			st->change = CH_RENAME;
			c->renamed++;
		} else if (strcmp(s->mail, d->mail) != 0 ||
		    strcmp(s->name, d->name) != 0 ||
		    strcmp(s->id, d->id) != 0) {
			st->change = CH_UPDATE;
			c->updated++;
		} else {
			c->unchanged++;
			continue;
		}
		pl->n++;
	}
	free(by_key);
	free(by_mail);
	if (rc != PS_OK) {
		free(adopted);
		return rc;
	}
	/* The stored records of the directory that it no longer has. */
	for (i = 0; i < stored->n; i++) {
		struct dir_record gone = { 0 };

		s = &stored->v[i];
		if (s->id == NULL || adopted[i])
			continue;
		probe.id = s->id;
		if (records_find(people, &probe) != NULL)
			continue;
		if (s->disabled) {
			c->unchanged++;
			continue;
		}
		gone.id = xstrdup(s->id);
		gone.key = xstrdup(s->key);
		gone.mail = xstrdup(s->mail);
		gone.name = xstrdup(s->name);
		gone.dn = dup_or_null(s->dn);
		gone.disabled = true;
		records_take(&pl->leaving, &gone);
		c->disabled++;
	}
	for (i = 0; i < pl->leaving.n; i++) {
		st = &pl->v[pl->n++];
		st->now = &pl->leaving.v[i];
		st->was = pl->leaving.v[i].key;
		st->change = CH_DISABLE;
	}
	free(adopted);
	return PS_OK;
}

/* ---- writing ---- */

static ps_err
plan_write(const struct dir_sync_ops *ops, struct store *st,
    const struct plan *pl, const struct dir_sync_run *run)
{
	size_t batch = run->batch ? run->batch : BATCH_DEFAULT;
	size_t i = 0, end, k;
	time_t shown = 0;
	ps_err rc;

	while (i < pl->n) {
		end = i + batch < pl->n ? i + batch : pl->n;
		if ((rc = store_begin(st)) != PS_OK)
			goto fail;
		for (k = i; k < end; k++)
			if ((rc = ops->put(ops->arg, st, pl->v[k].now,
			    pl->v[k].was)) != PS_OK)
				break;
		if (rc != PS_OK) {
			(void)store_end(st, false);
			goto fail;
		}
		if ((rc = store_end(st, true)) != PS_OK)
			goto fail;
		i = end;
		if (run->progress && (time(NULL) != shown || i == pl->n)) {
			shown = time(NULL);
			fprintf(run->progress, "\rdirectory: wrote %zu of %zu "
			    "changes", i, pl->n);
			fflush(run->progress);
		}
	}
	return PS_OK;
fail:
	return ps_errf(rc, "%s (the %zu changes before its batch are "
	    "written, %zu are not)", ps_errmsg(), i, pl->n - i);
}

ps_err
dir_sync(const struct dir_config *cfg, struct store *st,
    const struct dir_sync_ops *ops, const struct dir_sync_run *run,
    struct dir_sync_counts *counts)
{
	struct records people = { 0 }, stored = { 0 };
	struct reading rd = { ops, &people, run->progress, 0 };
	struct plan pl = { 0 };
	struct dir_config with_mail = *cfg;
	char *filter = NULL;
	size_t skipped = 0, i, active = 0;
	ps_err rc;

	memset(counts, 0, sizeof(*counts));
	/*
	 * By default the people with an address: a directory's built-in
	 * accounts (Administrator, krbtgt) have none and are nobody's
	 * mailbox. A filter given is taken as it is.
	 */
	if (cfg->filter == NULL || *cfg->filter == '\0') {
		filter = xasprintf("(&%s(mail=*))",
		    dir_people_filter(cfg->schema));
		with_mail.filter = filter;
	}
	rc = dir_search(&with_mail, take_person, &rd, &skipped);
	if (run->progress && people.n > 0)
		fprintf(run->progress, "\rdirectory: read %zu entries\n",
		    people.n);
	if (rc != PS_OK)
		goto out;
	if (skipped > 0) {
		rc = ps_errf(PS_EINVAL, "the directory %s: %zu entries under "
		    "%s have no %s; narrow --filter to the people, nothing "
		    "was changed", cfg->uri, skipped, cfg->base,
		    cfg->schema == DIR_SCHEMA_OPENLDAP ? "entryUUID or uid" :
		    "objectGUID or sAMAccountName");
		goto out;
	}
	records_sort(&people);
	if ((rc = check_unique(ops, &people)) != PS_OK)
		goto out;
	if ((rc = ops->load(ops->arg, st, take_stored, &stored)) != PS_OK)
		goto out;
	records_sort(&stored);
	for (i = 0; i < stored.n; i++)
		if (stored.v[i].id != NULL && !stored.v[i].disabled)
			active++;
	/* An empty answer is a wrong filter far more often than a fact. */
	if (people.n == 0 && active > 0) {
		rc = ps_errf(PS_EINVAL, "the directory %s has no one under %s "
		    "that the filter takes; refusing to disable all %zu %ss "
		    "that came from it (check --base and --filter)", cfg->uri,
		    cfg->base, active, ops->what);
		goto out;
	}
	if ((rc = plan_make(ops, &people, &stored, &pl, counts)) != PS_OK)
		goto out;
	if (!run->dry_run)
		rc = plan_write(ops, st, &pl, run);
	if (run->progress && pl.n > 0 && !run->dry_run)
		fputc('\n', run->progress);
out:
	free(filter);
	free(pl.v);
	records_free(&pl.leaving);
	records_free(&people);
	records_free(&stored);
	return rc;
}

ps_err
dir_sync_command(const struct dir_options *o, struct store *st,
    const struct dir_sync_ops *ops, bool dry_run, const char *plural)
{
	struct dir_sync_run run = { 0 };
	struct dir_sync_counts c;
	struct dir_config cfg;
	char *password = NULL, text[256];
	ps_err rc;

	if ((rc = dir_options_check(o, &cfg, &password)) != PS_OK)
		return rc;
	run.dry_run = dry_run;
	run.progress = isatty(STDERR_FILENO) ? stderr : NULL;
	rc = dir_sync(&cfg, st, ops, &run, &c);
	if (password)
		xfree_secret(password, strlen(password));
	if (rc != PS_OK)
		return rc;
	dir_sync_counts_text(&c, text, sizeof(text));
	printf("%s %s from %s: %s\n", dry_run ? "would sync (dry run, "
	    "nothing written)" : "synced", plural, cfg.uri, text);
	return PS_OK;
}

void
dir_sync_counts_text(const struct dir_sync_counts *c, char *out, size_t n)
{
	snprintf(out, n, "added %zu, updated %zu, renamed %zu, disabled %zu, "
	    "restored %zu, unchanged %zu", c->added, c->updated, c->renamed,
	    c->disabled, c->restored, c->unchanged);
}
