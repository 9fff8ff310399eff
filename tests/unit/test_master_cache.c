/*
 * The master server's in-memory index (master/cache.c): photos and
 * verified credentials dropped by address, never whole; a read that a
 * change overtook is answered but not kept; forgetting which addresses
 * changed never lets a stale photo through. (The credentials' own
 * rules are auth/creds.h's: test_signin.c.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/creds.h"
#include "common/xalloc.h"
#include "master/master_int.h"
#include "t.h"

#define CHANGED_KEPT	65536	/* cache.c's CACHE_CHANGED */

static struct store_photo
photo(const char *etag, size_t len)
{
	struct store_photo sp = { 0 };

	snprintf(sp.etag, sizeof(sp.etag), "%s", etag);
	sp.side = 96;
	sp.len = len;
	sp.data = xmalloc(len);
	memset(sp.data, 'j', len);
	return sp;
}

/* A hit's etag ("" for "no photo"), or NULL on a miss. */
static const char *
lookup(struct master_cache *c, const char *email, int code, char *etag)
{
	struct master_cached *ph = master_cache_photo(c, email, code);

	if (ph == NULL)
		return NULL;
	snprintf(etag, 64, "%s", ph->data ? ph->etag : "");
	master_cached_unref(ph);
	return etag;
}

static void
test_photos(void)
{
	struct master_cache *c = master_cache_new();
	struct master_cached *ph;
	struct store_photo sp;
	char etag[64];
	uint64_t stamp;
	int code;

	ok(lookup(c, "a@contoso.com", 2, etag) == NULL, "an empty index misses");
	stamp = master_cache_stamp(c);
	sp = photo("e1", 100);
	ph = master_cache_photo_put(c, "a@contoso.com", 2, stamp, &sp);
	ok(ph && ph->data && ph->len == 100 && sp.data == NULL,
	    "a read photo is answered, its bytes taken");
	master_cached_unref(ph);
	is_str(lookup(c, "A@Contoso.com", 2, etag), "e1",
	    "then found, whatever the address's case");
	ph = master_cache_photo_put(c, "b@contoso.com", 2, stamp, NULL);
	ok(ph && ph->data == NULL, "\"no photo\" is answered");
	master_cached_unref(ph);
	is_str(lookup(c, "b@contoso.com", 2, etag), "",
	    "and remembered as well");
	for (code = 0; code < 4; code++) {
		sp = photo("e2", 10);
		master_cached_unref(master_cache_photo_put(c, "a@contoso.com",
		    code, master_cache_stamp(c), &sp));
	}
	master_cache_drop(c, "A@contoso.com");
	for (code = 0; code < 4; code++)
		ok(lookup(c, "a@contoso.com", code, etag) == NULL,
		    "a dropped address's sizes are all gone");
	is_str(lookup(c, "b@contoso.com", 2, etag), "",
	    "another address's entry stays");

	/* A read that began before the change landed. */
	stamp = master_cache_stamp(c);
	master_cache_drop(c, "b@contoso.com");
	sp = photo("old", 10);
	ph = master_cache_photo_put(c, "b@contoso.com", 2, stamp, &sp);
	ok(ph && ph->data, "a read overtaken by a change is still answered");
	master_cached_unref(ph);
	ok(lookup(c, "b@contoso.com", 2, etag) == NULL,
	    "but not kept: the next request reads again");
	sp = photo("new", 10);
	master_cached_unref(master_cache_photo_put(c, "b@contoso.com", 2,
	    master_cache_stamp(c), &sp));
	is_str(lookup(c, "b@contoso.com", 2, etag), "new",
	    "a read after the change is kept");
	master_cache_drop_all(c);
	ok(lookup(c, "b@contoso.com", 2, etag) == NULL,
	    "drop_all empties the index");
	master_cache_free(c);
}

/* The photo's tag: enough for a 304, dropped with its address. */
static void
test_tags(void)
{
	struct master_cache *c = master_cache_new();
	struct master_tag t = { .has_photo = true, .updated = 7 };
	struct store_photo sp = photo("e1", 100);
	const struct master_tag *got;
	uint64_t stamp;

	ok(master_cache_tag(c, "a@contoso.com") == NULL, "no tag at first");
	master_cached_unref(master_cache_photo_put(c, "A@contoso.com", 3,
	    master_cache_stamp(c), &sp));
	got = master_cache_tag(c, "a@CONTOSO.com");
	ok(got && got->has_photo && strcmp(got->etag, "e1") == 0,
	    "a photo read for the index leaves its tag, for any case");
	master_cache_drop(c, "a@contoso.com");
	ok(master_cache_tag(c, "a@contoso.com") == NULL,
	    "dropped with its address");
	stamp = master_cache_stamp(c);
	snprintf(t.etag, sizeof(t.etag), "e2");
	master_cache_drop(c, "a@contoso.com");
	master_cache_tag_put(c, "a@contoso.com", stamp, &t);
	ok(master_cache_tag(c, "a@contoso.com") == NULL,
	    "a tag read before a change is not kept");
	master_cache_tag_put(c, "a@contoso.com", master_cache_stamp(c), &t);
	got = master_cache_tag(c, "a@contoso.com");
	ok(got && strcmp(got->etag, "e2") == 0 && got->updated == 7,
	    "one read after it is");
	master_cache_drop_all(c);
	ok(master_cache_tag(c, "a@contoso.com") == NULL,
	    "all tags go when everything does");
	master_cache_free(c);
}

/* A hidden photo: the mark kept with the photo and its tag; who sees it. */
static void
test_hidden(void)
{
	struct master_cache *c = master_cache_new();
	struct store_photo sp = photo("e1", 100);
	struct master_cached *ph;
	const struct master_tag *got;

	sp.hidden = true;
	master_cached_unref(master_cache_photo_put(c, "h@contoso.com", 2,
	    master_cache_stamp(c), &sp));
	ph = master_cache_photo(c, "h@contoso.com", 2);
	ok(ph && ph->hidden && ph->data, "a hidden photo is kept marked, "
	    "with its bytes (for its owner)");
	master_cached_unref(ph);
	got = master_cache_tag(c, "h@contoso.com");
	ok(got && got->has_photo && got->hidden, "and so is its tag");
	ok(!master_photo_hidden_from(true, "h@contoso.com", "h@contoso.com") &&
	    !master_photo_hidden_from(true, "H@Contoso.COM", "h@contoso.com"),
	    "its owner sees it, in any case");
	ok(master_photo_hidden_from(true, "x@contoso.com", "h@contoso.com"),
	    "another mailbox does not");
	ok(master_photo_hidden_from(true, "", "h@contoso.com"),
	    "nor a partner's app-only token (nobody)");
	ok(!master_photo_hidden_from(false, "", "h@contoso.com"),
	    "a photo not hidden is everyone's");
	master_cache_free(c);
}

/*
 * A photo read, then its mailbox changed, then so many other addresses
 * changed that the first change is forgotten: what was read must still
 * count as stale.
 */
static void
test_forgotten_change(void)
{
	struct master_cache *c = master_cache_new();
	struct master_cached *ph;
	struct store_photo sp;
	char etag[64], addr[64];
	uint64_t stamp = master_cache_stamp(c);
	int i;

	master_cache_drop(c, "x0@contoso.com");
	for (i = 1; i <= CHANGED_KEPT; i++) {
		snprintf(addr, sizeof(addr), "x%d@contoso.com", i);
		master_cache_drop(c, addr);
	}
	sp = photo("old", 10);
	ph = master_cache_photo_put(c, "x0@contoso.com", 2, stamp, &sp);
	master_cached_unref(ph);
	ok(lookup(c, "x0@contoso.com", 2, etag) == NULL, "a change forgotten "
	    "for room still keeps out what was read before it");
	sp = photo("new", 10);
	ph = master_cache_photo_put(c, "x0@contoso.com", 2,
	    master_cache_stamp(c), &sp);
	master_cached_unref(ph);
	ok(lookup(c, "x0@contoso.com", 2, etag) != NULL,
	    "and what is read after it is kept");
	master_cache_free(c);
}

/* The master's drops reach its verified credentials (auth/creds.h). */
static void
test_creds(void)
{
	struct master_cache *c = master_cache_new();
	struct auth_creds *cr = master_cache_creds(c);
	char k1[AUTH_CREDS_KEY_MAX], k2[AUTH_CREDS_KEY_MAX];
	char e1[MASTER_CRED_DATA] = "test1@contoso.com";
	char e2[MASTER_CRED_DATA] = "test2@contoso.com";

	auth_creds_basic_key("Basic dGVzdDE6cHc=", 0, k1);
	auth_creds_basic_key("Basic dGVzdDI6cHc=", 0, k2);
	auth_creds_put(cr, k1, e1, auth_creds_stamp(cr), e1);
	auth_creds_put(cr, k2, e2, auth_creds_stamp(cr), e2);
	ok(auth_creds_get(cr, k1) && auth_creds_get(cr, k2),
	    "verified headers are found");
	master_cache_drop(c, "TEST1@contoso.com");
	ok(auth_creds_get(cr, k1) == NULL, "a change to the mailbox ends "
	    "its headers");
	ok(auth_creds_get(cr, k2) != NULL, "another mailbox's header stays");
	master_cache_drop_all(c);
	ok(auth_creds_get(cr, k2) == NULL, "a lost feed ends them all");
	master_cache_free(c);
}

int
main(void)
{
	if (auth_init() != PS_OK)
		return 1;
	test_photos();
	test_tags();
	test_hidden();
	test_forgotten_change();
	test_creds();
	return done();
}
