"""Helpers of the suites that look at an Apache jail's processes (apache, escape, multitenant)."""

from __future__ import annotations


def apache_workers(host, parent: int) -> list[int]:
    """The worker processes among the children of an Apache parent (host PIDs). The parent also
    starts the rotatelogs processes of its piped logs (root, in the jail): they are not workers."""
    lines = host.run(f"for p in $(cat /proc/{parent}/task/*/children); do "
                     f"printf '%s %s\\n' $p \"$(cat /proc/$p/comm 2>/dev/null)\"; done").stdout.splitlines()
    return [int(line.split()[0]) for line in lines if line.split()[1:] and line.split()[1] != "rotatelogs"]


def rotatelogs_pids(host, parent: int) -> list[int]:
    """The rotatelogs processes an Apache parent started for its piped logs (host PIDs)."""
    lines = host.run(f"for p in $(cat /proc/{parent}/task/*/children); do "
                     f"printf '%s %s\\n' $p \"$(cat /proc/$p/comm 2>/dev/null)\"; done").stdout.splitlines()
    return [int(line.split()[0]) for line in lines if line.split()[1:] == ["rotatelogs"]]
