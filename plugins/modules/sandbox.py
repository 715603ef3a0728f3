#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sandbox
short_description: Declare one named firejail sandbox (a jail) supervised by systemd
version_added: 0.1.0
description:
  - Declares one jail, a daemon running in the foreground inside a named firejail sandbox with
    C(--chroot) into the jail's root filesystem, on the jail bridge at its own address, and makes
    it so.
  - Writes a firejail profile (every hardening directive with its reason) and a systemd unit
    C(jailhost-<name>.service) (C(Type=simple), C(Restart=always), a stop sequence that lets
    the daemon shut down cleanly before firejail's SIGKILL, resource limits), reloads systemd and
    starts, stops or restarts the unit.
  - Changes only what differs; restarts a running jail when its profile or unit changed.
    Check mode and diff mode (profile and unit) are supported.
  - Refuses, before any change, an invalid name, an address outside the bridge subnet or already
    used by another jail, a missing bridge or root, a root that firejail would refuse as chroot,
    firejail missing or its chroot support disabled, and a sandbox of the same name running
    outside this unit (firejail would silently rename it).
author:
  - jailhost.jails contributors (@jailhost)
extends_documentation_fragment:
  - jailhost.jails.attributes
attributes:
  diff_mode:
    details:
      - Shows the changes of the firejail profile and of the systemd unit.
requirements:
  - firejail 0.9.72 or later with C(chroot yes) in /etc/firejail/firejail.config
  - systemd, iproute2
notes:
  - The jail's root filesystem comes from the P(jailhost.jails.rootfs#role) role (an overlay mounted by
    a systemd mount unit; the jail unit has C(RequiresMountsFor=) on it) and the bridge from the
    P(jailhost.jails.bridge#role) role.
  - firejail puts a tmpfs on /var/log inside the sandbox; daemons should log elsewhere (the
    service roles use C(/var/local/log)) or set O(hardening.writable_var_log).
  - Resource limits come from the systemd unit (firejail 0.9.72 removed C(--cgroup)).
options:
  name:
    description:
      - Name of the jail, the firejail sandbox and the unit C(jailhost-<name>.service).
      - C(^[a-z][a-z0-9-]*$), at most 32 characters, not all digits (the collection's one jail name
        rule, also the test C(jailhost.jails.jail_name)).
    type: str
    required: true
  root:
    description: Root filesystem of the jail. Default C(/var/lib/jailhost/jails/<name>/root).
    type: path
  bridge:
    description: Bridge the jail's veth is attached to. Required unless O(state=absent).
    type: str
  ip:
    description: Address of the jail; must lie in the bridge's subnet and not be used by another jail.
    type: str
  command:
    description:
      - The daemon and its arguments, an absolute path inside the jail, running in the foreground
        (for example C([/usr/sbin/apache2ctl, -DFOREGROUND])). Required unless O(state=absent).
    type: list
    elements: str
  hardening:
    description: Confinement of the sandbox; every key has a secure default.
    type: dict
    suboptions:
      private:
        description: tmpfs over /root and /home.
        type: bool
        default: true
      private_dev:
        description: Minimal /dev instead of the host's whole /dev.
        type: bool
        default: true
      private_tmp:
        description: Empty tmpfs on /tmp.
        type: bool
        default: true
      no_hardware_devices:
        description:
          - Keep the host's GPU, sound, video, TV, DVD, U2F and input devices out of the jail
            (C(no3d), C(nodvd), C(noinput), C(nosound), C(notv), C(nou2f), C(novideo)); firejail's
            C(private-dev) copies them in when the host has them.
        type: bool
        default: true
      seccomp:
        description:
          - firejail's default seccomp filter, plus io_uring (C(io_uring_setup), C(io_uring_enter),
            C(io_uring_register)) denied.
        type: bool
        default: true
      caps_keep:
        description:
          - Capabilities kept in the bounding set (lower case, without C(cap_)); empty drops all
            (unless O(hardening.caps_drop) is given).
        type: list
        elements: str
        default: []
      caps_drop:
        description:
          - With O(hardening.caps_keep) empty, drop only these capabilities from the bounding set
            and keep the others (C(caps.drop net_raw,sys_admin)). Weaker than O(hardening.caps_keep),
            which keeps only what is named; for a daemon whose needs are not known yet.
          - Mutually exclusive with a non-empty O(hardening.caps_keep).
        type: list
        elements: str
        default: []
      nonewprivs:
        description: Set no_new_privs (setuid binaries gain nothing).
        type: bool
        default: true
      protocol:
        description:
          - Socket families allowed; C(socket()) of any other family fails.
          - No C(inet6) by default - jails get IPv4 addresses only and the firewall between jails
            is IPv4, so an IPv6 socket could reach another jail's link-local address unfiltered.
        type: list
        elements: str
        default: [unix, inet]
      restrict_namespaces:
        description: Forbid creating namespaces inside the jail.
        type: bool
        default: true
      ipc_namespace:
        description: Own System V IPC namespace.
        type: bool
        default: true
      memory_deny_write_execute:
        description: Forbid writable and executable memory (breaks JIT compilers).
        type: bool
        default: false
      disable_common:
        description: firejail's blacklist of sensitive files (disable-common.inc).
        type: bool
        default: true
      writable_var_log:
        description: Keep the jail root's /var/log instead of a tmpfs.
        type: bool
        default: false
      netfilter:
        description: Path (on the host) of an iptables-restore file loaded inside the jail.
        type: path
  memory_max:
    description: systemd C(MemoryMax=) of the jail (e.g. C(512M)).
    type: str
  tasks_max:
    description: systemd C(TasksMax=) of the jail.
    type: int
  cpu_quota:
    description: systemd C(CPUQuota=) of the jail, e.g. C(50%) (C(200%) is two CPUs).
    type: str
  rlimits:
    description:
      - Kernel resource limits of every process in the jail (firejail C(rlimit-*)), a dict from
        C(as), C(cpu), C(fsize), C(nofile), C(nproc) or C(sigpending) to a positive integer.
        Unlike the cgroup limits they hold on any host. Note that C(nproc) counts all processes of
        the jail user's uid on the host (root's, for a daemon started as root).
    type: dict
  stop_signal:
    description:
      - Signal the daemon receives first when the jail stops, before systemd's SIGTERM reaches
        firejail (e.g. C(SIGINT) for a PostgreSQL fast shutdown). Default SIGTERM.
    type: str
    choices: [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH]
  stop_timeout:
    description: C(TimeoutStopSec=) in seconds (at least 16; firejail SIGKILLs 10 s after SIGTERM).
    type: int
    default: 20
  dns:
    description:
      - Resolvers of the jail (at most 3 IPv4 addresses), written as its C(/etc/resolv.conf).
      - Empty (the default) - C(nameserver 127.0.0.1), where nothing answers, so lookups fail at
        once. firejail's C(--chroot) copies the host's C(/etc/resolv.conf) into the jail root at
        every start; the jail sees this one mounted over it instead, never the host's resolvers
        and search domains. A jail that must resolve names needs a resolver here and egress to it
        (C(bridge_egress_allow) of the bridge role).
    type: list
    elements: str
    default: []
  firewall_unit:
    description:
      - The unit that puts the jail network's firewall rules in place (the bridge role's
        C(jailhost-firewall.service)). The jail unit is bound to it (C(BindsTo=), C(After=)), so
        the jail starts only after the rules are applied and stops when that unit stops or fails;
        no jail runs with an unfiltered bridge.
      - The unit must be installed; the module fails before any change otherwise. Set it to an
        empty string only when the jail's network is firewalled by something else.
    type: str
    default: jailhost-firewall.service
  description:
    description: Description of the unit.
    type: str
  state:
    description:
      - C(started) and C(stopped) make it so; C(restarted) always restarts; C(absent) stops the
        jail and removes its unit and profile (its root filesystem and data are not touched).
    type: str
    choices: [started, stopped, restarted, absent]
    default: started
  enabled:
    description: Start the jail at boot.
    type: bool
    default: true
  start_timeout:
    description: Seconds to wait for the sandbox and its daemon to appear after a start.
    type: int
    default: 15
"""

EXAMPLES = r"""
- name: Run a jailed HTTP server on the bridge
  jailhost.jails.sandbox:
    name: web
    bridge: br0
    ip: 10.42.0.10
    command: [/usr/sbin/apache2ctl, -DFOREGROUND]
    hardening:
      caps_keep: [net_bind_service, setuid, setgid, kill]
    memory_max: 512M
    tasks_max: 256

- name: PostgreSQL gets SIGINT (fast shutdown) before firejail's SIGTERM
  jailhost.jails.sandbox:
    name: db
    bridge: br0
    ip: 10.42.0.20
    command: [/usr/bin/setpriv, --reuid=postgres, --regid=postgres, --init-groups,
              /usr/lib/postgresql/15/bin/postgres, -D, /var/lib/postgresql/15/main,
              -c, config_file=/etc/postgresql/15/main/postgresql.conf]
    stop_signal: SIGINT

- name: Remove a jail (its root filesystem and data stay)
  jailhost.jails.sandbox:
    name: old
    state: absent
"""

RETURN = r"""
unit:
  description: Name of the systemd unit.
  returned: always
  type: str
  sample: jailhost-web.service
profile_path:
  description: Path of the firejail profile.
  returned: always
  type: str
  sample: /etc/firejail/jailhost-web.profile
ip:
  description: Address of the jail.
  returned: when state is not absent
  type: str
pid:
  description: Host PID of the firejail parent (the unit's main process), or null when stopped.
  returned: when state is not absent
  type: int
child_pid:
  description: Host PID of the sandbox child (PID 1 inside the jail), or null when stopped.
  returned: when state is not absent
  type: int
daemon_pids:
  description: Host PIDs of the daemon (children of the sandbox child).
  returned: when state is not absent
  type: list
  elements: int
reasons:
  description: Why the module reported a change.
  returned: always
  type: list
  elements: str
  sample: [profile changed, unit changed, restarted because the definition changed]
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.jailhost.jails.plugins.module_utils import firejail as fj
from ansible_collections.jailhost.jails.plugins.module_utils import jailsafe

FIREJAIL_CONFIG = "/etc/firejail/firejail.config"
CHROOT_DIRS = ("dev", "etc", "proc", "tmp", "var", "var/tmp")
# A started daemon must stay the same process this long before the start counts as done.
STABLE_SECONDS = 1.0


class Sandbox:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.name = self.params["name"]
        self.unit = fj.unit_name({"name": self.name})
        self.unit_path = f"/etc/systemd/system/{self.unit}"
        self.meta_path = f"{fj.META_DIR}/{self.name}.json"
        self.reasons: list[str] = []
        self.diff = []

    # ----------------------------------------------------------------- helpers
    def fail(self, msg: str, **kw):
        self.module.fail_json(msg=f"sandbox {self.name}: {msg}", unit=self.unit, **kw)

    def run(self, args: list[str], check: bool = True):
        rc, out, err = self.module.run_command(args)
        if check and rc != 0:
            self.fail(f"{' '.join(args)} failed (rc={rc}): {err.strip() or out.strip()}")
        return rc, out, err

    def systemctl_show(self) -> dict:
        dummy, out, dummy = self.run(["systemctl", "show", self.unit, "--property",
                                      "ActiveState,SubState,MainPID,UnitFileState,LoadState,NRestarts"], check=False)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    @staticmethod
    def read(path: str) -> str | None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write(self, path: str, content: str, mode: int) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        tmp = f"{path}.jailhost-tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        self.module.atomic_move(tmp, path)

    # ----------------------------------------------------------------- checks
    def bridge_cidr(self, bridge: str) -> str:
        if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
            self.fail(f"bridge {bridge} does not exist on this host (create it with the "
                      "jailhost.jails.bridge role first)")
        dummy, out, dummy = self.run(["ip", "-j", "-4", "addr", "show", "dev", bridge])
        for link in json.loads(out or "[]"):
            for addr in link.get("addr_info", []):
                return f"{addr['local']}/{addr['prefixlen']}"
        self.fail(f"bridge {bridge} has no IPv4 address: jails need the host address on it")

    def check_firejail(self) -> None:
        if not os.path.exists(fj.FIREJAIL):
            self.fail(f"{fj.FIREJAIL} is not installed (the jailhost.jails.rootfs role installs it)")
        config = self.read(FIREJAIL_CONFIG) or ""
        enabled = [ln.split()[1] for ln in config.splitlines()
                   if ln.strip().startswith("chroot ") and len(ln.split()) > 1]
        if not enabled or enabled[-1] != "yes":
            self.fail(f"chroot support is disabled in {FIREJAIL_CONFIG} ('chroot yes' is needed; "
                      "the jailhost.jails.rootfs role sets it)")

    def check_root(self, root: str) -> None:
        """firejail's chroot requirements (src/firejail/chroot.c), checked before it refuses."""
        try:
            st = os.stat(root)
        except FileNotFoundError:
            self.fail(f"root {root} does not exist (create it with the jailhost.jails.rootfs role)")
        if st.st_uid != 0 or st.st_mode & 0o022:
            self.fail(f"root {root} must be owned by root and not group/world-writable for firejail --chroot")
        for sub in CHROOT_DIRS:
            path = os.path.join(root, sub)
            if os.path.islink(path) or not os.path.isdir(path):
                self.fail(f"root {root} is not a usable chroot: {sub} must be a real directory")
        # Resolved as the jail would (a link never leads the host out of the root).
        try:
            rootfd = jailsafe.open_root(root)
            try:
                os.close(jailsafe.open_in(rootfd, self.params["command"][0], os.O_PATH, follow=True))
            finally:
                os.close(rootfd)
        except (OSError, jailsafe.JailSafeError):
            self.fail(f"command {self.params['command'][0]} does not exist in the jail root {root}")

    def check_unique_ip(self, ip: str) -> None:
        for name, meta in fj.declared_jails().items():
            if name != self.name and meta.get("ip") == ip:
                self.fail(f"address {ip} is already used by jail {name}")

    def check_name_collision(self, state: list[dict], main_pid: int) -> None:
        others = [s for s in fj.find_sandbox(state, self.name) if s["pid"] != main_pid]
        if others:
            self.fail(f"a firejail sandbox named {self.name} is already running outside "
                      f"{self.unit} (pid {others[0]['pid']}); firejail would silently rename this one")

    # ----------------------------------------------------------------- state
    def sandbox_state(self, main_pid: int) -> dict | None:
        if not main_pid:
            return None
        for entry in fj.parse_state():
            if entry["pid"] == main_pid:
                return entry
        return None

    def wait_started(self) -> dict:
        """Wait until the daemon runs in the sandbox and is still the same process a second later
        (a daemon that dies at once would otherwise pass for started while the unit loops)."""
        deadline = time.monotonic() + self.params["start_timeout"]
        show, seen, seen_at = {}, None, 0.0
        while time.monotonic() < deadline:
            show = self.systemctl_show()
            main_pid = int(show.get("MainPID", "0") or 0)
            entry = self.sandbox_state(main_pid)
            if show.get("ActiveState") == "active" and entry and entry["daemon_pids"]:
                key = (entry["pid"], tuple(entry["daemon_pids"][:1]))
                if key != seen:
                    seen, seen_at = key, time.monotonic()
                elif time.monotonic() - seen_at >= STABLE_SECONDS:
                    return entry
            else:
                seen = None
            if show.get("ActiveState") == "failed":
                break
            time.sleep(0.2)
        dummy, journal, dummy = self.run(["journalctl", "-u", self.unit, "-n", "30", "--no-pager"], check=False)
        self.fail(f"the jail did not start within {self.params['start_timeout']} s "
                  f"(unit {show.get('ActiveState')}/{show.get('SubState')}):\n{journal}")

    def check_firewall_unit(self, unit: str) -> None:
        """The unit the jail is bound to must exist: a jail bound to a missing unit never starts."""
        if not unit:
            return
        dummy, load, dummy = self.run(["systemctl", "show", "-p", "LoadState", "--value", unit], check=False)
        if load.strip() != "loaded":
            self.fail(f"firewall_unit {unit} is not installed (LoadState {load.strip() or 'unknown'}): converge "
                      "the jailhost.jails.bridge role first, or set firewall_unit to '' if this jail's network "
                      "is firewalled by other means")

    def refresh_antispoof(self) -> None:
        """Rebuild the bridge's anti-spoofing chain from the declared jails (this one added,
        changed or removed) before the jail starts: the bridge role's restore script does it, in
        the one place where our firewall is built. Hosts without it (no bridge role) have none."""
        if os.path.exists(fj.FIREWALL_RESTORE):
            self.run([fj.FIREWALL_RESTORE, "--antispoof"])

    # ----------------------------------------------------------------- main
    def spec(self) -> dict:
        p = self.params
        spec = {"name": self.name, "bridge": p["bridge"], "ip": p["ip"], "command": p["command"],
                "bridge_cidr": self.bridge_cidr(p["bridge"]), "stop_timeout": p["stop_timeout"]}
        for key in ("root", "memory_max", "tasks_max", "cpu_quota", "rlimits", "stop_signal", "description",
                    "firewall_unit", "dns"):
            if p[key] is not None:
                spec[key] = p[key]
        if p["hardening"]:
            spec["hardening"] = {k: v for k, v in p["hardening"].items() if v is not None}
        return spec

    def present(self) -> dict:
        p = self.params
        for key in ("bridge", "ip", "command"):
            if not p[key]:
                self.fail(f"{key} is required unless state=absent")
        spec = self.spec()
        errors = fj.validate_spec(spec)
        if errors:
            self.fail("invalid definition: " + "; ".join(errors))
        self.check_firejail()
        self.check_firewall_unit(p["firewall_unit"])
        root = fj.jail_root(spec)
        self.check_root(root)
        self.check_unique_ip(p["ip"])
        show = self.systemctl_show()
        main_pid = int(show.get("MainPID", "0") or 0)
        self.check_name_collision(fj.parse_state(), main_pid)

        profile_path = fj.profile_path(spec)
        files = [
            (profile_path, fj.render_profile(spec), 0o644, "profile"),
            (self.unit_path, fj.render_unit(spec), 0o644, "unit"),
        ]
        meta = json.dumps({"name": self.name, "ip": p["ip"], "bridge": p["bridge"], "root": root,
                           "unit": self.unit, "profile": profile_path, "veth": fj.veth_name(spec)},
                          indent=2) + "\n"
        changed_files = []
        for path, content, mode, label in files:
            before = self.read(path)
            if before != content:
                changed_files.append(label)
                self.reasons.append(f"{label} {'created' if before is None else 'changed'}")
                self.diff.append({"before_header": path, "after_header": path,
                                  "before": before or "", "after": content})
        meta_changed = self.read(self.meta_path) != meta
        definition_changed = bool(changed_files)
        active = show.get("ActiveState") in ("active", "activating", "reloading")
        enabled_now = show.get("UnitFileState") == "enabled"

        actions = []
        if p["state"] == "started":
            if not active:
                actions.append("start")
            elif definition_changed:
                actions.append("restart")
        elif p["state"] == "restarted":
            actions.append("restart")
        elif p["state"] == "stopped" and active:
            actions.append("stop")
        enable_action = None
        if p["enabled"] and not enabled_now:
            enable_action = "enable"
        elif not p["enabled"] and enabled_now and show.get("LoadState") == "loaded":
            enable_action = "disable"
        if enable_action:
            self.reasons.append(f"unit {enable_action}d")
        for action in actions:
            self.reasons.append({"start": "started", "stop": "stopped",
                                 "restart": "restarted" + (" because the definition changed"
                                                           if definition_changed and p["state"] == "started"
                                                           else "")}[action])
        changed = bool(changed_files or meta_changed or actions or enable_action)

        if not self.module.check_mode and changed:
            for path, content, mode, label in files:
                if label in changed_files:
                    self.write(path, content, mode)
            if meta_changed:
                self.write(self.meta_path, meta, 0o644)
                self.refresh_antispoof()
            if "unit" in changed_files:
                self.run(["systemctl", "daemon-reload"])
            if enable_action:
                self.run(["systemctl", enable_action, self.unit])
            for action in actions:
                self.run(["systemctl", action, self.unit])

        result = {"changed": changed, "unit": self.unit, "profile_path": profile_path, "ip": p["ip"],
                  "reasons": self.reasons, "pid": None, "child_pid": None, "daemon_pids": []}
        if not self.module.check_mode and (actions and actions[-1] in ("start", "restart")):
            entry = self.wait_started()
            if not entry["confined"]:
                # Fail closed: a jail that runs with less confinement than its profile asks for
                # (a firejail version that treats a directive differently, a fail-open case of
                # docs/jails.md) is stopped, not left serving.
                reasons = fj.unconfined_reasons(entry)
                self.run(["systemctl", "stop", self.unit], check=False)
                self.fail(f"the jail started without its confinement and was stopped: {'; '.join(reasons)}")
        else:
            entry = self.sandbox_state(int(self.systemctl_show().get("MainPID", "0") or 0))
        if entry:
            result.update(pid=entry["pid"], child_pid=entry["child_pid"], daemon_pids=entry["daemon_pids"])
        if self.module._diff:
            result["diff"] = self.diff
        return result

    def absent(self) -> dict:
        show = self.systemctl_show()
        spec = {"name": self.name, "profile_path": None}
        profile_path = fj.profile_path(spec)
        existing = [path for path in (self.unit_path, profile_path, self.meta_path) if os.path.exists(path)]
        active = show.get("ActiveState") in ("active", "activating", "reloading", "deactivating")
        changed = bool(existing or active)
        if active:
            self.reasons.append("stopped")
        self.reasons += [f"{path} removed" for path in existing]
        if self.module._diff and changed:
            self.diff = [{"before_header": path, "after_header": "(absent)",
                          "before": self.read(path) or "", "after": ""} for path in existing]
        if changed and not self.module.check_mode:
            if show.get("LoadState") == "loaded":
                self.run(["systemctl", "disable", "--now", self.unit], check=False)
                self.run(["systemctl", "stop", self.unit], check=False)
            for path in existing:
                os.unlink(path)
            if self.meta_path in existing:
                self.refresh_antispoof()
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "reset-failed", self.unit], check=False)
        result = {"changed": changed, "unit": self.unit, "profile_path": profile_path, "reasons": self.reasons}
        if self.module._diff:
            result["diff"] = self.diff
        return result


def main():
    hardening_spec = {
        "private": {"type": "bool", "default": True},
        "private_dev": {"type": "bool", "default": True},
        "private_tmp": {"type": "bool", "default": True},
        "no_hardware_devices": {"type": "bool", "default": True},
        "seccomp": {"type": "bool", "default": True},
        "caps_keep": {"type": "list", "elements": "str", "default": []},
        "caps_drop": {"type": "list", "elements": "str", "default": []},
        "nonewprivs": {"type": "bool", "default": True},
        "protocol": {"type": "list", "elements": "str", "default": ["unix", "inet"]},
        "restrict_namespaces": {"type": "bool", "default": True},
        "ipc_namespace": {"type": "bool", "default": True},
        "memory_deny_write_execute": {"type": "bool", "default": False},
        "disable_common": {"type": "bool", "default": True},
        "writable_var_log": {"type": "bool", "default": False},
        "netfilter": {"type": "path"},
    }
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "root": {"type": "path"},
            "bridge": {"type": "str"},
            "ip": {"type": "str"},
            "command": {"type": "list", "elements": "str"},
            "hardening": {"type": "dict", "options": hardening_spec},
            "memory_max": {"type": "str"},
            "tasks_max": {"type": "int"},
            "cpu_quota": {"type": "str"},
            "rlimits": {"type": "dict"},
            "stop_signal": {"type": "str", "choices": ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP",
                                                       "SIGUSR1", "SIGUSR2", "SIGWINCH"]},
            "stop_timeout": {"type": "int", "default": 20},
            "firewall_unit": {"type": "str", "default": "jailhost-firewall.service"},
            "dns": {"type": "list", "elements": "str", "default": []},
            "description": {"type": "str"},
            "state": {"type": "str", "default": "started",
                      "choices": ["started", "stopped", "restarted", "absent"]},
            "enabled": {"type": "bool", "default": True},
            "start_timeout": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
    )
    if os.geteuid() != 0:
        module.fail_json(msg="sandbox: must run as root (become: true)")
    name_errors = [e for e in fj.validate_spec({"name": module.params["name"]}) if e.startswith("name")]
    if name_errors:
        module.fail_json(msg=f"sandbox: {'; '.join(name_errors)}")
    sandbox = Sandbox(module)
    result = sandbox.absent() if module.params["state"] == "absent" else sandbox.present()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
