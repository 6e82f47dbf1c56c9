/*
 * The pc machine: guest RAM and its memory map, the I/O and MMIO buses,
 * the vCPUs and the board devices.  Locking: `lock` (the machine lock)
 * protects device state and the buses; vCPU threads take it around each
 * exit's dispatch, the main thread around device work.  Never hold it
 * while pausing vCPUs.
 */
#ifndef HW_MACHINE_H
#define HW_MACHINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "chardev/chardev.h"
#include "hw/bus.h"
#include "hw/guest-memory.h"
#include "hw/i386/e820.h"
#include "hw/osnet.h"
#include "hw/serial.h"
#include "hw/vmstate.h"
#include "accel/kvm/kvm.h"
#include "system/config.h"

typedef enum RunState {
    RUN_STATE_PRELAUNCH,
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_INMIGRATE,
    RUN_STATE_FINISH_MIGRATE,
    RUN_STATE_POSTMIGRATE,
    RUN_STATE__MAX,
} RunState;

/* QEMU's name of a run state ("running", "paused", ...). */
const char *runstate_name(RunState state);

/* Why the VM reset or shut down (QAPI ShutdownCause, same order). */
typedef enum ShutdownCause {
    SHUTDOWN_CAUSE_NONE,
    SHUTDOWN_CAUSE_HOST_ERROR,
    SHUTDOWN_CAUSE_HOST_QMP_QUIT,
    SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET,
    SHUTDOWN_CAUSE_HOST_SIGNAL,
    SHUTDOWN_CAUSE_HOST_UI,
    SHUTDOWN_CAUSE_GUEST_SHUTDOWN,
    SHUTDOWN_CAUSE_GUEST_RESET,
    SHUTDOWN_CAUSE_GUEST_PANIC,
    SHUTDOWN_CAUSE_SUBSYSTEM_RESET,
    SHUTDOWN_CAUSE__MAX,
} ShutdownCause;

const char *shutdown_cause_name(ShutdownCause cause);
/* True for causes that come from the guest (the events' "guest" field). */
bool shutdown_cause_is_guest(ShutdownCause cause);

/* What the machine tells its listener (the monitors turn these into events). */
typedef enum MachineEvent {
    MACHINE_EVENT_STOP,
    MACHINE_EVENT_RESUME,
    MACHINE_EVENT_RESET,
    MACHINE_EVENT_SHUTDOWN,
    MACHINE_EVENT_POWERDOWN,      /* the power button was pressed */
    MACHINE_EVENT_DEVICE_DELETED, /* event_device_id: a device is gone */
    /* failover, event_device_id: the standby's name; the primary's id */
    MACHINE_EVENT_FAILOVER_NEGOTIATED,
    MACHINE_EVENT_UNPLUG_PRIMARY,
} MachineEvent;

typedef void (*MachineEventFn)(void *opaque, MachineEvent event, ShutdownCause cause);

typedef struct Machine {
    VmConfig *cfg;
    KvmVm kvm;
    pthread_mutex_t lock;
    Bus io_bus, mmio_bus;

    uint8_t *ram; /* host mapping of all guest RAM */
    uint64_t ram_size;
    uint64_t below_4g, above_4g; /* RAM bytes below 4 GiB and above it */
    GuestMemory mem;             /* RAM as devices reach it (machine_gpa_to_hva) */
    E820Entry e820[E820_MAX];
    unsigned nr_e820;

    VCpu **vcpus;
    unsigned nr_vcpus;

    OsnetState osnet;              /* dedicated cores, DID, exit statistics */
    DeviceStateList device_states; /* every device's save/load, for migration */
    struct PciBus *pci;            /* hw/pci: the host bridge and bus, or NULL */
    struct VfioContext *vfio;      /* hw/vfio: opened by the first vfio-pci, or NULL */
    struct Firmware *firmware;     /* hw/i386/firmware.c, without -kernel */
    struct MigrationState *migration;
    GPtrArray *drives;         /* hw/core/drives.c: drives and blockdev nodes */
    GPtrArray *anon_devices;   /* hw/core/devices.c: peripheral-anon device[N] */
    GPtrArray *deleted_later;  /* hw/core/devices.c: DEVICE_DELETED after a close */
    struct NetdevSet *netdevs; /* net/: -netdev backends, by id */
    ChardevSet *chardevs;
    SerialPort *serial[4];
    bool serial_used[4];          /* COMn wanted by -serial (or the default) */
    Chardev *serial_chr[4];       /* its backend (NULL for "vc"), made before KVM */
    void *board;                  /* hw/i386 board devices (pc.c) */
    struct LinuxBoot *linux_boot; /* -kernel: the images, kept for system_reset */

    RunState runstate;
    int reset_pending, shutdown_pending; /* ShutdownCause + 1, or 0 */
    /* what the guest did to ask for them (static strings, for the report) */
    const char *reset_why, *shutdown_why;
    MachineEventFn event_fn;
    void *event_opaque;
    const char *event_device_id;   /* during MACHINE_EVENT_DEVICE_DELETED only: */
    const char *event_device_path; /* its id (or NULL) and QOM path */
    bool event_device_virtio;
    int exit_status;
    int64_t resumed_at; /* g_get_monotonic_time() at the last resume, for reports */
    bool exiting;       /* the main loop is ending: monitors stop reading */
    GMainLoop *main_loop;
    /* hw/core/failover.c: the failover primaries, hidden or plugged */
    struct FailoverState *failover;
} Machine;

/* Lay out RAM and the e820 map for cfg (pure; no KVM). */
bool machine_plan_memory(Machine *m, uint64_t ram_size, GError **errp);
/*
 * Guest-physical [gpa, gpa+len) as a host pointer, or NULL when any part
 * of it is outside guest RAM.  Every guest-supplied address goes through
 * this check.
 */
void *machine_gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len);

/*
 * Everything cfg names, checked and opened with no KVM: memory plan,
 * cpumap, chardevs, -serial backends, -drive images, -device options,
 * kernel and initrd (or the BIOS).  A bad command line fails here, with
 * its one-line error, whether or not this machine has /dev/kvm.
 */
bool machine_prepare(Machine *m, VmConfig *cfg, GError **errp);
/* Then create the VM: KVM, RAM, vCPUs, board devices, boot image. */
bool machine_init(Machine *m, GError **errp);
void machine_cleanup(Machine *m);

/* Start vCPU threads (paused) and, unless -S, run them. */
bool machine_start(Machine *m, GError **errp);
void machine_pause(Machine *m); /* all vCPUs parked on return */
void machine_resume(Machine *m);

/* The monitor's stop and cont: run state, vCPUs and STOP/RESUME events. */
void machine_vm_stop(Machine *m);
bool machine_vm_cont(Machine *m, GError **errp);
/* Reset now, on the main thread (QMP system_reset), with a RESET event. */
void machine_system_reset(Machine *m, ShutdownCause cause);
/*
 * With the VM stopped: carry out a reset a vCPU asked for just before, so
 * that a snapshot of the machine (migration) never catches a guest that
 * has pulled the reset line but not been reset.
 */
void machine_settle_reset(Machine *m);
/* Shut down now, on the main thread: SHUTDOWN event, main loop ends. */
void machine_shutdown(Machine *m, ShutdownCause cause);
/*
 * QMP/HMP system_powerdown: from the main loop, after the command's
 * reply, a POWERDOWN event and the power button pressed (the guest
 * decides what to do about it).
 */
void machine_system_powerdown(Machine *m);
/*
 * A device left the machine (the guest ejected it): DEVICE_DELETED for its
 * id (NULL: a device without one, whose event has only the path) and QOM
 * path, after one for its virtio backend when virtio is set, as QEMU sends
 * them.  Main thread.
 */
void machine_device_deleted(Machine *m, const char *id, const char *path, bool virtio);

/*
 * Called from any thread (a vCPU exit, a signal): ask the main loop to
 * reset or shut down the VM.  Every vCPU parks at once.
 */
void machine_request_reset(Machine *m, ShutdownCause cause);
void machine_request_shutdown(Machine *m, ShutdownCause cause);
/*
 * The same, naming what the guest did (a static string such as "PIIX3
 * reset control register (port 0xcf9)").  With -d cpu_reset the main loop
 * says it on stderr, with each vCPU's registers, when it carries the
 * request out (a triple fault is said at once, always: kvm-cpu.c).
 */
void machine_request_reset_why(Machine *m, ShutdownCause cause, const char *why);
void machine_request_shutdown_why(Machine *m, ShutdownCause cause, const char *why);

/* Lock helpers for the machine lock. */
static inline void machine_lock(Machine *m)
{
    pthread_mutex_lock(&m->lock);
}

static inline void machine_unlock(Machine *m)
{
    pthread_mutex_unlock(&m->lock);
}

/*
 * Around a device creation made with the machine lock held (device_add,
 * a failover primary's plug): on, the creation's slow host set-up (VFIO
 * pinning guest RAM) drops the lock so vCPU exits are not held up for
 * seconds; off, it no longer does.  Main thread.
 */
void machine_pci_slow_section(Machine *m, bool on);

#endif
