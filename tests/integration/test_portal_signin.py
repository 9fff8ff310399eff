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

done()
