/*
 * A string-keyed map with least-recently-used eviction under a byte
 * budget: the servers' in-memory indexes (photos, users, credentials) that
 * let a cached request be answered without a store query.
 *
 * Values are owned by the map once put and released with the free
 * function given at creation (on replacement, eviction, removal, clear).
 * Not thread-safe: the event loop's own.
 */
#ifndef PS_LRU_H
#define PS_LRU_H

#include <stddef.h>

struct lru;

struct lru *lru_new(size_t max_bytes, void (*free_value)(void *));
void	lru_free(struct lru *);
/* The value for `key`, now the most recently used; NULL if absent. */
void	*lru_get(struct lru *, const char *key);
/* Adds or replaces; `bytes` counts against the budget. */
void	lru_put(struct lru *, const char *key, void *value, size_t bytes);
void	lru_remove(struct lru *, const char *key);
void	lru_clear(struct lru *);
size_t	lru_count(const struct lru *);
size_t	lru_bytes(const struct lru *);

#endif
