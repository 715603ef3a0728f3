"""ansible-test sanity and units on the other supported ansible-core releases (`make compat`).

    python scripts/compat.py sanity|units [--junit FILE] [--core 2.20 [--core 2.21]]

meta/runtime.yml says ``requires_ansible: >=2.19.0``. The development venv (.venv, Python 3.11)
runs ansible-core 2.19, the newest release that installs on Python 3.11; `make test` runs sanity
and the unit tests there. ansible-core 2.20 and 2.21 (the newest on PyPI, 2026-12) need Python
3.12 or later: this script builds a venv per release on the newest Python the machine has for it
(pyenv's, or python3.X on the PATH), cached under CACHE/compat/, and runs scripts/ansible-test.py
in it with the same arguments, so the same sanity tests (with tests/sanity/ignore-2.X.txt) and
the same unit tests run on each release. A missing interpreter is an error, not a skip.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("JAILHOST_ANSIBLE_TEST_CACHE", "/var/cache/jailhost-lab")) / "compat"
# ansible-core release -> Pythons it supports on the controller, newest first.
RELEASES = {"2.20": ("3.14", "3.13", "3.12"), "2.21": ("3.14", "3.13", "3.12")}


def find_python(versions: tuple[str, ...]) -> str:
    for version in versions:
        found = shutil.which(f"python{version}")
        candidates = ([found] if found else []) + sorted(
            glob.glob(f"/root/.pyenv/versions/{version}*/bin/python{version}"), reverse=True)
        for candidate in candidates:
            if subprocess.run([candidate, "-c", "import venv, ensurepip"], capture_output=True,
                              check=False).returncode == 0:
                return candidate
    raise SystemExit(f"compat: no Python {' or '.join(versions)} found (pyenv or python3.X on the PATH)")


def ensure_venv(core: str) -> Path:
    python = find_python(RELEASES[core])
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    key = hashlib.sha256(f"{core}\n{python}\n{requirements}".encode()).hexdigest()[:12]
    venv = CACHE / f"ansible-core-{core}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            print(f"compat: building {venv.name} ({python})", flush=True)
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin/pip"), "install", "-q", f"ansible-core>={core},<{next_minor(core)}",
                            "-r", str(ROOT / "requirements.txt"), "pytest"], check=True)
            (venv / ".complete").write_text(python + "\n", encoding="utf-8")
            for old in CACHE.glob(f"ansible-core-{core}-*"):
                if old != venv:
                    shutil.rmtree(old, ignore_errors=True)
    return venv


def next_minor(core: str) -> str:
    major, minor = core.split(".")
    return f"{major}.{int(minor) + 1}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["sanity", "units"])
    parser.add_argument("--junit")
    parser.add_argument("--core", choices=sorted(RELEASES), action="append")
    args = parser.parse_args()
    rc = 0
    cores = args.core or sorted(RELEASES)
    if args.junit and len(cores) > 1:
        parser.error("--junit takes one --core (one report per release)")
    for core in cores:
        venv = ensure_venv(core)
        cmd = [str(venv / "bin/python"), str(ROOT / "scripts/ansible-test.py"), args.command]
        if args.junit:
            cmd.append(f"--junit={args.junit}")
        print(f"compat: ansible-core {core}: {' '.join(cmd)}", flush=True)
        rc |= subprocess.call(cmd, cwd=ROOT)
    return rc


if __name__ == "__main__":
    sys.exit(main())
