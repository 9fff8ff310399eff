/*
 * Unit tests of what both roles' sign-ins share beyond the guard
 * (test_auth.c): the cache of verified credentials (auth/creds.h) on a
 * fake clock, with accounts ended by a drop, checks a change overtook
 * kept out, a forgotten change still ending what came before it, and a
 * hit that allocates nothing; and the sign-in flow (auth/signin.h) run
 * against a real store through its lanes and a real guard: the outcomes,
 * a form's session stored, unknown accounts costing the same Argon2id,
 * throttled sign-ins refused before any work, and a client that left
 * costing none; and a single sign-on proxy's account (auth/sso.h) signed
 * in with a lookup only, with a session or without.
 */
#include <event2/event.h>
#include <ftw.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/creds.h"
#include "auth/guard.h"
#include "auth/signin.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "store/pool.h"
#include "store/store.h"
#include "t.h"

/* "right" at libsodium's least Argon2id cost (as test_auth.c's). */
#define CHEAP_HASH	"$argon2id$v=19$m=8,t=1,p=1$fyXkBAVeu/fVYHNkUkueCw$" \
			"0cmI6nLbfU/a2jxmDMt08Zfy0JW6pesWSGIpEKNCSks"

static int64_t fake_s = 1000000;
static int64_t fake_ms = 1000000000;

static int64_t
clock_s(void)
{
	return fake_s;
}

static int64_t
clock_ms(void)
{
	return fake_ms;
}

/* ---- the cache of verified credentials ---- */

struct data {
	char	 email[64];
	int	 n;
};

static struct data
data_of(const char *email, int n)
{
	struct data d = { { 0 }, n };

	str_copy(d.email, email, sizeof(d.email));
	return d;
}

static int
hit(struct auth_creds *c, const char *key)
{
	const struct data *d = auth_creds_get(c, key);

	return d ? d->n : 0;
}

static void
test_keys(void)
{
	char a[AUTH_CREDS_KEY_MAX], b[AUTH_CREDS_KEY_MAX];

	auth_creds_basic_key("Basic dGVzdDE6cHc=", 1, a);
	auth_creds_basic_key("Basic dGVzdDE6cHc=", 1, b);
	ok(strcmp(a, b) == 0, "keys: one header, one key");
	ok(strstr(a, "dGVzdDE6cHc") == NULL, "keys: the header is not in it");
	auth_creds_basic_key("Basic dGVzdDE6cHc=", 2, b);
	ok(strcmp(a, b) != 0, "keys: another scope, another key");
	auth_creds_basic_key("Basic dGVzdDE6cHd=", 1, b);
	ok(strcmp(a, b) != 0, "keys: another header, another key");
	auth_creds_session_key("0123abcd", b);
	ok(strcmp(b, "s/0123abcd") == 0 && strcmp(a, b) != 0,
	    "keys: a session's is its store key, apart from Basic's");
}

static void
test_creds_basic(void)
{
	struct auth_creds *c = auth_creds_new(64, sizeof(struct data),
	    clock_s);
	struct data d1 = data_of("test1@contoso.com", 1);
	struct data d2 = data_of("test1@contoso.com", 2);
	struct data d3 = data_of("test2@contoso.com", 3);

	ok(auth_creds_get(c, "k1") == NULL, "creds: an unknown key misses");
	auth_creds_put(c, "k1", "Test1@contoso.com", auth_creds_stamp(c), &d1);
	auth_creds_put(c, "k2", "test1@contoso.com", auth_creds_stamp(c), &d2);
	auth_creds_put(c, "k3", "test2@contoso.com", auth_creds_stamp(c), &d3);
	ok(hit(c, "k1") == 1 && hit(c, "k2") == 2 && hit(c, "k3") == 3,
	    "creds: each key gives its own data");
	fake_s += AUTH_CREDS_TTL - 1;
	ok(hit(c, "k1") == 1, "creds: still honoured just before the TTL");
	fake_s += 1;
	ok(hit(c, "k1") == 0 && auth_creds_count(c) == 2,
	    "creds: not at the TTL, and forgotten");
	fake_s -= AUTH_CREDS_TTL;
	auth_creds_put(c, "k1", "test1@contoso.com", auth_creds_stamp(c), &d1);
	fake_s -= 10;
	ok(hit(c, "k1") == 0, "creds: a clock that went back ends them");
	fake_s += 10;

	auth_creds_put(c, "k1", "test1@contoso.com", auth_creds_stamp(c), &d1);
	auth_creds_drop(c, "TEST1@contoso.com");
	ok(hit(c, "k1") == 0 && hit(c, "k2") == 0,
	    "creds: a change to the account ends all of its credentials");
	ok(hit(c, "k3") == 3, "creds: another account's stay");

	auth_creds_forget(c, "k3");
	ok(hit(c, "k3") == 0, "creds: a forgotten one is gone");
	auth_creds_put(c, "k3", "test2@contoso.com", auth_creds_stamp(c), &d3);
	auth_creds_clear(c);
	ok(hit(c, "k3") == 0 && auth_creds_count(c) == 0,
	    "creds: cleared, all are gone");
	auth_creds_free(c);
}

static void
test_creds_races(void)
{
	struct auth_creds *c = auth_creds_new(64, sizeof(struct data),
	    clock_s);
	struct data d = data_of("x0@contoso.com", 7);
	char addr[64];
	uint64_t stamp;
	int i;

	stamp = auth_creds_stamp(c);
	auth_creds_drop(c, "x0@contoso.com");
	auth_creds_put(c, "k", "x0@contoso.com", stamp, &d);
	ok(hit(c, "k") == 0, "races: a check that a password change "
	    "overtook is not remembered");
	auth_creds_put(c, "k", "x0@contoso.com", auth_creds_stamp(c), &d);
	ok(hit(c, "k") == 7, "races: one that began after it is");
	auth_creds_put(c, "o", "other@contoso.com", stamp, &d);
	ok(hit(c, "o") == 7, "races: another account's change is no reason");

	/*
	 * Verified, then its account changed, then so many other accounts
	 * changed that the first change is forgotten: what was verified,
	 * or read, before it must still count as stale.
	 */
	auth_creds_clear(c);
	auth_creds_put(c, "k", "x0@contoso.com", auth_creds_stamp(c), &d);
	stamp = auth_creds_stamp(c);
	auth_creds_drop(c, "x0@contoso.com");
	/* Each record costs more than 24 bytes: this many overflow them. */
	for (i = 1; i <= (int)(AUTH_CREDS_ACCOUNT_BYTES / 24); i++) {
		snprintf(addr, sizeof(addr), "x%d@contoso.com", i);
		auth_creds_drop(c, addr);
	}
	ok(hit(c, "k") == 0, "races: a change forgotten for room still "
	    "ends what was verified before it");
	auth_creds_put(c, "k", "x0@contoso.com", stamp, &d);
	ok(hit(c, "k") == 0, "races: and keeps out what was read before it");
	auth_creds_put(c, "k", "x0@contoso.com", auth_creds_stamp(c), &d);
	ok(hit(c, "k") == 7, "races: what is verified after it is kept");
	auth_creds_free(c);
}

static void
test_creds_bounds(void)
{
	struct auth_creds *c = auth_creds_new(4, sizeof(struct data),
	    clock_s);
	struct data d = data_of("a@contoso.com", 1);
	struct mallinfo2 before, after;
	char key[16];
	int i, n = 0;

	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		auth_creds_put(c, key, "a@contoso.com", auth_creds_stamp(c),
		    &d);
	}
	ok(auth_creds_count(c) >= 4 && auth_creds_count(c) <= 8,
	    "bounds: room for max_entries, and the budget keeps no more");
	ok(hit(c, "k99") == 1 && hit(c, "k0") == 0,
	    "bounds: the least recently used went");
	before = mallinfo2();
	for (i = 0; i < 1000; i++)
		n += hit(c, "k99");
	after = mallinfo2();
	ok(n == 1000 && after.uordblks == before.uordblks,
	    "bounds: a hit allocates nothing");
	auth_creds_free(c);
}

/* ---- the sign-in flow, on a real store and a real guard ---- */

static struct event_base *base;

/* One request of a role that signs mailboxes in. */
struct req {
	struct auth_signin	 si;
	bool			 answered;
	bool			 early;		/* inside auth_signin_start() */
	enum auth_signin_outcome out;
	char			 why[128];
	int64_t			 wait_ms;
	bool			 busy_guard;
	char			 cookie[AUTH_TOKEN_HEX + 1];
	char			 email[256];	/* the mailbox found */
	bool			 left;		/* the client went away */
	bool			 remove;	/* the mailbox goes meanwhile */
};

static int lookups;
static bool starting;

static ps_err
role_lookup(struct store *st, void *arg, const char *name, char **hash)
{
	struct req *q = arg;
	struct store_mailbox m;
	ps_err rc;

	lookups++;
	if ((rc = store_mailbox_get(st, name, &m)) != PS_OK)
		return rc;
	str_copy(q->email, m.email, sizeof(q->email));
	*hash = m.pwhash;
	m.pwhash = NULL;
	store_mailbox_cleanup(&m);
	/* Another process removes it while the password is checked. */
	if (q->remove)
		rc = store_mailbox_remove(st, q->email);
	return rc;
}

static ps_err
role_session_put(struct store *st, void *arg, const char *key,
    const char *csrf, int64_t expires)
{
	struct req *q = arg;

	return store_mailbox_session_put(st, key, q->email, csrf, expires);
}

static bool
role_gone(void *arg)
{
	struct req *q = arg;

	return q->left;
}

static void
role_answer(void *arg, struct auth_signin *si, enum auth_signin_outcome out)
{
	struct req *q = arg;

	q->answered = true;
	q->early = starting;
	q->out = out;
	str_copy(q->why, si->why, sizeof(q->why));
	q->wait_ms = si->wait_ms;
	q->busy_guard = si->busy_guard;
	str_copy(q->cookie, si->cookie, sizeof(q->cookie));
	auth_signin_cleanup(si);
}

static const struct auth_signin_ops role_ops = {
	.lookup = role_lookup,
	.session_put = role_session_put,
	.session_lifetime = 3600,
	.gone = role_gone,
	.answer = role_answer,
};

struct flow {
	struct store_pool	*pool;
	struct auth_guard	*guard;
};

static void
start(struct flow *f, struct req *q, enum auth_signin_kind kind,
    const char *name, const char *password, const char *peer)
{
	memset(&q->si, 0, sizeof(q->si));
	q->answered = false;
	starting = true;
	auth_signin_start(&q->si, &role_ops, q, f->pool, f->guard, "r1",
	    peer, kind, xstrdup(name), xstrdup(password));
	starting = false;
}

static bool
await(struct req *q)
{
	while (!q->answered)
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			return false;
	return true;
}

static enum auth_signin_outcome
sign_in(struct flow *f, struct req *q, enum auth_signin_kind kind,
    const char *name, const char *password, const char *peer)
{
	start(f, q, kind, name, password, peer);
	if (!await(q))
		return (enum auth_signin_outcome)-1;
	return q->out;
}

static uint64_t
verified(struct auth_guard *g)
{
	struct auth_guard_stats s;

	auth_guard_stats(g, &s);
	return s.verified;
}

static struct auth_guard *
guard_new(int free_failures, size_t max_queued)
{
	struct auth_guard_limits l = auth_guard_default_limits;

	l.now_ms = clock_ms;
	l.max_verifying = 1;
	l.free_failures = free_failures;
	l.max_queued = max_queued;
	return auth_guard_new(base, &l);
}

static void
test_flow(struct store *st, struct flow *f)
{
	struct store_mailbox_session ss;
	struct req q = { 0 };
	char *long_pw, key[65];
	uint64_t v;
	int n;

	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "Test1@contoso.com", "right",
	    "10.0.0.1"), AUTH_SIGNIN_OK, "flow: Basic, the right password");
	ok(!q.early && strcmp(q.email, "test1@contoso.com") == 0,
	    "flow: answered on the loop, with what the lookup kept");
	ok(q.cookie[0] == '\0', "flow: Basic makes no session");
	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "test1@contoso.com", "wrong",
	    "10.0.0.1"), AUTH_SIGNIN_WRONG, "flow: a wrong password");
	is_str(q.why, "wrong password", "flow: with the guard's reason");

	/* The same Argon2id work for an unknown account. */
	v = verified(f->guard);
	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "ghost@contoso.com", "right",
	    "10.0.0.2"), AUTH_SIGNIN_WRONG, "flow: an unknown account");
	is_int(verified(f->guard), v + 1, "flow: ... checked all the same");
	v = verified(f->guard);
	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "nopw@contoso.com", "x",
	    "10.0.0.2"), AUTH_SIGNIN_WRONG, "flow: an account without a "
	    "password");
	is_int(verified(f->guard), v + 1, "flow: ... checked all the same");
	long_pw = xmalloc(AUTH_MAX_PASSWORD + 2);
	memset(long_pw, 'p', AUTH_MAX_PASSWORD + 1);
	long_pw[AUTH_MAX_PASSWORD + 1] = '\0';
	v = verified(f->guard);
	n = lookups;
	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "test1@contoso.com", long_pw,
	    "10.0.0.2"), AUTH_SIGNIN_WRONG, "flow: a password too long");
	ok(lookups == n && verified(f->guard) == v + 1,
	    "flow: ... not looked up, and checked all the same");
	free(long_pw);

	/* A form: a session, stored by the digest of its cookie. */
	is_int(sign_in(f, &q, AUTH_SIGNIN_FORM, "test1@contoso.com", "right",
	    "10.0.0.3"), AUTH_SIGNIN_OK, "flow: a form, the right password");
	ok(strlen(q.cookie) == AUTH_TOKEN_HEX, "flow: ... its cookie");
	auth_session_key(q.cookie, key);
	ok(store_mailbox_session_get(st, key, &ss) == PS_OK &&
	    strcmp(ss.email, "test1@contoso.com") == 0 &&
	    strlen(ss.csrf) == AUTH_TOKEN_HEX,
	    "flow: ... the session stored for the mailbox, with its token");
	q.remove = true;
	is_int(sign_in(f, &q, AUTH_SIGNIN_FORM, "gone@contoso.com", "right",
	    "10.0.0.3"), AUTH_SIGNIN_WRONG, "flow: a mailbox removed while "
	    "its password was checked gets no session");
	q.remove = false;

	/* A client that left costs no Argon2id. */
	v = verified(f->guard);
	q.left = true;
	is_int(sign_in(f, &q, AUTH_SIGNIN_BASIC, "test1@contoso.com",
	    "other", "10.0.0.4"), AUTH_SIGNIN_GONE, "flow: the client left");
	is_int(verified(f->guard), v, "flow: ... nothing was checked");
	q.left = false;
}

/* A single sign-on proxy's account: looked up, no password, no guard. */
static enum auth_signin_outcome
sign_in_sso(struct flow *f, struct req *q, bool session, const char *name)
{
	memset(&q->si, 0, sizeof(q->si));
	q->answered = false;
	starting = true;
	auth_signin_sso_start(&q->si, &role_ops, q, f->pool, "r2",
	    "10.0.0.9", session, xstrdup(name));
	starting = false;
	if (!await(q))
		return (enum auth_signin_outcome)-1;
	return q->out;
}

static void
test_flow_sso(struct store *st, struct flow *f)
{
	struct store_mailbox_session ss;
	struct req q = { 0 };
	char key[65];
	uint64_t v = verified(f->guard);
	int n = lookups;

	is_int(sign_in_sso(f, &q, false, "test1@contoso.com"),
	    AUTH_SIGNIN_OK, "sso: a proxy's account signs in");
	ok(!q.early && strcmp(q.email, "test1@contoso.com") == 0 &&
	    q.cookie[0] == '\0', "sso: on the loop, looked up, no session");
	ok(lookups == n + 1 && verified(f->guard) == v,
	    "sso: ... read on the lane once, no password checked");
	is_int(sign_in_sso(f, &q, false, "nopw@contoso.com"), AUTH_SIGNIN_OK,
	    "sso: an account without a password signs in too");
	is_int(sign_in_sso(f, &q, false, "ghost@contoso.com"),
	    AUTH_SIGNIN_UNKNOWN, "sso: an unknown account");
	is_str(q.why, "no such account", "sso: ... saying so");
	ok(verified(f->guard) == v, "sso: ... and no password work either");

	is_int(sign_in_sso(f, &q, true, "test1@contoso.com"), AUTH_SIGNIN_OK,
	    "sso with a session: signed in");
	auth_session_key(q.cookie, key);
	ok(strlen(q.cookie) == AUTH_TOKEN_HEX &&
	    store_mailbox_session_get(st, key, &ss) == PS_OK &&
	    strcmp(ss.email, "test1@contoso.com") == 0 &&
	    strlen(ss.csrf) == AUTH_TOKEN_HEX,
	    "sso with a session: ... the session stored, with its token");
	ok(store_mailbox_add(st, "leaves@contoso.com", "", NULL) == PS_OK,
	    "sso: a mailbox that will go");
	q.remove = true;
	is_int(sign_in_sso(f, &q, true, "leaves@contoso.com"),
	    AUTH_SIGNIN_UNKNOWN, "sso: a mailbox removed before its session "
	    "was stored: unknown, no session");
	q.remove = false;
	q.left = true;
	is_int(sign_in_sso(f, &q, true, "test1@contoso.com"),
	    AUTH_SIGNIN_GONE, "sso: the client left");
	q.left = false;
}

static void
test_flow_throttled(struct flow *f)
{
	struct req q = { 0 };
	uint64_t v;
	int n, i;

	for (i = 0; i < 2; i++)
		(void)sign_in(f, &q, AUTH_SIGNIN_BASIC, "test1@contoso.com",
		    "guess", "10.0.1.1");
	v = verified(f->guard);
	n = lookups;
	start(f, &q, AUTH_SIGNIN_FORM, "TEST1@contoso.com", "right",
	    "10.0.2.2");
	ok(q.answered && q.early && q.out == AUTH_SIGNIN_WAIT &&
	    q.wait_ms > 0, "throttled: refused at once, with the wait");
	ok(lookups == n && verified(f->guard) == v,
	    "throttled: before any store or password work");
	fake_ms += q.wait_ms;
	is_int(sign_in(f, &q, AUTH_SIGNIN_FORM, "test1@contoso.com", "right",
	    "10.0.2.2"), AUTH_SIGNIN_OK, "throttled: once waited out, signed "
	    "in");
}

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int
main(void)
{
	struct flow f = { 0 };
	struct store *st = NULL;
	char *dir, *path;

	log_init("test", LOG_INFO);
	if (auth_init() != PS_OK || (dir = t_tmpdir("photosync-signin")) ==
	    NULL)
		return 1;
	test_keys();
	test_creds_basic();
	test_creds_races();
	test_creds_bounds();

	base = event_base_new();
	path = xasprintf("%s/master.db", dir);
	ok(store_open(path, STORE_MASTER, true, &st) == PS_OK &&
	    store_mailbox_add(st, "test1@contoso.com", "", CHEAP_HASH) ==
	    PS_OK && store_mailbox_add(st, "gone@contoso.com", "",
	    CHEAP_HASH) == PS_OK && store_mailbox_add(st, "nopw@contoso.com",
	    "", NULL) == PS_OK, "a store with three mailboxes");
	ok(store_pool_open(base, path, STORE_MASTER, &f.pool) == PS_OK,
	    "its lanes");
	ok((f.guard = guard_new(5, 64)) != NULL, "a guard");
	test_flow(st, &f);
	test_flow_sso(st, &f);
	auth_guard_free(f.guard);
	ok((f.guard = guard_new(1, 64)) != NULL, "a guard with one free "
	    "failure");
	test_flow_throttled(&f);
	auth_guard_free(f.guard);
	store_pool_free(f.pool);
	store_close(st);
	event_base_free(base);
	free(path);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	ok(access(dir, F_OK) != 0, "the temporary directory is gone");
	free(dir);
	return done();
}
