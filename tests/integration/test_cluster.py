"""Several nodes on one PostgreSQL store, with real processes.

Nodes: two master nodes and two portal nodes (A and B), each a `serve`
of its own state directory, the second of each role a copy of the
first's keys, certificates and store address (as the cluster demo makes
them), on a PostgreSQL server this test starts (tests/pgserver.py).
Waiting is for events: a change made through one node is polled for on
the other with the hang guard as the only deadline.

  - a photo uploaded by test3 through portal node A is served by node B
    with the new ETag (B had the placeholder in memory);
  - a photo set with the master's admin command is served with its new
    ETag by both master nodes;
  - a session made on node A (the sign-in form) is valid on node B;
  - a webapp setting changed with an admin command (avatar access) is
    applied by every portal node;
  - `photosync demo --nodes 3` on free ports answers GetUserPhoto and the
    portal's photo through HAProxy, its nodes answer GET /ready, a portal
    node stopped leaves HAProxy answering through the others, and
    stopping the demo leaves no process of it and no PostgreSQL running;
    a second run on its directory resumes it.
"""
import atexit
import copy
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
from urllib.parse import urlencode

import psync
from psync import (Master, PHOTOSYNC, Portal, basic, cookies_of, done,
                   end_process, free_port, is_eq, make_image, multipart, ok,
                   photo_path, request, tmpdir, wait_for)

T1, T3 = "contoso\\test1", "contoso\\test3"
work = tmpdir("cluster")
pg = psync.pg_server()


def store_args():
    return ("--store", pg.uri(pg.create_database()))


def second_node(first, name):
    """Another node of `first`'s role: a state directory holding copies
    of its keys, certificates and store address, serving."""
    d = os.path.join(tmpdir(name), "state")
    os.mkdir(d, 0o700)
    for f in os.listdir(first.dir):
        if f.endswith(".pem") or f in ("store-address", "store-password"):
            shutil.copy2(os.path.join(first.dir, f), os.path.join(d, f))
    node = copy.copy(first)
    node.dir = d
    node.ca = os.path.join(d, os.path.basename(first.ca))
    node.server = None
    return node.start()


# ---- the nodes ----
ma = Master(init_args=store_args())
ma.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
ma.cmd("photo", "set", "test1@contoso.com", "--file",
       make_image(os.path.join(work, "t1.jpg"), "800x800"))
ma.start()
mb = second_node(ma, "master-b")
pa = Portal(init_args=store_args())
pa.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
pa.add_user(T3, "test3@contoso.com", "pw-three", "Test Three")
pa.start()
pa.cmd("webapp", "set", "--photo-import", "on", "--photo-expiration", "6h",
       "--photo-error-expiration", "1h", "--autodiscover-domain",
       "127.0.0.1:%d" % ma.port, "--ca-file", ma.ca)
pa.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
       ma.url("/autodiscover/metadata/json/1"), "--ca-file", ma.ca)
ma.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
       pa.url("/_layouts/15/metadata/json/1"), "--ca-file", pa.ca)
pb = second_node(pa, "portal-b")
for name, node in (("master A", ma), ("master B", mb), ("portal A", pa),
                   ("portal B", pb)):
    r = node.get("/ready")
    is_eq((r.status, r.text()), (200, "ready\n"), "%s is ready" % name)

# ---- a photo changed through portal node A, served by node B ----
before = pb.get(photo_path(T3, "L"), as_user=T3).header("ETag")
ok("placeholder" in before, "node B serves test3's placeholder (%s)" %
   before)
body, ctype = multipart({"photo": ("me.jpg", open(make_image(
    os.path.join(work, "t3.jpg"), "700x700"), "rb").read())})
r = pa.post("/my/changephoto", body, {"Content-Type": ctype}, as_user=T3)
ok(r.status == 200 and "stored" in r.text(), "test3 uploads through node A")
new = pa.get(photo_path(T3, "L"), as_user=T3).header("ETag")
ok("placeholder" not in new, "node A serves the new photo (%s)" % new)
ok(wait_for(lambda: pb.get(photo_path(T3, "L"), as_user=T3)
            .header("ETag") == new),
   "node B serves the photo uploaded through node A, with its ETag")
r = pb.get(photo_path(T3, "L"), as_user=T3, headers={"If-None-Match": new})
is_eq(r.status, 304, "node B revalidates the new ETag (304)")

# ---- a photo set at the master, served by both master nodes ----
GUP = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&" \
      "size=HR648x648"
AUTH = {"Authorization": basic("test1@contoso.com", "pw-one")}
old = mb.get(GUP, AUTH).header("ETag")
ok(old, "master node B serves test1's photo (%s)" % old)
ma.cmd("photo", "set", "test1@contoso.com", "--file",
       make_image(os.path.join(work, "t1b.jpg"), "640x640",
                  extra=["-negate"]))
newm = ma.get(GUP, AUTH).header("ETag")
ok(newm and newm != old, "master node A serves the new photo (%s)" % newm)
ok(wait_for(lambda: mb.get(GUP, AUTH).header("ETag") == newm),
   "master node B serves the new photo with its ETag")

# ---- a session made on node A, valid on node B ----
r = pa.get("/login")
csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
r = pa.post("/login", urlencode({"account": T1, "password": "pw-one",
                                 "csrf": csrf}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded",
             "Cookie": "ps_csrf=" + cookies_of(r)["ps_csrf"]})
session = cookies_of(r).get("ps_session")
ok(r.status == 303 and session, "signed in through node A's form")
r = pb.get("/my", {"Cookie": "ps_session=%s" % session})
ok(r.status == 200 and "Test One" in r.text(),
   "node B knows the session made on node A (/my: %d)" % r.status)

# ---- a webapp setting changed by an admin command, on every node ----
md5 = hashlib.md5(b"test1@contoso.com").hexdigest()
for name, node in (("A", pa), ("B", pb)):
    is_eq(node.get("/avatar/" + md5).status, 401,
          "node %s: avatars need a sign-in" % name)
pa.cmd("webapp", "set", "--avatar-access", "anyone")
for name, node in (("A", pa), ("B", pb)):
    ok(wait_for(lambda: node.get("/avatar/" + md5).status == 200),
       "node %s applies avatar-access anyone (no sign-in: 200)" % name)

for node in (pb, pa, mb, ma):
    is_eq(node.stop(), 0, "a node stops cleanly")


# ---- the cluster demo ----
def free_run(n):
    """A port base N with N to N+n-1 free."""
    for _ in range(100):
        base = free_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of %d free ports" % n)


def processes_of(path):
    """Processes whose command line names `path`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8",
                                                          "replace")
        except OSError:
            continue
        if path in cmd:
            found.append("%s: %s" % (pid, cmd.strip()))
    return found


def haproxy_missing():
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]:
        if os.access(os.path.join(d, "haproxy"), os.X_OK):
            return False
    return True


if haproxy_missing():
    psync.skip("the cluster demo", "HAProxy is not installed (scripts/"
               "deps.sh test installs it)")
    done()

NODES = 3
base = free_run(5 + NODES)
# A short directory: PostgreSQL's socket path is at most 107 bytes.
state = os.path.join(tmpdir("cl"), "d")
out_path = os.path.join(work, "demo.out")
out = open(out_path, "w")
proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state, "--port-base",
                         str(base), "--nodes", str(NODES)], stdout=out,
                        stderr=subprocess.STDOUT)


def stop_demo():
    """A test that ends early stops the demo it started (which stops its
    nodes, HAProxy and PostgreSQL)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


atexit.register(stop_demo)


def demo_text():
    return open(out_path).read()


ok(wait_for(lambda: "Press Ctrl-C" in demo_text() or
            proc.poll() is not None), "the cluster demo starts")
text = demo_text()
ok("Press Ctrl-C" in text, "it says how to stop it")
ok("Point a browser at  https://localhost:%d/my" % (base + 1) in text,
   "it prints where to point a browser, as the one-node demo does")
if "Press Ctrl-C" not in text:
    print("# " + text.replace("\n", "\n# "))
    for f in ("setup.log", "haproxy.log"):
        p = os.path.join(state, f)
        if os.path.exists(p):
            print("# %s:\n# %s" % (f, open(p).read()[-3000:]
                                   .replace("\n", "\n# ")))
env = {}
for line in open(os.path.join(state, "demo.env")):
    g = re.match(r"^([A-Z_]+)='(.*)'$", line.strip())
    if g:
        env[g.group(1)] = g.group(2)
pw, ca = env["DEMO_PASSWORD"], env["CA_FILE"]
cfg = open(os.path.join(state, "haproxy.cfg")).read()
ok("mode tcp" in cfg and "uri /ready" in cfg and "check-ssl" in cfg,
   "HAProxy passes TLS through and checks GET /ready over TLS")
is_eq(len(re.findall(r"(?m)^\tserver portal-\d+ ", cfg)), NODES,
      "HAProxy has the %d portal nodes" % NODES)
is_eq(len(re.findall(r"(?m)^\tserver master-\d+ ", cfg)), 2,
      "and the 2 master nodes")
for i in range(2 + NODES):
    r = request("127.0.0.1", base + 3 + i, "GET", "/ready", ca)
    is_eq((r.status, r.text()), (200, "ready\n"),
          "node on port %d answers GET /ready" % (base + 3 + i))
r = request("localhost", base, "GET", GUP, ca,
            {"Authorization": basic("test1@contoso.com", pw)})
ok(r.status == 200 and r.header("Content-Type") == "image/jpeg",
   "GetUserPhoto through HAProxy (port %d): %d" % (base, r.status))
h = {"Authorization": basic(T1, pw)}
r = request("localhost", base + 1, "GET", photo_path(T1, "L"), ca, h)
ok(r.status == 200, "the portal's photo through HAProxy (port %d)" %
   (base + 1))
rid = re.escape(r.header("request-id") or "-")
logs = " ".join(os.path.join(state, "portal-%d.log" % (i + 1))
                for i in range(NODES))


def synced():
    for i in range(NODES):
        p = os.path.join(state, "portal-%d.log" % (i + 1))
        m = re.search(r"req=%s ev=sync\.(done|failed) .*" % rid,
                      open(p).read())
        if m:
            return m.group(0)
    return None


line = wait_for(synced)
ok(line and "ev=sync.done" in line, "the owner's sync through both "
   "balancers fetched test1's photo from a master node (%s)" % line)
r = request("localhost", base + 1, "GET", photo_path(T1, "L"), ca, h)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "then the portal serves test1's photo through HAProxy (%s)" %
   r.header("ETag"))
first_etag = r.header("ETag")

# A photo change at the master: its notice goes through the portals'
# HAProxy to a node, signed for the balancer's address (the nodes listen
# on ports of their own: serve --listen-port), and every node serves the
# new photo.
psync.run("master", "photo", "set", "--dir", env["MASTER_DIR"],
          "test1@contoso.com", "--file", os.path.join(state,
                                                     "photo-test2.jpg"))


def portal_logs():
    return "".join(open(os.path.join(state, "portal-%d.log" % (i + 1)),
                        errors="replace").read() for i in range(NODES))


ok(wait_for(lambda: re.search(r"ev=notify\.received [^\n]*"
                              r"account=contoso\\test1", portal_logs())),
   "a portal node accepted the master's notice through HAProxy")
for i in range(NODES):
    ok(wait_for(lambda: request(
        "127.0.0.1", base + 5 + i, "GET", photo_path(T1, "L"), ca, h)
        .header("ETag") not in (None, first_etag)),
       "portal-%d serves test1's new photo" % (i + 1))

# A portal node stops: HAProxy sends its work to the others.
node2 = os.path.join(state, "portal-2") + " "
pids = [int(x.split(":")[0]) for x in processes_of(node2)]
is_eq(len(pids), 1, "portal-2's serve is found")
for pid in pids:
    os.kill(pid, signal.SIGTERM)
ok(wait_for(lambda: "portal-2 stopped" in demo_text()),
   "the demo says that portal-2 stopped")
answers = [request("localhost", base + 1, "GET", photo_path(T1, "L"), ca,
                   h).status for _ in range(2 * NODES)]
is_eq(answers, [200] * (2 * NODES), "every request through HAProxy is "
      "still answered, by the other portal nodes")
ok(proc.poll() is None, "the demo goes on without portal-2")

is_eq(end_process(proc, signal.SIGINT, 120), 0,
      "Ctrl-C stops the cluster demo, exit 0")
out.close()
left = processes_of(state)
ok(not left, "no process of the demo is left (%s)" % "; ".join(left))
ok(not os.path.exists(os.path.join(state, "pg", "data", "postmaster.pid")),
   "PostgreSQL is stopped")
for f in sorted(os.listdir(state)):
    if re.fullmatch(r"(master|portal)-\d+\.log|setup\.log|demo\.out", f):
        text = open(os.path.join(state, f), errors="replace").read()
        if psync.sanitizer_clean(text, f):
            ok(True, "%s: no sanitizer report" % f)
        psync.events_documented(text, f)
if psync.sanitizer_clean(demo_text(), "the demo"):
    ok(True, "the demo's output: no sanitizer report")

# A second run on the directory resumes it (with 2 portal nodes now).
out = open(out_path, "w")
proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state, "--nodes", "2"],
                        stdout=out, stderr=subprocess.STDOUT)
ok(wait_for(lambda: "Press Ctrl-C" in demo_text() or
            proc.poll() is not None), "a second run on the directory starts")
text = demo_text()
ok("Press Ctrl-C" in text and "setting up" not in text and
   "https://localhost:%d/my" % (base + 1) in text,
   "it resumes: no set-up, the same ports")
r = request("localhost", base, "GET", GUP, ca,
            {"Authorization": basic("test1@contoso.com", pw)})
is_eq(r.status, 200, "GetUserPhoto through HAProxy again")
r = request("localhost", base + 1, "GET", photo_path(T1, "L"), ca, h)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "the portal serves test1's photo from the store, through HAProxy")
is_eq(end_process(proc, timeout=120), 0, "SIGTERM stops it, exit 0")
out.close()
left = processes_of(state)
ok(not left, "no process of the demo is left (%s)" % "; ".join(left))
ok(not os.path.exists(os.path.join(state, "pg", "data", "postmaster.pid")),
   "PostgreSQL is stopped")
done()
