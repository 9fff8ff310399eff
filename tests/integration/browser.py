"""Headless Chromium for the browser tests, driven by Debian's
python3-selenium and chromium-driver. The certificates of the test
servers come from per-test CAs the browser does not know, hence
--ignore-certificate-errors; everything else is a normal browser session
(cookies, forms, redirects, file uploads, no JavaScript needed).
Screenshots of failures go to $PHOTOSYNC_ARTIFACTS (tests/integration/
artifacts in the build directory under meson; else photosync-artifacts
in the temporary directory)."""
import os
import re
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import psync

# Made when a screenshot is taken, not before: a run that passes leaves
# nothing.
ARTIFACTS = os.environ.get("PHOTOSYNC_ARTIFACTS") or os.path.join(
    tempfile.gettempdir(), "photosync-artifacts")


class Browser:
    def __init__(self, name, args=(), env=None, local_state=None):
        """`args`: more Chromium switches; `env`: the environment of the
        driver and so of Chromium (a Kerberos ticket cache, say);
        `local_state`: the browser-wide preferences its profile starts
        with (Chromium's "Local State" file)."""
        import json
        self.name = name
        profile = psync.tmpdir("chromium")
        if local_state is not None:
            with open(os.path.join(profile, "Local State"), "w") as f:
                json.dump(local_state, f)
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--ignore-certificate-errors",
                  "--window-size=1100,900",
                  "--user-data-dir=" + profile) + \
                tuple(args):
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver",
                                                  env=env),
                                  options=o)
        self.d.set_page_load_timeout(30)
        self.shots = 0

    def get(self, url):
        self.d.get(url)

    def url(self):
        return self.d.current_url

    def text(self):
        return self.d.find_element(By.TAG_NAME, "body").text

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def fill(self, css, value):
        e = self.find(css)
        e.clear()
        e.send_keys(value)

    def click(self, css):
        self.find(css).click()

    def button(self, label):
        """Clicks the button whose visible text is `label`."""
        for b in self.finds("button, input[type=submit]"):
            if (b.text or b.get_attribute("value") or "").strip() == label:
                b.click()
                return
        raise AssertionError("no button %r on %s" % (label, self.url()))

    def image_loaded(self, img):
        """True when the <img> element decoded a real image."""
        return self.d.execute_script(
            "return arguments[0].complete && "
            "arguments[0].naturalWidth > 0", img)

    def image_src(self, css):
        return self.find(css).get_attribute("src")

    def fetch(self, url):
        """GETs url with the browser's cookies; returns the bytes."""
        import base64
        b64 = self.d.execute_async_script(
            "const cb = arguments[arguments.length - 1];"
            "fetch(arguments[0], {credentials: 'include'})"
            ".then(r => r.arrayBuffer()).then(b => {"
            "let s = ''; const u = new Uint8Array(b);"
            "for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);"
            "cb(btoa(s)); }).catch(e => cb(''));", url)
        return base64.b64decode(b64)

    def screenshot(self, why):
        self.shots += 1
        name = "%s-%02d-%s.png" % (self.name, self.shots,
                                   re.sub(r"[^a-z0-9]+", "-", why.lower())
                                   [:60])
        path = os.path.join(ARTIFACTS, name)
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.d.save_screenshot(path)
        return path

    def wait(self, cond, timeout=psync.HANG_GUARD):
        """Waits until cond() is true (pages load after clicks); the
        timeout only guards against a hang."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            try:
                if cond():
                    return True
            except Exception:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def check(self, cond, what):
        """ok() that keeps a screenshot when it fails."""
        if not psync.ok(cond, what):
            print("#   screenshot: %s" % self.screenshot(what), flush=True)
        return cond

    def quit(self):
        self.d.quit()
