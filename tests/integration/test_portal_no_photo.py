"""GetUserPhoto 404 (the user has no photo at the master) and what a sync
writes, against a real master:

- a 404 removes S, M and L and records it in one store transaction,
  whether the photo held was the master's or one uploaded at the portal;
- every outcome writes the user's sync state once (one `sync` row in the
  change feed per sync), a 200 included;
- a failed sync or "no mailbox" never removes the cached photo.
"""
import os
import time

from fakepeer import closed_port
from psync import (done, is_eq, make_image, ok, photo_path, store_change,
                   store_rows, tmpdir, wired)

T1, T2 = "contoso\\test1", "contoso\\test2"
KEY1 = "1/contoso\\test1"

work = tmpdir("nophoto")
m, p = wired()
# Only the owner's requests sync here (no change notices).
p.cmd("webapp", "set", "--photo-expiration", "0m",
      "--photo-error-expiration", "0m", "--notifications", "off")


def feed_mark():
    return store_rows(p.dir, "SELECT coalesce(max(seq), 0) FROM feed")[0][0]


def feed_since(mark, key=KEY1):
    return store_rows(p.dir, "SELECT kind, tx FROM feed WHERE seq > ? AND "
                      "key = ? ORDER BY seq", (mark, key))


def thumbs(account="contoso\\test1"):
    return store_rows(p.dir, "SELECT count(*) FROM thumbs WHERE account = ?",
                      (account,))[0][0]


def sync_ended(mark, n=1):
    """The sync's outcome is in the store (its state row was written)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sum(1 for k, _ in feed_since(mark) if k == "sync") >= n:
            return True
        time.sleep(0.05)
    return False


def owner_l(who=T1):
    return p.get(photo_path(who, "L"), as_user=who)


# ---- a 200: the photo and its state, the state written once ----
mark = feed_mark()
r = owner_l()
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "200: the owner gets the master's photo")
ok(sync_ended(mark), "200: the outcome was written")
rows = feed_since(mark)
is_eq(sum(1 for k, _ in rows if k == "sync"), 1,
      "200: the sync state was written once (%r)" % rows)
is_eq(len(set(tx for _, tx in rows)), 1,
      "200: the photo and its state in one transaction")

# ---- a 304: the state written once ----
mark = feed_mark()
owner_l()
ok(sync_ended(mark), "304: the outcome was written")
rows = feed_since(mark)
is_eq([k for k, _ in rows], ["sync"], "304: only the state, once")

# ---- a failure keeps the photo ----
p.cmd("webapp", "set", "--autodiscover-domain",
      "127.0.0.1:%d" % closed_port())
mark = feed_mark()
r = owner_l()
ok(sync_ended(mark), "master down: the failure was recorded")
is_eq(thumbs(), 1, "master down: the cached photo is kept")
is_eq([k for k, _ in feed_since(mark)], ["sync"],
      "master down: only the state, once")
p.cmd("webapp", "set", "--autodiscover-domain", "127.0.0.1:%d" % m.port)

# ---- a 404 removes the master's photo, with its state ----
m.cmd("photo", "remove", "test1@contoso.com")
mark = feed_mark()
r = owner_l()
ok(sync_ended(mark), "404: the outcome was written")
is_eq(thumbs(), 0, "404: S, M and L are gone")
rows = feed_since(mark)
is_eq(sorted(k for k, _ in rows), ["sync", "thumb"],
      "404: the removal and the state (%r)" % rows)
is_eq(len(set(tx for _, tx in rows)), 1, "404: in one transaction")
st, out, err = p.cmd("user", "show", T1)
ok("none (placeholder)" in out, "404: user show says no photo")
r = p.get(photo_path(T1, "M"), as_user=T2)
ok("placeholder" in (r.header("ETag") or ""),
   "404: other users get the placeholder")

# ---- a 404 also removes a photo uploaded at the portal ----
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "again.png"), "400x400"))
mark = feed_mark()
owner_l()
ok(sync_ended(mark) and thumbs() == 1, "setup: test1 has a photo again")
# What an upload at the portal leaves (profile.c): source portal, no
# master ETag in the state.
store_change(p.dir, "UPDATE thumbs SET source = 'portal' WHERE account = ?",
             ("contoso\\test1",))
store_change(p.dir, "UPDATE sync_state SET master_etag = '' WHERE account = ?",
             ("contoso\\test1",))
m.cmd("photo", "remove", "test1@contoso.com")
mark = feed_mark()
owner_l()
ok(sync_ended(mark), "404 after an upload: the outcome was written")
is_eq(thumbs(), 0, "404 after an upload: the master has no photo, the "
      "portal shows none")

done()
