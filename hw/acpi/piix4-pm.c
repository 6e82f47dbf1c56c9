/*
 * The PIIX4 power-management function (include/hw/acpi/piix4-pm.h): PM1
 * event/control, the PM timer, APM control, GPE0, the SCI and S5.  Every
 * register is modelled as a little-endian byte image so that any access
 * width or alignment a guest uses reads and writes the same bits; bits the
 * function does not have read 0.  Machine lock held throughout.
 */
#include <string.h>
#include <time.h>

#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/piix4-pm.h"
#include "hw/state-blob.h"
#include "util/error.h"

#define PM_BLOCK_LEN  64
#define PM_REG_STS    0
#define PM_REG_EN     2
#define PM_REG_CNT    4
#define PM_REG_TMR    8
#define PM_TIMER_HZ   3579545ULL
#define PM_TIMER_MASK 0xffffffu

#define PM1_STS_BITS                                                                     \
    (PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_RTC_STS | PM1_WAK_STS)
#define PM1_EN_BITS  (PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_RTC_STS)
#define PM1_CNT_BITS (PM1_SCI_EN | 0x6u | PM1_SLP_TYP_MASK) /* + BM_RLD, GBL_RLS */

/* PIIX4 function 3 config registers (82371AB datasheet). */
#define PIIX4_PMBA                0x40 /* PM base address, bit 0 reads 1 (I/O) */
#define PIIX4_DEVACTB             0x58 /* 0x5b bit 1: APMC_EN, "SMM already set up" */
#define PIIX4_PMREGMISC           0x80 /* bit 0: PM block decoded */
#define PIIX4_PM_REVISION         0x03
#define PCI_CLASS_BRIDGE_OTHER_ID 0x068000

#define APM_PORT               0xb2 /* 0xb2 control, 0xb3 status */
#define GPE0_BYTES             2    /* status bytes, then as many enable bytes */
#define PIIX4_PM_STATE_VERSION 2    /* 2: the PM timer's clock */

struct Piix4Pm {
    Piix4PmConfig cfg;
    PciDevice *dev;
    uint16_t block_base; /* where the PM block is registered, 0: nowhere */
    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint8_t apm_cnt, apm_sts;
    uint8_t gpe_sts[GPE0_BYTES], gpe_en[GPE0_BYTES];
    uint64_t tmr_overflow_ns; /* when TMR_STS next becomes set */
    /* The VM's clock, which the PM timer counts (QEMU's virtual clock): it
     * stands still while the VM is stopped and migrates with the VM. */
    bool clock_running;
    uint64_t clock_stopped_ns; /* its value while stopped */
    int64_t clock_offset_ns;   /* host monotonic minus it, while running */
};

static uint64_t host_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t pm_clock_ns(const Piix4Pm *pm)
{
    return pm->clock_running ? host_now_ns() - pm->clock_offset_ns : pm->clock_stopped_ns;
}

static uint32_t pm_timer_ticks(uint64_t ns)
{
    return (uint32_t)((unsigned __int128)ns * PM_TIMER_HZ / 1000000000ULL);
}

/* The next time bit 23 of the counter flips (TMR_STS, 4.8.3.3). */
static void pm_timer_arm(Piix4Pm *pm, uint64_t now)
{
    uint64_t ticks = (unsigned __int128)now * PM_TIMER_HZ / 1000000000ULL;
    uint64_t next = (ticks | (PM_TIMER_MASK >> 1)) + 1;

    pm->tmr_overflow_ns = (unsigned __int128)next * 1000000000ULL / PM_TIMER_HZ + 1;
}

static uint16_t pm1_status(Piix4Pm *pm)
{
    if (pm_clock_ns(pm) >= pm->tmr_overflow_ns) {
        pm->pm1_sts |= PM1_TMR_STS;
    }
    return pm->pm1_sts;
}

static void pm_update_sci(Piix4Pm *pm)
{
    bool pm1 = pm->pm1_sts & pm->pm1_en & PM1_EN_BITS;
    bool gpe = (pm->gpe_sts[0] & pm->gpe_en[0]) || (pm->gpe_sts[1] & pm->gpe_en[1]);

    irq_set_level(&pm->cfg.sci, pm1 || gpe);
}

/* A write of SLP_EN: SLP_TYP 0 is soft off (the tables' \_S5). */
static void pm1_control_write(Piix4Pm *pm, uint16_t val)
{
    pm->pm1_cnt = val & PM1_CNT_BITS;
    if ((val & PM1_SLP_EN) && !(val & PM1_SLP_TYP_MASK) && pm->cfg.soft_off) {
        pm->cfg.soft_off(pm->cfg.opaque);
    }
}

/* Bytes [offset, offset + len) of a register image of `size` bytes. */
static bool overlaps(uint64_t offset, unsigned len, unsigned reg, unsigned size)
{
    return offset < reg + size && offset + len > reg;
}

/* The bytes of a write that land in a 16-bit register, merged into old. */
static uint16_t merge16(uint16_t old, unsigned reg, uint64_t offset, const uint8_t *data,
                        unsigned len, uint16_t *written)
{
    uint16_t val = old;

    *written = 0;
    for (unsigned i = 0; i < len; i++) {
        uint64_t at = offset + i;
        if (at >= reg && at < reg + 2u) {
            unsigned shift = 8 * (at - reg);
            val = (val & ~(0xffu << shift)) | (uint16_t)(data[i] << shift);
            *written |= 0xffu << shift;
        }
    }
    return val;
}

static void pm_block_read(Piix4Pm *pm, uint64_t offset, uint8_t *data, unsigned len)
{
    uint8_t image[PM_BLOCK_LEN] = { 0 };
    uint32_t tmr = pm_timer_ticks(pm_clock_ns(pm)) & PM_TIMER_MASK;
    uint16_t sts = pm1_status(pm);

    image[PM_REG_STS] = sts;
    image[PM_REG_STS + 1] = sts >> 8;
    image[PM_REG_EN] = pm->pm1_en;
    image[PM_REG_EN + 1] = pm->pm1_en >> 8;
    image[PM_REG_CNT] = pm->pm1_cnt;
    image[PM_REG_CNT + 1] = pm->pm1_cnt >> 8;
    for (unsigned i = 0; i < 4; i++) {
        image[PM_REG_TMR + i] = tmr >> (8 * i);
    }
    for (unsigned i = 0; i < len; i++) {
        data[i] = offset + i < PM_BLOCK_LEN ? image[offset + i] : 0xff;
    }
}

static void pm_block_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                        bool is_write)
{
    Piix4Pm *pm = opaque;
    uint16_t mask, val;

    if (!is_write) {
        pm_block_read(pm, offset, data, len);
        return;
    }
    if (overlaps(offset, len, PM_REG_STS, 2)) {
        /* write 1 to clear; bytes not written clear nothing */
        val = merge16(0, PM_REG_STS, offset, data, len, &mask) & mask;
        if ((val & PM1_TMR_STS) && (pm1_status(pm) & PM1_TMR_STS)) {
            pm_timer_arm(pm, pm_clock_ns(pm));
        }
        pm->pm1_sts &= ~val;
    }
    if (overlaps(offset, len, PM_REG_EN, 2)) {
        pm->pm1_en = merge16(pm->pm1_en, PM_REG_EN, offset, data, len, &mask) &
                     PM1_EN_BITS;
    }
    pm_update_sci(pm);
    if (overlaps(offset, len, PM_REG_CNT, 2)) {
        pm1_control_write(pm, merge16(pm->pm1_cnt, PM_REG_CNT, offset, data, len, &mask));
    }
}

static void pm_block_map(Piix4Pm *pm)
{
    const uint8_t *conf = pm->dev->config;
    uint16_t base = pci_get_long(conf + PIIX4_PMBA) & 0xffc0;
    bool on = (conf[PIIX4_PMREGMISC] & 1) && base;

    if (pm->block_base && (!on || base != pm->block_base)) {
        bus_unregister(pm->cfg.io_bus, pm->block_base);
        pm->block_base = 0;
    }
    if (on && !pm->block_base) {
        GError *err = NULL;

        /* a base on top of another device's ports stays off, as a clash */
        if (bus_register(pm->cfg.io_bus, base, PM_BLOCK_LEN, pm_block_io, pm, "piix4-pm",
                         &err)) {
            pm->block_base = base;
        } else {
            g_error_free(err);
        }
    }
}

/* 0xB2: ACPI enable/disable (the FADT's SMI_CMD values); 0xB3 scratch. */
static void apm_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                   bool is_write)
{
    Piix4Pm *pm = opaque;

    for (unsigned i = 0; i < len; i++) {
        uint64_t at = offset + i;
        if (!is_write) {
            data[i] = at == 0 ? pm->apm_cnt : at == 1 ? pm->apm_sts : 0xff;
        } else if (at == 0) {
            pm->apm_cnt = data[i];
            if (data[i] == ACPI_ENABLE_VALUE) {
                pm->pm1_cnt |= PM1_SCI_EN;
            } else if (data[i] == ACPI_DISABLE_VALUE) {
                pm->pm1_cnt &= ~PM1_SCI_EN;
            }
        } else if (at == 1) {
            pm->apm_sts = data[i];
        }
    }
}

/* GPE0: status bytes (write 1 to clear), then enable bytes. */
static void gpe_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                   bool is_write)
{
    Piix4Pm *pm = opaque;

    for (unsigned i = 0; i < len; i++) {
        uint64_t at = offset + i;
        uint8_t *reg = at < GPE0_BYTES       ? &pm->gpe_sts[at]
                       : at < 2 * GPE0_BYTES ? &pm->gpe_en[at - GPE0_BYTES]
                                             : NULL;
        if (!is_write) {
            data[i] = reg ? *reg : 0xff;
        } else if (reg && at < GPE0_BYTES) {
            *reg &= ~data[i];
        } else if (reg) {
            *reg = data[i];
        }
    }
    if (is_write) {
        pm_update_sci(pm);
    }
}

static void piix4_pm_config_write(PciDevice *dev, unsigned offset, unsigned len,
                                  uint32_t val)
{
    if (overlaps(offset, len, PIIX4_PMBA, 4) ||
        overlaps(offset, len, PIIX4_PMREGMISC, 1)) {
        pm_block_map(dev->opaque);
    }
}

/* Power-on state; config space is already back (pci_device_reset). */
static void piix4_pm_reset(PciDevice *dev)
{
    Piix4Pm *pm = dev->opaque;

    pm->pm1_sts = pm->pm1_en = pm->pm1_cnt = 0;
    pm->apm_cnt = pm->apm_sts = 0;
    memset(pm->gpe_sts, 0, sizeof(pm->gpe_sts));
    memset(pm->gpe_en, 0, sizeof(pm->gpe_en));
    pm->tmr_overflow_ns = 0; /* TMR_STS reads 1 until cleared, as on QEMU */
    if (pm->cfg.pm_block_at_reset) {
        pci_set_long(dev->config + PIIX4_PMBA, ACPI_PM_BASE | 1);
        dev->config[PIIX4_PMREGMISC] = 1;
        dev->config[PCI_INTERRUPT_LINE] = ACPI_SCI_IRQ;
    }
    pm_block_map(pm);
    pm_update_sci(pm);
}

/* Take back a range this function registered (and only such a range). */
static void unregister_own(Piix4Pm *pm, uint64_t base)
{
    const BusRange *r = bus_find(pm->cfg.io_bus, base);

    if (r && r->base == base && r->opaque == pm) {
        bus_unregister(pm->cfg.io_bus, base);
    }
}

static void piix4_pm_destroy(PciDevice *dev)
{
    Piix4Pm *pm = dev->opaque;

    if (pm->block_base) {
        bus_unregister(pm->cfg.io_bus, pm->block_base);
    }
    unregister_own(pm, APM_PORT);
    unregister_own(pm, ACPI_GPE0_BLK);
    device_state_unregister(pm->cfg.states, pm);
    g_free(pm);
}

/* The VM stops: so does the PM timer. */
static void piix4_pm_pause(PciDevice *dev)
{
    Piix4Pm *pm = dev->opaque;

    pm->clock_stopped_ns = pm_clock_ns(pm);
    pm->clock_running = false;
}

static void piix4_pm_resume(PciDevice *dev)
{
    Piix4Pm *pm = dev->opaque;

    if (!pm->clock_running) {
        pm->clock_offset_ns = (int64_t)(host_now_ns() - pm->clock_stopped_ns);
        pm->clock_running = true;
    }
}

static const PciDeviceOps piix4_pm_ops = {
    .config_write = piix4_pm_config_write,
    .reset = piix4_pm_reset,
    .pause = piix4_pm_pause,
    .resume = piix4_pm_resume,
    .destroy = piix4_pm_destroy,
};

static bool piix4_pm_save(void *opaque, GByteArray *out, GError **errp)
{
    Piix4Pm *pm = opaque;

    pci_device_save(pm->dev, out);
    blob_put_u16(out, pm1_status(pm));
    blob_put_u16(out, pm->pm1_en);
    blob_put_u16(out, pm->pm1_cnt);
    blob_put_u8(out, pm->apm_cnt);
    blob_put_u8(out, pm->apm_sts);
    blob_put_bytes(out, pm->gpe_sts, GPE0_BYTES);
    blob_put_bytes(out, pm->gpe_en, GPE0_BYTES);
    blob_put_u64(out, pm_clock_ns(pm));
    return true;
}

static bool piix4_pm_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                          GError **errp)
{
    Piix4Pm *pm = opaque;
    PciDeviceSnapshot snap;
    uint8_t gpe[2 * GPE0_BYTES];
    uint16_t sts, en, cnt;
    uint8_t apm_cnt, apm_sts;
    uint64_t clock_ns = 0;
    bool have_gpe;
    StateReader r;

    if (version != 1 && version != PIIX4_PM_STATE_VERSION) {
        error_setg(errp, "piix4_pm: unsupported state version %u", version);
        return false;
    }
    state_reader_init(&r, buf, len);
    if (!pci_device_parse(pm->dev, &r, &snap, errp)) {
        return false;
    }
    sts = blob_get_u16(&r);
    en = blob_get_u16(&r);
    cnt = blob_get_u16(&r);
    apm_cnt = blob_get_u8(&r);
    apm_sts = blob_get_u8(&r);
    have_gpe = blob_get_bytes(&r, gpe, sizeof(gpe));
    if (version >= 2) {
        clock_ns = blob_get_u64(&r);
    }
    if (!have_gpe || !blob_done(&r)) {
        error_setg(errp, "piix4_pm: state of %zu bytes is malformed", len);
        pci_device_snapshot_clear(&snap);
        return false;
    }
    pci_device_apply(pm->dev, &snap);
    pci_device_snapshot_clear(&snap);
    pm->pm1_sts = sts & PM1_STS_BITS;
    pm->pm1_en = en & PM1_EN_BITS;
    pm->pm1_cnt = cnt & PM1_CNT_BITS;
    pm->apm_cnt = apm_cnt;
    pm->apm_sts = apm_sts;
    memcpy(pm->gpe_sts, gpe, GPE0_BYTES);
    memcpy(pm->gpe_en, gpe + GPE0_BYTES, GPE0_BYTES);
    if (version >= 2) {
        /* the timer goes on from the source's count */
        pm->clock_stopped_ns = clock_ns;
        pm->clock_offset_ns = (int64_t)(host_now_ns() - clock_ns);
    }
    pm_timer_arm(pm, pm_clock_ns(pm));
    pm_block_map(pm);
    pm_update_sci(pm);
    return true;
}

static const DeviceStateOps piix4_pm_state_ops = {
    .save = piix4_pm_save,
    .load = piix4_pm_load,
};

Piix4Pm *piix4_pm_new(const Piix4PmConfig *cfg, GError **errp)
{
    Piix4Pm *pm = g_new0(Piix4Pm, 1);
    PciDevice *dev = pci_device_new("PIIX4_PM", PCI_VENDOR_INTEL, PCI_DEVICE_PIIX4_PM,
                                    PCI_CLASS_BRIDGE_OTHER_ID, PIIX4_PM_REVISION);

    pm->cfg = *cfg;
    pm->dev = dev;
    dev->opaque = pm;
    dev->ops = &piix4_pm_ops;
    pci_device_set_intx_pin(dev, 1);
    pci_set_long(dev->config + PIIX4_PMBA, 1);
    pci_set_long(dev->wmask + PIIX4_PMBA, 0xffc0);
    dev->wmask[PIIX4_PMREGMISC] = 1;
    /* no SMM under KVM: tell SeaBIOS its SMM set-up is done (as QEMU) */
    dev->config[PIIX4_DEVACTB + 3] = 0x02;
    if (!pci_device_realize(cfg->pci, dev, PIIX4_PM_DEVFN, errp)) {
        pci_device_free(dev); /* and pm, through destroy */
        return NULL;
    }
    /* from here the bus owns dev, and pm goes with it (destroy) */
    if (!bus_register(cfg->io_bus, APM_PORT, 2, apm_io, pm, "apm", errp) ||
        !bus_register(cfg->io_bus, ACPI_GPE0_BLK, ACPI_GPE0_LEN, gpe_io, pm, "gpe0",
                      errp) ||
        !device_state_register(cfg->states, "piix4_pm", PIIX4_PM_STATE_VERSION,
                               &piix4_pm_state_ops, pm, errp)) {
        return NULL;
    }
    piix4_pm_reset(dev);
    return pm;
}

void piix4_pm_power_button(Piix4Pm *pm)
{
    /* as QEMU: a press the guest has not enabled leaves no status */
    if (pm->pm1_en & PM1_PWRBTN_STS) {
        pm->pm1_sts |= PM1_PWRBTN_STS;
        pm_update_sci(pm);
    }
}

void piix4_pm_gpe_raise(Piix4Pm *pm, unsigned bit)
{
    if (bit < 8 * GPE0_BYTES) {
        pm->gpe_sts[bit / 8] |= 1u << (bit % 8);
        pm_update_sci(pm);
    }
}

uint16_t piix4_pm_block_base(const Piix4Pm *pm)
{
    return pm->block_base;
}
