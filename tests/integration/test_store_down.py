"""PostgreSQL stopped and started under load.

Two portal nodes (A and B) on one PostgreSQL server and a master on a
second one, which this test stops (pg_ctl stop -m fast: the portal's
first, then the master's) while threads ask portal node A and the master
for photos they hold in memory:

  - every cached photo request keeps being answered 200, from memory;
  - GET /ready says 503, /metrics says photosync_store_up 0 (on both
    roles), the log says store.error, diagnose says the store is
    unreachable (its address, never a password);
  - writes are refused with 503, Retry-After and a sentence, and
    nothing changes in the store: the portal's local upload, its sign-in
    form and a Basic sign-in it does not hold in memory, the same on the
    master, and its change-photo upload; admin commands fail with a
    clear error;
  - PostgreSQL started again: node A reconnects (store.reconnected, then
    its feed listener: store.feed_listening), an upload works, a photo
    changed through node B while node A's listener was cut is served by
    node A (caught up from the feed), /ready says 200 and /metrics
    photosync_store_up 1 again.

No sleeps: waits are for log events, or polls with the hang guard as
the deadline. On SQLite there is no server to stop: skipped.
"""
import os
import re
import threading
from urllib.parse import urlencode

import psync
from psync import (LogMark, Master, Portal, WebSession, action_of, basic,
                   cookies_of, csrf_of, done, is_eq, make_image, multipart,
                   node_copy, ok, photo_path, run, store_rows,
                   tmpdir, wait_for)

if not psync.ON_POSTGRESQL:
    psync.skip_all("the store is SQLite: a file, no server to stop "
                   "(this test runs as store_down_on_postgresql)")

T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"
work = tmpdir("store-down")
pg = psync.pg_server()
GUP = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&" \
      "size=HR648x648"
MAUTH = {"Authorization": basic("test1@contoso.com", "pw-one")}


def upload(node, account, image):
    body, ctype = multipart({"photo": ("me.jpg", open(image, "rb")
                                       .read())})
    return node.post("/my/changephoto", body, {"Content-Type": ctype},
                     as_user=account)


def metric(node, name):
    """The value of an unlabelled series in node's /metrics."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), node.get("/metrics")
                  .text(), re.M)
    return float(m.group(1)) if m else None


def thumbs():
    return store_rows(pa.dir, "SELECT account, etag FROM thumbs ORDER BY "
                      "account")


ECP_PAGE = "/ecp/PersonalSettings/EditAccount.aspx"


# The master's store is on a PostgreSQL server of its own, so that the
# portal's store can be down while the master still answers (a local
# upload asks the master first whether the user has a mailbox).
pg_m = psync.pgserver.PgServer()
m = Master(init_args=("--store", pg_m.uri(pg_m.create_database())))
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two", name="Test Two")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "t1.jpg"), "800x800"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "t2.jpg"), "640x640", extra=["-negate"]))
m.start()
pa = Portal()
pa.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
pa.add_user(T2, "test2@contoso.com", "pw-two", "Test Two")
pa.add_user(T3, "test3@contoso.com", "pw-three", "Test Three")
pa.start()
pa.cmd("webapp", "set", "--photo-import", "on", "--photo-expiration", "6h",
       "--photo-error-expiration", "1h", "--autodiscover-domain",
       "127.0.0.1:%d" % m.port, "--ca-file", m.ca)
pa.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
       m.url("/autodiscover/metadata/json/1"), "--ca-file", m.ca)
m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
      pa.url("/_layouts/15/metadata/json/1"), "--ca-file", pa.ca)
pb = node_copy(pa, "portal-b").start()

# ---- photos in memory: test1's and test2's synced, test3's uploaded ----
etags = {}
for acct in (T1, T2):
    r = pa.owner_photo(acct)
    is_eq(r.status, 200, "node A serves %s's photo" % acct)
    etags[acct] = r.header("ETag")
r = upload(pa, T3, make_image(os.path.join(work, "t3.jpg"), "700x700"))
ok(r.status == 200 and "stored" in r.text(), "test3 uploads through A")
r = pa.get(photo_path(T3), as_user=T3)
etags[T3] = r.header("ETag")
ok(r.status == 200 and "placeholder" not in etags[T3],
   "node A serves test3's uploaded photo (%s)" % etags[T3])
r = m.get(GUP, MAUTH)
is_eq(r.status, 200, "the master serves test1's photo")
master_etag = r.header("ETag")
for node, name in ((pa, "portal A"), (m, "master")):
    is_eq(metric(node, "photosync_store_up"), 1.0,
          "%s: /metrics says the store is up" % name)
store_before = thumbs()
ecp = WebSession(m)
r = ecp.get(ECP_PAGE)
r = ecp.post(action_of(r, "/ecp/login"), {
    "csrf": csrf_of(r), "email": "test1@contoso.com", "password": "pw-one"})
is_eq(r.status, 303, "test1 signs in on the master's change-photo page")
page = ecp.follow(r)
ecp_csrf = csrf_of(page)
ecp_upload = action_of(page, "/ecp/photo/upload")
ok(ecp_csrf and ecp_upload, "the page has its upload form")


# ---- the load: cached photos asked for in threads, all along ----
class Load:
    def __init__(self):
        self.stop = threading.Event()
        self.answers = {}       # status -> count
        self.wrong = []         # (what, status, etag)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(acct,))
                        for acct in (T1, T2, T3)]
        self.threads.append(threading.Thread(target=self.run_master))
        for t in self.threads:
            t.start()

    def note(self, what, status, etag, want):
        with self.lock:
            self.answers[status] = self.answers.get(status, 0) + 1
            if status != 200 or etag != want:
                self.wrong.append((what, status, etag))

    def run(self, acct):
        while not self.stop.is_set():
            r = pa.get(photo_path(acct), as_user=acct)
            self.note(acct, r.status, r.header("ETag"), etags[acct])

    def run_master(self):
        while not self.stop.is_set():
            r = m.get(GUP, MAUTH)
            self.note("master", r.status, r.header("ETag"), master_etag)

    def count(self):
        with self.lock:
            return sum(self.answers.values())

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def store_down_checks(node, role, mark, server):
    """What a node says once its store is down: /ready, /metrics, its
    log, diagnose."""
    ok(wait_for(lambda: node.get("/ready").status == 503),
       "%s: /ready says 503" % role)
    r = node.get("/ready")
    is_eq(r.text(), "store\n", "%s: /ready names the store" % role)
    ok(wait_for(lambda: metric(node, "photosync_store_up") == 0.0),
       "%s: /metrics says photosync_store_up 0" % role)
    ok(metric(node, "photosync_store_unreachable_total") >= 1,
       "%s: /metrics counts the store jobs that did not reach it" % role)
    ok(metric(node, "photosync_store_last_failure_timestamp_seconds") > 0,
       "%s: /metrics says when the store was last unreachable" % role)
    ok(mark.wait(r"ev=store\.error "), "%s logs store.error" % role)
    args = [role, "diagnose", "--dir", node.dir] + \
        (["test1@contoso.com"] if role == "portal" else [])
    rc, out, err = run(*args, check=False)
    text = out + err
    ok(rc != 0, "%s diagnose fails while the store is down (%d)" %
       (role, rc))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    ok(lines and re.match(r"(?i)FAIL\b.*store", lines[0]) and
       "unreachable" in lines[0],
       "%s diagnose: its first step says the store is unreachable: %r" %
       (role, lines[:3]))
    ok(server.socket_dir in out, "%s diagnose names the store's address" %
       role)
    ok(server.password not in text, "%s diagnose shows no password" % role)
    ok("No such file or directory" in out,
       "%s diagnose gives the server's error" % role)
    rc, out, err = run(*([role] + (["user", "list"] if role == "portal" else
                                   ["mailbox", "list"]) +
                         ["--dir", node.dir]), check=False)
    ok(rc != 0 and "cannot connect to the store" in err,
       "%s: an admin command fails with a clear error (%d: %r)" %
       (role, rc, err.strip()[:200]))


def refused(r, what):
    is_eq(r.status, 503, "%s while the store is down: 503" % what)
    ok(r.header("Retry-After"), "%s: with Retry-After (%s)" % (
        what, r.header("Retry-After")))
    ok(re.search(r"(?i)store|mail server", r.text()),
       "%s: with a sentence: %r" % (what, r.text()[:300]))


def login_form(node):
    r = node.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
    return node.post("/login", urlencode({
        "account": T1, "password": "pw-one", "csrf": csrf}).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "ps_csrf=" + cookies_of(r)["ps_csrf"]})


mark_a, mark_b, mark_m = LogMark(pa), LogMark(pb), LogMark(m)
load = Load()
ok(wait_for(lambda: load.count() >= 20), "the load runs")

# ---- the portal's store down (the master's still up) ----
pg.halt()
at_halt = load.count()
ok(mark_a.wait(r"ev=store\.feed_listen_lost "),
   "node A's feed listener saw the store go (store.feed_listen_lost)")
store_down_checks(pa, "portal", mark_a, pg)
refused(upload(pa, T3, make_image(os.path.join(work, "t3-down.jpg"),
                                  "500x500", extra=["-negate"])),
        "a local upload (test3, no mailbox)")
refused(login_form(pa), "the portal's sign-in form")
refused(pa.get("/my", {"Authorization": basic(T1, "not-held-in-memory")}),
        "a portal Basic sign-in the server does not hold")
refused(pa.get(photo_path("contoso\\nobody"), as_user=T1),
        "a portal photo the server does not hold in memory")

# ---- the master's store down too ----
pg_m.halt()
store_down_checks(m, "master", mark_m, pg_m)
refused(ecp.upload(ecp_upload, {"csrf": ecp_csrf}, {"photo": (
    "me.jpg", open(make_image(os.path.join(work, "t1-ecp.jpg"), "600x600"),
                   "rb").read())}), "the master's change-photo upload")
r = WebSession(m).get(ECP_PAGE)
refused(WebSession(m).post(action_of(r, "/ecp/login"), {
    "csrf": csrf_of(r), "email": "test1@contoso.com",
    "password": "pw-one"}, cookies={"ecp_csrf": csrf_of(r)}),
    "the master's sign-in form")
refused(m.get(GUP, {"Authorization": basic("test1@contoso.com",
                                           "not-held-in-memory")}),
        "a master Basic sign-in the server does not hold")
refused(m.get(GUP.replace("test1@", "nobody@"), MAUTH),
        "a GetUserPhoto the master does not hold in memory")
refused(upload(pa, T3, make_image(os.path.join(work, "t3-down2.jpg"),
                                  "500x500", extra=["-flop"])),
        "a local upload with the master's store down too")

more = load.count() + 30
ok(wait_for(lambda: load.count() >= more),
   "the load went on while the stores were down")
ok(load.count() > at_halt, "photos were asked for while they were down")
load.end()
ok(not load.wrong, "every cached photo request was answered 200 with its "
   "ETag (%d answers; wrong: %r)" % (load.count(), load.wrong[:5]))

# ---- PostgreSQL back ----
pg_m.resume()
pg.resume()
is_eq(thumbs(), store_before, "the refused upload changed nothing in the "
      "store")
# At once, before waiting for anything of node A: node A's feed listener
# is still cut, or just back (it listens again at its next tick); either
# way the change must reach it, from the feed's sequence number.
r = upload(pb, T3, make_image(os.path.join(work, "t3-b.jpg"), "600x600",
                              extra=["-flip"]))
ok(r.status == 200 and "stored" in r.text(),
   "test3 uploads through node B as soon as the store is back (%d)" %
   r.status)
etag_b = pb.get(photo_path(T3), as_user=T3).header("ETag")
ok(etag_b != etags[T3], "node B serves test3's new photo (%s)" % etag_b)
ok(mark_a.wait(r"ev=store\.feed_listening "),
   "node A listens to the feed again (store.feed_listening)")
ok(wait_for(lambda: pa.get("/ready").status == 200), "node A: /ready 200")
ok(wait_for(lambda: m.get("/ready").status == 200), "master: /ready 200")
ok(mark_m.wait(r"ev=store\.reconnected "),
   "the master's lanes reconnect (store.reconnected)")
ok(mark_a.wait(r"ev=store\.reconnected "),
   "node A's lanes reconnect (store.reconnected)")
for node, name in ((pa, "portal A"), (m, "master")):
    ok(wait_for(lambda: metric(node, "photosync_store_up") == 1.0),
       "%s: /metrics says photosync_store_up 1 again" % name)

ok(wait_for(lambda: pa.get(photo_path(T3), as_user=T3).header("ETag") ==
            etag_b),
   "node A serves the photo uploaded through node B while its feed "
   "listener was cut (caught up from the feed)")
r = upload(pa, T3, make_image(os.path.join(work, "t3-up.jpg"), "520x520",
                              extra=["-negate"]))
ok(r.status == 200 and "stored" in r.text(),
   "an upload through node A works again (%d)" % r.status)
new3 = pa.get(photo_path(T3), as_user=T3).header("ETag")
ok(new3 not in (etags[T3], etag_b), "node A serves test3's new photo (%s)"
   % new3)
ok(wait_for(lambda: pb.get(photo_path(T3), as_user=T3).header("ETag") ==
            new3), "and so does node B")

r = ecp.upload(ecp_upload, {"csrf": ecp_csrf}, {"photo": (
    "me.jpg", open(os.path.join(work, "t1-ecp.jpg"), "rb").read())})
is_eq(r.status, 303, "the master's change-photo upload works again")

done()
