# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the iptables_chains module against an in-memory iptables (run_command is mocked)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.jailhost.jails.plugins.module_utils.netfilter import BUILTIN_CHAINS
from ansible_collections.jailhost.jails.plugins.modules import iptables_chains

CHAINS = [
    {'name': 'JAILHOST-FWD', 'rules': [
        '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-i br0 -j ACCEPT',
        '-o br0 -j DROP',
    ]},
    {'table': 'nat', 'name': 'JAILHOST-DNAT', 'rules': ['-p tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80']},
]
HOOKS = [
    {'chain': 'FORWARD', 'target': 'JAILHOST-FWD'},
    {'table': 'nat', 'chain': 'PREROUTING', 'match': '-m addrtype --dst-type LOCAL', 'target': 'JAILHOST-DNAT'},
]
FOREIGN = '-s 192.0.2.1/32 -j DROP'


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` holds what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class FakeIptables:
    """Just enough iptables: built-in and user chains of each table, as rule specifications."""

    def __init__(self):
        self.chains = {(table, chain): [] for table, chains in BUILTIN_CHAINS.items() for chain in chains}
        self.calls = []
        self.installed = True
        self.test_error = None

    @staticmethod
    def canonical(rule):
        # iptables prints the implicit protocol match: what it lists differs from what it was given.
        return rule.replace('-p tcp --dport', '-p tcp -m tcp --dport')

    def rules(self, table, chain):
        return self.chains[(table, chain)]

    def changing_calls(self):
        """Calls that would change the live rules."""
        return [
            args for args, _data in self.calls
            if (args[0].endswith('iptables-restore') and '--test' not in args)
            or (args[0].endswith('iptables') and args[4] in ('-I', '-D', '-F', '-X', '-A'))
        ]

    def run_command(self, args, data=None, **_kwargs):
        self.calls.append((list(args), data))
        if args[0].endswith('iptables-restore'):
            if '--test' in args:
                return (2, '', self.test_error) if self.test_error else (0, '', '')
            self._restore(data)
            return 0, '', ''
        assert args[1:3] == ['-w', '-t']
        table, command, chain, rest = args[3], args[4], args[5], args[6:]
        key = (table, chain)
        if key not in self.chains:
            return 1, '', 'iptables: No chain/target/match by that name.'
        rule = ' '.join(rest)
        if command == '-S':
            return 0, f'-N {chain}\n' + ''.join(f'-A {chain} {line}\n' for line in self.chains[key]), ''
        if command == '-C':
            if (table, rest[-1]) not in self.chains:
                return 2, '', f"Couldn't load target `{rest[-1]}'"
            return (0, '', '') if rule in self.chains[key] else (1, '', 'iptables: Bad rule')
        if command == '-I':
            assert rest[0] == '1'
            self.chains[key].insert(0, ' '.join(rest[1:]))
        elif command == '-D':
            if rule not in self.chains[key]:
                return 1, '', 'iptables: Bad rule'
            self.chains[key].remove(rule)
        elif command == '-F':
            self.chains[key] = []
        elif command == '-X':
            if any(line.split()[-2:] == ['-j', chain] for lines in self.chains.values() for line in lines):
                return 1, '', f'CHAIN_DEL failed (Device or resource busy): chain {chain}'
            del self.chains[key]
        else:
            raise AssertionError(f'unexpected command {args}')
        return 0, '', ''

    def _restore(self, text):
        table = None
        for line in text.splitlines():
            if line.startswith('*'):
                table = line[1:]
            elif line.startswith(':'):
                self.chains[(table, line[1:].split()[0])] = []
            elif line.startswith('-F '):
                self.chains[(table, line.split()[1])] = []
            elif line.startswith('-A '):
                _command, chain, rule = line.split(' ', 2)
                self.chains[(table, chain)].append(self.canonical(rule))
            else:
                assert line == 'COMMIT' or line.startswith('#'), line


@pytest.fixture
def fake(monkeypatch):
    fake = FakeIptables()
    fake.warnings = []

    def leave(self, **result):
        raise ModuleExit(result)

    def fail(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', leave)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, warning: fake.warnings.append(warning))
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, args, **kwargs: fake.run_command(args, **kwargs))
    monkeypatch.setattr(
        basic.AnsibleModule, 'get_bin_path',
        lambda self, name, *args, **kwargs: f'/usr/sbin/{name}' if fake.installed else None,
    )
    return fake


@pytest.fixture
def persist_dir(tmp_path):
    return tmp_path / 'firewall'


def run(persist_dir, check_mode=False, diff=False, **args):
    args.setdefault('chains', CHAINS)
    args.setdefault('hooks', HOOKS)
    args.update(persist_dir=str(persist_dir), _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(ModuleExit) as leaving:
        iptables_chains.main()
    return leaving.value.result


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_run_applies_and_second_run_changes_nothing(fake, persist_dir):
    fake.rules('filter', 'FORWARD').append(FOREIGN)

    first = run(persist_dir)

    assert first['changed'] is True
    assert {
        'chain filter/JAILHOST-FWD is missing',
        'chain nat/JAILHOST-DNAT is missing',
        'hook filter FORWARD -j JAILHOST-FWD inserted',
        'hook nat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT inserted',
        'rules file created',
        'hooks file created',
    } <= set(first['reasons'])
    assert first['chains'] == ['filter/JAILHOST-FWD', 'nat/JAILHOST-DNAT']
    assert fake.rules('filter', 'FORWARD') == ['-j JAILHOST-FWD', FOREIGN]
    assert fake.rules('nat', 'JAILHOST-DNAT') == ['-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80']
    assert first['rules_file'] == str(persist_dir / 'rules.v4')
    assert first['hooks_file'] == str(persist_dir / 'hooks.v4')
    assert mode(persist_dir) == 0o755
    assert mode(persist_dir / 'rules.v4') == 0o644
    assert mode(persist_dir / 'hooks.v4') == 0o644
    assert mode(persist_dir / 'state.json') == 0o600
    state = json.loads((persist_dir / 'state.json').read_text())
    assert state['version'] == 1
    # The fingerprint is what iptables printed back, not the declared spelling.
    assert state['chains']['nat/JAILHOST-DNAT'] == [
        '-A JAILHOST-DNAT -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80',
    ]
    assert [line for line in (persist_dir / 'hooks.v4').read_text().splitlines() if not line.startswith('#')] == [
        'filter FORWARD -j JAILHOST-FWD',
        'nat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT',
    ]

    fake.calls.clear()
    second = run(persist_dir)

    assert second['changed'] is False
    assert second['reasons'] == []
    assert fake.changing_calls() == []


def test_check_mode_changes_nothing(fake, persist_dir):
    result = run(persist_dir, check_mode=True, diff=True)

    assert result['changed'] is True
    assert 'chain filter/JAILHOST-FWD is missing' in result['reasons']
    assert fake.changing_calls() == []
    assert not persist_dir.exists()
    rules_diff = result['diff'][0]
    assert rules_diff['before'] == ''
    assert rules_diff['after'].startswith('# Managed by Ansible')
    assert result['diff'][-1] == {
        'before_header': 'hooks (live)', 'after_header': 'hooks', 'before': '',
        'after': 'filter FORWARD -j JAILHOST-FWD\nnat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT\n',
    }


def test_chain_edited_by_hand_is_reported_in_check_mode_and_repaired(fake, persist_dir):
    run(persist_dir)
    fake.rules('filter', 'JAILHOST-FWD').remove('-i br0 -j ACCEPT')
    fake.calls.clear()

    checked = run(persist_dir, check_mode=True, diff=True)

    assert checked['changed'] is True
    assert checked['reasons'] == ['chain filter/JAILHOST-FWD was modified outside this module']
    assert fake.changing_calls() == []
    assert '-i br0 -j ACCEPT' not in fake.rules('filter', 'JAILHOST-FWD')
    chain_diff = [entry for entry in checked['diff'] if entry['before_header'] == 'filter/JAILHOST-FWD (live)']
    assert chain_diff and '-A JAILHOST-FWD -i br0 -j ACCEPT\n' in chain_diff[0]['after']
    assert '-i br0 -j ACCEPT' not in chain_diff[0]['before']

    repaired = run(persist_dir)

    assert repaired['changed'] is True
    assert fake.rules('filter', 'JAILHOST-FWD') == CHAINS[0]['rules']
    assert run(persist_dir)['changed'] is False


def test_missing_chain_is_recreated(fake, persist_dir):
    run(persist_dir)
    fake.rules('nat', 'PREROUTING').clear()
    del fake.chains[('nat', 'JAILHOST-DNAT')]

    result = run(persist_dir)

    assert result['reasons'] == [
        'chain nat/JAILHOST-DNAT is missing',
        'hook nat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT inserted',
    ]
    assert fake.rules('nat', 'PREROUTING') == ['-m addrtype --dst-type LOCAL -j JAILHOST-DNAT']


def test_existing_hook_is_never_moved(fake, persist_dir):
    run(persist_dir)
    fake.rules('filter', 'FORWARD').insert(0, FOREIGN)
    fake.calls.clear()

    result = run(persist_dir)

    assert result['changed'] is False
    assert fake.rules('filter', 'FORWARD') == [FOREIGN, '-j JAILHOST-FWD']


def test_missing_hooks_keep_the_declared_order(fake, persist_dir):
    fake.rules('filter', 'FORWARD').append(FOREIGN)
    hooks = [
        {'chain': 'FORWARD', 'match': '-i br0', 'target': 'JAILHOST-FWD'},
        {'chain': 'FORWARD', 'match': '-o br0', 'target': 'JAILHOST-FWD'},
    ]

    run(persist_dir, hooks=hooks)

    assert fake.rules('filter', 'FORWARD') == ['-i br0 -j JAILHOST-FWD', '-o br0 -j JAILHOST-FWD', FOREIGN]


def test_chains_and_hooks_no_longer_declared_are_removed(fake, persist_dir):
    run(persist_dir)
    hooks = [dict(HOOKS[0], match='-i eth0')]

    result = run(persist_dir, chains=CHAINS[:1], hooks=hooks, diff=True)

    assert result['reasons'] == [
        'declared rules differ from the last applied ones',
        'hook filter FORWARD -j JAILHOST-FWD removed',
        'hook nat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT removed',
        'hook filter FORWARD -i eth0 -j JAILHOST-FWD inserted',
        'chain nat/JAILHOST-DNAT removed (no longer declared)',
        'rules file changed',
        'hooks file changed',
    ]
    assert ('nat', 'JAILHOST-DNAT') not in fake.chains
    assert fake.rules('nat', 'PREROUTING') == []
    assert fake.rules('filter', 'FORWARD') == ['-i eth0 -j JAILHOST-FWD']
    assert list(json.loads((persist_dir / 'state.json').read_text())['chains']) == ['filter/JAILHOST-FWD']
    assert {'before_header': 'nat/JAILHOST-DNAT (live)', 'after_header': 'nat/JAILHOST-DNAT (deleted)',
            'before': '-A JAILHOST-DNAT -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80\n',
            'after': ''} in result['diff']
    assert run(persist_dir, chains=CHAINS[:1], hooks=hooks)['changed'] is False


def test_rules_file_edited_by_hand_is_rewritten_without_reapplying(fake, persist_dir):
    run(persist_dir)
    rules_file = persist_dir / 'rules.v4'
    expected = rules_file.read_text()
    rules_file.write_text('garbage\n')
    fake.calls.clear()

    result = run(persist_dir)

    assert result['reasons'] == ['rules file changed']
    assert rules_file.read_text() == expected
    assert fake.changing_calls() == []


def test_recorded_chain_gone_only_updates_the_state(fake, persist_dir):
    run(persist_dir)
    state_file = persist_dir / 'state.json'
    state = json.loads(state_file.read_text())
    state['chains']['raw/JAILHOST-OLD'] = []
    state_file.write_text(json.dumps(state))

    result = run(persist_dir)

    assert result['reasons'] == ['state file changed']
    assert 'raw/JAILHOST-OLD' not in json.loads(state_file.read_text())['chains']


def test_unreadable_state_is_ignored_with_a_warning(fake, persist_dir):
    run(persist_dir)
    (persist_dir / 'state.json').write_text('{not json')

    result = run(persist_dir)

    assert result['changed'] is True
    assert 'no previous apply is recorded' in result['reasons']
    assert len(fake.warnings) == 1 and 'not valid JSON' in fake.warnings[0]
    assert run(persist_dir)['changed'] is False


def test_absent_removes_recorded_and_given_chains_only(fake, persist_dir):
    run(persist_dir)
    fake.rules('filter', 'FORWARD').append(FOREIGN)
    fake.chains[('filter', 'OTHER-TOOL')] = ['-j ACCEPT']
    fake.chains[('raw', 'GIVEN')] = []
    fake.calls.clear()

    checked = run(persist_dir, state='absent', chains=[{'table': 'raw', 'name': 'GIVEN'}], hooks=[], check_mode=True)
    assert checked['changed'] is True
    assert fake.changing_calls() == []

    result = run(persist_dir, state='absent', chains=[{'table': 'raw', 'name': 'GIVEN'}], hooks=[])

    assert result['changed'] is True
    assert result['chains'] == ['filter/JAILHOST-FWD', 'nat/JAILHOST-DNAT', 'raw/GIVEN']
    assert 'hook filter FORWARD -j JAILHOST-FWD removed' in result['reasons']
    assert fake.rules('filter', 'FORWARD') == [FOREIGN]
    assert fake.rules('nat', 'PREROUTING') == []
    assert {('filter', 'JAILHOST-FWD'), ('nat', 'JAILHOST-DNAT'), ('raw', 'GIVEN')}.isdisjoint(fake.chains)
    assert fake.rules('filter', 'OTHER-TOOL') == ['-j ACCEPT']
    assert sorted(os.listdir(persist_dir)) == []

    again = run(persist_dir, state='absent', chains=[], hooks=[])
    assert again['changed'] is False
    assert again['reasons'] == []


def test_chain_still_referenced_by_a_foreign_rule(fake, persist_dir):
    run(persist_dir)
    fake.rules('nat', 'OUTPUT').append('-o eth9 -j JAILHOST-DNAT')

    result = run(persist_dir, state='absent', chains=[], hooks=[])

    assert result['failed'] is True
    assert result['msg'].startswith('cannot delete chain nat/JAILHOST-DNAT: CHAIN_DEL failed')


def test_invalid_argument_fails_before_any_command(fake, persist_dir):
    chains = [CHAINS[0], {'name': 'foo bar'}]

    result = run(persist_dir, chains=chains, hooks=[])

    assert result['failed'] is True
    assert result['msg'].startswith("chains[1].name 'foo bar' is invalid: ")
    assert fake.calls == []


def test_hook_to_undeclared_chain_fails(fake, persist_dir):
    result = run(persist_dir, hooks=[{'chain': 'INPUT', 'target': 'NOPE'}])

    assert result['failed'] is True
    assert result['msg'] == "hooks[0].target 'NOPE' is invalid: no chain of that name is declared in table filter"


def test_iptables_missing(fake, persist_dir):
    fake.installed = False

    result = run(persist_dir)

    assert result == {'failed': True, 'msg': 'iptables is not installed on the target; install the iptables package'}


def test_rejected_rules_fail_before_any_change(fake, persist_dir):
    fake.test_error = (
        'iptables-restore v1.8.9 (nf_tables): unknown option "--bogus"\n'
        'Error occurred at line: 5\n'
        "Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n"
    )

    result = run(persist_dir, chains=[{'name': 'JAILHOST-FWD', 'rules': ['-j ACCEPT --bogus']}], hooks=[])

    assert result['failed'] is True
    assert result['msg'] == (
        '/usr/sbin/iptables-restore -w --noflush --test failed: '
        'iptables-restore v1.8.9 (nf_tables): unknown option "--bogus" Error occurred at line: 5 '
        '(the line is: -A JAILHOST-FWD -j ACCEPT --bogus)'
    )
    assert fake.changing_calls() == []
    assert not persist_dir.exists()
