/*
 * The mailboxes in memory for ResolveNames: every (not disabled)
 * mailbox's address and display name, with a sorted list of the
 * lower-case beginnings a query may match (the address, the name, each
 * word of the name), so that a query is a binary search and a walk over
 * what matches instead of a pass over every mailbox. It answers exactly
 * as ews_resolve_match() would for each mailbox.
 *
 * Made from one pass over the mailboxes (on a store lane), then read on
 * the loop; the master keeps one until the change feed reports a
 * mailbox change (master_srv's mailbox_generation). Not thread-safe:
 * one thread adds, then any number only read.
 */
#ifndef PS_MASTER_PEOPLE_H
#define PS_MASTER_PEOPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct people_index;

struct people_index *people_index_new(void);
/* NULL is a no-op. */
void	people_index_free(struct people_index *);
/* Adds a mailbox (copied); before people_index_seal() only. */
void	people_index_add(struct people_index *, const char *email,
	    const char *name);
/* Sorts what was added; afterwards the index is only read. */
void	people_index_seal(struct people_index *);
size_t	people_index_count(const struct people_index *);

/* The generation of the mailboxes it was read at (the owner's to set). */
void	people_index_set_generation(struct people_index *, uint64_t);
uint64_t people_index_generation(const struct people_index *);

/* A mailbox found: borrowed from the index. */
struct people_hit {
	const char	*email;
	const char	*name;
};

/*
 * The mailboxes ews_resolve_match(query, exact, email, name) accepts,
 * at most `max` of them into `out`, in order of name (the address when
 * there is none; ASCII case-insensitive), then address. An address
 * that is a mailbox's (whole, in any case) finds that one alone, as
 * Exchange resolves an exact address. Returns how many were written;
 * *more says whether more matched than `max`.
 */
size_t	people_index_find(const struct people_index *, const char *query,
	    bool exact, struct people_hit *out, size_t max, bool *more);

#endif
