"""HSTS on both roles: every answer over HTTPS, whatever its status and
whoever made it (a handler, a refusal of the server itself), carries
Strict-Transport-Security: max-age=31536000 (a year, no
includeSubDomains). Plain HTTP is never answered by either role (the
http unit test checks that a plain-HTTP server sends no such field)."""
import os

from psync import Master, Portal, basic, done, is_eq, make_image, ok, tmpdir

HSTS = "max-age=31536000"
work = tmpdir("hsts")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "300x300"))
m.start()
p = Portal()
p.add_user("contoso\\test1", "test1@contoso.com", "pw-one")
p.start()
PHOTO = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com" \
    "&size=HR96x96"
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}


def check(role, what, r, status):
    is_eq(r.status, status, "%s: %s answers %d" % (role, what, status))
    got = r.header_all("Strict-Transport-Security")
    is_eq(got, [HSTS], "%s: %s carries HSTS once" % (role, what))


check("master", "metadata", m.get("/autodiscover/metadata/json/1"), 200)
r = m.get(PHOTO, T1)
check("master", "a photo", r, 200)
check("master", "a photo not modified",
      m.get(PHOTO, dict(T1, **{"If-None-Match": r.header("ETag")})), 304)
check("master", "no credentials", m.get(PHOTO), 401)
check("master", "an unknown path", m.get("/nothing/here"), 404)
check("master", "a path the server refuses itself", m.get("/a%00b"), 400)
check("master", "the change-photo page's redirect", m.get("/ecp/"), 303)

check("portal", "metadata", p.get("/_layouts/15/metadata/json/1"), 200)
check("portal", "the sign-in form", p.get("/login"), 200)
check("portal", "a notice without a token",
      p.post("/_layouts/15/photosync/notify", "email=x%40y.z",
             {"Content-Type": "application/x-www-form-urlencoded"}), 401)
check("portal", "a path the server refuses itself", p.get("/a%00b"), 400)
done()
