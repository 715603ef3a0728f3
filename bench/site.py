#!/usr/bin/env python3
"""Benchmark: playbooks/site.yml converge times and start-to-serving of the two services.

    .venv/bin/python bench/site.py [--starts 5]

Boots its own lab host, converges site.yml with inventory/lab (warm apt proxy: the packages come
from the machine's apt-cacher-ng), re-runs it unchanged, then times `systemctl start` of each
jail until it serves (HTTP 200 from the web jail; pg_isready for the db jail), and destroys the
host. Traffic goes only to the lab host. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from lablib import ROOT, Lab

START_WEB = (
    "systemctl stop jailhost-web.service; s=$(date +%s.%N); systemctl start jailhost-web.service; "
    "until curl -s -o /dev/null -f --max-time 1 http://{address}/health.txt; do sleep 0.02; done; "
    "e=$(date +%s.%N); python3 -c \"print($e - $s)\"")
START_DB = (
    "systemctl stop jailhost-db.service; s=$(date +%s.%N); systemctl start jailhost-db.service; "
    "until chroot /var/lib/jailhost/jails/db/root /usr/bin/pg_isready -q -h /run/postgresql; do sleep 0.02; done; "
    "e=$(date +%s.%N); python3 -c \"print($e - $s)\"")


def fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min-max {min(values):.2f}-{max(values):.2f}, n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    lab = Lab("bench-site")
    try:
        site = ROOT / "playbooks/site.yml"
        inventory = (ROOT / "inventory/lab",)
        cold, cold_recap = lab.playbook(site, inventories=inventory)
        warm, warm_recap = lab.playbook(site, inventories=inventory)
        web = [float(lab.ssh(START_WEB.format(address=lab.address))) for _ in range(args.starts)]
        db = [float(lab.ssh(START_DB)) for _ in range(args.starts)]
    finally:
        lab.close()
    rows = [
        ("site.yml cold converge (fresh host, warm apt proxy)", f"{cold:.0f} s", "<= 4 min"),
        ("site.yml no-change re-run", f"{warm:.1f} s ({warm_recap.split(' ', 1)[-1]})", "<= 15 s, changed=0"),
        ("web jail: systemctl start -> HTTP 200", fmt(web), "<= 2 s"),
        ("db jail: systemctl start -> pg_isready", fmt(db), "<= 3 s"),
    ]
    print(f"machine: {os.cpu_count()} cores, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}; "
          f"suite took {time.monotonic() - started:.0f} s; cold recap: {cold_recap}")
    for figure, value, goal in rows:
        print(f"| {figure} | {value} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
