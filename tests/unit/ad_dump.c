/*
 * A test driver that prints the master's Autodiscover and EWS answers so
 * that a client we did not write (exchangelib, see exchangelib_parse.py)
 * can parse them. Not a unit test itself.
 *
 *   ad_dump pox          request on stdin, POX answer on stdout
 *   ad_dump soap         request on stdin, SOAP answer on stdout
 *   ad_dump ews-photo    GetUserPhoto answer with a small JPEG
 *   ad_dump ews-unchanged  GetUserPhoto answer, HasChanged false
 *   ad_dump ews-error    GetUserPhoto error answer
 *
 * The HTTP status and the outcome go to stderr as "status=N result=R".
 * Known mailboxes: test1@contoso.com ("Test User One") and
 * test2@contoso.com; the server is https://mail.contoso.com.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "exchange/autodiscover.h"
#include "exchange/ews.h"

static ps_err
lookup(void *arg, const char *email, char **display_name)
{
	(void)arg;
	if (str_case_eq(email, "test1@contoso.com")) {
		*display_name = xstrdup("Test User One");
		return PS_OK;
	}
	if (str_case_eq(email, "test2@contoso.com")) {
		*display_name = xstrdup("Test & <User> Two");
		return PS_OK;
	}
	return PS_ENOTFOUND;
}

static const struct ad_server srv = {
	.base_url = "https://mail.contoso.com",
	.domain = "contoso.com",
	.deployment_id = "0f0c4a8e-2a57-4c39-9d4f-1d6c2d3c9b11",
	.lookup = lookup,
};

int main(int, char **);

int
main(int argc, char **argv)
{
	static const unsigned char jpeg[] = { 0xff, 0xd8, 0xff, 0xe0, 0x00,
	    0x10, 'J', 'F', 'I', 'F', 0x00, 0xff, 0xd9 };
	struct ad_outcome oc;
	struct buf out;
	char *in = NULL;
	size_t len = 0;
	int status = 200, rc = 1;
	const char *mode = argc > 1 ? argv[1] : "";

	buf_init(&out, 1 << 20);
	memset(&oc, 0, sizeof(oc));
	if (strcmp(mode, "pox") == 0 || strcmp(mode, "soap") == 0) {
		if (file_read("-", 1 << 20, &in, &len) != PS_OK) {
			fprintf(stderr, "ad_dump: %s\n", ps_errmsg());
			goto out;
		}
		if (strcmp(mode, "pox") == 0)
			autodiscover_pox(&srv, in, len, &out, &oc);
		else
			autodiscover_soap(&srv, in, len, &out, &oc);
		status = oc.status;
	} else if (strcmp(mode, "ews-photo") == 0)
		ews_photo_response(&out, true, jpeg, sizeof(jpeg),
		    "image/jpeg");
	else if (strcmp(mode, "ews-unchanged") == 0)
		ews_photo_response(&out, false, NULL, 0, NULL);
	else if (strcmp(mode, "ews-error") == 0)
		ews_error_response(&out, "ErrorInvalidPhotoSize",
		    "The requested photo size is not valid.");
	else {
		fprintf(stderr, "usage: ad_dump pox|soap|ews-photo|"
		    "ews-unchanged|ews-error\n");
		goto out;
	}
	fwrite(buf_str(&out), 1, out.b_len, stdout);
	fprintf(stderr, "status=%d result=%s\n", status,
	    oc.result ? oc.result : "-");
	rc = 0;
out:
	free(in);
	buf_cleanup(&out);
	return rc;
}
