"""photosync portal refresh: its outcomes go to the store in batches, and
a crash in the middle of one loses nothing that was committed.

A refresh writes each user's outcome (photo and sync state) in one
transaction with others: it waits until 16 are pending, or until every
sync in flight is, so that a commit is not paid per user. The debug event
`sync.write_batch` says how many rows each transaction had and how many
syncs were in flight: every batch must be 16 or more, or all that was
left. The leases each sync takes first go in batches too
(`sync.lease_batch`), while no more than --concurrency calls to the
master are made at once. Then a refresh is killed while its first batch waits for the
store's write lock (held here: SQLite's BEGIN IMMEDIATE, PostgreSQL's
tables locked): what an earlier run stored is intact,
no user has a photo without its state, and the next run fetches the
rest. Nothing is timed: the log lines and the store's rows show it."""
import os
import re
import signal
import subprocess

from psync import (PHOTOSYNC, done, is_eq, ok, run, sanitizer_clean,
                   store_change, store_rows, store_write_lock, wait_for,
                   wired)

N = 40
BATCH = 16
m, p = wired()
# N more mailboxes at the master, each with test1's photo under its own
# ETag, and their users at the portal (SQL both stores take).
BULK = [(str(i), "bulk%03d@contoso.com" % i, "contoso\\bulk%03d" % i)
        for i in range(N)]
NUMBERS = ("WITH n(i, email, account) AS (VALUES " +
           ", ".join(["(?, ?, ?)"] * N) + ") ")
ARGS = [v for row in BULK for v in row]
store_change(m.dir, "INSERT INTO mailboxes (email, name, created) " +
             NUMBERS + "SELECT email, 'Bulk', 0 FROM n", ARGS)
store_change(m.dir, "INSERT INTO photos (email, etag, side, updated) " +
             NUMBERS + "SELECT n.email, etag || i, side, updated FROM n, "
             "photos WHERE photos.email = 'test1@contoso.com'", ARGS)
store_change(m.dir, "INSERT INTO photo_sizes (email, code, side, data) " +
             NUMBERS + "SELECT n.email, code, side, data FROM n, "
             "photo_sizes WHERE photo_sizes.email = 'test1@contoso.com'",
             ARGS)
store_change(p.dir, "INSERT INTO users (account, email, name, created) " +
             NUMBERS + "SELECT account, email, 'Bulk', 0 FROM n", ARGS)
USERS = N + 3           # and test1, test2, test3 (no mailbox)
# The bulk users, in a pattern both stores read alike (PostgreSQL's LIKE
# takes a backslash as its escape unless told otherwise).
BULK_USERS = "account LIKE 'contoso\\bulk%' ESCAPE '!'"


def rows(sql, args=()):
    return store_rows(p.dir, sql, args)


def batches(text):
    return [(int(a), int(b)) for a, b in re.findall(
        r"ev=sync\.write_batch rows=(\d+) syncs=(\d+)", text)]


# ---- the outcomes go in batches ----
os.environ["PHOTOSYNC_DEBUG"] = "1"
st, out, err = run("portal", "refresh", "--dir", p.dir, "--all",
                   "--concurrency", "8", check=False)
ok(st == 0 and ("updated      %d" % (N + 2)) in out,
   "refresh --all: %d photos stored (%s)" % (N + 2, out.replace("\n", " | ")))
got = batches(err)
is_eq(sum(r for r, _ in got), USERS, "every user's outcome was written once")
ok(got and all(r >= BATCH or r == s for r, s in got),
   "each transaction had %d outcomes or more, or all the syncs in flight "
   "(%s)" % (BATCH, got))
ok(len(got) <= USERS // BATCH + 2, "%d outcomes in %d transactions, not "
   "one each" % (USERS, len(got)))
is_eq(rows("SELECT count(*) FROM thumbs")[0][0], N + 2,
      "every photo is stored")
# Each sync takes its lease before calling the master. The refresh
# starts more syncs than it lets call the master (--concurrency, and 32
# more): those started in one turn of its loop take their leases in one
# transaction, and wait for their turn at the master with them.
tries = [int(t) for t in re.findall(r"ev=sync\.lease_batch tries=(\d+)",
                                    err)]
is_eq(sum(tries), USERS, "every user's lease was tried once")
ok(tries and tries[0] > 8,
   "the syncs started at once, more than the 8 that may call the master, "
   "took their leases in one transaction: %s" % tries[:2])
ok(len(tries) <= USERS // BATCH + 2, "%d lease tries in %d transactions" %
   (USERS, len(tries)))
# The log is written by the loop in the order things happen: at no
# point were more than 8 GetUserPhoto calls unanswered.
calls = most = 0
for ev in re.findall(r"ev=sync\.photo_(request|answer) ", err):
    calls += 1 if ev == "request" else -1
    most = max(most, calls)
ok(most == 8, "--concurrency 8: at most 8 calls to the master at once, "
   "and 8 were (%d)" % most)

# ---- a crash while a batch waits for the store ----
before = rows("SELECT account, etag FROM thumbs WHERE account IN "
              "('contoso\\test1', 'contoso\\test2') ORDER BY account")
store_change(p.dir, "DELETE FROM thumbs WHERE " + BULK_USERS)
store_change(p.dir, "DELETE FROM sync_state WHERE " + BULK_USERS)
proc = subprocess.Popen([PHOTOSYNC, "portal", "refresh", "--dir", p.dir,
                         "--all", "--concurrency", "8"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
seen = []


def line_with(event):
    """Reads the refresh's log until a line with `event` (or its end)."""
    def found():
        line = proc.stderr.readline()
        seen.append(line)
        return ("ev=" + event + " ") in line or line == ""
    return found


# Once it has its users (the store opened, its states read), the write
# lock is taken here: its first batch waits for it.
wait_for(line_with("refresh.start"), step=0)
# (On PostgreSQL only the photos' and states' tables: the leases the
# refresh takes before each call are another table, as a node's would be.)
lock = store_write_lock(p.dir, tables=("thumbs", "sync_state"))
wait_for(line_with("sync.write_batch"), step=0)
if not ok(any("ev=sync.write_batch" in x for x in seen),
          "the refresh began a batch, which waits for the write lock"):
    print("".join("#   " + x for x in seen[-20:]), flush=True)
proc.send_signal(signal.SIGKILL)
proc.communicate()
lock.release()
ok(proc.returncode == -signal.SIGKILL, "the refresh was killed")
is_eq(rows("SELECT account, etag FROM thumbs WHERE account IN "
           "('contoso\\test1', 'contoso\\test2') ORDER BY account"), before,
      "the photos stored before are as they were")
is_eq(rows("SELECT count(*) FROM thumbs t LEFT JOIN sync_state s ON "
           "s.webapp = t.webapp AND s.account = t.account WHERE "
           "s.last_success IS NULL OR s.last_success = 0 OR "
           "s.master_etag = ''")[0][0], 0,
      "no photo is stored without the state that describes it")
kept = rows("SELECT count(*) FROM thumbs WHERE " + BULK_USERS)[0][0]
is_eq(kept, rows("SELECT count(*) FROM sync_state WHERE " + BULK_USERS +
                 " AND last_success > 0")[0][0],
      "each user's photo and state were written together or not at all")
ok(kept < N, "the batch that waited was lost (%d of %d stored)" % (kept, N))

st, out, err = run("portal", "refresh", "--dir", p.dir, "--all",
                   check=False)
ok(st == 0 and re.search(r"updated\s+%d\b" % (N - kept), out),
   "the next refresh fetched what the killed one had not stored (%s)" %
   out.replace("\n", " | "))
is_eq(rows("SELECT count(*) FROM thumbs")[0][0], N + 2,
      "every photo is stored again")
del os.environ["PHOTOSYNC_DEBUG"]
sanitizer_clean("".join(seen), "the killed refresh")
p.stop()
m.stop()
done()
