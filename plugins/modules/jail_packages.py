#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jail_packages
short_description: Install, remove or upgrade Debian packages in a jail root filesystem with apt, without starting any service
version_added: 0.1.0
description:
  - Manages Debian packages inside a jail root filesystem (a C(debootstrap) tree, possibly an
    overlayfs mount) before the jail runs, by running C(apt-get) in it, confined.
  - The jail is treated as hostile, its root user included (it may have replaced any file of its
    root with a trojan or a symbolic link). The host never executes a program of the root and
    never follows a link in it to a host file.
  - The installed packages are read from the host by parsing C(ROOT/var/lib/dpkg/status) and the
    dpkg journal C(ROOT/var/lib/dpkg/updates/*) (applied in numeric order, as C(dpkg-query)
    does), opened with C(openat2) so that no link leads out of the root; no host program reads a
    jail file. When nothing is to be done for O(state=present) or O(state=absent), nothing runs
    in the root at all. For O(state=latest), C(apt-get -s install) runs in the root to learn
    whether an upgrade is pending; it writes nothing there.
  - Every C(apt-get) call is confined by the collection's C(jailsafe) library (see
    docs/security.md) before the jail's first file executes. It gets its own mount, PID, IPC, UTS and cgroup
    namespaces whose root is the jail root (C(pivot_root), the host's tree detached), a private
    C(/dev) tmpfs with the usual device nodes, no C(/proc) and no C(/sys); root without any
    capability but those dpkg needs (C(chown), C(dac_override), C(fowner), C(fsetid), C(kill),
    C(setuid), C(setgid), C(setfcap)), C(no_new_privs) and a seccomp filter denying mount,
    namespaces, ptrace, module loading, io_uring and the like. The host's network is visible only
    to the calls that download (C(apt-get update), C(install) and the upgrade); simulations and
    C(remove) run in an empty network namespace.
  - Every process started by apt or a maintainer script is killed with the PID namespace when
    the command exits, so no daemon can stay behind. While apt installs or removes packages,
    C(ROOT/usr/sbin/policy-rc.d) denies every service action (exit status 101); a host file is
    bind-mounted read-only over it in the command's mount namespace, so an existing
    C(policy-rc.d) is shadowed, not modified; a missing one is created as mount point for the run
    and removed afterwards.
  - Before installing, C(apt-get -s) checks that apt knows every requested package and would install
    it under its own name; apt would otherwise silently install the packages matching an unknown
    name as a regular expression, or the provider of a virtual package.
  - With O(upgrade=safe) or O(upgrade=full), every installed package apt can upgrade is upgraded
    (the day-2 update of a jail). The package indexes are fetched for this run only, onto a tmpfs
    mounted over C(ROOT/var/lib/apt/lists) in the command's mount namespace, so nothing of them is
    left in the jail's layer, and the downloaded packages are removed afterwards; in check mode
    the same fresh indexes are used to simulate the upgrade, and nothing is written into the root.
  - Commands run in the root get an empty environment apart from C(PATH), C(HOME=/root),
    C(LC_ALL=C.UTF-8), C(USER), C(LOGNAME) and C(DEBIAN_FRONTEND=noninteractive); apt runs with
    C(-y), C(Dpkg::Options::=--force-confdef) and C(Dpkg::Options::=--force-confold).
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  check_mode:
    details:
      - In check mode the cache is not updated, and the existence of packages to install is not
        checked (that may need an C(apt-get update)).
  diff_mode:
    details:
      - The requested packages that change, as C(NAME=VERSION) lines before and after. In check mode
        the version a package would be installed with is shown only when it was pinned or, for
        O(state=latest), when apt was asked about it.
requirements:
  - A Linux host (kernel 5.6 or later for C(openat2); x86_64 or aarch64), where the module runs
    as root (C(become=true))
  - C(apt-get), C(find) and a Debian package database in the root
options:
  root:
    description:
      - The jail root filesystem. It must exist, be a directory owned by root, contain
        C(var/lib/dpkg/status), and not be the host's C(/). It and every directory above it must
        be owned by root and writable by root only.
    type: path
    required: true
  name:
    description:
      - Required unless O(upgrade) is V(safe) or V(full), with which it must be empty.
      - Names of the packages, each optionally followed by C(=VERSION) to pin an exact version
        (only with O(state=present); a different installed version is then replaced, and apt
        refuses a downgrade).
      - Names must follow the Debian package name syntax (lowercase letters, digits, C(+), C(-)
        and C(.), starting with a letter or a digit). Architecture qualifiers, release
        suffixes, wildcards and virtual packages are refused.
      - An empty list does nothing.
    type: list
    elements: str
    aliases: [pkg]
  state:
    description:
      - V(present) installs the packages that are not installed.
      - V(latest) also upgrades installed packages for which apt has a newer version.
      - V(absent) removes the packages with C(apt-get remove), which keeps their configuration files
        and also removes the packages that depend on them.
    type: str
    choices: [present, absent, latest]
    default: present
  update_cache:
    description:
      - Run C(apt-get update) in the root when packages are to be installed (or, for
        O(state=latest), before asking apt for upgrades) and the cache is older than
        O(cache_valid_time), or when apt does not know a package to install.
      - The age of the cache is the age of C(ROOT/var/lib/apt/periodic/update-success-stamp), which
        the module touches after every successful update. The modification time of
        C(ROOT/var/lib/apt/lists) is not used because C(apt-get update) leaves it unchanged when the
        indexes did not change. A missing stamp counts as an outdated cache.
      - With O(state=present) and nothing to install, the cache is not updated.
      - A failure to fetch any index fails the task (C(APT::Update::Error-Mode=any)).
      - Updating the cache alone does not make the task changed; see RV(cache_updated).
    type: bool
    default: false
  cache_valid_time:
    description:
      - With O(update_cache=true), the age in seconds under which the cache is not updated
        (unless a package to install is not found in it). V(0) updates it on every run that
        installs something.
    type: int
    default: 0
  proxy:
    description:
      - URL of an HTTP proxy for apt during this run, C(http://[USER:PASSWORD@]HOST[:PORT][/]) or
        the same with C(https://), given to C(apt-get) with the option C(-o)
        C(Acquire::http::Proxy=URL). Nothing is written in the root.
      - It applies to C(http://) sources only.
      - The root's C(/etc/resolv.conf) is never changed; without a proxy, the sources must be
        reachable with the root's own resolver configuration.
    type: str
  upgrade:
    description:
      - V(none) manages the packages of O(name) only.
      - V(safe) runs C(apt-get upgrade --with-new-pkgs) (new dependencies are installed, nothing is
        ever removed), V(full) runs C(apt-get dist-upgrade) (packages may be removed to resolve
        conflicts), after an C(apt-get update) into a temporary directory (O(update_cache) and
        O(cache_valid_time) do not apply). O(state) is ignored.
      - The jail's daemons keep running the old binaries until the jail is restarted; the task
        reports in RV(versions) what changed, so a play can restart only the jails that changed.
    type: str
    choices: [none, safe, full]
    default: none
  clean:
    description:
      - After packages were installed, upgraded or removed, or the cache was updated, run
        C(apt-get clean) and delete everything in C(ROOT/var/lib/apt/lists), both in the root and
        confined like every other command, so that neither downloaded packages nor package indexes
        stay in the jail's layer (for a base image, for example).
      - Nothing runs when nothing changed, nor in check mode; a later O(update_cache=true) fetches
        the indexes again.
    type: bool
    default: false
  install_recommends:
    description:
      - Install the packages recommended by the installed packages too. When false,
        C(--no-install-recommends) is given to apt, whatever the root's apt configuration says.
    type: bool
    default: false
notes:
  - A package whose C(dpkg) state is unpacked or half-configured (an interrupted earlier run) is
    not installed for O(state=present); C(apt-get) then configures it.
  - If C(dpkg) was interrupted in the root, apt fails and asks for C(dpkg --configure -a) to be
    run in it.
  - Packages should be installed while the jail is stopped; maintainer scripts cannot restart
    the jail's services.
  - The confinement cannot be set up inside an unprivileged container or without seccomp; the
    task then fails before anything of the root runs.
seealso:
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: Apache with PHP for PostgreSQL in the web jail, through the site's apt proxy
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/jails/web/root
    name:
      - apache2
      - libapache2-mod-php
      - php-pgsql
    update_cache: true
    cache_valid_time: 3600
    proxy: http://10.254.0.1:3142

- name: Latest PostgreSQL 15 in the db jail
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/jails/db/root
    name: postgresql-15
    state: latest
    update_cache: true

- name: A pinned version
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/jails/db/root
    name: postgresql-client-15=15.8-0+deb12u1

- name: Upgrade every package of the db jail (security updates), report the versions
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/jails/db/root
    upgrade: safe
    proxy: http://10.254.0.1:3142
  register: db_upgrade

- name: Restart the db jail when something was upgraded
  ansible.builtin.systemd_service:
    name: jailhost-db.service
    state: restarted
  when: db_upgrade is changed

- name: Packages of a base image, without the package indexes and archives in it
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/base/root
    name: [python3, ca-certificates]
    update_cache: true
    clean: true

- name: No compiler in the web jail
  jailhost.jails.jail_packages:
    root: /var/lib/jailhost/jails/web/root
    name: [gcc, make]
    state: absent
"""

RETURN = r"""
changed:
  description: Whether packages were (or, in check mode, would be) installed, upgraded or removed.
  returned: always
  type: bool
  sample: true
root:
  description: Real path of the jail root (symbolic links resolved).
  returned: success
  type: str
  sample: /var/lib/jailhost/jails/web/root
installed:
  description:
    - Requested packages that were not installed and were (or would be) installed.
    - Dependencies are not listed.
  returned: success
  type: list
  elements: str
  sample: [apache2, php-pgsql]
upgraded:
  description:
    - Requested packages that were installed and whose version was (or would be) changed, to the
      candidate of apt for O(state=latest) or to the pinned version for O(state=present).
  returned: success
  type: list
  elements: str
  sample: [postgresql-15]
removed:
  description: Requested packages that were (or would be) removed.
  returned: success
  type: list
  elements: str
  sample: [gcc]
versions:
  description:
    - With O(upgrade), every package whose installed version changed (or, in check mode, would
      change), with the version before and after; V(null) for a package that was not installed
      before, or is removed.
  returned: success, with O(upgrade=safe) or O(upgrade=full)
  type: dict
  sample: {libssl3: {before: 3.0.15-1~deb12u1, after: 3.0.17-1~deb12u2}}
cleaned:
  description: Whether O(clean) ran C(apt-get clean) and emptied C(ROOT/var/lib/apt/lists).
  returned: success
  type: bool
  sample: false
cache_updated:
  description: Whether C(apt-get update) ran in the root.
  returned: success
  type: bool
  sample: false
rc:
  description: Exit status of the failed command.
  returned: failure, when a command failed
  type: int
  sample: 100
stdout:
  description: Standard output of the failed command (its last lines are in C(msg)).
  returned: failure, when a command failed
  type: str
stderr:
  description: Standard error of the failed command (its last lines are in C(msg)).
  returned: failure, when a command failed
  type: str
  sample: "E: Unable to locate package apache3"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.jailhost.jails.plugins.module_utils.jail_packages import (
    STATES,
    UPGRADE_MODES,
    JailPackagesError,
    ensure_packages,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            name=dict(type='list', elements='str', aliases=['pkg']),
            state=dict(type='str', choices=list(STATES), default='present'),
            update_cache=dict(type='bool', default=False),
            cache_valid_time=dict(type='int', default=0),
            proxy=dict(type='str'),
            install_recommends=dict(type='bool', default=False),
            clean=dict(type='bool', default=False),
            upgrade=dict(type='str', choices=list(UPGRADE_MODES), default='none'),
        ),
        supports_check_mode=True,
    )
    try:
        result = ensure_packages(module)
    except JailPackagesError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
