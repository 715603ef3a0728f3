"""`make release`: check and build a release of jailhost.jails, then tag it.

Before: bump ``version`` in galaxy.yml, run ``scripts/changelog.py --release`` (antsibull-changelog:
the fragments become this version in changelogs/changelog.yaml, CHANGELOG.md regenerated), and
commit (CONTRIBUTING.md, "Release procedure"). This script then checks, in order, and stops at the first
problem:

1. the version is X.Y.Z and greater than the newest ``vX.Y.Z`` tag, whose tag does not exist yet;
2. changelogs/changelog.yaml has the release X.Y.Z, no fragment is left, and CHANGELOG.md is
   the one antsibull-changelog generates (scripts/changelog.py);
3. the working tree has no uncommitted change (the tarball is built from the commit);
4. ``make test``'s stages pass (scripts/run-tests.py, every Molecule scenario unless --scenarios);
5. the tarball builds and holds exactly what it should (scripts/check-tarball.sh);

and then writes build/jailhost-jails-X.Y.Z.tar.gz.sha256 and creates the annotated tag vX.Y.Z.
Pushing the tag and publishing the tarball stay manual. ``--dry-run`` checks and builds without
tagging, and only warns about uncommitted changes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def parse(version: str) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(part) for part in match.groups()) if match else None


def fail(message: str) -> int:
    print(f"release: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", help="Molecule scenarios for the tests (default: every one)")
    parser.add_argument("--dry-run", action="store_true", help="check and build, do not tag")
    args = parser.parse_args()

    version = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    current = parse(str(version))
    if current is None:
        return fail(f"galaxy.yml version {version!r} is not X.Y.Z")
    tags = [t for t in git("tag", "--list", "v*").split() if parse(t[1:])]
    newest = max(tags, key=lambda t: parse(t[1:]), default=None)
    if f"v{version}" in tags:
        return fail(f"v{version} is already tagged: bump version in galaxy.yml")
    if newest and current <= parse(newest[1:]):
        return fail(f"version {version} is not greater than the newest release {newest}")
    print(f"release: version {version} (previous: {newest or 'none'})")

    releases = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text(encoding="utf-8")).get("releases")
    if str(version) not in (releases or {}):
        return fail(f"changelogs/changelog.yaml has no release {version}: run scripts/changelog.py --release")
    left = sorted(p.name for p in (ROOT / "changelogs" / "fragments").glob("*.y*ml"))
    if left:
        return fail(f"fragments not released: {left}: run scripts/changelog.py --release")
    if subprocess.call([sys.executable, str(ROOT / "scripts" / "changelog.py")], cwd=ROOT) != 0:
        return fail("CHANGELOG.md is not the generated one")
    print("release: changelogs/changelog.yaml has this version, CHANGELOG.md is generated from it")

    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    if dirty:
        if not args.dry_run:
            return fail("uncommitted changes: commit the release first\n" + dirty)
        print("release: warning, uncommitted changes (dry run):\n" + dirty)

    scenarios = args.scenarios
    if scenarios is None:
        scenarios = " ".join(sorted(p.name for p in (ROOT / "molecule").iterdir()
                                    if p.is_dir() and p.name != "shared"))
    if subprocess.call([sys.executable, str(ROOT / "scripts" / "run-tests.py"), "--scenarios", scenarios],
                       cwd=ROOT) != 0:
        return fail("the tests failed")
    if subprocess.call(["bash", str(ROOT / "scripts" / "check-tarball.sh")], cwd=ROOT) != 0:
        return fail("the tarball check failed")
    tarball = ROOT / "build" / f"jailhost-jails-{version}.tar.gz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    Path(f"{tarball}.sha256").write_text(f"{digest}  {tarball.name}\n", encoding="utf-8")
    print(f"release: {tarball.relative_to(ROOT)} sha256 {digest}")

    if args.dry_run:
        print(f"release: dry run, v{version} not tagged")
        return 0
    git("tag", "-a", f"v{version}", "-m", f"jailhost.jails {version}")
    print(f"release: tagged v{version}; now: git push origin v{version}, and publish the tarball "
          f"(ansible-galaxy collection publish {tarball.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
