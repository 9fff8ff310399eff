"""`master photo import`: many mailboxes' photos at once.

A folder of files named by address: good photos (JPEG, PNG), bad ones
(not an image, truncated, over the byte limit, a scan bomb, a pixel
bomb), an unknown address, a disabled mailbox, a file not named by an
address; the summary and the exit code (3: some refused); a refused
file leaves its mailbox's photo as it was; change notices are queued
for the stored ones. A dry run stores nothing; a second import skips
the photos the mailboxes have. A CSV with a header, quoted fields and
relative paths. The directory's jpegPhoto and thumbnailPhoto from a
real slapd (tests/slapd.py), jpegPhoto first."""
import base64
import os
import re
import struct
import sys
import zlib

from psync import (Master, done, is_eq, make_image, ok, scan_bomb,
                   store_change, store_rows, tmpdir, write)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import slapd  # noqa: E402  (tests/slapd.py)

work = tmpdir("import")
m = Master()
GOOD = ["good%d@contoso.com" % i for i in range(1, 7)]
BAD = ["text@contoso.com", "trunc@contoso.com", "big@contoso.com",
       "scans@contoso.com", "pixels@contoso.com"]
for e in GOOD + BAD + ["off@contoso.com"]:
    m.add_mailbox(e)
store_change(m.dir, "UPDATE mailboxes SET disabled = 1 WHERE email = ?",
             ("off@contoso.com",))
# A partner that wants change notices: one is queued per photo stored.
store_change(m.dir, "INSERT INTO partners (name, issuer, metadata_url, "
             "metadata, fetched, added, notify, ca_file) VALUES ('portal', "
             "'p@realm', 'https://127.0.0.1:9/m', '{}', 0, 0, 1, '')")


def png_bomb(path, w, h):
    """A valid PNG of w x h black pixels: a small file, a huge decode."""
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(b"\0" * (w + 1)) for _ in range(h)) + \
        z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
            ">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", data) +
            chunk(b"IEND", b""))
    return path


folder = os.path.join(work, "photos")
os.mkdir(folder)
for i, e in enumerate(GOOD):
    make_image(os.path.join(folder, e + (".png" if i % 2 else ".jpg")),
               "%dx%d" % (300 + 40 * i, 280 + 40 * i))
jpeg = open(os.path.join(folder, GOOD[0] + ".jpg"), "rb").read()
write(os.path.join(folder, "text@contoso.com.jpg"), "not an image\n")
write(os.path.join(folder, "trunc@contoso.com.jpeg"), jpeg[:len(jpeg) // 3])
write(os.path.join(folder, "big@contoso.com.jpg"),
      jpeg[:2] + os.urandom(21 << 20))
scan_bomb(os.path.join(folder, "scans@contoso.com.jpg"))
png_bomb(os.path.join(folder, "pixels@contoso.com.png"), 9000, 9000)
make_image(os.path.join(folder, "nobody@contoso.com.jpg"), "100x100")
make_image(os.path.join(folder, "off@contoso.com.jpg"), "100x100")
write(os.path.join(folder, "notes.txt"), "photos for the import\n")
write(os.path.join(folder, ".hidden"), "left alone\n")

# trunc@ has a photo before: the refused file leaves it as it was.
m.cmd("photo", "set", "trunc@contoso.com", "--file",
      os.path.join(folder, GOOD[0] + ".jpg"))


def photos():
    return dict(store_rows(m.dir, "SELECT email, etag FROM photos"))


def outbox():
    return store_rows(m.dir, "SELECT count(*) FROM outbox")[0][0]


def summary(out):
    """The summary's counts, by name."""
    c = {k: int(v) for k, v in re.findall(
        r"^  (stored|would store|skipped|refused|not stored) +(\d+)", out,
        re.M)}
    c.update({k: int(v) for k, v in re.findall(
        r"(unchanged|no mailbox|disabled mailbox) (\d+)", out)})
    return c


def want(stored=0, unchanged=0, nobox=0, disabled=0, refused=0,
         key="stored"):
    return {key: stored, "skipped": unchanged + nobox + disabled,
            "unchanged": unchanged, "no mailbox": nobox,
            "disabled mailbox": disabled, "refused": refused}


before = photos()
outbox0 = outbox()
st, out, err = m.cmd("photo", "import", folder, "--dry-run", check=False)
is_eq(st, 3, "a dry run with refusals exits 3")
is_eq(summary(out), want(stored=6, nobox=1, disabled=1, refused=6,
                         key="would store"),
      "a dry run says what it would do")
ok("(dry run: nothing stored)" in out, "and says it stored nothing")
is_eq(photos(), before, "a dry run stores nothing")
is_eq(outbox(), outbox0, "and queues no notice")

st, out, err = m.cmd("photo", "import", folder, "--threads", "2",
                     check=False)
is_eq(st, 3, "an import with refusals exits 3 (%s)" % err.strip())
is_eq(summary(out), want(stored=6, nobox=1, disabled=1, refused=6),
      "the folder: 6 stored, 2 skipped, 6 refused")
for needle, what in (
        ("text@contoso.com.jpg for text@contoso.com: the file is not an "
         "image", "not an image"),
        ("trunc@contoso.com.jpeg for trunc@contoso.com: ", "truncated"),
        ("big@contoso.com.jpg for big@contoso.com: ", "too large"),
        ("scans@contoso.com.jpg for scans@contoso.com: the JPEG has",
         "a scan bomb"),
        ("pixels@contoso.com.png for pixels@contoso.com: the image has",
         "a pixel bomb"),
        ("notes.txt: the file's name is not ADDRESS.jpg",
         "a file not named by an address")):
    ok(re.search(r"^refused .*" + re.escape(needle), out, re.M),
       "refused, and why: " + what)
ok("larger than" in out, "too large says so")
ok(re.search(r"^  refused +6 \(not addressed 1, over a limit 2, not a "
             r"usable image 3\)$", out, re.M), "the summary says why, "
   "by kind")
ok(".hidden" not in out, "hidden files are left alone")
ok(re.search(r"photo import: 14 of 14, [\d.]+ a second", err),
   "progress on stderr (%s)" % err.strip()[-100:])
ok(re.search(r"14 photos in [\d.]+ s \([\d.]+ a second\) on 2 threads",
             out), "the summary says how fast, on how many threads")
now = photos()
is_eq(sorted(e for e in now if e not in before), sorted(GOOD),
      "the good photos are stored")
is_eq(now["trunc@contoso.com"], before["trunc@contoso.com"],
      "a refused file leaves the mailbox's photo as it was")
ok(all(e not in now for e in BAD if e != "trunc@contoso.com"),
   "no refused file stored anything")
is_eq(store_rows(m.dir, "SELECT count(*) FROM photo_sizes WHERE email = ?",
                 (GOOD[5],))[0][0], 8, "a 500x480 photo: the sizes "
      "up to 432 and HR504x504 at 480, as photo set stores them")
is_eq(outbox() - outbox0, 6, "a change notice per photo stored")

st, out, err = m.cmd("photo", "import", folder, check=False)
is_eq(summary(out), want(unchanged=6, nobox=1, disabled=1, refused=6),
      "a second import skips the photos the mailboxes have")
is_eq(photos(), now, "and changes no ETag")

# ---- a CSV ----
sub = os.path.join(work, "csv", "pics")
os.makedirs(sub)
a = make_image(os.path.join(sub, "one, with a comma.jpg"), "200x200",
               extra=["-fill", "blue", "-draw", "circle 100,100 100,150"])
b = make_image(os.path.join(sub, "two.png"), "150x150",
               extra=["-fill", "green", "-draw", "circle 70,70 70,100"])
make_image(os.path.join(work, "abs.jpg"), "120x120",
           extra=["-fill", "white", "-draw", "circle 60,60 60,90"])
csv = write(os.path.join(work, "csv", "photos.csv"),
            'address,file\r\n'
            '"good1@contoso.com","pics/one, with a comma.jpg"\r\n'
            'good2@contoso.com,pics/two.png\r\n'
            '\r\n'
            'good3@contoso.com,"%s"\r\n'
            'not-an-address,pics/two.png\r\n'
            'good4@contoso.com,pics/missing.jpg\r\n'
            '"good5@contoso.com","pics/two.png",extra\r\n'
            % os.path.join(work, "abs.jpg"))
st, out, err = m.cmd("photo", "import", "--csv", csv, check=False)
is_eq(st, 3, "the CSV: some refused, exit 3")
is_eq(summary(out), want(stored=3, refused=3), "the CSV: a header, quoted "
      "fields, relative and absolute paths: 3 stored, 3 refused")
ok(re.search(r"^refused .*photos\.csv:6 \(pics/two\.png\): the first field "
             r"is not an address", out, re.M), "a row without an address "
   "is refused, with its line")
ok(re.search(r"^refused .*missing\.jpg\) for good4@contoso\.com: ", out,
             re.M), "a missing file is refused")
ok(re.search(r"^refused .*photos\.csv:8 .*: a row must be ADDRESS,FILE",
             out, re.M), "a row of three fields is refused")
after = photos()
ok(all(after[e] != now[e] for e in GOOD[:3]) and
   all(after[e] == now[e] for e in GOOD[3:]), "the CSV's three photos "
   "replaced theirs, the others stayed")
st, out, err = m.cmd("photo", "import", "--csv", write(
    os.path.join(work, "csv", "ok.csv"), "good2@contoso.com,pics/two.png\n"))
is_eq((st, summary(out)), (0, want(unchanged=1)), "nothing refused: exit 0 "
      "(no header needed)")
st, out, err = m.cmd("photo", "import", "--csv", write(
    os.path.join(work, "bad.csv"), 'a@contoso.com,"open\n'), check=False)
ok(st == 1 and "a quoted field is not closed" in err, "a broken CSV: exit "
   "1, said (%s)" % err.strip())
st, out, err = m.cmd("photo", "import", os.path.join(work, "nothing"),
                     check=False)
ok(st == 1 and "cannot read the folder" in err, "a missing folder: exit 1")
st, out, err = m.cmd("photo", "import", folder, "--csv", csv, check=False)
ok(st == 2 and "one source" in err, "two sources: a usage error, exit 2")
st, out, err = m.cmd("photo", "import", "--from-directory", check=False)
ok(st == 1 and "no directory is set" in err, "--from-directory without a "
   "directory set: exit 1")
st, out, err = m.cmd("photo", "import", "--help")
ok("Exit 0: every photo stored" in out and "3: some refused" in out,
   "--help says what the exit codes mean")

# ---- the directory's jpegPhoto and thumbnailPhoto ----
# (tests/slapd.py loads the project's thumbnailPhoto schema.)
d = slapd.Slapd(parent=work)
d.add_users(8)
big_jpeg = open(make_image(os.path.join(work, "j.jpg"), "400x400"),
                "rb").read()
thumb = open(make_image(os.path.join(work, "t.jpg"), "96x96"), "rb").read()


def photo_ldif(uid, attr, data):
    return ("dn: uid=%s,ou=people,%s\nchangetype: modify\nadd: objectClass\n"
            "objectClass: extensibleObject\n-\nadd: %s\n%s:: %s\n\n" %
            (uid, d.base, attr, attr, base64.b64encode(data).decode()))


def photo_add(uid, attr, data):
    return ("dn: uid=%s,ou=people,%s\nchangetype: modify\nadd: %s\n"
            "%s:: %s\n\n" % (uid, d.base, attr, attr,
                             base64.b64encode(data).decode()))


d.ldapmodify(photo_ldif("u00001", "jpegPhoto", big_jpeg) +
             photo_ldif("u00002", "thumbnailPhoto", thumb) +
             photo_ldif("u00003", "jpegPhoto", big_jpeg) +
             photo_add("u00003", "thumbnailPhoto", thumb) +
             photo_ldif("u00004", "jpegPhoto", b"not a photo at all") +
             photo_ldif("u00006", "jpegPhoto", big_jpeg))
m.cmd("directory", "set", "--ldap", d.uri, "--base", d.base,
      "--attributes", "openldap")
m.cmd("mailbox", "sync", "--ldap", d.uri, "--base", d.base,
      "--attributes", "openldap")
store_change(m.dir, "UPDATE mailboxes SET disabled = 1 WHERE email = ?",
             ("u00006@contoso.com",))
st, out, err = m.cmd("photo", "import", "--from-directory", check=False)
is_eq(st, 3, "the directory: one refused, exit 3 (%s)" % err.strip())
is_eq(summary(out), want(stored=3, disabled=1, refused=1),
      "the directory: three photos stored, a disabled mailbox skipped, a "
      "jpegPhoto that is no image refused; entries without one not counted")
ok(re.search(r"^refused uid=u00004,ou=people,dc=contoso,dc=com \(jpegPhoto\) "
             r"for u00004@contoso.com: the file is not an image", out, re.M),
   "the refusal names the entry and the attribute")


def largest(email):
    return store_rows(m.dir, "SELECT max(side) FROM photo_sizes WHERE "
                      "email = ?", (email,))[0][0]


is_eq((largest("u00001@contoso.com"), largest("u00002@contoso.com"),
       largest("u00003@contoso.com")), (400, 96, 400),
      "jpegPhoto (400x400), thumbnailPhoto (96x96), and jpegPhoto first "
      "when an entry has both")
st, out, err = m.cmd("photo", "import", "--from-directory", check=False)
is_eq(summary(out), want(unchanged=3, disabled=1, refused=1),
      "the directory again: unchanged")
d.halt()
st, out, err = m.cmd("photo", "import", "--from-directory", check=False)
ok(st == 1 and "Can't contact LDAP server" in err, "a directory that is "
   "down: exit 1, said (%s)" % err.strip())
d.stop()
done()
