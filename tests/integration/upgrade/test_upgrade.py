"""Moving a host's jails from Debian 12 to Debian 13 (issue 15): playbooks/migrate-jail.yml.

The `upgrade` scenario converges site.yml with the lab inventory on a Debian 12 (bookworm) host:
bookworm jails, PostgreSQL 15, PHP 8.2. Data of our own goes into the db jail beside the demo
rows (a table of 1,000 rows, a database and a role made by hand, as an operator would). Then:

1. check mode and bad input change nothing;
2. the db jail moves to trixie: PostgreSQL 17, every table of every database counted before (by
   this suite, in the old server) and after (in the new one), equal; the hand-made role is there;
   the site serves the rows again; the old jail is kept; a second run and site.yml change nothing;
3. the web jail moves to trixie (PHP 8.4), the site serves over HTTP and HTTPS;
4. the db jail goes back (rollback): PostgreSQL 15 with the rows as they were at the move (a row
   written to the new server after the move stays in the set-aside new jail, as documented);
5. the web jail's kept copy is deleted (cleanup).

The tests run in this order and build on each other (one host, one migration).
"""

from __future__ import annotations

import re
import shlex
import ssl
import time
import urllib.request

import pytest

import hostlib
from hostlib import (DEBIAN_POSTGRESQL, JAILS_DIR, host_state, load_vars, public_address, run_playbook,
                     site_serves_rows, wait_until)

VARS = load_vars(__file__)
SERVER = VARS["apache_vhosts"][0]["server_name"]
PROBE_ROWS = 1000
LEDGER_ROWS = 200


def jail_release(host, jail: str) -> str:
    """The jail's release read now: this suite moves jails to another release."""
    return hostlib.jail_release(host, jail, cached=False)


def pg_bin_now(host) -> str:
    return f"/usr/lib/postgresql/{DEBIAN_POSTGRESQL[jail_release(host, 'db')]}/bin"


def sql(host, query: str, database: str = "app") -> str:
    """psql as the jail's postgres, from the host (test code: it runs the jail's psql with chroot)."""
    return host.check_output(
        f"chroot {JAILS_DIR}/db/root setpriv --reuid=postgres --regid=postgres --init-groups "
        f"{pg_bin_now(host)}/psql -XAtq -v ON_ERROR_STOP=1 -h /run/postgresql -d {database} -c {shlex.quote(query)}")


def counts(host) -> dict:
    """Every table's row count in every database of the db jail, counted by this suite."""
    out = {}
    for database in sql(host, "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1", "postgres").split():
        tables = sql(host, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname "
                           "NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", database).split()
        for table in tables:
            out[f"{database}:{table}"] = int(sql(host, f"SELECT count(*) FROM {table}", database))
    return out


def https_page(host) -> str:
    context = ssl._create_unverified_context()
    request = urllib.request.Request(f"https://{public_address(host)}/", headers={"Host": SERVER})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.read().decode()


def migrate(host, tmp_path, check=False, **extra):
    return run_playbook(host, "migrate-jail", tmp_path, extra_vars={**VARS, **extra}, check=check)


def recap_changed(output: str) -> int:
    return int(re.search(r"changed=(\d+)", output.split("PLAY RECAP")[-1]).group(1))


@pytest.fixture(scope="module")
def before(host):
    """The demo stack on bookworm with data of our own; every table counted."""
    wait_until(lambda: site_serves_rows(host, SERVER), timeout=120)
    sql(host, "CREATE TABLE IF NOT EXISTS migration_probe (id int PRIMARY KEY, note text)")
    sql(host, f"INSERT INTO migration_probe SELECT g, md5(g::text) FROM generate_series(1, {PROBE_ROWS}) g "
              "ON CONFLICT DO NOTHING")
    if sql(host, "SELECT count(*) FROM pg_database WHERE datname = 'ledger'", "postgres") == "0":
        sql(host, "CREATE DATABASE ledger", "postgres")
    sql(host, "CREATE TABLE IF NOT EXISTS entries (id int PRIMARY KEY, amount numeric)", "ledger")
    sql(host, f"INSERT INTO entries SELECT g, g * 1.5 FROM generate_series(1, {LEDGER_ROWS}) g ON CONFLICT DO NOTHING",
        "ledger")
    if sql(host, "SELECT count(*) FROM pg_roles WHERE rolname = 'auditor'", "postgres") == "0":
        sql(host, "CREATE ROLE auditor NOLOGIN", "postgres")
    return counts(host)


def test_the_host_and_its_jails_start_on_bookworm(host, before):
    assert "VERSION_CODENAME=bookworm" in host.file("/etc/os-release").content_string
    assert jail_release(host, "db") == "bookworm" and jail_release(host, "web") == "bookworm"
    assert sql(host, "SHOW server_version_num", "postgres").startswith("15")
    assert before["app:public.migration_probe"] == PROBE_ROWS and before["ledger:public.entries"] == LEDGER_ROWS
    print(f"  before: {len(before)} tables, {sum(before.values())} rows, PostgreSQL 15 on bookworm")


def test_check_mode_and_bad_input_change_nothing(host, before, tmp_path):
    watched = [JAILS_DIR + "/db/base", JAILS_DIR + "/web/base", "/etc/systemd/system"]
    state = host_state(host, watched)
    pids = host.check_output("systemctl show -p MainPID --value jailhost-db jailhost-web")
    check = migrate(host, tmp_path, check=True, migrate_jail="db", migrate_suite="trixie")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "would move the db jail db from Debian bookworm to trixie" in check.stdout, check.stdout
    cases = [
        ({"migrate_jail": "alpha"}, "must be the db jail"),
        ({"migrate_jail": "db", "migrate_suite": "../trixie"}, "migrate_suite a"),
        ({"migrate_jail": "db", "migrate_action": "upgrade"}, "migrate_action must be one of"),
        ({"migrate_jail": "db", "migrate_action": "rollback"}, "nothing to roll back to"),
        ({"migrate_jail": "db", "migrate_suite": "trixie", "postgresql_version": "15"},
         "postgresql_version is \"15\" in the inventory"),
    ]
    for extra, message in cases:
        result = migrate(host, tmp_path, **extra)
        assert result.returncode != 0 and message in result.stdout, (extra, result.stdout[-3000:])
    assert host_state(host, watched) == state
    assert host.check_output("systemctl show -p MainPID --value jailhost-db jailhost-web") == pids
    assert not host.file(f"{JAILS_DIR}/db.pre-migration").exists
    assert jail_release(host, "db") == "bookworm"


def test_the_db_jail_moves_to_trixie_with_every_row(host, before, tmp_path):
    started = time.monotonic()
    result = migrate(host, tmp_path, migrate_jail="db", migrate_suite="trixie")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    report = re.search(r"migrate: the jail db runs Debian trixie[^\"]*", result.stdout).group(0)
    print(f"  {report}\n  (playbook {elapsed:.0f} s)")
    assert "every table counted equal" in report
    # Counted again by this suite, in the new server.
    assert sql(host, "SHOW server_version_num", "postgres").startswith("17")
    after = counts(host)
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}
    assert sql(host, "SELECT count(*) FROM pg_roles WHERE rolname = 'auditor'", "postgres") == "1"
    # The application reaches the new server with its password (restored role, pg_hba of the inventory).
    wait_until(lambda: site_serves_rows(host, SERVER), timeout=60)
    kept = f"{JAILS_DIR}/db.pre-migration"
    assert host.file(f"{kept}/base").content_string.strip().split("/")[-2].startswith("bookworm-")
    assert host.file(f"{kept}/upper/var/lib/postgresql/15/main/PG_VERSION").exists
    assert host.check_output(f"stat -c %a {JAILS_DIR}") == "700"
    print(f"  after: {len(after)} tables, {sum(after.values())} rows, PostgreSQL 17 on trixie; "
          f"the bookworm jail kept as {kept}")


def test_a_second_run_and_site_yml_change_nothing(host, tmp_path):
    again = migrate(host, tmp_path, migrate_jail="db", migrate_suite="trixie")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "already runs Debian trixie; nothing to do" in again.stdout
    assert recap_changed(again.stdout) == 0, again.stdout[-3000:]
    site = run_playbook(host, "site", tmp_path, extra_vars=VARS)
    assert site.returncode == 0, site.stdout[-3000:]
    assert recap_changed(site.stdout) == 0, [line for line in site.stdout.splitlines() if line.startswith("changed")]
    assert jail_release(host, "db") == "trixie"


def test_the_web_jail_moves_to_trixie(host, tmp_path):
    result = migrate(host, tmp_path, migrate_jail="web")  # migrate_suite empty: the host's release...
    assert result.returncode == 0, result.stdout[-3000:]
    assert "already runs Debian bookworm" in result.stdout  # ...which is bookworm: nothing to do
    started = time.monotonic()
    result = migrate(host, tmp_path, migrate_jail="web", migrate_suite="trixie")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    print("  " + re.search(r"migrate: the jail web runs Debian trixie[^\"]*", result.stdout).group(0)
          + f"\n  (playbook {elapsed:.0f} s)")
    root = f"{JAILS_DIR}/web/root"
    assert host.check_output(f"ls {root}/etc/php") == "8.4"
    wait_until(lambda: site_serves_rows(host, SERVER), timeout=60)
    assert "served by Apache" in https_page(host)
    assert host.file(f"{JAILS_DIR}/web.pre-migration/base").exists


def test_the_db_jail_goes_back_to_bookworm(host, before, tmp_path):
    sql(host, "INSERT INTO migration_probe VALUES (-1, 'written to PostgreSQL 17 after the move')")
    check = migrate(host, tmp_path, check=True, migrate_jail="db", migrate_action="rollback")
    assert check.returncode == 0 and "would go back from the jail db on Debian trixie to the kept one on bookworm" \
        in check.stdout, check.stdout[-3000:]
    result = migrate(host, tmp_path, migrate_jail="db", migrate_action="rollback")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert jail_release(host, "db") == "bookworm"
    assert sql(host, "SHOW server_version_num", "postgres").startswith("15")
    assert counts(host) == before, "the kept jail's data changed"
    wait_until(lambda: site_serves_rows(host, SERVER), timeout=60)
    aside = host.check_output(f"ls -d {JAILS_DIR}/db.rolled-back-*").split()
    assert len(aside) == 1 and host.file(f"{aside[0]}/upper/var/lib/postgresql/17/main/PG_VERSION").exists
    assert not host.file(f"{JAILS_DIR}/db.pre-migration").exists
    print(f"  back on PostgreSQL 15 with the rows of the move; the trixie jail (with the row written after "
          f"the move) set aside as {aside[0]}")


def test_cleanup_deletes_the_kept_web_jail(host, tmp_path):
    result = migrate(host, tmp_path, migrate_jail="web", migrate_action="cleanup")
    assert result.returncode == 0, result.stdout[-3000:]
    assert not host.file(f"{JAILS_DIR}/web.pre-migration").exists
    assert recap_changed(migrate(host, tmp_path, migrate_jail="web", migrate_action="cleanup").stdout) == 0
    wait_until(lambda: site_serves_rows(host, SERVER), timeout=60)
