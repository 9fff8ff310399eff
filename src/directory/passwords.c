/*
 * Passwords checked by the directory: the settings a lookup read, kept
 * under a lock for the guard's threads. See passwords.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "ldap.h"
#include "passwords.h"
#include "schedule.h"

struct dir_passwords {
	pthread_mutex_t		 mu;
	struct dir_settings	 set;	/* mu */
};

struct dir_passwords *
dir_passwords_new(void)
{
	struct dir_passwords *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->mu, NULL);
	return p;
}

void
dir_passwords_free(struct dir_passwords *p)
{
	if (p == NULL)
		return;
	dir_settings_cleanup(&p->set);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

ps_err
dir_passwords_refresh(struct dir_passwords *p, struct store *st, bool *on)
{
	struct dir_settings set, old;
	ps_err rc;

	*on = false;
	if ((rc = dir_settings_load(st, &set)) != PS_OK)
		return rc;
	*on = set.passwords && set.ldap != NULL;
	pthread_mutex_lock(&p->mu);
	old = p->set;
	p->set = set;
	pthread_mutex_unlock(&p->mu);
	dir_settings_cleanup(&old);
	return PS_OK;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

ps_err
dir_passwords_check(void *arg, const char *account, const char *password)
{
	struct dir_passwords *p = arg;
	struct dir_settings set = { 0 };
	struct dir_config cfg;
	ps_err rc;

	pthread_mutex_lock(&p->mu);
	set.ldap = dup_or_null(p->set.ldap);
	set.base = dup_or_null(p->set.base);
	set.filter = dup_or_null(p->set.filter);
	set.bind_dn = dup_or_null(p->set.bind_dn);
	set.password = dup_or_null(p->set.password);
	set.ca_file = dup_or_null(p->set.ca_file);
	set.attributes = dup_or_null(p->set.attributes);
	set.starttls = p->set.starttls;
	set.passwords = p->set.passwords;
	pthread_mutex_unlock(&p->mu);
	if (set.ldap == NULL || !set.passwords)
		rc = ps_errf(PS_EUPSTREAM, "passwords do not come from a "
		    "directory any more");
	else {
		dir_settings_config(&set, &cfg);
		rc = dir_check_password(&cfg, account, password);
	}
	dir_settings_cleanup(&set);
	return rc;
}
