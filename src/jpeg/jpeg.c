/*
 * libjpeg-turbo decode (scaled) and encode, with an error manager that
 * turns every error and warning into a clean refusal and a progress
 * monitor that holds a decode to its budget; and a scan counter that
 * walks the markers without libjpeg, for any decoder's benefit.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "jpeg.h"

#define M_SOI	0xd8
#define M_EOI	0xd9
#define M_SOS	0xda

struct guard {
	struct jpeg_error_mgr	pub;
	jmp_buf			jump;
};

static void
on_error(j_common_ptr c)
{
	longjmp(((struct guard *)c->err)->jump, 1);
}

/* Warnings (a truncated file, a corrupt segment) end the fast path too. */
static void
on_message(j_common_ptr c, int level)
{
	if (level < 0)
		longjmp(((struct guard *)c->err)->jump, 1);
}

/*
 * libjpeg's progress monitor for one decode: called before each scan is
 * read and after each row of blocks (each row of pixels on output), so
 * the scans are checked before the one over the limit costs anything.
 * The clock is read at every 16th call only (a read costs tens of
 * nanoseconds on a virtual machine, and a thumbnail has a few hundred
 * rows); 16 rows of blocks take milliseconds even at the largest size.
 */
#define WATCH_CLOCK_EVERY	16

struct watch {
	struct jpeg_progress_mgr	 pub;
	const struct jpeg_budget	*budget;
	unsigned			 calls;
	int				 scan;	/* the scan refused, or 0 */
	bool				 late;	/* the time ran out */
};

static void
on_progress(j_common_ptr c)
{
	struct watch *w = (struct watch *)c->progress;
	const struct jpeg_budget *b = w->budget;
	int scan = ((j_decompress_ptr)c)->input_scan_number;
	int64_t now;

	if (b->max_scans != 0 && scan > 0 && (unsigned)scan > b->max_scans) {
		w->scan = scan;
		longjmp(((struct guard *)c->err)->jump, 1);
	}
	if (b->max_ms != 0 && w->calls++ % WATCH_CLOCK_EVERY == 0) {
		now = b->now_ms != NULL ? b->now_ms() : time_mono_ms();
		if (now - b->start_ms > (int64_t)b->max_ms) {
			w->late = true;
			longjmp(((struct guard *)c->err)->jump, 1);
		}
	}
}

/*
 * Moves *pos past the next marker at or after it and gives its code, as
 * libjpeg's next_marker() and its entropy decoders find markers: bytes
 * other than 0xFF are skipped (entropy-coded data, or stray bytes that
 * libjpeg warns about), a run of 0xFF is one, and 0xFF followed by 0x00
 * is a stuffed data byte. False when the data ends first.
 */
static bool
next_marker(const unsigned char *p, size_t len, size_t *pos, unsigned *m)
{
	const unsigned char *ff;
	size_t i = *pos;

	while (i < len) {
		ff = memchr(p + i, 0xff, len - i);
		if (ff == NULL)
			break;
		i = (size_t)(ff - p) + 1;
		while (i < len && p[i] == 0xff)
			i++;
		if (i == len)
			break;
		if (p[i] != 0x00) {
			*m = p[i];
			*pos = i + 1;
			return true;
		}
		i++;
	}
	*pos = len;
	return false;
}

ps_err
jpeg_scan_count(const void *in, size_t len, unsigned max, unsigned *count)
{
	const unsigned char *p = in;
	size_t i = 2, seg;
	unsigned m, n = 0;

	*count = 0;
	if (len < 2 || p[0] != 0xff || p[1] != M_SOI)
		return PS_EINVAL;
	while (next_marker(p, len, &i, &m)) {
		if (m == M_EOI)
			break;
		/* TEM, RST0-7 and SOI have no length: libjpeg passes them. */
		if (m == 0x01 || (m >= 0xd0 && m <= M_SOI))
			continue;
		if (m == M_SOS)
			n++;
		if (len - i < 2)
			break;
		/* libjpeg reads a length under 2 as the 2 bytes it has read. */
		seg = (size_t)p[i] << 8 | p[i + 1];
		if (seg < 2)
			seg = 2;
		if (seg > len - i)
			break;
		/* After SOS, next_marker() skips the scan's data. */
		i += seg;
	}
	*count = n;
	if (n > max)
		return ps_errf(PS_EIMAGE, "the JPEG has %u scans; the limit is "
		    "%u", n, max);
	return PS_OK;
}

static unsigned
be16(const unsigned char *p, bool le)
{
	return le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static unsigned long
be32(const unsigned char *p, bool le)
{
	return le ? (unsigned long)p[0] | (unsigned long)p[1] << 8 |
	    (unsigned long)p[2] << 16 | (unsigned long)p[3] << 24 :
	    (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 |
	    (unsigned long)p[2] << 8 | p[3];
}

/* The EXIF orientation (1..8) of an APP1 payload; 1 when absent. */
static int
exif_orientation(const unsigned char *p, size_t n)
{
	const unsigned char *t;
	unsigned long ifd;
	unsigned i, count;
	bool le;

	if (n < 14 || memcmp(p, "Exif\0\0", 6) != 0)
		return 1;
	t = p + 6;
	n -= 6;
	if (memcmp(t, "II*\0", 4) == 0)
		le = true;
	else if (memcmp(t, "MM\0*", 4) == 0)
		le = false;
	else
		return 0;	/* unreadable: let libvips decide */
	ifd = be32(t + 4, le);
	if (ifd + 2 > n)
		return 0;
	count = be16(t + ifd, le);
	for (i = 0; i < count; i++) {
		const unsigned char *e = t + ifd + 2 + 12 * i;

		if ((size_t)(e + 12 - t) > n)
			return 0;
		if (be16(e, le) == 0x0112)
			return (int)be16(e + 8, le);
	}
	return 1;
}

ps_err
jpeg_probe(const void *in, size_t len, struct jpeg_info *out)
{
	struct jpeg_decompress_struct d;
	struct guard g;
	jpeg_saved_marker_ptr m;
	int code;

	memset(out, 0, sizeof(*out));
	if (len < 4 || memcmp(in, "\xff\xd8\xff", 3) != 0)
		return PS_EINVAL;
	d.err = jpeg_std_error(&g.pub);
	g.pub.error_exit = on_error;
	g.pub.emit_message = on_message;
	if (setjmp(g.jump)) {
		jpeg_destroy_decompress(&d);
		return PS_EINVAL;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, in, (unsigned long)len);
	/* Only whether they are there, and which APP0 it is. */
	for (code = JPEG_APP0; code <= JPEG_APP0 + 15; code++)
		jpeg_save_markers(&d, code, 16);
	jpeg_save_markers(&d, JPEG_COM, 1);
	jpeg_read_header(&d, TRUE);
	out->w = (int)d.image_width;
	out->h = (int)d.image_height;
	out->bare = d.data_precision == 8 && !d.arith_code &&
	    ((d.jpeg_color_space == JCS_YCbCr && d.num_components == 3) ||
	    (d.jpeg_color_space == JCS_GRAYSCALE && d.num_components == 1));
	for (m = d.marker_list; m; m = m->next)
		if (m->marker != JPEG_APP0 || m->original_length != 14 ||
		    memcmp(m->data, "JFIF", 5) != 0)
			out->bare = false;
	jpeg_destroy_decompress(&d);
	return PS_OK;
}

ps_err
jpeg_decode(const void *in, size_t len, int min_side, uint64_t max_pixels,
    const struct jpeg_budget *budget, struct jpeg_rgb *out)
{
	struct jpeg_decompress_struct d;
	struct guard g;
	struct watch w;
	jpeg_saved_marker_ptr m;
	unsigned char *volatile rgb = NULL;
	unsigned denom;
	volatile ps_err rc = PS_EINVAL;	/* kept across longjmp */

	memset(out, 0, sizeof(*out));
	if (len < 4 || memcmp(in, "\xff\xd8\xff", 3) != 0)
		return rc;
	d.err = jpeg_std_error(&g.pub);
	g.pub.error_exit = on_error;
	g.pub.emit_message = on_message;
	memset(&w, 0, sizeof(w));
	w.pub.progress_monitor = on_progress;
	w.budget = budget;
	/*
	 * w and d live in memory (libjpeg holds their addresses), so what
	 * on_progress() wrote is there after the jump, as in libjpeg's
	 * example.
	 */
	if (setjmp(g.jump)) {
		free(rgb);
		jpeg_destroy_decompress(&d);
		if (w.scan != 0)
			return ps_errf(PS_EIMAGE, "the JPEG has more than %u "
			    "scans (the limit); decoding stopped at scan %d",
			    budget->max_scans, w.scan);
		if (w.late)
			return ps_errf(PS_EIMAGE, "decoding the image took "
			    "longer than its limit of %u ms", budget->max_ms);
		return PS_EINVAL;
	}
	jpeg_create_decompress(&d);
	if (budget != NULL && (budget->max_scans != 0 || budget->max_ms != 0))
		d.progress = &w.pub;
	jpeg_mem_src(&d, in, (unsigned long)len);
	jpeg_save_markers(&d, JPEG_APP0 + 1, 0xffff);
	jpeg_save_markers(&d, JPEG_APP0 + 2, 0xffff);
	jpeg_read_header(&d, TRUE);
	if ((uint64_t)d.image_width * d.image_height > max_pixels ||
	    (d.jpeg_color_space != JCS_YCbCr &&
	    d.jpeg_color_space != JCS_GRAYSCALE))
		goto out;
	for (m = d.marker_list; m; m = m->next) {
		if (m->marker == JPEG_APP0 + 2)
			goto out;	/* an ICC profile: convert with libvips */
		if (m->marker == JPEG_APP0 + 1 &&
		    exif_orientation(m->data, m->data_length) != 1)
			goto out;
	}
	/* The smallest scale whose smaller side still covers min_side. */
	for (denom = 8; denom > 1; denom /= 2)
		if ((d.image_width < d.image_height ? d.image_width :
		    d.image_height) / denom >= (unsigned)min_side)
			break;
	d.scale_num = 1;
	d.scale_denom = denom;
	d.out_color_space = JCS_RGB;
	d.dct_method = JDCT_ISLOW;
	jpeg_start_decompress(&d);
	rgb = xmalloc((size_t)d.output_width * d.output_height * 3);
	while (d.output_scanline < d.output_height) {
		JSAMPROW row = rgb + (size_t)d.output_scanline *
		    d.output_width * 3;

		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	out->data = rgb;
	out->w = (int)d.output_width;
	out->h = (int)d.output_height;
	out->full_w = (int)d.image_width;
	out->full_h = (int)d.image_height;
	rgb = NULL;
	rc = PS_OK;
out:
	jpeg_destroy_decompress(&d);
	return rc;
}

ps_err
jpeg_encode(const unsigned char *rgb, int w, int h, int quality,
    unsigned char **out, size_t *len)
{
	struct jpeg_compress_struct c;
	struct guard g;
	unsigned char *buf = NULL;
	unsigned long size = 0;
	int y;

	c.err = jpeg_std_error(&g.pub);
	g.pub.error_exit = on_error;
	if (setjmp(g.jump)) {
		jpeg_destroy_compress(&c);
		free(buf);
		return ps_errf(PS_EIMAGE, "the JPEG could not be encoded");
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &size);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	jpeg_start_compress(&c, TRUE);
	for (y = 0; y < h; y++) {
		JSAMPROW row = (JSAMPROW)(rgb + (size_t)y * (size_t)w * 3);

		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	/* Ours to free with free(), like every image module output. */
	*out = xmalloc(size);
	memcpy(*out, buf, size);
	*len = size;
	free(buf);
	return PS_OK;
}
