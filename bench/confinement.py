"""Benchmark: what the control plane's confinement (plugins/module_utils/jailsafe.py) costs.

    .venv/bin/python bench/confinement.py [--runs 5] [--keep]

A part of `make bench` (bench/run.py runs it on the host bench/converge.py converged), or on its
own (boots its own lab host and converges site.yml first). docs/security.md, "The control plane",
says why every program of a jail root runs confined; these are its costs per operation:

  start      one program in a jail root, confined (`jailsafe.py run`: namespaces, pivot_root,
             private /dev, capabilities, no_new_privs, seccomp) against the old `chroot ROOT`,
             measured on the lab host itself in paired alternating runs: /bin/true (the fixed
             cost) and pg_isready as postgres in the db jail (a real operation of the roles)
  module     a jail_packages no-op (the web jail's packages all present: dpkg's status parsed on
             the host, nothing run in the jail) against a trivial module (command /bin/true),
             both as one-task playbooks from this machine, alternating
  login      (bench/apps.py) an app owner's SSH login to its first output, confined by app-enter

The no-change converge of site.yml, which runs every check confined, is bench/converge.py's row.
Traffic goes only to the lab host.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

from lablib import Lab, converge_site, row, standalone

JAILS = "/var/lib/jailhost/jails"
# How the roles call the host copy (python3 -I: no user site, no PYTHON* variables).
JAILSAFE = ["/usr/bin/python3", "-I", "/usr/local/libexec/jailhost/jailsafe.py"]

# Runs on the lab host: each pair of commands in turn (alternating which goes first), wall time of
# each run; prints JSON {"a": [...], "b": [...]}. A non-zero exit of either is an error.
PAIRED = r"""
import json, subprocess, sys, time
a, b, n = json.loads(sys.argv[1])
out = {"a": [], "b": []}
for i in range(n):
    for side in (("a", "b") if i % 2 == 0 else ("b", "a")):
        cmd = a if side == "a" else b
        started = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out[side].append(time.monotonic() - started)
print(json.dumps(out))
"""


def paired(lab: Lab, confined: list[str], old: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall times of CONFINED and OLD on the lab host, RUNS each, alternating."""
    argument = json.dumps([confined, old, runs])
    result = json.loads(lab.ssh(f"python3 -c {shlex.quote(PAIRED)} {shlex.quote(argument)}"))
    return result["a"], result["b"]


def start_rows(lab: Lab, runs: int) -> list[dict]:
    rows = []
    web, db = f"{JAILS}/web/root", f"{JAILS}/db/root"
    cases = [
        ("/bin/true in the web jail", [*JAILSAFE, "run", "--root", web, "--", "/bin/true"],
         ["chroot", web, "/bin/true"]),
        ("pg_isready as postgres in the db jail",
         [*JAILSAFE, "run", "--root", db, "--user", "postgres", "--", "/usr/bin/pg_isready", "-q", "-h",
          "/run/postgresql"],
         ["chroot", "--userspec=postgres:postgres", db, "/usr/bin/pg_isready", "-q", "-h", "/run/postgresql"]),
    ]
    for label, confined, old in cases:
        new, before = paired(lab, confined, old, runs)
        ratio = [n / o for n, o in zip(new, before)]
        added = statistics.median(new) - statistics.median(before)
        rows.append(row(f"{label}: confined (jailsafe.run) / chroot as host root", ratio, "ratio", "-", None,
                        compared_with="chroot ROOT (the mechanism before issue 13)",
                        detail=f"confined median {statistics.median(new) * 1000:.0f} ms, chroot median "
                               f"{statistics.median(before) * 1000:.0f} ms: {added * 1000:+.0f} ms per program"))
        print(rows[-1], flush=True)
    return rows


def module_rows(lab: Lab, runs: int) -> list[dict]:
    no_op = [{"hosts": "jailhosts", "gather_facts": False, "tasks": [{
        "name": "the web jail's packages, all present",
        "jailhost.jails.jail_packages": {"root": f"{JAILS}/web/root", "name": ["apache2"], "state": "present"}}]}]
    trivial = [{"hosts": "jailhosts", "gather_facts": False, "tasks": [{
        "name": "a trivial module", "ansible.builtin.command": {"argv": ["/bin/true"]}, "changed_when": False}]}]
    packages, baseline = [], []
    for i in range(runs):
        for which in ((no_op, packages), (trivial, baseline))[:: 1 if i % 2 == 0 else -1]:
            seconds, recap = lab.playbook(which[0])
            if "changed=0" not in recap or "failed=0" not in recap:
                raise RuntimeError(f"not a no-op: {recap}")
            which[1].append(seconds)
    added = statistics.median(packages) - statistics.median(baseline)
    return [row("jail_packages no-op (one-task playbook)", packages, "s", "<= 0.5 s beyond a trivial module",
                added <= 0.5, compared_with=f"command /bin/true, median {statistics.median(baseline):.2f} s",
                detail=f"{added:+.2f} s beyond the trivial module")]


def measure(lab: Lab, runs: int = 5) -> list[dict]:
    """On a host where site.yml has converged."""
    return start_rows(lab, runs * 4) + module_rows(lab, runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()

    def converge_and_measure(lab: Lab) -> list[dict]:
        started = time.monotonic()
        converge_site(lab)
        print(f"site.yml converged in {time.monotonic() - started:.0f} s", flush=True)
        return measure(lab, args.runs)

    return standalone("bench-conf", converge_and_measure, args.keep)


if __name__ == "__main__":
    sys.exit(main())
