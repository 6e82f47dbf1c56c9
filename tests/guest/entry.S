/* entry.S: every crossing between ring 0 and ring 3: run_user() (iretq into
 * ring 3), requests from ring 3 (a ud2 at user_trap, returned from with
 * iretq), the interrupt/exception stubs and the timer handlers. */
#include "testos.h"

#define LAPIC_EOI (LAPIC_BASE + 0xB0)

    .text
    .code64

/* u64 run_user(Cpu *cpu, u64 (*fn)(u64), u64 arg): call fn(arg) in ring 3 on
 * cpu's user stack with interrupts on; returns what fn returns (REQ_EXIT). */
    .globl run_user
run_user:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, CPU_KERNEL_RSP(%rdi)
    pushq $(USER_DS | 3)
    pushq CPU_USER_STACK(%rdi)
    pushq $0x202                /* IF */
    pushq $(USER_CS | 3)
    pushq $user_start
    mov %rdx, %rdi
    iretq

user_start:                     /* ring 3: rsi = fn, rdi = arg */
    call *%rsi
    mov %rax, %rdi
    mov $REQ_EXIT, %eax
    jmp user_trap

/* Ring 3 -> ring 0. Under PVM, `syscall` from ring 3 does not reach CPL 0
 * (its handler runs with CS 0x33 and privileged instructions fault) and
 * `int $N` gives #UD, but exceptions are delivered through the IDT at CPL 0.
 * So a request to ring 0 is the `ud2` at user_trap: ud_entry recognises it by
 * its address. rax = number, rdi/rsi = arguments (see user_request). */

/* u64 user_request(u64 nr, u64 a0, u64 a1), ring 3 only. */
    .globl user_request
user_request:
    mov %rdi, %rax
    mov %rsi, %rdi
    mov %rdx, %rsi
    .globl user_trap
user_trap:
    ud2
    ret

/* #UD. From ring 3 the frame sits at RSP0 - 40 and this CPU's Cpu pointer
 * just above it (cpu.c stores it at the top of the entry stack). */
    .globl ud_entry
ud_entry:
    cmpq $user_trap, (%rsp)
    jne ud_exception
    cmp $REQ_EXIT, %rax
    je ud_exit_to_kernel
    addq $2, (%rsp)             /* resume after the ud2 */
    mov %rax, %rdx
    sub $8, %rsp
    call user_request_handler   /* (a0, a1, nr): clobbers caller-saved regs */
    add $8, %rsp
    iretq

ud_exit_to_kernel:              /* REQ_EXIT: back into run_user's caller */
    mov 40(%rsp), %r10
    mov CPU_KERNEL_RSP(%r10), %rsp
    mov %rdi, %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

ud_exception:                   /* a real #UD */
    pushq $0
    pushq $6
    jmp exception_entry

/* 256 interrupt stubs, 16 bytes apart (cpu.c fills the IDT from this). Each
 * pushes an error code (0 where the CPU pushes none) and its vector. */
    .balign 16
    .globl vector_stubs
vector_stubs:
    .set v, 0
    .rept 256
    .balign 16
    .if (v == 8) || ((v >= 10) && (v <= 14)) || (v == 17) || (v == 21) || (v == 29) || (v == 30)
    .else
    pushq $0
    .endif
    pushq $v
    jmp exception_entry
    .set v, v + 1
    .endr
    .balign 16
    .globl vector_stubs_end
vector_stubs_end:

exception_entry:                /* stack: vector, error, rip, cs, rflags, rsp, ss */
    mov %rsp, %rdi
    and $-16, %rsp
    call exception_handler      /* prints and resets: never returns */
    ud2

/* LAPIC timer: count and EOI, nothing else (each costs ring-0 emulation). */
    .globl timer_entry
timer_entry:
    push %rax
    incq timer_ticks(%rip)
    mov $LAPIC_EOI, %eax
    movl $0, (%rax)
    pop %rax
    iretq

/* LAPIC timer for `latency`: the TSC first, then store and EOI. The
 * scenario clears latency_stamp before arming and waits for it to be set. */
    .globl latency_entry
latency_entry:
    push %rax
    push %rdx
    rdtsc
    mov %eax, latency_stamp(%rip)
    mov %edx, latency_stamp+4(%rip)
    mov $LAPIC_EOI, %eax
    movl $0, (%rax)
    pop %rdx
    pop %rax
    iretq

/* virtio-blk MSI-X (blk.c): count and EOI. */
    .globl blk_irq_entry
blk_irq_entry:
    push %rax
    incq blk_irqs(%rip)
    mov $LAPIC_EOI, %eax
    movl $0, (%rax)
    pop %rax
    iretq

/* e1000e MSI-X (e1000e.c): stub i (IDT VEC_E1000E + i) counts into
 * e1000e_irqs[i] and EOIs; E1000E_IRQ_STUB_SIZE bytes apart. */
    .balign E1000E_IRQ_STUB_SIZE
    .globl e1000e_irq_entries
e1000e_irq_entries:
    .set e1000e_stub, 0
    .rept E1000E_IRQ_STUBS
    .balign E1000E_IRQ_STUB_SIZE
    push %rax
    lock incq e1000e_irqs + 8 * e1000e_stub(%rip)
    mov $LAPIC_EOI, %eax
    movl $0, (%rax)
    pop %rax
    iretq
    .set e1000e_stub, e1000e_stub + 1
    .endr

    .globl spurious_entry
spurious_entry:                 /* no EOI for a spurious interrupt */
    iretq
