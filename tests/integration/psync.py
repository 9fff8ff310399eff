"""Shared helpers for photosync's integration tests.

The tests drive the real photosync binary on loopback with TLS: they make
state directories in a temporary folder, start `photosync master serve`
with port 0 and read the bound port from --port-file, and talk HTTPS with
the standard library (certificates verified against the state's own
certificate). Run with Debian's /usr/bin/python3.

PHOTOSYNC_TEST_STORE chooses the store every `init` run through run()
makes: unset or "sqlite", SQLite in the state directory (the default);
"postgresql", a fresh database (`--store URI`) on one PostgreSQL server
per test process (tests/pgserver.py), started at the first init and
stopped at exit. Tests reach into a store only through the store_*
helpers below, which work on both.
"""
import atexit
import base64
import html
import http.client
import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urlencode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import pgserver  # noqa: E402  (tests/pgserver.py)

PHOTOSYNC = os.environ.get("PHOTOSYNC") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "photosync")
# make check-valgrind: the servers run under this command (valgrind),
# some ten times slower to start and to stop.
WRAPPER = shlex.split(os.environ.get("PHOTOSYNC_TEST_WRAPPER", ""))
SLOWER = 10 if WRAPPER else 1

_count = 0
_failed = 0


def _terminated(signum, frame):
    # A test that is stopped (meson's timeout sends SIGTERM) exits through
    # atexit too: its servers are stopped and its directories removed.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _terminated)


def ok(cond, what):
    """One TAP test point."""
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    # A line break would end the test point's line: written as \n, as
    # the unit tests' t.h does.
    what = str(what).replace("\r", "\\r").replace("\n", "\\n")
    print(("ok" if cond else "not ok") + " %d - %s" % (_count, what),
          flush=True)
    return cond


def is_eq(got, want, what):
    if not ok(got == want, what):
        print("#   got  %r\n#   want %r" % (got, want), flush=True)


# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer
# print (make check runs every test once more under them), and the line
# valgrind's memcheck begins each error with under make check-valgrind
# (its --error-markers).
SANITIZER_REPORT = re.compile(
    r"ERROR: (?:Address|Leak)Sanitizer|runtime error: |memcheck-error-begin")
_servers = []


def sanitizer_clean(text, what):
    """A check that `text`, the output of `what`, has no sanitizer report:
    prints it as a failed check (with the report) when it has one."""
    m = SANITIZER_REPORT.search(text)
    if m:
        ok(False, "no sanitizer report from " + what)
        for line in text[m.start():].splitlines()[:40]:
            print("#   " + line, flush=True)
    return m is None


# The events docs/logging.md lists (the first column of its tables).
DOCS_LOGGING = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "..", "docs", "logging.md")
_EVENT = re.compile(r"(?:^| )ev=([a-z0-9_]+\.[a-z0-9_.]+)", re.M)
_cli_events = set()     # ev= seen in the output of the commands run


def documented_events():
    with open(DOCS_LOGGING, encoding="utf-8") as f:
        rows = re.findall(r"^\| (`[a-z0-9_.]+`(?:, `[a-z0-9_.]+`)*) \|",
                          f.read(), re.M)
    return {n for row in rows for n in re.findall(r"`([^`]+)`", row)}


def events_documented(text, what):
    """A check that every ev= in `text` (a log) is in docs/logging.md."""
    unknown = sorted(set(_EVENT.findall(text)) - documented_events())
    ok(not unknown, "every event in %s is listed in docs/logging.md%s" % (
        what, (": not " + ", ".join(unknown)) if unknown else ""))


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics_parse(text):
    """A /metrics page: ([(name, {label: value}, value)], {name: type})
    for every sample and every `# TYPE` line."""
    samples, types = [], {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        if m:
            samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or
                                                            "")),
                            float(m.group(3))))
    return samples, types


def metric_value(text, name, **labels):
    """The sum of the samples of `name` on a /metrics page whose labels
    include `labels` (0 when there is none)."""
    return sum(v for n, ls, v in metrics_parse(text)[0] if n == name and
               all(ls.get(k) == w for k, w in labels.items()))


def done():
    # Stop the servers first: a leak is reported at exit, into the log.
    for s in _servers:
        s.stop()
        if sanitizer_clean(s.logs(), "%s serve (%s)" % (s.role,
                                                      s.log_path)):
            ok(True, "%s serve: no sanitizer report in its log" % s.role)
        events_documented(s.logs(), "the log of %s serve (%s)" % (
            s.role, s.log_path))
    if _cli_events:
        events_documented(" ".join("ev=" + e for e in _cli_events),
                          "the commands' output")
    print("1..%d" % _count, flush=True)
    sys.exit(1 if _failed else 0)


# How long a wait for an event may last before the test gives up: only a
# guard against a hang, never what a test measures (a loaded machine
# under the sanitizers is slow).
HANG_GUARD = 120.0


def wait_for(cond, timeout=HANG_GUARD, step=0.05):
    """Calls cond() until it returns a true value, which it returns; None
    when the hang guard ran out."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v or None
        time.sleep(step)


def tmpdir(prefix):
    """A temporary directory, removed when the test exits (after its
    servers have stopped: atexit runs last what was registered first);
    PHOTOSYNC_KEEP=1 keeps it for a look."""
    import shutil
    path = tempfile.mkdtemp(prefix="photosync-%s-" % prefix)
    if os.environ.get("PHOTOSYNC_KEEP") != "1":
        atexit.register(shutil.rmtree, path, True)
    return path


def run(*args, input=None, check=True):
    """Runs photosync with args; returns (exit status, stdout, stderr).
    On PostgreSQL (PHOTOSYNC_TEST_STORE), an init gets a store of its
    own there."""
    args, pg_db = _init_store(list(args))
    p = subprocess.run([PHOTOSYNC] + args, input=input,
                       capture_output=True, text=True, timeout=120)
    if pg_db is not None and p.returncode == 0:
        _pg_stores[os.path.abspath(_arg(args, "--dir"))] = pg_db
    sanitizer_clean(p.stderr, "photosync " + " ".join(args))
    _cli_events.update(_EVENT.findall(p.stdout + p.stderr))
    if check and p.returncode != 0:
        raise RuntimeError("photosync %s failed (%d): %s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


# ---- the store: SQLite in the state directory, or PostgreSQL ----
# (The store_* helpers take a state directory, or a SQLite file itself.)

STORE = os.environ.get("PHOTOSYNC_TEST_STORE") or "sqlite"
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError("PHOTOSYNC_TEST_STORE is %r: sqlite (the default) "
                       "or postgresql" % STORE)
ON_POSTGRESQL = STORE == "postgresql"

_pg = None
_pg_stores = {}         # state directory -> its database on _pg


def pg_server():
    """This test process's PostgreSQL server (tests/pgserver.py), started
    at the first call and stopped at exit."""
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def _init_store(args):
    """The arguments of a `ROLE init` with, on PostgreSQL, `--store` and
    a fresh database added (unless the test gave one); (args, database
    or None)."""
    if not ON_POSTGRESQL or args[:1] not in (["master"], ["portal"]) or \
            args[1:2] != ["init"] or "--store" in args:
        return args, None
    db = pg_server().create_database()
    return args + ["--store", pg_server().uri(db)], db


def _arg(args, name):
    return args[args.index(name) + 1] if name in args[:-1] else None


# The file of a state directory that names a PostgreSQL store (its
# address, src/store/store.h).
PG_ADDRESS_FILE = "store-address"


def _sqlite_path(state_dir):
    """The SQLite file of state_dir, or state_dir when it is that file."""
    if os.path.isfile(state_dir):
        return state_dir
    for name in ("master.db", "portal.db"):
        path = os.path.join(state_dir, name)
        if os.path.exists(path):
            return path
    raise RuntimeError("no SQLite store in %s" % state_dir)


def _pg_store(state_dir):
    """A psycopg2 connection to the database of state_dir's store, its
    schemas on the search path; None when the store is SQLite."""
    db = _pg_stores.get(os.path.abspath(state_dir))
    if db is None:
        return None
    con = pg_server().connect(db)
    cur = con.cursor()
    cur.execute("SELECT string_agg(quote_ident(nspname), ', ') FROM "
                "pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND "
                "nspname <> 'information_schema'")
    cur.execute("SELECT set_config('search_path', %s, false)",
                (cur.fetchone()[0],))
    con.commit()
    return con


def _pg_sql(sql):
    """SQL written with SQLite's `?` parameters, for psycopg2."""
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_value(v):
    return bytes(v) if isinstance(v, memoryview) else v


def store_rows(state_dir, sql, args=()):
    """The rows (tuples; BLOBs and bytea as bytes) of a query on the
    store of state_dir, written with `?` parameters."""
    con = _pg_store(state_dir)
    if con is not None:
        try:
            cur = con.cursor()
            cur.execute(_pg_sql(sql), tuple(args))
            return [tuple(_pg_value(v) for v in r) for r in cur.fetchall()]
        finally:
            con.close()
    import sqlite3
    db = sqlite3.connect(_sqlite_path(state_dir), timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def store_change(state_dir, sql, args=()):
    """Changes the store of state_dir directly, as no photosync command
    can (an old row shape, say), with `?` parameters, and tells running
    servers as photosync's own processes do after a commit.

    SQLite: the change feed's triggers call the two functions registered
    here (any origin but the servers'). PostgreSQL: the triggers write
    the feed's rows with origin 0 (a session without photosync's
    photosync.origin setting: no server's) and NOTIFY at commit, as for
    photosync's own sessions (src/store/store_pg.c). Then on both the
    counter in the file beside the store (its first 8 bytes; beside the
    address on PostgreSQL) moves, so that a server on this machine reads
    the feed before it answers its next request."""
    import mmap
    import struct
    con = _pg_store(state_dir)
    if con is not None:
        try:
            con.cursor().execute(_pg_sql(sql), tuple(args))
            con.commit()
        finally:
            con.close()
        counter = os.path.join(state_dir, PG_ADDRESS_FILE) + "-feed"
        if not os.path.exists(counter):
            return      # made by the first server that watches it
    else:
        import sqlite3
        counter = _sqlite_path(state_dir) + "-feed"
        db = sqlite3.connect(_sqlite_path(state_dir), timeout=10)
        try:
            db.create_function("ps_feed_origin", 0, lambda: 1)
            db.create_function("ps_feed_tx", 0, lambda: 1)
            db.execute(sql, args)
            db.commit()
        finally:
            db.close()
    with open(counter, "r+b") as f:
        m = mmap.mmap(f.fileno(), 8)
        m[:8] = struct.pack("<Q", struct.unpack("<Q", m[:8])[0] + 1)
        m.close()


class store_write_lock:
    """Another process's write lock on the store of state_dir, held from
    construction until release() (or the end of a `with` block): SQLite's
    BEGIN IMMEDIATE; on PostgreSQL every table (or only those of
    `tables`) locked IN EXCLUSIVE MODE (reads go on, every write to them
    waits), as photosync's writes would see a long transaction of another
    node."""

    def __init__(self, state_dir, tables=None):
        self.con = _pg_store(state_dir)
        if self.con is not None:
            cur = self.con.cursor()
            if tables is None:
                cur.execute("SELECT string_agg(format('%I.%I', "
                            "schemaname, tablename), ', ') FROM pg_tables "
                            "WHERE schemaname NOT IN ('pg_catalog', "
                            "'information_schema')")
                tables = [cur.fetchone()[0]]
            cur.execute("LOCK TABLE %s IN EXCLUSIVE MODE" %
                        ", ".join(tables))
            return
        import sqlite3
        self.con = sqlite3.connect(_sqlite_path(state_dir), timeout=10,
                                   isolation_level=None)
        self.con.execute("BEGIN IMMEDIATE")

    def release(self):
        if self.con is not None:
            self.con.rollback()
            self.con.close()
            self.con = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def store_dump(state_dir):
    """Everything the store of state_dir holds, as bytes: the SQLite
    file, or the database's data as pg_dump writes it."""
    db = _pg_stores.get(os.path.abspath(state_dir))
    if db is None:
        with open(_sqlite_path(state_dir), "rb") as f:
            return f.read()
    return pg_server().dump(db, data_only=True)


def store_identity(state_dir):
    """What makes the store of state_dir that one: the SQLite file's
    device and inode, or the database's name and everything it holds;
    the same before and after what must leave the store alone (not
    replace it)."""
    db = _pg_stores.get(os.path.abspath(state_dir))
    if db is None:
        st = os.stat(_sqlite_path(state_dir))
        return st.st_dev, st.st_ino
    return db, store_dump(state_dir)


def store_files(role):
    """The files of the store in a state directory of `role`: its SQLite
    file, or the file with the address of its PostgreSQL store."""
    return [PG_ADDRESS_FILE] if ON_POSTGRESQL else [role + ".db"]


def skip_all(reason):
    """Ends a test that does not apply here, saying why (TAP: 1..0)."""
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


def skip_all_on_postgresql(reason):
    """Ends a test about SQLite itself when the store is PostgreSQL."""
    if ON_POSTGRESQL:
        skip_all("the store is PostgreSQL: " + reason)


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


class Server:
    """A running `photosync ROLE serve`, stopped with stop()."""

    def __init__(self, role, state_dir, extra=(), env=None):
        """`env`: variables set for the server beside this process's."""
        self.dir = state_dir
        self.role = role
        self.killed = False
        self.port_file = os.path.join(state_dir, "test.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(state_dir, "serve.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            WRAPPER + [PHOTOSYNC, role, "serve", "--dir", state_dir,
                       "--port-file", self.port_file] + list(extra),
            stdout=self.log, stderr=self.log,
            env=dict(os.environ, **env) if env else None)
        deadline = time.monotonic() + 20 * SLOWER
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited: " + self.logs())
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start: " + self.logs())
            time.sleep(0.05)
        # One port per line: a portal with several web applications
        # listens on one port for each, in web application order.
        with open(self.port_file) as f:
            self.port_text = f.read()
        self.ports = [int(x) for x in self.port_text.split()]
        self.port = self.ports[0]
        # A test that ends early (an exception) must not leave servers.
        atexit.register(self.stop)
        _servers.append(self)

    def wait_log(self, pattern, since=0, timeout=HANG_GUARD):
        """Waits until the log, from offset `since` on, has a line
        matching the regular expression `pattern`; the match, or None
        when the hang guard ran out."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.logs(), since), timeout)

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """Sends SIGTERM and waits for the exit (10 s, then SIGKILL: then
        `killed` is true). Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10 * SLOWER)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def read_to_close(s):
    """Everything socket `s` receives until the peer closes it."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def help_commands(role_help):
    """The (command[, verb]) pairs a role's --help lists under
    "commands:"."""
    section = role_help.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    found = []
    for line in section.splitlines():
        g = re.match(r"^  ([a-z]+)(?: ([a-z]+))?(?: |$)", line)
        if g:
            found.append(tuple(w for w in g.groups() if w))
    return found


def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


def request(host, port, method, path, ca_file, headers=None, body=None,
            server_name=None):
    """One HTTPS request on a fresh connection."""
    ctx = tls_context(ca_file)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    if server_name:
        conn._tunnel_host = None
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def multipart(files, fields=None):
    """A multipart/form-data body of `fields` (name -> text) and `files`
    (name -> (filename, bytes)), and its Content-Type."""
    boundary = "----photosync" + uuid.uuid4().hex
    out = b""
    for name, value in (fields or {}).items():
        out += ('--%s\r\nContent-Disposition: form-data; name="%s"\r\n'
                '\r\n%s\r\n' % (boundary, name, value)).encode()
    for name, (filename, data) in files.items():
        out += ('--%s\r\nContent-Disposition: form-data; name="%s"; '
                'filename="%s"\r\nContent-Type: application/octet-stream'
                '\r\n\r\n' % (boundary, name, filename)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, "multipart/form-data; boundary=" + boundary


def cookies_of(r):
    """The cookies a response sets: name -> value."""
    out = {}
    for h in r.header_all("Set-Cookie"):
        name, _, value = h.partition(";")[0].strip().partition("=")
        out[name] = value
    return out


def csrf_of(r):
    """The CSRF token of a page's form, or None."""
    g = re.search(r'name="csrf" value="([0-9a-f]+)"', r.text())
    return g.group(1) if g else None


def action_of(r, path):
    """The action (unescaped) of the form posting to `path`, or None."""
    for a in re.findall(r'<form method="post" action="([^"]*)"', r.text()):
        a = html.unescape(a)
        if a.split("?")[0] == path:
            return a
    return None


class WebSession:
    """A cookie jar over request(), for one node's pages (the cookies of
    `jar` to start with: a session carried to another node)."""

    def __init__(self, node, jar=None):
        self.node = node
        self.jar = dict(jar or {})

    def req(self, method, path, body=None, headers=None, cookies=None):
        h = dict(headers or {})
        jar = dict(self.jar)
        jar.update(cookies or {})
        if jar:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in jar.items())
        r = request(self.node.host, self.node.port, method, path,
                    self.node.ca, h, body)
        for sc in r.header_all("Set-Cookie"):
            name, _, rest = sc.partition("=")
            self.jar[name] = rest.split(";")[0]
        return r

    def get(self, path):
        return self.req("GET", path)

    def post(self, path, fields, cookies=None):
        return self.req("POST", path, urlencode(fields), {
            "Content-Type": "application/x-www-form-urlencoded"},
            cookies=cookies)

    def upload(self, path, fields, files):
        body, ctype = multipart(files, fields)
        return self.req("POST", path, body, {"Content-Type": ctype})

    def follow(self, r):
        return self.get(r.header("Location")) if r.status == 303 else r


def make_image(path, size="800x600", fmt=None, extra=()):
    """A test image made with ImageMagick (a gradient with a red corner)."""
    target = (fmt + ":" + path) if fmt else path
    subprocess.run(["convert", "-size", size, "gradient:navy-gold",
                    "-fill", "red", "-draw", "rectangle 0,0 60,60"]
                   + list(extra) + [target], check=True)
    return path


def scan_bomb(path, scans=400):
    """A progressive JPEG that repeats its last scan `scans` times, as an
    attacker would (each repeat costs a decoder a pass over the image):
    ImageMagick's progressive JPEG, cut at its last SOS marker, that scan
    (up to EOI) copied over and over."""
    src = make_image(path + ".src.jpg", "512x512",
                     extra=["-interlace", "JPEG", "-quality", "90"])
    data = open(src, "rb").read()
    os.unlink(src)
    last = data.rfind(b"\xff\xda")
    end = data.rfind(b"\xff\xd9")
    with open(path, "wb") as f:
        f.write(data[:last] + data[last:end] * scans + data[end:])
    return path


def identify(path):
    """(width, height, format) per ImageMagick's identify."""
    out = subprocess.run(["identify", "-format", "%w %h %m\n", path],
                         capture_output=True, text=True, check=True).stdout
    w, h, m = out.split()[:3]
    return int(w), int(h), m


def exif_tags(path):
    """All metadata tags exiftool finds, as a dict (group:name -> value)."""
    out = subprocess.run(["exiftool", "-j", "-G", "-a", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


class Master:
    """A master state directory made with `photosync master init` (and
    init_args, --store say)."""

    def __init__(self, name="master", domain="contoso.com",
                 host="127.0.0.1:0", init_args=(), init_input=None):
        self.dir = os.path.join(tmpdir(name), "state")
        self.domain = domain
        run("master", "init", "--dir", self.dir, "--host", host,
            "--domain", domain, *init_args, input=init_input)
        self.ca = os.path.join(self.dir, "tls-cert.pem")
        self.host = host.rsplit(":", 1)[0]
        self.server = None

    def cmd(self, *args, check=True, input=None):
        args = list(args)
        return run("master", *(args[:2] + ["--dir", self.dir] + args[2:]),
                   check=check, input=input)

    def add_mailbox(self, email, password=None, name=None):
        args = ["mailbox", "add", email]
        if name:
            args += ["--name", name]
        if password is not None:
            pw = write(os.path.join(self.dir, "pw.tmp"), password + "\n")
            args += ["--password-file", pw]
        self.cmd(*args)

    def start(self):
        self.server = Server("master", self.dir)
        self.port = self.server.port
        return self

    def stop(self):
        """Stops the server (see Server.stop); its exit status."""
        if self.server:
            return self.server.stop()
        return None

    def get(self, path, headers=None):
        return request(self.host, self.port, "GET", path, self.ca, headers)

    def post(self, path, body, headers=None):
        h = {"Content-Type": "text/xml; charset=utf-8"}
        h.update(headers or {})
        return request(self.host, self.port, "POST", path, self.ca, h, body)

    def url(self, path=""):
        return "https://%s:%d%s" % (self.host, self.port, path)


class Portal:
    """A portal state directory made with `photosync portal init` (and
    init_args, --store say)."""

    def __init__(self, name="portal", host="127.0.0.1", port=0,
                 init_args=(), init_input=None):
        self.dir = os.path.join(tmpdir(name), "state")
        self.host = host
        run("portal", "init", "--dir", self.dir, "--url",
            "https://%s:%d" % (host, port), *init_args, input=init_input)
        self.ca = os.path.join(self.dir, "webapp-1-tls-cert.pem")
        self.server = None
        self.password = {}

    def cmd(self, *args, check=True, input=None):
        args = list(args)
        return run("portal", *(args[:2] + ["--dir", self.dir] + args[2:]),
                   check=check, input=input)

    def add_user(self, account, email, password=None, name=None):
        args = ["user", "add", account, "--email", email]
        if name:
            args += ["--name", name]
        if password is not None:
            pw = write(os.path.join(self.dir, "pw.tmp"), password + "\n")
            args += ["--password-file", pw]
            self.password[account] = password
        self.cmd(*args)

    def start(self):
        self.server = Server("portal", self.dir)
        self.port = self.server.port
        return self

    def stop(self):
        """Stops the server (see Server.stop); its exit status."""
        if self.server:
            return self.server.stop()
        return None

    def auth(self, account):
        return {"Authorization": basic(account, self.password[account])}

    def get(self, path, headers=None, as_user=None):
        h = dict(self.auth(as_user)) if as_user else {}
        h.update(headers or {})
        return request(self.host, self.port, "GET", path, self.ca, h)

    def post(self, path, body, headers=None, as_user=None):
        h = dict(self.auth(as_user)) if as_user else {}
        h.update(headers or {})
        return request(self.host, self.port, "POST", path, self.ca, h,
                       body)

    def url(self, path=""):
        return "https://%s:%d%s" % (self.host, self.port, path)

    def owner_photo(self, account, size="L"):
        """The owner's request for their own photo once the sync it
        starts has ended. The owner waits for that sync a few seconds at
        most, and a loaded machine may take longer: the sync's outcome in
        the log (same request id) is the event waited for, then the photo
        is asked for again. Returns that answer (the first one when it
        started no sync)."""
        r = self.get(photo_path(account, size), as_user=account)
        rid = re.escape(r.header("request-id") or "-")
        if not re.search(r"req=%s ev=sync\.start " % rid,
                         self.server.logs()):
            return r
        self.server.wait_log(r"req=%s ev=sync\.(done|failed) " % rid)
        return self.get(photo_path(account, size), as_user=account)


def node_copy(first, name):
    """Another node of `first` (a Master or a Portal): its state directory
    copied, its store shared (on SQLite a link to the same file, on
    PostgreSQL the same address), not started."""
    import copy
    import shutil
    db = ("master" if isinstance(first, Master) else "portal") + ".db"
    n = copy.copy(first)
    n.dir = os.path.join(tmpdir(name), "state")
    shutil.copytree(first.dir, n.dir, ignore=shutil.ignore_patterns(
        db + "*", "*-feed", "serve.log", "test.port", "pw.tmp"))
    if not ON_POSTGRESQL:
        os.symlink(os.path.join(first.dir, db), os.path.join(n.dir, db))
    _pg_stores[os.path.abspath(n.dir)] = \
        _pg_stores.get(os.path.abspath(first.dir))
    n.server = None
    return n


class LogMark:
    """A node's server log from now on (the file survives restarts)."""

    def __init__(self, node):
        self.node = node
        self.at = len(node.server.logs())

    def text(self):
        return self.node.server.logs()[self.at:]

    def count(self, pattern):
        return len(re.findall(pattern, self.text()))

    def wait(self, pattern, n=1, timeout=HANG_GUARD):
        return wait_for(lambda: self.count(pattern) >= n, timeout)


def photo_path(account, size="L"):
    from urllib.parse import quote
    return "/_layouts/15/userphoto.aspx?size=%s&accountname=%s" % (
        size, quote(account))


def end_process(proc, sig=signal.SIGTERM, timeout=30):
    """Sends `sig` to a child still running and waits `timeout` seconds
    for it to end; kills it when it does not. Its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_port():
    """A port nobody listens on right now (for servers that must keep
    their port across restarts)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_pair():
    """Two consecutive free ports (the demo uses N and N+1)."""
    import socket
    for _ in range(50):
        port = free_port()
        if port >= 65534:
            continue
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            pass
        finally:
            t.close()
    raise RuntimeError("no free port pair")


def tls_for_names(directory, names, ips=("127.0.0.1",)):
    """A self-signed certificate (also its own CA) and its key for the
    DNS `names` and the addresses `ips`, written into `directory`; the
    init arguments that give them to a role: ["--tls-cert", F,
    "--tls-key", F]. For tests that reach a server by a name (a Kerberos
    service's) resolved to the loopback address by the client."""
    key = os.path.join(directory, "tls-key.pem")
    cert = os.path.join(directory, "tls-cert.pem")
    san = ",".join(["DNS:" + n for n in names] + ["IP:" + a for a in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + names[0], "-addext",
                    "subjectAltName=" + san, "-addext",
                    "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return ["--tls-cert", cert, "--tls-key", key]


def wired(import_on=True, portal_port=0, master_init=(), portal_init=(),
          master_cmds=()):
    """A master and a portal that trust each other through their metadata
    URLs, as the article's steps 4-6 set them up (master_init and
    portal_init: more arguments for their `init`, --tls-cert F --tls-key F
    say; master_cmds: admin commands, tuples of arguments, run on the
    master before it starts). Returns (master, portal).
    """
    m = Master(init_args=master_init)
    m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
    m.add_mailbox("test2@contoso.com", "pw-two", name="Test Two")
    work = tmpdir("wired")
    m.cmd("photo", "set", "test1@contoso.com", "--file",
          make_image(os.path.join(work, "t1.jpg"), "800x800"))
    m.cmd("photo", "set", "test2@contoso.com", "--file",
          make_image(os.path.join(work, "t2.jpg"), "640x640",
                     extra=["-negate"]))
    for args in master_cmds:
        m.cmd(*args)
    m.start()
    p = Portal(port=portal_port, init_args=portal_init)
    p.add_user("contoso\\test1", "test1@contoso.com", "pw-one", "Test One")
    p.add_user("contoso\\test2", "test2@contoso.com", "pw-two", "Test Two")
    p.add_user("contoso\\test3", "test3@contoso.com", "pw-three",
               "Test Three")
    p.start()
    p.cmd("webapp", "set", "--photo-import", "on" if import_on else "off",
          "--photo-expiration", "6h", "--photo-error-expiration", "1h",
          "--autodiscover-domain", "127.0.0.1:%d" % m.port,
          "--ca-file", m.ca)
    p.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
          m.url("/autodiscover/metadata/json/1"), "--ca-file", m.ca)
    m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
          p.url("/_layouts/15/metadata/json/1"), "--ca-file", p.ca)
    return m, p
