"""What EWS clients look for first, at photosync master serve: 401 and
the same challenges for an unauthenticated request of any method to the
EWS, Autodiscover and OAB endpoints (405 with Allow once signed in);
the service's description (services.wsdl, messages.xsd, types.xsd),
well-formed and naming exactly the operations answered; GetFolder of an
empty mailbox with ServerVersionInfo; ResolveNames by name and address;
Exchange's own error answer to any other operation, logged with its
name; the POX answer's OABUrl and the manifest it points at."""
import base64
import os
import re
import xml.etree.ElementTree as ET

from psync import (Master, basic, done, is_eq, make_image, ok, request,
                   tmpdir, wait_for)

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
NS = {"s": S, "m": M, "t": T, "wsdl": WSDL}

m = Master()
m.add_mailbox("test1@contoso.com", "pw-one", name="Test One")
m.add_mailbox("anna.berg@contoso.com", "pw-two", name="Anna Berg")
m.add_mailbox("bertil@contoso.com", "pw-three", name="Bertil Andersson")
m.add_mailbox("carl@contoso.com", "pw-four", name="Carl Ohlsson")
for i in range(105):
    m.add_mailbox("many%03d@contoso.com" % i, name="Many %03d" % i)
m.cmd("photo", "set", "anna.berg@contoso.com", "--file",
      make_image(os.path.join(tmpdir("ews"), "anna.jpg"), "300x300"))
m.start()
T1 = {"Authorization": basic("test1@contoso.com", "pw-one")}
T2 = {"Authorization": basic("anna.berg@contoso.com", "pw-two")}


def call(method, path, headers=None, body=None):
    return request(m.host, m.port, method, path, m.ca, headers, body)


def soap(body, headers=None):
    env = ('<?xml version="1.0" encoding="utf-8"?>'
           '<soap:Envelope xmlns:soap="%s" xmlns:m="%s" xmlns:t="%s">'
           '<soap:Header><t:RequestServerVersion Version="Exchange2013"/>'
           '</soap:Header><soap:Body>%s</soap:Body></soap:Envelope>'
           % (S, M, T, body))
    h = {"Content-Type": "text/xml; charset=utf-8"}
    h.update(T1 if headers is None else headers)
    return call("POST", "/EWS/Exchange.asmx", h, env.encode())


def body_of(r):
    root = ET.fromstring(r.body)
    return root.find("s:Header", NS), root.find("s:Body", NS)


# ---- 401 for any method, with the challenges of a POST ----
POX = "/autodiscover/autodiscover.xml"
REALM = None
OAB = None
want = call("POST", "/EWS/Exchange.asmx",
            {"Content-Type": "text/xml"}, b"<x/>").header_all(
                "WWW-Authenticate")
ok(any(c.startswith("Basic realm=") for c in want),
   "the challenges of a POST include Basic")
paths = ["/EWS/Exchange.asmx", "/ews/exchange.asmx",
         "/EWS/Exchange.asmx/s/GetUserPhoto?email=test1@contoso.com"
         "&size=HR48x48", POX, "/Autodiscover/Autodiscover.svc",
         "/EWS/Services.wsdl", "/ews/messages.xsd", "/EWS/types.xsd"]
for path in paths:
    for method in ("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE",
                   "PROPFIND"):
        r = call(method, path)
        is_eq(r.status, 401, "%s %s without credentials: 401" %
              (method, path))
        is_eq(r.header_all("WWW-Authenticate"), want,
              "%s %s: the same challenges" % (method, path))
r = call("GET", POX)
is_eq(r.header("X-SOAP-Enabled"), "True",
      "the POX GET probe's headers on the 401 still")

# ---- once signed in: 405 with Allow for a wrong method ----
r = call("DELETE", "/EWS/Exchange.asmx", T1)
is_eq(r.status, 405, "DELETE on EWS, signed in: 405")
is_eq(r.header("Allow"), "GET, HEAD, POST", "with Allow")
r = call("OPTIONS", "/autodiscover/autodiscover.svc", T1)
is_eq((r.status, r.header("Allow")), (405, "POST"),
      "OPTIONS on the SOAP Autodiscover, signed in: 405, Allow POST")
r = call("POST", "/EWS/Services.wsdl", T1, b"")
is_eq((r.status, r.header("Allow")), (405, "GET, HEAD"),
      "POST on the WSDL, signed in: 405, Allow GET, HEAD")
r = call("GET", "/EWS/Exchange.asmx", dict(T1))
is_eq(r.status, 200, "a signed-in GET of /EWS/Exchange.asmx: 200")
ok(r.header("Content-Type").startswith("text/html") and
   m.url("/EWS/Services.wsdl").encode() in r.body,
   "... a page naming the WSDL, as Exchange")
is_eq(call("GET", "/ecp/nothing").status, 404, "other paths unchanged")

# ---- the service's description ----
docs = {}
for name in ("services.wsdl", "messages.xsd", "types.xsd"):
    r = call("GET", "/EWS/" + name.upper(), T1)
    is_eq(r.status, 200, "%s served (any case)" % name)
    ok(r.header("Content-Type").startswith("text/xml"), name + ": XML")
    try:
        docs[name] = ET.fromstring(r.body)
        ok(True, name + " is well-formed XML")
    except ET.ParseError as e:
        ok(False, "%s is well-formed XML (%s)" % (name, e))
wsdl = docs.get("services.wsdl")
ops = sorted(o.get("name") for o in
             wsdl.findall("wsdl:portType/wsdl:operation", NS))
bound = sorted(o.get("name") for o in
               wsdl.findall("wsdl:binding/wsdl:operation", NS))
is_eq(bound, ops, "every operation of the port type is bound")
# Every element a message part names is declared in messages.xsd.
declared = {e.get("name") for e in docs["messages.xsd"].findall(
    "{http://www.w3.org/2001/XMLSchema}element")}
parts = {p.get("element").split(":")[1]
         for p in wsdl.findall("wsdl:message/wsdl:part", NS)
         if p.get("element").startswith("tns:")}
is_eq(sorted(parts - declared), [], "every message part is declared")
MIN = {
    "GetUserPhoto": "<m:GetUserPhoto><m:Email>test1@contoso.com</m:Email>"
                    "<m:SizeRequested>HR48x48</m:SizeRequested>"
                    "</m:GetUserPhoto>",
    "GetFolder": '<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly'
                 '</t:BaseShape></m:FolderShape><m:FolderIds>'
                 '<t:DistinguishedFolderId Id="inbox"/></m:FolderIds>'
                 '</m:GetFolder>',
    "ResolveNames": '<m:ResolveNames ReturnFullContactData="false">'
                    '<m:UnresolvedEntry>anna</m:UnresolvedEntry>'
                    '</m:ResolveNames>',
    "FindItem": '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>'
                'IdOnly</t:BaseShape></m:ItemShape><m:ParentFolderIds>'
                '<t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>'
                '</m:FindItem>',
    "ConvertId": '<m:ConvertId DestinationFormat="EwsId"><m:SourceIds>'
                 '<t:AlternateId Format="EwsId" Id="AQID" Mailbox="x@y.z"/>'
                 '</m:SourceIds></m:ConvertId>',
    "SetUserPhoto": "<m:SetUserPhoto><m:Email>test1@contoso.com</m:Email>"
                    "<m:Content>AAAA</m:Content></m:SetUserPhoto>",
}
for op in ops:
    r = soap(MIN.get(op, "<m:%s/>" % op))
    code = re.search(rb"<m:ResponseCode>(\w+)<", r.body)
    ok(code is None or code.group(1) != b"ErrorInvalidOperation",
       "the WSDL's %s is answered (%s)" % (op, code and code.group(1)))
# And the other way: what is answered is in the WSDL.
for op in sorted(MIN):
    ok(op in ops, "%s is in the WSDL" % op)

# ---- GetFolder ----
FOLDERS = ["root", "msgfolderroot", "inbox", "calendar", "contacts",
           "tasks", "sentitems", "deleteditems", "drafts", "junkemail",
           "outbox", "notes", "searchfolders"]
gf = ('<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties'
      '</t:BaseShape></m:FolderShape><m:FolderIds>%s</m:FolderIds>'
      '</m:GetFolder>')
r = soap(gf % "".join('<t:DistinguishedFolderId Id="%s"/>' % f
                      for f in FOLDERS))
is_eq(r.status, 200, "GetFolder: 200")
head, b = body_of(r)
svi = head.find("t:ServerVersionInfo", NS)
ok(svi is not None and svi.get("MajorVersion") == "15" and
   svi.get("Version", "").startswith("Exchange2013"),
   "GetFolder: ServerVersionInfo of Exchange 2013")
msgs = b.findall("m:GetFolderResponse/m:ResponseMessages/"
                 "m:GetFolderResponseMessage", NS)
is_eq(len(msgs), len(FOLDERS), "one response message per folder")
ok(all(x.get("ResponseClass") == "Success" for x in msgs),
   "every distinguished folder found")
ids = {}
for name, msg in zip(FOLDERS, msgs):
    f = msg.find("m:Folders", NS)[0]
    ids[name] = f.find("t:FolderId", NS).get("Id")
    ok(f.find("t:TotalCount", NS).text == "0" and
       f.find("t:ChildFolderCount", NS).text == "0",
       name + ": an empty folder")
is_eq(len(set(ids.values())), len(FOLDERS), "every folder its own id")
is_eq(msgs[3].find("m:Folders", NS)[0].tag, "{%s}CalendarFolder" % T,
      "the calendar is a CalendarFolder")
r = soap(gf % '<t:DistinguishedFolderId Id="inbox"/>')
is_eq(body_of(r)[1].find(".//t:FolderId", NS).get("Id"), ids["inbox"],
      "ids are stable")
r = soap(gf % '<t:DistinguishedFolderId Id="inbox"/>', T2)
ok(body_of(r)[1].find(".//t:FolderId", NS).get("Id") != ids["inbox"],
   "another mailbox's inbox has another id")
r = soap(gf % ('<t:FolderId Id="%s"/>' % ids["calendar"]))
is_eq(body_of(r)[1].find(".//t:DisplayName", NS).text, "Calendar",
      "a FolderId given out is found again")
r = soap(gf % ('<t:FolderId Id="%s"/>' % ids["calendar"]), T2)
is_eq(body_of(r)[1].find(".//m:ResponseCode", NS).text,
      "ErrorFolderNotFound", "another mailbox's FolderId: not found")
r = soap(gf % '<t:DistinguishedFolderId Id="archiveroot"/>')
is_eq(body_of(r)[1].find(".//m:ResponseCode", NS).text,
      "ErrorFolderNotFound", "no archive: ErrorFolderNotFound")
r = soap(gf % ('<t:DistinguishedFolderId Id="inbox"><t:Mailbox>'
               '<t:EmailAddress>anna.berg@contoso.com</t:EmailAddress>'
               '</t:Mailbox></t:DistinguishedFolderId>'))
is_eq(body_of(r)[1].find(".//m:ResponseCode", NS).text,
      "ErrorAccessDenied", "another's mailbox: ErrorAccessDenied")
r = soap(gf % "".join('<t:DistinguishedFolderId Id="inbox"/>'
                      for _ in range(33)))
is_eq(r.status, 400, "more than 32 folder ids: refused")

# ---- ConvertId: DavMail learns the mailbox's address from it ----
cv = ('<m:ConvertId DestinationFormat="EwsId"><m:SourceIds>%s</m:SourceIds>'
      '</m:ConvertId>')
r = soap(cv % ('<t:AlternateId Format="EwsId" Id="%s" Mailbox="blah@blah.com"'
               '/><t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="x"/>'
               % ids["root"]))
msgs = body_of(r)[1].findall("m:ConvertIdResponse/m:ResponseMessages/"
                             "m:ConvertIdResponseMessage", NS)
is_eq([x.get("ResponseClass") for x in msgs], ["Success", "Error"],
      "ConvertId: the root folder's id converts, a stranger's does not")
alt = msgs[0].find("m:AlternateId", NS) if msgs else None
is_eq((alt.get("Format"), alt.get("Id"), alt.get("Mailbox")) if alt is not None
      else None, ("EwsId", ids["root"], "test1@contoso.com"),
      "ConvertId: the id with its mailbox's address")
is_eq(msgs[1].find("m:ResponseCode", NS).text if len(msgs) > 1 else None,
      "ErrorInvalidIdMalformed", "ConvertId: ErrorInvalidIdMalformed")
r = soap(cv % ('<t:AlternateId Format="EwsId" Id="%s" Mailbox="x"/>'
               % ids["root"]), T2)
is_eq(body_of(r)[1].find(".//m:ResponseCode", NS).text,
      "ErrorInvalidIdMalformed", "ConvertId: another mailbox's id")

# ---- FindItem: DavMail's LDAP search looks in the contacts first ----
r = soap('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly'
         '</t:BaseShape></m:ItemShape><m:IndexedPageItemView '
         'MaxEntriesReturned="100" Offset="0" BasePoint="Beginning"/>'
         '<m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/>'
         '<t:FolderId Id="%s"/><t:DistinguishedFolderId Id="archiveroot"/>'
         '</m:ParentFolderIds></m:FindItem>' % ids["inbox"])
msgs = body_of(r)[1].findall("m:FindItemResponse/m:ResponseMessages/"
                             "m:FindItemResponseMessage", NS)
is_eq([x.get("ResponseClass") for x in msgs], ["Success", "Success", "Error"],
      "FindItem: one message per folder")
rf = msgs[0].find("m:RootFolder", NS) if msgs else None
ok(rf is not None and rf.get("TotalItemsInView") == "0" and
   len(rf.find("t:Items", NS)) == 0, "FindItem: the folder holds nothing")

# ---- ResolveNames ----


def resolve(entry, full=False, headers=None):
    r = soap('<m:ResolveNames ReturnFullContactData="%s">'
             '<m:UnresolvedEntry>%s</m:UnresolvedEntry></m:ResolveNames>'
             % ("true" if full else "false", entry), headers)
    msg = body_of(r)[1].find("m:ResolveNamesResponse/m:ResponseMessages/"
                             "m:ResolveNamesResponseMessage", NS)
    return r, msg


r, msg = resolve("anna")
is_eq((r.status, msg.get("ResponseClass"),
       msg.find("m:ResponseCode", NS).text), (200, "Success", "NoError"),
      "ResolveNames: one person found")
mb = msg.find("m:ResolutionSet/t:Resolution/t:Mailbox", NS)
is_eq([mb.find("t:" + k, NS).text for k in
       ("Name", "EmailAddress", "RoutingType", "MailboxType")],
      ["Anna Berg", "anna.berg@contoso.com", "SMTP", "Mailbox"],
      "the Mailbox of the person found")
ok(msg.find(".//t:Contact", NS) is None, "no Contact unless asked for")
# What an address book does next: the photo of the person found.
found = msg.find(".//t:EmailAddress", NS).text
r = soap("<m:GetUserPhoto><m:Email>%s</m:Email><m:SizeRequested>HR96x96"
         "</m:SizeRequested></m:GetUserPhoto>" % found)
pic = body_of(r)[1].find("m:GetUserPhotoResponse/m:PictureData", NS)
ok(r.status == 200 and pic is not None and
   base64.b64decode(pic.text or "")[:2] == b"\xff\xd8",
   "GetUserPhoto of the person found: their JPEG")
r, msg = resolve("BERG", full=True)
is_eq(msg.find(".//t:Contact/t:DisplayName", NS).text, "Anna Berg",
      "a word of the name, any case; the Contact when asked for")
is_eq(msg.find(".//t:Contact/t:EmailAddresses/t:Entry", NS).text,
      "SMTP:anna.berg@contoso.com", "the Contact's address")
r, msg = resolve("bert")
is_eq(msg.find(".//t:EmailAddress", NS).text, "bertil@contoso.com",
      "a prefix of the address")
r, msg = resolve("SMTP:carl@contoso.com")
is_eq(msg.find(".//t:EmailAddress", NS).text, "carl@contoso.com",
      "an exact address with smtp:")
r, msg = resolve("=anna berg")
is_eq(msg.find(".//t:EmailAddress", NS).text, "anna.berg@contoso.com",
      "= and a whole name")
r, msg = resolve("=smtp:anna.berg@contoso.com")
is_eq(msg.find(".//t:EmailAddress", NS).text, "anna.berg@contoso.com",
      "=smtp: and a whole address (DavMail's equality on mail)")
r, msg = resolve("=ann")
is_eq(msg.find("m:ResponseCode", NS).text, "ErrorNameResolutionNoResults",
      "= and a prefix: no one")
r, msg = resolve("an")
is_eq((msg.get("ResponseClass"), msg.find("m:ResponseCode", NS).text),
      ("Warning", "ErrorNameResolutionMultipleResults"),
      "several: a Warning, ErrorNameResolutionMultipleResults")
is_eq(sorted(e.text for e in msg.findall(".//t:EmailAddress", NS)),
      ["anna.berg@contoso.com", "bertil@contoso.com"],
      "... with every one of them (Anna, Andersson)")
r, msg = resolve("nobody")
is_eq((msg.get("ResponseClass"), msg.find("m:ResponseCode", NS).text),
      ("Error", "ErrorNameResolutionNoResults"),
      "no one: ErrorNameResolutionNoResults")
r, msg = resolve("many")
rs = msg.find("m:ResolutionSet", NS)
is_eq((len(rs), rs.get("IncludesLastItemInRange")), (100, "false"),
      "at most 100, IncludesLastItemInRange false")
r, msg = resolve("x" * 300)
is_eq((r.status, msg.find("m:ResponseCode", NS).text),
      (200, "ErrorNameResolutionNoResults"),
      "an entry over the budget finds no one")

# The mailboxes are searched in memory until one changes: a mailbox
# added beside serve is found once the change feed reports it.
r, msg = resolve("zelda")
is_eq(msg.find("m:ResponseCode", NS).text, "ErrorNameResolutionNoResults",
      "before it is added, no one")
m.add_mailbox("zelda@contoso.com", name="Zelda Quist")


def zelda_found():
    r, msg = resolve("quist")
    return [e.text for e in msg.findall(".//t:EmailAddress", NS)] == [
        "zelda@contoso.com"]


ok(wait_for(zelda_found), "a mailbox added beside serve is found by a "
   "word of its name")

# ---- any other operation ----
r = soap('<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly'
         '</t:BaseShape></m:FolderShape></m:SyncFolderHierarchy>')
is_eq(r.status, 200, "another operation: 200, as Exchange")
head, b = body_of(r)
msg = b.find("m:SyncFolderHierarchyResponse/m:ResponseMessages/"
             "m:SyncFolderHierarchyResponseMessage", NS)
ok(msg is not None and msg.get("ResponseClass") == "Error" and
   msg.find("m:ResponseCode", NS).text == "ErrorInvalidOperation",
   "SyncFolderHierarchyResponseMessage Error ErrorInvalidOperation")
ok(head.find("t:ServerVersionInfo", NS) is not None,
   "with ServerVersionInfo")
r = soap("<m:GetUserPhoto>")
is_eq(r.status, 400, "malformed XML: 400 with a fault")

# ---- POX OABUrl and the manifest ----
req = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http:'
       '//schemas.microsoft.com/exchange/autodiscover/outlook/requestschema'
       '/2006"><Request><EMailAddress>test1@contoso.com</EMailAddress>'
       '<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/'
       'autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>'
       '</Request></Autodiscover>')
r = call("POST", POX, dict(T1, **{"Content-Type": "text/xml"}),
         req.encode())
urls = re.findall(r"<OABUrl>([^<]+)</OABUrl>", r.text())
is_eq(len(urls), 2, "OABUrl in EXCH and EXPR")
ok(urls and urls[0] == urls[-1] and urls[0].startswith(m.url("/OAB/")) and
   urls[0].endswith("/"), "OABUrl: %s" % (urls[:1],))
if urls:
    path = urls[0][len(m.url()):] + "oab.xml"
    r = call("GET", path)
    is_eq(r.status, 401, "the manifest: 401 without credentials")
    is_eq(r.header_all("WWW-Authenticate"), want, "... the same challenges")
    r = call("GET", path, T1)
    is_eq(r.status, 200, "the manifest: 200 signed in")
    root = ET.fromstring(r.body)
    is_eq((root.tag, len(root)), ("OAB", 0), "an OAB listing no books")
    is_eq(call("GET", path.lower(), T1).status, 200, "any case")
    is_eq(call("GET", "/OAB/00000000-0000-0000-0000-000000000000/oab.xml",
               T1).status, 404, "another OAB: 404")
    # The same URL in SOAP Autodiscover's ExternalOABUrl.
    body = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a='
            '"http://schemas.microsoft.com/exchange/2010/Autodiscover" '
            'xmlns:soap="%s"><soap:Body><a:GetUserSettingsRequestMessage>'
            '<a:Request><a:Users><a:User><a:Mailbox>test1@contoso.com'
            '</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>'
            'ExternalOABUrl</a:Setting><a:Setting>InternalOABUrl</a:Setting>'
            '</a:RequestedSettings></a:Request>'
            '</a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>'
            % S)
    r = call("POST", "/autodiscover/autodiscover.svc",
             dict(T1, **{"Content-Type": "text/xml"}), body.encode())
    is_eq(re.findall(r"<Value>([^<]+)</Value>", r.text()), urls[:1] * 2,
          "GetUserSettings: External and InternalOABUrl, as OABUrl")

# ---- GetUserSettings for several users logs them all ----
GUS = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="http:'
       '//schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:soap="%s">'
       '<soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users>%s'
       '</a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting>'
       '</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage>'
       '</soap:Body></soap:Envelope>')


def gus(users):
    return call("POST", "/autodiscover/autodiscover.svc",
                dict(T1, **{"Content-Type": "text/xml"}),
                (GUS % (S, "".join("<a:User><a:Mailbox>%s</a:Mailbox>"
                                   "</a:User>" % u for u in users))).encode())


three = ["test1@contoso.com", "anna.berg@contoso.com", "ghost@contoso.com"]
is_eq(gus(three).status, 200, "GetUserSettings for three users")
many = ["many%03d@contoso.com" % i for i in range(30)]
is_eq(gus(many).status, 200, "GetUserSettings for thirty users")

# ---- the log names the operation ----
logs = m.server.logs()
ok(re.search(r"ev=http\.request .*op=SyncFolderHierarchy", logs),
   "the request's log line names an unoffered operation")
ok(re.search(r"ev=http\.request .*op=ResolveNames", logs),
   "... and an offered one")
lines = [x for x in logs.splitlines() if "ev=autodiscover.soap" in x]
ok(any("users=3 " in x and "emails=test1@contoso.com,anna.berg@contoso.com,"
       "ghost@contoso.com" in x for x in lines),
   "GetUserSettings logs the count and every user")
big = [x for x in lines if "users=30 " in x]
ok(big and "emails=many000@contoso.com," in big[0] and
   big[0].rstrip('"').endswith(",..."),
   "thirty users: the count, and the list bounded with ... (%s)" %
   (big[:1],))
is_eq(m.stop(), 0, "stops")
done()
