/*
 * JPEG decoding and encoding with libjpeg-turbo directly: the only user
 * of libjpeg. The image module uses it as its fast path for the common
 * case (an upright, sRGB or greyscale JPEG), where it decodes once at the
 * smallest scale that still covers the largest size asked for, and encodes
 * the results; everything else goes through libvips. Pixels cross this
 * interface as the JPEG holds them, in YCbCr planes (chroma at its own
 * resolution), so that neither side converts colours or resamples chroma
 * that the other would undo. It also counts a JPEG's scans without
 * decoding it, for both paths, since libvips' JPEG loader has no limit on
 * them.
 *
 * Thread-safe: no shared state.
 */
#ifndef PS_JPEG_H
#define PS_JPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * One plane of 8-bit samples: Y, Cb or Cr as JFIF defines them (full
 * range, the ITU-R BT.601 matrix). A sample covers xdiv x ydiv pixels
 * of the image (this module's planes: 1, or 2 for subsampled chroma), so
 * a plane of an image w pixels wide is ceil(w / xdiv) samples wide, and
 * its last sample may stand for pixels beyond the image's edge.
 */
struct jpeg_plane {
	unsigned char	*data;		/* sample (0, 0); in the planes' mem */
	size_t		 stride;	/* bytes from one row to the next */
	int		 w, h;		/* samples */
	int		 xdiv, ydiv;	/* pixels per sample */
};

/*
 * An image as planes: Y, Cb and Cr, or Y alone for greyscale. Release
 * with jpeg_planes_cleanup().
 */
#define JPEG_PLANES	3

struct jpeg_planes {
	struct jpeg_plane	 plane[JPEG_PLANES];
	int			 n;		/* 1 (greyscale) or 3 */
	int			 w, h;		/* pixels (possibly scaled) */
	int			 full_w, full_h; /* the file's (decoded) */
	unsigned char		*mem;		/* owned: every plane */
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
 * Decodes `in` to planes as the file stores them (Y, Cb, Cr or Y alone),
 * without colour conversion or chroma upsampling, scaled down by 1/2,
 * 1/4 or 1/8 when the smaller side still reaches `min_side` (libjpeg
 * scales subsampled chroma less, so a plane may come out with xdiv 1
 * where the file has 2). Declines (PS_EINVAL, nothing decoded) anything
 * the fast path does not handle: not a JPEG, an EXIF orientation other
 * than upright, an ICC profile, CMYK or RGB-coded colour, sampling other
 * than Y at full resolution and each chroma plane at full or half
 * resolution on each axis (4:4:4, 4:2:2, 4:2:0, 4:4:0), any libjpeg
 * warning (truncation included), width * height over `max_pixels`.
 * Refuses (PS_EIMAGE, with a sentence, nothing decoded) a file that goes
 * over `budget` (borrowed; NULL: none): more scans than max_scans, or
 * decoding past start_ms + max_ms. On success the caller owns `out` and
 * releases it with jpeg_planes_cleanup(); on failure `out` is zeroed.
 */
ps_err	jpeg_decode(const void *in, size_t len, int min_side,
	    uint64_t max_pixels, const struct jpeg_budget *budget,
	    struct jpeg_planes *out);

/*
 * Allocates the planes of a w x h YCbCr 4:2:0 image to fill and give to
 * jpeg_encode(): Y w x h with xdiv 1, Cb and Cr ceil(w / 2) x ceil(h / 2)
 * with xdiv 2. Each row has room for its width rounded up to 16 samples
 * (the encoder pads into it; the caller may write there too). Samples
 * are not initialised. w and h are 1 to 65500 (JPEG's limit); allocation
 * failure aborts (xmalloc). Release with jpeg_planes_cleanup().
 */
void	jpeg_planes_init(struct jpeg_planes *p, int w, int h);

/* Frees p->mem and zeroes `p`; safe on a zeroed struct. */
void	jpeg_planes_cleanup(struct jpeg_planes *p);

/*
 * Encodes the planes `im` (from jpeg_planes_init(), every sample of the
 * w x h image filled) as a baseline JFIF JPEG, YCbCr 4:2:0, with no
 * other metadata. The samples past the right and bottom edges, up to the
 * next whole block, are overwritten with copies of the edge. *out is
 * the caller's to free().
 */
ps_err	jpeg_encode(struct jpeg_planes *im, int quality, unsigned char **out,
	    size_t *len);

/*
 * The optimal Huffman table for the symbol counts `freq` (257 of them:
 * freq[256] is set to 1 here, so that no symbol gets the code of all
 * ones, and the counts are consumed), built as T.81 Annex K.2 and K.3
 * say and exactly as libjpeg's jpeg_gen_optimal_table() builds it:
 * bits[1..16] how many codes of each length, huffval the symbols by code
 * length. jpeg_encode() writes its tables with it. False when a code
 * would be longer than 32 bits before folding (counts that no image
 * gives: libjpeg refuses them too). At least one count must be non-zero.
 */
bool	jpeg_huff_table(long freq[257], unsigned char bits[17],
	    unsigned char huffval[256]);

#endif
