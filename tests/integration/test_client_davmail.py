"""Acceptance with DavMail as Debian ships it (6.0.1, Java), headless:
its LDAP gateway, in EWS mode on the master's EWS URL, signs in to the
master and finds people by name and by a beginning of their address
(not by an equality on mail=: DavMail's own limit, docs/master.md),
which ldapsearch asks it for.

DavMail begins with an unauthenticated GET of the EWS URL (it accepts
only 200, 401 or a redirect), then GetFolder of the root, ConvertId of
that folder's id (to learn the mailbox's address), GetFolder of the
well-known folders, and for a search FindItem in the contacts and
ResolveNames. It trusts the master's certificate through a Java trust
store made with keytool. DavMail's LDAP gateway never answers a photo
(it ignores jpegPhoto, in 6.0.1 and since), so the photo is not asked
of it here; evolution-ews's test (test_client_evolution.py) is the one
where a client fetches a photo."""
import atexit
import os
import signal
import socket
import subprocess

from psync import (LogMark, Master, done, free_port, is_eq, make_image, ok,
                   tmpdir, wait_for, write)

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("alice@contoso.com", "pw-two", name="Alice Lindqvist")
m.add_mailbox("bob@contoso.com", "pw-three", name="Bob Berg")
work = tmpdir("davmail")
m.cmd("photo", "set", "alice@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "300x300"))
m.start()

# The master's certificate in a Java trust store of the test's own.
trust = os.path.join(work, "trust.jks")
subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "master",
                "-file", m.ca, "-keystore", trust, "-storepass",
                "changeit"], check=True, capture_output=True)

ldap_port = free_port()
log_path = os.path.join(work, "davmail.log")
props = write(os.path.join(work, "davmail.properties"), "\n".join([
    "davmail.server=true",
    "davmail.mode=EWS",
    "davmail.url=" + m.url("/EWS/Exchange.asmx"),
    "davmail.ldapPort=%d" % ldap_port,
    # no other gateway
    "davmail.caldavPort=", "davmail.imapPort=", "davmail.smtpPort=",
    "davmail.popPort=",
    "davmail.bindAddress=127.0.0.1",
    "davmail.allowRemote=false",
    "davmail.logFilePath=" + log_path,
    "log4j.rootLogger=WARN",
    "log4j.logger.davmail=DEBUG",
    ""]))
out = open(os.path.join(work, "davmail.out"), "ab")
davmail = subprocess.Popen(
    ["java", "-Djava.awt.headless=true",
     "-Djavax.net.ssl.trustStore=" + trust,
     "-Djavax.net.ssl.trustStorePassword=changeit",
     "-jar", "/usr/share/davmail/davmail.jar", props],
    stdout=out, stderr=out, process_group=0)


def stop_davmail():
    """Ends DavMail (its process group) and waits for it; at exit too,
    whatever stopped the test."""
    if davmail.poll() is None:
        os.killpg(davmail.pid, signal.SIGTERM)
    davmail.wait()


atexit.register(stop_davmail)


def listening():
    if davmail.poll() is not None:
        return True
    try:
        socket.create_connection(("127.0.0.1", ldap_port), 1).close()
        return True
    except OSError:
        return False


ok(wait_for(listening) and davmail.poll() is None,
   "DavMail listens on its LDAP port")


def ldapsearch(user, password, ldap_filter, *attrs):
    p = subprocess.run(
        ["ldapsearch", "-LLL", "-x", "-H", "ldap://127.0.0.1:%d" % ldap_port,
         "-D", user, "-w", password, "-b", "ou=people", ldap_filter]
        + list(attrs), capture_output=True, text=True, timeout=120)
    entries = []
    for block in p.stdout.replace("\n ", "").split("\n\n"):
        entry = {}
        for line in block.splitlines():
            if ": " in line:
                k, v = line.split(": ", 1)
                entry.setdefault(k.lower(), []).append(v)
        if entry:
            entries.append(entry)
    return p.returncode, entries, p.stderr


mark = LogMark(m)
rc, entries, err = ldapsearch("test1@contoso.com", "pw-one", "(cn=Alice*)")
is_eq(rc, 0, "DavMail signs in to the master and searches (%s)" %
      err.strip())
is_eq([(e.get("mail"), e.get("cn")) for e in entries],
      [(["alice@contoso.com"], ["Alice Lindqvist"])],
      "its LDAP search by name finds the mailbox, with address and name")

lines = [line for line in mark.text().splitlines()
         if "ev=http.request" in line]
ok(lines and "method=GET" in lines[0] and "status=401" in lines[0],
   "DavMail's first request, an unauthenticated GET, is answered 401 "
   "(%s)" % (lines[0].split("ev=http.request", 1)[1] if lines else None))
for op in ("GetFolder", "ConvertId", "ResolveNames"):
    ok(mark.count(r"status=200 .*op=%s\b" % op) >= 1,
       "DavMail's %s is answered 200" % op)
ok(mark.count(r"status=5\d\d") == 0, "no request of DavMail's got a 5xx")

rc, entries, err = ldapsearch("test1@contoso.com", "pw-one", "(cn=Bob*)")
is_eq([(e.get("mail"), e.get("cn")) for e in entries],
      [(["bob@contoso.com"], ["Bob Berg"])], "another name, another person")
# By address: a substring filter, as address books' completion sends;
# an equality on the name.
# An equality (mail=a@b) finds nobody in DavMail 6.0.1 whatever the
# server answers (docs/master.md, DavMail: it checks the results again
# under the LDAP name, which its GAL contacts do not have).
for f in ("(mail=alice@contoso.com*)", "(mail=alice*)",
          "(cn=Alice Lindqvist)",
          "(|(cn=alice@contoso.com*)(mail=alice@contoso.com*))"):
    mark = LogMark(m)
    rc, entries, err = ldapsearch("test1@contoso.com", "pw-one", f)
    is_eq([(e.get("mail"), e.get("cn")) for e in entries],
          [(["alice@contoso.com"], ["Alice Lindqvist"])],
          "a search %s finds the person" % f)
    ok(mark.count(r"op=ResolveNames") >= 1, "through ResolveNames")
rc, entries, err = ldapsearch("test1@contoso.com", "pw-one",
                              "(cn=Nobodyhere*)")
is_eq((rc, entries), (0, []), "a name nobody has finds nobody")
rc, entries, err = ldapsearch("test1@contoso.com", "wrong", "(cn=Alice*)")
is_eq(rc, 49, "a wrong password: DavMail refuses the bind (%s)" %
      err.strip())

stop_davmail()
out.close()
m.stop()
done()
