"""`make bench`: every benchmark of the collection, one results table.

    .venv/bin/python bench/run.py [--quick]

Boots its own lab hosts with the test harness, measures, destroys them, and writes
bench/results/latest.md and bench/results/latest.json: machine info, each figure as median and
min-max over n runs, what it is compared with, the goal and whether the median meets it, and how
long each part took. Parts:

  jails.py       the 1st, 2nd and 10th jail (mount time, new disk) against a fresh debootstrap and
                 a full rsync copy; start-to-serving of a jailed HTTP server
  converge.py    site.yml cold converge and no-change re-run; start-to-serving of Apache and PostgreSQL
  throughput.py  Apache static/dynamic req/s and pgbench TPS, jailed vs bare, paired alternating runs
                 (on the host converge.py converged)
  confinement.py what the control plane's confinement costs: a program confined vs chroot, a
                 jail_packages no-op (on the host converge.py converged)
  apps.py        the multi-tenant host (roles/apps) at 1, 5, 10 and 20 apps: converge time per added
                 app, unchanged re-run per app, idle memory and disk per app jail, an owner's SSH login

Benchmarks never fail on slowness: the exit status is non-zero only when a part breaks.
--quick: fewer runs and shorter loads (a smoke test of the scripts, not figures to publish).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import apps
import confinement
import converge
import jails
import throughput
from lablib import Lab, format_value

# The lab hosts' Debian release (molecule/shared/labhost.py reads it): bookworm, so that the numbers
# compare with the earlier results in bench/results/ (PostgreSQL 15 paths in throughput.py and
# attribute.py); JAILHOST_LAB_RELEASE=trixie make bench measures Debian 13 hosts.
os.environ.setdefault("JAILHOST_LAB_RELEASE", "bookworm")

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kb = int(handle.readline().split()[1])
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": os.getloadavg()[0]}


def part(name: str, parts: list, rows: list, func) -> None:
    started = time.monotonic()
    try:
        new = func()
        status = "ok"
    except Exception:  # noqa: BLE001 - report the broken part, go on with the others
        traceback.print_exc()
        new, status = [], "FAILED"
    seconds = time.monotonic() - started
    for r in new:
        r["part"] = name
    rows.extend(new)
    parts.append({"part": name, "seconds": round(seconds), "status": status})
    print(f"== {name}: {status} in {seconds:.0f} s", flush=True)


def write(info: dict, parts: list, rows: list, total: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(
        {"machine": info, "total_seconds": round(total), "parts": parts, "figures": rows}, indent=2) + "\n")
    lines = [
        "# Benchmark results (`make bench`)",
        "",
        f"Machine: {info['cores']} cores, {info['memory_gib']} GiB, kernel {info['kernel']}; "
        f"{info['date']}; load average before the run {info['load_before']:.2f}.",
        f"Whole suite: {total / 60:.1f} min ("
        + ", ".join(f"{p['part']} {p['seconds']} s {p['status']}" for p in parts) + ").",
        "Values: median (min-max, n runs). Ratios: jailed/bare, median of paired alternating runs.",
        "How each figure is measured: bench/*.py; what the figures mean: docs/performance.md.",
        "",
        "| figure | measured | compared with | goal | met | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(f"| {r['figure']} | {format_value(r)} | {r['compared_with']} | {r['goal']} | {met} "
                     f"| {r['detail']} |")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs, pairs, seconds, count = (2, 2, 3, 3) if args.quick else (5, 5, 8, 10)
    info = machine()
    started = time.monotonic()
    parts: list = []
    rows: list = []

    def jail_cost():
        lab = Lab("bench-jails")
        try:
            return jails.measure(lab, count, runs)
        finally:
            lab.close()

    def stack():
        lab = Lab("bench-site")
        try:
            rows.extend(dict(r, part="site") for r in converge.measure(lab, runs))
            part("throughput", parts, rows, lambda: throughput.measure(lab, pairs, seconds))
            part("confinement", parts, rows, lambda: confinement.measure(lab, runs))
            return []
        finally:
            lab.close()

    def multitenant():
        lab = Lab("bench-apps")
        try:
            return apps.measure(lab, [1, 2, 3] if args.quick else [1, 5, 10, 20])
        finally:
            lab.close()

    part("jails", parts, rows, jail_cost)
    part("site", parts, rows, stack)
    part("apps", parts, rows, multitenant)
    write(info, parts, rows, time.monotonic() - started)
    return 0 if all(p["status"] == "ok" for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
