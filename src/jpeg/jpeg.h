/*
 * JPEG decoding and encoding with libjpeg-turbo directly: the only user
 * of libjpeg. The image module uses it as its fast path for the common
 * case (an upright, sRGB or greyscale JPEG), where it decodes once at the
 * smallest scale that still covers the largest size asked for, and encodes
 * the results; everything else goes through libvips. It also counts a
 * JPEG's scans without decoding it, for both paths, since libvips' JPEG
 * loader has no limit on them.
 *
 * Thread-safe: no shared state.
 */
#ifndef PS_JPEG_H
#define PS_JPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct jpeg_rgb {
	unsigned char	*data;	/* w * h * 3 bytes, owned; free() */
	int		 w, h;	/* as decoded (possibly scaled) */
	int		 full_w, full_h;	/* the image's own size */
};

struct jpeg_info {
	int		 w, h;
	/*
	 * Nothing but the image and a plain JFIF header: no EXIF, ICC, XMP,
	 * Adobe or other application segment, no comment, no JFIF
	 * thumbnail; 8-bit Huffman-coded YCbCr or greyscale, which every
	 * browser shows. Such a file at the size wanted is kept as it is.
	 */
	bool		 bare;
};

/*
 * What one decode may spend; a zero field means no limit. The budget is
 * enforced through libjpeg's progress monitor, which runs before each
 * scan and after each row of blocks, so a refusal comes before the scan
 * over the limit is decoded.
 */
struct jpeg_budget {
	unsigned	 max_scans;	/* scans decoded (SOS segments) */
	unsigned	 max_ms;	/* milliseconds from start_ms */
	int64_t		 start_ms;	/* on now_ms()'s clock */
	int64_t		(*now_ms)(void);	/* NULL: time_mono_ms() */
};

/*
 * Counts the scans (SOS segments) of the JPEG `in`, without decoding, in
 * the order libjpeg meets them: from SOI, each marker segment skipped by
 * its length (one under 2 counts as 2, as libjpeg reads it), each scan's
 * entropy-coded data skipped to the next marker (0xFF00 is a stuffed
 * byte; fill bytes and RST0-7 belong to the scan), stray bytes between
 * markers skipped as libjpeg resynchronises, up to EOI or the end of
 * the data. A parser of untrusted input: it accepts any bytes and reads
 * nothing outside `in`. *count receives the scans found; in a truncated
 * or damaged file, those before the damage (its decoder refuses the
 * file anyway). PS_EINVAL when `in` does not start with SOI (0xFFD8);
 * PS_EIMAGE when there are more than `max` scans, with a sentence ("the
 * JPEG has 5000 scans; the limit is 100").
 */
ps_err	jpeg_scan_count(const void *in, size_t len, unsigned max,
	    unsigned *count);

/* Reads the header only; PS_EINVAL when `in` is not a JPEG we read. */
ps_err	jpeg_probe(const void *in, size_t len, struct jpeg_info *out);

/*
 * Decodes `in` to 8-bit RGB, scaled down by 1/2, 1/4 or 1/8 when the
 * smaller side still reaches `min_side`. Declines (PS_EINVAL, nothing
 * decoded) anything the fast path does not handle: not a JPEG, an EXIF
 * orientation other than upright, an ICC profile, CMYK, any libjpeg
 * warning (truncation included), width * height over `max_pixels`.
 * Refuses (PS_EIMAGE, with a sentence, nothing decoded) a file that goes
 * over `budget` (borrowed; NULL: none): more scans than max_scans, or
 * decoding past start_ms + max_ms.
 */
ps_err	jpeg_decode(const void *in, size_t len, int min_side,
	    uint64_t max_pixels, const struct jpeg_budget *budget,
	    struct jpeg_rgb *out);

/* Encodes RGB as a baseline JPEG with no metadata; the caller frees. */
ps_err	jpeg_encode(const unsigned char *rgb, int w, int h, int quality,
	    unsigned char **out, size_t *len);

#endif
