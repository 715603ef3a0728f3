# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one place where host code touches a jail root: read, write, and run programs in it.

A jail is hostile, root inside it included: it may replace any file of its own root with a
symbolic link, a trojan, a hook or a dotfile. The rule of the collection (docs/security.md,
"The control plane") is that host privileges never execute a program, load a library or a
configuration, or follow a link that a jail can change. This file is how the code keeps it:

* **Paths** inside a root are resolved by the kernel with ``openat2(RESOLVE_IN_ROOT |
  RESOLVE_NO_MAGICLINKS)`` (a symbolic link can never lead above the root) and, for writes, with
  ``RESOLVE_NO_SYMLINKS`` (a planted link is refused, not followed). On a kernel without openat2
  (before 5.6) the same is done by a component-wise ``O_NOFOLLOW`` walk that refuses every link.
  Files are written atomically (temporary file + rename in the same directory), owner and mode are
  set through the descriptor, reads are bounded.
* **Programs** of a jail root run only through :func:`run` (or :func:`enter` for an app owner's
  login into a running jail), which confines the process *before* the first jail file is executed:
  a fresh mount namespace whose root is the jail root (``pivot_root``, the host's tree detached),
  own PID, IPC, UTS and cgroup namespaces (and network, unless the command needs the host's), the
  capability bounding set reduced to what the command needs (never ``CAP_SYS_ADMIN``,
  ``CAP_SYS_CHROOT``, ``CAP_SYS_PTRACE``, ``CAP_DAC_READ_SEARCH``, ``CAP_SYS_MODULE``...),
  ``no_new_privs`` and a seccomp filter (:data:`DENIED_SYSCALLS`, namespace creation, io_uring).
  Every mount target inside the root is resolved with the rules above and mounted through its
  descriptor (``/proc/self/fd/N``), so a link planted at a mount point cannot redirect a mount.
  All of this is host code (this file, run by the host's Python); the jail's dynamic loader,
  libraries and programs are used only by the confined process.

The file uses the standard library only: the rootfs role installs a copy on the host
(/usr/local/libexec/jailhost/jailsafe.py) that roles call as a command (``jailsafe.py run``,
``jailsafe.py passwd``), and the app owners' login helper imports it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import signal
import stat
import struct
import sys

# --- names -----------------------------------------------------------------------------------

# A jail's name: unit jailhost-NAME, firejail --name, directory NAME under the jails directory.
# firejail treats an all-digit name as a PID and renames a duplicate silently; a name must start
# with a letter. One rule for the collection: the sandbox, jail_root and app_user modules and the
# roles (the jailhost.jails.jail_name test) use it.
JAIL_NAME_RE = re.compile(r'[a-z][a-z0-9-]{0,31}')
JAIL_NAME_MAX = 32


def valid_jail_name(name) -> bool:
    return isinstance(name, str) and JAIL_NAME_RE.fullmatch(name) is not None


class JailSafeError(Exception):
    """A refusal or failure with a message for the user (names the root and the path)."""


# --- the jail root ---------------------------------------------------------------------------

def check_root(path: str, what: str = 'this module') -> str:
    """The canonical path of a jail root that host code may act on, or JailSafeError.

    The root must be an absolute directory, not the host's /, owned by root and not writable by
    group or others, and so must every directory above it: otherwise another host user could swap
    the tree under us. (The jail itself cannot replace its own root directory: it is the top of its
    overlay.)"""
    if os.geteuid() != 0:
        raise JailSafeError(f'{what} must run as root on the target (use become: true)')
    if not isinstance(path, str) or not os.path.isabs(path):
        raise JailSafeError(f'root {path!r} must be an absolute path')
    real = os.path.realpath(path)
    if real == '/':
        raise JailSafeError(f'root {path} is the host itself, not a jail root')
    try:
        info = os.stat(real)
    except OSError:
        raise JailSafeError(f'root {path} does not exist') from None
    if not stat.S_ISDIR(info.st_mode):
        raise JailSafeError(f'root {path} is not a directory')
    if info.st_uid != 0:
        raise JailSafeError(f'root {path} is owned by uid {info.st_uid}, not by root: refusing to act in it')
    current = real
    while current != '/':
        info = os.stat(current)
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise JailSafeError(
                f'{current} (the root {path} or a directory above it) must be owned by root and writable '
                f'by root only (owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})')
        current = os.path.dirname(current)
    return real


def relative(path: str) -> str:
    """A jail path ('/etc/passwd' or 'etc/passwd') as a path relative to the root; refuses '..'."""
    if not isinstance(path, str) or '\0' in path:
        raise JailSafeError(f'invalid jail path {path!r}')
    parts = [part for part in path.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise JailSafeError(f"jail path {path!r} must not contain '..'")
    return '/'.join(parts)


# --- openat2 ---------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long
_MACHINE = platform.machine()

# Syscall numbers that glibc has no wrapper for (the same on every architecture since 5.x's
# unified table, except pivot_root and capset).
SYS_OPENAT2 = 437
_SYS_PIVOT_ROOT = {'x86_64': 155, 'aarch64': 41}
_SYS_CAPSET = {'x86_64': 126, 'aarch64': 91}

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_OPENAT2 = {'available': None}


def _errcheck(result, what):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f'{what}: {os.strerror(err)}')
    return result


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = struct.pack('QQQ', flags | os.O_CLOEXEC, mode, resolve)
    buf = ctypes.create_string_buffer(how, len(how))
    fd = _LIBC.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(path)),
                       buf, ctypes.c_size_t(len(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def openat2_available() -> bool:
    if _OPENAT2['available'] is None:
        try:
            os.close(_openat2(-100, '/', os.O_PATH, 0, RESOLVE_NO_MAGICLINKS))
            _OPENAT2['available'] = True
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            _OPENAT2['available'] = False
    return _OPENAT2['available']


def _walk(dirfd: int, rel: str, flags: int, mode: int) -> int:
    """The fallback of open_in: every component opened with O_NOFOLLOW; a link is refused."""
    parts = rel.split('/') if rel else []
    current = os.open('.', os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
        if not parts:
            return os.open('.', flags | os.O_CLOEXEC, dir_fd=current)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and not exc.filename:
            exc.filename = rel
        raise
    finally:
        os.close(current)


def open_in(rootfd: int, path: str, flags: int = os.O_RDONLY, mode: int = 0, *, follow: bool = False) -> int:
    """A descriptor of PATH below the directory ROOTFD, resolved by the kernel as if ROOTFD were /.

    follow=True resolves symbolic links as the jail would (never above the root): for reading
    the jail's data. follow=False refuses any link on the way (ELOOP): for every write, owner or
    mode change and mount point. Magic links (/proc/PID/...) are refused either way."""
    rel = relative(path)
    if openat2_available():
        resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
        return _openat2(rootfd, rel or '.', flags, mode, resolve)
    if follow:
        # Without openat2 there is no safe way to follow a link inside the root: refuse them.
        pass
    return _walk(rootfd, rel, flags, mode)


def open_root(root: str) -> int:
    """An O_PATH descriptor of a checked jail root directory (never a link)."""
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def describe_error(root: str, path: str, exc: OSError) -> str:
    where = f'{root.rstrip("/")}/{relative(path)}'
    if exc.errno == errno.ELOOP:
        return f'{where}: a symbolic link on the way, refused (it could lead out of the jail)'
    if exc.errno == errno.EXDEV:
        return f'{where}: resolves outside the jail root, refused'
    return f'{where}: {exc.strerror}'


def read_file(root: str, path: str, limit: int = 4 << 20, *, follow: bool = True) -> bytes | None:
    """The content of a regular file of the jail (None if it does not exist); at most LIMIT bytes,
    a larger file, a device or a FIFO is refused (a jail cannot make the host block or fill its
    memory)."""
    rootfd = open_root(root)
    try:
        try:
            fd = open_in(rootfd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY, follow=follow)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise JailSafeError(describe_error(root, path, exc)) from None
        with os.fdopen(fd, 'rb') as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise JailSafeError(f'{root.rstrip("/")}/{relative(path)} is not a regular file')
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise JailSafeError(f'{root.rstrip("/")}/{relative(path)} is larger than {limit} bytes')
        return data
    finally:
        os.close(rootfd)


def read_tail(root: str, path: str, size: int = 8192, offset: int | None = None) -> bytes:
    """The last SIZE bytes (or those after OFFSET) of a jail file; b'' if it does not exist."""
    rootfd = open_root(root)
    try:
        try:
            fd = open_in(rootfd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY, follow=False)
        except FileNotFoundError:
            return b''
        except OSError as exc:
            raise JailSafeError(describe_error(root, path, exc)) from None
        with os.fdopen(fd, 'rb') as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise JailSafeError(f'{root.rstrip("/")}/{relative(path)} is not a regular file')
            start = max(0, info.st_size - size) if offset is None else max(offset, info.st_size - size)
            handle.seek(start)
            return handle.read(size)
    finally:
        os.close(rootfd)


def write_at(dirfd: int, name: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    """Replace NAME in the directory DIRFD atomically: a temporary file beside it (never a link
    followed), owner and mode set through its descriptor, synced, then renamed over NAME."""
    temporary = f'.{name}.jailhost-tmp.{os.getpid()}'
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dirfd)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(temporary, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dirfd)
        except OSError:
            pass
        raise


def stat_file(root: str, path: str) -> os.stat_result | None:
    """The stat of a jail path resolved with no link (None if it does not exist); a link on the
    way is a JailSafeError naming the path."""
    rootfd = open_root(root)
    try:
        fd = open_in(rootfd, path, os.O_PATH)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JailSafeError(describe_error(root, path, exc)) from None
    finally:
        os.close(rootfd)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def write_file(root: str, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> bool:
    """Write a jail file atomically (temporary file and rename in its directory); owner and mode
    set through the descriptor. No link is followed on the way; the parent must exist. Returns
    whether anything changed (content, owner or mode)."""
    rel = relative(path)
    parent, _sep, name = rel.rpartition('/')
    if not name:
        raise JailSafeError(f'invalid jail file path {path!r}')
    rootfd = open_root(root)
    try:
        try:
            dirfd = open_in(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise JailSafeError(describe_error(root, parent or '/', exc)) from None
        try:
            try:
                current = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
            except FileNotFoundError:
                current = None
            except OSError as exc:
                raise JailSafeError(describe_error(root, rel, exc)) from None
            if current is not None:
                with os.fdopen(current, 'rb') as handle:
                    info = os.fstat(handle.fileno())
                    if not stat.S_ISREG(info.st_mode):
                        raise JailSafeError(f'{root.rstrip("/")}/{rel} exists and is not a regular file')
                    same = (handle.read(len(data) + 1) == data and (info.st_uid, info.st_gid) == (uid, gid)
                            and stat.S_IMODE(info.st_mode) == mode)
                if same:
                    return False
            write_at(dirfd, name, data, mode, uid, gid)
            return True
        finally:
            os.close(dirfd)
    finally:
        os.close(rootfd)


def remove_file(root: str, path: str) -> bool:
    """Remove a jail file or link (never what a link points to); False if it did not exist."""
    rel = relative(path)
    parent, _sep, name = rel.rpartition('/')
    rootfd = open_root(root)
    try:
        try:
            dirfd = open_in(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise JailSafeError(describe_error(root, parent or '/', exc)) from None
        try:
            os.unlink(name, dir_fd=dirfd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dirfd)
    finally:
        os.close(rootfd)


# --- the jail's accounts, read without running jail code ------------------------------------

def parse_passwd(text: str) -> dict[str, tuple[int, int, str, str]]:
    """name -> (uid, gid, home, shell) of a passwd file; malformed lines are skipped."""
    accounts = {}
    for line in text.splitlines():
        fields = line.split(':')
        if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        accounts.setdefault(fields[0], (int(fields[2]), int(fields[3]), fields[5], fields[6]))
    return accounts


def parse_group(text: str) -> dict[str, tuple[int, list[str]]]:
    """name -> (gid, members) of a group file."""
    groups = {}
    for line in text.splitlines():
        fields = line.split(':')
        if len(fields) != 4 or not fields[2].isdigit():
            continue
        groups.setdefault(fields[0], (int(fields[2]), [m for m in fields[3].split(',') if m]))
    return groups


def jail_account(root: str, user: str) -> tuple[int, int, list[int], str, str]:
    """(uid, gid, supplementary gids, home, shell) of USER in the jail's own /etc/passwd and
    /etc/group, parsed on the host: no NSS module or libc of the jail is loaded."""
    passwd = read_file(root, 'etc/passwd', 16 << 20)
    accounts = parse_passwd((passwd or b'').decode('utf-8', 'replace'))
    if user not in accounts:
        raise JailSafeError(f'user {user!r} does not exist in the jail root {root} (its /etc/passwd)')
    uid, gid, home, shell = accounts[user]
    groups = parse_group((read_file(root, 'etc/group', 16 << 20) or b'').decode('utf-8', 'replace'))
    extra = sorted({g for g, members in groups.values() if user in members} - {gid})
    return uid, gid, extra, home, shell


# --- capabilities ----------------------------------------------------------------------------

CAPABILITIES = (
    'chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid',
    'setpcap', 'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw',
    'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct',
    'sys_admin', 'sys_boot', 'sys_nice', 'sys_resource', 'sys_time', 'sys_tty_config', 'mknod',
    'lease', 'audit_write', 'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog',
    'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf', 'checkpoint_restore',
)
# Capabilities that open a way out of a confined root or into the kernel: never kept, whatever a
# caller asks. sys_chroot (the chroot + fchdir escape), sys_admin (mount, namespaces, ...),
# sys_ptrace, dac_read_search (open_by_handle_at reaches any inode of the file system), sys_module,
# sys_rawio, mknod (a block device of the host's disk), net_admin, bpf, perfmon, setpcap, ...
NEVER_KEPT = frozenset((
    'dac_read_search', 'setpcap', 'linux_immutable', 'net_admin', 'net_raw', 'ipc_owner', 'sys_module',
    'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_time',
    'sys_tty_config', 'mknod', 'lease', 'audit_control', 'mac_override', 'mac_admin', 'syslog', 'bpf',
    'perfmon', 'checkpoint_restore', 'block_suspend', 'wake_alarm', 'sys_resource', 'sys_nice',
    'ipc_lock', 'audit_read',
))
# What apt, dpkg and maintainer scripts need as root in the jail root, and nothing more: change
# owners and modes of the files they unpack (chown, fowner, fsetid), write root-owned files whatever
# their mode (dac_override), drop to the _apt user for downloads and run adduser (setuid, setgid),
# set file capabilities of unpacked binaries (setfcap: useless in a jail, whose bounding set is
# empty), and signal their own children (kill).
APT_CAPABILITIES = ('chown', 'dac_override', 'fowner', 'fsetid', 'kill', 'setuid', 'setgid', 'setfcap')

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_SET_PDEATHSIG = 1
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
SECCOMP_MODE_FILTER = 2


def check_capabilities(names) -> list[str]:
    names = list(names or [])
    unknown = [name for name in names if name not in CAPABILITIES]
    if unknown:
        raise JailSafeError(f'unknown capabilities: {", ".join(unknown)}')
    refused = [name for name in names if name in NEVER_KEPT]
    if refused:
        raise JailSafeError(f'capabilities that could leave a confined root are never kept: {", ".join(refused)}')
    return names


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    _LIBC.prctl.restype = ctypes.c_int
    return _errcheck(_LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                                 ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f'prctl({option})')


def _cap_mask(names) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


_LAST_CAP = []


def _last_cap() -> int:
    """The highest capability number of the running kernel (read once, before any confinement)."""
    if not _LAST_CAP:
        try:
            with open('/proc/sys/kernel/cap_last_cap', 'rb') as handle:
                _LAST_CAP.append(int(handle.read()))
        except (OSError, ValueError):
            _LAST_CAP.append(len(CAPABILITIES) - 1)
    return _LAST_CAP[0]


def block_imports() -> None:
    """No Python module can be imported from now on. Called before this process enters a jail's
    tree: Python imports lazily (a codec, a module of the standard library), and an import after
    pivot_root or chroot would load the jail's file of that name into a privileged process."""
    sys.meta_path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.path.clear()


def _capset(mask: int) -> None:
    """Effective and permitted sets = MASK, inheritable empty (this process)."""
    header = struct.pack('Ii', 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = struct.pack('6I', mask & 0xffffffff, mask & 0xffffffff, 0, mask >> 32, mask >> 32, 0)
    hbuf, dbuf = ctypes.create_string_buffer(header, len(header)), ctypes.create_string_buffer(data, len(data))
    _errcheck(_LIBC.syscall(ctypes.c_long(_SYS_CAPSET[_MACHINE]), hbuf, dbuf), 'capset')


def _drop_bounding(keep_mask: int) -> None:
    for cap in range(_last_cap() + 1):
        if not keep_mask & (1 << cap):
            _prctl(PR_CAPBSET_DROP, cap)


def become(uid: int, gid: int, groups, keep=()) -> None:
    """Take the identity UID/GID/GROUPS and keep only the capabilities KEEP (root only): bounding,
    effective, permitted and inheritable sets reduced to KEEP, ambient set cleared. For another
    uid every set ends empty, the bounding set included (keep-caps lets the process drop the
    last bounding capabilities after it changed its uid)."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if uid == 0:
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        mask = _cap_mask(keep)
        _drop_bounding(mask)
        _capset(mask)
        return
    if keep:
        raise JailSafeError('capabilities can only be kept for root')
    setpcap = _cap_mask(('setpcap',))
    _drop_bounding(_cap_mask(('setuid', 'setgid', 'setpcap')))
    _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _capset(setpcap)
    _drop_bounding(0)
    _capset(0)
    _prctl(PR_SET_KEEPCAPS, 0)


# --- seccomp ---------------------------------------------------------------------------------

# Denied with EPERM in every confined process (the control plane's runs and owner logins): what
# firejail's default filter denies to the jails (mount, kernel modules, kexec, keyrings, bpf,
# perf, ptrace and process_vm_*, swap, clock, reboot, ...), the new mount API, open_by_handle_at,
# userfaultfd, and io_uring (a large share of recent kernel privilege escalations). Namespace
# creation is denied too (unshare, setns, clone with a CLONE_NEW* flag): Debian allows
# unprivileged user namespaces, which would open kernel code to the process. clone3 gets ENOSYS,
# so that libc falls back to clone, whose flags the filter can read.
DENIED_SYSCALLS = (
    '_sysctl', 'acct', 'add_key', 'adjtimex', 'bpf', 'chroot', 'clock_adjtime', 'clock_settime',
    'create_module', 'delete_module', 'fanotify_init', 'finit_module', 'fsconfig', 'fsmount', 'fsopen',
    'fspick', 'get_kernel_syms', 'init_module', 'io_uring_enter', 'io_uring_register', 'io_uring_setup',
    'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'modify_ldt',
    'mount', 'mount_setattr', 'move_mount', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at',
    'open_tree', 'perf_event_open', 'pivot_root', 'process_vm_readv', 'process_vm_writev', 'ptrace',
    'query_module', 'quotactl', 'quotactl_fd', 'reboot', 'request_key', 'setdomainname', 'sethostname',
    'setns', 'settimeofday', 'swapoff', 'swapon', 'syslog', 'umount2', 'unshare', 'uselib', 'userfaultfd',
    'vhangup',
)
# Linux syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h);
# tests/unit checks them against the kernel headers of the machine.
SYSCALLS = {
    'x86_64': {
        '_sysctl': 156, 'acct': 163, 'add_key': 248, 'adjtimex': 159, 'bpf': 321, 'chroot': 161,
        'clock_adjtime': 305, 'clock_settime': 227, 'clone': 56, 'clone3': 435, 'create_module': 174,
        'delete_module': 176, 'fanotify_init': 300, 'finit_module': 313, 'fsconfig': 431, 'fsmount': 432,
        'fsopen': 430, 'fspick': 433, 'get_kernel_syms': 177, 'init_module': 175, 'io_uring_enter': 426,
        'io_uring_register': 427, 'io_uring_setup': 425, 'ioperm': 173, 'iopl': 172, 'kcmp': 312,
        'kexec_file_load': 320, 'kexec_load': 246, 'keyctl': 250, 'lookup_dcookie': 212, 'modify_ldt': 154,
        'mount': 165, 'mount_setattr': 442, 'move_mount': 429, 'name_to_handle_at': 303, 'nfsservctl': 180,
        'open_by_handle_at': 304, 'open_tree': 428, 'perf_event_open': 298, 'pivot_root': 155,
        'process_vm_readv': 310, 'process_vm_writev': 311, 'ptrace': 101, 'query_module': 178,
        'quotactl': 179, 'quotactl_fd': 443, 'reboot': 169, 'request_key': 249, 'setdomainname': 171,
        'sethostname': 170, 'setns': 308, 'settimeofday': 164, 'swapoff': 168, 'swapon': 167, 'syslog': 103,
        'umount2': 166, 'unshare': 272, 'uselib': 134, 'userfaultfd': 323, 'vhangup': 153,
    },
    'aarch64': {
        'acct': 89, 'add_key': 217, 'adjtimex': 171, 'bpf': 280, 'chroot': 51, 'clock_adjtime': 266,
        'clock_settime': 112, 'clone': 220, 'clone3': 435, 'delete_module': 106, 'fanotify_init': 262,
        'finit_module': 273, 'fsconfig': 431, 'fsmount': 432, 'fsopen': 430, 'fspick': 433, 'init_module': 105,
        'io_uring_enter': 426, 'io_uring_register': 427, 'io_uring_setup': 425, 'kcmp': 272,
        'kexec_file_load': 294, 'kexec_load': 104, 'keyctl': 219, 'lookup_dcookie': 18, 'mount': 40,
        'mount_setattr': 442, 'move_mount': 429, 'name_to_handle_at': 264, 'nfsservctl': 42,
        'open_by_handle_at': 265, 'open_tree': 428, 'perf_event_open': 241, 'pivot_root': 41,
        'process_vm_readv': 270, 'process_vm_writev': 271, 'ptrace': 117, 'quotactl': 60, 'quotactl_fd': 443,
        'reboot': 142, 'request_key': 218, 'setdomainname': 162, 'sethostname': 161, 'setns': 268,
        'settimeofday': 170, 'swapoff': 225, 'swapon': 224, 'syslog': 116, 'umount2': 39, 'unshare': 97,
        'userfaultfd': 282, 'vhangup': 58,
    },
}
AUDIT_ARCH = {'x86_64': 0xC000003E, 'aarch64': 0xC00000B7}
# clone() flags that create namespaces: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NEW_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JSET_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7fff0000, 0x00050000, 0x80000000


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack('HBBI', code, jt, jf, k & 0xffffffff)


def seccomp_program(machine: str | None = None) -> bytes:
    """The classic BPF program of the filter (struct sock_filter[]), built here instead of by the
    jail's libseccomp: another architecture than the host's kills the process; x32 syscalls
    (x86_64 numbers with bit 30) are denied; every syscall of DENIED_SYSCALLS returns EPERM; clone
    with a namespace flag returns EPERM and clone3 ENOSYS; everything else is allowed."""
    machine = machine or _MACHINE
    if machine not in SYSCALLS:
        raise JailSafeError(f'no seccomp filter for the architecture {machine}: refusing to run unconfined')
    table = SYSCALLS[machine]
    denied = sorted({table[name] for name in DENIED_SYSCALLS if name in table})
    errno_eperm = _RET_ERRNO | errno.EPERM
    errno_enosys = _RET_ERRNO | errno.ENOSYS
    prog = [_insn(_BPF_LD_W_ABS, 0, 0, 4),                       # seccomp_data.arch
            _insn(_BPF_JEQ_K, 1, 0, AUDIT_ARCH[machine]),
            _insn(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
            _insn(_BPF_LD_W_ABS, 0, 0, 0)]                       # seccomp_data.nr
    if machine == 'x86_64':
        prog += [_insn(_BPF_JGE_K, 0, 1, 0x40000000), _insn(_BPF_RET_K, 0, 0, errno_eperm)]
    for number in denied:
        prog += [_insn(_BPF_JEQ_K, 0, 1, number), _insn(_BPF_RET_K, 0, 0, errno_eperm)]
    prog += [_insn(_BPF_JEQ_K, 0, 1, table['clone3']), _insn(_BPF_RET_K, 0, 0, errno_enosys),
             _insn(_BPF_JEQ_K, 0, 4, table['clone']),
             _insn(_BPF_LD_W_ABS, 0, 0, 16),                     # low 32 bits of args[0] (little endian)
             _insn(_BPF_JSET_K, 0, 1, CLONE_NEW_FLAGS),
             _insn(_BPF_RET_K, 0, 0, errno_eperm),
             _insn(_BPF_RET_K, 0, 0, _RET_ALLOW),
             _insn(_BPF_RET_K, 0, 0, _RET_ALLOW)]
    return b''.join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]


def load_seccomp(program: bytes) -> None:
    """no_new_privs, then the filter (which needs no privilege once no_new_privs is set)."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _LIBC.prctl.restype = ctypes.c_int
    _errcheck(_LIBC.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                          ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)), 'seccomp')


# --- namespaces and mounts -------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2


def _mount(source, target, fstype, flags, data=None) -> None:
    _LIBC.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    _errcheck(_LIBC.mount(None if source is None else os.fsencode(source), os.fsencode(target),
                          None if fstype is None else fstype.encode(), flags,
                          None if data is None else data.encode()), f'mount {source} on {target}')


def _unshare(flags: int) -> None:
    _errcheck(_LIBC.unshare(ctypes.c_int(flags)), 'unshare')


def _setns(fd: int, nstype: int) -> None:
    _errcheck(_LIBC.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), 'setns')


def _pivot_here() -> None:
    """pivot_root(".", "."): the current directory becomes /, the old root is stacked on it and
    detached at once: nothing of the host's tree stays reachable."""
    _errcheck(_LIBC.syscall(ctypes.c_long(_SYS_PIVOT_ROOT[_MACHINE]), b'.', b'.'), 'pivot_root')
    _LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _errcheck(_LIBC.umount2(b'.', MNT_DETACH), 'umount the old root')
    os.chdir('/')


DEV_NODES = (('null', 1, 3), ('zero', 1, 5), ('full', 1, 7), ('random', 1, 8), ('urandom', 1, 9), ('tty', 5, 0))


class Mount:
    """An extra mount inside the confined root. kind: 'tmpfs' (an empty tmpfs), 'bind-ro' (a host
    file or directory, read-only), 'proc'. The target must exist in the jail and is resolved with
    no link allowed."""

    def __init__(self, kind: str, target: str, source: str | None = None, size: str = '64m'):
        if kind not in ('tmpfs', 'bind-ro', 'proc'):
            raise JailSafeError(f'unknown mount kind {kind}')
        self.kind, self.target, self.source, self.size = kind, relative(target), source, size


def _setup_root(root: str, mounts: list, want_proc: bool) -> None:
    """In a fresh mount namespace: the jail root as /, with a private /dev, /proc if asked, and MOUNTS."""
    _mount(None, '/', None, MS_REC | MS_PRIVATE)
    _mount(root, root, None, MS_BIND)                             # root is host-controlled (check_root)
    rootfd = open_root(root)
    targets = [Mount('tmpfs', 'dev', size='1m')] + list(mounts) + ([Mount('proc', 'proc')] if want_proc else [])
    for item in targets:
        try:
            fd = open_in(rootfd, item.target, os.O_PATH)
        except OSError as exc:
            raise JailSafeError(f'cannot mount on {describe_error(root, item.target, exc)}') from None
        try:
            where = f'/proc/self/fd/{fd}'
            if item.kind == 'tmpfs':
                _mount('tmpfs', where, 'tmpfs', MS_NOSUID | (0 if item.target == 'dev' else MS_NODEV),
                       f'mode=0755,size={item.size}')
            elif item.kind == 'proc':
                _mount('proc', where, 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC)
            else:
                _mount(item.source, where, None, MS_BIND)
        finally:
            os.close(fd)
        if item.kind == 'bind-ro':
            # FD is the mount point under the new bind; the remount needs the bind itself, which a
            # fresh resolution from the root reaches (it crosses into the mount on top).
            fd = open_in(rootfd, item.target, os.O_PATH)
            try:
                _mount(None, f'/proc/self/fd/{fd}', None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
            finally:
                os.close(fd)
    devfd = open_in(rootfd, 'dev', os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, major, minor in DEV_NODES:
            os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(major, minor), dir_fd=devfd)
            os.chmod(name, 0o666, dir_fd=devfd)
        os.mkdir('pts', 0o755, dir_fd=devfd)
        os.mkdir('shm', 0o1777, dir_fd=devfd)
        os.chmod('shm', 0o1777, dir_fd=devfd)
        # POSIX shared memory of its own (initdb's bootstrap needs about 1 MiB of it), bounded.
        shmfd = os.open('shm', os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=devfd)
        try:
            _mount('tmpfs', f'/proc/self/fd/{shmfd}', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777,size=64m')
        finally:
            os.close(shmfd)
        os.symlink('/proc/self/fd', 'fd', dir_fd=devfd)
        for number, name in enumerate(('stdin', 'stdout', 'stderr')):
            os.symlink(f'/proc/self/fd/{number}', name, dir_fd=devfd)
    finally:
        os.close(devfd)
    os.fchdir(rootfd)
    os.close(rootfd)
    _pivot_here()


def _close_fds(keep=(0, 1, 2)) -> None:
    """Close every descriptor but KEEP: nothing of the host (module, connection) reaches the jail."""
    highest = os.sysconf('SC_OPEN_MAX') if hasattr(os, 'sysconf') else 1024
    start = 0
    for fd in sorted(set(keep)):
        if fd > start:  # os.closerange(n, n) closes everything on some Python versions
            os.closerange(start, fd)
        start = fd + 1
    if highest > start:
        os.closerange(start, min(highest, 1 << 20))


def _exec(argv, env) -> None:
    path = env.get('PATH', '/usr/bin:/bin')
    if '/' in argv[0]:
        os.execve(argv[0], argv, env)
    for directory in path.split(':'):
        candidate = os.path.join(directory or '.', argv[0])
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            os.execve(candidate, argv, env)
    raise JailSafeError(f'{argv[0]}: command not found in the jail (PATH {path})')


DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class Confinement:
    """How a command runs in a jail root (see the module docstring)."""

    def __init__(self, root: str, argv, *, user: str = 'root', caps=(), network: str = 'none',
                 env: dict | None = None, mounts=(), cwd: str = '/', proc: bool | None = None):
        if not argv:
            raise JailSafeError('no command to run')
        if network not in ('none', 'host'):
            raise JailSafeError(f'network must be none or host, not {network!r}')
        self.root = check_root(root)
        self.argv = list(argv)
        self.caps = check_capabilities(caps)
        self.network = network
        self.mounts = list(mounts)
        self.cwd = cwd
        if user == 'root':
            # Root is uid 0 whatever the jail's passwd says.
            uid, gid, groups, home = 0, 0, [], '/root'
        else:
            uid, gid, groups, home, _shell = jail_account(self.root, user)
        if uid != 0 and self.caps:
            raise JailSafeError('capabilities can only be kept for root')
        self.uid, self.gid, self.groups = uid, gid, groups
        # No /proc for root: uid 0 could write the host's /proc/sys (core_pattern...) through it.
        self.proc = (uid != 0) if proc is None else proc
        if self.proc and uid == 0:
            raise JailSafeError('a process that runs as root in the jail gets no /proc')
        self.env = {'PATH': DEFAULT_PATH, 'HOME': home or '/', 'LC_ALL': 'C.UTF-8', 'USER': user, 'LOGNAME': user}
        self.env.update(env or {})
        self.program = seccomp_program()
        _last_cap()

    def child(self) -> None:
        """In a forked child: namespaces, then PID 1 of the new PID namespace confines and execs."""
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
        if self.network == 'none':
            flags |= CLONE_NEWNET
        _unshare(flags)
        pid = os.fork()
        if pid:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _pid, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        block_imports()
        _setup_root(self.root, self.mounts, self.proc)
        os.chdir(self.cwd)
        load_seccomp(self.program)
        become(self.uid, self.gid, self.groups, self.caps)
        _exec(self.argv, self.env)


def spawn(confinement: Confinement, stdin=None, stdout=None, stderr=None) -> tuple[int, int]:
    """Fork the confined command; returns (pid, read end of the setup-error pipe)."""
    err_r, err_w = os.pipe()
    os.set_inheritable(err_w, False)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                if fd is not None:
                    os.dup2(fd, target)
            _close_fds(keep=(0, 1, 2, err_w))
            os.set_inheritable(err_w, False)
            confinement.child()
        except BaseException as exc:  # pylint: disable=broad-except
            try:
                os.write(err_w, f'{type(exc).__name__}: {exc}'.encode('utf-8', 'replace')[:4000])
            finally:
                os._exit(125)
        os._exit(125)
    os.close(err_w)
    return pid, err_r


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b''.join(chunks)


def run(root: str, argv, *, user: str = 'root', caps=(), network: str = 'none', env=None, mounts=(),
        cwd: str = '/', data: bytes | None = None, proc: bool | None = None) -> tuple[int, str, str]:
    """Run ARGV confined in the jail root ROOT (module docstring); (rc, stdout, stderr).

    The exit status is the command's; a confinement that cannot be set up raises JailSafeError
    before anything of the jail runs."""
    import selectors  # pylint: disable=import-outside-toplevel
    confinement = Confinement(root, argv, user=user, caps=caps, network=network, env=env, mounts=mounts,
                              cwd=cwd, proc=proc)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    er_r, er_w = os.pipe()
    pid, setup_r = spawn(confinement, in_r, out_w, er_w)
    for fd in (in_r, out_w, er_w):
        os.close(fd)
    try:
        os.write(in_w, data or b'')
    except BrokenPipeError:
        pass
    os.close(in_w)
    out, err = [], []
    selector = selectors.DefaultSelector()
    selector.register(out_r, selectors.EVENT_READ, out)
    selector.register(er_r, selectors.EVENT_READ, err)
    open_fds = 2
    while open_fds:
        for key, _events in selector.select():
            chunk = os.read(key.fd, 65536)
            if chunk:
                key.data.append(chunk)
            else:
                selector.unregister(key.fd)
                os.close(key.fd)
                open_fds -= 1
    _pid, status = os.waitpid(pid, 0)
    setup_error = _read_all(setup_r).decode('utf-8', 'replace')
    if setup_error:
        raise JailSafeError(f'cannot confine {argv[0]} in {root}: {setup_error}')
    rc = os.waitstatus_to_exitcode(status)
    return rc, b''.join(out).decode('utf-8', 'replace'), b''.join(err).decode('utf-8', 'replace')


# --- joining a running jail (the app owners' login) -------------------------------------------

def enter(sandbox_pid: int, user: str, argv, env: dict, expect: tuple[int, int] | None = None) -> int:
    """Run ARGV as USER in the running sandbox whose PID 1 (on the host) is SANDBOX_PID: its mount,
    UTS, IPC, network and PID namespaces and its root directory, the bounding set empty,
    no_new_privs and the seccomp filter, all set by this (host) code before the jail's shell is
    executed. Returns the exit status of the command.

    The jail's passwd is read through the sandbox's root with no link followed above it. The
    process becomes USER only after the filter is loaded, and is not dumpable until it executes
    the shell: a process of the same uid in the jail cannot ptrace it or write its memory
    between the two."""
    rootfd = os.open(f'/proc/{sandbox_pid}/root', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    namespaces = [(os.open(f'/proc/{sandbox_pid}/ns/{name}', os.O_RDONLY | os.O_CLOEXEC), flag)
                  for name, flag in (('ipc', CLONE_NEWIPC), ('uts', CLONE_NEWUTS), ('net', CLONE_NEWNET),
                                     ('pid', CLONE_NEWPID), ('mnt', CLONE_NEWNS))]
    try:
        fd = open_in(rootfd, 'etc/passwd', os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, 'rb') as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise JailSafeError('the jail /etc/passwd is not a regular file')
            accounts = parse_passwd(handle.read(16 << 20).decode('utf-8', 'replace'))
    except OSError as exc:
        raise JailSafeError(f'cannot read the jail /etc/passwd: {exc.strerror}') from None
    if user not in accounts:
        raise JailSafeError(f'{user} does not exist in the jail')
    uid, gid, home, shell = accounts[user]
    if expect is not None and (uid, gid) != tuple(expect):
        raise JailSafeError(f'{user} does not exist in the jail with the same uid and gid as on the host')
    if uid == 0:
        raise JailSafeError(f'{user} is root in the jail')
    program = seccomp_program()
    _last_cap()
    block_imports()
    for fd, flag in namespaces:
        _setns(fd, flag)
        os.close(fd)
    os.fchdir(rootfd)
    os.chroot('.')
    os.close(rootfd)
    os.chdir('/')
    pid = os.fork()
    if pid == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _prctl(PR_SET_DUMPABLE, 0)
            load_seccomp(program)
            become(uid, gid, [gid])
            full_env = {'HOME': home or '/', 'USER': user, 'LOGNAME': user, 'SHELL': shell,
                        'PATH': '/usr/local/bin:/usr/bin:/bin'}
            full_env.update(env)
            try:
                os.chdir(home or '/')
            except OSError:
                os.chdir('/')
            _close_fds()
            _exec(list(argv) if argv else [shell, '-l'], full_env)
        except BaseException as exc:  # pylint: disable=broad-except
            sys.stderr.write(f'jailhost: cannot enter the jail ({exc})\n')
            os._exit(1)
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


# --- command line (the host copy installed by the rootfs role) --------------------------------

USAGE = '''usage:
  jailsafe.py run --root ROOT [--user USER] [--cap CAP]... [--network none|host] [--env NAME=VALUE]...
                  [--tmpfs PATH]... [--bind-ro HOSTPATH:PATH]... [--cwd DIR] -- COMMAND [ARG]...
      run COMMAND confined in the jail root ROOT (stdin, stdout and stderr are passed through)
  jailsafe.py passwd --root ROOT USER
      print USER's passwd line of the jail (uid:gid:home:shell), read on the host
  jailsafe.py read --root ROOT PATH [--tail BYTES]
      print a jail file (or its end), no link followed above the root'''


def main(args=None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] not in ('run', 'passwd', 'read'):
        sys.stderr.write(USAGE + '\n')
        return 2
    action = args.pop(0)
    options = {'--cap': [], '--env': [], '--tmpfs': [], '--bind-ro': []}
    single = {'--root': None, '--user': 'root', '--network': 'none', '--cwd': '/', '--tail': None}
    positional = []
    while args:
        arg = args.pop(0)
        if arg == '--':
            positional += args
            break
        if arg in options or arg in single:
            if not args:
                sys.stderr.write(f'jailsafe: {arg} needs a value\n')
                return 2
            value = args.pop(0)
            if arg in options:
                options[arg].append(value)
            else:
                single[arg] = value
        elif arg.startswith('--'):
            sys.stderr.write(f'jailsafe: unknown option {arg}\n{USAGE}\n')
            return 2
        else:
            positional.append(arg)
    try:
        if not single['--root']:
            raise JailSafeError('--root is required')
        if action == 'passwd':
            if len(positional) != 1:
                raise JailSafeError('passwd takes one user name')
            uid, gid, _groups, home, shell = jail_account(check_root(single['--root'], 'jailsafe'), positional[0])
            sys.stdout.write(f'{uid}:{gid}:{home}:{shell}\n')
            return 0
        if action == 'read':
            root = check_root(single['--root'], 'jailsafe')
            if len(positional) != 1:
                raise JailSafeError('read takes one path')
            if single['--tail'] is not None:
                data = read_tail(root, positional[0], int(single['--tail']))
            else:
                data = read_file(root, positional[0])
                if data is None:
                    raise JailSafeError(f'{root}/{relative(positional[0])} does not exist')
            sys.stdout.buffer.write(data)
            return 0
        env = {}
        for item in options['--env']:
            name, sep, value = item.partition('=')
            if not sep or not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', name):
                raise JailSafeError(f'--env {item!r} must be NAME=VALUE')
            env[name] = value
        mounts = [Mount('tmpfs', path) for path in options['--tmpfs']]
        for item in options['--bind-ro']:
            source, sep, target = item.partition(':')
            if not sep or not os.path.isabs(source):
                raise JailSafeError(f'--bind-ro {item!r} must be HOSTPATH:JAILPATH')
            mounts.append(Mount('bind-ro', target, source))
        confinement = Confinement(single['--root'], positional, user=single['--user'], caps=options['--cap'],
                                  network=single['--network'], env=env, mounts=mounts, cwd=single['--cwd'])
        pid, setup_r = spawn(confinement)
        _pid, status = os.waitpid(pid, 0)
        setup_error = _read_all(setup_r).decode('utf-8', 'replace')
        if setup_error:
            raise JailSafeError(f'cannot confine {positional[0]} in {single["--root"]}: {setup_error}')
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    except (JailSafeError, OSError, ValueError) as exc:
        sys.stderr.write(f'jailsafe: {exc}\n')
        return 125


if __name__ == '__main__':
    sys.exit(main())  # pylint: disable=ansible-bad-function
