/*
 * Firmware boot with Debian's SeaBIOS: the BIOS image as a ROM ending at
 * 4 GiB, its last 128 KiB copied into the BIOS area below 1 MiB (where the
 * shadowed BIOS runs), and fw_cfg with what SeaBIOS reads.
 * Main thread, before the guest runs and at reset.
 */
#include <string.h>
#include <sys/mman.h>

#include "accel/kvm/kvm.h"
#include "hw/i386/fw_cfg.h"
#include "hw/i386/pc.h"
#include "util/error.h"

#define ISA_BIOS_SIZE (128 * 1024)

struct Firmware {
    uint8_t *rom; /* the BIOS image, mapped read-only at 4G - size */
    size_t size;
    FwCfg *fw_cfg;
    GuestMemory mem; /* where the BIOS area is (set by firmware_init) */
};

static bool firmware_load_image(Firmware *fw, const char *path, GError **errp)
{
    gchar *data = NULL;
    gsize len = 0;
    GError *err = NULL;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        error_setg(errp,
                   "could not load PC BIOS '%s': %s (install the Debian "
                   "package seabios)",
                   path, err->message);
        g_error_free(err);
        return false;
    }
    if (len < ISA_BIOS_SIZE || len % 65536 || len > (16 << 20)) {
        error_setg(errp,
                   "could not load PC BIOS '%s': %zu bytes is not a BIOS "
                   "image size (a multiple of 64 KiB from 128 KiB to 16 MiB)",
                   path, (size_t)len);
        g_free(data);
        return false;
    }
    fw->rom = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fw->rom == MAP_FAILED) {
        fw->rom = NULL;
        error_setg(errp, "could not map the PC BIOS");
        g_free(data);
        return false;
    }
    memcpy(fw->rom, data, len);
    fw->size = len;
    g_free(data);
    return true;
}

/* What SeaBIOS reads from fw_cfg to set up a QEMU-like pc. */
static bool firmware_fill_fw_cfg(Firmware *fw, const FirmwareMachineInfo *info,
                                 GError **errp)
{
    GByteArray *e820 = g_byte_array_new();
    bool ok;

    fw_cfg_add_u16(fw->fw_cfg, FW_CFG_NB_CPUS, info->nr_cpus);
    fw_cfg_add_u16(fw->fw_cfg, FW_CFG_MAX_CPUS, info->max_cpus);
    fw_cfg_add_u64(fw->fw_cfg, FW_CFG_RAM_SIZE, info->ram_size);
    fw_cfg_add_u16(fw->fw_cfg, FW_CFG_NOGRAPHIC, 1);
    fw_cfg_add_u16(fw->fw_cfg, FW_CFG_BOOT_MENU, 0);
    fw_cfg_add_u64(fw->fw_cfg, FW_CFG_NUMA, 0);
    /* the PIT's IRQ 0 reaches IOAPIC pin 2 (kvm.c routes it so) */
    fw_cfg_add_u32(fw->fw_cfg, FW_CFG_IRQ0_OVERRIDE, 1);
    /* RAM as QEMU lists it; SeaBIOS adds its own reservations */
    for (unsigned i = 0; i < 2; i++) {
        uint64_t addr = i ? HIGH_RAM_START : 0;
        uint64_t len = i ? info->above_4g : info->below_4g;
        uint32_t type = GUINT32_TO_LE(E820_RAM);
        if (!len) {
            continue;
        }
        addr = GUINT64_TO_LE(addr);
        len = GUINT64_TO_LE(len);
        g_byte_array_append(e820, (guint8 *)&addr, 8);
        g_byte_array_append(e820, (guint8 *)&len, 8);
        g_byte_array_append(e820, (guint8 *)&type, 4);
    }
    ok = fw_cfg_add_file(fw->fw_cfg, "etc/e820", e820->data, e820->len, errp);
    g_byte_array_free(e820, TRUE);
    return ok;
}

Firmware *firmware_prepare(const char *bios_path, GError **errp)
{
    Firmware *fw = g_new0(Firmware, 1);

    if (!firmware_load_image(fw, bios_path, errp)) {
        firmware_free(fw);
        return NULL;
    }
    return fw;
}

bool firmware_init(Firmware *fw, KvmVm *kvm, Bus *io_bus, const GuestMemory *mem,
                   const FirmwareMachineInfo *info, GError **errp)
{
    fw->mem = *mem;
    if (!kvm_vm_add_rom(kvm, HIGH_RAM_START - fw->size, fw->size, fw->rom, errp)) {
        return false;
    }
    fw->fw_cfg = fw_cfg_new(io_bus, mem, errp);
    return fw->fw_cfg && firmware_fill_fw_cfg(fw, info, errp);
}

FwCfg *firmware_fw_cfg(Firmware *fw)
{
    return fw->fw_cfg;
}

void firmware_reset(Firmware *fw)
{
    uint8_t *isa_bios;

    if (!fw || !fw->rom || !fw->mem.gpa_to_hva) {
        return;
    }
    isa_bios = guest_memory_hva(&fw->mem, 0x100000 - ISA_BIOS_SIZE, ISA_BIOS_SIZE);
    if (isa_bios) {
        memcpy(isa_bios, fw->rom + fw->size - ISA_BIOS_SIZE, ISA_BIOS_SIZE);
    }
    if (fw->fw_cfg) {
        fw_cfg_reset(fw->fw_cfg);
    }
}

void firmware_free(Firmware *fw)
{
    if (!fw) {
        return;
    }
    fw_cfg_free(fw->fw_cfg);
    if (fw->rom) {
        munmap(fw->rom, fw->size);
    }
    g_free(fw);
}
