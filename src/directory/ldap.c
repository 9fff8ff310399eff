/*
 * The directory over LDAP with OpenLDAP's libldap: connection, StartTLS,
 * bind, paged searches, and the people's attributes read into struct
 * dir_person. See ldap.h.
 */
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "ldap.h"

#define PAGE_SIZE_DEFAULT	500
#define TIMEOUT_DEFAULT_S	30
#define AD_ACCOUNTDISABLE	0x2

/* The attribute names of a schema, in struct dir_person's order. */
struct dir_names {
	const char	*id, *login, *upn, *mail, *name, *control;
	const char	*people;	/* the default filter */
};

static const struct dir_names ad_names = {
	"objectGUID", "sAMAccountName", "userPrincipalName", "mail",
	"displayName", "userAccountControl",
	"(&(objectClass=user)(!(objectClass=computer)))",
};

static const struct dir_names openldap_names = {
	"entryUUID", "uid", NULL, "mail", "cn", NULL,
	"(objectClass=inetOrgPerson)",
};

static const struct dir_names *
names_of(enum dir_schema s)
{
	return s == DIR_SCHEMA_OPENLDAP ? &openldap_names : &ad_names;
}

const char *
dir_people_filter(enum dir_schema s)
{
	return names_of(s)->people;
}

/* The server's words for the last error on `ld`, after libldap's. */
static ps_err
ldap_fail(LDAP *ld, int rc, const char *step, const char *uri)
{
	char *diag = NULL, extra[300] = "";
	ps_err e;

	if (ld != NULL)
		(void)ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (diag && *diag)
		snprintf(extra, sizeof(extra), " (%s)", diag);
	e = ps_errf(rc == LDAP_INVALID_CREDENTIALS ? PS_EAUTH :
	    rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ? PS_EIO :
	    rc == LDAP_TIMEOUT ? PS_ETIMEOUT : PS_EUPSTREAM,
	    "the directory %s: %s failed: %s%s", uri, step,
	    ldap_err2string(rc), extra);
	ldap_memfree(diag);
	return e;
}

/* Connected (StartTLS done when asked) and bound as `dn`, or anonymous. */
static ps_err
dir_open(const struct dir_config *cfg, const char *dn, const char *pw,
    LDAP **out)
{
	struct timeval tv = { cfg->timeout_s > 0 ? cfg->timeout_s :
	    TIMEOUT_DEFAULT_S, 0 };
	struct berval cred = { 0, NULL };
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;
	LDAP *ld = NULL;
	int rc;

	*out = NULL;
	if (cfg->uri == NULL || (strncasecmp(cfg->uri, "ldap://", 7) != 0 &&
	    strncasecmp(cfg->uri, "ldaps://", 8) != 0))
		return ps_errf(PS_EINVAL, "the directory's address must be "
		    "ldap://host[:port] or ldaps://host[:port] (got %s)",
		    cfg->uri ? cfg->uri : "nothing");
	if ((rc = ldap_initialize(&ld, cfg->uri)) != LDAP_SUCCESS)
		return ldap_fail(NULL, rc, "reading the address", cfg->uri);
	(void)ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	(void)ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	(void)ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	(void)ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	(void)ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (cfg->ca_file && ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
	    cfg->ca_file) != LDAP_OPT_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return ps_errf(PS_EINVAL, "the CA file %s is refused",
		    cfg->ca_file);
	}
	/* The options above apply to a TLS context made after them. */
	(void)ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	if (cfg->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) !=
	    LDAP_SUCCESS) {
		ps_err e = ldap_fail(ld, rc, "StartTLS", cfg->uri);

		ldap_unbind_ext_s(ld, NULL, NULL);
		return e;
	}
	if (dn != NULL) {
		cred.bv_val = (char *)(pw ? pw : "");
		cred.bv_len = strlen(cred.bv_val);
	}
	rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
	    NULL);
	if (rc != LDAP_SUCCESS) {
		/* libldap connects at the first operation. */
		ps_err e = ldap_fail(ld, rc, rc == LDAP_SERVER_DOWN ||
		    rc == LDAP_CONNECT_ERROR ? "connecting" : dn ? "the bind" :
		    "the anonymous bind", cfg->uri);

		ldap_unbind_ext_s(ld, NULL, NULL);
		return e;
	}
	*out = ld;
	return PS_OK;
}

void
dir_value_text(const void *val, size_t len, bool hex, char *out, size_t n)
{
	out[0] = '\0';
	if (hex && len * 2 < n)
		hex_encode(val, len, out);
	else if (!hex && len < n && memchr(val, '\0', len) == NULL) {
		memcpy(out, val, len);
		out[len] = '\0';
	}
}

/* The first value of `attr` into `out` ("" when absent or too long). */
static void
value_of(LDAP *ld, LDAPMessage *e, const char *attr, char *out, size_t n,
    bool hex)
{
	struct berval **v;

	out[0] = '\0';
	if (attr == NULL || (v = ldap_get_values_len(ld, e, attr)) == NULL)
		return;
	if (v[0] != NULL)
		dir_value_text(v[0]->bv_val, v[0]->bv_len, hex, out, n);
	ldap_value_free_len(v);
}

static void
person_of(LDAP *ld, LDAPMessage *e, const struct dir_names *nm,
    struct dir_person *p)
{
	char control[32], *dn;

	memset(p, 0, sizeof(*p));
	value_of(ld, e, nm->id, p->id, sizeof(p->id),
	    nm == &ad_names);
	str_lower(p->id);
	value_of(ld, e, nm->login, p->login, sizeof(p->login), false);
	value_of(ld, e, nm->upn, p->upn, sizeof(p->upn), false);
	value_of(ld, e, nm->mail, p->mail, sizeof(p->mail), false);
	value_of(ld, e, nm->name, p->name, sizeof(p->name), false);
	value_of(ld, e, nm->control, control, sizeof(control), false);
	p->disabled = control[0] != '\0' &&
	    (strtoul(control, NULL, 10) & AD_ACCOUNTDISABLE) != 0;
	if ((dn = ldap_get_dn(ld, e)) != NULL) {
		str_copy(p->dn, dn, sizeof(p->dn));
		ldap_memfree(dn);
	}
}

/* Called for each entry of a search; non-PS_OK stops it. */
typedef ps_err (*entry_fn)(void *arg, LDAP *ld, LDAPMessage *e);

/*
 * One page of the search for `attrs` from `cookie` (empty: the first);
 * the next page's cookie replaces it (empty: no more).
 */
static ps_err
search_page(LDAP *ld, const struct dir_config *cfg, const char *filter,
    const char *const *attrs, struct berval *cookie, entry_fn fn, void *arg)
{
	struct timeval tv = { cfg->timeout_s > 0 ? cfg->timeout_s :
	    TIMEOUT_DEFAULT_S, 0 };
	LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL };
	LDAPControl **rctrls = NULL, *found;
	LDAPMessage *res = NULL, *e;
	ber_int_t count;
	int rc, result;
	ps_err err = PS_OK;

	if ((rc = ldap_create_page_control(ld, cfg->page_size > 0 ?
	    cfg->page_size : PAGE_SIZE_DEFAULT, cookie, 0, &page)) !=
	    LDAP_SUCCESS)
		return ldap_fail(ld, rc, "the paged search", cfg->uri);
	ctrls[0] = page;
	rc = ldap_search_ext_s(ld, cfg->base, LDAP_SCOPE_SUBTREE, filter,
	    (char **)attrs, 0, ctrls, NULL, &tv, LDAP_NO_LIMIT, &res);
	if (rc != LDAP_SUCCESS && res == NULL) {
		err = ldap_fail(ld, rc, "the search", cfg->uri);
		goto out;
	}
	for (e = ldap_first_entry(ld, res); e != NULL && err == PS_OK;
	    e = ldap_next_entry(ld, e))
		err = fn(arg, ld, e);
	if (err != PS_OK)
		goto out;
	rc = ldap_parse_result(ld, res, &result, NULL, NULL, NULL, &rctrls,
	    0);
	if (rc != LDAP_SUCCESS || result != LDAP_SUCCESS) {
		err = ldap_fail(ld, rc != LDAP_SUCCESS ? rc : result,
		    "the search", cfg->uri);
		goto out;
	}
	ber_memfree(cookie->bv_val);
	cookie->bv_val = NULL;
	cookie->bv_len = 0;
	found = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
	if (found != NULL && ldap_parse_pageresponse_control(ld, found,
	    &count, cookie) != LDAP_SUCCESS)
		err = ps_errf(PS_EUPSTREAM, "the directory %s: its page of "
		    "answers cannot be read", cfg->uri);
out:
	ldap_controls_free(rctrls);
	ldap_control_free(page);
	ldap_msgfree(res);
	return err;
}

/* Searches `filter` under cfg's base page by page on `ld`. */
static ps_err
search_pages(LDAP *ld, const struct dir_config *cfg, const char *filter,
    const char *const *attrs, entry_fn fn, void *arg)
{
	struct berval cookie = { 0, NULL };
	ps_err err;

	do
		err = search_page(ld, cfg, filter, attrs, &cookie, fn, arg);
	while (err == PS_OK && cookie.bv_len > 0);
	ber_memfree(cookie.bv_val);
	return err;
}

/* Connects, binds and searches page by page as `cfg` says. */
static ps_err
search_all(const struct dir_config *cfg, const char *const *attrs,
    entry_fn fn, void *arg)
{
	const char *filter = cfg->filter && *cfg->filter ? cfg->filter :
	    names_of(cfg->schema)->people;
	LDAP *ld;
	ps_err err;

	if (cfg->base == NULL || *cfg->base == '\0')
		return ps_errf(PS_EINVAL, "no base DN to search under");
	if ((err = dir_open(cfg, cfg->bind_dn, cfg->password, &ld)) != PS_OK)
		return err;
	err = search_pages(ld, cfg, filter, attrs, fn, arg);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return err;
}

struct people_search {
	const struct dir_names	*nm;
	dir_person_fn		 fn;
	void			*arg;
	size_t			 given;
	size_t			*skipped;
};

static ps_err
person_entry(void *arg, LDAP *ld, LDAPMessage *e)
{
	struct people_search *ps = arg;
	struct dir_person p;

	person_of(ld, e, ps->nm, &p);
	if (p.id[0] == '\0' || p.login[0] == '\0') {
		if (ps->skipped)
			(*ps->skipped)++;
		return PS_OK;
	}
	return ps->fn(ps->arg, &p, ++ps->given);
}

ps_err
dir_search(const struct dir_config *cfg, dir_person_fn fn, void *arg,
    size_t *skipped)
{
	const struct dir_names *nm = names_of(cfg->schema);
	const char *attrs[8] = { nm->id, nm->login, nm->mail, nm->name };
	struct people_search ps = { nm, fn, arg, 0, skipped };
	size_t na = 4;

	if (nm->upn)
		attrs[na++] = nm->upn;
	if (nm->control)
		attrs[na++] = nm->control;
	attrs[na] = NULL;
	if (skipped)
		*skipped = 0;
	return search_all(cfg, attrs, person_entry, &ps);
}

/* ---- the photo attributes (read) ---- */

struct photo_search {
	const struct dir_names	*nm;
	dir_photo_fn		 fn;
	void			*arg;
};

static ps_err
photo_entry(void *arg, LDAP *ld, LDAPMessage *e)
{
	static const char *const order[] = { "jpegPhoto", "thumbnailPhoto" };
	struct photo_search *ps = arg;
	struct berval **v = NULL;
	char mail[256], *dn;
	size_t i;
	ps_err err;

	value_of(ld, e, ps->nm->mail, mail, sizeof(mail), false);
	/* jpegPhoto first: inetOrgPerson's, usually the larger one. */
	for (i = 0; i < sizeof(order) / sizeof(*order); i++) {
		if ((v = ldap_get_values_len(ld, e, order[i])) != NULL &&
		    v[0] != NULL && v[0]->bv_len > 0)
			break;
		ldap_value_free_len(v);
		v = NULL;
	}
	if (v == NULL)
		return PS_OK;
	dn = ldap_get_dn(ld, e);
	err = ps->fn(ps->arg, dn ? dn : "", mail, order[i], v[0]->bv_val,
	    v[0]->bv_len);
	ldap_memfree(dn);
	ldap_value_free_len(v);
	return err;
}

ps_err
dir_photos(const struct dir_config *cfg, dir_photo_fn fn, void *arg)
{
	const struct dir_names *nm = names_of(cfg->schema);
	const char *attrs[] = { nm->mail, "jpegPhoto", "thumbnailPhoto",
	    NULL };
	struct photo_search ps = { nm, fn, arg };

	return search_all(cfg, attrs, photo_entry, &ps);
}

/* `s` with the characters a filter gives meaning to escaped (RFC 4515). */
static char *
filter_escape(const char *s)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s; s++) {
		if (strchr("*()\\", *s) != NULL) {
			snprintf(o, 4, "\\%02x", (unsigned char)*s);
			o += 3;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return out;
}

struct found_dn {
	char	dn[512];
	int	n;
};

static ps_err
keep_dn(void *arg, const struct dir_person *p, size_t done)
{
	struct found_dn *f = arg;

	(void)done;
	if (f->n++ == 0)
		str_copy(f->dn, p->dn, sizeof(f->dn));
	return PS_OK;
}

ps_err
dir_check_password(const struct dir_config *cfg, const char *login,
    const char *password)
{
	const struct dir_names *nm = names_of(cfg->schema);
	struct dir_config c = *cfg;
	struct found_dn f = { { 0 }, 0 };
	char *esc, *filter;
	const char *slash = strrchr(login, '\\');
	bool by_mail = slash == NULL && strchr(login, '@') != NULL;
	LDAP *ld;
	ps_err err;

	if (password == NULL || *password == '\0')
		return ps_errf(PS_EAUTH, "no password");
	esc = filter_escape(slash ? slash + 1 : login);
	filter = xasprintf("(&%s(%s=%s))", cfg->filter && *cfg->filter ?
	    cfg->filter : nm->people, by_mail ? nm->mail : nm->login, esc);
	c.filter = filter;
	err = dir_search(&c, keep_dn, &f, NULL);
	free(esc);
	free(filter);
	/* The search's own bind refused is the set-up's fault, not theirs. */
	if (err == PS_EAUTH)
		return ps_errf(PS_EUPSTREAM, "%s", ps_errmsg());
	if (err != PS_OK)
		return err;
	if (f.n == 0)
		return ps_errf(PS_EAUTH, "no person has the login %s", login);
	if (f.n > 1)
		return ps_errf(PS_EAUTH, "%d people have the login %s", f.n,
		    login);
	if ((err = dir_open(cfg, f.dn, password, &ld)) != PS_OK)
		return err;
	ldap_unbind_ext_s(ld, NULL, NULL);
	return PS_OK;
}

/* ---- writing attributes of an entry ---- */

struct dir_conn {
	const struct dir_config	*cfg;
	LDAP			*ld;
};

ps_err
dir_connect(const struct dir_config *cfg, struct dir_conn **out)
{
	LDAP *ld;
	ps_err err;

	*out = NULL;
	if ((err = dir_open(cfg, cfg->bind_dn, cfg->password, &ld)) != PS_OK)
		return err;
	*out = xcalloc(1, sizeof(**out));
	(*out)->cfg = cfg;
	(*out)->ld = ld;
	return PS_OK;
}

void
dir_disconnect(struct dir_conn *c)
{
	if (c == NULL)
		return;
	ldap_unbind_ext_s(c->ld, NULL, NULL);
	free(c);
}

char *
dir_id_filter(enum dir_schema schema, const char *id)
{
	const struct dir_names *nm = names_of(schema);
	size_t i, n = strlen(id);
	char *esc, *o, *f;

	if (schema == DIR_SCHEMA_AD) {
		if (n == 0 || n % 2 != 0 || strspn(id, "0123456789abcdef") != n)
			return NULL;
		esc = o = xmalloc(n / 2 * 3 + 1);
		for (i = 0; i < n; i += 2) {
			*o++ = '\\';
			*o++ = id[i];
			*o++ = id[i + 1];
		}
		*o = '\0';
	} else
		esc = filter_escape(id);
	f = xasprintf("(%s=%s)", nm->id, esc);
	free(esc);
	return f;
}

ps_err
dir_find_dn(struct dir_conn *c, const char *id, char *dn, size_t n)
{
	struct timeval tv = { c->cfg->timeout_s > 0 ? c->cfg->timeout_s :
	    TIMEOUT_DEFAULT_S, 0 };
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL }, *filter, *found;
	LDAPMessage *res = NULL, *e;
	ps_err err = PS_OK;
	int rc, count;

	if ((filter = dir_id_filter(c->cfg->schema, id)) == NULL)
		return ps_errf(PS_EINVAL, "\"%s\" is not an objectGUID", id);
	rc = ldap_search_ext_s(c->ld, c->cfg->base, LDAP_SCOPE_SUBTREE,
	    filter, attrs, 0, NULL, NULL, &tv, 2, &res);
	free(filter);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		err = ldap_fail(c->ld, rc, "the search", c->cfg->uri);
		goto out;
	}
	count = ldap_count_entries(c->ld, res);
	if (count == 0) {
		err = ps_errf(PS_ENOTFOUND, "the directory %s has no entry "
		    "with the id %s under %s", c->cfg->uri, id, c->cfg->base);
		goto out;
	}
	if (count > 1) {
		err = ps_errf(PS_EUPSTREAM, "the directory %s has several "
		    "entries with the id %s", c->cfg->uri, id);
		goto out;
	}
	e = ldap_first_entry(c->ld, res);
	if ((found = ldap_get_dn(c->ld, e)) == NULL || strlen(found) >= n) {
		ldap_memfree(found);
		err = ps_errf(PS_EUPSTREAM, "the directory %s: the DN of the "
		    "entry %s cannot be read", c->cfg->uri, id);
		goto out;
	}
	str_copy(dn, found, n);
	ldap_memfree(found);
out:
	ldap_msgfree(res);
	return err;
}

struct dns_search {
	const struct dir_config	*cfg;
	const char *const	*ids;
	size_t			 n;
	struct dir_found	*found;
};

/* An entry of dir_find_dns()'s search: counted under the id it has. */
static ps_err
dns_entry(void *arg, LDAP *ld, LDAPMessage *e)
{
	struct dns_search *ds = arg;
	const struct dir_names *nm = names_of(ds->cfg->schema);
	char id[80], *dn;
	size_t i;

	value_of(ld, e, nm->id, id, sizeof(id), nm == &ad_names);
	str_lower(id);
	for (i = 0; i < ds->n; i++) {
		if (ds->found[i].count < 0 || strcasecmp(ds->ids[i], id) != 0)
			continue;
		if (ds->found[i].count++ > 0)
			continue;
		if ((dn = ldap_get_dn(ld, e)) == NULL ||
		    strlen(dn) >= sizeof(ds->found[i].dn)) {
			ldap_memfree(dn);
			return ps_errf(PS_EUPSTREAM, "the directory %s: the "
			    "DN of the entry %s cannot be read", ds->cfg->uri,
			    id);
		}
		str_copy(ds->found[i].dn, dn, sizeof(ds->found[i].dn));
		ldap_memfree(dn);
	}
	return PS_OK;
}

ps_err
dir_find_dns(struct dir_conn *c, const char *const *ids, size_t n,
    struct dir_found *found)
{
	const struct dir_names *nm = names_of(c->cfg->schema);
	const char *attrs[] = { nm->id, NULL };
	struct dns_search ds = { c->cfg, ids, n, found };
	struct buf filter;
	size_t i, terms = 0;
	char *one;
	ps_err err = PS_OK;

	if (n > DIR_FIND_BATCH)
		return ps_errf(PS_EINVAL, "at most %d ids are looked up at "
		    "once, not %zu", DIR_FIND_BATCH, n);
	/* Each id's term is at most 3 * 80 bytes and its name. */
	buf_init(&filter, 64 << 10);
	err = buf_adds(&filter, "(|");
	for (i = 0; i < n; i++) {
		memset(&found[i], 0, sizeof(found[i]));
		if ((one = dir_id_filter(c->cfg->schema, ids[i])) == NULL) {
			found[i].count = -1;	/* not an id of the schema */
			continue;
		}
		if (err == PS_OK)
			err = buf_adds(&filter, one);
		free(one);
		terms++;
	}
	if (err == PS_OK)
		err = buf_adds(&filter, ")");
	if (err == PS_OK && terms > 0)
		err = search_pages(c->ld, c->cfg, buf_str(&filter), attrs,
		    dns_entry, &ds);
	buf_cleanup(&filter);
	return err;
}

#define DIR_PUT_MAX	4

ps_err
dir_put_binary(struct dir_conn *c, const char *dn,
    const struct dir_binary *attrs, size_t n)
{
	LDAPMod mods[DIR_PUT_MAX], *list[DIR_PUT_MAX + 1];
	struct berval bv[DIR_PUT_MAX], *vals[DIR_PUT_MAX][2];
	size_t i;
	int rc;

	if (n == 0 || n > DIR_PUT_MAX)
		return ps_errf(PS_EINVAL, "1 to %d attributes are written at "
		    "once, not %zu", DIR_PUT_MAX, n);
	for (i = 0; i < n; i++) {
		memset(&mods[i], 0, sizeof(mods[i]));
		/* Replace with no values: removed, absent or not. */
		mods[i].mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES;
		mods[i].mod_type = (char *)attrs[i].attr;
		bv[i].bv_val = (char *)attrs[i].data;
		bv[i].bv_len = attrs[i].len;
		vals[i][0] = attrs[i].data ? &bv[i] : NULL;
		vals[i][1] = NULL;
		mods[i].mod_bvalues = vals[i];
		list[i] = &mods[i];
	}
	list[n] = NULL;
	rc = ldap_modify_ext_s(c->ld, dn, list, NULL, NULL);
	if (rc != LDAP_SUCCESS)
		return ldap_fail(c->ld, rc, "writing the entry", c->cfg->uri);
	return PS_OK;
}
