/*
 * Autodiscover, both sides.
 *
 * The master answers POX requests (POST /autodiscover/autodiscover.xml,
 * reference exchange-wire.md §1, [MS-OXDSCLI]) and SOAP GetUserSettings
 * requests (POST /autodiscover/autodiscover.svc, §2). The portal builds
 * the SOAP request the EWS Managed API and exchangelib would send and
 * parses the answer, ours or a real Exchange's.
 *
 * Requests are parsed only through the hardened xml module; answers are
 * written into the caller's capped struct buf, escaped with
 * xml_add_text(), one leaf element per line (§1.1: DavMail and SIPE scan
 * the POX answer line by line). Pure functions apart from the lookup
 * callback; safe on any thread.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiscover.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "ews.h"
#include "xml/xml.h"

/* Where the SOAP Autodiscover service answers (MS-OXDSCLI). */
#define AD_SVC_PATH	"/autodiscover/autodiscover.svc"

#define NS_POX_BASE	"http://schemas.microsoft.com/exchange/autodiscover/" \
	"responseschema/2006"
#define NS_POX_OUTLOOK	"http://schemas.microsoft.com/exchange/autodiscover/" \
	"outlook/responseschema/2006a"
#define NS_SOAP		"http://schemas.xmlsoap.org/soap/envelope/"
#define NS_AD		"http://schemas.microsoft.com/exchange/2010/" \
	"Autodiscover"
#define NS_WSA		"http://www.w3.org/2005/08/addressing"
#define NS_XSI		"http://www.w3.org/2001/XMLSchema-instance"

#define ACTION_GUS	NS_AD "/Autodiscover/GetUserSettings"
#define ACTION_GUS_RESP	NS_AD "/Autodiscover/GetUserSettingsResponse"
#define ACTION_FAULT	NS_WSA "/soap/fault"

/*
 * Distinguished names. The LegacyDN ends in the SMTP address itself so a
 * POX request by LegacyDN maps back to the mailbox without a directory;
 * real Exchange DNs contain '@' in cn= values too (§1.3 sample, S9).
 */
#define DN_ORG		"/o=photosync/ou=Exchange Administrative Group " \
	"(FYDIBOHF23SPDLT)"
#define DN_RECIPIENTS	DN_ORG "/cn=Recipients/cn="
#define DN_SERVERS	DN_ORG "/cn=Configuration/cn=Servers/cn="

/* §2.4: the schemas an Exchange 2013 RTM CAS lists. */
#define EWS_SCHEMAS	"Exchange2007, Exchange2007_SP1, Exchange2010, " \
	"Exchange2010_SP1, Exchange2010_SP2, " EWS_VERSION_NAME

/* §1.3/§3.4: the fragment clients append to EcpUrl; realm= follows. */
#define ECP_PHOTO_FRAGMENT \
	"PersonalSettings/EditAccount.aspx?rfr=olk&chgPhoto=1&exsvurl=1&realm="

#define SOAP_MAX_USERS		AD_MAX_USERS
#define SOAP_MAX_SETTINGS	128

/* --- shared helpers ------------------------------------------------- */

/* Undoes a partial append so that a failed answer leaves `b` as it was. */
static void
rollback(struct buf *b, size_t len)
{
	if (b->b_data != NULL) {
		b->b_len = len;
		b->b_data[len] = '\0';
	}
}

/*
 * Appends "<indent><name>v1v2...</name>\n" with every value escaped; the
 * values are a NULL-terminated list that is concatenated.
 */
static ps_err
leaf(struct buf *b, int indent, const char *name, ...)
{
	const char *v;
	va_list ap;
	ps_err rc;

	if ((rc = buf_addf(b, "%*s<%s>", indent, "", name)) != PS_OK)
		return rc;
	va_start(ap, name);
	while (rc == PS_OK && (v = va_arg(ap, const char *)) != NULL)
		rc = xml_add_text(b, v);
	va_end(ap);
	if (rc == PS_OK)
		rc = buf_addf(b, "</%s>\n", name);
	return rc;
}

/*
 * The host name in "https://host[:port]/...", brackets kept for IPv6; ""
 * when the URL does not parse (common/url.h).
 */
static void
url_host(const char *url, char *out, size_t n)
{
	struct url u;

	if (url_parse(url, URL_HTTP | URL_ANY_PORT, &u) != PS_OK)
		snprintf(out, n, "%s", "");
	else
		snprintf(out, n, u.ipv6 ? "[%s]" : "%s", u.host);
}

/* The realm of the ECP photo URL: the configured domain, else the user's. */
static const char *
realm_of(const struct ad_server *srv, const char *email)
{
	const char *at;

	if (srv->domain != NULL && *srv->domain != '\0')
		return srv->domain;
	at = strchr(email, '@');
	return at ? at + 1 : "";
}

static void
cas_version(char out[32])
{
	snprintf(out, 32, "%02d.%02d.%04d.%03d", EWS_VERSION_MAJOR,
	    EWS_VERSION_MINOR, EWS_VERSION_BUILD, EWS_VERSION_REVISION);
}

/* --- POX ------------------------------------------------------------ */

/*
 * §1.3 ServerVersion: 4 bits structure version (7), 6 bits major, 6 bits
 * minor, 1 flag bit, 15 bits build; 15.0.516 gives 73C08204, the value in
 * the reference sample.
 */
static void
pox_server_version(char out[16])
{
	unsigned long v;

	v = (7UL << 28) | ((unsigned long)EWS_VERSION_MAJOR << 22) |
	    ((unsigned long)EWS_VERSION_MINOR << 16) | (1UL << 15) |
	    (unsigned long)EWS_VERSION_BUILD;
	snprintf(out, 16, "%08lX", v);
}

/* §1.4: Error Id is a numeric hash of the server name; FNV-1a here. */
static uint32_t
host_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static const char *
pox_message(int code)
{
	switch (code) {
	case 500:	return "The email address can't be found.";
	case 600:	return "Invalid Request";
	case 601:	return "The requested schema is not available.";
	default:	return "Internal Server Error";
	}
}

/*
 * §1.4: Autodiscover/Response/Error with Time and Id attributes. The
 * Response is in the outer 2006 namespace as in the docs sample; this is
 * where exchangelib looks (its ErrorResponse class), and the EWS Managed
 * API matches local names only.
 */
static ps_err
pox_error(const struct ad_server *srv, struct buf *b, int code)
{
	struct timespec ts;
	struct tm tm;
	char host[256];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	url_host(srv->base_url, host, sizeof(host));
	return buf_addf(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"" NS_POX_BASE "\">\n"
	    "  <Response>\n"
	    "    <Error Time=\"%02d:%02d:%02d.%07ld\" Id=\"%lu\">\n"
	    "      <ErrorCode>%d</ErrorCode>\n"
	    "      <Message>%s</Message>\n"
	    "      <DebugData />\n"
	    "    </Error>\n"
	    "  </Response>\n"
	    "</Autodiscover>\n",
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 100),
	    (unsigned long)host_hash(host), code, pox_message(code));
}

/*
 * One Protocol element (§1.3). EXCH carries the internal URLs and EXPR
 * the external ones; the master has one base URL, so both carry the same
 * EwsUrl, EcpUrl, EcpUrl-photo and OABUrl (the directory of the offline
 * address book's manifest, <OABUrl>oab.xml, [MS-OXWOAB]), each on its
 * own line.
 */
static ps_err
pox_protocol(const struct ad_server *srv, struct buf *b, const char *type,
    const char *realm)
{
	const char *base = srv->base_url;
	char host[256], sv[16];
	bool exch = strcmp(type, "EXCH") == 0;
	ps_err rc;

	url_host(base, host, sizeof(host));
	pox_server_version(sv);
	if ((rc = buf_adds(b, "      <Protocol>\n")) != PS_OK ||
	    (rc = leaf(b, 8, "Type", type, NULL)) != PS_OK ||
	    (rc = leaf(b, 8, "Server", host, NULL)) != PS_OK)
		return rc;
	if (exch) {
		if ((rc = leaf(b, 8, "ServerDN", DN_SERVERS, host, NULL)) !=
		    PS_OK ||
		    (rc = leaf(b, 8, "ServerVersion", sv, NULL)) != PS_OK)
			return rc;
	} else {
		if ((rc = leaf(b, 8, "SSL",
		    str_case_prefix(base, "https:") ? "On" : "Off", NULL)) !=
		    PS_OK)
			return rc;
	}
	if ((rc = leaf(b, 8, "ASUrl", base, "/EWS/Exchange.asmx", NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 8, "EwsUrl", base, "/EWS/Exchange.asmx", NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 8, "EmwsUrl", base, "/EWS/Exchange.asmx", NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 8, "EcpUrl", base, "/ecp/", NULL)) != PS_OK ||
	    (rc = leaf(b, 8, "EcpUrl-photo", ECP_PHOTO_FRAGMENT, realm,
	    NULL)) != PS_OK ||
	    (rc = leaf(b, 8, "OOFUrl", base, "/EWS/Exchange.asmx", NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 8, "OABUrl", base, "/OAB/", srv->deployment_id ?
	    srv->deployment_id : "", "/", NULL)) != PS_OK ||
	    (rc = leaf(b, 8, "ServerExclusiveConnect", exch ? "off" : "on",
	    NULL)) != PS_OK)
		return rc;
	return buf_adds(b, "      </Protocol>\n");
}

static ps_err
pox_settings(const struct ad_server *srv, struct buf *b, const char *email,
    const char *display)
{
	const char *realm = realm_of(srv, email);
	ps_err rc;

	/* §1.3: the outer element in 2006, Response in 2006a. */
	if ((rc = buf_adds(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"" NS_POX_BASE "\">\n"
	    "  <Response xmlns=\"" NS_POX_OUTLOOK "\">\n"
	    "    <User>\n")) != PS_OK ||
	    (rc = leaf(b, 6, "DisplayName", display, NULL)) != PS_OK ||
	    (rc = leaf(b, 6, "LegacyDN", DN_RECIPIENTS, email, NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 6, "AutoDiscoverSMTPAddress", email, NULL)) !=
	    PS_OK ||
	    (rc = leaf(b, 6, "DeploymentId", srv->deployment_id ?
	    srv->deployment_id : "", NULL)) != PS_OK ||
	    (rc = buf_adds(b,
	    "    </User>\n"
	    "    <Account>\n"
	    "      <AccountType>email</AccountType>\n"
	    "      <Action>settings</Action>\n"
	    "      <MicrosoftOnline>False</MicrosoftOnline>\n")) != PS_OK ||
	    (rc = pox_protocol(srv, b, "EXCH", realm)) != PS_OK ||
	    (rc = pox_protocol(srv, b, "EXPR", realm)) != PS_OK)
		return rc;
	return buf_adds(b,
	    "    </Account>\n"
	    "  </Response>\n"
	    "</Autodiscover>\n");
}

/*
 * Maps one of our LegacyDNs back to its SMTP address; false for any other
 * DN (treated as an unknown address, 500).
 */
static bool
legacy_dn_email(const char *dn, char *email, size_t n)
{
	size_t plen = strlen(DN_RECIPIENTS);

	if (strlen(dn) <= plen || !str_case_prefix(dn, DN_RECIPIENTS))
		return false;
	if (!str_copy(email, dn + plen, n))
		return false;
	return email_valid(email);
}

void
autodiscover_pox(const struct ad_server *srv, const char *body, size_t len,
    struct buf *out, struct ad_outcome *oc)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *req;
	const char *schema, *legacy, *addr;
	char email[256];
	char *display = NULL;
	size_t start = out->b_len;
	int code = 0;
	ps_err rc;

	memset(oc, 0, sizeof(*oc));
	oc->status = 200;	/* §1.4: errors travel in a 200 body */
	email[0] = '\0';

	if (xml_parse(body, len, &doc) != PS_OK) {
		code = 600;
		goto answer;
	}
	/* §1.2: Autodiscover/Request; clients all use the 2006 request ns. */
	req = xml_child(xml_root(doc), NULL, "Request");
	if (strcmp(xml_name(xml_root(doc)), "Autodiscover") != 0 ||
	    req == NULL) {
		code = 600;
		goto answer;
	}
	schema = xml_text(xml_child(req, NULL, "AcceptableResponseSchema"));
	legacy = xml_text(xml_child(req, NULL, "LegacyDN"));
	addr = xml_text(xml_child(req, NULL, "EMailAddress"));
	if (schema == NULL) {
		code = 600;
		goto answer;
	}
	/* [MS-OXDSCLI] 2.2.4.1.1.3.2: a schema we cannot serve is 601. */
	if (strcmp(schema, NS_POX_OUTLOOK) != 0) {
		code = 601;
		goto answer;
	}
	/* §1.1 ([MS-OXDSCLI] 3.2.5): LegacyDN wins over EMailAddress. */
	if (legacy != NULL && *legacy != '\0') {
		if (!legacy_dn_email(legacy, email, sizeof(email))) {
			str_copy(oc->email, legacy, sizeof(oc->email));
			code = 500;
			goto answer;
		}
	} else {
		if (addr == NULL || !email_valid(addr)) {
			if (addr != NULL)
				str_copy(oc->email, addr, sizeof(oc->email));
			code = 600;
			goto answer;
		}
		str_copy(email, addr, sizeof(email));
	}
	str_copy(oc->email, email, sizeof(oc->email));

	rc = srv->lookup(srv->lookup_arg, email, &display);
	if (rc == PS_ENOTFOUND) {
		code = 500;
		goto answer;
	}
	if (rc != PS_OK) {
		code = 603;	/* [MS-OXDSCLI]: internal error */
		goto answer;
	}
	if (pox_settings(srv, out, email, display ? display : email) !=
	    PS_OK) {
		rollback(out, start);
		code = 603;
		goto answer;
	}
	oc->result = "settings";
	goto done;
answer:
	switch (code) {
	case 500:	oc->result = "error-500"; break;
	case 600:	oc->result = "error-600"; break;
	case 601:	oc->result = "error-601"; break;
	default:	oc->result = "error-603"; break;
	}
	if (pox_error(srv, out, code) != PS_OK)
		rollback(out, start);
done:
	free(display);
	xml_free(doc);
}

/* --- SOAP GetUserSettings, server side ------------------------------ */

enum setting_kind {
	SET_DISPLAY_NAME,
	SET_USER_DN,
	SET_DEPLOYMENT_ID,
	SET_SMTP_ADDRESS,
	SET_MAILBOX_DN,
	SET_EWS_URL,
	SET_OAB_URL,
	SET_PHOTOS_URL,
	SET_ECP_URL,
	SET_ECP_PHOTO_URL,
	SET_ECP_PHOTO_FRAGMENT,
	SET_CAS_VERSION,
	SET_EWS_SCHEMAS,
	SET_EWS_VERSION,
	SET_MS_ONLINE,
};

/*
 * §2.4: the settings the master serves. Internal and External have the
 * same value: the master has one base URL. MailboxDN and UserMSOnline are
 * here because exchangelib's SOAP discovery asks for MailboxDN and fails
 * on any UserSettingError.
 */
static const struct {
	const char		*name;
	enum setting_kind	 kind;
} settings_table[] = {
	{ "UserDisplayName",		SET_DISPLAY_NAME },
	{ "UserDN",			SET_USER_DN },
	{ "UserDeploymentId",		SET_DEPLOYMENT_ID },
	{ "AutoDiscoverSMTPAddress",	SET_SMTP_ADDRESS },
	{ "MailboxDN",			SET_MAILBOX_DN },
	{ "InternalEwsUrl",		SET_EWS_URL },
	{ "ExternalEwsUrl",		SET_EWS_URL },
	{ "InternalOABUrl",		SET_OAB_URL },
	{ "ExternalOABUrl",		SET_OAB_URL },
	{ "InternalPhotosUrl",		SET_PHOTOS_URL },
	{ "ExternalPhotosUrl",		SET_PHOTOS_URL },
	{ "InternalEcpUrl",		SET_ECP_URL },
	{ "ExternalEcpUrl",		SET_ECP_URL },
	{ "InternalEcpPhotoUrl",	SET_ECP_PHOTO_URL },
	{ "ExternalEcpPhotoUrl",	SET_ECP_PHOTO_URL },
	{ "EcpPhotoUrlFragment",	SET_ECP_PHOTO_FRAGMENT },
	{ "CasVersion",			SET_CAS_VERSION },
	{ "EwsSupportedSchemas",	SET_EWS_SCHEMAS },
	{ "ExternalEwsVersion",		SET_EWS_VERSION },
	{ "UserMSOnline",		SET_MS_ONLINE },
};
#define SETTINGS_COUNT	(sizeof(settings_table) / sizeof(settings_table[0]))

/* A requested setting: an index into settings_table, or -1 and its name. */
struct wanted {
	int		 index;
	const char	*name;
};

static int
setting_index(const char *name)
{
	size_t i;

	/* Matched without regard to case, answered in canonical spelling. */
	for (i = 0; i < SETTINGS_COUNT; i++)
		if (str_case_eq(settings_table[i].name, name))
			return (int)i;
	return -1;
}

static ps_err
soap_header(struct buf *b, const char *action)
{
	/* §2.2: the EWS Managed API requires a non-empty s:Header. */
	return buf_addf(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\">\n"
	    "  <s:Header>\n"
	    "    <a:Action s:mustUnderstand=\"1\">%s</a:Action>\n"
	    "    <h:ServerVersionInfo xmlns:h=\"" NS_AD "\""
	    " xmlns:i=\"" NS_XSI "\">\n"
	    "      <h:MajorVersion>%d</h:MajorVersion>\n"
	    "      <h:MinorVersion>%d</h:MinorVersion>\n"
	    "      <h:MajorBuildNumber>%d</h:MajorBuildNumber>\n"
	    "      <h:MinorBuildNumber>%d</h:MinorBuildNumber>\n"
	    "      <h:Version>%s</h:Version>\n"
	    "    </h:ServerVersionInfo>\n"
	    "  </s:Header>\n",
	    action, EWS_VERSION_MAJOR, EWS_VERSION_MINOR, EWS_VERSION_BUILD,
	    EWS_VERSION_REVISION, EWS_VERSION_NAME);
}

/*
 * A SOAP 1.1 fault shaped like WCF's (autodiscover.svc is a WCF service):
 * an unknown action gets a:ActionNotSupported with the ContractFilter
 * text, which exchangelib recognises.
 */
static ps_err
soap_fault(struct buf *b, const char *code, const char *text)
{
	ps_err rc;

	if ((rc = buf_adds(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\">\n"
	    "  <s:Header>\n"
	    "    <a:Action s:mustUnderstand=\"1\">" ACTION_FAULT
	    "</a:Action>\n"
	    "  </s:Header>\n"
	    "  <s:Body>\n"
	    "    <s:Fault>\n")) != PS_OK ||
	    (rc = leaf(b, 6, "faultcode", code, NULL)) != PS_OK ||
	    (rc = buf_adds(b, "      <faultstring xml:lang=\"en-US\">")) !=
	    PS_OK ||
	    (rc = xml_add_text(b, text)) != PS_OK)
		return rc;
	return buf_adds(b,
	    "</faultstring>\n"
	    "    </s:Fault>\n"
	    "  </s:Body>\n"
	    "</s:Envelope>\n");
}

static ps_err
soap_setting(struct buf *b, const struct ad_server *srv, enum setting_kind k,
    const char *name, const char *email, const char *display)
{
	const char *base = srv->base_url;
	char host[256], ver[32];
	ps_err rc;

	/* §2.2: i:type="StringSetting" exactly; the EWS Managed API
	 * compares the literal string. */
	if ((rc = buf_adds(b,
	    "              <UserSetting i:type=\"StringSetting\">\n")) !=
	    PS_OK ||
	    (rc = leaf(b, 16, "Name", name, NULL)) != PS_OK)
		return rc;
	switch (k) {
	case SET_DISPLAY_NAME:
		rc = leaf(b, 16, "Value", display, NULL);
		break;
	case SET_USER_DN:
		rc = leaf(b, 16, "Value", DN_RECIPIENTS, email, NULL);
		break;
	case SET_DEPLOYMENT_ID:
		rc = leaf(b, 16, "Value", srv->deployment_id ?
		    srv->deployment_id : "", NULL);
		break;
	case SET_SMTP_ADDRESS:
		rc = leaf(b, 16, "Value", email, NULL);
		break;
	case SET_MAILBOX_DN:
		url_host(base, host, sizeof(host));
		rc = leaf(b, 16, "Value", DN_SERVERS, host,
		    "/cn=Microsoft Private MDB", NULL);
		break;
	case SET_EWS_URL:
		rc = leaf(b, 16, "Value", base, "/EWS/Exchange.asmx", NULL);
		break;
	case SET_OAB_URL:
		/* As the POX answer's OABUrl. */
		rc = leaf(b, 16, "Value", base, "/OAB/", srv->deployment_id ?
		    srv->deployment_id : "", "/", NULL);
		break;
	case SET_PHOTOS_URL:
		/* §2.4 [I]: the EWS URL plus the REST prefix. */
		rc = leaf(b, 16, "Value", base, "/EWS/Exchange.asmx/s", NULL);
		break;
	case SET_ECP_URL:
		rc = leaf(b, 16, "Value", base, "/ecp/", NULL);
		break;
	case SET_ECP_PHOTO_URL:
		rc = leaf(b, 16, "Value", base, "/ecp/", ECP_PHOTO_FRAGMENT,
		    realm_of(srv, email), NULL);
		break;
	case SET_ECP_PHOTO_FRAGMENT:
		rc = leaf(b, 16, "Value", ECP_PHOTO_FRAGMENT,
		    realm_of(srv, email), NULL);
		break;
	case SET_CAS_VERSION:
	case SET_EWS_VERSION:
		cas_version(ver);
		rc = leaf(b, 16, "Value", ver, NULL);
		break;
	case SET_EWS_SCHEMAS:
		rc = leaf(b, 16, "Value", EWS_SCHEMAS, NULL);
		break;
	case SET_MS_ONLINE:
		rc = leaf(b, 16, "Value", "False", NULL);
		break;
	}
	if (rc != PS_OK)
		return rc;
	return buf_adds(b, "              </UserSetting>\n");
}

/* One UserResponse (§2.2), in the order of the request. */
static ps_err
soap_user(struct buf *b, const struct ad_server *srv, const char *mailbox,
    const struct wanted *w, size_t nw, bool *invalid)
{
	char *display = NULL;
	const char *code = "NoError", *msg = "No error.";
	size_t i;
	ps_err rc;

	*invalid = false;
	if (!email_valid(mailbox)) {
		rc = PS_ENOTFOUND;
	} else
		rc = srv->lookup(srv->lookup_arg, mailbox, &display);
	if (rc == PS_ENOTFOUND) {
		code = "InvalidUser";
		msg = "The email address can't be found.";
		*invalid = true;
	} else if (rc != PS_OK) {
		code = "InternalServerError";
		msg = "The mailbox could not be looked up.";
	}
	if ((rc = buf_adds(b, "          <UserResponse>\n")) != PS_OK ||
	    (rc = leaf(b, 12, "ErrorCode", code, NULL)) != PS_OK ||
	    (rc = leaf(b, 12, "ErrorMessage", msg, NULL)) != PS_OK ||
	    (rc = buf_adds(b,
	    "            <RedirectTarget i:nil=\"true\" />\n")) != PS_OK)
		goto out;
	if (strcmp(code, "NoError") != 0) {
		rc = buf_adds(b,
		    "            <UserSettingErrors />\n"
		    "            <UserSettings />\n"
		    "          </UserResponse>\n");
		goto out;
	}

	/* §2.4: unknown names go to UserSettingErrors, InvalidSetting. */
	for (i = 0; i < nw && w[i].index >= 0; i++)
		;
	if (i == nw)
		rc = buf_adds(b, "            <UserSettingErrors />\n");
	else {
		rc = buf_adds(b, "            <UserSettingErrors>\n");
		for (i = 0; i < nw && rc == PS_OK; i++) {
			if (w[i].index >= 0)
				continue;
			if ((rc = buf_adds(b,
			    "              <UserSettingError>\n")) != PS_OK ||
			    (rc = leaf(b, 16, "ErrorCode", "InvalidSetting",
			    NULL)) != PS_OK ||
			    (rc = leaf(b, 16, "ErrorMessage",
			    "The requested setting is invalid.", NULL)) !=
			    PS_OK ||
			    (rc = leaf(b, 16, "SettingName", w[i].name,
			    NULL)) != PS_OK)
				break;
			rc = buf_adds(b, "              </UserSettingError>\n");
		}
		if (rc == PS_OK)
			rc = buf_adds(b, "            </UserSettingErrors>\n");
	}
	if (rc != PS_OK)
		goto out;

	/* §2.4: only the settings that were asked for. */
	for (i = 0; i < nw && w[i].index < 0; i++)
		;
	if (i == nw)
		rc = buf_adds(b, "            <UserSettings />\n");
	else {
		rc = buf_adds(b, "            <UserSettings>\n");
		for (i = 0; i < nw && rc == PS_OK; i++) {
			if (w[i].index < 0)
				continue;
			rc = soap_setting(b, srv,
			    settings_table[w[i].index].kind,
			    settings_table[w[i].index].name, mailbox,
			    display ? display : mailbox);
		}
		if (rc == PS_OK)
			rc = buf_adds(b, "            </UserSettings>\n");
	}
	if (rc == PS_OK)
		rc = buf_adds(b, "          </UserResponse>\n");
out:
	free(display);
	return rc;
}

/*
 * The whole GetUserSettingsResponseMessage. A request-level problem
 * (no users, no settings, too many) is ErrorCode InvalidRequest on the
 * Response, as the schema has it; *result tells the log what happened.
 */
/*
 * For the log: every address of a request, comma-separated, within the
 * outcome's list; one that does not fit ends the list with "...".
 */
static void
outcome_add_user(struct ad_outcome *oc, const char *mb)
{
	size_t have = strlen(oc->emails), need = strlen(mb) + (have ? 1 : 0);

	oc->users++;
	if (oc->emails_cut)
		return;
	/* room for this address, the ",..." a later one may need, and NUL */
	if (have + need + sizeof(",...") > sizeof(oc->emails)) {
		oc->emails_cut = true;
		strcat(oc->emails, have ? ",..." : "...");
		return;
	}
	if (have)
		strcat(oc->emails, ",");
	strcat(oc->emails, mb);
}

static ps_err
soap_response(struct buf *b, const struct ad_server *srv,
    const struct xml_node *request, struct ad_outcome *oc)
{
	const char **result = &oc->result;
	char *email = oc->email;
	size_t email_len = sizeof(oc->email);
	const struct xml_node *users, *u, *rs, *s;
	struct wanted w[SOAP_MAX_SETTINGS];
	const char *bad = NULL;
	size_t nw = 0, nu = 0, ninvalid = 0, i;
	bool invalid, dup, too_many = false;
	ps_err rc;

	users = xml_child(request, NS_AD, "Users");
	rs = xml_child(request, NS_AD, "RequestedSettings");
	for (u = xml_child(users, NS_AD, "User"); u != NULL;
	    u = xml_next(u, NS_AD, "User"))
		nu++;
	for (s = xml_child(rs, NS_AD, "Setting"); s != NULL && !too_many;
	    s = xml_next(s, NS_AD, "Setting")) {
		const char *name = xml_text(s);

		dup = false;
		for (i = 0; i < nw && !dup; i++)
			dup = str_case_eq(w[i].name, name);
		if (dup)
			continue;
		if (nw == SOAP_MAX_SETTINGS) {
			too_many = true;
			break;
		}
		w[nw].index = setting_index(name);
		w[nw].name = name;
		nw++;
	}
	if (request == NULL)
		bad = "The request has no Request element.";
	else if (nu == 0)
		bad = "No users were specified.";
	else if (nu > SOAP_MAX_USERS)
		bad = "Too many users were specified.";
	else if (too_many)
		bad = "Too many settings were requested.";
	else if (nw == 0)
		bad = "No settings were requested.";

	if ((rc = soap_header(b, ACTION_GUS_RESP)) != PS_OK ||
	    (rc = buf_adds(b,
	    "  <s:Body>\n"
	    "    <GetUserSettingsResponseMessage xmlns=\"" NS_AD "\">\n"
	    "      <Response xmlns:i=\"" NS_XSI "\">\n")) != PS_OK)
		return rc;
	if (bad != NULL) {
		*result = "invalid-request";
		if ((rc = leaf(b, 8, "ErrorCode", "InvalidRequest", NULL)) !=
		    PS_OK ||
		    (rc = leaf(b, 8, "ErrorMessage", bad, NULL)) != PS_OK ||
		    (rc = buf_adds(b, "        <UserResponses />\n")) != PS_OK)
			return rc;
	} else {
		if ((rc = buf_adds(b,
		    "        <ErrorCode>NoError</ErrorCode>\n"
		    "        <ErrorMessage />\n"
		    "        <UserResponses>\n")) != PS_OK)
			return rc;
		for (u = xml_child(users, NS_AD, "User"); u != NULL;
		    u = xml_next(u, NS_AD, "User")) {
			const char *mb = xml_text(xml_child(u, NS_AD,
			    "Mailbox"));

			if (mb == NULL)
				mb = "";
			if (email[0] == '\0')
				str_copy(email, mb, email_len);
			outcome_add_user(oc, mb);
			rc = soap_user(b, srv, mb, w, nw, &invalid);
			if (rc != PS_OK)
				return rc;
			if (invalid)
				ninvalid++;
		}
		if ((rc = buf_adds(b, "        </UserResponses>\n")) != PS_OK)
			return rc;
		*result = ninvalid == nu ? "invalid-user" : "settings";
	}
	return buf_adds(b,
	    "      </Response>\n"
	    "    </GetUserSettingsResponseMessage>\n"
	    "  </s:Body>\n"
	    "</s:Envelope>\n");
}

void
autodiscover_soap(const struct ad_server *srv, const char *body, size_t len,
    struct buf *out, struct ad_outcome *oc)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *env, *hdr, *b, *op;
	const char *action = NULL, *fault_code = "s:Client";
	char text[512];
	size_t start = out->b_len;
	bool gus;

	memset(oc, 0, sizeof(*oc));
	text[0] = '\0';

	if (xml_parse(body, len, &doc) != PS_OK) {
		snprintf(text, sizeof(text), "The request is not valid XML: %s",
		    ps_errmsg());
		oc->status = 400;
		goto fault;
	}
	env = xml_root(doc);
	if (strcmp(xml_name(env), "Envelope") != 0 ||
	    strcmp(xml_ns(env), NS_SOAP) != 0 ||
	    (b = xml_child(env, NS_SOAP, "Body")) == NULL) {
		snprintf(text, sizeof(text),
		    "The request is not a SOAP 1.1 envelope with a Body.");
		oc->status = 400;
		goto fault;
	}
	/*
	 * §2.1: dispatch on wsa:Action and the Body element, never on an
	 * HTTP SOAPAction header (the EWS Managed API sends none).
	 */
	hdr = xml_child(env, NS_SOAP, "Header");
	action = xml_text(xml_child(hdr, NS_WSA, "Action"));
	op = xml_first_element(b);
	gus = op != NULL &&
	    strcmp(xml_name(op), "GetUserSettingsRequestMessage") == 0 &&
	    strcmp(xml_ns(op), NS_AD) == 0;
	if ((action != NULL && strcmp(action, ACTION_GUS) != 0) ||
	    (action == NULL && !gus)) {
		/*
		 * Unknown operation: 500 and a:ActionNotSupported, as WCF
		 * answers a ContractFilter mismatch.
		 */
		snprintf(text, sizeof(text), "The message with Action '%s' "
		    "cannot be processed at the receiver, due to a "
		    "ContractFilter mismatch at the EndpointDispatcher.",
		    action ? action : op ? xml_name(op) : "");
		fault_code = "a:ActionNotSupported";
		oc->status = 500;
		goto fault;
	}
	if (!gus) {
		snprintf(text, sizeof(text), "The SOAP Body does not hold a "
		    "GetUserSettingsRequestMessage.");
		oc->status = 400;
		goto fault;
	}
	oc->status = 200;
	if (soap_response(out, srv, xml_child(op, NS_AD, "Request"), oc) ==
	    PS_OK)
		goto done;
	rollback(out, start);
	snprintf(text, sizeof(text), "The response could not be built: %s",
	    ps_errmsg());
	fault_code = "s:Server";
	oc->status = 500;
fault:
	oc->result = oc->status == 400 ? "fault-400" : "fault-500";
	if (soap_fault(out, fault_code, text) != PS_OK)
		rollback(out, start);
done:
	xml_free(doc);
}

/* --- SOAP GetUserSettings, client side ------------------------------ */

ps_err
autodiscover_soap_request_many(struct buf *out, const char *to_url,
    const char *const *emails, size_t n_emails, const char *const *settings,
    size_t n)
{
	size_t start = out->b_len, i;
	ps_err rc;

	if (to_url == NULL || *to_url == '\0' || emails == NULL ||
	    n_emails == 0 || n_emails > AD_MAX_USERS || settings == NULL ||
	    n == 0 || n > SOAP_MAX_SETTINGS)
		return ps_errf(PS_EINVAL, "GetUserSettings request needs a "
		    "URL, 1-%d addresses and 1-%d settings", AD_MAX_USERS,
		    SOAP_MAX_SETTINGS);
	for (i = 0; i < n_emails; i++)
		if (emails[i] == NULL || *emails[i] == '\0')
			return ps_errf(PS_EINVAL, "empty address");
	for (i = 0; i < n; i++)
		if (settings[i] == NULL || *settings[i] == '\0')
			return ps_errf(PS_EINVAL, "empty setting name");

	/*
	 * §2.1: what the EWS Managed API and exchangelib send: SOAP 1.1,
	 * RequestedServerVersion, wsa:Action and wsa:To in the header.
	 */
	if ((rc = buf_adds(out,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<soap:Envelope xmlns:a=\"" NS_AD "\""
	    " xmlns:wsa=\"" NS_WSA "\""
	    " xmlns:xsi=\"" NS_XSI "\""
	    " xmlns:soap=\"" NS_SOAP "\">\n"
	    "  <soap:Header>\n"
	    "    <a:RequestedServerVersion>" EWS_VERSION_NAME
	    "</a:RequestedServerVersion>\n"
	    "    <wsa:Action>" ACTION_GUS "</wsa:Action>\n")) != PS_OK ||
	    (rc = leaf(out, 4, "wsa:To", to_url, NULL)) != PS_OK ||
	    (rc = buf_adds(out,
	    "  </soap:Header>\n"
	    "  <soap:Body>\n"
	    "    <a:GetUserSettingsRequestMessage>\n"
	    "      <a:Request>\n"
	    "        <a:Users>\n")) != PS_OK)
		goto out;
	for (i = 0; i < n_emails; i++)
		if ((rc = buf_adds(out, "          <a:User>\n")) != PS_OK ||
		    (rc = leaf(out, 12, "a:Mailbox", emails[i], NULL)) !=
		    PS_OK ||
		    (rc = buf_adds(out, "          </a:User>\n")) != PS_OK)
			goto out;
	if ((rc = buf_adds(out,
	    "        </a:Users>\n"
	    "        <a:RequestedSettings>\n")) != PS_OK)
		goto out;
	for (i = 0; i < n; i++)
		if ((rc = leaf(out, 10, "a:Setting", settings[i], NULL)) !=
		    PS_OK)
			goto out;
	rc = buf_adds(out,
	    "        </a:RequestedSettings>\n"
	    "      </a:Request>\n"
	    "    </a:GetUserSettingsRequestMessage>\n"
	    "  </soap:Body>\n"
	    "</soap:Envelope>\n");
out:
	if (rc != PS_OK)
		rollback(out, start);
	return rc;
}

ps_err
autodiscover_soap_request(struct buf *out, const char *to_url,
    const char *email, const char *const *settings, size_t n)
{
	return autodiscover_soap_request_many(out, to_url, &email, 1,
	    settings, n);
}

/* The value of the first non-empty setting among `names`, or NULL. */
static const char *
pick(const char *const *values, const char *const *names, size_t n,
    const char *want)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], want) == 0 && values[i] != NULL &&
		    *values[i] != '\0')
			return values[i];
	return NULL;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* One UserResponse into `out` (§2.3). */
static void
user_response(const struct xml_node *ur, const char *code,
    struct ad_user_settings *out)
{
	const char *names[SOAP_MAX_SETTINGS], *values[SOAP_MAX_SETTINGS];
	const struct xml_node *us, *s;
	const char *text, *rt, *v, *ecp, *frag;
	size_t n = 0;

	text = xml_text(xml_child(ur, NS_AD, "ErrorMessage"));
	out->error_code = xstrdup(code);
	out->error_message = xstrdup(text ? text : "");
	/* §2.3: RedirectAddress/RedirectUrl put the target here; an
	 * unused RedirectTarget is i:nil and empty. */
	rt = xml_text(xml_child(ur, NS_AD, "RedirectTarget"));
	if (rt != NULL && *rt != '\0')
		out->redirect_target = xstrdup(rt);

	/*
	 * Collect the string settings; other types (web client URL
	 * collections and such) have no Value and are skipped.
	 */
	us = xml_child(ur, NS_AD, "UserSettings");
	for (s = xml_child(us, NS_AD, "UserSetting"); s != NULL &&
	    n < SOAP_MAX_SETTINGS; s = xml_next(s, NS_AD, "UserSetting")) {
		const char *name = xml_text(xml_child(s, NS_AD, "Name"));
		const char *value = xml_text(xml_child(s, NS_AD, "Value"));

		if (name == NULL || value == NULL)
			continue;
		names[n] = name;
		values[n] = value;
		n++;
	}
	/* Prefer External*, the URLs meant for a peer outside the LAN. */
	if ((v = pick(values, names, n, "ExternalEwsUrl")) == NULL)
		v = pick(values, names, n, "InternalEwsUrl");
	out->ews_url = dup_or_null(v);
	if ((v = pick(values, names, n, "ExternalPhotosUrl")) == NULL)
		v = pick(values, names, n, "InternalPhotosUrl");
	else
		out->external_photos = true;
	out->photos_url = dup_or_null(v);
	if ((v = pick(values, names, n, "ExternalEcpPhotoUrl")) == NULL)
		v = pick(values, names, n, "InternalEcpPhotoUrl");
	else
		out->external_ecp_photo = true;
	out->ecp_photo_url = dup_or_null(v);
	if (out->ecp_photo_url == NULL &&
	    (frag = pick(values, names, n, "EcpPhotoUrlFragment")) != NULL) {
		/* §1.3: the EWS Managed API builds EcpUrl + fragment. */
		if ((ecp = pick(values, names, n, "ExternalEcpUrl")) == NULL)
			ecp = pick(values, names, n, "InternalEcpUrl");
		if (ecp != NULL)
			out->ecp_photo_url = xasprintf("%s%s", ecp, frag);
	}
	out->display_name = dup_or_null(pick(values, names, n,
	    "UserDisplayName"));
}

ps_err
autodiscover_soap_parse_many(const char *body, size_t len,
    struct ad_user_settings *out, size_t n)
{
	struct xml_doc *doc = NULL;
	const struct xml_node *env, *b, *f, *msg, *resp, *ur;
	const char *code, *text;
	size_t i;
	ps_err rc;

	memset(out, 0, n * sizeof(*out));
	if (xml_parse(body, len, &doc) != PS_OK) {
		char why[256];

		str_copy(why, ps_errmsg(), sizeof(why));
		rc = ps_errf(PS_EUPSTREAM, "Autodiscover answer: %s", why);
		goto out;
	}
	env = xml_root(doc);
	if (strcmp(xml_name(env), "Envelope") != 0 ||
	    (b = xml_child(env, xml_ns(env), "Body")) == NULL) {
		rc = ps_errf(PS_EUPSTREAM, "Autodiscover answer is not SOAP");
		goto out;
	}
	if ((f = xml_child(b, xml_ns(env), "Fault")) != NULL) {
		rc = ps_errf(PS_EUPSTREAM, "Autodiscover SOAP fault %s: %s",
		    xml_text(xml_child(f, NULL, "faultcode")) ?
		    xml_text(xml_child(f, NULL, "faultcode")) : "?",
		    xml_text(xml_child(f, NULL, "faultstring")) ?
		    xml_text(xml_child(f, NULL, "faultstring")) : "?");
		goto out;
	}
	msg = xml_child(b, NS_AD, "GetUserSettingsResponseMessage");
	resp = xml_child(msg, NS_AD, "Response");
	code = xml_text(xml_child(resp, NS_AD, "ErrorCode"));
	if (code == NULL) {
		rc = ps_errf(PS_EUPSTREAM,
		    "not a GetUserSettings response");
		goto out;
	}
	/* §2.3: a response-level error is an answer for every user. */
	if (strcmp(code, "NoError") != 0) {
		text = xml_text(xml_child(resp, NS_AD, "ErrorMessage"));
		for (i = 0; i < n; i++) {
			out[i].error_code = xstrdup(code);
			out[i].error_message = xstrdup(text ? text : "");
		}
		rc = PS_OK;
		goto out;
	}
	/* [MS-OXDSCLI]: one UserResponse per User, in the request's order. */
	ur = xml_path(resp, "UserResponses/UserResponse");
	for (i = 0; i < n; i++) {
		code = xml_text(xml_child(ur, NS_AD, "ErrorCode"));
		if (code == NULL) {
			rc = ps_errf(PS_EUPSTREAM, "GetUserSettings response "
			    "with %zu UserResponse%s for %zu users", i,
			    i == 1 ? "" : "s", n);
			goto out;
		}
		user_response(ur, code, &out[i]);
		ur = xml_next(ur, NS_AD, "UserResponse");
	}
	rc = PS_OK;
out:
	if (rc != PS_OK)
		for (i = 0; i < n; i++)
			ad_user_settings_cleanup(&out[i]);
	xml_free(doc);
	return rc;
}

ps_err
autodiscover_soap_parse(const char *body, size_t len,
    struct ad_user_settings *out)
{
	return autodiscover_soap_parse_many(body, len, out, 1);
}

void
ad_user_settings_cleanup(struct ad_user_settings *s)
{
	free(s->error_code);
	free(s->error_message);
	free(s->redirect_target);
	free(s->ews_url);
	free(s->photos_url);
	free(s->ecp_photo_url);
	free(s->display_name);
	memset(s, 0, sizeof(*s));
}

/* --- what an answer means, and where redirects may lead ------------- */

static void
say(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
}

enum ad_verdict
autodiscover_verdict(const struct ad_user_settings *us, char *why, size_t n)
{
	const char *code = us->error_code ? us->error_code : "NoError";
	const char *msg = us->error_message ? us->error_message : "";

	if (strcmp(code, "NoError") == 0) {
		if (us->photos_url != NULL && us->ecp_photo_url != NULL) {
			say(why, n, "a mailbox");
			return AD_MAILBOX;
		}
		/* The original logs "PhotosUrl or EcpPhotoUrl is null (from
		 * AutoDiscover)" and treats the user as having no mailbox. */
		say(why, n, "no mailbox: PhotosUrl or EcpPhotoUrl is null "
		    "(from AutoDiscover)");
		return AD_NO_MAILBOX;
	}
	if (strcmp(code, "InvalidUser") == 0) {
		say(why, n, "no mailbox: Autodiscover says InvalidUser (%s)",
		    msg);
		return AD_NO_MAILBOX;
	}
	if ((strcmp(code, "RedirectAddress") == 0 ||
	    strcmp(code, "RedirectUrl") == 0) && us->redirect_target) {
		say(why, n, "Autodiscover says %s to %s", code,
		    us->redirect_target);
		return code[8] == 'A' ? AD_REDIRECT_ADDRESS : AD_REDIRECT_URL;
	}
	say(why, n, "Autodiscover says %s (%s)", code, msg);
	return AD_ERROR;
}

ps_err
ad_hops_add(struct ad_hops *h, const char *url, const char *email)
{
	size_t i;

	if (!str_case_prefix(url, "https://"))
		return ps_errf(PS_EINVAL, "refusing to ask Autodiscover at %s "
		    "(https only)", url);
	if (strchr(email, '@') == NULL || strchr(email, '@')[1] == '\0')
		return ps_errf(PS_EINVAL, "Autodiscover redirected to \"%s\", "
		    "which is not an address", email);
	for (i = 0; i < h->n; i++)
		if (str_case_eq(h->url[i], url) && str_case_eq(h->email[i],
		    email))
			return ps_errf(PS_EEXIST, "Autodiscover redirects in a "
			    "loop (back to %s at %s)", email, url);
	if (h->n == AD_MAX_HOPS + 1)
		return ps_errf(PS_ELIMIT, "too many Autodiscover redirects "
		    "(more than %d)", AD_MAX_HOPS);
	h->url[h->n] = xstrdup(url);
	h->email[h->n] = xstrdup(email);
	h->n++;
	return PS_OK;
}

void
ad_hops_cleanup(struct ad_hops *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		free(h->url[i]);
		free(h->email[i]);
	}
	memset(h, 0, sizeof(*h));
}

ps_err
autodiscover_url(const char *ad_domain, const char *email, char **url)
{
	const char *at = strchr(email, '@');
	struct url u;

	*url = NULL;
	if (ad_domain != NULL && *ad_domain != '\0') {
		*url = xasprintf("https://%s" AD_SVC_PATH, ad_domain);
		return PS_OK;
	}
	if (at == NULL || at[1] == '\0')
		return ps_errf(PS_EINVAL, "the address %s has no domain",
		    email);
	*url = xasprintf("https://autodiscover.%s" AD_SVC_PATH, at + 1);
	/*
	 * An address may hold what a host name may not ('#', '?', ':',
	 * '/'): "u@evil.example#.contoso.com" would ask evil.example.
	 */
	if (url_parse(*url, 0, &u) != PS_OK || u.port_given ||
	    strcmp(u.rest, AD_SVC_PATH) != 0) {
		free(*url);
		*url = NULL;
		return ps_errf(PS_EINVAL, "the domain of %s is not a host "
		    "name", email);
	}
	return PS_OK;
}
