#!/usr/bin/env python3
"""Writes the seed corpora for fuzz_tx_ring, fuzz_rx_responder and fuzz_ctrl_ring (formats: see those files).
Run from anywhere: python3 tests/ring/make_corpus.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MORE, EXTRA = 4, 8  # NETTXF_more_data, NETTXF_extra_info


def req(gref, off, flags, rid, size):
    return struct.pack("<IHHHH", gref, off, flags, rid, size)


def extra(etype, eflags, payload=b""):
    return struct.pack("<BB", etype, eflags) + payload.ljust(10, b"\0")


def gso(mss, gtype=1, more=False):
    return extra(1, 1 if more else 0, struct.pack("<HBBH", mss, gtype, 0, 0))


def tx_seed(slots, start=0, prod=None, fatal=0, deltas=b"\0" * 6):
    body = b"".join(slots)
    nslots = len(body) // 12
    sel = (prod if prod is not None else nslots) & 0xFFFFFFFF
    return struct.pack("<IIBB", start, sel, fatal, 0) + deltas.ljust(6, b"\0")[:6] + body


def chain(n, first_size=None):
    out = [req(1, 0, MORE if n > 1 else 0, 0, first_size if first_size is not None else 60 * n)]
    for i in range(1, n):
        out.append(req(1 + i, 0, MORE if i + 1 < n else 0, i, 60))
    return out


TX = {
    "single": tx_seed([req(7, 0, 0, 1, 1514)]),
    "single_csum": tx_seed([req(7, 100, 3, 1, 60)]),
    "multi3": tx_seed(chain(3)),
    "max18": tx_seed(chain(18)),
    "drop19": tx_seed(chain(19)),
    "fatal20": tx_seed(chain(20)),
    "extras": tx_seed([req(1, 0, MORE | EXTRA, 1, 3000), gso(1448, more=True),
                       extra(4, 0, bytes([1, 1, 0xd4, 0xc3, 0xb2, 0xa1])), req(2, 0, 0, 2, 1000)]),
    "mcast": tx_seed([req(1, 0, EXTRA, 1, 0), extra(2, 1, bytes([1, 0, 0x5e, 0, 0, 1])),
                      extra(3, 0, bytes([1, 0, 0x5e, 0, 0, 2]))]),
    "unknown_extra": tx_seed([req(1, 0, EXTRA, 1, 60), extra(9, 0)]),
    "bad_gso": tx_seed([req(1, 0, EXTRA, 1, 60), gso(0)]),
    "page_cross": tx_seed([req(1, 0, MORE, 1, 300), req(2, 4000, 0, 2, 200)]),
    "size_mismatch": tx_seed([req(1, 0, MORE, 1, 100), req(2, 0, 0, 2, 200)]),
    "zero_runt": tx_seed([req(1, 0, 0, 1, 0), req(1, 0, 0, 2, 10), req(1, 0, 0, 3, 14)]),
    "pending_then_more": tx_seed([req(1, 0, MORE, 1, 200), req(2, 0, 0, 2, 100)], prod=1, deltas=b"\1"),
    "overflow": tx_seed([req(7, 0, 0, 1, 60)], prod=257),
    "regress": tx_seed([req(7, 0, 0, 1, 60)] * 4, prod=0x80000000 | 2),
    "wrap": tx_seed(chain(5) * 3, start=0xFFFFFFF0),
    "custom_fatal": tx_seed(chain(25), fatal=30),
    "rounds": tx_seed(chain(2) * 40, prod=10, deltas=bytes([10, 20, 30, 5, 15, 0])),
}

RX = {
    "single": struct.pack("<II", 0, 4) + bytes([0, 0xdc, 0x05]) + struct.pack("<HHI", 0, 0, 100),
    "gso": struct.pack("<II", 0, 8) + bytes([0x82, 0x00, 0x10, 0x81, 0x00, 0x08, 0x40, 0x10, 0x00]),
    "short": struct.pack("<II", 0, 1) + bytes([0x05, 0x10, 0x00]),
    "wrap": struct.pack("<II", 0xFFFFFFFA, 30) + bytes([0x83, 0x00, 0x10] * 8),
    "overflow": struct.pack("<II", 0, 300) + bytes([0, 1, 0]),
    "many": struct.pack("<II", 0, 256) + bytes(range(0, 240)),
}


def creq(rid, rtype, d0=0, d1=0, d2=0):
    return struct.pack("<HHIII", rid, rtype, d0, d1, d2)


def ctrl_seed(reqs, start=0, prod=None, budget=63, queues=3):
    sel = (prod if prod is not None else len(reqs)) & 0xFFFFFFFF
    return struct.pack("<IIBBH", start, sel, budget, queues, 0) + b"".join(reqs)


# types: 1 GET_FLAGS, 2 SET_FLAGS, 3 SET_KEY, 4 GET_MAP_SIZE, 5 SET_MAP_SIZE, 6 SET_MAP, 7 SET_ALG
CTRL = {
    "windows": ctrl_seed([creq(1, 7, 1), creq(2, 1), creq(3, 2, 0xF), creq(4, 3, 0, 40), creq(5, 4),
                          creq(6, 5, 128), creq(7, 6, 0, 4, 0), creq(8, 6, 2, 4, 124)]),
    "xsa270": ctrl_seed([creq(1, 5, 8), creq(2, 6, 0, 4, 0xFFFFFFFE), creq(3, 6, 0, 0xFFFFFFFF, 1),
                         creq(4, 5, 0xFFFFFFFF)]),
    "ungranted": ctrl_seed([creq(1, 7, 1), creq(2, 3, 1, 40), creq(3, 5, 4), creq(4, 6, 3, 4, 0)]),
    "storm": ctrl_seed([creq(i, 4) for i in range(128)], budget=7),
    "jump": ctrl_seed([creq(1, 4)], prod=0x80000000 | 129),
    "wrap": ctrl_seed([creq(i, i % 12) for i in range(40)], start=0xFFFFFFF0),
}


def write(kind, seeds):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    for name, blob in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)


write("tx", TX)
write("rx", RX)
write("ctrl", CTRL)
