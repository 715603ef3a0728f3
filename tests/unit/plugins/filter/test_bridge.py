"""Unit tests of the bridge role's validation and rule computation (plugins/filter/bridge.py)."""

from __future__ import annotations

import pytest

from ansible_collections.jailhost.jails.plugins.filter.bridge import BridgeInputError, bridge_firewall

BASE = {"name": "br0", "address": "10.42.0.1/24"}


def plan(**overrides):
    return bridge_firewall({**BASE, **overrides})


def rules(result, chain):
    return next(c["rules"] for c in result["chains"] if c["name"] == chain)


def test_minimal_input_gives_network_facts_and_all_chains():
    result = plan()
    assert (result["network"], result["host_ip"], result["prefixlen"]) == ("10.42.0.0/24", "10.42.0.1", 24)
    assert [(c["table"], c["name"]) for c in result["chains"]] == [
        ("filter", "JAILHOST-FWD"), ("filter", "JAILHOST-IN"), ("filter", "JAILHOST-OUT"),
        ("nat", "JAILHOST-DNAT"), ("nat", "JAILHOST-SNAT")]
    assert rules(result, "JAILHOST-FWD")[-2:] == ["-i br0 -j DROP", "-o br0 -j DROP"]
    assert rules(result, "JAILHOST-SNAT") == ["-s 10.42.0.0/24 ! -o br0 -j MASQUERADE"]
    assert rules(result, "JAILHOST-IN")[-1] == "-i br0 -j DROP"


def test_published_port_gives_dnat_and_a_forward_rule_for_dnat_connections_only():
    result = plan(published_ports=[{"public_port": 80, "jail_ip": "10.42.0.10", "jail_port": 8080}])
    assert rules(result, "JAILHOST-DNAT") == ["-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.42.0.10:8080"]
    assert ("-d 10.42.0.10/32 -o br0 -p tcp -m tcp --dport 8080 -m conntrack --ctstate DNAT -j ACCEPT"
            in rules(result, "JAILHOST-FWD"))


def test_public_address_restricts_the_dnat_and_jail_port_defaults_to_public_port():
    result = plan(published_ports=[{"proto": "udp", "public_port": "53", "jail_ip": "10.42.0.10",
                                    "public_address": "203.0.113.7"}])
    assert rules(result, "JAILHOST-DNAT") == [
        "-d 203.0.113.7/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.42.0.10:53"]


def test_same_port_on_two_public_addresses_is_allowed():
    plan(published_ports=[
        {"public_port": 80, "jail_ip": "10.42.0.10", "public_address": "203.0.113.7"},
        {"public_port": 80, "jail_ip": "10.42.0.11", "public_address": "203.0.113.8"}])


def test_egress_deny_allows_only_listed_destinations():
    result = plan(egress_policy="deny", egress_allow=[{"dest": "198.51.100.0/24", "proto": "tcp", "port": 443}])
    fwd = rules(result, "JAILHOST-FWD")
    assert "-d 198.51.100.0/24 -i br0 ! -o br0 -p tcp -m tcp --dport 443 -j ACCEPT" in fwd
    assert not any(r == "-i br0 ! -o br0 -j ACCEPT" for r in fwd)


def test_egress_is_denied_by_default():
    fwd = rules(plan(), "JAILHOST-FWD")
    assert not any("-j ACCEPT" in r and "conntrack" not in r for r in fwd), fwd
    assert fwd[-2:] == ["-i br0 -j DROP", "-o br0 -j DROP"]


def test_uplink_interface_restricts_egress_and_nat():
    result = plan(uplink_interface="eth0", egress_policy="allow")
    assert "-i br0 -o eth0 -j ACCEPT" in rules(result, "JAILHOST-FWD")
    assert rules(result, "JAILHOST-SNAT") == ["-s 10.42.0.0/24 -o eth0 -j MASQUERADE"]


def test_admin_access_opens_the_host_output_and_optionally_a_forward_source():
    result = plan(admin_access=[{"jail_ip": "10.42.0.20", "port": 5432, "source": "192.168.1.0/24"}])
    assert "-d 10.42.0.20/32 -o br0 -p tcp -m tcp --dport 5432 -j ACCEPT" in rules(result, "JAILHOST-OUT")
    assert "-s 192.168.1.0/24 -d 10.42.0.20/32 -o br0 -p tcp -m tcp --dport 5432 -j ACCEPT" in \
        rules(result, "JAILHOST-FWD")


def test_hooks_point_into_our_chains_only():
    hooks = plan()["hooks"]
    assert {(h["table"], h["chain"], h["target"]) for h in hooks} == {
        ("filter", "FORWARD", "JAILHOST-FWD"), ("filter", "INPUT", "JAILHOST-IN"),
        ("filter", "OUTPUT", "JAILHOST-OUT"), ("nat", "PREROUTING", "JAILHOST-DNAT"),
        ("nat", "OUTPUT", "JAILHOST-DNAT"), ("nat", "POSTROUTING", "JAILHOST-SNAT")}


def test_masquerade_can_be_turned_off():
    assert rules(plan(masquerade=False), "JAILHOST-SNAT") == []


@pytest.mark.parametrize("overrides, variable, message", [
    ({"name": "bridge-name-too-long"}, "bridge_name", "not a valid interface name"),
    ({"name": "br/0"}, "bridge_name", "not a valid interface name"),
    ({"name": ""}, "bridge_name", "not a valid interface name"),
    ({"address": "10.42.0.1"}, "bridge_address", "with a prefix"),
    ({"address": "10.42.0.300/24"}, "bridge_address", "not a valid IPv4 CIDR"),
    ({"address": "10.42.0.1/33"}, "bridge_address", "not a valid IPv4 CIDR"),
    ({"address": "10.42.0.0/24"}, "bridge_address", "network or broadcast"),
    ({"address": "10.42.0.1/31"}, "bridge_address", "between /8 and /30"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.43.0.10"}]},
     "bridge_published_ports[0].jail_ip", "not in the bridge subnet 10.42.0.0/24"),
    ({"published_ports": [{"public_port": 70000, "jail_ip": "10.42.0.10"}]},
     "bridge_published_ports[0].public_port", "out of range"),
    ({"published_ports": [{"public_port": 0, "jail_ip": "10.42.0.10"}]},
     "bridge_published_ports[0].public_port", "out of range"),
    ({"published_ports": [{"public_port": "http", "jail_ip": "10.42.0.10"}]},
     "bridge_published_ports[0].public_port", "not a port number"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.10", "jail_port": 8080.5}]},
     "bridge_published_ports[0].jail_port", "not a port number"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.10"},
                          {"public_port": 80, "jail_ip": "10.42.0.11"}]},
     "bridge_published_ports[1].public_port", "already published by bridge_published_ports[0]"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.10", "public_address": "203.0.113.7"},
                          {"public_port": 80, "jail_ip": "10.42.0.11"}]},
     "bridge_published_ports[1].public_port", "already published"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.1"}]},
     "bridge_published_ports[0].jail_ip", "host's own address"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.255"}]},
     "bridge_published_ports[0].jail_ip", "broadcast"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.10", "proto": "sctp"}]},
     "bridge_published_ports[0].proto", "not one of tcp, udp"),
    ({"published_ports": [{"public_port": 80, "jail_ip": "10.42.0.10", "jail_prot": 8080}]},
     "bridge_published_ports[0]", "unknown key(s) jail_prot"),
    ({"published_ports": [{"public_port": 80}]}, "bridge_published_ports[0]", "'jail_ip' is required"),
    ({"published_ports": "80:10.42.0.10"}, "bridge_published_ports", "must be a list"),
    ({"egress_policy": "maybe"}, "bridge_egress_policy", "not one of allow, deny"),
    ({"egress_policy": "deny", "egress_allow": [{"dest": "10.42.0.0/16"}]},
     "bridge_egress_allow[0].dest", "overlaps the bridge subnet"),
    ({"egress_policy": "deny", "egress_allow": [{"dest": "not-a-net"}]},
     "bridge_egress_allow[0].dest", "not an IPv4 address or CIDR"),
    ({"jail_flows": [{"source_ip": "10.42.0.10", "dest_ip": "10.42.0.10", "port": 5432}]},
     "bridge_jail_flows[0]", "same jail"),
    ({"admin_access": [{"jail_ip": "10.42.0.20", "port": 5432, "source": "999.1.1.0/24"}]},
     "bridge_admin_access[0].source", "not an IPv4 address or CIDR"),
    ({"chain_prefix": "jail host"}, "bridge_chain_prefix", "upper case"),
    ({"uplink_interface": "br0"}, "bridge_uplink_interface", "must not be the bridge itself"),
])
def test_bad_input_names_the_variable(overrides, variable, message):
    with pytest.raises(BridgeInputError) as err:
        plan(**overrides)
    assert f"bridge role: {variable}: " in str(err.value)
    assert message in str(err.value)
