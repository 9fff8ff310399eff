/*
 * Sharing the guard's failure counts between nodes (share.h): what the
 * guard reports gathered in `pending` (one entry per count, the failures
 * added and whether it was cleared), written in one batch on the write
 * lane once SHARE_COALESCE_MS have passed and no batch is being written;
 * the store's totals handed back to the guard; and the counts other
 * nodes changed, read for the feed and learnt.
 *
 * A count's name in the store is "a:" (an account) or "p:" (an address)
 * and the hex of the guard's name for it.
 */
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "guard.h"
#include "metrics/metrics.h"
#include "share.h"
#include "store/pool.h"
#include "store/store.h"

#define SHARE_NAME_LEN		(2 + 2 * AUTH_GUARD_NAME_BYTES)
#define SHARE_LOG_EVERY_MS	60000	/* auth.share_dropped at most */

_Static_assert(SHARE_NAME_LEN < STORE_SIGNIN_NAME_MAX,
    "a count's name fits the store's");
_Static_assert(STORE_SIGNIN_KEY_BYTES == AUTH_GUARD_KEY_BYTES,
    "the store keeps the guard's key");

/* What the checks did to one count since the last write. */
struct pending {
	char		 name[SHARE_NAME_LEN + 1];
	uint32_t	 added;		/* failures */
	bool		 cleared;	/* a success, before those failures */
	int64_t		 total;		/* the write's answer */
};

/* One write of gathered counts, on the write lane. */
struct batch {
	struct auth_share	*share;
	struct pending		*p;
	size_t			 n;
	int64_t			 forget_after_s;
	bool			 prune;
	ps_err			 rc;
	char			 err[256];
};

struct auth_share {
	struct store_pool	*pool;
	struct auth_guard	*guard;
	struct event		*flush_ev;
	struct pending		*pending;
	size_t			 npending;
	struct batch		*writing;	/* NULL: none under way */
	int64_t			 forget_after_s;
	int64_t			 last_prune;	/* s, time_now() */
	int64_t			 dropped_logged_at;	/* ms; 0: never */
	uint64_t		 dropped;	/* since the last log line */
};

/* The counts of a feed read (share.h). */
struct auth_share_read {
	struct read_count {
		struct auth_guard_count	 c;
		int64_t			 last;
	}			*counts;
	size_t			 n;
};

static void
name_of(const struct auth_guard_count *c, char out[SHARE_NAME_LEN + 1])
{
	out[0] = c->kind == AUTH_COUNT_PEER ? 'p' : 'a';
	out[1] = ':';
	hex_encode(c->name, sizeof(c->name), out + 2);
}

/* The count named `name`; false when the name is none of ours. */
static bool
count_of(const char *name, struct auth_guard_count *c)
{
	size_t i;
	int hi, lo;

	if (strlen(name) != SHARE_NAME_LEN || name[1] != ':' ||
	    (name[0] != 'a' && name[0] != 'p'))
		return false;
	c->kind = name[0] == 'p' ? AUTH_COUNT_PEER : AUTH_COUNT_ACCOUNT;
	for (i = 0; i < AUTH_GUARD_NAME_BYTES; i++) {
		hi = hex_digit((unsigned char)name[2 + 2 * i]);
		lo = hex_digit((unsigned char)name[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return false;
		c->name[i] = (unsigned char)(hi << 4 | lo);
	}
	c->failures = 0;
	return true;
}

/* `n` failures not shared this time; one log line a minute at most. */
static void
dropped(struct auth_share *sh, uint64_t n, const char *why)
{
	int64_t now = time_mono_ms();

	metrics_add("photosync_auth_share_dropped_total", NULL, (double)n);
	sh->dropped += n;
	if (sh->dropped_logged_at != 0 &&
	    now - sh->dropped_logged_at < SHARE_LOG_EVERY_MS)
		return;
	log_warn(NULL, "auth.share_dropped", "failures=%llu reason=%s",
	    (unsigned long long)sh->dropped, log_q(why));
	sh->dropped_logged_at = now;
	sh->dropped = 0;
}

static void
flush_later(struct auth_share *sh)
{
	struct timeval tv = { 0, SHARE_COALESCE_MS * 1000 };

	if (sh->npending > 0 && sh->writing == NULL &&
	    !evtimer_pending(sh->flush_ev, NULL))
		evtimer_add(sh->flush_ev, &tv);
}

/* ---- writing ---- */

static void
batch_run(struct store *st, void *arg)
{
	struct batch *b = arg;
	int64_t now = time_now();
	size_t i;

	if ((b->rc = store_begin(st)) != PS_OK)
		goto out;
	for (i = 0; b->rc == PS_OK && i < b->n; i++) {
		if (b->p[i].cleared)
			b->rc = store_signin_clear(st, b->p[i].name, now);
		if (b->rc == PS_OK && b->p[i].added > 0)
			b->rc = store_signin_add(st, b->p[i].name,
			    b->p[i].added, now, now - b->forget_after_s,
			    &b->p[i].total);
	}
	if (b->rc == PS_OK && b->prune)
		b->rc = store_signin_prune(st, now - b->forget_after_s);
	if (b->rc == PS_OK)
		b->rc = store_end(st, true);
	else
		(void)store_end(st, false);
out:
	if (b->rc != PS_OK)
		str_copy(b->err, ps_errmsg(), sizeof(b->err));
}

static void
batch_done(void *arg)
{
	struct batch *b = arg;
	struct auth_share *sh = b->share;
	struct auth_guard_count c;
	uint64_t failures = 0;
	size_t i;

	sh->writing = NULL;
	if (b->rc != PS_OK) {
		for (i = 0; i < b->n; i++)
			failures += b->p[i].added;
		dropped(sh, failures, b->err);
	} else {
		/* The store's count has every node's failures. */
		for (i = 0; i < b->n; i++)
			if (b->p[i].added > 0 && count_of(b->p[i].name, &c)) {
				c.failures = b->p[i].total > UINT32_MAX ?
				    UINT32_MAX : (uint32_t)b->p[i].total;
				auth_guard_learn(sh->guard, &c);
			}
	}
	free(b->p);
	free(b);
	flush_later(sh);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_share *sh = arg;
	struct batch *b;
	uint64_t failures = 0;
	size_t i;

	(void)fd;
	(void)what;
	if (sh->npending == 0 || sh->writing)
		return;
	b = xcalloc(1, sizeof(*b));
	b->share = sh;
	b->p = sh->pending;
	b->n = sh->npending;
	b->forget_after_s = sh->forget_after_s;
	b->prune = time_now() - sh->last_prune >= SHARE_PRUNE_EVERY_S;
	sh->pending = xcalloc(SHARE_MAX_PENDING, sizeof(*sh->pending));
	sh->npending = 0;
	if (store_pool_write(sh->pool, batch_run, batch_done, b) != PS_OK) {
		/* A full write lane: counted here only, never waited for. */
		for (i = 0; i < b->n; i++)
			failures += b->p[i].added;
		dropped(sh, failures, ps_errmsg());
		free(b->p);
		free(b);
		return;
	}
	if (b->prune)
		sh->last_prune = time_now();
	sh->writing = b;
}

/* The guard's report of a count its checks changed. */
static void
reported(void *arg, const struct auth_guard_count *c)
{
	struct auth_share *sh = arg;
	char name[SHARE_NAME_LEN + 1];
	struct pending *p = NULL;
	size_t i;

	name_of(c, name);
	for (i = 0; i < sh->npending && p == NULL; i++)
		if (strcmp(sh->pending[i].name, name) == 0)
			p = &sh->pending[i];
	if (p == NULL) {
		if (sh->npending == SHARE_MAX_PENDING) {
			if (c->failures > 0)
				dropped(sh, 1, "too many counts to write "
				    "at once");
			return;
		}
		p = &sh->pending[sh->npending++];
		memset(p, 0, sizeof(*p));
		str_copy(p->name, name, sizeof(p->name));
	}
	if (c->failures == 0) {
		/* A success: what was gathered before it is forgiven too. */
		p->cleared = true;
		p->added = 0;
	} else if (p->added < UINT32_MAX) {
		p->added++;
	}
	flush_later(sh);
}

/* ---- reading ---- */

struct auth_share_read *
auth_share_reread(struct store *st, const struct store_change *ch, size_t n)
{
	struct auth_share_read *rd = NULL;
	struct auth_guard_count c;
	int64_t failures, last;
	ps_err rc;
	size_t i;

	for (i = 0; i < n; i++) {
		if (ch[i].kind != STORE_CHANGE_SIGNIN_COUNT ||
		    !count_of(ch[i].key, &c))
			continue;
		rc = store_signin_get(st, ch[i].key, &failures, &last);
		if (rc == PS_ENOTFOUND)
			continue;	/* pruned meanwhile */
		if (rc != PS_OK) {
			log_warn(NULL, "auth.share_read_failed", "error=%s",
			    log_q(ps_errmsg()));
			break;
		}
		if (rd == NULL)
			rd = xcalloc(1, sizeof(*rd));
		rd->counts = xrealloc(rd->counts, (rd->n + 1) *
		    sizeof(*rd->counts));
		c.failures = failures > UINT32_MAX ? UINT32_MAX :
		    failures < 0 ? 0 : (uint32_t)failures;
		rd->counts[rd->n].c = c;
		rd->counts[rd->n].last = last;
		rd->n++;
	}
	return rd;
}

void
auth_share_apply(struct auth_share *sh, struct auth_share_read *rd)
{
	int64_t forget_before = time_now() - (sh ? sh->forget_after_s : 0);
	size_t i;

	if (rd == NULL)
		return;
	for (i = 0; sh && i < rd->n; i++) {
		/* A count read late (a node catching up) may be forgotten. */
		if (rd->counts[i].c.failures > 0 &&
		    rd->counts[i].last <= forget_before)
			continue;
		auth_guard_learn(sh->guard, &rd->counts[i].c);
	}
	free(rd->counts);
	free(rd);
}

/* ---- the share ---- */

ps_err
auth_share_new(struct event_base *base, struct store *st,
    struct store_pool *pool, struct auth_guard *guard,
    struct auth_share **out)
{
	unsigned char key[STORE_SIGNIN_KEY_BYTES];
	struct auth_share *sh;
	ps_err rc;

	*out = NULL;
	if ((rc = store_signin_key(st, key)) != PS_OK)
		return rc;
	auth_guard_share_key(guard, key);
	explicit_bzero(key, sizeof(key));
	sh = xcalloc(1, sizeof(*sh));
	sh->pool = pool;
	sh->guard = guard;
	sh->pending = xcalloc(SHARE_MAX_PENDING, sizeof(*sh->pending));
	sh->forget_after_s = (auth_guard_forget_after_ms(guard) + 999) / 1000;
	sh->last_prune = 0;
	if ((sh->flush_ev = evtimer_new(base, flush_cb, sh)) == NULL) {
		free(sh->pending);
		free(sh);
		return ps_errf(PS_ENOMEM, "cannot make the sign-in share's "
		    "timer");
	}
	metrics_declare("photosync_auth_share_dropped_total", "counter",
	    "Sign-in failures not shared with the other nodes (a full "
	    "write lane, a store error, too many counts at once).");
	auth_guard_on_count(guard, reported, sh);
	*out = sh;
	return PS_OK;
}

void
auth_share_free(struct auth_share *sh)
{
	if (sh == NULL)
		return;
	auth_guard_on_count(sh->guard, NULL, NULL);
	event_free(sh->flush_ev);
	/* A batch under way was run and answered by store_pool_free(). */
	free(sh->pending);
	free(sh);
}
