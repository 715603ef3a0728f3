# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of jailhost.jails.jail_root: a jail's root filesystem, an overlay of a shared base
image (read-only lower layer) and the jail's own layer, mounted by a systemd mount unit.

<jails_dir>/<name>/
  base    the lower layer this jail was created on, written once (a later base image never
          replaces the lower layer of an existing jail under its feet)
  upper/  everything the jail writes
  work/   overlayfs work directory
  root/   the mount point: what firejail --chroot uses
"""

from __future__ import annotations

import os
import shutil
import stat

# One jail name rule for the whole collection (jailsafe's).
from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JAIL_NAME_RE, valid_jail_name

UNIT_DIR = '/etc/systemd/system'
# firejail --chroot wants a root-owned root that is not group/world-writable.
DIR_MODE = 0o755
SUBDIRS = ('', 'upper', 'work', 'root')


class JailRootError(Exception):
    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.details = details


def check_params(name: str, jails_dir: str, base: str | None, state: str) -> None:
    if not valid_jail_name(name):
        raise JailRootError(f'name {name!r} must match {JAIL_NAME_RE.pattern}')
    for label, path in (('jails_dir', jails_dir), ('base', base)):
        if path is None:
            continue
        if not path.startswith('/') or '..' in path.split('/') or any(c.isspace() or c in ',:\\' for c in path):
            raise JailRootError(f"{label} {path!r} must be an absolute path without '..', spaces, ',', ':' or '\\\\'")
    if state == 'present' and not base:
        raise JailRootError('base (the root of the base image) is required with state=present')


def render_unit(name: str, jail_dir: str, lower: str) -> str:
    return (
        '# Managed by jailhost.jails (rootfs role, jail_root module): do not edit.\n'
        f'# Root filesystem of jail {name}: the shared base (read-only lower layer) and the\n'
        "# jail's own writable layer. Jails cannot change each other's files or the base.\n"
        '[Unit]\n'
        f'Description=jailhost jail {name} root filesystem\n'
        'Documentation=https://github.com/jailhost/jails/blob/main/roles/rootfs/README.md\n'
        f'Before=jailhost-{name}.service\n'
        '\n'
        '[Mount]\n'
        'What=overlay\n'
        f'Where={jail_dir}/root\n'
        'Type=overlay\n'
        f'Options=lowerdir={lower},upperdir={jail_dir}/upper,workdir={jail_dir}/work\n'
        '\n'
        '[Install]\n'
        'WantedBy=multi-user.target\n'
    )


def escape_path(path: str) -> str:
    """systemd-escape --path: the unit name of a mount point (without .mount)."""
    path = '/'.join(part for part in path.split('/') if part)
    if not path:
        return '-'
    out = []
    for index, char in enumerate(path):
        if char == '/':
            out.append('-')
        elif char.isascii() and (char.isalnum() or char in ':_' or (char == '.' and index > 0)):
            out.append(char)
        else:
            out.extend(f'\\x{byte:02x}' for byte in char.encode())
    return ''.join(out)


def settings(unit: str) -> list[str]:
    """The lines of a unit file that systemd reads (no comments, no blank lines)."""
    return [line.strip() for line in unit.splitlines() if line.strip() and not line.lstrip().startswith(('#', ';'))]


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_text(path: str, content: str, mode: int) -> None:
    temporary = f'{path}.jailhost-tmp'
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        handle.write(content)
        os.fchmod(handle.fileno(), mode)
        os.fchown(handle.fileno(), 0, 0)
    os.rename(temporary, path)


class JailRoot:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.name = params['name']
        self.jails_dir = os.path.normpath(params['jails_dir'])
        self.base = os.path.normpath(params['base']) if params.get('base') else None
        check_params(self.name, self.jails_dir, self.base, params['state'])
        self.jail_dir = f'{self.jails_dir}/{self.name}'
        self.unit = escape_path(f'{self.jail_dir}/root') + '.mount'
        self.unit_path = f'{UNIT_DIR}/{self.unit}'
        self.reasons: list[str] = []
        self.diff = {'before': '', 'after': '', 'before_header': self.unit_path, 'after_header': self.unit_path}

    def systemctl(self, *args: str, check: bool = True) -> tuple[int, str]:
        rc, out, err = self.module.run_command(['systemctl', *args])
        if check and rc != 0:
            raise JailRootError(f"systemctl {' '.join(args)} failed: {(err or out).strip()}", rc=rc)
        return rc, out.strip()

    def result(self) -> dict:
        result = {'changed': bool(self.reasons), 'reasons': self.reasons, 'unit': self.unit,
                  'path': f'{self.jail_dir}/root'}
        if self.module._diff:
            result['diff'] = self.diff
        return result

    # --- present

    def directories(self) -> None:
        for sub in SUBDIRS:
            path = os.path.join(self.jail_dir, sub) if sub else self.jail_dir
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                self.reasons.append(f'{path} created')
                if not self.module.check_mode:
                    os.makedirs(path, DIR_MODE, exist_ok=True)
                    os.chown(path, 0, 0)
                    os.chmod(path, DIR_MODE)
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise JailRootError(f'{path} exists and is not a directory')
            if sub == 'root' and os.path.ismount(path):
                continue  # the mounted jail root: its mode is the upper layer's, not ours to set
            if (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) != (DIR_MODE, 0, 0):
                self.reasons.append(f'{path} set to root:root 0755')
                if not self.module.check_mode:
                    os.chown(path, 0, 0)
                    os.chmod(path, DIR_MODE)

    def present(self) -> dict:
        pin_path = f'{self.jail_dir}/base'
        pinned = (read_text(pin_path) or '').strip()
        lower = pinned or self.base
        if not os.path.isdir(lower) and not (self.module.check_mode and not pinned):
            raise JailRootError(f'the base image root {lower} of jail {self.name} does not exist'
                                + (f' (pinned in {pin_path})' if pinned else ''))
        self.directories()
        if not pinned:
            self.reasons.append(f'pinned to the base {lower}')
            if not self.module.check_mode:
                write_text(pin_path, lower + '\n', 0o644)
        wanted = render_unit(self.name, self.jail_dir, lower)
        current = read_text(self.unit_path)
        self.diff.update(before=current or '', after=wanted)
        # Comments do not count: a unit written by an earlier version with another header is
        # kept as it is (rewriting it would remount the root under a running jail).
        unit_changed = current is None or settings(current) != settings(wanted)
        if unit_changed:
            self.reasons.append(f"{self.unit} {'created' if current is None else 'changed'}")
            if not self.module.check_mode:
                write_text(self.unit_path, wanted, 0o644)
                self.systemctl('daemon-reload')
        else:
            self.diff.update(after=current)
        mounted = os.path.ismount(f'{self.jail_dir}/root')
        if unit_changed and mounted:
            # A new lower layer or options (a pin edited by hand): remount.
            self.reasons.append('remounted with the new unit')
            if not self.module.check_mode:
                self.systemctl('restart', self.unit)
        elif not mounted:
            self.reasons.append('mounted')
            if not self.module.check_mode:
                self.systemctl('start', self.unit)
        rc = self.systemctl("is-enabled", "--quiet", self.unit, check=False)[0]
        if rc != 0:
            self.reasons.append('enabled at boot')
            if not self.module.check_mode:
                self.systemctl('enable', '--quiet', self.unit)
        return self.result()

    # --- absent

    def absent(self, purge: bool) -> dict:
        current = read_text(self.unit_path)
        self.diff.update(before=current or '', after='')
        root = f'{self.jail_dir}/root'
        if os.path.ismount(root):
            self.reasons.append('unmounted')
            if not self.module.check_mode:
                rc, out = self.systemctl('stop', self.unit, check=False)
                if os.path.ismount(root):
                    raise JailRootError(
                        f'the root of jail {self.name} ({root}) could not be unmounted; is its sandbox '
                        f'still running? Remove it first (jailhost.jails.sandbox state=absent). {out}')
        if current is not None:
            self.reasons.append(f'{self.unit} removed')
            if not self.module.check_mode:
                self.systemctl('disable', '--quiet', self.unit, check=False)
                os.unlink(self.unit_path)
                self.systemctl('daemon-reload')
        if purge and os.path.lexists(self.jail_dir):
            self.reasons.append(f'{self.jail_dir} purged')
            if not self.module.check_mode:
                shutil.rmtree(self.jail_dir)
        return self.result()
