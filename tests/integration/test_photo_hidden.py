"""Hiding a photo at the master: `photo hide` / `photo unhide` and the
change-photo page's control. A hidden photo is, to everyone but its
owner, no photo on every path (GetUserPhoto REST and SOAP, Graph's
$value and metadata, the directory's attributes on a real slapd, both as
serve writes them and as `directory publish` does), while the owner
still gets it, marked with X-Photosync-Photo-Hidden and under a new
ETag; `photo show` and `mailbox list` say it is hidden. Showing it again
restores everything."""
import os
import re
import sys

from psync import (Master, WebSession, action_of, basic, csrf_of, done,
                   events_documented, is_eq, make_image, ok, store_rows,
                   tmpdir, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import slapd  # noqa: E402  (tests/slapd.py)

work = tmpdir("hidden")
ol = slapd.Slapd()
ol.add_users(3)
m = Master()
m.add_mailbox("reader@contoso.com", "pw-reader")
admin_pw = write(os.path.join(work, "admin.pw"), ol.admin_password + "\n")
m.cmd("mailbox", "sync", "--ldap", ol.uri, "--base", ol.base,
      "--attributes", "openldap")
m.cmd("directory", "set", "--ldap", ol.uri, "--base", ol.base,
      "--attributes", "openldap", "--photos", "on", "--photo-bind-dn",
      ol.admin_dn, "--photo-password-file", admin_pw)
OWNER = "u00001@contoso.com"
m.cmd("mailbox", "passwd", OWNER, "--password-file",
      write(os.path.join(work, "owner.pw"), "pw-owner\n"))
READER = {"Authorization": basic("reader@contoso.com", "pw-reader")}
ME = {"Authorization": basic(OWNER, "pw-owner")}
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR%s"
EWS = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="h'
       'ttp://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.m'
       'icrosoft.com/exchange/services/2006/types" xmlns:m="http://schemas.'
       'microsoft.com/exchange/services/2006/messages"><soap:Header><t:Requ'
       'estServerVersion Version="Exchange2013"/></soap:Header><soap:Body><'
       'm:GetUserPhoto><m:Email>%s</m:Email><m:SizeRequested>HR96x96</m:Si'
       'zeRequested></m:GetUserPhoto></soap:Body></soap:Envelope>')


def rest(who, size="96x96", extra=None):
    return m.get(REST % (OWNER, size), dict(who, **(extra or {})))


def answers(who):
    """What `who` gets of the owner's photo on each path: the statuses of
    REST, SOAP, Graph's $value and its metadata."""
    soap = m.post("/EWS/Exchange.asmx", EWS % OWNER, who)
    return (rest(who).status, soap.status,
            m.get("/v1.0/users/%s/photo/$value" % OWNER, who).status,
            m.get("/v1.0/users/%s/photo" % OWNER, who).status)


def no_image(r):
    return r.status == 404 and "ImageNotFound" in r.text()


def outbox():
    return store_rows(m.dir, "SELECT email FROM directory_outbox")


m.start()
srv = m.server
mark = len(srv.logs())
m.cmd("photo", "set", OWNER, "--file",
      make_image(os.path.join(work, "a.jpg"), "700x700"))
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=set", mark) is not None,
   "the photo is written to the directory")
shown = ol.photo_attributes("u00001")
ok("jpegPhoto" in shown and "thumbnailPhoto" in shown,
   "the entry has both attributes")
before = rest(READER)
etag = before.header("ETag")
is_eq(answers(READER), (200, 200, 200, 200), "shown: another mailbox gets "
      "the photo on REST, SOAP, Graph and its metadata")
is_eq(before.header("X-Photosync-Photo-Hidden"), None, "and no mark")
# The index holds the photo and its tag for the reader: the hide must
# reach it.
is_eq(rest(READER, extra={"If-None-Match": etag}).status, 304,
      "a conditional request: 304")

# ---- hidden by the admin ----
mark = len(srv.logs())
st, out, err = m.cmd("photo", "hide", OWNER)
ok("hid the photo of %s" % OWNER in out, "photo hide says so (%s)" %
   out.strip())
st, out, err = m.cmd("photo", "hide", OWNER)
ok("already hidden" in out, "again: it already was (%s)" % out.strip())
is_eq(answers(READER), (404, 404, 404, 404), "hidden: another mailbox "
      "gets no photo on REST, SOAP, Graph and its metadata")
r = rest(READER, extra={"If-None-Match": etag})
is_eq(r.status, 404, "a conditional request with the old tag: 404, no 304")
r = rest(READER)
is_eq((r.status, r.header("ETag"), r.header("X-Photosync-Photo-Hidden")),
      (404, None, None), "the same answer as no photo: no tag, no mark")
ok(no_image(m.get("/v1.0/users/%s/photo/$value" % OWNER, READER)) and
   no_image(m.get("/v1.0/users/%s/photos/96x96" % OWNER, READER)),
   "Graph: 404 ImageNotFound")
soap = m.post("/EWS/Exchange.asmx", EWS % OWNER, READER).text()
ok("<PictureData" not in soap or
   re.search(r"<PictureData\s*/>|<PictureData></PictureData>", soap),
   "SOAP: no PictureData")
is_eq(answers(ME), (200, 200, 200, 200), "the owner still gets it")
mine = rest(ME)
ok(mine.header("X-Photosync-Photo-Hidden") == "1" and
   mine.header("ETag") not in (None, etag),
   "marked hidden, with a new ETag (%s, was %s)" % (mine.header("ETag"),
                                                    etag))
is_eq(mine.body, before.body, "the same bytes")
r = rest(ME, extra={"If-None-Match": mine.header("ETag")})
is_eq((r.status, r.header("X-Photosync-Photo-Hidden")), (304, "1"),
      "the owner's conditional request: 304, still marked")
r = m.get("/v1.0/me/photo", ME)
ok(r.status == 200 and r.json()["@odata.mediaEtag"] != '"%s"' % etag,
   "Graph metadata for the owner: a new mediaEtag")
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=cleared", mark) is not None,
   "the directory write of a hidden photo clears it")
is_eq(ol.photo_attributes("u00001"), {}, "ldapsearch: neither attribute is there")
is_eq(outbox(), [], "the outbox is empty")
st, out, err = m.cmd("photo", "show", OWNER)
ok(re.search(r"^hidden +yes", out, re.M), "photo show says it is hidden")
st, out, err = m.cmd("mailbox", "list")
ok(re.search(r"^u00001@contoso\.com .* photo, hidden$", out, re.M) and
   re.search(r"^u00002@contoso\.com .* no photo$", out, re.M),
   "mailbox list says which is hidden")
st, out, err = m.cmd("directory", "publish")
ok("written 0, cleared 3" in out, "directory publish clears it too (%s)" %
   out.strip())
is_eq(ol.photo_attributes("u00001"), {}, "still nothing in the directory")
# A new photo of a hidden mailbox stays hidden.
m.cmd("photo", "set", OWNER, "--file",
      make_image(os.path.join(work, "b.jpg"), "500x500", extra=["-negate"]))
is_eq(answers(READER), (404, 404, 404, 404), "a photo set while hidden "
      "stays hidden")
is_eq(rest(ME).header("X-Photosync-Photo-Hidden"), "1", "the owner gets "
      "it, marked")

# ---- unhidden by the admin ----
mark = len(srv.logs())
st, out, err = m.cmd("photo", "unhide", OWNER)
ok("showed the photo of %s" % OWNER in out, "photo unhide says so")
is_eq(answers(READER), (200, 200, 200, 200), "shown again: the others get "
      "it everywhere")
is_eq(rest(READER).header("X-Photosync-Photo-Hidden"), None, "unmarked")
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=set", mark) is not None,
   "and it is written back to the directory")
is_eq(ol.photo_attributes("u00001").get("jpegPhoto"), rest(READER, "648x648").body,
      "jpegPhoto: the exact bytes again")
st, out, err = m.cmd("photo", "hide", "nobody@contoso.com", check=False)
ok(st != 0 and "nobody@contoso.com" in err, "an unknown mailbox: refused "
   "(%s)" % err.strip())

# ---- the owner, on the change-photo page ----
web = WebSession(m)
PAGE = "/ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1"
r = web.get(PAGE)
r = web.post(action_of(r, "/ecp/login"), {
    "csrf": csrf_of(r), "email": OWNER, "password": "pw-owner"})
page = web.get(PAGE)
ok("Your photo is shown to everyone." in page.text() and
   "Hide my photo from others" in page.text(), "the page says the photo "
   "is shown and offers to hide it")
action = action_of(page, "/ecp/photo/visibility")
r = web.post(action, {"csrf": "0" * 64, "hide": "yes"})
is_eq((r.status, answers(READER)[0]), (403, 200), "a forged form: 403, "
      "nothing changed")
mark = len(srv.logs())
r = web.post(action, {"csrf": csrf_of(page), "hide": "yes"})
is_eq(r.status, 303, "hidden with the page's form: 303")
page = web.follow(r)
ok("Your photo is now hidden" in page.text() and
   "Your photo is hidden:" in page.text() and
   "Show my photo to others" in page.text(), "the page says it is hidden")
is_eq(answers(READER), (404, 404, 404, 404), "others get no photo")
is_eq(answers(ME)[0], 200, "the owner still does")
ok(srv.wait_log(r"ev=photo\.hidden email=u00001@contoso\.com via=ecp",
                mark) and
   srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=cleared", mark) is not None,
   "logged, and the directory cleared")
r = web.post(action_of(page, "/ecp/photo/visibility"),
             {"csrf": csrf_of(page), "hide": "no"})
page = web.follow(r)
ok("shown to everyone again" in page.text(), "shown again from the page")
is_eq(answers(READER), (200, 200, 200, 200), "everyone gets it again")
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=set", mark) is not None and
   ol.photo_attributes("u00001").get("jpegPhoto") is not None,
   "and the directory has it again")
m.stop()
ok(re.search(r"ev=photo\.unhidden email=u00001@contoso\.com via=ecp",
             srv.logs()), "the unhide is logged")
events_documented(srv.logs(), "the log of hiding")
ol.stop()
done()
