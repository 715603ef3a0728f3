"""Shared by the bench/ scripts: one lab host (molecule/shared/labhost.py) and ansible-playbook
runs against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABHOST = [sys.executable, str(ROOT / "molecule/shared/labhost.py")]


class Lab:
    """A booted lab host named NAME in group `jailhosts`; destroyed by close()."""

    def __init__(self, name: str):
        self.name = name
        self.info = json.loads(subprocess.run([*LABHOST, "create", name], check=True,
                                              capture_output=True, text=True).stdout)
        self.tmp = Path(tempfile.mkdtemp(prefix="jailhost-bench-"))
        self.hosts = self.tmp / "hosts"
        self.hosts.write_text(
            f"[jailhosts]\n{name} ansible_host={self.info['address']} ansible_user=root "
            f"ansible_ssh_private_key_file={self.info['identity_file']} ansible_python_interpreter=/usr/bin/python3 "
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n")

    @property
    def address(self) -> str:
        return self.info["address"]

    def ssh(self, command: str) -> str:
        return subprocess.run(
            ["ssh", "-i", self.info["identity_file"], "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{self.address}", command],
            check=True, capture_output=True, text=True).stdout

    def playbook(self, playbook, variables: dict | None = None, inventories: tuple = ()) -> tuple[float, str]:
        """Run a playbook (a path, or a list of plays) and return (seconds, recap line)."""
        if not isinstance(playbook, (str, Path)):
            path = self.tmp / "play.json"
            path.write_text(json.dumps(playbook))
            playbook = path
        (self.tmp / "vars.json").write_text(json.dumps(variables or {}))
        # The repository's ansible.cfg (SSH pipelining, no fact gathering), as a user running
        # `ansible-playbook playbooks/site.yml` from the repository gets it: bench/run.py runs from
        # bench/, where ansible-playbook would not find it.
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache/collections"),
                   ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1")
        cmd = [str(ROOT / ".venv/bin/ansible-playbook")]
        for inventory in (*inventories, self.hosts):
            cmd += ["-i", str(inventory)]
        cmd += [str(playbook), "-e", f"@{self.tmp / 'vars.json'}"]
        started = time.monotonic()
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        recap = [ln for ln in proc.stdout.splitlines() if f"{self.name} " in ln and "ok=" in ln]
        return time.monotonic() - started, " ".join(recap[-1].split()) if recap else ""

    def close(self) -> None:
        subprocess.run([*LABHOST, "destroy", self.name], check=False)


def row(figure: str, values: list[float], unit: str, goal: str, met: bool | None,
        compared_with: str = "-", detail: str = "") -> dict:
    """One figure of the results table: median and min-max of VALUES, the goal and whether the
    median meets it (None: no goal)."""
    import statistics

    return {"figure": figure, "compared_with": compared_with, "goal": goal, "unit": unit,
            "median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "met": met, "detail": detail}


def format_value(r: dict) -> str:
    digits = 3 if r["unit"] == "ratio" else 2
    text = f"{r['median']:.{digits}f} {r['unit']}".replace(" ratio", "")
    if r["n"] > 1:
        text += f" ({r['min']:.{digits}f}-{r['max']:.{digits}f}, n={r['n']})"
    return text


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        met = {True: "met", False: "MISSED", None: ""}[r["met"]]
        print(f"| {r['figure']} | {format_value(r)} | {r['compared_with']} | {r['goal']} {met} | {r['detail']} |")


def converge_site(lab: Lab) -> tuple[float, str]:
    """playbooks/site.yml with the lab inventory (the `make demo` stack): (seconds, recap line)."""
    return lab.playbook(ROOT / "playbooks/site.yml", inventories=(ROOT / "inventory/lab",))


def standalone(name: str, measure, keep: bool) -> int:
    """Run one bench script on its own lab host NAME: measure(lab) -> rows, print them."""
    started = time.monotonic()
    lab = Lab(name)
    try:
        rows = measure(lab)
    finally:
        if not keep:
            lab.close()
    print(f"machine: {os.cpu_count()} cores, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}; "
          f"took {time.monotonic() - started:.0f} s")
    print_rows(rows)
    return 0
