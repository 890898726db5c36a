#!/usr/bin/env bash
# The shipped unit's confinement (README "Least privilege"): installed into a staging root,
# `systemd-analyze verify` accepts it; its exposure (`systemd-analyze security --offline`) stays
# at the hardened level; its User=/Group= are the ones the package's sysusers.d file makes and
# its udev rule gives the Xen devices to, and every device that rule names is in DeviceAllow=.
# Usage: unit_test.sh <build dir>
set -euo pipefail
BUILD=$(realpath "$1")
# The hardened unit scores 2.5; the unconfined one 9.6.
MAX_EXPOSURE=3.0
command -v systemd-analyze >/dev/null || { echo "skipped: no systemd-analyze"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

r=$tmp/root
DESTDIR=$r cmake --install "$BUILD" --prefix /usr >/dev/null
unit=$r/lib/systemd/system/netbackd.service
rules=$r/lib/udev/rules.d/60-netbackd.rules
sysusers=$r/usr/lib/sysusers.d/netbackd.conf

# verify wants ExecStart='s binary where it names it: a copy naming the staged one. Any
# message (an unknown key, a bad value) fails, since verify exits 0 on those. Man pages are
# checked by packaging_man.
mkdir -p "$tmp/verify"
sed "s|/usr/sbin/netbackd|$r/usr/sbin/netbackd|g" "$unit" >"$tmp/verify/netbackd.service"
if ! out=$(systemd-analyze verify --man=no "$tmp/verify/netbackd.service" 2>&1) || [ -n "$out" ]; then
    fail "systemd-analyze verify: $out"
fi
# The example drop-in for uio (root) is valid too: verified in the unit's drop-in directory.
dropin=$r/usr/share/doc/netbackd/examples/netbackd-root.conf
if [ -f "$dropin" ]; then
    mkdir -p "$tmp/verify/netbackd.service.d"
    cp "$dropin" "$tmp/verify/netbackd.service.d/root.conf"
    (cd "$tmp/verify" && SYSTEMD_UNIT_PATH="$tmp/verify:" systemd-analyze verify --man=no netbackd.service) >"$tmp/v.log" 2>&1 &&
        [ ! -s "$tmp/v.log" ] || fail "systemd-analyze verify with the root drop-in: $(cat "$tmp/v.log")"
else
    fail "no example drop-in $dropin"
fi

out=$(systemd-analyze security --offline=yes "$unit" 2>&1 || true)
score=$(sed -n -E 's/.*Overall exposure level for netbackd.service: ([0-9.]+).*/\1/p' <<<"$out")
[ -n "$score" ] || fail "no exposure level in: $out"
[ -n "$score" ] && ! awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' &&
    fail "exposure $score > $MAX_EXPOSURE: $(grep '^✗' <<<"$out")"
for setting in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes \
    DevicePolicy=closed SystemCallArchitectures=native; do
    grep -qx "$setting" "$unit" || fail "the unit lacks $setting"
done

user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
[ -n "$user" ] && [ "$user" != root ] || fail "the unit runs as '${user:-root}', not a dedicated user"
awk -v u="$user" '$1 == "u" && $2 == u { found = 1 } END { exit !found }' "$sysusers" ||
    fail "sysusers.d/netbackd.conf does not make user $user"
mkdir -p "$tmp/sysroot/etc"
systemd-sysusers --root="$tmp/sysroot" "$sysusers" >/dev/null 2>&1 || fail "systemd-sysusers rejects $sysusers"
grep -q "^$group:" "$tmp/sysroot/etc/group" 2>/dev/null || fail "systemd-sysusers made no group $group"
grep -q "GROUP=\"$group\"" "$rules" || fail "the udev rule does not give the devices to group $group"
# Every Xen device the rule opens up is allowed in the unit's device cgroup.
for dev in $(grep -o 'KERNEL=="[^"]*"' "$rules" | sed 's/KERNEL=="\(.*\)"/\1/' | tr '|' ' '); do
    grep -qx "DeviceAllow=/dev/$dev rw" "$unit" || fail "udev rule names /dev/$dev, the unit does not allow it"
done

[ "$failures" -eq 0 ] || exit 1
echo "unit: OK (exposure $score, User=$user, Group=$group)"
