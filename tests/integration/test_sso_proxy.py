"""Sign-in behind a single sign-on reverse proxy: a real nginx in front of
the portal (over TLS) sets the identity header, so a request through it
is signed in as the account the header names, without a password; the
same header sent directly by a client, in every spelling, is ignored
(the usual challenges); from the proxy several copies or an empty one
are refused (400), an unknown account gets 403 (auth.sso_unknown); bad
settings are refused by the admin command."""
import os
import re
import shutil
import socket
import subprocess
import time

from psync import (done, free_port, is_eq, ok, photo_path, request, tmpdir,
                   wait_for, wired, write)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDR = "127.0.0.2"     # nginx connects to the portal from here
T1 = "contoso\\test1"

work = tmpdir("sso")
m, p = wired()


def nginx_conf(name, port, upstream, ca):
    """nginx on 127.0.0.1:port, proxying to upstream (a port on
    127.0.0.1) over TLS from PROXY_ADDR. The identity header is the value
    of the client's X-Test-User (the test's choice of account), and
    X-Test-Twice adds a second copy of it: what a misconfigured proxy that
    appends does."""
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = """
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass https://127.0.0.1:%(portal)d;
            proxy_bind %(proxy)s;
            proxy_ssl_trusted_certificate %(ca)s;
            proxy_ssl_verify on;
            proxy_ssl_name 127.0.0.1;
            proxy_set_header Host 127.0.0.1:%(portal)d;
            proxy_set_header X-Test-User "";
            proxy_set_header X-Test-Twice "";
            proxy_set_header X-Remote-User $http_x_test_user;
            proxy_set_header X-REMOTE-USER $http_x_test_twice;
        }
    }
}
""" % {"d": d, "port": port, "portal": upstream, "proxy": PROXY_ADDR,
       "ca": ca}
    return write(os.path.join(d, "nginx.conf"), conf), d


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def via_nginx(path, headers=None, port=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port or nginx_port,
                                   timeout=60)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        h = dict((k.lower(), v) for k, v in r.getheaders())
        h["set-cookie"] = [v for k, v in r.getheaders()
                           if k.lower() == "set-cookie"]
        return r.status, h, r.read()
    finally:
        c.close()


def direct(path, headers):
    """A request straight to the portal, from 127.0.0.1 (not a proxy)."""
    return request("127.0.0.1", p.port, "GET", path, p.ca, headers)


# ---- bad settings are refused ----
for args, why in (
        (["--sso-header", "X Remote"], "not a header name"),
        (["--sso-header", "Authorization"], "Authorization"),
        (["--sso-header", "cookie"], "Cookie"),
        (["--sso-header", "HOST"], "Host"),
        (["--sso-proxy", "127.0.0.300"], "127.0.0.300"),
        (["--sso-proxy", "10.0.0.0/33"], "prefix"),
        (["--sso-proxy", "::1/129"], "prefix"),
        (["--sso-proxy", "proxy.example"], "proxy.example")):
    rc, out, err = p.cmd("webapp", "set", *args, check=False)
    ok(rc != 0 and why in err, "webapp set %s: refused (%s)" % (
        " ".join(args), err.strip()))
rc, out, err = p.cmd("webapp", "show")
ok("sso-header              off" in out and
   "sso-proxy               none" in out,
   "nothing refused was stored: single sign-on still off")

def start_nginx(name, upstream, ca):
    """A real nginx in front of upstream, in the foreground as the test's
    user (no master process: nothing to switch users for); stopped at
    exit. Returns (process, port)."""
    import atexit
    port = free_port()
    conf, ndir = nginx_conf(name, port, upstream, ca)
    proc = subprocess.Popen([NGINX, "-e", os.path.join(ndir, "error.log"),
                             "-c", conf, "-p", ndir, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def stop():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    atexit.register(stop)
    ok(wait_for(lambda: proc.poll() is not None or listening(port)) and
       proc.poll() is None, "nginx (%s) listens on port %d" % (name, port))
    return proc, port


# ---- nginx in front of the portal ----
nginx, nginx_port = start_nginx("nginx-portal", p.port, p.ca)

# Before single sign-on is set: the header is nobody's word.
st, h, body = via_nginx("/my", {"X-Test-User": T1})
is_eq(st, 401, "single sign-on off: through nginx with the header, 401")

p.cmd("webapp", "set", "--sso-header", "X-Remote-User", "--sso-proxy",
      "%s, ::1/128, 10.9.0.0/16" % PROXY_ADDR)
rc, out, err = p.cmd("webapp", "show")
ok("sso-header              X-Remote-User" in out and PROXY_ADDR in out,
   "webapp show: the header and the proxies")

# The running server takes the new settings from the change feed.
got = wait_for(lambda: via_nginx("/my", {"X-Test-User": T1})[0] == 200)
ok(got, "through nginx as test1: signed in without a password")
st, h, body = via_nginx("/my", {"X-Test-User": T1})
ok(st == 200 and b"Test One" in body, "/my is test1's profile")
st, h, body = via_nginx("/my", {"X-Test-User": "test2@contoso.com"})
ok(st == 200 and b"Test Two" in body, "an address names its user too")

# A removed account is refused at once, though its sign-in was remembered.
p.cmd("user", "remove", "contoso\\test2")
ok(wait_for(lambda: via_nginx("/my", {"X-Test-User": "test2@contoso.com"})[0]
            == 403), "test2 removed: through nginx, 403 (the sign-in "
   "remembered for test2 ended with the account)")

# test1's photo, fetched from the master for its owner.
st, h, body = via_nginx(photo_path(T1), {"X-Test-User": T1})
rid = h.get("request-id", "-")
if re.search(r"req=%s ev=sync\.start " % re.escape(rid), p.server.logs()):
    p.server.wait_log(r"req=%s ev=sync\.(done|failed) " % re.escape(rid))
    st, h, body = via_nginx(photo_path(T1), {"X-Test-User": T1})
ok(st == 200 and h.get("content-type") == "image/jpeg" and
   body[:2] == b"\xff\xd8", "test1's photo through nginx")

# An account the portal does not have.
st, h, body = via_nginx("/my", {"X-Test-User": "contoso\\nobody"})
ok(st == 403 and b"does not have" in body,
   "an unknown account through nginx: 403 with a page saying why")
ok(p.server.wait_log(r'ev=auth\.sso_unknown user="?contoso\\{1,2}nobody'),
   "... logged as auth.sso_unknown")

# A proxy that appends instead of replacing.
st, h, body = via_nginx("/my", {"X-Test-User": T1, "X-Test-Twice": T1})
is_eq(st, 400, "two copies of the header from the proxy: 400")
ok(re.search(r"ev=auth\.refused method=sso .*times", p.server.logs()),
   "... logged as auth.refused method=sso")

# ---- the header forged by a client, straight to the portal ----
for name in ("X-Remote-User", "x-remote-user", "X_REMOTE_USER",
             "x_Remote-USER"):
    r = direct("/my", {name: T1})
    is_eq(r.status, 401, "%s sent by a client directly: ignored (401)" %
          name)
r = direct("/my", {name: T1, "Accept": "text/html"})
ok(r.status == 302 and r.header("Location").startswith("/login"),
   "a browser forging it gets the sign-in form")
import http.client  # noqa: E402
import ssl  # noqa: E402
ctx = ssl.create_default_context(cafile=p.ca)
c = http.client.HTTPSConnection("127.0.0.1", p.port, context=ctx,
                                timeout=30)
c.putrequest("GET", "/my")
c.putheader("X-Remote-User", T1)
c.putheader("X-Remote-User", T1)
c.endheaders()
r1 = c.getresponse()
r1.read()
c.putrequest("GET", "/my")
c.putheader("x_remote_user", T1)
c.endheaders()
r2 = c.getresponse()
r2.read()
c.close()
ok(r1.status == 401 and r2.status == 401,
   "two copies from a client: ignored too (401), on one connection")
is_eq(len(re.findall(r"ev=auth\.sso_ignored .*peer=\"?127\.0\.0\.1",
                     p.server.logs())), 6,
      "auth.sso_ignored logged once per connection (6 connections)")

# A client's own header through nginx does not survive: nginx replaces it.
st, h, body = via_nginx("/my", {"X-Remote-User": T1})
is_eq(st, 401, "X-Remote-User sent to nginx without X-Test-User: 401")

nginx.terminate()
nginx.wait(timeout=30)

# ---- the master: the change-photo page and EWS through nginx ----
PAGE = "/ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1"
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com" \
    "&size=HR48x48"
for args, why in (
        (["--sso-header", "Proxy-Authorization"], "Proxy-Authorization"),
        (["--sso-header", "X-Remote\tUser"], "not a header name"),
        (["--sso-proxy", "10.0.0.1, nowhere"], "nowhere")):
    rc, out, err = m.cmd("sso", "set", *args, check=False)
    ok(rc != 0 and why in err, "master sso set %s: refused (%s)" % (
        " ".join(args), err.strip()))
rc, out, err = m.cmd("sso", "show")
ok("sso-header  off" in out and "sso-proxy   none" in out,
   "master sso show: still off")
m.cmd("sso", "set", "--sso-header", "X-Remote-User", "--sso-proxy",
      PROXY_ADDR)
rc, out, err = m.cmd("sso", "show")
ok("sso-header  X-Remote-User" in out and PROXY_ADDR in out,
   "master sso show: the header and the proxy")
m.stop()
m.start()
mnginx, mport = start_nginx("nginx-master", m.port, m.ca)

st, h, body = via_nginx(PAGE, {"X-Test-User": "test1@contoso.com"},
                        port=mport)
cookie = [c for c in h["set-cookie"] if c.startswith("ecp_session=")]
ok(st == 303 and cookie, "the change-photo page through nginx as test1: "
   "a session started, without a password")
cookie = cookie[0].split(";")[0] if cookie else ""
st, h, body = via_nginx(PAGE, {"X-Test-User": "test1@contoso.com",
                               "Cookie": cookie}, port=mport)
ok(st == 200 and b"test1@contoso.com" in body and
   b'name="password"' not in body,
   "... and the page is test1's, signed in")
st, h, body = via_nginx(PAGE, {"X-Test-User": "test2@contoso.com",
                               "Cookie": cookie}, port=mport)
ok(st == 303 and any(c.startswith("ecp_session=") and c != cookie
                     for c in h["set-cookie"]),
   "the proxy naming test2 with test1's session: test2's session starts")
st, h, body = via_nginx(REST, {"X-Test-User": "test1@contoso.com"},
                        port=mport)
ok(st == 200 and h.get("content-type") == "image/jpeg",
   "EWS GetUserPhoto through nginx as test1: the photo")
st, h, body = via_nginx(REST.replace("test1", "test2"),
                        {"X-Test-User": "test2@contoso.com"}, port=mport)
ok(st == 200 and h.get("content-type") == "image/jpeg",
   "EWS GetUserPhoto through nginx as test2")
st, h, body = via_nginx("/v1.0/me/photo/$value",
                        {"X-Test-User": "test1@contoso.com"}, port=mport)
ok(st == 200 and h.get("content-type") == "image/jpeg",
   "Graph /v1.0/me/photo/$value through nginx as test1: the photo")
r = m.get("/v1.0/me/photo/$value", {"X-Remote-User": "test1@contoso.com"})
is_eq(r.status, 401, "the header sent directly to Graph: ignored (401)")
m.cmd("mailbox", "remove", "test2@contoso.com")
ok(wait_for(lambda: via_nginx(REST, {"X-Test-User": "test2@contoso.com"},
                              port=mport)[0] == 403),
   "test2's mailbox removed: through nginx, 403 at once (what was "
   "remembered ended with the mailbox)")
st, h, body = via_nginx(PAGE, {"X-Test-User": "nobody@contoso.com"},
                        port=mport)
is_eq(st, 403, "an unknown mailbox through nginx: 403")
ok(m.server.wait_log(r'ev=auth\.sso_unknown user="?nobody@contoso\.com'),
   "... logged as auth.sso_unknown")
st, h, body = via_nginx(REST, {"X-Test-User": "test1@contoso.com",
                               "X-Test-Twice": "test2@contoso.com"},
                        port=mport)
is_eq(st, 400, "two copies from the proxy at the master: 400")
for name in ("X-Remote-User", "x_remote_user", "X-REMOTE_USER"):
    r = m.get(PAGE, {name: "test1@contoso.com"})
    ok(r.status == 200 and 'name="password"' in r.text() and not any(
        c.startswith("ecp_session=") for c in r.header_all("Set-Cookie")),
       "%s sent directly to the master: ignored, the sign-in form" % name)
    r = m.get(REST, {name: "test1@contoso.com"})
    is_eq(r.status, 401, "%s sent directly to EWS: ignored (401)" % name)
mnginx.terminate()
mnginx.wait(timeout=30)
done()
