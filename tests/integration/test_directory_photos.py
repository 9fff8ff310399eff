"""The master's photos written to the directory: a real OpenLDAP slapd
(tests/slapd.py, which loads the project's thumbnailPhoto schema) on a
free loopback port, the mailboxes synced from it with OpenLDAP's names.

The settings are checked before they are stored. With photos on, serve
writes a photo set by the admin command to the mailbox's entry:
ldapsearch returns the exact bytes GetUserPhoto gives for 96 (as
thumbnailPhoto, 96 by 96, at most 10 KB) and 648 (as jpegPhoto), bound
for writing as the admin while the reading bind is anonymous (a 96 over
10 KB, encoded again to fit, is test_image's: a photo's 96 is far
smaller); a removal clears both.
With slapd stopped, a change waits in the outbox (the retry is logged,
the row keeps its error) and two changes of one mailbox stay one write,
written once slapd is back, with the newest photo. `directory publish`
writes everyone, a photo set while the writes were off included. A photo
saved on the change-photo page is written too."""
import os
import subprocess
import sys

from psync import (Master, WebSession, action_of, basic, csrf_of, done,
                   events_documented, identify, is_eq, make_image, ok,
                   store_rows, tmpdir, wait_for, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import slapd  # noqa: E402  (tests/slapd.py)

work = tmpdir("dirphotos")
ol = slapd.Slapd()
ol.add_users(5)
m = Master()
m.add_mailbox("reader@contoso.com", "pw-reader")
READER = {"Authorization": basic("reader@contoso.com", "pw-reader")}
admin_pw = write(os.path.join(work, "admin.pw"), ol.admin_password + "\n")
m.cmd("mailbox", "sync", "--ldap", ol.uri, "--base", ol.base,
      "--attributes", "openldap")


def photo(email, size):
    r = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR%dx%d" %
              (email, size, size), READER)
    return r.body if r.status == 200 else None


def side_of(data, name):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return identify(path)


def outbox():
    return store_rows(m.dir, "SELECT email, attempts, last_error FROM "
                      "directory_outbox ORDER BY email")


# ---- settings ----
SET = ["directory", "set", "--ldap", ol.uri, "--base", ol.base,
       "--attributes", "openldap"]
st, before, err = m.cmd("directory", "show")
for bad, why in ((["--photos", "maybe"], "--photos must be on or off"),
                 (["--photos", "on", "--photo-bind-dn", ol.admin_dn],
                  "go together"),
                 (["--photos", "on", "--photo-attributes", "photo"],
                  "--photo-attributes takes"),
                 (["--photos", "on", "--jpeg-photo-size", "100"],
                  "--jpeg-photo-size must be")):
    st, out, err = m.cmd(*(SET + bad), check=False)
    ok(st != 0 and why in err, "refused: %s (%s)" % (" ".join(bad),
                                                     err.strip()))
is_eq(m.cmd("directory", "show")[1], before, "and nothing was stored")
st, out, err = m.cmd("directory", "set", "--photos", "on", check=False)
ok(st != 0 and "no directory is set" in err, "photos on without a "
   "directory is refused")

# A photo set while the writes are off: queued for no one.
u4 = make_image(os.path.join(work, "u4.jpg"), "500x500")
m.cmd("photo", "set", "u00004@contoso.com", "--file", u4)
is_eq(outbox(), [], "writes off: a change queues nothing")

st, out, err = m.cmd(*(SET + ["--photos", "on", "--photo-bind-dn",
                              ol.admin_dn, "--photo-password-file",
                              admin_pw]))
ok("photos          written to the directory" in out and
   "thumbnailPhoto (96), jpegPhoto (648)" in out and
   "photo bind      %s" % ol.admin_dn in out and
   ol.admin_password not in out,
   "directory set --photos on: shown, the password never (%s)" % out)

# ---- written as it changes ----
m.start()
srv = m.server
big = make_image(os.path.join(work, "u1.jpg"), "800x800")
mark = len(srv.logs())
m.cmd("photo", "set", "u00001@contoso.com", "--file", big)
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"dn=\"?uid=u00001,ou=people,dc=contoso,dc=com\"? "
                r"photo=set", mark) is not None,
   "a photo set is written to the mailbox's entry")
e = ol.photo_attributes("u00001")
thumb, jpeg = e.get("thumbnailPhoto"), e.get("jpegPhoto")
is_eq(thumb, photo("u00001@contoso.com", 96), "thumbnailPhoto: the exact "
      "bytes of the 96 GetUserPhoto serves")
ok(thumb is not None and len(thumb) <= 10240 and
   side_of(thumb, "t1.jpg")[:2] == (96, 96),
   "96 by 96, at most 10 KB (%d bytes)" % len(thumb or b""))
is_eq(jpeg, photo("u00001@contoso.com", 648), "jpegPhoto: the exact bytes "
      "of the 648")
ok(jpeg is not None and side_of(jpeg, "j1.jpg")[:2] == (648, 648),
   "648 by 648")
is_eq(ol.photo_attributes("u00000"), {}, "another entry is left alone")

mark = len(srv.logs())
m.cmd("photo", "remove", "u00001@contoso.com")
ok(srv.wait_log(r"ev=directory\.photo_written email=u00001@contoso\.com "
                r"\S+ photo=cleared", mark) is not None, "a removal is "
   "written")
is_eq(ol.photo_attributes("u00001"), {}, "and clears both attributes")

# ---- the directory down ----
ol.halt()
u2 = make_image(os.path.join(work, "u2.jpg"), "300x300")
u3a = make_image(os.path.join(work, "u3a.jpg"), "400x400")
u3b = make_image(os.path.join(work, "u3b.jpg"), "450x450",
                 extra=["-negate"])
mark = len(srv.logs())
m.cmd("photo", "set", "u00002@contoso.com", "--file", u2)
ok(srv.wait_log(r"ev=directory\.photo_retry email=u00002@contoso\.com "
                r"attempt=1 wait_s=5 reason=", mark) is not None,
   "slapd stopped: the write is put off, and logged")
m.cmd("photo", "set", "u00003@contoso.com", "--file", u3a)
m.cmd("photo", "set", "u00003@contoso.com", "--file", u3b)
rows = outbox()
ok(len(rows) == 2 and rows[0][0] == "u00002@contoso.com" and
   rows[0][1] >= 1 and "connecting" in rows[0][2] and
   rows[1][0] == "u00003@contoso.com",
   "the outbox keeps them, one for each mailbox, with the last error "
   "(%r)" % (rows,))
ok(wait_for(lambda: "photosync_directory_photos_pending 2" in
            m.get("/metrics").text()),
   "the metrics say two writes wait")
mark = len(srv.logs())
ol.start()
ok(srv.wait_log(r"ev=directory\.photo_written email=u00002@contoso\.com ",
                mark) is not None and
   srv.wait_log(r"ev=directory\.photo_written email=u00003@contoso\.com ",
                mark) is not None,
   "slapd back: both are written")
is_eq(ol.photo_attributes("u00002").get("jpegPhoto"), photo("u00002@contoso.com", 648),
      "the first with its photo")
is_eq(ol.photo_attributes("u00003").get("jpegPhoto"), photo("u00003@contoso.com", 648),
      "the second with its newest")
import re  # noqa: E402
is_eq(len(re.findall(r"ev=directory\.photo_written email=u00003@",
                     srv.logs()[mark:])), 1,
      "two changes, one write")
is_eq(outbox(), [], "the outbox is empty")
is_eq(ol.photo_attributes("u00004"), {}, "the photo set while the writes were off is "
      "not there")
# ---- the change-photo page ----
m.cmd("mailbox", "passwd", "u00002@contoso.com", "--password-file",
      write(os.path.join(work, "u2.pw"), "pw-two\n"))
web = WebSession(m)
PAGE = "/ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1"
r = web.get(PAGE)
r = web.post(action_of(r, "/ecp/login"), {
    "csrf": csrf_of(r), "email": "u00002@contoso.com",
    "password": "pw-two"})
page = web.get(PAGE)
csrf = csrf_of(page)
new = make_image(os.path.join(work, "u2new.png"), "350x350",
                 extra=["-flop"])
r = web.upload(action_of(page, "/ecp/photo/upload"), {"csrf": csrf},
               {"photo": ("new.png", open(new, "rb").read())})
page = web.get(r.header("Location"))
mark = len(srv.logs())
r = web.post(action_of(page, "/ecp/photo/save"), {"csrf": csrf})
ok(r.status == 303 and
   srv.wait_log(r"ev=directory\.photo_written email=u00002@contoso\.com ",
                mark) is not None,
   "a photo saved on the change-photo page is written")
is_eq(ol.photo_attributes("u00002").get("jpegPhoto"), photo("u00002@contoso.com", 648),
      "with its bytes")

metrics = m.get("/metrics").body.decode()
ok("# TYPE photosync_directory_photos_pending gauge" in metrics and
   'photosync_directory_photo_writes_total{result="retried"}' in metrics,
   "the metrics have the outbox's size and the retries")
m.stop()
events_documented(srv.logs(), "the log of these writes")

# ---- publish ----
st, out, err = m.cmd("directory", "publish")
ok("published photos to %s: written 3, cleared 2, disabled 0, not in the "
   "directory 0, failed 0" % ol.uri in out, "directory publish writes "
   "every mailbox from the directory (%s)" % out.strip())
is_eq(ol.photo_attributes("u00004").get("thumbnailPhoto") is not None, True,
      "the photo set while the writes were off included")
is_eq(ol.photo_attributes("u00001"), {}, "a mailbox without a photo has none")

# Many entries: publish finds them in batches (one search of 100 ids),
# and every one is written.
ol.add_users(300, start=5)
m.cmd("mailbox", "sync", "--ldap", ol.uri, "--base", ol.base,
      "--attributes", "openldap")
many = os.path.join(work, "many")
os.mkdir(many)
one = open(make_image(os.path.join(work, "one.jpg"), "120x120"),
           "rb").read()
for i in range(5, 305):
    write(os.path.join(many, "u%05d@contoso.com.jpg" % i), one)
m.cmd("photo", "import", many)
st, out, err = m.cmd("directory", "publish")
ok("written 303, cleared 2, disabled 0, not in the directory 0, failed 0"
   in out, "publish over 305 entries writes every one (%s)" % out.strip())
p = subprocess.run(
    [slapd._program("ldapsearch"), "-x", "-LLL", "-H", ol.uri, "-b",
     ol.base, "(thumbnailPhoto=*)", "uid"], capture_output=True, text=True,
    timeout=60, check=True)
is_eq(len(re.findall(r"^uid: ", p.stdout, re.M)), 303,
      "and the directory has the 303 photos")
ol.ldapmodify("dn: uid=u00300,ou=people,%s\nchangetype: delete\n" % ol.base)
st, out, err = m.cmd("directory", "publish")
ok("written 302, cleared 2, disabled 0, not in the directory 1, failed 0"
   in out, "an entry gone is counted as such in its batch (%s)" %
   out.strip())
ol.halt()
st, out, err = m.cmd("directory", "publish", check=False)
ok(st != 0 and "connecting failed" in err, "with the directory down: a "
   "clear error (%s)" % err.strip())
ol.stop()

# ---- the schema as a cn=config entry ----
cnc = tmpdir("cnconfig")
os.mkdir(os.path.join(cnc, "slapd.d"))
conf = write(os.path.join(cnc, "slapd.conf"),
             "include /etc/ldap/schema/core.schema\n"
             "include /etc/ldap/schema/cosine.schema\n"
             "include /etc/ldap/schema/inetorgperson.schema\n"
             "database config\n")
subprocess.run([slapd._program("slaptest"), "-f", conf, "-F",
                os.path.join(cnc, "slapd.d")], capture_output=True,
               check=True, timeout=60)
ldif = os.path.join(os.path.dirname(slapd.THUMBNAIL_SCHEMA),
                    "thumbnailphoto.ldif")
p = subprocess.run([slapd._program("slapadd"), "-n0", "-F",
                    os.path.join(cnc, "slapd.d"), "-l", ldif],
                   capture_output=True, text=True, timeout=60)
config = subprocess.run([slapd._program("slapcat"), "-n0", "-F",
                         os.path.join(cnc, "slapd.d"), "-o",
                         "ldif-wrap=no"], capture_output=True, text=True,
                        timeout=60).stdout
ok(p.returncode == 0 and "( 2.16.840.1.113730.3.1.35 NAME 'thumbnailPhoto' "
   "DESC" in config, "data/ldap/thumbnailphoto.ldif is accepted into a "
   "cn=config (%s)" % p.stderr.strip())
done()
