"""photosync portal diagnose and photosync master diagnose.

A master and a portal that trust each other (psync.wired()) must pass
every step (exit 0). Then each broken set-up one can make must make the
right step FAIL, with a "fix:" line under it, exit non-zero, and change
nothing stored: the portal's `user show` and the rows of portal.db (sync
state, library photos, issuers, web applications, users) are compared
before and after. Broken on the portal side: a dead Autodiscover port, a
name that does not resolve, the wrong --ca-file, no issuer, a stale issuer
(registered from a file with another certificate and realm: the master's
401 reason is printed), the master no longer trusting the portal, a user
without a mailbox, a mailbox without a photo, photo import off. On the
master side: a partner whose metadata URL is down, whose certificate
changed (served by a small HTTPS server), the wrong CA, a partner
registered from a file, an unknown partner. Run with Debian's
/usr/bin/python3.
"""
import atexit
import base64
import json
import os
import re
import uuid

from fakepeer import (FakeMaster, bundle, capture_ad_template, closed_port,
                      exchange_metadata, make_tls, self_signed_der)
from psync import PHOTOSYNC, done, is_eq, ok, photo_path, run, store_rows, \
    tmpdir, wired, write

SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"
T1, T2, T3, T4 = ("contoso\\test1", "contoso\\test2", "contoso\\test3",
                  "contoso\\test4")
work = tmpdir("diagnose")
m, p = wired()
fakes = []



@atexit.register
def _cleanup():
    for f in fakes:
        f.stop()
    p.stop()
    m.stop()


LINE = re.compile(r"^(PASS|FAIL|SKIP)  (\S+)\s+(.*)$")


def parse(out):
    """{step: (verdict, text, fix or None)}, and the list in order."""
    steps, order = {}, []
    last = None
    for line in out.splitlines():
        mt = LINE.match(line)
        if mt:
            last = mt.group(2)
            steps[last] = [mt.group(1), mt.group(3), None]
            order.append(last)
        elif line.startswith("      fix: ") and last:
            steps[last][2] = line[len("      fix: "):]
    return steps, order


def pdiag(*args):
    return run("portal", "diagnose", "--dir", p.dir, *args, check=False)


def mdiag(*args):
    return run("master", "diagnose", "--dir", m.dir, *args, check=False)


def db_rows(state_dir, tables):
    """Every row of `tables` in the store (BLOBs as their length)."""
    snap = {}
    for t in tables:
        rows = store_rows(state_dir, "SELECT * FROM %s" % t)
        snap[t] = sorted(tuple(len(v) if isinstance(v, bytes) else v
                               for v in r) for r in rows)
    return snap


PORTAL_TABLES = ("sync_state", "thumbs", "issuers", "webapps", "users")
MASTER_TABLES = ("partners", "mailboxes", "photos")


def portal_snapshot(*accounts):
    shows = [p.cmd("user", "show", a)[1] for a in accounts]
    return shows, db_rows(p.dir, PORTAL_TABLES)


def expect_fail(what, step, args=(T1,), words=(), accounts=(T1,)):
    """Runs diagnose on a broken set-up: `step` must FAIL with a fix, the
    exit status must be non-zero, nothing stored may change."""
    before = portal_snapshot(*accounts)
    rc, out, err = pdiag(*args)
    after = portal_snapshot(*accounts)
    steps, order = parse(out)
    got = steps.get(step)
    ok(rc == 1, "%s: exit status 1 (got %d)" % (what, rc))
    if not ok(got is not None and got[0] == "FAIL",
              "%s: step %s fails" % (what, step)):
        print("# " + out.replace("\n", "\n# ") + err)
    ok(got is not None and got[2], "%s: a fix is given for %s" % (what, step))
    for w in words:
        if not ok(got is not None and w.lower() in (got[1] + " " +
                                                    (got[2] or "")).lower(),
                  "%s: %s says %r" % (what, step, w)):
            print("# %r" % (got,))
    is_eq(after, before, "%s: nothing stored changed" % what)
    ok("eyJ" not in out + err, "%s: no token printed" % what)
    return steps, order, out


# ---- a real sync first, so that there is state to keep ----
r = p.owner_photo(T1)
ok(r.status == 200, "test1's photo is served")
show = p.cmd("user", "show", T1)[1]
ok("from the master" in show, "test1's photo came from the master")

# ---- the good set-up: every step passes ----
before = portal_snapshot(T1)
rc, out, err = pdiag(T1)
after = portal_snapshot(T1)
steps, order = parse(out)
is_eq(rc, 0, "good set-up: exit status 0")
is_eq(order, ["store", "user", "settings", "dns", "tcp", "tls", "issuer",
              "metadata", "signing-cert", "token", "verdict", "autodiscover",
              "photo", "image"], "good set-up: every step, in order")
ok(re.match(r"(SQLite|PostgreSQL) at ", steps["store"][1]) and
   "password" not in steps["store"][1].lower(),
   "the first step says which store it opened: %r" % steps["store"][1])
ok(all(v[0] == "PASS" for v in steps.values()),
   "good set-up: every step passes")
if rc != 0:
    print("# " + out.replace("\n", "\n# ") + err)
ok("all 14 checks passed" in out, "good set-up: the summary says so")
ok("648x648" in steps.get("image", ["", ""])[1],
   "image step: the photo decodes at its size")
ok("image/jpeg" in steps.get("photo", ["", ""])[1],
   "photo step: content type and size")
ok("ExternalPhotosUrl" not in steps.get("autodiscover", ["", ""])[1],
   "autodiscover step: nothing missing")
ok("eyJ" not in out, "good set-up: no token printed")
is_eq(after, before, "good set-up: nothing stored changed")
reqid = re.search(r"request id ([0-9a-f]{16})", out)
ok(reqid and re.search(r"\bclient_req=" + reqid.group(1) + r"\b",
                        m.server.logs()),
   "the request id reaches the master's log")

for form in ("test1@contoso.com", "i:0#.w|contoso\\test1", "CONTOSO\\Test1"):
    rc, out, err = pdiag(form)
    is_eq(rc, 0, "good set-up by %s: exit 0" % form)
rc, out, err = pdiag("--url", "https://127.0.0.1:0", T1)
is_eq(rc, 0, "--url naming the web application (its stored URL)")
rc, out, err = pdiag("--url", "https://nowhere.invalid", T1)
is_eq(rc, 1, "--url naming no web application: exit 1")
rc, out, err = pdiag()
is_eq(rc, 2, "no account: usage error")
steps, order, out = expect_fail("unknown user", "user",
                                args=("contoso\\nobody",))

# ---- the Autodiscover host ----
AD = "127.0.0.1:%d" % m.port
p.cmd("webapp", "set", "--autodiscover-domain", "127.0.0.1:%d" %
      closed_port())
steps, order, out = expect_fail("dead Autodiscover port", "tcp",
                                words=("connect", "photosync master serve"))
is_eq(steps["dns"][0], "PASS", "dead port: dns still passes")
is_eq(steps["verdict"][0], "SKIP", "dead port: later steps are skipped")
is_eq(steps["photo"][0], "SKIP", "dead port: the photo step is skipped")

p.cmd("webapp", "set", "--autodiscover-domain", "nonexistent.invalid")
steps, order, out = expect_fail("a name that does not resolve", "dns",
                                words=("nonexistent.invalid",
                                       "--autodiscover-domain"))
is_eq(steps["tcp"][0], "SKIP", "no name: tcp skipped")
p.cmd("webapp", "set", "--autodiscover-domain", AD)

# ---- TLS with the wrong CA ----
other_ca = make_tls(work, "other")[0]
p.cmd("webapp", "set", "--ca-file", other_ca)
steps, order, out = expect_fail("wrong --ca-file", "tls",
                                words=("certificate", "--ca-file"))
p.cmd("webapp", "set", "--ca-file", m.ca)

# ---- the issuer ----
p.cmd("issuer", "remove", "--name", "Exchange")
steps, order, out = expect_fail("no issuer trusted", "issuer",
                                words=("issuer add",))
is_eq(steps["token"][0], "SKIP", "no issuer: the token step is skipped")

# Stale: the master's certificate (and realm) as stored no longer match
# what it publishes. Registered from a file, as after a master re-init.
stale_realm = str(uuid.uuid4())
md_file = write(os.path.join(work, "stale-exchange.json"),
                exchange_metadata(stale_realm, self_signed_der(),
                                  m.url("/autodiscover/metadata/json/1")),
                0o644)
p.cmd("issuer", "add", "--name", "Exchange", "--metadata-file", md_file)
steps, order, out = expect_fail("stale issuer metadata", "metadata",
                                words=("stale", "metadata-url"))
ok(steps.get("verdict", [""])[0] == "FAIL", "stale issuer: the master's "
   "verdict on the token fails")
ok("401" in steps["verdict"][1] and "realm" in steps["verdict"][1],
   "stale issuer: the verdict carries the master's 401 reason")
ok("issuer" in (steps["verdict"][2] or ""),
   "stale issuer: the verdict's fix is about the issuer")
p.cmd("issuer", "remove", "--name", "Exchange")
p.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
      m.url("/autodiscover/metadata/json/1"), "--ca-file", m.ca)
rc, out, err = pdiag(T1)
is_eq(rc, 0, "issuer restored: all pass again")

# ---- the master no longer trusts the portal ----
m.cmd("partner", "remove", "SharePoint")
steps, order, out = expect_fail("the master does not trust the portal",
                                "verdict",
                                words=("401", "partner add",
                                       "x5t names no partner"))
is_eq(steps["autodiscover"][0], "SKIP", "untrusted: autodiscover skipped")
m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
      p.url("/_layouts/15/metadata/json/1"), "--ca-file", p.ca)

# ---- mailboxes and photos ----
steps, order, out = expect_fail("user without a mailbox", "autodiscover",
                                args=(T3,), words=("no mailbox",
                                                   "InvalidUser",
                                                   "mailbox add"),
                                accounts=(T1, T3))
is_eq(steps["photo"][0], "SKIP", "no mailbox: the photo step is skipped")

m.add_mailbox("test4@contoso.com", "pw-four", name="Test Four")
p.add_user(T4, "test4@contoso.com", "pw-four", "Test Four")
steps, order, out = expect_fail("mailbox without a photo", "photo",
                                args=(T4,), words=("404", "no photo",
                                                   "photo set"),
                                accounts=(T1, T4))
is_eq(steps["image"][0], "SKIP", "no photo: the image step is skipped")

# ---- Autodiscover answers without some photo settings (a fake master) --
def drop_setting(xml, name):
    return re.sub(r"<UserSetting[^>]*>\s*<Name>%s</Name>.*?</UserSetting>"
                  % name, "", xml, flags=re.S)


template = capture_ad_template(m, "test1@contoso.com", "pw-one")
ad_tls = make_tls(work, "fakead")
fake_ad = FakeMaster(drop_setting(template, "ExternalPhotosUrl"),
                     tls=ad_tls[1:])
fakes.append(fake_ad)
p.cmd("webapp", "set", "--autodiscover-domain", fake_ad.hostport(),
      "--ca-file", bundle(os.path.join(work, "both-ca.pem"), m.ca,
                          ad_tls[0]))
rc, out, err = pdiag(T1)
steps, order = parse(out)
is_eq(rc, 0, "ExternalPhotosUrl missing, InternalPhotosUrl there: exit 0")
ok("missing: ExternalPhotosUrl" in steps.get("autodiscover", ["", ""])[1],
   "autodiscover step names the missing ExternalPhotosUrl")
fake_ad.ad_template = drop_setting(drop_setting(
    template, "ExternalPhotosUrl"), "InternalPhotosUrl")
steps, order, out = expect_fail("no photos URL from Autodiscover",
                                "autodiscover",
                                words=("ExternalPhotosUrl and "
                                       "InternalPhotosUrl missing",
                                       "PhotosUrl or EcpPhotoUrl is null"))
fake_ad.ad_template = drop_setting(drop_setting(
    template, "ExternalEcpPhotoUrl"), "InternalEcpPhotoUrl")
steps, order, out = expect_fail("no ECP photo URL from Autodiscover",
                                "autodiscover",
                                words=("ExternalEcpPhotoUrl and "
                                       "InternalEcpPhotoUrl missing",))
fake_ad.stop()
fakes.remove(fake_ad)
p.cmd("webapp", "set", "--autodiscover-domain", AD, "--ca-file", m.ca)

# ---- import off ----
p.cmd("webapp", "set", "--photo-import", "off")
steps, order, out = expect_fail("photo import off", "settings",
                                words=("import", "--photo-import on"))
p.cmd("webapp", "set", "--photo-import", "on")
rc, out, err = pdiag(T1)
is_eq(rc, 0, "everything restored: all pass again")


# ---- the master's side ----
def master_snapshot():
    return (m.cmd("partner", "list")[1],
            db_rows(m.dir, MASTER_TABLES))


def mexpect(what, args, step, words=(), rc_want=1, verdict="FAIL"):
    before = master_snapshot()
    rc, out, err = mdiag(*args)
    after = master_snapshot()
    steps, order = parse(out)
    got = steps.get(step)
    is_eq(rc, rc_want, "master: %s: exit status %d" % (what, rc_want))
    if not ok(got is not None and got[0] == verdict,
              "master: %s: step %s %s" % (what, step, verdict)):
        print("# " + out.replace("\n", "\n# ") + err)
    if verdict == "FAIL":
        ok(got is not None and got[2], "master: %s: a fix is given" % what)
    for w in words:
        ok(got is not None and w.lower() in (got[1] + " " +
                                             (got[2] or "")).lower(),
           "master: %s: %s says %r" % (what, step, w))
    is_eq(after, before, "master: %s: nothing stored changed" % what)
    return steps, out


steps, out = mexpect("good set-up", ("--ca-file", p.ca), "certificates",
                     rc_want=0, verdict="PASS")
ok(all(v[0] == "PASS" for v in steps.values()),
   "master: good set-up: every step passes")
steps, out = mexpect("good set-up, the CA it was added with",
                     ("--partner", "SharePoint"), "tls", rc_want=0,
                     verdict="PASS")
steps, out = mexpect("wrong --ca-file", ("--partner", "SharePoint",
                                         "--ca-file", other_ca), "tls",
                     words=("certificate", "--ca-file"))
steps, out = mexpect("unknown partner", ("--partner", "Nobody"), "partner",
                     words=("no such partner",))


def sharepoint_metadata(realm, der):
    return json.dumps({
        "issuer": "%s@%s" % (SHAREPOINT, realm),
        "keys": [{"keyValue": {"type": "x509certificate",
                               "value": base64.b64encode(der).decode()},
                  "usage": "Signing"}],
        "name": SHAREPOINT, "serviceName": SHAREPOINT, "realm": realm,
    }).encode()


# A portal served by a small HTTPS server, whose certificate then changes.
fake_tls = make_tls(work, "fakeportal")
realm2 = str(uuid.uuid4())
fake = FakeMaster("", tls=fake_tls[1:],
                  metadata=sharepoint_metadata(realm2, self_signed_der("a")))
fakes.append(fake)
fake_url = fake.base() + "/autodiscover/metadata/json/1"
m.cmd("partner", "add", "--name", "Other", "--metadata-url", fake_url,
      "--ca-file", fake_tls[0])
steps, out = mexpect("second partner, unchanged", ("--partner", "Other"),
                     "certificates", rc_want=0, verdict="PASS")
fake.metadata = sharepoint_metadata(realm2, self_signed_der("b"))
steps, out = mexpect("partner certificate changed", ("--partner", "Other"),
                     "certificates", words=("changed",
                                            "partner refresh"))
before = master_snapshot()
rc, out, err = mdiag()
is_eq(rc, 1, "master: all partners, one changed: exit 1")
ok("partner SharePoint" in out and "partner Other" in out,
   "master: without --partner every partner is checked")
ok(re.search(r"checks failed: .*Other/certificates", out) and
   "SharePoint/" not in out.splitlines()[-1],
   "master: the summary names the partner and step that failed")
is_eq(master_snapshot(), before, "master: all partners: nothing changed")
fake.metadata = sharepoint_metadata(str(uuid.uuid4()),
                                    self_signed_der("c"))
steps, out = mexpect("partner re-created (another realm)",
                     ("--partner", "Other"), "issuer",
                     words=("re-created", "partner refresh"))
fake.stop()
fakes.remove(fake)
steps, out = mexpect("partner metadata URL down", ("--partner", "Other"),
                     "tcp", words=("connect", "photosync portal serve"))
is_eq(steps["fetch"][0], "SKIP", "master: URL down: fetch skipped")
is_eq(steps["cert-dates"][0], "PASS",
      "master: URL down: the stored certificate's dates still checked")
m.cmd("partner", "remove", "Other")

# Registered from a file: said so, and the stored document still checked.
mdf = write(os.path.join(work, "file-partner.json"),
            sharepoint_metadata(str(uuid.uuid4()), self_signed_der("d")),
            0o644)
m.cmd("partner", "add", "--name", "FromFile", "--metadata-file", mdf)
steps, out = mexpect("partner from a file", ("--partner", "FromFile"),
                     "metadata-url", rc_want=0, verdict="SKIP",
                     words=("registered from a file",))
is_eq(steps.get("cert-dates", [""])[0], "PASS",
      "master: file partner: certificate dates checked")
m.cmd("partner", "remove", "FromFile")

rc, out, err = run("master", "diagnose", "--dir", m.dir, check=False)
is_eq(rc, 0, "master: back to the good set-up: exit 0")
ok(os.path.exists(PHOTOSYNC), "the binary under test exists")

done()
