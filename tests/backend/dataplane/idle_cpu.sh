#!/usr/bin/env bash
# Idle CPU of netbackd (issue 5): a real `netbackd run` on a simulated host, with a DPDK uplink
# (net_tap, in a private network namespace) and two connected, idle vifs, must use less than
# 2% of one core over 10 s, counted as utime+stime from /proc/<pid>/stat. Also prints how the
# workers slept (telemetry /netbackd/workers). Exit 77 (skipped) without root or namespaces.
# Env: BUILD (build dir), IDLE_SECONDS (10), IDLE_LIMIT_PERCENT (2), WORKERS (unset: default).
set -euo pipefail

BUILD=${BUILD:-build}
SECONDS_IDLE=${IDLE_SECONDS:-10}
LIMIT=${IDLE_LIMIT_PERCENT:-2}

[ "$(id -u)" = 0 ] || { echo "idle_cpu: needs root (network namespace, tap)" >&2; exit 77; }
if [ -z "${NB_IDLE_IN_NS:-}" ]; then
    # Everything below runs in a network namespace of its own: the tap and DPDK see nothing else.
    unshare --net true 2>/dev/null || { echo "idle_cpu: cannot create a network namespace" >&2; exit 77; }
    [ -r /dev/net/tun ] || { echo "idle_cpu: no /dev/net/tun" >&2; exit 77; }
    NB_IDLE_IN_NS=1 exec unshare --net bash "$0" "$@"
fi

XENSIM=$(realpath "$BUILD/xensim/xensim")
NETBACKD=$(realpath "$BUILD/backend/service/netbackd")
WORK=$(mktemp -d /tmp/netbackd-idle.XXXXXX)
HOST=$WORK/host
PREFIX=nbidle-$$
PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    "$XENSIM" down --dir "$HOST" >/dev/null 2>&1
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
die() { echo "idle_cpu: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }
wait_for() { # <seconds> <what> <command...>
    local t=$1 what=$2; shift 2
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "timed out waiting for $what"
}

ip link set lo up
# No IPv6 autoconfiguration chatter on the tap: it would be wire traffic, not idleness.
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true

"$XENSIM" up --dir "$HOST"
"$XENSIM" domain create nicdom --dir "$HOST" --domid 1
"$XENSIM" domain create client1 --dir "$HOST" --domid 11
"$XENSIM" domain create client2 --dir "$HOST" --domid 12

mkdir -p "$WORK/clients"
cores=""
[ -n "${WORKERS:-}" ] && cores="cores = [$(seq -s, 0 $((WORKERS - 1)))]"
cat > "$WORK/netbackd.toml" <<TOML
[service]
platform = "sim"
log_level = "info"
clients_dir = "clients"
[sim]
dir = "$HOST"
domid = 1
[dpdk]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "$PREFIX", "--log-level", "*:error"]
[[dpdk.ports]]
name = "uplink0"
vdev = "net_tap0,iface=nbidle0"
[workers]
polling = "adaptive"
$cores
TOML
"$NETBACKD" run --config "$WORK/netbackd.toml" > "$WORK/netbackd.log" 2>&1 &
NB=$!
PIDS+=($NB)
wait_for 30 "netbackd to be ready" grep -q "netbackd ready" "$WORK/netbackd.log"
ip link set nbidle0 up

for i in 1 2; do
    "$XENSIM" attach "client$i" --dir "$HOST" --backend nicdom --mac "00:16:3e:1d:00:0$i" --devid 0 >/dev/null
    "$XENSIM" netfront "client$i" --dir "$HOST" --devid 0 --sink > "$WORK/netfront$i.log" 2>&1 &
    PIDS+=($!)
    wait_for 20 "vif 1$i.0 to connect" grep -q "vif 1$i.0.*[Cc]onnected" "$WORK/netbackd.log"
done
grep -E "uplink0|data plane" "$WORK/netbackd.log" | sed 's/^.*\] //; s/^/  netbackd: /'

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NB/stat"; }
sleep 1 # let the connects settle
t0=$(cpu_ticks)
sleep "$SECONDS_IDLE"
t1=$(cpu_ticks)
kill -0 "$NB" 2>/dev/null || die "netbackd died"
hz=$(getconf CLK_TCK)
pct=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
echo "idle_cpu: netbackd used ${pct}% of a core over ${SECONDS_IDLE} s ($((t1 - t0)) ticks at ${hz}/s; limit ${LIMIT}%)"
python3 - "$PREFIX" <<'PY' || true
import json, socket, sys
path = f"/var/run/dpdk/{sys.argv[1]}/dpdk_telemetry.v2"
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
s.recv(4096)
s.send(b"/netbackd/workers")
for name, w in json.loads(s.recv(65536))["/netbackd/workers"].items():
    print(f"idle_cpu: {name}: {w['vifs']} vifs, rx_interrupt_sleep={w['rx_interrupt_sleep']}, sleeps {w['sleeps']}, "
          f"woken by: event {w['wakeups_event']}, rx interrupt {w['wakeups_rx_intr']}, timer {w['wakeups_timer']}, "
          f"peer/control {w['wakeups_peer']}")
PY
awk -v p="$pct" -v l="$LIMIT" 'BEGIN { exit !(p < l) }' || die "idle CPU ${pct}% is not below ${LIMIT}%"
