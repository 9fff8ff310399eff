/*
 * The cache of verified credentials (creds.h): two LRU maps, credentials
 * by key and account records by lower-cased account.
 *
 * A credential holds a reference to its account's record. Dropping an
 * account replaces its record with a new one that says when (a tick):
 * the old record, which the account's credentials hold, is marked ended,
 * so they are refused at their next lookup without being searched for.
 * An evicted record is marked ended too (its credentials could no longer
 * be told apart from those of a later change), and raises the floor when
 * it knew of a change. auth_creds_put() refuses a stamp below the floor
 * or older than its account's last change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "common/lru.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "creds.h"

#define ACCOUNT_KEY_MAX	256
/* What the map spends on an entry besides its value: a node, the key. */
#define CREDS_MAP_BYTES	(64 + AUTH_CREDS_KEY_MAX)

struct creds_account {
	struct auth_creds	*c;
	int			 refs;		/* the map's, credentials' */
	bool			 ended;		/* dropped or evicted */
	uint64_t		 changed;	/* tick of its drop; 0: none */
};

struct cred {
	struct creds_account	*account;	/* a reference */
	int64_t			 verified;
	unsigned char		 data[];
};

struct auth_creds {
	struct lru		*creds;
	struct lru		*accounts;
	size_t			 data_len;
	uint64_t		 tick;		/* advanced by every drop */
	uint64_t		 floor;		/* stamps below it are stale */
	bool			 quiet;		/* our own removal: no floor */
	int64_t			 (*now_s)(void);
};

static void
account_unref(struct creds_account *a)
{
	if (--a->refs == 0)
		free(a);
}

/* The map lets go of a record: its credentials end with it. */
static void
account_release(void *p)
{
	struct creds_account *a = p;

	a->ended = true;
	if (!a->c->quiet && a->changed > a->c->floor)
		a->c->floor = a->changed;
	account_unref(a);
}

static void
cred_release(void *p)
{
	struct cred *e = p;

	account_unref(e->account);
	free(e);
}

struct auth_creds *
auth_creds_new(size_t max_entries, size_t data_len, int64_t (*now_s)(void))
{
	struct auth_creds *c = xcalloc(1, sizeof(*c));

	c->data_len = data_len;
	c->now_s = now_s ? now_s : time_now;
	c->creds = lru_new(max_entries * (sizeof(struct cred) + data_len +
	    CREDS_MAP_BYTES), cred_release);
	c->accounts = lru_new(AUTH_CREDS_ACCOUNT_BYTES, account_release);
	return c;
}

void
auth_creds_free(struct auth_creds *c)
{
	if (c == NULL)
		return;
	lru_free(c->creds);
	c->quiet = true;
	lru_free(c->accounts);
	free(c);
}

void
auth_creds_basic_key(const char *header, int64_t scope,
    char key[AUTH_CREDS_KEY_MAX])
{
	char fp[33];

	size_t at;

	auth_fingerprint(header, fp);
	at = str_cat(key, AUTH_CREDS_KEY_MAX, 0, "b/");
	at = str_cat_int(key, AUTH_CREDS_KEY_MAX, at, scope);
	at = str_cat(key, AUTH_CREDS_KEY_MAX, at, "/");
	str_cat(key, AUTH_CREDS_KEY_MAX, at, fp);
}

void
auth_creds_sso_key(const char *user, int64_t scope,
    char key[AUTH_CREDS_KEY_MAX])
{
	char fp[33];

	auth_fingerprint(user, fp);
	snprintf(key, AUTH_CREDS_KEY_MAX, "p/%lld/%s", (long long)scope, fp);
}

void
auth_creds_session_key(const char *store_key, char key[AUTH_CREDS_KEY_MAX])
{
	snprintf(key, AUTH_CREDS_KEY_MAX, "s/%s", store_key);
}

const void *
auth_creds_get(struct auth_creds *c, const char *key)
{
	struct cred *e;
	int64_t now;

	if ((e = lru_get(c->creds, key)) == NULL)
		return NULL;
	now = c->now_s();
	if (e->account->ended || now - e->verified >= AUTH_CREDS_TTL ||
	    now < e->verified) {
		lru_remove(c->creds, key);
		return NULL;
	}
	return e->data;
}

uint64_t
auth_creds_stamp(const struct auth_creds *c)
{
	return c->tick;
}

static void
account_key(const char *account, char out[ACCOUNT_KEY_MAX])
{
	str_copy(out, account, ACCOUNT_KEY_MAX);
	str_lower(out);
}

/* A new record of `key` in the map, changed at `changed`. */
static struct creds_account *
account_new(struct auth_creds *c, const char *key, uint64_t changed)
{
	struct creds_account *a = xcalloc(1, sizeof(*a));

	a->c = c;
	a->refs = 1;
	a->changed = changed;
	lru_put(c->accounts, key, a, sizeof(*a));
	return a;
}

void
auth_creds_put(struct auth_creds *c, const char *key, const char *account,
    uint64_t stamp, const void *data)
{
	struct creds_account *a;
	struct cred *e;
	char akey[ACCOUNT_KEY_MAX];

	/* Read before a change that has landed since: answer, don't keep. */
	if (stamp < c->floor)
		return;
	account_key(account, akey);
	if ((a = lru_get(c->accounts, akey)) != NULL && a->changed > stamp)
		return;
	if (a == NULL)
		a = account_new(c, akey, 0);
	e = xmalloc(sizeof(*e) + c->data_len);
	e->account = a;
	a->refs++;
	e->verified = c->now_s();
	memcpy(e->data, data, c->data_len);
	lru_put(c->creds, key, e, sizeof(*e) + c->data_len);
}

void
auth_creds_forget(struct auth_creds *c, const char *key)
{
	lru_remove(c->creds, key);
}

void
auth_creds_drop(struct auth_creds *c, const char *account)
{
	char akey[ACCOUNT_KEY_MAX];

	account_key(account, akey);
	/* The old record ends its credentials; a replacement is no loss. */
	c->quiet = true;
	lru_remove(c->accounts, akey);
	c->quiet = false;
	(void)account_new(c, akey, ++c->tick);
}

void
auth_creds_clear(struct auth_creds *c)
{
	lru_clear(c->creds);
	c->quiet = true;
	lru_clear(c->accounts);
	c->quiet = false;
	c->floor = ++c->tick;
}

size_t
auth_creds_count(const struct auth_creds *c)
{
	return lru_count(c->creds);
}
