# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of jailhost.jails.iptables_chains: validation, rendering, state and comparison.

Nothing here runs a command or touches a file, so all of it is unit-testable.

Vocabulary: a *chain* is one of our own user-defined chains (its rules are fully owned by us);
a *hook* is a single jump rule from a built-in chain into one of our chains. Rules of built-in
chains other than our hooks belong to other tools and are never touched.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

# Tables in packet traversal order; also the order of the sections of rules.v4.
TABLES = ('raw', 'mangle', 'nat', 'filter')

BUILTIN_CHAINS = {
    'raw': ('PREROUTING', 'OUTPUT'),
    'mangle': ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'),
    'nat': ('PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'),
    'filter': ('INPUT', 'FORWARD', 'OUTPUT'),
}
HOOK_CHAINS = ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING')

# 28 characters is the longest chain name iptables accepts.
CHAIN_NAME_RE = re.compile(r'^[A-Z][A-Z0-9_-]{0,27}$')
# iptables refuses the standard verdicts as chain names; it accepts built-in chain names for user
# chains of other tables (PREROUTING in filter), which would only be confusing.
RESERVED_CHAIN_NAMES = frozenset(HOOK_CHAINS) | frozenset(('ACCEPT', 'DROP', 'QUEUE', 'RETURN'))

STATE_VERSION = 1

RULES_HEADER = (
    '# Managed by Ansible (jailhost.jails.iptables_chains): our chains only, restored with --noflush.'
)
HOOKS_HEADER = (
    '# Managed by Ansible (jailhost.jails.iptables_chains): jumps from built-in chains into our chains.\n'
    '# Format: TABLE CHAIN [MATCH...] -j TARGET. A missing hook is inserted at position 1 of CHAIN;\n'
    '# lines are applied bottom-up so that hooks of one built-in chain keep the order listed here.'
)

# iptables commands and the table switch. Inside a rule or a match, any of them would act outside
# the chain the rule belongs to (or, for -h/-V, make the command exit 0 without doing anything).
_COMMAND_LETTERS = frozenset('ACDEFILNPRSVXZht')
_COMMAND_NAMES = (
    'append', 'check', 'delete', 'delete-chain', 'flush', 'help', 'insert', 'list', 'list-rules',
    'new-chain', 'policy', 'rename-chain', 'replace', 'table', 'version', 'zero',
)
# Short options whose argument may be glued to them (-ptcp): the rest of the word is a value.
_LETTERS_WITH_ARGUMENT = frozenset('cdgijmopsWw')
# getopt_long accepts unambiguous abbreviations (--ins means --insert), but an exact option name
# wins: the policy match defines --pol, which otherwise reads as an abbreviation of --policy.
_EXACT_LONG_OPTIONS = frozenset(('pol',))
# A hook's match is followed by "-j TARGET" added by the module: it must not choose a target itself.
_TARGET_LETTERS = frozenset('gj')
_TARGET_NAMES = ('goto', 'jump')


class ValidationError(ValueError):
    """An invalid module argument; the message names the offending item."""


class StateError(ValueError):
    """A state.json that cannot be used."""


@dataclass(frozen=True)
class Chain:
    table: str
    name: str
    rules: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f'{self.table}/{self.name}'


@dataclass(frozen=True)
class Hook:
    table: str
    chain: str
    target: str
    match: tuple[str, ...] = ()

    @property
    def spec(self) -> list[str]:
        """Rule specification as iptables arguments, after ``-C CHAIN``, ``-I CHAIN 1`` or ``-D CHAIN``."""
        return [*self.match, '-j', self.target]

    def __str__(self) -> str:
        # Also the hooks.v4 line format.
        return ' '.join((self.table, self.chain, *self.spec))

    def to_dict(self) -> dict[str, str]:
        return {'table': self.table, 'chain': self.chain, 'match': ' '.join(self.match), 'target': self.target}


@dataclass
class State:
    """Bookkeeping of the last apply, persisted as state.json."""

    rules_sha256: str | None = None
    chains: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)


def split_rule(spec: str) -> list[str]:
    """Split a rule specification into words the way iptables-restore does.

    Blanks separate words; double quotes group blanks into a word and a backslash escapes the next
    character inside them. Single quotes are ordinary characters for iptables-restore.
    """
    words = []
    word = []
    quoted = escaped = False
    for char in spec:
        if escaped:
            word.append(char)
            escaped = False
        elif quoted and char == '\\':
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in ' \t' and not quoted:
            if word:
                words.append(''.join(word))
                word = []
        else:
            word.append(char)
    if quoted:
        raise ValueError('unterminated double quote')
    if word:
        words.append(''.join(word))
    return words


def _forbidden_option(word: str, letters: frozenset[str], names: tuple[str, ...]) -> bool:
    """Whether ``word`` is (or, for short options, bundles) one of the given options."""
    if word.startswith('--'):
        name = word[2:].split('=', 1)[0]
        return bool(name) and name not in _EXACT_LONG_OPTIONS and any(n.startswith(name) for n in names)
    if word.startswith('-') and len(word) > 1 and word[1].isalpha():
        for letter in word[1:]:
            if letter in letters:
                return True
            if letter in _LETTERS_WITH_ARGUMENT:
                return False
    return False


def _check_spec(where: str, spec: object, is_hook_match: bool = False) -> tuple[str, ...]:
    """Validate a rule specification or hook match and return its words."""
    if not isinstance(spec, str):
        raise ValidationError(f'{where} must be a string, got {type(spec).__name__}')
    if any(char in spec for char in '\n\r\0'):
        raise ValidationError(f'{where} {spec!r} is invalid: it must be a single line')
    if is_hook_match and any(char in spec for char in '"\'\\'):
        raise ValidationError(
            f'{where} {spec!r} is invalid: quotes and backslashes are not supported in hook matches '
            '(hooks.v4 is read by a POSIX shell script at boot)'
        )
    try:
        words = split_rule(spec)
    except ValueError as exc:
        raise ValidationError(f'{where} {spec!r} is invalid: {exc}') from None
    if not words and not is_hook_match:
        raise ValidationError(f'{where} is empty')
    for word in words:
        if _forbidden_option(word, _COMMAND_LETTERS, _COMMAND_NAMES):
            raise ValidationError(
                f'{where} {spec!r} is invalid: {word!r} is an iptables command or table option, '
                'which would act outside the chain'
            )
        if is_hook_match and _forbidden_option(word, _TARGET_LETTERS, _TARGET_NAMES):
            raise ValidationError(
                f'{where} {spec!r} is invalid: {word!r} chooses a target; the hook target is set by the target option'
            )
    return tuple(words)


def _check_table(where: str, table: object) -> str:
    if table not in BUILTIN_CHAINS:
        raise ValidationError(f"{where} {table!r} is invalid: must be one of {', '.join(TABLES)}")
    return table


def parse_chains(items: list[dict]) -> list[Chain]:
    """Validate the ``chains`` option and return it as Chain objects, in the given order."""
    chains = []
    seen = {}
    for index, item in enumerate(items):
        where = f'chains[{index}]'
        table = _check_table(f'{where}.table', item.get('table') or 'filter')
        name = item.get('name')
        if not isinstance(name, str) or not CHAIN_NAME_RE.match(name):
            raise ValidationError(
                f'{where}.name {name!r} is invalid: must match {CHAIN_NAME_RE.pattern} '
                '(upper case letters, digits, "_" and "-", at most 28 characters)'
            )
        if name in RESERVED_CHAIN_NAMES:
            raise ValidationError(f'{where}.name {name!r} is invalid: it is a built-in chain or target name')
        chain = Chain(table, name)
        if chain.key in seen:
            raise ValidationError(f'{where} declares chain {chain.key} again (already declared by {seen[chain.key]})')
        seen[chain.key] = where
        rules = []
        for rule_index, rule in enumerate(item.get('rules') or []):
            _check_spec(f'{where}.rules[{rule_index}]', rule)
            rules.append(rule.strip())
        chains.append(Chain(table, name, tuple(rules)))
    return chains


def parse_hooks(items: list[dict], chains: list[Chain]) -> list[Hook]:
    """Validate the ``hooks`` option against the declared chains and return Hook objects."""
    declared = {chain.key for chain in chains}
    hooks = []
    seen = {}
    for index, item in enumerate(items):
        where = f'hooks[{index}]'
        table = _check_table(f'{where}.table', item.get('table') or 'filter')
        builtin = item.get('chain')
        if builtin not in BUILTIN_CHAINS[table]:
            raise ValidationError(
                f"{where}.chain {builtin!r} is invalid: table {table} has no built-in chain of that name "
                f"(valid: {', '.join(BUILTIN_CHAINS[table])})"
            )
        target = item.get('target')
        if f'{table}/{target}' not in declared:
            raise ValidationError(
                f'{where}.target {target!r} is invalid: no chain of that name is declared in table {table}'
            )
        match = _check_spec(f'{where}.match', item.get('match') or '', is_hook_match=True)
        hook = Hook(table, builtin, target, match)
        if hook in seen:
            raise ValidationError(f'{where} duplicates {seen[hook]} ({hook})')
        seen[hook] = where
        hooks.append(hook)
    return hooks


def _render(chains: list[Chain], hooks: list[Hook]) -> str:
    lines = [RULES_HEADER]
    for table in TABLES:
        in_table = sorted((chain for chain in chains if chain.table == table), key=lambda chain: chain.name)
        if not in_table:
            continue
        lines.append(f'*{table}')
        # All declarations first, so that a rule may jump to any of our chains of the table.
        lines.extend(f':{chain.name} - [0:0]' for chain in in_table)
        for chain in in_table:
            # With --noflush, declaring an existing user chain already flushes it in iptables 1.8.9,
            # nf_tables and legacy alike (checked in a scratch netns), but iptables-restore(8) does not
            # document it. Both accept an explicit -F of a chain declared above, so the flush does not
            # depend on that behaviour: without it every restore would append the rules once more.
            lines.append(f'-F {chain.name}')
            lines.extend(f'-A {chain.name} {rule}' for rule in chain.rules)
        lines.extend(f"-I {hook.chain} 1 {' '.join(hook.spec)}" for hook in hooks if hook.table == table)
        lines.append('COMMIT')
    return '\n'.join(lines) + '\n'


def render_rules(chains: list[Chain]) -> str:
    """Content of rules.v4: iptables-restore --noflush input defining our chains and nothing else."""
    return _render(chains, [])


def render_restore_test(chains: list[Chain], hooks: list[Hook]) -> str:
    """Input for ``iptables-restore --test``: rules.v4 plus the hooks, so their matches are checked too."""
    return _render(chains, hooks)


def render_hooks(hooks: list[Hook]) -> str:
    """Content of hooks.v4, read by the jailhost-firewall-restore script at boot."""
    return HOOKS_HEADER + '\n' + hooks_text(hooks)


def hooks_text(hooks: list[Hook]) -> str:
    return ''.join(f'{hook}\n' for hook in hooks)


def lines_text(lines: list[str] | None) -> str:
    return ''.join(f'{line}\n' for line in lines or ())


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def parse_chain_listing(output: str) -> list[str]:
    """Rules of a chain from ``iptables -S CHAIN`` output, without its ``-N``/``-P`` line."""
    return [line for line in output.splitlines() if line.startswith('-A ')]


def split_key(key: str) -> tuple[str, str]:
    """``'nat/JAILHOST-DNAT'`` -> ``('nat', 'JAILHOST-DNAT')``."""
    table, name = key.split('/', 1)
    return table, name


def load_state(text: str) -> State:
    """Parse state.json; raise StateError if it is not something this module wrote."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f'not valid JSON: {exc}') from None
    if not isinstance(data, dict) or data.get('version') != STATE_VERSION:
        raise StateError(f'not a version {STATE_VERSION} state file')
    try:
        chains = {}
        for key, lines in data.get('chains', {}).items():
            table, name = split_key(key)
            if table not in BUILTIN_CHAINS or not CHAIN_NAME_RE.match(name):
                raise StateError(f'invalid chain {key!r}')
            chains[key] = [str(line) for line in lines]
        hooks = []
        for index, item in enumerate(data.get('hooks', [])):
            # The words of a hook end up in iptables commands: check them as strictly as the arguments.
            match = _check_spec(f'hooks[{index}].match', item.get('match', ''), is_hook_match=True)
            hook = Hook(item['table'], item['chain'], item['target'], match)
            if hook.chain not in BUILTIN_CHAINS.get(hook.table, ()) or not CHAIN_NAME_RE.match(hook.target):
                raise StateError(f'invalid hook {item!r}')
            hooks.append(hook)
        rules_sha256 = data.get('rules_sha256')
    except StateError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f'malformed content: {exc}') from None
    return State(rules_sha256, chains, hooks)


def dump_state(state: State) -> str:
    data = {
        'version': STATE_VERSION,
        'rules_sha256': state.rules_sha256,
        'chains': state.chains,
        'hooks': [hook.to_dict() for hook in state.hooks],
    }
    return json.dumps(data, indent=2, sort_keys=True) + '\n'


def chain_sync_reasons(chains: list[Chain], live: dict[str, list[str] | None], state: State, rules_sha256: str) -> list[str]:
    """Why the live chains are not in sync with rules.v4; an empty list when they are.

    ``live`` maps each chain key to its ``iptables -S`` rules, or None when the chain does not exist.
    iptables prints rules canonically (``-p tcp --dport 80`` comes back as ``-p tcp -m tcp --dport 80``),
    so live rules are compared with what iptables printed right after the last apply, recorded in the
    state, never with the declared rules themselves.
    """
    reasons = []
    if state.rules_sha256 is None:
        reasons.append('no previous apply is recorded')
    elif state.rules_sha256 != rules_sha256:
        reasons.append('declared rules differ from the last applied ones')
    for chain in chains:
        lines = live.get(chain.key)
        recorded = state.chains.get(chain.key)
        if lines is None:
            reasons.append(f'chain {chain.key} is missing')
        elif recorded is None:
            if state.rules_sha256 is not None:
                reasons.append(f'chain {chain.key} exists but is not recorded in the state file')
        elif lines != recorded:
            reasons.append(f'chain {chain.key} was modified outside this module')
    return reasons


def stale_chain_keys(chains: list[Chain], state: State) -> list[str]:
    """Chains recorded in the state that are no longer declared."""
    declared = {chain.key for chain in chains}
    return sorted(key for key in state.chains if key not in declared)


def stale_hooks(hooks: list[Hook], state: State) -> list[Hook]:
    """Hooks recorded in the state that are no longer declared."""
    return [hook for hook in state.hooks if hook not in hooks]


def failing_line(text: str, message: str) -> str | None:
    """The input line an iptables-restore error message points at ("Error occurred at line: 4")."""
    found = re.search(r'\bline:? (\d+)', message)
    if not found:
        return None
    number = int(found.group(1))
    lines = text.splitlines()
    return lines[number - 1] if 1 <= number <= len(lines) else None
