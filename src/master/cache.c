/*
 * The master server's in-memory index: photos by address and size code
 * as shared immutable buffers (sent without a copy), and Basic
 * credentials already verified, by a keyed digest of the header. A
 * repeated photo request then costs no store query and no copy.
 *
 * Dropped whole whenever the store changed under it: another process
 * (admin commands) moves the store's data version; this process's own
 * photo changes (the change-photo page) bump ms->photo_generation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "master_int.h"
#include "metrics/metrics.h"

#define CACHE_PHOTO_BYTES	(64u * 1024 * 1024)
#define CACHE_CREDS		16384
#define CACHE_CRED_TTL		300	/* seconds, as auth.h's cache */

struct master_cache {
	struct lru	*photos;
	struct lru	*creds;
	int64_t		 version;
	uint64_t	 generation;
};

struct cred {
	char	email[256];
	int64_t	verified;
};

void
master_cached_unref(void *p)
{
	struct master_cached *ph = p;

	if (ph && --ph->refs == 0) {
		free(ph->data);
		free(ph);
	}
}

struct master_cache *
master_cache_new(void)
{
	struct master_cache *c = xcalloc(1, sizeof(*c));

	c->photos = lru_new(CACHE_PHOTO_BYTES, master_cached_unref);
	c->creds = lru_new(CACHE_CREDS * sizeof(struct cred), free);
	c->version = -1;
	return c;
}

void
master_cache_free(struct master_cache *c)
{
	if (c == NULL)
		return;
	lru_free(c->photos);
	lru_free(c->creds);
	free(c);
}

void
master_cache_check(struct master_cache *c, struct master_state *ms)
{
	int64_t v = store_data_version(ms->store);

	if (v == c->version && ms->photo_generation == c->generation)
		return;
	lru_clear(c->photos);
	lru_clear(c->creds);
	c->version = v;
	c->generation = ms->photo_generation;
}

bool
master_cache_cred(struct master_cache *c, const char *header,
    char email[256])
{
	struct cred *e;
	char fp[33];
	int64_t now = time_now();

	auth_fingerprint(header, fp);
	if ((e = lru_get(c->creds, fp)) == NULL)
		return false;
	if (now - e->verified >= CACHE_CRED_TTL || now < e->verified) {
		lru_remove(c->creds, fp);
		return false;
	}
	str_copy(email, e->email, 256);
	return true;
}

void
master_cache_cred_put(struct master_cache *c, const char *header,
    const char *email)
{
	struct cred *e = xcalloc(1, sizeof(*e));
	char fp[33];

	auth_fingerprint(header, fp);
	str_copy(e->email, email, sizeof(e->email));
	e->verified = time_now();
	lru_put(c->creds, fp, e, sizeof(*e));
}

struct master_cached *
master_cache_photo(struct master_cache *c, struct store *st,
    const char *email, int code, ps_err *rc)
{
	struct store_photo sp = { 0 };
	struct master_cached *ph;
	char key[300];

	snprintf(key, sizeof(key), "%d/%s", code, email);
	str_lower(key);
	metrics_add("photosync_cache_lookups_total", (ph = lru_get(c->photos,
	    key)) ? "cache=\"photos\",result=\"hit\"" :
	    "cache=\"photos\",result=\"miss\"", 1);
	if (ph == NULL) {
		*rc = store_photo_get(st, email, code, &sp);
		if (*rc != PS_OK && *rc != PS_ENOTFOUND)
			return NULL;
		/* "No photo" is remembered as well. */
		ph = xcalloc(1, sizeof(*ph));
		ph->refs = 1;
		if (*rc == PS_OK) {
			str_copy(ph->etag, sp.etag, sizeof(ph->etag));
			ph->side = sp.side;
			ph->updated = sp.updated;
			ph->data = sp.data;	/* taken */
			ph->len = sp.len;
			sp.data = NULL;
		}
		store_photo_cleanup(&sp);
		lru_put(c->photos, key, ph, ph->len + sizeof(*ph));
	}
	if (ph->data == NULL) {
		*rc = ps_errf(PS_ENOTFOUND, "%s has no photo", email);
		return NULL;
	}
	*rc = PS_OK;
	ph->refs++;
	return ph;
}
