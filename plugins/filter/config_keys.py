# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""jailhost.jails.config_keys: set "key value" lines of a configuration file in one pass."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: config_keys
short_description: Set C(key value) lines in the text of a configuration file
version_added: 0.1.0
description:
  - For each key, the last line that sets it or shows it commented out (C(key value) or
    C(# key value)) becomes C(key value); a key with no such line is appended.
    Every other line is kept as it is.
  - The same result as one M(ansible.builtin.lineinfile) per key with
    C(regexp='^#?\s*KEY\s'), computed on the controller, so a role writes the file with one
    M(ansible.builtin.copy) (one round trip, one backup, diff mode) instead of one task per key.
  - Used by the rootfs role for C(/etc/firejail/firejail.config).
positional: _input, settings
options:
  _input:
    description: The current text of the file.
    type: str
    required: true
  settings:
    description: Keys and their values. Keys are words without blanks; values are written as given.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Read the file
  ansible.builtin.slurp:
    src: /etc/firejail/firejail.config
  register: current

- name: Write the settings
  ansible.builtin.copy:
    dest: /etc/firejail/firejail.config
    content: "{{ current.content | b64decode | jailhost.jails.config_keys({'chroot': 'yes'}) }}"
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The new text, ending with a newline.
  type: str
"""

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def config_keys(text, settings):
    if not isinstance(text, str):
        raise AnsibleFilterError(f"config_keys: the file text must be a string, got {type(text).__name__}")
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"config_keys: settings must be a dict, got {type(settings).__name__}")
    lines = text.splitlines()
    for key, value in settings.items():
        key = str(key)
        if not KEY.match(key):
            raise AnsibleFilterError(f"config_keys: invalid key {key!r}")
        value = str(value)
        if "\n" in value:
            raise AnsibleFilterError(f"config_keys: the value of {key} spans lines")
        pattern = re.compile(r"^#?\s*" + re.escape(key) + r"\s")
        matches = [i for i, line in enumerate(lines) if pattern.match(line)]
        if matches:
            lines[matches[-1]] = f"{key} {value}"
        else:
            lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


class FilterModule:
    """jailhost.jails configuration-file filter."""

    def filters(self):
        return {"config_keys": config_keys}
