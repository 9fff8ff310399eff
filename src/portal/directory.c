/*
 * The portal's part of the directory sync: a person is the user
 * DOMAIN\login with the entry's address and name. See directory.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "account.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "directory.h"
#include "directory/schedule.h"
#include "store/store.h"

ps_err
portal_directory_init(struct portal_directory *pd, const char *domain,
    const char *base)
{
	char account[ACCOUNT_MAX], *probe;
	const char *p = NULL;
	bool is_email;
	size_t n;
	ps_err rc;

	memset(pd, 0, sizeof(*pd));
	if (domain == NULL) {
		/* The first dc= component, at the start or after a comma. */
		for (p = base; p && *p; p++)
			if ((p == base || p[-1] == ',') &&
			    strncasecmp(p, "dc=", 3) == 0)
				break;
		if (p == NULL || *p == '\0')
			return ps_errf(PS_EINVAL, "the accounts' domain cannot "
			    "be told from the base %s (no dc=): give --domain "
			    "(e.g. contoso for contoso\\test1)", base ? base :
			    "");
		p += 3;
		n = strcspn(p, ",");
	} else {
		p = domain;
		n = strlen(domain);
	}
	if (n == 0 || n >= sizeof(pd->domain) || memchr(p, '_', n) != NULL)
		return ps_errf(PS_EINVAL, "\"%.*s\" cannot be the accounts' "
		    "domain (1 to %zu characters, no \"_\", which library file "
		    "names keep for the \"\\\")", (int)n, p,
		    sizeof(pd->domain) - 1);
	memcpy(pd->domain, p, n);
	pd->domain[n] = '\0';
	str_lower(pd->domain);
	probe = xasprintf("%s\\probe", pd->domain);
	rc = account_parse(probe, account, &is_email);
	free(probe);
	if (rc != PS_OK)
		return ps_errf(rc, "\"%s\" cannot be the accounts' domain",
		    pd->domain);
	return PS_OK;
}

static ps_err
user_record_of(void *arg, const struct dir_person *p, struct dir_record *r)
{
	struct portal_directory *pd = arg;
	char account[ACCOUNT_MAX], *given;
	bool is_email = false;
	ps_err rc;

	if (p->mail[0] == '\0')
		return ps_errf(PS_EINVAL, "it has no mail address (a user "
		    "needs one; leave such entries out with --filter, e.g. "
		    "(mail=*))");
	if (!email_valid(p->mail))
		return ps_errf(PS_EINVAL, "its mail \"%s\" is not an e-mail "
		    "address", p->mail);
	given = xasprintf("%s\\%s", pd->domain, p->login);
	rc = account_parse(given, account, &is_email);
	free(given);
	if (rc != PS_OK || is_email || strchr(p->login, '\\') != NULL)
		return ps_errf(PS_EINVAL, "its login \"%s\" cannot be an "
		    "account name", p->login);
	r->key = xstrdup(account);
	r->mail = xstrdup(p->mail);
	str_lower(r->mail);
	r->name = xstrdup(p->name);
	return PS_OK;
}

struct loading {
	ps_err	(*add)(void *, const struct dir_record *);
	void	*arg;
};

static ps_err
load_user(void *arg, const struct store_user *u)
{
	struct loading *ld = arg;
	struct dir_record r = { 0 };

	r.id = (char *)u->directory_id;
	r.key = (char *)u->account;
	r.mail = (char *)u->email;
	r.name = (char *)u->name;
	r.disabled = u->disabled;
	return ld->add(ld->arg, &r);
}

static ps_err
user_load(void *arg, struct store *st,
    ps_err (*add)(void *, const struct dir_record *), void *add_arg)
{
	struct loading ld = { add, add_arg };

	(void)arg;
	return store_user_directory_each(st, load_user, &ld);
}

static ps_err
user_put(void *arg, struct store *st, const struct dir_record *now,
    const char *was)
{
	struct store_user u;

	(void)arg;
	memset(&u, 0, sizeof(u));
	str_copy(u.account, now->key, sizeof(u.account));
	str_copy(u.email, now->mail, sizeof(u.email));
	str_copy(u.name, now->name, sizeof(u.name));
	str_copy(u.directory_id, now->id, sizeof(u.directory_id));
	u.disabled = now->disabled;
	account_email_hashes(u.email, u.email_md5, u.email_sha256);
	return store_user_directory_put(st, &u, was);
}

void
portal_directory_ops(struct portal_directory *pd, struct dir_sync_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->what = "user";
	ops->key_name = "account";
	ops->record_of = user_record_of;
	ops->load = user_load;
	ops->put = user_put;
	ops->arg = pd;
}

ps_err
portal_directory_ops_for(void *arg, const struct dir_settings *s,
    struct dir_sync_ops *ops)
{
	struct portal_directory *pd = arg;
	ps_err rc;

	if ((rc = portal_directory_init(pd, s->domain, s->base)) != PS_OK)
		return rc;
	portal_directory_ops(pd, ops);
	return PS_OK;
}
