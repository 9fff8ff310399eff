/*
 * libjpeg-turbo decode (scaled, to YCbCr planes) and encode (from YCbCr
 * 4:2:0 planes, with optimised Huffman tables whose statistics and
 * tables are computed here), with an error manager that turns every
 * error and warning into a clean refusal and a progress monitor that
 * holds a decode to its budget; and a scan counter that walks the
 * markers without libjpeg, for any decoder's benefit.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <jpegint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

static __attribute__((noreturn)) void
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

/*
 * libjpeg 7 split the IDCT's scaled size into across and down; 6b's
 * interface (libjpeg-turbo's default) has one for both.
 */
#if JPEG_LIB_VERSION >= 70
#define DCT_H_SCALED(c)		((c)->DCT_h_scaled_size)
#define DCT_V_SCALED(c)		((c)->DCT_v_scaled_size)
#define MIN_DCT_H_SCALED(d)	((d)->min_DCT_h_scaled_size)
#define MIN_DCT_V_SCALED(d)	((d)->min_DCT_v_scaled_size)
#else
#define DCT_H_SCALED(c)		((c)->DCT_scaled_size)
#define DCT_V_SCALED(c)		((c)->DCT_scaled_size)
#define MIN_DCT_H_SCALED(d)	((d)->min_DCT_scaled_size)
#define MIN_DCT_V_SCALED(d)	((d)->min_DCT_scaled_size)
#endif

/* The most rows of one component in an iMCU row that we accept. */
#define MAX_IMCU_ROWS	(2 * DCTSIZE)

/*
 * How many decoded pixels one sample of a component covers on one axis,
 * given the largest sampling factor and the smallest scaled block size
 * (the image's) and the component's own: 1 or 2, or 0 for anything
 * else. libjpeg enlarges a subsampled component's IDCT where the scale
 * allows, so 4:2:0 chroma decoded at 1/2 comes out at full resolution.
 */
static int
plane_div(int max_samp, int min_scaled, int samp, int scaled)
{
	int num = max_samp * min_scaled, den = samp * scaled;

	if (den <= 0 || num % den != 0 || num / den > 2)
		return 0;
	return num / den;
}

static size_t
round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

/*
 * The work of jpeg_decode() once libjpeg's error handling is set: reads
 * the header, declines what the fast path does not handle (PS_EINVAL),
 * else decodes into out->mem, which it sets as soon as it allocates it
 * so that the caller frees it after a jump. In its own function so that
 * none of its locals lives across the caller's setjmp().
 */
static ps_err
decode_planes(j_decompress_ptr d, int min_side, uint64_t max_pixels,
    struct jpeg_planes *out)
{
	jpeg_saved_marker_ptr m;
	jpeg_component_info *c;
	JSAMPROW rows[JPEG_PLANES][MAX_IMCU_ROWS];
	JSAMPARRAY arrays[JPEG_PLANES];
	size_t size[JPEG_PLANES], total = 0, off;
	unsigned denom, imcu_rows, mcus, iy;
	int ci, k, n, per[JPEG_PLANES];

	jpeg_save_markers(d, JPEG_APP0 + 1, 0xffff);
	jpeg_save_markers(d, JPEG_APP0 + 2, 0xffff);
	jpeg_read_header(d, TRUE);
	n = d->num_components;
	if ((uint64_t)d->image_width * d->image_height > max_pixels ||
	    !((d->jpeg_color_space == JCS_YCbCr && n == 3) ||
	    (d->jpeg_color_space == JCS_GRAYSCALE && n == 1)) ||
	    d->max_h_samp_factor > 2 || d->max_v_samp_factor > 2)
		return PS_EINVAL;
	for (m = d->marker_list; m; m = m->next) {
		if (m->marker == JPEG_APP0 + 2)
			return PS_EINVAL;	/* an ICC profile: libvips */
		if (m->marker == JPEG_APP0 + 1 &&
		    exif_orientation(m->data, m->data_length) != 1)
			return PS_EINVAL;
	}
	/* The smallest scale whose smaller side still covers min_side. */
	for (denom = 8; denom > 1; denom /= 2)
		if ((d->image_width < d->image_height ? d->image_width :
		    d->image_height) / denom >= (unsigned)min_side)
			break;
	d->scale_num = 1;
	d->scale_denom = denom;
	d->raw_data_out = TRUE;
	d->dct_method = JDCT_ISLOW;
	/* The planes' geometry, before any scan is read. */
	jpeg_calc_output_dimensions(d);
	imcu_rows = (d->image_height + (unsigned)d->max_v_samp_factor *
	    DCTSIZE - 1) / ((unsigned)d->max_v_samp_factor * DCTSIZE);
	mcus = (d->image_width + (unsigned)d->max_h_samp_factor * DCTSIZE -
	    1) / ((unsigned)d->max_h_samp_factor * DCTSIZE);
	for (ci = 0; ci < n; ci++) {
		struct jpeg_plane *p = &out->plane[ci];

		c = &d->comp_info[ci];
		p->xdiv = plane_div(d->max_h_samp_factor, MIN_DCT_H_SCALED(d),
		    c->h_samp_factor, DCT_H_SCALED(c));
		p->ydiv = plane_div(d->max_v_samp_factor, MIN_DCT_V_SCALED(d),
		    c->v_samp_factor, DCT_V_SCALED(c));
		per[ci] = c->v_samp_factor * DCT_V_SCALED(c);
		if (p->xdiv == 0 || p->ydiv == 0 ||
		    (ci == 0 && (p->xdiv != 1 || p->ydiv != 1)) ||
		    per[ci] > MAX_IMCU_ROWS)
			return PS_EINVAL;
		p->w = (int)c->downsampled_width;
		p->h = (int)c->downsampled_height;
		/* Whole MCUs across: libjpeg writes whole blocks. */
		p->stride = (size_t)mcus * (size_t)c->h_samp_factor *
		    (size_t)DCT_H_SCALED(c);
		size[ci] = p->stride * imcu_rows * (size_t)per[ci];
		total += size[ci];
	}
	out->mem = xmalloc(total);
	for (ci = 0, off = 0; ci < n; ci++) {
		out->plane[ci].data = out->mem + off;
		arrays[ci] = rows[ci];
		off += size[ci];
	}
	jpeg_start_decompress(d);
	for (iy = 0; d->output_scanline < d->output_height; iy++) {
		for (ci = 0; ci < n; ci++)
			for (k = 0; k < per[ci]; k++)
				rows[ci][k] = out->plane[ci].data +
				    ((size_t)iy * (size_t)per[ci] + (size_t)k) *
				    out->plane[ci].stride;
		if (jpeg_read_raw_data(d, arrays, (JDIMENSION)
		    (d->max_v_samp_factor * MIN_DCT_V_SCALED(d))) == 0)
			return PS_EINVAL;	/* the data ended */
	}
	jpeg_finish_decompress(d);
	out->n = n;
	out->w = (int)d->output_width;
	out->h = (int)d->output_height;
	out->full_w = (int)d->image_width;
	out->full_h = (int)d->image_height;
	return PS_OK;
}

ps_err
jpeg_decode(const void *in, size_t len, int min_side, uint64_t max_pixels,
    const struct jpeg_budget *budget, struct jpeg_planes *out)
{
	struct jpeg_decompress_struct d;
	struct guard g;
	struct watch w;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if (len < 4 || memcmp(in, "\xff\xd8\xff", 3) != 0)
		return PS_EINVAL;
	d.err = jpeg_std_error(&g.pub);
	g.pub.error_exit = on_error;
	g.pub.emit_message = on_message;
	memset(&w, 0, sizeof(w));
	w.pub.progress_monitor = on_progress;
	w.budget = budget;
	/*
	 * w, d and *out live in memory (libjpeg holds their addresses), so
	 * what on_progress() and decode_planes() wrote is there after the
	 * jump, as in libjpeg's example.
	 */
	if (setjmp(g.jump)) {
		jpeg_planes_cleanup(out);
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
	rc = decode_planes(&d, min_side, max_pixels, out);
	if (rc != PS_OK)
		jpeg_planes_cleanup(out);
	jpeg_destroy_decompress(&d);
	return rc;
}

void
jpeg_planes_init(struct jpeg_planes *p, int w, int h)
{
	size_t ys, cs;
	int cw = (w + 1) / 2, ch = (h + 1) / 2, i;

	memset(p, 0, sizeof(*p));
	/* Room for the encoder's padding to whole blocks on the right. */
	ys = round_up((size_t)w, 16);
	cs = round_up((size_t)cw, 16);
	p->mem = xmalloc(ys * (size_t)h + 2 * cs * (size_t)ch);
	p->n = 3;
	p->w = w;
	p->h = h;
	p->plane[0] = (struct jpeg_plane){ p->mem, ys, w, h, 1, 1 };
	for (i = 1; i < 3; i++)
		p->plane[i] = (struct jpeg_plane){ p->mem + ys * (size_t)h +
		    (size_t)(i - 1) * cs * (size_t)ch, cs, cw, ch, 2, 2 };
}

void
jpeg_planes_cleanup(struct jpeg_planes *p)
{
	free(p->mem);
	memset(p, 0, sizeof(*p));
}

/* ---- optimal Huffman tables ---- */

/*
 * Every encode here asks for optimal Huffman tables (files 12 to 41 %
 * smaller than with the standard ones), and libjpeg's way to them cost
 * more than the rest of the encode for the portal's small sizes: a pass
 * over every block that looks at each of its 64 coefficients in turn
 * (htest_one_block()), then each of four tables built with the
 * procedure of T.81 Annex K.2 as written, which scans all 257 symbols
 * twice per merge. Together they were 13 % of a first `portal refresh`.
 *
 * So jpeg_encode() has libjpeg's statistics pass call two functions of
 * ours instead (the entropy encoder's encode_mcu and finish_pass, which
 * libjpeg lets a program replace: jpegint.h). The count of a block
 * finds its non-zero coefficients from a bit mask, 16 at a time with
 * SSE2, and visits only those, in zigzag order; the tables are built
 * with a binary heap. The output pass stays libjpeg's, with the tables
 * ours put in cinfo, so the file is the same, byte for byte, as
 * libjpeg's own optimisation writes (test_image.c checks it).
 */
#define HUFF_SYMBOLS	257	/* 256 and the reserved pseudo-symbol */
#define HUFF_MAX_CLEN	32

/* Zigzag index of each coefficient in natural (row by row) order. */
static const unsigned char zigzag_of[DCTSIZE2] = {
	0, 1, 5, 6, 14, 15, 27, 28,
	2, 4, 7, 13, 16, 26, 29, 42,
	3, 8, 12, 17, 25, 30, 41, 43,
	9, 11, 18, 24, 31, 40, 44, 53,
	10, 19, 23, 32, 39, 45, 52, 54,
	20, 22, 33, 38, 46, 51, 55, 60,
	21, 34, 37, 47, 50, 56, 59, 61,
	35, 36, 48, 49, 57, 58, 62, 63,
};

/* Symbol counts of one scan, per table, as libjpeg keeps them. */
struct huff_counts {
	long	dc[NUM_HUFF_TBLS][HUFF_SYMBOLS];
	long	ac[NUM_HUFF_TBLS][HUFF_SYMBOLS];
	int	last_dc[MAX_COMPS_IN_SCAN];
};

/* Bits of the magnitude of v (0 for 0), as T.81 F.1.2 counts them. */
static inline int
magnitude_bits(int v)
{
	return v == 0 ? 0 : 32 - __builtin_clz((unsigned)(v < 0 ? -v : v));
}

/* Natural-order bit mask of the non-zero coefficients of `block`. */
static inline uint64_t
nonzero_mask(const JCOEF *block)
{
#ifdef __SSE2__
	const __m128i zero = _mm_setzero_si128();
	uint64_t zeros = 0;
	__m128i a, b;
	int i;

	for (i = 0; i < 4; i++) {
		a = _mm_loadu_si128((const __m128i *)(block + 16 * i));
		b = _mm_loadu_si128((const __m128i *)(block + 16 * i + 8));
		zeros |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_packs_epi16(
		    _mm_cmpeq_epi16(a, zero), _mm_cmpeq_epi16(b, zero))) <<
		    (16 * i);
	}
	return ~zeros;
#else
	uint64_t m = 0;
	int i;

	for (i = 0; i < DCTSIZE2; i++)
		if (block[i] != 0)
			m |= (uint64_t)1 << i;
	return m;
#endif
}

/*
 * Counts the symbols of one block as libjpeg's htest_one_block() does
 * (T.81 F.1.2): the DC difference's size, then for each non-zero AC
 * coefficient in zigzag order its run of zeros before it (0xF0 for each
 * run of 16) and size, and an end of block unless the last one is
 * non-zero. Sizes over what 8-bit samples can give are libjpeg's error.
 */
static void
count_block(j_compress_ptr c, const JCOEF *block, int *last_dc, long *dc,
    long *ac)
{
	uint64_t nz = nonzero_mask(block) & ~(uint64_t)1, zz = 0;
	unsigned char size_at[DCTSIZE2];
	int n, k, prev = 0, run, bits;

	bits = magnitude_bits(block[0] - *last_dc);
	*last_dc = block[0];
	if (bits > c->data_precision + 3)
		ERREXIT(c, JERR_BAD_DCT_COEF);
	dc[bits]++;
	/* The non-zero ones, moved to their zigzag places. */
	while (nz != 0) {
		n = __builtin_ctzll(nz);
		nz &= nz - 1;
		k = zigzag_of[n];
		zz |= (uint64_t)1 << k;
		size_at[k] = (unsigned char)magnitude_bits(block[n]);
	}
	while (zz != 0) {
		k = __builtin_ctzll(zz);
		zz &= zz - 1;
		for (run = k - prev - 1; run > 15; run -= 16)
			ac[0xf0]++;
		if (size_at[k] > c->data_precision + 2)
			ERREXIT(c, JERR_BAD_DCT_COEF);
		ac[(run << 4) + size_at[k]]++;
		prev = k;
	}
	if (prev != DCTSIZE2 - 1)
		ac[0]++;
}

/* The statistics pass's encode_mcu: counts each block of an MCU. */
static boolean
count_mcu(j_compress_ptr c, JBLOCKROW *mcu)
{
	struct huff_counts *hc = c->client_data;
	jpeg_component_info *comp;
	int b, ci;

	for (b = 0; b < c->blocks_in_MCU; b++) {
		ci = c->MCU_membership[b];
		comp = c->cur_comp_info[ci];
		count_block(c, mcu[b][0], &hc->last_dc[ci],
		    hc->dc[comp->dc_tbl_no], hc->ac[comp->ac_tbl_no]);
	}
	return TRUE;
}

/* Whether heap entry a goes before b: less frequent, or a larger symbol. */
static inline bool
huff_before(const long *freq, int a, int b)
{
	return freq[a] < freq[b] || (freq[a] == freq[b] && a > b);
}

static void
huff_sift_down(int *heap, int n, int i, const long *freq)
{
	int child, t;

	for (;;) {
		child = 2 * i + 1;
		if (child >= n)
			return;
		if (child + 1 < n && huff_before(freq, heap[child + 1],
		    heap[child]))
			child++;
		if (!huff_before(freq, heap[child], heap[i]))
			return;
		t = heap[i];
		heap[i] = heap[child];
		heap[child] = t;
		i = child;
	}
}

static void
huff_push(int *heap, int *n, int sym, const long *freq)
{
	int i = (*n)++, parent, t;

	heap[i] = sym;
	while (i > 0) {
		parent = (i - 1) / 2;
		if (!huff_before(freq, heap[i], heap[parent]))
			return;
		t = heap[i];
		heap[i] = heap[parent];
		heap[parent] = t;
		i = parent;
	}
}

static int
huff_pop(int *heap, int *n, const long *freq)
{
	int top = heap[0];

	heap[0] = heap[--*n];
	huff_sift_down(heap, *n, 0, freq);
	return top;
}

bool
jpeg_huff_table(long freq[257], unsigned char bits[17],
    unsigned char huffval[256])
{
	unsigned char len[HUFF_MAX_CLEN + 1];
	int codesize[HUFF_SYMBOLS], others[HUFF_SYMBOLS];
	int heap[HUFF_SYMBOLS], start[HUFF_MAX_CLEN + 1];
	int n = 0, top, c1, c2, i, j, p;

	memset(len, 0, sizeof(len));
	memset(codesize, 0, sizeof(codesize));
	memset(start, 0, sizeof(start));
	for (i = 0; i < HUFF_SYMBOLS; i++)
		others[i] = -1;
	/* So that no real symbol gets the code of all ones. */
	freq[256] = 1;
	for (i = 0; i < HUFF_SYMBOLS; i++)
		if (freq[i] > 0)
			huff_push(heap, &n, i, freq);
	/*
	 * Huffman's merges in the order of Annex K.2's scans: the least
	 * count first, the larger symbol first among equal counts; the sum
	 * goes back in as the first one's.
	 */
	while (n >= 2) {
		top = c1 = huff_pop(heap, &n, freq);
		c2 = huff_pop(heap, &n, freq);
		freq[c1] += freq[c2];
		freq[c2] = 0;
		/* One bit more for everything in c1's branch, then c2's. */
		codesize[c1]++;
		while (others[c1] >= 0) {
			c1 = others[c1];
			codesize[c1]++;
		}
		others[c1] = c2;
		codesize[c2]++;
		while (others[c2] >= 0) {
			c2 = others[c2];
			codesize[c2]++;
		}
		huff_push(heap, &n, top, freq);
	}
	for (i = 0; i < HUFF_SYMBOLS; i++) {
		if (codesize[i] == 0)
			continue;
		if (codesize[i] > HUFF_MAX_CLEN)
			return false;
		len[codesize[i]]++;
	}
	/* Lengths over 16 folded as Annex K.3 says (libjpeg's steps). */
	for (i = HUFF_MAX_CLEN; i > 16; i--) {
		while (len[i] > 0) {
			j = i - 2;
			while (len[j] == 0)
				j--;
			len[i] -= 2;
			len[i - 1]++;
			len[j + 1] += 2;
			len[j]--;
		}
	}
	/* The pseudo-symbol's place, in the longest length still used. */
	while (len[i] == 0)
		i--;
	len[i]--;
	memcpy(bits, len, 17);
	/* Symbols by code length before the folding, then by value. */
	for (i = 0; i < 256; i++)
		start[codesize[i]]++;
	for (i = 1, p = 0; i <= HUFF_MAX_CLEN; i++) {
		j = start[i];
		start[i] = p;
		p += j;
	}
	for (i = 0; i < 256; i++)
		if (codesize[i] != 0)
			huffval[start[codesize[i]]++] = (unsigned char)i;
	return true;
}

/* The statistics pass's finish_pass: each table used, from its counts. */
static void
count_finish(j_compress_ptr c)
{
	struct huff_counts *hc = c->client_data;
	bool done_dc[NUM_HUFF_TBLS] = { false }, done_ac[NUM_HUFF_TBLS] = {
	    false };
	JHUFF_TBL **t;
	int ci, no;

	for (ci = 0; ci < c->comps_in_scan; ci++) {
		no = c->cur_comp_info[ci]->dc_tbl_no;
		if (!done_dc[no]) {
			t = &c->dc_huff_tbl_ptrs[no];
			if (*t == NULL)
				*t = jpeg_alloc_huff_table((j_common_ptr)c);
			if (!jpeg_huff_table(hc->dc[no], (*t)->bits,
			    (*t)->huffval))
				ERREXIT(c, JERR_HUFF_CLEN_OVERFLOW);
			(*t)->sent_table = FALSE;
			done_dc[no] = true;
		}
		no = c->cur_comp_info[ci]->ac_tbl_no;
		if (!done_ac[no]) {
			t = &c->ac_huff_tbl_ptrs[no];
			if (*t == NULL)
				*t = jpeg_alloc_huff_table((j_common_ptr)c);
			if (!jpeg_huff_table(hc->ac[no], (*t)->bits,
			    (*t)->huffval))
				ERREXIT(c, JERR_HUFF_CLEN_OVERFLOW);
			(*t)->sent_table = FALSE;
			done_ac[no] = true;
		}
	}
}

/*
 * After jpeg_start_compress() has begun the statistics pass of a
 * one-scan encode with optimised tables: its counting is ours. The
 * output pass that follows sets libjpeg's own functions again.
 */
static void
count_with_ours(j_compress_ptr c, struct huff_counts *hc)
{
	if (!c->optimize_coding || c->restart_interval != 0 ||
	    c->num_scans > 1 || c->entropy == NULL)
		return;
	memset(hc, 0, sizeof(*hc));
	c->client_data = hc;
	c->entropy->encode_mcu = count_mcu;
	c->entropy->finish_pass = count_finish;
}

/* Copies the last sample of each row rightwards to a whole block. */
static void
pad_right(struct jpeg_plane *p)
{
	size_t pad = round_up((size_t)p->w, DCTSIZE) - (size_t)p->w;
	unsigned char *row;
	int y;

	if (pad == 0)
		return;
	for (y = 0, row = p->data; y < p->h; y++, row += p->stride)
		memset(row + p->w, row[p->w - 1], pad);
}

ps_err
jpeg_encode(struct jpeg_planes *im, int quality, unsigned char **out,
    size_t *len)
{
	struct jpeg_compress_struct c;
	struct huff_counts counts;
	struct guard g;
	JSAMPROW rows[3][2 * DCTSIZE];
	JSAMPARRAY arrays[3] = { rows[0], rows[1], rows[2] };
	unsigned char *buf = NULL;
	unsigned long size = 0;
	int ci, k, y, r;

	*out = NULL;
	*len = 0;
	if (im->n != 3 || im->w < 1 || im->h < 1)
		return ps_errf(PS_EINVAL, "the planes to encode are not "
		    "YCbCr 4:2:0");
	for (ci = 0; ci < 3; ci++) {
		const struct jpeg_plane *p = &im->plane[ci];
		int div = ci == 0 ? 1 : 2;

		if (p->xdiv != div || p->ydiv != div ||
		    p->w != (im->w + div - 1) / div ||
		    p->h != (im->h + div - 1) / div ||
		    p->stride < round_up((size_t)p->w, DCTSIZE))
			return ps_errf(PS_EINVAL, "the planes to encode are "
			    "not YCbCr 4:2:0");
	}
	for (ci = 0; ci < 3; ci++)
		pad_right(&im->plane[ci]);
	c.err = jpeg_std_error(&g.pub);
	g.pub.error_exit = on_error;
	if (setjmp(g.jump)) {
		jpeg_destroy_compress(&c);
		free(buf);
		return ps_errf(PS_EIMAGE, "the JPEG could not be encoded");
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &size);
	c.image_width = (JDIMENSION)im->w;
	c.image_height = (JDIMENSION)im->h;
	c.input_components = 3;
	c.in_color_space = JCS_YCbCr;
	jpeg_set_defaults(&c);		/* YCbCr, Y 2x2 and chroma 1x1 */
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	c.raw_data_in = TRUE;
	jpeg_start_compress(&c, TRUE);
	count_with_ours(&c, &counts);
	/*
	 * One iMCU row (16 rows of Y, 8 of chroma) at a time; rows past the
	 * bottom repeat the last one, as libjpeg pads a scanline input.
	 */
	for (y = 0; y < im->h; y += 2 * DCTSIZE) {
		for (ci = 0; ci < 3; ci++) {
			const struct jpeg_plane *p = &im->plane[ci];
			int first = y / p->ydiv;

			for (k = 0; k < 2 * DCTSIZE / p->ydiv; k++) {
				r = first + k < p->h ? first + k : p->h - 1;
				rows[ci][k] = p->data + (size_t)r * p->stride;
			}
		}
		jpeg_write_raw_data(&c, arrays, 2 * DCTSIZE);
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
