"""Work shared between nodes of one store, each done once:

- single-flight across portal nodes: owner requests for one photo spread
  over three portal nodes make one GetUserPhoto at the master; the nodes
  that did not call it answer with the outcome the first stored (the
  change feed brings it); a node killed mid-sync (its GetUserPhoto held
  by the master) leaves its lease to expire, then another node syncs;
- two `portal refresh --all --force` passes at once on one store fetch
  every user once between them.

A node is a copy of the first node's state directory (the same keys and
the same store: on PostgreSQL its address, on SQLite a link to the same
file), served by a process of its own. The master is a small HTTPS
server of the test (fakepeer.py) that counts GetUserPhoto calls and
holds their answers on an event. Nothing here measures time: the waits
are for lines in the nodes' logs.
"""
import atexit
import os
import re
import subprocess
import threading

import psync
from fakepeer import FakeMaster, bundle, capture_ad_template, make_tls
from psync import done, is_eq, ok, photo_path, tmpdir, wait_for, wired

T1 = "contoso\\test1"
K = 6           # owner requests, over three nodes

work = tmpdir("sharedwork")
m, p = wired()
fakes = []
nodes = [p]


@atexit.register
def _cleanup():
    for f in fakes:
        if f.gate is not None:
            f.gate.set()
        f.stop()
    for n in nodes:
        n.stop()
    m.stop()


def portal_node(first, name):
    """Another node of `first`'s portal, started on a port of its own."""
    n = psync.node_copy(first, name)
    n.start()
    nodes.append(n)
    return n


def owner_l(node, results, i):
    results[i] = node.get(photo_path(T1, "L"), as_user=T1)


template = capture_ad_template(m, "test1@contoso.com", "pw-one")
ca_file, cert_file, key_file = make_tls(work)
cas = bundle(os.path.join(work, "cas.pem"), m.ca, ca_file)
fake = FakeMaster(template, tls=(cert_file, key_file))
fakes.append(fake)
p.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
      "--ca-file", cas, "--photo-expiration", "0m",
      "--photo-error-expiration", "0m")
portal_node(p, "node2")
portal_node(p, "node3")

# ---- single-flight across nodes ----
fake.gate = threading.Event()
logs = [psync.LogMark(n) for n in nodes]
results = [None] * K
threads = [threading.Thread(target=owner_l, args=(nodes[i % 3], results, i))
           for i in range(K)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok(all(r is not None and r.status == 200 for r in results),
   "%d owner requests over 3 nodes, the master holding its answer: each "
   "gets the cached photo after its owner wait" % K)
is_eq(fake.count("photo"), 1, "the master was asked for the photo once")
is_eq(sum(lg.count(r"ev=sync\.lease_held ") for lg in logs), 2,
      "the two other nodes found the lease held and called nobody")
fake.gate.set()
holder = [lg for lg in logs if lg.count(r"ev=sync\.lease_held ") == 0]
is_eq(len(holder), 1, "one node holds the lease")
ok(holder[0].wait(r"ev=sync\.done [^\n]*outcome=updated"),
   "that node stores the photo")
others = [lg for lg in logs if lg is not holder[0]]
for i, lg in enumerate(others):
    ok(lg.wait(r"ev=sync\.done_elsewhere [^\n]*outcome=updated"),
       "node waiting %d: its sync ends with that outcome (the change "
       "feed)" % (i + 1))
# (size M: only the owner's L starts a sync)
etags = [n.get(photo_path(T1, "M"), as_user=T1).header("ETag")
         for n in nodes]
ok(etags[0] and etags[0] == etags[1] == etags[2],
   "every node serves the photo the one call fetched")
is_eq(fake.count("photo"), 1, "and the master still saw one GetUserPhoto")
is_eq(psync.store_rows(p.dir, "SELECT count(*) FROM leases")[0][0], 0,
      "the lease was given back once the outcome was stored")

# ---- a node killed mid-sync: its lease expires, another node syncs ----
fake.gate = threading.Event()
a, b = nodes[0], nodes[1]
la, lb = psync.LogMark(a), psync.LogMark(b)
a.get(photo_path(T1, "L"), as_user=T1)
ok(wait_for(lambda: fake.count("photo") == 2),
   "node A syncs, the master holding its answer")
is_eq(len(psync.store_rows(p.dir, "SELECT name FROM leases")), 1,
      "node A holds the lease")
a.server.proc.kill()
a.server.proc.wait()
fake.gate.set()
b.get(photo_path(T1, "L"), as_user=T1)
ok(lb.wait(r"ev=sync\.lease_held "),
   "killed (-9), node A still holds the lease: node B waits")
ok(lb.wait(r"ev=sync\.lease_taken "), "once it expires, node B takes it")
ok(lb.wait(r"ev=sync\.done [^\n]*outcome="), "and syncs")
is_eq(fake.count("photo"), 3, "one more GetUserPhoto, from node B")

# ---- two refresh passes at once fetch each user once ----
N = 16
for i in range(N):
    psync.store_change(p.dir, "INSERT INTO users (account, email, name, "
                       "created) VALUES (?, ?, ?, 0)",
                       ("contoso\\bulk%02d" % i, "bulk%02d@contoso.com" % i,
                        "Bulk %d" % i))
n_users = psync.store_rows(p.dir, "SELECT count(*) FROM users")[0][0]
# A sync's times are stored in whole seconds, so a pass cannot tell
# another run's outcome from the one it read at its start when both fall
# in the second the pass began (an extra 304, no harm): test1's sync
# above may have. The outcomes stored so far are moved a minute back,
# so that every outcome of the passes below is told apart.
psync.store_change(p.dir, "UPDATE sync_state SET last_success = CASE WHEN "
                   "last_success > 0 THEN last_success - 60 ELSE 0 END, "
                   "last_error = CASE WHEN last_error > 0 THEN "
                   "last_error - 60 ELSE 0 END")
fake.gate = threading.Event()
before = len(fake.of_kind("photo"))
runs = []
for i, d in enumerate((p.dir, nodes[2].dir)):
    out = open(os.path.join(work, "refresh%d.out" % i), "w+")
    runs.append((subprocess.Popen(
        [psync.PHOTOSYNC, "portal", "refresh", "--dir", d, "--all",
         "--force", "--concurrency", "4"], stdout=out,
        stderr=subprocess.STDOUT), out))
ok(wait_for(lambda: len(fake.of_kind("photo")) - before >= 4),
   "two `portal refresh --all --force` at once, on two state directories "
   "of the store: the master holds its answers to the calls (4 at a "
   "time from a pass; a pass takes the leases of the users it starts "
   "ahead of its calls, so the other may wait for all of them)")
fake.gate.set()
elsewhere = 0
for proc, out in runs:
    proc.wait(psync.HANG_GUARD)
    out.seek(0)
    text = out.read()
    out.close()
    ok(proc.returncode == 0 and re.search(r"refreshed %d users" % n_users,
                                          text),
       "a pass ends: %s" % text.replace("\n", " | "))
    m_else = re.search(r"elsewhere\s+(\d+)", text)
    elsewhere += int(m_else.group(1)) if m_else else 0
is_eq(elsewhere, n_users, "each user was counted by the run that did not "
      "fetch it as fetched elsewhere")
emails = [re.search(r"email=([^&]+)", c.path).group(1).lower()
          for c in fake.of_kind("photo")[before:]]
is_eq(len(emails), len(set(emails)), "no user was fetched twice")
is_eq(len(set(emails)), n_users, "every user was fetched once")
done()
