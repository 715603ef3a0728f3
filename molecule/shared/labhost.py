#!/usr/bin/env python3
"""Lab hosts: booted Debian test hosts on systemd-nspawn, for Molecule, the demo and benchmarks.

The development and CI machines have neither systemd as PID 1 nor a container engine, but
``systemd-nspawn -b`` boots a full Debian with systemd from a directory. This tool builds one
cached base image (debootstrap through a local apt-cacher-ng), and turns a copy of it into a
booted host reachable over SSH on the lab bridge, exactly as Ansible reaches a real server.

Layout on the machine (outside the repository, so fresh clones share the caches):

  /var/cache/jailhost-lab/images/<key>/     base image, keyed by its package list and recipe
  /var/lib/jailhost-lab/hosts/<name>/       one test host: rootfs/, id_ed25519, state.json, console.log

Network: bridge ``jhlab0`` (10.254.0.1/24) on the machine; every host gets a veth on it
(``--network-bridge``) and a static address 10.254.0.<10+slot>. Because the veth is attached to a
bridge that outlives the host, a reboot from inside the host (``systemctl reboot``) brings SSH back
without help from this tool. Forwarding between the lab bridge and any other interface of the
machine is dropped: test hosts reach the machine itself (SSH, the apt proxy) and nothing beyond.

Subcommands: proxy, image, create, destroy, destroy-all, list, stop, start, wait, exec.
Every subcommand is idempotent: create on a running host reports it, destroy on nothing succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

IMAGE_ROOT = Path(os.environ.get("JAILHOST_LAB_IMAGES", "/var/cache/jailhost-lab/images"))
HOSTS_ROOT = Path(os.environ.get("JAILHOST_LAB_HOSTS", "/var/lib/jailhost-lab/hosts"))
# Loop device nodes each host gets (/dev/loop0 .. /dev/loop<N-1>).
LOOP_NODES = 64
LOCK_FILE = Path("/var/lib/jailhost-lab/lock")

# Debian releases a lab host can run (issue 15: Debian 13 is the stable release, 12 oldstable).
# The default is the stable release; JAILHOST_LAB_RELEASE or `create --release` chooses another
# (every Molecule platform names its own). Each release has its own cached base image.
RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = os.environ.get("JAILHOST_LAB_RELEASE", "trixie")
MIRROR = os.environ.get("JAILHOST_LAB_MIRROR", "http://deb.debian.org/debian")
LAB_BRIDGE = "jhlab0"
LAB_GATEWAY = "10.254.0.1"
LAB_PREFIX = 24
FIRST_HOST_OCTET = 10
MAX_HOSTS = 200
PROXY_PORT = 3142

# What a freshly installed small Debian server has (systemd, ssh, python3 for Ansible), plus the
# tools the testinfra suites use on the test host (ss, ps, curl, nc). Roles install everything
# else they need themselves, through the proxy, as they would on a real server.
IMAGE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "python3",
    "python3-apt", "iproute2", "procps", "curl", "netcat-openbsd", "ca-certificates", "less",
    "kmod", "util-linux",
    # An installed server's root file system is ext4 with its tools (trixie's minbase lacks them;
    # the harness test formats a loop device inside a host).
    "e2fsprogs",
]
# Bumped whenever the recipe below changes in a way that must rebuild cached images.
IMAGE_RECIPE_VERSION = "3"

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,10}$")  # "vb-" + name must fit IFNAMSIZ (15)


class LabError(Exception):
    """A failure with a message meant for the user."""


def log(msg: str) -> None:
    print(f"labhost: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(cmd, text=True, capture_output=True, env=full_env, check=False, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc


@contextlib.contextmanager
def lab_lock():
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- apt proxy

def proxy_running() -> bool:
    try:
        import socket
        with socket.create_connection(("127.0.0.1", PROXY_PORT), timeout=1):
            return True
    except OSError:
        return False


def ensure_proxy() -> str:
    """Configure and start apt-cacher-ng (no systemd on the machine: started by hand)."""
    backends = Path("/etc/apt-cacher-ng/backends_debian")
    if not Path("/usr/sbin/apt-cacher-ng").exists():
        raise LabError("apt-cacher-ng is not installed: run 'make deps' (scripts/install-deps.sh)")
    # Its default mirror list names hosts that do not resolve here: pin the mirror we can reach.
    wanted = MIRROR.rstrip("/") + "/\n"
    if not backends.exists() or backends.read_text() != wanted:
        backends.write_text(wanted)
        if proxy_running():
            run(["pkill", "-x", "apt-cacher-ng"], check=False)
            time.sleep(1)
    if not proxy_running():
        run(["/usr/sbin/apt-cacher-ng", "-c", "/etc/apt-cacher-ng", "ForeGround=0"])
        for _attempt in range(50):
            if proxy_running():
                break
            time.sleep(0.1)
        else:
            raise LabError("apt-cacher-ng did not start listening on port 3142")
    return f"http://127.0.0.1:{PROXY_PORT}"


# --------------------------------------------------------------------------- base image

def check_release(release: str) -> str:
    if release not in RELEASES:
        raise LabError(f"release {release!r} is not one of {', '.join(RELEASES)}")
    return release


def image_key(release: str = DEFAULT_RELEASE) -> str:
    recipe = json.dumps([IMAGE_RECIPE_VERSION, release, MIRROR, sorted(IMAGE_PACKAGES)])
    return f"{release}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def image_dir(release: str = DEFAULT_RELEASE) -> Path:
    return IMAGE_ROOT / image_key(release)


def ensure_image(release: str = DEFAULT_RELEASE) -> Path:
    """Build the base image of RELEASE once; later calls return the cached directory."""
    check_release(release)
    target = image_dir(release)
    if (target / ".complete").exists():
        return target / "rootfs"
    proxy = ensure_proxy()
    with lab_lock():
        if (target / ".complete").exists():
            return target / "rootfs"
        started = time.monotonic()
        shutil.rmtree(target, ignore_errors=True)
        rootfs = target / "rootfs"
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        log(f"building base image {target.name} (debootstrap {release} through {proxy})")
        run(["debootstrap", "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}",
             release, str(rootfs), MIRROR], env={"http_proxy": proxy})
        configure_image(rootfs, release)
        (target / ".complete").write_text(json.dumps({
            "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(time.monotonic() - started, 1),
            "packages": IMAGE_PACKAGES,
        }) + "\n")
        log(f"base image built in {time.monotonic() - started:.0f} s")
        prune_old_images(keep=target)
    return rootfs


def configure_image(rootfs: Path, release: str) -> None:
    etc = rootfs / "etc"
    # Test hosts reach packages only through the proxy on the lab gateway.
    (etc / "apt/apt.conf.d/01jailhost-lab-proxy").write_text(
        f'Acquire::http::Proxy "http://{LAB_GATEWAY}:{PROXY_PORT}";\n')
    (etc / "apt/sources.list").write_text(f"deb {MIRROR} {release} main\n")
    for unit in ("systemd-networkd.service", "ssh.service"):
        run(["systemctl", f"--root={rootfs}", "enable", unit])
    # Units that only make sense on hardware or cannot work in a container.
    for unit in ("systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer"):
        run(["systemctl", f"--root={rootfs}", "mask", unit], check=False)
    sshd = etc / "ssh/sshd_config.d/10-jailhost-lab.conf"
    sshd.write_text("PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    # Every boot generates a fresh machine id.
    (etc / "machine-id").write_text("")
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("# lab hosts have no resolver: apt goes through the proxy\n")
    run(["chroot", str(rootfs), "apt-get", "clean"])


def prune_old_images(keep: Path) -> None:
    """Remove outdated images of KEEP's release (each release keeps its newest)."""
    release = keep.name.split("-", 1)[0]
    for other in IMAGE_ROOT.iterdir():
        if other != keep and other.is_dir() and other.name.split("-", 1)[0] == release:
            log(f"removing outdated base image {other.name}")
            shutil.rmtree(other, ignore_errors=True)


# --------------------------------------------------------------------------- lab network

def ensure_lab_network() -> None:
    if run(["ip", "link", "show", LAB_BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", LAB_BRIDGE, "type", "bridge"])
    run(["ip", "addr", "replace", f"{LAB_GATEWAY}/{LAB_PREFIX}", "dev", LAB_BRIDGE])
    run(["ip", "link", "set", LAB_BRIDGE, "up"])
    # Test hosts must not route beyond this machine, whatever ip_forward says.
    for rule in (["-i", LAB_BRIDGE, "!", "-o", LAB_BRIDGE, "-j", "DROP"],
                 ["-o", LAB_BRIDGE, "!", "-i", LAB_BRIDGE, "-j", "DROP"]):
        if run(["iptables", "-C", "FORWARD", *rule], check=False).returncode != 0:
            run(["iptables", "-I", "FORWARD", "1", *rule])


def remove_lab_network_if_unused() -> None:
    if any(HOSTS_ROOT.glob("*/state.json")):
        return
    for rule in (["-i", LAB_BRIDGE, "!", "-o", LAB_BRIDGE, "-j", "DROP"],
                 ["-o", LAB_BRIDGE, "!", "-i", LAB_BRIDGE, "-j", "DROP"]):
        while run(["iptables", "-C", "FORWARD", *rule], check=False).returncode == 0:
            run(["iptables", "-D", "FORWARD", *rule])
    run(["ip", "link", "del", LAB_BRIDGE], check=False)


# --------------------------------------------------------------------------- hosts

def host_dir(name: str) -> Path:
    return HOSTS_ROOT / name


def load_state(name: str) -> dict | None:
    path = host_dir(name) / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_state(name: str, state: dict) -> None:
    path = host_dir(name) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def all_states() -> list[dict]:
    if not HOSTS_ROOT.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(HOSTS_ROOT.glob("*/state.json"))]


def allocate_slot() -> int:
    used = {s["slot"] for s in all_states()}
    for slot in range(MAX_HOSTS):
        if slot not in used:
            return slot
    raise LabError(f"no free lab address: {MAX_HOSTS} hosts exist")


def pid_alive(pid: int | None) -> bool:
    """True while PID is a running supervisor of a lab host (see supervise())."""
    if not pid:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"supervise" in argv and \
        any(arg.endswith(b"labhost.py") for arg in argv)


def children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


def container_init_pid(supervisor_pid: int) -> int | None:
    """The host PID of the container's systemd (a descendant of the supervisor and nspawn)."""
    queue = children(supervisor_pid)
    while queue:
        pid = queue.pop(0)
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                return pid
            queue += children(pid)
    return None


def nsenter(state: dict, cmd: list[str], check: bool = True, timeout: float | None = None):
    init = container_init_pid(state["supervisor_pid"])
    if not init:
        raise LabError(f"host {state['name']} is not running")
    return run(["nsenter", "-t", str(init), "-a", "-r", "-w", *cmd], check=check, timeout=timeout)


def write_host_config(state: dict) -> None:
    rootfs = Path(state["rootfs"])
    etc = rootfs / "etc"
    # Sorts before the image's 80-container-host0.network, so the static address wins.
    (etc / "systemd/network/10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={state['address']}/{LAB_PREFIX}\nGateway={LAB_GATEWAY}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    (etc / "hostname").write_text(state["name"] + "\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{state['address']} {state['name']}\n")
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    pub = Path(state["identity_file"] + ".pub").read_text()
    (ssh_dir / "authorized_keys").write_text(pub)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    # Loop devices (issue 14: a jail's size-limited layer is an ext4 image on a loop device).
    # nspawn's /dev has none and nothing inside creates them (no udev in a container); the
    # machine applies no device cgroup (no systemd to set nspawn's DeviceAllow=), so the host's
    # tmpfiles create the nodes at boot. Binding the machine's nodes with --bind= instead is not
    # needed. Loop devices are global: destroy detaches the ones whose image is in this host.
    (etc / "tmpfiles.d/jailhost-lab-loop.conf").write_text(
        "# Written by labhost.py: loop devices for the jails' size-limited layers.\n"
        "c /dev/loop-control 0600 root root - 10:237\n"
        + "".join(f"b /dev/loop{minor} 0660 root disk - 7:{minor}\n" for minor in range(LOOP_NODES)))
    # The host's systemd-tmpfiles-setup runs after local-fs.target, too late for a layer mounted at
    # boot (and systemd-tmpfiles-setup-dev needs CAP_SYS_MODULE, which nspawn drops): create the
    # nodes before the local file systems.
    (etc / "systemd/system/jailhost-lab-loop.service").write_text(
        "[Unit]\nDescription=Loop device nodes (lab host, labhost.py)\nDefaultDependencies=no\n"
        "Before=local-fs-pre.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        "ExecStart=systemd-tmpfiles --create /etc/tmpfiles.d/jailhost-lab-loop.conf\n")
    wants = etc / "systemd/system/local-fs-pre.target.wants"
    wants.mkdir(exist_ok=True)
    link = wants / "jailhost-lab-loop.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/jailhost-lab-loop.service")


def host_loops(state: dict) -> list[str]:
    """The machine's loop devices backed by a file of this host (as the host names it: the path
    inside its root, checked by device and inode so another host's file of the same name does
    not count)."""
    return [loop["name"] for loop in loop_devices() if loop_host_path(loop, Path(state["rootfs"]))]


def loop_devices() -> list[dict]:
    result = run(["losetup", "-J", "-O", "NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN"], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return json.loads(result.stdout).get("loopdevices", [])


def loop_host_path(loop: dict, rootfs: Path) -> Path | None:
    """The file under rootfs behind a loop device, or None when it is not one of rootfs's."""
    back = (loop.get("back-file") or "").removesuffix(" (deleted)")
    if not back.startswith("/"):
        return None
    path = rootfs / back.lstrip("/")
    try:
        info = path.stat()
    except OSError:
        return None
    major, minor = (loop.get("back-maj:min") or "").strip().partition(":")[::2]
    if not (major.isdigit() and minor.isdigit()):
        return None
    if info.st_ino == int(loop.get("back-ino") or -1) and info.st_dev == os.makedev(int(major), int(minor)):
        return path
    return None


def nspawn_command(state: dict) -> list[str]:
    return [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
        f"--directory={state['rootfs']}", f"--machine={state['name']}",
        f"--network-bridge={LAB_BRIDGE}",
        # Jails inside the test host create bridges, veths and netfilter rules in its namespace.
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW,CAP_SYS_ADMIN",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        "--console=read-only",
    ]


# Each host's own cgroup in the machine's systemd-named (v1) and unified (v2) hierarchies. Without
# systemd on the machine, nspawn puts every container's payload into the same cgroup (/payload),
# so the services of two hosts with the same unit name (every host's jailhost-web.service) shared
# one cgroup: a host's systemd waited for the other hosts' processes after a kill (systemd 257 on
# trixie hosts: "Processes still around after SIGKILL", 20 s) and could not tell them apart.
CGROUP_PARENT = "jailhost-lab"
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


def host_cgroups(name: str) -> list[Path]:
    return [root / CGROUP_PARENT / name for root in CGROUP_HIERARCHIES if (root / "cgroup.procs").exists()]


def enter_host_cgroups(name: str) -> None:
    """Move this process (the supervisor, before it starts nspawn) into the host's own cgroups:
    nspawn makes its payload and supervisor cgroups below the one it starts in."""
    for cgroup in host_cgroups(name):
        cgroup.mkdir(parents=True, exist_ok=True)
        (cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n")


def remove_host_cgroups(name: str) -> None:
    """rmdir the host's cgroups, deepest first (a cgroup directory holds no files of its own)."""
    for cgroup in host_cgroups(name):
        if not cgroup.is_dir():
            continue
        for path in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def supervise(name: str) -> int:
    """Run the host's nspawn in the foreground; start it again when the host reboots.

    systemd-nspawn exits with 133 when the container's systemd reboots (a systemd host would
    restart systemd-nspawn@.service). SIGTERM powers the host off and ends the loop.
    """
    state = load_state(name)
    if state is None:
        raise LabError(f"no lab host named {name}")
    enter_host_cgroups(name)
    stopping = False
    child: subprocess.Popen | None = None

    def on_term(_signum, _frame):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while True:
        child = subprocess.Popen(nspawn_command(state), stdin=subprocess.DEVNULL)
        rc = child.wait()
        if stopping or rc != 133:
            return rc
        print(f"labhost: host {name} rebooted; starting it again", flush=True)


def start_nspawn(state: dict) -> None:
    ensure_lab_network()
    hdir = host_dir(state["name"])
    console = open(hdir / "console.log", "ab")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "supervise", state["name"]],
                            stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                            start_new_session=True)
    # Popen can return before the child has exec'd; wait so pid_alive() sees the real process.
    for _attempt in range(100):
        if pid_alive(proc.pid) or proc.poll() is not None:
            break
        time.sleep(0.05)
    state["supervisor_pid"] = proc.pid
    state["started_at"] = time.time()
    save_state(state["name"], state)


def wait_ready(state: dict, timeout: float = 120) -> float:
    """Wait until systemd has finished booting and SSH answers; return the seconds it took."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while time.monotonic() < deadline:
        if not pid_alive(state["supervisor_pid"]):
            tail = (host_dir(state["name"]) / "console.log").read_text(errors="replace")[-3000:]
            raise LabError(f"host {state['name']} exited while booting:\n{tail}")
        if container_init_pid(state["supervisor_pid"]):
            proc = nsenter(state, ["systemctl", "is-system-running"], check=False, timeout=10)
            if proc.stdout.strip() in ("running", "degraded"):
                break
        time.sleep(0.3)
    else:
        raise LabError(f"host {state['name']} did not finish booting in {timeout:.0f} s")
    while time.monotonic() < deadline:
        if ssh(state, ["true"], check=False).returncode == 0:
            return time.monotonic() - start
        time.sleep(0.3)
    raise LabError(f"host {state['name']} booted but SSH does not answer on {state['address']}")


def ssh_base(state: dict) -> list[str]:
    return ["ssh", "-i", state["identity_file"], "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=3", "-o", "BatchMode=yes", f"root@{state['address']}"]


def ssh(state: dict, cmd: list[str], check: bool = True):
    return run([*ssh_base(state), *cmd], check=check, timeout=60)


def public_state(state: dict) -> dict:
    return {
        "instance": state["name"], "address": state["address"], "user": "root", "port": 22,
        "identity_file": state["identity_file"], "rootfs": state["rootfs"],
        "supervisor_pid": state["supervisor_pid"], "gateway": LAB_GATEWAY,
        "apt_proxy": f"http://{LAB_GATEWAY}:{PROXY_PORT}", "release": state.get("release", "bookworm"),
    }


def create(name: str, timeout: float, release: str = DEFAULT_RELEASE) -> dict:
    if not NAME_RE.match(name):
        raise LabError(f"host name {name!r} must match {NAME_RE.pattern} (it names a veth)")
    existing = load_state(name)
    if existing and existing.get("release", "bookworm") != release:
        raise LabError(f"host {name} runs {existing.get('release', 'bookworm')}, not {release}: destroy it first")
    rootfs_image = ensure_image(release)
    ensure_proxy()
    with lab_lock():
        state = load_state(name)
        if state and pid_alive(state.get("supervisor_pid")):
            log(f"host {name} already runs")
        else:
            if state is None:
                started = time.monotonic()
                hdir = host_dir(name)
                shutil.rmtree(hdir, ignore_errors=True)
                hdir.mkdir(parents=True)
                slot = allocate_slot()
                # A real copy, not an overlay: roles inside the test host mount overlays of their
                # own, and overlayfs does not accept an overlay as upper layer.
                run(["cp", "-a", "--reflink=auto", str(rootfs_image), str(hdir / "rootfs")])
                key = hdir / "id_ed25519"
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"jailhost-lab-{name}",
                     "-f", str(key)])
                state = {"name": name, "slot": slot,
                         "address": f"10.254.0.{FIRST_HOST_OCTET + slot}",
                         "rootfs": str(hdir / "rootfs"), "identity_file": str(key),
                         "image": image_key(release), "release": release, "supervisor_pid": None,
                         "copy_seconds": round(time.monotonic() - started, 2),
                         # created with loop device nodes (write_host_config)
                         "loop_devices": True}
                write_host_config(state)
                save_state(name, state)
            start_nspawn(state)
    state["boot_seconds"] = round(wait_ready(state, timeout), 2)
    save_state(name, state)
    return state


def stop(state: dict, timeout: float = 60) -> None:
    """Power the host off (SIGTERM makes nspawn ask the container's systemd to shut down)."""
    pid = state.get("supervisor_pid")
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        log(f"host {state['name']} did not power off in {timeout:.0f} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
    # nspawn's own cleanup can be skipped when it is killed: mounts under the root stay behind.
    unmount_below(Path(state["rootfs"]))


def unmount_below(path: Path) -> None:
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].encode().decode("unicode_escape")
        if target == str(path) or target.startswith(str(path) + "/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", target], check=False)


def destroy(name: str) -> None:
    with lab_lock():
        state = load_state(name)
        hdir = host_dir(name)
        if state:
            stop(state)
            # A loop device outlives the host when a mount of it was left behind (autoclear
            # detaches the others when their last mount goes).
            for loop in host_loops(state):
                run(["losetup", "-d", loop], check=False)
        if hdir.exists():
            unmount_below(hdir)
            shutil.rmtree(hdir)
        remove_host_cgroups(name)
        run(["ip", "link", "del", f"vb-{name}"], check=False)
        remove_lab_network_if_unused()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("proxy", help="configure and start the apt proxy; print its URL")
    p = sub.add_parser("image", help="build the base image if needed; print its path")
    p.add_argument("--release", default=DEFAULT_RELEASE, choices=RELEASES)
    p = sub.add_parser("create", help="create and boot a host (idempotent); print JSON")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--release", default=DEFAULT_RELEASE, choices=RELEASES,
                   help=f"Debian release of the host (default {DEFAULT_RELEASE}; JAILHOST_LAB_RELEASE)")
    for cmd in ("destroy", "stop", "start", "wait", "info", "supervise"):
        p = sub.add_parser(cmd)
        p.add_argument("name")
    sub.add_parser("destroy-all", help="destroy every lab host")
    sub.add_parser("list", help="print every lab host as JSON")
    p = sub.add_parser("exec", help="run a command in a host's namespaces (no SSH)")
    p.add_argument("name")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.cmd == "proxy":
            print(ensure_proxy())
        elif args.cmd == "image":
            print(ensure_image(args.release))
        elif args.cmd == "create":
            print(json.dumps(public_state(create(args.name, args.timeout, args.release))))
        elif args.cmd == "destroy":
            destroy(args.name)
        elif args.cmd == "destroy-all":
            for state in all_states():
                destroy(state["name"])
            remove_lab_network_if_unused()
        elif args.cmd == "list":
            print(json.dumps([public_state(s) | {"running": pid_alive(s.get("supervisor_pid"))}
                              for s in all_states()], indent=2))
        else:
            state = load_state(args.name)
            if state is None:
                raise LabError(f"no lab host named {args.name}")
            if args.cmd == "stop":
                stop(state)
            elif args.cmd == "start":
                if not pid_alive(state.get("supervisor_pid")):
                    start_nspawn(state)
                state["boot_seconds"] = round(wait_ready(state), 2)
                save_state(args.name, state)
            elif args.cmd == "supervise":
                return supervise(args.name)
            elif args.cmd == "wait":
                wait_ready(state)
            elif args.cmd == "info":
                print(json.dumps(public_state(state) | {"running": pid_alive(state.get("supervisor_pid"))}))
            elif args.cmd == "exec":
                proc = nsenter(state, args.command, check=False)
                sys.stdout.write(proc.stdout)
                sys.stderr.write(proc.stderr)
                return proc.returncode
    except LabError as exc:
        print(f"labhost: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
