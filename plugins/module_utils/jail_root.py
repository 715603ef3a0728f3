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

A jail with a size (issue 14, "Exhaustion") keeps its own layer on an ext4 image instead:
  layer.img  the image (root only, 0600; its blocks allocated when it is created, so the jail's
             bound is reserved on the host's filesystem), never re-created, shrunk or grown
  layer/     its mount point (a second mount unit, required by the root's), holding upper/ and
             work/: a jail that fills its layer gets ENOSPC at its size, the host's filesystem and
             the other jails do not notice
The image lives beside root/, which the jail cannot reach (it sees only the mounted root).
"""

from __future__ import annotations

import os
import re
import shutil
import stat

# One jail name rule for the whole collection (jailsafe's).
from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JAIL_NAME_RE, valid_jail_name

UNIT_DIR = '/etc/systemd/system'
# firejail --chroot wants a root-owned root that is not group/world-writable.
DIR_MODE = 0o755
SUBDIRS = ('', 'upper', 'work', 'root')
SIZED_SUBDIRS = ('', 'layer', 'root')
IMAGE = 'layer.img'
SIZE_RE = re.compile(r'^([1-9][0-9]*)([KMGT]?)$')
SIZE_UNITS = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
# ext4's own metadata (journal, inode tables) takes a part of a small image: below this the
# layer would be mostly metadata.
MIN_SIZE = 64 << 20
MKFS = ['mkfs.ext4', '-q', '-F',
        # no blocks reserved for root: root in the jail gets the same bound as its daemons
        '-m', '0',
        # mkfs discards a file's blocks, which would undo their allocation; the kernel's lazy
        # initialisation after the first mount zeroes the inode tables through the loop device,
        # which punches holes into the image: mkfs initialises them itself
        '-E', 'nodiscard,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0']


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


def parse_size(size) -> int | None:
    """A size like 2G, 512M or 1073741824 (bytes; K, M, G, T are powers of 1024) in bytes."""
    if size is None or size == '':
        return None
    match = SIZE_RE.match(str(size).strip())
    if not match:
        raise JailRootError(f'size {size!r} must be a whole number of bytes with an optional K, M, G or T '
                            '(powers of 1024), e.g. 2G')
    value = int(match.group(1)) * SIZE_UNITS[match.group(2)]
    if value < MIN_SIZE:
        raise JailRootError(f'size {size!r} is below the minimum of {MIN_SIZE >> 20}M')
    if value % 4096:
        raise JailRootError(f'size {size!r} must be a multiple of 4K (the block size of the layer)')
    return value


def render_layer_unit(name: str, jail_dir: str) -> str:
    return (
        '# Managed by jailhost.jails (rootfs role, jail_root module): do not edit.\n'
        f'# The size-limited own layer of jail {name}: an ext4 image on a loop device. The jail\n'
        '# gets ENOSPC at its size; the host\'s filesystem and the other jails do not notice.\n'
        '[Unit]\n'
        f'Description=jailhost jail {name} own layer (size-limited)\n'
        'Documentation=https://github.com/jailhost/jails/blob/main/roles/rootfs/README.md\n'
        f'Before=jailhost-{name}.service\n'
        '\n'
        '[Mount]\n'
        f'What={jail_dir}/{IMAGE}\n'
        f'Where={jail_dir}/layer\n'
        'Type=ext4\n'
        'Options=loop\n'
        '\n'
        '[Install]\n'
        'WantedBy=multi-user.target\n'
    )


def render_unit(name: str, jail_dir: str, lower: str, layer_unit: str | None = None) -> str:
    own = f'{jail_dir}/layer' if layer_unit else jail_dir
    return (
        '# Managed by jailhost.jails (rootfs role, jail_root module): do not edit.\n'
        f'# Root filesystem of jail {name}: the shared base (read-only lower layer) and the\n'
        "# jail's own writable layer. Jails cannot change each other's files or the base.\n"
        '[Unit]\n'
        f'Description=jailhost jail {name} root filesystem\n'
        'Documentation=https://github.com/jailhost/jails/blob/main/roles/rootfs/README.md\n'
        f'Before=jailhost-{name}.service\n'
        + (f'Requires={layer_unit}\nAfter={layer_unit}\n' if layer_unit else '')
        + '\n'
        '[Mount]\n'
        'What=overlay\n'
        f'Where={jail_dir}/root\n'
        'Type=overlay\n'
        f'Options=lowerdir={lower},upperdir={own}/upper,workdir={own}/work\n'
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
        self.size = parse_size(params.get('size')) if params['state'] == 'present' else None
        self.jail_dir = f'{self.jails_dir}/{self.name}'
        self.unit = escape_path(f'{self.jail_dir}/root') + '.mount'
        self.unit_path = f'{UNIT_DIR}/{self.unit}'
        self.image = f'{self.jail_dir}/{IMAGE}'
        self.layer = f'{self.jail_dir}/layer'
        self.layer_unit = escape_path(self.layer) + '.mount'
        self.layer_unit_path = f'{UNIT_DIR}/{self.layer_unit}'
        self.reasons: list[str] = []
        self.diff = {'before': '', 'after': '', 'before_header': self.unit_path, 'after_header': self.unit_path}

    def systemctl(self, *args: str, check: bool = True) -> tuple[int, str]:
        rc, out, err = self.module.run_command(['systemctl', *args])
        if check and rc != 0:
            raise JailRootError(f"systemctl {' '.join(args)} failed: {(err or out).strip()}", rc=rc)
        return rc, out.strip()

    def command(self, args: list[str]) -> str:
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            raise JailRootError(f"{' '.join(args)} failed: {(err or out).strip()}", rc=rc)
        return out

    def result(self) -> dict:
        result = {'changed': bool(self.reasons), 'reasons': self.reasons, 'unit': self.unit,
                  'path': f'{self.jail_dir}/root'}
        if os.path.lexists(self.image) or self.size:
            result['layer_unit'] = self.layer_unit
        if self.module._diff:
            result['diff'] = self.diff
        return result

    # --- present

    def directories(self, subdirs: tuple[str, ...]) -> None:
        for sub in subdirs:
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
            if sub in ('root', 'layer') and os.path.ismount(path):
                continue  # a mounted root or layer: its mode is the mounted one's, not ours to set
            if (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) != (DIR_MODE, 0, 0):
                self.reasons.append(f'{path} set to root:root 0755')
                if not self.module.check_mode:
                    os.chown(path, 0, 0)
                    os.chmod(path, DIR_MODE)

    def check_size(self) -> bool:
        """Whether the jail's layer is (or becomes) an image. Every refusal happens here, before
        anything changes."""
        try:
            info = os.lstat(self.image)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is not None:
            if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_nlink != 1:
                raise JailRootError(f'{self.image} is not a regular file of root with one link: refusing to use it')
            if self.size is None or self.size == info.st_size:
                return True  # an image once made stays, with its size, when size is dropped
            if self.size < info.st_size:
                raise JailRootError(
                    f'size {self.size} bytes of jail {self.name} is smaller than its layer image '
                    f'({info.st_size} bytes, {self.image}): shrinking a layer is not supported '
                    '(it could lose data); set size to at least the current one')
            raise JailRootError(
                f'size {self.size} bytes of jail {self.name} is larger than its layer image ({info.st_size} '
                f'bytes, {self.image}): growing a layer is not supported yet (docs/security.md, Exhaustion)')
        if self.size is None:
            return False
        if os.path.lexists(f'{self.jail_dir}/upper'):
            raise JailRootError(
                f'jail {self.name} was created without a size: its layer {self.jail_dir}/upper is on the '
                "host's filesystem, and this module does not move an existing layer onto an image (stop "
                'the jail, create the jail anew with a size and copy the data over; docs/security.md, Exhaustion)')
        free = self._free()
        if free < self.size:
            raise JailRootError(f'size {self.size} bytes of jail {self.name} does not fit: the filesystem of '
                                f'{self.jails_dir} has {free} bytes free (the image is allocated in full)')
        return True

    def _free(self) -> int:
        path = self.jails_dir
        while not os.path.isdir(path):
            path = os.path.dirname(path)
        info = os.statvfs(path)
        return info.f_bavail * info.f_frsize

    def make_image(self) -> None:
        self.reasons.append(f'{self.image} created ({self.size} bytes, ext4)')
        if self.module.check_mode:
            return
        fd = os.open(self.image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            try:
                os.fchown(fd, 0, 0)
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            self.command([*MKFS, self.image])
            # mkfs punches holes where it zeroes (journal, inode tables): allocate them again, so
            # the whole bound stays reserved on the host's filesystem.
            fd = os.open(self.image, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except (OSError, JailRootError):
            os.unlink(self.image)  # made by this call just now: nothing of the jail's is in it
            raise

    def layer_mount(self) -> None:
        wanted = render_layer_unit(self.name, self.jail_dir)
        current = read_text(self.layer_unit_path)
        if current is None or settings(current) != settings(wanted):
            self.reasons.append(f"{self.layer_unit} {'created' if current is None else 'changed'}")
            if not self.module.check_mode:
                write_text(self.layer_unit_path, wanted, 0o644)
                self.systemctl('daemon-reload')
        if not os.path.ismount(self.layer):
            self.reasons.append('layer mounted')
            if not self.module.check_mode:
                self.systemctl('start', self.layer_unit)
        if self.systemctl('is-enabled', '--quiet', self.layer_unit, check=False)[0] != 0:
            self.reasons.append('layer enabled at boot')
            if not self.module.check_mode:
                self.systemctl('enable', '--quiet', self.layer_unit)
        if self.module.check_mode and not os.path.ismount(self.layer):
            return
        for sub in ('upper', 'work'):
            path = f'{self.layer}/{sub}'
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                self.reasons.append(f'{path} created')
                if not self.module.check_mode:
                    os.mkdir(path, DIR_MODE)
                    os.chown(path, 0, 0, follow_symlinks=False)
                    os.chmod(path, DIR_MODE)
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise JailRootError(f'{path} exists and is not a directory')

    def present(self) -> dict:
        pin_path = f'{self.jail_dir}/base'
        pinned = (read_text(pin_path) or '').strip()
        lower = pinned or self.base
        if not os.path.isdir(lower) and not (self.module.check_mode and not pinned):
            raise JailRootError(f'the base image root {lower} of jail {self.name} does not exist'
                                + (f' (pinned in {pin_path})' if pinned else ''))
        sized = self.check_size()
        self.directories(SIZED_SUBDIRS if sized else SUBDIRS)
        if sized:
            if not os.path.lexists(self.image):
                self.make_image()
            self.layer_mount()
        if not pinned:
            self.reasons.append(f'pinned to the base {lower}')
            if not self.module.check_mode:
                write_text(pin_path, lower + '\n', 0o644)
        wanted = render_unit(self.name, self.jail_dir, lower, self.layer_unit if sized else None)
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
        if os.path.ismount(self.layer):
            self.reasons.append('layer unmounted')
            if not self.module.check_mode:
                rc, out = self.systemctl('stop', self.layer_unit, check=False)
                if os.path.ismount(self.layer):
                    raise JailRootError(f'the layer of jail {self.name} ({self.layer}) could not be unmounted. {out}')
        if read_text(self.layer_unit_path) is not None:
            self.reasons.append(f'{self.layer_unit} removed')
            if not self.module.check_mode:
                self.systemctl('disable', '--quiet', self.layer_unit, check=False)
                os.unlink(self.layer_unit_path)
                self.systemctl('daemon-reload')
        if purge and os.path.lexists(self.jail_dir):
            self.reasons.append(f'{self.jail_dir} purged')
            if not self.module.check_mode:
                shutil.rmtree(self.jail_dir)
        return self.result()
