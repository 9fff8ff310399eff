"""A throwaway MIT Kerberos KDC for the tests, in a temporary directory.

    kdc.py run -- PROGRAM [ARG...]

starts one with the user test1 (a ticket-granting ticket in a cache) and
two services, runs PROGRAM with the environment below, stops the KDC,
removes its directory and exits with PROGRAM's status (meson runs the
unit test of auth/negotiate.c through it):

  KRB5_CONFIG, KRB5CCNAME     the realm CONTOSO.COM, test1's cache
  PHOTOSYNC_TEST_KEYTAB       the keytab of HTTP/portal.contoso.com
  PHOTOSYNC_TEST_OTHER_KEYTAB the keytab of HTTP/other.contoso.com
  PHOTOSYNC_TEST_KDC_DIR      the KDC's directory (for more files)

The integration tests import it:

    kdc = Kdc(realm="CONTOSO.COM")
    kdc.add_user("test1", "pw-one")
    keytab = kdc.add_service("HTTP/portal.contoso.com")
    cache = kdc.kinit("test1", "pw-one")     # a credentials cache file
    env = kdc.env(cache)                       # KRB5_CONFIG, KRB5CCNAME
    kdc.stop()

The KDC is Debian's (krb5-kdc and krb5-admin-server: krb5kdc,
kdb5_util, kadmin.local; krb5-user: kinit, klist). Its database, stash,
configuration files and log live in a directory made with
tempfile.mkdtemp (so in TMPDIR); it listens on a free loopback port, UDP
and TCP. Nothing here reads or writes /etc: every program started gets
KRB5_CONFIG and KRB5_KDC_PROFILE pointing into the directory, and the
replay caches of the servers under test go there too (KRB5RCACHEDIR).

Waiting is for events: the KDC says "commencing operation" in its log
when it serves.
"""
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HANG_GUARD = 60


def _free_port():
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            pass
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port for the KDC")


def _program(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError("%s not found: scripts/deps.sh test installs "
                           "krb5-kdc, krb5-admin-server and krb5-user" %
                           name)
    return path


class Kdc:
    """A KDC for `realm`, started at once; stop() (or the test's exit)
    stops it and removes its directory."""

    def __init__(self, realm="CONTOSO.COM"):
        self.realm = realm
        self.dir = tempfile.mkdtemp(prefix="photosync-kdc-")
        self.port = _free_port()
        self.proc = None
        self.krb5_conf = os.path.join(self.dir, "krb5.conf")
        self.kdc_conf = os.path.join(self.dir, "kdc.conf")
        self.log = os.path.join(self.dir, "kdc.log")
        with open(self.krb5_conf, "w") as f:
            f.write("[libdefaults]\n"
                    " default_realm = %s\n"
                    " dns_lookup_kdc = false\n"
                    " dns_lookup_realm = false\n"
                    " dns_canonicalize_hostname = false\n"
                    " rdns = false\n"
                    " udp_preference_limit = 1\n"
                    "[realms]\n"
                    " %s = {\n  kdc = 127.0.0.1:%d\n }\n"
                    % (realm, realm, self.port))
        with open(self.kdc_conf, "w") as f:
            f.write("[kdcdefaults]\n"
                    " kdc_listen = 127.0.0.1:%d\n"
                    " kdc_tcp_listen = 127.0.0.1:%d\n"
                    "[realms]\n"
                    " %s = {\n"
                    "  database_name = %s\n"
                    "  key_stash_file = %s\n"
                    "  acl_file = %s\n"
                    " }\n"
                    "[logging]\n"
                    " kdc = FILE:%s\n"
                    % (self.port, self.port, realm,
                       os.path.join(self.dir, "principal"),
                       os.path.join(self.dir, "stash"),
                       os.path.join(self.dir, "kadm5.acl"), self.log))
        open(os.path.join(self.dir, "kadm5.acl"), "w").close()
        atexit.register(self.stop)
        self._run([_program("kdb5_util"), "create", "-s", "-r", realm,
                   "-P", "master-" + os.urandom(8).hex()])
        self._start()

    def env(self, cache=None):
        """The environment for a program that uses this realm (and the
        credentials cache `cache`, when given)."""
        env = dict(os.environ)
        env["KRB5_CONFIG"] = self.krb5_conf
        env["KRB5_KDC_PROFILE"] = self.kdc_conf
        env["KRB5RCACHEDIR"] = self.dir
        env.pop("KRB5_KTNAME", None)
        if cache is not None:
            env["KRB5CCNAME"] = "FILE:" + cache
        else:
            env.pop("KRB5CCNAME", None)
        return env

    def _run(self, argv, input=None):
        p = subprocess.run(argv, env=self.env(), input=input,
                           capture_output=True, text=True,
                           timeout=HANG_GUARD)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (
                " ".join(argv), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def _kadmin(self, query):
        return self._run([_program("kadmin.local"), "-r", self.realm, "-q",
                          query])

    def _start(self):
        self.proc = subprocess.Popen([_program("krb5kdc"), "-n", "-r",
                                      self.realm], env=self.env(),
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("krb5kdc exited (%d): %s" % (
                    self.proc.returncode, self.proc.stderr.read()))
            if os.path.exists(self.log) and re.search(
                    r"commencing operation", open(self.log).read()):
                return
            time.sleep(0.05)    # polling the log for the event
        raise RuntimeError("krb5kdc did not start (log: %s)" % self.log)

    def add_user(self, name, password):
        """The principal name@REALM with `password`."""
        self._kadmin("addprinc -pw %s %s" % (password, name))
        return "%s@%s" % (name, self.realm)

    def add_service(self, name, keytab=None):
        """The service principal `name` (e.g. HTTP/portal.contoso.com)
        with a random key, written to a keytab file (returned)."""
        keytab = keytab or os.path.join(
            self.dir, re.sub(r"[^A-Za-z0-9.]", "_", name) + ".keytab")
        self._kadmin("addprinc -randkey %s" % name)
        self._kadmin("ktadd -k %s %s" % (keytab, name))
        return keytab

    def rekey(self, name):
        """A new key for `name` (older keytabs no longer match)."""
        self._kadmin("cpw -randkey %s" % name)

    def kinit(self, name, password, lifetime=None):
        """A credentials cache file holding name's ticket-granting
        ticket (its lifetime, e.g. "10s", when given)."""
        cache = os.path.join(self.dir, "cc-%s-%s" % (
            re.sub(r"[^A-Za-z0-9]", "_", name), os.urandom(4).hex()))
        argv = [_program("kinit")]
        if lifetime:
            argv += ["-l", lifetime]
        argv.append(name)
        p = subprocess.run(argv, env=self.env(cache), input=password + "\n",
                           capture_output=True, text=True,
                           timeout=HANG_GUARD)
        if p.returncode != 0:
            raise RuntimeError("kinit %s failed: %s" % (name, p.stderr))
        return cache

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def run_command(argv):
    kdc = Kdc()
    try:
        kdc.add_user("test1", "pw-one")
        env = kdc.env(kdc.kinit("test1", "pw-one"))
        env["PHOTOSYNC_TEST_KEYTAB"] = kdc.add_service(
            "HTTP/portal.contoso.com")
        env["PHOTOSYNC_TEST_OTHER_KEYTAB"] = kdc.add_service(
            "HTTP/other.contoso.com")
        env["PHOTOSYNC_TEST_KDC_DIR"] = kdc.dir
        return subprocess.run(argv, env=env).returncode
    finally:
        kdc.stop()


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "run" or args[1] != "--":
        print("usage: kdc.py run -- PROGRAM [ARG...]", file=sys.stderr)
        return 2
    return run_command(args[2:])


if __name__ == "__main__":
    sys.exit(main())
