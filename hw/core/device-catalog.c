/*
 * The QOM type catalogue (include/hw/device-catalog.h): what
 * qom-list-types and device-list-properties answer.  A device model's
 * properties here are the ones its -device parser (hw/pci/pci-registry.c)
 * reads, spelt and typed as QEMU 7.2 shows them.  Constant data.
 */
#include <string.h>

#include "hw/device-catalog.h"

#define PROP_END                                                                         \
    {                                                                                    \
        NULL, NULL, NULL, NULL                                                           \
    }

/* addr=, rombar= and romfile=, which every PCI model here takes */
static const QomPropertyInfo pci_device_props[] = {
    { "addr", "int32", "Slot and optional function number, example: 06.0 or 06", "-1" },
    { "rombar", "uint32", NULL, "1" },
    { "romfile", "str", NULL, NULL },
    PROP_END,
};

static const QomPropertyInfo virtio_pci_props[] = {
    { "disable-legacy", "OnOffAuto", "on/off/auto", "\"auto\"" },
    { "disable-modern", "bool", NULL, "false" },
    PROP_END,
};

static const QomPropertyInfo virtio_blk_pci_props[] = {
    { "drive", "str", "Node name or ID of a block device to use as a backend", NULL },
    { "serial", "str", NULL, NULL },
    { "num-queues", "uint16", NULL, "1" }, /* QEMU: 65535, one per vCPU */
    { "queue-size", "uint16", NULL, "256" },
    { "bootindex", "int32", NULL, NULL },
    PROP_END,
};

static const QomPropertyInfo virtio_net_pci_props[] = {
    { "mac", "str", "Ethernet 6-byte MAC Address, example: 52:54:00:12:34:56", NULL },
    { "netdev", "str", "ID of a netdev to use as a backend", NULL },
    { "failover", "bool", NULL, "false" },
    { "mq", "bool", "on/off", "false" },
    { "vectors", "uint32", NULL, "4294967295" },
    { "bootindex", "int32", NULL, NULL },
    PROP_END,
};

static const QomPropertyInfo vfio_pci_props[] = {
    { "host", "str", "Address (bus/device/function) of the host device, example: 04:10.0",
      NULL },
    { "sysfsdev", "str", NULL, NULL },
    { "failover_pair_id", "str", NULL, NULL },
    { "bootindex", "int32", NULL, NULL },
    PROP_END,
};

/* the board's 16550 UARTs (COM1-COM4), created by -serial */
static const QomPropertyInfo isa_serial_props[] = {
    { "chardev", "str", "ID of a chardev to use as a backend", NULL },
    { "index", "uint32", NULL, "4294967295" },
    PROP_END,
};

/*
 * Parents before children.  QEMU's pc-i440fx-4.2 is the board
 * hw/i386/pc.c builds (the PIIX3/PIIX4 devices, ACPI PCI hotplug, the
 * 4.2 defaults); no later version is claimed, since their devices differ.
 */
static const QomTypeInfo catalog[] = {
    { "object", NULL, true, NULL },
    { "machine", "object", true, NULL },
    { "x86-machine", "machine", true, NULL },
    { "generic-pc-machine", "x86-machine", true, NULL },
    { "pc-i440fx-4.2-machine", "generic-pc-machine", false, NULL },
    { "none-machine", "machine", false, NULL },
    { "device", "object", true, NULL },
    { "pci-device", "device", true, pci_device_props },
    { "virtio-pci", "pci-device", true, virtio_pci_props },
    { "virtio-blk-pci-base", "virtio-pci", true, NULL },
    { "virtio-blk-pci", "virtio-blk-pci-base", false, virtio_blk_pci_props },
    { "virtio-net-pci-base", "virtio-pci", true, NULL },
    { "virtio-net-pci", "virtio-net-pci-base", false, virtio_net_pci_props },
    { "vfio-pci", "pci-device", false, vfio_pci_props },
    { "isa-device", "device", true, NULL },
    { "isa-serial", "isa-device", false, isa_serial_props },
};

const QomTypeInfo *qom_types(size_t *count)
{
    *count = sizeof(catalog) / sizeof(catalog[0]);
    return catalog;
}

const QomTypeInfo *qom_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++) {
        if (strcmp(catalog[i].name, name) == 0) {
            return &catalog[i];
        }
    }
    return NULL;
}

bool qom_type_implements(const QomTypeInfo *type, const char *ancestor)
{
    while (type) {
        if (strcmp(type->name, ancestor) == 0) {
            return true;
        }
        type = type->parent ? qom_type_find(type->parent) : NULL;
    }
    return false;
}

size_t qom_type_properties(const QomTypeInfo *type, const QomPropertyInfo **out,
                           size_t max)
{
    size_t n = 0;

    for (; type; type = type->parent ? qom_type_find(type->parent) : NULL) {
        for (const QomPropertyInfo *p = type->props; p && p->name && n < max; p++) {
            out[n++] = p;
        }
    }
    return n;
}
