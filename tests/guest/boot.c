/* boot.c: the BSP's boot sequence (kmain) and what it learns from the loader:
 * boot_params (e820 map -> memory size, command line -> testos.* parameters)
 * and the MP table. The parsing runs in ring 3, where it is native speed. */
#include "testos.h"

#define BP_E820_COUNT 0x1e8
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define FOUR_GIB 0x100000000UL

BootInfo boot_info;

static u64 parse_u64(const char *s, size_t len)
{
    u64 v = 0;
    for (size_t i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (u64)(s[i] - '0');
    }
    return v;
}

/* The numeric testos.* parameters: "testos.NAME=" and where the value goes. */
static const struct {
    const char *key;
    u64 *value;
} params[] = {
    {"testos.hz=", &boot_info.hz},
    {"testos.n=", &boot_info.n},
    {"testos.period_us=", &boot_info.period_us},
    {"testos.seconds=", &boot_info.seconds},
    {"testos.sectors=", &boot_info.sectors},
    {"testos.wstart=", &boot_info.wstart},
    {"testos.mib=", &boot_info.mib},
    {"testos.ops=", &boot_info.ops},
    {"testos.irq=", &boot_info.irq},
    {"testos.blkdev=", &boot_info.blkdev},
    {"testos.evidx=", &boot_info.evidx},
    {"testos.indirect=", &boot_info.indirect},
    {"testos.mibps=", &boot_info.mibps},
    {"testos.wss_mib=", &boot_info.wss_mib},
    {"testos.period_ms=", &boot_info.period_ms},
    {"testos.frame=", &boot_info.frame},
    {"testos.netctl=", &boot_info.netctl},
    {"testos.standby=", &boot_info.standby},
    {"testos.noeject=", &boot_info.noeject},
};

/* "A.B.C.D" -> host-order u32; *ok = 0 if it is not one. */
static u32 parse_ip(const char *s, size_t len, int *ok)
{
    u32 ip = 0, part = 0, parts = 0, digits = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!digits || part > 255) {
                *ok = 0;
                return 0;
            }
            ip = ip << 8 | part;
            parts++;
            part = digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9' && digits < 3) {
            part = part * 10 + (u32)(s[i] - '0');
            digits++;
        } else {
            *ok = 0;
            return 0;
        }
    }
    *ok = parts == 4;
    return ip;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        return (c | 0x20) - 'a' + 10;
    }
    return -1;
}

/* "XX:XX:XX:XX:XX:XX" -> mac; 0 if it is not one (mac untouched). */
static int parse_mac(const char *s, size_t len, u8 mac[6])
{
    u8 out[6];

    if (len != 17) {
        return 0;
    }
    for (u32 i = 0; i < 6; i++) {
        int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':')) {
            return 0;
        }
        out[i] = (u8)(hi << 4 | lo);
    }
    memcpy(mac, out, 6);
    return 1;
}

/* The address-valued testos.* parameters (a malformed value keeps the default). */
static int param_apply_addr(const char *word, size_t len)
{
    static const struct {
        const char *key;
        u32 *ip;
        u8 *mac;
    } addrs[] = {
        {"testos.ip=", &boot_info.ip, NULL},
        {"testos.dst_ip=", &boot_info.dst_ip, NULL},
        {"testos.dst_mac=", NULL, boot_info.dst_mac},
    };

    for (u32 i = 0; i < ARRAY_SIZE(addrs); i++) {
        size_t klen = strlen(addrs[i].key);
        if (len < klen || strncmp(word, addrs[i].key, klen)) {
            continue;
        }
        if (addrs[i].ip) {
            int ok;
            u32 ip = parse_ip(word + klen, len - klen, &ok);
            if (ok) {
                *addrs[i].ip = ip;
            }
        } else {
            parse_mac(word + klen, len - klen, addrs[i].mac);
        }
        return 1;
    }
    return 0;
}

/* Applies one "key=value" word of the command line. */
static void param_apply(const char *word, size_t len)
{
    static const char run[] = "testos.run=";

    if (len >= sizeof(run) - 1 && !strncmp(word, run, sizeof(run) - 1)) {
        size_t vlen = len - (sizeof(run) - 1);
        if (vlen >= sizeof(boot_info.scenario)) {
            vlen = sizeof(boot_info.scenario) - 1;
        }
        memcpy(boot_info.scenario, word + sizeof(run) - 1, vlen);
        boot_info.scenario[vlen] = '\0';
        return;
    }
    static const char skip[] = "testos.skip=";
    if (len >= sizeof(skip) - 1 && !strncmp(word, skip, sizeof(skip) - 1)) {
        size_t vlen = len - (sizeof(skip) - 1);
        if (vlen >= sizeof(boot_info.skip)) {
            vlen = sizeof(boot_info.skip) - 1;
        }
        memcpy(boot_info.skip, word + sizeof(skip) - 1, vlen);
        boot_info.skip[vlen] = '\0';
        return;
    }
    if (param_apply_addr(word, len)) {
        return;
    }
    for (u32 i = 0; i < ARRAY_SIZE(params); i++) {
        size_t klen = strlen(params[i].key);
        if (len >= klen && !strncmp(word, params[i].key, klen)) {
            *params[i].value = parse_u64(word + klen, len - klen);
            return;
        }
    }
}

int testos_skipped(const char *name)
{
    size_t nlen = strlen(name);

    for (const char *p = boot_info.skip; *p;) {
        const char *e = p;
        while (*e && *e != ',') {
            e++;
        }
        if ((size_t)(e - p) == nlen && !strncmp(p, name, nlen)) {
            return 1;
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

static void cmdline_parse(void)
{
    const char *p = boot_info.cmdline;

    memcpy(boot_info.scenario, "hello", 6);
    boot_info.hz = 1000;
    boot_info.period_us = 1000;
    boot_info.seconds = PARAM_UNSET;
    boot_info.sectors = 64;
    boot_info.wstart = 128;
    boot_info.mib = 64;
    boot_info.ops = 2000;
    boot_info.irq = PARAM_UNSET;
    boot_info.blkdev = PARAM_UNSET;
    boot_info.evidx = 1;
    boot_info.indirect = 1;
    boot_info.mibps = 50;
    boot_info.wss_mib = PARAM_UNSET;
    boot_info.period_ms = 10;
    boot_info.ip = 198u << 24 | 18u << 16 | 2;     /* 198.18.0.2 */
    boot_info.dst_ip = 198u << 24 | 18u << 16 | 1; /* 198.18.0.1 */
    memset(boot_info.dst_mac, 0xFF, 6);
    boot_info.frame = 60;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *word = p;
        while (*p && *p != ' ') {
            p++;
        }
        if (p > word) {
            param_apply(word, p - word);
        }
    }
    if (!boot_info.hz) {
        boot_info.hz = 1000;
    }
    if (!boot_info.period_us) {
        boot_info.period_us = 1000;
    }
    if (!boot_info.period_ms) {
        boot_info.period_ms = 10;
    }
}

/* Copies the e820 map out of boot_params into boot_info.e820. */
static void e820_copy(const u8 *bp)
{
    u32 count = bp[BP_E820_COUNT];

    boot_info.e820_count = 0;
    for (u32 i = 0; i < count && i < E820_MAX; i++) {
        const u8 *e = bp + BP_E820_TABLE + 20 * i;
        E820Entry *out = &boot_info.e820[boot_info.e820_count++];
        memcpy(&out->base, e, 8);
        memcpy(&out->size, e + 8, 8);
        memcpy(&out->type, e + 16, 4);
    }
}

/* round_up_MiB(highest usable end below 4 GiB) + usable MiB above 4 GiB. */
static u64 e820_mem_mib(void)
{
    u64 low_top = 0, high_top = FOUR_GIB;

    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        u64 end = e->base + e->size;
        if (e->type != E820_USABLE || !e->size) {
            continue;
        }
        if (e->base < FOUR_GIB) {
            u64 low_end = end < FOUR_GIB ? end : FOUR_GIB;
            low_top = low_end > low_top ? low_end : low_top;
        }
        if (end > high_top) {
            high_top = end;
        }
    }
    return (low_top + MIB - 1) / MIB + (high_top - FOUR_GIB) / MIB;
}

/* Ring 3: copies everything testos needs out of boot_params and low memory. */
static u64 boot_parse(u64 boot_params)
{
    const u8 *bp = (const u8 *)boot_params;
    u32 cmdline_ptr;

    memcpy(&cmdline_ptr, bp + BP_CMD_LINE_PTR, 4);
    if (cmdline_ptr) {
        const char *src = (const char *)(u64)cmdline_ptr;
        size_t i = 0;
        for (; i < sizeof(boot_info.cmdline) - 1 && src[i]; i++) {
            boot_info.cmdline[i] = src[i];
        }
        boot_info.cmdline[i] = '\0';
    }
    cmdline_parse();
    e820_copy(bp);
    boot_info.mem_mib = e820_mem_mib();
    firmware_find_cpus(0);
    return 0;
}

void kmain(u64 boot_params)
{
    Cpu *bsp = &cpus[0];

    cpu_assign(bsp, 0);
    cpu_init(bsp);
    outb(0x21, 0xFF); /* mask both 8259 PICs: only the LAPIC interrupts */
    outb(0xA1, 0xFF);
    console_init();
    boot_info.apic_ids[0] = bsp->apic_id;
    run_user(bsp, boot_parse, boot_params);

    if (!scenario_known(boot_info.scenario)) {
        kprintf("unknown scenario %s", boot_info.scenario);
        machine_reset();
    }
    tsc_calibrate();
    int announce = !strncmp(boot_info.scenario, "smp", 4);
    if (announce) {
        kprintf("cpu 0 online");
    }
    smp_start_aps(announce);
    kprintf("ready cpus=%u mem=%lu", cpus_online, boot_info.mem_mib);
    scenario_run(bsp);
    kprintf("done");
    machine_reset();
}
