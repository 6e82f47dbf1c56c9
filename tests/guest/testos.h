/* testos.h: constants shared by testos's assembly and C (selectors, memory
 * layout, per-CPU structure offsets) and the C declarations of every file.
 * Assembly includes the part above the __ASSEMBLER__ guard only. */
#ifndef TESTOS_H
#define TESTOS_H

/* Memory layout (physical == virtual: the low 4 GiB are identity mapped). */
#define KERNEL_BASE 0x100000   /* payload link and load address */
#define TRAMPOLINE_ADDR 0x8000 /* AP real-mode start (SIPI vector 0x08) */
#define LAPIC_BASE 0xFEE00000
#define MAX_CPUS 64

/* The boot disk image (bootdisk.S): sector 1 begins with this 16-byte magic,
 * then the 256-byte command-line area. */
#define BOOTDISK_MAGIC "TESTOS-CMDLINE-1"
#define BOOTDISK_CMDLINE_SIZE 256

/* GDT selectors (gdt in head64.S). */
#define KERNEL_CS 0x08 /* 64-bit code, DPL 0 */
#define KERNEL_DS 0x10 /* flat data, DPL 0 (also the 32-bit boot data segment) */
#define USER_DS 0x18   /* flat data, DPL 3 */
#define USER_CS 0x20   /* 64-bit code, DPL 3 */
#define BOOT_CS32 0x28 /* flat 32-bit code, DPL 0: real mode -> long mode only */
#define TSS_SEL0 0x30  /* first 16-byte TSS descriptor; CPU i uses 0x30 + 16 * i */
#define GDT_ENTRIES (6 + 2 * MAX_CPUS)

/* Interrupt vectors testos uses (everything else is "unexpected"). */
#define VEC_TIMER 0x40   /* timer_entry: counts timer_ticks */
#define VEC_LATENCY 0x41 /* latency_entry: stores the TSC in latency_stamp */
#define VEC_BLK 0x42     /* blk_irq_entry: counts blk_irqs (virtio-blk MSI-X) */
#define VEC_E1000E 0x50   /* ..0x54: e1000e MSI-X vectors 0-4 (e1000e.c) */
#define VEC_E1000E_STRAY 0x55 /* what vfio-hostile's garbage MSI-X entries carry */
#define E1000E_IRQ_STUBS 6    /* e1000e_irq_entries (entry.S): 0x50-0x55 */
#define E1000E_IRQ_STUB_SIZE 32
#define VEC_SPURIOUS 0xFF

/* Requests from ring 3 to ring 0 (user_request: a ud2 at user_trap; entry.S). */
#define REQ_EXIT 0  /* rdi = value: return from run_user() with it */
#define REQ_WRITE 1 /* rdi = text, rsi = length: one whole console line */

/* Offsets into Cpu (checked by _Static_assert in cpu.c); sizeof(Cpu) is CPU_SIZE. */
#define CPU_KERNEL_RSP 0 /* ring-0 stack pointer saved by run_user() */
#define CPU_USER_STACK 8 /* top of the ring-3 stack */
#define CPU_SIZE 64

/* Per-CPU stack sizes (in .noinit: never zeroed). */
#define KERNEL_STACK_SIZE 8192
#define ENTRY_STACK_SIZE 8192
#define USER_STACK_SIZE 32768

#ifndef __ASSEMBLER__

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;

#define NULL ((void *)0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIB (1024UL * 1024UL)

/* One per CPU; index 0 is the BSP. The first two fields are used by entry.S. */
typedef struct Cpu {
    u64 kernel_rsp;
    u64 user_stack_top;
    u64 entry_stack_top; /* interrupts and requests from ring 3 (TSS RSP0) */
    u64 kernel_stack_top;
    u32 index;
    u32 apic_id;
    volatile u32 online;
    u8 pad[CPU_SIZE - 44];
} Cpu;

#define E820_MAX 128
#define E820_USABLE 1
#define PARAM_UNSET (~0UL) /* a testos.* parameter not on the command line */

typedef struct E820Entry {
    u64 base;
    u64 size;
    u32 type;
} E820Entry;

/* What the boot path learned; filled once by the BSP (boot.c). */
typedef struct BootInfo {
    char cmdline[2048];
    char scenario[64];
    u64 hz;        /* testos.hz, default 1000 */
    u64 n;         /* testos.n, 0 = the scenario's default */
    u64 period_us; /* testos.period_us, default 1000 */
    u64 seconds;   /* testos.seconds, PARAM_UNSET = the scenario's default; 0 = forever */
    /* virtio-blk scenarios (blk.c); see README.md */
    u64 sectors;  /* testos.sectors, default 64 */
    u64 wstart;   /* testos.wstart, default 128 */
    u64 mib;      /* testos.mib, default 64 */
    u64 ops;      /* testos.ops, default 2000 */
    u64 irq;      /* testos.irq (0/1), PARAM_UNSET = the scenario's default */
    u64 blkdev;   /* testos.blkdev, PARAM_UNSET = first non-boot virtio-blk */
    u64 evidx;    /* testos.evidx (0/1), default 1 */
    u64 indirect; /* testos.indirect (0/1), default 1 */
    /* the dirty scenario (dirty.c); see README.md */
    u64 mibps;     /* testos.mibps, default 50; 0 = no dirtying */
    u64 wss_mib;   /* testos.wss_mib, PARAM_UNSET = all the RAM dirty.c can use */
    u64 period_ms; /* testos.period_ms, default 10 */
    /* the virtio-net scenarios (net.c); see README.md */
    u32 ip;         /* testos.ip=A.B.C.D (host order), default 198.18.0.2 */
    u32 dst_ip;     /* testos.dst_ip=A.B.C.D (net-blast), default 198.18.0.1 */
    u8 dst_mac[6];  /* testos.dst_mac=XX:XX:XX:XX:XX:XX (net-blast), default broadcast */
    u64 frame;      /* testos.frame (net-blast frame bytes, 60..9014), default 60 */
    u64 netctl;     /* testos.netctl (0/1: net sets its rx filter, reports the link) */
    u64 standby;    /* testos.standby (0/1: negotiate VIRTIO_NET_F_STANDBY, failover) */
    u64 noeject;    /* testos.noeject (0/1: failover ignores eject requests) */
    char skip[256]; /* testos.skip=NAME,NAME,... (net-hostile cases left out) */
    u64 mem_mib;    /* from the e820 map */
    u32 e820_count;
    E820Entry e820[E820_MAX]; /* copied from boot_params */
    u32 ncpus;                /* CPUs the firmware tables list (at least 1) */
    u32 apic_ids[MAX_CPUS];
    u64 tsc_khz; /* TSC ticks per millisecond */
} BootInfo;

extern BootInfo boot_info;
extern Cpu cpus[MAX_CPUS];
extern u32 cpus_online;

/* lib.c: freestanding helpers, usable from ring 0 and ring 3. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
int format_line(char *buf, size_t size, const char *fmt, __builtin_va_list ap);
int snformat(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void spin_lock(volatile u32 *lock);
void spin_unlock(volatile u32 *lock);

/* console.c: COM1. kprintf is ring 0 only; uprintf is ring 3 only. Both print
 * "testos: " + the formatted text + "\n" as one uninterrupted line. */
void console_init(void);
void console_write_line(const char *text, size_t len);
void console_emergency_line(const char *text, size_t len);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void uprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cpu.c: descriptor tables, ring switches, exceptions. Ring 0 only. */
void cpu_assign(Cpu *cpu, u32 index);
void cpu_init(Cpu *cpu);
void exception_handler(u64 *frame) __attribute__((noreturn));
u64 run_user(Cpu *cpu, u64 (*fn)(u64), u64 arg); /* entry.S */
void machine_reset(void) __attribute__((noreturn));
void cpu_halt_forever(void) __attribute__((noreturn));
u64 user_request_handler(u64 a0, u64 a1, u64 nr);
u64 user_request(u64 nr, u64 a0, u64 a1); /* ring 3 */

/* time.c: TSC. */
void tsc_calibrate(void);
void delay_us(u64 us);
u64 tsc_to_ns(u64 ticks);

/* firmware.c */
u64 firmware_find_cpus(u64 unused); /* ring 3: fills boot_info.ncpus/apic_ids */

/* smp.c */
void smp_start_aps(int announce);
u32 lapic_read(u32 reg);
void lapic_write(u32 reg, u32 value);
void lapic_init(void);
u32 cpu_index_from_apic(void);

/* boot.c */
void kmain(u64 boot_params) __attribute__((noreturn));
/* True if testos.skip (a comma-separated list) names this hostile case. */
int testos_skipped(const char *name);
void ap_main(Cpu *cpu) __attribute__((noreturn));

/* scenarios.c */
int scenario_known(const char *name);
void scenario_run(Cpu *bsp); /* returns when the scenario is done */

/* blk.c: the virtio-blk scenarios (driver in virtio.c, PCI in pci.c) */
void scenario_blk(Cpu *bsp);
void scenario_blk_perf(Cpu *bsp);
void scenario_blk_hostile(Cpu *bsp);
extern volatile u64 blk_irqs; /* incremented by blk_irq_entry (entry.S) */

/* net.c: the virtio-net scenarios (driver there, generic part in virtio.c) */
void scenario_net(Cpu *bsp);
void scenario_net_blast(Cpu *bsp);
void scenario_net_hostile(Cpu *bsp);

/* e1000e.c: the 82574L (QEMU's e1000e, passed through by vfio-pci) */
void scenario_vfio_e1000e(Cpu *bsp);
void scenario_vfio_e1000e_msi(Cpu *bsp);
void scenario_vfio_hostile(Cpu *bsp);
extern volatile u64 e1000e_irqs[E1000E_IRQ_STUBS]; /* counted by e1000e_irq_entries */

/* dirty.c: the live-migration workload */
void scenario_dirty(Cpu *bsp);
/* hotplug.c: ACPI PCI hot-plug by polling its registers */
void scenario_hotplug(Cpu *bsp);
/* pci.c: the expansion ROM BARs as found at boot */
void scenario_pci_rom(Cpu *bsp);
void scenario_failover(Cpu *bsp);
void scenario_kvmclock(Cpu *bsp);

/* A pointer to physical address addr (identity mapped). The empty asm keeps
 * the compiler from reasoning about small constant addresses. */
static inline void *phys(u64 addr)
{
    __asm__("" : "+r"(addr));
    return (void *)addr;
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline void outb(u16 port, u8 value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void outw(u16 port, u16 value)
{
    __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline u16 inw(u16 port)
{
    u16 value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void outl(u16 port, u32 value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline u32 inl(u16 port)
{
    u32 value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void wrmsr(u32 msr, u64 value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)value), "d"((u32)(value >> 32)));
}

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

#endif /* __ASSEMBLER__ */
#endif /* TESTOS_H */
