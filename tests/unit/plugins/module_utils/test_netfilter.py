# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.jailhost.jails.plugins.module_utils.netfilter import (
    RULES_HEADER,
    Chain,
    Hook,
    State,
    StateError,
    ValidationError,
    chain_sync_reasons,
    dump_state,
    failing_line,
    load_state,
    parse_chain_listing,
    parse_chains,
    parse_hooks,
    render_hooks,
    render_restore_test,
    render_rules,
    sha256_hex,
    split_rule,
    stale_chain_keys,
    stale_hooks,
)

CHAINS = [
    {'name': 'JAILHOST-FWD', 'rules': ['-i br0 -j ACCEPT', '-o br0 -j DROP']},
    {'table': 'nat', 'name': 'JAILHOST-DNAT', 'rules': ['-p tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80']},
]


def chains_with_rule(rule: str) -> list[dict]:
    return [{'name': 'JAILHOST-FWD', 'rules': [rule]}]


class TestSplitRule:
    @pytest.mark.parametrize('spec, words', [
        ('-i br0  -j\tACCEPT', ['-i', 'br0', '-j', 'ACCEPT']),
        ('-m comment --comment "two  words" -j ACCEPT', ['-m', 'comment', '--comment', 'two  words', '-j', 'ACCEPT']),
        ('--comment "say \\"hi\\""', ['--comment', 'say "hi"']),
        ("--comment 'a b'", ['--comment', "'a", "b'"]),  # single quotes are not quotes for iptables
        ('--comment x"y z"', ['--comment', 'xy z']),
        ('   ', []),
    ])
    def test_words(self, spec, words):
        assert split_rule(spec) == words

    def test_unterminated_quote(self):
        with pytest.raises(ValueError, match='unterminated'):
            split_rule('--comment "open')


class TestParseChains:
    def test_defaults_and_order(self):
        chains = parse_chains([{'name': 'B', 'rules': ['  -j ACCEPT ']}, {'table': 'nat', 'name': 'A'}])
        assert chains == [Chain('filter', 'B', ('-j ACCEPT',)), Chain('nat', 'A', ())]
        assert chains[1].key == 'nat/A'

    @pytest.mark.parametrize('name', ['foo bar', 'lower', '1ABC', 'A' * 29, 'A.B', '', None])
    def test_invalid_name(self, name):
        with pytest.raises(ValidationError, match=r'^chains\[1\]\.name .* is invalid: must match'):
            parse_chains([{'name': 'OK'}, {'name': name}])

    def test_longest_name(self):
        assert parse_chains([{'name': 'A' * 28}])[0].name == 'A' * 28

    @pytest.mark.parametrize('name', ['FORWARD', 'POSTROUTING', 'DROP', 'RETURN'])
    def test_reserved_name(self, name):
        with pytest.raises(ValidationError, match='built-in chain or target name'):
            parse_chains([{'name': name}])

    def test_invalid_table(self):
        with pytest.raises(ValidationError, match=r"^chains\[0\]\.table 'security' is invalid"):
            parse_chains([{'table': 'security', 'name': 'X'}])

    def test_duplicate(self):
        with pytest.raises(ValidationError, match=r'chains\[2\] declares chain nat/X again \(already declared by chains\[0\]\)'):
            parse_chains([{'table': 'nat', 'name': 'X'}, {'name': 'X'}, {'table': 'nat', 'name': 'X'}])

    @pytest.mark.parametrize('rule', [
        '-A INPUT -j ACCEPT',
        '-j ACCEPT -I INPUT 1',
        '-D FORWARD 1',
        '-F',
        '-X OTHER',
        '-P FORWARD DROP',
        '-t nat -j MASQUERADE',
        '-N NEW',
        '-j ACCEPT --insert INPUT',
        '-j ACCEPT --ins INPUT',  # getopt_long abbreviation of --insert
        '-j ACCEPT --flush=INPUT',
        '-vI INPUT',  # bundled short options
        '-h',
    ])
    def test_command_smuggled(self, rule):
        with pytest.raises(ValidationError, match=r"^chains\[0\]\.rules\[0\] .* is an iptables command or table option"):
            parse_chains(chains_with_rule(rule))

    @pytest.mark.parametrize('rule', [
        '-ptcp --dport 80 -j ACCEPT',  # "t" is part of the value of -p
        '-m policy --dir in --pol ipsec -j ACCEPT',  # --pol is an exact option of the policy match
        '-m comment --comment "web -A x" -j ACCEPT',  # -A inside a quoted word is no option
        '! -s 10.0.0.0/8 -j RETURN',
        '-m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu',
    ])
    def test_legitimate_rules(self, rule):
        assert parse_chains(chains_with_rule(rule))[0].rules == (rule,)

    @pytest.mark.parametrize('rule', ['-j ACCEPT\n-P FORWARD DROP', '-j ACCEPT\r', '-j\0ACCEPT'])
    def test_multi_line(self, rule):
        with pytest.raises(ValidationError, match='must be a single line'):
            parse_chains(chains_with_rule(rule))

    def test_empty_rule(self):
        with pytest.raises(ValidationError, match=r'chains\[0\]\.rules\[0\] is empty'):
            parse_chains(chains_with_rule('  '))

    def test_unterminated_quote(self):
        with pytest.raises(ValidationError, match='unterminated double quote'):
            parse_chains(chains_with_rule('-m comment --comment "x -j ACCEPT'))


class TestParseHooks:
    chains = parse_chains(CHAINS)

    def test_hooks(self):
        hooks = parse_hooks([
            {'chain': 'FORWARD', 'target': 'JAILHOST-FWD'},
            {'table': 'nat', 'chain': 'PREROUTING', 'target': 'JAILHOST-DNAT', 'match': ' -m addrtype  --dst-type LOCAL'},
        ], self.chains)
        assert hooks == [
            Hook('filter', 'FORWARD', 'JAILHOST-FWD'),
            Hook('nat', 'PREROUTING', 'JAILHOST-DNAT', ('-m', 'addrtype', '--dst-type', 'LOCAL')),
        ]
        assert str(hooks[1]) == 'nat PREROUTING -m addrtype --dst-type LOCAL -j JAILHOST-DNAT'
        assert hooks[1].spec == ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'JAILHOST-DNAT']

    def test_chain_not_in_table(self):
        with pytest.raises(ValidationError, match=r"^hooks\[0\]\.chain 'PREROUTING' is invalid: table filter .*INPUT, FORWARD, OUTPUT"):
            parse_hooks([{'chain': 'PREROUTING', 'target': 'JAILHOST-FWD'}], self.chains)

    def test_target_of_other_table(self):
        with pytest.raises(ValidationError, match=r"^hooks\[0\]\.target 'JAILHOST-DNAT' is invalid: .* table filter"):
            parse_hooks([{'chain': 'FORWARD', 'target': 'JAILHOST-DNAT'}], self.chains)

    def test_duplicate_after_normalisation(self):
        with pytest.raises(ValidationError, match=r'^hooks\[1\] duplicates hooks\[0\]'):
            parse_hooks([
                {'chain': 'FORWARD', 'target': 'JAILHOST-FWD', 'match': '-i br0'},
                {'chain': 'FORWARD', 'target': 'JAILHOST-FWD', 'match': '-i   br0 '},
            ], self.chains)

    @pytest.mark.parametrize('match, error', [
        ('-j ACCEPT', 'chooses a target'),
        ('--goto OTHER', 'chooses a target'),
        ('-t nat', 'iptables command or table option'),
        ('-F FORWARD', 'iptables command or table option'),
        ('-m comment --comment "x"', 'quotes and backslashes are not supported'),
        ('-i br0\n-F', 'single line'),
    ])
    def test_invalid_match(self, match, error):
        with pytest.raises(ValidationError, match=r'^hooks\[0\]\.match .*' + error):
            parse_hooks([{'chain': 'FORWARD', 'target': 'JAILHOST-FWD', 'match': match}], self.chains)


class TestRender:
    def test_rules_file(self):
        chains = parse_chains([
            {'name': 'ZZ-FWD', 'rules': ['-j ZZ-LOG']},
            {'table': 'nat', 'name': 'JAILHOST-DNAT', 'rules': ['-p tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80']},
            {'name': 'ZZ-LOG', 'rules': ['-j LOG', '-j DROP']},
            {'table': 'raw', 'name': 'NOTRACK', 'rules': []},
        ])
        assert render_rules(chains) == '\n'.join([
            RULES_HEADER,
            '*raw',
            ':NOTRACK - [0:0]',
            '-F NOTRACK',
            'COMMIT',
            '*nat',
            ':JAILHOST-DNAT - [0:0]',
            '-F JAILHOST-DNAT',
            '-A JAILHOST-DNAT -p tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80',
            'COMMIT',
            '*filter',
            ':ZZ-FWD - [0:0]',
            ':ZZ-LOG - [0:0]',
            '-F ZZ-FWD',
            '-A ZZ-FWD -j ZZ-LOG',
            '-F ZZ-LOG',
            '-A ZZ-LOG -j LOG',
            '-A ZZ-LOG -j DROP',
            'COMMIT',
        ]) + '\n'

    def test_deterministic(self):
        forward = parse_chains(CHAINS + [{'name': 'A-FIRST'}])
        backward = parse_chains(list(reversed(CHAINS + [{'name': 'A-FIRST'}])))
        assert render_rules(forward) == render_rules(backward)
        assert sha256_hex(render_rules(forward)) == sha256_hex(render_rules(backward))

    def test_no_chains(self):
        assert render_rules([]) == RULES_HEADER + '\n'

    def test_restore_test_input_checks_hooks(self):
        chains = parse_chains(CHAINS)
        hooks = parse_hooks([
            {'table': 'nat', 'chain': 'PREROUTING', 'target': 'JAILHOST-DNAT', 'match': '-m addrtype --dst-type LOCAL'},
        ], chains)
        lines = render_restore_test(chains, hooks).splitlines()
        nat = lines[lines.index('*nat'):lines.index('*filter')]
        assert nat[-2:] == ['-I PREROUTING 1 -m addrtype --dst-type LOCAL -j JAILHOST-DNAT', 'COMMIT']
        assert not any(line.startswith('-I') for line in render_rules(chains).splitlines())

    def test_hooks_file(self):
        chains = parse_chains(CHAINS)
        hooks = parse_hooks([
            {'chain': 'FORWARD', 'target': 'JAILHOST-FWD'},
            {'table': 'nat', 'chain': 'OUTPUT', 'target': 'JAILHOST-DNAT', 'match': '! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL'},
        ], chains)
        text = render_hooks(hooks)
        assert [line for line in text.splitlines() if not line.startswith('#')] == [
            'filter FORWARD -j JAILHOST-FWD',
            'nat OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j JAILHOST-DNAT',
        ]
        assert text.endswith('\n')


class TestState:
    hooks = [Hook('nat', 'PREROUTING', 'JAILHOST-DNAT', ('-m', 'addrtype', '--dst-type', 'LOCAL'))]

    def test_round_trip(self):
        state = State('abc', {'nat/JAILHOST-DNAT': ['-A JAILHOST-DNAT -j ACCEPT']}, self.hooks)
        text = dump_state(state)
        assert json.loads(text)['version'] == 1
        assert json.loads(text)['hooks'] == [
            {'table': 'nat', 'chain': 'PREROUTING', 'target': 'JAILHOST-DNAT', 'match': '-m addrtype --dst-type LOCAL'},
        ]
        assert load_state(text) == state
        assert dump_state(load_state(text)) == text

    @pytest.mark.parametrize('text, error', [
        ('{', 'not valid JSON'),
        ('[]', 'not a version 1 state file'),
        ('{"version": 2}', 'not a version 1 state file'),
        ('{"version": 1, "chains": {"nat": []}}', 'malformed'),
        ('{"version": 1, "chains": {"bogus/X": []}}', 'invalid chain'),
        ('{"version": 1, "hooks": [{"table": "filter", "chain": "PREROUTING", "target": "X"}]}', 'invalid hook'),
        ('{"version": 1, "hooks": [{"table": "filter"}]}', 'malformed'),
        ('{"version": 1, "hooks": [{"table": "filter", "chain": "INPUT", "target": "X", "match": "-F INPUT"}]}',
         r"malformed content: hooks\[0\]\.match '-F INPUT' is invalid"),
    ])
    def test_invalid(self, text, error):
        with pytest.raises(StateError, match=error):
            load_state(text)


class TestComparison:
    chains = [Chain('filter', 'FWD', ('-p tcp --dport 22 -j ACCEPT',)), Chain('nat', 'DNAT', ())]
    applied = ['-A FWD -p tcp -m tcp --dport 22 -j ACCEPT']

    def state(self, sha='sha', **chains):
        recorded = {'filter/FWD': self.applied, 'nat/DNAT': []}
        recorded.update(chains)
        return State(sha, recorded, [])

    def test_in_sync_despite_canonical_form(self):
        live = {'filter/FWD': list(self.applied), 'nat/DNAT': []}
        assert chain_sync_reasons(self.chains, live, self.state(), 'sha') == []

    def test_rules_changed(self):
        live = {'filter/FWD': list(self.applied), 'nat/DNAT': []}
        assert chain_sync_reasons(self.chains, live, self.state(), 'other') == [
            'declared rules differ from the last applied ones',
        ]

    def test_missing_and_edited(self):
        live = {'filter/FWD': [], 'nat/DNAT': None}
        assert chain_sync_reasons(self.chains, live, self.state(), 'sha') == [
            'chain filter/FWD was modified outside this module',
            'chain nat/DNAT is missing',
        ]

    def test_no_state(self):
        live = {'filter/FWD': list(self.applied), 'nat/DNAT': None}
        assert chain_sync_reasons(self.chains, live, State(), 'sha') == [
            'no previous apply is recorded',
            'chain nat/DNAT is missing',
        ]

    def test_chain_not_recorded(self):
        state = State('sha', {'filter/FWD': self.applied}, [])
        live = {'filter/FWD': list(self.applied), 'nat/DNAT': []}
        assert chain_sync_reasons(self.chains, live, state, 'sha') == [
            'chain nat/DNAT exists but is not recorded in the state file',
        ]

    def test_stale(self):
        hook = Hook('filter', 'FORWARD', 'OLD')
        kept = Hook('filter', 'FORWARD', 'FWD')
        state = State('sha', {'filter/FWD': [], 'filter/OLD': [], 'raw/GONE': []}, [hook, kept])
        assert stale_chain_keys(self.chains, state) == ['filter/OLD', 'raw/GONE']
        assert stale_hooks([kept], state) == [hook]


def test_parse_chain_listing():
    output = '-N FWD\n-A FWD -i br0 -j ACCEPT\n-A FWD -j DROP\n'
    assert parse_chain_listing(output) == ['-A FWD -i br0 -j ACCEPT', '-A FWD -j DROP']


@pytest.mark.parametrize('message, line', [
    ('iptables-restore v1.8.9 (nf_tables): unknown option "--bogus" Error occurred at line: 2', ':X - [0:0]'),
    ('Error occurred at line: 9', None),
    ('no line number', None),
])
def test_failing_line(message, line):
    assert failing_line('*filter\n:X - [0:0]\nCOMMIT\n', message) == line
