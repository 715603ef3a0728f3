#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables_chains
short_description: Manage our own iptables chains and the jumps into them, leaving other rules alone
version_added: 0.1.0
description:
  - Manages a set of user-defined IPv4 iptables chains owned by the caller, and the jump rules
    (I(hooks)) from built-in chains into them.
  - Rules of other tools (Docker, ufw, fail2ban...) are never flushed nor reordered. The declared
    chains are replaced as a whole with a single C(iptables-restore --noflush) call, which is atomic
    per table; a missing hook is inserted at the top of its built-in chain, an existing hook is left
    where it is.
  - All arguments are validated, and the rules checked with C(iptables-restore --test), before
    anything is changed.
  - The declared state is persisted in O(persist_dir) so that a boot script
    (C(jailhost-firewall-restore) of the C(bridge) role) can restore it. The module records there
    what iptables printed right after applying, which is how later runs detect a chain edited by hand.
  - Chains and hooks created by an earlier run that are no longer declared are removed.
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  diff_mode:
    details:
      - Shows the change of C(rules.v4), of the hooks, and of each chain that was modified by hand.
  platform:
    support: N/A
requirements:
  - iptables (C(iptables) and C(iptables-restore)), nf_tables or legacy variant, on the target.
options:
  chains:
    description:
      - Our chains, each replaced as a whole by its O(chains[].rules).
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: Table of the chain.
        type: str
        choices: [filter, nat, mangle, raw]
        default: filter
      name:
        description:
          - Name of the chain. Must match C(^[A-Z][A-Z0-9_-]{0,27}$) and not be a built-in chain name.
          - A (O(chains[].table), O(chains[].name)) pair may be declared only once.
        type: str
        required: true
      rules:
        description:
          - Rule specifications, in order, without the leading C(-A CHAIN),
            for example C(-i br0 -o br0 -j ACCEPT).
          - Commands and the table option (C(-A), C(-I), C(-D), C(-F), C(-X), C(-P), C(-t)...) are refused.
        type: list
        elements: str
        default: []
  hooks:
    description:
      - Jumps from built-in chains into our chains.
      - A hook missing live is inserted at position 1 of its built-in chain (missing hooks of one
        built-in chain are inserted so that they keep the order given here); a hook that exists
        anywhere in the chain is left in place.
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: Table of the built-in chain.
        type: str
        choices: [filter, nat, mangle, raw]
        default: filter
      chain:
        description: Built-in chain to jump from; it must exist in O(hooks[].table).
        type: str
        required: true
        choices: [INPUT, FORWARD, OUTPUT, PREROUTING, POSTROUTING]
      target:
        description: Chain to jump to; it must be declared in O(chains) with the same table.
        type: str
        required: true
      match:
        description:
          - Rule specification placed before C(-j TARGET), for example C(-m addrtype --dst-type LOCAL).
          - Quotes, backslashes, C(-j)/C(-g) and iptables commands are refused.
        type: str
        default: ''
  persist_dir:
    description:
      - Directory of the persisted files, created mode C(0755) if missing.
      - C(rules.v4) is the C(iptables-restore --noflush) input defining our chains (mode C(0644)).
      - C(hooks.v4) lists the hooks, one per line as C(TABLE CHAIN [MATCH...] -j TARGET) (mode C(0644)).
      - C(state.json) is the bookkeeping of the last apply (mode C(0600)).
    type: path
    default: /etc/jailhost/firewall
  state:
    description:
      - V(present) makes the chains and hooks as declared.
      - V(absent) deletes the hooks recorded in C(state.json) and those given, then flushes and deletes
        the chains recorded and those given, and removes the three files. Nothing else is touched.
    type: str
    choices: [present, absent]
    default: present
notes:
  - IPv4 only.
  - Applying replaces every declared chain (counters are reset) whenever one of them is out of sync.
  - C(iptables-restore --test) checks the syntax only. An error the kernel reports at apply time
    (for example C(-j DNAT) in the C(filter) table) fails the task, possibly after the tables listed
    before the faulty one in C(rules.v4) were applied; the next run applies them again.
seealso:
  - module: ansible.builtin.iptables
"""

EXAMPLES = r"""
- name: Forward and NAT for the jails bridge
  jailhost.jails.iptables_chains:
    chains:
      - name: JAILHOST-FWD
        rules:
          - -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
          - -o br0 -d 10.77.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT
          - -i br0 -j ACCEPT
          - -o br0 -j DROP
      - table: nat
        name: JAILHOST-DNAT
        rules:
          - -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.2:80
      - table: nat
        name: JAILHOST-POST
        rules:
          - -s 10.77.0.0/24 ! -o br0 -j MASQUERADE
    hooks:
      - chain: FORWARD
        target: JAILHOST-FWD
      - table: nat
        chain: PREROUTING
        match: -m addrtype --dst-type LOCAL
        target: JAILHOST-DNAT
      - table: nat
        chain: OUTPUT
        match: "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL"
        target: JAILHOST-DNAT
      - table: nat
        chain: POSTROUTING
        target: JAILHOST-POST

- name: Remove every chain and hook managed so far, and the persisted files
  jailhost.jails.iptables_chains:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) changed.
  returned: always
  type: bool
  sample: true
reasons:
  description:
    - Why the task changed, one human-readable line per change; empty when nothing changed.
    - In check mode, what would be done.
  returned: always
  type: list
  elements: str
  sample:
    - chain nat/JAILHOST-DNAT is missing
    - hook filter FORWARD -j JAILHOST-FWD inserted
    - rules file changed
rules_file:
  description: Path of the persisted C(iptables-restore) input.
  returned: always
  type: str
  sample: /etc/jailhost/firewall/rules.v4
hooks_file:
  description: Path of the persisted hooks list.
  returned: always
  type: str
  sample: /etc/jailhost/firewall/hooks.v4
chains:
  description:
    - With O(state=present), the declared chains as C(table/name).
    - With O(state=absent), the chains deleted (or already absent), as C(table/name).
  returned: always
  type: list
  elements: str
  sample: [filter/JAILHOST-FWD, nat/JAILHOST-DNAT]
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.jailhost.jails.plugins.module_utils.netfilter import (
    HOOK_CHAINS,
    TABLES,
    Hook,
    State,
    StateError,
    ValidationError,
    chain_sync_reasons,
    dump_state,
    failing_line,
    hooks_text,
    lines_text,
    load_state,
    parse_chain_listing,
    parse_chains,
    parse_hooks,
    render_hooks,
    render_restore_test,
    render_rules,
    sha256_hex,
    split_key,
    stale_chain_keys,
    stale_hooks,
)

MISSING_IPTABLES = 'iptables is not installed on the target; install the iptables package'


class Iptables:
    """The iptables commands run by the module; every failure ends the module with iptables' message."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.iptables = module.get_bin_path('iptables')
        self.restore_bin = module.get_bin_path('iptables-restore')
        if not self.iptables or not self.restore_bin:
            module.fail_json(msg=MISSING_IPTABLES)

    def _run(self, args: list[str], data: str | None = None, check: bool = True) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(args, data=data, binary_data=True)
        if check and rc != 0:
            self.module.fail_json(msg=f"{' '.join(args)} failed: {(err or out).strip()}", rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def _restore(self, text: str, *options: str) -> None:
        args = [self.restore_bin, '-w', '--noflush', *options]
        rc, out, err = self._run(args, data=text, check=False)
        if rc != 0:
            # Drop iptables-restore's "Try `iptables-restore -h'..." line: no help for a module user.
            message = ' '.join(line for line in (err or out).strip().splitlines() if not line.startswith('Try `'))
            line = failing_line(text, message)
            if line is not None:
                message += f' (the line is: {line})'
            self.module.fail_json(msg=f"{' '.join(args)} failed: {message}", rc=rc, stdout=out, stderr=err, input=text)

    def test_restore(self, text: str) -> None:
        self._restore(text, '--test')

    def restore(self, text: str) -> None:
        self._restore(text)

    def chain_rules(self, key: str) -> list[str] | None:
        """``-A`` lines of a chain as ``iptables -S`` prints them, or None if the chain does not exist."""
        table, name = split_key(key)
        rc, out, err = self._run([self.iptables, '-w', '-t', table, '-S', name], check=False)
        if rc == 1:
            return None
        if rc != 0:
            self.module.fail_json(msg=f'cannot list chain {key}: {err.strip()}', rc=rc, stdout=out, stderr=err)
        return parse_chain_listing(out)

    def _hook_command(self, hook: Hook, *command: str) -> list[str]:
        return [self.iptables, '-w', '-t', hook.table, *command, *hook.spec]

    def hook_exists(self, hook: Hook) -> bool:
        # -C also fails when the target chain does not exist yet: the hook is then missing too.
        rc, _out, _err = self._run(self._hook_command(hook, '-C', hook.chain), check=False)
        return rc == 0

    def insert_hook(self, hook: Hook) -> None:
        self._run(self._hook_command(hook, '-I', hook.chain, '1'))

    def delete_hook(self, hook: Hook) -> None:
        """Delete every copy of the hook."""
        while self.hook_exists(hook):
            self._run(self._hook_command(hook, '-D', hook.chain))

    def delete_chains(self, keys: list[str]) -> None:
        """Flush all the chains first, so that jumps between them do not prevent their deletion."""
        for key in keys:
            table, name = split_key(key)
            self._run([self.iptables, '-w', '-t', table, '-F', name])
        for key in keys:
            table, name = split_key(key)
            rc, out, err = self._run([self.iptables, '-w', '-t', table, '-X', name], check=False)
            if rc != 0:
                self.module.fail_json(
                    msg=f'cannot delete chain {key}: {err.strip()} (is it still the target of a rule '
                    'this module does not manage?)',
                    rc=rc, stdout=out, stderr=err,
                )


class PersistedFiles:
    """rules.v4, hooks.v4 and state.json in persist_dir."""

    def __init__(self, module: AnsibleModule, directory: str):
        self.module = module
        self.directory = directory
        self.rules = os.path.join(directory, 'rules.v4')
        self.hooks = os.path.join(directory, 'hooks.v4')
        self.state = os.path.join(directory, 'state.json')

    @staticmethod
    def read(path: str) -> str | None:
        try:
            with open(path, encoding='utf-8') as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def read_state(self) -> State:
        text = self.read(self.state)
        if text is None:
            return State()
        try:
            return load_state(text)
        except StateError as exc:
            self.module.warn(
                f'ignoring {self.state}: {exc}; chains and hooks removed from the task since the last '
                'run cannot be cleaned up'
            )
            return State()

    def write(self, path: str, text: str, mode: int) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o755)
            os.chmod(self.directory, 0o755)  # makedirs applies the umask
        fd, tmp_path = tempfile.mkstemp(dir=self.directory, prefix=f'.{os.path.basename(path)}.')
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(text)
            os.chmod(tmp_path, mode)
            self.module.atomic_move(tmp_path, path, keep_dest_attrs=False)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        # atomic_move gives a newly created file the umask's mode.
        os.chmod(path, mode)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def file_reason(kind: str, before: str | None) -> str:
    return f'{kind} file created' if before is None else f'{kind} file changed'


def ensure_present(module, iptables, files, chains, hooks, state):
    rules = render_rules(chains)
    rules_sha256 = sha256_hex(rules)
    iptables.test_restore(render_restore_test(chains, hooks))

    live = {chain.key: iptables.chain_rules(chain.key) for chain in chains}
    chain_reasons = chain_sync_reasons(chains, live, state, rules_sha256)
    old_hooks = [hook for hook in stale_hooks(hooks, state) if iptables.hook_exists(hook)]
    present_hooks = [hook for hook in hooks if iptables.hook_exists(hook)]
    missing_hooks = [hook for hook in hooks if hook not in present_hooks]
    old_chains = {}
    for key in stale_chain_keys(chains, state):
        lines = iptables.chain_rules(key)
        if lines is not None:
            old_chains[key] = lines
    hooks_file = render_hooks(hooks)
    before_rules, before_hooks_file = files.read(files.rules), files.read(files.hooks)

    reasons = list(chain_reasons)
    reasons += [f'hook {hook} removed' for hook in old_hooks]
    reasons += [f'hook {hook} inserted' for hook in missing_hooks]
    reasons += [f'chain {key} removed (no longer declared)' for key in old_chains]
    if before_rules != rules:
        reasons.append(file_reason('rules', before_rules))
    if before_hooks_file != hooks_file:
        reasons.append(file_reason('hooks', before_hooks_file))

    diff = []
    if module._diff:
        if before_rules != rules:
            diff.append({'before_header': files.rules, 'after_header': files.rules,
                         'before': before_rules or '', 'after': rules})
        for chain in chains:
            recorded = state.chains.get(chain.key)
            # What iptables printed after the last apply is the expected text only while rules.v4
            # is unchanged; otherwise the rules.v4 diff above tells what changes.
            if state.rules_sha256 == rules_sha256 and recorded is not None and live[chain.key] != recorded:
                diff.append({'before_header': f'{chain.key} (live)', 'after_header': f'{chain.key} (as last applied)',
                             'before': lines_text(live[chain.key]), 'after': lines_text(recorded)})
        for key, lines in old_chains.items():
            diff.append({'before_header': f'{key} (live)', 'after_header': f'{key} (deleted)',
                         'before': lines_text(lines), 'after': ''})
        if old_hooks or missing_hooks:
            # Live hooks in the order of the previous run, so the diff reads like a change of hooks.v4.
            live_hooks = [hook for hook in state.hooks if hook in old_hooks or hook in present_hooks]
            live_hooks += [hook for hook in present_hooks if hook not in live_hooks]
            diff.append({'before_header': 'hooks (live)', 'after_header': 'hooks',
                         'before': hooks_text(live_hooks), 'after': hooks_text(hooks)})

    if not module.check_mode:
        if chain_reasons:
            iptables.restore(rules)
            live = {chain.key: iptables.chain_rules(chain.key) for chain in chains}
        for hook in old_hooks:
            iptables.delete_hook(hook)
        # Each insertion goes to position 1: insert bottom-up to keep the declared order.
        for hook in reversed(missing_hooks):
            iptables.insert_hook(hook)
        iptables.delete_chains(list(old_chains))

    # In check mode, live may still lack chains; that comes with chain_reasons, so changed is right.
    new_state = dump_state(State(rules_sha256, {key: lines or [] for key, lines in live.items()}, list(hooks)))
    before_state = files.read(files.state)
    if before_state != new_state and not reasons:
        reasons.append('state file changed')

    if not module.check_mode:
        if before_rules != rules:
            files.write(files.rules, rules, 0o644)
        if before_hooks_file != hooks_file:
            files.write(files.hooks, hooks_file, 0o644)
        if before_state != new_state:
            files.write(files.state, new_state, 0o600)

    return dict(changed=bool(reasons), reasons=reasons, chains=[chain.key for chain in chains], diff=diff)


def ensure_absent(module, iptables, files, chains, hooks, state):
    keys = list(dict.fromkeys([*state.chains, *(chain.key for chain in chains)]))
    candidates = list(dict.fromkeys([*state.hooks, *hooks]))
    live_hooks = [hook for hook in candidates if iptables.hook_exists(hook)]
    live_chains = {}
    for key in keys:
        lines = iptables.chain_rules(key)
        if lines is not None:
            live_chains[key] = lines
    before_rules = files.read(files.rules)
    existing_files = [path for path in (files.rules, files.hooks, files.state) if os.path.exists(path)]

    reasons = [f'hook {hook} removed' for hook in live_hooks]
    reasons += [f'chain {key} removed' for key in live_chains]
    reasons += [f'file {path} removed' for path in existing_files]

    diff = []
    if module._diff:
        if before_rules is not None:
            diff.append({'before_header': files.rules, 'after_header': files.rules, 'before': before_rules, 'after': ''})
        for key, lines in live_chains.items():
            diff.append({'before_header': f'{key} (live)', 'after_header': f'{key} (deleted)',
                         'before': lines_text(lines), 'after': ''})
        if live_hooks:
            diff.append({'before_header': 'hooks (live)', 'after_header': 'hooks',
                         'before': hooks_text(live_hooks), 'after': ''})

    if not module.check_mode:
        for hook in live_hooks:
            iptables.delete_hook(hook)
        iptables.delete_chains(list(live_chains))
        for path in existing_files:
            files.remove(path)

    return dict(changed=bool(reasons), reasons=reasons, chains=keys, diff=diff)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            chains=dict(type='list', elements='dict', default=[], options=dict(
                table=dict(type='str', choices=list(TABLES), default='filter'),
                name=dict(type='str', required=True),
                rules=dict(type='list', elements='str', default=[]),
            )),
            hooks=dict(type='list', elements='dict', default=[], options=dict(
                table=dict(type='str', choices=list(TABLES), default='filter'),
                chain=dict(type='str', required=True, choices=list(HOOK_CHAINS)),
                target=dict(type='str', required=True),
                match=dict(type='str', default=''),
            )),
            persist_dir=dict(type='path', default='/etc/jailhost/firewall'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )

    try:
        chains = parse_chains(module.params['chains'])
        hooks = parse_hooks(module.params['hooks'], chains)
    except ValidationError as exc:
        module.fail_json(msg=str(exc))

    iptables = Iptables(module)
    files = PersistedFiles(module, module.params['persist_dir'])
    state = files.read_state()
    ensure = ensure_present if module.params['state'] == 'present' else ensure_absent
    result = ensure(module, iptables, files, chains, hooks, state)
    if not result['diff']:
        del result['diff']
    module.exit_json(rules_file=files.rules, hooks_file=files.hooks, **result)


if __name__ == '__main__':
    main()
