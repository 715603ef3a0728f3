"""The bridge role on a booted host: bridge, forwarding, our chains, and the traffic they let through.

Stand-in jails are network namespaces with a veth on the bridge (netlab.sh); real firejail jails
are tested by the jails suite. Tests that reboot the host are in test_bridge_reboot.py, which runs last.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from hostlib import MOLECULE, assert_check_mode_changes_nothing, load_vars, public_address, push_file

VARS = load_vars(__file__)
BR = VARS["bridge_name"]
HOST_IP, PREFIX = VARS["bridge_address"].split("/")
NETLAB = Path(__file__).with_name("netlab.sh")


@pytest.fixture(scope="module")
def netlab(host):
    push_file(host, NETLAB, "/root/netlab.sh")
    host.run_expect([0], f"/root/netlab.sh up {BR}")
    yield
    host.run_expect([0], "/root/netlab.sh down")


def connects(host, ns: str, addr: str, port: int) -> bool:
    return host.run(f"ip netns exec {ns} nc -z -w 2 {addr} {port}").rc == 0


def fetch(host, ns: str, url: str) -> str:
    return host.check_output(f"ip netns exec {ns} curl -s --max-time 3 {url}")


def test_bridge_has_the_host_address(host):
    addrs = json.loads(host.check_output(f"ip -j -4 addr show dev {BR}"))
    assert {"local": HOST_IP, "prefixlen": int(PREFIX)}.items() <= addrs[0]["addr_info"][0].items()
    assert host.interface(BR).exists
    assert host.file(f"/sys/class/net/{BR}/bridge").is_directory


def test_bridge_has_no_ipv6_address(host):
    assert host.check_output(f"ip -6 -o addr show dev {BR}") == ""


def test_forwarding_and_bridge_netfilter_are_on(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1


def test_rules_live_in_our_chains(host):
    fwd = host.iptables.rules("filter", "JAILHOST-FWD")
    assert "-A JAILHOST-FWD -d 10.77.0.10/32 -o br-jails -p tcp -m tcp --dport 8080 " \
           "-m conntrack --ctstate DNAT -j ACCEPT" in fwd
    assert fwd[-2:] == ["-A JAILHOST-FWD -i br-jails -j DROP", "-A JAILHOST-FWD -o br-jails -j DROP"]
    dnat = host.iptables.rules("nat", "JAILHOST-DNAT")
    assert "-A JAILHOST-DNAT -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.10:8080" in dnat
    assert "-A JAILHOST-SNAT -s 10.77.0.0/24 ! -o br-jails -j MASQUERADE" in \
        host.iptables.rules("nat", "JAILHOST-SNAT")
    assert "-A FORWARD -j JAILHOST-FWD" in host.iptables.rules("filter", "FORWARD")
    assert "-A INPUT -j JAILHOST-IN" in host.iptables.rules("filter", "INPUT")
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT" in \
        host.iptables.rules("nat", "PREROUTING")


def test_other_tools_rule_in_forward_is_kept(host):
    forward = host.iptables.rules("filter", "FORWARD")
    other = [r for r in forward if "other-tool" in r]
    assert other == ['-A FORWARD -s 198.51.100.0/24 -m comment --comment other-tool -j ACCEPT']
    assert forward.count("-A FORWARD -j JAILHOST-FWD") == 1


def test_firewall_is_persisted_for_boot(host):
    assert host.service("jailhost-firewall.service").is_enabled
    assert host.file("/etc/jailhost/firewall/rules.v4").contains("JAILHOST-DNAT")


def test_bridge_is_persisted_by_the_detected_backend(host):
    networkd = host.file(f"/etc/systemd/network/50-jailhost-{BR}.netdev")
    ifupdown = host.file(f"/etc/network/interfaces.d/jailhost-{BR}")
    if host.file("/etc/network/interfaces").exists:
        assert ifupdown.contains(f"address {VARS['bridge_address']}") and not networkd.exists
    else:
        assert networkd.contains("Kind=bridge") and not ifupdown.exists


def test_published_port_reaches_the_jail_from_the_controller(host, netlab):
    addr = public_address(host)
    with urllib.request.urlopen(f"http://{addr}:80/", timeout=5) as resp:
        body = resp.read().decode()
    assert body.startswith("jail-a port=8080 ")


def test_published_port_reaches_the_jail_from_the_uplink(host, netlab):
    assert fetch(host, "uplink", "http://198.51.100.1:443/").startswith("jail-a port=8443 peer=198.51.100.2")


def test_published_port_reaches_the_jail_from_the_host_itself(host, netlab):
    assert host.check_output("curl -s --max-time 3 http://198.51.100.1:80/").startswith("jail-a port=8080")


def test_unpublished_jail_ports_are_not_reachable_from_the_uplink(host, netlab):
    # Routed straight to the jail address, without the DNAT of a published port: dropped.
    assert not connects(host, "uplink", "10.77.0.10", 9090)
    assert not connects(host, "uplink", "10.77.0.10", 8080)
    assert not connects(host, "uplink", "10.77.0.20", 5432)
    # Nothing else of the host forwards to a jail either.
    assert not connects(host, "uplink", "198.51.100.1", 9090)


def test_jails_reach_the_outside_masqueraded(host, netlab):
    assert fetch(host, "jail-a", "http://198.51.100.2:7000/") == "uplink port=7000 peer=198.51.100.1"


def test_jail_flows_allow_only_declared_traffic_between_jails(host, netlab):
    assert connects(host, "jail-a", "10.77.0.20", 5432)
    assert not connects(host, "jail-a", "10.77.0.20", 6000)
    assert not connects(host, "jail-b", "10.77.0.10", 8080)


def test_jails_cannot_reach_host_services(host, netlab):
    assert host.socket("tcp://0.0.0.0:22").is_listening
    assert not connects(host, "jail-a", HOST_IP, 22)
    assert not connects(host, "jail-a", "198.51.100.1", 22)


def test_host_reaches_jails_only_through_admin_access(host, netlab):
    assert host.run("nc -z -w 2 10.77.0.20 5432").rc == 0
    assert host.run("nc -z -w 2 10.77.0.20 6000").rc != 0
    assert host.run("nc -z -w 2 10.77.0.10 9090").rc != 0


def test_converge_in_check_mode_changes_nothing(host, tmp_path):
    assert_check_mode_changes_nothing(host, MOLECULE / "bridge" / "converge.yml", tmp_path,
                                      ["/etc/systemd", "/etc/network", "/etc/sysctl.d", "/etc/modules-load.d"])
