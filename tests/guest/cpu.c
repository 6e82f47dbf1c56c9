/* cpu.c: per-CPU state and the ring-0 machinery around it: TSS + I/O bitmap,
 * IDT, the handlers of ring-3 requests and of exceptions, reset and halt.
 * Each CPU writes only its own Cpu, TSS and GDT slot; the BSP fills the IDT. */
#include "testos.h"

#define TSS_SIZE 104
#define IO_BITMAP_SIZE 8192 /* one bit per port, 0 = allowed */

_Static_assert(__builtin_offsetof(Cpu, kernel_rsp) == CPU_KERNEL_RSP, "Cpu layout");
_Static_assert(__builtin_offsetof(Cpu, user_stack_top) == CPU_USER_STACK, "Cpu layout");
_Static_assert(sizeof(Cpu) == CPU_SIZE, "Cpu layout");

Cpu cpus[MAX_CPUS];

/* All TSSs sit back to back and share one I/O permission bitmap after the last
 * one: CPU i's I/O map base is the distance from its TSS to the bitmap. The
 * bitmap is all zeros (every port allowed from ring 3: PVM ignores IOPL) and
 * ends with the 0xff byte the CPU reads past the last port. It lives in .data,
 * so nothing has to zero it at run time. */
static u8 tss_area[MAX_CPUS * TSS_SIZE + IO_BITMAP_SIZE + 1]
    __attribute__((aligned(16))) = {
        [MAX_CPUS * TSS_SIZE + IO_BITMAP_SIZE] = 0xff,
};

static u64 idt[256 * 2] __attribute__((aligned(16)));

extern u64 gdt[];
extern u8 kernel_stacks[], entry_stacks[], user_stacks[];
extern u8 vector_stubs[];
extern void ud_entry(void), timer_entry(void), latency_entry(void), spurious_entry(void);
extern void blk_irq_entry(void);
extern u8 e1000e_irq_entries[];

static void idt_set(unsigned vector, u64 handler)
{
    idt[vector * 2] = (handler & 0xFFFF) | ((u64)KERNEL_CS << 16) | (0x8EUL << 40) |
                      ((handler >> 16 & 0xFFFF) << 48);
    idt[vector * 2 + 1] = handler >> 32;
}

static void idt_fill(void)
{
    for (unsigned v = 0; v < 256; v++) {
        idt_set(v, (u64)vector_stubs + 16 * v);
    }
    idt_set(6, (u64)ud_entry); /* #UD: also ring 3's way into ring 0 */
    idt_set(VEC_TIMER, (u64)timer_entry);
    idt_set(VEC_LATENCY, (u64)latency_entry);
    idt_set(VEC_BLK, (u64)blk_irq_entry);
    for (unsigned i = 0; i < E1000E_IRQ_STUBS; i++) {
        idt_set(VEC_E1000E + i, (u64)e1000e_irq_entries + E1000E_IRQ_STUB_SIZE * i);
    }
    idt_set(VEC_SPURIOUS, (u64)spurious_entry);
}

static void tss_install(Cpu *cpu)
{
    u32 i = cpu->index;
    u8 *tss = tss_area + TSS_SIZE * i;
    u64 base = (u64)tss;
    u32 iomap = TSS_SIZE * (MAX_CPUS - i);
    u32 limit = iomap + IO_BITMAP_SIZE;
    u64 rsp0 = cpu->entry_stack_top - 16;

    /* RSP0 for interrupts from ring 3, with this CPU's Cpu pointer above it
     * (ud_entry finds it there). */
    *(Cpu **)rsp0 = cpu;
    memcpy(tss + 4, &rsp0, 8);
    memcpy(tss + 102, &iomap, 2);
    gdt[6 + 2 * i] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x89UL << 40 |
                     (u64)(limit >> 16 & 0xF) << 48 | (base >> 24 & 0xFF) << 56;
    gdt[7 + 2 * i] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(TSS_SEL0 + 16 * i));
}

/* Sets the stack pointers of CPU index; the caller owns the Cpu. */
void cpu_assign(Cpu *cpu, u32 index)
{
    cpu->index = index;
    cpu->kernel_stack_top = (u64)kernel_stacks + (u64)KERNEL_STACK_SIZE * (index + 1);
    cpu->entry_stack_top = (u64)entry_stacks + (u64)ENTRY_STACK_SIZE * (index + 1);
    cpu->user_stack_top = (u64)user_stacks + (u64)USER_STACK_SIZE * (index + 1);
}

/* Per-CPU ring-0 set-up: local APIC, TSS, IDT.
 *
 * The local APIC comes first, before ltr: under Debian's QEMU (pc, KVM) the
 * TPR write in lapic_init exits to its kvmvapic, which reads and writes back
 * the whole vCPU state, and AMD KVM reports TR with its busy type (11). In
 * the rig's nested L2, TCG's I/O permission check then refuses every ring-3
 * port access (it wants type 9, what its own ltr leaves), so the PCI scan
 * took #GP. After that round trip, ltr loads TR afresh. (Writing CR8
 * instead is no way out: TCG's CR8 write in a nested guest may raise the
 * virtual interrupt without QEMU's global lock, and Debian QEMU 7.2 aborts.) */
void cpu_init(Cpu *cpu)
{
    struct __attribute__((packed)) {
        u16 limit;
        u64 base;
    } idtr = {sizeof(idt) - 1, (u64)idt};

    lapic_init();
    tss_install(cpu);
    if (cpu->index == 0) {
        idt_fill();
    }
    __asm__ volatile("lidt %0" : : "m"(idtr));
    cpu->apic_id = lapic_read(0x20) >> 24;
}

/* A request from ring 3 (user_request), in ring 0 with interrupts off. */
u64 user_request_handler(u64 a0, u64 a1, u64 nr)
{
    switch (nr) {
    case REQ_WRITE:
        console_write_line((const char *)a0, a1);
        return 0;
    default:
        return (u64)-1;
    }
}

/* frame: vector, error code, then the CPU's rip, cs, rflags, rsp, ss. */
void exception_handler(u64 *frame)
{
    char line[120];
    int len = snformat(line, sizeof(line), "testos: exception %lu at RIP=0x%lx cpu %u",
                       frame[0], frame[2], cpu_index_from_apic());

    console_emergency_line(line, len);
    machine_reset();
}

void machine_reset(void)
{
    outb(0x64, 0xFE); /* i8042: pulse the reset line */
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

void cpu_halt_forever(void)
{
    for (;;) {
        __asm__ volatile("sti; hlt");
    }
}
