/*
 * Conventional PCI for the pc machine: bus 0 behind an i440FX-compatible
 * host bridge (configuration mechanism #1 on ports 0xCF8/0xCFC), a PIIX3
 * ISA bridge routing INTx through its PIRQ registers, per-device config
 * space with BARs mapped onto the machine's buses, and MSI-X.
 *
 * Locking: config space, BAR mapping and MSI-X table accesses run with the
 * machine lock held (vCPU exits, or the main thread around set-up, reset
 * and migration).  pci_set_irq() and msix_notify() may be called from any
 * thread (device I/O threads) without the machine lock: they take the
 * bus's INTx lock or the device's MSI-X lock, never the machine lock.
 */
#ifndef HW_PCI_H
#define HW_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <jansson.h>
#include <linux/pci_regs.h>

#include "hw/bus.h"
#include "hw/guest-memory.h"
#include "hw/vmstate.h"

typedef struct Machine Machine;
typedef struct PciBus PciBus;
typedef struct PciDevice PciDevice;
typedef struct MsixState MsixState;
typedef struct SubOpts SubOpts;
typedef struct BlockDriverState BlockDriverState;
typedef struct NetdevSet NetdevSet;
typedef struct VfioContext VfioContext;

#define PCI_CONFIG_SIZE          256
#define PCI_BAR_COUNT            6
#define PCI_ROM_BAR              PCI_BAR_COUNT /* the ROM BAR's index (query-pci's bar 6) */
#define PCI_SLOT_COUNT           32
#define PCI_DEVFN_COUNT          256
#define PCI_DEVFN_AUTO           (-1)
#define PCI_MAKE_DEVFN(slot, fn) ((((slot)&0x1f) << 3) | ((fn)&7))
#define PCI_DEVFN_SLOT(devfn)    (((devfn) >> 3) & 0x1f)
#define PCI_DEVFN_FUNC(devfn)    ((devfn)&7)
#define PCI_BAR_UNMAPPED         UINT64_MAX

/* IDs guests see on QEMU's pc machine (and so on this one). */
#define PCI_VENDOR_INTEL           0x8086
#define PCI_DEVICE_I440FX          0x1237
#define PCI_DEVICE_PIIX3_ISA       0x7000
#define PCI_VENDOR_REDHAT_QUMRANET 0x1af4
#define PCI_SUBSYSTEM_ID_QEMU      0x1100

/* Where the VMM places BARs when no firmware does (direct kernel boot). */
#define PCI_DEFAULT_MMIO_START 0xe0000000ULL
#define PCI_DEFAULT_MMIO_END   0xfec00000ULL /* exclusive */
#define PCI_DEFAULT_IO_START   0xc000
#define PCI_DEFAULT_IO_END     0x10000

/*
 * How PCI reaches KVM: the real calls (accel/kvm/kvm.h) by default, fakes in
 * unit tests.  All may be called from any thread.
 */
typedef struct PciKvmOps {
    void (*set_irq)(void *opaque, int gsi, int level);
    int (*msi_route_add)(void *opaque, uint64_t addr, uint32_t data, GError **errp);
    bool (*msi_route_update)(void *opaque, int gsi, uint64_t addr, uint32_t data,
                             GError **errp);
    void (*msi_route_del)(void *opaque, int gsi);
    bool (*irqfd)(void *opaque, int fd, int gsi, bool assign, GError **errp);
    bool (*ioeventfd)(void *opaque, int fd, uint64_t addr, unsigned len, bool is_pio,
                      bool assign, GError **errp);
    bool (*signal_msi)(void *opaque, uint64_t addr, uint32_t data, GError **errp);
    /*
     * Passed-through BARs (vfio-pci), optional: host memory at gpa as a
     * KVM memory slot, so guest accesses do not exit (a handle >= 0, or -1
     * with errp set), and its removal; an irqfd on a level-triggered GSI
     * whose EOI signals resample_fd (KVM_IRQFD_FLAG_RESAMPLE).
     */
    int (*memslot_add)(void *opaque, uint64_t gpa, uint64_t size, void *host,
                       GError **errp);
    void (*memslot_del)(void *opaque, int slot);
    bool (*irqfd_resample)(void *opaque, int fd, int resample_fd, int gsi, bool assign,
                           GError **errp);
} PciKvmOps;

/* The real calls, with a KvmVm * as opaque. */
extern const PciKvmOps pci_kvm_ops;

typedef enum PciBarKind {
    PCI_BAR_NONE,
    PCI_BAR_IO,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64, /* takes this BAR and the next */
} PciBarKind;

typedef struct PciBar {
    PciBarKind kind;
    bool prefetch;
    uint64_t size; /* a power of two */
    BusIoFn fn;
    void *opaque;
    uint64_t mapped_addr; /* where it is on a bus now, or PCI_BAR_UNMAPPED */
} PciBar;

/* A device model's hooks; every one is optional.  Machine lock held. */
typedef struct PciDeviceOps {
    /* Fill *val for a read the device computes; false: use config bytes. */
    bool (*config_read)(PciDevice *dev, unsigned offset, unsigned len, uint32_t *val);
    /* After the generic write (masks, BARs, command, MSI-X) was applied. */
    void (*config_write)(PciDevice *dev, unsigned offset, unsigned len, uint32_t val);
    /* A BAR appeared at addr (mapped) or left it (!mapped). */
    void (*bar_moved)(PciDevice *dev, int bar, uint64_t addr, bool mapped);
    /* Device-specific part of a reset (system_reset); config is already back. */
    void (*reset)(PciDevice *dev);
    /* Stop touching guest memory and images (VM stopped); finish in-flight
     * work before returning.  resume undoes it.  Main thread. */
    void (*pause)(PciDevice *dev);
    void (*resume)(PciDevice *dev);
    /* Free the model's state (machine clean-up); BARs are unmapped already. */
    void (*destroy)(PciDevice *dev);
    /* Migration starts (on) or ends (off) logging DMA writes: a device whose
     * writes others make (vhost-net) logs them too.  Any thread. */
    void (*dirty_log)(PciDevice *dev, bool on);
} PciDeviceOps;

struct PciDevice {
    PciBus *bus;    /* what it reaches the machine through */
    int devfn;      /* -1 until realized */
    char *name;     /* model name, "virtio-blk-pci" */
    char *qdev_id;  /* -device id=, or NULL */
    char *bus_name; /* "virtio-blk-pci@00:02.0", for buses */
    int bootindex;  /* -1: none */
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];        /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SIZE];      /* bits a guest write of 1 clears */
    uint8_t reset_config[PCI_CONFIG_SIZE]; /* power-on contents */
    uint8_t next_cap;                      /* where the next capability goes */
    PciBar bars[PCI_BAR_COUNT];
    PciBar rom; /* the expansion ROM BAR (kind NONE: none) */
    /* pci_device_set_rom_image's bytes (all ones past them), or NULL */
    uint8_t *rom_image;
    uint64_t rom_image_size;
    int intx_level;      /* [bus INTx lock] */
    bool master_written; /* Bus Master Enable as the guest last wrote it */
    MsixState *msix;
    const PciDeviceOps *ops;
    void *opaque; /* the model's state */
};

/*
 * What the board gives its PCI bus, and through it every device on it:
 * the buses that BARs and the config ports go on, guest memory for DMA,
 * the registry devices put their migration state in, where guest RAM is
 * (no memory BAR may overlap it: [0, ram_below_4g) and ram_above_4g bytes
 * from 4 GiB), how to reach KVM, and whom to ask for a reset (the PIIX3
 * reset control register).
 */
typedef struct PciBusConfig {
    Bus *io_bus, *mmio_bus;
    GuestMemory mem;
    DeviceStateList *states;
    uint64_t ram_below_4g, ram_above_4g;
    const PciKvmOps *ops;
    void *ops_opaque;
    void (*request_reset)(void *opaque);
    void *reset_opaque;
    NetdevSet *netdevs; /* the -netdev backends NICs take (netdev=), or NULL */
    VfioContext *vfio;  /* where vfio-pci devices open their host device, or NULL */
    /* The pCPU (-osnet_cpumap) of the vCPU with this APIC id, or -1. */
    int (*apic_pcpu)(void *opaque, unsigned apic_id);
    void *apic_opaque;
} PciBusConfig;

/*
 * The pc machine's PCI bus: host bridge 00:00.0 (8086:1237), PIIX3 ISA
 * bridge 00:01.0 (8086:7000), config ports 0xCF8-0xCFF, reset control
 * register 0xCF9.  Call after kvm_vm_init and RAM set-up, with io_bus
 * ready.  NULL (errp set) on failure.  The board's pci_pc_init
 * (include/hw/i386/pc.h) makes it from the machine.
 */
PciBus *pci_pc_new(const PciBusConfig *cfg, GError **errp);
/* What a device on bus reaches guest RAM through, for DMA. */
const GuestMemory *pci_bus_memory(PciBus *bus);
/* Guest RAM's ranges: [0, *below_4g) and *above_4g bytes from 4 GiB. */
void pci_bus_ram(PciBus *bus, uint64_t *below_4g, uint64_t *above_4g);
/* The network backends a NIC on bus finds by id (NULL: none). */
NetdevSet *pci_bus_netdevs(PciBus *bus);
/* Where a device on bus registers its migration state. */
DeviceStateList *pci_bus_device_states(PciBus *bus);
/* How a device on bus reaches KVM (a model wiring its own irqfds, slots). */
void pci_bus_kvm_ops(PciBus *bus, const PciKvmOps **ops, void **opaque);
/* The VFIO context vfio-pci devices open host devices in, or NULL. */
VfioContext *pci_bus_vfio(PciBus *bus);
/*
 * Slow host set-up inside a device's creation (VFIO pins all guest RAM for
 * DMA: seconds for a large guest) runs between pci_bus_slow_begin and
 * pci_bus_slow_end.  A caller that creates a device while holding a lock
 * the vCPUs need (device_add holds the machine lock) installs leave/enter
 * for the duration, so the guest runs on meanwhile; nothing else on the
 * bus may change in between (the main thread is the only one that adds
 * devices).  Without a section installed both calls do nothing.
 */
void pci_bus_set_slow_section(PciBus *bus, void (*leave)(void *opaque),
                              void (*enter)(void *opaque), void *opaque);
void pci_bus_slow_begin(PciBus *bus);
void pci_bus_slow_end(PciBus *bus);
/*
 * fn hears of every guest config write that clears a device's Bus Master
 * Enable (a driver letting go of it, as Linux's pci_disable_device at the
 * end of a remove); vCPU thread, machine lock held: fn only hands work to
 * the main loop.  NULL: none.
 */
typedef void (*PciMasterOffFn)(void *opaque, PciDevice *dev);
void pci_bus_set_master_off(PciBus *bus, PciMasterOffFn fn, void *opaque);
/* The dedicated pCPU of the vCPU whose APIC id is apic_id, or -1. */
int pci_bus_apic_pcpu(PciBus *bus, unsigned apic_id);
/* The ISA IRQ (= GSI) dev's INTx pin reaches through the PIRQ routes now, or -1. */
int pci_device_intx_irq(PciDevice *dev);
/*
 * Do what firmware would for a boot without it (-kernel): place every BAR
 * (MMIO from PCI_DEFAULT_MMIO_START, ports from PCI_DEFAULT_IO_START) and
 * ROM BAR (in the MMIO window, aligned to its size, left disabled),
 * enable decode and bus mastering, route PIRQA-D to IRQ 10/10/11/11 and
 * write each device's interrupt line.  Main thread, vCPUs not running.
 */
void pci_pc_assign_resources(PciBus *bus);
/*
 * The ISA IRQ (= IOAPIC pin) a slot's pin (1 = INTA .. 4 = INTD) reaches
 * through the default PIRQ routes that pci_pc_assign_resources installs;
 * -1 for a slot or pin out of range.  For the MP table of -kernel boots.
 */
int pci_pc_default_irq(unsigned slot, unsigned pin);
/* Power-on state for every device (system_reset); machine lock held. */
void pci_pc_reset(PciBus *bus);
/* Tear down every device, then the bus; before KVM and RAM go away. */
void pci_pc_free(PciBus *bus);
/*
 * Devices stop and restart their background I/O with the VM: pause after
 * the vCPUs stopped (drains in-flight requests, so nothing writes guest
 * RAM or images afterwards: migration and savevm rely on it), resume
 * before they run again.  Both are idempotent.  Main thread.
 */
void pci_pc_pause(PciBus *bus);
void pci_pc_resume(PciBus *bus);

/*
 * Guest memory that device threads write (DMA) is not in KVM's dirty log:
 * migration installs fn to hear of every such write.  Any thread.
 */
typedef void (*PciDirtyFn)(void *opaque, uint64_t gpa, uint64_t len);
void pci_set_dma_dirty_log(PciBus *bus, PciDirtyFn fn, void *opaque);
void pci_dma_mark_dirty(PciDevice *dev, uint64_t gpa, uint64_t len);

/*
 * Assign (or remove) an ioeventfd: a guest MMIO write of len bytes (0: any
 * length) to addr signals fd without an exit.  False when KVM refuses it;
 * the device then handles the write in its BAR callback.
 */
bool pci_device_ioeventfd(PciDevice *dev, int fd, uint64_t addr, unsigned len,
                          bool assign);

/* PAM0-PAM6 (host bridge 0x59-0x5f) changed: the memory side reacts. */
typedef void (*PciPamFn)(void *opaque, const uint8_t pam[7]);
void pci_set_pam_notifier(PciBus *bus, PciPamFn fn, void *opaque);

/* A device's INTx route, for firmware tables (MP table, ACPI). */
typedef struct PciIntxRoute {
    uint8_t slot;
    uint8_t pin;  /* 1 = INTA ... 4 = INTD */
    uint8_t pirq; /* 0 = PIRQA ... 3 = PIRQD */
    int irq;      /* ISA IRQ = IOAPIC pin the PIRQ goes to, -1 if off */
} PciIntxRoute;
/* Fill up to max routes (one per device with a pin); returns the count. */
unsigned pci_intx_routes(PciBus *bus, PciIntxRoute *routes, unsigned max);
/* The PIRQ a slot's pin uses on this board: (slot - 1 + pin - 1) & 3. */
unsigned pci_slot_pirq(unsigned slot, unsigned pin);

/*
 * Devices.  pci_device_new gives a type-0 header with read-only IDs and
 * QEMU's subsystem IDs; the model then adds BARs, capabilities, an INTx
 * pin, MSI-X, and pci_device_realize puts it on the bus (devfn or
 * PCI_DEVFN_AUTO for the first free slot from 2).  After a failed realize
 * the caller frees the device with pci_device_free.
 */
PciDevice *pci_device_new(const char *name, uint16_t vendor, uint16_t device,
                          uint32_t class_code, uint8_t revision);
void pci_device_free(PciDevice *dev);
void pci_device_set_bar(PciDevice *dev, int bar, PciBarKind kind, bool prefetch,
                        uint64_t size, BusIoFn fn, void *opaque);
/*
 * An expansion ROM BAR of size bytes (a power of two, 2 KiB at least):
 * while the guest sets its enable bit and memory decoding, fn serves
 * accesses at the address it programmed (writes are the model's to drop).
 */
void pci_device_set_rom(PciDevice *dev, uint64_t size, BusIoFn fn, void *opaque);
/*
 * romfile=: the whole file (a bare name is also looked for where Debian's
 * QEMU keeps its option ROMs) into *data (g_free it), with QEMU's errors
 * for a missing, empty or over-2-GiB file.
 */
bool pci_romfile_load(const char *path, uint8_t **data, uint64_t *len, GError **errp);
/*
 * A read-only ROM BAR holding data (len bytes, taken over and freed with the
 * device): the next power of two of len, 2 KiB at least, all ones past len.
 */
void pci_device_set_rom_image(PciDevice *dev, uint8_t *data, uint64_t len);
/* Link a capability of size bytes at offset (0: next free); returns it. */
uint8_t pci_device_add_capability(PciDevice *dev, uint8_t cap_id, uint8_t offset,
                                  uint8_t size);
void pci_device_set_intx_pin(PciDevice *dev, uint8_t pin);
bool pci_device_realize(PciBus *bus, PciDevice *dev, int devfn, GError **errp);

static inline uint16_t pci_get_word(const uint8_t *p)
{
    return p[0] | (uint16_t)p[1] << 8;
}

static inline uint32_t pci_get_long(const uint8_t *p)
{
    return pci_get_word(p) | (uint32_t)pci_get_word(p + 2) << 16;
}

static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    pci_set_word(p, v);
    pci_set_word(p + 2, v >> 16);
}

/* Config access as the guest does it (len 1, 2 or 4; machine lock held). */
uint32_t pci_config_read(PciDevice *dev, unsigned offset, unsigned len);
void pci_config_write(PciDevice *dev, unsigned offset, unsigned len, uint32_t val);
/* Drive the INTx pin (any thread); ignored without a pin. */
void pci_set_irq(PciDevice *dev, int level);

PciDevice *pci_find_device_by_id(PciBus *bus, const char *qdev_id);
/* Every device in devfn order. */
void pci_foreach_device(PciBus *bus, void (*fn)(PciDevice *dev, void *opaque),
                        void *opaque);
/* The BAR's guest address as programmed (whether mapped or not). */
uint64_t pci_bar_programmed_address(PciDevice *dev, int bar);

/*
 * MSI-X with its table at offset 0 and PBA at half the BAR in memory BAR
 * `bar` (32-bit, 4 KiB or more), capability at cap_offset.  Each unmasked
 * vector gets a KVM MSI route and an irqfd: msix_notify, from any thread,
 * writes the irqfd or sets the pending bit when the vector is masked.
 */
bool msix_init(PciDevice *dev, unsigned nr_vectors, int bar, uint8_t cap_offset,
               GError **errp);
bool msix_enabled(PciDevice *dev);
unsigned msix_nr_vectors(PciDevice *dev);
/* False when MSI-X is disabled (the caller uses INTx instead). */
bool msix_notify(PciDevice *dev, unsigned vector);
/*
 * Let eventfd fd raise vector without the VMM (a kernel back end such as
 * vhost-net signals it): KVM binds it to the vector's route by an irqfd
 * while the vector is unmasked; while masked a signal waits in the eventfd
 * and is delivered at the unmask (it does not show in the PBA).  False
 * when MSI-X is disabled, vector is out of range or the vector has too
 * many such eventfds: the caller relays signals with msix_notify.
 * Release before closing fd.
 */
bool msix_vector_use_fd(PciDevice *dev, unsigned vector, int fd);
void msix_vector_release_fd(PciDevice *dev, unsigned vector, int fd);

/*
 * Device state for migration: config space (and MSI-X table and pending
 * bits).  Load in two steps so that a bad blob changes nothing: parse into
 * a snapshot (all checks), then apply it (remaps BARs, rebuilds routes).
 */
typedef struct PciDeviceSnapshot {
    uint8_t config[PCI_CONFIG_SIZE];
    unsigned nr_vectors;
    uint32_t *msix_table; /* 4 words per vector */
    uint64_t *msix_pba;
    int intx_level;
} PciDeviceSnapshot;

typedef struct StateReader StateReader;
void pci_device_save(PciDevice *dev, GByteArray *out);
bool pci_device_parse(PciDevice *dev, StateReader *r, PciDeviceSnapshot *snap,
                      GError **errp);
void pci_device_apply(PciDevice *dev, PciDeviceSnapshot *snap);
void pci_device_snapshot_clear(PciDeviceSnapshot *snap);

/*
 * The -device registry: create a PCI device by driver name from its
 * sub-options (id=, addr=, bootindex=, and the model's own).  lookup maps
 * a drive= id to an open image.  Main thread, before the VM runs.
 */
typedef BlockDriverState *(*PciDriveLookupFn)(void *opaque, const char *drive_id,
                                              GError **errp);
/* The same options checked with no VM: every error pci_device_create would
 * give for them, short of those of a VM's resources (slots, KVM). */
bool pci_device_check(const char *driver, SubOpts *opts, PciDriveLookupFn lookup,
                      void *lookup_opaque, GError **errp);
PciDevice *pci_device_create(PciBus *bus, const char *driver, SubOpts *opts,
                             PciDriveLookupFn lookup, void *lookup_opaque, GError **errp);
bool pci_driver_exists(const char *driver);
/* One "name "NAME", bus PCI, desc "..."" line per driver (-device help). */
char *pci_driver_list(void);
/* Parse QEMU's addr= ("3", "0x3", "03.0", "3.1") into a devfn. */
bool pci_parse_devfn(const char *addr, int *devfn, GError **errp);

/* One BAR of a function, as query-pci shows it. */
typedef struct PciRegionInfo {
    int bar;
    PciBarKind kind;
    bool prefetch;
    uint64_t size;
    uint64_t address; /* PCI_BAR_UNMAPPED while not on a bus */
} PciRegionInfo;

/* One PCI function, as query-pci and HMP's "info pci" show it. */
typedef struct PciDeviceInfo {
    unsigned bus, slot, function;
    uint16_t class_id;
    const char *class_desc; /* NULL for a class without a name */
    uint16_t vendor_id, device_id, subsystem_vendor_id, subsystem_id;
    uint8_t irq_pin; /* 0: none; 1-4: INTA-INTD */
    uint8_t irq_line;
    char *qdev_id; /* "" without -device id= */
    char *model;   /* the -device driver: "virtio-blk-pci" (QOM type) */
    unsigned nr_regions;
    PciRegionInfo regions[PCI_BAR_COUNT + 1]; /* and the ROM BAR */
} PciDeviceInfo;

/* QEMU's name of a class code ("Host bridge"), or NULL. */
const char *pci_class_description(uint16_t class_id);
/*
 * Every function on the bus, in devfn order (the caller holds the lock the
 * bus's devices live under): a GArray of PciDeviceInfo that frees its
 * records (g_array_unref).
 */
GArray *pci_query(PciBus *bus);

#endif
