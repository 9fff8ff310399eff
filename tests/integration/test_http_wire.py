"""The HTTP/1.1 server on the wire: the real master over TLS, driven with
raw sockets (http.client hides what this is about): requests split into
tiny writes and across TLS records, pipelining, chunked bodies, Expect:
100-continue, every refusal (400, 413, 431, 501, 505) and that it closes
the connection, HEAD, HTTP/1.0, 304, request ids, clients that leave
half-way, and one http.request log line per answer, written before the
answer."""
import json
import os
import re
import socket
import ssl
import time

from psync import (Master, basic, done, is_eq, make_image, ok, tmpdir)

work = tmpdir("wire")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "300x300"))
m.start()

AUTH = basic("test1@contoso.com", "pw-one")
META = "/autodiscover/metadata/json/1"
PHOTO = ("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
         "size=HR96x96")
POX = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http:/'
       '/schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/'
       '2006"><Request><EMailAddress>test1@contoso.com</EMailAddress><Accep'
       'tableResponseSchema>http://schemas.microsoft.com/exchange/autodisco'
       'ver/outlook/responseschema/2006a</AcceptableResponseSchema></Reques'
       't></Autodiscover>').encode()
CTX = ssl.create_default_context(cafile=m.ca)
TIMEOUT = 5                     # every socket read; nothing can hang
answered = 0                    # final answers read, one log line each
t_start = time.monotonic()


class Resp:
    def __init__(self, status_line, headers, body):
        self.status_line = status_line
        self.status = int(status_line.split(" ")[1])
        self.headers = headers
        self.body = body

    def header(self, name):
        v = self.header_all(name)
        return v[0] if v else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Wire:
    """One TLS connection written and read byte for byte."""

    def __init__(self):
        raw = socket.create_connection(("127.0.0.1", m.port),
                                       timeout=TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = CTX.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("the server closed the connection (had %r)" %
                           self.buf[:200])
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def response(self, head=False):
        """One answer: status line, fields, a body by Content-Length (none
        for 1xx, 204, 304, or an answer to HEAD)."""
        global answered
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("no end of head in %r" % self.buf[:200])
            self._fill()
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        r = Resp(lines[0], headers, b"")
        if r.status >= 200:
            answered += 1
        if head or r.status < 200 or r.status in (204, 304):
            return r
        cl = r.header("Content-Length")
        if cl is not None:
            r.body = self._take(int(cl))
        else:                   # read to the end
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def eof(self, wait=2):
        """'eof' when the server closed cleanly and sent nothing more,
        else what happened instead. The server closes right after its
        answer, so this waits `wait` seconds at most."""
        self.s.settimeout(wait)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return "still open after %ds" % wait
        except (ConnectionResetError, ssl.SSLError) as e:
            return "not a clean close: %r" % e
        if self.buf or d:
            return "more bytes: %r" % (self.buf + d)[:200]
        return "eof"

    def close(self):
        self.s.close()


def req(method, path, fields=(), body=None, version="1.1", host=True):
    """A request's bytes; fields are (name, value) pairs, in order."""
    lines = ["%s %s HTTP/%s" % (method, path, version)]
    if host:
        lines.append("Host: 127.0.0.1:%d" % m.port)
    lines += ["%s: %s" % f for f in fields]
    if body is not None and not any(f[0].lower() in ("content-length",
                                                     "transfer-encoding")
                                    for f in fields):
        lines.append("Content-Length: %d" % len(body))
    out = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return out + (body or b"")


def pox(fields=(), version="1.1"):
    return req("POST", "/autodiscover/autodiscover.xml",
               [("Authorization", AUTH),
                ("Content-Type", "text/xml; charset=utf-8")] + list(fields),
               POX, version)


def chunked_pox(chunks, ext="", trailer=""):
    """The POX request with its body in the given chunks."""
    h = req("POST", "/autodiscover/autodiscover.xml",
            [("Authorization", AUTH),
             ("Content-Type", "text/xml; charset=utf-8"),
             ("Transfer-Encoding", "chunked")])
    body = b""
    for c in chunks:
        body += b"%X%s\r\n%s\r\n" % (len(c), ext.encode(), c)
    return h + body + b"0\r\n" + trailer.encode() + b"\r\n"


def split(data, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(data[i:i + n])
        i += n
    if i < len(data):
        out.append(data[i:])
    return out


def logged(rid):
    """The http.request line with this request id (the server's req, or
    the client's client_req), if it is in the log."""
    for line in m.server.logs().splitlines():
        if "ev=http.request" in line and (
                (" req=%s " % rid) in line or
                (" client_req=%s " % rid) in line + " "):
            return line
    return None


def last_logged():
    """The last http.request line (the test's requests are sequential)."""
    lines = [x for x in m.server.logs().splitlines()
             if "ev=http.request" in x]
    return lines[-1] if lines else ""


def log_ms(line):
    g = re.search(r" ms=(\d+)", line)
    return int(g.group(1)) if g else None


def case(fn):
    """Runs a scenario; an exception (a timeout, say) is a failed point,
    not the end of the test."""
    print("# --- %s" % fn.__doc__.strip().splitlines()[0], flush=True)
    try:
        fn()
    except Exception as e:          # noqa: BLE001
        ok(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e))
    return fn


def one(data, head=False):
    """Sends data on a fresh connection and reads one answer."""
    w = Wire()
    try:
        w.send(data)
        return w.response(head), w
    except Exception:
        w.close()
        raise


refusal_problems = {"id": [], "log": [], "ms": []}


def refused(data, status, what):
    """One request that must be refused with `status` and the connection
    closed. What its id and log line lack is collected in
    refusal_problems, to be reported once."""
    r, w = one(data)
    try:
        line = last_logged()
        ok(r.status == status, "%s: %d (%s)" % (what, status,
                                                 r.status_line))
        is_eq(r.header("Connection"), "close", what + ": Connection: close")
        ok(r.header("Date") and r.header("X-Content-Type-Options") ==
           "nosniff" and r.body.startswith(b"%d " % status),
           what + ": Date, nosniff, the error text")
        rid = r.header("request-id")
        if not (rid and r.header("X-Request-Id") == rid):
            refusal_problems["id"].append("%s: request-id %r X-Request-Id "
                                          "%r" % (what, rid,
                                                  r.header("X-Request-Id")))
        if not ("status=%d " % status in line and
                (not rid or "req=%s " % rid in line)):
            refusal_problems["log"].append("%s: %s" % (what, line))
        ms = log_ms(line)
        if ms is None or ms > 5000:
            refusal_problems["ms"].append("%s: ms=%s" % (what, ms))
        is_eq(w.eof(), "eof", what + ": then the server closes")
        return r
    finally:
        w.close()


# ---------------------------------------------------------------------------

@case
def basics():
    """basics: the fields every answer carries, request ids, keep-alive"""
    cid = "wire-basic-1"
    w = Wire()
    w.send(req("GET", META, [("client-request-id", cid)]))
    r = w.response()
    ok(logged(cid), "the http.request line is in the log when the answer "
       "has arrived")
    is_eq(r.status_line, "HTTP/1.1 200 OK", "GET: HTTP/1.1 200 OK")
    ok(re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:"
                    r"\d\d GMT", r.header("Date") or ""),
       "an IMF-fixdate Date (%s)" % r.header("Date"))
    ok(re.fullmatch(r"[0-9a-f]{16}", r.header("request-id") or ""),
       "the request-id is the server's own, not the client's")
    is_eq(r.header("X-Request-Id"), r.header("request-id"),
          "and so is the X-Request-Id")
    is_eq(r.header("client-request-id"), cid, "client-request-id echoed")
    is_eq(r.header("X-Content-Type-Options"), "nosniff", "nosniff")
    is_eq(r.header("Connection"), None, "HTTP/1.1 keeps the connection "
          "without saying so")
    is_eq(int(r.header("Content-Length")), len(r.body),
          "Content-Length is the body's length")
    ok(json.loads(r.body).get("keys"), "the body is the metadata document")
    for name in ("Date", "request-id", "X-Request-Id", "Content-Length",
                 "Content-Type", "X-Content-Type-Options"):
        if len(r.header_all(name)) != 1:
            ok(False, "%s appears once" % name)
    # Same connection: a 64-character id is taken, a 65-character one
    # and one with other characters are not.
    long_id = "A-" + "b" * 62
    w.send(req("GET", META, [("client-request-id", long_id)]))
    r = w.response()
    is_eq(r.header("client-request-id"), long_id,
          "a 64-character id is taken")
    ok(logged(long_id), "and logged")
    for bad in ("c" * 65, "no_underscore", "sp ace", "x;y"):
        w.send(req("GET", META, [("client-request-id", bad)]))
        r = w.response()
        rid = r.header("request-id") or ""
        ok(re.fullmatch(r"[0-9a-f]{16}", rid) and r.header(
            "client-request-id") is None and r.header("X-Request-Id") == rid,
           "client-request-id %r is not taken: a fresh id (%s)" % (bad, rid))
    w.send(req("GET", META))
    r2 = w.response()
    w.send(req("GET", META))
    r3 = w.response()
    ok(r2.status == r3.status == 200 and r2.header("request-id") !=
       r3.header("request-id"), "several requests on one connection, each "
       "with its own id")
    w.close()


@case
def lenient():
    """leniency: bare LF, empty lines before the request line"""
    r, w = one(b"GET %s HTTP/1.1\nHost: x\nclient-request-id: lf-1\n\n" %
               META.encode())
    ok(r.status == 200 and r.header("client-request-id") == "lf-1",
       "bare LF line ends are accepted (%s)" % r.status_line)
    w.send(b"\r\n\r\n\n" + req("GET", META))
    r = w.response()
    is_eq(r.status, 200, "empty lines before the request line are skipped")
    w.send(req("GET", "https://127.0.0.1:%d%s" % (m.port, META)))
    r = w.response()
    is_eq(r.status, 200, "an absolute-form target is routed by its path")
    w.close()


@case
def tiny_writes():
    """tiny writes: a head one byte per TLS record, a body in pieces"""
    w = Wire()
    data = req("GET", META, [("client-request-id", "tiny-1")])
    for i in range(len(data)):
        w.send(data[i:i + 1])
    r = w.response()
    ok(r.status == 200 and r.header("client-request-id") == "tiny-1",
       "GET sent a byte at a time: 200 (%d writes)" % len(data))
    data = pox([("client-request-id", "tiny-2")])
    head_len = data.index(b"\r\n\r\n") + 4
    for i in range(head_len):
        w.send(data[i:i + 1])
    for i in range(head_len, len(data), 7):
        w.send(data[i:i + 7])
    r = w.response()
    ok(r.status == 200 and b"<EwsUrl>" in r.body,
       "POST with the head a byte at a time and the body in 7-byte pieces "
       "on the same connection: the POX answer (%s)" % r.status_line)
    w.close()


@case
def two_records():
    """a head that arrives in two TLS records"""
    data = req("GET", META, [("client-request-id", "two-rec")])
    cuts = {
        "in the request line": data.index(b"HTTP/1.1") + 4,
        "in a header name": data.index(b"client-request-id") + 6,
        "between CR and LF": data.index(b"\r\n") + 1,
        "between the two CRLF at the end": len(data) - 2,
        "between CR and LF at the end": len(data) - 1,
    }
    for what, at in cuts.items():
        w = Wire()
        w.send(data[:at])
        time.sleep(0.02)        # two reads on the server, most likely
        w.send(data[at:])
        r = w.response()
        ok(r.status == 200 and r.header("client-request-id") == "two-rec",
           "head split %s: 200 (%s)" % (what, r.status_line))
        w.close()


@case
def pipelining():
    """pipelining: requests in one write are answered in order"""
    w = Wire()
    w.send(req("GET", META, [("client-request-id", "pipe-1")]) +
           req("GET", "/nothing", [("client-request-id", "pipe-2")]) +
           req("GET", PHOTO, [("Authorization", AUTH),
                              ("client-request-id", "pipe-3")]))
    rs = [w.response() for _ in range(3)]
    is_eq([r.header("client-request-id") for r in rs], ["pipe-1", "pipe-2",
                                                 "pipe-3"],
          "three pipelined GETs: three answers in order")
    is_eq([r.status for r in rs], [200, 404, 200], "with their statuses")
    ok(json.loads(rs[0].body).get("keys"), "1st: the metadata document")
    ok(rs[1].body.startswith(b"404 Not Found"), "2nd: the 404 text")
    ok(rs[2].body[:2] == b"\xff\xd8" and rs[2].header("Content-Type") ==
       "image/jpeg", "3rd: the JPEG (%d bytes)" % len(rs[2].body))
    ok(all(logged(i) for i in ("pipe-1", "pipe-2", "pipe-3")),
       "each has its log line")
    # Bodies in the pipeline: POST, chunked POST, GET in one write.
    w.send(pox([("client-request-id", "pipe-4")]) +
           chunked_pox([POX[:100], POX[100:]]).replace(
               b"Host:", b"client-request-id: pipe-5\r\nHost:", 1) +
           req("HEAD", META, [("client-request-id", "pipe-6")]) +
           req("GET", META, [("client-request-id", "pipe-7")]))
    rs = [w.response(), w.response(), w.response(head=True), w.response()]
    is_eq([(r.header("client-request-id"), r.status) for r in rs],
          [("pipe-4", 200), ("pipe-5", 200), ("pipe-6", 200),
           ("pipe-7", 200)],
          "POST, chunked POST, HEAD, GET pipelined: in order")
    ok(b"<EwsUrl>" in rs[0].body and rs[0].body == rs[1].body,
       "the two POSTs got the same POX answer")
    # Half of the next request comes with the last bytes of this one.
    a = req("GET", META, [("client-request-id", "pipe-8")])
    b = req("GET", META, [("client-request-id", "pipe-9")])
    w.send(a + b[:20])
    r1 = w.response()
    w.send(b[20:])
    r2 = w.response()
    is_eq((r1.header("client-request-id"), r2.header("client-request-id")),
          ("pipe-8", "pipe-9"), "a request that starts in the previous "
          "one's write")
    w.close()


@case
def chunked():
    """chunked request bodies"""
    r0, w = one(pox([("client-request-id", "cl-pox")]))
    ok(r0.status == 200 and b"<EwsUrl>" in r0.body,
       "POX with Content-Length: 200")
    w.close()
    variants = [
        ("one chunk", chunked_pox([POX]), None),
        ("many chunks, uppercase hex", chunked_pox(
            [POX[i:i + 26] for i in range(0, len(POX), 26)]), None),
        ("chunk extensions and a trailer", chunked_pox(
            [POX[:50], POX[50:]], ext=';name=value;flag',
            trailer="X-Trailer: one\r\nX-Other: two\r\n"), None),
        ("lowercase hex and leading zeros", None, None),
        ("sent a byte at a time", chunked_pox([POX[:300], POX[300:]]), 1),
    ]
    lower = req("POST", "/autodiscover/autodiscover.xml",
                [("Authorization", AUTH), ("Transfer-Encoding", "chunked")])
    lower += b"00%x\r\n%s\r\n0000\r\n\r\n" % (len(POX), POX)
    variants[3] = (variants[3][0], lower, None)
    for what, data, step in variants:
        w = Wire()
        if step:
            for i in range(0, len(data), step):
                w.send(data[i:i + step])
        else:
            w.send(data)
        r = w.response()
        ok(r.status == r0.status and r.body == r0.body,
           "chunked POX, %s: the same answer as with Content-Length (%s)"
           % (what, r.status_line))
        # The connection goes on after a chunked body.
        w.send(req("GET", META))
        is_eq(w.response().status, 200, "  and the connection goes on")
        w.close()
    head = req("POST", "/autodiscover/autodiscover.xml",
               [("Authorization", AUTH), ("Transfer-Encoding", "chunked")])
    for what, body in (("a chunk size that is not hex", b"zz\r\nabc\r\n"),
                       ("a chunk size with junk after it",
                        b"5x\r\nhello\r\n0\r\n\r\n"),
                       ("a negative chunk size", b"-5\r\nhello\r\n0\r\n\r\n"),
                       ("chunk data longer than its size",
                        b"3\r\nhello\r\n0\r\n\r\n"),
                       ("an empty chunk size line", b"\r\nhello\r\n")):
        refused(head + body, 400, "malformed chunked body, " + what)


@case
def expect_continue():
    """Expect: 100-continue"""
    w = Wire()
    data = pox([("Expect", "100-continue"), ("client-request-id", "exp-1")])
    head_len = data.index(b"\r\n\r\n") + 4
    w.send(data[:head_len])
    r = w.response()
    is_eq(r.status_line, "HTTP/1.1 100 Continue",
          "the head alone gets 100 Continue")
    is_eq(r.headers, [], "100 Continue has no fields")
    ok(not logged("exp-1"), "100 Continue is not the request's log line")
    w.send(data[head_len:])
    r = w.response()
    ok(r.status == 200 and b"<EwsUrl>" in r.body and
       r.header("client-request-id") == "exp-1",
       "then the body gets the final answer (%s)" % r.status_line)
    # Chunked with Expect, on the same connection.
    data = chunked_pox([POX[:10], POX[10:]]).replace(
        b"Host:", b"Expect: 100-continue\r\nHost:", 1)
    head_len = data.index(b"\r\n\r\n") + 4
    w.send(data[:head_len])
    r = w.response()
    is_eq(r.status, 100, "chunked with Expect: 100 Continue on the same "
          "connection")
    w.send(data[head_len:])
    r = w.response()
    ok(r.status == 200 and b"<EwsUrl>" in r.body, "then the final answer")
    w.close()
    # Too large: 413 instead of 100.
    w = Wire()
    w.send(req("POST", "/autodiscover/autodiscover.svc",
               [("Authorization", AUTH), ("Expect", "100-continue"),
                ("Content-Length", str(64 << 20))]))
    r = w.response()
    is_eq(r.status, 413, "Expect with a body too large: 413, not 100")
    w.close()


@case
def too_large():
    """413 before the body arrives, and a graceful close"""
    cid = "big-body-1"
    big = req("POST", "/autodiscover/autodiscover.svc",
              [("Authorization", AUTH), ("client-request-id", cid),
               ("Content-Length", str(32 << 20))])
    r, w = one(big)
    ok(r.status == 413, "a 32 MiB Content-Length: 413 with no body sent "
       "(%s)" % r.status_line)
    is_eq(r.header("Connection"), "close", "413: Connection: close")
    ok("status=413 " in last_logged(), "413: logged before it was sent")
    is_eq(r.header("client-request-id"), cid, "413: client-request-id "
          "echoed")
    ok(re.fullmatch(r"[0-9a-f]{16}", r.header("request-id") or ""),
       "413: with a request-id of the server's own")
    is_eq(w.eof(), "eof", "413: then the server closes")
    w.close()
    # The client does not wait: it sends its body all along.
    w = Wire()
    w.send(big.replace(cid.encode(), b"big-body-2") + b"x" * 1000)
    for _ in range(8):
        w.send(b"y" * 16384)
    first = w.s.recv(12)
    w.buf = first
    is_eq(first, b"HTTP/1.1 413", "413 arrives first although the client "
          "sent 128 KiB of body meanwhile")
    r = w.response()
    for _ in range(4):          # the server still drains what comes
        w.send(b"z" * 16384)
    is_eq(w.eof(), "eof", "then a clean close, no reset, though the client "
          "went on sending")
    w.close()
    # The chunked form: a chunk larger than the server takes.
    refused(req("POST", "/autodiscover/autodiscover.svc",
                [("Authorization", AUTH), ("Transfer-Encoding", "chunked")])
            + b"%x\r\n" % (64 << 20) + b"a" * 1000, 413,
            "a 64 MiB chunk")


@case
def head_limits():
    """431: heads over 32 KiB or with more than 64 fields"""
    def sized(total):
        base = req("GET", META, [("X-Pad", "")])
        pad = total - len(base)
        return req("GET", META, [("X-Pad", "p" * pad)])
    data = sized(32 * 1024)
    r, w = one(data)
    is_eq(r.status, 200, "a head of exactly 32768 bytes: 200")
    w.close()
    refused(sized(32 * 1024 + 1), 431, "a head of 32769 bytes")
    refused(sized(40000), 431, "a head of 40000 bytes")
    # Still no end in sight: refused without waiting for the end.
    w = Wire()
    w.send(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 40000)
    r = w.response()
    is_eq(r.status, 431, "an unfinished head over 32 KiB: 431 at once")
    w.close()
    fields = [("X-F%d" % i, "v") for i in range(63)]
    r, w = one(req("GET", META, fields))
    is_eq(r.status, 200, "64 fields: 200")
    w.close()
    refused(req("GET", META, fields + [("X-F63", "v")]), 431, "65 fields")


@case
def malformed():
    """400, 501, 505 for what cannot be read one way only"""
    meta = META.encode()
    cases = [
        (b"GET /\r\n\r\n", 400, "a request line without version"),
        (b"GET  %s HTTP/1.1\r\nHost: x\r\n\r\n" % meta, 400,
         "two spaces in the request line"),
        (b"G(T %s HTTP/1.1\r\nHost: x\r\n\r\n" % meta, 400,
         "a method with a non-token character"),
        (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "a target with DEL"),
        (b"GET %s http/1.1\r\nHost: x\r\n\r\n" % meta, 400,
         "a lower-case version"),
        (b"GET %s HTTP/1.1x\r\nHost: x\r\n\r\n" % meta, 400,
         "junk after the version"),
        (b"GET %s HTTP/11\r\nHost: x\r\n\r\n" % meta, 400,
         "a version without a dot"),
        (b"GET %s HTTP/2.0\r\nHost: x\r\n\r\n" % meta, 505, "HTTP/2.0"),
        (b"GET %s HTTP/3.0\r\nHost: x\r\n\r\n" % meta, 505, "HTTP/3.0"),
        (b"GET %s HTTP/0.9\r\nHost: x\r\n\r\n" % meta, 505, "HTTP/0.9"),
        (req("GET", META, [("X-A", "one")]).replace(
            b"X-A: one\r\n", b"X-A: one\r\n two\r\n"), 400,
         "a folded header line (obs-fold, space)"),
        (req("GET", META, [("X-A", "one")]).replace(
            b"X-A: one\r\n", b"X-A: one\r\n\ttwo\r\n"), 400,
         "a folded header line (obs-fold, tab)"),
        (b"GET %s HTTP/1.1\r\n Host: x\r\n\r\n" % meta, 400,
         "whitespace before the first field"),
        (b"GET %s HTTP/1.1\r\nHost : x\r\n\r\n" % meta, 400,
         "whitespace before the colon"),
        (b"GET %s HTTP/1.1\r\nHost x\r\n\r\n" % meta, 400,
         "a field without a colon"),
        (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" % meta, 400,
         "a bare CR in a field"),
        (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" % meta, 400,
         "a NUL in a field"),
        (b"GET /autodiscover%00/metadata/json/1 HTTP/1.1\r\nHost: x\r\n"
         b"\r\n", 400, "an encoded NUL in the path"),
        (b"GET autodiscover HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "a target that is not a path"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Authorization", AUTH), ("Transfer-Encoding", "gzip"),
              ("Content-Length", "3")], b"abc").replace(
            b"Content-Length: 3\r\n", b""), 501, "Transfer-Encoding: gzip"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Transfer-Encoding", "gzip, chunked")]) +
         b"3\r\nabc\r\n0\r\n\r\n", 501, "Transfer-Encoding: gzip, chunked"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Transfer-Encoding", "chunked"),
              ("Transfer-Encoding", "chunked")]) +
         b"3\r\nabc\r\n0\r\n\r\n", 501, "Transfer-Encoding: chunked twice"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Content-Length", "3"), ("Transfer-Encoding", "chunked")]) +
         b"3\r\nabc\r\n0\r\n\r\n", 400,
         "both Content-Length and Transfer-Encoding"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Content-Length", "3"), ("Content-Length", "4")]) + b"abcd",
         400, "conflicting Content-Length fields"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Content-Length", "3, 4")]) + b"abcd", 400,
         "a Content-Length list"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Content-Length", "-1")]), 400, "a negative Content-Length"),
        (req("POST", "/autodiscover/autodiscover.xml",
             [("Content-Length", "99999999999999999999999")]), 400,
         "an overflowing Content-Length"),
    ]
    for data, status, what in cases:
        refused(data, status, what)
    # Equal Content-Length fields are one length.
    r, w = one(pox([("Content-Length", str(len(POX)))]).replace(
        b"Content-Length", b"content-length", 1))
    ok(r.status == 200 and b"<EwsUrl>" in r.body,
       "two equal Content-Length fields are accepted (%s)" % r.status_line)
    w.close()


@case
def refusal_ids():
    """what every refusal above had: a request id and a log line"""
    n = sum(1 for line in m.server.logs().splitlines()
            if "ev=http.request" in line and " error=" in line)
    for key, what in (("id", "a non-empty request-id, the same in "
                       "X-Request-Id"),
                      ("log", "its http.request line (with that id) in the "
                       "log when the answer arrived"),
                      ("ms", "a sane ms= (the time it took) in its log "
                       "line")):
        probs = refusal_problems[key]
        ok(not probs, "every refusal has %s (%d wrong)" % (what, len(probs)))
        for p in probs[:4]:
            print("#   %s" % p)
        if len(probs) > 4:
            print("#   ... and %d more" % (len(probs) - 4))
    ok(n > 30, "refusals are logged (%d lines with error=)" % n)


@case
def refusal_after_request():
    """a refusal on a connection that answered before"""
    w = Wire()
    w.send(req("GET", META, [("client-request-id", "before-bad")]) +
           b"GET %s HTTP/2.0\r\nHost: x\r\n\r\n" % META.encode())
    r1 = w.response()
    r2 = w.response()
    line = last_logged()
    is_eq((r1.status, r2.status), (200, 505), "a good request, then a bad "
          "one pipelined: 200, 505")
    rid = r2.header("request-id") or ""
    ok(rid and rid != "before-bad" and r2.header("X-Request-Id") == rid,
       "the refusal has its own request id (%r, the previous was "
       "'before-bad')" % rid)
    ok("status=505 " in line and ("req=%s " % rid) in line,
       "the refusal's log line carries that id (%s)" % line)
    is_eq(w.eof(), "eof", "then the server closes")
    w.close()
    r, w = one(req("POST", "/autodiscover/autodiscover.xml",
                   [("client-request-id", "bad-te"),
                    ("Transfer-Encoding", "gzip")]))
    is_eq(r.status, 501, "a refusal of a readable head (501)")
    rid = r.header("request-id") or ""
    ok(rid != "bad-te" and r.header("X-Request-Id") == rid and
       r.header("client-request-id") == "bad-te" and logged(rid) and
       logged(rid) == logged("bad-te"), "its client-request-id is echoed "
       "and logged beside the server's request id (%r)" % rid)
    w.close()


@case
def head_method():
    """HEAD"""
    w = Wire()
    w.send(req("GET", META))
    g = w.response()
    w.send(req("HEAD", META, [("client-request-id", "head-1")]))
    r = w.response(head=True)
    is_eq(r.status, 200, "HEAD: 200")
    is_eq(r.header("Content-Length"), str(len(g.body)),
          "HEAD: the Content-Length a GET has")
    is_eq(r.header("Content-Type"), g.header("Content-Type"),
          "HEAD: the GET's Content-Type")
    # No body: the next answer on the connection starts right away.
    w.send(req("GET", META, [("client-request-id", "after-head")]))
    r = w.response()
    ok(r.status == 200 and r.header("client-request-id") == "after-head",
       "HEAD sent no body: the next answer follows directly")
    w.close()


@case
def http10():
    """HTTP/1.0, Connection: close and keep-alive"""
    r, w = one(req("GET", META, version="1.0", host=False))
    is_eq(r.status_line, "HTTP/1.1 200 OK", "1.0: answered with HTTP/1.1")
    is_eq(r.header("Connection"), "close", "1.0: Connection: close")
    ok(json.loads(r.body).get("keys"), "1.0: the body")
    is_eq(w.eof(), "eof", "1.0: then the server closes")
    w.close()
    w = Wire()
    for i in range(3):
        w.send(req("GET", META, [("Connection", "keep-alive"),
                                 ("client-request-id", "ka10-%d" % i)],
                   version="1.0"))
        r = w.response()
        ok(r.status == 200 and r.header("Connection") == "keep-alive" and
           r.header("client-request-id") == "ka10-%d" % i,
           "1.0 with keep-alive, request %d: Connection: keep-alive" % i)
    w.send(req("GET", META, version="1.0"))
    r = w.response()
    is_eq(r.header("Connection"), "close", "1.0 without keep-alive on the "
          "same connection: close")
    is_eq(w.eof(), "eof", "and the server closes")
    w.close()
    w = Wire()
    w.send(req("GET", META))
    is_eq(w.response().header("Connection"), None, "1.1: kept")
    w.send(req("GET", META, [("Connection", "close")]) + req("GET", META))
    r = w.response()
    is_eq((r.status, r.header("Connection")), (200, "close"),
          "1.1 with Connection: close: answered, Connection: close")
    is_eq(w.eof(), "eof", "then closed; a request pipelined after it is "
          "not answered")
    w.close()
    r, w = one(req("GET", META, [("Connection", "Keep-Alive, Close")]))
    is_eq(r.header("Connection"), "close", "close in a Connection list wins")
    w.close()


@case
def not_modified():
    """304 for GetUserPhoto with If-None-Match"""
    w = Wire()
    w.send(req("GET", PHOTO, [("Authorization", AUTH)]))
    r = w.response()
    etag = r.header("ETag")
    ok(r.status == 200 and etag, "REST photo: 200 with an ETag")
    w.send(req("GET", PHOTO, [("Authorization", AUTH),
                              ("If-None-Match", etag),
                              ("client-request-id", "nm-1")]))
    r = w.response()
    is_eq(r.status_line, "HTTP/1.1 304 Not Modified", "If-None-Match: 304")
    is_eq(r.header("Content-Length"), None, "304: no Content-Length")
    is_eq(r.header("ETag"), etag, "304: the ETag")
    ok(r.header("Date") and r.header("client-request-id") == "nm-1" and
       r.header("X-Content-Type-Options") == "nosniff",
       "304: Date, request-id, nosniff")
    w.send(req("GET", META, [("client-request-id", "after-304")]))
    r = w.response()
    ok(r.status == 200 and r.header("client-request-id") == "after-304",
       "304 had no body: the next answer follows directly")
    w.close()


@case
def leaving():
    """clients that leave half-way do not disturb the others"""
    before = m.server.logs().count("ev=http.request")
    # A partial head, a partial body, an idle TLS connection, a TCP
    # connection that never does TLS, plain text to the TLS port, and a
    # TLS handshake cut short.
    w = Wire()
    w.send(b"GET %s HTTP/1.1\r\nHost: x\r\n" % META.encode())
    w.close()
    w = Wire()
    w.send(req("POST", "/autodiscover/autodiscover.xml",
               [("Authorization", AUTH), ("Content-Length", "500")]) +
           b"x" * 100)
    w.close()
    w = Wire()
    w.send(chunked_pox([POX])[:-40])
    w.close()
    w = Wire()
    w.send(req("POST", "/autodiscover/autodiscover.xml",
               [("Authorization", AUTH), ("Expect", "100-continue"),
                ("Content-Length", "500")]))
    is_eq(w.response().status, 100, "100 Continue")
    w.close()
    Wire().close()
    s = socket.create_connection(("127.0.0.1", m.port), timeout=TIMEOUT)
    s.close()
    s = socket.create_connection(("127.0.0.1", m.port), timeout=TIMEOUT)
    s.sendall(req("GET", META))
    try:
        s.recv(100)             # a TLS alert or nothing
    except OSError:
        pass
    s.close()
    s = socket.create_connection(("127.0.0.1", m.port), timeout=TIMEOUT)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 20)
    s.close()
    # An open connection held idle meanwhile keeps working.
    idle = Wire()
    idle.send(req("GET", META))
    idle.response()
    r, w = one(req("GET", META, [("client-request-id", "after-leavers")]))
    ok(r.status == 200 and logged("after-leavers"),
       "the next connection is answered")
    w.close()
    idle.send(req("GET", META))
    is_eq(idle.response().status, 200, "and a connection kept open")
    idle.close()
    is_eq(m.server.logs().count("ev=http.request") - before, 3,
          "no log line for requests that never completed")


@case
def final():
    """after all that: the server answers, one log line per answer"""
    r, w = one(req("GET", PHOTO, [("Authorization", AUTH),
                                  ("client-request-id", "the-end")]))
    ok(r.status == 200 and r.body[:2] == b"\xff\xd8",
       "a normal request is answered after the abuse")
    logs = m.server.logs()
    ok(logged("the-end"), "its log line is there when it has arrived")
    w.close()
    is_eq(logs.count("ev=http.request"), answered,
          "one http.request line per answer read (%d)" % answered)
    ok(m.server.proc.poll() is None, "the server is still running")


print("# the wire tests took %.1f s" % (time.monotonic() - t_start))
m.stop()
is_eq(m.server.proc.returncode, 0, "exits 0 after SIGTERM")
done()
