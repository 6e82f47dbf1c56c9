/*
 * vCPUs: one thread each, running KVM_RUN and handing its exits to the
 * machine through the VCpuOps it was created with.  Each thread is a small
 * state machine (paused / running / finished) fed by requests from the
 * main thread under cpu->lock; a kick (immediate_exit plus SIGUSR1) takes
 * it out of KVM_RUN.  The ops run without cpu->lock held, so they may take
 * the machine's own lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cpuid.h"
#include "accel/kvm/kvm.h"
#include "util/error.h"

#define SIG_VCPU_KICK SIGUSR1

/* MSRs restored at reset (their power-on values are read at creation). */
static const uint32_t reset_msrs[] = {
    0x174,      0x175,      0x176,      /* SYSENTER_CS/ESP/EIP */
    0x277,                              /* PAT */
    0xc0000081, 0xc0000082, 0xc0000083, /* STAR, LSTAR, CSTAR */
    0xc0000084,                         /* SFMASK */
    0xc0000100, 0xc0000101, 0xc0000102, /* FS/GS/KERNEL_GS base */
}; /* then cpuid_pv_msrs(): kvmclock, steal time, PV EOI, TSC deadline... */

static void vcpu_kick_handler(int sig)
{
    (void)sig;
}

static void vcpu_install_kick_handler(void)
{
    static gsize once;

    if (g_once_init_enter(&once)) {
        struct sigaction sa = { .sa_handler = vcpu_kick_handler };
        sigemptyset(&sa.sa_mask);
        sigaction(SIG_VCPU_KICK, &sa, NULL); /* no SA_RESTART */
        g_once_init_leave(&once, 1);
    }
}

/*
 * Keep msr's power-on value in s if KVM lets us read it and write it back
 * (KVM_SET_MSRS at reset stops at the first MSR KVM refuses, such as steal
 * time on a host without scheduler statistics).
 */
static void vcpu_capture_msr(VCpu *cpu, VCpuInitialState *s, uint32_t msr)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry entry;
    } one = { .hdr.nmsrs = 1, .entry.index = msr };

    if (s->msrs.hdr.nmsrs < G_N_ELEMENTS(s->msrs.entries) &&
        ioctl(cpu->fd, KVM_GET_MSRS, &one) == 1 &&
        ioctl(cpu->fd, KVM_SET_MSRS, &one) == 1) {
        s->msrs.entries[s->msrs.hdr.nmsrs++] = one.entry;
    }
}

static bool vcpu_capture_initial(VCpu *cpu, GError **errp)
{
    VCpuInitialState *s = &cpu->initial;
    size_t nr_pv;
    const uint32_t *pv = cpuid_pv_msrs(&nr_pv);

    /* one by one: KVM_GET_MSRS stops at the first MSR it cannot read */
    s->msrs.hdr.nmsrs = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(reset_msrs); i++) {
        vcpu_capture_msr(cpu, s, reset_msrs[i]);
    }
    for (size_t i = 0; i < nr_pv; i++) {
        vcpu_capture_msr(cpu, s, pv[i]);
    }
    if (ioctl(cpu->fd, KVM_GET_REGS, &s->regs) < 0 ||
        ioctl(cpu->fd, KVM_GET_SREGS, &s->sregs) < 0 ||
        ioctl(cpu->fd, KVM_GET_FPU, &s->fpu) < 0 ||
        ioctl(cpu->fd, KVM_GET_LAPIC, &s->lapic) < 0 ||
        ioctl(cpu->fd, KVM_GET_MP_STATE, &s->mp_state) < 0) {
        error_setg_errno(errp, errno, "reading vCPU %u state failed", cpu->index);
        return false;
    }
    return true;
}

/* The CPUID table cfg asks for, from KVM's supported set. */
static bool vcpu_set_cpuid(VCpu *cpu, const VCpuConfig *cfg, GError **errp)
{
    CpuidOptions opt = {
        .smp = cfg->smp,
        .host_cache_info = cfg->host_cache_info,
        /* the LAPIC is always in the kernel here */
        .tsc_deadline = kvm_check_extension(cpu->kvm, KVM_CAP_TSC_DEADLINE_TIMER) > 0,
        .mwait = cfg->mwait,
    };
    struct kvm_cpuid2 *cpuid = cpuid_build_table(cpu->kvm->supported_cpuid, &opt,
                                                 cpu->apic_id);
    bool ok = ioctl(cpu->fd, KVM_SET_CPUID2, cpuid) == 0;

    if (!ok) {
        error_setg_errno(errp, errno, "KVM_SET_CPUID2 on vCPU %u failed", cpu->index);
    }
    g_free(cpuid);
    return ok;
}

VCpu *vcpu_create(KvmVm *kvm, const VCpuConfig *cfg, GError **errp)
{
    VCpu *cpu = g_new0(VCpu, 1);
    unsigned index = cfg->index;

    cpu->kvm = kvm;
    cpu->ops = cfg->ops;
    cpu->opaque = cfg->opaque;
    cpu->index = index;
    cpu->apic_id = cpu_apic_id(cfg->smp, index);
    cpu->state = VCPU_STATE_PAUSED;
    cpu->want_pause = true;
    cpu->pin_pcpu = cfg->pcpu;
    pthread_mutex_init(&cpu->lock, NULL);
    pthread_cond_init(&cpu->cond, NULL);
    cpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)cpu->apic_id);
    if (cpu->fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VCPU %u failed", index);
        g_free(cpu);
        return NULL;
    }
    cpu->run = mmap(NULL, kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    cpu->fd, 0);
    if (cpu->run == MAP_FAILED) {
        error_setg_errno(errp, errno, "mapping vCPU %u's kvm_run failed", index);
        goto fail;
    }
    if (!vcpu_set_cpuid(cpu, cfg, errp) || !vcpu_capture_initial(cpu, errp)) {
        goto fail;
    }
    return cpu;
fail:
    if (cpu->run && cpu->run != MAP_FAILED) {
        munmap(cpu->run, kvm->vcpu_mmap_size);
    }
    close(cpu->fd);
    g_free(cpu);
    return NULL;
}

bool vcpu_reset(VCpu *cpu, GError **errp)
{
    VCpuInitialState *s = &cpu->initial;

    if (ioctl(cpu->fd, KVM_SET_SREGS, &s->sregs) < 0 ||
        ioctl(cpu->fd, KVM_SET_REGS, &s->regs) < 0 ||
        ioctl(cpu->fd, KVM_SET_FPU, &s->fpu) < 0 ||
        ioctl(cpu->fd, KVM_SET_LAPIC, &s->lapic) < 0 ||
        ioctl(cpu->fd, KVM_SET_MP_STATE, &s->mp_state) < 0 ||
        (s->msrs.hdr.nmsrs && ioctl(cpu->fd, KVM_SET_MSRS, &s->msrs) < 0)) {
        error_setg_errno(errp, errno, "resetting vCPU %u failed", cpu->index);
        return false;
    }
    return true;
}

static void vcpu_count_exit(VCpu *cpu, VCpuExitKind kind)
{
    __atomic_add_fetch(&cpu->exits[kind], 1, __ATOMIC_RELAXED);
}

static void vcpu_handle_io(VCpu *cpu)
{
    struct kvm_run *run = cpu->run;

    cpu->ops->pio(cpu->opaque, run->io.port, (uint8_t *)run + run->io.data_offset,
                  run->io.size, run->io.count, run->io.direction == KVM_EXIT_IO_OUT);
}

static void vcpu_handle_mmio(VCpu *cpu)
{
    struct kvm_run *run = cpu->run;
    unsigned len = run->mmio.len <= 8 ? run->mmio.len : 8;

    cpu->ops->mmio(cpu->opaque, run->mmio.phys_addr, run->mmio.data, len,
                   run->mmio.is_write);
}

/*
 * The vCPU cannot go on: say why on stderr with its registers, and ask the
 * machine to stop (the caller parks this vCPU).
 */
static void vcpu_fatal(VCpu *cpu, const char *what)
{
    struct kvm_regs regs;

    error_report("KVM internal error on vCPU %u: %s", cpu->index, what);
    if (ioctl(cpu->fd, KVM_GET_REGS, &regs) == 0) {
        fprintf(stderr, "RIP=%016llx RSP=%016llx RAX=%016llx RFL=%08llx\n", regs.rip,
                regs.rsp, regs.rax, regs.rflags);
    }
    cpu->ops->fatal(cpu->opaque);
}

void vcpu_dump_state(VCpu *cpu, FILE *out)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_vcpu_events ev;
    struct kvm_mp_state mp;

    if (ioctl(cpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(cpu->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(out, "vCPU %u: registers unreadable: %s\n", cpu->index,
                g_strerror(errno));
        return;
    }
    fprintf(out,
            "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
            "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
            "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
            "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
            "RIP=%016llx RFL=%08llx\n"
            "CS =%04x %016llx %08x %02x SS =%04x %016llx\n"
            "GDT=%016llx %04x IDT=%016llx %04x TR=%04x %016llx\n"
            "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n"
            "EFER=%016llx APIC_BASE=%016llx\n",
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10,
            r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags, s.cs.selector, s.cs.base,
            s.cs.limit, s.cs.type | (s.cs.l << 5) | (s.cs.db << 6) | (s.cs.dpl << 7),
            s.ss.selector, s.ss.base, s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit,
            s.tr.selector, s.tr.base, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
    if (ioctl(cpu->fd, KVM_GET_VCPU_EVENTS, &ev) == 0) {
        if (ev.exception.injected || ev.exception.pending) {
            fprintf(out, "exception %s: vector %u error code %#x\n",
                    ev.exception.injected ? "injected" : "pending", ev.exception.nr,
                    ev.exception.has_error_code ? ev.exception.error_code : 0);
        }
        fprintf(out, "NMI pending %u, interrupt %s %u, shadow %u\n", ev.nmi.pending,
                ev.interrupt.injected ? "injected" : "none", ev.interrupt.nr,
                ev.interrupt.shadow);
    }
    if (ioctl(cpu->fd, KVM_GET_MP_STATE, &mp) == 0) {
        fprintf(out, "mp_state %u\n", mp.mp_state);
    }
    /* AMD's SVM leaves the VMCB undefined at a shutdown: KVM INITs the vCPU */
    if (r.rip == 0xfff0 && s.cs.selector == 0xf000 && s.cs.base == 0xffff0000) {
        fprintf(out,
                "(vCPU %u is at the reset vector: KVM re-initialises an AMD vCPU at a "
                "shutdown, so these are not the faulting state)\n",
                cpu->index);
    }
}

/*
 * A triple fault: always said on stderr, as a KVM internal error is (a
 * guest that resets with no message otherwise leaves nothing to go on),
 * with the registers KVM still has.
 */
static void vcpu_report_triple_fault(VCpu *cpu)
{
    /* a guest that triple-faults at every boot: said a few times, then not
     * (stderr may be a pipe nobody reads) */
    static unsigned said;
    unsigned n = __atomic_add_fetch(&said, 1, __ATOMIC_RELAXED);

    if (n > 8) {
        return;
    }
    error_report("vCPU %u: triple fault (KVM_EXIT_SHUTDOWN): the guest resets%s%s",
                 cpu->index, kvm_dirty_logging(cpu->kvm) ? " (dirty logging on)" : "",
                 n == 8 ? " (the next ones are not said)" : "");
    vcpu_dump_state(cpu, stderr);
    fflush(stderr);
}

/* Returns false when the vCPU must stop running (the VM is going down). */
static bool vcpu_handle_exit(VCpu *cpu)
{
    struct kvm_run *run = cpu->run;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        vcpu_count_exit(cpu, VCPU_EXIT_IO);
        vcpu_handle_io(cpu);
        return true;
    case KVM_EXIT_MMIO:
        vcpu_count_exit(cpu, VCPU_EXIT_MMIO);
        vcpu_handle_mmio(cpu);
        return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        vcpu_count_exit(cpu, VCPU_EXIT_INTR);
        return true;
    case KVM_EXIT_SHUTDOWN:
        /* a triple fault resets the PC (or ends it under -no-reboot) */
        vcpu_count_exit(cpu, VCPU_EXIT_OTHER);
        vcpu_report_triple_fault(cpu);
        cpu->ops->reset(cpu->opaque, "triple fault (KVM_EXIT_SHUTDOWN)");
        return false;
    case KVM_EXIT_SYSTEM_EVENT:
        vcpu_count_exit(cpu, VCPU_EXIT_OTHER);
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
            cpu->ops->reset(cpu->opaque, "KVM_SYSTEM_EVENT_RESET");
        } else {
            cpu->ops->shutdown(cpu->opaque, "KVM system event (shutdown or crash)");
        }
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        vcpu_count_exit(cpu, VCPU_EXIT_OTHER);
        vcpu_fatal(cpu, run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                            ? "emulation failure"
                            : "internal error");
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        vcpu_count_exit(cpu, VCPU_EXIT_OTHER);
        vcpu_fatal(cpu, "entry failed");
        return false;
    default: {
        char *what = g_strdup_printf("unhandled exit reason %u", run->exit_reason);
        vcpu_count_exit(cpu, VCPU_EXIT_OTHER);
        vcpu_fatal(cpu, what);
        g_free(what);
        return false;
    }
    }
}

/* Run work the main thread queued; cpu->lock held. */
static void vcpu_do_work_locked(VCpu *cpu)
{
    if (cpu->work_fn) {
        cpu->work_fn(cpu, cpu->work_opaque);
        cpu->work_fn = NULL;
        cpu->work_done = true;
        pthread_cond_broadcast(&cpu->cond);
    }
}

/* Park this vCPU by its own decision (fatal exit, reset request). */
static void vcpu_self_pause(VCpu *cpu)
{
    pthread_mutex_lock(&cpu->lock);
    cpu->want_pause = true;
    pthread_mutex_unlock(&cpu->lock);
}

/* An exit whose instruction KVM finishes only in the next KVM_RUN. */
static bool vcpu_exit_needs_completion(const struct kvm_run *run)
{
    return run->exit_reason == KVM_EXIT_IO || run->exit_reason == KVM_EXIT_MMIO;
}

/*
 * After KVM_EXIT_IO or KVM_EXIT_MMIO the guest's instruction is finished
 * (RIP moved past an OUT, an IN's value put in RAX) only when KVM_RUN is
 * entered again: until then the registers userspace reads still point at
 * the instruction.  Saved like that, a destination would execute an OUT to
 * the UART a second time (one byte twice) and an IN a second time (a read
 * with side effects, such as the IIR read that acknowledges THRE, repeated).
 * The KVM API asks userspace to complete the operation before migrating:
 * re-enter with immediate_exit set, so KVM finishes the instruction and
 * returns EINTR without running the guest.  A string I/O or MMIO may exit
 * again for its next part: dispatch it and go on.  (PVM emulates a guest's
 * ring-0 code and moves RIP before the exit, which hid this there.)
 */
static void vcpu_complete_exit(VCpu *cpu)
{
    struct kvm_run *run = cpu->run;

    for (;;) {
        __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (ioctl(cpu->fd, KVM_RUN, 0) < 0) {
            break; /* EINTR: done (any other error shows at the next run) */
        }
        if (!vcpu_handle_exit(cpu)) {
            vcpu_self_pause(cpu);
            break;
        }
        if (!vcpu_exit_needs_completion(run)) {
            break;
        }
    }
    __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

/*
 * Park while a pause is requested; returns false when the thread must end.
 * *exit_pending: the last exit still needs a KVM_RUN to finish (see
 * vcpu_complete_exit), done here before parking or running queued work.
 */
static bool vcpu_wait_for_go(VCpu *cpu, bool *exit_pending)
{
    bool go;

    pthread_mutex_lock(&cpu->lock);
    if (*exit_pending && (cpu->want_pause || cpu->work_fn) && !cpu->want_exit) {
        pthread_mutex_unlock(&cpu->lock);
        vcpu_complete_exit(cpu);
        *exit_pending = false;
        pthread_mutex_lock(&cpu->lock);
    }
    vcpu_do_work_locked(cpu);
    while (cpu->want_pause && !cpu->want_exit) {
        if (cpu->state != VCPU_STATE_PAUSED) {
            cpu->state = VCPU_STATE_PAUSED;
            pthread_cond_broadcast(&cpu->cond);
        }
        pthread_cond_wait(&cpu->cond, &cpu->lock);
        vcpu_do_work_locked(cpu);
    }
    go = !cpu->want_exit;
    cpu->state = go ? VCPU_STATE_RUNNING : VCPU_STATE_FINISHED;
    pthread_cond_broadcast(&cpu->cond);
    pthread_mutex_unlock(&cpu->lock);
    return go;
}

/*
 * Whether thread tid of this process may run on pcpu only; *allowed gets
 * the kernel's list of the CPUs it may run on.  Read from /proc, which
 * -sandbox resourcecontrol=deny leaves readable (it refuses
 * sched_getaffinity).
 */
static bool thread_bound_to(pid_t tid, int pcpu, char *allowed, size_t len)
{
    static const char key[] = "\nCpus_allowed_list:";
    char buf[4096], want[16], path[64];
    const char *p;
    ssize_t n = -1;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);

    snprintf(allowed, len, "?");
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
    }
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    p = strstr(buf, key);
    if (!p) {
        return false;
    }
    p += strlen(key);
    p += strspn(p, " \t");
    snprintf(allowed, len, "%.*s", (int)strcspn(p, "\n"), p);
    snprintf(want, sizeof(want), "%d", pcpu);
    return strcmp(allowed, want) == 0;
}

static bool pin_thread(pthread_t thread, int pcpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(pcpu, &set);
    return pthread_setaffinity_np(thread, sizeof(set), &set) == 0;
}

/*
 * When the guest first runs on this vCPU (from the main loop, as
 * osnet-set-cpumap, which moves the threads too): it must sit on its map's
 * pCPU.  Whoever started the VMM may have moved the thread since it bound
 * itself (libvirt sets every vCPU thread's affinity once the threads exist:
 * to the domain's <vcpupin>, else to every host CPU), so it is bound
 * again; where the VMM may not (-sandbox resourcecontrol=deny) and nobody
 * bound it there either, it says where the vCPU runs instead.
 */
static void vcpu_check_pin(VCpu *cpu)
{
    int pcpu = cpu->pin_pcpu;
    char allowed[128];

    if (cpu->pin_checked || !cpu->thread_started) {
        return;
    }
    cpu->pin_checked = true;
    if (pcpu < 0 || thread_bound_to(cpu->tid, pcpu, allowed, sizeof(allowed)) ||
        pin_thread(cpu->thread, pcpu)) {
        return;
    }
    warn_report("vCPU %u: cannot pin to pCPU %d: it runs on pCPUs %s (pin it from "
                "outside, e.g. libvirt's <vcpupin vcpu='%u' cpuset='%d'/>)",
                cpu->index, pcpu, allowed, cpu->index, pcpu);
}

static void *vcpu_thread_main(void *opaque)
{
    VCpu *cpu = opaque;
    char name[16];
    unsigned backoff_us = 50;
    bool exit_pending = false;

    snprintf(name, sizeof(name), "CPU %u/KVM", cpu->index);
    pthread_setname_np(pthread_self(), name);
    if (cpu->pin_pcpu >= 0) {
        /*
         * a dedicated core from the cpumap: bound at once, and checked
         * again when the guest first runs (vcpu_check_pin), which says so
         * when it is not
         */
        pin_thread(pthread_self(), cpu->pin_pcpu);
    }
    pthread_mutex_lock(&cpu->lock);
    cpu->tid = syscall(SYS_gettid);
    pthread_cond_broadcast(&cpu->cond);
    pthread_mutex_unlock(&cpu->lock);

    while (vcpu_wait_for_go(cpu, &exit_pending)) {
        int ret = ioctl(cpu->fd, KVM_RUN, 0);

        exit_pending = false;
        if (ret < 0) {
            if (errno == EINTR) {
                cpu->run->immediate_exit = 0;
                vcpu_count_exit(cpu, VCPU_EXIT_INTR);
                continue;
            }
            if (errno == EAGAIN) {
                /*
                 * PVM returns EAGAIN for an AP still waiting for INIT/SIPI
                 * instead of blocking in the kernel: retry, backing off.
                 */
                struct timespec ts = { 0, backoff_us * 1000L };
                nanosleep(&ts, NULL);
                backoff_us = backoff_us < 5000 ? backoff_us * 2 : 5000;
                continue;
            }
            vcpu_fatal(cpu, g_strerror(errno));
            vcpu_self_pause(cpu);
            continue;
        }
        backoff_us = 50;
        if (!vcpu_handle_exit(cpu)) {
            vcpu_self_pause(cpu);
        } else {
            exit_pending = vcpu_exit_needs_completion(cpu->run);
        }
    }
    return NULL;
}

bool vcpu_start_thread(VCpu *cpu, GError **errp)
{
    int err;

    vcpu_install_kick_handler();
    err = pthread_create(&cpu->thread, NULL, vcpu_thread_main, cpu);
    if (err) {
        error_setg_errno(errp, err, "creating the thread of vCPU %u failed", cpu->index);
        return false;
    }
    cpu->thread_started = true;
    pthread_mutex_lock(&cpu->lock);
    while (cpu->tid == 0) {
        pthread_cond_wait(&cpu->cond, &cpu->lock);
    }
    pthread_mutex_unlock(&cpu->lock);
    return true;
}

static void vcpu_kick(VCpu *cpu)
{
    __atomic_store_n(&cpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (cpu->thread_started) {
        pthread_kill(cpu->thread, SIG_VCPU_KICK);
    }
}

void vcpu_request_pause(VCpu *cpu)
{
    pthread_mutex_lock(&cpu->lock);
    cpu->want_pause = true;
    pthread_mutex_unlock(&cpu->lock);
    vcpu_kick(cpu);
}

void vcpu_wait_paused(VCpu *cpu)
{
    pthread_mutex_lock(&cpu->lock);
    while (cpu->thread_started && cpu->state == VCPU_STATE_RUNNING) {
        pthread_cond_wait(&cpu->cond, &cpu->lock);
    }
    pthread_mutex_unlock(&cpu->lock);
}

void vcpu_resume(VCpu *cpu)
{
    vcpu_check_pin(cpu);
    pthread_mutex_lock(&cpu->lock);
    cpu->want_pause = false;
    pthread_cond_broadcast(&cpu->cond);
    pthread_mutex_unlock(&cpu->lock);
}

void vcpu_run_on(VCpu *cpu, void (*fn)(VCpu *cpu, void *opaque), void *opaque)
{
    pthread_mutex_lock(&cpu->lock);
    if (!cpu->thread_started || cpu->state != VCPU_STATE_RUNNING) {
        /* parked (or never started): not inside KVM_RUN, safe to call here */
        fn(cpu, opaque);
        pthread_mutex_unlock(&cpu->lock);
        return;
    }
    cpu->work_fn = fn;
    cpu->work_opaque = opaque;
    cpu->work_done = false;
    pthread_mutex_unlock(&cpu->lock);
    vcpu_kick(cpu);
    pthread_mutex_lock(&cpu->lock);
    while (!cpu->work_done) {
        pthread_cond_wait(&cpu->cond, &cpu->lock);
    }
    pthread_mutex_unlock(&cpu->lock);
}

static void vcpu_snapshot_work(VCpu *cpu, void *opaque)
{
    VCpuSnapshot *snap = opaque;

    snap->valid = ioctl(cpu->fd, KVM_GET_REGS, &snap->regs) == 0 &&
                  ioctl(cpu->fd, KVM_GET_SREGS, &snap->sregs) == 0 &&
                  ioctl(cpu->fd, KVM_GET_MP_STATE, &snap->mp_state) == 0;
}

void vcpu_snapshot(VCpu *cpu, VCpuSnapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    vcpu_run_on(cpu, vcpu_snapshot_work, snap);
}

void vcpu_destroy(VCpu *cpu)
{
    if (!cpu) {
        return;
    }
    if (cpu->thread_started) {
        pthread_mutex_lock(&cpu->lock);
        cpu->want_exit = true;
        pthread_cond_broadcast(&cpu->cond);
        pthread_mutex_unlock(&cpu->lock);
        vcpu_kick(cpu);
        pthread_join(cpu->thread, NULL);
    }
    munmap(cpu->run, (size_t)cpu->kvm->vcpu_mmap_size);
    close(cpu->fd);
    pthread_mutex_destroy(&cpu->lock);
    pthread_cond_destroy(&cpu->cond);
    g_free(cpu);
}
