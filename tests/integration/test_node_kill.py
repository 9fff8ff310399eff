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

The same for the master's change-photo page: a preview saved through
master node A waits on the test's lock of that preview's row (the save
writes photos and photo_sizes first, then deletes the preview), node A
is killed: the store and master node B keep the old photo (every size,
its ETag) and the preview, and the user saves a new photo through node B
with the same session.

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
from psync import (LogMark, Master, Portal, WebSession, action_of, basic,
                   csrf_of, done, is_eq, make_image, multipart, node_copy,
                   ok, photo_path, store_dump, store_rows, tmpdir,
                   wait_for)

if not psync.ON_POSTGRESQL:
    psync.skip_all("the store is SQLite: its atomic commit (the WAL, "
                   "rolled back at the next open) cannot be held half-way "
                   "from outside (this test runs as "
                   "node_kill_on_postgresql)")

T3 = "contoso\\test3"
SIZES = ("S", "M", "L")
work = tmpdir("node-kill")


def upload(node, image):
    body, ctype = multipart({"photo": ("me.jpg", open(image, "rb").read())})
    return node.post("/my/changephoto", body, {"Content-Type": ctype},
                     as_user=T3)


# Sequences are not transactional: the feed rows a killed transaction
# wrote (through its first rows' triggers) used up sequence numbers, the
# one trace it may leave; a row it wrote would be a difference here.
def rows(dump):
    return [ln for ln in dump.decode().splitlines()
            if not ln.startswith("SELECT pg_catalog.setval(")]


def feed_seq(dump):
    return [ln for ln in dump.decode().splitlines()
            if ln.startswith("SELECT pg_catalog.setval('public.feed_seq")]


def show_diff(before, after):
    import difflib
    for ln in difflib.unified_diff(rows(before), rows(after), lineterm="",
                                   n=0):
        print("# " + ln[:200])


def waiting_on_lock(state_dir):
    c2 = psync._pg_store(state_dir)
    try:
        k = c2.cursor()
        k.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND wait_event_type = 'Lock'")
        return k.fetchone()[0] >= 1
    finally:
        c2.close()


def no_transaction_left(state_dir):
    c2 = psync._pg_store(state_dir)
    try:
        k = c2.cursor()
        k.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND (state = 'idle in transaction' "
                  "OR wait_event_type = 'Lock')")
        return k.fetchone()[0] == 0
    finally:
        c2.close()


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


ok(wait_for(lambda: waiting_on_lock(pa.dir)),
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


ok(wait_for(lambda: no_transaction_left(pa.dir)),
   "the killed node's transaction is over (no session waits or holds one)")
is_eq(stored(), before, "the store holds the old photo: every size, its "
      "ETag")
dump_after = store_dump(pa.dir)
ok(feed_seq(dump_after) != feed_seq(dump_before),
   "the killed transaction had written rows (the feed's sequence moved)")
if not ok(rows(dump_after) == rows(dump_before),
          "no row changed in the store: no orphan rows"):
    show_diff(dump_before, dump_after)
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

# ---- the master's change-photo page ----
ECP_PAGE = "/ecp/PersonalSettings/EditAccount.aspx"
GUP = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&size=%s"
GUP_SIZES = ("HR96x96", "HR240x240", "HR648x648")
MAUTH = {"Authorization": basic("test1@contoso.com", "pw-one")}


def master_served(node):
    out = {}
    for size in GUP_SIZES:
        r = node.get(GUP % size, MAUTH)
        out[size] = (r.status, r.header("ETag"), r.body)
    return out


def master_stored():
    return store_rows(ma.dir, "SELECT p.etag, s.code, s.data FROM photos p "
                      "JOIN photo_sizes s ON s.email = p.email WHERE "
                      "p.email = ? ORDER BY s.code", ("test1@contoso.com",))


def preview(b):
    """Uploads a photo on b's page: the page showing its preview."""
    page = b.get(ECP_PAGE)
    image = make_image(os.path.join(work, "p-%s.jpg" % uuid.uuid4().hex),
                       "500x500", extra=["-flop"])
    r = b.upload(action_of(page, "/ecp/photo/upload"),
                 {"csrf": csrf_of(page)},
                 {"photo": ("me.jpg", open(image, "rb").read())})
    is_eq(r.status, 303, "a photo uploaded on the change-photo page: 303")
    return b.follow(r)


ma = Master()
ma.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
ma.cmd("photo", "set", "test1@contoso.com", "--file",
       make_image(os.path.join(work, "m1.jpg"), "800x800"))
ma.start()
mb = node_copy(ma, "master-b").start()
mold = master_served(ma)
ok(all(v[0] == 200 for v in mold.values()), "master A serves test1's photo")
ok(wait_for(lambda: master_served(mb) == mold),
   "master B serves the same photo, every size, with its ETag")
b = WebSession(ma)
page = b.get(ECP_PAGE)
r = b.post(action_of(page, "/ecp/login"), {
    "csrf": csrf_of(page), "email": "test1@contoso.com",
    "password": "pw-one"})
is_eq(r.status, 303, "test1 signs in on master A's change-photo page")
page = preview(b)
save = action_of(page, "/ecp/photo/save")
ok(save and "not saved" in page.text(), "the page shows the preview")
mbefore = master_stored()
ok(mbefore, "the store holds test1's photo (%d sizes)" % len(mbefore))
mdump_before = store_dump(ma.dir)

con = psync._pg_store(ma.dir)
cur = con.cursor()
cur.execute("SELECT email FROM previews WHERE email = %s FOR UPDATE",
            ("test1@contoso.com",))
is_eq(len(cur.fetchall()), 1, "the test holds test1's preview row")
mark = LogMark(ma)
answer = {}


def held_save():
    try:
        answer["r"] = b.post(save, {"csrf": csrf_of(page)})
    except Exception as e:          # the node dies under it
        answer["error"] = repr(e)


t = threading.Thread(target=held_save)
t.start()
ok(wait_for(lambda: waiting_on_lock(ma.dir)),
   "master A's save waits on the lock, photos and photo_sizes written")
ma.server.proc.kill()
ma.server.proc.wait()
con.rollback()
con.close()
t.join()
ok("r" not in answer or answer["r"].status != 303,
   "the save through the killed node got no success (%r)" % (
       answer.get("error") or answer["r"].status,))
ok(mark.count(r"ev=ecp\.saved ") == 0, "master A never logged the save")
ok(wait_for(lambda: no_transaction_left(ma.dir)),
   "the killed node's transaction is over")
is_eq(master_stored(), mbefore, "the store holds the old photo: every "
      "size, its ETag")
mdump_after = store_dump(ma.dir)
ok(feed_seq(mdump_after) != feed_seq(mdump_before),
   "the killed transaction had written rows (the feed's sequence moved)")
if not ok(rows(mdump_after) == rows(mdump_before),
          "no row changed in the store (the preview is still there): no "
          "orphan rows"):
    show_diff(mdump_before, mdump_after)
is_eq(master_served(mb), mold, "master B serves the old photo, every "
      "size, with its ETag")

# The session is in the store: the same cookies work on node B.
bb = WebSession(mb, b.jar)
page = preview(bb)
r = bb.post(action_of(page, "/ecp/photo/save"), {"csrf": csrf_of(page)})
is_eq(r.status, 303, "test1 saves a new photo through master B")
ok(wait_for(lambda: master_served(mb)["HR648x648"][1] !=
            mold["HR648x648"][1]), "master B serves the new photo")
mafter = master_stored()
ok(mafter and {e for e, _, _ in mafter} != {mbefore[0][0]},
   "the store holds the new photo (%d sizes)" % len(mafter))
is_eq(mb.stop(), 0, "master B stops cleanly")
done()
