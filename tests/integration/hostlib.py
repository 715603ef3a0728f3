"""Helpers shared by the testinfra suites that run against booted test hosts.

The suites run under Molecule (testinfra verifier, ansible backend) and with plain pytest against
any host converged with the same variables, e.g.:

    pytest tests/integration/bridge --hosts=ssh://root@203.0.113.7 --ssh-identity-file=KEY
"""

from __future__ import annotations

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
    host.run("systemctl reboot")
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
