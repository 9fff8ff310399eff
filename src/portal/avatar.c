/*
 * /avatar/<hash>: the organisation's photos under the Libravatar and
 * Gravatar URL scheme, so that applications that take a Gravatar or
 * Libravatar base URL (GitLab, Redmine, Discourse, ...) show them.
 *
 *   GET /avatar/<32 or 64 hex digits>[.jpg|.jpeg|.png]
 *	?s=|size=1..512 (default 80) &d=|default=404|mp|mm|identicon|URL
 *	&f=|forcedefault=y
 *
 * The hash is the MD5 or SHA-256 of the trimmed, lower-cased address
 * (store_user_get_by_hash). A user with a photo gets it rendered from the
 * stored high-resolution source (STORE_HR, else the L thumbnail) at the
 * size asked for, never larger than the source, as a square JPEG whatever
 * the extension says. Anyone else gets the default the client asked for:
 * 404, the placeholder silhouette, a generated identicon, or a redirect to
 * a URL that starts with one of the web application's allowed prefixes
 * (any other URL is refused: no open redirect).
 *
 * Who may fetch avatars is the web application's `avatar_anyone`
 * setting; serve.c checks it (and signs the request in when needed)
 * before calling avatar_handle(). Avatars never trigger a sync: they show
 * what the portal holds.
 *
 * Renders run on the worker pool. Their results are kept in a small LRU
 * cache on the loop thread (lru.h), at most AVATAR_CACHE_BYTES (8 MiB),
 * keyed by what determines the bytes: the photo's
 * ETag (which changes whenever the photo does) and the size, or the
 * default's kind, the hash and the size. A changed photo therefore gets a
 * new key, and the old renders age out. At most AVATAR_MAX_RENDERS renders
 * are in flight; beyond that the answer is 503 with Retry-After.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/url.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "image/image.h"
#include "index.h"
#include "common/lru.h"
#include "metrics/metrics.h"
#include "portal_int.h"
#include "work/work.h"

#define AVATAR_PREFIX		"/avatar/"
#define AVATAR_DEFAULT_SIZE	80
#define AVATAR_MAX_SIZE		512
#define AVATAR_PHOTO_MAX_AGE	300	/* seconds, as Gravatar */
#define AVATAR_DEFAULT_MAX_AGE	60	/* a photo may arrive soon */
#define AVATAR_CACHE_BYTES	(8u << 20)
#define AVATAR_MAX_RENDERS	32
#define AVATAR_URL_MAX		2048

enum avatar_kind { AV_PHOTO, AV_PLACEHOLDER, AV_IDENTICON };

static const char *const kind_names[] = { "photo", "placeholder",
    "identicon" };

/* One avatar request, from parsing to the answer (possibly deferred). */
struct avatar_req {
	struct webapp_ctx	*app;
	struct http_req		*r;
	bool			 anyone;	/* the access setting, now */
	char			 hex[65];	/* lower case */
	unsigned char		 digest[32];
	size_t			 digest_len;
	int			 size;
	bool			 force;		/* f=y: the default always */
	char			*dflt;		/* d= as sent, or NULL */
	char			 account[256];	/* "": no user has the hash */
	char			 viewer[256];	/* signed in; "": anonymous */
	/* what is answered, and the render on the worker pool */
	enum avatar_kind	 kind;
	char			 key[160];	/* in the cache */
	char			 tag[160];	/* the ETag, unquoted */
	struct cached_photo	*src;		/* the photo rendered from */
	bool			 src_hr;	/* STORE_HR, else STORE_L */
	struct image_jpeg	 out;
	ps_err			 rc;
	char			 err[256];
	int64_t			 ms;
};

/* ---- the cache of rendered avatars (loop thread only) ---- */

/* Keyed by what determines the bytes; values are struct cached_photo. */
static struct lru *cache;
static int renders_inflight;

static void
cache_gauges(void)
{
	metrics_set("photosync_avatar_cache_bytes", NULL,
	    (double)lru_bytes(cache));
	metrics_set("photosync_avatar_cache_entries", NULL,
	    (double)lru_count(cache));
}

/* The cached bytes of `key`, now the most recently used; or NULL. */
static const struct cached_photo *
cache_get(const char *key)
{
	return cache ? lru_get(cache, key) : NULL;
}

/* Keeps a copy of `data` under `key`, evicting what no longer fits. */
static void
cache_put(const char *key, const unsigned char *data, size_t len)
{
	struct cached_photo *e;

	if (len > AVATAR_CACHE_BYTES / 8)
		return;
	if (cache == NULL)
		cache = lru_new(AVATAR_CACHE_BYTES, cached_photo_unref);
	e = xcalloc(1, sizeof(*e));
	e->refs = 1;
	e->data = xmalloc(len);
	memcpy(e->data, data, len);
	e->len = len;
	lru_put(cache, key, e, len);
	cache_gauges();
}

void
avatar_shutdown(void)
{
	lru_free(cache);
	cache = NULL;
}

/* ---- parsing the request ---- */

int
avatar_hash_parse(const char *h, char hex[65], unsigned char digest[32],
    size_t *digest_len)
{
	const char *ext;
	size_t n = strspn(h, "0123456789abcdef"), i;

	ext = h + n;
	if (*ext != '\0' && strcmp(ext, ".jpg") != 0 &&
	    strcmp(ext, ".jpeg") != 0 && strcmp(ext, ".png") != 0)
		return 400;
	if (n != 32 && n != 64)
		return n == 0 ? 400 : 404;
	memcpy(hex, h, n);
	hex[n] = '\0';
	*digest_len = n / 2;
	for (i = 0; i < *digest_len; i++)
		digest[i] = (unsigned char)(hex_digit(h[2 * i]) << 4 |
		    hex_digit(h[2 * i + 1]));
	return 0;
}

int
avatar_size_parse(const char *size, const char *s)
{
	const char *v = size;
	long n = 0;

	if (v == NULL || v[0] == '\0')
		v = s;
	if (v == NULL || v[0] == '\0' || strspn(v, "0123456789") !=
	    strlen(v))
		return AVATAR_DEFAULT_SIZE;
	for (; *v; v++) {
		n = n * 10 + (*v - '0');
		if (n > AVATAR_MAX_SIZE)
			return AVATAR_MAX_SIZE;
	}
	return n >= 1 ? (int)n : AVATAR_DEFAULT_SIZE;
}

static bool
query_yes(struct http_req *r, const char *name)
{
	const char *v = http_req_query(r, name);

	return v && (strcmp(v, "y") == 0 || strcmp(v, "Y") == 0);
}

/* ---- default URLs and the allow-list ---- */

/*
 * Whether `s` may name a redirect target: an https URL as common/url.h
 * parses it, at most AVATAR_URL_MAX bytes, without a "." or ".." path
 * segment, encoded or not, by which a browser would leave an allowed
 * path.
 */
static bool
default_url_parse(const char *s, struct url *u)
{
	return strlen(s) <= AVATAR_URL_MAX && url_parse(s, 0, u) == PS_OK &&
	    !url_path_has_dot_segment(u->rest);
}

bool
avatar_default_allowed(const char *url, const char *allow, const char **why)
{
	struct url u, pre;
	char *copy, *tok, *save = NULL;
	bool ok = false;

	if (!default_url_parse(url, &u)) {
		*why = "not a plain https URL";
		return false;
	}
	*why = "not under an allowed prefix (webapp set "
	    "--avatar-default-allow)";
	copy = xstrdup(allow);
	for (tok = strtok_r(copy, ", ", &save); tok && !ok;
	    tok = strtok_r(NULL, ", ", &save))
		if (default_url_parse(tok, &pre) &&
		    strcmp(u.host, pre.host) == 0 &&
		    u.port == pre.port &&
		    strncmp(u.rest, pre.rest, strlen(pre.rest)) == 0)
			ok = true;
	free(copy);
	if (ok)
		*why = NULL;
	return ok;
}

/* ---- answers ---- */

static void
served(struct avatar_req *ar, const char *kind)
{
	char labels[48];

	snprintf(labels, sizeof(labels), "kind=\"%s\"", kind);
	metrics_add("photosync_avatars_served_total", labels, 1);
	http_req_note(ar->r, "avatar", kind);
}

static void
avatar_req_free(struct avatar_req *ar)
{
	image_jpeg_free(&ar->out);
	cached_photo_unref(ar->src);
	free(ar->dflt);
	free(ar);
}

/* ETag and Cache-Control of an image answer. */
static void
cache_headers(struct avatar_req *ar)
{
	char quoted[200], cc[64];

	snprintf(quoted, sizeof(quoted), "\"%s\"", ar->tag);
	snprintf(cc, sizeof(cc), "%s, max-age=%d", ar->anyone ? "public" :
	    "private", ar->kind == AV_PHOTO ? AVATAR_PHOTO_MAX_AGE :
	    AVATAR_DEFAULT_MAX_AGE);
	http_reply_header(ar->r, "ETag", quoted);
	http_reply_header(ar->r, "Cache-Control", cc);
	if (ar->anyone)
		http_reply_header(ar->r, "Access-Control-Allow-Origin", "*");
}

/* Answers 304 when the client holds ar->tag already. */
static bool
not_modified(struct avatar_req *ar)
{
	if (!http_etag_match(http_req_header(ar->r, "If-None-Match"),
	    ar->tag))
		return false;
	cache_headers(ar);
	served(ar, "revalidated");
	http_reply(ar->r, 304, NULL, NULL, 0);
	return true;
}

static void
reply_image(struct avatar_req *ar, const unsigned char *data, size_t len,
    const char *kind)
{
	cache_headers(ar);
	served(ar, kind);
	http_reply(ar->r, 200, "image/jpeg", data, len);
}

static void
reply_404(struct avatar_req *ar)
{
	char cc[64];

	snprintf(cc, sizeof(cc), "%s, max-age=%d", ar->anyone ? "public" :
	    "private", AVATAR_DEFAULT_MAX_AGE);
	http_reply_header(ar->r, "Cache-Control", cc);
	served(ar, "404");
	http_reply_error(ar->r, 404, "no avatar for this hash");
}

static void avatar_default(struct avatar_req *);

static void
render_run(void *arg)
{
	struct avatar_req *ar = arg;
	int64_t t0 = time_mono_ms();

	switch (ar->kind) {
	case AV_PHOTO:
		/* The index's shared bytes: read only, held by ar->src. */
		ar->rc = image_render(ar->src->data, ar->src->len,
		    &image_default_limits, &ar->size, 1, &ar->out, NULL);
		break;
	case AV_PLACEHOLDER:
		ar->rc = image_placeholder(ar->size, &ar->out);
		break;
	case AV_IDENTICON:
		ar->rc = image_identicon(ar->digest, ar->digest_len, ar->size,
		    &ar->out);
		break;
	}
	if (ar->rc != PS_OK)
		str_copy(ar->err, ps_errmsg(), sizeof(ar->err));
	ar->ms = time_mono_ms() - t0;
}

static void
render_done(void *arg)
{
	struct avatar_req *ar = arg;
	const char *id = http_req_id(ar->r);

	renders_inflight--;
	if (ar->rc != PS_OK) {
		log_warn(id, "avatar.render_failed", "kind=%s account=%s "
		    "size=%d reason=%s", kind_names[ar->kind],
		    log_q(ar->account), ar->size, log_q(ar->err));
		if (ar->kind == AV_PHOTO) {
			/* A photo that does not render: as if none. */
			cached_photo_unref(ar->src);
			ar->src = NULL;
			avatar_default(ar);
			return;
		}
		http_reply_error(ar->r, 500, "the avatar could not be drawn");
		avatar_req_free(ar);
		return;
	}
	if (ar->kind == AV_PHOTO)
		log_info(id, "avatar.rendered", "kind=photo account=%s size=%d "
		    "side=%d source=%s bytes=%zu ms=%lld", log_q(ar->account),
		    ar->size, ar->out.side, ar->src_hr ? "hr" : "l",
		    ar->out.len, (long long)ar->ms);
	else
		log_info(id, "avatar.rendered", "kind=%s size=%d side=%d "
		    "bytes=%zu ms=%lld", kind_names[ar->kind], ar->size,
		    ar->out.side, ar->out.len, (long long)ar->ms);
	cache_put(ar->key, ar->out.data, ar->out.len);
	reply_image(ar, ar->out.data, ar->out.len, kind_names[ar->kind]);
	avatar_req_free(ar);
}

/*
 * Answers a request whose ar->kind, ar->key and ar->tag are set, when it
 * can be answered without a render: 304, or the bytes from the cache.
 * Then `ar` is freed and true returned.
 */
static bool
answered(struct avatar_req *ar)
{
	const struct cached_photo *e;

	if (not_modified(ar)) {
		avatar_req_free(ar);
		return true;
	}
	if ((e = cache_get(ar->key)) != NULL) {
		reply_image(ar, e->data, e->len, ar->kind == AV_PHOTO ?
		    "cached" : kind_names[ar->kind]);
		avatar_req_free(ar);
		return true;
	}
	return false;
}

/* Renders ar->kind on the worker pool; the request waits. */
static void
render_start(struct avatar_req *ar)
{
	if (renders_inflight >= AVATAR_MAX_RENDERS) {
		http_reply_header(ar->r, "Retry-After", "1");
		http_reply_error(ar->r, 503, "too many avatars are being "
		    "drawn; try again in a second");
		avatar_req_free(ar);
		return;
	}
	http_req_defer(ar->r);
	if (work_try_submit(ar->app->srv->pool, render_run, render_done,
	    ar) != PS_OK) {
		reply_busy(ar->r, "image work");
		avatar_req_free(ar);
		return;
	}
	renders_inflight++;
}

static void
default_redirect(struct avatar_req *ar)
{
	const char *why = NULL;
	char cc[64];

	if (!avatar_default_allowed(ar->dflt, ar->app->w.avatar_defaults,
	    &why)) {
		log_info(http_req_id(ar->r), "avatar.default_refused",
		    "url=%s reason=%s", log_q(ar->dflt), log_q(why));
		reply_404(ar);
		avatar_req_free(ar);
		return;
	}
	snprintf(cc, sizeof(cc), "%s, max-age=%d", ar->anyone ? "public" :
	    "private", AVATAR_DEFAULT_MAX_AGE);
	http_reply_header(ar->r, "Location", ar->dflt);
	http_reply_header(ar->r, "Cache-Control", cc);
	served(ar, "redirect");
	http_reply(ar->r, 302, NULL, NULL, 0);
	avatar_req_free(ar);
}

/*
 * No photo (or f=y): what d= asks for. The other Libravatar and Gravatar
 * built-ins (monsterid, wavatar, retro, robohash, blank, ...) get the
 * placeholder, as no d= does; anything with ':' or '/' is a URL.
 */
static void
avatar_default(struct avatar_req *ar)
{
	const char *d = ar->dflt;

	if (d && strcmp(d, "404") == 0) {
		reply_404(ar);
		avatar_req_free(ar);
		return;
	}
	if (d && strpbrk(d, ":/")) {
		default_redirect(ar);
		return;
	}
	if (d && strcmp(d, "identicon") == 0) {
		ar->kind = AV_IDENTICON;
		snprintf(ar->key, sizeof(ar->key), "i/%s/%d", ar->hex,
		    ar->size);
		snprintf(ar->tag, sizeof(ar->tag), "identicon-%d", ar->size);
	} else {
		ar->kind = AV_PLACEHOLDER;
		snprintf(ar->key, sizeof(ar->key), "mp/%d", ar->size);
		snprintf(ar->tag, sizeof(ar->tag), "placeholder-%d", ar->size);
	}
	if (!answered(ar))
		render_start(ar);
}

/* The photo's ETag and the size make the cache key and the ETag. */
static void
photo_keys(struct avatar_req *ar, const char *etag)
{
	ar->kind = AV_PHOTO;
	snprintf(ar->tag, sizeof(ar->tag), "%s-%d", etag, ar->size);
	snprintf(ar->key, sizeof(ar->key), "p/%s/%d", etag, ar->size);
}

/*
 * The user's photo at ar->size: revalidated, from the cache, or rendered
 * from the best stored source (the high-resolution one, else L), read
 * through the index. Falls back to the default when there is none.
 */
static void
avatar_source(void *arg, ps_err rc, struct cached_photo *ph)
{
	struct avatar_req *ar = arg;

	if (rc != PS_OK) {
		reply_unread(ar->app->srv, ar->r, rc);
		avatar_req_free(ar);
		return;
	}
	if (ph->data == NULL && ar->src_hr) {
		/* Photos stored before the high-resolution one was kept. */
		cached_photo_unref(ph);
		ar->src_hr = false;
		index_photo(ar->app->srv->index, ar->app->w.id, ar->account,
		    STORE_L, avatar_source, ar);
		return;
	}
	if (ph->data == NULL || (ph->hidden && strcmp(ar->viewer,
	    ar->account) != 0)) {
		/* None, or hidden from this viewer: the default. */
		cached_photo_unref(ph);
		avatar_default(ar);
		return;
	}
	http_req_note(ar->r, "account", ar->account);
	photo_keys(ar, ph->etag);
	if (answered(ar)) {
		cached_photo_unref(ph);
		return;
	}
	ar->src = ph;
	render_start(ar);
}

static void
avatar_user(void *arg, ps_err rc, const struct store_user *u)
{
	struct avatar_req *ar = arg;

	if (rc == PS_EBUSY || rc == PS_ESTORE) {
		reply_unread(ar->app->srv, ar->r, rc);
		avatar_req_free(ar);
		return;
	}
	if (rc != PS_OK || ar->force) {
		avatar_default(ar);
		return;
	}
	str_copy(ar->account, u->account, sizeof(ar->account));
	ar->src_hr = true;
	index_photo(ar->app->srv->index, ar->app->w.id, ar->account,
	    STORE_HR, avatar_source, ar);
}

static void
declare_metrics(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	metrics_declare("photosync_avatars_served_total", "counter",
	    "Avatar answers by kind: photo (rendered), cached, placeholder, "
	    "identicon, redirect, 404, revalidated (304).");
	metrics_declare("photosync_avatar_cache_bytes", "gauge",
	    "Bytes held by the cache of rendered avatars.");
	metrics_declare("photosync_avatar_cache_entries", "gauge",
	    "Rendered avatars in the cache.");
}

void
avatar_handle(struct webapp_ctx *app, struct http_req *r, const char *viewer)
{
	struct avatar_req *ar;
	const char *d;
	char sz[8];
	int bad;

	declare_metrics();
	if (http_req_method(r) != HTTP_GET && http_req_method(r) !=
	    HTTP_HEAD) {
		http_reply_header(r, "Allow", "GET, HEAD");
		http_reply_error(r, 405, "avatars are fetched with GET");
		return;
	}
	ar = xcalloc(1, sizeof(*ar));
	ar->app = app;
	ar->r = r;
	ar->anyone = app->w.avatar_anyone;
	str_copy(ar->viewer, viewer ? viewer : "", sizeof(ar->viewer));
	if ((bad = avatar_hash_parse(http_req_path(r) + strlen(AVATAR_PREFIX),
	    ar->hex, ar->digest, &ar->digest_len)) != 0) {
		http_reply_error(r, bad, "an avatar URL is /avatar/<the MD5 "
		    "or SHA-256 of the address, in hex>");
		avatar_req_free(ar);
		return;
	}
	ar->size = avatar_size_parse(http_req_query(r, "size"),
	    http_req_query(r, "s"));
	ar->force = query_yes(r, "f") || query_yes(r, "forcedefault");
	if ((d = http_req_query(r, "d")) != NULL ||
	    (d = http_req_query(r, "default")) != NULL)
		ar->dflt = xstrdup(d);
	snprintf(sz, sizeof(sz), "%d", ar->size);
	http_req_note(r, "size", sz);
	http_req_defer(r);
	index_user(app->srv->index, INDEX_BY_HASH, ar->hex, avatar_user, ar);
}
