/*
 * QMP query-pci (qapi/pci.json) in QEMU's shape, key order included, and
 * the text of HMP's "info pci" built from its result.  Main thread; the
 * query reads config space under the machine lock.
 */
#include <string.h>

#include "qapi-commands.h"
#include "hw/machine.h"
#include "hw/pci.h"

static const struct {
    uint16_t class_id;
    const char *desc;
} pci_class_names[] = {
    { 0x0100, "SCSI controller" },  { 0x0101, "IDE controller" },
    { 0x0200, "Ethernet controller" }, { 0x0300, "VGA controller" },
    { 0x0600, "Host bridge" },      { 0x0601, "ISA bridge" },
    { 0x0604, "PCI bridge" },       { 0x0680, "Bridge" },
};

static json_t *pci_class_info(uint16_t class_id)
{
    json_t *info = json_object();

    json_object_set_new(info, "class", json_integer(class_id));
    for (size_t i = 0; i < G_N_ELEMENTS(pci_class_names); i++) {
        if (pci_class_names[i].class_id == class_id) {
            json_object_set_new(info, "desc", json_string(pci_class_names[i].desc));
        }
    }
    return info;
}

static json_t *pci_region_info(PciDevice *dev, int bar)
{
    const PciBar *b = &dev->bars[bar];
    json_t *r = json_object();
    json_int_t addr = b->mapped_addr == PCI_BAR_UNMAPPED ? -1
                                                         : (json_int_t)b->mapped_addr;

    if (b->kind != PCI_BAR_IO) {
        json_object_set_new(r, "prefetch", json_boolean(b->prefetch));
        json_object_set_new(r, "mem_type_64", json_boolean(b->kind == PCI_BAR_MEM64));
    }
    json_object_set_new(r, "bar", json_integer(bar));
    json_object_set_new(r, "size", json_integer(b->size));
    json_object_set_new(r, "address", json_integer(addr));
    json_object_set_new(r, "type", json_string(b->kind == PCI_BAR_IO ? "io" : "memory"));
    return r;
}

static void pci_add_device_info(PciDevice *dev, void *opaque)
{
    json_t *list = opaque, *info = json_object(), *id = json_object();
    json_t *regions = json_array();
    const uint8_t *cfg = dev->config;
    uint8_t pin = cfg[PCI_INTERRUPT_PIN];

    json_object_set_new(info, "irq_pin", json_integer(pin));
    json_object_set_new(info, "bus", json_integer(0));
    json_object_set_new(info, "qdev_id", json_string(dev->qdev_id ? dev->qdev_id : ""));
    if (pin) {
        json_object_set_new(info, "irq", json_integer(cfg[PCI_INTERRUPT_LINE]));
    }
    json_object_set_new(info, "slot", json_integer(PCI_DEVFN_SLOT(dev->devfn)));
    json_object_set_new(info, "class_info",
                        pci_class_info(pci_get_word(cfg + PCI_CLASS_DEVICE)));
    json_object_set_new(id, "device", json_integer(pci_get_word(cfg + PCI_DEVICE_ID)));
    json_object_set_new(id, "subsystem-vendor",
                        json_integer(pci_get_word(cfg + PCI_SUBSYSTEM_VENDOR_ID)));
    json_object_set_new(id, "vendor", json_integer(pci_get_word(cfg + PCI_VENDOR_ID)));
    json_object_set_new(id, "subsystem",
                        json_integer(pci_get_word(cfg + PCI_SUBSYSTEM_ID)));
    json_object_set_new(info, "id", id);
    json_object_set_new(info, "function", json_integer(PCI_DEVFN_FUNC(dev->devfn)));
    for (int bar = 0; bar < PCI_BAR_COUNT; bar++) {
        if (dev->bars[bar].kind != PCI_BAR_NONE) {
            json_array_append_new(regions, pci_region_info(dev, bar));
        }
    }
    json_object_set_new(info, "regions", regions);
    json_array_append_new(list, info);
}

json_t *qmp_query_pci(QmpContext *ctx, json_t *args, GError **errp)
{
    Machine *m = ctx->machine;
    json_t *devices = json_array();

    machine_lock(m);
    pci_foreach_device(m->pci, pci_add_device_info, devices);
    machine_unlock(m);
    return json_pack("[{s:i,s:o}]", "bus", 0, "devices", devices);
}

static json_int_t json_int_field(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static void pci_format_region(GString *out, json_t *r)
{
    json_int_t addr = json_int_field(r, "address"), size = json_int_field(r, "size");
    uint64_t end = (uint64_t)addr + (uint64_t)size - 1;

    if (strcmp(json_string_value(json_object_get(r, "type")), "io") == 0) {
        g_string_append_printf(out, "      BAR%" JSON_INTEGER_FORMAT ": I/O at 0x%04"
                               G_GINT64_MODIFIER "x [0x%04" G_GINT64_MODIFIER "x].\n",
                               json_int_field(r, "bar"), (uint64_t)addr, end);
        return;
    }
    g_string_append_printf(out, "      BAR%" JSON_INTEGER_FORMAT ": %d bit%s memory at "
                           "0x%08" G_GINT64_MODIFIER "x [0x%08" G_GINT64_MODIFIER "x].\n",
                           json_int_field(r, "bar"),
                           json_is_true(json_object_get(r, "mem_type_64")) ? 64 : 32,
                           json_is_true(json_object_get(r, "prefetch")) ? " prefetchable"
                                                                         : "",
                           (uint64_t)addr, end);
}

static void pci_format_device(GString *out, json_t *d)
{
    json_t *class_info = json_object_get(d, "class_info"), *id = json_object_get(d, "id");
    json_t *desc = json_object_get(class_info, "desc"), *r;
    size_t i;

    g_string_append_printf(out, "  Bus %2" JSON_INTEGER_FORMAT ", device %3"
                           JSON_INTEGER_FORMAT ", function %" JSON_INTEGER_FORMAT ":\n",
                           json_int_field(d, "bus"), json_int_field(d, "slot"),
                           json_int_field(d, "function"));
    if (desc) {
        g_string_append_printf(out, "    %s", json_string_value(desc));
    } else {
        g_string_append_printf(out, "    Class %04" JSON_INTEGER_FORMAT,
                               json_int_field(class_info, "class"));
    }
    g_string_append_printf(out, ": PCI device %04" G_GINT64_MODIFIER "x:%04"
                           G_GINT64_MODIFIER "x\n",
                           (uint64_t)json_int_field(id, "vendor"),
                           (uint64_t)json_int_field(id, "device"));
    g_string_append_printf(out, "      PCI subsystem %04" G_GINT64_MODIFIER "x:%04"
                           G_GINT64_MODIFIER "x\n",
                           (uint64_t)json_int_field(id, "subsystem-vendor"),
                           (uint64_t)json_int_field(id, "subsystem"));
    if (json_int_field(d, "irq_pin")) {
        g_string_append_printf(out, "      IRQ %" JSON_INTEGER_FORMAT ", pin %c\n",
                               json_int_field(d, "irq"),
                               (char)('A' + json_int_field(d, "irq_pin") - 1));
    }
    json_array_foreach(json_object_get(d, "regions"), i, r) {
        pci_format_region(out, r);
    }
    g_string_append_printf(out, "      id \"%s\"\n",
                           json_string_value(json_object_get(d, "qdev_id")));
}

char *pci_format_info(json_t *query_pci_result)
{
    GString *out = g_string_new(NULL);
    json_t *bus, *dev;
    size_t i, j;

    json_array_foreach(query_pci_result, i, bus) {
        json_array_foreach(json_object_get(bus, "devices"), j, dev) {
            pci_format_device(out, dev);
        }
    }
    return g_string_free(out, FALSE);
}
