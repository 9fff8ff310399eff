#!/usr/bin/python3
"""Parse-level compatibility of the master's Autodiscover and EWS answers
with a client we did not write: Debian's python3-exchangelib.

The C driver given as the first argument (tests/unit/ad_dump) runs the
real server functions. Requests are built by exchangelib itself
(Autodiscover.payload, GetUserSettings.wrap/get_payload) and the answers
go through exchangelib's own parsers (Autodiscover.from_bytes,
GetUserSettings.parse, Version.from_soap_header, the generic EWSService
response handling). Prints TAP; skips when exchangelib is missing.
"""

import subprocess
import sys

TESTS = []
FAILED = 0
DRIVER = None

BASE = "https://mail.contoso.com"
EWS_URL = BASE + "/EWS/Exchange.asmx"
AD_URL = BASE + "/autodiscover/autodiscover.svc"
ECP_PHOTO = ("PersonalSettings/EditAccount.aspx?rfr=olk&chgPhoto=1"
             "&exsvurl=1&realm=contoso.com")


def ok(cond, what, detail=None):
    global FAILED
    TESTS.append(what)
    if cond:
        print(f"ok {len(TESTS)} - {what}")
    else:
        FAILED += 1
        print(f"not ok {len(TESTS)} - {what}")
        if detail is not None:
            for line in str(detail).splitlines():
                print(f"#   {line}")
    sys.stdout.flush()


def is_eq(got, want, what):
    ok(got == want, what, f"got {got!r}, want {want!r}")


def local(elem):
    """The local name of an ElementTree/lxml element."""
    return elem.tag.rsplit("}", 1)[-1]


def run(mode, data=b""):
    """Runs the driver; returns (status, body bytes)."""
    p = subprocess.run([DRIVER, mode], input=data, capture_output=True,
                       check=True, timeout=30)
    status = 0
    for field in p.stderr.decode().split():
        if field.startswith("status="):
            status = int(field[len("status="):])
    return status, p.stdout


def test_pox():
    from exchangelib.autodiscover.discovery.pox import PoxAutodiscovery
    from exchangelib.autodiscover.properties import Autodiscover
    from exchangelib.errors import ErrorNonExistentMailbox

    status, body = run("pox", Autodiscover.payload("test1@contoso.com"))
    is_eq(status, 200, "POX: status 200")
    ad = Autodiscover.from_bytes(body)
    ok(ad.response is not None, "POX: Autodiscover.from_bytes finds Response")
    ad.raise_errors()
    r = ad.response
    is_eq(r.user.display_name, "Test User One", "POX: DisplayName")
    is_eq(r.autodiscover_smtp_address, "test1@contoso.com",
          "POX: AutoDiscoverSMTPAddress")
    is_eq(r.user.deployment_id, "0f0c4a8e-2a57-4c39-9d4f-1d6c2d3c9b11",
          "POX: DeploymentId")
    is_eq(r.account.action, "settings", "POX: Action settings")
    is_eq(r.account.microsoft_online, False, "POX: MicrosoftOnline False")
    types = [p.type for p in r.account.protocols]
    is_eq(types, ["EXCH", "EXPR"], "POX: protocols EXCH and EXPR")
    is_eq(r.protocol.type, "EXPR", "POX: exchangelib picks EXPR")
    is_eq(r.protocol.ews_url, EWS_URL, "POX: EwsUrl")
    is_eq(r.protocol.ecp_url, BASE + "/ecp/", "POX: EcpUrl")
    is_eq(r.protocol.ecp_url_photo, ECP_PHOTO,
          "POX: EcpUrl-photo with & decoded once")
    is_eq(r.protocol.ssl, True, "POX: SSL On")
    v = r.version
    ok(v is not None and v.api_version == "Exchange2013",
       "POX: version from ServerVersion is Exchange2013", v)
    ok(v is not None and (v.build.major_version, v.build.minor_version,
                          v.build.major_build) == (15, 0, 516),
       "POX: build 15.0.516", v)
    try:
        disc = PoxAutodiscovery(email="test1@contoso.com")
        resp = disc._step_5(ad=ad)
        _, proto = disc._build_response(ad_response=resp)
        is_eq(proto.service_endpoint, EWS_URL,
              "POX: exchangelib's discovery builds a Protocol for EwsUrl")
        is_eq(proto.config.version.api_version, "Exchange2013",
              "POX: discovered version Exchange2013")
    except Exception as e:  # noqa: BLE001
        ok(False, "POX: exchangelib's discovery steps accept the answer",
           repr(e))

    _, body = run("pox", Autodiscover.payload("test2@contoso.com"))
    is_eq(Autodiscover.from_bytes(body).response.user.display_name,
          "Test & <User> Two", "POX: escaped display name decodes")

    _, body = run("pox", Autodiscover.payload("nobody@contoso.com"))
    ad = Autodiscover.from_bytes(body)
    ok(ad.response is None and ad.error_response is not None,
       "POX 500: parsed as an error response")
    is_eq(ad.error_response.error.code, "500", "POX 500: ErrorCode")
    try:
        ad.raise_errors()
        ok(False, "POX 500: raise_errors gives ErrorNonExistentMailbox")
    except ErrorNonExistentMailbox:
        ok(True, "POX 500: raise_errors gives ErrorNonExistentMailbox")
    except Exception as e:  # noqa: BLE001
        ok(False, "POX 500: raise_errors gives ErrorNonExistentMailbox",
           repr(e))

    bad_schema = Autodiscover.payload("test1@contoso.com").replace(
        b"outlook/responseschema/2006a", b"mobilesync/responseschema/2006")
    _, body = run("pox", bad_schema)
    is_eq(Autodiscover.from_bytes(body).error_response.error.code, "601",
          "POX 601: ErrorCode")
    _, body = run("pox", b"garbage")
    ad = Autodiscover.from_bytes(body)
    is_eq(ad.error_response.error.code, "600", "POX 600: ErrorCode")
    is_eq(ad.error_response.error.message, "Invalid Request",
          "POX 600: Message")


def gus_service():
    from exchangelib.autodiscover.protocol import AutodiscoverProtocol
    from exchangelib.configuration import Configuration
    from exchangelib.services import GetUserSettings

    proto = AutodiscoverProtocol(config=Configuration(service_endpoint=AD_URL))
    return GetUserSettings(protocol=proto), proto


def soap(svc, proto, users, settings):
    """An exchangelib-built GetUserSettings request through our server."""
    payload = svc.wrap(content=svc.get_payload(users=users, settings=settings),
                       api_version=proto.config.version.api_version)
    return run("soap", payload)


def test_soap():
    from exchangelib.errors import ErrorInvalidServerVersion
    from exchangelib.errors import ErrorNonExistentMailbox
    from exchangelib.properties import UserResponse
    from exchangelib.util import DummyResponse
    from exchangelib.version import Version

    # §2.4: exchangelib has no photo settings; add them (and a name the
    # server does not know) the way a caller would.
    extra = {
        "external_photos_url": "ExternalPhotosUrl",
        "internal_photos_url": "InternalPhotosUrl",
        "external_ecp_photo_url": "ExternalEcpPhotoUrl",
        "internal_ecp_photo_url": "InternalEcpPhotoUrl",
        "ecp_photo_url_fragment": "EcpPhotoUrlFragment",
        "bogus_setting": "BogusSetting",
    }
    UserResponse.SETTINGS_MAP.update(extra)
    UserResponse.REVERSE_SETTINGS_MAP = {
        v: k for k, v in UserResponse.SETTINGS_MAP.items()}

    svc, proto = gus_service()

    # What exchangelib's own SOAP discovery asks for (AutodiscoverProtocol
    # .get_user_settings); any UserSettingError would fail it.
    default = ["user_dn", "mailbox_dn", "user_display_name",
               "auto_discover_smtp_address", "external_ews_url",
               "ews_supported_schemas"]
    status, body = soap(svc, proto, ["test1@contoso.com"], default)
    is_eq(status, 200, "SOAP: status 200")
    header, _ = svc._get_soap_parts(response=DummyResponse(content=body))
    try:
        v = Version.from_soap_header(
            requested_api_version=proto.config.version.api_version,
            header=header)
        is_eq(v.api_version, "Exchange2013",
              "SOAP: ServerVersionInfo header gives Exchange2013")
        is_eq((v.build.major_version, v.build.minor_version,
               v.build.major_build, v.build.minor_build), (15, 0, 516, 32),
              "SOAP: ServerVersionInfo build")
    except Exception as e:  # noqa: BLE001
        ok(False, "SOAP: ServerVersionInfo header parses", repr(e))
    res = list(svc.parse(body))
    is_eq(len(res), 1, "SOAP: one UserResponse")
    ur = res[0]
    ok(isinstance(ur, UserResponse), "SOAP: parsed as UserResponse", ur)
    try:
        ur.raise_errors()
        ok(True, "SOAP: exchangelib's default settings all answered")
    except Exception as e:  # noqa: BLE001
        ok(False, "SOAP: exchangelib's default settings all answered",
           repr(e))
    # exchangelib leaves error_code unset on success.
    ok(ur.error_code in (None, "NoError"), "SOAP: no user error",
       ur.error_code)
    is_eq(ur.ews_url, EWS_URL, "SOAP: external_ews_url")
    is_eq(ur.autodiscover_smtp_address, "test1@contoso.com",
          "SOAP: auto_discover_smtp_address")
    is_eq(ur.user_settings.get("user_display_name"), "Test User One",
          "SOAP: user_display_name")
    ok(ur.version is not None and ur.version.api_version == "Exchange2013",
       "SOAP: version from EwsSupportedSchemas", ur.version)
    is_eq(sorted(ur.user_settings), sorted(default),
          "SOAP: exactly the requested settings")

    photo = ["external_photos_url", "internal_photos_url",
             "external_ecp_photo_url", "internal_ecp_photo_url",
             "ecp_photo_url_fragment", "bogus_setting"]
    _, body = soap(svc, proto, ["test2@contoso.com"], photo)
    ur = list(svc.parse(body))[0]
    is_eq(ur.user_settings.get("external_photos_url"), EWS_URL + "/s",
          "SOAP: ExternalPhotosUrl")
    is_eq(ur.user_settings.get("internal_photos_url"), EWS_URL + "/s",
          "SOAP: InternalPhotosUrl")
    is_eq(ur.user_settings.get("external_ecp_photo_url"),
          BASE + "/ecp/" + ECP_PHOTO, "SOAP: ExternalEcpPhotoUrl")
    is_eq(ur.user_settings.get("ecp_photo_url_fragment"), ECP_PHOTO,
          "SOAP: EcpPhotoUrlFragment")
    is_eq(list(ur.user_settings_errors), ["bogus_setting"],
          "SOAP: unknown setting in UserSettingErrors")
    is_eq(ur.user_settings_errors["bogus_setting"][0], "InvalidSetting",
          "SOAP: InvalidSetting")

    _, body = soap(svc, proto, ["nobody@contoso.com"], ["user_display_name"])
    ur = list(svc.parse(body))[0]
    is_eq(ur.error_code, "InvalidUser", "SOAP: InvalidUser")
    try:
        ur.raise_errors()
        ok(False, "SOAP: InvalidUser raises ErrorNonExistentMailbox")
    except ErrorNonExistentMailbox:
        ok(True, "SOAP: InvalidUser raises ErrorNonExistentMailbox")

    _, body = soap(svc, proto, ["test2@contoso.com", "nobody@contoso.com",
                                "test1@contoso.com"],
                   ["auto_discover_smtp_address"])
    res = list(svc.parse(body))
    is_eq([(r.error_code or "NoError",
            r.autodiscover_smtp_address if r.user_settings else None)
           for r in res],
          [("NoError", "test2@contoso.com"), ("InvalidUser", None),
           ("NoError", "test1@contoso.com")],
          "SOAP: users answered in request order")

    other = svc.wrap(content=svc.get_payload(users=["test1@contoso.com"],
                                             settings=["user_dn"]),
                     api_version="Exchange2013").replace(
        b"Autodiscover/GetUserSettings<", b"Autodiscover/GetDomainSettings<")
    status, body = run("soap", other)
    is_eq(status, 500, "SOAP fault: unknown action is HTTP 500")
    try:
        list(svc.parse(body))
        ok(False, "SOAP fault: read as ErrorInvalidServerVersion")
    except ErrorInvalidServerVersion:
        ok(True, "SOAP fault: read as ErrorInvalidServerVersion")
    except Exception as e:  # noqa: BLE001
        ok(False, "SOAP fault: read as ErrorInvalidServerVersion", repr(e))


def test_ews():
    from exchangelib.errors import TransportError
    from exchangelib.services.common import EWSService
    from exchangelib.util import MNS, TNS, DummyResponse
    from exchangelib.version import Version

    class GetUserPhoto(EWSService):
        """Just enough of a service to reuse exchangelib's parsing."""
        SERVICE_NAME = "GetUserPhoto"
        returns_elements = False

    svc = GetUserPhoto.__new__(GetUserPhoto)
    svc.streaming = False

    _, body = run("ews-photo")
    header, soap_body = svc._get_soap_parts(
        response=DummyResponse(content=body))
    v = Version.from_soap_header(requested_api_version="Exchange2013",
                                 header=header)
    is_eq(v.api_version, "Exchange2013",
          "EWS: ServerVersionInfo attributes parse")
    msgs = svc._get_soap_messages(body=soap_body)
    is_eq(len(msgs), 1, "EWS: GetUserPhotoResponse found directly in Body")
    is_eq(svc._get_element_container(message=msgs[0]), msgs[0],
          "EWS: Success/NoError accepted")
    names = [local(c) for c in msgs[0]]
    is_eq(names, ["ResponseCode", "HasChanged", "PictureData", "ContentType"],
          "EWS: children in the EWS Managed API order")
    ok(msgs[0].find(f"{{{MNS}}}PictureData").text.startswith("/9j/"),
       "EWS: PictureData base64 JPEG")

    _, body = run("ews-unchanged")
    _, soap_body = svc._get_soap_parts(response=DummyResponse(content=body))
    m = svc._get_soap_messages(body=soap_body)[0]
    is_eq([local(c) for c in m],
          ["ResponseCode", "HasChanged", "PictureData"],
          "EWS unchanged: PictureData present, no ContentType")
    is_eq(m.find(f"{{{MNS}}}HasChanged").text, "false",
          "EWS unchanged: HasChanged false")

    _, body = run("ews-error")
    _, soap_body = svc._get_soap_parts(response=DummyResponse(content=body))
    m = svc._get_soap_messages(body=soap_body)[0]
    try:
        svc._get_element_container(message=m)
        ok(False, "EWS error: raised with its ResponseCode")
    except TransportError as e:
        ok("ErrorInvalidPhotoSize" in str(e) and "not valid" in str(e),
           "EWS error: raised with its ResponseCode and MessageText", e)
    except Exception as e:  # noqa: BLE001
        ok(False, "EWS error: raised with its ResponseCode", repr(e))
    ok(header.find(f"{{{TNS}}}ServerVersionInfo") is not None,
       "EWS: ServerVersionInfo in the types namespace")


def main():
    global DRIVER
    if len(sys.argv) != 2:
        print("usage: exchangelib_parse.py AD_DUMP", file=sys.stderr)
        return 2
    DRIVER = sys.argv[1]
    try:
        import exchangelib  # noqa: F401
    except ImportError as e:
        print(f"1..0 # SKIP exchangelib not available: {e}")
        return 0
    for t in (test_pox, test_soap, test_ews):
        try:
            t()
        except Exception as e:  # noqa: BLE001 - one failure, keep going
            ok(False, f"{t.__name__} ran to the end", repr(e))
    print(f"1..{len(TESTS)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
