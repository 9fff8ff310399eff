"""/my on a user's first visit, before the portal holds their photo: the
page waits for the sync that visit makes due (as the owner's photo request
would), so it never says "You have no photo yet." while the photo is on its
way. With a real master it shows the photo fetched; with a master that
hangs past the owner's wait it says the photo is being fetched; once that
sync has failed, it says so; a user without a mailbox is told they have no
photo."""
import atexit
import os
import re

from fakepeer import (FakeMaster, bundle, capture_ad_template, make_tls,
                      wait_for)
from psync import done, ok, tmpdir, wired

NO_PHOTO = "You have no photo yet."
FETCHING = "Your photo is being fetched from the mail server."
MAILBOX = "Your photo comes from your mailbox."
T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"

work = tmpdir("first-visit")
m, p = wired()
fakes = []



@atexit.register
def _cleanup():
    for f in fakes:
        f.stop()
    p.stop()
    m.stop()


def my(who):
    r = p.get("/my", as_user=who)
    ok(r.status == 200, "%s: /my answers 200" % who)
    return r.text()


# A real master: the sync the visit starts usually ends within the wait;
# on a slow machine it may not, and the page says the photo is on its way.
text = my(T1)
ok(NO_PHOTO not in text, "test1's first /my does not say there is no photo")
ok(MAILBOX in text or FETCHING in text,
   "test1's first /my: the photo from the mailbox, or on its way")
if MAILBOX in text:
    ok(re.search(r'class="big" src="[^"]*&amp;t=', text),
       "test1's first /my shows the photo it fetched (its tag in the URL)")

# No mailbox: once the sync found out, the page says so.
text = my(T3)
ok(NO_PHOTO in text or FETCHING in text,
   "test3 (no mailbox): no photo, or still being looked up")

# A master that hangs past the owner's wait.
template = capture_ad_template(m, "test2@contoso.com", "pw-two")
ca_file, cert_file, key_file = make_tls(work)
cas = bundle(os.path.join(work, "cas.pem"), m.ca, ca_file)
fake = FakeMaster(template, tls=(cert_file, key_file))
fakes.append(fake)
fake.delay = 60
p.cmd("webapp", "set", "--autodiscover-domain", fake.hostport(),
      "--ca-file", cas)
at = len(p.server.logs())
text = my(T2)
ok(FETCHING in text, "test2's first /my, master hanging: being fetched")
ok(NO_PHOTO not in text, "test2's first /my, master hanging: not "
   "\"no photo\"")
ok(wait_for(lambda: fake.count("photo") == 1),
   "the page's wait started the sync")

# The sync gives up (its transfer times out): the page says what happened,
# and asks nothing more of the master within the error window.
ok(wait_for(lambda: re.search(r"ev=sync\.failed .*test2",
                              p.server.logs()[at:]), timeout=60),
   "the hanging master's sync fails")
text = my(T2)
ok(NO_PHOTO in text and "The last attempt to fetch it from the mail "
   "server failed" in text, "after the failure /my says so")
ok(FETCHING not in text, "after the failure /my no longer says "
   "\"being fetched\"")
ok(fake.count("photo") == 1, "within the error window no new call")
done()
