"""The client side of test_client_evolution.py: Evolution's own address
book client (libebook through GObject introspection), run in the private
D-Bus session the test made (DBUS_SESSION_BUS_ADDRESS), which activates
Evolution's source registry and address-book factory; the factory loads
evolution-ews, which speaks EWS to the master.

Usage: evolution_client.py SOURCE_UID PASSWORD NAME ADDRESS CONNECT_SECONDS
HANG_SECONDS. Stores the password where the registry looks for it (the
keyring the test unlocked), opens the address book, searches NAME (the
GAL search is evolution-ews's ResolveNames), then waits for ADDRESS's
contact to get the photo evolution-ews fetches with GetUserPhoto. Prints
one JSON object: "connected" false when the book did not connect within
CONNECT_SECONDS of the start (the test starts a new session then), else the search's
contacts and the photo's bytes (base64) or null."""
import base64
import json
import sys
import time

import gi

gi.require_version("EDataServer", "1.2")
gi.require_version("EBook", "1.2")
gi.require_version("EBookContacts", "1.2")
from gi.repository import EBook, EBookContacts, EDataServer, GLib  # noqa

uid, password, name, address = sys.argv[1:5]
connect_seconds, hang_seconds = float(sys.argv[5]), float(sys.argv[6])
context = GLib.MainContext.default()


def spin_until(cond, seconds):
    """Runs the main loop until cond() is true or the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        while context.iteration(False):
            pass
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def answer(**what):
    print(json.dumps(what), flush=True)
    sys.exit(0)


registry = EDataServer.SourceRegistry.new_sync(None)
source = registry.ref_source(uid)
if source is None:
    answer(connected=False, error="the registry has no source " + uid)
source.store_password_sync(password, True, None)

opened = {}


def on_connected(_source, result):
    try:
        opened["client"] = EBook.BookClient.connect_finish(result)
    except GLib.Error as e:
        opened["error"] = e.message


EBook.BookClient.connect(source, 0, None, on_connected)
spin_until(lambda: opened, connect_seconds)
if "client" not in opened:
    answer(connected=False, error=opened.get("error", "no answer"))
client = opened["client"]
CONNECTED = EDataServer.SourceConnectionStatus.CONNECTED
if not spin_until(lambda: source.get_connection_status() == CONNECTED,
                  connect_seconds):
    answer(connected=False,
           error="status " + source.get_connection_status().value_nick)


def contact_summary(c):
    return {"uid": c.get_property("id"),
            "full_name": c.get_property("full-name"),
            "email": c.get_property("email-1")}


query = '(contains "full_name" "%s")' % name
_, found = client.get_contacts_sync(query, None)
_, nobody = client.get_contacts_sync(
    '(contains "full_name" "nobody-by-this-name")', None)


def photo_bytes():
    """ADDRESS's photo once evolution-ews has stored it (a file in the
    factory's cache, or inline), else None."""
    try:
        _, c = client.get_contact_sync(address, None)
    except GLib.Error:
        return None
    photo = c.get_property("photo")
    if photo is None:
        return None
    if photo.type == EBookContacts.ContactPhotoType.URI:
        path = GLib.filename_from_uri(photo.get_uri())[0]
        with open(path, "rb") as f:
            return f.read()
    return bytes(photo.get_inlined())


data = spin_until(photo_bytes, hang_seconds)
answer(connected=True, found=[contact_summary(c) for c in found],
       nobody=len(nobody),
       photo=base64.b64encode(data).decode() if data else None)
