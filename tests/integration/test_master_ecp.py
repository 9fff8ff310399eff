"""The master's change-photo page (the ECP "Outlook Web App photo dialog"
SharePoint sends mailbox users to), driven over HTTPS with a cookie jar:
form sign-in with a double-submit CSRF cookie, session cookies, upload to
a pending preview that the REST photo does not show, save, cancel,
remove, refused files, CSRF on every POST, per-mailbox sessions, and the
"Back to" link only for registered partners' origins."""
import base64
import hashlib
import html
import http.server
import json
import os
import re
import ssl
import struct
import subprocess
import threading
import zlib
from urllib.parse import quote, urlencode

from fakepeer import make_tls
from psync import (Master, basic, done, identify, is_eq, make_image, ok,
                   request, store_change, store_rows, tmpdir, write)

work = tmpdir("ecp")
PAGE = "/ecp/PersonalSettings/EditAccount.aspx"
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=%s"
SP = "00000003-0000-0ff1-ce00-000000000000"

# ---- a partner portal: its metadata document over HTTPS ----
ca, cert, key = make_tls(work, "portal")
der = ssl.PEM_cert_to_DER_cert(open(cert).read())


def sp_metadata(realm):
    return json.dumps({
        "issuer": "%s@%s" % (SP, realm), "realm": realm,
        "keys": [{"keyValue": {"type": "x509certificate",
                               "value": base64.b64encode(der).decode()},
                  "usage": "Signing"}],
        "name": SP, "serviceName": SP}).encode()


doc = sp_metadata("11111111-2222-4333-8444-555555555555")


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)

    def log_message(self, *a):
        pass


hs = http.server.HTTPServer(("127.0.0.1", 0), H)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
hs.socket = sctx.wrap_socket(hs.socket, server_side=True)
threading.Thread(target=hs.serve_forever, daemon=True).start()
PORTAL = "https://localhost:%d" % hs.server_address[1]

# ---- the master ----
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two", name="Test Two")
m.add_mailbox("nopw@contoso.com")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "t1.jpg"), "800x800"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "t2.jpg"), "700x700",
                 extra=["-negate"]))
m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
      PORTAL + "/_layouts/15/metadata/json/1", "--ca-file", ca)
m.cmd("partner", "add", "--name", "FromFile", "--metadata-file",
      write(os.path.join(work, "file.json"),
            sp_metadata("66666666-7777-4888-9999-000000000000")))
m.start()
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
RETURN = PORTAL + "/my/person.aspx?accountname=contoso%5Ctest1"
QUERY = "?rfr=olk&chgPhoto=1&exsvurl=1&realm=contoso.com&returnUrl=" + \
    quote(RETURN, safe="")


class Browser:
    """A cookie jar over psync.request: what a browser would keep."""

    def __init__(self):
        self.jar = {}

    def req(self, method, path, body=None, headers=None, cookies=None):
        h = dict(headers or {})
        jar = self.jar if cookies is None else cookies
        if jar:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in jar.items())
        r = request(m.host, m.port, method, path, m.ca, h, body)
        for sc in r.header_all("Set-Cookie"):
            name, _, rest = sc.partition("=")
            if "max-age=0" in sc.lower():
                self.jar.pop(name, None)
            else:
                self.jar[name] = rest.split(";")[0]
        return r

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, fields, **kw):
        return self.req("POST", path, urlencode(fields), {
            "Content-Type": "application/x-www-form-urlencoded"}, **kw)

    def upload(self, path, fields, files, files_first=False):
        b = "----psyncBoundary7MA4YWxkTrZu0gW"
        parts, file_parts = [], []
        for k, v in fields.items():
            parts.append(("--%s\r\nContent-Disposition: form-data; "
                          'name="%s"\r\n\r\n%s\r\n' % (b, k, v)).encode())
        for k, (fname, data) in files.items():
            file_parts.append(("--%s\r\nContent-Disposition: form-data; "
                               'name="%s"; filename="%s"\r\nContent-Type: '
                               "application/octet-stream\r\n\r\n" %
                               (b, k, fname)).encode() + data + b"\r\n")
        parts = file_parts + parts if files_first else parts + file_parts
        body = b"".join(parts) + ("--%s--\r\n" % b).encode()
        return self.req("POST", path, body, {
            "Content-Type": "multipart/form-data; boundary=" + b})

    def follow(self, r):
        return self.get(r.header("Location")) if r.status == 303 else r


def csrf_of(r):
    g = re.search(r'name="csrf" value="([0-9a-f]+)"', r.text())
    return g.group(1) if g else None


def action_of(r, path):
    """The action (unescaped) of the form posting to `path`."""
    for a in re.findall(r'<form method="post" action="([^"]*)"', r.text()):
        a = html.unescape(a)
        if a.split("?")[0] == path:
            return a
    return None


def rest(email="test1@contoso.com", size="HR648x648"):
    return m.get(REST % (email, size), T1)


def side_of(data, name):
    return identify(write(os.path.join(work, name), data))[:2]


def sign_in(b, email, password, query=QUERY):
    r = b.get(PAGE + query)
    return b.post(action_of(r, "/ecp/login"), {
        "csrf": csrf_of(r), "email": email, "password": password})


# ---- signed out: the sign-in form on the page ----
b1 = Browser()
r = b1.get(PAGE + QUERY)
is_eq(r.status, 200, "page: 200 with a sign-in form when signed out")
body = r.text()
ok('<label for="email">' in body and '<label for="password">' in body and
   'id="email"' in body and 'type="password"' in body,
   "sign-in form: labelled address and password fields")
login_action = action_of(r, "/ecp/login")
is_eq(login_action, "/ecp/login" + QUERY,
      "sign-in form posts to /ecp/login with all the page's parameters")
cc = [c for c in r.header_all("Set-Cookie") if c.startswith("ecp_csrf=")]
ok(cc and all(a in cc[0] for a in ("Path=/ecp", "HttpOnly", "Secure",
                                    "SameSite=Strict")),
   "a double-submit CSRF cookie, HttpOnly, Secure, SameSite=Strict")
is_eq(b1.jar.get("ecp_csrf"), csrf_of(r), "the form carries the cookie's token")
is_eq(r.header("Cache-Control"), "no-store", "pages are not cached")
ok("frame-ancestors 'none'" in (r.header("Content-Security-Policy") or ""),
   "pages have a Content-Security-Policy")
ok("<script" not in body, "no JavaScript")
r = b1.get("/ECP/personalsettings/EDITACCOUNT.aspx" + QUERY)
ok(r.status == 200 and 'name="password"' in r.text(),
   "the page path matches case-insensitively")
r = b1.get("/ecp/")
ok(r.status == 303 and r.header("Location").startswith(PAGE),
   "/ecp/ leads to the page")

# ---- sign-in refusals ----
token = csrf_of(b1.get(PAGE + QUERY))
r = b1.post(login_action, {"csrf": token, "email": "test1@contoso.com",
                           "password": "wrong"})
ok(r.status == 401 and 'role="alert"' in r.text() and "wrong" in r.text(),
   "wrong password: 401 and the reason in words (role=alert)")
ok("ecp_session" not in b1.jar, "wrong password: no session")
token = csrf_of(b1.get(PAGE + QUERY))
r = b1.post(login_action, {"csrf": "0" * 64, "email": "test1@contoso.com",
                           "password": "pw-one"})
ok(r.status == 400 and 'role="alert"' in r.text() and
   "ecp_session" not in b1.jar, "wrong CSRF token: refused, no session")
r = b1.post(login_action, {"email": "test1@contoso.com",
                           "password": "pw-one"})
ok(r.status == 400 and "ecp_session" not in b1.jar,
   "no CSRF token: refused")
r = b1.post(login_action, {"csrf": token, "email": "test1@contoso.com",
                           "password": "pw-one"}, cookies={})
ok(r.status == 400 and "ecp_session" not in b1.jar,
   "no CSRF cookie: refused")
r = sign_in(Browser(), "nopw@contoso.com", "")
ok(r.status == 400 and 'role="alert"' in r.text(),
   "an empty password is refused")
bx = Browser()
r = sign_in(bx, "nopw@contoso.com", "anything")
ok(r.status == 401 and "ecp_session" not in bx.jar,
   "a mailbox without a password cannot sign in")
r = sign_in(bx, "ghost@contoso.com", "anything")
ok(r.status == 401 and "ecp_session" not in bx.jar,
   "an unknown address cannot sign in")
r = sign_in(bx, "<script>@contoso.com", "x")
ok(r.status == 401 and "<script>" not in r.text(),
   "what was typed is escaped when shown again")

# ---- sign-in ----
r = sign_in(b1, "test1@contoso.com", "pw-one")
is_eq(r.status, 303, "sign-in: 303")
is_eq(r.header("Location"), PAGE + QUERY,
      "sign-in: back to the page with all its parameters")
sc = [c for c in r.header_all("Set-Cookie") if c.startswith("ecp_session=")]
attrs = [a.strip() for a in sc[0].split(";")] if sc else []
ok(sc and {"Path=/ecp", "HttpOnly", "Secure", "SameSite=Lax"} <=
   set(attrs), "session cookie: Path=/ecp; HttpOnly; Secure; SameSite=Lax"
   " (%s)" % sc)
cookie1 = b1.jar.get("ecp_session", "")
ok(re.fullmatch(r"[0-9a-f]{64}", cookie1), "session cookie: 256 random bits")
keys = [k for (k,) in store_rows(m.dir, "SELECT key FROM sessions")]
ok(cookie1 not in keys and hashlib.sha256(cookie1.encode()).hexdigest() in
   keys, "sessions are stored hashed, with an expiry")

# ---- the page, signed in ----
page = b1.get(PAGE + QUERY)
body = page.text()
is_eq(page.status, 200, "signed in: 200")
ok("Signed in as Test One" in body, "the page says who is signed in")
ok(re.search(r'<img src="/ecp/photo\.ashx\?kind=current&amp;size='
             r'HR240x240[^"]*"[^>]* alt="Your current photo"', body),
   "the current photo, with alt text")
ok('enctype="multipart/form-data"' in body and
   '<input type="file" id="photo" name="photo" accept="image/*"' in body and
   '<label for="photo">' in body and "Upload and preview" in body,
   "the upload form: labelled file field, image/* only")
csrf1 = csrf_of(page)
ok(csrf1 and csrf1 != b1.jar.get("ecp_csrf"), "the session's own CSRF token")
ok("Remove photo" in body and "Sign out" in body, "remove and sign out")
ok('<a href="%s">Back to localhost:%d</a>' % (html.escape(RETURN),
                                              hs.server_address[1]) in body,
   "returnUrl on a registered partner's origin is offered as a link")
upload_url = action_of(page, "/ecp/photo/upload")
is_eq(upload_url, "/ecp/photo/upload" + QUERY,
      "forms carry the page's parameters")

r = b1.get("/ecp/photo.ashx?kind=current&size=HR240x240")
ok(r.status == 200 and r.header("Content-Type") == "image/jpeg" and
   side_of(r.body, "cur.jpg") == (240, 240),
   "photo.ashx serves the current photo to the session")
is_eq(Browser().get("/ecp/photo.ashx?kind=current").status, 403,
      "photo.ashx without a session: 403")
is_eq(b1.get("/ecp/photo.ashx?kind=preview").status, 404,
      "photo.ashx: no preview yet")
is_eq(b1.get("/ecp/photo.ashx?kind=current&size=HR1x1").status, 400,
      "photo.ashx: an invalid size is refused")

r0 = rest()
etag0, photo0 = r0.header("ETag"), r0.body
ok(r0.status == 200 and etag0, "REST: the photo before any change")


def unchanged(what):
    r = rest()
    ok(r.status == 200 and r.header("ETag") == etag0 and r.body == photo0,
       what + ": the REST photo and its ETag are unchanged")


# ---- upload: a pending preview, rendered by the server ----
rot = os.path.join(work, "rot.jpg")
subprocess.run(["convert", "-size", "1200x800", "xc:blue", "-fill", "red",
                "-draw", "rectangle 0,0 599,799", rot], check=True)
subprocess.run(["exiftool", "-q", "-overwrite_original", "-Orientation=6",
                "-n", rot], check=True)
r = b1.upload(upload_url, {"csrf": csrf1},
              {"photo": ("rot.jpg", open(rot, "rb").read())})
is_eq(r.status, 303, "upload: 303")
ok("done=preview" in (r.header("Location") or "") and
   "returnUrl=" in r.header("Location"), "upload: back to the page")
page = b1.follow(r)
body = page.text()
ok('alt="Preview of your new photo"' in body and "not saved" in body,
   "the page shows the preview, marked as not saved")
ok(action_of(page, "/ecp/photo/save") and action_of(page, "/ecp/photo/cancel")
   and ">Save</button>" in body and ">Cancel</button>" in body,
   "Save and Cancel buttons")
ok('role="status"' in body, "the outcome is announced (role=status)")
r = b1.get("/ecp/photo.ashx?kind=preview&size=HR504x504")
prev = write(os.path.join(work, "prev.jpg"), r.body)
is_eq(identify(prev)[:2], (504, 504), "the preview is a square")


def pixel(path, x, y):
    out = subprocess.run(["convert", path, "-crop", "4x4+%d+%d" % (x, y),
                          "-resize", "1x1!", "-format",
                          "%[fx:int(255*r)] %[fx:int(255*g)] "
                          "%[fx:int(255*b)]", "info:"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(map(int, out.split()))


top, bottom = pixel(prev, 250, 100), pixel(prev, 250, 400)
ok(top[0] > 180 and top[2] < 90 and bottom[2] > 180 and bottom[0] < 90,
   "the preview is turned upright by its EXIF orientation")
unchanged("with a pending preview")
n = store_rows(m.dir, "SELECT count(*) FROM previews")[0][0]
is_eq(n, 1, "one pending preview, in its own table")

# ---- cancel ----
r = b1.post(action_of(page, "/ecp/photo/cancel"), {"csrf": csrf1})
ok(r.status == 303 and "done=cancelled" in r.header("Location"),
   "cancel: 303")
page = b1.follow(r)
ok("Preview of your new photo" not in page.text() and
   "discarded" in page.text(), "cancel: the preview is gone, and it says so")
ok('<a href="%s">' % html.escape(RETURN) in page.text(),
   "after cancel: the way back")
is_eq(b1.get("/ecp/photo.ashx?kind=preview").status, 404,
      "cancel: no preview to fetch")
unchanged("after cancel")

# ---- save ----
small = make_image(os.path.join(work, "small.png"), "500x300",
                   extra=["-negate"])
r = b1.upload(upload_url, {"csrf": csrf1},
              {"photo": ("small.png", open(small, "rb").read())})
is_eq(r.status, 303, "upload of a PNG: 303")
page = b1.follow(r)
unchanged("before save")
r = b1.post(action_of(page, "/ecp/photo/save"), {"csrf": csrf1})
ok(r.status == 303 and "done=saved" in r.header("Location"), "save: 303")
page = b1.follow(r)
ok("Your new photo is saved" in page.text() and
   '<a href="%s">' % html.escape(RETURN) in page.text(),
   "after save: said so, with the way back")
r1 = rest()
etag1 = r1.header("ETag")
ok(r1.status == 200 and etag1 and etag1 != etag0 and r1.body != photo0,
   "save: REST serves the new photo with a new ETag")
is_eq(side_of(r1.body, "new648.jpg"), (300, 300),
      "save: HR648x648 of a 500x300 source is 300x300 (never upscaled)")
is_eq(side_of(rest(size="HR240x240").body, "new240.jpg"), (240, 240),
      "save: HR240x240 is 240x240")
is_eq(side_of(rest(size="HR48x48").body, "new48.jpg"), (48, 48),
      "save: HR48x48 is 48x48")
is_eq(rest(size="HR96x96").header("ETag"), etag1,
      "save: all sizes changed together (one ETag)")
is_eq(store_rows(m.dir, "SELECT count(*) FROM previews")[0][0], 0,
      "save: the preview is deleted")
st_, out, err = m.cmd("photo", "show", "test1@contoso.com")
ok(etag1.strip('"') in out, "photo show agrees")
r = b1.post("/ecp/photo/save" + QUERY, {"csrf": csrf1})
ok(r.status == 409 and 'role="alert"' in r.text(),
   "saving again without a preview: refused in words")
etag0, photo0 = etag1, r1.body

# ---- refused files ----
jpeg = open(rot, "rb").read()


def png_bomb(w, h):
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    z = zlib.compressobj(9)
    row = b"\0" * (w + 1)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", data) + chunk(b"IEND", b""))


cases = [
    ("a text file", b"hello, not an image\n", 422, "not an image"),
    ("a truncated JPEG", jpeg[:len(jpeg) // 3], 422, "truncated or corrupt"),
    ("a decompression bomb", png_bomb(9000, 9000), 422, "pixels"),
    ("a file over 20 MiB", jpeg[:2] + os.urandom((20 << 20) + 1000), 413,
     "at most 20 MB"),
    ("no file", b"", 400, "Choose a photo"),
]
for what, data, status, needle in cases:
    r = b1.upload(upload_url, {"csrf": csrf1},
                  {"photo": ("" if not data else "f.bin", data)})
    alert = re.search(r'role="alert">([^<]*)<', r.text())
    alert = html.unescape(alert.group(1)) if alert else ""
    ok(r.status == status and needle in alert,
       "%s: %d with a message in words (%s)" % (what, r.status, alert[:90]))
    is_eq(b1.get("/ecp/photo.ashx?kind=preview").status, 404,
          what + ": no preview kept")
    unchanged(what)
r = b1.upload(upload_url, {"csrf": csrf1}, {})
ok(r.status == 400 and "Choose a photo" in r.text(),
   "a form without the file field: asked to choose one")
logs = m.server.logs()
ok(re.search(r"req=\w+ ev=ecp\.upload_refused email=test1@contoso\.com "
             r"status=422 reason=\"the file is not an image", logs),
   "refusals are logged with the request id and the reason")

# ---- CSRF on every POST ----
r = b1.upload(upload_url, {}, {"photo": ("s.png", open(small, "rb")
                                         .read())})
ok(r.status == 403 and 'role="alert"' in r.text(),
   "upload without the CSRF token: refused")
r = b1.upload(upload_url, {"csrf": "f" * 64},
              {"photo": ("s.png", open(small, "rb").read())})
is_eq(r.status, 403, "upload with a wrong CSRF token: refused")
r = b1.req("POST", upload_url, open(small, "rb").read(),
           {"Content-Type": "image/png"})
is_eq(r.status, 403, "upload that is not a form: refused")
# The token is looked for in the form's first 64 KiB only (on the loop):
# before a 100 kB file it is accepted (the file then is no image), after
# it the form is refused.
junk = {"photo": ("big.bin", os.urandom(100000))}
is_eq(b1.upload(upload_url, {"csrf": csrf1}, junk).status, 422,
      "upload whose token precedes a 100 kB file: checked, then rendered")
is_eq(b1.upload(upload_url, {"csrf": csrf1}, junk, files_first=True).status,
      403, "upload whose token follows a 100 kB file: refused")
is_eq(b1.get("/ecp/photo.ashx?kind=preview").status, 404,
      "refused uploads keep no preview")
r = b1.post("/ecp/photo/remove" + QUERY, {"confirm": "yes"})
is_eq(r.status, 403, "remove without the CSRF token: refused")
r = b1.post("/ecp/logout" + QUERY, {"csrf": "x"})
ok(r.status == 403 and "ecp_session" in b1.jar,
   "sign-out without the right token: refused")
unchanged("after the refused POSTs")

# ---- another mailbox's session ----
b2 = Browser()
r = sign_in(b2, "test2@contoso.com", "pw-two", query="?chgPhoto=1")
ok(r.status == 303 and b2.jar.get("ecp_session") != cookie1,
   "test2 signs in with a session of its own")
is_eq(r.header("Location"), PAGE + "?chgPhoto=1",
      "only the parameters that were there are kept")
page2 = b2.get(PAGE)
csrf2 = csrf_of(page2)
ok("Test Two" in page2.text() and csrf2 != csrf1, "test2's page")
# test1 has a pending preview; test2 cannot see, save or cancel it.
r = b1.upload(upload_url, {"csrf": csrf1},
              {"photo": ("rot.jpg", jpeg)})
is_eq(r.status, 303, "test1 uploads a new preview")
is_eq(b2.get("/ecp/photo.ashx?kind=preview").status, 404,
      "test2 does not see test1's preview")
r = b2.get("/ecp/photo.ashx?kind=current&size=HR648x648"
           "&email=test1@contoso.com")
is_eq(r.body, rest("test2@contoso.com").body,
      "photo.ashx ignores an email parameter: the session's own photo")
r = b2.post("/ecp/photo/save", {"csrf": csrf2,
                                "email": "test1@contoso.com"})
is_eq(r.status, 409, "test2's save (email=test1 in the form) has no preview")
r = b2.post("/ecp/photo/cancel", {"csrf": csrf2,
                                  "email": "test1@contoso.com"})
is_eq(b1.get("/ecp/photo.ashx?kind=preview").status, 200,
      "test2's cancel leaves test1's preview alone")
r = b1.post("/ecp/photo/save", {"csrf": csrf2})
is_eq(r.status, 403, "test2's CSRF token does not work in test1's session")
r = b2.post("/ecp/photo/remove", {"csrf": csrf2, "confirm": "yes",
                                  "email": "test1@contoso.com"})
is_eq(r.status, 303, "test2 removes a photo")
is_eq(rest("test2@contoso.com").status, 404, "it was test2's own")
unchanged("test2's actions")
r = b1.post(action_of(b1.get(PAGE + QUERY), "/ecp/photo/cancel"),
            {"csrf": csrf1})
is_eq(r.status, 303, "test1 cancels its preview")

# ---- an expired preview cannot be saved ----
r = b1.upload(upload_url, {"csrf": csrf1}, {"photo": ("rot.jpg", jpeg)})
store_change(m.dir, "UPDATE previews SET expires = 1")
page = b1.get(PAGE + QUERY)
ok("Preview of your new photo" not in page.text(),
   "an expired preview is not shown")
r = b1.post("/ecp/photo/save" + QUERY, {"csrf": csrf1})
ok(r.status == 409 and "expired" in r.text(), "nor saved")
unchanged("an expired preview")

# ---- remove ----
r = b1.post("/ecp/photo/remove" + QUERY, {"csrf": csrf1})
ok(r.status == 400 and 'role="alert"' in r.text(),
   "remove without the confirmation: refused in words")
unchanged("remove without confirmation")
r = b1.post(action_of(page, "/ecp/photo/remove"), {"csrf": csrf1,
                                                   "confirm": "yes"})
ok(r.status == 303 and "done=removed" in r.header("Location"),
   "remove: 303")
page = b1.follow(r)
ok("Your photo was removed" in page.text() and
   "You have no photo yet" in page.text() and
   "Remove photo" not in page.text(), "remove: the page says so")
ok('<a href="%s">' % html.escape(RETURN) in page.text(),
   "after remove: the way back")
is_eq(rest().status, 404, "remove: REST answers 404")
is_eq(b1.get("/ecp/photo.ashx?kind=current").status, 404,
      "remove: photo.ashx answers 404")

# ---- the way back: only to registered partners' origins ----
port = hs.server_address[1]
bad = [
    "https://evil.example/x",
    "javascript:alert(1)",
    "//evil.example/",
    "http://localhost:%d/my" % port,
    "https://localhost:%d@evil.example/" % port,
    "https://localhost:%d/" % (port + 1 if port < 65535 else port - 1),
    "https://127.0.0.1:%d/my" % port,
    "https://localhost:%d\\@evil.example/" % port,
    "/ecp/logout",
]
for url in bad:
    page = b1.get(PAGE + "?chgPhoto=1&returnUrl=" + quote(url, safe=""))
    ok(page.status == 200 and "Back to" not in page.text() and
       not re.search(r'<a [^>]*href', page.text()),
       "returnUrl %s: no link" % url)
ok(re.search(r"req=\w+ ev=ecp\.return_refused url=\S+ reason=",
             m.server.logs()), "refused returnUrls are logged")
page = b1.get(PAGE + "?returnUrl=" + quote(PORTAL + "/", safe=""))
ok('<a href="%s/">Back to' % PORTAL in page.text(),
   "the partner's origin itself is fine")
r = bx.get(PAGE + "?returnUrl=" + quote(RETURN, safe=""))
ok("Back to localhost" in r.text(),
   "the way back is offered on the sign-in form too")

# ---- sign-out, and password changes end sessions ----
r = b1.post(action_of(b1.get(PAGE + QUERY), "/ecp/logout"), {"csrf": csrf1})
ok(r.status == 303 and "ecp_session" not in b1.jar, "sign-out: cookie cleared")
r = b1.get(PAGE, cookies={"ecp_session": cookie1})
ok('name="password"' in r.text(), "the old session cookie no longer works")
r = b1.post("/ecp/photo/remove", {"csrf": csrf1, "confirm": "yes"},
            cookies={"ecp_session": cookie1})
ok(r.status == 401 and 'name="password"' in r.text(),
   "a POST with an ended session asks to sign in")
m.cmd("mailbox", "passwd", "test2@contoso.com", "--password-file",
      write(os.path.join(work, "pw2"), "pw-two-new\n"))
ok('name="password"' in b2.get(PAGE).text(),
   "a new password ends the mailbox's sessions")

# ---- logs ----
logs = m.server.logs()
for ev in ("ecp.signed_in", "ecp.preview", "ecp.saved", "ecp.cancelled",
           "ecp.removed", "ecp.upload_refused", "ecp.return_refused",
           "ecp.csrf_refused", "ecp.signed_out"):
    ok(re.search(r"req=[0-9a-f]{16} ev=%s " % re.escape(ev), logs),
       "logged with the request id: " + ev)
ok("pw-one" not in logs and "pw-two" not in logs, "no password in the log")
ok(cookie1 not in logs and csrf1 not in logs,
   "no session cookie or CSRF token in the log")
hs.shutdown()
m.stop()
is_eq(m.server.proc.returncode, 0, "the master stops cleanly")
done()
