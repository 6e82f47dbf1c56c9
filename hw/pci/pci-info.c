/*
 * What query-pci and HMP's "info pci" show, as typed records: every
 * function on bus 0 with its ids, class, interrupt pin and BARs.  The
 * monitor turns them into JSON and text.  Main thread; config space is
 * read under the machine lock.
 */
#include "hw/pci.h"

static const struct {
    uint16_t class_id;
    const char *desc;
} pci_class_names[] = {
    { 0x0100, "SCSI controller" },     { 0x0101, "IDE controller" },
    { 0x0200, "Ethernet controller" }, { 0x0300, "VGA controller" },
    { 0x0600, "Host bridge" },         { 0x0601, "ISA bridge" },
    { 0x0604, "PCI bridge" },          { 0x0680, "Bridge" },
};

const char *pci_class_description(uint16_t class_id)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pci_class_names); i++) {
        if (pci_class_names[i].class_id == class_id) {
            return pci_class_names[i].desc;
        }
    }
    return NULL;
}

static void pci_add_device_info(PciDevice *dev, void *opaque)
{
    GArray *list = opaque;
    const uint8_t *cfg = dev->config;
    PciDeviceInfo info = {
        .bus = 0,
        .slot = PCI_DEVFN_SLOT(dev->devfn),
        .function = PCI_DEVFN_FUNC(dev->devfn),
        .class_id = pci_get_word(cfg + PCI_CLASS_DEVICE),
        .vendor_id = pci_get_word(cfg + PCI_VENDOR_ID),
        .device_id = pci_get_word(cfg + PCI_DEVICE_ID),
        .subsystem_vendor_id = pci_get_word(cfg + PCI_SUBSYSTEM_VENDOR_ID),
        .subsystem_id = pci_get_word(cfg + PCI_SUBSYSTEM_ID),
        .irq_pin = cfg[PCI_INTERRUPT_PIN],
        .irq_line = cfg[PCI_INTERRUPT_LINE],
        .qdev_id = g_strdup(dev->qdev_id ? dev->qdev_id : ""),
        .model = g_strdup(dev->name),
    };

    info.class_desc = pci_class_description(info.class_id);
    for (int bar = 0; bar < PCI_BAR_COUNT; bar++) {
        const PciBar *b = &dev->bars[bar];
        if (b->kind != PCI_BAR_NONE) {
            info.regions[info.nr_regions++] = (PciRegionInfo){
                .bar = bar,
                .kind = b->kind,
                .prefetch = b->prefetch,
                .size = b->size,
                .address = b->mapped_addr,
            };
        }
    }
    if (dev->rom.kind != PCI_BAR_NONE) {
        /* QEMU's bar 6; a disabled ROM shows no address (-1), as there */
        info.regions[info.nr_regions++] = (PciRegionInfo){
            .bar = PCI_ROM_BAR,
            .kind = PCI_BAR_MEM32,
            .size = dev->rom.size,
            .address = dev->rom.mapped_addr,
        };
    }
    g_array_append_val(list, info);
}

static void pci_device_info_clear(gpointer p)
{
    g_free(((PciDeviceInfo *)p)->qdev_id);
    g_free(((PciDeviceInfo *)p)->model);
}

GArray *pci_query(PciBus *bus)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(PciDeviceInfo));

    g_array_set_clear_func(list, pci_device_info_clear);
    pci_foreach_device(bus, pci_add_device_info, list);
    return list;
}
