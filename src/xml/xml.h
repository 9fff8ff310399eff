/*
 * Hardened XML parsing: the only user of libxml2.
 *
 * Documents come from the network. The parser loads no DTD, expands no
 * entity (a document with a DOCTYPE is refused outright), never touches the
 * network, and enforces a size and a depth limit. Callers navigate a
 * read-only tree by namespace URI and local name.
 */
#ifndef PS_XML_H
#define PS_XML_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

#define XML_MAX_BYTES	(1024 * 1024)
#define XML_MAX_DEPTH	64

struct xml_doc;
struct xml_node;

/*
 * Parses `len` bytes. Refuses (PS_EINVAL) malformed XML and any DOCTYPE,
 * (PS_ELIMIT) more than XML_MAX_BYTES or deeper nesting than XML_MAX_DEPTH.
 * The caller frees the document with xml_free().
 */
ps_err	xml_parse(const char *data, size_t len, struct xml_doc **out);
/*
 * As xml_parse(), with the size cap `max` instead of XML_MAX_BYTES: for
 * the one document that carries a large value (EWS SetUserPhoto's
 * base64 image). Parse such a document off the event loop.
 */
ps_err	xml_parse_max(const char *data, size_t len, size_t max,
	    struct xml_doc **out);
void	xml_free(struct xml_doc *);

/*
 * All returned nodes and strings are borrowed from the document. The
 * accessors accept a NULL node and then return NULL, so lookups chain.
 */
const struct xml_node *xml_root(const struct xml_doc *);
const char *xml_name(const struct xml_node *);	/* local name */
const char *xml_ns(const struct xml_node *);	/* namespace URI or "" */
/*
 * The first element child with the given local name (and namespace URI,
 * unless `ns` is NULL, which matches any namespace).
 */
const struct xml_node *xml_child(const struct xml_node *, const char *ns,
	    const char *name);
/* The next element sibling with the same rule. */
const struct xml_node *xml_next(const struct xml_node *, const char *ns,
	    const char *name);
/* The first element child of any name, and the next element sibling. */
const struct xml_node *xml_first_element(const struct xml_node *);
const struct xml_node *xml_next_element(const struct xml_node *);
/*
 * Follows a path of local names below `n` ("Body/GetUserPhoto/Email"),
 * any namespace; NULL if a step is missing.
 */
const struct xml_node *xml_path(const struct xml_node *, const char *path);
/*
 * The text content of an element with surrounding white space trimmed,
 * "" for an empty element. Borrowed; valid until xml_free().
 */
const char *xml_text(const struct xml_node *);
/* An attribute's value (no namespace), or NULL. Borrowed. */
const char *xml_attr(const struct xml_node *, const char *name);

/*
 * Appends `s` for use as XML text or an attribute value: like
 * buf_add_xml(), and also keeps the value on one line and the document
 * well-formed whatever the input: TAB, LF and CR become character
 * references, other control characters are dropped and invalid UTF-8
 * becomes U+FFFD.
 */
ps_err	xml_add_text(struct buf *, const char *s);

#endif
