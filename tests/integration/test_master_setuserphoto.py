"""EWS SetUserPhoto at the master (Exchange 2016's operation): the owner
sets their photo with a base64 image, small or large (a body past the
XML limit, through the body gate and read off the loop), through the
change-photo page's pipeline and limits; another mailbox's address, a
file that is not an image, an image over the upload limit and a
malformed request are refused with EWS error responses and change
nothing; a change reaches a partner portal by its change notice, as any
photo change does (a Graph PUT too)."""
import base64
import os
import re
import socket
import ssl

from psync import (LogMark, basic, done, identify, is_eq, make_image, ok,
                   photo_path, request, tmpdir, wait_for, write, wired)

work = tmpdir("setuserphoto")
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
m, p = wired()

SET = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="h'
       'ttp://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.m'
       'icrosoft.com/exchange/services/2006/types" xmlns:m="http://schemas.'
       'microsoft.com/exchange/services/2006/messages"><soap:Header><t:Requ'
       'estServerVersion Version="Exchange2016"/></soap:Header><soap:Body><'
       'm:SetUserPhoto><m:Email>%s</m:Email><m:Content>%s</m:Content>'
       '<m:TypeOfPhoto>UserPhoto</m:TypeOfPhoto></m:SetUserPhoto>'
       '</soap:Body></soap:Envelope>')
GET = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="h'
       'ttp://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.'
       'microsoft.com/exchange/services/2006/messages"><soap:Body><m:GetUse'
       'rPhoto><m:Email>%s</m:Email><m:SizeRequested>HR648x648</m:SizeReque'
       'sted></m:GetUserPhoto></soap:Body></soap:Envelope>')


def set_photo(email, data, headers=T1, wrap=False):
    b64 = base64.b64encode(data).decode()
    if wrap:
        b64 = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    return m.post("/EWS/Exchange.asmx", SET % (email, b64), headers)


def stored(email):
    """(etag, the 648 size's bytes) as GetUserPhoto answers them."""
    r = m.post("/EWS/Exchange.asmx", GET % email, T1)
    pic = re.search(r"<PictureData>([^<]*)</PictureData>", r.text())
    return r.header("ETag"), base64.b64decode(pic.group(1)) if pic else b""


def response_code(r):
    g = re.search(r"<ResponseCode>([^<]*)</ResponseCode>", r.text())
    return g.group(1) if g else None


def message(r):
    g = re.search(r"<MessageText>([^<]*)</MessageText>", r.text())
    return g.group(1) if g else ""


def portal_etag():
    return p.get(photo_path("contoso\\test1", "M"),
                 as_user="contoso\\test2").header("ETag")


# ---- the owner sets a small photo ----
p.owner_photo("contoso\\test1")            # the portal knows test1
seen = portal_etag()
before, _ = stored("test1@contoso.com")
mark = LogMark(m)
small = open(make_image(os.path.join(work, "s.jpg"), "500x500",
                        extra=["-negate"]), "rb").read()
r = set_photo("test1@contoso.com", small)
is_eq(r.status, 200, "SetUserPhoto: 200")
body = r.text()
ok('<SetUserPhotoResponse ResponseClass="Success"' in body and
   response_code(r) == "NoError", "SetUserPhoto: Success, NoError")
ok("ServerVersionInfo" in body, "SetUserPhoto: ServerVersionInfo")
after, pic = stored("test1@contoso.com")
ok(after and after != before, "the photo has a new ETag")
is_eq(identify(write(os.path.join(work, "a.jpg"), pic))[:2], (500, 500),
      "GetUserPhoto answers the new photo (500 pixels, not upscaled)")
ok(mark.wait(r"ev=photo\.client_set email=\"?test1@contoso\.com\"? "
             r"via=ews"), "logged as photo.client_set via=ews")
ok(wait_for(lambda: portal_etag() != seen),
   "the change notice reached the portal: test2 sees the new photo")
ok(mark.wait(r"ev=notify\.delivered partner=SharePoint "
             r"email=test1@contoso\.com"), "notify.delivered for it")

# ---- a large one: past the XML limit, read off the loop ----
big = open(make_image(os.path.join(work, "big.png"), "1400x1400",
                      extra=["+noise", "Random"]), "rb").read()
ok(len(big) * 4 // 3 > 1024 * 1024, "the request is larger than the XML "
   "limit (%d bytes of image)" % len(big))
r = set_photo("Test1@Contoso.com", big, wrap=True)
ok(r.status == 200 and response_code(r) == "NoError",
   "a large SetUserPhoto, base64 in lines, own address in any case")
cur, pic = stored("test1@contoso.com")
ok(cur != after and identify(write(os.path.join(work, "b.jpg"), pic))[:2]
   == (648, 648), "the large photo is stored (648 pixels)")

# ---- refusals: an EWS error, and nothing changes ----
r = set_photo("test2@contoso.com", small)
ok(r.status == 200 and '<SetUserPhotoResponse ResponseClass="Error"' in
   r.text() and response_code(r) == "ErrorAccessDenied",
   "another mailbox's address: ErrorAccessDenied")
ok("owner" in message(r), "with a message (%s)" % message(r))
r = set_photo("test1@contoso.com", b"GIF89a not really" * 100)
ok(response_code(r) == "ErrorInvalidRequest" and
   "cannot be used as a photo" in message(r) and
   "has not changed" in message(r),
   "not an image: ErrorInvalidRequest, the pipeline's reason (%s)" %
   message(r))
r = set_photo("test1@contoso.com", b"\xff\xd8\xff" + os.urandom(20 * 1024
                                                                * 1024))
ok(response_code(r) == "ErrorMessageSizeExceeded" and
   "at most 20 MB" in message(r),
   "over the upload limit: ErrorMessageSizeExceeded (%s)" % message(r))
r = m.post("/EWS/Exchange.asmx", SET.replace(
    "<m:Content>%s</m:Content>", "") % "test1@contoso.com", T1)
ok(r.status == 400 and "without Content" in r.text(),
   "without Content: a SOAP fault, 400")
r = set_photo("test1@contoso.com", b"")
ok(r.status == 400 and "without Content" in r.text(),
   "an empty Content: a SOAP fault, 400")
r = m.post("/EWS/Exchange.asmx", (SET % ("test1@contoso.com", "!!")), T1)
ok(r.status == 400 and "base64" in r.text(), "Content not base64: 400")
is_eq(stored("test1@contoso.com")[0], cur,
      "after every refusal the photo is unchanged")
is_eq(stored("test2@contoso.com")[0] is not None, True,
      "and the other mailbox keeps its photo")

# ---- the body gate ----
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\n"
             b"Content-Type: text/xml\r\nContent-Length: 5000000\r\n\r\n")
head = sock.recv(65536).decode("latin-1")
sock.close()
ok(head.startswith("HTTP/1.1 401"),
   "a large SOAP body without credentials: 401 before it is read")
sock = ssl.create_default_context(cafile=m.ca).wrap_socket(
    socket.create_connection(("127.0.0.1", m.port)),
    server_hostname="127.0.0.1")
sock.sendall(("POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\n"
              "Authorization: %s\r\nContent-Length: 40000000\r\n\r\n" %
              T1["Authorization"]).encode())
head = sock.recv(65536).decode("latin-1")
sock.close()
ok(head.startswith("HTTP/1.1 413"),
   "a body larger than an upload in base64: 413 before it is read")

# ---- a Graph PUT notifies the portal too ----
seen = portal_etag()
r = request(m.host, m.port, "PUT", "/v1.0/me/photo/$value", m.ca,
            dict(T1, **{"Content-Type": "image/jpeg"}), small)
is_eq(r.status, 200, "Graph PUT: 200")
ok(wait_for(lambda: portal_etag() != seen),
   "the Graph change reached the portal by its notice too")

done()
