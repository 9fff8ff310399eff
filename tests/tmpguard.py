"""Runs one test with a temporary directory of its own and fails it when
the test leaves anything there.

    tmpguard.py NAME PROGRAM [ARG...]

(a PROGRAM ending in .py runs with the wrapper's own Python; any other
PROGRAM runs under the command in PHOTOSYNC_TEST_WRAPPER when that is
set, as make check-valgrind sets it.) Every test of the suite runs through this wrapper (tests/meson.build).
It makes a fresh directory (photosync-test-NAME-XXXXXX, in the TMPDIR it
was given, else /tmp), runs PROGRAM with TMPDIR pointing at it, and after
the program ends lists what is left in it: anything left is printed on
stderr and the test fails (exit status 1 when the program itself
succeeded), since a test must remove what it creates. The directory is
removed in every case, so a leaking or failing test leaves nothing
either; PHOTOSYNC_KEEP=1 keeps it (and the test's own temporary
directories, so nothing is reported then) for a look. The program's stdout is its own (TAP or not);
its exit status is passed on.

What a test writes to a fixed path such as /tmp/x, ignoring TMPDIR, is
not seen here: tests/static_checks.py refuses such paths in the tests'
sources.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile


def leftovers(path):
    """Everything under path, as paths relative to it."""
    found = []
    for root, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            found.append(os.path.relpath(os.path.join(root, name), path))
    return found


def main():
    if len(sys.argv) < 3:
        print("usage: tmpguard.py NAME PROGRAM [ARG...]", file=sys.stderr)
        return 2
    name = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="photosync-test-%s-" % name)
    env = dict(os.environ, TMPDIR=tmp)
    child = None

    def forward(signum, frame):
        # meson signals the whole process group on a timeout; a signal
        # sent to this wrapper alone goes to the test too.
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        argv = sys.argv[2:]
        if argv[0].endswith(".py"):
            # a Python test runs with this wrapper's interpreter
            argv.insert(0, sys.executable)
        elif os.environ.get("PHOTOSYNC_TEST_WRAPPER"):
            # a program of ours runs under it (make check-valgrind)
            argv = shlex.split(os.environ["PHOTOSYNC_TEST_WRAPPER"]) + argv
        child = subprocess.Popen(argv, env=env)
        status = child.wait()
    finally:
        left = leftovers(tmp)
        keep = os.environ.get("PHOTOSYNC_KEEP") == "1"
        if keep:
            print("tmpguard: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, True)
    if left and not keep:
        print("tmpguard: %s left %d entries in its TMPDIR (a test must "
              "remove what it creates):" % (name, len(left)),
              file=sys.stderr)
        for p in left[:20]:
            print("tmpguard:   %s" % p, file=sys.stderr)
        if status == 0:
            status = 1
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
