"""Both roles on PostgreSQL (`init --store URI`), on a server of the
test's own (tests/pgserver.py).

Every refusal of init: exit status 1, one line on stderr that says what
is wrong (never the password), and nothing changed: no state directory,
the database as it was (pg_dump), no database added or removed. Refused:
an address nobody answers at (a socket directory without a server, a
closed loopback port), a wrong password and none, a password in the URI
(as user information or as its password parameter), a store of the other
role, a store of a newer schema (its version moved on with SQL; serve
and an admin command refuse it too). Then a master and a portal
initialised with the password role and --store-password-file (a file;
"-" for stdin) serve and answer admin commands, and the password is on
no command line and in no log. Run with Debian's /usr/bin/python3."""
import os
import re
import stat

from fakepeer import closed_port
from psync import (Master, Portal, basic, done, is_eq, make_image, ok,
                   pg_server, photo_path, run, tmpdir, write)

srv = pg_server()
work = tmpdir("pgstore")
PASSWORD_FILE = write(os.path.join(work, "pw"), srv.password + "\n")
WRONG = "not-" + srv.password
WRONG_FILE = write(os.path.join(work, "wrong"), WRONG + "\n")
ROLE_ARGS = {"master": ["--host", "127.0.0.1:0", "--domain", "contoso.com"],
             "portal": ["--url", "https://127.0.0.1:0"]}
# What a role writes on stderr besides its errors: its log lines.
LOG_LINE = re.compile(r"^ts=\S+ lvl=(debug|info) ")


def databases():
    return srv.psql("postgres", "SELECT datname FROM pg_database "
                    "ORDER BY datname")[1]


def dump(db):
    """Everything in database db, schema and rows (pg_dump)."""
    return srv.dump(db)


def tables(db):
    return int(srv.psql(db, "SELECT count(*) FROM pg_tables WHERE "
                        "schemaname NOT IN ('pg_catalog', "
                        "'information_schema')")[1])


def error_lines(err):
    return [line for line in err.splitlines() if not LOG_LINE.match(line)]


def one_clear_line(what, rc, err, words, secret=None):
    is_eq(rc, 1, "%s: exit status 1" % what)
    lines = error_lines(err)
    ok(len(lines) == 1 and re.search(words, lines[0], re.I),
       "%s: one line that says so (%s)" % (what, " | ".join(lines)))
    if secret is not None:
        ok(secret not in err, "%s: the password is not printed" % what)


_states = 0


def refused(what, role, uri, words, db=None, extra=(), input=None,
            secret=None):
    """`ROLE init --store uri` is refused and changes nothing."""
    global _states
    _states += 1
    d = os.path.join(work, "state-%d" % _states)
    dbs = databases()
    before = dump(db) if db else None
    rc, out, err = run(role, "init", "--dir", d, *ROLE_ARGS[role],
                       "--store", uri, *extra, input=input, check=False)
    one_clear_line(what, rc, err, words, secret)
    if secret is not None:
        ok(secret not in out, "%s: nor on stdout" % what)
    ok(not os.path.exists(d), "%s: no state directory" % what)
    if db:
        ok(dump(db) == before, "%s: the database is as it was" % what)
    is_eq(databases(), dbs, "%s: no database added or removed" % what)


# ---- nobody at the address ----
nowhere = tmpdir("nowhere")
refused("a socket directory without a server", "portal",
        "postgresql://photosync@/postgres?host=%s&port=%d" % (nowhere,
                                                               srv.port),
        r"connect|reach")
refused("a closed loopback port", "master",
        "postgresql://photosync@127.0.0.1:%d/postgres" % closed_port(),
        r"connect|reach")

# ---- passwords ----
pw_db = srv.create_database(owner=srv.PASSWORD_USER)
pw_uri = srv.uri(pw_db, srv.PASSWORD_USER)
refused("a wrong password", "master", pw_uri, r"password", db=pw_db,
        extra=["--store-password-file", WRONG_FILE], secret=WRONG)
refused("a wrong password on stdin", "portal", pw_uri, r"password",
        db=pw_db, extra=["--store-password-file", "-"], input=WRONG + "\n",
        secret=WRONG)
refused("no password for a role that needs one", "portal", pw_uri,
        r"password", db=pw_db)
refused("a password in the URI", "master",
        "postgresql://%s:%s@/%s?host=%s&port=%d" % (
            srv.PASSWORD_USER, srv.password, pw_db, srv.socket_dir,
            srv.port), r"--store-password-file", db=pw_db,
        secret=srv.password)
refused("a password parameter in the URI", "portal",
        pw_uri + "&password=" + srv.password, r"--store-password-file",
        db=pw_db, secret=srv.password)

# ---- a store of the other role ----
master_db = srv.create_database()
md = os.path.join(tmpdir("pg-master"), "state")
run("master", "init", "--dir", md, *ROLE_ARGS["master"], "--store",
    srv.uri(master_db))
ok(tables(master_db) > 0, "setup: a master's store in its database")
refused("a master's store", "portal", srv.uri(master_db), r"master",
        db=master_db)
portal_db = srv.create_database()
pd = os.path.join(tmpdir("pg-portal"), "state")
run("portal", "init", "--dir", pd, *ROLE_ARGS["portal"], "--store",
    srv.uri(portal_db))
refused("a portal's store", "master", srv.uri(portal_db), r"portal",
        db=portal_db)
run("portal", "user", "add", "--dir", pd, "contoso\\test1", "--email",
    "test1@contoso.com")


# ---- a newer schema ----
# The store's schema version is the one row of photosync_store
# (src/store/store_pg.c), as a newer photosync would have left it.
version = int(srv.psql(portal_db, "SELECT version FROM photosync_store")[1])
srv.psql(portal_db, "UPDATE photosync_store SET version = version + 1;")
is_eq(int(srv.psql(portal_db, "SELECT version FROM photosync_store")[1]),
      version + 1, "setup: the portal store's schema version moved on")
refused("a store of a newer schema", "portal", srv.uri(portal_db),
        r"newer|schema|version", db=portal_db)
before = dump(portal_db)
rc, out, err = run("portal", "serve", "--dir", pd, "--port-file",
                   os.path.join(work, "port"), check=False)
one_clear_line("serve on a store of a newer schema", rc, err,
               r"newer|schema|version")
ok(not os.path.exists(os.path.join(work, "port")),
   "serve on a newer schema: it never listened")
rc, out, err = run("portal", "user", "list", "--dir", pd, check=False)
one_clear_line("an admin command on a store of a newer schema", rc, err,
               r"newer|schema|version")
ok(dump(portal_db) == before, "serve and the admin command changed nothing")

# ---- the password role, with --store-password-file ----
m = Master("pw-master", init_args=["--store", pw_uri,
                                   "--store-password-file", PASSWORD_FILE])
ok(tables(pw_db) > 0 and not os.path.exists(os.path.join(m.dir,
                                                          "master.db")),
   "master init with a password file: the store is in PostgreSQL")
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "t1.jpg"), "300x300"))
st, out, err = m.cmd("mailbox", "list")
ok("test1@contoso.com" in out, "an admin command reads the store")
m.start()
r = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
          "size=HR96x96",
          {"Authorization": basic("test1@contoso.com", "pw-one")})
ok(r.status == 200 and r.body[:2] == b"\xff\xd8",
   "serve answers GetUserPhoto from the store (%d)" % r.status)

pw2_db = srv.create_database(owner=srv.PASSWORD_USER)
p = Portal("pw-portal", init_args=[
    "--store", srv.uri(pw2_db, srv.PASSWORD_USER),
    "--store-password-file", "-"], init_input=srv.password + "\n")
p.add_user("contoso\\test1", "test1@contoso.com", "pw-one", "Test One")
st, out, err = p.cmd("user", "list")
ok("contoso\\test1" in out, "portal, password on stdin: an admin command "
   "reads the store")
p.start()
r = p.get(photo_path("contoso\\test1"), as_user="contoso\\test1")
is_eq(r.status, 200, "portal, password on stdin: serve answers a photo")

for role, s in (("master", m.server), ("portal", p.server)):
    with open("/proc/%d/cmdline" % s.proc.pid, "rb") as f:
        ok(srv.password.encode() not in f.read(),
           "%s serve: the password is not on its command line" % role)
    ok(srv.password not in s.logs(), "%s serve: nor in its log" % role)
    holding = []
    for root, dirs, files in os.walk(s.dir):
        for n in files:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                if srv.password.encode() in f.read():
                    holding.append((n, stat.S_IMODE(os.stat(path).st_mode)))
    ok(all(mode == 0o600 for n, mode in holding), "%s: the state files "
       "that hold the password are 0600 (%s)" % (role, holding))
done()
