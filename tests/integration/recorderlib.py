"""The recorder of the control-plane suites (tests/integration/controlplane and the multi-tenant
suite's test_multitenant_controlplane.py): a hostile jail's trojan that reports how confined
every process started from the jail root is.

``recorder.c`` is built on the controller and planted in a jail as ``/etc/ld.so.preload``, the
way a jail's root would plant it: the jail's dynamic loader runs it in every dynamically linked
program started from that root, so it stands for a trojan in place of any program the collection
runs there. Each process appends one line (uid, effective and bounding capabilities,
no_new_privs, seccomp mode, mount namespace, a tag from JAILHOST_CP_TAG, the program) to
``/var/tmp/jailhost-cp/log`` in the jail. An apt hook (``DPkg::Pre-Invoke`` and
``APT::Update::Pre-Invoke``) is planted beside it.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOG = "var/tmp/jailhost-cp/log"
LIB = "usr/local/lib/jailhost-cp-recorder.so"
HOOK = "etc/apt/apt.conf.d/00jailhost-cp"
# Capabilities that leave a confined root: sys_chroot 18, sys_ptrace 19, sys_admin 21,
# dac_read_search 2, sys_module 16.
ESCAPE_CAPS = {"dac_read_search": 2, "sys_module": 16, "sys_chroot": 18, "sys_ptrace": 19, "sys_admin": 21}
RECORD_RE = re.compile(r"uid=(?P<uid>-?\d+) eff=(?P<eff>[0-9a-f]+) bnd=(?P<bnd>[0-9a-f]+) nnp=(?P<nnp>-?\d+) "
                       r"seccomp=(?P<seccomp>-?\d+) mnt=(?P<mnt>\S+) tag=(?P<tag>\S+) exe=(?P<exe>.*)")
# The host's /etc and /usr, minus what the operations legitimately touch there (nothing today).
CHECKSUM = ("find /etc /usr -xdev -type f -not -path '/etc/jailhost/*' -print0 2>/dev/null "
            "| sort -z | xargs -0 sha256sum")


def build(directory: Path) -> str:
    """Compile recorder.c into DIRECTORY; the library, base64-encoded for planting."""
    library = directory / "recorder.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(HERE / "recorder.c")], check=True)
    return base64.b64encode(library.read_bytes()).decode()


def plant(host, root: str, encoded: str) -> None:
    """The recorder as the jail's /etc/ld.so.preload, its log, and the apt hook, in ROOT."""
    host.run_expect([0], f"mkdir -p {root}/usr/local/lib && echo {encoded} | base64 -d > {root}/{LIB} "
                         f"&& chmod 0755 {root}/{LIB} && rm -rf {root}/var/tmp/jailhost-cp "
                         f"&& install -d -m 1777 {root}/var/tmp/jailhost-cp && install -m 0666 /dev/null {root}/{LOG}")
    host.run_expect([0], f"printf '%s\\n' 'DPkg::Pre-Invoke {{\"/bin/true\";}};' "
                         f"'APT::Update::Pre-Invoke {{\"/bin/true\";}};' > {root}/{HOOK}")
    host.run_expect([0], f"echo /{LIB} > {root}/etc/ld.so.preload")


def unplant(host, root: str) -> None:
    host.run(f"rm -f {root}/etc/ld.so.preload {root}/{LIB} {root}/{HOOK}; rm -rf {root}/var/tmp/jailhost-cp")


def records(host, roots: dict) -> list[dict]:
    """Every record of the jails ROOTS (name -> root), in order per jail, with its jail's name."""
    out = []
    for name, root in roots.items():
        text = host.run(f"cat {root}/{LOG} 2>/dev/null").stdout
        for line in text.splitlines():
            match = RECORD_RE.match(line)
            if match:
                out.append({"jail": name, **match.groupdict()})
    return out


def escaping(record: dict) -> list[str]:
    """What makes a recorded process one with host privileges (empty: confined)."""
    problems = []
    eff, bnd = int(record["eff"], 16), int(record["bnd"], 16)
    for cap, bit in ESCAPE_CAPS.items():
        if eff & (1 << bit):
            problems.append(f"effective {cap}")
        if bnd & (1 << bit):
            problems.append(f"bounding {cap}")
    if record["nnp"] != "1":
        problems.append("no_new_privs off")
    if record["seccomp"] != "2":
        problems.append("no seccomp filter")
    return problems


def checksums(host) -> dict:
    """sha256 of every file of the host's /etc and /usr: path -> digest."""
    return dict(reversed(line.split(None, 1)) for line in host.check_output(CHECKSUM).splitlines())


def changed_files(before: dict, after: dict) -> list[str]:
    return sorted(path for path in set(after) | set(before) if after.get(path) != before.get(path))
