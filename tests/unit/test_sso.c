/*
 * Unit tests of sign-in by a single sign-on proxy (auth/sso.h): which
 * field names are spellings of the identity header, the proxies'
 * addresses (IPv4, IPv6, CIDR networks, IPv4 clients on a dual-stack
 * socket), the settings refused, and what a request's fields say from a
 * proxy and from anyone else.
 */
#include <stdio.h>
#include <string.h>

#include "auth/sso.h"
#include "common/err.h"
#include "t.h"

#define NFIELDS(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_spellings(void)
{
	static const char *const same[] = {
		"X-Remote-User", "x-remote-user", "X-REMOTE-USER",
		"X_REMOTE_USER", "x_remote-user", "X-Remote_User",
	};
	static const char *const other[] = {
		"X-Remote-User2", "X-Remote-Use", "XRemote-User",
		"X-Remote-User ", "", "X.Remote.User", "X--Remote-User",
	};
	size_t i;
	char what[96];

	for (i = 0; i < NFIELDS(same); i++) {
		snprintf(what, sizeof(what), "\"%s\" is X-Remote-User",
		    same[i]);
		ok(auth_sso_name_matches("X-Remote-User", same[i]), what);
	}
	for (i = 0; i < NFIELDS(other); i++) {
		snprintf(what, sizeof(what), "\"%s\" is not X-Remote-User",
		    other[i]);
		ok(!auth_sso_name_matches("X-Remote-User", other[i]), what);
	}
	ok(auth_sso_name_matches("X_Remote_User", "x-remote-user"),
	    "a configured name with _ matches its - spelling too");
}

static void
test_header_check(void)
{
	static const char *const good[] = {
		"X-Remote-User", "Remote-User", "X-Forwarded-User",
		"X_SSO_Login", "x-auth-request-email",
	};
	static const char *const bad[] = {
		"", "X Remote", "X-Remote:User", "X-Remote-User\r\n",
		"X-\xc3\xa9", "Authorization", "authorization", "COOKIE",
		"Host", "content_type", "Proxy-Authorization", "Origin",
		"X-Forwarded-For", "Forwarded",
		("X-01234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789"), /* 92 bytes */
	};
	size_t i;
	char what[160];

	for (i = 0; i < NFIELDS(good); i++) {
		snprintf(what, sizeof(what), "header name \"%s\" accepted",
		    good[i]);
		ok(auth_sso_header_check(good[i]) == PS_OK, what);
	}
	for (i = 0; i < NFIELDS(bad); i++) {
		ps_err rc = auth_sso_header_check(bad[i]);

		snprintf(what, sizeof(what), "header name \"%.40s\" refused: "
		    "%.80s", bad[i], rc == PS_OK ? "(accepted)" : ps_errmsg());
		ok(rc == PS_EINVAL, what);
	}
}

static void
test_proxies(void)
{
	static const char *const good[] = {
		"10.0.0.5", "10.0.0.0/8, 192.168.1.7", "::1", "2001:db8::/32",
		"127.0.0.2,::1/128 10.1.2.3/32", "0.0.0.0/0",
	};
	static const char *const bad[] = {
		"", " , ", "10.0.0.256", "10.0.0.0/33", "10.0.0.0/", "::1/129",
		"proxy.example", "10.0.0.5/-1", "10.0.0.5/8x", "fe80::1%eth0",
	};
	struct auth_sso *sso;
	size_t i;
	char what[160];

	for (i = 0; i < NFIELDS(good); i++) {
		snprintf(what, sizeof(what), "proxies \"%s\" accepted",
		    good[i]);
		ok(auth_sso_proxies_check(good[i]) == PS_OK, what);
	}
	for (i = 0; i < NFIELDS(bad); i++) {
		ps_err rc = auth_sso_proxies_check(bad[i]);

		snprintf(what, sizeof(what), "proxies \"%s\" refused: %.80s",
		    bad[i], rc == PS_OK ? "(accepted)" : ps_errmsg());
		ok(rc == PS_EINVAL, what);
	}

	ok(auth_sso_new("X-Remote-User", "10.1.0.0/16, 192.0.2.7, "
	    "2001:db8:1::/48, ::1", &sso) == PS_OK && sso != NULL,
	    "settings compiled");
	ok(auth_sso_is_proxy(sso, "10.1.0.1") &&
	    auth_sso_is_proxy(sso, "10.1.255.254"), "IPv4 inside the /16");
	ok(!auth_sso_is_proxy(sso, "10.2.0.1") &&
	    !auth_sso_is_proxy(sso, "10.0.255.255"), "IPv4 outside it");
	ok(auth_sso_is_proxy(sso, "192.0.2.7") &&
	    !auth_sso_is_proxy(sso, "192.0.2.8"), "one IPv4 address");
	ok(auth_sso_is_proxy(sso, "2001:db8:1:ffff::9") &&
	    !auth_sso_is_proxy(sso, "2001:db8:2::9"), "IPv6 /48");
	ok(auth_sso_is_proxy(sso, "::1") && !auth_sso_is_proxy(sso, "::2"),
	    "one IPv6 address");
	ok(auth_sso_is_proxy(sso, "::ffff:192.0.2.7") &&
	    !auth_sso_is_proxy(sso, "::ffff:192.0.2.8"),
	    "an IPv4 client on a dual-stack socket is its IPv4 address");
	ok(!auth_sso_is_proxy(sso, "") && !auth_sso_is_proxy(sso, NULL) &&
	    !auth_sso_is_proxy(sso, "not an address"), "no peer: no proxy");
	auth_sso_free(sso);

	ok(auth_sso_new("", "10.0.0.1", &sso) == PS_OK && sso == NULL,
	    "no header: off");
	ok(auth_sso_new("X-Remote-User", "", &sso) == PS_OK && sso == NULL,
	    "no proxies: off");
	ok(!auth_sso_is_proxy(NULL, "10.0.0.1"), "off: nobody is a proxy");
	ok(auth_sso_new("Cookie", "10.0.0.1", &sso) == PS_EINVAL &&
	    sso == NULL, "a bad header: refused when compiled too");
	ok(auth_sso_new("X-Remote-User", "10.0.0.1/40", &sso) == PS_EINVAL &&
	    sso == NULL, "a bad address: refused when compiled too");
}

static void
test_examine(void)
{
	struct auth_sso *sso;
	const char *user;
	char why[160];
	const struct auth_sso_field one[] = {
		{ "Host", "portal" }, { "x_remote_user", "contoso\\test1" },
		{ "Accept", "text/html" },
	};
	const struct auth_sso_field none[] = {
		{ "Host", "portal" }, { "X-Remote-Users", "contoso\\test1" },
	};
	const struct auth_sso_field two[] = {
		{ "X-Remote-User", "contoso\\test1" },
		{ "x-remote_user", "contoso\\test2" },
	};
	const struct auth_sso_field empty[] = {
		{ "X-Remote-User", "" },
	};

	ok(auth_sso_new("X-Remote-User", "10.0.0.5, fd00::/8", &sso) ==
	    PS_OK, "settings");
	is_int(auth_sso_examine(sso, "10.0.0.5", one, NFIELDS(one), &user,
	    why, sizeof(why)), AUTH_SSO_USER, "from the proxy: a user");
	is_str(user, "contoso\\test1", "... the one the header names");
	is_int(auth_sso_examine(sso, "fd00::7", one, NFIELDS(one), &user,
	    why, sizeof(why)), AUTH_SSO_USER, "from an IPv6 proxy too");
	is_int(auth_sso_examine(sso, "10.0.0.6", one, NFIELDS(one), &user,
	    why, sizeof(why)), AUTH_SSO_IGNORED,
	    "from another peer: ignored");
	ok(user == NULL, "... and no user");
	is_int(auth_sso_examine(sso, "10.0.0.6", two, NFIELDS(two), &user,
	    why, sizeof(why)), AUTH_SSO_IGNORED,
	    "two copies from another peer: ignored as well");
	is_int(auth_sso_examine(sso, "10.0.0.5", none, NFIELDS(none), &user,
	    why, sizeof(why)), AUTH_SSO_NONE,
	    "no such header from the proxy: as without it");
	is_int(auth_sso_examine(sso, "10.0.0.5", two, NFIELDS(two), &user,
	    why, sizeof(why)), AUTH_SSO_BAD,
	    "two copies (two spellings) from the proxy: refused");
	ok(strstr(why, "2 times") != NULL, "... saying so");
	ok(user == NULL, "... with no user");
	is_int(auth_sso_examine(sso, "10.0.0.5", empty, NFIELDS(empty),
	    &user, why, sizeof(why)), AUTH_SSO_BAD,
	    "an empty value from the proxy: refused");
	is_int(auth_sso_examine(NULL, "10.0.0.5", one, NFIELDS(one), &user,
	    why, sizeof(why)), AUTH_SSO_NONE, "off: as without the header");
	auth_sso_free(sso);
	auth_sso_free(NULL);
}

int
main(void)
{
	test_spellings();
	test_header_check();
	test_proxies();
	test_examine();
	return done();
}
