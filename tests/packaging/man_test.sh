#!/usr/bin/env bash
# Every built man page renders with man(1) without a groff warning (as lintian checks them),
# and has the sections an operator looks for. Usage: man_test.sh <build dir>
set -euo pipefail
BUILD=$(realpath "$1")
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
declare -A want=(
    [netbackd.8]="NAME|SYNOPSIS|COMMANDS|OPTIONS|SIGNALS|EXIT STATUS|FILES"
    [netbackd.toml.5]="NAME|GLOBAL FILE|CLIENT FILES"
    [xensim.1]="NAME|SYNOPSIS|VERBS|EXIT STATUS"
    [netbackd-pmd-probe.1]="NAME|SYNOPSIS|OPTIONS"
)
for page in "${!want[@]}"; do
    gz=$BUILD/docs/man/$page.gz
    [ -f "$gz" ] || { fail "$page not built ($gz)"; continue; }
    err=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l -Tutf8 -Z "$gz" 2>&1 >/dev/null) || fail "$page: man failed"
    [ -z "$err" ] || fail "$page: groff warnings: $err"
    text=$(MANWIDTH=80 man -l "$gz" 2>/dev/null)
    IFS='|' read -r -a sections <<<"${want[$page]}"
    for section in "${sections[@]}"; do
        grep -qx "$section" <<<"$text" || fail "$page: no section '$section'"
    done
done
[ "$failures" -eq 0 ] && echo "man pages: OK (${!want[*]})"
