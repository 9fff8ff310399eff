"""photosync portal refresh: its outcomes go to the store in batches, and
a crash in the middle of one loses nothing that was committed.

A refresh writes each user's outcome (photo and sync state) in one
transaction with others: it waits until 16 are pending, or until every
sync in flight is, so that a commit is not paid per user. The debug event
`sync.write_batch` says how many rows each transaction had and how many
syncs were in flight: every batch must be 16 or more, or all that was
left. Then a refresh is killed while its first batch waits for the
store's write lock (held here): what an earlier run stored is intact,
no user has a photo without its state, and the next run fetches the
rest. Nothing is timed: the log lines and the store's rows show it."""
import os
import re
import signal
import sqlite3
import subprocess

from psync import (PHOTOSYNC, done, is_eq, ok, run, sanitizer_clean,
                   store_change, wait_for, wired)

N = 40
BATCH = 16
m, p = wired()
mdb = os.path.join(m.dir, "master.db")
pdb = os.path.join(p.dir, "portal.db")

# N more mailboxes at the master, each with test1's photo under its own
# ETag, and their users at the portal.
NUMBERS = ("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
           "WHERE i < %d) " % (N - 1))
store_change(mdb, "INSERT INTO mailboxes (email, name, created) " + NUMBERS +
             "SELECT printf('bulk%03d@contoso.com', i), 'Bulk', 0 FROM n")
store_change(mdb, "INSERT INTO photos (email, etag, side, updated) " +
             NUMBERS + "SELECT printf('bulk%03d@contoso.com', i), "
             "etag || i, side, updated FROM n, photos WHERE email = "
             "'test1@contoso.com'")
store_change(mdb, "INSERT INTO photo_sizes (email, code, side, data) " +
             NUMBERS + "SELECT printf('bulk%03d@contoso.com', i), code, "
             "side, data FROM n, photo_sizes WHERE email = "
             "'test1@contoso.com'")
store_change(pdb, "INSERT INTO users (account, email, name, created) " +
             NUMBERS + "SELECT printf('contoso\\bulk%03d', i), "
             "printf('bulk%03d@contoso.com', i), 'Bulk', 0 FROM n")
USERS = N + 3           # and test1, test2, test3 (no mailbox)


def rows(sql, args=()):
    db = sqlite3.connect(pdb, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


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

# ---- a crash while a batch waits for the store ----
before = rows("SELECT account, etag FROM thumbs WHERE account IN "
              "('contoso\\test1', 'contoso\\test2') ORDER BY account")
store_change(pdb, "DELETE FROM thumbs WHERE account LIKE 'contoso\\bulk%'")
store_change(pdb, "DELETE FROM sync_state WHERE account LIKE "
             "'contoso\\bulk%'")
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
lock = sqlite3.connect(pdb, timeout=10, isolation_level=None)
lock.execute("BEGIN IMMEDIATE")
wait_for(line_with("sync.write_batch"), step=0)
if not ok(any("ev=sync.write_batch" in x for x in seen),
          "the refresh began a batch, which waits for the write lock"):
    print("".join("#   " + x for x in seen[-20:]), flush=True)
proc.send_signal(signal.SIGKILL)
proc.communicate()
lock.rollback()
lock.close()
ok(proc.returncode == -signal.SIGKILL, "the refresh was killed")
is_eq(rows("SELECT account, etag FROM thumbs WHERE account IN "
           "('contoso\\test1', 'contoso\\test2') ORDER BY account"), before,
      "the photos stored before are as they were")
is_eq(rows("SELECT count(*) FROM thumbs t LEFT JOIN sync_state s ON "
           "s.webapp = t.webapp AND s.account = t.account WHERE "
           "s.last_success IS NULL OR s.last_success = 0 OR "
           "s.master_etag = ''")[0][0], 0,
      "no photo is stored without the state that describes it")
kept = rows("SELECT count(*) FROM thumbs WHERE account LIKE "
            "'contoso\\bulk%'")[0][0]
is_eq(kept, rows("SELECT count(*) FROM sync_state WHERE account LIKE "
                 "'contoso\\bulk%' AND last_success > 0")[0][0],
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
