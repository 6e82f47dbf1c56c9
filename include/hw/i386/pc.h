/*
 * The pc board's small devices and boot paths (hw/i386/): the Linux boot
 * protocol loader, the MP table, and the legacy ports (POST port 0x80,
 * i8042 controller, port 0x92).  Called with the machine lock held or
 * before vCPUs run.
 */
#ifndef HW_I386_PC_H
#define HW_I386_PC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "hw/bus.h"
#include "hw/guest-memory.h"
#include "hw/i386/e820.h"
#include "hw/vmstate.h"
#include "system/config.h"

typedef struct Machine Machine;
typedef struct VCpu VCpu;

/* Guest-physical addresses the direct Linux boot uses. */
#define BOOT_GDT_ADDR     0x500
#define BOOT_PARAMS_ADDR  0x7000
#define BOOT_PML4_ADDR    0x9000
#define BOOT_PDPT_ADDR    0xa000
#define BOOT_PD_ADDR      0xb000 /* four pages: 0-4 GiB in 2 MiB pages */
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX  0x10000
#define KERNEL_LOAD_ADDR  0x100000
#define MPTABLE_ADDR      0xf0000
#define BIOS_AREA_START   0xf0000

/* What a bzImage header says, checked (hw/i386/linux-boot.c). */
typedef struct BzImageInfo {
    uint16_t protocol; /* e.g. 0x020c */
    unsigned setup_sects;
    uint64_t payload_offset; /* file offset of the protected-mode code */
    uint64_t payload_size;
    uint32_t init_size;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
    uint64_t pref_address;
    bool relocatable;
    bool loaded_high;
    bool kernel_64; /* XLF_KERNEL_64: the 64-bit entry exists */
} BzImageInfo;

/* Check a kernel image in memory; a clear error for anything off. */
bool bzimage_parse(const uint8_t *image, size_t size, BzImageInfo *info, GError **errp);

/*
 * Before KVM: read the kernel and the initrd (NULL: none), check the
 * bzImage header, that kernel, initrd and command line (append, NULL:
 * empty) fit below ram_below_4g.  Every problem with them is reported
 * here, on any machine; the images are kept for every reload.
 */
typedef struct LinuxBoot LinuxBoot;
LinuxBoot *linux_boot_prepare(const char *kernel, const char *initrd, const char *append,
                              uint64_t ram_below_4g, GError **errp);
void linux_boot_free(LinuxBoot *lb);
/*
 * Load kernel, initrd and command line into guest RAM through mem, write
 * boot_params (with the e820 map), the boot GDT and page tables, and
 * point the BSP at the 64-bit entry.  Called at start and again at every
 * system_reset.
 */
bool linux_boot_load(LinuxBoot *lb, const GuestMemory *mem, const E820Entry *e820,
                     unsigned nr_e820, GError **errp);
bool linux_boot_setup_bsp(LinuxBoot *lb, VCpu *bsp, GError **errp);

/*
 * Write the Intel MP table (processors, ISA bus, IOAPIC, routing) at addr
 * through mem: nr_cpus processors with the APIC ids of topology smp.
 */
bool mptable_write(const GuestMemory *mem, const SmpConfig *smp, unsigned nr_cpus,
                   uint64_t addr, GError **errp);
/*
 * Write the ACPI tables (hw/i386/acpi.c, built by hw/acpi) for a direct
 * -kernel boot: the RSDP at 0xE0000, where Linux's scan of 0xE0000-0xFFFFF
 * finds it, the tables after it, below the MP table.  The board writes
 * them beside the MP table at every (re)load of the kernel.
 */
bool acpi_place_for_linux_boot(Machine *m, GError **errp);

/* The RTC and CMOS memory (hw/i386/rtc.c). */
typedef struct Rtc Rtc;
/* What the CMOS bytes tell firmware about the machine. */
typedef struct RtcMachineInfo {
    uint64_t below_4g, above_4g; /* RAM bytes below 4 GiB and above it */
    unsigned nr_cpus;
} RtcMachineInfo;
/* Ports 0x70/0x71 on io_bus; its state registered in states as "rtc". */
Rtc *rtc_new(Bus *io_bus, DeviceStateList *states, const RtcMachineInfo *info,
             GError **errp);
void rtc_free(Rtc *rtc);

/*
 * Firmware boot (hw/i386/firmware.c): map SeaBIOS below 4 GiB and into the
 * BIOS area, and give it fw_cfg.  Called when there is no -kernel.
 */
typedef struct Firmware Firmware;
typedef struct FwCfg FwCfg;
typedef struct KvmVm KvmVm;
/* Before KVM: read and check the BIOS image (-bios, or SeaBIOS). */
Firmware *firmware_prepare(const char *bios_path, GError **errp);
/* What the firmware is told through fw_cfg about the machine. */
typedef struct FirmwareMachineInfo {
    unsigned nr_cpus, max_cpus;
    uint64_t ram_size;
    uint64_t below_4g, above_4g; /* RAM bytes below 4 GiB and above it */
} FirmwareMachineInfo;
/*
 * Map the image firmware_prepare read as a ROM of kvm ending at 4 GiB, and
 * set up fw_cfg on io_bus (DMA through mem) with what info says.
 */
bool firmware_init(Firmware *fw, KvmVm *kvm, Bus *io_bus, const GuestMemory *mem,
                   const FirmwareMachineInfo *info, GError **errp);
/* Its fw_cfg, where the board adds the rest (the ACPI tables). */
FwCfg *firmware_fw_cfg(Firmware *fw);
/* Copy the BIOS back into 0xE0000-0xFFFFF (start and every reset). */
void firmware_reset(Firmware *fw);
void firmware_free(Firmware *fw);

/*
 * The pc board's PCI bus (hw/pci), given the machine's buses, guest RAM,
 * device-state list and KVM (or, _with_ops, fake KVM calls for tests):
 * sets m->pci.  pci_pc_cleanup frees it again and clears m->pci.
 */
typedef struct PciKvmOps PciKvmOps;
bool pci_pc_init(Machine *m, GError **errp);
bool pci_pc_init_with_ops(Machine *m, const PciKvmOps *ops, void *ops_opaque,
                          GError **errp);
void pci_pc_cleanup(Machine *m);

/* Before KVM: the chardevs behind -serial (COM1-COM4), checked. */
bool pc_serial_prepare(Machine *m, GError **errp);
/* Then the -device isa-serial ports (hw/i386/isa-serial.c), checked. */
bool pc_isa_serial_prepare(Machine *m, GError **errp);
/* Register the legacy ports and COM ports on the machine's buses. */
bool pc_board_init(Machine *m, GError **errp);
void pc_board_reset(Machine *m);
void pc_board_cleanup(Machine *m);
/*
 * The PIIX4 PM function at 00:01.3 (hw/acpi/piix4-pm.c), after the PCI
 * bus: its S5 asks the machine to shut down (guest-shutdown).
 */
bool pc_pm_init(Machine *m, GError **errp);
/* Press the power button (machine lock held); false without the PM function. */
bool pc_board_power_button(Machine *m);
/*
 * Ask the guest to eject slot through ACPI PCI hot-plug (machine lock
 * held), again if it was asked before.  Once the guest ejects, the board
 * has the devices layer remove the slot's devices.
 */
void pc_board_unplug_request(Machine *m, unsigned slot);
/* Take that request back while the guest has not ejected (lock held). */
void pc_board_unplug_withdraw(Machine *m, unsigned slot);
/* A device arrived in slot: tell the guest (machine lock held). */
void pc_board_plug(Machine *m, unsigned slot);

#endif
