# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of jailhost.jails.app_user: the pure functions of its module_utils, then the module
against two temporary Debian-like roots, a fake host and a fake jail, changed by the real shadow
tools: commands meant for the host get ``--prefix HOST`` added, so the real /etc is never touched.

The shadow tools need root: the module tests are skipped for other users (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.jailhost.jails.plugins.module_utils import app_user as utils
from ansible_collections.jailhost.jails.plugins.module_utils.app_user import (
    AppUserError,
    Database,
    Target,
    account_commands,
    choose_ids,
    is_locked,
    parse_group,
    parse_passwd,
    parse_shadow,
    removal_commands,
    validate_home,
    validate_id,
    validate_keys,
    validate_mode,
    validate_name,
)
from ansible_collections.jailhost.jails.plugins.modules import app_user

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop'

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
shop:x:20000:20000:jailhost app shop:/srv/shop:/usr/sbin/nologin
"""
GROUP = """\
root:x:0:
www-data:x:33:
alice:x:1000:
shop:x:20000:
jailhost-apps:x:999:shop
taken:x:20001:
"""


# Pure functions


class TestValidation:
    @pytest.mark.parametrize('name', ['shop', 'a', 'app_1', 'blog-2', 'a' * 32])
    def test_valid_names(self, name):
        assert validate_name(name) == name

    @pytest.mark.parametrize('name', ['', '..', '.', 'a/b', '../etc', 'Shop', '1app', '-app', 'app$', 'a b',
                                      'a' * 33, 'app\n', 'ap.p', '_x', None])
    def test_invalid_names(self, name):
        with pytest.raises(AppUserError, match='is not a valid user name'):
            validate_name(name)

    @pytest.mark.parametrize('value', [0, 33, 999, 60000, 65534, -1])
    def test_system_and_reserved_ids(self, value):
        with pytest.raises(AppUserError, match='system range'):
            validate_id('uid', value)

    def test_regular_ids(self):
        assert validate_id('uid', 1000) == 1000 and validate_id('uid', 59999) == 59999
        assert validate_id('uid', None) is None

    @pytest.mark.parametrize('home', ['/srv/shop', '/var/www/shop', '/opt/apps/x'])
    def test_valid_homes(self, home):
        assert validate_home(home) == home

    @pytest.mark.parametrize('home', ['srv/shop', '/srv/../etc', '/srv/shop/', '//srv', '/srv/a b', '/srv/a:b'])
    def test_unclean_homes(self, home):
        with pytest.raises(AppUserError, match='absolute, normalised path'):
            validate_home(home)

    @pytest.mark.parametrize('home', ['/', '/etc', '/etc/shop', '/usr/local/shop', '/root', '/run/x', '/proc/1'])
    def test_system_homes(self, home):
        with pytest.raises(AppUserError, match='system directory'):
            validate_home(home)

    @pytest.mark.parametrize('mode, value', [('0750', 0o750), ('0700', 0o700), ('750', 0o750), (0o710, 0o710)])
    def test_modes(self, mode, value):
        assert validate_mode(mode) == value

    @pytest.mark.parametrize('mode', ['0755', '0770', '0751', '0640', '0777', 'rwx', '01750x'])
    def test_permissive_modes(self, mode):
        with pytest.raises(AppUserError, match='home_mode'):
            validate_mode(mode)

    def test_keys(self):
        assert validate_keys([KEY + '\n'], 'sandboxed') == [KEY]
        with pytest.raises(AppUserError, match='need shell=sandboxed'):
            validate_keys([KEY], 'nologin')

    @pytest.mark.parametrize('key', ['command="sh" ' + KEY, 'ssh-ed25519', 'ssh-ed25519 AAAA\nssh-rsa BBBB',
                                     'garbage', 'ssh-ed25519 AA$A'])
    def test_bad_keys(self, key):
        with pytest.raises(AppUserError, match='is not one SSH public key line'):
            validate_keys([key], 'sandboxed')


def test_parsing():
    users = parse_passwd(PASSWD + 'broken line\n+nis\n')
    assert users['shop'].uid == 20000 and users['shop'].home == '/srv/shop'
    assert 'broken line' not in users and '+nis' not in users
    groups = parse_group(GROUP)
    assert groups['jailhost-apps'].members == ('shop',) and groups['taken'].gid == 20001
    assert parse_shadow('shop:!:19000::::::\nroot:$y$j9T$abc:1::::::\n') == {'shop': '!', 'root': '$y$j9T$abc'}
    assert is_locked('!') and is_locked('*') and is_locked('!$y$abc')
    assert not is_locked('') and not is_locked('$y$j9T$abc') and not is_locked(None)


def db(passwd=PASSWD, group=GROUP, shadow=''):
    return Database(parse_passwd(passwd), parse_group(group), parse_shadow(shadow))


class TestChooseIds:
    def test_existing_user_keeps_its_ids(self):
        assert choose_ids('shop', None, None, [db(), db()], (20000, 29999)) == (20000, 20000)

    def test_lowest_free_id_for_user_and_group(self):
        # 20000 is shop's, 20001 a group's: the first number free for both is 20002.
        assert choose_ids('blog', None, None, [db()], (20000, 29999)) == (20002, 20002)

    def test_free_in_every_database(self):
        jail = db(PASSWD + 'other:x:20002:20002::/:/bin/sh\n')
        assert choose_ids('blog', None, None, [db(), jail], (20000, 29999)) == (20003, 20003)

    def test_home_owner_is_reused(self):
        assert choose_ids('blog', None, None, [db()], (20000, 29999), home_owner=21000) == (21000, 21000)
        # ... unless it is taken or outside the regular range
        assert choose_ids('blog', None, None, [db()], (20000, 29999), home_owner=20000) == (20002, 20002)
        assert choose_ids('blog', None, None, [db()], (20000, 29999), home_owner=0) == (20002, 20002)

    def test_requested_ids(self):
        assert choose_ids('blog', 25000, None, [db()], (20000, 29999)) == (25000, 25000)
        assert choose_ids('blog', 20001, None, [db()], (20000, 29999)) == (20001, 20002)

    def test_uid_of_another_user(self):
        with pytest.raises(AppUserError, match='uid 20000 already belongs to user shop'):
            choose_ids('blog', 20000, None, [db()], (20000, 29999))
        with pytest.raises(AppUserError, match='uid 1000 already belongs to user alice'):
            choose_ids('blog', 1000, None, [db(), db()], (20000, 29999))

    def test_gid_of_another_group(self):
        with pytest.raises(AppUserError, match='gid 20001 already belongs to group taken'):
            choose_ids('blog', 25000, 20001, [db()], (20000, 29999))

    def test_no_renumbering(self):
        with pytest.raises(AppUserError, match='renumbering is not supported'):
            choose_ids('shop', 20005, None, [db()], (20000, 29999))

    def test_existing_system_user_is_refused(self):
        with pytest.raises(AppUserError, match='system range'):
            choose_ids('www-data', None, None, [db()], (20000, 29999))

    def test_different_ids_on_host_and_jail(self):
        jail = db(PASSWD.replace('shop:x:20000', 'shop:x:20009'))
        with pytest.raises(AppUserError, match='different uids on the host and in the jail'):
            choose_ids('shop', None, None, [db(), jail], (20000, 29999))

    def test_range_exhausted(self):
        with pytest.raises(AppUserError, match='no free uid/gid left'):
            choose_ids('blog', None, None, [db()], (20000, 20001))


class TestCommands:
    host = Target('host', '', '/var/lib/jailhost/jails/shop/root/srv/shop', '/usr/sbin/nologin', ('jailhost-apps',))
    jail = Target('jail shop', '/j/shop/root', '/srv/shop', '/usr/sbin/nologin')

    def test_create(self):
        cmds = account_commands('blog', 20002, 20002, self.jail, db())
        assert cmds == [
            ['groupadd', '--prefix', '/j/shop/root', '--gid', '20002', 'blog'],
            ['useradd', '--prefix', '/j/shop/root', '--uid', '20002', '--gid', '20002', '--no-user-group',
             '--no-create-home', '--home-dir', '/srv/shop', '--shell', '/usr/sbin/nologin',
             '--comment', 'jailhost app blog', 'blog'],
        ]
        assert account_commands('blog', 20002, 20002, self.host, db())[1][-3:] == ['--groups', 'jailhost-apps', 'blog']

    def test_nothing_to_do(self):
        assert account_commands('shop', 20000, 20000, self.jail, db(shadow='shop:!:1::::::\n')) == []

    def test_update_shell_home_group_and_lock(self):
        target = Target('host', '', '/srv/new', '/usr/local/sbin/jailhost-app-login', ('jailhost-apps', 'other'))
        cmds = account_commands('shop', 20000, 20000, target,
                                db(group=GROUP + 'other:x:998:\n', shadow='shop:$y$abc:1::::::\n'))
        assert cmds == [
            ['usermod', '--home', '/srv/new', '--shell', '/usr/local/sbin/jailhost-app-login',
             '--append', '--groups', 'other', 'shop'],
            ['usermod', '--lock', 'shop'],
        ]

    def test_remove(self):
        assert removal_commands('shop', self.jail, db()) == [
            ['userdel', '--prefix', '/j/shop/root', 'shop'], ['groupdel', '--prefix', '/j/shop/root', 'shop']]
        assert removal_commands('nobody-here', self.jail, db()) == []


# The module, against real shadow tools on temporary roots


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


def make_root(path):
    (path / 'etc').mkdir(parents=True)
    (path / 'etc/passwd').write_text('root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n')
    (path / 'etc/group').write_text('root:x:0:\nwww-data:x:33:\n')
    (path / 'etc/shadow').write_text('root:*:19000:0:99999:7:::\nwww-data:*:19000:0:99999:7:::\n')
    (path / 'etc/gshadow').write_text('root:*::\nwww-data:*::\n')
    for name in ('shadow', 'gshadow'):
        os.chmod(path / 'etc' / name, 0o640)
    # As Debian's: userdel then removes the user's own group itself.
    (path / 'etc/login.defs').write_text('USERGROUPS_ENAB yes\n')
    return path


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('useradd'),
                                reason='the shadow tools need root')


@pytest.fixture
def lab(tmp_path, monkeypatch):
    host = make_root(tmp_path / 'host')
    jails = tmp_path / 'jails'
    make_root(jails / 'shop' / 'root')
    make_root(jails / 'blog' / 'root')
    shell = host / utils.LOGIN_SHELL.lstrip('/')
    shell.parent.mkdir(parents=True)
    shell.write_text('#!/bin/sh\n')
    shell.chmod(0o755)
    monkeypatch.setattr(utils, 'HOST_PREFIX', str(host))
    calls = []

    def run_command(self, args, **_kwargs):
        args = list(args)
        if '--prefix' not in args:
            args[1:1] = ['--prefix', str(host)]
        calls.append(args)
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def leave(self, **result):
        raise ModuleExit(result)

    def fail(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', leave)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    return {'host': host, 'jails': jails, 'calls': calls}


def run(lab, check_mode=False, diff=False, **args):
    args.setdefault('jails_dir', str(lab['jails']))
    args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(ModuleExit) as leaving:
        app_user.main()
    return leaving.value.result


def line(path, name):
    return next((entry for entry in path.read_text().splitlines() if entry.startswith(name + ':')), None)


@needs_root
def test_create_is_idempotent_and_same_on_both_sides(lab):
    host, jail_root = lab['host'], lab['jails'] / 'shop' / 'root'
    check = run(lab, check_mode=True, diff=True, name='shop', jail='shop')
    assert check['changed'] is True and check['uid'] == 20000
    assert line(host / 'etc/passwd', 'shop') is None and not (jail_root / 'srv/shop').exists()
    assert 'host passwd: shop:x:20000:20000' in check['diff']['after']

    first = run(lab, name='shop', jail='shop')
    assert first['changed'] is True and (first['uid'], first['gid']) == (20000, 20000)
    host_home = f'{jail_root}/srv/shop'
    # The host's passwd points at the root-owned, empty login home, never at the jail-writable home.
    assert line(host / 'etc/passwd', 'shop') == \
        f'shop:x:20000:20000:jailhost app shop:{utils.LOGIN_HOME}:/usr/sbin/nologin'
    login_home = os.lstat(host / utils.LOGIN_HOME.lstrip('/'))
    assert (login_home.st_uid, login_home.st_gid, login_home.st_mode & 0o7777) == (0, 0, 0o755)
    assert first['host_home'] == host_home
    assert line(jail_root / 'etc/passwd', 'shop') == 'shop:x:20000:20000:jailhost app shop:/srv/shop:/usr/sbin/nologin'
    assert line(host / 'etc/group', 'jailhost-apps').endswith(':shop')
    assert line(jail_root / 'etc/group', 'jailhost-apps') is None
    for root in (host, jail_root):
        assert line(root / 'etc/group', 'shop').startswith('shop:x:20000:')
        assert line(root / 'etc/shadow', 'shop').split(':')[1].startswith('!')
    st = os.stat(host_home)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (20000, 20000, 0o750)
    # The other jail is not touched.
    assert line(lab['jails'] / 'blog/root/etc/passwd', 'shop') is None

    lab['calls'].clear()
    again = run(lab, diff=True, name='shop', jail='shop')
    assert again['changed'] is False and lab['calls'] == []
    assert again['diff']['before'] == again['diff']['after']
    assert run(lab, check_mode=True, name='shop', jail='shop')['changed'] is False


@needs_root
def test_ids_are_stable_and_unique_across_jails(lab):
    assert run(lab, name='shop', jail='shop')['uid'] == 20000
    assert run(lab, name='blog', jail='blog')['uid'] == 20001
    assert run(lab, name='shop', jail='shop')['uid'] == 20000
    refused = run(lab, name='wiki', jail='blog', uid=20000)
    assert refused['failed'] and 'uid 20000 already belongs to user shop' in refused['msg']


@needs_root
@pytest.mark.parametrize('args, message', [
    ({'name': '../x'}, 'is not a valid user name'),
    ({'name': 'a/b'}, 'is not a valid user name'),
    ({'name': 'shop', 'uid': 999}, 'system range'),
    ({'name': 'shop', 'gid': 100}, 'system range'),
    ({'name': 'www-data'}, 'system range'),
    ({'name': 'shop', 'home': '/etc'}, 'system directory'),
    ({'name': 'shop', 'home_mode': '0755'}, 'home_mode'),
    ({'name': 'shop', 'jail': 'nojail'}, 'not a mounted jail root'),
    ({'name': 'shop', 'authorized_keys': [KEY]}, 'need shell=sandboxed'),
    ({'name': 'shop', 'jail': 'shop', 'uid_range': [500, 600]}, 'system range'),
])
def test_bad_input_changes_nothing(lab, args, message):
    args.setdefault('jail', 'shop')
    before = {p: p.read_bytes() for p in lab['host'].rglob('*') if p.is_file()}
    result = run(lab, **args)
    assert result['failed'] and message in result['msg']
    assert lab['calls'] == []
    assert {p: p.read_bytes() for p in lab['host'].rglob('*') if p.is_file()} == before


@needs_root
def test_sandboxed_login_and_keys(lab):
    result = run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])
    host = lab['host']
    assert line(host / 'etc/passwd', 'shop').endswith(':' + utils.LOGIN_SHELL)
    assert line(lab['jails'] / 'shop/root/etc/passwd', 'shop').endswith(':/bin/bash')
    keys = host / utils.KEYS_DIR.lstrip('/') / 'shop'
    assert keys.read_text() == KEY + '\n'
    assert os.stat(keys).st_uid == 0 and os.stat(keys).st_mode & 0o777 == 0o644
    assert (host / utils.LOGIN_DIR.lstrip('/') / 'shop').read_text() == 'shop\n'
    assert result['host_shell'] == utils.LOGIN_SHELL
    # Back to nologin: keys and login entry go.
    back = run(lab, name='shop', jail='shop')
    assert back['changed'] and not keys.exists()
    assert line(host / 'etc/passwd', 'shop').endswith(':/usr/sbin/nologin')


@needs_root
def test_password_set_by_hand_is_locked_again(lab):
    run(lab, name='shop', jail='shop')
    shadow = lab['jails'] / 'shop/root/etc/shadow'
    shadow.write_text(shadow.read_text().replace('shop:!:', 'shop:$y$j9T$secret:'))
    result = run(lab, name='shop', jail='shop')
    assert result['changed'] and ['usermod', '--prefix', str(lab['jails'] / 'shop/root'), '--lock', 'shop'] \
        in result['commands']
    assert line(shadow, 'shop').split(':')[1].startswith('!')


@needs_root
def test_absent_keeps_files_unless_purge_and_recreate_reuses_uid(lab):
    run(lab, name='shop', jail='shop')
    run(lab, name='blog', jail='blog')
    home = lab['jails'] / 'shop/root/srv/shop'
    (home / 'data.txt').write_text('orders\n')
    gone = run(lab, name='shop', jail='shop', state='absent')
    assert gone['changed'] and not gone['purged']
    for root in (lab['host'], lab['jails'] / 'shop/root'):
        assert line(root / 'etc/passwd', 'shop') is None and line(root / 'etc/group', 'shop') is None
    assert (home / 'data.txt').read_text() == 'orders\n'
    assert run(lab, name='shop', jail='shop', state='absent')['changed'] is False
    # Re-created: the kept home's owner uid comes back, even though 20000 is the lowest free id.
    assert run(lab, name='shop', jail='shop')['uid'] == 20000
    run(lab, name='shop', jail='shop', state='absent')
    run(lab, name='intruder', jail='blog', uid=20000)
    assert run(lab, name='shop', jail='shop')['uid'] == 20002
    purged = run(lab, name='shop', jail='shop', state='absent', purge=True)
    assert purged['purged'] and not home.exists()
    # The other app is untouched.
    assert line(lab['host'] / 'etc/passwd', 'blog').startswith('blog:x:20001:')


@needs_root
@pytest.mark.parametrize('link', ['srv', 'srv/shop'])
def test_symlink_in_home_path_is_refused_before_any_change(lab, link):
    # A jail's root can make symlinks in its own layer; followed from the host they would
    # create and chown a host directory.
    root = lab['jails'] / 'shop/root'
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(lab['host'] / 'etc')
    result = run(lab, name='shop', jail='shop')
    assert result['failed'] and 'is not a directory' in result['msg']
    assert lab['calls'] == [] and line(lab['host'] / 'etc/passwd', 'shop') is None


@needs_root
def test_absent_after_the_jail_root_is_gone(lab):
    run(lab, name='shop', jail='shop')
    shutil.rmtree(lab['jails'] / 'shop')
    gone = run(lab, name='shop', jail='shop', state='absent', purge=True)
    assert gone['changed'] and not gone['purged']
    assert line(lab['host'] / 'etc/passwd', 'shop') is None


@needs_root
def test_a_host_home_in_the_jail_moves_to_the_login_home(lab):
    """A user created before the login home existed (host home = the jail-writable directory) gets
    the root-owned login home on the next run; a login home with a wrong owner or mode is fixed, a
    link there is refused."""
    host, jail_root = lab['host'], lab['jails'] / 'shop' / 'root'
    run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])
    old_home = f'{jail_root}/srv/shop'
    subprocess.run(['usermod', '--prefix', str(host), '--home', old_home, 'shop'], check=True)
    login_home = host / utils.LOGIN_HOME.lstrip('/')
    os.chown(login_home, 20000, 20000)
    os.chmod(login_home, 0o777)
    result = run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])
    assert result['changed']
    assert ['usermod', '--home', utils.LOGIN_HOME, 'shop'] in [
        [a for i, a in enumerate(c) if a != '--prefix' and c[i - 1] != '--prefix'] for c in result['commands']]
    assert line(host / 'etc/passwd', 'shop').split(':')[5] == utils.LOGIN_HOME
    st = os.lstat(login_home)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755)
    # The jail's passwd keeps the real home; the home keeps its owner.
    assert line(jail_root / 'etc/passwd', 'shop').split(':')[5] == '/srv/shop'
    assert os.stat(old_home).st_uid == 20000
    assert run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])['changed'] is False
    login_home.rmdir()
    login_home.symlink_to(jail_root / 'srv/shop')
    failed = run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])
    assert failed.get('failed') and 'symbolic link is refused' in failed['msg']
    # A directory above it that another user could change is refused too.
    login_home.unlink()
    os.chmod(login_home.parent, 0o777)
    failed = run(lab, name='shop', jail='shop', shell='sandboxed', authorized_keys=[KEY])
    assert failed.get('failed') and 'must be a directory owned by root and writable by root only' in failed['msg']
    os.chmod(login_home.parent, 0o755)
