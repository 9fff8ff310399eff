/*
 * Setting a mailbox's photo: one decode, the nine high-resolution sizes,
 * one atomic replace with a new ETag. The rendering is shared by the
 * admin command (photo set) and the change-photo page (ecp.c), which
 * runs it on a worker thread.
 */
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "master_int.h"

ps_err
master_photo_render(const void *data, size_t len, struct master_photo *mp)
{
	size_t i;
	ps_err rc;

	memset(mp, 0, sizeof(*mp));
	if ((rc = image_render(data, len, &image_default_limits, ews_sizes,
	    EWS_SIZE_COUNT, mp->jpeg, &mp->src_side)) != PS_OK)
		return rc;
	/*
	 * Keep each size code rendered at its own side, and the first one
	 * that the source was too small for (rendered at the source's side);
	 * larger codes are answered with that one, never upscaled.
	 */
	for (i = 0; i < EWS_SIZE_COUNT; i++) {
		mp->sizes[mp->n].code = (int)i;
		mp->sizes[mp->n].side = mp->jpeg[i].side;
		mp->sizes[mp->n].data = mp->jpeg[i].data;
		mp->sizes[mp->n].len = mp->jpeg[i].len;
		mp->n++;
		if (mp->jpeg[i].side < ews_sizes[i])
			break;
	}
	return PS_OK;
}

void
master_photo_free(struct master_photo *mp)
{
	size_t i;

	for (i = 0; i < EWS_SIZE_COUNT; i++)
		image_jpeg_free(&mp->jpeg[i]);
	memset(mp, 0, sizeof(*mp));
}

void
master_etag_new(char *etag)
{
	unsigned char rnd[16];

	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), etag);
}

ps_err
master_photo_set(struct store *st, const char *email, const void *data,
    size_t len, char *etag)
{
	struct master_photo mp;
	ps_err rc;

	if ((rc = master_photo_render(data, len, &mp)) != PS_OK)
		return rc;
	master_etag_new(etag);
	rc = store_photo_put(st, email, etag, mp.sizes, mp.n);
	if (rc == PS_OK)
		log_info(NULL, "photo.stored", "email=%s etag=%s sizes=%zu "
		    "source_side=%d", log_q(email), etag, mp.n, mp.src_side);
	master_photo_free(&mp);
	return rc;
}
