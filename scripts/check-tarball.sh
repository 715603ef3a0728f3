#!/usr/bin/env bash
# Build the collection tarball, install it into an empty collections path, and use it by FQCN from
# a playbook in a directory outside this repository, as a user's infrastructure repo would.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.venv/bin
mkdir -p build
"$bin/ansible-galaxy" collection build --force --output-path build . >/dev/null
tarball=$(ls -t build/jailhost-jails-*.tar.gz | head -1)
echo "built $tarball ($(du -h "$tarball" | cut -f1))"

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
