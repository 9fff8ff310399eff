"""photosync demo --directory: the demo's people in a slapd of the demo's
own (port N+3); the master's mailboxes (test1, test2: test3 has none)
and the portal's users (test1-3) come from it, passwords are checked by
it, serve runs the sync on its schedule, the master writes a photo change
to the person's thumbnailPhoto (the project's schema loaded by the demo's
slapd), as ldapsearch shows; Ctrl-C stops slapd too; a later
run reuses the directory, and one without --directory on it is refused."""
import os
import re
import signal
import socket
import subprocess
import time

from psync import (PHOTOSYNC, basic, done, free_port, is_eq, make_image,
                   ok, request, run, tmpdir, wait_for)

work = tmpdir("demo-directory")
state = os.path.join(work, "demo")


def free_ports():
    """Four consecutive free ports (N, N+1, N+2 and the directory's N+3)."""
    for _ in range(50):
        port = free_port()
        if port >= 65532:
            continue
        held = []
        try:
            for p in (port + 1, port + 2, port + 3):
                t = socket.socket()
                held.append(t)
                t.bind(("127.0.0.1", p))
            return port
        except OSError:
            pass
        finally:
            for t in held:
                t.close()
    raise RuntimeError("no three free ports")


base = free_ports()


def start(*extra):
    out_path = os.path.join(work, "demo-%d.out" % len(os.listdir(work)))
    out = open(out_path, "w")
    proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", state,
                             "--port-base", str(base)] + list(extra),
                            stdout=out, stderr=subprocess.STDOUT)
    text = wait_for(lambda: (proc.poll() is not None or "Press Ctrl-C" in
                             open(out_path).read()) and
                    open(out_path).read(), timeout=120) or ""
    return proc, text


def slapd_pid():
    try:
        return int(open(os.path.join(state, "ldap", "slapd.pid")).read())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


proc, text = start("--directory")
ok("Press Ctrl-C" in text and "ldap://127.0.0.1:%d" % (base + 3) in text,
   "the demo with --directory starts and names its directory")
pw = open(os.path.join(state, "password")).read().strip()
ca = os.path.join(state, "ca", "ca-cert.pem")


def portal(account, password):
    return request("localhost", base + 1, "GET", "/my", ca,
                   {"Authorization": basic(account, password)}).status


is_eq(portal("contoso\\test1", pw), 200, "test1 signs in to the portal "
      "with the directory's password")
is_eq(portal("contoso\\test3", "wrong"), 401, "a wrong one is refused")
r = request("localhost", base, "GET",
            "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
            "size=HR648x648", ca,
            {"Authorization": basic("test1@contoso.com", pw)})
is_eq(r.status, 200, "the master serves test1's photo to test1, signed "
      "in by the directory")
st, out, err = run("portal", "user", "list", "--dir",
                   os.path.join(state, "portal"))
is_eq(sorted(re.findall(r"contoso\\(test\d)", out)),
      ["test1", "test2", "test3"], "the portal's users came from it")
st, out, err = run("master", "mailbox", "list", "--dir",
                   os.path.join(state, "master"))
is_eq(sorted(re.findall(r"(test\d)@", out)), ["test1", "test2"],
      "the master's mailboxes too, test3 left out (no mailbox)")
ok(wait_for(lambda: "ev=directory.sync records=users" in open(
    os.path.join(state, "portal.log")).read()), "the portal's serve runs "
   "the sync on its schedule")
pid = slapd_pid()
ok(pid is not None and alive(pid), "slapd runs")


def thumbnail(uid):
    """test's thumbnailPhoto as ldapsearch prints it (base64), or None."""
    p = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no",
                        "-H", "ldap://127.0.0.1:%d" % (base + 3), "-b",
                        "dc=contoso,dc=com", "(uid=%s)" % uid,
                        "thumbnailPhoto"], capture_output=True, text=True)
    g = re.search(r"^thumbnailPhoto:: (\S+)", p.stdout, re.M)
    return g.group(1) if g else None


first = wait_for(lambda: thumbnail("test1"), timeout=60)
ok(first and first.startswith("/9j/"), "the master wrote test1's photo to "
   "its entry's thumbnailPhoto (a JPEG)")
st, out, err = run("master", "photo", "set", "--dir",
                   os.path.join(state, "master"), "test1@contoso.com",
                   "--file", make_image(os.path.join(work, "new.png"),
                                        "300x200"))
is_eq(st, 0, "test1's photo changed at the master")
second = wait_for(lambda: (thumbnail("test1") or first) != first and
                  thumbnail("test1"), timeout=60)
ok(second and second.startswith("/9j/"),
   "ldapsearch returns test1's new thumbnailPhoto after the change")
proc.send_signal(signal.SIGINT)
is_eq(proc.wait(timeout=60), 0, "Ctrl-C stops the demo")
ok(wait_for(lambda: not alive(pid), timeout=30), "and its slapd")

proc, text = start()
is_eq(proc.wait(timeout=60), 2, "the directory's demo run without "
      "--directory is refused")
ok("--directory" in text, "saying so")
proc, text = start("--directory")
ok("Press Ctrl-C" in text and "setting up" not in text,
   "run again with --directory, it reuses what is there")
is_eq(portal("contoso\\test2", pw), 200, "and the directory answers again")
proc.send_signal(signal.SIGINT)
is_eq(proc.wait(timeout=60), 0, "stopped again")
done()
