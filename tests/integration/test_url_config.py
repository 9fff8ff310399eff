"""URLs given to the admin commands and to the avatars' redirects are read
by the one URL parser: what it refuses (characters a URL cannot have,
percent-encoded hosts, user information, bad ports, escapes that are
not) is refused at `portal init --url`, `issuer add --metadata-url`,
`webapp set --avatar-default-allow` and in an avatar's `d=` URL."""
import hashlib
import os
from urllib.parse import quote

from psync import Portal, done, is_eq, ok, run, tmpdir

BAD_ORIGINS = [
    "https://ex%61mple.com", 'https://a"b.example', "https://a<b>.example",
    "https://h\u00e9.example", "https://a{b}.example", "https://a|b.example",
    "https://host:", "https://host:0x50", "https://user@host",
    "https://[::1", "https://[host]", "https://a b.example",
    "https://my_portal.example",
]

for bad in BAD_ORIGINS:
    d = os.path.join(tmpdir("urlinit"), "state")
    rc, _, err = run("portal", "init", "--dir", d, "--url", bad,
                     check=False)
    ok(rc != 0 and err.strip() != "",
       "portal init --url %r is refused (%s)" % (bad, err.strip()[:70]))
for good in ("https://Portal.Example:8443", "https://[::1]:0",
             "https://portal-1.example/"):
    d = os.path.join(tmpdir("urlinit"), "state")
    rc, _, err = run("portal", "init", "--dir", d, "--url", good,
                     check=False)
    is_eq(rc, 0, "portal init --url %r is fine (%s)" % (good, err.strip()))

p = Portal()
for bad in [u + "/_layouts/15/metadata/json/1" for u in BAD_ORIGINS]:
    rc, _, err = p.cmd("issuer", "add", "--name", "X", "--metadata-url",
                       bad, check=False)
    ok(rc != 0 and ("cannot have" in err or bad.split("/_layouts")[0] in
                    err),
       "issuer add --metadata-url %r is refused (%s)" % (
           bad, err.strip()[:70]))

for bad in ("https://allowed.example/%zz/", "https://allowed.example/%4",
            "https://allowed.example/a/../b/", "https://a\"b.example/",
            "https://allowed.example/{x}/", "https://user@allowed.example/",
            "http://allowed.example/", "https://"):
    rc, _, err = p.cmd("webapp", "set", "--avatar-default-allow", bad,
                       check=False)
    ok(rc != 0 and "avatar-default-allow" in err,
       "--avatar-default-allow %r is refused (%s)" % (bad, err.strip()[:60]))

p.cmd("webapp", "set", "--avatar-access", "anyone",
      "--avatar-default-allow", "https://allowed.example/img/")
p.start()
nobody = hashlib.md5(b"nobody@contoso.com").hexdigest()


def avatar_default(url):
    return p.get("/avatar/%s?d=%s" % (nobody, quote(url, safe="")))


r = avatar_default("https://allowed.example/img/a.png")
is_eq((r.status, r.header("Location")),
      (302, "https://allowed.example/img/a.png"),
      "d= under the allowed prefix: redirected")
for evil in ("https://allowed.example/img/a%zz.png",
             "https://allowed.example/img/a%4",
             "https://allowed.example/img/%",
             "https://allowed.example/img/a{b}.png",
             "https://allowed.example/img/a|b.png",
             "https://allowed.example:/img/a.png",
             "https://allowed.example/img/%2e%2e/x.png"):
    r = avatar_default(evil)
    ok(r.status != 302 and r.header("Location") is None,
       "d=%r: not redirected (%d)" % (evil, r.status))

done()
