"""`meson install --destdir` of this build: the binary, both systemd
units (and nothing a test or benchmark builds), the service user and its
directories, the serve options under /etc/default, the documentation and
the LDAP schema. The installed binary runs, finds its libraries among the
system's, and names no path of the source or build tree (nothing is read
from them at run time). The image pipeline runs where memory that is
writable and executable is refused (MemoryDenyWriteExecute). systemd reads each installed unit without a
complaint, and its sandbox scores at most 2.0 with `systemd-analyze
security --offline=yes`."""
import ctypes
import json
import os
import re
import subprocess

import psync
from psync import done, is_eq, make_image, ok, run, tmpdir

build = os.path.dirname(os.path.abspath(psync.PHOTOSYNC))
source = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
stage = tmpdir("install")

options = {o["name"]: o["value"] for o in json.loads(subprocess.run(
    ["meson", "introspect", build, "--buildoptions"], capture_output=True,
    text=True, check=True).stdout)}
prefix = options["prefix"]


def installed(*parts):
    """Where a file of the install lands under the stage."""
    return os.path.join(stage, os.path.join(prefix, *parts).lstrip("/"))


p = subprocess.run(["meson", "install", "-C", build, "--no-rebuild",
                    "--quiet", "--destdir", stage], capture_output=True,
                   text=True)
is_eq(p.returncode, 0, "meson install --destdir succeeds (%s)"
      % p.stderr.strip()[-300:])
files = sorted(os.path.relpath(os.path.join(d, f), stage)
               for d, _, names in os.walk(stage) for f in names)


def found(pattern):
    return [f for f in files if re.fullmatch(pattern, f)]


binary = installed(options["bindir"], "photosync")
ok(os.access(binary, os.X_OK), "the binary: %s" % os.path.relpath(
    binary, stage))
etc = installed(options["sysconfdir"], "default")
for role in ("master", "portal"):
    ok(os.path.isfile(os.path.join(etc, "photosync-" + role)),
       "the %s's serve options: %s" % (role, os.path.relpath(
           os.path.join(etc, "photosync-" + role), stage)))
units = found(r".*/systemd/system/photosync-(master|portal)@\.service")
is_eq(len(units), 2, "both units, in systemd's unit directory (%s)"
      % units)
is_eq(len(found(r".*/sysusers\.d/photosync\.conf")), 1,
      "the service user, for systemd-sysusers")
is_eq(len(found(r".*/tmpfiles\.d/photosync\.conf")), 1,
      "its state directories' roots, for systemd-tmpfiles")
docs = installed(options["datadir"], "doc", "photosync")
for doc in ("README.md", "operations.md", "logging.md", "security.md"):
    ok(os.path.isfile(os.path.join(docs, doc)),
       "the documentation: %s" % doc)
ldap = installed(options["datadir"], "photosync", "ldap")
for schema in ("thumbnailphoto.schema", "thumbnailphoto.ldif"):
    ok(os.path.isfile(os.path.join(ldap, schema)),
       "the LDAP schema: %s" % schema)
known = re.compile(r"(%s|.*/photosync-(master|portal)|.*/systemd/system/.*"
                   r"|.*/(sysusers|tmpfiles)\.d/photosync\.conf"
                   r"|.*/doc/photosync/.*|.*/photosync/ldap/.*"
                   r"|%s/.*)" % (re.escape(os.path.relpath(binary, stage)),
                                 re.escape(os.path.relpath(installed(
                                     options["mandir"]), stage))))
is_eq([f for f in files if not known.fullmatch(f)], [],
      "nothing else is installed (no test or benchmark program)")

# ---- the binary, on its own ----
p = subprocess.run([binary, "--version"], capture_output=True, text=True)
ok(p.returncode == 0 and re.search(r"\d+\.\d+", p.stdout),
   "the installed binary runs: %s" % p.stdout.strip())
libs = subprocess.run(["ldd", binary], capture_output=True, text=True,
                      check=True).stdout
bad = [line.strip() for line in libs.splitlines()
       if "not found" in line or build in line or source in line]
is_eq(bad, [], "its shared libraries are all found, none in the build tree")
dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True,
                         text=True, check=True).stdout
ok(not re.search(r"\((RPATH|RUNPATH)\)", dynamic),
   "no RPATH or RUNPATH is left in it")
# What the program holds at run time, without its debugging information
# (which names the build directory, for debuggers only).
bare = os.path.join(stage, "photosync.bare")
subprocess.run(["strip", "--strip-debug", "-o", bare, binary], check=True)
with open(bare, "rb") as f:
    image = f.read()
for name, path in (("source", source), ("build", build)):
    ok(path.encode() not in image,
       "the program names no path of the %s tree (%s)" % (name, path))

# ---- MemoryDenyWriteExecute ----
# The units refuse memory that is writable and executable; the kernel's
# own switch for that (PR_SET_MDWE, Linux 6.3) lets the image pipeline
# be run under the same refusal here.
def refuse_write_execute():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:         # PR_SET_MDWE, REFUSE_EXEC_GAIN
        os._exit(77)


state = os.path.join(stage, "state")
run("master", "init", "--dir", state, "--host", "127.0.0.1:0", "--domain",
    "contoso.com")
run("master", "mailbox", "add", "--dir", state, "test1@contoso.com")
p = subprocess.run([psync.PHOTOSYNC, "master", "photo", "set", "--dir",
                    state, "test1@contoso.com", "--file",
                    make_image(os.path.join(stage, "a.png"), "900x700")],
                   capture_output=True, text=True,
                   preexec_fn=refuse_write_execute)
if p.returncode == 77:
    ok(True, "photo set where writable code is refused # SKIP the kernel "
       "has no PR_SET_MDWE")
else:
    is_eq((p.returncode, p.stderr.strip()[-300:]), (0, ""),
          "photo set (libvips: decode, resize, encode) runs where "
          "writable and executable memory is refused")

# ---- the units ----
for unit in units:
    path = os.path.join(stage, unit)
    with open(path) as f:
        text = f.read()
    base = os.path.basename(unit)
    ok(re.search(r"^ExecStart=%s " % re.escape(os.path.join(
        prefix, options["bindir"], "photosync")), text, re.M),
       "%s starts the installed binary" % base)
    ok(re.search(r"^Type=notify$", text, re.M) and
       re.search(r"^ExecReload=.*-HUP", text, re.M),
       "%s: Type=notify, reload by SIGHUP" % base)
    # An instance of it, checked as systemd reads it: no unknown or
    # misspelt setting (the program itself is not on this machine's
    # path, which verify would report).
    instance = os.path.join(stage, base.replace("@.", "@main."))
    with open(instance, "w") as f:
        f.write(text)
    p = subprocess.run(["systemd-analyze", "verify", instance],
                       capture_output=True, text=True)
    complaints = [line for line in (p.stdout + p.stderr).splitlines()
                  if not re.search(r"Command \S+ is not executable", line)]
    is_eq(complaints, [], "systemd-analyze verify finds nothing wrong in %s"
          % base)
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        path], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout)
    ok(m and float(m.group(1)) <= 2.0,
       "systemd-analyze security --offline scores %s at most 2.0 (%s)"
       % (base, m.group(1) if m else (p.stdout + p.stderr)[-300:]))
done()
