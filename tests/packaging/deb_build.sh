#!/usr/bin/env bash
# Builds the Debian package with CPack from a built tree into <out dir> (emptied first), for
# the tests that read it. Usage: deb_build.sh <build dir> <out dir>
set -euo pipefail
BUILD=$(realpath "$1")
OUT=$2
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
(cd "$BUILD" && cpack -G DEB -B "$OUT" >"$OUT/cpack.log" 2>&1) || { cat "$OUT/cpack.log" >&2; exit 1; }
rm -rf "$OUT/_CPack_Packages"
ls "$OUT"/*.deb
