/*
 * The KVM accelerator: the VM file descriptor and its set-up (irqchip,
 * memory slots, capabilities), and the vCPUs with their threads.
 * Functions here are called on the main thread unless they say otherwise.
 */
#ifndef ACCEL_KVM_KVM_H
#define ACCEL_KVM_KVM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/kvm.h>
#include <glib.h>

#include "system/config.h"

typedef struct KvmVm {
    int sys_fd; /* /dev/kvm */
    int vm_fd;
    int vcpu_mmap_size;
    /*
     * Memory slots [slot_lock]: RAM and ROM from the board (never removed)
     * and removable ones (passed-through BARs, added, moved and removed by
     * a vCPU or the main thread while the migration thread reads RAM's
     * dirty log).  The lock covers the table and each slot ioctl, so a
     * slot id looked up for KVM_GET_DIRTY_LOG is the same slot when the
     * ioctl runs; removable slots are never dirty-logged.
     */
    pthread_mutex_t slot_lock;
    int nr_slots_used; /* slot ids below this have been handed out */
    struct kvm_userspace_memory_region slots[64]; /* as registered; size 0: free */
    uint64_t removable_slots;                     /* bit n: slot n is a BAR's */
    uint64_t slot_generation;                     /* +1 at each removable add/del */
    /* KVM_SET_USER_MEMORY_REGION and KVM_GET_DIRTY_LOG go through this
     * (unit tests give a fake kernel); NULL: ioctl on vm_fd. */
    int (*slot_ioctl)(struct KvmVm *kvm, unsigned long request, void *arg);
    struct kvm_cpuid2 *supported_cpuid;
    /* in-kernel irqchip state at power-on, restored by system_reset */
    struct kvm_irqchip initial_pic[2];
    struct kvm_irqchip initial_ioapic;
    struct kvm_pit_state2 initial_pit;
    /* GSI routing: the irqchip's default routes plus MSI routes; [route_lock] */
    pthread_mutex_t route_lock;
    struct kvm_irq_routing_entry *routes;
    unsigned nr_routes, route_capacity;
    uint32_t next_msi_gsi;
    int vfio_dev_fd; /* KVM_DEV_TYPE_VFIO, made by the first group added; -1 */
    /*
     * The guest's kvmclock while the VM is stopped (kvm_clock_stop), set
     * back when it runs again (kvm_clock_resume): time the VM spends
     * stopped is not guest time, as with QEMU's kvmclock device.
     */
    struct kvm_clock_data stopped_clock;
    bool stopped_clock_valid;
} KvmVm;

/*
 * Open /dev/kvm, check the API, create the VM with the in-kernel irqchip
 * (PIC, IOAPIC, LAPICs) and PIT; the board's memory map puts the three
 * pages KVM needs for real-mode TSS emulation at tss_addr.  A missing or
 * unusable /dev/kvm gives one clear error.
 */
bool kvm_vm_init(KvmVm *kvm, uint64_t tss_addr, GError **errp);
void kvm_vm_destroy(KvmVm *kvm);
int kvm_check_extension(KvmVm *kvm, int cap);
/* Map host memory at guest-physical gpa as the next memory slot. */
bool kvm_vm_add_ram(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp);
/* The slot table alone (kvm_vm_init does it; unit tests with a fake
 * slot_ioctl call it instead). */
void kvm_vm_slots_init(KvmVm *kvm);
/*
 * Dirty-page logging for migration: turn it on or off for the RAM slot
 * that starts at gpa, and fetch-and-clear its bitmap (one bit per 4 KiB
 * page, bitmap sized for the slot, 64-bit aligned).  Any thread (the
 * migration thread): a removable slot at gpa is not RAM and is refused.
 */
bool kvm_dirty_log_enable(KvmVm *kvm, uint64_t gpa, bool on, GError **errp);
/* Whether any slot logs dirty pages now (a migration runs): for reports. */
bool kvm_dirty_logging(KvmVm *kvm);
bool kvm_dirty_log_get(KvmVm *kvm, uint64_t gpa, uint64_t *bitmap, GError **errp);

/* The same, read-only (a ROM): guest writes exit as MMIO writes. */
bool kvm_vm_add_rom(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp);
/*
 * A removable slot (a passed-through BAR's mmap at the guest's BAR
 * address): its slot id, or -1 with errp set; kvm_vm_slot_del removes it.
 * Any thread; they wait for a dirty-log read in progress.  The slot has
 * no dirty log (device memory is not migrated as RAM).
 */
int kvm_vm_slot_add(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp);
void kvm_vm_slot_del(KvmVm *kvm, int slot);
/* Drive an irqchip input line (IrqSetFn signature; thread-safe). */
void kvm_irq_line_set(void *opaque_kvm, int gsi, int level);
/*
 * MSI routes and eventfds (virtio, VFIO).  Thread-safe: a guest writing an
 * MSI-X table entry updates its route from a vCPU thread.
 *   kvm_msi_route_add: a new GSI that raises MSI (addr, data); -1 on error
 *   kvm_msi_route_update / _del: change or drop it
 *   kvm_irqfd: writing to fd raises gsi in the kernel (assign=false undoes)
 *   kvm_ioeventfd: a guest write of len bytes to addr signals fd instead of
 *     exiting (len 0 matches any size; is_pio for port I/O)
 */
int kvm_msi_route_add(KvmVm *kvm, uint64_t addr, uint32_t data, GError **errp);
bool kvm_msi_route_update(KvmVm *kvm, int gsi, uint64_t addr, uint32_t data,
                          GError **errp);
void kvm_msi_route_del(KvmVm *kvm, int gsi);
bool kvm_irqfd(KvmVm *kvm, int fd, int gsi, bool assign, GError **errp);
/* A level-triggered irqfd: KVM signals resample_fd at the guest's EOI. */
bool kvm_irqfd_resample(KvmVm *kvm, int fd, int resample_fd, int gsi, bool assign,
                        GError **errp);
bool kvm_ioeventfd(KvmVm *kvm, int fd, uint64_t addr, unsigned len, bool is_pio,
                   bool assign, GError **errp);
/*
 * Register a VFIO group fd with the VM's KVM VFIO device (created on first
 * use), or drop it (add=false; nothing to do when none was ever added).
 * kvm_vfio_group_fn has VfioContextConfig.kvm_group's signature, with the
 * KvmVm as the opaque.
 */
bool kvm_vfio_group(KvmVm *kvm, int group_fd, bool add, GError **errp);
bool kvm_vfio_group_fn(void *opaque_kvm, int group_fd, bool add, GError **errp);
/* Inject one MSI directly (no route needed). */
bool kvm_signal_msi(KvmVm *kvm, uint64_t addr, uint32_t data, GError **errp);

/* Save the irqchip's power-on state / restore it (system_reset). */
bool kvm_irqchip_capture(KvmVm *kvm, GError **errp);
bool kvm_irqchip_restore(KvmVm *kvm, GError **errp);

/* xAPIC id of vCPU index with QEMU's socket/core/thread bit packing. */
unsigned cpu_apic_id(const SmpConfig *smp, unsigned index);

typedef enum VCpuState {
    VCPU_STATE_PAUSED,   /* thread parked, waiting for a resume */
    VCPU_STATE_RUNNING,  /* in or around KVM_RUN */
    VCPU_STATE_FINISHED, /* thread has exited */
} VCpuState;

/* Userspace exits counted by the VMM, by reason. */
typedef enum VCpuExitKind {
    VCPU_EXIT_IO,
    VCPU_EXIT_MMIO,
    VCPU_EXIT_INTR,
    VCPU_EXIT_OTHER,
    VCPU_EXIT__MAX,
} VCpuExitKind;

typedef struct VCpuInitialState {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp_state;
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry entries[32];
    } msrs;
} VCpuInitialState;

typedef struct VCpu VCpu;

/*
 * What a vCPU thread needs from the machine it belongs to, given at
 * creation; each is called on the vCPU's own thread with the opaque of
 * VCpuConfig.  pio and mmio carry out one exit's accesses and take the
 * lock the devices need themselves: pio count accesses of size bytes
 * each (string I/O), data advancing by size; mmio one access of len
 * bytes.  After reset, shutdown and fatal the vCPU parks itself: the
 * guest asked for a reset (triple fault, KVM system event) or a power
 * off, or the vCPU cannot go on (the error is already printed) and the
 * machine should stop every vCPU.
 */
typedef struct VCpuOps {
    void (*pio)(void *opaque, uint16_t port, uint8_t *data, unsigned size, unsigned count,
                bool is_write);
    void (*mmio)(void *opaque, uint64_t addr, uint8_t *data, unsigned len, bool is_write);
    /* why: what the guest did, for the reset's report (a static string) */
    void (*reset)(void *opaque, const char *why);
    void (*shutdown)(void *opaque, const char *why);
    void (*fatal)(void *opaque);
} VCpuOps;

/* Everything a vCPU is made from besides the VM. */
typedef struct VCpuConfig {
    unsigned index;
    int pcpu;             /* dedicated pCPU (the cpumap), or -1 */
    const SmpConfig *smp; /* topology: APIC id and CPUID leaves */
    bool host_cache_info; /* CPUID leaf 4 from the host */
    bool mwait;           /* MWAIT exits disabled: offer MONITOR/MWAIT */
    const VCpuOps *ops;
    void *opaque;
} VCpuConfig;

struct VCpu {
    KvmVm *kvm;
    const VCpuOps *ops;
    void *opaque;
    unsigned index;
    unsigned apic_id;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    pid_t tid;    /* kernel thread id, for query-cpus */
    int pin_pcpu; /* pCPU from the cpumap, or -1 */
    /* put on pin_pcpu when the guest first ran (vcpu_resume) */
    bool pin_checked;

    /* Requests from the main thread; protected by lock, signalled by cond. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool want_pause;
    bool want_exit;
    VCpuState state;

    /* Work the main thread asked this thread to run (vcpu_run_on). */
    void (*work_fn)(struct VCpu *cpu, void *opaque);
    void *work_opaque;
    bool work_done;

    VCpuInitialState initial;
    uint64_t exits[VCPU_EXIT__MAX]; /* atomically updated */
};

/* Create vCPU cfg->index (KVM vCPU, CPUID, MSRs), capture its reset state. */
VCpu *vcpu_create(KvmVm *kvm, const VCpuConfig *cfg, GError **errp);
/* Start its thread, parked in the paused state. */
bool vcpu_start_thread(VCpu *cpu, GError **errp);
/* Ask the thread to park, kick it out of KVM_RUN; vcpu_wait_paused waits. */
void vcpu_request_pause(VCpu *cpu);
void vcpu_wait_paused(VCpu *cpu);
void vcpu_resume(VCpu *cpu);
/* Stop and join the thread, close the vCPU. */
void vcpu_destroy(VCpu *cpu);
/*
 * Run fn(cpu, opaque) where the vCPU's registers may be touched: on its
 * own thread between two KVM_RUNs (kicking it out of the guest), or right
 * here when the vCPU is parked.  Returns when fn has run.  Main thread.
 */
void vcpu_run_on(VCpu *cpu, void (*fn)(VCpu *cpu, void *opaque), void *opaque);

/* Registers and MP state, read safely while the vCPU runs. */
typedef struct VCpuSnapshot {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_mp_state mp_state;
    bool valid;
} VCpuSnapshot;
void vcpu_snapshot(VCpu *cpu, VCpuSnapshot *snap);

/* Back to power-on state; the vCPU must be paused. */
bool vcpu_reset(VCpu *cpu, GError **errp);
/* Its registers, segments, control registers, events and MP state, as
 * lines on out (a triple fault's report, -d cpu_reset); a stopped vCPU. */
void vcpu_dump_state(VCpu *cpu, FILE *out);

#endif
