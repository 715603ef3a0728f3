"""Benchmark: what the jails cost the services, jailed vs bare, in paired alternating runs.

    .venv/bin/python bench/throughput.py [--pairs 5] [--seconds 8] [--keep]

Boots its own lab host and converges playbooks/site.yml with inventory/lab (the `make demo`
stack). Then builds the *bare* twin of each jail on the same test host: a copy of the jail's root
filesystem (same binaries, same Apache/PHP/PostgreSQL configuration, same data) run by a transient
systemd unit with a plain `chroot` in the host's namespaces: no firejail, no seccomp, no
capability drop, no network namespace, no bridge, no NAT. Only the listen addresses differ:

    jailed  wrk -> HOST:80 (DNAT) -> br0 -> veth -> Apache in the web jail -> db jail 10.42.0.20:5432
    bare    wrk -> HOST:8080 -> Apache in the chroot copy -> PostgreSQL copy on 127.0.0.1:5432

Figures (each a ratio jailed/bare from pairs run alternately: jail, bare, jail, bare, ...):
  * Apache static page (a 10 KiB file) req/s, wrk from this machine to the lab host's address;
  * Apache dynamic page (the demo app's page: one PostgreSQL query per request) req/s;
  * pgbench select-only and tpcb-like TPS (scale 10, 4 clients): the client runs on the test host
    and talks to the server over its Unix socket, so the figure is the server's own jail cost.

wrk and pgbench report errors and failed transactions; they are printed. Load goes only to the
lab host this script created. Never fails on slowness.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

from lablib import Lab, converge_site, row, standalone

HOST = "bench-tput"
JAILS = "/var/lib/jailhost/jails"
BARE = "/srv/bench-bare"
PSQL_ENV = "/usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups"
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_CONF = "/etc/postgresql/15/main"


def pg(root: str, command: str) -> str:
    """A PostgreSQL client command as postgres, in ROOT (the jail root or the bare copy)."""
    return f"chroot {root} {PSQL_ENV} {command}"


def setup_bare(lab: Lab) -> None:
    """The bare twins: copies of the jail roots run with chroot in the host's namespaces."""
    pub = lab.address
    db_root, web_root = f"{JAILS}/db/root", f"{JAILS}/web/root"
    script = f"""
set -e
# A 10 KiB static page in the web jail's document root (the copy below takes it along).
head -c 10240 /dev/zero | tr '\\0' 'x' > {web_root}/var/www/app/bench.html
# The pgbench database in the db jail, before its data directory is copied.
{pg(db_root, f"{PG_BIN}/psql -XAtq -h /run/postgresql -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'")}
{pg(db_root, f"{PG_BIN}/pgbench -q -i -s 10 -h /run/postgresql bench")} >/dev/null 2>&1
systemctl stop jailhost-db.service
rm -rf {BARE}; mkdir -p {BARE}
cp -a {db_root} {BARE}/db
cp -a {web_root} {BARE}/web
systemctl start jailhost-db.service
# Bare PostgreSQL: loopback instead of the jail address; the app may log in from loopback.
sed -i "s/^listen_addresses = .*/listen_addresses = '127.0.0.1'/" {BARE}/db{PG_CONF}/conf.d/jailhost.conf
sed -i '1i host app app 127.0.0.1/32 scram-sha-256' {BARE}/db{PG_CONF}/pg_hba.conf
# Bare Apache: the host's address, ports 8080/8443; the app reads the bare PostgreSQL.
grep -rlZ '10\\.42\\.0\\.10:' {BARE}/web/etc/apache2 | xargs -0 sed -i -E \\
    -e 's/10\\.42\\.0\\.10:80\\b/{pub}:8080/g' -e 's/10\\.42\\.0\\.10:443\\b/{pub}:8443/g'
sed -i 's/"10\\.42\\.0\\.20"/"127.0.0.1"/' {BARE}/web/etc/jailhost-app/database.json
for r in db web; do
    mount --bind /dev {BARE}/$r/dev; mount -t proc proc {BARE}/$r/proc
done
systemd-run --quiet --unit=bench-bare-db chroot {BARE}/db {PSQL_ENV} {PG_BIN}/postgres \
    -D /var/lib/postgresql/15/main -c config_file={PG_CONF}/postgresql.conf
systemd-run --quiet --unit=bench-bare-web chroot {BARE}/web /bin/sh -c \
    '. /etc/apache2/envvars && mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" && exec /usr/sbin/apache2 -DFOREGROUND'
for i in $(seq 100); do
    chroot {db_root} {PG_BIN}/pg_isready -q -h /run/postgresql && \
    chroot {BARE}/db {PG_BIN}/pg_isready -q -h /run/postgresql && \
    curl -sf -o /dev/null http://{pub}:8080/ && curl -sf -o /dev/null http://{pub}/ && exit 0
    sleep 0.2
done
echo "the jailed or the bare stack does not serve" >&2; exit 1
"""
    lab.ssh(script)


def teardown_bare(lab: Lab) -> None:
    lab.ssh(f"systemctl stop bench-bare-web bench-bare-db; "
            f"for r in db web; do umount {BARE}/$r/proc {BARE}/$r/dev; done; rm -rf {BARE}")


def wrk(url: str, seconds: int, connections: int = 32) -> dict:
    """req/s and errors of one wrk run from this machine."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"value": rps, "errors": errors}


def pgbench(lab: Lab, root: str, mode: str, seconds: int) -> dict:
    flags = "-S" if mode == "select-only" else ""
    out = lab.ssh(pg(root, f"{PG_BIN}/pgbench -n {flags} -c 4 -j 2 -T {seconds} -h /run/postgresql bench"))
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return {"value": tps, "errors": int(failed.group(1)) if failed else 0}


def paired(pairs: int, jailed, bare) -> dict:
    """Alternate jailed and bare runs; the ratio is the median of the per-pair ratios."""
    runs = {"jailed": [], "bare": []}
    for i in range(pairs):
        order = (("jailed", jailed), ("bare", bare)) if i % 2 == 0 else (("bare", bare), ("jailed", jailed))
        for name, run in order:
            runs[name].append(run())
    ratios = [j["value"] / b["value"] for j, b in zip(runs["jailed"], runs["bare"])]
    return {
        "jailed": [r["value"] for r in runs["jailed"]], "bare": [r["value"] for r in runs["bare"]],
        "ratios": ratios, "ratio": statistics.median(ratios),
        "errors": sum(r["errors"] for side in runs.values() for r in side),
    }


def measure(lab: Lab, pairs: int, seconds: int) -> list[dict]:
    """Every figure of this benchmark on a host where site.yml has converged."""
    setup_bare(lab)
    try:
        pub = lab.address
        figures = [
            ("Apache static page (10 KiB) req/s, jailed via published port / bare", ">= 0.97",
             0.97, lambda: wrk(f"http://{pub}/bench.html", seconds), lambda: wrk(f"http://{pub}:8080/bench.html", seconds)),
            ("Apache dynamic page (reads the db) req/s, jailed / bare", ">= 0.95", 0.95,
             # 8 connections: the demo app opens a PostgreSQL connection per request (SCRAM, TLS);
             # more connections only queue, and wrk counts waits over 2 s as timeouts.
             lambda: wrk(f"http://{pub}/", seconds, 8), lambda: wrk(f"http://{pub}:8080/", seconds, 8)),
            ("pgbench select-only TPS, jailed / bare", ">= 0.97", 0.97,
             lambda: pgbench(lab, f"{JAILS}/db/root", "select-only", seconds),
             lambda: pgbench(lab, f"{BARE}/db", "select-only", seconds)),
            ("pgbench tpcb-like TPS, jailed / bare", ">= 0.97", 0.97,
             lambda: pgbench(lab, f"{JAILS}/db/root", "tpcb-like", seconds),
             lambda: pgbench(lab, f"{BARE}/db", "tpcb-like", seconds)),
        ]
        rows = []
        for figure, goal, threshold, jailed, bare in figures:
            result = paired(pairs, jailed, bare)
            detail = (f"jailed median {statistics.median(result['jailed']):.0f}, "
                      f"bare median {statistics.median(result['bare']):.0f}; errors {result['errors']}")
            rows.append(dict(row(figure, result["ratios"], "ratio", goal, result["ratio"] >= threshold,
                                 "bare (same root copied, plain chroot, host network)", detail),
                             errors=result["errors"]))
            print(f"{figure}: ratio {result['ratio']:.3f} ({rows[-1]['detail']})", flush=True)
        return rows
    finally:
        teardown_bare(lab)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()

    def run(lab: Lab) -> list[dict]:
        converge_site(lab)
        return measure(lab, args.pairs, args.seconds)

    return standalone(HOST, run, args.keep)


if __name__ == "__main__":
    sys.exit(main())
