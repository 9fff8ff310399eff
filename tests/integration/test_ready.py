"""GET /ready on both roles, for load balancers: 200 "ready" without
sign-in while the server takes work, logged at debug level only; 503
"draining" to a request that arrives after SIGTERM; on PostgreSQL, 503
"store" while the store's server is stopped, and 200 again once it is
back."""
import os
import re
import socket
import ssl

import psync
from psync import Master, Portal, done, is_eq, ok, wait_for


def check_ready(name, srv):
    r = srv.get("/ready")
    is_eq((r.status, r.text()), (200, "ready\n"),
          "%s: GET /ready without credentials answers 200 ready" % name)
    r = psync.request(srv.host, srv.port, "HEAD", "/ready", srv.ca)
    is_eq(r.status, 200, "%s: HEAD /ready answers 200" % name)
    r = psync.request(srv.host, srv.port, "POST", "/ready", srv.ca,
                      {"Content-Type": "text/plain"}, "x")
    is_eq(r.status, 405, "%s: POST /ready is refused (405)" % name)
    # The 405 is logged: its line is written before its answer is sent.
    log = srv.server.logs()
    ok(re.search(r"ev=http\.request method=POST path=/ready status=405",
                 log), "%s: other statuses of /ready are logged" % name)
    ok(not re.search(r"lvl=info [^\n]*ev=http\.request method=(GET|HEAD) "
                     r"path=/ready ", log),
       "%s: a 200 of /ready is not logged at info level" % name)


def read_head(tls):
    """Reads one answer's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        chunk = tls.recv(4096)
        if not chunk:
            break
        body += chunk
    return head.decode("latin-1"), body[:want].decode("latin-1")


def check_draining(name, srv):
    """A request whose head the server has (it answered 100 Continue)
    when SIGTERM arrives is answered after it: 503 draining."""
    ctx = ssl.create_default_context(cafile=srv.ca)
    raw = socket.create_connection((srv.host, srv.port), timeout=60)
    tls = ctx.wrap_socket(raw, server_hostname=srv.host)
    tls.sendall(b"GET /ready HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\n"
                b"Expect: 100-continue\r\n\r\n" % srv.host.encode())
    head, _ = read_head(tls)
    ok(head.startswith("HTTP/1.1 100 "), "%s: the server has the head "
       "(100 Continue)" % name)
    since = len(srv.server.logs())
    srv.server.proc.send_signal(15)
    ok(srv.server.wait_log(r"ev=http\.draining ", since),
       "%s: SIGTERM: the server drains" % name)
    tls.sendall(b"x")
    head, body = read_head(tls)
    tls.close()
    ok(head.startswith("HTTP/1.1 503 "), "%s: /ready after SIGTERM answers "
       "503 (%s)" % (name, head.split("\r\n")[0]))
    is_eq(body, "draining\n", "%s: its one word is draining" % name)
    is_eq(srv.server.proc.wait(60), 0, "%s: the server exits 0" % name)


def pg_ctl(action):
    pg = psync.pg_server()
    args = [os.path.join(pg.bin, "pg_ctl"), "-D", pg.data, "-w", "-t",
            "120"]
    args += ["-m", "fast", "stop"] if action == "stop" else \
        ["-l", pg.log_path, "start"]
    r = pg._as_server(args)
    if r.returncode != 0:
        raise RuntimeError("pg_ctl %s: %s%s" % (action, r.stdout, r.stderr))


def check_store_down(servers):
    pg_ctl("stop")
    for name, srv in servers:
        r = srv.get("/ready")
        is_eq((r.status, r.text()), (503, "store\n"), "%s: PostgreSQL "
              "stopped: /ready answers 503 store" % name)
        ok(re.search(r"ev=http\.request method=GET path=/ready status=503 "
                     r"[^\n]*error=", srv.server.logs()),
           "%s: the 503 is logged with the store's error" % name)
    pg_ctl("start")
    for name, srv in servers:
        ok(wait_for(lambda: srv.get("/ready").status == 200),
           "%s: PostgreSQL back: /ready answers 200 again" % name)


m = Master()
m.start()
p = Portal()
p.start()
check_ready("master", m)
check_ready("portal", p)
if psync.ON_POSTGRESQL:
    check_store_down([("master", m), ("portal", p)])
check_draining("master", m)
check_draining("portal", p)
done()
