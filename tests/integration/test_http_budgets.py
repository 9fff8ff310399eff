"""The HTTP server's budgets on the wire, against the real master over
TLS: the connection cap closes the least recently active idle connection
for a new one; a request head sent a byte at a time is answered 408 at
its deadline; a TLS handshake that never comes (also 200 of them at
once) and a body that trickles are cut off; request bodies that do not fit the body memory get 503 with
Retry-After before they are read; SIGTERM lets a request in flight finish
while new connections are refused, and the process exits 0; what is
still open at the drain deadline is closed.

The deadlines are shortened for this test with PHOTOSYNC_HTTP_TEST_LIMITS
(docs/operations.md): the assertions are about what happened, never about
how long it took."""
import os
import signal
import socket
import ssl
import time

from psync import (Master, Server, basic, done, is_eq, make_image, ok,
                   tmpdir)

work = tmpdir("budgets")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "100x100"))
AUTH = basic("test1@contoso.com", "pw-one")
META = "/autodiscover/metadata/json/1"
POX_PATH = "/autodiscover/autodiscover.xml"
CTX = ssl.create_default_context(cafile=m.ca)
TIMEOUT = 10                    # every socket read; nothing can hang
srv = None


class Wire:
    """One TLS connection to the running server, read byte for byte."""

    def __init__(self):
        raw = socket.create_connection(("127.0.0.1", srv.port),
                                       timeout=TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = CTX.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("the server closed the connection")
        self.buf += d

    def response(self):
        """(status, {field: value}, body) of one answer."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        status = int(lines[0].split(" ")[1])
        n = int(fields.get("content-length", "0"))
        if status < 200 or status in (204, 304):
            n = 0
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, fields, body

    def closed(self):
        """True once the server has closed the connection (it must do so
        within TIMEOUT seconds)."""
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def answered(self, wait):
        """True when an answer starts arriving within `wait` seconds."""
        self.s.settimeout(wait)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return False
        finally:
            self.s.settimeout(TIMEOUT)
        self.buf += d
        return True

    def close(self):
        self.s.close()


def req(method, path, fields=(), body=None):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % f for f in fields]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def start(*extra, test_limits=None):
    global srv
    if test_limits:
        os.environ["PHOTOSYNC_HTTP_TEST_LIMITS"] = test_limits
    try:
        srv = Server("master", m.dir, extra=list(extra))
    finally:
        os.environ.pop("PHOTOSYNC_HTTP_TEST_LIMITS", None)
    return srv


def wait_log(text, n=1):
    """Waits for the n-th log line containing text; True when it came."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if srv.logs().count(text) >= n:
            return True
        time.sleep(0.02)
    return False


def case(fn):
    print("# --- %s" % fn.__doc__.strip().splitlines()[0], flush=True)
    try:
        fn()
    except Exception as e:          # noqa: BLE001
        ok(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e))
    return fn


# ---------------------------------------------------------------------------

start("--max-connections", "4")


@case
def cap():
    """the connection cap closes the least recently active idle one"""
    ok("max_connections=4 " in srv.logs(), "the cap in force is logged")
    ws = []
    for i in range(4):
        w = Wire()
        w.send(req("GET", META, [("client-request-id", "cap-%d" % i)]))
        is_eq(w.response()[0], 200, "connection %d answered" % (i + 1))
        ws.append(w)
    # The second connection is used again: the first is now the oldest.
    ws[1].send(req("GET", META))
    ws[1].response()
    extra = Wire()
    extra.send(req("GET", META, [("client-request-id", "cap-new")]))
    st, f, _ = extra.response()
    ok(st == 200 and f.get("client-request-id") == "cap-new",
       "a fifth connection over the cap of 4 is served")
    ok(ws[0].closed(), "the least recently active connection was closed")
    ok(wait_log("ev=http.conn_evicted"), "and http.conn_evicted logged")
    for i in (1, 2, 3):
        ws[i].send(req("GET", META))
        is_eq(ws[i].response()[0], 200,
              "connection %d is still served" % (i + 1))
    ws[1].send(req("GET", "/metrics"))
    st, _, body = ws[1].response()
    text = body.decode()
    ok(st == 200 and "photosync_http_connections_max 4\n" in text and
       'photosync_http_refused_total{reason="evicted"} 1\n' in text,
       "/metrics: the cap and the eviction")
    for w in ws + [extra]:
        w.close()


srv.stop()
is_eq(srv.proc.returncode, 0, "exits 0")

# Deadlines of about a second (the sweep runs every quarter of one).
start(test_limits="head_ms=1000,handshake_ms=1000,body_grace_ms=1000,"
      "body_min_rate=100000")


@case
def head_deadline():
    """a head sent a byte at a time: 408 at its deadline"""
    ok("ev=http.test_limits" in srv.logs(), "the test limits are logged")
    w = Wire()
    head = req("GET", META, [("X-Pad", "p" * 4000)])
    sent = 0
    answer = b""
    # A byte every 20 ms: far more often than any deadline, so only a
    # deadline for the whole head ends this before it is complete.
    while sent < len(head):
        w.send(head[sent:sent + 1])
        sent += 1
        if w.answered(0.02):
            break
    st, f, body = w.response()
    is_eq(st, 408, "408 Request Timeout")
    ok(sent < len(head), "before the head was complete (%d of %d bytes)" %
       (sent, len(head)))
    is_eq(f.get("connection"), "close", "Connection: close")
    ok(body.startswith(b"408 Request Timeout: "), "a plain-text reason")
    ok(w.closed(), "then the server closes")
    ok(wait_log("ev=http.head_timeout"), "http.head_timeout logged")
    w.close()


@case
def handshake_deadline():
    """a TLS handshake that never comes"""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    try:
        ok(s.recv(100) == b"", "the server closes a connection that never "
           "starts TLS")
    except ConnectionResetError:
        ok(True, "the server closes a connection that never starts TLS")
    s.close()
    ok(wait_log("ev=http.handshake_timeout"), "http.handshake_timeout "
       "logged")


@case
def many_expire():
    """200 handshakes that never come, expiring together: all closed"""
    before = srv.logs().count("ev=http.handshake_timeout")
    socks = [socket.create_connection(("127.0.0.1", srv.port),
                                      timeout=TIMEOUT) for _ in range(200)]
    closed = 0
    for s in socks:
        try:
            if s.recv(100) == b"":
                closed += 1
        except ConnectionResetError:
            closed += 1
        s.close()
    is_eq(closed, 200, "every one is closed (more than one sweep's "
          "share: the sweep goes on in its next turn)")
    ok(wait_log("ev=http.handshake_timeout", before + 200),
       "200 more http.handshake_timeout lines")
    w = Wire()
    w.send(req("GET", META))
    is_eq(w.response()[0], 200, "and the server answers as before")
    w.close()


@case
def body_rate():
    """a body that trickles: 408"""
    w = Wire()
    w.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                  ("Content-Length", "50000")]))
    sent = 0
    while sent < 50000:
        w.send(b"x")
        sent += 1
        if w.answered(0.02):
            break
    st, f, body = w.response()
    is_eq(st, 408, "a body far under the minimum rate: 408")
    ok(sent < 50000, "before it was complete (%d bytes)" % sent)
    ok(b"too slowly" in body, "the reason says so")
    ok(w.closed(), "then the server closes")
    ok(wait_log("ev=http.body_too_slow"), "http.body_too_slow logged")
    w.close()


@case
def quick_after():
    """a request at normal speed is not affected"""
    w = Wire()
    w.send(req("GET", META))
    is_eq(w.response()[0], 200, "200")
    w.close()


srv.stop()
is_eq(srv.proc.returncode, 0, "exits 0")

start("--body-memory", "64K")


@case
def body_memory():
    """bodies that do not fit the body memory: 503 before they are read"""
    ok("body_memory=65536 " in srv.logs(), "--body-memory 64K is in force")
    a = Wire()
    a.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                  ("Expect", "100-continue"),
                                  ("Content-Length", "60000")]))
    st, _, _ = a.response()
    is_eq(st, 100, "a 60000-byte body is admitted (100 Continue)")
    b = Wire()
    b.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                  ("client-request-id", "no-room"),
                                  ("Content-Length", "10000")]))
    st, f, body = b.response()
    is_eq(st, 503, "another 10000 bytes do not fit beside it: 503")
    ok(f.get("retry-after", "").isdigit(), "with Retry-After (%s)" %
       f.get("retry-after"))
    is_eq(f.get("connection"), "close", "Connection: close")
    ok(body.startswith(b"503 Service Unavailable: "), "a plain-text reason")
    ok(b.closed(), "then the server closes")
    ok(wait_log("ev=http.body_refused"), "http.body_refused logged")
    b.close()
    a.send(b"x" * 60000)
    st, _, _ = a.response()
    ok(st >= 200, "the admitted body is read and answered (%d)" % st)
    a.close()
    c = Wire()
    c.send(req("POST", POX_PATH, [("Authorization", AUTH)], b"y" * 10000))
    st, _, _ = c.response()
    ok(st != 503, "once it is answered, 10000 bytes fit again (%d)" % st)
    c.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                  ("Content-Length", "100000")]))
    st, _, _ = c.response()
    is_eq(st, 413, "a body larger than the whole budget: 413")
    c.close()


srv.stop()
is_eq(srv.proc.returncode, 0, "exits 0")

start()


@case
def drain():
    """SIGTERM: the request in flight finishes, new connections refused"""
    idle = Wire()
    idle.send(req("GET", META))
    is_eq(idle.response()[0], 200, "an idle keep-alive connection")
    busy = Wire()
    pox = (b'<?xml version="1.0"?><Autodiscover xmlns="http://schemas.'
           b'microsoft.com/exchange/autodiscover/outlook/requestschema/2006"'
           b'><Request><EMailAddress>test1@contoso.com</EMailAddress><Accep'
           b'tableResponseSchema>http://schemas.microsoft.com/exchange/auto'
           b'discover/outlook/responseschema/2006a</AcceptableResponseSchem'
           b'a></Request></Autodiscover>')
    busy.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                     ("Expect", "100-continue"),
                                     ("client-request-id", "in-flight"),
                                     ("Content-Length", str(len(pox)))]))
    is_eq(busy.response()[0], 100, "a request in flight (its body to come)")
    srv.proc.send_signal(signal.SIGTERM)
    ok(wait_log("ev=http.draining"), "SIGTERM: http.draining logged")
    ok(idle.closed(), "the idle connection is closed")
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
        s.close()
        ok(False, "a new connection is refused")
    except ConnectionRefusedError:
        ok(True, "a new connection is refused")
    busy.send(pox)
    st, f, body = busy.response()
    ok(st == 200 and b"<EwsUrl>" in body, "the request in flight is "
       "answered in full (%d)" % st)
    is_eq(f.get("connection"), "close", "with Connection: close")
    ok(busy.closed(), "then its connection closes")
    try:
        srv.proc.wait(timeout=TIMEOUT)
    except Exception:           # noqa: BLE001
        pass
    is_eq(srv.proc.returncode, 0, "the process exits 0")
    ok("ev=http.drained" in srv.logs(), "http.drained logged")
    idle.close()
    busy.close()


srv.stop()

# A drain deadline of half a second, and body deadlines far beyond it.
start(test_limits="drain_ms=500,body_grace_ms=600000")


@case
def drain_deadline():
    """SIGTERM: what is still open at the drain deadline is closed"""
    wires = []
    for i in range(2):
        w = Wire()
        w.send(req("POST", POX_PATH, [("Authorization", AUTH),
                                      ("Expect", "100-continue"),
                                      ("Content-Length", "100")]))
        is_eq(w.response()[0], 100, "request %d waits for its body" %
              (i + 1))
        wires.append(w)
    srv.proc.send_signal(signal.SIGTERM)
    ok(wait_log("ev=http.drain_timeout"), "http.drain_timeout logged")
    ok("ev=http.drain_timeout connections=2" in srv.logs(),
       "both connections counted")
    for i, w in enumerate(wires):
        ok(w.closed(), "connection %d is closed" % (i + 1))
    try:
        srv.proc.wait(timeout=TIMEOUT)
    except Exception:           # noqa: BLE001
        pass
    is_eq(srv.proc.returncode, 0, "the process exits 0")
    for w in wires:
        w.close()


srv.stop()
done()
