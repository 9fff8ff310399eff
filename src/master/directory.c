/*
 * The master's part of the directory sync: a person is the mailbox of
 * the entry's address, with its name. See directory.h.
 */
#include <string.h>

#include "auth/guard.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "directory.h"
#include "directory/passwords.h"
#include "master_int.h"
#include "store/store.h"

static ps_err
mailbox_record_of(void *arg, const struct dir_person *p,
    struct dir_record *r)
{
	(void)arg;
	if (p->mail[0] == '\0')
		return ps_errf(PS_EINVAL, "it has no mail address (a mailbox "
		    "needs one; leave such entries out with --filter, e.g. "
		    "(mail=*))");
	if (!email_valid(p->mail))
		return ps_errf(PS_EINVAL, "its mail \"%s\" is not an e-mail "
		    "address", p->mail);
	r->key = xstrdup(p->mail);
	str_lower(r->key);
	r->mail = xstrdup(r->key);
	r->name = xstrdup(p->name);
	return PS_OK;
}

struct loading {
	ps_err	(*add)(void *, const struct dir_record *);
	void	*arg;
};

static ps_err
load_mailbox(void *arg, const struct store_mailbox *m)
{
	struct loading *ld = arg;
	struct dir_record r = { 0 };

	r.id = (char *)m->directory_id;
	r.key = (char *)m->email;
	r.mail = (char *)m->email;
	r.name = (char *)m->name;
	r.disabled = m->disabled;
	return ld->add(ld->arg, &r);
}

static ps_err
mailbox_load(void *arg, struct store *st,
    ps_err (*add)(void *, const struct dir_record *), void *add_arg)
{
	struct loading ld = { add, add_arg };

	(void)arg;
	return store_mailbox_directory_each(st, load_mailbox, &ld);
}

static ps_err
mailbox_put(void *arg, struct store *st, const struct dir_record *now,
    const char *was)
{
	struct store_mailbox m;

	(void)arg;
	memset(&m, 0, sizeof(m));
	str_copy(m.email, now->key, sizeof(m.email));
	str_copy(m.name, now->name, sizeof(m.name));
	str_copy(m.directory_id, now->id, sizeof(m.directory_id));
	m.disabled = now->disabled;
	return store_mailbox_directory_put(st, &m, was);
}

void
master_directory_ops(struct dir_sync_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->what = "mailbox";
	ops->key_name = "address";
	ops->record_of = mailbox_record_of;
	ops->load = mailbox_load;
	ops->put = mailbox_put;
}

ps_err
master_directory_ops_for(void *arg, const struct dir_settings *s,
    struct dir_sync_ops *ops)
{
	(void)arg;
	(void)s;
	master_directory_ops(ops);
	return PS_OK;
}

ps_err
master_directory_password(struct master_srv *s, struct store *st,
    const struct store_mailbox *m, char **pwhash)
{
	bool on = false;
	ps_err rc;

	if (m->directory_id[0] == '\0' || s->dir_passwords == NULL)
		return PS_OK;
	if ((rc = dir_passwords_refresh(s->dir_passwords, st, &on)) != PS_OK)
		return rc;
	if (on) {
		if (*pwhash)
			xfree_secret(*pwhash, strlen(*pwhash));
		*pwhash = xstrdup(AUTH_GUARD_EXTERNAL);
	}
	return PS_OK;
}
