"""PostgreSQL in the db jail: confined, reachable only by the declared client, durable.

Everything is measured from the host: /proc and /run/firejail for the confinement, the jail's
network namespace (nsenter -n) for connections, the server's log in the jail root.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest

from hostlib import jail_pids, jail_release, load_vars, pg_bin, pg_conf_dir, proc_status, run_play, wait_until

VARS = load_vars(__file__)
# The jail whose network the client connections come from (the web jail of the lab).
CLIENT_JAIL = VARS.get("client_jail", "web")
JAIL = VARS.get("postgresql_jail", "db")
ROOT = f"/var/lib/jailhost/jails/{JAIL}/root"
ADDRESS = VARS["postgresql_address"]
PORT = VARS.get("postgresql_port", 5432)
CLIENT = VARS["postgresql_clients"][0]
PASSWORD = {u["name"]: u["password"] for u in VARS["postgresql_users"]}[CLIENT["user"]]
LOG_DIR = ROOT + VARS.get("postgresql_log_directory", "/var/local/log/postgresql")
AS_POSTGRES = f"chroot {ROOT} setpriv --reuid=postgres --regid=postgres --init-groups"
ROLE_VARS = {k: v for k, v in VARS.items() if k.startswith("postgresql_")}
# 1 << CAP_SETGID (6) | 1 << CAP_SETUID (7): what setpriv needs to become postgres, nothing more.
CAPS_KEPT = 0xC0


def admin_sql(host, sql: str) -> str:
    """psql as postgres over the unix socket in the jail root (the role's administration path)."""
    return host.check_output(f"{AS_POSTGRES} {pg_bin(host)}/psql -XAtq -v ON_ERROR_STOP=1 -h /run/postgresql "
                             f"-p {PORT} -d {CLIENT['database']} -c {shlex.quote(sql)}")


def connect_from(host, jail: str, user: str, password: str, database: str, sql: str = "SELECT current_user"):
    """psql over TCP from the network namespace of JAIL (its address is the source address)."""
    _, _, daemons = jail_pids(host, jail)
    return host.run(f"nsenter -t {daemons[0]} -n -- chroot {ROOT} env PGPASSWORD={shlex.quote(password)} "
                    f"PGCONNECT_TIMEOUT=5 psql -XAt -h {ADDRESS} -p {PORT} -U {user} -d {database} "
                    f"-c {shlex.quote(sql)}")


def postgres_uid(host) -> int:
    return int(host.check_output(f"chroot {ROOT} id -u postgres"))


def ready(host) -> bool:
    return host.run(f"{AS_POSTGRES} {pg_bin(host)}/pg_isready -q -h /run/postgresql -p {PORT}").rc == 0


def log_text(host) -> str:
    return host.check_output(f"cat {LOG_DIR}/*.log")


def test_unit_is_active_and_enabled(host):
    # Other suites may have rebooted the host just before: give the server its start-up time.
    wait_until(lambda: ready(host), timeout=30)
    unit = host.service(f"jailhost-{JAIL}.service")
    assert unit.is_running and unit.is_enabled


def test_the_version_is_the_one_of_the_jails_debian_release(host):
    """postgresql_version is empty in the lab: the role installs the PostgreSQL of the db jail's
    release (15 on bookworm, 17 on trixie), read from the base image the jail is pinned to."""
    release = jail_release(host, JAIL)
    version = {"bookworm": "15", "trixie": "17"}[release]
    exec_start = host.check_output(f"systemctl show -p ExecStart --value jailhost-{JAIL}.service")
    assert f"/usr/lib/postgresql/{version}/bin/postgres" in exec_start, exec_start
    assert admin_sql(host, "SHOW server_version_num")[:2] == version
    print(f"  db jail on {release}: PostgreSQL {admin_sql(host, 'SHOW server_version')}")


def test_postgres_runs_as_postgres_in_the_jail_namespaces(host):
    _, child, daemons = jail_pids(host, JAIL)
    assert len(daemons) == 1
    assert host.check_output(f"cat /proc/{daemons[0]}/comm") == "postgres"
    members = host.check_output(
        f"ns=$(readlink /proc/{child}/ns/pid); for p in /proc/[0-9]*; do "
        f"[ \"$(readlink $p/ns/pid 2>/dev/null)\" = \"$ns\" ] && echo ${{p#/proc/}}; done; true").split()
    workers = sorted({int(p) for p in members} - {child})
    assert len(workers) >= 5, "postmaster and its background processes"
    uid = postgres_uid(host)
    for pid in workers:
        status = proc_status(host, pid)
        assert status["Uid"].split() == [str(uid)] * 4, f"pid {pid} is not postgres"
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert int(status["CapBnd"], 16) == CAPS_KEPT
        for ns in ("pid", "net", "mnt", "ipc"):
            assert host.check_output(f"readlink /proc/{pid}/ns/{ns}") != host.check_output(f"readlink /proc/1/ns/{ns}")


def test_listens_on_the_jail_address_only(host):
    _, _, daemons = jail_pids(host, JAIL)
    listeners = host.check_output(f"nsenter -t {daemons[0]} -n -- ss -Hltn").splitlines()
    assert [line.split()[3] for line in listeners] == [f"{ADDRESS}:{PORT}"]
    assert f":{PORT} " not in host.check_output("ss -Hltn") + " "


def test_the_declared_client_connects_with_its_password(host):
    result = connect_from(host, CLIENT_JAIL, CLIENT["user"], PASSWORD, CLIENT["database"],
                          "SELECT current_user || ' ' || host(inet_client_addr())")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{CLIENT['user']} {CLIENT['address']}"


@pytest.mark.parametrize("case", ["wrong password", "other database", "superuser", "other address"])
def test_everything_else_is_refused(host, case):
    jail, user, password, database = CLIENT_JAIL, CLIENT["user"], PASSWORD, CLIENT["database"]
    if case == "wrong password":
        password = "not-" + password
    elif case == "other database":
        database = "postgres"
    elif case == "superuser":
        user = "postgres"
    else:
        jail = JAIL  # the db jail's own address is not a declared client
    result = connect_from(host, jail, user, password, database)
    assert result.rc != 0
    expected = "password authentication failed" if case == "wrong password" else "pg_hba.conf rejects connection"
    assert expected in result.stderr, result.stderr


def test_pg_hba_has_only_the_declared_clients(host):
    rules = [line.split() for line in host.file(f"{ROOT}{pg_conf_dir(host)}/pg_hba.conf").content_string
             .splitlines() if line.strip() and not line.startswith("#")]
    accepting = [r for r in rules if r[-1] != "reject"]
    assert ["local", "all", "postgres", "peer"] in accepting
    network = [r for r in accepting if r[0].startswith("host")]
    assert network == [["host", c["database"], c["user"], f"{c['address']}/32", "scram-sha-256"]
                       for c in VARS["postgresql_clients"]]
    stored = admin_sql(host, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    assert stored.startswith("SCRAM-SHA-256$")


def test_logs_persist_in_the_jail_root_and_are_private(host):
    log_dir = host.file(LOG_DIR)
    assert log_dir.is_directory and log_dir.mode == 0o700 and log_dir.uid == postgres_uid(host)
    assert "database system is ready to accept connections" in log_text(host)


def test_restart_is_a_fast_shutdown_and_keeps_the_rows(host):
    admin_sql(host, "CREATE TABLE IF NOT EXISTS jailhost_probe (id serial PRIMARY KEY, note text)")
    admin_sql(host, "INSERT INTO jailhost_probe (note) VALUES ('before restart')")
    rows = admin_sql(host, "SELECT count(*) FROM jailhost_probe")
    marker = f"jailhost-test-{time.time_ns()}"
    admin_sql(host, f"DO $$BEGIN RAISE LOG '{marker}'; END$$")

    started = time.monotonic()
    host.run_expect([0], f"systemctl stop jailhost-{JAIL}.service")
    stop_seconds = time.monotonic() - started
    assert host.check_output(f"systemctl show -p Result --value jailhost-{JAIL}.service") == "success"
    host.run_expect([0], f"systemctl start jailhost-{JAIL}.service")
    _, ready_seconds = wait_until(lambda: ready(host), timeout=15, interval=0.05)

    assert stop_seconds < 5, f"stop took {stop_seconds:.2f} s: no fast shutdown"
    assert ready_seconds < 10
    assert admin_sql(host, "SELECT count(*) FROM jailhost_probe") == rows
    after = log_text(host).split(marker, 1)[1]
    assert "received fast shutdown request" in after
    assert re.search(r"database system was shut down at", after)
    assert "not properly shut down" not in after and "automatic recovery" not in after


def test_second_run_changes_nothing_and_never_reinitialises(host, tmp_path):
    rows = admin_sql(host, "SELECT count(*) FROM jailhost_probe")
    pid_before = jail_pids(host, JAIL)[0]
    result = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path, extra_vars=ROLE_VARS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"changed=0\s", result.stdout), result.stdout
    assert admin_sql(host, "SELECT count(*) FROM jailhost_probe") == rows
    assert jail_pids(host, JAIL)[0] == pid_before


def test_check_mode_reports_nothing_to_do(host, tmp_path):
    result = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path,
                      extra_vars=ROLE_VARS, check=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"changed=0\s", result.stdout), result.stdout


def test_new_setting_is_reloaded_and_port_change_restarts(host, tmp_path):
    pid_before = jail_pids(host, JAIL)[0]
    reload_vars = {**ROLE_VARS, "postgresql_settings": {"work_mem": "8MB"}}
    result = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path, extra_vars=reload_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    assert admin_sql(host, "SHOW work_mem") == "8MB"
    assert jail_pids(host, JAIL)[0] == pid_before, "a reloadable setting restarted the jail"

    # A bad value never reaches the running server.
    bad = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path,
                   extra_vars={**ROLE_VARS, "postgresql_settings": {"work_mem": "'lots'"}})
    assert bad.returncode != 0
    assert admin_sql(host, "SHOW work_mem") == "8MB"

    back = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path, extra_vars=ROLE_VARS)
    assert back.returncode == 0, back.stdout + back.stderr
    assert admin_sql(host, "SHOW work_mem") == "4MB"
    assert jail_pids(host, JAIL)[0] == pid_before

    # The port is read by the postmaster at start only: the jail is restarted, twice.
    moved = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path,
                     extra_vars={**ROLE_VARS, "postgresql_port": PORT + 1})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    main, _, daemons = jail_pids(host, JAIL)
    assert main != pid_before
    assert host.check_output(f"nsenter -t {daemons[0]} -n -- ss -Hltn").split()[3] == f"{ADDRESS}:{PORT + 1}"
    back = run_play(host, {"roles": [{"role": "jailhost.jails.postgresql"}]}, tmp_path, extra_vars=ROLE_VARS)
    assert back.returncode == 0, back.stdout + back.stderr
    assert ready(host)
    assert "received fast shutdown request" in log_text(host)
