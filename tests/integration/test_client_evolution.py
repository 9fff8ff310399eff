"""Acceptance with Evolution's Exchange support as Debian ships it
(evolution-ews 3.46 in evolution-data-server), driven headlessly: its
address book of the Global Address List connects to photosync master
serve (GetFolder, whose ServerVersionInfo says Exchange 2013), finds a
person by name (ResolveNames) and fetches their photo itself
(GetUserPhoto, as its "fetch-gal-photos" setting asks), which must be
the master's 96x96 photo, byte for byte.

Everything runs in a private session: XDG directories of this test's
own, its own D-Bus daemon (which activates Evolution's source registry
and address-book factory), a GNOME keyring unlocked with a throw-away
password (the registry looks the account's password up there; the
client stores it first), one address book source written as a key file
(the EWS account's settings and the address book in one source, so no
account collection backend runs beside it), the master's certificate
trusted through the source's own SslTrust entry. All of it is one
process group, ended at exit.

evolution-ews 3.46 sometimes never finishes connecting an address book
(when its first connection attempt, made before the registry has
handed it the password, is dropped, it joins the connection's worker
thread, which may not have started its loop yet: a hang before any
request is sent, seen in one start in six to one in two); the client
then reports "not connected" and the test starts the whole session
again (under load, most starts can hang)."""
import base64
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time

from psync import (HANG_GUARD, LogMark, Master, basic, done, is_eq,
                   make_image, ok, tmpdir, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_UID = "photosync-gal"
# A connection that works is made in about a second (the master's first
# password check included); one that hangs never is. Starts are tried
# until one connects, ATTEMPTS at most, within ATTEMPTS_SECONDS.
ATTEMPTS = 20
ATTEMPTS_SECONDS = 200
CONNECT_SECONDS = 8.0

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("alice@contoso.com", "pw-two", name="Alice Lindqvist")
m.cmd("photo", "set", "alice@contoso.com", "--file",
      make_image(os.path.join(tmpdir("evolution-img"), "a.jpg"), "300x300"))
m.start()

# The key files of Evolution's sources: [Ews Backend] holds the
# account's settings (evolution-ews looks for them on the source or its
# ancestors); GalUid naming the source itself makes it the GAL, which
# evolution-ews searches with ResolveNames (OabOffline=false) and whose
# contacts' photos it fetches with GetUserPhoto (FetchGalPhotos=true).
# AuthMechanism PLAIN is Basic. SslTrust is what Evolution's trust
# prompt writes on "accept": the host and the certificate's SHA-256.
with open(m.ca) as f:
    cert_sha256 = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()
SOURCE = """[Data Source]
DisplayName=Global Address List
Enabled=true
Parent=

[Address Book]
BackendName=ews

[Authentication]
Host={host}
Method=PLAIN
Port={port}
User=test1@contoso.com

[Ews Folder]
Id=global-address-list
FetchGalPhotos=true
UsePrimaryAddress=true

[Offline]
StaySynchronized=false

[Ews Backend]
AuthMechanism=PLAIN
Email=test1@contoso.com
GalUid={uid}
Host={host}
Hosturl=https://{host}:{port}/EWS/Exchange.asmx
OabOffline=false
Port={port}
User=test1@contoso.com
ListenNotifications=false

[WebDAV Backend]
SslTrust=accept|{host}|{sha256}
""".format(host=m.host, port=m.port, uid=SOURCE_UID, sha256=cert_sha256)


def alive_in_group(pgid):
    """The processes of group pgid that have not exited (zombies left to
    whoever reaps them are not counted)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class EvolutionSession:
    """A private desktop session for Evolution: XDG directories, a D-Bus
    daemon and an unlocked keyring, all in one process group."""

    def __init__(self):
        self.dir = tmpdir("evolution")
        env = dict(os.environ)
        for name in ("config", "data", "cache", "runtime", "home"):
            os.makedirs(os.path.join(self.dir, name), mode=0o700)
        env.update(XDG_CONFIG_HOME=self.dir + "/config",
                   XDG_DATA_HOME=self.dir + "/data",
                   XDG_CACHE_HOME=self.dir + "/cache",
                   XDG_RUNTIME_DIR=self.dir + "/runtime",
                   HOME=self.dir + "/home",
                   # evolution-ews writes every EWS request and answer
                   # to the factory's error output (the session's log)
                   EWS_DEBUG="2",
                   # Evolution reads its settings from a key file here
                   # (no dconf): the backends are online whatever the
                   # machine's network monitor says.
                   GSETTINGS_BACKEND="keyfile")
        for name in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY",
                     "WAYLAND_DISPLAY"):
            env.pop(name, None)
        settings = os.path.join(self.dir, "config", "glib-2.0", "settings")
        os.makedirs(settings)
        with open(os.path.join(settings, "keyfile"), "w") as f:
            f.write("[org/gnome/evolution-data-server]\n"
                    "network-monitor-gio-name='always-online'\n")
        sources = os.path.join(self.dir, "config", "evolution", "sources")
        os.makedirs(sources)
        with open(os.path.join(sources, SOURCE_UID + ".source"), "w") as f:
            f.write(SOURCE)
        self.log_path = os.path.join(self.dir, "session.log")
        self.log = open(self.log_path, "ab")
        socket = os.path.join(self.dir, "runtime", "bus")
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile",
             "--address=unix:path=" + socket],
            env=env, stdout=self.log, stderr=self.log, process_group=0)
        self.pgid = self.bus.pid
        env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=" + socket
        self.env = env
        if not wait_for(lambda: os.path.exists(socket) or
                        self.bus.poll() is not None):
            raise RuntimeError("dbus-daemon did not start")
        # The keyring, unlocked (made, the first time) with the password
        # on its standard input; it serves org.freedesktop.secrets.
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock",
             "--components=secrets"], env=env, stdin=subprocess.PIPE,
            stdout=self.log, stderr=self.log, process_group=self.pgid)
        keyring.stdin.write(b"throw-away keyring password")
        keyring.stdin.close()

    def client(self, name, address):
        """Runs evolution_client.py in the session: its JSON answer."""
        p = subprocess.run(
            [sys.executable, os.path.join(HERE, "evolution_client.py"),
             SOURCE_UID, "pw-one", name, address, str(CONNECT_SECONDS),
             str(HANG_GUARD)], env=self.env, capture_output=True,
            text=True, timeout=HANG_GUARD * 3)
        sys.stdout.write("".join("# " + line + "\n" for line in
                                 p.stderr.splitlines()[-20:]))
        lines = p.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {
            "connected": False, "error": "exit %d" % p.returncode}

    def stop(self):
        """Ends every process of the session and waits for them."""
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.bus.wait()
        if not wait_for(lambda: not alive_in_group(self.pgid), 20):
            for pid in alive_in_group(self.pgid):
                os.kill(pid, signal.SIGKILL)
        self.log.close()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


mark = LogMark(m)
answer = None
started = time.monotonic()
for attempt in range(ATTEMPTS):
    if time.monotonic() - started > ATTEMPTS_SECONDS:
        break
    session = EvolutionSession()
    attempt_mark = LogMark(m)
    try:
        answer = session.client("Alice", "alice@contoso.com")
        session_log = session.logs()
    finally:
        session.stop()
    if answer.get("connected"):
        break
    print("# attempt %d: the address book did not connect (%s)" %
          (attempt + 1, answer.get("error")), flush=True)
    if attempt_mark.count(r"ev=http\.request .*path=/EWS/"):
        # not the hang (which sends nothing): the master's answers did
        # not satisfy it, which another start will not change
        print("# it spoke to the master: not started again", flush=True)
        break
ok(answer.get("connected"),
   "evolution-ews connects its address book to the master")

# What evolution-ews sent first, and what it learnt from the answer.
first = mark.text().split("ev=http.request", 1)[-1].split("\n", 1)[0]
ok("op=GetFolder" in first and "status=200" in first,
   "its first request is GetFolder, answered 200 (%s)" % first.strip())
ok('Version="Exchange2013"' in session_log,
   "the answer it read carries ServerVersionInfo Version=Exchange2013")

found = answer.get("found") or []
is_eq([(c["email"], c["full_name"]) for c in found],
      [("alice@contoso.com", "Alice Lindqvist")],
      "its GAL search by name finds the mailbox (ResolveNames)")
ok(mark.count(r"op=ResolveNames") >= 1, "the search was a ResolveNames")
is_eq(answer.get("nobody"), 0, "a name nobody has finds nobody")

ok(answer.get("connected") and
   mark.wait(r"op=GetUserPhoto email=alice@contoso\.com"),
   "evolution-ews asks for the photo itself (GetUserPhoto)")
want = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=alice@contoso.com"
             "&size=HR96x96",
             {"Authorization": basic("test1@contoso.com", "pw-one")})
is_eq(want.status, 200, "the master has a 96x96 photo of the person")
got = base64.b64decode(answer["photo"]) if answer.get("photo") else None
ok(got is not None and got == want.body,
   "the contact's photo in Evolution is the master's HR96x96 photo, "
   "byte for byte (%s bytes, want %d)" %
   (len(got) if got else None, len(want.body)))
ok("<messages:SizeRequested>HR96x96</messages:SizeRequested>" in session_log,
   "it asked for the size HR96x96")

m.stop()
done()
