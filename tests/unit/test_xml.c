/*
 * Unit tests of the hardened XML module: DOCTYPE, entity and external
 * subset refusal (checked with inotify to prove nothing was opened),
 * depth and size limits, malformed input (refused without a word on
 * stderr), namespaces and navigation, and the text escaper.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/buf.h"
#include "xml/xml.h"
#include "t.h"

static ps_err
parse_str(const char *s, struct xml_doc **d)
{
	return xml_parse(s, strlen(s), d);
}

/* Parses `s` and expects `want`; frees whatever came back. */
static void
refused(const char *s, ps_err want, const char *what)
{
	struct xml_doc *d = (struct xml_doc *)1;
	ps_err rc;

	rc = parse_str(s, &d);
	if (!ok(rc == want && d == NULL, what))
		printf("#   got %d (%s), want %d\n", rc, ps_errmsg(), want);
	if (rc == PS_OK)
		xml_free(d);
}

/*
 * A temporary file watched with inotify: proves that parsing a document
 * that names it never opened or read it.
 */
struct watched {
	char	path[256];
	int	fd;
};

static int
watch_new(struct watched *w, const char *content)
{
	const char *tmp = getenv("TMPDIR");
	int f;

	if (tmp == NULL || *tmp == '\0')
		tmp = P_tmpdir;
	if ((size_t)snprintf(w->path, sizeof(w->path), "%s/ps-xml-test-XXXXXX",
	    tmp) >= sizeof(w->path))
		return -1;
	if ((f = mkstemp(w->path)) < 0)
		return -1;
	if (write(f, content, strlen(content)) < 0) {
		close(f);
		return -1;
	}
	close(f);
	w->fd = inotify_init1(IN_NONBLOCK);
	if (w->fd < 0 ||
	    inotify_add_watch(w->fd, w->path, IN_OPEN | IN_ACCESS) < 0)
		return -1;
	return 0;
}

/* True when no open or read of the file happened since watch_new(). */
static int
watch_untouched(struct watched *w)
{
	char ev[4096];
	ssize_t n = read(w->fd, ev, sizeof(ev));

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
watch_done(struct watched *w)
{
	close(w->fd);
	unlink(w->path);
}

static void
test_doctype(void)
{
	struct watched w;
	char doc[512];

	refused("<?xml version=\"1.0\"?>\n<!DOCTYPE a [\n"
	    "<!ENTITY e \"expanded\">\n]>\n<a>&e;</a>", PS_EINVAL,
	    "internal entity refused");
	ok(strstr(ps_errmsg(), "DOCTYPE") != NULL, "message names DOCTYPE");
	refused("<!DOCTYPE a><a/>", PS_EINVAL, "bare DOCTYPE refused");
	refused("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
	    " <!ENTITY lol \"lol\">\n"
	    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
	    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
	    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
	    " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
	    " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
	    " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
	    " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
	    " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
	    " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
	    "]>\n<lolz>&lol9;</lolz>", PS_EINVAL, "billion laughs refused");

	refused("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	    "<a>&x;</a>", PS_EINVAL, "external entity on /etc/passwd refused");

	/* The same with a file we watch: it must not even be opened. */
	if (watch_new(&w, "secret-marker\n") != 0) {
		ok(0, "inotify watch set up");
		return;
	}
	snprintf(doc, sizeof(doc), "<!DOCTYPE a [<!ENTITY x SYSTEM "
	    "\"file://%s\">]><a>&x;</a>", w.path);
	refused(doc, PS_EINVAL, "external SYSTEM entity refused");
	snprintf(doc, sizeof(doc), "<!DOCTYPE a [<!ENTITY %% p SYSTEM "
	    "\"file://%s\"> %%p;]><a/>", w.path);
	refused(doc, PS_EINVAL, "external parameter entity refused");
	snprintf(doc, sizeof(doc), "<!DOCTYPE a [<!ENTITY %% p \"<!ENTITY "
	    "&#x25; q SYSTEM 'file://%s'>\"> %%p; %%q;]><a/>", w.path);
	refused(doc, PS_EINVAL, "nested parameter entities refused");
	snprintf(doc, sizeof(doc), "<!DOCTYPE a SYSTEM \"file://%s\"><a/>",
	    w.path);
	refused(doc, PS_EINVAL, "external DTD subset refused");
	snprintf(doc, sizeof(doc), "<!DOCTYPE a PUBLIC \"-//X//Y\" "
	    "\"%s\"><a/>", w.path);
	refused(doc, PS_EINVAL, "PUBLIC external DTD refused");
	snprintf(doc, sizeof(doc), "<a xmlns:xi=\"http://www.w3.org/2001/"
	    "XInclude\"><xi:include href=\"file://%s\" parse=\"text\"/></a>",
	    w.path);
	{
		struct xml_doc *d;
		const char *t;

		ok(parse_str(doc, &d) == PS_OK, "XInclude element parses");
		t = xml_text(xml_root(d));
		ok(t != NULL && strstr(t, "secret") == NULL,
		    "XInclude not processed");
		xml_free(d);
	}
	ok(watch_untouched(&w), "no file named by the documents was opened");
	watch_done(&w);
}

static void
test_limits(void)
{
	struct buf b;
	struct xml_doc *d;
	int i;

	buf_init(&b, 4 * XML_MAX_BYTES);
	for (i = 0; i < XML_MAX_DEPTH; i++)
		buf_adds(&b, "<a>");
	for (i = 0; i < XML_MAX_DEPTH; i++)
		buf_adds(&b, "</a>");
	ok(parse_str(buf_str(&b), &d) == PS_OK, "depth at the limit parses");
	xml_free(d);

	buf_reset(&b);
	for (i = 0; i <= XML_MAX_DEPTH; i++)
		buf_adds(&b, "<a>");
	for (i = 0; i <= XML_MAX_DEPTH; i++)
		buf_adds(&b, "</a>");
	refused(buf_str(&b), PS_ELIMIT, "one level deeper refused");

	buf_reset(&b);
	for (i = 0; i < 100000; i++)
		buf_adds(&b, "<a>");
	refused(buf_str(&b), PS_ELIMIT, "depth bomb refused");

	buf_reset(&b);
	buf_adds(&b, "<a>");
	while (b.b_len <= XML_MAX_BYTES)
		buf_adds(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	buf_adds(&b, "</a>");
	refused(buf_str(&b), PS_ELIMIT, "oversize refused");
	ok(xml_parse(buf_str(&b), XML_MAX_BYTES + 1, &d) == PS_ELIMIT,
	    "one byte over refused");
	buf_cleanup(&b);
}

static void
test_malformed(void)
{
	struct xml_doc *d;

	refused("", PS_EINVAL, "empty refused");
	refused("<a>", PS_EINVAL, "unclosed refused");
	refused("<a></b>", PS_EINVAL, "mismatched tags refused");
	refused("<a>&unknown;</a>", PS_EINVAL, "undeclared entity refused");
	refused("<a/><b/>", PS_EINVAL, "two roots refused");
	refused("just text", PS_EINVAL, "text refused");
	refused("<m:a/>", PS_EINVAL, "undeclared prefix refused");
	refused("<a x='1' x='2'/>", PS_EINVAL, "duplicate attribute refused");
	ok(xml_parse("<a>\0</a>", 8, &d) == PS_EINVAL, "NUL byte refused");
	ok(strstr(ps_errmsg(), "malformed") != NULL, "message says malformed");
}

/*
 * Bytes a declared encoding cannot convert: refused, and libxml2's own
 * report of them (its generic handler's) does not reach stderr, where a
 * server would print what a client sent outside its log.
 */
static void
test_encoding_silent(void)
{
	static const char doc[] = "<?xml version=\"1.0\" encoding=\"EUC-JP\"?>"
	    "<a>\x9e\xc2?x\xff\xff</a>";
	char path[4096], got[256];
	const char *tmp = getenv("TMPDIR");
	struct xml_doc *d = NULL;
	int fd, saved;
	ssize_t n;
	ps_err rc;

	snprintf(path, sizeof(path), "%s/stderr-XXXXXX", tmp ? tmp : ".");
	fd = mkstemp(path);
	ok(fd >= 0, "a file for stderr");
	if (fd < 0)
		return;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	rc = xml_parse(doc, sizeof(doc) - 1, &d);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, got, sizeof(got) - 1, 0);
	close(fd);
	unlink(path);
	ok(rc == PS_EINVAL && d == NULL, "unconvertible bytes refused");
	is_int((int)n, 0, "nothing written to stderr");
	xml_free(d);
}

static void
test_navigation(void)
{
	static const char doc[] =
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\""
	    " xmlns:m=\"urn:m\">\n"
	    "  <s:Header/>\n"
	    "  <s:Body>\n"
	    "    <m:Op Kind=\"a&amp;b&#10;c\">\n"
	    "      <!-- comment -->\n"
	    "      <m:Email>  test1@contoso.com\n</m:Email>\n"
	    "      <Email xmlns=\"urn:other\">other</Email>\n"
	    "      <m:Email>second</m:Email>\n"
	    "      <m:Text>a &lt;b&gt; &amp; <![CDATA[<c>]]> &#x41;</m:Text>\n"
	    "      <m:Empty/>\n"
	    "    </m:Op>\n"
	    "  </s:Body>\n"
	    "</s:Envelope>\n";
	struct xml_doc *d;
	const struct xml_node *root, *op, *n;
	const char *t1, *t2;

	if (!ok(parse_str(doc, &d) == PS_OK, "SOAP document parses"))
		return;
	root = xml_root(d);
	is_str(xml_name(root), "Envelope", "root local name");
	is_str(xml_ns(root), "http://schemas.xmlsoap.org/soap/envelope/",
	    "root namespace resolved");
	op = xml_path(root, "Body/Op");
	ok(op != NULL, "path Body/Op");
	is_str(xml_ns(op), "urn:m", "prefix m resolved");
	ok(xml_child(root, "urn:wrong", "Body") == NULL,
	    "namespace filter excludes");
	ok(xml_child(root, "http://schemas.xmlsoap.org/soap/envelope/",
	    "Body") != NULL, "namespace filter includes");
	is_str(xml_text(xml_child(op, "urn:m", "Email")), "test1@contoso.com",
	    "text trimmed");
	is_str(xml_text(xml_child(op, "urn:other", "Email")), "other",
	    "default namespace resolved");
	n = xml_next(xml_child(op, "urn:m", "Email"), "urn:m", "Email");
	is_str(xml_text(n), "second", "xml_next with namespace");
	n = xml_next(xml_child(op, "urn:m", "Email"), NULL, "Email");
	is_str(xml_ns(n), "urn:other", "xml_next any namespace");
	is_str(xml_text(xml_child(op, NULL, "Text")), "a <b> & <c> A",
	    "entities, CDATA and char refs decoded");
	is_str(xml_text(xml_child(op, NULL, "Empty")), "", "empty element");
	is_str(xml_attr(op, "Kind"), "a&b\nc", "attribute decoded");
	ok(xml_attr(op, "Missing") == NULL, "missing attribute is NULL");
	t1 = xml_text(op);
	t2 = xml_text(op);
	ok(t1 == t2, "xml_text cached per node");
	n = xml_first_element(op);
	is_str(xml_name(n), "Email", "first element skips comments");
	n = xml_next_element(n);
	is_str(xml_ns(n), "urn:other", "next element");
	ok(xml_path(root, "Body/Nope/Email") == NULL, "missing path step");
	ok(xml_child(NULL, NULL, "x") == NULL && xml_text(NULL) == NULL &&
	    xml_attr(NULL, "a") == NULL && xml_path(NULL, "a") == NULL,
	    "NULL nodes chain");
	is_str(xml_ns(xml_root(d)), "http://schemas.xmlsoap.org/soap/envelope/",
	    "unchanged after lookups");
	xml_free(d);
	xml_free(NULL);

	ok(parse_str("<a>caf\xc3\xa9</a>", &d) == PS_OK, "UTF-8 accepted");
	is_str(xml_text(xml_root(d)), "caf\xc3\xa9", "UTF-8 kept");
	xml_free(d);
	ok(parse_str("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
	    "<a>caf\xe9</a>", &d) == PS_OK, "Latin-1 declared accepted");
	is_str(xml_text(xml_root(d)), "caf\xc3\xa9", "converted to UTF-8");
	xml_free(d);
	ok(parse_str("<a>\xff</a>", &d) == PS_EINVAL, "invalid UTF-8 refused");
}

static void
test_add_text(void)
{
	struct buf b;

	buf_init(&b, 1000);
	xml_add_text(&b, "a<b>&\"c'");
	is_str(buf_str(&b), "a&lt;b&gt;&amp;&quot;c&#39;",
	    "same escapes as buf_add_xml");
	buf_reset(&b);
	xml_add_text(&b, "l1\nl2\r\tx\x01y\x7f");
	is_str(buf_str(&b), "l1&#10;l2&#13;&#9;xy\x7f",
	    "line breaks encoded, controls dropped");
	buf_reset(&b);
	xml_add_text(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	is_str(buf_str(&b), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	    "valid UTF-8 kept");
	buf_reset(&b);
	xml_add_text(&b, "a\xff" "b\xc3" "c\xed\xa0\x80" "d\xc0\xaf"
	    "e\xef\xbf\xbf");
	is_str(buf_str(&b), "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd"
	    "\xef\xbf\xbd\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd"
	    "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	    "invalid UTF-8 replaced");
	buf_cleanup(&b);
	buf_init(&b, 4);
	ok(xml_add_text(&b, "&&") == PS_ELIMIT, "cap honoured");
	buf_cleanup(&b);
}

int main(void);

int
main(void)
{
	test_doctype();
	test_limits();
	test_malformed();
	test_encoding_silent();
	test_navigation();
	test_add_text();
	return done();
}
