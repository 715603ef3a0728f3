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
import statistics
import sys

from lablib import Lab, row, standalone

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


def measure(lab: Lab, jails: int = 10, starts: int = 5) -> list[dict]:
    """Jail cost figures on a fresh lab host: the 1st, 2nd and Nth jail, the anchors, start-up."""
    info = lab.info
    first = converge(lab, [1])
    base = lab.ssh("cat /var/lib/jailhost/jails/j1/base").strip()
    base_kb = int(lab.ssh(f"du -sk {base} | cut -f1"))

    def added(i: int) -> tuple[float, float, float]:
        """(converge adding jail i, its new disk in MB, on-host mount time of its root)."""
        seconds = converge(lab, list(range(1, i + 1)))
        disk_kb = int(lab.ssh(
            f"du -sck /var/lib/jailhost/jails/j{i}/upper /var/lib/jailhost/jails/j{i}/work | tail -1 | cut -f1"))
        unit = lab.ssh(f"systemd-escape --path --suffix=mount /var/lib/jailhost/jails/j{i}/root").strip()
        mount = float(lab.ssh(
            f"systemctl stop jailhost-j{i}.service; systemctl stop {unit}; "
            f"s=$(date +%s.%N); systemctl start {unit}; e=$(date +%s.%N); "
            f"systemctl start jailhost-j{i}.service; python3 -c \"print($e - $s)\""))
        return seconds, disk_kb / 1024, mount

    second = added(2)
    converge(lab, list(range(1, jails)))  # jails 3 .. N-1 in one run: not measured
    last = added(jails)
    deboot = float(lab.ssh(
        "rm -rf /var/tmp/bench-deboot; s=$(date +%s.%N); "
        f"http_proxy={info['apt_proxy']} debootstrap --variant=minbase --include=python3,ca-certificates "
        "bookworm /var/tmp/bench-deboot http://deb.debian.org/debian >/dev/null 2>&1; e=$(date +%s.%N); "
        "rm -rf /var/tmp/bench-deboot; python3 -c \"print($e - $s)\""))
    copy = float(lab.ssh(
        f"apt-get install -y -q rsync >/dev/null 2>&1; rm -rf /var/tmp/bench-copy; s=$(date +%s.%N); "
        f"rsync -a {base}/ /var/tmp/bench-copy/; e=$(date +%s.%N); python3 -c \"print($e - $s)\""))
    copy_kb = int(lab.ssh("du -sk /var/tmp/bench-copy | cut -f1; rm -rf /var/tmp/bench-copy"))
    start = [float(lab.ssh(f"python3 -c '{START_TO_SERVING}' jailhost-j1.service http://{ip_of(1)}:8080/"))
             for _run in range(starts)]
    anchors = f"fresh debootstrap {deboot:.0f} s / {base_kb / 1024:.0f} MB; rsync copy {copy:.1f} s / {copy_kb / 1024:.0f} MB"
    return [
        row("1st jail: converge (base debootstrap + jail + daemon)", [first], "s", "-", None, anchors),
        row("2nd jail: root filesystem mount", [second[2]], "s", "<= 1 s", second[2] <= 1, anchors,
            f"whole converge adding it {second[0]:.1f} s"),
        row("2nd jail: new disk", [second[1]], "MB", "<= 10 MB", second[1] <= 10, anchors),
        row(f"{jails}th jail: root filesystem mount", [last[2]], "s", "<= 1 s", last[2] <= 1, anchors,
            f"whole converge adding it {last[0]:.1f} s"),
        row(f"{jails}th jail: new disk", [last[1]], "MB", "<= 10 MB", last[1] <= 10, anchors),
        row("jailed HTTP server: systemctl start -> HTTP 200", start, "s", "<= 2 s",
            statistics.median(start) <= 2),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jails", type=int, default=10)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()
    return standalone(HOST, lambda lab: measure(lab, args.jails, args.starts), args.keep)


if __name__ == "__main__":
    sys.exit(main())
