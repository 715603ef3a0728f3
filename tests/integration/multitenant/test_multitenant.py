"""Multi-tenant host (roles/apps): each app's site served with its own data through the front
proxy, each app's Apache running as its own user in its own jail, and tenants isolated from each
other: files on the host and across jails, processes, databases.

The attacks on another tenant run as a hijacked application would: a PHP probe dropped into app
alpha's document root and requested through the proxy runs as alpha's Apache worker in alpha's
jail. Every negative check has a positive control (the same probe succeeds on alpha's own data),
so a probe that cannot run does not pass as "isolated".
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid

import pytest

from attacklib import install_jailenter, jail_run, outside
from apachelib import apache_workers
from hostlib import (MOLECULE, assert_check_mode_changes_nothing, assert_started_once, jail_pids, load_vars, pg_bin,
                     pg_conf_dir, public_address)

VARS = load_vars(__file__)
# A service outside the host: the lab machine's apt proxy (host, port).
OUTSIDE = (VARS["rootfs_apt_proxy"].split("//")[1].split(":")[0], int(VARS["rootfs_apt_proxy"].rsplit(":", 1)[1]))
APPS = {app["name"]: app for app in VARS["apps_list"]}
JAILS = "/var/lib/jailhost/jails"


def curl(host, domain: str, path: str = "/", scheme: str = "http") -> tuple[int, str]:
    """GET through the host's published port, with the name the proxy routes by (SNI and Host)."""
    port = 443 if scheme == "https" else 80
    out = subprocess.run(
        ["curl", "-sk", "--max-time", "30", "--resolve", f"{domain}:{port}:{public_address(host)}",
         "-w", "\n%{http_code}", f"{scheme}://{domain}{path}"],
        capture_output=True, text=True, check=False).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def ids(host, user: str, root: str = "") -> tuple[int, int]:
    line = host.check_output(f"grep '^{user}:' {root}/etc/passwd")
    fields = line.split(":")
    return int(fields[2]), int(fields[3])


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_each_site_is_served_with_its_own_data(host, name):
    other = "beta" if name == "alpha" else "alpha"
    for scheme in ("http", "https"):
        status, body = curl(host, APPS[name]["domain"], scheme=scheme)
        assert status == 200, body
        for row in APPS[name]["content"]:
            assert row in body
        for row in APPS[other]["content"]:
            assert row not in body


def test_an_unknown_name_gets_the_proxy_not_an_app(host):
    status, body = curl(host, "unknown.example.test", "/health.txt")
    assert (status, body.strip()) == (200, "ok")
    status, body = curl(host, "unknown.example.test")
    assert all(row not in body for app in APPS.values() for row in app["content"])


def test_the_proxy_runs_every_worker_thread_within_its_limits(host):
    """The proxy runs the event MPM under the jail's address-space limit (rlimit-as 512 MiB): each
    child must get all its worker threads. With 8 MiB stacks and a malloc arena per thread they
    failed (AH03104), Apache exited with status 0 (AH02324) and the jail stayed down."""
    _, _, daemons = jail_pids(host, "proxy")
    children = apache_workers(host, daemons[0])
    assert children
    for pid in children:
        # ThreadsPerChild workers + the listener (+ the main thread).
        threads = int(host.check_output(f"ls /proc/{pid}/task | wc -l"))
        assert threads >= 26, f"child {pid} has {threads} threads"
        limit = int(host.check_output(f"awk '/^Max address space/ {{print $4}}' /proc/{pid}/limits"))
        vm = int(host.check_output(f"awk '/^VmSize/ {{print $2}}' /proc/{pid}/status")) * 1024
        assert vm < limit
    log = f"{JAILS}/proxy/upper/var/local/log/apache2/error.log"
    # Every file of the error log's rotatelogs ring (error.log, error.log.1, ...).
    assert host.run(f"cat {log} {log}.[0-9]* 2>/dev/null | grep -E 'AH03104|AH02324'").rc == 1, \
        host.check_output(f"tail -5 {log}")
    assert_started_once(host, ["proxy"])


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_user_has_the_same_ids_on_the_host_and_in_its_jail_and_a_locked_password(host, name):
    root = f"{JAILS}/{name}/root"
    uid, gid = ids(host, name)
    assert ids(host, name, root) == (uid, gid)
    assert 20000 <= uid <= 29999
    if APPS[name].get("uid"):
        assert uid == APPS[name]["uid"]
    for shadow in ("/etc/shadow", f"{root}/etc/shadow"):
        assert host.check_output(f"grep '^{name}:' {shadow} | cut -d: -f2").startswith("!")
    home = host.file(f"{root}/srv/{name}")
    assert (home.uid, home.gid, home.mode) == (uid, gid, 0o750)
    # The user exists in its own jail only.
    other = "beta" if name == "alpha" else "alpha"
    assert host.run(f"grep -q '^{other}:' {root}/etc/passwd").rc == 1


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_apache_workers_run_as_the_apps_user_confined(host, name):
    uid, _ = ids(host, name)
    _, child, daemons = jail_pids(host, name)
    workers = apache_workers(host, daemons[0])
    assert workers
    host_pid_ns = host.file("/proc/1/ns/pid").linked_to
    checked = 0
    for pid in workers:
        # Prefork retires idle workers above MaxSpareServers at any time: one may be gone by now.
        found = host.run(f"cat /proc/{pid}/status && readlink /proc/{pid}/ns/pid")
        if found.rc != 0:
            continue
        lines = found.stdout.splitlines()
        status = dict(line.split(":", 1) for line in lines[:-1] if ":" in line)
        assert status["Uid"].split()[0] == str(uid)
        assert (status["CapEff"].strip(), status["NoNewPrivs"].strip()) == ("0000000000000000", "1")
        assert lines[-1] != host_pid_ns
        checked += 1
    assert checked, f"every worker of {name} ended before it was checked: {workers}"


def test_the_other_tenants_files_are_unreadable_on_the_host(host):
    alpha_uid, alpha_gid = ids(host, "alpha")
    beta_uid, beta_gid = ids(host, "beta")
    beta_files = [f"{JAILS}/beta/root/srv/beta/www/index.php", f"{JAILS}/beta/root/etc/jailhost-app/database.json"]

    def read_as(uid, gid, path):
        return host.run(f"setpriv --reuid={uid} --regid={gid} --clear-groups cat {path}")

    # The jails directory is root's alone (0700, docs/security.md "Host accounts and jail uids"):
    # no host account reaches any jail's files, the owner's included.
    for path in beta_files:
        for uid, gid in ((alpha_uid, alpha_gid), (beta_uid, beta_gid)):
            denied = read_as(uid, gid, path)
            assert denied.rc == 1 and "Permission denied" in denied.stderr, (path, uid)
    # Below it, the files themselves keep the tenants apart: with the jails directory opened for
    # traversal (0711) for these reads, the owner reads them (control) and the other tenant does not.
    # (Its parent too when that is root-only: the rootfs role's file task creates a missing parent
    # with the same 0700.) Modes are put back as they were.
    opened = [JAILS, JAILS.rsplit("/", 1)[0]]
    modes = {path: host.check_output(f"stat -c %a {path}") for path in opened}
    host.run_expect([0], f"chmod 0711 {' '.join(opened)}")
    try:
        for path in beta_files:
            assert read_as(beta_uid, beta_gid, path).rc == 0, path
            denied = read_as(alpha_uid, alpha_gid, path)
            assert denied.rc == 1 and "Permission denied" in denied.stderr, path
        assert "beta-Secret-2" in read_as(beta_uid, beta_gid, beta_files[1]).stdout
    finally:
        for path, mode in modes.items():
            host.run_expect([0], f"chmod {mode} {path}")


@pytest.fixture
def alpha_probe(host):
    """A PHP file in alpha's document root: what a hijacked alpha could run as its worker."""
    name = f"probe-{uuid.uuid4().hex}.php"
    path = f"{JAILS}/alpha/root/srv/alpha/www/{name}"
    db_ip = VARS["apps_db_ip"]
    alpha, beta = APPS["alpha"], APPS["beta"]
    code = f"""<?php
header('Content-Type: application/json');
function try_db($conninfo) {{
    $c = @pg_connect($conninfo . ' connect_timeout=3');
    if ($c === false) {{ return 'refused'; }}
    $r = @pg_query($c, 'SELECT count(*) FROM items');
    return $r === false ? 'connected, no query' : 'read ' . pg_fetch_result($r, 0, 0) . ' rows';
}}
function try_tcp($ip, $port) {{
    $s = @fsockopen($ip, $port, $errno, $errstr, 2);
    if ($s !== false) {{ fclose($s); return 'connected'; }}
    return $errno == 111 ? 'refused' : 'no answer';
}}
$procs = array_values(array_filter(scandir('/proc'), 'ctype_digit'));
$users = [];
foreach ($procs as $p) {{ $s = @file_get_contents("/proc/$p/status");
    if ($s && preg_match('/^Uid:\\s+(\\d+)/m', $s, $m)) {{ $users[] = (int)$m[1]; }} }}
echo json_encode([
  'uid' => posix_getuid(),
  'own_db' => try_db("host={db_ip} dbname=alpha user=alpha password={alpha['db']['password']}"),
  'beta_db_with_alpha_login' => try_db("host={db_ip} dbname=beta user=alpha password={alpha['db']['password']}"),
  'beta_db_with_beta_login' => try_db("host={db_ip} dbname=beta user=beta password={beta['db']['password']}"),
  'own_home' => is_readable('/srv/alpha'),
  'beta_home_exists' => file_exists('/srv/beta'),
  'beta_root_via_host_path' => file_exists('{JAILS}/beta'),
  'beta_passwd_entry' => strpos((string)@file_get_contents('/etc/passwd'), 'beta:') !== false,
  'proc_uids' => array_values(array_unique($users)),
  'proc_count' => count($procs),
  'shadow_readable' => is_readable('/etc/shadow'),
  'beta_jail_http' => try_tcp('{beta['ip']}', 80),
  'beta_jail_ssh' => try_tcp('{beta['ip']}', 22),
  'proxy_jail_http' => try_tcp('{VARS['apps_proxy_ip']}', 80),
  'db_jail_ssh' => try_tcp('{db_ip}', 22),
  'outside' => try_tcp('{OUTSIDE[0]}', {OUTSIDE[1]}),
  'metadata' => try_tcp('169.254.169.254', 80),
]);
"""
    host.run_expect([0], f"cat > {path} <<'EOF_PROBE'\n{code}EOF_PROBE\nchmod 0644 {path}")
    yield name
    host.run(f"rm -f {path}")


def test_a_hijacked_app_cannot_reach_the_other_tenant(host, alpha_probe):
    status, body = curl(host, APPS["alpha"]["domain"], f"/{alpha_probe}")
    assert status == 200, body
    seen = json.loads(body)
    alpha_uid, _ = ids(host, "alpha")
    beta_uid, _ = ids(host, "beta")
    # Controls: the probe runs as alpha and reaches alpha's own home and database.
    assert seen["uid"] == alpha_uid
    assert seen["own_home"] is True
    assert seen["own_db"] == f"read {len(APPS['alpha']['content'])} rows"
    # Beta's database: neither with alpha's login nor with beta's (stolen) login from alpha's address.
    assert seen["beta_db_with_alpha_login"] == "refused"
    assert seen["beta_db_with_beta_login"] == "refused"
    # Beta's files and user do not exist in alpha's jail, nor does the host's jail directory.
    assert seen["beta_home_exists"] is False and seen["beta_root_via_host_path"] is False
    assert seen["beta_passwd_entry"] is False and seen["shadow_readable"] is False
    # Only alpha's processes: root (sandbox, Apache parent) and alpha's workers, never beta's.
    assert set(seen["proc_uids"]) <= {0, alpha_uid} and beta_uid not in seen["proc_uids"]
    assert seen["proc_count"] < 40
    # The network: beta's jail, the proxy and any other port of the db jail are dropped by the
    # host's FORWARD chain (no answer at all; "refused" would mean the packet got through).
    print(f"alpha -> beta:80 {seen['beta_jail_http']}, beta:22 {seen['beta_jail_ssh']}, "
          f"proxy:80 {seen['proxy_jail_http']}, db:22 {seen['db_jail_ssh']}")
    for probe in ("beta_jail_http", "beta_jail_ssh", "proxy_jail_http", "db_jail_ssh"):
        assert seen[probe] == "no answer", (probe, seen[probe])
    # Egress is denied by default (the suite declares no bridge_egress_allow): neither a service
    # outside the host (the lab's apt proxy) nor a cloud metadata address answers. CONTROL: the
    # host itself reaches that service.
    print(f"alpha -> outside {OUTSIDE}: {seen['outside']}, metadata: {seen['metadata']}")
    assert seen["outside"] == "no answer" and seen["metadata"] == "no answer", seen
    probe = f"import socket; socket.create_connection({OUTSIDE!r}, 3); print('connected')"
    control = host.run(f"python3 -c {shlex.quote(probe)}")
    assert control.stdout.strip() == "connected", control.stderr


def test_each_database_accepts_only_its_own_apps_address(host):
    hba = host.check_output(f"grep -E '^host' {JAILS}/db/root{pg_conf_dir(host)}/pg_hba.conf")
    lines = {tuple(line.split()[1:4]) for line in hba.splitlines() if "reject" not in line}
    assert lines == {("alpha", "alpha", f"{APPS['alpha']['ip']}/32"), ("beta", "beta", f"{APPS['beta']['ip']}/32")}
    # PUBLIC may not connect to an app's database (defence in depth behind pg_hba).

    def may_connect(role, database):
        return host.check_output(
            f"chroot {JAILS}/db/root setpriv --reuid=postgres --regid=postgres --init-groups "
            f"{pg_bin(host)}/psql -XAtq -h /run/postgresql -d postgres "
            f"-c \"SELECT has_database_privilege('{role}', '{database}', 'CONNECT')\"")
    assert may_connect("beta", "beta") == "t" and may_connect("alpha", "alpha") == "t"
    assert may_connect("alpha", "beta") == "f" and may_connect("beta", "alpha") == "f"


def test_converge_in_check_mode_changes_nothing(host, tmp_path):
    jails = ["proxy", "db"] + list(APPS)
    pids = {name: jail_pids(host, name)[0] for name in jails}
    assert_check_mode_changes_nothing(
        host, MOLECULE / "multitenant" / "converge.yml", tmp_path,
        ["/etc/firejail", "/etc/systemd/system", "/etc/ssh/sshd_config.d", "/etc/sudoers.d", "/etc/passwd",
         "/etc/group"] + [f"{JAILS}/{name}/root/etc/apache2" for name in ["proxy"] + list(APPS)])
    assert {name: jail_pids(host, name)[0] for name in jails} == pids


KERNEL_SURFACE = r'''
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
attempt('io_uring_setup', lambda: syscall(425, 4, params))
attempt('inet6_tcp', lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
attempt('inet_tcp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
'''


@pytest.mark.parametrize("jail", ["alpha", "proxy", "db"])
def test_io_uring_and_ipv6_are_closed_in_every_jail(host, jail):
    """Root in an app jail, the proxy jail and the db jail (with the confinement of the jail's
    daemon, attacklib.jail_run) gets EPERM from io_uring_setup and EOPNOTSUPP for an IPv6 socket
    (docs/security.md: the seccomp and protocol lines of every jail). CONTROLS: in the same
    attempt an IPv4 socket works; uid 0 on the test host, outside any jail, gets an io_uring
    descriptor and an IPv6 socket."""
    install_jailenter(host)
    result = jail_run(host, jail, KERNEL_SURFACE)
    assert not result["io_uring_setup"]["ok"] and result["io_uring_setup"]["errno"] == "EPERM", result
    assert not result["inet6_tcp"]["ok"] and result["inet6_tcp"]["errno"] == "EOPNOTSUPP", result
    assert result["inet_tcp"]["ok"], result
    control = outside(host, KERNEL_SURFACE, uid=None)
    assert control["io_uring_setup"]["ok"] and control["inet6_tcp"]["ok"], control
