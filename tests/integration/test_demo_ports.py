"""photosync demo and its ports: --port-base refuses what is not a port
base; when another program holds one of the demo's ports the demo says
which and what to do, exits non-zero, and the next run (the port freed)
finishes the whole set-up, trust included, so the photos are served (and
the curl command it prints works); a directory keeps the ports it was set
up for."""
import os
import re
import signal
import socket
import subprocess
import time

from psync import (PHOTOSYNC, basic, done, end_process, free_port_pair,
                   identify, is_eq, ok, request, run, sanitizer_clean, tmpdir)



class Ended:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def demo(state, *args):
    """Runs the demo to its end (it ends at once on a refusal). One that
    starts setting up or serving instead is stopped as a user would, with
    Ctrl-C (so it stops its servers), and counts as not refused: exit
    status None."""
    err_path = os.path.join(work, "demo.err")
    with open(err_path, "w") as err:
        p = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state] +
                             list(args), stdout=subprocess.PIPE,
                             stderr=err, text=True)
        o, rc = "", None
        for line in p.stdout:
            o += line
            if "setting up" in line or "Press Ctrl-C" in line:
                p.send_signal(signal.SIGINT)
                rc = "not refused"
        p.wait()
        if rc is None:
            rc = p.returncode
        else:
            rc = None
    e = open(err_path).read()
    sanitizer_clean(e, "photosync demo " + " ".join(args))
    return Ended(rc, o, e)


work = tmpdir("demo-ports")

# Not a port base: refused before anything is made.
for bad in ("abc", "0", "-1", "65535", "70000", "8443x", "", " 9000",
            "99999999999999999999"):
    state = os.path.join(work, "refused")
    p = demo(state, "--port-base", bad)
    is_eq(p.returncode, 2, "--port-base %r: exit status 2" % bad)
    ok("not a port base" in p.stderr and "1 to 65534" in p.stderr,
       "--port-base %r: says what a port base is" % bad)
    ok(not os.path.exists(state), "--port-base %r: nothing made" % bad)

# Another program holds the portal's port.
base = free_port_pair()
state = os.path.join(work, "demo")
holder = socket.socket()
holder.bind(("127.0.0.1", base + 1))
holder.listen(1)
p = demo(state, "--port-base", str(base))
holder.close()
is_eq(p.returncode, 1, "port taken: exit status 1")
ok("port %d is in use" % (base + 1) in p.stderr,
   "port taken: it names the port")
ok("--port-base" in p.stderr, "port taken: it says how to use other ports")

# The next run, the port free again, sets everything up.
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
ok("Press Ctrl-C" in text, "next run: the demo starts")
ok("portal trusts the master" in text and "master trusts the portal" in
   text, "next run: both trust steps run")
st, o, e = run("portal", "issuer", "list", "--dir",
               os.path.join(state, "portal"))
ok("Exchange" in o, "next run: the portal trusts the master")
st, o, e = run("master", "partner", "list", "--dir",
               os.path.join(state, "master"))
ok("SharePoint" in o, "next run: the master trusts the portal")
pw = open(os.path.join(state, "password")).read().strip()
ca = os.path.join(state, "ca", "ca-cert.pem")
T1 = {"Authorization": basic("contoso\\test1", pw)}
r = request("localhost", base + 1, "GET", "/my", ca, T1)
ok(r.status == 200, "next run: test1's /my page")
r = request("localhost", base + 1, "GET", "/_layouts/15/userphoto.aspx?"
            "size=L&accountname=contoso%5Ctest1", ca, T1)
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "next run: test1's photo is synced from the master and served")

# The curl command it prints fetches test1's photo as printed.
m = re.search(r"^ *(curl --cacert .*?-o test1\.jpg)$", text, re.S | re.M)
ok(m, "it prints a curl command")
if m:
    c = subprocess.run(["/bin/sh", "-c", m.group(1)], cwd=work,
                       capture_output=True, text=True)
    is_eq(c.returncode, 0, "the printed curl command works")
    is_eq(identify(os.path.join(work, "test1.jpg"))[:2], (648, 648),
          "it fetches test1's 648x648 photo")

status = end_process(proc, signal.SIGINT, 20)
out.close()
is_eq(status, 0, "Ctrl-C stops the demo")

# The directory keeps its ports.
p = demo(state, "--port-base", str(base + 2))
is_eq(p.returncode, 2, "other ports on a set-up directory: exit status 2")
ok("set up for ports %d and %d" % (base, base + 1) in p.stderr,
   "other ports on a set-up directory: it says which it has")
done()
