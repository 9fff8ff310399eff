/*
 * The change-photo page: what Exchange 2013's ECP "Outlook Web App photo
 * dialog" is to SharePoint, at the ECP photo URL Autodiscover publishes.
 *
 *   GET  /ecp/PersonalSettings/EditAccount.aspx?chgPhoto=1&...&returnUrl=
 *	the page: a sign-in form, or the photo, its preview and the forms
 *   POST /ecp/login, /ecp/logout
 *   GET  /ecp/photo.ashx?kind=current|preview&size=HRnxn
 *   POST /ecp/photo/upload (multipart), /ecp/photo/save, /cancel, /remove,
 *	/visibility (hide=yes|no: hide the photo from everyone but its owner)
 *
 * A mailbox with a password signs in with a form (a double-submit CSRF
 * cookie guards it); its password is checked by the server's sign-in
 * guard (auth/guard.h: off the loop, the same work for unknown
 * addresses, failures slow further attempts), and a session cookie
 * (Path=/ecp, HttpOnly, Secure, SameSite=Lax) carries the session, which
 * the store keeps by a digest of the cookie. Every POST carries the
 * session's CSRF token and comes from no other site's page. The cookies,
 * the tokens and that rule are auth/web.h's, which the portal's sign-in
 * uses too. Everything acts on the session's own mailbox: no
 * address is ever taken from the request.
 *
 * Nothing here waits on the loop: a request is kept (struct ecp_call)
 * while its session, mailbox and photos are read on the store's read
 * lane, while its change is made on the write lane, while its password is
 * checked, and while its upload is rendered like `photo set`
 * (master_photo_render) on a worker thread. An upload is kept as a
 * pending preview, not as the photo; Save makes it the photo atomically,
 * Cancel discards it; the server's photo index drops the mailbox's
 * photos once such a change is written. The page's query parameters are
 * carried through every form and redirect; returnUrl is offered as a
 * "Back to" link only when its origin is a registered partner's (from
 * the server's partner list in memory). Plain HTML that works without
 * JavaScript; every value is escaped.
 *
 * Behind a single sign-on proxy (auth/sso.h, `master sso set`), the page
 * asked for by a proxy that names a mailbox starts a session for it, as
 * the form would, and sends the browser back to the page; any request
 * whose session is not the named mailbox's is taken as signed out (the
 * page starts the right one).
 *
 * With Kerberos (`master kerberos set`), the page asked for without a
 * session is 401 with `WWW-Authenticate: Negotiate` and the sign-in form
 * as its body; a browser with a ticket answers with its token, which
 * starts a session for the principal's mailbox as the form would
 * (auth/signin.h, on the guard's threads), and is sent back to the page
 * with its cookie and the token of mutual authentication. A browser
 * without a ticket shows the form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/guard.h"
#include "auth/negotiate.h"
#include "auth/signin.h"
#include "auth/sso.h"
#include "auth/web.h"
#include "dirphoto.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "master_int.h"
#include "metrics/metrics.h"
#include "pki/pki.h"
#include "store/pool.h"
#include "work/work.h"

#define HTML_TYPE		"text/html; charset=utf-8"
#define PAGE_PATH		"/ecp/PersonalSettings/EditAccount.aspx"
#define SESSION_LIFETIME	(8 * 3600)
#define PREVIEW_LIFETIME	(30 * 60)
#define MAX_UPLOADS		8	/* rendering or queued at once */
#define MAX_PARAM		2048	/* longest query value carried on */
#define PAGE_SIZE		"HR240x240"	/* the photos on the page */
#define PAGE_SIZE_2X		"HR504x504"
#define PAGE_MAX		(256 * 1024)
#define MB			(1024u * 1024u)

struct ecp_call;

struct master_ecp {
	struct master_srv	*srv;
	struct work_pool	*pool;		/* renders uploads */
	struct ecp_call		*calls;		/* requests in flight */
};

/* The signed-in mailbox of a request. */
struct viewer {
	struct store_mailbox	m;
	char			csrf[65];
};

/* Where "Back to" leads: a registered partner's site, or nowhere. */
struct back {
	const char	*url;		/* the returnUrl when offered */
	char		 origin[512];
	char		 site[512];	/* host[:port] as the URL has it */
	const char	*why;		/* why it is not offered */
	char		 why_url[160];	/* url_parse()'s reason */
};

/*
 * One request of the page on its way: kept while the store, the guard or
 * a worker has it, freed with ecp_call_end() once answered.
 */
struct ecp_call {
	struct master_ecp	*e;
	struct http_req		*r;
	enum ecp_route		 route;
	struct ecp_call		*next, **prevp;
	struct back		 bk;
	ps_err			 rc;		/* of the last store job */
	char			 err[256];
	/* read on the read lane */
	char			 key[65];	/* the session's key */
	bool			 signed_in;
	struct viewer		 v;
	bool			 has_preview;
	bool			 hide;		/* /visibility: hide or show */
	bool			 hide_changed;	/* and whether it changed */
	char			 preview_id[64];
	bool			 want_preview;	/* photo.ashx?kind=preview */
	int			 code;		/* photo.ashx size; -1 bad */
	const char		*bad_query;	/* photo.ashx: why 400 */
	struct store_photo	 ph;
	/* sign-in (auth/signin.h) */
	struct auth_signin	 signin;
	/* the mailbox a single sign-on proxy named (auth/sso.h), or "" */
	char			 sso_user[AUTH_SSO_USER_MAX];
	/* an upload: its form, searched for the file on a worker */
	const char		*ctype;
	const void		*body;
	size_t			 body_len;
	size_t			 len;		/* the file's */
	int			 upload_status;	/* 0, or the refusal's */
	struct master_photo	 photo;
	char			 upload_error[512];
	/* a change: the new ETag or preview id */
	char			 etag[64];
};

/* The page's cookies (auth/web.h), as docs/master.md states them. */
static const struct auth_web ecp_web = {
	.session_cookie = "ecp_session",
	.session_path = "/ecp",
	.session_max_age = 0,		/* the browser session */
	.login_cookie = "ecp_csrf",
	.login_path = "/ecp",
};

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
 * The returnUrl of the request when it may be offered as a link: an
 * https URL on the origin of a registered partner, from the server's
 * partner list. Anything else is logged (ecp.return_refused) when a page
 * is drawn, and ignored.
 */
static void
back_find(struct ecp_call *ec)
{
	const struct master_partners *pt = ec->e->srv->partners;
	const char *url = http_req_query_ci(ec->r, "returnUrl"), *host;
	struct back *bk = &ec->bk;
	struct url u;
	size_t i;

	memset(bk, 0, sizeof(*bk));
	if (url == NULL || url[0] == '\0')
		return;
	if (strlen(url) > MAX_PARAM) {
		bk->why = "too long";
		return;
	}
	if (url_parse(url, 0, &u) != PS_OK ||
	    url_origin(&u, bk->origin, sizeof(bk->origin)) != PS_OK) {
		str_copy(bk->why_url, ps_errmsg(), sizeof(bk->why_url));
		bk->why = bk->why_url;
		return;
	}
	for (i = 0; pt && i < pt->n_origins; i++)
		if (strcmp(pt->origins[i], bk->origin) == 0)
			break;
	if (pt == NULL || i == pt->n_origins) {
		bk->why = "not the site of a registered partner";
		return;
	}
	host = url + 8;
	snprintf(bk->site, sizeof(bk->site), "%.*s",
	    (int)strcspn(host, "/?#"), host);
	str_lower(bk->site);
	bk->url = url;
}

/* The link for a page being drawn, or NULL (logging why). */
static const char *
back_url(struct ecp_call *ec)
{
	const char *url = http_req_query_ci(ec->r, "returnUrl");

	if (ec->bk.url == NULL && url && url[0] != '\0')
		log_info(http_req_id(ec->r), "ecp.return_refused", "url=%s "
		    "reason=%s", log_q(url), log_q(ec->bk.why ? ec->bk.why :
		    "refused"));
	return ec->bk.url;
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
login_page(struct ecp_call *ec, int status, const char *error,
    const char *email)
{
	struct http_req *r = ec->r;
	char csrf[AUTH_TOKEN_HEX + 1];
	const char *back = back_url(ec);
	struct buf b;

	auth_web_login_token(&ecp_web, r, csrf);
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
	page_back(&b, back, &ec->bk);
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
		{ "hidden", "Your photo is now hidden: others see no photo "
		    "for you." },
		{ "shown", "Your photo is shown to everyone again." },
	};
	size_t i;

	for (i = 0; done && i < sizeof(msgs) / sizeof(msgs[0]); i++)
		if (strcmp(done, msgs[i][0]) == 0)
			return msgs[i][1];
	return NULL;
}

/* The signed-in page: photo, pending preview, the forms. */
static void
photo_page(struct ecp_call *ec, int status, const char *error)
{
	struct http_req *r = ec->r;
	const struct viewer *v = &ec->v;
	const char *done = error ? NULL : http_req_query_ci(r, "done");
	bool preview = ec->has_preview, photo = v->m.etag[0] != '\0';
	const char *back = back_url(ec);
	struct buf b;

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
		photo_img(&b, "preview", ec->preview_id,
		    "Preview of your new photo");
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
	buf_adds(&b, "<div class=\"card\"><h2>Who sees your photo</h2>");
	form_open(&b, r, "/ecp/photo/visibility", v->csrf, false);
	if (v->m.photo_hidden)
		buf_adds(&b, "<p id=\"visibility\">Your photo is hidden: "
		    "everyone else sees no photo for you, here, in the "
		    "directory and on the portals. You still see it.</p>"
		    "<input type=\"hidden\" name=\"hide\" value=\"no\">"
		    "<button type=\"submit\">Show my photo to others</button>"
		    "</form></div>");
	else
		buf_adds(&b, "<p id=\"visibility\">Your photo is shown to "
		    "everyone.</p><input type=\"hidden\" name=\"hide\" "
		    "value=\"yes\"><button type=\"submit\">Hide my photo "
		    "from others</button></form></div>");
	page_back(&b, back, &ec->bk);
	page_end(&b);
	reply_html(r, status, &b);
	buf_cleanup(&b);
}

/* ---- requests in flight ---- */

static struct ecp_call *
ecp_call_new(struct master_ecp *e, struct http_req *r, enum ecp_route route)
{
	struct ecp_call *ec = xcalloc(1, sizeof(*ec));

	ec->e = e;
	ec->r = r;
	ec->route = route;
	ec->code = -1;
	ec->next = e->calls;
	if (e->calls)
		e->calls->prevp = &ec->next;
	ec->prevp = &e->calls;
	e->calls = ec;
	return ec;
}

static void
ecp_call_end(struct ecp_call *ec)
{
	if (ec->next)
		ec->next->prevp = ec->prevp;
	*ec->prevp = ec->next;
	viewer_cleanup(&ec->v);
	store_photo_cleanup(&ec->ph);
	master_photo_free(&ec->photo);
	auth_signin_cleanup(&ec->signin);
	explicit_bzero(ec->key, sizeof(ec->key));
	free(ec);
}

/* True (and the request released) when the client left meanwhile. */
static bool
ecp_call_gone(struct ecp_call *ec)
{
	if (!http_req_gone(ec->r))
		return false;
	http_reply(ec->r, 503, NULL, NULL, 0);
	ecp_call_end(ec);
	return true;
}

static void
ecp_call_busy(struct ecp_call *ec, const char *what)
{
	master_reply_busy(ec->r, what);
	ecp_call_end(ec);
}

/* A store job's failure, kept for the loop. */
static void
ecp_call_failed(struct ecp_call *ec, ps_err rc)
{
	ec->rc = rc;
	str_copy(ec->err, ps_errmsg(), sizeof(ec->err));
}

/*
 * The store failed (called from the job's done()): logged, then 500, or
 * 503 with Retry-After when the store could not be reached (a page when
 * one can be drawn).
 */
static void
ecp_store_failed(struct ecp_call *ec, const char *what, const char *page)
{
	struct store_pool *pool = ec->e->srv->pool;
	bool down = pool != NULL && !store_pool_up(pool);
	char *msg;

	log_warn(http_req_id(ec->r), "serve.store_failed", "what=%s error=%s",
	    what, log_q(ec->err));
	if (down)
		http_reply_header(ec->r, "Retry-After", STORE_DOWN_RETRY_S);
	if (page && ec->signed_in) {
		msg = xasprintf("%s%s", page, down ? " The server cannot "
		    "reach its store right now; please try again in a "
		    "moment." : "");
		photo_page(ec, down ? 503 : 500, msg);
		free(msg);
	} else if (down)
		http_reply_error(ec->r, 503, "the store cannot be reached: "
		    "try again in a moment");
	else
		http_reply_error(ec->r, 500, "the store failed");
	ecp_call_end(ec);
}

/* Queues a store job for the request; 503 when the lane is full. */
static bool
ecp_store(struct ecp_call *ec, bool write, store_job_fn run,
    void (*done)(void *))
{
	struct store_pool *pool = ec->e->srv->pool;
	ps_err rc;

	ec->rc = PS_OK;
	if (pool == NULL)
		rc = ps_errf(PS_EBUSY, "the store is closing");
	else
		rc = write ? store_pool_write(pool, run, done, ec) :
		    store_pool_read(pool, run, done, ec);
	if (rc != PS_OK) {
		ecp_call_busy(ec, "store");
		return false;
	}
	return true;
}

/* ---- sign-in (auth/signin.h): the mailbox, the session, the page ---- */

/* On the read lane: the mailbox and its hash (NULL: no password). */
static ps_err
login_lookup(struct store *st, void *arg, const char *email, char **hash)
{
	struct ecp_call *ec = arg;
	ps_err rc;

	if (!email_valid(email))
		return PS_ENOTFOUND;
	if ((rc = store_mailbox_get(st, email, &ec->v.m)) != PS_OK ||
	    (rc = master_directory_password(ec->e->srv, st, &ec->v.m,
	    &ec->v.m.pwhash)) != PS_OK)
		return rc;
	*hash = ec->v.m.pwhash;
	ec->v.m.pwhash = NULL;
	return PS_OK;
}

/* On the write lane: PS_ENOTFOUND when the mailbox went meanwhile. */
static ps_err
login_session_put(struct store *st, void *arg, const char *key,
    const char *csrf, int64_t expires)
{
	struct ecp_call *ec = arg;

	return store_mailbox_session_put(st, key, ec->v.m.email, csrf,
	    expires);
}

static bool
login_gone(void *arg)
{
	struct ecp_call *ec = arg;

	return http_req_gone(ec->r);
}

static void
login_answer(void *arg, struct auth_signin *si, enum auth_signin_outcome out)
{
	struct ecp_call *ec = arg;
	struct http_req *r = ec->r;
	char msg[160];

	if (si->kind == AUTH_SIGNIN_NEGOTIATE && (out == AUTH_SIGNIN_WRONG ||
	    out == AUTH_SIGNIN_UNKNOWN)) {
		/* The form, for the password (auth.refused says why). */
		login_page(ec, 401, "Your Windows (Kerberos) sign-in was not "
		    "accepted here. Sign in with your e-mail address and "
		    "password instead.", NULL);
		ecp_call_end(ec);
		return;
	}
	switch (out) {
	case AUTH_SIGNIN_OK:
		log_info(http_req_id(r), "ecp.signed_in", "email=%s%s",
		    log_q(ec->v.m.email), si->kind == AUTH_SIGNIN_NEGOTIATE ?
		    " method=negotiate" : "");
		http_req_note(r, "user", ec->v.m.email);
		auth_web_session_set(&ecp_web, r, si->cookie);
		master_negotiate_reply(r, si);
		redirect(r, NULL);
		break;
	case AUTH_SIGNIN_WRONG:
		login_page(ec, 401, "The e-mail address or the password is "
		    "wrong, or this mailbox cannot sign in here.", si->name);
		break;
	case AUTH_SIGNIN_WAIT:
		/* Nothing was checked: the form again, saying how long. */
		auth_web_retry_after(r, si->wait_ms);
		snprintf(msg, sizeof(msg), "Too many failed sign-ins. Wait "
		    "%lld seconds, then try again.",
		    (long long)auth_retry_after_s(si->wait_ms));
		login_page(ec, 429, msg, si->name);
		break;
	case AUTH_SIGNIN_BUSY:
		ecp_call_busy(ec, si->busy_guard ? "signin" : "store");
		return;
	case AUTH_SIGNIN_FAILED:
		http_reply_error(r, 500, "the store failed");
		break;
	case AUTH_SIGNIN_UNREACHABLE:
		http_reply_header(r, "Retry-After", STORE_DOWN_RETRY_S);
		login_page(ec, 503, "The server cannot reach its store right "
		    "now. Please try again in a moment.", si->name);
		break;
	case AUTH_SIGNIN_GONE:
		http_reply(r, 503, NULL, NULL, 0);
		break;
	case AUTH_SIGNIN_UNKNOWN:
		/* A proxy's sign-in only. */
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply_error(r, 403, "the single sign-on service signed "
		    "you in with an address that has no mailbox here");
		break;
	}
	ecp_call_end(ec);
}

/* On the loop: the mailbox address of a Kerberos principal. */
static ps_err
login_principal(void *arg, const char *principal, char *name, size_t n)
{
	struct ecp_call *ec = arg;

	return auth_principal_mailbox(principal,
	    ec->e->srv->ms->kerberos_realms, name, n);
}

static const struct auth_signin_ops login_ops = {
	.lookup = login_lookup,
	.session_put = login_session_put,
	.session_lifetime = SESSION_LIFETIME,
	.principal = login_principal,
	.gone = login_gone,
	.answer = login_answer,
};

static void
handle_login(struct ecp_call *ec)
{
	struct http_req *r = ec->r;
	const char *body = http_req_body(r, NULL);
	char *email = http_form_value(body, "email");
	char *pw = http_form_value(body, "password");
	char *csrf = http_form_value(body, "csrf");

	/* Double-submit: the form's token must match its cookie. */
	if (!auth_web_login_token_ok(&ecp_web, r, csrf)) {
		log_info(http_req_id(r), "ecp.csrf_refused", "action=login");
		login_page(ec, 400, "The sign-in form had expired. Please "
		    "sign in again.", email);
		goto out;
	}
	if (email == NULL || pw == NULL || email[0] == '\0' ||
	    pw[0] == '\0') {
		login_page(ec, 400, "Enter your e-mail address and your "
		    "password.", email);
		goto out;
	}
	if (ec->e->srv->pool == NULL) {
		ps_errf(PS_EBUSY, "the store is closing");
		master_reply_busy(r, "store");
		goto out;
	}
	xfree_secret(csrf, strlen(csrf));
	/* It answers `ec`, maybe before it returns. */
	auth_signin_start(&ec->signin, &login_ops, ec, ec->e->srv->pool,
	    ec->e->srv->guard, http_req_id(r), http_req_peer(r),
	    AUTH_SIGNIN_FORM, email, pw);
	return;
out:
	free(email);
	if (pw)
		xfree_secret(pw, strlen(pw));
	if (csrf)
		xfree_secret(csrf, strlen(csrf));
	ecp_call_end(ec);
}

/* ---- sign-out ---- */

static void
logout_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK)
		log_warn(http_req_id(ec->r), "serve.store_failed", "what=%s "
		    "error=%s", "session", log_q(ec->err));
	log_info(http_req_id(ec->r), "ecp.signed_out", "email=%s",
	    log_q(ec->v.m.email));
	auth_web_session_clear(&ecp_web, ec->r);
	redirect(ec->r, NULL);
	ecp_call_end(ec);
}

static void
logout_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc = store_mailbox_session_remove(st, ec->key);

	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

/* ---- photos ---- */

static void
answer_photo(struct ecp_call *ec)
{
	struct http_req *r = ec->r;

	if (ec->bad_query) {
		http_reply_error(r, 400, ec->bad_query);
	} else if (ec->rc == PS_ENOTFOUND) {
		http_reply_header(r, "Cache-Control", "no-store");
		http_reply_error(r, 404, ec->want_preview ?
		    "no pending preview" : "no photo");
	} else if (ec->rc != PS_OK) {
		ecp_store_failed(ec, "photo", NULL);
		return;
	} else {
		http_reply_header(r, "Cache-Control", "private, no-store");
		http_reply(r, 200, "image/jpeg", ec->ph.data, ec->ph.len);
	}
	ecp_call_end(ec);
}

/* photo.ashx's parameters, checked before the store is read. */
static void
photo_query(struct ecp_call *ec)
{
	const char *kind = http_req_query_ci(ec->r, "kind");
	const char *size = http_req_query_ci(ec->r, "size");

	if (kind == NULL)
		kind = "current";
	ec->want_preview = strcmp(kind, "preview") == 0;
	if (!ec->want_preview && strcmp(kind, "current") != 0) {
		ec->bad_query = "kind= must be current or preview";
		return;
	}
	if ((ec->code = ews_size_index(size ? size : PAGE_SIZE)) < 0) {
		ec->bad_query = "size= must be one of HR48x48 to HR648x648";
		return;
	}
	http_req_note(ec->r, "photo", kind);
	http_req_note(ec->r, "size", ews_size_name(ec->code));
}

static void
upload_refused(struct ecp_call *ec, int status, const char *reason,
    const char *message)
{
	log_info(http_req_id(ec->r), "ecp.upload_refused", "email=%s "
	    "status=%d reason=%s", log_q(ec->v.m.email), status,
	    log_q(reason));
	photo_page(ec, status, message);
	ecp_call_end(ec);
}

static void
preview_written(void *arg)
{
	struct ecp_call *ec = arg;

	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK) {
		ecp_store_failed(ec, "preview", "The preview could not be "
		    "kept. Please try again.");
		return;
	}
	log_info(http_req_id(ec->r), "ecp.preview", "email=%s preview=%s "
	    "bytes=%zu sizes=%zu source_side=%d", log_q(ec->v.m.email),
	    ec->etag, ec->len, ec->photo.n, ec->photo.src_side);
	redirect(ec->r, "preview");
	ecp_call_end(ec);
}

static void
preview_write_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc;

	rc = store_preview_put(st, ec->v.m.email, ec->etag, time_now() +
	    PREVIEW_LIFETIME, ec->photo.sizes, ec->photo.n);
	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

/*
 * On a worker thread: the file found in the form (up to the body's
 * limit, not scanned on the loop), then rendered from where it lies in
 * the body, which stays put while the request waits.
 */
static void
upload_run(void *arg)
{
	struct ecp_call *ec = arg;
	struct http_part photo;

	if (http_multipart_field(ec->ctype, ec->body, ec->body_len, "photo",
	    &photo) != PS_OK || photo.len == 0) {
		ec->upload_status = 400;
		return;
	}
	ec->len = photo.len;
	if (photo.len > IMAGE_MAX_BYTES) {
		ec->upload_status = 413;
		return;
	}
	ec->rc = master_photo_render(photo.data, photo.len, &ec->photo);
	if (ec->rc != PS_OK) {
		ec->upload_status = 422;
		str_copy(ec->upload_error, ps_errmsg(),
		    sizeof(ec->upload_error));
	}
}

/* Back on the loop: keep the rendered sizes as the pending preview. */
static void
upload_done(void *arg)
{
	struct ecp_call *ec = arg;
	size_t tenths;
	char *msg;

	if (ecp_call_gone(ec))
		return;
	switch (ec->upload_status) {
	case 400:
		upload_refused(ec, 400, "no file chosen", "Choose a photo "
		    "file first, then Upload and preview.");
		return;
	case 413:
		/* In tenths of a MB, rounded up: never "20.0 MB" here. */
		tenths = (ec->len * 10 + MB - 1) / MB;
		msg = xasprintf("The file is %zu.%zu MB; a photo can be at "
		    "most %u MB. Your photo has not changed.", tenths / 10,
		    tenths % 10, IMAGE_MAX_BYTES / MB);
		upload_refused(ec, 413, "larger than the limit", msg);
		free(msg);
		return;
	case 422:
		msg = xasprintf("That file cannot be used as a photo: %s. Your "
		    "photo has not changed.", ec->upload_error);
		upload_refused(ec, 422, ec->upload_error, msg);
		free(msg);
		return;
	}
	random_hex(ec->etag, 16);
	(void)ecp_store(ec, true, preview_write_run, preview_written);
}

static void
handle_upload(struct ecp_call *ec)
{
	struct master_ecp *e = ec->e;

	ec->ctype = http_req_header(ec->r, "Content-Type");
	ec->body = http_req_body(ec->r, &ec->body_len);
	if (work_try_submit(e->pool, upload_run, upload_done, ec) != PS_OK) {
		/* MAX_UPLOADS render or wait: refused, not queued. */
		metrics_add("photosync_busy_total", NULL, 1);
		http_reply_header(ec->r, "Retry-After", "1");
		upload_refused(ec, 503, "busy", "The server is busy with "
		    "other photos. Please try again in a moment.");
	}
}

/* A photo change written by this server: its keys go at once. */
static void
photo_changed(struct ecp_call *ec)
{
	struct master_srv *s = ec->e->srv;

	master_cache_drop(s->cache, ec->v.m.email);
	/* The change queued its notices and directory write in its own
	 * transaction. */
	if (s->notifier)
		notifier_wake(s->notifier);
	dirphoto_writer_wake(s->dirphoto);
}

static void
save_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ec->rc == PS_OK)
		photo_changed(ec);
	if (ecp_call_gone(ec))
		return;
	if (ec->rc == PS_ENOTFOUND) {
		ec->has_preview = false;
		photo_page(ec, 409, "There is no preview to save; it may "
		    "have expired after 30 minutes. Upload the photo again.");
		ecp_call_end(ec);
		return;
	}
	if (ec->rc != PS_OK) {
		ecp_store_failed(ec, "photo", "The photo could not be saved. "
		    "Your photo has not changed.");
		return;
	}
	log_info(http_req_id(ec->r), "ecp.saved", "email=%s etag=%s",
	    log_q(ec->v.m.email), ec->etag);
	redirect(ec->r, "saved");
	ecp_call_end(ec);
}

static void
save_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc = store_preview_save(st, ec->v.m.email, ec->etag);

	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

static void
cancel_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK && ec->rc != PS_ENOTFOUND) {
		ecp_store_failed(ec, "preview", "The preview could not be "
		    "discarded.");
		return;
	}
	log_info(http_req_id(ec->r), "ecp.cancelled", "email=%s "
	    "had_preview=%s", log_q(ec->v.m.email), ec->rc == PS_OK ? "yes" :
	    "no");
	redirect(ec->r, "cancelled");
	ecp_call_end(ec);
}

static void
cancel_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc = store_preview_remove(st, ec->v.m.email);

	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

static void
remove_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ec->rc == PS_OK)
		photo_changed(ec);
	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK && ec->rc != PS_ENOTFOUND) {
		ecp_store_failed(ec, "photo", "The photo could not be "
		    "removed.");
		return;
	}
	log_info(http_req_id(ec->r), "ecp.removed", "email=%s had_photo=%s",
	    log_q(ec->v.m.email), ec->rc == PS_OK ? "yes" : "no");
	redirect(ec->r, "removed");
	ecp_call_end(ec);
}

static void
remove_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc = store_photo_remove(st, ec->v.m.email);

	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

static void
handle_remove(struct ecp_call *ec)
{
	char *confirm = http_form_value(http_req_body(ec->r, NULL), "confirm");
	bool yes = confirm && strcmp(confirm, "yes") == 0;

	free(confirm);
	if (!yes) {
		photo_page(ec, 400, "Tick \"Yes, remove my photo\" to "
		    "confirm. Your photo has not changed.");
		ecp_call_end(ec);
		return;
	}
	(void)ecp_store(ec, true, remove_run, remove_done);
}

static void
visibility_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ec->rc == PS_OK && ec->hide_changed)
		photo_changed(ec);
	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK) {
		ecp_store_failed(ec, "photo", ec->hide ? "Your photo could "
		    "not be hidden." : "Your photo could not be shown again.");
		return;
	}
	if (ec->hide_changed)
		log_info(http_req_id(ec->r), ec->hide ? "photo.hidden" :
		    "photo.unhidden", "email=%s via=ecp", log_q(ec->v.m.email));
	redirect(ec->r, ec->hide ? "hidden" : "shown");
	ecp_call_end(ec);
}

static void
visibility_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	ps_err rc = store_photo_hide(st, ec->v.m.email, ec->hide, ec->etag,
	    &ec->hide_changed);

	if (rc != PS_OK)
		ecp_call_failed(ec, rc);
}

static void
handle_visibility(struct ecp_call *ec)
{
	char *hide = http_form_value(http_req_body(ec->r, NULL), "hide");

	if (hide == NULL || (strcmp(hide, "yes") && strcmp(hide, "no"))) {
		free(hide);
		photo_page(ec, 400, "Choose whether to hide or show your "
		    "photo. Nothing was changed.");
		ecp_call_end(ec);
		return;
	}
	ec->hide = strcmp(hide, "yes") == 0;
	free(hide);
	master_etag_new(ec->etag);
	(void)ecp_store(ec, true, visibility_run, visibility_done);
}

/* ---- the session, and on to the route ---- */

static const char *const route_names[] = {
	[ECP_LOGOUT] = "logout", [ECP_UPLOAD] = "upload",
	[ECP_SAVE] = "save", [ECP_CANCEL] = "cancel", [ECP_REMOVE] = "remove",
	[ECP_VISIBILITY] = "visibility",
};

/*
 * The page asked for through a single sign-on proxy without a session
 * of the mailbox it names: a session is started for that mailbox as the
 * form would (no password), and the browser sent back to the page with
 * its cookie, so that the page's forms carry the session's token.
 */
static void
sso_signin(struct ecp_call *ec)
{
	if (ec->e->srv->pool == NULL) {
		ps_errf(PS_EBUSY, "the store is closing");
		master_reply_busy(ec->r, "store");
		ecp_call_end(ec);
		return;
	}
	store_mailbox_cleanup(&ec->v.m);
	memset(&ec->v.m, 0, sizeof(ec->v.m));
	/* It answers `ec`, maybe before it returns. */
	auth_signin_sso_start(&ec->signin, &login_ops, ec, ec->e->srv->pool,
	    http_req_id(ec->r), http_req_peer(ec->r), true,
	    xstrdup(ec->sso_user));
}

/*
 * The page asked for with a Kerberos token and no session: a session
 * for the principal's mailbox, then back to the page. False (nothing
 * done) when Kerberos is off or the request has no token.
 */
static bool
negotiate_signin(struct ecp_call *ec)
{
	const char *hdr = http_req_header(ec->r, "Authorization");
	struct master_srv *srv = ec->e->srv;

	if (srv->kerberos == NULL || ec->route != ECP_PAGE || hdr == NULL ||
	    !str_case_prefix(hdr, "Negotiate") || srv->pool == NULL)
		return false;
	store_mailbox_cleanup(&ec->v.m);
	memset(&ec->v.m, 0, sizeof(ec->v.m));
	/* It answers `ec`, maybe before it returns. */
	auth_signin_negotiate_start(&ec->signin, &login_ops, ec, srv->pool,
	    srv->guard, srv->kerberos, http_req_id(ec->r),
	    http_req_peer(ec->r), true, xstrdup(hdr));
	return true;
}

/* No session: the sign-in form, or a refusal. */
static void
signed_out(struct ecp_call *ec)
{
	struct http_req *r = ec->r;

	if (negotiate_signin(ec))
		return;
	if (ec->route == ECP_PAGE && ec->e->srv->kerberos) {
		/* A browser with a ticket answers; one without shows it. */
		http_reply_header(r, "WWW-Authenticate", "Negotiate");
		login_page(ec, 401, NULL, NULL);
	} else if (ec->route == ECP_PAGE)
		login_page(ec, 200, NULL, NULL);
	else if (ec->route == ECP_PHOTO)
		http_reply_error(r, 403, "sign in on the change-photo page "
		    "first");
	else if (ec->route == ECP_LOGOUT)
		redirect(r, NULL);
	else
		login_page(ec, 401, "You are signed out (the session may have "
		    "expired). Sign in, then try again.", NULL);
	ecp_call_end(ec);
}

/*
 * On the read lane: the session, its mailbox, and what the route shows
 * (the pending preview for the page and the forms' error pages, the
 * photo asked for).
 */
static void
session_read_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	struct store_mailbox_session ss;
	struct store_photo pv = { 0 };
	ps_err rc;

	rc = store_mailbox_session_get(st, ec->key, &ss);
	if (rc == PS_OK)
		rc = store_mailbox_get(st, ss.email, &ec->v.m);
	if (rc == PS_OK)
		str_copy(ec->v.csrf, ss.csrf, sizeof(ec->v.csrf));
	explicit_bzero(&ss, sizeof(ss));
	if (rc != PS_OK) {
		if (rc != PS_ENOTFOUND)
			ecp_call_failed(ec, rc);
		return;
	}
	ec->signed_in = true;
	if (ec->route == ECP_PHOTO) {
		if (ec->bad_query)
			return;
		rc = ec->want_preview ? store_preview_get(st, ec->v.m.email,
		    ec->code, &ec->ph) : store_photo_get(st, ec->v.m.email,
		    ec->code, &ec->ph);
		if (rc != PS_OK)
			ecp_call_failed(ec, rc);
		return;
	}
	if (store_preview_get(st, ec->v.m.email, ews_size_index(PAGE_SIZE),
	    &pv) == PS_OK) {
		ec->has_preview = true;
		str_copy(ec->preview_id, pv.etag, sizeof(ec->preview_id));
	}
	store_photo_cleanup(&pv);
}

static void
session_read_done(void *arg)
{
	struct ecp_call *ec = arg;
	struct http_req *r = ec->r;
	struct http_part csrf_part = { 0 };
	const char *body;
	char *csrf = NULL;
	bool csrf_ok;
	size_t len;

	if (ecp_call_gone(ec))
		return;
	if (!ec->signed_in && ec->rc != PS_OK) {
		ecp_store_failed(ec, "session", NULL);
		return;
	}
	/* A proxy names someone else than the session: that one it is. */
	if (ec->sso_user[0] && (!ec->signed_in ||
	    !str_case_eq(ec->sso_user, ec->v.m.email))) {
		if (ec->route == ECP_PAGE)
			sso_signin(ec);
		else
			signed_out(ec);
		return;
	}
	if (!ec->signed_in) {
		signed_out(ec);
		return;
	}
	http_req_note(r, "auth", "session");
	http_req_note(r, "user", ec->v.m.email);
	if (ec->route == ECP_PAGE) {
		photo_page(ec, 200, NULL);
		ecp_call_end(ec);
		return;
	}
	if (ec->route == ECP_PHOTO) {
		answer_photo(ec);
		return;
	}
	/* A POST: from no other site's page, with the session's token. */
	if (auth_post_cross_site(r, "session", ec->v.m.email)) {
		photo_page(ec, 403, "This form did not come from this page, so "
		    "nothing was changed.");
		ecp_call_end(ec);
		return;
	}
	body = http_req_body(r, &len);
	if (ec->route == ECP_UPLOAD) {
		csrf_ok = http_multipart_head_field(http_req_header(r,
		    "Content-Type"), body, len, "csrf", &csrf_part) == PS_OK &&
		    auth_token_eq(ec->v.csrf, csrf_part.data, csrf_part.len);
	} else {
		csrf = http_form_value(body, "csrf");
		csrf_ok = auth_token_eq(ec->v.csrf, csrf, csrf ? strlen(csrf) :
		    0);
		if (csrf)
			xfree_secret(csrf, strlen(csrf));
	}
	if (!csrf_ok) {
		log_info(http_req_id(r), "ecp.csrf_refused", "action=%s "
		    "email=%s", route_names[ec->route] ?
		    route_names[ec->route] : "-", log_q(ec->v.m.email));
		photo_page(ec, 403, "This form had expired or did not come "
		    "from this page, so nothing was changed. Please try "
		    "again.");
		ecp_call_end(ec);
		return;
	}
	switch (ec->route) {
	case ECP_LOGOUT:
		(void)ecp_store(ec, true, logout_run, logout_done);
		break;
	case ECP_UPLOAD:
		handle_upload(ec);
		break;
	case ECP_SAVE:
		master_etag_new(ec->etag);
		(void)ecp_store(ec, true, save_run, save_done);
		break;
	case ECP_CANCEL:
		(void)ecp_store(ec, true, cancel_run, cancel_done);
		break;
	case ECP_REMOVE:
		handle_remove(ec);
		break;
	case ECP_VISIBILITY:
		handle_visibility(ec);
		break;
	default:
		http_reply_error(r, 404, "no such endpoint");
		ecp_call_end(ec);
		break;
	}
}

/* ---- the body gate ---- */

static void
gate_read_run(struct store *st, void *arg)
{
	struct ecp_call *ec = arg;
	struct store_mailbox_session ss;
	ps_err rc = store_mailbox_session_get(st, ec->key, &ss);

	if (rc == PS_OK) {
		ec->signed_in = true;
		str_copy(ec->v.m.email, ss.email, sizeof(ec->v.m.email));
	} else if (rc != PS_ENOTFOUND) {
		ecp_call_failed(ec, rc);
	}
	explicit_bzero(&ss, sizeof(ss));
}

static void
gate_read_done(void *arg)
{
	struct ecp_call *ec = arg;

	if (ecp_call_gone(ec))
		return;
	if (ec->rc != PS_OK) {
		ecp_store_failed(ec, "session", NULL);
		return;
	}
	if (!ec->signed_in) {
		signed_out(ec);
		return;
	}
	/* Another site's page: refused before its body is read. */
	if (auth_post_cross_site(ec->r, "session", ec->v.m.email)) {
		http_reply_header(ec->r, "Cache-Control", "no-store");
		http_reply_error(ec->r, 403, "refused: another site's page "
		    "sent this request, so nothing was changed");
		ecp_call_end(ec);
		return;
	}
	/* The handler checks the session again, with its CSRF token. */
	http_req_body_allow(ec->r, MASTER_UPLOAD_MAX);
	ecp_call_end(ec);
}

void
ecp_gate(struct master_ecp *e, struct http_req *r)
{
	struct ecp_call *ec = ecp_call_new(e, r, ECP_UPLOAD);

	back_find(ec);
	if (!auth_web_session_key(&ecp_web, r, ec->key)) {
		signed_out(ec);
		return;
	}
	(void)ecp_store(ec, false, gate_read_run, gate_read_done);
}

/* ---- entry points ---- */

void
ecp_handle(struct master_ecp *e, struct http_req *r, enum ecp_route route)
{
	struct ecp_call *ec = ecp_call_new(e, r, route);
	const char *named;

	back_find(ec);
	if (route == ECP_HOME) {
		redirect(r, NULL);
		ecp_call_end(ec);
		return;
	}
	if (route == ECP_LOGIN) {
		handle_login(ec);
		return;
	}
	switch (auth_sso_request(e->srv->sso, r, &named)) {
	case AUTH_SSO_BAD:
		http_reply_error(r, 400, "refused: the single sign-on proxy "
		    "sent its identity header more than once, or empty");
		ecp_call_end(ec);
		return;
	case AUTH_SSO_USER:
		str_copy(ec->sso_user, named, sizeof(ec->sso_user));
		break;
	case AUTH_SSO_NONE:
	case AUTH_SSO_IGNORED:
		break;
	}
	if (route == ECP_PHOTO)
		photo_query(ec);
	if (!auth_web_session_key(&ecp_web, r, ec->key)) {
		if (ec->sso_user[0] && route == ECP_PAGE)
			sso_signin(ec);
		else
			signed_out(ec);
		return;
	}
	(void)ecp_store(ec, false, session_read_run, session_read_done);
}

struct master_ecp *
ecp_new(struct master_srv *srv)
{
	struct master_ecp *e = xcalloc(1, sizeof(*e));

	e->srv = srv;
	if ((e->pool = work_pool_new(srv->base, 2)) == NULL) {
		free(e);
		return NULL;
	}
	work_pool_set_cap(e->pool, MAX_UPLOADS);
	return e;
}

struct work_pool *
ecp_renderers(struct master_ecp *e)
{
	return e->pool;
}

size_t
ecp_uploads_pending(struct master_ecp *e)
{
	return work_pending(e->pool);
}

void
ecp_drain(struct master_ecp *e)
{
	if (e)
		work_pool_drain(e->pool);
}

void
ecp_free(struct master_ecp *e)
{
	struct ecp_call *ec, *next;

	if (e == NULL)
		return;
	/* Running renders finish; queued ones are dropped unanswered. */
	work_pool_free(e->pool);
	/* ecp_call_end() frees `ec` and only `ec`. */
	for (ec = e->calls; ec; ec = next) {
		next = ec->next;
		http_reply_header(ec->r, "Retry-After", "1");
		http_reply_error(ec->r, 503, "the server is stopping");
		ecp_call_end(ec);
	}
	free(e);
}
