"""The Microsoft Graph photo API at the master, over HTTPS: every path
(me and users by address and by id; photo, photos, photos/{size}, each
with $value), the nine sizes checked with ImageMagick, the metadata
documents, ETag and If-None-Match, HEAD, Graph's error bodies, PUT and
PATCH of $value through the image pipeline (4 MB limit, refusals that
change nothing), DELETE, the owner rule, the body gate, the sign-ins
(Basic, a partner's S2S token), ids found after a mailbox is added, and
a PUT waiting for the store while reads are answered."""
import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from psync import (LogMark, Master, basic, done, identify, is_eq,
                   make_image, ok, request, store_write_lock, tmpdir,
                   wait_for, write)

work = tmpdir("graph")
SIZES = [48, 64, 96, 120, 240, 360, 432, 504, 648]
SP = "00000003-0000-0ff1-ce00-000000000000"
EX = "00000002-0000-0ff1-ce00-000000000000"

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two")
m.add_mailbox("nophoto@contoso.com", "pw-three")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "900x900"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "b.png"), "640x480"))

# ---- a partner, for S2S tokens ----
sp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = datetime.datetime.utcnow()
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal")])
sp_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(sp_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1))
           .not_valid_after(now + datetime.timedelta(days=1))
           .sign(sp_key, hashes.SHA256()))
sp_der = sp_cert.public_bytes(serialization.Encoding.DER)
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
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
T2 = {"Authorization": basic("test2@contoso.com", "pw-two")}


def b64u(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode() \
        .rstrip("=")


def s2s(user):
    """A partner's S2S token (TokenHelper's shape): an RS256 actor token
    inside an unsigned outer one naming `user` ("" for app-only)."""
    t = int(time.time())
    nameid = "%s@%s" % (SP, sp_realm)
    aud = "%s/127.0.0.1@%s" % (EX, realm)
    x5t = base64.urlsafe_b64encode(hashlib.sha1(sp_der).digest()).decode() \
        .rstrip("=")
    actor = jwt.encode({"aud": aud, "iss": nameid, "nameid": nameid,
                        "nbf": str(t - 60), "exp": str(t + 3600),
                        "trustedfordelegation": "true"}, sp_key,
                       algorithm="RS256", headers={"x5t": x5t})
    if not user:
        return actor
    outer = {"aud": aud, "iss": nameid, "nbf": str(t - 60),
             "exp": str(t + 3600), "nii": "urn:office:idp:activedirectory",
             "smtp": user, "nameid": user, "actortoken": actor}
    return b64u({"typ": "JWT", "alg": "none"}) + "." + b64u(outer) + "."


def user_id(email):
    """The id the master gives a user, computed here independently: a
    version 8 UUID of SHA-256 over the realm and the address."""
    h = bytearray(hashlib.sha256(("photosync graph user\n%s\n%s" % (
        realm, email)).encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(h)))


def call(method, path, headers=None, body=None):
    return request(m.host, m.port, method, path, m.ca, headers, body)


def get(path, headers=T1):
    return call("GET", path, headers)


def save(r, name):
    return write(os.path.join(work, name), r.body)


def graph_error(r, status, code, what):
    is_eq(r.status, status, what + ": %d" % status)
    ok((r.header("Content-Type") or "").startswith("application/json"),
       what + ": a JSON body")
    try:
        e = r.json()["error"]
    except (ValueError, KeyError):
        ok(False, what + ": Graph's error body (%r)" % r.body[:200])
        return
    is_eq(e.get("code"), code, what + ": code " + code)
    ok(e.get("message"), what + ": a message")
    inner = e.get("innerError", {})
    is_eq(inner.get("request-id"), r.header("request-id"),
          what + ": innerError names the request")
    ok(inner.get("date"), what + ": innerError has the date")


# ---- sign-in ----
r = get("/v1.0/me/photo/$value", {})
is_eq(r.status, 401, "no credentials: 401")
chall = r.header_all("WWW-Authenticate")
ok(any(c.startswith('Bearer realm="%s"' % realm) for c in chall) and
   any(c.startswith("Basic") for c in chall),
   "the 401 carries the same challenges as EWS (Bearer, Basic)")
graph_error(r, 401, "InvalidAuthenticationToken", "no credentials")
r = get("/v1.0/me/photo/$value",
        {"Authorization": basic("test1@contoso.com", "wrong")})
graph_error(r, 401, "InvalidAuthenticationToken", "a wrong password")
r = get("/v1.0/users/test1@contoso.com/photo/$value",
        {"Authorization": "Bearer " + s2s("test2@contoso.com")})
is_eq(r.status, 200, "a partner's S2S token for a user reads a photo")
r = get("/v1.0/me/photo", {"Authorization": "Bearer " + s2s("")})
graph_error(r, 400, "BadRequest", "/me with an app-only token")
r = get("/v1.0/users/test1@contoso.com/photo",
        {"Authorization": "Bearer " + s2s("")})
is_eq(r.status, 200, "an app-only token reads a user's metadata")

# ---- $value: the largest, then each size ----
r = get("/v1.0/me/photo/$value")
is_eq(r.status, 200, "me/photo/$value: 200")
is_eq(r.header("Content-Type"), "image/jpeg", "me/photo/$value: a JPEG")
is_eq(identify(save(r, "me.jpg")), (648, 648, "JPEG"),
      "me/photo/$value: the largest size, 648x648")
etag = r.header("ETag")
ok(etag and etag.startswith('"') and r.header("Last-Modified"),
   "me/photo/$value: ETag and Last-Modified")
r2 = get("/v1.0/users/test1@contoso.com/photo/$value")
is_eq(r2.body, r.body, "users/{address}/photo/$value: the same photo")
r2 = get("/v1.0/users/TEST1@Contoso.com/photo/$value")
is_eq(r2.status, 200, "an address in any case")
r2 = get("/v1.0/users/%s/photo/$value" % user_id("test1@contoso.com"))
is_eq(r2.body, r.body, "users/{id}/photo/$value: the same photo")
r2 = get("/v1.0/me/photo/%24value")
is_eq(r2.status, 200, "$value percent-encoded")

for side in SIZES:
    for who in ("me", "users/test1@contoso.com",
                "users/" + user_id("test1@contoso.com")):
        r2 = get("/v1.0/%s/photos/%dx%d/$value" % (who, side, side))
        is_eq(r2.status, 200, "%s %dx%d: 200" % (who, side, side))
    is_eq(identify(save(r2, "s%d.jpg" % side)), (side, side, "JPEG"),
          "photos/%dx%d/$value is %dx%d" % (side, side, side, side))
    is_eq(r2.header("ETag"), etag, "every size has the photo's ETag")
r2 = get("/v1.0/me/photos/240X240/$value")
is_eq(r2.status, 200, "a size in Graph's spelling (240X240)")

# A 640x480 source: cropped to 480; sizes up to 504 stored (504 at 480),
# 648 not.
r2 = get("/v1.0/users/test2@contoso.com/photos/504x504/$value")
is_eq(identify(save(r2, "t2.jpg"))[:2], (480, 480),
      "a size the source was too small for: the source's side, no upscale")
r2 = get("/v1.0/users/test2@contoso.com/photos/648x648/$value")
graph_error(r2, 404, "ImageNotFound", "a size larger than stored")
r2 = get("/v1.0/users/test2@contoso.com/photo/$value")
is_eq(identify(save(r2, "t2b.jpg"))[:2], (480, 480),
      "photo/$value of a small source: the largest stored")

# ---- conditional requests and HEAD ----
r2 = get("/v1.0/me/photo/$value", dict(T1, **{"If-None-Match": etag}))
is_eq(r2.status, 304, "If-None-Match with the ETag: 304")
is_eq(r2.body, b"", "a 304 has no body")
r2 = get("/v1.0/me/photos/48x48/$value",
         dict(T1, **{"If-None-Match": 'W/%s, "other"' % etag}))
is_eq(r2.status, 304, "a weak tag in a list matches (http_etag_match)")
r2 = get("/v1.0/me/photo/$value", dict(T1, **{"If-None-Match": '"x"'}))
is_eq(r2.status, 200, "another tag: the photo")
r2 = get("/v1.0/me/photo/$value", dict(T1, **{"If-None-Match": etag[1:-1]}))
is_eq(r2.status, 200, "an unquoted tag matches nothing")
r2 = call("HEAD", "/v1.0/me/photo/$value", T1)
ok(r2.status == 200 and r2.body == b"" and r2.header("ETag") == etag and
   r2.header("Content-Length") == str(len(r.body)),
   "HEAD: the headers of GET, no body")
r2 = call("HEAD", "/v1.0/me/photo", T1)
ok(r2.status == 200 and r2.body == b"", "HEAD of the metadata")

# ---- metadata ----
r = get("/v1.0/me/photo")
is_eq(r.status, 200, "me/photo: 200")
ok(r.header("Content-Type").startswith("application/json"),
   "me/photo: JSON")
md = r.json()
is_eq(md.get("@odata.context"), m.url(
    "/v1.0/$metadata#users('%s')/photo/$entity" % user_id(
        "test1@contoso.com")), "me/photo: @odata.context")
is_eq(md.get("@odata.mediaContentType"), "image/jpeg",
      "me/photo: @odata.mediaContentType")
is_eq(md.get("@odata.mediaEtag"), etag,
      "me/photo: @odata.mediaEtag is the photo's ETag")
is_eq((md.get("id"), md.get("width"), md.get("height")),
      ("648X648", 648, 648), "me/photo: id, width, height of the largest")
r = get("/v1.0/users/test2@contoso.com/photo")
md = r.json()
is_eq((md.get("id"), md.get("width"), md.get("height")),
      ("504X504", 480, 480), "a small source: the largest stored, its side")
r = get("/v1.0/me/photos")
is_eq(r.status, 200, "me/photos: 200")
md = r.json()
is_eq(md.get("@odata.context"), m.url("/v1.0/$metadata#users('%s')/photos"
      % user_id("test1@contoso.com")), "me/photos: @odata.context")
is_eq([(p["id"], p["width"], p["height"]) for p in md.get("value", [])],
      [("%dX%d" % (s, s), s, s) for s in SIZES],
      "me/photos: the nine sizes, smallest first")
ok(all(p.get("@odata.mediaEtag") == etag for p in md["value"]),
   "me/photos: each with the mediaEtag")
r = get("/v1.0/users/test2@contoso.com/photos")
is_eq([p["id"] for p in r.json()["value"]],
      ["%dX%d" % (s, s) for s in SIZES[:-1]],
      "a small source: the sizes stored")
r = get("/v1.0/users/%s/photos/96x96" % user_id("test1@contoso.com"))
md = r.json()
ok(md.get("id") == "96X96" and md.get("width") == 96 and
   md.get("@odata.context", "").endswith("/photos/$entity"),
   "users/{id}/photos/96x96: one size's document")

# ---- errors ----
graph_error(get("/v1.0/users/nophoto@contoso.com/photo/$value"), 404,
            "ImageNotFound", "a user without a photo ($value)")
graph_error(get("/v1.0/users/nophoto@contoso.com/photo"), 404,
            "ImageNotFound", "a user without a photo (metadata)")
graph_error(get("/v1.0/users/nophoto@contoso.com/photos/48x48/$value"),
            404, "ImageNotFound", "a user without a photo (a size)")
graph_error(get("/v1.0/me/photo/$value", {
    "Authorization": basic("nophoto@contoso.com", "pw-three")}), 404,
    "ImageNotFound", "me without a photo")
graph_error(get("/v1.0/users/ghost@contoso.com/photo/$value"), 404,
            "Request_ResourceNotFound", "an unknown address ($value)")
graph_error(get("/v1.0/users/ghost@contoso.com/photo"), 404,
            "Request_ResourceNotFound", "an unknown address (metadata)")
graph_error(get("/v1.0/users/%s/photo" % uuid.uuid4()), 404,
            "Request_ResourceNotFound", "an unknown id")
# Ids are kept in memory once read: a mailbox added while serving is
# found by its id all the same (the index follows the store's changes).
m.add_mailbox("new@contoso.com", "pw-new")
m.cmd("photo", "set", "new@contoso.com", "--file",
      make_image(os.path.join(work, "n.jpg"), "200x200"))
r = get("/v1.0/users/%s/photo" % user_id("new@contoso.com"))
ok(r.status == 200 and r.json().get("width") == 200,
   "a mailbox added while serving: found by its id")
m.cmd("mailbox", "remove", "new@contoso.com")
graph_error(get("/v1.0/users/%s/photo" % user_id("new@contoso.com")), 404,
            "Request_ResourceNotFound", "and not found once removed")
graph_error(get("/v1.0/users/not-an-id/photo"), 404,
            "Request_ResourceNotFound", "neither an address nor an id")
graph_error(get("/v1.0/me/photos/100x100/$value"), 400,
            "ErrorInvalidPhotoSize", "a size that is not one of the nine")
graph_error(get("/v1.0/me/messages"), 400, "BadRequest",
            "a path that is not a photo's")
graph_error(call("POST", "/v1.0/me/photo/$value", T1, b"x"), 405,
            "BadRequest", "POST is not a method of the photo")
graph_error(call("PUT", "/v1.0/me/photos/48x48/$value", T1, b"x"), 405,
            "BadRequest", "a size cannot be set alone")

# ---- PUT and PATCH of $value ----
mark = LogMark(m)
big = make_image(os.path.join(work, "big.jpg"), "1000x1000",
                 extra=["+noise", "Random", "-quality", "85"])
body = open(big, "rb").read()
ok(64 * 1024 < len(body) < 4 * 1024 * 1024,
   "a JPEG of %d bytes (through the body gate)" % len(body))
r = call("PUT", "/v1.0/me/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}), body)
is_eq(r.status, 200, "PUT me/photo/$value: 200")
r = get("/v1.0/me/photo/$value")
new_etag = r.header("ETag")
ok(new_etag and new_etag != etag, "the ETag changed")
is_eq(identify(save(r, "new.jpg")), (648, 648, "JPEG"), "the new photo")
md = get("/v1.0/me/photo").json()
is_eq(md["@odata.mediaEtag"], new_etag, "the mediaEtag changed with it")
ok(mark.wait(r"ev=photo\.client_set email=\"?test1@contoso\.com\"? "
             r"via=graph"), "logged as photo.client_set")
r = call("PUT", "/v1.0/me/photo/$value", dict(T1, **{"If-None-Match": "*"}),
         None)
graph_error(r, 400, "BadRequest", "PUT without a body")

small = open(make_image(os.path.join(work, "small.jpg"), "300x300"),
             "rb").read()
r = call("PATCH", "/v1.0/users/test1@contoso.com/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}), small)
is_eq(r.status, 200, "PATCH users/{self}/photo/$value: 200")
md = get("/v1.0/me/photo").json()
ok(md["@odata.mediaEtag"] != new_etag and md["width"] == 300,
   "PATCH set the photo (300 pixels now)")
cur = md["@odata.mediaEtag"]
r = call("PUT", "/v1.0/users/%s/photo/$value" % user_id(
    "test1@contoso.com"), dict(T1, **{"Content-Type": "image/jpeg"}), small)
is_eq(r.status, 200, "PUT users/{own id}/photo/$value: 200")
cur = get("/v1.0/me/photo").json()["@odata.mediaEtag"]

# refusals: nothing changes
r = call("PUT", "/v1.0/me/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}), b"not an image" * 10)
graph_error(r, 400, "ErrorInvalidImage", "PUT of something not an image")
ok("photo has not changed" in r.json()["error"]["message"],
   "the message says the photo has not changed")
r = call("PUT", "/v1.0/users/test2@contoso.com/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}), small)
graph_error(r, 403, "ErrorAccessDenied", "PUT of another user's photo")
r = call("PUT", "/v1.0/users/%s/photo/$value" % user_id("test2@contoso.com"),
         dict(T1, **{"Content-Type": "image/jpeg"}), small)
graph_error(r, 403, "ErrorAccessDenied", "PUT of another user's photo by id")
r = call("PUT", "/v1.0/me/photo/$value",
         {"Authorization": "Bearer " + s2s("")}, small)
graph_error(r, 400, "BadRequest", "PUT of /me by an app-only token")
r = call("PUT", "/v1.0/users/test1@contoso.com/photo/$value",
         {"Authorization": "Bearer " + s2s("")}, small)
graph_error(r, 403, "ErrorAccessDenied", "an app-only token sets nothing")
over = os.urandom(4 * 1024 * 1024 + 1)
r = call("PUT", "/v1.0/me/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}), over)
graph_error(r, 413, "RequestEntityTooLarge", "PUT of more than 4 MB")
r = call("PUT", "/v1.0/me/photo/$value",
         dict(T1, **{"Content-Type": "image/jpeg"}),
         over[:4 * 1024 * 1024])
graph_error(r, 400, "ErrorInvalidImage",
            "exactly 4 MB is taken, and then refused as not an image")
is_eq(get("/v1.0/me/photo").json()["@odata.mediaEtag"], cur,
      "after every refusal the photo is unchanged")
is_eq(get("/v1.0/users/test2@contoso.com/photo").json()["width"], 480,
      "and so is the other user's")

# the body gate: no large body is read without a sign-in
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(b"PUT /v1.0/me/photo/$value HTTP/1.1\r\nHost: x\r\n"
             b"Content-Type: image/jpeg\r\nContent-Length: 3000000\r\n\r\n")
head = sock.recv(65536).decode("latin-1")
sock.close()
ok(head.startswith("HTTP/1.1 401"),
   "a large body without credentials: 401 before it is read")
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(("PUT /v1.0/me/photo/$value HTTP/1.1\r\nHost: x\r\n"
              "Authorization: %s\r\nContent-Length: 5000000\r\n\r\n" %
              T1["Authorization"]).encode())
head = sock.recv(65536).decode("latin-1")
sock.close()
ok(head.startswith("HTTP/1.1 413") and "RequestEntityTooLarge" in head,
   "a declared body over 4 MB: Graph's 413 before it is read")


def raw_answer(sock):
    """The status line and the JSON error of an answer read to its end."""
    data = b""
    while True:
        try:
            got = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            break
        if not got:
            break
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return head.decode("latin-1"), json.loads(body)["error"]
    except (ValueError, KeyError):
        return head.decode("latin-1"), {}


# A chunked body has no length to refuse it by: the HTTP layer stops
# reading it at 4 MB, and its 413 is Graph's error too.
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(("PUT /v1.0/me/photo/$value HTTP/1.1\r\nHost: x\r\n"
              "Authorization: %s\r\nContent-Type: image/jpeg\r\n"
              "Transfer-Encoding: chunked\r\n\r\n" %
              T1["Authorization"]).encode())
chunk = b"%x\r\n" % (512 * 1024) + b"\xff" * (512 * 1024) + b"\r\n"
try:
    for i in range(10):
        sock.sendall(chunk)
    sock.sendall(b"0\r\n\r\n")
except (ConnectionError, ssl.SSLError):
    pass
head, err = raw_answer(sock)
sock.close()
ok(head.startswith("HTTP/1.1 413"), "a chunked body past 4 MB: 413 (%s)" %
   head.split("\r\n")[0])
ok("application/json" in head, "with a JSON body")
is_eq(err.get("code"), "RequestEntityTooLarge",
      "a chunked body past 4 MB: Graph's error code")

# ---- nothing on the loop waits: a PUT waits for the store, reads go on ----
def store_queued():
    g = re.search(r"^photosync_store_queued (\d+)", m.get("/metrics").text(),
                  re.M)
    return int(g.group(1)) if g else -1


ctx = ssl.create_default_context(cafile=m.ca)
lock = store_write_lock(m.dir)
try:
    put = http.client.HTTPSConnection(m.host, m.port, context=ctx,
                                      timeout=120)
    put.request("PUT", "/v1.0/me/photo/$value", body=small,
                headers=dict(T1, **{"Content-Type": "image/jpeg"}))
    # Rendered on a worker, then its write waits for the lock: a store
    # job seen queued means it is in flight.
    ok(wait_for(lambda: store_queued() >= 1),
       "under another process's write lock a PUT is in flight")
    r = get("/v1.0/users/test2@contoso.com/photo/$value")
    is_eq(r.status, 200, "meanwhile a photo is answered (the index)")
    r = get("/v1.0/me/photos/96x96/$value")
    is_eq(r.status, 200, "and the owner's current one too")
finally:
    lock.release()
r = put.getresponse()
r.read()
is_eq(r.status, 200, "once the lock is gone the PUT is written")
put.close()
ok(get("/v1.0/me/photo").json()["@odata.mediaEtag"] != cur,
   "and the photo is the new one")

# ---- DELETE ----
r = call("DELETE", "/v1.0/users/test2@contoso.com/photo", T1)
graph_error(r, 403, "ErrorAccessDenied", "DELETE of another user's photo")
is_eq(get("/v1.0/users/test2@contoso.com/photo").status, 200,
      "the other user's photo stays")
mark = LogMark(m)
r = call("DELETE", "/v1.0/me/photo", T1)
is_eq(r.status, 204, "DELETE me/photo: 204")
graph_error(get("/v1.0/me/photo/$value"), 404, "ImageNotFound",
            "after DELETE: no photo")
ok(mark.wait(r"ev=photo\.client_removed email=\"?test1@contoso\.com\"? "
             r"via=graph had_photo=yes"), "logged as photo.client_removed")
r = call("DELETE", "/v1.0/me/photo/$value", T1)
graph_error(r, 404, "ImageNotFound", "DELETE with no photo")
r = call("DELETE", "/v1.0/users/test2@contoso.com/photo/$value", T2)
is_eq(r.status, 204, "DELETE users/{self}/photo/$value: 204")
st, out, err = m.cmd("photo", "show", "test2@contoso.com")
ok("has no photo" in out, "the store has no photo for it either")

# ---- the sign-in's own refusals, last: they throttle this address ----
status = None
for i in range(30):
    r = get("/v1.0/me/photo", {"Authorization": basic("nophoto@contoso.com",
                                                        "wrong")})
    status = r.status
    if status != 401:
        break
graph_error(r, 429, "activityLimitReached",
            "repeated wrong passwords on /v1.0/: 429")
ok((r.header("Retry-After") or "").isdigit(), "429 with Retry-After")

done()
