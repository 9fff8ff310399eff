/*
 * String-keyed LRU map: chained hash table plus a doubly linked recency
 * list, evicting from the cold end while over the byte budget.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "lru.h"

struct node {
	struct node	*hnext;		/* hash chain */
	struct node	*prev, *next;	/* recency, most recent first */
	uint64_t	 hash;
	void		*value;
	size_t		 bytes;
	char		 key[];
};

struct lru {
	struct node	**table;
	size_t		  buckets;	/* a power of two */
	size_t		  count, bytes, max_bytes;
	struct node	 *head, *tail;
	void		(*free_value)(void *);
};

static uint64_t
hash_key(const char *k)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return h;
}

struct lru *
lru_new(size_t max_bytes, void (*free_value)(void *))
{
	struct lru *l = xcalloc(1, sizeof(*l));

	l->buckets = 64;
	l->table = xcalloc(l->buckets, sizeof(*l->table));
	l->max_bytes = max_bytes;
	l->free_value = free_value;
	return l;
}

static void
list_unlink(struct lru *l, struct node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static void
list_push_front(struct lru *l, struct node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	l->head = n;
	if (l->tail == NULL)
		l->tail = n;
}

static struct node **
find_slot(struct lru *l, const char *key, uint64_t h)
{
	struct node **p = &l->table[h & (l->buckets - 1)];

	while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
		p = &(*p)->hnext;
	return p;
}

static void
drop(struct lru *l, struct node **slot)
{
	struct node *n = *slot;

	if (n == NULL)		/* an empty slot: nothing to drop */
		return;
	*slot = n->hnext;
	list_unlink(l, n);
	l->count--;
	l->bytes -= n->bytes;
	if (l->free_value)
		l->free_value(n->value);
	free(n);
}

static void
grow(struct lru *l)
{
	size_t nb = l->buckets * 2, i;
	struct node **t = xcalloc(nb, sizeof(*t));

	for (i = 0; i < l->buckets; i++) {
		struct node *n = l->table[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			n->hnext = t[n->hash & (nb - 1)];
			t[n->hash & (nb - 1)] = n;
		}
	}
	free(l->table);
	l->table = t;
	l->buckets = nb;
}

void *
lru_get(struct lru *l, const char *key)
{
	struct node *n = *find_slot(l, key, hash_key(key));

	if (n == NULL)
		return NULL;
	if (l->head != n) {
		list_unlink(l, n);
		list_push_front(l, n);
	}
	return n->value;
}

void
lru_put(struct lru *l, const char *key, void *value, size_t bytes)
{
	uint64_t h = hash_key(key);
	struct node **slot = find_slot(l, key, h), *n;
	size_t klen = strlen(key);

	drop(l, slot);
	n = xmalloc(sizeof(*n) + klen + 1);
	memcpy(n->key, key, klen + 1);
	n->hash = h;
	n->value = value;
	n->bytes = bytes + sizeof(*n) + klen + 1;
	n->hnext = l->table[h & (l->buckets - 1)];
	l->table[h & (l->buckets - 1)] = n;
	list_push_front(l, n);
	l->count++;
	l->bytes += n->bytes;
	if (l->count > l->buckets)
		grow(l);
	/* Evict the coldest, but never the one just put. */
	while (l->bytes > l->max_bytes && l->tail && l->tail != n)
		drop(l, find_slot(l, l->tail->key, l->tail->hash));
}

void
lru_remove(struct lru *l, const char *key)
{
	drop(l, find_slot(l, key, hash_key(key)));
}

void
lru_clear(struct lru *l)
{
	while (l->head)
		drop(l, find_slot(l, l->head->key, l->head->hash));
}

void
lru_free(struct lru *l)
{
	if (l == NULL)
		return;
	lru_clear(l);
	free(l->table);
	free(l);
}

size_t
lru_count(const struct lru *l)
{
	return l->count;
}

size_t
lru_bytes(const struct lru *l)
{
	return l->bytes;
}
