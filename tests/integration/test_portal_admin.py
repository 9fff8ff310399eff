"""The portal's admin commands and web behaviour: init refusals, settings
(durations with units, sync trigger, thumbnail sizes, bad values), users,
issuers, a second web application with its own realm, listener and
settings, the form login (CSRF, cookies, ReturnUrl, logout), and settings
changed by `webapp set` reaching the running portal within a second."""
import atexit
import base64
import os
import re
from urllib.parse import quote, urlencode

from fakepeer import closed_port
from psync import (Portal, Server, done, identify, is_eq, make_image, ok,
                   photo_path, request, run, store_identity, tmpdir, wired,
                   write)

T1, T2 = "contoso\\test1", "contoso\\test2"
work = tmpdir("admin")
running = []        # whatever has a stop(), stopped at exit




@atexit.register
def _cleanup():
    for s in reversed(running):
        s.stop()



def portal_cmd(*args):
    return run("portal", *args, check=False)


def show(p, url=None):
    args = ["webapp", "show"] + (["--url", url] if url else [])
    return p.cmd(*args)[1]


def size_of(body):
    return identify(write(os.path.join(work, "x.jpg"), body))[:2]


# =====================================================================
# init
# =====================================================================
d = os.path.join(tmpdir("init"), "state")
rc, out, err = portal_cmd("init", "--dir", d, "--url", "https://127.0.0.1:0")
is_eq(rc, 0, "init: a fresh directory")
realm0 = re.search(r"realm\s+(\S+)", out).group(1)
store_before = store_identity(d)
rc, out, err = portal_cmd("init", "--dir", d, "--url",
                          "https://127.0.0.1:0")
ok(rc != 0 and "already" in err, "init twice is refused (%r)" % err.strip())
rc, out, _ = portal_cmd("webapp", "show", "--dir", d)
ok(realm0 in out and "photo-import            off" in out,
   "init twice: the first state is intact")
ok(store_identity(d) == store_before,
   "init twice: the store is the same one")
rc, out, _ = portal_cmd("webapp", "list", "--dir", d)
is_eq(len(out.strip().splitlines()), 1, "init twice: still one web "
      "application")

for bad, why in (("http://127.0.0.1:0", "not an https:// URL"),
                 ("nonsense", "not an https:// URL"),
                 ("https://", None),
                 ("https://127.0.0.1:99999", None),
                 ("https://127.0.0.1:0/sites/my", "without a path"),
                 ("https://127.0.0.1:0/sites?x=1", "without a path")):
    bd = os.path.join(tmpdir("badinit"), "state")
    rc, out, err = portal_cmd("init", "--dir", bd, "--url", bad)
    ok(rc != 0 and err.strip() != "" and (why is None or why in err),
       "init --url %s is refused (%s)" % (bad, err.strip()))
    left = os.listdir(bd) if os.path.isdir(bd) else []
    is_eq(left, [], "init --url %s leaves no state behind" % bad)
    rc, out, err = portal_cmd("init", "--dir", bd, "--url",
                              "https://127.0.0.1:0")
    is_eq(rc, 0, "after the refused init, a good one works in the same "
          "directory")

# =====================================================================
# webapp set: durations, bad values, show
# =====================================================================
p = Portal("admin-cli")
before = show(p)
ok("photo-expiration        6h" in before and
   "photo-error-expiration  1h" in before,
   "webapp show prints durations with units (6h, 1h)")
rc, out, err = p.cmd("webapp", "set", "--photo-expiration", "6",
                     check=False)
ok(rc != 0, "--photo-expiration 6 (a bare number) is refused")
ok(all(u in err for u in ("s (seconds)", "m (minutes)", "h (hours)",
                          "d (days)")) or
   all(u in err for u in ("seconds", "minutes", "hours", "days")),
   "the message names the units (%s)" % err.strip())
ok('"6"' in err, "the message quotes the refused value")
is_eq(err.count("--photo-expiration"), 1,
      "the message names the option once, not garbled (%r)" % err.strip())
is_eq(show(p), before, "nothing changed (webapp show is the same)")
rc, out, err = p.cmd("webapp", "set", "--photo-error-expiration", "1",
                     check=False)
ok(rc != 0 and "hours" in err and '"1"' in err and
   err.count("--photo-error-expiration") == 1,
   "--photo-error-expiration 1 refused, naming the units and the value "
   "(%s)" % err.strip())
p.cmd("webapp", "set", "--photo-expiration", "90m",
      "--photo-error-expiration", "2d")
s = show(p)
ok("photo-expiration        90m" in s and
   "photo-error-expiration  2d" in s, "90m and 2d are shown as given")
p.cmd("webapp", "set", "--photo-expiration", "6h",
      "--photo-error-expiration", "1h")
is_eq(show(p), before, "6h and 1h again: show is as at first")

bad_settings = [
    (["--photo-expiration", "6x"], "6x"),
    (["--photo-expiration", "-1h"], "-1h"),
    (["--photo-expiration", "h"], "h alone"),
    (["--photo-expiration", "6 h"], "6 h"),
    (["--photo-expiration", "99999999d"], "out of range"),
    (["--photo-import", "yes"], "import yes"),
    (["--sync-trigger", "small"], "sync-trigger small"),
    (["--thumbnail-sizes", "32,64"], "two sizes"),
    (["--thumbnail-sizes", "64,32,128"], "shrinking sizes"),
    (["--thumbnail-sizes", "8,16,32"], "too small"),
    (["--thumbnail-sizes", "32,64,5000"], "too large"),
    (["--thumbnail-sizes", "32,64,128,256"], "four sizes"),
    (["--thumbnail-sizes", "a,b,c"], "not numbers"),
    (["--autodiscover-domain", "mail.contoso.com:99999"], "bad port"),
    (["--autodiscover-domain", "mail.contoso.com/x"], "a path"),
    (["--ca-file", "/nonexistent/ca.pem"], "missing CA file"),
    (["--allow-oauth-over-http", "yes"], "http yes"),
    (["--photo-import", "on", "--sync-trigger", "bogus"],
     "a good and a bad setting together"),
]
for args, what in bad_settings:
    rc, out, err = p.cmd("webapp", "set", *args, check=False)
    ok(rc != 0 and err.strip() != "",
       "webapp set %s refused (%s): %s" % (" ".join(args), what,
                                            err.strip()[:120]))
    is_eq(show(p), before, "webapp set %s: nothing changed" % what)
rc, out, err = p.cmd("webapp", "set", check=False)
ok(rc == 2 and "at least one" in err, "webapp set without a setting: "
   "usage error")

# =====================================================================
# users and issuers
# =====================================================================
p.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
users = p.cmd("user", "list")[1]
for acct, email, what in (
        ("../etc/passwd", "x1@contoso.com", "path characters"),
        ("contoso\\..\\x", "x2@contoso.com", "dot-dot"),
        ("contoso/test9", "x3@contoso.com", "a slash"),
        ("nodomain", "x4@contoso.com", "no domain"),
        ("a\\b\\c", "x5@contoso.com", "two backslashes"),
        (".hidden\\u", "x6@contoso.com", "a leading dot"),
        ("contoso\\test9", "not-an-address", "a bad e-mail"),
        ("contoso\\test9", "a@", "an e-mail without a domain"),
        ("contoso\\test9", "a b@contoso.com", "an e-mail with a space"),
        ("contoso\\test9", "", "an empty e-mail")):
    rc, out, err = p.cmd("user", "add", acct, "--email", email,
                         check=False)
    ok(rc != 0 and err.strip() != "", "user add with %s refused (%s)" % (
        what, err.strip().splitlines()[0] if err.strip() else ""))
is_eq(p.cmd("user", "list")[1], users, "bad users: the list is unchanged")
for acct, email, what in ((T1, "other@contoso.com", "the same account"),
                          ("CONTOSO\\Test1", "o2@contoso.com",
                           "the same account in other case"),
                          ("contoso\\test7", "test1@contoso.com",
                           "the same e-mail address"),
                          ("contoso\\test8", "TEST1@contoso.com",
                           "the same address in other case")):
    rc, out, err = p.cmd("user", "add", acct, "--email", email,
                         check=False)
    ok(rc != 0 and "exists" in err, "duplicate user refused: %s" % what)
is_eq(p.cmd("user", "list")[1], users, "duplicates: the list is unchanged")
for text, what in (("\n", "an empty password file"),
                   (None, "a missing password file")):
    pw_path = os.path.join(work, "pw-bad")
    if text is None:
        if os.path.exists(pw_path):
            os.unlink(pw_path)
    else:
        write(pw_path, text)
    rc, out, err = p.cmd("user", "add", "contoso\\test9", "--email",
                         "t9@contoso.com", "--password-file", pw_path,
                         check=False)
    ok(rc != 0 and pw_path in err, "user add with %s refused, naming it (%s)"
       % (what, err.strip()))
    rc, out, err = p.cmd("user", "passwd", T1, "--password-file", pw_path,
                         check=False)
    ok(rc != 0 and pw_path in err, "user passwd with %s refused" % what)
is_eq(p.cmd("user", "list")[1], users,
      "bad password files: the list is unchanged")
# Library files are <account with \ as _>_{S,M,L}Thumb.jpg: two accounts
# that map to the same file name would share (and overwrite) one photo.
p.cmd("user", "add", "contoso\\a_b", "--email", "ab@contoso.com")
rc, out, err = p.cmd("user", "add", "contoso_a\\b", "--email",
                     "a-b@contoso.com", check=False)
ok(rc != 0, "user add refuses contoso_a\\b when contoso\\a_b exists (both "
   "would be contoso_a_b_*Thumb.jpg in the library)")

issuers = p.cmd("issuer", "list")[1]
cert_b64 = base64.b64encode(open(os.path.join(
    p.dir, "webapp-1-s2s-cert.pem"), "rb").read()).decode()
bad_md = {
    "not JSON": "{ this is not json",
    "JSON array": "[1, 2, 3]",
    "no keys": '{"issuer": "00000002-0000-0ff1-ce00-000000000000@'
               '9a1b2c3d-0000-0000-0000-000000000000"}',
    "a key that is not a certificate":
        '{"issuer": "00000002-0000-0ff1-ce00-000000000000@9a1b2c3d-0000-'
        '0000-0000-000000000000", "keys": [{"usage": "signing", '
        '"keyvalue": {"type": "x509Certificate", "value": "AAAA"}}]}',
    "a PEM where DER is expected":
        '{"issuer": "00000002-0000-0ff1-ce00-000000000000@9a1b2c3d-0000-'
        '0000-0000-000000000000", "keys": [{"usage": "signing", '
        '"keyvalue": {"type": "x509Certificate", "value": "%s"}}]}'
        % cert_b64,
    "no issuer": '{"keys": []}',
    "empty": "",
}
for what, text in bad_md.items():
    f = write(os.path.join(work, "md.json"), text)
    rc, out, err = p.cmd("issuer", "add", "--name", "Bad", "--metadata-file",
                         f, check=False)
    ok(rc != 0 and err.strip() != "",
       "issuer add with %s refused: %s" % (what, err.strip()[:150]))
    ok(err.count("not usable") <= 1,
       "issuer add with %s: the message is not garbled" % what)
rc, out, err = p.cmd("issuer", "add", "--name", "Bad", "--metadata-file",
                     "/nonexistent/md.json", check=False)
ok(rc != 0 and "/nonexistent/md.json" in err,
   "issuer add with a missing file refused, naming it")
rc, out, err = p.cmd("issuer", "add", "--name", "Bad", "--metadata-url",
                     "http://127.0.0.1:1/autodiscover/metadata/json/1",
                     check=False)
ok(rc != 0, "issuer add with an http:// metadata URL refused")
is_eq(p.cmd("issuer", "list")[1], issuers, "the issuer list is unchanged")

# =====================================================================
# a second web application
# =====================================================================


U1, U2 = "https://localhost:0", "https://127.0.0.1:0"
q = Portal("admin-two", host="localhost")
q.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
rc, out, err = q.cmd("webapp", "add", "--url", U1, check=False)
ok(rc != 0 and "exists" in err, "webapp add with the URL of an existing "
   "one is refused")
rc, out, err = q.cmd("webapp", "add", "--url", U2)
is_eq(rc, 0, "webapp add --url %s" % U2)
lst = q.cmd("webapp", "list")[1]
is_eq(len(lst.strip().splitlines()), 2, "webapp list shows two")
realm1 = re.search(r"realm\s+(\S+)", show(q, U1)).group(1)
realm2 = re.search(r"realm\s+(\S+)", show(q, U2)).group(1)
ok(realm1 != realm2, "each web application has its own realm")
rc, out, err = q.cmd("webapp", "show", check=False)
ok(rc != 0 and "--url" in err, "webapp show without --url asks which one "
   "when there are two")
closed = closed_port()
q.cmd("webapp", "set", "--url", U2, "--photo-import", "on",
      "--photo-expiration", "0m", "--photo-error-expiration", "0m",
      "--autodiscover-domain", "127.0.0.1:%d" % closed)
ok("photo-import            off" in show(q, U1) and
   "photo-import            on" in show(q, U2),
   "settings are per web application (import off in one, on in the "
   "other)")
ms = Server("portal", q.dir)
ok(re.fullmatch(r"\d+\n\d+\n", ms.port_text) is not None,
   "serve writes one port per line in --port-file (%r)" % ms.port_text)
is_eq(len(set(ms.ports)), 2, "two listeners on two ports")
ca1 = os.path.join(q.dir, "webapp-1-tls-cert.pem")
ca2 = os.path.join(q.dir, "webapp-2-tls-cert.pem")
hosts = (("localhost", ms.ports[0], ca1, realm1),
         ("127.0.0.1", ms.ports[1], ca2, realm2))
certs = []
for host, port, ca, realm in hosts:
    r = request(host, port, "GET", "/_layouts/15/metadata/json/1", ca)
    ok(r.status == 200 and r.json().get("issuer") ==
       "00000003-0000-0ff1-ce00-000000000000@%s" % realm,
       "%s:%d (port file order) serves its own web application's "
       "metadata, realm %s" % (host, port, realm))
    certs.append(r.json()["keys"][0]["keyValue"]["value"] if r.status == 200
                 else None)
ok(certs[0] and certs[1] and certs[0] != certs[1],
   "each web application signs with its own certificate")
auth = {"Authorization": "Basic " + base64.b64encode(b"contoso\\test1:pw-one")
        .decode()}
at = len(ms.logs())
for (host, port, ca, realm), what in zip(hosts, ("off", "on")):
    r = request(host, port, "GET", photo_path(T1, "L"), ca, auth)
    is_eq(r.status, 200, "owner's L on the import-%s web application" % what)
# The owner's wait for the sync may end before the sync does: wait for
# its outcome (the import-off request came first, so anything it started
# is in the log by then).
ms.wait_log(r"req=%s ev=sync\.(failed|done) " % re.escape(
    r.header("request-id") or "-"), at)
log = ms.logs()[at:]
starts = re.findall(r"req=(\S+) ev=sync\.start ", log)
is_eq(len(starts), 1, "only the import-on web application tries a sync")
ok(re.search(r"ev=sync\.failed .*step=autodiscover", log),
   "the import-on one used its own autodiscover domain (and failed: "
   "nobody listens there)")
ms.stop()

# =====================================================================
# the wired portal: sync trigger, sizes, settings at once, login
# =====================================================================
m, w = wired()
running += [m, w]


def wlog():
    return w.server.logs()


def syncs_for(rid):
    return len(re.findall(r"req=%s ev=sync\.start " % re.escape(rid),
                          wlog()))


def owner_syncs(size, what):
    """Whether test1's own request for `size` starts a sync."""
    r = w.get(photo_path(T1, size), as_user=T1)
    ok(r.status == 200, "%s: 200" % what)
    return syncs_for(r.header("request-id"))


# The owner waits for the sync a few seconds at most; a loaded machine
# may finish it later: the sync's outcome is the event waited for.
r = w.get(photo_path(T1, "L"), as_user=T1)
is_eq(r.status, 200, "wired: test1's first request")
ok(w.server.wait_log(r"req=%s ev=sync\.done .*outcome=updated" %
                     re.escape(r.header("request-id"))),
   "wired: test1's first request synced the photo")
r = w.get(photo_path(T1, "L"), as_user=T1)
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "wired: test1's photo synced")
# photo-expiration 0m: any last success is out of the window at once
w.cmd("webapp", "set", "--photo-expiration", "0m")
r = w.get(photo_path(T1, "M"), as_user=T1)
is_eq(syncs_for(r.header("request-id")), 0,
      "--sync-trigger large: the owner's M request does not sync")
w.cmd("webapp", "set", "--sync-trigger", "any")
ok(owner_syncs("M", "--sync-trigger any"), "--sync-trigger any: at once, "
   "the owner's M request syncs")
r = w.get(photo_path(T1, "S"), as_user=T2)
is_eq(syncs_for(r.header("request-id")), 0,
      "--sync-trigger any: another user's request still never syncs")
w.cmd("webapp", "set", "--sync-trigger", "large")
r = w.get(photo_path(T1, "S"), as_user=T1)
is_eq(syncs_for(r.header("request-id")), 0,
      "--sync-trigger large again: S does not sync")

# thumbnail sizes: a fresh sync renders them
w.cmd("webapp", "set", "--thumbnail-sizes", "32,64,128")
ok("thumbnail-sizes         32,64,128" in show(w),
   "webapp show prints the new sizes")
r = w.owner_photo(T2)
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "test2's first sync after the change")
got = {}
for sz in "SML":
    rr = w.get(photo_path(T2, sz), as_user=T2)
    got[sz] = size_of(rr.body) if rr.status == 200 else None
is_eq(got, {"S": (32, 32), "M": (64, 64), "L": (128, 128)},
      "a fresh sync renders 32, 64 and 128")
r = w.get(photo_path("contoso\\test3", "L"), as_user=T2)
ok("placeholder-L-128" in (r.header("ETag") or "") and
   size_of(r.body) == (128, 128),
   "the placeholder follows the new L size (%s, %s)" % (
       r.header("ETag"), size_of(r.body)))
w.cmd("webapp", "set", "--thumbnail-sizes", "48,72,300",
      "--photo-expiration", "6h")

# two accounts whose library file names collide (see the CLI check above):
# each one's PictureURL must show that user's own photo
m.add_mailbox("ab@contoso.com", "pw-ab")
m.add_mailbox("a-b@contoso.com", "pw-a-b")
m.cmd("photo", "set", "ab@contoso.com", "--file", make_image(
    os.path.join(work, "ab.jpg"), "400x400"))
m.cmd("photo", "set", "a-b@contoso.com", "--file", make_image(
    os.path.join(work, "a-b.jpg"), "400x400", extra=["-negate"]))
w.add_user("contoso\\a_b", "ab@contoso.com", "pw-ab")
pw_file = write(os.path.join(work, "pw2"), "pw-a-b\n")
rc, _, err = w.cmd("user", "add", "contoso_a\\b", "--email",
                   "a-b@contoso.com", "--password-file", pw_file,
                   check=False)
ok(rc != 0 and "contoso_a_b_LThumb.jpg" in err and "contoso\\a_b" in err,
   "the colliding account is refused, naming the file and the account it "
   "would share them with (%r)" % err.strip())
ok("contoso_a\\b" not in w.cmd("user", "list")[1],
   "the colliding account is not in the user list")
u = "contoso\\a_b"
r = w.owner_photo(u)
own = r.header("ETag")
if not own or "placeholder" in own:
    print("# %s: status %d; its lines in the log:" % (u, r.status))
    for line in re.findall(r"^.*a_b.*$", wlog(), re.M)[-12:]:
        print("#   " + line)
got = w.get("/User%20Photos/Profile%20Pictures/contoso_a_b_LThumb.jpg",
            as_user=T2).header("ETag")
ok(own and "placeholder" not in own and got == own,
   "contoso_a_b_LThumb.jpg shows contoso\\a_b's own photo (%s, own %s)" % (
       got, own))

# settings reach the running portal within a second: import off/on
w.cmd("webapp", "set", "--photo-import", "off", "--photo-expiration", "0m")
r = w.get(photo_path(T1, "L"), as_user=T1)
is_eq(syncs_for(r.header("request-id")), 0,
      "--photo-import off: at once, the owner's L request does not sync")
w.cmd("webapp", "set", "--photo-import", "on")
ok(owner_syncs("L", "--photo-import on"), "--photo-import on: at once, the "
   "owner's L syncs")
w.cmd("webapp", "set", "--photo-expiration", "6h")
r = w.get(photo_path(T1, "L"), as_user=T1)
is_eq(syncs_for(r.header("request-id")), 0,
      "--photo-expiration 6h: at once, no sync within the window")

# ---- the form login ----


def cookies_of(r):
    """{name: (value, attributes string)} of the Set-Cookie headers."""
    out = {}
    for h in r.header_all("Set-Cookie"):
        first, _, attrs = h.partition(";")
        name, _, value = first.strip().partition("=")
        out[name] = (value, attrs)
    return out


def login_form(return_url=None):
    path = "/login" + ("?ReturnUrl=" + quote(return_url, safe="")
                       if return_url else "")
    r = w.get(path)
    c = cookies_of(r)
    m_ = re.search(r'name="csrf" value="([^"]+)"', r.text())
    return r, c, (m_.group(1) if m_ else None)


def post_login(fields, csrf_cookie=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    if csrf_cookie:
        h["Cookie"] = "ps_csrf=" + csrf_cookie
    return w.post("/login", urlencode(fields).encode(), h)


r, c, csrf = login_form("/people")
is_eq(r.status, 200, "GET /login: the form")
ok("ps_csrf" in c and csrf and c["ps_csrf"][0] == csrf,
   "GET /login sets a CSRF cookie that matches the form's field")
attrs = c.get("ps_csrf", ("", ""))[1]
ok("HttpOnly" in attrs and "Secure" in attrs and "SameSite" in attrs,
   "the CSRF cookie is HttpOnly, Secure, SameSite (%s)" % attrs.strip())
ok('name="ReturnUrl" value="/people"' in r.text(),
   "the form carries the local ReturnUrl")
good = {"account": T1, "password": "pw-one", "csrf": csrf,
        "ReturnUrl": "/people"}
r = post_login(dict(good, csrf="0" * len(csrf)), csrf)
is_eq(r.status, 400, "POST /login with a wrong CSRF token: 400")
ok("ps_session" not in cookies_of(r), "... and no session")
r = post_login(good)
is_eq(r.status, 400, "POST /login without the CSRF cookie: 400")
ok("ps_session" not in cookies_of(r), "... and no session")
r = post_login(dict(good, password="wrong"), csrf)
is_eq(r.status, 401, "right CSRF, wrong password: 401")
ok("ps_session" not in cookies_of(r), "... and no session")
r = post_login(dict(good, account="contoso\\nobody"), csrf)
is_eq(r.status, 401, "unknown account: 401")
r = post_login(good, csrf)
is_eq(r.status, 303, "right CSRF and password: 303")
is_eq(r.header("Location"), "/people", "the local ReturnUrl is honoured")
sc = cookies_of(r).get("ps_session")
ok(sc is not None and len(sc[0]) >= 32, "a session cookie is set")
attrs = sc[1] if sc else ""
ok("HttpOnly" in attrs and "Secure" in attrs and
   re.search(r"SameSite=(Lax|Strict)", attrs),
   "the session cookie is HttpOnly, Secure, SameSite (%s)" % attrs.strip())
session = sc[0] if sc else ""
for evil in ("http://evil.example/steal", "https://evil.example",
             "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
    _, c2, csrf2 = login_form()
    r = post_login(dict(good, csrf=csrf2, ReturnUrl=evil), csrf2)
    ok(r.status == 303 and r.header("Location") == "/my",
       "ReturnUrl %s falls back to /my (%s)" % (evil, r.header("Location")))
r, _, _ = login_form("http://evil.example/")
ok('name="ReturnUrl" value="/my"' in r.text(),
   "the form does not carry a foreign ReturnUrl")

jar = {"Cookie": "ps_session=" + session}
r = w.get("/my", jar)
ok(r.status == 200 and "Test One" in r.text(),
   "the session cookie works for /my")
r = w.get(photo_path(T1, "L"), jar)
ok(r.status == 200 and r.header("Content-Type") == "image/jpeg",
   "the session cookie works for photos")
m_ = re.search(r'action="/logout".*?name="csrf" value="([^"]+)"',
               w.get("/my", jar).text(), re.S)
logout_csrf = m_.group(1) if m_ else None
ok(logout_csrf and logout_csrf != csrf, "/my has a sign-out form with its "
   "own CSRF token")
form = {"Content-Type": "application/x-www-form-urlencoded"}
r = w.post("/logout", b"", dict(jar, **form))
is_eq(r.status, 400, "POST /logout without the csrf field: 400")
r = w.post("/logout", b"csrf=" + b"0" * 64, dict(jar, **form))
is_eq(r.status, 400, "POST /logout with a wrong csrf: 400")
r = w.get("/my", jar)
is_eq(r.status, 200, "... the session is still there")
r = w.get("/logout", jar)
ok(r.status in (400, 405) and w.get("/my", jar).status == 200,
   "GET /logout does not sign out")
r = w.post("/logout", urlencode({"csrf": logout_csrf or ""}).encode(),
           dict(jar, **form))
is_eq(r.status, 303, "POST /logout with the csrf field: 303")
ok(r.header("Location") == "/login", "... to /login")
r = w.get("/my", dict(jar, Accept="text/html"))
ok(r.status == 302 and (r.header("Location") or "").startswith("/login"),
   "the session is gone: /my redirects to /login")
r = w.get(photo_path(T1, "L"), jar)
is_eq(r.status, 401, "the old session cookie no longer opens photos")

# a session belongs to its web application
q2 = Server("portal", q.dir)
ca1 = os.path.join(q.dir, "webapp-1-tls-cert.pem")
ca2 = os.path.join(q.dir, "webapp-2-tls-cert.pem")
r = request("localhost", q2.ports[0], "GET", "/login", ca1)
c = cookies_of(r)
csrf = c.get("ps_csrf", ("",))[0]
r = request("localhost", q2.ports[0], "POST", "/login", ca1, {
    "Content-Type": "application/x-www-form-urlencoded",
    "Cookie": "ps_csrf=" + csrf}, urlencode(
        {"account": T1, "password": "pw-one", "csrf": csrf}).encode())
s1 = cookies_of(r).get("ps_session", ("",))[0]
ok(r.status == 303 and s1, "signed in on the first web application")
r = request("localhost", q2.ports[0], "GET", "/my", ca1,
            {"Cookie": "ps_session=" + s1})
is_eq(r.status, 200, "its session works there")
r = request("127.0.0.1", q2.ports[1], "GET", photo_path(T1, "S"), ca2,
            {"Cookie": "ps_session=" + s1})
is_eq(r.status, 401, "but not on the other web application")
q2.stop()

logs = wlog()
ok("pw-one" not in logs and session not in logs,
   "no password or session cookie in the log")
done()
