"""A graceful stop of the master (the portal's: test_portal_stop): a
request in flight at SIGTERM, its head still arriving, is answered in
full; a connection with no request in progress is closed; new
connections are refused; the master exits 0 and its log says it
drained."""
import os
import re
import socket
import ssl

from psync import (HANG_GUARD, Master, basic, done, is_eq, make_image, ok,
                   read_to_close, tmpdir)

work = tmpdir("svcstop")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "900x900"))
m.start()
ctx = ssl.create_default_context(cafile=m.ca)


def tls_connect():
    s = ctx.wrap_socket(socket.create_connection((m.host, m.port)),
                        server_hostname=m.host)
    s.settimeout(HANG_GUARD)
    return s


busy = tls_connect()
idle = tls_connect()
head = ("GET /EWS/Exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
        "size=HR648x648 HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
        % (m.host, basic("test1@contoso.com", "pw-one"))).encode()
busy.sendall(head)                      # the blank line is still to come
at = len(m.server.logs())
m.server.proc.send_signal(15)
ok(m.server.wait_log(r"ev=http\.draining ", at),
   "SIGTERM: the master drains")
is_eq(read_to_close(idle), b"", "a connection with no request is closed")
try:
    socket.create_connection((m.host, m.port), timeout=5).close()
    ok(False, "a new connection is refused while draining")
except OSError:
    ok(True, "a new connection is refused while draining")
busy.sendall(b"\r\n")
answer = read_to_close(busy)
head_end = answer.find(b"\r\n\r\n")
status = answer.split(b"\r\n", 1)[0]
length = re.search(rb"\r\nContent-Length: (\d+)\r\n", answer[:head_end])
is_eq(status, b"HTTP/1.1 200 OK",
      "the request in flight at SIGTERM is answered 200")
ok(length and len(answer) - head_end - 4 == int(length.group(1)),
   "with its whole photo")
ok(re.search(rb"\r\nConnection: close\r\n", answer[:head_end + 2]),
   "and Connection: close")
is_eq(m.server.proc.wait(HANG_GUARD), 0, "the master exits 0")
ok(re.search(r"ev=http\.drained ", m.server.logs()[at:]),
   "its log says it drained")
done()
