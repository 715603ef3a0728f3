# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of the firejail sandbox engine: validate a jail definition, render its firejail
profile and its systemd unit, and read the state of running sandboxes from /run/firejail and /proc.

Nothing here runs a command; the only I/O is reading the state trees in ``parse_state``, whose
roots are parameters so tests can point them at a fake tree. Every rendered line was verified on a
booted Debian 12 test host with firejail 0.9.72-2 (docs/design/firejail-findings.md).

A *spec* is a dict::

    {
        'name': 'web',                      # ^[a-z][a-z0-9-]*$, <= 32 characters
        'bridge': 'br0',                    # existing bridge on the host
        'bridge_cidr': '10.42.0.1/24',      # host address on the bridge / prefix: the jail subnet
        'ip': '10.42.0.10',                 # jail address, inside the subnet
        'command': ['/usr/sbin/apache2ctl', '-DFOREGROUND'],   # foreground daemon, absolute path
        # optional
        'root': '/var/lib/jailhost/jails/web/root',            # default from name
        'veth_name': 'fj-web',              # host side of the veth; default 'fj-' + name if it fits
        'defaultgw': '10.42.0.1',           # default: the bridge address
        'hardening': {...},                 # keys of HARDENING_DEFAULTS only
        'memory_max': '512M',               # systemd MemoryMax=; None: no limit
        'tasks_max': 256,                   # systemd TasksMax=; None: systemd default
        'cpu_quota': '50%',                 # systemd CPUQuota=; None: no limit
        'rlimits': {'nofile': 1024},        # firejail rlimit-* (kernel per-process limits)
        'dns': ['192.0.2.53'],              # the jail's resolvers; [] or None: none (127.0.0.1)
        'stop_signal': 'SIGINT',            # signal the daemon gets first at stop; None: SIGTERM
        'stop_timeout': 20,                 # TimeoutStopSec=, seconds (> 15)
        'restart_sec': 2,
        'description': 'Apache',
        'firewall_unit': 'jailhost-firewall.service',  # the jail runs only while it is active
        'profile_path': '/etc/firejail/jailhost-web.profile',
    }
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JAIL_NAME_MAX, JAIL_NAME_RE, valid_jail_name
from ansible_collections.jailhost.jails.plugins.module_utils.jailstatus import (  # noqa: F401 pylint: disable=unused-import
    META_DIR, RUN_DIR, UNIT_PREFIX,
)

FIREJAIL = '/usr/bin/firejail'
SETPRIV = '/usr/bin/setpriv'
# The bridge role's firewall script: restores our chains, and rebuilds the anti-spoofing chain
# from META_DIR (--antispoof).
FIREWALL_RESTORE = '/usr/local/sbin/jailhost-firewall-restore'
JAILS_DIR = '/var/lib/jailhost/jails'
PROFILE_DIR = '/etc/firejail'

# The one jail name rule of the collection (jailsafe.valid_jail_name); NAME_RE is its alias.
NAME_RE = JAIL_NAME_RE
NAME_MAX = JAIL_NAME_MAX
# Linux interface names: at most 15 characters (IFNAMSIZ - 1).
IFNAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]{0,14}$')
VETH_PREFIX = 'fj-'
UNIT_NAME_RE = re.compile(r'^[A-Za-z0-9_.@-]+\.(service|target)$')
SIZE_RE = re.compile(r'^[0-9]+[KMGT]?$')
CPU_QUOTA_RE = re.compile(r'^[1-9][0-9]*%$')
# firejail's rlimit-* options (profile lines rlimit-NAME VALUE): enforced by the kernel for every
# process of the jail, also where systemd's cgroup limits are not (our nspawn test hosts).
RLIMITS = ('as', 'cpu', 'fsize', 'nofile', 'nproc', 'sigpending')
SIGNAL_NUMBERS = {
    'SIGHUP': 1, 'SIGINT': 2, 'SIGQUIT': 3, 'SIGUSR1': 10, 'SIGUSR2': 12, 'SIGTERM': 15,
    'SIGWINCH': 28,
}
# firejail's sandbox SIGKILLs everything about 10 s after SIGTERM; systemd must wait longer.
MIN_STOP_TIMEOUT = 16
DEFAULT_STOP_TIMEOUT = 20
PROTOCOLS = ('unix', 'inet', 'inet6', 'netlink', 'packet', 'bluetooth')
# firejail's switches that keep device classes out of the private /dev (firejail-profile(5)):
# private-dev copies these in when the host has them, and none of our daemons needs one.
HARDWARE_DEVICE_DIRECTIVES = {
    'no3d': 'no GPU devices (/dev/dri, /dev/nvidia*): a large kernel driver surface',
    'nodvd': 'no optical drives',
    'noinput': 'no input devices (/dev/input): no keyboard or mouse events to read or inject',
    'nosound': 'no sound devices (/dev/snd)',
    'notv': 'no DVB devices (/dev/dvb)',
    'nou2f': 'no U2F/FIDO tokens (hidraw)',
    'novideo': 'no cameras or capture devices (/dev/video*)',
}
# Denied on top of firejail's default seccomp list (`seccomp NAME,...` adds them to it). io_uring
# is the largest source of recent kernel privilege escalations and no jailed daemon of ours uses
# it (Apache, PostgreSQL, PHP); several hosting and browser vendors turn it off the same way.
SECCOMP_EXTRA = ('io_uring_setup', 'io_uring_enter', 'io_uring_register')

SPEC_KEYS = frozenset((
    'name', 'bridge', 'bridge_cidr', 'ip', 'command', 'root', 'veth_name', 'defaultgw',
    'hardening', 'memory_max', 'tasks_max', 'cpu_quota', 'rlimits', 'stop_signal', 'stop_timeout',
    'restart_sec', 'firewall_unit', 'dns',
    'description', 'profile_path',
))

# Hardening switches and their defaults. Order here is the order in the profile.
HARDENING_DEFAULTS = {
    'private': True,
    'private_dev': True,
    'private_tmp': True,
    'no_hardware_devices': True,
    'seccomp': True,
    'caps_keep': [],            # [] = caps.drop all; names like 'net_bind_service' keep those
    'caps_drop': [],            # with caps_keep empty: drop only these (weaker; prefer caps_keep)
    'nonewprivs': True,
    # No inet6: the jails get IPv4 addresses only, and the FORWARD rules between jails are IPv4
    # rules; without an IPv6 socket a jail can neither reach another jail's link-local fe80::
    # address nor listen on one (docs/security.md, "IPv6").
    'protocol': ['unix', 'inet'],
    'restrict_namespaces': True,
    'ipc_namespace': True,
    'memory_deny_write_execute': False,
    'disable_common': True,
    'writable_var_log': False,
    'netfilter': None,          # path of an iptables-restore file loaded inside the jail
}
BOOL_HARDENING = frozenset(k for k, v in HARDENING_DEFAULTS.items() if isinstance(v, bool))
CAP_RE = re.compile(r'^[a-z_]+$')

# One reason per directive; the profile prints it as a comment above the directive.
REASONS = {
    'private': 'tmpfs over /root and /home: no home directory content is visible or kept',
    'private_dev': 'minimal /dev (null, zero, full, random, urandom, tty, pts, shm) instead of '
                   'the whole host /dev that --chroot bind-mounts otherwise',
    'private_tmp': 'empty tmpfs on /tmp: no leftovers or shared sockets from other runs',
    'seccomp': "firejail's default seccomp blacklist (mount, kexec, module loading, ptrace, ...) "
               'and io_uring (a large kernel attack surface no jailed daemon uses)',
    'caps.drop all': 'empty capability bounding set: root inside the jail has no capabilities',
    'caps.keep': 'only the capabilities the daemon needs stay in the bounding set',
    'caps.drop': 'these capabilities leave the bounding set, the others stay (weaker than caps.keep)',
    'nonewprivs': 'no_new_privs: setuid/setcap binaries cannot gain privileges',
    'protocol': 'socket families the daemon may open; socket() of any other family fails (EOPNOTSUPP)',
    'restrict_namespaces': 'no new namespaces from inside the jail (unshare/clone are filtered)',
    'ipc_namespace': 'own System V IPC namespace: no shared memory or semaphores with the host',
    'memory_deny_write_execute': 'no writable+executable mappings (breaks JITs: PostgreSQL jit=off)',
    'disable_common': "firejail's blacklist of sensitive files and su/sudo inside the jail",
    'writable_var_log': "keep the jail root's /var/log instead of firejail's tmpfs (logs survive)",
    'netfilter': 'iptables-restore rules loaded inside the jail network namespace',
    'rlimit': 'kernel resource limit of every process in the jail (independent of cgroups)',
    'dns': "the jail's resolver, mounted over the copy of the host's resolv.conf that --chroot writes",
    'deterministic-shutdown': 'the sandbox ends when the daemon ends, killing any leftover process',
    'deterministic-exit-code': "firejail exits with the daemon's exit status, so systemd logs why it ended",
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def jail_root(spec: dict) -> str:
    return spec.get('root') or f"{JAILS_DIR}/{spec['name']}/root"


def profile_path(spec: dict) -> str:
    return spec.get('profile_path') or f"{PROFILE_DIR}/{UNIT_PREFIX}{spec['name']}.profile"


def unit_name(spec: dict) -> str:
    return f"{UNIT_PREFIX}{spec['name']}.service"


def veth_name(spec: dict) -> str:
    """Host side of the jail's veth: explicit, else 'fj-NAME' when that fits IFNAMSIZ (15), else
    'fj-' + the name's first 7 characters + '-' + 4 hex digits of its SHA-256. Always known:
    the anti-spoofing rules match a jail's frames by this name (docs/security.md)."""
    if spec.get('veth_name'):
        return spec['veth_name']
    candidate = VETH_PREFIX + spec['name']
    if IFNAME_RE.match(candidate):
        return candidate
    digest = hashlib.sha256(spec['name'].encode()).hexdigest()[:4]
    return f"{VETH_PREFIX}{spec['name'][:7].rstrip('-.')}-{digest}"


def hardening(spec: dict) -> dict:
    merged = dict(HARDENING_DEFAULTS)
    merged.update(spec.get('hardening') or {})
    return merged


def validate_spec(spec) -> list[str]:
    """All problems of a sandbox definition, as messages naming the key at fault; [] if valid."""
    if not isinstance(spec, dict):
        return ['spec must be a dict']
    errors = []
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        errors.append(f"unknown keys: {', '.join(unknown)}")

    name = spec.get('name')
    if not isinstance(name, str) or not name:
        errors.append('name is required (a string)')
    else:
        if len(name) > NAME_MAX:
            errors.append(f'name {name!r} is longer than {NAME_MAX} characters')
        elif name.isdigit():
            errors.append(f'name {name!r} is all digits: firejail would take it for a PID')
        elif not valid_jail_name(name):
            errors.append(f'name {name!r} must match {NAME_RE.pattern}')

    bridge = spec.get('bridge')
    if not isinstance(bridge, str) or not IFNAME_RE.match(bridge):
        errors.append('bridge must be an interface name (letter first, at most 15 characters)')

    network = gateway = None
    cidr = spec.get('bridge_cidr')
    try:
        iface = ipaddress.IPv4Interface(cidr)
        if '/' not in str(cidr):
            raise ValueError('no prefix')
        network, gateway = iface.network, iface.ip
        if network.prefixlen > 30:
            errors.append(f'bridge_cidr {cidr!r}: prefix longer than /30 leaves no room for jails')
        elif gateway in (network.network_address, network.broadcast_address):
            errors.append(f'bridge_cidr {cidr!r} must be a host address with its prefix, '
                          'e.g. 10.42.0.1/24')
    except (ValueError, TypeError):
        errors.append(f'bridge_cidr {cidr!r} must be an IPv4 address with prefix, e.g. 10.42.0.1/24')
        network = None

    def _address(key, value):
        try:
            addr = ipaddress.IPv4Address(value)
        except (ValueError, TypeError):
            errors.append(f'{key} {value!r} is not an IPv4 address')
            return None
        if network is not None:
            if addr not in network:
                errors.append(f'{key} {value} is outside the bridge subnet {network}')
            elif addr in (network.network_address, network.broadcast_address):
                errors.append(f'{key} {value} is the network or broadcast address of {network}')
        return addr

    ip = _address('ip', spec.get('ip'))
    if ip is not None and gateway is not None and ip == gateway:
        errors.append(f'ip {ip} is the host address on the bridge')
    if spec.get('defaultgw') is not None:
        _address('defaultgw', spec.get('defaultgw'))

    command = spec.get('command')
    if not isinstance(command, list) or not command:
        errors.append('command must be a non-empty list of strings')
    elif not all(isinstance(a, str) for a in command):
        errors.append('command must contain only strings')
    elif not command[0].startswith('/'):
        errors.append(f'command[0] {command[0]!r} must be an absolute path inside the jail root')
    elif any('\n' in a or '\0' in a for a in command):
        errors.append('command arguments must not contain newlines or NUL')

    for key in ('root', 'profile_path'):
        value = spec.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith('/')
                                  or value.rstrip('/') == '' or any(c.isspace() for c in value)
                                  or '..' in value.split('/')):
            errors.append(f'{key} {value!r} must be an absolute path without spaces or ".."')

    if spec.get('veth_name') is not None:
        if not isinstance(spec['veth_name'], str) or not IFNAME_RE.match(spec['veth_name']):
            errors.append('veth_name must be an interface name (letter first, at most 15 characters)')

    hard = spec.get('hardening')
    if hard is not None and not isinstance(hard, dict):
        errors.append('hardening must be a dict')
    elif hard:
        unknown = sorted(set(hard) - set(HARDENING_DEFAULTS))
        if unknown:
            errors.append(f"unknown hardening keys: {', '.join(unknown)} "
                          f"(known: {', '.join(HARDENING_DEFAULTS)})")
        for key in sorted(BOOL_HARDENING & set(hard)):
            if not isinstance(hard[key], bool):
                errors.append(f'hardening.{key} must be true or false')
        if 'caps_keep' in hard:
            caps = hard['caps_keep']
            if not isinstance(caps, list) or not all(isinstance(c, str) and CAP_RE.match(c) for c in caps):
                errors.append('hardening.caps_keep must be a list of capability names '
                              '(lowercase, without cap_), e.g. [net_bind_service]')
        if 'caps_drop' in hard:
            caps = hard['caps_drop']
            if not isinstance(caps, list) or not all(isinstance(c, str) and CAP_RE.match(c) for c in caps):
                errors.append('hardening.caps_drop must be a list of capability names '
                              '(lowercase, without cap_), e.g. [net_raw, sys_admin]')
            elif caps and hard.get('caps_keep'):
                errors.append('hardening.caps_keep and hardening.caps_drop are mutually exclusive: '
                              'caps_keep names what stays, everything else is dropped')
        if 'protocol' in hard:
            proto = hard['protocol']
            if not isinstance(proto, list) or not proto or not all(p in PROTOCOLS for p in proto):
                errors.append(f"hardening.protocol must be a non-empty list of {', '.join(PROTOCOLS)}")
        if hard.get('netfilter') is not None:
            nf = hard['netfilter']
            if not isinstance(nf, str) or not nf.startswith('/') or any(c.isspace() for c in nf):
                errors.append('hardening.netfilter must be an absolute path without spaces')

    memory_max = spec.get('memory_max')
    if memory_max is not None and not (
            (_is_int(memory_max) and memory_max > 0)
            or (isinstance(memory_max, str) and SIZE_RE.match(memory_max))):
        errors.append(f'memory_max {memory_max!r} must be bytes or a size like 512M')
    tasks_max = spec.get('tasks_max')
    if tasks_max is not None and not (_is_int(tasks_max) and tasks_max > 0):
        errors.append(f'tasks_max {tasks_max!r} must be a positive integer')
    cpu_quota = spec.get('cpu_quota')
    if cpu_quota is not None and not (isinstance(cpu_quota, str) and CPU_QUOTA_RE.match(cpu_quota)):
        errors.append(f'cpu_quota {cpu_quota!r} must be a percentage like 50% (200% = two CPUs)')
    rlimits = spec.get('rlimits')
    if rlimits is not None:
        if not isinstance(rlimits, dict):
            errors.append('rlimits must be a dict')
        else:
            for key in sorted(rlimits):
                if key not in RLIMITS:
                    errors.append(f"rlimits.{key} is unknown (known: {', '.join(RLIMITS)})")
                elif not (_is_int(rlimits[key]) and rlimits[key] > 0):
                    errors.append(f'rlimits.{key} must be a positive integer')

    dns = spec.get('dns')
    if dns is not None:
        if not isinstance(dns, list) or len(dns) > 3:
            errors.append('dns must be a list of at most 3 IPv4 addresses')
        else:
            for item in dns:
                try:
                    ipaddress.IPv4Address(item)
                except (ipaddress.AddressValueError, ValueError, TypeError):
                    errors.append(f'dns: {item!r} is not an IPv4 address')

    stop_signal = spec.get('stop_signal')
    if stop_signal is not None and stop_signal not in SIGNAL_NUMBERS:
        errors.append(f"stop_signal {stop_signal!r} must be one of {', '.join(SIGNAL_NUMBERS)}")
    stop_timeout = spec.get('stop_timeout')
    if stop_timeout is not None and not (_is_int(stop_timeout) and stop_timeout >= MIN_STOP_TIMEOUT):
        errors.append(f'stop_timeout must be an integer >= {MIN_STOP_TIMEOUT} seconds '
                      "(firejail SIGKILLs the sandbox 10 s after SIGTERM)")
    restart_sec = spec.get('restart_sec')
    if restart_sec is not None and not (_is_int(restart_sec) and restart_sec >= 0):
        errors.append('restart_sec must be a non-negative integer')
    firewall = spec.get('firewall_unit')
    if firewall not in (None, '') and not (isinstance(firewall, str) and UNIT_NAME_RE.match(firewall)):
        errors.append('firewall_unit must be a systemd unit name such as jailhost-firewall.service')
    description = spec.get('description')
    if description is not None and (not isinstance(description, str) or '\n' in description):
        errors.append('description must be a single-line string')
    return errors


def _firejail_args(spec: dict) -> list[str]:
    """The firejail command line of the jail (identity, root and network; hardening is in the
    profile, because --chroot and the network options cannot be profile lines for root)."""
    args = [FIREJAIL, f'--profile={profile_path(spec)}', f"--name={spec['name']}",
            f'--chroot={jail_root(spec)}', f"--net={spec['bridge']}"]
    args.append(f'--veth-name={veth_name(spec)}')
    gateway = spec.get('defaultgw') or str(ipaddress.IPv4Interface(spec['bridge_cidr']).ip)
    args += [f"--ip={spec['ip']}", f'--defaultgw={gateway}', '--']
    return args + list(spec['command'])


def render_profile(spec: dict) -> str:
    """The firejail profile of the jail: every hardening directive with its reason above it."""
    hard = hardening(spec)
    lines = [
        f"# firejail profile of jail {spec['name']} - generated by jailhost.jails, do not edit.",
        '# Used with --profile= instead of the default server.profile. --name, --chroot and the',
        '# network options are on the command line of the systemd unit.',
        '',
    ]

    def directive(reason_key, line):
        lines.append(f'# {REASONS[reason_key]}')
        lines.append(line)

    for flag in ('private', 'private_dev', 'private_tmp'):
        if hard[flag]:
            directive(flag, flag.replace('_', '-'))
    if hard['no_hardware_devices']:
        for device_directive, reason in HARDWARE_DEVICE_DIRECTIVES.items():
            lines.append(f'# {reason}')
            lines.append(device_directive)
    if hard['seccomp']:
        directive('seccomp', 'seccomp ' + ','.join(SECCOMP_EXTRA))
    if hard['caps_keep']:
        directive('caps.keep', 'caps.keep ' + ','.join(hard['caps_keep']))
    elif hard['caps_drop']:
        directive('caps.drop', 'caps.drop ' + ','.join(hard['caps_drop']))
    else:
        directive('caps.drop all', 'caps.drop all')
    if hard['nonewprivs']:
        directive('nonewprivs', 'nonewprivs')
    if hard['protocol']:
        directive('protocol', 'protocol ' + ','.join(hard['protocol']))
    for flag in ('restrict_namespaces', 'ipc_namespace', 'memory_deny_write_execute'):
        if hard[flag]:
            directive(flag, flag.replace('_', '-'))
    if hard['disable_common']:
        directive('disable_common', 'include disable-common.inc')
    if hard['writable_var_log']:
        directive('writable_var_log', 'writable-var-log')
    if hard['netfilter']:
        directive('netfilter', f"netfilter {hard['netfilter']}")
    # firejail --chroot copies the host's /etc/resolv.conf into the jail root at every start; a
    # dns line makes it mount its own over it, so the jail never reads the host's resolvers and
    # search domains. No resolver given: 127.0.0.1, where nothing answers (lookups fail at once).
    for server in spec.get('dns') or ['127.0.0.1']:
        directive('dns', f'dns {server}')
    for key, value in sorted((spec.get('rlimits') or {}).items()):
        directive('rlimit', f'rlimit-{key} {value}')
    directive('deterministic-shutdown', 'deterministic-shutdown')
    directive('deterministic-exit-code', 'deterministic-exit-code')
    return '\n'.join(lines) + '\n'


def systemd_quote(arg: str) -> str:
    """One argument for an Exec*= line: % and $ escaped, double quotes when needed."""
    escaped = arg.replace('%', '%%').replace('$', '$$')
    if re.match(r'^[A-Za-z0-9_@%+=:,./$-]+$', escaped) and escaped != ';':
        return escaped
    escaped = escaped.replace('\\', '\\\\').replace('"', '\\"')
    return f'"{escaped}"'


def stop_command(signal_name: str, wait_seconds: int) -> str:
    """ExecStop= that gives the daemon `signal_name` before systemd's SIGTERM reaches firejail.

    The daemon is every child of the sandbox child, whose host PID firejail writes to
    /run/firejail/sandbox/$MAINPID. The command then waits (at most wait_seconds) until the
    sandbox child is gone; with deterministic-shutdown it ends when the daemon ends.
    """
    sig = signal_name[3:] if signal_name.startswith('SIG') else signal_name
    script = (
        'read c < /run/firejail/sandbox/$MAINPID || exit 0; '
        f'for p in $(cat /proc/$c/task/$c/children); do kill -s {sig} $p; done; '
        f'i=0; while [ -e /proc/$c ] && [ $i -lt {wait_seconds * 10} ]; '
        'do sleep 0.1; i=$((i+1)); done'
    )
    return "/bin/sh -c '" + script.replace('%', '%%').replace('$', '$$') + "'"


INIT_LOCK = '/run/jailhost-firejail-init.lock'
INIT_COMMAND = f"/usr/bin/flock {INIT_LOCK} /bin/sh -c '/usr/bin/firejail --list >/dev/null'"


def render_unit(spec: dict) -> str:
    """The systemd unit of the jail (jailhost-NAME.service)."""
    name = spec['name']
    root = jail_root(spec)
    stop_timeout = spec.get('stop_timeout') or DEFAULT_STOP_TIMEOUT
    restart_sec = spec.get('restart_sec')
    restart_sec = 2 if restart_sec is None else restart_sec
    description = spec.get('description') or f'jailhost jail {name} (firejail sandbox)'
    success = ['143']
    stop_signal = spec.get('stop_signal')
    if stop_signal and stop_signal != 'SIGTERM':
        success.append(str(128 + SIGNAL_NUMBERS[stop_signal]))

    lines = [
        f'# systemd unit of jail {name} - generated by jailhost.jails, do not edit.',
        '[Unit]',
        f'Description={description.replace("%", "%%")}',
        'Documentation=man:firejail(1)',
        '# The overlay root (a .mount unit) must be mounted before firejail chroots into it.',
        f'RequiresMountsFor={root}',
        '# The bridge must exist: firejail --net fails otherwise.',
        'Wants=network-online.target',
        'After=network-online.target',
    ]
    firewall = spec.get('firewall_unit')
    if firewall:
        lines += [
            '# Never without the jail firewall: the jail starts after its rules are in place and',
            f'# stops when {firewall} stops or fails (its watcher stops it when it cannot put',
            '# flushed rules back), so no jail runs with an open bridge.',
            f'BindsTo={firewall}',
            f'After={firewall}',
        ]
    lines += [
        '# Never give up restarting (a bridge that comes late at boot, a crash loop): each try',
        '# costs one firejail start every RestartSec; NRestarts shows the loop.',
        'StartLimitIntervalSec=0',
        '',
        '[Service]',
        '# firejail never daemonizes; the daemon runs in the foreground inside the sandbox.',
        'Type=simple',
        '# The first firejail run after boot bind-mounts /run/firejail/firejail.ro.{file,dir} and',
        '# /run/firejail/dbus in the host namespace and then checks the last mount; two jails',
        '# starting at once at boot fail that check ("invalid read-only mount") and restart. A',
        '# serialized no-op run (--list) does that setup once before any sandbox starts.',
        'ExecStartPre=' + INIT_COMMAND,
        '# firejail starts with an empty inheritable capability set: root\'s execve gives the daemon',
        '# its bounding set plus its inheritable set, so an inherited set (Debian 13\'s systemd in a',
        '# container passes a full one) would keep what caps.keep/caps.drop took out of the bounding',
        '# set effective. setpriv is the host\'s (util-linux), run before any jail file.',
        'ExecStart=' + ' '.join(systemd_quote(a) for a in [SETPRIV, '--inh-caps=-all', *_firejail_args(spec)]),
        '# The journal names the lines firejail, as before setpriv came first on the command line.',
        'SyslogIdentifier=firejail',
    ]
    if stop_signal and stop_signal != 'SIGTERM':
        lines += [
            f'# The daemon gets {stop_signal} first (its fast shutdown); the firejail parent only',
            '# forwards SIGTERM.',
            'ExecStop=' + stop_command(stop_signal, stop_timeout - 5),
        ]
    lines += [
        '# A jail\'s daemon never ends on purpose: restart on any exit, clean ones too (Apache exits',
        '# 0 when it cannot start its workers, AH02324; a HUP kills the firejail parent, which',
        '# systemd counts as clean). systemctl stop is never undone. Also retries the start that',
        "# firejail 0.9.72's ARP probe of --ip fails (\"Error select: arp.c arp_check: Invalid",
        '# argument\") when a packet reaches the host as its 0.5 s wait ends; see',
        '# docs/design/firejail-findings.md, section 8.',
        'Restart=always',
        f'RestartSec={restart_sec}',
        '# SIGTERM to the firejail parent only; it forwards it and SIGKILLs the sandbox after 10 s.',
        'KillMode=mixed',
        'KillSignal=SIGTERM',
        f"SuccessExitStatus={' '.join(success)}",
        f'TimeoutStopSec={stop_timeout}',
    ]
    if any(spec.get(k) is not None for k in ('memory_max', 'tasks_max', 'cpu_quota')):
        lines += [
            '# firejail 0.9.72 has no --cgroup: limits come from systemd, enforced only where',
            '# "systemctl show -p MemoryCurrent,TasksCurrent" gives numbers, not [not set].',
        ]
    if spec.get('memory_max') is not None:
        lines.append(f"MemoryMax={spec['memory_max']}")
    if spec.get('tasks_max') is not None:
        lines.append(f"TasksMax={spec['tasks_max']}")
    if spec.get('cpu_quota') is not None:
        lines.append(f"CPUQuota={spec['cpu_quota']}")
    lines += ['', '[Install]', 'WantedBy=multi-user.target']
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# State: read in jailstatus.py (standard library only, also installed on the host for the
# jailhost-status command); re-exported here for the modules.

from ansible_collections.jailhost.jails.plugins.module_utils.jailstatus import (  # noqa: E402,F401 pylint: disable=unused-import,wrong-import-position
    NAMESPACES, STATUS_FIELDS, capabilities_within_bounds, children, declared_jails, descendants, find_sandbox,
    parse_netmap, parse_state, read_status, unconfined_reasons,
)
