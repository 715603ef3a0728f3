"""Host accounts that share a numeric uid with a jail user cannot read the jail.

A jail's system users (postgres, www-data, daemon...) have uids that mean other accounts on the
host (the db jail's postgres is uid 100, the host's messagebus too). The jails and the base images
sit under root-only directories (0700), so no host account reaches a jail's files with its own uid.
The control opens the jails directory for traversal (0711) for one read: the same account then
reads the file, so the refusal came from that directory alone.
"""

from __future__ import annotations

import uuid

JAILS_DIR = "/var/lib/jailhost/jails"
BASE_DIR = "/var/lib/jailhost/base"
# A jail account per jail, the first that exists: the daemons' users, else Debian's daemon (uid 1).
ACCOUNTS = ("postgres", "www-data", "daemon")


def jail_account(host, jail: str) -> tuple[str, int, int]:
    passwd = host.file(f"{JAILS_DIR}/{jail}/root/etc/passwd").content_string
    entries = {f[0]: (int(f[2]), int(f[3])) for f in (line.split(":") for line in passwd.splitlines()) if len(f) == 7}
    name = next(n for n in ACCOUNTS if n in entries)
    return name, *entries[name]


def read_as(host, uid: int, gid: int, path: str):
    return host.run(f"setpriv --reuid={uid} --regid={gid} --clear-groups -- cat {path}")


def test_jails_and_base_directories_are_root_only(host):
    for path in (JAILS_DIR, BASE_DIR):
        directory = host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700), path
    # Their parent, the collection's own directory, keeps the usual mode: the file module would have
    # given it their 0700 when it created it with them.
    parent = host.file("/var/lib/jailhost")
    assert (parent.user, parent.mode) == ("root", 0o755)


def test_a_host_uid_equal_to_a_jail_users_uid_cannot_read_the_jail(host):
    jails = [j for j in host.check_output(f"ls {JAILS_DIR}").split()
             if host.run(f"mountpoint -q {JAILS_DIR}/{j}/root").rc == 0]
    assert jails, "no mounted jail root"
    for jail in jails:
        name, uid, gid = jail_account(host, jail)
        secret = uuid.uuid4().hex
        path = f"{JAILS_DIR}/{jail}/root/var/tmp/jailhost-uid-probe-{secret[:8]}"
        host.run_expect([0], f"umask 077 && echo {secret} > {path} && chown {uid}:{gid} {path}")
        host_account = host.run(f"getent passwd {uid}").stdout.split(":")[0] or f"uid {uid} (no host name)"
        try:
            refused = read_as(host, uid, gid, path)
            assert refused.rc != 0 and "Permission denied" in refused.stderr, (jail, refused.stdout, refused.stderr)
            assert secret not in refused.stdout
            # Controls: root reads it; the same uid reads it once the jails directory is traversable.
            assert host.check_output(f"cat {path}") == secret
            host.run_expect([0], f"chmod 0711 {JAILS_DIR}")
            try:
                opened = read_as(host, uid, gid, path)
            finally:
                host.run_expect([0], f"chmod 0700 {JAILS_DIR}")
            assert opened.rc == 0 and opened.stdout.strip() == secret, (jail, opened.stderr)
            print(f"  {jail}: its {name} is uid {uid}, on the host {host_account}: EACCES on {JAILS_DIR} (0700); "
                  f"read with the directory opened (0711): yes")
        finally:
            host.run(f"rm -f {path}")
