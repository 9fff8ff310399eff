"""The tests' PostgreSQL server (tests/pgserver.py): it starts, serves
only its own Unix socket, lets photosync's role in without a password and
the password role only with its password, runs as an unprivileged user
when started as root, and when stopped (by stop(), by `pgserver.py run`
once its program ends, or by SIGTERM) leaves no process and no file
behind and gives back the modes it changed. Run with Debian's
/usr/bin/python3."""
import os
import signal
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

from psync import done, is_eq, ok, pgserver, tmpdir, wait_for

PGSERVER = pgserver.__file__


def gone(pid):
    """Whether process pid has ended (and been reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def postmaster_pid(data):
    with open(os.path.join(data, "postmaster.pid")) as f:
        return int(f.readline())


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def psql(uri, sql, password=None):
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [os.path.join(pgserver.bindir(), "psql"), "-X", "-A", "-t", "-w",
         "-d", uri, "-c", sql], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL)


# ---- importable: PgServer ----
top = tmpdir("pg")
top_mode = os.stat(top).st_mode
srv = pgserver.PgServer(parent=top)
pid = postmaster_pid(srv.data)
ok(not gone(pid), "the server runs (postmaster %d)" % pid)
if os.geteuid() == 0:
    ok(uid_of(pid) not in (None, 0), "started as root, the server runs as "
       "an unprivileged user (uid %s)" % uid_of(pid))
else:
    is_eq(uid_of(pid), os.geteuid(), "the server runs as we do")
ok(srv.dir.startswith(top + os.sep), "its directory is in the one given")

db = srv.create_database()
r = psql(srv.uri(db), "SELECT current_user, current_database(), "
         "current_setting('listen_addresses')")
is_eq((r.returncode, r.stdout.strip()), (0, "photosync|%s|" % db),
      "photosync's role reaches its new database over the socket, no "
      "password; no TCP address is listened on")
r = psql(srv.uri(db), "SELECT count(*) FROM pg_tables WHERE schemaname "
         "NOT IN ('pg_catalog', 'information_schema')")
is_eq(r.stdout.strip(), "0", "the new database is empty")
srv.psql(db, "CREATE TABLE t (x integer); INSERT INTO t VALUES (42);")
first = srv.dump(db)
ok(b"CREATE TABLE public.t" in first and b"\n42\n" in first and
   srv.dump(db) == first, "dump(): the schema and the rows, the same twice")
ok(b"CREATE TABLE" not in srv.dump(db, data_only=True) and
   b"\n42\n" in srv.dump(db, data_only=True), "dump(data_only=True): "
   "the rows alone")
pw_db = srv.create_database(owner=srv.PASSWORD_USER)
pw_uri = srv.uri(pw_db, srv.PASSWORD_USER)
r = psql(pw_uri, "SELECT current_user", password=srv.password)
is_eq((r.returncode, r.stdout.strip()), (0, srv.PASSWORD_USER),
      "the password role gets in with its password")
r = psql(pw_uri, "SELECT 1", password="not-" + srv.password)
ok(r.returncode != 0 and "password authentication failed" in r.stderr,
   "and not with another (%s)" % r.stderr.strip()[-60:])
r = psql(pw_uri, "SELECT 1")
ok(r.returncode != 0, "nor with none")
parts = urlsplit(srv.uri(db))
q = parse_qs(parts.query)
ok(parts.scheme == "postgresql" and parts.path == "/" + db and
   q["host"] == [srv.socket_dir] and q["port"] == [str(srv.port)],
   "the URI names the socket directory and port (%s)" % srv.uri(db))

srv.stop()
ok(wait_for(lambda: gone(pid)), "stop(): the server has ended")
ok(not os.path.exists(srv.dir), "stop(): its directory is removed")
is_eq(os.stat(top).st_mode, top_mode,
      "stop(): the mode of the directory above is what it was")
srv.stop()
ok(True, "stop() a second time does nothing")

# ---- a start that fails leaves nothing ----
deep = os.path.join(top, "d" * 100)
os.mkdir(deep)
try:
    pgserver.PgServer(parent=deep)
    failed = ""
except RuntimeError as e:
    failed = str(e)
ok("107 bytes" in failed, "a socket path too long for a Unix socket is "
   "refused in words (%s)" % failed[-50:])
is_eq(os.listdir(deep), [], "and the failed start leaves nothing")
os.rmdir(deep)

# ---- the command: pgserver.py run -- PROGRAM ----
work = os.path.join(top, "r")
os.mkdir(work)
env = dict(os.environ, TMPDIR=work)
r = subprocess.run(
    [sys.executable, PGSERVER, "run", "--", "/bin/sh", "-c",
     'psql -X -A -t -d "$PHOTOSYNC_TEST_PG_URI" -c "SELECT current_user" '
     '&& exit 7'], env=env, capture_output=True, text=True)
is_eq((r.returncode, r.stdout.strip()), (7, "photosync"),
      "run: PROGRAM reaches the database of PHOTOSYNC_TEST_PG_URI, and "
      "its exit status is the command's")
is_eq(os.listdir(work), [], "run: nothing left once PROGRAM ended")
r = subprocess.run([sys.executable, PGSERVER, "run"], env=env,
                   capture_output=True, text=True)
ok(r.returncode == 2 and "usage" in r.stderr, "run without a program: "
   "usage, exit status 2")

# SIGTERM (meson's timeout) while PROGRAM runs: PROGRAM gets it, the
# server is stopped, nothing is left. PROGRAM says it runs by writing
# the URI it was given, then waits on its input.
marker = os.path.join(top, "u")
proc = subprocess.Popen(
    [sys.executable, PGSERVER, "run", "--", "/bin/sh", "-c",
     'echo "$PHOTOSYNC_TEST_PG_URI" > "%s.tmp" && mv "%s.tmp" "%s" && '
     'exec cat' % (marker, marker, marker)],
    env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
ok(wait_for(lambda: os.path.exists(marker) or proc.poll() is not None) and
   proc.poll() is None, "run: PROGRAM started")
with open(marker) as f:
    sock_dir = parse_qs(urlsplit(f.read().strip()).query)["host"][0]
os.unlink(marker)
pid = postmaster_pid(os.path.join(os.path.dirname(sock_dir), "data"))
proc.send_signal(signal.SIGTERM)
status = proc.wait(timeout=pgserver.HANG_GUARD)
proc.stdin.close()
is_eq(status, 128 + signal.SIGTERM, "run, SIGTERM: PROGRAM ended by it, "
      "the command says so")
ok(wait_for(lambda: gone(pid)), "run, SIGTERM: the server has ended")
is_eq(os.listdir(work), [], "run, SIGTERM: nothing left")
os.rmdir(work)
done()
