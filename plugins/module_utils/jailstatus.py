# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The status of the jails, read-only: what runs (/run/firejail, /proc), how it is confined
(/proc), what systemd says of each jail's unit, and the ports the bridge role publishes to it.

One implementation for two users: the M(jailhost.jails.sandbox_info) module imports it (through
``firejail.py``, which re-exports the state functions), and the rootfs role installs a copy on
the host (/usr/local/libexec/jailhost/jailstatus.py) that the command ``jailhost-status`` runs as
``python3 -I``: a table for humans, ``--json`` for machines, ``--prometheus FILE`` for the node
exporter's textfile collector. The file therefore uses the standard library only.

Jails are hostile (docs/security.md): nothing here opens a path inside a jail root, follows a
link or runs a program a jail can change. It reads the host's /proc (files and ``readlink`` of
the namespace links, never following one), /run/firejail and /etc/jailhost (root's), and runs the
host's own ``/usr/bin/systemctl show`` with a fixed argument list and environment. A jail controls
the names of its processes (``comm``): they are escaped in the table and in the Prometheus file.
Values the host cannot give (a unit's memory, tasks or CPU time without cgroup accounting) are
``None``, never estimated.
"""

from __future__ import annotations

import json
import os
import sys
import time

RUN_DIR = '/run/firejail'
UNIT_PREFIX = 'jailhost-'
# One JSON file per jail declared with the sandbox module: name, ip, bridge, root, unit, profile.
META_DIR = '/etc/jailhost/sandboxes'
# The bridge role's persisted firewall (bridge_firewall_dir): rules.v4 defines only our chains.
FIREWALL_DIR = '/etc/jailhost/firewall'
SYSTEMCTL = '/usr/bin/systemctl'


# ---------------------------------------------------------------------------------------------
# State

STATUS_FIELDS = {
    'Name': 'comm', 'Seccomp': 'seccomp', 'Seccomp_filters': 'seccomp_filters',
    'NoNewPrivs': 'no_new_privs', 'CapEff': 'cap_eff', 'CapPrm': 'cap_prm', 'CapBnd': 'cap_bnd',
    'Uid': 'uid',
}
INT_FIELDS = frozenset(('seccomp', 'seccomp_filters', 'no_new_privs'))
NAMESPACES = ('pid', 'net', 'mnt', 'ipc')


def _read(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return None


def _pid_file(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def read_status(proc: str, pid: int) -> dict | None:
    """Confinement fields of /proc/PID/status; None if the process is gone."""
    text = _read(f'{proc}/{pid}/status')
    if text is None:
        return None
    result = {'pid': pid}
    for line in text.splitlines():
        key, dummy, value = line.partition(':')
        field = STATUS_FIELDS.get(key)
        if field is None:
            continue
        value = value.strip()
        if field in INT_FIELDS:
            result[field] = int(value) if value.lstrip('-').isdigit() else None
        elif field == 'uid':
            result[field] = int(value.split()[0]) if value.split() else None
        else:
            result[field] = value
    return result


def capabilities_within_bounds(status: dict) -> bool:
    """No effective or permitted capability outside the bounding set. A capability dropped from
    the bounding set only stops the process from gaining it again: one it already holds stays
    usable unless the effective and permitted sets are cleared too."""
    try:
        bounding = int(status['cap_bnd'], 16)
        held = [int(status[key], 16) for key in ('cap_eff', 'cap_prm') if status.get(key) is not None]
    except (KeyError, TypeError, ValueError):
        return False
    return all(value & ~bounding == 0 for value in held)


def unconfined_reasons(entry: dict) -> list[str]:
    """Why a sandbox entry of parse_state() is not 'confined', one line per process."""
    reasons = []
    for p in entry.get('processes', []):
        problems = []
        if p.get('seccomp') != 2:
            problems.append(f"Seccomp {p.get('seccomp')}")
        if p.get('no_new_privs') != 1:
            problems.append(f"NoNewPrivs {p.get('no_new_privs')}")
        if p.get('seccomp_filters_added') is not None and p['seccomp_filters_added'] <= 0:
            problems.append('no seccomp filter of its own')
        shared = [ns for ns, differ in p.get('namespaces_differ', {}).items() if not differ]
        if shared:
            problems.append('shares the host namespaces ' + ','.join(shared))
        if not capabilities_within_bounds(p):
            problems.append(f"capabilities outside the bounding set (CapEff {p.get('cap_eff')}, "
                            f"CapPrm {p.get('cap_prm')}, CapBnd {p.get('cap_bnd')})")
        if problems:
            reasons.append(f"pid {p.get('pid')} ({p.get('comm')}, uid {p.get('uid')}): " + '; '.join(problems))
    if not entry.get('processes'):
        reasons.append('no process in the sandbox')
    return reasons


def _namespaces(proc: str, pid: int) -> dict:
    result = {}
    for ns in NAMESPACES:
        try:
            result[ns] = os.readlink(f'{proc}/{pid}/ns/{ns}')
        except OSError:
            result[ns] = None
    return result


def children(proc: str, pid: int) -> list[int]:
    """Direct children of PID, from /proc/PID/task/*/children (all threads)."""
    found = []
    try:
        tasks = sorted(os.listdir(f'{proc}/{pid}/task'))
    except OSError:
        return found
    for tid in tasks:
        text = _read(f'{proc}/{pid}/task/{tid}/children') or ''
        found += [int(p) for p in text.split() if p.isdigit()]
    return sorted(set(found))


def descendants(proc: str, pid: int) -> list[int]:
    result, todo = [], children(proc, pid)
    while todo:
        current = todo.pop(0)
        if current in result:
            continue
        result.append(current)
        todo += children(proc, current)
    return result


def parse_netmap(text: str) -> list[dict]:
    """Lines 'bridge:ifname' (ifname is the interface inside the jail, e.g. eth0)."""
    result = []
    for line in (text or '').splitlines():
        bridge, sep, ifname = line.strip().partition(':')
        if sep and bridge:
            result.append({'bridge': bridge, 'ifname': ifname})
    return result


def parse_state(run_dir: str = RUN_DIR, proc: str = '/proc') -> list[dict]:
    """Running firejail sandboxes, read from run_dir and proc without parsing `firejail --list`.

    run_dir/name/<PID> holds the sandbox name, run_dir/sandbox/<PID> the host PID of the
    sandbox child (PID 1 of the jail's PID namespace), run_dir/network/<PID>-netmap the
    'bridge:ifname' lines; PID is the firejail parent. Entries whose parent is gone (left behind
    by a SIGKILLed firejail, or by a start that failed) are skipped. The daemon is every child
    of the sandbox child; 'processes' are all its descendants with their confinement fields.
    'confined' is True when every process has Seccomp 2 with filters added on top of PID 1's,
    NoNewPrivs 1, pid/net/mnt/ipc namespaces other than PID 1's, and no effective or permitted
    capability outside its bounding set (firejail 0.9.74 on Debian 13 was seen to narrow only the
    bounding set of caps.keep and leave root's other capabilities effective: see
    capabilities_within_bounds). Reading sandbox/ needs root.
    """
    pids = set()
    for sub in ('name', 'sandbox'):
        try:
            pids.update(int(e) for e in os.listdir(f'{run_dir}/{sub}') if e.isdigit())
        except OSError:
            pass
    init_ns = _namespaces(proc, 1)
    init_status = read_status(proc, 1) or {}
    init_filters = init_status.get('seccomp_filters') or 0
    sandboxes = []
    for pid in sorted(pids):
        # A SIGKILLed firejail leaves its files behind (name/ is cleaned at the next firejail
        # start, sandbox/ of failed starts is not): the parent must be a live firejail process.
        comm = _read(f'{proc}/{pid}/comm')
        if comm is None or comm.strip() != 'firejail':
            continue
        name_text = _read(f'{run_dir}/name/{pid}')
        child = _pid_file(f'{run_dir}/sandbox/{pid}')
        profile_text = _read(f'{run_dir}/profile/{pid}')
        entry = {
            'name': name_text.strip() if name_text is not None else None,
            'pid': pid,
            'child_pid': child,
            'profile': profile_text.strip() if profile_text else None,
            'network': parse_netmap(_read(f'{run_dir}/network/{pid}-netmap')),
            'daemon_pids': [],
            'processes': [],
        }
        if child is not None and os.path.isdir(f'{proc}/{child}'):
            entry['daemon_pids'] = children(proc, child)
            for member in descendants(proc, child):
                status = read_status(proc, member)
                if status is None:
                    continue
                ns = _namespaces(proc, member)
                # PID 1 of a container may already run under seccomp (systemd-nspawn does):
                # count the filters the sandbox added on top of PID 1's.
                filters = status.get('seccomp_filters')
                status['seccomp_filters_added'] = (filters - init_filters
                                                   if filters is not None else None)
                status['namespaces_differ'] = {
                    key: ns[key] is not None and init_ns[key] is not None and ns[key] != init_ns[key]
                    for key in NAMESPACES
                }
                entry['processes'].append(status)
        entry['confined'] = bool(entry['processes']) and all(
            p.get('seccomp') == 2 and p.get('no_new_privs') == 1
            and (p.get('seccomp_filters_added') is None or p['seccomp_filters_added'] > 0)
            and all(p['namespaces_differ'].values())
            and capabilities_within_bounds(p)
            for p in entry['processes'])
        sandboxes.append(entry)
    return sandboxes


def find_sandbox(state: list[dict], name: str) -> list[dict]:
    """Sandboxes of that exact name (more than one means a duplicate was started)."""
    return [s for s in state if s['name'] == name]


def declared_jails(meta_dir: str = META_DIR) -> dict:
    """The jails declared with the sandbox module, by name, from their metadata files."""
    jails = {}
    try:
        entries = sorted(os.listdir(meta_dir))
    except OSError:
        return jails
    for entry in entries:
        if entry.endswith('.json'):
            with open(os.path.join(meta_dir, entry), encoding='utf-8') as handle:
                meta = json.load(handle)
            jails[meta['name']] = meta
    return jails


# ---------------------------------------------------------------------------------------------
# Units (systemctl show), published ports (rules.v4), confinement summary

# Properties of `systemctl show --timestamp=unix`; Id maps each block to its unit.
SHOW_PROPERTIES = (
    'Id', 'LoadState', 'ActiveState', 'SubState', 'UnitFileState', 'MainPID', 'NRestarts',
    'ActiveEnterTimestamp', 'ActiveExitTimestamp', 'InactiveEnterTimestamp', 'InactiveExitTimestamp',
    'MemoryCurrent', 'MemoryMax', 'TasksCurrent', 'TasksMax', 'CPUUsageNSec',
)
# systemd prints an unavailable counter as "[not set]" (older versions: the uint64 maximum).
UINT64_MAX = 2 ** 64 - 1
# Which timestamp is the "since" of each active state (as `systemctl status` shows it).
SINCE_PROPERTY = {
    'active': 'ActiveEnterTimestamp', 'reloading': 'ActiveEnterTimestamp',
    'inactive': 'InactiveEnterTimestamp', 'failed': 'InactiveEnterTimestamp',
    'activating': 'InactiveExitTimestamp', 'deactivating': 'ActiveExitTimestamp',
}
# Capability numbers of linux/capability.h, for the names in the summary.
CAP_NAMES = (
    'chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid',
    'setpcap', 'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw',
    'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct',
    'sys_admin', 'sys_boot', 'sys_nice', 'sys_resource', 'sys_time', 'sys_tty_config', 'mknod',
    'lease', 'audit_write', 'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog',
    'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf', 'checkpoint_restore',
)


def unit_name(name: str) -> str:
    return f'{UNIT_PREFIX}{name}.service'


def parse_systemctl_show(text: str) -> dict:
    """Blocks of `systemctl show -p ... UNIT...` (blank-line separated) by their Id."""
    units, block = {}, {}
    for line in (text or '').splitlines() + ['']:
        if not line.strip():
            if block.get('Id'):
                units[block['Id']] = block
            block = {}
            continue
        key, sep, value = line.partition('=')
        if sep:
            block[key] = value
    return units


def show_uint(value) -> int | None:
    """A counter or limit of `systemctl show`: None when unset, unknown or infinite."""
    value = (value or '').strip()
    if not value.isdigit():
        return None
    number = int(value)
    return None if number >= UINT64_MAX else number


def show_timestamp(value) -> int | None:
    """`--timestamp=unix` prints '@SECONDS'; empty or 'n/a' when the event never happened."""
    value = (value or '').strip()
    if value.startswith('@') and value[1:].isdigit() and int(value[1:]) > 0:
        return int(value[1:])
    return None


def _usage(current, limit) -> dict:
    """{'current', 'max', 'percent'}: current None = unknown (no accounting), max None = no limit."""
    current, limit = show_uint(current), show_uint(limit)
    percent = round(100.0 * current / limit, 1) if current is not None and limit else None
    return {'current': current, 'max': limit, 'percent': percent}


def unit_status(name: str, show: dict | None) -> dict:
    """The unit of a jail as systemd reports it; every field None that systemd did not give."""
    show = show or {}
    active = show.get('ActiveState') or None
    cpu_ns = show_uint(show.get('CPUUsageNSec'))
    restarts = show.get('NRestarts', '')
    return {
        'name': name,
        'loaded': show.get('LoadState') or None,
        'active': active,
        'sub': show.get('SubState') or None,
        'enabled': show.get('UnitFileState') or None,
        'main_pid': show_uint(show.get('MainPID')) or None,
        'restarts': int(restarts) if restarts.isdigit() else None,
        'since': show_timestamp(show.get(SINCE_PROPERTY.get(active, ''), '')),
        'active_since': show_timestamp(show.get('ActiveEnterTimestamp')),
        'memory': _usage(show.get('MemoryCurrent'), show.get('MemoryMax')),
        'tasks': _usage(show.get('TasksCurrent'), show.get('TasksMax')),
        'cpu_seconds': cpu_ns / 1e9 if cpu_ns is not None else None,
    }


def parse_published_ports(rules: str | None) -> list[dict]:
    """The DNAT rules of rules.v4 (the bridge role's published ports, bridge_published_ports):
    [{'proto', 'public_address' (None: every local address), 'public_port', 'jail_ip', 'jail_port'}].
    rules.v4 defines only the collection's own chains, so every DNAT rule of its nat table is one."""
    ports, table = [], None
    for line in (rules or '').splitlines():
        line = line.strip()
        if line.startswith('*'):
            table = line[1:]
            continue
        words = line.split()
        if table != 'nat' or len(words) < 2 or words[0] != '-A' or 'DNAT' not in words:
            continue
        option = {}
        for index, word in enumerate(words[:-1]):
            if word in ('-d', '-p', '--dport', '--to-destination'):
                option[word] = words[index + 1]
        target = option.get('--to-destination', '')
        jail_ip, sep, jail_port = target.rpartition(':')
        dport = option.get('--dport', '')
        if not sep or not jail_port.isdigit() or not dport.isdigit():
            continue
        address = option.get('-d')
        ports.append({
            'proto': option.get('-p'),
            'public_address': address[:-3] if address and address.endswith('/32') else address,
            'public_port': int(dport),
            'jail_ip': jail_ip,
            'jail_port': int(jail_port),
        })
    return ports


def cap_names(mask: int) -> list[str]:
    return [CAP_NAMES[bit] if bit < len(CAP_NAMES) else f'cap_{bit}'
            for bit in range(64) if mask >> bit & 1]


def _mask(processes: list[dict], key: str) -> int | None:
    try:
        value = 0
        for p in processes:
            value |= int(p[key], 16)
        return value
    except (KeyError, TypeError, ValueError):
        return None


def confinement_summary(entry: dict | None) -> dict:
    """One line's worth of a sandbox of parse_state(): every process counted together."""
    processes = (entry or {}).get('processes') or []
    if not processes:
        return {'confined': False, 'processes': 0, 'seccomp': None, 'no_new_privs': None,
                'own_namespaces': None, 'cap_eff': [], 'cap_bnd': [], 'problems': ['not running']}
    eff, bnd = _mask(processes, 'cap_eff'), _mask(processes, 'cap_bnd')
    return {
        'confined': bool(entry.get('confined')),
        'processes': len(processes),
        # every process in seccomp filter mode, with filters of its own on top of PID 1's
        'seccomp': all(p.get('seccomp') == 2 and (p.get('seccomp_filters_added') is None
                                                  or p['seccomp_filters_added'] > 0) for p in processes),
        'no_new_privs': all(p.get('no_new_privs') == 1 for p in processes),
        'own_namespaces': all(all(p.get('namespaces_differ', {}).values()) for p in processes),
        # union over the processes (what the most privileged one holds)
        'cap_eff': cap_names(eff) if eff is not None else None,
        'cap_bnd': cap_names(bnd) if bnd is not None else None,
        'problems': unconfined_reasons(entry) if not entry.get('confined') else [],
    }


def jail_status(name: str, meta: dict, unit: dict, sandbox: dict | None, ports: list[dict]) -> dict:
    """The status of one jail: the sandbox_info module's entry, also the command's JSON."""
    if unit['loaded'] != 'loaded':
        state = 'missing'
    elif unit['active'] == 'active' and sandbox:
        state = 'running'
    elif unit['active'] == 'failed':
        state = 'failed'
    else:
        state = 'stopped'
    ip = meta.get('ip')
    return {
        'name': name,
        'state': state,
        'since': unit['since'],
        'restarts': unit['restarts'],
        'unit': unit,
        'memory': unit['memory'],
        'tasks': unit['tasks'],
        'cpu_seconds': unit['cpu_seconds'],
        'ip': ip,
        'bridge': meta.get('bridge'),
        'root': meta.get('root'),
        'published_ports': [{k: v for k, v in p.items() if k != 'jail_ip'} for p in ports
                            if ip is not None and p['jail_ip'] == ip],
        'pid': sandbox['pid'] if sandbox else None,
        'child_pid': sandbox['child_pid'] if sandbox else None,
        'daemon_pids': sandbox['daemon_pids'] if sandbox else [],
        'network': sandbox['network'] if sandbox else [],
        'processes': sandbox['processes'] if sandbox else [],
        'confined': sandbox['confined'] if sandbox else False,
        'confinement': confinement_summary(sandbox),
    }


def systemctl_show(run, units: list[str]) -> dict:
    """`systemctl show` of the units through run(argv) -> (rc, stdout, stderr); {} on failure."""
    if not units:
        return {}
    rc, out, dummy = run([SYSTEMCTL, 'show', '--timestamp=unix', '--property', ','.join(SHOW_PROPERTIES),
                          '--', *units])
    return parse_systemctl_show(out) if rc == 0 else {}


def collect(run, names: list[str] | None = None, run_dir: str = RUN_DIR, proc: str = '/proc',
            meta_dir: str = META_DIR, firewall_dir: str = FIREWALL_DIR) -> tuple[list[dict], list[dict]]:
    """(jails, sandboxes): the status of the declared jails (or of NAMES) and every running
    firejail sandbox; run(argv) -> (rc, stdout, stderr) runs the host's systemctl."""
    sandboxes = parse_state(run_dir=run_dir, proc=proc)
    by_pid = {s['pid']: s for s in sandboxes}
    declared = declared_jails(meta_dir)
    names = list(names or sorted(declared))
    shows = systemctl_show(run, [unit_name(n) for n in names])
    ports = parse_published_ports(_read(os.path.join(firewall_dir, 'rules.v4')))
    jails = []
    for name in names:
        unit = unit_status(unit_name(name), shows.get(unit_name(name)))
        jails.append(jail_status(name, declared.get(name, {'name': name}), unit,
                                 by_pid.get(unit['main_pid']) if unit['main_pid'] else None, ports))
    return jails, sandboxes


# ---------------------------------------------------------------------------------------------
# Output: a table for humans, Prometheus text format for the node exporter

def _size(value: int | None) -> str:
    if value is None:
        return '?'
    for unit in ('', 'K', 'M', 'G', 'T'):
        if value < 1024 or unit == 'T':
            return f'{int(value)}{unit}' if value == int(value) else f'{value:.1f}{unit}'
        value /= 1024
    return '?'


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f'{days}d{hours:02d}h'
    if hours:
        return f'{hours}h{minutes:02d}m'
    return f'{minutes}m{secs:02d}s' if minutes else f'{secs}s'


def _printable(text) -> str:
    """A value a jail may control (a process name), safe for a terminal."""
    return ''.join(c if c.isprintable() else f'\\x{ord(c):02x}' for c in str(text))


def _usage_cell(usage: dict, fmt) -> str:
    current = fmt(usage['current']) if usage['current'] is not None else '?'
    limit = fmt(usage['max']) if usage['max'] is not None else '-'
    return f'{current}/{limit}'


def _confinement_cell(jail: dict) -> str:
    summary = jail['confinement']
    if jail['state'] != 'running':
        return '-'
    caps = ','.join(summary['cap_eff']) if summary['cap_eff'] else 'none'
    words = [('seccomp' if summary['seccomp'] else 'NO-SECCOMP'),
             ('nnp' if summary['no_new_privs'] else 'NO-NNP'),
             ('ns' if summary['own_namespaces'] else 'HOST-NS'), f'caps:{caps}']
    return ('ok ' if summary['confined'] else 'UNCONFINED ') + ' '.join(words)


def render_table(jails: list[dict], now: float | None = None) -> str:
    """One screen: a line per jail, and the legend of '?' and '-'."""
    now = time.time() if now is None else now
    header = ('JAIL', 'STATE', 'SINCE', 'RESTARTS', 'MEMORY', 'TASKS', 'CPU', 'ADDRESS', 'PORTS', 'CONFINEMENT')
    rows = []
    for jail in jails:
        since = jail['since']
        ports = ','.join(f"{p['public_port']}>{p['jail_port']}" + ('' if p['proto'] == 'tcp' else f"/{p['proto']}")
                         for p in jail['published_ports'])
        rows.append((
            jail['name'], jail['state'],
            time.strftime('%Y-%m-%d %H:%M', time.localtime(since)) + f' ({_age(now - since)})' if since else '?',
            '?' if jail['restarts'] is None else str(jail['restarts']),
            _usage_cell(jail['memory'], _size), _usage_cell(jail['tasks'], str),
            '?' if jail['cpu_seconds'] is None else f"{jail['cpu_seconds']:.1f}s",
            jail['ip'] or '?', ports or '-', _confinement_cell(jail),
        ))
    rows = [tuple(_printable(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ['  '.join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header] + rows]
    if not jails:
        lines.append('(no jail declared on this host)')
    lines.append('?: unknown (e.g. no cgroup accounting on this host)  -: no limit  '
                 'PORTS: public>jail (tcp unless named)  caps: effective capabilities')
    for jail in jails:
        for problem in jail['confinement']['problems'] if jail['state'] == 'running' else []:
            lines.append(_printable(f"{jail['name']}: {problem}"))
    return '\n'.join(lines) + '\n'


def _label(value) -> str:
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _number(value) -> str:
    if value == float('inf'):
        return '+Inf'
    return repr(value) if isinstance(value, float) else str(int(value))


# name, type, help, value of a jail (None: no sample)
METRICS = (
    ('jailhost_jail_up', 'gauge', '1 when the jail unit is active and its sandbox runs.',
     lambda j: int(j['state'] == 'running')),
    ('jailhost_jail_state_since_seconds', 'gauge',
     'Unix time the jail unit entered its current state (active, inactive, failed...).', lambda j: j['since']),
    ('jailhost_jail_restarts_total', 'counter',
     'Automatic restarts of the jail unit (systemd NRestarts; a manual start resets it).', lambda j: j['restarts']),
    ('jailhost_jail_memory_bytes', 'gauge',
     'Memory of the jail unit (systemd MemoryCurrent); absent without memory accounting.',
     lambda j: j['memory']['current']),
    ('jailhost_jail_memory_max_bytes', 'gauge', 'MemoryMax of the jail unit; +Inf: no limit.',
     lambda j: (j['memory']['max'] if j['memory']['max'] is not None else float('inf'))
     if j['unit']['loaded'] == 'loaded' else None),
    ('jailhost_jail_tasks', 'gauge', 'Tasks of the jail unit (systemd TasksCurrent); absent without accounting.',
     lambda j: j['tasks']['current']),
    ('jailhost_jail_tasks_max', 'gauge', 'TasksMax of the jail unit; +Inf: no limit.',
     lambda j: (j['tasks']['max'] if j['tasks']['max'] is not None else float('inf'))
     if j['unit']['loaded'] == 'loaded' else None),
    ('jailhost_jail_cpu_seconds_total', 'counter',
     'CPU time of the jail unit (systemd CPUUsageNSec); absent without CPU accounting.', lambda j: j['cpu_seconds']),
    ('jailhost_jail_confined', 'gauge',
     '1 when every process of the running jail has its own namespaces, seccomp, no_new_privs and no '
     'capability outside its bounding set.', lambda j: int(bool(j['confined']))),
    ('jailhost_jail_processes', 'gauge', 'Processes of the sandbox (firejail\'s child and its descendants).',
     lambda j: j['confinement']['processes']),
    ('jailhost_jail_effective_capabilities', 'gauge',
     'Distinct effective capabilities held by the jail\'s processes (absent when not running).',
     lambda j: len(j['confinement']['cap_eff']) if j['state'] == 'running'
     and j['confinement']['cap_eff'] is not None else None),
)


def render_prometheus(jails: list[dict], now: float | None = None) -> str:
    """Prometheus text exposition format (the node exporter's textfile collector reads it). A
    value the host cannot give has no sample: absent means unknown, never 0."""
    now = time.time() if now is None else now
    lines = []

    def family(name, kind, text, samples):
        lines.extend([f'# HELP {name} {text}', f'# TYPE {name} {kind}'])
        lines.extend(f'{name}{{{labels}}} {_number(value)}' if labels else f'{name} {_number(value)}'
                     for labels, value in samples if value is not None)

    family('jailhost_jail_info', 'gauge', 'The declared jails: unit, address, bridge and state.',
           [(f'jail="{_label(j["name"])}",unit="{_label(j["unit"]["name"])}",ip="{_label(j["ip"] or "")}",'
             f'bridge="{_label(j["bridge"] or "")}",state="{_label(j["state"])}"', 1) for j in jails])
    for name, kind, text, value in METRICS:
        family(name, kind, text, [(f'jail="{_label(j["name"])}"', value(j)) for j in jails])
    family('jailhost_jail_published_port_info', 'gauge',
           'The ports the bridge publishes to a jail (DNAT of the host\'s public_port to the jail\'s jail_port).',
           [(f'jail="{_label(j["name"])}",proto="{_label(p["proto"])}",public_address="{_label(p["public_address"] or "")}",'
             f'public_port="{p["public_port"]}",jail_port="{p["jail_port"]}"', 1)
            for j in jails for p in j['published_ports']])
    family('jailhost_status_timestamp_seconds', 'gauge', 'Unix time this status was read.', [('', float(now))])
    return '\n'.join(lines) + '\n'


def write_atomic(path: str, text: str) -> None:
    """Write PATH as a whole: a temporary file in the same directory, renamed over it (a reader
    never sees half a file). Mode 0644; the directory is the host's, never a jail's."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f'.{os.path.basename(path)}.{os.getpid()}.tmp')
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _run(argv: list[str]) -> tuple[int, str, str]:
    import subprocess  # pylint: disable=import-outside-toplevel
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C', 'SYSTEMD_PAGER': '', 'SYSTEMD_COLORS': '0'}
    # The host command (jailhost-status) runs without an AnsibleModule; the module passes its own
    # run_command-based runner instead of this one.
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)  # pylint: disable=ansible-bad-function
    return result.returncode, result.stdout, result.stderr


USAGE = """usage: jailhost-status [--json | --prometheus FILE] [--firewall-dir DIR] [NAME...]

The jails of this host: state and since when, restarts, memory and tasks against the unit's
limits, CPU time, address, published ports and confinement. Default: a table; --json: the same
as JSON (the sandbox_info module's 'jails'); --prometheus FILE: the node exporter's textfile
format, written atomically to FILE ('-': standard output). '?' / null / absent: unknown.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    mode, target, firewall_dir, names = 'table', None, FIREWALL_DIR, []
    try:
        while args:
            arg = args.pop(0)
            if arg in ('-h', '--help'):
                sys.stdout.write(USAGE)
                return 0
            if arg == '--json':
                mode = 'json'
            elif arg == '--prometheus':
                mode, target = 'prometheus', args.pop(0)
            elif arg == '--firewall-dir':
                firewall_dir = args.pop(0)
            elif arg.startswith('-'):
                raise ValueError(f'unknown option {arg}')
            else:
                names.append(arg)
        jails, dummy = collect(_run, names, firewall_dir=firewall_dir)
    except (IndexError, ValueError, OSError) as exc:
        sys.stderr.write(f'jailhost-status: {exc or "an option needs a value"}\n{USAGE}')
        return 2
    if mode == 'json':
        sys.stdout.write(json.dumps({'jails': jails, 'timestamp': time.time()}, indent=1, sort_keys=True) + '\n')
    elif mode == 'prometheus':
        text = render_prometheus(jails)
        if target == '-':
            sys.stdout.write(text)
        else:
            write_atomic(target, text)
    else:
        sys.stdout.write(render_table(jails))
    return 0


if __name__ == '__main__':
    sys.exit(main())  # pylint: disable=ansible-bad-function
