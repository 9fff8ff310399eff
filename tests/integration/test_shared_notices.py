"""The master's change-notice outbox with two master nodes on one store:

- a photo change is delivered to the portal once, by one of the nodes
  (each sends only the notices it claimed);
- a node killed (-9) after it claimed a notice and sent it (the portal
  stopped with SIGSTOP, so no answer came back) leaves the notice to the
  other node once its claim expires, which delivers it. (The portal may
  also read what the dead node had sent, once it runs again: delivery is
  at least once, the portal's sync after a notice is idempotent.)

The second node is a copy of the first's state directory (the same keys,
the same store: on PostgreSQL its address, on SQLite a link to the same
file), served by a process of its own. Nothing here measures time: the
waits are for lines in the logs.
"""
import os
import re
import signal

import psync
from psync import done, is_eq, make_image, ok, tmpdir, wait_for, wired

work = tmpdir("sharednotices")
m, p = wired()


def master_node(first, name):
    """Another node of `first`'s master, started on a port of its own."""
    n = psync.node_copy(first, name)
    n.start()
    return n


def sends(logs, email):
    return sum(lg.count(r"ev=notify\.send [^\n]*email=%s" % re.escape(email))
               for lg in logs)


def delivered(logs, email):
    return [lg for lg in logs if lg.count(
        r"ev=notify\.delivered [^\n]*email=%s" % re.escape(email))]


mb = master_node(m, "master2")
masters = [m, mb]

# ---- one delivery of a change, by one node ----
logs = [psync.LogMark(x) for x in masters]
plog = psync.LogMark(p)
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "700x700"))
ok(wait_for(lambda: delivered(logs, "test1@contoso.com")),
   "a photo change: a master node delivers its notice")
ok(wait_for(lambda: plog.count(r"ev=notify\.received ") >= 1),
   "the portal receives it")
is_eq(psync.store_rows(m.dir, "SELECT count(*) FROM outbox")[0][0], 0,
      "the outbox is empty")
is_eq(psync.store_rows(m.dir, "SELECT count(*) FROM leases")[0][0], 0,
      "the claim was given back")
is_eq(sends(logs, "test1@contoso.com"), 1, "one node sent it, once")

# ---- a node killed after claiming: the other delivers ----
logs = [psync.LogMark(x) for x in masters]
p.server.proc.send_signal(signal.SIGSTOP)
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "b.jpg"), "600x600"))
ok(wait_for(lambda: sends(logs, "test2@contoso.com") == 1),
   "another change: a node claims its notice and sends it to the portal, "
   "which does not answer (stopped)")
x = [i for i, lg in enumerate(logs)
     if lg.count(r"ev=notify\.send [^\n]*email=test2@contoso\.com")][0]
y = 1 - x
masters[x].server.proc.kill()
masters[x].server.proc.wait()
plog = psync.LogMark(p)
p.server.proc.send_signal(signal.SIGCONT)
ok(wait_for(lambda: delivered([logs[y]], "test2@contoso.com")),
   "killed (-9) mid-delivery, the node leaves the notice to the other "
   "once its claim expires, which delivers it")
is_eq(sends([logs[x]], "test2@contoso.com"), 1,
      "the killed node had sent it once, undelivered")
rid = re.search(r"req=(\w+) ev=notify\.delivered [^\n]*email=test2@",
                logs[y].text()).group(1)
ok(wait_for(lambda: re.search(r"ev=http\.request method=POST path=/_layouts/"
                              r"15/photosync/notify status=202 [^\n]*"
                              r"client_req=%s" % rid, plog.text())),
   "the portal took it from that node")
is_eq(psync.store_rows(m.dir, "SELECT count(*) FROM outbox")[0][0], 0,
      "the outbox is empty")
masters[y].stop()
p.stop()
done()
