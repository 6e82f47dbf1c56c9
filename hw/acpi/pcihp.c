/*
 * The ACPI PCI hot-plug register block (include/hw/acpi/pcihp.h), with
 * QEMU 7.2's semantics: only aligned dword accesses do anything (others
 * read 0 and write nothing, as QEMU drops them), bus select values other
 * than 0 name no bus, and an eject of a slot with no removable device
 * changes nothing but the slot's pending bits.  Machine lock held.
 */
#include <string.h>

#include "hw/acpi/pcihp.h"
#include "hw/state-blob.h"
#include "util/error.h"

#define REG_UP              0x00
#define REG_DOWN            0x04
#define REG_EJ              0x08
#define REG_RMV             0x0c
#define REG_SEL             0x10
#define REG_AIDX            0x14
#define MAX_BUS_SELECT      256 /* QEMU's ACPI_PCIHP_MAX_HOTPLUG_BUS */
#define PCIHP_STATE_VERSION 1

struct AcpiPciHp {
    AcpiPciHpConfig cfg;
    uint32_t up, down; /* bus 0's slots */
    uint32_t sel;
};

static void eject_slot(AcpiPciHp *hp, uint32_t slots)
{
    unsigned slot;

    if (!slots) {
        return;
    }
    slot = __builtin_ctz(slots);
    hp->down &= ~(1u << slot);
    hp->up &= ~(1u << slot);
    if (!(hp->cfg.fixed_slots & (1u << slot)) && hp->cfg.eject) {
        hp->cfg.eject(hp->cfg.opaque, slot);
    }
}

static uint32_t pcihp_read(AcpiPciHp *hp, uint64_t offset)
{
    uint32_t val = 0;

    if (hp->sel >= MAX_BUS_SELECT) {
        return 0;
    }
    switch (offset) {
    case REG_UP:
        if (hp->sel == 0) {
            val = hp->up;
            hp->up = 0;
        }
        break;
    case REG_DOWN:
        val = hp->sel == 0 ? hp->down : 0;
        break;
    case REG_RMV:
        val = hp->sel == 0 ? ~hp->cfg.fixed_slots : ~0u;
        break;
    case REG_SEL:
        val = hp->sel;
        break;
    default: /* EJ: no features; AIDX: no acpi-index */
        break;
    }
    return val;
}

static void pcihp_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                     bool is_write)
{
    AcpiPciHp *hp = opaque;
    uint32_t val;

    if (len != 4 || (offset & 3) || offset >= ACPI_PCIHP_IO_LEN) {
        if (!is_write) {
            memset(data, 0, len);
        }
        return;
    }
    if (!is_write) {
        val = pcihp_read(hp, offset);
        for (unsigned i = 0; i < 4; i++) {
            data[i] = val >> (8 * i);
        }
        return;
    }
    val = data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
    if (offset == REG_EJ && hp->sel == 0) {
        eject_slot(hp, val);
    } else if (offset == REG_SEL) {
        hp->sel = val;
    }
}

static bool pcihp_save(void *opaque, GByteArray *out, GError **errp)
{
    AcpiPciHp *hp = opaque;

    blob_put_u32(out, hp->up);
    blob_put_u32(out, hp->down);
    blob_put_u32(out, hp->sel);
    return true;
}

static bool pcihp_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                       GError **errp)
{
    AcpiPciHp *hp = opaque;
    uint32_t up, down, sel;
    StateReader r;

    if (version != PCIHP_STATE_VERSION) {
        error_setg(errp, "acpi-pcihp: unsupported state version %u", version);
        return false;
    }
    state_reader_init(&r, buf, len);
    up = blob_get_u32(&r);
    down = blob_get_u32(&r);
    sel = blob_get_u32(&r);
    if (!blob_done(&r)) {
        error_setg(errp, "acpi-pcihp: state of %zu bytes is malformed", len);
        return false;
    }
    hp->up = up & ~hp->cfg.fixed_slots;
    hp->down = down & ~hp->cfg.fixed_slots;
    hp->sel = sel;
    return true;
}

static const DeviceStateOps pcihp_state_ops = {
    .save = pcihp_save,
    .load = pcihp_load,
};

AcpiPciHp *acpi_pcihp_new(const AcpiPciHpConfig *cfg, GError **errp)
{
    AcpiPciHp *hp = g_new0(AcpiPciHp, 1);

    hp->cfg = *cfg;
    if (!bus_register(cfg->io_bus, cfg->base, ACPI_PCIHP_IO_LEN, pcihp_io, hp,
                      "acpi-pci-hotplug", errp)) {
        g_free(hp);
        return NULL;
    }
    if (!device_state_register(cfg->states, "acpi-pcihp", PCIHP_STATE_VERSION,
                               &pcihp_state_ops, hp, errp)) {
        bus_unregister(cfg->io_bus, cfg->base);
        g_free(hp);
        return NULL;
    }
    return hp;
}

void acpi_pcihp_free(AcpiPciHp *hp)
{
    if (!hp) {
        return;
    }
    bus_unregister(hp->cfg.io_bus, hp->cfg.base);
    device_state_unregister(hp->cfg.states, hp);
    g_free(hp);
}

void acpi_pcihp_reset(AcpiPciHp *hp)
{
    while (hp->down) {
        eject_slot(hp, hp->down);
    }
}

void acpi_pcihp_plug(AcpiPciHp *hp, unsigned slot)
{
    if (slot < 32) {
        hp->up |= 1u << slot;
        hp->cfg.raise_gpe(hp->cfg.opaque);
    }
}

void acpi_pcihp_unplug_request(AcpiPciHp *hp, unsigned slot)
{
    if (slot < 32) {
        hp->down |= 1u << slot;
        hp->cfg.raise_gpe(hp->cfg.opaque);
    }
}

void acpi_pcihp_unplug_withdraw(AcpiPciHp *hp, unsigned slot)
{
    if (slot < 32) {
        hp->down &= ~(1u << slot);
    }
}

uint32_t acpi_pcihp_pending(const AcpiPciHp *hp)
{
    return hp->down;
}
