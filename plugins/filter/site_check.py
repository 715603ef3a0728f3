# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""jailhost.jails.site_check: the checks of a whole jail host that no single role can make."""

from __future__ import annotations

import ipaddress

DOCUMENTATION = r"""
name: site_check
short_description: Problems of a jail host's variables across roles
version_added: 0.1.0
description:
  - Each role validates its own variables. This filter checks what only the whole host shows,
    before any role changes anything (C(playbooks/site.yml) runs it first) - every jail address
    distinct and inside the bridge subnet, Apache and PostgreSQL in distinct jails that the rootfs
    role creates, published ports and database clients pointing at jails of the host, the
    application's database settings matching PostgreSQL's, no C(..) in paths, and a bridge subnet
    that does not overlap a network the host already has.
  - Returns the list of problems, each naming the variable at fault; empty when there is none.
positional: _input, host_networks
options:
  _input:
    description: The variables of the host (C(bridge_*), C(rootfs_*), C(postgresql_*), C(apache_*)).
    type: dict
    required: true
  host_networks:
    description:
      - The host's IPv4 addresses, as the lines of C(ip -4 -o addr show) or as
        C(interface address/prefix) strings; those on the jail bridge itself are ignored.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Fail on problems across roles
  ansible.builtin.assert:
    that: site_problems | length == 0
    fail_msg: "{{ site_problems | join('; ') }}"
  vars:
    site_problems: "{{ vars | jailhost.jails.site_check(['eth0 203.0.113.7/24']) }}"
"""

RETURN = r"""
_value:
  description: Messages, each naming the variable at fault.
  type: list
  elements: str
"""

PATH_VARS = ("rootfs_base_dir", "rootfs_jails_dir", "apache_jails_dir", "apache_log_dir", "apache_app_root",
             "apache_app_db_config", "postgresql_jails_dir", "postgresql_log_directory", "bridge_firewall_dir")


def _address(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


def site_check(hv: dict, host_networks=None) -> list:
    problems = []
    hv = {k: v for k, v in (hv or {}).items() if v is not None}  # None: not set
    bridge = hv.get("bridge_name", "br0")
    try:
        iface = ipaddress.IPv4Interface(str(hv.get("bridge_address", "10.42.0.1/24")))
        subnet, gateway = iface.network, iface.ip
    except ValueError:
        return [f"bridge_address {hv.get('bridge_address')!r} is not an IPv4 address with a prefix"]

    # Jail addresses: distinct, in the bridge subnet, not the host's own.
    jails = {"apache_ip": hv.get("apache_ip"), "postgresql_address": hv.get("postgresql_address")}
    seen = {}
    for var, value in jails.items():
        if value is None:
            continue
        addr = _address(value)
        if addr is None:
            problems.append(f"{var} {value!r} is not an IPv4 address")
            continue
        if addr not in subnet:
            problems.append(f"{var} {addr} is outside the bridge subnet {subnet} (bridge_address)")
        if addr == gateway:
            problems.append(f"{var} {addr} is the host's own address on the bridge (bridge_address)")
        if addr in seen:
            problems.append(f"{seen[addr]} and {var} are both {addr}: every jail needs its own address")
        seen.setdefault(addr, var)
    jail_addresses = set(seen)

    # Jail names: Apache and PostgreSQL in their own jails, each created by the rootfs role.
    names = {"apache_jail": hv.get("apache_jail"), "postgresql_jail": hv.get("postgresql_jail")}
    if names["apache_jail"] is not None and names["apache_jail"] == names["postgresql_jail"]:
        problems.append(f"apache_jail and postgresql_jail are both {names['apache_jail']!r}: "
                        "Apache and PostgreSQL need their own jails")
    if "rootfs_jails" in hv:
        present = [j.get("name") for j in hv["rootfs_jails"] or [] if isinstance(j, dict)
                   and j.get("state", "present") == "present"]
        for var, name in names.items():
            if name is not None and name not in present:
                problems.append(f"{var} {name!r} is not in rootfs_jails (present: {', '.join(map(str, present))})")

    # Published ports must lead to a jail of this host.
    for i, port in enumerate(hv.get("bridge_published_ports") or []):
        addr = _address(port.get("jail_ip")) if isinstance(port, dict) else None
        if jail_addresses and addr is not None and addr not in jail_addresses:
            problems.append(f"bridge_published_ports[{i}].jail_ip {addr} is no jail of this host "
                            f"({', '.join(f'{v} {k}' for k, v in sorted((str(a), n) for a, n in seen.items()))})")

    # Database clients need a declared flow to PostgreSQL; the application must use that server.
    pg_addr = _address(hv.get("postgresql_address"))
    pg_port = hv.get("postgresql_port", 5432)
    flows = {(_address(f.get("source_ip")), _address(f.get("dest_ip")), int(f.get("port", 0) or 0))
             for f in hv.get("bridge_jail_flows") or [] if isinstance(f, dict)}
    for i, client in enumerate(hv.get("postgresql_clients") or []):
        addr = _address(client.get("address")) if isinstance(client, dict) else None
        if addr is not None and pg_addr is not None and (addr, pg_addr, int(pg_port)) not in flows:
            problems.append(f"postgresql_clients[{i}].address {addr} cannot reach postgresql_address "
                            f"{pg_addr}:{pg_port}: no such entry in bridge_jail_flows")
    app_db = hv.get("apache_app_db")
    if isinstance(app_db, dict) and pg_addr is not None and "apache_ip" in hv:
        if _address(app_db.get("host")) != pg_addr:
            problems.append(f"apache_app_db.host {app_db.get('host')!r} is not postgresql_address {pg_addr}")
        elif int(app_db.get("port", 5432)) != int(pg_port):
            problems.append(f"apache_app_db.port {app_db.get('port')} is not postgresql_port {pg_port}")

    # Paths: absolute, no '..'.
    for var in PATH_VARS:
        value = hv.get(var)
        if isinstance(value, str) and (not value.startswith("/") or ".." in value.split("/")):
            problems.append(f"{var} {value!r} must be an absolute path without '..'")
    for i, vhost in enumerate(hv.get("apache_vhosts") or []):
        root = vhost.get("document_root") if isinstance(vhost, dict) else None
        if isinstance(root, str) and ".." in root.split("/"):
            problems.append(f"apache_vhosts[{i}].document_root {root!r} must not contain '..'")

    # The bridge subnet must be new to the host: an overlap would route the host's own traffic
    # (SSH included) into the jails.
    for line in host_networks or []:
        parts = str(line).split()
        if len(parts) >= 4 and parts[2] == "inet":  # "2: eth0    inet 203.0.113.7/24 brd ..."
            parts = [parts[1], parts[3]]
        if len(parts) != 2 or parts[0] == bridge:
            continue
        try:
            other = ipaddress.IPv4Interface(parts[1]).network
        except ValueError:
            continue
        if other.prefixlen and subnet.overlaps(other):
            problems.append(f"bridge_address {iface} overlaps {parts[1]} of interface {parts[0]} on the host: "
                            "choose a subnet the host does not use")
    return problems


class FilterModule:
    """jailhost.jails checks across roles."""

    def filters(self):
        return {"site_check": site_check}
