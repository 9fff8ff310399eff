/*
 * Unit tests of the auth module's sign-in guard: answers on the loop and
 * never from inside auth_guard_check(), the same Argon2id work for an
 * unknown account, remembered credentials (and a password change that
 * forgets them), the throttle per account and per address on a fake
 * clock, the queue bound, and freeing with checks in flight or from a
 * callback. Also the keyed digest the guard's table is built on, and
 * what both roles' browser sign-ins share (web.h): tokens, and which
 * requests another site's page sent. And the counts nodes share: those
 * a guard reports, those it learns, under the key they agree on.
 *
 * Argon2id at the production cost takes ~200 ms and 64 MiB, so the tests
 * count verifications rather than run many (about fifteen at that cost),
 * and use a cheap hash where the cost is not what is tested.
 */
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/guard.h"
#include "auth/web.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/str.h"
#include "metrics/metrics.h"
#include "t.h"

/*
 * The Argon2id string of "right" at libsodium's least cost (8 KiB, one
 * pass), made with crypto_pwhash_str_alg(): a stored hash that the tests
 * of the throttle, the queue and the table verify cheaply. The hashes of
 * test_answers() and the guard's dummy hash have the production cost.
 */
#define CHEAP_HASH	"$argon2id$v=19$m=8,t=1,p=1$fyXkBAVeu/fVYHNkUkueCw$" \
			"0cmI6nLbfU/a2jxmDMt08Zfy0JW6pesWSGIpEKNCSks"

static struct event_base *base;
static int64_t fake_now = 1000000;

static int64_t
fake_clock(void)
{
	return fake_now;
}

/* ---- answers ---- */

struct answer {
	bool	 called;
	bool	 early;		/* called inside auth_guard_check() */
	ps_err	 rc;
	char	 why[128];
};

static bool in_check;
static int answered;

static void
answer_cb(void *arg, ps_err rc, const char *why)
{
	struct answer *a = arg;

	a->early = in_check;
	a->called = true;
	a->rc = rc;
	str_copy(a->why, why, sizeof(a->why));
	answered++;
}

static void
check(struct auth_guard *g, const char *account, const char *peer,
    const char *hash, const char *password, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	in_check = true;
	auth_guard_check(g, account, peer, hash, password, answer_cb, a);
	in_check = false;
}

/* Runs the loop until `total` answers have come, one event at a time. */
static bool
await(int total)
{
	while (answered < total)
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			return false;
	return true;
}

/* One check, run to its answer. */
static ps_err
check_now(struct auth_guard *g, const char *account, const char *peer,
    const char *hash, const char *password, struct answer *a)
{
	check(g, account, peer, hash, password, a);
	if (!await(answered + 1) || !a->called)
		return PS_EIO;
	return a->rc;
}

static uint64_t
verified(struct auth_guard *g)
{
	struct auth_guard_stats s;

	auth_guard_stats(g, &s);
	return s.verified;
}

static struct auth_guard_limits
test_limits(void)
{
	struct auth_guard_limits l = auth_guard_default_limits;

	l.now_ms = fake_clock;
	l.max_verifying = 1;
	return l;
}

/* ---- the keyed digest ---- */

static void
test_digest(void)
{
	unsigned char key[AUTH_DIGEST_KEY_BYTES], a[16], b[16];
	const char *ab_c[] = { "ab", "c" }, *a_bc[] = { "a", "bc" };
	const char *empty[] = { "x", "" }, *null[] = { "x", NULL };

	rand_bytes(key, sizeof(key));
	auth_digest(key, ab_c, 2, a, sizeof(a));
	auth_digest(key, ab_c, 2, b, sizeof(b));
	ok(memcmp(a, b, 16) == 0, "digest: the same parts, the same digest");
	auth_digest(key, a_bc, 2, b, sizeof(b));
	ok(memcmp(a, b, 16) != 0, "digest: parts split elsewhere differ");
	auth_digest(key, empty, 2, a, sizeof(a));
	auth_digest(key, null, 2, b, sizeof(b));
	ok(memcmp(a, b, 16) == 0, "digest: a NULL part counts as \"\"");
	key[0] ^= 1;
	auth_digest(key, empty, 2, b, sizeof(b));
	ok(memcmp(a, b, 16) != 0, "digest: another key, another digest");
}

/* ---- limits ---- */

static void
test_limits_refused(void)
{
	struct auth_guard_limits l = test_limits();

	l.max_verifying = -1;
	ok(auth_guard_new(base, &l) == NULL &&
	    strstr(ps_errmsg(), "max_verifying") != NULL,
	    "limits: a negative max_verifying is refused, named");
	l = test_limits();
	l.first_delay_ms = 10000;
	ok(auth_guard_new(base, &l) == NULL &&
	    strstr(ps_errmsg(), "cap") != NULL,
	    "limits: a first delay above the account cap is refused");
	l = test_limits();
	l.max_tracked = 3;
	ok(auth_guard_new(base, &l) == NULL &&
	    strstr(ps_errmsg(), "max_tracked") != NULL,
	    "limits: a table of 3 entries is refused");
}

/* ---- right, wrong, unknown, remembered ---- */

static void
test_answers(const char *hash1, const char *hash2)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct auth_guard_stats s;
	struct answer a;
	const char *peer = "192.0.2.1";
	uint64_t known, unknown;
	struct buf out;

	l.free_failures = 100;		/* no throttle here */
	g = auth_guard_new(base, &l);
	ok(g != NULL, "answers: a guard");

	is_int(check_now(g, "Test1", peer, hash1, "right one", &a), PS_OK,
	    "the right password: PS_OK");
	ok(!a.early, "done was not called inside auth_guard_check");
	is_int(verified(g), 1, "one Argon2id verification");
	is_int(check_now(g, "test1", peer, hash1, "wrong one", &a), PS_EAUTH,
	    "a wrong password: PS_EAUTH");
	is_str(a.why, "wrong password", "why says so");
	known = verified(g) - 1;
	is_int(check_now(g, "nobody", peer, NULL, "wrong one", &a), PS_EAUTH,
	    "an unknown account: PS_EAUTH");
	unknown = verified(g) - 1 - known;
	is_int(known, 1, "a wrong password for a real account: one Argon2id");
	is_int(unknown, known, "an unknown account: the same Argon2id work");
	is_int(check_now(g, "nobody2", peer, "", "wrong one", &a), PS_EAUTH,
	    "an account with no password (\"\"): PS_EAUTH");
	is_int(verified(g), 4, "... after the same work");

	is_int(check_now(g, "test1", peer, hash1, "wrong one", &a), PS_EAUTH,
	    "the same wrong password again: PS_EAUTH");
	is_str(a.why, "wrong password (remembered)", "... from memory");
	is_int(check_now(g, "TEST1", peer, hash1, "right one", &a), PS_OK,
	    "the right password again, account in other case: PS_OK");
	is_int(check_now(g, "nobody", peer, NULL, "wrong one", &a), PS_EAUTH,
	    "the unknown account again: PS_EAUTH");
	is_int(verified(g), 4, "repeats cost no Argon2id");
	auth_guard_stats(g, &s);
	is_int(s.remembered, 3, "three answers from memory");

	is_int(check_now(g, "test1", peer, hash2, "right one", &a), PS_EAUTH,
	    "after a password change the old password is refused");
	is_int(verified(g), 5, "... by a new verification");
	is_int(check_now(g, "test1", peer, hash2, "new one", &a), PS_OK,
	    "the new password: PS_OK");
	is_int(verified(g), 6, "... verified once");
	is_int(check_now(g, "test1", peer, hash2, "new one", &a), PS_OK,
	    "the new password again: PS_OK");
	is_int(verified(g), 6, "... from memory");
	fake_now += l.remember_ms;
	is_int(check_now(g, "test1", peer, hash2, "new one", &a), PS_OK,
	    "after remember_ms: PS_OK");
	is_int(verified(g), 7, "... verified again");
	is_int(auth_guard_pending(g), 0, "nothing pending");

	buf_init(&out, 1 << 20);
	metrics_render(&out);
	ok(strstr(buf_str(&out), "photosync_auth_verifications_total 7\n") !=
	    NULL, "metrics: seven verifications");
	ok(strstr(buf_str(&out),
	    "photosync_auth_checks_total{result=\"right\"} 5\n") != NULL,
	    "metrics: five right answers");
	buf_cleanup(&out);
	auth_guard_free(g);
}

/* ---- passwords another system checks ---- */

static int external_calls;
static ps_err external_answer;

static ps_err
external_check(void *arg, const char *account, const char *password)
{
	(void)arg;
	external_calls++;
	if (external_answer == PS_EUPSTREAM)
		return ps_errf(PS_EUPSTREAM, "the directory is down");
	if (strcmp(account, "contoso\\dir1") != 0)
		return PS_EAUTH;
	return strcmp(password, "dir pw") == 0 ? PS_OK : PS_EAUTH;
}

static void
test_external(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct answer a;
	const char *peer = "192.0.2.9";
	const char *acct = "contoso\\dir1";
	int64_t wait;
	int i;

	l.free_failures = 2;
	g = auth_guard_new(base, &l);
	is_int(check_now(g, acct, peer, AUTH_GUARD_EXTERNAL, "no checker",
	    &a), PS_EAUTH, "external: without a checker, never right");
	auth_guard_set_external(g, external_check, NULL);
	external_answer = PS_OK;
	is_int(check_now(g, acct, peer, AUTH_GUARD_EXTERNAL, "dir pw", &a),
	    PS_OK, "external: the checker's yes is right");
	is_int(external_calls, 1, "... asked once, no Argon2id for it");
	is_int(check_now(g, acct, peer, AUTH_GUARD_EXTERNAL, "dir pw", &a),
	    PS_OK, "... and remembered");
	is_int(external_calls, 1, "... without asking again");
	is_int(check_now(g, acct, peer, AUTH_GUARD_EXTERNAL, "bad", &a),
	    PS_EAUTH, "external: the checker's no is wrong");
	external_answer = PS_EUPSTREAM;
	for (i = 0; i < 4; i++)
		check_now(g, acct, peer, AUTH_GUARD_EXTERNAL, "other", &a);
	is_int(a.rc, PS_EUPSTREAM, "external: a checker that cannot say "
	    "answers PS_EUPSTREAM");
	ok(strstr(a.why, "the directory is down") != NULL, "... with its "
	    "reason");
	is_int(auth_guard_verdict(g, acct, peer, a.rc, &wait), AUTH_BUSY,
	    "... which is AUTH_BUSY (503), not a wrong password");
	is_int(auth_guard_wait(g, acct, peer), 0, "... and counts as no "
	    "failure: 2 failures of 2 free, no wait");
	is_int(external_calls, 6, "... nor is it remembered: asked each "
	    "time");
	auth_guard_free(g);
}

/* ---- the throttle ---- */

static struct auth_guard *freed_guard;

static void
free_cb(void *arg, ps_err rc, const char *why)
{
	answer_cb(arg, rc, why);
	auth_guard_free(freed_guard);
}

static void
test_throttle(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct auth_guard_stats s;
	const char *hash = CHEAP_HASH;
	struct answer a, b;
	const char *p1 = "192.0.2.10", *p2 = "192.0.2.11", *p3 = "192.0.2.12";
	bool all_free = true, all_wrong = true;
	int i, before;

	l.remember_ms = 60 * 60 * 1000;	/* "guess" stays remembered */
	g = auth_guard_new(base, &l);
	ok(g != NULL, "throttle: a guard");
	is_int(auth_guard_wait(g, "alice", p1), 0, "no wait at first");

	for (i = 0; i < 5; i++) {
		if (check_now(g, i % 2 ? "Alice" : "ALICE", p1, hash, "guess",
		    &a) != PS_EAUTH)
			all_wrong = false;
		if (auth_guard_wait(g, "alice", p1) != 0)
			all_free = false;
	}
	ok(all_wrong && all_free, "five failures (any case) bring no wait");
	is_int(verified(g), 1, "the repeated guess cost one Argon2id");
	is_int(check_now(g, "alice", p1, hash, "guess", &a), PS_EAUTH,
	    "the sixth failure");
	is_int(auth_guard_wait(g, "alice", p1), 1000, "then a wait of 1 s");
	is_int(auth_guard_wait(g, "alice", NULL), 1000, "... for the account");
	is_int(auth_guard_wait(g, NULL, p1), 1000, "... and for the address");
	is_int(auth_guard_throttled(g), 2, "two throttled: account, address");

	is_int(check_now(g, "alice", p1, hash, "right", &a), PS_EBUSY,
	    "a check during the wait is refused");
	ok(strstr(a.why, "wait") != NULL, "... saying why");
	auth_guard_stats(g, &s);
	ok(s.refused == 1 && s.verified == 1, "... without a verification");
	is_int(auth_guard_wait(g, "alice", p1), 1000, "... and not counted");
	fake_now += 400;
	is_int(auth_guard_wait(g, "alice", p1), 600, "the wait runs down");
	fake_now += 600;
	is_int(auth_guard_wait(g, "alice", p1), 0, "and ends");

	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, "alice", p1), 2000, "7th failure: 2 s");
	fake_now += 2000;
	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, "alice", p1), 4000, "8th failure: 4 s");
	fake_now += 4000;
	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, "alice", NULL), 5000,
	    "9th failure: the account's wait is capped at 5 s");
	is_int(auth_guard_wait(g, NULL, p1), 8000,
	    "... the address's goes on to 8 s");
	is_int(auth_guard_wait(g, "alice", p1), 8000, "the larger counts");
	is_int(auth_guard_wait(g, "alice", p2), 5000,
	    "another address waits the account's cap only");
	fake_now += 8000;
	check_now(g, "alice", p1, hash, "guess", &a);
	fake_now += 16000;
	check_now(g, "alice", p1, hash, "guess", &a);
	fake_now += 32000;
	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, NULL, p1), 60000,
	    "12th failure: the address's wait is capped at 60 s");
	is_int(auth_guard_wait(g, "alice", p2), 5000,
	    "another address still waits 5 s at most");
	is_int(auth_guard_wait(g, NULL, "::ffff:192.0.2.10"), 60000,
	    "the same address IPv4-mapped waits too");
	is_int(verified(g), 1, "all from memory");

	/* Past the free failures, one check of the account at a time. */
	fake_now += 5000;
	is_int(auth_guard_wait(g, "alice", p2), 0, "the account's wait over");
	before = answered;
	check(g, "alice", p2, hash, "guess", &a);
	check(g, "alice", p2, hash, "guess", &b);
	ok(await(before + 2), "two checks at once answered");
	ok(a.rc == PS_EAUTH && b.rc == PS_EBUSY,
	    "the first is checked, the second refused");
	is_int(auth_guard_wait(g, "alice", p2), 5000, "the account waits 5 s");
	is_int(auth_guard_wait(g, NULL, p2), 0, "p2's one failure is free");

	/* An IPv6 client counts by its /64. */
	for (i = 0; i < 6; i++)
		check_now(g, "carol", i % 2 ? "2001:db8::1" : "2001:db8::2",
		    NULL, "guess", &a);
	ok(auth_guard_wait(g, NULL, "2001:db8::ffff") > 0,
	    "IPv6: six failures from one /64 make it wait");
	is_int(auth_guard_wait(g, NULL, "2001:db8:0:1::1"), 0,
	    "IPv6: the next /64 does not");

	/* Counts are forgotten after forget_after_ms without failures. */
	fake_now += l.forget_after_ms;
	is_int(auth_guard_wait(g, "alice", p1), 0,
	    "after forget_after_ms no wait");
	is_int(auth_guard_throttled(g), 0, "and nothing throttled");
	all_free = true;
	for (i = 0; i < 5; i++) {
		check_now(g, "alice", p1, hash, "guess", &a);
		if (auth_guard_wait(g, "alice", p1) != 0)
			all_free = false;
	}
	ok(all_free, "five failures are free again: the count restarted");
	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, "alice", p1), 1000, "the sixth: 1 s");

	/* A success clears the account's count and its address's. */
	fake_now += 1000;
	is_int(check_now(g, "alice", p1, hash, "right", &a), PS_OK,
	    "the right password after the wait: PS_OK");
	is_int(auth_guard_wait(g, "alice", p1), 0, "no wait");
	check_now(g, "alice", p1, hash, "guess", &a);
	is_int(auth_guard_wait(g, "alice", p1), 0,
	    "a failure after the success is free: counts cleared");
	is_int(auth_guard_throttled(g), 0, "nothing throttled");

	/*
	 * An address that failed for several accounts keeps its count when
	 * one of them signs in.
	 */
	for (i = 0; i < 6; i++)
		check_now(g, i % 2 ? "alice" : "bob", p3, i % 2 ? hash : NULL,
		    "guess", &a);
	is_int(auth_guard_wait(g, NULL, p3), 1000, "p3: six failures, 1 s");
	fake_now += 1000;
	is_int(check_now(g, "alice", p3, hash, "right", &a), PS_OK,
	    "alice signs in from p3");
	is_int(auth_guard_wait(g, "alice", NULL), 0, "alice's count cleared");
	check_now(g, "bob", p3, NULL, "guess", &a);
	is_int(auth_guard_wait(g, NULL, p3), 2000,
	    "p3's count was kept: its next failure waits 2 s");
	auth_guard_stats(g, &s);
	is_int(s.verified, 4, "four Argon2id verifications in all");
	/* alice and p1 twice, carol, the /64, p3. */
	is_int(s.throttled, 7, "seven times a count began to wait");

	/* Freed from a callback: the other answers are never given. */
	freed_guard = g;
	before = answered;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	auth_guard_check(g, "bob", p3, NULL, "guess", free_cb, &a);
	auth_guard_check(g, "bob", p3, NULL, "guess", free_cb, &b);
	ok(await(before + 1), "the first refusal answered");
	ok(a.called && a.rc == PS_EBUSY, "... as a wait (PS_EBUSY)");
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(!b.called, "the guard freed in its callback: no second answer");
}

/* ---- the queue ---- */

static void
test_queue(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct auth_guard_stats s;
	const char *hash = CHEAP_HASH;
	struct answer a[3];
	int before = answered;

	l.max_queued = 1;
	l.free_failures = 100;
	g = auth_guard_new(base, &l);
	ok(g != NULL, "queue: a guard with 1 thread and 1 place");
	check(g, "dave", "192.0.2.20", hash, "q1", &a[0]);
	check(g, "erin", "192.0.2.21", hash, "q2", &a[1]);
	check(g, "fred", "192.0.2.22", hash, "q3", &a[2]);
	is_int(auth_guard_pending(g), 3, "three checks pending");
	ok(await(before + 3), "all three answered");
	ok(a[0].rc == PS_EAUTH && a[1].rc == PS_EAUTH,
	    "the running and the queued one are checked");
	is_int(a[2].rc, PS_EBUSY, "the third is refused: PS_EBUSY");
	ok(strstr(a[2].why, "waiting") != NULL, "... saying why");
	ok(!a[0].early && !a[1].early && !a[2].early,
	    "none answered inside auth_guard_check");
	auth_guard_stats(g, &s);
	ok(s.verified == 2 && s.busy == 1, "two verifications, one refusal");
	is_int(auth_guard_wait(g, "fred", "192.0.2.22"), 0,
	    "the refusal did not count as a failure");
	auth_guard_free(g);
}

/* ---- other sign-in work on the guard's threads ---- */

struct job {
	pthread_t	 thread;	/* run()'s */
	bool		 ran, done;
};

static void
job_run(void *arg)
{
	struct job *j = arg;

	j->thread = pthread_self();
	j->ran = true;
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	j->done = j->ran;
	answered++;
}

static void
test_run(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct answer a;
	struct job j[3];
	int before = answered;

	memset(j, 0, sizeof(j));
	l.max_queued = 1;
	l.free_failures = 100;
	g = auth_guard_new(base, &l);
	ok(auth_guard_run(g, job_run, job_done, &j[0]) == PS_OK &&
	    auth_guard_run(g, job_run, job_done, &j[1]) == PS_OK,
	    "run: two jobs taken (1 thread and 1 place)");
	is_int(auth_guard_pending(g), 2, "both pending");
	ok(auth_guard_run(g, job_run, job_done, &j[2]) == PS_EBUSY &&
	    strstr(ps_errmsg(), "limit") != NULL,
	    "a third is refused at once, saying why");
	check(g, "gina", "192.0.2.30", CHEAP_HASH, "x", &a);
	ok(await(before + 3), "the jobs and a check answered");
	ok(j[0].done && j[1].done && !j[2].ran,
	    "each taken job ran, then was called back; the refused one not");
	ok(!pthread_equal(j[0].thread, pthread_self()),
	    "off the loop's thread");
	is_int(a.rc, PS_EBUSY, "a password check counts against the same "
	    "budget: refused while the jobs held it");
	is_int(auth_guard_pending(g), 0, "nothing pending after");
	auth_guard_free(g);
}

/* ---- one check for a credential presented many times at once ---- */

static void
test_joined(const char *hash1)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct auth_guard_stats s;
	struct answer a[8], other;
	int i, before = answered;
	bool right = true, late = true;

	l.max_queued = 1;	/* the joined need no place in the queue */
	l.free_failures = 100;
	g = auth_guard_new(base, &l);
	ok(g != NULL, "joined: a guard with 1 thread and 1 place");
	for (i = 0; i < 8; i++)
		check(g, "jo", "192.0.2.40", hash1, "right one", &a[i]);
	check(g, "kay", "192.0.2.41", hash1, "wrong one", &other);
	is_int(auth_guard_pending(g), 9, "nine checks pending");
	ok(await(before + 9), "all nine answered");
	for (i = 0; i < 8; i++) {
		right = right && a[i].rc == PS_OK;
		late = late && !a[i].early;
	}
	ok(right && late, "the eight of one credential: PS_OK, on the loop");
	is_int(other.rc, PS_EAUTH, "another credential, queued: checked");
	auth_guard_stats(g, &s);
	is_int(s.verified, 2, "two Argon2id verifications, not nine");
	is_int(s.joined, 7, "seven joined the first");
	is_int(auth_guard_pending(g), 0, "nothing pending");

	/* Freed while some wait for a running check: none answered. */
	before = answered;
	for (i = 0; i < 3; i++)
		check(g, "lee", "192.0.2.42", hash1, "lee's", &a[i]);
	auth_guard_free(g);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(answered == before, "freed with joined checks: none answered");
}

/* ---- the table's bound ---- */

static void
test_table(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g;
	struct answer a, many[9];
	char peer[32];
	int i, waiting = 0, before;
	bool newest = true, oldest = true, checked = true;

	l.max_tracked = 8;		/* one set of 8 entries */
	l.free_failures = 0;		/* every failure brings a wait */
	l.max_queued = 16;
	g = auth_guard_new(base, &l);
	ok(g != NULL, "table: a guard of 8 entries");
	is_int(check_now(g, "kim", "10.0.1.1", CHEAP_HASH, "right", &a), PS_OK,
	    "the cheap hash verifies");
	is_int(check_now(g, "kim", "10.0.1.1", CHEAP_HASH, "guess", &a),
	    PS_EAUTH, "... and refuses");

	/* 20 addresses fail once each, the same wrong password. */
	for (i = 0; i < 20; i++) {
		fake_now++;
		snprintf(peer, sizeof(peer), "10.0.0.%d", i);
		check_now(g, NULL, peer, CHEAP_HASH, "guess", &a);
	}
	is_int(auth_guard_throttled(g), 8, "8 counts kept, not 20");
	for (i = 0; i < 20; i++) {
		snprintf(peer, sizeof(peer), "10.0.0.%d", i);
		if (auth_guard_wait(g, NULL, peer) > 0)
			waiting++;
		else if (i >= 12)
			newest = false;
		if (i < 12 && auth_guard_wait(g, NULL, peer) > 0)
			oldest = false;
	}
	is_int(waiting, 8, "8 addresses wait");
	ok(newest && oldest, "the 8 newest: the oldest counts made room");
	/*
	 * Kim and 10.0.1.1 hold a count each, the three credentials the
	 * rest. The addresses' counts fill the table, taking the oldest
	 * credentials' places first, then the oldest counts'; a credential
	 * never takes a count's place. So "guess" is remembered from the 1st
	 * address to the 6th, which takes its place, and checked for each
	 * address from the 7th on: 2 + 1 + 14 verifications.
	 */
	is_int(verified(g), 17, "credentials made way for counts, not back");

	/* Eight checks running hold all eight entries: a ninth has none. */
	before = answered;
	for (i = 0; i < 9; i++) {
		snprintf(peer, sizeof(peer), "10.0.2.%d", i);
		check(g, NULL, peer, CHEAP_HASH, peer, &many[i]);
	}
	ok(await(before + 9), "nine checks answered");
	for (i = 0; i < 8; i++)
		if (many[i].rc != PS_EAUTH)
			checked = false;
	ok(checked, "the eight holding an entry are checked");
	is_int(many[8].rc, PS_EBUSY, "the ninth is refused: no room");
	is_int(auth_guard_throttled(g), 8, "still 8 counts");
	auth_guard_free(g);
}

/* ---- freeing with checks in flight ---- */

static void
test_free_in_flight(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g = auth_guard_new(base, &l);
	const char *hash = CHEAP_HASH;
	struct answer a[3];
	int before = answered;

	ok(g != NULL, "free: a guard");
	check(g, "gina", "192.0.2.30", hash, "f1", &a[0]);
	check(g, "hank", "192.0.2.31", hash, "f2", &a[1]);
	check(g, "ivan", "192.0.2.32", NULL, "f3", &a[2]);
	auth_guard_free(g);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(answered == before && !a[0].called && !a[1].called &&
	    !a[2].called, "freed with checks running and queued: none "
	    "answered (and nothing leaks)");
}

static void
test_cross_site(void)
{
	const char *why = NULL;
	char a[AUTH_TOKEN_HEX + 1], b[AUTH_TOKEN_HEX + 1];

	auth_token_new(a);
	auth_token_new(b);
	ok(strlen(a) == AUTH_TOKEN_HEX && strcmp(a, b) != 0,
	    "token: 64 hex digits, a new one each time");
	ok(auth_token_eq(a, a, strlen(a)) && !auth_token_eq(a, b, strlen(b)) &&
	    !auth_token_eq(a, a, strlen(a) - 1) && !auth_token_eq(a, NULL, 0) &&
	    !auth_token_eq("", "", 0), "token: equal only to itself, never "
	    "empty");
	ok(!auth_cross_site_headers(NULL, NULL, "portal.contoso.com", &why),
	    "cross-site: no Origin, no Sec-Fetch-Site (a script): passes");
	ok(!auth_cross_site_headers(NULL, NULL, NULL, &why),
	    "cross-site: ... even without a Host");
	ok(!auth_cross_site_headers("https://portal.contoso.com",
	    "same-origin", "portal.contoso.com", &why) &&
	    !auth_cross_site_headers("https://Portal.Contoso.com:443", NULL,
	    "portal.contoso.com", &why) &&
	    !auth_cross_site_headers("https://portal.contoso.com", NULL,
	    "portal.contoso.com:443", &why) &&
	    !auth_cross_site_headers("https://[::1]:8443", NULL, "[::1]:8443",
	    &why) &&
	    !auth_cross_site_headers(NULL, "none", "portal.contoso.com", &why),
	    "cross-site: our own origin (any case, :443 or none) passes");
	why = NULL;
	ok(auth_cross_site_headers("https://evil.example", NULL,
	    "portal.contoso.com", &why) && why != NULL,
	    "cross-site: another Origin is refused, with a reason");
	ok(auth_cross_site_headers("null", NULL, "portal.contoso.com", &why) &&
	    auth_cross_site_headers("http://portal.contoso.com", NULL,
	    "portal.contoso.com", &why) &&
	    auth_cross_site_headers("https://portal.contoso.com:8443", NULL,
	    "portal.contoso.com", &why) &&
	    auth_cross_site_headers("https://portal.contoso.com.evil.example",
	    NULL, "portal.contoso.com", &why) &&
	    auth_cross_site_headers("https://portal.contoso.com/x", NULL,
	    "portal.contoso.com", &why) &&
	    auth_cross_site_headers("https://portal.contoso.com", NULL, NULL,
	    &why) &&
	    auth_cross_site_headers("https://portal.contoso.com", NULL, "",
	    &why), "cross-site: null, http, another port, a longer host, a "
	    "path, no Host: refused");
	ok(auth_cross_site_headers(NULL, "cross-site", "portal.contoso.com",
	    &why) && auth_cross_site_headers("https://portal.contoso.com",
	    "same-site", "portal.contoso.com", &why),
	    "cross-site: Sec-Fetch-Site cross-site or same-site: refused");
}

/* The verdict every sign-in of both roles draws from a check. */
static void
test_verdict(void)
{
	struct auth_guard_limits l = test_limits();
	struct auth_guard *g = auth_guard_new(base, &l);
	struct answer a;
	int64_t wait = -1;
	int i;

	ok(g != NULL, "verdict: a guard");
	ok(auth_guard_verdict(g, "dave", "192.0.2.40", PS_OK, &wait) ==
	    AUTH_SIGNED_IN && wait == 0, "verdict: PS_OK signs in");
	ok(auth_guard_verdict(g, "dave", "192.0.2.40", PS_EAUTH, &wait) ==
	    AUTH_WRONG && wait == 0, "verdict: PS_EAUTH is wrong (401)");
	ok(auth_guard_verdict(g, "dave", "192.0.2.40", PS_EBUSY, &wait) ==
	    AUTH_BUSY && wait == 0,
	    "verdict: PS_EBUSY with nothing to wait out is busy (503)");
	for (i = 0; i < 6; i++)
		check_now(g, "dave", "192.0.2.40", CHEAP_HASH, "guess", &a);
	ok(auth_guard_verdict(g, "dave", "192.0.2.41", PS_EBUSY, &wait) ==
	    AUTH_WAIT && wait == l.first_delay_ms,
	    "verdict: PS_EBUSY while failures must be waited out is that "
	    "wait (429)");
	ok(auth_guard_verdict(g, "erin", "192.0.2.41", PS_EBUSY, &wait) ==
	    AUTH_BUSY, "verdict: ... for that account only");
	is_int(auth_retry_after_s(1), 1, "Retry-After: 1 ms is 1 s");
	is_int(auth_retry_after_s(0), 1, "Retry-After: never 0");
	is_int(auth_retry_after_s(1000), 1, "Retry-After: 1000 ms is 1 s");
	is_int(auth_retry_after_s(1001), 2, "Retry-After: rounded up");
	auth_guard_free(g);
}

/* ---- counts shared between nodes ---- */

/* The counts a guard reported, the newest of each kind. */
struct reported {
	int			 n;
	struct auth_guard_count	 account, peer;
};

static void
count_cb(void *arg, const struct auth_guard_count *c)
{
	struct reported *r = arg;

	r->n++;
	if (c->kind == AUTH_COUNT_ACCOUNT)
		r->account = *c;
	else
		r->peer = *c;
}

static void
test_shared(void)
{
	struct auth_guard_limits l = test_limits();
	unsigned char key[AUTH_GUARD_KEY_BYTES];
	struct auth_guard *g1, *g2, *alone;
	struct reported r1 = { 0 }, r2 = { 0 }, ra = { 0 };
	struct auth_guard_count learnt;
	struct answer a;
	const char *p1 = "192.0.2.20";
	int i, n;

	memset(key, 7, sizeof(key));
	g1 = auth_guard_new(base, &l);
	g2 = auth_guard_new(base, &l);
	alone = auth_guard_new(base, &l);
	ok(g1 && g2 && alone, "shared: three guards");
	auth_guard_share_key(g1, key);
	auth_guard_share_key(g2, key);
	auth_guard_on_count(g1, count_cb, &r1);
	auth_guard_on_count(g2, count_cb, &r2);
	auth_guard_on_count(alone, count_cb, &ra);

	for (i = 0; i < 5; i++)
		check_now(g1, "Bob", p1, CHEAP_HASH, "guess", &a);
	is_int(r1.n, 10, "each failure reported, for account and address");
	is_int(r1.account.failures, 5, "... with the count now");
	is_int(auth_guard_wait(g1, "bob", p1), 0, "five failures: no wait");

	/* The same names on both nodes, another under a key of its own. */
	check_now(g2, "BOB", p1, CHEAP_HASH, "guess", &a);
	ok(memcmp(r1.account.name, r2.account.name,
	    AUTH_GUARD_NAME_BYTES) == 0 && memcmp(r1.peer.name,
	    r2.peer.name, AUTH_GUARD_NAME_BYTES) == 0,
	    "guards sharing the key name an account and an address alike");
	check_now(alone, "bob", p1, CHEAP_HASH, "guess", &a);
	ok(memcmp(r1.account.name, ra.account.name,
	    AUTH_GUARD_NAME_BYTES) != 0, "a guard's own key names it apart");
	is_int(auth_guard_wait(g2, "bob", p1), 0, "g2 alone: one failure");

	/* The sixth failure, counted over both, throttles at once. */
	n = r2.n;
	learnt = r1.account;
	learnt.failures = 6;
	auth_guard_learn(g2, &learnt);
	is_int(auth_guard_wait(g2, "bob", NULL), 1000,
	    "a count of 6 learnt: a wait of 1 s at once");
	is_int(auth_guard_wait(g2, "bob", "192.0.2.99"), 1000,
	    "... for the account from any address");
	is_int(check_now(g2, "bob", "192.0.2.99", CHEAP_HASH, "right", &a),
	    PS_EBUSY, "... and a check meanwhile is refused");
	is_int(r2.n, n, "a learnt count is not reported back");
	learnt.failures = 3;
	auth_guard_learn(g2, &learnt);
	is_int(auth_guard_wait(g2, "bob", NULL), 1000,
	    "a smaller count learnt changes nothing");

	learnt = r1.peer;
	auth_guard_learn(g2, &learnt);
	is_int(auth_guard_wait(g2, NULL, p1), 0,
	    "the address's 5 learnt (more than its 1): no wait yet");
	check_now(g2, "carol", p1, CHEAP_HASH, "guess", &a);
	is_int(auth_guard_wait(g2, NULL, p1), 1000,
	    "then one more failure here: the address waits");
	is_int(r2.peer.failures, 6, "... and reports 6, not 2");

	/* Expiry: a learnt count is forgotten as a local one. */
	fake_now += l.forget_after_ms - 1;
	is_int(auth_guard_wait(g2, "bob", NULL), 0, "the wait is over");
	learnt = r1.account;
	learnt.failures = 9;
	auth_guard_learn(g2, &learnt);
	ok(auth_guard_wait(g2, "bob", NULL) > 0, "9 learnt: a wait again");
	fake_now += l.forget_after_ms;
	is_int(auth_guard_wait(g2, "bob", NULL), 0,
	    "forget_after_ms later the learnt count is forgotten");
	check_now(g2, "bob", NULL, CHEAP_HASH, "guess", &a);
	is_int(r2.account.failures, 1, "... and counting starts again at 1");

	/* A success clears the count here and is reported, then elsewhere. */
	learnt = r1.account;
	learnt.failures = 7;
	auth_guard_learn(g1, &learnt);
	fake_now += l.account_cap_ms;
	n = r1.n;
	is_int(check_now(g1, "bob", "192.0.2.30", CHEAP_HASH, "right", &a),
	    PS_OK, "g1: a right password");
	is_int(r1.n, n + 1, "the success is reported once (the account)");
	is_int(r1.account.failures, 0, "... as a cleared count");
	auth_guard_learn(g2, &learnt);
	ok(auth_guard_wait(g2, "bob", NULL) > 0, "g2 had learnt 7");
	auth_guard_learn(g2, &r1.account);
	is_int(auth_guard_wait(g2, "bob", NULL), 0,
	    "the clear learnt: no wait on g2 either");
	n = r1.n;
	check_now(g1, "bob", "192.0.2.30", CHEAP_HASH, "right", &a);
	is_int(r1.n, n, "a success with no count to clear reports nothing");

	auth_guard_free(g1);
	auth_guard_free(g2);
	auth_guard_free(alone);
}

int
main(void)
{
	char *hash1 = NULL, *hash2 = NULL;

	log_init("test", LOG_INFO);
	if (auth_init() != PS_OK)
		return 1;
	base = event_base_new();
	ok(auth_password_hash("right one", &hash1) == PS_OK &&
	    auth_password_hash("new one", &hash2) == PS_OK, "two hashes");
	test_digest();
	test_cross_site();
	test_limits_refused();
	test_answers(hash1, hash2);
	test_external();
	test_throttle();
	test_shared();
	test_verdict();
	test_queue();
	test_run();
	test_joined(hash1);
	test_table();
	test_free_in_flight();
	free(hash1);
	free(hash2);
	event_base_free(base);
	return done();
}
