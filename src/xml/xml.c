/*
 * Hardened XML parsing on top of libxml2; the only file that includes
 * libxml2 headers.
 *
 * Every document comes from the network, so the parser is configured to
 * do nothing but build a tree of elements and text:
 *   - a DOCTYPE is refused the moment the parser reports it (SAX
 *     internalSubset), before any entity or external subset is read, so
 *     internal and external entities, parameter entities and the
 *     "billion laughs" never get a chance to expand;
 *   - no XML_PARSE_NOENT, XML_PARSE_DTDLOAD, XML_PARSE_DTDATTR or
 *     XML_PARSE_XINCLUDE, and XML_PARSE_NONET on top;
 *   - errors go to a private handler, never to stderr;
 *   - the input size is capped before parsing (XML_MAX_BYTES, or the
 *     caller's cap for a document that carries a large base64 value:
 *     xml_parse_max) and the element depth is counted while parsing
 *     (XML_MAX_DEPTH), so a deep document is stopped before its tree is
 *     built;
 *   - documents that are not namespace-well-formed are refused.
 *
 * Threads: xml_parse() may run on any thread (libxml2 is initialised
 * once). A document must be used by one thread at a time, because
 * xml_text() caches its result in the node.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "common/xalloc.h"
#include "xml.h"

/* A string handed out by the accessors; freed with the document. */
struct xml_str {
	struct xml_str	*next;
	char		 s[];
};

struct xml_doc {
	xmlDoc		*doc;
	struct xml_str	*strs;
};

/* What the SAX hooks saw, hung on the parser context's _private. */
struct parse_state {
	int		 depth;
	bool		 doctype;
	bool		 too_deep;
	int		 err_line;
	char		 err_msg[160];
};

static const int parse_options = XML_PARSE_NONET | XML_PARSE_NOERROR |
    XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init_libxml(void)
{
	xmlInitParser();
}

/* --- parsing -------------------------------------------------------- */

/*
 * libxml2 reports some errors (a failed encoding conversion, I/O) to its
 * generic handler, which writes them to stderr, and not to the context's
 * handler: a request's bytes would reach the server's stderr outside the
 * log. Silenced for every parse (the handler is the thread's own); the
 * document is refused all the same, with the context's error.
 */
static void
discard_generic_error(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void
halt(xmlParserCtxt *ctxt)
{
	/* Make sure libxml2 itself does not hand back a partial tree. */
	ctxt->wellFormed = 0;
	xmlStopParser(ctxt);
}

/*
 * Called as soon as "<!DOCTYPE name ...>" has been read and before the
 * internal subset "[...]" is parsed or any external subset is considered:
 * stopping here means no declaration in it is ever processed.
 */
static void
sax_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
    const xmlChar *sys_id)
{
	xmlParserCtxt *ctxt = ctx;
	struct parse_state *st = ctxt->_private;

	(void)name;
	(void)ext_id;
	(void)sys_id;
	st->doctype = true;
	halt(ctxt);
}

static void
sax_start_element(void *ctx, const xmlChar *localname,
    const xmlChar *prefix, const xmlChar *uri, int nb_namespaces,
    const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
    const xmlChar **attributes)
{
	xmlParserCtxt *ctxt = ctx;
	struct parse_state *st = ctxt->_private;

	if (++st->depth > XML_MAX_DEPTH) {
		st->too_deep = true;
		halt(ctxt);
		return;
	}
	xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces,
	    namespaces, nb_attributes, nb_defaulted, attributes);
}

static void
sax_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	xmlParserCtxt *ctxt = ctx;
	struct parse_state *st = ctxt->_private;

	st->depth--;
	xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

/* Keeps the first error for the caller's message; prints nothing. */
static void
sax_error(void *ctx, xmlError *e)
{
	xmlParserCtxt *ctxt = ctx;
	struct parse_state *st;
	size_t n;

	if (ctxt == NULL || ctxt->_private == NULL || e == NULL)
		return;
	st = ctxt->_private;
	if (st->err_msg[0] != '\0' || e->message == NULL)
		return;
	st->err_line = e->line;
	snprintf(st->err_msg, sizeof(st->err_msg), "%s", e->message);
	n = strlen(st->err_msg);
	while (n > 0 && (st->err_msg[n - 1] == '\n' ||
	    st->err_msg[n - 1] == ' '))
		st->err_msg[--n] = '\0';
}

ps_err
xml_parse(const char *data, size_t len, struct xml_doc **out)
{
	return xml_parse_max(data, len, XML_MAX_BYTES, out);
}

ps_err
xml_parse_max(const char *data, size_t len, size_t max,
    struct xml_doc **out)
{
	struct parse_state st;
	xmlParserCtxt *ctxt = NULL;
	xmlDoc *doc = NULL;
	ps_err rc = PS_EINVAL;
	int options = parse_options;

	*out = NULL;
	if (len > max) {
		rc = ps_errf(PS_ELIMIT, "XML document of %zu bytes, limit %zu",
		    len, max);
		goto out;
	}
	if (len > INT32_MAX) {
		rc = ps_errf(PS_ELIMIT, "XML document of %zu bytes", len);
		goto out;
	}
	/*
	 * libxml2 refuses a text node over 10 MB unless told otherwise; the
	 * size cap above (and the depth count) bound the document instead.
	 */
	if (max > XML_MAX_BYTES)
		options |= XML_PARSE_HUGE;
	if (data == NULL || len == 0) {
		rc = ps_errf(PS_EINVAL, "empty XML document");
		goto out;
	}
	pthread_once(&init_once, init_libxml);

	memset(&st, 0, sizeof(st));
	if ((ctxt = xmlNewParserCtxt()) == NULL) {
		rc = ps_errf(PS_ENOMEM, "cannot create an XML parser");
		goto out;
	}
	/* The SAX handler belongs to this context; we only wrap it. */
	ctxt->_private = &st;
	ctxt->sax->internalSubset = sax_internal_subset;
	ctxt->sax->startElementNs = sax_start_element;
	ctxt->sax->endElementNs = sax_end_element;
	ctxt->sax->serror = sax_error;

	xmlSetGenericErrorFunc(NULL, discard_generic_error);
	doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL, options);

	if (st.doctype) {
		rc = ps_errf(PS_EINVAL, "XML document with a DOCTYPE refused");
		goto out;
	}
	if (st.too_deep) {
		rc = ps_errf(PS_ELIMIT, "XML nesting deeper than %d",
		    XML_MAX_DEPTH);
		goto out;
	}
	if (doc == NULL || !ctxt->wellFormed) {
		if (st.err_msg[0] != '\0')
			rc = ps_errf(PS_EINVAL, "malformed XML, line %d: %s",
			    st.err_line, st.err_msg);
		else
			rc = ps_errf(PS_EINVAL, "malformed XML");
		goto out;
	}
	if (!ctxt->nsWellFormed) {
		rc = ps_errf(PS_EINVAL, "XML namespace error, line %d: %s",
		    st.err_line, st.err_msg[0] ? st.err_msg : "?");
		goto out;
	}
	/* Belt and braces: the hook above should make this impossible. */
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		rc = ps_errf(PS_EINVAL, "XML document with a DTD refused");
		goto out;
	}
	if (xmlDocGetRootElement(doc) == NULL) {
		rc = ps_errf(PS_EINVAL, "XML document without a root element");
		goto out;
	}

	*out = xcalloc(1, sizeof(**out));
	(*out)->doc = doc;
	doc->_private = *out;	/* for keep() */
	doc = NULL;
	rc = PS_OK;
out:
	if (doc != NULL)
		xmlFreeDoc(doc);
	if (ctxt != NULL) {
		ctxt->_private = NULL;
		xmlFreeParserCtxt(ctxt);
	}
	return rc;
}

void
xml_free(struct xml_doc *d)
{
	struct xml_str *s, *next;

	if (d == NULL)
		return;
	for (s = d->strs; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	xmlFreeDoc(d->doc);
	free(d);
}

/* --- navigation ----------------------------------------------------- */

/*
 * struct xml_node is never defined: a node handle is a libxml2 node. The
 * tree is read-only for callers; only xml_text() writes node->_private.
 */
static xmlNode *
to_x(const struct xml_node *n)
{
	return (xmlNode *)(uintptr_t)n;
}

static const struct xml_node *
from_x(const xmlNode *n)
{
	return (const struct xml_node *)n;
}

static bool
ns_match(const xmlNode *n, const char *ns)
{
	const char *href;

	if (ns == NULL)
		return true;
	href = (n->ns != NULL && n->ns->href != NULL) ?
	    (const char *)n->ns->href : "";
	return strcmp(href, ns) == 0;
}

static bool
name_match(const xmlNode *n, const char *ns, const char *name, size_t len)
{
	const char *nm = (const char *)n->name;

	if (n->type != XML_ELEMENT_NODE || nm == NULL)
		return false;
	if (name != NULL &&
	    (strncmp(nm, name, len) != 0 || nm[len] != '\0'))
		return false;
	return ns_match(n, ns);
}

static const xmlNode *
find_from(const xmlNode *n, const char *ns, const char *name, size_t len)
{
	for (; n != NULL; n = n->next)
		if (name_match(n, ns, name, len))
			return n;
	return NULL;
}

const struct xml_node *
xml_root(const struct xml_doc *d)
{
	if (d == NULL)
		return NULL;
	return from_x(xmlDocGetRootElement(d->doc));
}

const char *
xml_name(const struct xml_node *n)
{
	if (n == NULL)
		return NULL;
	return (const char *)to_x(n)->name;
}

const char *
xml_ns(const struct xml_node *n)
{
	const xmlNode *x = to_x(n);

	if (x == NULL)
		return NULL;
	if (x->ns == NULL || x->ns->href == NULL)
		return "";
	return (const char *)x->ns->href;
}

const struct xml_node *
xml_child(const struct xml_node *n, const char *ns, const char *name)
{
	if (n == NULL || name == NULL)
		return NULL;
	return from_x(find_from(to_x(n)->children, ns, name, strlen(name)));
}

const struct xml_node *
xml_next(const struct xml_node *n, const char *ns, const char *name)
{
	if (n == NULL || name == NULL)
		return NULL;
	return from_x(find_from(to_x(n)->next, ns, name, strlen(name)));
}

const struct xml_node *
xml_first_element(const struct xml_node *n)
{
	if (n == NULL)
		return NULL;
	return from_x(find_from(to_x(n)->children, NULL, NULL, 0));
}

const struct xml_node *
xml_next_element(const struct xml_node *n)
{
	if (n == NULL)
		return NULL;
	return from_x(find_from(to_x(n)->next, NULL, NULL, 0));
}

const struct xml_node *
xml_path(const struct xml_node *n, const char *path)
{
	const char *p = path, *slash;
	size_t len;

	if (path == NULL)
		return NULL;
	while (n != NULL && *p != '\0') {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > 0)
			n = from_x(find_from(to_x(n)->children, NULL, p, len));
		p += len;
		if (*p == '/')
			p++;
	}
	return n;
}

/* Copies [p, p+len) onto the document's string list. */
static const char *
keep(const struct xml_node *n, const char *p, size_t len)
{
	xmlDoc *xdoc = to_x(n)->doc;
	struct xml_doc *d;
	struct xml_str *s;

	/* xml_parse() points the libxml2 document back at its owner. */
	d = xdoc->_private;
	s = xmalloc(sizeof(*s) + len + 1);
	memcpy(s->s, p, len);
	s->s[len] = '\0';
	s->next = d->strs;
	d->strs = s;
	return s->s;
}

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char *
xml_text(const struct xml_node *n)
{
	xmlNode *x = to_x(n);
	xmlChar *content;
	const char *p, *e, *s;

	if (x == NULL)
		return NULL;
	if (x->_private != NULL)
		return x->_private;
	content = xmlNodeGetContent(x);
	p = content ? (const char *)content : "";
	e = p + strlen(p);
	while (p < e && is_space((unsigned char)*p))
		p++;
	while (e > p && is_space((unsigned char)e[-1]))
		e--;
	s = keep(n, p, (size_t)(e - p));
	xmlFree(content);
	x->_private = (void *)(uintptr_t)s;
	return s;
}

const char *
xml_attr(const struct xml_node *n, const char *name)
{
	xmlChar *v;
	const char *s;

	if (n == NULL || name == NULL)
		return NULL;
	/* Decodes character references in the value (no entities exist). */
	v = xmlGetNoNsProp(to_x(n), (const xmlChar *)name);
	if (v == NULL)
		return NULL;
	s = keep(n, (const char *)v, strlen((const char *)v));
	xmlFree(v);
	return s;
}

/* --- writing -------------------------------------------------------- */

/*
 * Length of the valid UTF-8 sequence at p (1-4), or 0 if it is invalid
 * or a character XML 1.0 does not allow (U+FFFE, U+FFFF). Overlong forms
 * and surrogates are invalid.
 */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned int c;
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
	    c == 0xfffe || c == 0xffff)
		return 0;
	return n;
}

ps_err
xml_add_text(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;
	ps_err rc = PS_OK;

	while (*p != '\0' && rc == PS_OK) {
		const char *rep = NULL;
		size_t n = 1;

		switch (*p) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		case '\t': rep = "&#9;"; break;
		case '\n': rep = "&#10;"; break;
		case '\r': rep = "&#13;"; break;
		default:
			if (*p < 0x20)
				rep = "";	/* not allowed in XML 1.0 */
			else if ((n = utf8_len(p)) == 0) {
				rep = "\xef\xbf\xbd";	/* U+FFFD */
				n = 1;
			}
			break;
		}
		if (rep == NULL) {
			p += n;
			continue;
		}
		rc = buf_add(b, run, (size_t)(p - run));
		if (rc == PS_OK)
			rc = buf_adds(b, rep);
		p += n;
		run = p;
	}
	if (rc == PS_OK)
		rc = buf_add(b, run, (size_t)(p - run));
	return rc;
}
