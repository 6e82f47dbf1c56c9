/* scenarios.c: what testos does once every CPU is online, one function per
 * testos.run= name. Each runs on the BSP in ring 0 and puts its computation
 * in ring 3 with run_user(); kmain prints "done" and resets afterwards. */
#include "testos.h"

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3E0
#define LVT_MASKED 0x10000
#define LVT_PERIODIC 0x20000
#define DIVIDE_BY_1 0xB

volatile u64 timer_ticks; /* incremented by timer_entry (entry.S) */

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

/* LAPIC timer ticks per millisecond, measured against the TSC over 10 ms. */
static u64 lapic_timer_calibrate(void)
{
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
    u64 start = rdtsc();
    lapic_write(LAPIC_TIMER_INITIAL, 0xFFFFFFFF);
    while (rdtsc() - start < 10 * boot_info.tsc_khz) {
        cpu_relax();
    }
    u32 left = lapic_read(LAPIC_TIMER_CURRENT);
    u64 elapsed = rdtsc() - start;
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    return (0xFFFFFFFFUL - left) * boot_info.tsc_khz / elapsed;
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

static const struct {
    const char *name;
    void (*run)(Cpu *bsp);
} scenarios[] = {
    {"hello", scenario_hello}, {"smp", scenario_smp}, {"idle", scenario_idle},
    {"ticks", scenario_ticks}, {"pio", scenario_pio},
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
