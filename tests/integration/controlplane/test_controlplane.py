"""The control plane under attack: a hostile jail against our own operations (issue 13).

Treat every jail as hostile, root inside it included: it may replace any file of its root and
wait for us. Here both jails of the full stack get, as their root would plant them:

* ``/etc/ld.so.preload`` naming a recorder library (``recorder.c``): the jail's dynamic loader runs
  it in **every** dynamically linked program started from the jail root, so it stands for a
  trojan in place of any program the collection runs there (apt-get, dpkg and the maintainer
  scripts, apt hooks, psql, pg_dump, pg_isready, ``postgres -C``, ``apache2 -t``, setpriv, env,
  sh, ...). It records the process's uid, effective and bounding capabilities, no_new_privs,
  seccomp mode and mount namespace;
* an apt hook (``DPkg::Pre-Invoke`` and ``APT::Update::Pre-Invoke`` in apt.conf.d);
* symbolic links where the collection writes: the web jail's Apache ``conf-available``
  directory pointed at a host directory (a canary).

Then the operations run as an operator runs them: ``jail_packages`` installs and removes a
package in the web jail, ``site.yml`` converges with changed settings of both jails,
``backup.yml`` dumps the database, ``restore.yml`` restores it over the data, ``update.yml``
upgrades every jail, ``remove-jail.yml`` purges a throwaway jail whose root links to a host
directory. The suite passes when

* every recorded process ran confined: no_new_privs, a seccomp filter, none of the capabilities
  that leave a root (sys_admin, sys_chroot, sys_ptrace, dac_read_search, sys_module) in its
  effective or bounding set, and never in the host's mount namespace;
* each operation did run jail programs (records with its tag), so the trojan was really there;
* a **control** shows the recorder catching the old mechanism: ``chroot ROOT /bin/true`` as host
  root (what the collection did before) records no_new_privs 0, no seccomp, every capability;
* the converge with the planted link fails closed, naming the path, and the host directory
  stays empty; after the link is removed, the converge succeeds;
* the host's /etc and /usr are unchanged (checksums), and no canary file appeared on the host.

Everything planted is removed at the end, and the stack is converged back to the lab variables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import recorderlib
from hostlib import load_vars, run_play, run_playbook, site_serves_rows, wait_until

VARS = load_vars(__file__)
JAILS = "/var/lib/jailhost/jails"
ROOTS = {name: f"{JAILS}/{name}/root" for name in ("web", "db")}
CANARY_DIR = "/root/jailhost-cp-canary"
LINKED = "etc/apache2/conf-available"


def records(host) -> list[dict]:
    return recorderlib.records(host, ROOTS)


@pytest.fixture(scope="module")
def planted(host, tmp_path_factory):
    """The recorder, the apt hook and the canary in both jails; removed at the end."""
    encoded = recorderlib.build(tmp_path_factory.mktemp("recorder"))
    host_mnt = host.check_output("readlink /proc/1/ns/mnt")
    # A converge of this code first (on a host converged by an older version, the rootfs role
    # updates its copy of jailsafe.py): the comparison is then about the attack, not the upgrade.
    first = run_playbook(host, "site", tmp_path_factory.mktemp("converge-first"), extra_vars=VARS)
    assert first.returncode == 0, first.stdout[-3000:]
    checksum = recorderlib.checksums(host)
    host.run_expect([0], f"rm -rf {CANARY_DIR} && mkdir -m 0700 {CANARY_DIR}")
    for root in ROOTS.values():
        recorderlib.plant(host, root, encoded)
    yield {"host_mnt": host_mnt, "checksum": checksum}
    for root in ROOTS.values():
        recorderlib.unplant(host, root)
    web = ROOTS["web"]
    host.run(f"test -L {web}/{LINKED} && rm {web}/{LINKED} && mv {web}/{LINKED}.jailhost-cp {web}/{LINKED}")
    host.run(f"rm -rf {CANARY_DIR}")
    result = run_playbook(host, "site", tmp_path_factory.mktemp("converge-back"), extra_vars=VARS)
    assert result.returncode == 0, result.stdout[-3000:]
    wait_until(lambda: site_serves_rows(host, VARS["apache_vhosts"][0]["server_name"]), 120)


def tagged(host, tag: str) -> list[dict]:
    return [record for record in records(host) if record["tag"] == tag]


def run_tagged(host, tmp_path, tag: str, playbook: str | None = None, play: dict | None = None, extra=None):
    """Run an operation with JAILHOST_CP_TAG=TAG in the module environment (inherited by what it
    runs, unless it clears the environment: then the records carry tag '-')."""
    env_vars = {**VARS, **(extra or {})}
    if playbook:
        return run_playbook(host, playbook, tmp_path, extra_vars=env_vars)
    return run_play(host, {**play, "environment": {"JAILHOST_CP_TAG": tag}}, tmp_path, extra_vars=env_vars)


def test_control_the_recorder_catches_the_old_mechanism(host, planted):
    """Without the confinement (chroot as host root, the collection's old way), the trojan runs with
    every capability, no no_new_privs and no seccomp: the recorder sees it."""
    host.run_expect([0], f"JAILHOST_CP_TAG=control chroot {ROOTS['web']} /bin/true")
    found = tagged(host, "control")
    assert found, "the recorder did not run in the control"
    assert all(recorderlib.escaping(record) for record in found), found
    assert "effective sys_admin" in recorderlib.escaping(found[0])


def test_jail_packages_runs_apt_and_its_hooks_confined(host, planted, tmp_path):
    before = len(records(host))
    for state in ("present", "absent"):
        result = run_tagged(host, tmp_path, "apt", play={"tasks": [{
            "name": f"hello {state} in the web jail",
            "jailhost.jails.jail_packages": {"root": ROOTS["web"], "name": ["hello"], "state": state,
                                             "update_cache": True, "proxy": VARS["rootfs_apt_proxy"],
                                             # no apt index left in the jail (day2's update checks it)
                                             "clean": True},
        }]})
        assert result.returncode == 0, result.stdout[-3000:]
    new = records(host)[before:]
    programs = {Path(record["exe"]).name for record in new}
    assert {"apt-get", "dpkg", "true"} <= programs, programs
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad
    assert all(record["mnt"] != planted["host_mnt"] for record in new)


def test_converge_with_changes_runs_jail_programs_confined(host, planted, tmp_path):
    before = len(records(host))
    result = run_tagged(host, tmp_path, "converge", playbook="site", extra={
        "apache_server_tokens": "Minor",
        "postgresql_settings": {**VARS.get("postgresql_settings", {}), "log_min_duration_statement": 2500},
    })
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"changed=[1-9]", result.stdout), result.stdout[-2000:]
    new = records(host)[before:]
    programs = {Path(record["exe"]).name for record in new}
    # postgres -C (the settings test), psql (the configuration check), apache2 (the configtest).
    assert {"postgres", "psql", "apache2"} & programs, programs
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad
    assert all(record["mnt"] != planted["host_mnt"] for record in new)


def test_backup_runs_pg_dump_confined(host, planted, tmp_path):
    before = len(records(host))
    result = run_tagged(host, tmp_path, "backup", playbook="backup")
    assert result.returncode == 0, result.stdout[-3000:]
    new = records(host)[before:]
    assert "pg_dump" in {Path(record["exe"]).name for record in new}
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad


def test_restore_runs_pg_restore_confined(host, planted, tmp_path):
    """restore.yml over the data (the backup just made, overwrite on): psql and pg_restore of the
    db jail run confined; the page still has its rows."""
    before = len(records(host))
    result = run_tagged(host, tmp_path, "restore", playbook="restore", extra={"backup_restore_overwrite": True})
    assert result.returncode == 0, result.stdout[-3000:]
    new = records(host)[before:]
    assert {"pg_restore", "psql"} <= {Path(record["exe"]).name for record in new}
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad
    wait_until(lambda: site_serves_rows(host, VARS["apache_vhosts"][0]["server_name"]), 120)


def test_remove_jail_purge_follows_no_link_of_the_jail(host, planted, tmp_path):
    """A throwaway jail whose root plants a link to a host directory (and the recorder); then
    remove-jail.yml with purge. The host directory behind the link keeps its file (control: from
    the host, the link leads to it, so a delete that followed links would have removed it)."""
    jail, directory = "cpx", f"{JAILS}/cpx"
    extra = {k: v for k, v in VARS.items() if k != "rootfs_jails"}
    added = run_play(host, {
        "become": True,
        "roles": [{"role": "jailhost.jails.rootfs",
                   "vars": {"rootfs_jails": [{"name": "db"}, {"name": "web"}, {"name": jail}]}}],
        "tasks": [{"name": "Run the throwaway jail", "jailhost.jails.sandbox": {
            "name": jail, "root": f"{directory}/root", "bridge": VARS["bridge_name"], "ip": "10.42.0.31",
            "command": ["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "10.42.0.31"]}}],
    }, tmp_path, extra_vars=extra)
    assert added.returncode == 0, added.stdout[-3000:]
    host.run_expect([0], f"echo keep > {CANARY_DIR}/kept && ln -s {CANARY_DIR} {directory}/root/srv/hostlink "
                         f"&& ln -s {CANARY_DIR}/kept {directory}/root/srv/hostfile "
                         f"&& echo /{recorderlib.LIB} > {directory}/root/etc/ld.so.preload "
                         f"&& cp {ROOTS['web']}/{recorderlib.LIB} {directory}/root/{recorderlib.LIB}")
    # Control: followed from the host, the links lead to the canary.
    assert host.check_output(f"cat {directory}/root/srv/hostlink/kept") == "keep"
    removed = run_playbook(host, "remove-jail", tmp_path,
                           extra_vars={**VARS, "remove_jail_name": jail, "remove_jail_purge": True})
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert host.run(f"test -e {directory}").rc != 0
    assert host.check_output(f"cat {CANARY_DIR}/kept") == "keep"
    host.run_expect([0], f"rm -f {CANARY_DIR}/kept")


def test_update_runs_apt_confined(host, planted, tmp_path):
    before = len(records(host))
    result = run_tagged(host, tmp_path, "update", playbook="update")
    assert result.returncode == 0, result.stdout[-3000:]
    new = records(host)[before:]
    assert "apt-get" in {Path(record["exe"]).name for record in new}
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad


def test_a_link_planted_where_the_converge_writes_fails_closed(host, planted, tmp_path):
    """The web jail's root points /etc/apache2/conf-available at a host directory; a converge that
    changes a file there refuses the link, names the path, and writes nothing on the host."""
    web = ROOTS["web"]
    host.run_expect([0], f"mv {web}/{LINKED} {web}/{LINKED}.jailhost-cp && ln -s {CANARY_DIR} {web}/{LINKED}")
    result = run_playbook(host, "site", tmp_path, extra_vars={**VARS, "apache_server_tokens": "Major"})
    assert result.returncode != 0, result.stdout[-3000:]
    assert "conf-available" in result.stdout and "link" in result.stdout, result.stdout[-3000:]
    assert host.check_output(f"ls -A {CANARY_DIR}") == ""
    host.run_expect([0], f"rm {web}/{LINKED} && mv {web}/{LINKED}.jailhost-cp {web}/{LINKED}")
    again = run_playbook(host, "site", tmp_path, extra_vars={**VARS, "apache_server_tokens": "Major"})
    assert again.returncode == 0, again.stdout[-3000:]


def test_the_host_is_unchanged_and_every_record_is_confined(host, planted):
    """Last: /etc and /usr of the host as before, no canary file, and no record in either jail
    (daemons restarted by the converges included) of a process with host privileges, apart from
    the control."""
    changed = recorderlib.changed_files(planted["checksum"], recorderlib.checksums(host))
    assert not changed, changed
    assert host.check_output(f"ls -A {CANARY_DIR}") == ""
    found = records(host)
    assert len(found) > 10, found
    bad = [record for record in found if record["tag"] != "control" and recorderlib.escaping(record)]
    assert not bad, bad
