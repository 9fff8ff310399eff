/*
 * Fuzz target: the JPEG reader of src/jpeg on an uploaded file: the
 * header probe (jpeg_probe), the scan counter (jpeg_scan_count), and the
 * fast decoder with its EXIF orientation and ICC checks (jpeg_decode,
 * small limits). Whatever arrives, nothing is read outside the input; a
 * count within its limit is returned; a decoded image has the probe's
 * size, one or three planes within it, and its luma encoded again
 * (jpeg_encode) is a bare JPEG of the same size.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jpeg/jpeg.h"

#define MAX_SCANS	100
#define MAX_PIXELS	(1u << 20)

static int64_t
frozen_ms(void)
{
	return 0;	/* the time budget never runs out: no timing here */
}

static void
reencode(const struct jpeg_planes *p)
{
	const struct jpeg_plane *y = &p->plane[0];
	struct jpeg_planes im;
	struct jpeg_info info;
	unsigned char *out = NULL;
	size_t len = 0;
	int i, r, c;

	jpeg_planes_init(&im, y->w, y->h);
	for (i = 0; i < JPEG_PLANES; i++) {
		struct jpeg_plane *q = &im.plane[i];

		for (r = 0; r < q->h; r++)
			for (c = 0; c < q->w; c++)
				q->data[(size_t)r * (size_t)q->stride +
				    (size_t)c] = i == 0 ? y->data[(size_t)r *
				    (size_t)y->stride + (size_t)c] : 128;
	}
	if (jpeg_encode(&im, 85, &out, &len) != PS_OK)
		abort();
	if (jpeg_probe(out, len, &info) != PS_OK || info.w != y->w ||
	    info.h != y->h || !info.bare)
		abort();
	free(out);
	jpeg_planes_cleanup(&im);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jpeg_budget budget = { MAX_SCANS, 1000, 0, frozen_ms };
	struct jpeg_planes p;
	struct jpeg_info info;
	unsigned count = 0;
	bool probed;
	int i;

	probed = jpeg_probe(data, size, &info) == PS_OK;
	if (probed && (info.w < 0 || info.h < 0))
		abort();
	if (jpeg_scan_count(data, size, MAX_SCANS, &count) == PS_OK &&
	    count > MAX_SCANS)
		abort();
	if (jpeg_decode(data, size, 48, MAX_PIXELS, &budget, &p) != PS_OK) {
		if (p.mem != NULL || p.n != 0)
			abort();
		return 0;
	}
	if (!probed || p.full_w != info.w || p.full_h != info.h ||
	    (p.n != 1 && p.n != 3) || p.w <= 0 || p.h <= 0 ||
	    p.w > p.full_w || p.h > p.full_h ||
	    (uint64_t)p.full_w * (uint64_t)p.full_h > MAX_PIXELS)
		abort();
	for (i = 0; i < p.n; i++)
		if (p.plane[i].w <= 0 || p.plane[i].h <= 0 ||
		    p.plane[i].w > p.w || p.plane[i].h > p.h ||
		    p.plane[i].stride < (size_t)p.plane[i].w)
			abort();
	if (p.plane[0].w == p.w && p.plane[0].h == p.h)
		reencode(&p);
	jpeg_planes_cleanup(&p);
	return 0;
}
