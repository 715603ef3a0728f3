"""ansible-test sanity (the whole collection) and ansible-test units (tests/unit/) on a copy of the collection.

ansible-test only runs inside an ``ansible_collections/NAMESPACE/NAME`` tree: the collection's
files (those git knows, committed or not, minus ignored ones) are copied into a temporary
``ansible_collections/jailhost/jails`` and ansible-test runs there with ``--venv`` (no container
engine is needed). Sanity covers every file of the repository, not only what ships: the ignores of
shipped files are in ``tests/sanity/ignore-2.X.txt`` (in the tarball), those of the repository's
other files in ``tests/sanity/repository/ignore-2.X.txt`` (merged into the copy), each line with
its reason. Results are combined into one JUnit report (``--junit``) that `make test`
counts: one test case per sanity test, one per unit test.

Offline from Galaxy and GitHub, with PyPI reachable:

- ansible-test creates one virtual environment per sanity test and installs its pinned
  requirements from PyPI (``ansible_test/_data/requirements/sanity.*.txt``: exact versions per
  ansible-core release). It bootstraps pip in each with a ``get-pip`` script it downloads from
  ci-files.testing.ansible.com, which is not reachable here. This script puts a stand-in at the
  path ansible-test documents for a manually provided script: it installs the same pinned pip
  (``pip==24.2`` for ansible-core 2.19, passed as argument by ansible-test) from PyPI with
  ``ensurepip`` as the starting point.
- Those environments are cached under CACHE/<ansible-core version> (ansible-test keeps them under
  ``$HOME/.ansible/test``; HOME points there for the run), so only the first run installs
  anything (about 5 minutes); later runs take about a minute. A lock serialises runs that share
  the cache.
- The unit tests' own requirements and the versions of pytest and its plugins are pinned in
  ``tests/unit/requirements.txt`` and ``tests/unit/constraints.txt``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("JAILHOST_ANSIBLE_TEST_CACHE", "/var/cache/jailhost-lab"))
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Files never copied (build output, caches; tests/output is ansible-test's own output directory).
EXCLUDE_TOP = {".git", ".venv", ".cache", "build", "tests/output"}

GET_PIP_STAND_IN = '''\
"""Stand-in for ansible-test's get-pip bootstrap script (written by jailhost.jails
scripts/ansible-test.py; ci-files.testing.ansible.com is not reachable): pip from ensurepip, then
the exact pip version ansible-test asks for (its first argument, e.g. pip==24.2) from PyPI."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
'''


def collection_files() -> list[str]:
    """Files of the working tree: tracked and untracked-but-not-ignored ones."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() or p.is_symlink()]
    return [f for f in files
            if not any(f == top or f.startswith(top + "/") for top in EXCLUDE_TOP)
            and "__pycache__" not in f.split("/") and (ROOT / f).exists()]


def build_tree(work: Path) -> Path:
    """WORK/ansible_collections/jailhost/jails with the collection's files, and nothing else but
    ansible-test's delegation venv of an earlier run (tests/output/.tmp/delegation: reused)."""
    tree = work / "ansible_collections" / "jailhost" / "jails"
    keep = tree / "tests" / "output" / ".tmp" / "delegation"
    if tree.exists():
        for path in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path == keep or keep in path.parents or path in keep.parents:
                continue
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
    for rel in collection_files():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest, follow_symlinks=False)
    merge_repository_ignores(tree)
    return tree


def merge_repository_ignores(tree: Path) -> None:
    """tests/sanity/ignore-2.X.txt ships in the tarball and names only files that ship with it (an
    entry for a missing file is an error of ansible-test sanity run on the installed collection);
    the entries for this repository's other files (bench/, molecule/, scripts/, tests/integration/,
    tests/harness/) are in tests/sanity/repository/ignore-2.X.txt and are added here."""
    extra_dir = tree / "tests" / "sanity" / "repository"
    for extra in sorted(extra_dir.glob("ignore-*.txt")):
        target = tree / "tests" / "sanity" / extra.name
        lines = (target.read_text(encoding="utf-8").splitlines() if target.exists() else [])
        lines += extra.read_text(encoding="utf-8").splitlines()
        target.write_text("\n".join(sorted(line for line in lines if line.strip())) + "\n", encoding="utf-8")
    if extra_dir.exists():
        shutil.rmtree(extra_dir)


def core_version() -> str:
    out = subprocess.run([str(BIN / "ansible-test"), "--version"], check=True, capture_output=True, text=True)
    return out.stdout.split()[-1]


def prepare_home(work: Path) -> Path:
    """The HOME ansible-test runs with: its venv cache, and the pip bootstrap stand-in."""
    home = work / "home"
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    # ansible-test names the file after the pip version it pins (get_pip_24_2.py for 24.2).
    from ansible_test._internal.python_requirements import get_venv_packages  # pylint: disable=import-outside-toplevel

    pip_version = get_venv_packages(types.SimpleNamespace(version=PYTHON))["pip"]
    script = cache / f"get_pip_{pip_version.replace('.', '_')}.py"
    if not script.exists() or script.read_text() != GET_PIP_STAND_IN:
        script.write_text(GET_PIP_STAND_IN)
    return home


def combine_junit(tree: Path, dest: Path) -> tuple[int, int, int]:
    """One report from ansible-test's per-test JUnit files; returns (passed, failed, skipped)."""
    root = ET.Element("testsuites")
    counts = [0, 0, 0]
    for path in sorted((tree / "tests" / "output" / "junit").glob("*.xml")):
        parsed = ET.parse(path).getroot()
        for suite in ([parsed] if parsed.tag == "testsuite" else parsed.findall("testsuite")):
            root.append(suite)
            for case in suite.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    counts[1] += 1
                elif case.find("skipped") is not None:
                    counts[2] += 1
                else:
                    counts[0] += 1
    for suite in root.findall("testsuite"):
        cases = list(suite.iter("testcase"))
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(dest, encoding="unicode", xml_declaration=True)
    return tuple(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["sanity", "units"])
    parser.add_argument("--junit", type=Path, help="write the combined JUnit report here")
    args = parser.parse_args()

    # Kept short: the shebangs of scripts pip installs into the venvs under it are limited to 127
    # characters.
    work = CACHE / f"at-{core_version()}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        home = prepare_home(work)
        tree = build_tree(work)
        env = dict(os.environ, HOME=str(home), PATH=f"{BIN}:{os.environ.get('PATH', '')}",
                   ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # only the copy in the tree is the collection
        cmd = [str(BIN / "ansible-test"), args.command, "--venv", "--python", PYTHON, "--color", "no"]
        if args.command == "sanity":
            # The whole collection: plugins, roles' files, scripts, tests and docs (ignores with a
            # reason per line in tests/sanity/ignore-2.X.txt).
            cmd += ["--junit"]
        else:
            # ansible-test units writes its JUnit report itself; the whole tests/unit tree runs.
            cmd += ["tests/unit/"]
        print("ansible-test in", tree, ":", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=tree, env=env, stdin=subprocess.DEVNULL)
        passed, failed, skipped = combine_junit(tree, args.junit or tree / "tests" / "output" / "ansible-test.xml")
    print(f"ansible-test {args.command}: rc={rc}, {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or rc else 0


if __name__ == "__main__":
    sys.exit(main())
