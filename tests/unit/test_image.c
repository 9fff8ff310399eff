/*
 * Unit tests of the image pipeline: sides and square crops, no upscaling,
 * EXIF orientation, metadata stripping, accepted and refused formats,
 * limits checked before decoding, colour conversion, generated photos,
 * placeholders, identicons, decode budgets (a JPEG's scans, the time a
 * decode takes), the JPEG fast path's planes (chroma samplings, odd
 * sides, crops), the JPEG module's optimal Huffman tables (the same
 * tables and files as libjpeg's) and concurrent use. Inputs are built
 * here with libvips and libjpeg (and ImageMagick, when installed, for
 * its progressive JPEG); there are no fixture files.
 */
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <vips/vips.h>

#include "common/xalloc.h"
#include "image/image.h"
#include "jpeg/jpeg.h"
#include "t.h"

extern char **environ;

static const int hr_sides[] = { 48, 64, 96, 120, 240, 360, 432, 504, 648 };
#define N_HR	(sizeof(hr_sides) / sizeof(hr_sides[0]))

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

typedef void (*fill_fn)(int x, int y, int w, int h, unsigned char *px);

/* A w x h uchar image with `bands` bands, each pixel set by `fill`. */
static VipsImage *
make_image(int w, int h, int bands, fill_fn fill)
{
	unsigned char *data;
	VipsImage *im;
	int x, y;

	data = xmalloc((size_t)w * (size_t)h * (size_t)bands);
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			fill(x, y, w, h, data + ((size_t)y * (size_t)w + (size_t)x) * (size_t)bands);
	im = vips_image_new_from_memory_copy(data, (size_t)w * (size_t)h * (size_t)bands,
	    w, h, bands, VIPS_FORMAT_UCHAR);
	free(data);
	return im;
}

/* Left half red, right half blue. */
static void
fill_red_blue(int x, int y, int w, int h, unsigned char *px)
{
	(void)y;
	(void)h;
	px[0] = x < w / 2 ? 220 : 20;
	px[1] = 20;
	px[2] = x < w / 2 ? 20 : 220;
}

/* Green 50-pixel bands left and right, red in between. */
static void
fill_stripes(int x, int y, int w, int h, unsigned char *px)
{
	bool edge = x < 50 || x >= w - 50;

	(void)y;
	(void)h;
	px[0] = edge ? 20 : 220;
	px[1] = edge ? 220 : 20;
	px[2] = 20;
}

/* A horizontal grey ramp. */
static void
fill_grey(int x, int y, int w, int h, unsigned char *px)
{
	(void)y;
	(void)h;
	px[0] = (unsigned char)(x * 255 / (w - 1));
}

/* CMYK: magenta and yellow at full ink, which is red. */
static void
fill_cmyk_red(int x, int y, int w, int h, unsigned char *px)
{
	(void)x;
	(void)y;
	(void)w;
	(void)h;
	px[0] = 0;
	px[1] = 255;
	px[2] = 255;
	px[3] = 0;
}

/* An orange, as Display P3 numbers. */
static void
fill_p3(int x, int y, int w, int h, unsigned char *px)
{
	(void)x;
	(void)y;
	(void)w;
	(void)h;
	px[0] = 200;
	px[1] = 100;
	px[2] = 50;
}

/* RGBA: left half transparent black, right half opaque blue. */
static void
fill_alpha(int x, int y, int w, int h, unsigned char *px)
{
	(void)y;
	(void)h;
	px[0] = 0;
	px[1] = 0;
	px[2] = x < w / 2 ? 0 : 220;
	px[3] = x < w / 2 ? 0 : 255;
}

/* Grey + alpha: left half transparent, right half opaque light grey. */
static void
fill_grey_alpha(int x, int y, int w, int h, unsigned char *px)
{
	(void)y;
	(void)h;
	px[0] = x < w / 2 ? 0 : 220;
	px[1] = x < w / 2 ? 0 : 255;
}

/* Encodes `im` with a saver given by suffix (".png", ".webp"...). */
static unsigned char *
encode(VipsImage *im, const char *suffix, size_t *len)
{
	void *buf = NULL;

	*len = 0;
	if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL) != 0) {
		vips_error_clear();
		return NULL;
	}
	return buf;
}

/* A JPEG keeping metadata (orientation, EXIF, XMP). */
static unsigned char *
encode_jpeg_meta(VipsImage *im, size_t *len)
{
	void *buf = NULL;

	*len = 0;
	if (vips_jpegsave_buffer(im, &buf, len, "Q", 90, "strip", FALSE,
	    NULL) != 0) {
		vips_error_clear();
		return NULL;
	}
	return buf;
}

static VipsImage *
decode(const struct image_jpeg *j)
{
	VipsImage *im = NULL;

	if (j->data == NULL ||
	    vips_jpegload_buffer(j->data, j->len, &im, NULL) != 0) {
		vips_error_clear();
		return NULL;
	}
	return im;
}

/* The pixel at (x, y) of a 3-band image; false if it cannot be read. */
static bool
pixel(VipsImage *im, int x, int y, double rgb[3])
{
	double *v = NULL;
	int n = 0;

	if (vips_getpoint(im, &v, &n, x, y, NULL) != 0 || n < 3) {
		g_free(v);
		vips_error_clear();
		return false;
	}
	memcpy(rgb, v, 3 * sizeof(double));
	g_free(v);
	return true;
}

static double
absd(double v)
{
	return v < 0 ? -v : v;
}

static bool
near(const double rgb[3], double r, double g, double b, double tol)
{
	return rgb[0] > r - tol && rgb[0] < r + tol &&
	    rgb[1] > g - tol && rgb[1] < g + tol &&
	    rgb[2] > b - tol && rgb[2] < b + tol;
}

/*
 * Walks the JPEG markers up to the scan: the SOF marker found (0xc0 for
 * baseline) and a bit mask of the APPn segments present.
 */
static bool
jpeg_markers(const unsigned char *p, size_t len, int *sof, unsigned *apps)
{
	size_t i = 2;
	int m;

	*sof = 0;
	*apps = 0;
	if (len < 4 || p[0] != 0xff || p[1] != 0xd8)
		return false;
	while (i + 4 <= len) {
		if (p[i] != 0xff)
			return false;
		m = p[i + 1];
		if (m == 0xda)
			return true;
		if (m >= 0xe0 && m <= 0xef)
			*apps |= 1u << (m - 0xe0);
		if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 &&
		    m != 0xcc)
			*sof = m;
		i += 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
	}
	return false;
}

static bool
contains(const void *p, size_t len, const char *s)
{
	return memmem(p, len, s, strlen(s)) != NULL;
}

/* True if any metadata field of `im` names GPS, in any case. */
static bool
has_gps_field(VipsImage *im)
{
	gchar **f = vips_image_get_fields(im);
	bool found = false;
	int i;

	for (i = 0; f[i] != NULL; i++)
		if (strcasestr(f[i], "gps") != NULL)
			found = true;
	g_strfreev(f);
	return found;
}

static void
free_all(struct image_jpeg *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		image_jpeg_free(&out[i]);
}

static bool
all_empty(const struct image_jpeg *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (out[i].data != NULL || out[i].len != 0 || out[i].side != 0)
			return false;
	return true;
}

/* Renders one side; returns the code and fills *j. */
static ps_err
render1(const void *in, size_t len, const struct image_limits *lim,
    int side, struct image_jpeg *j, int *src)
{
	return image_render(in, len, lim, &side, 1, j, src);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void
test_init(void)
{
	struct image_jpeg j = { 0 };

	ok(image_init("test_image") == PS_OK, "init");
	ok(image_init(NULL) == PS_OK, "init again is harmless");
	image_jpeg_free(&j);
	image_jpeg_free(&j);
	image_jpeg_free(NULL);
	ok(j.data == NULL && j.len == 0, "freeing an empty struct is safe");
}

static void
test_generate(void)
{
	struct image_jpeg a = { 0 }, b = { 0 }, c = { 0 };
	VipsImage *ia = NULL, *ib = NULL;
	double pa[3], pb[3];

	ok(image_generate(1, 648, &a) == PS_OK, "generate seed 1");
	ok(image_generate(2, 648, &b) == PS_OK, "generate seed 2");
	ok(image_generate(1, 648, &c) == PS_OK, "generate seed 1 again");
	is_int(a.side, 648, "generated side");
	ok(a.len == c.len && memcmp(a.data, c.data, a.len) == 0,
	    "deterministic for a seed");
	ok(a.len != b.len || memcmp(a.data, b.data, a.len) != 0,
	    "seeds 1 and 2 differ");
	ia = decode(&a);
	ib = decode(&b);
	ok(ia != NULL && ia->Xsize == 648 && ia->Ysize == 648 &&
	    ia->Bands == 3, "a 648x648 colour JPEG");
	ok(ia != NULL && ib != NULL && pixel(ia, 10, 10, pa) &&
	    pixel(ib, 10, 10, pb) &&
	    absd(pa[0] - pb[0]) + absd(pa[1] - pb[1]) + absd(pa[2] - pb[2]) >
	    60, "seeds 1 and 2 have different background colours");
	ok(ia != NULL && pixel(ia, 324, 280, pa) && pixel(ia, 10, 280, pb) &&
	    absd(pa[0] - pb[0]) + absd(pa[1] - pb[1]) + absd(pa[2] - pb[2]) >
	    40, "a figure stands out from the background");
	ok(!contains(a.data, a.len, "Exif"), "generated photo has no EXIF");
	VIPS_UNREF(ia);
	VIPS_UNREF(ib);
	image_jpeg_free(&a);
	image_jpeg_free(&b);
	image_jpeg_free(&c);
	ok(image_generate(1, 4, &a) == PS_EINVAL && a.data == NULL,
	    "tiny side refused");
}

static void
test_placeholder(void)
{
	static const int sides[] = { 1, 16, 48, 72, 300, 648 };
	struct image_jpeg j = { 0 }, k = { 0 };
	VipsImage *im;
	double corner[3], body[3];
	bool dims = true;
	size_t i;

	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		im = NULL;
		if (image_placeholder(sides[i], &j) != PS_OK ||
		    j.side != sides[i] || (im = decode(&j)) == NULL ||
		    im->Xsize != sides[i] || im->Ysize != sides[i] ||
		    im->Bands != 3) {
			dims = false;
			printf("#   placeholder %d failed\n", sides[i]);
		}
		VIPS_UNREF(im);
		image_jpeg_free(&j);
	}
	ok(dims, "placeholders at 1 to 648 pixels");
	ok(image_placeholder(96, &j) == PS_OK &&
	    image_placeholder(96, &k) == PS_OK && j.len == k.len &&
	    memcmp(j.data, k.data, j.len) == 0, "placeholder is deterministic");
	im = decode(&j);
	ok(im != NULL && pixel(im, 3, 3, corner) && pixel(im, 48, 85, body) &&
	    corner[0] < body[0] - 15 && absd(corner[0] - corner[2]) < 12 &&
	    absd(body[0] - body[2]) < 12,
	    "a light grey figure on a darker grey background");
	ok(!contains(j.data, j.len, "Exif"), "placeholder has no EXIF");
	VIPS_UNREF(im);
	image_jpeg_free(&j);
	image_jpeg_free(&k);
	is_int(image_placeholder(0, &j), PS_EINVAL, "side 0 refused");
	ok(j.data == NULL, "and nothing allocated");
}

/* Left and right halves of a decoded identicon mirror each other. */
static bool
mirrored(VipsImage *im)
{
	double a[3], b[3];
	int x, y, s = im->Xsize;

	for (y = s / 12; y < s - s / 12; y += s / 24)
		for (x = s / 12; x < s / 2; x += s / 24) {
			if (!pixel(im, x, y, a) || !pixel(im, s - 1 - x, y, b))
				return false;
			if (absd(a[0] - b[0]) > 24 || absd(a[1] - b[1]) > 24 ||
			    absd(a[2] - b[2]) > 24)
				return false;
		}
	return true;
}

static void
test_identicon(void)
{
	static const int sides[] = { 1, 5, 80, 81, 512 };
	static const unsigned char s1[16] = { 0x5d, 0x41, 0x40, 0x2a, 0xbc,
	    0x4b, 0x2a, 0x76, 0xb9, 0x71, 0x9d, 0x91, 0x10, 0x17, 0xc5, 0x92 };
	unsigned char s2[16];
	struct image_jpeg j = { 0 }, k = { 0 };
	VipsImage *im;
	bool dims = true;
	size_t i;

	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		im = NULL;
		if (image_identicon(s1, sizeof(s1), sides[i], &j) != PS_OK ||
		    j.side != sides[i] || (im = decode(&j)) == NULL ||
		    im->Xsize != sides[i] || im->Ysize != sides[i] ||
		    im->Bands != 3) {
			dims = false;
			printf("#   identicon %d failed\n", sides[i]);
		}
		VIPS_UNREF(im);
		image_jpeg_free(&j);
	}
	ok(dims, "identicons at 1 to 512 pixels");
	ok(image_identicon(s1, sizeof(s1), 96, &j) == PS_OK &&
	    image_identicon(s1, sizeof(s1), 96, &k) == PS_OK &&
	    j.len == k.len && memcmp(j.data, k.data, j.len) == 0,
	    "identicon is deterministic");
	im = decode(&j);
	ok(im != NULL && mirrored(im), "identicon is symmetric");
	ok(!contains(j.data, j.len, "Exif"), "identicon has no EXIF");
	VIPS_UNREF(im);
	image_jpeg_free(&k);
	memcpy(s2, s1, sizeof(s2));
	s2[15] ^= 1;
	ok(image_identicon(s2, sizeof(s2), 96, &k) == PS_OK &&
	    (j.len != k.len || memcmp(j.data, k.data, j.len) != 0),
	    "one bit of seed changes the identicon");
	image_jpeg_free(&j);
	image_jpeg_free(&k);
	is_int(image_identicon(s1, sizeof(s1), 0, &j), PS_EINVAL,
	    "identicon side 0 refused");
	ok(j.data == NULL, "and nothing allocated");
}

static void
test_hr_sides(void)
{
	struct image_jpeg src = { 0 }, out[N_HR];
	VipsImage *im;
	unsigned apps;
	bool dims = true, baseline = true, bare = true;
	int src_side = -1, sof;
	size_t i;

	ok(image_generate(7, 648, &src) == PS_OK, "generate a 648 source");
	ok(image_render(src.data, src.len, NULL, hr_sides, N_HR, out,
	    &src_side) == PS_OK, "render the nine HR sides");
	is_int(src_side, 648, "source side reported");
	for (i = 0; i < N_HR; i++) {
		if (out[i].side != hr_sides[i])
			dims = false;
		im = decode(&out[i]);
		if (im == NULL || im->Xsize != hr_sides[i] ||
		    im->Ysize != hr_sides[i] || im->Bands != 3) {
			dims = false;
			printf("#   side %d: got %dx%d\n", hr_sides[i],
			    im ? im->Xsize : -1, im ? im->Ysize : -1);
		}
		VIPS_UNREF(im);
		if (!jpeg_markers(out[i].data, out[i].len, &sof, &apps) ||
		    sof != 0xc0)
			baseline = false;
		if ((apps & ~1u) != 0)
			bare = false;
	}
	ok(dims, "every output has exactly the requested side");
	ok(baseline, "every output is a baseline JPEG");
	ok(bare, "no APPn segment besides JFIF");
	free_all(out, N_HR);
	image_jpeg_free(&src);
}

/* Odd sides, duplicates and a non-JPEG source keep exact sizes. */
static void
test_odd_sides(void)
{
	static const int sides[] = { 1, 2, 17, 99, 301, 647, 99, 700 };
	enum { N = sizeof(sides) / sizeof(sides[0]) };
	struct image_jpeg out[N];
	VipsImage *im;
	unsigned char *png;
	bool dims = true;
	size_t len, i;
	int src_side = 0;

	im = make_image(1000, 700, 3, fill_stripes);
	png = encode(im, ".png", &len);
	VIPS_UNREF(im);
	ok(image_render(png, len, NULL, sides, N, out, &src_side) == PS_OK,
	    "render odd sides from a 1000x700 PNG");
	is_int(src_side, 700, "source square is 700");
	for (i = 0; i < N; i++) {
		im = decode(&out[i]);
		if (im == NULL || out[i].side != sides[i] ||
		    im->Xsize != sides[i] || im->Ysize != sides[i]) {
			dims = false;
			printf("#   side %d: got %d\n", sides[i], out[i].side);
		}
		VIPS_UNREF(im);
	}
	ok(dims, "each side exact");
	ok(out[3].len == out[6].len &&
	    memcmp(out[3].data, out[6].data, out[3].len) == 0,
	    "a repeated side gives the same bytes");
	free_all(out, N);
	g_free(png);
}

static void
test_no_upscale(void)
{
	static const int sides[] = { 648, 96 };
	struct image_jpeg out[2];
	VipsImage *im, *o;
	unsigned char *png;
	double l[3], r[3], m[3];
	size_t len;
	int src_side = 0;

	im = make_image(300, 200, 3, fill_stripes);
	png = encode(im, ".png", &len);
	VIPS_UNREF(im);
	ok(image_render(png, len, NULL, sides, 2, out, &src_side) == PS_OK,
	    "render a 300x200 source");
	is_int(src_side, 200, "source square is 200");
	is_int(out[0].side, 200, "648 requested gives 200");
	is_int(out[1].side, 96, "96 requested gives 96");
	o = decode(&out[0]);
	ok(o != NULL && o->Xsize == 200 && o->Ysize == 200,
	    "decodes as 200x200");
	ok(o != NULL && pixel(o, 3, 100, l) && pixel(o, 196, 100, r) &&
	    pixel(o, 100, 100, m) && near(l, 220, 20, 20, 40) &&
	    near(r, 220, 20, 20, 40) && near(m, 220, 20, 20, 40),
	    "a centred square crop, not a squeeze");
	VIPS_UNREF(o);
	free_all(out, 2);
	g_free(png);
}

static void
test_metadata(void)
{
	static const char xmp[] = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">"
	    "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-"
	    "ns#\"><rdf:Description xmlns:exif=\"http://ns.adobe.com/exif/"
	    "1.0/\" exif:GPSLatitude=\"52,31.2N\"/></rdf:RDF></x:xmpmeta>";
	struct image_jpeg j = { 0 }, src = { 0 };
	VipsImage *im, *chk = NULL, *o;
	unsigned char *jpg;
	size_t len;

	ok(image_generate(3, 256, &src) == PS_OK, "generate a source");
	im = decode(&src);
	vips_image_set_string(im, "exif-ifd0-Make", "PhotosyncCam");
	vips_image_set_string(im, "exif-ifd3-GPSLatitudeRef", "N");
	vips_image_set_blob_copy(im, "xmp-data", xmp, sizeof(xmp) - 1);
	jpg = encode_jpeg_meta(im, &len);
	VIPS_UNREF(im);
	ok(jpg != NULL && contains(jpg, len, "Exif") &&
	    contains(jpg, len, "PhotosyncCam") &&
	    contains(jpg, len, "GPSLatitude"),
	    "the source carries EXIF and XMP");
	if (jpg != NULL && vips_jpegload_buffer(jpg, len, &chk, NULL) == 0)
		ok(has_gps_field(chk), "the source has a GPS field");
	else
		ok(0, "the source has a GPS field");
	VIPS_UNREF(chk);

	ok(render1(jpg, len, NULL, 120, &j, NULL) == PS_OK, "render it");
	ok(!contains(j.data, j.len, "Exif") &&
	    !contains(j.data, j.len, "PhotosyncCam") &&
	    !contains(j.data, j.len, "GPS") &&
	    !contains(j.data, j.len, "http://ns.adobe.com"),
	    "no EXIF, GPS or XMP bytes in the output");
	o = decode(&j);
	ok(o != NULL && !vips_image_get_typeof(o, "exif-data") &&
	    !vips_image_get_typeof(o, "xmp-data") &&
	    !vips_image_get_typeof(o, "icc-profile-data") &&
	    !has_gps_field(o), "no EXIF, GPS, XMP or ICC fields decoded");
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	image_jpeg_free(&src);
	g_free(jpg);
}

/*
 * Renders a JPEG of `w` x `h` (red left, blue right as stored) tagged
 * with EXIF orientation `o` at `side`, and checks the colours of the
 * output's four quadrants against the expected layout.
 */
static void
check_orientation(int w, int h, int o, int side, const char *layout,
    const char *what)
{
	struct image_jpeg j = { 0 };
	VipsImage *im, *out;
	unsigned char *jpg;
	double px[4][3];
	char got[5] = "????";
	size_t len;
	int src_side = 0, i;
	const int at[4][2] = {
		{ side / 4, side / 4 }, { side * 3 / 4, side / 4 },
		{ side * 3 / 4, side * 3 / 4 }, { side / 4, side * 3 / 4 },
	};

	im = make_image(w, h, 3, fill_red_blue);
	vips_image_set_int(im, "orientation", o);
	jpg = encode_jpeg_meta(im, &len);
	VIPS_UNREF(im);
	ok(render1(jpg, len, NULL, side, &j, &src_side) == PS_OK &&
	    j.side == side && src_side == (w < h ? w : h), what);
	out = decode(&j);
	/*
	 * Top left, top right, bottom right, bottom left: R for red, B for
	 * blue, ? otherwise.
	 */
	for (i = 0; out != NULL && i < 4; i++) {
		if (!pixel(out, at[i][0], at[i][1], px[i]))
			continue;
		if (near(px[i], 220, 20, 20, 60))
			got[i] = 'R';
		else if (near(px[i], 20, 20, 220, 60))
			got[i] = 'B';
	}
	is_str(got, layout, "quadrant colours");
	VIPS_UNREF(out);
	image_jpeg_free(&j);
	g_free(jpg);
}

static void
test_orientation(void)
{
	/*
	 * Stored 200x100, red left, blue right; shown 100x200 for the
	 * quarter turns. The centred square straddles the colour change.
	 */
	check_orientation(200, 100, 1, 100, "RBBR", "orientation 1");
	check_orientation(200, 100, 3, 100, "BRRB", "orientation 3 (180)");
	check_orientation(200, 100, 6, 100, "RRBB", "orientation 6 (90 cw)");
	check_orientation(200, 100, 8, 100, "BBRR", "orientation 8 (90 ccw)");
	check_orientation(200, 100, 2, 100, "BRRB", "orientation 2 (mirror)");
	/* Stored tall: the square is cropped from the middle rows. */
	check_orientation(100, 200, 1, 100, "RBBR", "tall, orientation 1");
	check_orientation(100, 200, 6, 100, "RRBB", "tall, orientation 6");
	/* Large enough for the decoder to shrink by 4 first. */
	check_orientation(2400, 1200, 6, 300, "RRBB",
	    "orientation 6, shrink-on-load");
}

/* Renders `buf` at 48 and checks it comes out red on the left. */
static void
check_format(unsigned char *buf, size_t len, const char *what)
{
	struct image_jpeg j = { 0 };
	char msg[128];
	VipsImage *o;
	double l[3];
	ps_err rc;

	snprintf(msg, sizeof(msg), "%s accepted", what);
	rc = render1(buf, len, NULL, 48, &j, NULL);
	ok(buf != NULL && rc == PS_OK && j.side == 48, msg);
	if (rc != PS_OK)
		printf("#   %s\n", ps_errmsg());
	o = decode(&j);
	snprintf(msg, sizeof(msg), "%s decoded right", what);
	ok(o != NULL && o->Bands == 3 && pixel(o, 4, 24, l) &&
	    near(l, 220, 20, 20, 60), msg);
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);
}

static void
test_formats(void)
{
	VipsImage *im, *frames[2], *anim = NULL, *red, *blue;
	unsigned char *buf;
	size_t len;

	im = make_image(120, 80, 3, fill_red_blue);
	buf = encode(im, ".png", &len);
	check_format(buf, len, "PNG");
	buf = encode(im, ".webp", &len);
	check_format(buf, len, "WebP");
	buf = encode(im, ".gif", &len);
	check_format(buf, len, "GIF");
	buf = encode(im, ".heic", &len);
	if (buf != NULL)
		check_format(buf, len, "HEIF");
	else {
		ok(1, "HEIF accepted # SKIP no HEIF saver in this libvips");
		ok(1, "HEIF decoded right # SKIP no HEIF saver");
	}
	buf = encode(im, ".avif", &len);
	if (buf != NULL)
		check_format(buf, len, "AVIF (HEIF)");
	else {
		ok(1, "AVIF accepted # SKIP no AVIF saver in this libvips");
		ok(1, "AVIF decoded right # SKIP no AVIF saver");
	}

	/* Animated: the first frame is red on the left, the second blue. */
	red = make_image(120, 80, 3, fill_red_blue);
	blue = NULL;
	if (vips_flip(red, &blue, VIPS_DIRECTION_HORIZONTAL, NULL) != 0)
		vips_error_clear();
	frames[0] = red;
	frames[1] = blue;
	if (blue != NULL && vips_arrayjoin(frames, &anim, 2, "across", 1,
	    NULL) == 0) {
		vips_image_set_int(anim, "page-height", 80);
		vips_image_set_int(anim, "n-pages", 2);
		buf = encode(anim, ".gif", &len);
		check_format(buf, len, "animated GIF, first frame");
		buf = encode(anim, ".webp", &len);
		check_format(buf, len, "animated WebP, first frame");
	} else
		ok(0, "build an animation");
	VIPS_UNREF(anim);
	VIPS_UNREF(red);
	VIPS_UNREF(blue);
	VIPS_UNREF(im);
}

static uint32_t
crc32_png(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Appends a PNG chunk at `p`; returns the bytes written. */
static size_t
png_chunk(unsigned char *p, const char *type, const void *data, size_t n)
{
	put32(p, (uint32_t)n);
	memcpy(p + 4, type, 4);
	if (n > 0)
		memcpy(p + 8, data, n);
	put32(p + 8 + n, crc32_png(p + 4, n + 4));
	return 12 + n;
}

/* A PNG whose header claims w x h, with a few junk bytes of data. */
static size_t
bomb_png(unsigned char *p, uint32_t w, uint32_t h)
{
	unsigned char ihdr[13];
	size_t n = 8;

	memcpy(p, "\x89PNG\r\n\x1a\n", 8);
	put32(ihdr, w);
	put32(ihdr + 4, h);
	ihdr[8] = 8;		/* bit depth */
	ihdr[9] = 2;		/* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	n += png_chunk(p + n, "IHDR", ihdr, sizeof(ihdr));
	n += png_chunk(p + n, "IDAT", "\x78\x9c\x01\x02\x03\x04", 6);
	n += png_chunk(p + n, "IEND", NULL, 0);
	return n;
}

static void
test_limits(void)
{
	struct image_limits lim;
	struct image_jpeg out[2], src = { 0 };
	unsigned char png[128], *jpg;
	VipsImage *im;
	unsigned apps;
	size_t len, i;
	int sides[2] = { 48, 96 }, sof;
	ps_err rc;

	len = bomb_png(png, 30000, 30000);
	memset(out, 0xa5, sizeof(out));
	rc = image_render(png, len, NULL, sides, 2, out, NULL);
	is_int(rc, PS_ELIMIT, "a 30000x30000 PNG header is refused");
	ok(strstr(ps_errmsg(), "900000000") != NULL &&
	    strstr(ps_errmsg(), "40000000") != NULL,
	    "the message gives the pixels and the limit");
	printf("#   %s\n", ps_errmsg());
	ok(all_empty(out, 2), "out[] left empty on failure");

	/* A small JPEG whose frame header is patched to 30000x30000. */
	im = make_image(16, 16, 3, fill_red_blue);
	jpg = encode(im, ".jpg", &len);
	VIPS_UNREF(im);
	ok(jpg != NULL && jpeg_markers(jpg, len, &sof, &apps),
	    "a small JPEG to patch");
	for (i = 2; jpg != NULL && i + 9 < len; i++)
		if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
			jpg[i + 5] = 0x75;
			jpg[i + 6] = 0x30;
			jpg[i + 7] = 0x75;
			jpg[i + 8] = 0x30;
			break;
		}
	is_int(image_render(jpg, len, NULL, sides, 1, out, NULL), PS_ELIMIT,
	    "a JPEG claiming 30000x30000 is refused before decoding");
	g_free(jpg);

	ok(image_generate(5, 648, &src) == PS_OK, "generate a 648 source");
	lim = image_default_limits;
	lim.max_pixels = 100000;
	is_int(image_render(src.data, src.len, &lim, sides, 2, out, NULL),
	    PS_ELIMIT, "a stricter pixel limit refuses 648x648");
	ok(strstr(ps_errmsg(), "419904") != NULL &&
	    strstr(ps_errmsg(), "100000") != NULL, "with the numbers");
	lim = image_default_limits;
	lim.max_side = 600;
	is_int(image_render(src.data, src.len, &lim, sides, 2, out, NULL),
	    PS_ELIMIT, "a side limit refuses 648x648");
	lim = image_default_limits;
	lim.max_bytes = 1000;
	is_int(image_render(src.data, src.len, &lim, sides, 2, out, NULL),
	    PS_ELIMIT, "a byte limit refuses the file");
	ok(strstr(ps_errmsg(), "1000") != NULL, "with the limit named");
	ok(all_empty(out, 2), "out[] still empty");
	lim.max_bytes = src.len;
	ok(image_render(src.data, src.len, &lim, sides, 2, out, NULL) ==
	    PS_OK, "exactly at the byte limit is accepted");
	free_all(out, 2);
	image_jpeg_free(&src);
}

static void
test_refused(void)
{
	static const char svg[] = "<?xml version=\"1.0\"?>\n<svg xmlns="
	    "\"http://www.w3.org/2000/svg\" width=\"100\" height=\"100\">"
	    "<circle cx=\"50\" cy=\"50\" r=\"40\" fill=\"red\"/></svg>\n";
	static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog "
	    "/Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] "
	    "/Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
	struct image_jpeg j = { 0 }, src = { 0 };
	unsigned char junk[4096], *buf;
	uint32_t x = 12345;
	VipsImage *im;
	size_t i, len;

	for (i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (unsigned char)(x >> 16);
	}
	is_int(render1(junk, sizeof(junk), NULL, 48, &j, NULL), PS_EIMAGE,
	    "random bytes refused");
	ok(strstr(ps_errmsg(), "not an image") != NULL &&
	    strstr(ps_errmsg(), "JPEG, PNG, WebP, HEIF or GIF") != NULL,
	    "the message names the accepted formats");
	printf("#   %s\n", ps_errmsg());
	is_int(render1(junk, 0, NULL, 48, &j, NULL), PS_EIMAGE,
	    "an empty buffer refused");
	is_int(render1(NULL, 0, NULL, 48, &j, NULL), PS_EIMAGE,
	    "a NULL buffer refused");
	is_int(render1(svg, sizeof(svg) - 1, NULL, 48, &j, NULL), PS_EIMAGE,
	    "SVG refused");
	ok(strstr(ps_errmsg(), "SVG") != NULL, "and named");
	is_int(render1(pdf, sizeof(pdf) - 1, NULL, 48, &j, NULL), PS_EIMAGE,
	    "PDF refused");
	ok(strstr(ps_errmsg(), "PDF") != NULL, "and named");

	im = make_image(64, 64, 3, fill_red_blue);
	buf = encode(im, ".tif", &len);
	is_int(render1(buf, len, NULL, 48, &j, NULL), PS_EIMAGE,
	    "TIFF refused");
	ok(strstr(ps_errmsg(), "TIFF") != NULL, "and named");
	if (buf != NULL) {
		VipsImage *direct = vips_image_new_from_buffer(buf, len, "",
		    NULL);

		ok(direct == NULL, "libvips itself no longer loads TIFF");
		VIPS_UNREF(direct);
		vips_error_clear();
	} else
		ok(0, "libvips itself no longer loads TIFF");
	g_free(buf);
	buf = encode(im, ".v", &len);
	is_int(render1(buf, len, NULL, 48, &j, NULL), PS_EIMAGE,
	    "a vips native image refused");
	g_free(buf);
	buf = encode(im, ".ppm", &len);
	if (buf != NULL)
		is_int(render1(buf, len, NULL, 48, &j, NULL), PS_EIMAGE,
		    "PPM refused");
	else
		ok(1, "PPM refused # SKIP no PPM buffer saver");
	g_free(buf);
	VIPS_UNREF(im);

	ok(image_generate(9, 648, &src) == PS_OK, "generate a source");
	is_int(render1(src.data, src.len / 2, NULL, 48, &j, NULL),
	    PS_EIMAGE, "a truncated JPEG refused");
	ok(strstr(ps_errmsg(), "truncated or corrupt") != NULL,
	    "as truncated or corrupt");
	printf("#   %s\n", ps_errmsg());
	is_int(render1(src.data, 200, NULL, 48, &j, NULL), PS_EIMAGE,
	    "a JPEG cut in its headers refused");
	image_jpeg_free(&src);

	im = make_image(64, 64, 3, fill_red_blue);
	buf = encode(im, ".png", &len);
	is_int(render1(buf, len - 30, NULL, 48, &j, NULL), PS_EIMAGE,
	    "a truncated PNG refused");
	g_free(buf);
	VIPS_UNREF(im);
	ok(j.data == NULL, "nothing allocated on failure");
}

static void
test_colour(void)
{
	struct image_jpeg j = { 0 };
	VipsImage *im, *t = NULL, *g16 = NULL, *ga = NULL, *o;
	VipsBlob *icc = NULL;
	unsigned char *buf;
	double l[3], r[3];
	size_t len;

	/* Greyscale JPEG. */
	im = make_image(100, 100, 1, fill_grey);
	buf = encode(im, ".jpg", &len);
	VIPS_UNREF(im);
	ok(render1(buf, len, NULL, 64, &j, NULL) == PS_OK, "greyscale JPEG");
	o = decode(&j);
	ok(o != NULL && o->Bands == 3 &&
	    o->Type == VIPS_INTERPRETATION_sRGB, "comes out 3-band sRGB");
	ok(o != NULL && pixel(o, 2, 32, l) && pixel(o, 61, 32, r) &&
	    l[0] < 30 && r[0] > 220 && absd(r[0] - r[2]) < 10,
	    "grey ramp kept, neutral");
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);

	/* CMYK JPEG. */
	im = make_image(100, 100, 4, fill_cmyk_red);
	if (vips_copy(im, &t, "interpretation", VIPS_INTERPRETATION_CMYK,
	    NULL) != 0)
		vips_error_clear();
	buf = t != NULL ? encode(t, ".jpg", &len) : NULL;
	VIPS_UNREF(t);
	VIPS_UNREF(im);
	ok(buf != NULL && render1(buf, len, NULL, 64, &j, NULL) == PS_OK,
	    "CMYK JPEG");
	o = decode(&j);
	ok(o != NULL && o->Bands == 3 && pixel(o, 32, 32, l) &&
	    l[0] > 150 && l[1] < 110 && l[2] < 110,
	    "comes out 3-band sRGB, and red");
	if (o != NULL && pixel(o, 32, 32, l))
		printf("#   CMYK red came out %.0f,%.0f,%.0f\n", l[0], l[1],
		    l[2]);
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);

	/* Display P3 PNG: converted through its profile. */
	im = make_image(64, 64, 3, fill_p3);
	buf = NULL;
	if (vips_profile_load("p3", &icc, NULL) == 0 && icc != NULL) {
		vips_image_set_blob_copy(im, VIPS_META_ICC_NAME,
		    VIPS_AREA(icc)->data, VIPS_AREA(icc)->length);
		buf = encode(im, ".png", &len);
	}
	if (icc != NULL)
		vips_area_unref(VIPS_AREA(icc));
	vips_error_clear();
	VIPS_UNREF(im);
	ok(buf != NULL && render1(buf, len, NULL, 32, &j, NULL) == PS_OK,
	    "Display P3 PNG");
	o = decode(&j);
	/* P3 (200,100,50) is about sRGB (215,93,32). */
	ok(o != NULL && pixel(o, 16, 16, l) && near(l, 215, 93, 32, 8),
	    "colours converted through the ICC profile");
	if (o != NULL && pixel(o, 16, 16, l))
		printf("#   P3 200,100,50 came out %.0f,%.0f,%.0f\n", l[0],
		    l[1], l[2]);
	ok(o != NULL && !vips_image_get_typeof(o, VIPS_META_ICC_NAME),
	    "and the profile is not kept");
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);

	/* RGBA PNG: transparency becomes white. */
	im = make_image(100, 100, 4, fill_alpha);
	buf = encode(im, ".png", &len);
	VIPS_UNREF(im);
	ok(render1(buf, len, NULL, 64, &j, NULL) == PS_OK, "RGBA PNG");
	o = decode(&j);
	ok(o != NULL && o->Bands == 3 && pixel(o, 5, 32, l) &&
	    pixel(o, 58, 32, r) && near(l, 255, 255, 255, 12) &&
	    near(r, 0, 0, 220, 40), "alpha flattened onto white");
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);

	/* Grey + alpha PNG, 16 bits. */
	im = make_image(100, 100, 2, fill_grey_alpha);
	buf = NULL;
	if (vips_linear1(im, &t, 257.0, 0.0, NULL) == 0 &&
	    vips_cast_ushort(t, &g16, NULL) == 0 &&
	    vips_copy(g16, &ga, "interpretation", VIPS_INTERPRETATION_GREY16,
	    NULL) == 0)
		buf = encode(ga, ".png", &len);
	vips_error_clear();
	VIPS_UNREF(im);
	VIPS_UNREF(t);
	VIPS_UNREF(g16);
	VIPS_UNREF(ga);
	ok(buf != NULL && render1(buf, len, NULL, 64, &j, NULL) == PS_OK,
	    "16-bit grey + alpha PNG");
	o = decode(&j);
	ok(o != NULL && o->Bands == 3 && pixel(o, 5, 32, l) &&
	    pixel(o, 58, 32, r) && near(l, 255, 255, 255, 12) &&
	    near(r, 220, 220, 220, 30), "comes out 3-band, flattened");
	VIPS_UNREF(o);
	image_jpeg_free(&j);
	g_free(buf);
}

/* ------------------------------------------------------------------ */
/* Decode budgets: scans and time                                      */
/* ------------------------------------------------------------------ */

/* A diagonal colour gradient with fine stripes: every scan has data. */
static void
fill_detail(int x, int y, int w, int h, unsigned char *px)
{
	px[0] = (unsigned char)(x * 255 / w);
	px[1] = (unsigned char)(y * 255 / h);
	px[2] = (unsigned char)((x + y) % 7 < 3 ? 40 : 210);
}

/*
 * A JPEG of side x side encoded by libjpeg itself, progressive with
 * `script` (nscans scans) or, when script is NULL, with libjpeg's
 * standard progression (jpeg_simple_progression: 10 scans in colour).
 * `flat` gives one grey everywhere, whose AC scans are a few bytes.
 * The caller frees.
 */
static unsigned char *
make_progressive(int side, bool flat, const jpeg_scan_info *script,
    int nscans, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *buf = NULL, *row;
	unsigned long size = 0;
	int x, y;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &size);
	c.image_width = (JDIMENSION)side;
	c.image_height = (JDIMENSION)side;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	if (script != NULL) {
		c.scan_info = script;
		c.num_scans = nscans;
	} else
		jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	row = xmalloc((size_t)side * 3);
	for (y = 0; y < side; y++) {
		for (x = 0; x < side; x++) {
			if (flat)
				memset(row + x * 3, 128, 3);
			else
				fill_detail(x, y, side, side, row + x * 3);
		}
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*len = size;
	return buf;
}

/*
 * Four scans at full precision: DC of all three components, then the
 * AC bands of Cb, Cr and last Y. A first scan at full precision (Al 0)
 * leaves nothing to refine, so libjpeg takes a repeat of it without a
 * warning: the bomb of the issue, a valid file that libvips decoded for
 * 35 s.
 */
static const jpeg_scan_info bomb_script[] = {
	{ 3, { 0, 1, 2 }, 0, 0, 0, 0 },
	{ 1, { 1 }, 1, 63, 0, 0 },
	{ 1, { 2 }, 1, 63, 0, 0 },
	{ 1, { 0 }, 1, 63, 0, 0 },
};
#define BOMB_BASE_SCANS	4

/*
 * `jpg` with its last scan (the SOS segment and its entropy-coded data,
 * up to EOI) repeated `copies` more times before EOI. The last 0xFFDA in
 * the file is that scan's SOS: entropy-coded data has no 0xFF but for
 * 0xFF00 and RSTn. NULL if `jpg` does not end in EOI; the caller frees.
 */
static unsigned char *
splice_scans(const unsigned char *jpg, size_t len, size_t copies,
    size_t *outlen)
{
	unsigned char *out;
	size_t last = 0, eoi, scan, i;

	if (len < 4 || jpg[len - 2] != 0xff || jpg[len - 1] != 0xd9)
		return NULL;
	eoi = len - 2;
	for (i = eoi; i-- > 2;)
		if (jpg[i] == 0xff && jpg[i + 1] == 0xda) {
			last = i;
			break;
		}
	if (last == 0)
		return NULL;
	scan = eoi - last;
	*outlen = len + copies * scan;
	out = xmalloc(*outlen);
	memcpy(out, jpg, eoi);
	for (i = 0; i < copies; i++)
		memcpy(out + eoi + i * scan, jpg + last, scan);
	memcpy(out + eoi + copies * scan, jpg + eoi, 2);
	return out;
}

/* A bomb of `scans` scans in all: the flat 64x64 base, spliced. */
static unsigned char *
make_bomb(unsigned scans, size_t *len)
{
	unsigned char *base, *bomb;
	size_t blen;

	base = make_progressive(64, true, bomb_script, BOMB_BASE_SCANS,
	    &blen);
	bomb = splice_scans(base, blen, scans - BOMB_BASE_SCANS, len);
	free(base);
	return bomb;
}

static void
test_scan_count(void)
{
	static const unsigned char stuffed[] = {
		0xff, 0xd8,
		/* SOS, 1 component, then data with every trap in it. */
		0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
		0x12, 0xff, 0x00, 0xda,		/* stuffed 0xFF, then data */
		0xff, 0xd0, 0xda,		/* RST0, then data */
		0xff, 0xff, 0xff, 0x00, 0xda,	/* fill bytes, stuffed */
		0xff, 0xd9,
		/* After EOI, nothing counts. */
		0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
	};
	static const unsigned char in_app[] = {
		0xff, 0xd8, 0xff, 0xe1, 0x00, 0x08, 0xff, 0xda, 0xff, 0xda,
		0x00, 0x00, 0xff, 0xd9,
	};
	static const unsigned char short_len[] = {
		/* APP0 of length 0 reads as 2 bytes, as in libjpeg. */
		0xff, 0xd8, 0xff, 0xe0, 0x00, 0x00, 0xff, 0xda, 0x00, 0x08,
		0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0xff, 0xd9,
	};
	static const unsigned char stray[] = {
		/* Stray bytes before a marker, which libjpeg skips. */
		0xff, 0xd8, 0x12, 0x34, 0xff, 0x00, 0x56, 0xff, 0xda, 0x00,
		0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x77, 0xff, 0xda,
		0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
	};
	static const unsigned char past_end[] = {
		0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 0xff, 0xe1, 0x7f, 0xff,
		0xff, 0xda,
	};
	unsigned char *jpg, *buf;
	unsigned count = 99, prev = 0, ffda;
	bool ok_all = true, monotonic = true;
	uint32_t x = 2024;
	size_t len, i, k;
	ps_err rc;

	is_int(jpeg_scan_count("\x89PNG", 4, 100, &count), PS_EINVAL,
	    "scan count: not a JPEG");
	is_int(count, 0, "no scans counted");
	is_int(jpeg_scan_count("", 0, 100, &count), PS_EINVAL,
	    "scan count: empty");
	is_int(jpeg_scan_count("\xff", 1, 100, &count), PS_EINVAL,
	    "scan count: one byte");
	ok(jpeg_scan_count("\xff\xd8", 2, 100, &count) == PS_OK &&
	    count == 0, "scan count: SOI alone has none");
	ok(jpeg_scan_count(stuffed, sizeof(stuffed), 100, &count) == PS_OK,
	    "scan count: stuffed bytes, RST and fill bytes");
	is_int(count, 1, "they are the scan's data; nothing after EOI");
	jpeg_scan_count(in_app, sizeof(in_app), 100, &count);
	is_int(count, 0, "0xFFDA inside a segment is not a scan");
	jpeg_scan_count(short_len, sizeof(short_len), 100, &count);
	is_int(count, 1, "a segment length under 2 reads as 2");
	jpeg_scan_count(stray, sizeof(stray), 100, &count);
	is_int(count, 2, "stray bytes between markers are skipped");
	ok(jpeg_scan_count(past_end, sizeof(past_end), 100, &count) ==
	    PS_OK && count == 1, "a segment running past the end stops");

	/* libjpeg's standard progression: 10 scans for colour. */
	jpg = make_progressive(256, false, NULL, 0, &len);
	ok(jpeg_scan_count(jpg, len, 100, &count) == PS_OK && count == 10,
	    "jpeg_simple_progression has 10 scans");
	/* Every cut of it: never more, never fewer as it grows. */
	for (i = 0; i <= len; i++) {
		rc = jpeg_scan_count(jpg, i, 100, &count);
		if ((i < 2 && rc != PS_EINVAL) || (i >= 2 && rc != PS_OK) ||
		    count > 10)
			ok_all = false;
		if (count < prev)
			monotonic = false;
		prev = count;
	}
	ok(ok_all, "every truncation of it is read without error");
	ok(monotonic, "and counts the scans before the cut");
	is_int(prev, 10, "all 10 at full length");
	free(jpg);

	/* Random bytes after SOI: never more than the 0xFFDA pairs. */
	buf = xmalloc(4096);
	ok_all = true;
	for (k = 0; k < 500; k++) {
		buf[0] = 0xff;
		buf[1] = 0xd8;
		for (i = 2; i < 4096; i++) {
			x = x * 1103515245u + 12345u;
			/* Many 0xFF, 0x00 and 0xDA to reach every branch. */
			buf[i] = (x >> 16) % 5 == 0 ? 0xff : (x >> 16) % 5 ==
			    1 ? 0xda : (x >> 16) % 5 == 2 ? 0x00 :
			    (unsigned char)(x >> 24);
		}
		for (ffda = 0, i = 0; i + 1 < 4096; i++)
			if (buf[i] == 0xff && buf[i + 1] == 0xda)
				ffda++;
		rc = jpeg_scan_count(buf, 4096, 100, &count);
		if ((rc != PS_OK && rc != PS_EIMAGE) || count > ffda)
			ok_all = false;
	}
	ok(ok_all, "500 random files after SOI are read safely");
	free(buf);

	/* The limit: at it is fine, one over is refused with the count. */
	jpg = make_bomb(100, &len);
	ok(jpg != NULL && jpeg_scan_count(jpg, len, 100, &count) == PS_OK &&
	    count == 100, "100 scans with a limit of 100: accepted");
	free(jpg);
	jpg = make_bomb(101, &len);
	ok(jpg != NULL && jpeg_scan_count(jpg, len, 100, &count) ==
	    PS_EIMAGE && count == 101, "101 scans: refused");
	is_str(ps_errmsg(), "the JPEG has 101 scans; the limit is 100",
	    "the sentence gives the count and the limit");
	free(jpg);
}

/* Writes `n` bytes to `path`; false on any error. */
static bool
write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	bool good;

	if (f == NULL)
		return false;
	good = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && good;
}

/* The bytes of `path` (the caller frees), or NULL. */
static unsigned char *
read_file(const char *path, size_t *len)
{
	unsigned char *p = NULL;
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		p = xmalloc((size_t)n);
		if (fread(p, 1, (size_t)n, f) != (size_t)n) {
			free(p);
			p = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return p;
}

#define CONVERT	"/usr/bin/convert"

/*
 * ImageMagick's progressive JPEG (`convert -interlace JPEG`) of a PNG
 * made here, or NULL when ImageMagick is not installed. The caller
 * frees; the files made for it are removed.
 */
static unsigned char *
imagemagick_progressive(size_t *len)
{
	char *dir, *in, *out;
	char *argv[] = { CONVERT, NULL, "-interlace", "JPEG", "-quality",
	    "90", NULL, NULL };
	unsigned char *png, *jpg = NULL;
	VipsImage *im;
	size_t plen;
	pid_t pid;
	int status;

	if (access(CONVERT, X_OK) != 0 ||
	    (dir = t_tmpdir("test_image")) == NULL)
		return NULL;
	argv[1] = in = xasprintf("%s/in.png", dir);
	argv[6] = out = xasprintf("%s/out.jpg", dir);
	im = make_image(300, 200, 3, fill_detail);
	png = encode(im, ".png", &plen);
	VIPS_UNREF(im);
	if (png != NULL && write_file(in, png, plen) &&
	    posix_spawn(&pid, CONVERT, NULL, NULL, argv, environ) == 0 &&
	    waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		jpg = read_file(out, len);
	g_free(png);
	unlink(in);
	unlink(out);
	rmdir(dir);
	free(in);
	free(out);
	free(dir);
	return jpg;
}

static void
test_scans(void)
{
	static const int sides[2] = { 48, 96 };
	struct image_limits lim = image_default_limits;
	struct image_jpeg out[2];
	struct jpeg_budget jb = { 100, 0, 0, NULL };
	struct jpeg_planes planes;
	unsigned char *jpg, *app;
	unsigned count = 0, apps;
	size_t len;
	int sof;

	/* Real progressive JPEGs render. */
	jpg = make_progressive(300, false, NULL, 0, &len);
	ok(jpeg_markers(jpg, len, &sof, &apps) && sof == 0xc2,
	    "libjpeg's progressive JPEG (SOF2)");
	ok(image_render(jpg, len, NULL, sides, 2, out, NULL) == PS_OK &&
	    out[0].side == 48 && out[1].side == 96, "renders");
	free_all(out, 2);
	free(jpg);
	jpg = imagemagick_progressive(&len);
	if (jpg != NULL) {
		ok(jpeg_markers(jpg, len, &sof, &apps) && sof == 0xc2 &&
		    jpeg_scan_count(jpg, len, 100, &count) == PS_OK &&
		    count > 1, "ImageMagick's progressive JPEG (SOF2)");
		printf("#   %u scans\n", count);
		ok(image_render(jpg, len, NULL, sides, 2, out, NULL) ==
		    PS_OK && out[1].side == 96, "renders");
		free_all(out, 2);
		free(jpg);
	} else {
		ok(1, "ImageMagick's progressive JPEG # SKIP no " CONVERT);
		ok(1, "renders # SKIP no " CONVERT);
	}

	/* The bomb of the issue, small: refused before any decoding. */
	jpg = make_bomb(5000, &len);
	memset(out, 0xa5, sizeof(out));
	is_int(image_render(jpg, len, NULL, sides, 2, out, NULL), PS_EIMAGE,
	    "a JPEG of 5000 scans is refused");
	is_str(ps_errmsg(), "the JPEG has 5000 scans; the limit is 100",
	    "in words, with the count and the limit");
	ok(all_empty(out, 2), "out[] left empty");
	lim.max_scans = 6000;
	ok(image_render(jpg, len, &lim, sides, 2, out, NULL) == PS_OK,
	    "the same file is a valid JPEG under a limit of 6000");
	free_all(out, 2);
	lim.max_scans = 1000;
	is_int(image_render(jpg, len, &lim, sides, 2, out, NULL), PS_EIMAGE,
	    "a stricter limit of 1000 refuses it");
	ok(strstr(ps_errmsg(), "the limit is 1000") != NULL, "naming it");

	/* The libvips path too (an APP2 segment sends it there). */
	app = xmalloc(len + 8);
	memcpy(app, "\xff\xd8\xff\xe2\x00\x06" "abcd", 10);
	memcpy(app + 10, jpg + 2, len - 2);
	is_int(image_render(app, len + 8, NULL, sides, 2, out, NULL),
	    PS_EIMAGE, "refused with an APP2 segment (libvips' path)");
	ok(strstr(ps_errmsg(), "5000 scans") != NULL, "for its scans");
	free(app);

	/*
	 * The second line: libjpeg's progress monitor stops the decode at
	 * scan 101, before decoding it.
	 */
	is_int(jpeg_decode(jpg, len, 64, IMAGE_MAX_PIXELS, &jb, &planes),
	    PS_EIMAGE, "the decoder's own scan limit refuses it");
	is_str(ps_errmsg(), "the JPEG has more than 100 scans (the limit); "
	    "decoding stopped at scan 101", "stopping at scan 101");
	ok(planes.mem == NULL && planes.n == 0, "nothing decoded");
	jb.max_scans = 0;
	ok(jpeg_decode(jpg, len, 64, IMAGE_MAX_PIXELS, &jb, &planes) ==
	    PS_OK && planes.w == 64, "without a limit it decodes");
	jpeg_planes_cleanup(&planes);
	free(jpg);
}

/* A clock that moves one second each time it is read. */
static atomic_llong ticking_ms;

static int64_t
ticking_clock(void)
{
	return atomic_fetch_add(&ticking_ms, 1000) + 1000;
}

static void
test_decode_time(void)
{
	static const int sides[2] = { 48, 96 };
	struct image_limits lim = image_default_limits;
	struct image_jpeg out[2], src = { 0 };
	struct jpeg_budget jb = { 0, 0, 0, NULL };
	struct jpeg_planes planes;
	unsigned char *png, *gif;
	size_t plen, glen;
	VipsImage *im;

	im = make_image(500, 500, 3, fill_detail);
	png = encode(im, ".png", &plen);
	gif = encode(im, ".gif", &glen);
	VIPS_UNREF(im);
	ok(image_generate(2, 648, &src) == PS_OK, "generate a JPEG");

	/*
	 * The clock moves a second per read, and the budget is half a
	 * second: the first reading after the start (between strips, or
	 * when the decode returns) finds it spent.
	 */
	lim.now_ms = ticking_clock;
	lim.max_decode_ms = 500;
	memset(out, 0xa5, sizeof(out));
	is_int(image_render(png, plen, &lim, sides, 2, out, NULL), PS_EIMAGE,
	    "a PNG over its decode time is refused");
	is_str(ps_errmsg(), "decoding the image took longer than its limit "
	    "of 500 ms", "in words");
	ok(all_empty(out, 2), "out[] left empty");
	is_int(image_render(gif, glen, &lim, sides, 2, out, NULL), PS_EIMAGE,
	    "a GIF over its decode time is refused");
	is_int(image_render(src.data, src.len, &lim, sides, 2, out, NULL),
	    PS_EIMAGE, "a JPEG (libjpeg's path) over its time is refused");
	ok(strstr(ps_errmsg(), "limit of 500 ms") != NULL, "in words");
	ok(all_empty(out, 2), "out[] left empty");

	/* The decoder's own check, between rows of blocks. */
	jb.now_ms = ticking_clock;
	jb.start_ms = ticking_clock();
	jb.max_ms = 500;
	is_int(jpeg_decode(src.data, src.len, 300, IMAGE_MAX_PIXELS, &jb,
	    &planes), PS_EIMAGE, "jpeg_decode() stops when its time is up");
	is_str(ps_errmsg(), "decoding the image took longer than its limit "
	    "of 500 ms", "in words");
	ok(planes.mem == NULL && planes.n == 0, "nothing decoded");
	jb.max_ms = 1000u * 1000 * 1000;
	ok(jpeg_decode(src.data, src.len, 300, IMAGE_MAX_PIXELS, &jb,
	    &planes) == PS_OK && planes.w == 324, "and decodes within it");
	jpeg_planes_cleanup(&planes);

	/* The same clock and a budget it does not reach. */
	lim.max_decode_ms = 1000u * 1000 * 1000;
	ok(image_render(png, plen, &lim, sides, 2, out, NULL) == PS_OK,
	    "within its budget the PNG renders");
	free_all(out, 2);
	ok(image_render(src.data, src.len, &lim, sides, 2, out, NULL) ==
	    PS_OK, "and so does the JPEG");
	free_all(out, 2);
	image_jpeg_free(&src);
	g_free(png);
	g_free(gif);
}

static void
test_args(void)
{
	struct image_jpeg src = { 0 }, out[2];
	int bad[2] = { 48, 0 }, big = IMAGE_MAX_SIDE + 1;

	ok(image_generate(4, 64, &src) == PS_OK, "generate a source");
	is_int(image_render(src.data, src.len, NULL, bad, 0, out, NULL),
	    PS_EINVAL, "no sides refused");
	is_int(image_render(src.data, src.len, NULL, bad, 2, out, NULL),
	    PS_EINVAL, "a zero side refused");
	ok(all_empty(out, 2), "out[] left empty");
	is_int(image_render(src.data, src.len, NULL, &big, 1, out, NULL),
	    PS_EINVAL, "a huge side refused");
	image_jpeg_free(&src);
}

struct worker {
	const struct image_jpeg	*src;
	int			 failures;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct image_jpeg out[N_HR];
	size_t i, k;

	for (k = 0; k < 8; k++) {
		if (image_render(w->src->data, w->src->len, NULL, hr_sides,
		    N_HR, out, NULL) != PS_OK) {
			w->failures++;
			continue;
		}
		for (i = 0; i < N_HR; i++)
			if (out[i].side != hr_sides[i])
				w->failures++;
		free_all(out, N_HR);
		/* A refusal on this thread must not disturb the others. */
		if (image_render(w->src->data, 100, NULL, hr_sides, 1, out,
		    NULL) != PS_EIMAGE)
			w->failures++;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct image_jpeg src = { 0 };
	struct worker w[4];
	pthread_t th[4];
	int i, failures = 0;

	ok(image_generate(11, 648, &src) == PS_OK, "generate a source");
	for (i = 0; i < 4; i++) {
		w[i].src = &src;
		w[i].failures = 0;
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	is_int(failures, 0, "four threads render concurrently");
	image_jpeg_free(&src);
}

static void *
count_object(void *obj, void *a, void *b)
{
	(void)obj;
	(void)b;
	(*(int *)a)++;
	return NULL;
}

/* Live libvips objects: images and operations nobody released. */
static int
vips_live(void)
{
	int n = 0;

	vips_object_map(count_object, &n, NULL);
	return n;
}

/* ------------------------------------------------------------------ */
/* The JPEG fast path: YCbCr planes                                    */
/* ------------------------------------------------------------------ */

#define ORANGE	230, 120, 40
#define TEAL	30, 140, 160

/* Left half orange, right half teal. */
static void
fill_blocks(int x, int y, int w, int h, unsigned char *px)
{
	static const unsigned char c[2][3] = { { ORANGE }, { TEAL } };

	(void)y;
	(void)h;
	memcpy(px, c[x >= w / 2], 3);
}

/* Left half dark grey, right half light grey. */
static void
fill_grey_blocks(int x, int y, int w, int h, unsigned char *px)
{
	(void)y;
	(void)h;
	px[0] = x < w / 2 ? 60 : 200;
}

/*
 * The centred square of a w x h image (side h < w) has a red left half
 * and a yellow right half; outside it, blue.
 */
static void
fill_crop(int x, int y, int w, int h, unsigned char *px)
{
	int x0 = (w - h) / 2;

	(void)y;
	px[2] = 20;
	if (x < x0 || x >= x0 + h) {
		px[0] = 20;
		px[1] = 20;
		px[2] = 220;
	} else {
		px[0] = 220;
		px[1] = x < x0 + h / 2 ? 20 : 220;
	}
}

/*
 * A w x h baseline JPEG written by libjpeg at quality 95: colour with Y
 * sampled hs x vs and each chroma component 1 x 1, or (grey) greyscale,
 * from `fill` (the first byte of each pixel for greyscale). The caller
 * frees.
 */
static unsigned char *
make_sampled(int w, int h, int hs, int vs, bool grey, fill_fn fill,
    size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *buf = NULL, *row;
	unsigned long size = 0;
	int x, y;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &size);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = grey ? 1 : 3;
	c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 95, TRUE);
	c.comp_info[0].h_samp_factor = hs;
	c.comp_info[0].v_samp_factor = vs;
	jpeg_start_compress(&c, TRUE);
	row = xmalloc((size_t)w * 3);
	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x++)
			fill(x, y, w, h, row + (size_t)x * (grey ? 1 : 3));
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*len = size;
	return buf;
}

/*
 * A rendered JPEG as the fast path writes it: bare (nothing but JFIF),
 * baseline, YCbCr 4:2:0 with chroma of ceil(side / 2) samples.
 */
static bool
is_fast_output(const struct image_jpeg *j, int side)
{
	struct jpeg_info info;
	struct jpeg_planes p;
	unsigned apps;
	int sof;
	bool good;

	if (jpeg_probe(j->data, j->len, &info) != PS_OK || !info.bare ||
	    info.w != side || info.h != side ||
	    !jpeg_markers(j->data, j->len, &sof, &apps) || sof != 0xc0 ||
	    apps != 1)
		return false;
	if (jpeg_decode(j->data, j->len, side, IMAGE_MAX_PIXELS, NULL,
	    &p) != PS_OK)
		return false;
	good = p.n == 3 && p.w == side && p.h == side &&
	    p.plane[0].w == side && p.plane[0].h == side &&
	    p.plane[1].w == (side + 1) / 2 && p.plane[1].h == (side + 1) / 2 &&
	    p.plane[1].xdiv == 2 && p.plane[1].ydiv == 2 &&
	    p.plane[2].w == (side + 1) / 2 && p.plane[2].xdiv == 2;
	jpeg_planes_cleanup(&p);
	return good;
}

/* The mean absolute difference of two images of the same size. */
static double
mean_abs_diff(VipsImage *a, VipsImage *b)
{
	VipsImage *d = NULL, *m = NULL;
	double avg = 1e9;

	if (vips_subtract(a, b, &d, NULL) != 0 ||
	    vips_abs(d, &m, NULL) != 0 || vips_avg(m, &avg, NULL) != 0) {
		vips_error_clear();
		avg = 1e9;
	}
	VIPS_UNREF(d);
	VIPS_UNREF(m);
	return avg;
}

static void
test_planes(void)
{
	static const struct {
		const char	*name;
		int		 hs, vs;	/* Y's sampling; chroma 1x1 */
		int		 xdiv, ydiv;	/* chroma at full scale */
	} samplings[] = {
		{ "4:2:0", 2, 2, 2, 2 },
		{ "4:2:2", 2, 1, 2, 1 },
		{ "4:4:4", 1, 1, 1, 1 },
	};
	static const int sides[2] = { 300, 47 };
	struct image_jpeg out[2], vips_out;
	struct jpeg_planes p;
	unsigned char *jpg, *app;
	VipsImage *o, *v;
	double l[3], r[3], diff;
	bool got;
	char what[128];
	size_t len, i, k;
	int src_side;

	for (i = 0; i < sizeof(samplings) / sizeof(samplings[0]); i++) {
		jpg = make_sampled(400, 400, samplings[i].hs, samplings[i].vs,
		    false, fill_blocks, &len);
		/* 400 / 2 < 300: decoded at full scale, chroma as stored. */
		ok(jpeg_decode(jpg, len, 300, IMAGE_MAX_PIXELS, NULL, &p) ==
		    PS_OK && p.n == 3 && p.w == 400 && p.plane[0].w == 400 &&
		    p.plane[0].xdiv == 1 &&
		    p.plane[1].xdiv == samplings[i].xdiv &&
		    p.plane[1].ydiv == samplings[i].ydiv &&
		    p.plane[1].w == 400 / samplings[i].xdiv &&
		    p.plane[2].h == 400 / samplings[i].ydiv,
		    samplings[i].name);
		printf("#   %s: chroma %dx%d\n", samplings[i].name,
		    p.plane[1].w, p.plane[1].h);
		jpeg_planes_cleanup(&p);
		snprintf(what, sizeof(what), "%s renders 300 and 47",
		    samplings[i].name);
		ok(image_render(jpg, len, NULL, sides, 2, out, &src_side) ==
		    PS_OK && src_side == 400 && out[0].side == 300 &&
		    out[1].side == 47, what);
		for (k = 0; k < 2; k++) {
			int t = sides[k];

			snprintf(what, sizeof(what), "%d: bare baseline 4:2:0, "
			    "chroma %d wide", t, (t + 1) / 2);
			ok(is_fast_output(&out[k], t), what);
			o = decode(&out[k]);
			got = o != NULL && pixel(o, t / 5, t / 2, l) &&
			    pixel(o, t - 1 - t / 5, t / 2, r);
			snprintf(what, sizeof(what), "%d: orange and teal kept",
			    t);
			ok(got && near(l, ORANGE, 8) && near(r, TEAL, 8), what);
			if (got)
				printf("#   %.0f,%.0f,%.0f and "
				    "%.0f,%.0f,%.0f\n", l[0], l[1], l[2],
				    r[0], r[1], r[2]);
			VIPS_UNREF(o);
		}
		free_all(out, 2);
		free(jpg);
	}

	/* 648 / 2 >= 300: at 1/2, where libjpeg keeps 4:2:0 chroma whole. */
	jpg = make_sampled(648, 648, 2, 2, false, fill_blocks, &len);
	ok(jpeg_decode(jpg, len, 300, IMAGE_MAX_PIXELS, NULL, &p) == PS_OK &&
	    p.w == 324 && p.full_w == 648 && p.plane[1].w == 324 &&
	    p.plane[1].xdiv == 1, "4:2:0 at 1/2: chroma as wide as Y");
	jpeg_planes_cleanup(&p);
	ok(image_render(jpg, len, NULL, sides, 2, out, NULL) == PS_OK &&
	    is_fast_output(&out[0], 300) && is_fast_output(&out[1], 47),
	    "renders 300 and 47 from it");
	o = decode(&out[0]);
	ok(o != NULL && pixel(o, 60, 150, l) && pixel(o, 239, 150, r) &&
	    near(l, ORANGE, 8) && near(r, TEAL, 8), "colours kept");
	VIPS_UNREF(o);
	free_all(out, 2);
	free(jpg);

	/* Greyscale: one plane in, neutral chroma out. */
	jpg = make_sampled(400, 400, 1, 1, true, fill_grey_blocks, &len);
	ok(jpeg_decode(jpg, len, 300, IMAGE_MAX_PIXELS, NULL, &p) == PS_OK &&
	    p.n == 1 && p.plane[0].w == 400, "greyscale: one plane");
	jpeg_planes_cleanup(&p);
	ok(image_render(jpg, len, NULL, sides, 2, out, NULL) == PS_OK &&
	    is_fast_output(&out[0], 300) && is_fast_output(&out[1], 47),
	    "renders 300 and 47 as 4:2:0 colour JPEGs");
	o = decode(&out[1]);
	ok(o != NULL && o->Bands == 3 && pixel(o, 9, 23, l) &&
	    pixel(o, 37, 23, r) && near(l, 60, 60, 60, 5) &&
	    near(r, 200, 200, 200, 5), "greys kept, neutral");
	VIPS_UNREF(o);
	free_all(out, 2);
	free(jpg);

	/*
	 * Non-square, with an odd crop offset (603 - 400) / 2 = 101, half
	 * a chroma sample: the same square as libvips' path crops (an APP2
	 * segment sends the file there), and nothing of the blue outside
	 * it shows but where the file's own chroma sample straddles the
	 * edge.
	 */
	jpg = make_sampled(603, 400, 2, 2, false, fill_crop, &len);
	ok(image_render(jpg, len, NULL, sides, 1, out, &src_side) == PS_OK &&
	    src_side == 400 && is_fast_output(&out[0], 300),
	    "a 603x400 4:2:0 JPEG renders 300");
	app = xmalloc(len + 8);
	memcpy(app, "\xff\xd8\xff\xe2\x00\x06" "abcd", 10);
	memcpy(app + 10, jpg + 2, len - 2);
	ok(image_render(app, len + 8, NULL, sides, 1, &vips_out, NULL) ==
	    PS_OK && vips_out.side == 300, "and through libvips' path");
	o = decode(&out[0]);
	v = decode(&vips_out);
	diff = o != NULL && v != NULL ? mean_abs_diff(o, v) : 1e9;
	printf("#   mean difference %.2f\n", diff);
	ok(diff < 1.0, "the same square as libvips'");
	ok(o != NULL && v != NULL && pixel(o, 0, 150, l) &&
	    pixel(v, 0, 150, r) && near(l, r[0], r[1], r[2], 16) &&
	    pixel(o, 299, 150, l) && pixel(v, 299, 150, r) &&
	    near(l, r[0], r[1], r[2], 16), "its edges too");
	if (o != NULL && v != NULL && pixel(o, 0, 150, l) &&
	    pixel(v, 0, 150, r))
		printf("#   left edge %.0f,%.0f,%.0f, libvips' "
		    "%.0f,%.0f,%.0f\n", l[0], l[1], l[2], r[0], r[1], r[2]);
	ok(o != NULL && pixel(o, 3, 150, l) && pixel(o, 296, 150, r) &&
	    near(l, 220, 20, 20, 12) && near(r, 220, 220, 20, 12),
	    "red to the left edge, yellow to the right");
	ok(o != NULL && pixel(o, 140, 150, l) && pixel(o, 159, 150, r) &&
	    near(l, 220, 20, 20, 12) && near(r, 220, 220, 20, 12),
	    "the middle where it was");
	VIPS_UNREF(o);
	VIPS_UNREF(v);
	image_jpeg_free(&vips_out);
	free_all(out, 1);
	free(app);
	free(jpg);

	/* 4:1:1 (Y 4x1): not the fast path's, libvips renders it. */
	jpg = make_sampled(400, 400, 4, 1, false, fill_blocks, &len);
	is_int(jpeg_decode(jpg, len, 300, IMAGE_MAX_PIXELS, NULL, &p),
	    PS_EINVAL, "4:1:1 is declined by the fast path");
	ok(p.mem == NULL && p.n == 0, "nothing decoded");
	ok(image_render(jpg, len, NULL, sides, 2, out, NULL) == PS_OK &&
	    out[0].side == 300 && out[1].side == 47, "and rendered all the "
	    "same");
	o = decode(&out[0]);
	ok(o != NULL && pixel(o, 60, 150, l) && near(l, ORANGE, 12),
	    "in its colours");
	VIPS_UNREF(o);
	free_all(out, 2);
	free(jpg);
}

int main(void);

/*
 * A bare square JPEG asked for at its own size is kept byte for byte (no
 * second generation of compression); one carrying anything else is
 * encoded afresh without it.
 */
static void
test_as_is(void)
{
	const int sides[2] = { 120, 40 };
	struct image_jpeg gen, out[2], again[2];
	unsigned char *com;
	size_t len;

	if (!ok(image_generate(7, 300, &gen) == PS_OK, "generate"))
		return;
	ok(image_render(gen.data, gen.len, NULL, sides, 1, out, NULL) ==
	    PS_OK, "render 120 from 300");
	ok(image_render(out[0].data, out[0].len, NULL, sides, 2, again,
	    NULL) == PS_OK, "render 120 and 40 from the bare 120");
	ok(again[0].len == out[0].len && memcmp(again[0].data, out[0].data,
	    out[0].len) == 0, "a bare JPEG at its own size is kept as it is");
	is_int(again[0].side, 120, "kept: side 120");
	is_int(again[1].side, 40, "the smaller size is still rendered");
	free_all(again, 2);

	/* The same file with a comment segment after SOI. */
	len = out[0].len + 10;
	com = xmalloc(len);
	memcpy(com, "\xff\xd8\xff\xfe\x00\x08secret", 12);
	memcpy(com + 12, out[0].data + 2, out[0].len - 2);
	ok(image_render(com, len, NULL, sides, 1, again, NULL) == PS_OK,
	    "render 120 from a 120 with a comment");
	is_int(again[0].side, 120, "side 120");
	ok(!contains(again[0].data, again[0].len, "secret"),
	    "a file with a comment is encoded afresh, without it");
	free_all(again, 1);
	free(com);
	free_all(out, 1);
	image_jpeg_free(&gen);
}


/* ------------------------------------------------------------------ */
/* Optimal Huffman tables                                              */
/* ------------------------------------------------------------------ */

/* libjpeg's own builder (jchuff.h, not installed), to compare with. */
void	jpeg_gen_optimal_table(j_compress_ptr, JHUFF_TBL *, long[]);

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Counts like an encoder's: how many symbols are used, how skewed their
 * counts, ties (equal counts) and a single symbol included; some skewed
 * enough that code lengths go over 16 and are folded.
 */
static void
make_counts(uint64_t *seed, int round, long freq[257])
{
	long fib[2] = { 1, 1 };
	int used, i, kind = round % 5;

	memset(freq, 0, 257 * sizeof(long));
	/* At least one: an encoder always has one (libjpeg assumes it). */
	used = round < 2 ? round + 1 : 1 + (int)(xorshift(seed) % 256);
	/* Fibonacci counts make a code as long as the symbols are many. */
	if (kind == 1)
		used = 17 + round % 13;
	for (i = 0; i < used; i++) {
		int sym = (int)(xorshift(seed) % 256);

		switch (kind) {
		case 0:		/* ties everywhere */
			freq[sym] = 1 + (long)(xorshift(seed) % 4);
			break;
		case 1:		/* codes over 16 bits, folded */
			freq[sym] = fib[i % 2] = fib[0] + fib[1];
			break;
		case 2:		/* an encoder's spread */
			freq[sym] = (long)(xorshift(seed) % 100000);
			break;
		default:
			freq[sym] = 1 + (long)(xorshift(seed) % 1000);
			break;
		}
	}
}

static void
test_huffman_tables(void)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	JHUFF_TBL theirs;
	unsigned char bits[17], huffval[256];
	long fa[257], fb[257];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int round, differ = 0, long_codes = 0, failed = 0;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	for (round = 0; round < 20000; round++) {
		make_counts(&seed, round, fa);
		memcpy(fb, fa, sizeof(fa));
		memset(bits, 0xaa, sizeof(bits));
		memset(huffval, 0xaa, sizeof(huffval));
		memset(&theirs, 0xaa, sizeof(theirs));
		if (!jpeg_huff_table(fa, bits, huffval))
			failed++;
		jpeg_gen_optimal_table(&c, &theirs, fb);
		if (memcmp(bits, theirs.bits, sizeof(bits)) != 0 ||
		    memcmp(huffval, theirs.huffval, sizeof(huffval)) != 0 ||
		    memcmp(fa, fb, sizeof(fa)) != 0)
			differ++;
		if (bits[16] != 0)
			long_codes++;
	}
	jpeg_destroy_compress(&c);
	is_int(failed, 0, "jpeg_huff_table() builds every table");
	is_int(differ, 0, "20000 tables the same as libjpeg's, byte for byte");
	ok(long_codes > 0, "some with codes of 16 bits, folded from longer");
}

/* Pixels with detail at every scale, and flat and saturated areas. */
static void
fill_busy(struct jpeg_planes *p, uint64_t *seed)
{
	int i, x, y;

	for (i = 0; i < p->n; i++)
		for (y = 0; y < p->plane[i].h; y++)
			for (x = 0; x < p->plane[i].w; x++) {
				unsigned char *s = p->plane[i].data +
				    (size_t)y * p->plane[i].stride + x;

				if (x < p->plane[i].w / 4)
					*s = (unsigned char)(x * 7 + y * 3 + i *
					    50);
				else if (x < p->plane[i].w / 2)
					*s = (unsigned char)xorshift(seed);
				else if (y < p->plane[i].h / 2)
					*s = ((x / 3 + y / 5) & 1) ? 255 : 0;
				else
					*s = (unsigned char)(128 + i);
			}
}

/* libjpeg's own encode of `p` with optimised tables, as jpeg_encode's. */
static unsigned char *
libjpeg_encode(struct jpeg_planes *p, int quality, unsigned long *size)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	JSAMPROW rows[3][2 * DCTSIZE];
	JSAMPARRAY arrays[3] = { rows[0], rows[1], rows[2] };
	unsigned char *buf = NULL;
	int ci, k, y, r;

	*size = 0;
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, size);
	c.image_width = (JDIMENSION)p->w;
	c.image_height = (JDIMENSION)p->h;
	c.input_components = 3;
	c.in_color_space = JCS_YCbCr;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	c.raw_data_in = TRUE;
	jpeg_start_compress(&c, TRUE);
	for (y = 0; y < p->h; y += 2 * DCTSIZE) {
		for (ci = 0; ci < 3; ci++) {
			const struct jpeg_plane *pl = &p->plane[ci];

			for (k = 0; k < 2 * DCTSIZE / pl->ydiv; k++) {
				r = y / pl->ydiv + k < pl->h ? y / pl->ydiv +
				    k : pl->h - 1;
				rows[ci][k] = pl->data + (size_t)r *
				    pl->stride;
			}
		}
		jpeg_write_raw_data(&c, arrays, 2 * DCTSIZE);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return buf;
}

static void
test_encode_tables(void)
{
	static const int sides[] = { 1, 7, 8, 17, 48, 72, 100, 300 };
	static const int qualities[] = { 40, 85, 100 };
	uint64_t seed = 42;
	unsigned char *ours, *theirs;
	unsigned long theirs_len;
	size_t ours_len, i, q;
	int same = 0, tried = 0;

	for (i = 0; i < sizeof(sides) / sizeof(*sides); i++)
		for (q = 0; q < sizeof(qualities) / sizeof(*qualities); q++) {
			struct jpeg_planes p;

			jpeg_planes_init(&p, sides[i], sides[i] + (int)q);
			fill_busy(&p, &seed);
			tried++;
			if (jpeg_encode(&p, qualities[q], &ours, &ours_len) !=
			    PS_OK) {
				jpeg_planes_cleanup(&p);
				continue;
			}
			/* jpeg_encode() padded the planes: the same input. */
			theirs = libjpeg_encode(&p, qualities[q], &theirs_len);
			if (ours_len == theirs_len && memcmp(ours, theirs,
			    ours_len) == 0)
				same++;
			else
				printf("#   %dx%d q%d: %zu bytes, libjpeg's "
				    "%lu\n", sides[i], sides[i] + (int)q,
				    qualities[q], ours_len, theirs_len);
			free(ours);
			free(theirs);
			jpeg_planes_cleanup(&p);
		}
	is_int(same, tried, "jpeg_encode() writes what libjpeg's own "
	    "optimisation writes, byte for byte (24 sizes and qualities)");
}

/* A size cap: the quality lowered until the JPEG fits, or refused. */
static void
test_within(void)
{
	struct image_jpeg src = { 0 }, usual[1] = { { 0 } }, out = { 0 };
	const int side = 96;
	size_t cap;

	ok(image_generate(11, 648, &src) == PS_OK, "generate a 648 source");
	ok(image_render(src.data, src.len, NULL, &side, 1, usual, NULL) ==
	    PS_OK, "rendered at the usual quality");
	ok(image_render_within(src.data, src.len, NULL, 96, usual[0].len,
	    &out) == PS_OK && out.len == usual[0].len && out.side == 96 &&
	    memcmp(out.data, usual[0].data, out.len) == 0,
	    "within a cap it meets: the usual rendering");
	image_jpeg_free(&out);
	cap = usual[0].len * 3 / 4;
	ok(image_render_within(src.data, src.len, NULL, 96, cap, &out) ==
	    PS_OK && out.len <= cap && out.side == 96,
	    "under a smaller cap: a lower quality, same side, fits");
	image_jpeg_free(&out);
	ok(image_render_within(usual[0].data, usual[0].len, NULL, 96, cap,
	    &out) == PS_OK && out.len <= cap, "a 96 source over the cap is "
	    "encoded again, not kept as it is");
	image_jpeg_free(&out);
	ok(image_render_within(src.data, src.len, NULL, 96, 100, &out) ==
	    PS_ELIMIT && out.data == NULL && strstr(ps_errmsg(), "the limit "
	    "is 100") != NULL, "a cap no quality meets is refused");
	image_jpeg_free(&usual[0]);
	image_jpeg_free(&src);
}

int
main(void)
{
	int live;

	test_init();
	live = vips_live();
	test_generate();
	test_placeholder();
	test_identicon();
	test_hr_sides();
	test_odd_sides();
	test_no_upscale();
	test_metadata();
	test_orientation();
	test_formats();
	test_limits();
	test_refused();
	test_colour();
	test_scan_count();
	test_scans();
	test_decode_time();
	test_args();
	test_as_is();
	test_within();
	test_planes();
	test_huffman_tables();
	test_encode_tables();
	test_threads();
	/*
	 * LeakSanitizer cannot see leaked images (libvips keeps a table of
	 * them), so count them. VIPS_LEAK=1 makes vips_shutdown() list them.
	 */
	is_int(vips_live(), live, "no libvips object leaked");
	vips_shutdown();
	return done();
}
