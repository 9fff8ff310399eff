"""Kerberos single sign-on (SPNEGO, HTTP Negotiate) against a real MIT
KDC (tests/kdc.py): the keytab settings are checked by the admin command;
curl with test1's ticket (`curl --negotiate -u :`, the service names
resolved to the loopback ports) gets the portal's /my without a form, and
the session cookie it is given works afterwards; a request without a
ticket gets 401 with `WWW-Authenticate: Negotiate` and, for a browser,
the sign-in form as its body; each refusal (garbage, a replayed token, a
ticket for another service, an expired ticket, a realm the map lacks, a
principal without an account) is 401 and an auth.refused method=negotiate event with its
reason. The master (`master kerberos set`) takes test1's ticket on its
change-photo page (a session started, the page signed in) and on EWS
(GetUserPhoto, per request), and refuses a principal without a
mailbox."""
import os
import re
import subprocess
import sys
import time

from psync import (LogMark, done, is_eq, make_image, ok, tls_for_names,
                   tmpdir, wait_for, wired, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import kdc as kdcmod  # noqa: E402  (tests/kdc.py)

work = tmpdir("negotiate")
NAMES = ["portal.contoso.com", "mail.contoso.com", "other.contoso.com"]


# ---- the realm: the users, the services and their keytabs ----
kdc = kdcmod.Kdc(realm="CONTOSO.COM")
for user in ("test1", "test3", "test9"):
    kdc.add_user(user, "pw-" + user)
portal_keytab = kdc.add_service("HTTP/portal.contoso.com")
mail_keytab = kdc.add_service("HTTP/mail.contoso.com")
kdc.add_service("HTTP/other.contoso.com")

# The servers' Kerberos configuration: the realm's, with a clock skew of
# 1 s (so that an expired ticket is one a second after its end, not five
# minutes) and a replay cache in the KDC's directory (the variables are
# inherited by `serve`).
SKEW = 1
server_conf = write(os.path.join(kdc.dir, "server-krb5.conf"), open(
    kdc.krb5_conf).read().replace("[libdefaults]\n", "[libdefaults]\n"
                                  " clockskew = %d\n" % SKEW, 1))
os.environ.update({k: v for k, v in kdc.env().items()
                   if k.startswith("KRB5")})
os.environ["KRB5_CONFIG"] = server_conf
os.environ.pop("KRB5CCNAME", None)

tls = tls_for_names(work, NAMES)
m, p = wired(master_init=tls, portal_init=tls, master_cmds=[
    ("kerberos", "set", "--keytab", mail_keytab, "--service",
     "HTTP/mail.contoso.com", "--realms", "CONTOSO.COM=contoso.com")])
caches = {u: kdc.kinit(u, "pw-" + u) for u in ("test1", "test3", "test9")}


def curl(user, host, port, path, headers=(), jar=None, verbose=False,
         follow=False, data=None, method=None):
    """curl --negotiate as `user` (None: no ticket) to https://host:port
    with `host` resolved to 127.0.0.1. Returns (status, headers text,
    body, stderr)."""
    hfile = os.path.join(work, "curl-headers")
    argv = ["curl", "-sS", "--negotiate", "-u", ":", "--cacert",
            p.ca, "--resolve", "%s:%d:127.0.0.1" % (host, port), "-D",
            hfile, "-o", "-", "-w", "\n%{http_code}"]
    if verbose:
        argv.append("-v")
    if follow:
        argv.append("-L")
    if data:
        argv += ["--data-binary", "@" + data]
    if method:
        argv += ["-X", method]
    for h in headers:
        argv += ["-H", h]
    if jar:
        argv += ["-c", jar, "-b", jar]
    argv.append("https://%s:%d%s" % (host, port, path))
    env = kdc.env(caches[user] if user else
                  os.path.join(work, "no-such-cache"))
    c = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    out = c.stdout.decode("utf-8", "replace")
    body, _, status = out.rpartition("\n")
    with open(hfile) as f:
        head = f.read()
    return int(status or 0), head, body, c.stderr.decode("utf-8",
                                                          "replace")


def final_head(head):
    """The headers of the last answer in a `curl -D` file."""
    return head.strip().split("\r\n\r\n")[-1]


# ---- the settings, checked ----
rc, out, err = p.cmd("webapp", "set", "--keytab",
                     os.path.join(work, "missing.keytab"), check=False)
ok(rc != 0 and "cannot read" in err, "webapp set --keytab with a missing "
   "file: refused (%s)" % err.strip())
rc, out, err = p.cmd("webapp", "set", "--keytab", portal_keytab,
                     "--kerberos-service", "HTTP/mail.contoso.com",
                     check=False)
ok(rc != 0 and "holds no key for the service HTTP/mail.contoso.com" in err,
   "a keytab without the service's key: refused (%s)" % err.strip())
rc, out, err = p.cmd("webapp", "set", "--kerberos-realms", "CONTOSO.COM",
                     check=False)
ok(rc != 0 and "REALM=NAME" in err, "a realm map that is not REALM=NAME: "
   "refused")
rc, out, err = p.cmd("webapp", "show")
ok(re.search(r"keytab\s+off", out), "nothing refused was stored: "
   "Kerberos still off")

# Off: curl's token (it sends one at once) is not taken, nor offered.
st, head, body, _ = curl("test1", "portal.contoso.com", p.port, "/my")
ok(st == 401 and not re.search(r"(?im)^WWW-Authenticate: Negotiate", head),
   "Kerberos off: a Negotiate token is not taken (401, Basic offered)")

mark = LogMark(p)
p.cmd("webapp", "set", "--keytab", portal_keytab, "--kerberos-service",
      "HTTP/portal.contoso.com", "--kerberos-realms", "CONTOSO.COM=CONTOSO")
rc, out, err = p.cmd("webapp", "show")
ok(re.search(r"keytab\s+" + re.escape(os.path.realpath(portal_keytab)),
             out) and
   re.search(r"kerberos-service\s+HTTP/portal.contoso.com", out) and
   re.search(r"kerberos-realms\s+CONTOSO.COM=CONTOSO", out),
   "webapp show prints the keytab, the service and the realm map")
ok(mark.wait(r"ev=webapp\.kerberos_loaded .*kerberos=on"),
   "the running portal loads the keytab (the change feed)")

# ---- no ticket: 401 with Negotiate, the form as the body ----
st, head, body, _ = curl(None, "portal.contoso.com", p.port, "/my",
                         ["Accept: text/html"])
is_eq(st, 401, "no ticket: 401")
ok(re.search(r"(?im)^WWW-Authenticate: Negotiate\r?$", head),
   "WWW-Authenticate: Negotiate")
ok('name="password"' in body and 'action="/login"' in body,
   "whose body is the sign-in form")
is_eq(len(re.findall(r"(?im)^Cache-Control:", head)), 1,
      "one Cache-Control (no-store) on it")
r = p.get("/my")
ok(r.status == 401 and "Negotiate" in r.header_all("WWW-Authenticate") and
   any(v.startswith("Basic ") for v in r.header_all("WWW-Authenticate")),
   "a script without credentials: 401 offering Negotiate and Basic")

# ---- test1's ticket: /my without a form, a session ----
jar = os.path.join(work, "jar")
mark = LogMark(p)
st, head, body, _ = curl("test1", "portal.contoso.com", p.port, "/my",
                         ["Accept: text/html"], jar=jar)
is_eq(st, 200, "test1 with a ticket: /my at once")
ok("Test One" in body and 'name="password"' not in body,
   "test1's page, no sign-in form")
last = final_head(head)
ok(re.search(r"(?im)^WWW-Authenticate: Negotiate \S+", last),
   "the answer carries the token of mutual authentication")
ok(re.search(r"(?im)^Set-Cookie: ps_session=[0-9a-f]{64};", last),
   "and a session cookie")
ok(mark.count(r"ev=auth\.session_started user=\"?contoso\\test1\"? "
              r"method=negotiate"), "auth.session_started method=negotiate")
cookie = re.search(r"(?im)^Set-Cookie: ps_session=([0-9a-f]{64})",
                   last).group(1) if "ps_session" in last else ""
r = p.get("/my", {"Cookie": "ps_session=" + cookie, "Accept": "text/html"})
ok(r.status == 200 and "Test One" in r.text(),
   "the session cookie alone signs test1 in afterwards")
# A script (no Accept: text/html) sends a token with each request: it is
# signed in for that request alone, no session each time.
st, head, body, _ = curl("test1", "portal.contoso.com", p.port, "/my")
ok(st == 200 and "Test One" in body and "Set-Cookie: ps_session" not in
   head and re.search(r"(?im)^WWW-Authenticate: Negotiate \S+", head),
   "a script's token: signed in, no session, the mutual-auth token")


# ---- refusals: each 401 and auth.refused method=negotiate reason=... ----
def refused(what, reason, send):
    """`send()` makes one request; it must be refused with 401 and the
    event with `reason`."""
    mark = LogMark(p)
    st = send()
    is_eq(st, 401, "%s: 401" % what)
    ok(mark.wait(r"ev=auth\.refused method=negotiate .*reason=\"?[^\n]*"
                 + re.escape(reason)),
       "%s: auth.refused method=negotiate reason=%s" % (what, reason))


refused("garbage", "malformed token", lambda: p.get(
    "/my", {"Authorization": "Negotiate YWJjZGVmZ2hpams="}).status)

# A token curl sent (and the portal took) is sent again.
st, head, body, err = curl("test1", "portal.contoso.com", p.port, "/my",
                           verbose=True)
tok = re.search(r"(?m)^> Authorization: (Negotiate \S+)", err)
ok(st == 200 and tok, "a token accepted once")
refused("the same token again", "replayed token", lambda: p.get(
    "/my", {"Authorization": tok.group(1) if tok else "Negotiate x"})
    .status)

refused("a ticket for another service", "ticket for another service",
        lambda: curl("test1", "other.contoso.com", p.port, "/my")[0])

refused("a principal without an account", "no such account",
        lambda: curl("test9", "portal.contoso.com", p.port, "/my")[0])



def token_for(user_cache, host):
    """The Authorization header curl makes from `user_cache` for
    HTTP/`host`, caught by a listener of the test's own (plain HTTP, so
    that it is never sent to a server under test)."""
    import http.server
    import threading
    got = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            a = self.headers.get("Authorization")
            if a:
                got.append(a)
            self.send_response(200 if a else 401)
            if not a:
                self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    hs = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=hs.serve_forever, daemon=True)
    t.start()
    port = hs.server_address[1]
    subprocess.run(["curl", "-sS", "--negotiate", "-u", ":", "-o",
                    os.devnull, "--resolve", "%s:%d:127.0.0.1" % (host, port),
                    "http://%s:%d/" % (host, port)],
                   env=kdc.env(user_cache), capture_output=True, timeout=120)
    hs.shutdown()
    hs.server_close()
    return got[0] if got else None


def ticket_end(cache):
    """When the tickets of `cache` end (klist's Expires, local time, whole
    seconds), as a Unix time."""
    out = subprocess.run(["klist", cache], env=kdc.env(cache),
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"^\S+ \S+\s+(\d\d/\d\d/\d\d\S* \d\d:\d\d:\d\d)\s",
                  out, re.M)
    import datetime
    for fmt in ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.datetime.strptime(m.group(1), fmt).timestamp()
        except (ValueError, AttributeError):
            pass
    return None


# An expired ticket: a token made while test1's short ticket was valid,
# sent once the ticket ended (and the server's skew passed).
short = kdc.kinit("test1", "pw-test1", lifetime="5s")
expired_tok = token_for(short, "portal.contoso.com")
end = ticket_end(short)
ok(expired_tok and end, "a token from a ticket of 5 s (ends %s)" % end)
# Polling the clock: the event is the time itself.
ok(wait_for(lambda: time.time() > (end or 0) + SKEW + 1, step=0.2),
   "the ticket's end and the server's clock skew passed")
refused("a token of an expired ticket", "expired ticket", lambda: p.get(
    "/my", {"Authorization": expired_tok or "Negotiate x"}).status)

mark = LogMark(p)
p.cmd("webapp", "set", "--kerberos-realms", "FABRIKAM.COM=FABRIKAM")
# The map applies once the change feed brought the row: until then test1
# is still signed in (200); each try is a new token.
ok(wait_for(lambda: curl("test1", "portal.contoso.com", p.port,
                         "/my")[0] == 401),
   "a realm the new map lacks: refused once the change arrived")
ok(mark.wait(r"ev=auth\.refused method=negotiate .*reason=\"?the realm "
             r"CONTOSO.COM maps to no domain"),
   "auth.refused method=negotiate reason=the realm ... maps to no domain")
p.cmd("webapp", "set", "--kerberos-realms", "CONTOSO.COM=CONTOSO")

# ---- the master: the change-photo page and EWS ----
PAGE = "/ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1"
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR96x96"

rc, shown, err = m.cmd("kerberos", "show")
ok(re.search(r"keytab\s+" + re.escape(os.path.realpath(mail_keytab)),
             shown)
   and re.search(r"service\s+HTTP/mail.contoso.com", shown) and
   re.search(r"realms\s+CONTOSO.COM=contoso.com", shown),
   "master kerberos show prints the keytab, the service and the realms")
for args, why in ((["--keytab", os.path.join(work, "missing")],
                   "cannot read"),
                  (["--keytab", portal_keytab], "holds no key for the "
                   "service HTTP/mail.contoso.com"),
                  (["--realms", "CONTOSO.COM"], "REALM=NAME"),
                  (["--service", "mail.contoso.com"], "SERVICE/HOST")):
    rc, out, err = m.cmd("kerberos", "set", *args, check=False)
    ok(rc != 0 and why in err, "master kerberos set %s: refused (%s)" % (
        " ".join(args), err.strip()))
rc, out, err = m.cmd("kerberos", "show")
is_eq(out, shown, "nothing refused was stored")

st, head, body, _ = curl(None, "mail.contoso.com", m.port, PAGE,
                         ["Accept: text/html"])
ok(st == 401 and re.search(r"(?im)^WWW-Authenticate: Negotiate\r?$", head)
   and 'name="password"' in body,
   "the change-photo page without a ticket: 401 Negotiate, the form as body")

mjar = os.path.join(work, "mjar")
mark = LogMark(m)
st, head, body, _ = curl("test1", "mail.contoso.com", m.port, PAGE,
                         ["Accept: text/html"], jar=mjar, follow=True)
is_eq(st, 200, "test1 with a ticket: the change-photo page")
ok("test1@contoso.com" in body and 'name="password"' not in body,
   "signed in as test1@contoso.com, no form")
ok(re.search(r"(?im)^WWW-Authenticate: Negotiate \S+", head),
   "the sign-in answer carries the token of mutual authentication")
ok(mark.count(r"ev=ecp\.signed_in email=\"?test1@contoso.com\"? "
              r"method=negotiate"), "ecp.signed_in method=negotiate")
st, head, body, _ = curl(None, "mail.contoso.com", m.port, PAGE,
                         ["Accept: text/html"], jar=mjar)
ok(st == 200 and "test1@contoso.com" in body and
   'name="password"' not in body,
   "the page's session cookie alone keeps test1 signed in")

mark = LogMark(m)
st, head, body, _ = curl("test1", "mail.contoso.com", m.port,
                         REST % "test1@contoso.com")
is_eq(st, 200, "EWS GetUserPhoto with test1's ticket: the photo")
ok(re.search(r"(?im)^WWW-Authenticate: Negotiate \S+", final_head(head)),
   "with the token of mutual authentication")
ok(mark.wait(r"ev=http\.request .*auth=negotiate user=test1@contoso.com"),
   "logged as auth=negotiate user=test1@contoso.com")
# EWS probed without credentials (DavMail's first request): 401 offering
# Negotiate and Basic.
st, head, body, _ = curl(None, "mail.contoso.com", m.port,
                         "/EWS/Exchange.asmx")
ok(st == 401 and re.search(r"(?im)^WWW-Authenticate: Negotiate\r?$", head)
   and re.search(r"(?im)^WWW-Authenticate: Basic realm=", head),
   "GET /EWS/Exchange.asmx without credentials: 401, Negotiate and Basic")
st, head, body, _ = curl("test1", "mail.contoso.com", m.port,
                         "/EWS/Exchange.asmx")
is_eq(st, 200, "a GET of /EWS/Exchange.asmx with test1's ticket: the page")
# A SOAP GetUserPhoto whose body is over 64 KiB goes through the body
# gate first: its token, accepted there, still signs in its handler.
soap = os.path.join(work, "soap.xml")
write(soap, '<?xml version="1.0" encoding="utf-8"?>'
      '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
      'envelope/" xmlns:m="http://schemas.microsoft.com/exchange/'
      'services/2006/messages"><!--' + "x" * 70000 + '--><soap:Body>'
      '<m:GetUserPhoto><m:Email>test1@contoso.com</m:Email>'
      '<m:SizeRequested>HR96x96</m:SizeRequested></m:GetUserPhoto>'
      '</soap:Body></soap:Envelope>')
mark = LogMark(m)
st, head, body, _ = curl("test1", "mail.contoso.com", m.port,
                         "/ews/exchange.asmx", [
                             "Content-Type: text/xml; charset=utf-8",
                             "Expect:"], data=soap)
ok(st == 200 and "PictureData" in body,
   "EWS SOAP GetUserPhoto with a body over 64 KiB and a ticket: the photo")
ok(mark.count(r"ev=auth\.refused") == 0,
   "its token taken once, at the gate, and not refused as a replay after")
# The Graph photo API signs in as EWS does: a read, and a PUT whose image
# is over 64 KiB (its token taken at the body gate, then by its handler).
st, head, body, _ = curl("test1", "mail.contoso.com", m.port,
                         "/v1.0/me/photo")
ok(st == 200 and '"@odata.mediaEtag"' in body,
   "Graph /v1.0/me/photo with test1's ticket: the metadata")
big = make_image(os.path.join(work, "graph.jpg"), "800x800",
                 extra=["+noise", "Random", "-quality", "90"])
ok(os.path.getsize(big) > 64 * 1024, "an image over 64 KiB")
mark = LogMark(m)
st, head, body, _ = curl("test1", "mail.contoso.com", m.port,
                         "/v1.0/me/photo/$value", [
                             "Content-Type: image/jpeg", "Expect:"],
                         data=big, method="PUT")
is_eq(st, 200, "Graph PUT of an image over 64 KiB with test1's ticket")
ok(mark.wait(r"ev=photo\.client_set email=\"?test1@contoso\.com\"? "
             r"via=graph") and mark.count(r"ev=auth\.refused") == 0,
   "the photo is set; the token taken at the gate, not refused after")
r = m.get(REST % "test1@contoso.com")
ok(r.status == 401 and "Negotiate" in r.header_all("WWW-Authenticate") and
   any(v.startswith("Basic ") for v in r.header_all("WWW-Authenticate")),
   "EWS without credentials: 401 offering Negotiate beside Basic")
mark = LogMark(m)
st = curl("test3", "mail.contoso.com", m.port, REST % "test1@contoso.com")[0]
is_eq(st, 401, "EWS with the ticket of a principal without a mailbox: 401")
ok(mark.wait(r"ev=auth\.refused method=negotiate .*principal=test3@CONTOSO"
             r"\.COM reason=\"?no such account"),
   "auth.refused method=negotiate reason=no such account")
mark = LogMark(m)
st = curl("test1", "portal.contoso.com", m.port, REST % "test1@contoso.com")[0]
is_eq(st, 401, "EWS with a ticket for the portal's service: 401")
ok(mark.wait(r"ev=auth\.refused method=negotiate .*reason=\"?ticket for "
             r"another service"), "auth.refused: ticket for another service")

# The master's reload (SIGHUP) reads `kerberos set` again: a keytab it
# cannot read refuses the reload; with the keytab back the reload is
# taken and a ticket still signs in; `--keytab off` and a reload turn
# Kerberos off.
def master_reload(event):
    mark = LogMark(m)
    m.server.proc.send_signal(1)
    return mark.wait(event)


os.rename(mail_keytab, mail_keytab + ".away")
ok(master_reload(r"lvl=warn .*ev=serve\.reload_refused "),
   "master: SIGHUP with its keytab gone: the reload is refused")
os.rename(mail_keytab + ".away", mail_keytab)
ok(master_reload(r"ev=serve\.reloaded"),
   "master: SIGHUP with the keytab back: reloaded")
st = curl("test1", "mail.contoso.com", m.port, "/EWS/Exchange.asmx")[0]
is_eq(st, 200, "master: test1's ticket signs in with the acceptor reloaded")
m.cmd("kerberos", "set", "--keytab", "off")
ok(master_reload(r"ev=serve\.reloaded"),
   "master: SIGHUP after kerberos set --keytab off: reloaded")
r = m.get(REST % "test1@contoso.com")
ok(r.status == 401 and "Negotiate" not in r.header_all("WWW-Authenticate"),
   "master: Negotiate is no longer offered")

# Off again: Negotiate is no longer offered.
mark = LogMark(p)
p.cmd("webapp", "set", "--keytab", "off")
ok(mark.wait(r"ev=webapp\.kerberos_loaded .*kerberos=off"),
   "--keytab off: the running portal stops taking Kerberos")
r = p.get("/my")
ok(r.status == 401 and "Negotiate" not in r.header_all("WWW-Authenticate"),
   "and no longer offers it")

done()
