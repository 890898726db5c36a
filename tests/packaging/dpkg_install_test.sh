#!/usr/bin/env bash
# dpkg installs the package for real, maintainer scripts and all, into a copy-on-write view of
# this Debian system (an overlay over / in a private mount namespace, entered with chroot), so
# the host is never touched: the unit ends up enabled, its user netbackd made, the conffiles are registered, the man
# pages found, the installed netbackd runs; removal masks the unit and keeps /etc/netbackd,
# purge removes both. Needs root and mount namespaces (else exit 77: skipped), and the
# package's Depends installed on the host (they are build dependencies).
# Usage: dpkg_install_test.sh <deb dir> <project version>
set -euo pipefail
DEB=$(ls "$1"/netbackd_"$2"_*.deb)
VERSION=$2
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
cp "$DEB" "$tmp/netbackd.deb"

cat >"$tmp/inside.sh" <<'INSIDE'
set -eu
tmp=$1 VERSION=$2 r=$1/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$r" 2>/dev/null || exit 77
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount -t tmpfs tmpfs "$r/tmp"
mount -t tmpfs tmpfs "$r/run"   # no /run/systemd/system: the scripts see no running systemd
cp "$tmp/netbackd.deb" "$r/tmp/"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
inroot() { chroot "$r" "$@"; }

inroot dpkg -i /tmp/netbackd.deb >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i failed"; exit 1; }
[ "$(inroot dpkg-query -W -f='${Status} ${Version}' netbackd)" = "install ok installed $VERSION" ] ||
    fail "dpkg reports: $(inroot dpkg-query -W -f='${Status} ${Version}' netbackd)"
out=$(inroot netbackd --version) || true
case "$out" in "netbackd $VERSION"*) ;; *) fail "installed netbackd --version: '$out'" ;; esac
[ "$(readlink "$r/etc/systemd/system/multi-user.target.wants/netbackd.service")" = /lib/systemd/system/netbackd.service ] ||
    fail "the unit is not enabled"
# The unit's user and group, made by the postinst through systemd-sysusers.
inroot getent passwd netbackd >/dev/null || fail "no user netbackd after install"
inroot getent group netbackd >/dev/null || fail "no group netbackd after install"
conffiles=$(inroot dpkg-query -W -f='${Conffiles}' netbackd)
for f in /etc/netbackd/netbackd.toml /etc/netbackd/clients/example.toml.sample; do
    case "$conffiles" in *"$f "*) ;; *) fail "$f is not a registered conffile: $conffiles" ;; esac
done
[ "$(inroot man -w netbackd.toml)" = /usr/share/man/man5/netbackd.toml.5.gz ] || fail "man -w netbackd.toml: $(inroot man -w netbackd.toml 2>&1)"

inroot dpkg -r netbackd >>"$tmp/dpkg.log" 2>&1 || fail "dpkg -r failed"
[ "$(readlink "$r/etc/systemd/system/netbackd.service")" = /dev/null ] || fail "removal did not mask the unit"
[ -f "$r/etc/netbackd/netbackd.toml" ] || fail "removal took the conffiles"
[ ! -e "$r/usr/sbin/netbackd" ] || fail "removal left /usr/sbin/netbackd"
inroot dpkg -P netbackd >>"$tmp/dpkg.log" 2>&1 || fail "dpkg -P failed"
[ ! -e "$r/etc/systemd/system/netbackd.service" ] && [ ! -L "$r/etc/systemd/system/netbackd.service" ] ||
    fail "purge left the mask"
[ ! -e "$r/etc/netbackd" ] || fail "purge left /etc/netbackd: $(ls -R "$r/etc/netbackd")"
[ ! -L "$r/etc/systemd/system/multi-user.target.wants/netbackd.service" ] || fail "purge left the enable link"
[ "$failures" -eq 0 ] || { cat "$tmp/dpkg.log" >&2; exit 1; }
echo "dpkg install/remove/purge: OK"
INSIDE

rc=0
unshare -m sh "$tmp/inside.sh" "$tmp" "$VERSION" || rc=$?
[ "$rc" = 77 ] && echo "skipped: cannot mount an overlay in a mount namespace here"
exit "$rc"
