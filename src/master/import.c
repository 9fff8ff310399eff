/*
 * `master photo import`: many mailboxes' photos at once, from a folder of
 * files named by address, a CSV of address,file rows, or the directory's
 * jpegPhoto/thumbnailPhoto attributes.
 *
 * Every photo goes through the rendering and limits of `photo set` and
 * the change-photo page (master_photo_render()) on a pool of worker
 * threads, one per core by default; the rendered photos are written by
 * one writer thread in batches, one transaction each
 * (store_photo_put_in(), which queues the change notices in the same
 * transaction). The loop of this (the command's) thread hands the work
 * around; the number of photos between being read and being written is
 * bounded (IMPORT_HELD_PER_THREAD a worker, plus a batch; the
 * directory's photos, read with the search, also by IMPORT_HELD_BYTES),
 * so memory stays the same for ten photos or a hundred thousand.
 *
 * A photo is skipped when its mailbox does not exist or is disabled, or
 * when what it renders to is, byte for byte, what the mailbox has; it is
 * refused (and nothing of its mailbox changes) when it is not an image,
 * is over a limit, or is a second photo for one mailbox in the same run.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "directory/ldap.h"
#include "directory/schedule.h"
#include "import.h"
#include "master_int.h"
#include "work/work.h"

/* Photos held per render thread, rendered or being rendered. */
#define IMPORT_HELD_PER_THREAD	4
/*
 * The directory's photos are held from the search until rendered: at most
 * this many bytes of them at once (files are read by the workers).
 */
#define IMPORT_HELD_BYTES	(128u * 1024 * 1024)
/* Photos written in one transaction, at most. */
#define IMPORT_BATCH_MAX	64
/* A CSV file is read whole: a row is about 60 bytes. */
#define IMPORT_CSV_MAX		(64u * 1024 * 1024)
/* Progress: a terminal's line, redrawn; otherwise a line this often. */
#define PROGRESS_TTY_MS		250
#define PROGRESS_LINE_MS	5000

enum outcome {
	OUT_STORED,		/* stored (a dry run: would be) */
	OUT_UNCHANGED,		/* the mailbox has this very photo */
	OUT_NO_MAILBOX,		/* no such mailbox */
	OUT_DISABLED,		/* the mailbox is disabled */
	OUT_REFUSED,		/* not an image, over a limit, ... */
	OUT_FAILED,		/* the store failed to write it */
	OUT_COUNT,
};

/* Why a photo was refused, for the summary (each line says it fully). */
enum refusal {
	REF_SOURCE,		/* not named by an address, a bad row, ... */
	REF_READ,		/* the file cannot be read */
	REF_LIMIT,		/* over a limit: bytes, pixels, side */
	REF_IMAGE,		/* not an image, corrupt, scans, decode time */
	REF_COUNT,
};

static const char *const refusal_names[REF_COUNT] = {
	"not addressed", "unreadable", "over a limit", "not a usable image",
};

/* A mailbox as the import found it when it started. */
struct mbx {
	char	 email[256];
	bool	 disabled;
	bool	 has_photo;
	char	*first;		/* this run's photo for it: its source */
};

struct import;

/* One photo on its way: read, rendered, written. */
struct item {
	struct import		*im;
	char			 email[256];
	char			*source;	/* file, or "DN (attribute)" */
	char			*path;		/* the file to read; NULL: data */
	char			*data;
	size_t			 len;
	size_t			 data_held;	/* of im->held_bytes */
	bool			 has_photo;	/* the mailbox had one */
	ps_err			 rc;
	char			 why[400];	/* refused, failed: why */
	char			 etag[64];	/* stored: the new ETag */
	struct master_photo	 mp;
	enum outcome		 out;
	enum refusal		 ref;		/* when out is OUT_REFUSED */
};

struct batch {
	struct import	*im;
	struct item	*items[IMPORT_BATCH_MAX];
	size_t		 n;
};

struct import {
	struct master_state	*ms;
	const char		*from;		/* for the summary */
	bool			 dry_run;
	struct event_base	*base;
	struct work_pool	*render, *writer;
	int			 threads;
	struct mbx		*mbx;		/* sorted by address */
	size_t			 n_mbx;
	/* rendered, waiting for the writer (a FIFO of IMPORT_HELD) */
	struct item		**pending;
	size_t			 n_pending, cap_pending;
	bool			 writing;
	size_t			 held, max_held;
	size_t			 held_bytes;	/* sources given as data */
	size_t			 counts[OUT_COUNT];
	size_t			 refusals[REF_COUNT];
	size_t			 total;		/* 0: not known */
	size_t			 finished;
	int64_t			 started_ms, progress_ms;
	bool			 tty, progress_drawn;
};

/* ---- the mailboxes, as they were at the start ---- */

static int
mbx_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mbx *)a)->email,
	    ((const struct mbx *)b)->email);
}

static ps_err
mbx_add(void *arg, const struct store_mailbox *m)
{
	struct import *im = arg;
	struct mbx *x;

	if ((im->n_mbx & (im->n_mbx - 1)) == 0)
		im->mbx = xrealloc(im->mbx, (im->n_mbx ? im->n_mbx * 2 :
		    64) * sizeof(*im->mbx));
	x = &im->mbx[im->n_mbx++];
	memset(x, 0, sizeof(*x));
	str_copy(x->email, m->email, sizeof(x->email));
	str_lower(x->email);
	x->disabled = m->disabled;
	x->has_photo = m->etag[0] != '\0';
	return PS_OK;
}

static struct mbx *
mbx_find(struct import *im, const char *email)
{
	struct mbx key;

	if (!str_copy(key.email, email, sizeof(key.email)))
		return NULL;
	str_lower(key.email);
	return bsearch(&key, im->mbx, im->n_mbx, sizeof(*im->mbx), mbx_cmp);
}

/* ---- progress and outcomes (the loop's thread) ---- */

static void
progress(struct import *im, bool last)
{
	int64_t now = time_mono_ms(), ms = now - im->started_ms;
	double rate = ms > 0 ? im->finished * 1000.0 / ms : 0;
	char eta[48] = "";

	if (!last && now - im->progress_ms < (im->tty ? PROGRESS_TTY_MS :
	    PROGRESS_LINE_MS))
		return;
	im->progress_ms = now;
	if (im->total > 0 && rate > 0 && im->finished < im->total)
		snprintf(eta, sizeof(eta), ", about %.0f s left",
		    (im->total - im->finished) / rate + 0.5);
	if (im->total > 0)
		fprintf(stderr, "%sphoto import: %zu of %zu, %.1f a second%s%s",
		    im->tty ? "\r" : "", im->finished, im->total, rate, eta,
		    im->tty ? "\033[K" : "\n");
	else
		fprintf(stderr, "%sphoto import: %zu, %.1f a second%s",
		    im->tty ? "\r" : "", im->finished, rate,
		    im->tty ? "\033[K" : "\n");
	if (im->tty && last)
		fputc('\n', stderr);
	im->progress_drawn = true;
}

/* The end of an item's way: counted, reported, freed. */
static void
finish(struct import *im, struct item *it, bool was_held)
{
	im->counts[it->out]++;
	if (it->out == OUT_REFUSED)
		im->refusals[it->ref]++;
	im->finished++;
	if (it->out == OUT_REFUSED || it->out == OUT_FAILED) {
		if (im->tty && im->progress_drawn)
			fputs("\r\033[K", stderr);
		printf("%s %s%s%s: %s\n", it->out == OUT_REFUSED ? "refused" :
		    "not stored", it->source, it->email[0] ? " for " : "",
		    it->email, it->why);
		fflush(stdout);
		log_info(NULL, it->out == OUT_REFUSED ? "photo.import_refused" :
		    "photo.import_failed", "email=%s source=%s reason=%s",
		    log_q(it->email), log_q(it->source), log_q(it->why));
	} else if (it->out == OUT_STORED && !im->dry_run) {
		log_info(NULL, "photo.stored", "email=%s etag=%s sizes=%zu "
		    "source_side=%d", log_q(it->email), it->etag, it->mp.n,
		    it->mp.src_side);
	}
	if (was_held)
		im->held--;
	master_photo_free(&it->mp);
	free(it->data);
	free(it->path);
	free(it->source);
	free(it);
	progress(im, false);
}

/* ---- the writer (one thread, the store's connection) ---- */

/*
 * True when the mailbox's stored photo is, byte for byte, what `it`
 * rendered: every size, and no larger one stored.
 */
static bool
unchanged(struct store *st, const struct item *it)
{
	const struct master_photo *mp = &it->mp;
	struct store_photo p;
	bool same = true;
	int code;
	size_t i;

	if (!it->has_photo || mp->n == 0)
		return false;
	for (i = 0; i <= mp->n && same; i++) {
		code = i < mp->n ? mp->sizes[i].code : mp->sizes[mp->n - 1].code
		    + 1;
		if (code >= EWS_SIZE_COUNT)
			break;
		memset(&p, 0, sizeof(p));
		if (store_photo_get(st, it->email, code, &p) != PS_OK)
			return false;
		/*
		 * Past the rendered codes the store answers its largest
		 * size (of equal sides, any): none may be larger.
		 */
		if (i == mp->n)
			same = p.side <= mp->sizes[mp->n - 1].side;
		else
			same = p.code == code && p.len == mp->sizes[i].len &&
			    memcmp(p.data, mp->sizes[i].data, p.len) == 0;
		store_photo_cleanup(&p);
	}
	return same;
}

/* Writes one item in the caller's transaction, or in one of its own. */
static ps_err
write_one(struct store *st, struct item *it, bool in_tx)
{
	ps_err rc;

	if (unchanged(st, it)) {
		it->out = OUT_UNCHANGED;
		return PS_OK;
	}
	master_etag_new(it->etag);
	rc = in_tx ? store_photo_put_in(st, it->email, it->etag,
	    it->mp.sizes, it->mp.n) : store_photo_put(st, it->email,
	    it->etag, it->mp.sizes, it->mp.n);
	if (rc == PS_OK) {
		it->out = OUT_STORED;
	} else if (rc == PS_ENOTFOUND) {
		/* Removed since the import started. */
		it->out = OUT_NO_MAILBOX;
		rc = PS_OK;
	} else {
		it->out = OUT_FAILED;
		snprintf(it->why, sizeof(it->why), "%s", ps_errmsg());
	}
	return rc;
}

static void
write_run(void *arg)
{
	struct batch *b = arg;
	struct store *st = b->im->ms->store;
	ps_err rc;
	size_t i;

	if (b->im->dry_run) {
		for (i = 0; i < b->n; i++)
			b->items[i]->out = unchanged(st, b->items[i]) ?
			    OUT_UNCHANGED : OUT_STORED;
		return;
	}
	/* The batch in one transaction... */
	rc = store_begin(st);
	for (i = 0; i < b->n && rc == PS_OK; i++)
		rc = write_one(st, b->items[i], true);
	if (rc == PS_OK && store_end(st, true) == PS_OK)
		return;
	if (rc != PS_OK)
		(void)store_end(st, false);
	/*
	 * ...or, when it failed, each photo in one of its own, so that one
	 * photo's failure is that photo's alone.
	 */
	for (i = 0; i < b->n; i++)
		(void)write_one(st, b->items[i], false);
}

static void	writer_kick(struct import *);

static void
write_done(void *arg)
{
	struct batch *b = arg;
	struct import *im = b->im;
	size_t i;

	for (i = 0; i < b->n; i++)
		finish(im, b->items[i], true);
	free(b);
	im->writing = false;
	writer_kick(im);
}

/* Hands what is rendered to the writer, unless it is busy. */
static void
writer_kick(struct import *im)
{
	struct batch *b;

	if (im->writing || im->n_pending == 0)
		return;
	b = xcalloc(1, sizeof(*b));
	b->im = im;
	while (b->n < IMPORT_BATCH_MAX && b->n < im->n_pending) {
		b->items[b->n] = im->pending[b->n];
		b->n++;
	}
	memmove(im->pending, im->pending + b->n, (im->n_pending - b->n) *
	    sizeof(*im->pending));
	im->n_pending -= b->n;
	im->writing = true;
	work_submit(im->writer, write_run, write_done, b);
}

/* ---- rendering (the worker threads) ---- */

static void
render_run(void *arg)
{
	struct item *it = arg;

	it->rc = PS_OK;
	if (it->path)
		it->rc = file_read(it->path, IMAGE_MAX_BYTES, &it->data,
		    &it->len);
	if (it->rc == PS_OK)
		it->rc = master_photo_render(it->data, it->len, &it->mp);
	if (it->rc != PS_OK)
		snprintf(it->why, sizeof(it->why), "%s", ps_errmsg());
	/* The source is not needed any more: memory stays flat. */
	free(it->data);
	it->data = NULL;
}

static void
render_done(void *arg)
{
	struct item *it = arg;
	struct import *im = it->im;

	im->held_bytes -= it->data_held;
	it->data_held = 0;
	if (it->rc != PS_OK) {
		it->out = OUT_REFUSED;
		it->ref = it->rc == PS_ELIMIT ? REF_LIMIT : it->rc == PS_EIMAGE ?
		    REF_IMAGE : REF_READ;
		finish(im, it, true);
		return;
	}
	/* held bounds n_pending: the array never grows past it. */
	im->pending[im->n_pending++] = it;
	writer_kick(im);
}

/* ---- the sources' photos, one at a time ---- */

/*
 * Takes one photo found by a source: `data` (owned, may be NULL) or the
 * file `path` for mailbox `email` ("" when the source could not tell:
 * `why` says why, and it is refused). Waits, running the loop, while
 * the workers hold all they may.
 */
static void
import_one(struct import *im, const char *email, const char *source,
    const char *path, char *data, size_t len, const char *why)
{
	struct item *it = xcalloc(1, sizeof(*it));
	struct mbx *m;

	it->im = im;
	it->source = xstrdup(source);
	str_copy(it->email, email, sizeof(it->email));
	str_lower(it->email);
	if (why != NULL) {
		it->out = OUT_REFUSED;
		str_copy(it->why, why, sizeof(it->why));
		free(data);
		finish(im, it, false);
		return;
	}
	if ((m = mbx_find(im, it->email)) == NULL || m->disabled) {
		it->out = m ? OUT_DISABLED : OUT_NO_MAILBOX;
		free(data);
		finish(im, it, false);
		return;
	}
	if (m->first != NULL) {
		it->out = OUT_REFUSED;
		snprintf(it->why, sizeof(it->why), "a second photo for %s "
		    "(the first: %s)", m->email, m->first);
		free(data);
		finish(im, it, false);
		return;
	}
	m->first = xstrdup(source);
	it->has_photo = m->has_photo;
	it->path = path ? xstrdup(path) : NULL;
	it->data = data;
	it->len = len;
	while (im->held >= im->max_held || (im->held > 0 &&
	    im->held_bytes + len > IMPORT_HELD_BYTES))
		event_base_loop(im->base, EVLOOP_ONCE);
	im->held++;
	it->data_held = data ? len : 0;
	im->held_bytes += it->data_held;
	work_submit(im->render, render_run, render_done, it);
}

/* The image files' extensions: what the pipeline reads. */
static const char *const image_exts[] = {
	".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".gif",
};

/* The address of a file named ADDRESS.EXT, or false. */
static bool
address_of_name(const char *name, char *email, size_t n)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	if (dot == NULL || (size_t)(dot - name) >= n)
		return false;
	for (i = 0; i < sizeof(image_exts) / sizeof(*image_exts); i++)
		if (strcasecmp(dot, image_exts[i]) == 0)
			break;
	if (i == sizeof(image_exts) / sizeof(*image_exts))
		return false;
	memcpy(email, name, (size_t)(dot - name));
	email[dot - name] = '\0';
	return email_valid(email);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of `folder` (not hidden ones), in name order. */
static ps_err
from_folder(struct import *im, const char *folder)
{
	char **names = NULL, *path, email[256];
	size_t n = 0, i;
	struct dirent *d;
	struct stat sb;
	DIR *dir;

	if ((dir = opendir(folder)) == NULL)
		return ps_errf(PS_EIO, "cannot read the folder %s: %s", folder,
		    strerror(errno));
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		path = file_join(folder, d->d_name);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			if ((n & (n - 1)) == 0)
				names = xrealloc(names, (n ? n * 2 : 64) *
				    sizeof(*names));
			names[n++] = xstrdup(d->d_name);
		}
		free(path);
	}
	closedir(dir);
	if (n > 1)	/* an empty folder has no array: qsort takes none */
		qsort(names, n, sizeof(*names), name_cmp);
	im->total = n;
	for (i = 0; i < n; i++) {
		path = file_join(folder, names[i]);
		if (address_of_name(names[i], email, sizeof(email)))
			import_one(im, email, path, path, NULL, 0, NULL);
		else
			import_one(im, "", path, NULL, NULL, 0, "the file's "
			    "name is not ADDRESS.jpg (or .jpeg, .png, .webp, "
			    ".heic, .heif, .gif)");
		free(path);
		free(names[i]);
	}
	free(names);
	return PS_OK;
}

/* ---- CSV ---- */

struct csv_row {
	char	*field[2];
	size_t	 n;		/* fields in the row */
	size_t	 line;
};

/*
 * Reads the next record of RFC 4180 CSV at *p (fields separated by
 * commas, optionally in double quotes with "" for a quote; CRLF or LF
 * line ends). Keeps the first two fields, counts the others. *line
 * follows the lines. False at the end; PS_EINVAL in *err for an
 * unterminated quote.
 */
static bool
csv_next(const char **p, const char *end, size_t *line, struct csv_row *r,
    ps_err *err)
{
	struct buf f;
	const char *s = *p;
	bool quoted, more = true;

	memset(r, 0, sizeof(*r));
	*err = PS_OK;
	if (s >= end)
		return false;
	r->line = *line;
	buf_init(&f, IMPORT_CSV_MAX);
	while (more) {
		buf_reset(&f);
		quoted = s < end && *s == '"';
		if (quoted) {
			for (s++;; s++) {
				if (s >= end) {
					*err = ps_errf(PS_EINVAL, "line %zu: a "
					    "quoted field is not closed",
					    r->line);
					buf_cleanup(&f);
					*p = end;
					return true;
				}
				if (*s == '"' && s + 1 < end && s[1] == '"')
					s++;
				else if (*s == '"') {
					s++;
					break;
				} else if (*s == '\n')
					(*line)++;
				(void)buf_add(&f, s, 1);
			}
		}
		while (s < end && *s != ',' && *s != '\n') {
			if (*s != '\r')
				(void)buf_add(&f, s, 1);
			s++;
		}
		if (r->n < 2)
			r->field[r->n] = xstrdup(buf_str(&f));
		r->n++;
		more = s < end && *s == ',';
		if (s < end)
			s++;
	}
	(*line)++;
	buf_cleanup(&f);
	*p = s;
	return true;
}

static void
csv_row_free(struct csv_row *r)
{
	free(r->field[0]);
	free(r->field[1]);
}

static char *
trimmed(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* The rows of `csv`: address,file; a first row that has no address is
 * a header. Relative files are relative to the CSV's folder. */
static ps_err
from_csv(struct import *im, const char *csv)
{
	char *text = NULL, *base, *slash, *path, *email, *file, src[600];
	const char *p, *end;
	struct csv_row *rows = NULL, r;
	size_t n = 0, i, line = 1;
	ps_err rc, err;

	if ((rc = file_read(csv, IMPORT_CSV_MAX, &text, &i)) != PS_OK)
		return rc;
	p = text;
	end = text + i;
	if (i >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;		/* a byte-order mark, as spreadsheets write */
	while (csv_next(&p, end, &line, &r, &err)) {
		if (err != PS_OK) {
			csv_row_free(&r);
			goto bad;
		}
		if (r.n == 1 && trimmed(r.field[0])[0] == '\0') {
			csv_row_free(&r);	/* an empty line */
			continue;
		}
		if (n == 0 && !email_valid(trimmed(r.field[0])) && r.n == 2 &&
		    strchr(r.field[0], '@') == NULL) {
			csv_row_free(&r);	/* the header */
			continue;
		}
		if ((n & (n - 1)) == 0)
			rows = xrealloc(rows, (n ? n * 2 : 64) *
			    sizeof(*rows));
		rows[n++] = r;
	}
	free(text);
	text = NULL;
	base = xstrdup(csv);
	if ((slash = strrchr(base, '/')) != NULL)
		slash[1] = '\0';
	else
		base[0] = '\0';
	im->total = n;
	for (i = 0; i < n; i++) {
		email = trimmed(rows[i].field[0]);
		file = rows[i].n > 1 ? trimmed(rows[i].field[1]) : "";
		path = file[0] == '/' || base[0] == '\0' ? xstrdup(file) :
		    xasprintf("%s%s", base, file);
		snprintf(src, sizeof(src), "%s:%zu (%s)", csv, rows[i].line,
		    file);
		if (rows[i].n != 2)
			import_one(im, email, src, NULL, NULL, 0, "a row must "
			    "be ADDRESS,FILE");
		else if (!email_valid(email))
			import_one(im, "", src, NULL, NULL, 0, "the first "
			    "field is not an address");
		else if (file[0] == '\0')
			import_one(im, email, src, NULL, NULL, 0, "no file");
		else
			import_one(im, email, src, path, NULL, 0, NULL);
		free(path);
		csv_row_free(&rows[i]);
	}
	free(rows);
	free(base);
	return PS_OK;
bad:
	for (i = 0; i < n; i++)
		csv_row_free(&rows[i]);
	free(rows);
	free(text);
	return ps_errf(PS_EINVAL, "%s: %s", csv, ps_errmsg());
}

/* ---- the directory ---- */

static ps_err
directory_photo(void *arg, const char *dn, const char *mail,
    const char *attr, const void *data, size_t len)
{
	struct import *im = arg;
	char *source = xasprintf("%s (%s)", dn, attr), *copy;

	if (mail[0] == '\0') {
		import_one(im, "", source, NULL, NULL, 0, "the entry has no "
		    "mail address");
	} else if (len > IMAGE_MAX_BYTES) {
		/* Refused here, not copied: the limit of every upload. */
		char why[128];

		snprintf(why, sizeof(why), "the photo has %zu bytes; the "
		    "limit is %u", len, IMAGE_MAX_BYTES);
		import_one(im, mail, source, NULL, NULL, 0, why);
	} else {
		copy = xmalloc(len ? len : 1);
		memcpy(copy, data, len);
		import_one(im, mail, source, NULL, copy, len, NULL);
	}
	free(source);
	return PS_OK;
}

static ps_err
from_directory(struct import *im, struct dir_settings *set)
{
	struct dir_config cfg;

	if (set->ldap == NULL || set->ldap[0] == '\0')
		return ps_errf(PS_EINVAL, "no directory is set (master "
		    "directory set --ldap URL --base DN ...)");
	dir_settings_config(set, &cfg);
	return dir_photos(&cfg, directory_photo, im);
}

/* ---- the command ---- */

int
master_photo_import(struct master_state *ms, const struct import_opts *o)
{
	struct dir_settings set = { 0 };
	struct import im = { 0 };
	const char *sep;
	size_t skipped, i;
	int64_t ms_taken;
	ps_err rc = PS_OK;
	int ret = 1;
	long cpus;

	im.ms = ms;
	im.dry_run = o->dry_run;
	im.from = o->folder ? o->folder : o->csv ? o->csv : "the directory";
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	im.threads = o->threads > 0 ? o->threads : cpus > 0 ? (int)cpus : 1;
	im.max_held = (size_t)im.threads * IMPORT_HELD_PER_THREAD +
	    IMPORT_BATCH_MAX;
	im.pending = xcalloc(im.max_held, sizeof(*im.pending));
	im.tty = isatty(STDERR_FILENO);
	if (store_mailbox_directory_each(ms->store, mbx_add, &im) != PS_OK ||
	    (o->from_directory && dir_settings_load(ms->store, &set) !=
	    PS_OK)) {
		fprintf(stderr, "photosync master: photo import: %s\n",
		    ps_errmsg());
		goto out;
	}
	qsort(im.mbx, im.n_mbx, sizeof(*im.mbx), mbx_cmp);
	if ((im.base = event_base_new()) == NULL ||
	    (im.render = work_pool_new(im.base, im.threads)) == NULL ||
	    (im.writer = work_pool_new(im.base, 1)) == NULL) {
		fprintf(stderr, "photosync master: photo import: cannot start "
		    "its threads: %s\n", ps_errmsg());
		goto out;
	}
	im.started_ms = im.progress_ms = time_mono_ms();
	if (o->folder)
		rc = from_folder(&im, o->folder);
	else if (o->csv)
		rc = from_csv(&im, o->csv);
	else
		rc = from_directory(&im, &set);
	if (rc != PS_OK)
		fprintf(stderr, "photosync master: photo import: %s\n",
		    ps_errmsg());
	/* What the source gave is finished either way. */
	while (im.held > 0)
		event_base_loop(im.base, EVLOOP_ONCE);
	progress(&im, true);
	ms_taken = time_mono_ms() - im.started_ms;
	skipped = im.counts[OUT_UNCHANGED] + im.counts[OUT_NO_MAILBOX] +
	    im.counts[OUT_DISABLED];
	printf("photo import from %s%s\n"
	    "  %-12s %zu\n"
	    "  %-12s %zu (unchanged %zu, no mailbox %zu, disabled mailbox "
	    "%zu)\n"
	    "  %-12s %zu",
	    im.from, im.dry_run ? " (dry run: nothing stored)" : "",
	    im.dry_run ? "would store" : "stored", im.counts[OUT_STORED],
	    "skipped", skipped, im.counts[OUT_UNCHANGED],
	    im.counts[OUT_NO_MAILBOX], im.counts[OUT_DISABLED],
	    "refused", im.counts[OUT_REFUSED]);
	for (i = 0, sep = " ("; i < REF_COUNT; i++) {
		if (im.refusals[i] == 0)
			continue;
		printf("%s%s %zu", sep, refusal_names[i], im.refusals[i]);
		sep = ", ";
	}
	printf("%s\n", im.counts[OUT_REFUSED] ? ")" : "");
	if (im.counts[OUT_FAILED])
		printf("  %-12s %zu (the store failed)\n", "not stored",
		    im.counts[OUT_FAILED]);
	printf("  %zu photos in %.1f s (%.1f a second) on %d threads\n",
	    im.finished, ms_taken / 1000.0, ms_taken > 0 ? im.finished *
	    1000.0 / ms_taken : 0.0, im.threads);
	if (rc != PS_OK)
		printf("  stopped early: %s\n", "the source failed (above); "
		    "what is counted here is done");
	log_info(NULL, "photo.imported", "from=%s dry_run=%d stored=%zu "
	    "unchanged=%zu no_mailbox=%zu disabled=%zu refused=%zu "
	    "failed=%zu ms=%lld", log_q(im.from), im.dry_run,
	    im.counts[OUT_STORED], im.counts[OUT_UNCHANGED],
	    im.counts[OUT_NO_MAILBOX], im.counts[OUT_DISABLED],
	    im.counts[OUT_REFUSED], im.counts[OUT_FAILED],
	    (long long)ms_taken);
	ret = rc != PS_OK || im.counts[OUT_FAILED] ? IMPORT_EXIT_FAILED :
	    im.counts[OUT_REFUSED] ? IMPORT_EXIT_REFUSED : 0;
out:
	work_pool_free(im.render);
	work_pool_free(im.writer);
	if (im.base)
		event_base_free(im.base);
	for (skipped = 0; skipped < im.n_mbx; skipped++)
		free(im.mbx[skipped].first);
	free(im.mbx);
	free(im.pending);
	dir_settings_cleanup(&set);
	fflush(stdout);
	return ret;
}
