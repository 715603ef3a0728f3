#!/usr/bin/env bash
# Build the collection tarball, install it into an empty collections path, and use it by FQCN from
# a playbook in a directory outside this repository, as a user's infrastructure repo would.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
mkdir -p build
tarball=$("$bin/ansible-galaxy" collection build --force --output-path build . | sed -n 's/^Created collection for .* at //p')
echo "built $tarball ($(du -h "$tarball" | cut -f1))"

# What the tarball holds, listed: only files of these shapes (galaxy.yml's `manifest:` is the
# allow-list of the build; this is a second, independent one), nothing under a dot folder, a venv
# or __pycache__, every file git knows in the shipped folders, and no link of a shipped Markdown
# file to a path that is not in the tarball (bench/, molecule/, tests/integration/ stay out).
"$bin/python" - "$tarball" <<'PY'
import re
import subprocess
import sys
import tarfile
from pathlib import PurePosixPath

ALLOWED = [re.compile(p) for p in (
    r"(MANIFEST\.json|FILES\.json|README\.md|CHANGELOG\.md|SECURITY\.md|COPYING|requirements\.txt|bindep\.txt)",
    r"meta/(runtime|execution-environment)\.yml",
    r"docs/([a-z0-9_-]+/)?[A-Za-z0-9_.-]+\.md",
    r"playbooks/[^/]+\.yml",
    r"inventory/example/((group|host)_vars/)?[^/]+\.yml",
    r"plugins/(modules|module_utils|filter|test|doc_fragments)/[^/]+\.py",
    r"roles/[a-z0-9_]+/(README\.md|(defaults|vars|tasks|handlers)/[^/]+\.yml|meta/(main|argument_specs)\.yml"
    r"|templates/.+\.j2|files/.+)",
    r"changelogs/(changelog|config)\.yaml",
    r"tests/unit/.+\.(py|txt)",
    r"tests/sanity/ignore-2\.[0-9]+\.txt",
)]
SHIPPED_DIRS = ("plugins/", "roles/", "playbooks/", "docs/", "meta/", "inventory/example/", "tests/unit/",
                "tests/sanity/", "changelogs/")
ESSENTIAL = {"MANIFEST.json", "FILES.json", "README.md", "COPYING", "meta/runtime.yml", "requirements.txt", "bindep.txt",
             "meta/execution-environment.yml"}

with tarfile.open(sys.argv[1]) as tar:
    members = tar.getmembers()
files = {m.name.removeprefix("./") for m in members if not m.isdir()}
problems = []
for name in sorted(files):
    parts = PurePosixPath(name).parts
    if any(p.startswith(".") or p in ("__pycache__", "venv") for p in parts) or name.endswith((".pyc", "~")):
        problems.append(f"must not ship: {name}")
    elif not any(p.fullmatch(name) for p in ALLOWED):
        problems.append(f"not in the allow-list: {name}")
try:
    tracked = subprocess.run(["git", "ls-files"], check=True, capture_output=True, text=True).stdout.split()
except (OSError, subprocess.CalledProcessError):
    tracked = []
wanted = ESSENTIAL | {f for f in tracked if f.startswith(SHIPPED_DIRS) and any(p.fullmatch(f) for p in ALLOWED)}
problems += [f"missing: {name}" for name in sorted(wanted - files)]
dirs = {str(PurePosixPath(f).parent) for f in files} | {m.name.removeprefix("./") for m in members if m.isdir()}
for name in sorted(f for f in files if f.endswith(".md")):
    with tarfile.open(sys.argv[1]) as tar:
        text = tar.extractfile(name).read().decode()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        target = re.sub(r"\\(.)", r"\1", target)  # markdown escapes (CHANGELOG.md: docs/security\.md)
        resolved = PurePosixPath(name).parent / target
        parts = []
        for part in resolved.parts:
            if part == "..":
                parts = parts[:-1]
            elif part != ".":
                parts.append(part)
        path = "/".join(parts).rstrip("/")
        if path not in files and path not in dirs:
            problems.append(f"{name} links to {target}, which is not in the tarball")
for problem in problems:
    print("check-tarball:", problem)
print(f"tarball lists {len(files)} files: " + ("FAILED" if problems else "all allowed, none missing, every link inside"))
sys.exit(1 if problems else 0)
PY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the installed copy is visible: no working tree, no other installed copy.
export ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_PYTHON_INTERPRETER=$bin/python
"$bin/ansible-galaxy" collection install --force -p "$work/collections" "$tarball" >/dev/null
test -f "$work/collections/ansible_collections/jailhost/jails/roles/bridge/meta/argument_specs.yml"
test ! -e "$work/collections/ansible_collections/jailhost/jails/molecule"

cd "$work"
cat > site.yml <<'YAML'
- name: A user's playbook using the installed collection by FQCN
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Compute a jail firewall with the collection's filter
      ansible.builtin.set_fact:
        plan: "{{ {'name': 'br0', 'address': '10.42.0.1/24',
                   'published_ports': [{'public_port': 80, 'jail_ip': '10.42.0.10'}]}
                  | jailhost.jails.bridge_firewall }}"
    - name: Check the result
      ansible.builtin.assert:
        that: plan.chains | selectattr('name', 'equalto', 'JAILHOST-DNAT') | map(attribute='rules') | first
              == ['-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.42.0.10:80']
YAML
# Only syntax-checked here: running it would configure this machine. The same tarball is run against
# a converged test host by tests/integration/day2/test_day2_tarball.py (Molecule scenario default).
cat > role.yml <<'YAML'
- name: A play including the role and the module by FQCN
  hosts: jailhosts
  connection: local
  gather_facts: false
  roles:
    - role: jailhost.jails.bridge
  tasks:
    - name: Use the module by FQCN
      jailhost.jails.iptables_chains:
        chains: []
YAML
"$bin/ansible-playbook" -i localhost, site.yml | tail -3
"$bin/ansible-playbook" -i localhost, role.yml --syntax-check >/dev/null
"$bin/ansible-doc" jailhost.jails.iptables_chains | head -1
"$bin/ansible-doc" -t role jailhost.jails.bridge | head -1
echo "tarball OK: installs, and its roles, modules and filters resolve by FQCN outside the repository"
