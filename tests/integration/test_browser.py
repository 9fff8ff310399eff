"""Changing a photo in a real browser (headless Chromium): test1 signs in
to the portal, follows "Change photo" to the master, signs in there,
uploads, previews, saves, comes back and sees the new photo on /my; test2
then sees it on /people; Cancel changes nothing; bad files get a message
and change nothing; test3 (no mailbox) uploads in the portal."""
import os
import time

from browser import Browser
from psync import done, is_eq, make_image, ok, tmpdir, wired

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
done()
