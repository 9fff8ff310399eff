/*
 * The change-photo page: what Exchange 2013's ECP "Outlook Web App photo
 * dialog" is to SharePoint, at the ECP photo URL Autodiscover publishes.
 *
 *   GET  /ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1&...&returnUrl=
 *	the page: a sign-in form, or the photo, its preview and the forms
 *   POST /ecp/login, /ecp/logout
 *   GET  /ecp/photo.ashx?kind=current|preview&size=HRnxn
 *   POST /ecp/photo/upload (multipart), /ecp/photo/save, /cancel, /remove
 *
 * A mailbox with a password signs in with a form (a double-submit CSRF
 * cookie guards it); its password is verified with Argon2id once, and a
 * session cookie (Path=/ecp, HttpOnly, Secure, SameSite=Lax) carries the
 * session, which the store keeps by a digest of the cookie. Every POST
 * carries the session's CSRF token. Everything acts on the session's own
 * mailbox: no address is ever taken from the request.
 *
 * An upload is rendered like `photo set` (master_photo_render) on a
 * worker thread and kept as a pending preview, not as the photo; Save
 * makes it the photo atomically, Cancel discards it. The page's query
 * parameters are carried through every form and redirect; returnUrl is
 * offered as a "Back to" link only when its origin is a registered
 * partner's. Plain HTML that works without JavaScript; every value is
 * escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "master_int.h"
#include "pki/pki.h"
#include "work/work.h"

#define HTML_TYPE		"text/html; charset=utf-8"
#define PAGE_PATH		"/ecp/PersonalSettings/EditAccount.aspx"
#define SESSION_COOKIE		"ecp_session"
#define CSRF_COOKIE		"ecp_csrf"
#define SESSION_LIFETIME	(8 * 3600)
#define PREVIEW_LIFETIME	(30 * 60)
#define MAX_UPLOADS		8	/* rendering or queued at once */
#define MAX_PARAM		2048	/* longest query value carried on */
#define PAGE_SIZE		"HR240x240"	/* the photos on the page */
#define PAGE_SIZE_2X		"HR504x504"
#define PAGE_MAX		(256 * 1024)
#define MB			(1024u * 1024u)

struct upload;

struct master_ecp {
	struct master_state	*ms;
	struct work_pool	*pool;
	struct upload		*uploads;	/* being rendered */
	char			*dummy_hash;	/* for unknown addresses */
};

/* The signed-in mailbox of a request. */
struct viewer {
	struct store_mailbox	m;
	char			csrf[65];
};

/* An upload on its way through a worker thread. */
struct upload {
	struct master_ecp	*e;
	struct http_req		*r;
	struct upload		*next, **prevp;
	struct viewer		 v;
	const void		*data;	/* the file, in the request's body */
	size_t			 len;
	struct master_photo	 photo;
	ps_err			 rc;
	char			 error[512];
};

/* The query parameters of the page, carried through sign-in and forms. */
static const char *const kept_params[] = {
	"rfr", "chgPhoto", "exsvurl", "realm", "returnUrl",
};

/* ---- URLs ---- */

/* "?rfr=olk&chgPhoto=1&..." from the request's own parameters, or "". */
static void
add_query(struct buf *b, struct http_req *r)
{
	const char *v;
	char *enc;
	size_t i;
	bool first = true;

	for (i = 0; i < sizeof(kept_params) / sizeof(kept_params[0]); i++) {
		v = http_req_query_ci(r, kept_params[i]);
		if (v == NULL || strlen(v) > MAX_PARAM)
			continue;
		enc = http_encode(v);
		buf_addf(b, "%s%s=%s", first ? "?" : "&", kept_params[i], enc);
		free(enc);
		first = false;
	}
}

/* A path of ours with the page's parameters; the caller frees it. */
static char *
local_url(struct http_req *r, const char *path, const char *done)
{
	struct buf b;

	buf_init(&b, 64 * 1024);
	buf_adds(&b, path);
	add_query(&b, r);
	if (done)
		buf_addf(&b, "%sdone=%s", strchr(buf_str(&b), '?') ? "&" :
		    "?", done);
	return buf_take(&b, NULL);
}

/*
 * The origin of an absolute https URL, in lower case with the port
 * always given ("https://portal.contoso.com:443"). False, with the reason
 * in *why, for anything else: relative and scheme-relative references,
 * other schemes (http included), user info, backslashes, spaces,
 * control and non-ASCII characters, percent-encoded hosts.
 */
static bool
url_origin(const char *url, char *out, size_t n, const char **why)
{
	const char *p, *host, *end;
	size_t hl;
	long port = 443;

	for (p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '\\') {
			*why = "spaces, control characters or backslashes";
			return false;
		}
	if (!str_case_prefix(url, "https://")) {
		*why = str_case_prefix(url, "http://") ? "not https" :
		    "not an absolute https URL";
		return false;
	}
	host = url + 8;
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)) != NULL) {
		*why = "user information in the URL";
		return false;
	}
	if (*host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (p == NULL) {
			*why = "an unclosed IPv6 address";
			return false;
		}
		p++;
	} else {
		for (p = host; p < end && *p != ':'; p++)
			if (!((*p >= 'a' && *p <= 'z') ||
			    (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' ||
			    *p == '.')) {
				*why = "characters a host name cannot have";
				return false;
			}
	}
	hl = (size_t)(p - host);
	if (hl == 0) {
		*why = "no host";
		return false;
	}
	if (p < end) {
		if (*p++ != ':') {
			*why = "a malformed host";
			return false;
		}
		if (p < end) {
			port = 0;
			for (; p < end; p++) {
				if (*p < '0' || *p > '9' || port > 65535) {
					*why = "an invalid port";
					return false;
				}
				port = port * 10 + (*p - '0');
			}
			if (port < 1 || port > 65535) {
				*why = "an invalid port";
				return false;
			}
		}
	}
	if (snprintf(out, n, "https://%.*s:%ld", (int)hl, host, port) >=
	    (int)n) {
		*why = "a host name too long";
		return false;
	}
	str_lower(out);
	return true;
}

/* Where "Back to" leads: a registered partner's site, or nowhere. */
struct back {
	char	 origin[512];
	char	 site[512];	/* host[:port] as the URL has it, for people */
	bool	 found;
};

static ps_err
back_match(void *arg, const struct store_partner *p)
{
	struct back *bk = arg;
	char origin[512];
	const char *why;

	/* Partners registered from a file have no origin. */
	if (!bk->found && p->metadata_url && url_origin(p->metadata_url,
	    origin, sizeof(origin), &why) && strcmp(origin, bk->origin) == 0)
		bk->found = true;
	return PS_OK;
}

/*
 * The returnUrl of the request when it may be offered as a link: an
 * https URL on the origin of a registered partner. Anything else is
 * logged and ignored.
 */
static const char *
back_url(struct master_ecp *e, struct http_req *r, struct back *bk)
{
	const char *url = http_req_query_ci(r, "returnUrl"), *why = NULL;
	const char *host;

	memset(bk, 0, sizeof(*bk));
	if (url == NULL || url[0] == '\0')
		return NULL;
	if (strlen(url) > MAX_PARAM)
		why = "too long";
	else if (url_origin(url, bk->origin, sizeof(bk->origin), &why)) {
		if (store_partner_each(e->ms->store, back_match, bk) != PS_OK)
			why = "the partners could not be read";
		else if (!bk->found)
			why = "not the site of a registered partner";
	}
	if (!bk->found) {
		log_info(http_req_id(r), "ecp.return_refused", "url=%s "
		    "reason=%s", log_q(url), log_q(why ? why : "refused"));
		return NULL;
	}
	host = url + 8;
	snprintf(bk->site, sizeof(bk->site), "%.*s",
	    (int)strcspn(host, "/?#"), host);
	str_lower(bk->site);
	return url;
}

/* ---- sessions ---- */

static void
random_hex(char *out, size_t bytes)
{
	unsigned char rnd[32];

	rand_bytes(rnd, bytes);
	hex_encode(rnd, bytes, out);
	explicit_bzero(rnd, sizeof(rnd));
}

static void
viewer_cleanup(struct viewer *v)
{
	store_mailbox_cleanup(&v->m);
	explicit_bzero(v->csrf, sizeof(v->csrf));
}

/* The request's session and its mailbox; false when signed out. */
static bool
viewer_get(struct master_ecp *e, struct http_req *r, struct viewer *v)
{
	struct store_mailbox_session s;
	char cookie[129], key[65];
	bool ok = false;

	memset(v, 0, sizeof(*v));
	if (!http_req_cookie(r, SESSION_COOKIE, cookie, sizeof(cookie)))
		return false;
	auth_session_key(cookie, key);
	explicit_bzero(cookie, sizeof(cookie));
	if (store_mailbox_session_get(e->ms->store, key, &s) != PS_OK ||
	    store_mailbox_get(e->ms->store, s.email, &v->m) != PS_OK)
		goto out;
	str_copy(v->csrf, s.csrf, sizeof(v->csrf));
	http_req_note(r, "auth", "session");
	http_req_note(r, "user", v->m.email);
	ok = true;
out:
	explicit_bzero(&s, sizeof(s));
	if (!ok)
		viewer_cleanup(v);
	return ok;
}

static bool
token_eq(const char *want, const void *got, size_t len)
{
	return want[0] != '\0' && got != NULL && len == strlen(want) &&
	    str_ct_eq(want, got, len);
}

/* ---- HTML ---- */

static const char style[] =
"body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;"
"background:#f6f6f4;line-height:1.45}"
"header{background:#0a4a7a;color:#fff;padding:.6rem 1rem;display:flex;"
"gap:1rem;align-items:center;flex-wrap:wrap}"
"header form{margin-left:auto}"
"header button{background:none;color:#fff;border:1px solid #fff;"
"border-radius:4px;padding:.2rem .6rem;font:inherit;cursor:pointer}"
"main{max-width:44rem;margin:1.5rem auto;padding:0 1rem}"
".card{background:#fff;border-radius:8px;padding:1.2rem 1.4rem;"
"box-shadow:0 1px 3px #0002;margin-bottom:1rem}"
".photos{display:flex;gap:1.5rem;flex-wrap:wrap}"
"figure{margin:0}"
"figure img{display:block;border-radius:4px;background:#ddd}"
"figcaption{margin-top:.3rem;font-weight:bold}"
".error{color:#a40000;font-weight:bold}"
".ok{color:#155724;font-weight:bold}"
".help{color:#555;font-size:.95em}"
".actions{display:flex;gap:.8rem;flex-wrap:wrap;margin-top:1rem}"
"label{display:block;margin:.6rem 0 .2rem}"
"label.inline{display:inline;margin:0 0 0 .3rem}"
"input[type=email],input[type=password]{font:inherit;padding:.3rem;"
"width:20rem;max-width:100%}"
"input[type=file]{font:inherit}"
"button{font:inherit;padding:.4rem 1rem;cursor:pointer}"
"button.primary{background:#0a4a7a;color:#fff;border:1px solid #0a4a7a;"
"border-radius:4px}"
"button.danger{color:#a40000}"
"a:focus,button:focus,input:focus{outline:3px solid #f0b400;"
"outline-offset:2px}";

static void
esc(struct buf *b, const char *s)
{
	buf_add_xml(b, s ? s : "");
}

/* A form's opening tag and its CSRF field. */
static void
form_open(struct buf *b, struct http_req *r, const char *path,
    const char *csrf, bool multipart)
{
	char *action = local_url(r, path, NULL);

	buf_adds(b, "<form method=\"post\" action=\"");
	esc(b, action);
	buf_addf(b, "\"%s><input type=\"hidden\" name=\"csrf\" value=\"",
	    multipart ? " enctype=\"multipart/form-data\"" : "");
	esc(b, csrf);
	buf_adds(b, "\">");
	free(action);
}

static void
page_begin(struct buf *b, struct http_req *r, const struct viewer *v,
    const char *title)
{
	buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" "
	    "content=\"width=device-width,initial-scale=1\"><title>");
	esc(b, title);
	buf_addf(b, " - Outlook Web App</title><style>%s</style></head>"
	    "<body><header><strong>Outlook Web App</strong>", style);
	if (v) {
		buf_adds(b, "<span>Signed in as ");
		esc(b, v->m.name[0] ? v->m.name : v->m.email);
		if (v->m.name[0]) {
			buf_adds(b, " (");
			esc(b, v->m.email);
			buf_adds(b, ")");
		}
		buf_adds(b, "</span>");
		form_open(b, r, "/ecp/logout", v->csrf, false);
		buf_adds(b, "<button type=\"submit\">Sign out</button></form>");
	}
	buf_adds(b, "</header><main>");
}

static void
page_message(struct buf *b, const char *error, const char *status)
{
	if (error) {
		buf_adds(b, "<p class=\"error\" role=\"alert\">");
		esc(b, error);
		buf_adds(b, "</p>");
	} else if (status) {
		buf_adds(b, "<p class=\"ok\" role=\"status\">");
		esc(b, status);
		buf_adds(b, "</p>");
	}
}

static void
page_back(struct buf *b, const char *url, const struct back *bk)
{
	if (url == NULL)
		return;
	buf_adds(b, "<p><a href=\"");
	esc(b, url);
	buf_adds(b, "\">Back to ");
	esc(b, bk->site);
	buf_adds(b, "</a></p>");
}

static void
page_end(struct buf *b)
{
	buf_adds(b, "</main></body></html>\n");
}

static void
reply_html(struct http_req *r, int status, struct buf *b)
{
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply_header(r, "Content-Security-Policy", "default-src 'none'; "
	    "style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
	    "frame-ancestors 'none'; base-uri 'none'");
	http_reply_header(r, "X-Frame-Options", "DENY");
	http_reply_header(r, "Referrer-Policy", "same-origin");
	http_reply_buf(r, status, HTML_TYPE, b);
}

static void
redirect(struct http_req *r, const char *done)
{
	char *loc = local_url(r, PAGE_PATH, done);

	http_reply_header(r, "Location", loc);
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply(r, 303, NULL, NULL, 0);
	free(loc);
}

/* The sign-in form, with a fresh double-submit CSRF cookie. */
static void
login_page(struct master_ecp *e, struct http_req *r, int status,
    const char *error, const char *email)
{
	char csrf[65], cookie[160];
	struct back bk;
	const char *back = back_url(e, r, &bk);
	struct buf b;

	random_hex(csrf, 32);
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/ecp; HttpOnly; Secure; "
	    "SameSite=Strict", CSRF_COOKIE, csrf);
	http_reply_header(r, "Set-Cookie", cookie);
	buf_init(&b, PAGE_MAX);
	page_begin(&b, r, NULL, "Sign in");
	buf_adds(&b, "<div class=\"card\"><h1>Sign in to change your "
	    "photo</h1>");
	page_message(&b, error, NULL);
	buf_adds(&b, "<p>Use the e-mail address and password of your "
	    "mailbox.</p>");
	form_open(&b, r, "/ecp/login", csrf, false);
	buf_adds(&b, "<label for=\"email\">E-mail address</label>"
	    "<input type=\"email\" id=\"email\" name=\"email\" "
	    "autocomplete=\"username\" required autofocus value=\"");
	esc(&b, email);
	buf_adds(&b, "\"><label for=\"password\">Password</label>"
	    "<input type=\"password\" id=\"password\" name=\"password\" "
	    "autocomplete=\"current-password\" required>"
	    "<div class=\"actions\"><button class=\"primary\" type=\"submit\">"
	    "Sign in</button></div></form></div>");
	page_back(&b, back, &bk);
	page_end(&b);
	reply_html(r, status, &b);
	buf_cleanup(&b);
	explicit_bzero(csrf, sizeof(csrf));
}

static void
photo_img(struct buf *b, const char *kind, const char *version,
    const char *alt)
{
	char *v = http_encode(version);

	buf_addf(b, "<img src=\"/ecp/photo.ashx?kind=%s&amp;size=" PAGE_SIZE
	    "&amp;v=%s\" srcset=\"/ecp/photo.ashx?kind=%s&amp;size="
	    PAGE_SIZE_2X "&amp;v=%s 2x\" width=\"240\" height=\"240\" alt=\"",
	    kind, v, kind, v);
	esc(b, alt);
	buf_adds(b, "\">");
	free(v);
}

static const char *
done_message(const char *done)
{
	static const char *const msgs[][2] = {
		{ "preview", "Here is a preview of your new photo. It is not "
		    "saved yet: choose Save to use it, or Cancel." },
		{ "saved", "Your new photo is saved." },
		{ "cancelled", "The preview was discarded. Your photo has not "
		    "changed." },
		{ "removed", "Your photo was removed." },
	};
	size_t i;

	for (i = 0; done && i < sizeof(msgs) / sizeof(msgs[0]); i++)
		if (strcmp(done, msgs[i][0]) == 0)
			return msgs[i][1];
	return NULL;
}

/* The signed-in page: photo, pending preview, the forms. */
static void
photo_page(struct master_ecp *e, struct http_req *r, const struct viewer *v,
    int status, const char *error)
{
	struct store_photo pv = { 0 };
	const char *done = error ? NULL : http_req_query_ci(r, "done");
	bool preview, photo = v->m.etag[0] != '\0';
	struct back bk;
	const char *back = back_url(e, r, &bk);
	struct buf b;

	preview = store_preview_get(e->ms->store, v->m.email,
	    ews_size_index(PAGE_SIZE), &pv) == PS_OK;
	buf_init(&b, PAGE_MAX);
	page_begin(&b, r, v, "Change your photo");
	buf_adds(&b, "<div class=\"card\"><h1>Change your photo</h1>");
	page_message(&b, error, done_message(done));
	buf_adds(&b, "<div class=\"photos\">");
	if (photo) {
		buf_adds(&b, "<figure>");
		photo_img(&b, "current", v->m.etag, "Your current photo");
		buf_adds(&b, "<figcaption>Current photo</figcaption></figure>");
	}
	if (preview) {
		buf_adds(&b, "<figure>");
		photo_img(&b, "preview", pv.etag, "Preview of your new photo");
		buf_adds(&b, "<figcaption>New photo (preview, not saved)"
		    "</figcaption></figure>");
	}
	buf_adds(&b, "</div>");
	if (!photo)
		buf_adds(&b, "<p>You have no photo yet.</p>");
	if (preview) {
		buf_adds(&b, "<p>This is how your new photo will look "
		    "everywhere. Save it to use it, or cancel to keep ");
		buf_adds(&b, photo ? "your current photo." : "having no "
		    "photo.");
		buf_adds(&b, "</p><div class=\"actions\">");
		form_open(&b, r, "/ecp/photo/save", v->csrf, false);
		buf_adds(&b, "<button class=\"primary\" type=\"submit\">Save"
		    "</button></form>");
		form_open(&b, r, "/ecp/photo/cancel", v->csrf, false);
		buf_adds(&b, "<button type=\"submit\">Cancel</button></form>"
		    "</div>");
	}
	buf_adds(&b, "</div><div class=\"card\"><h2>Upload a new photo</h2>");
	form_open(&b, r, "/ecp/photo/upload", v->csrf, true);
	buf_addf(&b, "<label for=\"photo\">Photo file</label>"
	    "<input type=\"file\" id=\"photo\" name=\"photo\" "
	    "accept=\"image/*\" required aria-describedby=\"photo-help\">"
	    "<p id=\"photo-help\" class=\"help\">A JPEG, PNG, WebP, HEIF or "
	    "GIF image of at most %u MB and %u megapixels. It is turned "
	    "upright and cut to a square from its middle. Nothing changes "
	    "until you choose Save.</p><button type=\"submit\">Upload and "
	    "preview</button></form></div>", IMAGE_MAX_BYTES / MB,
	    IMAGE_MAX_PIXELS / (1000 * 1000));
	if (photo) {
		buf_adds(&b, "<div class=\"card\"><h2>Remove your photo</h2>");
		form_open(&b, r, "/ecp/photo/remove", v->csrf, false);
		buf_adds(&b, "<p><input type=\"checkbox\" id=\"confirm\" "
		    "name=\"confirm\" value=\"yes\" required><label "
		    "class=\"inline\" for=\"confirm\">Yes, remove my photo. "
		    "People will see no photo for me.</label></p><button "
		    "class=\"danger\" type=\"submit\">Remove photo</button>"
		    "</form></div>");
	}
	page_back(&b, back, &bk);
	page_end(&b);
	reply_html(r, status, &b);
	buf_cleanup(&b);
	store_photo_cleanup(&pv);
}

/* ---- sign-in and sign-out ---- */

/* Verifies like a real mailbox when there is none, so timing tells
 * nothing about which addresses exist. */
static void
verify_dummy(struct master_ecp *e, const char *pw)
{
	if (e->dummy_hash == NULL && auth_password_hash("photosync-no-such-"
	    "mailbox", &e->dummy_hash) != PS_OK)
		return;
	auth_password_verify(e->dummy_hash, pw);
}

static void
handle_login(struct master_ecp *e, struct http_req *r)
{
	const char *body = http_req_body(r, NULL), *why = NULL;
	char *email = NULL, *pw = NULL, *csrf = NULL;
	char want[65], cookie[65], key[65], session_csrf[65], hdr[200];
	struct store_mailbox m = { 0 };

	email = http_form_value(body, "email");
	pw = http_form_value(body, "password");
	csrf = http_form_value(body, "csrf");
	/* Double-submit: the form's token must match its cookie. */
	if (!http_req_cookie(r, CSRF_COOKIE, want, sizeof(want)) ||
	    !token_eq(want, csrf, csrf ? strlen(csrf) : 0)) {
		log_info(http_req_id(r), "ecp.csrf_refused", "action=login");
		login_page(e, r, 400, "The sign-in form had expired. Please "
		    "sign in again.", email);
		goto out;
	}
	if (email == NULL || pw == NULL || email[0] == '\0' ||
	    pw[0] == '\0') {
		login_page(e, r, 400, "Enter your e-mail address and your "
		    "password.", email);
		goto out;
	}
	if (!email_valid(email) || strlen(pw) > AUTH_MAX_PASSWORD)
		why = "not a valid address or password";
	else if (store_mailbox_get(e->ms->store, email, &m) != PS_OK)
		why = "no such mailbox";
	else if (m.pwhash == NULL)
		why = "the mailbox has no password";
	if (why)
		verify_dummy(e, pw);
	else if (auth_password_verify(m.pwhash, pw) != PS_OK)
		why = "wrong password";
	if (why) {
		log_info(http_req_id(r), "auth.refused", "method=form user=%s "
		    "reason=%s", log_q(email), log_q(why));
		login_page(e, r, 401, "The e-mail address or the password is "
		    "wrong, or this mailbox cannot sign in here.", email);
		goto out;
	}
	random_hex(cookie, 32);
	auth_session_key(cookie, key);
	random_hex(session_csrf, 32);
	if (store_mailbox_session_put(e->ms->store, key, m.email,
	    session_csrf, time_now() + SESSION_LIFETIME) != PS_OK) {
		http_reply_error(r, 500, "the store failed");
		goto out;
	}
	log_info(http_req_id(r), "ecp.signed_in", "email=%s",
	    log_q(m.email));
	http_req_note(r, "user", m.email);
	snprintf(hdr, sizeof(hdr), "%s=%s; Path=/ecp; HttpOnly; Secure; "
	    "SameSite=Lax", SESSION_COOKIE, cookie);
	http_reply_header(r, "Set-Cookie", hdr);
	http_reply_header(r, "Set-Cookie", CSRF_COOKIE "=; Path=/ecp; "
	    "HttpOnly; Secure; SameSite=Strict; Max-Age=0");
	explicit_bzero(hdr, sizeof(hdr));
	redirect(r, NULL);
out:
	explicit_bzero(cookie, sizeof(cookie));
	explicit_bzero(session_csrf, sizeof(session_csrf));
	free(email);
	if (pw)
		xfree_secret(pw, strlen(pw));
	free(csrf);
	store_mailbox_cleanup(&m);
}

static void
handle_logout(struct master_ecp *e, struct http_req *r,
    const struct viewer *v)
{
	char cookie[129], key[65];

	if (http_req_cookie(r, SESSION_COOKIE, cookie, sizeof(cookie))) {
		auth_session_key(cookie, key);
		explicit_bzero(cookie, sizeof(cookie));
		store_mailbox_session_remove(e->ms->store, key);
	}
	log_info(http_req_id(r), "ecp.signed_out", "email=%s",
	    log_q(v->m.email));
	http_reply_header(r, "Set-Cookie", SESSION_COOKIE "=; Path=/ecp; "
	    "HttpOnly; Secure; SameSite=Lax; Max-Age=0");
	redirect(r, NULL);
}

/* ---- photos ---- */

static void
handle_photo(struct master_ecp *e, struct http_req *r,
    const struct viewer *v)
{
	const char *kind = http_req_query_ci(r, "kind");
	const char *size = http_req_query_ci(r, "size");
	struct store_photo ph = { 0 };
	bool preview;
	int code;
	ps_err rc;

	if (kind == NULL)
		kind = "current";
	preview = strcmp(kind, "preview") == 0;
	if (!preview && strcmp(kind, "current") != 0) {
		http_reply_error(r, 400, "kind= must be current or preview");
		return;
	}
	if ((code = ews_size_index(size ? size : PAGE_SIZE)) < 0) {
		http_reply_error(r, 400, "size= must be one of HR48x48 to "
		    "HR648x648");
		return;
	}
	http_req_note(r, "photo", kind);
	http_req_note(r, "size", ews_size_name(code));
	rc = preview ? store_preview_get(e->ms->store, v->m.email, code, &ph) :
	    store_photo_get(e->ms->store, v->m.email, code, &ph);
	if (rc == PS_ENOTFOUND) {
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply_error(r, 404, preview ? "no pending preview" :
		    "no photo");
	} else if (rc != PS_OK) {
		http_reply_error(r, 500, "the store failed");
	} else {
		http_reply_header(r, "Cache-Control", "private, no-store");
		http_reply(r, 200, "image/jpeg", ph.data, ph.len);
	}
	store_photo_cleanup(&ph);
}

static void
upload_refused(struct master_ecp *e, struct http_req *r,
    const struct viewer *v, int status, const char *reason,
    const char *message)
{
	log_info(http_req_id(r), "ecp.upload_refused", "email=%s status=%d "
	    "reason=%s", log_q(v->m.email), status, log_q(reason));
	photo_page(e, r, v, status, message);
}

static void
upload_free(struct upload *u)
{
	if (u->next)
		u->next->prevp = u->prevp;
	*u->prevp = u->next;
	master_photo_free(&u->photo);
	viewer_cleanup(&u->v);
	free(u);
}

/* On a worker thread: nothing but the image. */
static void
upload_run(void *arg)
{
	struct upload *u = arg;

	u->rc = master_photo_render(u->data, u->len, &u->photo);
	if (u->rc != PS_OK)
		str_copy(u->error, ps_errmsg(), sizeof(u->error));
}

/* Back on the loop: keep the rendered sizes as the pending preview. */
static void
upload_done(void *arg)
{
	struct upload *u = arg;
	struct http_req *r = u->r;
	char id[33], *msg;

	if (http_req_gone(r)) {
		/* The client left: this only releases the request. */
		http_reply(r, 503, NULL, NULL, 0);
		goto out;
	}
	if (u->rc != PS_OK) {
		msg = xasprintf("That file cannot be used as a photo: %s. Your "
		    "photo has not changed.", u->error);
		upload_refused(u->e, r, &u->v, 422, u->error, msg);
		free(msg);
		goto out;
	}
	random_hex(id, 16);
	if (store_preview_put(u->e->ms->store, u->v.m.email, id, time_now() +
	    PREVIEW_LIFETIME, u->photo.sizes, u->photo.n) != PS_OK) {
		photo_page(u->e, r, &u->v, 500, "The preview could not be "
		    "kept. Please try again.");
		goto out;
	}
	log_info(http_req_id(r), "ecp.preview", "email=%s preview=%s bytes=%zu "
	    "sizes=%zu source_side=%d", log_q(u->v.m.email), id, u->len,
	    u->photo.n, u->photo.src_side);
	redirect(r, "preview");
out:
	upload_free(u);
}

static void
handle_upload(struct master_ecp *e, struct http_req *r, struct viewer *v,
    const struct http_part *photo)
{
	struct upload *u;
	size_t tenths;
	char *msg;

	if (photo == NULL || photo->len == 0) {
		upload_refused(e, r, v, 400, "no file chosen", "Choose a photo "
		    "file first, then Upload and preview.");
		return;
	}
	if (photo->len > IMAGE_MAX_BYTES) {
		/* In tenths of a MB, rounded up: never "20.0 MB" here. */
		tenths = (photo->len * 10 + MB - 1) / MB;
		msg = xasprintf("The file is %zu.%zu MB; a photo can be at "
		    "most %u MB. Your photo has not changed.", tenths / 10,
		    tenths % 10, IMAGE_MAX_BYTES / MB);
		upload_refused(e, r, v, 413, "larger than the limit", msg);
		free(msg);
		return;
	}
	if (work_pending(e->pool) >= MAX_UPLOADS) {
		upload_refused(e, r, v, 503, "busy", "The server is busy with "
		    "other photos. Please try again in a moment.");
		return;
	}
	u = xcalloc(1, sizeof(*u));
	u->e = e;
	u->r = r;
	u->v = *v;		/* the upload owns the viewer from now on */
	memset(v, 0, sizeof(*v));
	u->data = photo->data;
	u->len = photo->len;
	u->next = e->uploads;
	if (e->uploads)
		e->uploads->prevp = &u->next;
	u->prevp = &e->uploads;
	e->uploads = u;
	http_req_defer(r);
	work_submit(e->pool, upload_run, upload_done, u);
}

static void
handle_save(struct master_ecp *e, struct http_req *r,
    const struct viewer *v)
{
	char etag[64];
	ps_err rc;

	master_etag_new(etag);
	rc = store_preview_save(e->ms->store, v->m.email, etag);
	e->ms->photo_generation++;
	if (rc == PS_ENOTFOUND) {
		photo_page(e, r, v, 409, "There is no preview to save; it may "
		    "have expired after 30 minutes. Upload the photo again.");
		return;
	}
	if (rc != PS_OK) {
		photo_page(e, r, v, 500, "The photo could not be saved. Your "
		    "photo has not changed.");
		return;
	}
	log_info(http_req_id(r), "ecp.saved", "email=%s etag=%s",
	    log_q(v->m.email), etag);
	redirect(r, "saved");
}

static void
handle_cancel(struct master_ecp *e, struct http_req *r,
    const struct viewer *v)
{
	ps_err rc = store_preview_remove(e->ms->store, v->m.email);

	if (rc != PS_OK && rc != PS_ENOTFOUND) {
		photo_page(e, r, v, 500, "The preview could not be discarded.");
		return;
	}
	log_info(http_req_id(r), "ecp.cancelled", "email=%s had_preview=%s",
	    log_q(v->m.email), rc == PS_OK ? "yes" : "no");
	redirect(r, "cancelled");
}

static void
handle_remove(struct master_ecp *e, struct http_req *r,
    const struct viewer *v)
{
	char *confirm = http_form_value(http_req_body(r, NULL), "confirm");
	ps_err rc;

	if (confirm == NULL || strcmp(confirm, "yes") != 0) {
		free(confirm);
		photo_page(e, r, v, 400, "Tick \"Yes, remove my photo\" to "
		    "confirm. Your photo has not changed.");
		return;
	}
	free(confirm);
	rc = store_photo_remove(e->ms->store, v->m.email);
	e->ms->photo_generation++;
	if (rc != PS_OK && rc != PS_ENOTFOUND) {
		photo_page(e, r, v, 500, "The photo could not be removed.");
		return;
	}
	log_info(http_req_id(r), "ecp.removed", "email=%s had_photo=%s",
	    log_q(v->m.email), rc == PS_OK ? "yes" : "no");
	redirect(r, "removed");
}

/* ---- entry points ---- */

static const char *const route_names[] = {
	[ECP_LOGOUT] = "logout", [ECP_UPLOAD] = "upload",
	[ECP_SAVE] = "save", [ECP_CANCEL] = "cancel", [ECP_REMOVE] = "remove",
};

void
ecp_handle(struct master_ecp *e, struct http_req *r, enum ecp_route route)
{
	struct viewer v;
	struct http_part csrf_part = { 0 }, photo = { 0 };
	const char *body, *ctype;
	char *csrf = NULL;
	bool have_photo = false, csrf_ok;
	size_t len;

	if (route == ECP_HOME) {
		redirect(r, NULL);
		return;
	}
	if (route == ECP_LOGIN) {
		handle_login(e, r);
		return;
	}
	if (!viewer_get(e, r, &v)) {
		if (route == ECP_PAGE)
			login_page(e, r, 200, NULL, NULL);
		else if (route == ECP_PHOTO)
			http_reply_error(r, 403, "sign in on the change-photo "
			    "page first");
		else if (route == ECP_LOGOUT)
			redirect(r, NULL);
		else
			login_page(e, r, 401, "You are signed out (the session "
			    "may have expired). Sign in, then try again.",
			    NULL);
		return;
	}
	if (route == ECP_PAGE) {
		photo_page(e, r, &v, 200, NULL);
		goto out;
	}
	if (route == ECP_PHOTO) {
		handle_photo(e, r, &v);
		goto out;
	}
	/* A POST: it must carry the session's token. */
	body = http_req_body(r, &len);
	if (route == ECP_UPLOAD) {
		ctype = http_req_header(r, "Content-Type");
		csrf_ok = http_multipart_field(ctype, body, len, "csrf",
		    &csrf_part) == PS_OK && token_eq(v.csrf, csrf_part.data,
		    csrf_part.len);
		have_photo = csrf_ok && http_multipart_field(ctype, body, len,
		    "photo", &photo) == PS_OK;
	} else {
		csrf = http_form_value(body, "csrf");
		csrf_ok = token_eq(v.csrf, csrf, csrf ? strlen(csrf) : 0);
	}
	if (!csrf_ok) {
		log_info(http_req_id(r), "ecp.csrf_refused", "action=%s "
		    "email=%s", route_names[route] ? route_names[route] : "-",
		    log_q(v.m.email));
		photo_page(e, r, &v, 403, "This form had expired or did not "
		    "come from this page, so nothing was changed. Please try "
		    "again.");
		goto out;
	}
	switch (route) {
	case ECP_LOGOUT:
		handle_logout(e, r, &v);
		break;
	case ECP_UPLOAD:
		handle_upload(e, r, &v, have_photo ? &photo : NULL);
		break;
	case ECP_SAVE:
		handle_save(e, r, &v);
		break;
	case ECP_CANCEL:
		handle_cancel(e, r, &v);
		break;
	case ECP_REMOVE:
		handle_remove(e, r, &v);
		break;
	default:
		http_reply_error(r, 404, "no such endpoint");
		break;
	}
out:
	if (csrf)
		xfree_secret(csrf, strlen(csrf));
	viewer_cleanup(&v);
}

struct master_ecp *
ecp_new(struct master_state *ms, struct event_base *base)
{
	struct master_ecp *e = xcalloc(1, sizeof(*e));

	e->ms = ms;
	if ((e->pool = work_pool_new(base, 2)) == NULL) {
		free(e);
		return NULL;
	}
	return e;
}

void
ecp_free(struct master_ecp *e)
{
	if (e == NULL)
		return;
	/* Running renders finish; queued ones are dropped unanswered. */
	work_pool_free(e->pool);
	while (e->uploads) {
		http_reply_error(e->uploads->r, 503, "the server is stopping");
		upload_free(e->uploads);
	}
	free(e->dummy_hash);
	free(e);
}
