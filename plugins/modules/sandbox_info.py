#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sandbox_info
short_description: List jails and their measured confinement
version_added: 0.1.0
description:
  - Lists the jails declared with M(jailhost.jails.sandbox) (all, or by name) and every running
    firejail sandbox, as structured data read from the firejail state files in /run/firejail,
    from /proc and from systemd, not by parsing C(firejail --list).
  - For each process of a running jail it reports the confinement measured from /proc, as the
    kernel enforces it, whether its pid, net, mnt and ipc namespaces differ from those of PID 1, its
    C(Seccomp) mode, C(NoNewPrivs), and its effective and bounding capabilities.
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  # The first fragment's keys win: info_module's support levels over the standard ones.
  - jailhost.jails.attributes.info_module
  - jailhost.jails.attributes
options:
  name:
    description: Only these jails (default all).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: List the jails
  jailhost.jails.sandbox_info:
  register: jails

- name: Every jail is running and confined
  ansible.builtin.assert:
    that:
      - jails.jails | selectattr('state', 'ne', 'running') | list | length == 0
      - jails.jails | selectattr('confined', 'false') | list | length == 0

- name: Addresses of the running jails (jmespath)
  ansible.builtin.debug:
    msg: "{{ jails.jails | jailhost.jails.json_query('[?state==`running`].ip') }}"
"""

RETURN = r"""
jails:
  description: One entry per jail declared on the host (or asked for by name).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Jail name.
      type: str
    state:
      description: C(running), C(stopped), C(failed) or C(missing) (declared but no unit).
      type: str
    unit:
      description: systemd unit and its state.
      type: dict
      sample: {name: jailhost-web.service, active: active, sub: running, enabled: enabled, restarts: 0}
    ip:
      description: Declared address.
      type: str
    bridge:
      description: Declared bridge.
      type: str
    root:
      description: Root filesystem.
      type: str
    pid:
      description: firejail parent PID (null when not running).
      type: int
    child_pid:
      description: Sandbox child PID (PID 1 inside the jail).
      type: int
    daemon_pids:
      description: PIDs of the daemon (children of the sandbox child).
      type: list
      elements: int
    network:
      description: Bridge and interface name of each network of the sandbox.
      type: list
      elements: dict
    processes:
      description:
        - Every process of the jail with C(pid), C(comm), C(uid), C(seccomp) (2 = filter),
          C(no_new_privs), C(cap_eff), C(cap_bnd) (hex) and C(namespaces_differ) (pid, net, mnt,
          ipc compared with PID 1).
      type: list
      elements: dict
    confined:
      description:
        - True when every process has its own namespaces, seccomp mode 2, no_new_privs, and no
          effective or permitted capability outside its bounding set.
      type: bool
sandboxes:
  description: Every running firejail sandbox on the host, including ones not managed by this collection.
  returned: always
  type: list
  elements: dict
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.jailhost.jails.plugins.module_utils import firejail as fj


def unit_state(module: AnsibleModule, unit: str) -> dict:
    rc, out, dummy = module.run_command(["systemctl", "show", unit, "--property",
                                         "LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts"])
    show = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    return {
        "name": unit,
        "loaded": show.get("LoadState"),
        "active": show.get("ActiveState"),
        "sub": show.get("SubState"),
        "enabled": show.get("UnitFileState"),
        "main_pid": int(show.get("MainPID") or 0) or None,
        "restarts": int(show.get("NRestarts") or 0),
    }


def main():
    module = AnsibleModule(
        argument_spec={"name": {"type": "list", "elements": "str", "default": []}},
        supports_check_mode=True,
    )
    sandboxes = fj.parse_state()
    by_pid = {s["pid"]: s for s in sandboxes}
    declared = fj.declared_jails()
    names = module.params["name"] or sorted(declared)
    jails = []
    for name in names:
        meta = declared.get(name, {"name": name})
        unit = unit_state(module, fj.unit_name({"name": name}))
        entry = by_pid.get(unit["main_pid"]) if unit["main_pid"] else None
        if unit["loaded"] != "loaded":
            state = "missing"
        elif unit["active"] == "active" and entry:
            state = "running"
        elif unit["active"] == "failed":
            state = "failed"
        else:
            state = "stopped"
        jails.append({
            "name": name,
            "state": state,
            "unit": unit,
            "ip": meta.get("ip"),
            "bridge": meta.get("bridge"),
            "root": meta.get("root"),
            "pid": entry["pid"] if entry else None,
            "child_pid": entry["child_pid"] if entry else None,
            "daemon_pids": entry["daemon_pids"] if entry else [],
            "network": entry["network"] if entry else [],
            "processes": entry["processes"] if entry else [],
            "confined": entry["confined"] if entry else False,
        })
    module.exit_json(changed=False, jails=jails, sandboxes=sandboxes)


if __name__ == "__main__":
    main()
