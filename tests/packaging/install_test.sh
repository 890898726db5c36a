#!/usr/bin/env bash
# What `cmake --install` gives an operator: installed into a staging root with prefix /usr, as
# the Debian package does, every file is where the unit, the docs and the package say, and the
# unit's own commands and condition point at installed files. Usage: install_test.sh <build dir>
set -euo pipefail
BUILD=$(realpath "$1")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
need_exec() { [ -f "$1" ] && [ -x "$1" ] || fail "missing executable ${1#"$root"}"; }
need_file() { [ -f "$1" ] && [ -s "$1" ] || fail "missing file ${1#"$root"}"; }

DESTDIR=$root/usr-prefix cmake --install "$BUILD" --prefix /usr >/dev/null
r=$root/usr-prefix
need_exec "$r/usr/sbin/netbackd"
need_exec "$r/usr/bin/xensim"
need_exec "$r/usr/bin/netbackd-pmd-probe"
unit=$r/lib/systemd/system/netbackd.service
need_file "$unit"
need_file "$r/etc/netbackd/netbackd.toml"
need_file "$r/lib/udev/rules.d/60-netbackd.rules"
need_file "$r/usr/lib/sysusers.d/netbackd.conf"
need_file "$r/etc/netbackd/clients/example.toml.sample"
need_file "$r/usr/share/doc/netbackd/README.md"
need_file "$r/usr/share/man/man8/netbackd.8.gz"
need_file "$r/usr/share/man/man5/netbackd.toml.5.gz"
need_file "$r/usr/share/man/man1/xensim.1.gz"
need_file "$r/usr/share/man/man1/netbackd-pmd-probe.1.gz"
need_file "$r/usr/share/doc/netbackd/copyright"
need_file "$r/usr/share/doc/netbackd/examples/netbackd.toml"
need_file "$r/usr/share/doc/netbackd/examples/example.toml"
# Every *.toml in clients/ is live policy: a fresh install must not carry any.
live=$(find "$r/etc/netbackd/clients" -name '*.toml')
[ -z "$live" ] || fail "live client policy installed: $live"
# Nothing outside the prefix but /etc/netbackd, the unit and the udev rule.
stray=$(cd "$r" && find . -type f | grep -v -E '^\./(usr/|etc/netbackd/|lib/systemd/system/netbackd\.service$|lib/udev/rules\.d/60-netbackd\.rules$)' || true)
[ -z "$stray" ] || fail "installed outside the expected directories: $stray"

# The unit's commands and condition name installed files (our binaries; /bin/kill is the system's).
if [ -f "$unit" ]; then
    while read -r path; do
        case "$(basename "$path")" in
        netbackd | xensim | netbackd-pmd-probe) need_exec "$r$path" ;;
        esac
    done < <(sed -n -E 's/^#? ?Exec[A-Za-z]*=[-@:+!]*([^ ]+).*/\1/p' "$unit")
    # Every man: page of Documentation= is installed.
    while read -r name section; do
        need_file "$r/usr/share/man/man$section/$name.$section.gz"
    done < <(grep '^Documentation=' "$unit" | grep -oE 'man:[a-z.-]+\([0-9]\)' | sed -E 's/man:(.*)\((.)\)/\1 \2/')
    cond=$(sed -n 's/^ConditionPathExists=//p' "$unit")
    [ -z "$cond" ] || need_file "$r$cond"
fi

# The installed binaries run from where they were put.
out=$("$r/usr/sbin/netbackd" --version) || fail "installed netbackd --version failed"
[[ $out == "netbackd "[0-9]* ]] || fail "installed netbackd --version printed '$out'"

# Any other prefix keeps /etc and the unit under it.
DESTDIR=$root/local-prefix cmake --install "$BUILD" --prefix /usr/local >/dev/null
l=$root/local-prefix/usr/local
need_exec "$l/sbin/netbackd"
need_file "$l/etc/netbackd/netbackd.toml"
need_file "$l/lib/systemd/system/netbackd.service"
[ ! -e "$root/local-prefix/etc" ] || fail "prefix /usr/local installed into /etc"

if [ "$failures" -ne 0 ]; then
    echo "installed files (prefix /usr):" >&2
    (cd "$r" && find . -type f | sort) >&2
    exit 1
fi
echo "install layout: OK ($(cd "$r" && find . -type f | wc -l) files under prefix /usr)"
