# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""roles/apps/files/app-enter, the app owners' login helper, against a real sandbox: a process in
its own mount, PID, IPC, UTS and network namespaces whose root is a tiny jail root (the host's
/bin/sh, cat, id, readlink and their libraries). The helper's own checks of systemd and firejail
are replaced (they need a running jail unit); everything else is the real code: the jail's passwd
read in-root, jailsafe.enter, the session's confinement. Trojans for the programs the former
helper ran from the jail (setpriv, python3, nsenter, env) record whether they ever run.

Root only (namespaces, chroot): skipped otherwise, as the jailsafe tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
APP_ENTER = REPO / 'roles' / 'apps' / 'files' / 'app-enter'
MODULE_UTILS = REPO / 'plugins' / 'module_utils'
PROGRAMS = ('/bin/sh', '/bin/cat', '/usr/bin/id', '/usr/bin/readlink')
TROJANS = ('usr/bin/setpriv', 'usr/bin/python3', 'usr/bin/nsenter', 'usr/bin/env')
TROJAN = '#!/bin/sh\necho "$0 ran as $(id -u)" >> /trojan.log\n'


def libraries(program: str) -> set[str]:
    out = subprocess.run(['ldd', program], capture_output=True, text=True, check=False).stdout
    return {word for line in out.splitlines() for word in line.split() if word.startswith('/')}


@pytest.fixture
def sandbox():
    """(host PID of the sandbox's PID 1, jail root): the sandbox waits on a pipe until the test ends."""
    if os.geteuid() != 0 or not shutil.which('unshare'):
        pytest.skip('app-enter needs root and unshare on the host')
    base = Path(tempfile.mkdtemp(prefix='app-enter-test-', dir='/var/lib'))
    os.chmod(base, 0o755)
    root = base / 'root'
    for path in sorted(set(PROGRAMS).union(*(libraries(p) for p in PROGRAMS))):
        dest = root / path.lstrip('/')
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), dest)
    for directory in ('proc', 'etc', 'nonexistent', 'usr/bin'):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / 'etc/passwd').write_text('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n')
    (root / 'etc/group').write_text('root:x:0:\nnogroup:x:65534:\n')
    (root / 'trojan.log').write_text('')
    os.chmod(root / 'trojan.log', 0o666)
    for trojan in TROJANS:
        (root / trojan).write_text(TROJAN)
        os.chmod(root / trojan, 0o755)
    os.chmod(root, 0o755)
    try:
        with subprocess.Popen(['unshare', '--mount', '--pid', '--fork', '--ipc', '--uts', '--net', f'--root={root}',
                               '--mount-proc', '/bin/sh', '-c', 'read line'], stdin=subprocess.PIPE) as holder:
            try:
                child = None
                for _attempt in range(100):
                    found = subprocess.run(['pgrep', '-P', str(holder.pid)], capture_output=True, text=True,
                                           check=False).stdout.split()
                    if found and os.readlink(f'/proc/{found[0]}/ns/pid') != os.readlink('/proc/self/ns/pid'):
                        child = int(found[0])
                        break
                    subprocess.run(['sleep', '0.05'], check=False)
                assert child, 'the sandbox did not start'
                yield child, root
            finally:
                holder.stdin.close()  # the sandbox's shell reads end of file and exits
                holder.wait(timeout=10)
    finally:
        shutil.rmtree(base)


def run_app_enter(child: int, *args: str, user: str = 'nobody', uid: int = 65534) -> subprocess.CompletedProcess:
    """app-enter's main() in a fresh python3 -I, with the systemd/firejail lookup and the login map
    replaced, and jailsafe imported from this tree."""
    driver = f'''
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader('app_enter', {str(APP_ENTER)!r})
spec = importlib.util.spec_from_loader('app_enter', loader)
app_enter = importlib.util.module_from_spec(spec)
loader.exec_module(app_enter)
sys.path.insert(0, {str(MODULE_UTILS)!r})
import jailsafe
app_enter.read = lambda path: 'alpha\\n' if path.startswith(app_enter.LOGIN_DIR) else open(path).read()
app_enter.sandbox_of = lambda jail: {child}
app_enter.load_jailsafe = lambda: jailsafe
sys.argv = ['app-enter', *{list(args)!r}]
app_enter.main()
'''
    env = {'SUDO_USER': user, 'SUDO_UID': str(uid), 'TERM': 'xterm', 'PATH': '/usr/bin:/bin'}
    return subprocess.run([sys.executable, '-I', '-c', driver], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def fields(text: str) -> dict[str, str]:
    return dict(line.split(':\t', 1) for line in text.splitlines() if ':\t' in line)


def test_the_session_is_the_user_confined_in_the_sandbox(sandbox):
    child, root = sandbox
    result = run_app_enter(child, '-c', 'id -u; cat /proc/self/status; readlink /proc/self/ns/pid; '
                                        'cat /etc/passwd; echo "HOME=$HOME TERM=$TERM"; exit 3')
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '65534'
    status = fields(result.stdout)
    assert {k: status[k] for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')} == dict.fromkeys(
        ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'), '0000000000000000')
    assert status['NoNewPrivs'] == '1' and status['Seccomp'] == '2'
    assert os.readlink(f'/proc/{child}/ns/pid') in lines
    assert 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' in lines  # the jail's passwd
    assert 'HOME=/nonexistent TERM=xterm' in lines
    # Nothing of the jail ran before the shell: no trojan recorded itself.
    assert (root / 'trojan.log').read_text() == ''


def test_a_user_with_another_uid_in_the_jail_is_refused(sandbox):
    child, root = sandbox
    (root / 'etc/passwd').write_text('nobody:x:65000:65534:nobody:/nonexistent:/bin/sh\n')
    result = run_app_enter(child, '-c', 'id')
    assert result.returncode == 1 and 'does not exist in the jail alpha with the same uid and gid' in result.stderr
    assert result.stdout == ''


def test_a_passwd_that_is_a_link_is_refused(sandbox):
    """The jail could point its passwd anywhere: a link is refused, inside the jail or out of it."""
    child, root = sandbox
    (root / 'etc/passwd').rename(root / 'etc/passwd.real')
    for target in ('/etc/passwd.real', '../../../../../../etc/passwd'):
        (root / 'etc/passwd').unlink(missing_ok=True)
        (root / 'etc/passwd').symlink_to(target)
        result = run_app_enter(child, '-c', 'id -u')
        assert result.returncode == 1 and 'cannot read the passwd of the jail alpha' in result.stderr, result.stderr
        assert result.stdout == '' and (root / 'trojan.log').read_text() == ''


def test_usage_and_caller_checks():
    if os.geteuid() != 0:
        pytest.skip('app-enter checks it runs as root first')
    no_sudo = subprocess.run([sys.executable, '-I', str(APP_ENTER)], env={}, capture_output=True, text=True,
                             check=False)
    assert no_sudo.returncode == 1 and 'must be run through sudo' in no_sudo.stderr
    root_caller = subprocess.run([sys.executable, '-I', str(APP_ENTER)], env={'SUDO_USER': 'root', 'SUDO_UID': '0'},
                                 capture_output=True, text=True, check=False)
    assert root_caller.returncode == 1 and 'root is not an app user' in root_caller.stderr
    usage = subprocess.run([sys.executable, '-I', str(APP_ENTER), '-x'],
                           env={'SUDO_USER': 'nobody', 'SUDO_UID': '65534'}, capture_output=True, text=True,
                           check=False)
    assert usage.returncode == 1 and 'usage: app-enter [-c COMMAND]' in usage.stderr


def test_jailsafe_must_be_root_owned_and_not_writable_by_others(tmp_path):
    """The helper refuses a jailsafe.py under a directory another user could write to (here /tmp)."""
    if os.geteuid() != 0:
        pytest.skip('root only')
    lib = tmp_path / 'libexec'
    lib.mkdir()
    shutil.copy(MODULE_UTILS / 'jailsafe.py', lib / 'jailsafe.py')
    driver = f'''
import importlib.machinery, importlib.util
loader = importlib.machinery.SourceFileLoader('app_enter', {str(APP_ENTER)!r})
spec = importlib.util.spec_from_loader('app_enter', loader)
app_enter = importlib.util.module_from_spec(spec)
loader.exec_module(app_enter)
app_enter.LIBEXEC = {str(lib)!r}
app_enter.load_jailsafe()
print('loaded')
'''
    result = subprocess.run([sys.executable, '-I', '-c', driver], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and 'loaded' not in result.stdout
    assert 'must be a directory owned by root and writable by root only' in result.stderr, result.stderr
