"""Acceptance: the master's Graph photo API with Microsoft's own Graph
JavaScript client (@microsoft/microsoft-graph-client, installed from
tests/graph/package-lock.json with `npm ci`, outside the source tree),
run by Node.js with an authentication provider of ours: Basic, and a
partner's S2S token as the bearer. It reads the photo, its metadata and
the nine sizes, another user's photo, gets Graph's errors as GraphError
(Request_ResourceNotFound, ErrorAccessDenied, ErrorInvalidImage,
ImageNotFound), sets the photo with PUT and removes it with DELETE."""
import base64
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from psync import (Master, basic, done, identify, is_eq, make_image, ok,
                   tmpdir, write)

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "graph")
SIZES = [48, 64, 96, 120, 240, 360, 432, 504, 648]
SP = "00000003-0000-0ff1-ce00-000000000000"
EX = "00000002-0000-0ff1-ce00-000000000000"
work = tmpdir("graphjs")


def install():
    """npm ci of the lockfile into the build tree (PHOTOSYNC_NODE_DIR),
    once per lockfile: both stores' runs of this test share it, so the
    install is done under a lock."""
    dest = os.environ["PHOTOSYNC_NODE_DIR"]
    os.makedirs(dest, exist_ok=True)
    lock = open(os.path.join(dest, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        want = hashlib.sha256(open(os.path.join(SRC, "package-lock.json"),
                                   "rb").read()).hexdigest()
        stamp = os.path.join(dest, ".installed")
        if os.path.exists(stamp) and open(stamp).read() == want:
            return os.path.join(dest, "node_modules")
        for f in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(SRC, f), dest)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund",
                            "--ignore-scripts"], cwd=dest,
                           capture_output=True, text=True)
        ok(r.returncode == 0, "npm ci installed the Graph client from the "
           "lockfile%s" % ("" if r.returncode == 0 else ": " +
                           r.stderr[-500:]))
        if r.returncode == 0:
            write(stamp, want)
        return os.path.join(dest, "node_modules")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


for tool in ("node", "npm"):
    if not ok(shutil.which(tool), "%s is installed (scripts/deps.sh test)"
              % tool):
        done()
node_modules = install()
r = subprocess.run(["node", "--version"], capture_output=True, text=True)
ok(r.returncode == 0, "Node.js runs (%s)" % r.stdout.strip())

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "900x900"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "b.jpg"), "300x300"))

# a partner, whose S2S tokens are the bearer tokens of the second run
sp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = datetime.datetime.utcnow()
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal")])
sp_der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(sp_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .sign(sp_key, hashes.SHA256())
          .public_bytes(serialization.Encoding.DER))
sp_realm = str(uuid.uuid4())
m.cmd("partner", "add", "--name", "Portal", "--metadata-file",
      write(os.path.join(work, "sp.json"), json.dumps({
          "issuer": "%s@%s" % (SP, sp_realm), "realm": sp_realm,
          "keys": [{"keyValue": {"type": "x509certificate",
                                 "value": base64.b64encode(sp_der).decode()},
                    "usage": "Signing"}],
          "name": SP, "serviceName": SP})))
m.start()
realm = m.get("/autodiscover/metadata/json/1").json()["realm"]


def s2s(user):
    """A partner's S2S token for `user` (TokenHelper's shape)."""
    t = int(time.time())
    nameid = "%s@%s" % (SP, sp_realm)
    aud = "%s/127.0.0.1@%s" % (EX, realm)
    x5t = base64.urlsafe_b64encode(hashlib.sha1(sp_der).digest()).decode() \
        .rstrip("=")
    actor = jwt.encode({"aud": aud, "iss": nameid, "nameid": nameid,
                        "nbf": str(t - 60), "exp": str(t + 3600),
                        "trustedfordelegation": "true"}, sp_key,
                       algorithm="RS256", headers={"x5t": x5t})
    b64u = (lambda d: base64.urlsafe_b64encode(json.dumps(d).encode())
            .decode().rstrip("="))
    return (b64u({"typ": "JWT", "alg": "none"}) + "." +
            b64u({"aud": aud, "iss": nameid, "nbf": str(t - 60),
                  "exp": str(t + 3600),
                  "nii": "urn:office:idp:activedirectory", "smtp": user,
                  "nameid": user, "actortoken": actor}) + ".")


def run_client(auth, other, what):
    out = tmpdir("graphjs-" + what)
    env = dict(os.environ, NODE_PATH=node_modules,
               NODE_EXTRA_CA_CERTS=m.ca, GRAPH_BASE=m.url("/"),
               GRAPH_AUTH=auth, GRAPH_OTHER=other, GRAPH_OUT=out,
               GRAPH_IMAGE=make_image(os.path.join(out, "new.jpg"),
                                      "400x400", extra=["-negate"]))
    r = subprocess.run(["node", os.path.join(SRC, "photo-client.js")],
                       env=env, capture_output=True, text=True, timeout=120)
    ok(r.returncode == 0, "%s: the client ran%s" % (
        what, "" if r.returncode == 0 else ": " + r.stderr[-800:]))
    try:
        return json.loads(r.stdout), out
    except ValueError:
        ok(False, "%s: the client printed its results" % what)
        return None, out


def check(res, out, me, other, other_side, what):
    if res is None:
        return
    is_eq(res["me_value"]["ok"] and identify(os.path.join(
        out, "me.jpg")), (648, 648, "JPEG"), what + ": /me/photo/$value")
    md = res["me_meta"].get("value", {})
    ok(md.get("@odata.mediaContentType") == "image/jpeg" and
       md.get("id") == "648X648" and md.get("width") == 648 and
       md.get("@odata.mediaEtag", "").startswith('"'),
       what + ": /me/photo's metadata")
    is_eq([p["id"] for p in res["me_photos"].get("value", {})
           .get("value", [])], ["%dX%d" % (s, s) for s in SIZES],
          what + ": /me/photos lists the nine sizes")
    for s in SIZES:
        k = "%dx%d" % (s, s)
        got = res["sizes"][k]
        is_eq(got["ok"] and identify(os.path.join(out, "me-%s.jpg" % k)),
              (s, s, "JPEG"), what + ": /me/photos/%s/$value" % k)
    is_eq(res["other_value"]["ok"] and identify(os.path.join(
        out, "other.jpg"))[:2], (other_side, other_side),
        what + ": /users/%s/photo/$value" % other)
    is_eq(res["other_meta"].get("value", {}).get("width"), other_side,
          what + ": another user's metadata")
    g = res["ghost"]
    ok(not g["ok"] and g["status"] == 404 and
       g["code"] == "Request_ResourceNotFound",
       what + ": an unknown user is a GraphError, Request_ResourceNotFound "
       "(%s)" % g.get("code"))
    g = res["put_other"]
    ok(not g["ok"] and g["status"] == 403 and g["code"] == "ErrorAccessDenied",
       what + ": PUT of another user's photo: 403 ErrorAccessDenied (%s)" %
       g.get("code"))
    ok(res["put"]["ok"], what + ": PUT /me/photo/$value")
    after = res["after_put"].get("value", {})
    ok(after.get("width") == 400 and after.get("@odata.mediaEtag") !=
       md.get("@odata.mediaEtag"), what + ": the new photo, a new mediaEtag")
    is_eq(res["put_value"]["ok"] and identify(os.path.join(
        out, "put.jpg"))[:2], (400, 400), what + ": the new photo's bytes")
    g = res["put_junk"]
    ok(not g["ok"] and g["status"] == 400 and g["code"] == "ErrorInvalidImage",
       what + ": PUT of something not an image: ErrorInvalidImage (%s)" %
       g.get("code"))
    ok(res["delete"]["ok"], what + ": DELETE /me/photo")
    g = res["after_delete"]
    ok(not g["ok"] and g["status"] == 404 and g["code"] == "ImageNotFound",
       what + ": then /me/photo/$value is ImageNotFound (%s)" %
       g.get("code"))
    st, so, se = m.cmd("photo", "show", me)
    ok("has no photo" in so, what + ": the store has no photo for " + me)


res, out = run_client("basic test1@contoso.com pw-one", "test2@contoso.com",
                      "Basic")
check(res, out, "test1@contoso.com", "test2@contoso.com", 300, "Basic")
# the second run, as test2 with a bearer token, after test1's photo is back
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "c.jpg"), "700x700"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "d.jpg"), "800x800"))
res, out = run_client("bearer " + s2s("test2@contoso.com"),
                      "test1@contoso.com", "bearer")
check(res, out, "test2@contoso.com", "test1@contoso.com", 648, "bearer")
done()
