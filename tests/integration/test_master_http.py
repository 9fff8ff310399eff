"""photosync master serve over TLS: Autodiscover POX and SOAP, the S2S
metadata document, GetUserPhoto REST and SOAP with ETags, Basic
authentication, request ids, limits and XML attacks."""
import base64
import hashlib
import os
import re
import socket
import ssl

from psync import (Master, basic, done, identify, is_eq, make_image, ok,
                   tmpdir, write)

work = tmpdir("http")
m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("test2@contoso.com", "pw-two")
m.add_mailbox("nophoto@contoso.com", "pw-three")
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "a.jpg"), "900x900"))
m.cmd("photo", "set", "test2@contoso.com", "--file",
      make_image(os.path.join(work, "b.png"), "640x480"))
m.start()
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}

# ---- TLS ----
try:
    ssl.create_default_context().wrap_socket(
        socket.create_connection(("127.0.0.1", m.port)),
        server_hostname="127.0.0.1")
    ok(False, "an unknown CA is refused by a verifying client")
except ssl.SSLError:
    ok(True, "serves TLS with the state's certificate")

# ---- metadata ----
r = m.get("/autodiscover/metadata/json/1")
is_eq(r.status, 200, "metadata: 200 without authentication")
md = r.json()
is_eq(md.get("serviceName"), "00000002-0000-0ff1-ce00-000000000000",
      "metadata: Exchange's principal")
ok(md.get("issuer", "").endswith("@" + md.get("realm", "-")),
   "metadata: issuer is principal@realm")
key = md["keys"][0]
der = base64.b64decode(key["keyvalue"]["value"])
pem = open(os.path.join(m.dir, "s2s-cert.pem")).read()
is_eq(der, ssl.PEM_cert_to_DER_cert(pem), "metadata: the signing cert")
is_eq(key["keyinfo"]["x5t"], base64.b64encode(hashlib.sha1(der).digest())
      .decode(), "metadata: x5t is the SHA-1 thumbprint of the cert")
realm = md["realm"]

# ---- Autodiscover POX ----
r = m.get("/autodiscover/autodiscover.xml")
is_eq(r.status, 401, "POX GET probe: 401 without credentials")
is_eq(r.header("X-SOAP-Enabled"), "True", "probe: X-SOAP-Enabled")
is_eq(r.header("X-OAuth-Enabled"), "True", "probe: X-OAuth-Enabled")
chall = r.header_all("WWW-Authenticate")
ok(any(c.startswith('Bearer realm="%s"' % realm) and
       'client_id="00000002-0000-0ff1-ce00-000000000000"' in c
       for c in chall), "401 carries the Bearer challenge, realm first")
ok(any(c.startswith("Basic") for c in chall), "401 carries Basic too")

POX = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http:/'
       '/schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/'
       '2006"><Request><EMailAddress>%s</EMailAddress><AcceptableResponseSc'
       'hema>http://schemas.microsoft.com/exchange/autodiscover/outlook/res'
       'ponseschema/2006a</AcceptableResponseSchema></Request></Autodiscove'
       'r>')
r = m.post("/Autodiscover/Autodiscover.xml", POX % "test2@contoso.com", T1)
is_eq(r.status, 200, "POX: 200 (path matched case-insensitively)")
is_eq(r.header("Content-Type"), "text/xml; charset=utf-8",
      "POX: exact content type")
body = r.text()
ews = m.url("/EWS/Exchange.asmx")
ok(re.search(r"<EwsUrl>%s</EwsUrl>" % re.escape(ews), body),
   "POX: EwsUrl on one line")
ok("<EcpUrl-photo>PersonalSettings/EditAccount.aspx?rfr=olk&amp;chgPhoto=1"
   "&amp;exsvurl=1&amp;realm=contoso.com</EcpUrl-photo>" in body,
   "POX: EcpUrl-photo with single escaping")
r = m.post("/autodiscover/autodiscover.xml", POX % "ghost@contoso.com", T1)
ok(r.status == 200 and "<ErrorCode>500</ErrorCode>" in r.text(),
   "POX: unknown address gives error 500")
r = m.post("/autodiscover/autodiscover.xml", "<nonsense", T1)
ok("<ErrorCode>600</ErrorCode>" in r.text(), "POX: garbage gives 600")
r = m.post("/autodiscover/autodiscover.xml", POX % "test1@contoso.com",
           {"Authorization": basic("test1@contoso.com", "wrong")})
is_eq(r.status, 401, "POX: a wrong password is refused")
r = m.post("/autodiscover/autodiscover.xml", POX % "test1@contoso.com",
           {"Authorization": basic("ghost@contoso.com", "x")})
is_eq(r.status, 401, "POX: an unknown user is refused")

# ---- Autodiscover SOAP ----
SOAP = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="ht'
        'tp://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="'
        'http://www.w3.org/2005/08/addressing" xmlns:soap="http://schemas.'
        'xmlsoap.org/soap/envelope/"><soap:Header><a:RequestedServerVersion'
        '>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas'
        '.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSett'
        'ings</wsa:Action></soap:Header><soap:Body><a:GetUserSettingsReques'
        'tMessage><a:Request><a:Users><a:User><a:Mailbox>%s</a:Mailbox></a:'
        'User></a:Users><a:RequestedSettings><a:Setting>ExternalPhotosUrl</'
        'a:Setting><a:Setting>ExternalEcpPhotoUrl</a:Setting><a:Setting>Bog'
        'us</a:Setting></a:RequestedSettings></a:Request></a:GetUserSetting'
        'sRequestMessage></soap:Body></soap:Envelope>')
r = m.post("/autodiscover/autodiscover.svc", SOAP % "test1@contoso.com", T1)
is_eq(r.status, 200, "SOAP: 200")
body = r.text()
ok("<Value>%s/s</Value>" % ews in body, "SOAP: ExternalPhotosUrl")
ok("EditAccount.aspx?rfr=olk&amp;chgPhoto=1" in body,
   "SOAP: ExternalEcpPhotoUrl")
ok("ExternalEwsUrl" not in body, "SOAP: only the settings asked for")
ok("InvalidSetting" in body and "Bogus" in body,
   "SOAP: an unknown setting goes to UserSettingErrors")
r = m.post("/autodiscover/autodiscover.svc", SOAP % "ghost@contoso.com", T1)
ok("InvalidUser" in r.text(), "SOAP: unknown address is InvalidUser")

# ---- XML attacks ----
xxe = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/'
       'passwd">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress>'
       '</Request></Autodiscover>')
r = m.post("/autodiscover/autodiscover.xml", xxe, T1)
ok("root:" not in r.text() and "<ErrorCode>600</ErrorCode>" in r.text(),
   "POX: external entity refused, nothing read")
lol = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
for i in range(1, 10):
    lol += '<!ENTITY %s "%s">' % (chr(97 + i), ("&%s;" % chr(96 + i)) * 10)
lol += ']><l>&j;</l>'
r = m.post("/autodiscover/autodiscover.svc", lol, T1)
ok(r.status == 400 and len(r.body) < 10000,
   "SOAP: entity expansion refused (%d)" % r.status)
r = m.post("/ews/exchange.asmx", xxe, T1)
ok(r.status in (400, 500) and "root:" not in r.text(),
   "EWS: external entity refused")
r = m.post("/autodiscover/autodiscover.svc", "<a>" * 100000, T1)
is_eq(r.status, 400, "SOAP: a deeply nested document is refused")
# Announce a body larger than the server takes at all (an image upload
# and its form, 20 MiB and a little) and see it refused before it arrives.
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(("POST /autodiscover/autodiscover.svc HTTP/1.1\r\nHost: x\r\n"
              "Authorization: %s\r\nContent-Length: %d\r\n\r\n" %
              (T1["Authorization"], 32 << 20)).encode() + b"x" * 1000)
first = sock.recv(200).decode("latin-1")
sock.close()
ok(first.startswith("HTTP/1.1 413"), "an oversized body is refused with 413"
   " before it arrives (%s)" % first.split("\r\n")[0])
# A complete 2 MiB body: the server takes it, the XML endpoints do not.
big = "<a>" + "x" * (2 << 20) + "</a>"
for path in ("/autodiscover/autodiscover.svc",
             "/autodiscover/autodiscover.xml", "/ews/exchange.asmx"):
    r = m.post(path, big, T1)
    is_eq(r.status, 413, "a complete 2 MiB XML body: 413 at " + path)
r = m.get("/autodiscover/metadata/json/1")
is_eq(r.status, 200, "the server still answers after the attacks")

# ---- GetUserPhoto REST ----
P = "/ews/exchange.asmx/s/GetUserPhoto?email=%s&size=%s"
r = m.get(P % ("test1@contoso.com", "HR648x648"), T1)
is_eq(r.status, 200, "REST: 200")
is_eq(r.header("Content-Type"), "image/jpeg", "REST: image/jpeg")
etag = r.header("ETag")
ok(etag and re.fullmatch(r'"[0-9a-f]{16,}"', etag), "REST: a quoted ETag")
ok("private" in (r.header("Cache-Control") or "") and r.header("Expires"),
   "REST: cache headers")
write(os.path.join(work, "got.jpg"), r.body)
is_eq(identify(os.path.join(work, "got.jpg"))[:2], (648, 648),
      "REST: HR648x648 is 648x648")
r = m.get(P % ("test1@contoso.com", "HR648x648"),
          dict(T1, **{"If-None-Match": etag}))
is_eq(r.status, 304, "REST: 304 on a matching If-None-Match")
is_eq(r.header("ETag"), etag, "REST: 304 repeats the ETag")
is_eq(r.body, b"", "REST: 304 has no body")
r = m.get(P % ("test1@contoso.com", "HR648x648"),
          dict(T1, **{"If-None-Match": '"0000"'}))
is_eq(r.status, 200, "REST: 200 on a stale If-None-Match")
r = m.get("/EWS/Exchange.asmx/s/GetUserPhoto?email=test2@contoso.com&"
          "size=hr96X96", T1)
ok(r.status == 200 and len(r.body) > 100,
   "REST: path and size code case-insensitive")
r = m.get(P % ("nophoto@contoso.com", "HR96x96"), T1)
is_eq(r.status, 404, "REST: 404 when the mailbox has no photo")
r = m.get(P % ("ghost@contoso.com", "HR96x96"), T1)
is_eq(r.status, 404, "REST: 404 for an unknown address")
r = m.get(P % ("test1@contoso.com", "HR100x100"), T1)
is_eq(r.status, 400, "REST: 400 for an invalid size")
r = m.get(P % ("../../etc/passwd", "HR96x96"), T1)
is_eq(r.status, 400, "REST: 400 for an address with path characters")
r = m.get(P % ("test1@contoso.com", "HR96x96"))
is_eq(r.status, 401, "REST: 401 without credentials")
r = m.get(P % ("test1@contoso.com", "HR96x96"),
          {"Authorization": "Bearer not.a.token"})
is_eq(r.status, 401, "REST: 401 for a garbage bearer token")
ok(r.header("x-ms-diagnostics"), "401 says why in x-ms-diagnostics")

# ---- request ids ----
cid = "5b2a0c0e-1111-4222-8333-444455556666"
r = m.get(P % ("test1@contoso.com", "HR96x96"),
          dict(T1, **{"client-request-id": cid,
                      "return-client-request-id": "true"}))
is_eq(r.header("client-request-id"), cid, "client-request-id echoed")
ok(re.search(r"\bclient_req=%s\b" % cid, m.server.logs()),
   "the log line carries that id as client_req")
r = m.get(P % ("test1@contoso.com", "HR96x96"), T1)
rid = r.header("request-id")
ok(rid and re.fullmatch(r"[0-9a-f]{16}", rid) and
   ("req=%s" % rid) in m.server.logs(), "a fresh request id otherwise")

# ---- GetUserPhoto SOAP ----
EWS = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="h'
       'ttp://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.m'
       'icrosoft.com/exchange/services/2006/types" xmlns:m="http://schemas.'
       'microsoft.com/exchange/services/2006/messages"><soap:Header><t:Requ'
       'estServerVersion Version="Exchange2013"/></soap:Header><soap:Body><'
       'm:GetUserPhoto><m:Email>%s</m:Email><m:SizeRequested>%s</m:SizeRequ'
       'ested></m:GetUserPhoto></soap:Body></soap:Envelope>')
r = m.post("/EWS/Exchange.asmx", EWS % ("test1@contoso.com", "HR240x240"),
           T1)
body = r.text()
ok(r.status == 200 and "<HasChanged>true</HasChanged>" in body,
   "SOAP photo: HasChanged true")
pic = re.search(r"<PictureData>([^<]*)</PictureData>", body)
ok(pic and base64.b64decode(pic.group(1))[:2] == b"\xff\xd8",
   "SOAP photo: PictureData is a JPEG")
ok(body.index("<HasChanged>") < body.index("<PictureData>") <
   body.index("<ContentType>image/jpeg</ContentType>"),
   "SOAP photo: HasChanged, PictureData, ContentType in order")
r = m.post("/EWS/Exchange.asmx", EWS % ("test1@contoso.com", "HR240x240"),
           dict(T1, **{"If-None-Match": etag}))
body = r.text()
ok(r.status == 200 and "<HasChanged>false</HasChanged>" in body and
   re.search(r"<PictureData\s*/>|<PictureData></PictureData>", body),
   "SOAP photo: unchanged gives HasChanged false, empty PictureData")
r = m.post("/EWS/Exchange.asmx", EWS % ("test1@contoso.com", "HR1x1"), T1)
ok("ErrorInvalidPhotoSize" in r.text(), "SOAP photo: invalid size error")
r = m.post("/EWS/Exchange.asmx", EWS % ("nophoto@contoso.com", "HR96x96"),
           T1)
is_eq(r.status, 404, "SOAP photo: 404 when there is no photo")

# ---- changes made while serving are visible at once ----
m.cmd("photo", "set", "test1@contoso.com", "--file",
      make_image(os.path.join(work, "c.jpg"), "500x500"))
r = m.get(P % ("test1@contoso.com", "HR648x648"),
          dict(T1, **{"If-None-Match": etag}))
ok(r.status == 200 and r.header("ETag") != etag,
   "a photo set while serving is served at once, with a new ETag")
is_eq(identify(write(os.path.join(work, "c2.jpg"), r.body))[:2],
      (500, 500), "the new photo is not upscaled")
m.cmd("mailbox", "remove", "test2@contoso.com")
r = m.get(P % ("test2@contoso.com", "HR96x96"), T1)
is_eq(r.status, 404, "a removed mailbox is gone at once")

# ---- routing ----
is_eq(m.get("/nothing").status, 404, "unknown path: 404")
is_eq(m.get("/ews/exchange.asmx").status, 401, "GET on the SOAP URL: 401")
is_eq(m.get("/ews/exchange.asmx", T1).status, 200,
      "signed in, GET on the SOAP URL: 200 (a page)")

# ---- secrets never reach the log ----
logs = m.server.logs()
ok("pw-one" not in logs and basic("test1@contoso.com", "pw-one")[6:]
   not in logs, "no password or credential in the log")
status = m.stop()
ok(not m.server.killed, "stops on SIGTERM (without a SIGKILL)")
is_eq(status, 0, "exits 0 after SIGTERM")
done()
