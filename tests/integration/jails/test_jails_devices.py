"""Hardware devices stay out of the jails (issue 14; the sandbox module's hardening.no_hardware_devices).

firejail's private-dev gives a jail a minimal /dev, but it copies in the host's GPU (dri), sound,
video, DVB, U2F and input devices when the host has them. The test host (a container) has none,
so the suite creates two device nodes on it (/dev/dri/card0, /dev/snd/controlC0), restarts the
jail beta and looks at the jail's /dev through its daemon's root. CONTROL: a plain
``firejail --private-dev`` on the same host shows both: the directives are what keeps them out.
"""

from __future__ import annotations

from hostlib import jail_pids, wait_until

NODES = {"/dev/dri/card0": "226 0", "/dev/snd/controlC0": "116 0"}


def test_host_gpu_and_sound_devices_are_not_copied_into_a_jail(host):
    host.run_expect([0], " && ".join(f"mkdir -p {path.rsplit('/', 1)[0]} && mknod {path} c {nums}"
                                     for path, nums in NODES.items()))
    try:
        profile = host.file("/etc/firejail/jailhost-beta.profile").content_string.split("\n")
        assert {"no3d", "nosound", "novideo", "nou2f", "noinput", "notv", "nodvd"} <= set(profile)
        host.run_expect([0], "systemctl restart jailhost-beta.service")
        _, _, daemons = wait_until(lambda: jail_pids(host, "beta"), timeout=30)[0]
        inside = host.check_output(f"ls /proc/{daemons[0]}/root/dev").split()
        assert "null" in inside and "dri" not in inside and "snd" not in inside, inside
        control = host.check_output("firejail --noprofile --quiet --private-dev ls /dev").split()
        print(f"  jail beta's /dev: {inside}; firejail --private-dev alone: {control}")
        assert "dri" in control and "snd" in control, control
    finally:
        host.run("rm -rf /dev/dri /dev/snd")
