"""Where a browser goes after signing in, on both roles: the portal's
ReturnUrl is followed only when it is a path on the portal itself (no
"//" or "/\\" start, no whitespace or control character, raw or
percent-encoded); the master's change-photo page always returns to itself
and offers returnUrl as a "Back to" link only when it is a well-formed
https URL on a registered partner's origin."""
import html
import re
from urllib.parse import quote, urlencode, urlparse

from psync import done, is_eq, ok, request, wired

m, p = wired(import_on=False)
T1 = "contoso\\test1"

# Each of these, followed by a browser, leaves the origin (or is not a
# path a browser reads the same way everywhere).
NASTY = [
    "/\t/evil.example", "/%09/evil.example", "/%09%2f/evil.example",
    "/\r\n/evil.example", "/%0d%0aSet-Cookie:%20x=1", "/%0a/evil.example",
    "//evil.example", "///evil.example", "/\\evil.example",
    "/\\/evil.example", "/%5cevil.example", "/%2f/evil.example",
    "/%2F%2Fevil.example", "/ /evil.example", "\t//evil.example",
    "https://evil.example/", "https:evil.example", "http://evil.example",
    "javascript:alert(1)", "/a%zz", "/" + "a" * 3000, "",
]


def same_origin_path(loc):
    u = urlparse(loc or "")
    return (loc is not None and loc.startswith("/") and
            not loc.startswith("//") and not u.scheme and not u.netloc and
            not re.search(r"[\x00-\x20\x7f\\]", loc))


# ---- the portal: POST /login, then the Location ----
def cookies_of(r):
    out = {}
    for h in r.header_all("Set-Cookie"):
        name, _, value = h.split(";")[0].strip().partition("=")
        out[name] = value
    return out


def portal_login(return_url, query_return=None):
    path = "/login" + ("?ReturnUrl=" + quote(query_return, safe="")
                       if query_return is not None else "")
    r = p.get(path)
    csrf = cookies_of(r).get("ps_csrf")
    body = urlencode({"account": T1, "password": "pw-one", "csrf": csrf,
                      "ReturnUrl": return_url}).encode()
    return r, p.post("/login", body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "ps_csrf=%s" % csrf})


for good in ("/people", "/my?x=1#top", "/search?q=50%25off"):
    _, r = portal_login(good)
    ok(r.status == 303 and r.header("Location") == good,
       "portal: ReturnUrl %r is followed" % good)
for evil in NASTY:
    form, r = portal_login(evil, evil)
    ok(r.status == 303 and r.header("Location") == "/my",
       "portal: ReturnUrl %r falls back to /my (%r)" % (
           evil[:40], (r.header("Location") or "")[:60]))
    ok(same_origin_path(r.header("Location")),
       "portal: after %r the Location stays a path of ours" % evil[:40])
    ok('name="ReturnUrl" value="/my"' in form.text(),
       "portal: the form does not carry ReturnUrl %r" % evil[:40])

# A page asked for while signed out comes back to it, and only to it.
r = p.get("/people", {"Accept": "text/html"})
loc = r.header("Location") or ""
is_eq(loc, "/login?ReturnUrl=%2Fpeople",
      "portal: signed out, /people leads to the form with its way back")
_, r = portal_login("/people")
is_eq(r.header("Location"), "/people", "portal: ... and back after sign-in")

# ---- the master: the change-photo page's sign-in ----
PAGE = "/ecp/PersonalSettings/EditAccount.aspx"
PARTNER = p.url("")


def master_sign_in(return_url):
    """Signs test1 in on the page carrying returnUrl; returns (the answer
    to the sign-in POST, the page it leads to)."""
    query = "?chgPhoto=1&returnUrl=" + quote(return_url, safe="")
    r = request(m.host, m.port, "GET", PAGE + query, m.ca)
    csrf = cookies_of(r).get("ecp_csrf")
    action = None
    for a in re.findall(r'<form method="post" action="([^"]*)"', r.text()):
        if html.unescape(a).startswith("/ecp/login"):
            action = html.unescape(a)
    r = request(m.host, m.port, "POST", action, m.ca, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "ecp_csrf=%s" % csrf},
        urlencode({"csrf": csrf, "email": "test1@contoso.com",
                   "password": "pw-one"}))
    session = cookies_of(r).get("ecp_session")
    loc = r.header("Location")
    page = request(m.host, m.port, "GET", loc, m.ca, {
        "Cookie": "ecp_session=%s" % session}) if (
        session and same_origin_path(loc)) else None
    return r, page


r, page = master_sign_in(PARTNER + "/my/photochanged")
ok(r.status == 303 and same_origin_path(r.header("Location")) and
   r.header("Location").startswith(PAGE),
   "master: sign-in returns to the page itself")
ok(page and ('<a href="%s/my/photochanged">Back to' % PARTNER) in
   page.text(), "master: a partner's URL is offered as the way back")

# On the partner's own origin, but not a URL as RFC 3986 writes one.
MALFORMED = [PARTNER + s for s in (
    "/\"><b>x", "/<x>", "/a%zz", "/a%4", "/{x}", "/a|b", "/a^b", "/a`b",
    ":/x", "/\t/x", "\\@evil.example/")]
for evil in NASTY + MALFORMED:
    r, page = master_sign_in(evil)
    ok(r.status == 303 and same_origin_path(r.header("Location")) and
       r.header("Location").startswith(PAGE),
       "master: after sign-in with returnUrl %r the Location stays on "
       "the page (%r)" % (evil[:50], (r.header("Location") or "")[:60]))
    ok(page is not None and page.status == 200 and
       "Back to" not in page.text() and
       not re.search(r'<a [^>]*href', page.text()),
       "master: returnUrl %r is not offered as a link" % evil[:50])

done()
