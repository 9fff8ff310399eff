"""A real EWS client we did not write, Debian's python3-exchangelib,
against photosync master serve: its POX Autodiscover (probe, auth-type
guess, authenticated POST, parsing) and its SOAP GetUserSettings service,
with the photo setting names added to its maps as the reference says;
then its Account on the EWS URL the POX answer gave (its version guess
from ServerVersionInfo, the root and inbox folders by GetFolder), its
Account(autodiscover=True) (POX discovery from its cache of the domain's
endpoint) and its ResolveNames."""
import os
import tempfile

from psync import Master, done, is_eq, ok, tmpdir

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("anna.berg@contoso.com", "pw-two", name="Anna Berg")
m.add_mailbox("bertil@contoso.com", "pw-three", name="Bertil Andersson")
m.start()
# exchangelib verifies TLS through requests; trust the master's cert.
os.environ["REQUESTS_CA_BUNDLE"] = m.ca
# exchangelib keeps an Autodiscover cache file in the temporary directory
# it sees when imported: this test's own, removed at exit.
tempfile.tempdir = tmpdir("exchangelib")

from exchangelib import DELEGATE, Account, Credentials  # noqa: E402
from exchangelib.errors import ErrorNameResolutionNoResults  # noqa: E402
from exchangelib.autodiscover.discovery.pox import PoxAutodiscovery  # noqa
from exchangelib.autodiscover.protocol import AutodiscoverProtocol  # noqa
from exchangelib.configuration import Configuration  # noqa: E402
from exchangelib.properties import UserResponse  # noqa: E402
from exchangelib.transport import BASIC  # noqa: E402
from exchangelib.services import GetUserSettings  # noqa: E402

tempfile.tempdir = None
creds = Credentials("test1@contoso.com", "pw-one")
# exchangelib checks that an Autodiscover host resolves in DNS (dnspython,
# not /etc/hosts), with the port as part of the name; loopback has no DNS
# here, so that one check is skipped. Everything else is exchangelib's own.
PoxAutodiscovery._ensure_valid_hostname = lambda self, url: None

# ---- POX ----
d = PoxAutodiscovery(email="test1@contoso.com", credentials=creds)
valid, ad = d._attempt_response(url=m.url("/Autodiscover/Autodiscover.xml"))
ok(valid, "exchangelib accepts the POX answer")
ews_url = m.url("/EWS/Exchange.asmx")
if valid:
    ews_url = ad.response.protocol.ews_url
    resp = ad.response
    is_eq(resp.protocol.ews_url, m.url("/EWS/Exchange.asmx"),
          "exchangelib reads EwsUrl (EXPR)")
    ok(resp.version is not None, "exchangelib reads the server version")
    is_eq(resp.autodiscover_smtp_address, "test1@contoso.com",
          "exchangelib reads AutoDiscoverSMTPAddress")
    is_eq(resp.user.display_name, "Test One", "exchangelib reads the name")
bad = PoxAutodiscovery(email="test1@contoso.com",
                       credentials=Credentials("test1@contoso.com", "no"))
valid, ad = bad._attempt_response(url=m.url("/autodiscover/autodiscover.xml"))
ok(not valid, "exchangelib gets no answer with a wrong password")

# ---- SOAP GetUserSettings ----
PHOTO = {"external_photos_url": "ExternalPhotosUrl",
         "internal_photos_url": "InternalPhotosUrl",
         "external_ecp_photo_url": "ExternalEcpPhotoUrl",
         "internal_ecp_photo_url": "InternalEcpPhotoUrl"}
UserResponse.SETTINGS_MAP.update(PHOTO)
UserResponse.REVERSE_SETTINGS_MAP.update({v: k for k, v in PHOTO.items()})
proto = AutodiscoverProtocol(config=Configuration(
    service_endpoint=m.url("/autodiscover/autodiscover.svc"),
    credentials=creds, auth_type=BASIC))
settings = ["external_ews_url", "user_display_name",
            "external_photos_url", "external_ecp_photo_url"]
res = list(GetUserSettings(protocol=proto).call(
    users=["test1@contoso.com"], settings=settings))
ok(len(res) == 1 and isinstance(res[0], UserResponse),
   "exchangelib parses GetUserSettingsResponse")
if res and isinstance(res[0], UserResponse):
    u = res[0]
    is_eq(u.user_settings.get("external_ews_url"), m.url("/EWS/Exchange.asmx"),
          "ExternalEwsUrl via exchangelib")
    is_eq(u.user_settings.get("external_photos_url"),
          m.url("/EWS/Exchange.asmx/s"), "ExternalPhotosUrl via exchangelib")
    ok("chgPhoto=1" in (u.user_settings.get("external_ecp_photo_url") or ""),
       "ExternalEcpPhotoUrl via exchangelib")
    is_eq(u.user_settings.get("user_display_name"), "Test One",
          "UserDisplayName via exchangelib")
res = list(GetUserSettings(protocol=proto).call(
    users=["ghost@contoso.com"], settings=["external_ews_url"]))
ok(len(res) == 1 and getattr(res[0], "error_code", None) == "InvalidUser",
   "exchangelib reports an unknown address as InvalidUser (%r)" %
   (res[0] if res else None,))

# ---- Account on the EWS URL the POX answer gave ----
account = Account("test1@contoso.com", credentials=creds,
                  autodiscover=False, access_type=DELEGATE,
                  config=Configuration(service_endpoint=ews_url,
                                       credentials=creds, auth_type=BASIC))
is_eq((account.version.build.major_version, account.version.api_version),
      (15, "Exchange2013"), "exchangelib's version guess: Exchange 2013")
root = account.root
ok(root is not None and root.id, "exchangelib's root folder (GetFolder)")
is_eq(account.root.child_folder_count, 0, "an empty mailbox")
is_eq(account.inbox.name, "Inbox", "exchangelib's inbox")
is_eq(account.inbox.total_count, 0, "... holding nothing")

# ---- Account(autodiscover=True) ----
# exchangelib's own discovery, from its cache of a domain's Autodiscover
# endpoint (what it keeps after a first discovery): contoso.com has no
# DNS here, so the cache is filled with the master's POX endpoint.
from exchangelib.autodiscover import autodiscover_cache  # noqa: E402
autodiscover_cache[("contoso.com", creds)] = AutodiscoverProtocol(
    config=Configuration(service_endpoint=m.url(
        "/Autodiscover/Autodiscover.xml"), credentials=creds,
        auth_type=BASIC))
discovered = Account("test1@contoso.com", credentials=creds,
                     autodiscover=True, access_type=DELEGATE)
is_eq(discovered.protocol.service_endpoint, m.url("/EWS/Exchange.asmx"),
      "Account(autodiscover=True) finds the EWS URL")
is_eq(discovered.root.name, "Root", "... and its root folder")

# ---- ResolveNames ----
found = account.protocol.resolve_names(["anna"])
is_eq([(x.name, x.email_address) for x in found],
      [("Anna Berg", "anna.berg@contoso.com")],
      "exchangelib resolves a name")
found = account.protocol.resolve_names(["bertil@contoso.com"],
                                       return_full_contact_data=True)
ok(len(found) == 1 and found[0][1].display_name == "Bertil Andersson" and
   found[0][0].email_address == "bertil@contoso.com",
   "exchangelib resolves an address, with the contact's name")
found = account.protocol.resolve_names(["an"])
is_eq(sorted(x.email_address for x in found),
      ["anna.berg@contoso.com", "bertil@contoso.com"],
      "several people: exchangelib gets them all")
found = account.protocol.resolve_names(["nobody"])
ok(found == [] or all(isinstance(x, ErrorNameResolutionNoResults)
                      for x in found),
   "no one: exchangelib finds nothing (%r)" % (found,))
m.stop()
done()
