"""The db jail's postgres user cannot make a converge write into a host directory.

The jail's postgres owns /etc/postgresql/VERSION/main and its conf.d. Before issue 13 it could
replace conf.d with a symbolic link to a host directory, and the next converge's template task
wrote jailhost.conf there, as host root. The role now writes through jail_files, which follows no
link of the jail: the converge fails closed, naming the path, and writes nothing on the host.
"""

from __future__ import annotations

import uuid

from attacklib import install_jailenter, jail_run
from hostlib import load_vars, pg_conf_dir, run_role

VARS = load_vars(__file__)
JAIL = VARS.get("postgresql_jail", "db")
ROOT = f"/var/lib/jailhost/jails/{JAIL}/root"
ROLE_VARS = {k: v for k, v in VARS.items() if k.startswith("postgresql_")}


def as_jail_postgres(host, code: str) -> dict:
    return jail_run(host, JAIL, code, user="postgres")


def test_conf_d_replaced_by_a_link_to_a_host_directory_fails_closed(host, tmp_path):
    conf_d = f"{pg_conf_dir(host, JAIL)}/conf.d"
    install_jailenter(host)
    canary = f"/var/tmp/jailhost-canary-{uuid.uuid4().hex[:8]}"
    host.run_expect([0], f"mkdir -m 0755 {canary}")
    moved = f"{conf_d}.moved"
    plant = f"""
try:
    os.rename({conf_d!r}, {moved!r})
    os.symlink({canary!r}, {conf_d!r})
    out["planted"] = os.readlink({conf_d!r})
    out["uid"] = os.getuid()
except OSError as e:
    out["planted"] = err(e)
"""
    restore = f"""
try:
    if os.path.islink({conf_d!r}):
        os.unlink({conf_d!r})
    if os.path.isdir({moved!r}):
        os.rename({moved!r}, {conf_d!r})
    out["restored"] = os.path.isdir({conf_d!r}) and not os.path.islink({conf_d!r})
except OSError as e:
    out["restored"] = err(e)
"""
    try:
        planted = as_jail_postgres(host, plant)
        assert planted["planted"] == canary, planted
        assert planted["uid"] != 0, "the link must be planted by the jail's postgres, not root"

        # A changed setting: before the fix, this converge wrote the new jailhost.conf into the canary.
        changed = {**ROLE_VARS, "postgresql_settings": {"work_mem": "8MB"}}
        result = run_role(host, "jailhost.jails.postgresql", changed, tmp_path)
        output = result.stdout + result.stderr
        print(f"  converge with conf.d -> {canary}: rc {result.returncode}")
        assert result.returncode != 0, output
        assert conf_d in output and "symbolic link" in output, output
        print("  " + next(line.strip() for line in output.splitlines() if "symbolic link" in line)[:300])
        assert host.check_output(f"ls -A {canary}") == "", "the converge wrote into the host directory"
        assert host.file(f"{ROOT}{conf_d}").is_symlink, "the planted link itself is the jail's, left alone"
    finally:
        restored = as_jail_postgres(host, restore)
        host.run(f"rm -rf {canary}")
    assert restored["restored"] is True, restored

    result = run_role(host, "jailhost.jails.postgresql", ROLE_VARS, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    conf = host.file(f"{ROOT}{conf_d}/jailhost.conf")
    assert conf.is_file and not host.file(f"{ROOT}{conf_d}").is_symlink
    print("  conf.d restored by the jail, converge again: ok")
