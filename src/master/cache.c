/*
 * The master server's in-memory index: photos by address and size code
 * as shared immutable buffers (sent without a copy), their tags, and the
 * Basic credentials already verified (auth/creds.h, the portal's kind).
 * A repeated photo request then costs no store query and no copy.
 *
 * Entries are dropped by address, never whole: the server follows the
 * store's change feed (changes by other processes) and drops the keys of
 * its own changes itself. A photo is found by its keys and removed at
 * once; an address's credentials end with it. Every drop advances a tick
 * and records it for the address. The addresses remembered are bounded;
 * forgetting one raises a floor below which every stamp counts as stale,
 * so forgetting never lets a stale photo in.
 *
 * A store read for the index runs off the loop, so a change may land
 * while it is in flight: the reader takes a stamp (the tick) before it
 * starts, and what it read is kept only when its address did not change
 * since. Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/creds.h"
#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "master_int.h"
#include "metrics/metrics.h"

#define CACHE_PHOTO_BYTES	(64u * 1024 * 1024)
#define CACHE_CREDS		16384
#define CACHE_CHANGED		65536	/* addresses whose change is known */
#define CACHE_TAGS		65536	/* addresses whose photo tag is known */

struct master_cache {
	struct lru	*photos;
	struct lru	*tags;		/* address -> struct master_tag */
	struct auth_creds *creds;	/* data: the address, 256 bytes */
	struct lru	*changed;	/* address -> struct change */
	uint64_t	 tick;		/* advanced by every drop */
	uint64_t	 floor;		/* stamps below it are stale */
	bool		 quiet;		/* our own removal: no floor */
	struct metrics_series	*hit, *miss;
};

/* When an address last changed; its cache for the eviction hook. */
struct change {
	struct master_cache	*c;
	uint64_t		 tick;
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

bool
master_photo_hidden_from(bool hidden, const char *viewer, const char *owner)
{
	return hidden && (viewer[0] == '\0' || strcasecmp(viewer, owner) != 0);
}

/*
 * The map forgot an address (evicted as the least recently changed):
 * what was stamped before its change can no longer be told apart.
 */
static void
change_free(void *p)
{
	struct change *ch = p;

	if (!ch->c->quiet && ch->tick > ch->c->floor)
		ch->c->floor = ch->tick;
	free(ch);
}

struct master_cache *
master_cache_new(void)
{
	struct master_cache *c = xcalloc(1, sizeof(*c));

	c->photos = lru_new(CACHE_PHOTO_BYTES, master_cached_unref);
	c->tags = lru_new(CACHE_TAGS * sizeof(struct master_tag), free);
	c->creds = auth_creds_new(CACHE_CREDS, MASTER_CRED_DATA, NULL);
	c->changed = lru_new(CACHE_CHANGED * sizeof(struct change),
	    change_free);
	c->hit = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"photos\",result=\"hit\"");
	c->miss = metrics_counter("photosync_cache_lookups_total",
	    "cache=\"photos\",result=\"miss\"");
	return c;
}

void
master_cache_free(struct master_cache *c)
{
	if (c == NULL)
		return;
	lru_free(c->photos);
	lru_free(c->tags);
	auth_creds_free(c->creds);
	c->quiet = true;
	lru_free(c->changed);
	free(c);
}

uint64_t
master_cache_stamp(const struct master_cache *c)
{
	return c->tick;
}

static void
address_key(const char *email, char *out, size_t n)
{
	str_copy(out, email, n);
	str_lower(out);
}

/* True when nothing of `email` changed since `stamp` was taken. */
static bool
unchanged_since(struct master_cache *c, const char *email, uint64_t stamp)
{
	struct change *ch;
	char key[256];

	if (stamp < c->floor)
		return false;
	address_key(email, key, sizeof(key));
	ch = lru_get(c->changed, key);
	return ch == NULL || ch->tick <= stamp;
}

void
master_cache_drop(struct master_cache *c, const char *email)
{
	struct change *ch = xmalloc(sizeof(*ch));
	char addr[256], key[300];
	int code;

	address_key(email, addr, sizeof(addr));
	for (code = 0; code < EWS_SIZE_COUNT; code++) {
		snprintf(key, sizeof(key), "%d/%s", code, addr);
		lru_remove(c->photos, key);
	}
	lru_remove(c->tags, addr);
	auth_creds_drop(c->creds, addr);
	ch->c = c;
	ch->tick = ++c->tick;
	/* A replaced entry is ours; only an eviction raises the floor. */
	c->quiet = true;
	lru_remove(c->changed, addr);
	c->quiet = false;
	lru_put(c->changed, addr, ch, sizeof(*ch));
}

void
master_cache_drop_all(struct master_cache *c)
{
	lru_clear(c->photos);
	lru_clear(c->tags);
	auth_creds_clear(c->creds);
	c->quiet = true;
	lru_clear(c->changed);
	c->quiet = false;
	c->floor = ++c->tick;
}

struct auth_creds *
master_cache_creds(struct master_cache *c)
{
	return c->creds;
}

static void
photo_key(const char *email, int code, char *key, size_t n)
{
	snprintf(key, n, "%d/%s", code, email);
	str_lower(key);
}

struct master_cached *
master_cache_photo(struct master_cache *c, const char *email, int code)
{
	struct master_cached *ph;
	char key[300];

	photo_key(email, code, key, sizeof(key));
	if ((ph = lru_get(c->photos, key)) == NULL) {
		metrics_series_add(c->miss, 1);
		return NULL;
	}
	metrics_series_add(c->hit, 1);
	ph->refs++;
	return ph;
}

const struct master_tag *
master_cache_tag(struct master_cache *c, const char *email)
{
	char key[256];

	address_key(email, key, sizeof(key));
	return lru_get(c->tags, key);
}

void
master_cache_tag_put(struct master_cache *c, const char *email,
    uint64_t stamp, const struct master_tag *tag)
{
	struct master_tag *t;
	char key[256];

	if (!unchanged_since(c, email, stamp))
		return;
	t = xmalloc(sizeof(*t));
	*t = *tag;
	address_key(email, key, sizeof(key));
	lru_put(c->tags, key, t, sizeof(*t));
}

struct master_cached *
master_cache_photo_put(struct master_cache *c, const char *email, int code,
    uint64_t stamp, struct store_photo *sp)
{
	struct master_tag tag = { 0 };

	struct master_cached *ph = xcalloc(1, sizeof(*ph));
	char key[300];

	ph->refs = 1;
	if (sp) {
		str_copy(ph->etag, sp->etag, sizeof(ph->etag));
		ph->side = sp->side;
		ph->updated = sp->updated;
		ph->data = sp->data;	/* taken */
		ph->len = sp->len;
		ph->hidden = sp->hidden;
		sp->data = NULL;
		sp->len = 0;
	}
	/* Read before a change that has landed since: answer, don't keep. */
	if (unchanged_since(c, email, stamp)) {
		photo_key(email, code, key, sizeof(key));
		ph->refs++;
		lru_put(c->photos, key, ph, ph->len + sizeof(*ph));
		tag.has_photo = ph->data != NULL;
		tag.hidden = ph->hidden;
		str_copy(tag.etag, ph->etag, sizeof(tag.etag));
		tag.updated = ph->updated;
		master_cache_tag_put(c, email, stamp, &tag);
	}
	return ph;
}
