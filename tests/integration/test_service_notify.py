"""Readiness for the service manager (Type=notify): `serve` of both roles
sends READY=1 to $NOTIFY_SOCKET once its ports answer, RELOADING=1 (with
MONOTONIC_USEC) then READY=1 on SIGHUP, STOPPING=1 on SIGTERM. The
master is given an abstract socket (@name), the portal a path."""
import os
import re
import socket
import uuid

import psync
from psync import HANG_GUARD, Master, Portal, Server, done, is_eq, ok, tmpdir

work = tmpdir("notify")


class Manager:
    """The service manager's end: a datagram socket serve reports to."""

    def __init__(self, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "photosync-test-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = os.path.join(work, "notify-%s.sock" %
                                    uuid.uuid4().hex[:8])
            self.sock.bind(self.env)
        self.sock.settimeout(HANG_GUARD)

    def next(self):
        """The next datagram, as text; None when none came."""
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None


def check(name, role, state_dir, host, ca, abstract):
    mgr = Manager(abstract)
    srv = Server(role, state_dir, env={"NOTIFY_SOCKET": mgr.env})
    first = mgr.next()
    is_eq(first, "READY=1", "%s: the first notice is READY=1" % name)
    # Sent once listening: the port answers as soon as it is heard.
    r = psync.request(host, srv.port, "GET", "/ready", ca)
    is_eq(r.status, 200, "%s: at READY=1 the port answers /ready" % name)

    at = len(srv.logs())
    srv.proc.send_signal(1)
    reloading = mgr.next() or ""
    ok(re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=[0-9]+", reloading),
       "%s: SIGHUP: RELOADING=1 with MONOTONIC_USEC (%r)" % (name,
                                                            reloading))
    is_eq(mgr.next(), "READY=1", "%s: then READY=1 again" % name)
    ok(srv.wait_log(r"ev=serve\.reloaded", at),
       "%s: the log says it reloaded" % name)
    is_eq(srv.proc.poll(), None, "%s: SIGHUP does not end it" % name)
    r = psync.request(host, srv.port, "GET", "/ready", ca)
    is_eq(r.status, 200, "%s: it serves after the reload" % name)

    srv.proc.send_signal(15)
    is_eq(mgr.next(), "STOPPING=1", "%s: SIGTERM: STOPPING=1" % name)
    is_eq(srv.proc.wait(HANG_GUARD), 0, "%s: it exits 0" % name)
    mgr.sock.close()


m = Master()
check("master", "master", m.dir, m.host, m.ca, abstract=True)
p = Portal()
check("portal", "portal", p.dir, p.host, p.ca, abstract=False)
done()
