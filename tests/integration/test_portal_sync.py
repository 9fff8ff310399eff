"""The portal's on-demand sync, end to end on loopback with TLS, against
the real master: placeholder before the owner's visit, the owner's L
request fetches, others then see it, windows, conditional fetches, no
mailbox, import off, account names, request ids across both roles."""
import os
import re
import time

from psync import (done, identify, is_eq, make_image, ok, photo_path, tmpdir,
                   wired, write)

work = tmpdir("sync")
m, p = wired()
T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"


def master_photo_calls():
    return len(re.findall(r"path=/EWS/Exchange.asmx/s/GetUserPhoto",
                          m.server.logs()))


def size_of(r):
    return identify(write(os.path.join(work, "x.jpg"), r.body))[:2]


# ---- before the owner's visit: placeholder for everyone ----
r = p.get(photo_path(T1, "L"), as_user=T2)
is_eq(r.status, 200, "another user's request: 200")
ok('"placeholder-L' in (r.header("ETag") or ""),
   "before the owner's visit others get the placeholder")
ok("max-age=60" in (r.header("Cache-Control") or ""),
   "the placeholder has a short cache life")
is_eq(master_photo_calls(), 0, "another user's request never syncs")
r = p.get(photo_path(T1, "M"), as_user=T1)
ok('"placeholder-M' in (r.header("ETag") or ""),
   "the owner's M request does not trigger (only L, by default)")
is_eq(master_photo_calls(), 0, "no call to the master for M")

# ---- the owner's L request fetches ----
t0 = time.monotonic()
r = p.get(photo_path(T1, "L"), as_user=T1)
is_eq(r.status, 200, "owner's L request: 200")
ok("placeholder" not in (r.header("ETag") or ""),
   "the owner gets the real photo at once")
is_eq(size_of(r), (300, 300), "L is 300x300")
is_eq(master_photo_calls(), 1, "exactly one call to the master")
etag_l = r.header("ETag")
rid = r.header("request-id")
mlog = m.server.logs()
ok(rid and re.search(r"\bclient_req=%s\b" % rid, mlog),
   "the master logged the portal's request id (%s)" % rid)
plog = p.server.logs()
for ev in ("sync.start", "sync.autodiscover_request",
           "sync.autodiscover_answer", "sync.photo_request",
           "sync.photo_stored", "sync.done"):
    ok(re.search(r"req=%s ev=%s" % (rid, re.escape(ev)), plog),
       "portal logged %s with the request id" % ev)

# ---- others then see it ----
r = p.get(photo_path(T1, "M"), as_user=T2)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "test2 now sees test1's photo")
is_eq(size_of(r), (72, 72), "M is 72x72")
r = p.get("/User%20Photos/Profile%20Pictures/contoso_test1_SThumb.jpg",
          as_user=T2)
ok(r.status == 200 and size_of(r) == (48, 48),
   "the library file contoso_test1_SThumb.jpg is the 48x48 photo")
r = p.get(photo_path("i:0#.w|contoso\\test1", "L"), as_user=T2)
is_eq(r.header("ETag"), etag_l, "claims account name accepted")
r = p.get(photo_path("test1@contoso.com", "L"), as_user=T2)
is_eq(r.header("ETag"), etag_l, "e-mail address accepted")
r = p.get("/_layouts/15/userphoto.aspx?size=L&url=" + p.url(
    "/User%20Photos/Profile%20Pictures/contoso_test1_MThumb.jpg"),
    as_user=T2)
is_eq(r.header("ETag"), etag_l, "url= (a PictureURL) accepted")
r = p.get(photo_path(T1, "L"), {"If-None-Match": etag_l}, as_user=T2)
is_eq(r.status, 304, "304 on If-None-Match")

# ---- a second visit within the window makes no call ----
r = p.get(photo_path(T1, "L"), as_user=T1)
is_eq(master_photo_calls(), 1, "second visit within 6h: no master call")

# ---- expiration 0: a conditional fetch, 304, no re-render ----
# 0m: a last success is out of the window at once (no wait)
p.cmd("webapp", "set", "--photo-expiration", "0m")
r = p.get(photo_path(T1, "L"), as_user=T1)
is_eq(master_photo_calls(), 2, "expired: one more call to the master")
ok(re.search(r"GetUserPhoto.* status=304", m.server.logs()),
   "the master answered 304 to the conditional request")
is_eq(r.header("ETag"), etag_l, "304: the portal's ETag is unchanged")
ok("outcome=unchanged" in p.server.logs(), "portal logged unchanged")

# ---- a change at the master appears at the owner's next visit ----
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "new.png"), "500x500",
                 extra=["-rotate", "90"]))
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.header("ETag") != etag_l and "placeholder" not in r.header("ETag"),
   "a new photo at the master gives a new portal ETag")
p.cmd("webapp", "set", "--photo-expiration", "6h")

# ---- no mailbox ----
r = p.get(photo_path(T3, "L"), as_user=T3)
ok(r.status == 200 and "placeholder" in (r.header("ETag") or ""),
   "test3 (no mailbox) gets the placeholder")
ok(re.search(r"ev=sync.failed account=.*test3.*step=autodiscover "
             r"reason=\"?no mailbox", p.server.logs()),
   "the portal logged why: no mailbox")
calls = len(re.findall(r"path=/autodiscover/autodiscover.svc",
                       m.server.logs()))
p.get(photo_path(T3, "L"), as_user=T3)
is_eq(len(re.findall(r"path=/autodiscover/autodiscover.svc",
                     m.server.logs())), calls,
      "the error window holds: no second Autodiscover call")

# ---- bad account names ----
for bad in ("../../etc/passwd", "contoso\\..\\x", "contoso/test1",
            "a\\b\\c"):
    r = p.get(photo_path(bad, "L"), as_user=T1)
    is_eq(r.status, 400, "account name %r refused" % bad)
r = p.get("/User%20Photos/Profile%20Pictures/..%2f..%2fportal.db",
          as_user=T1)
is_eq(r.status, 404, "library path traversal refused")
r = p.get(photo_path(T1, "X"), as_user=T1)
is_eq(r.status, 400, "size=X refused")
r = p.get(photo_path(T1, "L"))
is_eq(r.status, 401, "photos need a signed-in user")
r = p.get(photo_path(T1, "L"), {"Authorization": "Basic dGVzdDE6bm8="})
is_eq(r.status, 401, "wrong credentials refused")

# ---- import off: the local library is authoritative ----
p.cmd("webapp", "set", "--photo-import", "off", "--photo-expiration", "0m")
before = master_photo_calls()
r = p.get(photo_path(T2, "L"), as_user=T2)
is_eq(master_photo_calls(), before, "import off: no call to the master")
ok("placeholder" in r.header("ETag"), "import off: the local library "
   "(empty for test2) is served")
r = p.get(photo_path(T1, "L"), as_user=T1)
ok("placeholder" not in r.header("ETag"), "import off: cached photos stay")

# ---- pages ----
r = p.get("/my", as_user=T1)
ok(r.status == 200 and "Test One" in r.text() and
   "userphoto.aspx?size=L&amp;accountname=contoso%5Ctest1" in r.text(),
   "/my shows the owner's L photo")
r = p.get("/people", as_user=T2)
ok(r.status == 200 and r.text().count("<img") == 3 and
   'alt="Photo of Test One"' in r.text(), "/people lists everyone")
r = p.get("/my/person.aspx?accountname=contoso%5Ctest2", as_user=T1)
ok(r.status == 200 and "Test Two" in r.text(), "person page")
r = p.get("/my", {"Accept": "text/html"})
ok(r.status == 302 and r.header("Location").startswith("/login"),
   "a browser without a session is sent to the login form")
logs = p.server.logs() + m.server.logs()
ok("pw-one" not in logs and "eyJ" not in logs,
   "no password or token in either log")
p.stop()
m.stop()
done()
