"""The S2S tokens the portal sends to the master, checked by validators we
did not write (PyJWT and jwcrypto, Debian's python3-jwt and
python3-jwcrypto), against the certificate in the portal's own published
metadata; then single-flight: concurrent owner requests make one call, and
the call carries the leader's request id.

The master here is a fake (fakepeer.py) that records the Authorization
header; its GetUserSettings answer is captured from a real master, and the
portal trusts it through Exchange-shaped metadata registered with
`portal issuer add --metadata-file`.
"""
import atexit
import base64
import hashlib
import json
import os
import re
import threading
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws

from fakepeer import (FakeMaster, capture_ad_template, exchange_metadata,
                      make_jpeg, make_tls, self_signed_der)
from psync import (Master, Portal, done, is_eq, ok, photo_path, tmpdir,
                   write)

EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"
SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"
T1 = "contoso\\test1"
work = tmpdir("tokens")




def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- a real master, only for its GetUserSettings answer ----
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.start()
atexit.register(m.stop)
template = capture_ad_template(m, "test1@contoso.com", "pw-one")
m.stop()

# ---- the fake master and the portal that trusts it ----
ca_file, cert_file, key_file = make_tls(work)
fake_realm = str(uuid.uuid4())
fake = FakeMaster(template, tls=(cert_file, key_file))
atexit.register(fake.stop)
md = exchange_metadata(fake_realm, self_signed_der(),
                       fake.base() + "/autodiscover/metadata/json/1")
md_file = write(os.path.join(work, "exchange-metadata.json"), md)
fake.metadata = md

p = Portal()
p.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
p.start()
atexit.register(p.stop)
p.cmd("issuer", "add", "--name", "Exchange", "--metadata-file", md_file)
p.cmd("webapp", "set", "--photo-import", "on", "--photo-expiration", "0m",
      "--photo-error-expiration", "0m", "--autodiscover-domain",
      fake.hostport(), "--ca-file", ca_file)
_, show, _ = p.cmd("webapp", "show")
portal_realm = re.search(r"realm\s+(\S+)", show).group(1)

r = p.get(photo_path(T1, "L"), as_user=T1)
first_rid = r.header("request-id")
# The owner waits a few seconds at most, a loaded machine may take
# longer: the sync's outcome is the event waited for (asking again would
# sync again, the window being 0m).
is_eq(r.status, 200, "the owner's L request: 200")
ok(p.server.wait_log(r"req=%s ev=sync\.done .*outcome=updated" %
                     re.escape(first_rid or "-")),
   "the owner's L request fetched the photo from the fake master")
is_eq((fake.count("autodiscover"), fake.count("photo")), (1, 1),
      "one Autodiscover and one GetUserPhoto call at the fake")

# ---- the portal's published metadata: the signing certificate ----
r = p.get("/_layouts/15/metadata/json/1")
is_eq(r.status, 200, "the portal's metadata is published without sign-in")
meta = r.json()
cert_der = base64.b64decode(meta["keys"][0]["keyValue"]["value"])
cert = x509.load_der_x509_certificate(cert_der)
cert_pem = cert.public_bytes(serialization.Encoding.PEM)
is_eq(meta["issuer"], "%s@%s" % (SHAREPOINT, portal_realm),
      "metadata issuer is 00000003-...@<the webapp's realm>")
is_eq(meta["keys"][0].get("usage"), "Signing", "metadata key usage Signing")

AUD = "%s/127.0.0.1:%d@%s" % (EXCHANGE, fake.port, fake_realm)
ISS = "%s@%s" % (SHAREPOINT, portal_realm)


def check_token(call, what):
    """The whole set of checks on one captured Authorization header."""
    auth = call.header("Authorization") or ""
    ok(auth.startswith("Bearer "), "%s: Authorization: Bearer" % what)
    outer = auth[len("Bearer "):]
    parts = outer.split(".")
    ok(len(parts) == 3 and parts[2] == "",
       "%s: the outer token is a JWS with an empty signature" % what)
    # -- the outer token: unsigned, carries the user --
    ohdr = jwt.get_unverified_header(outer)
    is_eq(ohdr.get("alg"), "none", "%s: outer alg none" % what)
    oc = jwt.decode(outer, options={"verify_signature": False})
    actor = oc.get("actortoken")
    ok(isinstance(actor, str) and actor.count(".") == 2,
       "%s: outer token has an actortoken" % what)
    is_eq(oc.get("smtp"), "test1@contoso.com", "%s: outer smtp is the "
          "user's address" % what)
    is_eq(oc.get("aud"), AUD, "%s: outer aud" % what)
    # -- the actor token, verified by PyJWT --
    ahdr = jwt.get_unverified_header(actor)
    is_eq(ahdr.get("alg"), "RS256", "%s: actor alg RS256" % what)
    is_eq(ahdr.get("x5t"), b64url(hashlib.sha1(cert_der).digest()),
          "%s: actor x5t = base64url(SHA-1(DER of the published "
          "certificate))" % what)
    ok("kid" not in ahdr, "%s: actor header has no kid" % what)
    try:
        ac = jwt.decode(actor, cert.public_key(), algorithms=["RS256"],
                        audience=AUD, issuer=ISS, leeway=10,
                        options={"require": ["aud", "iss", "nbf", "exp"]})
        ok(True, "%s: PyJWT verifies the actor token (RS256 signature, "
           "aud, iss, nbf, exp)" % what)
    except jwt.PyJWTError as e:
        ok(False, "%s: PyJWT verifies the actor token: %r" % (what, e))
        ac = jwt.decode(actor, options={"verify_signature": False})
    # -- and by jwcrypto --
    try:
        key = jwk.JWK.from_pem(cert_pem)
        obj = jws.JWS()
        obj.deserialize(actor)
        obj.verify(key, alg="RS256")
        ok(json.loads(obj.payload) == ac,
           "%s: jwcrypto verifies the actor token's signature" % what)
    except Exception as e:  # jwcrypto raises several kinds
        ok(False, "%s: jwcrypto verifies the actor token: %r" % (what, e))
    # -- a tampered actor token must fail both (the checks bite) --
    h, pl, sig = actor.split(".")
    claims = json.loads(b64url_decode(pl))
    claims["nameid"] = "%s@%s" % (SHAREPOINT, str(uuid.uuid4()))
    forged = "%s.%s.%s" % (h, b64url(json.dumps(claims).encode()), sig)
    try:
        jwt.decode(forged, cert.public_key(), algorithms=["RS256"],
                   audience=AUD, leeway=10)
        ok(False, "%s: PyJWT refuses a tampered actor token" % what)
    except jwt.InvalidSignatureError:
        ok(True, "%s: PyJWT refuses a tampered actor token" % what)
    try:
        obj = jws.JWS()
        obj.deserialize(forged)
        obj.verify(jwk.JWK.from_pem(cert_pem), alg="RS256")
        ok(False, "%s: jwcrypto refuses a tampered actor token" % what)
    except jws.InvalidJWSSignature:
        ok(True, "%s: jwcrypto refuses a tampered actor token" % what)
    # -- claims --
    is_eq(ac.get("aud"), AUD, "%s: actor aud = 00000002-.../<host:port of "
          "the fake>@<issuer realm>" % what)
    is_eq(ac.get("iss"), ISS, "%s: actor iss = 00000003-...@<portal "
          "realm>" % what)
    is_eq(ac.get("nameid"), ISS, "%s: actor nameid = iss" % what)
    ok(ac.get("trustedfordelegation") in (True, "true"),
       "%s: actor trustedfordelegation true (%r)" % (
           what, ac.get("trustedfordelegation")))
    now = time.time()
    try:
        nbf, exp = int(ac["nbf"]), int(ac["exp"])
        onbf, oexp = int(oc["nbf"]), int(oc["exp"])
    except (KeyError, ValueError):
        nbf = exp = onbf = oexp = 0
    ok(now - 600 <= nbf <= now + 5 and now + 60 < exp and
       300 <= exp - nbf <= 86400,
       "%s: actor nbf/exp sane (nbf %+ds, lifetime %ds)" % (
           what, nbf - now, exp - nbf))
    ok(now - 600 <= onbf <= now + 5 and oexp > now + 60 and oexp <= exp,
       "%s: outer nbf/exp sane, within the actor's" % what)
    is_eq(oc.get("iss"), ac.get("nameid"),
          "%s: outer iss == actor nameid" % what)
    for name, v in (("aud", ac.get("aud")), ("iss", ac.get("iss"))):
        ok(v == (v or "").lower(), "%s: %s is lower case" % (what, name))
    return outer


photo_call = fake.last("photo")
outer_photo = check_token(photo_call, "GetUserPhoto")
ad_call = fake.last("autodiscover")
outer_ad = check_token(ad_call, "Autodiscover")
is_eq(photo_call.header("client-request-id"), first_rid,
      "GetUserPhoto carries the owner's request id as client-request-id")
is_eq(ad_call.header("client-request-id"), first_rid,
      "Autodiscover carries the owner's request id as client-request-id")
is_eq((photo_call.header("return-client-request-id") or "").lower(), "true",
      "return-client-request-id: true is sent")

# ---- single-flight: 8 owner requests while the master takes 1 s ----
fake.delay = 1
fake.etag = "fake-2"
fake.photo = make_jpeg(500)
photos0 = fake.count("photo")
barrier = threading.Barrier(8)
results = [None] * 8


def one(i):
    barrier.wait()
    t0 = time.monotonic()
    try:
        r = p.get(photo_path(T1, "L"), as_user=T1)
        results[i] = (r.status, r.header("ETag"), r.header("request-id"),
                      time.monotonic() - t0)
    except Exception as e:
        results[i] = ("error %r" % e, None, None, 0)


log_at = len(p.server.logs())
threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join(30)
is_eq([x[0] for x in results], [200] * 8, "all 8 concurrent owner requests "
      "get 200")
is_eq(fake.count("photo") - photos0, 1,
      "single-flight: exactly one GetUserPhoto call for 8 requests")
etags = set(x[1] for x in results)
ok(len(etags) == 1 and "placeholder" not in next(iter(etags)) and
   next(iter(etags)) != r.header("ETag"),
   "all 8 got the same, new photo (%s)" % etags)
ok(all(x[3] >= 0.9 for x in results),
   "all 8 waited for the one fetch (%s)" % ["%.2f" % x[3] for x in results])
leader = fake.last("photo").header("client-request-id")
rids = [x[2] for x in results]
is_eq(rids.count(leader), 1, "the call's client-request-id (%s) is the "
      "request id of exactly one of the 8 requests" % leader)
log = p.server.logs()[log_at:]
ok(re.search(r"req=%s ev=sync\.start " % re.escape(leader or "-"), log),
   "the portal logged sync.start under the leader's request id")
joined = re.findall(r"req=(\S+) ev=sync\.joined .*leader=(\S+)", log)
is_eq(sorted(j[0] for j in joined), sorted(x for x in rids if x != leader),
      "the 7 others joined it (sync.joined)")
ok(all(j[1] == leader for j in joined), "sync.joined names the leader")
outer_later = check_token(fake.last("photo"), "single-flight call")
# DESIGN §5: "a token is reused until shortly before it expires". The
# first token was minted more than a second ago (nbf/exp in seconds), with
# an hour of life: a reused token is the very same string.
ok(outer_later == outer_photo, "the token of the first sync is reused by "
   "the next one (same user and master, far from expiry; nbf %s then %s)"
   % (jwt.decode(outer_photo, options={"verify_signature": False})["nbf"],
      jwt.decode(outer_later, options={"verify_signature": False})["nbf"]))

logs = p.server.logs()
ok(outer_photo not in logs and outer_ad not in logs and "eyJ" not in logs,
   "no token in the portal's log")
done()
