/*
 * The photos of the User Photos library, as SharePoint serves them:
 *
 *   GET /_layouts/15/userphoto.aspx?size=S|M|L&accountname=|username=|url=
 *   GET /User%20Photos/Profile%20Pictures/<account>_{S,M,L}Thumb.jpg
 *
 * Answered from the index (index.h): a cached photo costs hash lookups
 * and is sent from its shared buffer. A request for one's own photo may
 * start a sync (sync.c), by default only for the L size, and waits for it
 * at most the web application's owner wait (owner_wait_ms). Users without
 * a photo get the placeholder, and so does everyone but its owner for a
 * photo the master marked hidden (a field of the index's entry).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "index.h"
#include "metrics/metrics.h"
#include "portal_int.h"

#define PHOTO_MAX_AGE		"300"	/* seconds, in Cache-Control */
#define PLACEHOLDER_MAX_AGE	"60"

static const char *const size_names = "SML";
/* A photo's ETag is its stored one with the size: "<etag>-M". */
static const char *const size_suffixes[] = { "-S", "-M", "-L" };

/* A photo request on its way: the target, then the photo. */
struct photo_req {
	struct webapp_ctx	*app;
	struct http_req		*r;
	char			 viewer[ACCOUNT_MAX];
	char			 account[ACCOUNT_MAX];	/* whose photo */
	int			 size;
};

/* Sends the photo (a reference the answer takes), or the placeholder. */
static void
photo_send(void *arg, ps_err rc, struct cached_photo *ph)
{
	struct photo_req *pr = arg;
	struct webapp_ctx *app = pr->app;
	struct http_req *r = pr->r;
	const char *inm = http_req_header(r, "If-None-Match");
	int size = pr->size;
	char tag[96], quoted[100];
	const char *cc;
	size_t at;
	bool hidden = rc == PS_OK && ph->data && ph->hidden &&
	    strcmp(pr->viewer, pr->account) != 0;

	free(pr);
	if (rc != PS_OK) {
		reply_unread(app->srv, r, rc);
		return;
	}
	if (hidden) {
		/* Hidden from this viewer: exactly as if there were none. */
		cached_photo_unref(ph);
		ph = xcalloc(1, sizeof(*ph));
		ph->refs = 1;
	}
	if (ph->data) {
		at = str_cat(tag, sizeof(tag), 0, ph->etag);
		str_cat(tag, sizeof(tag), at, size_suffixes[size]);
		cc = "private, max-age=" PHOTO_MAX_AGE;
		http_req_note(r, "photo", ph->source);
		metrics_add("photosync_photos_served_total", "kind=\"photo\"",
		    1);
	} else {
		snprintf(tag, sizeof(tag), "placeholder-%c-%d",
		    size_names[size], app->placeholder.sides[size]);
		cc = "private, max-age=" PLACEHOLDER_MAX_AGE;
		http_req_note(r, "photo", "placeholder");
		metrics_add("photosync_photos_served_total",
		    "kind=\"placeholder\"", 1);
	}
	at = str_cat(quoted, sizeof(quoted), 0, "\"");
	at = str_cat(quoted, sizeof(quoted), at, tag);
	str_cat(quoted, sizeof(quoted), at, "\"");
	http_reply_header(r, "ETag", quoted);
	http_reply_header(r, "Cache-Control", cc);
	if (http_etag_match(inm, tag)) {
		metrics_add("photosync_photos_revalidated_total", NULL, 1);
		http_reply(r, 304, NULL, NULL, 0);
		cached_photo_unref(ph);
	} else if (ph->data) {
		/* The index's bytes, shared: no copy. */
		http_reply_ref(r, 200, "image/jpeg", ph->data, ph->len,
		    cached_photo_unref, ph);
	} else {
		http_reply(r, 200, "image/jpeg", app->placeholder.data[size],
		    app->placeholder.len[size]);
		cached_photo_unref(ph);
	}
}

/* Serves what is stored of `account` (takes `pr`). */
static void
photo_serve(struct photo_req *pr, const char *account)
{
	str_copy(pr->account, account, sizeof(pr->account));
	index_photo(pr->app->srv->index, pr->app->w.id, account,
	    (enum store_thumb_size)pr->size, photo_send, pr);
}

/* A photo request that waited for a sync: what is stored now. */
struct photo_wait {
	struct photo_req	*pr;
	char			 account[ACCOUNT_MAX];
};

static void
photo_wait_done(void *arg, const struct sync_outcome *o)
{
	struct photo_wait *pw = arg;

	(void)o;
	photo_serve(pw->pr, pw->account);
	free(pw);
}

/* The user a request is about is known: the photo, maybe after a sync. */
static void
target_found(void *arg, ps_err rc, const struct store_user *target)
{
	struct photo_req *pr = arg;
	struct webapp_ctx *app = pr->app;
	struct http_req *r = pr->r;
	struct photo_wait *pw;
	bool own;

	if (rc == PS_EBUSY || rc == PS_ESTORE) {
		free(pr);
		reply_unread(app->srv, r, rc);
		return;
	}
	if (rc != PS_OK) {
		/* An unknown user gets the placeholder, as the original. */
		photo_serve(pr, "");
		return;
	}
	http_req_note(r, "account", target->account);
	http_req_note(r, "size", (char[2]){ size_names[pr->size], 0 });
	own = strcmp(pr->viewer, target->account) == 0;
	/* Only the owner's request triggers, by default only the L size. */
	if (own && (pr->size == STORE_L || app->w.sync_any)) {
		pw = xcalloc(1, sizeof(*pw));
		pw->pr = pr;
		str_copy(pw->account, target->account, sizeof(pw->account));
		http_req_defer(r);
		if (sync_request(app, target, http_req_id(r), SYNC_DEADLINE,
		    photo_wait_done, pw) == SYNC_STARTED)
			return;
		free(pw);
	}
	photo_serve(pr, target->account);
}

static struct photo_req *
photo_req_new(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v, int size)
{
	struct photo_req *pr = xcalloc(1, sizeof(*pr));

	pr->app = app;
	pr->r = r;
	pr->size = size;
	str_copy(pr->viewer, v->user.account, sizeof(pr->viewer));
	return pr;
}

void
photos_userphoto(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	const char *sz = http_req_query_ci(r, "size"), *who;
	struct photo_req *pr;
	int size = STORE_S;

	if (sz && sz[0] && sz[1] == '\0' && strchr("SsMmLl", sz[0]))
		size = (int)(strchr(size_names, sz[0] & ~0x20) - size_names);
	else if (sz && sz[0]) {
		http_reply_error(r, 400, "size= must be S, M or L");
		return;
	}
	/* Whose photo: accountname= (any form), username=, or url=. */
	if ((who = http_req_query_ci(r, "accountname")) != NULL ||
	    (who = http_req_query_ci(r, "username")) != NULL) {
		char account[ACCOUNT_MAX];
		bool is_email;

		if (account_parse(who, account, &is_email) != PS_OK) {
			http_reply_error(r, 400, ps_errmsg());
			return;
		}
		pr = photo_req_new(app, r, v, size);
		index_user(app->srv->index, INDEX_BY_NAME, who, target_found,
		    pr);
		return;
	}
	if ((who = http_req_query_ci(r, "url")) != NULL) {
		const char *slash = strrchr(who, '/');
		char prefix[ACCOUNT_MAX], letter;

		if (account_parse_file(slash ? slash + 1 : who, prefix,
		    &letter) != PS_OK) {
			http_reply_error(r, 400, ps_errmsg());
			return;
		}
		pr = photo_req_new(app, r, v, size);
		index_user(app->srv->index, INDEX_BY_PREFIX, prefix,
		    target_found, pr);
		return;
	}
	http_reply_error(r, 400, "say whose photo: accountname=, username= "
	    "or url=");
}

/* A library file's user: unknown ones are 404 here, not placeholders. */
static void
library_target_found(void *arg, ps_err rc, const struct store_user *target)
{
	struct photo_req *pr = arg;

	if (rc == PS_ENOTFOUND) {
		http_reply_error(pr->r, 404, "no such photo in the library");
		free(pr);
		return;
	}
	target_found(pr, rc, target);
}

void
photos_library(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	const char *file = http_req_path_raw(r) + strlen(
	    "/user photos/profile pictures/");
	char prefix[ACCOUNT_MAX], size;

	if (account_parse_file(file, prefix, &size) != PS_OK) {
		http_reply_error(r, 404, "no such photo in the library");
		return;
	}
	index_user(app->srv->index, INDEX_BY_PREFIX, prefix,
	    library_target_found, photo_req_new(app, r, v,
	    (int)(strchr(size_names, size) - size_names)));
}
