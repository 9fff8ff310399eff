/*
 * Setting a mailbox's photo: one decode, the nine high-resolution sizes,
 * one atomic replace with a new ETag.
 */
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "exchange/ews.h"
#include "image/image.h"
#include "master_int.h"

ps_err
master_photo_set(struct store *st, const char *email, const void *data,
    size_t len, char *etag)
{
	struct image_jpeg out[EWS_SIZE_COUNT];
	struct store_photo_size sizes[EWS_SIZE_COUNT];
	unsigned char rnd[16];
	size_t i, n = 0;
	int src_side = 0;
	ps_err rc;

	memset(out, 0, sizeof(out));
	if ((rc = image_render(data, len, &image_default_limits, ews_sizes,
	    EWS_SIZE_COUNT, out, &src_side)) != PS_OK)
		return rc;
	/*
	 * Keep each size code rendered at its own side, and the first one
	 * that the source was too small for (rendered at the source's side);
	 * larger codes are answered with that one, never upscaled.
	 */
	for (i = 0; i < EWS_SIZE_COUNT; i++) {
		sizes[n].code = (int)i;
		sizes[n].side = out[i].side;
		sizes[n].data = out[i].data;
		sizes[n].len = out[i].len;
		n++;
		if (out[i].side < ews_sizes[i])
			break;
	}
	rand_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), etag);
	rc = store_photo_put(st, email, etag, sizes, n);
	if (rc == PS_OK)
		log_info(NULL, "photo.stored", "email=%s etag=%s sizes=%zu "
		    "source_side=%d", log_q(email), etag, n, src_side);
	for (i = 0; i < EWS_SIZE_COUNT; i++)
		image_jpeg_free(&out[i]);
	return rc;
}
