#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jail_root
short_description: A jail's root filesystem, an overlay of a shared base image and the jail's own layer, mounted by systemd
version_added: 0.1.0
description:
  - Makes C(JAILS_DIR/NAME/root) the overlay of a base image root (read-only lower layer) and
    C(JAILS_DIR/NAME/upper) (everything the jail writes), mounted now and at boot by the systemd
    mount unit C(var-lib-jailhost-jails-NAME-root.mount) (named by C(systemd-escape --path)).
  - The directories C(NAME), C(upper), C(work) and C(root) are owned by root with mode 0755, as
    C(firejail --chroot) requires.
  - A new jail is pinned to the base it was created on (C(JAILS_DIR/NAME/base), written once); a
    later base image (another package list or mirror) never replaces the lower layer of an existing
    jail. Edit the pin to move a jail to a new base (the root is then remounted).
  - One task does what the jailhost.jails.rootfs role needs per jail, and nothing when all is in
    place (no C(systemctl) call but C(is-enabled)).
  - With O(state=absent), the root is unmounted and the mount unit removed; the jail's layer stays
    unless O(purge=true). The jail's sandbox must be removed first (a root in use cannot be
    unmounted, and the task fails rather than pull it from under a service).
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  diff_mode:
    details:
      - The mount unit before and after.
requirements:
  - systemd and overlayfs on the host; the module runs as root
options:
  name:
    description:
      - The jail name, C(^[a-z][a-z0-9-]*$), at most 32 characters (the collection's one jail name
        rule, also the test C(jailhost.jails.jail_name)).
    type: str
    required: true
  jails_dir:
    description: Directory of the jails (absolute, without C(..), spaces, C(,), C(:) or C(\)).
    type: path
    default: /var/lib/jailhost/jails
  base:
    description:
      - The root directory of the base image a new jail is created on (the lower layer).
      - Required with O(state=present); ignored for a jail that is pinned already.
    type: path
  state:
    description: V(present) creates and mounts the root; V(absent) unmounts it and removes the mount unit.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With O(state=absent), also delete C(JAILS_DIR/NAME) with everything the jail wrote.
    type: bool
    default: false
  size:
    description:
      - The bound of the jail's own layer, e.g. V(2G) (bytes, or a whole number with V(K), V(M),
        V(G) or V(T), powers of 1024; at least V(64M), a multiple of 4K). The layer is then an ext4 image
        C(JAILS_DIR/NAME/layer.img) (root only, its blocks allocated at once) mounted on
        C(JAILS_DIR/NAME/layer) by its own mount unit, which the root's mount unit requires; a jail
        that fills it gets ENOSPC there, the host's filesystem and the other jails keep their space.
      - The image is made once and never re-created, shrunk or grown; another size fails before any
        change (growing is not supported yet); without O(size) an existing image stays as it is.
      - Only for a new jail. A jail created without a size keeps its layer on the host's
        filesystem (the task fails rather than move its data).
      - Needs loop devices and C(mkfs.ext4) (e2fsprogs) on the host.
    type: str
seealso:
  - module: jailhost.jails.sandbox
  - module: jailhost.jails.jail_packages
"""

EXAMPLES = r"""
- name: The root filesystem of the web jail
  jailhost.jails.jail_root:
    name: web
    base: /var/lib/jailhost/base/0123456789abcdef/root

- name: A jail whose own layer can hold 2 GiB, no more
  jailhost.jails.jail_root:
    name: db
    base: /var/lib/jailhost/base/0123456789abcdef/root
    size: 2G

- name: Remove the jail's root, keep what it wrote
  jailhost.jails.jail_root:
    name: files
    state: absent
"""

RETURN = r"""
changed:
  description: Whether something was (or would be) created, written, mounted, enabled or removed.
  returned: always
  type: bool
reasons:
  description: What changed.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/jailhost/jails/web created, pinned to the base /var/lib/jailhost/base/0123/root, mounted]
unit:
  description: The mount unit.
  returned: success
  type: str
  sample: var-lib-jailhost-jails-web-root.mount
layer_unit:
  description: The mount unit of the jail's size-limited layer (a jail with O(size) only).
  returned: success and the jail has a size
  type: str
  sample: var-lib-jailhost-jails-web-layer.mount
path:
  description: The jail root (the mount point).
  returned: success
  type: str
  sample: /var/lib/jailhost/jails/web/root
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.jailhost.jails.plugins.module_utils.jail_root import JailRoot, JailRootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            jails_dir=dict(type='path', default='/var/lib/jailhost/jails'),
            base=dict(type='path'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            purge=dict(type='bool', default=False),
            size=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    if os.geteuid() != 0:
        module.fail_json(msg='jail_root must run as root (become: true)')
    try:
        root = JailRoot(module)
        if module.params['state'] == 'present':
            result = root.present()
        else:
            result = root.absent(module.params['purge'])
    except JailRootError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except OSError as exc:
        module.fail_json(msg=f'jail_root: {exc}')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
