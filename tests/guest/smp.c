/* smp.c: the local APIC and AP start-up with INIT/SIPI/SIPI (firmware.c says
 * which CPUs exist). The BSP starts one AP at a time, so the AP boot variables
 * and the trampoline's stackless path need no lock. */
#include "testos.h"

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_SVR 0xF0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_ERROR 0x370
#define LVT_MASKED 0x10000
#define ICR_INIT 0x4500    /* INIT, level assert */
#define ICR_STARTUP 0x4600 /* SIPI; low byte = start page */
#define ICR_BUSY 0x1000
#define MSR_APIC_BASE 0x1B
#define APIC_BASE_ENABLE 0x800

u32 cpus_online;
volatile u64 ap_boot_rsp;  /* read by ap_entry_64 */
Cpu *volatile ap_boot_cpu; /* read by ap_entry_64 */
static int smp_announce;

extern const u8 trampoline_start[], trampoline_end[];

u32 lapic_read(u32 reg)
{
    return *(volatile u32 *)phys(LAPIC_BASE + reg);
}

void lapic_write(u32 reg, u32 value)
{
    *(volatile u32 *)phys(LAPIC_BASE + reg) = value;
}

/* Software-enables this CPU's xAPIC with every local interrupt masked.
 * Runs before the CPU loads its TSS (cpu_init says why). The TPR write comes
 * last: under QEMU's TCG, LINT0 (ExtINT from the 8259, where SeaBIOS leaves
 * the PIT ticking) may have left a hardware-interrupt request pending, and
 * masking LINT0 does not withdraw it; a TPR write makes QEMU's APIC look
 * again and drop it. Otherwise the first sti took an interrupt with no
 * vector: #GP at user_start, about one boot in ten under load. */
void lapic_init(void)
{
    u64 base = rdmsr(MSR_APIC_BASE);

    if (!(base & APIC_BASE_ENABLE)) {
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE);
    }
    lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(LAPIC_TPR, 0);
}

u32 cpu_index_from_apic(void)
{
    u32 id = lapic_read(LAPIC_ID) >> 24;

    for (u32 i = 0; i < boot_info.ncpus && i < MAX_CPUS; i++) {
        if (boot_info.apic_ids[i] == id) {
            return i;
        }
    }
    return 0;
}

static void lapic_send_ipi(u32 apic_id, u32 icr)
{
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, icr);
    for (int i = 0; i < 1000 && (lapic_read(LAPIC_ICR_LOW) & ICR_BUSY); i++) {
        cpu_relax();
    }
}

/* ---- AP start-up ---- */

/* Long-mode C entry of an AP (from head64.S), on its own kernel stack. */
void ap_main(Cpu *cpu)
{
    cpu_init(cpu);
    if (smp_announce) {
        kprintf("cpu %u online", cpu->index);
    }
    __atomic_store_n(&cpu->online, 1, __ATOMIC_RELEASE);
    cpu_halt_forever();
}

static int ap_wait_online(Cpu *cpu, u64 timeout_us)
{
    u64 start = rdtsc();
    u64 ticks = timeout_us * boot_info.tsc_khz / 1000;

    while (!__atomic_load_n(&cpu->online, __ATOMIC_ACQUIRE)) {
        if (rdtsc() - start > ticks) {
            return 0;
        }
        cpu_relax();
    }
    return 1;
}

/* Starts every AP the firmware tables list, one at a time; with announce, each
 * prints "cpu I online". Counts them in cpus_online. */
void smp_start_aps(int announce)
{
    u32 n = boot_info.ncpus;

    smp_announce = announce;
    cpus_online = 1;
    if (n <= 1) {
        return;
    }
    memcpy(phys(TRAMPOLINE_ADDR), trampoline_start, trampoline_end - trampoline_start);
    for (u32 i = 1; i < n; i++) {
        lapic_send_ipi(boot_info.apic_ids[i], ICR_INIT);
    }
    delay_us(10000);
    for (u32 i = 1; i < n; i++) {
        Cpu *cpu = &cpus[i];
        u32 apic_id = boot_info.apic_ids[i];

        cpu_assign(cpu, i);
        ap_boot_cpu = cpu;
        ap_boot_rsp = cpu->kernel_stack_top;
        lapic_send_ipi(apic_id, ICR_STARTUP | TRAMPOLINE_ADDR >> 12);
        delay_us(200);
        lapic_send_ipi(apic_id, ICR_STARTUP | TRAMPOLINE_ADDR >> 12);
        if (!ap_wait_online(cpu, 5000000)) {
            kprintf("cpu %u (apic %u) did not start", i, apic_id);
            return; /* it may still wake up and use the boot variables */
        }
        cpus_online++;
    }
}
