/*
 * The mailboxes in memory for ResolveNames (people.h): the beginnings
 * a query can match, lower-cased and sorted, each naming its mailbox.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "people.h"

enum key_kind {
	KEY_EMAIL,	/* the address: whole up to its end or "@" */
	KEY_NAME,	/* the name: whole up to its end */
	KEY_WORD,	/* a word of the name: whole up to a word's end */
};

struct person {
	char	*email, *name;		/* as given */
	char	*lemail, *lname;	/* ASCII lower case, for the keys */
};

struct key {
	const char	*text;		/* in its person's lemail or lname */
	uint32_t	 person;
	uint8_t		 kind;
};

struct people_index {
	struct person	*v;
	size_t		 n, cap;
	struct key	*keys;
	size_t		 nkeys, keycap;
	uint64_t	 generation;
};

/* Where a word ends, as ews_resolve_match() reads names. */
static bool
word_end(char c)
{
	return c == '\0' || c == ' ' || c == '.' || c == ',' || c == '-';
}

/* ASCII lower case (other bytes as they are), as prefix_ci compares. */
static char *
ascii_lower(const char *s)
{
	char *l = xstrdup(s), *p;

	for (p = l; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return l;
}

struct people_index *
people_index_new(void)
{
	return xcalloc(1, sizeof(struct people_index));
}

void
people_index_free(struct people_index *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	for (i = 0; i < ix->n; i++) {
		free(ix->v[i].email);
		free(ix->v[i].name);
		free(ix->v[i].lemail);
		free(ix->v[i].lname);
	}
	free(ix->v);
	free(ix->keys);
	free(ix);
}

void
people_index_add(struct people_index *ix, const char *email,
    const char *name)
{
	struct person *p;

	if (ix->n == ix->cap) {
		ix->cap = ix->cap ? 2 * ix->cap : 256;
		ix->v = xrealloc(ix->v, ix->cap * sizeof(*ix->v));
	}
	p = &ix->v[ix->n++];
	p->email = xstrdup(email);
	p->name = xstrdup(name ? name : "");
	p->lemail = ascii_lower(p->email);
	p->lname = ascii_lower(p->name);
}

/* The order of an answer: name (or address), then address. */
static int
person_cmp(const void *a, const void *b)
{
	const struct person *x = a, *y = b;
	int d = strcasecmp(x->name[0] ? x->name : x->email,
	    y->name[0] ? y->name : y->email);

	return d ? d : strcmp(x->email, y->email);
}

static int
key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	int d = strcmp(x->text, y->text);

	if (d)
		return d;
	return x->person < y->person ? -1 : x->person > y->person;
}

static void
key_add(struct people_index *ix, const char *text, size_t person,
    enum key_kind kind)
{
	if (ix->nkeys == ix->keycap) {
		ix->keycap = ix->keycap ? 2 * ix->keycap : 1024;
		ix->keys = xrealloc(ix->keys, ix->keycap * sizeof(*ix->keys));
	}
	ix->keys[ix->nkeys].text = text;
	ix->keys[ix->nkeys].person = (uint32_t)person;
	ix->keys[ix->nkeys++].kind = (uint8_t)kind;
}

void
people_index_seal(struct people_index *ix)
{
	const char *c;
	size_t i;

	/* A person's place in the answer's order is its number. */
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), person_cmp);
	for (i = 0; i < ix->n; i++) {
		key_add(ix, ix->v[i].lemail, i, KEY_EMAIL);
		if (ix->v[i].lname[0] == '\0')
			continue;
		key_add(ix, ix->v[i].lname, i, KEY_NAME);
		/* Each word: after a space, a dot, a comma or a dash. */
		for (c = ix->v[i].lname; *c; c++)
			if (word_end(*c) && c[1] != '\0')
				key_add(ix, c + 1, i, KEY_WORD);
	}
	if (ix->nkeys > 1)
		qsort(ix->keys, ix->nkeys, sizeof(*ix->keys), key_cmp);
}

size_t
people_index_count(const struct people_index *ix)
{
	return ix->n;
}

void
people_index_set_generation(struct people_index *ix, uint64_t g)
{
	ix->generation = g;
}

uint64_t
people_index_generation(const struct people_index *ix)
{
	return ix->generation;
}

/* The first key not below `text` (lower bound). */
static size_t
lower_bound(const struct people_index *ix, const char *text)
{
	size_t lo = 0, hi = ix->nkeys, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(ix->keys[mid].text, text) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Whether key `k`, which begins with a query of `len` bytes, matches. */
static bool
key_whole(const struct key *k, size_t len, bool exact)
{
	char next = k->text[len];

	if (!exact)
		return true;
	switch (k->kind) {
	case KEY_EMAIL:
		return next == '\0' || next == '@';
	case KEY_NAME:
		return next == '\0';
	default:
		return word_end(next);
	}
}

static int
number_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

size_t
people_index_find(const struct people_index *ix, const char *query,
    bool exact, struct people_hit *out, size_t max, bool *more)
{
	char *q;
	size_t len, i, n = 0, cap = 0, found = 0;
	uint32_t *hits = NULL;

	*more = false;
	if (query == NULL || *query == '\0')
		return 0;
	q = ascii_lower(query);
	len = strlen(q);
	i = lower_bound(ix, q);
	/* An address that is a mailbox's: that one alone. */
	if (email_valid(query)) {
		size_t j;

		for (j = i; j < ix->nkeys && strcmp(ix->keys[j].text, q) == 0;
		    j++) {
			if (ix->keys[j].kind != KEY_EMAIL)
				continue;
			if (max > 0) {
				out[0].email = ix->v[ix->keys[j].person].email;
				out[0].name = ix->v[ix->keys[j].person].name;
			}
			*more = max == 0;
			free(q);
			return max > 0;
		}
	}
	for (; i < ix->nkeys && strncmp(ix->keys[i].text, q, len) == 0; i++) {
		if (!key_whole(&ix->keys[i], len, exact))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			hits = xrealloc(hits, cap * sizeof(*hits));
		}
		hits[n++] = ix->keys[i].person;
	}
	free(q);
	/* A person found by several keys once; in the answer's order. */
	if (n > 1)
		qsort(hits, n, sizeof(*hits), number_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && hits[i] == hits[i - 1])
			continue;
		if (found == max) {
			*more = true;
			break;
		}
		out[found].email = ix->v[hits[i]].email;
		out[found++].name = ix->v[hits[i]].name;
	}
	free(hits);
	return found;
}
