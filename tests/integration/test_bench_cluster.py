"""What the benchmark's figures 9-11 (bench/bench.py) count, checked
against the real programs, since a figure that silently counts nothing
would pass its floor:

  - BENCH_FIGURES: numbers and ranges; any of 1-8 runs all eight; an
    unknown figure or a malformed list stops the bench;
  - figure 11 counts the users fetched twice from the master's log: two
    GetUserPhoto answers for test1 and one for test2 read as {test1: 2,
    test2: 1}, and only from the offset given;
  - figure 11's bulk users on PostgreSQL are users the portal lists, with
    the addresses and digests bulk_portal_users gives them on SQLite; the
    store is emptied of photos and sync states between passes.

Runs once (it starts its own PostgreSQL, tests/pgserver.py).
"""
import hashlib
import os
import sys

import psync
from psync import Master, Portal, basic, done, is_eq, make_image, ok

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "bench"))
import bench  # noqa: E402

work = psync.tmpdir("bench-cluster")

# ---- BENCH_FIGURES ----
ALL = frozenset(range(1, 14))
is_eq(bench.parse_figures(""), ALL, "no selection: every figure")
is_eq(bench.parse_figures("9,10,11"), frozenset((9, 10, 11)),
      "9,10,11: the figures of several nodes alone")
is_eq(bench.parse_figures("10"), frozenset((10,)), "one figure")
is_eq(bench.parse_figures("12"), frozenset((12,)), "the directory's "
      "figure alone")
is_eq(bench.parse_figures("13"), frozenset((13,)), "the bulk import's "
      "figure alone")
is_eq(bench.parse_figures("3"), frozenset(range(1, 9)),
      "any of 1-8 runs all eight (they share their set-up)")
is_eq(bench.parse_figures("1-8, 11"), frozenset(range(1, 9)) | {11},
      "a range and a figure")
for bad in ("14", "0", "9-x", "11-9", "nine"):
    try:
        bench.parse_figures(bad)
        ok(False, "BENCH_FIGURES=%s is refused" % bad)
    except SystemExit as e:
        ok("BENCH_FIGURES" in str(e), "BENCH_FIGURES=%s is refused (%s)" %
           (bad, e))

# ---- the users the master sent a photo more than once ----
m = Master()
for i, email in ((1, "test1@contoso.com"), (2, "test2@contoso.com")):
    m.add_mailbox(email, "pw-%d" % i)
    m.cmd("photo", "set", email, "--file",
          make_image(os.path.join(work, "p%d.jpg" % i), "200x200"))
m.start()


def get_photo(email, pw):
    r = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR96x96" %
              email, {"Authorization": basic(email, pw)})
    is_eq(r.status, 200, "GetUserPhoto of %s" % email)


get_photo("test1@contoso.com", "pw-1")
m.server.log.flush()
offset = os.path.getsize(m.server.log_path)
get_photo("test1@contoso.com", "pw-1")
get_photo("test1@contoso.com", "pw-1")
get_photo("test2@contoso.com", "pw-2")
# (the master writes a request's line before it answers)
is_eq(bench.master_fetches(m.server.log_path, offset),
      {"test1@contoso.com": 2, "test2@contoso.com": 1},
      "the master's log counts GetUserPhoto per address from the offset")
is_eq(bench.master_fetches(m.server.log_path, 0)["test1@contoso.com"], 3,
      "... and from the start")
is_eq(m.stop(), 0, "the master stops")

# ---- bulk users on PostgreSQL ----
pg = psync.pg_server()
db = pg.create_database()
p = Portal(init_args=("--store", pg.uri(db)))
p.add_user("contoso\\test1", "test1@contoso.com")
bench.pg_bulk_users(pg, db, 3)
listed = p.cmd("user", "list")[1]
for i in range(3):
    email = "user%06d@contoso.com" % i
    ok("contoso\\user%06d" % i in listed and email in listed,
       "the portal lists bulk user %d with its address" % i)
    row = bench.pg_sql(pg, db, "SELECT email_md5 || ' ' || email_sha256 "
                       "FROM users WHERE email = '%s'" % email).split()
    is_eq(row, [hashlib.md5(email.encode()).hexdigest(),
                hashlib.sha256(email.encode()).hexdigest()],
          "bulk user %d has its address's digests" % i)
is_eq(bench.pg_value(pg, db, "SELECT count(*) FROM users"), 4,
      "three bulk users and test1")
bench.pg_sql(pg, db, "INSERT INTO sync_state (webapp, account) SELECT id, "
             "'contoso\\test1' FROM webapps")
bench.pg_forget(pg, db)
is_eq(bench.pg_value(pg, db, "SELECT count(*) FROM sync_state"), 0,
      "pg_forget empties the sync states")

done()
