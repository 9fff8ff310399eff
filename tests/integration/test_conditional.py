"""If-None-Match, the same on every route that answers 304: the master's
GetUserPhoto (REST and SOAP), the portal's photos and its avatars. Weak
comparison, "*", lists, W/; an unquoted tag, or a list that is not one of
entity tags, matches nothing (the full answer)."""
import hashlib

from psync import basic, done, is_eq, ok, photo_path, wired

m, p = wired()
T1, T2 = "contoso\\test1", "contoso\\test2"
MASTER_AUTH = {"Authorization": basic("test1@contoso.com", "pw-one")}
REST = "/ews/exchange.asmx/s/GetUserPhoto?email=test1@contoso.com&" \
    "size=HR240x240"
EWS = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="h'
       'ttp://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.m'
       'icrosoft.com/exchange/services/2006/types" xmlns:m="http://schemas.'
       'microsoft.com/exchange/services/2006/messages"><soap:Header><t:Requ'
       'estServerVersion Version="Exchange2013"/></soap:Header><soap:Body><'
       'm:GetUserPhoto><m:Email>test1@contoso.com</m:Email><m:SizeRequested'
       '>HR240x240</m:SizeRequested></m:GetUserPhoto></soap:Body></soap:Env'
       'elope>')
AVATAR = "/avatar/" + hashlib.md5(b"test1@contoso.com").hexdigest()

r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "test1's photo synced to the portal")


def master_rest(h):
    r = m.get(REST, dict(MASTER_AUTH, **h))
    return r.status == 304, r


def master_soap(h):
    r = m.post("/EWS/Exchange.asmx", EWS, dict(MASTER_AUTH, **h))
    return "<HasChanged>false</HasChanged>" in r.text(), r


def portal_photo(h):
    r = p.get(photo_path(T1, "L"), h, as_user=T2)
    return r.status == 304, r


def portal_avatar(h):
    r = p.get(AVATAR, h, as_user=T2)
    return r.status == 304, r


ROUTES = {"master REST": master_rest, "master SOAP": master_soap,
          "portal photo": portal_photo, "portal avatar": portal_avatar}

for name, route in ROUTES.items():
    unchanged, r = route({})
    tag = r.header("ETag") or ""
    ok(not unchanged and r.status == 200 and len(tag) > 2 and
       tag.startswith('"') and tag.endswith('"'),
       "%s: 200 with a quoted ETag (%s)" % (name, tag))
    opaque = tag[1:-1]
    for inm in (tag, "W/" + tag, "*", ' "nope", %s ' % tag,
                '"nope",%s' % tag, ", ,%s," % tag, 'W/"nope", W/%s' % tag):
        unchanged, r = route({"If-None-Match": inm})
        ok(unchanged, "%s: If-None-Match %s: not modified" % (name, inm))
    for inm in (opaque, "W/" + opaque, '"nope"', '"%s' % opaque,
                '%s"' % opaque, '"nope", %s' % opaque, "%s, *" % tag,
                '"%s-x"' % opaque, "%s garbage" % tag, "w/" + tag):
        unchanged, r = route({"If-None-Match": inm})
        ok(not unchanged, "%s: If-None-Match %s: the full answer (%d)" %
           (name, inm, r.status))
    is_eq(route({"If-None-Match": opaque})[1].status, 200,
          "%s: an unquoted tag gets 200" % name)

done()
