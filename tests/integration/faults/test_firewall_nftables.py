"""nftables.service owns the host's ruleset (issue 15): its reload never leaves the jails without
their rules for more than a moment, and our rules never remove the host's own.

A host whose firewall is nftables.service loads /etc/nftables.conf, which usually starts with
``flush ruleset``: every start, reload and stop of the service removes every table, the ip
tables of iptables-nft that hold our chains included. Without help the jails then forward
unfiltered until jailhost-firewall-watch.service notices (up to its 2 s interval plus the
restore). The bridge role installs a drop-in for nftables.service
(``nftables.service.d/jailhost-firewall.conf``) that restores our chains in the same job, right
after ``nft -f``: ``systemctl reload nftables`` returns with them back.

The fixture makes this host such a host: it installs nftables if missing (Debian 12 hosts do not
have it; Debian 13's base has it, disabled), writes a typical /etc/nftables.conf (``flush
ruleset`` and an inet filter table of the host's own with an ssh rule and a named counter),
enables and starts the service, and afterwards puts the file and the service's state back (a
package it installed stays installed, disabled and stopped, as Debian installs it).

Measured on the host (``WINDOW``): ``nft monitor ruleset`` timestamps when the ip filter table
went and when our FORWARD hook came back, while a probe in the web jail's network namespace opens
a TCP connection to the db jail's port 22 every 2 ms (no flow is declared: a reset means the SYN
was forwarded, the bridge was open). **Controls**: without the drop-in and with the watcher
stopped, the same reload leaves the chains gone and the bridge open; ``nft flush ruleset`` does
remove the host's table (so the check of the host's table can fail).
"""

from __future__ import annotations

import json
import shlex

import pytest

from hostlib import jail_pids, load_vars, site_serves_rows, wait_until

VARS = load_vars(__file__)
WEB = VARS["apache_jail"]
DB_IP = VARS["postgresql_address"]
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
FIREWALL_DIR = "/etc/jailhost/firewall"
DROPIN = "/etc/systemd/system/nftables.service.d/jailhost-firewall.conf"
HOST_RULE = 'comment "host-own: accept ssh"'
NFTABLES_CONF = """\
#!/usr/sbin/nft -f
# The host's own firewall (tests/integration/faults/test_firewall_nftables.py).
flush ruleset

table inet filter {
\tcounter host_ssh { }
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 22 counter name "host_ssh" accept comment "host-own: accept ssh"
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t}
\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
"""
PROBE = ("import socket, sys\n"
         "s = socket.socket(); s.settimeout(1.5)\n"
         "try:\n    s.connect((sys.argv[1], 22)); print('connected')\n"
         "except ConnectionRefusedError:\n    print('refused')\n"
         "except OSError:\n    print('timeout')\n")
# In the web jail's network namespace: a non-blocking connect to DB:22 every 2 ms for SECONDS;
# prints the times (host clock) of the attempts that got an answer (RST or connect).
FLOOD = r'''
import errno, json, select, socket, sys, time
db, seconds = sys.argv[1], float(sys.argv[2])
through, pending, sent, end = [], [], 0, time.time() + seconds
while time.time() < end:
    s = socket.socket(); s.setblocking(False); s.connect_ex((db, 22)); sent += 1
    pending.append((time.time(), s)); time.sleep(0.002)
    keep = []
    for t, p in pending:
        if select.select([], [p], [], 0)[1]:
            through.append(t); p.close()
        elif time.time() - t > 0.3:
            p.close()
        else:
            keep.append((t, p))
    pending = keep
print(json.dumps({"sent": sent, "through": through}))
'''
# On the host: nft monitor, the flood in the web jail, COMMAND after 0.5 s; prints JSON.
WINDOW = r'''
import json, subprocess, sys, threading, time
web, db, seconds, flood, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
events = []
mon = subprocess.Popen(["nft", "monitor", "ruleset"], stdout=subprocess.PIPE, text=True, bufsize=1)
threading.Thread(target=lambda: events.extend((time.time(), l.strip()) for l in mon.stdout), daemon=True).start()
probe = subprocess.Popen(["nsenter", "-t", web, "-n", "python3", "-c", flood, db, seconds],
                         stdout=subprocess.PIPE, text=True)
time.sleep(0.5)
t0 = time.time()
rc = subprocess.run(command).returncode
t1 = time.time()
out = json.loads(probe.communicate()[0])
time.sleep(0.2)
mon.terminate()
gone = [t for t, l in events if l.startswith("delete table ip filter") or l == "flush ruleset"]
back = [t for t, l in events if l.startswith(("insert rule ip filter FORWARD", "add rule ip filter FORWARD"))
        and "JAILHOST-FWD" in l and gone and t >= gone[0]]
through = [t - t0 for t in out["through"]]
print(json.dumps({"rc": rc, "command_s": t1 - t0, "flushed": bool(gone),
                  "window_s": back[0] - gone[0] if gone and back else None,
                  "sent": out["sent"], "through": len(through),
                  "open_s": max(through) - min(through) if through else 0.0,
                  "last_through_s": max(through) if through else None}))
'''


def probe(host) -> str:
    _, _, web = jail_pids(host, WEB)
    return host.check_output(f"nsenter -t {web[0]} -n python3 -c {shlex.quote(PROBE)} {DB_IP}")


def measure(host, command: str, seconds: float = 3.0) -> dict:
    """Run COMMAND on the host while timing the window and flooding the bridge (WINDOW)."""
    _, _, web = jail_pids(host, WEB)
    result = host.run(f"python3 -c {shlex.quote(WINDOW)} {web[0]} {DB_IP} {seconds} "
                      f"{shlex.quote(FLOOD)} {command}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def our_rules(host) -> list[str]:
    """Every line of iptables-save that names one of our chains (counters removed)."""
    lines = []
    for table in ("filter", "nat", "raw"):
        for line in host.check_output(f"iptables-save -t {table}").splitlines():
            if "JAILHOST" in line and not line.startswith("#"):
                lines.append(line.split(" [")[0] if line.startswith(":") else line)
    return sorted(lines)


def host_rule(host) -> tuple[int, int] | None:
    """(handle, packets) of the host's own ssh rule, or None when its table is gone."""
    result = host.run("nft -a list chain inet filter input")
    for line in result.stdout.splitlines():
        if HOST_RULE in line:
            handle = int(line.rsplit("# handle ", 1)[1])
            counter = host.check_output("nft list counter inet filter host_ssh")
            return handle, int(counter.split("packets ", 1)[1].split()[0])
    return None


@pytest.fixture(scope="module")
def nftables_host(host):
    """This host with nftables.service owning the ruleset; put back as it was afterwards."""
    installed = host.run("systemctl cat nftables.service").rc == 0
    if not installed:
        host.run_expect([0], "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables")
    print(f"\n  nftables was {'already' if installed else 'not'} installed: "
          f"{host.check_output('nft --version')}")
    conf = host.file("/etc/nftables.conf")
    saved = conf.content_string if conf.exists else None
    enabled = host.run("systemctl is-enabled nftables.service").stdout.strip() == "enabled"
    active = host.run("systemctl is-active nftables.service").stdout.strip() == "active"
    host.run_expect([0], f"printf %s {shlex.quote(NFTABLES_CONF)} > /etc/nftables.conf")
    host.run_expect([0], "systemctl enable nftables.service && systemctl restart nftables.service")
    assert host_rule(host) is not None
    wait_until(lambda: probe(host) == "timeout", timeout=15)
    yield
    host.run_expect([0], "systemctl start jailhost-firewall-watch.service")
    if saved is None:
        host.run_expect([0], "rm -f /etc/nftables.conf")
    else:
        host.run_expect([0], f"printf %s {shlex.quote(saved)} > /etc/nftables.conf")
    if not active:
        host.run_expect([0], "systemctl stop nftables.service")  # flush ruleset, then our ExecStopPost
    elif saved is not None:
        host.run_expect([0], "systemctl reload nftables.service")
    if not enabled:
        host.run_expect([0], "systemctl disable nftables.service")
    wait_until(lambda: probe(host) == "timeout", timeout=15)
    wait_until(lambda: site_serves_rows(host, SERVER_NAME), timeout=30)


def test_nftables_restores_our_chains_in_its_own_jobs(host, nftables_host):
    dropin = host.file(DROPIN)
    assert dropin.user == "root" and dropin.mode == 0o644
    for setting in ("ExecStartPost", "ExecReload", "ExecStopPost"):
        shown = host.check_output(f"systemctl show -p {setting} nftables.service")
        assert f"/usr/local/sbin/jailhost-firewall-restore {FIREWALL_DIR}" in shown, (setting, shown)
    # Ours comes after the host's own `nft -f` in the reload job.
    reload_cmds = host.check_output("systemctl show -p ExecReload nftables.service")
    assert reload_cmds.index("/usr/sbin/nft") < reload_cmds.index("jailhost-firewall-restore")
    after = host.check_output("systemctl show -p After --value jailhost-firewall.service").split()
    assert "nftables.service" in after


@pytest.mark.parametrize("action", ["reload", "restart"])
def test_a_reload_or_restart_of_nftables_returns_with_our_chains_back(host, nftables_host, action):
    rules = our_rules(host)
    assert any("-j JAILHOST-FWD" in line for line in rules)
    # The watcher stopped: what follows is the drop-in's doing alone.
    host.run_expect([0], "systemctl stop jailhost-firewall-watch.service")
    try:
        result = measure(host, f"systemctl {action} nftables.service")
        print(f"  systemctl {action} nftables (drop-in, watcher stopped): returned after "
              f"{result['command_s']:.3f} s; FORWARD hook back {result['window_s']:.3f} s after the "
              f"flush; {result['through']} of {result['sent']} probes got through, "
              f"within {result['open_s']:.3f} s")
        assert result["rc"] == 0 and result["flushed"], result
        assert our_rules(host) == rules  # back when systemctl returns, identical
        assert probe(host) == "timeout"
        assert result["window_s"] is not None and result["window_s"] < 1.0, result
        assert result["last_through_s"] is None or result["last_through_s"] < result["command_s"] + 0.3, result
        assert host_rule(host) is not None  # the host's own rule is loaded too

        # CONTROL: without the drop-in (and the watcher still stopped) the same action leaves our
        # chains gone and the bridge open until the end of the observation.
        host.run_expect([0], f"mv {DROPIN} {DROPIN}.off && systemctl daemon-reload")
        try:
            control = measure(host, f"systemctl {action} nftables.service")
            print(f"  CONTROL without the drop-in: {control['through']} of {control['sent']} probes got "
                  f"through, the last {control['last_through_s']:.3f} s after the {action}")
            assert control["rc"] == 0 and control["window_s"] is None, control
            assert "-j JAILHOST-FWD" not in host.check_output("iptables-save -t filter")
            assert probe(host) == "refused"
            assert control["last_through_s"] > control["command_s"] + 2.0, control
        finally:
            host.run_expect([0], f"mv {DROPIN}.off {DROPIN} && systemctl daemon-reload")
    finally:
        host.run_expect([0], "systemctl start jailhost-firewall-watch.service")
    wait_until(lambda: our_rules(host) == rules, timeout=15)
    wait_until(lambda: probe(host) == "timeout", timeout=15)


def test_our_restores_never_remove_the_hosts_own_table(host, nftables_host):
    before = host_rule(host)
    assert before is not None
    # Every way our chains are put back: the restore unit's script, the anti-spoofing rebuild of
    # the sandbox module, the watcher after another tool's flush of the ip filter table.
    host.run_expect([0], f"/usr/local/sbin/jailhost-firewall-restore {FIREWALL_DIR}")
    host.run_expect([0], f"/usr/local/sbin/jailhost-firewall-restore --antispoof {FIREWALL_DIR}")
    host.run_expect([0], "iptables -w -F && iptables -w -t nat -F")
    wait_until(lambda: probe(host) == "timeout", timeout=15)
    after = host_rule(host)
    print(f"  host's ssh rule (handle, packets): {before} before, {after} after our restores")
    assert after is not None and after[0] == before[0]  # the same rule, never re-created
    assert after[1] > before[1]  # and live: our SSH session's packets keep counting
    # CONTROL: a ruleset flush does remove the host's table (so the check above can fail);
    # nftables.service's reload brings it back, and ours with it (the drop-in).
    host.run_expect([0], "nft flush ruleset")
    assert host_rule(host) is None
    host.run_expect([0], "systemctl reload nftables.service")
    assert host_rule(host) is not None
    assert "-j JAILHOST-FWD" in host.check_output("iptables-save -t filter")
    wait_until(lambda: probe(host) == "timeout", timeout=15)
