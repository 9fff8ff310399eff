"""S2S OAuth at the master: a partner registered from its metadata (a
file, and an HTTPS URL with a private CA), tokens made by an independent
implementation (PyJWT + cryptography) accepted, every kind of forgery
refused with a reason, revocation without a restart, no token in logs."""
import base64
import datetime
import hashlib
import http.server
import json
import os
import ssl
import threading
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from psync import Master, done, is_eq, make_image, ok, tmpdir, write

SP = "00000003-0000-0ff1-ce00-000000000000"
EX = "00000002-0000-0ff1-ce00-000000000000"
work = tmpdir("s2s")


def keypair(cn, ca=None, san=None):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(ca[1].subject if ca else name)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=30)))
    if ca is None and san is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                            critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = b.sign(ca[0] if ca else key, hashes.SHA256())
    return key, cert


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def sp_metadata(realm, cert):
    """The SharePoint shape of /_layouts/15/metadata/json/1 (S19)."""
    return json.dumps({
        "issuer": "%s@%s" % (SP, realm), "realm": realm,
        "keys": [{"keyValue": {"type": "x509certificate",
                               "value": base64.b64encode(der(cert))
                               .decode()}, "usage": "Signing"}],
        "name": SP, "serviceName": SP})


def x5t(cert):
    return base64.urlsafe_b64encode(hashlib.sha1(der(cert)).digest()) \
        .decode().rstrip("=")


def b64u(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode() \
        .rstrip("=")


def token(key, cert, realm, aud, user="test1@contoso.com", now=None,
          actor_over=None, outer_over=None, actor_alg="RS256",
          drop_actor=(), drop_outer=(), header_over=None):
    """A SharePoint-style S2S token: RS256 actor inside an alg-none outer
    token, as TokenHelper builds it, made with PyJWT."""
    now = int(now or time.time())
    nameid = "%s@%s" % (SP, realm)
    actor = {"aud": aud, "iss": nameid, "nameid": nameid,
             "nbf": str(now - 60), "exp": str(now + 3600),
             "trustedfordelegation": "true"}
    actor.update(actor_over or {})
    for k in drop_actor:
        actor.pop(k, None)
    hdr = {"x5t": x5t(cert)}
    hdr.update(header_over or {})
    hdr = {k: v for k, v in hdr.items() if v is not None}
    if actor_alg == "RS256":
        at = jwt.encode(actor, key, algorithm="RS256", headers=hdr)
    elif actor_alg == "HS256":
        at = _hs256(actor, der(cert), hdr)
    else:
        at = b64u({"typ": "JWT", "alg": "none", **hdr}) + "." + \
            b64u(actor) + "."
    outer = {"aud": aud, "iss": nameid, "nbf": str(now - 60),
             "exp": str(now + 3600), "nii": "urn:office:idp:activedirectory",
             "smtp": user, "nameid": user, "actortoken": at}
    outer.update(outer_over or {})
    for k in drop_outer:
        outer.pop(k, None)
    return b64u({"typ": "JWT", "alg": "none"}) + "." + b64u(outer) + "."


def _hs256(claims, secret, hdr):
    import hmac
    h = b64u({"typ": "JWT", "alg": "HS256", **hdr})
    p = b64u(claims)
    sig = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + base64.urlsafe_b64encode(sig).decode() \
        .rstrip("=")


m = Master()
m.add_mailbox("test1@contoso.com", "pw-one")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "700x700"))

# ---- a partner from a metadata file ----
sp_realm = str(uuid.uuid4())
sp_key, sp_cert = keypair("portal signing", san=[x509.DNSName("portal")])
mdfile = write(os.path.join(work, "sp.json"), sp_metadata(sp_realm, sp_cert))
st, out, err = m.cmd("partner", "add", "--name", "Portal",
                     "--metadata-file", mdfile)
ok(st == 0 and ("%s@%s" % (SP, sp_realm)) in out,
   "partner add --metadata-file registers the issuer")
bad = write(os.path.join(work, "bad.json"), '{"issuer": "x@y", "keys": []}')
st, out, err = m.cmd("partner", "add", "--metadata-file", bad, check=False)
ok(st != 0 and err.strip(), "a metadata document without keys is refused "
   "(%s)" % err.strip()[:80])
st, out, err = m.cmd("partner", "add", "--metadata-file",
                     write(os.path.join(work, "junk.json"), "{not json"),
                     check=False)
ok(st != 0, "malformed metadata refused")
st, out, err = m.cmd("partner", "list")
ok("Portal" in out and sp_realm in out, "partner list shows it")

m.start()
master_realm = m.get("/autodiscover/metadata/json/1").json()["realm"]
host = "127.0.0.1"
aud = "%s/%s@%s" % (EX, host, master_realm)
P = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&size=HR96x96"


def call(tok):
    return m.get(P, {"Authorization": "Bearer " + tok})


good = token(sp_key, sp_cert, sp_realm, aud)
r = call(good)
is_eq(r.status, 200, "a PyJWT-made partner token is accepted")
r = call(token(sp_key, sp_cert, sp_realm, "%s/%s:%d@%s" % (
    EX, host, m.port, master_realm)))
is_eq(r.status, 200, "audience with host:port of this server accepted")
r = call(token(sp_key, sp_cert, sp_realm, "%s/%s@%s" % (EX, host,
                                                         sp_realm)))
is_eq(r.status, 200, "audience in the partner's realm accepted")

other_key, other_cert = keypair("intruder", san=[x509.DNSName("x")])
now = time.time()
forged = {
    "outer alg none without an actor token":
        b64u({"typ": "JWT", "alg": "none"}) + "." + b64u(
            {"aud": aud, "iss": "%s@%s" % (SP, sp_realm),
             "nbf": str(int(now) - 60), "exp": str(int(now) + 3600),
             "smtp": "test1@contoso.com"}) + ".",
    "actor token with alg none": token(sp_key, sp_cert, sp_realm, aud,
                                       actor_alg="none"),
    "actor HS256 keyed with the public certificate":
        token(sp_key, sp_cert, sp_realm, aud, actor_alg="HS256"),
    "actor signed by an unregistered key":
        token(other_key, other_cert, sp_realm, aud),
    "registered x5t, signature by another key":
        token(other_key, sp_cert, sp_realm, aud),
    "actor without x5t": token(sp_key, sp_cert, sp_realm, aud,
                               header_over={"x5t": None}),
    "actor issuer in another realm":
        token(sp_key, sp_cert, sp_realm, aud, actor_over={
            "iss": "%s@%s" % (SP, uuid.uuid4()),
            "nameid": "%s@%s" % (SP, uuid.uuid4())}),
    "outer iss differs from actor nameid":
        token(sp_key, sp_cert, sp_realm, aud, outer_over={
            "iss": "%s@%s" % (SP, sp_realm.upper())}),
    "wrong client id in the audience":
        token(sp_key, sp_cert, sp_realm, "%s/%s@%s" % (SP, host,
                                                        master_realm)),
    "wrong host in the audience":
        token(sp_key, sp_cert, sp_realm, "%s/mail.evil.com@%s" % (
            EX, master_realm)),
    "wrong port in the audience":
        token(sp_key, sp_cert, sp_realm, "%s/%s:1@%s" % (EX, host,
                                                          master_realm)),
    "unknown realm in the audience":
        token(sp_key, sp_cert, sp_realm, "%s/%s@%s" % (EX, host,
                                                        uuid.uuid4())),
    "expired": token(sp_key, sp_cert, sp_realm, aud, now=now - 7200,
                     actor_over={"exp": str(int(now) - 3000)},
                     outer_over={"exp": str(int(now) - 3000)}),
    "not yet valid": token(sp_key, sp_cert, sp_realm, aud,
                           actor_over={"nbf": str(int(now) + 3000)}),
    "no trustedfordelegation with a user":
        token(sp_key, sp_cert, sp_realm, aud,
              drop_actor=("trustedfordelegation",)),
}
for what, tok in forged.items():
    r = call(tok)
    ok(r.status == 401 and r.header("x-ms-diagnostics"),
       "refused: %s (%s)" % (what, (r.header("x-ms-diagnostics") or "")
                             [:90]))
# Tampering with the payload of a valid actor token.
parts = good.split(".")
outer = json.loads(base64.urlsafe_b64decode(parts[1] + "=="))
a = outer["actortoken"].split(".")
claims = json.loads(base64.urlsafe_b64decode(a[1] + "=="))
claims["nameid"] = claims["nameid"] + "x"
outer["actortoken"] = a[0] + "." + b64u(claims) + "." + a[2]
is_eq(call(parts[0] + "." + b64u(outer) + ".").status, 401,
      "refused: a tampered actor payload")
is_eq(call("x" * 20000).status, 401, "refused: an oversized token")

logs = m.server.logs()
ok(good.split(".")[1][:40] not in logs and "eyJ" not in logs,
   "no token, nor any part of one, in the log")

# ---- revocation takes effect without a restart ----
m.cmd("partner", "remove", "Portal")
is_eq(call(good).status, 401, "a removed partner's token is refused at once")

# ---- a partner from an HTTPS metadata URL with a private CA ----
ca = keypair("test CA")
srv_key, srv_cert = keypair("localhost", ca=ca,
                            san=[x509.DNSName("localhost")])
write(os.path.join(work, "ca.pem"), pem(ca[1]))
write(os.path.join(work, "srv.pem"), pem(srv_cert) + pem(srv_key))
doc = sp_metadata(sp_realm, sp_cert).encode()


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/_layouts/15/metadata/json/1":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)

    def log_message(self, *a):
        pass


hs = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(work, "srv.pem"))
hs.socket = ctx.wrap_socket(hs.socket, server_side=True)
threading.Thread(target=hs.serve_forever, daemon=True).start()
url = "https://localhost:%d/_layouts/15/metadata/json/1" % \
    hs.server_address[1]
st, out, err = m.cmd("partner", "add", "--name", "Portal", "--metadata-url",
                     url, check=False)
ok(st != 0 and ("certificate" in err.lower() or "SSL" in err),
   "an untrusted certificate is refused (%s)" % err.strip()[:80])
st, out, err = m.cmd("partner", "add", "--name", "Portal", "--metadata-url",
                     url, "--ca-file", os.path.join(work, "ca.pem"))
ok(st == 0, "partner add --metadata-url with --ca-file")
is_eq(call(good).status, 200, "the re-registered partner is trusted again")
st, out, err = m.cmd("partner", "add", "--metadata-url",
                     url.replace("https", "http"), check=False)
ok(st != 0 and "https" in err, "plain http metadata URL refused")
# Key rollover: the portal publishes a new certificate; refresh picks it.
new_key, new_cert = keypair("portal signing 2", san=[x509.DNSName("p")])
doc = sp_metadata(sp_realm, new_cert).encode()
st, out, err = m.cmd("partner", "refresh", "Portal", "--ca-file",
                     os.path.join(work, "ca.pem"))
ok(st == 0 and "refreshed" in out, "partner refresh re-fetches the URL")
is_eq(call(token(new_key, new_cert, sp_realm, aud)).status, 200,
      "a token signed with the new key is accepted after refresh")
is_eq(call(good).status, 401, "the old key is no longer trusted")
hs.shutdown()
m.stop()
done()
