/*
 * The Microsoft Graph profile photo API (v1.0) on the master, so that
 * software written for Microsoft 365 reads and sets the photos here:
 *
 *   GET|HEAD  /v1.0/{me|users/{id|address}}/photo		metadata
 *   GET|HEAD  .../photo/$value				the largest
 *   GET|HEAD  .../photos				every size stored
 *   GET|HEAD  .../photos/{48x48..648x648}[/$value]
 *   PUT|PATCH .../photo/$value	(the owner; an image of at most 4 MB)
 *   DELETE    .../photo[/$value]	(the owner)
 *
 * Signed in as every other route of the server (serve.c: Basic,
 * Negotiate, a partner's S2S token, the single sign-on proxy), with the
 * same 401 challenges. Photos are read from the server's photo index
 * (a miss on the read lane) with their ETag and If-None-Match as the
 * other photo routes; metadata and lookups by id read the mailbox on the
 * read lane; a change goes through change.c (the page's render workers,
 * limits and store write). Errors carry Graph's JSON error body.
 *
 * A user's `id`: Graph's ids are GUIDs that never change while the user
 * exists. The store keeps no GUID for a mailbox, so the id is derived:
 * SHA-256 of the deployment's realm and the lower-case address, shaped
 * as a UUID (version 8, RFC 9562). It is stable for as long as the
 * address is, needs nothing stored, and differs between deployments. A
 * lookup by id is answered from the server's index of ids (address by
 * id, sorted), made by one pass over the mailboxes on the read lane and
 * kept until the feed reports a mailbox change; an unknown id is then a
 * 404 without a store read.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "http/server.h"
#include "master_int.h"
#include "pki/pki.h"
#include "store/pool.h"

#define JSON_TYPE	"application/json; charset=utf-8"
#define GRAPH_PREFIX	"/v1.0/"
#define ID_LEN		36

/* The index of ids: every mailbox's, sorted by id. */
struct graph_id {
	char	 id[ID_LEN + 1];
	char	*email;
};

struct graph_ids {
	struct graph_id	*v;
	size_t		 n;
	uint64_t	 generation;	/* master_srv's, when it was read */
};

/* One Graph request on its way (the call's ext). */
struct graph_call {
	struct master_call	*c;
	struct http_req		*r;
	struct master_srv	*s;
	enum graph_what		 what;
	bool			 value;		/* .../$value */
	int			 code;		/* G_SIZE: the size's index */
	bool			 me;
	char			 who[256];	/* as in the path (users/{x}) */
	char			 email[256];	/* the mailbox's address */
	char			 id[ID_LEN + 1];
	/* read on the read lane */
	ps_err			 rc;
	char			 err[256];
	bool			 found;
	struct store_mailbox	 mb;
	struct graph_ids	*scan;		/* read by a lookup by id */
	uint64_t		 scan_generation;
	void			(*then)(struct graph_call *);
	/* a change */
	struct master_change	 change;
};

void
graph_ids_free(struct graph_ids *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	for (i = 0; i < ix->n; i++)
		free(ix->v[i].email);
	free(ix->v);
	free(ix);
}

static void
graph_call_free(void *arg)
{
	struct graph_call *g = arg;

	graph_ids_free(g->scan);
	store_mailbox_cleanup(&g->mb);
	master_change_cleanup(&g->change);
	free(g);
}

/* ---- answers ---- */

/*
 * Graph's error body: {"error":{"code","message","innerError":{"date",
 * "request-id","client-request-id"}}}.
 */
void
graph_reply_error(struct http_req *r, int status, const char *code,
    const char *message)
{
	const char *client = http_req_header(r, "client-request-id");
	char date[32];
	time_t now = (time_t)time_now();
	struct tm tm;
	json_t *doc;
	char *s;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	doc = json_pack("{s:{s:s, s:s, s:{s:s, s:s, s:s}}}", "error",
	    "code", code, "message", message, "innerError", "date", date,
	    "request-id", http_req_id(r), "client-request-id",
	    client ? client : http_req_id(r));
	s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	http_req_note(r, "error", code);
	if (s == NULL) {
		http_reply_error(r, status, message);
		return;
	}
	http_reply(r, status, JSON_TYPE, s, strlen(s));
	free(s);
}

/*
 * The server's error_body hook: under /v1.0/, the errors the HTTP layer
 * and the sign-in answer themselves (a body grown past its limit, too
 * many failed sign-ins, busy) in Graph's shape, with the codes Graph
 * documents for their statuses.
 */
bool
graph_error_body(struct http_req *r, int status, const char *message,
    void *arg)
{
	const char *path = http_req_path(r), *code;

	(void)arg;
	if (path == NULL || strncasecmp(path, GRAPH_PREFIX,
	    strlen(GRAPH_PREFIX)) != 0)
		return false;
	switch (status) {
	case 400: code = "BadRequest"; break;
	case 401: code = "InvalidAuthenticationToken"; break;
	case 403: code = "accessDenied"; break;
	case 404: code = "itemNotFound"; break;
	case 405: code = "BadRequest"; break;
	case 413: code = "RequestEntityTooLarge"; break;
	case 429: code = "activityLimitReached"; break;
	case 503: code = "serviceNotAvailable"; break;
	default: code = "generalException"; break;
	}
	graph_reply_error(r, status, code, message);
	return true;
}

static void
graph_error(struct graph_call *g, int status, const char *code,
    const char *message)
{
	graph_reply_error(g->r, status, code, message);
	master_call_end(g->c);
}

static void
graph_not_found_user(struct graph_call *g)
{
	char *msg = xasprintf("Resource '%s' does not exist or one of its "
	    "queried reference-property objects are not present.", g->who);

	graph_error(g, 404, "Request_ResourceNotFound", msg);
	free(msg);
}

static void
graph_no_image(struct graph_call *g)
{
	http_reply_header(g->r, "Cache-Control", "private, max-age=60");
	graph_error(g, 404, "ImageNotFound", "The photo wasn't found.");
}

/* The store failed, or cannot be reached (503 with Retry-After). */
static void
graph_store_failed(struct graph_call *g)
{
	if (store_pool_up(g->s->pool)) {
		graph_error(g, 500, "generalException", "The store failed.");
		return;
	}
	http_reply_header(g->r, "Retry-After", STORE_DOWN_RETRY_S);
	graph_error(g, 503, "serviceNotAvailable", "The store cannot be "
	    "reached: try again in a moment.");
}

static void
reply_json(struct graph_call *g, json_t *doc)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (s == NULL) {
		graph_error(g, 500, "generalException", "The answer could not "
		    "be written.");
		return;
	}
	http_reply_header(g->r, "Cache-Control", "private, no-cache");
	http_reply(g->r, 200, JSON_TYPE, s, strlen(s));
	free(s);
	master_call_end(g->c);
}

/* ---- users ---- */

static void
graph_user_id(const char *realm, const char *email, char out[ID_LEN + 1])
{
	unsigned char h[32];
	char hex[65];
	char *in = xasprintf("photosync graph user\n%s\n%s", realm, email);

	pki_sha256(in, strlen(in), h);
	free(in);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);	/* version 8 */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);	/* RFC 9562 */
	hex_encode(h, 16, hex);
	snprintf(out, ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
	    hex + 12, hex + 16, hex + 20);
}

struct id_search {
	struct graph_call	*g;
	const char		*realm;
	size_t			 cap;
};

/* Each mailbox's id into the new index; the one asked for is kept. */
static ps_err
id_collect(void *arg, const struct store_mailbox *m)
{
	struct id_search *is = arg;
	struct graph_ids *ix = is->g->scan;
	struct graph_id *e;

	if (ix->n == is->cap) {
		is->cap = is->cap ? 2 * is->cap : 256;
		ix->v = xrealloc(ix->v, is->cap * sizeof(*ix->v));
	}
	e = &ix->v[ix->n++];
	graph_user_id(is->realm, m->email, e->id);
	e->email = xstrdup(m->email);
	if (strcmp(e->id, is->g->who) == 0) {
		store_mailbox_cleanup(&is->g->mb);
		is->g->mb = *m;
		is->g->mb.pwhash = NULL;	/* m's, freed after */
		is->g->found = true;
	}
	return PS_OK;
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(((const struct graph_id *)a)->id,
	    ((const struct graph_id *)b)->id);
}

/* On the read lane: the mailbox of the address, or of the id. */
static void
user_read_run(struct store *st, void *arg)
{
	struct graph_call *g = arg;
	struct id_search is = { g, g->s->ms->realm, 0 };
	ps_err rc;

	if (g->email[0]) {
		rc = store_mailbox_get(st, g->email, &g->mb);
		g->found = rc == PS_OK;
	} else {
		g->scan = xcalloc(1, sizeof(*g->scan));
		rc = store_mailbox_each(st, id_collect, &is);
		if (rc == PS_OK) {
			qsort(g->scan->v, g->scan->n, sizeof(*g->scan->v),
			    id_cmp);
			rc = g->found ? PS_OK : PS_ENOTFOUND;
		}
	}
	g->rc = rc;
	if (rc != PS_OK && rc != PS_ENOTFOUND)
		str_copy(g->err, ps_errmsg(), sizeof(g->err));
}

/*
 * On the loop: the address of id g->who from the index, when the index
 * is current. True when it answered: found (g->email set) or not.
 */
static bool
id_lookup(struct graph_call *g, bool *found)
{
	struct graph_ids *ix = g->s->graph_ids;
	struct graph_id key, *e;

	if (ix == NULL || ix->generation != g->s->mailbox_generation)
		return false;
	str_copy(key.id, g->who, sizeof(key.id));
	e = bsearch(&key, ix->v, ix->n, sizeof(*ix->v), id_cmp);
	*found = e != NULL;
	if (e)
		str_copy(g->email, e->email, sizeof(g->email));
	return true;
}

static void
user_read_done(void *arg)
{
	struct graph_call *g = arg;

	/* A pass over the mailboxes no change came after: the index. */
	if (g->scan && (g->rc == PS_OK || g->rc == PS_ENOTFOUND) &&
	    g->scan_generation == g->s->mailbox_generation) {
		g->scan->generation = g->scan_generation;
		graph_ids_free(g->s->graph_ids);
		g->s->graph_ids = g->scan;
		g->scan = NULL;
	}
	if (master_call_gone(g->c))
		return;
	if (g->rc != PS_OK && g->rc != PS_ENOTFOUND) {
		log_warn(http_req_id(g->r), "serve.store_failed", "what=%s "
		    "error=%s", "mailbox", log_q(g->err));
		graph_store_failed(g);
		return;
	}
	if (!g->found) {
		graph_not_found_user(g);
		return;
	}
	str_copy(g->email, g->mb.email, sizeof(g->email));
	http_req_note(g->r, "email", g->email);
	g->then(g);
}

/* The mailbox read on the read lane, then g->then(g) (404 if absent). */
static void
user_read(struct graph_call *g, void (*then)(struct graph_call *))
{
	g->then = then;
	store_mailbox_cleanup(&g->mb);
	memset(&g->mb, 0, sizeof(g->mb));
	g->found = false;
	g->scan_generation = g->s->mailbox_generation;
	if (store_pool_read(g->s->pool, user_read_run, user_read_done, g) !=
	    PS_OK)
		master_call_busy(g->c);
}

/* ---- reading ---- */

/* Whether size `code` is stored for a photo whose largest side is `side`. */
static bool
size_stored(int code, int side)
{
	/* Each size down to the first the source was too small for. */
	return code == 0 || side >= ews_sizes[code - 1];
}

/* The largest size stored for a photo whose largest side is `side`. */
static int
size_largest(int side)
{
	int i;

	for (i = EWS_SIZE_COUNT - 1; i > 0; i--)
		if (size_stored(i, side))
			return i;
	return 0;
}

/* Graph's id of a size: "240X240". */
static void
size_id(int code, char out[16])
{
	snprintf(out, 16, "%dX%d", ews_sizes[code], ews_sizes[code]);
}

static json_t *
photo_entity(struct graph_call *g, int code, bool context)
{
	int side = g->mb.photo_side < ews_sizes[code] ? g->mb.photo_side :
	    ews_sizes[code];
	char id[16], tag[80];
	json_t *o = json_object();

	size_id(code, id);
	snprintf(tag, sizeof(tag), "\"%s\"", g->mb.etag);
	if (context) {
		char *ctx = xasprintf("%s/v1.0/$metadata#users('%s')/%s/"
		    "$entity", g->s->base_url, g->id, g->what == G_PHOTO ?
		    "photo" : "photos");

		json_object_set_new(o, "@odata.context", json_string(ctx));
		free(ctx);
	}
	json_object_set_new(o, "@odata.mediaContentType",
	    json_string("image/jpeg"));
	json_object_set_new(o, "@odata.mediaEtag", json_string(tag));
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "width", json_integer(side));
	json_object_set_new(o, "height", json_integer(side));
	return o;
}

/* On the loop, with the mailbox read: the metadata document. */
static void
metadata_answer(struct graph_call *g)
{
	json_t *doc, *list;
	char *ctx;
	int i, top;

	graph_user_id(g->s->ms->realm, g->email, g->id);
	if (g->mb.etag[0] == '\0' || master_photo_hidden_from(
	    g->mb.photo_hidden, master_call_user(g->c), g->email)) {
		graph_no_image(g);
		return;
	}
	top = size_largest(g->mb.photo_side);
	switch (g->what) {
	case G_PHOTO:
		reply_json(g, photo_entity(g, top, true));
		return;
	case G_SIZE:
		if (g->code > top) {
			graph_no_image(g);
			return;
		}
		reply_json(g, photo_entity(g, g->code, true));
		return;
	case G_PHOTOS:
		break;
	}
	list = json_array();
	for (i = 0; i <= top; i++)
		json_array_append_new(list, photo_entity(g, i, false));
	ctx = xasprintf("%s/v1.0/$metadata#users('%s')/photos",
	    g->s->base_url, g->id);
	doc = json_pack("{s:s, s:o}", "@odata.context", ctx, "value", list);
	free(ctx);
	reply_json(g, doc);
}

/* After a photo was not found: no such user, or no photo. */
static void
value_none(struct graph_call *g)
{
	graph_no_image(g);
}

static void
value_answer(struct master_call *c, struct master_cached *ph)
{
	struct graph_call *g = master_call_ext(c);
	const char *inm = http_req_header(g->r, "If-None-Match");
	char side[16];

	if (ph == NULL) {
		graph_store_failed(g);
		return;
	}
	if (ph->data == NULL) {
		master_cached_unref(ph);
		/* The same 404 for both would hide a mistyped address. */
		if (g->me || g->found)
			graph_no_image(g);
		else
			user_read(g, value_none);
		return;
	}
	if (g->what == G_SIZE && !size_stored(g->code, ph->side)) {
		master_cached_unref(ph);
		graph_no_image(g);
		return;
	}
	master_photo_headers(g->r, ph->etag, ph->updated);
	if (http_etag_match(inm, ph->etag)) {
		http_req_note(g->r, "photo", "unchanged");
		http_reply(g->r, 304, NULL, NULL, 0);
		master_cached_unref(ph);
	} else {
		snprintf(side, sizeof(side), "%d", ph->side);
		http_req_note(g->r, "side", side);
		http_reply_ref(g->r, 200, "image/jpeg", ph->data, ph->len,
		    master_cached_unref, ph);
	}
	master_call_end(c);
}

static void
value_read(struct graph_call *g)
{
	/* .../photo/$value: the largest stored, which the largest code is. */
	master_call_photo(g->c, g->email, g->what == G_SIZE ? g->code :
	    EWS_SIZE_COUNT - 1, value_answer);
}

/* ---- changing ---- */

static void
change_done(struct master_change *ch, void *arg)
{
	struct graph_call *g = arg;

	if (master_call_gone(g->c))
		return;
	switch (ch->result) {
	case MASTER_CHANGE_OK:
		if (http_req_method(g->r) == HTTP_OTHER &&
		    strcmp(http_req_method_name(g->r), "DELETE") == 0) {
			http_reply(g->r, 204, NULL, NULL, 0);
		} else {
			http_req_note(g->r, "photo", ch->etag);
			http_reply(g->r, 200, NULL, NULL, 0);
		}
		master_call_end(g->c);
		return;
	case MASTER_CHANGE_NO_PHOTO:
		graph_no_image(g);
		return;
	case MASTER_CHANGE_TOO_LARGE:
		graph_error(g, 413, "RequestEntityTooLarge", ch->message);
		return;
	case MASTER_CHANGE_MALFORMED:
		graph_error(g, 400, "BadRequest", ch->message);
		return;
	case MASTER_CHANGE_BAD_IMAGE: {
		char *msg = xasprintf("That file cannot be used as a photo: "
		    "%s. The photo has not changed.", ch->message);

		graph_error(g, 400, "ErrorInvalidImage", msg);
		free(msg);
		return;
	}
	case MASTER_CHANGE_BUSY:
		http_reply_header(g->r, "Retry-After", "1");
		graph_error(g, 503, "serviceNotAvailable", ch->message);
		return;
	case MASTER_CHANGE_STORE_DOWN:
	case MASTER_CHANGE_STORE_FAILED:
	case MASTER_CHANGE_NOT_OWNER:
	case MASTER_CHANGE_OTHER_OPERATION:
		break;
	}
	graph_store_failed(g);
}

/* PUT/PATCH .../photo/$value, DELETE .../photo: the owner's alone. */
static void
change_start(struct graph_call *g, bool remove)
{
	struct master_change *ch = &g->change;
	const char *user = master_call_user(g->c);
	size_t len;

	if (user[0] == '\0' || strcmp(g->email, user) != 0) {
		log_info(http_req_id(g->r), "photo.client_refused", "email=%s "
		    "via=graph reason=%s", log_q(user), log_q("another "
		    "mailbox"));
		graph_error(g, 403, "ErrorAccessDenied", "Access is denied: "
		    "only the mailbox's owner can change its photo.");
		return;
	}
	ch->srv = g->s;
	ch->req_id = http_req_id(g->r);
	ch->via = "graph";
	str_copy(ch->owner, user, sizeof(ch->owner));
	ch->done = change_done;
	ch->arg = g;
	if (remove) {
		master_change_remove(ch);
		return;
	}
	ch->body = http_req_body(g->r, &len);
	ch->len = len;
	ch->max_image = GRAPH_PHOTO_MAX;
	master_change_set(ch);
}

static void
change_set_go(struct graph_call *g)
{
	change_start(g, false);
}

static void
change_remove_go(struct graph_call *g)
{
	change_start(g, true);
}

/* ---- routing ---- */

bool
graph_parse_path(const char *path, struct graph_path *out)
{
	const char *p = path, *slash;
	char size[32];

	memset(out, 0, sizeof(*out));
	if (strncmp(p, GRAPH_PREFIX, strlen(GRAPH_PREFIX)) != 0)
		return false;
	p += strlen(GRAPH_PREFIX);
	if (strncmp(p, "me/", 3) == 0) {
		out->me = true;
		p += 3;
	} else if (strncmp(p, "users/", 6) == 0) {
		p += 6;
		if ((slash = strchr(p, '/')) == NULL || slash == p ||
		    (size_t)(slash - p) >= sizeof(out->who))
			return false;
		memcpy(out->who, p, (size_t)(slash - p));
		out->who[slash - p] = '\0';
		p = slash + 1;
	} else {
		return false;
	}
	if (strcmp(p, "photo") == 0 || strcmp(p, "photo/$value") == 0) {
		out->what = G_PHOTO;
		out->value = p[5] != '\0';
		return true;
	}
	if (strcmp(p, "photos") == 0) {
		out->what = G_PHOTOS;
		return true;
	}
	if (strncmp(p, "photos/", 7) != 0)
		return false;
	p += 7;
	slash = strchr(p, '/');
	if (slash && strcmp(slash, "/$value") != 0)
		return false;
	if (snprintf(size, sizeof(size), "HR%.*s", slash ? (int)(slash - p) :
	    (int)strlen(p), p) >= (int)sizeof(size))
		return false;
	out->what = G_SIZE;
	out->value = slash != NULL;
	out->code = ews_size_index(size);
	return true;
}

/* The request's path into the call's fields; false when it names none. */
static bool
parse_path(struct graph_call *g, const char *path)
{
	struct graph_path gp;

	if (!graph_parse_path(path, &gp))
		return false;
	g->what = gp.what;
	g->value = gp.value;
	g->code = gp.code;
	g->me = gp.me;
	str_copy(g->who, gp.who, sizeof(g->who));
	return true;
}

bool
graph_gate(struct http_req *r)
{
	const char *m = http_req_method_name(r);
	const char *cl = http_req_header(r, "Content-Length");
	char *end;
	unsigned long long n;

	if (strcmp(m, "PUT") != 0 && strcmp(m, "PATCH") != 0) {
		graph_reply_error(r, 413, "RequestEntityTooLarge", "This "
		    "request takes no body this large.");
		return false;
	}
	if (cl) {
		n = strtoull(cl, &end, 10);
		if (*end == '\0' && n > GRAPH_PHOTO_MAX) {
			graph_reply_error(r, 413, "RequestEntityTooLarge",
			    "The photo is larger than 4 MB, the most a photo "
			    "can be.");
			return false;
		}
	}
	return true;
}

void
graph_handle(struct master_call *c)
{
	struct http_req *r = master_call_req(c);
	struct graph_call *g = xcalloc(1, sizeof(*g));
	const char *m = http_req_method_name(r);
	const char *user = master_call_user(c);
	bool read = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
	bool put = strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
	bool del = strcmp(m, "DELETE") == 0;
	bool found;

	g->c = c;
	g->r = r;
	g->s = master_call_srv(c);
	master_call_set_ext(c, g, graph_call_free);
	if (!parse_path(g, http_req_path(r))) {
		char *msg = xasprintf("Resource not found for the segment "
		    "'%s'.", http_req_path_raw(r));

		graph_error(g, 400, "BadRequest", msg);
		free(msg);
		return;
	}
	if (g->what == G_SIZE && g->code < 0) {
		graph_error(g, 400, "ErrorInvalidPhotoSize", "The photo size "
		    "must be one of 48x48, 64x64, 96x96, 120x120, 240x240, "
		    "360x360, 432x432, 504x504 and 648x648.");
		return;
	}
	/* Set: photo/$value; removed: photo or photo/$value; read: all. */
	if (!(read || (put && g->what == G_PHOTO && g->value) ||
	    (del && g->what == G_PHOTO))) {
		http_reply_header(r, "Allow", g->what != G_PHOTO ?
		    "GET, HEAD" : g->value ? "GET, HEAD, PUT, PATCH, DELETE" :
		    "GET, HEAD, DELETE");
		graph_error(g, 405, "BadRequest", "The method is not allowed "
		    "on this resource.");
		return;
	}
	if (g->me) {
		if (user[0] == '\0') {
			graph_error(g, 400, "BadRequest", "/me request is only "
			    "valid with delegated authentication flow.");
			return;
		}
		str_copy(g->email, user, sizeof(g->email));
		str_copy(g->who, user, sizeof(g->who));
	} else if (strchr(g->who, '@')) {
		if (!email_valid(g->who)) {
			graph_not_found_user(g);
			return;
		}
		str_copy(g->email, g->who, sizeof(g->email));
		str_lower(g->email);
	} else if (strlen(g->who) != ID_LEN) {
		graph_not_found_user(g);
		return;
	} else if (id_lookup(g, &found) && !found) {
		graph_not_found_user(g);
		return;
	}
	if (g->email[0])
		http_req_note(r, "email", g->email);
	if (put || del) {
		/* An id is resolved first; an address is compared as it is. */
		if (g->email[0] == '\0')
			user_read(g, del ? change_remove_go : change_set_go);
		else
			change_start(g, del);
		return;
	}
	if (g->value && g->email[0]) {
		value_read(g);
		return;
	}
	user_read(g, g->value ? value_read : metadata_answer);
}
