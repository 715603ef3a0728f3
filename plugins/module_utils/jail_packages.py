# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Logic of jailhost.jails.jail_packages: Debian packages installed into a jail root with apt.

The first part is pure (validation, parsing of dpkg-query and apt-get output, planning, command
lines); ``Jail`` runs the commands and touches the root; ``ensure_packages`` ties them together.

How apt runs in the root: ``unshare --mount --propagation private`` gives every apt-get call its
own mount namespace, in which the host's /dev is bind-mounted on ROOT/dev and our policy-rc.d on
ROOT/usr/sbin/policy-rc.d before ``chroot ROOT apt-get``. Those mounts are never visible on the
host and disappear with the namespace when apt-get and its children exit, even when the module
itself is killed, so no mount is ever left behind in the root.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Debian Policy 5.6.1 and 5.6.12. The version is validated only enough to keep it a single,
# harmless argument; apt itself tells whether it exists. These expressions are used with fullmatch
# ("$" would accept a final newline).
PACKAGE_NAME_RE = re.compile(r'[a-z0-9][a-z0-9+.-]+')
VERSION_RE = re.compile(r'(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*')
# Characters of an http(s) URL without query or fragment; anything else (spaces, quotes,
# backslashes, control characters) is refused before urlsplit looks at the structure.
PROXY_CHARS_RE = re.compile(r'[A-Za-z0-9._~%!$&()*+,;=:@/\[\]-]+')

STATES = ('present', 'absent', 'latest')
# upgrade option: none, or apt-get upgrade --with-new-pkgs (never removes a package), or
# apt-get dist-upgrade (may remove packages to resolve conflicts).
UPGRADE_MODES = ('none', 'safe', 'full')
# dpkg states (db:Status-Status) of a configured package; triggers-* are configured packages
# whose triggers have not run yet.
INSTALLED_STATUSES = frozenset(('installed', 'triggers-awaited', 'triggers-pending'))
# States in which nothing of the package but possibly its conffiles is on disk.
ABSENT_STATUSES = frozenset(('not-installed', 'config-files'))

DPKG_QUERY_FORMAT = '${Package}\\t${db:Status-Status}\\t${Version}\\n'

# Owner required for the jail root and user the module must run as. A tree another user can
# modify would let that user choose what apt runs as root.
ROOT_UID = 0

# Environment of everything run in the root: nothing of the module's environment leaks in
# (TMPDIR, LANG... of the Ansible connection do not exist there). C.UTF-8 is built into the libc
# of every Debian root, keeps apt's messages untranslated for parsing and makes
# pg_createcluster create UTF-8 clusters.
CHROOT_ENVIRONMENT = (
    ('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'),
    ('HOME', '/root'),
    ('LC_ALL', 'C.UTF-8'),
    ('DEBIAN_FRONTEND', 'noninteractive'),
)

# Run in a fresh private mount namespace (see the module docstring) with the arguments
# MOUNT CHROOT ROOT POLICY LISTS COMMAND...; POLICY is empty for the calls that run no maintainer
# script. LISTS non-empty puts a tmpfs on ROOT/var/lib/apt/lists for this namespace only: the
# package indexes apt-get update fetches there vanish with it, nothing of them is written into the
# root (used by upgrade, also in check mode). /dev is the only mount maintainer scripts of apache2, postgresql and php-pgsql need: in
# a root without device nodes, "> /dev/null" creates a regular file, initdb fails and
# pg_createcluster gives up without failing apt. /proc and /sys are left out on purpose, so that
# maintainer scripts cannot see (and signal) the host's processes. Exit statuses as chroot's:
# 125 the root cannot be entered, 126 and 127 the command cannot run.
CHROOT_SCRIPT = '''\
mount=$1 chroot=$2 root=$3 policy=$4 lists=$5
shift 5
"$mount" --bind /dev "$root/dev" || exit 125
if [ -n "$policy" ]; then
    "$mount" --bind "$policy" "$root/usr/sbin/policy-rc.d" || exit 125
fi
if [ -n "$lists" ]; then
    "$mount" -t tmpfs -o mode=0755 jailhost-apt-lists "$root/var/lib/apt/lists" || exit 125
fi
exec "$chroot" "$root" "$@"
'''
CHROOT_FAILURE_CODES = (125, 126, 127)

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d before starting or stopping a
# service; 101 is "action forbidden". Without it, whether a postinst starts Apache or PostgreSQL
# in the host's namespaces, on the host's network, would depend on what invoke-rc.d guesses of the
# init system from the root's /run (it blocks only when it cannot tell).
POLICY_RC_D = '''\
#!/bin/sh
# Written by jailhost.jails.jail_packages while it runs apt in this root: no service may start.
exit 101
'''

# apt-get -s builds its package cache in memory instead of writing /var/cache/apt/*.bin.
NO_CACHE_FILES = ('-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=')

# Errors of apt-get install for a name or version its cache does not know.
NOT_FOUND_RES = (
    re.compile(r"^E: Unable to locate package (?P<name>\S+)$"),
    re.compile(r"^E: Package '(?P<name>[^']+)' has no installation candidate$"),
    re.compile(r"^E: Version '[^']+' for '(?P<name>[^']+)' was not found$"),
)
SIMULATED_INSTALL_RE = re.compile(r'^Inst (?P<name>[^\s:]+)(?::\S+)? (?:\[(?P<old>[^\]]+)\] )?\((?P<new>\S+)')
SIMULATED_CONFIGURE_RE = re.compile(r'^Conf (?P<name>[^\s:]+)')
SIMULATED_REMOVE_RE = re.compile(r'^Remv (?P<name>[^\s:]+)(?::\S+)?(?: \[(?P<old>[^\]]+)\])?')

UPDATE_STAMP = 'var/lib/apt/periodic/update-success-stamp'
OUTPUT_TAIL_LINES = 15
# Progress lines apt prints even with -q; left out of error messages.
APT_PROGRESS_LINES = frozenset((
    'Reading package lists...', 'Building dependency tree...', 'Reading state information...',
))


class JailPackagesError(Exception):
    """A failure reported to the user; ``details`` are extra fields of the failed result."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.details = details


@dataclass(frozen=True)
class Request:
    """One element of the ``name`` option."""

    name: str
    version: str | None = None

    @property
    def spec(self) -> str:
        """The argument given to apt-get."""
        return f'{self.name}={self.version}' if self.version else self.name


@dataclass(frozen=True)
class Package:
    """A package of the dpkg database."""

    status: str
    version: str

    @property
    def installed(self) -> bool:
        return self.status in INSTALLED_STATUSES

    @property
    def present(self) -> bool:
        return self.status not in ABSENT_STATUSES


@dataclass(frozen=True)
class Simulation:
    """What ``apt-get -s install`` would do."""

    # Package name -> (installed version or None, version that would be installed).
    installs: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    # Packages that would only be configured (unpacked by an interrupted earlier run).
    configures: frozenset[str] = frozenset()

    def handles(self, name: str) -> bool:
        return name in self.installs or name in self.configures


@dataclass
class Plan:
    """Requested packages to install (not installed), upgrade (installed, another version wanted)
    and remove."""

    install: list[Request] = field(default_factory=list)
    upgrade: list[Request] = field(default_factory=list)
    remove: list[Request] = field(default_factory=list)

    @property
    def fetch(self) -> list[Request]:
        """Requests given to apt-get install."""
        return self.install + self.upgrade

    @property
    def changes(self) -> bool:
        return bool(self.install or self.upgrade or self.remove)


def parse_requests(names: list[str], state: str) -> list[Request]:
    """Validate the ``name`` option; duplicates are merged, every invalid element is reported."""
    problems = []
    requests: dict[str, Request] = {}
    for item in names:
        name, sep, version = item.partition('=')
        if not PACKAGE_NAME_RE.fullmatch(name) or (sep and not VERSION_RE.fullmatch(version)):
            problems.append(f'{item!r} is not a Debian package name (optionally followed by =VERSION)')
            continue
        if sep and state != 'present':
            problems.append(f'{item!r}: a version can only be given with state=present')
            continue
        request = Request(name, version or None)
        if requests.setdefault(name, request) != request:
            problems.append(f'{name} is requested twice with different versions')
    if problems:
        raise JailPackagesError('invalid name: ' + '; '.join(problems))
    return list(requests.values())


def validate_proxy(url: str | None) -> str | None:
    """An http(s) proxy URL for apt: scheme, host, optional user info and port, nothing else."""
    if url is None:
        return None
    parts = urlsplit(url) if PROXY_CHARS_RE.fullmatch(url) else None
    try:
        valid = (parts is not None and parts.scheme in ('http', 'https') and bool(parts.hostname)
                 and parts.port != 0 and parts.path in ('', '/'))
    except ValueError:  # parts.port out of range or not a number
        valid = False
    if not valid:
        raise JailPackagesError(
            f'proxy {url!r} is not the URL of an HTTP proxy: http(s)://[USER:PASSWORD@]HOST[:PORT][/]')
    return url


def parse_dpkg_query(output: str) -> dict[str, Package]:
    """Packages listed by dpkg-query with DPKG_QUERY_FORMAT.

    A name listed for several architectures counts as installed when one of them is installed.
    """
    packages: dict[str, Package] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        name, status, version = line.split('\t', 2)
        package = Package(status, version)
        known = packages.get(name)
        if known is None or (package.installed and not known.installed):
            packages[name] = package
    return packages


def plan_changes(requests: list[Request], state: str, packages: dict[str, Package],
                 upgradable: set[str] = frozenset()) -> Plan:
    """What to do, from the dpkg database and, for state=latest, the upgrades apt would make."""
    plan = Plan()
    for request in requests:
        package = packages.get(request.name)
        if state == 'absent':
            if package is not None and package.present:
                plan.remove.append(request)
        elif package is None or not package.installed:
            plan.install.append(request)
        elif state == 'latest':
            if request.name in upgradable:
                plan.upgrade.append(request)
        elif request.version is not None and request.version != package.version:
            plan.upgrade.append(request)
    return plan


def upgrade_candidates(requests: list[Request], state: str, packages: dict[str, Package]) -> list[Request]:
    """Installed packages for which only apt can tell whether state=latest upgrades them."""
    if state != 'latest':
        return []
    return [request for request in requests
            if request.name in packages and packages[request.name].installed]


def parse_simulation(output: str) -> Simulation:
    installs = {}
    configures = set()
    for line in output.splitlines():
        match = SIMULATED_INSTALL_RE.match(line)
        if match:
            installs[match['name']] = (match['old'], match['new'])
            continue
        match = SIMULATED_CONFIGURE_RE.match(line)
        if match:
            configures.add(match['name'])
    return Simulation(installs, frozenset(configures))


def not_found(stderr: str) -> list[str]:
    """Names apt-get install reported as unknown to its cache, in order, without duplicates."""
    names = []
    for line in stderr.splitlines():
        for regex in NOT_FOUND_RES:
            match = regex.match(line.strip())
            if match and match['name'] not in names:
                names.append(match['name'])
    return names


def unexpected_resolutions(requests: list[Request], simulation: Simulation) -> list[str]:
    """Requests apt would not install under their own name.

    apt-get silently replaces a name it does not know by the packages matching it as a regular
    expression ("ssmtp+" installs ssmtp), and a virtual package by its provider; either way the
    requested name would never show as installed and every run would install again.
    """
    return [request.spec for request in requests if not simulation.handles(request.name)]


def apt_get(action: str, specs: list[str] | None = None, *, proxy: str | None = None,
            install_recommends: bool = False, simulate: bool = False) -> list[str]:
    """Command line of apt-get, as run inside the root."""
    command = ['apt-get', '-q']
    if simulate:
        command += ['-s', *NO_CACHE_FILES]
    elif action != 'update':
        # Use-Pty=0: without a pty apt does not need /dev/pts in the root.
        command += ['-y', '-o', 'Dpkg::Use-Pty=0',
                    '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']
    if action == 'update':
        # Without it apt-get update exits 0 when a source cannot be fetched.
        command += ['-o', 'APT::Update::Error-Mode=any']
    if proxy and not simulate:
        command += ['-o', f'Acquire::http::Proxy={proxy}']
    if action == 'install':
        command += ['-o', 'APT::Install-Recommends=true'] if install_recommends else ['--no-install-recommends']
    return command + [action, *(specs or [])]


def apt_upgrade_script(mode: str, *, proxy: str | None, simulate: bool) -> str:
    """Shell commands run in the root for upgrade=MODE: fetch the indexes (into the tmpfs of
    CHROOT_SCRIPT), then upgrade, or only simulate it; the downloaded packages are removed."""
    action = ['dist-upgrade'] if mode == 'full' else ['--with-new-pkgs', 'upgrade']
    # No binary cache files in /var/cache/apt either: they would describe the vanished indexes.
    update = apt_get('update', proxy=proxy)
    update[2:2] = NO_CACHE_FILES
    upgrade = apt_get('upgrade', proxy=proxy, simulate=simulate)[:-1] + action
    if not simulate:
        upgrade[2:2] = NO_CACHE_FILES
    commands = [update, upgrade] if simulate else [update, upgrade, ['apt-get', '-q', 'clean']]
    return ' && '.join(shlex.join(command) for command in commands)


def parse_upgrade_simulation(output: str) -> dict[str, tuple[str | None, str | None]]:
    """Package -> (version before, version after) from apt-get -s upgrade/dist-upgrade; None for
    a package that is not installed before (new dependency) or is removed."""
    changes = {}
    for line in output.splitlines():
        match = SIMULATED_INSTALL_RE.match(line)
        if match:
            changes[match['name']] = (match['old'], match['new'])
            continue
        match = SIMULATED_REMOVE_RE.match(line)
        if match:
            changes[match['name']] = (match['old'], None)
    return changes


def package_changes(before: dict[str, Package], after: dict[str, Package]) -> dict[str, tuple[str | None, str | None]]:
    """Installed packages whose version changed, appeared or disappeared between two dpkg reads."""
    def version(packages, name):
        package = packages.get(name)
        return package.version if package is not None and package.installed else None

    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = version(before, name), version(after, name)
        if old != new:
            changes[name] = (old, new)
    return changes


def cache_is_stale(stamp_mtime: float | None, now: float, valid_time: int) -> bool:
    """Whether the apt cache must be updated, from the mtime of UPDATE_STAMP (None: missing)."""
    return stamp_mtime is None or now - stamp_mtime > valid_time


def start_time(stat: str) -> str:
    """Start time field of /proc/PID/stat; the command name before it may contain spaces."""
    return stat.rsplit(')', 1)[1].split()[19]


def is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip('/') + '/')


def output_tail(stdout: str, stderr: str) -> str:
    """The last lines of a command's output and error output, for an error message."""
    lines = [line for line in stdout.strip().splitlines() if line not in APT_PROGRESS_LINES]
    return '\n'.join(lines[-OUTPUT_TAIL_LINES:] + stderr.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def versions_text(versions: dict[str, str | None]) -> str:
    """One NAME=VERSION line per package (NAME alone when the version is not known yet)."""
    return ''.join(f'{name}={version}\n' if version else f'{name}\n' for name, version in sorted(versions.items()))


def check_root(path: str) -> str:
    """The real path of a valid jail root, or JailPackagesError."""
    if os.geteuid() != ROOT_UID:
        raise JailPackagesError('jail_packages must run as root on the target (use become: true)')
    if not os.path.isabs(path):
        raise JailPackagesError(f'root {path} must be an absolute path')
    if not os.path.exists(path):
        raise JailPackagesError(f'root {path} does not exist')
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise JailPackagesError(f'root {path} is not a directory')
    if real == '/':
        raise JailPackagesError(f'root {path} is the host itself; use ansible.builtin.apt for the host')
    owner = os.stat(real).st_uid
    if owner != ROOT_UID:
        raise JailPackagesError(
            f'root {path} is owned by uid {owner}, not by root: refusing to run apt as root in it')
    status = os.path.join(real, 'var/lib/dpkg/status')
    if not is_inside(os.path.realpath(status), real) or not os.path.isfile(status):
        raise JailPackagesError(f'root {path} is not a Debian root filesystem (no var/lib/dpkg/status)')
    return real


def path_in_root(root: str, relative: str) -> str:
    """ROOT/RELATIVE resolved; a symlink of the root must not lead the host outside it."""
    path = os.path.realpath(os.path.join(root, relative))
    if not is_inside(path, root):
        raise JailPackagesError(f'{os.path.join(root, relative)} resolves to {path}, outside the root')
    return path


def processes_in(root: str) -> dict[tuple[int, str], str]:
    """Processes whose root directory is in ROOT: (pid, start time) -> command line.

    The start time tells a new process from an old one that had the same pid.
    """
    found = {}
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            if not is_inside(os.readlink(f'/proc/{entry.name}/root'), root):
                continue
            with open(f'/proc/{entry.name}/stat', encoding='utf-8', errors='replace') as handle:
                started = start_time(handle.read())
            with open(f'/proc/{entry.name}/cmdline', 'rb') as handle:
                command = handle.read().replace(b'\0', b' ').decode(errors='replace').strip()
        except OSError:  # the process is gone
            continue
        found[(int(entry.name), started)] = command
    return found


class Jail:
    """A jail root and the commands run on it."""

    def __init__(self, module, root: str, proxy: str | None):
        self.module = module
        self.root = root
        self.proxy = proxy
        self.dpkg_query = self._binary('dpkg-query', 'dpkg')
        self.env = self._binary('env', 'coreutils')
        self.chroot = self._binary('chroot', 'coreutils')
        self.unshare = self._binary('unshare', 'util-linux')
        self.mount = self._binary('mount', 'mount')
        self.sh = self._binary('sh', 'dash')

    def _binary(self, name: str, package: str) -> str:
        path = self.module.get_bin_path(name)
        if not path:
            raise JailPackagesError(f'{name} is not installed on the host (it is in the {package} package)')
        return path

    def packages(self) -> dict[str, Package]:
        """The dpkg database of the root, read from the host: no chroot, nothing run in the root."""
        admindir = path_in_root(self.root, 'var/lib/dpkg')
        args = [self.dpkg_query, f'--admindir={admindir}', '-W', f'--showformat={DPKG_QUERY_FORMAT}']
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            raise JailPackagesError(f'cannot read the dpkg database of {self.root}: {err.strip()}',
                                    rc=rc, stdout=out, stderr=err)
        return parse_dpkg_query(out)

    def run(self, command: list[str], policy: str = '', scratch_lists: bool = False) -> tuple[int, str, str]:
        """Run a command in the root (see CHROOT_SCRIPT); fail if it leaves a process running there."""
        dev = path_in_root(self.root, 'dev')
        if not os.path.isdir(dev):
            raise JailPackagesError(f'{dev} is not a directory: cannot mount /dev there')
        before = processes_in(self.root)
        args = [
            self.env, '-i', *(f'{name}={value}' for name, value in CHROOT_ENVIRONMENT),
            self.unshare, '--mount', '--propagation', 'private', '--',
            self.sh, '-c', CHROOT_SCRIPT, 'jail_packages', self.mount, self.chroot, self.root, policy,
            '1' if scratch_lists else '', *command,
        ]
        rc, out, err = self.module.run_command(args)
        left = {key: line for key, line in processes_in(self.root).items() if key not in before}
        if left:
            listing = ', '.join(f'{pid} ({line})' for (pid, _start), line in sorted(left.items()))
            raise JailPackagesError(
                f'{command[0]} in {self.root} left processes running in the root: {listing}; something (a maintainer '
                'script, an apt hook) started them despite policy-rc.d: stop them',
                rc=rc, stdout=out, stderr=err,
            )
        if rc in CHROOT_FAILURE_CODES:
            raise JailPackagesError(f'cannot run {command[0]} in {self.root}: {err.strip()}',
                                    rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def apt(self, action: str, specs: list[str], install_recommends: bool = False) -> None:
        """apt-get install/remove, with services forbidden to start."""
        command = apt_get(action, specs, proxy=self.proxy, install_recommends=install_recommends)
        with self.services_denied() as policy:
            rc, out, err = self.run(command, policy)
        if rc != 0:
            raise JailPackagesError(f'apt-get {action} failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)

    def upgrade(self, mode: str, simulate: bool) -> str:
        """apt-get update and upgrade (or only its simulation) in one namespace, with the indexes on
        a tmpfs and, unless simulating, services forbidden to start; returns apt's output."""
        if not os.path.isdir(path_in_root(self.root, 'var/lib/apt/lists')):
            raise JailPackagesError(f'{self.root}/var/lib/apt/lists is not a directory')
        command = ['/bin/sh', '-c', apt_upgrade_script(mode, proxy=self.proxy, simulate=simulate)]
        if simulate:
            rc, out, err = self.run(command, scratch_lists=True)
        else:
            with self.services_denied() as policy:
                rc, out, err = self.run(command, policy, scratch_lists=True)
        if rc != 0:
            what = 'simulation of the upgrade' if simulate else 'upgrade'
            raise JailPackagesError(f'apt-get update and {what} failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)
        return out

    def simulate(self, specs: list[str], install_recommends: bool) -> tuple[int, str, str]:
        """apt-get -s install: writes nothing in the root."""
        return self.run(apt_get('install', specs, install_recommends=install_recommends, simulate=True))

    def update_cache(self) -> None:
        rc, out, err = self.run(apt_get('update', proxy=self.proxy))
        if rc != 0:
            raise JailPackagesError(f'apt-get update failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)
        periodic = path_in_root(self.root, os.path.dirname(UPDATE_STAMP))
        os.makedirs(periodic, mode=0o755, exist_ok=True)
        fd = os.open(os.path.join(periodic, os.path.basename(UPDATE_STAMP)),
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.utime(fd)
        finally:
            os.close(fd)

    def cache_stamp_mtime(self) -> float | None:
        try:
            return os.stat(os.path.join(path_in_root(self.root, os.path.dirname(UPDATE_STAMP)),
                                        os.path.basename(UPDATE_STAMP))).st_mtime
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def services_denied(self):
        """Yield a host file holding POLICY_RC_D, for CHROOT_SCRIPT to bind-mount over the root's
        policy-rc.d: an existing one (which may allow starts) is shadowed, not modified. A missing
        one is created as mount point, with the same content in case the module dies before it
        removes it, and removed afterwards."""
        target = os.path.join(path_in_root(self.root, 'usr/sbin'), 'policy-rc.d')
        if os.path.islink(target):
            raise JailPackagesError(f'{target} is a symbolic link: refusing to mount over it')
        source = os.path.join(self.module.tmpdir, 'policy-rc.d')
        with open(source, 'w', encoding='utf-8') as handle:
            handle.write(POLICY_RC_D)
        os.chmod(source, 0o755)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
        except FileExistsError:
            created = False
        else:
            created = True
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(POLICY_RC_D)
                os.fchmod(handle.fileno(), 0o755)  # os.open applies the umask
        try:
            yield source
        finally:
            if created:
                os.unlink(target)


class CacheUpdater:
    """apt-get update at most once per run, only when allowed and needed."""

    def __init__(self, jail: Jail, enabled: bool, valid_time: int):
        self.jail = jail
        self.enabled = enabled
        self.valid_time = valid_time
        self.updated = False

    def if_stale(self) -> None:
        if self.may_update and cache_is_stale(self.jail.cache_stamp_mtime(), time.time(), self.valid_time):
            self.force()

    def force(self) -> None:
        self.jail.update_cache()
        self.updated = True

    @property
    def may_update(self) -> bool:
        """Whether an update is allowed: enabled, and not done yet in this run."""
        return self.enabled and not self.updated


def check_installable(jail: Jail, cache: CacheUpdater, requests: list[Request],
                      install_recommends: bool) -> None:
    """Simulate installing the requests, updating the cache once if apt does not know one of them;
    fail unless apt would install each of them under its own name."""
    specs = [request.spec for request in requests]
    rc, out, err = jail.simulate(specs, install_recommends)
    if rc != 0 and not_found(err) and cache.may_update:
        cache.force()
        rc, out, err = jail.simulate(specs, install_recommends)
    if rc != 0:
        missing = not_found(err)
        if missing:
            hint = 'after apt-get update' if cache.updated else 'not updated, see update_cache'
            summary = f"package not found in the apt cache of {jail.root} ({hint}): {', '.join(missing)}"
        else:
            summary = f'apt-get cannot install {" ".join(specs)} in {jail.root}'
        raise JailPackagesError(f'{summary}\n{output_tail(out, err)}', rc=rc, stdout=out, stderr=err)
    simulation = parse_simulation(out)
    unexpected = unexpected_resolutions(requests, simulation)
    if unexpected:
        raise JailPackagesError(
            f"apt would not install {', '.join(unexpected)} under that name (a virtual package, or a name apt only "
            f"matches as a pattern); name the real package. apt would install: {', '.join(sorted(simulation.installs))}"
        )


def available_upgrades(jail: Jail, requests: list[Request], install_recommends: bool) -> dict[str, str]:
    """Installed requested packages apt would upgrade -> the version it would install."""
    rc, out, err = jail.simulate([request.spec for request in requests], install_recommends)
    if rc != 0:
        names = ' '.join(request.name for request in requests)
        raise JailPackagesError(f'apt-get cannot upgrade {names} in {jail.root}:\n{output_tail(out, err)}',
                                rc=rc, stdout=out, stderr=err)
    names = {request.name for request in requests}
    return {name: new for name, (old, new) in parse_simulation(out).installs.items()
            if old is not None and name in names}


def ensure_upgraded(module, jail: Jail, mode: str) -> dict:
    """upgrade=safe|full: every package of the root that apt can upgrade, with fresh indexes."""
    before = jail.packages()
    if module.check_mode:
        changes = parse_upgrade_simulation(jail.upgrade(mode, simulate=True))
    else:
        jail.upgrade(mode, simulate=False)
        changes = package_changes(before, jail.packages())
    result = dict(
        changed=bool(changes),
        root=jail.root,
        installed=sorted(name for name, (old, new) in changes.items() if old is None),
        upgraded=sorted(name for name, (old, new) in changes.items() if old is not None and new is not None),
        removed=sorted(name for name, (old, new) in changes.items() if new is None),
        versions={name: dict(before=old, after=new) for name, (old, new) in changes.items()},
        cache_updated=False,
    )
    if module._diff and changes:
        result['diff'] = dict(
            before_header=f'{jail.root} (before)',
            after_header=f'{jail.root} (after)',
            before=versions_text({name: old for name, (old, new) in changes.items() if old is not None}),
            after=versions_text({name: new for name, (old, new) in changes.items() if new is not None}),
        )
    return result


def ensure_packages(module) -> dict:
    """The module's work; returns the result or raises JailPackagesError."""
    params = module.params
    upgrade = params.get('upgrade') or 'none'
    if upgrade != 'none':
        if params['name']:
            raise JailPackagesError('name and upgrade are mutually exclusive: upgrade acts on every installed package')
        proxy = validate_proxy(params['proxy'])
        return ensure_upgraded(module, Jail(module, check_root(params['root']), proxy), upgrade)
    if params['name'] is None:
        raise JailPackagesError('name is required unless upgrade is safe or full')
    state = params['state']
    requests = parse_requests(params['name'], state)
    proxy = validate_proxy(params['proxy'])
    if params['cache_valid_time'] < 0:
        raise JailPackagesError('cache_valid_time must not be negative')
    jail = Jail(module, check_root(params['root']), proxy)
    cache = CacheUpdater(jail, params['update_cache'] and not module.check_mode, params['cache_valid_time'])
    recommends = params['install_recommends']

    before = jail.packages()
    # Versions after the change, for the diff; in check mode only those apt was asked about.
    new_versions: dict[str, str] = {}
    candidates = upgrade_candidates(requests, state, before)
    if candidates:
        # Whether apt has a newer version depends on the cache: update it first when asked.
        cache.if_stale()
        new_versions = available_upgrades(jail, candidates, recommends)
    plan = plan_changes(requests, state, before, set(new_versions))

    if plan.changes and not module.check_mode:
        if plan.fetch:
            cache.if_stale()
            check_installable(jail, cache, plan.fetch, recommends)
            jail.apt('install', [request.spec for request in plan.fetch], recommends)
        else:
            jail.apt('remove', [request.name for request in plan.remove])
        after = jail.packages()
        unsatisfied = [request.spec for request in plan.fetch
                       if request.name not in after or not after[request.name].installed
                       or request.version not in (None, after[request.name].version)]
        unsatisfied += [request.name for request in plan.remove
                        if request.name in after and after[request.name].present]
        if unsatisfied:
            raise JailPackagesError(f"apt-get succeeded in {jail.root} but did not leave {', '.join(unsatisfied)} "
                                    f'as requested (state={state})')
        new_versions = {name: package.version for name, package in after.items()}

    result = dict(
        changed=plan.changes,
        root=jail.root,
        installed=[request.name for request in plan.install],
        upgraded=[request.name for request in plan.upgrade],
        removed=[request.name for request in plan.remove],
        cache_updated=cache.updated,
    )
    if module._diff and plan.changes:
        affected = [request.name for request in plan.fetch + plan.remove]
        result['diff'] = dict(
            before_header=f'{jail.root} (before)',
            after_header=f'{jail.root} (after)',
            before=versions_text({name: before[name].version for name in affected
                                  if name in before and before[name].present}),
            after=versions_text({request.name: request.version or new_versions.get(request.name)
                                 for request in plan.fetch}),
        )
    return result
