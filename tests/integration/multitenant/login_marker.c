/* Marker library of tests/integration/multitenant/test_multitenant_login_attacks.py: whatever
 * process loads it (through a jail's /etc/ld.so.preload, or LD_PRELOAD) appends one line to the
 * marker files that exist: its uid, effective capabilities, no_new_privs, PID namespace and
 * executable. Loading it does nothing else. Built on the controller by the suite (cc). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *const MARKS[] = {"/jailhost-trojan.log", "/var/tmp/jailhost-hostside.log"};

static size_t field(const char *status, const char *name, char *out, size_t size) {
    const char *p = strstr(status, name);
    size_t n = 0;
    if (!p) return 0;
    p += strlen(name);
    while (*p == '\t' || *p == ' ') p++;
    while (*p && *p != '\n' && n + 1 < size) out[n++] = *p++;
    out[n] = 0;
    return n;
}

static void add(char *line, size_t *len, size_t size, const char *text) {
    size_t n = strlen(text);
    if (*len + n >= size) n = size - *len - 1;
    memcpy(line + *len, text, n);
    *len += n;
    line[*len] = 0;
}

__attribute__((constructor)) static void jailhost_mark(void) {
    char status[8192], buf[256], line[1024];
    size_t len = 0;
    ssize_t n;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, status, sizeof status - 1) : -1;
    if (fd >= 0) close(fd);
    status[n > 0 ? n : 0] = 0;
    line[0] = 0;
    add(line, &len, sizeof line, "preload uid=");
    if (field(status, "\nUid:", buf, sizeof buf)) { char *t = strchr(buf, '\t'); if (t) *t = 0; add(line, &len, sizeof line, buf); }
    add(line, &len, sizeof line, " CapEff=");
    if (field(status, "\nCapEff:", buf, sizeof buf)) add(line, &len, sizeof line, buf);
    add(line, &len, sizeof line, " NoNewPrivs=");
    if (field(status, "\nNoNewPrivs:", buf, sizeof buf)) add(line, &len, sizeof line, buf);
    add(line, &len, sizeof line, " pidns=");
    n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    add(line, &len, sizeof line, buf);
    add(line, &len, sizeof line, " exe=");
    n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    add(line, &len, sizeof line, buf);
    add(line, &len, sizeof line, "\n");
    for (unsigned i = 0; i < sizeof MARKS / sizeof *MARKS; i++) {
        int out = open(MARKS[i], O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (out >= 0) { if (write(out, line, len) < 0) {} close(out); }
    }
}
