"""Benchmark: playbooks/site.yml converge times and start-to-serving of the two services.

    .venv/bin/python bench/converge.py [--starts 5] [--keep]

Boots its own lab host, converges site.yml with inventory/lab (warm apt proxy: the packages come
from the machine's apt-cacher-ng), re-runs it unchanged, then times `systemctl start` of each
jail until it serves (HTTP 200 from the web jail; pg_isready for the db jail), and destroys the
host. Traffic goes only to the lab host. Prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from lablib import Lab, converge_site, row, standalone

START_WEB = (
    "systemctl stop jailhost-web.service; s=$(date +%s.%N); systemctl start jailhost-web.service; "
    "until curl -s -o /dev/null -f --max-time 1 http://{address}/health.txt; do sleep 0.02; done; "
    "e=$(date +%s.%N); python3 -c \"print($e - $s)\"")
START_DB = (
    "systemctl stop jailhost-db.service; s=$(date +%s.%N); systemctl start jailhost-db.service; "
    "until chroot /var/lib/jailhost/jails/db/root /usr/bin/pg_isready -q -h /run/postgresql; do sleep 0.02; done; "
    "e=$(date +%s.%N); python3 -c \"print($e - $s)\"")


def measure(lab: Lab, starts: int = 5) -> list[dict]:
    """site.yml cold converge and no-change re-run on a fresh host, then start-to-serving."""
    cold, cold_recap = converge_site(lab)
    warm, warm_recap = converge_site(lab)
    changed = int(warm_recap.split("changed=")[1].split()[0])
    web = [float(lab.ssh(START_WEB.format(address=lab.address))) for _run in range(starts)]
    db = [float(lab.ssh(START_DB)) for _run in range(starts)]
    return [
        row("site.yml cold converge (fresh host, warm apt proxy)", [cold], "s", "<= 240 s", cold <= 240,
            detail=cold_recap.split(":", 1)[-1].strip()),
        row("site.yml no-change re-run", [warm], "s", "<= 15 s, changed=0", warm <= 15 and changed == 0,
            detail=warm_recap.split(":", 1)[-1].strip()),
        row("web jail: systemctl start -> HTTP 200", web, "s", "<= 2 s", statistics.median(web) <= 2),
        row("db jail: systemctl start -> pg_isready", db, "s", "<= 3 s", statistics.median(db) <= 3),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()
    return standalone("bench-site", lambda lab: measure(lab, args.starts), args.keep)


if __name__ == "__main__":
    sys.exit(main())
