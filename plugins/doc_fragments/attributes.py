# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The attributes every module of jailhost.jails documents (extends_documentation_fragment:
jailhost.jails.attributes). A module states only what differs (support, details): its own keys
win over the fragment's."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """Shared DOCUMENTATION of the modules' attributes."""

    # Standard: a module that changes the target, in check mode and diff mode, on POSIX hosts.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    # For modules that only read: jailhost.jails.attributes.info_module, listed before
    # jailhost.jails.attributes (the keys of the fragment merged first win).
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads.
  diff_mode:
    support: none
"""
