/*
 * S2S metadata documents (reference exchange-wire.md §4.2): the JSON each
 * product publishes so that its partner learns its issuer, realm and
 * token-signing certificate. We write Exchange's shape (the master serves
 * /autodiscover/metadata/json/1) and SharePoint's shape (the portal serves
 * /_layouts/15/metadata/json/1), and parse either.
 *
 * The products disagree on the casing of key names and enum values
 * (keyvalue/keyValue, x509Certificate/x509certificate, signing/Signing),
 * so the parser compares both case-insensitively (§4.2) and refuses a
 * document where two keys differ only in case: which one a real product
 * would read is unknown, and an ambiguous document is safer refused.
 *
 * Thread safety: no shared state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "s2s.h"
#include "s2s_int.h"

/* Keys of one document, at most; any real document has one or two. */
#define MD_MAX_KEYS	64

bool
s2s_part_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 200)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '@' || c == '/' ||
		    c == '"' || c == '\\')
			return false;
	}
	return true;
}

/* Splits "<id>@<realm>"; false unless both parts are valid. */
static bool
issuer_split(const char *issuer, size_t *id_len, const char **realm)
{
	const char *at = strchr(issuer, '@');

	if (at == NULL || !s2s_part_valid(issuer, (size_t)(at - issuer)) ||
	    !s2s_part_valid(at + 1, strlen(at + 1)))
		return false;
	*id_len = (size_t)(at - issuer);
	*realm = at + 1;
	return true;
}

/* --- writing --- */

/*
 * The document id "_<guid>": stable for a given realm and certificate, so
 * that the document (and any cache validator a client keeps) changes only
 * when its content does. A name-based (version 5 style) GUID from SHA-1.
 */
static void
doc_guid(const char *realm, const unsigned char *der, size_t len,
    char out[37])
{
	unsigned char h[20];
	char hex[41];
	size_t rlen = strlen(realm);
	unsigned char *msg = xmalloc(rlen + 1 + len);

	memcpy(msg, realm, rlen);
	msg[rlen] = '\0';
	memcpy(msg + rlen + 1, der, len);
	pki_sha1(msg, rlen + 1 + len, h);
	free(msg);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x50);
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
	hex_encode(h, 16, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
	    hex + 12, hex + 16, hex + 20);
}

static ps_err
check_inputs(const char *realm, const unsigned char *der, size_t len)
{
	if (realm == NULL || !s2s_part_valid(realm, strlen(realm)))
		return ps_errf(PS_EINVAL, "invalid realm for the metadata "
		    "document");
	if (der == NULL || len == 0 || pki_cert_not_after(der, len) < 0)
		return ps_errf(PS_EINVAL, "the signing certificate for the "
		    "metadata document does not parse");
	return PS_OK;
}

/* Appends `doc` as compact JSON, key order as built, and frees it. */
static ps_err
emit(struct buf *out, json_t *doc)
{
	char *s;
	ps_err rc;

	if (doc == NULL)
		return ps_errf(PS_ENOMEM, "cannot build metadata document");
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (s == NULL)
		return ps_errf(PS_ENOMEM, "cannot serialise metadata document");
	rc = buf_adds(out, s);
	free(s);
	if (rc != PS_OK)
		return ps_errf(rc, "metadata document exceeds its buffer");
	return PS_OK;
}

ps_err
s2s_metadata_exchange(struct buf *out, const char *realm,
    const unsigned char *cert_der, size_t cert_len,
    const char *location_url)
{
	unsigned char sha1[20];
	char guid[37], *id = NULL, *issuer = NULL, *x5t = NULL,
	    *value = NULL;
	json_t *doc;
	ps_err rc;

	if ((rc = check_inputs(realm, cert_der, cert_len)) != PS_OK)
		return rc;
	doc_guid(realm, cert_der, cert_len, guid);
	id = xasprintf("_%s", guid);
	issuer = xasprintf("%s@%s", S2S_EXCHANGE_ID, realm);
	/* §4.2: x5t here is standard base64 (with '/' and '='), per S18. */
	pki_sha1(cert_der, cert_len, sha1);
	x5t = b64_encode(sha1, sizeof(sha1), false);
	value = b64_encode(cert_der, cert_len, false);
	/* Keys in the order of Exchange's own document (§4.2 table). */
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s],"
	    " s:[{s:s, s:{s:s}, s:{s:s, s:s}}], s:[{s:s, s:s, s:s}]}",
	    "id", id,
	    "version", "1.0",
	    "name", "Exchange",
	    "realm", realm,
	    "serviceName", S2S_EXCHANGE_ID,
	    "issuer", issuer,
	    "allowedAudiences", issuer,
	    "keys",
		"usage", "signing",
		"keyinfo", "x5t", x5t,
		"keyvalue", "type", "x509Certificate", "value", value,
	    "endpoints",
		"location", location_url != NULL ? location_url : "",
		"protocol", "OAuth2",
		"usage", "metadata");
	rc = emit(out, doc);
	free(id);
	free(issuer);
	free(x5t);
	free(value);
	return rc;
}

ps_err
s2s_metadata_sharepoint(struct buf *out, const char *realm,
    const unsigned char *cert_der, size_t cert_len)
{
	char *issuer, *value;
	json_t *doc;
	ps_err rc;

	if ((rc = check_inputs(realm, cert_der, cert_len)) != PS_OK)
		return rc;
	issuer = xasprintf("%s@%s", S2S_SHAREPOINT_ID, realm);
	value = b64_encode(cert_der, cert_len, false);
	/*
	 * §4.2 (S19, a real capture): alphabetical keys, keyValue with
	 * "x509certificate", usage "Signing"; "realm" is our addition, in
	 * its alphabetical place.
	 */
	doc = json_pack("{s:s, s:[{s:{s:s, s:s}, s:s}], s:s, s:s, s:s}",
	    "issuer", issuer,
	    "keys",
		"keyValue", "type", "x509certificate", "value", value,
		"usage", "Signing",
	    "name", S2S_SHAREPOINT_ID,
	    "realm", realm,
	    "serviceName", S2S_SHAREPOINT_ID);
	rc = emit(out, doc);
	free(issuer);
	free(value);
	return rc;
}

/* --- parsing --- */

/*
 * The member of `obj` whose name equals `key` ignoring case; NULL when
 * there is none. Two such members make the document ambiguous.
 */
static ps_err
get_ci(json_t *obj, const char *key, json_t **out)
{
	const char *k;
	json_t *v;

	*out = NULL;
	json_object_foreach(obj, k, v) {
		if (!str_case_eq(k, key))
			continue;
		if (*out != NULL)
			return ps_errf(PS_EINVAL, "metadata has \"%s\" twice "
			    "in different cases", key);
		*out = v;
	}
	return PS_OK;
}

/* A string member, or NULL when absent; not a string is an error. */
static ps_err
get_str(json_t *obj, const char *key, const char **out)
{
	json_t *v;
	ps_err rc;

	*out = NULL;
	if ((rc = get_ci(obj, key, &v)) != PS_OK)
		return rc;
	if (v == NULL)
		return PS_OK;
	if (!json_is_string(v))
		return ps_errf(PS_EINVAL, "metadata \"%s\" is not a string",
		    key);
	*out = json_string_value(v);
	return PS_OK;
}

/*
 * One entry of "keys". Returns PS_OK and fills *cert for a usable signing
 * certificate; PS_ENOTFOUND (with the reason) for an entry to skip; any
 * other code refuses the whole document.
 */
static ps_err
parse_key(json_t *key, struct s2s_cert *cert)
{
	const char *usage, *type, *value, *x5t;
	json_t *kv, *ki;
	unsigned char *der = NULL, *tp = NULL;
	size_t len = 0, tplen = 0;
	ps_err rc;

	memset(cert, 0, sizeof(*cert));
	if (!json_is_object(key))
		return ps_errf(PS_ENOTFOUND, "a key is not an object");
	if ((rc = get_str(key, "usage", &usage)) != PS_OK ||
	    (rc = get_ci(key, "keyvalue", &kv)) != PS_OK ||
	    (rc = get_ci(key, "keyinfo", &ki)) != PS_OK)
		return rc;
	if (usage == NULL || !str_case_eq(usage, "signing"))
		return ps_errf(PS_ENOTFOUND, "a key is not for signing");
	if (!json_is_object(kv))
		return ps_errf(PS_ENOTFOUND, "a signing key has no keyvalue");
	if ((rc = get_str(kv, "type", &type)) != PS_OK ||
	    (rc = get_str(kv, "value", &value)) != PS_OK)
		return rc;
	if (type == NULL || !str_case_eq(type, "x509Certificate"))
		return ps_errf(PS_ENOTFOUND, "a signing key is not an X.509 "
		    "certificate");
	/* §4.2: real documents carry base64 DER (S18's base64 PEM is not). */
	if (value == NULL || b64_decode(value, strlen(value), &der, &len) !=
	    PS_OK || len == 0 || pki_cert_not_after(der, len) < 0) {
		free(der);
		return ps_errf(PS_ENOTFOUND, "a signing certificate is not "
		    "base64 DER X.509");
	}
	cert->der = der;
	cert->len = len;
	pki_sha1(der, len, cert->sha1);
	/* An x5t beside the certificate (Exchange shape) must agree. */
	if (json_is_object(ki)) {
		if ((rc = get_str(ki, "x5t", &x5t)) != PS_OK)
			goto fail;
		if (x5t != NULL && (b64_decode(x5t, strlen(x5t), &tp,
		    &tplen) != PS_OK || tplen != 20 ||
		    memcmp(tp, cert->sha1, 20) != 0)) {
			rc = ps_errf(PS_ENOTFOUND, "a signing key's x5t is not "
			    "its certificate's thumbprint");
			goto fail;
		}
	}
	free(tp);
	return PS_OK;
fail:
	free(tp);
	free(cert->der);
	memset(cert, 0, sizeof(*cert));
	return rc;
}

ps_err
s2s_metadata_parse(const char *json, size_t len, struct s2s_metadata *out)
{
	const char *issuer, *realm, *name, *service, *irealm;
	char skipped[256] = "";
	json_error_t jerr;
	json_t *root = NULL, *keys, *k;
	size_t id_len, i;
	ps_err rc = PS_EINVAL;

	memset(out, 0, sizeof(*out));
	if (json == NULL)
		return ps_errf(PS_EINVAL, "no metadata document");
	if (len > S2S_MAX_METADATA)
		return ps_errf(PS_ELIMIT, "metadata document larger than %d "
		    "bytes", S2S_MAX_METADATA);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		ps_errf(rc, "metadata is not valid JSON (line %d, column %d)",
		    jerr.line, jerr.column);
		goto out;
	}
	if (!json_is_object(root)) {
		ps_errf(rc, "metadata is not a JSON object");
		goto out;
	}
	if ((rc = get_str(root, "issuer", &issuer)) != PS_OK ||
	    (rc = get_str(root, "realm", &realm)) != PS_OK ||
	    (rc = get_str(root, "name", &name)) != PS_OK ||
	    (rc = get_str(root, "serviceName", &service)) != PS_OK ||
	    (rc = get_ci(root, "keys", &keys)) != PS_OK)
		goto out;
	rc = PS_EINVAL;
	if (issuer == NULL || !issuer_split(issuer, &id_len, &irealm)) {
		ps_errf(rc, "metadata has no valid issuer \"<id>@<realm>\"");
		goto out;
	}
	if (realm != NULL && realm[0] != '\0') {
		if (!s2s_part_valid(realm, strlen(realm))) {
			ps_errf(rc, "metadata realm is not valid");
			goto out;
		}
		/* "*" is a wildcard realm (§4.1); any other must agree. */
		if (strcmp(realm, "*") != 0 && strcmp(realm, irealm) != 0) {
			ps_errf(rc, "metadata realm does not match its issuer");
			goto out;
		}
	} else
		realm = irealm;
	if (!json_is_array(keys) || json_array_size(keys) == 0) {
		ps_errf(rc, "metadata has no keys");
		goto out;
	}
	if (json_array_size(keys) > MD_MAX_KEYS) {
		ps_errf(rc, "metadata has more than %d keys", MD_MAX_KEYS);
		goto out;
	}

	out->certs = xcalloc(json_array_size(keys), sizeof(*out->certs));
	json_array_foreach(keys, i, k) {
		rc = parse_key(k, &out->certs[out->n_certs]);
		if (rc == PS_OK) {
			out->n_certs++;
			continue;
		}
		if (rc != PS_ENOTFOUND)
			goto out;
		str_copy(skipped, ps_errmsg(), sizeof(skipped));
	}
	rc = PS_EINVAL;
	if (out->n_certs == 0) {
		ps_errf(rc, "metadata has no usable signing certificate%s%s",
		    skipped[0] ? ": " : "", skipped);
		goto out;
	}
	out->issuer = xstrdup(issuer);
	out->realm = xstrdup(realm);
	out->name = xstrdup(name != NULL ? name : "");
	out->service_name = service != NULL && service[0] != '\0' ?
	    xstrdup(service) : xstrndup(issuer, id_len);
	rc = PS_OK;
out:
	if (rc != PS_OK)
		s2s_metadata_cleanup(out);
	json_decref(root);
	return rc;
}

void
s2s_metadata_cleanup(struct s2s_metadata *md)
{
	size_t i;

	if (md == NULL)
		return;
	for (i = 0; i < md->n_certs; i++)
		free(md->certs[i].der);
	free(md->certs);
	free(md->name);
	free(md->service_name);
	free(md->realm);
	free(md->issuer);
	memset(md, 0, sizeof(*md));
}
