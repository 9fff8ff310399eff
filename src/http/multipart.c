/*
 * multipart/form-data (RFC 7578): finding one field of a request body
 * without copying it. Only what browsers and curl send is accepted:
 * a boundary parameter, parts with a Content-Disposition: form-data
 * header, CRLF line ends.
 */
#include <string.h>
#include <strings.h>

#include "common/str.h"
#include "server.h"

#define MAX_BOUNDARY 200

static ps_err
boundary_of(const char *ctype, char *out, size_t n)
{
	const char *p;
	size_t len;

	if (ctype == NULL || !str_case_prefix(ctype, "multipart/form-data"))
		return ps_errf(PS_EINVAL, "the form must be sent as "
		    "multipart/form-data");
	p = strcasestr(ctype, "boundary=");
	if (p == NULL)
		return ps_errf(PS_EINVAL, "the multipart form has no boundary");
	p += 9;
	if (*p == '"') {
		p++;
		len = strcspn(p, "\"");
	} else {
		len = strcspn(p, "; \t");
	}
	if (len == 0 || len > 70 || len + 3 > n)
		return ps_errf(PS_EINVAL, "the multipart boundary is invalid");
	out[0] = '-';
	out[1] = '-';
	memcpy(out + 2, p, len);
	out[len + 2] = '\0';
	return PS_OK;
}

/* A parameter (name="...") of a Content-Disposition header line. */
static void
disposition_param(const char *line, size_t n, const char *param, char *out,
    size_t outn)
{
	size_t pl = strlen(param), i;

	out[0] = '\0';
	for (i = 0; i + pl + 2 < n; i++) {
		size_t len;
		const char *v;

		if (strncasecmp(line + i, param, pl) != 0 ||
		    line[i + pl] != '=' || (i > 0 && line[i - 1] != ' ' &&
		    line[i - 1] != ';'))
			continue;
		v = line + i + pl + 1;
		if (*v == '"') {
			const char *end = memchr(v + 1, '"', n - (size_t)(v + 1 -
			    line));

			if (end == NULL)
				return;
			v++;
			len = (size_t)(end - v);
		} else {
			len = 0;
			while (v + len < line + n && v[len] != ';')
				len++;
		}
		if (len >= outn)
			len = outn - 1;
		memcpy(out, v, len);
		out[len] = '\0';
		return;
	}
}

ps_err
http_multipart_field(const char *ctype, const char *body, size_t len,
    const char *name, struct http_part *out)
{
	char delim[MAX_BOUNDARY];
	const char *p, *end = body + len;
	size_t dl;
	ps_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = boundary_of(ctype, delim, sizeof(delim))) != PS_OK)
		return rc;
	dl = strlen(delim);
	p = memmem(body, len, delim, dl);
	while (p != NULL) {
		const char *hdr, *hend, *data, *next, *line;
		char pname[128] = "", fname[256] = "", ptype[128] = "";

		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			break;	/* the closing delimiter */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			goto bad;
		hdr = p + 2;
		hend = memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
		if (hend == NULL)
			goto bad;
		for (line = hdr; line < hend; ) {
			const char *eol = memmem(line, (size_t)(hend - line +
			    2), "\r\n", 2);
			size_t ll = (size_t)(eol - line);

			if (ll > 20 && strncasecmp(line, "Content-Disposition:",
			    20) == 0) {
				disposition_param(line, ll, "name", pname,
				    sizeof(pname));
				disposition_param(line, ll, "filename", fname,
				    sizeof(fname));
			} else if (ll > 13 && strncasecmp(line,
			    "Content-Type:", 13) == 0) {
				size_t k = 13;

				while (k < ll && line[k] == ' ')
					k++;
				if (ll - k < sizeof(ptype)) {
					memcpy(ptype, line + k, ll - k);
					ptype[ll - k] = '\0';
				}
			}
			line = eol + 2;
		}
		data = hend + 4;
		next = memmem(data, (size_t)(end - data), delim, dl);
		if (next == NULL || next - data < 2 || next[-2] != '\r' ||
		    next[-1] != '\n')
			goto bad;
		if (strcmp(pname, name) == 0) {
			str_copy(out->filename, fname, sizeof(out->filename));
			str_copy(out->content_type, ptype,
			    sizeof(out->content_type));
			out->data = (const unsigned char *)data;
			out->len = (size_t)(next - 2 - data);
			return PS_OK;
		}
		p = next;
	}
	return ps_errf(PS_ENOTFOUND, "the form has no field \"%s\"", name);
bad:
	return ps_errf(PS_EINVAL, "the multipart form is malformed");
}

ps_err
http_multipart_head_field(const char *ctype, const char *body, size_t len,
    const char *name, struct http_part *out)
{
	ps_err rc;

	if (len <= HTTP_FORM_HEAD)
		return http_multipart_field(ctype, body, len, name, out);
	/* A cut form is malformed where the cut falls: not found, then. */
	rc = http_multipart_field(ctype, body, HTTP_FORM_HEAD, name, out);
	if (rc == PS_EINVAL)
		rc = ps_errf(PS_ENOTFOUND, "no field \"%s\" in the first "
		    "%d KiB of the form", name, HTTP_FORM_HEAD / 1024);
	return rc;
}
