"""The sign-in throttle holds on every node of one store: wrong passwords
for one account spread over two nodes are counted together, so after
the free failures counted over both, the next attempt on either node is
refused with 429 and Retry-After, for the portal (Basic credentials) and
for the master (Basic credentials on EWS).

A node is a copy of the first node's state directory sharing its store
(psync.node_copy). The waits are for lines in the nodes' logs: the node
that counted a failure itself logs auth.throttled, the node that learnt
the count from the store logs auth.count_learnt; nothing sleeps.
"""
import atexit
import re

import psync
from psync import Master, Portal, basic, done, is_eq, ok

FREE = 5        # the guard's free failures (auth_guard_default_limits)
EWS = "/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=HR48x48"
THROTTLED = r"ev=auth\.(throttled|count_learnt) kind=account "

nodes = []


@atexit.register
def _cleanup():
    for n in nodes:
        n.stop()


def started(node):
    node.start()
    nodes.append(node)
    return node


def refused_now(node, attempt, what, i):
    r = attempt(node)
    ra = r.header("Retry-After")
    is_eq(r.status, 429, "%s: then node %d refuses the next attempt" %
          (what, i))
    ok(ra is not None and ra.isdigit() and int(ra) >= 1,
       "%s: ... with Retry-After in whole seconds (%s)" % (what, ra))


def spread(first, second, attempt, what):
    """FREE failures on `first` and one on `second` (FREE + 1 in all,
    none of them refused), then the next attempt on either node: 429.

    The first wait is the guard's shortest (1 s), and it starts on each
    node when that node learns the count: each node is tried as soon as
    its log says it is waiting, so that the check does not hang on how
    fast the count travels to the other node."""
    marks = [psync.LogMark(first), psync.LogMark(second)]
    statuses = [attempt(first).status for _ in range(FREE)]
    statuses.append(attempt(second).status)
    is_eq(statuses, [401] * (FREE + 1),
          "%s: %d wrong passwords over two nodes, each 401" %
          (what, FREE + 1))
    ok(second.server.wait_log(THROTTLED, since=marks[1].at),
       "%s: the second node counts both (the store's total)" % what)
    refused_now(second, attempt, what, 2)
    ok(first.server.wait_log(r"ev=auth\.count_learnt kind=account "
                             r"failures=%d " % (FREE + 1),
                             since=marks[0].at),
       "%s: the first node learns the count of both (auth.count_learnt)"
       % what)
    refused_now(first, attempt, what, 1)
    ok(re.search(r"ev=auth\.refused method=basic user=\S+ reason=\"too "
                 r"many failed sign-ins", marks[0].text()),
       "%s: the first node logs the refusal (auth.refused)" % what)


# ---- the portal ----
p = Portal()
T1 = "contoso\\test1"
p.add_user(T1, "test1@contoso.com", "pw-one", "Test One")
started(p)
p2 = started(psync.node_copy(p, "portal2"))
spread(p, p2, lambda n: n.get("/my", {"Authorization": basic(T1, "wrong")}),
       "portal")

# ---- the master ----
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
started(m)
m2 = started(psync.node_copy(m, "master2"))
spread(m, m2, lambda n: n.get(EWS % "test1@contoso.com", {
    "Authorization": basic("test1@contoso.com", "wrong")}), "master")

done()
