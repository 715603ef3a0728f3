# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The test-host harness itself (molecule/shared/labhost.py), run by `make test` after every
Molecule scenario: no lab host, veth, nspawn process or mount is left behind by the scenarios;
`create` twice keeps the one running host; `destroy` leaves the machine as it was, and `destroy`
on nothing is safe. Needs root and the cached base image (the scenarios built it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABHOST = [sys.executable, str(ROOT / "molecule" / "shared" / "labhost.py")]
NAME = "jh-harness"

sys.path.insert(0, str(ROOT / "molecule" / "shared"))
import labhost  # noqa: E402  (the harness module, found through the path above)


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LABHOST, *args], capture_output=True, text=True, timeout=300, check=False)


# Lab hosts that ran before `make test` started (a `make demo` host, say): scripts/run-tests.py
# passes their names; they are not the scenarios' leftovers.
BEFORE = set(filter(None, os.environ.get("JAILHOST_LAB_HOSTS_BEFORE", "").split(",")))


def ours(text: str) -> bool:
    """Whether a host name, link name, command line or mount point is not one of BEFORE's hosts."""
    for name in BEFORE:
        if text in (name, f"vb-{name}", f"ve-{name}") or f"{labhost.HOSTS_ROOT}/{name}/" in text + "/":
            return False
    return True


def machine_state() -> dict:
    """What lab hosts add to the machine (hosts, links, processes, mounts, FORWARD rules), except
    the hosts that ran before the tests. Only what the harness makes counts, so that a CI machine
    running containers of its own passes: links enslaved to the lab bridge (and the bridge),
    systemd-nspawn processes whose directory is under the harness's hosts directory, mounts under
    it, FORWARD rules naming the lab bridge."""
    links = subprocess.run(["ip", "-o", "link", "show", "master", labhost.LAB_BRIDGE], capture_output=True,
                           text=True, check=False).stdout
    bridge = subprocess.run(["ip", "link", "show", labhost.LAB_BRIDGE], capture_output=True, text=True,
                            check=False).returncode == 0
    procs = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    forward = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    return {
        "hosts": sorted(p.parent.name for p in labhost.HOSTS_ROOT.glob("*/state.json") if ours(p.parent.name)),
        "links": sorted([name for name in (line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
                         if ours(name)] + ([labhost.LAB_BRIDGE] if bridge and not BEFORE else [])),
        "nspawn": sorted(line for line in procs.splitlines() if line.startswith("systemd-nspawn")
                         and f"--directory={labhost.HOSTS_ROOT}/" in line and ours(line)),
        "mounts": sorted(line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                         if str(labhost.HOSTS_ROOT) in line.split()[1] and ours(line.split()[1])),
        "forward": sorted(line for line in forward.splitlines() if labhost.LAB_BRIDGE in line and not BEFORE),
        "loops": lab_loops(),
    }


def lab_loops() -> list[str]:
    """Loop devices of lab hosts (a jail's size-limited layer): backed by a file of a host that is
    not one of BEFORE's, or by a deleted file on the hosts' filesystem (a destroyed host's)."""
    hosts_dev = os.stat(labhost.HOSTS_ROOT).st_dev if labhost.HOSTS_ROOT.exists() else None
    found = []
    for loop in labhost.loop_devices():
        rootfs = [p.parent / "rootfs" for p in labhost.HOSTS_ROOT.glob("*/state.json") if ours(p.parent.name)]
        major, minor = (loop.get("back-maj:min") or "").strip().partition(":")[::2]
        deleted = ((loop.get("back-file") or "").endswith(" (deleted)") and major.isdigit() and minor.isdigit()
                   and os.makedev(int(major), int(minor)) == hosts_dev)
        if deleted or any(labhost.loop_host_path(loop, path) for path in rootfs):
            found.append(loop["name"])
    return sorted(found)


@pytest.fixture(scope="module")
def clean_machine():
    state = machine_state()
    yield state
    lab("destroy", NAME)


def test_the_scenarios_left_no_lab_host_behind(clean_machine):
    assert clean_machine == {"hosts": [], "links": [], "nspawn": [], "mounts": [], "forward": [], "loops": []}


def test_destroy_on_nothing_is_safe(clean_machine):
    for _round in range(2):
        result = lab("destroy", NAME)
        assert result.returncode == 0, result.stderr
    assert machine_state() == clean_machine


def test_create_twice_keeps_the_running_host_and_destroy_removes_everything(clean_machine):
    first = lab("create", NAME)
    assert first.returncode == 0, first.stderr
    host = json.loads(first.stdout)
    answer = subprocess.run(["ssh", "-i", host["identity_file"], "-o", "StrictHostKeyChecking=no",
                             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                             f"root@{host['address']}", "systemctl is-system-running"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert answer.stdout.strip() in ("running", "degraded"), answer
    second = lab("create", NAME)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["supervisor_pid"] == host["supervisor_pid"], "create booted a second host"
    assert "already runs" in second.stderr
    # A loop device attached inside the host (a jail's size-limited layer, issue 14), left
    # mounted: counted while the host runs, detached by destroy.
    state = labhost.load_state(NAME)
    mounted = labhost.nsenter(state, ["sh", "-c", "truncate -s 16M /root/lab-loop.img && mkfs.ext4 -q /root/lab-loop.img"
                                      " && mkdir -p /mnt/lab-loop && mount -o loop /root/lab-loop.img /mnt/lab-loop"],
                              check=False)
    assert mounted.returncode == 0, mounted.stderr
    assert machine_state()["loops"] == labhost.host_loops(state) != []
    destroyed = lab("destroy", NAME)
    assert destroyed.returncode == 0, destroyed.stderr
    assert machine_state() == clean_machine
    assert not (labhost.HOSTS_ROOT / NAME).exists()


def test_each_release_has_its_own_image_and_pruning_keeps_the_other_release(tmp_path, monkeypatch):
    """Two Debian releases side by side (issue 15): a release's new image replaces only the
    outdated images of the same release; an unknown release is refused."""
    assert labhost.image_key("trixie").startswith("trixie-") and labhost.image_key("bookworm").startswith("bookworm-")
    monkeypatch.setattr(labhost, "IMAGE_ROOT", tmp_path)
    for name in ("bookworm-old", "bookworm-new", "trixie-current"):
        (tmp_path / name).mkdir()
    labhost.prune_old_images(keep=tmp_path / "bookworm-new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bookworm-new", "trixie-current"]
    with pytest.raises(labhost.LabError, match="not one of bookworm, trixie"):
        labhost.check_release("sid")


def test_containers_and_links_the_harness_did_not_make_are_not_counted(clean_machine):
    """A CI machine may run containers of its own (issue 17): a systemd-nspawn process with
    another directory and a ve- link outside the lab bridge are not the scenarios' leftovers
    (the check before counted every systemd-nspawn process and every ve- link)."""
    other = subprocess.Popen(["bash", "-c", 'exec -a "systemd-nspawn --directory=/srv/other-container" sleep 60'])
    subprocess.run(["ip", "link", "add", "ve-jhother", "type", "veth", "peer", "name", "ve-jhother-p"], check=True)
    try:
        time.sleep(0.5)
        procs = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "systemd-nspawn --directory=/srv/other-container" in procs
        assert machine_state() == clean_machine
    finally:
        other.kill()
        subprocess.run(["ip", "link", "del", "ve-jhother"], check=False)
