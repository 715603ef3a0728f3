# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real tests of jailsafe, the collection's one place for host code touching a jail root: nothing
is mocked. A tiny jail root is built in a root-owned directory under /var/lib (not /tmp: check_root
refuses a root below a directory other users can write to) from the host's /bin/sh, /bin/cat,
/usr/bin/id, /usr/bin/readlink and their libraries, plus a small C probe compiled at test time when
gcc is there. Commands run in it with jailsafe.run and report, from the inside, their capabilities,
no_new_privs, seccomp mode, PID namespace and what the kernel answers to mount, unshare, ptrace and
io_uring_setup.

They need root (namespaces, pivot_root, owners): as root (CI, `make test`) they run; otherwise
they are skipped with that reason.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe
from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JailSafeError, Mount

NOT_ROOT = 'jailsafe.run needs root on the host (namespaces, pivot_root, owners); CI runs the unit tests as root'
PROGRAMS = ('/bin/sh', '/bin/cat', '/usr/bin/id', '/usr/bin/readlink')

PROBE_C = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

static void attempt(const char *name, long rc) {
    printf("%s=%s\n", name, rc == 0 ? "OK" : strerrorname_np(errno));
}

int main(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    unsigned long long bounding = 0;
    int cap;
    if (syscall(SYS_capget, &header, data) != 0) { perror("capget"); return 1; }
    for (cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) bounding |= 1ULL << cap;
    }
    printf("pid=%d\nuid=%d\n", (int)getpid(), (int)getuid());
    printf("CapEff=%016llx\nCapPrm=%016llx\nCapInh=%016llx\nCapBnd=%016llx\n",
           ((unsigned long long)data[1].effective << 32) | data[0].effective,
           ((unsigned long long)data[1].permitted << 32) | data[0].permitted,
           ((unsigned long long)data[1].inheritable << 32) | data[0].inheritable, bounding);
    printf("NoNewPrivs=%d\nSeccomp=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
    fflush(stdout);
    attempt("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    attempt("unshare_user", unshare(CLONE_NEWUSER));
    attempt("unshare_mount", unshare(CLONE_NEWNS));
    attempt("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    attempt("io_uring_setup", syscall(425, 1, NULL));
    attempt("chroot", chroot("/"));
    return 0;
}
'''


def libraries(program: str) -> set[str]:
    out = subprocess.run(['ldd', program], capture_output=True, text=True, check=False).stdout
    return {word for line in out.splitlines() for word in line.split() if word.startswith('/')}


def install(root: Path, path: str) -> None:
    dest = root / path.lstrip('/')
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(path), dest)


@pytest.fixture
def base():
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    path = Path(tempfile.mkdtemp(prefix='jailsafe-test-', dir='/var/lib'))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def root(base):
    """The tiny jail root, one per test (ansible-test units runs each test in a fork of its own, where
    the teardown of a wider fixture would not run)."""
    root = base / 'root'
    files = set(PROGRAMS)
    for program in PROGRAMS:
        files |= libraries(program)
    for path in sorted(files):
        install(root, path)
    for directory in ('dev', 'proc', 'etc', 'usr/sbin', 'mnt'):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / 'tmp').mkdir()
    os.chmod(root / 'tmp', 0o1777)
    (root / 'etc/passwd').write_text('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n')
    (root / 'etc/group').write_text('root:x:0:\nnogroup:x:65534:\n')
    os.chmod(root, 0o755)
    return root


@pytest.fixture
def probe(root, base):
    """/usr/local/bin/probe in the root, compiled at test time (skipped without gcc)."""
    gcc = shutil.which('gcc')
    if gcc is None:
        pytest.skip('gcc is not installed: the syscall probe cannot be built')
    source = base / 'probe.c'
    source.write_text(PROBE_C)
    target = root / 'usr/local/bin/probe'
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([gcc, '-O1', '-o', str(target), str(source)], check=True)
    for library in libraries(str(target)):
        if not (root / library.lstrip('/')).exists():
            install(root, library)
    return '/usr/local/bin/probe'


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(':\t', 1) for line in text.splitlines() if ':\t' in line)


def probe_fields(text: str) -> dict[str, str]:
    return dict(line.split('=', 1) for line in text.splitlines() if '=' in line)


def cap_mask(names) -> int:
    mask = 0
    for name in names:
        mask |= 1 << jailsafe.CAPABILITIES.index(name)
    return mask


# The seccomp table against the kernel headers of this machine


def test_seccomp_syscall_numbers_match_the_kernel_headers():
    header = Path('/usr/include/x86_64-linux-gnu/asm/unistd_64.h')
    if not header.exists():
        pytest.skip(f'{header} is not installed (linux-libc-dev)')
    numbers = {name: int(number) for name, number in
               re.findall(r'^#define __NR_(\w+)\s+(\d+)\s*$', header.read_text(), re.MULTILINE)}
    table = jailsafe.SYSCALLS['x86_64']
    assert {name: numbers.get(name) for name in table} == table
    # Every denied syscall the kernel has is in the table (no name is silently left out of the filter).
    assert [name for name in jailsafe.DENIED_SYSCALLS if name in numbers and name not in table] == []


# The confinement of a command, seen from the inside


def test_a_jail_user_has_no_capability_no_new_privs_and_the_filter(root):
    rc, out, err = jailsafe.run(str(root), ['/bin/cat', '/proc/self/status'], user='nobody')
    assert rc == 0, err
    status = status_fields(out)
    assert (status['Uid'].split()[0], status['Gid'].split()[0]) == ('65534', '65534')
    for field in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'):
        assert int(status[field], 16) == 0, (field, status[field])
    assert status['NoNewPrivs'] == '1' and status['Seccomp'] == '2'


def test_dev_shm_is_a_bounded_tmpfs_of_its_own(root):
    """initdb (run by postgresql's postinst) needs POSIX shared memory: /dev/shm is a 64 MiB tmpfs
    a jail user can write, not a directory of the 1 MiB /dev."""
    rc, out, err = jailsafe.run(str(root), ['/bin/sh', '-c', 'echo x > /dev/shm/probe && cat /proc/self/mountinfo'],
                                user='nobody')
    assert rc == 0, err
    shm = [line for line in out.splitlines() if line.split()[4] == '/dev/shm']
    assert len(shm) == 1 and ' tmpfs ' in shm[0] and 'size=65536k' in shm[0], out


def test_id_runs_as_the_jail_user_of_the_jail_passwd(root):
    rc, out, _err = jailsafe.run(str(root), ['/usr/bin/id'], user='nobody')
    assert rc == 0 and out.startswith('uid=65534(nobody) gid=65534(nogroup)')
    with pytest.raises(JailSafeError, match="user 'www-data' does not exist in the jail root"):
        jailsafe.run(str(root), ['/usr/bin/id'], user='www-data')


@pytest.mark.parametrize('caps', [(), jailsafe.APT_CAPABILITIES])
def test_root_keeps_exactly_the_capabilities_asked(root, probe, caps):
    rc, out, err = jailsafe.run(str(root), [probe], caps=caps)
    assert rc == 0, err
    fields = probe_fields(out)
    mask = cap_mask(caps)
    assert fields['uid'] == '0' and fields['pid'] == '1'
    assert int(fields['CapEff'], 16) == mask and int(fields['CapPrm'], 16) == mask
    assert int(fields['CapBnd'], 16) == mask and int(fields['CapInh'], 16) == 0
    assert fields['NoNewPrivs'] == '1' and fields['Seccomp'] == '2'


def test_root_gets_no_proc(root):
    # uid 0 could write the host's /proc/sys through a /proc of its own: it gets none.
    rc, _out, err = jailsafe.run(str(root), ['/bin/cat', '/proc/self/status'])
    assert rc != 0 and 'No such file' in err


@pytest.mark.parametrize('user', ['root', 'nobody'])
def test_mount_unshare_ptrace_io_uring_are_denied(root, probe, user):
    caps = jailsafe.APT_CAPABILITIES if user == 'root' else ()
    rc, out, err = jailsafe.run(str(root), [probe], user=user, caps=caps)
    assert rc == 0, err
    fields = probe_fields(out)
    for name in ('mount', 'unshare_user', 'unshare_mount', 'ptrace', 'io_uring_setup', 'chroot'):
        assert fields[name] == 'EPERM', (name, fields[name])


def test_capabilities_that_leave_a_root_are_never_kept(root):
    for cap in ('sys_admin', 'sys_chroot', 'sys_ptrace', 'dac_read_search', 'mknod', 'net_admin'):
        with pytest.raises(JailSafeError, match='never kept'):
            jailsafe.run(str(root), ['/usr/bin/id'], caps=[cap])
    with pytest.raises(JailSafeError, match='only be kept for root'):
        jailsafe.run(str(root), ['/usr/bin/id'], user='nobody', caps=['chown'])


def test_a_trojan_sees_neither_host_processes_nor_capabilities(root):
    """The jail replaced its /usr/bin/id (what a host tool would run) by a script: run through
    jailsafe.run, it is PID 1 of its own namespace, sees only its own processes and has nothing."""
    with open('/proc/1/cmdline', 'rb') as handle:
        host_init = handle.read().split(b'\0')[0].decode()
    trojan = root / 'usr/bin/id'
    original = trojan.read_bytes()
    trojan.write_text('#!/bin/sh\n'
                      'cat /proc/self/status\n'
                      'echo "pid1=$(readlink /proc/1/exe)"\n'
                      'echo "cmdline1=$(cat /proc/1/cmdline)"\n'
                      'for p in /proc/[0-9]*; do echo "proc=${p#/proc/}"; done\n')
    try:
        rc, out, err = jailsafe.run(str(root), ['/usr/bin/id'], user='nobody')
        assert rc == 0, err
        status = status_fields(out)
        assert int(status['CapEff'], 16) == 0 and int(status['CapBnd'], 16) == 0
        assert status['NoNewPrivs'] == '1' and status['Seccomp'] == '2'
        pid1 = re.search(r'^pid1=(.*)$', out, re.MULTILINE).group(1)
        assert pid1 == '/bin/sh' and pid1 != host_init
        assert re.search(r'^cmdline1=/bin/sh/usr/bin/id$', out, re.MULTILINE), out  # its own argv, NULs dropped
        pids = [int(line[5:]) for line in out.splitlines() if line.startswith('proc=')]
        assert pids and max(pids) < 10, pids          # 1 (the trojan), its cat / readlink children
        assert host_init not in out
        # As root (as apt runs), the same trojan has no /proc at all.
        rc, out, _err = jailsafe.run(str(root), ['/usr/bin/id'], caps=jailsafe.APT_CAPABILITIES)
        assert 'CapEff' not in out and re.search(r'^pid1=$', out, re.MULTILINE)
    finally:
        trojan.write_bytes(original)


def test_the_host_environment_and_descriptors_do_not_reach_the_jail(root):
    os.environ['JAILSAFE_TEST_SECRET'] = 'host-secret'
    keep = os.open('/etc/hostname', os.O_RDONLY)
    os.set_inheritable(keep, True)
    try:
        rc, out, _err = jailsafe.run(str(root), ['/bin/sh', '-c', 'set; ls_fd=""; for f in 3 4 5 6 7 8 9; do '
                                                 '[ -e /proc/self/fd/$f ] && ls_fd="$ls_fd $f"; done; echo "fds=$ls_fd"'],
                                     user='nobody')
    finally:
        os.close(keep)
        del os.environ['JAILSAFE_TEST_SECRET']
    assert rc == 0 and 'host-secret' not in out
    assert re.search(r'^fds=$', out, re.MULTILINE), out


# Mount targets, writes and reads never follow a link of the jail


def test_a_link_at_a_mount_target_is_refused(root, base):
    outside = base / 'outside-mnt'
    outside.mkdir()
    (root / 'mnt/target').symlink_to(str(outside))
    policy = base / 'policy-rc.d'
    policy.write_text('#!/bin/sh\nexit 101\n')
    (root / 'usr/sbin/policy-rc.d').symlink_to('/etc/passwd')
    try:
        with pytest.raises(JailSafeError, match=re.escape(f'{root}/mnt/target: a symbolic link on the way, refused')):
            jailsafe.run(str(root), ['/usr/bin/id'], mounts=[Mount('tmpfs', 'mnt/target')])
        with pytest.raises(JailSafeError, match=re.escape(f'{root}/usr/sbin/policy-rc.d: a symbolic link')):
            jailsafe.run(str(root), ['/usr/bin/id'], mounts=[Mount('bind-ro', 'usr/sbin/policy-rc.d', str(policy))])
        assert os.listdir(outside) == []
        # The same mounts on real targets work, and are read-only / private to the command.
        (root / 'usr/sbin/policy-rc.d').unlink()
        (root / 'usr/sbin/policy-rc.d').write_text('')
        (root / 'mnt/target').unlink()
        (root / 'mnt/target').mkdir()
        rc, out, err = jailsafe.run(str(root), ['/bin/sh', '-c', 'cat /usr/sbin/policy-rc.d; echo x > /mnt/target/f && '
                                                'cat /mnt/target/f; echo y > /usr/sbin/policy-rc.d || echo read-only'],
                                    mounts=[Mount('tmpfs', 'mnt/target'),
                                            Mount('bind-ro', 'usr/sbin/policy-rc.d', str(policy))])
        assert rc == 0, err
        assert out == '#!/bin/sh\nexit 101\nx\nread-only\n'
        assert os.listdir(root / 'mnt/target') == [] and (root / 'usr/sbin/policy-rc.d').read_text() == ''
    finally:
        for path in (root / 'mnt/target', root / 'usr/sbin/policy-rc.d'):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                path.rmdir()


def test_write_file_refuses_a_link_in_a_parent_where_open_would_follow_it(root, base):
    outside = base / 'outside-dir'
    outside.mkdir()
    (root / 'etc/apache2').symlink_to(str(outside))
    try:
        with pytest.raises(JailSafeError, match=re.escape(f'{root}/etc/apache2: a symbolic link on the way, refused')):
            jailsafe.write_file(str(root), 'etc/apache2/ports.conf', b'Listen 80\n')
        assert os.listdir(outside) == []
        # Control: what a plain open() of the same path does.
        with open(root / 'etc/apache2/ports.conf', 'wb') as handle:
            handle.write(b'through the link\n')
        assert (outside / 'ports.conf').read_bytes() == b'through the link\n'
    finally:
        (root / 'etc/apache2').unlink()


def test_write_file_never_writes_through_a_link(root, base):
    outside = base / 'host-file'
    outside.write_bytes(b'host content\n')
    os.chmod(outside, 0o600)
    (root / 'etc/envvars').symlink_to(str(outside))
    try:
        with pytest.raises(JailSafeError, match=re.escape(f'{root}/etc/envvars')):
            jailsafe.write_file(str(root), '/etc/envvars', b'export A=1\n', mode=0o644, uid=65534)
        assert outside.read_bytes() == b'host content\n'
        assert (os.stat(outside).st_mode & 0o777, os.stat(outside).st_uid) == (0o600, 0)
        # Control: a plain open() follows the link to the host file.
        with open(root / 'etc/envvars', 'rb') as handle:
            assert handle.read() == b'host content\n'
    finally:
        (root / 'etc/envvars').unlink()
    # A real file is written atomically with its owner and mode, and no temporary file is left.
    assert jailsafe.write_file(str(root), '/etc/envvars', b'export A=1\n', mode=0o640, uid=65534, gid=65534)
    assert not jailsafe.write_file(str(root), '/etc/envvars', b'export A=1\n', mode=0o640, uid=65534, gid=65534)
    info = os.stat(root / 'etc/envvars')
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 65534, 65534)
    assert not [name for name in os.listdir(root / 'etc') if 'jailhost' in name]
    assert jailsafe.remove_file(str(root), '/etc/envvars') and not jailsafe.remove_file(str(root), '/etc/envvars')


@pytest.mark.parametrize('target', ['/etc/hostname', '../../../../../../etc/hostname'])
def test_read_file_follows_links_inside_the_jail_only(root, target):
    with open('/etc/hostname', 'rb') as handle:
        host = handle.read()
    (root / 'etc/name').symlink_to(target)
    try:
        # The jail has no /etc/hostname: nothing, never the host's.
        assert jailsafe.read_file(str(root), 'etc/name') is None
        (root / 'etc/hostname').write_bytes(b'jail\n')
        assert jailsafe.read_file(str(root), 'etc/name') == b'jail\n' != host
        # follow=False (for what host code acts on) refuses the link.
        with pytest.raises(JailSafeError, match='a symbolic link on the way'):
            jailsafe.read_file(str(root), 'etc/name', follow=False)
    finally:
        (root / 'etc/name').unlink()
        if (root / 'etc/hostname').exists():
            (root / 'etc/hostname').unlink()


def test_reads_are_bounded_and_regular_files_only(root):
    os.mkfifo(root / 'tmp/fifo')
    (root / 'tmp/big').write_bytes(b'x' * 100)
    try:
        with pytest.raises(JailSafeError, match='is not a regular file'):
            jailsafe.read_file(str(root), 'tmp/fifo')
        with pytest.raises(JailSafeError, match='is larger than 10 bytes'):
            jailsafe.read_file(str(root), 'tmp/big', limit=10)
        assert jailsafe.read_tail(str(root), 'tmp/big', 5) == b'xxxxx'
    finally:
        (root / 'tmp/fifo').unlink()
        (root / 'tmp/big').unlink()


def test_check_root(root, base):
    assert jailsafe.check_root(str(root)) == str(root)
    with pytest.raises(JailSafeError, match='is the host itself'):
        jailsafe.check_root('/')
    with pytest.raises(JailSafeError, match='must be an absolute path'):
        jailsafe.check_root('var/lib')
    os.chmod(base, 0o777)
    try:
        with pytest.raises(JailSafeError, match=f'{base} .* must be owned by root and writable by root only'):
            jailsafe.check_root(str(root))
    finally:
        os.chmod(base, 0o755)
    if Path('/tmp').stat().st_mode & 0o002:
        with tempfile.TemporaryDirectory() as under_tmp:
            with pytest.raises(JailSafeError, match='writable by root only'):
                jailsafe.check_root(under_tmp)


def test_jail_names():
    assert jailsafe.valid_jail_name('web') and jailsafe.valid_jail_name('a' * 32)
    for name in ('', 'Web', '1web', 'a' * 33, 'web\n', 'a/b', '..', None, 7):
        assert not jailsafe.valid_jail_name(name)


def test_relative_refuses_dotdot():
    assert jailsafe.relative('/etc//apache2/./x') == 'etc/apache2/x'
    with pytest.raises(JailSafeError, match="must not contain '..'"):
        jailsafe.relative('/etc/../x')


def test_seccomp_filter_refuses_an_unknown_architecture():
    with pytest.raises(JailSafeError, match='refusing to run unconfined'):
        jailsafe.seccomp_program('riscv64')
    assert len(jailsafe.seccomp_program(platform.machine() if platform.machine() in jailsafe.SYSCALLS
                                        else 'x86_64')) % 8 == 0
