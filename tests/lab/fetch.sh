#!/bin/bash
# Fetches the lab's inputs from Debian's archive with `apt-get download` + `dpkg -x` (nothing is
# installed on the host: no hypervisor, kernel or bootloader) into a cache reused between runs.
#   NETBACKD_LAB_CACHE  cache directory (default: <repo>/.lab-cache)
# Exit 0: cache complete. Exit 77: the archive cannot be reached and the cache is incomplete.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${NETBACKD_LAB_CACHE:-$here/../../.lab-cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# Bumped whenever the package list changes, so an old cache is refreshed instead of trusted.
STAMP_VERSION=3
stamp=$CACHE/complete.v$STAMP_VERSION
if [[ -f $stamp ]]; then
  echo "lab fetch: cache $CACHE is complete"
  exit 0
fi

# The kernel's ABI name (linux-image-6.1.0-NN-amd64) comes from the metapackage, so a
# point release does not need an edit here.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [[ -z $kpkg ]]; then
  echo "lab fetch: apt-cache knows no linux-image-amd64 (run apt-get update?)" >&2
  exit 77
fi
pkgs=(
  "$kpkg" xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
  libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4
  libxentoollog1 libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2
  # Scenario 9's HVM driver domain: QEMU as its device model (libxl runs
  # /usr/libexec/xen-qemu-system-i386) and the BIOS hvmloader hands to. QEMU's own libraries
  # come from the host's qemu-system-x86, which links the same ones.
  qemu-system-xen seabios
  # The outside host (dom0) captures the wire to see whose MACs the guests' frames carry.
  tcpdump libpcap0.8
)
debs=$CACHE/debs
mkdir -p "$debs"
if ! (cd "$debs" && apt-get download -q "${pkgs[@]}" >"$CACHE/download.log" 2>&1); then
  echo "lab fetch: apt-get download failed (no network?); see $CACHE/download.log" >&2
  tail -5 "$CACHE/download.log" >&2
  exit 77
fi

# kernel/: the hypervisor and the Linux image (boot/, lib/modules/); tools/: userspace.
rm -rf "$CACHE/kernel" "$CACHE/tools"
mkdir -p "$CACHE/kernel" "$CACHE/tools"
dpkg -x "$debs/${kpkg}"_*.deb "$CACHE/kernel"
dpkg -x "$debs"/xen-hypervisor-4.17-amd64_*.deb "$CACHE/kernel"
for p in "${pkgs[@]:2}"; do dpkg -x "$debs/${p}"_*.deb "$CACHE/tools"; done
# QEMU's multiboot loader takes the ELF, not the gzip Debian ships.
zcat "$CACHE"/kernel/boot/xen-4.17-amd64.gz >"$CACHE/xen-4.17"
kver=${kpkg#linux-image-}
echo "$kver" >"$CACHE/kver"
touch "$stamp"
echo "lab fetch: cache $CACHE ready (kernel $kver)"
