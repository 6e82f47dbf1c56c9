/*
 * The e820 memory map the pc board hands its guest: what the memory plan
 * (hw/core/machine.c) builds and the Linux boot loader copies into
 * boot_params.  Plain data.
 */
#ifndef HW_I386_E820_H
#define HW_I386_E820_H

#include <stdint.h>

typedef struct E820Entry {
    uint64_t addr, size;
    uint32_t type;
} E820Entry;

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      16

#endif
