"""Users and mailboxes from the organisation's directory: a real OpenLDAP
slapd (tests/slapd.py) on a free loopback port.

The portal: 5,000 people with Active Directory's attribute names; a dry
run writes nothing; the first sync adds them all, the second changes
nothing; then a changed displayName, a renamed sAMAccountName (the photo
and the sync state stay with the person), a changed mail, a deleted
entry (disabled: its photo is 404, as an unknown user's) and the entry
added again (restored, photo back). A directory that is down, a wrong
bind password, an entry without an address, an empty answer: a clear
error and nothing changed. A user added by hand is left alone.

The master: a smaller directory with OpenLDAP's names (uid, mail, cn,
entryUUID): added, a changed address keeps its photo, a deleted entry's
mailbox is not served, and is again when the entry comes back."""
import os
import re
import socket
import sys
import threading

from urllib.parse import urlencode

from psync import (PHOTOSYNC, Master, Portal, basic, done, is_eq,
                   make_image, node_copy, ok, photo_path, store_change,
                   store_rows, tmpdir, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import slapd  # noqa: E402  (tests/slapd.py)

PEOPLE = 5000
work = tmpdir("directory")


def counts(out):
    """The numbers of a sync's report, by name."""
    return {k: int(v) for k, v in re.findall(
        r"(added|updated|renamed|disabled|restored|unchanged) (\d+)", out)}


def want(**kw):
    c = dict(added=0, updated=0, renamed=0, disabled=0, restored=0,
             unchanged=0)
    c.update(kw)
    return c


def modify(d, *changes):
    d.ldapmodify("".join(changes))


def replace(d, uid, attr, value):
    return ("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: %s\n"
            "%s: %s\n\n" % (uid, d.base, attr, attr, value))


def delete(d, uid):
    return "dn: uid=%s,ou=people,%s\nchangetype: delete\n\n" % (uid, d.base)


# ---- the portal, Active Directory's names ----
ad = slapd.Slapd()
ad.add_users(PEOPLE)
p = Portal()
HAND = "contoso\\handmade"
p.add_user(HAND, "handmade@contoso.com", "pw-hand", name="By Hand")
admin_pw = write(os.path.join(work, "ldap.pw"), ad.admin_password + "\n")
wrong_pw = write(os.path.join(work, "wrong.pw"), "not-the-password\n")
SYNC = ["user", "sync", "--ldap", ad.uri, "--base", ad.base, "--bind-dn",
        ad.admin_dn, "--password-file", admin_pw]


def users():
    return store_rows(p.dir, "SELECT account, email, name, "
                      "coalesce(directory_id, ''), disabled FROM users "
                      "ORDER BY account")


def sync(*extra, check=True):
    return p.cmd(*(SYNC + list(extra)), check=check)


st, out, err = sync("--dry-run")
is_eq(counts(out), want(added=PEOPLE), "a dry run says it would add "
      "everyone")
is_eq(len(users()), 1, "a dry run writes nothing")


def on_terminal(*args):
    """Runs photosync with standard error on a terminal (a pty): what it
    wrote there."""
    import pty
    import subprocess
    main, sub = pty.openpty()
    try:
        proc = subprocess.Popen([PHOTOSYNC] + list(args), stdin=sub,
                                stdout=subprocess.DEVNULL, stderr=sub)
        os.close(sub)
        sub = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:         # EIO: the program closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=120)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(main)
        if sub >= 0:
            os.close(sub)


shown = on_terminal("portal", "user", "sync", "--dir", p.dir,
                    *(SYNC[2:] + ["--dry-run"]))
ok("directory: read %d entries" % PEOPLE in shown, "on a terminal, the "
   "entries read are shown as they come (%r)" % shown[-60:])

st, out, err = sync()
is_eq(counts(out), want(added=PEOPLE), "the first sync adds %d users" %
      PEOPLE)
rows = {r[0]: r for r in users()}
is_eq(len(rows), PEOPLE + 1, "every person is a user, and the hand-made "
      "one is still there")
u1 = rows.get("contoso\\u00001")
ok(u1 is not None and u1[1] == "u00001@contoso.com" and
   u1[2] == "User 1" and len(u1[3]) == 32 and u1[4] == 0,
   "a user is DOMAIN\\sAMAccountName with mail, displayName and the "
   "objectGUID (%r)" % (u1,))
is_eq(rows[HAND][3], "", "the hand-made user has no directory id")

st, out, err = sync()
is_eq(counts(out), want(unchanged=PEOPLE), "a second sync changes nothing")

# A photo and a sync state for u00001, as a sync from the master leaves
# them, so that the rename can be seen to keep them.
jpeg = open(make_image(os.path.join(work, "u1.jpg"), "96x96"), "rb").read()
store_change(p.dir, "INSERT INTO thumbs (webapp, account, source, etag, "
             "updated, s, m, l) VALUES (1, 'contoso\\u00001', 'master', "
             "'etag-u1', 1, ?, ?, ?)", (jpeg, jpeg, jpeg))
store_change(p.dir, "INSERT INTO sync_state (webapp, account, "
             "last_success, master_etag, has_mailbox) VALUES (1, "
             "'contoso\\u00001', 1, 'master-etag-u1', 1)")
p.start()
HAND_AUTH = {"Authorization": basic(HAND, "pw-hand")}


def photo(account):
    return p.get(photo_path(account, "L"), HAND_AUTH)


r = photo("contoso\\u00001")
ok(r.status == 200 and r.body == jpeg, "u00001's photo is served before "
   "the changes (%d)" % r.status)

modify(ad, replace(ad, "u00000", "displayName", "Renamed Zero"),
       replace(ad, "u00001", "sAMAccountName", "newlogin1"),
       replace(ad, "u00002", "mail", "second.address@contoso.com"),
       delete(ad, "u00003"))
st, out, err = sync()
is_eq(counts(out), want(updated=2, renamed=1, disabled=1,
                        unchanged=PEOPLE - 4),
      "a changed name and address are updates, a changed account a "
      "rename, a deleted entry disabled")
rows = {r[0]: r for r in users()}
is_eq(rows["contoso\\u00000"][2], "Renamed Zero", "the displayName is "
      "the user's new name")
ok("contoso\\u00001" not in rows and "contoso\\newlogin1" in rows and
   rows["contoso\\newlogin1"][3] == u1[3],
   "the renamed account is the same user (same directory id)")
is_eq(store_rows(p.dir, "SELECT account, etag FROM thumbs"),
      [("contoso\\newlogin1", "etag-u1")], "the photo moved with the "
      "account")
is_eq(store_rows(p.dir, "SELECT account, master_etag FROM sync_state"),
      [("contoso\\newlogin1", "master-etag-u1")], "and so did the sync "
      "state")
is_eq(rows["contoso\\u00002"][1], "second.address@contoso.com",
      "the changed mail is the user's address")
is_eq(rows["contoso\\u00003"][4], 1, "the deleted entry's user is kept, "
      "disabled")
r = photo("contoso\\newlogin1")
ok(r.status == 200 and r.body == jpeg, "the photo is served under the new "
   "account (%d)" % r.status)


def unknown(account, prefix):
    """Whether the portal answers for `account` as for an unknown user:
    the placeholder from userphoto.aspx, 404 for its library file."""
    r = photo(account)
    f = p.get("/User%%20Photos/Profile%%20Pictures/%s_LThumb.jpg" % prefix,
              HAND_AUTH)
    return (r.status == 200 and "placeholder" in (r.header("ETag") or "")
            and f.status == 404)


ok(unknown("contoso\\u00001", "contoso_u00001"), "the old account is "
   "unknown")
r = photo("second.address@contoso.com")
is_eq(r.status, 200, "the new address finds the user")
ok(unknown("contoso\\u00003", "contoso_u00003"), "a disabled user is "
   "unknown: the placeholder, and 404 for the library file")
ok(unknown("u00003@contoso.com", "contoso_u00003"), "by address too")

# Back in the directory: the user is restored, photo included.
store_change(p.dir, "INSERT INTO thumbs (webapp, account, source, etag, "
             "updated, s, m, l) VALUES (1, 'contoso\\u00003', 'portal', "
             "'etag-u3', 1, ?, ?, ?)", (jpeg, jpeg, jpeg))
ad.ldapmodify(slapd.user_ldif(ad.base, 3).replace(
    "dn: uid=u00003,ou=people,%s\n" % ad.base,
    "dn: uid=u00003,ou=people,%s\nchangetype: add\n" % ad.base))
st, out, err = sync()
is_eq(counts(out), want(restored=1, unchanged=PEOPLE - 1),
      "the entry added again is restored")
r = photo("contoso\\u00003")
f = p.get("/User%20Photos/Profile%20Pictures/contoso_u00003_LThumb.jpg",
          HAND_AUTH)
ok(r.status == 200 and r.body == jpeg and f.status == 200,
   "its photo is served again (%d, library %d)" % (r.status, f.status))

# The schedule: settings refused when wrong, then serve runs the sync.
SET = ["directory", "set", "--ldap", ad.uri, "--base", ad.base,
       "--bind-dn", ad.admin_dn, "--password-file", admin_pw]
for extra, why, needle in (
        (["--every", "5"], "a bare number", "has no unit"),
        (["--every", "30s"], "under a minute", "at least 1m"),
        (["--every", "1m", "--attributes", "x"], "wrong attributes",
         "--attributes must be"),
        (["--every", "1m", "--passwords", "maybe"], "passwords neither on "
         "nor off", "on or off"),
        (["--every", "1m", "--domain", "a_b"], "a domain with _",
         "cannot be the accounts' domain")):
    st, out, err = p.cmd(*(SET + extra), check=False)
    ok(st == 1 and needle in err, "directory set refuses %s (%s)" % (
        why, err.strip()))
st, out, err = p.cmd("directory", "set", "--filter", "(uid=*)",
                     check=False)
ok(st == 1 and "give --ldap and --base" in err, "directory options "
   "without --ldap are refused")
st, out, err = p.cmd("directory", "set", "--every", "1h", check=False)
ok(st == 1 and "no directory is set" in err, "a schedule needs a "
   "directory")
st, out, err = p.cmd("directory", "show")
ok("directory       none" in out, "nothing was stored")
modify(ad, replace(ad, "u00005", "displayName", "Scheduled Five"))
since = len(p.server.logs())
st, out, err = p.cmd(*(SET + ["--every", "1h"]))
ok("every           1h" in out and ad.admin_password not in out,
   "directory set stores the schedule and shows no password")
ev = p.server.wait_log(r"ev=directory\.sync records=users added=0 "
                       r"updated=1 renamed=0 disabled=0 restored=0 "
                       r"unchanged=%d " % (PEOPLE - 1), since)
ok(ev is not None, "serve ran the sync on its schedule and logged "
   "directory.sync with the counts")
is_eq(store_rows(p.dir, "SELECT name FROM users WHERE account = "
                 "'contoso\\u00005'"), [("Scheduled Five",)],
      "the scheduled sync wrote the change")
metrics = p.get("/metrics").text()
ok("photosync_directory_sync_last_success 1" in metrics and
   'photosync_directory_sync_last_records{change="unchanged"} %d' %
   (PEOPLE - 1) in metrics and
   "photosync_directory_sync_last_run_timestamp_seconds " in metrics,
   "/metrics has the last run's time, result and counts")

# A second node of the same store: the lease is the first one's for the
# period, so this node's schedule leaves the sync to it.
b = node_copy(p, "portal-b")
os.environ["PHOTOSYNC_DEBUG"] = "1"
try:
    b.start()
finally:
    del os.environ["PHOTOSYNC_DEBUG"]
ok(b.server.wait_log(r"ev=directory\.sync_elsewhere records=users") is
   not None, "a second node's schedule finds the first holding the lease")
ok("ev=directory.sync " not in b.server.logs(), "and does not run the "
   "sync itself")
b.stop()

# Another portal, whose directory refuses the bind: the scheduled sync
# fails, logs why, and changes nothing.
q = Portal(name="portal-wrong")
q.cmd("directory", "set", "--ldap", ad.uri, "--base", ad.base,
      "--bind-dn", ad.admin_dn, "--password-file", wrong_pw, "--every",
      "1m")
q.start()
ok(q.server.wait_log(r"ev=directory\.sync_failed records=users "
                     r"error=.*Invalid credentials") is not None,
   "a scheduled sync the directory refuses logs directory.sync_failed")
ok("photosync_directory_sync_last_success 0" in q.get("/metrics").text(),
   "and /metrics says it failed")
is_eq(store_rows(q.dir, "SELECT count(*) FROM users"), [(0,)],
      "it changed nothing")
q.stop()

# Passwords from the directory: a bind as the person, Basic and the form.
modify(ad, "dn: uid=u00010,ou=people,%s\nchangetype: modify\nadd: "
       "userPassword\nuserPassword: pw-ten\n\n" % ad.base,
       "dn: uid=u00011,ou=people,%s\nchangetype: modify\nadd: "
       "userPassword\nuserPassword: pw-eleven\n\n" % ad.base)
T10 = "contoso\\u00010"


def basic_my(account, password):
    return p.get("/my", {"Authorization": basic(account, password)})


is_eq(basic_my(T10, "pw-ten").status, 401, "with --passwords off, a "
      "directory user has no password here")
st, out, err = p.cmd("directory", "set", "--passwords", "on")
ok("passwords       from the directory" in out, "directory set "
   "--passwords on")
is_eq(basic_my(T10, "pw-ten").status, 200, "Basic: the directory's "
      "password signs in")
is_eq(basic_my("u00010@contoso.com", "pw-ten").status, 200, "... by "
      "address too")
is_eq(basic_my(T10, "pw-wrong").status, 401, "a wrong password: 401")
r = p.get("/login")
csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
r = p.post("/login", urlencode({"account": T10, "password": "pw-ten",
                                "csrf": csrf}).encode(),
           {"Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "ps_csrf=" + csrf})
ok(r.status == 303 and "ps_session=" in " ".join(
    r.header_all("Set-Cookie")), "the login form signs in with the "
   "directory's password (%d)" % r.status)
is_eq(photo("contoso\\handmade").status, 200, "a user added by hand "
      "still signs in with the local password")
is_eq(basic_my("contoso\\u00011", "pw-eleven").status, 200,
      "u00011 signs in")
r = p.get("/login")
csrf = re.search(r'name="csrf" value="([^"]+)"', r.text()).group(1)
r = p.post("/login", urlencode({"account": "contoso\\u00011", "password":
                                "pw-eleven", "csrf": csrf}).encode(),
           {"Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "ps_csrf=" + csrf})
session = re.search(r"ps_session=([0-9a-f]+)", " ".join(
    r.header_all("Set-Cookie")))
ok(r.status == 303 and session, "u00011 has a browser session")
modify(ad, delete(ad, "u00011"))
st, out, err = sync()
is_eq(counts(out), want(disabled=1, unchanged=PEOPLE - 1),
      "u00011 left the directory")
is_eq(basic_my("contoso\\u00011", "pw-eleven").status, 401,
      "a disabled user cannot sign in")
is_eq(store_rows(p.dir, "SELECT count(*) FROM sessions WHERE account = "
                 "'contoso\\u00011'"), [(0,)], "its sessions ended")
r = p.get("/my", {"Cookie": "ps_session=" + session.group(1)})
ok(r.status != 200, "its session cookie no longer signs it in (%d)" %
   r.status)

before = users()
# A wrong bind password, an entry without an address, an empty answer.
st, out, err = p.cmd(*(SYNC[:-1] + [wrong_pw]), check=False)
ok(st == 1 and "the bind failed: Invalid credentials" in err,
   "a wrong bind password is a clear error (%s)" % err.strip())
modify(ad, "dn: uid=u00004,ou=people,%s\nchangetype: modify\ndelete: "
       "mail\n\n" % ad.base)
st, out, err = sync("--dry-run")
is_eq(counts(out), want(disabled=1, unchanged=PEOPLE - 1),
      "by default the sync takes the people with an address: one that "
      "lost it would be disabled (a dry run)")
st, out, err = sync("--filter", "(&(objectClass=user)(!(objectClass="
                    "computer)))", check=False)
ok(st == 1 and "uid=u00004" in err and "has no mail address" in err,
   "an entry the filter takes without an address is a clear error "
   "naming it (%s)" % err.strip())
st, out, err = sync("--filter", "(uid=nobody)", check=False)
ok(st == 1 and "refusing to disable all %d users" % (PEOPLE - 1) in err,
   "an answer with no one in it disables no one (%s)" % err.strip())
# Something that is not a directory at all answers garbage.
junk = socket.socket()
junk.bind(("127.0.0.1", 0))
junk.listen(4)


def answer_junk():
    while True:
        try:
            c, _ = junk.accept()
        except OSError:
            return
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + os.urandom(64))
        except OSError:
            pass
        c.close()


threading.Thread(target=answer_junk, daemon=True).start()
st, out, err = p.cmd(*(["user", "sync", "--ldap", "ldap://127.0.0.1:%d" %
                        junk.getsockname()[1]] + SYNC[4:]), check=False)
ok(st == 1 and "the directory ldap://127.0.0.1:%d" %
   junk.getsockname()[1] in err and "failed" in err,
   "a server that answers garbage is a clear error (%s)" % err.strip())
junk.close()
st, out, err = sync("--attributes", "nonsense", check=False)
ok(st == 1 and "--attributes must be ad" in err, "a wrong --attributes "
   "is refused")
st, out, err = p.cmd("user", "sync", "--base", ad.base, check=False)
ok(st == 1 and "--ldap URL is required" in err, "--ldap is required")
ad.halt()
r = basic_my(T10, "not-remembered")
ok(r.status == 503 and r.header("Retry-After"), "the directory down: a "
   "sign-in is 503 with Retry-After, not a wrong password (%d)" %
   r.status)
ok(re.search(r"ev=auth\.busy method=basic user=\S*u00010 reason=\"the "
             r"password could not be checked: the directory ldap://",
             p.server.logs()), "... and auth.busy says why")
st, out, err = sync(check=False)
ok(st == 1 and "Can't contact LDAP server" in err, "a directory that is "
   "down is a clear error (%s)" % err.strip())
is_eq(users(), before, "none of these changed anything")
p.stop()
ad.stop()

# ---- the master, OpenLDAP's names ----
ol = slapd.Slapd()
ol.add_users(300)
m = Master()
m.add_mailbox("reader@contoso.com", "pw-reader")
MSYNC = ["mailbox", "sync", "--ldap", ol.uri, "--base", ol.base,
         "--attributes", "openldap"]


def msync(check=True):
    return m.cmd(*MSYNC, check=check)


def mailboxes():
    return {r[0]: r for r in store_rows(
        m.dir, "SELECT email, name, coalesce(directory_id, ''), disabled "
        "FROM mailboxes")}


st, out, err = msync()
is_eq(counts(out), want(added=300), "anonymously, with OpenLDAP's names: "
      "300 mailboxes added")
mb = mailboxes()
ok(mb["u00007@contoso.com"][1] == "User 7" and
   len(mb["u00007@contoso.com"][2]) == 36,
   "a mailbox's name is cn, its id the entryUUID (%r)" %
   (mb["u00007@contoso.com"],))
st, out, err = msync()
is_eq(counts(out), want(unchanged=300), "a second sync changes nothing")
m7 = make_image(os.path.join(work, "m7.jpg"), "400x400")
m.cmd("photo", "set", "u00007@contoso.com", "--file", m7)
m.cmd("photo", "set", "u00008@contoso.com", "--file", m7)
modify(ol, replace(ol, "u00007", "mail", "seven@contoso.com"),
       delete(ol, "u00008"))
st, out, err = msync()
is_eq(counts(out), want(renamed=1, disabled=1, unchanged=298),
      "a changed address and a deleted entry")
st, out, err = m.cmd("directory", "set", "--ldap", ol.uri, "--base",
                     ol.base, "--attributes", "openldap", "--every", "2h")
ok("every           2h" in out and "attributes      openldap" in out,
   "master directory set stores the settings")
m.start()
ok(m.server.wait_log(r"ev=directory\.sync records=mailboxes added=0 "
                     r"updated=0 renamed=0 disabled=0 restored=0 "
                     r"unchanged=300 ") is not None,
   "master serve runs the mailbox sync on its schedule")
READER = {"Authorization": basic("reader@contoso.com", "pw-reader")}


def master_photo(email):
    return m.get("/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR96x96"
                 % email, READER).status


is_eq(master_photo("seven@contoso.com"), 200, "the photo is served at the "
      "new address")
modify(ol, "dn: uid=u00009,ou=people,%s\nchangetype: modify\nadd: "
       "userPassword\nuserPassword: pw-nine\n\n" % ol.base)
m.cmd("directory", "set", "--passwords", "on")
NINE = "/ews/exchange.asmx/s/GetUserPhoto?email=seven@contoso.com&" \
    "size=HR96x96"
is_eq(m.get(NINE, {"Authorization": basic("u00009@contoso.com",
                                          "pw-nine")}).status, 200,
      "master: a mailbox signs in with the directory's password")
is_eq(m.get(NINE, {"Authorization": basic("u00009@contoso.com",
                                          "wrong")}).status, 401,
      "master: a wrong one is 401")
is_eq(master_photo("u00007@contoso.com"), 404, "not at the old one")
is_eq(master_photo("u00008@contoso.com"), 404, "a disabled mailbox is not "
      "served")
ol.ldapmodify(slapd.user_ldif(ol.base, 8).replace(
    "dn: uid=u00008,ou=people,%s\n" % ol.base,
    "dn: uid=u00008,ou=people,%s\nchangetype: add\n" % ol.base))
st, out, err = msync()
is_eq(counts(out), want(restored=1, unchanged=299), "the entry added "
      "again (a new entryUUID, the same address) is the mailbox again")
is_eq(master_photo("u00008@contoso.com"), 200, "and it is served again")
m.stop()
ol.stop()
done()
