"""What `make demo` installs: the demo prints a curl command, so on a fresh
Debian machine its dependency step (scripts/deps.sh demo) installs curl
along with the build's packages. The package tools are replaced on PATH by
recorders that say nothing is installed, so the script's apt-get command
is seen without installing anything. The tests' step (scripts/deps.sh
test) installs PostgreSQL's server, which the tests start themselves.
`make demo-cluster` (demo --nodes 3) needs PostgreSQL's server and
HAProxy: the demo's step installs them too."""
import os
import subprocess

from psync import done, ok, tmpdir, write

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

work = tmpdir("demo-deps")
tools = os.path.join(work, "bin")
os.mkdir(tools)
record = os.path.join(work, "apt-get.args")
# dpkg-query: no package is installed; id -u: root, so no sudo;
# apt-get: records its arguments.
write(os.path.join(tools, "dpkg-query"), "#!/bin/sh\nexit 1\n", 0o755)
write(os.path.join(tools, "id"), "#!/bin/sh\necho 0\n", 0o755)
write(os.path.join(tools, "apt-get"),
      "#!/bin/sh\necho \"$*\" >> '%s'\n" % record, 0o755)
env = dict(os.environ, PATH=tools + ":/usr/bin:/bin")


def installs(mode):
    """The packages `scripts/deps.sh MODE` installs on a machine that has
    none."""
    if os.path.exists(record):
        os.unlink(record)
    p = subprocess.run(["/bin/sh", os.path.join(ROOT, "scripts", "deps.sh"),
                        mode], env=env, capture_output=True, text=True)
    if not ok(p.returncode == 0, "deps.sh %s runs" % mode):
        print("#   " + p.stderr.strip(), flush=True)
    got = set()
    if os.path.exists(record):
        for line in open(record):
            if line.startswith("install"):
                got.update(w for w in line.split() if not w.startswith("-"))
    return got


demo = installs("demo")
ok("curl" in demo, "deps.sh demo installs curl")
ok({"postgresql", "haproxy"} <= demo, "deps.sh demo installs what the "
   "cluster demo runs: PostgreSQL's server and HAProxy")
ok("libcurl4-openssl-dev" in demo and "meson" in demo,
   "deps.sh demo installs what the build needs")
build = installs("build")
ok("curl" not in build, "deps.sh build does not install curl")
ok("libpq-dev" in build, "deps.sh build installs libpq's headers")
tests = installs("test")
ok({"postgresql", "python3-psycopg2"} <= tests, "deps.sh test installs "
   "the PostgreSQL server the tests start, and psycopg2")
ok("haproxy" in tests, "deps.sh test installs HAProxy, for the cluster "
   "test")
ok("nodejs" in tests, "deps.sh test installs Node.js, for the Graph "
   "client's acceptance test")

# make demo runs that step before it starts the demo.
p = subprocess.run(["make", "-n", "-C", ROOT, "demo",
                    "BUILD=" + os.path.join(work, "nobuild")],
                   capture_output=True, text=True)
lines = p.stdout.splitlines()
step = [i for i, l in enumerate(lines) if "scripts/deps.sh demo" in l]
start = [i for i, l in enumerate(lines) if "photosync demo" in l]
ok(step and start and step[0] < start[0],
   "make demo installs the demo's packages before it starts the demo")
p = subprocess.run(["make", "-n", "-C", ROOT, "demo-cluster",
                    "BUILD=" + os.path.join(work, "nobuild")],
                   capture_output=True, text=True)
lines = p.stdout.splitlines()
step = [i for i, l in enumerate(lines) if "scripts/deps.sh demo" in l]
start = [i for i, l in enumerate(lines) if "photosync demo" in l and
         "--nodes 3" in l]
ok(step and start and step[0] < start[0],
   "make demo-cluster installs the demo's packages, then starts the demo "
   "with --nodes 3")
done()
