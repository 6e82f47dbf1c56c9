/* time.c: the TSC as testos's clock, calibrated once by the BSP against PIT
 * channel 2 (gate and output through port 0x61) over about 10 ms. */
#include "testos.h"

#define PIT_HZ 1193182
#define PIT_COUNT 11932 /* 10 ms */
#define PORT_61_GATE2 0x01
#define PORT_61_SPEAKER 0x02
#define PORT_61_OUT2 0x20

#define TSC_KHZ_MIN 100000UL    /* 100 MHz */
#define TSC_KHZ_MAX 10000000UL  /* 10 GHz */
#define TSC_KHZ_GUESS 2000000UL /* when nothing else is known */

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid"
                     : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                     : "a"(leaf), "c"(0));
}

/* TSC kHz from CPUID 0x15 (crystal ratio) or 0x16 (base MHz); 0 if neither. */
static u64 tsc_khz_from_cpuid(void)
{
    u32 a, b, c, d, max;

    cpuid(0, &max, &b, &c, &d);
    if (max >= 0x15) {
        cpuid(0x15, &a, &b, &c, &d);
        if (a && b && c) {
            return (u64)c * b / a / 1000;
        }
    }
    if (max >= 0x16) {
        cpuid(0x16, &a, &b, &c, &d);
        return (u64)(a & 0xFFFF) * 1000;
    }
    return 0;
}

/* TSC ticks while PIT channel 2 counts PIT_COUNT in mode 0; stops waiting
 * after TSC_KHZ_MAX * 10 ms worth of ticks (no PIT behind port 0x61). */
static u64 tsc_ticks_per_pit_window(void)
{
    u8 port61 = inb(0x61);
    u64 start, now;

    outb(0x61, (port61 & ~PORT_61_SPEAKER) | PORT_61_GATE2);
    outb(0x43, 0xB0); /* channel 2, lobyte/hibyte, mode 0 */
    outb(0x42, PIT_COUNT & 0xFF);
    outb(0x42, PIT_COUNT >> 8);
    start = rdtsc();
    do {
        now = rdtsc();
    } while (!(inb(0x61) & PORT_61_OUT2) && now - start < TSC_KHZ_MAX * 10);
    outb(0x61, port61);
    return now - start;
}

void tsc_calibrate(void)
{
    u64 khz = tsc_ticks_per_pit_window() * PIT_HZ / ((u64)PIT_COUNT * 1000);

    if (khz < TSC_KHZ_MIN || khz >= TSC_KHZ_MAX) {
        u64 from_cpuid = tsc_khz_from_cpuid();
        khz = from_cpuid >= TSC_KHZ_MIN && from_cpuid < TSC_KHZ_MAX ? from_cpuid
                                                                    : TSC_KHZ_GUESS;
        kprintf("warning: no PIT channel 2 at port 0x61, TSC taken as %lu kHz", khz);
    }
    boot_info.tsc_khz = khz;
}

void delay_us(u64 us)
{
    u64 start = rdtsc();
    u64 ticks = us * boot_info.tsc_khz / 1000;

    while (rdtsc() - start < ticks) {
        cpu_relax();
    }
}

u64 tsc_to_ns(u64 ticks)
{
    return ticks * 1000000 / boot_info.tsc_khz;
}
