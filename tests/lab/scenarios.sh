#!/bin/sh
# The lab's scenarios, run by dom0 in one boot. Each prints one line the host parses:
#   LAB-RESULT <n> <name> PASS|FAIL|SKIP <detail>
# Guests are driven through their console agents (init/agent.sh); nothing here needs a
# network path into dom0.
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
  out=$(xl create "/etc/xen/$1.cfg" 2>&1); rc=$?
  [ $rc = 0 ] || { echo "xl create $1 rc=$rc:"; echo "$out"; xl list; xl info | grep -i mem; return 1; }
  waitlog "$CL/guest-$1.log" CLIENT-READY 120 || { echo "$1 never reached CLIENT-READY"; return 1; }
  agent_open "$1"
}
diagnose() { # client: counters on both sides of a failed transfer
  echo "--- $1 /proc/net/dev"; run_in "$1" 20 "cat /proc/net/dev; ps"
  echo "--- netdrv"; run_in netdrv 30 "netbackd stats; cat /proc/net/dev; ps; nb_log 30"
}
dump_vif() { xenstore-ls -fp "/local/domain/$DRV/backend/vif" 2>&1 | head -60; }

wanted() { case "$SCEN" in *"$1"*) return 0;; esac; return 1; }
SCEN=$(sed -n 's/.*lab_scenarios=\([0-9]*\).*/\1/p' /proc/cmdline); [ -n "$SCEN" ] || SCEN=1234567

# ================================================================== the driver domain
t "xl create netdrv"
if ! xl create /etc/xen/netdrv.cfg; then
  for n in 1 2 3 4 5 6 7; do result $n - FAIL "driver domain did not start (xl create)"; done; exit 0
fi
if ! waitlog $CL/guest-netdrv.log 'DRV-READY\|DRV-FAILED' 180 || grep -q DRV-FAILED $CL/guest-netdrv.log; then
  echo "----- netdrv console"; cat $CL/guest-netdrv.log
  for n in 1 2 3 4 5 6 7; do result $n - FAIL "driver domain not ready (netbackd did not start)"; done; exit 0
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
  if [ -z "$d" ]; then S1=PASS; result 1 attach-ping PASS "d$C1 vif0 state 4 hotplug-status=connected, 3/3 pings to uplink 10.0.0.1"
  else result 1 attach-ping FAIL "$d"; echo "$out"; dump_vif; fi
else
  result 1 attach-ping FAIL "client1 did not come up"
fi

# ================================================================== 3 client <-> client, not on the uplink
if wanted 3 && [ $S1 = PASS ]; then
  if start_client client2; then
    run_in client2 30 "ping -c 1 -W 3 10.0.0.11" >/dev/null   # ARP, which floods legitimately
    before=$(run_in netdrv 60 uplink_rx | tail -1)
    out=$(run_in client2 60 "ping -c 20 -i 0.2 -W 3 10.0.0.11" 2>&1); prc=$?
    after=$(run_in netdrv 60 uplink_rx | tail -1)
    case "$before$after" in *[!0-9]*|"") leak="unknown ($before/$after)";; *) leak=$((after - before));; esac
    # Leaked unicast would be 40 frames (20 at least, one way); the guests' own broadcast and
    # multicast (ARP refreshes, IPv6 neighbour/router solicitations) flood legitimately: 0-6 seen.
    if [ $prc = 0 ] && [ "$leak" -lt 20 ] 2>/dev/null; then result 3 client-to-client PASS "20/20 pings client2->client1; uplink saw $leak frames"
    else result 3 client-to-client FAIL "ping rc=$prc, uplink saw $leak frames during 40"; echo "$out" | tail -3; fi
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
# Transfer $MB MiB each way between client1 and the uplink address; checksums must match.
# Prints "<tx MB/s> <rx MB/s>" on success (client-side wall clock, TCG: relative only).
MB=2
# A domain's /proc/net/snmp Tcp line: RetransSegs is field 13, InErrs 14, InCsumErrors 16.
tcp_line() { run_in "$1" 20 'grep "^Tcp:" /proc/net/snmp | tail -1' | tail -1 | tr -d '\r'; }
tcp_delta() { # before after field
  echo "$1 $2" | awk -v f="$3" '{print $(f + 16) - $f}'
}
transfer() { # client ; sets XFER (detail) and RATES
  c=$1
  run_in "$c" 120 "dd if=/dev/urandom of=/tmp/blob bs=1M count=$MB 2>/dev/null; md5sum /tmp/blob | cut -d' ' -f1" >/tmp/sum || { XFER="no blob"; return 1; }
  sum=$(tail -1 /tmp/sum)
  # guest -> uplink (netfront TX: SG + GSO)
  c0=$(tcp_line "$c"); d0=$(tcp_line netdrv)
  send netdrv "rm -f /tmp/rx; mkfifo /tmp/hold 2>/dev/null; exec 3<>/tmp/hold; nc -l -p 5001 <&3 >/tmp/rx; md5sum /tmp/rx | cut -d' ' -f1"
  rid=$CMD_ID; sleep 1
  tx=$(run_in "$c" 240 's=$(cut -d" " -f1 /proc/uptime); nc 10.0.0.1 5001 </tmp/blob; e=$(cut -d" " -f1 /proc/uptime); echo "$s $e"' | tail -1) || { XFER="tx send failed"; return 1; }
  got=$(wait_ack netdrv $rid 240 | tail -1)
  c1=$(tcp_line "$c"); d1=$(tcp_line netdrv)
  # Why a transfer is slow shows here: the sender's retransmits, the receiver's bad segments.
  TCPDIAG="tx: $c retransmitted $(tcp_delta "$c0" "$c1" 13) segments, netdrv TCP in-errors $(tcp_delta "$d0" "$d1" 14) csum-errors $(tcp_delta "$d0" "$d1" 16)"
  [ "$got" = "$sum" ] || { XFER="tx checksum $got != $sum; $TCPDIAG"; return 1; }
  # uplink -> guest (netback RX into netfront)
  send netdrv "dd if=/dev/urandom of=/tmp/tx bs=1M count=$MB 2>/dev/null; md5sum /tmp/tx | cut -d' ' -f1; nc -l -p 5002 </tmp/tx"
  rid=$CMD_ID; sleep 3
  rx=$(run_in "$c" 120 'mkfifo /tmp/hold 2>/dev/null; exec 3<>/tmp/hold; s=$(cut -d" " -f1 /proc/uptime); nc 10.0.0.1 5002 <&3 >/tmp/rx; e=$(cut -d" " -f1 /proc/uptime); echo "$(md5sum /tmp/rx | cut -d" " -f1) $s $e"' | tail -1) || { XFER="rx receive failed"; return 1; }
  want=$(wait_ack netdrv $rid 60 | head -1)
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

# ================================================================== 6 netbackd killed + restarted
if wanted 6 && [ $S1 = PASS ]; then
  d=""
  fstate0=$(rd "$(fe client1 0)/state")
  run_in netdrv 60 nb_kill >/dev/null || d="kill failed"
  out=$(run_in netdrv 60 nb_start) || d="$d restart failed: $out"
  ok=0; i=0
  while [ $i -lt 10 ] && [ -z "$d" ]; do
    run_in client1 30 "ping -c 2 -W 2 10.0.0.1" >/dev/null && { ok=1; break; }
    i=$((i + 1))
  done
  [ $ok = 1 ] || d="$d no ping after restart"
  [ "$(rd "$(fe client1 0)/state")" = "$fstate0" ] || d="$d frontend state $fstate0 -> $(rd "$(fe client1 0)/state")"
  [ "$(rd "$(be client1 0)/state")" = 4 ] || d="$d backend state $(rd "$(be client1 0)/state")"
  if [ -z "$d" ]; then result 6 restart PASS "SIGKILL + restart; client1 pings again after $i retries, frontend untouched"
  else result 6 restart FAIL "$d"; run_in client1 20 "ip neigh; cat /proc/net/dev"; run_in netdrv 60 "ip link show dtap0; netbackd stats; nb_log 30"; dump_vif; fi
elif wanted 6; then result 6 restart SKIP "needs scenario 1"; fi

# ================================================================== 7 baseline: in-kernel xen-netback
if wanted 7 && [ -n "$NB_RATES" ]; then
  XFER=""; d=""
  for c in client1 client2 client3; do bounded 60 /tmp/destroy.log xl destroy $c; done
  run_in netdrv 60 "nb_kill; modprobe xen-netback && echo loaded" >/dev/null || d="xen-netback did not load"
  # What xl devd + the vif script would do in the driver domain, done from dom0 instead:
  # netback connects only once hotplug-status says so.
  # xenconsoled appends to a same-named guest's log: start the new client1 on a clean one.
  mv "$CL/guest-client1.log" "$CL/guest-client1-netbackd.log"
  xl create /etc/xen/client1.cfg >/tmp/create7.log 2>&1 &
  # libxl writes an empty hotplug-status with the backend dir: keep saying "connected" until
  # netback has read it and gone to Connected.
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
  [ -n "$C" ] || d="$d client1 not created: $(tail -2 /tmp/create7.log)"
  if [ -z "$d" ] && waitlog "$CL/guest-client1.log" CLIENT-READY 120 && agent_open client1 &&
     wait_key "/local/domain/$DRV/backend/vif/$C/0/state" 4 60 &&
     run_in netdrv 30 "ip addr add 10.0.0.1/24 dev vif$C.0 && ip link set vif$C.0 up" >/dev/null &&
     run_in client1 60 "ping -c 3 -W 3 10.0.0.1" >/dev/null && transfer client1; then
    ratio=$(echo "$NB_RATES $RATES" | awk '{printf "tx %.2f rx %.2f", $1 / $3, $2 / $4}')
    result 7 baseline-netback PASS "xen-netback: $XFER; netbackd/netback ratio $ratio"
  else
    result 7 baseline-netback FAIL "in-kernel netback path:$d ${XFER:-no connection (client1 d$C, backend state $(rd "/local/domain/$DRV/backend/vif/$C/0/state"))}"
    run_in netdrv 30 "ip link; dmesg | tail -20"
    xenstore-ls -fp "/local/domain/$DRV/backend/vif" | head -30
  fi
elif wanted 7; then result 7 baseline-netback SKIP "needs scenario 5's netbackd rates"; fi

# ================================================================== 9 PCI passthrough (opt-in)
# The stretch goal: QEMU's e1000 (0000:00:05.0 behind QEMU's VT-d, run.sh adds both only for
# this scenario) hidden from dom0 by xen-pciback, passed to the PV driver domain, driven there
# by DPDK's own PMD. Reports how far it gets; README "PCI passthrough" has the reasons.
if wanted 9; then
  d=""; up=""; BDF=0000:00:05.0
  virt=$(xl info | sed -n 's/^virt_caps *: //p')
  modprobe xen-pciback && xl pci-assignable-add $BDF >/tmp/pt.log 2>&1 || d="pci-assignable-add failed: $(tail -1 /tmp/pt.log)"
  for c in client1 client2 client3; do bounded 60 /tmp/destroy.log xl destroy $c; done
  bounded 60 /tmp/destroy.log xl destroy netdrv
  sed -e '/^pci/d' /etc/xen/netdrv.cfg >/etc/xen/netdrv-pt.cfg; echo "pci = ['$BDF']" >>/etc/xen/netdrv-pt.cfg
  mv "$CL/guest-netdrv.log" "$CL/guest-netdrv-1.log"
  if [ -z "$d" ] && bounded 120 /tmp/create9.log xl create /etc/xen/netdrv-pt.cfg &&
     waitlog "$CL/guest-netdrv.log" 'DRV-READY\|DRV-FAILED' 180 && agent_open netdrv; then
    run_in netdrv 30 true >/dev/null # the first command to a re-created domain can be lost
    seen=$(run_in netdrv 60 "modprobe xen-pcifront; sleep 5; cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device 2>/dev/null | tr '\n' ' '; echo")
    bound=$(run_in netdrv 30 "modprobe uio_pci_generic && echo 8086 100e >/sys/bus/pci/drivers/uio_pci_generic/new_id && sleep 1 && ls /dev/uio0")
    huge=$(run_in netdrv 30 "echo 16 >/proc/sys/vm/nr_hugepages; sed -n 's/^HugePages_Total: *//p' /proc/meminfo")
    # netbackd with the NIC as its uplink: as configured (no hugepages: IOVA as VA), then with
    # physical addresses asked for.
    for iova in "" ', "--iova-mode", "pa"'; do
      m=va; [ -n "$iova" ] && m=pa
      run_in netdrv 90 "nb_kill; sed -e 's/\"--no-pci\", //' -e 's/^vdev = .*/pci = \"0000:00:00.0\"/' -e 's/warning\"]/warning\"$iova]/' /etc/netbackd/netbackd.toml >/tmp/pt.toml; grep eal_args /tmp/pt.toml; timeout 30 netbackd run --config /tmp/pt.toml >/tmp/pt.log 2>&1; grep -q 'uplink uplink0: port' /tmp/pt.log && echo UPLINK-UP; grep -E 'EAL: |error' /tmp/pt.log | head -4" >/tmp/pt-out 2>&1
      grep -q UPLINK-UP /tmp/pt-out && up="$up $m"
      d="$d [IOVA $m: $(tr '\n' ' ' </tmp/pt-out | cut -c1-400)]"
    done
    st=FAIL; [ -n "$up" ] && st=PASS
    result 9 pci-passthrough $st "virt_caps: $virt; NIC in the driver domain: ${seen:-none}; uio: ${bound:-no}; HugePages_Total in the PV domain: ${huge:-?};$d"
  else
    result 9 pci-passthrough FAIL "driver domain with pci=['$BDF'] did not start:$d $(tail -3 /tmp/create9.log | tr '\n' ' ')"
  fi
fi

xl list
xl domid netdrv >/dev/null 2>&1 && run_in netdrv 60 "nb_log 80" >/dev/null
t "scenarios done"
# The guests' consoles live only in this dom0: copy them to the serial log the host keeps.
for f in $CL/*.log; do echo "===== $f"; tr -d '\r' <"$f" | tail -150; done
