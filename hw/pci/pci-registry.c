/*
 * The -device registry: PCI device models by driver name, each created
 * from its sub-options with QEMU's property names and error wording.
 * Main thread, before the VM runs (hotplug will call it too, under the
 * machine lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/pci.h"
#include "hw/vfio-pci.h"
#include "hw/virtio-net.h"
#include "hw/virtio.h"
#include "util/error.h"
#include "util/subopt.h"

typedef struct PciCreateContext {
    const char *driver;
    PciDriveLookupFn lookup;
    void *lookup_opaque;
} PciCreateContext;

typedef PciDevice *(*PciCreateFn)(PciBus *bus, SubOpts *opts, const PciCreateContext *ctx,
                                  GError **errp);

bool pci_parse_devfn(const char *addr, int *devfn, GError **errp)
{
    char *end;
    unsigned long slot, fn = 0;

    errno = 0;
    slot = strtoul(addr, &end, 16);
    if (!errno && end != addr && *end == '.') {
        const char *f = end + 1;
        fn = strtoul(f, &end, 16);
        if (end == f) {
            end = (char *)addr; /* "3." is malformed */
        }
    }
    if (errno || end == addr || *end || slot >= PCI_SLOT_COUNT || fn > 7 ||
        !g_ascii_isxdigit(addr[0])) {
        error_setg(errp, "Property 'addr' doesn't take value '%s'", addr);
        return false;
    }
    *devfn = PCI_MAKE_DEVFN(slot, fn);
    return true;
}

/* The properties every PCI device takes: addr=, bootindex=, bus=. */
static bool pci_common_options(SubOpts *opts, const PciCreateContext *ctx, int *devfn,
                               int *bootindex, GError **errp)
{
    const char *addr = subopts_get(opts, "addr");
    const char *boot = subopts_get(opts, "bootindex");
    const char *bus = subopts_get(opts, "bus");
    char *end;
    long v;

    *devfn = PCI_DEVFN_AUTO;
    *bootindex = -1;
    subopts_get(opts, "driver"); /* the implied key, if kept */
    /* any PCI device's; hw/core/failover.c acts on it */
    subopts_get(opts, "failover_pair_id");
    if (bus && strcmp(bus, "pci.0") != 0) {
        error_setg(errp, "Bus '%s' not found", bus);
        return false;
    }
    if (addr && !pci_parse_devfn(addr, devfn, errp)) {
        return false;
    }
    if (boot) {
        errno = 0;
        v = strtol(boot, &end, 10);
        if (errno || end == boot || *end || v < -1 || v > 0x7fffffff) {
            error_setg(errp, "Property '%s.bootindex' doesn't take value '%s'",
                       ctx->driver, boot);
            return false;
        }
        *bootindex = v;
    }
    return true;
}

/* romfile= and rombar= (QEMU's properties of every PCI device). */
typedef struct PciRomOptions {
    const char *romfile; /* NULL: the model's default (none here), "": none */
    bool rombar;         /* false: no ROM BAR, whatever the file */
} PciRomOptions;

static bool pci_rom_options(SubOpts *opts, PciRomOptions *rom, GError **errp)
{
    const char *rombar = subopts_get(opts, "rombar");
    char *end = NULL;

    rom->romfile = subopts_get(opts, "romfile");
    rom->rombar = true;
    if (rombar) {
        unsigned long long v = strtoull(rombar, &end, 0);
        if (!*rombar || *end || v > UINT32_MAX) {
            error_setg(errp, "Parameter 'rombar' expects integer");
            return false;
        }
        rom->rombar = v != 0;
    }
    return true;
}

/* The image an emulated device's ROM BAR shows (*data NULL: no ROM BAR). */
static bool pci_rom_image(const PciRomOptions *rom, uint8_t **data, uint64_t *len,
                          GError **errp)
{
    *data = NULL;
    *len = 0;
    if (!rom->rombar || !rom->romfile || !*rom->romfile) {
        return true;
    }
    return pci_romfile_load(rom->romfile, data, len, errp);
}

/* The ROM checked before the VM exists: the file can be read. */
static bool pci_rom_check(const PciRomOptions *rom, GError **errp)
{
    uint8_t *data;
    uint64_t len;
    bool ok = pci_rom_image(rom, &data, &len, errp);

    g_free(data);
    return ok;
}

/* Every key must have been read: QEMU's message for the first stray one. */
static bool pci_check_unused(SubOpts *opts, const PciCreateContext *ctx, GError **errp)
{
    for (guint i = 0; i < opts->items->len; i++) {
        SubOpt *item = &g_array_index(opts->items, SubOpt, i);
        if (!item->used) {
            error_setg(errp, "Property '%s.%s' not found", ctx->driver, item->key);
            return false;
        }
    }
    return true;
}

/* Modern-only devices: the legacy interface cannot be switched on. */
static bool virtio_pci_legacy_options(SubOpts *opts, const PciCreateContext *ctx,
                                      GError **errp)
{
    const char *legacy = subopts_get(opts, "disable-legacy");
    bool modern_off = false;

    if (!subopts_get_bool(opts, "disable-modern", &modern_off, errp)) {
        return false;
    }
    if ((legacy && strcmp(legacy, "on") != 0 && strcmp(legacy, "auto") != 0) ||
        modern_off) {
        error_setg(errp,
                   "%s: only the modern (virtio 1.x) interface is supported: "
                   "use disable-legacy=on,disable-modern=off",
                   ctx->driver);
        return false;
    }
    return true;
}

/* The options of a virtio-blk-pci, checked; the drive looked up. */
static bool virtio_blk_pci_parse(SubOpts *opts, const PciCreateContext *ctx,
                                 VirtioBlkOptions *o, int *bootindex, PciRomOptions *rom,
                                 GError **errp)
{
    const char *drive = subopts_get(opts, "drive");
    uint64_t num_queues = 1, queue_size = 256;

    *o = (VirtioBlkOptions){ .id = subopts_get(opts, "id"),
                             .serial = subopts_get(opts, "serial") };
    if (!pci_common_options(opts, ctx, &o->devfn, bootindex, errp) ||
        !pci_rom_options(opts, rom, errp) ||
        !virtio_pci_legacy_options(opts, ctx, errp) ||
        !subopts_get_uint(opts, "num-queues", &num_queues, errp) ||
        !subopts_get_uint(opts, "queue-size", &queue_size, errp) ||
        !pci_check_unused(opts, ctx, errp)) {
        return false;
    }
    if (!drive) {
        error_setg(errp, "%s: drive property not set", ctx->driver);
        return false;
    }
    o->bs = ctx->lookup ? ctx->lookup(ctx->lookup_opaque, drive, errp) : NULL;
    if (!o->bs) {
        if (errp && !*errp) {
            error_setg(errp, "Property '%s.drive' can't find value '%s'", ctx->driver,
                       drive);
        }
        return false;
    }
    o->num_queues = num_queues > 0xffff ? 0xffff : num_queues;
    o->queue_size = queue_size > 0xffff ? 0xffff : queue_size;
    return virtio_blk_options_check(o, errp);
}

static bool virtio_blk_pci_check(SubOpts *opts, const PciCreateContext *ctx,
                                 GError **errp)
{
    VirtioBlkOptions o;
    PciRomOptions rom;
    int bootindex;

    return virtio_blk_pci_parse(opts, ctx, &o, &bootindex, &rom, errp) &&
           pci_rom_check(&rom, errp);
}

static PciDevice *virtio_blk_pci_from_opts(PciBus *bus, SubOpts *opts,
                                           const PciCreateContext *ctx, GError **errp)
{
    VirtioBlkOptions o;
    PciRomOptions rom;
    uint8_t *image;
    uint64_t image_len;
    int bootindex;
    PciDevice *dev;

    if (!virtio_blk_pci_parse(opts, ctx, &o, &bootindex, &rom, errp) ||
        !pci_rom_image(&rom, &image, &image_len, errp)) {
        return NULL;
    }
    dev = virtio_blk_pci_create_opts(bus, &o, errp);
    if (dev) {
        dev->bootindex = bootindex;
        if (image) {
            pci_device_set_rom_image(dev, image, image_len);
        }
    } else {
        g_free(image);
    }
    return dev;
}

/*
 * The options of a virtio-net-pci (QEMU's virtio-net-device properties:
 * netdev=, mac=, failover=, mq=, vectors=), checked.  netdev= is looked up
 * only at creation, in the bus's netdevs; failover= is stored (its
 * behaviour comes with failover itself).
 */
static bool virtio_net_pci_parse(SubOpts *opts, const PciCreateContext *ctx,
                                 VirtioNetOptions *o, const char **netdev, int *bootindex,
                                 PciRomOptions *rom, GError **errp)
{
    const char *mac = subopts_get(opts, "mac");
    const char *vectors_arg = subopts_get(opts, "vectors");
    uint64_t vectors = 0;

    *o = (VirtioNetOptions){ .id = subopts_get(opts, "id") };
    *netdev = subopts_get(opts, "netdev");
    if (!pci_common_options(opts, ctx, &o->devfn, bootindex, errp) ||
        !pci_rom_options(opts, rom, errp) ||
        !virtio_pci_legacy_options(opts, ctx, errp) ||
        !subopts_get_bool(opts, "failover", &o->failover, errp) ||
        !subopts_get_bool(opts, "mq", &o->mq, errp) ||
        !pci_check_unused(opts, ctx, errp)) {
        return false;
    }
    if (vectors_arg && !parse_uint_value("vectors", vectors_arg, &vectors, NULL)) {
        error_setg(errp, "Parameter 'vectors' expects integer"); /* QEMU's uint32 */
        return false;
    }
    if (vectors_arg && (vectors == 0 || vectors > 2048)) {
        error_setg(errp,
                   "%s: vectors=%" G_GUINT64_FORMAT " is not supported by this "
                   "VMM (MSI-X with 1 to 2048 vectors)",
                   ctx->driver, vectors);
        return false;
    }
    o->vectors = (unsigned)vectors;
    if (mac) {
        if (!virtio_net_parse_mac(mac, o->mac)) {
            error_setg(errp, "Property 'virtio-net-device.mac' doesn't take value '%s'",
                       mac);
            return false;
        }
        o->has_mac = true;
    }
    return true;
}

static bool virtio_net_pci_check(SubOpts *opts, const PciCreateContext *ctx,
                                 GError **errp)
{
    VirtioNetOptions o;
    PciRomOptions rom;
    const char *netdev;
    int bootindex;

    return virtio_net_pci_parse(opts, ctx, &o, &netdev, &bootindex, &rom, errp) &&
           pci_rom_check(&rom, errp);
}

static PciDevice *virtio_net_pci_from_opts(PciBus *bus, SubOpts *opts,
                                           const PciCreateContext *ctx, GError **errp)
{
    VirtioNetOptions o;
    PciRomOptions rom;
    const char *netdev;
    uint64_t below, above, image_len;
    uint8_t *image;
    int bootindex;
    PciDevice *dev;

    if (!virtio_net_pci_parse(opts, ctx, &o, &netdev, &bootindex, &rom, errp)) {
        return NULL;
    }
    if (netdev) {
        NetdevSet *set = pci_bus_netdevs(bus);
        o.netdev = set ? netdev_find(set, netdev) : NULL;
        if (!o.netdev) {
            error_setg(errp, "Property 'virtio-net-device.netdev' can't find value '%s'",
                       netdev);
            return NULL;
        }
    }
    pci_bus_ram(bus, &below, &above);
    o.ram[o.nr_ram++] = (VhostMemRegion){
        0, below, guest_memory_hva(pci_bus_memory(bus), 0, below)
    };
    if (above) {
        o.ram[o.nr_ram++] = (VhostMemRegion){
            1ULL << 32, above, /* RAM above 4 GiB starts there */
            guest_memory_hva(pci_bus_memory(bus), 1ULL << 32, above)
        };
    }
    if (!pci_rom_image(&rom, &image, &image_len, errp)) {
        return NULL;
    }
    dev = virtio_net_pci_create(bus, &o, errp);
    if (dev) {
        dev->bootindex = bootindex;
        if (image) {
            pci_device_set_rom_image(dev, image, image_len);
        }
    } else {
        g_free(image);
    }
    return dev;
}

/*
 * The options of a vfio-pci (QEMU's names: host=, sysfsdev=, rombar=,
 * romfile=, failover_pair_id=), checked; sysfsdev= wins over host= as in QEMU.
 * *sysfs_path is the device's sysfs folder (g_free), which must exist.
 */
static bool vfio_pci_parse(SubOpts *opts, const PciCreateContext *ctx, VfioPciOptions *o,
                           char **sysfs_path, int *bootindex, GError **errp)
{
    const char *host = subopts_get(opts, "host");
    const char *sysfsdev = subopts_get(opts, "sysfsdev");
    PciRomOptions rom;

    *sysfs_path = NULL;
    *o = (VfioPciOptions){ .id = subopts_get(opts, "id"),
                           .failover_pair_id = subopts_get(opts, "failover_pair_id") };
    if (!pci_common_options(opts, ctx, &o->devfn, bootindex, errp) ||
        !pci_rom_options(opts, &rom, errp) || !pci_check_unused(opts, ctx, errp)) {
        return false;
    }
    o->romfile = rom.romfile;
    o->rombar = rom.rombar;
    /* the host device first, as QEMU's realize checks it */
    if (sysfsdev) {
        if (!g_file_test(sysfsdev, G_FILE_TEST_EXISTS)) {
            error_setg(errp, "vfio %s: no such host device: %s", sysfsdev,
                       g_strerror(ENOENT));
            return false;
        }
        *sysfs_path = g_strdup(sysfsdev);
    } else if (!host) {
        error_setg(errp, "No provided host device");
        return false;
    } else if (!(*sysfs_path = vfio_sysfs_path(host, errp))) {
        return false;
    }
    if (o->failover_pair_id && !o->id) {
        error_setg(errp, "Device with failover_pair_id needs to have id");
        g_clear_pointer(sysfs_path, g_free);
        return false;
    }
    return true;
}

static bool vfio_pci_check(SubOpts *opts, const PciCreateContext *ctx, GError **errp)
{
    VfioPciOptions o;
    char *path;
    int bootindex;
    bool ok = vfio_pci_parse(opts, ctx, &o, &path, &bootindex, errp);

    g_free(path);
    return ok;
}

static PciDevice *vfio_pci_from_opts(PciBus *bus, SubOpts *opts,
                                     const PciCreateContext *ctx, GError **errp)
{
    VfioPciOptions o;
    VfioDevice *vdev;
    PciDevice *dev;
    char *path;
    int bootindex;

    if (!vfio_pci_parse(opts, ctx, &o, &path, &bootindex, errp)) {
        return NULL;
    }
    if (!pci_bus_vfio(bus)) {
        error_setg(errp, "vfio-pci: this machine has no VFIO context");
        g_free(path);
        return NULL;
    }
    pci_bus_slow_begin(bus); /* the guest runs on while its RAM is pinned */
    vdev = vfio_device_open(pci_bus_vfio(bus), path, errp);
    pci_bus_slow_end(bus);
    g_free(path);
    dev = vdev ? vfio_pci_realize(bus, vdev, &o, errp) : NULL;
    if (dev) {
        dev->bootindex = bootindex;
    }
    return dev;
}

typedef bool (*PciCheckFn)(SubOpts *opts, const PciCreateContext *ctx, GError **errp);

static const struct {
    const char *name;
    const char *alias; /* QEMU's short spelling, or NULL */
    const char *desc;
    PciCheckFn check; /* the options alone, before the VM exists */
    PciCreateFn create;
} pci_drivers[] = {
    { "virtio-blk-pci", "virtio-blk", "Virtio block device (modern)",
      virtio_blk_pci_check, virtio_blk_pci_from_opts },
    { "virtio-net-pci", "virtio-net", "Virtio network device (modern)",
      virtio_net_pci_check, virtio_net_pci_from_opts },
    { "vfio-pci", NULL, "VFIO-based PCI device assignment", vfio_pci_check,
      vfio_pci_from_opts },
};

/* The table entry for driver (its name or its alias), or -1. */
static int pci_driver_find(const char *driver)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pci_drivers); i++) {
        if (strcmp(pci_drivers[i].name, driver) == 0 ||
            (pci_drivers[i].alias && strcmp(pci_drivers[i].alias, driver) == 0)) {
            return i;
        }
    }
    return -1;
}

bool pci_driver_exists(const char *driver)
{
    return pci_driver_find(driver) >= 0;
}

char *pci_driver_list(void)
{
    GString *out = g_string_new(NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(pci_drivers); i++) {
        g_string_append_printf(out, "name \"%s\", bus PCI", pci_drivers[i].name);
        if (pci_drivers[i].alias) {
            g_string_append_printf(out, ", alias \"%s\"", pci_drivers[i].alias);
        }
        g_string_append_printf(out, ", desc \"%s\"\n", pci_drivers[i].desc);
    }
    return g_string_free(out, FALSE);
}

bool pci_device_check(const char *driver, SubOpts *opts, PciDriveLookupFn lookup,
                      void *lookup_opaque, GError **errp)
{
    int i = pci_driver_find(driver);
    PciCreateContext ctx = { i >= 0 ? pci_drivers[i].name : driver, lookup,
                             lookup_opaque };

    if (i < 0) {
        error_setg(errp, "'%s' is not a valid device model name", driver);
        return false;
    }
    return pci_drivers[i].check(opts, &ctx, errp);
}

PciDevice *pci_device_create(PciBus *bus, const char *driver, SubOpts *opts,
                             PciDriveLookupFn lookup, void *lookup_opaque, GError **errp)
{
    int i = pci_driver_find(driver);
    PciCreateContext ctx = { i >= 0 ? pci_drivers[i].name : driver, lookup,
                             lookup_opaque };
    const char *id = subopts_get(opts, "id");

    if (id && pci_find_device_by_id(bus, id)) {
        error_setg(errp, "Duplicate device ID '%s'", id);
        return NULL;
    }
    if (i < 0) {
        error_setg(errp, "'%s' is not a valid device model name", driver);
        return NULL;
    }
    return pci_drivers[i].create(bus, opts, &ctx, errp);
}
