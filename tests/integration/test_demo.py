"""photosync demo: sets everything up through the admin commands, serves,
writes demo.env, and the whole chain works: the owner's visit fetches the
high-resolution photo, the other user then sees it, admin commands work on
the state while it runs, Ctrl-C stops it cleanly."""
import os
import re
import signal
import socket
import subprocess
import time

from psync import (PHOTOSYNC, basic, done, free_port_pair, identify, is_eq,
                   ok, request, run, tmpdir, write)



work = tmpdir("demo")
state = os.path.join(work, "demo")
base = free_port_pair()
out_path = os.path.join(work, "demo.out")
out = open(out_path, "w")
proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state, "--port-base",
                         str(base)], stdout=out, stderr=subprocess.STDOUT)
deadline = time.monotonic() + 90
text = ""
while time.monotonic() < deadline:
    text = open(out_path).read()
    if "Press Ctrl-C" in text or proc.poll() is not None:
        break
    time.sleep(0.2)
ok("Press Ctrl-C" in text, "the demo starts and says how to stop it")
ok("https://localhost:%d/my" % (base + 1) in text,
   "it prints where to point a browser")
ok("contoso\\test1" in text and "password" in text,
   "it prints how to sign in")
ok("curl --cacert" in text and "GetUserPhoto" in text,
   "it prints how to fetch a photo with curl")

env = {}
for line in open(os.path.join(state, "demo.env")):
    g = re.match(r"^([A-Z_]+)='(.*)'$", line.strip())
    if g:
        env[g.group(1)] = g.group(2)
for k in ("PORTAL_URL", "MASTER_URL", "AUTODISCOVER_DOMAIN", "CA_FILE",
          "PORTAL_DIR", "MASTER_DIR", "DEMO_PASSWORD"):
    ok(env.get(k), "demo.env has %s" % k)
pw = env["DEMO_PASSWORD"]
ca = env["CA_FILE"]
T1 = {"Authorization": basic("contoso\\test1", pw)}
T2 = {"Authorization": basic("contoso\\test2", pw)}
P = "/_layouts/15/userphoto.aspx?size=%s&accountname=contoso%%5C%s"


def portal(path, h):
    return request("localhost", base + 1, "GET", path, ca, h)


r = request("localhost", base, "GET",
            "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
            "size=HR648x648", ca,
            {"Authorization": basic("test1@contoso.com", pw)})
ok(r.status == 200, "the master serves test1's photo (TLS from the CA)")
is_eq(identify(write(os.path.join(work, "m.jpg"), r.body))[:2], (648, 648),
      "it is high-resolution (648x648)")
r2 = request("localhost", base, "GET",
             "/ews/exchange.asmx/s/GetUserPhoto?email=test2@contoso.com&"
             "size=HR648x648", ca,
             {"Authorization": basic("test2@contoso.com", pw)})
ok(r2.status == 200 and r2.body != r.body, "test2's photo is different")
r = portal(P % ("M", "test1"), T2)
ok("placeholder" in r.header("ETag"), "before test1's visit: placeholder")
r = portal("/my", T1)
ok(r.status == 200 and "Test One" in r.text(), "test1's /my page")
r = portal(P % ("L", "test1"), T1)
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "test1's own L photo comes from the master")
is_eq(identify(write(os.path.join(work, "l.jpg"), r.body))[:2], (300, 300),
      "L thumbnail is 300x300")
r = portal(P % ("M", "test1"), T2)
ok("placeholder" not in r.header("ETag"), "test2 then sees test1's photo")
r = portal(P % ("L", "test3"), {"Authorization": basic("contoso\\test3",
                                                        pw)})
ok("placeholder" in r.header("ETag"), "test3 (no mailbox): placeholder")

# Admin commands on the running demo's state.
st, o, e = run("portal", "webapp", "show", "--dir", env["PORTAL_DIR"])
ok("photo-import            on" in o and "6h" in o and "1h" in o,
   "webapp show on PORTAL_DIR: import on, 6h/1h")
st, o, e = run("master", "partner", "list", "--dir", env["MASTER_DIR"])
ok("SharePoint" in o, "the master trusts the portal")
st, o, e = run("portal", "issuer", "list", "--dir", env["PORTAL_DIR"])
ok("Exchange" in o, "the portal trusts the master")

proc.send_signal(signal.SIGINT)
try:
    proc.wait(timeout=20)
except subprocess.TimeoutExpired:
    proc.kill()
is_eq(proc.returncode, 0, "Ctrl-C stops the demo, exit 0")
time.sleep(0.3)
s = socket.socket()
ok(s.connect_ex(("127.0.0.1", base + 1)) != 0, "the portal is gone")
s.close()
out.close()

# A second start on the same directory reuses it.
proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state, "--port-base",
                         str(base)], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
line, t0 = "", time.monotonic()
buf = ""
while time.monotonic() - t0 < 60:
    line = proc.stdout.readline()
    buf += line
    if "Press Ctrl-C" in line or not line:
        break
ok("Press Ctrl-C" in buf and "setting up" not in buf,
   "a second start reuses the state")
proc.send_signal(signal.SIGINT)
proc.wait(timeout=20)
done()
