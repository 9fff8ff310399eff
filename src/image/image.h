/*
 * The image pipeline: the only user of libvips.
 *
 * Untrusted uploads and master responses are decoded once, oriented by
 * their EXIF tag, converted to sRGB, stripped of all metadata (location
 * included), cropped to a centred square and encoded as baseline JPEG at
 * each requested side. Nothing is ever upscaled: a side larger than the
 * source square is rendered at the source's side.
 *
 * Thread-safe: the functions may run on worker threads concurrently.
 */
#ifndef PS_IMAGE_H
#define PS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * Defaults for untrusted input; callers may pass stricter limits.
 *
 * Scans: a progressive JPEG is decoded scan by scan, and every scan costs
 * a pass over all of the image's blocks however few bytes it has, so a
 * small file that repeats a scan thousands of times takes minutes of CPU.
 * libjpeg's standard progressive script (which ImageMagick and most
 * tools use) has 10 scans for colour and 6 for greyscale, encoders that
 * tune their script write a similar number, and a baseline JPEG has 1 (or
 * one per component): 100 leaves a wide margin over any of them.
 *
 * Decode time: a backstop for every decoder, in elapsed milliseconds
 * from the start of the render, checked between rows of blocks by libjpeg
 * and between strips by libvips. The largest accepted image (40
 * megapixels) took 0.6 s of CPU as a progressive JPEG and about 3 s as
 * WebP or HEIF on a development machine: 10 s leaves room for a busy one.
 */
#define IMAGE_MAX_BYTES		(20u * 1024 * 1024)
#define IMAGE_MAX_PIXELS	(40u * 1000 * 1000)
#define IMAGE_MAX_SIDE		16384
#define IMAGE_MAX_SCANS		100
#define IMAGE_MAX_DECODE_MS	10000

/* A field left 0 (or NULL) means the default above. */
struct image_limits {
	size_t		max_bytes;	/* encoded input size */
	uint64_t	max_pixels;	/* width * height before decoding */
	int		max_side;	/* each of width and height */
	unsigned	max_scans;	/* a JPEG's scans (SOS segments) */
	unsigned	max_decode_ms;	/* time to decode, from the start */
	int64_t		(*now_ms)(void);	/* the clock; NULL: monotonic */
};

/* The default limits above. */
extern const struct image_limits image_default_limits;

struct image_jpeg {
	unsigned char	*data;		/* owned; free with image_jpeg_free */
	size_t		 len;
	int		 side;		/* width == height == side */
};

/* Formats accepted as input: JPEG, PNG, WebP, HEIF and GIF. */

/*
 * Starts libvips once per process (idempotent; thread-safe). Disables the
 * operation cache and blocks untrusted loaders. `argv0` may be NULL.
 * The functions below call it when they first need libvips (a plain
 * JPEG is rendered without it), so a command that renders nothing, or
 * only plain JPEGs, never pays libvips' start (about 100 ms of CPU);
 * calling it earlier only moves that cost.
 */
ps_err	image_init(const char *argv0);

/*
 * Decodes `in` once and renders `n` square JPEGs, out[i] of side
 * min(sides[i], source square side). `lim` (borrowed; NULL: the defaults)
 * bounds the work. Fails with PS_ELIMIT (bytes, pixels or side over the
 * limits, found before decoding), PS_EIMAGE (not an image, unsupported
 * format, truncated or corrupt data, more scans than the limit, found
 * before decoding, or a decode that ran out of time) and records a
 * sentence a person can read ("the file is not an image (JPEG, PNG,
 * WebP, HEIF or GIF)", "the image has 60000000 pixels; the limit is
 * 40000000", "the JPEG has 5000 scans; the limit is 100"). On failure
 * out[] is left empty. `*src_side`, if not NULL, receives the source
 * square's side. Animated GIF and WebP and multi-image HEIF give their
 * first frame, the only one decoded.
 */
ps_err	image_render(const void *in, size_t len,
	    const struct image_limits *lim, const int *sides, size_t n,
	    struct image_jpeg *out, int *src_side);

/*
 * As image_render() for one side, at most `max_bytes` long: the usual
 * quality first (a bare square JPEG at that side kept as it is), then
 * lower qualities, down to 25, until the JPEG fits. PS_ELIMIT when even
 * the lowest does not; image_render()'s errors otherwise.
 */
ps_err	image_render_within(const void *in, size_t len,
	    const struct image_limits *lim, int side, size_t max_bytes,
	    struct image_jpeg *out);

/*
 * Generates a distinct, deterministic portrait-like test photo (a
 * coloured background with a head-and-shoulders silhouette whose colours
 * and shapes depend on `seed`) as a JPEG of side `side`. For the demo.
 */
ps_err	image_generate(uint32_t seed, int side, struct image_jpeg *out);

/*
 * The "no photo" picture: a light grey head-and-shoulders silhouette on
 * a grey background, as a JPEG of side `side` (1 to IMAGE_MAX_SIDE).
 * Deterministic. The caller frees `out` with image_jpeg_free().
 */
ps_err	image_placeholder(int side, struct image_jpeg *out);

/*
 * An identicon: a symmetric 5x5 pattern of blocks in one colour on a
 * light grey background, both derived from the `n` bytes of `seed` (an
 * avatar hash, say), as a JPEG of side `side` (1 to IMAGE_MAX_SIDE).
 * Deterministic: the same seed and side give the same bytes; different
 * seeds almost always give a different pattern or colour. The caller frees
 * `out` with image_jpeg_free().
 */
ps_err	image_identicon(const unsigned char *seed, size_t n, int side,
	    struct image_jpeg *out);

/*
 * Frees out->data (allocated with xmalloc(), so free() also does) and
 * zeroes the struct; safe on a zeroed struct and on NULL.
 */
void	image_jpeg_free(struct image_jpeg *);

#endif
