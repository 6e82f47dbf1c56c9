/*
 * -d stall: say when the main loop (the monitors, timers, chardevs, device
 * events and hotplug all run there) went STALL_REPORT_MS or longer without
 * polling, and what it was doing meanwhile.
 *
 * GLib's poll function is wrapped: leaving poll marks the main thread busy,
 * entering it again marks it idle.  A watcher thread looks every
 * STALL_SAMPLE_MS; while the main thread has been busy longer than one
 * sample it reads the thread's /proc/self/task/TID/syscall and wchan (the
 * system call it sits in, the file behind its descriptor, where the kernel
 * has it wait, or "running" when it computes) and counts each distinct
 * answer.  Back in poll, a stint of STALL_REPORT_MS or more is said on
 * stderr with those counts, most seen first.  Diagnosis only: the samples
 * see system calls, not which handler made them.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <glib.h>

#include "util/error.h"
#include "stall-int.h"

enum {
    STALL_SAMPLE_MS = 20,
    STALL_REPORT_MS = 200,
    STALL_KINDS = 6, /* distinct answers kept per stint; the rest are "other" */
};

typedef struct StallKind {
    char what[160];
    unsigned seen;
} StallKind;

static struct {
    GPollFunc poll;     /* GLib's own; NULL until -d stall starts */
    pid_t tid;          /* the main thread's */
    int64_t busy_since; /* g_get_monotonic_time() when poll returned; 0 in poll */
    pthread_mutex_t lock;
    int64_t stint; /* the busy_since the kinds below were seen in */
    StallKind kinds[STALL_KINDS];
    unsigned other;
} stall = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The system calls a main loop sits in: a name, and whether the first
 * argument is a descriptor worth naming. */
typedef struct SyscallInfo {
    long nr;
    const char *name;
    bool fd;
} SyscallInfo;

static const SyscallInfo *syscall_info(long nr)
{
    static const SyscallInfo calls[] = {
        { SYS_read, "read", true },
        { SYS_write, "write", true },
        { SYS_openat, "openat", false },
        { SYS_close, "close", true },
        { SYS_ioctl, "ioctl", true },
        { SYS_pread64, "pread64", true },
        { SYS_pwrite64, "pwrite64", true },
        { SYS_readv, "readv", true },
        { SYS_writev, "writev", true },
        { SYS_fsync, "fsync", true },
        { SYS_fdatasync, "fdatasync", true },
        { SYS_wait4, "wait4", false },
        { SYS_futex, "futex", false },
        { SYS_poll, "poll", false },
        { SYS_ppoll, "ppoll", false },
        { SYS_nanosleep, "nanosleep", false },
        { SYS_clock_nanosleep, "clock_nanosleep", false },
        { SYS_munmap, "munmap", false },
        { SYS_mmap, "mmap", false },
        { SYS_madvise, "madvise", false },
        { SYS_connect, "connect", true },
        { SYS_sendmsg, "sendmsg", true },
        { SYS_recvmsg, "recvmsg", true },
        { SYS_fallocate, "fallocate", true },
        { SYS_ftruncate, "ftruncate", true },
        { SYS_clone, "clone", false },
        { SYS_clone3, "clone3", false },
        { SYS_execve, "execve", false },
        { SYS_vfork, "vfork", false },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(calls); i++) {
        if (calls[i].nr == nr) {
            return &calls[i];
        }
    }
    return NULL;
}

/* The main thread's /proc/self/task/TID/FILE, without its newline. */
static char *task_file(const char *file, GError **errp)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/%s", (int)stall.tid,
                                            file);
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, errp)) {
        return NULL;
    }
    return g_strchomp(text);
}

/*
 * What the main thread does now, in words: "ioctl(fd 12 /dev/vfio/5,
 * 0x3b6e) [wchan vfio_pci_core_disable]", "running", "futex [wchan
 * futex_wait_queue]".
 */
static void stall_describe(char *out, size_t size)
{
    GError *err = NULL;
    g_autofree char *text = task_file("syscall", &err);
    g_autofree char *wchan = NULL;
    unsigned long args[2] = { 0, 0 };
    const SyscallInfo *call;
    long nr;

    if (!text) {
        snprintf(out, size, "unreadable (%s)", err->message);
        g_error_free(err);
        return;
    }
    if (g_str_equal(text, "running")) {
        snprintf(out, size, "running");
        return;
    }
    wchan = task_file("wchan", NULL);
    if (wchan && (!wchan[0] || g_str_equal(wchan, "0"))) {
        g_clear_pointer(&wchan, g_free);
    }
    if (sscanf(text, "%ld %lx %lx", &nr, &args[0], &args[1]) < 1 || nr < 0) {
        snprintf(out, size, "in the kernel, not in a system call%s%s%s",
                 wchan ? " [wchan " : "", wchan ? wchan : "", wchan ? "]" : "");
        return;
    }
    call = syscall_info(nr);
    if (call && call->fd) {
        char path[64], target[96];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%lu", args[0]);
        n = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        if (nr == SYS_ioctl) {
            snprintf(out, size, "ioctl(fd %lu %s, 0x%lx)", args[0], target, args[1]);
        } else {
            snprintf(out, size, "%s(fd %lu %s)", call->name, args[0], target);
        }
    } else if (call) {
        snprintf(out, size, "%s", call->name);
    } else {
        snprintf(out, size, "system call %ld", nr);
    }
    if (wchan) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, " [wchan %s]", wchan);
    }
}

static void stall_count(int64_t stint, const char *what)
{
    pthread_mutex_lock(&stall.lock);
    if (stall.stint != stint) {
        memset(stall.kinds, 0, sizeof(stall.kinds));
        stall.other = 0;
        stall.stint = stint;
    }
    for (unsigned i = 0; i < STALL_KINDS; i++) {
        if (!stall.kinds[i].seen) {
            g_strlcpy(stall.kinds[i].what, what, sizeof(stall.kinds[i].what));
        }
        if (g_str_equal(stall.kinds[i].what, what)) {
            stall.kinds[i].seen++;
            pthread_mutex_unlock(&stall.lock);
            return;
        }
    }
    stall.other++;
    pthread_mutex_unlock(&stall.lock);
}

static void *stall_watcher(void *opaque)
{
    sigset_t all;

    (void)opaque;
    sigfillset(&all); /* the host's signals are the main loop's */
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        int64_t since, now;
        char what[160];

        g_usleep(STALL_SAMPLE_MS * 1000);
        since = __atomic_load_n(&stall.busy_since, __ATOMIC_ACQUIRE);
        now = g_get_monotonic_time();
        if (!since || now - since < STALL_SAMPLE_MS * 1000) {
            continue;
        }
        stall_describe(what, sizeof(what));
        /* the stint may have ended while the files were read: not counted */
        if (__atomic_load_n(&stall.busy_since, __ATOMIC_ACQUIRE) == since) {
            stall_count(since, what);
        }
    }
    return NULL;
}

static int cmp_seen(const void *a, const void *b)
{
    const StallKind *x = a, *y = b;

    return (int)y->seen - (int)x->seen;
}

/* Back in poll after a long stint: say it, with what the samples saw. */
static void stall_report(int64_t since, int64_t ms)
{
    StallKind kinds[STALL_KINDS];
    GString *s = g_string_new(NULL);
    unsigned other = 0;

    pthread_mutex_lock(&stall.lock);
    if (stall.stint == since) {
        memcpy(kinds, stall.kinds, sizeof(kinds));
        other = stall.other;
    } else {
        memset(kinds, 0, sizeof(kinds));
    }
    pthread_mutex_unlock(&stall.lock);
    qsort(kinds, STALL_KINDS, sizeof(kinds[0]), cmp_seen);
    for (unsigned i = 0; i < STALL_KINDS && kinds[i].seen; i++) {
        g_string_append_printf(s, "%s%u x %s", s->len ? ", " : "", kinds[i].seen,
                               kinds[i].what);
    }
    if (other) {
        g_string_append_printf(s, "%s%u x other", s->len ? ", " : "", other);
    }
    error_report("-d stall: the main loop was busy for %" G_GINT64_FORMAT
                 " ms without polling; every %d ms it was in: %s",
                 ms, STALL_SAMPLE_MS, s->len ? s->str : "(not sampled)");
    g_string_free(s, TRUE);
}

/* The stint since poll last returned is over: said if it was long. */
static void stall_end_stint(void)
{
    int64_t since = __atomic_exchange_n(&stall.busy_since, 0, __ATOMIC_ACQ_REL);

    if (since) {
        int64_t ms = (g_get_monotonic_time() - since) / 1000;
        if (ms >= STALL_REPORT_MS) {
            stall_report(since, ms);
        }
    }
}

static gint stall_poll(GPollFD *fds, guint nfds, gint timeout)
{
    gint ret;

    stall_end_stint();
    ret = stall.poll(fds, nfds, timeout);
    __atomic_store_n(&stall.busy_since, g_get_monotonic_time(), __ATOMIC_RELEASE);
    return ret;
}

/* On the main thread, before its loop runs. */
bool stall_watch_start(GError **errp)
{
    pthread_t thread;
    int err;

    stall.tid = (pid_t)syscall(SYS_gettid);
    stall.poll = g_main_context_get_poll_func(NULL);
    err = pthread_create(&thread, NULL, stall_watcher, NULL);
    if (err) {
        error_setg_errno(errp, err, "-d stall: cannot start its thread");
        return false;
    }
    pthread_detach(thread);
    g_main_context_set_poll_func(NULL, stall_poll);
    return true;
}

void stall_watch_end(void)
{
    if (stall.poll) {      /* started */
        stall_end_stint(); /* the loop's last dispatch (a quit) polls no more */
    }
}
