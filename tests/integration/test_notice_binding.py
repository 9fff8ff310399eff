"""A change notice's token is bound to the address it announces: one
captured on its way from the master to the portal and replayed with
another user's address is refused (401, notify.unbound) and syncs
nothing; replayed as it was, it is accepted. Tokens that PyJWT signs with
the master's key, the digest made with hashlib, are judged the same."""
import base64
import hashlib
import http.server
import os
import re
import ssl
import threading
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from psync import (done, free_port, is_eq, make_image, ok, photo_path,
                   tmpdir, wired)

SP = "00000003-0000-0ff1-ce00-000000000000"
EX = "00000002-0000-0ff1-ce00-000000000000"
NOTIFY = "/_layouts/15/photosync/notify"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
work = tmpdir("binding")
m, p = wired(portal_port=free_port())
pport = p.port

# ---- capture one notice where the portal listens, with its certificate ----
p.stop()
captured = {}
arrived = threading.Event()


class Capture(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        captured["auth"] = self.headers.get("Authorization")
        captured["body"] = self.rfile.read(n).decode()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        arrived.set()

    def log_message(self, *a):
        pass


cap = http.server.HTTPServer(("127.0.0.1", pport), Capture)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(p.dir, "webapp-1-tls-cert.pem"),
                    os.path.join(p.dir, "webapp-1-tls-key.pem"))
cap.socket = ctx.wrap_socket(cap.socket, server_side=True)
threading.Thread(target=cap.serve_forever, daemon=True).start()
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "new.png"), "400x400",
                 extra=["-negate"]))
ok(arrived.wait(60) and captured["body"] == "email=test1%40contoso.com" and
   captured["auth"].startswith("Bearer "),
   "a notice for test1 captured on its way to the portal")
cap.shutdown()
cap.server_close()

# ---- replayed at the real portal ----
p.start()
is_eq(p.port, pport, "the portal is back on its port")
auth = {"Authorization": captured["auth"]}
auth.update(FORM)
r = p.post(NOTIFY, "email=test2%40contoso.com", auth)
is_eq(r.status, 401, "replayed with test2's address: refused")
ok(r.header("WWW-Authenticate"), "with a Bearer challenge")
r = p.post(NOTIFY, "email=test3%40contoso.com", auth)
is_eq(r.status, 401, "replayed with test3's address: refused")
logs = p.server.logs()
ok(re.search(r"ev=notify\.unbound issuer=\S+ email=test2@contoso\.com",
             logs), "the portal logged notify.unbound for test2")
ok("ev=notify.received" not in logs, "no notice was accepted")

# The same token with the address it was signed for is accepted, so the
# refusals above were the binding's.
r = p.post(NOTIFY, "email=test1%40contoso.com", auth)
is_eq(r.status, 202, "replayed with test1's own address: accepted")
logs = p.server.logs()
ok(re.search(r"ev=notify\.received issuer=\S+ account=contoso\\test1",
             logs), "notify.received for test1")

# ---- the binding as an implementation we did not write makes it ----
# PyJWT signs app-only notice tokens with the master's own key: the
# digest is hashlib's SHA-256 of the lower-cased addresses, each followed
# by a newline, in base64url without padding.
with open(os.path.join(m.dir, "s2s-key.pem"), "rb") as f:
    mkey = serialization.load_pem_private_key(f.read(), None)
with open(os.path.join(m.dir, "s2s-cert.pem"), "rb") as f:
    mder = x509.load_pem_x509_certificate(f.read()).public_bytes(
        serialization.Encoding.DER)
mrealm = m.get("/autodiscover/metadata/json/1").json()["realm"]
prealm = p.get("/_layouts/15/metadata/json/1").json()["realm"]


def b64u(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def notice_token(addresses):
    now = int(time.time())
    iss = "%s@%s" % (EX, mrealm)
    claims = {"aud": "%s/127.0.0.1:%d@%s" % (SP, pport, prealm),
              "iss": iss, "nameid": iss, "nbf": str(now),
              "exp": str(now + 600)}
    if addresses is not None:
        claims["photosync_addresses_sha256"] = b64u(hashlib.sha256(
            "".join(a + "\n" for a in sorted(x.lower() for x in
                                                addresses))
            .encode()).digest())
    return "Bearer " + jwt.encode(claims, mkey, algorithm="RS256", headers={
        "typ": "JWT", "x5t": b64u(hashlib.sha1(mder).digest())})


def pyjwt_notice(addresses, email):
    h = {"Authorization": notice_token(addresses)}
    h.update(FORM)
    return p.post(NOTIFY, "email=" + email.replace("@", "%40"), h).status


is_eq(pyjwt_notice(None, "test1@contoso.com"), 401,
      "PyJWT: a notice token without the binding claim is refused")
is_eq(pyjwt_notice(["test1@contoso.com"], "test2@contoso.com"), 401,
      "PyJWT: a token bound to test1 announcing test2 is refused")
is_eq(pyjwt_notice(["Test1@Contoso.COM"], "test1@contoso.com"), 202,
      "PyJWT: a token bound to test1 (any case) announcing test1 is "
      "accepted")
logs = p.server.logs()
ok(logs.count("ev=notify.unbound") == 4, "notify.unbound logged for "
   "each refusal (%d)" % logs.count("ev=notify.unbound"))

# ---- test2 and test3 were never synced ----
for acct in ("contoso\\test2", "contoso\\test3"):
    st, out, err = p.cmd("user", "show", acct)
    ok(re.search(r"last success\s+never", out),
       "%s: never synced (%s)" % (acct, " ".join(out.split())[:120]))
    ok(not re.search(r"ev=(sync|notify)\.\S+ .*account=%s\b" %
                     re.escape(acct), logs),
       "%s: no sync or notice event in the portal's log" % acct)
ok("placeholder" in (p.get(photo_path("contoso\\test2", "M"),
                           as_user="contoso\\test1").header("ETag") or ""),
   "test2's photo at the portal is still the placeholder")
done()
