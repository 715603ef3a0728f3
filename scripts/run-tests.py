"""`make test`: every check of the collection, one stage after another, with a summary.

Stages: yamllint, ansible-lint (production profile), the collection tarball (built, installed and
used by FQCN outside the repository), ansible-doc of every plugin and the role variable tables,
antsibull-docs lint-collection-docs, the changelog (fragments lint, CHANGELOG.md generated),
unit tests (pytest), ansible-test sanity (every file) and units in an ansible_collections tree
(scripts/ansible-test.py), then `molecule test` of each scenario (the pairs of SIDE_BY_SIDE at the
same time). Every stage runs even if an earlier one failed, so one run shows every failure. Test counts come from the JUnit reports of pytest and
of the testinfra verifiers; a stage that fails outside its tests (lint, idempotence, converge)
counts as one failed test. Prints each stage's duration and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def junit_counts(path: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a JUnit XML report; zeros if it does not exist."""
    if not path.exists():
        return 0, 0, 0
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def junit_failures(path: Path) -> list[str]:
    """One line per failed or erroring test of a JUnit XML report: its id and the first line of
    its message (CI shows the end of the log: the failures must be named there, not only counted)."""
    if not path.exists():
        return []
    lines = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            problem = case.find(kind)
            if problem is not None:
                message = (problem.get("message") or problem.text or "").strip().splitlines()
                lines.append(f"{kind.upper():<7} {case.get('classname')}::{case.get('name')}: "
                             f"{message[0][:300] if message else ''}")
    return lines


class Stage:
    def __init__(self, name: str, cmd: list[str], junit: Path | None = None):
        self.name, self.cmd, self.junit = name, cmd, junit
        self.rc = None
        self.seconds = 0.0
        self.counts = (0, 0, 0)

    def run(self, env: dict, log: Path | None = None) -> None:
        """Run the stage; with LOG, its output goes to that file and is printed when it ends
        (stages that run side by side do not interleave their lines)."""
        header = f"\n===== {self.name}: {' '.join(self.cmd)}"
        if log is None:
            print(header, flush=True)
        if self.junit and self.junit.exists():
            self.junit.unlink()
        started = time.monotonic()
        if log is None:
            self.rc = subprocess.call(self.cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        else:
            with open(log, "w", encoding="utf-8") as out:
                self.rc = subprocess.call(self.cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT)
            with PRINT_LOCK:
                print(header + " (side by side; its output follows)", flush=True)
                sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
        self.seconds = time.monotonic() - started
        passed, failed, skipped = junit_counts(self.junit) if self.junit else (0, 0, 0)
        if self.rc == 0 and not self.junit:
            passed = 1
        if self.rc != 0 and failed == 0:
            failed = 1  # the stage failed outside its test cases (lint, converge, idempotence...)
        if self.rc == 0 and failed:
            self.rc = 1
        self.counts = (passed, failed, skipped)
        status = "PASSED" if self.rc == 0 else "FAILED"
        print(f"===== {self.name}: {status} in {self.seconds:.0f} s", flush=True)


class SideBySide:
    """Stages run at the same time (each on its own lab hosts, each in its own cgroups), their
    output printed as each ends. Used for scenarios that load the 2 cores lightly enough together
    to keep their timings (make test stays within its hour): docs/testing.md."""

    def __init__(self, stages: list[Stage], reports: Path):
        self.stages, self.reports = stages, reports

    def run(self, env: dict) -> None:
        threads = [threading.Thread(target=stage.run, args=(env, self.reports / f"{stage.name.replace(' ', '-')}.log"))
                   for stage in self.stages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


# Scenarios that run side by side when both are selected: the Debian 12 ones after the long
# Debian 13 `default` (bookworm jails and the 12 -> 13 migration do not share host names).
SIDE_BY_SIDE = (("jails", "upgrade"),)
PRINT_LOCK = threading.Lock()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="", help="Molecule scenarios (space separated)")
    args = parser.parse_args()

    reports = Path(tempfile.mkdtemp(prefix="jailhost-test-"))
    env = dict(os.environ, MOLECULE_JUNIT_DIR=str(reports))
    py = sys.executable
    venv_bin = Path(py).parent
    stages = [
        Stage("yamllint", [str(venv_bin / "yamllint"), "-s", "."]),
        # ansible-lint puts $ANSIBLE_HOME/collections (~/.ansible/collections) before
        # ANSIBLE_COLLECTIONS_PATH: a copy of jailhost.jails installed there would be linted
        # instead of this tree. An ANSIBLE_HOME of our own keeps it out. ansible-lint installs this
        # tree's collection into .ansible/collections itself (.ansible-lint: not offline); the JSON
        # schemas stay those of the pinned ansible-lint (no download).
        Stage("ansible-lint", ["env", f"ANSIBLE_HOME={ROOT / '.cache' / 'ansible-home'}",
                               "ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1",
                               str(venv_bin / "ansible-lint"), "--profile", "production"]),
        Stage("collection tarball", ["bash", "scripts/check-tarball.sh"]),
        Stage("ansible-doc", [py, str(ROOT / "scripts/check-docs.py")]),
        Stage("plugin docs lint", [py, str(ROOT / "scripts/lint-collection-docs.py")]),
        Stage("changelog", [py, str(ROOT / "scripts/changelog.py")]),
        Stage("unit tests", [py, "-m", "pytest", "-q", "tests/unit", f"--junitxml={reports / 'unit.xml'}"],
              reports / "unit.xml"),
        Stage("ansible-test sanity", [py, str(ROOT / "scripts/ansible-test.py"), "sanity",
                                      f"--junit={reports / 'ansible-test-sanity.xml'}"],
              reports / "ansible-test-sanity.xml"),
        Stage("ansible-test units", [py, str(ROOT / "scripts/ansible-test.py"), "units",
                                     f"--junit={reports / 'ansible-test-units.xml'}"],
              reports / "ansible-test-units.xml"),
        # The other supported ansible-core releases (scripts/compat.py: Python 3.12+).
        *[Stage(f"ansible-core {core} {what}", [py, str(ROOT / "scripts/compat.py"), what, "--core", core,
                                                f"--junit={reports / f'compat-{core}-{what}.xml'}"],
                reports / f"compat-{core}-{what}.xml")
          for core in ("2.20", "2.21") for what in ("sanity", "units")],
    ]
    scenarios = args.scenarios.split()
    molecule = {scenario: Stage(f"molecule {scenario}", [str(venv_bin / "molecule"), "test", "-s", scenario],
                                reports / f"molecule-{scenario}.xml") for scenario in scenarios}
    # What runs, in order: the stages above one by one, then each scenario, side by side with its
    # partner of SIDE_BY_SIDE when both are selected (at the first one's place).
    steps: list = list(stages)
    grouped: set = set()
    for scenario in scenarios:
        if scenario in grouped:
            continue
        group = next((g for g in SIDE_BY_SIDE if scenario in g and all(n in scenarios for n in g)), (scenario,))
        grouped.update(group)
        stages.extend(molecule[name] for name in group)
        steps.append(SideBySide([molecule[name] for name in group], reports) if len(group) > 1 else molecule[scenario])
    if args.scenarios.split():
        # After the scenarios: nothing of theirs is left on the machine, and the harness's own
        # create/destroy are idempotent (tests/harness).
        listed = subprocess.run([py, str(ROOT / "molecule/shared/labhost.py"), "list"], capture_output=True,
                                text=True, check=False).stdout
        env["JAILHOST_LAB_HOSTS_BEFORE"] = ",".join(h["instance"] for h in json.loads(listed or "[]"))
        harness = Stage("harness", [py, "-m", "pytest", "-q", "tests/harness",
                                    f"--junitxml={reports / 'harness.xml'}"], reports / "harness.xml")
        stages.append(harness)
        steps.append(harness)

    started = time.monotonic()
    for step in steps:
        step.run(env)

    print("\n===== summary " + "=" * 56)
    print(f"{'stage':<28} {'result':<8} {'passed':>6} {'failed':>6} {'skipped':>7} {'seconds':>8}")
    for s in stages:
        print(f"{s.name:<28} {'ok' if s.rc == 0 else 'FAILED':<8} {s.counts[0]:>6} {s.counts[1]:>6} "
              f"{s.counts[2]:>7} {s.seconds:>8.0f}")
    passed = sum(s.counts[0] for s in stages)
    failed = sum(s.counts[1] for s in stages)
    skipped = sum(s.counts[2] for s in stages)
    for s in stages:
        problems = junit_failures(s.junit) if s.junit else []
        if problems:
            print(f"\n{s.name}:")
            print("\n".join(problems))
    print(f"total time {time.monotonic() - started:.0f} s")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or any(s.rc != 0 for s in stages) else 0


if __name__ == "__main__":
    sys.exit(main())
