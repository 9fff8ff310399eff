"""The PostgreSQL store, through the commands: init --store keeps the
address and a passfile (0600) and every later command finds the store
from the state directory alone; init refuses, on one line and with
nothing written, an address with a password, an unreachable server, the
other role's store and a newer schema; a portal on PostgreSQL listens to
the store's notifications and listens again once that connection was
lost; `store migrate` copies a SQLite store of 1,000 users (and a
master's photos) into PostgreSQL, checks it, leaves the source as it was,
and refuses a database that holds a store already. Needs a database: PHOTOSYNC_TEST_PG_URI (a URI to an empty database
on a server the test environment started); skipped without it."""
import os
import re
import subprocess
import sys

import hashlib

from psync import (Server, done, is_eq, make_image, ok, run, store_change,
                   tmpdir, wait_for, write)

URI = os.environ.get("PHOTOSYNC_TEST_PG_URI")
if not URI:
    print("1..0 # SKIP PHOTOSYNC_TEST_PG_URI is not set")
    sys.exit(0)

made = []


def psql(uri, sql):
    return subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v",
                           "ON_ERROR_STOP=1", "-d", uri, "-c", sql],
                          capture_output=True, text=True,
                          check=True).stdout.strip()


def with_db(db):
    """URI with the database `db` in place of its own."""
    scheme, rest = URI.split("://", 1)
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
        query = "?" + query
    host = rest.split("/", 1)[0]
    return "%s://%s/%s%s" % (scheme, host, db, query)


def new_db(name):
    db = "photosync_it_%d_%s" % (os.getpid(), name)
    psql(URI, "CREATE DATABASE %s" % db)
    made.append(db)
    return with_db(db)


def drop_all():
    for db in made:
        psql(URI, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)


import atexit  # noqa: E402
atexit.register(drop_all)

work = tmpdir("store-pg")
pwfile = write(os.path.join(work, "store.pw"), "s3cr:et\n")

# ---- init keeps the address and the password, later commands find them ----
muri = new_db("master")
mdir = os.path.join(work, "master")
rc, out, err = run("master", "init", "--dir", mdir, "--host",
                   "127.0.0.1:0", "--domain", "contoso.com", "--store",
                   muri, "--store-password-file", pwfile, check=False)
is_eq(rc, 0, "master init --store: exit 0")
ok(muri in out, "it says where the store is")
addr = os.path.join(mdir, "store-address")
pw = os.path.join(mdir, "store-password")
ok(os.path.exists(addr) and os.stat(addr).st_mode & 0o777 == 0o600,
   "the address is kept, mode 0600")
with open(addr) as f:
    is_eq(f.read(), muri + "\n", "as given")
ok(os.stat(pw).st_mode & 0o777 == 0o600, "the password is kept, mode 0600")
with open(pw) as f:
    is_eq(f.read(), "*:*:*:*:s3cr\\:et\n", "in libpq's passfile format")
ok(not os.path.exists(os.path.join(mdir, "master.db")),
   "no SQLite file is made")
run("master", "mailbox", "add", "--dir", mdir, "test1@contoso.com",
    "--name", "Test One")
rc, out, err = run("master", "mailbox", "list", "--dir", mdir)
ok("test1@contoso.com" in out, "a later command finds the store")
is_eq(psql(muri, "SELECT email FROM mailboxes"), "test1@contoso.com",
      "the mailbox is in the database")
rc, out, err = run("master", "init", "--dir", mdir, "--host",
                   "127.0.0.1:0", "--domain", "contoso.com", "--store",
                   muri, check=False)
ok(rc != 0 and "already initialised" in err,
   "a second init of the directory is refused")


def refused(what, args, reason, db_uri=None, before=None):
    """init with `args` must fail: exit 1, one line saying `reason`, no
    directory, and (db_uri) the database as it was (`before`)."""
    d = os.path.join(work, "refused-" + what.split()[0])
    rc, out, err = run(*(args[:2] + ["--dir", d] + args[2:]), check=False)
    is_eq(rc, 1, "%s: exit 1" % what)
    lines = [x for x in err.splitlines() if " ev=store.migrated " not in x]
    ok(len(lines) == 1 and re.search(reason, lines[0]),
       "%s: one line saying so (%s)" % (what, lines))
    ok(not os.path.exists(d), "%s: no state directory left" % what)
    if db_uri:
        is_eq(psql(db_uri, "SELECT mark || '/' || version FROM "
                   "photosync_store"), before,
              "%s: the store is left as it was" % what)


portal = ["portal", "init", "--url", "https://127.0.0.1:0"]
refused("a password in the address",
        portal + ["--store", "postgresql://app:pw@localhost/photosync"],
        "--store-password-file")
refused("an unreachable server",
        portal + ["--store",
                  "postgresql://nobody@/photosync?host=%s/none" % work],
        "cannot connect to the store")
mark = psql(muri, "SELECT mark || '/' || version FROM photosync_store")
refused("the master's store", portal + ["--store", muri],
        "is not a portal's store", muri, mark)
puri = new_db("newer")
rc, out, err = run("portal", "init", "--dir", os.path.join(work, "pnew"),
                   "--url", "https://127.0.0.1:0", "--store", puri,
                   check=False)
is_eq(rc, 0, "portal init --store without a password")
ok(not os.path.exists(os.path.join(work, "pnew", "store-password")),
   "keeps no password file")
suri = new_db("stdin")
sdir0 = os.path.join(work, "pstdin")
rc, out, err = run("portal", "init", "--dir", sdir0, "--url",
                   "https://127.0.0.1:0", "--store", suri,
                   "--store-password-file", "-", input="from stdin\n",
                   check=False)
is_eq(rc, 0, "portal init --store-password-file - (standard input)")
with open(os.path.join(sdir0, "store-password")) as f:
    is_eq(f.read(), "*:*:*:*:from stdin\n", "the password read from it")
psql(puri, "UPDATE photosync_store SET version = version + 1")
newer = psql(puri, "SELECT mark || '/' || version FROM photosync_store")
refused("a newer schema", portal + ["--store", puri], "newer than this",
        puri, newer)

# ---- a portal on PostgreSQL listens, and listens again ----
luri = new_db("listen")
ldir = os.path.join(work, "listen")
run("portal", "init", "--dir", ldir, "--url", "https://127.0.0.1:0",
    "--store", luri)
s = Server("portal", ldir)
ok(s.wait_log(r"ev=store\.feed_listening "),
   "the server listens to the store's notifications")
since = len(s.logs())
killed = psql(luri, "SELECT count(pg_terminate_backend(pid)) FROM "
              "pg_stat_activity WHERE datname = current_database() AND "
              "query = 'LISTEN photosync_feed'")
is_eq(killed, "1", "its listening connection is killed")
ok(s.wait_log(r"ev=store\.feed_listen_lost ", since),
   "the server sees it lost")
ok(s.wait_log(r"ev=store\.feed_listening ", since),
   "and listens again")
run("portal", "user", "add", "--dir", ldir, "contoso\\test9",
    "--email", "test9@contoso.com")
ok(wait_for(lambda: psql(luri, "SELECT count(*) FROM users") == "1"),
   "the store takes changes meanwhile")
is_eq(s.stop(), 0, "the server stops cleanly")


# ---- store migrate: SQLite into PostgreSQL ----
def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


sdir = os.path.join(work, "sqlite-portal")
run("portal", "init", "--dir", sdir, "--url", "https://127.0.0.1:0")
db = os.path.join(sdir, "portal.db")
run("portal", "webapp", "list", "--dir", sdir)  # makes the feed's counter
store_change(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
             "FROM n WHERE i < 1000) INSERT INTO users (account, email, "
             "name, created) SELECT 'contoso\\u' || i, 'u' || i || "
             "'@contoso.com', 'User ' || i, 1700000000 + i FROM n")
store_change(db, "INSERT INTO thumbs (webapp, account, source, etag, "
             "updated, s, m, l, hr) VALUES (1, 'contoso\\u7', 'master', "
             "'e7', 1, x'ffd8ff01', x'ffd8ff02', x'ffd8ff03', NULL)")
store_change(db, "UPDATE users SET directory_id = 'guid-7' WHERE account = "
             "'contoso\\u7'")
before = sha(db)
muri2 = new_db("migrate")
rc, out, err = run("portal", "store", "migrate", "--dir", sdir, "--to",
                   muri2, check=False)
is_eq(rc, 0, "portal store migrate: exit 0")
ok("users" in out and "500/1000 rows" in out and "1000/1000 rows" in out,
   "with progress")
ok("checked" in out, "the copy is checked")
is_eq(sha(db), before, "the SQLite file is left as it was")
is_eq(psql(muri2, "SELECT count(*) FROM users"), "1000",
      "the 1,000 users are in PostgreSQL")
is_eq(psql(muri2, "SELECT encode(m, 'hex') FROM thumbs"), "ffd8ff02",
      "photos byte for byte")
is_eq(psql(muri2, "SELECT directory_id FROM users WHERE directory_id IS "
           "NOT NULL"), "guid-7", "a user's directory id is copied")
rc, out, err = run("portal", "user", "list", "--dir", sdir)
ok(len(out.splitlines()) == 1000 and "contoso\\u999" in out,
   "the directory now uses the copy")
run("portal", "webapp", "add", "--dir", sdir, "--url",
    "https://127.0.0.2:0")
is_eq(psql(muri2, "SELECT max(id) FROM webapps"), "2",
      "new rows get ids past the copied ones")
rc, out, err = run("portal", "store", "migrate", "--dir", sdir, "--to",
                   muri2, check=False)
ok(rc == 1 and "on PostgreSQL already" in err,
   "a store on PostgreSQL is not migrated again")

odir = os.path.join(work, "sqlite-other")
run("portal", "init", "--dir", odir, "--url", "https://127.0.0.1:0")
odb = os.path.join(odir, "portal.db")
before = sha(odb)
rc, out, err = run("portal", "store", "migrate", "--dir", odir, "--to",
                   muri2, check=False)
ok(rc == 1 and "already holds a store with rows" in err,
   "a database with a store in it is refused")
ok(not os.path.exists(os.path.join(odir, "store-address")) and
   sha(odb) == before, "and the directory is left as it was")
is_eq(psql(muri2, "SELECT count(*) FROM users"), "1000",
      "and so is the database")

mdir2 = os.path.join(work, "sqlite-master")
run("master", "init", "--dir", mdir2, "--host", "127.0.0.1:0", "--domain",
    "contoso.com")
run("master", "mailbox", "add", "--dir", mdir2, "test1@contoso.com")
run("master", "mailbox", "add", "--dir", mdir2, "test2@contoso.com")
store_change(os.path.join(mdir2, "master.db"), "UPDATE mailboxes SET "
             "directory_id = 'guid-2', disabled = 1 WHERE email = "
             "'test2@contoso.com'")
run("master", "photo", "set", "--dir", mdir2, "test1@contoso.com", "--file",
    make_image(os.path.join(work, "t1.jpg"), "800x800"))
shown = os.path.join(work, "before.jpg")
run("master", "photo", "show", "--dir", mdir2, "test1@contoso.com",
    "--size", "HR648x648", "--output", shown)
muri3 = new_db("migrate_master")
rc, out, err = run("master", "store", "migrate", "--dir", mdir2, "--to",
                   muri3, "--store-password-file", pwfile, check=False)
is_eq(rc, 0, "master store migrate: exit 0")
is_eq(psql(muri3, "SELECT directory_id, disabled FROM mailboxes WHERE "
           "email = 'test2@contoso.com'"), "guid-2|1", "a mailbox's "
      "directory id and disabled mark are copied")
ok(os.stat(os.path.join(mdir2, "store-password")).st_mode & 0o777 == 0o600,
   "the password is kept, mode 0600")
after = os.path.join(work, "after.jpg")
run("master", "photo", "show", "--dir", mdir2, "test1@contoso.com",
    "--size", "HR648x648", "--output", after)
is_eq(sha(after), sha(shown), "the photo is served the same from the copy")

done()
