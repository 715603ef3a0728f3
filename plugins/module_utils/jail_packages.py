# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Logic of jailhost.jails.jail_packages: Debian packages installed into a jail root with apt.

The first part is pure (validation, parsing of the dpkg database and of apt-get output, planning,
command lines); ``Jail`` runs the commands and touches the root; ``ensure_packages`` ties them
together.

A jail is hostile, its root user included: it may have replaced any file of its root with a
trojan or a symbolic link. So the host never executes anything of the root and never follows a
link in it (docs/security.md, "The control plane"):

* the dpkg database (var/lib/dpkg/status and the journal var/lib/dpkg/updates/*) is read and
  parsed by this code through jailsafe (no link leads above the root); no host binary such as
  dpkg-query reads a jail file;
* apt-get runs with jailsafe.run: in fresh mount, PID, IPC, UTS and cgroup namespaces whose root
  is the jail root (pivot_root, the host's tree detached), without the host's network unless it
  downloads, as root with only the capabilities dpkg needs (jailsafe.APT_CAPABILITIES), with
  no_new_privs and a seccomp filter, all set before the jail's apt-get is executed. /dev is a
  private tmpfs with the usual device nodes; there is no /proc and no /sys. Our policy-rc.d is a
  host file bind-mounted read-only over ROOT/usr/sbin/policy-rc.d, and the package indexes of an
  upgrade go to a tmpfs over ROOT/var/lib/apt/lists. These mounts exist in the command's mount
  namespace only; every process it started is killed with its PID namespace when it exits, so no
  daemon started by a maintainer script survives the call.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe

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

# The dpkg database, read on the host (see the module docstring). The status file of a Debian root
# with Apache and PHP is about 1 MB; larger files are refused.
DPKG_STATUS = 'var/lib/dpkg/status'
DPKG_UPDATES = 'var/lib/dpkg/updates'
DPKG_STATUS_LIMIT = 256 << 20

# Environment of everything run in the root, on top of jailsafe's (PATH, HOME=/root,
# LC_ALL=C.UTF-8, USER, LOGNAME): nothing of the module's environment leaks in. C.UTF-8 is built
# into the libc of every Debian root, keeps apt's messages untranslated for parsing and makes
# pg_createcluster create UTF-8 clusters.
APT_ENVIRONMENT = {'DEBIAN_FRONTEND': 'noninteractive'}

POLICY_RC_D_PATH = 'usr/sbin/policy-rc.d'
APT_LISTS = 'var/lib/apt/lists'
# The indexes apt-get update fetches during an upgrade go to a tmpfs of this size at most (Debian
# main, updates and security for one architecture take about 200 MB uncompressed).
LISTS_TMPFS_SIZE = '1g'

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


def parse_dpkg_stanzas(text: str) -> list[dict[str, str]]:
    """The records of a dpkg status file (or journal entry): field name (lower case) -> value of
    its first line; continuation lines (Description, Conffiles...) are skipped."""
    records = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
                current = {}
            continue
        if line[0] in ' \t':
            continue
        name, sep, value = line.partition(':')
        if sep:
            current.setdefault(name.strip().lower(), value.strip())
    if current:
        records.append(current)
    return records


def dpkg_records(status: str, updates: list[str] = ()) -> dict[tuple[str, str], tuple[str, str]]:
    """(package, architecture) -> (db:Status-Status, version), from the status file and the
    journal entries of var/lib/dpkg/updates, given in numeric order: as dpkg-query reads the
    database, a journal record replaces the status record of the same package and architecture."""
    records: dict[tuple[str, str], tuple[str, str]] = {}
    for text in (status, *updates):
        for record in parse_dpkg_stanzas(text):
            name = record.get('package')
            words = record.get('status', '').split()
            if not name or len(words) != 3:
                continue
            records[(name, record.get('architecture', ''))] = (words[2], record.get('version', ''))
    return records


def merge_packages(records: dict[tuple[str, str], tuple[str, str]]) -> dict[str, Package]:
    """name -> Package. A name listed for several architectures counts as installed when one of
    them is installed."""
    packages: dict[str, Package] = {}
    for (name, _arch), (status, version) in sorted(records.items()):
        package = Package(status, version)
        known = packages.get(name)
        if known is None or (package.installed and not known.installed):
            packages[name] = package
    return packages


def parse_dpkg_status(status: str, updates: list[str] = ()) -> dict[str, Package]:
    """The packages of a dpkg database (status file and journal entries in numeric order)."""
    return merge_packages(dpkg_records(status, updates))


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
    tmpfs of Jail.upgrade), then upgrade, or only simulate it; the downloaded packages are removed."""
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


def output_tail(stdout: str, stderr: str) -> str:
    """The last lines of a command's output and error output, for an error message."""
    lines = [line for line in stdout.strip().splitlines() if line not in APT_PROGRESS_LINES]
    return '\n'.join(lines[-OUTPUT_TAIL_LINES:] + stderr.strip().splitlines()[-OUTPUT_TAIL_LINES:])


def versions_text(versions: dict[str, str | None]) -> str:
    """One NAME=VERSION line per package (NAME alone when the version is not known yet)."""
    return ''.join(f'{name}={version}\n' if version else f'{name}\n' for name, version in sorted(versions.items()))


def check_root(path: str) -> str:
    """The real path of a jail root apt may run in (jailsafe.check_root, and a dpkg database), or
    JailPackagesError."""
    try:
        real = jailsafe.check_root(path, 'jail_packages')
        rootfd = jailsafe.open_root(real)
    except jailsafe.JailSafeError as exc:
        raise JailPackagesError(str(exc)) from None
    try:
        try:
            fd = jailsafe.open_in(rootfd, DPKG_STATUS, os.O_PATH, follow=True)
        except OSError:
            is_file = False
        else:
            try:
                is_file = stat.S_ISREG(os.fstat(fd).st_mode)
            finally:
                os.close(fd)
    finally:
        os.close(rootfd)
    if not is_file:
        raise JailPackagesError(f'root {path} is not a Debian root filesystem (no var/lib/dpkg/status)')
    return real


class Jail:
    """A jail root and the commands run in it (see the module docstring)."""

    def __init__(self, module, root: str, proxy: str | None):
        self.module = module
        self.root = root
        self.proxy = proxy

    def _read(self, path: str) -> str:
        try:
            data = jailsafe.read_file(self.root, path, DPKG_STATUS_LIMIT)
        except jailsafe.JailSafeError as exc:
            raise JailPackagesError(f'cannot read the dpkg database of {self.root}: {exc}') from None
        return (data or b'').decode('utf-8', 'replace')

    def journal(self) -> list[str]:
        """Names of the dpkg journal entries (var/lib/dpkg/updates/NNNN), in numeric order."""
        rootfd = jailsafe.open_root(self.root)
        try:
            try:
                fd = jailsafe.open_in(rootfd, DPKG_UPDATES, os.O_RDONLY | os.O_DIRECTORY, follow=True)
            except FileNotFoundError:
                return []
            except OSError as exc:
                raise JailPackagesError(
                    f'cannot read the dpkg database of {self.root}: '
                    f'{jailsafe.describe_error(self.root, DPKG_UPDATES, exc)}') from None
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
        finally:
            os.close(rootfd)
        return sorted((name for name in names if name.isdigit()), key=int)

    def packages(self) -> dict[str, Package]:
        """The dpkg database of the root, read and parsed on the host: nothing of the root runs,
        no link leads out of it."""
        status = self._read(DPKG_STATUS)
        updates = [self._read(f'{DPKG_UPDATES}/{name}') for name in self.journal()]
        return parse_dpkg_status(status, updates)

    def run(self, command: list[str], *, network: str = 'none', policy: str | None = None,
            scratch_lists: bool = False) -> tuple[int, str, str]:
        """Run COMMAND as root in the root, confined by jailsafe.run with the capabilities of apt;
        POLICY (a host file) is bind-mounted read-only over usr/sbin/policy-rc.d, SCRATCH_LISTS
        puts a tmpfs over var/lib/apt/lists."""
        mounts = []
        if policy:
            mounts.append(jailsafe.Mount('bind-ro', POLICY_RC_D_PATH, policy))
        if scratch_lists:
            mounts.append(jailsafe.Mount('tmpfs', APT_LISTS, size=LISTS_TMPFS_SIZE))
        try:
            return jailsafe.run(self.root, command, user='root', caps=jailsafe.APT_CAPABILITIES, network=network,
                                env=dict(APT_ENVIRONMENT), mounts=mounts)
        except (jailsafe.JailSafeError, OSError) as exc:
            raise JailPackagesError(f'cannot run {command[0]} in {self.root}: {exc}') from None

    def apt(self, action: str, specs: list[str], install_recommends: bool = False) -> None:
        """apt-get install/remove, with services forbidden to start; only install downloads."""
        command = apt_get(action, specs, proxy=self.proxy, install_recommends=install_recommends)
        with self.services_denied() as policy:
            rc, out, err = self.run(command, network='host' if action == 'install' else 'none', policy=policy)
        if rc != 0:
            raise JailPackagesError(f'apt-get {action} failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)

    def upgrade(self, mode: str, simulate: bool) -> str:
        """apt-get update and upgrade (or only its simulation) in one confined run, with the
        indexes on a tmpfs and, unless simulating, services forbidden to start; returns apt's
        output."""
        self._directory(APT_LISTS)
        command = ['/bin/sh', '-c', apt_upgrade_script(mode, proxy=self.proxy, simulate=simulate)]
        if simulate:
            rc, out, err = self.run(command, network='host', scratch_lists=True)
        else:
            with self.services_denied() as policy:
                rc, out, err = self.run(command, network='host', policy=policy, scratch_lists=True)
        if rc != 0:
            what = 'simulation of the upgrade' if simulate else 'upgrade'
            raise JailPackagesError(f'apt-get update and {what} failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)
        return out

    def simulate(self, specs: list[str], install_recommends: bool) -> tuple[int, str, str]:
        """apt-get -s install: writes nothing in the root, needs no network."""
        return self.run(apt_get('install', specs, install_recommends=install_recommends, simulate=True))

    def update_cache(self) -> None:
        rc, out, err = self.run(apt_get('update', proxy=self.proxy), network='host')
        if rc != 0:
            raise JailPackagesError(f'apt-get update failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                    rc=rc, stdout=out, stderr=err)
        self._touch_stamp()

    def clean(self) -> None:
        """apt-get clean and an empty var/lib/apt/lists, run confined in the root."""
        for command in (['apt-get', '-q', 'clean'], ['find', f'/{APT_LISTS}', '-mindepth', '1', '-delete']):
            rc, out, err = self.run(command)
            if rc != 0:
                raise JailPackagesError(f'{shlex.join(command)} failed in {self.root} (rc={rc}):\n{output_tail(out, err)}',
                                        rc=rc, stdout=out, stderr=err)

    def _directory(self, path: str) -> None:
        """Fail unless PATH is a directory of the root reached without any link."""
        rootfd = jailsafe.open_root(self.root)
        try:
            os.close(jailsafe.open_in(rootfd, path, os.O_PATH | os.O_DIRECTORY))
        except OSError as exc:
            raise JailPackagesError(f'{jailsafe.describe_error(self.root, path, exc)} (a directory is needed)') from None
        finally:
            os.close(rootfd)

    def _touch_stamp(self) -> None:
        """Create or touch UPDATE_STAMP (and its directory), no link followed."""
        directory, name = UPDATE_STAMP.rsplit('/', 1)
        rootfd = jailsafe.open_root(self.root)
        try:
            parent, base = directory.rsplit('/', 1)
            parentfd = jailsafe.open_in(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                try:
                    os.mkdir(base, 0o755, dir_fd=parentfd)
                except FileExistsError:
                    pass
            finally:
                os.close(parentfd)
            dirfd = jailsafe.open_in(rootfd, directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                             0o644, dir_fd=dirfd)
            finally:
                os.close(dirfd)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise JailPackagesError(f'{self.root}/{UPDATE_STAMP} is not a regular file')
                os.utime(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JailPackagesError(
                f'cannot touch {jailsafe.describe_error(self.root, UPDATE_STAMP, exc)}') from None
        finally:
            os.close(rootfd)

    def cache_stamp_mtime(self) -> float | None:
        try:
            info = jailsafe.stat_file(self.root, UPDATE_STAMP)
        except jailsafe.JailSafeError:  # a link: an outdated cache
            return None
        return None if info is None else info.st_mtime

    @contextlib.contextmanager
    def services_denied(self):
        """Yield a host file (in the module's temporary directory) holding POLICY_RC_D, for
        Jail.run to bind-mount read-only over the root's policy-rc.d: an existing one (which may
        allow starts) is shadowed, not modified. A missing one is created as mount point, with the
        same content in case the module dies before it removes it, and removed afterwards."""
        rootfd = jailsafe.open_root(self.root)
        try:
            fd = jailsafe.open_in(rootfd, POLICY_RC_D_PATH, os.O_PATH)
        except FileNotFoundError:
            exists = False
        except OSError as exc:
            raise JailPackagesError(
                f'cannot mount our policy-rc.d on {jailsafe.describe_error(self.root, POLICY_RC_D_PATH, exc)}') from None
        else:
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise JailPackagesError(f'{self.root}/{POLICY_RC_D_PATH} is not a regular file: '
                                            'refusing to mount over it')
            finally:
                os.close(fd)
            exists = True
        finally:
            os.close(rootfd)
        source = os.path.join(self.module.tmpdir, 'policy-rc.d')
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(POLICY_RC_D)
            os.fchmod(handle.fileno(), 0o755)  # os.open applies the umask
        created = False
        if not exists:
            try:
                jailsafe.write_file(self.root, POLICY_RC_D_PATH, POLICY_RC_D.encode(), mode=0o755)
            except (jailsafe.JailSafeError, OSError) as exc:
                raise JailPackagesError(f'cannot create the mount point of policy-rc.d in {self.root}: {exc}') from None
            created = True
        try:
            yield source
        finally:
            if created:
                jailsafe.remove_file(self.root, POLICY_RC_D_PATH)


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


def clean_after(module, jail: Jail, acted: bool) -> bool:
    """clean=true: after a change (or an apt-get update), apt-get clean and an empty
    var/lib/apt/lists, run confined in the root. Returns whether it ran."""
    if not module.params.get('clean') or not acted or module.check_mode:
        return False
    jail.clean()
    return True


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
        cleaned=clean_after(module, jail, bool(changes)),
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
        cleaned=clean_after(module, jail, plan.changes or cache.updated),
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
