"""State files are their owner's alone: `master init`, `portal init` and
the demo make the state directory 0700 and every file in it 0600 (keys,
certificates, the database and SQLite's journals or, on PostgreSQL,
what the directory keeps of the store's address, the demo's own files),
whatever the directory's mode was before and whatever the umask: here
the directories are made 0755 beforehand, with umask 022."""
import atexit
import os
import signal
import stat
import subprocess
import time

from psync import (ON_POSTGRESQL, PHOTOSYNC, done, end_process, free_port_pair,
                   is_eq, make_image, ok, run, store_files, tmpdir)

os.umask(0o022)
work = tmpdir("modes")
# Inputs made by the test, outside every state directory.
inputs = os.path.join(work, "inputs")
os.mkdir(inputs)


def public_dir(name):
    d = os.path.join(work, name)
    os.mkdir(d, 0o755)
    os.chmod(d, 0o755)
    return d


def modes(top):
    """(path, mode) of every directory and file under top."""
    out = [(top, stat.S_IMODE(os.lstat(top).st_mode))]
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            out.append((p, stat.S_IMODE(os.lstat(p).st_mode)))
    return out


def check(top, what, skip=()):
    seen = modes(top)
    wrong = ["%s %o" % (os.path.relpath(p, work), m) for p, m in seen
             if os.path.basename(p) not in skip and
             m != (0o700 if os.path.isdir(p) else 0o600)]
    files = [p for p, m in seen if not os.path.isdir(p)]
    ok(files and not wrong, "%s: directories 0700, %d files 0600%s" % (
        what, len(files), (" (wrong: %s)" % ", ".join(wrong)) if wrong
        else ""))
    return seen


class Serving:
    """`photosync ROLE serve` with its port file and log outside dir."""

    def __init__(self, role, d):
        self.port_file = os.path.join(inputs, role + ".port")
        self.log = open(os.path.join(inputs, role + ".log"), "ab")
        self.proc = subprocess.Popen(
            [PHOTOSYNC, role, "serve", "--dir", d, "--port-file",
             self.port_file], stdout=self.log, stderr=self.log)
        atexit.register(self.kill)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s serve did not start" % role)
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.log.close()
        return rc

    def kill(self):
        """At exit: a test that ended early leaves no server behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- master ----
md = public_dir("master")
run("master", "init", "--dir", md, "--host", "127.0.0.1:0", "--domain",
    "contoso.com")
seen = check(md, "master init")
names = sorted(os.path.basename(p) for p, m in seen if p != md)
want = set(store_files("master")) | {"s2s-key.pem", "s2s-cert.pem",
                                     "tls-key.pem", "tls-cert.pem"}
ok(want <= set(names), "master init made %s" % " ".join(names))
srv = Serving("master", md)
photo = make_image(os.path.join(inputs, "a.jpg"), "300x300")
run("master", "mailbox", "add", "--dir", md, "test1@contoso.com")
run("master", "photo", "set", "--dir", md, "test1@contoso.com", "--file",
    photo)
seen = check(md, "master serving, after writes")
if ON_POSTGRESQL:
    ok(any(p.endswith("store-address-feed") for p, m in seen),
       "the feed's counter file is among them")
else:
    ok(any(p.endswith("-wal") or p.endswith("-feed") for p, m in seen),
       "SQLite's and the feed's files are among them")
is_eq(srv.stop(), 0, "master serve stops")
check(md, "master stopped")

# Given TLS files are copied 0600 too (the inputs are 0644 here).
for n in ("tls-cert.pem", "tls-key.pem"):
    with open(os.path.join(md, n), "rb") as f, \
            open(os.path.join(inputs, n), "wb") as g:
        g.write(f.read())
    os.chmod(os.path.join(inputs, n), 0o644)
md2 = public_dir("master-given-tls")
run("master", "init", "--dir", md2, "--host", "127.0.0.1:0", "--domain",
    "contoso.com", "--tls-cert", os.path.join(inputs, "tls-cert.pem"),
    "--tls-key", os.path.join(inputs, "tls-key.pem"))
check(md2, "master init with --tls-cert/--tls-key")

# ---- portal ----
pd = public_dir("portal")
run("portal", "init", "--dir", pd, "--url", "https://127.0.0.1:0")
check(pd, "portal init")
srv = Serving("portal", pd)
run("portal", "user", "add", "--dir", pd, "contoso\\test1", "--email",
    "test1@contoso.com")
check(pd, "portal serving, after writes")
is_eq(srv.stop(), 0, "portal serve stops")
run("portal", "webapp", "add", "--dir", pd, "--url", "https://127.0.0.1:1")
check(pd, "portal webapp add")

# A directory that is not one is refused, not changed.
notdir = os.path.join(work, "file")
open(notdir, "w").close()
os.chmod(notdir, 0o644)
st, out, err = run("master", "init", "--dir", notdir, "--host",
                   "127.0.0.1:0", "--domain", "contoso.com", check=False)
ok(st != 0 and "not a directory" in err and
   stat.S_IMODE(os.stat(notdir).st_mode) == 0o644,
   "init on a file: refused, the file untouched (%s)" % err.strip()[:80])


# ---- the demo ----

def demo_gone(proc):
    """At exit: the demo stops its servers on SIGINT; it is killed only
    when it does not stop."""
    end_process(proc, signal.SIGINT)


dd = public_dir("demo")
out_path = os.path.join(inputs, "demo.out")
with open(out_path, "w") as out:
    proc = subprocess.Popen([PHOTOSYNC, "demo", "--dir", dd, "--port-base",
                             str(free_port_pair())], stdout=out,
                            stderr=subprocess.STDOUT)
    atexit.register(demo_gone, proc)
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = open(out_path).read()
        if "Press Ctrl-C" in text or proc.poll() is not None:
            break
        time.sleep(0.2)
    ok("Press Ctrl-C" in text, "the demo is set up and serving")
    check(dd, "the demo, serving")
    proc.send_signal(signal.SIGINT)
    is_eq(proc.wait(timeout=60), 0, "the demo stops")
check(dd, "the demo, stopped")
done()
