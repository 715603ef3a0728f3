"""What firejail copies from the host into a jail stays out of it (issue 14).

1. Hardware devices (the sandbox module's hardening.no_hardware_devices).

firejail's private-dev gives a jail a minimal /dev, but it copies in the host's GPU (dri), sound,
video, DVB, U2F and input devices when the host has them. The test host (a container) has none,
so the suite creates two device nodes on it (/dev/dri/card0, /dev/snd/controlC0), restarts the
jail beta and looks at the jail's /dev through its daemon's root. CONTROL: a plain
``firejail --private-dev`` on the same host shows both: the directives are what keeps them out.

2. The host's resolvers. ``--chroot`` copies the host's /etc/resolv.conf into the jail root at
every start (host resolvers and search domains: a map of the operator's network). The profile's
``dns`` line (the sandbox module's ``dns``, default none: 127.0.0.1) mounts the jail's own over
it. CONTROL: the file firejail wrote into the jail root, read from the host, is the host's.
And firejail's copy, done as host root, does not follow a link the jail planted there: the
jail's root replaces its /etc/resolv.conf with a link to a host file; after a restart the host
file is unchanged (CONTROL: read through the link from the host, the link leads to it).
"""

from __future__ import annotations

import uuid

from hostlib import jail_pids, wait_until

NODES = {"/dev/dri/card0": "226 0", "/dev/snd/controlC0": "116 0"}


def test_host_gpu_and_sound_devices_are_not_copied_into_a_jail(host):
    host.run_expect([0], " && ".join(f"mkdir -p {path.rsplit('/', 1)[0]} && mknod {path} c {nums}"
                                     for path, nums in NODES.items()))
    try:
        profile = host.file("/etc/firejail/jailhost-beta.profile").content_string.split("\n")
        assert {"no3d", "nosound", "novideo", "nou2f", "noinput", "notv", "nodvd"} <= set(profile)
        host.run_expect([0], "systemctl restart jailhost-beta.service")

        def jail_dev():
            # A daemon read just before systemd restarts the jail (firejail 0.9.72's ARP probe
            # failure) is gone when listed: read the jail's processes again until one answers.
            _, _, daemons = jail_pids(host, "beta")
            listing = host.run(f"ls /proc/{daemons[0]}/root/dev")
            return listing.stdout.split() if listing.rc == 0 else None
        inside = wait_until(jail_dev, timeout=30)[0]
        assert "null" in inside and "dri" not in inside and "snd" not in inside, inside
        control = host.check_output("firejail --noprofile --quiet --private-dev ls /dev").split()
        print(f"  jail beta's /dev: {inside}; firejail --private-dev alone: {control}")
        assert "dri" in control and "snd" in control, control
    finally:
        host.run("rm -rf /dev/dri /dev/snd")


ROOT = "/var/lib/jailhost/jails/beta/root"


def restart_beta(host) -> int:
    host.run_expect([0], "systemctl restart jailhost-beta.service")
    _, _, daemons = wait_until(lambda: jail_pids(host, "beta"), timeout=30)[0]
    return daemons[0]


def test_the_hosts_resolvers_stay_out_of_a_jail(host):
    daemon = restart_beta(host)
    inside = host.check_output(f"cat /proc/{daemon}/root/etc/resolv.conf")
    hosts = host.check_output("cat /etc/resolv.conf")
    underneath = host.check_output(f"cat {ROOT}/etc/resolv.conf")
    print(f"  jail beta reads: {inside!r}; host: {hosts!r}; written into the jail root: {underneath!r}")
    assert [line for line in inside.splitlines() if line.strip()] == ["nameserver 127.0.0.1"]
    assert underneath == hosts  # the control: without the dns line the jail would read this


def test_firejails_copy_of_resolv_conf_follows_no_link_of_the_jail(host):
    target = f"/root/jailhost-resolv-target-{uuid.uuid4().hex[:8]}"
    host.run_expect([0], f"echo host-owned > {target}")
    try:
        host.run_expect([0], f"rm -f {ROOT}/etc/resolv.conf && ln -s {target} {ROOT}/etc/resolv.conf")
        assert host.check_output(f"cat {ROOT}/etc/resolv.conf") == "host-owned"  # the control
        restart_beta(host)
        assert host.check_output(f"cat {target}") == "host-owned"
        assert not host.file(f"{ROOT}/etc/resolv.conf").is_symlink
    finally:
        host.run(f"rm -f {target}")
