/* dirty.c: dv-dirty, the Linux guest's live-migration workload (the `dirty`
 * scenario).  The same rules as testos's dirty scenario (tests/guest/dirty.c,
 * README.md "Migration workload"), in a process: one 8-byte word written per
 * 4 KiB page of a WSS_MIB working set at MIBPS MiB/s, every word a known
 * function of (page, generation), a running sum of them, the words checked
 * before each write and in every spare moment, and a line
 * `linux: seq N sum HEX` every PERIOD_MS of CLOCK_MONOTONIC time.  With the
 * prefix `linux: ` read as `testos: `, tests/guest/dirtycheck.py checks the
 * output.
 *
 *     dv-dirty WSS_MIB MIBPS PERIOD_MS
 *
 * Built static (no libraries in the guest): gcc -static -O2. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define CHUNK 64        /* pages touched or checked between clock reads */
#define CORRUPT_LINES 4 /* CORRUPT lines per period, at most */
#define WORD_STEP 67    /* the word moves by this many slots per generation */

static uint8_t *base;
static uint64_t npages;
static uint64_t dirty_p, check_p; /* pages [0, dirty_p) are at sweep + 1 */
static uint64_t sweep, sum, corrupt_lines, corrupt_more;

static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n = snprintf(line, sizeof(line), "linux: ");

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    /* one write per line: a line is never split between two writes */
    if (write(1, line, n) < 0) {
        exit(1);
    }
}

/* splitmix64's finaliser of p + g * 2^32 + the golden-ratio constant */
static inline uint64_t word_value(uint64_t p, uint64_t g)
{
    uint64_t z = p + (g << 32) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* slot (9 p + 67 g) mod 512 of page p */
static inline volatile uint64_t *word_at(uint64_t p, uint64_t g)
{
    return (volatile uint64_t *)(base + p * PAGE + ((p * 9 + g * WORD_STEP) & 511) * 8);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void report_corrupt(uint64_t p, uint64_t expected, uint64_t got)
{
    if (corrupt_lines) {
        corrupt_lines--;
        say("CORRUPT page=%lu expected=%lx got=%lx", (unsigned long)p,
            (unsigned long)expected, (unsigned long)got);
    } else {
        corrupt_more++;
    }
}

static inline void dirty_one(void)
{
    uint64_t p = dirty_p;
    uint64_t old = word_value(p, sweep), new = word_value(p, sweep + 1);
    uint64_t got = *word_at(p, sweep);

    if (got != old) {
        report_corrupt(p, old, got);
    }
    *word_at(p, sweep + 1) = new;
    sum += new - old;
    if (++dirty_p == npages) {
        dirty_p = 0;
        sweep++;
    }
}

static inline void check_one(void)
{
    uint64_t p = check_p;
    uint64_t g = sweep + (p < dirty_p);
    uint64_t want = word_value(p, g);
    volatile uint64_t *w = word_at(p, g);
    uint64_t got = *w;

    if (got != want) {
        report_corrupt(p, want, got);
        *w = want;
    }
    if (++check_p == npages) {
        check_p = 0;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: dv-dirty WSS_MIB MIBPS PERIOD_MS\n");
        return 2;
    }
    uint64_t wss_mib = strtoull(argv[1], NULL, 0);
    uint64_t mibps = strtoull(argv[2], NULL, 0);
    uint64_t period_ms = strtoull(argv[3], NULL, 0);
    if (!wss_mib || !period_ms) {
        fprintf(stderr, "dv-dirty: WSS_MIB and PERIOD_MS must not be 0\n");
        return 2;
    }
    npages = wss_mib * 256;
    base = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (base == MAP_FAILED) {
        say("fail dirty: cannot map %lu MiB", (unsigned long)wss_mib);
        return 1;
    }
    mlock(base, npages * PAGE); /* best effort: there is no swap anyway */

    say("dirty pages=%lu wss_mib=%lu mibps=%lu period_ms=%lu seconds=0",
        (unsigned long)npages, (unsigned long)wss_mib, (unsigned long)mibps,
        (unsigned long)period_ms);
    uint64_t t0 = now_ns();
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t v = word_value(p, 0);
        *word_at(p, 0) = v;
        sum += v;
    }
    say("dirty init ms=%lu", (unsigned long)((now_ns() - t0) / 1000000));
    corrupt_lines = CORRUPT_LINES;
    say("seq 0 sum %lx", (unsigned long)sum);

    uint64_t period = period_ms * 1000000ULL;
    uint64_t rate = mibps * 256 * period_ms; /* pages per 1000 periods */
    uint64_t acc = 0, start = now_ns();
    for (uint64_t seq = 1;; seq++) {
        /* pages this period: floor(seq * rate / 1000) - floor((seq - 1) * rate / 1000) */
        acc += rate;
        uint64_t n = acc / 1000, done = 0;
        acc %= 1000;
        for (;;) {
            uint64_t since = now_ns() - start;
            uint64_t due = since >= period ? n : (uint64_t)((__uint128_t)n * since / period);
            if (done < due) {
                uint64_t stop = due - done > CHUNK ? done + CHUNK : due;
                for (; done < stop; done++) {
                    dirty_one();
                }
            } else if (since >= period) {
                break;
            } else {
                for (int i = 0; i < CHUNK; i++) {
                    check_one();
                }
            }
        }
        if (corrupt_more) {
            say("CORRUPT more=%lu", (unsigned long)corrupt_more);
            corrupt_more = 0;
        }
        say("seq %lu sum %lx", (unsigned long)seq, (unsigned long)sum);
        corrupt_lines = CORRUPT_LINES;
        /* the next period starts where this one ended, unless that is more
         * than a period ago (the guest was held up): then now */
        uint64_t now = now_ns(), next = start + period;
        start = now - next >= period && now > next ? now : next;
    }
}
