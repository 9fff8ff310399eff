#!/bin/sh
# make check-valgrind: runs the unit tests of the parsers and of the code
# that serves, every fuzz corpus, and one master serving requests
# (master_http) under valgrind's memcheck in the plain build BUILD. It
# looks for what the sanitizers do not: a branch or a system call on
# memory never written (ASan sees bounds, UBSan undefined operations,
# neither sees uninitialised reads). Leaks are LeakSanitizer's, not
# looked for here.
#
#     tests/valgrind/check.sh BUILD [TEST...]
#
# (the tests named instead of the list below, when any is named).
# A unit test program fails with valgrind's error status; a server's
# errors are in its log, which the harness (tests/integration/psync.py)
# checks as it checks for sanitizer reports.
set -eu
build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)

# libvips loads its format modules from VIPSHOME/lib: here all of them
# but JPEG XL's, whose SIMD library (highway) times itself with RDTSCP as
# it loads, an instruction valgrind's CPU offers but cannot run on a
# machine without it. photosync reads no JPEG XL.
vipshome="$build/valgrind-vipshome"
rm -rf "$vipshome"
for dir in "$(pkg-config --variable=libdir vips)"/vips-modules-*; do
	[ -d "$dir" ] || continue
	mkdir -p "$vipshome/lib/${dir##*/}"
	for module in "$dir"/*.so; do
		case "$module" in
		*/vips-jxl.so) ;;
		*) ln -s "$module" "$vipshome/lib/${dir##*/}/" ;;
		esac
	done
done
export VIPSHOME="$vipshome"

export PHOTOSYNC_TEST_WRAPPER="valgrind --quiet --error-exitcode=99
--track-origins=yes --leak-check=no
--error-markers=memcheck-error-begin,memcheck-error-end
--suppressions=$here/memcheck.supp"

# The unit tests below, one master serving requests (master_http) and
# every fuzz target's corpus, the targets read from the build so that a
# new one is not missed. Left out, for time (some minutes each under
# valgrind) or because they time what they drive: pki and s2s (RSA key
# generation), auth and signin (password hashing), store (SQLite's own
# code, most of its time), mastercall, and xfer (its transfers' own
# timeouts run out). A name selects every test of that name ("url" and
# "negotiate" are each both a unit test and a fuzz target), so the list
# is made unique. The log is a log of its own (testlog-valgrind), beside
# the plain run's.
if [ $# -eq 0 ]; then
	fuzz=$(meson test -C "$build" --no-rebuild --list --suite fuzz |
	    sed -n 's|^[^:]*:fuzz / ||p')
	[ -n "$fuzz" ] || { echo "$0: no fuzz target in $build" >&2; exit 1; }
	# shellcheck disable=SC2046,SC2086 # split on purpose: one name a word
	set -- $(printf '%s\n' url xml autodiscover ews common image work \
	    metrics lru http sso master_cache negotiate master_http $fuzz |
	    sort -u)
fi
exec meson test -C "$build" --print-errorlogs --timeout-multiplier 10 \
    --logbase testlog-valgrind "$@"
