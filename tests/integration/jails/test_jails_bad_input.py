"""Bad sandbox and rootfs input fails with a clear message and changes nothing on the host."""

from __future__ import annotations

import pytest

from hostlib import host_state, load_vars, run_play

VARS = load_vars(__file__)
BR = VARS["bridge_name"]
WATCHED = ["/etc/systemd/system", "/etc/firejail", "/etc/jailhost"]
JAIL_DIRS = "ls -la /var/lib/jailhost/jails /var/lib/jailhost/base"
SERVER = ["/usr/bin/python3", "-m", "http.server", "8080"]
# An existing jail root, so a case fails on the property it is about and not on a missing root.
ALPHA_ROOT = "/var/lib/jailhost/jails/alpha/root"


def sandbox(**kw) -> dict:
    args = {"name": "delta", "bridge": BR, "ip": "10.66.0.13", "command": SERVER}
    args.update(kw)
    return {"tasks": [{"name": "The sandbox under test", "jailhost.jails.sandbox": args}]}


def rootfs(jails: list) -> dict:
    return {"roles": [{"role": "jailhost.jails.rootfs", "vars": {"rootfs_jails": jails}}]}


CASES = {
    "name with upper case": (sandbox(name="Delta"), "name 'Delta' must match"),
    "name all digits": (sandbox(name="1234"), "firejail would take it for a PID"),
    "name too long": (sandbox(name="d" * 40), "longer than 32 characters"),
    "ip outside the bridge subnet": (sandbox(ip="10.99.0.13"), "outside the bridge subnet 10.66.0.0/24"),
    "ip of another jail": (sandbox(ip="10.66.0.10", root=ALPHA_ROOT), "already used by jail alpha"),
    "ip is the host's": (sandbox(ip="10.66.0.1"), "is the host address on the bridge"),
    "not an ip": (sandbox(ip="10.66.0.999"), "is not an IPv4 address"),
    "missing bridge": (sandbox(bridge="br-nothere"), "bridge br-nothere does not exist"),
    "missing root": (sandbox(root="/var/lib/jailhost/jails/nothere/root"), "does not exist"),
    "relative command": (sandbox(command=["python3", "-m", "http.server"]), "must be an absolute path"),
    "command missing in the jail": (sandbox(command=["/usr/sbin/apache2", "-DFOREGROUND"], root=ALPHA_ROOT),
                                    "does not exist in the jail root"),
    "unknown hardening key": (sandbox(hardening={"seccomp": True, "no_seccomp": True}), "no_seccomp"),
    "stop timeout below firejail's": (sandbox(stop_timeout=5), "stop_timeout must be an integer >= 16"),
    "bad memory limit": (sandbox(memory_max="lots"), "memory_max 'lots'"),
    "bad protocol": (sandbox(hardening={"protocol": ["unix", "ipx"]}), "hardening.protocol"),
    "rootfs: bad jail name": (rootfs([{"name": "../etc"}]), "rootfs_jails[0].name"),
    "rootfs: duplicate jail names": (rootfs([{"name": "alpha"}, {"name": "alpha"}]), "duplicate names"),
    "rootfs: a jail's suite is not a suite name": (
        rootfs([{"name": "alpha", "suite": "../trixie"}]), "must be Debian suite names"),
    "rootfs: firejail key firejail rejects": (
        {"roles": [{"role": "jailhost.jails.rootfs", "vars": {"rootfs_firejail_config": {
            "chroot": "yes", "arp-probes": "1"}}}]}, "keys firejail 0.9.72 does not accept"),
    "rootfs: chroot support off": (
        {"roles": [{"role": "jailhost.jails.rootfs", "vars": {"rootfs_firejail_config": {"chroot": "no"}}}]},
        "rootfs_firejail_config.chroot must be 'yes'"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_fails_before_any_change(host, tmp_path, case):
    play, message = CASES[case]
    before = host_state(host, WATCHED), host.check_output(JAIL_DIRS)
    result = run_play(host, play, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output
    assert (host_state(host, WATCHED), host.check_output(JAIL_DIRS)) == before


def test_a_sandbox_of_the_same_name_outside_the_unit_is_refused(host, tmp_path):
    host.run_expect([0], "setsid firejail --quiet --noprofile --name=collide -- sleep 300 "
                         "</dev/null >/dev/null 2>&1 & sleep 1")
    try:
        before = host_state(host, WATCHED)
        result = run_play(host, sandbox(name="collide", ip="10.66.0.14", root="/var/lib/jailhost/jails/alpha/root"),
                          tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "already running outside jailhost-collide.service" in output, output
        assert host_state(host, WATCHED) == before
    finally:
        host.run("firejail --shutdown=collide >/dev/null 2>&1; sleep 1")
