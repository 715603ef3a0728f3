"""Fault survival of the full stack: what crashes comes back by itself, nothing acknowledged is lost.

Already covered elsewhere, not repeated here: reboot of the host (test_apache.py,
test_postgresql_reboot.py), the 503 page without details while the db jail is down
(test_apache.py), a broken Apache configuration rolled back while serving (test_apache.py), a
bad PostgreSQL setting that never reaches the server (test_postgresql.py).

Every kill is `kill -9` of the host PID, as an OOM kill or a crash would end the process. The
service counts as back when the page answers 200 with rows from PostgreSQL through the published
port (or PostgreSQL accepts the declared client's login), measured from the kill.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest

from hostlib import jail_pids, load_vars, public_address, run_play, site_page, site_serves_rows, wait_until

VARS = load_vars(__file__)
WEB, DB = VARS["apache_jail"], "db"
DB_ROOT = f"/var/lib/jailhost/jails/{DB}/root"
WEB_ROOT = f"/var/lib/jailhost/jails/{WEB}/root"
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
DB_IP = VARS["postgresql_address"]
CLIENT = VARS["postgresql_clients"][0]
PASSWORD = {u["name"]: u["password"] for u in VARS["postgresql_users"]}[CLIENT["user"]]
RECOVERY_SECONDS = 10


def page(host, path: str = "/") -> tuple[str, str]:
    return site_page(host, SERVER_NAME, path)


def serving(host) -> bool:
    return site_serves_rows(host, SERVER_NAME)


def psql_from_web(host, sql: str, timeout: int = 5):
    """psql as the application's login over TCP from the web jail's network namespace."""
    _, _, daemons = jail_pids(host, WEB)
    return host.run(f"nsenter -t {daemons[0]} -n -- chroot {DB_ROOT} env PGPASSWORD={shlex.quote(PASSWORD)} "
                    f"PGCONNECT_TIMEOUT={timeout} psql -XAtq -v ON_ERROR_STOP=1 -h {DB_IP} -U {CLIENT['user']} "
                    f"-d {CLIENT['database']} -c {shlex.quote(sql)}")


@pytest.fixture(autouse=True)
def site_up(host):
    """Start from, and leave, a serving site (other suites may have rebooted the host)."""
    wait_until(lambda: serving(host), timeout=60)
    yield
    wait_until(lambda: serving(host), timeout=60)


def kill_and_time(host, unit: str, pid: int, back) -> float:
    restarts = int(host.check_output(f"systemctl show -p NRestarts --value {unit}"))
    host.run_expect([0], f"kill -9 {pid}")
    started = time.monotonic()
    wait_until(lambda: host.run(f"test -d /proc/{pid}").rc != 0, timeout=5, interval=0.05)
    wait_until(back, timeout=RECOVERY_SECONDS + 20, interval=0.1)
    seconds = time.monotonic() - started
    assert int(host.check_output(f"systemctl show -p NRestarts --value {unit}")) > restarts, \
        "systemd did not restart the jail"
    return seconds


@pytest.mark.parametrize("target", ["apache parent", "web firejail parent"])
def test_web_jail_is_back_within_10_seconds_after_kill_9(host, target):
    main, _, daemons = jail_pids(host, WEB)
    pid = daemons[0] if target == "apache parent" else main
    assert host.check_output(f"cat /proc/{pid}/comm") == ("apache2" if target == "apache parent" else "firejail")
    seconds = kill_and_time(host, f"jailhost-{WEB}.service", pid,
                            lambda: jail_pids(host, WEB)[0] != main and serving(host))
    print(f"kill -9 {target} (pid {pid}) -> page with rows again after {seconds:.2f} s")
    assert seconds <= RECOVERY_SECONDS


@pytest.mark.parametrize("target", ["postmaster", "db firejail parent"])
def test_db_jail_is_back_within_10_seconds_after_kill_9(host, target):
    main, _, daemons = jail_pids(host, DB)
    pid = daemons[0] if target == "postmaster" else main
    assert host.check_output(f"cat /proc/{pid}/comm") == ("postgres" if target == "postmaster" else "firejail")
    seconds = kill_and_time(host, f"jailhost-{DB}.service", pid,
                            lambda: psql_from_web(host, "SELECT 1", timeout=2).stdout.strip() == "1")
    print(f"kill -9 {target} (pid {pid}) -> PostgreSQL accepts the client again after {seconds:.2f} s")
    assert seconds <= RECOVERY_SECONDS
    wait_until(lambda: serving(host), timeout=RECOVERY_SECONDS)


def test_db_jail_stopped_gives_a_clear_error_page_and_the_site_recovers_by_itself(host):
    web_main = jail_pids(host, WEB)[0]
    host.run_expect([0], f"systemctl stop jailhost-{DB}.service")
    try:
        status, body = page(host)
        assert status == "503", body
        assert "The database is not available right now" in body
        for leak in ("pg_connect", "Warning", "Fatal", "Stack trace", "#0 ", ".php", DB_IP, PASSWORD):
            assert leak not in body, leak
    finally:
        host.run_expect([0], f"systemctl start jailhost-{DB}.service")
    _, seconds = wait_until(lambda: serving(host), timeout=30)
    print(f"page with rows again {seconds:.2f} s after the db jail was started; web jail untouched")
    assert jail_pids(host, WEB)[0] == web_main, "the web jail was restarted"


WRITER = r"""
i=0; end=$(( $(date +%s) + DURATION ))
: > "$ACKED"
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  if nsenter -t "$NETPID" -n -- chroot "$ROOT" env PGPASSWORD="$PGPASS" PGCONNECT_TIMEOUT=2 \
       psql -XAtq -v ON_ERROR_STOP=1 -h "$ADDR" -U "$USER" -d "$DB" \
       -c "INSERT INTO jailhost_faults_writer (n) VALUES ($i)" >/dev/null 2>&1; then
    echo "$i" >> "$ACKED"
  fi
done
echo done >> "$ACKED.state"
"""


def test_every_acknowledged_commit_survives_kill_9_of_the_postmaster(host):
    """A writer commits one row per transaction from the web jail's network namespace (as the
    application's login, synchronous_commit at its default) and records every commit PostgreSQL
    acknowledged; the postmaster is killed with -9 in the middle. Afterwards every acknowledged
    row must be in the table."""
    assert psql_from_web(host, "DROP TABLE IF EXISTS jailhost_faults_writer; "
                               "CREATE TABLE jailhost_faults_writer (n integer PRIMARY KEY)").rc == 0
    assert psql_from_web(host, "SHOW synchronous_commit").stdout.strip() == "on"
    acked = "/run/jailhost-faults-acked"
    _, _, web_daemons = jail_pids(host, WEB)
    env = {"DURATION": "20", "ACKED": acked, "NETPID": str(web_daemons[0]), "ROOT": DB_ROOT, "PGPASS": PASSWORD,
           "ADDR": DB_IP, "USER": CLIENT["user"], "DB": CLIENT["database"]}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    host.run_expect([0], f"rm -f {acked}.state; {exports} setsid sh -c {shlex.quote(WRITER)} "
                         ">/dev/null 2>&1 </dev/null &")
    wait_until(lambda: int(host.check_output(f"wc -l < {acked} 2>/dev/null || echo 0")) >= 20, timeout=20)
    _, _, db_daemons = jail_pids(host, DB)
    before_kill = int(host.check_output(f"wc -l < {acked}"))
    host.run_expect([0], f"kill -9 {db_daemons[0]}")
    wait_until(lambda: host.file(f"{acked}.state").exists, timeout=60, interval=0.5)

    acknowledged = [int(n) for n in host.check_output(f"cat {acked}").split()]
    attempted = max(acknowledged)
    stored = {int(n) for n in psql_from_web(host, "SELECT n FROM jailhost_faults_writer").stdout.split()}
    lost = sorted(set(acknowledged) - stored)
    after_kill = [n for n in acknowledged if n > acknowledged[before_kill - 1]]
    print(f"writer: {attempted} commits tried, {len(acknowledged)} acknowledged "
          f"({before_kill} before the kill, {len(after_kill)} after recovery), {len(stored)} rows stored, "
          f"{len(lost)} acknowledged rows lost")
    assert lost == [], f"acknowledged commits lost: {lost[:20]}"
    assert after_kill, "the writer never got a commit through after the kill: no recovery"
    log = host.check_output(f"cat {DB_ROOT}/var/local/log/postgresql/*.log")
    assert re.search(r"database system was interrupted|not properly shut down", log), \
        "no crash recovery in the log: the postmaster was not killed"
    psql_from_web(host, "DROP TABLE jailhost_faults_writer")
    host.run(f"rm -f {acked} {acked}.state")


def test_disk_full_during_a_converge_keeps_the_site_serving(host, tmp_path, monkeypatch):
    """The apache role applies a changed vhost while the disk is full: the host's temporary space
    (Ansible's uploads) and the filesystem of the jail's /etc/apache2 (a 4 MiB tmpfs holding a copy
    of it, filled, mounted over it on the host), so writing the new site hits ENOSPC. The play
    fails, the configuration stays as it was, Apache keeps its processes and goes on serving."""
    apache_etc = f"{WEB_ROOT}/etc/apache2"
    config = f"cd {apache_etc} && find . \\( -type f -o -type l \\) ! -name fill -printf '%p %l\\n' " \
             f"-exec sha256sum {{}} + 2>/dev/null | sort"
    before, pids = host.check_output(config), jail_pids(host, WEB)
    full = ["/tmp", "/root/.ansible/tmp"]
    for path in full:
        host.run_expect([0], f"mkdir -p {path} && mount -t tmpfs -o size=1m jh-full {path} && "
                             f"(dd if=/dev/zero of={path}/fill bs=64k 2>/dev/null; true)")
    host.run_expect([0], f"cp -a {apache_etc} /run/jh-apache2 && mount -t tmpfs -o size=4m jh-full {apache_etc} && "
                         f"cp -a /run/jh-apache2/. {apache_etc}/ && chmod 0755 {apache_etc} && "
                         f"(dd if=/dev/zero of={apache_etc}/fill bs=4k 2>/dev/null; true)")
    try:
        assert "No space left" in host.run("echo x > /tmp/probe").stderr
        assert "No space left" in host.run(f"echo x > {apache_etc}/probe").stderr
        host.run(f"rm -f {apache_etc}/probe")  # created empty before the write failed
        assert host.check_output(config) == before, "the copy on the full tmpfs differs"
        vhosts = [{**VARS["apache_vhosts"][0], "config": 'Header always set X-Disk-Full "1"'}]
        monkeypatch.setenv("ANSIBLE_PIPELINING", "1")  # modules run; file uploads need the full space
        result = run_play(host, {"roles": [{"role": "jailhost.jails.apache"}]}, tmp_path,
                          extra_vars={**VARS, "apache_vhosts": vhosts})
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "No space left on device" in output, output[-3000:]
        assert host.check_output(config) == before, "the configuration changed"
    finally:
        host.run(f"umount {apache_etc} || umount -l {apache_etc}")
        host.run("rm -rf /run/jh-apache2")
        for path in full:
            host.run(f"umount {path} || umount -l {path}")
    assert host.check_output(config) == before, "the configuration changed"
    assert jail_pids(host, WEB) == pids, "Apache was restarted"
    assert serving(host)
    assert "X-Disk-Full" not in host.run(f"curl -sI -H 'Host: {SERVER_NAME}' http://{public_address(host)}/health.txt").stdout
