"""Bounded logs of the web jail (issue 16): Apache pipes its error and access logs to rotatelogs,
which Apache starts inside the jail, so the rotation runs with the jail's confinement and no host
code (no logrotate as host root) ever opens, moves or truncates a jail's log.

Each log is a ring of apache_log_files files (error.log, error.log.1, ...) of apache_log_file_size
each, plus at most one write (rotatelogs reads up to 64 KiB at a time and checks the size before
it writes). The fill test converges the role with small limits and sends large requests through
the published port; a second site of the same Apache logs the same requests the old way (plain
ErrorLog and CustomLog files): that control grows with every request while the rings stay within
size x files.
"""

from __future__ import annotations

import http.client
import re
import time
import uuid

from apachelib import rotatelogs_pids
from hostlib import jail_pids, load_vars, proc_status, public_address, run_play, wait_until

VARS = load_vars(__file__)
JAIL = VARS["apache_jail"]
ROOT = f"/var/lib/jailhost/jails/{JAIL}/root"
LOG_DIR_IN_JAIL = VARS.get("apache_log_dir", "/var/local/log/apache2")
LOG_DIR = f"{ROOT}{LOG_DIR_IN_JAIL}"
UNIT = f"jailhost-{JAIL}.service"
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
CONTROL_NAME = "control.example.test"
# CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE: the jail's bounding set (the role's default).
CAPS = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 10)
KIB = 1024
# The limits of the fill test, and what one write may add to a file (rotatelogs' read buffer).
SIZE, FILES, SLACK = 64 * KIB, 3, 64 * KIB
REQUESTS = 3000


def play(extra: dict | None = None) -> tuple[dict, dict]:
    return {"roles": [{"role": "jailhost.jails.apache"}]}, {**VARS, **(extra or {})}


def converge(host, tmp_path, extra: dict | None = None):
    role_play, extra_vars = play(extra)
    result = run_play(host, role_play, tmp_path, extra_vars=extra_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ring(host, name: str) -> dict[str, int]:
    """The files of a log's ring in the jail (name -> size)."""
    out = host.check_output(f"find {LOG_DIR} -maxdepth 1 -type f \\( -name {name} -o -name '{name}.*' \\) "
                            f"-printf '%f %s\\n'")
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}


def ring_text(host, name: str) -> str:
    return host.run(f"cat {LOG_DIR}/{name} {LOG_DIR}/{name}.[0-9]* 2>/dev/null").stdout


def send(host, server_name: str, paths: list[str]) -> None:
    """GET every path through the host's published port 80 on keep-alive connections."""
    conn = None
    for path in paths:
        for attempt in range(3):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(public_address(host), 80, timeout=10)
                conn.request("GET", path, headers={"Host": server_name})
                resp = conn.getresponse()
                resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 2:
                    raise
    if conn is not None:
        conn.close()


def test_rotatelogs_runs_in_the_jail_with_the_jails_confinement(host):
    """Two rotatelogs processes (error and access log), children of the jailed Apache parent: the
    jail's namespaces, seccomp, no_new_privs and capability bounding set, never the host's root."""
    parent = jail_pids(host, JAIL)[2][0]
    pids = rotatelogs_pids(host, parent)
    assert len(pids) == 2, pids
    host_ns = {ns: host.check_output(f"readlink /proc/1/ns/{ns}") for ns in ("pid", "net", "mnt", "ipc")}
    commands = []
    for pid in pids:
        status = proc_status(host, pid)
        assert status["Uid"].split()[0] == "0"
        assert int(status["CapBnd"], 16) == CAPS, status["CapBnd"]
        assert (status["Seccomp"], status["NoNewPrivs"]) == ("2", "1")
        for ns, value in host_ns.items():
            assert host.check_output(f"readlink /proc/{pid}/ns/{ns}") != value, f"rotatelogs {pid} shares {ns}"
        commands.append(host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline").strip())
    files = VARS.get("apache_log_files", 5)
    assert sorted(commands) == sorted([
        f"/usr/bin/rotatelogs -n {files} {LOG_DIR_IN_JAIL}/access.log 86400 10M",
        f"/usr/bin/rotatelogs -e -n {files} {LOG_DIR_IN_JAIL}/error.log 86400 10M"]), commands
    # The sites log through these two processes only: no other log file is open in the jail.
    assert not host.file(f"{ROOT}/etc/apache2/conf-enabled/other-vhosts-access-log.conf").exists


def test_the_error_log_reaches_the_units_journal(host):
    """The error log is echoed to the unit's journal: `journalctl -u jailhost-web` shows the jail's
    Apache messages (here: its start after a restart), not only firejail's."""
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    time.sleep(1)
    host.run_expect([0], f"systemctl restart {UNIT}")
    wait_until(lambda: "AH00163" in host.check_output(f"journalctl -u {UNIT} --since '{since}' --no-pager -o cat"),
               timeout=30)


def test_a_log_filled_past_its_limit_stays_within_size_times_files(host, tmp_path):
    """3,000 requests of about 6 KB each (a ~290-byte missing file name and a 6,000-byte query)
    at LogLevel info (one AH00128 error line per request) fill both rings many times over; the
    control site logs the same requests to plain files, as the role did before."""
    control_dir = LOG_DIR_IN_JAIL
    vhosts = [{**VARS["apache_vhosts"][0], "config": "LogLevel info"},
              {"server_name": CONTROL_NAME, "document_root": VARS["apache_vhosts"][0]["document_root"],
               "config": f"LogLevel info\nErrorLog {control_dir}/control-error.log\n"
                         f"CustomLog {control_dir}/control-access.log combined"}]
    small = {"apache_log_file_size": f"{SIZE // KIB}K", "apache_log_files": FILES, "apache_log_rotate_seconds": 0}
    run = uuid.uuid4().hex[:12]
    paths = [f"/fill-{run}-{i:05d}-{'a' * 250}?{'q' * 6000}" for i in range(REQUESTS)]
    try:
        converge(host, tmp_path, {**small, "apache_vhosts": vhosts})
        started = time.monotonic()
        send(host, SERVER_NAME, paths)
        send(host, CONTROL_NAME, paths)
        elapsed = time.monotonic() - started
        last = f"fill-{run}-{REQUESTS - 1:05d}-"
        wait_until(lambda: last in ring_text(host, "access.log") and last in ring_text(host, "error.log"), timeout=20)
        wait_until(lambda: host.run(f"grep -c {last} {LOG_DIR}/control-access.log").stdout.strip() == "1", timeout=20)
        bound = FILES * (SIZE + SLACK)
        report = {}
        for name in ("access.log", "error.log"):
            files = ring(host, name)
            report[name] = files
            assert set(files) <= {name} | {f"{name}.{i}" for i in range(1, FILES)}, files
            assert all(size <= SIZE + SLACK for size in files.values()), files
            assert sum(files.values()) <= bound, files
            text = ring_text(host, name)
            # The ring came round: the first requests are gone, the last one is there.
            assert f"fill-{run}-00000-" not in text and last in text
        control = {name: host.file(f"{LOG_DIR}/control-{name}").size for name in ("access.log", "error.log")}
        print(f"\n  {2 * REQUESTS} requests in {elapsed:.1f} s; rings (bytes): {report}; bound per log "
              f"{bound}; control files (plain, as before): {control}")
        # The control got the same lines and grew past the bound: the access log by far.
        assert control["access.log"] > 10 * bound and control["error.log"] > bound, control
        assert host.run(f"journalctl -u {UNIT} --no-pager -o cat | grep -c {last}").stdout.strip() != "0"
    finally:
        converge(host, tmp_path)
        host.run(f"rm -f {LOG_DIR}/control-access.log {LOG_DIR}/control-error.log")
    # Back to the lab's settings: the two rotatelogs processes with the default limits.
    test_rotatelogs_runs_in_the_jail_with_the_jails_confinement(host)


def test_a_log_is_rotated_by_age(host, tmp_path):
    """apache_log_rotate_seconds: a line written after the next multiple of the interval goes to
    the next file of the ring, whatever the size."""
    try:
        converge(host, tmp_path, {"apache_log_rotate_seconds": 15, "apache_log_files": 5})
        run = uuid.uuid4().hex[:12]
        send(host, SERVER_NAME, [f"/age-{run}-first"])
        wait_until(lambda: f"age-{run}-first" in ring_text(host, "access.log"), timeout=10)
        first = [name for name in ring(host, "access.log")
                 if f"age-{run}-first" in host.file(f"{LOG_DIR}/{name}").content_string]
        # Past the next multiple of 15 s (rotatelogs aligns the interval to the epoch).
        time.sleep(15 - time.time() % 15 + 1)
        send(host, SERVER_NAME, [f"/age-{run}-second"])
        wait_until(lambda: f"age-{run}-second" in ring_text(host, "access.log"), timeout=10)
        second = [name for name in ring(host, "access.log")
                  if f"age-{run}-second" in host.file(f"{LOG_DIR}/{name}").content_string]
        print(f"\n  first request in {first}, second (after the interval) in {second}")
        assert len(first) == 1 and len(second) == 1 and first != second
    finally:
        converge(host, tmp_path)


def test_bad_log_settings_fail_before_any_change(host, tmp_path):
    before = host.check_output(f"sha256sum {ROOT}/etc/apache2/conf-available/jailhost.conf")
    for bad in ({"apache_log_file_size": "10"}, {"apache_log_file_size": "1T"}, {"apache_log_files": 0},
                {"apache_log_rotate_seconds": -1}, {"apache_log_dir": "/var/local/log/a b"}):
        role_play, extra_vars = play(bad)
        result = run_play(host, role_play, tmp_path, extra_vars=extra_vars)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert re.search(r"apache_log_(file_size|files|rotate_seconds|dir)", output), output
    assert host.check_output(f"sha256sum {ROOT}/etc/apache2/conf-available/jailhost.conf") == before
