"""The article's experience in a real browser: headless Chromium holding
test1's Kerberos ticket (a real MIT KDC, tests/kdc.py) opens the portal's
/my and sees test1's photo without a sign-in form, follows "Change photo"
to the master's page and is signed in there too, uploads and saves a
JPEG, comes back to the portal and sees the new photo. test3 (no
mailbox), signed in by its ticket, uploads at the portal. A Chromium
without a ticket gets the form.

The portal is portal.contoso.com (Chromium's --host-resolver-rules maps
it to the loopback address; service HTTP/portal.contoso.com). The
master's name must also resolve for the portal itself, which calls it,
and no browser switch can do that: the master is `localhost` (service
HTTP/localhost), the one name besides the address that resolves
everywhere. Chromium is told which hosts may get its ticket
(--auth-server-allowlist) and takes the certificates of the test
servers, made for the test, with --ignore-certificate-errors, as the
other browser tests do (tests/integration/browser.py)."""
import os
import shutil
import sys

from psync import (Master, Portal, Server, done, is_eq, make_image, ok,
                   skip_all, tls_for_names, tmpdir)

if not os.path.exists("/usr/bin/chromium"):
    skip_all("chromium is not installed (scripts/deps.sh test)")
if shutil.which("krb5kdc", path="/usr/sbin:/sbin:" +
                os.environ.get("PATH", "")) is None:
    skip_all("krb5-kdc is not installed (scripts/deps.sh test)")

from browser import Browser  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import kdc as kdcmod  # noqa: E402  (tests/kdc.py)

work = tmpdir("negotiate-browser")

# ---- the realm ----
kdc = kdcmod.Kdc(realm="CONTOSO.COM")
for user in ("test1", "test3"):
    kdc.add_user(user, "pw-" + user)
portal_keytab = kdc.add_service("HTTP/portal.contoso.com")
master_keytab = kdc.add_service("HTTP/localhost")
os.environ.update({k: v for k, v in kdc.env().items()
                   if k.startswith("KRB5")})
os.environ.pop("KRB5CCNAME", None)
tls = tls_for_names(work, ["portal.contoso.com", "localhost"])

# ---- the master, at localhost ----
m = Master(host="localhost:0", init_args=tls)
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "t1.jpg"), "800x800"))
m.cmd("kerberos", "set", "--keytab", master_keytab, "--service",
      "HTTP/localhost", "--realms", "CONTOSO.COM=contoso.com")
m.start()

# ---- the portal, at portal.contoso.com (the harness uses the address) ----
p = Portal(host="portal.contoso.com", init_args=tls)
p.host = "127.0.0.1"
p.add_user("contoso\\test1", "test1@contoso.com", None, "Test One")
p.add_user("contoso\\test3", "test3@contoso.com", None, "Test Three")
p.cmd("webapp", "set", "--photo-import", "on", "--autodiscover-domain",
      "localhost:%d" % m.port, "--ca-file", m.ca, "--keytab",
      portal_keytab, "--kerberos-service", "HTTP/portal.contoso.com",
      "--kerberos-realms", "CONTOSO.COM=CONTOSO")
p.cmd("issuer", "add", "--name", "Exchange", "--metadata-url",
      m.url("/autodiscover/metadata/json/1"), "--ca-file", m.ca)
# It listens on the address: its name resolves only in the browser.
p.server = Server("portal", p.dir, ["--listen", "127.0.0.1"])
p.port = p.server.port
m.cmd("partner", "add", "--name", "SharePoint", "--metadata-url",
      p.url("/_layouts/15/metadata/json/1"), "--ca-file", p.ca)
PORTAL = "https://portal.contoso.com:%d" % p.port

photo = make_image(os.path.join(work, "new.jpg"), "1000x700",
                   extra=["-swirl", "120"])


def browser(name, user):
    """Chromium with `user`'s ticket (None: a cache without one)."""
    cache = kdc.kinit(user, "pw-" + user) if user else \
        os.path.join(work, "no-ticket")
    # Chromium on Linux loads GSSAPI (and runs its network service
    # unsandboxed for it) only once a profile has seen a Negotiate
    # challenge; a new profile would first restart that service. These
    # profiles start as one that has seen it, as a user's does. The
    # service name is the host as typed, not its canonical name (which,
    # through the resolver rule, would be the address): the policy
    # DisableAuthNegotiateCnameLookup, as a preference.
    return Browser(name, args=[
        "--auth-server-allowlist=*.contoso.com,localhost",
        "--host-resolver-rules=MAP portal.contoso.com 127.0.0.1"],
        env=kdc.env(cache), local_state={
            "net": {"received_http_auth_negotiate_headers": True},
            "auth": {"disable_negotiate_cname_lookup": True}})


def my_photo(b):
    img = b.find("img.big")
    return img.get_attribute("src"), b.image_loaded(img)


def master_etag():
    r = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
              "size=HR648x648", {"Authorization": "Basic " + __import__(
                  "base64").b64encode(b"test1@contoso.com:pw-one")
                  .decode()})
    return r.header("ETag")


# ---- test1: the portal, then the master's page, signed in by the ticket --
b1 = browser("sso-test1", "test1")
try:
    b1.get(PORTAL + "/my")
    b1.check(b1.wait(lambda: b1.finds("img.big")) and
             not b1.finds("#password"),
             "test1: /my at once, no sign-in form")
    b1.check("Test One" in b1.text(), "test1's own page")
    src0, loaded = my_photo(b1)
    b1.check(loaded, "test1: /my shows test1's photo")
    etag0 = master_etag()
    b1.d.find_element("link text", "Change photo").click()
    b1.check(b1.wait(lambda: "/ecp/" in b1.url() and
                     b1.finds("input[type=file]")),
             "Change photo: the master's page, already signed in")
    b1.check(not b1.finds("#email") and "test1@contoso.com" in b1.text(),
             "as test1@contoso.com, no form")
    b1.find("#photo").send_keys(photo)
    b1.button("Upload and preview")
    b1.check(b1.wait(lambda: b1.finds("img[src*='kind=preview']")),
             "upload: a preview")
    b1.button("Save")
    b1.check(b1.wait(lambda: "saved" in b1.text()), "Save: saved")
    etag1 = master_etag()
    ok(etag1 and etag1 != etag0, "the master has a new photo (ETag %s)" %
       etag1)
    # Back at the portal, as the page's way back leads (the master offers
    # it only for a partner registered at this name, which it cannot
    # resolve here).
    b1.get(PORTAL + "/my/photochanged")
    b1.check(b1.wait(lambda: "/my" in b1.url() and b1.finds("img.big")),
             "back on the portal's /my")
    src1, loaded = my_photo(b1)
    b1.check(loaded and src1 != src0, "/my shows the new photo")
    st, out, err = p.cmd("user", "show", "contoso\\test1")
    b1.check(etag1 and etag1.strip('"') in out,
             "the portal holds the master's new photo")
finally:
    b1.quit()

# ---- test3: no mailbox, uploads at the portal ----
b3 = browser("sso-test3", "test3")
try:
    b3.get(PORTAL + "/my")
    b3.check(b3.wait(lambda: b3.finds("img.big")) and
             not b3.finds("#password"), "test3: /my at once, no form")
    src, loaded = my_photo(b3)
    b3.d.find_element("link text", "Change photo").click()
    b3.check(b3.wait(lambda: b3.url().endswith("/my/changephoto") and
                     b3.finds("input[type=file]")),
             "test3: Change photo opens the portal's upload form")
    b3.find("input[type=file]").send_keys(photo)
    b3.button("Upload")
    b3.check(b3.wait(lambda: b3.url().endswith("/my?changed=1")),
             "test3: upload accepted, back on /my")
    src2, loaded = my_photo(b3)
    b3.check(loaded and src2 != src, "test3: /my shows the new photo")
finally:
    b3.quit()

# ---- no ticket: the form ----
b0 = browser("sso-none", None)
try:
    b0.get(PORTAL + "/my")
    b0.check(b0.wait(lambda: b0.finds("#password")),
             "a browser without a ticket: the sign-in form")
finally:
    b0.quit()

is_eq(len([ln for ln in p.server.logs().splitlines()
           if "ev=auth.session_started" in ln and "method=negotiate" in ln]),
      2, "the portal started two Kerberos sessions (test1, test3)")
ok("ev=ecp.signed_in email=test1@contoso.com method=negotiate" in
   m.server.logs(), "the master's page was signed in by test1's ticket")
p.stop()
m.stop()
done()
