# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of jailhost.jails.jail_packages: the pure functions of its module_utils, then the module
against a fake apt (jailsafe.run is replaced; the dpkg database is a real status file the module
reads from a real root-owned jail root, so these tests need root: `make test` runs as root, as CI
does).

One file for both: tests/unit has no __init__.py, so two test files named test_jail_packages.py
could not be collected together.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.jailhost.jails.plugins.module_utils import jail_packages as utils
from ansible_collections.jailhost.jails.plugins.module_utils.jail_packages import (
    JailPackagesError,
    Package,
    Request,
    Simulation,
    apt_get,
    cache_is_stale,
    not_found,
    output_tail,
    parse_dpkg_status,
    parse_requests,
    parse_simulation,
    plan_changes,
    unexpected_resolutions,
    upgrade_candidates,
    validate_proxy,
    versions_text,
)
from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe
from ansible_collections.jailhost.jails.plugins.modules import jail_packages

PROXY = 'http://10.254.0.1:3142'


# Pure functions


class TestParseRequests:
    def test_names_and_versions(self):
        assert parse_requests(['apache2', 'libstdc++6', 'php8.2-pgsql', 'postgresql-15=15.8-0+deb12u1',
                               'tzdata=2024a-0+deb12u1', 'libc6=2:2.36-9~bpo1'], 'present') == [
            Request('apache2'), Request('libstdc++6'), Request('php8.2-pgsql'),
            Request('postgresql-15', '15.8-0+deb12u1'), Request('tzdata', '2024a-0+deb12u1'),
            Request('libc6', '2:2.36-9~bpo1'),
        ]

    def test_spec(self):
        assert Request('apache2').spec == 'apache2'
        assert Request('apache2', '2.4.62-1').spec == 'apache2=2.4.62-1'

    def test_duplicates_are_merged(self):
        requests = parse_requests(['curl', 'curl', 'gcc=1.0', 'gcc=1.0'], 'present')
        assert requests == [Request('curl'), Request('gcc', '1.0')]

    def test_conflicting_duplicates(self):
        with pytest.raises(JailPackagesError, match='gcc is requested twice with different versions'):
            parse_requests(['gcc', 'gcc=1.0'], 'present')

    @pytest.mark.parametrize('name', [
        'curl; rm -rf /', '$(id)', '`id`', 'a|b', 'curl&', '-o', '--purge', '-y', 'Apache2', 'a', 'foo bar',
        'foo*', 'foo/bookworm', 'libc6:i386', '', '.foo', '+foo', 'foo=', 'foo=-1', 'foo=1;id', 'foo=1 2',
        'foo\nbar', 'curl\n', 'foo=1\n', 'foo=1=2', '../etc',
    ])
    def test_invalid(self, name):
        with pytest.raises(JailPackagesError, match='is not a Debian package name'):
            parse_requests(['curl', name], 'present')

    def test_every_invalid_element_is_reported(self):
        with pytest.raises(JailPackagesError) as error:
            parse_requests(['Foo', 'curl', '-x'], 'present')
        assert "'Foo'" in str(error.value) and "'-x'" in str(error.value)

    @pytest.mark.parametrize('state', ['absent', 'latest'])
    def test_version_only_with_present(self, state):
        with pytest.raises(JailPackagesError, match='a version can only be given with state=present'):
            parse_requests(['curl=7.88.1-10'], state)


class TestValidateProxy:
    @pytest.mark.parametrize('url', [
        'http://10.254.0.1:3142', 'http://10.254.0.1:3142/', 'https://proxy.example.org',
        'http://user:p%40ss@proxy.example.org:8080/', 'http://[2001:db8::1]:3128',
    ])
    def test_valid(self, url):
        assert validate_proxy(url) == url

    def test_none(self):
        assert validate_proxy(None) is None

    @pytest.mark.parametrize('url', [
        'ftp://proxy', 'socks5://proxy:1080', 'proxy:3142', '10.254.0.1:3142', 'http://', 'http://:3142',
        'http://proxy:99999', 'http://proxy:0', 'http://proxy:port', 'http://proxy/path', 'http://proxy/?a=b',
        'http://proxy#x', 'http://proxy 3142', 'http://proxy"', "http://pro'xy\n", 'http://proxy\\x', '',
        'http://proxy;rm -rf /', 'http://proxy:3142\n',
    ])
    def test_invalid(self, url):
        with pytest.raises(JailPackagesError, match='is not the URL of an HTTP proxy'):
            validate_proxy(url)


STATUS = """\
Package: apache2
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.4.62-1~deb12u2
Description: Apache HTTP Server
 Package: not-a-field
 with a continuation line

Package: gcc
Status: deinstall ok config-files
Architecture: amd64
Version: 4:12.2.0-3
Conffiles:
 /etc/gcc.conf 0123

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u7

Package: libc6
Status: purge ok not-installed
Architecture: i386

Package: libfoo1
Status: purge ok not-installed
Architecture: i386

Package: libfoo1
Status: install ok installed
Architecture: amd64
Version: 1.0

Package: php8.2-pgsql
Status: install ok unpacked
Architecture: amd64
Version: 8.2.20-1

Package: broken
Status: installed
Version: 1
"""


class TestDpkgDatabase:
    def test_parse(self):
        packages = parse_dpkg_status(STATUS)
        assert packages['apache2'] == Package('installed', '2.4.62-1~deb12u2')
        # One installed architecture is enough, whatever the order.
        assert packages['libc6'].installed and packages['libfoo1'].installed
        assert not packages['gcc'].installed and not packages['gcc'].present
        assert not packages['php8.2-pgsql'].installed and packages['php8.2-pgsql'].present
        assert 'broken' not in packages and 'not-a-field' not in packages

    def test_journal_entries_replace_status_records_in_order(self):
        journal = ['Package: php8.2-pgsql\nStatus: install ok half-configured\nArchitecture: amd64\n'
                   'Version: 8.2.20-1\n',
                   'Package: php8.2-pgsql\nStatus: install ok installed\nArchitecture: amd64\nVersion: 8.2.20-1\n\n'
                   'Package: apache2\nStatus: deinstall ok config-files\nArchitecture: amd64\n'
                   'Version: 2.4.62-1~deb12u2\n']
        packages = parse_dpkg_status(STATUS, journal)
        assert packages['php8.2-pgsql'] == Package('installed', '8.2.20-1')
        assert packages['apache2'] == Package('config-files', '2.4.62-1~deb12u2')
        # The other order leaves the earlier state.
        assert parse_dpkg_status(STATUS, journal[::-1])['php8.2-pgsql'].status == 'half-configured'

    @pytest.mark.parametrize('status, installed, present', [
        ('installed', True, True), ('triggers-pending', True, True), ('triggers-awaited', True, True),
        ('half-configured', False, True), ('unpacked', False, True), ('half-installed', False, True),
        ('config-files', False, False), ('not-installed', False, False),
    ])
    def test_statuses(self, status, installed, present):
        package = Package(status, '1.0')
        assert (package.installed, package.present) == (installed, present)


PACKAGES = {
    'apache2': Package('installed', '2.4.62-1'),
    'gcc': Package('config-files', '12'),
    'curl': Package('installed', '7.88'),
    'php8.2-pgsql': Package('half-configured', '8.2.20'),
}


class TestPlan:
    def test_present(self):
        requests = [Request('apache2'), Request('gcc'), Request('make'), Request('php8.2-pgsql'),
                    Request('curl', '7.88'), Request('libc6', '2.36')]
        plan = plan_changes(requests, 'present', PACKAGES)
        assert plan.install == [Request('gcc'), Request('make'), Request('php8.2-pgsql'), Request('libc6', '2.36')]
        assert plan.upgrade == [] and plan.remove == []
        assert plan.changes

    def test_present_pinned_version_change(self):
        plan = plan_changes([Request('curl', '7.99'), Request('apache2', '2.4.62-1')], 'present', PACKAGES)
        assert plan.install == [] and plan.upgrade == [Request('curl', '7.99')]
        assert plan.fetch == [Request('curl', '7.99')]

    def test_nothing_to_do(self):
        for state, names in (('present', ['apache2', 'curl']), ('absent', ['gcc', 'make']), ('latest', ['apache2'])):
            assert not plan_changes([Request(name) for name in names], state, PACKAGES).changes

    def test_absent(self):
        plan = plan_changes([Request('apache2'), Request('gcc'), Request('make'), Request('php8.2-pgsql')],
                            'absent', PACKAGES)
        assert plan.remove == [Request('apache2'), Request('php8.2-pgsql')]
        assert plan.fetch == []

    def test_latest(self):
        requests = [Request('apache2'), Request('curl'), Request('make')]
        assert upgrade_candidates(requests, 'latest', PACKAGES) == [Request('apache2'), Request('curl')]
        plan = plan_changes(requests, 'latest', PACKAGES, {'curl'})
        assert plan.install == [Request('make')] and plan.upgrade == [Request('curl')]

    @pytest.mark.parametrize('state', ['present', 'absent'])
    def test_apt_is_asked_only_for_latest(self, state):
        assert upgrade_candidates([Request('apache2')], state, PACKAGES) == []


SIMULATION = """\
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be upgraded:
  curl libcurl4
Inst libcurl4 [7.88.1-10] (7.88.1-10+deb12u5 Debian-Security:12/stable-security [amd64]) []
Inst curl [7.88.1-10] (7.88.1-10+deb12u5 Debian-Security:12/stable-security [amd64])
Inst libc6:i386 (2.36-9+deb12u7 Debian:12.6/stable [i386])
Inst ssmtp (2.64-11 Debian:12.15/oldstable [amd64])
Conf libcurl4 (7.88.1-10+deb12u5 Debian-Security:12/stable-security [amd64])
Conf curl (7.88.1-10+deb12u5 Debian-Security:12/stable-security [amd64])
Conf php8.2-pgsql (8.2.20-1~deb12u1 Debian:12.6/stable [amd64])
"""


class TestSimulation:
    def test_parse(self):
        simulation = parse_simulation(SIMULATION)
        assert simulation.installs == {
            'libcurl4': ('7.88.1-10', '7.88.1-10+deb12u5'),
            'curl': ('7.88.1-10', '7.88.1-10+deb12u5'),
            'libc6': (None, '2.36-9+deb12u7'),
            'ssmtp': (None, '2.64-11'),
        }
        assert simulation.configures == {'libcurl4', 'curl', 'php8.2-pgsql'}
        assert simulation.handles('php8.2-pgsql') and simulation.handles('ssmtp') and not simulation.handles('gcc')

    def test_unexpected_resolutions(self):
        simulation = parse_simulation(SIMULATION)
        # "ssmtp+" is a valid package name that apt-get matches as a regular expression.
        requests = [Request('curl'), Request('ssmtp+'), Request('php8.2-pgsql'), Request('mail-transport-agent')]
        assert unexpected_resolutions(requests, simulation) == ['ssmtp+', 'mail-transport-agent']
        assert unexpected_resolutions([Request('curl', '7.88.1-10+deb12u5')], simulation) == []
        assert unexpected_resolutions([Request('curl')], Simulation()) == ['curl']

    def test_not_found(self):
        stderr = (
            "E: Unable to locate package nosuchpkg\n"
            "E: Unable to locate package foo+bar\n"
            "E: Couldn't find any package by regex 'foo+bar'\n"
            "E: Package 'mail-transport-agent' has no installation candidate\n"
            "E: Version '1.0' for 'apache2' was not found\n"
            "E: Unable to locate package nosuchpkg\n"
        )
        assert not_found(stderr) == ['nosuchpkg', 'foo+bar', 'mail-transport-agent', 'apache2']
        assert not_found('E: Unable to correct problems, you have held broken packages.\n') == []


class TestAptGet:
    def test_install(self):
        assert apt_get('install', ['apache2', 'curl=7.88'], proxy='http://10.254.0.1:3142') == [
            'apt-get', '-q', '-y', '-o', 'Dpkg::Use-Pty=0',
            '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
            '-o', 'Acquire::http::Proxy=http://10.254.0.1:3142', '--no-install-recommends',
            'install', 'apache2', 'curl=7.88',
        ]

    def test_install_recommends(self):
        command = apt_get('install', ['apache2'], install_recommends=True)
        assert '--no-install-recommends' not in command
        assert command[-4:] == ['-o', 'APT::Install-Recommends=true', 'install', 'apache2']

    def test_remove(self):
        assert apt_get('remove', ['gcc']) == [
            'apt-get', '-q', '-y', '-o', 'Dpkg::Use-Pty=0',
            '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', 'remove', 'gcc',
        ]

    def test_update(self):
        assert apt_get('update', proxy='http://proxy:3128') == [
            'apt-get', '-q', '-o', 'APT::Update::Error-Mode=any',
            '-o', 'Acquire::http::Proxy=http://proxy:3128', 'update',
        ]

    def test_simulation_writes_no_cache_file_and_needs_no_proxy(self):
        assert apt_get('install', ['curl'], proxy='http://proxy:3128', simulate=True) == [
            'apt-get', '-q', '-s', '-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=',
            '--no-install-recommends', 'install', 'curl',
        ]


def test_cache_is_stale():
    assert cache_is_stale(None, 1000.0, 3600)
    assert cache_is_stale(900.0, 1000.0, 0)
    assert cache_is_stale(900.0, 1000.0, 99)
    assert not cache_is_stale(900.0, 1000.0, 100)
    assert not cache_is_stale(2000.0, 1000.0, 0)  # a stamp from the future: clock change, not stale


def test_output_tail():
    stdout = ''.join(f'line {number}\n' for number in range(40)) + 'Reading package lists...\n'
    tail = output_tail(stdout, 'E: Sub-process /usr/bin/dpkg returned an error code (1)\n')
    assert tail.splitlines()[0] == 'line 25'
    assert tail.splitlines()[-1] == 'E: Sub-process /usr/bin/dpkg returned an error code (1)'


def test_versions_text():
    assert versions_text({'curl': '7.88', 'apache2': None}) == 'apache2\ncurl=7.88\n'
    assert versions_text({}) == ''


# The module


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` holds what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class Database(dict):
    """name -> (dpkg status, version), written to the root's var/lib/dpkg/status at every change
    (the module reads that file, as on a real root)."""

    def __init__(self, path, items):
        super().__init__(items)
        self.path = path
        self.write()

    def write(self):
        words = {'installed': 'install ok installed', 'config-files': 'deinstall ok config-files'}
        self.path.write_text(''.join(
            f'Package: {name}\nStatus: {words.get(status, "install ok " + status)}\nArchitecture: amd64\n'
            f'Version: {version}\nDescription: {name}\n a continuation line\n\n'
            for name, (status, version) in self.items()))

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.write()

    def pop(self, *args):
        value = super().pop(*args)
        self.write()
        return value


class FakeDebian:
    """The dpkg database and apt of a jail root: what the status file holds and what apt-get does."""

    def __init__(self, root):
        self.root = root
        self.db = Database(root / 'var/lib/dpkg/status', {'base-files': ('installed', '12.4'),
                                                          'gcc': ('config-files', '12')})
        # What the lists of the root know, and what they know after apt-get update.
        self.cache = {'apache2': '2.4.62-1', 'curl': '7.88-1', 'base-files': '12.4', 'gcc': '12', 'libapr1': '1.7'}
        self.mirror = dict(self.cache)
        self.calls = []
        self.runs = []
        self.policy_seen = []
        self.install_error = None
        self.install_ignores = set()
        self.confinement_error = None

    def apt_calls(self):
        return [call for call in self.calls if call[0] == 'apt-get']

    def changing_calls(self):
        """apt-get commands that change the root."""
        return [call for call in self.apt_calls() if '-s' not in call]

    def jailsafe_run(self, root, argv, *, user='root', caps=(), network='none', env=None, mounts=(), cwd='/',
                     data=None, proc=None):
        assert root == str(self.root) and user == 'root' and cwd == '/' and data is None and proc is None
        assert tuple(caps) == jailsafe.APT_CAPABILITIES and network in ('none', 'host')
        assert env == {'DEBIAN_FRONTEND': 'noninteractive'}
        argv = list(argv)
        kinds = {mount.target: (mount.kind, mount.source) for mount in mounts}
        self.runs.append(dict(argv=argv, network=network, mounts=kinds))
        if self.confinement_error:
            raise jailsafe.JailSafeError(self.confinement_error)
        policy = kinds.get('usr/sbin/policy-rc.d')
        if policy:
            assert policy[0] == 'bind-ro'
            with open(policy[1], encoding='utf-8') as handle:
                assert handle.read() == utils.POLICY_RC_D
            assert os.stat(policy[1]).st_mode & 0o777 == 0o755
            # The mount point exists in the root.
            assert (self.root / 'usr/sbin/policy-rc.d').is_file()
        self.policy_seen.append((policy[1] if policy else '', (self.root / 'usr/sbin/policy-rc.d').exists()))
        if argv[0] == '/bin/sh':
            return self._upgrade(argv, kinds, network)
        self.calls.append(argv)
        if argv[0] == 'find':
            assert network == 'none' and not kinds
            return 0, '', ''
        action = next(word for word in argv if word in ('update', 'install', 'remove', 'clean'))
        specs = argv[argv.index(action) + 1:]
        # Only the calls that download see the host's network.
        assert network == ('host' if action in ('update', 'install') and '-s' not in argv else 'none'), argv
        if action == 'clean':
            return 0, '', ''
        if action == 'update':
            self.cache = dict(self.mirror)
            return 0, 'Reading package lists...\n', ''
        if action == 'remove':
            for name in specs:
                self.db[name] = ('config-files', self.db[name][1])
            return 0, f'Removing {specs[0]} ...\n', ''
        return self._install(specs, simulate='-s' in argv)

    def _upgrade(self, argv, kinds, network):
        """upgrade=safe|full: /bin/sh -c 'apt-get update && apt-get upgrade ...' in the root."""
        assert network == 'host' and kinds['var/lib/apt/lists'][0] == 'tmpfs'
        script = argv[2]
        self.calls.append(['upgrade', script])
        upgrades = {name: version for name, version in self.mirror.items()
                    if self.db.get(name, ('', ''))[0] == 'installed' and self.db[name][1] != version}
        lines = [f'Inst {name} [{self.db[name][1]}] ({version} Debian:12.7/stable [amd64])'
                 for name, version in sorted(upgrades.items())]
        if ' -s ' in script:
            return 0, 'Get:1 http://deb.debian.org/debian bookworm InRelease\n' + '\n'.join(lines) + '\n', ''
        if self.install_error:
            return 100, 'output\n', self.install_error
        for name, version in upgrades.items():
            self.db[name] = ('installed', version)
        return 0, 'Setting up ...\n', ''

    def _install(self, specs, simulate):
        errors = []
        lines = []
        for spec in specs:
            name, _sep, version = spec.partition('=')
            if name not in self.cache:
                errors.append(f'E: Unable to locate package {name}')
            elif version and version != self.cache[name]:
                errors.append(f"E: Version '{version}' for '{name}' was not found")
            elif self.db.get(name, ('', ''))[0] != 'installed' or self.db[name][1] != self.cache[name]:
                old = f'[{self.db[name][1]}] ' if self.db.get(name, ('', ''))[0] == 'installed' else ''
                if name not in self.install_ignores:
                    lines.append(f'Inst {name} {old}({self.cache[name]} Debian:12.6/stable [amd64])')
        if errors:
            return 100, 'Reading package lists...\n', '\n'.join(errors) + '\n'
        if simulate:
            return 0, 'Reading package lists...\n' + ''.join(line + '\n' for line in lines), ''
        if self.install_error:
            return 100, ''.join(f'output line {number}\n' for number in range(30)), self.install_error
        for line in lines:
            name = line.split()[1]
            self.db[name] = ('installed', self.cache[name])
        return 0, 'Setting up apache2 ...\n', ''


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='jailsafe acts only on root-owned jail roots: needs root')


@pytest.fixture
def base():
    """A root-owned directory that only root can write to (jailsafe.check_root refuses a jail root
    below a world-writable directory such as /tmp)."""
    if os.geteuid() != 0:
        pytest.skip('jailsafe acts only on root-owned jail roots: the module tests need root')
    path = Path(tempfile.mkdtemp(prefix='jailhost-unit-', dir='/var/lib'))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def root(base):
    """A minimal Debian root."""
    path = base / 'jail'
    for directory in ('var/lib/dpkg', 'var/lib/apt/periodic', 'var/lib/apt/lists', 'dev', 'usr/sbin', 'etc'):
        (path / directory).mkdir(parents=True)
    (path / 'var/lib/dpkg/status').write_text('')
    return path


@pytest.fixture
def fake(root, monkeypatch, tmp_path):
    fake = FakeDebian(root)

    def leave(self, **result):
        raise ModuleExit(result)

    def fail(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', leave)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command',
                        lambda self, args, **kwargs: pytest.fail(f'no host command may run: {args}'))
    monkeypatch.setattr(basic.AnsibleModule, 'tmpdir', str(tmp_path))
    monkeypatch.setattr(utils.jailsafe, 'run', fake.jailsafe_run)
    return fake


def run(root, check_mode=False, diff=False, **args):
    if 'pkg' not in args and 'upgrade' not in args:
        args.setdefault('name', ['apache2', 'curl'])
    args.update(root=str(root), _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(ModuleExit) as leaving:
        jail_packages.main()
    return leaving.value.result


def test_install_then_nothing_to_do(fake, root):
    first = run(root, proxy=PROXY)

    assert first['changed'] is True
    assert (first['installed'], first['upgraded'], first['removed']) == (['apache2', 'curl'], [], [])
    assert first['cache_updated'] is False
    assert first['root'] == str(root)
    simulation, install = fake.apt_calls()
    assert '-s' in simulation and simulation[-3:] == ['install', 'apache2', 'curl']
    assert install == [
        'apt-get', '-q', '-y', '-o', 'Dpkg::Use-Pty=0',
        '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
        '-o', f'Acquire::http::Proxy={PROXY}', '--no-install-recommends', 'install', 'apache2', 'curl',
    ]
    assert fake.db['apache2'] == ('installed', '2.4.62-1')

    fake.calls.clear()
    fake.runs.clear()
    second = run(root, proxy=PROXY, update_cache=True)

    assert second['changed'] is False
    assert second['installed'] == [] and second['cache_updated'] is False
    # Nothing to do: the database was read from the host, nothing ran in the root.
    assert fake.runs == []


def test_apt_runs_confined_with_the_network_only_to_download(fake, root):
    # jailsafe.run (faked) asserts root, user root, the apt capabilities and the environment.
    run(root, update_cache=True)

    assert [(call['argv'][-3] if call['argv'][-1] != 'update' else 'update', '-s' in call['argv'], call['network'])
            for call in fake.runs] == [('update', False, 'host'), ('install', True, 'none'), ('install', False, 'host')]
    assert fake.runs[0]['mounts'] == {} and fake.runs[1]['mounts'] == {}
    assert list(fake.runs[2]['mounts']) == ['usr/sbin/policy-rc.d']


def test_the_dpkg_journal_is_read(fake, root):
    fake.db['apache2'] = ('unpacked', '2.4.62-1')
    (root / 'var/lib/dpkg/updates').mkdir()
    # dpkg finished configuring apache2 but did not fold its journal into the status file yet.
    (root / 'var/lib/dpkg/updates/0001').write_text(
        'Package: apache2\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.4.62-1\n')
    (root / 'var/lib/dpkg/updates/tmp.i').write_text('Package: apache2\nStatus: purge ok not-installed\n')

    result = run(root, name=['apache2'])

    assert result['changed'] is False and fake.runs == []


def test_a_symlinked_status_file_is_read_inside_the_root(fake, root):
    (root / 'var/lib/dpkg/status').unlink()
    (root / 'var/lib/dpkg/status').symlink_to('/etc/hostname')

    result = run(root)

    # /etc/hostname of the jail does not exist; the host's is never read.
    assert result['msg'] == f'root {root} is not a Debian root filesystem (no var/lib/dpkg/status)'
    assert fake.runs == []


def test_clean_after_a_change_only(fake, root):
    result = run(root, update_cache=True, clean=True)

    assert result['changed'] is True and result['cleaned'] is True
    clean, find = fake.runs[-2:]
    assert clean['argv'] == ['apt-get', '-q', 'clean'] and clean['network'] == 'none'
    assert find['argv'] == ['find', '/var/lib/apt/lists', '-mindepth', '1', '-delete']

    fake.runs.clear()
    again = run(root, update_cache=True, clean=True)
    assert again['changed'] is False and again['cleaned'] is False and fake.runs == []
    check = run(root, check_mode=True, clean=True, name=['libapr1'])
    assert check['changed'] is True and check['cleaned'] is False and fake.runs == []
    assert run(root, name=['libapr1'])['cleaned'] is False


def test_the_update_stamp_is_not_touched_through_a_link(fake, root, base):
    outside = base / 'outside'
    outside.write_text('host\n')
    os.utime(outside, (1000, 1000))
    (root / utils.UPDATE_STAMP).symlink_to(outside)

    result = run(root, update_cache=True)

    assert result['failed'] and 'a symbolic link on the way, refused' in result['msg']
    assert os.stat(outside).st_mtime == 1000


def test_services_are_denied_while_apt_installs(fake, root):
    run(root)

    # The simulation runs without policy; the installation with it, the root's file existing as mount point.
    (sim_policy, _sim_existed), (install_policy, existed) = fake.policy_seen
    assert sim_policy == '' and install_policy and existed
    assert not (root / 'usr/sbin/policy-rc.d').exists()


def test_an_existing_policy_rc_d_is_shadowed_not_changed(fake, root):
    existing = root / 'usr/sbin/policy-rc.d'
    existing.write_text('#!/bin/sh\nexit 0\n')

    run(root)

    assert fake.policy_seen[-1][0]
    assert existing.read_text() == '#!/bin/sh\nexit 0\n'


def test_a_symlinked_policy_rc_d_is_refused(fake, root):
    (root / 'usr/sbin/policy-rc.d').symlink_to('/etc/passwd')

    result = run(root)

    assert result['failed'] and 'a symbolic link on the way, refused' in result['msg']
    assert fake.changing_calls() == []
    assert os.path.islink(root / 'usr/sbin/policy-rc.d')


def test_check_mode_changes_nothing(fake, root):
    result = run(root, check_mode=True, diff=True, update_cache=True, name=['apache2', 'base-files'])

    assert result['changed'] is True
    assert result['installed'] == ['apache2'] and result['cache_updated'] is False
    assert result['diff']['before'] == '' and result['diff']['after'] == 'apache2\n'
    assert fake.runs == []
    assert 'apache2' not in fake.db
    assert not (root / 'usr/sbin/policy-rc.d').exists()


def test_diff_with_versions(fake, root):
    fake.db['curl'] = ('installed', '7.80-1')

    result = run(root, diff=True, name=['apache2', 'curl=7.88-1', 'base-files'])

    assert result['installed'] == ['apache2'] and result['upgraded'] == ['curl']
    assert result['diff']['before'] == 'curl=7.80-1\n'
    assert result['diff']['after'] == 'apache2=2.4.62-1\ncurl=7.88-1\n'


def test_install_recommends(fake, root):
    run(root, install_recommends=True)

    install = fake.changing_calls()[0]
    assert '--no-install-recommends' not in install and 'APT::Install-Recommends=true' in install


def test_absent(fake, root):
    fake.db['apache2'] = ('installed', '2.4.62-1')

    check = run(root, check_mode=True, state='absent', name=['apache2', 'gcc', 'make'])
    assert check['changed'] is True and check['removed'] == ['apache2']
    assert fake.db['apache2'] == ('installed', '2.4.62-1')

    result = run(root, diff=True, state='absent', pkg=['apache2', 'gcc', 'make'])

    assert result['changed'] is True and result['removed'] == ['apache2'] and result['installed'] == []
    assert fake.changing_calls()[-1][-2:] == ['remove', 'apache2']
    assert fake.policy_seen[-1][0]
    assert result['diff']['before'] == 'apache2=2.4.62-1\n' and result['diff']['after'] == ''
    assert run(root, state='absent', name=['apache2'])['changed'] is False


def test_latest(fake, root):
    fake.db['curl'] = ('installed', '7.80-1')
    fake.db['apache2'] = ('installed', '2.4.62-1')

    check = run(root, check_mode=True, diff=True, state='latest', name=['apache2', 'curl', 'libapr1'])
    assert check['changed'] is True
    assert check['upgraded'] == ['curl'] and check['installed'] == ['libapr1']
    assert check['diff']['after'] == 'curl=7.88-1\nlibapr1\n'
    assert fake.changing_calls() == []

    result = run(root, state='latest', name=['apache2', 'curl', 'libapr1'])
    assert result['upgraded'] == ['curl'] and result['installed'] == ['libapr1']
    assert fake.changing_calls()[-1][-2:] == ['libapr1', 'curl']
    assert fake.db['curl'] == ('installed', '7.88-1')

    fake.calls.clear()
    fake.runs.clear()
    assert run(root, state='latest', name=['apache2', 'curl'])['changed'] is False
    # Only apt's opinion was asked: a simulation, nothing else.
    assert fake.changing_calls() == [] and len(fake.apt_calls()) == 1


def test_latest_updates_a_stale_cache_before_looking_for_upgrades(fake, root):
    fake.db['curl'] = ('installed', '7.88-1')
    fake.mirror['curl'] = '7.88-2'

    result = run(root, state='latest', name=['curl'], update_cache=True)

    assert result['cache_updated'] is True and result['upgraded'] == ['curl']
    assert fake.apt_calls()[0][-1] == 'update'


def test_update_cache_when_stale(fake, root):
    result = run(root, update_cache=True, cache_valid_time=3600, proxy=PROXY)

    assert result['cache_updated'] is True
    update = fake.apt_calls()[0]
    assert update == ['apt-get', '-q', '-o', 'APT::Update::Error-Mode=any',
                      '-o', f'Acquire::http::Proxy={PROXY}', 'update']
    assert (root / utils.UPDATE_STAMP).is_file()

    # Fresh stamp: no update for the next installation.
    fake.calls.clear()
    fake.runs.clear()
    result = run(root, update_cache=True, cache_valid_time=3600, name=['libapr1'])
    assert result['cache_updated'] is False and result['installed'] == ['libapr1']
    assert all(call[-1] != 'update' for call in fake.apt_calls())


def test_cache_valid_time_zero_updates_each_time_something_is_installed(fake, root):
    (root / utils.UPDATE_STAMP).write_text('')

    assert run(root, update_cache=True)['cache_updated'] is True


def test_unknown_package_updates_a_fresh_cache_once(fake, root):
    (root / utils.UPDATE_STAMP).write_text('')
    fake.mirror['php-pgsql'] = '2:93'

    result = run(root, update_cache=True, cache_valid_time=3600, name=['php-pgsql'])

    assert result['cache_updated'] is True and result['installed'] == ['php-pgsql']
    assert [call[-1] for call in fake.apt_calls()] == ['php-pgsql', 'update', 'php-pgsql', 'php-pgsql']


def test_unknown_package_without_update_cache(fake, root):
    result = run(root, name=['apache2', 'nosuchpkg'])

    assert result['failed']
    assert result['msg'] == (f'package not found in the apt cache of {root} (not updated, see update_cache): '
                             'nosuchpkg\nE: Unable to locate package nosuchpkg')
    assert result['rc'] == 100 and result['stderr'] == 'E: Unable to locate package nosuchpkg\n'
    assert fake.changing_calls() == []


def test_unknown_package_after_update(fake, root):
    result = run(root, name=['apache3'], update_cache=True)

    assert result['failed']
    assert result['msg'].startswith(f'package not found in the apt cache of {root} (after apt-get update): apache3\n')
    assert [call[-1] for call in fake.changing_calls()] == ['update']


def test_unknown_version(fake, root):
    result = run(root, name=['curl=1.0'])

    assert result['failed'] and 'package not found' in result['msg']
    assert result['msg'].endswith(": curl\nE: Version '1.0' for 'curl' was not found")


def test_name_apt_would_resolve_to_another_package(fake, root):
    # apt-get accepts "apache2+" as a regular expression and installs apache2 instead.
    fake.cache['apache2+'] = '1'
    fake.install_ignores.add('apache2+')

    result = run(root, name=['apache2+'])

    assert result['failed']
    assert result['msg'].startswith('apt would not install apache2+ under that name')
    assert fake.changing_calls() == []


def test_apt_failure_reports_the_end_of_its_output(fake, root):
    fake.install_error = 'E: Sub-process /usr/bin/dpkg returned an error code (1)\n'

    result = run(root)

    assert result['failed'] and result['rc'] == 100
    assert result['msg'].startswith(f'apt-get install failed in {root} (rc=100):\noutput line 15\n')
    assert result['msg'].endswith('output line 29\nE: Sub-process /usr/bin/dpkg returned an error code (1)')
    assert 'output line 14' not in result['msg']
    assert result['stderr'] == fake.install_error and result['stdout'].startswith('output line 0\n')
    assert not (root / 'usr/sbin/policy-rc.d').exists()


def test_apt_success_without_the_package_installed(fake, root, monkeypatch):
    original = fake.jailsafe_run

    def forgetful(root, argv, **kwargs):
        # As when apt installs the provider of a virtual package the simulation did not reveal.
        rc, out, err = original(root, argv, **kwargs)
        if 'install' in argv and '-s' not in argv:
            fake.db.pop('curl')
        return rc, out, err

    monkeypatch.setattr(utils.jailsafe, 'run', forgetful)
    result = run(root)

    assert result['failed']
    assert result['msg'] == f'apt-get succeeded in {root} but did not leave curl as requested (state=present)'


def test_confinement_failure(fake, root):
    fake.confinement_error = 'cannot confine apt-get in /x: OSError: [Errno 1] unshare: Operation not permitted'

    result = run(root)

    assert result['failed']
    assert result['msg'] == f'cannot run apt-get in {root}: {fake.confinement_error}'
    assert not (root / 'usr/sbin/policy-rc.d').exists()


@pytest.mark.parametrize('args, message', [
    ({'name': ['apache2', 'curl; rm -rf /']}, "invalid name: 'curl; rm -rf /' is not a Debian package name"),
    ({'name': ['-o']}, "invalid name: '-o' is not a Debian package name"),
    ({'name': ['curl=7.88-1'], 'state': 'latest'}, "invalid name: 'curl=7.88-1': a version can only be given"),
    ({'proxy': 'socks5://proxy:1080'}, "proxy 'socks5://proxy:1080' is not the URL of an HTTP proxy"),
    ({'cache_valid_time': -1}, 'cache_valid_time must not be negative'),
])
def test_invalid_arguments_fail_before_anything_runs(fake, root, args, message):
    result = run(root, **args)

    assert result['failed'] and result['msg'].startswith(message)
    assert fake.calls == []


def test_root_checks(fake, root, base):
    assert run(base / 'nowhere')['msg'] == f'root {base}/nowhere does not exist'
    assert run('relative/root')['msg'] == "root 'relative/root' must be an absolute path"
    (base / 'file').write_text('')
    assert run(base / 'file')['msg'] == f'root {base}/file is not a directory'
    (base / 'empty').mkdir()
    assert run(base / 'empty')['msg'] == (f'root {base}/empty is not a Debian root filesystem '
                                          '(no var/lib/dpkg/status)')
    assert 'is the host itself' in run('/')['msg']
    (base / 'link').symlink_to(root)
    assert run(base / 'link', check_mode=True)['root'] == str(root)
    # Below a directory other users can write to (they could swap the tree): refused.
    os.chmod(base, 0o777)
    assert 'must be owned by root and writable by root only' in run(root)['msg']
    assert fake.runs == []


def test_not_root(fake, root, monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)

    assert run(root)['msg'] == 'jail_packages must run as root on the target (use become: true)'
    assert fake.runs == []


def test_root_owned_by_another_user(fake, root):
    os.chown(root, 1000, 1000)

    assert run(root)['msg'] == f'root {root} is owned by uid 1000, not by root: refusing to act in it'
    assert fake.runs == []


def test_upgrade_script():
    safe = utils.apt_upgrade_script('safe', proxy=PROXY, simulate=False)
    update, upgrade, clean = safe.split(' && ')
    assert update.startswith('apt-get -q -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=')
    assert update.endswith(f'-o APT::Update::Error-Mode=any -o Acquire::http::Proxy={PROXY} update')
    assert upgrade.startswith('apt-get -q -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -y ')
    assert upgrade.endswith('--force-confold -o Acquire::http::Proxy=' + PROXY + ' --with-new-pkgs upgrade')
    assert clean == 'apt-get -q clean'
    full = utils.apt_upgrade_script('full', proxy=None, simulate=True)
    update, simulation = full.split(' && ')
    assert 'Proxy' not in full
    assert simulation.startswith('apt-get -q -s ') and simulation.endswith(' dist-upgrade')


def test_parse_upgrade_simulation():
    output = (
        'Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n'
        'Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian:12.12/stable [amd64])\n'
        'Inst libnew1 (1.0-1 Debian:12.12/stable [amd64])\n'
        'Remv oldlib2 [2.1-3]\n'
        'Conf libssl3 (3.0.17-1~deb12u2 Debian:12.12/stable [amd64])\n'
    )
    assert utils.parse_upgrade_simulation(output) == {
        'libssl3': ('3.0.15-1~deb12u1', '3.0.17-1~deb12u2'),
        'libnew1': (None, '1.0-1'),
        'oldlib2': ('2.1-3', None),
    }


def test_package_changes():
    before = {'a': utils.Package('installed', '1'), 'b': utils.Package('installed', '2'),
              'c': utils.Package('installed', '3'), 'd': utils.Package('config-files', '4')}
    after = {'a': utils.Package('installed', '1.1'), 'b': utils.Package('installed', '2'),
             'c': utils.Package('config-files', '3'), 'd': utils.Package('config-files', '4'),
             'e': utils.Package('installed', '5')}
    assert utils.package_changes(before, after) == {'a': ('1', '1.1'), 'c': ('3', None), 'e': (None, '5')}


def test_upgrade_check_mode_simulates_with_fresh_indexes_and_changes_nothing(fake, root):
    fake.db['curl'] = ('installed', '7.80-1')
    before = dict(fake.db)

    result = run(root, check_mode=True, diff=True, upgrade='safe', proxy=PROXY)

    assert result['changed'] is True
    assert result['upgraded'] == ['curl'] and result['installed'] == [] and result['removed'] == []
    assert result['versions'] == {'curl': {'before': '7.80-1', 'after': '7.88-1'}}
    assert result['diff']['before'] == 'curl=7.80-1\n' and result['diff']['after'] == 'curl=7.88-1\n'
    assert fake.db == before
    (policy, _existed), = fake.policy_seen
    assert policy == ''  # a simulation runs no maintainer script
    upgrade_call, = (call for call in fake.calls if call[0] == 'upgrade')
    assert ' -s ' in upgrade_call[1]


def test_upgrade_then_nothing_to_do(fake, root):
    fake.db['curl'] = ('installed', '7.80-1')

    first = run(root, upgrade='full', proxy=PROXY)

    assert first['changed'] is True and first['upgraded'] == ['curl']
    assert first['versions'] == {'curl': {'before': '7.80-1', 'after': '7.88-1'}}
    assert fake.db['curl'] == ('installed', '7.88-1')
    (policy, existed), = fake.policy_seen
    assert policy and existed  # services denied while dpkg runs maintainer scripts
    upgrade_call, = (call for call in fake.calls if call[0] == 'upgrade')
    assert upgrade_call[1].endswith(' dist-upgrade && apt-get -q clean')
    assert not (root / 'usr/sbin/policy-rc.d').exists()

    second = run(root, upgrade='full', proxy=PROXY)
    assert second['changed'] is False and second['versions'] == {}


def test_upgrade_failure_reports_apt_output(fake, root):
    fake.db['curl'] = ('installed', '7.80-1')
    fake.install_error = 'E: Sub-process /usr/bin/dpkg returned an error code (1)'

    result = run(root, upgrade='safe')

    assert result['failed'] and 'apt-get update and upgrade failed' in result['msg']
    assert 'dpkg returned an error code' in result['msg']


@pytest.mark.parametrize('args, message', [
    ({'upgrade': 'safe', 'name': ['curl']}, 'name and upgrade are mutually exclusive'),
    ({'upgrade': 'none'}, 'name is required unless upgrade'),
    ({'upgrade': 'safe', 'proxy': 'ftp://proxy'}, 'is not the URL of an HTTP proxy'),
])
def test_upgrade_bad_arguments_fail_before_anything_runs(fake, root, args, message):
    result = run(root, **args)

    assert result['failed'] and message in result['msg']
    assert fake.calls == []
