/*
 * The serving path's in-memory index (see index.h), built on lru.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth/auth.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "index.h"
#include "metrics/metrics.h"
#include "common/lru.h"

#define INDEX_USERS	65536	/* entries, each a few hundred bytes */
#define INDEX_CREDS	16384

struct portal_index {
	struct lru	*users;
	struct lru	*creds;
	struct lru	*photos;
};

/* A user, or the knowledge that there is none. */
struct user_entry {
	bool			found;
	struct store_user	u;	/* pwhash always NULL */
};

struct cred_entry {
	struct store_user	u;
	char			csrf[65];
	int64_t			verified;
};

static void
free_user(void *p)
{
	free(p);
}

struct portal_index *
index_new(void)
{
	struct portal_index *x = xcalloc(1, sizeof(*x));

	x->users = lru_new(INDEX_USERS * sizeof(struct user_entry), free_user);
	x->creds = lru_new(INDEX_CREDS * sizeof(struct cred_entry), free_user);
	x->photos = lru_new(INDEX_PHOTO_BYTES, cached_photo_unref);
	return x;
}

void
index_free(struct portal_index *x)
{
	if (x == NULL)
		return;
	lru_free(x->users);
	lru_free(x->creds);
	lru_free(x->photos);
	free(x);
}

void
index_clear(struct portal_index *x)
{
	lru_clear(x->users);
	lru_clear(x->creds);
	lru_clear(x->photos);
}

/* ---- users ---- */

static ps_err
user_cached(struct portal_index *x, const char *key, struct store_user *out)
{
	struct user_entry *e = lru_get(x->users, key);

	if (e == NULL)
		return PS_EAUTH;	/* not cached */
	if (!e->found)
		return ps_errf(PS_ENOTFOUND, "no such user");
	*out = e->u;
	return PS_OK;
}

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

ps_err
index_user(struct portal_index *x, struct store *st, const char *name,
    struct store_user *out)
{
	char account[ACCOUNT_MAX], key[ACCOUNT_MAX + 4];
	bool is_email;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = account_parse(name, account, &is_email)) != PS_OK)
		return rc;
	snprintf(key, sizeof(key), "%c/%s", is_email ? 'e' : 'a', account);
	if ((rc = user_cached(x, key, out)) != PS_EAUTH)
		return rc;
	rc = is_email ? store_user_get_by_email(st, account, out) :
	    store_user_get(st, account, out);
	if (rc == PS_OK || rc == PS_ENOTFOUND)
		user_remember(x, key, rc, out);
	if (out->pwhash) {
		xfree_secret(out->pwhash, strlen(out->pwhash));
		out->pwhash = NULL;
	}
	return rc;
}

ps_err
index_user_by_prefix(struct portal_index *x, struct store *st,
    const char *prefix, struct store_user *out)
{
	char key[ACCOUNT_MAX + 4];
	ps_err rc;

	memset(out, 0, sizeof(*out));
	snprintf(key, sizeof(key), "p/%s", prefix);
	if ((rc = user_cached(x, key, out)) != PS_EAUTH)
		return rc;
	rc = store_user_get_by_prefix(st, prefix, out);
	if (rc == PS_OK || rc == PS_ENOTFOUND)
		user_remember(x, key, rc, out);
	if (out->pwhash) {
		xfree_secret(out->pwhash, strlen(out->pwhash));
		out->pwhash = NULL;
	}
	return rc;
}

/* ---- credentials ---- */

static void
cred_key(int64_t webapp, const char *secret, char *key, size_t n)
{
	char fp[33];

	auth_fingerprint(secret, fp);
	snprintf(key, n, "%" PRId64 "/%s", webapp, fp);
}

bool
index_cred_get(struct portal_index *x, int64_t webapp, const char *secret,
    struct store_user *out, char csrf[65])
{
	char key[64];
	struct cred_entry *e;
	int64_t now = time_now();

	cred_key(webapp, secret, key, sizeof(key));
	if ((e = lru_get(x->creds, key)) == NULL)
		return false;
	if (now - e->verified >= INDEX_CRED_TTL || now < e->verified) {
		lru_remove(x->creds, key);
		return false;
	}
	*out = e->u;
	if (csrf)
		str_copy(csrf, e->csrf, 65);
	return true;
}

void
index_cred_put(struct portal_index *x, int64_t webapp, const char *secret,
    const struct store_user *u, const char *csrf)
{
	struct cred_entry *e = xcalloc(1, sizeof(*e));
	char key[64];

	e->u = *u;
	e->u.pwhash = NULL;
	str_copy(e->csrf, csrf ? csrf : "", sizeof(e->csrf));
	e->verified = time_now();
	cred_key(webapp, secret, key, sizeof(key));
	lru_put(x->creds, key, e, sizeof(*e));
}

void
index_cred_forget(struct portal_index *x, int64_t webapp,
    const char *secret)
{
	char key[64];

	cred_key(webapp, secret, key, sizeof(key));
	lru_remove(x->creds, key);
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

static void
photo_key(int64_t webapp, const char *account, enum store_thumb_size size,
    char *key, size_t n)
{
	snprintf(key, n, "%" PRId64 "/%c/%s", webapp, "SMLH"[size], account);
}

struct cached_photo *
index_photo(struct portal_index *x, struct store *st, int64_t webapp,
    const char *account, enum store_thumb_size size)
{
	char key[ACCOUNT_MAX + 32];
	struct cached_photo *ph;
	struct store_thumb t = { 0 };
	ps_err rc;

	photo_key(webapp, account, size, key, sizeof(key));
	if ((ph = lru_get(x->photos, key)) != NULL) {
		metrics_add("photosync_cache_lookups_total",
		    "cache=\"photos\",result=\"hit\"", 1);
		ph->refs++;
		return ph;
	}
	metrics_add("photosync_cache_lookups_total",
	    "cache=\"photos\",result=\"miss\"", 1);
	rc = store_thumb_get(st, webapp, account, size, &t);
	if (rc != PS_OK && rc != PS_ENOTFOUND)
		return NULL;
	ph = xcalloc(1, sizeof(*ph));
	ph->refs = 2;		/* the index's and the caller's */
	if (rc == PS_OK) {
		str_copy(ph->etag, t.etag, sizeof(ph->etag));
		str_copy(ph->source, t.source, sizeof(ph->source));
		ph->data = t.data;	/* taken */
		ph->len = t.len;
		t.data = NULL;
	}
	store_thumb_cleanup(&t);
	lru_put(x->photos, key, ph, ph->len + sizeof(*ph));
	return ph;
}

void
index_photo_forget(struct portal_index *x, int64_t webapp,
    const char *account)
{
	char key[ACCOUNT_MAX + 32];
	int s;

	for (s = STORE_S; s <= STORE_HR; s++) {
		photo_key(webapp, account, (enum store_thumb_size)s, key,
		    sizeof(key));
		lru_remove(x->photos, key);
	}
}
