"""The jail firewall fails closed (issue 14): no jail runs without its rules.

* br_netfilter is loaded at boot whatever the converge found, and every jail unit is bound to
  jailhost-firewall.service (BindsTo=, After=): at boot the jails start after the rules.
* Another tool removes our rules while the jails run: ``iptables -F`` of every table, ``nft flush
  ruleset`` (what nftables.service's usual /etc/nftables.conf starts with), a full
  ``iptables-restore`` of a ruleset without our chains (how other firewalls reload), a reset of
  ``net.bridge.bridge-nf-call-iptables``. jailhost-firewall-watch.service puts them back within
  seconds; the time is printed. **Control**: with the watcher stopped the same flush leaves the
  bridge open (the web jail reaches a closed port of the db jail and gets a reset: the packet got
  through), so the test would see a missing protection.
* When jailhost-firewall.service stops (its watcher stops it when a restore fails), every jail
  stops with it.

The probe is a TCP connection from the web jail's network namespace to the db jail's port 22
(nothing listens there, no flow is declared): "timeout" = dropped by our FORWARD chain,
"refused" = the db jail answered.
"""

from __future__ import annotations

import shlex
import time

import pytest

from hostlib import jail_pids, load_vars, site_serves_rows, wait_until

VARS = load_vars(__file__)
WEB, DB = VARS["apache_jail"], "db"
DB_IP = VARS["postgresql_address"]
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
INTERVAL = 2  # bridge_firewall_watch_interval (the role's default)
PROBE = ("import socket, sys\n"
         "s = socket.socket(); s.settimeout(1.5)\n"
         "try:\n    s.connect((sys.argv[1], 22)); print('connected')\n"
         "except ConnectionRefusedError:\n    print('refused')\n"
         "except OSError:\n    print('timeout')\n")
FLUSHES = {
    "iptables -F": "iptables -w -F && iptables -w -t nat -F",
    "nft flush ruleset": "nft flush ruleset",
    "full iptables-restore without our chains": "iptables-save | grep -v JAILHOST | iptables-restore -w",
    "bridge-nf-call-iptables reset": "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables",
}


def probe(host) -> str:
    """The probe's answer, or "gone" when the web jail's daemon ended between reading its PID and
    entering its network namespace (a jail restarting after the firewall unit came back)."""
    try:
        _, _, web = jail_pids(host, WEB)
    except AssertionError:  # the jail has no daemon yet (restarting)
        return "gone"
    result = host.run(f"nsenter -t {web[0]} -n python3 -c {shlex.quote(PROBE)} {DB_IP}")
    return result.stdout.strip() if result.rc == 0 else "gone"


def serving(host) -> bool:
    return site_serves_rows(host, SERVER_NAME)


@pytest.fixture
def watched(host):
    """The watcher running and the bridge closed before the test; the same after it."""
    host.run_expect([0], "systemctl start jailhost-firewall.service jailhost-firewall-watch.service")
    wait_until(lambda: probe(host) == "timeout", timeout=60)
    yield
    host.run_expect([0], "systemctl start jailhost-firewall.service jailhost-firewall-watch.service "
                         f"jailhost-{DB}.service jailhost-{WEB}.service")
    wait_until(lambda: probe(host) == "timeout", timeout=60)
    wait_until(lambda: serving(host), timeout=60)


def test_br_netfilter_is_loaded_at_boot_and_every_jail_is_bound_to_the_firewall(host):
    assert "br_netfilter" in host.file("/etc/modules-load.d/jailhost-bridge.conf").content_string.split()
    for jail in (WEB, DB):
        unit = host.file(f"/etc/systemd/system/jailhost-{jail}.service").content_string
        assert "BindsTo=jailhost-firewall.service" in unit and "After=jailhost-firewall.service" in unit
    assert host.service("jailhost-firewall-watch.service").is_enabled
    assert host.service("jailhost-firewall-watch.service").is_running


@pytest.mark.parametrize("flush", list(FLUSHES))
def test_rules_removed_by_another_tool_come_back_within_seconds(host, watched, flush):
    # CONTROL: without the watcher, the flush opens the bridge and leaves it open.
    host.run_expect([0], "systemctl stop jailhost-firewall-watch.service")
    host.run_expect([0], FLUSHES[flush])
    time.sleep(INTERVAL + 1)
    control = probe(host)
    print(f"  {flush}, watcher stopped: web jail -> db:22 {control}")
    assert control in ("refused", "connected"), control
    # The watcher finds the difference and restores our rules and the sysctl.
    host.run_expect([0], "systemctl start jailhost-firewall-watch.service")
    wait_until(lambda: probe(host) == "timeout", timeout=15)
    host.run_expect([0], FLUSHES[flush])
    flushed = time.monotonic()
    _, seconds = wait_until(lambda: probe(host) == "timeout", timeout=3 * INTERVAL + 5)
    back = time.monotonic() - flushed
    print(f"  {flush}, watcher running: the bridge closed again {back:.1f} s after the flush")
    assert host.file("/proc/sys/net/bridge/bridge-nf-call-iptables").content_string.strip() == "1"
    wait_until(lambda: serving(host), timeout=15)  # the published port (DNAT) is back too
    assert host.service(f"jailhost-{WEB}.service").is_running and host.service(f"jailhost-{DB}.service").is_running


def test_jails_stop_when_the_firewall_unit_stops(host, watched):
    """What the watcher does when it cannot restore: stop jailhost-firewall.service. The jails
    are bound to it and stop too; starting a jail starts the firewall unit first."""
    host.run_expect([0], "systemctl stop jailhost-firewall.service")
    for jail in (WEB, DB):
        wait_until(lambda jail=jail: not host.service(f"jailhost-{jail}.service").is_running, timeout=30)
    assert not host.service("jailhost-firewall-watch.service").is_running
    host.run_expect([0], f"systemctl start jailhost-{DB}.service jailhost-{WEB}.service")
    assert host.service("jailhost-firewall.service").is_running
    assert "JAILHOST-FWD" in host.check_output("iptables-save -t filter")
