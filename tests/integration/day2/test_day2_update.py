"""playbooks/update.yml on the converged full-stack host: apt upgrade inside every jail, only the
jails whose packages changed are restarted, a report per jail, check mode changes nothing.

An upgrade is made available for real: a package jailhost-probe 1.0 is installed into the web
jail and version 2.0 is published in a local apt repository inside that jail (a file: source).
The db jail has nothing to upgrade (its packages are current from the converge), so it must not
be restarted. The probe, its repository and source are removed afterwards.
"""

from __future__ import annotations

import re
import shlex

import pytest

from hostlib import jail_pids, load_vars, run_playbook, site_serves_rows, wait_until

VARS = load_vars(__file__)
JAILS_DIR = "/var/lib/jailhost/jails"
WEB_ROOT = f"{JAILS_DIR}/web/root"
REPO = "/srv/jailhost-probe-repo"
SOURCE = "/etc/apt/sources.list.d/jailhost-probe.list"

BUILD = r"""
set -eu
work=$(mktemp -d)
for v in 1.0 2.0; do
    d=$work/pkg-$v
    mkdir -p $d/DEBIAN $d/usr/share/jailhost-probe
    printf 'Package: jailhost-probe\nVersion: %s\nArchitecture: all\n' $v > $d/DEBIAN/control
    printf 'Maintainer: jailhost tests <root@localhost>\nDescription: day-2 update probe\n' >> $d/DEBIAN/control
    echo $v > $d/usr/share/jailhost-probe/version
    dpkg-deb --root-owner-group -b $d $work/jailhost-probe_${v}_all.deb >/dev/null
done
dpkg --root="$ROOT" -i $work/jailhost-probe_1.0_all.deb >/dev/null
mkdir -p "$ROOT$REPO"
cp $work/jailhost-probe_2.0_all.deb "$ROOT$REPO/"
deb=$work/jailhost-probe_2.0_all.deb
{ dpkg-deb -f $deb
  echo "Filename: ./jailhost-probe_2.0_all.deb"
  echo "Size: $(stat -c %s $deb)"
  echo "SHA256: $(sha256sum $deb | cut -d' ' -f1)"
  echo; } > "$ROOT$REPO/Packages"
echo "deb [trusted=yes] file:$REPO ./" > "$ROOT$SOURCE"
rm -rf $work
"""


def probe_version(host) -> str:
    return host.check_output(f"dpkg-query --admindir={WEB_ROOT}/var/lib/dpkg -W -f='${{Version}}' jailhost-probe")


def main_pids(host) -> dict:
    return {jail: jail_pids(host, jail)[0] for jail in ("web", "db")}


@pytest.fixture(scope="module")
def probe(host):
    host.run_expect([0], f"ROOT={WEB_ROOT} REPO={REPO} SOURCE={SOURCE} sh -c {shlex.quote(BUILD)}")
    yield
    host.run_expect([0], f"dpkg --root={WEB_ROOT} -P jailhost-probe >/dev/null; rm -rf {WEB_ROOT}{REPO} {WEB_ROOT}{SOURCE}")


def lists_state(host) -> str:
    """What apt left in the web jail's own layer: indexes and caches (none expected)."""
    return host.check_output(f"find {JAILS_DIR}/web/upper/var/lib/apt/lists {JAILS_DIR}/web/upper/var/cache/apt "
                             "-newer /etc/hostname -type f 2>/dev/null | sort; true")


def test_check_mode_reports_the_upgrade_and_changes_nothing(host, probe, tmp_path):
    pids = main_pids(host)
    apt_files = lists_state(host)

    result = run_playbook(host, "update", tmp_path, extra_vars=VARS, check=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "web: 1 package(s) would change (jailhost-probe 1.0 2.0); would restart" in result.stdout, result.stdout
    assert "db: up to date, not restarted" in result.stdout
    assert probe_version(host) == "1.0"
    assert main_pids(host) == pids
    assert lists_state(host) == apt_files


def test_update_upgrades_and_restarts_only_the_changed_jail(host, probe, tmp_path):
    pids = main_pids(host)

    result = run_playbook(host, "update", tmp_path, extra_vars=VARS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "web: 1 package(s) changed (jailhost-probe 1.0 2.0); restarted" in result.stdout, result.stdout
    assert "db: up to date, not restarted" in result.stdout
    assert re.search(r"base image /var/lib/jailhost/base/\S+: \d+ pending upgrade\(s\), left unchanged", result.stdout)
    assert probe_version(host) == "2.0"
    after = main_pids(host)
    assert after["web"] != pids["web"], "the upgraded web jail was not restarted"
    assert after["db"] == pids["db"], "the db jail had no change but was restarted"
    # The daemon of the restarted jail runs and serves the page with rows again.
    assert host.check_output("systemctl is-active jailhost-web.service") == "active"
    wait_until(lambda: site_serves_rows(host, VARS["apache_vhosts"][0]["server_name"]), timeout=30)
    # Nothing of apt's indexes or downloads stays in the jail's layer.
    assert "Packages" not in lists_state(host)
    assert ".deb" not in lists_state(host)


def test_second_run_changes_nothing_and_restarts_nothing(host, probe, tmp_path):
    pids = main_pids(host)

    result = run_playbook(host, "update", tmp_path, extra_vars=VARS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"changed=0\s", result.stdout), result.stdout
    assert "web: up to date, not restarted" in result.stdout
    assert main_pids(host) == pids


@pytest.mark.parametrize("bad, message", [
    ({"update_jails": ["nosuch"]}, "update_jails names jails that are not declared on this host: nosuch"),
    ({"update_jails": ["Bad Name"]}, "must be jail names"),
    ({"update_mode": "everything"}, "update_mode"),
    ({"update_apt_proxy": "ftp://proxy"}, "update_apt_proxy"),
])
def test_bad_input_fails_before_any_change(host, probe, tmp_path, bad, message):
    pids = main_pids(host)

    result = run_playbook(host, "update", tmp_path, extra_vars={**VARS, **bad})

    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert main_pids(host) == pids
