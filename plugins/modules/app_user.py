#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_user
short_description: One application's OS user and group, the same on the host and in the app's jail
version_added: 0.1.0
description:
  - Creates, updates or removes the OS user and group of one application, with the same uid and
    gid on the host and inside the application's jail root filesystem, so that files and
    processes of the application belong to the same numbers on both sides.
  - Accounts are changed only with the shadow tools (C(groupadd), C(useradd), C(usermod),
    C(userdel), C(groupdel)); in the jail root they run with C(--prefix ROOT). The account files
    are only read by the module. A jail root is an overlay, so its C(etc/passwd) is written to the
    jail's own layer, never to the shared base image.
  - The password is locked (C(!) in shadow) on both sides; a password set by other means is locked
    again. Only SSH keys (O(authorized_keys)) can log in, and only with O(shell=sandboxed).
  - The home (the application's directory) is created owned by the user with O(home_mode) (0750 or
    stricter) in the jail root (C(<jails_dir>/<jail>/root<home>) on the host). The home in the
    host's passwd is not that directory, which the application's workers can write, but
    C(/var/lib/jailhost-login-home), empty and owned by root (created by the module), so host-side
    programs of a login (pam_env user files, the systemd user manager) find nothing planted
    there. Changing the home of an existing user needs it to have no process on the host (an
    owner's SSH session), as C(usermod) refuses a busy user.
  - uid and gid are allocated from O(uid_range) when not given, and stay stable across runs; an
    existing user keeps its ids, and a user re-created over a kept home gets the home owner's uid
    back when it is free. gid equals uid when that number is free for groups too.
  - Refuses, before any change, an invalid name, a uid or gid in the system range (below 1000) or
    reserved (60000 and above), a uid or gid that belongs to another user or group on the host or
    in the jail, a different uid or gid for an existing user (no renumbering), a home that is not a
    clean absolute path or is a system directory, a missing jail root, and keys for a user that
    cannot log in.
  - Every app user is a member of the host group C(jailhost-apps) (created when missing), which
    the sshd configuration of the P(jailhost.jails.apps#role) role matches (C(Match Group)) - no
    passwords, no forwarding, root-managed keys, and the forced sandboxed login.
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  diff_mode:
    details:
      - The passwd and group entries on the host and in the jail, the lock state, the home's owner
        and mode, and the authorized keys, before and after.
requirements:
  - Debian's C(passwd) package (shadow tools with C(--prefix)) on the host; runs as root.
notes:
  - O(shell=sandboxed) needs the login helper and the sshd and sudo configuration of the
    P(jailhost.jails.apps#role) role (C(tasks/login.yml)); the login joins the app's running jail
    (see C(docs/apps.md) for how, and why firejail's own login shell is not used).
  - The jail root comes from the P(jailhost.jails.rootfs#role) role and must be mounted.
options:
  name:
    description:
      - User and group name. Debian's user-name rules, C(^[a-z][a-z0-9_-]*$), at most 32 characters
        (so never C(/), C(.) or C(..)).
    type: str
    required: true
  uid:
    description:
      - The user's uid, 1000-59999. Default - the existing user's uid, else the owner of an existing
        home, else the lowest uid of O(uid_range) free on the host and in the jail.
      - An existing user with another uid is refused (no renumbering).
    type: int
  gid:
    description: The group's gid, 1000-59999. Default - the existing group's, else the uid when free, else allocated.
    type: int
  uid_range:
    description: First and last id to allocate from (within 1000-59999).
    type: list
    elements: int
    default: [20000, 29999]
  jail:
    description:
      - Name of the application's jail. The user is created in its root filesystem
        C(<jails_dir>/<jail>/root) too. Without a jail the user exists on the host only.
    type: str
  jails_dir:
    description: Directory of the jails (as the rootfs role's C(rootfs_jails_dir)).
    type: path
    default: /var/lib/jailhost/jails
  home:
    description:
      - The application's directory and the user's home, as seen inside the jail (on the host
        when there is no jail). Default C(/srv/<name>).
      - An absolute normalised path, not C(/) and not in a system directory (C(/etc), C(/usr),
        C(/root), C(/run), ...).
    type: str
  home_mode:
    description: Mode of the home; 0750 or stricter (no group write, nothing for others, rwx for the owner).
    type: raw
    default: '0750'
  shell:
    description:
      - V(nologin) - C(/usr/sbin/nologin) on both sides; the user cannot log in.
      - V(sandboxed) - an SSH login lands inside the app's running jail as this user (its
        processes, its root filesystem, no capabilities). The host shell is
        C(/usr/local/sbin/jailhost-app-login), the jail shell C(/bin/bash).
    type: str
    choices: [nologin, sandboxed]
    default: nologin
  authorized_keys:
    description:
      - SSH public keys (one C(TYPE BASE64 [COMMENT]) line each, no key options) allowed to log in.
        Written root-owned to C(/etc/jailhost/ssh/authorized_keys/<name>), so the user, and an app
        hijacked in its jail, cannot add keys. Only with O(shell=sandboxed).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) creates or updates the user.
      - V(absent) removes the user and group on the host and in the jail, the keys and the login
        entry, and keeps the home (the application's files) unless O(purge).
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With O(state=absent), delete the home too.
    type: bool
    default: false
seealso:
  - module: jailhost.jails.sandbox
"""

EXAMPLES = r"""
- name: The user of the shop application, in its jail
  jailhost.jails.app_user:
    name: shop
    jail: shop
    home: /srv/shop

- name: An owner who logs in over SSH and lands in the blog's jail
  jailhost.jails.app_user:
    name: blog
    uid: 20010
    jail: blog
    shell: sandboxed
    authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop

- name: Remove the user, keep the application's files
  jailhost.jails.app_user:
    name: oldapp
    jail: oldapp
    state: absent
"""

RETURN = r"""
name:
  description: The user name.
  returned: always
  type: str
  sample: shop
uid:
  description: The user's uid on the host and in the jail.
  returned: when state=present
  type: int
  sample: 20000
gid:
  description: The group's gid on the host and in the jail.
  returned: when state=present
  type: int
  sample: 20000
home:
  description: The home inside the jail.
  returned: always
  type: str
  sample: /srv/shop
host_home:
  description: The home as seen on the host (through the jail's root mount); not the home in the
    host's passwd, which is C(/var/lib/jailhost-login-home) for a user of a jail.
  returned: always
  type: str
  sample: /var/lib/jailhost/jails/shop/root/srv/shop
host_shell:
  description: The user's shell on the host.
  returned: when state=present
  type: str
  sample: /usr/sbin/nologin
commands:
  description: The shadow-tool commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
  sample: [[groupadd, --gid, "20000", shop]]
purged:
  description: Whether the home was (or would be) deleted.
  returned: when state=absent
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.jailhost.jails.plugins.module_utils.app_user import (
    SHELLS,
    AppUserError,
    ensure_app_user,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            uid=dict(type='int'),
            gid=dict(type='int'),
            uid_range=dict(type='list', elements='int', default=[20000, 29999]),
            jail=dict(type='str'),
            jails_dir=dict(type='path', default='/var/lib/jailhost/jails'),
            home=dict(type='str'),
            home_mode=dict(type='raw', default='0750'),
            shell=dict(type='str', choices=list(SHELLS), default='nologin'),
            authorized_keys=dict(type='list', elements='str', default=[], no_log=False),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            purge=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    if len(module.params['uid_range']) != 2:
        module.fail_json(msg='uid_range must be [FIRST, LAST]')
    try:
        result = ensure_app_user(module)
    except AppUserError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
