#!/usr/bin/env python3
"""Where the jailed PostgreSQL's pgbench gap comes from: the sandbox, or the jail's filesystem.

    .venv/bin/python bench/attribute.py [--rounds 5] [--seconds 8] [--keep]

Not a part of `make bench` (it answers a question the table raises; docs/performance.md quotes
it). Boots its own lab host, converges playbooks/site.yml, builds the bare twin of
bench/throughput.py, then runs pgbench (select-only and tpcb-like, the same flags) in rounds of
three, each against the same data:

    jailed  the db jail as deployed (firejail: seccomp, namespaces, capabilities; cgroup limits)
    root    the same jail root (the overlay mount), the jail stopped, PostgreSQL started with a
            plain chroot by a transient unit: no firejail, no limits, Unix socket only
    bare    the copy of the jail root on the host's filesystem (throughput.py's bare twin)

jailed/bare is the table's figure; root/bare is what the overlay root costs; jailed/root is what
the sandbox (firejail and the unit's limits) costs. Ratios are medians of per-round ratios; the
three are run in turn (alternating the order) so that drift cancels. Load stays on the lab host.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from lablib import Lab, converge_site, standalone
from throughput import JAILS, PG_BIN, PG_CONF, PSQL_ENV, pgbench, setup_bare, teardown_bare

DB_ROOT = f"{JAILS}/db/root"
START_ROOT = f"""
set -e
systemctl stop jailhost-db.service
mount --bind /dev {DB_ROOT}/dev; mount -t proc proc {DB_ROOT}/proc
mkdir -p {DB_ROOT}/run/postgresql && chown --reference={DB_ROOT}/var/lib/postgresql {DB_ROOT}/run/postgresql
systemd-run --quiet --unit=bench-root-db chroot {DB_ROOT} {PSQL_ENV} {PG_BIN}/postgres \\
    -D /var/lib/postgresql/15/main -c config_file={PG_CONF}/postgresql.conf -c listen_addresses=''
for i in $(seq 100); do chroot {DB_ROOT} {PG_BIN}/pg_isready -q -h /run/postgresql && exit 0; sleep 0.1; done
exit 1
"""
STOP_ROOT = f"""
systemctl stop bench-root-db.service
while systemctl is-active -q bench-root-db.service; do sleep 0.1; done
umount {DB_ROOT}/proc {DB_ROOT}/dev
systemctl start jailhost-db.service
for i in $(seq 100); do chroot {DB_ROOT} {PG_BIN}/pg_isready -q -h /run/postgresql && exit 0; sleep 0.1; done
exit 1
"""


def measure(lab: Lab, rounds: int, seconds: int) -> list[str]:
    setup_bare(lab)
    lines = []
    try:
        for mode in ("select-only", "tpcb-like"):
            runs: dict[str, list[float]] = {"jailed": [], "root": [], "bare": []}
            for i in range(rounds):
                order = ("jailed", "bare", "root") if i % 2 == 0 else ("root", "bare", "jailed")
                for side in order:
                    if side == "root":
                        lab.ssh(START_ROOT)
                        runs[side].append(pgbench(lab, DB_ROOT, mode, seconds)["value"])
                        lab.ssh(STOP_ROOT)
                    else:
                        root = DB_ROOT if side == "jailed" else "/srv/bench-bare/db"
                        runs[side].append(pgbench(lab, root, mode, seconds)["value"])
            medians = {side: statistics.median(values) for side, values in runs.items()}

            def ratio(a: str, b: str) -> str:
                values = [x / y for x, y in zip(runs[a], runs[b])]
                return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

            lines.append(f"| pgbench {mode} TPS, n={rounds} | jailed {medians['jailed']:.0f}, root "
                         f"{medians['root']:.0f}, bare {medians['bare']:.0f} | jailed/bare {ratio('jailed', 'bare')} "
                         f"| root/bare {ratio('root', 'bare')} | jailed/root {ratio('jailed', 'root')} |")
            print(lines[-1], flush=True)
    finally:
        teardown_bare(lab)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()

    def run(lab: Lab) -> list:
        converge_site(lab)
        measure(lab, args.rounds, args.seconds)
        return []

    return standalone("bench-attr", run, args.keep)


if __name__ == "__main__":
    sys.exit(main())
