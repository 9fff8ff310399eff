"""The Debian package, end to end: scripts/deb.sh (make deb) builds
photosync_VERSION_ARCH.deb from this tree; lintian reports neither errors
nor warnings (the accepted ones are overridden in debian/, with why); its
file list is the one in tests/integration/deb_files.txt; and it installs
on a clean Debian 12 root that the test makes itself, with apt resolving
its dependencies from the Debian archive this machine's apt is
configured with, systemd with it. There, the package has made its user
and left the units disabled; then the root is booted with systemd-nspawn
(systemd 252 as PID 1, the host's network shared) and the
administrator's flow of docs/operations.md runs in it against the
installed program: `master init` and `portal init` as the units' user in
the state directories the units name, each instance's port set in
/etc/default/photosync-ROLE-main, `systemctl enable --now` of both units
(it returns once each has said READY=1), a mailbox with a photo, trust
both ways, and a user signed in at the portal who gets their photo,
fetched from the master; then the master's certificate renewed and
`systemctl reload` (both stay active, in the same process, the new
certificate served), `systemctl stop` (both inactive, not failed, exit
0) and the container powered off.

Where the root cannot boot (no systemd-nspawn), the test says so in its
output ("the units run EMULATED, not under systemd") and starts the
servers as the units would instead: the ExecStart line read from the
installed unit with its environment files, run with chroot as its User,
Group and UMask, readiness awaited the way systemd awaits it for
Type=notify, SIGHUP and SIGTERM sent by the test; the flow is the same.

The root is made with mmdebstrap (minbase), lighter than debootstrap: it
resolves with apt and downloads in parallel, and writes a tarball. The
tarball of the pristine root is kept in the build tree for a week (under
PHOTOSYNC_DEB_CACHE) and so are the packages apt downloaded; apt still
reads the archive's current indexes in the root and checks every package
it takes from that cache against them, so a cached run installs what an
uncached one would.

PHOTOSYNC_DEB_FILE=PATH tests a package built beforehand instead (make
deb) when working on this test. It needs root (chroot, mount, nspawn), the
network to the archive, and the plain build (the package is built
without sanitizers: the sanitized run of the suite skips it)."""
import atexit
import fnmatch
import glob
import hashlib
import os
import re
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time

from psync import (HANG_GUARD, basic, done, end_process, events_documented,
                   free_port, identify, is_eq, make_image, ok, photo_path,
                   request, skip_all, tls_for_names, tmpdir, wait_for, write)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SUITE = "bookworm"
INSTANCE = "main"
CACHE_DAYS = 7

if os.geteuid() != 0:
    skip_all("needs root: it makes a Debian root with mmdebstrap, mounts "
             "/proc in it and runs the program there with chroot (make "
             "check runs as root in CI)")
if os.environ.get("PHOTOSYNC_SANITIZE", "none") != "none":
    skip_all("the package is built without sanitizers: the plain build's "
             "run of this test covers it")

work = tmpdir("deb")
chroot_dir = os.path.join(work, "root")
procs = []          # serve processes in the root, stopped at exit
mounted = []        # mount points in the root, unmounted at exit
container = {}      # the booted root: "nspawn" (Popen), "pid" (its init)


def container_stop():
    """Powers the booted root off (its systemd stops the units first) and
    waits for systemd-nspawn to end; killed when it does not."""
    nspawn = container.pop("nspawn", None)
    container.pop("pid", None)
    if nspawn is None or nspawn.poll() is not None:
        return
    # SIGTERM to systemd-nspawn asks the container's systemd to power off.
    end_process(nspawn, signal.SIGTERM, 90)


def cleanup():
    container_stop()
    for p in procs:
        end_process(p)
    unmount_all()


def unmount_all():
    # The lazy unmount is the last resort: the directory must not hold
    # a mount when it is removed.
    for m in reversed(mounted):
        if subprocess.run(["umount", m]).returncode != 0:
            subprocess.run(["umount", "--lazy", m])
    del mounted[:]


# Registered after tmpdir's removal: atexit runs it first.
atexit.register(cleanup)


def sh(*args, timeout=1800, **kw):
    """Runs a program on the host; (status, stdout+stderr)."""
    p = subprocess.run(list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       **kw)
    return p.returncode, p.stdout


def in_root(*args, timeout=600):
    """Runs a program inside the root as root, with a clean environment:
    in the booted container (all its namespaces entered) once it runs,
    else with chroot."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
    if container.get("pid"):
        return sh("nsenter", "--target", str(container["pid"]), "--all",
                  "env", "-i", *["%s=%s" % kv for kv in env.items()],
                  *args, timeout=timeout)
    return sh("chroot", chroot_dir, *args, timeout=timeout, env=env)


def as_admin(user, *args):
    """An administrator's command in the root, as docs/operations.md has
    it: runuser -u USER -- photosync ARGS."""
    return in_root("runuser", "-u", user, "--", "/usr/bin/photosync",
                   *args, timeout=300)


# ---- the package ----

meson = open(os.path.join(ROOT, "meson.build")).read()
version = re.search(r"version\s*:\s*'([^']+)'", meson).group(1)
arch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_ARCH"],
                      capture_output=True, text=True,
                      check=True).stdout.strip()
deb = os.environ.get("PHOTOSYNC_DEB_FILE")
if deb:
    # A package built a moment ago (make deb), when working on this test.
    ok(os.path.basename(deb) == "photosync_%s_%s.deb" % (version, arch),
       "the package given is photosync_%s_%s.deb" % (version, arch))
else:
    out_dir = os.path.join(work, "deb")
    st, log = sh(os.path.join(ROOT, "scripts", "deb.sh"), out_dir)
    deb = os.path.join(out_dir, "photosync_%s_%s.deb" % (version, arch))
    ok(st == 0 and os.path.exists(deb),
       "scripts/deb.sh builds photosync_%s_%s.deb%s" % (
           version, arch, "" if st == 0 else ": " + log[-3000:]))
    if not os.path.exists(deb):
        done()
    ok(not re.search(r"^\s*(Get|Hit|Ign):\d", log, re.M) and
       "--wrap-mode=nodownload" in log,
       "the build downloads nothing (meson's wraps off, no apt)")

# lintian leaves a cache of its own in TMPDIR: one removed with the rest.
lint_tmp = os.path.join(work, "lintian")
os.mkdir(lint_tmp)
st, lint = sh("lintian", "--tag-display-limit", "0", deb, timeout=900,
              env=dict(os.environ, TMPDIR=lint_tmp))
errors = [ln for ln in lint.splitlines() if ln.startswith("E: ")]
warnings = [ln for ln in lint.splitlines() if ln.startswith("W: ")]
ok(not errors, "lintian reports no error%s" % (
    "" if not errors else ": " + "; ".join(errors)))
ok(not warnings, "lintian reports no warning that debian/ does not "
   "override with a reason%s" % (
       "" if not warnings else ": " + "; ".join(warnings)))

st, listing = sh("dpkg-deb", "-c", deb)
files = {}
for line in listing.splitlines():
    perm, owner, _size, _day, _time, path = line.split(None, 5)
    path = path.split(" -> ")[0]
    path = "/" + path[2:] if path.startswith("./") else path
    if path != "/":
        files[path.rstrip("/")] = (perm, owner)
expected = [ln.strip() for ln in
            open(os.path.join(os.path.dirname(__file__), "deb_files.txt"))
            if ln.strip() and not ln.startswith("#")]
unlisted = sorted(p for p in files
                  if not any(fnmatch.fnmatchcase(p, e) for e in expected))
missing = sorted(e for e in expected
                 if not any(fnmatch.fnmatchcase(p, e) for p in files))
ok(not unlisted, "every file of the package is in deb_files.txt%s" % (
    "" if not unlisted else ": not " + ", ".join(unlisted)))
ok(not missing, "every entry of deb_files.txt is in the package%s" % (
    "" if not missing else ": not " + ", ".join(missing)))
ok(all(o == "root/root" for _p, o in files.values()),
   "everything in it belongs to root")
ok(not [p for p, (m, _o) in files.items() if m[8] == "w"],
   "nothing in it is writable by all")
is_eq(files.get("/usr/bin/photosync", ("", ""))[0], "-rwxr-xr-x",
      "/usr/bin/photosync is 0755")
st, ctrl = sh("dpkg-deb", "--info", deb, "conffiles")
ctrl = ctrl if st == 0 else ""
etc = sorted(p for p, (m, _o) in files.items()
             if p.startswith("/etc/") and m.startswith("-"))
is_eq(sorted(ctrl.split()), etc, "its files in /etc are its conffiles")


# ---- a clean Debian 12 root ----

def debian_sources():
    """The entries of this machine's apt sources for the suite and its
    updates and security suites, as one-line entries: the archive the
    root is made from."""
    suites = re.compile(r"^%s(-updates|-security)?$" % SUITE)
    entries = []
    paths = ["/etc/apt/sources.list"] + sorted(
        glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in paths:
        if not os.path.exists(path):
            continue
        for line in open(path):
            line = line.split("#")[0].strip()
            g = re.match(r"^deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$",
                         line)
            if g and suites.match(g.group(3)):
                entries.append(line)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", open(path).read()):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if "deb" not in fields.get("types", "").split() or \
                    fields.get("enabled", "yes").lower() == "no":
                continue
            opts = ""
            if fields.get("signed-by"):
                opts = "[signed-by=%s] " % fields["signed-by"]
            for uri in fields.get("uris", "").split():
                for s in fields.get("suites", "").split():
                    if suites.match(s):
                        entries.append("deb %s%s %s %s" % (
                            opts, uri, s, fields.get("components", "main")))
    return entries


sources = debian_sources()
ok(any(re.search(r"\s%s\s" % SUITE, e) for e in sources),
   "this machine's apt sources name Debian %s's archive" % SUITE)
sources_file = write(os.path.join(work, "sources.list"),
                     "\n".join(sources) + "\n", 0o644)
cache = os.environ.get("PHOTOSYNC_DEB_CACHE") or os.path.join(work, "cache")
os.makedirs(os.path.join(cache, "archives"), exist_ok=True)
key = hashlib.sha256(("%s minbase %s\n" % (SUITE, arch) + "\n".join(
    sources)).encode()).hexdigest()[:16]
base = os.path.join(cache, "%s-minbase-%s.tar" % (SUITE, key))
fresh = os.path.isfile(base) and \
    time.time() - os.path.getmtime(base) < CACHE_DAYS * 86400
if not fresh:
    for old in glob.glob(os.path.join(cache, "%s-minbase-*.tar*" % SUITE)):
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old)
        else:
            os.unlink(old)
    st, log = sh("mmdebstrap", "--variant=minbase", "--format=tar",
                 "--quiet", SUITE, base + ".part", sources_file)
    ok(st == 0, "mmdebstrap makes a minimal Debian %s root%s" % (
        SUITE, "" if st == 0 else ": " + log[-3000:]))
    if st != 0:
        done()
    os.rename(base + ".part", base)
else:
    ok(True, "a minimal Debian %s root made by mmdebstrap in the last %d "
       "days, untouched since (%s)" % (SUITE, CACHE_DAYS, base))
os.mkdir(chroot_dir)
st, log = sh("tar", "-C", chroot_dir, "-xpf", base)
ok(st == 0, "the root is unpacked" + ("" if st == 0 else ": " + log))
is_eq(open(os.path.join(chroot_dir, "etc", "debian_version")).read()
      .split(".")[0], "12", "it is Debian 12")
ok(not os.path.exists(os.path.join(chroot_dir, "usr", "bin", "photosync"))
   and not os.path.exists(os.path.join(chroot_dir, "usr", "lib",
                                       "x86_64-linux-gnu",
                                       "libvips.so.42")),
   "it has neither photosync nor its libraries")
shutil.copy(sources_file, os.path.join(chroot_dir, "etc", "apt",
                                       "sources.list"))
shutil.copy("/etc/resolv.conf", os.path.join(chroot_dir, "etc",
                                             "resolv.conf"))
proc_dir = os.path.join(chroot_dir, "proc")
st, log = sh("mount", "-t", "proc", "proc", proc_dir)
ok(st == 0, "/proc is mounted in the root" + ("" if st == 0 else log))
if st == 0:
    mounted.append(proc_dir)
archives = os.path.join(chroot_dir, "var", "cache", "apt", "archives")
for f in glob.glob(os.path.join(cache, "archives", "*.deb")):
    shutil.copy(f, archives)

# ---- apt installs the package and what it depends on ----

# The files the root is given are put in its /srv.
srv = os.path.join(chroot_dir, "srv")
shutil.copy(deb, srv)
st, log = in_root("apt-get", "update", "-q")
ok(st == 0, "apt-get update in the root" + ("" if st == 0 else ": " + log))
# systemd, as PID 1 (systemd-sysv) with its system bus (dbus), for the
# root to boot: minbase has no init.
st, log = in_root("apt-get", "install", "-y", "-q",
                  "--no-install-recommends", "/srv/" + os.path.basename(deb),
                  "systemd", "systemd-sysv", "dbus", timeout=1800)
ok(st == 0, "apt-get install ./%s (and systemd to boot the root with) "
   "resolves its dependencies from the archive and installs it%s" % (
       os.path.basename(deb), "" if st == 0 else ": " + log[-4000:]))
if st != 0:
    done()
# The cache keeps what this run took, no more.
for f in glob.glob(os.path.join(cache, "archives", "*.deb")):
    os.unlink(f)
for f in glob.glob(os.path.join(archives, "*.deb")):
    shutil.copy(f, os.path.join(cache, "archives"))

st, out = in_root("/usr/bin/photosync", "--version")
is_eq(out.strip(), "photosync " + version,
      "the installed program runs: photosync --version")
st, out = in_root("ldd", "/usr/bin/photosync")
ok(st == 0 and "not found" not in out,
   "every library it needs is installed (ldd)" + (
       "" if "not found" not in out else ": " + out))


def passwd_of(name):
    for line in open(os.path.join(chroot_dir, "etc", "passwd")):
        f = line.rstrip("\n").split(":")
        if f[0] == name:
            return f
    return None


def unit(name):
    """The [Service] settings of an installed unit: name -> values."""
    path = None
    for d in ("lib/systemd/system", "usr/lib/systemd/system"):
        p = os.path.join(chroot_dir, d, name)
        if os.path.exists(p):
            path = p
    ok(path, "the unit %s is installed" % name)
    settings, section = {}, None
    text = re.sub(r"\\\n", " ", open(path).read()) if path else ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        settings.setdefault((section, k.strip()), []).append(v.strip())
    return settings


def service(settings, key, default=None):
    values = settings.get(("Service", key))
    return values[-1] if values else default


units = {}
for role in ("master", "portal"):
    units[role] = unit("photosync-%s@.service" % role)
user = service(units["master"], "User")
ok(user and user == service(units["portal"], "User"),
   "both units run as one user (%s)" % user)
pw = passwd_of(user or "photosync")
ok(pw is not None, "the package made the user %s" % user)
if pw is None:
    done()
uid, gid = int(pw[2]), int(pw[3])
ok(0 < uid < 1000 and pw[6].endswith("nologin"),
   "a system user, without a login shell (uid %d, %s)" % (uid, pw[6]))
lib = os.path.join(chroot_dir, "var", "lib", "photosync")
ok(os.path.isdir(lib) and os.stat(lib).st_uid == uid,
   "/var/lib/photosync belongs to it")
wants = glob.glob(os.path.join(chroot_dir, "etc", "systemd", "system",
                               "*", "photosync*"))
ok(not wants, "no photosync unit is enabled by the installation%s" % (
    "" if not wants else ": " + ", ".join(wants)))
for role in ("master", "portal"):
    st, out = in_root("systemctl", "is-enabled",
                      "photosync-%s@%s.service" % (role, INSTANCE))
    is_eq(out.strip(), "disabled", "systemctl is-enabled photosync-%s@%s:"
          " disabled" % (role, INSTANCE))


# ---- the root booted: systemd as PID 1 ----

def container_init(nspawn):
    """The pid of the container's systemd: systemd-nspawn's child once
    it has become systemd; None when nspawn ended first."""
    def child():
        if nspawn.poll() is not None:
            return -1
        try:
            kids = open("/proc/%d/task/%d/children" % (
                nspawn.pid, nspawn.pid)).read().split()
            for k in kids:
                if open("/proc/%s/comm" % k).read().strip() == "systemd":
                    return int(k)
        except OSError:
            pass
        return None
    pid = wait_for(child)
    return pid if pid and pid > 0 else None


def boot():
    """Boots the root with systemd-nspawn, its systemd as PID 1. The
    container shares the host's network: the servers its systemd starts
    listen on the host's loopback. None once it runs, else why it cannot
    boot here."""
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn is not installed (Debian's systemd-container)"
    unmount_all()           # the container mounts its own /proc
    log_path = os.path.join(work, "nspawn.log")
    with open(log_path, "wb") as log:
        nspawn = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--directory", chroot_dir,
             "--register=no", "--keep-unit", "--console=pipe", "--quiet"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    container["nspawn"] = nspawn
    pid = container_init(nspawn)
    if pid is None:
        container_stop()
        return "systemd-nspawn could not boot it: " + open(
            log_path, errors="replace").read()[-2000:]
    container["pid"] = pid
    return None


def unit_state(name):
    """systemctl status and the unit's journal, for a failure's message."""
    _st, status = in_root("systemctl", "status", "--no-pager", "--lines=0",
                          name)
    _st, journal = in_root("journalctl", "--no-pager", "--boot", "--unit",
                           name, "--lines=30")
    return status + journal


why_not = boot()
booted = why_not is None
if booted:
    # The manager's bus comes up a moment after systemd starts (until
    # then systemctl says "offline"): asked again until it answers; with
    # --wait, the answer comes once the boot has ended.
    st, out = wait_for(lambda: (lambda r: None if r[1].strip() == "offline"
                                or "Failed to connect" in r[1] else r)(
        in_root("systemctl", "is-system-running", "--wait",
                timeout=HANG_GUARD))) or (1, "offline")
    _st, failed = in_root("systemctl", "--failed", "--no-legend",
                          "--no-pager")
    ok(out.strip() == "running", "the root boots with systemd-nspawn, "
       "systemd as PID 1: systemctl is-system-running says running%s" % (
           "" if out.strip() == "running" else
           ": %s; failed: %s" % (out.strip(), failed)))
    st, out = in_root("readlink", "/proc/1/exe")
    is_eq(out.strip(), "/usr/lib/systemd/systemd",
          "PID 1 in the container is systemd")
else:
    ok(True, "the units run EMULATED, not under systemd: the root cannot "
       "boot here (%s); the test starts the servers as the units would" %
       why_not)


# ---- what systemd would do: specifiers, environment, ExecStart ----

unknown_specifiers = set()


def specifiers(s, name):
    """The unit's specifiers (%i, %S, ...) in s, replaced as systemd
    replaces them for the unit `name` (an instance of a template)."""
    prefix, instance = name.split("@")[0], name.split("@")[1].split(".")[0]
    table = {"i": instance, "I": instance, "n": name, "N": name.rsplit(
        ".", 1)[0], "p": prefix, "P": prefix, "S": "/var/lib",
        "C": "/var/cache", "L": "/var/log", "t": "/run", "u": user,
        "%": "%"}

    def one(m):
        if m.group(1) not in table:
            unknown_specifiers.add("%" + m.group(1))
        return table.get(m.group(1), "")
    return re.sub(r"%(.)", one, s)


def environment(settings, name):
    """The environment systemd gives the service: its own variables, its
    Environment= and its EnvironmentFile= files (read in the root)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
           "/sbin:/bin", "LANG": "C.UTF-8", "USER": user, "LOGNAME": user,
           "HOME": pw[5], "SHELL": pw[6]}
    states = [specifiers(d, name) for d in " ".join(
        settings.get(("Service", "StateDirectory"), [])).split()]
    if states:
        env["STATE_DIRECTORY"] = ":".join("/var/lib/" + d for d in states)
    for e in settings.get(("Service", "Environment"), []):
        for word in shlex.split(specifiers(e, name)):
            k, _, v = word.partition("=")
            env[k] = v
    for f in settings.get(("Service", "EnvironmentFile"), []):
        f = specifiers(f, name)
        optional = f.startswith("-")
        path = os.path.join(chroot_dir, f.lstrip("-").lstrip("/"))
        if not os.path.exists(path):
            if not optional:
                ok(False, "%s's environment file %s exists" % (name, f))
            continue
        for line in open(path):
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            env[k.strip()] = " ".join(shlex.split(v)) if v.strip() else ""
    return env, states


def exec_start(settings, name, env):
    """ExecStart as systemd runs it: specifiers, then $VAR (split into
    words) and ${VAR} (one word) from the environment."""
    line = service(settings, "ExecStart")
    line = specifiers(line.lstrip("-@:+!"), name)
    argv = []
    for word in shlex.split(line):
        g = re.match(r"^\$(\w+)$", word)
        if g:
            argv += env.get(g.group(1), "").split()
        else:
            argv.append(re.sub(r"\$\{(\w+)\}",
                               lambda m: env.get(m.group(1), ""), word))
    return argv


def start(role, port):
    """Starts the role's instance as its unit would; waits for READY=1
    on a notify socket when the unit is Type=notify (as systemd does),
    else for the port."""
    name = "photosync-%s@%s.service" % (role, INSTANCE)
    settings = units[role]
    env, states = environment(settings, name)
    argv = exec_start(settings, name, env)
    group = service(settings, "Group") or user
    gid_ = next(int(line.split(":")[2]) for line in open(os.path.join(
        chroot_dir, "etc", "group")) if line.split(":")[0] == group)
    umask = int(service(settings, "UMask", "0022"), 8)
    notify = None
    if service(settings, "Type") == "notify":
        path = "/run/photosync-test-notify-%s" % role
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        host_path = os.path.join(chroot_dir, path.lstrip("/"))
        notify.bind(host_path)
        os.chown(host_path, uid, gid_)
        env["NOTIFY_SOCKET"] = path

    def enter():
        os.chroot(chroot_dir)
        os.chdir("/")
        os.setgroups([])
        os.setgid(gid_)
        os.initgroups(user, gid_)
        os.setuid(uid)
        os.umask(umask)
    log_path = os.path.join(work, "%s.log" % role)
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, env=env, stdout=log, stderr=log,
                         preexec_fn=enter)
    log.close()
    procs.append(p)
    ready = False
    if notify:
        deadline = time.monotonic() + HANG_GUARD
        while not ready and p.poll() is None and \
                time.monotonic() < deadline:
            r, _w, _x = select.select([notify], [], [], 0.5)
            if r:
                ready = b"READY=1" in notify.recv(4096).split(b"\n")
        notify.close()
    else:
        def answers():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        ready = bool(wait_for(lambda: p.poll() is None and answers()))
    ok(ready and p.poll() is None, "%s starts as its unit runs it (%s, "
       "as %s:%s)%s" % (name, " ".join(argv), user, group,
                        "" if ready else ": " + open(log_path).read()))
    with socket.socket() as s:
        ok(s.connect_ex(("127.0.0.1", port)) == 0,
           "%s listens on port %d once ready" % (name, port))
    return p, log_path, states


# ---- the administrator's flow ----

mport, pport = free_port(), free_port()
names = {role: "photosync-%s@%s.service" % (role, INSTANCE)
         for role in ("master", "portal")}
mdir = "/var/lib/" + specifiers(service(units["master"], "StateDirectory"),
                                names["master"])
pdir = "/var/lib/" + specifiers(service(units["portal"], "StateDirectory"),
                                names["portal"])
st, out = as_admin(user, "master", "init", "--dir", mdir, "--host",
                   "127.0.0.1:%d" % mport, "--domain", "contoso.com")
ok(st == 0, "photosync master init --dir %s, as %s%s" % (
    mdir, user, "" if st == 0 else ": " + out))
st, out = as_admin(user, "portal", "init", "--dir", pdir, "--url",
                   "https://127.0.0.1:%d" % pport)
ok(st == 0, "photosync portal init --dir %s, as %s%s" % (
    pdir, user, "" if st == 0 else ": " + out))
password = "pw-" + os.urandom(6).hex()
pw_file = write(os.path.join(srv, "pw"), password + "\n")
os.chown(pw_file, uid, gid)
photo = make_image(os.path.join(srv, "test1.jpg"), "800x800")
os.chmod(photo, 0o644)
for args in (("master", "mailbox", "add", "--dir", mdir,
              "test1@contoso.com", "--name", "Test One", "--password-file",
              "/srv/pw"),
             ("master", "photo", "set", "--dir", mdir, "test1@contoso.com",
              "--file", "/srv/test1.jpg"),
             ("portal", "user", "add", "--dir", pdir, "contoso\\test1",
              "--email", "test1@contoso.com", "--name", "Test One",
              "--password-file", "/srv/pw")):
    st, out = as_admin(user, *args)
    ok(st == 0, "photosync %s%s" % (" ".join(args[:3]),
                                    "" if st == 0 else ": " + out))

# The serve options of one instance, as docs/operations.md has them set:
# /etc/default/photosync-ROLE-NAME, read after /etc/default/photosync-ROLE.
# Each role's own limit, seen in its log, shows its unit read its own.
max_connections = {"master": 1001, "portal": 1002}
for role, port in (("master", mport), ("portal", pport)):
    path = os.path.join(chroot_dir, "etc", "default", "photosync-%s-%s" % (
        role, INSTANCE))
    write(path, '%s_SERVE_OPTIONS="--listen-port %d --max-connections %d"\n'
          % (role.upper(), port, max_connections[role]), 0o644)

procs_of, logs_of = {}, {}


def log_of(role):
    """What the role's server has logged: its journal under systemd, its
    output's file when emulated."""
    if booted:
        return in_root("journalctl", "--no-pager", "--boot", "--output=cat",
                       "--unit", names[role])[1]
    return open(logs_of[role], errors="replace").read()


def main_pid(role):
    return in_root("systemctl", "show", "--value", "--property=MainPID",
                   names[role])[1].strip()


if booted:
    # enable --now returns once both are started: for Type=notify, when
    # each has said READY=1.
    st, out = in_root("systemctl", "enable", "--now", names["master"],
                      names["portal"], timeout=300)
    links = [glob.glob(os.path.join(chroot_dir, "etc", "systemd", "system",
                                    "*.wants", n)) for n in names.values()]
    ok(st == 0 and all(links), "systemctl enable --now %s %s%s" % (
        names["master"], names["portal"], "" if st == 0 and all(links) else
        ": " + out + unit_state(names["master"]) +
        unit_state(names["portal"])))
    for role, port in (("master", mport), ("portal", pport)):
        st, out = in_root("systemctl", "is-active", names[role])
        is_eq(out.strip(), "active", "systemctl is-active %s: active" %
              names[role])
        if out.strip() != "active":
            print("# " + unit_state(names[role]).replace("\n", "\n# "))
        with socket.socket() as s:
            ok(s.connect_ex(("127.0.0.1", port)) == 0,
               "%s listens on port %d once started" % (names[role], port))
else:
    for role in ("master", "portal"):
        st, out = in_root("systemctl", "enable", names[role])
        links = glob.glob(os.path.join(chroot_dir, "etc", "systemd",
                                       "system", "*.wants", names[role]))
        ok(st == 0 and links, "systemctl enable %s%s" % (
            names[role], "" if st == 0 and links else ": " + out))
    for role, port in (("master", mport), ("portal", pport)):
        procs_of[role], logs_of[role], _ = start(role, port)
if booted:
    # The sandbox as the running process has it: every setting of the
    # units applied by this systemd, none skipped.
    for role in ("master", "portal"):
        pid = main_pid(role)
        _st, status = in_root("cat", "/proc/%s/status" % pid)
        fields = dict(ln.split(":", 1) for ln in status.splitlines()
                      if ":" in ln)
        got = {k: fields.get(k, "").strip() for k in (
            "NoNewPrivs", "Seccomp", "CapEff", "CapBnd", "CapAmb")}
        # CAP_NET_BIND_SERVICE (bit 10) alone, the seccomp filter on.
        is_eq(got, {"NoNewPrivs": "1", "Seccomp": "2",
                    "CapEff": "0000000000000400",
                    "CapBnd": "0000000000000400",
                    "CapAmb": "0000000000000400"},
              "%s runs sandboxed: no new privileges, a system call filter, "
              "CAP_NET_BIND_SERVICE its only capability" % names[role])
        _st, own = in_root("readlink", "/proc/%s/ns/mnt" % pid)
        _st, init = in_root("readlink", "/proc/1/ns/mnt")
        ok(own.strip() and own != init, "%s has a mount namespace of its "
           "own (ProtectSystem=, PrivateTmp=, ...)" % names[role])
        _st, out = in_root("systemd-analyze", "security", "--no-pager",
                           names[role])
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        ok(m and float(m.group(1)) <= 2.0, "systemd-analyze security of the "
           "running %s scores at most 2.0 (%s)" % (
               names[role], m.group(1) if m else out[-500:]))
    _st, out = in_root("journalctl", "--no-pager", "--boot", "--output=cat",
                       "_PID=1")
    skipped = [ln for ln in out.splitlines() if "photosync" in ln and
               re.search(r"ignor|not supported|unknown|failed", ln, re.I)]
    ok(not skipped, "systemd ignored none of the units' settings%s" % (
        "" if not skipped else ": " + "; ".join(skipped)))
for role in ("master", "portal"):
    ok(re.search(r"ev=http\.limits max_connections=%d " %
                 max_connections[role], log_of(role)),
       "%s serves with the options of /etc/default/photosync-%s-%s" % (
           names[role], role, INSTANCE))

mca = mdir + "/tls-cert.pem"
pca = pdir + "/webapp-1-tls-cert.pem"
for args in (("portal", "webapp", "set", "--dir", pdir, "--photo-import",
              "on", "--photo-expiration", "6h", "--photo-error-expiration",
              "1h", "--autodiscover-domain", "127.0.0.1:%d" % mport,
              "--ca-file", mca),
             ("portal", "issuer", "add", "--dir", pdir, "--name", "Exchange",
              "--metadata-url", "https://127.0.0.1:%d/autodiscover/"
              "metadata/json/1" % mport, "--ca-file", mca),
             ("master", "partner", "add", "--dir", mdir, "--name",
              "SharePoint", "--metadata-url", "https://127.0.0.1:%d/"
              "_layouts/15/metadata/json/1" % pport, "--ca-file", pca)):
    st, out = as_admin(user, *args)
    ok(st == 0, "photosync %s on the running servers%s" % (
        " ".join(args[:3]), "" if st == 0 else ": " + out))

host_pca = os.path.join(chroot_dir, pca.lstrip("/"))
auth = {"Authorization": basic("contoso\\test1", password)}
r = request("127.0.0.1", pport, "GET", "/my", host_pca, auth)
ok(r.status == 200 and "Test One" in r.text(),
   "contoso\\test1 signs in at the portal: their /my page")
# Their visit syncs their photo from the master; the answer waits for
# that sync a few seconds at most, so the sync's outcome in the log is
# what is waited for (as psync's Portal.owner_photo does). The request's
# own line is awaited first: the journal may show it a moment later.
r = request("127.0.0.1", pport, "GET", photo_path("contoso\\test1"),
            host_pca, auth)
rid = re.escape(r.header("request-id") or "-")
plog = wait_for(lambda: (lambda t: re.search(
    r"req=%s ev=http\.request " % rid, t) and t)(log_of("portal"))) or ""
if re.search(r"req=%s ev=sync\.start " % rid, plog):
    ok(wait_for(lambda: re.search(r"req=%s ev=sync\.(done|failed) " % rid,
                                  log_of("portal"))),
       "the sync their visit started ends")
    r = request("127.0.0.1", pport, "GET", photo_path("contoso\\test1"),
                host_pca, auth)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "the portal serves their photo, not the placeholder")
is_eq(identify(write(os.path.join(work, "l.jpg"), r.body))[:2], (300, 300),
      "it is the L thumbnail (300x300) of the master's photo")
ok(wait_for(lambda: re.search(
    r"ev=http\.request [^\n]*GetUserPhoto[^\n]* status=200",
    log_of("master"))),
   "the master answered the portal's GetUserPhoto (its log)")

# ---- reload: a renewed certificate, the servers go on ----

renew = os.path.join(work, "renew")
os.mkdir(renew)
tls_for_names(renew, ["localhost"])
new_cert = open(os.path.join(renew, "tls-cert.pem")).read()
host_mdir = os.path.join(chroot_dir, mdir.lstrip("/"))
for f in ("tls-key.pem", "tls-cert.pem"):
    # Each file replaced in one step, as docs/operations.md says.
    tmp = os.path.join(host_mdir, f + ".new")
    shutil.copy(os.path.join(renew, f), tmp)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o600)
    os.rename(tmp, os.path.join(host_mdir, f))
reloads = {role: log_of(role).count("ev=serve.reloaded")
           for role in ("master", "portal")}
pids = {role: main_pid(role) for role in ("master", "portal")} \
    if booted else {}
if booted:
    # Returns once each has said READY=1 again after RELOADING=1.
    st, out = in_root("systemctl", "reload", names["master"],
                      names["portal"], timeout=300)
    ok(st == 0, "systemctl reload %s %s%s" % (
        names["master"], names["portal"], "" if st == 0 else ": " + out +
        unit_state(names["master"]) + unit_state(names["portal"])))
else:
    for role in ("master", "portal"):
        procs_of[role].send_signal(signal.SIGHUP)
for role in ("master", "portal"):
    ok(wait_for(lambda: log_of(role).count("ev=serve.reloaded") >
                reloads[role]), "%s reloads (ev=serve.reloaded)" % role)
    if booted:
        st, out = in_root("systemctl", "is-active", names[role])
        is_eq(out.strip(), "active", "%s is still active after the reload"
              % names[role])
        is_eq(main_pid(role), pids[role], "%s keeps its process (MainPID "
              "%s)" % (names[role], pids[role]))
    else:
        ok(procs_of[role].poll() is None, "%s serve still runs" % role)
served = ssl.get_server_certificate(("127.0.0.1", mport))
is_eq(ssl.PEM_cert_to_DER_cert(served), ssl.PEM_cert_to_DER_cert(new_cert),
      "the master now presents the renewed certificate")
r = request("127.0.0.1", pport, "GET", "/my", host_pca, auth)
ok(r.status == 200 and "Test One" in r.text(),
   "the portal still answers after its reload: their /my page")

# ---- stop ----

if booted:
    st, out = in_root("systemctl", "stop", names["portal"], names["master"],
                      timeout=300)
    ok(st == 0, "systemctl stop %s %s%s" % (
        names["portal"], names["master"], "" if st == 0 else ": " + out))
    for role in ("portal", "master"):
        _st, out = in_root("systemctl", "is-active", names[role])
        is_eq(out.strip(), "inactive", "%s is inactive" % names[role])
        st, out = in_root("systemctl", "is-failed", names[role])
        ok(st != 0, "%s is not failed (%s)%s" % (
            names[role], out.strip(),
            "" if st != 0 else ": " + unit_state(names[role])))
        _st, out = in_root("systemctl", "show", "--property=Result",
                           "--property=ExecMainStatus", names[role])
        is_eq(sorted(out.split()), ["ExecMainStatus=0", "Result=success"],
              "%s serve ended with 0, the stop a success" % role)
else:
    for role in ("portal", "master"):
        is_eq(end_process(procs_of[role], timeout=60), 0,
              "%s serve stops on SIGTERM, exit 0" % role)
for role in ("portal", "master"):
    events_documented(log_of(role), "the installed %s's log" % role)

if booted:
    nspawn = container["nspawn"]
    container_stop()
    is_eq(nspawn.returncode, 0, "the container powers off, systemd-nspawn "
          "exits with 0")
cleanup()
ok(not unknown_specifiers, "the test knows every specifier of the units%s"
   % ("" if not unknown_specifiers else ": not " + ", ".join(
       sorted(unknown_specifiers))))
ok(not [ln for ln in open("/proc/self/mountinfo")
        if " %s/" % chroot_dir in ln or " %s " % chroot_dir in ln],
   "nothing is left mounted in the root")
done()
