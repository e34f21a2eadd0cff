/*
 * pkspawn: the runtime's sandbox ("pause") and container set-up, in C.
 *
 * Why C: the runtime daemon is a Python process of ~25 MB. Forking it copies
 * its page tables, and every Python line the child runs before exec writes
 * reference counts into shared pages, each write copying a page. Measured on
 * two cores, that was ~10 ms of CPU per pod (two forks, three Python
 * children). runc does the same work in C (nsexec) for a similar reason. The
 * runtime starts this program with posix_spawn (vfork: nothing is copied),
 * so it stays the parent, or for containers the child subreaper, of every
 * process, exactly as with the Python path in spawn.py, which stays the
 * fallback when no C compiler is available and is the reference for what
 * each step does.
 *
 * Protocol (spawn.py drives it): fd 3 is the write end of the report pipe
 * (close-on-exec here, so an exec closes it); a failure before exec writes
 * "E<message>" there and exits; the container mode writes "P<pid>\n" with the
 * container's PID. fd 4 holds the request: NUL-terminated fields, the first
 * naming the mode (argv is only what ps shows).
 *
 *   sandbox:   mode (pod|host|none), hostname, n, n cgroup files to join.
 *              Unshares ipc (and net + uts unless host), sets the hostname,
 *              brings lo up, closes fd 3 (success) and pauses forever as
 *              "pause" — it is the pod's infrastructure process itself.
 *   container: sandbox pid, cwd, rootfs ("" = host filesystem), overlay dir
 *              ("" = none), n argv, n env, n (host file, path inside) pairs,
 *              n cgroup files to join. Joins the cgroups and the sandbox's
 *              ipc/uts/net, unshares mount + pid, forks the container's pid 1
 *              (which mounts, chroots, chdirs and execs) and exits after
 *              reporting its PID.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define REPORT_FD 3
#define SPEC_FD 4
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void fail(int code, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    buf[0] = 'E';
    va_start(ap, fmt);
    n = vsnprintf(buf + 1, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    if (write(REPORT_FD, buf, (size_t)n + 1) < 0) {
        /* nobody to tell */
    }
    _exit(code);
}

/* ------------------------------------------------------------- the request */
static char *spec_buf, *spec_pos, *spec_end;

static void read_spec(void)
{
    size_t cap = 65536, len = 0;
    ssize_t n;

    spec_buf = malloc(cap);
    if (!spec_buf)
        fail(127, "out of memory");
    if (lseek(SPEC_FD, 0, SEEK_SET) < 0 && errno != ESPIPE)
        fail(127, "request: %s", strerror(errno));
    for (;;) {
        if (len == cap) {
            cap *= 2;
            spec_buf = realloc(spec_buf, cap);
            if (!spec_buf)
                fail(127, "out of memory");
        }
        n = read(SPEC_FD, spec_buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail(127, "request: %s", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(SPEC_FD);
    spec_pos = spec_buf;
    spec_end = spec_buf + len;
}

static char *field(void)
{
    char *s = spec_pos, *z;

    if (s >= spec_end || !(z = memchr(s, '\0', (size_t)(spec_end - s))))
        fail(127, "request: truncated");
    spec_pos = z + 1;
    return s;
}

static char **fields(int *count)
{
    int n = atoi(field()), i;
    char **v = calloc((size_t)n + 1, sizeof *v);

    if (!v)
        fail(127, "out of memory");
    for (i = 0; i < n; i++)
        v[i] = field();
    if (count)
        *count = n;
    return v;
}

/* ------------------------------------------------------------------ steps */
/* Move this single-threaded process into each cgroup by writing "0" (the writer itself) into the
 * file the runtime names: v1's per-controller "tasks", v2's "cgroup.procs" (see cgroups.py: on v1
 * a thread moving itself skips the global lock whose first taking waits out an RCU grace period). */
static void join_cgroups(char **files, const char *what, int code)
{
    int i, fd;

    for (i = 0; files[i]; i++) {
        fd = open(files[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            fail(code, "%s: [Errno %d] %s: '%s'", what, errno, strerror(errno), files[i]);
        close(fd);
    }
}

static void join_ns(int sandbox, const char *ns, int type)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%d/ns/%s", sandbox, ns);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(128, "container: [Errno %d] %s: '%s'", errno, strerror(errno), path);
    if (setns(fd, type) < 0)
        fail(128, "container: [Errno %d] setns %s: %s", errno, path, strerror(errno));
    close(fd);
}

static void loopback_up(void)
{
    struct ifreq req;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    memset(&req, 0, sizeof req);
    strcpy(req.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &req) < 0)
        fail(127, "sandbox: [Errno %d] lo: %s", errno, strerror(errno));
    req.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &req) < 0)
        fail(127, "sandbox: [Errno %d] lo up: %s", errno, strerror(errno));
    close(s);
}

static void do_mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data)
{
    if (mount(src, target, type, flags, data) < 0)
        fail(128, "container init: [Errno %d] mount %s on %s: %s", errno, src ? src : type, target, strerror(errno));
}

static void mkdir_p(const char *path)
{
    char buf[4096], *p;

    if (strlen(path) >= sizeof buf)
        fail(128, "container init: path too long: %s", path);
    strcpy(buf, path);
    for (p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                fail(128, "container init: [Errno %d] %s: '%s'", errno, strerror(errno), buf);
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        fail(128, "container init: [Errno %d] %s: '%s'", errno, strerror(errno), buf);
}

static char *join(const char *a, const char *b)
{
    char *s;

    while (*b == '/')
        b++;
    if (asprintf(&s, "%s/%s", a, b) < 0)
        fail(128, "out of memory");
    return s;
}

/* The container's mounts, in its private mount namespace; returns the root to chroot into. */
static const char *prepare_root(const char *rootfs, const char *overlay, char **files)
{
    const char *root;
    static const char *dirs[] = {"proc", "dev", "sys", "etc", "tmp", NULL};
    struct stat st;
    int i, fd;

    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (!*rootfs) {
        do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        for (i = 0; files[i]; i += 2)
            do_mount(files[i], files[i + 1], NULL, MS_BIND, NULL);
        return "/";
    }
    root = rootfs;
    if (*overlay) {
        char *upper = join(overlay, "upper"), *work = join(overlay, "work"), *merged = join(overlay, "merged");
        char *opts;

        mkdir_p(upper);
        mkdir_p(work);
        mkdir_p(merged);
        if (asprintf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s", rootfs, upper, work) < 0)
            fail(128, "out of memory");
        do_mount("overlay", merged, "overlay", 0, opts);
        root = merged;
    } else {
        do_mount(root, root, NULL, MS_BIND | MS_REC, NULL);
    }
    for (i = 0; dirs[i]; i++)
        mkdir_p(join(root, dirs[i]));
    do_mount("proc", join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    do_mount("/dev", join(root, "dev"), NULL, MS_BIND | MS_REC, NULL);
    do_mount("/sys", join(root, "sys"), NULL, MS_BIND | MS_REC, NULL);
    for (i = 0; files[i]; i += 2) {
        char *target = join(root, files[i + 1]);

        if (lstat(target, &st) == 0 && S_ISLNK(st.st_mode))
            unlink(target);
        if (stat(target, &st) < 0) {
            fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0)
                fail(128, "container init: [Errno %d] %s: '%s'", errno, strerror(errno), target);
            close(fd);
        }
        do_mount(files[i], target, NULL, MS_BIND, NULL);
    }
    return root;
}

static void sandbox(void)
{
    const char *mode = field(), *hostname = field();
    char **cgroups = fields(NULL);

    if (setsid() < 0)
        fail(127, "sandbox: [Errno %d] setsid: %s", errno, strerror(errno));
    join_cgroups(cgroups, "sandbox", 127);
    if (strcmp(mode, "host") == 0) {
        if (unshare(CLONE_NEWIPC) < 0)
            fail(127, "sandbox: [Errno %d] unshare: %s", errno, strerror(errno));
    } else {
        if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
            fail(127, "sandbox: [Errno %d] unshare: %s", errno, strerror(errno));
        if (sethostname(hostname, strlen(hostname)) < 0)
            fail(127, "sandbox: [Errno %d] sethostname: %s", errno, strerror(errno));
        loopback_up();
    }
    free(spec_buf);
    prctl(PR_SET_NAME, "pause", 0, 0, 0);
    close(REPORT_FD);               /* end of file on the report pipe: ready */
    for (;;)
        pause();                    /* the default dispositions end it on SIGTERM/SIGINT/SIGKILL */
}

static void container(void)
{
    int sandbox_pid = atoi(field()), i;
    const char *cwd = field(), *rootfs = field(), *overlay = field(), *root;
    char **argv = fields(NULL), **env = fields(NULL), **files = fields(NULL), **cgroups = fields(NULL);
    pid_t child;

    if (!argv[0])
        fail(128, "container: no command");
    join_cgroups(cgroups, "container", 128);
    join_ns(sandbox_pid, "ipc", CLONE_NEWIPC);
    join_ns(sandbox_pid, "uts", CLONE_NEWUTS);
    join_ns(sandbox_pid, "net", CLONE_NEWNET);
    if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
        fail(128, "container: [Errno %d] unshare: %s", errno, strerror(errno));
    child = fork();
    if (child < 0)
        fail(128, "container: [Errno %d] fork: %s", errno, strerror(errno));
    if (child == 0) {
        setsid();
        root = prepare_root(rootfs, overlay, files);
        if (strcmp(root, "/") != 0 && chroot(root) < 0)
            fail(128, "container init: [Errno %d] chroot %s: %s", errno, root, strerror(errno));
        if (chdir(*cwd ? cwd : "/") < 0)
            fail(128, "chdir to %s: %s", cwd, strerror(errno));
        if (clearenv() != 0)
            fail(128, "container init: clearenv failed");
        for (i = 0; env[i]; i++) {
            char *eq = strchr(env[i], '=');

            if (eq) {
                *eq = '\0';
                setenv(env[i], eq + 1, 1);
            }
        }
        setenv("PATH", DEFAULT_PATH, 0);
        execvp(argv[0], argv);
        fail(128, "exec: \"%s\": %s", argv[0], strerror(errno));
    }
    dprintf(REPORT_FD, "P%d\n", (int)child);
    _exit(0);
}

int main(int argc, char **argv)
{
    static const int sigs[] = {SIGPIPE, SIGXFSZ, SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    sigset_t none;
    size_t i;
    const char *mode;

    /* the report pipe and the request must not reach the pause process's or container's exec */
    fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);
    fcntl(SPEC_FD, F_SETFD, FD_CLOEXEC);
    for (i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    (void)argc;
    (void)argv;                     /* cosmetic: "pause infinity" or "pkspawn container" in ps */
    read_spec();
    mode = field();
    if (strcmp(mode, "sandbox") == 0)
        sandbox();
    else if (strcmp(mode, "container") == 0)
        container();
    fail(127, "pkspawn: unknown request %s (it is driven by the pocketkube runtime)", mode);
    return 127;
}
