"""Changing a photo in a real browser (headless Chromium): test1 signs in
to the portal, follows "Change photo" to the master, signs in there,
uploads, previews, saves, comes back and sees the new photo on /my; test2
then sees it on /people; Cancel changes nothing; bad files get a message
and change nothing; test3 (no mailbox) uploads in the portal."""
import os
import time

from browser import Browser
from psync import (basic, done, is_eq, make_image, ok, photo_path, tmpdir,
                   wired)

work = tmpdir("browser")
m, p = wired()
PW = {"contoso\\test1": "pw-one", "contoso\\test2": "pw-two",
      "contoso\\test3": "pw-three"}


def portal_sign_in(b, account):
    b.get(p.url("/my"))
    b.check("/login" in b.url(), "%s: /my sends a new browser to the "
            "sign-in form" % account)
    b.fill("#account", account)
    b.fill("#password", PW[account])
    b.button("Sign in")
    b.check(b.wait(lambda: b.url().endswith("/my")),
            "%s: signed in, back on /my" % account)


def my_photo(b):
    img = b.find("img.big")
    return img.get_attribute("src"), b.image_loaded(img)


photo = make_image(os.path.join(work, "new.jpg"), "1000x700",
                   extra=["-swirl", "120"])
notimg = os.path.join(work, "notes.jpg")
with open(notimg, "w") as f:
    f.write("this is text pretending to be a JPEG\n")

def master_etag():
    r = m.get("/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&"
              "size=HR648x648", {"Authorization": basic("test1@contoso.com",
                                                          "pw-one")})
    return r.header("ETag")


# ---- test1: a mailbox; the photo is changed at the master ----
b1 = Browser("test1")
try:
    portal_sign_in(b1, "contoso\\test1")
    src0, loaded = my_photo(b1)
    b1.check(loaded, "test1: /my shows test1's photo")
    etag0 = master_etag()
    b1.d.find_element("link text", "Change photo").click()
    b1.check(b1.wait(lambda: ":%d/ecp/" % m.port in b1.url() and
                     b1.finds("#email")),
             "test1: Change photo leads to the master's sign-in page")
    b1.fill("#email", "test1@contoso.com")
    b1.fill("#password", "pw-one")
    b1.button("Sign in")
    b1.check(b1.wait(lambda: "Change your photo" in b1.text() and
                     b1.finds("input[type=file]")),
             "test1: signed in at the master, the change-photo page")
    imgs = b1.finds("img")
    b1.check(imgs and all(b1.image_loaded(i) for i in imgs),
             "the current photo is shown")
    b1.check(b1.finds("label[for=photo]"), "the file input has a label")
    # Cancel leaves the photo as it was.
    b1.find("#photo").send_keys(photo)
    b1.button("Upload and preview")
    b1.check(b1.wait(lambda: "preview" in b1.text().lower() and
                     b1.finds("img[src*='kind=preview']")),
             "upload: a preview rendered by the server")
    prev = b1.finds("img[src*='kind=preview']")
    b1.check(prev and b1.image_loaded(prev[0]), "the preview image loads")
    is_eq(master_etag(), etag0, "a preview is not stored yet")
    b1.button("Cancel")
    b1.check(b1.wait(lambda: "discarded" in b1.text()),
             "Cancel: the preview is discarded, in words")
    is_eq(master_etag(), etag0, "Cancel: the photo is unchanged")
    # A file that is not an image.
    b1.find("#photo").send_keys(notimg)
    b1.button("Upload and preview")
    b1.check(b1.wait(lambda: "not an image" in b1.text()),
             "a text file gets a message in words")
    is_eq(master_etag(), etag0, "a bad file changes nothing")
    # Upload, preview, save.
    b1.find("#photo").send_keys(photo)
    b1.button("Upload and preview")
    b1.wait(lambda: b1.finds("img[src*='kind=preview']"))
    b1.button("Save")
    b1.check(b1.wait(lambda: "saved" in b1.text()),
             "Save: the new photo is saved")
    etag1 = master_etag()
    ok(etag1 and etag1 != etag0, "Save: the master has a new ETag")
    # Back to the portal, which fetches the new photo at once.
    links = [a for a in b1.finds("a") if a.text.startswith("Back to")]
    b1.check(links, "a way back to the portal is offered")
    if links:
        links[0].click()
    b1.check(b1.wait(lambda: b1.url().endswith("/my?changed=1")),
             "back on the portal's /my")
    src1, loaded = my_photo(b1)
    b1.check(loaded and src1 != src0, "/my shows the new photo")
    new_l = b1.fetch(src1)
    r = p.get(photo_path("contoso\\test1", "L"), as_user="contoso\\test1")
    b1.check(new_l == r.body and r.header("ETag") != "",
             "the browser got the portal's new L photo")
    st, out, err = p.cmd("user", "show", "contoso\\test1")
    b1.check(etag1.strip('"') in out, "the portal now holds the master's "
             "new photo (master etag %s)" % etag1)
finally:
    b1.quit()

# ---- test2 then sees it on /people ----
b2 = Browser("test2")
try:
    portal_sign_in(b2, "contoso\\test2")
    b2.get(p.url("/people"))
    imgs = [i for i in b2.finds("img") if "Test One" in
            (i.get_attribute("alt") or "")]
    b2.check(imgs and b2.image_loaded(imgs[0]),
             "test2: /people shows test1's photo")
    if imgs:
        seen = b2.fetch(imgs[0].get_attribute("src"))
        r = p.get(photo_path("contoso\\test1", "M"),
                  as_user="contoso\\test2")
        b2.check(seen == r.body, "test2 sees test1's new photo (M)")
finally:
    b2.quit()

# ---- test3: no mailbox, uploads in the portal ----
b3 = Browser("test3")
try:
    portal_sign_in(b3, "contoso\\test3")
    src, loaded = my_photo(b3)
    b3.check(loaded, "test3: /my shows a picture (the placeholder)")
    b3.d.find_element("link text", "Change photo").click()
    b3.check(b3.url().endswith("/my/changephoto") and
             b3.finds("input[type=file]"),
             "test3: Change photo opens the portal's upload form")
    label = b3.find("label[for=photo]").text
    b3.check("photo" in label.lower(), "the file input has a label")
    b3.find("input[type=file]").send_keys(notimg)
    b3.button("Upload")
    b3.check(b3.wait(lambda: "not an image" in b3.text()),
             "a text file is refused in words")
    b3.find("input[type=file]").send_keys(photo)
    b3.button("Upload")
    b3.check(b3.wait(lambda: b3.url().endswith("/my?changed=1") and
                     "Your photo was changed." in b3.text()),
             "test3: upload accepted, back on /my")
    src2, loaded = my_photo(b3)
    b3.check(loaded and src2 != src, "test3: /my shows the new photo")
    jpeg = b3.fetch(src2)
    b3.check(jpeg[:2] == b"\xff\xd8", "test3: the photo is a JPEG")
    b3.button("Sign out")
    b3.check(b3.wait(lambda: "/login" in b3.url()),
             "sign out returns to the form")
    b3.get(p.url("/my"))
    b3.check("/login" in b3.url(), "after sign-out /my needs a sign-in")
finally:
    b3.quit()
p.stop()
m.stop()
done()
