/* kvmclock.c: the KVM paravirtual clock (MSR_KVM_SYSTEM_TIME_NEW) read
 * against the TSC, to show what the VMM does to guest time across a stop.
 * KVM's TSC runs on while the VM is stopped; QEMU sets the kvmclock back
 * to where it stopped (the stop is not guest time) and, with
 * KVM_KVMCLOCK_CTRL, has KVM flag the pause in the clock's page (the
 * guest's soft-lockup watchdog reads and clears PVCLOCK_GUEST_STOPPED). */
#include "testos.h"

#define MSR_KVM_SYSTEM_TIME_NEW  0x4b564d01
#define KVM_CPUID_SIGNATURE      0x40000000
#define KVM_CPUID_FEATURES       0x40000001
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define PVCLOCK_GUEST_STOPPED    0x02
#define GAP_MS                   1000 /* TSC time between two reads that means a stop */
#define WATCH_MS                 300000UL /* then give up: nobody stopped the VM */

/* struct pvclock_vcpu_time_info, which KVM writes (Linux's pvclock-abi.h) */
struct pvclock {
    u32 version; /* odd while KVM writes the rest */
    u32 pad0;
    u64 tsc_timestamp;
    u64 system_time; /* ns at tsc_timestamp */
    u32 tsc_to_system_mul;
    signed char tsc_shift;
    u8 flags;
    u8 pad[2];
};

static volatile struct pvclock clock __attribute__((aligned(64)));

/* The clock in ns, and the TSC it was computed from, and its flags. */
static u64 kvmclock_read(u64 *tsc, u8 *flags)
{
    u32 version;
    u64 ns;

    do {
        version = clock.version;
        __asm__ volatile("" ::: "memory");
        u64 delta = (*tsc = rdtsc()) - clock.tsc_timestamp;
        if (clock.tsc_shift < 0) {
            delta >>= -clock.tsc_shift;
        } else {
            delta <<= clock.tsc_shift;
        }
        ns = clock.system_time +
             (u64)(((unsigned __int128)delta * clock.tsc_to_system_mul) >> 32);
        *flags = clock.flags;
        __asm__ volatile("" ::: "memory");
    } while ((version & 1) || version != clock.version);
    return ns;
}

static int kvmclock_offered(void)
{
    u32 a, b, c, d;

    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                     : "a"(KVM_CPUID_SIGNATURE), "c"(0));
    if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d) { /* "KVMKVMKVM\0\0\0" */
        return 0;
    }
    __asm__ volatile("cpuid"
                     : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
                     : "a"(KVM_CPUID_FEATURES), "c"(0));
    return (a & KVM_FEATURE_CLOCKSOURCE2) != 0;
}

/* Turns the BSP's kvmclock on, then reads it until one read comes more than
 * GAP_MS of TSC time after the one before (the VM was stopped in between)
 * and prints both clocks' advance across that gap and the stopped flag. */
void scenario_kvmclock(Cpu *bsp)
{
    u64 tsc, last_tsc, ns, last_ns, start;
    u8 flags;

    if (!kvmclock_offered()) {
        kprintf("kvmclock absent");
        return;
    }
    wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)(unsigned long)&clock | 1);
    last_ns = kvmclock_read(&last_tsc, &flags);
    start = last_tsc;
    kprintf("kvmclock up ns=%lu flags=%x", last_ns, flags);
    for (;;) {
        ns = kvmclock_read(&tsc, &flags);
        if (tsc - last_tsc >= GAP_MS * boot_info.tsc_khz) {
            kprintf("kvmclock gap tsc_ms=%lu clock_ms=%lu stopped=%u",
                    tsc_to_ns(tsc - last_tsc) / 1000000, (ns - last_ns) / 1000000,
                    (flags & PVCLOCK_GUEST_STOPPED) ? 1 : 0);
            break;
        }
        if (tsc - start >= WATCH_MS * boot_info.tsc_khz) {
            kprintf("kvmclock no gap");
            break;
        }
        last_tsc = tsc;
        last_ns = ns;
    }
    wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0); /* KVM writes the page no more */
}
