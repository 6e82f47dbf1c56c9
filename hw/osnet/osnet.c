/*
 * osnet set-up and run-time control: the cpumap (pinning, the Directvisor
 * KVM extension's ioctl, reloads), DID on stock KVM (exits disabled at VM
 * creation, halt polling), and the per-second exit-rate sampler.  Main
 * thread only; vCPU threads pin themselves at start (kvm-cpu.c).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hw/osnet.h"
#include "util/error.h"

#define DID_EXIT_BITS                                                                    \
    (KVM_X86_DISABLE_EXITS_HLT | KVM_X86_DISABLE_EXITS_PAUSE |                           \
     KVM_X86_DISABLE_EXITS_MWAIT | KVM_X86_DISABLE_EXITS_CSTATE)

static void read_online_cpus(cpu_set_t *online)
{
    gchar *text = NULL;

    if (g_file_get_contents("/sys/devices/system/cpu/online", &text, NULL, NULL) &&
        osnet_parse_cpu_list(text, online)) {
        g_free(text);
        return;
    }
    g_free(text);
    /* no sysfs: every CPU the scheduler lets us use counts as online */
    sched_getaffinity(0, sizeof(*online), online);
}

bool osnet_configure(OsnetState *os, const VmConfig *cfg, KvmVm *kvm, GError **errp)
{
    cpu_set_t allowed, online;
    GString *warnings;
    bool ok;

    memset(os, 0, sizeof(*os));
    os->kvm = kvm;
    os->did.halt_poll_ns = -1;
    os->vm_stats.fd = -1;
    /* the options were parsed when read; the map file is read here */
    os->did.requested = cfg->overcommit_cpu_pm || cfg->cpumap_did;
    os->did.reason = OSNET_DID_NOT_REQUESTED;
    os->incoming = cfg->incoming != NULL;
    os->incoming_did = -1;
    if (!cfg->cpumap) {
        return true;
    }
    sched_getaffinity(0, sizeof(allowed), &allowed);
    read_online_cpus(&online);
    warnings = g_string_new(NULL);
    ok = osnet_cpumap_parse(cfg->cpumap, cfg->smp.cpus, &allowed, &online, &os->map,
                            warnings, errp);
    if (ok && warnings->len) {
        g_strchomp(warnings->str);
        warn_report("%s", warnings->str);
    }
    g_string_free(warnings, TRUE);
    return ok;
}

static int64_t read_halt_poll_default(void)
{
    gchar *text = NULL;
    int64_t v = -1;

    if (g_file_get_contents("/sys/module/kvm/parameters/halt_poll_ns", &text, NULL,
                            NULL)) {
        v = g_ascii_strtoll(text, NULL, 10);
    }
    g_free(text);
    return v;
}

static bool set_halt_poll(OsnetState *os, int64_t ns, GError **errp)
{
    struct kvm_enable_cap cap = { .cap = KVM_CAP_HALT_POLL, .args = { ns } };

    if (!os->did.halt_poll_cap) {
        error_setg(errp, "this KVM cannot set halt polling per VM (KVM_CAP_HALT_POLL)");
        return false;
    }
    if (ioctl(os->kvm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
        error_setg_errno(errp, errno, "KVM_CAP_HALT_POLL");
        return false;
    }
    os->did.halt_poll_ns = ns;
    return true;
}

bool osnet_setup_vm(OsnetState *os, GError **errp)
{
    KvmVm *kvm = os->kvm;
    OsnetDid *did = &os->did;

    did->exits_supported = kvm_check_extension(kvm, KVM_CAP_X86_DISABLE_EXITS);
    did->halt_poll_cap = kvm_check_extension(kvm, KVM_CAP_HALT_POLL) > 0;
    did->halt_poll_default = read_halt_poll_default();
    did->halt_poll_ns = did->halt_poll_default;
    if (!did->requested) {
        return true;
    }
    uint32_t mask = did->exits_supported & DID_EXIT_BITS;
    if (mask) {
        struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS,
                                      .args = { mask } };
        if (ioctl(kvm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
            error_setg_errno(errp, errno, "KVM_CAP_X86_DISABLE_EXITS (0x%x)", mask);
            return false;
        }
    }
    did->exits_disabled = mask;
    /* an incoming VM: on once the stream says so (osnet_incoming_done) */
    did->active = !os->incoming;
    did->reason = os->incoming ? OSNET_DID_INCOMING_WAIT : OSNET_DID_START;
    return true;
}

int osnet_vcpu_pcpu(const OsnetState *os, unsigned index)
{
    return index < os->map.nr_vcpus ? os->map.pcpu[index] : -1;
}

static bool vcpu_is_thread(const OsnetState *os, pid_t tid)
{
    for (unsigned i = 0; i < os->nr_vcpus; i++) {
        if (os->vcpus[i]->tid == tid) {
            return true;
        }
    }
    return false;
}

void osnet_place_main_thread(OsnetState *os)
{
    cpu_set_t others;
    DIR *dir;
    struct dirent *de;

    if (!os->map.nr_vcpus) {
        return;
    }
    sched_getaffinity(0, sizeof(others), &others);
    /* widen back to what the process was given, then drop mapped pCPUs */
    if (os->map.nr_vcpus) {
        cpu_set_t online;
        read_online_cpus(&online);
        CPU_OR(&others, &others, &online);
    }
    for (unsigned i = 0; i < os->map.nr_vcpus; i++) {
        CPU_CLR(os->map.pcpu[i], &others);
    }
    if (CPU_COUNT(&others) == 0) {
        return; /* every CPU is dedicated: nowhere else to go */
    }
    dir = opendir("/proc/self/task");
    while (dir && (de = readdir(dir))) {
        pid_t tid = atoi(de->d_name);
        if (tid > 0 && !vcpu_is_thread(os, tid)) {
            sched_setaffinity(tid, sizeof(others), &others);
        }
    }
    if (dir) {
        closedir(dir);
    }
}

/* Tell the Directvisor KVM extension the map; detects its absence once. */
static void osnet_pass_cpumap(OsnetState *os)
{
    struct osnet_kvm_cpumap *km;

    if ((os->kernel_checked && !os->kernel_extension) || !os->map.nr_vcpus) {
        return;
    }
    km = g_new0(struct osnet_kvm_cpumap, 1);
    for (unsigned i = 0; i < os->map.nr_vcpus && i < OSNET_MAX_VCPUS; i++) {
        km->pcpus[i] = os->map.pcpu[i];
    }
    km->nvcpus = os->map.nr_vcpus;
    km->is_valid = true;
    g_strlcpy(km->path, os->map.path, sizeof(km->path));
    if (ioctl(os->kvm->vm_fd, OSNET_KVM_SET_CPUMAP, km) == 0) {
        os->kernel_extension = true;
        os->cpumap_in_kernel = true;
    } else {
        if (!os->kernel_checked) {
            info_report("osnet: this kernel's KVM has no Directvisor extension "
                        "(OSNET_KVM_SET_CPUMAP: %s): vCPUs are pinned by this VMM "
                        "only",
                        g_strerror(errno));
        }
        os->kernel_extension = os->kernel_checked && os->kernel_extension;
        os->cpumap_in_kernel = false;
    }
    os->kernel_checked = true;
    g_free(km);
}

static gboolean osnet_sample_cb(gpointer opaque)
{
    osnet_sample(opaque);
    return G_SOURCE_CONTINUE;
}

bool osnet_setup_vcpus(OsnetState *os, VCpu **vcpus, unsigned nr_vcpus, GError **errp)
{
    os->vcpus = vcpus;
    os->nr_vcpus = nr_vcpus;
    os->vcpu_stats = g_new0(KvmStatsFd, nr_vcpus);
    os->vcpu_stats_error = g_new0(char *, nr_vcpus + 1);
    os->rates = g_new0(OsnetVcpuRate, nr_vcpus);
    for (unsigned i = 0; i < nr_vcpus; i++) {
        GError *err = NULL;

        if (!kvm_stats_open(&os->vcpu_stats[i], vcpus[i]->fd, &err)) {
            os->vcpu_stats_error[i] = g_strdup(err->message);
            g_error_free(err);
        }
    }
    osnet_pass_cpumap(os);
    if (os->did.active && os->did.halt_poll_cap && !set_halt_poll(os, 0, errp)) {
        return false;
    }
    osnet_sample(os);
    os->sample_timer = g_timeout_add(1000, osnet_sample_cb, os);
    return true;
}

void osnet_cleanup(OsnetState *os)
{
    if (!os->kvm) {
        return;
    }
    if (os->sample_timer) {
        g_source_remove(os->sample_timer);
        os->sample_timer = 0;
    }
    for (unsigned i = 0; os->vcpu_stats && i < os->nr_vcpus; i++) {
        kvm_stats_close(&os->vcpu_stats[i]);
    }
    g_free(os->vcpu_stats);
    os->vcpu_stats = NULL;
    g_strfreev(os->vcpu_stats_error);
    os->vcpu_stats_error = NULL;
    if (os->vm_stats.fd >= 0) {
        kvm_stats_close(&os->vm_stats);
    }
    g_free(os->rates);
    os->rates = NULL;
    osnet_cpumap_clear(&os->map);
}

static bool pin_thread(pthread_t thread, int pcpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(pcpu, &set);
    return pthread_setaffinity_np(thread, sizeof(set), &set) == 0;
}

bool osnet_reload_cpumap(OsnetState *os, const char *path, GError **errp)
{
    VCpu **vcpus = os->vcpus;
    unsigned nr_vcpus = os->nr_vcpus;
    OsnetCpuMap fresh = { 0 };
    cpu_set_t allowed, online, *before;
    GString *warnings = g_string_new(NULL);
    bool ok = true;
    unsigned moved = 0;

    /* the process may use what any of its threads may use */
    CPU_ZERO(&allowed);
    read_online_cpus(&online);
    sched_getaffinity(0, sizeof(allowed), &allowed);
    for (unsigned i = 0; i < os->map.nr_vcpus; i++) {
        CPU_SET(os->map.pcpu[i], &allowed);
    }
    if (!osnet_cpumap_parse(path, nr_vcpus, &allowed, &online, &fresh, warnings, errp)) {
        g_string_free(warnings, TRUE);
        return false;
    }
    before = g_new(cpu_set_t, nr_vcpus);
    for (unsigned i = 0; i < nr_vcpus; i++) {
        pthread_getaffinity_np(vcpus[i]->thread, sizeof(cpu_set_t), &before[i]);
    }
    for (; moved < nr_vcpus; moved++) {
        if (!pin_thread(vcpus[moved]->thread, fresh.pcpu[moved])) {
            error_setg(errp, "%s: cannot move vCPU %u to pCPU %d", path, moved,
                       fresh.pcpu[moved]);
            ok = false;
            break;
        }
    }
    if (!ok) {
        for (unsigned i = 0; i < moved; i++) {
            pthread_setaffinity_np(vcpus[i]->thread, sizeof(cpu_set_t), &before[i]);
        }
        osnet_cpumap_clear(&fresh);
    } else {
        if (warnings->len) {
            g_strchomp(warnings->str);
            warn_report("%s", warnings->str);
        }
        osnet_cpumap_clear(&os->map);
        os->map = fresh;
        for (unsigned i = 0; i < nr_vcpus; i++) {
            vcpus[i]->pin_pcpu = os->map.pcpu[i];
        }
        osnet_pass_cpumap(os);
        osnet_place_main_thread(os);
    }
    g_free(before);
    g_string_free(warnings, TRUE);
    return ok;
}

bool osnet_did_enable(OsnetState *os, GError **errp)
{
    OsnetDid *did = &os->did;
    uint32_t want = did->exits_supported & DID_EXIT_BITS;

    /* not asked for at start: an error on every host, also one whose KVM
     * offers no exits to disable (docs/dedicated-cores.md) */
    if (!did->requested || (did->exits_disabled & want) != want) {
        error_setg(errp, "HLT, PAUSE and C-state exits can only be disabled when the "
                         "VM is created: start it with -osnet_cpumap path=FILE,did=on or "
                         "-overcommit cpu-pm=on");
        return false;
    }
    if (did->halt_poll_cap && !set_halt_poll(os, 0, errp)) {
        return false;
    }
    did->active = true;
    did->reason = OSNET_DID_COMMAND;
    return true;
}

bool osnet_did_disable(OsnetState *os, GError **errp)
{
    OsnetDid *did = &os->did;

    if (did->halt_poll_cap && did->halt_poll_default >= 0 &&
        !set_halt_poll(os, did->halt_poll_default, errp)) {
        return false;
    }
    /* KVM cannot re-enable exits it was told to leave to the guest */
    did->active = false;
    did->reason = OSNET_DID_COMMAND;
    return true;
}

const char *osnet_did_reason_name(OsnetDidReason reason)
{
    static const char *const names[OSNET_DID_REASON__MAX] = {
        [OSNET_DID_NOT_REQUESTED] = "not-requested",
        [OSNET_DID_START] = "start",
        [OSNET_DID_COMMAND] = "command",
        [OSNET_DID_INCOMING_WAIT] = "incoming-wait",
        [OSNET_DID_MIGRATION_STOP] = "migration-stop",
        [OSNET_DID_MIGRATION_FAILED] = "migration-failed",
        [OSNET_DID_INCOMING_SOURCE] = "incoming-source",
        [OSNET_DID_INCOMING_OWN] = "incoming-own",
    };

    return reason < OSNET_DID_REASON__MAX ? names[reason] : "not-requested";
}

void osnet_migration_stop(OsnetState *os)
{
    GError *err = NULL;

    os->did.off_for_migration = os->did.active;
    if (!os->did.active) {
        return;
    }
    /* off even when KVM refuses the default halt polling back: the source
     * must not claim a dedicated core it is about to give up */
    if (!osnet_did_disable(os, &err)) {
        warn_report("osnet: DID off for the migration's final stop: %s", err->message);
        g_clear_error(&err);
        os->did.active = false;
    }
    os->did.reason = OSNET_DID_MIGRATION_STOP;
}

void osnet_migration_failed(OsnetState *os)
{
    GError *err = NULL;

    if (!os->did.off_for_migration) {
        return;
    }
    os->did.off_for_migration = false;
    if (!osnet_did_enable(os, &err)) {
        warn_report("osnet: DID cannot be switched back on after the failed "
                    "migration: %s",
                    err->message);
        g_clear_error(&err);
        return;
    }
    os->did.reason = OSNET_DID_MIGRATION_FAILED;
}

void osnet_incoming_done(OsnetState *os)
{
    OsnetDid *did = &os->did;
    bool from_source = os->incoming_did >= 0;
    bool want = from_source ? os->incoming_did == 1 : did->requested;
    bool was_incoming = os->incoming;
    GError *err = NULL;

    os->incoming = false;
    if (!was_incoming || !did->requested) {
        return; /* nothing to switch (osnet_state_apply refused DID on) */
    }
    /* the vCPU threads bound themselves to this VM's map when they started
     * and are checked again as the guest first runs (kvm-cpu.c) */
    if (want ? !osnet_did_enable(os, &err) : !osnet_did_disable(os, &err)) {
        warn_report("osnet: DID after the incoming migration: %s", err->message);
        g_clear_error(&err);
        return;
    }
    did->reason = from_source ? OSNET_DID_INCOMING_SOURCE : OSNET_DID_INCOMING_OWN;
}

KvmStatsFd *osnet_vcpu_stats(OsnetState *os, unsigned index, GError **errp)
{
    KvmStatsFd *s;

    if (!os->vcpu_stats || index >= os->nr_vcpus) {
        error_setg(errp, "vCPU %u does not exist", index);
        return NULL;
    }
    s = &os->vcpu_stats[index];
    if (s->fd < 0) {
        /* not tried again here: the vCPU may be in KVM_RUN (see osnet.h) */
        const char *why = os->vcpu_stats_error ? os->vcpu_stats_error[index] : NULL;

        error_setg(errp, "vCPU %u: %s", index, why ? why : "no statistics fd");
        return NULL;
    }
    return kvm_stats_refresh(s, errp) ? s : NULL;
}

void osnet_sample(OsnetState *os)
{
    gint64 now = g_get_monotonic_time();
    double dt = os->last_sample_us ? (now - os->last_sample_us) / 1e6 : 0;

    for (unsigned i = 0; i < os->nr_vcpus; i++) {
        KvmStatsFd *s = osnet_vcpu_stats(os, i, NULL);
        OsnetVcpuRate *r = &os->rates[i];
        uint64_t user = 0;

        if (!s) {
            continue;
        }
        for (int k = 0; k < VCPU_EXIT__MAX; k++) {
            user += __atomic_load_n(&os->vcpus[i]->exits[k], __ATOMIC_RELAXED);
        }
        uint64_t v[6] = { kvm_stats_get(s, "exits"),     kvm_stats_get(s, "halt_exits"),
                          kvm_stats_get(s, "irq_exits"), kvm_stats_get(s, "mmio_exits"),
                          kvm_stats_get(s, "io_exits"),  user };
        uint64_t *last[6] = { &r->last_exits, &r->last_halt, &r->last_irq,
                              &r->last_mmio,  &r->last_io,   &r->last_user };
        double *rate[6] = { &r->exits_per_s, &r->halt_per_s, &r->irq_per_s,
                            &r->mmio_per_s,  &r->io_per_s,   &r->user_per_s };
        for (int k = 0; k < 6; k++) {
            *rate[k] = dt > 0 ? (double)(v[k] - *last[k]) / dt : 0;
            *last[k] = v[k];
        }
    }
    os->last_sample_us = now;
}
