"""photosync portal serve: nothing on the event loop waits, and the
in-memory index stays warm. While another process holds the store's write
lock, cached photos, lookups that miss and a first sign-in are answered,
and an upload (which must write) waits for the lock without holding up
the others: a request sent after it is answered before it. An admin
command beside serve changes one user at the next request and leaves the
others' cached photos in memory (the change feed drops one key). No
timing is measured: what was answered, the index's counters and the
order of the log lines show each mechanism."""
import os
import re
import threading

from fakepeer import wait_for
from psync import (done, is_eq, make_image, ok, photo_path, store_write_lock,
                   tmpdir, wired)

T1, T2, T3 = "contoso\\test1", "contoso\\test2", "contoso\\test3"
work = tmpdir("portal-offloop")
m, p = wired()


def lookups():
    """The photo index's (hits, misses) from /metrics."""
    text = p.get("/metrics").text()
    got = {}
    for res in ("hit", "miss"):
        g = re.search(r'^photosync_cache_lookups_total\{cache="photos",'
                      r'result="%s"\} (\d+)' % res, text, re.M)
        got[res] = int(g.group(1)) if g else 0
    return got["hit"], got["miss"]


r = p.owner_photo(T1)                          # test1's photo, synced
ok(r.status == 200 and "placeholder" not in r.header("ETag"),
   "setup: test1's photo is synced")
r = p.get(photo_path(T1, "M"), as_user=T2)
etag = r.header("ETag")
h0, m0 = lookups()
r = p.get(photo_path(T1, "M"), as_user=T2)
h1, m1 = lookups()
ok(r.status == 200 and r.header("ETag") == etag and (h1 - h0, m1 - m0) ==
   (1, 0), "test2 sees test1's M photo from memory (a hit)")

# ---- another process holds the store's write lock ----
lock = store_write_lock(p.dir)
log_at = len(p.server.logs())
done_upload = {}


img = open(make_image(os.path.join(work, "up.jpg"), "400x400"), "rb").read()
boundary = "----photosyncofflooptest"
body = (("--%s\r\nContent-Disposition: form-data; name=\"photo\"; "
         "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n" %
         boundary).encode() + img + ("\r\n--%s--\r\n" %
                                     boundary).encode())


def store_queued():
    g = re.search(r"^photosync_store_queued (\d+)", p.get("/metrics").text(),
                  re.M)
    return int(g.group(1)) if g else 0


def upload():
    done_upload["r"] = p.post(
        "/my/changephoto", body,
        {"Content-Type": "multipart/form-data; boundary=" + boundary},
        as_user=T3)


t = threading.Thread(target=upload)
t.start()
# The upload, rendered, waits for the lock on the write lane...
ok(wait_for(lambda: store_queued() >= 1),
   "the upload's write is queued behind the lock")
r = p.get(photo_path(T1, "M"), as_user=T2)
ok(r.status == 200 and r.header("ETag") == etag,
   "a cached photo is answered while the lock is held")
r = p.get("/my/person.aspx?accountname=" + "test1@contoso.com",
          as_user=T2)
is_eq(r.status, 200, "a page that reads the store is answered (WAL "
      "readers do not wait for the writer)")
r = p.get(photo_path(T2, "S"), as_user=T3)
is_eq(r.status, 200, "a first sign-in (test3: the user read, then "
      "Argon2id off the loop) and an index miss are answered")
log = p.server.logs()[log_at:]
ok(re.search(r"ev=photo\.upload", log) is None and "r" not in done_upload,
   "all of that was answered before the upload, which still waits")
lock.release()
t.join(60)
r = done_upload.get("r")
ok(r is not None and r.status == 200, "once the lock is released the "
   "upload is stored (%s)" % (r and r.status))

# ---- an admin command beside serve drops one key ----
h0, m0 = lookups()
p.cmd("user", "add", "contoso\\test9", "--email", "test9@contoso.com")
r = p.get(photo_path(T1, "M"), as_user=T2)
h1, m1 = lookups()
ok(r.status == 200 and (h1 - h0, m1 - m0) == (1, 0),
   "after an admin command, other users' photos are still in memory")
r = p.get(photo_path("contoso\\test9", "M"), as_user=T2)
is_eq(r.status, 200, "the user it added is found at the next request")
p.stop()
m.stop()
done()
