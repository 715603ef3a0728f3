"""Changing the list of apps: bad input fails before any change, naming the variable; adding a
third app changes nothing of the other apps (their jails are not restarted, their files not
touched) and only reloads the shared proxy and database; the run after it changes nothing."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest

from hostlib import host_state, load_vars, pg_bin, pg_conf_dir, public_address, run_role

VARS = load_vars(__file__)
KEY = Path(__file__).resolve().parents[3] / ".cache" / "multitenant" / "alpha_owner_key"
JAILS = "/var/lib/jailhost/jails"
# What a run of the role may change on the host, for the "nothing changed" comparisons.
WATCHED = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/systemd/system", "/etc/firejail", "/etc/jailhost",
           "/etc/ssh/sshd_config.d", "/etc/sudoers.d"]


def role_vars(apps_list=None) -> dict:
    settings = copy.deepcopy(VARS)
    settings["apps_test_owner_key"] = str(KEY)
    if apps_list is not None:
        settings["apps_list"] = apps_list
    return settings


def units(host) -> dict:
    """Start time and main PID of every jail unit."""
    out = host.check_output("systemctl show -p Id,ActiveEnterTimestampMonotonic,MainPID 'jailhost-*.service'")
    result = {}
    for block in out.split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if fields.get("Id"):
            result[fields["Id"]] = (fields["ActiveEnterTimestampMonotonic"], fields["MainPID"])
    return result


def jail_files(host, name: str) -> str:
    """Checksums of the app jail's configuration, application and account files."""
    root = f"{JAILS}/{name}/root"
    return host.check_output(
        f"find {root}/etc/apache2 {root}/etc/passwd {root}/etc/group {root}/etc/jailhost-app {root}/srv "
        f"/etc/firejail/jailhost-{name}.profile /etc/systemd/system/jailhost-{name}.service "
        "-type f -exec sha256sum {} + | sort")


BAD_INPUT = [
    ("duplicate uid", lambda apps: apps + [{**apps[1], "name": "delta", "domain": "d.example.test",
                                            "ip": "10.42.0.40", "db": {"password": "delta-Secret-4"}}],
     r"apps_list\[2\]\.uid: 20500 is already used by apps_list\[1\]"),
    ("duplicate name", lambda apps: apps + [{**apps[0], "domain": "x.example.test", "ip": "10.42.0.41"}],
     r"apps_list\[2\]\.name: 'alpha' is already used"),
    ("name with /", lambda apps: apps + [{"name": "a/b", "domain": "ab.example.test", "ip": "10.42.0.42",
                                          "db": {"password": "ab-Secret-55"}}],
     r"apps_list\[2\]\.name: 'a/b' is not a valid application name"),
    ("name with ..", lambda apps: apps + [{"name": "..", "domain": "dd.example.test", "ip": "10.42.0.43",
                                           "db": {"password": "dd-Secret-55"}}],
     r"apps_list\[2\]\.name: '\.\.' is not a valid application name"),
    ("uid in the system range", lambda apps: apps + [{"name": "sys", "domain": "s.example.test", "ip": "10.42.0.44",
                                                      "uid": 999, "db": {"password": "sys-Secret-5"}}],
     r"apps_list\[2\]\.uid: 999 is in the system range"),
    ("jail ip collision", lambda apps: apps + [{"name": "epsilon", "domain": "e.example.test",
                                                "ip": apps[0]["ip"], "db": {"password": "eps-Secret-5"}}],
     r"apps_list\[2\]\.ip: '10\.42\.0\.31' is already used by apps_list\[0\]"),
]


@pytest.mark.parametrize("case, change, message", BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_fails_before_any_change(host, tmp_path, case, change, message):
    before = (host_state(host, WATCHED), units(host))
    result = run_role(host, "jailhost.jails.apps", role_vars(change(copy.deepcopy(VARS["apps_list"]))), tmp_path)
    assert result.returncode != 0, case
    # The failure goes to stderr where display_failed_stderr is on (Molecule sets it).
    assert re.search(message, result.stdout + result.stderr), result.stdout[-3000:] + result.stderr[-3000:]
    assert "changed=0" in result.stdout
    assert (host_state(host, WATCHED), units(host)) == before


def changed_tasks(output: str) -> list[str]:
    """Names (and item labels) of the tasks that reported a change."""
    changed, task = [], None
    for line in output.splitlines():
        found = re.match(r"TASK \[(.*)\]", line)
        if found:
            task = found.group(1)
        elif line.startswith("changed:"):
            label = re.search(r"\(item=(.*)\)", line)
            changed.append(f"{task} [{label.group(1)}]" if label else task)
    return changed


def test_adding_a_third_app_touches_only_the_new_app(host, tmp_path):
    third = VARS["apps_third_app"]
    before_units = units(host)
    before_files = {name: jail_files(host, name) for name in ("alpha", "beta")}
    apps = copy.deepcopy(VARS["apps_list"]) + [third]
    result = run_role(host, "jailhost.jails.apps", role_vars(apps), tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    changed = changed_tasks(result.stdout)
    assert changed, "adding an app must change something"
    # Only the new app's tasks, and the shared proxy, database and firewall configuration.
    for task in changed:
        assert "alpha" not in task and "beta" not in task, changed
    after_units = units(host)
    for unit in ("jailhost-alpha.service", "jailhost-beta.service", "jailhost-proxy.service", "jailhost-db.service"):
        assert after_units[unit] == before_units[unit], f"{unit} was restarted"
    assert "jailhost-gamma.service" in after_units and after_units["jailhost-gamma.service"][1] != "0"
    for name in ("alpha", "beta"):
        assert jail_files(host, name) == before_files[name], f"{name}'s files changed"
    # The new site is served with its own data, through the (reloaded, not restarted) proxy.
    page = subprocess.run(["curl", "-s", "--max-time", "15", "--resolve", f"{third['domain']}:80:{public_address(host)}",
                           f"http://{third['domain']}/"], capture_output=True, text=True, check=False).stdout
    assert third["content"][0] in page, page


def test_removing_an_app_keeps_its_data_and_the_others_untouched(host, tmp_path):
    third = VARS["apps_third_app"]
    home = f"{JAILS}/gamma/upper{VARS.get('apps_home_dir', '/srv')}/gamma"
    before_units = units(host)
    before_files = {name: jail_files(host, name) for name in ("alpha", "beta")}
    assert host.run("getent passwd gamma").rc == 0, "run after test_adding_a_third_app_touches_only_the_new_app"
    apps = copy.deepcopy(VARS["apps_list"]) + [{"name": "gamma", "state": "absent"}]
    result = run_role(host, "jailhost.jails.apps", role_vars(apps), tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    after_units = units(host)
    assert "jailhost-gamma.service" not in after_units
    for unit in ("jailhost-alpha.service", "jailhost-beta.service", "jailhost-proxy.service", "jailhost-db.service"):
        assert after_units[unit] == before_units[unit], f"{unit} was restarted"
    for name in ("alpha", "beta"):
        assert jail_files(host, name) == before_files[name], f"{name}'s files changed"
    # The user is gone, its root unmounted, its files kept (in the jail's own layer).
    assert host.run("getent passwd gamma").rc == 2
    assert host.run(f"findmnt {JAILS}/gamma/root").rc == 1
    assert host.file(f"{home}/www/index.php").exists
    # Its site is gone from the proxy, its database is kept but nobody may log in to it.
    page = subprocess.run(["curl", "-s", "--max-time", "15", "--resolve", f"{third['domain']}:80:{public_address(host)}",
                           f"http://{third['domain']}/"], capture_output=True, text=True, check=False).stdout
    assert third["content"][0] not in page
    hba = host.check_output(f"cat {JAILS}/db/root{pg_conf_dir(host)}/pg_hba.conf")
    assert "gamma" not in hba

    kept = host.check_output(
        f"chroot {JAILS}/db/root setpriv --reuid=postgres --regid=postgres --init-groups "
        f"{pg_bin(host)}/psql -XAtq -h /run/postgresql -d postgres "
        "-c \"SELECT datname FROM pg_database WHERE datname = 'gamma'\"")
    assert kept == "gamma"
