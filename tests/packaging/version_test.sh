#!/usr/bin/env bash
# `netbackd --version` and `xensim --version` print the project version, plus the commit when
# built from a git checkout; the version header is still written from a tarball without .git,
# also one unpacked inside some other repository (whose commit it must not take).
# Usage: version_test.sh <source dir> <build dir> <project version>
set -euo pipefail
SRC=$(realpath "$1")
BUILD=$(realpath "$2")
VERSION=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

commit=""
if [ "$(git -C "$SRC" rev-parse --show-toplevel 2>/dev/null)" = "$SRC" ]; then
    commit=$(git -C "$SRC" rev-parse --short=12 HEAD)
fi
want_suffix=${commit:+ (git $commit)}
for bin in backend/service/netbackd xensim/xensim; do
    out=$("$BUILD/$bin" --version 2>"$tmp/stderr") || out="$out $(cat "$tmp/stderr")"
    name=$(basename "$bin")
    case "$out" in
    "$name $VERSION$want_suffix" | "$name (netbackd) $VERSION$want_suffix") ;;
    *) fail "$name --version printed '$out', want version $VERSION${commit:+ and commit $commit} (a build configured before the last commit is stale: re-run cmake)" ;;
    esac
done

header_of() { # <source dir> -> the generated header's kFull line
    cmake -DNETBACKD_VERSION="$VERSION" -DNETBACKD_VERSION_SOURCE_DIR="$1" \
        -DNETBACKD_VERSION_HEADER="$tmp/out.hpp" -P "$SRC/cmake/version.cmake"
    grep 'kFull =' "$tmp/out.hpp"
}
# A tarball: no git anywhere above it.
mkdir -p "$tmp/tarball"
line=$(header_of "$tmp/tarball")
[[ $line == *"kFull = \"$VERSION\";"* ]] || fail "tarball build: $line"
# A tarball unpacked inside another repository.
git -C "$tmp" init -q outer
git -C "$tmp/outer" -c user.name=t -c user.email=t@t commit -q --allow-empty -m outer
mkdir -p "$tmp/outer/netbackd-$VERSION"
line=$(header_of "$tmp/outer/netbackd-$VERSION")
[[ $line == *"kFull = \"$VERSION\";"* ]] || fail "tarball inside another repository took its commit: $line"

[ "$failures" -eq 0 ] && echo "version: OK ($VERSION${want_suffix})"
