# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The jailhost.jails.jail_name test: the same rule as the modules (jailsafe.valid_jail_name)."""

from __future__ import annotations

import pytest

from ansible_collections.jailhost.jails.plugins.module_utils import app_user, firejail, jail_root, jailsafe
from ansible_collections.jailhost.jails.plugins.test import jail_name as plugin


@pytest.mark.parametrize('value, valid', [
    ('web', True), ('a', True), ('a-b-9', True), ('a' * 32, True),
    ('a' * 33, False), ('Web', False), ('1web', False), ('12345', False), ('web_1', False), ('web.1', False),
    ('', False), ('web\n', False), ('../x', False), ('a/b', False), (5, False), (None, False), (['web'], False),
])
def test_jail_name(value, valid):
    assert plugin.TestModule().tests()['jail_name'](value) is valid
    assert jailsafe.valid_jail_name(value) is valid


def test_one_rule():
    assert firejail.NAME_RE is jailsafe.JAIL_NAME_RE and app_user.JAIL_RE is jailsafe.JAIL_NAME_RE
    assert jail_root.JAIL_NAME_RE is jailsafe.JAIL_NAME_RE
