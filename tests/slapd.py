"""A throwaway OpenLDAP server for the tests, in a temporary directory.

    slapd.py run -- PROGRAM [ARG...]

starts one with 1,200 people (more than one page of the server's 500),
one of them disabled (Active Directory's userAccountControl 514) and
one with a password, runs PROGRAM with the environment below, stops
the server, removes its directory and exits with PROGRAM's status (meson
runs the unit test of directory/ldap.c through it):

  PHOTOSYNC_TEST_LDAP_URI       ldap://127.0.0.1:PORT
  PHOTOSYNC_TEST_LDAP_BASE      dc=contoso,dc=com
  PHOTOSYNC_TEST_LDAP_ADMIN     the admin's DN
  PHOTOSYNC_TEST_LDAP_PASSWORD  the admin's password

The integration tests import it:

    d = Slapd()                       # dc=contoso,dc=com, empty
    d.add_users(5000)                 # ou=people: uid, cn, mail, AD's names
    d.ldapmodify(ldif)                # changes, as an admin would make them
    d.uri, d.base, d.admin_dn, d.admin_password
    d.stop()

The server is Debian's (the slapd package: slapd, slapadd; ldap-utils:
ldapsearch, ldapmodify). Its configuration is a slapd.conf written here
(Debian's schemas, the project's thumbnailPhoto schema from data/ldap,
a schema of Active Directory's attribute names that photosync reads by
default, whose user class allows thumbnailPhoto, an MDB database), its data in the directory,
and it listens on a free loopback port (ldap://, StartTLS when a
certificate is given). The users carry both attribute sets, so a test
can sync with Active Directory's names (the defaults) or OpenLDAP's.

Waiting is for events: after starting it, a search of the root entry
answers when the server serves.
"""
import atexit
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HANG_GUARD = 60
# The schema of thumbnailPhoto that ships with the project.
THUMBNAIL_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "data", "ldap",
                                "thumbnailphoto.schema")

# Active Directory's attribute names, with Active Directory's OIDs, as
# an auxiliary class for inetOrgPerson entries (and its class of
# computers, which photosync's default filter leaves out). Its user
# class allows thumbnailPhoto, as Active Directory's does: the
# attribute is the project's own schema file, loaded before.
AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' AUXILIARY
  MAY ( sAMAccountName $ userPrincipalName $ objectGUID $
        userAccountControl $ thumbnailPhoto ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' AUXILIARY )
"""


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _program(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError("%s not found: scripts/deps.sh test installs "
                           "slapd and ldap-utils" % name)
    return path


def user_ldif(base, i, domain="contoso.com", name=None):
    """The LDIF of the user number i: uid u<i>, both attribute sets."""
    uid = "u%05d" % i
    guid = uuid.UUID(int=i + 1).bytes_le
    return ("dn: uid=%s,ou=people,%s\n"
            "objectClass: inetOrgPerson\n"
            "objectClass: user\n"
            "uid: %s\n"
            "cn: %s\n"
            "sn: %s\n"
            "displayName: %s\n"
            "mail: %s@%s\n"
            "sAMAccountName: %s\n"
            "userPrincipalName: %s@%s\n"
            "objectGUID:: %s\n\n" % (
                uid, base, uid, name or "User %d" % i, uid,
                name or "User %d" % i, uid, domain, uid, uid, domain,
                base64.b64encode(guid).decode()))


class Slapd:
    """An OpenLDAP server for dc=contoso,dc=com, started at once; stop()
    (or the test's exit) stops it and removes its directory."""

    def __init__(self, base="dc=contoso,dc=com", parent=None):
        self.base = base
        self.dir = tempfile.mkdtemp(prefix="photosync-slapd-", dir=parent)
        self.port = _free_port()
        self.uri = "ldap://127.0.0.1:%d" % self.port
        self.admin_dn = "cn=admin," + base
        self.admin_password = "admin-" + os.urandom(6).hex()
        self.proc = None
        os.mkdir(os.path.join(self.dir, "db"))
        with open(os.path.join(self.dir, "ad.schema"), "w") as f:
            f.write(AD_SCHEMA)
        self.conf = os.path.join(self.dir, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write("include /etc/ldap/schema/core.schema\n"
                    "include /etc/ldap/schema/cosine.schema\n"
                    "include /etc/ldap/schema/inetorgperson.schema\n"
                    "include %s\n"
                    "include %s\n"
                    "modulepath /usr/lib/ldap\n"
                    "moduleload back_mdb\n"
                    "pidfile %s\n"
                    "sizelimit size.soft=500 size.hard=500 size.pr=500 "
                    "size.prtotal=unlimited\n"
                    "database mdb\n"
                    "maxsize 1073741824\n"
                    "suffix \"%s\"\n"
                    "rootdn \"%s\"\n"
                    "rootpw %s\n"
                    "directory %s\n"
                    "index objectClass eq\n"
                    "index uid,sAMAccountName,mail eq\n"
                    "access to attrs=userPassword by self write "
                    "by anonymous auth by * none\n"
                    "access to * by * read\n" % (
                        THUMBNAIL_SCHEMA,
                        os.path.join(self.dir, "ad.schema"),
                        os.path.join(self.dir, "slapd.pid"), base,
                        self.admin_dn, self.admin_password,
                        os.path.join(self.dir, "db")))
        atexit.register(self.stop)
        dc = base.split(",")[0].split("=")[1]
        self.slapadd("dn: %s\nobjectClass: dcObject\nobjectClass: "
                     "organization\no: %s\ndc: %s\n\n"
                     "dn: ou=people,%s\nobjectClass: organizationalUnit\n"
                     "ou: people\n\n" % (base, dc, dc, base))
        self.start()

    def slapadd(self, ldif):
        """Loads `ldif` while the server is stopped (fast, for many)."""
        running = self.proc is not None
        if running:
            self.halt()
        p = subprocess.run([_program("slapadd"), "-f", self.conf, "-q"],
                           input=ldif, capture_output=True, text=True,
                           timeout=HANG_GUARD * 5)
        if p.returncode != 0:
            raise RuntimeError("slapadd failed: %s" % p.stderr)
        if running:
            self.start()

    def add_users(self, n, start=0):
        self.slapadd("".join(user_ldif(self.base, i)
                             for i in range(start, start + n)))

    def ldapmodify(self, ldif):
        p = subprocess.run([_program("ldapmodify"), "-x", "-H", self.uri,
                            "-D", self.admin_dn, "-w", self.admin_password],
                           input=ldif, capture_output=True, text=True,
                           timeout=HANG_GUARD)
        if p.returncode != 0:
            raise RuntimeError("ldapmodify failed: %s" % p.stderr)

    def photo_attributes(self, uid):
        """uid's thumbnailPhoto and jpegPhoto, as ldapsearch gives them:
        a dict of the attributes present, their values decoded."""
        p = subprocess.run(
            [_program("ldapsearch"), "-x", "-LLL", "-o", "ldif-wrap=no",
             "-H", self.uri, "-b", "uid=%s,ou=people,%s" % (uid, self.base),
             "-s", "base", "(objectClass=*)", "thumbnailPhoto", "jpegPhoto"],
            capture_output=True, text=True, timeout=HANG_GUARD, check=True)
        found = {}
        for line in p.stdout.splitlines():
            name, sep, value = line.partition(":: ")
            if sep and name in ("thumbnailPhoto", "jpegPhoto"):
                found[name] = base64.b64decode(value)
        return found

    def start(self):
        self.proc = subprocess.Popen(
            [_program("slapd"), "-f", self.conf, "-h", self.uri, "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited (%d): %s" % (
                    self.proc.returncode, self.proc.stderr.read()))
            p = subprocess.run([_program("ldapsearch"), "-x", "-H",
                                self.uri, "-s", "base", "-b", "",
                                "(objectClass=*)"], capture_output=True,
                               timeout=HANG_GUARD)
            if p.returncode == 0:
                return
            time.sleep(0.05)    # polling for the server to answer
        raise RuntimeError("slapd did not start")

    def halt(self):
        """Stops the server, keeping its data (start() again)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_command(argv):
    d = Slapd()
    try:
        d.add_users(1200)
        d.slapadd("dn: uid=test1,ou=people,%s\n"
                  "objectClass: inetOrgPerson\nobjectClass: user\n"
                  "uid: test1\ncn: Test One\nsn: One\n"
                  "displayName: Test One\nmail: test1@contoso.com\n"
                  "sAMAccountName: test1\n"
                  "userPrincipalName: test1@contoso.com\n"
                  "objectGUID:: %s\nuserPassword: pw-one\n\n"
                  "dn: uid=gone,ou=people,%s\n"
                  "objectClass: inetOrgPerson\nobjectClass: user\n"
                  "uid: gone\ncn: Gone\nsn: Gone\n"
                  "sAMAccountName: gone\nuserAccountControl: 514\n"
                  "objectGUID:: %s\n\n" % (
                      d.base, base64.b64encode(uuid.UUID(
                          int=0x7e57).bytes_le).decode(), d.base,
                      base64.b64encode(uuid.UUID(
                          int=0x90e).bytes_le).decode()))
        env = dict(os.environ)
        env.update({"PHOTOSYNC_TEST_LDAP_URI": d.uri,
                    "PHOTOSYNC_TEST_LDAP_BASE": d.base,
                    "PHOTOSYNC_TEST_LDAP_ADMIN": d.admin_dn,
                    "PHOTOSYNC_TEST_LDAP_PASSWORD": d.admin_password})
        return subprocess.run(argv, env=env).returncode
    finally:
        d.stop()


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "run" or args[1] != "--":
        print("usage: slapd.py run -- PROGRAM [ARG...]", file=sys.stderr)
        return 2
    return run_command(args[2:])


if __name__ == "__main__":
    sys.exit(main())
