"""A third jail is created, removed with its data kept, then purged; the other jails never notice."""

from __future__ import annotations

from hostlib import jail_pids, load_vars, run_play

VARS = load_vars(__file__)
GAMMA = {"name": "gamma", "ip": "10.66.0.12"}


def play_for_gamma(state: str, purge: bool = False) -> dict:
    sandbox = {"name": "gamma", "state": "absent" if state == "absent" else "started"}
    if state != "absent":
        sandbox.update(bridge=VARS["bridge_name"], ip=GAMMA["ip"],
                       command=["/usr/bin/python3", "-m", "http.server", "8080", "--bind", GAMMA["ip"]])
    rootfs = {"role": "jailhost.jails.rootfs",
              "vars": {"rootfs_jails": [{"name": "gamma", "state": state, "purge": purge}]}}
    sandbox_task = {"name": "The gamma sandbox", "jailhost.jails.sandbox": sandbox}
    # Present: the root first, then the sandbox; absent: the sandbox first, then the root.
    if state == "absent":
        return {"tasks": [sandbox_task, {"name": "The gamma root", "ansible.builtin.include_role":
                                         {"name": rootfs["role"]}, "vars": rootfs["vars"]}]}
    return {"roles": [rootfs], "tasks": [sandbox_task]}


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
