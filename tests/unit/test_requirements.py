# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the collection declares for ansible-builder matches what plugins/ uses.

- requirements.txt: every third-party package plugins/ imports (parsed with ast), and nothing
  else but ansible-core.
- bindep.txt: the Debian packages of the programs the modules run on the managed host (found in
  the code of plugins/modules and plugins/module_utils: argv lists, get_bin_path() and absolute
  paths), and nothing else. Every program found must be classified below, so a new one fails
  this test until it is.
- meta/execution-environment.yml names both files.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"

# Import name -> distribution name on PyPI, where they differ.
DISTRIBUTION = {}
# Not requirements of the collection: Ansible itself and the collection's own code.
PROVIDED = {"ansible", "ansible_collections"}

# Programs run on the managed host -> the Debian package that has them.
HOST_PROGRAMS = {
    "firejail": "firejail",
    "flock": "util-linux",
    "setpriv": "util-linux",  # clears the inheritable capability set before firejail starts
    "sh": "dash",
    "ip": "iproute2",
    "systemctl": "systemd",
    "journalctl": "systemd",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "useradd": "passwd",
    "usermod": "passwd",
    "userdel": "passwd",
    "groupadd": "passwd",
    "groupdel": "passwd",
    "nologin": "login",  # the host login shell of the app users' accounts
    "mkfs.ext4": "e2fsprogs",  # the image of a jail's size-limited layer (jail_root size)
}
# Programs run inside a jail root, from the jail's own packages (debootstrap, the service roles).
IN_JAIL = {"apt-get", "find", "apache2ctl", "bash"}
# Strings that look like a program as the first item of a list but are not.
NOT_PROGRAMS = {"present", "started", "unix"}
# The documentation strings are not code.
DOC_NAMES = {"DOCUMENTATION", "EXAMPLES", "RETURN"}
PROGRAM_PATH = re.compile(r"(?:^|[\s'\"=])/(?:usr/)?s?bin/([A-Za-z0-9_.+-]+)")
NAME = re.compile(r"[a-z][a-z0-9_.+-]*")


def python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (PLUGINS / d).rglob("*.py"))


def code_nodes(tree: ast.Module):
    """Every node of TREE but the module-level DOCUMENTATION/EXAMPLES/RETURN strings."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in DOC_NAMES
                                                for t in node.targets):
            continue
        yield from ast.walk(node)


def third_party_imports() -> set[str]:
    found = set()
    for path in python_files("."):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in PROVIDED and top != "__future__":
                    found.add(DISTRIBUTION.get(top, top))
    return found


def programs() -> set[str]:
    found = set()
    for path in python_files("modules", "module_utils"):
        for node in code_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.List) and len(node.elts) > 1:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    name = first.value.rsplit("/", 1)[-1]
                    if NAME.fullmatch(name) and (first.value.startswith("/") or "/" not in first.value):
                        found.add(name)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_bin_path":
                if node.args and isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(PROGRAM_PATH.findall(node.value))
    return found - NOT_PROGRAMS


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower())
    return names


def bindep_packages(profile: str) -> set[str]:
    packages = set()
    for line in (ROOT / "bindep.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"(\S+)(?:\s+\[([^\]]*)\])?", line)
        assert match, f"bindep.txt: cannot read {line!r}"
        selectors = (match.group(2) or "").split()
        assert profile in selectors, f"bindep.txt: {match.group(1)} has no profile {profile}"
        packages.add(match.group(1))
    return packages


def test_requirements_txt_is_what_the_plugins_import():
    declared = requirement_names(ROOT / "requirements.txt") - {"ansible-core"}
    assert declared == third_party_imports()


def test_every_program_the_modules_run_is_classified():
    found = programs()
    unclassified = found - set(HOST_PROGRAMS) - IN_JAIL
    assert not unclassified, f"add these programs to HOST_PROGRAMS (and bindep.txt) or IN_JAIL: {unclassified}"
    stale = (set(HOST_PROGRAMS) | IN_JAIL) - found
    assert not stale, f"no longer run by the modules, remove them here (and from bindep.txt): {stale}"


def test_bindep_lists_the_packages_of_the_host_programs():
    assert bindep_packages("target") == {HOST_PROGRAMS[p] for p in programs() if p in HOST_PROGRAMS}


def test_execution_environment_names_the_requirement_files():
    ee = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert ee["version"] == 1
    assert ee["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for name in ee["dependencies"].values():
        assert (ROOT / name).is_file()
