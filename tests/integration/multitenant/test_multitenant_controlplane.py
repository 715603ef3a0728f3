"""The control plane of the multi-tenant host under attack (issue 13): every jail hostile at once.

The same classes as tests/integration/controlplane, on the apps role's host: in each jail (the
app jails alpha and beta, the front proxy, the shared db jail) the jail's root plants the
recorder (tests/integration/recorderlib.py: ``/etc/ld.so.preload``, so every dynamically linked
program started from the jail root records how confined it is) and an apt hook; alpha's root
also points the directory the converge writes (``/etc/apache2/conf-available``) at a host
directory. Then an operator converges the apps role with a change every app jail must apply
(the prefork settings: Apache's configuration is rewritten and tested with ``apache2 -t`` in
each app jail, the db jail's configuration is checked with psql). The suite passes when

* a **control** shows the recorder in an app jail catching the old mechanism (``chroot ROOT``
  as host root records every capability, no no_new_privs, no seccomp);
* the converge ran programs in the app jails and the db jail (records carry its tag), each one
  confined: no_new_privs, a seccomp filter, none of the capabilities that leave a root, never in
  the host's mount namespace;
* the converge with alpha's planted link fails closed, naming the path, and writes nothing into
  the host directory; once the link is gone it succeeds;
* the host's /etc and /usr are unchanged and no record anywhere shows host privileges.

Everything planted is removed at the end and the host is converged back to the suite's variables.
The owner's login is attacked by test_multitenant_login_attacks.py.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest

import recorderlib
from hostlib import load_vars, public_address, run_play, wait_until

VARS = load_vars(__file__)
KEY = Path(__file__).resolve().parents[3] / ".cache" / "multitenant" / "alpha_owner_key"
JAILS = "/var/lib/jailhost/jails"
JAIL_NAMES = ("alpha", "beta", VARS.get("apps_proxy_jail", "proxy"), VARS.get("apps_db_jail", "db"))
ROOTS = {name: f"{JAILS}/{name}/root" for name in JAIL_NAMES}
CANARY_DIR = "/root/jailhost-mt-cp-canary"
LINKED = "etc/apache2/conf-available"


def role_vars(**changes) -> dict:
    settings = copy.deepcopy(VARS)
    settings["apps_test_owner_key"] = str(KEY)
    settings.update(changes)
    return settings


def prefork(workers: int) -> dict:
    return {"apps_mpm_prefork": {"StartServers": 1, "MinSpareServers": 1, "MaxSpareServers": 2,
                                 "MaxRequestWorkers": workers}}


def converge(host, tmp_path, tag: str = "-", **changes):
    """The apps role as molecule/multitenant/converge.yml applies it, with CHANGES; the processes it
    starts carry JAILHOST_CP_TAG=TAG unless they clear the environment."""
    return run_play(host, {"roles": [{"role": "jailhost.jails.apps"}], "environment": {"JAILHOST_CP_TAG": tag}},
                    tmp_path, extra_vars=role_vars(**changes))


def records(host) -> list[dict]:
    return recorderlib.records(host, ROOTS)


def serves(domain: str, text: str, address: str) -> bool:
    page = subprocess.run(["curl", "-s", "--max-time", "10", "--resolve", f"{domain}:80:{address}", f"http://{domain}/"],
                          capture_output=True, text=True, check=False).stdout
    return text in page


@pytest.fixture(scope="module")
def planted(host, tmp_path_factory):
    encoded = recorderlib.build(tmp_path_factory.mktemp("recorder"))
    host_mnt = host.check_output("readlink /proc/1/ns/mnt")
    checksum = recorderlib.checksums(host)
    host.run_expect([0], f"rm -rf {CANARY_DIR} && mkdir -m 0700 {CANARY_DIR}")
    for root in ROOTS.values():
        recorderlib.plant(host, root, encoded)
    yield {"host_mnt": host_mnt, "checksum": checksum}
    for root in ROOTS.values():
        recorderlib.unplant(host, root)
    alpha = ROOTS["alpha"]
    host.run(f"test -L {alpha}/{LINKED} && rm {alpha}/{LINKED} && mv {alpha}/{LINKED}.jailhost-cp {alpha}/{LINKED}")
    host.run(f"rm -rf {CANARY_DIR}")
    result = converge(host, tmp_path_factory.mktemp("converge-back"))
    assert result.returncode == 0, result.stdout[-3000:]
    address = public_address(host)
    for app in VARS["apps_list"]:
        wait_until(lambda app=app: serves(app["domain"], app["content"][0], address), 120)


def test_control_the_recorder_in_an_app_jail_catches_the_old_mechanism(host, planted):
    """chroot into alpha's root as host root (no confinement): the recorder runs with every
    capability, no no_new_privs and no seccomp, so it would see an unconfined run."""
    host.run_expect([0], f"JAILHOST_CP_TAG=control chroot {ROOTS['alpha']} /bin/true")
    found = [record for record in records(host) if record["tag"] == "control"]
    assert found, "the recorder did not run in the control"
    assert all(recorderlib.escaping(record) for record in found), found
    assert "effective sys_admin" in recorderlib.escaping(found[0])


def test_a_converge_with_changes_runs_every_jail_program_confined(host, planted, tmp_path):
    before = {name: len(recorderlib.records(host, {name: root})) for name, root in ROOTS.items()}
    result = converge(host, tmp_path, "apps-converge", **prefork(9))
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"changed=[1-9]", result.stdout), result.stdout[-2000:]
    new = [record for name, root in ROOTS.items() for record in recorderlib.records(host, {name: root})[before[name]:]]
    ran = {(record["jail"], Path(record["exe"]).name) for record in new}
    # apache2 -t in both app jails (their configuration changed), psql in the db jail.
    for jail in ("alpha", "beta"):
        assert (jail, "apache2") in ran, ran
    assert ("db", "psql") in ran, ran
    bad = [record for record in new if recorderlib.escaping(record)]
    assert not bad, bad
    assert all(record["mnt"] != planted["host_mnt"] for record in new)


def test_a_link_planted_in_an_app_jail_fails_closed(host, planted, tmp_path):
    """alpha's root points /etc/apache2/conf-available at a host directory; the converge that
    rewrites a file there refuses the link and names the path; nothing lands on the host."""
    alpha = ROOTS["alpha"]
    host.run_expect([0], f"mv {alpha}/{LINKED} {alpha}/{LINKED}.jailhost-cp && ln -s {CANARY_DIR} {alpha}/{LINKED}")
    result = converge(host, tmp_path, **prefork(10))
    assert result.returncode != 0, result.stdout[-3000:]
    assert "conf-available" in result.stdout and "link" in result.stdout, result.stdout[-3000:]
    assert host.check_output(f"ls -A {CANARY_DIR}") == ""
    host.run_expect([0], f"rm {alpha}/{LINKED} && mv {alpha}/{LINKED}.jailhost-cp {alpha}/{LINKED}")
    again = converge(host, tmp_path, **prefork(10))
    assert again.returncode == 0, again.stdout[-3000:]


def test_the_host_is_unchanged_and_no_jail_program_ran_with_host_privileges(host, planted):
    changed = recorderlib.changed_files(planted["checksum"], recorderlib.checksums(host))
    assert not changed, changed
    assert host.check_output(f"ls -A {CANARY_DIR}") == ""
    found = records(host)
    assert {record["jail"] for record in found} >= {"alpha", "beta", "db"}, found
    bad = [record for record in found if record["tag"] != "control" and recorderlib.escaping(record)]
    assert not bad, bad
