#!/usr/bin/env python3
"""netbackd-bench: netbackd on xensim side by side with DPDK's vhost-user backend.

Runs the two systems interleaved (A B A B ...) on the same work and core layout, so that the
ratio survives a noisy machine; prints a compact table last and writes CSV rows on request.
Binary paths come from CMake (see bench/CMakeLists.txt); override with the environment.
"""
import argparse
import atexit
import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

NETBACKD = os.environ.get("NETBACKD_BINARY", "@NETBACKD_BINARY@")
XENSIM = os.environ.get("XENSIM_BINARY", "@XENSIM_BINARY@")
PINGPONG = os.environ.get("PINGPONG_BINARY", "@PINGPONG_BINARY@")
TESTPMD = os.environ.get("TESTPMD_BINARY", shutil.which("dpdk-testpmd") or "dpdk-testpmd")
# Debian's openvswitch-switch-dpdk: the DPDK build of ovs-vswitchd, run directly (the system's
# service and its alternatives are left alone).
OVS_VSWITCHD = os.environ.get("OVS_VSWITCHD_BINARY", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk")
OVS_SCHEMA = os.environ.get("OVS_SCHEMA", "/usr/share/openvswitch/vswitch.ovsschema")

# One core for the backend (netbackd's process / testpmd's forwarding lcore), the other for the
# frontend side (netfront generator or sink / virtio-user's forwarding lcore).
BACKEND_CPU = 1
FRONTEND_CPU = 0
DRIVER_DOMID = 1
HUGE_DIR_PAGES = 700  # 2 MiB pages: two testpmds of -m 512 each, or one netbackd

# The last two say who waited for whom in that run: the backend's idle share (netbackd: its
# time polling empty; ovs-dpdk: its PMD's idle cycles; empty for vhost-user, whose testpmd
# reports none), and the share of netbackd's frontends' rounds that found their TX ring full
# (see bottleneck()).
CSV_COLUMNS = ["scenario", "size", "vifs", "system", "hypercall", "mpps", "gbps",
               "backend_empty_pct", "frontend_ring_full_pct"]

# Headline points are measured with free grant copies (netbackd's own cost) and with the
# modelled hypercall (see README: 500 ns per hypercall + 50 ns per segment), interleaved.
HEADLINE_COSTS = "0+0,500+50"


def parse_costs(text):
    """'0+0,500+50' -> [(0, 0), (500, 50)]: ns per grant-copy hypercall + ns per segment."""
    out = []
    for item in text.split(","):
        batch, _, seg = item.partition("+")
        out.append((int(batch), int(seg or 0)))
    return out


def cost_name(cost):
    return f"{cost[0]}+{cost[1]}" if cost else "-"



def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wire_gbps(pps, size):
    # Ethernet on the wire: frame + FCS 4 + preamble 8 + IFG 12, so 64 B at 14.88 Mpps is 10 G.
    return pps * (size + 24) * 8 / 1e9


class Hugepages:
    """Reserves 2 MiB pages and a hugetlbfs mount when root; gives back what it took."""

    NR = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

    @classmethod
    def none(cls):
        h = cls.__new__(cls)
        h.dir = None
        h.before = None
        return h

    def __init__(self, pages, workdir):
        self.dir = None
        self.before = None
        if os.geteuid() != 0 or not os.path.exists(self.NR):
            return
        try:
            with open(self.NR) as f:
                self.before = int(f.read())
            with open(self.NR, "w") as f:
                f.write(str(self.before + pages))
            d = os.path.join(workdir, "huge")
            os.makedirs(d, exist_ok=True)
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", d], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.dir = d
        except (OSError, subprocess.CalledProcessError) as e:
            log(f"hugepages unavailable ({e}); falling back to --no-huge")
            self.release()

    def release(self):
        if self.dir:
            subprocess.run(["umount", self.dir], stderr=subprocess.DEVNULL)
            self.dir = None
        if self.before is not None:
            with open(self.NR, "w") as f:
                f.write(str(self.before))
            self.before = None


class Proc:
    """A child process with its output in a file; killed (by pid) if still running at close."""

    def __init__(self, argv, logpath, cpu=None, stdin=subprocess.DEVNULL, env=None):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.log = logpath
        self.out = open(logpath, "w")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, stdin=stdin, env=env)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self, sig=signal.SIGTERM, grace=5):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


def run_ok(argv, logpath, timeout=30):
    with open(logpath, "a") as out:
        r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if r.returncode != 0:
        with open(logpath) as f:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{f.read()[-2000:]}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def telemetry(prefix, cmd):
    """One command on a DPDK process's telemetry socket (JSON over SOCK_SEQPACKET)."""
    import socket
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    if os.geteuid() != 0:
        path = os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk", prefix, "dpdk_telemetry.v2")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(path)
        s.recv(16384)  # the greeting
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20).decode())[cmd.split(",")[0]]


def all_vifs(prefix, page=16):
    """Every vif's counters: /netbackd/vifs answers 16 at a time (DPDK cuts replies at 16 KiB)."""
    vifs, first = {}, 0
    while True:
        got = telemetry(prefix, f"/netbackd/vifs,{first}") or {}
        vifs.update(got)
        if len(got) < page:
            return vifs
        first += page


def mac_of(domid, devid=0):
    return f"00:16:3e:00:{domid:02x}:{devid:02x}"


def write_pcap(path, size, dst_macs):
    """IPv4/UDP frames of `size` bytes (no FCS) to each MAC in turn, for net_pcap's infinite_rx.

    net_null's RX frames carry no addresses, and a switch drops unknown unicast from the wire:
    the generating port has to replay frames addressed to the guests."""
    import struct
    src = bytes.fromhex("020000000001")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(max(1, 64 // len(dst_macs)) * len(dst_macs)):
            dst = bytes.fromhex(dst_macs[i % len(dst_macs)].replace(":", ""))
            ip_len = size - 14
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, i & 0xFFFF, 0, 64, 17, 0,
                             bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            csum = sum(struct.unpack("!10H", ip))
            while csum >> 16:
                csum = (csum & 0xFFFF) + (csum >> 16)
            ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
            udp = struct.pack("!HHHH", 1000 + i, 5001, ip_len - 20, 0)
            frame = dst + src + b"\x08\x00" + ip + udp
            frame += bytes(size - len(frame))
            f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)


class NetbackdWorld:
    """A simulated host, netbackd serving it on BACKEND_CPU, and guests with one vif each."""

    def __init__(self, work, tag, huge, uplink_vdev, guests, polling="adaptive", costs=(0, 0), burst=None,
                 mtu=None):
        self.dir = tempfile.mkdtemp(prefix=f"nb-{tag}-", dir=work)
        self.host = os.path.join(self.dir, "host")
        self.xlog = os.path.join(self.dir, "xensim.log")
        self.netbackd = None
        self.up = False
        self.costs = costs
        self.burst = burst
        self.mtu = mtu
        try:
            self._start(huge, tag, uplink_vdev, guests, polling)
        except BaseException:
            # The caller never gets the world to close: a failed start must not leave a host up.
            self.close()
            raise

    def _start(self, huge, tag, uplink_vdev, guests, polling):
        os.makedirs(os.path.join(self.dir, "clients"))
        # The host charges the hypercall a grant copy would be on Xen (zero: no charge).
        run_ok([XENSIM, "up", "--dir", self.host, "--quota-nodes", "8000",
                "--grant-copy-batch-ns", str(self.costs[0]), "--grant-copy-segment-ns", str(self.costs[1])], self.xlog)
        self.up = True
        run_ok([XENSIM, "domain", "create", "nicdom", "--domid", str(DRIVER_DOMID), "--memory", "16",
                "--dir", self.host], self.xlog)
        prefix = f"nbb{os.getpid()}{tag}"
        if huge.dir:
            eal = ["--in-memory", "--huge-dir", huge.dir, "-m", "512"]
        else:
            eal = ["--no-huge", "-m", "512"]
        self.prefix = prefix
        eal += ["--no-pci", "--file-prefix", prefix, "--log-level", "*:error",
                "--lcores", f"0@({BACKEND_CPU})"]
        ports = ""
        if uplink_vdev:
            ports = f'[[dpdk.ports]]\nname = "uplink0"\nvdev = "{uplink_vdev}"\n' + \
                (f'mtu = {self.mtu}\n' if self.mtu else '')
        with open(os.path.join(self.dir, "netbackd.toml"), "w") as f:
            f.write(f'[service]\nplatform = "sim"\nlog_level = "warn"\nclients_dir = "clients"\n'
                    f'[sim]\ndir = "{self.host}"\ndomid = {DRIVER_DOMID}\n'
                    f'[vif]\nmax_queues = 1\n'
                    f'[dpdk]\neal_args = {json.dumps(eal)}\n{ports}'
                    f'[workers]\ncores = [{BACKEND_CPU}]\npolling = "{polling}"\n' +
                    (f'burst = {self.burst}\n' if self.burst else ''))
        self.netbackd = Proc([NETBACKD, "run", "--config", os.path.join(self.dir, "netbackd.toml")],
                             os.path.join(self.dir, "netbackd.log"), cpu=BACKEND_CPU)
        self.guests = []
        for i in range(guests):
            self.add_guest(10 + i)

    def add_guest(self, domid, vifs=1):
        name = f"g{domid}"
        run_ok([XENSIM, "domain", "create", name, "--domid", str(domid), "--memory", str(32 * vifs),
                "--dir", self.host], self.xlog)
        # attach waits for InitWait, i.e. for netbackd to be up and serving.
        for devid in range(vifs):
            run_ok([XENSIM, "attach", name, "--backend", str(DRIVER_DOMID), "--mac", mac_of(domid, devid),
                    "--devid", str(devid), "--timeout-ms", "20000", "--dir", self.host], self.xlog, timeout=40)
        self.guests.append(name)

    def netfront(self, guest, args, cpu=FRONTEND_CPU):
        logpath = os.path.join(self.dir, f"nf-{guest}-{len(os.listdir(self.dir))}.log")
        return Proc([XENSIM, "netfront", guest, "--devid", "0", "--dir", self.host] + args, logpath, cpu=cpu)

    def worker_clock(self):
        """(seconds, TSC cycles spent in poll rounds that moved nothing, TSC Hz), or None."""
        try:
            w = telemetry(self.prefix, "/netbackd/worker")
            return time.time(), int(w["empty_poll_cycles"]), int(w["tsc_hz"])
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return None

    def counters(self):
        """Data-plane counters summed over vifs: packets, notifications, grant-copy batches/segments."""
        keys = ("tx_packets", "rx_packets", "notifications", "copy_batches", "copy_segments", "staged_copies")
        total = dict.fromkeys(keys, 0)
        try:
            for v in all_vifs(self.prefix).values():
                for k in keys:
                    total[k] += int(v.get(k, 0))
        except (OSError, ValueError, KeyError, AttributeError) as e:
            log(f"telemetry: {e}")
            return None
        # What the uplink port really sent (netbackd's first port is the uplink when it has one).
        total["wire_opackets"] = total["wire_oerrors"] = 0
        try:
            st = telemetry(self.prefix, "/ethdev/stats,0")
            total["wire_opackets"] = int(st.get("opackets", 0))
            total["wire_oerrors"] = int(st.get("oerrors", 0))
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            pass
        return total

    def close(self):
        if self.netbackd:
            self.netbackd.stop()
            self.netbackd = None
        if self.up:
            subprocess.run([XENSIM, "down", "--dir", self.host], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            self.up = False
        shutil.rmtree(self.dir, ignore_errors=True)


def netfront_result(proc, timeout):
    if proc.wait(timeout) is None:
        raise RuntimeError(f"netfront did not finish:\n{proc.text()[-2000:]}")
    text = proc.text()
    i = text.rfind('{"tx_pkts"')
    if i < 0:
        raise RuntimeError(f"netfront printed no JSON summary:\n{text[-2000:]}")
    return json.loads(text[i:text.index("\n", i) if "\n" in text[i:] else None])


COUNTERS = {}  # (scenario, size, vifs[, ...]) -> summed data-plane counters of every run
WIRE_FRACTION = None  # of the last guest->wire run, see keep_counters


def keep_backend_idle(key, before, after):
    """Adds the backend's idle time over a window: its empty poll rounds against the wall clock."""
    if before is None or after is None or after[0] <= before[0] or not after[2]:
        return
    acc = COUNTERS.setdefault(key, {})
    acc["be_window_s"] = acc.get("be_window_s", 0) + after[0] - before[0]
    acc["be_idle_s"] = acc.get("be_idle_s", 0) + (after[1] - before[1]) / after[2]


def keep_frontend(key, results):
    """Adds the netfronts' round counts (ring full when sending, nothing when receiving)."""
    acc = COUNTERS.setdefault(key, {})
    for r in results:
        for k in ("steps", "tx_full_steps", "rx_empty_steps"):
            acc["fe_" + k] = acc.get("fe_" + k, 0) + int(r.get(k, 0))


COLLAPSE_SHARE = 0.5


def collapsed_runs(rates):
    """Indexes of a peer's runs below COLLAPSE_SHARE of its best run at the same point.

    The vhost-user peer is bimodal on these machines: some runs fall to about a third of the
    others with nothing else changed. A ratio built on such a run flatters netbackd, so these
    runs are left out of the ratios (the table's min-max still shows them)."""
    if len(rates) < 2:
        return set()
    best = max(rates)
    return {i for i, x in enumerate(rates) if x < COLLAPSE_SHARE * best}


def run_bottleneck(before, after):
    """The two bottleneck shares (percent, or '') of one run: the counters it added to COUNTERS."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    be = f"{100.0 * d['be_idle_s'] / d['be_window_s']:.1f}" if d.get("be_window_s") else ""
    fe = f"{100.0 * d['fe_tx_full_steps'] / d['fe_steps']:.1f}" if d.get("fe_steps") else ""
    return [be, fe]


def bottleneck(c):
    """'backend idle 3% | frontend ring full 80%, idle 0%': who waited for whom, in rounds."""
    parts = []
    if c.get("be_window_s"):
        parts.append(f"backend polling empty {100.0 * c['be_idle_s'] / c['be_window_s']:.0f}% of the time")
    if c.get("fe_steps"):
        parts.append(f"frontend rounds: ring full {100.0 * c['fe_tx_full_steps'] / c['fe_steps']:.0f}%, "
                     f"nothing received {100.0 * c['fe_rx_empty_steps'] / c['fe_steps']:.0f}%")
    return "; ".join(parts)


def keep_counters(world, key):
    c = world.counters()
    if c:
        # Guest frames answered OKAY that the uplink really sent: the peer is counted there too.
        global WIRE_FRACTION
        WIRE_FRACTION = c["wire_opackets"] / c["tx_packets"] if c["tx_packets"] else None
        acc = COUNTERS.setdefault(key, {})
        for k, v in c.items():
            acc[k] = acc.get(k, 0) + v


def frontend_flags(args):
    # poll: the netfront busy-polls and asks for no events, as virtio-user does (the default,
    # for a like-for-like comparison); event: it sleeps on its event channel when idle, as
    # Linux netfront does, so the backend pays a wake-up kick per batch.
    # staging: the netfronts have netbackd map their buffer pools once (ADD_GREF_MAPPING), so
    # their frames are copied with memcpy instead of grant copies (netif staging grants).
    return (["--poll"] if args.frontend == "poll" else []) + (["--staging"] if args.staging else [])


def jumbo_mtu(size):
    """The uplink MTU a frame of `size` bytes needs, None for a standard one: jumbo frames pass
    only a port whose MTU takes them (14 B of Ethernet header aside)."""
    return size - 14 if size > 1514 else None


def netbackd_run(args, huge, scenario, size, vifs, costs=(0, 0), burst=None, key=None):
    """One measured netbackd run; returns packets per second (aggregate over vifs)."""
    secs = args.seconds
    key = key or (scenario, size, vifs, costs)
    burst = burst or args.burst
    if scenario in ("guest-wire", "scaling"):
        world = NetbackdWorld(args.work, "gw", huge, "net_null0,no-rx=1", vifs, costs=costs, burst=burst,
                              mtu=jumbo_mtu(size))
        try:
            # Scaling runs every generator on the one frontend CPU: busy-polling netfronts would
            # share it by time slices and measure the scheduler, so they sleep on their event
            # channel when their ring is full, at every vif count (1 included).
            flags = [] if scenario == "scaling" else frontend_flags(args)
            first = time.time()
            nfs = [world.netfront(g, ["--generate", str(size), "--seconds", str(secs)] + flags)
                   for g in world.guests]
            # Vifs leave the telemetry as their netfront closes: read the counters while all of
            # them run (starting 64 netfronts takes a while), just before the first one stops.
            time.sleep(max(0.0, min(0.5, secs / 4) - (time.time() - first)))
            t0 = world.worker_clock()
            time.sleep(max(0.0, max(time.time() + 0.2, first + secs - 0.4) - time.time()))
            keep_backend_idle(key, t0, world.worker_clock())
            global WIRE_FRACTION
            WIRE_FRACTION = None
            keep_counters(world, key)
            res = [netfront_result(p, secs + 30) for p in nfs]
            keep_frontend(key, res)
            answered = sum(r["tx_pkts"] / r["seconds"] for r in res)
            if WIRE_FRACTION is not None and WIRE_FRACTION < 0.99:
                log(f"  {scenario} {size}B: the uplink sent only {100 * WIRE_FRACTION:.0f}% of the frames netbackd "
                    "answered OKAY; counting those")
                return answered * WIRE_FRACTION
            return answered
        finally:
            world.close()
    if scenario == "wire-guest":
        # net_pcap's infinite_rx replays single-segment mbufs only: a jumbo MTU on the port gives
        # it netbackd's own RX pool of one-frame buffers (as the peer's --mbuf-size does).
        pcap = os.path.join(args.work, f"wire-{size}-{vifs}.pcap")
        write_pcap(pcap, size, [mac_of(10 + i) for i in range(vifs)])
        world = NetbackdWorld(args.work, "wg", huge, f"net_pcap0,rx_pcap={pcap},infinite_rx=1", vifs,
                              costs=costs, burst=burst, mtu=jumbo_mtu(size))
        try:
            nfs = [world.netfront(g, ["--sink", "--seconds", str(secs)] + frontend_flags(args)) for g in world.guests]
            # Vifs leave the telemetry as their netfront closes: read the counters just before.
            time.sleep(min(0.5, secs / 4))
            t0 = world.worker_clock()
            time.sleep(max(0.0, secs - 0.4 - min(0.5, secs / 4)))
            keep_backend_idle(key, t0, world.worker_clock())
            keep_counters(world, key)
            res = [netfront_result(p, secs + 30) for p in nfs]
            keep_frontend(key, res)
            return sum(r["rx_pkts"] / r["seconds"] for r in res)
        finally:
            world.close()
    if scenario == "guest-guest":
        world = NetbackdWorld(args.work, "gg", huge, None, 2, costs=costs, burst=burst)
        try:
            dst = mac_of(11)
            sink = world.netfront(world.guests[1], ["--sink", "--seconds", str(secs + 2)] + frontend_flags(args))
            time.sleep(0.5)
            gen = world.netfront(world.guests[0], ["--generate", str(size), "--seconds", str(secs),
                                                   "--dst-mac", dst] + frontend_flags(args))
            time.sleep(min(0.5, secs / 4))
            t0 = world.worker_clock()
            time.sleep(max(0.0, secs - 0.4 - min(0.5, secs / 4)))
            keep_backend_idle(key, t0, world.worker_clock())
            keep_counters(world, key)
            g = netfront_result(gen, secs + 30)
            s = netfront_result(sink, secs + 30)
            keep_frontend(key, [g])
            # The sink's window is longer than the generator's: rate over the sender's time.
            return s["rx_pkts"] / g["seconds"]
        finally:
            world.close()
    raise ValueError(scenario)


def json_line(proc, timeout, first_key):
    if proc.wait(timeout) is None:
        raise RuntimeError(f"{proc.log} did not finish:\n{proc.text()[-2000:]}")
    text = proc.text()
    i = text.rfind('{"' + first_key + '"')
    if i < 0:
        raise RuntimeError(f"no JSON summary in {proc.log}:\n{text[-2000:]}")
    return json.loads(text[i:].split("\n", 1)[0])


def netbackd_latency(args, huge, size):
    """Scenario 5 on netbackd: one guest with two vifs, one frame bouncing vif 0 -> vif 1 -> vif 0."""
    world = NetbackdWorld(args.work, "lat", huge, None, 0)
    try:
        world.add_guest(10, vifs=2)
        nf = world.netfront(world.guests[0], ["--latency-peer", "1", "--generate", str(size),
                                              "--seconds", str(args.seconds)])
        return json_line(nf, args.seconds + 40, "rounds")
    finally:
        world.close()


def peer_latency(args, huge, size):
    """Scenario 5 on the peer: netbackd-pingpong's two virtio-user ports through testpmd vhost-user io-fwd."""
    if not huge.dir:
        raise RuntimeError("the vhost-user peer needs hugepages (run as root)")
    d = tempfile.mkdtemp(prefix="peerlat-", dir=args.work)
    socks = [os.path.join(d, f"vhost{i}.sock") for i in range(2)]
    mem = ["--in-memory", "--single-file-segments", "--huge-dir", huge.dir, "-m", "512", "--no-pci",
           "--no-telemetry", "--log-level", "*:error"]
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    backend = Proc([TESTPMD, "-l", f"{FRONTEND_CPU},{BACKEND_CPU}", "--main-lcore", str(FRONTEND_CPU)] + mem +
                   [f"--file-prefix=blv{tag}"] + [f"--vdev=net_vhost{i},iface={s},queues=1" for i, s in enumerate(socks)] +
                   ["--", "--forward-mode=io", "--nb-cores=1", "--auto-start", "--stats-period=1", "--no-flush-rx"],
                   os.path.join(d, "backend.log"))
    try:
        for _ in range(100):
            if all(os.path.exists(s) for s in socks):
                break
            time.sleep(0.1)
        pp = Proc([PINGPONG, "-l", str(FRONTEND_CPU)] + mem +
                  [f"--file-prefix=blp{tag}"] +
                  [f"--vdev=net_virtio_user{i},path={s},queues=1" for i, s in enumerate(socks)] +
                  ["--", "--size", str(size), "--seconds", str(args.seconds)], os.path.join(d, "pingpong.log"))
        return json_line(pp, args.seconds + 40, "rounds")
    finally:
        backend.stop(signal.SIGINT, grace=10)
        shutil.rmtree(d, ignore_errors=True)


TESTPMD_PORT_STATS = re.compile(r"NIC statistics for port (\d+)(.*?)(?=NIC statistics for port|\Z)", re.S)


def testpmd_rates(text, port, key):
    """Per-second pps samples of one port from testpmd's --stats-period output."""
    out = []
    for m in TESTPMD_PORT_STATS.finditer(text):
        if int(m.group(1)) != port:
            continue
        r = re.search(key + r"-pps:\s+(\d+)", m.group(2))
        if r:
            out.append(int(r.group(1)))
    return out


def frontend_segments(scenario, size):
    """(txonly segment flags of the virtio-user generator, backend testpmd's mbuf flags)."""
    if size <= 1514:
        return [f"--txpkts={size}"], []
    # 9000 B with SG. guest->wire: txonly builds each frame from 2 KiB segments, which the
    # virtio-user driver sends as a descriptor chain and vhost dequeues into chained mbufs.
    # wire->guest: the pcap port cannot chain on RX without the scatter offload, which
    # testpmd can only switch on for every port and the vhost port refuses; so the backend's
    # mbufs hold a whole 9000 B frame, and vhost spreads it over the guest's 2 KiB buffers
    # with mergeable RX buffers (virtio-user's mrg_rxbuf, on by default).
    segs = [2048] * (size // 2048) + ([size % 2048] if size % 2048 else [])
    return ["--txpkts=" + ",".join(map(str, segs))], ([f"--mbuf-size={size + 256}"] if scenario == "wire-guest" else [])


# Where the virtio-user generator addresses its frames (testpmd txonly --eth-peer): a MAC the
# switching peer has on its wire port.
WIRE_PEER_MAC = "02:00:00:00:00:02"


def peer_mem(huge):
    return ["--in-memory", "--single-file-segments", "--huge-dir", huge.dir, "-m", "512", "--no-pci",
            "--no-telemetry", "--log-level", "*:error"]


def virtio_user_frontend(args, huge, d, sock, scenario, size, tag):
    """The peers' guest: testpmd with one net_virtio_user port, txonly or rxonly on FRONTEND_CPU."""
    mode = "txonly" if scenario == "guest-wire" else "rxonly"
    return Proc([TESTPMD, "-l", f"{BACKEND_CPU},{FRONTEND_CPU}", "--main-lcore", str(BACKEND_CPU)] + peer_mem(huge) +
                [f"--file-prefix=bvu{tag}", f"--vdev=net_virtio_user0,path={sock},queues=1", "--",
                 f"--forward-mode={mode}", "--nb-cores=1", "--auto-start", f"--eth-peer=0,{WIRE_PEER_MAC}",
                 "--stats-period=1", "--total-num-mbufs=16384"] + frontend_segments(scenario, size)[0],
                os.path.join(d, "frontend.log"))


def peer_run(args, huge, scenario, size, vifs):
    """testpmd net_vhost backend (io-fwd with net_null) fed by net_virtio_user; pps."""
    if not huge.dir:
        raise RuntimeError("the vhost-user peer needs hugepages (run as root)")
    d = tempfile.mkdtemp(prefix="peer-", dir=args.work)
    sock = os.path.join(d, "vhost.sock")
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    jumbo = frontend_segments(scenario, size)[1]
    if scenario == "guest-wire":
        wire = "net_null0,no-rx=1"
    else:
        pcap = os.path.join(d, "wire.pcap")
        write_pcap(pcap, size, [mac_of(10)])
        wire = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
    backend = Proc([TESTPMD, "-l", f"{FRONTEND_CPU},{BACKEND_CPU}", "--main-lcore", str(FRONTEND_CPU)] +
                   peer_mem(huge) +
                   [f"--file-prefix=bvh{tag}", f"--vdev=net_vhost0,iface={sock},queues=1", f"--vdev={wire}",
                    "--", "--forward-mode=io", "--nb-cores=1", "--auto-start", "--stats-period=1",
                    "--total-num-mbufs=16384", "--rxd=1024", "--txd=1024", "--no-flush-rx"] + jumbo,
                   os.path.join(d, "backend.log"))
    frontend = None
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        frontend = virtio_user_frontend(args, huge, d, sock, scenario, size, tag)
        # Counted where netbackd's figure is counted: what reached the wire (net_null, port 1,
        # TX) or what the backend put into the guest's ring (vhost, port 0, TX); virtio-user's
        # own per-second figures jump around. The window opens at the first second with
        # traffic: on a loaded machine the frontend's start-up alone can take seconds.
        port = 1 if scenario == "guest-wire" else 0
        deadline = time.time() + 30
        first = None
        while time.time() < deadline and first is None:
            time.sleep(0.5)
            got = testpmd_rates(backend.text(), port, "Tx")
            first = next((i for i, x in enumerate(got) if x > 0), None)
        if first is None:
            raise RuntimeError(f"no traffic through testpmd:\n{backend.text()[-1500:]}\n{frontend.text()[-1500:]}")
        time.sleep(args.seconds + 1.5)
        # The first second with traffic is partial: keep the steady ones after it.
        samples = testpmd_rates(backend.text(), port, "Tx")[first + 1:first + 1 + int(args.seconds)]
        if not samples:
            raise RuntimeError(f"no testpmd statistics:\n{backend.text()[-1500:]}\n{frontend.text()[-1500:]}")
        return statistics.median(samples)
    finally:
        if frontend:
            frontend.stop(signal.SIGINT, grace=10)
        backend.stop(signal.SIGINT, grace=10)
        shutil.rmtree(d, ignore_errors=True)


class OvsSwitch:
    """A private Open vSwitch with DPDK: its own ovsdb-server and ovs-vswitchd under `d`, never
    the system's service. ovs-vswitchd (every thread of it, its one PMD thread included) runs on
    BACKEND_CPU like netbackd's process; ovsdb-server, idle once the bridge is built, on
    FRONTEND_CPU like testpmd's main lcores. One bridge `br0` (netdev datapath) whose only flow
    is NORMAL: OVS's MAC-learning switch, as netbackd's is."""

    def __init__(self, d, huge, tag):
        self.d = d
        self.db = os.path.join(d, "conf.db")
        self.sock = os.path.join(d, "db.sock")
        self.ctl = os.path.join(d, "ovs-vswitchd.ctl")
        self.log = os.path.join(d, "ovs.log")
        # ovs-ofctl finds br0.mgmt and ovs-appctl the pidfiles under OVS_RUNDIR.
        self.env = dict(os.environ, OVS_RUNDIR=d, OVS_DBDIR=d, OVS_LOGDIR=d)
        self.dbserver = self.vswitchd = None
        try:
            self._start(huge, tag)
        except BaseException:
            self.close()
            raise

    def run(self, argv, timeout=60):
        with open(self.log, "a") as out:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, timeout=timeout, env=self.env, text=True)
        if r.returncode != 0:
            with open(self.log) as f:
                raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{f.read()[-2000:]}")
        return r.stdout

    def vsctl(self, *argv, wait=True):
        return self.run(["ovs-vsctl", f"--db=unix:{self.sock}", "--timeout=60"] + ([] if wait else ["--no-wait"]) +
                        list(argv))

    def appctl(self, *argv):
        return self.run(["ovs-appctl", "-t", self.ctl] + list(argv))

    def _start(self, huge, tag):
        self.run(["ovsdb-tool", "create", self.db, OVS_SCHEMA])
        self.dbserver = Proc(["ovsdb-server", self.db, f"--remote=punix:{self.sock}",
                              f"--pidfile={self.d}/ovsdb-server.pid", f"--unixctl={self.d}/ovsdb-server.ctl",
                              f"--log-file={self.d}/ovsdb-server.log"], os.path.join(self.d, "ovsdb-server.out"),
                             cpu=FRONTEND_CPU, env=self.env)
        for _ in range(100):
            if os.path.exists(self.sock):
                break
            time.sleep(0.1)
        self.vsctl("init", wait=False)
        mask = hex(1 << BACKEND_CPU)
        # DPDK in the hugetlbfs the bench reserved, 512 MiB as each testpmd gets, in memory
        # (no files, no shared config: several runs never meet), no PCI scan. Per-port mbuf
        # pools sized for each port's queues: OVS's default shared pool fills what it can of the
        # 512 MiB, and a second vhost-user port (latency) then fails to allocate its vrings.
        self.vsctl("set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   f"other_config:dpdk-lcore-mask={mask}", f"other_config:pmd-cpu-mask={mask}",
                   "other_config:dpdk-socket-mem=512", "other_config:dpdk-socket-limit=512",
                   "other_config:per-port-memory=true",
                   f"other_config:dpdk-hugepage-dir={huge.dir}",
                   f"other_config:dpdk-extra=--in-memory --no-pci --no-telemetry --file-prefix=bov{tag}",
                   wait=False)
        self.vswitchd = Proc([OVS_VSWITCHD, f"unix:{self.sock}", f"--pidfile={self.d}/ovs-vswitchd.pid",
                              f"--unixctl={self.ctl}", f"--log-file={self.d}/ovs-vswitchd.log"],
                             os.path.join(self.d, "ovs-vswitchd.out"), cpu=BACKEND_CPU, env=self.env)
        # Without --no-wait, ovs-vsctl returns once ovs-vswitchd has applied the change.
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure")
        self.run(["ovs-ofctl", "del-flows", "br0"])
        self.run(["ovs-ofctl", "add-flow", "br0", "actions=NORMAL"])

    def add_port(self, name, ofport, *options):
        self.vsctl("add-port", "br0", name, "--", "set", "Interface", name, f"ofport_request={ofport}", *options)
        st = self.vsctl("get", "Interface", name, "error").strip()
        if st and st != "[]":
            raise RuntimeError(f"ovs-dpdk port {name}: {st}")

    def tx_packets(self, port):
        """The port's TX counter now, straight from ovs-vswitchd (the database's copy lags 5 s)."""
        out = self.run(["ovs-ofctl", "dump-ports", "br0", port])
        m = re.search(r"tx pkts=(\d+|\?)", out)
        if not m:
            raise RuntimeError(f"no tx pkts for {port}:\n{out}")
        # '?': a vhost-user port whose guest has not connected yet.
        return 0 if m.group(1) == "?" else int(m.group(1))

    def close(self):
        if self.vswitchd:
            try:
                self.appctl("exit", "--cleanup")
                self.vswitchd.wait(15)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            self.vswitchd.stop()
            self.vswitchd = None
        if self.dbserver:
            self.dbserver.stop()
            self.dbserver = None


OVS_LAST_FLOWS = {}  # (scenario, size) -> the datapath flows of the last ovs-dpdk run
OVS_PMD_IDLE = {}  # (scenario, size) -> the PMD thread's idle share (%) over each run's window


def ovs_run(args, huge, scenario, size, vifs):
    """Open vSwitch with DPDK, NORMAL action, fed by net_virtio_user on a vhost-user port; pps.

    The guest is a dpdkvhostuser port (OVS the vhost-user server, as the testpmd peer's net_vhost),
    the wire the same DPDK vdev as the testpmd peer's, attached as an OVS dpdk port. The MAC each
    run's frames go to is a static entry in the bridge's MAC table, on the egress port: every
    frame is switched by that lookup, no flooding (OVS caches the NORMAL decision per flow in its
    datapath, whose exact-match cache then looks up every packet)."""
    if not huge.dir:
        raise RuntimeError("the ovs-dpdk peer needs hugepages (run as root)")
    d = tempfile.mkdtemp(prefix="ovs-", dir=args.work)
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    sw = frontend = None
    try:
        sw = OvsSwitch(d, huge, tag)
        mtu = [f"mtu_request={jumbo_mtu(size)}"] if jumbo_mtu(size) else []
        sw.add_port("vhu0", 1, "type=dpdkvhostuser", *mtu)
        if scenario == "guest-wire":
            wire = "net_null0,no-rx=1"
        else:
            # The guest's MAC is known before the wire starts replaying: no frame is flooded.
            sw.appctl("fdb/add", "br0", "vhu0", "0", mac_of(10))
            pcap = os.path.join(d, "wire.pcap")
            write_pcap(pcap, size, [mac_of(10)])
            wire = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
        sw.add_port("wire", 2, "type=dpdk", f"options:dpdk-devargs={wire}", *mtu)
        if scenario == "guest-wire":
            sw.appctl("fdb/add", "br0", "wire", "0", WIRE_PEER_MAC)
        frontend = virtio_user_frontend(args, huge, d, os.path.join(d, "vhu0"), scenario, size, tag)
        deadline = time.time() + 30
        if scenario == "guest-wire":
            # Counted where the testpmd peer is counted: what reached net_null (the OVS port's
            # TX, read from ovs-vswitchd itself: the database's copy lags 5 s), over a window
            # that opens a second after the first packet (start-up on a loaded machine is slow).
            while sw.tx_packets("wire") == 0:
                if time.time() > deadline:
                    raise RuntimeError(f"no traffic through ovs-dpdk:\n{frontend.text()[-1500:]}")
                time.sleep(0.5)
            time.sleep(1)
            sw.appctl("dpif-netdev/pmd-stats-clear")
            t0, c0 = time.time(), sw.tx_packets("wire")
            time.sleep(args.seconds)
            t1, c1 = time.time(), sw.tx_packets("wire")
            rate = (c1 - c0) / (t1 - t0)
        else:
            # OVS 3.1 reports no counters for a dpdkvhostuser port ('?' in dump-ports), so what
            # it put into the guest's ring is counted by the guest: virtio-user's per-second
            # Rx-pps, the steady seconds after the first one with traffic.
            first = None
            while first is None:
                if time.time() > deadline:
                    raise RuntimeError(f"no traffic through ovs-dpdk:\n{frontend.text()[-1500:]}")
                time.sleep(0.5)
                first = next((i for i, x in enumerate(testpmd_rates(frontend.text(), 0, "Rx")) if x > 0), None)
            time.sleep(1)
            sw.appctl("dpif-netdev/pmd-stats-clear")
            time.sleep(args.seconds + 0.5)
            samples = testpmd_rates(frontend.text(), 0, "Rx")[first + 1:first + 1 + int(args.seconds)]
            if not samples:
                raise RuntimeError(f"no virtio-user statistics:\n{frontend.text()[-1500:]}")
            rate = statistics.median(samples)
        OVS_LAST_FLOWS[(scenario, size)] = sw.appctl("dpctl/dump-flows").strip()
        m = re.search(r"idle cycles: \d+ \(([\d.]+)%\)", sw.appctl("dpif-netdev/pmd-stats-show"))
        if m:
            OVS_PMD_IDLE.setdefault((scenario, size), []).append(float(m.group(1)))
        return rate
    finally:
        if frontend:
            frontend.stop(signal.SIGINT, grace=10)
        if sw:
            sw.close()
        shutil.rmtree(d, ignore_errors=True)


def ovs_latency(args, huge, size):
    """Scenario 5 on OVS: netbackd-pingpong's two virtio-user ports on two dpdkvhostuser ports of
    the NORMAL bridge, each MAC a static entry on its port (pingpong sends 02:..:0a -> 02:..:0b
    and the answer back with the addresses swapped)."""
    if not huge.dir:
        raise RuntimeError("the ovs-dpdk peer needs hugepages (run as root)")
    d = tempfile.mkdtemp(prefix="ovslat-", dir=args.work)
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    sw = None
    try:
        sw = OvsSwitch(d, huge, tag)
        for i, mac in enumerate(("02:00:00:00:00:0a", "02:00:00:00:00:0b")):
            sw.add_port(f"vhu{i}", i + 1, "type=dpdkvhostuser")
            sw.appctl("fdb/add", "br0", f"vhu{i}", "0", mac)
        pp = Proc([PINGPONG, "-l", str(FRONTEND_CPU)] + peer_mem(huge) + [f"--file-prefix=blo{tag}"] +
                  [f"--vdev=net_virtio_user{i},path={d}/vhu{i},queues=1" for i in range(2)] +
                  ["--", "--size", str(size), "--seconds", str(args.seconds)], os.path.join(d, "pingpong.log"))
        r = json_line(pp, args.seconds + 40, "rounds")
        if not r["rounds"]:
            with open(os.path.join(d, "ovs-vswitchd.log")) as f:
                raise RuntimeError(f"no frame came back through ovs-dpdk ({r['lost']} lost):\n{pp.text()[-1000:]}\n"
                                   f"{sw.appctl('dpctl/dump-flows')}\n{f.read()[-3000:]}")
        return r
    finally:
        if sw:
            sw.close()
        shutil.rmtree(d, ignore_errors=True)


PEERS = {"vhost-user": peer_run, "ovs-dpdk": ovs_run}
LATENCY_PEERS = {"vhost-user": peer_latency, "ovs-dpdk": ovs_latency}


def idle_report(args, huge, vifs):
    """CPU of netbackd over a window with `vifs` connected idle vifs, and memory per vif."""
    world = NetbackdWorld(args.work, "idle", huge, "net_null0,no-rx=1", 0)
    nfs = []
    try:
        time.sleep(1)
        base_rss = rss_kib(world.netbackd.p.pid)
        for i in range(vifs):
            world.add_guest(10 + i)
            nfs.append(world.netfront(world.guests[-1], [], cpu=FRONTEND_CPU))
        time.sleep(2)
        rss = rss_kib(world.netbackd.p.pid)
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), cpu_ticks(world.netbackd.p.pid)
        time.sleep(args.idle_seconds)
        t1, c1 = time.monotonic(), cpu_ticks(world.netbackd.p.pid)
        return {"vifs": vifs, "cpu_pct": 100.0 * (c1 - c0) / hz / (t1 - t0),
                "rss_per_vif_kib": (rss - base_rss) / max(1, vifs), "window_s": t1 - t0}
    finally:
        for p in nfs:
            p.stop()
        world.close()


def fmt_rate(x):
    return f"{x / 1e6:6.2f}"


# The grant-copy cost table: (per-batch ns, per-segment ns) charged by the simulated host, and
# the worker bursts they are crossed with. 0/0 is the plain simulation; the others bracket a
# GNTTABOP_copy hypercall (see README: Xen's own measurements of a few hundred ns to ~2 us per
# hypercall, plus the per-segment grant lookup, pin and p2m walk).
COPY_COSTS = [(0, 0), (500, 50), (2000, 100)]
BURSTS = [1, 4, 8, 32, 64]


def copycost_table(args, huge, writer):
    """guest->wire 64 B, netbackd only, for every (cost, burst); runs interleaved across the grid."""
    runs = {}
    for rep in range(args.cost_runs):
        for cost in COPY_COSTS:
            for burst in BURSTS:
                try:
                    pps = netbackd_run(args, huge, "guest-wire", 64, 1, costs=cost, burst=burst,
                                       key=("copycost", cost, burst))
                except Exception as e:
                    log(f"copycost {cost} burst {burst} run {rep}: {e}")
                    continue
                runs.setdefault((cost, burst), []).append(pps)
                if writer:
                    writer.writerow([cost[0], cost[1], burst, f"{pps / 1e6:.4f}"])
                log(f"  copycost batch {cost[0]} ns + {cost[1]} ns/seg, burst {burst}, run {rep + 1}: "
                    f"{fmt_rate(pps)} Mpps")
    return runs


def frontend_modes(args, huge, size=64):
    """guest->wire with the netfront in event mode (sleeps; the backend kicks it awake per batch)
    and in poll mode (no events), interleaved: what the kick costs netbackd."""
    saved = args.frontend
    runs = {"event": [], "poll": []}
    try:
        for i in range(args.pairs):
            for mode in ("event", "poll"):
                args.frontend = mode
                try:
                    runs[mode].append(netbackd_run(args, huge, "guest-wire", size, 1, key=("frontend", mode)))
                except Exception as e:
                    log(f"frontend {mode} run {i}: {e}")
            log(f"  frontend modes pair {i + 1}: event {fmt_rate(runs['event'][-1]) if runs['event'] else '-'} Mpps, "
                f"poll {fmt_rate(runs['poll'][-1]) if runs['poll'] else '-'} Mpps")
    finally:
        args.frontend = saved
    return runs


def median_or_none(xs):
    return statistics.median(xs) if xs else None


def write_plots(base, table, scaling, copycost):
    """gnuplot PNGs next to the CSV: Mpps and Gbit/s against frame size and against vif count."""
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found (apt-get install gnuplot-nox): no plots")
        return []
    made = []
    term = 'set terminal pngcairo size 900,560 noenhanced font "sans,11"\nset grid\nset key top right\n'
    # Against frame size: one data block per (scenario, system).
    series = {}
    peer_seen = set()
    for sc, size, vifs, cost, a, b, _ in table:
        if sc not in ("guest-wire", "wire-guest", "guest-guest"):
            continue
        if a:
            series.setdefault(f"{sc} netbackd {cost_name(cost)}", []).append((size, statistics.median(a)))
        for p, xs in b.items():
            if xs and (sc, size, p) not in peer_seen:
                peer_seen.add((sc, size, p))
                series.setdefault(f"{sc} {p}", []).append((size, statistics.median(xs)))
    if series:
        dat = base + "-size.dat"
        with open(dat, "w") as f:
            for name, pts in series.items():
                f.write(f'"{name}"\n')
                for size, pps in sorted(pts):
                    f.write(f"{size} {pps / 1e6:.4f} {wire_gbps(pps, size):.4f}\n")
                f.write("\n\n")
        for what, col, ylabel in (("mpps", 2, "Mpps (median)"), ("gbps", 3, "Gbit/s on the wire (median)")):
            png = f"{base}-{what}-size.png"
            script = (term + f'set output "{png}"\nset logscale x 2\nset xlabel "frame size (bytes)"\n'
                      f'set ylabel "{ylabel}"\nset title "netbackd vs its peers: {ylabel} by frame size"\n'
                      f'plot for [i=0:{len(series) - 1}] "{dat}" index i using 1:{col} with linespoints '
                      f'lw 2 pt 7 title columnheader(1)\n')
            subprocess.run([gp], input=script, text=True, check=False)
            made.append(png)
    if scaling:
        dat = base + "-vifs.dat"
        with open(dat, "w") as f:
            for vifs, pps in sorted(scaling):
                f.write(f"{vifs} {pps / 1e6:.4f} {wire_gbps(pps, 64):.4f}\n")
        png = base + "-vifs.png"
        script = (term + f'set output "{png}"\nset logscale x 2\nset xlabel "vifs on one worker (64 B guest->wire)"\n'
                  'set ylabel "Mpps (median, aggregate)"\nset y2label "Gbit/s on the wire"\nset ytics nomirror\n'
                  'set y2tics\nset title "netbackd: aggregate rate by vif count"\n'
                  f'plot "{dat}" using 1:2 with linespoints lw 2 pt 7 title "Mpps", '
                  f'"{dat}" using 1:3 axes x1y2 with linespoints lw 2 pt 5 dt 2 title "Gbit/s"\n')
        subprocess.run([gp], input=script, text=True, check=False)
        made.append(png)
    if copycost:
        dat = base + "-copycost.dat"
        with open(dat, "w") as f:
            for cost in COPY_COSTS:
                f.write(f'"{cost[0]} ns/batch + {cost[1]} ns/segment"\n')
                for burst in BURSTS:
                    m = median_or_none(copycost.get((cost, burst), []))
                    if m is not None:
                        f.write(f"{burst} {m / 1e6:.4f}\n")
                f.write("\n\n")
        png = base + "-copycost.png"
        script = (term + f'set output "{png}"\nset logscale x 2\nset xlabel "worker burst (packets per grant copy)"\n'
                  'set ylabel "Mpps (median), 64 B guest->wire"\n'
                  'set title "netbackd: simulated grant-copy hypercall cost amortised by the burst"\n'
                  f'plot for [i=0:{len(COPY_COSTS) - 1}] "{dat}" index i using 1:2 with linespoints lw 2 pt 7 '
                  'title columnheader(1)\n')
        subprocess.run([gp], input=script, text=True, check=False)
        made.append(png)
    return [m for m in made if os.path.exists(m)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="development mode: 64 B, 2 pairs, short runs (< 2 min)")
    ap.add_argument("--csv", help="write one row per measured run: " + ",".join(CSV_COLUMNS) +
                    "; also BASE-latency.csv, BASE-copycost.csv and PNG plots next to it")
    ap.add_argument("--sizes", default=None, help="comma-separated frame sizes (default 64,256,1500,9000)")
    ap.add_argument("--scenarios", default=None,
                    help="comma list of guest-wire,wire-guest,guest-guest,scaling,latency,copycost,"
                         "frontend-modes,idle")
    ap.add_argument("--pairs", type=int, default=None, help="A B pairs per point (default 5; quick 2)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per run (default 5; quick 2)")
    ap.add_argument("--vifs", default="1,4,16,64", help="vif counts for the scaling scenario")
    ap.add_argument("--latency-sizes", default=None, help="frame sizes of the latency scenario (default 64,1500; quick 64)")
    ap.add_argument("--burst", type=int, default=None,
                    help="netbackd [workers] burst for every run but copycost's (default: the worker's own)")
    ap.add_argument("--cost-runs", type=int, default=None, help="runs per (cost, burst) point (default 3; quick 1)")
    ap.add_argument("--frontend", choices=("poll", "event"), default="poll",
                    help="netfront generator/sink: busy-poll without events like virtio-user (default), "
                         "or sleep on the event channel like Linux netfront")
    ap.add_argument("--idle-vifs", type=int, default=None, help="idle vifs for the idle report (default 64)")
    ap.add_argument("--idle-seconds", type=float, default=None, help="idle CPU window (default 10; quick 3)")
    ap.add_argument("--costs", default=HEADLINE_COSTS,
                    help="simulated grant-copy costs of the headline points, 'ns/hypercall+ns/segment' "
                         f"comma list (default {HEADLINE_COSTS}: free, and the README's middle row)")
    ap.add_argument("--staging", action="store_true",
                    help="netfronts use staging grants: netbackd maps their buffers once and copies with "
                         "memcpy, no grant copy (the headline rows are then labelled 'staging')")
    ap.add_argument("--peers", default=None,
                    help="comma list of the peers run against netbackd: vhost-user (testpmd io-fwd), "
                         "ovs-dpdk (Open vSwitch with DPDK, NORMAL action); default both, or vhost-user "
                         "alone when openvswitch-switch-dpdk is not installed")
    ap.add_argument("--no-peer", action="store_true", help="measure netbackd only")
    ap.add_argument("--no-huge", action="store_true", help="do not reserve hugepages (implies --no-peer)")
    ap.add_argument("--workdir", default=None, help="where runs keep their files (default: a temp dir)")
    args = ap.parse_args()
    q = args.quick
    sizes = [int(s) for s in (args.sizes or ("64" if q else "64,256,1500,9000")).split(",")]
    scenarios = (args.scenarios or ("guest-wire,wire-guest,latency,idle" if q else
                                    "guest-wire,wire-guest,guest-guest,scaling,latency,copycost,frontend-modes,idle")
                 ).split(",")
    args.pairs = args.pairs or (2 if q else 5)
    args.seconds = args.seconds or (2 if q else 5)
    args.cost_runs = args.cost_runs or (1 if q else 3)
    args.latency_sizes = args.latency_sizes or ("64" if q else "64,1500")
    args.idle_vifs = args.idle_vifs if args.idle_vifs is not None else (8 if q else 64)
    args.idle_seconds = args.idle_seconds or (3 if q else 10)
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("netbackd-bench needs two CPUs (one backend core, one frontend core)")

    costs = parse_costs(args.costs)
    want_peer = not args.no_peer and not args.no_huge and any(
        sc in scenarios for sc in ("guest-wire", "wire-guest", "latency"))
    ovs_installed = os.access(OVS_VSWITCHD, os.X_OK) and bool(shutil.which("ovs-vsctl"))
    if args.peers:
        peers = args.peers.split(",")
        for p in peers:
            if p not in PEERS:
                sys.exit(f"netbackd-bench: unknown peer {p} (known: {', '.join(PEERS)})")
    else:
        peers = ["vhost-user"] + (["ovs-dpdk"] if ovs_installed else [])
    peers = peers if want_peer else []
    # A peer asked for and unable to run fails the bench with its reason: a table without the
    # peer column would read as a comparison that was never made.
    if peers and not (os.path.exists(TESTPMD) or shutil.which(TESTPMD)):
        sys.exit(f"netbackd-bench: the {' and '.join(peers)} peer needs dpdk-testpmd ({TESTPMD} not found): install "
                 "Debian's dpdk-dev (make bench does) or pass --no-peer")
    if "ovs-dpdk" in peers:
        missing = [b for b in (OVS_VSWITCHD, OVS_SCHEMA) if not os.path.exists(b)] + \
            [b for b in ("ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ovsdb-server", "ovsdb-tool") if not shutil.which(b)]
        if missing:
            sys.exit(f"netbackd-bench: the ovs-dpdk peer needs Debian's openvswitch-switch-dpdk ({', '.join(missing)} "
                     "not found; make bench installs it), or pass --peers vhost-user or --no-peer")

    args.work = tempfile.mkdtemp(prefix="netbackd-bench-", dir=args.workdir)
    huge = Hugepages.none() if args.no_huge else Hugepages(HUGE_DIR_PAGES, args.work)
    if peers and huge.dir is None:
        shutil.rmtree(args.work, ignore_errors=True)
        sys.exit("netbackd-bench: the peers need 2 MiB hugepages (run as root with "
                 "/sys/kernel/mm/hugepages/hugepages-2048kB), or pass --no-peer or --no-huge")

    def cleanup():
        huge.release()
        shutil.rmtree(args.work, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    load = []  # 1-minute load averages sampled between runs: the machine is shared

    def sample_load():
        load.append(os.getloadavg()[0])

    started = time.time()
    log(f"netbackd-bench: backend on CPU {BACKEND_CPU}, frontend side on CPU {FRONTEND_CPU}; "
        f"{'hugepages' if huge.dir else 'no hugepages (peer skipped)'}; peers {', '.join(peers) or 'none'}; "
        f"{args.pairs} pairs x {args.seconds}s; "
        f"netfront {args.frontend} mode{' with staging grants' if args.staging else ''}")
    rows = []      # csv rows
    table = []     # printed last
    base = os.path.splitext(args.csv)[0] if args.csv else None
    csv_file = open(args.csv, "w", newline="") if args.csv else None
    writer = csv.writer(csv_file) if csv_file else None
    if writer:
        writer.writerow(CSV_COLUMNS)

    def record(scenario, size, vifs, system, cost, pps, waits=("", "")):
        row = [scenario, size, vifs, system, cost_name(cost), f"{pps / 1e6:.4f}", f"{wire_gbps(pps, size):.4f}",
               *waits]
        rows.append(row)
        if writer:
            writer.writerow(row)
            csv_file.flush()

    peer_failures = []  # (peer, point, last error) where a peer was asked for and never ran
    collapses = []      # peer runs left out of the ratios (collapsed_runs)

    def point(scenario, size, vifs, with_peer):
        a = {cost: [] for cost in costs}
        run_peers = peers if with_peer else []
        b = {p: [] for p in run_peers}
        last_peer_error = {}
        for i in range(args.pairs):
            for cost in costs:
                sample_load()
                key = (scenario, size, vifs, cost)
                before = dict(COUNTERS.get(key, {}))
                try:
                    a[cost].append(netbackd_run(args, huge, scenario, size, vifs, costs=cost, key=key))
                    record(scenario, size, vifs, "netbackd+staging" if args.staging else "netbackd", cost,
                           a[cost][-1], run_bottleneck(before, COUNTERS.get(key, {})))
                except Exception as e:  # a failed run is reported, not fatal to the others
                    log(f"{scenario} {size}B netbackd {cost_name(cost)} run {i}: {e}")
            # Each peer in its turn, in every pair: all systems see the same stretch of load.
            for p in run_peers:
                try:
                    idle_runs = len(OVS_PMD_IDLE.get((scenario, size), []))
                    b[p].append(PEERS[p](args, huge, scenario, size, vifs))
                    idle = OVS_PMD_IDLE.get((scenario, size), [])
                    record(scenario, size, vifs, p, None, b[p][-1],
                           (f"{idle[-1]:.1f}" if len(idle) > idle_runs else "", ""))
                except Exception as e:
                    last_peer_error[p] = e
                    log(f"{scenario} {size}B {p} run {i}: {e}")
            log(f"  {scenario} {size}B vifs={vifs} pair {i + 1}: netbackd " +
                ", ".join(f"{cost_name(c)} {fmt_rate(a[c][-1]) if a[c] else '-'}" for c in costs) + " Mpps" +
                "".join(f", {p} {fmt_rate(b[p][-1]) if b[p] else '-'} Mpps" for p in run_peers))
        for p in run_peers:
            if not b[p]:
                peer_failures.append((p, f"{scenario} {size}B", last_peer_error.get(p)))
        collapsed = {p: collapsed_runs(b[p]) for p in run_peers}
        for p in run_peers:
            if collapsed[p]:
                collapses.append(f"{p} {scenario} {size}B: run(s) {', '.join(str(i + 1) for i in sorted(collapsed[p]))} "
                                 f"of {len(b[p])} at {', '.join(fmt_rate(b[p][i]).strip() for i in sorted(collapsed[p]))} "
                                 f"Mpps against its best {fmt_rate(max(b[p])).strip()}")
        for cost in costs:
            ratios = {p: [x / y for i, (x, y) in enumerate(zip(a[cost], b[p])) if y > 0 and i not in collapsed[p]]
                      for p in run_peers}
            table.append((scenario, size, vifs, cost, a[cost], b, ratios))

    peer = bool(peers)
    latency = []   # (size, system, [LatencyStats dicts])
    copycost = {}
    fmodes = None
    for sc in scenarios:
        if sc in ("guest-wire", "wire-guest"):
            for s in sizes:
                point(sc, s, 1, peer)
        elif sc == "guest-guest":
            for s in sizes:
                point(sc, s, 2, False)
        elif sc == "scaling":
            for v in [int(x) for x in args.vifs.split(",")]:
                point("scaling", 64, v, False)
        elif sc == "latency":
            for size in [int(x) for x in args.latency_sizes.split(",")]:
                nb, pr = [], {p: [] for p in peers}
                for i in range(args.pairs):
                    sample_load()
                    try:
                        nb.append(netbackd_latency(args, huge, size))
                    except Exception as e:
                        log(f"latency {size}B netbackd run {i}: {e}")
                    for p in peers:
                        try:
                            pr[p].append(LATENCY_PEERS[p](args, huge, size))
                        except Exception as e:
                            log(f"latency {size}B {p} run {i}: {e}")
                    log(f"  latency {size}B pair {i + 1}: netbackd p50 {nb[-1]['p50_us'] if nb else '-'} us" +
                        "".join(f", {p} p50 {pr[p][-1]['p50_us'] if pr[p] else '-'} us" for p in peers))
                latency.append((size, "netbackd", nb))
                for p in peers:
                    latency.append((size, p, pr[p]))
                    if not pr[p]:
                        peer_failures.append((p, f"latency {size}B", "no run succeeded (see the log above)"))
        elif sc == "frontend-modes":
            sample_load()
            fmodes = frontend_modes(args, huge)
        elif sc == "copycost":
            sample_load()
            cc_file = open(base + "-copycost.csv", "w", newline="") if base else None
            cc_writer = csv.writer(cc_file) if cc_file else None
            if cc_writer:
                cc_writer.writerow(["batch_ns", "segment_ns", "burst", "mpps"])
            copycost = copycost_table(args, huge, cc_writer)
            if cc_file:
                cc_file.close()
    idle = None
    if "idle" in scenarios:
        sample_load()
        try:
            idle = idle_report(args, huge, args.idle_vifs)
        except Exception as e:
            log(f"idle report: {e}")
    sample_load()
    if csv_file:
        csv_file.close()
    if base and latency:
        with open(base + "-latency.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["size", "system", "rounds", "lost", "p50_us", "p99_us", "p999_us", "min_us", "max_us"])
            for size, system, runs in latency:
                for r in runs:
                    w.writerow([size, system] + [r[k] for k in ("rounds", "lost", "p50_us", "p99_us", "p999_us",
                                                                "min_us", "max_us")])

    def cell(xs):
        if not xs:
            return f"{'-':>22}"
        return f"{statistics.median(xs) / 1e6:7.2f} [{min(xs) / 1e6:5.2f}-{max(xs) / 1e6:5.2f}]"

    print(f"\nnetbackd-bench ({'quick' if q else 'full'}): Mpps median [min-max] over {args.pairs} interleaved "
          f"runs of {args.seconds:g}s; backend on CPU {BACKEND_CPU}, frontend side on CPU {FRONTEND_CPU}; "
          f"netfront in {args.frontend} mode")
    print("hypercall: simulated grant-copy cost, ns per hypercall + ns per segment (gntdev: one hypercall "
          "per 16 segments); 0+0 is netbackd's own cost, the other rows are the figures closest to Xen")
    print(f"{'scenario':<12}{'size':>6}{'vifs':>5}{'hypercall':>10}  {'netbackd':>22}" +
          "".join(f"  {p:>22}" for p in peers) + f"  {'Gbit/s nb':>9}" +
          "".join(f"  {'nb/' + p + ' med [min-max]':>26}" for p in peers))
    for sc, size, vifs, cost, a, b, ratios in table:
        gb = f"{wire_gbps(statistics.median(a), size):9.2f}" if a else f"{'-':>9}"
        # A point without peers (guest-guest, scaling) has none to compare with, by design.
        peer_cells = "".join(f"  {cell(b[p]) if p in b else 'no peer scenario':>22}" for p in peers)
        ratio_cells = "".join(
            f"  {(f'{statistics.median(ratios[p]):6.2f} [{min(ratios[p]):.2f}-{max(ratios[p]):.2f}]' if ratios.get(p) else '-'):>26}"
            for p in peers)
        print(f"{sc:<12}{size:>6}{vifs:>5}{cost_name(cost):>10}  {cell(a)}{peer_cells}  {gb}{ratio_cells}")
    if collapses:
        print(f"peer runs below {COLLAPSE_SHARE:.0%} of the peer's best run at the same point, left out of the "
              "ratios (the bimodal peer's low mode):")
        for line in collapses:
            print(f"  {line}")
    if latency:
        print("latency (one frame in flight, round trip A -> backend -> B -> backend -> A; "
              "median over runs of each percentile, us):")
        print(f"  {'size':>5} {'system':<11} {'runs':>4} {'p50':>8} {'p99':>8} {'p999':>8} {'lost':>5}")
        for size, system, runs in latency:
            if not runs:
                print(f"  {size:>5} {system:<11} {0:>4} {'-':>8} {'-':>8} {'-':>8}")
                continue
            med = {k: statistics.median(r[k] for r in runs) for k in ("p50_us", "p99_us", "p999_us")}
            print(f"  {size:>5} {system:<11} {len(runs):>4} {med['p50_us']:8.2f} {med['p99_us']:8.2f} "
                  f"{med['p999_us']:8.2f} {sum(r['lost'] for r in runs):>5}")
    if copycost:
        print(f"grant-copy cost x worker burst, 64 B guest->wire, netbackd Mpps median of {args.cost_runs} "
              "(simulated hypercall charged per batch + per segment):")
        print(f"  {'ns/batch + ns/segment':<22}" + "".join(f"{'burst ' + str(b):>10}" for b in BURSTS))
        for cost in COPY_COSTS:
            cells = []
            for burst in BURSTS:
                m = median_or_none(copycost.get((cost, burst), []))
                cells.append(f"{m / 1e6:10.2f}" if m is not None else f"{'-':>10}")
            print(f"  {f'{cost[0]} + {cost[1]}':<22}" + "".join(cells))
        print("  grant-copy segments per batch measured (telemetry), same grid:")
        for cost in COPY_COSTS:
            cells = []
            for burst in BURSTS:
                c = COUNTERS.get(("copycost", cost, burst))
                cells.append(f"{c['copy_segments'] / c['copy_batches']:10.1f}" if c and c["copy_batches"]
                             else f"{'-':>10}")
            print(f"  {f'{cost[0]} + {cost[1]}':<22}" + "".join(cells))
    if fmodes:
        print("netfront event mode (sleeps, kicked per batch) vs poll mode (no events), 64 B guest->wire, "
              "interleaved:")
        for mode in ("event", "poll"):
            xs = fmodes[mode]
            c = COUNTERS.get(("frontend", mode))
            pkts = (c["tx_packets"] + c["rx_packets"]) if c else 0
            print(f"  {mode:<6} {cell(xs)} Mpps  notifications/packet "
                  f"{c['notifications'] / pkts if pkts else float('nan'):.4f}")
        ratios = [p / e for e, p in zip(fmodes["event"], fmodes["poll"]) if e > 0]
        if ratios:
            print(f"  poll/event ratio per pair: median {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}]")
    plain = {k: v for k, v in COUNTERS.items() if k[0] not in ("copycost", "frontend")}
    if plain:
        print("data-plane counters over all netbackd runs (telemetry /netbackd/vifs):")
        for (sc, size, vifs, cost), c in plain.items():
            pkts = c["tx_packets"] + c["rx_packets"]
            wire = ""
            if sc in ("guest-wire", "scaling") and c["tx_packets"]:
                wire = f"  uplink sent {100.0 * c['wire_opackets'] / c['tx_packets']:.0f}% of the guest frames"
            print(f"  {sc:<12}{size:>6}{vifs:>5}{cost_name(cost):>9}  notifications/packet "
                  f"{c['notifications'] / pkts if pkts else float('nan'):.4f}  grant-copy segments/batch "
                  f"{c['copy_segments'] / c['copy_batches'] if c['copy_batches'] else float('nan'):.1f}"
                  f"  grant-copy calls {c['copy_batches']}  memcpy'd segments {c.get('staged_copies', 0)}{wire}")
            if bottleneck(c):
                print(f"  {'':<12}{'':>6}{'':>5}{'':>9}  {bottleneck(c)}")
    if OVS_PMD_IDLE:
        # Who waited for whom on the OVS side: a PMD idle most of its cycles waited for its guest.
        print("ovs-dpdk PMD thread (CPU 1) idle share of its cycles over each run's window "
              "(pmd-stats-show), and the last run's datapath flow:")
        for (sc, size), xs in OVS_PMD_IDLE.items():
            print(f"  {sc:<12}{size:>6}  idle {statistics.median(xs):5.1f}% median [{min(xs):.1f}-{max(xs):.1f}]")
            for line in OVS_LAST_FLOWS.get((sc, size), "").splitlines():
                if line.startswith("recirc_id"):
                    print(f"  {'':<18}{line}")
    if idle:
        print(f"idle: netbackd {idle['cpu_pct']:.2f}% of one core with {idle['vifs']} connected idle vifs "
              f"over {idle['window_s']:.1f}s; RSS growth {idle['rss_per_vif_kib']:.0f} KiB per vif")
    print(f"machine: {os.cpu_count()} CPUs; 1-min load average during the run {min(load):.2f}-{max(load):.2f} "
          f"(median {statistics.median(load):.2f}); {time.time() - started:.0f} s")
    if base:
        scaling = [(vifs, statistics.median(a)) for sc, size, vifs, cost, a, b, _ in table
                   if sc == "scaling" and a and cost == costs[0]]
        for png in write_plots(base, table, scaling, copycost):
            print(f"plot: {png}")
    if not rows and not latency and not copycost and not idle:
        sys.exit("netbackd-bench: no run succeeded")
    if peer_failures:
        for p, what, e in peer_failures:
            log(f"netbackd-bench: the {p} peer never ran at {what}: {e}")
        sys.exit("netbackd-bench: the peer failed (see above); pass --no-peer to measure netbackd alone")


if __name__ == "__main__":
    main()
