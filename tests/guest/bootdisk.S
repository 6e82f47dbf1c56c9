/* bootdisk.S: the first 4 KiB of the testos disk image (testos.img): a BIOS
 * boot sector, the command-line sector and a second-stage loader that loads
 * testos (the bzImage stored right after these 4 KiB, at LBA 8) with BIOS
 * int 0x13 extended reads and starts it the way a Linux boot loader does:
 * setup at 0x10000, payload at 0x100000, header fields filled in, then a jump
 * to the real-mode setup entry (setup16.S builds boot_params from there).
 * Linked on its own at 0x7c00 (bootdisk.ld); not part of the testos image.
 *
 *   LBA 0 (0x000)  boot sector: loads LBAs 1-7 to 0x7e00, jumps to stage2
 *   LBA 1 (0x200)  BOOTDISK_MAGIC (16 bytes), then at 0x210 the command line
 *                  (256 bytes, NUL-terminated and NUL-padded)
 *   LBA 2 (0x400)  stage2
 *   LBA 8 (0x1000) the bzImage (build/tests/guest/testos), byte for byte
 *
 * Errors print "testos: boot: ..." on COM1 and COM2 and halt. */
#include "testos.h"

#define LOAD_ADDR 0x7c00
#define BOOT_SECTORS 8          /* this file: 4 KiB */
#define KERNEL_LBA BOOT_SECTORS
#define SETUP_SEG 0x1000        /* real-mode setup at 0x10000 */
#define SETUP_MAX_SECTS 30      /* setup16.S keeps its data at setup + 0x1000.. 0x3000 */
#define HEAP_END 0xE000         /* setup segment offset: heap and stack end */
#define CMDLINE_ADDR 0x1E000    /* = setup segment + HEAP_END */
#define BOUNCE_SEG 0x2000       /* int 0x13 reads of the payload land at 0x20000 */
#define BOUNCE_ADDR 0x20000
#define CHUNK_SECTORS 64        /* 32 KiB per read */
#define COM1 0x3f8
#define COM2 0x2f8

    .code16
    .section .text, "ax"
    .globl _start
_start:                         /* the BIOS jumps here (0:0x7c00 or 0x7c0:0), DL = drive */
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $LOAD_ADDR, %sp
    ljmp $0, $1f
1:  sti
    cld
    mov %dl, boot_drive
    movw $BOOT_SECTORS - 1, dap_count
    movw $LOAD_ADDR + 0x200, dap_offset
    movw $0, dap_segment
    movl $1, dap_lba
    call disk_read
    jmp stage2

/* int 0x13 AH=0x42 with dap; on failure prints and halts. */
disk_read:
    mov $dap, %si
    mov boot_drive, %dl
    mov $0x42, %ah
    int $0x13
    jc 1f
    ret
1:  mov $msg_read, %si
    /* fall through */

/* Prints "testos: boot: " + the string at SI + newline on COM1, halts. */
fail:
    push %si
    mov $msg_prefix, %si
    call puts
    pop %si
    call puts
    mov $msg_newline, %si
    call puts
2:  cli
    hlt
    jmp 2b

puts:                           /* to COM1 and COM2 (testos's console does the same) */
    lodsb
    test %al, %al
    jz 3f
    mov %al, %bl
    mov $COM1, %dx
    call putc
    mov $COM2, %dx
    call putc
    jmp puts
3:  ret

putc:                           /* BL to the UART at DX, if one answers */
    add $5, %dx
1:  in %dx, %al                 /* LSR: 0xff where no UART is */
    cmp $0xff, %al
    je 2f
    test $0x20, %al             /* THR empty */
    jz 1b
    sub $5, %dx
    mov %bl, %al
    out %al, %dx
2:  ret

msg_prefix:
    .asciz "testos: boot: "
msg_read:
    .asciz "disk read failed (int 0x13 AH=0x42)"
msg_newline:
    .asciz "\r\n"

    .balign 4
dap:                            /* int 0x13 extensions disk address packet */
    .byte 16, 0
dap_count:
    .word 0
dap_offset:
    .word 0
dap_segment:
    .word 0
dap_lba:
    .quad 0
boot_drive:
    .byte 0

    .org 0x1fe
    .word 0xAA55

/* ---- LBA 1: the command line (README.md: how to patch it) ---- */
    .org 0x200
cmdline_sector:
    .ascii BOOTDISK_MAGIC
cmdline:
    .asciz "testos.run=hello"
    .org 0x210 + BOOTDISK_CMDLINE_SIZE, 0

/* ---- LBA 2..7: stage 2 ---- */
    .org 0x400
stage2:
    /* A20 on (fast gate): the payload goes above 1 MiB */
    in $0x92, %al
    or $0x02, %al
    and $0xfe, %al
    out %al, $0x92

    /* The bzImage's first two sectors (boot sector + header) to 0x10000. */
    movw $2, dap_count
    movw $0, dap_offset
    movw $SETUP_SEG, dap_segment
    movl $KERNEL_LBA, dap_lba
    call disk_read
    mov $SETUP_SEG, %ax
    mov %ax, %fs
    mov $msg_not_bzimage, %si
    cmpl $0x53726448, %fs:0x202 /* "HdrS" */
    jne fail
    cmpw $0x0202, %fs:0x206     /* protocol 2.02+: cmd_line_ptr */
    jb fail
    testb $0x01, %fs:0x211      /* LOADED_HIGH: the payload goes to 1 MiB */
    jz fail
    movzbw %fs:0x1f1, %cx       /* setup_sects (0 means 4) */
    test %cx, %cx
    jnz 1f
    mov $4, %cx
1:  mov $msg_setup_big, %si
    cmp $SETUP_MAX_SECTS, %cx
    ja fail
    mov %cx, setup_sects

    /* The rest of the setup (setup_sects - 1 more sectors). */
    dec %cx
    jz 1f
    mov %cx, dap_count
    movw $0x400, dap_offset
    movl $KERNEL_LBA + 2, dap_lba
    call disk_read
1:

    /* The payload (syssize * 16 bytes) to 0x100000, a chunk at a time:
     * read to the bounce buffer, then copied up in unreal mode. */
    movl %fs:0x1f4, %eax
    shl $4, %eax
    add $511, %eax
    shr $9, %eax
    mov %eax, payload_left
    movzwl setup_sects, %eax
    add $KERNEL_LBA + 1, %eax
    mov %eax, dap_lba
    movl $0x100000, payload_dest
payload_next:
    mov payload_left, %ecx
    test %ecx, %ecx
    jz payload_done
    cmp $CHUNK_SECTORS, %ecx
    jbe 1f
    mov $CHUNK_SECTORS, %ecx
1:  mov %cx, dap_count
    movw $0, dap_offset
    movw $BOUNCE_SEG, dap_segment
    call disk_read
    call unreal                 /* returns with interrupts off */
    movzwl dap_count, %ecx
    shl $7, %ecx                /* dwords */
    mov $BOUNCE_ADDR, %esi
    mov payload_dest, %edi
    addr32 rep movsl
    sti
    movzwl dap_count, %ecx
    sub %ecx, payload_left
    addl %ecx, dap_lba
    shl $9, %ecx
    add %ecx, payload_dest
    jmp payload_next
payload_done:

    /* The command line to CMDLINE_ADDR (at most 255 bytes + NUL). */
    mov $SETUP_SEG, %ax
    mov %ax, %es
    mov $cmdline, %si
    mov $HEAP_END, %di
    mov $BOOTDISK_CMDLINE_SIZE - 1, %cx
    rep movsb
    movb $0, %es:(%di)

    /* The header fields a boot loader sets (Linux boot protocol). */
    movb $0xff, %fs:0x210               /* type_of_loader: undefined */
    orb $0x80, %fs:0x211                /* loadflags: CAN_USE_HEAP */
    movw $HEAP_END - 0x200, %fs:0x224   /* heap_end_ptr */
    movl $CMDLINE_ADDR, %fs:0x228       /* cmd_line_ptr */

    /* Into the setup: CS = segment + 0x20, DS = ES = SS = segment. */
    cli
    mov $SETUP_SEG, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov $HEAP_END, %sp
    ljmp $SETUP_SEG + 0x20, $0

/* DS and ES to base 0 with a 4 GiB limit (int 0x13 may have reloaded them
 * with 64 KiB limits: called after every read). Leaves interrupts off. */
unreal:
    cli
    lgdtl unreal_gdt_desc
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0
    jmp 1f
1:  mov $8, %bx
    mov %bx, %ds
    mov %bx, %es
    and $0xfe, %al
    mov %eax, %cr0
    jmp 2f
2:  xor %bx, %bx                /* real-mode loads keep the 4 GiB limit */
    mov %bx, %ds
    mov %bx, %es
    ret

    .balign 8
unreal_gdt:
    .quad 0
    .quad 0x00CF92000000FFFF    /* 0x08: flat data, 4 GiB */
unreal_gdt_desc:
    .word 15
    .long unreal_gdt

msg_not_bzimage:
    .asciz "no bzImage (protocol 2.02+, LOADED_HIGH) at LBA 8"
msg_setup_big:
    .asciz "bzImage setup too big"

    .balign 4
payload_left:
    .long 0
payload_dest:
    .long 0
setup_sects:
    .word 0

    .org BOOT_SECTORS * 512
