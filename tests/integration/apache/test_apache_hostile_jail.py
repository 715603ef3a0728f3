"""Root in the web jail cannot make a converge write a host file or read one.

Root inside the jail (the Apache parent's uid, without capabilities) owns every root-owned
directory of the jail root. Before issue 13 it could replace the application's index.php or the
error log with a symbolic link to a host file: the converge's copy task wrote the application over
that host file, and the reload's `tail` read it as host root. The role now writes and reads those
files through jailsafe: the converge fails closed with the path in its message, and the host file
is neither written nor read.
"""

from __future__ import annotations

import uuid

from attacklib import install_jailenter, jail_run
from hostlib import load_vars, run_play

VARS = load_vars(__file__)
JAIL = VARS["apache_jail"]
ROOT = f"/var/lib/jailhost/jails/{JAIL}/root"
INDEX = f"{VARS['apache_vhosts'][0]['document_root']}/index.php"


def converge(host, tmp_path):
    return run_play(host, {"roles": [{"role": "jailhost.jails.apache"}]}, tmp_path, extra_vars=VARS)


def test_index_php_replaced_by_a_link_to_a_host_file_fails_closed(host, tmp_path):
    install_jailenter(host)
    canary = f"/var/tmp/jailhost-canary-{uuid.uuid4().hex[:8]}"
    secret = f"host-file-{uuid.uuid4().hex}"
    host.run_expect([0], f"echo {secret} > {canary} && chmod 0644 {canary}")
    moved = f"{INDEX}.moved"
    plant = f"""
try:
    os.rename({INDEX!r}, {moved!r})
    os.symlink({canary!r}, {INDEX!r})
    out["planted"] = os.readlink({INDEX!r})
    out["uid"] = os.getuid()
except OSError as e:
    out["planted"] = err(e)
"""
    restore = f"""
try:
    if os.path.islink({INDEX!r}):
        os.unlink({INDEX!r})
    if os.path.exists({moved!r}):
        os.rename({moved!r}, {INDEX!r})
    out["restored"] = os.path.isfile({INDEX!r}) and not os.path.islink({INDEX!r})
except OSError as e:
    out["restored"] = err(e)
"""
    try:
        planted = jail_run(host, JAIL, plant)
        assert planted["planted"] == canary, planted
        assert planted["uid"] == 0 and planted["self"]["CapEff"] != "0000003fffffffff", planted
        result = converge(host, tmp_path)
        output = result.stdout + result.stderr
        print(f"  converge with {INDEX} -> {canary}: rc {result.returncode}")
        assert result.returncode != 0, output
        assert INDEX in output and "symbolic link" in output, output
        print("  " + next(line.strip() for line in output.splitlines() if "symbolic link" in line)[:300])
        assert host.check_output(f"cat {canary}") == secret, "the converge wrote into the host file"
        assert secret not in output, "the host file's content reached the play's output"
    finally:
        restored = jail_run(host, JAIL, restore)
        host.run(f"rm -f {canary}")
    assert restored["restored"] is True, restored
    result = converge(host, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.file(f"{ROOT}{INDEX}").is_file and not host.file(f"{ROOT}{INDEX}").is_symlink
