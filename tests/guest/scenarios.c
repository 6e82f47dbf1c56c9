/* scenarios.c: what testos does once every CPU is online, one function per
 * testos.run= name. Each runs on the BSP in ring 0 and puts its computation
 * in ring 3 with run_user(); kmain prints "done" and resets afterwards. */
#include "testos.h"

#define LAPIC_LVT_TIMER     0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE  0x3E0
#define LVT_MASKED          0x10000
#define LVT_PERIODIC        0x20000
#define DIVIDE_BY_1         0xB
#define ARM_WINDOW_US       20 /* most TSC time around one timed LAPIC access */

volatile u64 timer_ticks;   /* incremented by timer_entry (entry.S) */
volatile u64 latency_stamp; /* the TSC, stored by latency_entry (entry.S) */

static void scenario_hello(Cpu *bsp)
{
    kprintf("hello");
}

static void scenario_smp(Cpu *bsp)
{
    /* The "cpu I online" lines came from smp_start_aps; ready says the rest. */
}

static void scenario_idle(Cpu *bsp)
{
    kprintf("idle");
    cpu_halt_forever(); /* the APs halt already */
}

/* Writes count to the timer's initial-count register between two TSC reads,
 * with as few (emulated, under PVM) instructions between them as possible:
 * the timer starts somewhere between *before and *after. */
static inline void lapic_timer_arm_timed(u32 count, u64 *before, u64 *after)
{
    u32 lo0, hi0, lo1, hi1;

    __asm__ volatile("rdtsc\n\t"
                     "mov %%eax, %0\n\t"
                     "mov %%edx, %1\n\t"
                     "movl %4, (%5)\n\t"
                     "rdtsc"
                     : "=&r"(lo0), "=&r"(hi0), "=&a"(lo1), "=&d"(hi1)
                     : "r"(count), "r"(phys(LAPIC_BASE + LAPIC_TIMER_INITIAL))
                     : "memory");
    *before = (u64)hi0 << 32 | lo0;
    *after = (u64)hi1 << 32 | lo1;
}

/* The timer's current count, read between two TSC reads (as above). */
static inline u32 lapic_timer_read_timed(u64 *before, u64 *after)
{
    u32 lo0, hi0, lo1, hi1, count;

    __asm__ volatile("rdtsc\n\t"
                     "mov %%eax, %0\n\t"
                     "mov %%edx, %1\n\t"
                     "movl (%5), %4\n\t"
                     "rdtsc"
                     : "=&r"(lo0), "=&r"(hi0), "=&a"(lo1), "=&d"(hi1), "=&r"(count)
                     : "r"(phys(LAPIC_BASE + LAPIC_TIMER_CURRENT))
                     : "memory");
    *before = (u64)hi0 << 32 | lo0;
    *after = (u64)hi1 << 32 | lo1;
    return count;
}

/* True if two TSC reads around one LAPIC access are close enough together
 * (else the vCPU was held up in between and the access time is vague). */
static int arm_window_ok(u64 before, u64 after)
{
    return after - before <= ARM_WINDOW_US * boot_info.tsc_khz / 1000;
}

/* One LAPIC timer measurement against the TSC (lapic_timer_measure): in
 * cal_tsc TSC ticks the timer counted cal_lapic ticks. */
static u64 cal_lapic, cal_tsc;

/* Lets the masked timer count down for window_ms of TSC time. Each LAPIC
 * access is timed by the midpoint of the TSC reads around it, redone while
 * they lie too far apart (under PVM one emulated access takes microseconds
 * and the vCPU is now and then held up for milliseconds). */
static void lapic_timer_measure(u64 window_ms)
{
    u64 t0, t1, t2, t3;
    u32 left;

    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
    for (int tries = 1;; tries++) {
        lapic_timer_arm_timed(0xFFFFFFFF, &t0, &t1);
        if (arm_window_ok(t0, t1) || tries == 100) {
            break;
        }
    }
    while (rdtsc() - t1 < window_ms * boot_info.tsc_khz) {
        cpu_relax();
    }
    for (int tries = 1;; tries++) {
        left = lapic_timer_read_timed(&t2, &t3);
        if (arm_window_ok(t2, t3) || tries == 100) {
            break;
        }
    }
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    cal_lapic = 0xFFFFFFFFUL - left;
    cal_tsc = (t2 + t3) / 2 - (t0 + t1) / 2;
}

/* LAPIC timer ticks per millisecond, measured against the TSC over 50 ms. */
static u64 lapic_timer_calibrate(void)
{
    lapic_timer_measure(50);
    return cal_lapic * boot_info.tsc_khz / cal_tsc;
}

/* Initial count for a period of period_us, from one timer measurement. */
static u64 lapic_count_for_us(u64 period_us)
{
    u64 count = period_us * boot_info.tsc_khz / 1000 * cal_lapic / cal_tsc;

    return count < 1 ? 1 : count > 0xFFFFFFFFUL ? 0xFFFFFFFFUL : count;
}

/* Ring 3: busy for one second of TSC time; returns the ticks seen meanwhile. */
static u64 ticks_user(u64 unused)
{
    u64 second = boot_info.tsc_khz * 1000;
    u64 start = rdtsc();
    u64 first = timer_ticks;

    while (rdtsc() - start < second) {
    }
    return timer_ticks - first;
}

static void scenario_ticks(Cpu *bsp)
{
    u64 hz = boot_info.hz;
    u64 per_ms = lapic_timer_calibrate();
    u64 initial = per_ms * 1000 / hz;

    lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, initial ? initial : 1);
    u64 count = run_user(bsp, ticks_user, 0);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    kprintf("ticks hz=%lu count=%lu", hz, count);
}

/* Halts (sti; hlt) in ring 0 until the TSC passes start + ticks. The timer
 * handler runs between hlt and cli; nothing else is unmasked. */
static void halt_until(u64 start, u64 ticks)
{
    while (rdtsc() - start < ticks) {
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    }
}

/* Periodic timer at hz, the CPU halted in between: a nohz=off idle guest. */
static void scenario_ticks_idle(Cpu *bsp)
{
    u64 hz = boot_info.hz;
    u64 seconds = boot_info.seconds == PARAM_UNSET ? 5 : boot_info.seconds;
    u64 per_ms = lapic_timer_calibrate();
    u64 initial = per_ms * 1000 / hz;
    u64 first = timer_ticks;
    u64 start = rdtsc();

    lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, initial ? initial : 1);
    if (!seconds) {
        kprintf("ticks-idle hz=%lu", hz);
        cpu_halt_forever();
    }
    /* Up to half a period short of the end, so the tick due at the end is
     * counted (and one a little late or early makes no difference). */
    u64 second = boot_info.tsc_khz * 1000;
    halt_until(start, seconds * second - second / hz / 2);
    u64 count = timer_ticks - first;
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    kprintf("ticks-idle hz=%lu seconds=%lu count=%lu", hz, seconds, count);
}

/* Signed TSC ticks -> whole microseconds (rounded towards zero). */
static long tsc_to_us_signed(long ticks)
{
    u64 us = (ticks < 0 ? -(u64)ticks : (u64)ticks) * 1000 / boot_info.tsc_khz;

    return ticks < 0 ? -(long)us : (long)us;
}

/* cyclictest-like: n one-shot timer expiries period_us apart, each armed
 * right after the previous one was handled; the CPU halts in between. The
 * latency is the handler's first TSC read minus the programmed expiry: the
 * TSC midway through the write of the initial count + that count in TSC
 * ticks. An arming whose two TSC reads lie more than ARM_WINDOW_US apart
 * (the vCPU was preempted; under PVM the usual gap is 2-15 us of emulation,
 * natively well under 1 us) is redone, so the start is known to within half
 * of that. The loop runs in ring 0 (hlt), so it is kept short. */
static void scenario_latency(Cpu *bsp)
{
    u64 n = boot_info.n ? boot_info.n : 1000;
    u64 period_us = boot_info.period_us;
    long min = 0, max = 0, sum = 0;

    lapic_timer_measure(50);
    u32 initial = lapic_count_for_us(period_us);
    u64 expiry = initial * cal_tsc / cal_lapic; /* TSC ticks from arming */

    lapic_write(LAPIC_LVT_TIMER, VEC_LATENCY); /* one-shot, unmasked */
    for (u64 i = 0; i < n; i++) {
        u64 before, after;
        for (int tries = 1;; tries++) {
            latency_stamp = 0;
            lapic_timer_arm_timed(initial, &before, &after);
            if (arm_window_ok(before, after) || tries == 100) {
                break;
            }
            /* The vCPU was held up while arming: the start time is too vague.
             * Stop the timer, take an interrupt that may already be pending
             * (sti's shadow covers the nop), and arm again. */
            lapic_write(LAPIC_TIMER_INITIAL, 0);
            __asm__ volatile("sti; nop; cli" ::: "memory");
        }
        while (!latency_stamp) {
            __asm__ volatile("sti; hlt; cli" ::: "memory");
        }
        long delay = (long)(latency_stamp - (before + (after - before) / 2) - expiry);
        min = !i || delay < min ? delay : min;
        max = !i || delay > max ? delay : max;
        sum += delay;
    }
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_LATENCY);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    kprintf("latency n=%lu period_us=%lu min_us=%ld avg_us=%ld max_us=%ld", n, period_us,
            tsc_to_us_signed(min), tsc_to_us_signed(sum / (long)n),
            tsc_to_us_signed(max));
}

/* Ring 3: n writes to port 0x80 (allowed by the TSS I/O bitmap); ns each. */
static u64 pio_user(u64 n)
{
    u64 start = rdtsc();
    for (u64 i = 0; i < n; i++) {
        outb(0x80, 0);
    }
    return tsc_to_ns(rdtsc() - start) / n;
}

static void scenario_pio(Cpu *bsp)
{
    u64 n0 = boot_info.n ? boot_info.n : 20000;
    u64 n3 = boot_info.n ? boot_info.n : 5000;

    u64 start = rdtsc();
    for (u64 i = 0; i < n0; i++) {
        outb(0x80, 0);
    }
    u64 ns0 = tsc_to_ns(rdtsc() - start) / n0;
    kprintf("pio ring=0 n=%lu ns=%lu", n0, ns0);
    kprintf("pio ring=3 n=%lu ns=%lu", n3, run_user(bsp, pio_user, n3));
}

static void cpuid_count(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

/* Leaves whose ECX picks a subleaf: their first 16 subleaves are printed. */
static int cpuid_has_subleaves(u32 leaf)
{
    static const u32 subleafed[] = { 4,    7,    0xb,  0xd,  0xf,  0x10,
                                     0x12, 0x14, 0x17, 0x18, 0x1d, 0x1f };

    for (u32 i = 0; i < ARRAY_SIZE(subleafed); i++) {
        if (subleafed[i] == leaf) {
            return 1;
        }
    }
    return 0;
}

/* Every CPUID leaf the vCPU reports, in the basic, hypervisor and extended
 * ranges (each range up to its own maximum, at most 64 leaves). */
static void scenario_cpuid(Cpu *bsp)
{
    static const u32 bases[] = { 0, 0x40000000, 0x80000000 };

    for (u32 b = 0; b < ARRAY_SIZE(bases); b++) {
        u32 r[4];

        cpuid_count(bases[b], 0, r);
        u32 max = r[0] >= bases[b] && r[0] - bases[b] < 64 ? r[0] : bases[b];
        for (u32 leaf = bases[b]; leaf <= max; leaf++) {
            u32 subs = cpuid_has_subleaves(leaf) ? 16 : 1;
            for (u32 sub = 0; sub < subs; sub++) {
                cpuid_count(leaf, sub, r);
                kprintf("cpuid %x.%x %x %x %x %x", leaf, sub, r[0], r[1], r[2], r[3]);
            }
        }
    }
}

/* The PIIX4 PM block: QEMU's pc has it at 0x600 (SeaBIOS places it there
 * when QEMU serves ACPI tables; this VMM's -kernel boot too), as the
 * FADT's PM1a_EVT_BLK and PM1a_CNT_BLK say. */
#define PM1A_STS       0x600
#define PM1A_EN        0x602
#define PM1A_CNT       0x604
#define PM1_PWRBTN_STS 0x100
#define PM1_SLP_EN     0x2000 /* with SLP_TYP 0: \_S5, soft off */
#define APM_CNT        0xb2
#define ACPI_ENABLE    0xf1

/* Waits for the power button, then powers off through PM1a_CNT.  Polls:
 * the SCI stays masked (testos has no IRQ 9 handler).  PWRBTN_EN must be
 * set: QEMU records no press otherwise. */
static void scenario_powerdown(Cpu *bsp)
{
    outb(APM_CNT, ACPI_ENABLE);
    outw(PM1A_EN, PM1_PWRBTN_STS);
    kprintf("powerdown waiting sts=%x en=%x cnt=%x", inw(PM1A_STS), inw(PM1A_EN),
            inw(PM1A_CNT));
    while (!(inw(PM1A_STS) & PM1_PWRBTN_STS)) {
        __asm__ volatile("pause");
    }
    outw(PM1A_STS, PM1_PWRBTN_STS); /* write 1 to clear */
    kprintf("powerdown button sts=%x", inw(PM1A_STS) & PM1_PWRBTN_STS);
    outw(PM1A_CNT, PM1_SLP_EN);
    cpu_halt_forever(); /* the VM is off, or stopped under -no-shutdown */
}

/* The reset scenarios: the guest resets the machine in one way each, to
 * show the VMM names the cause (-d cpu_reset, the triple fault report). */
static void scenario_triple_fault(Cpu *bsp)
{
    struct __attribute__((packed)) {
        u16 limit;
        u64 base;
    } no_idt = { 0, 0 };

    kprintf("triple-fault now");
    /* no IDT: ud2's #UD cannot be delivered (#GP), nor that (#DF): shutdown */
    __asm__ volatile("lidt %0; ud2" : : "m"(no_idt));
    cpu_halt_forever();
}

static void scenario_reset_cf9(Cpu *bsp)
{
    kprintf("reset-cf9 now");
    outb(0xcf9, 0x02); /* SYS_RST: a hard reset when RST_CPU goes 0 to 1 */
    outb(0xcf9, 0x06);
    cpu_halt_forever();
}

static void scenario_reset_92(Cpu *bsp)
{
    kprintf("reset-92 now");
    outb(0x92, inb(0x92) | 1);
    cpu_halt_forever();
}

static const struct {
    const char *name;
    void (*run)(Cpu *bsp);
} scenarios[] = {
    { "hello", scenario_hello },
    { "smp", scenario_smp },
    { "idle", scenario_idle },
    { "ticks", scenario_ticks },
    { "pio", scenario_pio },
    { "ticks-idle", scenario_ticks_idle },
    { "latency", scenario_latency },
    { "blk", scenario_blk },
    { "blk-perf", scenario_blk_perf },
    { "blk-hostile", scenario_blk_hostile },
    { "dirty", scenario_dirty },
    { "cpuid", scenario_cpuid },
    { "net", scenario_net },
    { "net-blast", scenario_net_blast },
    { "net-hostile", scenario_net_hostile },
    { "powerdown", scenario_powerdown },
    { "hotplug", scenario_hotplug },
    { "failover", scenario_failover },
    { "vfio-e1000e", scenario_vfio_e1000e },
    { "vfio-hostile", scenario_vfio_hostile },
    { "vfio-e1000e-msi", scenario_vfio_e1000e_msi },
    { "pci-rom", scenario_pci_rom },
    { "triple-fault", scenario_triple_fault },
    { "reset-cf9", scenario_reset_cf9 },
    { "reset-92", scenario_reset_92 },
    { "kvmclock", scenario_kvmclock },
};

static int scenario_find(const char *name)
{
    for (u32 i = 0; i < ARRAY_SIZE(scenarios); i++) {
        if (!strncmp(scenarios[i].name, name, 64)) {
            return (int)i;
        }
    }
    return -1;
}

int scenario_known(const char *name)
{
    return scenario_find(name) >= 0;
}

void scenario_run(Cpu *bsp)
{
    scenarios[scenario_find(boot_info.scenario)].run(bsp);
}
