/*
 * The privileges the VMM keeps: -runas (QEMU 7.2's syntax, texts and
 * order) and the capabilities dropped with libcap-ng once the host
 * resources are open.  Main thread only, at start-up.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <cap-ng.h>

#include "sandbox-int.h"
#include "util/error.h"

/*
 * Capabilities a running VMM may still use, and why:
 *   CAP_NET_ADMIN  netdev_add tap,ifname=... creates the interface
 *                  (TUNSETIFF on /dev/net/tun), and the script= it runs
 *                  (as root, limited by the bounding set) configures it.
 *   CAP_IPC_LOCK   the first vfio-pci, hot-plugged ones included, pins
 *                  all guest RAM for DMA beyond RLIMIT_MEMLOCK; with
 *                  -overcommit mem-lock=on, later mappings are locked too.
 * With -runas, CAP_SETUID and CAP_SETGID stay until the user changes,
 * which clears every set (the user's VMM keeps nothing, as QEMU's).
 */
static const unsigned kept_caps[] = { CAP_NET_ADMIN, CAP_IPC_LOCK };
static const unsigned runas_caps[] = { CAP_SETUID, CAP_SETGID };

/* "UID:GID" in C's base-0 numbers, neither -1 (QEMU's os_parse_runas_uid_gid). */
static bool runas_parse_ids(const char *arg, uint32_t *uid, uint32_t *gid)
{
    uint64_t ids[2];
    const char *p = arg;
    char *end;

    /* strtoul's spelling: leading blanks and a sign are taken, -1 wraps */
    for (int i = 0; i < 2; i++) {
        errno = 0;
        ids[i] = g_ascii_strtoull(p, &end, 0);
        if (errno || end == p || ids[i] >= UINT32_MAX || *end != (i == 0 ? ':' : '\0')) {
            return false;
        }
        p = end + 1;
    }
    *uid = ids[0];
    *gid = ids[1];
    return true;
}

bool opt_runas(VmConfig *cfg, const char *arg, GError **errp)
{
    struct passwd *pw = getpwnam(arg);
    RunasOpt r = { .given = true };

    if (pw) {
        r.name = g_strdup(pw->pw_name);
        r.uid = pw->pw_uid;
        r.gid = pw->pw_gid;
    } else if (!runas_parse_ids(arg, &r.uid, &r.gid)) {
        error_setg(errp, "User \"%s\" doesn't exist (and is not <uid>:<gid>)", arg);
        return false;
    }
    g_free(cfg->runas.name); /* the last -runas wins */
    cfg->runas = r;
    return true;
}

bool privileges_check(const VmConfig *cfg, GError **errp)
{
    for (guint i = 0; cfg->runas.given && cfg->sandboxes && i < cfg->sandboxes->len;
         i++) {
        const SandboxOpt *sb = &g_array_index(cfg->sandboxes, SandboxOpt, i);

        /* QEMU 7.2 starts, then its own filter kills it at setuid */
        if (sb->deny_privileged) {
            error_setg(errp,
                       "-runas: -sandbox elevateprivileges=%s forbids changing the user",
                       sb->no_new_privs ? "children" : "deny");
            return false;
        }
    }
    return true;
}

static void caps_keep(const unsigned *caps, size_t n, const bool *had, capng_type_t sets)
{
    for (size_t i = 0; i < n; i++) {
        if (had[i]) {
            capng_update(CAPNG_ADD, sets, caps[i]);
        }
    }
}

bool privileges_drop_capabilities(const VmConfig *cfg, GError **errp)
{
    bool had_kept[G_N_ELEMENTS(kept_caps)], had_runas[G_N_ELEMENTS(runas_caps)];
    bool bounding;
    int rc;

    if (capng_get_caps_process() < 0) {
        error_setg(errp, "cannot read the process's capabilities");
        return false;
    }
    if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE) {
        return true; /* started without any, as libvirt starts it */
    }
    /* only a process that may change its bounding set narrows it */
    bounding = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
    for (size_t i = 0; i < G_N_ELEMENTS(kept_caps); i++) {
        had_kept[i] = capng_have_capability(CAPNG_PERMITTED, kept_caps[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(runas_caps); i++) {
        had_runas[i] = cfg->runas.given &&
                       capng_have_capability(CAPNG_PERMITTED, runas_caps[i]);
    }
    capng_clear(CAPNG_SELECT_ALL);
    caps_keep(kept_caps, G_N_ELEMENTS(kept_caps), had_kept,
              CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET);
    /* not in the bounding set: nothing executed later may gain them */
    caps_keep(runas_caps, G_N_ELEMENTS(runas_caps), had_runas,
              CAPNG_EFFECTIVE | CAPNG_PERMITTED);
    for (size_t i = 0; bounding && i < G_N_ELEMENTS(runas_caps); i++) {
        prctl(PR_CAPBSET_DROP, runas_caps[i], 0, 0, 0); /* libcap-ng keeps them */
    }
    rc = capng_apply(bounding ? CAPNG_SELECT_ALL : CAPNG_SELECT_CAPS);
    if (rc < 0) {
        error_setg(errp, "cannot drop capabilities (libcap-ng error %d)", rc);
        return false;
    }
    return true;
}

bool privileges_change_user(const VmConfig *cfg, GError **errp)
{
    const RunasOpt *r = &cfg->runas;
    gid_t gid = r->gid;

    if (!r->given) {
        return true;
    }
    /* glibc makes every thread follow setgid, setgroups and setuid */
    if (setgid(gid) < 0) {
        error_setg(errp, "Failed to setgid(%d)", (int)gid);
        return false;
    }
    if (r->name && initgroups(r->name, gid) < 0) {
        error_setg(errp, "Failed to initgroups(\"%s\", %d)", r->name, (int)gid);
        return false;
    }
    if (!r->name && setgroups(1, &gid) < 0) {
        error_setg(errp, "Failed to setgroups(1, [%d])", (int)gid);
        return false;
    }
    if (setuid(r->uid) < 0) {
        error_setg(errp, "Failed to setuid(%d)", (int)r->uid);
        return false;
    }
    if (setuid(0) != -1) {
        error_setg(errp, "Dropping privileges failed");
        return false;
    }
    return true;
}
