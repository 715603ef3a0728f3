# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of jailhost.jails.jail_files: a set of files, directories and links written into a
jail root filesystem as one change, tested by a command, and rolled back when the test fails.

A jail is hostile, its root user included (docs/security.md, "The control plane"). Paths are
resolved by the kernel from a descriptor of the jail root (jailsafe.open_in: openat2 with
RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS): a symbolic link anywhere before the last component is
refused (a jail's root user could otherwise point /etc/apache2 at a host directory), and every
change is made relative to a descriptor of the parent directory, the last component opened with
O_NOFOLLOW before its mode or owner is changed, so a link planted while the task runs is refused
too. Files are replaced by a rename of a temporary file in the same directory, so a reader (or a
crash) never sees half a file. The validate commands of the jail run confined with jailsafe.run
(own namespaces, pivot_root into the root, no capabilities, no_new_privs, seccomp), never with
the host's privileges.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field

from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe

STATES = ('file', 'directory', 'link', 'absent')
# Files of a jail the module compares: larger ones are read in part only (they differ anyway).
MAX_FILE_SIZE = 64 << 20
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
    """Race-free access to paths below a jail root: every path is opened relative to a
    descriptor of the root with jailsafe.open_in (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS),
    and every change is made relative to a descriptor of its parent directory, so that a link the
    jail plants at any time, before or during the task, is refused instead of followed."""

    def __init__(self, root: str):
        self.root = check_root(root)
        self.rootfd = jailsafe.open_root(self.root)

    def close(self) -> None:
        if self.rootfd is not None:
            os.close(self.rootfd)
            self.rootfd = None

    def host_path(self, path: str) -> str:
        """For messages only: nothing is ever opened by this name."""
        return self.root + path

    def _open(self, path: str, flags: int, follow: bool = False) -> int:
        return jailsafe.open_in(self.rootfd, path, flags | os.O_CLOEXEC, follow=follow)

    @contextlib.contextmanager
    def directory(self, path: str):
        """A descriptor of the parent directory of PATH (no link on the way) and the last name.
        Raises OSError (ELOOP for a link, ENOENT for a missing parent)."""
        parent, name = os.path.split(path)
        fd = self._open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield fd, name
        finally:
            os.close(fd)

    def parents(self, path: str) -> list[str]:
        """The jail paths of the missing parent directories of `path`, outermost first;
        JailFilesError when a parent is a symbolic link or not a directory."""
        missing = []
        parts = path.strip('/').split('/')[:-1]
        current = ''
        for part in parts:
            current = f'{current}/{part}'
            if missing:
                missing.append(current)
                continue
            try:
                fd = self._open(current, os.O_PATH)
            except FileNotFoundError:
                missing.append(current)
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise JailFilesError(
                        f'{current} (a parent of {path}) is a symbolic link in the jail root: '
                        f'refusing to follow it, it could lead out of the jail') from None
                if exc.errno == errno.ENOTDIR:
                    raise JailFilesError(f'{current} (a parent of {path}) is not a directory') from None
                raise JailFilesError(jailsafe.describe_error(self.root, current, exc)) from None
            try:
                info = os.fstat(fd)
            finally:
                os.close(fd)
            if not stat.S_ISDIR(info.st_mode):
                raise JailFilesError(f'{current} (a parent of {path}) is not a directory')
        return missing

    def lstat(self, path: str):
        """os.lstat of a jail path, None if it (or a parent) does not exist; OSError for a link
        before the last component."""
        try:
            with self.directory(path) as (dirfd, name):
                return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def lexists(self, path: str) -> bool:
        return self.lstat(path) is not None

    def current(self, path: str) -> Current:
        try:
            with self.directory(path) as (dirfd, name):
                try:
                    info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    return Current('absent')
                ids = dict(mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid)
                if stat.S_ISLNK(info.st_mode):
                    return Current('link', target=os.readlink(name, dir_fd=dirfd), **ids)
                if stat.S_ISDIR(info.st_mode):
                    return Current('directory', **ids)
                if stat.S_ISREG(info.st_mode):
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                                 dir_fd=dirfd)
                    with os.fdopen(fd, 'rb') as handle:
                        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped meanwhile
                            raise JailFilesError(f'{path} changed while it was read')
                        return Current('file', content=handle.read(MAX_FILE_SIZE + 1), **ids)
                return Current('other', **ids)
        except (FileNotFoundError, NotADirectoryError):
            return Current('absent')
        except OSError as exc:
            raise JailFilesError(jailsafe.describe_error(self.root, path, exc)) from None

    def exists(self, path: str) -> bool:
        """Whether a jail path exists, resolving every symbolic link on the way as the jail would
        (an absolute target from the jail root, '..' never above it: openat2 RESOLVE_IN_ROOT)."""
        try:
            os.close(self._open(os.path.normpath('/' + path.lstrip('/')), os.O_PATH, follow=True))
        except (OSError, jailsafe.JailSafeError):
            return False
        return True

    def listdir(self, path: str) -> list[str]:
        self.parents(path + '/x')
        try:
            fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # missing, a link or not a directory
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    # Writing: every call below is given a path whose parents were checked by plan(), and is
    # made relative to a descriptor of the parent; errors are OSError (the caller rolls back).

    def write_file(self, path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
        with self.directory(path) as (dirfd, name):
            jailsafe.write_at(dirfd, name, content, mode, uid, gid)

    def write_link(self, path: str, target: str) -> None:
        with self.directory(path) as (dirfd, name):
            temporary = f'.{name}.jailhost-tmp.{os.getpid()}'
            os.symlink(target, temporary, dir_fd=dirfd)
            try:
                os.rename(temporary, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
            except BaseException:
                os.unlink(temporary, dir_fd=dirfd)
                raise

    def make_directory(self, path: str, mode: int, uid: int, gid: int) -> None:
        with self.directory(path) as (dirfd, name):
            os.mkdir(name, 0o700, dir_fd=dirfd)
        self.set_attributes(path, mode, uid, gid)

    def set_attributes(self, path: str, mode: int, uid: int, gid: int) -> None:
        with self.directory(path) as (dirfd, name):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        with self.directory(path) as (dirfd, name):
            if stat.S_ISDIR(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                os.rmdir(name, dir_fd=dirfd)
            else:
                os.unlink(name, dir_fd=dirfd)


def check_root(path: str) -> str:
    """The real path of a valid jail root (jailsafe.check_root), or JailFilesError."""
    try:
        return jailsafe.check_root(path, 'jail_files')
    except jailsafe.JailSafeError as exc:
        raise JailFilesError(str(exc)) from None


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
            if not jail.lexists(parent):
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
            if jail.lexists(entry.path):
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
                if jail.lexists(path):
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
    """The jail's own users and groups, parsed here (no NSS module of the jail is loaded); links
    are followed inside the jail only."""
    found = []
    for name in ('passwd', 'group'):
        try:
            data = jailsafe.read_file(jail.root, f'etc/{name}', 16 << 20)
        except jailsafe.JailSafeError as exc:
            raise JailFilesError(f"cannot read the jail's /etc/{name}: {exc}") from None
        found.append(parse_id_file(data.decode('utf-8', 'replace')) if data is not None else {})
    return found[0], found[1]


def check_validate(commands: list[dict], users: dict[str, int]) -> None:
    """Errors of the validate commands, raised before anything is written."""
    for command in commands:
        argv = command.get('argv') or []
        user = command.get('user') or 'root'
        if not argv:
            raise JailFilesError('a validate command needs argv')
        if not command.get('chroot', True):
            if user != 'root':
                raise JailFilesError(f'validate {" ".join(argv)}: user is only for commands run in the jail '
                                     '(chroot: true); a host command runs as the module')
        elif user != 'root' and user not in users:
            raise JailFilesError(f"validate {' '.join(argv)}: user {user!r} does not exist in the jail's /etc/passwd")


def run_validation(module, jail: Jail, command: dict) -> tuple[int, str, str]:
    """One validate command: confined in the jail root (jailsafe.run: as COMMAND[user], no
    capabilities, no network), or a host program when chroot is false."""
    argv = list(command['argv'])
    user = command.get('user') or 'root'
    if not command.get('chroot', True):
        return module.run_command(argv)
    try:
        return jailsafe.run(jail.root, argv, user=user, caps=(), network='none')
    except jailsafe.JailSafeError as exc:
        raise JailSafeRefusal(str(exc)) from None


class JailSafeRefusal(Exception):
    """A validate command that could not run (confinement, unknown user)."""


def ensure_files(module) -> dict:
    """The module's work: plan, write, test, roll back on a failed test."""
    params = module.params
    jail = Jail(params['root'])
    try:
        return _ensure_files(module, jail)
    finally:
        jail.close()


def _ensure_files(module, jail: Jail) -> dict:
    params = module.params
    users, groups = read_jail_ids(jail)
    check_validate(params['validate'] or [], users)
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
        try:
            rc, stdout, stderr = run_validation(module, jail, command)
        except JailSafeRefusal as exc:
            rc, stdout, stderr, what, output = None, '', str(exc), 'could not run', str(exc)
        else:
            what, output = 'rejected the new files', (stderr or stdout).strip()[-2000:]
        if rc != 0:
            errors = rollback(jail, undo)
            restored = ('every change was rolled back' if not errors
                        else 'the rollback failed for ' + '; '.join(errors))
            raise JailFilesError(
                f'the test {" ".join(command["argv"])} {what} ({restored}): {output}',
                rc=rc, stdout=stdout, stderr=stderr, changed=bool(errors),
                rolled_back=[change.entry.path for change in changes])
    result['validated'] = bool(params['validate'])
    return result
