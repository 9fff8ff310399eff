#!/bin/sh
# Installs the Debian packages photosync needs to build, test and run its
# demo, when any is missing. Safe to run again: it does nothing when all are
# present. Needs root (or sudo) on a Debian 12 machine.
set -eu

build="meson ninja-build pkg-config gcc libc6-dev libevent-dev libssl-dev
libcurl4-openssl-dev libvips-dev libxml2-dev libjansson-dev libsodium-dev
libsqlite3-dev libpq-dev libkrb5-dev libldap-dev libjpeg62-turbo-dev
openssl ca-certificates"
# The manual pages (man/) are written in scdoc and built with the program.
build="$build scdoc"
# The tests start PostgreSQL servers of their own (tests/pgserver.py:
# initdb, pg_ctl, psql, pg_dump) and read stores with psycopg2; the
# cluster test runs the cluster demo, with HAProxy. Kerberos sign-in is
# tested against a KDC of their own (tests/kdc.py: MIT's KDC, kadmin.local
# for principals and keytabs, kinit for tickets), with curl and with
# headless Chromium holding a ticket (Chromium loads MIT's GSSAPI itself).
# The directory is tested against an OpenLDAP server of their own
# (tests/slapd.py: slapd, slapadd; ldapsearch and ldapmodify to change it).
# The Graph photo API is accepted with Microsoft's Graph JavaScript client,
# run by Node.js; npm installs it from tests/graph/package-lock.json into
# the build tree (test_master_graph_client).
# Third-party EWS clients are driven headlessly against the master:
# Evolution's Exchange address book (evolution-ews in
# evolution-data-server's registry and address-book factory, in a
# private D-Bus session with an unlocked GNOME keyring, through
# libebook's introspection data from python3-gi), and DavMail's LDAP
# gateway (davmail-server, Java; keytool from its Java runtime for the
# trust store), searched with ldapsearch.
# make check builds with clang too (its warnings, meson.build) and runs
# the unit tests and a master under valgrind's memcheck (Makefile).
tests="curl imagemagick libimage-exiftool-perl jpeginfo python3
python3-exchangelib python3-jwt python3-jwcrypto
chromium chromium-driver python3-selenium
postgresql python3-psycopg2 haproxy
krb5-kdc krb5-admin-server krb5-user slapd ldap-utils
evolution-ews evolution-data-server dbus-daemon gnome-keyring python3-gi
gir1.2-ebook-1.2 gir1.2-ebookcontacts-1.2 gir1.2-edataserver-1.2
davmail-server default-jre-headless nodejs npm
clang valgrind"
# The shipped Prometheus alerting rules are checked and unit-tested with
# promtool (in Debian's prometheus package); the checks read the rules
# and their tests with python3-yaml (tests/static/prometheus_rules.py,
# tests/integration/test_metric_names.py).
tests="$tests prometheus python3-yaml"
# The systemd units' sandbox is scored by systemd-analyze security
# --offline (test_install); a container may lack systemd.
tests="$tests systemd"
# The package's test (test_deb) boots the Debian root it installs the
# package in with systemd-nspawn, so that systemd itself runs the units.
tests="$tests systemd-container"
# test_man_pages renders the built manual pages and lints them with mandoc.
tests="$tests mandoc"
# make demo: the demo prints a curl command that fetches a photo; make
# demo-cluster (demo --nodes) runs PostgreSQL's server and HAProxy.
demo="curl postgresql haproxy"
# make bench (docs/performance.md): the load generator, the reference
# server, libjpeg-turbo's headers for bench_render's floor, openssl for
# the reference's certificate; taskset is in util-linux (essential);
# PostgreSQL's server for the figures of several nodes (the bench starts
# its own, as the tests do); an OpenLDAP server (slapd, slapadd) for the
# directory sync's figure (started as the tests start it).
bench="python3 wrk nginx-light libjpeg62-turbo-dev openssl util-linux
postgresql slapd"
# make fuzz: clang and its libFuzzer runtime.
fuzz="clang libclang-rt-14-dev"
# make deb (scripts/deb.sh): debhelper with dpkg-buildpackage, lintian;
# the package's test also makes a Debian root with mmdebstrap.
deb="debhelper dpkg-dev fakeroot lintian mmdebstrap"
# make analyze: clang's static analyzer (scan-build, in clang-tools-14).
analyze="clang clang-tools-14"

want="$build"
case "${1:-build}" in
build) ;;
demo) want="$build $demo" ;;
test) want="$build $tests $deb" ;;
bench) want="$build $bench" ;;
fuzz) want="$build $fuzz" ;;
deb) want="$build $deb" ;;
analyze) want="$build $analyze" ;;
*) echo "usage: $0 [build|demo|test|bench|fuzz|deb|analyze]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	# A Node.js built elsewhere than Debian carries its own npm, and
	# conflicts with Debian's npm package: its npm does as well.
	if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
		continue
	fi
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "photosync: installing Debian packages:$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
