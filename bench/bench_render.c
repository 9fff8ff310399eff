/*
 * bench_render: figure 4 of `make bench` (see docs/performance.md).
 *
 * Times photosync's image_render() making the portal's three thumbnails
 * (sides 48, 72 and 300, as one sync does) from one 648x648 JPEG, against
 * a floor measured in this same binary on the same bytes: libjpeg-turbo
 * decoding at the smallest DCT scale that is still at least 300 pixels
 * (scale_num/scale_denom), a plain C area-average (box) resize to 300, 72
 * and 48, and three libjpeg-turbo encodes with the settings our pipeline
 * uses (quality 85, optimised Huffman tables, baseline, 4:2:0).
 *
 * Both run single-threaded on the calling thread (libvips with
 * VIPS_CONCURRENCY=1), under photosync's malloc settings (mallopt, as
 * its main() makes them), alternately, in rounds; each figure is the median
 * of the per-photo wall times, with the process CPU time per photo beside
 * it so that work hidden on helper threads would show.
 *
 *   bench_render [--seconds S] [--rounds R] [--input FILE.jpg] [--dump DIR]
 *                [--sides 48,64,...]
 *   bench_render --generate SEED SIDE FILE.jpg
 *   bench_render --progressive SIDE FILE.jpg
 *
 * --sides renders those sides (at most 9) instead of S/M/L: figure 13
 * gives the master's nine (HR48x48 ... HR648x648), what one photo of
 * `master photo import` costs on one core.
 *
 * The last line of a run is machine-readable: "RESULT key=value ...".
 * --dump DIR writes one set of both outputs (floor-300.jpg,
 * photosync-300.jpg, ...) to compare them by eye; --generate writes the
 * demo's generated photo (the driver's master photos); --progressive
 * writes a smooth progressive JPEG, from which the driver makes figure
 * 8's scan bomb by repeating its last scan.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

#include "image/image.h"

#define FLOOR_Q		85	/* RENDER_Q in src/image/image.c */
#define MAX_SIDES	9

/* The portal's S/M/L by default; --sides: the master's nine (figure 13). */
static int sides[MAX_SIDES] = { 48, 72, 300 };
static int n_sides = 3;

/* ---- timing ---- */

static double
now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct samples {
	double	*wall;
	size_t	 n, cap;
	double	 cpu_total, wall_total;
};

static void
samples_add(struct samples *s, double wall)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->wall = realloc(s->wall, s->cap * sizeof(*s->wall));
		if (s->wall == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	s->wall[s->n++] = wall;
}

/* ---- the floor: libjpeg-turbo + a plain C box resize ---- */

struct rgb {
	unsigned char	*px;
	int		 w, h;	/* 3 bytes per pixel, rows packed */
};

static void
die(const char *what)
{
	fprintf(stderr, "bench_render: %s\n", what);
	exit(1);
}

/* Decodes `in` at the smallest scale n/8 whose output is >= `target`. */
static void
floor_decode(const unsigned char *in, size_t len, int target, struct rgb *o)
{
	struct jpeg_decompress_struct d;
	struct jpeg_error_mgr jerr;
	unsigned int num;
	JSAMPROW row;

	d.err = jpeg_std_error(&jerr);
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, in, (unsigned long)len);
	if (jpeg_read_header(&d, TRUE) != JPEG_HEADER_OK)
		die("not a JPEG");
	d.out_color_space = JCS_RGB;
	d.scale_denom = 8;
	for (num = 1; num < 8; num++) {
		/* libjpeg rounds scaled dimensions up. */
		unsigned int w = (d.image_width * num + 7) / 8;
		unsigned int h = (d.image_height * num + 7) / 8;

		if ((int)w >= target && (int)h >= target)
			break;
	}
	d.scale_num = num;
	jpeg_start_decompress(&d);
	o->w = (int)d.output_width;
	o->h = (int)d.output_height;
	o->px = malloc((size_t)o->w * (size_t)o->h * 3);
	if (o->px == NULL)
		die("out of memory");
	while (d.output_scanline < d.output_height) {
		row = o->px + (size_t)d.output_scanline * (size_t)o->w * 3;
		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	jpeg_destroy_decompress(&d);
}

/*
 * Area-average weights for `in` samples onto `out` (out <= in): output i
 * covers [i*in/out, (i+1)*in/out) of the input; weights in 1/2^WBITS,
 * summing to exactly 2^WBITS.
 */
#define WBITS	14

struct taps {
	int	 *first, *count;
	uint32_t *w;	/* count[i] weights from w[i * maxtaps] */
	int	  maxtaps;
};

static void
taps_make(int in, int out, struct taps *t)
{
	double f = (double)in / out;
	int i, k;

	t->maxtaps = (int)f + 2;
	t->first = malloc((size_t)out * sizeof(int));
	t->count = malloc((size_t)out * sizeof(int));
	t->w = calloc((size_t)out * (size_t)t->maxtaps, sizeof(uint32_t));
	if (t->first == NULL || t->count == NULL || t->w == NULL)
		die("out of memory");
	for (i = 0; i < out; i++) {
		double a = i * f, b = (i + 1) * f;
		int lo = (int)a, hi = (int)b;
		uint32_t sum = 0, *w = t->w + (size_t)i * t->maxtaps;

		if (hi >= in)
			hi = in - 1;
		t->first[i] = lo;
		t->count[i] = hi - lo + 1;
		for (k = lo; k <= hi; k++) {
			double l = k < a ? a : k, r = k + 1 > b ? b : k + 1;

			w[k - lo] = r > l ? (uint32_t)((r - l) / f *
			    (1 << WBITS) + 0.5) : 0;
			sum += w[k - lo];
		}
		w[0] += (1u << WBITS) - sum;	/* exact unit sum */
	}
}

static void
taps_free(struct taps *t)
{
	free(t->first);
	free(t->count);
	free(t->w);
}

/*
 * Box-resizes `s` to side x side: columns first (whole rows at a time,
 * which the compiler vectorises), then within rows. Intermediate values
 * are 8.8 fixed point; everything fits 32-bit accumulators.
 */
static void
floor_resize(const struct rgb *s, int side, struct rgb *o)
{
	struct taps tx, ty;
	uint32_t *acc;
	uint16_t *mid;
	int x, y, k, n = s->w * 3;

	taps_make(s->w, side, &tx);
	taps_make(s->h, side, &ty);
	acc = malloc((size_t)n * sizeof(*acc));
	mid = malloc((size_t)n * sizeof(*mid));
	o->w = o->h = side;
	o->px = malloc((size_t)side * (size_t)side * 3);
	if (acc == NULL || mid == NULL || o->px == NULL)
		die("out of memory");
	for (y = 0; y < side; y++) {
		const uint32_t *wy = ty.w + (size_t)y * ty.maxtaps;
		unsigned char *out = o->px + (size_t)y * side * 3;

		/* Vertical: one source row at a time into acc. */
		memset(acc, 0, (size_t)n * sizeof(*acc));
		for (k = 0; k < ty.count[y]; k++) {
			const unsigned char *row = s->px +
			    (size_t)(ty.first[y] + k) * n;
			uint32_t w = wy[k];

			for (x = 0; x < n; x++)
				acc[x] += w * row[x];
		}
		for (x = 0; x < n; x++)
			mid[x] = (uint16_t)((acc[x] + (1u << (WBITS - 9))) >>
			    (WBITS - 8));
		/* Horizontal. */
		for (x = 0; x < side; x++) {
			const uint32_t *wx = tx.w + (size_t)x * tx.maxtaps;
			const uint16_t *p = mid + (size_t)tx.first[x] * 3;
			uint32_t r = 0, g = 0, b = 0;

			for (k = 0; k < tx.count[x]; k++, p += 3) {
				r += wx[k] * p[0];
				g += wx[k] * p[1];
				b += wx[k] * p[2];
			}
			r = (r + (1u << (WBITS + 7))) >> (WBITS + 8);
			g = (g + (1u << (WBITS + 7))) >> (WBITS + 8);
			b = (b + (1u << (WBITS + 7))) >> (WBITS + 8);
			out[x * 3] = (unsigned char)(r > 255 ? 255 : r);
			out[x * 3 + 1] = (unsigned char)(g > 255 ? 255 : g);
			out[x * 3 + 2] = (unsigned char)(b > 255 ? 255 : b);
		}
	}
	free(acc);
	free(mid);
	taps_free(&tx);
	taps_free(&ty);
}

static void
floor_encode(const struct rgb *im, unsigned char **out, unsigned long *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	JSAMPROW row;

	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	*out = NULL;
	*len = 0;
	jpeg_mem_dest(&c, out, len);
	c.image_width = (JDIMENSION)im->w;
	c.image_height = (JDIMENSION)im->h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);		/* 4:2:0, baseline */
	jpeg_set_quality(&c, FLOOR_Q, TRUE);
	c.optimize_coding = TRUE;	/* as image_save() asks libvips */
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		row = im->px + (size_t)c.next_scanline * im->w * 3;
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
}

static size_t floor_bytes[MAX_SIDES];
static const char *dump_dir;	/* --dump: write one set of outputs */

static void
dump(const char *who, int side, const unsigned char *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s-%d.jpg", dump_dir, who, side);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0)
		die("cannot write the --dump files");
}

static void
floor_render(const unsigned char *in, size_t len)
{
	struct rgb src, dst;
	unsigned char *jpg;
	unsigned long jlen;
	int i, target = 0;

	for (i = 0; i < n_sides; i++)
		if (sides[i] > target)
			target = sides[i];
	floor_decode(in, len, target, &src);
	for (i = 0; i < n_sides; i++) {
		floor_resize(&src, sides[i], &dst);
		floor_encode(&dst, &jpg, &jlen);
		floor_bytes[i] = jlen;
		if (dump_dir != NULL)
			dump("floor", sides[i], jpg, jlen);
		free(jpg);
		free(dst.px);
	}
	free(src.px);
}

/* ---- photosync: image_render() ---- */

static size_t ours_bytes[MAX_SIDES];

static void
ours_render(const unsigned char *in, size_t len)
{
	struct image_jpeg out[MAX_SIDES];
	int i;

	if (image_render(in, len, NULL, sides, (size_t)n_sides, out, NULL) != PS_OK)
		die(ps_errmsg());
	for (i = 0; i < n_sides; i++) {
		ours_bytes[i] = out[i].len;
		if (dump_dir != NULL)
			dump("photosync", sides[i], out[i].data, out[i].len);
		image_jpeg_free(&out[i]);
	}
}

/* ---- driver ---- */

/* Runs `fn` for `ms` milliseconds (at least `min_iter` times). */
static void
run_for(void (*fn)(const unsigned char *, size_t), const unsigned char *in,
    size_t len, double ms, int min_iter, struct samples *s)
{
	double start = now_ms(CLOCK_MONOTONIC);
	double cpu0 = now_ms(CLOCK_PROCESS_CPUTIME_ID), t0, t1;
	int n = 0;

	do {
		t0 = now_ms(CLOCK_MONOTONIC);
		fn(in, len);
		t1 = now_ms(CLOCK_MONOTONIC);
		samples_add(s, t1 - t0);
		n++;
	} while (t1 - start < ms || n < min_iter);
	s->cpu_total += now_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	s->wall_total += t1 - start;
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL) {
		fprintf(stderr, "bench_render: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if ((p = realloc(p, cap)) == NULL)
				die("out of memory");
		}
		r = fread(p + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	*len = n;
	return p;
}

static int
generate(const char *seed, const char *side, const char *path)
{
	struct image_jpeg j = { 0 };
	FILE *f;

	if (image_generate((uint32_t)strtoul(seed, NULL, 10),
	    atoi(side), &j) != PS_OK)
		die(ps_errmsg());
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(j.data, 1, j.len, f) != j.len || fclose(f) != 0) {
		fprintf(stderr, "bench_render: %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	image_jpeg_free(&j);
	return 0;
}

/*
 * A progressive JPEG (libjpeg's simple progression, quality 90) of a
 * smooth picture, SIDE pixels square: a vertical gradient from navy to
 * gold with a red square in a corner, as tests/integration/psync.py's
 * scan_bomb() starts from. Its last scan (a refinement) is small, so
 * repeating it makes many scans per megabyte.
 */
static int
progressive(const char *side_arg, const char *path)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *out = NULL, *row;
	unsigned long len = 0;
	int side = atoi(side_arg), x, y;
	FILE *f;

	if (side < 16 || side > 16384)
		die("--progressive: SIDE must be 16 to 16384");
	if ((row = malloc((size_t)side * 3)) == NULL)
		die("out of memory");
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &len);
	c.image_width = (JDIMENSION)side;
	c.image_height = (JDIMENSION)side;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	for (y = 0; y < side; y++) {
		for (x = 0; x < side; x++) {
			unsigned char *p = row + (size_t)x * 3;
			bool red = x < side / 8 && y < side / 8;

			/* navy (0,0,128) to gold (255,215,0) */
			p[0] = red ? 255 : (unsigned char)(255L * y / side);
			p[1] = red ? 0 : (unsigned char)(215L * y / side);
			p[2] = red ? 0 : (unsigned char)(128 - 128L * y / side);
		}
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(out, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "bench_render: %s: %s\n", path,
		    strerror(errno));
		free(out);
		return 1;
	}
	free(out);
	return 0;
}

static void	usage(void);

/* --sides: comma-separated sides, 1 to MAX_SIDES of them. */
static void
sides_parse(const char *list)
{
	char *end;
	long v;

	n_sides = 0;
	do {
		v = strtol(list, &end, 10);
		if (end == list || v < 1 || v > 16384 || n_sides == MAX_SIDES ||
		    (*end != ',' && *end != '\0'))
			usage();
		sides[n_sides++] = (int)v;
		list = *end == ',' ? end + 1 : end;
	} while (*list != '\0');
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_render [--seconds S] [--rounds R] "
	    "[--input FILE.jpg] [--dump DIR]\n"
	    "                    [--sides 48,64,...]\n"
	    "       bench_render --generate SEED SIDE FILE.jpg\n"
	    "       bench_render --progressive SIDE FILE.jpg\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct samples fl = { 0 }, ours = { 0 };
	const char *input = NULL;
	double seconds = 10, fl_ms, ours_ms;
	unsigned char *in;
	size_t len;
	int rounds = 5, i;

	/*
	 * The malloc settings of photosync's main() (src/cmd/main.c), so
	 * that the floor and image_render() both run as in photosync.
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	/* Single-threaded libvips, before it starts. */
	setenv("VIPS_CONCURRENCY", "1", 1);
	if (argc > 1 && strcmp(argv[1], "--generate") == 0) {
		if (argc != 5)
			usage();
		return generate(argv[2], argv[3], argv[4]);
	}
	if (argc > 1 && strcmp(argv[1], "--progressive") == 0) {
		if (argc != 4)
			usage();
		return progressive(argv[2], argv[3]);
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
			input = argv[++i];
		else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
			dump_dir = argv[++i];
		else if (strcmp(argv[i], "--sides") == 0 && i + 1 < argc)
			sides_parse(argv[++i]);
		else
			usage();
	}
	if (seconds <= 0 || rounds < 1)
		usage();
	if (image_init(argv[0]) != PS_OK)
		die(ps_errmsg());
	if (input != NULL) {
		in = read_file(input, &len);
	} else {
		struct image_jpeg j = { 0 };

		if (image_generate(1, 648, &j) != PS_OK)
			die(ps_errmsg());
		in = j.data;
		len = j.len;
	}

	/* Warm both paths up (libvips' first call builds its classes). */
	for (i = 0; i < 5; i++) {
		floor_render(in, len);
		ours_render(in, len);
		dump_dir = NULL;
	}
	/* Alternate, so that both see the same noise. */
	for (i = 0; i < rounds; i++) {
		run_for(floor_render, in, len, seconds * 1e3 / rounds / 2, 20,
		    &fl);
		run_for(ours_render, in, len, seconds * 1e3 / rounds / 2, 20,
		    &ours);
	}
	fl_ms = median(fl.wall, fl.n);
	ours_ms = median(ours.wall, ours.n);
	printf("input            %zu bytes%s%s\n", len,
	    input ? ", " : " (image_generate(1, 648))", input ? input : "");
	printf("sides           ");
	for (i = 0; i < n_sides; i++)
		printf(" %d%s", sides[i], i + 1 < n_sides ? "," : "");
	printf("; quality %d\n", FLOOR_Q);
	printf("floor            %.3f ms/photo median of %zu (cpu %.3f ms), "
	    "bytes", fl_ms, fl.n, fl.cpu_total / fl.n);
	for (i = 0; i < n_sides; i++)
		printf("%s%zu", i ? "/" : " ", floor_bytes[i]);
	printf("\nimage_render()   %.3f ms/photo median of %zu (cpu %.3f ms), "
	    "bytes", ours_ms, ours.n, ours.cpu_total / ours.n);
	for (i = 0; i < n_sides; i++)
		printf("%s%zu", i ? "/" : " ", ours_bytes[i]);
	printf("\n");
	printf("ratio            %.2fx of the floor\n", ours_ms / fl_ms);
	printf("RESULT floor_ms=%.4f photosync_ms=%.4f ratio=%.4f "
	    "floor_cpu_ms=%.4f photosync_cpu_ms=%.4f floor_n=%zu "
	    "photosync_n=%zu input_bytes=%zu\n", fl_ms, ours_ms,
	    ours_ms / fl_ms, fl.cpu_total / fl.n, ours.cpu_total / ours.n,
	    fl.n, ours.n, len);
	free(in);
	free(fl.wall);
	free(ours.wall);
	return 0;
}
