"""Benchmark: the multi-tenant host (roles/apps) as the number of apps grows.

    .venv/bin/python bench/apps.py [--steps 1,5,10,20] [--name bench-apps] [--keep]

A part of `make bench` (bench/run.py), or on its own. Boots its own lab host, converges
playbooks/apps.yml with the first step's apps (base images, PostgreSQL, proxy: the cold converge),
re-runs it unchanged, then adds apps up to each further step (converge + unchanged re-run each
time). Rows: the cold converge; per further step the converge that added the apps as seconds per
added app (goal 10 s, flat); each unchanged re-run as seconds per app; then the idle memory of
every app jail (RSS summed over the jail's processes, and PSS, which counts shared pages once) and
the disk of each app jail's own layer (upper + work: what an extra app costs beyond the shared
base), and the first app owner's SSH login (confined by app-enter) against root's login to
the same sshd. Packages come through the machine's apt-cacher-ng; traffic goes only to the lab host.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lablib import ROOT, row, standalone

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


def app(index: int, owner_key: str = "") -> dict:
    """The INDEXth app; the first one gets OWNER_KEY (a public key) for its owner's SSH login."""
    name = f"app{index:02d}"
    spec = {"name": name, "domain": f"{name}.example.test", "ip": f"10.42.0.{100 + index}",
            "db": {"password": f"{name}-Secret-{index}"}, "content": [f"{name} row"]}
    if index == 1 and owner_key:
        spec["ssh_keys"] = [owner_key]
    return spec


def ssh_seconds(lab, user: str, key: str) -> float:
    """One SSH login of USER to the lab host, from the start of ssh to its first output line."""
    cmd = ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{user}@{lab.address}", "echo ready"]
    started = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        line = proc.stdout.readline()
        seconds = time.monotonic() - started
        proc.wait()
    if line.strip() != "ready" or proc.returncode != 0:
        raise RuntimeError(f"the login of {user} failed: {line!r}, exit {proc.returncode}")
    return seconds


def login_rows(lab, key: str, runs: int) -> list[dict]:
    """The first app's owner login (sshd, the login helper, sudo, app-enter's confinement, the
    jail's shell) against root's login to the same sshd (the host's shell), alternating."""
    owner, root = [], []
    for i in range(runs):
        for user, out, identity in (("app01", owner, key), ("root", root, lab.info["identity_file"]))[
                :: 1 if i % 2 == 0 else -1]:
            out.append(ssh_seconds(lab, user, identity))
    added = statistics.median(owner) - statistics.median(root)
    return [row("app owner SSH login to first output (confined by app-enter)", owner, "s", "<= 0.5 s",
                statistics.median(owner) <= 0.5,
                compared_with=f"root's SSH login to the host, median {statistics.median(root):.2f} s",
                detail=f"{added:+.2f} s for the login helper, sudo and the confined entry into the jail")]


def measure(lab, steps: list[int], logins: int = 10) -> list[dict]:
    base = {"bridge_name": "br0", "bridge_address": "10.42.0.1/24", "rootfs_apt_proxy": "http://10.254.0.1:3142"}
    key = str(lab.tmp / "owner_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "app01-owner@bench", "-f", key], check=True)
    owner_key = Path(key + ".pub").read_text().strip()
    rows, count = [], 0
    for step in steps:
        apps = [app(i, owner_key) for i in range(1, step + 1)]
        seconds, recap = lab.playbook(ROOT / "playbooks/apps.yml", {**base, "apps_list": apps})
        if count == 0:
            rows.append(row(f"apps.yml cold converge, {step} app(s) (base images, PostgreSQL, proxy)", [seconds],
                            "s", "-", None, detail=recap))
            print(rows[-1], flush=True)
        added_seconds, added_recap = seconds, recap
        seconds, recap = lab.playbook(ROOT / "playbooks/apps.yml", {**base, "apps_list": apps})
        if count > 0:
            # The converge that adds apps also re-checks every existing app; the marginal cost is
            # what it took beyond an unchanged run with the same apps.
            per_app = added_seconds / (step - count)
            marginal = (added_seconds - seconds) / (step - count)
            rows.append(row(f"apps.yml converge adding apps {count} -> {step}, per added app", [per_app], "s",
                            "<= 10 s", per_app <= 10,
                            detail=f"{added_seconds:.0f} s; beyond an unchanged run: {marginal:.1f} s per added app; "
                                   f"{added_recap}"))
            print(rows[-1], flush=True)
        rows.append(row(f"apps.yml unchanged re-run, {step} app(s), per app", [seconds / step], "s", "flat", None,
                        detail=f"{seconds:.0f} s; {recap}"))
        print(rows[-1], flush=True)
        count = step
    rss, pss, procs, disk = [], [], [], []
    for i in range(1, count + 1):
        name = app(i)["name"]
        r, p, n = lab.ssh(MEMORY.format(name=name)).split()
        rss.append(int(r) / 1024)
        pss.append(int(p) / 1024)
        procs.append(int(n))
        disk.append(int(lab.ssh(f"du -sk {JAILS}/{name}/upper {JAILS}/{name}/work | awk '{{s+=$1}} END {{print s}}'"))
                    / 1024)
    base_mb = int(lab.ssh("du -sk /var/lib/jailhost/base | cut -f1")) / 1024
    rss_median = statistics.median(rss)
    rows.append(row("idle memory of an app jail, RSS summed over its processes", rss, "MB", "<= 40 MB",
                    rss_median <= 40, detail=f"PSS {min(pss):.1f}-{max(pss):.1f} MB, {max(procs)} processes"))
    rows.append(row("disk of an app jail's own layer (upper + work)", disk, "MB", "-", None,
                    detail=f"shared base images {base_mb:.0f} MB"))
    rows.extend(login_rows(lab, key, logins))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="1,5,10,20")
    parser.add_argument("--name", default="bench-apps")
    parser.add_argument("--keep", action="store_true", help="leave the lab host running")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    return standalone(args.name, lambda lab: measure(lab, steps), args.keep)


if __name__ == "__main__":
    sys.exit(main())
