#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_xenstored: chunked request streams ([who][len][bytes]...)."""
import os
import struct
import sys

XS = dict(READ=2, GET_PERMS=3, WATCH=4, UNWATCH=5, TX_START=6, TX_END=7, INTRODUCE=8, RELEASE=9,
          GET_DOMAIN_PATH=10, WRITE=11, MKDIR=12, RM=13, SET_PERMS=14, DIRECTORY=1, DIRECTORY_PART=24)


def msg(kind, *args, tx=0, raw=None):
    body = raw if raw is not None else b"".join(a.encode() + b"\0" for a in args)
    return struct.pack("<IIII", XS[kind], 1, tx, len(body)) + body


def chunks(who, stream, size=40):
    out = b""
    for i in range(0, len(stream), size):
        part = stream[i:i + size]
        out += bytes([who, len(part)]) + part
    return out


seeds = {
    "guest_basics": chunks(1, msg("WRITE", raw=b"data/a\0v") + msg("READ", "data/a") + msg("DIRECTORY", "data")
                           + msg("GET_PERMS", "data/a") + msg("RM", "data/a")),
    "guest_attacks": chunks(2, msg("WRITE", raw=b"/local/domain/5/domid\0" + b"9")
                            + msg("SET_PERMS", "/local/domain/5", "b7") + msg("READ", "/local/domain/5/domid")
                            + msg("INTRODUCE", "9", "0", "0") + msg("RM", "/local/domain/0")),
    "watches": chunks(1, msg("WATCH", "data", "t") + msg("WRITE", raw=b"data/x\0y") + msg("UNWATCH", "data", "t")
                      + msg("WATCH", "@releaseDomain", "r")),
    "transactions": chunks(1, msg("TX_START", "") + msg("WRITE", raw=b"data/t\0" + b"1", tx=1)
                           + msg("TX_END", "T", tx=1)) + chunks(2, msg("TX_START", "") + msg("TX_END", "F", tx=2)),
    "dom0_domains": chunks(0, msg("INTRODUCE", "9", "1", "1") + msg("GET_DOMAIN_PATH", "9") + msg("RELEASE", "9")
                           + msg("MKDIR", "/local/domain/5/device/vif/0")
                           + msg("SET_PERMS", "/local/domain/5/device/vif/0", "n5", "r7")
                           + msg("DIRECTORY_PART", "/local/domain/5", "0")),
    "bad_framing": chunks(1, struct.pack("<IIII", 2, 1, 0, 5000) + b"x" * 8)
                   + chunks(2, msg("READ", raw=b"no-nul") + msg("WRITE", raw=b"")),
}

dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
os.makedirs(dest, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(dest, name), "wb") as f:
        f.write(data)
