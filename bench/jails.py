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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABHOST = [sys.executable, str(ROOT / "molecule/shared/labhost.py")]
HOST = "bench-jails"
BRIDGE = {"bridge_name": "br0", "bridge_address": "10.42.0.1/24"}


def ip_of(index: int) -> str:
    return f"10.42.0.{10 + index}"


class Lab:
    def __init__(self, info: dict):
        self.info = info
        self.tmp = Path(tempfile.mkdtemp(prefix="jailhost-bench-"))
        (self.tmp / "hosts").write_text(
            f"{HOST} ansible_host={info['address']} ansible_user=root "
            f"ansible_ssh_private_key_file={info['identity_file']} ansible_python_interpreter=/usr/bin/python3 "
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n")

    def ssh(self, command: str) -> str:
        return subprocess.run(
            ["ssh", "-i", self.info["identity_file"], "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{self.info['address']}", command],
            check=True, capture_output=True, text=True).stdout

    def converge(self, jails: list[int]) -> float:
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
        variables = {**BRIDGE, "rootfs_apt_proxy": self.info["apt_proxy"],
                     "rootfs_jails": [{"name": f"j{i}"} for i in jails],
                     "bridge_admin_access": [{"jail_ip": ip_of(i), "port": 8080} for i in range(1, 64)]}
        (self.tmp / "play.json").write_text(json.dumps(play))
        (self.tmp / "vars.json").write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache/collections"),
                   ANSIBLE_HOST_KEY_CHECKING="false")
        started = time.monotonic()
        subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(self.tmp / "hosts"),
                        str(self.tmp / "play.json"), "-e", f"@{self.tmp / 'vars.json'}"],
                       check=True, capture_output=True, env=env)
        return time.monotonic() - started


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
    info = json.loads(subprocess.run([*LABHOST, "create", HOST], check=True, capture_output=True,
                                     text=True).stdout)
    lab = Lab(info)
    rows = []
    try:
        first = lab.converge([1])
        base = lab.ssh("cat /var/lib/jailhost/jails/j1/base").strip()
        base_kb = int(lab.ssh(f"du -sk {base} | cut -f1"))
        per_jail, disk_kb, mount_s = [], [], []
        for i in range(2, args.jails + 1):
            per_jail.append(lab.converge(list(range(1, i + 1))))
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
            subprocess.run([*LABHOST, "destroy", HOST], check=False)
    print(f"machine: {os.cpu_count()} cores, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}; "
          f"suite took {time.monotonic() - started:.0f} s")
    print(f"| {'figure':<62} | {'measured':<48} | goal |")
    print(f"|{'-' * 64}|{'-' * 50}|------|")
    for figure, value, goal in rows:
        print(f"| {figure:<62} | {value:<48} | {goal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
