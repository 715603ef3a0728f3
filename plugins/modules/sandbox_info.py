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
  - For each jail it reports the status at a glance, from C(systemctl show) of its unit, since when it
    is in its state, its automatic restarts, memory and tasks against the unit's C(MemoryMax) and
    C(TasksMax), its CPU time, and the ports the P(jailhost.jails.bridge#role) role publishes to its
    address (the DNAT rules of its persisted firewall). A value the host cannot give (no cgroup
    accounting) is null, never estimated.
  - The same code (C(plugins/module_utils/jailstatus.py)) is the host command C(jailhost-status)
    that the P(jailhost.jails.status#role) role installs (a table, JSON, a Prometheus textfile).
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
  firewall_dir:
    description:
      - Where the P(jailhost.jails.bridge#role) role persists the firewall (its C(bridge_firewall_dir));
        the published ports are read from C(rules.v4) there.
    type: path
    default: /etc/jailhost/firewall
    version_added: 0.1.0
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
    since:
      description:
        - Unix time the unit entered its current active state (C(ActiveEnterTimestamp) when active,
          C(InactiveEnterTimestamp) when inactive or failed); null when it never did.
      type: int
    restarts:
      description:
        - Automatic restarts of the unit (systemd C(NRestarts); a manual start or restart resets it).
      type: int
    memory:
      description:
        - C(current) (bytes, C(MemoryCurrent); null without memory accounting), C(max) (C(MemoryMax);
          null when unlimited) and C(percent) (null unless both are known).
      type: dict
      sample: {current: null, max: 134217728, percent: null}
    tasks:
      description: C(current) (C(TasksCurrent)), C(max) (C(TasksMax)) and C(percent), as for RV(jails[].memory).
      type: dict
      sample: {current: 3, max: 32, percent: 9.4}
    cpu_seconds:
      description: CPU time of the unit (C(CPUUsageNSec)); null without CPU accounting.
      type: float
    published_ports:
      description:
        - The ports published to the jail's address, from the DNAT rules of C(rules.v4) in O(firewall_dir),
          each with C(proto), C(public_address) (null for every local address), C(public_port), C(jail_port).
      type: list
      elements: dict
      sample: [{proto: tcp, public_address: null, public_port: 80, jail_port: 8080}]
    confinement:
      description:
        - Summary of RV(jails[].processes) over all processes of the jail, C(confined), C(processes)
          (count), C(seccomp), C(no_new_privs), C(own_namespaces) (each true when it holds for every
          process, null when not running), C(cap_eff) and C(cap_bnd) (names of the capabilities in the
          union of the effective and bounding sets) and C(problems) (why it is not confined).
      type: dict
    unit:
      description:
        - systemd unit and its state, with the values above (C(since), C(active_since), C(memory),
          C(tasks), C(cpu_seconds)).
      type: dict
      sample: {name: jailhost-web.service, active: active, sub: running, enabled: enabled, restarts: 0,
               since: 1796402067, active_since: 1796402067, main_pid: 1234}
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

from ansible_collections.jailhost.jails.plugins.module_utils import jailstatus


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "list", "elements": "str", "default": []},
            "firewall_dir": {"type": "path", "default": jailstatus.FIREWALL_DIR},
        },
        supports_check_mode=True,
    )
    env = {"LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    jails, sandboxes = jailstatus.collect(lambda argv: module.run_command(argv, environ_update=env),
                                          module.params["name"], firewall_dir=module.params["firewall_dir"])
    module.exit_json(changed=False, jails=jails, sandboxes=sandboxes)


if __name__ == "__main__":
    main()
