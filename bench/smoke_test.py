#!/usr/bin/env python3
"""ctest smoke test of netbackd-bench: a tiny netbackd-only run writes a well-formed CSV.

No speed is asserted (the benchmark is not a test); only that packets moved and the CSV has
the columns scripts rely on."""
import csv
import subprocess
import sys
import tempfile

bench = sys.argv[1]
with tempfile.TemporaryDirectory(prefix="nbb-smoke-") as d:
    out = f"{d}/runs.csv"
    r = subprocess.run([bench, "--no-huge", "--no-peer", "--scenarios", "guest-wire,guest-guest,latency", "--sizes", "64",
                        "--latency-sizes", "64",
                        "--pairs", "1", "--seconds", "1", "--csv", out, "--workdir", d],
                       capture_output=True, text=True, timeout=120)
    print(r.stdout, r.stderr)
    if r.returncode != 0:
        sys.exit(f"netbackd-bench exited {r.returncode}")
    with open(out) as f:
        rows = list(csv.reader(f))
    if rows[0] != ["scenario", "size", "vifs", "system", "mpps", "gbps"]:
        sys.exit(f"bad header {rows[0]}")
    body = rows[1:]
    if {row[0] for row in body} != {"guest-wire", "guest-guest"}:
        sys.exit(f"expected one row per scenario, got {body}")
    for row in body:
        if len(row) != 6 or row[3] != "netbackd" or int(row[1]) != 64 or float(row[4]) <= 0 or float(row[5]) <= 0:
            sys.exit(f"bad row {row}")
    if "scenario" not in r.stdout or "guest-wire" not in r.stdout:
        sys.exit("no table printed")
    with open(f"{d}/runs-latency.csv") as f:
        lat = list(csv.DictReader(f))
    if len(lat) != 1 or lat[0]["system"] != "netbackd" or int(lat[0]["rounds"]) <= 0 or \
            not 0 < float(lat[0]["p50_us"]) <= float(lat[0]["p99_us"]) <= float(lat[0]["p999_us"]):
        sys.exit(f"bad latency rows {lat}")
