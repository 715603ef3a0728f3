#!/usr/bin/env python3
"""Benchmark: what a jail costs, and how fast a jailed daemon serves after `systemctl start`.

    .venv/bin/python bench/jails.py [--jails 10] [--starts 5] [--keep]

Boots its own lab host (molecule/shared/labhost.py), converges the bridge and rootfs roles with
one jail, then adds jails one at a time with the rootfs role and the sandbox module, as a user
would. For each jail: wall time of that converge, new disk (the jail's own layer, measured after
its daemon started) and the on-host time of the mount alone. Anchors measured on the same host:
a fresh debootstrap of the same base, and the seed article's full copy (`rsync -a`) of it.
Start-to-serving: `systemctl start` of a jailed HTTP server until its first HTTP 200, repeated.
Traffic goes only to the lab host and its jails. Prints a table; never fails on slowness.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from lablib import Lab

HOST = "bench-jails"
BRIDGE = {"bridge_name": "br0", "bridge_address": "10.42.0.1/24"}


def ip_of(index: int) -> str:
    return f"10.42.0.{10 + index}"


def converge(lab: Lab, jails: list[int]) -> float:
    play = [{
        "hosts": HOST, "gather_facts": False,
        "roles": [{"role": "jailhost.jails.bridge"}, {"role": "jailhost.jails.rootfs"}],
        "tasks": [{
            "name": "Jailed HTTP server", "loop": jails,
            "jailhost.jails.sandbox": {
                "name": "j{{ item }}", "bridge": "br0", "ip": "10.42.0.{{ 10 + item }}",
                "command": ["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "10.42.0.{{ 10 + item }}"],
            },
        }],
    }]
    variables = {**BRIDGE, "rootfs_apt_proxy": lab.info["apt_proxy"],
                 "rootfs_jails": [{"name": f"j{i}"} for i in jails],
                 "bridge_admin_access": [{"jail_ip": ip_of(i), "port": 8080} for i in range(1, 64)]}
    return lab.playbook(play, variables)[0]


START_TO_SERVING = r"""
import subprocess, sys, time, urllib.request
unit, url = sys.argv[1], sys.argv[2]
subprocess.run(["systemctl", "stop", unit], check=True)
t0 = time.monotonic()
subprocess.run(["systemctl", "start", unit], check=True)
while True:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            if r.status == 200:
                break
    except OSError:
        time.sleep(0.02)
print(time.monotonic() - t0)
"""


def fmt(values: list[float], unit: str) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} {unit}"
    return (f"median {statistics.median(values):.2f} {unit} (min-max {min(values):.2f}-{max(values):.2f}, "
            f"n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jails", type=int, default=10)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()
    started = time.monotonic()
    lab = Lab(HOST)
    info = lab.info
    rows = []
    try:
        first = converge(lab, [1])
        base = lab.ssh("cat /var/lib/jailhost/jails/j1/base").strip()
        base_kb = int(lab.ssh(f"du -sk {base} | cut -f1"))
        per_jail, disk_kb, mount_s = [], [], []
        for i in range(2, args.jails + 1):
            per_jail.append(converge(lab, list(range(1, i + 1))))
            disk_kb.append(int(lab.ssh(
                f"du -sck /var/lib/jailhost/jails/j{i}/upper /var/lib/jailhost/jails/j{i}/work | tail -1 | cut -f1")))
            unit = lab.ssh(f"systemd-escape --path --suffix=mount /var/lib/jailhost/jails/j{i}/root").strip()
            mount_s.append(float(lab.ssh(
                f"systemctl stop jailhost-j{i}.service; systemctl stop {unit}; "
                f"s=$(date +%s.%N); systemctl start {unit}; e=$(date +%s.%N); "
                f"systemctl start jailhost-j{i}.service; python3 -c \"print($e - $s)\"")))
        deboot = float(lab.ssh(
            "rm -rf /var/tmp/bench-deboot; s=$(date +%s.%N); "
            f"http_proxy={info['apt_proxy']} debootstrap --variant=minbase --include=python3,ca-certificates "
            "bookworm /var/tmp/bench-deboot http://deb.debian.org/debian >/dev/null 2>&1; e=$(date +%s.%N); "
            "rm -rf /var/tmp/bench-deboot; python3 -c \"print($e - $s)\""))
        copy = float(lab.ssh(
            f"apt-get install -y -q rsync >/dev/null 2>&1; rm -rf /var/tmp/bench-copy; s=$(date +%s.%N); "
            f"rsync -a {base}/ /var/tmp/bench-copy/; e=$(date +%s.%N); python3 -c \"print($e - $s)\""))
        copy_kb = int(lab.ssh("du -sk /var/tmp/bench-copy | cut -f1; rm -rf /var/tmp/bench-copy"))
        starts = [float(lab.ssh(f"python3 -c '{START_TO_SERVING}' jailhost-j1.service http://{ip_of(1)}:8080/"))
                  for _ in range(args.starts)]
        rows = [
            ("1st jail: cold converge (base debootstrap + jail + daemon)", f"{first:.1f} s", "-"),
            ("2nd jail: converge adding it", f"{per_jail[0]:.1f} s", "-"),
            (f"{args.jails}th jail: converge adding it", f"{per_jail[-1]:.1f} s", "-"),
            (f"jails 2-{args.jails}: converge adding one", fmt(per_jail, "s"), "-"),
            (f"jails 2-{args.jails}: mount of the jail root alone (on host)", fmt(mount_s, "s"), "<= 1 s"),
            (f"jails 2-{args.jails}: new disk per jail (after start)", fmt([k / 1024 for k in disk_kb], "MB"),
             "<= 10 MB"),
            ("anchor: fresh debootstrap of the base", f"{deboot:.1f} s, {base_kb / 1024:.0f} MB", "-"),
            ("anchor: full copy (rsync -a, the seed's way)", f"{copy:.2f} s, {copy_kb / 1024:.0f} MB", "-"),
            ("start-to-serving: systemctl start -> HTTP 200", fmt(starts, "s"), "<= 2 s"),
        ]
    finally:
        if not args.keep:
            lab.close()
    print(f"machine: {os.cpu_count()} cores, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}; "
          f"suite took {time.monotonic() - started:.0f} s")
    print(f"| {'figure':<62} | {'measured':<48} | goal |")
    print(f"|{'-' * 64}|{'-' * 50}|------|")
    for figure, value, goal in rows:
        print(f"| {figure:<62} | {value:<48} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
