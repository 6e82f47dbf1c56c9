/*
 * The pc board's legacy ports: POST code port 0x80, the i8042 keyboard
 * controller (ports 0x60/0x64, hw/i386/i8042.c), System Control Port A
 * (0x92), the COM ports built from -serial, and the PCI bus wired to the
 * machine.  Handlers run with the machine lock held.
 */
#include <string.h>

#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/pcihp.h"
#include "hw/acpi/piix4-pm.h"
#include "hw/devices.h"
#include "hw/i386/i8042.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/serial.h"
#include "hw/vfio.h"
#include "util/error.h"

typedef struct PcBoard {
    Machine *machine;
    Rtc *rtc;
    I8042 *i8042;
    Piix4Pm *pm;      /* owned by the PCI bus, NULL before pc_pm_init */
    AcpiPciHp *pcihp; /* the hot-plug registers at 0xAE00 */
    uint32_t ejected; /* [atomic] slots the guest ejected, for the main loop */
    uint8_t post_code;
    uint8_t port92;
} PcBoard;

static void post_port_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                         bool is_write)
{
    PcBoard *b = opaque;

    if (is_write) {
        b->post_code = data[0];
    } else {
        memset(data, 0xff, len);
    }
}

static void pc_i8042_reset_line(void *opaque)
{
    PcBoard *b = opaque;

    machine_request_reset_why(b->machine, SHUTDOWN_CAUSE_GUEST_RESET,
                              "i8042 reset line (port 0x64: pulse 0xfe or output port)");
}

/* The PIIX3's reset control register asks for a reset. */
static void pc_pci_reset_request(void *opaque)
{
    machine_request_reset_why(opaque, SHUTDOWN_CAUSE_GUEST_RESET,
                              "PIIX3 reset control register (port 0xcf9)");
}

/* The dedicated pCPU of the vCPU with this APIC id: vfio-pci steers the
 * host IRQ of a vector the guest aimed at that vCPU there. */
static int pc_apic_pcpu(void *opaque, unsigned apic_id)
{
    Machine *m = opaque;

    for (unsigned i = 0; m->vcpus && i < m->nr_vcpus; i++) {
        if (m->vcpus[i] && m->vcpus[i]->apic_id == apic_id) {
            return osnet_vcpu_pcpu(&m->osnet, i);
        }
    }
    return -1;
}

bool pci_pc_init_with_ops(Machine *m, const PciKvmOps *ops, void *ops_opaque,
                          GError **errp)
{
    PciBusConfig cfg = {
        .io_bus = &m->io_bus,
        .mmio_bus = &m->mmio_bus,
        .mem = m->mem,
        .states = &m->device_states,
        .ram_below_4g = m->below_4g,
        .ram_above_4g = m->above_4g,
        .ops = ops,
        .ops_opaque = ops_opaque,
        .request_reset = pc_pci_reset_request,
        .reset_opaque = m,
        .netdevs = m->netdevs,
        .vfio = m->vfio,
        .apic_pcpu = pc_apic_pcpu,
        .apic_opaque = m,
    };

    m->pci = pci_pc_new(&cfg, errp);
    return m->pci != NULL;
}

/* Main loop: a vfio-pci's host device is let go (its close ran apart). */
static gboolean pc_vfio_released_idle(gpointer opaque)
{
    machine_devices_released(opaque);
    return G_SOURCE_REMOVE;
}

/* The close's own thread. */
static void pc_vfio_closed(void *opaque)
{
    g_idle_add(pc_vfio_released_idle, opaque);
}

bool pci_pc_init(Machine *m, GError **errp)
{
    /* guest RAM for passed-through devices' DMA; nothing opens before one */
    VfioRamRange ram[2] = {
        { 0, m->below_4g, m->ram },
        { HIGH_RAM_START, m->above_4g, m->ram + m->below_4g },
    };
    VfioContextConfig vfio = {
        .ram = ram,
        .nr_ram = m->above_4g ? 2 : 1,
        .kvm_group = kvm_vfio_group_fn,
        .kvm_opaque = &m->kvm,
        /* off the main loop: QMP, HMP and a migration go on meanwhile */
        .close_in_background = true,
        .closed = pc_vfio_closed,
        .closed_opaque = m,
    };

    m->vfio = vfio_context_new(&vfio);
    return pci_pc_init_with_ops(m, &pci_kvm_ops, &m->kvm, errp);
}

void pci_pc_cleanup(Machine *m)
{
    pci_pc_free(m->pci); /* vfio-pci devices close theirs */
    m->pci = NULL;
    vfio_context_free(m->vfio);
    m->vfio = NULL;
}

static void port92_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                      bool is_write)
{
    PcBoard *b = opaque;

    if (!is_write) {
        memset(data, 0, len);
        data[0] = b->port92;
        return;
    }
    if ((data[0] & 1) && !(b->port92 & 1)) {
        b->port92 = data[0] & ~1;
        machine_request_reset_why(b->machine, SHUTDOWN_CAUSE_GUEST_RESET,
                                  "fast reset (port 0x92 bit 0)");
        return;
    }
    b->port92 = data[0] & ~1;
}

static bool serial_state_save(void *opaque, GByteArray *out, GError **errp)
{
    return serial_save(opaque, out);
}

static bool serial_state_load(void *opaque, const uint8_t *buf, size_t len,
                              uint32_t version, GError **errp)
{
    /* the blob carries its own version byte, which serial_load checks */
    return serial_load(opaque, buf, len, errp);
}

static const DeviceStateOps serial_state_ops = {
    .save = serial_state_save,
    .load = serial_state_load,
};

/* The -serial list after QEMU's defaults: "none" entries skipped. */
static GPtrArray *serial_specs(const VmConfig *cfg)
{
    GPtrArray *specs = g_ptr_array_new();

    for (guint i = 0; i < cfg->serials->len; i++) {
        const char *spec = g_ptr_array_index(cfg->serials, i);
        if (strcmp(spec, "none") != 0) {
            g_ptr_array_add(specs, (gpointer)spec);
        }
    }
    if (cfg->serials->len == 0 && !cfg->nodefaults && cfg->nographic) {
        g_ptr_array_add(specs, (gpointer) "mon:stdio");
    }
    return specs;
}

bool pc_serial_prepare(Machine *m, GError **errp)
{
    GPtrArray *specs = serial_specs(m->cfg);
    bool ok = true;

    for (guint i = 0; i < specs->len && ok; i++) {
        const char *spec = g_ptr_array_index(specs, i);
        char *id = g_strdup_printf("serial%u", i);
        GError *err = NULL;

        m->serial_used[i] = true;
        if (strcmp(spec, "vc") != 0) {
            m->serial_chr[i] = chardev_new_from_legacy(m->chardevs, spec, id, &err);
        }
        if (err) {
            error_setg(errp, "-serial %s: %s", spec, err->message);
            g_error_free(err);
            ok = false;
        }
        g_free(id);
    }
    g_ptr_array_free(specs, TRUE);
    return ok && pc_isa_serial_prepare(m, errp);
}

/* The COM ports whose backends pc_serial_prepare made. */
static bool pc_serial_init(Machine *m, GError **errp)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(m->serial); i++) {
        char *id;
        IrqLine irq = { kvm_irq_line_set, &m->kvm, serial_isa_irq(i) };
        bool ok;

        if (!m->serial_used[i]) {
            continue;
        }
        id = g_strdup_printf("serial%u", i);
        m->serial[i] = serial_new(&m->io_bus, serial_isa_base(i), irq, m->serial_chr[i],
                                  &m->lock, errp);
        ok = m->serial[i] != NULL &&
             device_state_register(&m->device_states, id, 1, &serial_state_ops,
                                   m->serial[i], errp);
        g_free(id);
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool pc_board_init(Machine *m, GError **errp)
{
    PcBoard *b = g_new0(PcBoard, 1);

    b->machine = m;
    m->board = b;
    if (!bus_register(&m->io_bus, 0x80, 1, post_port_io, b, "post", errp) ||
        !bus_register(&m->io_bus, 0x92, 1, port92_io, b, "port92", errp)) {
        return false;
    }
    b->i8042 = i8042_new(&m->io_bus, &m->device_states, pc_i8042_reset_line, b, errp);
    if (!b->i8042) {
        return false;
    }
    b->rtc = rtc_new(&m->io_bus, &m->device_states,
                     &(RtcMachineInfo){ m->below_4g, m->above_4g, m->nr_vcpus }, errp);
    if (!b->rtc) {
        return false;
    }
    return pc_serial_init(m, errp);
}

/* The guest wrote SLP_EN with \_S5's type: soft off, as QEMU's pc. */
static void pc_soft_off(void *opaque)
{
    PcBoard *b = opaque;

    machine_request_shutdown_why(b->machine, SHUTDOWN_CAUSE_GUEST_SHUTDOWN,
                                 "ACPI soft off (PIIX4 PM SLP_EN, \\_S5)");
}

static void pc_hotplug_gpe(void *opaque)
{
    PcBoard *b = opaque;

    piix4_pm_gpe_raise(b->pm, ACPI_PCIHP_GPE);
}

/* Main loop: remove what the guest ejected (the devices layer does it). */
static gboolean pc_eject_idle(gpointer opaque)
{
    PcBoard *b = opaque;
    uint32_t slots = __atomic_exchange_n(&b->ejected, 0, __ATOMIC_SEQ_CST);

    for (unsigned slot = 0; slot < 32; slot++) {
        if (slots & (1u << slot)) {
            machine_devices_remove_slot(b->machine, slot);
        }
    }
    return G_SOURCE_REMOVE;
}

/* The guest wrote EJ (vCPU thread, machine lock held): device removal,
 * which waits for the device's I/O, happens on the main loop. */
static void pc_hotplug_eject(void *opaque, unsigned slot)
{
    PcBoard *b = opaque;

    __atomic_or_fetch(&b->ejected, 1u << slot, __ATOMIC_SEQ_CST);
    g_idle_add(pc_eject_idle, b);
}

bool pc_pm_init(Machine *m, GError **errp)
{
    PcBoard *b = m->board;
    Piix4PmConfig cfg = {
        .pci = m->pci,
        .io_bus = &m->io_bus,
        .sci = { kvm_irq_line_set, &m->kvm, ACPI_SCI_IRQ },
        .states = &m->device_states,
        .pm_block_at_reset = m->cfg->kernel != NULL, /* no firmware to place it */
        .soft_off = pc_soft_off,
        .opaque = b,
    };

    AcpiPciHpConfig hp = {
        .io_bus = &m->io_bus,
        .base = ACPI_PCIHP_BASE,
        .states = &m->device_states,
        .fixed_slots = 3, /* the host bridge; the PIIX functions */
        .raise_gpe = pc_hotplug_gpe,
        .eject = pc_hotplug_eject,
        .opaque = b,
    };

    b->pm = piix4_pm_new(&cfg, errp);
    if (!b->pm) {
        return false;
    }
    b->pcihp = acpi_pcihp_new(&hp, errp);
    return b->pcihp != NULL;
}

void pc_board_plug(Machine *m, unsigned slot)
{
    PcBoard *b = m->board;

    acpi_pcihp_plug(b->pcihp, slot);
}

void pc_board_unplug_request(Machine *m, unsigned slot)
{
    PcBoard *b = m->board;

    acpi_pcihp_unplug_request(b->pcihp, slot);
}

void pc_board_unplug_withdraw(Machine *m, unsigned slot)
{
    PcBoard *b = m->board;

    acpi_pcihp_unplug_withdraw(b->pcihp, slot);
}

bool pc_board_power_button(Machine *m)
{
    PcBoard *b = m->board;

    if (!b || !b->pm) {
        return false;
    }
    if (m->cfg->no_acpi) {
        return true; /* no ACPI: a guest has no power button to see, as QEMU */
    }
    piix4_pm_power_button(b->pm);
    return true;
}

void pc_board_reset(Machine *m)
{
    PcBoard *b = m->board;

    b->post_code = 0;
    if (b->pcihp) {
        acpi_pcihp_reset(b->pcihp); /* an unplug still pending happens now */
    }
    i8042_reset(b->i8042);
    b->port92 = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(m->serial); i++) {
        if (m->serial[i]) {
            serial_reset(m->serial[i]);
        }
    }
}

void pc_board_cleanup(Machine *m)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(m->serial); i++) {
        if (m->serial[i]) {
            serial_free(m->serial[i]);
            m->serial[i] = NULL;
        }
    }
    acpi_pcihp_free(((PcBoard *)m->board)->pcihp);
    rtc_free(((PcBoard *)m->board)->rtc);
    i8042_free(((PcBoard *)m->board)->i8042);
    g_free(m->board);
    m->board = NULL;
}
