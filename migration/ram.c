/*
 * Guest RAM for migration: the regions (below and above 4 GiB), KVM's dirty
 * log folded into per-region bitmaps of pages still to send.  Used by the
 * source migration thread only.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hw/machine.h"
#include "migration-int.h"
#include "util/error.h"

static size_t bitmap_words(uint64_t size)
{
    return (size / MIG_PAGE_SIZE + 63) / 64;
}

bool ram_state_init(RamState *rs, Machine *m, GError **errp)
{
    const uint64_t gpa[2] = { 0, HIGH_RAM_START };
    const uint64_t size[2] = { m->below_4g, m->above_4g };

    memset(rs, 0, sizeof(*rs));
    for (int i = 0; i < 2; i++) {
        RamRegion *r;
        if (!size[i]) {
            continue;
        }
        r = &rs->region[rs->nr_regions++];
        r->gpa = gpa[i];
        r->size = size[i];
        r->hva = machine_gpa_to_hva(m, gpa[i], size[i]);
        r->bitmap = g_new(uint64_t, bitmap_words(size[i]));
        r->scratch = g_new0(uint64_t, bitmap_words(size[i]));
        r->untouched = g_new0(uint64_t, bitmap_words(size[i]));
        /* every page is "dirty" for the first pass */
        memset(r->bitmap, 0xff, bitmap_words(size[i]) * 8);
        if (size[i] / MIG_PAGE_SIZE % 64) {
            r->bitmap[bitmap_words(size[i]) - 1] = (1ULL
                                                    << (size[i] / MIG_PAGE_SIZE % 64)) -
                                                   1;
        }
        rs->total_pages += size[i] / MIG_PAGE_SIZE;
        if (!kvm_dirty_log_enable(&m->kvm, gpa[i], true, errp) ||
            !kvm_dirty_log_get(&m->kvm, gpa[i], r->scratch, errp)) {
            return false;
        }
    }
    rs->dirty_pages = rs->total_pages;
    return true;
}

void ram_state_destroy(RamState *rs, Machine *m)
{
    for (unsigned i = 0; i < rs->nr_regions; i++) {
        kvm_dirty_log_enable(&m->kvm, rs->region[i].gpa, false, NULL);
        g_free(rs->region[i].bitmap);
        g_free(rs->region[i].scratch);
        g_free(rs->region[i].untouched);
    }
    memset(rs, 0, sizeof(*rs));
}

void ram_find_untouched(RamRegion *r)
{
    enum {
        CHUNK = 8192
    };
    uint64_t pages = r->size / MIG_PAGE_SIZE;
    uint64_t *entries = g_new(uint64_t, CHUNK);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

    for (uint64_t first = 0; fd >= 0 && first < pages; first += CHUNK) {
        uint64_t n = MIN(CHUNK, pages - first);
        off_t off = (off_t)((uintptr_t)r->hva / MIG_PAGE_SIZE + first) * 8;
        if (pread(fd, entries, n * 8, off) != (ssize_t)(n * 8)) {
            break;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (!(entries[i] & (3ULL << 62))) { /* not present, not swapped */
                r->untouched[(first + i) / 64] |= 1ULL << ((first + i) % 64);
            }
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    g_free(entries);
}

void ram_mark_dirty(RamState *rs, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < rs->nr_regions && len; i++) {
        RamRegion *r = &rs->region[i];
        uint64_t first, last;

        if (gpa + len <= r->gpa || gpa >= r->gpa + r->size) {
            continue;
        }
        first = (MAX(gpa, r->gpa) - r->gpa) / MIG_PAGE_SIZE;
        last = (MIN(gpa + len, r->gpa + r->size) - 1 - r->gpa) / MIG_PAGE_SIZE;
        for (uint64_t p = first; p <= last; p++) {
            __atomic_or_fetch(&r->bitmap[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
        }
    }
}

bool ram_sync_dirty(RamState *rs, Machine *m, GError **errp)
{
    uint64_t dirty = 0;

    for (unsigned i = 0; i < rs->nr_regions; i++) {
        RamRegion *r = &rs->region[i];
        size_t words = bitmap_words(r->size);

        memset(r->scratch, 0, words * 8);
        if (!kvm_dirty_log_get(&m->kvm, r->gpa, r->scratch, errp)) {
            return false;
        }
        for (size_t w = 0; w < words; w++) {
            /* atomic: device threads mark their DMA here too */
            uint64_t now = __atomic_or_fetch(&r->bitmap[w], r->scratch[w],
                                             __ATOMIC_RELAXED);
            dirty += __builtin_popcountll(now);
        }
    }
    rs->dirty_pages = dirty;
    return true;
}
