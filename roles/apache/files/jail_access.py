# jailhost.jails apache role: host-side work on a web jail's files, through the host's jailsafe
# (/usr/local/libexec/jailhost/jailsafe.py, installed by the rootfs role). Run by the host's
# Python in isolated mode (python3 -I -c THIS ACTION ARGS...). The jail may have replaced any of
# its files or directories with a symbolic link: every path below is resolved inside the jail root
# with no link followed (a link fails the action with its path), and no program of the jail runs.
#
#   log-size ROOT LOG [FILES]            sizes of the error log's ring (LOG, LOG.1, ... LOG.<FILES-1>,
#                                        rotatelogs -n) as a JSON list, 0 for a missing file
#   log-wait ROOT LOG SIZES PID SIGNAL READY
#                                        send SIGNAL (if any) to Apache's parent PID, then wait until
#                                        a file of the ring, after its size in SIZES (from its start if
#                                        it is now smaller: rotatelogs truncated it), matches READY
#                                        (15 s); fail with the end of the log if the parent exits
#   selfsigned ROOT DIR KEY CERT -- OPENSSL-REQ-ARGS...
#                                        unless CERT exists in the jail: generate a key and a
#                                        self-signed certificate with the host's openssl in a private
#                                        host directory and write them into the jail (DIR 0700, files
#                                        0600, root); prints "created" when it did
#   keycheck ROOT CERT KEY               the key belongs to the certificate (host openssl on copies
#                                        read through the jail root)
#   sync ROOT STAGE APPROOT DEST...      copy STAGE/DEST (a file or a directory tree staged on the
#                                        host) to APPROOT/DEST in the jail: files 0644 and
#                                        directories 0755, root-owned; prints the changed jail paths
import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, '/usr/local/libexec/jailhost')
import jailsafe  # noqa: E402  pylint: disable=wrong-import-position,import-error


def fail(message):
    sys.stderr.write(f'{message}\n')
    sys.exit(1)


def ring(log, files):
    """The files of a rotatelogs -n ring, in its order of use: LOG, LOG.1, ..."""
    return [log] + [f'{log}.{number}' for number in range(1, files)]


def log_size(root, log, files=1):
    sizes = []
    for path in ring(log, files):
        info = jailsafe.stat_file(root, path)
        sizes.append(0 if info is None else info.st_size)
    return json.dumps(sizes)


def log_wait(root, log, sizes, pid, signal_name, ready):
    import re  # pylint: disable=import-outside-toplevel
    import signal  # pylint: disable=import-outside-toplevel
    offsets = json.loads(sizes)
    if isinstance(offsets, int):
        offsets = [offsets]
    paths = ring(log, len(offsets))
    if signal_name:
        os.kill(pid, getattr(signal, 'SIG' + signal_name))
    pattern = re.compile(ready)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        texts = []
        for path, offset in zip(paths, offsets):
            info = jailsafe.stat_file(root, path)
            # rotatelogs truncates a file of the ring when it comes round to it again.
            start = offset if info is not None and info.st_size >= offset else 0
            texts.append(jailsafe.read_tail(root, path, 1 << 20, start).decode('utf-8', 'replace'))
            if pattern.search(texts[-1]):
                return
        if not os.path.isdir(f'/proc/{pid}'):
            text = max(texts, key=len)
            fail(f'Apache (pid {pid}) exited:\n' + '\n'.join(text.splitlines()[-20:]))
        time.sleep(0.1)
    fail(f'Apache did not report that it serves in {root.rstrip("/")}{log} within 15 s')


def make_directory(root, path, mode):
    """PATH (its parent must exist) as a root-owned directory of MODE; no link followed."""
    rel = jailsafe.relative(path)
    parent, _sep, name = rel.rpartition('/')
    rootfd = jailsafe.open_root(root)
    try:
        try:
            dirfd = jailsafe.open_in(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise jailsafe.JailSafeError(jailsafe.describe_error(root, parent or '/', exc)) from None
    finally:
        os.close(rootfd)
    changed = False
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=dirfd)
            changed = True
        except FileExistsError:
            pass
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise jailsafe.JailSafeError(
                    f'{root.rstrip("/")}/{rel}: not a directory or a symbolic link, refused '
                    f'(it could lead out of the jail)') from None
            raise
        try:
            info = os.fstat(fd)
            if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) != (0, 0, mode):
                os.fchown(fd, 0, 0)
                os.fchmod(fd, mode)
                changed = True
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)
    return changed


def exists(root, path):
    rootfd = jailsafe.open_root(root)
    try:
        os.close(jailsafe.open_in(rootfd, path, os.O_PATH))
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise jailsafe.JailSafeError(jailsafe.describe_error(root, path, exc)) from None
    finally:
        os.close(rootfd)


def selfsigned(root, directory, key, cert, openssl_args):
    if exists(root, cert):
        return
    make_directory(root, directory, 0o700)
    with tempfile.TemporaryDirectory(prefix='jailhost-selfsigned.') as private:
        subprocess.run(['openssl', *openssl_args, '-keyout', f'{private}/key', '-out', f'{private}/cert'],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={'PATH': '/usr/bin:/bin'})
        for source, path in (('key', key), ('cert', cert)):
            with open(f'{private}/{source}', 'rb') as handle:
                jailsafe.write_file(root, path, handle.read(), 0o600, 0, 0)
    print('created')


def keycheck(root, cert, key):
    digests = []
    with tempfile.TemporaryDirectory(prefix='jailhost-keycheck.') as private:
        for name, path, command in (('cert', cert, ['x509', '-noout', '-pubkey']), ('key', key, ['pkey', '-pubout'])):
            data = jailsafe.read_file(root, path, 1 << 20)
            if data is None:
                fail(f'{root.rstrip("/")}{path} does not exist')
            with open(os.open(f'{private}/{name}', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), 'wb') as handle:
                handle.write(data)
            result = subprocess.run(['openssl', *command, '-in', f'{private}/{name}'], capture_output=True,
                                    check=False, env={'PATH': '/usr/bin:/bin'})
            digests.append(result.stdout if result.returncode == 0 else None)
    # Each side must parse: two failed openssl runs would give two equal outputs.
    if None in digests or digests[0] != digests[1]:
        fail('apache_tls_key does not belong to apache_tls_certificate, or one is not valid PEM')


def sync(root, stage, app_root, dests):
    changed = []
    for dest in dests:
        top = os.path.join(stage, dest)
        jail_top = f'{app_root.rstrip("/")}/{jailsafe.relative(dest)}'
        if os.path.isdir(top) and not os.path.islink(top):
            # Parents of a nested dest (css/site.css) are directories of the app, 0755.
            for parent in _parents(app_root, jail_top):
                if make_directory(root, parent, 0o755):
                    changed.append(parent)
            for current, dirs, files in os.walk(top):
                dirs.sort()
                rel = os.path.relpath(current, top)
                jail_dir = jail_top if rel == '.' else f'{jail_top}/{rel}'
                if make_directory(root, jail_dir, 0o755):
                    changed.append(jail_dir)
                for name in sorted(files):
                    with open(os.path.join(current, name), 'rb') as handle:
                        if jailsafe.write_file(root, f'{jail_dir}/{name}', handle.read(), 0o644, 0, 0):
                            changed.append(f'{jail_dir}/{name}')
        else:
            for parent in _parents(app_root, jail_top):
                if make_directory(root, parent, 0o755):
                    changed.append(parent)
            with open(top, 'rb') as handle:
                if jailsafe.write_file(root, jail_top, handle.read(), 0o644, 0, 0):
                    changed.append(jail_top)
    print(json.dumps({'changed': changed}))


def _parents(app_root, path):
    """The directories between APP_ROOT (excluded) and PATH (excluded)."""
    base = app_root.rstrip('/')
    rest = path[len(base) + 1:].split('/')[:-1]
    return [f'{base}/' + '/'.join(rest[:i + 1]) for i in range(len(rest))]


def main(args):
    action = args.pop(0)
    root = jailsafe.check_root(args.pop(0), 'the apache role')
    if action == 'log-size':
        print(log_size(root, args[0], int(args[1]) if len(args) > 1 else 1))
    elif action == 'log-wait':
        log_wait(root, args[0], args[1], int(args[2]), args[3], args[4])
    elif action == 'selfsigned':
        directory, key, cert, separator = args[:4]
        if separator != '--':
            fail('selfsigned: ROOT DIR KEY CERT -- OPENSSL-ARGS')
        selfsigned(root, directory, key, cert, args[4:])
    elif action == 'keycheck':
        keycheck(root, args[0], args[1])
    elif action == 'sync':
        sync(root, args[0], args[1], args[2:])
    else:
        fail(f'unknown action {action}')


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except (jailsafe.JailSafeError, OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode('utf-8', 'replace').strip() if isinstance(exc, subprocess.CalledProcessError) else ''
        fail(f'jailhost apache: {exc}{": " + detail if detail else ""}')
