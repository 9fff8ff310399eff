/*
 * The serving path's in-memory index (see index.h), built on lru.c, with
 * misses answered from the store's read lane.
 *
 * Users are kept under each name requests use ("a/" account, "e/"
 * address, "p/" library prefix, "h/" address hash), each its own entry,
 * "no such user" included. Verified credentials are auth/creds.h's,
 * ended with their user's changes.
 *
 * A fill from the store that started before an entry of its kind was
 * dropped is answered but not kept: it may hold what the drop removed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/creds.h"
#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "index.h"
#include "metrics/metrics.h"
#include "store/pool.h"

#define INDEX_USERS	65536	/* entries, each a few hundred bytes */
#define INDEX_CREDS	16384
#define KEY_MAX		(ACCOUNT_MAX + 80)

struct portal_index {
	struct store_pool	*pool;
	struct lru		*users;
	struct auth_creds	*creds;
	struct lru		*photos;
	/* bumped by every drop, to keep late fills out */
	uint64_t		 users_epoch, photos_epoch;
	struct metrics_series	*photo_hit, *photo_miss;
	struct metrics_series	*user_hit, *user_miss;
};

/* A user, or the knowledge that there is none. */
struct user_entry {
	bool			found;
	struct store_user	u;		/* pwhash always NULL */
};

struct portal_index *
index_new(struct store_pool *pool)
{
	struct portal_index *x = xcalloc(1, sizeof(*x));

	x->pool = pool;
	x->users = lru_new(INDEX_USERS * sizeof(struct user_entry), free);
	x->creds = auth_creds_new(INDEX_CREDS, sizeof(struct index_cred),
	    NULL);
	x->photos = lru_new(INDEX_PHOTO_BYTES, cached_photo_unref);
	x->photo_hit = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"photos\",result=\"hit\"");
	x->photo_miss = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"photos\",result=\"miss\"");
	x->user_hit = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"users\",result=\"hit\"");
	x->user_miss = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"users\",result=\"miss\"");
	return x;
}

void
index_free(struct portal_index *x)
{
	if (x == NULL)
		return;
	auth_creds_free(x->creds);
	lru_free(x->users);
	lru_free(x->photos);
	free(x);
}

void
index_clear(struct portal_index *x)
{
	auth_creds_clear(x->creds);
	lru_clear(x->users);
	lru_clear(x->photos);
	x->users_epoch++;
	x->photos_epoch++;
}

/* ---- dropping what changed ---- */

static void
drop_user_key(struct portal_index *x, char kind, const char *name)
{
	char key[KEY_MAX];

	snprintf(key, sizeof(key), "%c/%s", kind, name);
	str_lower(key);
	lru_remove(x->users, key);
}

static void
drop_user_email(struct portal_index *x, const char *email)
{
	char md5[33], sha256[65];

	account_email_hashes(email, md5, sha256);
	drop_user_key(x, 'e', email);
	drop_user_key(x, 'h', md5);
	drop_user_key(x, 'h', sha256);
}

static void
drop_user(struct portal_index *x, const char *account)
{
	char key[KEY_MAX], prefix[ACCOUNT_MAX];
	struct user_entry *e;

	snprintf(key, sizeof(key), "a/%s", account);
	str_lower(key);
	/* Its address's entries hold the same row. */
	if ((e = lru_get(x->users, key)) != NULL && e->found)
		drop_user_email(x, e->u.email);
	lru_remove(x->users, key);
	account_file_prefix(account, prefix);
	drop_user_key(x, 'p', prefix);
}

static void
photo_key(int64_t webapp, const char *account, enum store_thumb_size size,
    char *key, size_t n)
{
	char mid[4] = { '/', "SMLH"[size], '/', '\0' };
	size_t at;

	at = str_cat_int(key, n, 0, webapp);
	at = str_cat(key, n, at, mid);
	str_cat(key, n, at, account);
	str_lower(key);
}

void
index_photo_forget(struct portal_index *x, int64_t webapp,
    const char *account)
{
	char key[KEY_MAX];
	int s;

	for (s = STORE_S; s <= STORE_HR; s++) {
		photo_key(webapp, account, (enum store_thumb_size)s, key,
		    sizeof(key));
		lru_remove(x->photos, key);
	}
	x->photos_epoch++;
}

void
index_changed(struct portal_index *x, const struct store_change *c)
{
	char key[KEY_MAX];
	const char *slash;
	int64_t webapp;

	switch (c->kind) {
	case STORE_CHANGE_USER:
		auth_creds_drop(x->creds, c->key);
		drop_user(x, c->key);
		x->users_epoch++;
		break;
	case STORE_CHANGE_USER_EMAIL:
		drop_user_email(x, c->key);
		x->users_epoch++;
		break;
	case STORE_CHANGE_THUMB:
		/* "<webapp>/<account>" */
		if ((slash = strchr(c->key, '/')) == NULL)
			break;
		webapp = strtoll(c->key, NULL, 10);
		index_photo_forget(x, webapp, slash + 1);
		break;
	case STORE_CHANGE_SESSION:
		auth_creds_session_key(c->key, key);
		auth_creds_forget(x->creds, key);
		break;
	default:
		break;
	}
}

/* ---- users ---- */

static void
user_remember(struct portal_index *x, const char *key, ps_err rc,
    const struct store_user *u)
{
	struct user_entry *e = xcalloc(1, sizeof(*e));

	e->found = rc == PS_OK;
	if (e->found) {
		e->u = *u;
		e->u.pwhash = NULL;
	}
	lru_put(x->users, key, e, sizeof(*e));
}

/* A user lookup on the read lane. */
struct user_fill {
	struct portal_index	*x;
	enum index_by		 by;
	char			 key[KEY_MAX];
	const char		*name;		/* into key, after "x/" */
	bool			 is_email;
	uint64_t		 epoch;
	index_user_fn		 fn;
	void			*arg;
	struct store_user	 u;
	ps_err			 rc;
	char			 err[256];
};

static void
user_fill_run(struct store *st, void *arg)
{
	struct user_fill *f = arg;

	switch (f->by) {
	case INDEX_BY_NAME:
		f->rc = f->is_email ? store_user_get_by_email(st, f->name,
		    &f->u) : store_user_get(st, f->name, &f->u);
		break;
	case INDEX_BY_PREFIX:
		f->rc = store_user_get_by_prefix(st, f->name, &f->u);
		break;
	case INDEX_BY_HASH:
		f->rc = store_user_get_by_hash(st, f->name, &f->u);
		break;
	}
	if (f->u.pwhash) {
		xfree_secret(f->u.pwhash, strlen(f->u.pwhash));
		f->u.pwhash = NULL;
	}
	if (f->rc != PS_OK && f->rc != PS_ENOTFOUND)
		str_copy(f->err, ps_errmsg(), sizeof(f->err));
}

static void
user_fill_done(void *arg)
{
	struct user_fill *f = arg;
	struct portal_index *x = f->x;

	if ((f->rc == PS_OK || f->rc == PS_ENOTFOUND) &&
	    f->epoch == x->users_epoch)
		user_remember(x, f->key, f->rc, &f->u);
	if (f->rc == PS_OK)
		f->fn(f->arg, PS_OK, &f->u);
	else {
		if (f->rc != PS_ENOTFOUND)
			ps_errf(f->rc, "%s", f->err);
		f->fn(f->arg, f->rc, NULL);
	}
	free(f);
}

void
index_user(struct portal_index *x, enum index_by by, const char *name,
    index_user_fn fn, void *arg)
{
	struct user_fill *f = xcalloc(1, sizeof(*f));
	struct user_entry *e;
	char norm[ACCOUNT_MAX];
	ps_err rc;
	size_t i;

	f->x = x;
	f->by = by;
	f->fn = fn;
	f->arg = arg;
	switch (by) {
	case INDEX_BY_NAME:
		if ((rc = account_parse(name, norm, &f->is_email)) != PS_OK)
			goto refuse;
		f->key[0] = f->is_email ? 'e' : 'a';
		f->key[1] = '/';
		str_cat(f->key, sizeof(f->key), 2, norm);
		break;
	case INDEX_BY_PREFIX:
		snprintf(f->key, sizeof(f->key), "p/%s", name);
		break;
	case INDEX_BY_HASH:
		for (i = 0; name[i]; i++)
			if (hex_digit((unsigned char)name[i]) < 0)
				break;
		if (name[i] != '\0' || (i != 32 && i != 64)) {
			rc = ps_errf(PS_EINVAL, "not an MD5 or SHA-256 hex "
			    "digest");
			goto refuse;
		}
		snprintf(f->key, sizeof(f->key), "h/%s", name);
		break;
	}
	str_lower(f->key);
	f->name = f->key + 2;
	if ((e = lru_get(x->users, f->key)) != NULL) {
		metrics_series_add(x->user_hit, 1);
		if (e->found)
			fn(arg, PS_OK, &e->u);
		else
			fn(arg, PS_ENOTFOUND, NULL);
		free(f);
		return;
	}
	metrics_series_add(x->user_miss, 1);
	f->epoch = x->users_epoch;
	if ((rc = store_pool_read(x->pool, user_fill_run, user_fill_done,
	    f)) == PS_OK)
		return;
refuse:
	free(f);
	fn(arg, rc, NULL);
}

/* ---- credentials ---- */

struct auth_creds *
index_creds(struct portal_index *x)
{
	return x->creds;
}

/* ---- photos ---- */

void
cached_photo_unref(void *p)
{
	struct cached_photo *ph = p;

	if (ph && --ph->refs == 0) {
		free(ph->data);
		free(ph);
	}
}

/* A photo read on the read lane. */
struct photo_fill {
	struct portal_index	*x;
	char			 key[KEY_MAX];
	int64_t			 webapp;
	char			 account[ACCOUNT_MAX];
	enum store_thumb_size	 size;
	uint64_t		 epoch;
	index_photo_fn		 fn;
	void			*arg;
	struct store_thumb	 t;
	ps_err			 rc;
	char			 err[256];
};

static void
photo_fill_run(struct store *st, void *arg)
{
	struct photo_fill *f = arg;

	f->rc = store_thumb_get(st, f->webapp, f->account, f->size, &f->t);
	if (f->rc != PS_OK && f->rc != PS_ENOTFOUND)
		str_copy(f->err, ps_errmsg(), sizeof(f->err));
}

static void
photo_fill_done(void *arg)
{
	struct photo_fill *f = arg;
	struct portal_index *x = f->x;
	struct cached_photo *ph = NULL;

	if (f->rc == PS_OK || f->rc == PS_ENOTFOUND) {
		ph = xcalloc(1, sizeof(*ph));
		ph->refs = 1;		/* the caller's */
		if (f->rc == PS_OK) {
			str_copy(ph->etag, f->t.etag, sizeof(ph->etag));
			str_copy(ph->source, f->t.source, sizeof(ph->source));
			ph->data = f->t.data;	/* taken */
			ph->len = f->t.len;
			ph->hidden = f->t.hidden;
			f->t.data = NULL;
		}
		if (f->epoch == x->photos_epoch) {
			ph->refs++;	/* and the index's */
			lru_put(x->photos, f->key, ph, ph->len + sizeof(*ph));
		}
	} else {
		ps_errf(f->rc, "%s", f->err);
	}
	store_thumb_cleanup(&f->t);
	f->fn(f->arg, ph ? PS_OK : f->rc, ph);
	free(f);
}

void
index_photo(struct portal_index *x, int64_t webapp, const char *account,
    enum store_thumb_size size, index_photo_fn fn, void *arg)
{
	char key[KEY_MAX];
	struct cached_photo *ph;
	struct photo_fill *f;
	ps_err rc;

	photo_key(webapp, account, size, key, sizeof(key));
	if ((ph = lru_get(x->photos, key)) != NULL) {
		metrics_series_add(x->photo_hit, 1);
		ph->refs++;
		fn(arg, PS_OK, ph);
		return;
	}
	metrics_series_add(x->photo_miss, 1);
	f = xcalloc(1, sizeof(*f));
	f->x = x;
	str_copy(f->key, key, sizeof(f->key));
	f->webapp = webapp;
	str_copy(f->account, account, sizeof(f->account));
	f->size = size;
	f->epoch = x->photos_epoch;
	f->fn = fn;
	f->arg = arg;
	if ((rc = store_pool_read(x->pool, photo_fill_run, photo_fill_done,
	    f)) != PS_OK) {
		free(f);
		fn(arg, rc, NULL);
	}
}
