"""Avatars: /avatar/<hash> on the portal, in the Libravatar/Gravatar URL
scheme. MD5 and SHA-256 of the normalised address, sizes (default,
smallest, largest, never upscaled past the stored source, bad values),
the high-resolution source and the L fallback, ETag and 304, the render
cache, the defaults (404, mp, identicon, allowed and refused URLs,
forcedefault), the access setting (signed-in by default, anyone), and
junk paths."""
import hashlib
import os
import re

from psync import (done, identify, is_eq, make_image, ok, store_change,
                   tmpdir, wait_for, wired)

work = tmpdir("avatars")
T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"


def hashes(email):
    e = email.strip().lower().encode()
    return hashlib.md5(e).hexdigest(), hashlib.sha256(e).hexdigest()


def jpeg_side(body, name):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(body)
    w, h, fmt = identify(path)
    return (w, h, fmt)


def renders(p):
    return p.server.logs().count("ev=avatar.rendered")


def metric(p, kind):
    text = p.get("/metrics").text()
    g = re.search(r'photosync_avatars_served_total\{kind="%s"\} (\d+)' %
                  kind, text)
    return int(g.group(1)) if g else 0



m, p = wired()
# test3: a mailbox with a small (300x300) photo.
m.add_mailbox("test3@contoso.com", "pw-three", name="Test Three")
m.cmd("photo", "set", "test3@contoso.com", "--file",
      make_image(os.path.join(work, "t3.png"), "300x300"))
# The owners' L requests sync their photos (with the HR source).
for who in (T1, T3):
    r = p.owner_photo(who)
    ok(r.status == 200 and "placeholder" not in r.header("ETag"),
       "%s's photo synced" % who)

md5, sha = hashes("  Test1@Contoso.com ")
md5_3, _ = hashes("test3@contoso.com")
md5_none, sha_none = hashes("nobody@contoso.com")
md5_other, _ = hashes("someone.else@contoso.com")


def av(path, user=T2, headers=None):
    return p.get(path, headers=headers, as_user=user)


# ---- access: signed-in by default ----
r = p.get("/avatar/" + md5)
is_eq(r.status, 401, "signed-in default: no credentials -> 401")
ok(r.header("WWW-Authenticate") is not None, "with a Basic challenge")

# ---- the photo, by MD5 and by SHA-256 ----
r = av("/avatar/" + md5)
is_eq(r.status, 200, "MD5 of the trimmed, lower-cased address: 200")
is_eq(r.header("Content-Type"), "image/jpeg", "a JPEG")
is_eq(jpeg_side(r.body, "md5.jpg"), (80, 80, "JPEG"), "80x80 by default")
is_eq(r.header("Cache-Control"), "private, max-age=300",
      "signed-in: private, max-age=300")
etag80 = r.header("ETag")
ok(etag80 and etag80.endswith('-80"') and "placeholder" not in etag80,
   "ETag from the photo's ETag and the size")
first = r.body
r = av("/avatar/" + sha)
ok(r.status == 200 and r.body == first,
   "SHA-256 of the same address: the same avatar")
r = av("/avatar/%s.jpg" % md5.upper())
ok(r.status == 200 and r.body == first,
   "upper-case hex and a .jpg suffix are accepted")
r = av("/avatar/%s.png?s=80" % sha)
ok(r.status == 200 and r.body == first and
   r.header("Content-Type") == "image/jpeg",
   ".png suffix accepted (still a JPEG)")
log = p.server.logs()
ok(re.search(r"ev=avatar.rendered kind=photo account=\S+test1 size=80 "
             r"side=80 source=hr", log),
   "avatar.rendered logged, from the high-resolution source")
g = re.search(r"req=([0-9a-f]{16}) ev=avatar.rendered", log)
ok(g and re.search(r"req=%s ev=http.request" % g.group(1), log),
   "avatar.rendered carries the request id")

# ---- sizes ----
for s, want in (("1", 1), ("512", 512), ("200", 200)):
    r = av("/avatar/%s?s=%s" % (md5, s))
    is_eq(jpeg_side(r.body, "s%s.jpg" % s), (want, want, "JPEG"),
          "s=%s -> %dx%d" % (s, want, want))
r = av("/avatar/%s?size=64" % md5)
is_eq(jpeg_side(r.body, "size64.jpg"), (64, 64, "JPEG"), "size=64")
for bad in ("abc", "0", "-5", "1.5", "", "80px", "%20"):
    r = av("/avatar/%s?s=%s" % (md5, bad))
    ok(r.status == 200 and jpeg_side(r.body, "bad.jpg")[:2] == (80, 80),
       "s=%r falls back to 80" % bad)
r = av("/avatar/%s?s=4096" % md5)
is_eq(jpeg_side(r.body, "big.jpg")[:2], (512, 512),
      "s over 512 is the maximum, 512 (as Libravatar)")

# ---- never upscaled past the stored source ----
r = av("/avatar/%s?s=512" % md5_3)
is_eq(jpeg_side(r.body, "t3.jpg")[:2], (300, 300),
      "a 300x300 source: s=512 gives 300x300, not upscaled")
r = av("/avatar/%s?s=120" % md5_3)
is_eq(jpeg_side(r.body, "t3s.jpg")[:2], (120, 120), "and s=120 gives 120")

# ---- ETag, 304 ----
r = av("/avatar/" + md5, headers={"If-None-Match": etag80})
is_eq(r.status, 304, "If-None-Match with the ETag -> 304")
is_eq(r.header("ETag"), etag80, "the 304 carries the ETag")
r = av("/avatar/" + md5, headers={"If-None-Match": '"other-80"'})
is_eq(r.status, 200, "another ETag -> 200")
r = av("/avatar/%s?s=81" % md5, headers={"If-None-Match": etag80})
is_eq(r.status, 200, "another size has another ETag")

# ---- the cache: a second request costs no render ----
n, cached = renders(p), metric(p, "cached")
r = av("/avatar/%s?s=96" % md5)
ok(r.status == 200 and renders(p) == n + 1, "s=96: one render")
r2 = av("/avatar/%s?s=96" % md5)
ok(r2.status == 200 and r2.body == r.body and renders(p) == n + 1,
   "s=96 again: no second render (avatar.rendered not logged)")
is_eq(metric(p, "cached"), cached + 1,
      "photosync_avatars_served_total{kind=\"cached\"} counted it")
ok(metric(p, "photo") >= 1, "and kind=\"photo\" counts renders")

# ---- the L fallback for photos stored before the HR source ----
store_change(p.dir, "UPDATE thumbs SET hr = NULL WHERE account = ?", (T1,))
r = av("/avatar/%s?s=400" % md5)
is_eq(jpeg_side(r.body, "fromL.jpg")[:2], (300, 300),
      "no HR source: rendered from L (300), not upscaled to 400")
ok(re.search(r"ev=avatar.rendered kind=photo account=\S+test1 size=400 "
             r"side=300 source=l", p.server.logs()),
   "logged with source=l")

# ---- defaults for an unknown hash ----
r = av("/avatar/%s?d=404" % md5_none)
is_eq(r.status, 404, "unknown hash, d=404 -> 404")
r = av("/avatar/%s?default=404" % sha_none)
is_eq(r.status, 404, "default=404 (long name), SHA-256 -> 404")
r = av("/avatar/%s?d=mp&s=100" % md5_none)
ok(r.status == 200 and jpeg_side(r.body, "mp.jpg") == (100, 100, "JPEG"),
   "d=mp -> the placeholder JPEG at the size")
ok('placeholder' in (r.header("ETag") or ""), "with a placeholder ETag")
mp = r.body
r = av("/avatar/%s?d=mm&s=100" % md5_other)
ok(r.status == 200 and r.body == mp, "d=mm is the same placeholder")
r = av("/avatar/%s?s=100" % md5_none)
ok(r.status == 200 and r.body == mp, "no d= -> the placeholder")
r = av("/avatar/%s?d=identicon" % md5_none)
ok(r.status == 200 and jpeg_side(r.body, "id1.jpg") == (80, 80, "JPEG"),
   "d=identicon -> an 80x80 JPEG")
id1 = r.body
r = av("/avatar/%s?d=identicon" % md5_none)
ok(r.body == id1, "the same identicon for the same hash")
r = av("/avatar/%s?d=identicon" % md5_other)
ok(r.status == 200 and r.body != id1, "another hash, another identicon")
r = av("/avatar/%s?d=identicon&s=48" % md5_none)
is_eq(jpeg_side(r.body, "id48.jpg")[:2], (48, 48), "identicon at s=48")

# ---- forcedefault ----
r = av("/avatar/%s?f=y&d=404" % md5)
is_eq(r.status, 404, "f=y: the default (404) even with a photo")
r = av("/avatar/%s?forcedefault=y&d=identicon" % md5)
ok(r.status == 200 and "identicon" in r.header("ETag"),
   "forcedefault=y&d=identicon: the identicon")

# ---- URL defaults: only from the allow-list ----
r = av("/avatar/%s?d=https://allowed.example/x.png" % md5_none)
is_eq(r.status, 404, "a URL default without an allow-list: 404")
ok(r.header("Location") is None, "not redirected")
ok("ev=avatar.default_refused" in p.server.logs(),
   "avatar.default_refused logged")
p.cmd("webapp", "set", "--avatar-default-allow",
      "https://allowed.example/,https://cdn.example:8443/img/")
ok(wait_for(lambda: av("/avatar/%s?d=https%%3A%%2F%%2Fallowed.example%%2F"
                       "x.png" % md5_none).status == 302),
   "allow-list set: the redirect applies")
r = av("/avatar/%s?d=https%%3A%%2F%%2Fallowed.example%%2Fx.png&s=40" %
       md5_none)
is_eq(r.status, 302, "d=https://allowed.example/x.png -> 302")
is_eq(r.header("Location"), "https://allowed.example/x.png",
      "to exactly that URL")
r = av("/avatar/%s?d=https://cdn.example:8443/img/a.png" % md5_none)
is_eq((r.status, r.header("Location")),
      (302, "https://cdn.example:8443/img/a.png"),
      "a prefix with a port and a path")
r = av("/avatar/%s?d=HTTPS://Allowed.Example:443/x.png" % md5_none)
is_eq(r.status, 302, "host case and the default port do not matter")
r = av("/avatar/%s?d=https://allowed.example/x.png" % md5)
is_eq(r.status, 200, "a user with a photo gets it, not the URL")
refused = p.server.logs().count("ev=avatar.default_refused")
from urllib.parse import quote  # noqa: E402
for evil in ("https://evil.example/",
             "https://allowed.example.evil.example/x.png",
             "https://allowed.example@evil.example/x.png",
             "http://allowed.example/x.png",
             "//evil.example/x.png",
             "https://cdn.example/img/a.png",
             "https://cdn.example:8443/other/a.png",
             "https://cdn.example:8443/img/../other/a.png",
             "https://cdn.example:8443/img/%2e%2e/other/a.png",
             "https://allowed.example/x.png\r\nSet-Cookie: a=b",
             "https://allowed.example/x.png\\@evil.example"):
    r = av("/avatar/%s?d=%s" % (md5_none, quote(evil, safe="")))
    ok(r.status == 404 and r.header("Location") is None,
       "not redirected: %r" % evil)
is_eq(p.server.logs().count("ev=avatar.default_refused"), refused + 11,
      "each refusal logged")

# ---- method, junk paths ----
r = p.post("/avatar/" + md5, "x", as_user=T2)
is_eq(r.status, 405, "POST -> 405")
for junk in ("/avatar/../../etc/passwd", "/avatar/zz", "/avatar/" + "a" * 31,
             "/avatar/" + "a" * 33, "/avatar/" + md5 + "/x",
             "/avatar/" + md5 + ".gif", "/avatar/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
             "/avatar/", "/avatar/" + md5 + "%00"):
    r = av(junk)
    ok(r.status in (400, 404) and b"root:" not in r.body,
       "junk %s refused (%d)" % (junk, r.status))

# ---- anyone may fetch ----
p.cmd("webapp", "set", "--avatar-access", "anyone")
ok(wait_for(lambda: p.get("/avatar/" + md5).status == 200),
   "--avatar-access anyone: 200 without credentials")
r = p.get("/avatar/" + md5)
is_eq(r.header("Cache-Control"), "public, max-age=300",
      "anyone: public, max-age=300")
is_eq(r.body, first, "the same avatar")
r = p.get("/avatar/%s?d=identicon" % md5_none)
is_eq(r.header("Cache-Control"), "public, max-age=60",
      "a default: public, max-age=60")
r = p.get("/avatar/%s?d=404" % md5_none)
is_eq(r.status, 404, "anyone: d=404 still 404")
r = p.get("/my")
is_eq(r.status, 401, "other pages still need signing in")
p.cmd("webapp", "set", "--avatar-access", "signed-in")
ok(wait_for(lambda: p.get("/avatar/" + md5).status == 401),
   "back to signed-in: 401 again")

# ---- identicons are deterministic across renders (a fresh process) ----
p.stop()
p.start()
r = av("/avatar/%s?d=identicon" % md5_none)
ok(r.status == 200 and r.body == id1,
   "after a restart, the identicon is drawn again identically")
ok(renders(p) >= 1, "(it was rendered anew)")
r = av("/avatar/" + md5)
is_eq(r.header("ETag"), etag80, "the photo's ETag survives a restart")

p.stop()
m.stop()
done()
