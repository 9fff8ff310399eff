"""photosync demo --sso: the demo with a Kerberos KDC of its own (D/kdc,
port N+2): it prints how to get a ticket; with the ticket, curl
--negotiate gets test1's /my at the portal and test1's photo from the
master's EWS without a password; Ctrl-C stops the KDC with the servers.
--sso is refused with --nodes."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from psync import (PHOTOSYNC, done, end_process, free_port_pair, is_eq, ok,
                   run, skip_all, tmpdir)

if shutil.which("krb5kdc", path="/usr/sbin:/sbin:" +
                os.environ.get("PATH", "")) is None:
    skip_all("krb5-kdc is not installed (scripts/deps.sh demo)")


def udp_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_free(port):
    """Free to listen on (a connection of the KDC's still closing, in
    TIME_WAIT, does not count: SO_REUSEADDR, as servers bind)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


rc, out, err = run("demo", "--sso", "--nodes", "2", "--dir",
                   os.path.join(tmpdir("demo-sso-nodes"), "d"), check=False)
ok(rc == 2 and "--sso" in err, "--sso with --nodes: refused (usage)")

work = tmpdir("demo-sso")
state = os.path.join(work, "demo")
for _ in range(50):
    base = free_port_pair()
    if tcp_free(base + 2) and udp_free(base + 2):
        break
out_path = os.path.join(work, "demo.out")
out = open(out_path, "w")
proc = subprocess.Popen([PHOTOSYNC, "demo", "--sso", "--dir", state,
                         "--port-base", str(base)], stdout=out,
                        stderr=subprocess.STDOUT)
deadline = time.monotonic() + 120
text = ""
while time.monotonic() < deadline:
    text = open(out_path).read()
    if "Press Ctrl-C" in text or proc.poll() is not None:
        break
    time.sleep(0.2)    # polling the demo's output for the event
ok("Press Ctrl-C" in text, "demo --sso starts")
ok(re.search(r"Kerberos realm CONTOSO.COM \(KDC on port %d\) \.+ ok" %
             (base + 2), text), "it sets up the realm, the KDC on N+2")
g = re.search(r"export KRB5_CONFIG=(\S+) KRB5CCNAME=(\S+)", text)
ok(g and "kinit test1" in text and
   "--auth-server-allowlist=localhost" in text,
   "it prints how to get a ticket and start a browser with it")

env = dict(os.environ)
if g:
    env["KRB5_CONFIG"] = g.group(1)
    env["KRB5CCNAME"] = g.group(2)
pw = open(os.path.join(state, "password")).read().strip()
k = subprocess.run(["kinit", "test1"], env=env, input=pw + "\n",
                   capture_output=True, text=True, timeout=60)
is_eq(k.returncode, 0, "kinit test1 with the demo's password")
ca = os.path.join(state, "ca", "ca-cert.pem")


def curl(url):
    c = subprocess.run(["curl", "-sS", "--negotiate", "-u", ":",
                        "--cacert", ca, "-w", "\n%{http_code}", url],
                       env=env, capture_output=True, timeout=120)
    body, _, status = c.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(status or 0), body


st, body = curl("https://localhost:%d/my" % (base + 1))
ok(st == 200 and "Test One" in body and 'name="password"' not in body,
   "with the ticket: test1's /my at the portal, no password")
st, body = curl("https://localhost:%d/ews/exchange.asmx/s/GetUserPhoto?"
                "email=test1@contoso.com&size=HR96x96" % base)
is_eq(st, 200, "and test1's photo from the master's EWS")

is_eq(end_process(proc, signal.SIGINT, 60), 0, "Ctrl-C stops the demo")
ok(udp_free(base + 2) and tcp_free(base + 2), "and its KDC")
done()
