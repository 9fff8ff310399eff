/*
 * A photo changed by its owner from a client: EWS SetUserPhoto and the
 * Graph photo API (PUT/PATCH .../photo/$value, DELETE .../photo). The
 * same pipeline as the change-photo page's upload: the image is rendered
 * like `photo set` (master_photo_render, the default decode budgets) on
 * the page's render workers, under the same cap of renders at once, then
 * stored on the store's write lane in one transaction that queues the
 * change notices to partners; the server's photo index drops the
 * mailbox's keys and the notifier is woken. Nothing here waits on the
 * event loop; a refusal changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "dirphoto.h"
#include "master_int.h"
#include "metrics/metrics.h"
#include "store/pool.h"
#include "work/work.h"

#define MB	(1024u * 1024u)

static void
change_finish(struct master_change *ch, enum master_change_result result)
{
	ch->result = result;
	ch->done(ch, ch->arg);
}

static void
change_refused(struct master_change *ch, enum master_change_result result,
    const char *reason)
{
	log_info(ch->req_id, "photo.client_refused", "email=%s via=%s "
	    "reason=%s", log_q(ch->owner), ch->via, log_q(reason));
	if (result == MASTER_CHANGE_BUSY)
		metrics_add("photosync_busy_total", NULL, 1);
	change_finish(ch, result);
}

/* The store's failure: down (503 with Retry-After) or failed (500). */
static void
change_store_failed(struct master_change *ch, const char *what)
{
	log_warn(ch->req_id, "serve.store_failed", "what=%s error=%s", what,
	    log_q(ch->message));
	change_finish(ch, store_pool_up(ch->srv->pool) ?
	    MASTER_CHANGE_STORE_FAILED : MASTER_CHANGE_STORE_DOWN);
}

/*
 * A change this server wrote: its keys go at once, its notices and its
 * directory write out.
 */
static void
change_written(struct master_change *ch)
{
	master_cache_drop(ch->srv->cache, ch->owner);
	if (ch->srv->notifier)
		notifier_wake(ch->srv->notifier);
	dirphoto_writer_wake(ch->srv->dirphoto);
}

/* ---- setting ---- */

static void
set_write_run(struct store *st, void *arg)
{
	struct master_change *ch = arg;

	ch->rc = store_photo_put(st, ch->owner, ch->etag, ch->photo.sizes,
	    ch->photo.n);
	if (ch->rc != PS_OK)
		str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
}

static void
set_write_done(void *arg)
{
	struct master_change *ch = arg;

	if (ch->rc != PS_OK) {
		change_store_failed(ch, "photo");
		return;
	}
	change_written(ch);
	log_info(ch->req_id, "photo.client_set", "email=%s via=%s etag=%s "
	    "bytes=%zu sizes=%zu source_side=%d", log_q(ch->owner), ch->via,
	    ch->etag, ch->image_len, ch->photo.n, ch->photo.src_side);
	change_finish(ch, MASTER_CHANGE_OK);
}

/*
 * On a render worker: the SOAP request read (it may be tens of MB, so
 * never on the loop), then the image rendered.
 */
static void
set_render_run(void *arg)
{
	struct master_change *ch = arg;
	const void *data = ch->body;
	size_t len = ch->len;
	ps_err rc;

	if (ch->soap) {
		rc = ews_parse_set_photo(ch->body, ch->len, ch->max_image,
		    &ch->set);
		if (rc != PS_OK) {
			ch->result = rc == PS_ENOTFOUND ?
			    MASTER_CHANGE_OTHER_OPERATION : rc == PS_ELIMIT ?
			    MASTER_CHANGE_TOO_LARGE : MASTER_CHANGE_MALFORMED;
			str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
			ch->image_len = ch->set.len;
			return;
		}
		str_copy(ch->email, ch->set.email, sizeof(ch->email));
		str_lower(ch->email);
		/* Only the owner's own photo: nothing else is decoded. */
		if (strcmp(ch->email, ch->owner) != 0) {
			ch->result = MASTER_CHANGE_NOT_OWNER;
			return;
		}
		data = ch->set.content;
		len = ch->set.len;
	}
	ch->image_len = len;
	if (len == 0) {
		ch->result = MASTER_CHANGE_MALFORMED;
		str_copy(ch->message, "the request carries no image",
		    sizeof(ch->message));
		return;
	}
	if (len > ch->max_image) {
		ch->result = MASTER_CHANGE_TOO_LARGE;
		return;
	}
	if (master_photo_render(data, len, &ch->photo) != PS_OK) {
		ch->result = MASTER_CHANGE_BAD_IMAGE;
		str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
		return;
	}
	ch->result = MASTER_CHANGE_OK;
}

static void
set_render_done(void *arg)
{
	struct master_change *ch = arg;
	size_t tenths;

	switch (ch->result) {
	case MASTER_CHANGE_OK:
		break;
	case MASTER_CHANGE_TOO_LARGE:
		/* In tenths of a MB, rounded up, as the page says it. */
		tenths = (ch->image_len * 10 + MB - 1) / MB;
		if (ch->image_len > 0)
			snprintf(ch->message, sizeof(ch->message), "the photo "
			    "is %zu.%zu MB; a photo can be at most %zu MB",
			    tenths / 10, tenths % 10, ch->max_image / MB);
		else
			snprintf(ch->message, sizeof(ch->message), "the photo "
			    "is larger than %zu MB, the most a photo can be",
			    ch->max_image / MB);
		change_refused(ch, ch->result, "larger than the limit");
		return;
	case MASTER_CHANGE_NOT_OWNER:
		snprintf(ch->message, sizeof(ch->message), "only the "
		    "mailbox's owner can change its photo; signed in as %s",
		    ch->owner);
		change_refused(ch, ch->result, "another mailbox");
		return;
	case MASTER_CHANGE_OTHER_OPERATION:
		/* Not a photo change at all: the caller answers it. */
		change_finish(ch, ch->result);
		return;
	default:
		change_refused(ch, ch->result, ch->message);
		return;
	}
	master_etag_new(ch->etag);
	if (store_pool_write(ch->srv->pool, set_write_run, set_write_done,
	    ch) != PS_OK) {
		str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
		change_refused(ch, MASTER_CHANGE_BUSY, "store busy");
	}
}

void
master_change_set(struct master_change *ch)
{
	ch->result = MASTER_CHANGE_OK;
	if (work_try_submit(ecp_renderers(ch->srv->ecp), set_render_run,
	    set_render_done, ch) != PS_OK) {
		/* The page's cap of renders at once: refused, not queued. */
		str_copy(ch->message, "the server is busy with other photos: "
		    "try again in a moment", sizeof(ch->message));
		change_refused(ch, MASTER_CHANGE_BUSY, "busy");
	}
}

/* ---- removing ---- */

static void
remove_run(struct store *st, void *arg)
{
	struct master_change *ch = arg;

	ch->rc = store_photo_remove(st, ch->owner);
	if (ch->rc != PS_OK)
		str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
}

static void
remove_done(void *arg)
{
	struct master_change *ch = arg;

	if (ch->rc != PS_OK && ch->rc != PS_ENOTFOUND) {
		change_store_failed(ch, "photo");
		return;
	}
	if (ch->rc == PS_OK)
		change_written(ch);
	log_info(ch->req_id, "photo.client_removed", "email=%s via=%s "
	    "had_photo=%s", log_q(ch->owner), ch->via, ch->rc == PS_OK ?
	    "yes" : "no");
	change_finish(ch, ch->rc == PS_OK ? MASTER_CHANGE_OK :
	    MASTER_CHANGE_NO_PHOTO);
}

void
master_change_remove(struct master_change *ch)
{
	ch->result = MASTER_CHANGE_OK;
	if (store_pool_write(ch->srv->pool, remove_run, remove_done, ch) !=
	    PS_OK) {
		str_copy(ch->message, ps_errmsg(), sizeof(ch->message));
		change_refused(ch, MASTER_CHANGE_BUSY, "store busy");
	}
}

void
master_change_cleanup(struct master_change *ch)
{
	master_photo_free(&ch->photo);
	ews_set_photo_request_cleanup(&ch->set);
}
