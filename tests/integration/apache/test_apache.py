"""The web jail on a booted host: Apache from the jailhost.jails.apache role, measured from outside.

Converged with vars.yml (bridge, rootfs and apache roles). Confinement and the jail's view are read
from the host's /proc and through nsenter into the jail's namespaces, never with `firejail --join`.
The reboot test is last: it takes the host down.
"""

from __future__ import annotations

import http.client
import re
import shlex
import socket
import ssl
import statistics
import uuid


from attacklib import install_jailenter, jail_run, outside
from apachelib import apache_workers
from hostlib import assert_started_once, in_jail, jail_pids, load_vars, proc_status, public_address, reboot, run_play, wait_until

VARS = load_vars(__file__)
JAIL = VARS["apache_jail"]
IP = VARS["apache_ip"]
ROOT = f"/var/lib/jailhost/jails/{JAIL}/root"
LOG_DIR = f"{ROOT}/var/local/log/apache2"
UNIT = f"jailhost-{JAIL}.service"
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
}
# CAP_KILL (5), CAP_SETGID (6), CAP_SETUID (7), CAP_NET_BIND_SERVICE (10): the role's default.
CAPS = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 10)


def request(host, path: str = "/", tls: bool = False, headers: dict | None = None):
    """GET through the published port of the host, as a client on the network would."""
    address = public_address(host)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(address, 443, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": SERVER_NAME, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def apache_pids(host) -> tuple[int, int, list[int]]:
    """(firejail parent, Apache parent, Apache workers) host PIDs."""
    main, _, daemons = jail_pids(host, JAIL)
    assert len(daemons) == 1, f"expected one Apache parent, got {daemons}"
    return main, daemons[0], apache_workers(host, daemons[0])


def log_text(host, name: str) -> str:
    """Every file of a log's rotatelogs ring (NAME, NAME.1, ...), as one text."""
    return host.run(f"cat {LOG_DIR}/{name} {LOG_DIR}/{name}.[0-9]* 2>/dev/null").stdout


def config_tree(host) -> str:
    return host.check_output(f"cd {ROOT}/etc/apache2 && find . \\( -type f -o -type l \\) -printf '%p %l\\n' "
                             f"-exec sha256sum {{}} + 2>/dev/null | sort")


def apache_play(extra: dict | None = None) -> tuple[dict, dict]:
    return {"roles": [{"role": "jailhost.jails.apache"}]}, {**VARS, **(extra or {})}


def db_running(host) -> bool:
    return host.run("systemctl is-active --quiet jailhost-db.service").rc == 0


def test_http_through_the_published_port_with_headers_and_no_version(host):
    status, headers, body = request(host)
    assert status in (200, 503), body
    assert headers["Server"] == "Apache"
    for name, value in HEADERS.items():
        assert headers.get(name) == value, name
    assert "X-Powered-By" not in headers
    assert "Apache/" not in body and "PHP" not in body


def test_https_with_the_self_signed_certificate(host):
    status, headers, _ = request(host, tls=True)
    assert status in (200, 503)
    assert headers["Server"] == "Apache" and headers["X-Frame-Options"] == "DENY"
    text = host.check_output(f"openssl x509 -noout -text -in {ROOT}/etc/apache2/tls/selfsigned.crt")
    assert "CA:FALSE" in text and f"DNS:{SERVER_NAME}" in text and f"IP Address:{IP}" in text
    assert host.file(f"{ROOT}/etc/apache2/tls/selfsigned.key").mode == 0o600


WX_MAP = r"""
import mmap
attempt('map_write_exec', lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC) and 'mapped')
attempt('map_write', lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE) and 'mapped')
"""


def test_no_memory_is_writable_and_executable_in_the_jail(host):
    """apache_memory_deny_write_execute: a worker (www-data, the jail's seccomp filters) cannot map
    memory writable and executable at once, so injected code cannot be written and run; an
    ordinary mapping works. CONTROL: uid 33 on the host, outside the jail, maps it. PHP's PCRE
    JIT is off (it would need such a mapping), and the page still serves."""
    install_jailenter(host)
    worker = jail_run(host, JAIL, WX_MAP, user="www-data")
    assert not worker["map_write_exec"]["ok"] and worker["map_write_exec"]["errno"] == "EPERM", worker
    assert worker["map_write"]["ok"], worker
    control = outside(host, WX_MAP)
    assert control["map_write_exec"]["ok"], control
    assert "php_admin_flag pcre.jit off" in host.file(f"{ROOT}/etc/apache2/conf-available/jailhost.conf").content_string
    assert "memory-deny-write-execute" in host.file(f"/etc/firejail/jailhost-{JAIL}.profile").content_string.split("\n")


KEY_READ = "attempt('read_key', lambda: len(open('/etc/apache2/tls/selfsigned.key', 'rb').read()))\n"


def test_the_tls_key_is_unreadable_to_the_workers_user(host):
    """Why the Apache parent keeps uid 0 (docs/security.md, "Root inside a jail"): the key stays
    out of reach of a PHP foothold. As www-data with a worker's confinement (attacklib.jail_run)
    the key cannot be read; CONTROL: root with the parent's confinement, which is how Apache reads
    it at start, can."""
    install_jailenter(host)
    worker = jail_run(host, JAIL, KEY_READ, user="www-data")
    assert not worker["read_key"]["ok"] and worker["read_key"]["errno"] == "EACCES", worker
    parent = jail_run(host, JAIL, KEY_READ, user="root")
    assert parent["read_key"]["ok"] and parent["read_key"]["value"] > 0, parent


def test_trace_is_refused_and_no_directory_listing(host):
    conn = http.client.HTTPConnection(public_address(host), 80, timeout=10)
    conn.request("TRACE", "/", headers={"Host": SERVER_NAME})
    assert conn.getresponse().status == 405
    conn.close()
    assert request(host, "/nonexistent-dir/")[0] == 404


def test_static_file_is_served(host):
    assert request(host, "/health.txt")[:3:2] == (200, "ok\n")


def test_page_says_503_without_details_when_the_database_is_down(host):
    was_running = db_running(host)
    if was_running:
        host.run_expect([0], "systemctl stop jailhost-db.service")
    try:
        status, headers, body = request(host)
        assert status == 503
        assert headers.get("Retry-After") == "30"
        assert "Service unavailable" in body
        for leak in ("pg_connect", "Warning", "Fatal", "Stack", ".php", VARS["apache_app_db"]["host"],
                     VARS["apache_app_db"]["password"]):
            assert leak not in body
    finally:
        if was_running:
            host.run_expect([0], "systemctl start jailhost-db.service")


def test_page_lists_the_rows_when_the_database_is_up(host):
    # The suite runs on the full stack (molecule scenario default): the db jail must be there.
    assert db_running(host), "no database jail (jailhost-db) on this host"
    wait_until(lambda: _status(host, "/") == 200, timeout=30)
    status, _, body = request(host)
    assert status == 200 and "<table>" in body and "<td>" in body


def test_apache_parent_and_workers_are_confined_and_workers_run_as_www_data(host):
    _, parent, workers = apache_pids(host)
    assert workers, "no Apache worker"
    status = proc_status(host, parent)
    assert status["Uid"].split()[0] == "0"
    assert int(status["CapBnd"], 16) == CAPS, status["CapBnd"]
    assert (status["Seccomp"], status["NoNewPrivs"]) == ("2", "1")
    host_ns = {ns: host.check_output(f"readlink /proc/1/ns/{ns}") for ns in ("pid", "net", "mnt", "ipc")}
    for pid in workers:
        status = proc_status(host, pid)
        assert status["Uid"].split() == ["33"] * 4, f"worker {pid} does not run as www-data"
        assert status["Gid"].split() == ["33"] * 4
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == CAPS
        assert (status["Seccomp"], status["NoNewPrivs"]) == ("2", "1")
        for ns, value in host_ns.items():
            assert host.check_output(f"readlink /proc/{pid}/ns/{ns}") != value, f"worker {pid} shares {ns}"
    names = in_jail(host, parent, "for p in /proc/[0-9]*; do stat -c %U $p; done | sort -u").stdout.split()
    assert set(names) <= {"root", "www-data"}


def test_apache_listens_only_on_the_jail_address(host):
    _, parent, _ = apache_pids(host)
    sockets = host.check_output(f"nsenter --net=/proc/{parent}/ns/net ss -ltnH").splitlines()
    local = sorted(line.split()[3] for line in sockets)
    assert local == [f"{IP}:443", f"{IP}:80"], local
    # and nothing listens on the host for the jail's ports: the host reaches it only through DNAT
    assert not re.search(r"[:.](80|443)\s", host.check_output("ss -ltnH"))


def test_the_db_settings_are_readable_by_root_and_www_data_only(host):
    config = host.file(f"{ROOT}/etc/jailhost-app/database.json")
    assert (config.uid, config.gid, config.mode) == (0, 33, 0o640)
    directory = host.file(f"{ROOT}/etc/jailhost-app")
    assert (directory.uid, directory.gid, directory.mode) == (0, 33, 0o750)
    assert VARS["apache_app_db"]["password"] not in host.check_output(f"cat {ROOT}/var/www/app/*")
    assert host.file(f"{ROOT}/var/www/app/index.php").uid == 0


def test_logs_are_on_the_host_and_survive_a_jail_restart(host):
    marker = f"/log-marker-{uuid.uuid4().hex}"
    assert request(host, marker)[0] == 404
    wait_until(lambda: marker in log_text(host, "access.log"), timeout=5)
    main_before, _, _ = apache_pids(host)
    host.run_expect([0], f"systemctl restart {UNIT}")
    wait_until(lambda: host.run(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {SERVER_NAME}' "
                                f"http://{public_address(host)}/health.txt").stdout == "200", timeout=20)
    assert apache_pids(host)[0] != main_before
    assert marker in log_text(host, "access.log")
    assert host.file(LOG_DIR).mode == 0o750
    assert "AH00163" in log_text(host, "error.log")


def test_second_run_and_check_mode_change_nothing(host, tmp_path):
    cert = host.check_output(f"sha256sum {ROOT}/etc/apache2/tls/selfsigned.crt")
    pids = apache_pids(host)
    play, extra = apache_play()
    for check in (False, True):
        result = run_play(host, play, tmp_path, extra_vars=extra, check=check)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"changed=0\s", result.stdout), result.stdout
        assert VARS["apache_app_db"]["password"] not in result.stdout
    assert host.check_output(f"sha256sum {ROOT}/etc/apache2/tls/selfsigned.crt") == cert
    assert apache_pids(host)[:2] == pids[:2]


def test_a_vhost_change_reloads_gracefully(host, tmp_path):
    main, parent, workers = apache_pids(host)
    db_main = jail_pids(host, "db")[0]
    token = uuid.uuid4().hex
    vhosts = [{**VARS["apache_vhosts"][0], "config": f'Header always set X-Reload-Test "{token}"'}]
    # ServerTokens is a default the user can override (here: the version, as for debugging).
    play, extra = apache_play({"apache_vhosts": vhosts, "apache_server_tokens": "Minor"})
    result = run_play(host, play, tmp_path, extra_vars=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert request(host, "/health.txt")[1].get("X-Reload-Test") == token
    server = request(host, "/health.txt")[1].get("Server", "")
    assert re.match(r"Apache/2\.4$", server), server
    new_main, new_parent, new_workers = apache_pids(host)
    assert (new_main, new_parent) == (main, parent), "the jail or the Apache parent was restarted"
    assert not set(workers) & set(new_workers), "old workers still run after the graceful restart"
    assert host.check_output(f"systemctl show -p NRestarts --value {UNIT}") == "0"
    # back to the converged configuration, again by a reload
    play, extra = apache_play()
    result = run_play(host, play, tmp_path, extra_vars=extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "X-Reload-Test" not in request(host, "/health.txt")[1]
    assert request(host, "/health.txt")[1].get("Server") == "Apache"
    assert apache_pids(host)[:2] == (main, parent)
    assert jail_pids(host, "db")[0] == db_main, "the database jail was restarted by a web change"


def test_a_broken_configuration_fails_the_play_and_the_site_keeps_serving(host, tmp_path):
    before = config_tree(host)
    pids = apache_pids(host)
    vhosts = [{**VARS["apache_vhosts"][0], "config": "BogusDirective on"},
              {"server_name": "new.example.test", "document_root": "/var/www/app"}]
    play, extra = apache_play({"apache_vhosts": vhosts})
    result = run_play(host, play, tmp_path, extra_vars=extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "was rejected and the previous one restored" in output and "BogusDirective" in output
    assert config_tree(host) == before, "the previous configuration was not restored"
    assert apache_pids(host) == pids, "Apache was restarted or reloaded"
    assert request(host, "/health.txt")[0] == 200


def test_start_to_first_response(host):
    script = (f"systemctl stop {UNIT}; t0=$(date +%s%N); systemctl start {UNIT}; "
              f"until [ \"$(curl -s -o /dev/null -m 1 -w '%{{http_code}}' -H 'Host: {SERVER_NAME}' "
              f"http://{public_address(host)}/health.txt)\" = 200 ]; do sleep 0.02; done; "
              f"echo $(( ($(date +%s%N) - t0) / 1000000 ))")
    times = [int(host.check_output(f"timeout 30 sh -c {shlex.quote(script)}")) / 1000 for _ in range(5)]
    print(f"start to first HTTP 200 (s): {times}, median {statistics.median(times):.2f}")
    assert statistics.median(times) < 10


def test_the_site_comes_back_after_a_reboot(host):
    marker = f"/reboot-marker-{uuid.uuid4().hex}"
    request(host, marker)
    reboot(host)
    wait_until(lambda: _status(host, "/health.txt") == 200, timeout=60)
    _, parent, workers = apache_pids(host)
    status = proc_status(host, parent)
    assert (status["Seccomp"], status["NoNewPrivs"], int(status["CapBnd"], 16)) == ("2", "1", CAPS)
    assert workers and all(proc_status(host, w)["Uid"].split()[0] == "33" for w in workers)
    assert marker in log_text(host, "access.log")
    assert request(host, tls=True)[1]["Server"] == "Apache"
    assert_started_once(host, [JAIL])


def _status(host, path: str) -> int | None:
    try:
        return request(host, path)[0]
    except (OSError, socket.timeout, http.client.HTTPException):
        return None
