"""The collection as a user gets it: the tarball built by ansible-galaxy, installed into an empty
collections path, used by FQCN only from a playbook in a directory outside the repository, against
the converged test host, in check mode and then for real (a backup into a directory of the test;
scripts/check-tarball.sh checks the same on the controller only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hostlib import load_vars, run_playbook

VARS = load_vars(__file__)
REPO = Path(__file__).resolve().parents[3]

PLAYBOOK = """\
- name: A user's playbook using only the installed collection, by FQCN
  hosts: jailhosts
  become: true
  gather_facts: false
  tasks:
    - name: List the jails with the collection's module
      jailhost.jails.sandbox_info:
      register: jails

    - name: Every jail runs confined (collection filter)
      ansible.builtin.assert:
        that:
          - jails.jails | jailhost.jails.json_query('[?state!=`running`].name') == []
          - jails.jails | jailhost.jails.json_query('[?!confined].name') == []

    - name: A role of the collection, into a directory of this test
      ansible.builtin.import_role:
        name: jailhost.jails.backup
      vars:
        backup_databases: [app]
        backup_dir: /var/tmp/jailhost-tarball-test
"""


def test_installed_tarball_runs_by_fqcn_outside_the_repository(host, tmp_path):
    bin_dir = Path(sys.executable).parent
    build = tmp_path / "build"
    subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(build),
                    str(REPO)], check=True, capture_output=True)
    (tarball,) = build.glob("jailhost-jails-*.tar.gz")
    collections = tmp_path / "collections"
    # --force: the working tree is also installed (.cache/collections) and must not count.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_COLLECTIONS_PATH"}
    subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "install", "--force", "-p", str(collections),
                    str(tarball)], check=True, capture_output=True, env=env)
    installed = collections / "ansible_collections" / "jailhost" / "jails"
    assert (installed / "roles" / "backup" / "meta" / "argument_specs.yml").exists()
    assert not (installed / "molecule").exists()

    user_dir = tmp_path / "infra"
    user_dir.mkdir()
    playbook = user_dir / "site.yml"
    playbook.write_text(PLAYBOOK)
    assert REPO not in playbook.parents

    host.run("rm -rf /var/tmp/jailhost-tarball-test")
    try:
        checked = run_playbook(host, playbook, tmp_path, extra_vars=VARS, collections_path=str(collections),
                               check=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "would back up app" in checked.stdout
        assert re.search(r"changed=0\s", checked.stdout), checked.stdout
        assert not host.file("/var/tmp/jailhost-tarball-test").exists

        result = run_playbook(host, playbook, tmp_path, extra_vars=VARS, collections_path=str(collections))
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"changed=[1-9]", result.stdout), result.stdout
        dumps = host.run("find /var/tmp/jailhost-tarball-test -name 'app.*' -size +0").stdout.split()
        assert dumps, host.run("find /var/tmp/jailhost-tarball-test").stdout
    finally:
        host.run("rm -rf /var/tmp/jailhost-tarball-test")
