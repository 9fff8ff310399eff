"""A fake master for the portal's failure and token tests.

A small HTTPS (or plain HTTP) server in a thread, standing in for a mail
server that misbehaves: it answers the portal's Autodiscover SOAP POST with
a GetUserSettings response captured from a real `photosync master` (its
URLs pointed back at the fake), then answers GetUserPhoto as `mode` says
(a photo, slowly, garbage, too large, HTML, 500, 401...). It records every
request (path, headers) so that tests can count calls and inspect the
Authorization header the portal sent. Its certificate is made here with
python3-cryptography, by a CA of its own (`ca_file`, for the portal's
--ca-file). Run with Debian's /usr/bin/python3.
"""
import datetime
import http.server
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from psync import basic

GETUSERPHOTO = "/ews/exchange.asmx/s/getuserphoto"
AUTODISCOVER = "/autodiscover/autodiscover.svc"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM,
                           serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())


def make_tls(directory, name="fake"):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it.
    Returns (ca_file, cert_file, key_file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "%s test CA" % name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name)
          .issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False,
              key_encipherment=False, data_encipherment=False,
              key_agreement=False, key_cert_sign=True, crl_sign=True,
              encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(
              ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = _key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, "%s-%s.pem" % (name, what))
             for what in ("ca", "cert", "key")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(_pem_key(key))
    os.chmod(paths[2], 0o600)
    return tuple(paths)


def bundle(path, *files):
    """Concatenates PEM files (several CAs for one --ca-file)."""
    with open(path, "wb") as out:
        for name in files:
            with open(name, "rb") as f:
                out.write(f.read().rstrip(b"\n") + b"\n")
    return path


SOAP_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover"
 xmlns:wsa="http://www.w3.org/2005/08/addressing"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header>
    <a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion>
    <wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>
    <wsa:To>%(url)s</wsa:To>
  </soap:Header>
  <soap:Body>
    <a:GetUserSettingsRequestMessage>
      <a:Request>
        <a:Users><a:User><a:Mailbox>%(email)s</a:Mailbox></a:User></a:Users>
        <a:RequestedSettings>
          <a:Setting>ExternalPhotosUrl</a:Setting>
          <a:Setting>InternalPhotosUrl</a:Setting>
          <a:Setting>ExternalEcpPhotoUrl</a:Setting>
          <a:Setting>InternalEcpPhotoUrl</a:Setting>
          <a:Setting>ExternalEwsUrl</a:Setting>
        </a:RequestedSettings>
      </a:Request>
    </a:GetUserSettingsRequestMessage>
  </soap:Body>
</soap:Envelope>
"""

BASE_MARK = "{{FAKE_BASE}}"


def capture_ad_template(master, email, password):
    """The real master's GetUserSettings answer for `email`, with its own
    base URL (https://HOST:PORT) replaced by a mark the fake fills in."""
    url = master.url(AUTODISCOVER)
    r = master.post("/autodiscover/autodiscover.svc",
                    (SOAP_REQUEST % {"url": url, "email": email}).encode(),
                    {"Authorization": basic(email, password)})
    text = r.text()
    if r.status != 200 or "ExternalPhotosUrl" not in text:
        raise RuntimeError("no GetUserSettings template from the master: "
                           "%d %s" % (r.status, text[:500]))
    base = master.url("")
    # The master may write its host in any case; replace case-insensitively.
    return re.sub(re.escape(base), lambda m: BASE_MARK, text,
                  flags=re.IGNORECASE)


def make_jpeg(side=400):
    """A real JPEG made with ImageMagick (bytes)."""
    import subprocess
    return subprocess.run(
        ["convert", "-size", "%dx%d" % (side, side),
         "gradient:green-white", "-fill", "blue", "-draw",
         "circle 100,100 150,150", "jpg:-"],
        check=True, capture_output=True).stdout


class Call:
    def __init__(self, kind, method, path, headers):
        self.kind = kind
        self.method = method
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.time = time.monotonic()

    def header(self, name):
        return self.headers.get(name.lower())


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeExchange/15.0"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, ctype, body, extra=()):
        try:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def _record(self, kind):
        fake = self.server.fake
        c = Call(kind, self.command, self.path, dict(self.headers.items()))
        with fake.lock:
            fake.calls.append(c)
        return c

    def do_POST(self):
        fake = self.server.fake
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.lower().split("?")[0] == AUTODISCOVER:
            c = self._record("autodiscover")
            c.body = body
            xml = fake.ad_template.replace(BASE_MARK, fake.ad_base())
            status = 200
            if fake.ad_answer:
                # A test's own answer: (status, xml), or None for the
                # captured one.
                got = fake.ad_answer(body.decode("utf-8", "replace"))
                if got is not None:
                    status, xml = got
            self._send(status, "text/xml; charset=utf-8", xml.encode())
            return
        self._record("other")
        self._send(404, "text/plain", b"no such endpoint\n")

    def do_GET(self):
        fake = self.server.fake
        path = self.path.lower().split("?")[0]
        if path == "/autodiscover/metadata/json/1" and fake.metadata:
            self._record("metadata")
            self._send(200, "application/json", fake.metadata)
            return
        if path != GETUSERPHOTO:
            self._record("other")
            self._send(404, "text/plain", b"no such endpoint\n")
            return
        c = self._record("photo")
        mode = fake.mode
        if fake.delay:
            time.sleep(fake.delay)
        if fake.gate is not None:
            # Held until the test opens the gate (an event, not a time).
            fake.gate.wait(60)
        if fake.throttle_left > 0:
            # A busy master: 429 (or throttle_status) with Retry-After,
            # `throttle_left` times.
            fake.throttle_left -= 1
            self._send(fake.throttle_status, "text/plain", b"slow down\n",
                       [("Retry-After", str(fake.retry_after))])
            return
        if mode == "ok":
            if c.header("If-None-Match") == '"%s"' % fake.etag:
                self._send(304, None, b"", [("ETag", '"%s"' % fake.etag)])
            else:
                self._send(200, "image/jpeg", fake.photo,
                           [("ETag", '"%s"' % fake.etag)])
        elif mode == "garbage":
            self._send(200, "image/jpeg", fake.garbage,
                       [("ETag", '"garbage-1"')])
        elif mode == "html":
            self._send(200, "text/html; charset=utf-8",
                       b"<html><body><h1>Sign in to Outlook Web App"
                       b"</h1></body></html>", [("ETag", '"html-1"')])
        elif mode == "huge":
            self._huge(with_length=True)
        elif mode == "huge-unsized":
            self._huge(with_length=False)
        elif mode == "500":
            self._send(500, "text/plain", b"Internal Server Error\n")
        elif mode == "404":
            self._send(404, "text/plain", b"no photo\n")
        elif mode == "401":
            self._send(401, "text/plain", b"no\n", [
                ("WWW-Authenticate", 'Bearer client_id="00000002-0000-'
                 '0ff1-ce00-000000000000", trusted_issuers="00000001-0001'
                 '-0000-c000-000000000000@*"'),
                ("x-ms-diagnostics", "2000001;reason=\"test: refused\"")])
        else:
            self._send(500, "text/plain", b"unknown mode\n")

    def _huge(self, with_length):
        fake = self.server.fake
        chunk = b"\xff\xd8\xff\xe0" + b"\0" * (64 * 1024 - 4)
        total = fake.huge_bytes
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("ETag", '"huge-1"')
            if with_length:
                self.send_header("Content-Length", str(total))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            sent = 0
            while sent < total:
                n = min(len(chunk), total - sent)
                self.wfile.write(chunk[:n])
                sent += n
                with fake.lock:
                    fake.huge_sent = sent
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass    # a client that hung up is no failure of the test


class FakeMaster:
    """A stand-in master at https://127.0.0.1:PORT (tls=None: plain http).

    mode: "ok" (photo with ETag "fake-N", 304 on a match), "garbage",
    "html", "huge", "huge-unsized", "500", "401"; delay: seconds slept
    before any GetUserPhoto answer. throttle_left: how many GetUserPhoto
    calls get 429 with Retry-After: retry_after first. photos_base: what the Autodiscover
    answer's URLs start with (default: this server). ad_answer: None, or
    a function of the Autodiscover request's body returning (status, xml)
    or None (the captured answer). gate: None, or a threading.Event every
    GetUserPhoto answer waits for. mode "404": no photo."""

    def __init__(self, ad_template, tls=None, photo=None, metadata=None):
        self.ad_template = ad_template
        self.mode = "ok"
        self.delay = 0
        self.throttle_left = 0
        self.throttle_status = 429
        self.retry_after = 1
        self.ad_answer = None
        self.gate = None
        self.etag = "fake-1"
        self.photo = photo or make_jpeg()
        self.garbage = b"GARBAGE!" + os.urandom(20000)
        self.huge_bytes = 9 * 1024 * 1024
        self.huge_sent = 0
        self.metadata = metadata
        self.photos_base = None
        self.calls = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.tls = tls is not None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.httpd.socket = ctx.wrap_socket(
                self.httpd.socket, server_side=True,
                do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def base(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.port)

    def ad_base(self):
        return self.photos_base or self.base()

    def hostport(self):
        return "127.0.0.1:%d" % self.port

    def count(self, kind):
        with self.lock:
            return sum(1 for c in self.calls if c.kind == kind)

    def last(self, kind):
        with self.lock:
            for c in reversed(self.calls):
                if c.kind == kind:
                    return c
        return None

    def of_kind(self, kind):
        with self.lock:
            return [c for c in self.calls if c.kind == kind]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port():
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def exchange_metadata(realm, cert_der, location):
    """An Exchange-shaped S2S metadata document (reference §4.2)."""
    import base64
    import hashlib
    import json
    x5t = base64.b64encode(hashlib.sha1(cert_der).digest()).decode()
    issuer = "00000002-0000-0ff1-ce00-000000000000@%s" % realm
    return json.dumps({
        "id": "_" + str(uuid.uuid4()),
        "version": "1.0",
        "name": "Exchange",
        "realm": realm,
        "serviceName": "00000002-0000-0ff1-ce00-000000000000",
        "issuer": issuer,
        "allowedAudiences": [issuer],
        "keys": [{"usage": "signing", "keyinfo": {"x5t": x5t},
                  "keyvalue": {"type": "x509Certificate",
                               "value": base64.b64encode(cert_der)
                               .decode()}}],
        "endpoints": [{"location": location, "protocol": "OAuth2",
                       "usage": "metadata"}],
    }).encode()


def self_signed_der(cn="fake exchange S2S"):
    now = datetime.datetime.now(datetime.timezone.utc)
    k = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .sign(k, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.DER)


def wait_for(cond, timeout=120.0, step=0.05):
    """Polls cond() until true or timeout; returns its last value. The
    timeout is only a guard against a hang (psync.HANG_GUARD)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


__all__ = ["FakeMaster", "make_tls", "bundle", "capture_ad_template",
           "closed_port", "exchange_metadata", "self_signed_der",
           "make_jpeg", "wait_for"]
