"""Several web applications on one address and port: each has its own
host name, certificate (chosen by TLS server name indication), realm and
settings, and requests are routed by their Host header."""
import os
import subprocess
import time

from psync import (PHOTOSYNC, done, free_port, is_eq, ok, request, run,
                   tmpdir)

work = tmpdir("hosts")
state = os.path.join(work, "state")
port = free_port()
run("portal", "init", "--dir", state, "--url", "https://127.0.0.1:%d" % port)
st, out, err = run("portal", "webapp", "add", "--dir", state, "--url",
                   "https://localhost:%d" % port)
ok(st == 0, "a second web application on the same port, another host")
run("portal", "webapp", "set", "--dir", state, "--url",
    "https://localhost:%d" % port, "--photo-import", "on")
portfile = os.path.join(work, "ports")
log = open(os.path.join(work, "serve.log"), "wb")
proc = subprocess.Popen([PHOTOSYNC, "portal", "serve", "--dir", state,
                         "--listen", "127.0.0.1", "--port-file", portfile],
                        stdout=log, stderr=log)
deadline = time.monotonic() + 20
while not os.path.exists(portfile) and time.monotonic() < deadline:
    time.sleep(0.05)
try:
    ports = open(portfile).read().split()
    is_eq(ports, [str(port), str(port)], "both serve on the same port")
    ca1 = os.path.join(state, "webapp-1-tls-cert.pem")
    ca2 = os.path.join(state, "webapp-2-tls-cert.pem")
    r1 = request("127.0.0.1", port, "GET", "/_layouts/15/metadata/json/1",
                 ca1)
    r2 = request("localhost", port, "GET", "/_layouts/15/metadata/json/1",
                 ca2)
    ok(r1.status == 200 and r2.status == 200,
       "each host's certificate verifies (SNI picks the second's)")
    ok(r1.json()["realm"] != r2.json()["realm"],
       "routed by Host: each web application has its own realm")
    st, out1, err = run("portal", "webapp", "show", "--dir", state, "--url",
                        "https://127.0.0.1:%d" % port)
    ok(out1.count(r1.json()["realm"]) == 1 and "photo-import            off"
       in out1, "the first is 127.0.0.1's, import off")
    st, out2, err = run("portal", "webapp", "show", "--dir", state, "--url",
                        "https://localhost:%d" % port)
    ok(out2.count(r2.json()["realm"]) == 1 and "photo-import            on"
       in out2, "the second is localhost's, import on")
finally:
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
is_eq(proc.returncode, 0, "stops cleanly")
done()
