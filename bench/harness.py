"""Benchmark of the lab-host harness: base image build, host create (boot to SSH) and destroy.

    .venv/bin/python bench/harness.py [--runs 5] [--cold]

--cold also builds a base image from scratch into a temporary image directory (the apt proxy
stays warm, as on a machine that ran the tests before). Prints medians and min-max.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABHOST = Path(__file__).resolve().parent.parent / "molecule/shared/labhost.py"


def timed(cmd: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.monotonic() - started


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<34} median {statistics.median(values):6.2f} s   "
            f"min-max {min(values):.2f}-{max(values):.2f} s   n={len(values)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time a cold base-image build")
    args = parser.parse_args()
    py = sys.executable
    lines = [f"machine: {os.cpu_count()} cores, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}"]
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="jailhost-bench-images-")
        try:
            env = dict(os.environ, JAILHOST_LAB_IMAGES=tmp)
            lines.append(summary("base image build (cold, warm proxy)", [timed([py, str(LABHOST), "image"], env)]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    timed([py, str(LABHOST), "image"])  # warm cache
    create, destroy = [], []
    for i in range(args.runs):
        name = f"bench-h{i}"
        create.append(timed([py, str(LABHOST), "create", name]))
        destroy.append(timed([py, str(LABHOST), "destroy", name]))
    lines.append(summary("host create (copy, boot, SSH up)", create))
    lines.append(summary("host destroy", destroy))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
