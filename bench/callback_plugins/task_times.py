# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profiling aid for the benchmarks (not a part of the collection): wall time per task file and
the slowest tasks of a playbook run, printed after the recap.

    ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_times \\
        ansible-playbook ...

ansible.posix's profile_tasks does much the same, but the collection depends on ansible-core only.
A task's time runs from its start to the start of the next one (one host: the task's own time).
"""

from __future__ import annotations

import collections
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_times
type: aggregate
short_description: Wall time per task file and the slowest tasks of a run
description:
  - Prints, after the recap, the time spent per task file and the 25 slowest tasks.
requirements:
  - enable in the configuration (ANSIBLE_CALLBACKS_ENABLED=task_times)
"""

SLOWEST = 25


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[float, str, str]] = []
        self.current: tuple[str, str, float] | None = None

    def _close(self) -> None:
        if self.current:
            name, path, started = self.current
            self.rows.append((time.monotonic() - started, name, path))
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        path = (task.get_path() or "").split("ansible_collections/")[-1]
        self.current = (task.get_name(), path, time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        by_file: collections.Counter = collections.Counter()
        for seconds, _name, path in self.rows:
            by_file[path.rsplit(":", 1)[0]] += seconds
        total = sum(r[0] for r in self.rows)
        lines = [f"task times: {total:.1f} s over {len(self.rows)} task results", "per task file:"]
        lines += [f"{seconds:8.2f} s  {path}" for path, seconds in by_file.most_common()]
        lines.append(f"slowest {SLOWEST} tasks:")
        lines += [f"{seconds:8.2f} s  {name}  [{path}]" for seconds, name, path in sorted(self.rows, reverse=True)[:SLOWEST]]
        self._display.display("\n".join(lines))
