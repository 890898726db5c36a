#!/usr/bin/env python3
"""What N vifs cost netbackd on the simulated host: the README's scale table.

Runs the scale test (tests/e2e/scale_test.cpp, ctest label `scale`) once per vif count with
NETBACKD_SCALE_REPORT set, so each run attaches all N guests at once, checks that they connect
and carry traffic, then measures netbackd idle. Prints a Markdown table (and, with --json, keeps
the raw lines). Per-vif figures are (with N vifs - before the first attach) / N.

  bench/scale_table.py --build build --vifs 1,64,256,1024 [--idle 10] [--json out.jsonl]

One run at a time (the test is RUN_SERIAL): 1,024 vifs take several minutes on a busy 2-core
machine. The 1-minute load average at the end of each run is in the table: say the machine was
busy when it was.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_one(binary, vifs, idle, keep_log):
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as report:
        env = dict(os.environ, NETBACKD_SCALE_VIFS=str(vifs), NETBACKD_SCALE_REPORT=report.name,
                   NETBACKD_SCALE_IDLE_S=str(idle))
        if keep_log:
            env["NETBACKD_SCALE_KEEP"] = keep_log
        proc = subprocess.run([binary, "[scale]"], env=env, capture_output=True, text=True)
        lines = [line for line in report.read().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"scale test with {vifs} vifs failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def per_vif(after, before, n):
    return (after - before) / n


def table(rows):
    out = [
        "| vifs | attach: all InitWait / all Connected | netbackd RSS (own) | own RSS per vif | fds | fds per vif "
        "| idle CPU | driver-domain xenstore nodes per vif | load avg (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["vifs"]
        out.append(
            f"| {n:,} | {r['initwait_s']:.1f} s / {r['connected_s']:.1f} s "
            f"| {r['own_rss_kib'] / 1024:.0f} MiB "
            f"| {per_vif(r['own_rss_kib'], r['own_rss_before_kib'], n):.0f} KiB "
            f"| {r['fds']:,} | {per_vif(r['fds'], r['fds_before'], n):.2f} "
            f"| {r['idle_cpu_pct']:.1f}% "
            f"| {per_vif(r['driver_nodes'], r['driver_nodes_before'], n):.1f} "
            f"| {r['loadavg'][0]:.1f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="CMake build directory (Release)")
    ap.add_argument("--vifs", default="1,64,256,1024", help="comma-separated vif counts")
    ap.add_argument("--idle", type=float, default=10.0, help="idle seconds over which CPU is measured")
    ap.add_argument("--json", help="append each run's raw measurements to this file")
    ap.add_argument("--keep-log", help="keep the last run's netbackd log here")
    args = ap.parse_args()
    binary = os.path.join(args.build, "tests", "e2e", "scale_e2e_test")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary} not built: cmake --build {args.build} --target scale_e2e_test")
    rows = []
    for n in (int(v) for v in args.vifs.split(",")):
        r = run_one(binary, n, args.idle, args.keep_log)
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
