#!/usr/bin/env python3
"""Captures frames on the demo's outside interface and checks what netbackd put on the wire:
source MAC is the guest's, IPv4 header and TCP/UDP/ICMP checksums are valid, sizes fit the MTU.
Usage: wirecheck.py IFACE GUEST_MAC MAX_FRAMES SECONDS [MTU]  (run inside the outside namespace)."""
import os
import socket
import struct
import sys
import time

MTU = int(sys.argv[5]) if len(sys.argv) > 5 else 1500


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def check(frame: bytes, guest_mac: bytes, problems: list) -> bool:
    """True when the frame came from the guest; appends what is wrong to problems."""
    if frame[6:12] != guest_mac:
        return False
    if len(frame) > MTU + 14:
        problems.append(f"{len(frame)}-byte frame exceeds the {MTU} MTU")
    if struct.unpack("!H", frame[12:14])[0] != 0x0800:
        return True
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if csum(ip[:ihl]) != 0xFFFF:
        problems.append("bad IPv4 header checksum")
    if total + 14 > len(frame):
        problems.append(f"IPv4 length {total} beyond the {len(frame)}-byte frame")
        return True
    proto, payload = ip[9], ip[ihl:total]
    if proto in (6, 17):
        pseudo = ip[12:20] + struct.pack("!BBH", 0, proto, len(payload))
        if csum(pseudo + payload) != 0xFFFF:
            problems.append(f"bad {'TCP' if proto == 6 else 'UDP'} checksum")
    elif proto == 1 and csum(payload) != 0xFFFF:
        problems.append("bad ICMP checksum")
    return True


def main() -> int:
    iface, mac, max_frames, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    guest_mac = bytes.fromhex(mac.replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.5)
    ready = os.environ.get("WIRECHECK_READY")
    if ready:
        # The caller starts its traffic only once the socket is bound.
        open(ready, "w").close()
    seen, problems, deadline = 0, [], time.monotonic() + seconds
    while seen < max_frames and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if check(frame, guest_mac, problems):
            seen += 1
    print(f"wire check: {seen} frames from {mac} on {iface}, "
          f"{'all well-formed' if not problems else str(len(problems)) + ' problems: ' + '; '.join(sorted(set(problems)))}")
    return 0 if seen > 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
