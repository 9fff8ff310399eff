/*
 * HTML of the portal's pages.
 */
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "pages.h"

static const char style[] =
"body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;"
"background:#f6f6f4}"
"header{background:#23395d;color:#fff;padding:.6rem 1rem;display:flex;"
"gap:1rem;align-items:center;flex-wrap:wrap}"
"header a,header button{color:#fff;font:inherit}"
"header button{background:none;border:1px solid #fff;border-radius:4px;"
"padding:.2rem .6rem;cursor:pointer}"
"main{max-width:60rem;margin:1.5rem auto;padding:0 1rem}"
".card{background:#fff;border-radius:8px;padding:1.2rem;"
"box-shadow:0 1px 3px #0002}"
".people{list-style:none;padding:0;display:grid;gap:1rem;"
"grid-template-columns:repeat(auto-fill,minmax(14rem,1fr))}"
".people li{display:flex;gap:.8rem;align-items:center}"
".people img,.big{border-radius:50%;background:#ddd}"
".error{color:#a40000;font-weight:bold}"
"label{display:block;margin:.6rem 0 .2rem}"
"input[type=text],input[type=password]{font:inherit;padding:.3rem;"
"width:18rem;max-width:100%}"
"button.primary{margin-top:1rem;font:inherit;padding:.4rem 1rem}"
"a:focus,button:focus,input:focus{outline:3px solid #f0b400}"
"dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}";

static void
esc(struct buf *b, const char *s)
{
	buf_add_xml(b, s ? s : "");
}

static void
photo_url(struct buf *b, const char *account, char size, const char *tag)
{
	char *enc = http_encode(account);

	buf_addf(b, "/_layouts/15/userphoto.aspx?size=%c&amp;accountname=%s",
	    size, enc);
	if (tag && *tag) {
		buf_adds(b, "&amp;t=");
		esc(b, tag);
	}
	free(enc);
}

/* An error message as a sentence: capitalised, in an alert. */
static void
sentence(struct buf *b, const char *msg)
{
	char *s = xstrdup(msg);

	if (s[0] >= 'a' && s[0] <= 'z')
		s[0] = (char)(s[0] - 'a' + 'A');
	buf_adds(b, "<p class=\"error\" role=\"alert\">");
	esc(b, s);
	buf_adds(b, "</p>");
	free(s);
}

static void
begin(struct buf *b, const struct page_viewer *v, const char *title)
{
	buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" "
	    "content=\"width=device-width,initial-scale=1\"><title>");
	esc(b, title);
	buf_addf(b, " - photosync portal</title><style>%s</style></head>"
	    "<body><header><strong>photosync portal</strong>", style);
	if (v && v->user) {
		buf_adds(b, "<nav aria-label=\"Main\"><a href=\"/my\">My "
		    "profile</a> &middot; <a href=\"/people\">People</a></nav>"
		    "<form method=\"post\" action=\"/logout\" "
		    "style=\"margin-left:auto\"><input type=\"hidden\" "
		    "name=\"csrf\" value=\"");
		esc(b, v->csrf);
		buf_adds(b, "\"><span>Signed in as ");
		esc(b, v->user->name[0] ? v->user->name : v->user->account);
		buf_adds(b, "</span> <button type=\"submit\">Sign out</button>"
		    "</form>");
	}
	buf_adds(b, "</header><main>");
}

static void
end(struct buf *b)
{
	buf_adds(b, "</main></body></html>\n");
}

void
page_login(struct buf *b, const char *csrf, const char *return_url,
    const char *error)
{
	begin(b, NULL, "Sign in");
	buf_adds(b, "<div class=\"card\"><h1>Sign in</h1>");
	if (error) {
		buf_adds(b, "<p class=\"error\" role=\"alert\">");
		esc(b, error);
		buf_adds(b, "</p>");
	}
	buf_adds(b, "<form method=\"post\" action=\"/login\">"
	    "<input type=\"hidden\" name=\"csrf\" value=\"");
	esc(b, csrf);
	buf_adds(b, "\"><input type=\"hidden\" name=\"ReturnUrl\" value=\"");
	esc(b, return_url);
	buf_adds(b, "\"><label for=\"account\">Account (DOMAIN\\user or "
	    "e-mail address)</label><input type=\"text\" id=\"account\" "
	    "name=\"account\" autocomplete=\"username\" required autofocus>"
	    "<label for=\"password\">Password</label><input type=\"password\" "
	    "id=\"password\" name=\"password\" "
	    "autocomplete=\"current-password\" required><br><button "
	    "class=\"primary\" type=\"submit\">Sign in</button></form></div>");
	end(b);
}

static void
profile_photo(struct buf *b, const struct store_user *u, const char *tag)
{
	buf_adds(b, "<img class=\"big\" src=\"");
	photo_url(b, u->account, 'L', tag);
	buf_adds(b, "\" width=\"300\" height=\"300\" alt=\"Photo of ");
	esc(b, u->name[0] ? u->name : u->account);
	buf_adds(b, "\">");
}

static void
profile_facts(struct buf *b, const struct store_user *u)
{
	buf_adds(b, "<dl><dt>Account</dt><dd>");
	esc(b, u->account);
	buf_adds(b, "</dd><dt>E-mail</dt><dd>");
	esc(b, u->email);
	buf_adds(b, "</dd></dl>");
}

void
page_my(struct buf *b, const struct page_viewer *v,
    const struct store_sync *sync, const char *photo_source,
    const char *photo_tag, bool fetching, const char *notice)
{
	const struct store_user *u = v->user;

	begin(b, v, "My profile");
	buf_adds(b, "<div class=\"card\"><h1>");
	esc(b, u->name[0] ? u->name : u->account);
	buf_adds(b, "</h1>");
	if (notice) {
		buf_adds(b, "<p role=\"status\"><strong>");
		esc(b, notice);
		buf_adds(b, "</strong></p>");
	}
	profile_photo(b, u, photo_tag);
	profile_facts(b, u);
	buf_adds(b, "<p>");
	if (photo_source && strcmp(photo_source, "master") == 0)
		buf_adds(b, "Your photo comes from your mailbox.");
	else if (photo_source)
		buf_adds(b, "Your photo was uploaded here.");
	else if (fetching)
		buf_adds(b, "Your photo is being fetched from the mail server. "
		    "If it does not show yet, reload this page in a moment.");
	else
		buf_adds(b, "You have no photo yet.");
	if (sync && sync->last_error && sync->reason[0]) {
		buf_adds(b, " The last attempt to fetch it from the mail "
		    "server failed: ");
		esc(b, sync->reason);
	}
	buf_adds(b, "</p><p><a href=\"/my/changephoto\">Change photo</a></p>"
	    "</div>");
	end(b);
}

void
page_person(struct buf *b, const struct page_viewer *v,
    const struct store_user *who, const char *photo_tag)
{
	begin(b, v, who->name[0] ? who->name : who->account);
	buf_adds(b, "<div class=\"card\"><h1>");
	esc(b, who->name[0] ? who->name : who->account);
	buf_adds(b, "</h1>");
	profile_photo(b, who, photo_tag);
	profile_facts(b, who);
	buf_adds(b, "</div>");
	end(b);
}

void
page_people(struct buf *b, const struct page_viewer *v,
    const struct store_user *users, const char (*tags)[16], size_t n)
{
	size_t i;

	begin(b, v, "People");
	buf_adds(b, "<div class=\"card\"><h1>People</h1><ul class=\"people\">");
	for (i = 0; i < n; i++) {
		char *enc = http_encode(users[i].account);

		buf_adds(b, "<li><img src=\"");
		photo_url(b, users[i].account, 'M', tags[i]);
		buf_adds(b, "\" width=\"72\" height=\"72\" alt=\"Photo of ");
		esc(b, users[i].name[0] ? users[i].name : users[i].account);
		buf_addf(b, "\"><a href=\"/my/person.aspx?accountname=%s\">",
		    enc);
		esc(b, users[i].name[0] ? users[i].name : users[i].account);
		buf_adds(b, "</a></li>");
		free(enc);
	}
	buf_adds(b, "</ul></div>");
	end(b);
}

void
page_upload(struct buf *b, const struct page_viewer *v,
    const char *photo_tag, const char *managed_url, const char *error)
{
	const struct store_user *u = v->user;

	begin(b, v, "Change photo");
	buf_adds(b, "<div class=\"card\"><h1>Change photo</h1>");
	if (error)
		sentence(b, error);
	profile_photo(b, u, photo_tag);
	if (managed_url) {
		buf_adds(b, "<p>Your photo is managed by the mail server. "
		    "<a href=\"");
		esc(b, managed_url);
		buf_adds(b, "\">Change it there</a>.</p>");
	} else {
		buf_adds(b, "<form method=\"post\" action=\"/my/changephoto\" "
		    "enctype=\"multipart/form-data\"><input type=\"hidden\" "
		    "name=\"csrf\" value=\"");
		esc(b, v->csrf);
		buf_adds(b, "\"><label for=\"photo\">Choose a photo (JPEG, "
		    "PNG, WebP, HEIF or GIF, at most 20 MB)</label>"
		    "<input type=\"file\" id=\"photo\" name=\"photo\" "
		    "accept=\"image/*\" required><br><button class=\"primary\" "
		    "type=\"submit\">Upload</button></form>");
	}
	buf_adds(b, "<p><a href=\"/my\">Back to my profile</a></p></div>");
	end(b);
}

void
page_error(struct buf *b, const struct page_viewer *v, int status,
    const char *message)
{
	begin(b, v, "Error");
	buf_addf(b, "<div class=\"card\"><h1>Error %d</h1><p class=\"error\" "
	    "role=\"alert\">", status);
	esc(b, message);
	buf_adds(b, "</p><p><a href=\"/my\">Back to my profile</a></p></div>");
	end(b);
}
