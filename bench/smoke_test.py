#!/usr/bin/env python3
"""ctest smoke test of netbackd-bench: a tiny netbackd-only run writes a well-formed CSV.

No speed is asserted (the benchmark is not a test); only that packets moved and the CSV has
the columns scripts rely on."""
import csv
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import tempfile

bench = sys.argv[1]

# The bimodal peer: a run far below the peer's best at the same point is left out of the
# ratios; the ordinary spread of a loaded machine is not.
loader = importlib.machinery.SourceFileLoader("netbackd_bench", bench)
nbb = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(nbb)
for rates, want in (([14.7e6, 5.0e6, 14.5e6], {1}), ([18.1e6, 28.1e6, 25.0e6], set()), ([3.0e6], set()),
                    ([4.0e6, 12.0e6, 4.5e6], {0, 2})):
    if nbb.collapsed_runs(rates) != want:
        sys.exit(f"collapsed_runs({rates}) = {nbb.collapsed_runs(rates)}, want {want}")
with tempfile.TemporaryDirectory(prefix="nbb-smoke-") as d:
    # A peer that cannot run fails the bench with its reason, before anything is measured.
    r = subprocess.run([bench, "--scenarios", "guest-wire", "--sizes", "64", "--pairs", "1", "--seconds", "1",
                        "--workdir", d], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TESTPMD_BINARY="/nonexistent/dpdk-testpmd"))
    if r.returncode == 0 or "dpdk-testpmd" not in r.stderr or "--no-peer" not in r.stderr:
        sys.exit(f"a missing peer was not refused (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")

    # The same for the ovs-dpdk peer asked for and not installed.
    r = subprocess.run([bench, "--scenarios", "guest-wire", "--sizes", "64", "--pairs", "1", "--seconds", "1",
                        "--peers", "vhost-user,ovs-dpdk", "--workdir", d], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, OVS_VSWITCHD_BINARY="/nonexistent/ovs-vswitchd-dpdk",
                                                 TESTPMD_BINARY="/bin/true"))
    if r.returncode == 0 or "openvswitch-switch-dpdk" not in r.stderr or "--no-peer" not in r.stderr:
        sys.exit(f"a missing ovs-dpdk peer was not refused (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")

    out = f"{d}/runs.csv"
    r = subprocess.run([bench, "--no-huge", "--no-peer", "--scenarios", "guest-wire,guest-guest,latency", "--sizes", "64",
                        "--latency-sizes", "64", "--costs", "0+0,500+50",
                        "--pairs", "1", "--seconds", "1", "--csv", out, "--workdir", d],
                       capture_output=True, text=True, timeout=300)
    print(r.stdout, r.stderr)
    if r.returncode != 0:
        sys.exit(f"netbackd-bench exited {r.returncode}")
    with open(out) as f:
        rows = list(csv.reader(f))
    if rows[0] != ["scenario", "size", "vifs", "system", "hypercall", "mpps", "gbps", "backend_empty_pct",
                   "frontend_ring_full_pct"]:
        sys.exit(f"bad header {rows[0]}")
    body = rows[1:]
    # Every headline point is measured with free grant copies and with the modelled hypercall.
    if sorted((row[0], row[4]) for row in body) != [("guest-guest", "0+0"), ("guest-guest", "500+50"),
                                                     ("guest-wire", "0+0"), ("guest-wire", "500+50")]:
        sys.exit(f"expected one row per scenario and cost, got {body}")
    for row in body:
        if len(row) != 9 or row[3] != "netbackd" or int(row[1]) != 64 or float(row[5]) <= 0 or float(row[6]) <= 0:
            sys.exit(f"bad row {row}")
        # Who waited for whom, per run: both shares are percentages.
        if not all(0 <= float(x) <= 100 for x in row[7:9]):
            sys.exit(f"bad bottleneck columns {row}")
    if "scenario" not in r.stdout or "guest-wire" not in r.stdout or "500+50" not in r.stdout:
        sys.exit("no table printed")
    # Each run says who waited for whom: the backend's empty polls and the frontend's full rounds.
    if "backend polling empty" not in r.stdout or "frontend rounds: ring full" not in r.stdout:
        sys.exit("no bottleneck line printed")
    with open(f"{d}/runs-latency.csv") as f:
        lat = list(csv.DictReader(f))
    if len(lat) != 1 or lat[0]["system"] != "netbackd" or int(lat[0]["rounds"]) <= 0 or \
            not 0 < float(lat[0]["p50_us"]) <= float(lat[0]["p99_us"]) <= float(lat[0]["p999_us"]):
        sys.exit(f"bad latency rows {lat}")
