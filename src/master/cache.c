/*
 * The master server's in-memory index: photos by address and size code
 * as shared immutable buffers (sent without a copy), and Basic
 * credentials already verified, by a keyed digest of the header. A
 * repeated photo request then costs no store query and no copy.
 *
 * Entries are dropped by address, never whole: the server follows the
 * store's change feed (changes by other processes) and drops the keys of
 * its own changes itself. A photo is found by its keys and removed at
 * once. Credentials are keyed by the header, not by the address, so an
 * address's credentials are dropped in O(1) by remembering when it
 * changed: every drop advances a tick and records it for the address,
 * and a credential is good only when it was verified after its address
 * last changed. The addresses remembered are bounded; forgetting one
 * raises a floor below which every credential counts as stale, so
 * forgetting never lets a stale one through.
 *
 * A store read for the index runs off the loop, so a change may land
 * while it is in flight: the reader takes a stamp (the tick) before it
 * starts, and what it read is kept only when its address did not change
 * since. Loop thread only.
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
#define CACHE_CHANGED		65536	/* addresses whose change is known */
#define CACHE_TAGS		65536	/* addresses whose photo tag is known */

struct master_cache {
	struct lru	*photos;
	struct lru	*tags;		/* address -> struct master_tag */
	struct lru	*creds;
	struct lru	*changed;	/* address -> struct change */
	uint64_t	 tick;		/* advanced by every drop */
	uint64_t	 floor;		/* stamps below it are stale */
	bool		 quiet;		/* our own removal: no floor */
	struct metrics_series	*hit, *miss;
};

struct cred {
	char		 email[256];
	int64_t		 verified;
	uint64_t	 stamp;
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
	c->creds = lru_new(CACHE_CREDS * sizeof(struct cred), free);
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
	lru_free(c->creds);
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
	lru_clear(c->creds);
	c->quiet = true;
	lru_clear(c->changed);
	c->quiet = false;
	c->floor = ++c->tick;
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
	if (now - e->verified >= CACHE_CRED_TTL || now < e->verified ||
	    !unchanged_since(c, e->email, e->stamp)) {
		lru_remove(c->creds, fp);
		return false;
	}
	str_copy(email, e->email, 256);
	return true;
}

void
master_cache_cred_put(struct master_cache *c, const char *header,
    const char *email, uint64_t stamp)
{
	struct cred *e;
	char fp[33];

	/* The password or the mailbox changed while it was checked. */
	if (!unchanged_since(c, email, stamp))
		return;
	e = xcalloc(1, sizeof(*e));
	auth_fingerprint(header, fp);
	str_copy(e->email, email, sizeof(e->email));
	str_lower(e->email);
	e->verified = time_now();
	e->stamp = stamp;
	lru_put(c->creds, fp, e, sizeof(*e));
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
		sp->data = NULL;
		sp->len = 0;
	}
	/* Read before a change that has landed since: answer, don't keep. */
	if (unchanged_since(c, email, stamp)) {
		photo_key(email, code, key, sizeof(key));
		ph->refs++;
		lru_put(c->photos, key, ph, ph->len + sizeof(*ph));
		tag.has_photo = ph->data != NULL;
		str_copy(tag.etag, ph->etag, sizeof(tag.etag));
		tag.updated = ph->updated;
		master_cache_tag_put(c, email, stamp, &tag);
	}
	return ph;
}
