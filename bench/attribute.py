"""Where the gaps of bench/throughput.py come from: the sandbox, the jail's filesystem, the NAT.

    .venv/bin/python bench/attribute.py [--rounds 5] [--seconds 8] [--keep] [--host NAME]

Not a part of `make bench` (it answers a question the table raises; docs/performance.md quotes
it). Boots its own lab host, converges playbooks/site.yml, builds the bare twin of
bench/throughput.py, then runs pgbench (select-only and tpcb-like, the same flags) in rounds of
three, each against the same data:

    jailed  the db jail as deployed (firejail: seccomp, namespaces, capabilities; cgroup limits)
    root    the same jail root (the overlay mount), the jail stopped, PostgreSQL started with a
            plain chroot by a transient unit: no firejail, no limits, Unix socket only
    bare    the copy of the jail root on the host's filesystem (throughput.py's bare twin)

jailed/bare is the table's figure; root/bare is what the overlay root costs; jailed/root is what
the sandbox (firejail and the unit's limits) costs.

Then the static page (10 KiB, wrk from this machine, as throughput.py) four ways:

    jailed  HOST:80, DNAT to the web jail (bridge, veth, the jail's network namespace, firejail)
    nobrnf  the same with net.bridge.bridge-nf-call-iptables=0 for the run (restored after): bridged
            frames skip iptables; production needs it on (the FORWARD rules between jails)
    nat     HOST:8081, DNAT to the bare Apache on HOST:8080 (a rule added for the run, removed after)
    bare    HOST:8080, the bare Apache directly

nat/bare is what the DNAT and connection tracking cost; nobrnf/jailed what bridge netfilter
costs; jailed/nat the rest of the jailed path (bridge, veth, namespace, sandbox, overlay root).
Ratios are medians of per-round ratios; the sides of a round run in turn (alternating the order)
so that drift cancels. Load stays on the lab host.
--host NAME measures on a running lab host where site.yml has converged (kept, not destroyed).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from lablib import Lab, converge_site, standalone
from throughput import BARE, JAILS, PG_BIN, PG_CONF, PSQL_ENV, pgbench, setup_bare, teardown_bare, wrk

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
umount {DB_ROOT}/proc {DB_ROOT}/dev
systemctl start jailhost-db.service
for i in $(seq 100); do chroot {DB_ROOT} {PG_BIN}/pg_isready -q -h /run/postgresql && exit 0; sleep 0.1; done
exit 1
"""


NAT_RULE = "PREROUTING -d {pub}/32 -p tcp --dport 8081 -j DNAT --to-destination {pub}:8080"


def split(runs: dict[str, list[float]], label: str, pairs: list[tuple[str, str]]) -> str:
    """One table line: the medians of each side and the median (min-max) of each ratio."""
    medians = ", ".join(f"{side} {statistics.median(values):.0f}" for side, values in runs.items())
    cells = []
    for a, b in pairs:
        values = [x / y for x, y in zip(runs[a], runs[b])]
        cells.append(f"{a}/{b} {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
    return f"| {label} | {medians} | " + " | ".join(cells) + " |"


def measure_web(lab: Lab, rounds: int, seconds: int) -> str:
    pub = lab.address
    rule = NAT_RULE.format(pub=pub)
    lab.ssh(f"iptables -t nat -I {rule}")
    try:
        urls = {"jailed": f"http://{pub}/bench.html", "nobrnf": f"http://{pub}/bench.html",
                "nat": f"http://{pub}:8081/bench.html", "bare": f"http://{pub}:8080/bench.html"}
        runs: dict[str, list[float]] = {side: [] for side in urls}
        for i in range(rounds):
            order = ("jailed", "nobrnf", "nat", "bare") if i % 2 == 0 else ("bare", "nat", "nobrnf", "jailed")
            for side in order:
                if side == "nobrnf":
                    lab.ssh("sysctl -q net.bridge.bridge-nf-call-iptables=0")
                try:
                    runs[side].append(wrk(urls[side], seconds)["value"])
                finally:
                    lab.ssh("sysctl -q net.bridge.bridge-nf-call-iptables=1")
        line = split(runs, f"Apache static page req/s, n={rounds}",
                     [("jailed", "bare"), ("nat", "bare"), ("nobrnf", "jailed"), ("jailed", "nat")])
        print(line, flush=True)
        return line
    finally:
        lab.ssh(f"iptables -t nat -D {rule}")


def measure(lab: Lab, rounds: int, seconds: int) -> list[str]:
    setup_bare(lab)
    lines = []
    try:
        lines.append(measure_web(lab, rounds, seconds))
        # The client runs in the root of the server it measures (the jail root serves "root" too).
        roots = {"jailed": DB_ROOT, "root": DB_ROOT, "bare": f"{BARE}/db"}
        for mode in ("select-only", "tpcb-like"):
            runs: dict[str, list[float]] = {side: [] for side in roots}
            for i in range(rounds):
                order = ("jailed", "bare", "root") if i % 2 == 0 else ("root", "bare", "jailed")
                for side in order:
                    if side == "root":
                        lab.ssh(START_ROOT)
                    runs[side].append(pgbench(lab, roots[side], mode, seconds)["value"])
                    if side == "root":
                        lab.ssh(STOP_ROOT)
            lines.append(split(runs, f"pgbench {mode} TPS, n={rounds}",
                               [("jailed", "bare"), ("root", "bare"), ("jailed", "root")]))
            print(lines[-1], flush=True)
    finally:
        teardown_bare(lab)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    parser.add_argument("--host", help="a running lab host where site.yml has converged")
    args = parser.parse_args()
    if args.host:
        measure(Lab(args.host), args.rounds, args.seconds)
        return 0

    def run(lab: Lab) -> list:
        converge_site(lab)
        measure(lab, args.rounds, args.seconds)
        return []

    return standalone("bench-attr", run, args.keep)


if __name__ == "__main__":
    sys.exit(main())
