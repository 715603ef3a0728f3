# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Logic of jailhost.jails.app_user: one application's OS user and group, with the same uid and
gid on the host and in the application's jail root.

The first part is pure (validation, parsing of passwd/group/shadow, uid allocation, planning and
the command lines); ``ensure_app_user`` reads the files, plans, and runs the shadow tools
(groupadd/useradd/usermod/userdel/groupdel, with ``--prefix ROOT`` for the jail root). Account
databases are only ever *read* here: every change goes through the shadow tools, which lock the
files, keep passwd/shadow and group/gshadow consistent and write them atomically.

A jail root is an overlay: writing ROOT/etc/passwd writes the jail's own upper layer, never the
shared base image.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JAIL_NAME_RE, valid_jail_name

# Debian's user-name rules (adduser's NAME_REGEX without the trailing '$' of machine accounts),
# at most 32 characters: no '/', no '.', no upper case, so never a path component like '..'.
NAME_RE = re.compile(r'[a-z][a-z0-9_-]{0,31}')
# A jail name: the one rule of the collection (jailsafe.valid_jail_name).
JAIL_RE = JAIL_NAME_RE
# uids/gids below FIRST_REGULAR_ID are Debian's system range (0-99 static, 100-999 dynamic system
# accounts); 60000-64999 are reserved by Debian policy, 65534 is nobody.
FIRST_REGULAR_ID = 1000
LAST_REGULAR_ID = 59999
# One SSH public key on one line: type, base64 blob, optional comment. Options (from=, command=)
# are not accepted: the forced command is sshd's, not the key's.
SSH_KEY_RE = re.compile(r'(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|'
                        r'sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\n\r]*)?')
# Directories a home must not be (or be under): a user-owned directory there would let the app
# user change what root runs or reads.
FORBIDDEN_HOME_PREFIXES = ('/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc',
                           '/root', '/run', '/sbin', '/sys', '/usr', '/var/lib/dpkg', '/var/lib/apt')

SHELLS = ('nologin', 'sandboxed')
NOLOGIN = '/usr/sbin/nologin'
# Shell inside the jail of a sandboxed login (Essential in every Debian root).
JAIL_LOGIN_SHELL = '/bin/bash'
# Host-side login of a sandboxed user (installed by the apps role): it runs sudo of the enter
# helper, which joins the app's running jail (docs/apps.md).
LOGIN_SHELL = '/usr/local/sbin/jailhost-app-login'
# Root-managed files of the login: authorized keys (sshd AuthorizedKeysFile, the user cannot
# add keys) and the jail each user logs into.
KEYS_DIR = '/etc/jailhost/ssh/authorized_keys'
LOGIN_DIR = '/etc/jailhost/login'
# Home of a jailed app user in the host's passwd: an empty directory owned by root, shared by all
# of them. Never the app's directory: that one is writable by the app's own workers, and host-side
# programs of the user's login (sshd's pam_env user_readenv, the systemd user manager of
# libpam-systemd, a shell) would read the dotfiles a hijacked app planted there (docs/apps.md).
# The jail's passwd keeps the real home. Not under the jails' directory (/var/lib/jailhost), which
# may be root-only: sshd and pam_env must reach the home as the user.
LOGIN_HOME = '/var/lib/jailhost-login-home'
# Every app user is in this host group; sshd's Match Group block for it (apps role) forbids
# forwarding and passwords and forces the sandboxed login.
APPS_GROUP = 'jailhost-apps'
# Where the host's files are read and written: '' on a real host (unit tests point it elsewhere).
HOST_PREFIX = ''


class AppUserError(Exception):
    """A failure reported to the user; ``details`` are extra fields of the failed result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.details = details


@dataclass(frozen=True)
class Account:
    """One line of a passwd file."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class Group:
    """One line of a group file."""

    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass
class Database:
    """The account database of one root (the host's '/' or a jail root)."""

    users: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    # user name -> password field of shadow (None: no shadow line)
    passwords: dict[str, str] = field(default_factory=dict)

    def user_with_uid(self, uid: int) -> Account | None:
        return next((a for a in self.users.values() if a.uid == uid), None)

    def group_with_gid(self, gid: int) -> Group | None:
        return next((g for g in self.groups.values() if g.gid == gid), None)


# Parsing


def _fields(text: str, count: int):
    for line in text.splitlines():
        if not line.strip() or line.startswith(('#', '+', '-')):
            continue
        parts = line.split(':')
        if len(parts) >= count:
            yield parts


def parse_passwd(text: str) -> dict[str, Account]:
    users = {}
    for parts in _fields(text, 7):
        try:
            users[parts[0]] = Account(parts[0], int(parts[2]), int(parts[3]), parts[5], parts[6])
        except ValueError:
            continue
    return users


def parse_group(text: str) -> dict[str, Group]:
    groups = {}
    for parts in _fields(text, 4):
        try:
            groups[parts[0]] = Group(parts[0], int(parts[2]), tuple(m for m in parts[3].split(',') if m))
        except ValueError:
            continue
    return groups


def parse_shadow(text: str) -> dict[str, str]:
    return {parts[0]: parts[1] for parts in _fields(text, 2)}


def is_locked(password: str | None) -> bool:
    """No password can be used: empty shadow fields are *open* accounts, '!...' and '*' are not."""
    return password is not None and password.startswith(('!', '*'))


# Validation


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise AppUserError(
            f'name {name!r} is not a valid user name: lower-case letters, digits, "_" and "-", starting with '
            'a letter, at most 32 characters (no "/", ".", "..", spaces or upper case)')
    return name


def validate_jail(jail: str | None) -> str | None:
    if jail is not None and not valid_jail_name(jail):
        raise AppUserError(f'jail {jail!r} is not a jail name (a lower-case letter, then lower-case letters, digits and "-", at most 32 characters)')
    return jail


def validate_id(kind: str, value: int | None) -> int | None:
    if value is not None and not FIRST_REGULAR_ID <= value <= LAST_REGULAR_ID:
        raise AppUserError(
            f'{kind} {value} is outside {FIRST_REGULAR_ID}-{LAST_REGULAR_ID}: ids below {FIRST_REGULAR_ID} are '
            'the system range, 60000 and above are reserved (Debian policy 9.2.2)')
    return value


def validate_range(first: int, last: int) -> tuple[int, int]:
    validate_id('uid_range start', first)
    validate_id('uid_range end', last)
    if first > last:
        raise AppUserError(f'uid_range {first}-{last} is empty')
    return first, last


def validate_home(home: str) -> str:
    if (not isinstance(home, str) or not home.startswith('/') or home != os.path.normpath(home)
            or home.startswith('//') or '..' in home.split('/') or any(c in home for c in ':\n\r\t ')):
        raise AppUserError(f'home {home!r} must be an absolute, normalised path without "..", ":" or spaces')
    if home == '/' or any(home == p or home.startswith(p + '/') for p in FORBIDDEN_HOME_PREFIXES):
        raise AppUserError(f'home {home!r} is a system directory (or under one): choose e.g. /srv/<name>')
    return home


def validate_mode(mode) -> int:
    try:
        value = int(str(mode), 8) if not isinstance(mode, int) else mode
    except ValueError:
        raise AppUserError(f'home_mode {mode!r} is not an octal mode') from None
    if value & ~0o7777 or value & 0o027 or value & 0o700 != 0o700:
        raise AppUserError(
            f'home_mode {mode!r} must be 0750 or stricter (no group write, nothing for others) and give the owner rwx')
    return value


def validate_keys(keys: list[str], shell: str) -> list[str]:
    for key in keys:
        if not isinstance(key, str) or not SSH_KEY_RE.fullmatch(key.strip()):
            raise AppUserError(
                f'authorized_keys: {str(key)[:40]!r}... is not one SSH public key line "TYPE BASE64 [COMMENT]" '
                '(key options are not accepted)')
    if keys and shell != 'sandboxed':
        raise AppUserError('authorized_keys need shell=sandboxed: a nologin user cannot log in')
    return [k.strip() for k in keys]


# Planning


def allocate_id(first: int, last: int, taken: set[int]) -> int:
    for candidate in range(first, last + 1):
        if candidate not in taken:
            return candidate
    raise AppUserError(f'no free uid/gid left in uid_range {first}-{last}')


def choose_ids(name: str, uid: int | None, gid: int | None, dbs: list[Database], id_range: tuple[int, int],
               home_owner: int | None = None) -> tuple[int, int]:
    """The uid and gid of the user: the requested ones, else the existing ones (stable across runs),
    else the owner of a kept home (a re-created app gets its files back), else the lowest free one in
    the range (free for users *and* groups in every database, so that gid = uid).

    Raises on any conflict, before anything changes.
    """
    existing_uids = {db.users[name].uid for db in dbs if name in db.users}
    existing_gids = {db.groups[name].gid for db in dbs if name in db.groups}
    if len(existing_uids) > 1:
        raise AppUserError(f'user {name} has different uids on the host and in the jail: {sorted(existing_uids)}')
    if len(existing_gids) > 1:
        raise AppUserError(f'group {name} has different gids on the host and in the jail: {sorted(existing_gids)}')
    for kind, wanted, existing in (('uid', uid, existing_uids), ('gid', gid, existing_gids)):
        if wanted is not None and existing and wanted not in existing:
            raise AppUserError(
                f'{kind} {wanted} was requested, but {name} already has {kind} {min(existing)}: '
                f'renumbering is not supported (files are owned by the old {kind})')
        if existing:
            validate_id(f'existing {kind} of {name}', min(existing))
    taken_uids = {a.uid for db in dbs for a in db.users.values() if a.name != name}
    taken_gids = {g.gid for db in dbs for g in db.groups.values() if g.name != name}
    if uid is None:
        uid = min(existing_uids) if existing_uids else None
    if uid is None and home_owner is not None and FIRST_REGULAR_ID <= home_owner <= LAST_REGULAR_ID \
            and home_owner not in taken_uids and home_owner not in taken_gids:
        uid = home_owner
    if uid is None:
        uid = allocate_id(*id_range, taken_uids | taken_gids)
    if gid is None:
        gid = min(existing_gids) if existing_gids else (uid if uid not in taken_gids else None)
    if gid is None:
        gid = allocate_id(*id_range, taken_gids)
    if uid in taken_uids:
        owner = next(a.name for db in dbs for a in db.users.values() if a.uid == uid and a.name != name)
        raise AppUserError(f'uid {uid} already belongs to user {owner}')
    if gid in taken_gids:
        owner = next(g.name for db in dbs for g in db.groups.values() if g.gid == gid and g.name != name)
        raise AppUserError(f'gid {gid} already belongs to group {owner}')
    return uid, gid


@dataclass(frozen=True)
class Target:
    """Where an account lives: the host ('' prefix) or a jail root."""

    label: str
    prefix: str          # '' for the host, the jail root otherwise
    home: str            # home in passwd of this database
    shell: str
    supplementary: tuple[str, ...] = ()

    def path(self, relative: str) -> str:
        return (self.prefix or '') + relative


def prefix_args(target: Target) -> list[str]:
    return ['--prefix', target.prefix] if target.prefix else []


def account_commands(name: str, uid: int, gid: int, target: Target, db: Database) -> list[list[str]]:
    """Shadow-tool commands that make DB match the wanted account (empty: nothing to do)."""
    cmds = []
    if name not in db.groups:
        cmds.append(['groupadd', *prefix_args(target), '--gid', str(gid), name])
    account = db.users.get(name)
    if account is None:
        # No -p: useradd writes '!' in shadow, a locked password. --no-create-home: the module
        # creates the home itself, with the mode asked for and not from /etc/skel.
        cmds.append(['useradd', *prefix_args(target), '--uid', str(uid), '--gid', str(gid),
                     '--no-user-group', '--no-create-home', '--home-dir', target.home, '--shell', target.shell,
                     '--comment', f'jailhost app {name}']
                    + (['--groups', ','.join(target.supplementary)] if target.supplementary else [])
                    + [name])
        return cmds
    options = []
    if account.gid != gid:
        options += ['--gid', str(gid)]
    if account.home != target.home:
        options += ['--home', target.home]
    if account.shell != target.shell:
        options += ['--shell', target.shell]
    missing = [g for g in target.supplementary if name not in db.groups.get(g, Group(g, -1)).members]
    if missing:
        options += ['--append', '--groups', ','.join(missing)]
    if options:
        cmds.append(['usermod', *prefix_args(target), *options, name])
    if not is_locked(db.passwords.get(name)):
        cmds.append(['usermod', *prefix_args(target), '--lock', name])
    return cmds


def removal_commands(name: str, target: Target, db: Database) -> list[list[str]]:
    cmds = []
    if name in db.users:
        # Without --remove: the home stays unless purge (removed by the module itself).
        cmds.append(['userdel', *prefix_args(target), name])
    if name in db.groups:
        cmds.append(['groupdel', *prefix_args(target), name])
    return cmds


def passwd_line(name: str, uid: int, gid: int, target: Target) -> str:
    return f'{name}:x:{uid}:{gid}:jailhost app {name}:{target.home}:{target.shell}'


def describe(name: str, db: Database, target: Target) -> str:
    """Text of the account in DB, for diff mode."""
    lines = []
    account = db.users.get(name)
    if account:
        lines.append(f'{target.label} passwd: {name}:x:{account.uid}:{account.gid}:{account.home}:{account.shell}')
        lines.append(f'{target.label} password: {"locked" if is_locked(db.passwords.get(name)) else "USABLE"}')
    group = db.groups.get(name)
    if group:
        lines.append(f'{target.label} group: {name}:{group.gid}')
    for extra in target.supplementary:
        if name in db.groups.get(extra, Group(extra, -1)).members:
            lines.append(f'{target.label} member of: {extra}')
    return '\n'.join(lines)


def describe_wanted(name: str, uid: int, gid: int, target: Target) -> str:
    lines = [f'{target.label} passwd: {name}:x:{uid}:{gid}:{target.home}:{target.shell}',
             f'{target.label} password: locked', f'{target.label} group: {name}:{gid}']
    lines += [f'{target.label} member of: {extra}' for extra in target.supplementary]
    return '\n'.join(lines)


def keys_text(keys: list[str]) -> str:
    return ''.join(f'{k}\n' for k in keys)


# Running


def read_database(prefix: str) -> Database:
    def read(relative, mandatory=True):
        path = (prefix or '') + relative
        try:
            with open(path, encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            if mandatory:
                raise AppUserError(f'{path} does not exist: not a Debian root filesystem') from None
            return ''
    return Database(parse_passwd(read('/etc/passwd')), parse_group(read('/etc/group')),
                    parse_shadow(read('/etc/shadow', mandatory=False)))


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class Runner:
    """Runs the commands and file changes (nothing in check mode) and records what changed."""

    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.changed = False
        self.commands: list[list[str]] = []

    def run(self, argv: list[str]):
        self.changed = True
        self.commands.append(argv)
        if self.check:
            return
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise AppUserError(f'{argv[0]} failed (rc {rc}): {err.strip() or out.strip()}',
                               rc=rc, stdout=out, stderr=err, cmd=argv)

    def write(self, path: str, content: str, mode: int) -> bool:
        if _read_text(path) == content and stat.S_IMODE(os.stat(path).st_mode) == mode \
                and os.stat(path).st_uid == 0:
            return False
        self.changed = True
        if not self.check:
            self.makedirs(os.path.dirname(path), 0o755)
            tmp = f'{path}.jailhost-tmp'
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), 'w', encoding='utf-8') as out:
                out.write(content)
            os.chown(tmp, 0, 0)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        return True

    def remove(self, path: str) -> bool:
        if not os.path.lexists(path):
            return False
        self.changed = True
        if not self.check:
            os.unlink(path)
        return True

    def makedirs(self, path: str, mode: int):
        if os.path.isdir(path):
            return
        self.makedirs(os.path.dirname(path), mode)
        self.changed = True
        if not self.check:
            os.mkdir(path, mode)
            os.chown(path, 0, 0)
            os.chmod(path, mode)


def check_home_path(base: str, home: str) -> None:
    """Refuse a home whose path, below BASE (the jail root as the host sees it), has a symbolic link
    or a non-directory: a jail (root inside it) can create symlinks in its own layer, and following
    one from the host would create or chown a directory of the host."""
    path = base
    for part in home.strip('/').split('/'):
        path = os.path.join(path, part)
        if not os.path.lexists(path):
            return
        if os.path.islink(path) or not os.path.isdir(path):
            raise AppUserError(f'{path} exists and is not a directory (a symbolic link is refused)')


def ensure_home(runner: Runner, path: str, uid: int, gid: int, mode: int) -> dict:
    """The app's home: a real directory (never a symlink) owned by uid:gid with MODE."""
    before = None
    if os.path.lexists(path):
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise AppUserError(f'{path} exists and is not a directory (a symbolic link is refused)')
        before = {'uid': st.st_uid, 'gid': st.st_gid, 'mode': f'{stat.S_IMODE(st.st_mode):04o}'}
    after = {'uid': uid, 'gid': gid, 'mode': f'{mode:04o}'}
    if before == after:
        return {'before': before, 'after': after}
    runner.changed = True
    if not runner.check:
        if before is None:
            runner.makedirs(os.path.dirname(path), 0o755)
            os.mkdir(path, 0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    return {'before': before, 'after': after}


def purge_home(runner: Runner, path: str) -> bool:
    if not os.path.lexists(path):
        return False
    runner.changed = True
    if not runner.check:
        import shutil
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
    return True


def jail_root_of(params: dict) -> str | None:
    if not params['jail']:
        return None
    return os.path.join(params['jails_dir'], params['jail'], 'root')


def host_home_of(params: dict, root: str | None) -> str:
    """The user's home in the host's passwd: LOGIN_HOME for a user of a jail (nothing the jail can
    write), the home itself for a user without a jail."""
    return LOGIN_HOME if root else params['home']


def ensure_login_home(runner: Runner) -> None:
    """LOGIN_HOME: a real directory (never a link) owned by root, mode 0755, below directories only
    root can change."""
    path = HOST_PREFIX + LOGIN_HOME
    parent = os.path.dirname(LOGIN_HOME)
    while True:
        where = HOST_PREFIX + parent if parent != '/' else HOST_PREFIX or '/'
        if os.path.lexists(where):
            st = os.lstat(where)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
                raise AppUserError(f'{where} (above {LOGIN_HOME}) must be a directory owned by root and writable by '
                                   'root only')
        if parent == '/':
            break
        parent = os.path.dirname(parent)
    if not os.path.lexists(path):
        runner.makedirs(path, 0o755)
        return
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise AppUserError(f'{path} exists and is not a directory (a symbolic link is refused)')
    if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755):
        return
    runner.changed = True
    if not runner.check:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)


def ensure_app_user(module) -> dict:
    params = module.params
    name = validate_name(params['name'])
    jail = validate_jail(params['jail'])
    state = params['state']
    home = validate_home(params['home'] or f'/srv/{name}')
    params['home'] = home
    id_range = validate_range(*params['uid_range'])
    uid = validate_id('uid', params['uid'])
    gid = validate_id('gid', params['gid'])
    mode = validate_mode(params['home_mode'])
    shell = params['shell']
    keys = validate_keys(params['authorized_keys'] or [], shell)
    if shell == 'sandboxed' and not jail:
        raise AppUserError('shell=sandboxed needs a jail: the login lands in that jail')
    root = jail_root_of(params)
    jail_gone = root is not None and not os.path.isfile(os.path.join(root, 'etc/passwd')) and state == 'absent'
    if jail_gone:
        # The jail root is gone (removed by the rootfs role): only the host side is left to remove,
        # and there is no home to purge (the rootfs role's purge deletes the jail's data).
        root = None
    if root is not None and not os.path.isfile(os.path.join(root, 'etc/passwd')):
        raise AppUserError(f'{root} is not a mounted jail root (no etc/passwd): run the rootfs role for jail {jail}')
    if state == 'present' and shell == 'sandboxed' and not os.access(HOST_PREFIX + LOGIN_SHELL, os.X_OK):
        raise AppUserError(f'{LOGIN_SHELL} is missing: the sandboxed login is installed by the jailhost.jails.apps '
                           'role (tasks/login.yml)')

    host_target = Target('host', '', host_home_of(params, root),
                         LOGIN_SHELL if shell == 'sandboxed' else NOLOGIN, (APPS_GROUP,))
    jail_target = Target(f'jail {jail}', root, home, JAIL_LOGIN_SHELL if shell == 'sandboxed' else NOLOGIN) \
        if root else None
    targets = [host_target] + ([jail_target] if jail_target else [])
    dbs = [read_database(t.prefix or HOST_PREFIX) for t in targets]
    # The app's directory as the host sees it (through the jail's root mount).
    home_path = root + home if root else HOST_PREFIX + host_target.home
    runner = Runner(module)
    result = {'name': name, 'jail': jail, 'home': home, 'host_home': home_path, 'state': state}
    before_text = '\n'.join(filter(None, (describe(name, db, t) for db, t in zip(dbs, targets))))
    keys_path = HOST_PREFIX + os.path.join(KEYS_DIR, name)
    login_path = HOST_PREFIX + os.path.join(LOGIN_DIR, name)
    before_keys = _read_text(keys_path)

    if state == 'absent':
        for target, db in zip(targets, dbs):
            for argv in removal_commands(name, target, db):
                # userdel also removes the user's own group where login.defs says
                # USERGROUPS_ENAB yes (Debian's default): groupdel only what is left.
                if argv[0] == 'groupdel' and not runner.check \
                        and name not in read_database(target.prefix or HOST_PREFIX).groups:
                    continue
                runner.run(argv)
        runner.remove(keys_path)
        runner.remove(login_path)
        purged = params['purge'] and not jail_gone and purge_home(runner, home_path)
        result.update(changed=runner.changed, commands=runner.commands, purged=bool(purged))
        if module._diff:
            result['diff'] = {'before': before_text + '\n' + (before_keys or ''), 'after': '',
                              'before_header': name, 'after_header': name}
        return result

    check_home_path(root or HOST_PREFIX or '/', home)
    home_owner = os.lstat(home_path).st_uid if os.path.isdir(home_path) and not os.path.islink(home_path) else None
    uid, gid = choose_ids(name, uid, gid, dbs, id_range, home_owner)
    # The host group of all app users, for sshd's Match Group (created once, a system group).
    if APPS_GROUP not in dbs[0].groups:
        runner.run(['groupadd', '--system', APPS_GROUP])
        dbs[0].groups[APPS_GROUP] = Group(APPS_GROUP, -1)
    if root:
        ensure_login_home(runner)
    for target, db in zip(targets, dbs):
        for argv in account_commands(name, uid, gid, target, db):
            runner.run(argv)
    home_state = ensure_home(runner, home_path, uid, gid, mode)
    if shell == 'sandboxed':
        runner.write(login_path, f'{jail}\n', 0o644)
        runner.write(keys_path, keys_text(keys), 0o644)
    else:
        runner.remove(login_path)
        runner.remove(keys_path)
    after_text = '\n'.join(describe_wanted(name, uid, gid, t) for t in targets)
    result.update(changed=runner.changed, uid=uid, gid=gid, shell=shell, commands=runner.commands,
                  host_shell=host_target.shell)
    if module._diff:
        result['diff'] = {
            'before': '\n'.join([before_text, f'home: {home_state["before"]}', before_keys or '']),
            'after': '\n'.join([after_text, f'home: {home_state["after"]}',
                                keys_text(keys) if shell == 'sandboxed' else '']),
            'before_header': name, 'after_header': name}
    return result
