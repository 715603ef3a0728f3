#!/usr/bin/python3
"""jailenter.py PID USER -- COMMAND...: run COMMAND inside the jail of process PID, confined like it.

Used by the escape battery (tests/integration/attacklib.py) for attempts "as root inside the
jail". It does what firejail's --join does for a non-root user (firejail skips seccomp and the
capability drop when root joins, so a root --join proves nothing):

1. joins the ipc, uts, net, pid and mount namespaces of PID and its root directory (the chroot);
2. copies PID's rlimits, drops every capability outside PID's bounding set and empties the
   inheritable and ambient sets (root's execve gives permitted = bounding | inheritable: an SSH
   session on a Debian 13 host inherits a full inheritable set from PID 1, which would give the
   attacker every capability back; the jail units clear it too, with setpriv --inh-caps=-all);
3. switches to USER (uid/gid/groups from the jail's own /etc/passwd and /etc/group);
4. sets no_new_privs and loads the seccomp filters firejail loaded into the jail, in the order of
   the jail's /run/firejail/mnt/seccomp/seccomp.list;
5. execs COMMAND (PATH of the jail).

The caller compares the attacking process's /proc/self/status with PID's (Seccomp_filters,
CapBnd, NoNewPrivs) before trusting a result.
"""

import ctypes
import os
import resource
import struct
import sys

CLONE = {"ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000, "pid": 0x20000000, "mnt": 0x00020000}
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SYS_CAPGET, SYS_CAPSET = {"x86_64": (125, 126), "aarch64": (90, 91)}[os.uname().machine]
SECCOMP_MODE_FILTER = 2
LIMITS = {
    "Max cpu time": resource.RLIMIT_CPU, "Max file size": resource.RLIMIT_FSIZE,
    "Max data size": resource.RLIMIT_DATA, "Max stack size": resource.RLIMIT_STACK,
    "Max core file size": resource.RLIMIT_CORE, "Max processes": resource.RLIMIT_NPROC,
    "Max open files": resource.RLIMIT_NOFILE, "Max locked memory": resource.RLIMIT_MEMLOCK,
    "Max address space": resource.RLIMIT_AS, "Max pending signals": resource.RLIMIT_SIGPENDING,
}

libc = ctypes.CDLL(None, use_errno=True)
# prctl is variadic: pass every argument as a full unsigned long (the kernel checks unused ones are 0).
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        sys.exit(f"jailenter: {what}: {os.strerror(err)}")


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main():
    pid, user = int(sys.argv[1]), sys.argv[2]
    if sys.argv[3] != "--":
        sys.exit("usage: jailenter.py PID USER -- COMMAND...")
    command = sys.argv[4:]
    proc = f"/proc/{pid}"
    status = dict(line.split(":", 1) for line in open(f"{proc}/status").read().splitlines())
    cap_bnd = int(status["CapBnd"].strip(), 16)
    limits = {}
    for line in open(f"{proc}/limits").read().splitlines()[1:]:
        for name, res in LIMITS.items():
            if line.startswith(name):
                soft, hard = line[len(name):].split()[:2]
                limits[res] = tuple(resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in (soft, hard))
    seccomp_dir = f"{proc}/root/run/firejail/mnt/seccomp"
    filters = []
    for path in open(f"{seccomp_dir}/seccomp.list").read().split():
        with open(f"{seccomp_dir}/{os.path.basename(path)}", "rb") as f:
            filters.append(f.read())
    if not filters:
        sys.exit("jailenter: the jail has no seccomp filter list")
    # The jail's user database, read before entering.
    passwd = {f.split(":")[0]: f.split(":") for f in open(f"{proc}/root/etc/passwd").read().splitlines() if f}
    if user not in passwd:
        sys.exit(f"jailenter: no user {user} in the jail")
    uid, gid = int(passwd[user][2]), int(passwd[user][3])
    groups = sorted({gid} | {int(g.split(":")[2]) for g in open(f"{proc}/root/etc/group").read().splitlines()
                             if g and user in g.split(":")[3].split(",")})

    fds = {ns: os.open(f"{proc}/ns/{ns}", os.O_RDONLY) for ns in CLONE}
    root = os.open(f"{proc}/root", os.O_RDONLY | os.O_DIRECTORY)
    for ns in ("ipc", "uts", "net", "pid", "mnt"):
        check(libc.setns(fds[ns], CLONE[ns]), f"setns {ns}")
    os.fchdir(root)
    os.chroot(".")
    os.chdir("/")
    child = os.fork()  # the pid namespace applies to children
    if child:
        _, code = os.waitpid(child, 0)
        sys.exit(os.waitstatus_to_exitcode(code) if code else 0)
    for res, (soft, hard) in limits.items():
        resource.setrlimit(res, (soft, hard))
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last_cap + 1):
        if not cap_bnd & (1 << cap):
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear the ambient set")
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0), 8)  # version 3, this process
    data = ctypes.create_string_buffer(24)
    check(libc.syscall(ctypes.c_long(SYS_CAPGET), header, data), "capget")
    sets = list(struct.unpack("6I", data.raw))
    sets[2] = sets[5] = 0  # inheritable, both halves
    data = ctypes.create_string_buffer(struct.pack("6I", *sets), 24)
    check(libc.syscall(ctypes.c_long(SYS_CAPSET), header, data), "empty the inheritable set")
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for prog in filters:
        buf = ctypes.create_string_buffer(prog, len(prog))
        fprog = SockFprog(len(prog) // struct.calcsize("HBBI"), ctypes.addressof(buf))
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "seccomp")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "HOME": "/root" if uid == 0 else "/"}
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
