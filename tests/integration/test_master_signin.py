"""Cross-site requests at the master's change-photo page: a POST that
another site's page sends (Origin or Sec-Fetch-Site say so) is refused
with 403 and `auth.csrf_refused`, even with the session cookie and its
right CSRF token, and changes nothing; an upload so sent is refused at the
body gate; the page's own forms and the Basic clients (EWS) go on."""
import html
import os
import re
from urllib.parse import urlencode

from psync import Master, basic, done, is_eq, make_image, ok, request, tmpdir

work = tmpdir("msignin")
PAGE = "/ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1"
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&size=" \
    "HR648x648"
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "t1.jpg"), "800x800"))
m.start()
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EVIL = {"Origin": "https://evil.example"}
MINE = {"Origin": "https://%s:%d" % (m.host, m.port),
        "Sec-Fetch-Site": "same-origin"}
jar = {}


def req(method, path, body=None, headers=None):
    h = dict(headers or {})
    if jar:
        h["Cookie"] = "; ".join("%s=%s" % kv for kv in jar.items())
    r = request(m.host, m.port, method, path, m.ca, h, body)
    for sc in r.header_all("Set-Cookie"):
        name, _, rest = sc.partition("=")
        if "max-age=0" in sc.lower():
            jar.pop(name, None)
        else:
            jar[name] = rest.split(";")[0]
    return r


def csrf_of(r):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', r.text()).group(1)


def action_of(r, path):
    for a in re.findall(r'<form method="post" action="([^"]*)"', r.text()):
        if html.unescape(a).split("?")[0] == path:
            return html.unescape(a)
    return None


def etag():
    return m.get(REST, T1).header("ETag")


r = req("GET", PAGE)
r = req("POST", action_of(r, "/ecp/login"), urlencode({
    "csrf": csrf_of(r), "email": "test1@contoso.com",
    "password": "pw-one"}), dict(FORM, **MINE))
ok(r.status == 303 and "ecp_session" in jar, "signed in with the form")
page = req("GET", PAGE)
token = csrf_of(page)
remove = action_of(page, "/ecp/photo/remove")
REMOVE = urlencode({"csrf": token, "confirm": "yes"})
before = etag()
ok(before and remove, "a photo, and the page's Remove form")

for what, extra in (("Origin of another site", EVIL),
                    ("Origin null", {"Origin": "null"}),
                    ("Sec-Fetch-Site cross-site",
                     {"Sec-Fetch-Site": "cross-site"})):
    log_before = len(m.server.logs())
    r = req("POST", remove, REMOVE, dict(FORM, **extra))
    is_eq(r.status, 403, "Remove from another site's page (%s), with the "
          "session and its token: 403" % what)
    is_eq(etag(), before, "... the photo is still there")
    ok(re.search(r"ev=auth\.csrf_refused method=session "
                 r"user=test1@contoso\.com path=/ecp/photo/remove",
                 m.server.logs()[log_before:]),
       "... logged as auth.csrf_refused")

# An upload over the small-body limit goes through the body gate first.
big = os.urandom(200 * 1024)
b = "----psyncBoundary"
body = ("--%s\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n%s"
        "\r\n--%s\r\nContent-Disposition: form-data; name=\"photo\"; "
        "filename=\"x.jpg\"\r\n\r\n" % (b, token, b)).encode() + big + \
    ("\r\n--%s--\r\n" % b).encode()
upload = action_of(page, "/ecp/photo/upload")
log_before = len(m.server.logs())
r = req("POST", upload, body, dict(EVIL, **{
    "Content-Type": "multipart/form-data; boundary=" + b}))
is_eq(r.status, 403, "a large upload from another site's page: 403")
ok("ev=auth.csrf_refused method=session" in m.server.logs()[log_before:] and
   "ev=ecp.preview" not in m.server.logs()[log_before:],
   "... refused at the body gate, logged, no preview kept")

r = req("POST", remove, REMOVE, dict(FORM, **MINE))
is_eq(r.status, 303, "Remove from the page itself: 303")
ok(m.get(REST, T1).status == 404, "... and the photo is gone")
is_eq(m.get("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com"
            "&size=HR96x96", dict(T1, **EVIL)).status, 404,
      "a Basic client's GET is no state change: answered as usual")

done()
