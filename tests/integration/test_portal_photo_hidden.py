"""A photo hidden at the master, on a real portal: the master's change
notice makes the portal sync the owner, whose own GetUserPhoto (an S2S
token acting as the owner) carries X-Photosync-Photo-Hidden; the portal
stores the mark with the photo. Then userphoto.aspx, the library's file
and /avatar/ answer everyone but the owner as for a user with no photo
(the placeholder, or the avatar's default), while the owner still gets
the photo. Shown again at the master, everyone gets it again."""
import hashlib
import re

from psync import (LogMark, done, events_documented, is_eq, ok, photo_path,
                   store_rows, wired)

T1, T2 = "contoso\\test1", "contoso\\test2"
LIB = "/User%20Photos/Profile%20Pictures/contoso_test1_MThumb.jpg"
MD5 = hashlib.md5(b"test1@contoso.com").hexdigest()

m, p = wired()


def placeholder(r):
    return r.status == 200 and "placeholder" in (r.header("ETag") or "")


def photo(r):
    return r.status == 200 and "placeholder" not in (r.header("ETag") or "")


def seen_by(who):
    """What `who` gets of test1's photo: userphoto.aspx's S, M and L, the
    library's file, and the avatar (d=404: 404 when there is none)."""
    return ([p.get(photo_path(T1, s), as_user=who) for s in "SML"] +
            [p.get(LIB, as_user=who)],
            p.get("/avatar/%s?d=404" % MD5, as_user=who))


def hidden_rows():
    return store_rows(p.dir, "SELECT hidden FROM thumbs WHERE account = ?",
                      (T1,))


r = p.owner_photo(T1)
ok(photo(r), "the owner's visit synced the photo")
pages, avatar = seen_by(T2)
ok(all(photo(x) for x in pages) and avatar.status == 200,
   "shown: another user gets it everywhere")
is_eq(hidden_rows(), [(0,)], "stored unmarked")

# ---- hidden at the master ----
log = LogMark(p)
m.cmd("photo", "hide", "test1@contoso.com")
ok(log.wait(r"ev=sync\.photo_stored account=\S*test1\S* .*"
            r"hidden=yes"),
   "the change notice made the portal sync it, marked hidden")
is_eq(hidden_rows(), [(1,)], "the mark is stored with the photo")
pages, avatar = seen_by(T2)
ok(all(placeholder(x) for x in pages),
   "another user gets the placeholder from userphoto.aspx (S, M, L) and "
   "the library's file (%r)" % [x.header("ETag") for x in pages])
is_eq(avatar.status, 404, "and the avatar's default (d=404)")
r = p.get("/people", as_user=T2)
ok(r.status == 200, "the people page answers")
pages, avatar = seen_by(T1)
ok(all(photo(x) for x in pages) and avatar.status == 200,
   "the owner still gets the photo everywhere")
ok(re.search(r"ev=sync\.photo_answer account=\S*test1\S* "
             r"status=200", log.text()), "fetched again from the master")

# ---- shown again ----
log = LogMark(p)
m.cmd("photo", "unhide", "test1@contoso.com")
ok(log.wait(r"ev=sync\.photo_stored account=\S*test1\S* .*"
            r"hidden=no"), "the unhide reached the portal the same way")
is_eq(hidden_rows(), [(0,)], "shown again: the mark is cleared")
pages, avatar = seen_by(T2)
ok(all(photo(x) for x in pages) and avatar.status == 200,
   "everyone gets the photo again")
m.stop()
p.stop()
events_documented(p.server.logs(), "the portal's log")
done()
