/*
 * JPEG decoding and encoding with libjpeg-turbo directly: the only user
 * of libjpeg. The image module uses it as its fast path for the common
 * case (an upright, sRGB or greyscale JPEG), where it decodes once at the
 * smallest scale that still covers the largest size asked for, and encodes
 * the results; everything else goes through libvips.
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

/* Reads the header only; PS_EINVAL when `in` is not a JPEG we read. */
ps_err	jpeg_probe(const void *in, size_t len, struct jpeg_info *out);

/*
 * Decodes `in` to 8-bit RGB, scaled down by 1/2, 1/4 or 1/8 when the
 * smaller side still reaches `min_side`. Declines (PS_EINVAL, nothing
 * decoded) anything the fast path does not handle: not a JPEG, an EXIF
 * orientation other than upright, an ICC profile, CMYK, any libjpeg
 * warning (truncation included), width * height over `max_pixels`.
 */
ps_err	jpeg_decode(const void *in, size_t len, int min_side,
	    uint64_t max_pixels, struct jpeg_rgb *out);

/* Encodes RGB as a baseline JPEG with no metadata; the caller frees. */
ps_err	jpeg_encode(const unsigned char *rgb, int w, int h, int quality,
	    unsigned char **out, size_t *len);

#endif
