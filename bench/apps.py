#!/usr/bin/env python3
"""Benchmark: the multi-tenant host (roles/apps) as the number of apps grows.

    .venv/bin/python bench/apps.py [--steps 1,5,10] [--name jh-mt3] [--keep]

Boots its own lab host, converges playbooks/apps.yml with 1 app, re-runs it unchanged, then adds
apps up to each step (converge + unchanged re-run each time). Prints per step: the converge that
added the apps and its time per added app, the unchanged re-run, and at the end the idle memory of
every app jail (RSS summed over the jail's processes, and PSS, which counts shared pages once) and
the disk of each app jail's own layer (upper + work: what an extra app costs beyond the shared
base). Packages come through the machine's apt-cacher-ng; traffic goes only to the lab host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from lablib import ROOT, Lab

JAILS = "/var/lib/jailhost/jails"
# Sum of RSS and PSS (kB) over the sandbox's PID 1 and all its descendants.
MEMORY = r"""
main=$(systemctl show -p MainPID --value jailhost-{name}.service)
child=$(cat /run/firejail/sandbox/$main)
pids="$child"; todo="$child"
while [ -n "$todo" ]; do
  next=""
  for p in $todo; do next="$next $(cat /proc/$p/task/*/children 2>/dev/null)"; done
  todo=$(echo $next); pids="$pids $todo"
done
rss=0; pss=0
for p in $pids; do
  r=$(awk '/^VmRSS:/ {{print $2}}' /proc/$p/status); rss=$((rss + ${{r:-0}}))
  s=$(awk '/^Pss:/ {{print $2}}' /proc/$p/smaps_rollup); pss=$((pss + ${{s:-0}}))
done
echo "$rss $pss $(echo $pids | wc -w)"
"""


def app(index: int) -> dict:
    name = f"app{index:02d}"
    return {"name": name, "domain": f"{name}.example.test", "ip": f"10.42.0.{100 + index}",
            "db": {"password": f"{name}-Secret-{index}"}, "content": [f"{name} row"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="1,5,10")
    parser.add_argument("--name", default="jh-mt3")
    parser.add_argument("--keep", action="store_true", help="leave the lab host running")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    lab = Lab(args.name)
    base = {"bridge_name": "br0", "bridge_address": "10.42.0.1/24", "rootfs_apt_proxy": "http://10.254.0.1:3142"}
    rows = []
    try:
        count = 0
        for step in steps:
            apps = [app(i) for i in range(1, step + 1)]
            seconds, recap = lab.playbook(ROOT / "playbooks/apps.yml", {**base, "apps_list": apps})
            added = step - count
            rows.append((f"converge {count} -> {step} apps", seconds, seconds / added, recap))
            print(rows[-1], flush=True)
            seconds, recap = lab.playbook(ROOT / "playbooks/apps.yml", {**base, "apps_list": apps})
            rows.append((f"unchanged re-run, {step} apps", seconds, seconds / step, recap))
            print(rows[-1], flush=True)
            count = step
        memory, disk = [], []
        for i in range(1, count + 1):
            name = app(i)["name"]
            rss, pss, procs = lab.ssh(MEMORY.format(name=name)).split()
            memory.append((name, int(rss) / 1024, int(pss) / 1024, int(procs)))
            disk.append(int(lab.ssh(f"du -sk {JAILS}/{name}/upper {JAILS}/{name}/work | awk '{{s+=$1}} END {{print s}}'"))
                        / 1024)
        base_mb = int(lab.ssh("du -sk /var/lib/jailhost/base | cut -f1")) / 1024
    finally:
        if not args.keep:
            lab.close()
    print(f"\nmulti-tenant host on {args.name}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'run':34} {'seconds':>8} {'s/app':>7}  recap")
    for label, seconds, per_app, recap in rows:
        print(f"{label:34} {seconds:8.1f} {per_app:7.1f}  {recap}")
    print(f"\nidle memory per app jail (n={len(memory)}): RSS median {statistics.median(m[1] for m in memory):.1f} MB "
          f"(min-max {min(m[1] for m in memory):.1f}-{max(m[1] for m in memory):.1f}), "
          f"PSS median {statistics.median(m[2] for m in memory):.1f} MB, "
          f"{statistics.median(m[3] for m in memory):.0f} processes")
    print(f"disk per app jail (own layer, upper + work): median {statistics.median(disk):.1f} MB "
          f"(min-max {min(disk):.1f}-{max(disk):.1f}); shared base images: {base_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
