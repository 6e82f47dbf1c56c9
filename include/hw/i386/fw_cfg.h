/*
 * QEMU's firmware configuration device (fw_cfg) on ports 0x510/0x511 with
 * the DMA interface at 0x514: the items and files SeaBIOS reads to set up
 * the machine (CPU count, RAM map, boot order).  Accesses arrive with the
 * machine lock held; items are added before the guest starts.
 */
#ifndef HW_I386_FW_CFG_H
#define HW_I386_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "hw/bus.h"
#include "hw/guest-memory.h"

typedef struct Machine Machine;
typedef struct FwCfg FwCfg;

#define FW_CFG_SIGNATURE     0x00
#define FW_CFG_ID            0x01
#define FW_CFG_UUID          0x02
#define FW_CFG_RAM_SIZE      0x03
#define FW_CFG_NOGRAPHIC     0x04
#define FW_CFG_NB_CPUS       0x05
#define FW_CFG_MACHINE_ID    0x06
#define FW_CFG_NUMA          0x0d
#define FW_CFG_BOOT_MENU     0x0e
#define FW_CFG_MAX_CPUS      0x0f
#define FW_CFG_FILE_DIR      0x19
#define FW_CFG_FILE_FIRST    0x20
#define FW_CFG_IRQ0_OVERRIDE 0x8002

/* Ports 0x510-0x51b on io_bus; DMA reads and writes guest RAM through mem. */
FwCfg *fw_cfg_new(Bus *io_bus, const GuestMemory *mem, GError **errp);
void fw_cfg_free(FwCfg *fw);
/* Add a numbered item; data is copied. */
void fw_cfg_add_bytes(FwCfg *fw, uint16_t key, const void *data, size_t len);
void fw_cfg_add_u16(FwCfg *fw, uint16_t key, uint16_t value);
void fw_cfg_add_u32(FwCfg *fw, uint16_t key, uint32_t value);
void fw_cfg_add_u64(FwCfg *fw, uint16_t key, uint64_t value);
/* Add a named file ("etc/e820", "bootorder"); listed in the directory. */
bool fw_cfg_add_file(FwCfg *fw, const char *name, const void *data, size_t len,
                     GError **errp);
/* ACPI tables (built by hw/acpi) through QEMU's table-loader (hw/i386/acpi.c). */
bool acpi_build(Machine *m, FwCfg *fw, GError **errp);
/* Back to power-on state (selector 0, no DMA in flight). */
void fw_cfg_reset(FwCfg *fw);

#endif
