"""A third jail is created, removed with its data kept, then purged; the other jails never notice."""

from __future__ import annotations

from attacklib import JAILENTER, install_jailenter
from hostlib import jail_pids, load_vars, run_play

VARS = load_vars(__file__)
GAMMA = {"name": "gamma", "ip": "10.66.0.12"}


def play_for_gamma(state: str, purge: bool = False, **definition) -> dict:
    sandbox = {"name": "gamma", "state": "absent" if state == "absent" else "started"}
    if state != "absent":
        sandbox.update(bridge=VARS["bridge_name"], ip=GAMMA["ip"],
                       command=["/usr/bin/python3", "-m", "http.server", "8080", "--bind", GAMMA["ip"]],
                       **definition)
    rootfs = {"role": "jailhost.jails.rootfs",
              "vars": {"rootfs_jails": [{"name": "gamma", "state": state, "purge": purge}]}}
    sandbox_task = {"name": "The gamma sandbox", "jailhost.jails.sandbox": sandbox}
    # Present: the root first, then the sandbox; absent: the sandbox first, then the root.
    if state == "absent":
        return {"tasks": [sandbox_task, {"name": "The gamma root", "ansible.builtin.include_role":
                                         {"name": rootfs["role"]}, "vars": rootfs["vars"]}]}
    return {"roles": [rootfs], "tasks": [sandbox_task]}


CAP_CHOWN, CAP_NET_RAW, CAP_SYS_ADMIN = 0, 13, 21
RAW_SOCKET = "python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1); print('open')\""


def bounding_set(host, pid: int) -> int:
    return int(host.check_output(f"awk '/^CapBnd:/ {{print $2}}' /proc/{pid}/status"), 16)


def test_a_changed_definition_restarts_only_that_jail_and_caps_drop_holds(host, tmp_path):
    """gamma runs with hardening.caps_drop [net_raw, sys_admin]: its root keeps chown but cannot
    open a raw socket. A new memory limit is shown by check mode (diff of the unit, nothing
    restarted), then applied: gamma restarts with the reason, alpha and beta do not notice."""
    others_before = {n: jail_pids(host, n)[0] for n in ("alpha", "beta")}
    dropping = {"hardening": {"caps_drop": ["net_raw", "sys_admin"]}, "memory_max": "96M"}
    created = run_play(host, play_for_gamma("present", **dropping), tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        profile = host.file("/etc/firejail/jailhost-gamma.profile").content_string
        assert "caps.drop net_raw,sys_admin" in profile and "caps.drop all" not in profile
        main, child, daemons = jail_pids(host, "gamma")
        caps = bounding_set(host, daemons[0])
        assert caps & (1 << CAP_CHOWN), "caps_drop dropped more than it names"
        assert not caps & (1 << CAP_NET_RAW) and not caps & (1 << CAP_SYS_ADMIN), hex(caps)
        # The attack: root in gamma, confined like its daemon, opens a raw socket (EPERM); root on
        # the host can (control).
        assert host.check_output(RAW_SOCKET) == "open"
        install_jailenter(host)
        attack = host.run(f"python3 {JAILENTER} {daemons[0]} root -- {RAW_SOCKET}")
        assert attack.rc != 0 and "Operation not permitted" in attack.stderr, (attack.stdout, attack.stderr)

        changed = {**dropping, "memory_max": "80M"}
        check = run_play(host, play_for_gamma("present", **changed), tmp_path, check=True)
        assert check.returncode == 0 and "changed=0" not in check.stdout, check.stdout + check.stderr
        assert jail_pids(host, "gamma")[0] == main, "check mode restarted the jail"
        assert "MemoryMax=96M" in host.file("/etc/systemd/system/jailhost-gamma.service").content_string

        applied = run_play(host, play_for_gamma("present", **changed), tmp_path)
        assert applied.returncode == 0 and "changed=0" not in applied.stdout, applied.stdout + applied.stderr
        assert jail_pids(host, "gamma")[0] != main, "the jail kept running with the old definition"
        assert host.check_output("systemctl show -p MemoryMax --value jailhost-gamma.service") == str(80 * 2**20)
        again = run_play(host, play_for_gamma("present", **changed), tmp_path)
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    finally:
        removed = run_play(host, play_for_gamma("absent", purge=True), tmp_path)
        assert removed.returncode == 0, removed.stdout + removed.stderr
    assert {n: jail_pids(host, n)[0] for n in ("alpha", "beta")} == others_before


def test_jail_absent_keeps_data_unless_purged(host, tmp_path):
    others_before = {n: jail_pids(host, n)[0] for n in ("alpha", "beta")}

    created = run_play(host, play_for_gamma("present"), tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    assert host.service("jailhost-gamma.service").is_running
    host.run_expect([0], "echo precious > /var/lib/jailhost/jails/gamma/root/srv/data")

    removed = run_play(host, play_for_gamma("absent"), tmp_path)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not host.file("/etc/systemd/system/jailhost-gamma.service").exists
    assert not host.file("/etc/firejail/jailhost-gamma.profile").exists
    assert "gamma" not in host.run("cat /run/firejail/name/* 2>/dev/null").stdout
    assert not host.mount_point("/var/lib/jailhost/jails/gamma/root").exists
    assert host.file("/var/lib/jailhost/jails/gamma/upper/srv/data").content_string == "precious\n"

    again = run_play(host, play_for_gamma("absent"), tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout

    purged = run_play(host, play_for_gamma("absent", purge=True), tmp_path)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not host.file("/var/lib/jailhost/jails/gamma").exists

    # The other jails were never restarted.
    assert {n: jail_pids(host, n)[0] for n in ("alpha", "beta")} == others_before
