"""How photosync is built: a position-independent executable with full
RELRO (the GNU_RELRO segment, bound at load: BIND_NOW) and the stack
protector, linked without libevent's OpenSSL and pthreads parts; and
`photosync --version` prints the version the top-level meson.build
states, which no source file states again."""
import os
import re
import subprocess

from psync import PHOTOSYNC, done, is_eq, ok, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def readelf(*args):
    return subprocess.run(["readelf", "-W"] + list(args) + [PHOTOSYNC],
                          capture_output=True, text=True, check=True).stdout


header = readelf("-h")
ok(re.search(r"^\s*Type:\s+DYN\b", header, re.M),
   "the program is position-independent (ELF type DYN)")
dynamic = readelf("-d")
ok(re.search(r"\(FLAGS_1\).*\bPIE\b", dynamic),
   "the dynamic section marks it PIE")
ok(re.search(r"^\s*GNU_RELRO\b", readelf("-l"), re.M),
   "it has a RELRO segment")
ok(re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic) or
   re.search(r"\(FLAGS_1\).*\bNOW\b", dynamic) or
   re.search(r"\(BIND_NOW\)", dynamic),
   "it is bound at load (BIND_NOW): full RELRO")
symbols = readelf("--dyn-syms")
ok("__stack_chk_fail" in symbols, "it is built with the stack protector")
# The linker drops unused libraries (--as-needed): what the build asks
# for is in its link line.
ninja = open(os.path.join(os.path.dirname(PHOTOSYNC), "build.ninja")).read()
link = re.search(r"^build photosync: .*\n LINK_ARGS = (.*)$", ninja, re.M)
asked = re.findall(r"libevent\w*", link.group(1)) if link else []
ok(link and "libevent" in asked and "libevent_openssl" not in asked and
   "libevent_pthreads" not in asked,
   "photosync is linked with libevent alone, not its OpenSSL and pthreads "
   "parts (%s)" % ", ".join(sorted(set(asked))))

meson = open(os.path.join(ROOT, "meson.build")).read()
project = re.search(r"project\((.*?)\)", meson, re.S).group(1)
version = re.search(r"version\s*:\s*'([^']+)'", project).group(1)
stated = []
for top, dirs, files in os.walk(os.path.join(ROOT, "src")):
    for f in files:
        text = open(os.path.join(top, f), errors="replace").read()
        if version in text or re.search(r'"photosync/\d', text):
            stated.append(f)
ok(not stated, "no source file states the version again (%s)" %
   ", ".join(stated))
for flag in ("--version", "version"):
    st, out, err = run(flag)
    is_eq(out.strip(), "photosync " + version,
          "photosync %s prints meson's version %s" % (flag, version))
done()
