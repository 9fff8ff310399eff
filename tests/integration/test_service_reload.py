"""SIGHUP reloads the TLS certificate and key of a running server
without dropping connections: a keep-alive connection opened before goes
on with the old certificate, a new connection gets the new one (compared
by fingerprint). A bad certificate, or a key that does not match, is
refused with serve.reload_refused, and the certificate before it keeps
serving. The master's one certificate, and the portal's web
application's; the master's sign-in settings (`sso set`) too; and on a
portal whose two web applications share a port
(the second's certificate chosen by server name), one bad file refuses
the reload of both, and a good pair then changes both."""
import hashlib
import http.client
import os
import shutil
import ssl

from fakepeer import make_tls
from psync import (Master, Portal, Server, done, free_port, is_eq,
                   make_image, ok, request, run, tmpdir)

work = tmpdir("reload")


def fingerprint_of_file(pem):
    with open(pem) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def connect(host, port, ca):
    conn = http.client.HTTPSConnection(
        host, port, context=ssl.create_default_context(cafile=ca),
        timeout=60)
    conn.connect()
    return conn


def fingerprint(conn):
    return hashlib.sha256(conn.sock.getpeercert(True)).hexdigest()


def get_ready(conn):
    conn.request("GET", "/ready")
    r = conn.getresponse()
    r.read()
    return r.status


def replace(src, dst):
    """Puts src at dst in one step, as a deployment tool would."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def check(name, srv, cert_file, key_file):
    server = srv.server
    ca_old = os.path.join(work, "%s-old-ca.pem" % name)
    shutil.copyfile(cert_file, ca_old)     # self-signed: its own CA
    old = connect(srv.host, srv.port, ca_old)
    is_eq(get_ready(old), 200, "%s: a keep-alive connection answers" % name)
    is_eq(fingerprint(old), fingerprint_of_file(ca_old),
          "%s: it got the first certificate" % name)
    sock = old.sock

    ca, cert, key = make_tls(work, "%s-new" % name)
    replace(key, key_file)
    replace(cert, cert_file)
    at = len(server.logs())
    server.proc.send_signal(1)
    ok(server.wait_log(r"ev=serve\.reloaded", at),
       "%s: SIGHUP: the log says the certificates were reloaded" % name)

    is_eq(get_ready(old), 200,
          "%s: the connection opened before goes on" % name)
    ok(old.sock is sock, "%s: on the same connection" % name)
    is_eq(fingerprint(old), fingerprint_of_file(ca_old),
          "%s: which keeps the old certificate" % name)
    new = connect(srv.host, srv.port, ca)
    is_eq(get_ready(new), 200, "%s: a new connection answers" % name)
    is_eq(fingerprint(new), fingerprint_of_file(cert),
          "%s: with the new certificate" % name)
    new.close()

    # Not a certificate: refused, the one in use stays.
    with open(cert_file + ".new", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbroken\n"
                "-----END CERTIFICATE-----\n")
    os.replace(cert_file + ".new", cert_file)
    at = len(server.logs())
    server.proc.send_signal(1)
    ok(server.wait_log(r"lvl=warn [^\n]*ev=serve\.reload_refused "
                       r"[^\n]*error=", at),
       "%s: a broken certificate is refused with a log event" % name)
    new = connect(srv.host, srv.port, ca)
    is_eq((get_ready(new), fingerprint(new)), (200, fingerprint_of_file(cert)),
          "%s: the certificate before it keeps serving" % name)
    new.close()

    # A valid certificate whose key is not the key file's: refused too.
    _, other_cert, _ = make_tls(work, "%s-other" % name)
    replace(other_cert, cert_file)
    at = len(server.logs())
    server.proc.send_signal(1)
    ok(server.wait_log(r"ev=serve\.reload_refused ", at),
       "%s: a certificate that does not match the key is refused" % name)
    new = connect(srv.host, srv.port, ca)
    is_eq((get_ready(new), fingerprint(new)), (200, fingerprint_of_file(cert)),
          "%s: and the certificate before it keeps serving" % name)
    new.close()
    is_eq(get_ready(old), 200,
          "%s: the first connection still answers after all" % name)
    old.close()
    is_eq(server.proc.poll(), None, "%s: still running" % name)
    replace(cert, cert_file)        # a good pair again
    return ca


m = Master()
m.add_mailbox("test1@contoso.com", "pw-one")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "300x300"))
m.start()
m_ca = check("master", m, os.path.join(m.dir, "tls-cert.pem"),
             os.path.join(m.dir, "tls-key.pem"))

# The master's sign-in settings, read at the start, are read again too.
REST = ("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
        "size=HR48x48")
AS_PROXY = {"X-Remote-User": "test1@contoso.com"}
is_eq(request(m.host, m.port, "GET", REST, m_ca, AS_PROXY).status, 401,
      "master: no single sign-on proxy is trusted yet (401)")
m.cmd("sso", "set", "--sso-header", "X-Remote-User", "--sso-proxy",
      "127.0.0.1")
at = len(m.server.logs())
m.server.proc.send_signal(1)
ok(m.server.wait_log(r"ev=serve\.reloaded", at),
   "master: SIGHUP after sso set: reloaded")
r = request(m.host, m.port, "GET", REST, m_ca, AS_PROXY)
is_eq((r.status, r.header("Content-Type")), (200, "image/jpeg"),
      "master: the proxy's header now signs test1 in")
p = Portal().start()
check("portal", p, os.path.join(p.dir, "webapp-1-tls-cert.pem"),
      os.path.join(p.dir, "webapp-1-tls-key.pem"))
is_eq(m.stop(), 0, "the master stops cleanly")
is_eq(p.stop(), 0, "the portal stops cleanly")

# ---- two web applications on one port ----
state = os.path.join(tmpdir("reload2"), "state")
port = free_port()
run("portal", "init", "--dir", state, "--url", "https://127.0.0.1:%d" % port)
run("portal", "webapp", "add", "--dir", state, "--url",
    "https://localhost:%d" % port)
files = {n: (os.path.join(state, "webapp-%d-tls-cert.pem" % n),
             os.path.join(state, "webapp-%d-tls-key.pem" % n))
         for n in (1, 2)}
hosts = {1: "127.0.0.1", 2: "localhost"}   # the second by SNI
srv = Server("portal", state, extra=["--listen", "127.0.0.1"])
first = {}
for n in (1, 2):
    first[n] = os.path.join(work, "shared-%d-old.pem" % n)
    shutil.copyfile(files[n][0], first[n])


def served(n, ca):
    """The fingerprint web application n's host gets, verified by ca."""
    conn = connect(hosts[n], port, ca)
    status = get_ready(conn)
    fp = fingerprint(conn)
    conn.close()
    return status, fp


new = {n: make_tls(work, "shared-%d" % n) for n in (1, 2)}
replace(new[2][2], files[2][1])
replace(new[2][1], files[2][0])
with open(files[1][0] + ".new", "w") as f:
    f.write("not a certificate\n")
os.replace(files[1][0] + ".new", files[1][0])
at = len(srv.logs())
srv.proc.send_signal(1)
ok(srv.wait_log(r"ev=serve\.reload_refused ", at),
   "shared port: a bad file of the first web application refuses the "
   "reload")
for n in (1, 2):
    is_eq(served(n, first[n]), (200, fingerprint_of_file(first[n])),
          "shared port: web application %d keeps its certificate" % n)
replace(new[1][2], files[1][1])
replace(new[1][1], files[1][0])
at = len(srv.logs())
srv.proc.send_signal(1)
ok(srv.wait_log(r"ev=serve\.reloaded", at),
   "shared port: with both pairs good, the reload is taken")
for n in (1, 2):
    is_eq(served(n, new[n][0]), (200, fingerprint_of_file(new[n][1])),
          "shared port: web application %d serves its new certificate" % n)
is_eq(srv.stop(), 0, "that portal stops cleanly")
done()
