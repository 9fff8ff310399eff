"""The sync when the master is slow, busy or changes a photo meanwhile:

- an owner's request waits at most the web application's --owner-wait
  (2000 ms unless set), then gets what is cached;
- a change notice that arrives while that user's sync runs leads to one
  more sync after it;
- after 429 with Retry-After the next call for that user waits for the
  longer of the error window and Retry-After (also a forced one, also in
  another process: it is stored);
- a 503 holds back every call to that master, not only that user's.

The portal's --autodiscover-domain points at a small HTTPS server of the
test (fakepeer.py) whose GetUserPhoto answers are held on an event or
throttled as each case says; change notices come from a real master.
Nothing here measures time: the waits are read from the portal's log.
"""
import atexit
import os
import re
import threading

from fakepeer import (FakeMaster, bundle, capture_ad_template, make_tls,
                      wait_for)
from psync import (done, free_port, is_eq, make_image, metric_value, ok,
                   photo_path, tmpdir, wired)

T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"

work = tmpdir("syncfaults")
m, p = wired(portal_port=free_port())
fakes = []


@atexit.register
def _cleanup():
    for f in fakes:
        if f.gate is not None:
            f.gate.set()
        f.stop()
    p.stop()
    m.stop()


class Log:
    def __init__(self):
        self.at = len(p.server.logs())

    def text(self):
        return p.server.logs()[self.at:]

    def count(self, pattern):
        return len(re.findall(pattern, self.text()))

    def wait(self, pattern, n=1, timeout=20):
        return wait_for(lambda: self.count(pattern) >= n, timeout)


def fresh():
    """A new portal process (nothing of the previous one in memory)."""
    p.stop()
    p.start()


def owner_l(who=T1):
    return p.get(photo_path(who, "L"), as_user=who)


template = capture_ad_template(m, "test1@contoso.com", "pw-one")
ca_file, cert_file, key_file = make_tls(work)
cas = bundle(os.path.join(work, "cas.pem"), m.ca, ca_file)
fake = FakeMaster(template, tls=(cert_file, key_file))
fakes.append(fake)
p.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
      "--ca-file", cas, "--photo-expiration", "0m",
      "--photo-error-expiration", "0m")

# ---- the owner's wait ----
st, out, err = p.cmd("webapp", "show")
ok(re.search(r"owner-wait\s+2000 ms", out), "webapp show: owner-wait "
   "2000 ms by default")
for bad in ("10001", "-1", "2s", "", "abc"):
    st, out, err = p.cmd("webapp", "set", "--owner-wait", bad, check=False)
    ok(st != 0 and "--owner-wait" in err, "--owner-wait %r is refused" % bad)
fresh()
fake.gate = threading.Event()
log = Log()
r = owner_l()
is_eq(r.status, 200, "held master: the owner is answered")
ok(log.wait(r"ev=sync\.wait_deadline account=contoso\\test1 "
            r"waited_ms=2000"), "held master: the owner waited 2000 ms "
   "(sync.wait_deadline waited_ms=2000)")
fake.gate.set()
ok(log.wait(r"ev=sync\.done "), "held master: the sync ends once the master"
   " answers")

p.cmd("webapp", "set", "--owner-wait", "300")
st, out, err = p.cmd("webapp", "show")
ok(re.search(r"owner-wait\s+300 ms", out), "webapp show: owner-wait 300 ms")
fresh()
fake.gate = threading.Event()
log = Log()
owner_l()
ok(log.wait(r"ev=sync\.wait_deadline account=contoso\\test1 "
            r"waited_ms=300"), "--owner-wait 300: the owner waited 300 ms")
fake.gate.set()
ok(log.wait(r"ev=sync\.done "), "--owner-wait 300: the sync ends")
p.cmd("webapp", "set", "--owner-wait", "2000")
fresh()

# ---- a change notice while the sync runs: one more sync after it ----
fake.gate = threading.Event()
log = Log()
photos0 = fake.count("photo")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "n1.png"), "300x300"))
ok(wait_for(lambda: fake.count("photo") == photos0 + 1, 30),
   "notice 1: the portal's sync is at the master (held there)")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "n2.png"), "300x300", extra=["-negate"]))
ok(log.wait(r"ev=notify\.received .*account=contoso\\test1", 2, 30),
   "notice 2 arrived while the sync runs")
ok(log.count(r"ev=sync\.joined account=contoso\\test1 .*again=yes") == 1,
   "notice 2 joined the running sync, asking for one more")
fake.gate.set()
fake.gate = None
ok(wait_for(lambda: fake.count("photo") == photos0 + 2, 20),
   "after the running sync, one more GetUserPhoto (%d calls)" % (
       fake.count("photo") - photos0))
ok(log.wait(r"ev=sync\.again account=contoso\\test1"),
   "logged as sync.again")
ok(log.wait(r"ev=sync\.done ", 2), "both syncs ended")

# ---- 429 with Retry-After: that user waits for it ----
fake.throttle_left, fake.throttle_status, fake.retry_after = 1, 429, 600
log = Log()
photos0 = fake.count("photo")
owner_l()
ok(log.wait(r"ev=sync\.failed account=contoso\\test1 .*retry after 600s"),
   "429: sync.failed says retry after 600s")
ok(log.count(r"ev=sync\.failed .*HTTP 429") == 1, "429: it names the 429")
owner_l()
p.get(photo_path(T1, "S"), as_user=T1)
is_eq(fake.count("photo"), photos0 + 1, "429: the owner's next requests "
      "make no call, though the error window is 0m")
st, out, err = p.cmd("user", "show", T1)
ok(re.search(r"next sync\s+not before", out), "user show: the next sync is"
   " not before Retry-After (%s)" % out.strip().splitlines()[-1])
st, out, err = p.cmd("refresh", "--user", T1, "--force", check=False)
is_eq(fake.count("photo"), photos0 + 1, "429: a forced refresh in another "
      "process does not call either (Retry-After is stored)")
fresh()
owner_l()
is_eq(fake.count("photo"), photos0 + 1, "429: nor a new portal process")

# ---- 503: every user's calls to that master wait ----
fake.throttle_left, fake.throttle_status, fake.retry_after = 1, 503, 600
log = Log()
calls0 = len(fake.calls)
owner_l(T2)
ok(log.wait(r"ev=sync\.failed account=contoso\\test2 .*HTTP 503"),
   "503: test2's sync failed with the 503")
ok(log.count(r"ev=sync\.master_held .*wait_s=600") == 1,
   "503: the master's host is held back 600 s (sync.master_held)")
n = len(fake.calls)
owner_l(T3)
p.get(photo_path(T3, "L"), as_user=T3)
is_eq(len(fake.calls), n, "503: test3's requests make no call to that "
      "master")
ok(log.count(r"ev=sync\.master_busy account=contoso\\test3") >= 1,
   "503: logged as sync.master_busy for test3")
ok(n > calls0, "503: the master was called for test2")
is_eq(metric_value(p.get("/metrics").text(), "photosync_master_calls_total",
                   result="busy"), 1,
      "503: /metrics counts the one call answered 503 as busy")

done()
