/* head64.S: the payload's entry points (32-bit at 0x100000 from setup16.S and
 * the AP trampoline, 64-bit at 0x100200), the GDT, the static identity page
 * tables and the per-CPU stacks.
 *
 * 64-bit entry contract (0x100200 = load address + 0x200), what a VMM that
 * boots testos directly must provide:
 *   - long mode, CS a 64-bit code segment, paging on, the low 4 GiB identity
 *     mapped (virtual == physical), CR4.PAE set; interrupts off (RFLAGS.IF=0);
 *   - RSI = physical address of boot_params (the "zero page"): e820 entries at
 *     0x2d0 (20 bytes each) with their count at 0x1e8, the setup header copy at
 *     0x1f1, cmd_line_ptr (32-bit physical, NUL-terminated) at 0x228;
 *   - the payload loaded at 0x100000, init_size bytes from there free;
 *   - no other register, stack, GDT or IDT is relied on.
 * testos loads its own GDT, page tables (CR3) and stack first, clears
 * CR4.SMEP/SMAP, and reads boot_params and the command line before it reuses
 * low memory (only 0x8000-0x8fff, for the AP trampoline). */
#include "testos.h"

#define EFER 0xC0000080
#define PTE_FLAGS 0x07          /* present, writable, user */
#define PDE_FLAGS 0x87          /* + 2 MiB page */
#define PDE_UNCACHED 0x18       /* PWT + PCD */

/* 32-bit protected mode, flat segments -> long mode, then jump to target. */
.macro ENTER_LONG_MODE target
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $EFER, %ecx
    rdmsr
    or $0x100, %eax             /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* PG + PE */
    mov %eax, %cr0
    ljmp $KERNEL_CS, $\target
.endm

    .section .head.text, "ax"
    .code32
    .globl startup_32
startup_32:                     /* 0x100000: from setup16.S, ESI = boot_params */
    ENTER_LONG_MODE entry_64

    .globl ap_start32
ap_start32:                     /* from trampoline.S */
    ENTER_LONG_MODE ap_entry_64

    .org 0x200
    .code64
    .globl entry_64
entry_64:                       /* 0x100200: the 64-bit entry (contract above) */
    cli
    cld
    lgdt gdt_desc(%rip)
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    lea kernel_stacks + KERNEL_STACK_SIZE(%rip), %rsp
    pushq $KERNEL_CS
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov $boot_pml4, %eax
    mov %rax, %cr3
    mov %cr4, %rax
    and $~0x300000, %rax        /* no SMEP/SMAP: kernel pages are user pages */
    mov %rax, %cr4
    mov %rsi, %rbx
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq
    mov %rbx, %rdi
    call kmain
2:  hlt
    jmp 2b

ap_entry_64:                    /* an AP, in long mode with our GDT and CR3 */
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov ap_boot_rsp(%rip), %rsp
    mov ap_boot_cpu(%rip), %rdi
    call ap_main
3:  hlt
    jmp 3b

    .section .data, "aw"
    .balign 16
    .globl gdt
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08 KERNEL_CS: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF    /* 0x10 KERNEL_DS: flat data, DPL 0 */
    .quad 0x00CFF2000000FFFF    /* 0x18 USER_DS: flat data, DPL 3 */
    .quad 0x00AFFA000000FFFF    /* 0x20 USER_CS: 64-bit code, DPL 3 */
    .quad 0x00CF9A000000FFFF    /* 0x28 BOOT_CS32: flat 32-bit code, DPL 0 */
    .fill 2 * MAX_CPUS, 8, 0    /* 0x30: one TSS descriptor per CPU (cpu.c) */
gdt_end:
    .balign 8
gdt_desc:
    .word gdt_end - gdt - 1
    .quad gdt

/* Identity map of 0-4 GiB with 2 MiB pages, all user-accessible (ring 3 does
 * the work and port/MMIO access), 0xC0000000-0xFFFFFFFF uncached (MMIO). */
    .section .data.pagetables, "aw"
    .balign 4096
    .globl boot_pml4
boot_pml4:
    .quad boot_pdpt + PTE_FLAGS
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + PTE_FLAGS, boot_pd + 0x1000 + PTE_FLAGS
    .quad boot_pd + 0x2000 + PTE_FLAGS, boot_pd + 0x3000 + PTE_FLAGS
    .fill 508, 8, 0
boot_pd:
    .set addr, 0
    .rept 2048
    .if addr >= 0xC0000000
    .quad addr + PDE_FLAGS + PDE_UNCACHED
    .else
    .quad addr + PDE_FLAGS
    .endif
    .set addr, addr + 0x200000
    .endr

/* Per-CPU stacks: never zeroed, so they cost nothing at boot. */
    .section .stacks, "aw", @nobits
    .balign 4096
    .globl kernel_stacks, entry_stacks, user_stacks
kernel_stacks:
    .skip MAX_CPUS * KERNEL_STACK_SIZE
entry_stacks:
    .skip MAX_CPUS * ENTRY_STACK_SIZE
user_stacks:
    .skip MAX_CPUS * USER_STACK_SIZE
