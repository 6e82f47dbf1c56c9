/* dirty.c: the `dirty` scenario, a live-migration workload. Ring-3 code
 * dirties guest RAM at testos.mibps MiB/s (one 8-byte word written per 4 KiB
 * page) across a working set of testos.wss_mib MiB, keeps every touched word
 * equal to a known function of (page index, generation) and a running sum of
 * them, checks the words itself (before each write and in every spare moment)
 * and prints `testos: seq N sum HEX` every testos.period_ms of TSC time.
 * README.md ("Migration workload") has the rules a host test relies on;
 * dirtycheck.py checks a log against them. */
#include "testos.h"

#define PAGE 4096UL
#define GIB (1024UL * MIB)
#define FOUR_GIB_ADDR 0x100000000UL
#define MAP_LIMIT (512 * GIB)   /* what PML4 entry 0 maps: testos's reach */
#define MAX_RANGES 32
#define PTE_TABLE 0x07          /* present, writable, user */
#define PDE_RAM 0x87            /* + 2 MiB page, write-back */
#define PDE_UNCACHED 0x18       /* PWT + PCD */
#define CHUNK 64                /* pages touched or checked between TSC reads */
#define CORRUPT_LINES 4         /* CORRUPT page= lines per period, at most */
#define WORD_STEP 67            /* the word moves by this many slots per generation */

/* The working set: page index p (0..npages-1) counts 4 KiB pages through
 * these ranges in address order. */
typedef struct Range {
    u64 base;  /* page aligned */
    u64 pages;
} Range;

static Range ranges[MAX_RANGES];
static u32 nranges;
static u64 npages;
static u64 pd_pages; /* page-directory pages made for RAM above 4 GiB */

/* A position in the working set: page p, in range r whose first page is rfirst. */
typedef struct Walk {
    u64 p;
    u64 rfirst;
    u32 r;
} Walk;

/* Pages [0, dirty.p) are at generation sweep + 1, the others at sweep. */
static Walk dirty, check;
static u64 sweep;
static u64 sum;          /* of every page's current word, mod 2^64 */
static u64 dirtied;      /* pages touched since seq 0 */
static u64 verified;     /* word checks (before each write and by `check`) */
static u64 corrupt;      /* mismatches found (each then repaired) */
static u64 corrupt_lines; /* CORRUPT lines left this period */
static u64 corrupt_more;  /* mismatches this period beyond those lines */

extern u8 _end[];

/* The word page p holds at generation g: splitmix64's finaliser of
 * p + g * 2^32 + the golden-ratio constant. */
static inline u64 word_value(u64 p, u64 g)
{
    u64 z = p + (g << 32) + 0x9E3779B97F4A7C15UL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    return z ^ (z >> 31);
}

/* Where in its page that word is: slot (9 p + 67 g) mod 512 of 8 bytes. */
static inline volatile u64 *word_at(u64 addr, u64 p, u64 g)
{
    return (volatile u64 *)phys(addr + ((p * 9 + g * WORD_STEP) & 511) * 8);
}

static inline u64 walk_addr(const Walk *w)
{
    return ranges[w->r].base + (w->p - w->rfirst) * PAGE;
}

/* Moves to the next page; returns 1 when it wrapped to page 0. */
static inline int walk_next(Walk *w)
{
    w->p++;
    if (w->p - w->rfirst < ranges[w->r].pages) {
        return 0;
    }
    w->rfirst = w->p;
    w->r++;
    if (w->p < npages) {
        return 0;
    }
    w->p = w->rfirst = 0;
    w->r = 0;
    return 1;
}

/* a * b / c for b < c, without overflow (ring 3). */
static inline u64 muldiv(u64 a, u64 b, u64 c)
{
    u64 q, r;
    __asm__("mulq %3\n\tdivq %4" : "=a"(q), "=&d"(r) : "a"(a), "r"(b), "r"(c) : "cc");
    return q;
}

/* ---- set-up (ring 3): the working set and the page tables for it ---- */

static int usable_covers(u64 from, u64 to)
{
    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        if (e->type == E820_USABLE && e->base <= from && e->base + e->size >= to) {
            return 1;
        }
    }
    return 0;
}

static int usable_overlaps(u64 from, u64 to)
{
    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        if (e->type == E820_USABLE && e->size && e->base < to && e->base + e->size > from) {
            return 1;
        }
    }
    return 0;
}

/* Every usable e820 page from the first 2 MiB boundary past testos's image
 * up to MAP_LIMIT, in address order, overlaps removed. */
static void ranges_collect(void)
{
    u64 start = ((u64)_end + 2 * MIB - 1) & ~(2 * MIB - 1);
    u64 ends[MAX_RANGES];

    nranges = 0;
    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        u64 base = e->base > start ? e->base : start;
        u64 end = e->base + e->size;
        end = end > MAP_LIMIT || end < e->base ? MAP_LIMIT : end;
        base = (base + PAGE - 1) & ~(PAGE - 1);
        end &= ~(PAGE - 1);
        if (e->type != E820_USABLE || end <= base || nranges == MAX_RANGES) {
            continue;
        }
        u32 j = nranges++;
        for (; j && ranges[j - 1].base > base; j--) {
            ranges[j] = ranges[j - 1];
            ends[j] = ends[j - 1];
        }
        ranges[j].base = base;
        ends[j] = end;
    }
    u32 kept = 0;
    for (u32 i = 0; i < nranges; i++) {
        u64 base = ranges[i].base, end = ends[i];
        if (kept && base < ends[kept - 1]) {
            base = ends[kept - 1];
        }
        if (base < end) {
            ranges[kept].base = base;
            ends[kept] = end;
            kept++;
        }
    }
    nranges = kept;
    for (u32 i = 0; i < nranges; i++) {
        ranges[i].pages = (ends[i] - ranges[i].base) / PAGE;
    }
}

/* RAM above 4 GiB: one page directory (2 MiB pages, write-back, only where
 * usable RAM is) per GiB up to the top of it, taken from the front of the
 * first range, hooked into PDPT entries 4 and up. Without room for them the
 * RAM above 4 GiB stays out of the working set. */
static void map_high(u64 *pdpt)
{
    u64 top = 0;

    for (u32 i = 0; i < nranges; i++) {
        u64 end = ranges[i].base + ranges[i].pages * PAGE;
        top = end > top ? end : top;
    }
    if (top <= FOUR_GIB_ADDR) {
        return;
    }
    u64 need = (top - FOUR_GIB_ADDR + GIB - 1) / GIB;
    Range *r0 = &ranges[0];
    if (r0->base >= FOUR_GIB_ADDR || r0->pages <= need ||
        r0->base + need * PAGE > FOUR_GIB_ADDR) {
        while (nranges && ranges[nranges - 1].base >= FOUR_GIB_ADDR) {
            nranges--;
        }
        return;
    }
    u64 pd = r0->base;
    r0->base += need * PAGE;
    r0->pages -= need;
    pd_pages = need;
    for (u64 i = 0; i < need; i++) {
        u64 *table = phys(pd + i * PAGE);
        for (u64 j = 0; j < 512; j++) {
            u64 addr = FOUR_GIB_ADDR + i * GIB + j * 2 * MIB;
            table[j] = usable_overlaps(addr, addr + 2 * MIB) ? addr | PDE_RAM : 0;
        }
        pdpt[4 + i] = (pd + i * PAGE) | PTE_TABLE;
    }
}

/* Ring 3, before dirty_run: picks the working set, maps RAM above 4 GiB and
 * makes usable RAM in the (uncached) 3-4 GiB window write-back. Ring 0 then
 * reloads CR3. */
static u64 dirty_setup(u64 unused)
{
    extern u64 boot_pml4[];
    u64 *pdpt = phys(boot_pml4[0] & ~0xFFFUL);
    u64 *pd3 = phys(pdpt[3] & ~0xFFFUL);

    ranges_collect();
    if (nranges) {
        map_high(pdpt);
    }
    for (u64 j = 0; j < 512; j++) {
        u64 addr = 3 * GIB + j * 2 * MIB;
        if (usable_covers(addr, addr + 2 * MIB)) {
            pd3[j] &= ~(u64)PDE_UNCACHED;
        }
    }

    u64 avail = 0;
    for (u32 i = 0; i < nranges; i++) {
        avail += ranges[i].pages;
    }
    u64 want = boot_info.wss_mib == PARAM_UNSET || boot_info.wss_mib > avail / 256
                   ? avail
                   : boot_info.wss_mib * 256;
    npages = 0;
    for (u32 i = 0; i < nranges; i++) {
        if (npages + ranges[i].pages >= want) {
            ranges[i].pages = want - npages;
            nranges = ranges[i].pages ? i + 1 : i;
            break;
        }
        npages += ranges[i].pages;
    }
    npages = want;
    return 0;
}

/* ---- the run (ring 3) ---- */

static void report_corrupt(u64 addr, u64 expected, u64 got)
{
    corrupt++;
    if (corrupt_lines) {
        corrupt_lines--;
        uprintf("CORRUPT page=0x%lx expected=%lx got=%lx", addr, expected, got);
    } else {
        corrupt_more++;
    }
}

/* Touches the page at the dirty cursor: checks its word, writes the next
 * generation's word (at another offset in the page), moves the cursor on. */
static inline void dirty_one(void)
{
    u64 p = dirty.p, addr = walk_addr(&dirty);
    u64 old = word_value(p, sweep), new = word_value(p, sweep + 1);
    u64 got = *word_at(addr, p, sweep);

    verified++;
    if (got != old) {
        report_corrupt(addr, old, got);
    }
    *word_at(addr, p, sweep + 1) = new;
    sum += new - old;
    dirtied++;
    if (walk_next(&dirty)) {
        sweep++;
    }
}

/* Checks the word of the page at the check cursor (rewriting it if wrong),
 * moves that cursor on. Reading does not dirty the page. */
static inline void check_one(void)
{
    u64 p = check.p, addr = walk_addr(&check);
    u64 g = sweep + (p < dirty.p);
    u64 want = word_value(p, g);
    volatile u64 *w = word_at(addr, p, g);
    u64 got = *w;

    verified++;
    if (got != want) {
        report_corrupt(addr, want, got);
        *w = want;
    }
    walk_next(&check);
}

static u64 dirty_run(u64 unused)
{
    u64 mibps = boot_info.mibps, period_ms = boot_info.period_ms;
    u64 seconds = boot_info.seconds == PARAM_UNSET ? 0 : boot_info.seconds;
    u64 period = period_ms * boot_info.tsc_khz; /* TSC ticks */
    u64 limit = seconds * 1000 * boot_info.tsc_khz;
    u64 rate = npages ? mibps * 256 * period_ms : 0; /* pages per 1000 periods */
    u64 acc = 0, span = 0;

    uprintf("dirty pages=%lu wss_mib=%lu mibps=%lu period_ms=%lu seconds=%lu", npages,
            npages / 256, mibps, period_ms, seconds);
    /* Generation 0 everywhere (this writes every page once, at full speed). */
    u64 t0 = rdtsc();
    sum = 0;
    for (u64 i = 0; i < npages; i++) {
        u64 v = word_value(dirty.p, 0);
        *word_at(walk_addr(&dirty), dirty.p, 0) = v;
        sum += v;
        walk_next(&dirty);
    }
    uprintf("dirty init ms=%lu", (rdtsc() - t0) / boot_info.tsc_khz);
    corrupt_lines = CORRUPT_LINES;
    uprintf("seq 0 sum %lx", sum);

    u64 start = rdtsc(), first = start;
    for (u64 seq = 1;; seq++) {
        /* Pages this period: floor(seq * rate / 1000) - floor((seq - 1) * rate / 1000). */
        acc += rate;
        u64 n = acc / 1000, done = 0;
        acc %= 1000;
        for (;;) {
            u64 now = rdtsc();
            if ((long)(now - start) < 0) {
                start = now; /* the TSC went back: the period starts now */
            }
            u64 since = now - start;
            u64 due = since >= period ? n : muldiv(n, since, period);
            if (done < due) {
                u64 stop = due - done > CHUNK ? done + CHUNK : due;
                for (; done < stop; done++) {
                    dirty_one();
                }
            } else if (since >= period) {
                break;
            } else if (npages) {
                for (u32 i = 0; i < CHUNK; i++) {
                    check_one();
                }
            } else {
                cpu_relax();
            }
        }
        if (corrupt_more) {
            uprintf("CORRUPT more=%lu", corrupt_more);
            corrupt_more = 0;
        }
        uprintf("seq %lu sum %lx", seq, sum);
        corrupt_lines = CORRUPT_LINES;
        /* The next period starts where this one ended (printing is part of
         * it), unless that is more than a period ago (the vCPU was held up):
         * then now, rather than a burst of catching up. */
        u64 now = rdtsc(), next = start + period;
        u64 ns = (long)(now - next) >= (long)period ? now : next;
        span += ns - start;
        start = ns;
        if (limit && span >= limit) {
            uprintf("dirty dirtied=%lu verified=%lu corrupt=%lu ms=%lu", dirtied, verified,
                    corrupt, (rdtsc() - first) / boot_info.tsc_khz);
            uprintf("dirty done seq=%lu", seq);
            return 0;
        }
    }
}

void scenario_dirty(Cpu *bsp)
{
    u64 cr3;

    run_user(bsp, dirty_setup, 0);
    /* New PDPT entries, PDEs made write-back: drop what the TLB holds. */
    __asm__ volatile("mov %%cr3, %0\n\tmov %0, %%cr3" : "=r"(cr3) : : "memory");
    run_user(bsp, dirty_run, 0);
}
