#!/bin/sh
# The lab's scenarios, run by dom0 in one boot. Each prints one line the host parses:
#   LAB-RESULT <n> <name> PASS|FAIL|SKIP <detail>
# Guests are driven through their console agents (init/agent.sh). dom0 is also the outside
# host: its NIC wire0 (10.0.0.1) shares QEMU's hub with the NIC passed to the driver domain
# (run.sh), so every client frame to 10.0.0.1 crosses netbackd, that NIC and the wire.
CL=/var/log/xen/console
t() { echo "LAB-T $(cut -d' ' -f1 /proc/uptime) $*"; }
result() { echo "LAB-RESULT $1 $2 $3 $4"; t "scenario $1 $3"; }
now() { cut -d' ' -f1 /proc/uptime; }

waitlog() { # file pattern seconds
  local i
  i=0
  while [ $i -lt $(($3 * 4)) ]; do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.25; i=$((i + 1))
  done
  return 1
}

# --- console agents
agent_tty() { xenstore-read "/local/domain/$(xl domid "$1")/console/tty"; }
# Drains the pty so a chatty guest cannot fill it; xenconsoled logs everything anyway.
agent_open() {
  tty=$(agent_tty "$1") || return 1
  cat "$tty" >/dev/null 2>&1 &
  eval "DRAIN_$1=$!"
}
# Command ids live in a file: most calls run in $(...) subshells, where a shell variable's
# increment would be lost and an id reused, matching a stale ACK.
echo 0 >/run/lab-seq
send() { # domain command ; sets CMD_ID
  CMD_ID=$(($(cat /run/lab-seq) + 1)); echo $CMD_ID >/run/lab-seq
  printf 'CMD %s %s\n' "$CMD_ID" "$2" >"$(agent_tty "$1")"
}
wait_ack() { # domain id seconds ; prints the command's output, returns its rc
  waitlog "$CL/guest-$1.log" "^ACK $2 rc=" "$3" || { echo "(no answer from $1 to command $2 in $3 s)"; return 124; }
  sed -n "s/^OUT $2 //p" "$CL/guest-$1.log" | tr -d '\r'
  rc=$(sed -n "s/^ACK $2 rc=\([0-9]*\).*/\1/p" "$CL/guest-$1.log" | tr -d '\r' | head -1)
  return "${rc:-1}"
}
run_in() { # domain seconds command
  send "$1" "$3"; wait_ack "$1" "$CMD_ID" "$2"
}

# --- xenstore views
DRV=; be() { echo "/local/domain/$DRV/backend/vif/$(xl domid "$1")/$2"; }
fe() { echo "/local/domain/$(xl domid "$1")/device/vif/$2"; }
rd() { xenstore-read "$1" 2>/dev/null; }
wait_key() { # path value seconds
  local i
  i=0
  while [ $i -lt $(($3 * 4)) ]; do
    [ "$(rd "$1")" = "$2" ] && return 0
    sleep 0.25; i=$((i + 1))
  done
  return 1
}

start_client() { # name
  t "xl create $1"
  out=$(xl create "/etc/xen/$1.cfg" 2>&1); rc=$?
  [ $rc = 0 ] || { echo "xl create $1 rc=$rc:"; echo "$out"; xl list; xl info | grep -i mem; return 1; }
  waitlog "$CL/guest-$1.log" CLIENT-READY 120 || { echo "$1 never reached CLIENT-READY"; return 1; }
  t "$1 ready"
  agent_open "$1"
}
diagnose() { # client: counters on both sides of a failed transfer
  echo "--- $1 /proc/net/dev"; run_in "$1" 20 "cat /proc/net/dev; ps"
  echo "--- netdrv"; run_in netdrv 30 "netbackd stats; cat /proc/net/dev; ps; nb_log 30"
}
dump_vif() { xenstore-ls -fp "/local/domain/$DRV/backend/vif" 2>&1 | head -60; }

wanted() { case "$SCEN" in *"$1"*) return 0;; esac; return 1; }
SCEN=$(sed -n 's/.*lab_scenarios=\([0-9a-z]*\).*/\1/p' /proc/cmdline); [ -n "$SCEN" ] || SCEN=123456ab780
UPLINK=$(sed -n 's/.*lab_uplink=\([a-z_]*\).*/\1/p' /proc/cmdline); [ -n "$UPLINK" ] || UPLINK=af_xdp
[ "$UPLINK" = af_xdp ] || sed -i "s/^extra = \"\(.*\)\"/extra = \"\\1 lab_uplink=$UPLINK\"/" /etc/xen/netdrv.cfg
ALL="1 2 3 4 5 6 0 a b 7 8"
fail_all() { for n in $ALL; do wanted $n && result $n - FAIL "$1"; done; }

# ================================================================== the driver domain's NIC
# What an operator does in dom0 first: hide the NIC from dom0's own drivers (pciback).
NICBDF=0000:00:05.0
t "pci-assignable-add $NICBDF"
modprobe xen-pciback
if ! xl pci-assignable-add $NICBDF >/tmp/pciback.log 2>&1; then
  cat /tmp/pciback.log; fail_all "xl pci-assignable-add $NICBDF failed: $(tail -1 /tmp/pciback.log)"; exit 0
fi
PCIBACK=$(basename "$(readlink /sys/bus/pci/devices/$NICBDF/driver)")

# ================================================================== the driver domain
t "xl create netdrv"
if ! xl create /etc/xen/netdrv.cfg; then
  fail_all "driver domain did not start (xl create)"; exit 0
fi
if ! waitlog $CL/guest-netdrv.log 'DRV-READY\|DRV-FAILED' 180 || grep -q DRV-FAILED $CL/guest-netdrv.log; then
  echo "----- netdrv console"; cat $CL/guest-netdrv.log
  fail_all "driver domain not ready (netbackd did not start): $(grep -a 'DRV-NIC\|DRV-IFACE\|error' $CL/guest-netdrv.log | tr -d '\r' | tr '\n' ' ' | cut -c1-300)"; exit 0
fi
DRV=$(xl domid netdrv)
agent_open netdrv
t "driver domain $DRV ready"

# ================================================================== 1 attach + ping
S1=FAIL
if start_client client1; then
  C1=$(xl domid client1)
  d=""
  wait_key "$(be client1 0)/state" 4 30 || d="$d backend-state=$(rd "$(be client1 0)/state")"
  [ "$(rd "$(be client1 0)/hotplug-status")" = connected ] || d="$d hotplug-status=$(rd "$(be client1 0)/hotplug-status")"
  out=$(run_in client1 60 "ping -c 3 -W 3 10.0.0.1" 2>&1) || d="$d ping-failed"
  if [ -z "$d" ]; then S1=PASS; result 1 attach-ping PASS "d$C1 vif0 state 4 hotplug-status=connected, 3/3 pings to the outside host 10.0.0.1"
  else result 1 attach-ping FAIL "$d"; echo "$out"; dump_vif; fi
else
  result 1 attach-ping FAIL "client1 did not come up"
fi

# Opt-in (NETBACKD_LAB_IDLE): what an idle driver domain costs. Without RX interrupts (af_xdp,
# af_packet) netbackd polls its uplink on a timer backing off to 8 ms.
if grep -q lab_idle /proc/cmdline; then
  cpu() { xl list | awk -v n="$1" '$1 == n {print $6}'; }
  a=$(cpu netdrv); b=$(cpu Domain-0); c=$(cpu client1); sleep 20
  t "idle 20 s: netdrv $a -> $(cpu netdrv), dom0 $b -> $(cpu Domain-0), client1 $c -> $(cpu client1)"
fi
# ================================================================== 3 client <-> client, not on the uplink
if wanted 3 && [ $S1 = PASS ]; then
  if start_client client2; then
    run_in client2 30 "ping -c 1 -W 3 10.0.0.11" >/dev/null   # ARP, which floods legitimately
    before=$(run_in netdrv 60 uplink_tx | tail -1)
    out=$(run_in client2 60 "ping -c 20 -i 0.2 -W 3 10.0.0.11" 2>&1); prc=$?
    after=$(run_in netdrv 60 uplink_tx | tail -1)
    case "$before$after" in *[!0-9]*|"") leak="unknown ($before/$after)";; *) leak=$((after - before));; esac
    # Leaked unicast would be 40 frames (20 at least, one way); the guests' own broadcast and
    # multicast (ARP refreshes, IPv6 neighbour/router solicitations) flood legitimately: 0-6 seen.
    if [ $prc = 0 ] && [ "$leak" -lt 20 ] 2>/dev/null; then result 3 client-to-client PASS "20/20 pings client2->client1; the NIC sent $leak frames to the wire"
    else result 3 client-to-client FAIL "ping rc=$prc, the NIC sent $leak frames to the wire during 40"; echo "$out" | tail -3; fi
  else result 3 client-to-client FAIL "client2 did not come up"; fi
elif wanted 3; then result 3 client-to-client SKIP "needs scenario 1"; fi

# ================================================================== 4 two vCPUs: 2 queues, split channels
if wanted 4; then
  if start_client client3; then
    F=$(fe client3 0); d=""
    wait_key "$(be client3 0)/state" 4 30 || d="$d backend-state=$(rd "$(be client3 0)/state")"
    q=$(rd "$F/multi-queue-num-queues")
    [ "$q" = 2 ] || d="$d multi-queue-num-queues=$q"
    for k in 0 1; do
      rd "$F/queue-$k/event-channel-tx" >/dev/null && rd "$F/queue-$k/event-channel-rx" >/dev/null ||
        d="$d queue-$k:no-split-channels"
    done
    out=$(run_in client3 60 "ping -c 3 -W 3 10.0.0.1" 2>&1) || d="$d ping-failed"
    if [ -z "$d" ]; then result 4 multiqueue-split PASS "2 queues, each with event-channel-tx/-rx; pings ok"
    else result 4 multiqueue-split FAIL "$d"; xenstore-ls -fp "$F" | head -40; fi
  else result 4 multiqueue-split FAIL "client3 did not come up"; fi
fi

# ================================================================== 2 network-attach/detach x5
# bounded SECONDS LOG command...: a command stuck in the kernel ignores timeout's signal, so
# wait for it from outside and show where it sleeps.
bounded() {
  local secs log pid ticks
  secs=$1; log=$2; shift 2
  "$@" >"$log" 2>&1 &
  pid=$!; ticks=0
  while kill -0 $pid 2>/dev/null; do
    ticks=$((ticks + 1))
    if [ $ticks -gt $((secs * 4)) ]; then
      echo "$* stuck after $secs s: state $(grep State /proc/$pid/status) wchan $(cat /proc/$pid/wchan)"
      cat /proc/$pid/stack 2>/dev/null; kill -9 $pid 2>/dev/null; return 124
    fi
    sleep 0.25
  done
  wait $pid
}
memfree() { run_in "$1" 20 "sed -n 's/^MemFree: *\\([0-9]*\\).*/\\1/p' /proc/meminfo" | tail -1; }
scenario2() {
if wanted 2 && [ $S1 = PASS ]; then
  d=""; round=1
  free0=$(memfree client1)
  while [ $round -le 5 ]; do
    bounded 60 /tmp/attach.log xl -vvv network-attach client1 backend=netdrv mac=00:16:3e:00:01:0$round ||
      { tail -30 /tmp/attach.log; d="round $round: network-attach failed ($(tail -1 /tmp/attach.log))"; break; }
    devid=$(timeout 20 xl network-list client1 | awk 'NR > 1 {print $1}' | sort -n | tail -1)
    [ "$devid" -gt 0 ] 2>/dev/null || { d="round $round: no new devid in network-list"; break; }
    wait_key "$(be client1 "$devid")/state" 4 30 || { d="round $round: backend vif$devid state $(rd "$(be client1 "$devid")/state")"; break; }
    bounded 60 /tmp/detach.log xl -vvv network-detach client1 "$devid" ||
      { tail -30 /tmp/detach.log; d="round $round: network-detach failed ($(tail -1 /tmp/detach.log))"; break; }
    if xenstore-read "$(be client1 "$devid")/state" >/dev/null 2>&1; then d="round $round: backend dir of vif$devid still there after detach"; break; fi
    round=$((round + 1))
  done
  free1=$(memfree client1)
  if [ -z "$d" ]; then result 2 attach-detach-x5 PASS "5 rounds: attach ok, backend Connected, detach ok, backend dir gone; client1 MemFree $free0 -> $free1 kB"
  else result 2 attach-detach-x5 FAIL "$d"; dump_vif; run_in netdrv 60 "nb_log 30"; fi
elif wanted 2; then result 2 attach-detach-x5 SKIP "needs scenario 1"; fi
}
scenario2



# ================================================================== 5 large TCP, SG + GSO
# Transfer $MB MiB each way between client1 and the outside host (dom0, 10.0.0.1): through
# netfront, netbackd, the passed-through NIC and the wire. Checksums must match.
# Sets RATES to "<tx MB/s> <rx MB/s>" on success (client-side wall clock, TCG: relative only).
MB=2
# A domain's /proc/net/snmp Tcp line: RetransSegs is field 13, InErrs 14, InCsumErrors 16.
tcp_line() {
  if [ "$1" = dom0 ]; then grep "^Tcp:" /proc/net/snmp | tail -1
  else run_in "$1" 20 'grep "^Tcp:" /proc/net/snmp | tail -1' | tail -1 | tr -d '\r'; fi
}
# wait_pid PID SECONDS: a background nc in dom0, bounded.
wait_pid() {
  local i
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt $(($2 * 4)) ] && { kill "$1" 2>/dev/null; return 124; }
    sleep 0.25
  done
  wait "$1"
}
tcp_delta() { # before after field
  echo "$1 $2" | awk -v f="$3" '{print $(f + 16) - $f}'
}
transfer() { # client ; sets XFER (detail) and RATES
  c=$1
  run_in "$c" 120 "dd if=/dev/urandom of=/tmp/blob bs=1M count=$MB 2>/dev/null; md5sum /tmp/blob | cut -d' ' -f1" >/tmp/sum || { XFER="no blob"; return 1; }
  sum=$(tail -1 /tmp/sum)
  # guest -> outside host (netfront TX: SG + GSO)
  c0=$(tcp_line "$c"); d0=$(tcp_line dom0)
  rm -f /tmp/rx /tmp/hold; mkfifo /tmp/hold
  # The held FIFO keeps nc's stdin open: it must not end the connection before the data is in.
  (exec 3<>/tmp/hold; exec nc -l -p 5001 <&3 >/tmp/rx) &
  npid=$!; sleep 1
  tx=$(run_in "$c" 240 's=$(cut -d" " -f1 /proc/uptime); nc 10.0.0.1 5001 </tmp/blob; e=$(cut -d" " -f1 /proc/uptime); echo "$s $e"' | tail -1) || { kill $npid 2>/dev/null; XFER="tx send failed"; return 1; }
  wait_pid $npid 240
  got=$(md5sum /tmp/rx | cut -d' ' -f1)
  c1=$(tcp_line "$c"); d1=$(tcp_line dom0)
  # Why a transfer is slow shows here: the sender's retransmits, the receiver's bad segments.
  TCPDIAG="tx: $c retransmitted $(tcp_delta "$c0" "$c1" 13) segments, dom0 TCP in-errors $(tcp_delta "$d0" "$d1" 14) csum-errors $(tcp_delta "$d0" "$d1" 16)"
  [ "$got" = "$sum" ] || { XFER="tx checksum $got != $sum; $TCPDIAG"; return 1; }
  # outside host -> guest (netback RX into netfront)
  dd if=/dev/urandom of=/tmp/tx bs=1M count=$MB 2>/dev/null
  want=$(md5sum /tmp/tx | cut -d' ' -f1)
  nc -l -p 5002 </tmp/tx &
  npid=$!; sleep 1
  rx=$(run_in "$c" 120 'mkfifo /tmp/hold 2>/dev/null; exec 3<>/tmp/hold; s=$(cut -d" " -f1 /proc/uptime); nc 10.0.0.1 5002 <&3 >/tmp/rx; e=$(cut -d" " -f1 /proc/uptime); echo "$(md5sum /tmp/rx | cut -d" " -f1) $s $e"' | tail -1) || { kill $npid 2>/dev/null; XFER="rx receive failed"; return 1; }
  wait_pid $npid 60
  [ "${rx%% *}" = "$want" ] || { XFER="rx checksum ${rx%% *} != $want"; return 1; }
  RATES=$(echo "$tx ${rx#* }" | awk -v mb=$MB '{printf "%.2f %.2f", mb / ($2 - $1), mb / ($4 - $3)}')
  XFER="$MB MiB each way, checksums match; tx $(echo $RATES | cut -d' ' -f1) MiB/s, rx $(echo $RATES | cut -d' ' -f2) MiB/s; $TCPDIAG"
}
NB_RATES=
if wanted 5 && [ $S1 = PASS ]; then
  F=$(fe client1 0); feats=""
  for k in feature-sg feature-gso-tcpv4 request-rx-copy; do [ "$(rd "$F/$k")" = 1 ] || feats="$feats $k=$(rd "$F/$k")"; done
  transfer client1 && NB_RATES=$RATES
  if [ -n "$NB_RATES" ] && [ -z "$feats" ]; then result 5 tcp-sg-gso PASS "$XFER; netfront feature-sg/gso-tcpv4=1"
  else result 5 tcp-sg-gso FAIL "$XFER$feats"; diagnose client1; fi
elif wanted 5; then result 5 tcp-sg-gso SKIP "needs scenario 1"; fi

# ================================================================== 8 the outside host, through the NIC
# Scenario A of the driver-domain story, on top of 1-5: the NIC hidden from dom0 by pciback,
# driven in the PV driver domain by its kernel driver through pcifront, netbackd's uplink the
# af_xdp (or af_packet) PMD on its interface; the outside host (dom0's wire0) sees each guest's
# frames with the guest's own MAC as source, and netbackd counts them on its uplink.
if wanted 8 && [ $S1 = PASS ]; then
  d=""; seen=""
  [ "$PCIBACK" = pciback ] || d="$d dom0's driver for $NICBDF: $PCIBACK"
  nic=$(grep -a 'DRV-NIC\|DRV-IFACE' "$CL/guest-netdrv.log" | tr -d '\r' | sed 's/^DRV-T [0-9.]* //; s/^DRV-//' | tr '\n' ' ')
  case "$nic" in *"IFACE eth0 driver e1000"*) ;; *) d="$d driver domain NIC: $nic";; esac
  pmd=$(run_in netdrv 30 "grep -q 'uplink uplink0: port' /var/log/netbackd.log && sed -n 's/^vdev = //p' \$(cat /run/netbackd.conf)" | tail -1)
  [ -n "$pmd" ] || d="$d no uplink port in netbackd's log"
  # The capture: frames on dom0's NIC from the guests, while every running guest pings it.
  tcpdump -Z root -i wire0 -p -e -n -l 'ether src 00:16:3e:00:00:11 or ether src 00:16:3e:00:00:12 or ether src 00:16:3e:00:00:13' >/tmp/wire.cap 2>/tmp/tcpdump.log &
  tpid=$!; sleep 2
  for c in client1 client2 client3; do
    xl domid $c >/dev/null 2>&1 && run_in $c 30 "ping -c 2 -W 3 10.0.0.1" >/dev/null
  done
  sleep 1; kill $tpid 2>/dev/null; wait $tpid 2>/dev/null
  for c in client1 client2 client3; do
    xl domid $c >/dev/null 2>&1 || continue
    n=${c#client}; mac=00:16:3e:00:00:1$n; ip=10.0.0.1$n
    frames=$(grep -c "^[0-9:.]* $mac > 52:54:00:0a:00:01" /tmp/wire.cap)
    neigh=$(ip neigh show $ip dev wire0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}')
    [ "$frames" -gt 0 ] && [ "$neigh" = "$mac" ] || d="$d $c: $frames frames from $mac on wire0, dom0 neighbour $ip=$neigh"
    seen="$seen $c:$mac($frames frames, neigh $ip)"
  done
  # The service unit runs `netbackd doctor` before netbackd (configs/systemd): it must pass
  # with this setup. What it says about a `pci =` uplink in this PV domain is only logged.
  doc=$(run_in netdrv 60 "netbackd doctor --config \$(cat /run/netbackd.conf)"); drc=$?
  echo "$doc" | sed 's/^/doctor (af_xdp): /'
  [ $drc = 0 ] || d="$d doctor failed: $(echo "$doc" | grep -A1 '^FAIL' | tr '\n' ' ')"
  run_in netdrv 60 "sed -e 's/^vdev = .*/pci = \"0000:00:00.0\"/' -e 's/\"--no-pci\", //' \$(cat /run/netbackd.conf) >/tmp/pci.toml; netbackd doctor --config /tmp/pci.toml" |
    sed 's/^/doctor (pci = in a PV domain): /'
  up=$(run_in netdrv 30 nb_uplink | tail -1)
  set -- $up
  [ "${1:-0}" -gt 0 ] 2>/dev/null && [ "${2:-0}" -gt 0 ] 2>/dev/null || d="$d netbackd stats uplink rx/tx: ${up:-none}"
  if [ -z "$d" ]; then
    result 8 outside-host PASS "dom0 $NICBDF on pciback; netdrv: $nic; uplink $pmd; wire0 saw$seen; netbackd stats uplink rx $1 tx $2; doctor passes"
  else
    result 8 outside-host FAIL "$d"; head -5 /tmp/tcpdump.log; head -20 /tmp/wire.cap
  fi
elif wanted 8; then result 8 outside-host SKIP "needs scenario 1"; fi

# ================================================================== 6 netbackd killed + restarted
# Echo replies client1's kernel has received (Icmp InEchoReps), whether or not a ping counted them.
echo_replies() { run_in client1 20 "awk '/^Icmp:/ && \$2 ~ /^[0-9]/ {print \$11}' /proc/net/snmp" | tail -1 | tr -d '\r'; }
if wanted 6 && [ $S1 = PASS ]; then
  d=""
  fstate0=$(rd "$(fe client1 0)/state")
  # The outage a guest sees: client1 pings the outside host every 0.5 s across a SIGKILL and an
  # immediate restart (nb_restart, as Restart= would). The pings sent meanwhile wait on the
  # ring and go out together after the restart, and their replies come back together: busybox
  # ping's raw socket has a 14 KiB receive buffer (SO_RCVBUF 7280), about three of netfront's
  # page-backed skbs, so the guest's kernel drops the rest of such a burst after counting it.
  # What ping misses is therefore not all lost: the guest kernel's count of echo replies (Icmp
  # InEchoReps) is read around the ping too, and dom0 captures the wire, to tell where each
  # ping it missed went.
  reps0=$(echo_replies)
  run_in client1 20 "ping -i 0.5 -W 2 10.0.0.1 >/tmp/rping.log 2>&1 & echo \$! >/tmp/rping.pid" >/dev/null
  tcpdump -Z root -i wire0 -p -n -l 'icmp and host 10.0.0.11' >/tmp/rcap.log 2>/tmp/rcap.err &
  tpid=$!
  sleep 3
  t "scenario 6: SIGKILL + restart under a 0.5 s ping"
  rs=$(run_in netdrv 90 nb_restart) || d="restart failed: $rs"
  echo "$rs" | while IFS= read -r l; do t "scenario 6: netdrv: $(echo "$l" | tr -d '\r')"; done
  sleep 6
  pings=$(run_in client1 20 'kill -INT $(cat /tmp/rping.pid); sleep 1; cat /tmp/rping.log')
  kill $tpid 2>/dev/null; wait $tpid 2>/dev/null
  reps1=$(echo_replies); reps=$(( ${reps1:-0} - ${reps0:-0} ))
  outage=$(echo "$pings" | tr -d '\r' | awk -v reps=$reps '
    / packets transmitted/ { sent = $1; got = $4 }
    /time=/ { sub(/.*time=/, ""); if ($1 + 0 > worst) worst = $1 + 0 }
    END { lost = sent - got; w = lost * 500; if (worst > w) w = worst
          printf "outage ~%.1f s: %d of %d pings at 0.5 s missed by ping, longest reply %.0f ms; the guest kernel received %d replies", w / 1000, lost, sent, worst, reps }')
  # Each missed ping by where it went: its request never on the wire (lost in the driver domain
  # on the way out), no reply from dom0, or a reply on the wire that ping did not count.
  missed=$(echo "$pings" | tr -d '\r' | awk '/seq=/ {s = $0; sub(/.*seq=/, "", s); got[s + 0] = 1}
    / packets transmitted/ {sent = $1} END {for (i = 0; i < sent; i++) if (!(i in got)) printf "%d ", i}')
  out=""; unanswered=""; back=""
  for q in $missed; do
    if ! grep -q "echo request, id [0-9]*, seq $q," /tmp/rcap.log; then out="$out $q"
    elif grep -q "echo reply, id [0-9]*, seq $q," /tmp/rcap.log; then back="$back $q"
    else unanswered="$unanswered $q"; fi
  done
  outage="$outage; missed seq: request not on the wire${out:- none}, no reply${unanswered:- none}, replied${back:- none}"
  t "scenario 6: $outage"
  ok=0; i=0
  while [ $i -lt 10 ] && [ -z "$d" ]; do
    run_in client1 30 "ping -c 2 -W 2 10.0.0.1" >/dev/null && { ok=1; break; }
    i=$((i + 1))
  done
  [ $ok = 1 ] || d="$d no ping after restart"
  [ "$(rd "$(fe client1 0)/state")" = "$fstate0" ] || d="$d frontend state $fstate0 -> $(rd "$(fe client1 0)/state")"
  [ "$(rd "$(be client1 0)/state")" = 4 ] || d="$d backend state $(rd "$(be client1 0)/state")"
  if [ -z "$d" ]; then result 6 restart PASS "SIGKILL + restart; $outage; ready $(echo "$rs" | sed -n 's/.*ready \([0-9.]*\) s later.*/\1/p') s after the kill; frontend untouched"
  else result 6 restart FAIL "$d"; run_in client1 20 "ip neigh; cat /proc/net/dev"; run_in netdrv 60 "ip link show eth0; netbackd stats; nb_log 30"; dump_vif; fi
elif wanted 6; then result 6 restart SKIP "needs scenario 1"; fi

# ================================================================== 0 two workers, two vCPUs
# Issue 14 item 1 on real Xen: the driver domain gets its second vCPU, netbackd restarts with
# two workers (one per vCPU; the uplink af_packet with two queue pairs, as each worker sends on
# its own TX queue), client1 and client2 land on different workers, and both run the
# md5-checked transfer both ways at the same time: four TCP streams through both workers' grant
# copies at once.
if wanted 0 && [ $S1 = PASS ] && xl domid client2 >/dev/null 2>&1; then
  d=""; MB0=$(sed -n 's/.*lab_mb0=\([0-9]*\).*/\1/p' /proc/cmdline); [ -n "$MB0" ] || MB0=2
  t "scenario 0: vcpu-set"
  xl vcpu-set netdrv 2 || d="xl vcpu-set netdrv 2 failed"
  ncpu=$(run_in netdrv 60 'i=0; while [ $i -lt 40 ] && [ ! -e /sys/devices/system/cpu/cpu1/online ]; do sleep 0.25; i=$((i + 1)); done; echo 1 >/sys/devices/system/cpu/cpu1/online 2>/dev/null; grep -c ^processor /proc/cpuinfo' | tail -1 | tr -d '\r')
  [ "$ncpu" = 2 ] || d="$d driver domain has ${ncpu:-?} vCPUs"
  # e1000 hands the stack GRO-merged TCP segments, and the af_packet PMD copies only the first
  # 2 KiB frame of each (tp_snaplen): the guests got truncated frames and RX lived on
  # retransmits. A GRO limit below one full segment keeps every frame whole (no ethtool here).
  out=$(run_in netdrv 60 '/usr/sbin/ip link set dev eth0 gro_max_size 1500; nb_stop; c=$(cat /run/netbackd.conf); cp $c /tmp/one.toml; sed -e "s/^vdev = .*/vdev = \"net_af_packet0,iface=eth0,qpairs=2\"/" $c >/tmp/two.toml; echo "cores = [0, 1]" >>/tmp/two.toml; echo /tmp/two.toml >/run/netbackd.conf; nb_start') ||
    d="$d netbackd with two workers did not start: $(echo "$out" | tail -5 | tr '\n' ' ')"
  gro=$(run_in netdrv 30 "/usr/sbin/ip -d link show dev eth0 | grep -o 'gro_max_size [0-9]*'" | tail -1 | tr -d '\r')
  t "scenario 0: netbackd restarted with two workers (${ncpu:-?} vCPUs, eth0 $gro)"
  # Re-adopted vifs are spread by load: find each client's worker.
  wk() { # client -> worker of its vif 0
    echo "$STATS" | awk -v k="vif$(xl domid $1)_0" '$0 ~ "\"" k "\": \\{" {f = 1} f && /"worker":/ {gsub(/[^0-9]/, "", $2); print $2; exit}'
  }
  i=0; w1=""; w2=""
  while [ -z "$d" ] && [ $i -lt 30 ]; do
    STATS=$(run_in netdrv 30 'netbackd stats --json')
    w1=$(wk client1); w2=$(wk client2)
    [ -n "$w1" ] && [ -n "$w2" ] && break
    sleep 1; i=$((i + 1))
  done
  [ -z "$d" ] && { [ -n "$w1" ] && [ -n "$w2" ] && [ "$w1" != "$w2" ] || d="$d client1 on worker '$w1', client2 on worker '$w2'"; }
  for c in client1 client2; do
    [ -z "$d" ] || break
    run_in $c 60 "ping -c 2 -W 3 10.0.0.1" >/dev/null || d="$d $c: no ping with two workers"
  done
  t "scenario 0: workers $w1 and $w2, pings done"
  if [ -z "$d" ]; then
    # Blobs both ways, then everything at once: per client, dom0 receives on 610n and sends
    # on 620n while the client sends and receives.
    for n in 1 2; do
      c=client$n
      sum=$(run_in $c 120 "dd if=/dev/urandom of=/tmp/blob bs=1M count=$MB0 2>/dev/null; md5sum /tmp/blob | cut -d' ' -f1" | tail -1)
      eval "SUM_$n=$sum"
      dd if=/dev/urandom of=/tmp/tx$n bs=1M count=$MB0 2>/dev/null
      eval "WANT_$n=$(md5sum /tmp/tx$n | cut -d' ' -f1)"
      rm -f /tmp/rx$n /tmp/hold$n; mkfifo /tmp/hold$n
      (exec 3<>/tmp/hold$n; exec nc -l -p 610$n <&3 >/tmp/rx$n) &
      eval "LPID_$n=$!"
      nc -l -p 620$n </tmp/tx$n &
      eval "SPID_$n=$!"
    done
    sleep 1
    # Where the CPU goes while the four streams run (xl list: each domain's CPU seconds), and
    # how the workers idle (poll rounds, sleeps, timer wake-ups).
    cpus() { xl list | awk '$1 ~ /^(Domain-0|netdrv|client1|client2)$/ {printf "%s %s ", $1, $6}'; }
    wsum() { run_in netdrv 30 'netbackd stats --json' | grep -E '"(iterations|sleeps|wakeups_timer|wakeups_event|wakeups_peer)"' | tr -d ' ,"' | tr '\n' ' '; }
    t "scenario 0: transfers start ($MB0 MiB x4); cpu $(cpus); workers $(wsum)"
    # After the counters: under load a console command takes far longer than its nominal wait.
    x0=$(now)
    for n in 1 2; do
      send client$n "mkfifo /tmp/hold 2>/dev/null; (nc 10.0.0.1 610$n </tmp/blob) & a=\$!; exec 3<>/tmp/hold; nc 10.0.0.1 620$n <&3 >/tmp/rx; wait \$a; md5sum /tmp/rx | cut -d' ' -f1"
      eval "CID_$n=$CMD_ID"
    done
    ( while sleep 60; do t "scenario 0 progress: cpu $(cpus)"; done ) &
    MON=$!
    for n in 1 2; do
      got=$(wait_ack client$n "$(eval echo \$CID_$n)" 300 | tail -1 | tr -d '\r') || d="$d client$n: transfer command failed"
      wait_pid "$(eval echo \$LPID_$n)" 120 || d="$d client$n: dom0 never got the whole blob"
      wait_pid "$(eval echo \$SPID_$n)" 60
      [ "$got" = "$(eval echo \$WANT_$n)" ] || d="$d client$n rx md5 $got != $(eval echo \$WANT_$n)"
      rx=$(md5sum /tmp/rx$n | cut -d' ' -f1)
      [ "$rx" = "$(eval echo \$SUM_$n)" ] || d="$d client$n tx md5 $rx != $(eval echo \$SUM_$n)"
      t "scenario 0: client$n done"
    done
    kill $MON 2>/dev/null
    x1=$(now)
    XS0="$(echo "$x0 $x1" | awk '{print $2 - $1}') s"
    t "scenario 0: transfers end after $XS0; cpu $(cpus); workers $(wsum)"
  fi
  # Truncated frames reach a guest's IP layer and are counted there (IpExt InTruncatedPkts).
  trunc=""
  for c in client1 client2; do
    trunc="$trunc $c $(run_in $c 20 'grep "^IpExt:" /proc/net/netstat | tail -1' | tail -1 | awk '{print $3}')"
  done
  wl=$(run_in netdrv 30 'netbackd stats' | grep '^worker' | awk '{printf "%s vifs %s uplink rx %s tx %s sleeps %s; ", $1, $2, $4, $5, $6}')
  if [ -z "$d" ]; then result 0 two-workers PASS "2 vCPUs; client1 on worker $w1, client2 on worker $w2; $MB0 MiB each way for both clients at once in $XS0, checksums match; eth0 $gro, truncated frames:$trunc; $wl"
  else result 0 two-workers FAIL "$d; eth0 $gro, truncated frames:$trunc; $wl"; run_in netdrv 60 "netbackd stats; nb_log 30"; fi
  # What follows (7, 9) stops this netbackd or the whole domain: no second restart (an EAL start
  # costs 10 s quiet, minutes under load); eth0 gets its GRO back for netback's bridge.
  run_in netdrv 60 '/usr/sbin/ip link set dev eth0 gro_max_size 65536; echo /tmp/one.toml >/run/netbackd.conf' >/dev/null
elif wanted 0; then result 0 two-workers SKIP "needs scenarios 1 and 3 (client1, client2)"; fi

# a and b run after 0: 0 needs client1 and client2 on different workers, which placement by
# frontend domid gives only while client1 keeps its first domid; a restored client1 is a new
# domain, served here by two workers. After 0 the uplink is af_packet, which needs eth0's GRO
# limited (see 0) while they run; 7 wants it back.
if { wanted a || wanted b; } && wanted 0; then run_in netdrv 60 '/usr/sbin/ip link set dev eth0 gro_max_size 1500' >/dev/null; fi
# ================================================================== a, b: guests that sleep and move
# Issue 19: `xl save` + `xl restore` (a) and a live migration to this same host (b) of client1
# while netbackd runs and dom0 pings it. Either way the guest comes back as a new domain: a new
# domid, a new backend dir, its netfront resumed through Initialising. Traffic must resume
# (pings, the md5-checked transfer) and netbackd must hold nothing of the old instance: the old
# backend dir gone, no vif of the old domid in `netbackd stats --json`, and its resources line
# (vifs, mapped grant pages, bound channels) back to what it was before.
# `netbackd stats`' resources as "<vifs> <mapped pages> <bound channels>".
nb_res() {
  run_in netdrv 30 "netbackd stats | sed -n 's/^resources: \\([0-9]*\\) vif(s), \\([0-9]*\\) mapped grant page(s), \\([0-9]*\\) bound channel(s).*/\\1 \\2 \\3/p'" | tail -1 | tr -d '\r'
}
# Backend dirs under netdrv's backend/vif: the vifs the toolstack has.
live_vifs() {
  local n f
  n=0
  for f in $(xenstore-list "/local/domain/$DRV/backend/vif" 2>/dev/null); do
    n=$((n + $(xenstore-list "/local/domain/$DRV/backend/vif/$f" 2>/dev/null | wc -l)))
  done
  echo $n
}
# After the move: old domid OLD, resources RES0 before it; appends to d what netbackd still holds.
check_released() { # old-domid res0
  local i res
  if xenstore-read "/local/domain/$DRV/backend/vif/$1/0/state" >/dev/null 2>&1; then d="$d old backend dir vif/$1 still there"; fi
  i=0; res=""
  while [ $i -lt 60 ]; do
    res=$(nb_res)
    [ "$res" = "$2" ] && break
    sleep 1; i=$((i + 1))
  done
  [ "$res" = "$2" ] || d="$d netbackd resources '$res' != '$2' before"
  [ "${res%% *}" = "$(live_vifs)" ] || d="$d netbackd has ${res%% *} vifs, xenstore $(live_vifs) backend dirs"
  run_in netdrv 30 "netbackd stats --json" | grep -q "\"vif$1_" && d="$d netbackd stats still lists vif$1_*"
  RES_AFTER=$res
}
# dom0's ping (every 0.5 s) to client1 across the move, from its replies' sequence numbers:
# "<replies> of <last seq + 1>, longest gap <n> (x 0.5 s)".
ping_counts() {
  sed -n 's/.*seq=\([0-9]*\).*/\1/p' "$1" | awk 'NR == 1 {p = $1} {if ($1 - p > g) g = $1 - p; p = $1; n++} END {printf "%d replies of %d, longest gap %d", n, p + 1, g}'
}
# The guest's console log follows its domain's name at the time xenconsoled first saw it: an
# incoming migration is "client1--incoming" then. Point client1's log at the live one.
follow_console() { # name
  local f
  f="$CL/guest-$1--incoming.log"
  if [ -e "$f" ] && [ ! -L "$CL/guest-$1.log" ]; then
    mv "$CL/guest-$1.log" "$CL/guest-$1-before-migration.log"; ln -s "guest-$1--incoming.log" "$CL/guest-$1.log"
  fi
}
after_move() { # label old-domid res0 ; the common checks, sets d
  local new
  new=$(xl domid client1 2>/dev/null)
  [ -n "$new" ] && [ "$new" != "$2" ] || { d="$d client1 is d${new:-none} after $1 (was d$2)"; return; }
  follow_console client1
  agent_open client1
  wait_key "$(be client1 0)/state" 4 60 || d="$d new backend state $(rd "$(be client1 0)/state")"
  [ "$(rd "$(be client1 0)/hotplug-status")" = connected ] || d="$d hotplug-status=$(rd "$(be client1 0)/hotplug-status")"
  [ "$(rd "$(fe client1 0)/state")" = 4 ] || d="$d frontend state $(rd "$(fe client1 0)/state")"
  i=0; ok=0
  while [ $i -lt 10 ] && [ -z "$d" ]; do
    run_in client1 30 "ping -c 2 -W 2 10.0.0.1" >/dev/null && { ok=1; break; }
    i=$((i + 1))
  done
  [ $ok = 1 ] || d="$d no ping from client1 after $1"
  check_released "$2" "$3"
  [ -z "$d" ] && { transfer client1 || d="$d transfer: $XFER"; }
  NEWID=$new
}
if wanted a && [ $S1 = PASS ]; then
  d=""; old=$(xl domid client1); res0=$(nb_res); n0=$(live_vifs)
  ping -i 0.5 10.0.0.11 >/tmp/ping-a.log 2>&1 &
  ppid=$!; sleep 2
  t "scenario a: xl save client1 (d$old), netbackd resources $res0, $n0 backend dirs"
  # dom0's / is the initramfs' tmpfs, half its 768 MB: the ~200 MB image only just fits (one
  # run failed with ENOSPC at 201 MB). The transfers' blobs (5, 0) go first; 7 makes its own.
  rm -f /tmp/client1.save /tmp/tx /tmp/rx /tmp/tx[0-9] /tmp/rx[0-9]
  bounded 300 /tmp/save.log xl save client1 /tmp/client1.save || d="xl save failed: $(tail -3 /tmp/save.log | tr '\n' ' ')"
  t "scenario a: saved ($(ls -l /tmp/client1.save 2>/dev/null | awk '{print $5}') bytes)"
  # The saved domain is gone: so must its vif be, in xenstore and in netbackd.
  [ -z "$d" ] && { wait_gone=0; while [ $wait_gone -lt 120 ] && xenstore-read "/local/domain/$DRV/backend/vif/$old/0/state" >/dev/null 2>&1; do sleep 0.25; wait_gone=$((wait_gone + 1)); done; }
  mid=$(nb_res)
  [ -z "$d" ] && { bounded 300 /tmp/restore.log xl restore /tmp/client1.save || d="xl restore failed: $(tail -3 /tmp/restore.log | tr '\n' ' ')"; }
  t "scenario a: restored; netbackd resources while saved: $mid"
  [ -z "$d" ] && after_move restore "$old" "$res0"
  kill -INT $ppid 2>/dev/null; wait $ppid 2>/dev/null
  pc=$(ping_counts /tmp/ping-a.log); rm -f /tmp/client1.save
  if [ -z "$d" ]; then result a save-restore PASS "client1 d$old -> d$NEWID; while saved netbackd held '$mid' (vifs pages channels), after '$RES_AFTER' = before; old backend dir gone; dom0 pings sent/received across it: $pc; $XFER"
  else result a save-restore FAIL "$d; dom0 pings $pc"; tail -20 /tmp/save.log; tail -20 /tmp/restore.log; run_in netdrv 60 "netbackd stats; nb_log 30"; dump_vif; fi
elif wanted a; then result a save-restore SKIP "needs scenario 1"; fi

# Live migration to this host: `xl migrate -s ""` runs the receiver as given, here `xl
# migrate-receive` in this dom0 over a pipe, what ssh would run on the other end (no sshd in the
# lab's busybox dom0). The same stream, the same two domains side by side (client1--incoming,
# client1--migratedaway) as `xl migrate client1 localhost`.
if wanted b && [ $S1 = PASS ]; then
  d=""; ctype=PV
  # A PV guest cannot migrate live on this Xen (no PV log-dirty, below); a PVH guest can, on
  # the log-dirty mode of hardware-assisted paging. Where Xen has HAP (run.sh gives QEMU's CPU
  # nested paging when b is selected), client1 boots again as PVH first: the same kernel,
  # image, vif and netfront.
  if xl info | grep -q '^virt_caps.* hap'; then
    pv=$(xl domid client1)
    t "scenario b: client1 d$pv booted again as a PVH guest"
    bounded 60 /tmp/destroy.log xl destroy client1
    [ -e "$CL/guest-client1.log" ] && mv "$CL/guest-client1.log" "$CL/guest-client1-pv.log"
    i=0; while [ $i -lt 120 ] && xenstore-read "/local/domain/$DRV/backend/vif/$pv/0/state" >/dev/null 2>&1; do sleep 0.25; i=$((i + 1)); done
    if bounded 300 /tmp/createb.log xl create /etc/xen/client1-pvh.cfg && waitlog "$CL/guest-client1.log" CLIENT-READY 180 &&
       agent_open client1 && wait_key "$(be client1 0)/state" 4 60; then
      ctype=PVH; t "scenario b: PVH client1 d$(xl domid client1) ready"
    else d="PVH client1 did not come up: $(grep -a -i 'error\|fail' /tmp/createb.log | tail -3 | tr '\n' ' ')"; fi
    # The destroyed PV instance's vif must have left netbackd before the count below.
    i=0; while [ $i -lt 60 ] && [ "$(nb_res | cut -d' ' -f1)" != "$(live_vifs)" ]; do sleep 1; i=$((i + 1)); done
  fi
  old=$(xl domid client1); res0=$(nb_res)
  ping -i 0.5 10.0.0.11 >/tmp/ping-b.log 2>&1 &
  ppid=$!; sleep 2
  t "scenario b: xl migrate $ctype client1 (d$old) to this host, netbackd resources $res0"
  if [ -z "$d" ] && ! bounded 400 /tmp/migrate.log xl migrate -s "" client1 "xl migrate-receive -e"; then
    d="xl migrate failed: $(grep -a -i 'error\|fail' /tmp/migrate.log | tail -4 | tr '\n' ' ')"
  fi
  t "scenario b: migrate done"
  [ -z "$d" ] && after_move migration "$old" "$res0"
  kill -INT $ppid 2>/dev/null; wait $ppid 2>/dev/null
  pc=$(ping_counts /tmp/ping-b.log)
  # Debian's xen-hypervisor-4.17 is built without CONFIG_SHADOW_PAGING; PV log-dirty then comes
  # from xen/arch/x86/mm/shadow/none.c, which answers EOPNOTSUPP: no PV guest migrates live on it.
  if [ -n "$d" ] && grep -aq 'Failed to enable logdirty: 95' /tmp/migrate.log; then
    result b migrate-local SKIP "this Xen has no PV log-dirty (built without CONFIG_SHADOW_PAGING: libxc 'Failed to enable logdirty: 95'); xl migrate aborted before netbackd was involved; the guest kept its vif, dom0 pings $pc"
  elif [ -z "$d" ]; then result b migrate-local PASS "$ctype client1 d$old -> d$NEWID by xl migrate (pipe to xl migrate-receive); netbackd resources '$RES_AFTER' = before; old backend dir gone; dom0 pings sent/received across it: $pc; $XFER"
  else result b migrate-local FAIL "$d; dom0 pings $pc"; tail -30 /tmp/migrate.log; xl list; run_in netdrv 60 "netbackd stats; nb_log 40"; dump_vif; fi
elif wanted b; then result b migrate-local SKIP "needs scenario 1"; fi

if { wanted a || wanted b; } && wanted 0; then run_in netdrv 60 '/usr/sbin/ip link set dev eth0 gro_max_size 65536' >/dev/null; fi

# ================================================================== 7 baseline: in-kernel xen-netback
# Issue 17 section 1: netbackd against Linux's own xen-netback in the same driver domain over
# the same passed-through NIC (netback behind a Linux bridge over eth0, what the usual driver
# domain does), in interleaved pairs. The order is ABBA (netbackd, netback | netback, netbackd |
# netbackd, netback): each pair is still side by side in time, with the fewest switches. A switch
# stops one backend, starts the other (netbackd with the one-worker config, or xen-netback and
# the bridge) and boots client1 anew. Each leg: the md5-checked TCP transfer both ways
# (`transfer`) and 64-byte UDP packets per second both ways (udpperf: the sender sends as fast
# as its socket takes them for UDP_SECS s, the receiver counts from its first to its last
# datagram). Prints every leg and the median over pairs of each netbackd/netback ratio; asserts
# no rate (TCG). lab_pairs=N on dom0's command line (NETBACKD_LAB_PAIRS) changes the pair count.
UDP_SECS=2
PAIRS=$(sed -n 's/.*lab_pairs=\([0-9]*\).*/\1/p' /proc/cmdline); [ -n "$PAIRS" ] || PAIRS=3
# pps from udpperf's "recv <count> <seconds> <pps>", empty unless some datagram arrived.
pps_of() { echo "$1" | awk '$1 == "recv" && $2 > 0 {print $4}'; }
# 64 B UDP both ways between client1 (10.0.0.11) and the outside host: sets UDPR "<tx> <rx>"
# (pps; tx = guest -> outside) and UDPX (each way's sent and received counts).
udp_pps() {
  local tx rx stx srx
  udpperf recv 5003 30 >/tmp/utx 2>&1 &
  upid=$!; sleep 1
  stx=$(run_in client1 60 "/usr/bin/udpperf send 10.0.0.1 5003 18 $UDP_SECS" | tail -1 | tr -d '\r')
  wait_pid $upid 60
  tx=$(tail -1 /tmp/utx)
  [ -n "$(pps_of "$tx")" ] || { UDPX="guest -> outside: $stx; receiver: $tx"; return 1; }
  # The guest's receiver runs in the background, so that dom0 can send meanwhile.
  run_in client1 20 "rm -f /tmp/urx; /usr/bin/udpperf recv 5004 30 >/tmp/urx 2>&1 &" >/dev/null
  sleep 1
  srx=$(udpperf send 10.0.0.11 5004 18 $UDP_SECS 2>&1)
  rx=$(run_in client1 60 'i=0; while [ ! -s /tmp/urx ] && [ $i -lt 200 ]; do sleep 0.2; i=$((i + 1)); done; cat /tmp/urx' | tail -1 | tr -d '\r')
  [ -n "$(pps_of "$rx")" ] || { UDPX="outside -> guest: $srx; receiver: $rx"; return 1; }
  UDPR="$(pps_of "$tx") $(pps_of "$rx")"
  UDPX="guest->outside sent ${stx#sent }, got $(echo "$tx" | awk '{print $2 " in " $3}') s; outside->guest sent ${srx#sent }, got $(echo "$rx" | awk '{print $2 " in " $3}') s"
}
# One leg on the backend in place: sets LEG "<tcp tx> <tcp rx> <udp tx> <udp rx>" (MiB/s, pps).
leg() { # label
  local t0
  t0=$(now)
  transfer client1 || { LEGX="TCP: $XFER"; return 1; }
  udp_pps || { LEGX="UDP 64 B: $UDPX"; return 1; }
  LEG="$RATES $UDPR"
  t "scenario 7: leg $1: TCP tx/rx $RATES MiB/s; UDP 64 B tx/rx $UDPR pps; $UDPX; $(echo "$t0 $(now)" | awk '{printf "%.0f", $2 - $1}') s"
}
# Before a switch: client1 gone, its console log kept aside (xenconsoled appends to a
# same-named guest's log, and CLIENT-READY must come from the new one).
drop_client1() { # leg
  bounded 60 /tmp/destroy.log xl destroy client1
  [ -e "$CL/guest-client1.log" ] && mv "$CL/guest-client1.log" "$CL/guest-client1-leg$1.log"
}
on_netbackd() { # leg ; sets SWX on failure
  drop_client1 "$1"
  # netback's device goes when libxl removes the destroyed guest's backend dir: until then the
  # module is busy. It must be gone before netbackd starts, or both would claim the next vif.
  run_in netdrv 180 "ip link set br0 down 2>/dev/null; brctl delbr br0 2>/dev/null; i=0; while grep -q '^xen_netback ' /proc/modules && ! rmmod xen-netback 2>/dev/null && [ \$i -lt 60 ]; do sleep 0.5; i=\$((i + 1)); done; ! grep -q '^xen_netback ' /proc/modules || { echo 'xen-netback still loaded'; exit 1; }; nb_stop && nb_start" >/tmp/sw7.log ||
    { SWX="netbackd start: $(tail -3 /tmp/sw7.log | tr '\n' ' ')"; return 1; }
  start_client client1 || { SWX="client1 on netbackd did not come up"; return 1; }
  wait_key "$(be client1 0)/state" 4 60 && run_in client1 60 "ping -c 3 -W 3 10.0.0.1" >/dev/null ||
    { SWX="client1 on netbackd: backend state $(rd "$(be client1 0)/state"), no ping"; return 1; }
}
on_netback() { # leg ; sets SWX on failure
  local i C B
  drop_client1 "$1"
  run_in netdrv 60 "nb_stop && modprobe xen-netback && modprobe bridge && brctl addbr br0 && brctl addif br0 eth0 && ip link set br0 up && echo ok" >/tmp/sw7.log ||
    { SWX="netbackd stop, xen-netback or the bridge failed: $(tail -3 /tmp/sw7.log | tr '\n' ' ')"; return 1; }
  # What xl devd + the vif script would do in the driver domain, done from dom0 instead: netback
  # connects only once hotplug-status says so. libxl writes an empty hotplug-status with the
  # backend dir: keep saying "connected" until netback has read it and gone to Connected.
  xl create /etc/xen/client1.cfg >/tmp/create7.log 2>&1 &
  i=0; C=""
  while [ $i -lt 480 ]; do
    C=$(xl domid client1 2>/dev/null)
    if [ -n "$C" ]; then
      B="/local/domain/$DRV/backend/vif/$C/0"
      [ "$(rd "$B/state")" = 4 ] && break
      [ -n "$(rd "$B/state")" ] && [ "$(rd "$B/hotplug-status")" != connected ] && xenstore-write "$B/hotplug-status" connected
    fi
    sleep 0.25; i=$((i + 1))
  done
  [ -n "$C" ] || { SWX="client1 not created: $(tail -2 /tmp/create7.log)"; return 1; }
  waitlog "$CL/guest-client1.log" CLIENT-READY 120 && agent_open client1 &&
    wait_key "/local/domain/$DRV/backend/vif/$C/0/state" 4 60 &&
    run_in netdrv 30 "brctl addif br0 vif$C.0 && ip link set vif$C.0 up" >/dev/null &&
    run_in client1 60 "ping -c 3 -W 3 10.0.0.1" >/dev/null ||
    { SWX="no connection through netback (client1 d$C, backend state $(rd "/local/domain/$DRV/backend/vif/$C/0/state"))"; return 1; }
}
# "<pair 1>;<pair 2>;..." of both backends -> the medians of the four ratios and each
# backend's figures per pair.
summary7() {
  echo "$1|$2" | awk -F'|' '{
    np = split($1, A, ";") - 1; split($2, B, ";")
    for (m = 1; m <= 4; m++) {
      la = ""; lb = ""
      for (p = 1; p <= np; p++) {
        split(A[p], x, " "); split(B[p], y, " ")
        r[p] = y[m] > 0 ? x[m] / y[m] : 0
        la = la (p > 1 ? "/" : "") x[m]; lb = lb (p > 1 ? "/" : "") y[m]
      }
      for (i = 2; i <= np; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
      med[m] = np % 2 ? r[(np + 1) / 2] : (r[np / 2] + r[np / 2 + 1]) / 2
      fa[m] = la; fb[m] = lb
    }
    printf "netbackd/netback median ratio: TCP tx %.2f rx %.2f, UDP 64 B pps tx %.2f rx %.2f; ", med[1], med[2], med[3], med[4]
    printf "netbackd TCP tx %s rx %s MiB/s, pps tx %s rx %s; ", fa[1], fa[2], fa[3], fa[4]
    printf "netback TCP tx %s rx %s MiB/s, pps tx %s rx %s", fb[1], fb[2], fb[3], fb[4]
  }'
}
if wanted 7 && [ $S1 = PASS ]; then
  d=""; t7=$(now); NBL=""; KBL=""; cur=""; n=0; p=1
  for c in client2 client3; do bounded 60 /tmp/destroy.log xl destroy $c; done
  vcpus=$(run_in netdrv 30 'grep -c ^processor /proc/cpuinfo' | tail -1 | tr -d '\r')
  order=""
  while [ $p -le "$PAIRS" ]; do
    if [ $((p % 2)) = 1 ]; then order="$order nb kb"; else order="$order kb nb"; fi
    p=$((p + 1))
  done
  for b in $order; do
    n=$((n + 1))
    if [ "$b" != "$cur" ]; then
      t "scenario 7: switch to $b for leg $n"
      if [ $b = nb ]; then on_netbackd $n; else on_netback $n; fi || { d="leg $n ($b): $SWX"; break; }
      cur=$b
    fi
    leg "$n $b" || { d="leg $n ($b): $LEGX"; break; }
    if [ $b = nb ]; then NBL="$NBL$LEG;"; else KBL="$KBL$LEG;"; fi
  done
  took=$(echo "$t7 $(now)" | awk '{printf "%.0f", $2 - $1}')
  if [ -z "$d" ]; then
    result 7 baseline-netback PASS "$PAIRS pairs (ABBA), xen-netback + bridge over the same NIC, netdrv ${vcpus:-?} vCPU(s), UDP ${UDP_SECS} s each way; $(summary7 "$NBL" "$KBL"); took $took s"
  else
    result 7 baseline-netback FAIL "$d; after $took s"
    run_in netdrv 30 "ip link; ls /sys/class/net/br0/brif; lsmod; dmesg | tail -20; nb_log 20"
    xenstore-ls -fp "/local/domain/$DRV/backend/vif" | head -30
  fi
elif wanted 7; then result 7 baseline-netback SKIP "needs scenario 1"; fi

# ================================================================== 9 HVM driver domain, DPDK's own e1000 PMD
# Scenario B (opt-in, run.sh gives dom0 the device model only when 9 is selected): the same NIC
# passed to an HVM driver domain instead, bound to uio_pci_generic there and driven by DPDK's
# net_e1000_em with hugepages and IOVA as PA; a client pings the outside host through it and
# the md5-checked transfer runs both ways. Reports how far it gets.
if wanted 9; then
  d=""; HVM=nicdom-hvm
  virt=$(xl info | sed -n 's/^virt_caps *: //p')
  for c in client1 client2 client3; do bounded 60 /tmp/destroy.log xl destroy $c; done
  # The NIC goes back to pciback when its domain is destroyed.
  xl domid netdrv >/dev/null 2>&1 && bounded 60 /tmp/destroy.log xl destroy netdrv
  for f in "$CL"/guest-client*.log; do mv "$f" "${f%.log}-pv.log"; done
  # Diagnosis (NETBACKD_LAB_HVM_KERNEL): the HVM domain with the PV setup instead (kernel
  # e1000 driver, af_xdp), to tell the native PMD's problems from the HVM domain's.
  grep -q lab_hvm_kernel /proc/cmdline && sed -i 's/^cmdline = "\(.*\)"/cmdline = "\1 lab_hvm_kernel"/' /etc/xen/$HVM.cfg
  t "xl create $HVM"
  if bounded 300 /tmp/create9.log xl -vvv create /etc/xen/$HVM.cfg; then
    t "$HVM created"
    waitlog "$CL/guest-$HVM.log" 'DRV-READY\|DRV-FAILED' 600 || d="no DRV-READY from $HVM in 600 s"
  else
    d="xl create $HVM failed: $(grep -a 'error\|ERROR' /tmp/create9.log | tail -3 | tr '\n' ' ')"
  fi
  t "$HVM: ${d:-ready}"
  boot=$(grep -a 'DRV-' "$CL/guest-$HVM.log" 2>/dev/null | tr -d '\r' | tr '\n' ' ' | cut -c1-400)
  xfer=""
  if [ -z "$d" ] && ! grep -q DRV-FAILED "$CL/guest-$HVM.log"; then
    DRV=$(xl domid $HVM); agent_open $HVM
    up=$(run_in $HVM 60 "grep 'uplink uplink0: port' /var/log/netbackd.log | tail -1 | sed 's/.*\] //'" | tail -1)
    irq0=$(run_in $HVM 60 "grep -i 'uio\|e1000' /proc/interrupts" | tr -s ' ' | tr '\n' ' ')
    sed -e "s/backend=netdrv/backend=$HVM/" /etc/xen/client1.cfg >/etc/xen/client1-hvm.cfg
    t "xl create client1 (backend=$HVM)"
    if xl create /etc/xen/client1-hvm.cfg >/tmp/create9c.log 2>&1 && waitlog "$CL/guest-client1.log" CLIENT-READY 120 &&
       agent_open client1; then
      t "client1 ready"
      out=$(run_in client1 60 "ping -c 3 -W 3 10.0.0.1" 2>&1) || d="ping to the outside host failed ($(echo "$out" | tail -2 | tr '\n' ' '))"
      [ -z "$d" ] && { transfer client1 || d="transfer: $XFER"; }
      [ -z "$d" ] && xfer="ping ok; $XFER"
    else d="client1 with backend=$HVM did not come up: $(tail -2 /tmp/create9c.log | tr '\n' ' ')"; fi
  fi
  if [ -z "$d" ]; then result 9 hvm-native-pmd PASS "virt_caps: $virt; $boot; $up; $xfer"
  else
    result 9 hvm-native-pmd FAIL "virt_caps: $virt; $d; $boot; ${up:-}"
    grep -a 'libxl_dm\|error' /tmp/create9.log | head -60; tail -15 /tmp/create9.log; xl list
    echo "----- device model log"; cat /var/log/xen/qemu-dm-$HVM.log 2>&1 | tail -40
    echo "----- $HVM interrupts before the client: $irq0"
    # A crash: the domain's last RIP, named from dom0's kallsyms (the same kernel, no KASLR).
    xl dmesg | grep -a -A4 "Triple fault\|domain_crash" | grep -a "fault\|crash\|RIP" | tail -6
    for rip in $(xl dmesg | grep -a -A4 "Triple fault" | sed -n 's/.*RIP: *[0-9a-f]*:\[<\([0-9a-f]*\)>\].*/\1/p'); do
      echo "RIP $rip: $(awk -v r="$rip" '$1 <= r && $1 > best {best = $1; sym = $3} END {print sym, best}' /proc/kallsyms)"
    done
    # The NIC's command/status words as dom0 reads them from the device (INTx disable is command
    # bit 10 = 0x400, INTx pending is status bit 3 = 0x08), and Xen's view of the guest's IRQs.
    for i in 1 2 3; do echo "dom0 view of $NICBDF cmd/status: $(od -An -tx2 -j4 -N4 /sys/bus/pci/devices/$NICBDF/config)"; sleep 1; done
    xl debug-keys i; xl dmesg | grep -a "Guest interrupt\|d$DRV:" | tail -8
    # The domain's own view, once it answers again (a storm ends when its kernel gives up on the IRQ).
    xl domid $HVM >/dev/null 2>&1 && run_in $HVM 120 "nb_log 20; dmesg | grep -a -i 'irq\\|nobody' | tail -8; grep uio /proc/interrupts; echo guest view cmd/status: \$(od -An -tx2 -j4 -N4 /sys/bus/pci/devices/\$(cat /run/nic)/config)"
  fi
fi

xl list
xl domid netdrv >/dev/null 2>&1 && run_in netdrv 60 "nb_log 80" >/dev/null
xl domid nicdom-hvm >/dev/null 2>&1 && run_in nicdom-hvm 60 "nb_log 80" >/dev/null
t "scenarios done"
# The guests' consoles live only in this dom0: copy them to the serial log the host keeps.
for f in $CL/*.log; do echo "===== $f"; tr -d '\r' <"$f" | tail -150; done
