# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""roles/apache/files/jail_access.py log-size and log-wait against a rotatelogs ring (issue 16).

Apache's error log is a ring (error.log, error.log.1, ...) written by rotatelogs in the jail; the
role measures every file before a (re)start or reload and waits for "resuming normal operations"
in any of them. The helper runs as the role runs it (python3 -I, jailsafe on its path), on a
throw-away jail root. Root only (jailsafe refuses to act for another user): skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
HELPER = REPO / 'roles' / 'apache' / 'files' / 'jail_access.py'
MODULE_UTILS = REPO / 'plugins' / 'module_utils'
LOG = '/var/local/log/apache2/error.log'
READY = 'AH00163|AH00489'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='jailsafe acts as root only')


@pytest.fixture
def root():
    parent = tempfile.mkdtemp(prefix='jailhost-ut-', dir='/var/lib')
    os.chmod(parent, 0o755)
    jail = Path(parent) / 'root'
    (jail / 'var/local/log/apache2').mkdir(parents=True)
    yield jail
    shutil.rmtree(parent)


def helper(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    # The helper imports jailsafe from /usr/local/libexec/jailhost; here from the tree.
    code = f'import sys; sys.path.append({str(MODULE_UTILS)!r}); sys.argv[1:] = {list(args)!r}; ' \
           f'exec(compile(open({str(HELPER)!r}).read(), "jail_access.py", "exec"))'
    return subprocess.run([sys.executable, '-I', '-c', code], capture_output=True, text=True, timeout=timeout,
                          check=False)


def write(root: Path, name: str, text: str, mode: str = 'a') -> None:
    with open(root / 'var/local/log/apache2' / name, mode, encoding='utf-8') as handle:
        handle.write(text)


def test_log_size_lists_every_file_of_the_ring(root):
    write(root, 'error.log', 'x' * 10)
    write(root, 'error.log.2', 'y' * 7)
    result = helper('log-size', str(root), LOG, '4')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [10, 0, 7, 0]
    # One file (the role before issue 16, and a caller without a count).
    assert json.loads(helper('log-size', str(root), LOG).stdout) == [10]


def later(delay: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()))
    thread.start()
    return thread


@pytest.mark.parametrize('name, old', [
    ('error.log', 'AH00163 old start\n'),      # the file rotatelogs writes on, appended
    ('error.log.2', ''),                       # the ring moved on to another file
])
def test_log_wait_finds_the_ready_line_in_any_file_of_the_ring(root, name, old):
    write(root, 'error.log', 'AH00163 an earlier start\n' + old)
    sizes = helper('log-size', str(root), LOG, '3').stdout.strip()
    thread = later(0.5, lambda: write(root, name, '[mpm_prefork:notice] AH00163: resuming normal operations\n'))
    result = helper('log-wait', str(root), LOG, sizes, str(os.getpid()), '', READY)
    thread.join()
    assert result.returncode == 0, result.stderr


def test_log_wait_reads_a_truncated_file_from_its_start(root):
    """rotatelogs truncates a file of the ring when it comes round to it: it is smaller than
    measured, and the new lines are at its start."""
    write(root, 'error.log.1', 'z' * 5000)
    sizes = helper('log-size', str(root), LOG, '3').stdout.strip()
    thread = later(0.5, lambda: write(root, 'error.log.1', 'AH00489: resuming normal operations\n', 'w'))
    result = helper('log-wait', str(root), LOG, sizes, str(os.getpid()), '', READY)
    thread.join()
    assert result.returncode == 0, result.stderr


def test_log_wait_ignores_what_was_there_before(root):
    """Old "resuming" lines before the measured sizes do not count: the wait fails after 15 s
    (here: as soon as the watched process is gone, with the end of the log)."""
    write(root, 'error.log', 'AH00163 an earlier start\n')
    write(root, 'error.log.1', 'AH00163 another earlier start\n')
    sizes = helper('log-size', str(root), LOG, '2').stdout.strip()
    gone = subprocess.Popen(['true'])
    gone.wait()
    result = helper('log-wait', str(root), LOG, sizes, str(gone.pid), '', READY)
    assert result.returncode == 1 and 'exited' in result.stderr, result.stderr


def test_log_wait_refuses_a_link_in_the_ring(root):
    """The jail's root may replace a file of the ring with a link to a host file: never read."""
    write(root, 'error.log', '')
    os.symlink('/etc/shadow', root / 'var/local/log/apache2/error.log.1')
    result = helper('log-size', str(root), LOG, '2')
    assert result.returncode == 1 and 'error.log.1' in result.stderr, result.stderr
