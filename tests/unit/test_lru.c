/*
 * Unit tests of the portal's LRU map: lookups, replacement, eviction of
 * the coldest under the byte budget, and that every value is released.
 */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "common/lru.h"
#include "t.h"

static int released;

static void
release(void *p)
{
	released++;
	free(p);
}

int
main(void)
{
	struct lru *l = lru_new(1000, release);
	char key[16];
	int i;

	lru_put(l, "a", xstrdup("A"), 100);
	lru_put(l, "b", xstrdup("B"), 100);
	is_str(lru_get(l, "a"), "A", "get a");
	ok(lru_get(l, "zz") == NULL, "absent key");
	lru_put(l, "a", xstrdup("A2"), 100);
	is_str(lru_get(l, "a"), "A2", "replaced");
	is_int(released, 1, "the replaced value was released");
	/* "b" is now the coldest; filling the budget evicts it first. */
	lru_get(l, "a");
	lru_put(l, "c", xstrdup("C"), 750);
	ok(lru_get(l, "b") == NULL, "the coldest was evicted");
	ok(lru_get(l, "a") != NULL && lru_get(l, "c") != NULL,
	    "the recently used stayed");
	lru_put(l, "huge", xstrdup("H"), 5000);
	ok(lru_get(l, "huge") != NULL, "a value over the budget is kept "
	    "alone");
	is_int(lru_count(l), 1, "everything else made room");
	for (i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		lru_put(l, key, xstrdup(key), 1);
	}
	ok(lru_bytes(l) <= 1000, "the budget holds after growth");
	ok(lru_get(l, "k499") != NULL, "the newest survives");
	lru_remove(l, "k499");
	ok(lru_get(l, "k499") == NULL, "removed");
	i = released;
	lru_clear(l);
	ok(lru_count(l) == 0 && released > i, "clear releases everything");
	lru_free(l);
	return done();
}
