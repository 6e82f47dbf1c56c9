/*
 * The pc machine's life cycle: memory map and e820, creation of the VM,
 * its vCPUs and board, start/pause/resume, and the reset and shutdown
 * requests that vCPU threads raise and the main loop carries out.
 * Locking: see include/hw/machine.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "accel/kvm/kvm-state.h"
#include "hw/devices.h"
#include "hw/i386/fw_cfg.h"
#include "hw/i386/pc.h"
#include "hw/pci.h"
#include "net/net.h"
#include "config-host.h"
#include "hw/machine.h"
#include "util/error.h"

const char *runstate_name(RunState state)
{
    static const char *const names[RUN_STATE__MAX] = {
        [RUN_STATE_PRELAUNCH] = "prelaunch",
        [RUN_STATE_RUNNING] = "running",
        [RUN_STATE_PAUSED] = "paused",
        [RUN_STATE_SHUTDOWN] = "shutdown",
        [RUN_STATE_INTERNAL_ERROR] = "internal-error",
        [RUN_STATE_INMIGRATE] = "inmigrate",
        [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
        [RUN_STATE_POSTMIGRATE] = "postmigrate",
    };

    return state < RUN_STATE__MAX ? names[state] : "debug";
}

const char *shutdown_cause_name(ShutdownCause cause)
{
    static const char *const names[SHUTDOWN_CAUSE__MAX] = {
        "none",        "host-error",      "host-qmp-quit",  "host-qmp-system-reset",
        "host-signal", "host-ui",         "guest-shutdown", "guest-reset",
        "guest-panic", "subsystem-reset",
    };

    return cause < SHUTDOWN_CAUSE__MAX ? names[cause] : "none";
}

bool shutdown_cause_is_guest(ShutdownCause cause)
{
    return cause >= SHUTDOWN_CAUSE_GUEST_SHUTDOWN && cause <= SHUTDOWN_CAUSE_GUEST_PANIC;
}

static void machine_notify(Machine *m, MachineEvent event, ShutdownCause cause)
{
    if (m->event_fn) {
        m->event_fn(m->event_opaque, event, cause);
    }
}

static void e820_add(Machine *m, uint64_t addr, uint64_t size, uint32_t type)
{
    if (size && m->nr_e820 < E820_MAX) {
        m->e820[m->nr_e820++] = (E820Entry){ addr, size, type };
    }
}

static void *machine_mem_gpa_to_hva(void *opaque, uint64_t gpa, uint64_t len)
{
    return machine_gpa_to_hva(opaque, gpa, len);
}

bool machine_plan_memory(Machine *m, uint64_t ram_size, GError **errp)
{
    if (ram_size < (2ULL << 20)) {
        error_setg(errp, "guest RAM must be at least 2 MiB");
        return false;
    }
    m->mem = (GuestMemory){ machine_mem_gpa_to_hva, m };
    m->ram_size = ram_size;
    m->below_4g = ram_size >= PCI_HOLE_START ? LOW_RAM_SPLIT : ram_size;
    m->above_4g = ram_size - m->below_4g;
    m->nr_e820 = 0;
    e820_add(m, 0, 0x9fc00, E820_RAM);
    e820_add(m, 0x9fc00, 0x400, E820_RESERVED); /* EBDA */
    e820_add(m, BIOS_AREA_START, 0x100000 - BIOS_AREA_START, E820_RESERVED);
    e820_add(m, 0x100000, m->below_4g - 0x100000, E820_RAM);
    e820_add(m, HIGH_RAM_START, m->above_4g, E820_RAM);
    return true;
}

void *machine_gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    uint64_t end = gpa + len;

    if (end < gpa) {
        return NULL;
    }
    if (end <= m->below_4g) {
        return m->ram + gpa;
    }
    if (gpa >= HIGH_RAM_START && end - HIGH_RAM_START <= m->above_4g) {
        return m->ram + m->below_4g + (gpa - HIGH_RAM_START);
    }
    return NULL;
}

/*
 * Guest RAM starts on a 2 MiB boundary of the host's address space, so
 * that every 2 MiB-aligned guest-physical range is one transparent huge
 * page of the host.  KVM maps a huge page into the guest (NPT/EPT) only
 * where the host address and the guest frame are aligned alike, and
 * VFIO's DMA mapping of RAM is physically contiguous per 2 MiB only then:
 * with RAM at a 4 KiB offset (what a plain mmap gives on Linux 6.1), the
 * last 2 MiB were 4 KiB pages and a passthrough NIC's TSO buffers that
 * crossed a page there were dropped by QEMU's emulated e1000e in the rig
 * (docs/architecture.md, Guest RAM).
 */
#define RAM_ALIGN (2u << 20)

static void *ram_map_aligned(uint64_t size)
{
    uint8_t *base = mmap(NULL, size + RAM_ALIGN, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    uint8_t *ram;

    if (base == MAP_FAILED) {
        return MAP_FAILED;
    }
    ram = (uint8_t *)(((uintptr_t)base + RAM_ALIGN - 1) & ~(uintptr_t)(RAM_ALIGN - 1));
    if (ram > base) {
        munmap(base, ram - base);
    }
    munmap(ram + size, base + RAM_ALIGN - ram);
    return ram;
}

static bool machine_init_ram(Machine *m, GError **errp)
{
    m->ram = ram_map_aligned(m->ram_size);
    if (m->ram == MAP_FAILED) {
        m->ram = NULL;
        error_setg_errno(errp, errno,
                         "cannot allocate %" G_GUINT64_FORMAT " MiB of guest RAM",
                         m->ram_size >> 20);
        return false;
    }
    madvise(m->ram, m->ram_size, MADV_HUGEPAGE);
    if (!kvm_vm_add_ram(&m->kvm, 0, m->below_4g, m->ram, errp)) {
        return false;
    }
    return !m->above_4g || kvm_vm_add_ram(&m->kvm, HIGH_RAM_START, m->above_4g,
                                          m->ram + m->below_4g, errp);
}

/* Everything that a reset puts back: boot image, tables, BSP entry. */
static bool machine_load_boot(Machine *m, GError **errp)
{
    if (!m->cfg->kernel) {
        /* SeaBIOS starts at the reset vector, where vcpu_reset left the BSP */
        firmware_reset(m->firmware);
        return true;
    }
    return linux_boot_load(m->linux_boot, &m->mem, m->e820, m->nr_e820, errp) &&
           mptable_write(&m->mem, &m->cfg->smp, m->nr_vcpus, MPTABLE_ADDR, errp) &&
           acpi_place_for_linux_boot(m, errp) &&
           linux_boot_setup_bsp(m->linux_boot, m->vcpus[0], errp);
}

/* Every -netdev's tap (and vhost-net), before the devices that take them. */
static bool machine_open_netdevs(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    m->netdevs = netdev_set_new();
    for (guint i = 0; i < cfg->netdevs->len; i++) {
        const NetdevOpt *opt = g_ptr_array_index(cfg->netdevs, i);

        if (!netdev_open(m->netdevs, opt->cfg, errp)) {
            g_prefix_error(errp, "-netdev %s: ", opt->arg);
            return false;
        }
        /* the netdev owns the descriptors now (fd=, vhostfd=) */
        opt->cfg->fd = opt->cfg->vhostfd = -1;
    }
    return true;
}

static bool machine_prepare_chardevs(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const char *arg = g_ptr_array_index(cfg->chardevs, i);

        if (!chardev_new_from_opts(m->chardevs, arg, errp)) {
            g_prefix_error(errp, "-chardev %s: ", arg); /* as QEMU names it */
            return false;
        }
    }
    return true;
}

bool machine_prepare(Machine *m, VmConfig *cfg, GError **errp)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->kvm.vm_fd = m->kvm.sys_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    bus_init(&m->io_bus, "io");
    bus_init(&m->mmio_bus, "mmio");
    m->chardevs = chardev_set_new();
    device_state_list_init(&m->device_states);
    m->runstate = RUN_STATE_PRELAUNCH;

    if (vm_config_machine_none(cfg)) {
        /* no board, RAM or vCPUs: only the monitors' chardevs */
        return machine_prepare_chardevs(m, errp);
    }
    if (!machine_plan_memory(m, cfg->ram_size, errp) ||
        !osnet_configure(&m->osnet, cfg, &m->kvm, errp) ||
        !machine_prepare_chardevs(m, errp)) {
        return false;
    }
    if (!machine_open_netdevs(m, errp)) {
        return false;
    }
    if (!pc_serial_prepare(m, errp) || !machine_devices_prepare(m, errp)) {
        return false;
    }
    if (cfg->kernel) {
        m->linux_boot = linux_boot_prepare(cfg->kernel, cfg->initrd, cfg->append,
                                           m->below_4g, errp);
        return m->linux_boot != NULL;
    }
    m->firmware = firmware_prepare(cfg->bios ? cfg->bios : SEABIOS_PATH, errp);
    return m->firmware != NULL;
}

static void machine_request_pause_all(Machine *m);

/*
 * What the vCPU threads ask of the machine (VCpuOps): exits dispatched to
 * the buses under the machine lock, reset and shutdown requests, and a
 * stop when a vCPU cannot go on.
 */
static void machine_vcpu_pio(void *opaque, uint16_t port, uint8_t *data, unsigned size,
                             unsigned count, bool is_write)
{
    Machine *m = opaque;

    machine_lock(m);
    for (unsigned i = 0; i < count; i++) {
        bus_dispatch(&m->io_bus, port, data, size, is_write);
        data += size;
    }
    machine_unlock(m);
}

static void machine_vcpu_mmio(void *opaque, uint64_t addr, uint8_t *data, unsigned len,
                              bool is_write)
{
    Machine *m = opaque;

    machine_lock(m);
    bus_dispatch(&m->mmio_bus, addr, data, len, is_write);
    machine_unlock(m);
}

static void machine_vcpu_reset(void *opaque, const char *why)
{
    machine_request_reset_why(opaque, SHUTDOWN_CAUSE_GUEST_RESET, why);
}

static void machine_vcpu_shutdown(void *opaque, const char *why)
{
    machine_request_shutdown_why(opaque, SHUTDOWN_CAUSE_GUEST_SHUTDOWN, why);
}

static void machine_vcpu_fatal(void *opaque)
{
    Machine *m = opaque;

    machine_request_pause_all(m);
    m->runstate = RUN_STATE_INTERNAL_ERROR;
}

static const VCpuOps machine_vcpu_ops = {
    .pio = machine_vcpu_pio,
    .mmio = machine_vcpu_mmio,
    .reset = machine_vcpu_reset,
    .shutdown = machine_vcpu_shutdown,
    .fatal = machine_vcpu_fatal,
};

/* Each vCPU with its pCPU from the cpumap, its CPUID inputs and the ops. */
static bool machine_create_vcpus(Machine *m, GError **errp)
{
    VCpuConfig vc = {
        .smp = &m->cfg->smp,
        .host_cache_info = m->cfg->host_cache_info,
        .mwait = (m->osnet.did.exits_disabled & KVM_X86_DISABLE_EXITS_MWAIT) != 0,
        .ops = &machine_vcpu_ops,
        .opaque = m,
    };

    m->nr_vcpus = m->cfg->smp.cpus;
    m->vcpus = g_new0(VCpu *, m->nr_vcpus);
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        vc.index = i;
        vc.pcpu = osnet_vcpu_pcpu(&m->osnet, i);
        m->vcpus[i] = vcpu_create(&m->kvm, &vc, errp);
        if (!m->vcpus[i]) {
            return false;
        }
    }
    return osnet_setup_vcpus(&m->osnet, m->vcpus, m->nr_vcpus, errp) &&
           osnet_register_state(&m->osnet, &m->device_states, errp);
}

/* SeaBIOS: its ROM, fw_cfg with what it reads, the ACPI tables. */
static bool machine_firmware_init(Machine *m, GError **errp)
{
    FirmwareMachineInfo info = {
        .nr_cpus = m->nr_vcpus,
        .max_cpus = m->cfg->smp.maxcpus,
        .ram_size = m->ram_size,
        .below_4g = m->below_4g,
        .above_4g = m->above_4g,
    };

    if (!firmware_init(m->firmware, &m->kvm, &m->io_bus, &m->mem, &info, errp) ||
        !acpi_build(m, firmware_fw_cfg(m->firmware), errp)) {
        return false;
    }
    firmware_reset(m->firmware);
    return true;
}

/*
 * Machine none: a VM with no RAM, vCPUs or devices where KVM opens (QEMU
 * creates one too); without KVM, and tcg in accel=, nothing at all, and
 * query-kvm says so.
 */
static bool machine_init_none(Machine *m, GError **errp)
{
    GError *err = NULL;

    if (m->cfg->accel_no_kvm || kvm_vm_init(&m->kvm, KVM_TSS_ADDR, &err)) {
        return true;
    }
    if (!m->cfg->accel_tcg) {
        g_propagate_error(errp, err);
        return false;
    }
    g_error_free(err);
    return true;
}

bool machine_init(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    if (vm_config_machine_none(cfg)) {
        return machine_init_none(m, errp);
    }

    if (!kvm_vm_init(&m->kvm, KVM_TSS_ADDR, errp) || !osnet_setup_vm(&m->osnet, errp) ||
        !machine_init_ram(m, errp) || !machine_create_vcpus(m, errp)) {
        return false;
    }
    if (!kvm_irqchip_capture(&m->kvm, errp) || !pc_board_init(m, errp) ||
        !machine_devices_init(m, errp) || !pc_pm_init(m, errp)) {
        return false;
    }
    if (!cfg->kernel && !machine_firmware_init(m, errp)) {
        return false;
    }
    return machine_load_boot(m, errp);
}

void machine_cleanup(Machine *m)
{
    osnet_cleanup(&m->osnet);
    for (unsigned i = 0; m->vcpus && i < m->nr_vcpus; i++) {
        vcpu_destroy(m->vcpus[i]);
    }
    g_free(m->vcpus);
    m->vcpus = NULL;
    machine_devices_cleanup(m);
    if (m->netdevs) {
        netdev_set_free(m->netdevs); /* after the NICs let go of them */
        m->netdevs = NULL;
    }
    if (m->board) {
        pc_board_cleanup(m);
    }
    firmware_free(m->firmware);
    m->firmware = NULL;
    if (m->chardevs) {
        chardev_set_free(m->chardevs);
        m->chardevs = NULL;
    }
    kvm_vm_destroy(&m->kvm);
    if (m->ram) {
        munmap(m->ram, m->ram_size);
        m->ram = NULL;
    }
    linux_boot_free(m->linux_boot);
    m->linux_boot = NULL;
    bus_destroy(&m->io_bus);
    bus_destroy(&m->mmio_bus);
    device_state_list_destroy(&m->device_states);
}

bool machine_start(Machine *m, GError **errp)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_start_thread(m->vcpus[i], errp)) {
            return false;
        }
    }
    osnet_place_main_thread(&m->osnet);
    if (m->cfg->incoming) {
        m->runstate = RUN_STATE_INMIGRATE; /* the stream brings the state */
    } else if (m->cfg->start_paused) {
        m->runstate = RUN_STATE_PRELAUNCH; /* -S: QEMU's state until the first cont */
    } else {
        machine_resume(m);
    }
    return true;
}

void machine_pause(Machine *m)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        vcpu_request_pause(m->vcpus[i]);
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        vcpu_wait_paused(m->vcpus[i]);
    }
    if (m->pci) {
        /* finish in-flight I/O: nothing writes RAM or images from here */
        pci_pc_pause(m->pci);
    }
    if (m->runstate == RUN_STATE_RUNNING) {
        m->runstate = RUN_STATE_PAUSED;
    }
}

void machine_resume(Machine *m)
{
    m->runstate = RUN_STATE_RUNNING;
    m->resumed_at = g_get_monotonic_time();
    if (m->pci) {
        pci_pc_resume(m->pci);
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        vcpu_resume(m->vcpus[i]);
    }
}

/* Put the whole machine back to power-on state; vCPUs are paused. */
static bool machine_reset(Machine *m, GError **errp)
{
    if (vm_config_machine_none(m->cfg)) {
        return true; /* nothing there to reset */
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_reset(m->vcpus[i], errp)) {
            return false;
        }
    }
    if (!kvm_irqchip_restore(&m->kvm, errp)) {
        return false;
    }
    machine_lock(m);
    pc_board_reset(m);
    if (m->pci) {
        pci_pc_reset(m->pci);
        if (m->cfg->kernel) {
            pci_pc_assign_resources(m->pci);
        }
    }
    machine_unlock(m);
    return machine_load_boot(m, errp);
}

void machine_vm_stop(Machine *m)
{
    if (m->runstate != RUN_STATE_RUNNING) {
        return;
    }
    machine_pause(m);
    kvm_clock_stop(&m->kvm);
    m->runstate = RUN_STATE_PAUSED;
    machine_notify(m, MACHINE_EVENT_STOP, SHUTDOWN_CAUSE_NONE);
}

bool machine_vm_cont(Machine *m, GError **errp)
{
    GError *err = NULL;

    switch (m->runstate) {
    case RUN_STATE_RUNNING:
        return true;
    case RUN_STATE_INTERNAL_ERROR:
    case RUN_STATE_SHUTDOWN:
        error_setg(errp, "Resetting the Virtual Machine is required");
        return false;
    default:
        break;
    }
    if (!kvm_clock_resume(&m->kvm, m->vcpus, m->nr_vcpus, &err)) {
        /* the guest runs on, its clock counting the time it was stopped */
        error_report_err(err, "kvmclock");
    }
    machine_resume(m);
    machine_notify(m, MACHINE_EVENT_RESUME, SHUTDOWN_CAUSE_NONE);
    return true;
}

void machine_system_reset(Machine *m, ShutdownCause cause)
{
    RunState before = m->runstate;
    GError *err = NULL;

    machine_pause(m);
    if (!machine_reset(m, &err)) {
        error_report_err(err, "system reset");
        m->runstate = RUN_STATE_INTERNAL_ERROR;
        return;
    }
    machine_notify(m, MACHINE_EVENT_RESET, cause);
    /* a reset clears a guest error, as on QEMU; a paused VM stays paused */
    if (before == RUN_STATE_RUNNING || before == RUN_STATE_INTERNAL_ERROR) {
        machine_resume(m);
    } else if (before == RUN_STATE_SHUTDOWN) {
        m->runstate = RUN_STATE_PRELAUNCH; /* -no-shutdown: `cont` runs it again */
    } else {
        m->runstate = before;
    }
}

void machine_shutdown(Machine *m, ShutdownCause cause)
{
    machine_pause(m);
    m->runstate = RUN_STATE_SHUTDOWN;
    m->exiting = true;
    machine_notify(m, MACHINE_EVENT_SHUTDOWN, cause);
    if (m->main_loop) {
        g_main_loop_quit(m->main_loop);
    }
}

/*
 * -no-shutdown: a shutdown the guest asked for (or a reset under
 * -no-reboot) stops the VM in run state "shutdown" and the VMM stays, as
 * QEMU does: SHUTDOWN, then STOP.  A signal or `quit` still ends it.
 */
static void machine_shutdown_requested(Machine *m, ShutdownCause cause)
{
    if (!m->cfg->no_shutdown || cause == SHUTDOWN_CAUSE_HOST_SIGNAL ||
        cause == SHUTDOWN_CAUSE_HOST_QMP_QUIT) {
        machine_shutdown(m, cause);
        return;
    }
    machine_pause(m);
    machine_notify(m, MACHINE_EVENT_SHUTDOWN, cause);
    m->runstate = RUN_STATE_SHUTDOWN;
    machine_notify(m, MACHINE_EVENT_STOP, SHUTDOWN_CAUSE_NONE);
}

static gboolean machine_powerdown_idle(gpointer opaque)
{
    Machine *m = opaque;

    machine_notify(m, MACHINE_EVENT_POWERDOWN, SHUTDOWN_CAUSE_NONE);
    machine_lock(m);
    pc_board_power_button(m);
    machine_unlock(m);
    return G_SOURCE_REMOVE;
}

void machine_system_powerdown(Machine *m)
{
    g_idle_add(machine_powerdown_idle, m);
}

void machine_device_deleted(Machine *m, const char *id, const char *path, bool virtio)
{
    if (!path) {
        return; /* not a user's device */
    }
    m->event_device_id = id;
    m->event_device_path = path;
    m->event_device_virtio = virtio;
    machine_notify(m, MACHINE_EVENT_DEVICE_DELETED, SHUTDOWN_CAUSE_NONE);
    m->event_device_id = m->event_device_path = NULL;
}

/*
 * -d cpu_reset: what the guest did to reset or power off the machine, and
 * each vCPU's registers as it stopped (QEMU's "CPU Reset" dumps).
 */
#define RESET_LOG_LINES 64 /* then nothing: stderr may be a pipe nobody reads */
#define RESET_LOG_DUMPS 4  /* resets whose registers are dumped */

/* vcpu_run_on work: the registers read where the vCPU cannot be in KVM_RUN
 * (a running vCPU holds them, and a halted one may never give them back) */
static void machine_dump_vcpu(VCpu *cpu, void *opaque)
{
    vcpu_dump_state(cpu, opaque);
}

static void machine_log_request(Machine *m, bool reset, ShutdownCause cause,
                                const char *why, const char *what_now)
{
    static unsigned said;

    if (!m->cfg->log_cpu_reset || !shutdown_cause_is_guest(cause) ||
        said > RESET_LOG_LINES) {
        return;
    }
    if (++said > RESET_LOG_LINES) {
        error_report("-d cpu_reset: %u guest resets said, the next ones are not",
                     RESET_LOG_LINES);
        return;
    }
    /* when: a reset just after an incoming migration's resume, or while
     * the source logs dirty pages, says where to look */
    error_report("guest %s (%s): %s%s; %.3f s after the vCPUs last started%s%s",
                 reset ? "reset" : "shutdown", shutdown_cause_name(cause),
                 why ? why : "cause not recorded", what_now,
                 (g_get_monotonic_time() - m->resumed_at) / 1e6,
                 m->cfg->incoming ? ", the guest came in by migration" : "",
                 kvm_dirty_logging(&m->kvm) ? ", dirty logging on" : "");
    for (unsigned i = 0; m->vcpus && said <= RESET_LOG_DUMPS && i < m->nr_vcpus; i++) {
        fprintf(stderr, "CPU Reset (CPU %u)\n", i);
        vcpu_run_on(m->vcpus[i], machine_dump_vcpu, stderr);
    }
    fflush(stderr);
}

void machine_settle_reset(Machine *m)
{
    int reset = __atomic_exchange_n(&m->reset_pending, 0, __ATOMIC_SEQ_CST);

    if (reset) {
        machine_log_request(m, true, reset - 1, m->reset_why,
                            m->cfg->no_reboot ? " (pending as the VM stops: left pending)"
                                              : " (pending as the VM stops: done now)");
    }

    if (reset && !m->cfg->no_reboot) {
        /* runstate is not "running": the reset leaves the vCPUs parked */
        machine_system_reset(m, reset - 1);
    } else if (reset) {
        __atomic_store_n(&m->reset_pending, reset, __ATOMIC_SEQ_CST);
    }
}

/* Main loop: carry out what vCPU threads (or signals) asked for. */
static gboolean machine_handle_requests(gpointer opaque)
{
    Machine *m = opaque;
    int reset = __atomic_exchange_n(&m->reset_pending, 0, __ATOMIC_SEQ_CST);
    int shutdown = __atomic_exchange_n(&m->shutdown_pending, 0, __ATOMIC_SEQ_CST);

    if (shutdown) {
        machine_log_request(m, false, shutdown - 1, m->shutdown_why, "");
        machine_shutdown_requested(m, shutdown - 1);
    } else if (reset && m->cfg->no_reboot) {
        machine_log_request(m, true, reset - 1, m->reset_why,
                            " (-no-reboot: shutting down)");
        machine_shutdown_requested(m, reset - 1);
    } else if (reset) {
        machine_log_request(m, true, reset - 1, m->reset_why, "");
        machine_system_reset(m, reset - 1);
    }
    return G_SOURCE_REMOVE;
}

/* Park every vCPU without waiting (safe from a vCPU thread). */
static void machine_request_pause_all(Machine *m)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        vcpu_request_pause(m->vcpus[i]);
    }
}

void machine_request_reset_why(Machine *m, ShutdownCause cause, const char *why)
{
    __atomic_store_n(&m->reset_why, why, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->reset_pending, cause + 1, __ATOMIC_SEQ_CST);
    machine_request_pause_all(m);
    g_idle_add(machine_handle_requests, m);
}

void machine_request_shutdown_why(Machine *m, ShutdownCause cause, const char *why)
{
    __atomic_store_n(&m->shutdown_why, why, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->shutdown_pending, cause + 1, __ATOMIC_SEQ_CST);
    machine_request_pause_all(m);
    g_idle_add(machine_handle_requests, m);
}

void machine_request_reset(Machine *m, ShutdownCause cause)
{
    machine_request_reset_why(m, cause, NULL);
}

void machine_request_shutdown(Machine *m, ShutdownCause cause)
{
    machine_request_shutdown_why(m, cause, NULL);
}
