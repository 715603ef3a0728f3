"""Render the documentation of every plugin of the collection with ansible-doc; fail on any warning.
Check the variable table of every role README against its meta/argument_specs.yml.

Each roles/<role>/README.md holds, between the markers BEGIN and END below, a table generated
from meta/argument_specs.yml (every entry point, every option and sub-option, with type, default
and description; a default given as a template in defaults/main.yml is shown as written there).
The check fails when a table differs from what the argument specs give (run
``scripts/check-docs.py --write`` to regenerate), when a variable of defaults/main.yml has no
argument spec, or an argument spec of the main entry point no default in defaults/main.yml.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

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


BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml by scripts/check-docs.py --write -->"
END = "<!-- END variables -->"
MARKUP = re.compile(r"\b([CIVOMRB])\(([^()]*)\)")


def inline(text) -> str:
    """Ansible doc markup to Markdown, one line, pipes escaped for a table cell."""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = MARKUP.sub(lambda m: f"*{m.group(2)}*" if m.group(1) == "B" else f"`{m.group(2)}`", str(text))
    return " ".join(text.split()).replace("|", "\\|")


def shown_default(option: dict, name: str, defaults: dict) -> str:
    if "default" in option:
        value = option["default"]
    elif name in defaults:
        value = defaults[name]
    else:
        return "required" if option.get("required") else ""
    if isinstance(value, str) and value == "":
        return '`""`'
    if isinstance(value, str):
        rendered = value
    else:
        rendered = yaml.safe_dump(value, default_flow_style=True, width=10000).strip()
        rendered = rendered.removesuffix("...").strip()
    if len(rendered) > 80:
        rendered = rendered[:77] + "..."
    return "`" + rendered.replace("|", "\\|") + "`"


def option_rows(options: dict, defaults: dict, prefix: str = "") -> list[str]:
    rows = []
    for name, option in options.items():
        kind = option.get("type", "str")
        if kind == "list" and option.get("elements"):
            kind = f"list of {option['elements']}"
        full = f"{prefix}{name}"
        rows.append(f"| `{full}` | {kind} | {shown_default(option, name if not prefix else '', defaults)} | "
                    f"{inline(option.get('description', ''))} |")
        if option.get("options"):
            sub = f"{full}[]." if option.get("type") == "list" else f"{full}."
            rows += option_rows(option["options"], {}, sub)
    return rows


def variables_table(role: Path) -> str:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) or {} if defaults_file.exists() else {}
    parts = [BEGIN]
    for entry, spec in specs.items():
        if len(specs) > 1:
            how = "the role" if entry == "main" else f"`tasks_from: {entry}`"
            parts.append(f"\nEntry point `{entry}` ({how}): {inline(spec.get('short_description', ''))}\n")
        else:
            parts.append("")
        parts.append("| variable | type | default | description |\n| --- | --- | --- | --- |")
        parts.append("\n".join(option_rows(spec.get("options", {}), defaults)))
    parts.append(END)
    return "\n".join(parts)


def check_roles(write: bool) -> int:
    bad = 0
    for role in sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists()):
        readme = role / "README.md"
        text = readme.read_text()
        table = variables_table(role)
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        declared = set()
        for spec in specs.values():
            declared |= set(spec.get("options", {}))
        defaults_file = role / "defaults" / "main.yml"
        defaults = set(yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else set()
        problems = []
        if defaults - declared:
            problems.append(f"variables of defaults/main.yml without argument spec: {sorted(defaults - declared)}")
        if declared - defaults:
            problems.append(f"argument specs without a value in defaults/main.yml: {sorted(declared - defaults)}")
        if BEGIN not in text or END not in text:
            problems.append(f"README.md has no generated variable table ({BEGIN} ... {END})")
        else:
            current = text[text.index(BEGIN):text.index(END) + len(END)]
            if current != table:
                if write:
                    readme.write_text(text.replace(current, table))
                    print(f"wrote {readme.relative_to(ROOT)}")
                else:
                    problems.append("README.md variable table differs from meta/argument_specs.yml "
                                    "(run scripts/check-docs.py --write)")
        if problems:
            bad += 1
            print(f"FAIL role {role.name}: " + "; ".join(problems))
        else:
            print(f"ok   role {role.name}: README variable table matches meta/argument_specs.yml")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate the role README variable tables")
    args = parser.parse_args()
    bad = check_roles(args.write)
    adoc = str(Path(sys.executable).parent / "ansible-doc")
    for kind, fqcn in plugins():
        # Without colours: the plugin's name is looked for in the text.
        proc = subprocess.run([adoc, "-t", kind, fqcn], capture_output=True, text=True, check=False,
                              env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
                                   **os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
        problems = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        if proc.returncode != 0 or problems or fqcn not in proc.stdout:
            bad += 1
            print(f"FAIL {kind} {fqcn}: rc={proc.returncode}\n" + "\n".join(problems))
        else:
            print(f"ok   {kind} {fqcn}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
