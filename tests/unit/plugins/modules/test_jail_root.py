# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of jailhost.jails.jail_root: unit rendering and naming, then the module on a temporary
jails directory and unit directory, with systemctl replaced by a fake that mounts (records) and
unmounts. The real mounts are tested by the jails and default scenarios."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.jailhost.jails.plugins.module_utils import jail_root as utils
from ansible_collections.jailhost.jails.plugins.module_utils.jail_root import (
    JailRootError,
    check_params,
    escape_path,
    parse_size,
    render_unit,
    settings,
)
from ansible_collections.jailhost.jails.plugins.modules import jail_root


@pytest.mark.parametrize('path, name', [
    ('/var/lib/jailhost/jails/web/root', 'var-lib-jailhost-jails-web-root'),
    ('/var/lib/jailhost/jails/app-01/root', 'var-lib-jailhost-jails-app\\x2d01-root'),
    ('/srv//jails/a.b/root/', 'srv-jails-a.b-root'),
    ('/', '-'),
])
def test_escape_path(path, name):
    assert escape_path(path) == name


def test_escape_path_matches_systemd_escape():
    path = '/var/lib/jail host/jails/x-y_z.1/root'
    expected = subprocess.run(['systemd-escape', '--path', path], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert escape_path(path) == expected


def test_unit_and_settings():
    unit = render_unit('web', '/var/lib/jailhost/jails/web', '/var/lib/jailhost/base/k/root')
    assert 'Options=lowerdir=/var/lib/jailhost/base/k/root,upperdir=/var/lib/jailhost/jails/web/upper,' \
           'workdir=/var/lib/jailhost/jails/web/work\n' in unit
    assert 'Before=jailhost-web.service' in unit and 'WantedBy=multi-user.target' in unit
    # An older header (the template's ansible_managed line) is not a change.
    older = unit.replace(unit.splitlines()[0], '# Ansible managed (jailhost.jails.rootfs)')
    assert settings(older) == settings(unit)


@pytest.mark.parametrize('args, message', [
    (('Web', '/j', '/b', 'present'), 'name'),
    (('1web', '/j', '/b', 'present'), 'name'),
    (('web', 'j', '/b', 'present'), 'jails_dir'),
    (('web', '/j/../etc', '/b', 'present'), 'jails_dir'),
    (('web', '/j', '/b,upperdir=/', 'present'), 'base'),
    (('web', '/j', '/b c', 'present'), 'base'),
    (('web', '/j', None, 'present'), 'is required with state=present'),
])
def test_bad_params(args, message):
    with pytest.raises(JailRootError, match=message):
        check_params(*args)


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='the module sets owners: it needs root')


@pytest.fixture
def lab(tmp_path, monkeypatch):
    units = tmp_path / 'units'
    units.mkdir()
    base = tmp_path / 'base' / 'root'
    base.mkdir(parents=True)
    state = {'mounted': set(), 'enabled': set(), 'calls': []}
    monkeypatch.setattr(utils, 'UNIT_DIR', str(units))
    monkeypatch.setattr(utils.os.path, 'ismount', lambda path: path in state['mounted'])

    def run_command(self, args, **_kwargs):
        args = list(args)
        state['calls'].append(args[1:] if args[0] == 'systemctl' else args)
        action, unit = args[1], args[-1]
        if args[0] != 'systemctl':
            return 0, '', ''  # mkfs.ext4: recorded only
        sub = 'layer' if unit.endswith('-layer.mount') else 'root'
        root = str(tmp_path / 'jails' / self.params['name'] / sub)
        if action in ('start', 'restart'):
            state['mounted'].add(root)
            if sub == 'layer':
                os.makedirs(root, exist_ok=True)
        elif action == 'stop':
            state['mounted'].discard(root)
        elif action == 'enable':
            state['enabled'].add(unit)
        elif action == 'disable':
            state['enabled'].discard(unit)
        elif action == 'is-enabled':
            return (0 if unit in state['enabled'] else 1), '', ''
        return 0, '', ''

    def leave(self, **result):
        raise ModuleExit(result)

    def fail(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', leave)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    return {'tmp': tmp_path, 'units': units, 'base': base, 'state': state, 'jails': tmp_path / 'jails'}


def run(lab, check_mode=False, diff=False, **args):
    args.setdefault('jails_dir', str(lab['jails']))
    args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(ModuleExit) as leaving:
        jail_root.main()
    return leaving.value.result


@needs_root
def test_create_check_mode_then_idempotent(lab):
    check = run(lab, check_mode=True, diff=True, name='web', base=str(lab['base']))
    assert check['changed'] and not lab['jails'].exists() and lab['state']['calls'] == [['is-enabled', '--quiet', check['unit']]]
    assert 'Options=lowerdir=' in check['diff']['after'] and check['diff']['before'] == ''

    first = run(lab, name='web', base=str(lab['base']))
    unit = first['unit']
    assert unit == 'web'.join([escape_path(str(lab['jails'])) + '-', '-root.mount'])
    assert first['changed'] and 'mounted' in first['reasons'] and 'enabled at boot' in first['reasons']
    for sub in ('', 'upper', 'work', 'root'):
        info = os.stat(lab['jails'] / 'web' / sub)
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o755, 0)
    assert (lab['jails'] / 'web' / 'base').read_text() == f"{lab['base']}\n"
    assert f"lowerdir={lab['base']}," in (lab['units'] / unit).read_text()
    assert ['daemon-reload'] in lab['state']['calls'] and ['start', unit] in lab['state']['calls']

    lab['state']['calls'].clear()
    second = run(lab, name='web', base=str(lab['base']))
    assert not second['changed'] and lab['state']['calls'] == [['is-enabled', '--quiet', unit]]


@needs_root
def test_a_new_base_never_replaces_the_pinned_one(lab):
    run(lab, name='web', base=str(lab['base']))
    newer = lab['tmp'] / 'newer' / 'root'
    newer.mkdir(parents=True)
    result = run(lab, name='web', base=str(newer))
    assert not result['changed']
    assert str(newer) not in (lab['units'] / result['unit']).read_text()
    # Re-pinned by hand: the root is remounted on the new base.
    (lab['jails'] / 'web' / 'base').write_text(f'{newer}\n')
    moved = run(lab, name='web', base=str(lab['base']))
    assert 'remounted with the new unit' in moved['reasons']
    assert f'lowerdir={newer},' in (lab['units'] / moved['unit']).read_text()


@needs_root
def test_an_older_unit_header_is_kept(lab):
    first = run(lab, name='web', base=str(lab['base']))
    path = lab['units'] / first['unit']
    older = path.read_text().replace('# Managed by jailhost.jails (rootfs role, jail_root module): do not edit.',
                                     '# Ansible managed (jailhost.jails.rootfs)')
    path.write_text(older)
    assert not run(lab, name='web', base=str(lab['base']))['changed']
    assert path.read_text() == older


@needs_root
def test_errors(lab):
    missing = run(lab, name='web', base=str(lab['tmp'] / 'nothing'))
    assert missing['failed'] and 'does not exist' in missing['msg'] and not lab['jails'].exists()
    lab['jails'].mkdir()
    (lab['jails'] / 'web').write_text('a file')
    clash = run(lab, name='web', base=str(lab['base']))
    assert clash['failed'] and 'not a directory' in clash['msg']


@needs_root
def test_absent_keeps_the_layer_unless_purged(lab):
    first = run(lab, name='web', base=str(lab['base']))
    (lab['jails'] / 'web' / 'upper' / 'data').write_text('precious')
    removed = run(lab, name='web', state='absent')
    assert removed['reasons'] == ['unmounted', f"{first['unit']} removed"]
    assert not (lab['units'] / first['unit']).exists()
    assert (lab['jails'] / 'web' / 'upper' / 'data').read_text() == 'precious'
    assert not run(lab, name='web', state='absent')['changed']
    purged = run(lab, name='web', state='absent', purge=True)
    assert purged['changed'] and not (lab['jails'] / 'web').exists()


@needs_root
def test_absent_refuses_a_root_still_in_use(lab, monkeypatch):
    run(lab, name='web', base=str(lab['base']))
    busy = str(lab['jails'] / 'web' / 'root')
    monkeypatch.setattr(utils.os.path, 'ismount', lambda path: path == busy)
    result = run(lab, name='web', state='absent', purge=True)
    assert result['failed'] and 'could not be unmounted' in result['msg']
    assert (lab['jails'] / 'web' / 'upper').exists()


# --- a size-limited layer (issue 14, "Exhaustion")

@pytest.mark.parametrize('text, value', [('64M', 64 << 20), ('2G', 2 << 30), ('1T', 1 << 40),
                                         (str(128 << 20), 128 << 20), (None, None), ('', None)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize('text, message', [
    ('2g', 'must be a whole number'), ('1.5G', 'must be a whole number'), ('-1G', 'must be a whole number'),
    ('2 G', 'must be a whole number'), ('2GB', 'must be a whole number'), ('0', 'must be a whole number'),
    ('1M', 'below the minimum of 64M'), ('67108865', 'multiple of 4K'), ('G', 'must be a whole number'),
])
def test_bad_sizes(text, message):
    with pytest.raises(JailRootError, match=message):
        parse_size(text)


def test_sized_units():
    unit = render_unit('db', '/j/db', '/b/root', 'j-db-layer.mount')
    assert 'Requires=j-db-layer.mount\nAfter=j-db-layer.mount\n' in unit
    assert 'upperdir=/j/db/layer/upper,workdir=/j/db/layer/work\n' in unit
    layer = utils.render_layer_unit('db', '/j/db')
    assert 'What=/j/db/layer.img\nWhere=/j/db/layer\nType=ext4\nOptions=loop\n' in layer
    assert 'Before=jailhost-db.service' in layer


@needs_root
def test_sized_jail_created_once_then_idempotent(lab):
    check = run(lab, check_mode=True, name='db', base=str(lab['base']), size='64M')
    assert check['changed'] and not lab['jails'].exists()
    first = run(lab, name='db', base=str(lab['base']), size='64M')
    image = lab['jails'] / 'db' / 'layer.img'
    info = os.stat(image)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_size) == (0o600, 0, 64 << 20)
    assert info.st_blocks * 512 >= 64 << 20, 'the image is allocated in full'
    mkfs = [call for call in lab['state']['calls'] if call[0] == 'mkfs.ext4']
    assert mkfs == [[*utils.MKFS, str(image)]]
    layer_unit = first['layer_unit']
    assert layer_unit.endswith('-db-layer.mount') and ['start', layer_unit] in lab['state']['calls']
    assert ['enable', '--quiet', layer_unit] in lab['state']['calls']
    assert not (lab['jails'] / 'db' / 'upper').exists() and (lab['jails'] / 'db' / 'layer' / 'upper').is_dir()
    assert f'Requires={layer_unit}' in (lab['units'] / first['unit']).read_text()
    lab['state']['calls'].clear()
    assert not run(lab, name='db', base=str(lab['base']), size='64M')['changed']
    # Without size, the image stays as it is.
    assert not run(lab, name='db', base=str(lab['base']))['changed']
    assert not [call for call in lab['state']['calls'] if call[0] == 'mkfs.ext4']


@needs_root
def test_a_sized_jail_keeps_its_size(lab):
    run(lab, name='db', base=str(lab['base']), size='128M')
    image = lab['jails'] / 'db' / 'layer.img'
    before = image.stat()
    lab['state']['calls'].clear()
    for size, message in (('64M', 'shrinking a layer is not supported'), ('192M', 'growing a layer is not supported yet'),
                          (str((128 << 20) - 4096), 'shrinking')):
        result = run(lab, name='db', base=str(lab['base']), size=size)
        assert result['failed'] and message in result['msg'], result
    after = image.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert lab['state']['calls'] == []


@needs_root
def test_size_errors_change_nothing(lab, monkeypatch):
    run(lab, name='web', base=str(lab['base']))
    lab['state']['calls'].clear()
    late = run(lab, name='web', base=str(lab['base']), size='1G')
    assert late['failed'] and 'was created without a size' in late['msg']
    assert not (lab['jails'] / 'web' / 'layer.img').exists() and lab['state']['calls'] == []
    bad = run(lab, name='db', base=str(lab['base']), size='lots')
    assert bad['failed'] and 'must be a whole number' in bad['msg'] and not (lab['jails'] / 'db').exists()
    huge = run(lab, name='db', base=str(lab['base']), size='1024T')
    assert huge['failed'] and 'does not fit' in huge['msg'] and not (lab['jails'] / 'db').exists()
    # An image that is not root's plain file is never used (nor followed).
    (lab['jails'] / 'db').mkdir()
    (lab['jails'] / 'db' / 'layer.img').symlink_to('/etc/passwd')
    link = run(lab, name='db', base=str(lab['base']), size='64M')
    assert link['failed'] and 'not a regular file' in link['msg']


@needs_root
def test_sized_jail_absent_and_purge(lab):
    first = run(lab, name='db', base=str(lab['base']), size='64M')
    removed = run(lab, name='db', state='absent')
    assert removed['reasons'] == ['unmounted', f"{first['unit']} removed", 'layer unmounted',
                                  f"{first['layer_unit']} removed"]
    assert (lab['jails'] / 'db' / 'layer.img').exists()
    purged = run(lab, name='db', state='absent', purge=True)
    assert purged['changed'] and not (lab['jails'] / 'db').exists()
