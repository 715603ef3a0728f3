#!/usr/bin/env python3
"""Render the documentation of every plugin of the collection with ansible-doc; fail on any warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPES = {"modules": "module", "filter": "filter", "connection": "connection", "lookup": "lookup"}


def plugins() -> list[tuple[str, str]]:
    found = []
    for folder, kind in TYPES.items():
        for path in sorted((ROOT / "plugins" / folder).glob("*.py")):
            if path.stem == "__init__":
                continue
            if kind == "filter":
                # A filter file may hold several filters: ask ansible-doc for each documented name.
                text = path.read_text()
                names = [line.split(":", 1)[1].strip() for line in text.splitlines()
                         if line.startswith("name:")]
                found += [(kind, f"jailhost.jails.{n}") for n in names]
            else:
                found.append((kind, f"jailhost.jails.{path.stem}"))
    return found


def main() -> int:
    bad = 0
    adoc = str(Path(sys.executable).parent / "ansible-doc")
    for kind, fqcn in plugins():
        proc = subprocess.run([adoc, "-t", kind, fqcn], capture_output=True, text=True)
        problems = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        if proc.returncode != 0 or problems or fqcn not in proc.stdout:
            bad += 1
            print(f"FAIL {kind} {fqcn}: rc={proc.returncode}\n" + "\n".join(problems))
        else:
            print(f"ok   {kind} {fqcn}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
