#!/usr/bin/env bash
# The netbackd demo on a simulated Xen host (xensim): a driver domain running netbackd with a
# DPDK uplink into an "outside" namespace, two client domains whose netfronts bridge a tap
# device each in a namespace of their own. Pings client<->client and client<->outside, runs a
# short iperf3, prints per-vif rates, and removes everything it made on exit or Ctrl-C.
# WORKERS=2 runs two data-plane workers (one client on each: client<->client crosses workers)
# and adds a client1 -> client2 iperf3 across them.
# MTU=9000 runs it all at a jumbo MTU: the veth, the vifs' mtu key (so the guests' taps), and
# the uplink, then a net_pcap vdev (DPDK 22.11's net_af_packet takes at most 1500); it adds a
# client1 -> client2 iperf3 and checks that netbackd dropped nothing on the uplink.
# RESTARTS=N SIGKILLs and restarts netbackd N times under a 20 Hz ping client1 -> outside and
# prints the pings lost per restart (the outage a guest sees).
# Everything stays inside network namespaces this script creates.
set -euo pipefail

BUILD=${BUILD:-build}
SECONDS_IPERF=${SECONDS_IPERF:-5}
XENSIM=$(realpath "$BUILD/xensim/xensim")
NETBACKD=$(realpath "$BUILD/backend/service/netbackd")
P=nbdemo                       # prefix of every namespace and link this demo makes
NET=10.77.0                    # the demo subnet, inside the namespaces only
MTU=${MTU:-1500}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# 77: "skipped" to ctest, which runs this script as the e2e test.
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces); run: sudo make demo" >&2; exit 77; }
[ -x "$XENSIM" ] && [ -x "$NETBACKD" ] || die "build first (make build)"
if ! { ip netns add "$P-probe" && ip netns del "$P-probe"; } 2>/dev/null; then
    echo "demo: cannot create network namespaces here (a container without CAP_SYS_ADMIN?)" >&2
    exit 77
fi
for ns in "$P-nicdom" "$P-out" "$P-c1" "$P-c2"; do
    ip netns list | grep -qw "$ns" && die "namespace $ns exists: a demo is running or was killed; 'ip netns del $ns'"
done

WORK=$(mktemp -d /tmp/netbackd-demo.XXXXXX)
HOST=$WORK/host
PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    "$XENSIM" down --dir "$HOST" >/dev/null 2>&1
    for ns in "$P-nicdom" "$P-out" "$P-c1" "$P-c2"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # <seconds> <description> <command...>
    local t=$1 what=$2; shift 2
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "timed out waiting for $what (logs: KEEP=1 keeps $WORK)"
}

say "network namespaces: $P-nicdom (driver domain), $P-out (the wire), $P-c1, $P-c2 (guests)"
for ns in "$P-nicdom" "$P-out" "$P-c1" "$P-c2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "$P-up" type veth peer name "$P-wire"
ip link set "$P-up" netns "$P-nicdom"
ip link set "$P-wire" netns "$P-out"
ip -n "$P-nicdom" link set "$P-up" mtu "$MTU" up
ip -n "$P-out" link set "$P-wire" mtu "$MTU"
ip -n "$P-out" addr add "$NET.1/24" dev "$P-wire"
ip -n "$P-out" link set "$P-wire" up
# A veth hands AF_PACKET readers TCP/UDP frames whose checksum it left to "hardware"; the
# outside end computes them itself so the uplink sees real wire frames.
ip netns exec "$P-out" ethtool -K "$P-wire" tx off >/dev/null

say "simulated Xen host in $HOST"
"$XENSIM" up --dir "$HOST"
"$XENSIM" domain create nicdom --dir "$HOST" --domid 1
"$XENSIM" domain create client1 --dir "$HOST" --domid 11
"$XENSIM" domain create client2 --dir "$HOST" --domid 12
"$XENSIM" domain list --dir "$HOST"

say "netbackd in the driver domain, uplink = DPDK net_af_packet on $P-up"
mkdir -p "$WORK/clients"
# WORKERS=N runs N data-plane workers (the af_packet uplink then gets N queue pairs).
WORKERS=${WORKERS:-1}
CORES="" QPAIRS=""
if [ "$WORKERS" -gt 1 ]; then
    CORES="cores = [$(seq -s, 0 $((WORKERS - 1)))]"
    QPAIRS=",qpairs=$WORKERS"
fi
VDEV="net_af_packet0,iface=$P-up$QPAIRS" PORT_MTU=""
if [ "$MTU" != 1500 ]; then
    [ "$WORKERS" = 1 ] || die "MTU=$MTU runs with one worker (net_pcap has one queue pair)"
    VDEV="net_pcap0,iface=$P-up" PORT_MTU="mtu = $MTU"
fi
sed -e "s|@HOST@|$HOST|" -e "s|@VDEV@|$VDEV|" -e "s|@PORT_MTU@|$PORT_MTU|" -e "s|@PREFIX@|$P-$$|" -e "s|@CORES@|$CORES|" \
    "$(dirname "$0")/netbackd.toml.in" > "$WORK/netbackd.toml"
cp "$(dirname "$0")"/clients/*.toml "$WORK/clients/"
ip netns exec "$P-nicdom" "$NETBACKD" run --config "$WORK/netbackd.toml" > "$WORK/netbackd.log" 2>&1 &
NB=$!
PIDS+=($NB)
wait_for 20 "netbackd to be ready" grep -q "netbackd ready" "$WORK/netbackd.log"
grep -E "uplink|data plane|ready" "$WORK/netbackd.log" | sed 's/^/  netbackd: /'

for i in 1 2; do
    mac=00:16:3e:4e:00:0$i
    say "client$i: xl network-attach (simulated), netfront in TAP mode in $P-c$i, MAC $mac"
    "$XENSIM" attach "client$i" --dir "$HOST" --backend nicdom --mac "$mac" --devid 0 --mtu "$MTU" >/dev/null
    "$XENSIM" netfront "client$i" --dir "$HOST" --devid 0 --tap eth0 --netns "$P-c$i" \
        > "$WORK/netfront$i.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 "client$i's eth0" ip -n "$P-c$i" link show eth0 up
    ip -n "$P-c$i" link show eth0 | grep -q "mtu $MTU " || die "client$i's eth0 did not take the vif's mtu $MTU"
    ip -n "$P-c$i" addr add "$NET.1$i/24" dev eth0
    wait_for 10 "vif 1$i.0 to connect" grep -q "vif 1$i.0.*[Cc]onnected" "$WORK/netbackd.log"
done
grep -E "vif 1[12]\.0" "$WORK/netbackd.log" | sed 's/^.*\] //; s/^/  netbackd: /' | head -20

ping_from() { # <ns> <dst> <label>
    # Full-sized, unfragmented: the MTU holds on every hop.
    if out=$(ip netns exec "$1" ping -c 3 -i 0.2 -W 2 -M do -s $((MTU - 28)) "$2" 2>&1); then
        echo "  $3: $(echo "$out" | grep -E 'packets transmitted|rtt')" | tr '\n' ' '; echo
    else
        echo "$out"; die "$3 failed"
    fi
}
say "ping"
ping_from "$P-c1" "$NET.12" "client1 -> client2 (stays inside netbackd)"
ping_from "$P-c2" "$NET.11" "client2 -> client1"
ping_from "$P-c1" "$NET.1" "client1 -> outside (through the DPDK uplink)"
ping_from "$P-c2" "$NET.1" "client2 -> outside"

RESTARTS=${RESTARTS:-0}
if [ "$RESTARTS" -gt 0 ]; then
    say "restart outage: SIGKILL + restart of netbackd, $RESTARTS times, under a 20 Hz ping client1 -> outside"
    ip netns exec "$P-c1" ping -i 0.05 -W 1 "$NET.1" > "$WORK/restart-ping.txt" 2>&1 &
    PING=$!
    sleep 2
    for r in $(seq "$RESTARTS"); do
        kill -9 "$NB"; wait "$NB" 2>/dev/null || true
        ip netns exec "$P-nicdom" "$NETBACKD" run --config "$WORK/netbackd.toml" > "$WORK/netbackd-$r.log" 2>&1 &
        NB=$!
        PIDS+=($NB)
        wait_for 20 "netbackd restart $r to be ready" grep -q "netbackd ready" "$WORK/netbackd-$r.log"
        sleep 3
    done
    kill -INT "$PING"; wait "$PING" || true
    python3 - "$WORK/restart-ping.txt" "$RESTARTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", text).groups())
rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", text)]
n = int(sys.argv[2])
# A dead backend loses nothing the guest queued on its ring: the pings wait there and are
# answered late. Each restart is a run of slow replies; its outage is the longest wait in it.
waits, run = [], 0.0
for t in rtts + [0.0]:
    if t > 200:
        run = max(run, t)
    elif run:
        waits.append(run)
        run = 0.0
print(f"  {sent} pings at 50 ms, {sent - got} lost over {n} restart(s); longest wait per restart: "
      f"{', '.join(f'{t:.0f}' for t in waits)} ms")
PY
fi

counters() { # <ns>: "bytes packets" through the guest's eth0, both directions
    ip -n "$1" -s -j link show eth0 | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]; print(s["tx"]["bytes"]+s["rx"]["bytes"], s["tx"]["packets"]+s["rx"]["packets"])'
}
rates() { # one line of per-vif rates over about a second, as each guest's eth0 counts them
    local t1 t2 line="" b1_1 p1_1 b1_2 p1_2 b2 p2
    t1=$(date +%s.%N); read -r b1_1 p1_1 < <(counters "$P-c1"); read -r b1_2 p1_2 < <(counters "$P-c2")
    sleep 1
    t2=$(date +%s.%N)
    for i in 1 2; do
        read -r b2 p2 < <(counters "$P-c$i")
        local b1_var=b1_$i p1_var=p1_$i
        line+=$(awk -v a="${!b1_var}" -v b="$b2" -v pa="${!p1_var}" -v pb="$p2" -v t1="$t1" -v t2="$t2" -v i="$i" \
            'BEGIN { printf "  vif 1%d.0: %8.1f Mbit/s %8.0f pkt/s", i, (b - a) * 8 / 1e6 / (t2 - t1), (pb - pa) / (t2 - t1) }')
    done
    echo "$line"
}

say "iperf3 client1 -> outside for ${SECONDS_IPERF}s, live per-vif rates (TX+RX as each guest sees it)"
ip netns exec "$P-out" iperf3 -s -1 > "$WORK/iperf3-server.log" 2>&1 &
PIDS+=($!)
wait_for 5 "the iperf3 server" ip netns exec "$P-out" sh -c "ss -ltn | grep -q 5201"
WIRECHECK_READY="$WORK/wirecheck.ready" ip netns exec "$P-out" python3 "$(dirname "$0")/wirecheck.py" \
    "$P-wire" 00:16:3e:4e:00:01 20000 "$((SECONDS_IPERF + 3))" "$MTU" > "$WORK/wirecheck.txt" 2>&1 &
WIRECHECK=$!
# On a loaded host python can take longer to start than iperf3 takes to run.
wait_for 60 "the wire capture" test -e "$WORK/wirecheck.ready"
ip netns exec "$P-c1" iperf3 -c "$NET.1" -t "$SECONDS_IPERF" --connect-timeout 3000 -J > "$WORK/iperf3.json" 2>&1 &
IPERF=$!
while kill -0 "$IPERF" 2>/dev/null; do rates; done
wait "$IPERF" || { cat "$WORK/iperf3.json"; die "iperf3 failed"; }
iperf_summary() { # <json>
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["end"]
print(f"  iperf3: sent {r['sum_sent']['bytes']/1e6:.1f} MB at {r['sum_sent']['bits_per_second']/1e6:.1f} Mbit/s, "
      f"received {r['sum_received']['bits_per_second']/1e6:.1f} Mbit/s, {r['sum_sent'].get('retransmits', 0)} retransmits")
PY
}
iperf_summary "$WORK/iperf3.json"

wait "$WIRECHECK" || { cat "$WORK/wirecheck.txt"; die "frames on the wire are not what client1 sent"; }
sed 's/^/  /' "$WORK/wirecheck.txt"

if [ "$MTU" != 1500 ] || [ "$WORKERS" -gt 1 ]; then
    say "iperf3 client1 -> client2 for ${SECONDS_IPERF}s at MTU $MTU, $WORKERS worker(s) (switched inside netbackd)"
    ip netns exec "$P-c2" iperf3 -s -1 > "$WORK/iperf3-c2-server.log" 2>&1 &
    PIDS+=($!)
    wait_for 5 "client2's iperf3 server" ip netns exec "$P-c2" sh -c "ss -ltn | grep -q 5201"
    ip netns exec "$P-c1" iperf3 -c "$NET.12" -t "$SECONDS_IPERF" --connect-timeout 3000 -J \
        > "$WORK/iperf3-c2.json" 2>&1 || { cat "$WORK/iperf3-c2.json"; die "iperf3 client1 -> client2 failed"; }
    iperf_summary "$WORK/iperf3-c2.json"
fi

say "netbackd's view: netbackd stats"
"$NETBACKD" stats --file-prefix "$P-$$" | tee "$WORK/stats.txt" | sed 's/^/  /'
for vif in "vif 11.0" "vif 12.0"; do
    grep -q "^$vif  *running" "$WORK/stats.txt" || die "netbackd stats does not show $vif running"
done
# Every frame the guests sent to the uplink went out (the jumbo GSO bug dropped them here).
"$NETBACKD" stats --file-prefix "$P-$$" --json > "$WORK/stats.json"
python3 - "$WORK/stats.json" <<'PY' || die "netbackd dropped frames on the uplink"
import json, sys
s = json.load(open(sys.argv[1]))
def find(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("uplink_tx", "uplink_tx_dropped"):
                yield k, v
            else:
                yield from find(v)
    elif isinstance(o, list):
        for v in o:
            yield from find(v)
got = {}
for k, v in find(s):
    got[k] = got.get(k, 0) + v
print(f"  uplink: {got.get('uplink_tx', 0)} frames sent, {got.get('uplink_tx_dropped', 0)} dropped")
sys.exit(0 if got.get("uplink_tx", 0) > 0 and got.get("uplink_tx_dropped", 0) == 0 else 1)
PY
grep -E "\] \[(warning|error)\]" "$WORK/netbackd.log" | sed 's/^/  netbackd log: /' | head -10 || true
echo "  (full logs: KEEP=1 make demo keeps $WORK)"
say "demo passed; cleaning up"
