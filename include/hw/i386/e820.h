/*
 * The pc board's guest-physical layout and the e820 map it hands its
 * guest: what the memory plan (hw/core/machine.c) builds, the Linux boot
 * loader copies into boot_params and the firmware is told.  Plain data.
 */
#ifndef HW_I386_E820_H
#define HW_I386_E820_H

#include <stdint.h>

/* Guest-physical layout of the pc machine. */
#define PCI_HOLE_START 0xe0000000ULL /* RAM below this stays low */
#define LOW_RAM_SPLIT  0xc0000000ULL /* low RAM end when RAM is split */
#define HIGH_RAM_START 0x100000000ULL
#define KVM_TSS_ADDR   0xfffbd000ULL

typedef struct E820Entry {
    uint64_t addr, size;
    uint32_t type;
} E820Entry;

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      16

#endif
