#!/bin/bash
# Builds the lab's three busybox initramfs images from the fetch.sh cache and our netbackd:
#   client.cpio.gz  Linux xen-netfront + busybox (ping, nc) + udpperf + the console agent
#   drv.cpio.gz     the driver domain (PV, and HVM for scenario 9): the netbackd .deb unpacked
#                   as dpkg would, its Depends and DPDK Recommends (from the cache's .debs, else
#                   this host's installed copy of the package), the libraries those need, the lab's
#                   two extra PMDs (af_packet, e1000) and libxdp's BPF objects,
#                   pcifront, e1000, uio_pci_generic, the Xen device modules; xen-netback and
#                   bridge only for the baseline, xen-netback blacklisted; no xenstore-* tools,
#                   no xl devd, no vif scripts
#   dom0.cpio.gz    the outside host's e1000, tcpdump and udpperf, pciback, xenstored, xl, xen-init-dom0,
#                   xenconsoled, the xl configs, the scenario script, and the guest kernel +
#                   both images above (+ hvmloader, SeaBIOS, QEMU as device model: LAB_HVM=1)
# Usage: build-images.sh CACHE OUTDIR NETBACKD_DEB
set -euo pipefail
CACHE=$(cd "$1" && pwd); OUT=$2; NETBACKD_DEB=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
KVER=$(cat "$CACHE/kver")
MODSRC=$CACHE/kernel/lib/modules/$KVER
TOOLS=$CACHE/tools
BUSYBOX=${BUSYBOX:-/bin/busybox}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
# Debian's postinst would have run depmod; dpkg -x does not.
[[ -f $MODSRC/modules.dep ]] || "$BUSYBOX" depmod -b "$CACHE/kernel" "$KVER"

skeleton() {
  local r=$1
  rm -rf "$r"
  mkdir -p "$r"/{bin,sbin,proc,sys,dev,etc,tmp,run,root,lib64,lib/x86_64-linux-gnu,usr/bin,usr/sbin,var/log}
  ln -s /run "$r/var/run"
  cp "$BUSYBOX" "$r/bin/busybox"
  echo "root:x:0:0:root:/root:/bin/sh" >"$r/etc/passwd"
  echo "root:x:0:" >"$r/etc/group"
  cp "$here/init/agent.sh" "$r/bin/lab-agent"
  chmod +x "$r/bin/lab-agent"
}

# Kernel modules by name, with their dependencies from the kernel's own modules.dep.
add_modules() {
  local r=$1; shift
  local todo=("$@") seen=" " m path dep
  while ((${#todo[@]})); do
    m=${todo[0]}; todo=("${todo[@]:1}")
    path=$(awk -F: -v m="/$m.ko" 'index($1, m) && substr($1, length($1) - length(m) + 1) == m {print $1; exit}' "$MODSRC/modules.dep")
    [[ -n $path ]] || { echo "lab images: no module $m in $KVER" >&2; exit 1; }
    [[ $seen == *" $path "* ]] && continue
    seen+="$path "
    mkdir -p "$r/lib/modules/$KVER/$(dirname "$path")"
    cp "$MODSRC/$path" "$r/lib/modules/$KVER/$path"
    for dep in $(awk -F: -v p="$path" '$1 == p {print $2}' "$MODSRC/modules.dep"); do
      todo+=("$(basename "$dep" .ko)")
    done
  done
  cp "$MODSRC"/modules.builtin* "$MODSRC"/modules.order "$r/lib/modules/$KVER/" 2>/dev/null || true
  "$BUSYBOX" depmod -b "$r" "$KVER"
}

# Every shared library a binary needs, resolved against the image's own libraries, then the
# cache's Xen libraries; those the image has already are not copied again.
add_libs() {
  local r=$1; shift
  local f lib
  for f in "$@"; do
    LD_LIBRARY_PATH=$r/usr/lib/x86_64-linux-gnu:$r/lib/x86_64-linux-gnu:$TOOLS/usr/lib/x86_64-linux-gnu:$TOOLS/usr/lib/xen-4.17/lib/x86_64-linux-gnu${LAB_LD_PATH:+:$LAB_LD_PATH} \
      ldd "$f" 2>/dev/null | awk '/=> \//{print $3}' || true   # scripts have no libraries
  done | sort -u | while read -r lib; do
    [[ $lib == "$r"/* ]] && continue
    cp -L "$lib" "$r/lib/x86_64-linux-gnu/"
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
  # glibc dlopens it for pthread_cancel (xl create aborts without it).
  cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$r/lib/x86_64-linux-gnu/"
}

# A dependency of the netbackd package, installed as apt would: its .deb from the cache when
# there (the Xen libraries), else the files of this host's installed copy (the build host is the
# same Debian 12; only its shared objects and DPDK plugins: no docs, no gconv).
add_package() {
  local r=$1 pkg=$2 deb f
  deb=$(ls "$CACHE/debs/${pkg}_"*_amd64.deb 2>/dev/null | head -1 || true)
  if [[ -n $deb ]]; then
    echo "lab images: $pkg from $(basename "$deb")"
    dpkg-deb -x "$deb" "$r"
    return
  fi
  # A virtual package (libspdlog1.10-fmt9): the installed package that provides it.
  # (awk reads to the end: an early exit would fail the pipe under pipefail.)
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == 'install ok installed' ]] ||
    pkg=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' |
      awk -v v="$pkg" '$1 == "ii" && !found { for (i = 3; i <= NF; i++) { sub(/,$/, "", $i); if ($i == v) { print $2; found = 1 } } }')
  [[ -n $pkg ]] ||
    { echo "lab images: $2 (a dependency of netbackd) is neither in $CACHE/debs nor installed here" >&2; exit 1; }
  echo "lab images: $pkg from this host's $(dpkg-query -W -f='${Version}' "$pkg")"
  dpkg -L "$pkg" | grep -E '^(/usr)?/lib/x86_64-linux-gnu/([^/]*\.so[.0-9]*|dpdk/pmds-[^/]*/[^/]*)$' |
    while read -r f; do
      mkdir -p "$r$(dirname "$f")"
      cp -a "$f" "$r$f"
    done
}

pack() { (cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 >"$2"); }

# The UDP packet-rate probe of scenario 7 (busybox has none), static: the clients carry no libc.
gcc -static -O2 -Wall -Wextra -Werror -o "$OUT/udpperf" "$here/udpperf.c"

######## client: Linux's own netfront
R=$OUT/client-root
skeleton "$R"
cp "$OUT/udpperf" "$R/usr/bin/udpperf"
add_modules "$R" xen-netfront
cp "$here/init/client-init" "$R/init"; chmod +x "$R/init"
pack "$R" "$OUT/client.cpio.gz"

######## driver domain: netbackd on the real platform
R=$OUT/drv-root
skeleton "$R"
add_modules "$R" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback bridge xen-pcifront e1000 uio_pci_generic
mkdir -p "$R/etc/modprobe.d" "$R/etc/netbackd/clients" "$R/usr/lib/x86_64-linux-gnu/dpdk"
# netbackd serves the vifs; the kernel's backend must not claim them first.
echo "blacklist xen_netback" >"$R/etc/modprobe.d/netbackd.conf"
# What an operator installs: the package's files (binaries, unit, conffiles, udev rule), then
# its Depends and the DPDK libraries of its Recommends (not `dpdk`, the tools). The unit, the
# user and the udev rule stay unused: this busybox init has no systemd and runs netbackd as root.
dpkg-deb -x "$NETBACKD_DEB" "$R"
deps=$(dpkg-deb -f "$NETBACKD_DEB" Depends Recommends | sed 's/^[A-Za-z]*: //' | tr ',' '\n' |
  sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep -v -E '^(systemd|dpdk)$' | grep . | sort -u)
for p in $deps; do
  add_package "$R" "$p"
done
rm -rf "$R/usr/share/doc" "$R/usr/share/man"
# iproute2's ip (busybox's knows no XDP): takes a crashed af_xdp port's program off eth0.
cp /sbin/ip "$R/usr/sbin/ip"
# EAL dlopens every driver in its PMD directory: the package's (buses, mempool, af_xdp) and
# the two more the lab uses (the af_packet fallback, scenario 9's e1000), no others.
pmddir=$(ls -d /usr/lib/x86_64-linux-gnu/dpdk/pmds-* | head -1)
for p in net_af_packet net_e1000; do
  cp -L "$pmddir/librte_$p.so" "$R$pmddir/librte_$p.so"
done
for p in bus_vdev bus_pci mempool_ring net_af_xdp net_af_packet net_e1000; do
  [[ -e $R$pmddir/librte_$p.so || -e $R$pmddir/librte_$p.so.${pmddir##*pmds-} ]] ||
    { echo "lab images: no PMD $p in the driver domain" >&2; exit 1; }
done
add_libs "$R" "$R/usr/sbin/netbackd" "$R/usr/sbin/ip" "$R$pmddir"/librte_*
# af_xdp's libxdp loads its default XDP program (and the multi-program dispatcher) from these.
mkdir -p "$R/usr/lib/x86_64-linux-gnu/bpf"
cp /usr/lib/x86_64-linux-gnu/bpf/xsk_def_xdp_prog*.o /usr/lib/x86_64-linux-gnu/bpf/xdp-dispatcher.o \
  "$R/usr/lib/x86_64-linux-gnu/bpf/"
cp "$here/init/drv-init" "$R/init"; chmod +x "$R/init"
cp "$here/netbackd.toml" "$here/netbackd-hvm.toml" "$R/etc/netbackd/"
pack "$R" "$OUT/drv.cpio.gz"

######## dom0: xenstored and the toolstack
R=$OUT/dom0-root
skeleton "$R"
add_modules "$R" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-pciback e1000
mkdir -p "$R"/{var/lib/xen,var/log/xen/console,var/lib/xenstored,usr/lib/xen-4.17,etc/xen,lab}
cp -a "$TOOLS/usr/lib/xen-4.17/bin" "$R/usr/lib/xen-4.17/"
cp -a "$TOOLS/usr/lib/xen-4.17/lib" "$R/usr/lib/xen-4.17/"
rm -rf "$R/usr/lib/xen-4.17/lib/python"
mkdir -p "$R/usr/lib/x86_64-linux-gnu"
cp -a "$TOOLS"/usr/lib/x86_64-linux-gnu/* "$R/usr/lib/x86_64-linux-gnu/"
cp -a "$TOOLS"/usr/bin/xenstore* "$R/usr/bin/"
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper xenconsole; do
  ln -sf "/usr/lib/xen-4.17/bin/$b" "$R/usr/sbin/$b"
done
cp "$TOOLS/usr/bin/tcpdump" "$R/usr/sbin/"
cp "$OUT/udpperf" "$R/usr/bin/udpperf"
add_libs "$R" "$R"/usr/lib/xen-4.17/bin/* "$R"/usr/bin/xenstore* "$R/usr/sbin/tcpdump"
# Scenario 9's HVM driver domain (LAB_HVM=1, run.sh sets it when 9 is selected): hvmloader,
# SeaBIOS and QEMU as the device model, with the libraries the host's QEMU resolves.
if [[ ${LAB_HVM:-} == 1 ]]; then
  cp -a "$TOOLS/usr/lib/xen-4.17/boot" "$R/usr/lib/xen-4.17/"
  mkdir -p "$R/usr/libexec" "$R/usr/share/seabios"
  cp "$TOOLS/usr/libexec/xen-qemu-system-i386" "$R/usr/libexec/"
  cp "$TOOLS/usr/share/seabios/bios-256k.bin" "$R/usr/share/seabios/"
  add_libs "$R" "$R/usr/libexec/xen-qemu-system-i386"
  # QEMU's direct kernel boot (fw_cfg + its linuxboot option ROM) takes the bzImage.
  mkdir -p "$R/usr/share/qemu"
  cp /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/linuxboot.bin "$R/usr/share/qemu/"
  # Even with -vnc none QEMU reads its keymap.
  mkdir -p "$R/usr/share/qemu/keymaps"; cp /usr/share/qemu/keymaps/en-us "$R/usr/share/qemu/keymaps/"
  cp "$here/xl/nicdom-hvm.cfg" "$R/etc/xen/"
  cp "$CACHE/kernel/boot/vmlinuz-$KVER" "$R/lab/vmlinuz.bz"
fi
printf 'autoballoon="off"\n' >"$R/etc/xen/xl.conf"
cp "$here"/xl/*.cfg "$R/etc/xen/"
cp "$here/scenarios.sh" "$R/lab/scenarios.sh"
cp "$here/init/dom0-init" "$R/init"; chmod +x "$R/init"
# libxl would unpack the xz bzImage on every xl create, under TCG the bulk of a guest's start:
# give it the ELF inside instead (unpacked once, here).
[[ -f $OUT/vmlinux ]] || python3 - "$CACHE/kernel/boot/vmlinuz-$KVER" "$OUT/vmlinux" <<'PY'
import gzip, lzma, sys, zlib
data = open(sys.argv[1], "rb").read()
xz, gz = data.find(b"\xfd7zXZ\x00"), data.find(b"\x1f\x8b\x08")
if xz >= 0:
    elf = lzma.LZMADecompressor().decompress(data[xz:])
else:
    elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[gz:])
assert elf[:4] == b"\x7fELF", "no ELF inside the bzImage"
open(sys.argv[2], "wb").write(elf)
PY
cp "$OUT/vmlinux" "$R/lab/vmlinuz"
cp "$OUT/client.cpio.gz" "$OUT/drv.cpio.gz" "$R/lab/"
pack "$R" "$OUT/dom0.cpio.gz"
ln -sf "$CACHE/kernel/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
ln -sf "$CACHE/xen-4.17" "$OUT/xen-4.17"
ls -l "$OUT"/*.cpio.gz
