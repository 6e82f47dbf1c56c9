/* firmware.c: which CPUs exist, from the firmware tables in low memory: the
 * MP table (Intel MP spec 1.4) and, where there is one, the ACPI MADT. Runs in
 * ring 3 (plain memory reads at native speed) on the BSP during boot. */
#include "testos.h"

#define MP_PROCESSOR 0
#define MP_CPU_ENABLED 0x01
#define MADT_LOCAL_APIC 0
#define MADT_ENABLED 0x01
#define ACPI_HEADER_LEN 36
#define ACPI_TABLE_MAX 0x100000

static u8 checksum(const u8 *p, u32 len)
{
    u8 sum = 0;
    while (len--) {
        sum += *p++;
    }
    return sum;
}

static u32 load32(const u8 *p)
{
    u32 v;
    memcpy(&v, p, 4);
    return v;
}

static u16 load16(const u8 *p)
{
    u16 v;
    memcpy(&v, p, 2);
    return v;
}

/* The first 16-byte aligned structure in [start, start + len) that begins
 * with sig and whose first sum_len bytes (or p[len_at] * 16) add up to 0. */
static const u8 *scan(u64 start, u64 len, const char *sig, u32 sig_len, u32 sum_len)
{
    for (u64 a = start; a + 16 <= start + len; a += 16) {
        const u8 *p = phys(a);
        if (strncmp((const char *)p, sig, sig_len)) {
            continue;
        }
        u32 n = sum_len ? sum_len : p[8] * 16u;
        if (n && checksum(p, n) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Searches the EBDA's first KiB, the last KiB below 640 KiB, then
 * [bios_start, 1 MiB), as the MP and ACPI specs say. */
static const u8 *scan_low_memory(const char *sig, u32 sig_len, u32 sum_len,
                                 u64 bios_start)
{
    u16 ebda_segment = load16(phys(0x40E));
    u16 base_kib = load16(phys(0x413));
    const u8 *p = NULL;

    if (ebda_segment) {
        p = scan((u64)ebda_segment << 4, 1024, sig, sig_len, sum_len);
    }
    if (!p && base_kib > 1) {
        p = scan(((u64)base_kib - 1) * 1024, 1024, sig, sig_len, sum_len);
    }
    return p ? p : scan(bios_start, 0x100000 - bios_start, sig, sig_len, sum_len);
}

/* Appends apic_id (an AP: the BSP is index 0 already) to the CPU list. */
static void cpu_list_add(u32 *n, u32 *ids, u32 apic_id)
{
    if (apic_id == boot_info.apic_ids[0]) {
        return;
    }
    if (*n < MAX_CPUS) {
        ids[(*n)++] = apic_id;
    }
}

/* Enabled processor entries of the MP table into ids[1..]; returns the count
 * including the BSP (1 where there is no table). */
static u32 mptable_cpus(u32 *ids)
{
    const u8 *fp = scan_low_memory("_MP_", 4, 0, 0xF0000);
    u32 n = 1;

    if (!fp) {
        return n;
    }
    if (fp[11] != 0 || load32(fp + 4) == 0) { /* a default configuration: 2 CPUs */
        cpu_list_add(&n, ids, 0);
        cpu_list_add(&n, ids, 1);
        return n;
    }
    const u8 *table = phys(load32(fp + 4));
    if (strncmp((const char *)table, "PCMP", 4) || checksum(table, load16(table + 4))) {
        return n;
    }
    const u8 *entry = table + 44;
    const u8 *end = table + load16(table + 4);
    for (u32 left = load16(table + 34); left && entry < end; left--) {
        if (entry[0] == MP_PROCESSOR) { /* 20 bytes */
            if (entry[3] & MP_CPU_ENABLED) {
                cpu_list_add(&n, ids, entry[1]);
            }
            entry += 20;
        } else if (entry[0] <= 4) { /* bus, I/O APIC, interrupt entries: 8 bytes */
            entry += 8;
        } else {
            break;
        }
    }
    return n;
}

/* A table at address whose length is sane (a header at least, at most
 * 1 MiB: a stray pointer must not send the checksum through gigabytes of
 * unbacked addresses) and whose checksum holds; else NULL. */
static const u8 *acpi_table(u64 address)
{
    const u8 *t;
    u32 len;

    if (!address) {
        return NULL;
    }
    t = phys(address);
    len = load32(t + 4);
    if (len < ACPI_HEADER_LEN || len > ACPI_TABLE_MAX) {
        return NULL;
    }
    return checksum(t, len) == 0 ? t : NULL;
}

/* Enabled Local APIC entries of the ACPI MADT into ids[1..]; returns the count
 * including the BSP, or 0 where there is no MADT. */
static u32 madt_cpus(u32 *ids)
{
    const u8 *rsdp = scan_low_memory("RSD PTR ", 8, 20, 0xE0000);
    const u8 *rsdt = NULL, *madt = NULL;
    u32 n = 1, entry = 4;

    if (!rsdp) {
        return 0;
    }
    /* ACPI 2.0+ (revision 2) may give only an XSDT (QEMU's microvm does:
     * RSDT address 0): its entries are 64-bit. */
    if (rsdp[15] >= 2 && !checksum(rsdp, load32(rsdp + 20)) &&
        (rsdt = acpi_table(load32(rsdp + 24) | (u64)load32(rsdp + 28) << 32))) {
        entry = 8;
    } else if (!(rsdt = acpi_table(load32(rsdp + 16)))) {
        return 0;
    }
    for (u32 off = ACPI_HEADER_LEN; off + entry <= load32(rsdt + 4) && !madt; off += entry) {
        u64 address = load32(rsdt + off);
        if (entry == 8) {
            address |= (u64)load32(rsdt + off + 4) << 32;
        }
        const u8 *t = acpi_table(address);
        if (t && !strncmp((const char *)t, "APIC", 4)) {
            madt = t;
        }
    }
    if (!madt) {
        return 0;
    }
    const u8 *end = madt + load32(madt + 4);
    for (const u8 *e = madt + 44; e + 2 <= end && e[1] >= 2; e += e[1]) {
        if (e[0] == MADT_LOCAL_APIC && (load32(e + 4) & MADT_ENABLED)) {
            cpu_list_add(&n, ids, e[3]);
        }
    }
    return n;
}

/* Fills boot_info.ncpus and apic_ids[1..] (apic_ids[0], the BSP, is set by
 * the caller). The MP table is the source; where an ACPI MADT lists more
 * CPUs, it wins: SeaBIOS's MP table has one entry per package only, so under
 * QEMU's default topology (-smp N = N cores in one socket) it names one CPU. */
u64 firmware_find_cpus(u64 unused)
{
    static u32 madt_ids[MAX_CPUS];
    u32 n = mptable_cpus(boot_info.apic_ids);
    u32 n_madt = madt_cpus(madt_ids);

    if (n_madt > n) {
        n = n_madt;
        memcpy(boot_info.apic_ids + 1, madt_ids + 1, (n - 1) * sizeof(u32));
    }
    boot_info.ncpus = n;
    return 0;
}
