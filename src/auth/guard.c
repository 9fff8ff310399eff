/*
 * The sign-in guard: Argon2id on a worker pool of its own, answers handed
 * back on the loop, and one fixed table of keyed digests holding both the
 * remembered credentials and the failure counts of accounts and
 * addresses.
 *
 * Threading: everything runs on the loop thread except verify_run(), which
 * touches only its own check and, under dummy_mu, the dummy hash. Until it
 * is answered a check is on one of three lists: `running` (handed to the
 * pool), the `joined` list of a running check of the same credential
 * (which answers both: 32 connections presenting one new credential at
 * once cost one Argon2id, not 32), or `ready` (answered without Argon2id
 * and waiting for ready_ev, so that done is never called from inside
 * auth_guard_check()).
 *
 * The table is set-associative: a digest picks a set of GUARD_WAYS slots.
 * A new entry takes a free or stale slot of its set, else the one whose
 * loss costs least: the oldest remembered credential (it costs one more
 * Argon2id), else, for a count only, the oldest failure count. A count
 * that a running check holds is never taken. Digests are keyed with a
 * random key per guard, so nobody can aim entries at one set.
 *
 * Counts: `failures` since the count was last cleared, `at` the last
 * failure; a count with no failure for forget_after_ms is forgotten whole
 * (not decayed), read lazily. `running` is the checks admitted and not yet
 * answered, which counts against the free failures left: past them, one
 * check at a time.
 *
 * Counts are keyed with `count_key` (the guard's own key, or the one the
 * nodes of a store share: guard.h), credentials always with `key`. Every
 * failure counted and every count cleared by a check is reported to
 * `on_count` (auth/share.c writes it to the store); a count learnt from
 * elsewhere is taken as the higher of the two, and not reported back.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "auth.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "guard.h"
#include "metrics/metrics.h"
#include "work/work.h"

#define GUARD_WAYS		8	/* slots per set of the table */
#define GUARD_DIGEST_BYTES	16
#define GUARD_MAX_THREADS	64
#define GUARD_DEFAULT_THREADS	4	/* at most, with max_verifying 0 */
#define GUARD_MIN_TRACKED	GUARD_WAYS
#define GUARD_MAX_TRACKED	((size_t)1 << 24)
#define GUARD_MAX_FREE		1000
#define GUARD_MAX_QUEUED	((size_t)1 << 20)
#define GUARD_FULL_LOG_MS	60000	/* auth.queue_full at most this often */
/* Anything will do: the answer for an unknown account is always "no". */
#define GUARD_DUMMY_PASSWORD	"photosync sign-in guard: no such account"

const struct auth_guard_limits auth_guard_default_limits = {
	.max_verifying = 0,
	.max_queued = 64,
	.free_failures = 5,
	.first_delay_ms = 1000,
	.account_cap_ms = 5000,
	.peer_cap_ms = 60000,
	.forget_after_ms = 15 * 60 * 1000,
	.remember_ms = 5 * 60 * 1000,
	.max_tracked = 65536,
	.now_ms = NULL,
};

enum slot_kind {
	SLOT_FREE = 0,
	SLOT_RIGHT,		/* a credential found right */
	SLOT_WRONG,		/* a credential found wrong */
	SLOT_ACCOUNT,		/* the failures of an account */
	SLOT_PEER,		/* the failures from an address */
};

struct slot {
	unsigned char	 key[GUARD_DIGEST_BYTES];
	int64_t		 at;		/* answered; counts: last failure */
	uint32_t	 failures;	/* counts */
	uint32_t	 account;	/* peer: the account failed for */
	uint32_t	 running;	/* counts: checks holding this slot */
	uint8_t		 kind;		/* enum slot_kind */
	uint8_t		 mixed;		/* peer: failed for several accounts */
};

_Static_assert(GUARD_DIGEST_BYTES == AUTH_GUARD_NAME_BYTES,
    "a count's name is its slot's key");
_Static_assert(AUTH_GUARD_KEY_BYTES == AUTH_DIGEST_KEY_BYTES,
    "the shared key is a digest key");

/* guard.h promises 40 bytes an entry. */
_Static_assert(sizeof(struct slot) == 40, "a table slot is 40 bytes");

TAILQ_HEAD(check_list, check);

struct check {
	TAILQ_ENTRY(check)	 entry;	/* g->running, g->ready or joined */
	struct check_list	 joined;	/* running: answered with it */
	struct auth_guard	*g;
	char			*account;	/* lower-cased; for the log */
	char			*peer;		/* as counted; for the log */
	char			*hash;		/* NULL: the dummy's */
	char			*password;	/* wiped once verified */
	unsigned char		 cred[GUARD_DIGEST_BYTES];
	uint32_t		 account_tag;	/* for slot.account */
	struct slot		*acct;		/* counts held (running) */
	struct slot		*addr;
	auth_guard_done_fn	 done;
	void			*arg;
	ps_err			 rc;
	bool			 admitted;	/* counts when answered */
	bool			 unknown;	/* no such account */
	bool			 verified;	/* worker: Argon2id ran */
	const char		*result;	/* metrics label */
	char			 why[96];
};

/* Other sign-in work on the guard's threads (auth_guard_run()). */
struct guard_job {
	TAILQ_ENTRY(guard_job)	 entry;
	struct auth_guard	*g;
	void			(*run)(void *);
	void			(*done)(void *);
	void			*arg;
};
TAILQ_HEAD(guard_job_list, guard_job);

struct auth_guard {
	struct event_base	*base;
	struct auth_guard_limits lim;
	struct work_pool	*pool;
	struct event		*ready_ev;
	struct check_list	 running;
	struct check_list	 ready;
	size_t			 nrunning, nready, njoined;
	struct guard_job_list	 jobs;		/* auth_guard_run()'s */
	size_t			 njobs;
	struct slot		*slots;
	size_t			 nsets;
	unsigned char		 key[AUTH_DIGEST_KEY_BYTES];
	/* Names accounts and addresses: `key`, or the nodes' shared one. */
	unsigned char		 count_key[AUTH_DIGEST_KEY_BYTES];
	auth_guard_count_fn	 on_count;
	void			*on_count_arg;
	pthread_mutex_t		 dummy_mu;
	char			*dummy;		/* dummy_mu; then fixed */
	auth_guard_external_fn	 external;	/* AUTH_GUARD_EXTERNAL's */
	void			*external_arg;
	struct auth_guard_stats	 stats;
	bool			 full_logged;	/* auth.queue_full written */
	int64_t			 full_logged_at;
	uint64_t		 full_refused;	/* busy since that line */
	int			 dispatching;	/* callbacks under way */
	bool			 freeing;
};

static int64_t
guard_now(const struct auth_guard *g)
{
	return g->lim.now_ms ? g->lim.now_ms() : time_mono_ms();
}

/* ---- the table ---- */

/* The key of one kind of entry ("a" account, "p" peer, "c" credential). */
static void
guard_digest(const struct auth_guard *g, const char *const *parts, size_t n,
    unsigned char out[GUARD_DIGEST_BYTES])
{
	auth_digest(g->key, parts, n, out, GUARD_DIGEST_BYTES);
}

static struct slot *
table_set(const struct auth_guard *g, const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key + 8, sizeof(h));
	return &g->slots[(h % g->nsets) * GUARD_WAYS];
}

static struct slot *
table_find(const struct auth_guard *g, const unsigned char *key)
{
	struct slot *set = table_set(g, key);
	int i;

	for (i = 0; i < GUARD_WAYS; i++)
		if (set[i].kind != SLOT_FREE &&
		    memcmp(set[i].key, key, GUARD_DIGEST_BYTES) == 0)
			return &set[i];
	return NULL;
}

static bool
is_count(const struct slot *s)
{
	return s->kind == SLOT_ACCOUNT || s->kind == SLOT_PEER;
}

/* Forgets the failures of a count after forget_after_ms of quiet. */
static void
count_fade(const struct auth_guard *g, struct slot *s, int64_t now)
{
	if (s->failures > 0 && now - s->at >= g->lim.forget_after_ms) {
		s->failures = 0;
		s->account = 0;
		s->mixed = 0;
	}
}

/* A slot whose loss costs nothing. */
static bool
slot_stale(const struct auth_guard *g, struct slot *s, int64_t now)
{
	if (s->kind == SLOT_FREE)
		return true;
	if (!is_count(s))
		return now - s->at >= g->lim.remember_ms;
	count_fade(g, s, now);
	return s->running == 0 && s->failures == 0;
}

/* The oldest credential, or count that no check holds, of a set. */
static struct slot *
set_oldest(struct slot *set, bool counts)
{
	struct slot *oldest = NULL;
	int i;

	for (i = 0; i < GUARD_WAYS; i++)
		if (is_count(&set[i]) == counts && set[i].running == 0 &&
		    (oldest == NULL || set[i].at < oldest->at))
			oldest = &set[i];
	return oldest;
}

/*
 * The slot for `key`, which a new entry of `kind` takes if it has none;
 * NULL when there is no room: a credential never takes a failure count's
 * slot, and no entry takes one that a running check holds.
 */
static struct slot *
table_take(struct auth_guard *g, const unsigned char *key,
    enum slot_kind kind, int64_t now)
{
	struct slot *set, *s, *victim = NULL;
	int i;

	if ((s = table_find(g, key)) != NULL)
		return s;
	set = table_set(g, key);
	for (i = 0; i < GUARD_WAYS && victim == NULL; i++)
		if (slot_stale(g, &set[i], now))
			victim = &set[i];
	/* A lost credential costs one Argon2id; a lost count, a throttle. */
	if (victim == NULL)
		victim = set_oldest(set, false);
	if (victim == NULL && (kind == SLOT_ACCOUNT || kind == SLOT_PEER))
		victim = set_oldest(set, true);
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->key, key, GUARD_DIGEST_BYTES);
	victim->kind = (uint8_t)kind;
	return victim;
}

/* ---- waits ---- */

/* The wait after the n-th failure in a row. */
static int64_t
delay_after(const struct auth_guard *g, uint32_t n, int64_t cap)
{
	int64_t d = g->lim.first_delay_ms;
	uint32_t i;

	if (n <= (uint32_t)g->lim.free_failures)
		return 0;
	for (i = (uint32_t)g->lim.free_failures + 1; i < n && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

/* How long a check counted in `s` (NULL: none) must still wait. */
static int64_t
count_wait(const struct auth_guard *g, struct slot *s, int64_t cap,
    int64_t now)
{
	uint32_t free_n = (uint32_t)g->lim.free_failures, n;
	int64_t due, wait = 0, next;

	if (s == NULL)
		return 0;
	count_fade(g, s, now);
	if (s->failures > free_n) {
		due = s->at + delay_after(g, s->failures, cap);
		if (due > now)
			wait = due - now;
	}
	/* The free failures left are taken by checks under way. */
	if (s->failures > 0 && s->running > 0 &&
	    s->failures + s->running >= free_n) {
		n = s->failures + s->running;
		next = delay_after(g, n > free_n ? n : free_n + 1, cap);
		if (next > wait)
			wait = next;
	}
	return wait;
}

/* The keys of an account and of an address, NULL where there is none. */
static const unsigned char *
account_key(const struct auth_guard *g, const char *lower,
    unsigned char out[GUARD_DIGEST_BYTES])
{
	const char *parts[] = { "a", lower };

	if (lower == NULL)
		return NULL;
	auth_digest(g->count_key, parts, 2, out, GUARD_DIGEST_BYTES);
	return out;
}

static const unsigned char *
peer_key(const struct auth_guard *g, const char *counted,
    unsigned char out[GUARD_DIGEST_BYTES])
{
	const char *parts[] = { "p", counted };

	if (counted == NULL)
		return NULL;
	auth_digest(g->count_key, parts, 2, out, GUARD_DIGEST_BYTES);
	return out;
}

/* `account` lower-cased, or NULL; the caller frees it. */
static char *
account_lower(const char *account)
{
	char *s;

	if (account == NULL)
		return NULL;
	s = xstrdup(account);
	str_lower(s);
	return s;
}

/*
 * The address as counted, or NULL: an IPv6 address by its /64 network,
 * IPv4 (also IPv4-mapped) alone, anything else as it is. The caller
 * frees it.
 */
static char *
peer_counted(const char *peer)
{
	struct in6_addr a;
	char s[INET6_ADDRSTRLEN];

	if (peer == NULL)
		return NULL;
	if (inet_pton(AF_INET6, peer, &a) != 1)
		return xstrdup(peer);
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		inet_ntop(AF_INET, &a.s6_addr[12], s, sizeof(s));
		return xstrdup(s);
	}
	memset(&a.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &a, s, sizeof(s));
	return xasprintf("%s/64", s);
}

static int64_t
wait_of(struct auth_guard *g, const char *lower, const char *counted,
    int64_t now)
{
	unsigned char ka[GUARD_DIGEST_BYTES], kp[GUARD_DIGEST_BYTES];
	const unsigned char *k;
	int64_t wa = 0, wp = 0;

	if ((k = account_key(g, lower, ka)) != NULL)
		wa = count_wait(g, table_find(g, k), g->lim.account_cap_ms,
		    now);
	if ((k = peer_key(g, counted, kp)) != NULL)
		wp = count_wait(g, table_find(g, k), g->lim.peer_cap_ms, now);
	return wa > wp ? wa : wp;
}

void
auth_guard_set_external(struct auth_guard *g, auth_guard_external_fn fn,
    void *arg)
{
	g->external = fn;
	g->external_arg = arg;
}

enum auth_verdict
auth_guard_verdict(struct auth_guard *g, const char *account,
    const char *peer, ps_err rc, int64_t *wait_ms)
{
	*wait_ms = 0;
	if (rc == PS_OK)
		return AUTH_SIGNED_IN;
	if (rc == PS_EUPSTREAM)
		return AUTH_BUSY;
	if (rc != PS_EBUSY)
		return AUTH_WRONG;
	*wait_ms = auth_guard_wait(g, account, peer);
	return *wait_ms > 0 ? AUTH_WAIT : AUTH_BUSY;
}

int64_t
auth_retry_after_s(int64_t wait_ms)
{
	return wait_ms > 1000 ? (wait_ms + 999) / 1000 : 1;
}

int64_t
auth_guard_wait(struct auth_guard *g, const char *account, const char *peer)
{
	char *lower = account_lower(account), *counted = peer_counted(peer);
	int64_t wait;

	wait = wait_of(g, lower, counted, guard_now(g));
	free(lower);
	free(counted);
	return wait;
}

/* ---- counting ---- */

/* Holds the counts of `c`'s account and address while it runs. */
static bool
counts_hold(struct auth_guard *g, struct check *c, int64_t now)
{
	unsigned char ka[GUARD_DIGEST_BYTES], kp[GUARD_DIGEST_BYTES];
	const unsigned char *k;

	if ((k = account_key(g, c->account, ka)) != NULL) {
		memcpy(&c->account_tag, k, sizeof(c->account_tag));
		if ((c->acct = table_take(g, k, SLOT_ACCOUNT, now)) == NULL)
			return false;
		c->acct->running++;
	}
	if ((k = peer_key(g, c->peer, kp)) != NULL) {
		if ((c->addr = table_take(g, k, SLOT_PEER, now)) == NULL)
			return false;
		c->addr->running++;
	}
	return true;
}

static void
count_release(struct slot **sp)
{
	struct slot *s = *sp;

	if (s == NULL)
		return;
	s->running--;
	if (s->running == 0 && s->failures == 0)
		s->kind = SLOT_FREE;
	*sp = NULL;
}

/* Tells the callback (auth_guard_on_count()) what `s` counts now. */
static void
count_report(struct auth_guard *g, const struct slot *s)
{
	struct auth_guard_count c;

	if (g->on_count == NULL)
		return;
	c.kind = s->kind == SLOT_PEER ? AUTH_COUNT_PEER : AUTH_COUNT_ACCOUNT;
	memcpy(c.name, s->key, sizeof(c.name));
	c.failures = s->failures;
	g->on_count(g->on_count_arg, &c);
}

static void
count_clear(struct auth_guard *g, struct slot *s)
{
	bool had;

	if (s == NULL)
		return;
	had = s->failures > 0;
	s->failures = 0;
	s->account = 0;
	s->mixed = 0;
	if (had)
		count_report(g, s);
}

static void
count_fail(struct auth_guard *g, struct check *c, struct slot *s,
    int64_t now)
{
	bool peer;
	int64_t cap;

	if (s == NULL)
		return;
	peer = s->kind == SLOT_PEER;
	count_fade(g, s, now);
	if (peer && s->failures == 0)
		s->account = c->account_tag;
	else if (peer && s->account != c->account_tag)
		s->mixed = 1;
	if (s->failures < UINT32_MAX)
		s->failures++;
	s->at = now;
	count_report(g, s);
	if (s->failures != (uint32_t)g->lim.free_failures + 1)
		return;
	/* The first failure that brings a wait: one line per episode. */
	g->stats.throttled++;
	cap = peer ? g->lim.peer_cap_ms : g->lim.account_cap_ms;
	metrics_add("photosync_auth_throttled_total", peer ?
	    "kind=\"peer\"" : "kind=\"account\"", 1);
	if (peer)
		log_info(NULL, "auth.throttled", "kind=peer peer=%s "
		    "failures=%u wait_ms=%lld", log_q(c->peer), s->failures,
		    (long long)delay_after(g, s->failures, cap));
	else
		log_info(NULL, "auth.throttled", "kind=account account=%s "
		    "failures=%u wait_ms=%lld", log_q(c->account), s->failures,
		    (long long)delay_after(g, s->failures, cap));
}

/* Counts `c`'s answer for its account and address, and lets them go. */
static void
counts_settle(struct auth_guard *g, struct check *c, int64_t now)
{
	if (c->rc == PS_OK) {
		count_clear(g, c->acct);
		/* Signing in to one account forgives failures for it only. */
		if (c->addr && !c->addr->mixed &&
		    (c->addr->failures == 0 ||
		    c->addr->account == c->account_tag))
			count_clear(g, c->addr);
	} else if (c->rc != PS_EUPSTREAM) {
		count_fail(g, c, c->acct, now);
		count_fail(g, c, c->addr, now);
	}
	count_release(&c->acct);
	count_release(&c->addr);
}

static void
credential_remember(struct auth_guard *g, const struct check *c,
    int64_t now)
{
	struct slot *s;

	if (g->lim.remember_ms == 0 ||
	    (s = table_take(g, c->cred, SLOT_WRONG, now)) == NULL)
		return;
	s->kind = c->rc == PS_OK ? SLOT_RIGHT : SLOT_WRONG;
	s->at = now;
}

/* ---- checks ---- */

static void
check_free(struct check *c)
{
	free(c->account);
	free(c->peer);
	free(c->hash);
	if (c->password)
		xfree_secret(c->password, strlen(c->password));
	free(c);
}

/* The jobs of auth_guard_run() not called back (their args: callers'). */
static void
jobs_free(struct auth_guard *g)
{
	struct guard_job *j;

	while ((j = TAILQ_FIRST(&g->jobs)) != NULL) {
		TAILQ_REMOVE(&g->jobs, j, entry);
		free(j);
	}
	g->njobs = 0;
}

static void
checks_free(struct check_list *l)
{
	struct check *c;

	while ((c = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, c, entry);
		checks_free(&c->joined);
		count_release(&c->acct);
		count_release(&c->addr);
		check_free(c);
	}
}

/* Settles `c`, calls its done and frees it; `c` is on no list. */
static void
check_answer(struct auth_guard *g, struct check *c)
{
	char labels[48];
	int64_t now = guard_now(g);

	if (c->admitted)
		counts_settle(g, c, now);
	if (c->verified)
		credential_remember(g, c, now);
	snprintf(labels, sizeof(labels), "result=\"%s\"", c->result);
	metrics_add("photosync_auth_checks_total", labels, 1);
	c->done(c->arg, c->rc, c->why);
	check_free(c);
}

/* Frees what is left once nothing of the guard is running any more. */
static void
guard_release(struct auth_guard *g)
{
	free(g->dummy);
	pthread_mutex_destroy(&g->dummy_mu);
	explicit_bzero(g->key, sizeof(g->key));
	explicit_bzero(g->count_key, sizeof(g->count_key));
	free(g->slots);
	free(g);
}

static void
ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_guard *g = arg;
	size_t n = g->nready;
	struct check *c;

	(void)fd;
	(void)what;
	/*
	 * Only the checks ready now: those that their callbacks make have
	 * activated the event again and wait for its next run.
	 */
	g->dispatching++;
	while (n-- > 0 && !g->freeing) {
		c = TAILQ_FIRST(&g->ready);
		TAILQ_REMOVE(&g->ready, c, entry);
		g->nready--;
		check_answer(g, c);
	}
	g->dispatching--;
	if (g->freeing && g->dispatching == 0)
		guard_release(g);
}

/* Answers `c` from the loop, after the caller has returned. */
static void
check_ready(struct auth_guard *g, struct check *c, ps_err rc,
    const char *result, const char *why)
{
	c->rc = rc;
	c->result = result;
	str_copy(c->why, why, sizeof(c->why));
	TAILQ_INSERT_TAIL(&g->ready, c, entry);
	g->nready++;
	event_active(g->ready_ev, EV_TIMEOUT, 0);
}

static void
verify_run(void *arg)
{
	struct check *c = arg;
	struct auth_guard *g = c->g;
	const char *hash;
	ps_err rc = PS_EAUTH;

	/*
	 * The first check makes the dummy, so even it is no tell. Out of
	 * memory, it stays NULL and the next check tries again.
	 */
	pthread_mutex_lock(&g->dummy_mu);
	if (g->dummy == NULL)
		(void)auth_password_hash(GUARD_DUMMY_PASSWORD, &g->dummy);
	hash = c->unknown ? g->dummy : c->hash;
	pthread_mutex_unlock(&g->dummy_mu);

	if (!c->unknown && strcmp(c->hash, AUTH_GUARD_EXTERNAL) == 0) {
		/* Checked elsewhere: an answer it cannot give is no failure. */
		rc = g->external ? g->external(g->external_arg, c->account,
		    c->password) : PS_EAUTH;
		c->verified = rc == PS_OK || rc == PS_EAUTH;
		if (!c->verified)
			snprintf(c->why, sizeof(c->why), "the password could "
			    "not be checked: %s", ps_errmsg());
	} else if (hash != NULL) {
		rc = auth_password_verify(hash, c->password);
		c->verified = true;
	}
	xfree_secret(c->password, strlen(c->password));
	c->password = NULL;
	if (!c->unknown && !c->verified && c->why[0] != '\0') {
		c->rc = PS_EUPSTREAM;
		c->result = "unavailable";
	} else if (c->unknown) {
		c->rc = PS_EAUTH;
		c->result = "wrong";
		str_copy(c->why, "no such account, or no password set",
		    sizeof(c->why));
	} else if (rc == PS_OK) {
		c->rc = PS_OK;
		c->result = "right";
		str_copy(c->why, "right password", sizeof(c->why));
	} else {
		c->rc = PS_EAUTH;
		c->result = "wrong";
		str_copy(c->why, "wrong password", sizeof(c->why));
	}
}

static void
verify_done(void *arg)
{
	struct check *c = arg, *j;
	struct auth_guard *g = c->g;

	TAILQ_REMOVE(&g->running, c, entry);
	g->nrunning--;
	/* Those that joined are answered alike, on ready_ev's next run. */
	while ((j = TAILQ_FIRST(&c->joined)) != NULL) {
		TAILQ_REMOVE(&c->joined, j, entry);
		g->njoined--;
		check_ready(g, j, c->rc, c->result, c->why);
	}
	if (c->verified) {
		g->stats.verified++;
		metrics_add("photosync_auth_verifications_total", NULL, 1);
	}
	g->dispatching++;
	check_answer(g, c);
	g->dispatching--;
	if (g->freeing && g->dispatching == 0)
		guard_release(g);
}

/* Refuses `c` for a full queue, with one log line a minute at most. */
static void
check_busy(struct auth_guard *g, struct check *c, int64_t now)
{
	g->stats.busy++;
	g->full_refused++;
	if (!g->full_logged || now - g->full_logged_at >= GUARD_FULL_LOG_MS) {
		log_warn(NULL, "auth.queue_full", "verifying=%d queued=%zu "
		    "refused=%llu", g->lim.max_verifying,
		    g->nrunning - (size_t)g->lim.max_verifying,
		    (unsigned long long)g->full_refused);
		g->full_logged = true;
		g->full_logged_at = now;
		g->full_refused = 0;
	}
	check_ready(g, c, PS_EBUSY, "busy", "too many sign-in checks are "
	    "waiting");
}

/*
 * The check of credential `cred` on the pool, if one is: at most
 * max_verifying + max_queued to look through.
 */
static struct check *
running_find(struct auth_guard *g, const unsigned char *cred)
{
	struct check *c;

	TAILQ_FOREACH(c, &g->running, entry)
		if (memcmp(c->cred, cred, GUARD_DIGEST_BYTES) == 0)
			return c;
	return NULL;
}

void
auth_guard_check(struct auth_guard *g, const char *account,
    const char *peer, const char *hash, const char *password,
    auth_guard_done_fn done, void *arg)
{
	struct check *c = xcalloc(1, sizeof(*c)), *leader;
	const char *parts[4];
	struct slot *known;
	enum slot_kind verdict = SLOT_FREE;	/* remembered, if not FREE */
	int64_t now = guard_now(g), wait;
	char why[96];

	c->g = g;
	TAILQ_INIT(&c->joined);
	c->done = done;
	c->arg = arg;
	c->account = account_lower(account);
	c->peer = peer_counted(peer);
	c->unknown = hash == NULL || *hash == '\0';

	if ((wait = wait_of(g, c->account, c->peer, now)) > 0) {
		g->stats.refused++;
		snprintf(why, sizeof(why), "too many failed sign-ins: %lld ms "
		    "to wait", (long long)wait);
		check_ready(g, c, PS_EBUSY, "throttled", why);
		return;
	}

	parts[0] = "c";
	parts[1] = c->account;
	parts[2] = password;
	parts[3] = c->unknown ? NULL : hash;
	guard_digest(g, parts, 4, c->cred);
	/* Read now: holding the counts below may reuse the slot. */
	if ((known = table_find(g, c->cred)) != NULL &&
	    !slot_stale(g, known, now))
		verdict = known->kind;
	if (verdict == SLOT_FREE && g->nrunning + g->njobs >=
	    (size_t)g->lim.max_verifying + g->lim.max_queued) {
		check_busy(g, c, now);
		return;
	}
	if (!counts_hold(g, c, now)) {
		/* Only if a whole set is held by running checks. */
		count_release(&c->acct);
		count_release(&c->addr);
		g->stats.busy++;
		check_ready(g, c, PS_EBUSY, "busy", "no room to count this "
		    "sign-in");
		return;
	}
	c->admitted = true;

	if (verdict != SLOT_FREE) {
		g->stats.remembered++;
		if (verdict == SLOT_RIGHT)
			check_ready(g, c, PS_OK, "right", "right password "
			    "(remembered)");
		else
			check_ready(g, c, PS_EAUTH, "wrong", c->unknown ?
			    "no such account, or no password set "
			    "(remembered)" : "wrong password (remembered)");
		return;
	}
	if ((leader = running_find(g, c->cred)) != NULL) {
		g->stats.joined++;
		TAILQ_INSERT_TAIL(&leader->joined, c, entry);
		g->njoined++;
		return;
	}
	c->hash = c->unknown ? NULL : xstrdup(hash);
	c->password = xstrdup(password);
	TAILQ_INSERT_TAIL(&g->running, c, entry);
	g->nrunning++;
	work_submit(g->pool, verify_run, verify_done, c);
}

/* ---- the guard ---- */

static ps_err
limits_check(struct auth_guard_limits *l)
{
	long ncpu;

	if (l->max_verifying < 0 || l->max_verifying > GUARD_MAX_THREADS)
		return ps_errf(PS_EINVAL, "max_verifying must be 0 to %d, not "
		    "%d", GUARD_MAX_THREADS, l->max_verifying);
	if (l->max_verifying == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		l->max_verifying = ncpu < 1 ? 1 : ncpu >
		    GUARD_DEFAULT_THREADS ? GUARD_DEFAULT_THREADS : (int)ncpu;
	}
	if (l->max_queued > GUARD_MAX_QUEUED)
		return ps_errf(PS_EINVAL, "max_queued must be at most %zu, not "
		    "%zu", GUARD_MAX_QUEUED, l->max_queued);
	if (l->free_failures < 0 || l->free_failures > GUARD_MAX_FREE)
		return ps_errf(PS_EINVAL, "free_failures must be 0 to %d, not "
		    "%d", GUARD_MAX_FREE, l->free_failures);
	if (l->first_delay_ms <= 0 || l->account_cap_ms < l->first_delay_ms ||
	    l->peer_cap_ms < l->first_delay_ms)
		return ps_errf(PS_EINVAL, "the first sign-in delay must be "
		    "positive and no longer than either cap");
	if (l->forget_after_ms <= 0 || l->remember_ms < 0)
		return ps_errf(PS_EINVAL, "forget_after_ms must be positive "
		    "and remember_ms not negative");
	if (l->max_tracked < GUARD_MIN_TRACKED ||
	    l->max_tracked > GUARD_MAX_TRACKED)
		return ps_errf(PS_EINVAL, "max_tracked must be %d to %zu, not "
		    "%zu", GUARD_MIN_TRACKED, GUARD_MAX_TRACKED,
		    l->max_tracked);
	return PS_OK;
}

struct auth_guard *
auth_guard_new(struct event_base *base, const struct auth_guard_limits *lim)
{
	struct auth_guard *g;
	struct auth_guard_limits l = lim ? *lim : auth_guard_default_limits;

	if (limits_check(&l) != PS_OK)
		return NULL;
	g = xcalloc(1, sizeof(*g));
	g->base = base;
	g->lim = l;
	TAILQ_INIT(&g->running);
	TAILQ_INIT(&g->jobs);
	TAILQ_INIT(&g->ready);
	pthread_mutex_init(&g->dummy_mu, NULL);
	rand_bytes(g->key, sizeof(g->key));
	memcpy(g->count_key, g->key, sizeof(g->count_key));
	g->nsets = (l.max_tracked + GUARD_WAYS - 1) / GUARD_WAYS;
	g->slots = xcalloc(g->nsets * GUARD_WAYS, sizeof(*g->slots));
	g->ready_ev = event_new(base, -1, 0, ready_cb, g);
	if (g->ready_ev == NULL) {
		ps_errf(PS_ENOMEM, "cannot make the sign-in guard's event");
		goto fail;
	}
	if ((g->pool = work_pool_new(base, l.max_verifying)) == NULL)
		goto fail;
	metrics_declare("photosync_auth_checks_total", "counter",
	    "Sign-in checks by result: right, wrong, busy, throttled.");
	metrics_declare("photosync_auth_verifications_total", "counter",
	    "Argon2id verifications run (for unknown accounts too).");
	metrics_declare("photosync_auth_throttled_total", "counter",
	    "Accounts and addresses that began to wait after failures.");
	metrics_declare("photosync_auth_pending", "gauge",
	    "Password checks running or waiting for the guard's threads.");
	metrics_declare("photosync_auth_throttled", "gauge",
	    "Accounts and addresses that must wait before their next "
	    "sign-in.");
	return g;
fail:
	if (g->ready_ev)
		event_free(g->ready_ev);
	guard_release(g);
	return NULL;
}

void
auth_guard_free(struct auth_guard *g)
{
	if (g == NULL || g->freeing)
		return;
	g->freeing = true;
	/* Running checks finish on their threads; none is called back. */
	work_pool_free(g->pool);
	g->pool = NULL;
	jobs_free(g);
	checks_free(&g->running);
	checks_free(&g->ready);
	g->nrunning = g->nready = g->njoined = 0;
	event_free(g->ready_ev);
	g->ready_ev = NULL;
	/* From inside a done callback, its caller releases the guard. */
	if (g->dispatching == 0)
		guard_release(g);
}

size_t
auth_guard_pending(const struct auth_guard *g)
{
	return g->nrunning + g->nready + g->njoined + g->njobs;
}

static void
job_run(void *arg)
{
	struct guard_job *j = arg;

	j->run(j->arg);
}

static void
job_done(void *arg)
{
	struct guard_job *j = arg;
	struct auth_guard *g = j->g;
	void (*done)(void *) = j->done;

	arg = j->arg;
	TAILQ_REMOVE(&g->jobs, j, entry);
	g->njobs--;
	free(j);
	g->dispatching++;
	done(arg);
	g->dispatching--;
	if (g->freeing && g->dispatching == 0)
		guard_release(g);
}

ps_err
auth_guard_run(struct auth_guard *g, void (*run)(void *),
    void (*done)(void *), void *arg)
{
	struct guard_job *j;

	if (g->freeing)
		return ps_errf(PS_EBUSY, "the server is stopping");
	if (g->nrunning + g->njobs >= (size_t)g->lim.max_verifying +
	    g->lim.max_queued) {
		g->stats.busy++;
		return ps_errf(PS_EBUSY, "%zu sign-in checks are waiting or "
		    "running; the limit is %zu", g->nrunning + g->njobs,
		    (size_t)g->lim.max_verifying + g->lim.max_queued);
	}
	j = xcalloc(1, sizeof(*j));
	j->g = g;
	j->run = run;
	j->done = done;
	j->arg = arg;
	TAILQ_INSERT_TAIL(&g->jobs, j, entry);
	g->njobs++;
	work_submit(g->pool, job_run, job_done, j);
	return PS_OK;
}

size_t
auth_guard_throttled(const struct auth_guard *g)
{
	int64_t now = guard_now(g);
	size_t i, n = 0;
	const struct slot *s;

	for (i = 0; i < g->nsets * GUARD_WAYS; i++) {
		s = &g->slots[i];
		if (is_count(s) && s->failures >
		    (uint32_t)g->lim.free_failures &&
		    now - s->at < g->lim.forget_after_ms)
			n++;
	}
	return n;
}

void
auth_guard_stats(const struct auth_guard *g, struct auth_guard_stats *out)
{
	*out = g->stats;
}

/* ---- counts shared between nodes ---- */

void
auth_guard_share_key(struct auth_guard *g,
    const unsigned char key[AUTH_GUARD_KEY_BYTES])
{
	memcpy(g->count_key, key, sizeof(g->count_key));
}

void
auth_guard_on_count(struct auth_guard *g, auth_guard_count_fn fn, void *arg)
{
	g->on_count = fn;
	g->on_count_arg = arg;
}

int64_t
auth_guard_forget_after_ms(const struct auth_guard *g)
{
	return g->lim.forget_after_ms;
}

void
auth_guard_learn(struct auth_guard *g, const struct auth_guard_count *c)
{
	enum slot_kind kind = c->kind == AUTH_COUNT_PEER ? SLOT_PEER :
	    SLOT_ACCOUNT;
	int64_t now = guard_now(g), cap;
	uint32_t free_n = (uint32_t)g->lim.free_failures;
	struct slot *s;
	bool waited;

	if (c->failures == 0) {
		/* A success elsewhere: as count_clear(), not reported back. */
		if ((s = table_find(g, c->name)) != NULL && s->kind == kind) {
			s->failures = 0;
			s->account = 0;
			s->mixed = 0;
			if (s->running == 0)
				s->kind = SLOT_FREE;
		}
		return;
	}
	if ((s = table_take(g, c->name, kind, now)) == NULL)
		return;		/* a set held whole by running checks */
	count_fade(g, s, now);
	if (c->failures <= s->failures) {
		if (s->failures == 0 && s->running == 0)
			s->kind = SLOT_FREE;
		return;
	}
	waited = s->failures > free_n;
	s->failures = c->failures;
	/* Which accounts they were for is not shared. */
	if (kind == SLOT_PEER)
		s->mixed = 1;
	s->at = now;
	if (waited || s->failures <= free_n)
		return;
	g->stats.throttled++;
	cap = kind == SLOT_PEER ? g->lim.peer_cap_ms : g->lim.account_cap_ms;
	metrics_add("photosync_auth_throttled_total", kind == SLOT_PEER ?
	    "kind=\"peer\"" : "kind=\"account\"", 1);
	log_info(NULL, "auth.count_learnt", "kind=%s failures=%u wait_ms=%lld",
	    kind == SLOT_PEER ? "peer" : "account", s->failures,
	    (long long)delay_after(g, s->failures, cap));
}
