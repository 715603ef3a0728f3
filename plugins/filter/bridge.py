# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the bridge role: validate the jail network and turn it into netfilter chains.

All address maths and input checks happen here, on the controller, while the role computes its
facts: bad input fails before any task touches the host.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

try:
    import netaddr
except ImportError:  # pragma: no cover - reported at use, with the fix
    netaddr = None

DOCUMENTATION = r"""
name: bridge_firewall
short_description: Validate the bridge role's variables and compute its netfilter chains
version_added: 0.1.0
description:
  - Takes a dictionary of the bridge role's settings (the C(bridge_*) variables without prefix)
    and returns the data the role needs, chiefly the C(chains) and C(hooks) arguments of
    M(jailhost.jails.iptables_chains).
  - Fails with a message naming the variable when the input is invalid, for example an address
    outside the bridge subnet, an invalid CIDR, a port out of range, a duplicate published port
    or an invalid bridge name.
  - Requires the C(netaddr) Python library on the controller.
positional: _input
options:
  _input:
    description: The bridge settings (name, address, published_ports, egress_policy, ...).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Compute the jail firewall
  ansible.builtin.set_fact:
    bridge__plan: "{{ {'name': 'br0', 'address': '10.42.0.1/24'} | jailhost.jails.bridge_firewall }}"
"""

RETURN = r"""
_value:
  description: C(network), C(host_ip), C(prefixlen), C(chains) and C(hooks).
  type: dict
"""

# Linux interface names: at most 15 bytes (IFNAMSIZ - 1); we also refuse characters that would
# need quoting in unit and interface files.
BRIDGE_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,14}$")
CHAIN_PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
PROTOCOLS = ("tcp", "udp")
EGRESS_POLICIES = ("allow", "deny")


class BridgeInputError(AnsibleFilterError):
    """Invalid bridge role input; the message names the variable."""


def _fail(var: str, msg: str):
    raise BridgeInputError(f"bridge role: {var}: {msg}")


def _port(value, var: str) -> int:
    if isinstance(value, bool):
        _fail(var, f"{value!r} is not a port number")
    try:
        port = int(value)
    except (TypeError, ValueError):
        _fail(var, f"{value!r} is not a port number")
    if str(port) != str(value).strip():
        _fail(var, f"{value!r} is not a port number")
    if not 1 <= port <= 65535:
        _fail(var, f"{port} is out of range (1-65535)")
    return port


def _proto(value, var: str) -> str:
    proto = str(value if value is not None else "tcp").lower()
    if proto not in PROTOCOLS:
        _fail(var, f"{value!r} is not one of {', '.join(PROTOCOLS)}")
    return proto


def _ip(value, var: str):
    try:
        ip = netaddr.IPAddress(str(value), version=4, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(var, f"{value!r} is not an IPv4 address")
    return ip


def _cidr(value, var: str):
    text = str(value)
    if "/" not in text:
        text += "/32"
    try:
        net = netaddr.IPNetwork(text, version=4)
        _ip(text.split("/", maxsplit=1)[0], var)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(var, f"{value!r} is not an IPv4 address or CIDR")
    return net.cidr


def _jail_ip(value, var: str, network, host_ip):
    ip = _ip(value, var)
    if ip not in network:
        _fail(var, f"{ip} is not in the bridge subnet {network}")
    if ip in (network.network, network.broadcast):
        _fail(var, f"{ip} is the network or broadcast address of {network}")
    if ip == host_ip:
        _fail(var, f"{ip} is the host's own address on the bridge")
    return ip


def _entries(value, var: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(var, "must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            _fail(f"{var}[{index}]", "must be a dictionary")
    return value


def _check_keys(item: dict, allowed: set, var: str) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        _fail(var, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def bridge_firewall(cfg: dict) -> dict:
    """Validate the bridge settings and return the network facts and netfilter chains."""
    if netaddr is None:
        raise AnsibleFilterError("the bridge role needs the Python library 'netaddr' on the controller "
                                 "(pip install netaddr)")
    if not isinstance(cfg, dict):
        raise AnsibleFilterError("bridge_firewall expects a dictionary")

    name = str(cfg.get("name", ""))
    if not BRIDGE_NAME_RE.match(name):
        _fail("bridge_name", f"{name!r} is not a valid interface name (letters, digits, '-', '_', "
                             "starting with a letter, at most 15 characters)")

    address = str(cfg.get("address", ""))
    if "/" not in address:
        _fail("bridge_address", f"{address!r} must be the host address with a prefix, e.g. 10.42.0.1/24")
    try:
        iface = netaddr.IPNetwork(address, version=4)
        host_ip = _ip(address.split("/", maxsplit=1)[0], "bridge_address")
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail("bridge_address", f"{address!r} is not a valid IPv4 CIDR")
    if not 8 <= iface.prefixlen <= 30:
        _fail("bridge_address", f"prefix /{iface.prefixlen} must be between /8 and /30")
    network = iface.cidr
    if host_ip in (network.network, network.broadcast):
        _fail("bridge_address", f"{host_ip} is the network or broadcast address of {network}")

    prefix = str(cfg.get("chain_prefix", "JAILHOST"))
    if not CHAIN_PREFIX_RE.match(prefix):
        _fail("bridge_chain_prefix", f"{prefix!r} must be upper case letters, digits and '_' "
                                     "(at most 16 characters)")

    egress_policy = str(cfg.get("egress_policy", "deny"))
    if egress_policy not in EGRESS_POLICIES:
        _fail("bridge_egress_policy", f"{egress_policy!r} is not one of {', '.join(EGRESS_POLICIES)}")

    uplink = cfg.get("uplink_interface") or ""
    if uplink and not BRIDGE_NAME_RE.match(str(uplink)):
        _fail("bridge_uplink_interface", f"{uplink!r} is not a valid interface name")
    if uplink == name:
        _fail("bridge_uplink_interface", "must not be the bridge itself")

    br = name
    fwd, inp, out, dnat, snat = (f"{prefix}-FWD", f"{prefix}-IN", f"{prefix}-OUT",
                                 f"{prefix}-DNAT", f"{prefix}-SNAT")
    fwd_rules = [
        # Replies to connections the rules below accepted, in both directions.
        f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-i {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    dnat_rules: list[str] = []
    out_rules = [f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]

    seen_ports: dict[tuple, int] = {}
    published = []
    for index, item in enumerate(_entries(cfg.get("published_ports"), "bridge_published_ports")):
        var = f"bridge_published_ports[{index}]"
        _check_keys(item, {"proto", "public_port", "jail_ip", "jail_port", "public_address"}, var)
        for key in ("public_port", "jail_ip"):
            if item.get(key) in (None, ""):
                _fail(var, f"'{key}' is required")
        proto = _proto(item.get("proto"), f"{var}.proto")
        public_port = _port(item["public_port"], f"{var}.public_port")
        jail_port = _port(item.get("jail_port", public_port), f"{var}.jail_port")
        jail_ip = _jail_ip(item["jail_ip"], f"{var}.jail_ip", network, host_ip)
        public_address = item.get("public_address") or None
        if public_address is not None:
            public_address = _ip(public_address, f"{var}.public_address")
            if public_address in network:
                _fail(f"{var}.public_address", f"{public_address} is inside the bridge subnet {network}")
        # One public port can be published once per public address; an entry without address
        # covers every local address, so it clashes with any entry for the same port.
        for (other_proto, other_port, other_addr), other_index in seen_ports.items():
            if other_proto == proto and other_port == public_port and \
                    (other_addr is None or public_address is None or other_addr == public_address):
                _fail(f"{var}.public_port", f"{proto}/{public_port} is already published by "
                                            f"bridge_published_ports[{other_index}]")
        seen_ports[(proto, public_port, public_address)] = index
        dest = f"-d {public_address}/32 " if public_address else ""
        dnat_rules.append(f"{dest}-p {proto} -m {proto} --dport {public_port} "
                          f"-j DNAT --to-destination {jail_ip}:{jail_port}")
        # Only connections that really came through the DNAT above: a client that routes to a
        # jail address directly is not let through.
        fwd_rules.append(f"-d {jail_ip}/32 -o {br} -p {proto} -m {proto} --dport {jail_port} "
                         f"-m conntrack --ctstate DNAT -j ACCEPT")
        published.append({"proto": proto, "public_port": public_port, "jail_ip": str(jail_ip),
                          "jail_port": jail_port,
                          "public_address": str(public_address) if public_address else None})

    admin = []
    for index, item in enumerate(_entries(cfg.get("admin_access"), "bridge_admin_access")):
        var = f"bridge_admin_access[{index}]"
        _check_keys(item, {"proto", "port", "jail_ip", "source"}, var)
        for key in ("port", "jail_ip"):
            if item.get(key) in (None, ""):
                _fail(var, f"'{key}' is required")
        proto = _proto(item.get("proto"), f"{var}.proto")
        port = _port(item["port"], f"{var}.port")
        jail_ip = _jail_ip(item["jail_ip"], f"{var}.jail_ip", network, host_ip)
        match = f"-d {jail_ip}/32 -o {br} -p {proto} -m {proto} --dport {port} -j ACCEPT"
        out_rules.append(match)
        source = item.get("source") or None
        if source:
            source = _cidr(source, f"{var}.source")
            fwd_rules.append(f"-s {source} {match}")
        admin.append({"proto": proto, "port": port, "jail_ip": str(jail_ip),
                      "source": str(source) if source else None})

    for index, item in enumerate(_entries(cfg.get("jail_flows"), "bridge_jail_flows")):
        var = f"bridge_jail_flows[{index}]"
        _check_keys(item, {"proto", "port", "source_ip", "dest_ip"}, var)
        for key in ("port", "source_ip", "dest_ip"):
            if item.get(key) in (None, ""):
                _fail(var, f"'{key}' is required")
        proto = _proto(item.get("proto"), f"{var}.proto")
        port = _port(item["port"], f"{var}.port")
        src = _jail_ip(item["source_ip"], f"{var}.source_ip", network, host_ip)
        dst = _jail_ip(item["dest_ip"], f"{var}.dest_ip", network, host_ip)
        if src == dst:
            _fail(var, "source_ip and dest_ip are the same jail")
        fwd_rules.append(f"-s {src}/32 -d {dst}/32 -i {br} -o {br} -p {proto} -m {proto} "
                         f"--dport {port} -j ACCEPT")

    out_if = f"-o {uplink}" if uplink else f"! -o {br}"
    if egress_policy == "allow":
        fwd_rules.append(f"-i {br} {out_if} -j ACCEPT")
    else:
        for index, item in enumerate(_entries(cfg.get("egress_allow"), "bridge_egress_allow")):
            var = f"bridge_egress_allow[{index}]"
            _check_keys(item, {"proto", "port", "dest"}, var)
            if item.get("dest") in (None, ""):
                _fail(var, "'dest' is required")
            dest = _cidr(item["dest"], f"{var}.dest")
            if dest in network or network in dest:
                _fail(f"{var}.dest", f"{dest} overlaps the bridge subnet {network}: use bridge_jail_flows")
            rule = f"-d {dest} -i {br} {out_if}"
            if item.get("port") not in (None, ""):
                proto = _proto(item.get("proto"), f"{var}.proto")
                rule += f" -p {proto} -m {proto} --dport {_port(item['port'], f'{var}.port')}"
            elif item.get("proto"):
                rule += f" -p {_proto(item['proto'], f'{var}.proto')}"
            fwd_rules.append(rule + " -j ACCEPT")
    # Everything else that enters or leaves the bridge is dropped here, without touching the
    # FORWARD policy or anyone else's rules; traffic not involving the bridge returns to FORWARD.
    fwd_rules += [f"-i {br} -j DROP", f"-o {br} -j DROP"]

    in_rules = [f"-i {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    for index, item in enumerate(_entries(cfg.get("host_services"), "bridge_host_services")):
        var = f"bridge_host_services[{index}]"
        _check_keys(item, {"proto", "port"}, var)
        if item.get("port") in (None, ""):
            _fail(var, "'port' is required")
        proto = _proto(item.get("proto"), f"{var}.proto")
        port = _port(item["port"], f"{var}.port")
        in_rules.append(f"-d {host_ip}/32 -i {br} -p {proto} -m {proto} --dport {port} -j ACCEPT")
    # Jails reach no service of the host (its SSH, its databases...) unless listed above.
    in_rules.append(f"-i {br} -j DROP")

    # The host talks to jails only through published ports and the declared admin access.
    out_rules += [f"-o {br} -m conntrack --ctstate DNAT -j ACCEPT", f"-o {br} -j REJECT"]

    snat_rules = [f"-s {network} {out_if} -j MASQUERADE"] if cfg.get("masquerade", True) else []

    chains = [
        {"table": "filter", "name": fwd, "rules": fwd_rules},
        {"table": "filter", "name": inp, "rules": in_rules},
        {"table": "filter", "name": out, "rules": out_rules},
        {"table": "nat", "name": dnat, "rules": dnat_rules},
        {"table": "nat", "name": snat, "rules": snat_rules},
    ]
    hooks = [
        {"table": "filter", "chain": "FORWARD", "target": fwd},
        {"table": "filter", "chain": "INPUT", "target": inp},
        {"table": "filter", "chain": "OUTPUT", "target": out},
        {"table": "nat", "chain": "PREROUTING", "target": dnat, "match": "-m addrtype --dst-type LOCAL"},
        # Locally generated connections to a public address reach the jail too; loopback cannot
        # be DNATed out of the host.
        {"table": "nat", "chain": "OUTPUT", "target": dnat,
         "match": "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL"},
        {"table": "nat", "chain": "POSTROUTING", "target": snat},
    ]
    return {
        "name": name,
        "network": str(network),
        "host_ip": str(host_ip),
        "prefixlen": network.prefixlen,
        "published_ports": published,
        "admin_access": admin,
        "chains": chains,
        "hooks": hooks,
    }


class FilterModule:
    """jailhost.jails bridge filters."""

    def filters(self):
        return {"bridge_firewall": bridge_firewall}
