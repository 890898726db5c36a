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
TESTPMD = os.environ.get("TESTPMD_BINARY", shutil.which("dpdk-testpmd") or "dpdk-testpmd")

# One core for the backend (netbackd's process / testpmd's forwarding lcore), the other for the
# frontend side (netfront generator or sink / virtio-user's forwarding lcore).
BACKEND_CPU = 1
FRONTEND_CPU = 0
DRIVER_DOMID = 1
HUGE_DIR_PAGES = 700  # 2 MiB pages: two testpmds of -m 512 each, or one netbackd

CSV_COLUMNS = ["scenario", "size", "vifs", "system", "mpps", "gbps"]


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
        return json.loads(s.recv(1 << 20).decode())[cmd]


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

    def __init__(self, work, tag, huge, uplink_vdev, guests, polling="adaptive"):
        self.dir = tempfile.mkdtemp(prefix=f"nb-{tag}-", dir=work)
        self.host = os.path.join(self.dir, "host")
        self.xlog = os.path.join(self.dir, "xensim.log")
        self.netbackd = None
        self.up = False
        try:
            self._start(huge, tag, uplink_vdev, guests, polling)
        except BaseException:
            # The caller never gets the world to close: a failed start must not leave a host up.
            self.close()
            raise

    def _start(self, huge, tag, uplink_vdev, guests, polling):
        os.makedirs(os.path.join(self.dir, "clients"))
        run_ok([XENSIM, "up", "--dir", self.host, "--quota-nodes", "8000"], self.xlog)
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
            ports = f'[[dpdk.ports]]\nname = "uplink0"\nvdev = "{uplink_vdev}"\n'
        with open(os.path.join(self.dir, "netbackd.toml"), "w") as f:
            f.write(f'[service]\nplatform = "sim"\nlog_level = "warn"\nclients_dir = "clients"\n'
                    f'[sim]\ndir = "{self.host}"\ndomid = {DRIVER_DOMID}\n'
                    f'[vif]\nmax_queues = 1\n'
                    f'[dpdk]\neal_args = {json.dumps(eal)}\n{ports}'
                    f'[workers]\ncores = [{BACKEND_CPU}]\npolling = "{polling}"\n')
        self.netbackd = Proc([NETBACKD, "run", "--config", os.path.join(self.dir, "netbackd.toml")],
                             os.path.join(self.dir, "netbackd.log"), cpu=BACKEND_CPU)
        self.guests = []
        for i in range(guests):
            self.add_guest(10 + i)

    def add_guest(self, domid):
        name = f"g{domid}"
        run_ok([XENSIM, "domain", "create", name, "--domid", str(domid), "--memory", "32", "--dir", self.host],
               self.xlog)
        # attach waits for InitWait, i.e. for netbackd to be up and serving.
        run_ok([XENSIM, "attach", name, "--backend", str(DRIVER_DOMID), "--mac", mac_of(domid), "--devid", "0",
                "--timeout-ms", "20000", "--dir", self.host], self.xlog, timeout=40)
        self.guests.append(name)

    def netfront(self, guest, args, cpu=FRONTEND_CPU):
        logpath = os.path.join(self.dir, f"nf-{guest}-{len(os.listdir(self.dir))}.log")
        return Proc([XENSIM, "netfront", guest, "--devid", "0", "--dir", self.host] + args, logpath, cpu=cpu)

    def counters(self):
        """Data-plane counters summed over vifs: packets, notifications, grant-copy batches/segments."""
        keys = ("tx_packets", "rx_packets", "notifications", "copy_batches", "copy_segments")
        total = dict.fromkeys(keys, 0)
        try:
            for v in telemetry(self.prefix, "/netbackd/vifs").values():
                for k in keys:
                    total[k] += int(v.get(k, 0))
        except (OSError, ValueError, KeyError, AttributeError) as e:
            log(f"telemetry: {e}")
            return None
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


COUNTERS = {}  # (scenario, size, vifs) -> summed data-plane counters of every run


def keep_counters(world, scenario, size, vifs):
    c = world.counters()
    if c:
        acc = COUNTERS.setdefault((scenario, size, vifs), dict.fromkeys(c, 0))
        for k, v in c.items():
            acc[k] += v


def netbackd_run(args, huge, scenario, size, vifs):
    """One measured netbackd run; returns packets per second (aggregate over vifs)."""
    secs = args.seconds
    if scenario in ("guest-wire", "scaling"):
        world = NetbackdWorld(args.work, "gw", huge, "net_null0,no-rx=1", vifs)
        try:
            nfs = [world.netfront(g, ["--generate", str(size), "--seconds", str(secs)]) for g in world.guests]
            # Vifs leave the telemetry as their netfront closes: read the counters just before.
            time.sleep(max(0.0, secs - 0.4))
            keep_counters(world, scenario, size, vifs)
            res = [netfront_result(p, secs + 30) for p in nfs]
            return sum(r["tx_pkts"] / r["seconds"] for r in res)
        finally:
            world.close()
    if scenario == "wire-guest":
        pcap = os.path.join(args.work, f"wire-{size}-{vifs}.pcap")
        write_pcap(pcap, size, [mac_of(10 + i) for i in range(vifs)])
        world = NetbackdWorld(args.work, "wg", huge, f"net_pcap0,rx_pcap={pcap},infinite_rx=1", vifs)
        try:
            nfs = [world.netfront(g, ["--sink", "--seconds", str(secs)]) for g in world.guests]
            # Vifs leave the telemetry as their netfront closes: read the counters just before.
            time.sleep(max(0.0, secs - 0.4))
            keep_counters(world, scenario, size, vifs)
            res = [netfront_result(p, secs + 30) for p in nfs]
            return sum(r["rx_pkts"] / r["seconds"] for r in res)
        finally:
            world.close()
    if scenario == "guest-guest":
        world = NetbackdWorld(args.work, "gg", huge, None, 2)
        try:
            dst = mac_of(11)
            sink = world.netfront(world.guests[1], ["--sink", "--seconds", str(secs + 2)])
            time.sleep(0.5)
            gen = world.netfront(world.guests[0], ["--generate", str(size), "--seconds", str(secs),
                                                   "--dst-mac", dst])
            time.sleep(max(0.0, secs - 0.4))
            keep_counters(world, scenario, size, vifs)
            g = netfront_result(gen, secs + 30)
            s = netfront_result(sink, secs + 30)
            # The sink's window is longer than the generator's: rate over the sender's time.
            return s["rx_pkts"] / g["seconds"]
        finally:
            world.close()
    raise ValueError(scenario)


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


def peer_run(args, huge, scenario, size, vifs):
    """testpmd net_vhost backend (io-fwd with net_null) fed by net_virtio_user; pps."""
    if not huge.dir:
        raise RuntimeError("the vhost-user peer needs hugepages (run as root)")
    d = tempfile.mkdtemp(prefix="peer-", dir=args.work)
    sock = os.path.join(d, "vhost.sock")
    mem = ["--in-memory", "--single-file-segments", "--huge-dir", huge.dir, "-m", "512", "--no-pci",
           "--no-telemetry", "--log-level", "*:error"]
    tag = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
    if scenario == "guest-wire":
        wire = "net_null0,no-rx=1"
    else:
        pcap = os.path.join(d, "wire.pcap")
        write_pcap(pcap, size, [mac_of(10)])
        wire = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
    backend = Proc([TESTPMD, "-l", f"{FRONTEND_CPU},{BACKEND_CPU}", "--main-lcore", str(FRONTEND_CPU)] + mem +
                   [f"--file-prefix=bvh{tag}", f"--vdev=net_vhost0,iface={sock},queues=1", f"--vdev={wire}",
                    "--", "--forward-mode=io", "--nb-cores=1", "--auto-start", "--stats-period=1",
                    "--total-num-mbufs=16384", "--rxd=1024", "--txd=1024", "--no-flush-rx"],
                   os.path.join(d, "backend.log"))
    frontend = None
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        mode = "txonly" if scenario == "guest-wire" else "rxonly"
        frontend = Proc([TESTPMD, "-l", f"{BACKEND_CPU},{FRONTEND_CPU}", "--main-lcore", str(BACKEND_CPU)] + mem +
                        [f"--file-prefix=bvu{tag}", f"--vdev=net_virtio_user0,path={sock},queues=1", "--",
                         f"--forward-mode={mode}", f"--txpkts={size}", "--nb-cores=1", "--auto-start",
                         "--stats-period=1", "--total-num-mbufs=16384"],
                        os.path.join(d, "frontend.log"))
        time.sleep(args.seconds + 2.5)
        # Counted where netbackd's figure is counted: what reached the wire (net_null, port 1,
        # TX) or what the backend put into the guest's ring (vhost, port 0, TX); virtio-user's
        # own per-second figures jump around.
        samples = testpmd_rates(backend.text(), 1 if scenario == "guest-wire" else 0, "Tx")
        # The first samples cover start-up; keep the steady seconds.
        samples = [s for s in samples[2:]] or samples
        if not samples:
            raise RuntimeError(f"no testpmd statistics:\n{backend.text()[-1500:]}\n{frontend.text()[-1500:]}")
        return statistics.median(samples)
    finally:
        if frontend:
            frontend.stop(signal.SIGINT, grace=10)
        backend.stop(signal.SIGINT, grace=10)
        shutil.rmtree(d, ignore_errors=True)


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="development mode: 64 B, 2 pairs, short runs (< 2 min)")
    ap.add_argument("--csv", help="write one row per measured run: " + ",".join(CSV_COLUMNS))
    ap.add_argument("--sizes", default=None, help="comma-separated frame sizes (default 64,256,1500)")
    ap.add_argument("--scenarios", default=None,
                    help="comma list of guest-wire,wire-guest,guest-guest,scaling,idle")
    ap.add_argument("--pairs", type=int, default=None, help="A B pairs per point (default 5; quick 2)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per run (default 5; quick 2)")
    ap.add_argument("--vifs", default="1,4,16,64", help="vif counts for the scaling scenario")
    ap.add_argument("--idle-vifs", type=int, default=None, help="idle vifs for the idle report (default 64)")
    ap.add_argument("--idle-seconds", type=float, default=None, help="idle CPU window (default 10; quick 3)")
    ap.add_argument("--no-peer", action="store_true", help="measure netbackd only")
    ap.add_argument("--no-huge", action="store_true", help="do not reserve hugepages (implies --no-peer)")
    ap.add_argument("--workdir", default=None, help="where runs keep their files (default: a temp dir)")
    args = ap.parse_args()
    q = args.quick
    sizes = [int(s) for s in (args.sizes or ("64" if q else "64,256,1500")).split(",")]
    scenarios = (args.scenarios or ("guest-wire,wire-guest,idle" if q else
                                    "guest-wire,wire-guest,guest-guest,scaling,idle")).split(",")
    args.pairs = args.pairs or (2 if q else 5)
    args.seconds = args.seconds or (2 if q else 5)
    args.idle_vifs = args.idle_vifs if args.idle_vifs is not None else (8 if q else 64)
    args.idle_seconds = args.idle_seconds or (3 if q else 10)
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("netbackd-bench needs two CPUs (one backend core, one frontend core)")

    args.work = tempfile.mkdtemp(prefix="netbackd-bench-", dir=args.workdir)
    huge = Hugepages.none() if args.no_huge else Hugepages(HUGE_DIR_PAGES, args.work)

    def cleanup():
        huge.release()
        shutil.rmtree(args.work, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    log(f"netbackd-bench: backend on CPU {BACKEND_CPU}, frontend side on CPU {FRONTEND_CPU}; "
        f"{'hugepages' if huge.dir else 'no hugepages (peer skipped)'}; {args.pairs} pairs x {args.seconds}s")
    rows = []      # csv rows
    table = []     # printed last
    csv_file = open(args.csv, "w", newline="") if args.csv else None
    writer = csv.writer(csv_file) if csv_file else None
    if writer:
        writer.writerow(CSV_COLUMNS)

    def record(scenario, size, vifs, system, pps):
        row = [scenario, size, vifs, system, f"{pps / 1e6:.4f}", f"{wire_gbps(pps, size):.4f}"]
        rows.append(row)
        if writer:
            writer.writerow(row)
            csv_file.flush()

    def point(scenario, size, vifs, with_peer):
        a, b = [], []
        for i in range(args.pairs):
            try:
                a.append(netbackd_run(args, huge, scenario, size, vifs))
                record(scenario, size, vifs, "netbackd", a[-1])
            except Exception as e:  # a failed run is reported, not fatal to the others
                log(f"{scenario} {size}B netbackd run {i}: {e}")
            if with_peer:
                try:
                    b.append(peer_run(args, huge, scenario, size, vifs))
                    record(scenario, size, vifs, "vhost-user", b[-1])
                except Exception as e:
                    log(f"{scenario} {size}B vhost-user run {i}: {e}")
            log(f"  {scenario} {size}B vifs={vifs} pair {i + 1}: netbackd "
                f"{fmt_rate(a[-1]) if a else '-'} Mpps" + (f", vhost-user {fmt_rate(b[-1]) if b else '-'} Mpps"
                                                           if with_peer else ""))
        ratios = [x / y for x, y in zip(a, b) if y > 0]
        table.append((scenario, size, vifs, a, b, ratios))

    peer = not args.no_peer and huge.dir is not None
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
    idle = None
    if "idle" in scenarios:
        try:
            idle = idle_report(args, huge, args.idle_vifs)
        except Exception as e:
            log(f"idle report: {e}")
    if csv_file:
        csv_file.close()

    def cell(xs):
        if not xs:
            return f"{'-':>22}"
        return f"{statistics.median(xs) / 1e6:7.2f} [{min(xs) / 1e6:5.2f}-{max(xs) / 1e6:5.2f}]"

    print(f"\nnetbackd-bench ({'quick' if q else 'full'}): Mpps median [min-max] over {args.pairs} interleaved "
          f"runs of {args.seconds:g}s; backend on CPU {BACKEND_CPU}, frontend side on CPU {FRONTEND_CPU}")
    print(f"{'scenario':<12}{'size':>6}{'vifs':>5}  {'netbackd':>22}  {'vhost-user':>22}  {'Gbit/s nb':>9}"
          f"  {'ratio med [min-max]':>20}")
    for sc, size, vifs, a, b, ratios in table:
        gb = f"{wire_gbps(statistics.median(a), size):9.2f}" if a else f"{'-':>9}"
        r = (f"{statistics.median(ratios):6.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else "-")
        print(f"{sc:<12}{size:>6}{vifs:>5}  {cell(a)}  {cell(b)}  {gb}  {r:>20}")
    if COUNTERS:
        print("data-plane counters over all netbackd runs (telemetry /netbackd/vifs):")
        for (sc, size, vifs), c in COUNTERS.items():
            pkts = c["tx_packets"] + c["rx_packets"]
            print(f"  {sc:<12}{size:>6}{vifs:>5}  notifications/packet "
                  f"{c['notifications'] / pkts if pkts else float('nan'):.4f}  grant-copy segments/batch "
                  f"{c['copy_segments'] / c['copy_batches'] if c['copy_batches'] else float('nan'):.1f}")
    if idle:
        print(f"idle: netbackd {idle['cpu_pct']:.2f}% of one core with {idle['vifs']} connected idle vifs "
              f"over {idle['window_s']:.1f}s; RSS growth {idle['rss_per_vif_kib']:.0f} KiB per vif")
    if not rows:
        sys.exit("netbackd-bench: no run succeeded")


if __name__ == "__main__":
    main()
