"""Changing one's photo at the portal, over HTTP: mailbox users are sent
to the master's change-photo page with the way back; users without a
mailbox (or with import off) upload locally, with the same image pipeline
and limits; a mailbox user's upload is refused; coming back from the
master refreshes the photo at once, whatever the window."""
import os
import re
import socket
import ssl
import uuid
from urllib.parse import parse_qs, unquote, urlparse

from psync import (done, identify, is_eq, make_image, ok, photo_path,
                   scan_bomb, tmpdir, wired, write)

work = tmpdir("change")
m, p = wired()
T1, T3 = "contoso\\test1", "contoso\\test3"


def multipart(fields):
    """A multipart/form-data body from {name: (filename, bytes) | str}."""
    boundary = "----photosync" + uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += ("--%s\r\n" % boundary).encode()
        if isinstance(value, tuple):
            out += ('Content-Disposition: form-data; name="%s"; '
                    'filename="%s"\r\nContent-Type: application/octet-'
                    'stream\r\n\r\n' % (name, value[0])).encode()
            out += value[1] + b"\r\n"
        else:
            out += ('Content-Disposition: form-data; name="%s"\r\n\r\n%s'
                    '\r\n' % (name, value)).encode()
    out += ("--%s--\r\n" % boundary).encode()
    return out, "multipart/form-data; boundary=" + boundary


def upload(account, data, filename="me.jpg", extra=None):
    fields = {"photo": (filename, data)}
    fields.update(extra or {})
    body, ctype = multipart(fields)
    return p.post("/my/changephoto", body, {"Content-Type": ctype},
                  as_user=account)


# ---- a mailbox user is sent to the master, with the way back ----
r = p.get("/my/changephoto", as_user=T1)
is_eq(r.status, 302, "mailbox user: redirected")
loc = r.header("Location") or ""
u = urlparse(loc)
ok(u.netloc == "127.0.0.1:%d" % m.port and
   u.path == "/ecp/PersonalSettings/EditAccount.aspx",
   "to the ECP photo URL Autodiscover published (%s)" % loc[:80])
q = parse_qs(u.query)
ok(q.get("chgPhoto") == ["1"], "with chgPhoto=1")
is_eq(q.get("returnUrl"), [p.url("/my/photochanged")],
      "carrying the way back to the portal")
r = p.get("/my", as_user=T1)
ok('href="/my/changephoto"' in r.text(), "/my links to Change photo")

# ---- a mailbox user's local upload is refused ----
before = p.owner_photo(T1).header("ETag")    # its sync over
img = open(make_image(os.path.join(work, "u.jpg"), "900x600"), "rb").read()
r = upload(T1, img)
ok(r.status == 409 and "managed by the mail server" in r.text(),
   "a mailbox user's upload is refused with a message")
is_eq(p.get(photo_path(T1, "L"), as_user=T1).header("ETag"), before,
      "and the photo stays unchanged")

# ---- a user without a mailbox uploads locally ----
r = p.get("/my/changephoto", as_user=T3)
ok(r.status == 200 and 'type="file"' in r.text() and
   'enctype="multipart/form-data"' in r.text() and
   '<label for="photo">' in r.text(), "test3 gets the upload form")
r = upload(T3, img)
ok(r.status == 200 and "stored" in r.text(), "test3 uploads (Basic)")
r = p.get(photo_path(T3, "L"), as_user=T3)
ok("placeholder" not in r.header("ETag"), "test3 now has a photo")
is_eq(identify(write(os.path.join(work, "l.jpg"), r.body))[:2], (300, 300),
      "rendered L 300x300 from a 900x600 upload (square crop)")
etag3 = r.header("ETag")
st = p.get("/my", as_user=T3).text()
ok("uploaded here" in st, "/my says the photo was uploaded here")

for what, data, code, needle in (
        ("a text file", b"hello, I am not an image\n", 422, "not an image"),
        ("a truncated JPEG", img[:len(img) // 3], 422, "truncated"),
        ("a JPEG repeating a scan 400 times",
         open(scan_bomb(os.path.join(work, "bomb.jpg")), "rb").read(), 422,
         "scans"),
        ("an empty file", b"", 400, "Choose a photo")):
    r = upload(T3, data)
    ok(r.status == code and needle in r.text(),
       "%s: %d with a message (%s)" % (what, r.status, r.text()[:70].strip()))
    is_eq(p.get(photo_path(T3, "L"), as_user=T3).header("ETag"), etag3,
          "%s: photo unchanged" % what)
body, ctype = multipart({"nophoto": "x"})
r = p.post("/my/changephoto", body, {"Content-Type": ctype}, as_user=T3)
is_eq(r.status, 400, "a form without the photo field: 400")
r = p.post("/my/changephoto", b"photo=abc",
           {"Content-Type": "application/x-www-form-urlencoded"},
           as_user=T3)
is_eq(r.status, 400, "a form that is not multipart: 400")

# ---- import off: everyone uploads locally ----
p.cmd("webapp", "set", "--photo-import", "off")
r = p.get("/my/changephoto", as_user=T1)
ok(r.status == 200 and 'type="file"' in r.text(),
   "import off: the mailbox user gets the local form")
r = upload(T1, img)
is_eq(r.status, 200, "import off: the mailbox user uploads locally")
st, out, err = p.cmd("user", "show", T1)
ok(re.search(r"master etag\s+(-|none)", out),
   "the photo held is no longer the master's: its ETag is forgotten "
   "(%s)" % re.findall(r"master etag.*", out))
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.header("ETag") != before, "import off: the local photo is served")
p.cmd("webapp", "set", "--photo-import", "on")

# ---- large bodies: only an upload, only once signed in ----
def head_only(path, length, auth=None):
    """Sends a POST head announcing `length` bytes with Expect:
    100-continue, no body; the server's first answer's status line."""
    raw = socket.create_connection(("127.0.0.1", p.port), timeout=20)
    s = ssl.create_default_context(cafile=p.ca).wrap_socket(
        raw, server_hostname="127.0.0.1")
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            "multipart/form-data; boundary=x\r\nContent-Length: %d\r\n"
            "Expect: 100-continue\r\n" % (path, length))
    if auth:
        head += "Authorization: %s\r\n" % auth
    s.sendall((head + "\r\n").encode())
    got = b""
    while b"\r\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    return got.split(b"\r\n")[0].decode()


big = 5 * 1024 * 1024
ok(" 401 " in head_only("/my/changephoto", big) + " ",
   "a 5 MB upload without credentials: 401 before any byte of it is "
   "read (no 100 Continue)")
ok(" 413 " in head_only("/login", big, p.auth(T3)["Authorization"]) + " ",
   "a 5 MB body to /login: 413, whoever sends it")
ok(" 100 " in head_only("/my/changephoto", big, p.auth(T3)["Authorization"])
   + " ", "signed in, the upload may send its body: 100 Continue")
ok(" 401 " in head_only("/my/changephoto", big,
                        "Basic " + "eDp5" * 4) + " ",
   "with wrong credentials: 401, the body never read")

# ---- coming back from the master refreshes at once ----
# Without the master's change notice (which would fetch it at once too).
p.cmd("webapp", "set", "--notifications", "off")
r = p.get(photo_path(T1, "L"), as_user=T1)   # within the window: no sync
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "n.png"), "400x400", extra=["-flip"]))
calls = len(re.findall(r"GetUserPhoto", m.server.logs()))
etag_before = p.get(photo_path(T1, "L"), as_user=T1).header("ETag")
is_eq(len(re.findall(r"GetUserPhoto", m.server.logs())), calls,
      "within the 6h window the portal does not ask the master")
# Another site's image asking for the way back forces nothing.
for site in ("cross-site", "same-site"):
    r = p.get("/my/photochanged", as_user=T1,
              headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors",
                       "Sec-Fetch-Dest": "image"})
    is_eq(r.status, 403, "the way back asked by an image (%s): refused" % site)
is_eq(len(re.findall(r"GetUserPhoto", m.server.logs())), calls,
      "  and the master was not asked")
ok(re.search(r"ev=auth\.csrf_refused method=GET .*path=/my/photochanged",
             p.server.logs()), "  logged as auth.csrf_refused")
r = p.get("/my/photochanged", as_user=T1,
          headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                   "Sec-Fetch-Dest": "document"})
ok(r.status == 303 and r.header("Location") == "/my?changed=1",
   "the way back (a navigation from the master's page) redirects to /my")
ok(len(re.findall(r"GetUserPhoto", m.server.logs())) > calls,
   "coming back fetched from the master at once")
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.header("ETag") != etag_before, "the new photo is served")
page = p.get("/my?changed=1", as_user=T1).text()
ok("Your photo was changed." in page, "/my confirms the change")
ok(re.search(r"userphoto\.aspx\?size=L&amp;accountname=contoso%5Ctest1"
             r"&amp;t=[0-9a-f]+", page),
   "/my's photo URL carries a tag, so browsers fetch the new one")
p.stop()
m.stop()
done()
