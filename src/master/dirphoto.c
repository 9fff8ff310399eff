/*
 * The master's photos written to the directory's entries: the settings,
 * the write of one mailbox, its delivery from the outbox inside serve
 * (on a thread of its own), and `directory publish`. See dirphoto.h.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "directory/ldap.h"
#include "directory/schedule.h"
#include "directory/sync.h"
#include "dirphoto.h"
#include "exchange/ews.h"
#include "image/image.h"
#include "metrics/metrics.h"
#include "work/work.h"

#define WRITER_TICK_MS	5000	/* and at once when woken */
#define WRITER_BATCH	16	/* writes claimed per look */
/* Each step of a write (connect, bind, search, modify) waits at most: */
#define WRITE_TIMEOUT_S	10
/*
 * How long a claim holds: more than a batch's writes take when every
 * step of each times out (a connection, then a search and a modify a
 * write).
 */
#define WRITER_CLAIM_S	(WRITE_TIMEOUT_S * (2 + 2 * WRITER_BATCH) + 60)
#define RETRY_FIRST_S	5
#define RETRY_MAX_S	3600

#define KEY_PHOTOS	"directory.photos"
#define KEY_BIND_DN	"directory.photo_bind_dn"
#define KEY_PASSWORD	"directory.photo_password"
#define KEY_ATTRIBUTES	"directory.photo_attributes"
#define KEY_JPEG_SIZE	"directory.jpeg_photo_size"

/* ---- settings ---- */

void
dirphoto_settings_cleanup(struct dirphoto_settings *s)
{
	if (s->password)
		xfree_secret(s->password, strlen(s->password));
	free(s->bind_dn);
	memset(s, 0, sizeof(*s));
}

/* The setting `key` into *value (NULL when it is not set or empty). */
static ps_err
setting_get(struct store *st, const char *key, char **value)
{
	ps_err rc = store_config_get(st, key, value);

	if (rc == PS_ENOTFOUND) {
		*value = NULL;
		return PS_OK;
	}
	if (rc == PS_OK && **value == '\0') {
		free(*value);
		*value = NULL;
	}
	return rc;
}

/* "thumbnailPhoto", "jpegPhoto" or both, comma-separated, any case. */
static ps_err
attributes_parse(const char *v, bool *thumbnail, bool *jpeg)
{
	char *copy = xstrdup(v), *tok, *save = NULL;
	ps_err rc = PS_OK;

	*thumbnail = *jpeg = false;
	for (tok = strtok_r(copy, ", ", &save); tok && rc == PS_OK;
	    tok = strtok_r(NULL, ", ", &save)) {
		if (strcasecmp(tok, "thumbnailPhoto") == 0)
			*thumbnail = true;
		else if (strcasecmp(tok, "jpegPhoto") == 0)
			*jpeg = true;
		else
			rc = ps_errf(PS_EINVAL, "--photo-attributes takes "
			    "thumbnailPhoto, jpegPhoto or both "
			    "(comma-separated), not \"%s\"", tok);
	}
	free(copy);
	if (rc == PS_OK && !*thumbnail && !*jpeg)
		rc = ps_errf(PS_EINVAL, "--photo-attributes names no "
		    "attribute (thumbnailPhoto, jpegPhoto or both)");
	return rc;
}

/* The index of side `side` among the nine, or -1. */
static int
side_index(int side)
{
	int i;

	for (i = 0; i < EWS_SIZE_COUNT; i++)
		if (ews_sizes[i] == side)
			return i;
	return -1;
}

ps_err
dirphoto_settings_load(struct store *st, struct dirphoto_settings *s)
{
	char *v = NULL;
	ps_err rc;

	memset(s, 0, sizeof(*s));
	s->thumbnail = s->jpeg = true;
	s->jpeg_side = DIRPHOTO_JPEG_DEFAULT;
	if ((rc = setting_get(st, KEY_PHOTOS, &v)) == PS_OK && v) {
		s->on = strcmp(v, "on") == 0;
		free(v);
	}
	if (rc == PS_OK)
		rc = setting_get(st, KEY_BIND_DN, &s->bind_dn);
	if (rc == PS_OK)
		rc = setting_get(st, KEY_PASSWORD, &s->password);
	if (rc == PS_OK && (rc = setting_get(st, KEY_ATTRIBUTES, &v)) ==
	    PS_OK && v) {
		/* Stored checked; a value of another version: both. */
		if (attributes_parse(v, &s->thumbnail, &s->jpeg) != PS_OK)
			s->thumbnail = s->jpeg = true;
		free(v);
	}
	if (rc == PS_OK && (rc = setting_get(st, KEY_JPEG_SIZE, &v)) ==
	    PS_OK && v) {
		s->jpeg_side = (int)strtol(v, NULL, 10);
		if (side_index(s->jpeg_side) < 0)
			s->jpeg_side = DIRPHOTO_JPEG_DEFAULT;
		free(v);
	}
	if (s->bind_dn == NULL || s->password == NULL) {
		free(s->bind_dn);
		s->bind_dn = NULL;
		if (s->password)
			xfree_secret(s->password, strlen(s->password));
		s->password = NULL;
	}
	if (rc != PS_OK)
		dirphoto_settings_cleanup(s);
	return rc;
}

ps_err
dirphoto_settings_save(struct store *st, const struct dirphoto_settings *s)
{
	char side[16], attrs[32];
	ps_err rc;

	snprintf(side, sizeof(side), "%d", s->jpeg_side);
	snprintf(attrs, sizeof(attrs), "%s%s%s", s->thumbnail ?
	    "thumbnailPhoto" : "", s->thumbnail && s->jpeg ? "," : "",
	    s->jpeg ? "jpegPhoto" : "");
	if ((rc = store_begin(st)) != PS_OK)
		return rc;
	rc = store_config_set(st, KEY_PHOTOS, s->on ? "on" : "off");
	if (rc == PS_OK)
		rc = store_config_set(st, KEY_BIND_DN, s->bind_dn ?
		    s->bind_dn : "");
	if (rc == PS_OK)
		rc = store_config_set(st, KEY_PASSWORD, s->password ?
		    s->password : "");
	if (rc == PS_OK)
		rc = store_config_set(st, KEY_ATTRIBUTES, attrs);
	if (rc == PS_OK)
		rc = store_config_set(st, KEY_JPEG_SIZE, side);
	if (rc != PS_OK) {
		(void)store_end(st, false);
		return rc;
	}
	return store_end(st, true);
}

bool
dirphoto_change_given(const struct dirphoto_change *ch)
{
	return ch->photos || ch->bind_dn || ch->password_file ||
	    ch->attributes || ch->jpeg_size;
}

ps_err
dirphoto_settings_check(struct store *st, bool has_directory,
    const struct dirphoto_change *ch, struct dirphoto_settings *out)
{
	char *password = NULL, *end;
	long side;
	ps_err rc;

	if ((rc = dirphoto_settings_load(st, out)) != PS_OK)
		return rc;
	if (ch->photos && strcmp(ch->photos, "on") == 0)
		out->on = true;
	else if (ch->photos && strcmp(ch->photos, "off") == 0)
		out->on = false;
	else if (ch->photos) {
		rc = ps_errf(PS_EINVAL, "--photos must be on or off, not "
		    "\"%s\"", ch->photos);
		goto out;
	}
	if (ch->bind_dn && strcmp(ch->bind_dn, "reading") == 0) {
		if (ch->password_file) {
			rc = ps_errf(PS_EINVAL, "--photo-bind-dn reading "
			    "takes no --photo-password-file");
			goto out;
		}
		free(out->bind_dn);
		out->bind_dn = NULL;
		if (out->password)
			xfree_secret(out->password, strlen(out->password));
		out->password = NULL;
	} else if (ch->bind_dn || ch->password_file) {
		if (!ch->bind_dn || !ch->password_file || !*ch->bind_dn) {
			rc = ps_errf(PS_EINVAL, "--photo-bind-dn and "
			    "--photo-password-file go together (--photo-bind-dn "
			    "reading: the reading bind's)");
			goto out;
		}
		if ((rc = dir_password_file_read(ch->password_file,
		    &password)) != PS_OK)
			goto out;
		free(out->bind_dn);
		out->bind_dn = xstrdup(ch->bind_dn);
		if (out->password)
			xfree_secret(out->password, strlen(out->password));
		out->password = password;
	}
	if (ch->attributes && (rc = attributes_parse(ch->attributes,
	    &out->thumbnail, &out->jpeg)) != PS_OK)
		goto out;
	if (ch->jpeg_size) {
		side = strtol(ch->jpeg_size, &end, 10);
		if (*ch->jpeg_size == '\0' || *end != '\0' || side > 10000 ||
		    side_index((int)side) < 0) {
			rc = ps_errf(PS_EINVAL, "--jpeg-photo-size must be a "
			    "side of the nine sizes (48, 64, 96, 120, 240, "
			    "360, 432, 504, 648), not \"%s\"", ch->jpeg_size);
			goto out;
		}
		out->jpeg_side = (int)side;
	}
	if (out->on && !has_directory) {
		rc = ps_errf(PS_EINVAL, "no directory is set: give --ldap URL "
		    "--base DN (and its other options) first");
		goto out;
	}
out:
	if (rc != PS_OK)
		dirphoto_settings_cleanup(out);
	return rc;
}

void
dirphoto_settings_print(FILE *f, const struct dirphoto_settings *s)
{
	char jpeg[32] = "";

	if (s->jpeg)
		snprintf(jpeg, sizeof(jpeg), "jpegPhoto (%d)", s->jpeg_side);
	fprintf(f, "photos          %s\n", s->on ? "written to the "
	    "directory" : "not written");
	fprintf(f, "photo attrs     %s%s%s\n", s->thumbnail ?
	    "thumbnailPhoto (96)" : "", s->thumbnail && s->jpeg ? ", " : "",
	    jpeg);
	fprintf(f, "photo bind      %s\n", s->bind_dn ? s->bind_dn :
	    "the reading bind's");
}

/* ---- writing one mailbox's photo ---- */

/*
 * The directory's configuration for writing: the reading one's, bound
 * as the photo settings say (strings borrowed from both).
 */
static void
write_config(const struct dir_settings *set,
    const struct dirphoto_settings *ps, struct dir_config *cfg)
{
	dir_settings_config(set, cfg);
	cfg->timeout_s = WRITE_TIMEOUT_S;
	if (ps->bind_dn) {
		cfg->bind_dn = ps->bind_dn;
		cfg->password = ps->password;
	}
}

/* Size `side` of `email`'s photo, at most `max` bytes; cleared: none. */
static ps_err
rendition(struct store *st, const char *email, int side, size_t max,
    struct image_jpeg *out, bool *none)
{
	struct store_photo p = { 0 };
	ps_err rc;

	memset(out, 0, sizeof(*out));
	*none = false;
	rc = store_photo_get(st, email, side_index(side), &p);
	if (rc == PS_OK && p.hidden) {
		/* Hidden: the directory shows everyone, so it has none. */
		store_photo_cleanup(&p);
		rc = PS_ENOTFOUND;
	}
	if (rc == PS_ENOTFOUND) {
		*none = true;
		return PS_OK;
	}
	if (rc != PS_OK)
		return rc;
	/* A stored size that fits is written as it is. */
	rc = image_render_within(p.data, p.len, NULL, p.side, max, out);
	store_photo_cleanup(&p);
	return rc;
}

/*
 * Writes what `email` has now to its entry `directory_id`: the photo's
 * renditions, or the attributes cleared when it has none. *dn gets the
 * entry's DN, *cleared whether it had none. PS_ENOTFOUND: no entry has
 * the id any more.
 */
static ps_err write_to_dn(struct dir_conn *, struct store *,
    const struct dirphoto_settings *, const char *email, const char *dn,
    bool *cleared);

static ps_err
write_one(struct dir_conn *c, struct store *st,
    const struct dirphoto_settings *ps, const char *email,
    const char *directory_id, char *dn, size_t dn_len, bool *cleared)
{
	ps_err rc;

	*cleared = false;
	dn[0] = '\0';
	if ((rc = dir_find_dn(c, directory_id, dn, dn_len)) != PS_OK)
		return rc;
	return write_to_dn(c, st, ps, email, dn, cleared);
}

/* Writes what `email` has now to the entry `dn` (write_one's second half). */
static ps_err
write_to_dn(struct dir_conn *c, struct store *st,
    const struct dirphoto_settings *ps, const char *email, const char *dn,
    bool *cleared)
{
	struct image_jpeg thumb = { 0 }, jpeg = { 0 };
	struct dir_binary attrs[2];
	bool none = false;
	size_t n = 0;
	ps_err rc;

	*cleared = false;
	if (ps->thumbnail) {
		if ((rc = rendition(st, email, DIRPHOTO_THUMB_SIDE,
		    DIRPHOTO_THUMB_MAX, &thumb, &none)) != PS_OK)
			goto out;
		attrs[n].attr = "thumbnailPhoto";
		attrs[n].data = thumb.data;
		attrs[n++].len = thumb.len;
	}
	if (ps->jpeg) {
		if ((rc = rendition(st, email, ps->jpeg_side, DIRPHOTO_AD_MAX,
		    &jpeg, &none)) != PS_OK)
			goto out;
		attrs[n].attr = "jpegPhoto";
		attrs[n].data = jpeg.data;
		attrs[n++].len = jpeg.len;
	}
	*cleared = none;
	rc = dir_put_binary(c, dn, attrs, n);
out:
	image_jpeg_free(&thumb);
	image_jpeg_free(&jpeg);
	return rc;
}

/* ---- delivery inside serve ---- */

enum outcome_kind { OUT_WRITTEN, OUT_CLEARED, OUT_RETRIED, OUT_DROPPED };

static const char *const outcome_names[] = { "written", "cleared",
    "retried", "dropped" };

struct outcome {
	enum outcome_kind	 kind;
	char			 email[256];
	char			 dn[512];
	int			 attempt;
	int64_t			 wait;
	int64_t			 ms;
	char			 why[300];
	bool			 unsaved;	/* the outcome not stored */
};

struct dirphoto_writer {
	struct event_base	*base;
	struct event		*tick;
	struct work_pool	*pool;		/* one thread: the looks */
	char			*address;
	/* the loop's */
	bool			 busy;
	bool			 again;		/* woken during a look */
	/* the look's (its thread's while busy) */
	struct store		*st;
	struct store_directory_outbox rows[WRITER_BATCH];
	size_t			 n_rows;
	struct outcome		 out[WRITER_BATCH];
	size_t			 n_out;
	int64_t			 pending;
	char			 store_error[300];
};

static ps_err
collect_row(void *arg, const struct store_directory_outbox *row)
{
	struct dirphoto_writer *w = arg;

	if (w->n_rows < WRITER_BATCH)
		w->rows[w->n_rows++] = *row;
	return PS_OK;
}

/* The wait before attempt `attempts` + 2: 5 s doubling, at most 1 h. */
static int64_t
backoff(int attempts)
{
	int64_t wait = RETRY_FIRST_S;
	int i;

	for (i = 0; i < attempts && wait < RETRY_MAX_S; i++)
		wait *= 2;
	return wait > RETRY_MAX_S ? RETRY_MAX_S : wait;
}

/* Stores the outcome of `row`, then gives its claim back. */
static void
settle(struct dirphoto_writer *w, const struct store_directory_outbox *row,
    struct outcome *o)
{
	char name[300];
	ps_err rc;

	if (o->kind == OUT_RETRIED)
		rc = store_directory_outbox_retry(w->st, row->id, time_now() +
		    o->wait, o->why);
	else
		rc = store_directory_outbox_done(w->st, row->id);
	if (rc != PS_OK) {
		/* Its claim expires; it is then due again. */
		o->unsaved = true;
		str_copy(w->store_error, ps_errmsg(), sizeof(w->store_error));
		return;
	}
	store_directory_outbox_lease_name(row->email, name, sizeof(name));
	(void)store_lease_release(w->st, name, store_lease_holder());
}

static void
deliver(struct dirphoto_writer *w, struct dir_conn *c, ps_err conn_rc,
    const char *conn_error, const struct dirphoto_settings *ps,
    const struct store_directory_outbox *row, struct outcome *o)
{
	int64_t t0 = time_mono_ms();
	bool cleared;
	ps_err rc;

	memset(o, 0, sizeof(*o));
	str_copy(o->email, row->email, sizeof(o->email));
	o->attempt = row->attempts + 1;
	if (row->directory_id[0] == '\0' || row->disabled) {
		o->kind = OUT_DROPPED;
		str_copy(o->why, row->disabled ? "the mailbox is disabled" :
		    "the mailbox is not from the directory", sizeof(o->why));
	} else if (conn_rc != PS_OK) {
		o->kind = OUT_RETRIED;
		str_copy(o->why, conn_error, sizeof(o->why));
	} else if ((rc = write_one(c, w->st, ps, row->email,
	    row->directory_id, o->dn, sizeof(o->dn), &cleared)) == PS_OK) {
		o->kind = cleared ? OUT_CLEARED : OUT_WRITTEN;
	} else if (rc == PS_ENOTFOUND) {
		o->kind = OUT_DROPPED;
		str_copy(o->why, ps_errmsg(), sizeof(o->why));
	} else {
		o->kind = OUT_RETRIED;
		str_copy(o->why, ps_errmsg(), sizeof(o->why));
	}
	if (o->kind == OUT_RETRIED)
		o->wait = backoff(row->attempts);
	o->ms = time_mono_ms() - t0;
	settle(w, row, o);
}

/* On the writer's thread: claims the due writes and delivers them. */
static void
run_look(void *arg)
{
	struct dirphoto_writer *w = arg;
	struct dir_settings set = { 0 };
	struct dirphoto_settings ps = { 0 };
	struct dir_config cfg;
	struct dir_conn *c = NULL;
	char conn_error[300] = "";
	int64_t now = time_now();
	ps_err conn_rc = PS_OK;
	size_t i;

	w->n_rows = 0;
	w->n_out = 0;
	w->pending = -1;
	w->store_error[0] = '\0';
	if (w->st == NULL && store_open(w->address, STORE_MASTER, false,
	    &w->st) != PS_OK) {
		str_copy(w->store_error, ps_errmsg(), sizeof(w->store_error));
		return;
	}
	if (dir_settings_load(w->st, &set) != PS_OK ||
	    dirphoto_settings_load(w->st, &ps) != PS_OK) {
		str_copy(w->store_error, ps_errmsg(), sizeof(w->store_error));
		goto out;
	}
	if (set.ldap != NULL && ps.on && store_directory_outbox_claim(w->st,
	    store_lease_holder(), now, now + WRITER_CLAIM_S, WRITER_BATCH,
	    collect_row, w) != PS_OK)
		str_copy(w->store_error, ps_errmsg(), sizeof(w->store_error));
	if (w->n_rows > 0) {
		write_config(&set, &ps, &cfg);
		if ((conn_rc = dir_connect(&cfg, &c)) != PS_OK)
			str_copy(conn_error, ps_errmsg(), sizeof(conn_error));
	}
	for (i = 0; i < w->n_rows; i++)
		deliver(w, c, conn_rc, conn_error, &ps, &w->rows[i],
		    &w->out[w->n_out++]);
	dir_disconnect(c);
	w->pending = store_directory_outbox_pending(w->st);
out:
	dir_settings_cleanup(&set);
	dirphoto_settings_cleanup(&ps);
	if (!store_connected(w->st)) {
		/* Opened again at the next look. */
		store_close(w->st);
		w->st = NULL;
	}
}

static void look(struct dirphoto_writer *);

static void
report(const struct outcome *o)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "result=\"%s\"",
	    outcome_names[o->kind]);
	metrics_add("photosync_directory_photo_writes_total", labels, 1);
	switch (o->kind) {
	case OUT_WRITTEN:
	case OUT_CLEARED:
		log_info(NULL, "directory.photo_written", "email=%s dn=%s "
		    "photo=%s attempt=%d ms=%lld", log_q(o->email),
		    log_q(o->dn), o->kind == OUT_WRITTEN ? "set" : "cleared",
		    o->attempt, (long long)o->ms);
		break;
	case OUT_RETRIED:
		log_warn(NULL, "directory.photo_retry", "email=%s attempt=%d "
		    "wait_s=%lld reason=%s", log_q(o->email), o->attempt,
		    (long long)o->wait, log_q(o->why));
		break;
	case OUT_DROPPED:
		log_warn(NULL, "directory.photo_dropped", "email=%s reason=%s",
		    log_q(o->email), log_q(o->why));
		break;
	}
}

static void
look_done(void *arg)
{
	struct dirphoto_writer *w = arg;
	size_t i;

	w->busy = false;
	for (i = 0; i < w->n_out; i++)
		report(&w->out[i]);
	if (w->store_error[0])
		log_warn(NULL, "serve.store_failed", "what=%s error=%s",
		    "directory_outbox", log_q(w->store_error));
	if (w->pending >= 0)
		metrics_set("photosync_directory_photos_pending", NULL,
		    (double)w->pending);
	/* A full batch: more may be due. */
	if (w->again || w->n_rows == WRITER_BATCH) {
		w->again = false;
		look(w);
	}
}

static void
look(struct dirphoto_writer *w)
{
	if (w->busy) {
		w->again = true;
		return;
	}
	w->busy = true;
	work_submit(w->pool, run_look, look_done, w);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct dirphoto_writer *w = arg;

	(void)fd;
	(void)what;
	if (!w->busy)
		look(w);
}

void
dirphoto_writer_wake(struct dirphoto_writer *w)
{
	if (w != NULL)
		look(w);
}

struct dirphoto_writer *
dirphoto_writer_start(struct event_base *base, const char *address)
{
	struct dirphoto_writer *w = xcalloc(1, sizeof(*w));
	struct timeval tv = { WRITER_TICK_MS / 1000,
	    (WRITER_TICK_MS % 1000) * 1000 };

	w->base = base;
	w->address = xstrdup(address);
	if ((w->pool = work_pool_new(base, 1)) == NULL) {
		free(w->address);
		free(w);
		return NULL;
	}
	metrics_declare("photosync_directory_photo_writes_total", "counter",
	    "Photo writes to the directory's entries, by result (written, "
	    "cleared, retried, dropped).");
	metrics_declare("photosync_directory_photos_pending", "gauge",
	    "Photo writes to the directory waiting to be delivered.");
	w->tick = event_new(base, -1, EV_PERSIST, on_tick, w);
	event_add(w->tick, &tv);
	/* A first look at once: writes queued while no serve ran. */
	event_active(w->tick, EV_TIMEOUT, 0);
	return w;
}

void
dirphoto_writer_stop(struct dirphoto_writer *w)
{
	if (w == NULL)
		return;
	event_free(w->tick);
	/* Waits for a look in progress; its claims are given back. */
	work_pool_free(w->pool);
	if (w->st)
		store_close(w->st);
	free(w->address);
	free(w);
}

/* ---- directory publish ---- */

struct publish_target {
	char	email[256];
	char	id[80];
	bool	disabled;
};

struct publish_list {
	struct publish_target	*v;
	size_t			 n, cap;
};

static ps_err
collect_target(void *arg, const struct store_mailbox *m)
{
	struct publish_list *l = arg;

	if (m->directory_id[0] == '\0')
		return PS_OK;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	str_copy(l->v[l->n].email, m->email, sizeof(l->v[l->n].email));
	str_copy(l->v[l->n].id, m->directory_id, sizeof(l->v[l->n].id));
	l->v[l->n++].disabled = m->disabled;
	return PS_OK;
}

/*
 * Writes one mailbox to the entry dir_find_dns() found for it.
 * PS_ENOTFOUND: no entry has its id any more.
 */
static ps_err
publish_found(struct dir_conn *c, struct store *st,
    const struct dirphoto_settings *ps, const struct publish_target *t,
    const struct dir_found *f, bool *cleared)
{
	*cleared = false;
	if (f->count < 0)
		return ps_errf(PS_EINVAL, "\"%s\" is not an objectGUID",
		    t->id);
	if (f->count == 0)
		return ps_errf(PS_ENOTFOUND, "no entry has the id %s", t->id);
	if (f->count > 1)
		return ps_errf(PS_EUPSTREAM, "the directory has several "
		    "entries with the id %s", t->id);
	return write_to_dn(c, st, ps, t->email, f->dn, cleared);
}

ps_err
dirphoto_publish(struct store *st)
{
	struct dir_settings set = { 0 };
	struct dirphoto_settings ps = { 0 };
	struct publish_list l = { 0 };
	struct dir_config cfg;
	struct dir_conn *c = NULL;
	FILE *progress = isatty(STDERR_FILENO) ? stderr : NULL;
	size_t i, written = 0, cleared = 0, disabled = 0, gone = 0;
	size_t failed = 0, start = 0, k, nids;
	const char *ids[DIR_FIND_BATCH];
	size_t slot[DIR_FIND_BATCH];
	struct dir_found found[DIR_FIND_BATCH];
	ps_err rc, find_rc = PS_OK;
	char find_err[300] = "";
	bool none;

	if ((rc = dir_settings_load(st, &set)) != PS_OK ||
	    (rc = dirphoto_settings_load(st, &ps)) != PS_OK)
		goto out;
	if (set.ldap == NULL) {
		rc = ps_errf(PS_EINVAL, "no directory is set (directory set "
		    "--ldap URL --base DN ...)");
		goto out;
	}
	if (!ps.on) {
		rc = ps_errf(PS_EINVAL, "photos are not written to the "
		    "directory: directory set --photos on first");
		goto out;
	}
	if ((rc = store_mailbox_directory_each(st, collect_target, &l)) !=
	    PS_OK)
		goto out;
	write_config(&set, &ps, &cfg);
	if ((rc = dir_connect(&cfg, &c)) != PS_OK)
		goto out;
	for (i = 0; i < l.n; i++) {
		/* The entries of the next batch, in one search. */
		if (i % DIR_FIND_BATCH == 0) {
			start = i;
			nids = 0;
			for (k = i; k < l.n && k < i + DIR_FIND_BATCH; k++) {
				slot[k - start] = nids;
				if (!l.v[k].disabled)
					ids[nids++] = l.v[k].id;
			}
			find_rc = nids ? dir_find_dns(c, ids, nids, found) :
			    PS_OK;
			if (find_rc != PS_OK)
				str_copy(find_err, ps_errmsg(),
				    sizeof(find_err));
		}
		none = false;
		if (l.v[i].disabled)
			rc = PS_OK;
		else if (find_rc != PS_OK)
			rc = ps_errf(find_rc, "%s", find_err);
		else
			rc = publish_found(c, st, &ps, &l.v[i],
			    &found[slot[i - start]], &none);
		if (l.v[i].disabled)
			disabled++;
		else if (rc == PS_OK && none)
			cleared++;
		else if (rc == PS_OK)
			written++;
		else if (rc == PS_ENOTFOUND)
			gone++;
		else {
			failed++;
			fprintf(stderr, "%sphotosync master: directory "
			    "publish: %s: %s\n", progress ? "\r\033[K" : "",
			    l.v[i].email, ps_errmsg());
		}
		if (progress)
			fprintf(progress, "\r\033[Kpublishing photos: %zu of "
			    "%zu", i + 1, l.n);
	}
	if (progress)
		fprintf(progress, "\r\033[K");
	printf("published photos to %s: written %zu, cleared %zu, disabled "
	    "%zu, not in the directory %zu, failed %zu\n", set.ldap, written,
	    cleared, disabled, gone, failed);
	rc = failed == 0 ? PS_OK : ps_errf(PS_EUPSTREAM, "%zu of %zu "
	    "mailboxes could not be written", failed, l.n);
out:
	dir_disconnect(c);
	free(l.v);
	dir_settings_cleanup(&set);
	dirphoto_settings_cleanup(&ps);
	return rc;
}
