"""After a reboot of the test host the bridge, forwarding and our chains are back, with no manual step."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from hostlib import load_vars, public_address, push_file, reboot

VARS = load_vars(__file__)
BR = VARS["bridge_name"]


def test_everything_comes_back_after_reboot(host):
    before = {t: host.iptables.rules(t, c) for t, c in (("filter", "JAILHOST-FWD"), ("nat", "JAILHOST-DNAT"))}
    reboot(host)
    addrs = json.loads(host.check_output(f"ip -j -4 addr show dev {BR}"))
    assert addrs[0]["addr_info"][0]["local"] == VARS["bridge_address"].split("/")[0]
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.service("jailhost-firewall.service").is_running  # oneshot, RemainAfterExit
    for (table, chain), rules in zip((("filter", "JAILHOST-FWD"), ("nat", "JAILHOST-DNAT")), before.values()):
        assert host.iptables.rules(table, chain) == rules
    assert host.iptables.rules("filter", "FORWARD").count("-A FORWARD -j JAILHOST-FWD") == 1
    # And traffic flows again through the published port.
    push_file(host, Path(__file__).with_name("netlab.sh"), "/root/netlab.sh")
    host.run_expect([0], f"/root/netlab.sh up {BR}")
    try:
        with urllib.request.urlopen(f"http://{public_address(host)}:80/", timeout=5) as resp:
            assert resp.read().decode().startswith("jail-a port=8080 ")
    finally:
        host.run_expect([0], "/root/netlab.sh down")
