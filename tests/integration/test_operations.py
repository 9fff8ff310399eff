"""Operations: change notifications from the master (delivered, retried
when the portal is down, refused when off, forged ones refused), the
background refresher, portal refresh against a master answering 429 then
200, user show, and /metrics on both roles."""
import os
import re
import time

from fakepeer import FakeMaster, capture_ad_template, make_tls
from psync import (done, free_port, is_eq, make_image, ok, photo_path, run,
                   store_change, store_rows, tmpdir, wait_for, wired)

work = tmpdir("ops")
T1, T2 = "contoso\\test1", "contoso\\test2"
m, p = wired(portal_port=free_port())



def outbox_rows():
    """The notices waiting in the master's outbox."""
    return store_rows(m.dir, "SELECT count(*) FROM outbox")[0][0]


def etag_seen_by_test2():
    return p.get(photo_path(T1, "M"), as_user=T2).header("ETag")


# ---- a change at the master shows in the portal within seconds ----
p.owner_photo(T1)                               # test1's first visit
first = etag_seen_by_test2()
ok("placeholder" not in first, "test2 sees test1's photo after the visit")
st, out, err = m.cmd("partner", "list")
t0 = time.monotonic()
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.png"), "500x500", extra=["-negate"]))
ok(wait_for(lambda: etag_seen_by_test2() != first),
   "without test1 visiting, test2 sees the new photo within seconds "
   "(%.1fs)" % (time.monotonic() - t0))
mlog, plog = m.server.logs(), p.server.logs()
ok(re.search(r"ev=notify.delivered partner=SharePoint "
             r"email=test1@contoso.com", mlog), "the master logged "
   "notify.delivered")
g = re.search(r"req=([0-9a-f]{16}) ev=notify.send", mlog)
ok(g and re.search(r"ev=http.request method=POST "
                   r"path=/_layouts/15/photosync/notify status=202 .*"
                   r"client_req=%s" % g.group(1), plog),
   "the portal logged the notice with the master's request id")
st, out, err = p.cmd("user", "show", T1)
ok("from the master" in out and "last success" in out and
   "master etag" in out, "user show: source, last success, master etag")

# ---- forged notifications are refused ----
r = p.post("/_layouts/15/photosync/notify", "email=test1@contoso.com",
           {"Content-Type": "application/x-www-form-urlencoded"})
is_eq(r.status, 401, "a notification without a token is refused")
r = p.post("/_layouts/15/photosync/notify", "email=test1@contoso.com",
           {"Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Bearer a.b.c"})
is_eq(r.status, 401, "a notification with a forged token is refused")

# ---- the portal is down: the master retries, and it converges ----
before = etag_seen_by_test2()
p.stop()
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "b.png"), "500x500", extra=["-flop"]))
ok(wait_for(lambda: "ev=notify.retry" in m.server.logs()),
   "portal down: the master schedules a retry")
p.start()
ok(wait_for(lambda: m.server.logs().count("ev=notify.delivered") >= 2),
   "portal back: the notification is delivered on a retry")
ok(wait_for(lambda: etag_seen_by_test2() != before),
   "portal back: without test1 visiting, test2 sees the photo set while "
   "the portal was down")

# ---- notifications off at the portal: refused, dropped ----
p.cmd("webapp", "set", "--notifications", "off")
etag_before = etag_seen_by_test2()
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "c.png"), "400x400"))
ok(wait_for(lambda: "ev=notify.refused" in m.server.logs()),
   "notifications off: the portal refuses and the master drops it")
is_eq(etag_seen_by_test2(), etag_before, "notifications off: the portal's "
      "photo waits for the windows")
p.cmd("webapp", "set", "--notifications", "on")

# ---- a revoked partner gets no more notifications ----
# A change queues its notices in its own transaction, one per partner:
# with no partner there is none to send. Looked at in this order, a
# notice that was queued is seen either in the outbox or, once sent
# (and removed), as notify.send in the log.
m.cmd("partner", "remove", "SharePoint")
n_send = m.server.logs().count("ev=notify.send")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "d.png"), "400x400", extra=["-negate"]))
is_eq(outbox_rows(), 0, "a removed partner: no notice queued")
is_eq(m.server.logs().count("ev=notify.send"), n_send,
      "a removed partner is not notified")
m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
      p.url("/_layouts/15/metadata/json/1"), "--ca-file", p.ca)

# ---- the background refresher ----
r = p.get(photo_path(T2, "M"), as_user=T1)
ok("placeholder" in r.header("ETag"), "test2 never visited: placeholder")
st, out, err = p.cmd("webapp", "set", "--background-refresh", "30m",
                     check=False)
ok(st != 0 and "at least 1h" in err, "a background refresh under 1h is "
   "refused (the master must not be stampeded)")
st, out, err = p.cmd("webapp", "set", "--background-refresh", "24",
                     check=False)
ok(st != 0 and "unit" in err, "a bare number is refused")
p.cmd("webapp", "set", "--background-refresh", "1h")
st, out, err = p.cmd("webapp", "show")
ok("background-refresh      1h" in out, "webapp show: background-refresh 1h")
ok(wait_for(lambda: "placeholder" not in
            p.get(photo_path(T2, "M"), as_user=T1).header("ETag")),
   "the background refresher fetched test2's photo without a visit")
p.cmd("webapp", "set", "--background-refresh", "off")

# ---- /metrics on both roles ----
r = p.get("/metrics")
ok(r.status == 200 and "photosync_http_requests_total{route=\"userphoto\""
   in r.text(), "portal /metrics: requests by route and status")
ok("photosync_syncs_total{result=\"updated\"}" in r.text(),
   "portal /metrics: sync outcomes")
ok("photosync_master_request_seconds_bucket" in r.text(),
   "portal /metrics: master latency histogram")
ok('photosync_master_calls_total{call="GetUserPhoto",result="ok"}'
   in r.text(), "portal /metrics: calls to the master by result")
ok('photosync_cache_lookups_total{cache="photos",result="hit"}' in r.text(),
   "portal /metrics: cache hits")
ok("photosync_photos_served_total" in r.text() and
   "photosync_notifications_received_total" in r.text(),
   "portal /metrics: photos served, notifications received")
r = m.get("/metrics")
ok(r.status == 200 and "photosync_notifications_total{result=\"delivered\"}"
   in r.text() and "photosync_http_requests_total{route=\"getuserphoto_rest\""
   in r.text(), "master /metrics: notifications and requests")
for name, node in (("portal", p), ("master", m)):
    text = node.get("/metrics").text()
    ok("\nphotosync_store_up 1\n" in text and
       "\nphotosync_store_unreachable_total 0\n" in text and
       "\nphotosync_store_last_failure_timestamp_seconds 0\n" in text,
       "%s /metrics: the store is up, never unreachable so far" % name)

# ---- portal refresh --all asks Autodiscover for 100 users per call ----
N = 130
for i in range(N):
    store_change(m.dir, "INSERT INTO mailboxes "
                 "(email, name, created) VALUES (?, ?, 0)",
                 ("bulk%03d@contoso.com" % i, "Bulk %d" % i))
    store_change(p.dir, "INSERT INTO users "
                 "(account, email, name, created) VALUES (?, ?, ?, 0)",
                 ("contoso\\bulk%03d" % i, "bulk%03d@contoso.com" % i,
                  "Bulk %d" % i))
mlog0 = len(m.server.logs())
st, out, err = run("portal", "refresh", "--dir", p.dir, "--all", "--force",
                   check=False)
n_users = int(re.search(r"refreshed (\d+) users", out).group(1))
no_mailbox = int(re.search(r"no mailbox\s+(\d+)", out).group(1))
ok(st == 0 and n_users == N + 3, "refresh --all: %d users (%s)" % (
    n_users, out.replace("\n", " | ")))
mlog = m.server.logs()[mlog0:]
is_eq(len(re.findall(r"ev=autodiscover\.soap", mlog)),
      (n_users + 99) // 100 + no_mailbox,
      "Autodiscover asked for 100 users per call (and once more for each "
      "user it knew no mailbox for)")
is_eq(len(re.findall(r"ev=http\.request method=GET path=/EWS/Exchange"
                     r"\.asmx/s/GetUserPhoto", mlog, re.I)),
      n_users - no_mailbox, "one GetUserPhoto per user with a mailbox")
p.stop()
m.stop()

# ---- /metrics only for configured addresses ----
m.server = None
from psync import Server  # noqa: E402
srv = Server("master", m.dir, extra=["--metrics-allow", "10.0.0.0/8"])
m.server, m.port = srv, srv.port
is_eq(m.get("/metrics").status, 403, "metrics refused to others")
m.stop()

# ---- portal refresh against a master answering 429 then 200 ----
fm, fp = wired()
template = capture_ad_template(fm, "test1@contoso.com", "pw-one")
ca, cert, key = make_tls(work)
fake = FakeMaster(template, tls=(cert, key))
fake.throttle_left = 2
fake.retry_after = 1
bundle = os.path.join(work, "cas.pem")
with open(bundle, "w") as f:
    f.write(open(fm.ca).read() + open(ca).read())
fp.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
       "--ca-file", bundle)
t0 = time.monotonic()
st, out, err = run("portal", "refresh", "--dir", fp.dir, "--user", T1,
                   check=False)
took = time.monotonic() - t0
ok(st == 0 and re.search(r"updated\s+1", out),
   "refresh: 429, 429, then 200: updated (%s)" % out.replace("\n", " | "))
ok("slow down 2 times" in out, "refresh reports the back-offs")
ok(took >= 2.0, "refresh waited for Retry-After (%.1fs)" % took)
is_eq(fake.count("photo"), 3, "three GetUserPhoto calls in all")
fake.stop()
fp.stop()
fm.stop()
done()
