/*
 * Tests of directory/ldap.c against a real OpenLDAP server (tests/
 * slapd.py runs this program with 1,202 people in it and a page limit
 * of 500 per answer): every person read in pages, with Active
 * Directory's attribute names and with OpenLDAP's; a disabled person
 * seen as disabled; binds as the admin and anonymously; a password
 * checked by a bind as its person; and the failures, each a clear
 * error: a wrong bind password, no server, a server that answers
 * garbage, StartTLS that the server does not offer, a bad address, a
 * filter the server refuses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/str.h"
#include "directory/ldap.h"
#include "t.h"

struct seen {
	size_t	 n;
	int	 test1, gone, distinct_bad;
	char	 last_id[80];
	struct dir_person test1_p;
};

static ps_err
count_person(void *arg, const struct dir_person *p, size_t done)
{
	struct seen *s = arg;

	s->n = done;
	if (strcmp(p->login, "test1") == 0) {
		s->test1++;
		s->test1_p = *p;
	}
	if (strcmp(p->login, "gone") == 0 && p->disabled)
		s->gone++;
	if (strcmp(p->id, s->last_id) == 0)
		s->distinct_bad++;
	str_copy(s->last_id, p->id, sizeof(s->last_id));
	return PS_OK;
}

static ps_err
stop_at_ten(void *arg, const struct dir_person *p, size_t done)
{
	(void)arg;
	(void)p;
	return done == 10 ? ps_errf(PS_ELIMIT, "stopped") : PS_OK;
}

static ps_err
count_photo(void *arg, const char *dn, const char *mail, const char *attr,
    const void *data, size_t len)
{
	(void)dn;
	(void)mail;
	(void)attr;
	(void)data;
	(void)len;
	(*(size_t *)arg)++;
	return PS_OK;
}

/* A server on a loopback port that answers any connection with junk. */
static void *
garbage_server(void *arg)
{
	int fd = *(int *)arg, c;

	while ((c = accept(fd, NULL, NULL)) >= 0) {
		(void)!write(c, "HTTP/1.1 200 OK\r\n\r\nnot LDAP at all\n", 35);
		close(c);
	}
	return NULL;
}

static int
listen_port(int *fd_out)
{
	struct sockaddr_in a = { 0 };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 8) != 0 || getsockname(fd, (struct sockaddr *)&a,
	    &len) != 0)
		return -1;
	*fd_out = fd;
	return ntohs(a.sin_port);
}

/*
 * Writing: the entry found by its id with either schema's names, its
 * photo attributes replaced and removed (an absent one too) as the
 * admin; refused anonymously, and for an entry that is not there.
 */
static void
test_writes(const char *uri, const char *base, const char *admin,
    const char *pw, const char *entry_uuid)
{
	static const unsigned char jpeg[] = { 0xff, 0xd8, 0x00, 0x01, 0xff,
	    0xd9 };
	struct dir_config c = { 0 };
	struct dir_binary both[2] = {
		{ "thumbnailPhoto", jpeg, sizeof(jpeg) },
		{ "jpegPhoto", jpeg, sizeof(jpeg) },
	}, cleared[2] = { { "thumbnailPhoto", NULL, 0 },
	    { "jpegPhoto", NULL, 0 } };
	struct dir_conn *conn = NULL;
	char dn[512], want[512];

	snprintf(want, sizeof(want), "uid=test1,ou=people,%s", base);
	c.uri = uri;
	c.base = base;
	c.bind_dn = admin;
	c.password = pw;
	c.schema = DIR_SCHEMA_AD;
	if (!ok(dir_connect(&c, &conn) == PS_OK, "connected to write, as "
	    "the admin")) {
		printf("# %s\n", ps_errmsg());
		return;
	}
	ok(dir_find_dn(conn, "00000000000000000000000000007e57", dn,
	    sizeof(dn)) == PS_OK && strcmp(dn, want) == 0,
	    "an entry found by its objectGUID");
	ok(dir_find_dn(conn, "00000000000000000000000000000bad", dn,
	    sizeof(dn)) == PS_ENOTFOUND, "an id no entry has: not found");
	ok(dir_find_dn(conn, "7e57*", dn, sizeof(dn)) == PS_EINVAL,
	    "an objectGUID that is not hex: refused, not searched");
	{
		/* Several ids in one search: found, absent, not an id. */
		const char *ids[3] = { "00000000000000000000000000000bad",
		    "00000000000000000000000000007e57", "7e57*" };
		struct dir_found f[3];

		ok(dir_find_dns(conn, ids, 3, f) == PS_OK &&
		    f[0].count == 0 && f[1].count == 1 &&
		    strcmp(f[1].dn, want) == 0 && f[2].count == -1,
		    "three ids looked up at once: none, the entry, not an id");
		ok(dir_find_dns(conn, ids, DIR_FIND_BATCH + 1, f) ==
		    PS_EINVAL, "more ids than a batch: refused");
	}
	ok(dir_put_binary(conn, want, both, 2) == PS_OK,
	    "thumbnailPhoto and jpegPhoto written in one modify");
	ok(dir_put_binary(conn, want, cleared, 2) == PS_OK &&
	    dir_put_binary(conn, want, cleared, 2) == PS_OK,
	    "both removed, and removed again: no error");
	ok(dir_put_binary(conn, "uid=nobody,ou=people,dc=contoso,dc=com",
	    both, 2) == PS_EUPSTREAM && strstr(ps_errmsg(), "writing the "
	    "entry") != NULL, "an entry that is not there: a clear error");
	printf("# %s\n", ps_errmsg());
	dir_disconnect(conn);

	c.schema = DIR_SCHEMA_OPENLDAP;
	c.bind_dn = NULL;
	c.password = NULL;
	ok(dir_connect(&c, &conn) == PS_OK, "connected anonymously");
	ok(dir_find_dn(conn, entry_uuid, dn, sizeof(dn)) == PS_OK &&
	    strcmp(dn, want) == 0, "an entry found by its entryUUID");
	ok(dir_put_binary(conn, want, both, 2) != PS_OK,
	    "an anonymous write is refused");
	printf("# %s\n", ps_errmsg());
	dir_disconnect(conn);
}

int
main(void)
{
	const char *uri = getenv("PHOTOSYNC_TEST_LDAP_URI");
	const char *base = getenv("PHOTOSYNC_TEST_LDAP_BASE");
	const char *admin = getenv("PHOTOSYNC_TEST_LDAP_ADMIN");
	const char *pw = getenv("PHOTOSYNC_TEST_LDAP_PASSWORD");
	struct dir_config c = { 0 };
	struct seen s = { 0 };
	char bad_uri[64];
	size_t skipped = 99;
	pthread_t th;
	int fd = -1, port;
	ps_err e;

	if (uri == NULL || base == NULL || admin == NULL || pw == NULL) {
		printf("Bail out! run through tests/slapd.py run --\n");
		return 1;
	}
	c.uri = uri;
	c.base = base;
	c.bind_dn = admin;
	c.password = pw;
	c.schema = DIR_SCHEMA_AD;

	e = dir_search(&c, count_person, &s, &skipped);
	if (!ok(e == PS_OK, "a search with Active Directory's names, bound "
	    "as the admin"))
		printf("# %s\n", ps_errmsg());
	is_int(s.n, 1202, "every person, over several pages of 500");
	is_int(skipped, 0, "none skipped");
	is_int(s.test1, 1, "test1 once");
	is_str(s.test1_p.mail, "test1@contoso.com", "with its address");
	is_str(s.test1_p.upn, "test1@contoso.com", "its UPN");
	is_str(s.test1_p.name, "Test One", "its display name");
	is_str(s.test1_p.id, "00000000000000000000000000007e57",
	    "its objectGUID, in hex");
	ok(!s.test1_p.disabled, "enabled");
	is_int(s.gone, 1, "a person whose userAccountControl says disabled "
	    "is read as disabled");

	memset(&s, 0, sizeof(s));
	c.schema = DIR_SCHEMA_OPENLDAP;
	c.bind_dn = NULL;
	c.page_size = 100;
	e = dir_search(&c, count_person, &s, &skipped);
	ok(e == PS_OK, "with OpenLDAP's names, anonymously, pages of 100");
	is_int(s.n, 1202, "every person");
	ok(strlen(s.test1_p.id) == 36 && s.test1_p.id[8] == '-',
	    "the id is the entryUUID");
	is_str(s.test1_p.name, "Test One", "the name is cn");
	is_str(s.test1_p.upn, "", "no UPN");
	skipped = 0;
	e = dir_photos(&c, count_photo, &skipped);
	ok(e == PS_OK, "dir_photos reads every page of the same people");
	is_int(skipped, 0, "none of them has jpegPhoto or thumbnailPhoto: "
	    "none given (tests/integration/test_photo_import.py reads them)");

	test_writes(uri, base, admin, pw, s.test1_p.id);

	c.schema = DIR_SCHEMA_AD;
	ok(dir_search(&c, stop_at_ten, NULL, NULL) == PS_ELIMIT,
	    "a callback's error stops the search and is returned");

	c.filter = "(uid=u0000*)";
	memset(&s, 0, sizeof(s));
	ok(dir_search(&c, count_person, &s, NULL) == PS_OK && s.n == 10,
	    "a filter of the admin's");
	c.filter = "(((";
	e = dir_search(&c, count_person, &s, NULL);
	ok(e != PS_OK && strstr(ps_errmsg(), "search") != NULL,
	    "a filter that is not one: the search failed, clearly");
	printf("# %s\n", ps_errmsg());
	c.filter = NULL;

	ok(dir_check_password(&c, "test1", "pw-one") == PS_OK,
	    "test1's password, by a bind as test1");
	ok(dir_check_password(&c, "test1", "wrong") == PS_EAUTH,
	    "a wrong password: refused");
	ok(dir_check_password(&c, "nobody", "pw-one") == PS_EAUTH,
	    "no such person: refused");
	ok(dir_check_password(&c, "test1*", "pw-one") == PS_EAUTH,
	    "a login with filter characters matches nobody");
	ok(dir_check_password(&c, "test1", "") == PS_EAUTH,
	    "an empty password is never a bind (it would be anonymous)");
	ok(dir_check_password(&c, "contoso\\test1", "pw-one") == PS_OK,
	    "DOMAIN\\login: the login after the backslash");
	ok(dir_check_password(&c, "test1@contoso.com", "pw-one") == PS_OK,
	    "an address: the person with that mail");
	ok(dir_check_password(&c, "test1@contoso.com", "wrong") == PS_EAUTH,
	    "... and a wrong password for it refused");

	c.bind_dn = admin;
	c.password = "wrong";
	e = dir_search(&c, count_person, &s, NULL);
	ok(e == PS_EAUTH && strstr(ps_errmsg(), "bind") != NULL,
	    "a wrong bind password: refused, saying the bind failed");
	printf("# %s\n", ps_errmsg());
	c.password = pw;

	c.starttls = true;
	e = dir_search(&c, count_person, &s, NULL);
	ok(e != PS_OK && strstr(ps_errmsg(), "StartTLS") != NULL,
	    "StartTLS asked of a server without TLS: refused, not sent in "
	    "the clear");
	printf("# %s\n", ps_errmsg());
	c.starttls = false;

	if ((port = listen_port(&fd)) > 0) {
		snprintf(bad_uri, sizeof(bad_uri), "ldap://127.0.0.1:%d", port);
		close(fd);
		c.uri = bad_uri;
		c.timeout_s = 5;
		e = dir_search(&c, count_person, &s, NULL);
		ok(e == PS_EIO, "no server: an error");
		printf("# %s\n", ps_errmsg());
	}
	if ((port = listen_port(&fd)) > 0 &&
	    pthread_create(&th, NULL, garbage_server, &fd) == 0) {
		snprintf(bad_uri, sizeof(bad_uri), "ldap://127.0.0.1:%d", port);
		c.uri = bad_uri;
		e = dir_search(&c, count_person, &s, NULL);
		ok(e != PS_OK, "a server that answers garbage: an error");
		printf("# %s\n", ps_errmsg());
		shutdown(fd, SHUT_RDWR);
		close(fd);
		pthread_join(th, NULL);
	}
	c.uri = "http://127.0.0.1/";
	ok(dir_search(&c, count_person, &s, NULL) == PS_EINVAL,
	    "an address that is not ldap:// or ldaps://: refused");
	c.uri = uri;
	c.base = "";
	ok(dir_search(&c, count_person, &s, NULL) == PS_EINVAL,
	    "no base: refused");
	return done();
}
