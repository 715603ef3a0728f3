# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""jailhost.jails.jail_name: the collection's one jail name rule (jailsafe.valid_jail_name) as a
Jinja2 test, for the roles' validation."""

from __future__ import annotations

from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import valid_jail_name

DOCUMENTATION = r"""
name: jail_name
short_description: Whether a value is a valid jail name
version_added: 0.1.0
description:
  - True when the value is a string that the collection accepts as the name of a jail, the rule
    shared by the M(jailhost.jails.sandbox), M(jailhost.jails.jail_root) and
    M(jailhost.jails.app_user) modules and the roles.
  - A lower-case letter, then lower-case letters, digits and C(-), at most 32 characters in all.
  - The name becomes the unit C(jailhost-NAME), the firejail C(--name) and a directory under the
    jails directory. firejail takes an all-digit name for a PID, so a name starts with a letter;
    no C(/), C(.), C(..), space or upper case can make it a path of its own.
  - Anything that is not a string (a number, a list, V(null)) is not a jail name.
positional: _input
options:
  _input:
    description: The value to test.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse an invalid jail name before anything changes
  ansible.builtin.assert:
    that: remove_jail_name is jailhost.jails.jail_name
    fail_msg: "remove_jail_name {{ remove_jail_name }} is not a jail name"

- name: Names of the apps that are not valid jail names
  ansible.builtin.debug:
    msg: "{{ apps_list | map(attribute='name') | reject('jailhost.jails.jail_name') | list }}"
"""

RETURN = r"""
_value:
  description: Whether the value is a valid jail name.
  type: bool
"""


def jail_name(value) -> bool:
    return valid_jail_name(value)


class TestModule:
    """jailhost.jails jail name test."""

    def tests(self):
        return {"jail_name": jail_name}
