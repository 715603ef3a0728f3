/* tests/integration (recorderlib.py): the "trojan" planted in a jail as /etc/ld.so.preload.
 * The jail's dynamic loader runs it in every dynamically linked program started from the jail
 * root: the collection's own runs (apt-get, dpkg and maintainer scripts, apt hooks, psql, pg_dump,
 * postgres -C, apache2 -t, ...) and the jail's daemons. It records, without /proc (a confined root
 * run has none), how confined the process is: uid, effective and bounding capabilities (capget,
 * PR_CAPBSET_READ), no_new_privs and the seccomp mode (prctl), and its mount namespace when /proc
 * is there. A process with host privileges shows it here. Appends one line to
 * /var/tmp/jailhost-cp/log in the root it runs in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char *program_invocation_name;

__attribute__((constructor)) static void jailhost_cp_record(void) {
    int saved = errno;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    unsigned long long eff = 0;
    if (syscall(SYS_capget, &hdr, data) == 0)
        eff = ((unsigned long long)data[1].effective << 32) | data[0].effective;
    unsigned long long bnd = 0;
    for (int cap = 0; cap < 64; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r == 1) bnd |= 1ULL << cap;
        if (r < 0) break;
    }
    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    int seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    if (seccomp < 0) seccomp = 2; /* EINVAL-free kernels return 2 via SIGKILL in strict mode only */
    char mnt[64] = "none";
    ssize_t n = readlink("/proc/self/ns/mnt", mnt, sizeof mnt - 1);
    mnt[n > 0 ? n : 4] = 0;
    const char *tag = getenv("JAILHOST_CP_TAG");
    char line[1024];
    int len = snprintf(line, sizeof line, "uid=%d eff=%016llx bnd=%016llx nnp=%d seccomp=%d mnt=%s tag=%s exe=%s\n",
                       (int)getuid(), eff, bnd, nnp, seccomp, mnt, tag ? tag : "-",
                       program_invocation_name ? program_invocation_name : "?");
    mkdir("/var/tmp/jailhost-cp", 01777);
    int fd = open("/var/tmp/jailhost-cp/log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0) {
        fchmod(fd, 0666);
        if (write(fd, line, len) < 0) {}
        close(fd);
    }
    errno = saved;
}
