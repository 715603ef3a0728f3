"""Bad input to the bridge role fails before any change, with a message naming the variable."""

from __future__ import annotations

import pytest

from hostlib import host_state, load_vars, run_role

VARS = load_vars(__file__)
WATCHED = ["/etc/jailhost", "/etc/systemd/network", "/etc/network", "/etc/sysctl.d", "/etc/systemd/system"]


@pytest.mark.parametrize("change, variable", [
    ({"bridge_address": "10.77.0.1"}, "bridge_address"),
    ({"bridge_address": "10.77.0.999/24"}, "bridge_address"),
    ({"bridge_name": "a-bridge-name-too-long"}, "bridge_name"),
    ({"bridge_published_ports": [{"public_port": 80, "jail_ip": "10.99.0.10"}]},
     "bridge_published_ports[0].jail_ip"),
    ({"bridge_published_ports": [{"public_port": 80, "jail_ip": "10.77.0.10"},
                                 {"public_port": 80, "jail_ip": "10.77.0.11"}]},
     "bridge_published_ports[1].public_port"),
    ({"bridge_published_ports": [{"public_port": 65536, "jail_ip": "10.77.0.10"}]},
     "bridge_published_ports[0].public_port"),
    ({"bridge_egress_policy": "sometimes"}, "bridge_egress_policy"),
])
def test_bad_input_fails_before_any_change(host, tmp_path, change, variable):
    before = host_state(host, WATCHED)
    result = run_role(host, "jailhost.jails.bridge", {**VARS, **change}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"bridge role: {variable}: " in output or f"{variable} must be one of" in output, output
    assert "changed=0" in result.stdout
    assert host_state(host, WATCHED) == before
