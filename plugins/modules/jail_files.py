#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jail_files
short_description: Write a set of files, directories and links into a jail root filesystem as one change, test it, and roll it back if the test fails
version_added: 0.1.0
description:
  - Makes the files, directories and symbolic links of O(files) exist below a jail root
    filesystem (or removes them), in one task, comparing each with what is there first. A run with
    nothing to change writes nothing and runs no command.
  - When something changed, the commands of O(validate) run (by default in the jail root,
    confined, e.g. C(apache2 -t)). If one fails, every change of this task is undone (files get
    their previous content, mode and owner back; created files, links and directories are removed)
    and the task fails with the command's output. A daemon that reads its configuration only at a
    reload keeps running with the previous one.
  - The jail is treated as hostile, its root user included. Paths are resolved by the kernel from
    a descriptor of the jail root (C(openat2) with C(RESOLVE_IN_ROOT) and C(RESOLVE_NO_SYMLINKS)),
    and every change is made relative to a descriptor of the parent directory. A symbolic link
    before the last component is refused, also one planted while the task runs, so that a link in
    the jail cannot redirect a write to the host. Modes and owners are set through a descriptor
    opened with C(O_NOFOLLOW). Files are replaced by renaming a temporary file of the same
    directory over them.
  - Owner and group names are looked up in the jail's own C(/etc/passwd) and C(/etc/group), read
    and parsed by the module (no name service module of the jail is loaded), not in the host's.
  - The O(validate) commands of the jail never run with the host's privileges. Each runs in its
    own mount, PID, IPC, UTS, cgroup and network namespaces whose root is the jail root
    (C(pivot_root), the host's tree detached), with a private C(/dev), as O(validate[].user)
    without any capability, with C(no_new_privs) and a seccomp filter (mount, namespaces,
    ptrace, module loading, io_uring... denied), all set before the first file of the jail
    executes. It has no network, and C(/proc) only when it runs as another user than root.
  - The jailhost.jails.apache role writes an Apache configuration with it, in one task per jail.
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  diff_mode:
    details:
      - One diff per changed path, with the type, mode, owner and group and the content (or the link
        target). The content of O(files[].secret_content) is never shown.
requirements:
  - A Linux host (kernel 5.6 or later for C(openat2); x86_64 or aarch64), where the module runs
    as root (C(become=true))
options:
  root:
    description:
      - The jail root filesystem, an absolute path to a directory owned by root that is not the
        host's C(/). It and every directory above it must be owned by root and writable by root
        only.
    type: path
    required: true
  files:
    description:
      - What must be below O(root). Each path appears once.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Absolute path inside the jail, without C(.), C(..) or empty components.
          - Missing parent directories are created (owner root, mode 0755).
        type: str
        required: true
      state:
        description:
          - V(file) writes O(files[].content) (or O(files[].secret_content)).
          - V(directory) creates a directory (an existing one keeps its content).
          - V(link) makes a symbolic link to O(files[].src).
          - V(absent) removes a file or link; a directory is refused.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The text of a file (UTF-8).
        type: str
      secret_content:
        description:
          - The text of a file that must not be shown, such as a private key. It is never logged,
            and diffs show C(content hidden) instead.
        type: str
      src:
        description:
          - Target of a link, relative to the link's directory (as C(a2enmod) makes them) or an
            absolute path inside the jail.
          - The target must exist in the jail (links are followed inside the jail only), unless
            O(files[].optional=true).
        type: str
      optional:
        description:
          - For a link, do nothing (neither create nor remove it) when its target does not exist in
            the jail. Without it, a missing target fails the task before any change.
        type: bool
        default: false
      owner:
        description: User name in the jail's C(/etc/passwd), or a numeric uid. Ignored for links.
        type: str
        default: root
      group:
        description: Group name in the jail's C(/etc/group), or a numeric gid. Ignored for links.
        type: str
        default: root
      mode:
        description:
          - Octal permissions as a string (V('0644')). Ignored for links.
          - Defaults to V('0644') for files and V('0755') for directories.
        type: str
  purge:
    description:
      - Directories in which the files and links matching the patterns that no O(files) entry
        declares are removed (e.g. the sites that are not configured any more). Subdirectories are
        never removed.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute directory path inside the jail. A missing directory is skipped.
        type: str
        required: true
      patterns:
        description: Shell patterns (C(fnmatch)) of the names to remove.
        type: list
        elements: str
        required: true
  validate:
    description:
      - Commands run, in order, after the files changed and before the task ends. The first that
        exits non-zero undoes every change of the task and fails it.
      - They do not run when nothing changed, nor in check mode.
    type: list
    elements: dict
    default: []
    suboptions:
      argv:
        description: The command and its arguments (no shell).
        type: list
        elements: str
        required: true
      chroot:
        description:
          - Run the command in the jail root, confined (see the description); the program and its
            arguments name paths of the jail.
          - With V(false) it runs on the host as a host program, with the module's privileges (its
            arguments then name host paths); never give it a program or a configuration of the jail.
        type: bool
        default: true
      user:
        description:
          - The user of the jail's C(/etc/passwd) the command runs as, with O(validate[].chroot=true)
            only. V(root) is root of the jail, without capabilities. It owns the root's files, but
            cannot change an owner, read another user's private file or write where only another
            user may (C(apache2ctl -t) fails for that reason; run C(apache2 -t) after sourcing
            C(/etc/apache2/envvars)).
        type: str
        default: root
notes:
  - The paths are compared and written one by one; a reader of the jail root may see some of the
    new files before the test ran. The daemon's running configuration is not affected unless it
    re-reads its files by itself.
seealso:
  - module: ansible.builtin.template
  - module: jailhost.jails.jail_packages
"""

EXAMPLES = r"""
- name: The Apache configuration of the web jail, tested before it is kept
  jailhost.jails.jail_files:
    root: /var/lib/jailhost/jails/web/root
    files:
      - path: /etc/apache2/ports.conf
        content: "{{ lookup('ansible.builtin.template', 'ports.conf.j2') }}"
      - path: /etc/apache2/conf-enabled/security.conf
        state: absent
      - path: /etc/apache2/mods-enabled/headers.load
        state: link
        src: ../mods-available/headers.load
      - path: /var/local/log/apache2
        state: directory
        group: adm
        mode: "0750"
    purge:
      - path: /etc/apache2/sites-enabled
        patterns: ["*.conf"]
    validate:
      # Not apache2ctl -t: it changes the owner of its run directory, which root of the jail
      # without capabilities cannot do.
      - argv: [/bin/sh, -c, '. /etc/apache2/envvars && mkdir -p "$APACHE_RUN_DIR" && exec /usr/sbin/apache2 -t']
  register: web_config

- name: A PHP setting, tested by the PHP of the jail as www-data
  jailhost.jails.jail_files:
    root: /var/lib/jailhost/jails/web/root
    files:
      - path: /etc/php/8.2/apache2/conf.d/90-jailhost.ini
        content: "expose_php = Off\n"
    validate:
      - argv: [/usr/bin/php, -n, -c, /etc/php/8.2/apache2/conf.d/90-jailhost.ini, -r, "exit(0);"]
        user: www-data

- name: Reload Apache when its configuration changed
  ansible.builtin.debug:
    msg: "changed: {{ web_config.changed_paths }}"
  when: web_config is changed
"""

RETURN = r"""
changed:
  description: Whether something was (or, in check mode, would be) written or removed.
  returned: always
  type: bool
root:
  description: Real path of the jail root (symbolic links resolved).
  returned: success
  type: str
  sample: /var/lib/jailhost/jails/web/root
changed_paths:
  description: The jail paths that changed (or would change), in the order of O(files), then the purged ones.
  returned: success
  type: list
  elements: str
  sample: [/etc/apache2/ports.conf]
changes:
  description: Each changed path with its action, V(create), V(update), V(attributes) or V(remove).
  returned: success
  type: list
  elements: dict
  sample: [{path: /etc/apache2/ports.conf, action: update}]
validated:
  description: Whether the O(validate) commands ran and passed.
  returned: success
  type: bool
rolled_back:
  description: The paths whose change was undone after a failed test.
  returned: failure, when a test failed
  type: list
  elements: str
rc:
  description: Exit status of the failed test.
  returned: failure, when a test failed
  type: int
stdout:
  description: Standard output of the failed test.
  returned: failure, when a test failed
  type: str
stderr:
  description: Standard error of the failed test.
  returned: failure, when a test failed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.jailhost.jails.plugins.module_utils.jail_files import (
    STATES,
    JailFilesError,
    ensure_files,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            files=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='str', required=True),
                state=dict(type='str', choices=list(STATES), default='file'),
                content=dict(type='str'),
                secret_content=dict(type='str', no_log=True),
                src=dict(type='str'),
                optional=dict(type='bool', default=False),
                owner=dict(type='str', default='root'),
                group=dict(type='str', default='root'),
                mode=dict(type='str'),
            )),
            purge=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='str', required=True),
                patterns=dict(type='list', elements='str', required=True),
            )),
            validate=dict(type='list', elements='dict', default=[], options=dict(
                argv=dict(type='list', elements='str', required=True),
                chroot=dict(type='bool', default=True),
                user=dict(type='str', default='root'),
            )),
        ),
        supports_check_mode=True,
    )
    try:
        result = ensure_files(module)
    except JailFilesError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except OSError as exc:
        module.fail_json(msg=f'jail_files: {exc}')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
