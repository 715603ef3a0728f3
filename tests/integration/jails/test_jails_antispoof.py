"""Anti-spoofing on the bridge (issue 14): a jail's frames carry its own address or are dropped.

The firewall trusts source addresses: a declared flow (here alpha -> beta, UDP 9999) accepts
what comes from alpha's address, pg_hba trusts the web jail's address. A jail that keeps
CAP_NET_RAW (possible with hardening.caps_drop) can write any source address with a raw socket.
The attacker: ``mallory``, a throwaway jail whose root keeps net_raw, sends UDP to beta:9999 with
alpha's source address (IP_HDRINCL).

* protected: beta's listener receives nothing (the raw table's <prefix>-SPOOF chain drops frames
  entering through mallory's veth with a source other than mallory's);
* control 1: the same datagram from alpha's own network namespace arrives (the flow is open);
* control 2: the same spoofed datagram arrives once the anti-spoofing chain is emptied (the
  watcher stopped so that it does not put it back): the raw socket really can forge the address;
* mallory's own address still works on its own flows (nothing else changes): its frames with its
  source pass the chain (counted).
"""

from __future__ import annotations

import shlex
import time
import uuid

import pytest

from attacklib import JAILENTER, install_jailenter
from hostlib import jail_pids, load_vars, run_play, wait_until

VARS = load_vars(__file__)
ALPHA, BETA = (next(j for j in VARS["jails_under_test"] if j["name"] == n) for n in ("alpha", "beta"))
MALLORY = {"name": "mallory", "ip": "10.66.0.13"}
PORT = 9999
CHAIN = "JAILHOST-SPOOF"
LISTEN = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[2], int(sys.argv[3])))
with open(sys.argv[1], "a") as log:
    log.write("ready\n"); log.flush()
    while True:
        data, peer = s.recvfrom(512); log.write(f"{peer[0]} {data.decode(errors='replace')}\n"); log.flush()
'''
# A UDP datagram with a forged IPv4 header (IP_HDRINCL): SRC -> DST:PORT carrying TAG.
SPOOF = r'''
import socket, struct, sys
src, dst, port, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
udp = struct.pack("!HHHH", 40000, port, 8 + len(tag), 0) + tag
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, (dst, 0))
print("sent")
'''
SEND = r'''
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
'''


def mallory_play(state: str) -> dict:
    sandbox = {"name": MALLORY["name"], "state": "absent" if state == "absent" else "started"}
    if state != "absent":
        # Root in mallory keeps every capability but sys_admin: net_raw included.
        sandbox.update(bridge=VARS["bridge_name"], ip=MALLORY["ip"], command=["/bin/sleep", "infinity"],
                       hardening={"caps_drop": ["sys_admin"]})
    rootfs = {"name": "jailhost.jails.rootfs",
              "vars": {"rootfs_jails": [{"name": MALLORY["name"], "state": state, "purge": state == "absent"}]}}
    sandbox_task = {"name": "The mallory sandbox", "jailhost.jails.sandbox": sandbox}
    root_task = {"name": "The mallory root", "ansible.builtin.include_role": {"name": rootfs["name"]},
                 "vars": rootfs["vars"]}
    return {"tasks": [sandbox_task, root_task] if state == "absent" else [root_task, sandbox_task]}


@pytest.fixture(scope="module")
def mallory(host, tmp_path_factory):
    created = run_play(host, mallory_play("present"), tmp_path_factory.mktemp("mallory"))
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-2000:]
    install_jailenter(host)
    log = f"/run/jailhost-spoof-{uuid.uuid4().hex[:8]}.log"
    _, _, beta = jail_pids(host, "beta")
    listener = host.check_output(
        f"setsid nsenter -t {beta[0]} -n python3 -c {shlex.quote(LISTEN)} {log} {BETA['ip']} {PORT} "
        f">/dev/null 2>&1 </dev/null & echo $!")
    wait_until(lambda: "ready" in host.run(f"cat {log}").stdout, timeout=10)
    yield log
    host.run(f"kill {listener}; rm -f {log}")
    host.run("systemctl start jailhost-firewall-watch.service")
    removed = run_play(host, mallory_play("absent"), tmp_path_factory.mktemp("mallory-absent"))
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-2000:]
    assert MALLORY["ip"] not in host.check_output("iptables-save -t raw")


def received(host, log: str, tag: str, seconds: float = 2.0) -> list[str]:
    time.sleep(seconds)
    return [line for line in host.run(f"cat {log}").stdout.splitlines() if line.endswith(tag)]


def spoof_from_mallory(host, source: str, tag: str) -> None:
    _, _, daemons = jail_pids(host, MALLORY["name"])
    result = host.run(f"python3 {JAILENTER} {daemons[0]} root -- python3 -c {shlex.quote(SPOOF)} "
                      f"{source} {BETA['ip']} {PORT} {tag}")
    assert result.rc == 0 and "sent" in result.stdout, (result.stdout, result.stderr)


def test_the_chain_has_one_rule_per_jail(host, mallory):
    raw = host.check_output("iptables-save -t raw")
    assert f"-A PREROUTING -i {VARS['bridge_name']} -j {CHAIN}" in raw
    for jail in (ALPHA, BETA, MALLORY):
        assert f"-A {CHAIN} ! -s {jail['ip']}/32 -m physdev --physdev-in fj-{jail['name']} -j DROP" in raw, raw


def test_a_jail_cannot_send_as_another_jail(host, mallory):
    # Control 1: alpha's own datagram on the declared flow arrives.
    _, _, alpha = jail_pids(host, "alpha")
    tag = f"alpha-{uuid.uuid4().hex[:6]}"
    host.run_expect([0], f"nsenter -t {alpha[0]} -n python3 -c {shlex.quote(SEND)} {BETA['ip']} {PORT} {tag}")
    assert received(host, mallory, tag) == [f"{ALPHA['ip']} {tag}"]
    # The attack: mallory forges alpha's address. Nothing arrives.
    tag = f"spoofed-{uuid.uuid4().hex[:6]}"
    spoof_from_mallory(host, ALPHA["ip"], tag)
    assert received(host, mallory, tag) == [], "a forged datagram from mallory reached beta"
    # Control 2: the anti-spoofing chain emptied (watcher stopped): the same forgery arrives.
    host.run_expect([0], "systemctl stop jailhost-firewall-watch.service")
    try:
        host.run_expect([0], f"iptables -w -t raw -F {CHAIN}")
        tag = f"unprotected-{uuid.uuid4().hex[:6]}"
        spoof_from_mallory(host, ALPHA["ip"], tag)
        assert received(host, mallory, tag) == [f"{ALPHA['ip']} {tag}"]
    finally:
        host.run_expect([0], "systemctl start jailhost-firewall-watch.service")
    wait_until(lambda: "physdev-in fj-mallory" in host.check_output("iptables-save -t raw"), timeout=10)
