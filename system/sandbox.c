/*
 * -sandbox: QEMU 7.2's seccomp syscall filter, with its option spelling,
 * defaults and syscall sets.  Parsed on the main thread while the command
 * line is read; installed once, before the VM's first thread, for every
 * thread of the process (TSYNC).
 *
 * Each set's action follows QEMU 7.2 except spawn (see docs/architecture.md):
 * the default, obsolete and privileged sets kill the process
 * (SECCOMP_RET_KILL_PROCESS, or a trap where the kernel lacks it),
 * resourcecontrol fails the call with EPERM, and spawn fails fork, exec and
 * namespace calls with EPERM where QEMU kills: a user reaches them through
 * the monitor (migrate exec:, netdev_add script=), and an error there must
 * not end the VM.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config-host.h"
#include "sandbox-int.h"
#include "util/error.h"
#include "util/subopt.h"

#ifdef CONFIG_SECCOMP
#include <linux/seccomp.h>
#include <seccomp.h>
#endif

/* What an allow|deny sub-option says; QEMU's text when it is neither. */
static bool sandbox_deny_value(SubOpts *o, const char *key, bool *deny, GError **errp)
{
    const char *value = subopts_get(o, key);

    if (!value) {
        return true;
    }
    if (strcmp(value, "deny") == 0 || strcmp(value, "allow") == 0) {
        *deny = strcmp(value, "deny") == 0;
        return true;
    }
    error_setg(errp, "invalid argument for %s", key);
    return false;
}

/*
 * QEMU reads the whole option first (an unknown key or a bad 'enable' is
 * refused whatever enable says), then, only when enabled, the values in
 * the order obsolete, elevateprivileges, spawn, resourcecontrol.
 */
bool opt_sandbox(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o;
    SandboxOpt sb = { .deny_obsolete = true };
    bool enable = false, ok = false;
    const char *elevate;

    cfg->sandbox_given = true;
#ifndef CONFIG_SECCOMP
    return true; /* refused as a whole when installed, with QEMU's text */
#endif
    o = subopts_parse(arg, "enable", errp);
    if (!o) {
        return false;
    }
    elevate = subopts_get(o, "elevateprivileges");
    subopts_get(o, "obsolete");
    subopts_get(o, "spawn");
    subopts_get(o, "resourcecontrol");
    subopts_get(o, "enable");
    if (!subopts_check_unused(o, errp) || !subopts_get_bool(o, "enable", &enable, errp)) {
        goto out;
    }
    if (!enable) {
        ok = true;
        goto out;
    }
    if (!sandbox_deny_value(o, "obsolete", &sb.deny_obsolete, errp)) {
        goto out;
    }
    if (elevate && strcmp(elevate, "children") == 0) {
        sb.deny_privileged = sb.no_new_privs = true;
    } else if (!sandbox_deny_value(o, "elevateprivileges", &sb.deny_privileged, errp)) {
        goto out;
    }
    if (!sandbox_deny_value(o, "spawn", &sb.deny_spawn, errp) ||
        !sandbox_deny_value(o, "resourcecontrol", &sb.deny_resources, errp)) {
        goto out;
    }
    if (!cfg->sandboxes) {
        cfg->sandboxes = g_array_new(FALSE, TRUE, sizeof(SandboxOpt));
    }
    g_array_append_val(cfg->sandboxes, sb);
    ok = true;
out:
    subopts_free(o);
    return ok;
}

void sandbox_config_clear(VmConfig *cfg)
{
    if (cfg->sandboxes) {
        g_array_free(cfg->sandboxes, TRUE);
        cfg->sandboxes = NULL;
    }
    g_clear_pointer(&cfg->runas.name, g_free);
}

#ifdef CONFIG_SECCOMP

/* Syscalls each set denies outright, as QEMU 7.2 lists them. */
static const char *const default_set[] = {
    "reboot",     "swapon",      "swapoff", "syslog",  "mount",   "umount",
    "kexec_load", "afs_syscall", "break",   "ftime",   "getpmsg", "gtty",
    "lock",       "mpx",         "prof",    "profil",  "putpmsg", "security",
    "stty",       "tuxcall",     "ulimit",  "vserver", NULL,
};
static const char *const obsolete_set[] = {
    "readdir",  "_sysctl",  "bdflush", "create_module", "get_kernel_syms", "query_module",
    "sgetmask", "ssetmask", "sysfs",   "uselib",        "ustat",           NULL,
};
static const char *const privileged_set[] = {
    "setuid",    "setgid",    "setpgid",  "setsid",   "setreuid", "setregid",
    "setresuid", "setresgid", "setfsuid", "setfsgid", NULL,
};
/* clone is handled by its flags (below), clone3 by ENOSYS */
static const char *const spawn_set[] = {
    "fork", "vfork", "execve", "execveat", "setns", "unshare", NULL,
};
static const char *const resources_set[] = {
    "setpriority",
    "sched_setparam",
    "sched_setaffinity",
    NULL,
};

/* Every thread pthread_create makes carries these clone flags. */
static const uint64_t clone_required[] = {
    CLONE_VM,      CLONE_FS,     CLONE_FILES,         CLONE_SIGHAND,        CLONE_THREAD,
    CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID,
};
/* None of these belongs to a thread: a process, a tracee or a namespace. */
static const uint64_t clone_forbidden[] = {
    0x00001000 /* CLONE_PIDFD */,
    CLONE_PTRACE,
    CLONE_VFORK,
    CLONE_PARENT,
    CLONE_NEWNS,
    CLONE_UNTRACED,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_IO,
};

/* The kernel's strongest "this must not happen": kill the whole process. */
static uint32_t sandbox_kill_action(void)
{
    uint32_t action = SECCOMP_RET_KILL_PROCESS;

    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0) {
        return SCMP_ACT_KILL_PROCESS;
    }
    return SCMP_ACT_TRAP;
}

static bool sandbox_add(scmp_filter_ctx ctx, uint32_t action, const char *name,
                        unsigned count, const struct scmp_arg_cmp *cmp, GError **errp)
{
    int nr = seccomp_syscall_resolve_name(name);
    int rc;

    if (nr == __NR_SCMP_ERROR) {
        return true; /* not a syscall of this libseccomp's x86-64: nothing to deny */
    }
    rc = seccomp_rule_add_array(ctx, action, nr, count, cmp);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "failed to add seccomp denylist rules");
        return false;
    }
    return true;
}

static bool sandbox_add_list(scmp_filter_ctx ctx, uint32_t action,
                             const char *const *names, GError **errp)
{
    for (; *names; names++) {
        if (!sandbox_add(ctx, action, *names, 0, NULL, errp)) {
            return false;
        }
    }
    return true;
}

/* clone: refused unless it makes a thread (the flags above); clone3 hides
 * its flags in memory, so it gets ENOSYS and glibc falls back to clone. */
static bool sandbox_add_clone(scmp_filter_ctx ctx, uint32_t action, GError **errp)
{
    struct scmp_arg_cmp cmp = { .arg = 0, .op = SCMP_CMP_MASKED_EQ };

    for (size_t i = 0; i < G_N_ELEMENTS(clone_required); i++) {
        cmp.datum_a = clone_required[i];
        cmp.datum_b = 0;
        if (!sandbox_add(ctx, action, "clone", 1, &cmp, errp)) {
            return false;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(clone_forbidden); i++) {
        cmp.datum_a = cmp.datum_b = clone_forbidden[i];
        if (!sandbox_add(ctx, action, "clone", 1, &cmp, errp)) {
            return false;
        }
    }
    return sandbox_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, errp);
}

static bool sandbox_add_rules(scmp_filter_ctx ctx, const SandboxOpt *sb, GError **errp)
{
    uint32_t kill = sandbox_kill_action();
    uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    /* sched_setscheduler is refused except to SCHED_IDLE, as QEMU does */
    struct scmp_arg_cmp not_idle = { .arg = 1, .op = SCMP_CMP_NE, .datum_a = SCHED_IDLE };

    if (!sandbox_add_list(ctx, kill, default_set, errp) ||
        (sb->deny_obsolete && !sandbox_add_list(ctx, kill, obsolete_set, errp)) ||
        (sb->deny_privileged && !sandbox_add_list(ctx, kill, privileged_set, errp))) {
        return false;
    }
    if (sb->deny_spawn && (!sandbox_add_list(ctx, eperm, spawn_set, errp) ||
                           !sandbox_add_clone(ctx, eperm, errp))) {
        return false;
    }
    if (sb->deny_resources &&
        (!sandbox_add_list(ctx, eperm, resources_set, errp) ||
         !sandbox_add(ctx, eperm, "sched_setscheduler", 1, &not_idle, errp))) {
        return false;
    }
    return true;
}

static bool sandbox_install_one(const SandboxOpt *sb, GError **errp)
{
    scmp_filter_ctx ctx;
    bool ok = false;
    int rc;

    if (sb->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        error_setg(errp, "failed to set no_new_privs aborting");
        return false;
    }
    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        error_setg(errp, "failed to initialize seccomp context");
        return false;
    }
    /* every thread, those that exist now included, gets the filter */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc != 0) {
        error_setg_errno(errp, -rc, "failed to set seccomp thread synchronization");
        goto out;
    }
    if (!sandbox_add_rules(ctx, sb, errp)) {
        goto out;
    }
    rc = seccomp_load(ctx);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "failed to load seccomp syscall filter in kernel");
        goto out;
    }
    ok = true;
out:
    seccomp_release(ctx);
    return ok;
}

bool sandbox_install(const VmConfig *cfg, GError **errp)
{
    for (guint i = 0; cfg->sandboxes && i < cfg->sandboxes->len; i++) {
        if (!sandbox_install_one(&g_array_index(cfg->sandboxes, SandboxOpt, i), errp)) {
            return false;
        }
    }
    return true;
}

#else /* !CONFIG_SECCOMP */

bool sandbox_install(const VmConfig *cfg, GError **errp)
{
    if (cfg->sandbox_given) {
        error_setg(errp, "-sandbox support is not enabled in this QEMU binary");
        return false;
    }
    return true;
}

#endif
