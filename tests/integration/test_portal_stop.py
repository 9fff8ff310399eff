"""A graceful stop of the portal: SIGTERM while an owner's request waits
for a sync at a slow master. The request is still answered (the cached
photo, at the sync's deadline), the portal closes its connections and
exits 0, and its log says it drained."""
import os
import re
import threading

from fakepeer import (FakeMaster, bundle, capture_ad_template, make_tls,
                      wait_for)
from psync import done, is_eq, ok, photo_path, tmpdir, wired

T1 = "contoso\\test1"
work = tmpdir("stop")
m, p = wired()
r = p.owner_photo(T1)
cached = r.header("ETag")
ok(r.status == 200 and "placeholder" not in cached,
   "setup: test1's photo is cached")

# A master that takes longer to answer than the owner waits.
template = capture_ad_template(m, "test1@contoso.com", "pw-one")
ca, cert, key = make_tls(work)
fake = FakeMaster(template, tls=(cert, key))
fake.delay = 30
p.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
      "--ca-file", bundle(os.path.join(work, "cas.pem"), m.ca, ca),
      "--photo-expiration", "0m")
p.stop()                # a fresh process: nothing cached of the old master
p.start()
log_at = len(p.server.logs())
answer = {}


def owner_request():
    try:
        answer["r"] = p.get(photo_path(T1, "L"), as_user=T1)
    except Exception as e:      # reported below
        answer["error"] = repr(e)


t = threading.Thread(target=owner_request)
t.start()
ok(wait_for(lambda: fake.count("photo") >= 1),
   "the owner's request started a sync: the master was asked")
p.server.proc.send_signal(15)
t.join(60)
r = answer.get("r")
ok(r is not None and r.status == 200 and r.header("ETag") == cached,
   "the request in flight at SIGTERM is answered: the cached photo (%s)"
   % answer.get("error", r and r.status))
is_eq(p.server.proc.wait(60), 0, "the portal exits 0")
log = p.server.logs()[log_at:]
ok(re.search(r"ev=serve\.stopping ", log) and
   re.search(r"ev=http\.drained ", log),
   "its log says it stopped and drained")
ok(re.search(r"ev=sync\.wait_deadline ", log),
   "the request waited for the sync until its deadline, then was served")
fake.stop()
m.stop()
done()
