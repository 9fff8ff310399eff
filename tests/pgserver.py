"""A throwaway PostgreSQL server for the tests, in a temporary directory.

    pgserver.py run -- PROGRAM [ARG...]

starts one, runs PROGRAM with PHOTOSYNC_TEST_PG_URI set to the URI of an
empty database on it (owned by the role the URI names, which may create
databases), stops the server and removes its directory, and exits with
PROGRAM's status (meson runs the store's unit tests through it). The
integration harness (tests/integration/psync.py) imports it and starts
one server per test process (PgServer below).

The server is Debian's PostgreSQL (the bin directory of `pg_config
--bindir`, else the newest /usr/lib/postgresql/*/bin). `initdb` makes a
cluster in a directory made with tempfile.mkdtemp (so in TMPDIR), which
listens on no TCP address, only on a Unix socket in that directory (its
port number names the socket). Its roles:

  postgres      the superuser, for the tests' own queries (trust)
  photosync     the role photosync's stores are made with (trust)
  photosync_pw  a role with a password (scram-sha-256 over the socket),
                for --store-password-file

initdb and the server refuse to run as root: run as root (as CI does),
they run as the `postgres` user that Debian's postgresql package makes
(else `nobody`), through runuser, with the directory given to that user;
directories above it that the user cannot search (the test's own
TMPDIR, 0700) get the search bit for others until the server stops.
fsync is off: a test's data need not survive a crash of the machine.

Waiting is for events: `pg_ctl start -w` and then `pg_isready` say when
the server accepts connections; `pg_ctl stop -w` when it has stopped.
"""
import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile

# How long starting or stopping may last before it counts as a hang (a
# guard only: a loaded machine under the sanitizers is slow).
HANG_GUARD = 120

ENV_URI = "PHOTOSYNC_TEST_PG_URI"


def bindir():
    """The directory of initdb, pg_ctl, postgres, psql and pg_isready."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split(os.sep)[4])
                   if p.split(os.sep)[4].isdigit() else 0)
    if not found:
        raise RuntimeError("no PostgreSQL server found (initdb): "
                           "scripts/deps.sh test installs it")
    return os.path.dirname(found[-1])


def free_port():
    """A port number nobody listens on (it names the server's socket)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server_user():
    """The unprivileged user to run the server as when we are root; None
    when we are not root (then the server runs as we do)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a postgres nor a "
                       "nobody user to run PostgreSQL as")


def _quote_literal(s):
    return "'" + s.replace("'", "''") + "'"


class PgServer:
    """A running PostgreSQL server in a temporary directory of its own,
    stopped and removed by stop() (registered with atexit: a test that
    ends early, or is stopped with SIGTERM by a harness that exits
    through atexit, leaves nothing behind)."""

    USER = "photosync"
    PASSWORD_USER = "photosync_pw"
    SUPERUSER = "postgres"

    def __init__(self, parent=None):
        """Starts a server in a new directory in `parent` (TMPDIR)."""
        self.bin = bindir()
        self.user = server_user()
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=parent)
        self.data = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "s")
        self.log_path = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self._opened = []           # (directory, its mode before us)
        self._databases = 0
        self._running = False
        self._stopped = False
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # ---- running the server's programs ----

    def _as_server(self, argv, **kw):
        """Runs one of the server's programs as the user the server runs
        as."""
        if self.user is not None:
            argv = ["runuser", "-u", self.user.pw_name, "--"] + argv
        # (in a directory of its own: the caller's may be closed to it)
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=HANG_GUARD, cwd=self.dir, **kw)

    def _open_path(self):
        """Lets the server's user reach self.dir: each directory above
        it that others cannot search and that is ours gets the search
        bit (only that) until stop()."""
        if self.user is None:
            return
        d = os.path.dirname(self.dir)
        while True:
            st = os.stat(d)
            if not st.st_mode & stat.S_IXOTH and \
                    st.st_uid != self.user.pw_uid:
                if st.st_uid != os.geteuid():
                    raise RuntimeError(
                        "%s cannot be searched by the user %s that runs "
                        "PostgreSQL, and is not ours to open: set TMPDIR "
                        "to a directory it can reach" % (
                            d, self.user.pw_name))
                self._opened.append((d, stat.S_IMODE(st.st_mode)))
                os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent

    def _start(self):
        sock = os.path.join(self.socket_dir, ".s.PGSQL.%d" % self.port)
        if len(sock.encode()) > 107:
            raise RuntimeError("the socket path %s is longer than a Unix "
                               "socket's 107 bytes: use a shorter TMPDIR"
                               % sock)
        os.mkdir(self.socket_dir, 0o700)
        if self.user is not None:
            for d in (self.dir, self.socket_dir):
                os.chown(d, self.user.pw_uid, self.user.pw_gid)
            self._open_path()
        r = self._as_server([os.path.join(self.bin, "initdb"), "-D",
                             self.data, "-U", self.SUPERUSER, "-A", "trust",
                             "-E", "UTF8", "--locale=C", "-N"])
        if r.returncode != 0:
            raise RuntimeError("initdb failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))
        # pg_hba.conf and postgresql.conf are the server user's files:
        # written through it (it owns them; 0600).
        hba = ("local all %s scram-sha-256\n"
               "local all all trust\n" % self.PASSWORD_USER)
        conf = ("listen_addresses = ''\n"
                "port = %d\n"
                "unix_socket_directories = %s\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "password_encryption = 'scram-sha-256'\n"
                % (self.port, _quote_literal(self.socket_dir)))
        self._write_as_server(os.path.join(self.data, "pg_hba.conf"), hba,
                              append=False)
        self._write_as_server(os.path.join(self.data, "postgresql.conf"),
                              conf, append=True)
        r = self._as_server([os.path.join(self.bin, "pg_ctl"), "-D",
                             self.data, "-l", self.log_path, "-w", "-t",
                             str(HANG_GUARD), "start"])
        self._running = True
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed (%d): %s%s\n%s" % (
                r.returncode, r.stdout, r.stderr, self.log()))
        r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-h",
                            self.socket_dir, "-p", str(self.port), "-U",
                            self.SUPERUSER, "-t", str(HANG_GUARD)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("PostgreSQL does not accept connections: "
                               "%s%s\n%s" % (r.stdout, r.stderr, self.log()))
        self.psql("postgres",
                  "CREATE ROLE %s LOGIN CREATEDB;"
                  "CREATE ROLE %s LOGIN CREATEDB PASSWORD %s;" % (
                      self.USER, self.PASSWORD_USER,
                      _quote_literal(self.password)))

    def _write_as_server(self, path, text, append):
        if self.user is None:
            with open(path, "a" if append else "w") as f:
                f.write(text)
            return
        r = self._as_server(["tee"] + (["-a"] if append else []) + [path],
                            input=text)
        if r.returncode != 0:
            raise RuntimeError("cannot write %s: %s" % (path, r.stderr))

    def log(self):
        """The server's log, so far."""
        try:
            with open(self.log_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- what the tests use ----

    def uri(self, database, user=None):
        """The libpq URI of `database` as `user` (photosync by default):
        the socket directory and port as query parameters, no password
        (the password role's is self.password)."""
        return "postgresql://%s@/%s?host=%s&port=%d" % (
            user or self.USER, database, self.socket_dir, self.port)

    def psql(self, database, sql, user=None, check=True):
        """Runs `sql` with psql (as the superuser unless `user`), stops
        at the first error; (exit status, stdout, stderr)."""
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-p",
             str(self.port), "-U", user or self.SUPERUSER, "-d", database],
            input=sql, capture_output=True, text=True, timeout=HANG_GUARD)
        if check and r.returncode != 0:
            raise RuntimeError("psql failed (%d): %s" % (
                r.returncode, r.stderr))
        return r.returncode, r.stdout, r.stderr

    def create_database(self, owner=None):
        """A new empty database owned by `owner` (photosync); its name."""
        self._databases += 1
        name = "ps_%d" % self._databases
        self.psql("postgres", "CREATE DATABASE %s OWNER %s;" % (
            name, owner or self.USER))
        return name

    def dump(self, database, data_only=False):
        """Everything in `database` (its rows alone when data_only), as
        pg_dump writes it, as bytes; the same for the same contents (the
        random key of the \\restrict lines of newer pg_dumps left out)."""
        out = subprocess.run(
            [os.path.join(self.bin, "pg_dump"), "-h", self.socket_dir,
             "-p", str(self.port), "-U", self.SUPERUSER, "-d", database] +
            (["--data-only"] if data_only else []), capture_output=True,
            check=True, timeout=HANG_GUARD).stdout
        return b"".join(line for line in out.splitlines(True)
                        if not line.startswith((b"\\restrict ",
                                                b"\\unrestrict ")))

    def connect(self, database):
        """A psycopg2 connection to `database` as the superuser (the
        caller closes it)."""
        import psycopg2
        return psycopg2.connect(host=self.socket_dir, port=self.port,
                                user=self.SUPERUSER, dbname=database)

    def halt(self):
        """Stops the server as an operator would (pg_ctl stop -m fast:
        sessions are ended), keeping its directory for resume()."""
        r = self._as_server([os.path.join(self.bin, "pg_ctl"), "-D",
                             self.data, "-m", "fast", "-w", "-t",
                             str(HANG_GUARD), "stop"])
        if r.returncode != 0:
            raise RuntimeError("pg_ctl stop failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))
        self._running = False

    def resume(self):
        """Starts the server halt() stopped, on the same port and
        socket; returns once it accepts connections."""
        r = self._as_server([os.path.join(self.bin, "pg_ctl"), "-D",
                             self.data, "-l", self.log_path, "-w", "-t",
                             str(HANG_GUARD), "start"])
        self._running = True
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed (%d): %s%s\n%s" % (
                r.returncode, r.stdout, r.stderr, self.log()))

    def stop(self):
        """Stops the server (fast shutdown: sessions are ended) and
        removes its directory; PHOTOSYNC_KEEP=1 keeps the directory. Safe
        to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        if self._running:
            r = self._as_server([os.path.join(self.bin, "pg_ctl"), "-D",
                                 self.data, "-m", "fast", "-w", "-t",
                                 str(HANG_GUARD), "stop"])
            if r.returncode != 0 and os.path.exists(
                    os.path.join(self.data, "postmaster.pid")):
                self._as_server([os.path.join(self.bin, "pg_ctl"), "-D",
                                 self.data, "-m", "immediate", "-w",
                                 "stop"])
            self._running = False
        for d, mode in reversed(self._opened):
            os.chmod(d, mode)
        self._opened = []
        if os.environ.get("PHOTOSYNC_KEEP") == "1":
            print("pgserver: kept %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, True)


def run_command(argv):
    """`run -- PROGRAM [ARG...]`: PROGRAM's exit status (128 + N when a
    signal N ended it)."""
    server = PgServer()
    child = None

    def forward(signum, frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        env = dict(os.environ)
        env[ENV_URI] = server.uri(server.create_database())
        child = subprocess.Popen(argv, env=env)
        status = child.wait()
    finally:
        server.stop()
    return status if status >= 0 else 128 - status


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "run" or args[1] != "--":
        print("usage: pgserver.py run -- PROGRAM [ARG...]", file=sys.stderr)
        return 2
    return run_command(args[2:])


if __name__ == "__main__":
    sys.exit(main())
