"""kill -9 of a node mid-upload: nothing half-stored.

Two portal nodes (A and B) on one PostgreSQL store. test3 (no mailbox)
has a photo that both nodes serve. A second PostgreSQL session of this
test locks test3's row of sync_state (SELECT ... FOR UPDATE in an open
transaction): the upload's transaction writes thumbs first and
sync_state last, so an upload of a new photo through node A writes its
thumbs row, then waits on that lock, in the middle of its transaction
(seen in pg_stat_activity: a backend waiting on a lock). Node A is then
killed with SIGKILL and the lock released:

  - the store holds the old photo (every size, its ETag) and nothing
    else changed (the store's data as pg_dump writes it is the same);
  - node B serves the old photo with its ETag, every size;
  - test3 uploads a new photo through node B, which both B and a
    restarted node A serve.

On SQLite this does not apply: a transaction is one file's journal
(WAL), which SQLite's atomic commit rolls back at the next open when the
process that wrote it died, and the test's lock would have to be the
whole database's, which the upload's BEGIN IMMEDIATE waits on before it
writes anything: the transaction cannot be held half-way.
"""
import os
import threading
import uuid

import psync
from psync import (LogMark, Portal, done, is_eq, make_image,
                   node_copy, ok, photo_path, store_dump, store_rows,
                   tmpdir, wait_for)

if not psync.ON_POSTGRESQL:
    psync.skip_all("the store is SQLite: its atomic commit (the WAL, "
                   "rolled back at the next open) cannot be held half-way "
                   "from outside (this test runs as "
                   "node_kill_on_postgresql)")

T3 = "contoso\\test3"
SIZES = ("S", "M", "L")
work = tmpdir("node-kill")


def multipart(files):
    boundary = "----photosync" + uuid.uuid4().hex
    out = b""
    for name, (filename, data) in files.items():
        out += ('--%s\r\nContent-Disposition: form-data; name="%s"; '
                'filename="%s"\r\nContent-Type: application/octet-stream'
                '\r\n\r\n' % (boundary, name, filename)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, "multipart/form-data; boundary=" + boundary


def upload(node, image):
    body, ctype = multipart({"photo": ("me.jpg", open(image, "rb").read())})
    return node.post("/my/changephoto", body, {"Content-Type": ctype},
                     as_user=T3)


def served(node):
    """{size: (status, ETag, body)} of test3's photo at `node`."""
    out = {}
    for size in SIZES:
        r = node.get(photo_path(T3, size), as_user=T3)
        out[size] = (r.status, r.header("ETag"), r.body)
    return out


def stored():
    return store_rows(pa.dir, "SELECT etag, s, m, l FROM thumbs WHERE "
                      "account = ?", (T3,))


pa = Portal()
pa.add_user(T3, "test3@contoso.com", "pw-three", "Test Three")
pa.start()
pa.cmd("webapp", "set", "--photo-import", "off")
pb = node_copy(pa, "portal-b").start()

r = upload(pa, make_image(os.path.join(work, "old.jpg"), "700x700"))
ok(r.status == 200 and "stored" in r.text(), "test3 uploads a photo")
old = served(pa)
ok(all(v[0] == 200 for v in old.values()) and
   "placeholder" not in old["L"][1], "node A serves it, every size (%s)" %
   old["L"][1])
ok(wait_for(lambda: served(pb) == old),
   "node B serves the same photo, every size, with its ETag")
before = stored()
is_eq(len(before), 1, "the store holds test3's photo")
dump_before = store_dump(pa.dir)

# ---- the upload held half-way, then its node killed ----
con = psync._pg_store(pa.dir)
cur = con.cursor()
cur.execute("SELECT account FROM sync_state WHERE account = %s FOR UPDATE",
            (T3,))
is_eq(len(cur.fetchall()), 1, "the test holds test3's sync_state row")
mark = LogMark(pa)
answer = {}


def held_upload():
    try:
        answer["r"] = upload(pa, make_image(os.path.join(work, "new.jpg"),
                                            "600x600", extra=["-negate"]))
    except Exception as e:          # the node dies under it
        answer["error"] = repr(e)


t = threading.Thread(target=held_upload)
t.start()


def waiting_on_lock():
    c2 = psync._pg_store(pa.dir)
    try:
        k = c2.cursor()
        k.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND wait_event_type = 'Lock'")
        return k.fetchone()[0] >= 1
    finally:
        c2.close()


ok(wait_for(waiting_on_lock),
   "node A's upload transaction waits on the lock, its thumbs row written")
pa.server.proc.kill()
pa.server.proc.wait()
con.rollback()          # the lock goes
con.close()
t.join()
ok("r" not in answer or answer["r"].status != 200,
   "the upload through the killed node got no success (%r)" % (
       answer.get("error") or answer["r"].status,))
ok(mark.count(r"ev=photo\.uploaded ") == 0,
   "node A never logged the upload as stored")


def no_backend_left():
    c2 = psync._pg_store(pa.dir)
    try:
        k = c2.cursor()
        k.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND (state = 'idle in transaction' "
                  "OR wait_event_type = 'Lock')")
        return k.fetchone()[0] == 0
    finally:
        c2.close()


ok(wait_for(no_backend_left),
   "the killed node's transaction is over (no session waits or holds one)")
is_eq(stored(), before, "the store holds the old photo: every size, its "
      "ETag")
# Sequences are not transactional: the feed rows the killed transaction
# wrote (through its thumbs row's trigger) used up sequence numbers, the
# one trace it may leave; a row it wrote would be a difference here.
def rows(dump):
    return [ln for ln in dump.decode().splitlines()
            if not ln.startswith("SELECT pg_catalog.setval(")]


def feed_seq(dump):
    return [ln for ln in dump.decode().splitlines()
            if ln.startswith("SELECT pg_catalog.setval('public.feed_seq")]


dump_after = store_dump(pa.dir)
ok(feed_seq(dump_after) != feed_seq(dump_before),
   "the killed transaction had written rows (the feed's sequence moved)")
if not ok(rows(dump_after) == rows(dump_before),
          "no row changed in the store: no orphan rows"):
    import difflib
    for ln in difflib.unified_diff(rows(dump_before), rows(dump_after),
                                   lineterm="", n=0):
        print("# " + ln[:200])
is_eq(served(pb), old, "node B serves the old photo, every size, with its "
      "ETag")

# ---- the user can upload again, through the other node ----
r = upload(pb, make_image(os.path.join(work, "again.jpg"), "640x640",
                          extra=["-flip"]))
ok(r.status == 200 and "stored" in r.text(),
   "test3 uploads again through node B")
new = served(pb)
ok(all(v[0] == 200 for v in new.values()) and new["L"][1] != old["L"][1],
   "node B serves the new photo (%s)" % new["L"][1])
after = stored()
ok(len(after) == 1 and after[0][0] != before[0][0],
   "the store holds the new photo, one row")
pa.server = None
pa.start()
ok(wait_for(lambda: served(pa) == new),
   "node A, started again, serves the new photo, every size")

for node in (pa, pb):
    is_eq(node.stop(), 0, "a node stops cleanly")
done()
