"""How the portal's sync reads Autodiscover answers (reference §1.4, §2.3):
InvalidUser, or no photo URLs, means "no mailbox"; any other ErrorCode,
an HTTP error or a redirect that cannot be followed is an error that
leaves the user's mailbox status as it was; RedirectAddress and
RedirectUrl are followed (https only, at most 10 redirects, loops
refused).

test1 first syncs from a real master (mailbox: yes). Then the portal's
--autodiscover-domain points at a small HTTPS server of the test
(fakepeer.py, with a CA of its own) whose Autodiscover answer each
scenario chooses; its GetUserPhoto answers with a photo.
"""
import atexit
import os
import re

from fakepeer import (FakeMaster, bundle, capture_ad_template, make_tls,
                      wait_for)
import psync
from psync import done, is_eq, ok, photo_path, tmpdir, wired

T1 = "contoso\\test1"
NS_S = "http://schemas.xmlsoap.org/soap/envelope/"
NS_AD = "http://schemas.microsoft.com/exchange/2010/Autodiscover"

work = tmpdir("autodiscover")
m, p = wired()
fakes = []


@atexit.register
def _cleanup():
    for f in fakes:
        f.stop()
    p.stop()
    m.stop()


def answer(code, target=None, top="NoError"):
    """A GetUserSettings answer with one UserResponse saying `code`
    (`top`: the response-level code)."""
    rt = ("<RedirectTarget>%s</RedirectTarget>" % target if target else
          '<RedirectTarget i:nil="true"/>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="%s"><s:Header/><s:Body>'
        '<GetUserSettingsResponseMessage xmlns="%s"><Response '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        '<ErrorCode>%s</ErrorCode><ErrorMessage>top</ErrorMessage>'
        '<UserResponses><UserResponse><ErrorCode>%s</ErrorCode>'
        '<ErrorMessage>as the test says</ErrorMessage>%s'
        '<UserSettingErrors/><UserSettings/></UserResponse>'
        '</UserResponses></Response></GetUserSettingsResponseMessage>'
        '</s:Body></s:Envelope>' % (NS_S, NS_AD, top, code, rt))


def asked_about(body):
    g = re.search(r"<a:Mailbox>([^<]*)</a:Mailbox>", body)
    return g.group(1) if g else ""


def mailbox():
    st, out, err = p.cmd("user", "show", T1)
    g = re.search(r"mailbox\s+(\S+)", out)
    return g.group(1) if g else "?"


def fresh():
    """A new portal process: no Autodiscover answer kept in memory, so
    that the next sync asks (answers are kept an hour)."""
    p.stop()
    p.start()


def sync_once(what):
    """An owner's request, then the sync's end as the log says it."""
    log = psync.LogMark(p)
    p.get(photo_path(T1, "L"), as_user=T1)
    ok(wait_for(lambda: log.count(r"ev=sync\.(failed|done) ") >= 1, 20),
       "%s: the sync ended" % what)
    return log


# ---- a real mailbox first ----
r = p.get(photo_path(T1, "L"), as_user=T1)
is_eq(r.status, 200, "setup: the owner's L request syncs from the master")
is_eq(mailbox(), "yes", "setup: test1 has a mailbox")

template = capture_ad_template(m, "test1@contoso.com", "pw-one")
ca_file, cert_file, key_file = make_tls(work)
cas = bundle(os.path.join(work, "cas.pem"), m.ca, ca_file)
fake = FakeMaster(template, tls=(cert_file, key_file))
other = FakeMaster(template, tls=(cert_file, key_file))
fakes += [fake, other]
p.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
      "--ca-file", cas, "--photo-expiration", "0m",
      "--photo-error-expiration", "0m")
fresh()


def error_keeps_mailbox(what, fn, reason_re):
    fake.ad_answer = fn
    before = mailbox()
    log = sync_once(what)
    ok(re.search(r"ev=sync\.failed .*step=autodiscover reason=\"?%s"
                 % reason_re, log.text()),
       "%s: sync.failed step=autodiscover names it (%s)" % (what, reason_re))
    is_eq(mailbox(), before, "%s: the mailbox status stays %s" % (
        what, before))
    return log


# ---- errors say nothing about the mailbox ----
error_keeps_mailbox("ServerBusy", lambda b: (200, answer("ServerBusy")),
                    "Autodiscover says ServerBusy")
error_keeps_mailbox("InternalServerError (response level)",
                    lambda b: (200, answer("NoError",
                                           top="InternalServerError")),
                    "Autodiscover says InternalServerError")
error_keeps_mailbox("InvalidRequest", lambda b: (200, answer(
    "InvalidRequest")), "Autodiscover says InvalidRequest")
error_keeps_mailbox("HTTP 500", lambda b: (500, "<html>oops</html>"),
                    "Autodiscover answered HTTP 500")
error_keeps_mailbox("garbage", lambda b: (200, "<html>sign in</html>"),
                    "Autodiscover answer is not SOAP")
error_keeps_mailbox("a redirect without a target",
                    lambda b: (200, answer("RedirectAddress")),
                    "Autodiscover says RedirectAddress")

# ---- InvalidUser and missing URLs are "no mailbox" ----
fake.ad_answer = lambda b: (200, answer("InvalidUser"))
log = sync_once("InvalidUser")
is_eq(mailbox(), "no", "InvalidUser: test1 has no mailbox")
ok(log.count(r"ev=sync\.failed .*reason=\"?no mailbox: Autodiscover says "
             r"InvalidUser") == 1, "InvalidUser: logged as no mailbox")
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "InvalidUser: the cached photo is kept (only a 404 removes it)")


def restore_mailbox():
    fake.ad_answer = None
    sync_once("restore")
    is_eq(mailbox(), "yes", "the captured answer: a mailbox again")


restore_mailbox()
fresh()
fake.ad_answer = lambda b: (200, answer("NoError"))
sync_once("NoError without URLs")
is_eq(mailbox(), "no", "NoError without photo URLs: no mailbox")

# ---- RedirectAddress is followed ----
fake.ad_answer = lambda b: (
    (200, answer("RedirectAddress", "test1@fabrikam.com"))
    if asked_about(b) == "test1@contoso.com" else None)
ad0, ph0 = fake.count("autodiscover"), fake.count("photo")
log = sync_once("RedirectAddress")
is_eq(mailbox(), "yes", "RedirectAddress: followed to a mailbox")
asked = [asked_about(c.body.decode()) for c in
         fake.of_kind("autodiscover")[ad0:]]
is_eq(asked, ["test1@contoso.com", "test1@fabrikam.com"],
      "RedirectAddress: asked again about the new address")
ok(fake.count("photo") == ph0 + 1 and "email=test1%40fabrikam.com" in
   fake.last("photo").path, "RedirectAddress: the photo of the mailbox "
   "it ended at (%s)" % (fake.last("photo").path,))
ok(log.count(r"ev=sync\.autodiscover_redirect .*kind=address") == 1,
   "RedirectAddress: logged as sync.autodiscover_redirect")

# ---- RedirectUrl is followed (to another server) ----
fresh()
fake.ad_answer = lambda b: (200, answer("InvalidUser"))
sync_once("InvalidUser again")
is_eq(mailbox(), "no", "InvalidUser again: no mailbox")
other_url = "https://%s/autodiscover/autodiscover.svc" % other.hostport()
fake.ad_answer = lambda b: (200, answer("RedirectUrl", other_url))
n_other = other.count("autodiscover")
log = sync_once("RedirectUrl")
is_eq(other.count("autodiscover"), n_other + 1,
      "RedirectUrl: the other server was asked")
is_eq(mailbox(), "yes", "RedirectUrl: followed to a mailbox")
ok(log.count(r"ev=sync\.autodiscover_redirect .*kind=url") == 1,
   "RedirectUrl: logged as sync.autodiscover_redirect")

# ---- redirects that are not followed ----
fresh()
plain = "http://%s/autodiscover/autodiscover.svc" % other.hostport()
fake.ad_answer = lambda b: (200, answer("RedirectUrl", plain))
n_other = other.count("autodiscover")
error_keeps_mailbox("RedirectUrl to http", fake.ad_answer, "refusing to "
                    "ask Autodiscover at http://.* \\(https only\\)")
is_eq(other.count("autodiscover"), n_other, "RedirectUrl to http: not "
      "asked")

own = "https://%s/autodiscover/autodiscover.svc" % fake.hostport()
fake.ad_answer = lambda b: (200, answer("RedirectUrl", own))
ad0 = fake.count("autodiscover")
error_keeps_mailbox("RedirectUrl back to itself", fake.ad_answer,
                    "Autodiscover redirects in a loop")
is_eq(fake.count("autodiscover"), ad0 + 1, "a loop: asked once")


def chain(b):
    g = re.match(r"hop(\d+)@", asked_about(b))
    n = int(g.group(1)) + 1 if g else 1
    return 200, answer("RedirectAddress", "hop%d@contoso.com" % n)


fake.ad_answer = chain
ad0 = fake.count("autodiscover")
error_keeps_mailbox("endless RedirectAddress", chain,
                    "too many Autodiscover redirects \\(more than 10\\)")
is_eq(fake.count("autodiscover"), ad0 + 11,
      "endless redirects: the first question and 10 redirects")


# ---- diagnose reads Autodiscover as the sync does ----
def diagnose_line(step):
    st, out, err = p.cmd("diagnose", T1, check=False)
    for line in out.splitlines():
        f = line.split(None, 2)
        if len(f) >= 2 and f[1] == step:
            return line, out
    return "", out


fake.ad_answer = lambda b: (200, answer("ServerBusy"))
line, out = diagnose_line("autodiscover")
ok(line.startswith("FAIL") and "Autodiscover says ServerBusy" in line and
   "no mailbox" not in line, "diagnose: ServerBusy is an error, not \"no "
   "mailbox\" (%s)" % line)
fake.ad_answer = lambda b: (200, answer("InvalidUser"))
line, out = diagnose_line("autodiscover")
ok(line.startswith("FAIL") and "no mailbox" in line,
   "diagnose: InvalidUser is no mailbox (%s)" % line)
fake.ad_answer = lambda b: (
    (200, answer("RedirectAddress", "test1@fabrikam.com"))
    if asked_about(b) == "test1@contoso.com" else None)
n_photo = fake.count("photo")
line, out = diagnose_line("autodiscover")
ok(line.startswith("PASS") and "test1@fabrikam.com" in line,
   "diagnose: RedirectAddress is followed, as a sync follows it (%s)" % line)
photo_line = [x for x in out.splitlines() if x.split()[1:2] == ["photo"]]
ok(photo_line and photo_line[0].startswith("PASS") and
   fake.count("photo") == n_photo + 1 and
   "email=test1%40fabrikam.com" in fake.last("photo").path,
   "diagnose: the photo of the address the redirect gave (%s)" % (
       photo_line[0] if photo_line else out))
own = "https://%s/autodiscover/autodiscover.svc" % fake.hostport()
fake.ad_answer = lambda b: (200, answer("RedirectUrl", own))
line, out = diagnose_line("autodiscover")
ok(line.startswith("FAIL") and "loop" in line,
   "diagnose: a redirect loop is refused as a sync refuses it (%s)" % line)


# ---- "Change photo" asks Autodiscover: only "no mailbox" gets the form ----
fresh()
fake.ad_answer = lambda b: (200, answer("ServerBusy"))
r = p.get("/my/changephoto", as_user=T1)
ok(r.status == 503 and "could not be asked" in r.text(),
   "Change photo, ServerBusy: 503, not the local upload form (%d)" %
   r.status)
fake.ad_answer = lambda b: (200, answer("InvalidUser"))
r = p.get("/my/changephoto", as_user=T1)
ok(r.status == 200 and 'enctype="multipart/form-data"' in r.text(),
   "Change photo, InvalidUser: the local upload form (%d)" % r.status)

done()
