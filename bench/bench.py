#!/usr/bin/python3
"""photosync's benchmark: `make bench` (docs/performance.md).

Measures, in one run on this machine, each figure against a reference
measured in the same run, with the servers pinned to one core
(BENCH_SERVER_CPU, 0) and the load generator to the other (BENCH_LOAD_CPU,
1), as the medians of several rounds in which photosync and the reference
take turns:

  1. a cached M photo from the portal (signed in with Basic, TLS,
     keep-alive, 32 connections, Debian's wrk) against nginx serving the
     same bytes as a static file over TLS;
  2. revalidation (If-None-Match -> 304) against nginx's 304;
  3. the master's GetUserPhoto against nginx serving the same bytes;
  4. rendering S/M/L from a 648x648 JPEG against a libjpeg-turbo floor
     (bench/bench_render.c);
  5. `portal refresh --all` of 10,000 users against a local master: users
     per second for first fetches and for the all-304 case, and the
     master's CPU time per photo;
  6. the portal's resident size with 100,000 users stored, idle and under
     the load of (1).

Everything runs in a temporary directory with the real binaries of a
release build. Prints a table, writes it with the machine's description
to bench/results/latest.md, and exits 0 when every floor holds, 1 when one
does not, 2 when the benchmark itself could not run or its measurements
were not what they claim (a wrong body, error responses).

Environment (docs/performance.md has the table): BENCH_ROUNDS (5),
BENCH_SECONDS (5), BENCH_QUICK=1 (a smoke run: 1 round of 1 second, 500
and 5,000 users, results in bench/results/quick.md), BENCH_REFRESH_USERS
(10000), BENCH_MEMORY_USERS (100000), BENCH_REFRESH_ROUNDS (3) and
BENCH_REFRESH_BUDGET (300 s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU (0),
BENCH_LOAD_CPU (1), BENCH_MAX_FOREIGN (0.15) and BENCH_QUIET_WAIT (60 s),
BENCH_MEMORY_HR=1, BENCH_PERF=1, BENCH_BUILD (./build-bench), BENCH_OUT,
BENCH_TMP, BENCH_KEEP=1.

Run with Debian's /usr/bin/python3.
"""
import base64
import datetime
import hashlib
import http.client
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENV = os.environ


def env_num(name, default, kind=int):
    v = ENV.get(name)
    return kind(v) if v not in (None, "") else default


QUICK = ENV.get("BENCH_QUICK") == "1"
ROUNDS = env_num("BENCH_ROUNDS", 1 if QUICK else 5)
SECONDS = env_num("BENCH_SECONDS", 1 if QUICK else 5, float)
CONNS = env_num("BENCH_CONNECTIONS", 32)
N_REFRESH = env_num("BENCH_REFRESH_USERS", 500 if QUICK else 10000)
N_MEMORY = env_num("BENCH_MEMORY_USERS", 5000 if QUICK else 100000)
REFRESH_ROUNDS = env_num("BENCH_REFRESH_ROUNDS", 1 if QUICK else 3)
REFRESH_BUDGET = env_num("BENCH_REFRESH_BUDGET", 300, float)
MEMORY_HR = ENV.get("BENCH_MEMORY_HR") == "1"
# A round in which other processes took more than this share of a pinned
# core is measured again (at most ROUNDS extra times per figure).
MAX_FOREIGN = env_num("BENCH_MAX_FOREIGN", 0.15, float)
QUIET_WAIT = env_num("BENCH_QUIET_WAIT", 60, float)
SERVER_CPU = ENV.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = ENV.get("BENCH_LOAD_CPU", "1")
BUILD = ENV.get("BENCH_BUILD") or os.path.join(ROOT, "build-bench")
PHOTOSYNC = ENV.get("PHOTOSYNC") or os.path.join(BUILD, "photosync")
RENDER = os.path.join(BUILD, "bench", "bench_render")
# A smoke run does not overwrite the last full run's results.
OUT = ENV.get("BENCH_OUT") or os.path.join(
    HERE, "results", "quick.md" if QUICK else "latest.md")
KEEP = ENV.get("BENCH_KEEP") == "1"
PERF = ENV.get("BENCH_PERF") == "1"

# The floors of the issue: photosync / reference at least this (req/s),
# or at most this (ms per photo).
FLOOR_RATE = 0.8
FLOOR_RENDER = 2.0

DOMAIN = "contoso.com"
PW1, PW2, PW3 = "bench-pw-one", "bench-pw-two", "bench-pw-three"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark could not measure what it claims to."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + list(argv)


def run(argv, check=True, timeout=3600, **kw):
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise BenchError("%s failed (%d): %s%s" % (
            " ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


def photosync(*args, check=True, cpu=None):
    argv = [PHOTOSYNC] + list(args)
    return run(pinned(cpu, argv) if cpu is not None else argv, check=check)


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


def fetch(port, path, headers=None, ca=None):
    """One HTTPS GET on 127.0.0.1; (status, headers dict lower-case, body).
    """
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
    else:
        ctx = ssl._create_unverified_context()
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                    timeout=60)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- processes

def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in kB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid):
    """utime + stime of PID (all its threads) in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_busy_s():
    """{cpu number: seconds it was busy (not idle, not iowait)}."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[m.group(1)] = (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return out


def foreign(busy0, busy1, cpu, own_s, wall):
    """The share of `cpu` that other processes used over `wall` seconds,
    given that ours used `own_s` seconds of it."""
    if cpu not in busy0 or cpu not in busy1 or wall <= 0:
        return 0.0
    return max(0.0, busy1[cpu] - busy0[cpu] - own_s) / wall


QUIET_WAITED = [0.0]     # seconds spent waiting for quiet cores, in all


def wait_quiet(max_wait=None):
    """Waits (at most BENCH_QUIET_WAIT seconds) until other processes use
    less than MAX_FOREIGN of each pinned core over half a second, so that
    a measurement does not start in the middle of someone's build. Our
    servers are idle meanwhile. True when quiet."""
    deadline = time.monotonic() + (QUIET_WAIT if max_wait is None
                                   else max_wait)
    t_start = time.monotonic()
    while True:
        b0 = cpu_busy_s()
        time.sleep(0.5)
        b1 = cpu_busy_s()
        worst = max(foreign(b0, b1, c, 0.0, 0.5)
                    for c in (SERVER_CPU, LOAD_CPU))
        if worst <= MAX_FOREIGN or time.monotonic() > deadline:
            QUIET_WAITED[0] += time.monotonic() - t_start
            return worst <= MAX_FOREIGN


class Server:
    """`photosync ROLE serve`, pinned, on port 0 (read from --port-file)."""

    def __init__(self, role, state_dir):
        self.role = role
        self.dir = state_dir
        self.port_file = os.path.join(state_dir, "bench.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(state_dir, "serve.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            pinned(SERVER_CPU, [PHOTOSYNC, role, "serve", "--dir",
                                state_dir, "--port-file", self.port_file]),
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while not (os.path.exists(self.port_file) and
                   open(self.port_file).read().strip()):
            if self.proc.poll() is not None:
                raise BenchError("%s serve exited: %s" % (role, self.tail()))
            if time.monotonic() > deadline:
                raise BenchError("%s serve did not start" % role)
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().split()[0])
        self.pid = self.proc.pid   # taskset execs photosync: same pid

    def tail(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Nginx:
    """nginx as the reference: one worker, TLS, sendfile, ETags, its own
    prefix and configuration, in the foreground as a child of ours."""

    def __init__(self, top, files):
        """`files` maps URL paths to the bytes to serve there."""
        self.prefix = os.path.join(top, "nginx")
        self.root = os.path.join(self.prefix, "html")
        os.makedirs(self.root)
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d))
        for path, data in files.items():
            dst = os.path.join(self.root, path.split("?")[0].lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            write(dst, data, 0o644)
        key = os.path.join(self.prefix, "key.pem")
        cert = os.path.join(self.prefix, "cert.pem")
        # The same kind of key as photosync's certificates (RSA 2048).
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        self.port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        tmp = os.path.join(self.prefix, "tmp")
        conf = """# The reference of make bench: nginx's defaults, one worker,
# TLS like photosync's, keep-alive not cut short (photosync never closes
# an idle keep-alive connection after N requests either).
%(user)sworker_processes 1;
daemon off;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/logs/error.log warn;
events { worker_connections 1024; }
http {
    types { image/jpeg jpg; }
    default_type image/jpeg;
    # photosync logs a line per request too.
    access_log %(prefix)s/logs/access.log;
    sendfile on;
    tcp_nopush on;
    etag on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        root %(root)s;
        location / { }
    }
}
""" % dict(user=user, prefix=self.prefix, tmp=tmp, port=self.port,
           cert=cert, key=key, root=self.root)
        self.conf = write(os.path.join(self.prefix, "nginx.conf"), conf,
                          0o644)
        self.log = open(os.path.join(self.prefix, "logs", "stderr.log"),
                        "ab")
        self.proc = subprocess.Popen(
            pinned(SERVER_CPU, ["nginx", "-p", self.prefix, "-c",
                                self.conf, "-e",
                                os.path.join(self.prefix, "logs",
                                             "error.log")]),
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise BenchError("nginx exited: " + self.errors())
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("nginx did not start: " +
                                     self.errors())
                time.sleep(0.05)

    def errors(self):
        out = ""
        for name in ("stderr.log", "error.log"):
            p = os.path.join(self.prefix, "logs", name)
            if os.path.exists(p):
                out += open(p, errors="replace").read()[-2000:]
        return out

    def pids(self):
        """The master and its worker(s)."""
        if not hasattr(self, "_pids"):
            kids = []
            for t in os.listdir("/proc/%d/task" % self.proc.pid):
                f = "/proc/%d/task/%s/children" % (self.proc.pid, t)
                if os.path.exists(f):
                    kids += [int(x) for x in open(f).read().split()]
            if not kids:
                return [self.proc.pid]
            self._pids = [self.proc.pid] + kids
        return self._pids

    def cpu_s(self):
        return sum(proc_cpu_s(p) for p in self.pids())

    def rss_kb(self):
        return sum(proc_status(p, "VmRSS") or 0 for p in self.pids())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def wrk(port, path, headers=(), seconds=None, script=None, env=None,
        sampler=None, server_cpu=None):
    """One pinned wrk run; a dict with rps, p50/p99 (ms), requests, bytes,
    and the errors it counted; with `server_cpu` (a function giving the
    server's CPU seconds so far), the server's CPU use too, and always
    wrk's own. `sampler`, if given, is called about ten times a second
    while wrk runs."""
    # wrk takes whole seconds.
    argv = ["wrk", "-t1", "-c%d" % CONNS,
            "-d%ds" % max(1, round(seconds or SECONDS)),
            "--latency", "--timeout", "10s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append("https://127.0.0.1:%d%s" % (port, path))
    cpu0 = server_cpu() if server_cpu else None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = cpu_busy_s()
    t0 = time.monotonic()
    p = subprocess.Popen(pinned(LOAD_CPU, argv), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=dict(ENV, **(env or {})))
    if sampler:
        while p.poll() is None:
            sampler()
            time.sleep(0.1)
    out, err = p.communicate(timeout=(seconds or SECONDS) + 120)
    wall = time.monotonic() - t0
    busy1 = cpu_busy_s()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise BenchError("wrk failed: " + out + err)
    r = {"out": out, "wall": wall}
    # wrk is the only child reaped meanwhile (taskset execs it).
    r["wrk_cpu"] = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime -
                    ru0.ru_stime) / wall
    r["foreign_load"] = foreign(busy0, busy1, LOAD_CPU, r["wrk_cpu"] * wall,
                                wall)
    r["foreign_server"] = 0.0
    if server_cpu:
        r["server_cpu_s"] = server_cpu() - cpu0
        r["server_cpu"] = r["server_cpu_s"] / wall
        r["foreign_server"] = foreign(busy0, busy1, SERVER_CPU,
                                      r["server_cpu_s"], wall)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+)(\w+) read", out)
    if not m:
        raise BenchError("cannot read wrk's output: " + out + err)
    r["requests"] = int(m.group(1))
    r["bytes"] = float(m.group(3)) * {"B": 1, "KB": 1024, "MB": 1024 ** 2,
                                      "GB": 1024 ** 3}[m.group(4)]
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % q, out, re.M)
        r["p" + q] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    r["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    if server_cpu and r["requests"]:
        r["us_per_req"] = r["server_cpu_s"] / r["requests"] * 1e6
    return r


def check_wrk(r, what, min_body=None, max_body=None):
    """Refuses a run whose answers were not what the figure claims."""
    if r["requests"] == 0:
        raise BenchError("%s: no request completed\n%s" % (what, r["out"]))
    if r["non2xx"]:
        raise BenchError("%s: %d answers were not 2xx/3xx\n%s" % (
            what, r["non2xx"], r["out"]))
    per = r["bytes"] / r["requests"]
    if min_body is not None and per < min_body:
        raise BenchError("%s: %.0f bytes per answer, expected at least %d"
                         % (what, per, min_body))
    if max_body is not None and per > max_body:
        raise BenchError("%s: %.0f bytes per answer, expected at most %d "
                         "(bodies sent?)" % (what, per, max_body))
    if r["sockerr"] > r["requests"] * 0.001:
        raise BenchError("%s: %d socket errors\n%s" % (what, r["sockerr"],
                                                       r["out"]))


def compare(name, ps_target, ref_target, min_body=None, max_body=None):
    """Alternates photosync and the reference for ROUNDS rounds (the order
    flips every round); each target is (port, path, headers, cpu), cpu a
    function giving the server's CPU seconds. Returns the per-round
    results."""
    for who, (port, path, hdrs, _) in (("photosync", ps_target),
                                       ("reference", ref_target)):
        r = wrk(port, path, hdrs, seconds=min(1.0, SECONDS))   # warm-up
        check_wrk(r, "%s warm-up (%s)" % (name, who), min_body, max_body)
    res = {"photosync": [], "reference": [], "disturbed": 0}
    i = 0
    while len(res["photosync"]) < ROUNDS:
        order = ["photosync", "reference"]
        if i % 2:
            order.reverse()
        i += 1
        pair = {}
        for who in order:
            port, path, hdrs, cpu = ps_target if who == "photosync" else \
                ref_target
            wait_quiet()
            r = wrk(port, path, hdrs, server_cpu=cpu)
            check_wrk(r, "%s (%s)" % (name, who), min_body, max_body)
            pair[who] = r
        a, b = pair["photosync"], pair["reference"]
        worst = max(a["foreign_server"], a["foreign_load"],
                    b["foreign_server"], b["foreign_load"])
        log("  %s round %d: photosync %.0f req/s (%.0f%% CPU), nginx %.0f "
            "req/s (%.0f%% CPU), wrk %.0f%%/%.0f%% CPU, others %.0f%%" % (
                name, i, a["rps"], a["server_cpu"] * 100, b["rps"],
                b["server_cpu"] * 100, a["wrk_cpu"] * 100,
                b["wrk_cpu"] * 100, worst * 100))
        # Another process took a share of a pinned core: the pair is
        # measured again (at most ROUNDS times in all), else kept.
        if worst > MAX_FOREIGN and res["disturbed"] < ROUNDS:
            res["disturbed"] += 1
            continue
        res["photosync"].append(a)
        res["reference"].append(b)
    return res


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------- bulk data

def table_columns(con, table, schema="main"):
    return [r[1] for r in con.execute("PRAGMA %s.table_info(%s)" %
                                      (schema, table))]


def copy_rows_sql(con, table, key, overrides, src="main", src_table=None):
    """INSERT INTO table SELECT ... FROM src.table WHERE key = ?: every
    column copied from the template row, except `overrides` (names), which
    become parameters in that order, then the template's key (no WHERE
    when `key` is None). Built from the store's own schema, so columns
    added later are copied too."""
    src_table = src_table or table
    cols = table_columns(con, table)
    src_cols = table_columns(con, src_table, src)
    sel = []
    for c in cols:
        if c in overrides:
            sel.append("?")
        elif c in src_cols:
            sel.append(c)
        else:
            sel.append("NULL")
    params = [c for c in cols if c in overrides]
    sql = "INSERT INTO %s (%s) SELECT %s FROM %s.%s" % (
        table, ", ".join(cols), ", ".join(sel), src, src_table)
    if key:
        sql += " WHERE %s = ?" % key
    return sql, params


def connect(db):
    """The store, opened directly for bulk rows: the change feed's
    triggers call these two functions (an origin of its own)."""
    con = sqlite3.connect(db, timeout=60)
    con.create_function("ps_feed_origin", 0, lambda: 1)
    con.create_function("ps_feed_tx", 0, lambda: 1)
    return con


def bulk_master(db, template, emails):
    """Mailboxes `emails`, without passwords, each with a copy of the
    template mailbox's stored photo (every size) under its own ETag."""
    con = connect(db)
    try:
        con.execute("PRAGMA synchronous=OFF")
        now = int(time.time())
        with con:
            sql, order = copy_rows_sql(con, "mailboxes", "email",
                                       ["email", "name", "pwhash",
                                        "created"])
            con.executemany(sql, (
                [dict(email=e, name="Bench " + e.split("@")[0],
                      pwhash=None, created=now)[c] for c in order] +
                [template] for e in emails))
            sql, order = copy_rows_sql(con, "photos", "email",
                                       ["email", "etag"])
            con.executemany(sql, (
                [dict(email=e, etag=secrets.token_hex(16))[c]
                 for c in order] + [template] for e in emails))
            sql, order = copy_rows_sql(con, "photo_sizes", "email",
                                       ["email"])
            con.executemany(sql, ([e, template] for e in emails))
        n = con.execute("SELECT count(*) FROM photos").fetchone()[0]
        n_sizes = con.execute("SELECT count(*) FROM photo_sizes WHERE "
                              "email = ?", (template,)).fetchone()[0]
    finally:
        con.close()
    return n, n_sizes


def bulk_portal_users(db, template, accounts):
    """Portal users `accounts` (contoso\\name, name@contoso.com), without
    passwords, copied from the template user's row."""
    con = connect(db)
    try:
        con.execute("PRAGMA synchronous=OFF")
        now = int(time.time())
        with con:
            sql, order = copy_rows_sql(
                con, "users", "account",
                ["account", "email", "name", "pwhash", "created",
                 "email_md5", "email_sha256"])
            rows = []
            for a in accounts:
                email = a.split("\\")[1] + "@" + DOMAIN
                v = dict(account=a, email=email, name="Bench " + a,
                         pwhash=None, created=now,
                         email_md5=hashlib.md5(email.encode()).hexdigest(),
                         email_sha256=hashlib.sha256(
                             email.encode()).hexdigest())
                rows.append([v[c] for c in order] + [template])
            con.executemany(sql, rows)
    finally:
        con.close()


def bulk_portal_photos(db, src_db, webapp, template, accounts):
    """A copy of the template's cached photo (its thumbs row: S, M, L and
    the high-resolution source, as a sync stored them) and sync state for
    each of `accounts`, each under its own ETag."""
    con = connect(db)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.execute("ATTACH DATABASE ? AS src", (src_db,))
        # The template rows, once (src's keys start with the web app).
        for t in ("thumbs", "sync_state"):
            con.execute("CREATE TEMP TABLE tmpl_%s AS SELECT * FROM src.%s "
                        "WHERE account = ? LIMIT 1" % (t, t), (template,))
        with con:
            # The high-resolution source is only read by /avatar/, which no
            # figure asks for: left out (as for photos stored before it
            # existed) unless BENCH_MEMORY_HR=1; it is 7 GB at 100,000.
            sql, order = copy_rows_sql(
                con, "thumbs", None, ["webapp", "account", "etag"] +
                ([] if MEMORY_HR else ["hr"]), "temp", "tmpl_thumbs")
            con.executemany(sql, (
                [dict(webapp=webapp, account=a, hr=None,
                      etag=secrets.token_hex(16))[c] for c in order]
                for a in accounts))
            sql, order = copy_rows_sql(
                con, "sync_state", None, ["webapp", "account",
                                          "master_etag"],
                "temp", "tmpl_sync_state")
            con.executemany(sql, (
                [dict(webapp=webapp, account=a,
                      master_etag=secrets.token_hex(16))[c]
                 for c in order] for a in accounts))
        n = con.execute("SELECT count(*) FROM thumbs").fetchone()[0]
        sizes = con.execute(
            "SELECT length(s), length(m), length(l), length(hr) FROM "
            "main.thumbs LIMIT 1").fetchone()
        con.execute("DETACH DATABASE src")
    finally:
        con.close()
    return n, sizes


def portal_forget(db):
    """Empties the portal's cache and sync state: every user is fetched
    again, as on the first day."""
    con = connect(db)
    try:
        with con:
            con.execute("DELETE FROM thumbs")
            con.execute("DELETE FROM sync_state")
    finally:
        con.close()


def one_value(db, sql, args=()):
    con = connect(db)
    try:
        row = con.execute(sql, args).fetchone()
        return row[0] if row else None
    finally:
        con.close()


# ---------------------------------------------------------------- setup

class Master:
    def __init__(self, top):
        self.dir = os.path.join(top, "master")
        photosync("master", "init", "--dir", self.dir, "--host",
                  "127.0.0.1:0", "--domain", DOMAIN)
        self.ca = os.path.join(self.dir, "tls-cert.pem")
        self.db = os.path.join(self.dir, "master.db")
        self.server = None

    def cmd(self, *args):
        args = list(args)
        return photosync("master", *(args[:2] + ["--dir", self.dir] +
                                     args[2:]))

    def add_mailbox(self, email, password):
        pw = write(os.path.join(self.dir, "pw.tmp"), password + "\n")
        self.cmd("mailbox", "add", email, "--password-file", pw)
        os.unlink(pw)

    def start(self):
        self.server = Server("master", self.dir)
        self.port = self.server.port
        return self

    def url(self, path=""):
        return "https://127.0.0.1:%d%s" % (self.port, path)


class Portal:
    def __init__(self, top, name):
        self.dir = os.path.join(top, name)
        photosync("portal", "init", "--dir", self.dir, "--url",
                  "https://127.0.0.1:0")
        self.ca = os.path.join(self.dir, "webapp-1-tls-cert.pem")
        self.db = os.path.join(self.dir, "portal.db")
        self.server = None

    def cmd(self, *args, cpu=None):
        args = list(args)
        return photosync("portal", *(args[:2] + ["--dir", self.dir] +
                                     args[2:]), cpu=cpu)

    def add_user(self, account, email, password=None):
        args = ["user", "add", account, "--email", email]
        if password is not None:
            pw = write(os.path.join(self.dir, "pw.tmp"), password + "\n")
            args += ["--password-file", pw]
        self.cmd(*args)
        if password is not None:
            os.unlink(pw)

    def wire(self, master):
        """Article steps 4-6, as tests/integration/psync.py's wired()."""
        self.cmd("webapp", "set", "--photo-import", "on",
                 "--photo-expiration", "6h", "--photo-error-expiration",
                 "1h", "--autodiscover-domain", "127.0.0.1:%d" % master.port,
                 "--ca-file", master.ca)
        self.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
                 master.url("/autodiscover/metadata/json/1"), "--ca-file",
                 master.ca)

    def webapp_id(self):
        return one_value(self.db, "SELECT min(id) FROM webapps")

    def start(self):
        self.server = Server("portal", self.dir)
        self.port = self.server.port
        return self

    def stop(self):
        if self.server:
            self.server.stop()
            self.server = None


def photo_path(account, size):
    return "/_layouts/15/userphoto.aspx?size=%s&accountname=%s" % (
        size, quote(account, safe=""))


# ---------------------------------------------------------------- figures

def fig_render():
    """Figure 4: bench_render, pinned, alternating floor and ours."""
    seconds = max(2.0, ROUNDS * SECONDS)
    wait_quiet()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = cpu_busy_s()
    t0 = time.monotonic()
    p = run(pinned(SERVER_CPU, [RENDER, "--seconds", "%g" % seconds,
                                "--rounds", str(max(ROUNDS, 1))]))
    wall = time.monotonic() - t0
    busy1 = cpu_busy_s()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^RESULT (.*)$", p.stdout, re.M)
    if not m:
        raise BenchError("bench_render printed no RESULT: " + p.stdout)
    r = {k: float(v) for k, v in
         (kv.split("=") for kv in m.group(1).split())}
    r["text"] = p.stdout
    r["foreign"] = foreign(busy0, busy1, SERVER_CPU,
                           ru1.ru_utime - ru0.ru_utime + ru1.ru_stime -
                           ru0.ru_stime, wall)
    return r


def refresh_once(portal, master, force):
    """One pinned `portal refresh --all`: its summary counts, wall seconds,
    the master's CPU seconds and its own."""
    argv = [PHOTOSYNC, "portal", "refresh", "--dir", portal.dir, "--all",
            "--concurrency", "8"]
    if force:
        argv.append("--force")
    ours = [master.server.pid, portal.server.pid]
    cpu0 = proc_cpu_s(master.server.pid)
    own0 = sum(proc_cpu_s(x) for x in ours)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = cpu_busy_s()
    t0 = time.monotonic()
    p = run(pinned(LOAD_CPU, argv), check=False)
    r = {"wall": time.monotonic() - t0,
         "master_cpu": proc_cpu_s(master.server.pid) - cpu0}
    busy1 = cpu_busy_s()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["portal_cpu"] = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime -
                       ru0.ru_stime)
    r["foreign"] = max(
        foreign(busy0, busy1, SERVER_CPU, sum(proc_cpu_s(x) for x in ours)
                - own0, r["wall"]),
        foreign(busy0, busy1, LOAD_CPU, r["portal_cpu"], r["wall"]))
    for k in ("updated", "unchanged", "no photo", "no mailbox", "failed"):
        m = re.search(r"^\s+%s\s+(\d+)" % k, p.stdout, re.M)
        r[k] = int(m.group(1)) if m else 0
    if p.returncode != 0 or r["failed"]:
        raise BenchError("portal refresh failed (%d): %s%s" % (
            p.returncode, p.stdout, p.stderr[-2000:]))
    return r


def machine():
    def first(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    def deb(pkg):
        try:
            return subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True, text=True).stdout.strip() or "?"
        except OSError:
            return "?"
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = proc_meminfo("MemTotal")
    osname = "?"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    return [
        ("CPU", "%s, %d cores online" % (cpu, os.cpu_count())),
        ("memory", "%.1f GiB" % (mem / 1024 / 1024)),
        ("system", "%s, Linux %s" % (osname, platform.release())),
        ("nginx", first(["nginx", "-v"]).replace("nginx version: ", "")),
        ("wrk", first(["wrk", "-v"]).split(" Copyright")[0]),
        ("libvips", deb("libvips42")),
        ("libjpeg-turbo", deb("libjpeg62-turbo")),
        ("OpenSSL", first(["openssl", "version"])),
        ("load average after", open("/proc/loadavg").read().split(" ")[0:3]),
    ]


def proc_meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def perf_profile(top, pid, port, path, hdrs):
    """The portal's profile under the load of (1), from perf record: the
    top symbols by own time, and photosync's functions with what they
    call (DWARF call graphs: the release build has no frame pointers)."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)\n"
    data = os.path.join(top, "perf.data")
    secs = max(int(SECONDS), 3)
    rec = subprocess.Popen(["perf", "record", "-q", "--call-graph",
                            "dwarf,16384", "-F", "499", "-p", str(pid),
                            "-o", data, "--", "sleep", str(secs)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    time.sleep(0.3)
    wrk(port, path, hdrs, seconds=secs - 1)
    _, err = rec.communicate()
    if rec.returncode != 0:
        return "perf record failed: %s\n" % err.strip()

    def report(*args):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio",
                              "-g", "none", "--percent-limit", "0.5"] +
                             list(args), capture_output=True, text=True)
        return [ln for ln in rep.stdout.splitlines()
                if "%" in ln and not ln.startswith("#")]
    own = report("--no-children", "--sort", "dso,sym")[:30]
    ours = [ln for ln in report("--children", "--sort", "dso,sym")
            if " photosync " in ln][:30]
    os.unlink(data)
    return ("self time, top symbols:\n" + "\n".join(own) +
            "\n\nphotosync's functions, with what they call (children, "
            "self):\n" + "\n".join(ours) + "\n")


# ---------------------------------------------------------------- main

def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def main():
    for exe in (PHOTOSYNC, RENDER):
        if not os.access(exe, os.X_OK):
            raise BenchError("%s is missing: run `make bench`" % exe)
    for tool in ("wrk", "nginx", "openssl", "taskset"):
        if shutil.which(tool) is None:
            raise BenchError("%s is missing: ./scripts/deps.sh bench" %
                             tool)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = open("/proc/loadavg").read().split()[:3]
    top = tempfile.mkdtemp(prefix="photosync-bench-",
                           dir=ENV.get("BENCH_TMP") or None)
    log("working in %s (%d rounds of %gs, %d connections%s)" % (
        top, ROUNDS, SECONDS, CONNS, ", quick" if QUICK else ""))
    servers = []
    rows, notes, details = [], [], []
    try:
        # -- the master: two mailboxes with passwords and generated photos
        t0 = time.monotonic()
        m = Master(top)
        photos = {}
        for i, email, pw in ((1, "test1@" + DOMAIN, PW1),
                             (2, "test2@" + DOMAIN, PW2)):
            f = os.path.join(top, "photo%d.jpg" % i)
            run([RENDER, "--generate", str(i), "648", f])
            m.add_mailbox(email, pw)
            m.cmd("photo", "set", email, "--file", f)
            photos[email] = f
        # ... and N_REFRESH mailboxes, each with test2's stored photo.
        bulk_emails = ["user%06d@%s" % (i, DOMAIN) for i in range(N_REFRESH)]
        n_photos, n_sizes = bulk_master(m.db, "test2@" + DOMAIN, bulk_emails)
        log("master: %d mailboxes with photos (%d sizes each)" % (
            n_photos, n_sizes))
        m.start()
        servers.append(m.server)

        # -- the portal: test1..3 with passwords, N_REFRESH bulk users
        p = Portal(top, "portal")
        p.add_user("contoso\\test1", "test1@" + DOMAIN, PW1)
        p.add_user("contoso\\test2", "test2@" + DOMAIN, PW2)
        p.add_user("contoso\\test3", "test3@" + DOMAIN, PW3)
        bulk_accounts = ["contoso\\user%06d" % i for i in range(N_REFRESH)]
        bulk_portal_users(p.db, "contoso\\test3", bulk_accounts)
        p.start()
        servers.append(p.server)
        p.wire(m)
        m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
              "https://127.0.0.1:%d/_layouts/15/metadata/json/1" % p.port,
              "--ca-file", p.ca)
        log("set up in %.0fs" % (time.monotonic() - t0))

        # -- figure 5: refresh --all, first fetches, then all 304
        # (test3 has no mailbox: n_users - 1 photos.) Rounds: up to
        # REFRESH_ROUNDS, while the next one fits REFRESH_BUDGET.
        n_users = N_REFRESH + 3
        first, again = [], []

        def rounds(force):
            out, spent = [], 0.0
            while len(out) < REFRESH_ROUNDS and (
                    not out or spent + out[-1]["wall"] <= REFRESH_BUDGET):
                if not force and out:
                    portal_forget(p.db)
                wait_quiet()
                r = refresh_once(p, m, force=force)
                key = "unchanged" if force else "updated"
                if r[key] != n_users - 1:
                    raise BenchError("refresh%s: %d %s, expected %d: %r" % (
                        " --force" if force else "", r[key], key,
                        n_users - 1, r))
                r["ups"] = n_users / r["wall"]
                r["master_ms"] = r["master_cpu"] / r[key] * 1e3
                r["portal_ms"] = r["portal_cpu"] / n_users * 1e3
                out.append(r)
                spent += r["wall"]
                log("  refresh %s round %d: %.0f users/s (%.1fs), master "
                    "%.2f ms CPU per photo, refresh %.2f ms CPU per user, "
                    "others %.0f%%" % (
                        "all-304" if force else "first fetch", len(out),
                        r["ups"], r["wall"], r["master_ms"],
                        r["portal_ms"], r["foreign"] * 100))
            return out
        first = rounds(False)
        again = rounds(True)

        # -- the bytes both servers will serve
        auth1 = basic("contoso\\test1", PW1)
        m_path = photo_path("contoso\\test2", "M")
        st, h, m_body = fetch(p.port, m_path, {"Authorization": auth1},
                              p.ca)
        want = one_value(p.db, "SELECT m FROM thumbs WHERE account = ?",
                         ("contoso\\test2",))
        if st != 200 or m_body != want:
            raise BenchError("the portal did not serve test2's cached M "
                             "photo (%d, %d bytes)" % (st, len(m_body)))
        m_etag = h.get("etag")
        ews_auth = basic("test1@" + DOMAIN, PW1)
        ews_path = ("/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=%s" %
                    (quote("test1@" + DOMAIN), "HR648x648"))
        ews_small = ews_path.replace("HR648x648", "HR96x96")
        # nginx ignores the query: the small one gets a path of its own.
        ews_small_ngx = ews_small.replace("/GetUserPhoto",
                                          "/small/GetUserPhoto")
        st, _, hr_body = fetch(m.port, ews_path, {"Authorization": ews_auth},
                               m.ca)
        st2, _, small_body = fetch(m.port, ews_small,
                                   {"Authorization": ews_auth}, m.ca)
        if st != 200 or st2 != 200 or not hr_body.startswith(b"\xff\xd8"):
            raise BenchError("the master did not serve test1's photo (%d)"
                             % st)
        ngx = Nginx(top, {m_path: m_body, ews_path: hr_body,
                          ews_small_ngx: small_body})
        servers.append(ngx)
        for path, body in ((m_path, m_body), (ews_path, hr_body),
                           (ews_small_ngx, small_body)):
            st, h, b = fetch(ngx.port, path)
            if st != 200 or b != body:
                raise BenchError("nginx does not serve the same bytes at "
                                 + path)
        ngx_etag = fetch(ngx.port, m_path)[1].get("etag")
        for port, path, tag, ca in ((p.port, m_path, m_etag, p.ca),
                                    (ngx.port, m_path, ngx_etag, None)):
            st = fetch(port, path, {"Authorization": auth1,
                                    "If-None-Match": tag}, ca)[0]
            if st != 304:
                raise BenchError("If-None-Match %s did not give 304 (%d)"
                                 % (tag, st))
        hdr1 = ["Authorization: " + auth1]
        hdr_ews = ["Authorization: " + ews_auth]

        # -- figure 1: a cached M photo; nginx's RSS sampled meanwhile
        ngx_idle_kb = ngx.rss_kb()
        ngx_peak = [0]

        def sample_ngx():
            ngx_peak[0] = max(ngx_peak[0], ngx.rss_kb())
        log("figure 1: cached M photo (%d bytes)" % len(m_body))
        pcpu = lambda: proc_cpu_s(p.server.pid)     # noqa: E731
        mcpu = lambda: proc_cpu_s(m.server.pid)     # noqa: E731
        fig1 = compare("1", (p.port, m_path, hdr1, pcpu),
                       (ngx.port, m_path, hdr1, ngx.cpu_s),
                       min_body=len(m_body))
        # nginx's resident size under the same load (figure 6's
        # reference).
        wrk(ngx.port, m_path, hdr1, sampler=sample_ngx)
        log("figure 2: 304")
        fig2 = compare("2", (p.port, m_path,
                             hdr1 + ["If-None-Match: " + m_etag], pcpu),
                       (ngx.port, m_path,
                        hdr1 + ["If-None-Match: " + ngx_etag], ngx.cpu_s),
                       max_body=600)
        log("figure 3: GetUserPhoto HR648x648 (%d bytes)" % len(hr_body))
        fig3 = compare("3", (m.port, ews_path, hdr_ews, mcpu),
                       (ngx.port, ews_path, hdr_ews, ngx.cpu_s),
                       min_body=len(hr_body))
        log("figure 3b: GetUserPhoto HR96x96 (%d bytes)" % len(small_body))
        fig3b = compare("3b", (m.port, ews_small, hdr_ews, mcpu),
                        (ngx.port, ews_small_ngx, hdr_ews, ngx.cpu_s),
                        min_body=len(small_body))
        profile = None
        if PERF:
            log("perf: the portal under the load of (1)")
            profile = perf_profile(top, p.server.pid, p.port, m_path, hdr1)

        # -- figure 4
        log("figure 4: render S/M/L")
        fig4 = fig_render()

        # -- figure 6: a portal with N_MEMORY users, each with a photo
        servers.remove(p.server)
        p.stop()
        log("figure 6: a portal with %d users and photos" % N_MEMORY)
        t0 = time.monotonic()
        q = Portal(top, "portal-memory")
        q.add_user("contoso\\test1", "test1@" + DOMAIN, PW1)
        q.wire(m)
        mem_accounts = ["contoso\\user%06d" % i for i in range(N_MEMORY)]
        bulk_portal_users(q.db, "contoso\\test1", mem_accounts)
        n_thumbs, tsizes = bulk_portal_photos(
            q.db, p.db, q.webapp_id(), "contoso\\test2", mem_accounts)
        db_mb = os.path.getsize(q.db) / 1024 / 1024
        log("  %d photos stored (S/M/L/HR %s bytes each), store %.0f MiB, "
            "in %.0fs" % (n_thumbs, "/".join(str(x) for x in tsizes),
                          db_mb, time.monotonic() - t0))
        sizes_text = "/".join(str(x) for x in tsizes)
        q.start()
        servers.append(q.server)
        time.sleep(2)
        started_kb = proc_status(q.server.pid, "VmRSS")
        # Idle: once it has answered a signed-in request (the first Basic
        # sign-in runs Argon2id; lazily built state is built), then 2 s
        # without load.
        q_path = photo_path(mem_accounts[N_MEMORY // 2], "M")
        st, _, b = fetch(q.port, q_path, {"Authorization": auth1}, q.ca)
        if st != 200 or b != m_body:
            raise BenchError("the memory portal did not serve the stored "
                             "photo (%d)" % st)
        time.sleep(2)
        idle_kb = proc_status(q.server.pid, "VmRSS")
        peak = [0]

        def sample_q():
            peak[0] = max(peak[0], proc_status(q.server.pid, "VmRSS") or 0)
        load_runs = []
        for i in range(ROUNDS):
            load_runs.append(wrk(q.port, q_path, hdr1, sampler=sample_q))
            check_wrk(load_runs[-1], "6 (load of 1)", min_body=len(m_body))
        hwm_one = proc_status(q.server.pid, "VmHWM")
        # Info: every user's M photo in turn (a cache would grow here).
        lua = write(os.path.join(top, "rotate.lua"), ROTATE_LUA, 0o644)
        peak_all = [0]

        def sample_all():
            peak_all[0] = max(peak_all[0],
                              proc_status(q.server.pid, "VmRSS") or 0)
        rot = wrk(q.port, q_path, hdr1, seconds=ROUNDS * SECONDS,
                  script=lua, env={"BENCH_USERS": str(N_MEMORY)},
                  sampler=sample_all)
        check_wrk(rot, "6 (every user in turn)", min_body=len(m_body) // 2)
        idle_after_kb = proc_status(q.server.pid, "VmRSS")

        # -- the table
        def rate_row(fig, what, res, floor=True):
            ps = med(res["photosync"], "rps")
            ref = med(res["reference"], "rps")
            ratio = ps / ref if ref else None
            ok = ratio is not None and ratio >= FLOOR_RATE
            rows.append((fig, what, "%.0f req/s" % ps, "%.0f req/s" % ref,
                         ratio, "≥ %.2f×" % FLOOR_RATE if floor else "—",
                         ("PASS" if ok else "FAIL") if floor else "info"))
            ps_us = med(res["photosync"], "us_per_req")
            ref_us = med(res["reference"], "us_per_req")
            ref_busy = med(res["reference"], "server_cpu")
            details.append(
                "%s %s: server CPU per request photosync %.1f µs, nginx "
                "%.1f µs (ratio of requests per CPU-second %.2f×); busy "
                "photosync %.0f%%, nginx %.0f%% of its core; wrk %.0f%%/%.0f%%"
                "; p50 photosync %s ms, nginx %s ms; p99 photosync %s ms, "
                "nginx %s ms; req/s per round photosync %s, nginx %s; "
                "rounds measured again because other processes used a "
                "pinned core: %d" % (
                    fig, what, ps_us, ref_us, ref_us / ps_us,
                    med(res["photosync"], "server_cpu") * 100,
                    ref_busy * 100, med(res["photosync"], "wrk_cpu") * 100,
                    med(res["reference"], "wrk_cpu") * 100,
                    fmt(med(res["photosync"], "p50"), ".2f"),
                    fmt(med(res["reference"], "p50"), ".2f"),
                    fmt(med(res["photosync"], "p99"), ".2f"),
                    fmt(med(res["reference"], "p99"), ".2f"),
                    ", ".join("%.0f" % r["rps"] for r in res["photosync"]),
                    ", ".join("%.0f" % r["rps"] for r in res["reference"]),
                    res["disturbed"]))
            if ref_busy < 0.9:
                notes.append(
                    "%s: nginx used only %.0f%% of its core: the load "
                    "generator (or another process) was the limit, so "
                    "nginx's req/s understates it and the ratio %.2f× "
                    "flatters photosync; the ratio of requests per server "
                    "CPU-second (%.2f×) does not." % (
                        fig, ref_busy * 100, ratio, ref_us / ps_us))
            return ok

        def info_row(fig, what, ps, ref=None, ratio=None):
            rows.append((fig, what, ps, ref or "—", ratio, "—", "info"))

        oks = []
        oks.append(rate_row("1", "cached M photo, signed in, TLS "
                            "keep-alive, %d conn. (nginx: same bytes)" %
                            CONNS, fig1))
        oks.append(rate_row("2", "revalidation, If-None-Match → 304 "
                            "(nginx: its 304)", fig2))
        oks.append(rate_row("3", "master GetUserPhoto HR648x648 (nginx: "
                            "same bytes)", fig3))
        rate_row("3b", "master GetUserPhoto HR96x96 (nginx: same bytes)",
                 fig3b, floor=False)
        r4 = fig4["ratio"]
        ok4 = r4 <= FLOOR_RENDER
        oks.append(ok4)
        rows.append(("4", "render S/M/L from a 648×648 JPEG (floor: "
                     "libjpeg-turbo scaled decode + box resize + 3 "
                     "encodes)", "%.2f ms/photo" % fig4["photosync_ms"],
                     "%.2f ms/photo" % fig4["floor_ms"], r4,
                     "≤ %.2f×" % FLOOR_RENDER, "PASS" if ok4 else "FAIL"))

        def mid(rs, k):
            return statistics.median(r[k] for r in rs)
        info_row("5", "refresh --all of %d users, first fetch (%d round%s)"
                 % (n_users, len(first), "" if len(first) == 1 else "s"),
                 "%.0f users/s" % mid(first, "ups"))
        info_row("5", "refresh --all --force, all 304 (%d round%s)" % (
            len(again), "" if len(again) == 1 else "s"),
            "%.0f users/s" % mid(again, "ups"))
        info_row("5", "master CPU per photo, first fetch",
                 "%.2f ms" % mid(first, "master_ms"))
        info_row("5", "master CPU per 304", "%.2f ms" % mid(again,
                                                            "master_ms"))
        mib = 1024.0
        info_row("6", "portal RSS, %d users stored, idle (nginx: idle)" %
                 N_MEMORY, "%.1f MiB" % (idle_kb / mib),
                 "%.1f MiB" % (ngx_idle_kb / mib), idle_kb / ngx_idle_kb)
        peak_kb = max(peak[0], hwm_one or 0)
        info_row("6", "portal peak RSS under the load of (1) (nginx: under "
                 "(1))", "%.1f MiB" % (peak_kb / mib),
                 "%.1f MiB" % (ngx_peak[0] / mib),
                 peak_kb / ngx_peak[0] if ngx_peak[0] else None)
        info_row("6", "portal peak RSS, M photos of all %d users in turn "
                 "(%.0f req/s)" % (N_MEMORY, rot["rps"]),
                 "%.1f MiB" % (max(peak_all[0],
                                   proc_status(q.server.pid, "VmHWM") or 0)
                               / mib))
        details.append(
            "4 " + "; ".join(re.sub(r"\s+", " ", ln.strip())
                             for ln in fig4["text"].splitlines()
                             if not ln.startswith("RESULT")) +
            "; other processes used %.0f%% of its core" % (
                fig4["foreign"] * 100))
        details.append(
            "5 first fetch per round: %s; all-304 per round: %s; the "
            "refresh process's own CPU per user: %.2f ms first fetch, "
            "%.2f ms all-304 (it ran on CPU %s, the master on CPU %s)" % (
                ", ".join("%.0f users/s (%.1f s, others %.0f%%)" % (
                    r["ups"], r["wall"], r["foreign"] * 100) for r in first),
                ", ".join("%.0f users/s (%.1f s, others %.0f%%)" % (
                    r["ups"], r["wall"], r["foreign"] * 100) for r in again),
                mid(first, "portal_ms"), mid(again, "portal_ms"), LOAD_CPU,
                SERVER_CPU))
        details.append(
            "6 the store: %d users with a cached photo (S/M/L/HR bytes "
            "%s), %.0f MiB on disk; RSS just started %.1f MiB, idle %.1f "
            "MiB, after all the runs %.1f MiB; (1)'s load ran at %.0f "
            "req/s" % (n_thumbs, sizes_text, db_mb, started_kb / mib,
                       idle_kb / mib, idle_after_kb / mib,
                       med(load_runs, "rps")))
        ok_all = all(oks)
        report(started, load_before, rows, details, notes, profile, ok_all)
        return 0 if ok_all else 1
    finally:
        for s in reversed(servers):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log("stopping: %s" % e)
        if KEEP:
            log("kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)


# Every user's M photo in turn (wrk's Lua; "%%" is a literal "%").
ROTATE_LUA = r"""
local n = tonumber(os.getenv("BENCH_USERS"))
local i = 0
request = function()
  i = (i + 1) % n
  return wrk.format("GET", string.format(
    "/_layouts/15/userphoto.aspx?size=M&accountname=contoso%%5Cuser%06d", i))
end
"""


def report(started, load_before, rows, details, notes, profile, ok_all):
    head = ["figure", "what", "photosync", "reference", "ratio", "floor",
            "result"]
    table = [head] + [[f, w, ps, ref, fmt(r, ".2f") + ("×" if r else ""),
                       fl, res] for f, w, ps, ref, r, fl, res in rows]
    # The terminal: aligned columns.
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    lines = []
    for j, r in enumerate(table):
        lines.append("  ".join(str(c).ljust(widths[i])
                               for i, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    verdict = ("every floor holds" if ok_all else
               "a floor does not hold (exit status 1)")
    print("\n" + text + "\n\n" + "".join(
        "note: %s\n" % n for n in notes) + verdict, flush=True)

    mach = machine()
    md = ["# photosync benchmark: latest results", "",
          "Written by `make bench` (bench/bench.py); how to read it: "
          "[docs/performance.md](../../docs/performance.md).", "",
          "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
          "- rounds: %d × %g s per figure, photosync and the reference "
          "alternating; medians; %d connections%s" % (
              ROUNDS, SECONDS, CONNS, " (BENCH_QUICK smoke run: not the "
              "issue's numbers)" if QUICK else ""),
          "- pinning: servers on CPU %s, load generator on CPU %s" % (
              SERVER_CPU, LOAD_CPU),
          "- load average before: %s" % " ".join(load_before),
          "- waited %.0f s in all for other processes to leave the pinned "
          "cores (over %.0f%% of a core); see the rounds measured again "
          "below" % (QUIET_WAITED[0], MAX_FOREIGN * 100)]
    for k, v in mach:
        md.append("- %s: %s" % (k, " ".join(v) if isinstance(v, list)
                                else v))
    md += ["", "| " + " | ".join(head) + " |",
           "|" + "|".join("---" for _ in head) + "|"]
    for r in table[1:]:
        md.append("| " + " | ".join(str(c).replace("|", "\\|")
                                    for c in r) + " |")
    md += [""] + ["Note: %s" % n for n in notes] + (["" ] if notes else [])
    md += ["**%s**" % verdict, "", "## Details", ""]
    md += ["- " + d for d in details]
    if profile:
        md += ["", "## The portal under the load of (1), perf", "", "```",
               profile.rstrip(), "```"]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(tmp, OUT)
    print("written to %s" % os.path.relpath(OUT), flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log("error: %s" % e)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:       # a bug of ours is not a failed floor
        import traceback
        traceback.print_exc()
        sys.exit(2)
