/* setup16.S: the bzImage boot sector, the Linux boot protocol 2.12 header and
 * the real-mode setup code a BIOS loader (QEMU's linuxboot ROM) enters at
 * offset 0x200. It builds boot_params and goes to the 32-bit entry. */
#include "testos.h"

/* Inside the setup segment (the loader gives us up to heap_end_ptr): */
#define BOOT_PARAMS_OFF 0x1000 /* boot_params we build (4 KiB) */
#define SETUP_STACK_TOP 0x3000 /* real-mode stack, 4 KiB below it */
#define E820_MAX 128
#define SMAP 0x534D4150

    .code16
    .section .setup, "ax"
    .globl setup_start
setup_start:
    /* Booted as a disk boot sector by mistake: just halt. */
    cli
1:  hlt
    jmp 1b

    .org 0x1f1
    .byte setup_sects          /* 0x1f1 setup_sects (linker script) */
    .word 0                    /* 0x1f2 root_flags */
    .long syssize              /* 0x1f4 syssize: payload size / 16 */
    .word 0                    /* 0x1f8 ram_size */
    .word 0xffff               /* 0x1fa vid_mode: normal */
    .word 0                    /* 0x1fc root_dev */
    .word 0xAA55               /* 0x1fe boot_flag */
    .byte 0xeb, setup_main - 1f /* 0x200 jump */
1:  .ascii "HdrS"              /* 0x202 header */
    .word 0x020c               /* 0x206 version 2.12 */
    .long 0                    /* 0x208 realmode_swtch */
    .word 0x1000               /* 0x20c start_sys_seg (obsolete) */
    .word version_string - 0x200 /* 0x20e kernel_version */
    .byte 0                    /* 0x210 type_of_loader */
    .byte 0x01                 /* 0x211 loadflags: LOADED_HIGH */
    .word 0                    /* 0x212 setup_move_size */
    .long KERNEL_BASE          /* 0x214 code32_start */
    .long 0                    /* 0x218 ramdisk_image */
    .long 0                    /* 0x21c ramdisk_size */
    .long 0                    /* 0x220 bootsect_kludge */
    .word 0                    /* 0x224 heap_end_ptr */
    .byte 0                    /* 0x226 ext_loader_ver */
    .byte 0                    /* 0x227 ext_loader_type */
    .long 0                    /* 0x228 cmd_line_ptr */
    .long 0x7fffffff           /* 0x22c initrd_addr_max */
    .long 0x200000             /* 0x230 kernel_alignment */
    .byte 0                    /* 0x234 relocatable_kernel: no */
    .byte 21                   /* 0x235 min_alignment (log2) */
    .word 0x0001               /* 0x236 xloadflags: XLF_KERNEL_64 */
    .long 2047                 /* 0x238 cmdline_size */
    .long 0                    /* 0x23c hardware_subarch */
    .quad 0                    /* 0x240 hardware_subarch_data */
    .long 0                    /* 0x248 payload_offset */
    .long 0                    /* 0x24c payload_length */
    .quad 0                    /* 0x250 setup_data */
    .quad KERNEL_BASE          /* 0x258 pref_address */
    .long init_size            /* 0x260 init_size: image + .bss + stacks */
    .long 0                    /* 0x264 handover_offset */
header_end:

/* Entered at CS = setup segment + 0x20, IP = 0, DS = ES = setup segment. */
setup_main:
    cli
    cld
    mov %ds, %ax
    mov %ax, %es
    mov %ax, %ss
    mov $SETUP_STACK_TOP, %sp
    push %ax                   /* CS = DS, so labels are offsets in the segment */
    push $1f
    lret
1:
    /* boot_params = zeros + a copy of the header the loader filled in. */
    mov $BOOT_PARAMS_OFF, %di
    mov $2048, %cx
    xor %ax, %ax
    rep stosw
    mov $0x1f1, %si
    mov $BOOT_PARAMS_OFF + 0x1f1, %di
    mov $header_end - 0x1f1, %cx
    rep movsb

    /* e820 map into boot_params (table at 0x2d0, count at 0x1e8). */
    xor %ebx, %ebx
    mov $BOOT_PARAMS_OFF + 0x2d0, %di
e820_next:
    mov $0xE820, %eax
    mov $SMAP, %edx
    mov $20, %ecx
    int $0x15
    jc e820_done
    cmp $SMAP, %eax
    jne e820_done
    add $20, %di
    incb BOOT_PARAMS_OFF + 0x1e8
    cmpb $E820_MAX, BOOT_PARAMS_OFF + 0x1e8
    jae e820_done
    test %ebx, %ebx
    jnz e820_next
e820_done:
    cli

    /* A20 on (fast gate), then protected mode and the 32-bit entry. */
    inb $0x92, %al
    or $0x02, %al
    and $0xfe, %al
    outb %al, $0x92

    xor %ebx, %ebx
    mov %ds, %bx
    shl $4, %ebx
    lea BOOT_PARAMS_OFF(%ebx), %esi  /* the 32/64-bit code gets its linear address */
    lea SETUP_STACK_TOP(%ebx), %esp
    lgdtl setup_gdt_desc
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $BOOT_CS32, $KERNEL_BASE   /* startup_32 in head64.S */

    .balign 8
setup_gdt_desc:
    .word GDT_ENTRIES * 8 - 1
    .long gdt
version_string:
    .asciz "testos"
