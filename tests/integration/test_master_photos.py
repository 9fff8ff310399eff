"""photosync master init, mailbox and photo commands, checked with tools
we did not write (identify, exiftool, jpeginfo): sizes, orientation,
stripping, square crop, no upscaling, new ETag per change, and refusals
that leave the stored photo exactly as it was."""
import os
import re
import struct
import subprocess
import zlib

from psync import (Master, done, exif_tags, identify, is_eq, make_image, ok,
                   run, store_dump, store_files, tmpdir, write)

m = Master()
work = tmpdir("photos")

# ---- init refusals ----
st, out, err = run("master", "init", "--dir", m.dir, "--host",
                   "127.0.0.1:0", "--domain", "contoso.com", check=False)
ok(st != 0 and "already initialised" in err, "init refuses a second time")
st, out, err = run("master", "init", "--dir", os.path.join(work, "x"),
                   "--host", "127.0.0.1", check=False)
ok(st == 2 and "--domain" in err, "init without --domain is a usage error")
st, out, err = run("master", "init", "--dir", os.path.join(work, "y"),
                   "--host", "a/b", "--domain", "contoso.com", check=False)
ok(st != 0 and "invalid host" in err, "init refuses a host with a slash")
for f in store_files("master") + ["s2s-key.pem", "s2s-cert.pem",
                                 "tls-key.pem", "tls-cert.pem"]:
    ok(os.path.exists(os.path.join(m.dir, f)), "init made " + f)
is_eq(oct(os.stat(os.path.join(m.dir, "s2s-key.pem")).st_mode & 0o777),
      "0o600", "the signing key is private")

# ---- mailboxes ----
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("Test2@Contoso.com", "pw-two")
st, out, err = m.cmd("mailbox", "add", "test1@contoso.com", check=False)
ok(st != 0 and "already exists" in err, "duplicate mailbox refused")
st, out, err = m.cmd("mailbox", "add", "../etc@contoso.com", check=False)
ok(st != 0 and "not a valid e-mail" in err, "path characters refused")
st, out, err = m.cmd("mailbox", "add", "x@contoso.com", "--password",
                     "secret", check=False)
ok(st != 0, "a password on the command line is not accepted")
st, out, err = m.cmd("mailbox", "list")
ok("test1@contoso.com" in out and "test2@contoso.com" in out,
   "list shows both mailboxes, addresses in lower case")
empty = write(os.path.join(work, "empty"), "\n")
st, out, err = m.cmd("mailbox", "add", "e@contoso.com", "--password-file",
                     empty, check=False)
ok(st != 0 and "empty" in err, "empty password file refused")
dbtext = store_dump(m.dir)
ok(b"pw-one" not in dbtext and b"$argon2id$" in dbtext,
   "passwords stored as Argon2id only")


def show(email):
    st, out, err = m.cmd("photo", "show", email)
    g = re.search(r"etag\s+(\w+)", out)
    return g.group(1) if g else None


def fetch(email, size="HR648x648"):
    path = os.path.join(work, "out-%s.jpg" % size)
    if os.path.exists(path):
        os.unlink(path)
    m.cmd("photo", "show", email, "--size", size, "--output", path)
    return path


# ---- a photo with EXIF orientation and GPS ----
# Landscape, left half red, right half blue. Orientation 6 means "rotate
# 90 degrees clockwise to display": red ends up on top, blue below.
src = os.path.join(work, "rot.jpg")
subprocess.run(["convert", "-size", "1200x800", "xc:blue", "-fill", "red",
                "-draw", "rectangle 0,0 599,799", src], check=True)
subprocess.run(["exiftool", "-q", "-overwrite_original", "-Orientation=6",
                "-n", "-GPSLatitude=48.8583", "-GPSLatitudeRef=N",
                "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
                "-Artist=Someone", src], check=True)
ok("EXIF:GPSLatitude" in exif_tags(src), "the source has GPS data")
st, out, err = m.cmd("photo", "set", "test1@contoso.com", "--file", src)
ok(st == 0 and "stored the photo" in out, "photo set accepts a JPEG")
etag1 = show("test1@contoso.com")
ok(etag1 and len(etag1) >= 16, "photo show prints an ETag")

sides = {"HR48x48": 48, "HR64x64": 64, "HR96x96": 96, "HR120x120": 120,
         "HR240x240": 240, "HR360x360": 360, "HR432x432": 432,
         "HR504x504": 504, "HR648x648": 648}
for code, side in sides.items():
    w, h, fmt = identify(fetch("test1@contoso.com", code))
    ok((w, h, fmt) == (side, side, "JPEG"), "%s is a %dx%d JPEG" %
       (code, side, side))
p = fetch("test1@contoso.com")
tags = exif_tags(p)
ok(not any(k.startswith(("EXIF:", "XMP:", "IPTC:", "Composite:GPS"))
           for k in tags), "no EXIF, XMP or IPTC left")
ok(not any("GPS" in k for k in tags), "no location left")
ok("EXIF:Orientation" not in tags, "no orientation tag left")
jp = subprocess.run(["jpeginfo", "-c", p], capture_output=True, text=True)
ok(jp.returncode == 0, "jpeginfo finds the JPEG sound")


def pixel(path, x, y):
    out = subprocess.run(["convert", path, "-crop", "4x4+%d+%d" % (x, y),
                          "-resize", "1x1!", "-format",
                          "%[fx:int(255*r)] %[fx:int(255*g)] "
                          "%[fx:int(255*b)]", "info:"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(map(int, out.split()))


top, bottom = pixel(p, 160, 160), pixel(p, 160, 480)
ok(top[0] > 180 and top[2] < 90 and bottom[2] > 180 and bottom[0] < 90,
   "orientation applied: red on top, blue below (%s, %s)" % (top, bottom))

# ---- no upscaling ----
small = make_image(os.path.join(work, "small.png"), "300x200")
m.cmd("photo", "set", "test2@contoso.com", "--file", small)
is_eq(identify(fetch("test2@contoso.com", "HR240x240"))[:2], (200, 200),
      "HR240x240 of a 300x200 source is the 200x200 crop")
is_eq(identify(fetch("test2@contoso.com", "HR648x648"))[:2], (200, 200),
      "HR648x648 is answered by the largest stored size, never upscaled")
is_eq(identify(fetch("test2@contoso.com", "HR96x96"))[:2], (96, 96),
      "HR96x96 is exact")

# ---- other formats ----
for fmt in ("png", "webp", "gif"):
    f = make_image(os.path.join(work, "in." + fmt), "700x700")
    st, out, err = m.cmd("photo", "set", "test2@contoso.com", "--file", f,
                         check=False)
    ok(st == 0, "photo set accepts " + fmt.upper())
heic = os.path.join(work, "in.heic")
if subprocess.run(["convert", small, heic], capture_output=True).returncode \
        == 0 and os.path.getsize(heic) > 0:
    st, out, err = m.cmd("photo", "set", "test2@contoso.com", "--file",
                         heic, check=False)
    ok(st == 0, "photo set accepts HEIF")
else:
    print("# skip HEIF: this ImageMagick cannot write HEIF")

# ---- every change gives a new ETag ----
m.cmd("photo", "set", "test1@contoso.com", "--file", src)
etag2 = show("test1@contoso.com")
ok(etag2 and etag2 != etag1, "setting again gives a new ETag")
before = open(fetch("test1@contoso.com"), "rb").read()


def refused(path, what, needle):
    st, out, err = m.cmd("photo", "set", "test1@contoso.com", "--file",
                         path, check=False)
    ok(st != 0 and needle in err, "%s refused with a clear error (%s)" %
       (what, err.strip()[:120]))
    is_eq(show("test1@contoso.com"), etag2, what + ": ETag unchanged")
    is_eq(open(fetch("test1@contoso.com"), "rb").read(), before,
          what + ": stored photo unchanged")


refused(write(os.path.join(work, "notes.txt"), "hello, not an image\n"),
        "a text file", "not an image")
jpeg = open(src, "rb").read()
refused(write(os.path.join(work, "trunc.jpg"), jpeg[:len(jpeg) // 3]),
        "a truncated JPEG", "")
svg = write(os.path.join(work, "x.svg"),
            '<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            'height="10"/>')
refused(svg, "an SVG", "not accepted")


def png_bomb(path, w, h):
    """A valid PNG of w x h black pixels: tiny file, huge decode."""
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    row = b"\0" * (w + 1)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


bomb = png_bomb(os.path.join(work, "bomb.png"), 9000, 9000)
ok(os.path.getsize(bomb) < 200000, "the bomb is small on disk")
refused(bomb, "a decompression bomb", "pixels")
big = write(os.path.join(work, "big.jpg"), jpeg[:2] + os.urandom(21 << 20))
refused(big, "a file over the byte limit", "larger than")
st, out, err = m.cmd("photo", "set", "nobody@contoso.com", "--file", src,
                     check=False)
ok(st != 0 and "no mailbox" in err, "photo set for an unknown mailbox")

# ---- remove ----
m.cmd("photo", "remove", "test2@contoso.com")
st, out, err = m.cmd("photo", "show", "test2@contoso.com")
ok("has no photo" in out, "photo remove removes it")
st, out, err = m.cmd("photo", "remove", "test2@contoso.com", check=False)
ok(st != 0 and "no photo" in err, "removing twice is an error")
m.cmd("mailbox", "remove", "test1@contoso.com")
st, out, err = m.cmd("photo", "show", "test1@contoso.com", check=False)
ok(st != 0 and "no mailbox" in err, "removing a mailbox removes its photo")
done()
