"""Signing in to the portal, from the account's side: a password change
ends the account's sessions (the form's cookie stops working at once,
on the running server), and no page of another site can change anything
with the browser's credentials: a cross-site POST is refused (403, logged,
nothing stored) also when the browser sends Basic credentials, while
scripts with Basic credentials keep working."""
import os
import re
import uuid
from urllib.parse import urlencode

from psync import (Portal, basic, done, is_eq, make_image, ok, photo_path,
                   tmpdir, write)

work = tmpdir("signin")
p = Portal()
T1, T2 = "contoso\\test1", "contoso\\test2"
p.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
p.add_user(T2, "test2@contoso.com", "pw-two", "Test Two")
p.start()
p.cmd("webapp", "set", "--photo-import", "off")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def cookies_of(r):
    out = {}
    for h in r.header_all("Set-Cookie"):
        name, _, value = h.partition(";")[0].strip().partition("=")
        out[name] = value
    return out


def sign_in(account, password):
    """The form's way in: the session cookie's value, or None."""
    r = p.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
    r = p.post("/login", urlencode({"account": account, "password":
                                    password, "csrf": csrf}).encode(),
               dict(FORM, Cookie="ps_csrf=" + cookies_of(r)["ps_csrf"]))
    return cookies_of(r).get("ps_session") if r.status == 303 else None


def signed_in(session):
    r = p.get("/my", {"Cookie": "ps_session=" + session})
    return r.status == 200


def set_password(account, password):
    pw = write(os.path.join(work, "pw"), password + "\n")
    p.cmd("user", "passwd", account, "--password-file", pw)
    os.unlink(pw)


# ---- the cookies, as both roles set them (auth/web.h) ----
r = p.get("/login")
csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
ok(re.fullmatch(r"[0-9a-f]{64}", csrf) and
   ("ps_csrf=%s; Path=/login; HttpOnly; Secure; SameSite=Strict" % csrf)
   in r.header_all("Set-Cookie"),
   "the login form's token: 256 random bits, in a Strict cookie of /login")
r = p.post("/login", urlencode({"account": T2, "password": "pw-two",
                                "csrf": csrf}).encode(),
           dict(FORM, Cookie="ps_csrf=" + csrf))
sc = r.header_all("Set-Cookie")
ok(r.status == 303 and any(re.fullmatch(
    r"ps_session=[0-9a-f]{64}; Path=/; HttpOnly; Secure; SameSite=Lax; "
    r"Max-Age=28800", c) for c in sc),
   "signed in: the session cookie (Lax, 8 hours)")
ok("ps_csrf=; Path=/login; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
   in sc, "... and the login form's token cookie is cleared, as on the "
   "master's page")

# ---- a password change ends the account's sessions ----
s1 = sign_in(T1, "pw-one")
s1b = sign_in(T1, "pw-one")
s2 = sign_in(T2, "pw-two")
ok(s1 and s1b and s2, "three sessions: two of test1, one of test2")
ok(signed_in(s1) and signed_in(s1b) and signed_in(s2),
   "each opens /my (and is now remembered by the running server)")
set_password(T1, "pw-one-new")
r = p.get("/my", {"Cookie": "ps_session=" + s1, "Accept": "text/html"})
ok(r.status == 302 and (r.header("Location") or "").startswith("/login"),
   "after `user passwd`, test1's session is over: /my sends to /login "
   "(%d)" % r.status)
ok(not signed_in(s1b), "... and so is test1's other session")
ok(signed_in(s2), "test2's session goes on")
is_eq(p.get("/my", {"Authorization": basic(T1, "pw-one")}).status, 401,
      "the old password no longer signs in with Basic")
s1 = sign_in(T1, "pw-one-new")
ok(s1 and signed_in(s1), "the new password signs in")
p.password[T1] = "pw-one-new"


# ---- no other site's page changes anything, Basic or not ----
def multipart(fields):
    boundary = "----photosync" + uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += ("--%s\r\n" % boundary).encode()
        if isinstance(value, bytes):
            out += ('Content-Disposition: form-data; name="%s"; filename='
                    '"me.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
                    % name).encode() + value + b"\r\n"
        else:
            out += ('Content-Disposition: form-data; name="%s"\r\n\r\n'
                    '%s\r\n' % (name, value)).encode()
    return (out + ("--%s--\r\n" % boundary).encode(),
            "multipart/form-data; boundary=" + boundary)


def etag(account):
    return p.get(photo_path(account, "L"), as_user=account).header("ETag")


jpeg = open(make_image(os.path.join(work, "me.jpg"), "400x400"), "rb").read()
body, ctype = multipart({"photo": jpeg})
before = etag(T2)
mine = "https://127.0.0.1:%d" % p.port
for what, extra in (
        ("Origin of another site", {"Origin": "https://evil.example"}),
        ("Origin null (a sandboxed or no-referrer page)", {"Origin": "null"}),
        ("Origin of our host over http", {"Origin": "http://127.0.0.1:%d"
                                          % p.port}),
        ("Origin of our host on another port",
         {"Origin": "https://127.0.0.1:%d" % (p.port + 1)}),
        ("Sec-Fetch-Site cross-site", {"Sec-Fetch-Site": "cross-site"}),
        ("Sec-Fetch-Site same-site (a sibling host)",
         {"Sec-Fetch-Site": "same-site", "Origin": mine}),
        ("our Origin but no Host", {"Origin": mine, "Host": ""})):
    log_before = len(p.server.logs())
    h = dict({"Content-Type": ctype}, **extra)
    r = p.post("/my/changephoto", body, h, as_user=T2)
    ok(r.status == 403 and "another site" in r.text(),
       "a cross-site upload with Basic, %s: 403 (%d)" % (what, r.status))
    is_eq(etag(T2), before, "... nothing stored")
    log = p.server.logs()[log_before:]
    ok(re.search(r"ev=auth\.csrf_refused method=basic user=\S*test2\S* "
                 r"path=/my/changephoto", log),
       "... logged as auth.csrf_refused")
# Over 64 KiB, an upload goes through the body gate, which signs it in
# before its body is read: the refusal comes from there.
big, big_type = multipart({"photo": jpeg + b"\0" * (200 * 1024)})
log_before = len(p.server.logs())
r = p.post("/my/changephoto", big, {"Content-Type": big_type,
                                    "Origin": "https://evil.example"},
           as_user=T2)
log = p.server.logs()[log_before:]
ok(r.status == 403 and "ev=auth.csrf_refused method=basic" in log,
   "a large cross-site upload (signed in at the body gate): 403, logged")
is_eq(etag(T2), before, "... nothing stored")

r = p.post("/my/changephoto", body, {"Content-Type": ctype}, as_user=T2)
ok(r.status == 200 and etag(T2) != before,
   "a script with Basic and no browser headers still uploads (%d)"
   % r.status)
before = etag(T2)
r = p.post("/my/changephoto", body, {"Content-Type": ctype, "Origin": mine,
                                     "Sec-Fetch-Site": "same-origin"},
           as_user=T2)
ok(r.status == 200 and etag(T2) != before,
   "a page of the portal itself, with Basic: uploads (%d)" % r.status)

# A session's POST from another site's page: refused before its token
# is even looked at (a SameSite=Lax cookie is not sent there anyway).
s2 = sign_in(T2, "pw-two")
page = p.get("/my", {"Cookie": "ps_session=" + s2}).text()
token = re.search(r'action="/logout".*?name="csrf" value="([^"]+)"', page,
                  re.S).group(1)
r = p.post("/logout", urlencode({"csrf": token}).encode(),
           dict(FORM, Cookie="ps_session=" + s2,
                Origin="https://evil.example"))
ok(r.status == 403 and signed_in(s2),
   "a cross-site sign-out with the session's token: 403, still signed in")
r = p.post("/logout", urlencode({"csrf": token}).encode(),
           dict(FORM, Cookie="ps_session=" + s2, Origin=mine))
ok(r.status == 303 and not signed_in(s2),
   "the portal's own sign-out form still signs out")

done()
