/* trampoline.S: where an application processor starts. smp.c copies these
 * bytes to TRAMPOLINE_ADDR (0x8000, SIPI vector 0x08); the AP loads the
 * kernel GDT, enters protected mode and jumps to ap_start32 (head64.S). */
#include "testos.h"

    .section .rodata, "a"
    .code16
    .globl trampoline_start, trampoline_end
trampoline_start:               /* CS = 0x0800, IP = 0 */
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl tramp_gdt_desc - trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $BOOT_CS32, $ap_start32

    .balign 8
tramp_gdt_desc:
    .word GDT_ENTRIES * 8 - 1
    .long gdt
trampoline_end:
    .code64
