# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of jailhost.jails.jail_files: a set of files, directories and links written into a
jail root filesystem as one change, tested by a command, and rolled back when the test fails.

Paths are walked component by component from the jail root with lstat: a symbolic link anywhere
before the last component is refused (a jail's root user could otherwise point /etc/apache2 at a
host directory), and the last component is opened with O_NOFOLLOW before its mode or owner is
changed. Files are replaced by a rename of a temporary file in the same directory, so a reader
(or a crash) never sees half a file.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field

STATES = ('file', 'directory', 'link', 'absent')
ROOT_UID = 0
MODE_RE = re.compile(r'^[0-7]{3,4}$')
DEFAULT_MODES = {'file': 0o644, 'directory': 0o755}
HIDDEN = '(content hidden: secret_content)\n'


class JailFilesError(Exception):
    """A failure with a message for the user; details go into the module result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.details = details


@dataclass
class Entry:
    path: str                       # absolute path inside the jail, normalized
    state: str
    content: bytes | None = None
    secret: bool = False
    src: str | None = None
    uid: int = 0
    gid: int = 0
    mode: int | None = None
    optional: bool = False


@dataclass
class Current:
    kind: str                       # 'file', 'directory', 'link', 'absent' or 'other'
    content: bytes | None = None
    target: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass
class Change:
    entry: Entry
    action: str                     # 'create', 'update', 'attributes' or 'remove'
    current: Current
    missing_parents: list = field(default_factory=list)


def check_jail_path(path: str) -> str:
    """The normalized absolute jail path, or JailFilesError for '..', '.', '//' or a relative path."""
    if not isinstance(path, str) or not path.startswith('/'):
        raise JailFilesError(f'path {path!r} must be an absolute path inside the jail')
    if '\0' in path:
        raise JailFilesError(f'path {path!r} contains a NUL byte')
    parts = path.strip('/').split('/')
    if parts == [''] or any(part in ('', '.', '..') for part in parts):
        raise JailFilesError(
            f"path {path!r} must name a file below the jail's / without '.', '..' or empty components")
    return '/' + '/'.join(parts)


def parse_mode(value, state: str, path: str) -> int | None:
    if value is None:
        return DEFAULT_MODES.get(state)
    text = str(value)
    if not MODE_RE.match(text):
        raise JailFilesError(f"mode {value!r} of {path} must be an octal string such as '0644'")
    return int(text, 8)


def parse_id_file(text: str) -> dict[str, int]:
    """name -> id from the lines of an /etc/passwd or /etc/group file."""
    ids = {}
    for line in text.splitlines():
        fields = line.split(':')
        if len(fields) >= 3 and fields[2].isdigit() and fields[0] not in ids:
            ids[fields[0]] = int(fields[2])
    return ids


def resolve_id(name: str, ids: dict[str, int], what: str, path: str) -> int:
    text = str(name)
    if text.isdigit():
        return int(text)
    if text not in ids:
        raise JailFilesError(f"{what} {text!r} of {path} does not exist in the jail's /etc/{'passwd' if what == 'owner' else 'group'}")
    return ids[text]


def parse_entries(raw: list[dict], users: dict[str, int], groups: dict[str, int]) -> list[Entry]:
    entries, seen = [], set()
    for item in raw:
        path = check_jail_path(item.get('path'))
        if path in seen:
            raise JailFilesError(f'path {path} is given more than once')
        seen.add(path)
        state = item.get('state') or 'file'
        if state not in STATES:
            raise JailFilesError(f'state {state!r} of {path} must be one of {", ".join(STATES)}')
        content, secret = item.get('content'), item.get('secret_content')
        if content is not None and secret is not None:
            raise JailFilesError(f'{path}: content and secret_content are mutually exclusive')
        if secret is not None:
            content = secret
        src = item.get('src')
        if state == 'file' and content is None:
            raise JailFilesError(f'{path}: state=file needs content or secret_content')
        if state != 'file' and content is not None:
            raise JailFilesError(f'{path}: content is only for state=file')
        if state == 'link' and not src:
            raise JailFilesError(f'{path}: state=link needs src')
        if state != 'link' and src:
            raise JailFilesError(f'{path}: src is only for state=link')
        if src and '\0' in src:
            raise JailFilesError(f'{path}: src contains a NUL byte')
        if item.get('optional') and state != 'link':
            raise JailFilesError(f'{path}: optional is only for state=link')
        entries.append(Entry(
            path=path, state=state,
            content=content.encode('utf-8') if content is not None else None,
            secret=secret is not None, src=src,
            uid=resolve_id(item.get('owner') or 'root', users, 'owner', path),
            gid=resolve_id(item.get('group') or 'root', groups, 'group', path),
            mode=parse_mode(item.get('mode'), state, path),
            optional=bool(item.get('optional')),
        ))
    return entries


def link_target_in_jail(path: str, src: str) -> str:
    """Where a link at jail path `path` pointing to `src` leads, inside the jail (lexically)."""
    joined = src if src.startswith('/') else os.path.join(os.path.dirname(path), src)
    normal = os.path.normpath(joined)
    return '/' + normal.lstrip('/')


class Jail:
    """Safe access to paths below a jail root."""

    def __init__(self, root: str):
        self.root = check_root(root)

    def host_path(self, path: str) -> str:
        return self.root + path

    def parents(self, path: str) -> list[str]:
        """The jail paths of the missing parent directories of `path`, outermost first;
        JailFilesError when a parent is a symbolic link or not a directory."""
        missing = []
        parts = path.strip('/').split('/')[:-1]
        current = ''
        for part in parts:
            current = f'{current}/{part}'
            try:
                info = os.lstat(self.host_path(current))
            except FileNotFoundError:
                missing.append(current)
                continue
            if missing:
                # Cannot happen: a parent exists below a missing one.
                raise JailFilesError(f'{current} exists below the missing directory {missing[0]}')
            if stat.S_ISLNK(info.st_mode):
                raise JailFilesError(
                    f'{current} (a parent of {path}) is a symbolic link in the jail root: '
                    f'refusing to follow it, it could lead out of the jail')
            if not stat.S_ISDIR(info.st_mode):
                raise JailFilesError(f'{current} (a parent of {path}) is not a directory')
        return missing

    def current(self, path: str) -> Current:
        host = self.host_path(path)
        try:
            info = os.lstat(host)
        except FileNotFoundError:
            return Current('absent')
        ids = dict(mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid)
        if stat.S_ISLNK(info.st_mode):
            return Current('link', target=os.readlink(host), **ids)
        if stat.S_ISDIR(info.st_mode):
            return Current('directory', **ids)
        if stat.S_ISREG(info.st_mode):
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, 'rb') as handle:
                return Current('file', content=handle.read(), **ids)
        return Current('other', **ids)

    def exists(self, path: str) -> bool:
        """Whether a jail path exists, resolving every symbolic link on the way as the jail would
        (an absolute target from the jail root, '..' never above it)."""
        pending = path.strip('/').split('/')
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ('', '.'):
                continue
            if part == '..':
                if resolved:
                    resolved.pop()
                continue
            host = self.host_path('/' + '/'.join(resolved + [part]))
            try:
                info = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                return False
            if stat.S_ISLNK(info.st_mode):
                hops += 1
                if hops > 40:
                    return False
                target = os.readlink(host)
                if target.startswith('/'):
                    resolved = []
                pending = target.strip('/').split('/') + pending
                continue
            if pending and not stat.S_ISDIR(info.st_mode):
                return False
            resolved.append(part)
        return True

    def listdir(self, path: str) -> list[str]:
        self.parents(path + '/x')
        host = self.host_path(path)
        if os.path.islink(host) or not os.path.isdir(host):
            return []
        return sorted(os.listdir(host))

    # Writing: every call below is given a path whose parents were checked by plan().

    def write_file(self, path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
        host = self.host_path(path)
        directory, name = os.path.split(host)
        temporary = os.path.join(directory, f'.{name}.jailhost-tmp.{os.getpid()}')
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(content)
                handle.flush()
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.rename(temporary, host)
        except BaseException:
            if os.path.lexists(temporary):
                os.unlink(temporary)
            raise

    def write_link(self, path: str, target: str) -> None:
        host = self.host_path(path)
        directory, name = os.path.split(host)
        temporary = os.path.join(directory, f'.{name}.jailhost-tmp.{os.getpid()}')
        os.symlink(target, temporary)
        try:
            os.rename(temporary, host)
        except BaseException:
            os.unlink(temporary)
            raise

    def make_directory(self, path: str, mode: int, uid: int, gid: int) -> None:
        host = self.host_path(path)
        os.mkdir(host, 0o700)
        self.set_attributes(path, mode, uid, gid)

    def set_attributes(self, path: str, mode: int, uid: int, gid: int) -> None:
        fd = os.open(self.host_path(path), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        host = self.host_path(path)
        if os.path.isdir(host) and not os.path.islink(host):
            os.rmdir(host)
        else:
            os.unlink(host)


def check_root(path: str) -> str:
    """The real path of a valid jail root, or JailFilesError."""
    if os.geteuid() != ROOT_UID:
        raise JailFilesError('jail_files must run as root on the target (use become: true)')
    if not os.path.isabs(path):
        raise JailFilesError(f'root {path} must be an absolute path')
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise JailFilesError(f'root {path} does not exist or is not a directory')
    if real == '/':
        raise JailFilesError(f'root {path} is the host itself; use ansible.builtin.copy for the host')
    owner = os.stat(real).st_uid
    if owner != ROOT_UID:
        raise JailFilesError(f'root {path} is owned by uid {owner}, not by root')
    return real


def wanted_paths(entries: list[Entry]) -> set[str]:
    return {entry.path for entry in entries if entry.state != 'absent'}


def purge_entries(jail: Jail, purge: list[dict], entries: list[Entry]) -> list[Entry]:
    """Absent entries for the files matching a purge rule that no entry declares."""
    wanted = wanted_paths(entries)
    declared = {entry.path for entry in entries}
    extra = []
    for rule in purge:
        directory = check_jail_path(rule.get('path'))
        patterns = rule.get('patterns') or []
        if not patterns:
            raise JailFilesError(f'purge of {directory} needs patterns')
        for name in jail.listdir(directory):
            path = f'{directory}/{name}'
            if path in wanted or path in declared:
                continue
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                continue
            if jail.current(path).kind == 'directory':
                continue
            declared.add(path)
            extra.append(Entry(path=path, state='absent'))
    return extra


def plan(jail: Jail, entries: list[Entry]) -> list[Change]:
    """What must change, with every error raised before anything is written."""
    changes = []
    # A link may point at a file or directory that this same task creates.
    created = wanted_paths(entries)
    for entry in entries:
        missing = jail.parents(entry.path)
        current = jail.current(entry.path)
        if entry.state == 'absent':
            if current.kind == 'directory':
                raise JailFilesError(f'{entry.path} is a directory: state=absent removes files and links only')
            if current.kind != 'absent':
                changes.append(Change(entry, 'remove', current))
            continue
        if current.kind == 'other':
            raise JailFilesError(f'{entry.path} exists and is neither a file, a directory nor a link')
        if entry.state == 'directory':
            if current.kind not in ('absent', 'directory'):
                raise JailFilesError(f'{entry.path} exists and is not a directory')
            if current.kind == 'absent':
                changes.append(Change(entry, 'create', current, missing))
            elif (current.mode, current.uid, current.gid) != (entry.mode, entry.uid, entry.gid):
                changes.append(Change(entry, 'attributes', current))
            continue
        if current.kind == 'directory':
            raise JailFilesError(f'{entry.path} is a directory, not a {entry.state}')
        if entry.state == 'link':
            target = link_target_in_jail(entry.path, entry.src)
            if target not in created and not jail.exists(target):
                if entry.optional:
                    continue
                raise JailFilesError(
                    f'{entry.path}: the link target {entry.src} ({target}) does not exist in the jail',
                    path=entry.path, target=target)
            if current.kind != 'link' or current.target != entry.src:
                changes.append(Change(entry, 'create' if current.kind == 'absent' else 'update', current, missing))
            continue
        # state == 'file'
        if current.kind != 'file' or current.content != entry.content:
            changes.append(Change(entry, 'create' if current.kind == 'absent' else 'update', current, missing))
        elif (current.mode, current.uid, current.gid) != (entry.mode, entry.uid, entry.gid):
            changes.append(Change(entry, 'attributes', current))
    return changes


def apply(jail: Jail, changes: list[Change], undo: list) -> None:
    """Make the changes, appending to the undo log (applied in reverse order by rollback) before
    each step, so that a failure half-way can be undone too."""
    for change in changes:
        entry = change.entry
        for parent in change.missing_parents:
            if not os.path.lexists(jail.host_path(parent)):
                undo.append(('remove', parent, None))
                jail.make_directory(parent, 0o755, 0, 0)
        if change.action in ('update', 'attributes', 'remove'):
            undo.append(('restore', entry.path, change.current))
        else:
            undo.append(('remove', entry.path, None))
        if change.action == 'remove':
            jail.remove(entry.path)
        elif change.action == 'attributes':
            jail.set_attributes(entry.path, entry.mode, entry.uid, entry.gid)
        elif entry.state == 'directory':
            # It may have been created just before as the missing parent of an earlier entry.
            if os.path.lexists(jail.host_path(entry.path)):
                jail.set_attributes(entry.path, entry.mode, entry.uid, entry.gid)
            else:
                jail.make_directory(entry.path, entry.mode, entry.uid, entry.gid)
        elif entry.state == 'link':
            jail.write_link(entry.path, entry.src)
        else:
            jail.write_file(entry.path, entry.content, entry.mode, entry.uid, entry.gid)


def rollback(jail: Jail, undo: list) -> list[str]:
    """Put back what apply() changed; returns the errors (the rollback goes on after one)."""
    errors = []
    for action, path, current in reversed(undo):
        try:
            if action == 'remove':
                if os.path.lexists(jail.host_path(path)):
                    jail.remove(path)
            elif current.kind == 'file':
                jail.write_file(path, current.content, current.mode, current.uid, current.gid)
            elif current.kind == 'link':
                jail.write_link(path, current.target)
            elif current.kind == 'directory':
                jail.set_attributes(path, current.mode, current.uid, current.gid)
        except OSError as exc:
            errors.append(f'{path}: {exc}')
    return errors


def describe(kind: str, content: bytes | None = None, target: str | None = None, mode=None,
             uid=None, gid=None, secret: bool = False) -> str:
    """A text for the diff of one path."""
    if kind == 'absent':
        return ''
    header = f'# {kind}, mode {mode:04o}, owner {uid}, group {gid}\n' if mode is not None else f'# {kind}\n'
    if kind == 'link':
        return f'{header}-> {target}\n'
    if kind == 'file':
        if secret:
            return header + HIDDEN
        try:
            return header + content.decode('utf-8')
        except UnicodeDecodeError:
            return header + f'(binary, {len(content)} bytes)\n'
    return header


def diff_of(change: Change) -> dict:
    entry, current = change.entry, change.current
    before = describe(current.kind, current.content, current.target, current.mode, current.uid,
                      current.gid, secret=entry.secret)
    if change.action == 'remove':
        after = ''
    elif entry.state == 'link':
        after = describe('link', target=entry.src)
    else:
        after = describe(entry.state, entry.content, None, entry.mode, entry.uid, entry.gid, secret=entry.secret)
    if current.kind == 'link' and entry.state == 'link':
        before = describe('link', target=current.target)
    return {'before_header': entry.path, 'after_header': entry.path, 'before': before, 'after': after}


def read_jail_ids(jail: Jail) -> tuple[dict[str, int], dict[str, int]]:
    found = []
    for name in ('passwd', 'group'):
        current = jail.current(f'/etc/{name}')
        found.append(parse_id_file(current.content.decode('utf-8', 'replace')) if current.kind == 'file' else {})
    return found[0], found[1]


def ensure_files(module) -> dict:
    """The module's work: plan, write, test, roll back on a failed test."""
    params = module.params
    jail = Jail(params['root'])
    users, groups = read_jail_ids(jail)
    entries = parse_entries(params['files'] or [], users, groups)
    entries += purge_entries(jail, params['purge'] or [], entries)
    changes = plan(jail, entries)
    result = {
        'changed': bool(changes),
        'root': jail.root,
        'changed_paths': [change.entry.path for change in changes],
        'changes': [{'path': change.entry.path, 'action': change.action} for change in changes],
        'validated': False,
    }
    if module._diff:
        result['diff'] = [diff_of(change) for change in changes]
    if not changes or module.check_mode:
        return result
    undo = []
    try:
        apply(jail, changes, undo)
    except OSError as exc:
        errors = rollback(jail, undo)
        raise JailFilesError(
            f'writing the files failed ({exc}); '
            + ('every change was rolled back' if not errors else 'the rollback failed for ' + '; '.join(errors)),
            changed=bool(errors), rolled_back=[change.entry.path for change in changes]) from exc
    for command in params['validate'] or []:
        argv = list(command['argv'])
        if command.get('chroot', True):
            argv = ['chroot', jail.root] + argv
        rc, stdout, stderr = module.run_command(argv)
        if rc != 0:
            errors = rollback(jail, undo)
            restored = ('every change was rolled back' if not errors
                        else 'the rollback failed for ' + '; '.join(errors))
            raise JailFilesError(
                f'the test {" ".join(command["argv"])} rejected the new files ({restored}): '
                f'{(stderr or stdout).strip()[-2000:]}',
                rc=rc, stdout=stdout, stderr=stderr, changed=bool(errors),
                rolled_back=[change.entry.path for change in changes])
    result['validated'] = bool(params['validate'])
    return result
