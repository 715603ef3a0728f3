"""Helpers shared by the testinfra suites that run against booted test hosts.

The suites run under Molecule (testinfra verifier, ansible backend) and with plain pytest against
any host converged with the same variables, e.g.:

    pytest tests/integration/bridge --hosts=ssh://root@203.0.113.7 --ssh-identity-file=KEY
"""

from __future__ import annotations

import re
import shlex
import sys
import time
import uuid
from pathlib import Path

import yaml


def load_vars(test_file: str) -> dict:
    """The role variables a suite was converged with (vars.yml beside the test file)."""
    return yaml.safe_load((Path(test_file).parent / "vars.yml").read_text())


def public_address(host) -> str:
    """The address the controller reaches the test host on (its uplink side)."""
    backend = host.backend
    if backend.NAME == "ansible":
        hostvars = backend.ansible_runner.get_variables(backend.host)
        return hostvars.get("ansible_host", backend.host)
    return backend.hostname


def push_file(host, src: Path, dest: str, mode: str = "0755") -> None:
    marker = f"EOF_{uuid.uuid4().hex}"
    host.run_expect([0], f"cat > {dest} <<'{marker}'\n{src.read_text()}{marker}\nchmod {mode} {dest}")


def reboot(host, timeout: float = 120) -> None:
    """Reboot the test host from inside (as an operator would) and wait until it is back.

    A marker in /run (a tmpfs, emptied by every boot) tells the new boot from the old one.
    """
    host.run_expect([0], "touch /run/jailhost-test-reboot-marker")
    try:
        host.run("systemctl reboot")
    except RuntimeError:  # SSH may see the connection drop (exit 255) before the command returns
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            cmd = host.run("test ! -e /run/jailhost-test-reboot-marker && systemctl is-system-running --wait")
        except Exception:  # noqa: BLE001 - the connection drops while the host reboots
            continue
        if cmd.rc in (0, 1) and cmd.stdout.strip() in ("running", "degraded"):
            return
    raise AssertionError(f"test host did not come back within {timeout:.0f} s after reboot")


COLLECTIONS = Path(__file__).resolve().parents[2] / ".cache" / "collections"


PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _ansible_playbook(host, playbook: Path, tmp_path: Path, extra_vars: dict | None, check: bool,
                      inventory_group: str | None = None, collections_path: str | None = None):
    """ansible-playbook PLAYBOOK against the test host only; see run_play."""
    import json
    import os
    import subprocess

    backend = host.backend
    if backend.NAME == "ansible":
        inventory, target, extra = backend.ansible_inventory, backend.host, []
    else:
        target = backend.hostname
        extra = [f"--user={backend.host.user or 'root'}"]
        if backend.ssh_identity_file:
            extra.append(f"--private-key={backend.ssh_identity_file}")
        if inventory_group:  # the playbook targets a group: put the host in it
            inventory = str(tmp_path / "inventory.json")
            Path(inventory).write_text(json.dumps({inventory_group: {"hosts": {target: None}}}))
        else:
            inventory = f"{target},"
    vars_file = tmp_path / f"vars-{uuid.uuid4().hex[:8]}.json"
    vars_file.write_text(json.dumps(extra_vars or {}))
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_STDOUT_CALLBACK="default",
               # Failures in stdout like every other result, whatever the caller's environment
               # says (Molecule exports ANSIBLE_DISPLAY_FAILED_STDERR=true to its verifier).
               ANSIBLE_DISPLAY_FAILED_STDERR="false",
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    # The ansible-playbook of the venv pytest runs from, when there is one.
    venv_playbook = Path(sys.executable).with_name("ansible-playbook")
    playbook_cmd = str(venv_playbook) if venv_playbook.exists() else "ansible-playbook"
    cmd = [playbook_cmd, "-i", inventory, *extra, f"--limit={target}", str(playbook), "-e", f"@{vars_file}"]
    if check:
        cmd.append("--check")
    # A collection from elsewhere (the installed tarball) is used from the playbook's directory, as
    # a user's repository would; otherwise from the current directory (this repository's ansible.cfg).
    cwd = playbook.parent if collections_path else None
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=cwd, check=False)


def run_play(host, play: dict, tmp_path: Path, extra_vars: dict | None = None, check: bool = False):
    """Run one play (a dict without 'hosts') against the test host with ansible-playbook.

    Works with the ansible backend (Molecule's inventory) and the ssh backend (plain pytest).
    Returns the CompletedProcess; the play's output is in .stdout, errors also in .stderr.
    """
    import json

    target = host.backend.host if host.backend.NAME == "ansible" else host.backend.hostname
    playbook = tmp_path / f"play-{uuid.uuid4().hex[:8]}.yml"
    playbook.write_text(json.dumps([{"hosts": target, "gather_facts": False, **play}]))
    return _ansible_playbook(host, playbook, tmp_path, extra_vars, check)


def run_playbook(host, name: str | Path, tmp_path: Path, extra_vars: dict | None = None, check: bool = False,
                 collections_path: str | None = None):
    """Run one of the collection's playbooks (playbooks/NAME.yml), or the playbook at a path, for the
    group jailhosts, against the test host only, as an operator would; see run_play.
    COLLECTIONS_PATH replaces ANSIBLE_COLLECTIONS_PATH (e.g. a collection installed from the tarball)."""
    playbook = name if isinstance(name, Path) else PLAYBOOKS / f"{name}.yml"
    return _ansible_playbook(host, playbook, tmp_path, extra_vars, check, inventory_group="jailhosts",
                             collections_path=collections_path)


def run_role(host, role: str, role_vars: dict, tmp_path: Path, check: bool = False):
    """Run one role of the collection against the test host (see run_play)."""
    return run_play(host, {"roles": [{"role": role}]}, tmp_path, extra_vars=role_vars, check=check)


def host_state(host, paths: list[str]) -> dict:
    """A snapshot of what a role may change: every iptables rule and the files under paths."""
    files = host.run("find %s -type f -exec sha256sum {} + 2>/dev/null | sort" % " ".join(paths)).stdout
    return {
        "filter": host.check_output("iptables -S"),
        "nat": host.check_output("iptables -t nat -S"),
        "links": host.check_output("ip -br link | awk '{print $1}' | sort"),
        "files": files,
    }


MOLECULE = Path(__file__).resolve().parents[2] / "molecule"


def assert_check_mode_changes_nothing(host, playbook: str | Path, tmp_path: Path, watched: list[str],
                                      extra_vars: dict | None = None) -> None:
    """Run a scenario's converge playbook (or playbooks/NAME.yml) with --check on the
    converged host: it must succeed, report changed=0, and leave the rules and the WATCHED files
    as they were."""
    import re

    before = host_state(host, watched)
    if isinstance(playbook, str):
        playbook = PLAYBOOKS / f"{playbook}.yml"
    result = _ansible_playbook(host, playbook, tmp_path, extra_vars, True, inventory_group="jailhosts")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    recap = re.findall(r"changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    assert recap and all(r == ("0", "0", "0") for r in recap), output[-5000:]
    assert host_state(host, watched) == before, "check mode changed the host"


FIREJAIL_HELPER = re.compile(r"/lib/[^/ ]+/firejail/[^/ ]+$|/firejail$")


def jail_pids(host, name: str, timeout: float = 15) -> tuple[int, int, list[int]]:
    """(firejail parent, sandbox child, daemon PIDs) of jail NAME, read from systemd and
    /run/firejail directly (not through the module under test).

    Waits up to TIMEOUT seconds for a jail that is (re)starting: between systemd's MainPID and
    firejail's state file, and before the daemon is exec'd, the triple is not complete yet.
    """
    def read():
        main = host.check_output(f"systemctl show -p MainPID --value jailhost-{name}.service")
        child = host.run(f"cat /run/firejail/sandbox/{main}").stdout.strip() if main != "0" else ""
        if not child.isdigit():
            return None
        # While the sandbox initializes, the child's children are firejail's helpers (fseccomp,
        # fcopy, ... from /usr/lib/<arch>/firejail/): not the daemon yet. (A daemon's exe reads
        # /run/firejail/mnt/oroot/..., so only the helpers' own names count.)
        children = host.run(f"for p in $(cat /proc/{child}/task/*/children); do "
                            f"printf '%s %s\\n' $p \"$(readlink /proc/$p/exe)\"; done").stdout.splitlines()
        if not children or any(FIREJAIL_HELPER.search(line) for line in children):
            return None
        return int(main), int(child), [int(line.split()[0]) for line in children]

    return wait_until(read, timeout=timeout)[0]


# firejail 0.9.72's ARP probe of --ip fails this way when any packet reaches the host as its
# 0.5 s wait ends (a negative select() timeout, fixed upstream after 0.9.72); systemd retries it.
# docs/design/firejail-findings.md, section 8.
# firejail 0.9.72 (Debian 12) only: 0.9.74 (Debian 13) clamps the timeout (upstream commit 1e3e43e12),
# so the count is 0 there (docs/jails.md, "firejail 0.9.72 and 0.9.74").
FIREJAIL_ARP_PROBE_ERROR = "Error select: arp.c:202 arp_check: Invalid argument"


def arp_probe_failures(host, unit: str) -> int:
    """How many starts of UNIT since boot firejail's ARP probe failed (FIREJAIL_ARP_PROBE_ERROR)."""
    return host.run(f"journalctl -b -u {unit} -o cat --no-pager").stdout.count(FIREJAIL_ARP_PROBE_ERROR)


def assert_started_once(host, names) -> None:
    """Each jail unit started at the first try since boot, or was restarted only after
    firejail's known ARP probe failure: NRestarts equals the number of those failures.

    Jails start together at boot; a jail that fails and is restarted by systemd still ends up
    serving, so only this counter shows a start-up race (e.g. firejail's first-run setup).
    """
    for name in names:
        unit = f"jailhost-{name}.service"
        restarts = int(host.check_output(f"systemctl show -p NRestarts --value {unit}"))
        assert restarts == arp_probe_failures(host, unit), \
            host.run(f"journalctl -b -u {unit} --no-pager | tail -n 20").stdout


def proc_status(host, pid: int) -> dict:
    """/proc/PID/status as a dict of strings."""
    text = host.check_output(f"cat /proc/{pid}/status")
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def in_jail(host, pid: int, command: str):
    """Run COMMAND in the mount, PID and network namespaces and the root directory (the chroot) of
    a jail process, as root of the host: this observes the jail's view of files, processes and
    network; it is not an attack (the escape battery attacks from inside the sandbox)."""
    return host.run(f"nsenter -t {pid} -m -p -n -r -w -- sh -c {shlex.quote(command)}")


def wait_until(predicate, timeout: float, interval: float = 0.2):
    """Poll predicate until it returns a truthy value; return it and the seconds it took."""
    started = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def site_page(host, server_name: str, path: str = "/") -> tuple[str, str]:
    """(HTTP status, body) of the site SERVER_NAME through the published port, from the test
    host's uplink address."""
    out = host.run(f"curl -s -m 5 -w '\\n%{{http_code}}' -H 'Host: {server_name}' "
                   f"http://{public_address(host)}{path}").stdout
    body, _, status = out.rpartition("\n")
    return status, body


def site_serves_rows(host, server_name: str) -> bool:
    """The whole stack answers: the demo page through the published port, with rows read from
    PostgreSQL in the db jail (a page without them means the db jail is not up yet)."""
    status, body = site_page(host, server_name)
    return status == "200" and "stored in PostgreSQL" in body


# Debian's PostgreSQL of each release: what the postgresql role installs when postgresql_version is
# empty (its default), 15 on bookworm and 17 on trixie (roles/postgresql/vars/main.yml).
DEBIAN_POSTGRESQL = {"bookworm": "15", "trixie": "17"}
JAILS_DIR = "/var/lib/jailhost/jails"
_RELEASES: dict = {}


def jail_release(host, jail: str, jails_dir: str = JAILS_DIR, cached: bool = True) -> str:
    """The Debian suite of the base image a jail is pinned to (its `base` file, written by
    jail_root), read from the base's os-release: host files no jail can change. cached=False
    reads it again (a suite that moves jails to another release)."""
    key = (id(host), jails_dir, jail)
    if key not in _RELEASES or not cached:
        base = host.file(f"{jails_dir}/{jail}/base").content_string.strip()
        text = host.file(f"{base}/usr/lib/os-release").content_string
        match = re.search(r'^VERSION_CODENAME="?([a-z]+)"?$', text, re.M)
        assert match, f"no VERSION_CODENAME in {base}/usr/lib/os-release"
        _RELEASES[key] = match.group(1)
    return _RELEASES[key]


def pg_version(host, jail: str = "db", jails_dir: str = JAILS_DIR) -> str:
    return DEBIAN_POSTGRESQL[jail_release(host, jail, jails_dir)]


def pg_bin(host, jail: str = "db", jails_dir: str = JAILS_DIR) -> str:
    """The directory of the PostgreSQL programs in the jail (/usr/lib/postgresql/<version>/bin)."""
    return f"/usr/lib/postgresql/{pg_version(host, jail, jails_dir)}/bin"


def pg_conf_dir(host, jail: str = "db", jails_dir: str = JAILS_DIR) -> str:
    """The configuration directory of the cluster main in the jail (/etc/postgresql/<version>/main)."""
    return f"/etc/postgresql/{pg_version(host, jail, jails_dir)}/main"
