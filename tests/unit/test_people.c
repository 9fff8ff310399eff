/*
 * ResolveNames' index of the mailboxes (master/people.c): for thousands
 * of queries over a few thousand mailboxes (names with words, dots,
 * commas, dashes, mixed case, none at all), exactly the mailboxes that
 * a pass with ews_resolve_match() finds, in the same order, with the
 * same cap of 100 and the same "more"; an address that is a mailbox's
 * finds that one alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/str.h"
#include "exchange/ews.h"
#include "master/people.h"
#include "t.h"

#define N_PEOPLE	3000
#define MAX		100

struct mb {
	char	email[64];
	char	name[96];
};

static struct mb people[N_PEOPLE];

static const char *const firsts[] = { "Anna", "anne", "Bob", "Björn",
    "Jean-Luc", "O'Neil", "Zoë", "al", "ALICE", "Mary Ann", "" };
static const char *const lasts[] = { "Berg", "Bergman", "van der Berg",
    "Smith, Jr.", "St. John", "Lind-qvist", "berg", "" };

static int
mb_cmp(const void *a, const void *b)
{
	const struct mb *x = *(const struct mb *const *)a;
	const struct mb *y = *(const struct mb *const *)b;
	int d = strcasecmp(x->name[0] ? x->name : x->email,
	    y->name[0] ? y->name : y->email);

	return d ? d : strcmp(x->email, y->email);
}

/* What a pass over every mailbox answers (serve.c's way before). */
static size_t
brute(const char *q, bool exact, const struct mb **out, bool *more)
{
	static const struct mb *all[N_PEOPLE];
	size_t i, n = 0;

	*more = false;
	if (email_valid(q))
		for (i = 0; i < N_PEOPLE; i++)
			if (strcasecmp(people[i].email, q) == 0) {
				out[0] = &people[i];
				return 1;
			}
	for (i = 0; i < N_PEOPLE; i++)
		if (ews_resolve_match(q, exact, people[i].email,
		    people[i].name))
			all[n++] = &people[i];
	qsort(all, n, sizeof(*all), mb_cmp);
	if (n > MAX) {
		*more = true;
		n = MAX;
	}
	memcpy(out, all, n * sizeof(*out));
	return n;
}

/* Whether the index answers `q` as the pass does. */
static bool
same(const struct people_index *ix, const char *q, bool exact)
{
	const struct mb *want[MAX];
	struct people_hit got[MAX];
	bool more_want, more_got;
	size_t n_want, n_got, i;

	n_want = brute(q, exact, want, &more_want);
	n_got = people_index_find(ix, q, exact, got, MAX, &more_got);
	if (n_want != n_got || more_want != more_got) {
		printf("# %s%s: %zu%s, the index %zu%s\n", exact ? "=" : "", q,
		    n_want, more_want ? "+" : "", n_got, more_got ? "+" : "");
		return false;
	}
	for (i = 0; i < n_want; i++)
		if (strcmp(want[i]->email, got[i].email) != 0 ||
		    strcmp(want[i]->name, got[i].name) != 0) {
			printf("# %s: #%zu is %s, the index's %s\n", q, i,
			    want[i]->email, got[i].email);
			return false;
		}
	return true;
}

int
main(void)
{
	struct people_index *ix = people_index_new(), *empty;
	struct people_hit hit[MAX];
	size_t i, len, queries = 0, wrong = 0;
	char q[128];
	bool more;
	int e;

	srand(14);
	for (i = 0; i < N_PEOPLE; i++) {
		const char *f = firsts[rand() % (int)(sizeof(firsts) /
		    sizeof(*firsts))];
		const char *l = lasts[rand() % (int)(sizeof(lasts) /
		    sizeof(*lasts))];

		snprintf(people[i].email, sizeof(people[i].email),
		    "p%zu.%c@contoso.com", i, 'a' + (int)(i % 26));
		snprintf(people[i].name, sizeof(people[i].name), "%s%s%s%s",
		    f, *f && *l ? " " : "", l, i % 7 == 0 ? " 2nd" : "");
		people_index_add(ix, people[i].email, people[i].name);
	}
	people_index_seal(ix);
	ok(people_index_count(ix) == N_PEOPLE, "every mailbox is in it");

	/* Every prefix of every word of the names and of addresses. */
	for (i = 0; i < N_PEOPLE; i += 37) {
		const char *srcs[2] = { people[i].name, people[i].email };
		const char *w;

		for (e = 0; e < 2; e++)
			for (w = srcs[e]; *w; w++) {
				if (w != srcs[e] && w[-1] != ' ' &&
				    w[-1] != '.' && w[-1] != '-' &&
				    w[-1] != ',')
					continue;
				for (len = 1; len <= 8 && w[len - 1]; len++) {
					snprintf(q, sizeof(q), "%.*s",
					    (int)len, w);
					queries += 2;
					wrong += !same(ix, q, false);
					wrong += !same(ix, q, true);
				}
			}
		/* The whole address, and in other case. */
		queries += 2;
		wrong += !same(ix, people[i].email, false);
		memcpy(q, people[i].email, sizeof(people[i].email));
		q[0] = (char)(q[0] - 'a' + 'A');
		wrong += !same(ix, q, true);
	}
	/* Whole names, upper case, other bytes, nothing like it. */
	for (i = 0; i < sizeof(firsts) / sizeof(*firsts); i++) {
		size_t k;

		snprintf(q, sizeof(q), "%s", firsts[i]);
		for (k = 0; q[k]; k++)
			if (q[k] >= 'a' && q[k] <= 'z')
				q[k] = (char)(q[k] - 'a' + 'A');
		queries += 2;
		wrong += !same(ix, q, false);
		wrong += !same(ix, q, true);
	}
	{
		const char *odd[] = { "zzz", "berg ", " ", "-", ".", "2nd",
		    "van der", "smith, j", "nobody@contoso.com", "@",
		    "contoso", "p1", "P10.K@CONTOSO.COM", "bj\xc3\xb6" };

		for (i = 0; i < sizeof(odd) / sizeof(*odd); i++) {
			queries += 2;
			wrong += !same(ix, odd[i], false);
			wrong += !same(ix, odd[i], true);
		}
	}
	printf("# %zu queries\n", queries);
	ok(queries > 1000 && wrong == 0, "every query answered as a pass "
	    "with ews_resolve_match answers it: the same mailboxes, order, "
	    "cap and more");

	ok(people_index_find(ix, "p42.q@contoso.com", false, hit, MAX,
	    &more) == 1 && strcmp(hit[0].email, "p42.q@contoso.com") == 0 &&
	    !more, "a mailbox's address finds that one alone");
	ok(people_index_find(ix, "", false, hit, MAX, &more) == 0 && !more,
	    "an empty query finds no one");
	ok(people_index_find(ix, "anna", false, hit, MAX, &more) == MAX &&
	    more, "a common name: the first 100, and more");
	empty = people_index_new();
	people_index_seal(empty);
	ok(people_index_find(empty, "anna", false, hit, MAX, &more) == 0,
	    "an empty index finds no one");
	people_index_set_generation(empty, 7);
	ok(people_index_generation(empty) == 7, "it keeps its generation");
	people_index_free(empty);
	people_index_free(ix);
	people_index_free(NULL);
	return done();
}
