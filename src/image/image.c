/*
 * The image pipeline: the only user of libvips (the interface is image.h).
 *
 * An input is checked in four steps before any pixel is decoded: its size
 * in bytes, a JPEG's count of scans (each one is a pass over the whole
 * image), its format (the loader libvips picks must be one of the five
 * accepted ones) and the dimensions in its header (decompression bombs).
 * Only then is it decoded, once, within a time budget that libjpeg's
 * progress monitor or libvips' evaluation signal checks as it goes (a
 * JPEG scaled in the decoder towards the largest side wanted), cropped
 * to its centred square, brought to 8-bit
 * sRGB (through its ICC profile if it has one) with any alpha flattened
 * onto white, turned upright by its EXIF orientation and held in memory.
 * Every requested side is reduced from that square (or from a larger
 * reduction of it) and written as a baseline JPEG with all metadata
 * stripped (no EXIF, GPS, XMP or ICC profile).
 * Animated GIF and WebP give their first frame, the only one decoded.
 *
 * Generated pictures (demo photos, the placeholder, identicons) are drawn
 * on a memory canvas with filled shapes and written as the same JPEG.
 *
 * Output bytes come from xmalloc(): release them with image_jpeg_free()
 * (or free()). Thread-safe: libvips images never outlive a call, and the
 * only shared state is the one-time initialisation.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>
#include <vips/vector.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/str.h"
#include "common/xalloc.h"
#include "image/image.h"
#include "jpeg/jpeg.h"

#define ACCEPTED	"JPEG, PNG, WebP, HEIF or GIF"
#define RENDER_Q	85	/* thumbnails */
#define GENERATE_Q	90	/* demo high-resolution photos */
#define GENERATE_MIN	16	/* smallest generated side */

const struct image_limits image_default_limits = {
	.max_bytes = IMAGE_MAX_BYTES,
	.max_pixels = IMAGE_MAX_PIXELS,
	.max_side = IMAGE_MAX_SIDE,
	.max_scans = IMAGE_MAX_SCANS,
	.max_decode_ms = IMAGE_MAX_DECODE_MS,
	.now_ms = NULL,
};

/* All the libvips buffer loaders share this signature. */
typedef int (*image_load_fn)(void *, size_t, VipsImage **, ...);

/*
 * The accepted formats. `type` is what vips_foreign_find_load_buffer()
 * answers for a buffer in that format; `family` is the loader class whose
 * subtree stays unblocked. HEIF covers AVIF too (same container, same
 * loader). A `paged` loader is told to load the first page (frame) only.
 */
static const struct image_loader {
	const char	*type;
	const char	*family;
	image_load_fn	 load;
	bool		 paged;
} image_loaders[] = {
	{ "VipsForeignLoadJpegBuffer", "VipsForeignLoadJpeg",
	    vips_jpegload_buffer, false },
	{ "VipsForeignLoadPngBuffer", "VipsForeignLoadPng",
	    vips_pngload_buffer, false },
	{ "VipsForeignLoadWebpBuffer", "VipsForeignLoadWebp",
	    vips_webpload_buffer, true },
	{ "VipsForeignLoadHeifBuffer", "VipsForeignLoadHeif",
	    vips_heifload_buffer, true },
	{ "VipsForeignLoadNsgifBuffer", "VipsForeignLoadNsgif",
	    vips_gifload_buffer, true },
};
#define N_LOADERS	(sizeof(image_loaders) / sizeof(image_loaders[0]))

/* ------------------------------------------------------------------ */
/* Initialisation                                                      */
/* ------------------------------------------------------------------ */

static pthread_once_t image_once = PTHREAD_ONCE_INIT;
static ps_err image_init_rc = PS_EIMAGE;
/* The first non-NULL argv0 seen; read by the once routine. */
static _Atomic(const char *) image_argv0;

/* libvips warnings are about input we refuse or repair; keep them quiet. */
static void
image_log_quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg,
    gpointer arg)
{
	(void)domain;
	(void)level;
	(void)msg;
	(void)arg;
}

static void
image_init_once(void)
{
	const char *argv0 = atomic_load(&image_argv0);
	size_t i;

	if (vips_init(argv0 != NULL ? argv0 : "photosync") != 0) {
		image_init_rc = ps_errf(PS_EIMAGE,
		    "the image library (libvips) could not start");
		return;
	}
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
	    G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG, image_log_quiet, NULL);

	/* We cache the JPEGs ourselves; the operation cache only holds RAM. */
	vips_cache_set_max(0);

	/*
	 * No orc (runtime-compiled SIMD). With orc 0.4.33 (Debian 12),
	 * vips_reduce() calls building or freeing orc programs on several
	 * threads at once crash in orc_code_allocate_codemem() and
	 * orc_code_free() (seen under ASan in test_image's thread test).
	 * The plain C paths cost about 15% on the nine HR sides.
	 */
	vips_vector_set_enabled(FALSE);

	/*
	 * Allow-list the loaders: block the untrusted ones (ImageMagick,
	 * matlab, FITS, ...) and then every loader except the five
	 * accepted families. image_render() also checks the loader name,
	 * so this is a second line of defence.
	 */
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (i = 0; i < N_LOADERS; i++)
		vips_operation_block_set(image_loaders[i].family, FALSE);
	image_init_rc = PS_OK;
}

ps_err
image_init(const char *argv0)
{
	const char *none = NULL;

	if (argv0 != NULL)
		atomic_compare_exchange_strong(&image_argv0, &none, argv0);
	pthread_once(&image_once, image_init_once);
	if (image_init_rc != PS_OK)
		return ps_errf(image_init_rc,
		    "the image library (libvips) could not start");
	return PS_OK;
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

/*
 * Names a few formats we refuse, for a better message than "not an
 * image". Only used once libvips has said the format is not accepted.
 */
static const char *
image_sniff(const unsigned char *p, size_t len)
{
	size_t head = len < 4096 ? len : 4096;

	if (len >= 4 && (memcmp(p, "II*\0", 4) == 0 ||
	    memcmp(p, "MM\0*", 4) == 0))
		return "a TIFF image";
	if (len >= 5 && memcmp(p, "%PDF-", 5) == 0)
		return "a PDF document";
	if (len >= 4 && memcmp(p, "%!PS", 4) == 0)
		return "a PostScript document";
	if (len >= 4 && memcmp(p, "8BPS", 4) == 0)
		return "a Photoshop document";
	/* "BM", then a DIB header of a known size at offset 14. */
	if (len >= 26 && memcmp(p, "BM", 2) == 0 && p[15] == 0 &&
	    p[16] == 0 && p[17] == 0 && (p[14] == 12 || p[14] == 40 ||
	    p[14] == 52 || p[14] == 56 || p[14] == 108 || p[14] == 124))
		return "a BMP image";
	if ((len >= 12 && memcmp(p, "\0\0\0\x0cjP  ", 8) == 0) ||
	    (len >= 4 && memcmp(p, "\xff\x4f\xff\x51", 4) == 0))
		return "a JPEG 2000 image";
	if ((len >= 12 && memcmp(p, "\0\0\0\x0cJXL ", 8) == 0) ||
	    (len >= 2 && memcmp(p, "\xff\x0a", 2) == 0))
		return "a JPEG XL image";
	if (memmem(p, head, "<svg", 4) != NULL)
		return "an SVG drawing";
	return NULL;
}

/*
 * The accepted loader for `in`, or NULL with the reason recorded (the
 * code is PS_EIMAGE).
 */
static const struct image_loader *
image_identify(const void *in, size_t len)
{
	const char *type, *what;
	size_t i;

	type = vips_foreign_find_load_buffer(in, len);
	if (type != NULL)
		for (i = 0; i < N_LOADERS; i++)
			if (strcmp(type, image_loaders[i].type) == 0)
				return &image_loaders[i];
	what = image_sniff(in, len);
	if (what != NULL)
		ps_errf(PS_EIMAGE, "the file is %s, which is not accepted; "
		    "send a JPEG, PNG, WebP, HEIF or GIF image", what);
	else
		ps_errf(PS_EIMAGE, "the file is not an image (" ACCEPTED ")");
	return NULL;
}

/* Refuses dimensions over the limits, from the header alone. */
static ps_err
image_check_header(const VipsImage *hdr, const struct image_limits *lim)
{
	int w = hdr->Xsize, h = hdr->Ysize;
	uint64_t px = (uint64_t)w * (uint64_t)h;

	if (w < 1 || h < 1)
		return ps_errf(PS_EIMAGE, "the image is truncated or corrupt");
	if (px > lim->max_pixels)
		return ps_errf(PS_ELIMIT, "the image has %" PRIu64 " pixels "
		    "(%dx%d); the limit is %" PRIu64, px, w, h,
		    lim->max_pixels);
	if (w > lim->max_side || h > lim->max_side)
		return ps_errf(PS_ELIMIT, "the image is %dx%d pixels; the "
		    "limit is %d pixels on each side", w, h, lim->max_side);
	return PS_OK;
}

/*
 * Opens `in` with the loader `ld`: the header only, since libvips decodes
 * lazily. A JPEG can be scaled by `shrink` (1, 2, 4 or 8) in the decoder.
 * Sequential access: pixels stream through the pipeline once, and a large
 * image never goes to a temporary file as random access would.
 */
static ps_err
image_open(const struct image_loader *ld, const void *in, size_t len,
    int shrink, VipsImage **imp)
{
	int r;

	/* Truncated data is an error, not a grey band at the bottom. */
	if (shrink > 1)
		r = ld->load((void *)in, len, imp, "shrink", shrink,
		    "access", VIPS_ACCESS_SEQUENTIAL,
		    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
	else if (ld->paged)
		r = ld->load((void *)in, len, imp, "page", 0, "n", 1,
		    "access", VIPS_ACCESS_SEQUENTIAL,
		    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
	else
		r = ld->load((void *)in, len, imp,
		    "access", VIPS_ACCESS_SEQUENTIAL,
		    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
	if (r != 0) {
		*imp = NULL;
		return ps_errf(PS_EIMAGE, "the image is truncated or corrupt");
	}
	return PS_OK;
}

static uint32_t
image_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/*
 * True if the ICC profile `p` describes itself as sRGB: an RGB profile
 * whose 'desc' tag names sRGB (ASCII in v2, UTF-16BE in v4), as camera
 * and editor profiles do. Such images are already what we want, and
 * building an lcms transform for nothing costs about 4 ms a render.
 */
static bool
image_icc_is_srgb(const unsigned char *p, size_t n)
{
	uint32_t count, off, size, i;
	const unsigned char *tag;

	if (n < 132 || memcmp(p + 16, "RGB ", 4) != 0)
		return false;
	count = image_be32(p + 128);
	if (count > (n - 132) / 12)
		return false;
	for (i = 0; i < count; i++) {
		tag = p + 132 + 12 * (size_t)i;
		if (memcmp(tag, "desc", 4) != 0)
			continue;
		off = image_be32(tag + 4);
		size = image_be32(tag + 8);
		if (off > n || size > n - off)
			return false;
		return memmem(p + off, size, "sRGB", 4) != NULL ||
		    memmem(p + off, size, "\0s\0R\0G\0B", 8) != NULL;
	}
	return false;
}

/* True if `im` carries an ICC profile that is not sRGB. */
static bool
image_needs_icc(VipsImage *im)
{
	const void *data;
	size_t len;

	if (vips_image_get_typeof(im, VIPS_META_ICC_NAME) == 0)
		return false;
	if (vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, &len) != 0) {
		vips_error_clear();
		return false;
	}
	return !image_icc_is_srgb(data, len);
}

/*
 * The time one render may spend decoding: `max_ms` from `start_ms` on
 * the limits' clock. A decode by libvips is watched through the "eval"
 * signal, which libvips emits on the loaded image for every image
 * computed from it, after each strip: once the budget is spent, the
 * evaluation is killed and stops with an error. A loader that decodes a
 * frame in one call (HEIF, WebP, GIF) is bounded by the pixel limit
 * instead, and found over the budget when the decode returns. Calling
 * thread only: libvips emits "eval" on the thread that runs the
 * evaluation.
 */
struct image_budget {
	int64_t		(*now_ms)(void);
	int64_t		 start_ms;
	unsigned	 max_ms;
	bool		 spent;
};

static bool
image_budget_over(const struct image_budget *b)
{
	return b->now_ms() - b->start_ms > (int64_t)b->max_ms;
}

static void
image_on_eval(VipsImage *im, VipsProgress *progress, void *arg)
{
	struct image_budget *b = arg;

	/*
	 * Both the loaded image and the one being evaluated (the progress
	 * record's own image) are killed: libvips checks the second right
	 * after this signal, so the evaluation ends now, and the first at
	 * its next strip, for anything else reading from it. Killed again
	 * at each tick, since a kill is cleared once noticed.
	 */
	if (image_budget_over(b)) {
		b->spent = true;
		vips_image_set_kill(im, TRUE);
		if (progress != NULL && progress->im != NULL)
			vips_image_set_kill(progress->im, TRUE);
	}
}

/*
 * Watches the evaluations of `im` and of every image computed from it,
 * until image_budget_unwatch() with the answer: `b` lives on the stack of
 * one render, and libvips may keep `im` longer.
 */
static gulong
image_budget_watch(struct image_budget *b, VipsImage *im)
{
	vips_image_set_progress(im, TRUE);
	return g_signal_connect(im, "eval", G_CALLBACK(image_on_eval), b);
}

static void
image_budget_unwatch(VipsImage *im, gulong watch)
{
	g_signal_handler_disconnect(im, watch);
	vips_image_set_progress(im, FALSE);
}

static ps_err
image_budget_refuse(const struct image_budget *b)
{
	return ps_errf(PS_EIMAGE, "decoding the image took longer than its "
	    "limit of %u ms", b->max_ms);
}

/*
 * The pipeline from a freshly opened image `im` to an upright, centred,
 * 8-bit sRGB square without alpha, decoded into memory: the one decode,
 * every side is derived from it. `b` watches `im` already.
 */
static ps_err
image_square(VipsImage *im, const struct image_budget *b, VipsImage **sqp)
{
	VipsImage *t[7] = { NULL };
	VipsArrayDouble *white = NULL;
	VipsImage *mem = NULL;
	ps_err rc = PS_EIMAGE;
	size_t i;
	int s;

	*sqp = NULL;
	/*
	 * The centred square first, so that the colour work sees fewer
	 * pixels. It is cropped before the orientation is applied: a
	 * quarter turn maps the centred square onto itself.
	 */
	s = VIPS_MIN(im->Xsize, im->Ysize);
	if (im->Xsize != im->Ysize) {
		if (vips_crop(im, &t[0], (im->Xsize - s) / 2,
		    (im->Ysize - s) / 2, s, s, NULL) != 0)
			goto convert;
		im = t[0];
	}
	/*
	 * An embedded profile (Display P3 from phones, Adobe RGB, a CMYK
	 * press profile) says what the numbers mean: convert through it.
	 * A broken profile is ignored rather than refusing the photo.
	 */
	if (image_needs_icc(im)) {
		if (vips_icc_transform(im, &t[1], "srgb", "embedded", TRUE,
		    "intent", VIPS_INTENT_RELATIVE, "depth", 8, NULL) == 0)
			im = t[1];
		else
			vips_error_clear();
	}
	/* Greyscale, CMYK, 16-bit and so on to 8-bit sRGB; alpha kept. */
	if (vips_colourspace(im, &t[2], VIPS_INTERPRETATION_sRGB, NULL) != 0)
		goto convert;
	im = t[2];
	if (vips_image_hasalpha(im)) {
		white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
		if (vips_flatten(im, &t[3], "background", white, NULL) != 0)
			goto convert;
		im = t[3];
	}
	if (im->Bands > 3) {
		if (vips_extract_band(im, &t[4], 0, "n", 3, NULL) != 0)
			goto convert;
		im = t[4];
	}
	if (im->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(im, &t[5], NULL) != 0)
			goto convert;
		im = t[5];
	}
	if (im->Bands != 3)
		goto convert;
	/*
	 * The decode. Errors in the data surface here. "eval" comes between
	 * strips when libvips gets to it (a short evaluation can end before
	 * the first), so the budget is read once more at the end.
	 */
	mem = vips_image_copy_memory(im);
	if (b->spent || image_budget_over(b)) {
		rc = image_budget_refuse(b);
		goto out;
	}
	if (mem == NULL)
		goto corrupt;
	/* EXIF orientation needs random access: rotate in memory. */
	if (vips_image_get_orientation(mem) != 1) {
		if (vips_autorot(mem, &t[6], NULL) != 0)
			goto corrupt;
		*sqp = vips_image_copy_memory(t[6]);
		if (*sqp == NULL)
			goto corrupt;
	} else {
		*sqp = mem;
		mem = NULL;
	}
	rc = PS_OK;
	goto out;
corrupt:
	rc = ps_errf(PS_EIMAGE, "the image is truncated or corrupt");
	goto out;
convert:
	rc = ps_errf(PS_EIMAGE, "the image's colours could not be converted "
	    "to sRGB");
out:
	VIPS_UNREF(mem);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		VIPS_UNREF(t[i]);
	if (white != NULL)
		vips_area_unref(VIPS_AREA(white));
	return rc;
}

/*
 * Resizes the memory square `src` to `side` into a new memory image.
 * Shrinking uses vips_reduce() with Lanczos 3 directly: in 8.14,
 * vips_resize()'s box pre-shrink followed by a reduce is several times
 * slower for these sizes. Growing only happens if a loader returned a
 * pixel or two less than its header said.
 */
static ps_err
image_reduce(VipsImage *src, int side, VipsImage **dstp)
{
	VipsImage *t[2] = { NULL };
	VipsImage *im;
	double f = (double)src->Xsize / side;
	ps_err rc = PS_OK;

	*dstp = NULL;
	if (f >= 1.0) {
		if (vips_reduce(src, &t[0], f, f, NULL) != 0)
			goto fail;
	} else if (vips_resize(src, &t[0], 1.0 / f, NULL) != 0)
		goto fail;
	im = t[0];
	/* Rounding could leave a pixel too many or too few. */
	if (im->Xsize != side || im->Ysize != side) {
		if (vips_gravity(im, &t[1], VIPS_COMPASS_DIRECTION_CENTRE,
		    side, side, "extend", VIPS_EXTEND_COPY, NULL) != 0)
			goto fail;
		im = t[1];
	}
	*dstp = vips_image_copy_memory(im);
	if (*dstp == NULL)
		goto fail;
	goto out;
fail:
	rc = ps_errf(PS_EIMAGE, "the image could not be resized to %d "
	    "pixels", side);
out:
	VIPS_UNREF(t[0]);
	VIPS_UNREF(t[1]);
	return rc;
}

/* Writes `im` as a baseline JPEG without metadata into `out`. */
static ps_err
image_save(VipsImage *im, int quality, struct image_jpeg *out)
{
	void *buf = NULL;
	size_t blen = 0;

	if (vips_jpegsave_buffer(im, &buf, &blen,
	    "Q", quality,
	    "strip", TRUE,
	    "optimize_coding", TRUE,
	    "interlace", FALSE,
	    NULL) != 0 || buf == NULL || blen == 0) {
		g_free(buf);
		return ps_errf(PS_EIMAGE, "the image could not be encoded as "
		    "JPEG");
	}
	/* Our own allocator, so that callers can keep the bytes. */
	out->data = xmalloc(blen);
	memcpy(out->data, buf, blen);
	out->len = blen;
	out->side = im->Xsize;
	g_free(buf);
	return PS_OK;
}

/* The squares made so far for one render: the decoded one and reductions. */
struct image_set {
	VipsImage	**im;
	size_t		  n;
};

/*
 * The square of `side` for this render, made if needed. Each reduction
 * starts from the smallest square already made that is at least 1.5
 * times as large (else the decoded one), as in an image pyramid: libvips
 * computes a Lanczos mask per call whose cost grows with the factor, so a
 * couple of moderate steps are much cheaper than one large step (9 HR
 * sides from 648: 30 ms instead of 42), and two steps differ from one by
 * about 2 levels in 255 on average. The square remains owned by the set.
 */
static ps_err
image_set_get(struct image_set *set, int side, VipsImage **imp)
{
	VipsImage *src = set->im[0];
	size_t i;
	ps_err rc;

	for (i = 0; i < set->n; i++)
		if (set->im[i]->Xsize == side) {
			*imp = set->im[i];
			return PS_OK;
		}
	for (i = 1; i < set->n; i++)
		if (set->im[i]->Xsize >= side + side / 2 &&
		    set->im[i]->Xsize < src->Xsize)
			src = set->im[i];
	rc = image_reduce(src, side, &set->im[set->n]);
	if (rc != PS_OK)
		return rc;
	*imp = set->im[set->n++];
	return PS_OK;
}

/* `lim` with NULL, or a zero field, meaning the default. */
static void
image_limits_resolve(const struct image_limits *lim, struct image_limits *l)
{
	*l = image_default_limits;
	if (lim == NULL)
		return;
	if (lim->max_bytes != 0)
		l->max_bytes = lim->max_bytes;
	if (lim->max_pixels != 0)
		l->max_pixels = lim->max_pixels;
	if (lim->max_side != 0)
		l->max_side = lim->max_side;
	if (lim->max_scans != 0)
		l->max_scans = lim->max_scans;
	if (lim->max_decode_ms != 0)
		l->max_decode_ms = lim->max_decode_ms;
	if (lim->now_ms != NULL)
		l->now_ms = lim->now_ms;
}

/* ---- the fast path: libjpeg-turbo for upright sRGB JPEGs ---- */

/*
 * Area-average resampling of one plane: each output sample is the mean
 * of the source span it covers, partial samples weighted by their
 * overlap. A good downscaler (no aliasing), exact at integer ratios.
 * Spans are computed in integers (a unit that divides both grids
 * exactly), so a chroma plane's half-sample crop offsets and a last
 * chroma sample that covers half a pixel come out exact too. The weights
 * depend only on the two grids, so they are computed once per axis, in
 * fixed point (AREA_ONE is 1.0): integer sums are exact.
 *
 * Down first, then across, so that the pass across (the costly one: a
 * gather) runs on the output's rows only. The pass down blends whole
 * source rows AREA_CHUNK samples at a time (a loop of fixed length
 * vectorises even at -O2) and keeps MID_BITS more bits, few enough for
 * a sample to fit 16 signed bits. The pass across takes 8 rows at a time
 * with SSE2: the rows transposed so that one vector holds a column of
 * them, each pair of taps is one multiply-add (pmaddwd) for all 8, and
 * the result transposed back; a quarter of the scalar pass's time. The
 * remaining rows, and every row without SSE2, go through the scalar
 * pass, AREA_ROWS at a time so that each tap's weight and position are
 * loaded once for all; both compute the same sums.
 */
#define AREA_BITS	14
#define AREA_ONE	(1 << AREA_BITS)
#define MID_BITS	7
#define AREA_CHUNK	16
#define AREA_ROWS	4
#define AREA_GROUP	8	/* rows of the SSE2 pass across */

struct area_taps {
	int	*first;		/* first source sample of each output */
	int	*count;		/* how many source samples */
	int16_t	*w;		/* wlen weights per output, sum AREA_ONE */
	int	 max;		/* the largest count */
	int	 wlen;		/* max rounded up to even; the rest are 0 */
	int	 lo, hi;	/* the source samples read: [lo, hi) */
	bool	 copy;		/* output i is source lo + i */
};

/*
 * Output i of dlen averages the source span [off + i * step, min(off +
 * (i + 1) * step, end)), positions counted in 1/unit of a source sample.
 */
static void
area_taps_make(int64_t off, int64_t step, int64_t end, int64_t unit,
    int dlen, struct area_taps *t)
{
	int i, j, big;

	t->max = (int)((step + unit - 1) / unit) + 1;
	t->wlen = (t->max + 1) & ~1;
	t->first = xmalloc((size_t)dlen * sizeof(int));
	t->count = xmalloc((size_t)dlen * sizeof(int));
	t->w = xcalloc((size_t)dlen * (size_t)t->wlen, sizeof(int16_t));
	t->copy = step == unit && off % unit == 0;
	for (i = 0; i < dlen; i++) {
		int64_t a = off + i * step, b = a + step, len, lo, hi;
		int16_t *w = t->w + (size_t)i * (size_t)t->wlen;
		int sum = 0;

		if (b > end)
			b = end;
		len = b - a;
		t->first[i] = (int)(a / unit);
		t->count[i] = (int)((b + unit - 1) / unit) - t->first[i];
		for (j = 0, big = 0; j < t->count[i]; j++) {
			lo = (t->first[i] + j) * unit;
			hi = lo + unit;
			lo = lo > a ? lo : a;
			hi = hi < b ? hi : b;
			w[j] = (int16_t)(((hi - lo) * AREA_ONE + len / 2) /
			    len);
			sum += w[j];
			if (w[j] > w[big])
				big = j;
		}
		/* Rounding leaves the sum a little off 1.0: the largest tap. */
		w[big] = (int16_t)(w[big] + AREA_ONE - sum);
	}
	t->lo = t->first[0];
	t->hi = t->first[dlen - 1] + t->count[dlen - 1];
}

static void
area_taps_free(struct area_taps *t)
{
	free(t->first);
	free(t->count);
	free(t->w);
}

/*
 * The pass down for AREA_CHUNK columns: the `count` rows from `p`
 * blended by `w` into mid, with MID_BITS fractional bits.
 */
static inline void
area_down_chunk(const unsigned char *p, size_t stride, const int16_t *w,
    int count, int16_t *mid)
{
	int32_t acc[AREA_CHUNK], wk;
	int j, k;

	wk = w[0];
	for (j = 0; j < AREA_CHUNK; j++)
		acc[j] = wk * p[j];
	for (k = 1; k < count; k++) {
		wk = w[k];
		p += stride;
		for (j = 0; j < AREA_CHUNK; j++)
			acc[j] += wk * p[j];
	}
	for (j = 0; j < AREA_CHUNK; j++)
		mid[j] = (int16_t)((acc[j] + (1 << (AREA_BITS - MID_BITS -
		    1))) >> (AREA_BITS - MID_BITS));
}

/* The pass down for one output row over `span` columns. */
static void
area_down(const unsigned char *p, size_t stride, const int16_t *w,
    int count, int16_t *mid, int span)
{
	int32_t acc;
	int c, k;

	for (c = 0; c + AREA_CHUNK <= span; c += AREA_CHUNK)
		area_down_chunk(p + c, stride, w, count, mid + c);
	for (; c < span; c++) {
		for (k = 0, acc = 0; k < count; k++)
			acc += w[k] * p[(size_t)k * stride + (size_t)c];
		mid[c] = (int16_t)((acc + (1 << (AREA_BITS - MID_BITS - 1))) >>
		    (AREA_BITS - MID_BITS));
	}
}

/*
 * The scalar pass across for AREA_ROWS (4) rows at once, `taps` a
 * constant where inlined (the weights past a count are 0, and each mid
 * row has slack past the span). The sums are in named variables, which
 * stay in registers at -O2 too.
 */
static inline void
area_across(const struct area_taps *tx, int16_t *const *mid,
    unsigned char *const *out, int dw, int taps)
{
	const int16_t *m0 = mid[0], *m1 = mid[1], *m2 = mid[2], *m3 = mid[3];
	const int32_t half = 1 << (AREA_BITS + MID_BITS - 1);
	int x, k, f;

	for (x = 0; x < dw; x++) {
		const int16_t *w = tx->w + (size_t)x * (size_t)tx->wlen;
		int32_t v0 = half, v1 = half, v2 = half, v3 = half, wk;

		f = tx->first[x] - tx->lo;
		for (k = 0; k < taps; k++, f++) {
			wk = w[k];
			v0 += wk * m0[f];
			v1 += wk * m1[f];
			v2 += wk * m2[f];
			v3 += wk * m3[f];
		}
		out[0][x] = (unsigned char)(v0 >> (AREA_BITS + MID_BITS));
		out[1][x] = (unsigned char)(v1 >> (AREA_BITS + MID_BITS));
		out[2][x] = (unsigned char)(v2 >> (AREA_BITS + MID_BITS));
		out[3][x] = (unsigned char)(v3 >> (AREA_BITS + MID_BITS));
	}
}

static void
area_across_rows(const struct area_taps *tx, int16_t *const *mid,
    unsigned char *const *out, int dw)
{
	switch (tx->max) {
	case 2:
		area_across(tx, mid, out, dw, 2);
		break;
	case 3:
		area_across(tx, mid, out, dw, 3);
		break;
	case 4:
		area_across(tx, mid, out, dw, 4);
		break;
	case 5:
		area_across(tx, mid, out, dw, 5);
		break;
	default:
		area_across(tx, mid, out, dw, tx->max);
		break;
	}
}

#ifdef __SSE2__
/* Transposes 8 vectors of 8 16-bit values: v[i][j] becomes v[j][i]. */
static inline void
area_transpose8(__m128i v[8])
{
	__m128i a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7;

	a0 = _mm_unpacklo_epi16(v[0], v[1]);
	a1 = _mm_unpackhi_epi16(v[0], v[1]);
	a2 = _mm_unpacklo_epi16(v[2], v[3]);
	a3 = _mm_unpackhi_epi16(v[2], v[3]);
	a4 = _mm_unpacklo_epi16(v[4], v[5]);
	a5 = _mm_unpackhi_epi16(v[4], v[5]);
	a6 = _mm_unpacklo_epi16(v[6], v[7]);
	a7 = _mm_unpackhi_epi16(v[6], v[7]);
	b0 = _mm_unpacklo_epi32(a0, a2);
	b1 = _mm_unpackhi_epi32(a0, a2);
	b2 = _mm_unpacklo_epi32(a1, a3);
	b3 = _mm_unpackhi_epi32(a1, a3);
	b4 = _mm_unpacklo_epi32(a4, a6);
	b5 = _mm_unpackhi_epi32(a4, a6);
	b6 = _mm_unpacklo_epi32(a5, a7);
	b7 = _mm_unpackhi_epi32(a5, a7);
	v[0] = _mm_unpacklo_epi64(b0, b4);
	v[1] = _mm_unpackhi_epi64(b0, b4);
	v[2] = _mm_unpacklo_epi64(b1, b5);
	v[3] = _mm_unpackhi_epi64(b1, b5);
	v[4] = _mm_unpacklo_epi64(b2, b6);
	v[5] = _mm_unpackhi_epi64(b2, b6);
	v[6] = _mm_unpacklo_epi64(b3, b7);
	v[7] = _mm_unpackhi_epi64(b3, b7);
}

/*
 * The pass across for AREA_GROUP (8) rows: `mid` rows of `span8` (a
 * multiple of 8) samples, transposed into `col` (a column of the 8 rows
 * per 8 values, with tx->wlen zero columns of slack), resampled into
 * `res` (a column per output, dw rounded up to 8 of them), transposed
 * back and narrowed into `out`, whose rows have room for dw rounded up
 * to 8 samples.
 */
static void
area_across8(const struct area_taps *tx, int16_t *const *mid, int span8,
    int16_t *col, int16_t *res, unsigned char *const *out, int dw)
{
	const __m128i half = _mm_set1_epi32(1 << (AREA_BITS + MID_BITS - 1));
	__m128i v[8], lo, hi, a, b, pair;
	int c, x, k, r;

	for (c = 0; c < span8; c += 8) {
		for (r = 0; r < 8; r++)
			v[r] = _mm_loadu_si128((const __m128i *)(mid[r] + c));
		area_transpose8(v);
		for (r = 0; r < 8; r++)
			_mm_storeu_si128((__m128i *)(col + (size_t)(c + r) *
			    8), v[r]);
	}
	for (x = 0; x < dw; x++) {
		const int16_t *w = tx->w + (size_t)x * (size_t)tx->wlen;
		const int16_t *m = col + (size_t)(tx->first[x] - tx->lo) * 8;

		a = b = half;
		for (k = 0; k < tx->wlen; k += 2, m += 16) {
			/* Rows 0-3 and 4-7 of taps k and k + 1, paired. */
			lo = _mm_loadu_si128((const __m128i *)m);
			hi = _mm_loadu_si128((const __m128i *)(m + 8));
			pair = _mm_set1_epi32((int32_t)((uint32_t)(uint16_t)
			    w[k] | (uint32_t)(uint16_t)w[k + 1] << 16));
			a = _mm_add_epi32(a, _mm_madd_epi16(
			    _mm_unpacklo_epi16(lo, hi), pair));
			b = _mm_add_epi32(b, _mm_madd_epi16(
			    _mm_unpackhi_epi16(lo, hi), pair));
		}
		a = _mm_srai_epi32(a, AREA_BITS + MID_BITS);
		b = _mm_srai_epi32(b, AREA_BITS + MID_BITS);
		_mm_storeu_si128((__m128i *)(res + (size_t)x * 8),
		    _mm_packs_epi32(a, b));
	}
	for (x = 0; x < dw; x += 8) {
		for (k = 0; k < 8; k++)
			v[k] = _mm_loadu_si128((const __m128i *)(res +
			    (size_t)(x + k) * 8));
		area_transpose8(v);
		for (r = 0; r < 8; r++)
			_mm_storel_epi64((__m128i *)(out[r] + x),
			    _mm_packus_epi16(v[r], v[r]));
	}
}
#endif

/*
 * Resamples plane `s` into `d` (d->w x d->h) by the taps `tx` and `ty`;
 * d's rows have room for d->w rounded up to 8 samples (the SSE2 pass
 * writes whole groups of 8 there).
 */
static void
area_plane(const struct jpeg_plane *s, const struct area_taps *tx,
    const struct area_taps *ty, struct jpeg_plane *d)
{
	const int span = tx->hi - tx->lo, span8 = (span + 7) & ~7;
	const size_t mstride = (size_t)span8 + (size_t)tx->wlen;
	int16_t *buf, *mid[AREA_GROUP];
	unsigned char *out[AREA_GROUP];
	int y0 = 0, y, r;
#ifdef __SSE2__
	int16_t *col, *res;
#endif

	if (tx->copy && ty->copy) {
		for (y = 0; y < d->h; y++)
			memcpy(d->data + (size_t)y * d->stride, s->data +
			    (size_t)(ty->lo + y) * s->stride + tx->lo,
			    (size_t)d->w);
		return;
	}
	/* Zeroed: the slack past the span is read, with weights of 0. */
	buf = xcalloc(mstride * AREA_GROUP, sizeof(*buf));
	for (r = 0; r < AREA_GROUP; r++)
		mid[r] = buf + (size_t)r * mstride;
#ifdef __SSE2__
	col = xcalloc(mstride * 8, sizeof(*col));
	res = xcalloc((size_t)((d->w + 7) & ~7) * 8, sizeof(*res));
	for (; y0 + AREA_GROUP <= d->h; y0 += AREA_GROUP) {
		for (r = 0; r < AREA_GROUP; r++) {
			y = y0 + r;
			out[r] = d->data + (size_t)y * d->stride;
			area_down(s->data + (size_t)ty->first[y] * s->stride +
			    tx->lo, s->stride, ty->w + (size_t)y * (size_t)ty->wlen,
			    ty->count[y], mid[r], span);
		}
		area_across8(tx, mid, span8, col, res, out, d->w);
	}
	free(col);
	free(res);
#endif
	for (; y0 < d->h; y0 += AREA_ROWS) {
		for (r = 0; r < AREA_ROWS; r++) {
			/* Past the last row: the last row again. */
			y = y0 + r < d->h ? y0 + r : d->h - 1;
			out[r] = d->data + (size_t)y * d->stride;
			area_down(s->data + (size_t)ty->first[y] * s->stride +
			    tx->lo, s->stride, ty->w + (size_t)y * (size_t)ty->wlen,
			    ty->count[y], mid[r], span);
		}
		area_across_rows(tx, mid, out, d->w);
	}
	free(buf);
}

/*
 * Halves plane `s` by 2x2 box averages into `d` (ceil(w / 2) x ceil(h /
 * 2) samples of twice the size), with `d->data` allocated. An odd last
 * column or row is averaged with itself: its sample then stands for one
 * source sample and the space past the image's edge, which the area
 * resampler never reads.
 */
static void
area_halve(const struct jpeg_plane *s, struct jpeg_plane *d)
{
	int x, y, w2 = s->w / 2;

	d->w = (s->w + 1) / 2;
	d->h = (s->h + 1) / 2;
	d->xdiv = s->xdiv * 2;
	d->ydiv = s->ydiv * 2;
	d->stride = (size_t)d->w;
	d->data = xmalloc(d->stride * (size_t)d->h);
	for (y = 0; y < d->h; y++) {
		const unsigned char *a = s->data + (size_t)(2 * y) * s->stride;
		const unsigned char *b = 2 * y + 1 < s->h ? a + s->stride : a;
		unsigned char *o = d->data + (size_t)y * d->stride;

		for (x = 0; x < w2; x++)
			o[x] = (unsigned char)((a[2 * x] + a[2 * x + 1] +
			    b[2 * x] + b[2 * x + 1] + 2) >> 2);
		if (x < d->w)
			o[x] = (unsigned char)((a[2 * x] + b[2 * x] + 1) >> 1);
	}
}

/*
 * The decoded planes, and their halves, made when a resize first wants
 * one: an output plane that takes four or more samples of a decoded
 * plane per sample each way (S and M from a decode for L) comes from its
 * half, with four times fewer samples to blend. Area resampling from a
 * 2x2 box average is exact where the spans fall on its grid, and
 * elsewhere differs only in how the sample cut by a span's edge is
 * split, which at two or more half samples per output sample is no loss
 * (against a box filter from the full image: the same PSNR at 48 and 72
 * pixels, where at 300 from a 324 decode, chroma from its half lost 0.5
 * dB).
 */
struct area_source {
	const struct jpeg_planes	*full;
	struct jpeg_plane		 half[JPEG_PLANES];
};

/* Plane i's source for `d`, whose side of t pixels covers `side`. */
static const struct jpeg_plane *
area_source_plane(struct area_source *src, int i, int side, int t,
    const struct jpeg_plane *d)
{
	const struct jpeg_plane *s = &src->full->plane[i];

	if ((int64_t)side * d->xdiv < (int64_t)4 * t * s->xdiv ||
	    (int64_t)side * d->ydiv < (int64_t)4 * t * s->ydiv)
		return s;
	if (src->half[i].data == NULL)
		area_halve(s, &src->half[i]);
	return &src->half[i];
}

static void
area_source_cleanup(struct area_source *src)
{
	int i;

	for (i = 0; i < JPEG_PLANES; i++)
		free(src->half[i].data);
}

/*
 * Resamples the centred square of the decoded planes `src` (side `side`
 * pixels from (x0, y0)) to side t into `dst` (jpeg_planes_init(t, t)):
 * each plane onto its own grid, so chroma goes straight from the file's
 * resolution to the output's. A greyscale source gets neutral chroma.
 */
static void
area_square(struct area_source *src, int x0, int y0, int side, int t,
    struct jpeg_planes *dst)
{
	struct area_taps tx, ty;
	bool same;
	int i, y;

	for (i = 0; i < dst->n; i++) {
		const struct jpeg_plane *s;
		struct jpeg_plane *d = &dst->plane[i];

		if (i >= src->full->n) {
			for (y = 0; y < d->h; y++)
				memset(d->data + (size_t)y * d->stride, 128,
				    (size_t)d->w);
			continue;
		}
		s = area_source_plane(src, i, side, t, d);
		/*
		 * In units of 1/t pixel of the source: output sample j
		 * starts at pixel x0 + j * d->xdiv * side / t; source
		 * sample k covers [k * s->xdiv, (k + 1) * s->xdiv).
		 */
		area_taps_make((int64_t)x0 * t, (int64_t)d->xdiv * side,
		    (int64_t)(x0 + side) * t, (int64_t)t * s->xdiv, d->w, &tx);
		same = x0 == y0 && s->xdiv == s->ydiv && d->xdiv == d->ydiv &&
		    d->w == d->h;
		if (!same)
			area_taps_make((int64_t)y0 * t, (int64_t)d->ydiv * side,
			    (int64_t)(y0 + side) * t, (int64_t)t * s->ydiv,
			    d->h, &ty);
		area_plane(s, &tx, same ? &tx : &ty, d);
		area_taps_free(&tx);
		if (!same)
			area_taps_free(&ty);
	}
}

/*
 * One scaled decode to YCbCr planes, a centre square, area resizes of
 * each plane, encodes from planes: no colour conversion and no chroma
 * resampling beyond the one resize. Declines (PS_EINVAL, out[]
 * untouched) whatever it does not handle; the libvips path then does the
 * work and reports any problem in words. Refuses (PS_EIMAGE, out[]
 * untouched) a file over the budget `jb`: the libvips path must not
 * spend it again.
 */
static ps_err
render_jpeg_fast(const void *in, size_t len, const struct image_limits *l,
    const struct jpeg_budget *jb, const int *sides, size_t n,
    struct image_jpeg *out, int *src_side, int quality)
{
	struct jpeg_info info;
	struct jpeg_planes src, dst;
	struct area_source as = { &src, { { 0 } } };
	size_t i, j;
	int side, full, x0, y0, target = 1;
	bool as_is;
	ps_err rc;

	if (jpeg_probe(in, len, &info) != PS_OK)
		return PS_EINVAL;
	/*
	 * A bare square JPEG already at a size asked for is that size: no
	 * second generation of compression, and no decode at full scale
	 * (the portal's high-resolution copy of the master's photo).
	 */
	as_is = info.bare && info.w == info.h && quality == RENDER_Q;
	for (i = 0; i < n; i++)
		if (!(as_is && sides[i] == info.w))
			target = VIPS_MAX(target, sides[i]);
	/* Decoded even when all is kept: that checks the whole file. */
	rc = jpeg_decode(in, len, target, l->max_pixels, jb, &src);
	if (rc != PS_OK)
		return rc == PS_EIMAGE ? rc : PS_EINVAL;
	if (src.full_w > l->max_side || src.full_h > l->max_side) {
		jpeg_planes_cleanup(&src);
		return PS_EINVAL;
	}
	full = VIPS_MIN(src.full_w, src.full_h);
	side = VIPS_MIN(src.w, src.h);
	x0 = (src.w - side) / 2;
	y0 = (src.h - side) / 2;
	for (i = 0; i < n; i++) {
		int t = VIPS_MIN(VIPS_MIN(sides[i], full), side);

		if (as_is && sides[i] == info.w) {
			out[i].data = xmalloc(len);
			memcpy(out[i].data, in, len);
			out[i].len = len;
			out[i].side = info.w;
			continue;
		}
		jpeg_planes_init(&dst, t, t);
		area_square(&as, x0, y0, side, t, &dst);
		rc = jpeg_encode(&dst, quality, &out[i].data, &out[i].len);
		jpeg_planes_cleanup(&dst);
		if (rc != PS_OK) {
			for (j = 0; j <= i; j++)
				image_jpeg_free(&out[j]);
			rc = PS_EINVAL;
			goto out;
		}
		out[i].side = t;
	}
	if (src_side != NULL)
		*src_side = full;
	rc = PS_OK;
out:
	area_source_cleanup(&as);
	jpeg_planes_cleanup(&src);
	return rc;
}

/*
 * See image.h. Limits: `lim` NULL, or any field left 0, means the
 * default. Each sides[i] must be within 1..IMAGE_MAX_SIDE and n >= 1.
 */
static ps_err
render_q(const void *in, size_t len, const struct image_limits *lim,
    const int *sides, size_t n, struct image_jpeg *out, int *src_side,
    int quality)
{
	const struct image_loader *ld = NULL;
	struct image_limits l;
	struct image_budget budget;
	struct jpeg_budget jb;
	struct image_set set = { NULL, 0 };
	VipsImage *im = NULL, *sq = NULL, *sized;
	size_t *order = NULL;
	size_t i, j, k;
	unsigned scans;
	gulong watch;
	int sqside = 0, target = 0, shrink = 1;
	ps_err rc;

	if (src_side != NULL)
		*src_side = 0;
	if (out != NULL)
		for (i = 0; i < n; i++)
			memset(&out[i], 0, sizeof(out[i]));
	if (n == 0 || sides == NULL || out == NULL)
		return ps_errf(PS_EINVAL, "no thumbnail sizes were requested");
	for (i = 0; i < n; i++) {
		if (sides[i] < 1 || sides[i] > IMAGE_MAX_SIDE)
			return ps_errf(PS_EINVAL, "a thumbnail side of %d "
			    "pixels is out of range (1 to %d)", sides[i],
			    IMAGE_MAX_SIDE);
		target = VIPS_MAX(target, sides[i]);
	}
	image_limits_resolve(lim, &l);
	budget.now_ms = l.now_ms != NULL ? l.now_ms : time_mono_ms;
	budget.start_ms = budget.now_ms();
	budget.max_ms = l.max_decode_ms;
	budget.spent = false;

	if (len > l.max_bytes)
		return ps_errf(PS_ELIMIT, "the image is %zu bytes; the limit "
		    "is %zu", len, l.max_bytes);
	if (in == NULL || len == 0)
		return ps_errf(PS_EIMAGE, "the file is empty, not an image "
		    "(" ACCEPTED ")");
	/*
	 * Every JPEG decoder here is libjpeg, and libvips' loader has no
	 * limit on scans: count them before either runs. libjpeg reads
	 * anything that starts with SOI, and so does this count.
	 */
	if (jpeg_scan_count(in, len, l.max_scans, &scans) == PS_EIMAGE)
		return PS_EIMAGE;
	jb.max_scans = l.max_scans;
	jb.max_ms = l.max_decode_ms;
	jb.start_ms = budget.start_ms;
	jb.now_ms = budget.now_ms;
	rc = render_jpeg_fast(in, len, &l, &jb, sides, n, out, src_side,
	    quality);
	if (rc == PS_OK || rc == PS_EIMAGE)
		return rc;
	if ((rc = image_init(NULL)) != PS_OK)
		return rc;
	ld = image_identify(in, len);
	if (ld == NULL) {
		rc = PS_EIMAGE;
		goto out;
	}

	/* The header only, to refuse decompression bombs undecoded. */
	rc = image_open(ld, in, len, 1, &im);
	if (rc != PS_OK)
		goto out;
	rc = image_check_header(im, &l);
	if (rc != PS_OK)
		goto out;
	/* Orientation swaps width and height, not the square's side. */
	sqside = VIPS_MIN(im->Xsize, im->Ysize);
	/* Never upscale. */
	target = VIPS_MIN(target, sqside);

	/* Shrink-on-load: libjpeg decodes at 1/2, 1/4 or 1/8 for free. */
	if (ld->load == vips_jpegload_buffer)
		while (shrink < 8 && sqside / (shrink * 2) >= target)
			shrink *= 2;
	if (shrink > 1) {
		VIPS_UNREF(im);
		rc = image_open(ld, in, len, shrink, &im);
		if (rc != PS_OK)
			goto out;
	}
	watch = image_budget_watch(&budget, im);
	rc = image_square(im, &budget, &sq);
	image_budget_unwatch(im, watch);
	if (rc != PS_OK)
		goto out;
	VIPS_UNREF(im);

	/* Largest first, so smaller sides can start from larger ones. */
	order = xmalloc(n * sizeof(*order));
	for (i = 0; i < n; i++) {
		for (j = i; j > 0 && sides[order[j - 1]] < sides[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	set.im = xcalloc(n + 1, sizeof(*set.im));
	set.im[set.n++] = sq;
	sq = NULL;
	/* A JPEG decoded at 1/2 etc. may be a little larger than target. */
	for (i = 0; i < n; i++) {
		k = order[i];
		rc = image_set_get(&set, VIPS_MIN(sides[k], target), &sized);
		if (rc != PS_OK)
			goto out;
		rc = image_save(sized, quality, &out[k]);
		if (rc != PS_OK)
			goto out;
	}
	rc = PS_OK;
out:
	VIPS_UNREF(im);
	VIPS_UNREF(sq);
	for (i = 0; i < set.n; i++)
		VIPS_UNREF(set.im[i]);
	free(set.im);
	free(order);
	if (rc != PS_OK) {
		for (i = 0; i < n; i++)
			image_jpeg_free(&out[i]);
		/* The reason is ours; do not let libvips' buffer grow. */
		vips_error_clear();
	} else if (src_side != NULL)
		*src_side = sqside;
	return rc;
}

ps_err
image_render(const void *in, size_t len, const struct image_limits *lim,
    const int *sides, size_t n, struct image_jpeg *out, int *src_side)
{
	return render_q(in, len, lim, sides, n, out, src_side, RENDER_Q);
}

/* The qualities tried in turn for a size cap, the usual one first. */
static const int within_q[] = { RENDER_Q, 75, 65, 55, 45, 35, 25 };

ps_err
image_render_within(const void *in, size_t len,
    const struct image_limits *lim, int side, size_t max_bytes,
    struct image_jpeg *out)
{
	size_t i, smallest = 0;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sizeof(within_q) / sizeof(within_q[0]); i++) {
		rc = render_q(in, len, lim, &side, 1, out, NULL, within_q[i]);
		if (rc != PS_OK)
			return rc;
		if (out->len <= max_bytes)
			return PS_OK;
		smallest = out->len;
		image_jpeg_free(out);
	}
	return ps_errf(PS_ELIMIT, "the image is %zu bytes at %d by %d pixels "
	    "even at JPEG quality %d; the limit is %zu", smallest, side, side,
	    within_q[i - 1], max_bytes);
}

/* ------------------------------------------------------------------ */
/* Generated photos and placeholders                                   */
/* ------------------------------------------------------------------ */

/* splitmix64: a small, well-mixed generator for a deterministic look. */
static uint64_t
image_rand(uint64_t *state)
{
	uint64_t z;

	z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double
image_uniform(uint64_t *state, double lo, double hi)
{
	return lo + (hi - lo) * (double)(image_rand(state) >> 11) /
	    9007199254740992.0;
}

/* Hue, saturation and value in [0, 1] to 0..255 RGB. */
static void
image_hsv(double h, double s, double v, double rgb[3])
{
	double f, p, q, t;
	int i;

	/* The core library does not link libm; h is small, casts do. */
	h -= (double)(long)h;
	if (h < 0)
		h += 1.0;
	h *= 6.0;
	i = (int)h % 6;
	f = h - (int)h;
	p = v * (1 - s);
	q = v * (1 - s * f);
	t = v * (1 - s * (1 - f));
	switch (i) {
	case 0:	rgb[0] = v; rgb[1] = t; rgb[2] = p; break;
	case 1:	rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
	case 2:	rgb[0] = p; rgb[1] = v; rgb[2] = t; break;
	case 3:	rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
	case 4:	rgb[0] = t; rgb[1] = p; rgb[2] = v; break;
	default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
	}
	rgb[0] *= 255.0;
	rgb[1] *= 255.0;
	rgb[2] *= 255.0;
}

/* What a portrait looks like: colours, and the head's place and size. */
struct image_person {
	double	top[3], bottom[3];	/* background gradient */
	double	shirt[3], skin[3], hair[3];
	double	cx, cy, r;		/* head, as fractions of the side */
	bool	face;			/* eyes and mouth */
};

static const double image_skins[][3] = {
	{ 255, 219, 172 }, { 241, 194, 125 }, { 224, 172, 105 },
	{ 198, 134, 66 }, { 141, 85, 36 }, { 250, 205, 185 },
};
static const double image_hairs[][3] = {
	{ 40, 30, 25 }, { 90, 56, 37 }, { 160, 110, 60 },
	{ 222, 190, 120 }, { 125, 125, 125 }, { 170, 60, 35 },
};

/* side * f rounded to a pixel coordinate. */
static int
image_px(double side, double f)
{
	double v = side * f;

	return v >= 0 ? (int)(v + 0.5) : -(int)(-v + 0.5);
}

/*
 * A `side` square memory image, the background gradient of `p`, ready
 * to draw on; the caller unrefs it.
 */
static VipsImage *
image_canvas(int side, const struct image_person *p)
{
	VipsImage *t[5] = { NULL };
	VipsImage *canvas = NULL;
	double a[3];
	size_t i;

	/* top + (bottom - top) * y / side, band by band. */
	for (i = 0; i < 3; i++)
		a[i] = (p->bottom[i] - p->top[i]) / side;
	if (vips_xyz(&t[0], side, side, NULL) == 0 &&
	    vips_extract_band(t[0], &t[1], 1, NULL) == 0 &&
	    vips_linear(t[1], &t[2], a, (double *)p->top, 3, NULL) == 0 &&
	    vips_cast_uchar(t[2], &t[3], NULL) == 0 &&
	    vips_copy(t[3], &t[4], "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL) == 0)
		canvas = vips_image_copy_memory(t[4]);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		VIPS_UNREF(t[i]);
	return canvas;
}

/* Draws a head-and-shoulders silhouette on the memory image `im`. */
static int
image_draw_person(VipsImage *im, const struct image_person *p)
{
	double s = im->Xsize, cx = p->cx, cy = p->cy, r = p->r;
	double eye[3] = { 35, 30, 30 }, mouth[3];
	double *shirt = (double *)p->shirt, *skin = (double *)p->skin;
	double *hair = (double *)p->hair;

	/* Neck, then shoulders over it: two round shoulders and a torso. */
	if (vips_draw_rect(im, skin, 3, image_px(s, cx - 0.07),
	    image_px(s, cy), image_px(s, 0.14), image_px(s, 0.4),
	    "fill", TRUE, NULL) != 0 ||
	    vips_draw_circle(im, shirt, 3, image_px(s, cx - 0.2),
	    image_px(s, 0.84), image_px(s, 0.16), "fill", TRUE, NULL) != 0 ||
	    vips_draw_circle(im, shirt, 3, image_px(s, cx + 0.2),
	    image_px(s, 0.84), image_px(s, 0.16), "fill", TRUE, NULL) != 0 ||
	    vips_draw_rect(im, shirt, 3, image_px(s, cx - 0.2),
	    image_px(s, 0.68), image_px(s, 0.4), image_px(s, 0.34),
	    "fill", TRUE, NULL) != 0 ||
	    vips_draw_rect(im, shirt, 3, image_px(s, cx - 0.36),
	    image_px(s, 0.84), image_px(s, 0.72), image_px(s, 0.18),
	    "fill", TRUE, NULL) != 0)
		return -1;

	/* Hair behind and above the face, then the face. */
	if (vips_draw_circle(im, hair, 3, image_px(s, cx),
	    image_px(s, cy - r * 0.12), image_px(s, r * 1.08),
	    "fill", TRUE, NULL) != 0 ||
	    vips_draw_circle(im, skin, 3, image_px(s, cx),
	    image_px(s, cy + r * 0.08), image_px(s, r * 0.95),
	    "fill", TRUE, NULL) != 0)
		return -1;
	if (!p->face)
		return 0;
	mouth[0] = p->skin[0] * 0.7;
	mouth[1] = p->skin[1] * 0.45;
	mouth[2] = p->skin[2] * 0.45;
	if (vips_draw_circle(im, eye, 3, image_px(s, cx - r * 0.35),
	    image_px(s, cy), image_px(s, r * 0.09), "fill", TRUE, NULL) != 0 ||
	    vips_draw_circle(im, eye, 3, image_px(s, cx + r * 0.35),
	    image_px(s, cy), image_px(s, r * 0.09), "fill", TRUE, NULL) != 0 ||
	    vips_draw_rect(im, mouth, 3, image_px(s, cx - r * 0.3),
	    image_px(s, cy + r * 0.5), image_px(s, r * 0.6),
	    VIPS_MAX(1, image_px(s, r * 0.08)), "fill", TRUE, NULL) != 0)
		return -1;
	return 0;
}

/* The person of `seed`: colours and proportions from the generator. */
static void
image_person_from_seed(uint32_t seed, struct image_person *p)
{
	uint64_t rs = seed;
	double hue, sat, val;
	size_t k;

	/*
	 * Golden-ratio steps of the hue (in 32-bit fixed point) keep
	 * consecutive seeds far apart on the colour wheel.
	 */
	hue = (double)(uint32_t)(seed * UINT32_C(2654435769)) / 4294967296.0;
	image_rand(&rs);
	sat = image_uniform(&rs, 0.3, 0.55);
	val = image_uniform(&rs, 0.85, 0.97);
	image_hsv(hue, sat, val, p->top);
	image_hsv(hue, VIPS_MIN(1.0, sat + 0.15), val - 0.3, p->bottom);
	image_hsv(hue + 0.5 + image_uniform(&rs, -0.12, 0.12),
	    image_uniform(&rs, 0.45, 0.75), image_uniform(&rs, 0.35, 0.7),
	    p->shirt);
	k = image_rand(&rs) % (sizeof(image_skins) / sizeof(image_skins[0]));
	memcpy(p->skin, image_skins[k], sizeof(p->skin));
	k = image_rand(&rs) % (sizeof(image_hairs) / sizeof(image_hairs[0]));
	memcpy(p->hair, image_hairs[k], sizeof(p->hair));
	p->cx = image_uniform(&rs, 0.46, 0.54);
	p->cy = image_uniform(&rs, 0.38, 0.43);
	p->r = image_uniform(&rs, 0.16, 0.2);
	p->face = true;
}

ps_err
image_generate(uint32_t seed, int side, struct image_jpeg *out)
{
	VipsImage *t[2] = { NULL };
	VipsImage *canvas = NULL, *final = NULL;
	struct image_person p;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if (side < GENERATE_MIN || side > IMAGE_MAX_SIDE)
		return ps_errf(PS_EINVAL, "a generated photo's side must be "
		    "%d to %d pixels, not %d", GENERATE_MIN, IMAGE_MAX_SIDE,
		    side);
	rc = image_init(NULL);
	if (rc != PS_OK)
		return rc;
	image_person_from_seed(seed, &p);
	canvas = image_canvas(side, &p);
	if (canvas == NULL || image_draw_person(canvas, &p) != 0)
		goto fail;
	/* A little sensor noise, seeded, so that it looks like a photo. */
	if (vips_gaussnoise(&t[0], side, side, "sigma", 4.0, "mean", 0.0,
	    "seed", (int)(seed & 0x7fffffff), NULL) != 0 ||
	    vips_add(canvas, t[0], &t[1], NULL) != 0 ||
	    vips_cast_uchar(t[1], &final, NULL) != 0)
		goto fail;
	rc = image_save(final, GENERATE_Q, out);
	goto out;
fail:
	rc = ps_errf(PS_EIMAGE, "the test photo could not be generated");
	vips_error_clear();
out:
	VIPS_UNREF(canvas);
	VIPS_UNREF(final);
	VIPS_UNREF(t[0]);
	VIPS_UNREF(t[1]);
	return rc;
}

ps_err
image_placeholder(int side, struct image_jpeg *out)
{
	static const struct image_person grey = {
		.top = { 222, 224, 227 }, .bottom = { 200, 203, 207 },
		.shirt = { 246, 247, 248 }, .skin = { 246, 247, 248 },
		.hair = { 246, 247, 248 },
		.cx = 0.5, .cy = 0.4, .r = 0.18, .face = false,
	};
	VipsImage *canvas = NULL, *t = NULL, *small = NULL;
	ps_err rc;
	int k;

	memset(out, 0, sizeof(*out));
	if (side < 1 || side > IMAGE_MAX_SIDE)
		return ps_errf(PS_EINVAL, "a placeholder's side must be 1 to "
		    "%d pixels, not %d", IMAGE_MAX_SIDE, side);
	rc = image_init(NULL);
	if (rc != PS_OK)
		return rc;
	/*
	 * Drawn k times larger and reduced, for smooth edges at thumbnail
	 * sizes (libvips draws without antialiasing).
	 */
	k = 4;
	while (k > 1 && side * k > VIPS_MAX(side, 1024))
		k--;
	canvas = image_canvas(side * k, &grey);
	if (canvas == NULL || image_draw_person(canvas, &grey) != 0)
		goto fail;
	if (k > 1) {
		if (vips_reduce(canvas, &t, k, k, NULL) != 0)
			goto fail;
		small = vips_image_copy_memory(t);
		if (small == NULL)
			goto fail;
	} else {
		small = canvas;
		canvas = NULL;
	}
	if (small->Xsize != side || small->Ysize != side)
		goto fail;
	rc = image_save(small, GENERATE_Q, out);
	goto out;
fail:
	rc = ps_errf(PS_EIMAGE, "the placeholder could not be drawn");
	vips_error_clear();
out:
	VIPS_UNREF(canvas);
	VIPS_UNREF(t);
	VIPS_UNREF(small);
	return rc;
}

/*
 * The identicon of `seed`: the seed is folded into a 64-bit state, from
 * which come a colour (hue anywhere, saturation and value in a range
 * that reads well on the light background) and 15 bits, one per cell of
 * the left three columns of a 5x5 grid; the right two columns mirror the
 * left two. The grid sits inside a margin of half a cell. Cell edges are
 * rounded to whole pixels, so blocks stay sharp at every side.
 */
ps_err
image_identicon(const unsigned char *seed, size_t n, int side,
    struct image_jpeg *out)
{
	static const struct image_person bg = {
		.top = { 240, 240, 240 }, .bottom = { 240, 240, 240 },
	};
	VipsImage *canvas = NULL;
	uint64_t state = UINT64_C(0xcbf29ce484222325), bits;
	const double cell = 1.0 / 6, margin = cell / 2;
	double ink[3];
	int row, col, x0, x1, y0, y1;
	size_t i;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if (side < 1 || side > IMAGE_MAX_SIDE)
		return ps_errf(PS_EINVAL, "an identicon's side must be 1 to %d "
		    "pixels, not %d", IMAGE_MAX_SIDE, side);
	if (seed == NULL && n > 0)
		return ps_errf(PS_EINVAL, "an identicon needs a seed");
	rc = image_init(NULL);
	if (rc != PS_OK)
		return rc;
	/* FNV-1a over the seed, then the generator mixes it well. */
	for (i = 0; i < n; i++) {
		state ^= seed[i];
		state *= UINT64_C(0x100000001b3);
	}
	image_hsv(image_uniform(&state, 0.0, 1.0),
	    image_uniform(&state, 0.45, 0.75),
	    image_uniform(&state, 0.55, 0.8), ink);
	bits = image_rand(&state);
	canvas = image_canvas(side, &bg);
	if (canvas == NULL)
		goto fail;
	/* Five cells and two half-cell margins: six cells across. */
	for (row = 0; row < 5; row++) {
		for (col = 0; col < 3; col++) {
			if (((bits >> (row * 3 + col)) & 1) == 0)
				continue;
			y0 = image_px(side, margin + cell * row);
			y1 = image_px(side, margin + cell * (row + 1));
			x0 = image_px(side, margin + cell * col);
			x1 = image_px(side, margin + cell * (col + 1));
			if (x1 <= x0 || y1 <= y0)
				continue;
			if (vips_draw_rect(canvas, ink, 3, x0, y0, x1 - x0,
			    y1 - y0, "fill", TRUE, NULL) != 0)
				goto fail;
			if (col == 2)
				continue;
			/* The mirror: column 4 - col, edges reflected. */
			if (vips_draw_rect(canvas, ink, 3, side - x1, y0,
			    x1 - x0, y1 - y0, "fill", TRUE, NULL) != 0)
				goto fail;
		}
	}
	rc = image_save(canvas, GENERATE_Q, out);
	goto out;
fail:
	rc = ps_errf(PS_EIMAGE, "the identicon could not be drawn");
	vips_error_clear();
out:
	VIPS_UNREF(canvas);
	return rc;
}

/* Frees with free() (the bytes come from xmalloc()); zeroes the struct. */
void
image_jpeg_free(struct image_jpeg *j)
{
	if (j == NULL)
		return;
	free(j->data);
	memset(j, 0, sizeof(*j));
}
