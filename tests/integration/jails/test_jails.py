"""Jails on a booted host: two firejail sandboxes from one base, measured from the host's /proc.

Confinement is read from /proc and /run/firejail on the host (never through `firejail --join`,
which skips seccomp and capability filters), and from the jail's own view via nsenter into its
namespaces.
"""

from __future__ import annotations

import json
import time

import pytest

from hostlib import (MOLECULE, arp_probe_failures, assert_check_mode_changes_nothing, in_jail, jail_pids, load_vars,
                     proc_status, public_address, run_play, wait_until)

VARS = load_vars(__file__)
JAILS = VARS["jails_under_test"]
NAMES = [j["name"] for j in JAILS]


def http_get(host, ip: str, port: int) -> str:
    return host.run(f"curl -s --max-time 3 http://{ip}:{port}/").stdout


def test_firejail_is_configured_for_root_started_jails_only(host):
    config = host.file("/etc/firejail/firejail.config")
    for line in ("chroot yes", "force-nonewprivs yes", "restricted-network yes", "bind no"):
        assert config.contains(f"^{line}$")
    # No SUID bit: unprivileged users cannot reach firejail's SUID code (jails are started by root).
    assert host.file("/usr/bin/firejail").mode == 0o755
    owner, group, mode, path = host.check_output("dpkg-statoverride --list /usr/bin/firejail").split()
    assert (owner, group, int(mode, 8), path) == ("root", "root", 0o755, "/usr/bin/firejail")


@pytest.mark.parametrize("jail", JAILS, ids=NAMES)
def test_jail_unit_is_active_enabled_and_serves_its_page(host, jail):
    unit = host.service(f"jailhost-{jail['name']}.service")
    assert unit.is_running and unit.is_enabled
    assert http_get(host, jail["ip"], jail["port"]) == f"jail {jail['name']}\n"


def test_published_port_reaches_the_first_jail(host):
    import urllib.request
    with urllib.request.urlopen(f"http://{public_address(host)}:80/", timeout=5) as resp:
        assert resp.read().decode() == "jail alpha\n"


@pytest.mark.parametrize("jail", JAILS, ids=NAMES)
def test_jail_processes_are_confined(host, jail):
    # The sandbox child is firejail itself (PID 1 of the jail, keeping what it needs to reap and
    # shut down); everything it runs, the daemon and its descendants, must be confined.
    _, child, daemons = jail_pids(host, jail["name"])
    assert daemons, "no daemon process in the jail"
    members = host.check_output(
        f"ns=$(readlink /proc/{child}/ns/pid); for p in /proc/[0-9]*; do "
        f"[ \"$(readlink $p/ns/pid 2>/dev/null)\" = \"$ns\" ] && echo ${{p#/proc/}}; done; true").split()
    assert set(daemons) <= {int(p) for p in members}
    for pid in sorted({int(p) for p in members} - {child}):
        status = proc_status(host, pid)
        assert status["Seccomp"] == "2", f"pid {pid} has no seccomp filter"
        assert status["NoNewPrivs"] == "1"
        assert int(status["CapBnd"], 16) == 0, "capability bounding set is not empty"
        assert int(status["CapEff"], 16) == 0


def test_each_jail_has_its_own_namespaces(host):
    def namespaces(pid):
        return {ns: host.check_output(f"readlink /proc/{pid}/ns/{ns}") for ns in ("pid", "net", "mnt", "ipc")}
    host_ns = namespaces(1)
    seen = []
    for name in NAMES:
        _, _, daemons = jail_pids(host, name)
        ns = namespaces(daemons[0])
        for kind in ns:
            assert ns[kind] != host_ns[kind], f"{name} shares the host's {kind} namespace"
            for other in seen:
                assert ns[kind] != other[kind], f"{name} shares its {kind} namespace with another jail"
        seen.append(ns)


@pytest.mark.parametrize("name", NAMES)
def test_processes_inside_see_only_their_jail(host, name):
    _, child, daemons = jail_pids(host, name)
    visible = in_jail(host, daemons[0], "ls /proc | grep -E '^[0-9]+$' | wc -l").stdout.strip()
    # The jail's PID namespace holds the sandbox child, the daemon and our ls/sh/grep/wc.
    assert int(visible) <= 7, f"{visible} processes visible in {name}"
    host_sshd = in_jail(host, daemons[0], "grep -l sshd /proc/[0-9]*/comm 2>/dev/null | wc -l").stdout.strip()
    assert host_sshd == "0"


@pytest.mark.parametrize("name", NAMES)
def test_host_files_are_not_visible(host, name):
    host.run_expect([0], "echo host-secret > /root/host-secret && mkdir -p /home/someone && "
                         "echo x > /home/someone/secret && echo marker > /etc/jailhost-host-marker")
    _, _, daemons = jail_pids(host, name)
    view = in_jail(host, daemons[0], "ls -A /root /home; cat /etc/jailhost-host-marker; "
                                     "ls /var/lib/jailhost /etc/ssh/sshd_config; cat /etc/shadow | grep -c '^root:'")
    assert "host-secret" not in view.stdout and "someone" not in view.stdout
    assert "marker" not in view.stdout
    assert "No such file" in view.stderr  # /var/lib/jailhost and the host's sshd config
    host_root_hash = host.check_output("sha256sum /etc/shadow | cut -c1-64")
    jail_hash = in_jail(host, daemons[0], "sha256sum /etc/shadow | cut -c1-64").stdout.strip()
    assert jail_hash != host_root_hash, "the jail sees the host's /etc/shadow"


def test_a_file_written_in_one_jail_is_invisible_in_the_other_and_in_the_base(host):
    _, _, alpha = jail_pids(host, "alpha")
    _, _, beta = jail_pids(host, "beta")
    in_jail(host, alpha[0], "echo from-alpha > /srv/written-by-alpha")
    assert in_jail(host, alpha[0], "cat /srv/written-by-alpha").stdout == "from-alpha\n"
    assert in_jail(host, beta[0], "cat /srv/written-by-alpha").rc != 0
    base = host.check_output("cat /var/lib/jailhost/jails/beta/base").strip()
    assert not host.file(f"{base}/srv/written-by-alpha").exists
    assert host.file("/var/lib/jailhost/jails/alpha/upper/srv/written-by-alpha").exists


def test_the_base_is_read_only_to_jails_and_jails_cost_little_disk(host):
    base = host.check_output("cat /var/lib/jailhost/jails/alpha/base").strip()
    assert host.check_output("cat /var/lib/jailhost/jails/beta/base").strip() == base
    upper_kb = int(host.check_output("du -sk /var/lib/jailhost/jails/beta/upper | cut -f1"))
    assert upper_kb < 10 * 1024, f"beta's own layer is {upper_kb} KB"
    assert "lowerdir=" + base in host.check_output("grep ' /var/lib/jailhost/jails/beta/root ' /proc/mounts")


def test_limits_from_the_unit(host):
    show = host.check_output("systemctl show -p MemoryMax,TasksMax,CPUQuotaPerSecUSec jailhost-alpha.service")
    assert "MemoryMax=134217728" in show and "TasksMax=32" in show and "CPUQuotaPerSecUSec=500ms" in show


@pytest.mark.parametrize("name", NAMES)
def test_kernel_rlimits_hold_for_the_jail_processes(host, name):
    # Enforced by the kernel on every process of the jail, on any host (unlike cgroup limits).
    _, _, daemons = jail_pids(host, name)
    limits = host.check_output(f"cat /proc/{daemons[0]}/limits")
    assert [ln.split()[3:5] for ln in limits.splitlines() if ln.startswith("Max open files")] == [["256", "256"]]
    assert [ln.split()[2:4] for ln in limits.splitlines() if ln.startswith("Max processes")] == [["1024", "1024"]]


def test_sandbox_info_reports_what_proc_shows(host, tmp_path):
    out = tmp_path / "info.json"
    result = run_play(host, {"tasks": [
        {"name": "List the jails", "jailhost.jails.sandbox_info": {}, "register": "info"},
        {"name": "Save them", "ansible.builtin.copy": {"content": "{{ info.jails | to_json }}", "dest": str(out),
                                                       "mode": "0600"},
         "delegate_to": "localhost"},
    ]}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    jails = {j["name"]: j for j in json.loads(out.read_text())}
    assert set(NAMES) <= set(jails)
    for jail in JAILS:
        entry = jails[jail["name"]]
        main, child, daemons = jail_pids(host, jail["name"])
        assert (entry["state"], entry["ip"], entry["pid"], entry["child_pid"]) == ("running", jail["ip"], main, child)
        assert entry["daemon_pids"] == daemons
        assert entry["confined"] is True
        assert all(p["seccomp"] == 2 and p["no_new_privs"] == 1 and p["cap_bnd"] == "0000000000000000"
                   and all(p["namespaces_differ"].values()) for p in entry["processes"])
        assert entry["network"] == [{"bridge": VARS["bridge_name"], "ifname": "eth0"}]


# Every way a jail's daemon can end but `systemctl stop` brings the jail back (Restart=always):
# a crash, a clean exit with status 0 (Python's http.server on SIGINT; Apache does the same when
# it cannot start its workers) and a HUP to the firejail parent, which has no handler and which
# systemd counts as a clean death. Restart=on-failure left the jail down in the last two.
@pytest.mark.parametrize("target, signal", [("daemon", "KILL"), ("daemon", "INT"), ("parent", "HUP")],
                         ids=["daemon-crashes", "daemon-exits-0", "firejail-parent-hup"])
def test_ended_jail_is_restarted_within_10_seconds(host, target, signal):
    main, _, daemons = jail_pids(host, "beta")
    restarts = int(host.check_output("systemctl show -p NRestarts --value jailhost-beta.service"))
    arp_failures = arp_probe_failures(host, "jailhost-beta.service")
    host.run_expect([0], f"kill -{signal} {daemons[0] if target == 'daemon' else main}")
    started = time.monotonic()

    def serving_again():
        new_main = host.check_output("systemctl show -p MainPID --value jailhost-beta.service")
        return new_main not in ("0", str(main)) and http_get(host, "10.66.0.11", 8080) == "jail beta\n"

    wait_until(serving_again, timeout=10)
    assert time.monotonic() - started <= 10
    # one restart, plus one per retried start that firejail's ARP probe failed (hostlib)
    retried = arp_probe_failures(host, "jailhost-beta.service") - arp_failures
    assert int(host.check_output("systemctl show -p NRestarts --value jailhost-beta.service")) == restarts + 1 + retried


def test_stop_is_clean_and_start_serves_again(host):
    host.run_expect([0], "systemctl stop jailhost-beta.service")
    assert host.check_output("systemctl show -p ActiveState --value jailhost-beta.service") == "inactive"
    assert host.check_output("systemctl show -p Result --value jailhost-beta.service") == "success"
    host.run_expect([0], "systemctl start jailhost-beta.service")
    wait_until(lambda: http_get(host, "10.66.0.11", 8080) == "jail beta\n", timeout=10)


def test_converge_in_check_mode_changes_nothing(host, tmp_path):
    pids = {jail["name"]: jail_pids(host, jail["name"])[0] for jail in JAILS}
    assert_check_mode_changes_nothing(host, MOLECULE / "jails" / "converge.yml", tmp_path,
                                      ["/etc/firejail", "/etc/systemd/system", "/var/lib/jailhost/jails"])
    assert {jail["name"]: jail_pids(host, jail["name"])[0] for jail in JAILS} == pids
