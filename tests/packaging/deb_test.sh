#!/usr/bin/env bash
# The Debian package as an operator gets it (built by packaging_deb_build): its name, version
# and computed Depends, its contents (binaries, unit, man pages, conffiles), its maintainer
# scripts, a clean lintian run but for the tags README.md explains, and the binaries unpacked
# into a temp root: --version, and `netbackd doctor` on a simulated host started by the
# packaged xensim, reading the packaged /etc/netbackd/netbackd.toml.
# Usage: deb_test.sh <deb dir> <project version> [sanitizers the build uses]
set -euo pipefail
DEB_DIR=$(realpath "$1")
VERSION=$2
SANITIZE=${3:-}
tmp=$(mktemp -d)
root=$tmp/root
cleanup() {
    [ -x "$root/usr/bin/xensim" ] && "$root/usr/bin/xensim" down --dir "$tmp/host" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

deb=$DEB_DIR/netbackd_${VERSION}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || { ls "$DEB_DIR" >&2; echo "FAIL: no $(basename "$deb")" >&2; exit 1; }

# Control fields: the version, and Depends computed from the libraries it links (plus DPDK's
# plugins, which no ELF dependency shows).
[ "$(dpkg-deb -f "$deb" Version)" = "$VERSION" ] || fail "Version $(dpkg-deb -f "$deb" Version) != $VERSION"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libxenstore libxengnttab libxenevtchn librte-eal librte-ethdev libsystemd0 libstdc++6 \
    librte-mempool-ring librte-bus-vdev; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done

# Contents.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/sbin/netbackd ./usr/bin/xensim ./usr/bin/netbackd-pmd-probe \
    ./lib/systemd/system/netbackd.service ./etc/netbackd/netbackd.toml \
    ./etc/netbackd/clients/example.toml.sample ./usr/share/man/man8/netbackd.8.gz \
    ./usr/share/man/man5/netbackd.toml.5.gz ./usr/share/man/man1/xensim.1.gz \
    ./usr/share/doc/netbackd/copyright ./usr/share/doc/netbackd/changelog.gz \
    ./lib/udev/rules.d/60-netbackd.rules ./usr/lib/sysusers.d/netbackd.conf; do
    grep -qx -- "$f" <<<"$contents" || fail "package lacks $f"
done

# Every file under /etc is a conffile, and every conffile is in the package.
dpkg-deb -e "$deb" "$tmp/control"
etc_files=$(grep '^\./etc/.*[^/]$' <<<"$contents" | sed 's/^\.//' | sort)
[ "$etc_files" = "$(sort "$tmp/control/conffiles")" ] ||
    fail "conffiles ($(tr '\n' ' ' <"$tmp/control/conffiles")) != files under /etc ($(tr '\n' ' ' <<<"$etc_files"))"

# The unit is enabled the Debian way; scripts are valid sh.
grep -q 'deb-systemd-helper enable netbackd.service' "$tmp/control/postinst" || fail "postinst does not enable the unit"
grep -q 'deb-systemd-invoke stop netbackd.service' "$tmp/control/prerm" || fail "prerm does not stop the unit"
grep -q 'deb-systemd-helper purge netbackd.service' "$tmp/control/postrm" || fail "postrm does not purge the unit"
for s in postinst prerm postrm; do
    sh -n "$tmp/control/$s" || fail "$s: not valid sh"
    [ -x "$tmp/control/$s" ] || fail "$s: not executable"
done

# The scripts' calls, with deb-systemd-helper/-invoke, systemctl, systemd-sysusers and udevadm
# stubbed (each logs its arguments): configure makes the unit's user, a first install enables the unit, a disabled unit stays disabled on upgrade,
# removal masks it, purge forgets it. (The /run/systemd/system branches, daemon-reload and
# stop/try-restart, need a running systemd: not exercised here.)
mkdir -p "$tmp/stubs"
for tool in deb-systemd-helper deb-systemd-invoke systemctl systemd-sysusers udevadm; do
    printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\n' "$tool" >"$tmp/stubs/$tool"
    # was-enabled answers from $WAS_ENABLED (0: enabled, as for a unit it never saw).
    [ "$tool" = deb-systemd-helper ] &&
        printf '[ "$2" = was-enabled ] && exit "${WAS_ENABLED:-0}"\nexit 0\n' >>"$tmp/stubs/$tool"
    chmod +x "$tmp/stubs/$tool"
done
calls() { # <WAS_ENABLED> <script> <args...>: the stubbed calls the script made
    local was=$1 script=$2
    shift 2
    : >"$tmp/stub.log"
    STUB_LOG=$tmp/stub.log WAS_ENABLED=$was PATH="$tmp/stubs:$PATH" sh "$tmp/control/$script" "$@" ||
        fail "$script $*: exit $?"
    tr '\n' ';' <"$tmp/stub.log"
}
got=$(calls 0 postinst configure)
[[ $got == *"deb-systemd-helper enable netbackd.service;"* ]] || fail "first install did not enable: $got"
[[ $got != *"deb-systemd-invoke"* ]] || fail "first install started the service: $got"
[[ $got == *"systemd-sysusers netbackd.conf;"* ]] || fail "configure did not make the netbackd user: $got"
got=$(calls 1 postinst configure 0.0.9)
[[ $got == *"update-state netbackd.service;"* && $got != *" enable "* ]] ||
    fail "upgrade re-enabled a disabled unit: $got"
got=$(calls 0 postrm remove)
[[ $got == *"deb-systemd-helper mask netbackd.service;"* ]] || fail "removal did not mask: $got"
got=$(calls 0 postrm purge)
[[ $got == *"deb-systemd-helper purge netbackd.service;"* ]] || fail "purge did not purge: $got"

# lintian: no tag beyond those README.md ("Install") explains.
explained='binary-has-unneeded-section|hardening-no-fortify-functions|package-supports-alternative-init-but-no-init.d-script'
# (A sanitizer build's binaries are no package anyone ships: lintian is not asked about them.)
if [ -z "$SANITIZE" ]; then
    tags=$(lintian --no-cfg -I --pedantic "$deb" 2>/dev/null | grep -E '^[EWIPX]: ' || true)
    unexplained=$(grep -v -E ": ($explained) " <<<"$tags" || true)
    [ -z "$unexplained" ] || fail "lintian: $unexplained"
fi

# Unpacked into a temp root, the binaries run.
dpkg-deb -x "$deb" "$root"
out=$("$root/usr/sbin/netbackd" --version 2>&1) || true
[[ $out == "netbackd $VERSION"* ]] || fail "packaged netbackd --version: '$out'"
out=$("$root/usr/bin/xensim" --version 2>&1) || true
[[ $out == "xensim (netbackd) $VERSION"* ]] || fail "packaged xensim --version: '$out'"
"$root/usr/bin/xensim" up --dir "$tmp/host" >/dev/null
"$root/usr/bin/xensim" domain create nicdom --domid 1 --dir "$tmp/host" >/dev/null
# Failing checks (hugepages, the example's PCI NIC) are this host's; the packaged config must
# be valid and the simulated host reachable.
doctor=$("$root/usr/sbin/netbackd" doctor --platform sim --sim-dir "$tmp/host" --sim-domid 1 \
    --config "$root/etc/netbackd/netbackd.toml" 2>&1) || true
grep -q '^OK .*configuration valid' <<<"$doctor" || fail "packaged netbackd.toml not valid: $doctor"
grep -q '^OK .*simulated host reachable' <<<"$doctor" || fail "packaged doctor did not reach xensim: $doctor"

[ "$failures" -eq 0 ] && echo "deb: OK ($(basename "$deb"), $(stat -c %s "$deb") bytes, Depends: $depends)"
