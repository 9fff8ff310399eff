"""Request ids: every log line of a request carries the server's own id
(`req`), whatever the client sends; a client's sane client-request-id is
echoed and logged as http.request's `client_req`. The portal sends its id
to the master as client-request-id (and the master its id to the portal
with a change notice), so one grep of the portal's id follows a sync from
the portal's lines to the master's answers."""
import os
import re
import time

from psync import done, is_eq, make_image, ok, photo_path, tmpdir, wired

T1 = "contoso\\test1"
P = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&size=HR96x96"
work = tmpdir("reqids")
m, p = wired()
basic_t1 = {"Authorization": __import__("psync").basic("test1@contoso.com",
                                                        "pw-one")}


def req_fields(log, ev):
    """(req, rest of the line) of each `ev` line."""
    return re.findall(r"(?m)^.* req=(\S+) ev=%s (.*)$" % re.escape(ev), log)


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


# ---- a client's id is its own field, never the server's ----
cid = "5b2a0c0e-1111-4222-8333-444455556666"
r = m.get(P, dict(basic_t1, **{"client-request-id": cid,
                               "return-client-request-id": "true"}))
is_eq(r.status, 200, "a photo with the client's id")
rid = r.header("request-id")
ok(rid and re.fullmatch(r"[0-9a-f]{16}", rid) and rid != cid,
   "request-id is the server's own (%s)" % rid)
is_eq(r.header("X-Request-Id"), rid, "X-Request-Id is the server's too")
is_eq(r.header("client-request-id"), cid, "client-request-id echoed")
mlog = m.server.logs()
ok(not re.search(r"(^| )req=%s( |$)" % cid, mlog, re.M),
   "no log line is filed under the client's id")
lines = [rest for req, rest in req_fields(mlog, "http.request")
         if req == rid]
ok(len(lines) == 1 and (" client_req=%s" % cid) in lines[0],
   "http.request under the server's id carries client_req=%s" % cid)

# Two requests sending the same id stay two requests.
r2 = m.get(P, dict(basic_t1, **{"client-request-id": cid}))
ok(r2.header("request-id") not in (rid, cid),
   "the same client id twice: two server ids")

# An id that is not sane is neither logged nor echoed.
bad = "x" * 65
r = m.get(P, dict(basic_t1, **{"client-request-id": bad}))
ok(r.header("client-request-id") is None and bad not in m.server.logs(),
   "a 65-character client id: not echoed, not logged")
r = m.get(P, dict(basic_t1, **{"client-request-id": "a=b"}))
ok(r.header("client-request-id") is None and
   "client_req=a=b" not in m.server.logs() and
   'client_req="a=b"' not in m.server.logs(),
   "a client id with '=': not echoed, not logged")
r = m.get(P, basic_t1)
rid = r.header("request-id")
line = [rest for req, rest in req_fields(m.server.logs(), "http.request")
        if req == rid]
ok(line and "client_req=" not in line[0] and
   r.header("client-request-id") is None,
   "no client id: no client_req field, no client-request-id echoed")

# ---- one grep follows a sync from the portal to the master ----
r = p.get(photo_path(T1, "L"), as_user=T1)
pid = r.header("request-id")
ok(pid and "placeholder" not in (r.header("ETag") or ""),
   "the owner's visit synced (portal request %s)" % pid)
plog, mlog = p.server.logs(), m.server.logs()
grep = [ln for ln in (plog + mlog).splitlines() if pid in ln]
pl = [ln for ln in grep if " proc=portal " in ln]
ml = [ln for ln in grep if " proc=master " in ln]
ok(any(" ev=sync.done " in ln for ln in pl) and
   all((" req=%s " % pid) in ln for ln in pl),
   "the portal's lines: the sync, under the portal's id")
ok(len(ml) >= 2 and
   all(" ev=http.request " in ln and (" client_req=%s" % pid) in ln and
       (" req=%s " % pid) not in ln for ln in ml),
   "the master's lines: its answers to the Autodiscover and photo calls, "
   "with client_req=%s and an id of the master's own" % pid)
ok(any("path=/autodiscover" in ln.lower() for ln in ml) and
   any("getuserphoto" in ln.lower() for ln in ml),
   "both calls are found: Autodiscover and GetUserPhoto")

# ---- and the master's id in the portal's log, for a change notice ----
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "n.png"), "300x300", extra=["-negate"]))
ok(wait_for(lambda: "ev=notify.delivered" in m.server.logs()),
   "the change notice was delivered")
sends = req_fields(m.server.logs(), "notify.send")
nid = sends[-1][0] if sends else "none"
ok(wait_for(lambda: re.search(
    r"ev=http.request method=POST path=/_layouts/15/photosync/notify "
    r"status=202 .* client_req=%s" % nid, p.server.logs())),
   "the portal's http.request for the notice carries the master's id")
ok(not re.search(r" req=%s " % nid, p.server.logs()),
   "but files no line of its own under it")
done()
