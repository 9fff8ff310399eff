"""Shared helpers for photosync's integration tests.

The tests drive the real photosync binary on loopback with TLS: they make
state directories in a temporary folder, start `photosync master serve`
with port 0 and read the bound port from --port-file, and talk HTTPS with
the standard library (certificates verified against the state's own
certificate). Run with Debian's /usr/bin/python3.
"""
import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time

PHOTOSYNC = os.environ.get("PHOTOSYNC") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "photosync")

_count = 0
_failed = 0


def ok(cond, what):
    """One TAP test point."""
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_count, what),
          flush=True)
    return cond


def is_eq(got, want, what):
    if not ok(got == want, what):
        print("#   got  %r\n#   want %r" % (got, want), flush=True)


def done():
    print("1..%d" % _count, flush=True)
    sys.exit(1 if _failed else 0)


def tmpdir(prefix):
    return tempfile.mkdtemp(prefix="photosync-%s-" % prefix)


def run(*args, input=None, check=True):
    """Runs photosync with args; returns (exit status, stdout, stderr)."""
    p = subprocess.run([PHOTOSYNC] + list(args), input=input,
                       capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("photosync %s failed (%d): %s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


class Server:
    """A running `photosync ROLE serve`, stopped with stop()."""

    def __init__(self, role, state_dir, extra=()):
        self.dir = state_dir
        self.port_file = os.path.join(state_dir, "test.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(state_dir, "serve.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PHOTOSYNC, role, "serve", "--dir", state_dir,
             "--port-file", self.port_file] + list(extra),
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited: " + self.logs())
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start: " + self.logs())
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

    def logs(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


def request(host, port, method, path, ca_file, headers=None, body=None,
            server_name=None):
    """One HTTPS request on a fresh connection."""
    ctx = tls_context(ca_file)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    if server_name:
        conn._tunnel_host = None
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def make_image(path, size="800x600", fmt=None, extra=()):
    """A test image made with ImageMagick (a gradient with a red corner)."""
    target = (fmt + ":" + path) if fmt else path
    subprocess.run(["convert", "-size", size, "gradient:navy-gold",
                    "-fill", "red", "-draw", "rectangle 0,0 60,60"]
                   + list(extra) + [target], check=True)
    return path


def identify(path):
    """(width, height, format) per ImageMagick's identify."""
    out = subprocess.run(["identify", "-format", "%w %h %m\n", path],
                         capture_output=True, text=True, check=True).stdout
    w, h, m = out.split()[:3]
    return int(w), int(h), m


def exif_tags(path):
    """All metadata tags exiftool finds, as a dict (group:name -> value)."""
    out = subprocess.run(["exiftool", "-j", "-G", "-a", path],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


class Master:
    """A master state directory made with `photosync master init`."""

    def __init__(self, name="master", domain="contoso.com",
                 host="127.0.0.1:0"):
        self.dir = os.path.join(tmpdir(name), "state")
        self.domain = domain
        run("master", "init", "--dir", self.dir, "--host", host,
            "--domain", domain)
        self.ca = os.path.join(self.dir, "tls-cert.pem")
        self.host = host.rsplit(":", 1)[0]
        self.server = None

    def cmd(self, *args, check=True, input=None):
        args = list(args)
        return run("master", *(args[:2] + ["--dir", self.dir] + args[2:]),
                   check=check, input=input)

    def add_mailbox(self, email, password=None, name=None):
        args = ["mailbox", "add", email]
        if name:
            args += ["--name", name]
        if password is not None:
            pw = write(os.path.join(self.dir, "pw.tmp"), password + "\n")
            args += ["--password-file", pw]
        self.cmd(*args)

    def start(self):
        self.server = Server("master", self.dir)
        self.port = self.server.port
        return self

    def stop(self):
        if self.server:
            self.server.stop()

    def get(self, path, headers=None):
        return request(self.host, self.port, "GET", path, self.ca, headers)

    def post(self, path, body, headers=None):
        h = {"Content-Type": "text/xml; charset=utf-8"}
        h.update(headers or {})
        return request(self.host, self.port, "POST", path, self.ca, h, body)

    def url(self, path=""):
        return "https://%s:%d%s" % (self.host, self.port, path)
