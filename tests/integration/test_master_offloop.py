"""photosync master serve: nothing on the event loop waits, and the
in-memory indexes stay warm. A store write lock held by another process
stops neither a cached nor an uncached GetUserPhoto, nor Autodiscover; an
admin command beside serve changes one user's photo at the next request
and leaves the others' cached photos in memory (the change feed drops one
key); SOAP GetUserPhoto answers from the same index; repeated wrong
passwords are throttled (429 with Retry-After); password checks run off
the loop, so a request that needs none is answered while they run; a
large body is read only where one is needed and after sign-in; SIGTERM
lets a request waiting on the store finish before the server exits.
No timing is measured: each mechanism is shown by what was answered, by
the index's hit and miss counters and by the order of the log lines."""
import atexit
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

from psync import (Master, basic, done, is_eq, make_image, ok,
                   read_to_close, store_write_lock, tmpdir)

work = tmpdir("offloop")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two", name="Test Two")
m.add_mailbox("test3@contoso.com", "pw-three")
for i, who in enumerate(("test1", "test2", "test3")):
    m.cmd("photo", "set", who + "@contoso.com", "--file",
          make_image(os.path.join(work, "%s.jpg" % who), "700x700",
                     extra=["-rotate", str(90 * i)]))
m.start()
# Removed at exit, after done() has read the server's log.
atexit.register(shutil.rmtree, work, True)
atexit.register(shutil.rmtree, os.path.dirname(m.dir), True)
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
T2 = {"Authorization": basic("test2@contoso.com", "pw-two")}


def photo(email, size="HR96x96", headers=T1):
    return m.get("/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=%s" %
                 (email, size), headers)


def lookups():
    """The photo index's (hits, misses) from /metrics."""
    text = m.get("/metrics").text()
    got = {}
    for res in ("hit", "miss"):
        g = re.search(r'^photosync_cache_lookups_total\{cache="photos",'
                      r'result="%s"\} (\d+)' % res, text, re.M)
        got[res] = int(g.group(1)) if g else 0
    return got["hit"], got["miss"]


def soap_photo(email, size):
    body = ('<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
            'envelope/" xmlns:m="http://schemas.microsoft.com/exchange/'
            'services/2006/messages"><soap:Body><m:GetUserPhoto>'
            '<m:Email>%s</m:Email><m:SizeRequested>%s</m:SizeRequested>'
            '</m:GetUserPhoto></soap:Body></soap:Envelope>' % (email, size))
    return m.post("/ews/exchange.asmx", body, T1)


# ---- the index: a miss, then hits ----
h0, m0 = lookups()
r = photo("test2@contoso.com")
is_eq(r.status, 200, "a first GetUserPhoto: 200")
etag2 = r.header("ETag")
h1, m1 = lookups()
is_eq((h1 - h0, m1 - m0), (0, 1), "the first request for a size misses")
r = photo("test2@contoso.com")
h2, m2 = lookups()
ok(r.status == 200 and r.header("ETag") == etag2,
   "the second: the same photo")
is_eq((h2 - h1, m2 - m1), (1, 0), "the second request hits the index")
r = soap_photo("test2@contoso.com", "HR96x96")
h3, m3 = lookups()
ok(r.status == 200 and re.search(r"PictureData>[A-Za-z0-9+/]{100}",
                                 r.text()),
   "SOAP GetUserPhoto answers the photo")
is_eq((h3 - h2, m3 - m2), (1, 0),
      "SOAP GetUserPhoto answers from the same index (a hit)")
r = soap_photo("nobody@contoso.com", "HR96x96")
is_eq(r.status, 404, "SOAP: no such mailbox is 404")

# ---- a store write lock held by another process ----
photo("test3@contoso.com", "HR64x64")     # warm one entry
lock = store_write_lock(m.dir)
try:
    hb, mb = lookups()
    r = photo("test3@contoso.com", "HR64x64")
    is_eq(r.status, 200, "under another process's write lock: a cached "
          "GetUserPhoto is answered")
    r = photo("test1@contoso.com", "HR120x120")
    is_eq(r.status, 200, "under the lock: a GetUserPhoto that misses the "
          "index is answered too (read on the read lane)")
    r = photo("test2@contoso.com", "HR120x120", T2)
    is_eq(r.status, 200, "under the lock: a first Basic sign-in is "
          "checked (its mailbox read) and answered")
    ha, ma = lookups()
    is_eq((ha - hb, ma - mb), (1, 2), "under the lock: one hit, two misses")
    r = m.post("/autodiscover/autodiscover.xml",
               '<?xml version="1.0" encoding="utf-8"?><Autodiscover '
               'xmlns="http://schemas.microsoft.com/exchange/autodiscover/'
               'outlook/requestschema/2006"><Request><EMailAddress>'
               'test1@contoso.com</EMailAddress><AcceptableResponseSchema>'
               'http://schemas.microsoft.com/exchange/autodiscover/outlook/'
               'responseschema/2006a</AcceptableResponseSchema></Request>'
               '</Autodiscover>', T1)
    ok(r.status == 200 and "Test One" in r.text(),
       "under the lock: Autodiscover is answered")
finally:
    lock.release()

# ---- an admin command beside serve drops one key ----
photo("test1@contoso.com")
photo("test2@contoso.com")
etag1 = photo("test1@contoso.com").header("ETag")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "new1.jpg"), "500x500",
                 extra=["-negate"]))
hb, mb = lookups()
r = photo("test1@contoso.com")
ok(r.status == 200 and r.header("ETag") not in (None, etag1),
   "photo set beside serve: the next request has the new photo")
ha, ma = lookups()
is_eq((ha - hb, ma - mb), (0, 1), "the changed photo was dropped (a miss)")
r = photo("test2@contoso.com")
is_eq(r.header("ETag"), etag2, "another user's photo is unchanged")
hc, mc = lookups()
is_eq((hc - ha, mc - ma), (1, 0),
      "and still in memory (a hit): the change dropped one address only")
m.cmd("photo", "remove", "test1@contoso.com")
is_eq(photo("test1@contoso.com").status, 404,
      "photo remove beside serve: the next request gets 404")
is_eq(photo("test1@contoso.com", "HR96x96", T2).status, 404,
      "for any caller")

# ---- a password change beside serve ends the verified credential ----
pw = os.path.join(work, "pw2")
with open(pw, "w") as f:
    f.write("pw-two-new\n")
is_eq(photo("test2@contoso.com", "HR96x96", T2).status, 200,
      "the old password works while it is the password")
m.cmd("mailbox", "passwd", "test2@contoso.com", "--password-file", pw)
r = photo("test2@contoso.com", "HR96x96", T2)
is_eq(r.status, 401, "after passwd beside serve: the verified old password "
      "is refused at the next request")
r = photo("test2@contoso.com", "HR96x96",
          {"Authorization": basic("test2@contoso.com", "pw-two-new")})
is_eq(r.status, 200, "and the new one works")

# ---- password checks run off the loop ----
# Four first sign-ins (each an Argon2id check on the guard's threads) are
# sent, then a request that needs no password; it is answered, and before
# at least one of the checks: the loop did not wait for them.
for i in range(4):
    m.add_mailbox("load%d@contoso.com" % i, "pw-load-%d" % i)
ctx = ssl.create_default_context(cafile=m.ca)
socks = []
for i in range(4):
    s = ctx.wrap_socket(socket.create_connection((m.host, m.port)),
                        server_hostname=m.host)
    s.sendall(("GET /ews/exchange.asmx/s/GetUserPhoto?email=test3@contoso."
               "com&size=HR48x48 HTTP/1.1\r\nHost: x\r\nclient-request-id: "
               "argon%d\r\nAuthorization: %s\r\nConnection: close\r\n\r\n" %
               (i, basic("load%d@contoso.com" % i, "pw-load-%d" % i))
               ).encode())
    socks.append(s)
r = m.get("/autodiscover/metadata/json/1",
          {"client-request-id": "no-password"})
is_eq(r.status, 200, "a request that needs no password is answered while "
      "password checks run")


answers = [read_to_close(s) for s in socks]
for s in socks:
    s.close()
ok(all(a.startswith(b"HTTP/1.1 200") for a in answers),
   "and every password check was answered (200)")
order = re.findall(r"ev=http\.request .* client_req=(argon\d|no-password)",
                   m.server.logs())
ok("no-password" in order and order.index("no-password") < len(order) - 1,
   "the request without a password was answered before the last check "
   "(%s)" % " ".join(order))

# ---- the body gate: large bodies only where needed, after sign-in ----
def first_answer(method, path, fields, length=200000):
    """The status of the first answer to a head announcing a large body
    (Expect: 100-continue, so a refusal comes before any byte of it)."""
    s = ctx.wrap_socket(socket.create_connection((m.host, m.port)),
                        server_hostname=m.host)
    head = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" \
        "Expect: 100-continue\r\n" % (method, path, length)
    for k, v in fields:
        head += "%s: %s\r\n" % (k, v)
    s.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") \
        else None


SVC = "/autodiscover/autodiscover.svc"
is_eq(first_answer("POST", SVC, []), 401,
      "a large XML body without credentials: 401 before it is read")
is_eq(first_answer("POST", SVC, [("Authorization", basic(
    "test1@contoso.com", "not-the-password"))]), 401,
      "with a wrong password (checked through the guard): 401")
is_eq(first_answer("POST", SVC, [("Authorization", T1["Authorization"])]),
      100, "signed in: 100 Continue, the body may come")
is_eq(first_answer("POST", SVC, [("Authorization", T1["Authorization"])],
                   2 << 20), 413,
      "signed in, but over the XML limit: 413")
is_eq(first_answer("POST", "/ecp/photo/upload", [], 1 << 20), 401,
      "an upload without a session: the sign-in answer (401), before "
      "the body")
is_eq(first_answer("POST", "/ecp/login", []), 413,
      "a large body where none is needed: 413")
is_eq(first_answer("GET", "/ews/exchange.asmx/s/GetUserPhoto?email=test1@"
                   "contoso.com&size=HR48x48", [("Authorization",
                                                 T1["Authorization"])]),
      413, "even signed in, a GET takes no large body: 413")

# ---- throttled sign-in ----
status = None
for i in range(30):
    r = photo("test3@contoso.com", "HR48x48",
              {"Authorization": basic("test3@contoso.com", "wrong")})
    status = r.status
    if status != 401:
        break
is_eq(status, 429, "repeated wrong passwords: 429 after a few 401s")
ra = r.header("Retry-After")
ok(ra is not None and ra.isdigit() and int(ra) >= 1,
   "429 with Retry-After in whole seconds (%s)" % ra)
ok(re.search(r"ev=auth\.refused method=basic user=test3@contoso\.com "
             r"reason=\"too many failed sign-ins: wait %s s\"" % ra,
             m.server.logs()), "the refusal is logged (auth.refused)")

# ---- SIGTERM lets a request in flight finish ----
# A sign-in on the change-photo page waits for the store's write lane,
# which another process's lock holds; SIGTERM arrives meanwhile. The
# server stops accepting, and still answers the sign-in once the lock is
# released, then exits 0. (A new server: the last one's guard is slowing
# this address down.)
m.stop()
m.start()
page = m.get("/ecp/PersonalSettings/EditAccount.aspx")
csrf = re.search(r"ecp_csrf=([0-9a-f]+)", page.header("Set-Cookie") or "")
ok(csrf is not None, "the sign-in form sets its CSRF cookie")
csrf = csrf.group(1) if csrf else ""


def store_queued():
    g = re.search(r"^photosync_store_queued (\d+)", m.get("/metrics").text(),
                  re.M)
    return int(g.group(1)) if g else -1


lock = store_write_lock(m.dir)
login = http.client.HTTPSConnection(m.host, m.port, context=ctx, timeout=60)
login.request("POST", "/ecp/login", body="email=test3%40contoso.com&"
              "password=pw-three&csrf=" + csrf,
              headers={"Content-Type": "application/x-www-form-urlencoded",
                       "Cookie": "ecp_csrf=" + csrf,
                       "client-request-id": "in-flight"})
# Its mailbox is read, its password checked, then its session written,
# which waits for the lock: a store job seen queued means it is in flight.
queued = 0
for _ in range(5000):
    queued = store_queued()
    if queued >= 1:
        break
ok(queued >= 1, "the sign-in is in flight (a store job of it queued)")
# The log is shared with the server stopped above: count this one's lines.
drains = m.server.logs().count("ev=http.draining")
m.server.proc.send_signal(signal.SIGTERM)
for _ in range(2000):
    if m.server.logs().count("ev=http.draining") > drains:
        break
    time.sleep(0.01)
ok(m.server.logs().count("ev=http.draining") > drains,
   "SIGTERM: the server drains (its listener is closed)")
try:
    socket.create_connection((m.host, m.port), timeout=5).close()
    refused = False
except OSError:
    refused = True
ok(refused, "once stopping, new connections are refused")
lock.release()
r = login.getresponse()
r.read()
is_eq(r.status, 303, "the sign-in in flight is still answered (303)")
login.close()
try:
    rc = m.server.proc.wait(timeout=60)
except subprocess.TimeoutExpired:
    rc = None
is_eq(rc, 0, "then the server exits 0")
logs = m.server.logs()
ok(logs.rindex("ev=serve.stopping") <
   re.search(r"ev=http\.request .* client_req=in-flight", logs).start(),
   "the answer was sent after the stop began")

done()
