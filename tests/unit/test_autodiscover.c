/*
 * Unit tests of Autodiscover: the master's POX and SOAP GetUserSettings
 * answers (shape, escaping, errors), the portal's request builder and
 * parser against the server function, and the parser against answers in
 * the shape of a real Exchange 2013 (tests/data/xml/gus-*.xml).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "xml/xml.h"
#include "t.h"

#define NS_POX_BASE	"http://schemas.microsoft.com/exchange/autodiscover/" \
	"responseschema/2006"
#define NS_POX_OUTLOOK	"http://schemas.microsoft.com/exchange/autodiscover/" \
	"outlook/responseschema/2006a"
#define NS_POX_REQUEST	"http://schemas.microsoft.com/exchange/autodiscover/" \
	"outlook/requestschema/2006"
#define NS_S		"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_AD		"http://schemas.microsoft.com/exchange/2010/" \
	"Autodiscover"
#define NS_WSA		"http://www.w3.org/2005/08/addressing"
#define ACTION_GUS	NS_AD "/Autodiscover/GetUserSettings"

#define BASE		"https://mail.contoso.com"
#define AD_URL		BASE "/autodiscover/autodiscover.svc"
#define ECP_PHOTO_XML	"PersonalSettings/EditAccount.aspx?rfr=olk&amp;" \
	"chgPhoto=1&amp;exsvurl=1&amp;realm=contoso.com"
#define ECP_PHOTO	"PersonalSettings/EditAccount.aspx?rfr=olk&" \
	"chgPhoto=1&exsvurl=1&realm=contoso.com"

static ps_err
lookup(void *arg, const char *email, char **display_name)
{
	(void)arg;
	if (str_case_eq(email, "test1@contoso.com")) {
		*display_name = xstrdup("Test One");
		return PS_OK;
	}
	if (str_case_eq(email, "test2@contoso.com")) {
		*display_name = xstrdup("Zo\xc3\xab & <Two>");
		return PS_OK;
	}
	if (str_case_eq(email, "broken@contoso.com"))
		return ps_errf(PS_ESTORE, "store is down");
	return PS_ENOTFOUND;
}

static const struct ad_server srv = {
	.base_url = BASE,
	.domain = "contoso.com",
	.deployment_id = "0f0c4a8e-2a57-4c39-9d4f-1d6c2d3c9b11",
	.lookup = lookup,
};

/* --- POX ------------------------------------------------------------ */

static char *
pox_request(const char *inner)
{
	return xasprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"" NS_POX_REQUEST "\">\n"
	    "  <Request>\n%s  </Request>\n</Autodiscover>\n", inner);
}

static char *
pox_email(const char *email, const char *schema)
{
	char *inner, *req;

	inner = xasprintf("    <EMailAddress>%s</EMailAddress>\n"
	    "    <AcceptableResponseSchema>%s</AcceptableResponseSchema>\n",
	    email, schema);
	req = pox_request(inner);
	free(inner);
	return req;
}

/* Runs the POX server on `req` into b and parses the answer. */
static struct xml_doc *
pox_run(const char *req, struct buf *b, struct ad_outcome *oc)
{
	struct xml_doc *d = NULL;

	buf_reset(b);
	autodiscover_pox(&srv, req, strlen(req), b, oc);
	if (xml_parse(b->b_data, b->b_len, &d) != PS_OK)
		return NULL;
	return d;
}

/* The ErrorCode of a POX error answer, or NULL. */
static const char *
pox_error_code(struct xml_doc *d)
{
	const struct xml_node *e;

	e = xml_path(xml_root(d), "Response/Error");
	if (e == NULL || strcmp(xml_ns(e), NS_POX_BASE) != 0)
		return NULL;
	return xml_text(xml_child(e, NS_POX_BASE, "ErrorCode"));
}

static void
test_pox_settings(void)
{
	struct ad_outcome oc;
	struct xml_doc *d;
	const struct xml_node *root, *resp, *user, *acct, *p;
	struct buf b;
	char *req;
	int nprot = 0, newsurl = 0;

	buf_init(&b, 1 << 16);
	req = pox_email("test1@contoso.com", NS_POX_OUTLOOK);
	d = pox_run(req, &b, &oc);
	ok(d != NULL, "POX answer is well-formed");
	is_int(oc.status, 200, "status 200");
	is_str(oc.result, "settings", "outcome settings");
	is_str(oc.email, "test1@contoso.com", "outcome email");
	root = xml_root(d);
	is_str(xml_ns(root), NS_POX_BASE, "Autodiscover in 2006 namespace");
	resp = xml_child(root, NS_POX_OUTLOOK, "Response");
	ok(resp != NULL, "Response in 2006a namespace");
	user = xml_child(resp, NS_POX_OUTLOOK, "User");
	is_str(xml_text(xml_child(user, NULL, "DisplayName")), "Test One",
	    "DisplayName");
	is_str(xml_text(xml_child(user, NULL, "AutoDiscoverSMTPAddress")),
	    "test1@contoso.com", "AutoDiscoverSMTPAddress");
	is_str(xml_text(xml_child(user, NULL, "DeploymentId")),
	    srv.deployment_id, "DeploymentId");
	ok(strncmp(xml_text(xml_child(user, NULL, "LegacyDN")), "/o=", 3) ==
	    0, "LegacyDN");
	acct = xml_child(resp, NS_POX_OUTLOOK, "Account");
	is_str(xml_text(xml_child(acct, NULL, "AccountType")), "email",
	    "AccountType email");
	is_str(xml_text(xml_child(acct, NULL, "Action")), "settings",
	    "Action settings");
	is_str(xml_text(xml_child(acct, NULL, "MicrosoftOnline")), "False",
	    "MicrosoftOnline False");
	for (p = xml_child(acct, NS_POX_OUTLOOK, "Protocol"); p != NULL;
	    p = xml_next(p, NS_POX_OUTLOOK, "Protocol")) {
		const char *type = xml_text(xml_child(p, NULL, "Type"));

		nprot++;
		if (strcmp(type, "EXCH") != 0 && strcmp(type, "EXPR") != 0)
			continue;
		if (strcmp(xml_text(xml_child(p, NULL, "EwsUrl")),
		    BASE "/EWS/Exchange.asmx") == 0 &&
		    strcmp(xml_text(xml_child(p, NULL, "EcpUrl")),
		    BASE "/ecp/") == 0 &&
		    strcmp(xml_text(xml_child(p, NULL, "EcpUrl-photo")),
		    ECP_PHOTO) == 0)
			newsurl++;
	}
	is_int(nprot, 2, "EXCH and EXPR protocols");
	is_int(newsurl, 2, "both carry EwsUrl, EcpUrl and EcpUrl-photo");
	p = xml_child(acct, NS_POX_OUTLOOK, "Protocol");
	is_str(xml_text(xml_child(p, NULL, "ServerVersion")), "73C08204",
	    "ServerVersion of 15.0.516");
	xml_free(d);

	/* The raw text: one leaf per line, & escaped exactly once (§1.1). */
	ok(strstr(b.b_data, "\n        <EwsUrl>" BASE
	    "/EWS/Exchange.asmx</EwsUrl>\n") != NULL, "EwsUrl on one line");
	ok(strstr(b.b_data, "\n        <EcpUrl>" BASE "/ecp/</EcpUrl>\n") !=
	    NULL, "EcpUrl on one line");
	ok(strstr(b.b_data, "\n        <EcpUrl-photo>" ECP_PHOTO_XML
	    "</EcpUrl-photo>\n") != NULL, "EcpUrl-photo on one line");
	ok(strstr(b.b_data, "&amp;amp;") == NULL, "no double escaping");
	ok(strstr(b.b_data, "https://schemas") == NULL, "http:// namespaces");
	ok(strncmp(b.b_data, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
	    39) == 0, "XML declaration first");
	free(req);

	/* Escaping of a display name with markup characters. */
	req = pox_email("test2@contoso.com", NS_POX_OUTLOOK);
	d = pox_run(req, &b, &oc);
	ok(strstr(b.b_data, "<DisplayName>Zo\xc3\xab &amp; &lt;Two&gt;"
	    "</DisplayName>") != NULL, "display name escaped");
	is_str(xml_text(xml_path(xml_root(d), "Response/User/DisplayName")),
	    "Zo\xc3\xab & <Two>", "display name round-trips");
	xml_free(d);
	free(req);
	buf_cleanup(&b);
}

static void
test_pox_errors(void)
{
	struct ad_outcome oc;
	struct xml_doc *d;
	struct buf b;
	char *req, *inner;
	const struct xml_node *e;

	buf_init(&b, 1 << 16);

	req = pox_email("nobody@contoso.com", NS_POX_OUTLOOK);
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "500", "unknown address is 500");
	e = xml_path(xml_root(d), "Response/Error");
	is_str(xml_text(xml_child(e, NULL, "Message")),
	    "The email address can't be found.", "500 message");
	ok(xml_attr(e, "Time") != NULL && xml_attr(e, "Id") != NULL,
	    "Error has Time and Id");
	ok(xml_child(e, NULL, "DebugData") != NULL, "DebugData present");
	is_int(oc.status, 200, "error in a 200");
	is_str(oc.result, "error-500", "outcome error-500");
	xml_free(d);
	free(req);

	req = pox_email("test1@contoso.com", "http://schemas.microsoft.com/"
	    "exchange/autodiscover/mobilesync/responseschema/2006");
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "601", "unsupported schema is 601");
	is_str(oc.result, "error-601", "outcome error-601");
	xml_free(d);
	free(req);

	d = pox_run("this is not xml", &b, &oc);
	is_str(pox_error_code(d), "600", "garbage is 600");
	is_str(xml_text(xml_path(xml_root(d), "Response/Error/Message")),
	    "Invalid Request", "600 message");
	is_int(oc.status, 200, "still 200");
	xml_free(d);

	req = pox_request("    <AcceptableResponseSchema>" NS_POX_OUTLOOK
	    "</AcceptableResponseSchema>\n");
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "600", "missing EMailAddress is 600");
	xml_free(d);
	free(req);

	req = pox_email("not an address", NS_POX_OUTLOOK);
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "600", "malformed EMailAddress is 600");
	xml_free(d);
	free(req);

	req = pox_request("    <EMailAddress>test1@contoso.com"
	    "</EMailAddress>\n");
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "600", "missing schema is 600");
	xml_free(d);
	free(req);

	d = pox_run("<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM "
	    "\"file:///etc/passwd\">]><Autodiscover><Request><EMailAddress>&x;"
	    "</EMailAddress></Request></Autodiscover>", &b, &oc);
	is_str(pox_error_code(d), "600", "DOCTYPE request is 600");
	ok(strstr(b.b_data, "root:") == NULL, "nothing leaked");
	xml_free(d);

	req = pox_email("broken@contoso.com", NS_POX_OUTLOOK);
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "603", "store failure is 603");
	xml_free(d);
	free(req);

	/* §1.1: LegacyDN wins over EMailAddress. */
	inner = xasprintf("    <EMailAddress>test1@contoso.com</EMailAddress>\n"
	    "    <LegacyDN>/o=photosync/ou=Exchange Administrative Group "
	    "(FYDIBOHF23SPDLT)/cn=Recipients/cn=test2@contoso.com</LegacyDN>\n"
	    "    <AcceptableResponseSchema>" NS_POX_OUTLOOK
	    "</AcceptableResponseSchema>\n");
	req = pox_request(inner);
	d = pox_run(req, &b, &oc);
	is_str(xml_text(xml_path(xml_root(d),
	    "Response/User/AutoDiscoverSMTPAddress")), "test2@contoso.com",
	    "LegacyDN wins");
	is_str(oc.email, "test2@contoso.com", "outcome names the DN's owner");
	xml_free(d);
	free(req);
	free(inner);

	req = pox_request("    <EMailAddress>test1@contoso.com</EMailAddress>\n"
	    "    <LegacyDN>/o=Other/cn=Recipients/cn=someone</LegacyDN>\n"
	    "    <AcceptableResponseSchema>" NS_POX_OUTLOOK
	    "</AcceptableResponseSchema>\n");
	d = pox_run(req, &b, &oc);
	is_str(pox_error_code(d), "500", "foreign LegacyDN is 500");
	xml_free(d);
	free(req);

	/* A cap too small still leaves a well-formed answer or nothing. */
	buf_cleanup(&b);
	buf_init(&b, 700);
	req = pox_email("test1@contoso.com", NS_POX_OUTLOOK);
	autodiscover_pox(&srv, req, strlen(req), &b, &oc);
	ok(xml_parse(b.b_data, b.b_len, &d) == PS_OK, "small cap: well-formed");
	is_str(pox_error_code(d), "603", "small cap: internal error");
	xml_free(d);
	free(req);
	buf_cleanup(&b);
}

/* --- SOAP ----------------------------------------------------------- */

static struct xml_doc *
soap_run(const char *req, struct buf *b, struct ad_outcome *oc)
{
	struct xml_doc *d = NULL;

	buf_reset(b);
	autodiscover_soap(&srv, req, strlen(req), b, oc);
	if (xml_parse(b->b_data, b->b_len, &d) != PS_OK)
		return NULL;
	return d;
}

static const struct xml_node *
user_responses(struct xml_doc *d)
{
	return xml_path(xml_root(d),
	    "Body/GetUserSettingsResponseMessage/Response/UserResponses");
}

static const char *
setting(const struct xml_node *ur, const char *name)
{
	const struct xml_node *s;

	for (s = xml_path(ur, "UserSettings/UserSetting"); s != NULL;
	    s = xml_next(s, NS_AD, "UserSetting"))
		if (strcmp(xml_text(xml_child(s, NS_AD, "Name")), name) == 0)
			return xml_text(xml_child(s, NS_AD, "Value"));
	return NULL;
}

static int
count(const struct xml_node *first, const char *name)
{
	int n = 0;

	for (; first != NULL; first = xml_next(first, NULL, name))
		n++;
	return n;
}

static void
test_soap_settings(void)
{
	static const char *const want[] = { "ExternalPhotosUrl",
	    "ExternalEwsUrl", "NoSuchSetting", "UserDisplayName",
	    "ExternalEcpPhotoUrl" };
	struct ad_outcome oc;
	struct ad_user_settings us;
	struct xml_doc *d;
	const struct xml_node *hdr, *svi, *ur, *e;
	struct buf req, b;

	buf_init(&req, 1 << 16);
	buf_init(&b, 1 << 16);
	ok(autodiscover_soap_request(&req, AD_URL, "test1@contoso.com", want,
	    5) == PS_OK, "request built");
	ok(strstr(req.b_data, "<a:RequestedServerVersion>Exchange2013<") &&
	    strstr(req.b_data, "<wsa:Action>" ACTION_GUS "</wsa:Action>") &&
	    strstr(req.b_data, "<wsa:To>" BASE
	    "/autodiscover/autodiscover.svc</wsa:To>") &&
	    strstr(req.b_data, "<a:Mailbox>test1@contoso.com</a:Mailbox>"),
	    "request header and mailbox");
	ok(xml_parse(req.b_data, req.b_len, &d) == PS_OK,
	    "request well-formed");
	is_int(count(xml_path(xml_root(d), "Body/GetUserSettingsRequestMessage"
	    "/Request/RequestedSettings/Setting"), "Setting"), 5,
	    "five settings requested");
	xml_free(d);

	d = soap_run(req.b_data, &b, &oc);
	ok(d != NULL, "answer well-formed");
	is_int(oc.status, 200, "status 200");
	is_str(oc.result, "settings", "outcome settings");
	is_str(oc.email, "test1@contoso.com", "outcome email");

	/* §2.2: header with Action (mustUnderstand) and ServerVersionInfo. */
	hdr = xml_child(xml_root(d), NS_S, "Header");
	is_str(xml_text(xml_child(hdr, NS_WSA, "Action")),
	    NS_AD "/Autodiscover/GetUserSettingsResponse", "response Action");
	ok(strstr(b.b_data, "<a:Action s:mustUnderstand=\"1\">") != NULL,
	    "Action mustUnderstand");
	svi = xml_child(hdr, NS_AD, "ServerVersionInfo");
	is_str(xml_text(xml_child(svi, NS_AD, "MajorVersion")), "15",
	    "MajorVersion element");
	is_str(xml_text(xml_child(svi, NS_AD, "MinorVersion")), "0",
	    "MinorVersion element");
	is_str(xml_text(xml_child(svi, NS_AD, "Version")), "Exchange2013",
	    "Version element");
	ok(xml_child(svi, NS_AD, "MajorBuildNumber") &&
	    xml_child(svi, NS_AD, "MinorBuildNumber"), "build numbers");

	is_str(xml_text(xml_path(xml_root(d),
	    "Body/GetUserSettingsResponseMessage/Response/ErrorCode")),
	    "NoError", "Response NoError");
	ur = xml_child(user_responses(d), NS_AD, "UserResponse");
	is_str(xml_text(xml_child(ur, NS_AD, "ErrorCode")), "NoError",
	    "UserResponse NoError");
	ok(xml_child(ur, NS_AD, "RedirectTarget") != NULL &&
	    strstr(b.b_data, "<RedirectTarget i:nil=\"true\" />"),
	    "RedirectTarget nil");
	is_int(count(xml_path(ur, "UserSettings/UserSetting"), "UserSetting"),
	    4, "only the four known settings returned");
	ok(strstr(b.b_data, "<UserSetting i:type=\"StringSetting\">") != NULL,
	    "literal i:type StringSetting");
	is_str(setting(ur, "ExternalPhotosUrl"), BASE "/EWS/Exchange.asmx/s",
	    "ExternalPhotosUrl");
	is_str(setting(ur, "ExternalEwsUrl"), BASE "/EWS/Exchange.asmx",
	    "ExternalEwsUrl");
	is_str(setting(ur, "ExternalEcpPhotoUrl"), BASE "/ecp/" ECP_PHOTO,
	    "ExternalEcpPhotoUrl");
	ok(setting(ur, "InternalEwsUrl") == NULL, "unrequested not returned");
	e = xml_path(ur, "UserSettingErrors/UserSettingError");
	is_int(count(e, "UserSettingError"), 1, "one setting error");
	is_str(xml_text(xml_child(e, NS_AD, "SettingName")), "NoSuchSetting",
	    "unknown setting named");
	is_str(xml_text(xml_child(e, NS_AD, "ErrorCode")), "InvalidSetting",
	    "InvalidSetting");
	ok(strstr(b.b_data, "&amp;amp;") == NULL, "no double escaping");
	xml_free(d);

	/* Round trip through the portal's parser. */
	ok(autodiscover_soap_parse(b.b_data, b.b_len, &us) == PS_OK,
	    "own answer parses");
	is_str(us.error_code, "NoError", "parsed NoError");
	is_str(us.ews_url, BASE "/EWS/Exchange.asmx", "parsed EWS URL");
	is_str(us.photos_url, BASE "/EWS/Exchange.asmx/s", "parsed photos");
	is_str(us.ecp_photo_url, BASE "/ecp/" ECP_PHOTO, "parsed ECP photo");
	is_str(us.display_name, "Test One", "parsed display name");
	ok(us.redirect_target == NULL, "no redirect");
	ad_user_settings_cleanup(&us);

	/* Unknown address: InvalidUser, no settings. */
	buf_reset(&req);
	autodiscover_soap_request(&req, AD_URL, "nobody@contoso.com", want, 2);
	d = soap_run(req.b_data, &b, &oc);
	ur = xml_child(user_responses(d), NS_AD, "UserResponse");
	is_str(xml_text(xml_child(ur, NS_AD, "ErrorCode")), "InvalidUser",
	    "InvalidUser");
	is_int(count(xml_path(ur, "UserSettings/UserSetting"), "UserSetting"),
	    0, "no settings for an invalid user");
	is_str(oc.result, "invalid-user", "outcome invalid-user");
	is_int(oc.status, 200, "still 200");
	xml_free(d);
	ok(autodiscover_soap_parse(b.b_data, b.b_len, &us) == PS_OK &&
	    strcmp(us.error_code, "InvalidUser") == 0 && us.ews_url == NULL,
	    "parser reports InvalidUser");
	ad_user_settings_cleanup(&us);

	ok(autodiscover_soap_request(&req, "u", "e", want, 0) == PS_EINVAL,
	    "request needs settings");

	/* Several mailboxes in one call, answered in their order. */
	{
		const char *three[] = { "nobody@contoso.com",
		    "test1@contoso.com", "Test1@Contoso.com" };
		struct ad_user_settings many[4];

		buf_reset(&req);
		ok(autodiscover_soap_request_many(&req, AD_URL, three, 3,
		    want, 2) == PS_OK, "a request for three mailboxes");
		d = soap_run(req.b_data, &b, &oc);
		is_int(count(xml_child(user_responses(d), NS_AD,
		    "UserResponse"), "UserResponse"), 3,
		    "three UserResponses");
		xml_free(d);
		ok(autodiscover_soap_parse_many(b.b_data, b.b_len, many, 3) ==
		    PS_OK, "the answer parses for three");
		is_str(many[0].error_code, "InvalidUser", "first: InvalidUser");
		ok(many[0].photos_url == NULL, "first: no photos URL");
		is_str(many[1].photos_url, BASE "/EWS/Exchange.asmx/s",
		    "second: its photos URL");
		is_str(many[2].photos_url, BASE "/EWS/Exchange.asmx/s",
		    "third: the same mailbox in other case, answered too");
		for (size_t i = 0; i < 3; i++)
			ad_user_settings_cleanup(&many[i]);
		ok(autodiscover_soap_parse_many(b.b_data, b.b_len, many, 4) ==
		    PS_EUPSTREAM && many[0].error_code == NULL,
		    "an answer short of users is refused, nothing kept");
		ok(autodiscover_soap_request_many(&req, AD_URL, three, 0, want,
		    2) == PS_EINVAL && autodiscover_soap_request_many(&req,
		    AD_URL, three, AD_MAX_USERS + 1, want, 2) == PS_EINVAL,
		    "1 to AD_MAX_USERS mailboxes");
	}
	buf_cleanup(&req);
	buf_cleanup(&b);
}

static char *
soap_envelope(const char *action, const char *body)
{
	return xasprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:a=\"" NS_AD "\" xmlns:wsa=\"" NS_WSA "\""
	    " xmlns:soap=\"" NS_S "\">\n"
	    "<soap:Header>%s%s%s</soap:Header>\n"
	    "<soap:Body>%s</soap:Body></soap:Envelope>\n",
	    action ? "<wsa:Action>" : "", action ? action : "",
	    action ? "</wsa:Action>" : "", body);
}

static void
test_soap_users_and_faults(void)
{
	static const char *const all[] = { "ExternalPhotosUrl",
	    "InternalPhotosUrl", "ExternalEcpPhotoUrl", "InternalEcpPhotoUrl",
	    "EcpPhotoUrlFragment", "ExternalEcpUrl", "InternalEcpUrl",
	    "ExternalEwsUrl", "InternalEwsUrl", "UserDisplayName", "UserDN",
	    "UserDeploymentId", "AutoDiscoverSMTPAddress", "CasVersion",
	    "EwsSupportedSchemas", "ExternalEwsVersion", "MailboxDN",
	    "UserMSOnline" };
	struct ad_outcome oc;
	struct xml_doc *d;
	const struct xml_node *ur, *f;
	struct buf b, req;
	char *s;
	size_t nall = sizeof(all) / sizeof(all[0]);

	buf_init(&b, 1 << 16);
	buf_init(&req, 1 << 16);

	/* Three users, answered in request order (§2.2). */
	s = soap_envelope(ACTION_GUS, "<a:GetUserSettingsRequestMessage>"
	    "<a:Request><a:Users>"
	    "<a:User><a:Mailbox>test2@contoso.com</a:Mailbox></a:User>"
	    "<a:User><a:Mailbox>ghost@contoso.com</a:Mailbox></a:User>"
	    "<a:User><a:Mailbox>TEST1@contoso.com</a:Mailbox></a:User>"
	    "</a:Users><a:RequestedSettings>"
	    "<a:Setting>UserDisplayName</a:Setting>"
	    "<a:Setting>AutoDiscoverSMTPAddress</a:Setting>"
	    "<a:Setting>userdisplayname</a:Setting>"
	    "</a:RequestedSettings></a:Request>"
	    "</a:GetUserSettingsRequestMessage>");
	d = soap_run(s, &b, &oc);
	ur = xml_child(user_responses(d), NS_AD, "UserResponse");
	is_int(count(ur, "UserResponse"), 3, "three UserResponses");
	is_str(setting(ur, "UserDisplayName"), "Zo\xc3\xab & <Two>",
	    "first is test2");
	is_int(count(xml_path(ur, "UserSettings/UserSetting"), "UserSetting"),
	    2, "duplicate setting name answered once");
	ur = xml_next(ur, NS_AD, "UserResponse");
	is_str(xml_text(xml_child(ur, NS_AD, "ErrorCode")), "InvalidUser",
	    "second is InvalidUser");
	ur = xml_next(ur, NS_AD, "UserResponse");
	is_str(setting(ur, "AutoDiscoverSMTPAddress"), "TEST1@contoso.com",
	    "third is test1");
	is_str(oc.result, "settings", "mixed outcome is settings");
	xml_free(d);
	free(s);

	/* Every supported setting, with the values of §2.4. */
	autodiscover_soap_request(&req, AD_URL,
	    "test1@contoso.com", all, nall);
	d = soap_run(req.b_data, &b, &oc);
	ur = xml_child(user_responses(d), NS_AD, "UserResponse");
	is_int(count(xml_path(ur, "UserSettings/UserSetting"), "UserSetting"),
	    (int)nall, "all supported settings answered");
	ok(xml_path(ur, "UserSettingErrors/UserSettingError") == NULL,
	    "no setting errors");
	is_str(setting(ur, "InternalPhotosUrl"), BASE "/EWS/Exchange.asmx/s",
	    "InternalPhotosUrl");
	is_str(setting(ur, "InternalEcpPhotoUrl"), BASE "/ecp/" ECP_PHOTO,
	    "InternalEcpPhotoUrl");
	is_str(setting(ur, "EcpPhotoUrlFragment"), ECP_PHOTO,
	    "EcpPhotoUrlFragment");
	is_str(setting(ur, "ExternalEcpUrl"), BASE "/ecp/", "ExternalEcpUrl");
	is_str(setting(ur, "UserDeploymentId"), srv.deployment_id,
	    "UserDeploymentId");
	is_str(setting(ur, "CasVersion"), "15.00.0516.032", "CasVersion");
	is_str(setting(ur, "EwsSupportedSchemas"), "Exchange2007, "
	    "Exchange2007_SP1, Exchange2010, Exchange2010_SP1, "
	    "Exchange2010_SP2, Exchange2013", "EwsSupportedSchemas");
	is_str(setting(ur, "UserDN"), "/o=photosync/ou=Exchange "
	    "Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
	    "cn=test1@contoso.com", "UserDN matches the POX LegacyDN");
	xml_free(d);

	/* No Action header but the right body element: accepted. */
	s = soap_envelope(NULL, "<a:GetUserSettingsRequestMessage><a:Request>"
	    "<a:Users><a:User><a:Mailbox>test1@contoso.com</a:Mailbox>"
	    "</a:User></a:Users><a:RequestedSettings><a:Setting>"
	    "ExternalEwsUrl</a:Setting></a:RequestedSettings></a:Request>"
	    "</a:GetUserSettingsRequestMessage>");
	d = soap_run(s, &b, &oc);
	is_int(oc.status, 200, "dispatch on the body element alone");
	xml_free(d);
	free(s);

	/* No settings: InvalidRequest on the Response. */
	s = soap_envelope(ACTION_GUS, "<a:GetUserSettingsRequestMessage>"
	    "<a:Request><a:Users><a:User><a:Mailbox>test1@contoso.com"
	    "</a:Mailbox></a:User></a:Users><a:RequestedSettings/>"
	    "</a:Request></a:GetUserSettingsRequestMessage>");
	d = soap_run(s, &b, &oc);
	is_str(xml_text(xml_path(xml_root(d), "Body/"
	    "GetUserSettingsResponseMessage/Response/ErrorCode")),
	    "InvalidRequest", "no settings is InvalidRequest");
	is_int(oc.status, 200, "InvalidRequest in a 200");
	xml_free(d);
	free(s);

	/* Malformed: 400 client fault. */
	d = soap_run("<soap:Envelope", &b, &oc);
	is_int(oc.status, 400, "malformed is 400");
	f = xml_path(xml_root(d), "Body/Fault");
	is_str(xml_text(xml_child(f, NULL, "faultcode")), "s:Client",
	    "client fault");
	is_str(oc.result, "fault-400", "outcome fault-400");
	xml_free(d);

	/* Not SOAP at all: 400. */
	d = soap_run("<Autodiscover/>", &b, &oc);
	is_int(oc.status, 400, "not an envelope is 400");
	xml_free(d);

	/* Unknown operation: 500, a:ActionNotSupported. */
	s = soap_envelope(NS_AD "/Autodiscover/GetDomainSettings",
	    "<a:GetDomainSettingsRequestMessage/>");
	d = soap_run(s, &b, &oc);
	is_int(oc.status, 500, "unknown operation is 500");
	f = xml_path(xml_root(d), "Body/Fault");
	is_str(xml_text(xml_child(f, NULL, "faultcode")),
	    "a:ActionNotSupported", "ActionNotSupported");
	ok(strstr(xml_text(xml_child(f, NULL, "faultstring")),
	    "ContractFilter mismatch") != NULL, "WCF wording");
	xml_free(d);
	free(s);
	s = soap_envelope(NULL, "<a:GetFederationInformationRequestMessage/>");
	d = soap_run(s, &b, &oc);
	is_int(oc.status, 500, "unknown body without Action is 500");
	xml_free(d);
	free(s);

	/* Action says GetUserSettings, Body says otherwise: 400. */
	s = soap_envelope(ACTION_GUS, "<a:Something/>");
	d = soap_run(s, &b, &oc);
	is_int(oc.status, 400, "Action/Body mismatch is 400");
	xml_free(d);
	free(s);

	/* The HTTP SOAPAction header is not ours to see: nothing to test,
	 * the function has no such parameter. */
	buf_cleanup(&req);
	buf_cleanup(&b);
}

/* --- the portal's parser on foreign answers ------------------------- */

static void
test_parse_foreign(void)
{
	struct ad_user_settings us;
	char *data;
	size_t len;
	const char *s;

	if (!ok(file_read("../data/xml/gus-exchange2013.xml", 1 << 20, &data,
	    &len) == PS_OK, "fixture gus-exchange2013.xml"))
		return;
	ok(autodiscover_soap_parse(data, len, &us) == PS_OK,
	    "real-shaped answer parses");
	is_str(us.error_code, "NoError", "NoError");
	is_str(us.ews_url, "https://mail.contoso.com/EWS/Exchange.asmx",
	    "External EWS preferred");
	is_str(us.photos_url, "https://mail.contoso.com/EWS/Exchange.asmx/s",
	    "External photos preferred");
	is_str(us.ecp_photo_url, "https://mail.contoso.com/ecp/" ECP_PHOTO,
	    "External ECP photo preferred, & decoded");
	is_str(us.display_name, "Mara Whitley", "display name");
	ad_user_settings_cleanup(&us);
	free(data);

	if (!ok(file_read("../data/xml/gus-internal-only.xml", 1 << 20, &data,
	    &len) == PS_OK, "fixture gus-internal-only.xml"))
		return;
	ok(autodiscover_soap_parse(data, len, &us) == PS_OK,
	    "internal-only answer parses");
	is_str(us.ews_url, "https://exch01.corp.contoso.com/EWS/Exchange.asmx",
	    "empty External falls back to Internal");
	ok(us.photos_url == NULL, "no photos URL");
	is_str(us.ecp_photo_url, "https://exch01.corp.contoso.com/ecp/"
	    ECP_PHOTO, "ECP photo URL built from EcpUrl + fragment");
	ok(us.display_name == NULL, "no display name");
	ad_user_settings_cleanup(&us);
	free(data);

	s = "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserSettingsResponseMessage xmlns=\"" NS_AD "\"><Response>"
	    "<ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>"
	    "<UserResponse><ErrorCode>RedirectAddress</ErrorCode>"
	    "<ErrorMessage>Redirection address.</ErrorMessage>"
	    "<RedirectTarget>other@fabrikam.com</RedirectTarget>"
	    "<UserSettingErrors/><UserSettings/></UserResponse>"
	    "</UserResponses></Response></GetUserSettingsResponseMessage>"
	    "</s:Body></s:Envelope>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_OK,
	    "redirect parses");
	is_str(us.error_code, "RedirectAddress", "RedirectAddress");
	is_str(us.redirect_target, "other@fabrikam.com", "redirect target");
	ad_user_settings_cleanup(&us);

	s = "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserSettingsResponseMessage xmlns=\"" NS_AD "\"><Response>"
	    "<ErrorCode>InvalidRequest</ErrorCode><ErrorMessage>No users."
	    "</ErrorMessage><UserResponses/></Response>"
	    "</GetUserSettingsResponseMessage></s:Body></s:Envelope>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_OK &&
	    strcmp(us.error_code, "InvalidRequest") == 0 &&
	    strcmp(us.error_message, "No users.") == 0,
	    "response-level error is an answer");
	ad_user_settings_cleanup(&us);

	s = "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body><s:Fault>"
	    "<faultcode xmlns:a=\"" NS_WSA "\">a:ActionNotSupported</faultcode>"
	    "<faultstring>ContractFilter mismatch</faultstring></s:Fault>"
	    "</s:Body></s:Envelope>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_EUPSTREAM,
	    "fault is EUPSTREAM");
	ok(strstr(ps_errmsg(), "ActionNotSupported") != NULL,
	    "fault code in the message");
	ok(us.error_code == NULL, "nothing left allocated");

	s = "<html><body>Login</body></html>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_EUPSTREAM,
	    "HTML is EUPSTREAM");
	s = "<Autodiscover xmlns=\"" NS_POX_BASE "\"/>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_EUPSTREAM,
	    "POX is EUPSTREAM");
	s = "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_EUPSTREAM,
	    "truncated is EUPSTREAM");
	s = "<s:Envelope xmlns:s=\"" NS_S "\"><s:Body>"
	    "<GetUserSettingsResponseMessage xmlns=\"" NS_AD "\"><Response>"
	    "<ErrorCode>NoError</ErrorCode><UserResponses/></Response>"
	    "</GetUserSettingsResponseMessage></s:Body></s:Envelope>";
	ok(autodiscover_soap_parse(s, strlen(s), &us) == PS_EUPSTREAM,
	    "NoError without a UserResponse is EUPSTREAM");
}

/* --- what an answer means, and the redirects followed ---------------- */

static void
test_verdict_and_hops(void)
{
	struct ad_user_settings us;
	struct ad_hops h = { 0 };
	char why[256], *url, addr[64];
	int i;

	memset(&us, 0, sizeof(us));
	us.photos_url = "https://m/EWS/Exchange.asmx/s";
	us.ecp_photo_url = "https://m/ecp/x";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_MAILBOX,
	    "no code, both URLs: a mailbox");
	us.error_code = "NoError";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_MAILBOX,
	    "NoError, both URLs: a mailbox");
	us.ecp_photo_url = NULL;
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_NO_MAILBOX,
	    "NoError without the ECP photo URL: no mailbox");
	ok(strstr(why, "PhotosUrl or EcpPhotoUrl is null") != NULL,
	    "  says which");
	us.ecp_photo_url = "https://m/ecp/x";
	us.photos_url = NULL;
	is_int(autodiscover_verdict(&us, NULL, 0), AD_NO_MAILBOX,
	    "NoError without the photos URL: no mailbox");
	us.error_code = "InvalidUser";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_NO_MAILBOX,
	    "InvalidUser: no mailbox");
	us.error_code = "RedirectAddress";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_ERROR,
	    "RedirectAddress without a target: an error");
	us.redirect_target = "a@fabrikam.com";
	is_int(autodiscover_verdict(&us, why, sizeof(why)),
	    AD_REDIRECT_ADDRESS, "RedirectAddress with a target");
	us.error_code = "RedirectUrl";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_REDIRECT_URL,
	    "RedirectUrl with a target");
	us.redirect_target = NULL;
	us.photos_url = "https://m/EWS/Exchange.asmx/s";
	us.error_code = "ServerBusy";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_ERROR,
	    "ServerBusy: an error, even with URLs");
	us.error_code = "InternalServerError";
	is_int(autodiscover_verdict(&us, why, sizeof(why)), AD_ERROR,
	    "InternalServerError: an error");
	is_str(why, "Autodiscover says InternalServerError ()",
	    "  says the code");
	us.error_code = "InvalidDomain";
	is_int(autodiscover_verdict(&us, NULL, 0), AD_ERROR,
	    "any other code: an error");

	ok(ad_hops_add(&h, "https://a/autodiscover/autodiscover.svc",
	    "u@contoso.com") == PS_OK, "the first question");
	is_int(ad_hops_add(&h, "http://b/autodiscover/autodiscover.svc",
	    "u@contoso.com"), PS_EINVAL, "http refused");
	is_int(ad_hops_add(&h, "https://b/x", "nobody"), PS_EINVAL,
	    "a target that is no address refused");
	is_int(ad_hops_add(&h, "HTTPS://A/autodiscover/autodiscover.svc",
	    "U@contoso.com"), PS_EEXIST, "back to the start is a loop");
	for (i = 1; i <= AD_MAX_HOPS; i++) {
		snprintf(addr, sizeof(addr), "hop%d@contoso.com", i);
		if (ad_hops_add(&h, "https://a/autodiscover/autodiscover.svc",
		    addr) != PS_OK)
			break;
	}
	is_int(i, AD_MAX_HOPS + 1, "AD_MAX_HOPS redirects are followed");
	is_int(ad_hops_add(&h, "https://a/autodiscover/autodiscover.svc",
	    "one-more@contoso.com"), PS_ELIMIT, "one more is refused");
	ok(strstr(ps_errmsg(), "too many") != NULL, "  says why");
	ad_hops_cleanup(&h);
	is_int(h.n, 0, "cleaned up");

	ok(autodiscover_url(NULL, "u@contoso.com", &url) == PS_OK &&
	    strcmp(url, "https://autodiscover.contoso.com/autodiscover/"
	    "autodiscover.svc") == 0, "URL from the address's domain");
	free(url);
	ok(autodiscover_url("ad.example:8443", "u@contoso.com", &url) ==
	    PS_OK && strcmp(url, "https://ad.example:8443/autodiscover/"
	    "autodiscover.svc") == 0, "URL from the configured domain");
	free(url);
	is_int(autodiscover_url("", "nodomain@", &url), PS_EINVAL,
	    "an address without a domain");
	ok(url == NULL, "  and no URL");
	{
		static const char *const bad[] = {
			"u@evil.example#.contoso.com",
			"u@evil.example?.contoso.com",
			"u@evil.example/.contoso.com",
			"u@evil.example:8443",
			"u@x@evil.example",
			"u@evil_host.example",
			"u@contoso.com%2f",
		};
		char what[128];
		size_t k;

		for (k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
			snprintf(what, sizeof(what), "refused: the domain of "
			    "%s is no host name", bad[k]);
			url = (char *)"unset";
			is_int(autodiscover_url(NULL, bad[k], &url), PS_EINVAL,
			    what);
			ok(url == NULL, "  and no URL");
		}
	}
}

int main(void);

int
main(void)
{
	test_pox_settings();
	test_pox_errors();
	test_soap_settings();
	test_soap_users_and_faults();
	test_parse_foreign();
	test_verdict_and_hops();
	return done();
}
