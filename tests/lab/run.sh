#!/bin/bash
# The real-Xen lab: fetch inputs (cached), build the images, boot Xen 4.17 + dom0 under QEMU
# (TCG), let dom0 run the scenarios, print one row per scenario.
#   run.sh NETBACKD_DEB OUTDIR    (the .deb `make package` builds: the driver domain installs it)
# Environment:
#   NETBACKD_LAB_CACHE     fetch cache (default <repo>/.lab-cache)
#   NETBACKD_LAB_REQUIRE   scenarios that must PASS for exit 0 (default: all of 0-8)
#   NETBACKD_LAB_SCENARIOS scenarios to run (default 123456ab780; 9 is opt-in)
#   NETBACKD_LAB_UPLINK    af_xdp (default) or af_packet: the PMD over the driver domain's NIC
#   NETBACKD_LAB_TIMEOUT   seconds QEMU may run (default 600)
#   NETBACKD_LAB_TRACE     non-empty: dom0 runs the scenarios under sh -x
#   NETBACKD_LAB_HVM_KERNEL non-empty: scenario 9's HVM domain drives the NIC with its kernel
#                          driver and af_xdp, as the PV one does (tells HVM from native-PMD trouble)
#   NETBACKD_LAB_MB0       MiB each of scenario 0's four streams sends (default 2)
#   NETBACKD_LAB_PAIRS     interleaved netbackd/netback pairs scenario 7 measures (default 3)
#   NETBACKD_LAB_IDLE      non-empty: after scenario 1, report each domain's CPU seconds over
#                          20 idle seconds (what netbackd's timer polling costs under TCG)
# Exit: 0 every required scenario passed; 1 otherwise; 77 QEMU or the cache cannot be had.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NETBACKD=$1; OUT=$2
REQUIRE=${NETBACKD_LAB_REQUIRE:-123456ab780}
SCEN=${NETBACKD_LAB_SCENARIOS:-123456ab780}
UPLINK=${NETBACKD_LAB_UPLINK:-af_xdp}
TIMEOUT=${NETBACKD_LAB_TIMEOUT:-600}
export NETBACKD_LAB_CACHE=${NETBACKD_LAB_CACHE:-$here/../../.lab-cache}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
LOG=$OUT/serial.log
phase() { echo "lab: $1 $(( $(date +%s) - t0 )) s"; }

for tool in qemu-system-x86_64 busybox cpio; do
  command -v $tool >/dev/null || { echo "lab: SKIP, $tool is not installed (make lab installs it)"; exit 77; }
done
[[ -f $NETBACKD && $NETBACKD == *.deb ]] || { echo "lab: no netbackd package at $NETBACKD"; exit 1; }

t0=$(date +%s)
bash "$here/fetch.sh"; rc=$?
[[ $rc = 77 ]] && { echo "lab: SKIP, the Debian archive cannot be reached and the cache is incomplete"; exit 77; }
[[ $rc = 0 ]] || exit 1
phase fetch
LAB_HVM=$([[ $SCEN == *9* ]] && echo 1) bash "$here/build-images.sh" "$NETBACKD_LAB_CACHE" "$OUT/images" "$NETBACKD" >"$OUT/images.log" 2>&1 ||
  { echo "lab: image build failed:"; tail -20 "$OUT/images.log"; exit 1; }
phase images
t0=$(date +%s)

# DPDK's x86 build needs SSE4.2 and POPCNT: add them to qemu64 (with -cpu max, xl crashed at
# random in dom0: heap corruption, failing physinfo).
# noreboot keeps a crash on screen for the watcher instead of looping.
xen_args="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all console_timestamps=boot"
xen_args+=" dom0_mem=768M,max:768M dom0_max_vcpus=1 noreboot conring_size=1m"
# The wire: two e1000s on one QEMU hub. 00:04.0 stays with dom0, the outside host (10.0.0.1);
# 00:05.0 is hidden from dom0 by pciback and passed to the driver domain, so the clients reach
# the outside host only through the driver domain and that NIC. Passing a device needs an IOMMU
# for Xen: QEMU's emulated VT-d with interrupt remapping.
nic_args="-device intel-iommu,intremap=on"
nic_args+=" -netdev hubport,id=wire0,hubid=0 -device e1000,netdev=wire0,addr=0x4,mac=52:54:00:0a:00:01"
nic_args+=" -netdev hubport,id=wire1,hubid=0 -device e1000,netdev=wire1,addr=0x5,mac=52:54:00:0a:00:02"
dom0_args="console=hvc0 earlyprintk=xen quiet lab_scenarios=$SCEN lab_uplink=$UPLINK${NETBACKD_LAB_TRACE:+ lab_trace}${NETBACKD_LAB_IDLE:+ lab_idle}${NETBACKD_LAB_MB0:+ lab_mb0=$NETBACKD_LAB_MB0}${NETBACKD_LAB_PAIRS:+ lab_pairs=$NETBACKD_LAB_PAIRS}${NETBACKD_LAB_HVM_KERNEL:+ lab_hvm_kernel}"
cpu=qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt
# Scenario 9's HVM guest and scenario b's PVH client: qemu64 has SVM, which TCG emulates;
# nested paging (NPT) spares Xen its shadow page tables, which Debian's Xen is built without.
[[ $SCEN == *9* || $SCEN == *b* ]] && cpu+=",+npt"
# TCG answers 0 to the VMX EPT capability MSR, so Xen takes these AMD nested page tables for
# EPT-compatible and shares them with QEMU's Intel VT-d ("Shared EPT tables enabled"): give
# the IOMMU its own.
[[ $SCEN == *9* || $SCEN == *b* ]] && xen_args+=" iommu=no-sharept"
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -machine q35 -cpu $cpu -smp 2 -m 3072 \
  -nographic -monitor none -serial stdio -no-reboot $nic_args \
  -kernel "$OUT/images/xen-4.17" -append "$xen_args" \
  -initrd "$OUT/images/vmlinuz $dom0_args,$OUT/images/dom0.cpio.gz" >"$LOG" 2>&1 &
qpid=$!
# A crash with noreboot would otherwise sit until the timeout.
end=""
while kill -0 $qpid 2>/dev/null; do
  if end=$(grep -a -o -m1 -E 'LAB-DONE|Dom0 crashed|Panic on CPU|Kernel panic|not rebooting' "$LOG"); then
    sleep 2; kill $qpid 2>/dev/null; break
  fi
  sleep 1
done
wait $qpid; qrc=$?
phase "boot+scenarios (QEMU rc=$qrc, ended on: ${end:-QEMU exit or timeout})"

# ---- the table
declare -A status detail name
while IFS= read -r line; do
  line=${line%$'\r'}; line=${line#*LAB-RESULT }
  read -r n nm st rest <<<"$line"
  status[$n]=$st; name[$n]=$nm; detail[$n]=$rest
done < <(grep -a 'LAB-RESULT ' "$LOG")
declare -A names=([1]=attach-ping [2]=attach-detach-x5 [3]=client-to-client [4]=multiqueue-split [5]=tcp-sg-gso
       [6]=restart [a]=save-restore [b]=migrate-local [7]=baseline-netback [8]=outside-host [9]=hvm-native-pmd
       [0]=two-workers)
echo
printf '%-2s %-18s %-6s %s\n' '#' scenario result detail
failed=0
for n in 1 2 3 4 5 6 8 0 a b 7 9; do
  [[ $n == 9 && $SCEN != *9* ]] && continue # opt-in, see scenarios.sh
  st=${status[$n]:-}
  if [[ -z $st ]]; then
    if [[ $SCEN == *$n* ]]; then st=FAIL; detail[$n]="no result (${end:-timeout}); see $LOG"; else st=SKIP; detail[$n]="not selected"; fi
  fi
  printf '%-2s %-18s %-6s %s\n' "$n" "${names[$n]}" "$st" "${detail[$n]}"
  if [[ $REQUIRE == *$n* && $SCEN == *$n* && $st != PASS ]]; then failed=1; fi
done
grep -a 'LAB-T ' "$LOG" | tr -d '\r' | sed 's/^/  /'
echo
echo "lab: serial log $LOG"
if ((failed)); then
  echo "lab: FAILED; last lines of the serial log:"
  grep -a -v '^(XEN)' "$LOG" | tail -40
  exit 1
fi
exit 0
