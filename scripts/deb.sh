#!/bin/sh
# Builds photosync's Debian package from this tree, without the network:
#
#   scripts/deb.sh [OUT]     (make deb; OUT defaults to build-deb)
#
# dpkg-buildpackage writes its results beside the tree it builds, so the
# tree is copied to OUT/photosync-VERSION first (what git tracks or would
# track; everything but the build trees when this is no git checkout) and
# built there (debian/rules: debhelper's meson build system). The package
# lands in OUT: OUT/photosync_VERSION_ARCH.deb, with its debug symbols
# (photosync-dbgsym_*.deb), .buildinfo and .changes. The copy is removed
# afterwards. Needs scripts/deps.sh deb.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build-deb"}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The version is the one meson.build states; debian/changelog must name it.
version=$(cd "$root" && meson introspect --projectinfo meson.build |
	/usr/bin/python3 -c \
	    'import json, sys; print(json.load(sys.stdin)["version"])')
changelog=$(cd "$root" && dpkg-parsechangelog -S Version)
if [ "$changelog" != "$version" ]; then
	echo "photosync: debian/changelog's version is $changelog, meson.build's" \
	    "is $version: add a debian/changelog entry for $version" >&2
	exit 1
fi

src="$out/photosync-$version"
rm -rf "$src"
mkdir -p "$src"
case "$out/" in
"$root"/*) inside="${out#"$root"/}" ;;
*) inside="" ;;
esac
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and untracked-but-not-ignored files, as they are now (a
	# tracked file deleted in the tree stays deleted).
	(cd "$root" && git ls-files -z --cached --others --exclude-standard |
	    /usr/bin/python3 -c '
import os, sys
skip = sys.argv[1]
for p in sys.stdin.buffer.read().split(b"\0"):
    if p and os.path.lexists(p) and not (skip and
            p.decode().startswith(skip + "/")):
        sys.stdout.buffer.write(p + b"\0")' "$inside" |
	    tar --null -T - -cf -) | tar -C "$src" -xf -
else
	(cd "$root" && tar --exclude=./.git --exclude='./build*' \
	    --exclude=./demo --exclude=./demo-cluster \
	    ${inside:+--exclude="./$inside"} -cf - .) | tar -C "$src" -xf -
fi

# -b: the binary package alone (the tree is its source); unsigned; as
# many compiler jobs as there are processors (debhelper's ninja runs one
# unless DEB_BUILD_OPTIONS says).
DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
export DEB_BUILD_OPTIONS
(cd "$src" && dpkg-buildpackage -b -us -uc)
rm -rf "$src"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
echo "photosync: built $out/photosync_${version}_$arch.deb"
