"""The longest S2S token the master accepts: 12 hours between nbf and exp
(SharePoint TokenHelper's lifetime), on the actor and the outer token.
Tokens are made by PyJWT, an implementation we did not write; a longer one
is refused with 401, an x-ms-diagnostics reason and an auth.refused
event."""
import base64
import datetime
import json
import os
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
HOUR = 3600
CENTURY = 100 * 365 * 86400
work = tmpdir("lifetime")


def signing_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.DER)


def b64u(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


sp_realm = str(uuid.uuid4())
sp_iss = "%s@%s" % (SP, sp_realm)
key, der = signing_pair()
x5t = b64u(__import__("hashlib").sha1(der).digest())


def token(aud, actor_life=HOUR, outer_life=HOUR, nbf=True):
    """TokenHelper's shape: an RS256 actor token (PyJWT) inside an
    alg-none outer token (PyJWT), valid for the lifetimes given."""
    now = int(time.time())
    actor = {"aud": aud, "iss": sp_iss, "nameid": sp_iss,
             "nbf": str(now), "exp": str(now + actor_life),
             "trustedfordelegation": "true"}
    outer = {"aud": aud, "iss": sp_iss, "nbf": str(now),
             "exp": str(now + outer_life),
             "nii": "urn:office:idp:activedirectory",
             "smtp": "test1@contoso.com", "nameid": "test1@contoso.com"}
    if not nbf:
        del actor["nbf"], outer["nbf"]
    outer["actortoken"] = jwt.encode(actor, key, algorithm="RS256",
                                     headers={"typ": "JWT", "x5t": x5t})
    return jwt.encode(outer, None, algorithm="none")


m = Master()
m.add_mailbox("test1@contoso.com", "pw-one")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "300x300"))
md = write(os.path.join(work, "sp.json"), json.dumps({
    "issuer": sp_iss, "realm": sp_realm, "name": SP, "serviceName": SP,
    "keys": [{"usage": "Signing", "keyValue": {
        "type": "x509certificate",
        "value": base64.b64encode(der).decode()}}]}))
m.cmd("partner", "add", "--name", "Portal", "--metadata-file", md)
m.start()
realm = m.get("/autodiscover/metadata/json/1").json()["realm"]
aud = "%s/%s@%s" % (EX, m.host, realm)
P = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&size=HR96x96"


def call(tok):
    return m.get(P, {"Authorization": "Bearer " + tok})


is_eq(call(token(aud)).status, 200, "a PyJWT token valid for an hour is "
      "accepted")
is_eq(call(token(aud, 12 * HOUR, 12 * HOUR)).status, 200,
      "a PyJWT token valid for exactly 12 hours is accepted")

cases = [
    ("actor token valid for 100 years", token(aud, actor_life=CENTURY),
     "actor token: lifetime longer than 12 hours"),
    ("outer token valid for 100 years", token(aud, outer_life=CENTURY),
     "outer token: lifetime longer than 12 hours"),
    ("both valid for 12 hours and a second",
     token(aud, 12 * HOUR + 1, 12 * HOUR + 1),
     "actor token: lifetime longer than 12 hours"),
    ("no nbf, expiring in 100 years",
     token(aud, CENTURY, CENTURY, nbf=False),
     "actor token: lifetime longer than 12 hours"),
]
for what, tok, why in cases:
    r = call(tok)
    diag = r.header("x-ms-diagnostics") or ""
    ok(r.status == 401 and diag == '2000001;reason="%s"' % why and
       r.header("WWW-Authenticate"),
       "refused with 401 and its reason: %s (%s)" % (what, diag))

logs = m.server.logs()
n = logs.count('ev=auth.refused method=bearer reason="actor token: '
               'lifetime longer than 12 hours"')
is_eq(n, 3, "auth.refused logged the actor token's lifetime three times")
ok('ev=auth.refused method=bearer reason="outer token: lifetime longer '
   'than 12 hours"' in logs, "auth.refused logged the outer token's")
ok("eyJ" not in logs, "no token in the log")
m.stop()
done()
