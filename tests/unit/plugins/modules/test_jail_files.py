# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of jailhost.jails.jail_files: its pure functions, then the module against real files in a
temporary jail root (only run_command and jailsafe.run, for the validate commands, are replaced).
The module needs root (it sets owners, and jailsafe acts only on root-owned roots below
root-only directories: the jail is made under /var/lib, not /tmp); `make test` runs as root, as CI
does."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.jailhost.jails.plugins.module_utils.jail_files import (
    JailFilesError,
    check_jail_path,
    link_target_in_jail,
    parse_entries,
    parse_id_file,
    parse_mode,
)
from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe
from ansible_collections.jailhost.jails.plugins.modules import jail_files

USERS = {'root': 0, 'www-data': 33}
GROUPS = {'root': 0, 'adm': 4, 'www-data': 33}


# Pure functions


@pytest.mark.parametrize('path,normal', [('/etc/apache2/ports.conf', '/etc/apache2/ports.conf'),
                                         ('/var/local/log/apache2/', '/var/local/log/apache2')])
def test_jail_path_valid(path, normal):
    assert check_jail_path(path) == normal


@pytest.mark.parametrize('path', ['etc/passwd', '/', '/etc/../../host', '/etc/./passwd', '/etc//passwd',
                                  '/..', '', None, '/etc/pa\0ss'])
def test_jail_path_invalid(path):
    with pytest.raises(JailFilesError):
        check_jail_path(path)


def test_mode():
    assert parse_mode(None, 'file', '/a') == 0o644
    assert parse_mode(None, 'directory', '/a') == 0o755
    assert parse_mode(None, 'link', '/a') is None
    assert parse_mode('0750', 'directory', '/a') == 0o750
    assert parse_mode('2775', 'directory', '/a') == 0o2775
    for bad in ('rw-r--r--', '0999', '64', '0o644', 'u=rw', '00644'):
        with pytest.raises(JailFilesError, match='must be an octal string'):
            parse_mode(bad, 'file', '/a')


def test_id_files():
    assert parse_id_file('root:x:0:0::/root:/bin/sh\n# comment\nbad line\nwww-data:x:33:33::/:/x\n') == {
        'root': 0, 'www-data': 33}


def test_entries_resolve_names_in_the_jail():
    entries = parse_entries([{'path': '/etc/x', 'content': 'x', 'owner': 'www-data', 'group': 'adm', 'mode': '0640'},
                             {'path': '/d', 'state': 'directory', 'owner': '1234', 'group': '1234'}], USERS, GROUPS)
    assert (entries[0].uid, entries[0].gid, entries[0].mode, entries[0].content) == (33, 4, 0o640, b'x')
    assert (entries[1].uid, entries[1].gid, entries[1].mode) == (1234, 1234, 0o755)


@pytest.mark.parametrize('items,message', [
    ([{'path': '/a', 'content': 'x'}, {'path': '/a/', 'content': 'y'}], 'given more than once'),
    ([{'path': '/a', 'content': 'x', 'owner': 'nobody'}], "owner 'nobody' of /a does not exist in the jail's /etc/passwd"),
    ([{'path': '/a', 'content': 'x', 'group': 'staff'}], "group 'staff' of /a does not exist"),
    ([{'path': '/a'}], 'needs content'),
    ([{'path': '/a', 'state': 'directory', 'content': 'x'}], 'content is only for state=file'),
    ([{'path': '/a', 'state': 'link'}], 'needs src'),
    ([{'path': '/a', 'content': 'x', 'src': '/b'}], 'src is only for state=link'),
    ([{'path': '/a', 'content': 'x', 'secret_content': 'y'}], 'mutually exclusive'),
    ([{'path': '/a', 'content': 'x', 'optional': True}], 'optional is only for state=link'),
    ([{'path': '/a', 'state': 'fifo'}], 'must be one of'),
])
def test_entries_invalid(items, message):
    with pytest.raises(JailFilesError, match=message):
        parse_entries(items, USERS, GROUPS)


def test_link_target_stays_in_the_jail():
    assert link_target_in_jail('/etc/apache2/mods-enabled/a.load', '../mods-available/a.load') == \
        '/etc/apache2/mods-available/a.load'
    assert link_target_in_jail('/etc/a', '../../../../etc/shadow') == '/etc/shadow'
    assert link_target_in_jail('/etc/a', '/usr/lib/x') == '/usr/lib/x'


# The module, on a temporary jail root

class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='the module sets owners: it needs root')


@pytest.fixture
def base():
    """A root-owned directory only root can write to, as jailsafe.check_root wants above a root."""
    if os.geteuid() != 0:
        pytest.skip('the module sets owners and acts only on root-owned jail roots: it needs root')
    path = Path(tempfile.mkdtemp(prefix='jailhost-unit-', dir='/var/lib'))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def jail(base, monkeypatch):
    root = base / 'root'
    (root / 'etc/apache2/mods-available').mkdir(parents=True)
    (root / 'etc/apache2/mods-enabled').mkdir()
    (root / 'etc/apache2/sites-enabled').mkdir()
    (root / 'etc/passwd').write_text('root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n')
    (root / 'etc/group').write_text('root:x:0:\nadm:x:4:\nwww-data:x:33:\n')
    (root / 'etc/apache2/mods-available/headers.load').write_text('LoadModule headers_module x\n')
    (root / 'etc/apache2/ports.conf').write_text('Listen 80\n')
    calls = []
    results = {}

    def run_command(self, args, **_kwargs):
        calls.append(list(args))
        return results.get('validate', (0, 'Syntax OK', ''))

    def confined(root_path, argv, **kwargs):
        calls.append(dict(root=root_path, argv=list(argv), **kwargs))
        if 'confinement' in results:
            raise jailsafe.JailSafeError(results['confinement'])
        return results.get('validate', (0, 'Syntax OK', ''))

    def leave(self, **result):
        raise ModuleExit(result)

    def fail(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', leave)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(jailsafe, 'run', confined)
    return {'root': root, 'calls': calls, 'results': results}


def run(jail, check_mode=False, diff=False, **args):
    args.setdefault('root', str(jail['root']))
    args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(ModuleExit) as leaving:
        jail_files.main()
    return leaving.value.result


CONFIG = [
    {'path': '/etc/apache2/ports.conf', 'content': 'Listen 10.42.0.10:80\n'},
    {'path': '/etc/apache2/tls/site.key', 'secret_content': 'PRIVATE\n', 'mode': '0600'},
    {'path': '/var/local/log/apache2', 'state': 'directory', 'group': 'adm', 'mode': '0750'},
    {'path': '/etc/apache2/mods-enabled/headers.load', 'state': 'link', 'src': '../mods-available/headers.load'},
    {'path': '/etc/apache2/mods-enabled/headers.conf', 'state': 'link', 'src': '../mods-available/headers.conf',
     'optional': True},
]
VALIDATE = [{'argv': ['/usr/sbin/apache2', '-t']}]


def snapshot(root):
    """Every path below root with its type, mode, owner and content or link target."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[path] = ('link', os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[path] = ('dir', stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
            else:
                with open(path, 'rb') as handle:
                    found[path] = ('file', stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, handle.read())
    return found


@needs_root
def test_check_mode_then_write_then_nothing_to_do(jail):
    root = jail['root']
    before = snapshot(root)
    check = run(jail, check_mode=True, diff=True, files=CONFIG, validate=VALIDATE)
    assert check['changed'] is True and snapshot(root) == before and jail['calls'] == []
    assert check['changed_paths'] == ['/etc/apache2/ports.conf', '/etc/apache2/tls/site.key',
                                      '/var/local/log/apache2', '/etc/apache2/mods-enabled/headers.load']
    diffs = {d['after_header']: d for d in check['diff']}
    assert 'Listen 80' in diffs['/etc/apache2/ports.conf']['before']
    assert 'Listen 10.42.0.10:80' in diffs['/etc/apache2/ports.conf']['after']
    assert 'PRIVATE' not in str(check) and 'content hidden' in diffs['/etc/apache2/tls/site.key']['after']

    first = run(jail, files=CONFIG, validate=VALIDATE)
    assert first['changed'] is True and first['validated'] is True
    # Run confined in the jail root: root of the jail without capabilities, no network.
    assert jail['calls'] == [dict(root=str(root), argv=['/usr/sbin/apache2', '-t'], user='root', caps=(),
                                  network='none')]
    assert (root / 'etc/apache2/ports.conf').read_text() == 'Listen 10.42.0.10:80\n'
    key = os.stat(root / 'etc/apache2/tls/site.key')
    assert stat.S_IMODE(key.st_mode) == 0o600
    log = os.stat(root / 'var/local/log/apache2')
    assert (stat.S_IMODE(log.st_mode), log.st_uid, log.st_gid) == (0o750, 0, 4)
    assert os.readlink(root / 'etc/apache2/mods-enabled/headers.load') == '../mods-available/headers.load'
    assert not os.path.lexists(root / 'etc/apache2/mods-enabled/headers.conf')
    assert not [name for name in os.listdir(root / 'etc/apache2') if 'jailhost-tmp' in name]

    second = run(jail, files=CONFIG, validate=VALIDATE)
    assert second['changed'] is False and second['changed_paths'] == [] and len(jail['calls']) == 1


@needs_root
def test_mode_and_owner_alone_are_corrected(jail):
    run(jail, files=CONFIG)
    os.chmod(jail['root'] / 'etc/apache2/tls/site.key', 0o644)
    os.chown(jail['root'] / 'var/local/log/apache2', 33, 33)
    result = run(jail, files=CONFIG)
    assert result['changes'] == [{'path': '/etc/apache2/tls/site.key', 'action': 'attributes'},
                                 {'path': '/var/local/log/apache2', 'action': 'attributes'}]
    assert stat.S_IMODE(os.stat(jail['root'] / 'etc/apache2/tls/site.key').st_mode) == 0o600
    assert os.stat(jail['root'] / 'var/local/log/apache2').st_uid == 0


@needs_root
def test_a_rejected_configuration_is_rolled_back(jail):
    root = jail['root']
    (root / 'etc/apache2/sites-enabled/old.conf').write_text('old site\n')
    before = snapshot(root)
    jail['results']['validate'] = (1, '', 'AH00526: Syntax error on line 1 of ports.conf')
    result = run(jail, files=CONFIG, purge=[{'path': '/etc/apache2/sites-enabled', 'patterns': ['*.conf']}],
                 validate=VALIDATE)
    assert result['failed'] is True and result['changed'] is False
    assert 'AH00526' in result['msg'] and 'every change was rolled back' in result['msg']
    assert '/etc/apache2/sites-enabled/old.conf' in result['rolled_back']
    # Everything is back as it was, created directories included.
    assert snapshot(root) == before


@needs_root
def test_purge_removes_undeclared_matches_only(jail):
    sites = jail['root'] / 'etc/apache2/sites-enabled'
    for name in ('jailhost-000-a.conf', 'jailhost-001-gone.conf', '000-default.conf', 'README'):
        (sites / name).write_text(name)
    (sites / 'jailhost-dir.conf').mkdir()
    result = run(jail, files=[{'path': '/etc/apache2/sites-enabled/jailhost-000-a.conf', 'content': 'a'}],
                 purge=[{'path': '/etc/apache2/sites-enabled', 'patterns': ['jailhost-*.conf', '000-default.conf']},
                        {'path': '/etc/apache2/missing', 'patterns': ['*']}])
    assert sorted(os.listdir(sites)) == ['README', 'jailhost-000-a.conf', 'jailhost-dir.conf']
    assert {c['path'] for c in result['changes'] if c['action'] == 'remove'} == {
        '/etc/apache2/sites-enabled/jailhost-001-gone.conf', '/etc/apache2/sites-enabled/000-default.conf'}


@needs_root
def test_a_symlink_in_the_jail_never_leads_a_write_out_of_it(jail, base):
    host_dir = base / 'host-etc'
    host_dir.mkdir()
    (host_dir / 'passwd').write_text('host\n')
    os.rename(jail['root'] / 'etc/apache2', jail['root'] / 'etc/apache2.real')
    os.symlink(str(host_dir), jail['root'] / 'etc/apache2')
    result = run(jail, files=[{'path': '/etc/apache2/passwd', 'content': 'owned\n'}])
    assert result['failed'] is True and 'is a symbolic link' in result['msg']
    assert (host_dir / 'passwd').read_text() == 'host\n'


@needs_root
def test_a_file_that_is_a_link_is_replaced_not_followed(jail, base):
    outside = base / 'outside'
    outside.write_text('host file\n')
    os.symlink(str(outside), jail['root'] / 'etc/apache2/envvars')
    run(jail, files=[{'path': '/etc/apache2/envvars', 'content': 'export A=1\n', 'mode': '0600'}])
    assert outside.read_text() == 'host file\n' and stat.S_IMODE(os.stat(outside).st_mode) != 0o600
    assert not os.path.islink(jail['root'] / 'etc/apache2/envvars')


@needs_root
def test_errors_come_before_any_change(jail):
    before = snapshot(jail['root'])
    result = run(jail, files=[{'path': '/etc/apache2/ports.conf', 'content': 'changed\n'},
                              {'path': '/etc/apache2/mods-enabled/proxy.load', 'state': 'link',
                               'src': '../mods-available/proxy.load'}])
    assert result['failed'] is True and 'does not exist in the jail' in result['msg']
    assert snapshot(jail['root']) == before
    result = run(jail, files=[{'path': '/etc/apache2/mods-enabled', 'state': 'absent'}])
    assert result['failed'] is True and 'is a directory' in result['msg']
    result = run(jail, root='/', files=[])
    assert result['failed'] is True and 'is the host itself' in result['msg']


@needs_root
def test_host_commands_and_absent(jail):
    (jail['root'] / 'etc/apache2/security.conf').write_text('ServerTokens OS\n')
    result = run(jail, files=[{'path': '/etc/apache2/security.conf', 'state': 'absent'},
                              {'path': '/etc/apache2/gone.conf', 'state': 'absent'}],
                 validate=[{'argv': ['/bin/true'], 'chroot': False}])
    assert result['changed_paths'] == ['/etc/apache2/security.conf']
    assert jail['calls'] == [['/bin/true']]
    assert not (jail['root'] / 'etc/apache2/security.conf').exists()


@needs_root
def test_link_targets_are_resolved_inside_the_jail(jail, base):
    from ansible_collections.jailhost.jails.plugins.module_utils.jail_files import Jail
    root = jail['root']
    (root / 'usr/lib/php').mkdir(parents=True)
    (root / 'usr/lib/php/x.so').write_text('')
    os.symlink('usr/lib', root / 'lib')
    (base / 'outside').write_text('')
    os.symlink(str(base), root / 'escape')
    found = Jail(str(root))
    assert found.exists('/lib/php/x.so') and found.exists('/etc/../../lib/php/x.so')
    assert not found.exists('/lib/php/y.so') and not found.exists('/etc/passwd/x')
    # An absolute link target is the jail's, not the host's: base/outside is not seen.
    assert not found.exists('/escape/outside')
    os.symlink('loop', root / 'loop')
    assert not found.exists('/loop')


@needs_root
def test_a_link_to_a_file_of_the_same_task(jail):
    files = [{'path': '/etc/apache2/conf-enabled/jailhost.conf', 'state': 'link', 'src': '../conf-available/jailhost.conf'},
             {'path': '/etc/apache2/conf-available/jailhost.conf', 'content': 'ServerTokens Prod\n'}]
    check = run(jail, check_mode=True, files=files)
    assert check['changed'] and not check.get('failed'), check
    result = run(jail, files=files)
    assert not result.get('failed'), result
    assert (jail['root'] / 'etc/apache2/conf-enabled/jailhost.conf').read_text() == 'ServerTokens Prod\n'
    assert not run(jail, files=files)['changed']


@needs_root
def test_a_link_planted_after_the_plan_is_refused_and_everything_rolled_back(jail, base, monkeypatch):
    from ansible_collections.jailhost.jails.plugins.module_utils import jail_files as utils
    root = jail['root']
    host_dir = base / 'host-etc'
    host_dir.mkdir()
    original = utils.plan

    def plan_then_swap(found, entries):
        changes = original(found, entries)
        # The jail replaces a checked directory by a link to a host directory between our checks and the writes.
        os.rename(root / 'etc/apache2/sites-enabled', root / 'etc/apache2/sites-enabled.real')
        os.symlink(str(host_dir), root / 'etc/apache2/sites-enabled')
        return changes

    monkeypatch.setattr(utils, 'plan', plan_then_swap)
    result = run(jail, files=[{'path': '/etc/apache2/ports.conf', 'content': 'Listen 81\n'},
                              {'path': '/etc/apache2/sites-enabled/site.conf', 'content': 'owned\n'}])
    assert result['failed'] is True and 'writing the files failed' in result['msg']
    assert 'Too many levels of symbolic links' in result['msg']
    # Nothing was written through the link; what was written before it is rolled back (the rollback
    # refuses the link too, and says so).
    assert os.listdir(host_dir) == []
    assert (root / 'etc/apache2/ports.conf').read_text() == 'Listen 80\n'


@needs_root
def test_validate_as_a_jail_user(jail):
    result = run(jail, files=CONFIG, validate=[{'argv': ['/usr/bin/php', '-l', '/x.php'], 'user': 'www-data'}])
    assert result['validated'] is True
    assert jail['calls'][-1] == dict(root=str(jail['root']), argv=['/usr/bin/php', '-l', '/x.php'],
                                     user='www-data', caps=(), network='none')


@pytest.mark.parametrize('validate, message', [
    ([{'argv': ['/bin/true'], 'user': 'nobody'}], "user 'nobody' does not exist in the jail's /etc/passwd"),
    ([{'argv': ['/bin/true'], 'user': 'www-data', 'chroot': False}], 'user is only for commands run in the jail'),
])
@needs_root
def test_validate_errors_come_before_any_change(jail, validate, message):
    before = snapshot(jail['root'])
    result = run(jail, files=CONFIG, validate=validate)
    assert result['failed'] is True and message in result['msg']
    assert snapshot(jail['root']) == before and jail['calls'] == []


@needs_root
def test_a_test_that_cannot_be_confined_rolls_back(jail):
    before = snapshot(jail['root'])
    jail['results']['confinement'] = 'cannot confine /usr/sbin/apache2 in /x: unshare: Operation not permitted'
    result = run(jail, files=CONFIG, validate=VALIDATE)
    assert result['failed'] is True and result['rc'] is None
    assert result['msg'].startswith('the test /usr/sbin/apache2 -t could not run (every change was rolled back)')
    assert snapshot(jail['root']) == before


@needs_root
def test_the_jail_passwd_is_read_inside_the_jail(jail):
    # /etc/passwd of the jail is a link to an absolute path: it resolves inside the jail, never to the host's.
    root = jail['root']
    (root / 'etc/passwd').unlink()
    (root / 'etc/passwd').symlink_to('/etc/passwd.jail')
    (root / 'etc/passwd.jail').write_text('root:x:0:0::/root:/bin/sh\nweb:x:1234:1234::/:/bin/sh\n')
    result = run(jail, check_mode=True, files=[{'path': '/etc/x', 'content': 'x', 'owner': 'web'}])
    assert result['changed'] is True and not result.get('failed')
    result = run(jail, check_mode=True, files=[{'path': '/etc/x', 'content': 'x', 'owner': 'www-data'}])
    assert result['failed'] and "owner 'www-data' of /etc/x does not exist" in result['msg']
