/*
 * The placeholder photo shown for users without one: a neutral grey
 * silhouette (head and shoulders) on a light grey square, as JPEG.
 * Part of the image module, the only user of libvips.
 */
#include <string.h>
#include <vips/vips.h>

#include "common/xalloc.h"

#include "image.h"

ps_err
image_placeholder(int side, struct image_jpeg *out)
{
	VipsImage *base = NULL, *bg = NULL, *rgb = NULL;
	double light[3] = { 225, 228, 232 }, dark[3] = { 160, 166, 174 };
	double one[3] = { 1, 1, 1 };
	void *buf = NULL;
	size_t len = 0;
	ps_err rc = PS_EIMAGE;

	memset(out, 0, sizeof(*out));
	if (side < 1 || side > 4096)
		return ps_errf(PS_EINVAL, "placeholder side %d out of range",
		    side);
	if (vips_black(&base, side, side, "bands", 3, NULL) != 0 ||
	    vips_linear(base, &bg, one, light, 3, NULL) != 0 ||
	    vips_cast_uchar(bg, &rgb, NULL) != 0)
		goto out;
	/* Shoulders: a large circle whose top shows at the bottom. */
	if (vips_draw_circle(rgb, dark, 3, side / 2, side + side / 8,
	    side / 2, "fill", TRUE, NULL) != 0 ||
	    vips_draw_circle(rgb, dark, 3, side / 2, side * 2 / 5, side / 5,
	    "fill", TRUE, NULL) != 0)
		goto out;
	if (vips_jpegsave_buffer(rgb, &buf, &len, "Q", 85, "strip", TRUE,
	    NULL) != 0)
		goto out;
	/* Callers free with image_jpeg_free(), which expects xmalloc(). */
	out->data = xmalloc(len);
	memcpy(out->data, buf, len);
	out->len = len;
	out->side = side;
	rc = PS_OK;
out:
	if (rc != PS_OK)
		ps_errf(rc, "cannot draw the placeholder: %s",
		    vips_error_buffer());
	vips_error_clear();
	g_free(buf);
	VIPS_UNREF(base);
	VIPS_UNREF(bg);
	VIPS_UNREF(rgb);
	return rc;
}
