"""A jail that fills its disk hurts only itself (issue 14, "Exhaustion"; docs/security.md).

Two throwaway jails beside alpha and beta: ``fill`` with ``rootfs_jails[].size: 128M`` (its own
layer an ext4 image on a loop device) and ``spill`` without a size (its layer on the host's
filesystem, as every jail before). Root in each, with its daemon's confinement (jailenter.py),
writes one file in 1 MiB steps until the kernel refuses or 192 MiB are written.

* fill gets ENOSPC at its bound; the image's blocks on the host did not grow (they were allocated
  when the image was made), alpha and beta keep serving and writing, fill keeps serving.
* CONTROL: spill writes all 192 MiB, past fill's bound, and its layer on the host grew by them.

Then the size's life: a second run changes nothing, check mode changes nothing; a smaller or a
larger size, a size on a jail made without one and a malformed size fail before any change; after
a reboot the layer is mounted before the jail and the data is there.
"""

from __future__ import annotations

import pytest

from attacklib import install_jailenter, jail_run
from hostlib import jail_pids, load_vars, reboot, run_play, wait_until

VARS = load_vars(__file__)
JAILS_DIR = "/var/lib/jailhost/jails"
FILL = {"name": "fill", "ip": "10.66.0.13", "size": "128M"}
SPILL = {"name": "spill", "ip": "10.66.0.14"}
MIB = 1 << 20
LIMIT = 192 * MIB
# alpha's and beta's firejail parents: nothing here but the reboot restarts them.
OTHERS: dict = {}

# Root in the jail writes LIMIT bytes at most, 1 MiB at a time, and reports how far it got.
WRITE = r'''
path, limit, written = "@PATH@", @LIMIT@, 0
chunk = b"\xa5" * (1 << 20)
try:
    with open(path, "wb") as handle:
        while written < limit:
            written += os.write(handle.fileno(), chunk)
        os.fsync(handle.fileno())
    out["error"] = None
except OSError as e:
    out["error"] = errno.errorcode.get(e.errno, str(e.errno))
out["written"] = written
'''


def write_in(host, jail: str, path: str, limit: int = LIMIT) -> dict:
    return jail_run(host, jail, WRITE.replace("@PATH@", path).replace("@LIMIT@", str(limit)), timeout=180)


def play(jail: dict, state: str = "present", **rootfs) -> dict:
    entry = {"name": jail["name"], "state": state, "purge": state == "absent", **rootfs}
    if "size" in jail and state == "present":
        entry.setdefault("size", jail["size"])
    root = {"name": f"The {jail['name']} root", "ansible.builtin.include_role": {"name": "jailhost.jails.rootfs"},
            "vars": {"rootfs_jails": [entry]}}
    sandbox = {"name": f"The {jail['name']} sandbox", "jailhost.jails.sandbox": {
        "name": jail["name"], "state": "absent" if state == "absent" else "started"}}
    if state != "absent":
        sandbox["jailhost.jails.sandbox"].update(
            bridge=VARS["bridge_name"], ip=jail["ip"],
            command=["/usr/bin/python3", "-m", "http.server", "8080", "--bind", jail["ip"], "--directory", "/srv"])
        return {"tasks": [root, sandbox]}
    return {"tasks": [sandbox, root]}


def serves(host, ip: str) -> bool:
    """alpha and beta from the host (their admin access in vars.yml); the others from inside
    their own network namespace (the host may not reach them)."""
    jail = next((j for j in (*VARS["jails_under_test"], FILL, SPILL) if j["ip"] == ip), None)
    prefix = ""
    if jail in (FILL, SPILL):
        main = host.run(f"systemctl show -p MainPID --value jailhost-{jail['name']}.service").stdout.strip()
        child = host.run(f"cat /run/firejail/sandbox/{main}").stdout.strip()
        if not child.isdigit():
            return False
        prefix = f"nsenter -t {child} -n "
    return host.run(f"{prefix}curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 http://{ip}:8080/").stdout == "200"


def blocks(host, path: str) -> int:
    """Bytes the host's filesystem holds for PATH (allocated blocks, du)."""
    return int(host.check_output(f"du -s -B1 {path}").split()[0])


def free(host) -> int:
    return int(host.check_output(f"python3 -c 'import os; s = os.statvfs(\"{JAILS_DIR}\"); print(s.f_bavail * s.f_frsize)'"))


@pytest.fixture(scope="module")
def jails(host, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exhaustion")
    others = {n: jail_pids(host, n)[0] for n in ("alpha", "beta")}
    for jail in (FILL, SPILL):
        made = run_play(host, play(jail), tmp)
        assert made.returncode == 0, made.stdout + made.stderr
    install_jailenter(host)
    OTHERS.update(others)
    yield tmp
    for jail in (FILL, SPILL):
        removed = run_play(host, play(jail, "absent"), tmp)
        assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not host.file(f"{JAILS_DIR}/fill").exists
    assert host.run("losetup -l -n -O BACK-FILE").stdout.count(f"{JAILS_DIR}/fill/") == 0, "loop device left"
    assert {n: jail_pids(host, n)[0] for n in ("alpha", "beta")} == OTHERS, "alpha or beta restarted"


def test_the_sized_layer_is_an_image_of_root_on_a_loop_device(host, jails):
    image = host.file(f"{JAILS_DIR}/fill/layer.img")
    assert (image.is_file, image.user, image.mode, image.size) == (True, "root", 0o600, 128 * MIB)
    assert blocks(host, image.path) >= 128 * MIB, "the image is allocated in full"
    mounts = host.check_output(f"findmnt -n -o SOURCE,FSTYPE {JAILS_DIR}/fill/layer").split()
    assert mounts[0].startswith("/dev/loop") and mounts[1] == "ext4", mounts
    root_unit = host.file("/etc/systemd/system/var-lib-jailhost-jails-fill-root.mount").content_string
    assert "Requires=var-lib-jailhost-jails-fill-layer.mount" in root_unit
    assert f"upperdir={JAILS_DIR}/fill/layer/upper" in root_unit
    assert not host.file(f"{JAILS_DIR}/fill/upper").exists
    # The jail sees neither the image nor its mount point.
    listing = jail_run(host, "fill", 'out["ls"] = sorted(os.listdir("/")); out["df"] = os.statvfs("/").f_blocks')
    assert "layer.img" not in listing["ls"] and "layer" not in listing["ls"]


def test_a_jail_that_fills_its_layer_gets_enospc_and_hurts_only_itself(host, jails):
    image = f"{JAILS_DIR}/fill/layer.img"
    before = {"free": free(host), "image": blocks(host, image)}
    result = write_in(host, "fill", "/var/fill.bin")
    after = {"free": free(host), "image": blocks(host, image)}
    print(f"  fill (size 128M): {result['written']} bytes written, then {result['error']}; "
          f"host free {before['free']} -> {after['free']} bytes (other lab hosts share this disk), "
          f"image {before['image']} -> {after['image']} bytes")
    assert result["error"] == "ENOSPC", result
    assert 100 * MIB <= result["written"] <= 128 * MIB, result
    assert after["image"] == before["image"], "the jail's writes took space outside its image"
    # The others keep serving and writing; fill itself keeps serving.
    for jail in ("alpha", "beta"):
        ip = next(j["ip"] for j in VARS["jails_under_test"] if j["name"] == jail)
        assert serves(host, ip), f"{jail} stopped serving"
        wrote = write_in(host, jail, "/var/other.bin", limit=8 * MIB)
        assert wrote == {**wrote, "error": None, "written": 8 * MIB}
        host.run_expect([0], f"rm -f {JAILS_DIR}/{jail}/root/var/other.bin")
    assert serves(host, FILL["ip"])


def test_control_without_a_size_the_same_writes_go_past_the_bound(host, jails):
    upper = f"{JAILS_DIR}/spill/upper"
    before = blocks(host, upper)
    result = write_in(host, "spill", "/var/fill.bin")
    grown = blocks(host, upper) - before
    print(f"  spill (no size): {result['written']} bytes written, error {result['error']}; "
          f"its layer on the host's filesystem grew by {grown} bytes")
    try:
        assert result == {**result, "error": None, "written": LIMIT}
        assert grown >= LIMIT
    finally:
        host.run_expect([0], f"rm -f {JAILS_DIR}/spill/root/var/fill.bin")


def test_rerun_and_check_mode_change_nothing(host, jails):
    again = run_play(host, play(FILL), jails)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout + again.stderr
    check = run_play(host, play(FILL), jails, check=True)
    assert check.returncode == 0 and "changed=0" in check.stdout, check.stdout + check.stderr


def test_bad_sizes_fail_before_any_change(host, jails):
    image = f"{JAILS_DIR}/fill/layer.img"
    stat_before = host.check_output(f"stat -c '%i %s' {image}")
    main = jail_pids(host, "fill")[0]
    cases = {
        "smaller": (play(FILL, size="64M"), "shrinking a layer is not supported"),
        "larger": (play(FILL, size="192M"), "growing a layer is not supported yet"),
        "malformed": (play(FILL, size="2 GB"), "size must be empty or a whole number"),
        "below the minimum": (play(FILL, size="1M"), "below the minimum of 64M"),
    }
    for label, (bad, message) in cases.items():
        result = run_play(host, bad, jails)
        assert result.returncode != 0 and message in result.stdout, (label, result.stdout)
    alpha = run_play(host, {"roles": [{"role": "jailhost.jails.rootfs",
                                       "vars": {"rootfs_jails": [{"name": "alpha", "size": "1G"}]}}]}, jails)
    assert alpha.returncode != 0 and "was created without a size" in alpha.stdout, alpha.stdout
    assert not host.file(f"{JAILS_DIR}/alpha/layer.img").exists
    assert host.check_output(f"stat -c '%i %s' {image}") == stat_before
    assert jail_pids(host, "fill")[0] == main


def test_after_a_reboot_the_layer_is_mounted_before_the_jail_with_its_data(host, jails):
    digest = host.check_output(f"sha256sum < {JAILS_DIR}/fill/root/var/fill.bin")
    reboot(host)
    wait_until(lambda: serves(host, FILL["ip"]), timeout=60)
    assert host.check_output(f"findmnt -n -o FSTYPE {JAILS_DIR}/fill/layer") == "ext4"
    assert host.check_output(f"sha256sum < {JAILS_DIR}/fill/root/var/fill.bin") == digest
    for jail in VARS["jails_under_test"]:
        wait_until(lambda jail=jail: serves(host, jail["ip"]), timeout=60)
    OTHERS.update({n: jail_pids(host, n)[0] for n in ("alpha", "beta")})
