/*
 * The profile pages and changing one's photo:
 *
 *   GET  /my, /my/person.aspx?accountname=, /people
 *   GET|POST /my/changephoto	to the master's page for users with a
 *				mailbox, a local upload for the others
 *   GET  /my/photochanged	back from the master: fetch the new photo
 *
 * Pages read what they show on the store's read lane (the request waits,
 * the loop goes on); an upload is rendered on the workers (a bounded
 * queue: 503 when full) and stored on the write lane. /my without a photo
 * first waits for the sync that is due (as the owner's photo request
 * would), so that it tells what that sync found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "account.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "pages.h"
#include "portal_int.h"
#include "store/pool.h"
#include "work/work.h"

/* Retry-After when the mail server could not say where a photo lives. */
#define DISCOVER_RETRY_S	"5"

/* ---- pages ---- */

/* A page's rows, read on the read lane. */
struct page_load {
	struct webapp_ctx	*app;
	struct http_req		*r;
	struct viewer		 v;
	void			(*show)(struct page_load *);
	/* /my */
	struct store_sync	 sync;
	char			 source[16];	/* "" when no photo */
	bool			 waited;	/* for the sync, once */
	bool			 fetching;	/* the sync outlasted it */
	bool			 kept;		/* show() kept it */
	/* /my/person.aspx */
	char			*who;
	struct store_user	 person;
	/* /people */
	struct store_user	*users;
	size_t			 n;
	/* tags[i]: users[i]'s photo (/people), or [0] the page's one */
	char			(*tags)[16];
	ps_err			 rc;
	char			 err[256];
};

static void
page_load_free(struct page_load *pl)
{
	free(pl->who);
	store_user_cleanup(&pl->person);
	free(pl->users);
	free(pl->tags);
	free(pl);
}

/* A short tag of the user's current photo, for cache-busting URLs. */
static ps_err
photo_tag(struct store *st, int64_t webapp, const char *account,
    char tag[16])
{
	char etag[64];
	ps_err rc = store_thumb_etag(st, webapp, account, etag);

	tag[0] = '\0';
	if (rc == PS_OK)
		str_copy(tag, etag, 13);
	return rc == PS_ENOTFOUND ? PS_OK : rc;
}

static void
page_load_done(void *arg)
{
	struct page_load *pl = arg;

	if (pl->rc == PS_ENOTFOUND)
		reply_error_page(pl->r, &pl->v, 404, "There is no such "
		    "person.");
	else if (pl->rc != PS_OK) {
		bool down = !store_pool_up(pl->app->srv->store);

		log_err(http_req_id(pl->r), "page.store_failed", "error=%s",
		    log_q(pl->err));
		if (down)
			http_reply_header(pl->r, "Retry-After",
			    STORE_DOWN_RETRY_S);
		reply_error_page(pl->r, &pl->v, down ? 503 : 500, "The page "
		    "could not be read. Please try again later.");
	} else
		pl->show(pl);
	if (pl->kept)
		pl->kept = false;
	else
		page_load_free(pl);
}

static void
page_load_start(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v, store_job_fn run, void (*show)(struct page_load *),
    const char *who)
{
	struct page_load *pl = xcalloc(1, sizeof(*pl));

	pl->app = app;
	pl->r = r;
	pl->v = *v;
	pl->show = show;
	pl->who = who ? xstrdup(who) : NULL;
	pl->tags = xcalloc(1, sizeof(*pl->tags));
	http_req_defer(r);
	if (store_pool_read(app->srv->store, run, page_load_done, pl) !=
	    PS_OK) {
		reply_busy(r, "store reads");
		page_load_free(pl);
	}
}

static void
my_run(struct store *st, void *arg)
{
	struct page_load *pl = arg;
	struct store_thumb t = { 0 };
	int64_t w = pl->app->w.id;
	ps_err rc;

	if ((rc = store_sync_get(st, w, pl->v.user.account, &pl->sync)) ==
	    PS_OK) {
		rc = store_thumb_get(st, w, pl->v.user.account, STORE_S, &t);
		if (rc == PS_OK) {
			str_copy(pl->source, t.source, sizeof(pl->source));
			str_copy(pl->tags[0], t.etag, 13);
		}
		store_thumb_cleanup(&t);
		if (rc == PS_ENOTFOUND)
			rc = PS_OK;
	}
	if ((pl->rc = rc) != PS_OK)
		str_copy(pl->err, ps_errmsg(), sizeof(pl->err));
}

/* The sync /my waited for ended (`o` NULL: the wait did): read again. */
static void
my_synced(void *arg, const struct sync_outcome *o)
{
	struct page_load *pl = arg;

	pl->fetching = o == NULL;
	pl->source[0] = '\0';
	pl->tags[0][0] = '\0';
	if (store_pool_read(pl->app->srv->store, my_run, page_load_done, pl) !=
	    PS_OK) {
		reply_busy(pl->r, "store reads");
		page_load_free(pl);
	}
}

static void
my_show(struct page_load *pl)
{
	struct page_viewer pv = { &pl->v.user, pl->v.csrf };
	const char *changed = http_req_query(pl->r, "changed");
	struct buf b;

	/*
	 * No photo yet: the page's own photo request would start the sync
	 * that is due; the page waits for it first (at most as long as that
	 * request would), so it does not say "no photo" while one arrives.
	 */
	if (!pl->source[0] && !pl->waited) {
		pl->waited = true;
		pl->kept = true;
		if (sync_request(pl->app, &pl->v.user, http_req_id(pl->r),
		    SYNC_DEADLINE, my_synced, pl) == SYNC_STARTED)
			return;
		pl->kept = false;
	}
	buf_init(&b, 1 << 20);
	page_my(&b, &pv, &pl->sync, pl->source[0] ? pl->source : NULL,
	    pl->tags[0], pl->fetching, changed ? "Your photo was changed." :
	    NULL);
	reply_html(pl->r, 200, &b);
	buf_cleanup(&b);
}

void
profile_my(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	page_load_start(app, r, v, my_run, my_show, NULL);
}

static void
person_run(struct store *st, void *arg)
{
	struct page_load *pl = arg;
	char account[ACCOUNT_MAX];
	bool is_email;
	ps_err rc;

	if (account_parse(pl->who, account, &is_email) != PS_OK)
		rc = PS_ENOTFOUND;
	else
		rc = is_email ? store_user_get_by_email(st, account,
		    &pl->person) : store_user_get(st, account, &pl->person);
	if (rc == PS_OK)
		rc = photo_tag(st, pl->app->w.id, pl->person.account,
		    pl->tags[0]);
	if ((pl->rc = rc) != PS_OK && rc != PS_ENOTFOUND)
		str_copy(pl->err, ps_errmsg(), sizeof(pl->err));
}

static void
person_show(struct page_load *pl)
{
	struct page_viewer pv = { &pl->v.user, pl->v.csrf };
	struct buf b;

	buf_init(&b, 1 << 20);
	page_person(&b, &pv, &pl->person, pl->tags[0]);
	reply_html(pl->r, 200, &b);
	buf_cleanup(&b);
}

void
profile_person(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	const char *who = http_req_query_ci(r, "accountname");

	if (who == NULL) {
		reply_error_page(r, v, 404, "There is no such person.");
		return;
	}
	page_load_start(app, r, v, person_run, person_show, who);
}

static ps_err
collect_user(void *arg, const struct store_user *u)
{
	struct page_load *pl = arg;

	pl->users = xrealloc(pl->users, (pl->n + 1) * sizeof(*pl->users));
	pl->users[pl->n] = *u;
	pl->users[pl->n].pwhash = NULL;
	pl->n++;
	return PS_OK;
}

static void
people_run(struct store *st, void *arg)
{
	struct page_load *pl = arg;
	ps_err rc;
	size_t i;

	rc = store_user_each(st, collect_user, pl);
	free(pl->tags);
	pl->tags = xcalloc(pl->n + 1, sizeof(*pl->tags));
	for (i = 0; rc == PS_OK && i < pl->n; i++)
		rc = photo_tag(st, pl->app->w.id, pl->users[i].account,
		    pl->tags[i]);
	if ((pl->rc = rc) != PS_OK)
		str_copy(pl->err, ps_errmsg(), sizeof(pl->err));
}

static void
people_show(struct page_load *pl)
{
	struct page_viewer pv = { &pl->v.user, pl->v.csrf };
	struct buf b;

	buf_init(&b, 16 << 20);
	page_people(&b, &pv, pl->users, (const char (*)[16])pl->tags, pl->n);
	reply_html(pl->r, 200, &b);
	buf_cleanup(&b);
}

void
profile_people(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	page_load_start(app, r, v, people_run, people_show, NULL);
}

/* ---- changing one's photo ---- */

/* A change-photo request waiting for Autodiscover, a render or the store. */
struct change {
	struct webapp_ctx	*app;
	struct http_req		*r;
	struct viewer		 v;
	bool			 post;
	/* the upload: the form, read and rendered on a worker */
	const char		*body;		/* the request's, borrowed */
	size_t			 body_len;
	char			*ctype;
	size_t			 upload_len;
	struct image_jpeg	 out[4];	/* S, M, L, high resolution */
	ps_err			 render_rc;
	char			 render_err[256];
	char			 etag[33];
	bool			 begun;		/* its transaction */
	/* the answer, once its page's photo tag is read */
	int			 status;
	char			*managed_url;
	char			*error;
	char			 tag[16];
	ps_err			 rc;
	char			 err[256];
};

static struct change *
change_new(struct webapp_ctx *app, struct http_req *r, const struct viewer *v)
{
	struct change *c = xcalloc(1, sizeof(*c));

	c->app = app;
	c->r = r;
	c->v = *v;
	c->post = http_req_method(r) == HTTP_POST;
	return c;
}

static void
change_free(struct change *c)
{
	int i;

	for (i = 0; i < 4; i++)
		image_jpeg_free(&c->out[i]);
	free(c->ctype);
	free(c->managed_url);
	free(c->error);
	free(c);
}

static void
upload_tag_run(struct store *st, void *arg)
{
	struct change *c = arg;

	if ((c->rc = photo_tag(st, c->app->w.id, c->v.user.account, c->tag)) !=
	    PS_OK)
		str_copy(c->err, ps_errmsg(), sizeof(c->err));
}

static void
upload_page_show(void *arg)
{
	struct change *c = arg;
	struct page_viewer pv = { &c->v.user, c->v.csrf };
	struct buf b;

	buf_init(&b, 1 << 20);
	page_upload(&b, &pv, c->tag, c->managed_url, c->error);
	reply_html(c->r, c->status, &b);
	buf_cleanup(&b);
	change_free(c);
}

/* Answers with the upload page (scripts: plain words); takes `c`. */
static void
upload_page(struct change *c, int status, const char *managed_url,
    const char *error)
{
	if (c->v.basic && c->post) {
		if (error)
			http_reply_error(c->r, status, error);
		else
			http_reply(c->r, status, "text/plain; charset=utf-8",
			    "stored\n", 7);
		change_free(c);
		return;
	}
	c->status = status;
	c->managed_url = managed_url ? xstrdup(managed_url) : NULL;
	c->error = error ? xstrdup(error) : NULL;
	http_req_defer(c->r);
	/* Without its photo's tag the page still works. */
	if (store_pool_read(c->app->srv->store, upload_tag_run,
	    upload_page_show, c) != PS_OK)
		upload_page_show(c);
}

/*
 * On a worker: the photo field found in the form (up to 20 MiB, not
 * scanned on the loop), then rendered from where it lies in the body,
 * which stays put while the request waits.
 */
static void
upload_render(void *arg)
{
	struct change *c = arg;
	const struct store_webapp *w = &c->app->w;
	const int sides[4] = { w->size_s, w->size_m, w->size_l,
	    PORTAL_HR_SIDE };
	struct http_part part;

	c->render_rc = http_multipart_field(c->ctype, c->body, c->body_len,
	    "photo", &part);
	if (c->render_rc == PS_OK && part.len == 0)
		c->render_rc = ps_errf(PS_ENOTFOUND, "no file");
	if (c->render_rc == PS_OK) {
		c->upload_len = part.len;
		c->render_rc = image_render(part.data, part.len,
		    &image_default_limits, sides, 4, c->out, NULL);
	}
	if (c->render_rc != PS_OK)
		str_copy(c->render_err, ps_errmsg(), sizeof(c->render_err));
}

static void
upload_store_run(struct store *st, void *arg)
{
	struct change *c = arg;
	const unsigned char *data[4];
	struct store_sync sy;
	size_t len[4];
	ps_err rc;
	int i;

	for (i = 0; i < 4; i++) {
		data[i] = c->out[i].data;
		len[i] = c->out[i].len;
	}
	/* The photo held is no longer the master's: its ETag goes too. */
	if ((rc = store_begin(st)) == PS_OK) {
		c->begun = true;
		if ((rc = store_thumb_put(st, c->app->w.id, c->v.user.account,
		    "local", c->etag, data, len)) == PS_OK &&
		    (rc = store_sync_get(st, c->app->w.id, c->v.user.account,
		    &sy)) == PS_OK) {
			sy.master_etag[0] = '\0';
			rc = store_sync_put(st, c->app->w.id,
			    c->v.user.account, &sy);
		}
		rc = store_end(st, rc == PS_OK) == PS_OK ? rc : PS_ESTORE;
	}
	if ((c->rc = rc) != PS_OK)
		str_copy(c->err, ps_errmsg(), sizeof(c->err));
}

static void
upload_stored(void *arg)
{
	struct change *c = arg;

	/*
	 * Once a transaction was begun, a failure may still have committed
	 * (a connection lost at COMMIT): the photo kept is then dropped and
	 * read again. A transaction never begun (the store unreachable)
	 * changed nothing: the photo kept is still the one to serve.
	 */
	if (c->rc == PS_OK || c->begun)
		index_photo_forget(c->app->srv->index, c->app->w.id,
		    c->v.user.account);
	if (c->rc != PS_OK) {
		log_err(http_req_id(c->r), "photo.upload_not_stored",
		    "account=%s error=%s", log_q(c->v.user.account),
		    log_q(c->err));
		if (!store_pool_up(c->app->srv->store)) {
			http_reply_header(c->r, "Retry-After",
			    STORE_DOWN_RETRY_S);
			upload_page(c, 503, NULL, "The server cannot reach its "
			    "photo store right now; your photo has not "
			    "changed. Please try again in a moment.");
			return;
		}
		upload_page(c, 500, NULL, "The photo could not be stored; "
		    "your photo has not changed.");
		return;
	}
	log_info(http_req_id(c->r), "photo.uploaded", "account=%s etag=%s "
	    "bytes=%zu", log_q(c->v.user.account), c->etag, c->upload_len);
	if (c->v.basic) {
		upload_page(c, 200, NULL, NULL);
		return;
	}
	http_reply_header(c->r, "Location", "/my?changed=1");
	http_reply(c->r, 303, NULL, NULL, 0);
	change_free(c);
}

static void
upload_rendered(void *arg)
{
	struct change *c = arg;
	unsigned char rnd[16];

	if (c->render_rc == PS_ENOTFOUND || c->render_rc == PS_EINVAL) {
		/* No photo in the form, or not a form at all. */
		upload_page(c, 400, NULL, c->render_rc == PS_EINVAL ?
		    c->render_err : "Choose a photo first.");
		return;
	}
	if (c->render_rc != PS_OK) {
		log_info(http_req_id(c->r), "photo.upload_refused", "account=%s "
		    "reason=%s", log_q(c->v.user.account),
		    log_q(c->render_err));
		upload_page(c, c->render_rc == PS_ELIMIT ? 413 : 422, NULL,
		    c->render_err);
		return;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), c->etag);
	if (store_pool_write(c->app->srv->store, upload_store_run,
	    upload_stored, c) != PS_OK) {
		upload_page(c, 503, NULL, "The server is busy; your photo has "
		    "not changed. Please try again in a moment.");
		return;
	}
}

/* Finds the uploaded file and renders it off the loop; takes `c`. */
static void
upload_start(struct change *c)
{
	const char *ctype = http_req_header(c->r, "Content-Type");

	c->body = http_req_body(c->r, &c->body_len);
	c->ctype = xstrdup(ctype ? ctype : "");
	http_req_defer(c->r);
	if (work_try_submit(c->app->srv->pool, upload_render, upload_rendered,
	    c) != PS_OK) {
		log_warn(http_req_id(c->r), "serve.busy", "what=%s reason=%s",
		    "image work", log_q(ps_errmsg()));
		http_reply_header(c->r, "Retry-After", "2");
		upload_page(c, 503, NULL, "The server is busy with other "
		    "photos; your photo has not changed. Please try again in "
		    "a moment.");
	}
}

static void
change_discovered(void *arg, int has_mailbox, const char *ecp_url,
    const char *reason)
{
	struct change *c = arg;
	char *back, *enc, *loc, msg[600];

	if (has_mailbox == 1 && c->post) {
		log_info(http_req_id(c->r), "photo.upload_refused", "account=%s "
		    "reason=%s", log_q(c->v.user.account),
		    log_q("managed by the mail server"));
		upload_page(c, 409, ecp_url, "Your photo is managed by the "
		    "mail server; change it there.");
	} else if (has_mailbox == 1) {
		/* Off to the mail server's page, with the way back. */
		back = xasprintf("%s/my/photochanged", c->app->base_url);
		enc = http_encode(back);
		loc = xasprintf("%s%sreturnUrl=%s", ecp_url,
		    strchr(ecp_url, '?') ? "&" : "?", enc);
		log_info(http_req_id(c->r), "photo.change_redirect",
		    "account=%s to=%s", log_q(c->v.user.account),
		    log_q(ecp_url));
		http_reply_header(c->r, "Location", loc);
		http_reply_header(c->r, "Cache-Control", "no-store");
		http_reply(c->r, 302, NULL, NULL, 0);
		free(back);
		free(enc);
		free(loc);
		change_free(c);
	} else if (has_mailbox == 0) {
		if (c->post)
			upload_start(c);
		else
			upload_page(c, 200, NULL, NULL);
	} else {
		snprintf(msg, sizeof(msg), "The mail server could not be "
		    "asked where your photo is managed (%s). Try again later.",
		    reason ? reason : "no answer");
		http_reply_header(c->r, "Retry-After", DISCOVER_RETRY_S);
		upload_page(c, 503, NULL, msg);
	}
}

void
profile_changephoto(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	struct change *c = change_new(app, r, v);

	if (c->post && !c->v.basic) {
		struct http_part part;
		const char *body;
		size_t len;

		/* A browser's form must carry the session's CSRF token. */
		body = http_req_body(r, &len);
		if (http_multipart_head_field(http_req_header(r,
		    "Content-Type"), body, len, "csrf", &part) != PS_OK ||
		    part.len != strlen(v->csrf) || part.len == 0 ||
		    !str_ct_eq(part.data, v->csrf, part.len)) {
			upload_page(c, 400, NULL, "The form expired. Please "
			    "choose the photo again.");
			return;
		}
	}
	if (!app->w.photo_import) {
		/* The local library is authoritative. */
		if (c->post)
			upload_start(c);
		else
			upload_page(c, 200, NULL, NULL);
		return;
	}
	http_req_defer(r);
	sync_discover(app, &c->v.user, http_req_id(r), change_discovered, c);
}

/* Back from the mail server's page: fetch the new photo at once. */
static void
back_synced(void *arg, const struct sync_outcome *o)
{
	struct http_req *r = arg;

	(void)o;
	http_reply_header(r, "Location", "/my?changed=1");
	http_reply_header(r, "Cache-Control", "no-store");
	http_reply(r, 303, NULL, NULL, 0);
}

void
profile_photochanged(struct webapp_ctx *app, struct http_req *r,
    const struct viewer *v)
{
	static const char refused[] = "refused: another site's page asked "
	    "for this\n";
	const char *mode = http_req_header(r, "Sec-Fetch-Mode");
	const char *site = http_req_header(r, "Sec-Fetch-Site");

	/*
	 * The way back from the master is a navigation. An image or a
	 * script of another site's page asking for it would make the
	 * user's browser force syncs at will: refused, no sync.
	 */
	if (mode != NULL && strcasecmp(mode, "navigate") != 0 &&
	    (site == NULL || strcasecmp(site, "same-origin") != 0)) {
		log_info(http_req_id(r), "auth.csrf_refused", "method=GET "
		    "user=%s path=%s origin=%s reason=%s",
		    log_q(v->user.account), log_q(http_req_path(r)),
		    log_q(http_req_header(r, "Origin")),
		    log_q("not a navigation from another site"));
		http_reply(r, 403, "text/plain", refused, sizeof(refused) - 1);
		return;
	}
	http_req_defer(r);
	log_info(http_req_id(r), "photo.changed_at_master", "account=%s",
	    log_q(v->user.account));
	if (sync_request(app, &v->user, http_req_id(r), SYNC_FORCE |
	    SYNC_DEADLINE, back_synced, r) != SYNC_STARTED)
		back_synced(r, NULL);
}
