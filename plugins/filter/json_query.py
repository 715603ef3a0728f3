# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""jailhost.jails.json_query: JMESPath queries without community.general."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    import jmespath
except ImportError:  # pragma: no cover - reported at use, with the fix
    jmespath = None

DOCUMENTATION = r"""
name: json_query
short_description: Query data with a JMESPath expression
version_added: 0.1.0
description:
  - Same use as community.general.json_query, so operators can query M(jailhost.jails.sandbox_info)
    results with ansible-core and this collection alone.
  - Requires the C(jmespath) Python library on the controller.
positional: _input, expr
options:
  _input:
    description: The data to query.
    type: raw
    required: true
  expr:
    description: The JMESPath expression.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Names of the jails that are not confined
  ansible.builtin.debug:
    msg: "{{ jails.jails | jailhost.jails.json_query('[?!confined].name') }}"
"""

RETURN = r"""
_value:
  description: The result of the query.
  type: raw
"""


def json_query(data, expr: str):
    if jmespath is None:
        raise AnsibleFilterError("json_query needs the Python library 'jmespath' on the controller "
                                 "(pip install jmespath)")
    try:
        return jmespath.search(expr, data)
    except jmespath.exceptions.JMESPathError as exc:
        raise AnsibleFilterError(f"json_query: invalid expression {expr!r}: {exc}") from exc


class FilterModule:
    """jailhost.jails JMESPath filter."""

    def filters(self):
        return {"json_query": json_query}
