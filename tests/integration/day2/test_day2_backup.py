"""playbooks/backup.yml and playbooks/restore.yml on the converged full-stack host.

The demo table gets rows of its own, is backed up, then the db jail is removed with its data
(sandbox absent, rootfs purge) and re-created empty (rootfs and postgresql roles without the seed
script), as after a lost db jail. The restore brings back exactly the rows that were backed up,
refuses to replace a database with data unless told to, and the web jail serves them again.
"""

from __future__ import annotations

import json
import re
import shlex
import ssl
import urllib.request

import pytest

from hostlib import load_vars, pg_bin, public_address, run_play, run_playbook, wait_until

VARS = load_vars(__file__)
DB_ROOT = "/var/lib/jailhost/jails/db/root"
AS_POSTGRES = f"chroot {DB_ROOT} setpriv --reuid=postgres --regid=postgres --init-groups"
BACKUP_DIR = "/var/backups/jailhost"
MARKER = "day2 backup probe"


def sql(host, query: str, database: str = "app") -> str:
    return host.check_output(f"{AS_POSTGRES} {pg_bin(host)}/psql -XAtq -v ON_ERROR_STOP=1 -h /run/postgresql -p 5432 "
                             f"-d {database} -c {shlex.quote(query)}")


def rows(host) -> str:
    return sql(host, "SELECT id, name, jail FROM items ORDER BY id")


def page(host) -> str:
    context = ssl._create_unverified_context()
    with urllib.request.urlopen(f"http://{public_address(host)}/", timeout=10, context=context) as resp:
        return resp.read().decode()


def _with_marker(body: str) -> str | None:
    return body if MARKER in body else None


@pytest.fixture(scope="module")
def backed_up(host, tmp_path_factory):
    """Rows of our own in the demo table, then a backup; the rows as they were backed up."""
    sql(host, f"INSERT INTO items (name, jail) VALUES ('{MARKER}', 'restored from a backup')")
    before = rows(host)
    result = run_playbook(host, "backup", tmp_path_factory.mktemp("backup"), extra_vars=VARS)
    assert result.returncode == 0, result.stdout + result.stderr
    path = re.search(r"backed up app and the roles into ([^\s\"]+)", result.stdout).group(1)
    yield path, before
    sql(host, f"DELETE FROM items WHERE name = '{MARKER}'")


def test_backup_is_owner_only_timestamped_and_checksummed(host, backed_up):
    path, _ = backed_up
    assert re.fullmatch(rf"{BACKUP_DIR}/\d{{8}}T\d{{6}}Z", path)
    for directory in (BACKUP_DIR, path):
        d = host.file(directory)
        assert (d.user, d.group, d.mode) == ("root", "root", 0o700)
    assert host.file(f"{BACKUP_DIR}/latest").linked_to == path
    names = host.check_output(f"ls -A {path}").split()
    assert sorted(names) == ["app.dump", "globals.sql", "manifest.json"]
    for name in names:
        f = host.file(f"{path}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    manifest = json.loads(host.file(f"{path}/manifest.json").content_string)
    (entry,) = manifest["databases"]
    assert entry["name"] == "app"
    assert entry["sha256"] == host.check_output(f"sha256sum {path}/app.dump").split()[0]
    # A custom-format dump pg_restore can list, holding the demo table's data.
    listing = host.check_output(f"{AS_POSTGRES} {pg_bin(host)}/pg_restore --list < {path}/app.dump")
    assert re.search(r"TABLE DATA public items", listing)
    assert "CREATE ROLE app;" in host.file(f"{path}/globals.sql").content_string
    assert not host.run(f"ls -d {BACKUP_DIR}/*.partial").stdout.strip()


def test_backup_check_mode_writes_nothing(host, backed_up, tmp_path):
    listing = host.check_output(f"ls -A {BACKUP_DIR}")
    result = run_playbook(host, "backup", tmp_path, extra_vars=VARS, check=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would back up app and the roles into" in result.stdout
    assert re.search(r"changed=0\s", result.stdout), result.stdout
    assert host.check_output(f"ls -A {BACKUP_DIR}") == listing


def test_restore_refuses_to_replace_a_database_with_data(host, backed_up, tmp_path):
    _, before = backed_up
    sql(host, "INSERT INTO items (name, jail) VALUES ('written after the backup', 'web')")
    current = rows(host)

    result = run_playbook(host, "restore", tmp_path, extra_vars=VARS)

    assert result.returncode != 0
    assert "refusing to restore over app: not empty" in result.stdout, result.stdout
    assert "backup_restore_overwrite: true" in result.stdout
    assert rows(host) == current

    # Check mode with the explicit variable says what it would do, and does nothing.
    check = run_playbook(host, "restore", tmp_path, extra_vars={**VARS, "backup_restore_overwrite": True}, check=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "would restore app (replaced)" in check.stdout
    assert rows(host) == current

    replaced = run_playbook(host, "restore", tmp_path, extra_vars={**VARS, "backup_restore_overwrite": True})
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "restored app (replaced)" in replaced.stdout
    assert rows(host) == before


@pytest.mark.parametrize("bad, message", [
    ({"backup_restore_from": "20000101T000000Z"}, "no backup /var/backups/jailhost/20000101T000000Z"),
    ({"backup_restore_from": "../etc"}, "backup_restore_from"),
    ({"backup_restore_databases": ["shop"]}, "has no dump of shop"),
])
def test_restore_bad_input_fails_before_any_change(host, backed_up, tmp_path, bad, message):
    current = rows(host)
    result = run_playbook(host, "restore", tmp_path, extra_vars={**VARS, "backup_restore_overwrite": True, **bad})
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert rows(host) == current


def test_backup_of_an_unknown_database_fails_before_writing(host, backed_up, tmp_path):
    listing = host.check_output(f"ls -A {BACKUP_DIR}")
    result = run_playbook(host, "backup", tmp_path, extra_vars={**VARS, "backup_databases": ["app", "nosuch"]})
    assert result.returncode != 0
    assert "must name databases that exist in the jail db" in result.stdout
    assert host.check_output(f"ls -A {BACKUP_DIR}") == listing


def test_restore_into_a_fresh_db_jail_brings_back_the_rows(host, backed_up, tmp_path):
    path, before = backed_up
    # The db jail is lost: sandbox and root filesystem removed, its data purged.
    lost = run_play(host, {
        "become": True,
        "tasks": [{"name": "Remove the db jail", "jailhost.jails.sandbox": {"name": "db", "state": "absent"}}],
        "roles": [],
    }, tmp_path)
    assert lost.returncode == 0, lost.stdout + lost.stderr
    purged = run_play(host, {"roles": [{"role": "jailhost.jails.rootfs"}]}, tmp_path,
                      extra_vars={**VARS, "rootfs_jails": [{"name": "db", "state": "absent", "purge": True}]})
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert host.run("test -e /var/lib/jailhost/jails/db").rc != 0

    # Re-created by the roles, without the demo's seed script: an empty database app.
    fresh = run_play(host, {"roles": [{"role": "jailhost.jails.rootfs"}, {"role": "jailhost.jails.postgresql"}]},
                     tmp_path, extra_vars={**VARS, "postgresql_sql": []})
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert sql(host, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"

    result = run_playbook(host, "restore", tmp_path, extra_vars=VARS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"restored app (into the empty database) from {BACKUP_DIR}/latest" in result.stdout
    assert rows(host) == before
    assert sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'") == "app"
    # The web jail reads them again through its database login.
    body = wait_until(lambda: _with_marker(page(host)), timeout=30)[0]
    assert "restored from a backup" in body
