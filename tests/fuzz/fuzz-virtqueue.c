/*
 * Fuzz target for the split-virtqueue walker (hw/virtio/virtqueue.c) over
 * fake guest memory (2 MiB): the driver's side is whatever the input
 * writes into RAM; the device side maps the rings, pops chains (direct,
 * indirect, looping, out of range), completes each and asks whether to
 * interrupt (event index or flags), as a virtio device thread does.
 *
 * Input (little-endian):
 *   u16 max_size (the device's maximum, at most 1024), u16 size,
 *   u8 flags (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 notifications
 *   off while popping), u8 pops (the most chains to take),
 *   u16 last_avail_idx, u16 used_idx, u16 signalled_used, u8 signalled
 *   valid (state as a migration restores it), 3 bytes unused,
 *   u32 desc_gpa, u32 avail_gpa, u32 used_gpa,
 *   then writes to RAM until the input ends: u32 gpa, u16 len, len bytes
 *   (cut at the input's end; a write outside RAM is skipped).
 *
 * Outcome: "refused: WHY" (rings not mapped), or "ok: popped=N ..." with
 * each chain's readable/writable counts and lengths, then how the walk
 * ended ("empty" or "error: WHY").
 */
#include <string.h>

#include "hw/machine.h"
#include "hw/virtio.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_RAM_SIZE (2u << 20)
#define HEADER_SIZE   28
#define SHOWN_CHAINS  6

static uint16_t get16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* Copy the input's RAM writes into guest memory. */
static void write_ram(Machine *m, const uint8_t *data, size_t size)
{
    size_t pos = 0;

    while (size - pos >= 6) {
        uint32_t gpa = get32(data + pos);
        size_t len = MIN(get16(data + pos + 4), size - pos - 6);
        uint8_t *dst = len ? machine_gpa_to_hva(m, gpa, len) : NULL;

        if (dst) {
            memcpy(dst, data + pos + 6, len);
        }
        pos += 6 + len;
    }
}

/* What a device does with a chain: look at the segments, write, complete. */
static uint32_t consume(VirtQueue *vq, VirtQueueElement *elem)
{
    struct iovec slice[8];
    unsigned segs = elem->out_num + elem->in_num;
    uint32_t written = 0;

    for (unsigned i = 0; i < segs && !elem->bad_address; i++) {
        uint8_t *p = elem->iov[i].iov_base;
        if (!p) {
            continue;
        }
        if (i < elem->out_num) {
            volatile uint8_t first = p[0], last = p[elem->iov[i].iov_len - 1];
            (void)first;
            (void)last;
        } else {
            p[0] = 0xa5;
            p[elem->iov[i].iov_len - 1] = 0x5a;
            written += elem->iov[i].iov_len;
        }
    }
    /* the status byte a block device writes last */
    if (elem->in_len && virtio_iov_slice(elem->iov + elem->out_num, elem->in_num,
                                         elem->in_len - 1, 1, slice, 8) == 1) {
        *(uint8_t *)slice[0].iov_base = 0;
    }
    return written;
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    static Machine m;
    static VirtQueue vq;
    uint8_t flags, pops;
    uint64_t features = 0;
    VirtQueueElement elem;
    GString *chains;
    const char *why = NULL;
    unsigned popped = 0, notifies = 0;
    int ret = 0;

    if (!m.ram) {
        if (!machine_plan_memory(&m, FUZZ_RAM_SIZE, NULL)) {
            abort();
        }
        m.ram = g_malloc0(FUZZ_RAM_SIZE);
        virtqueue_init(&vq, &m.mem, NULL, 0, VIRTQUEUE_MAX_SIZE);
    }
    if (size < HEADER_SIZE) {
        if (report) {
            fprintf(report, "skipped: %zu bytes, the header takes %d", size, HEADER_SIZE);
        }
        return;
    }
    memset(m.ram, 0, FUZZ_RAM_SIZE);
    write_ram(&m, data + HEADER_SIZE, size - HEADER_SIZE);

    pthread_mutex_lock(&vq.lock);
    virtqueue_reset_rings(&vq);
    vq.max_size = MIN(get16(data), VIRTQUEUE_MAX_SIZE);
    vq.size = get16(data + 2);
    flags = data[4];
    pops = data[5];
    vq.desc_gpa = get32(data + 16);
    vq.avail_gpa = get32(data + 20);
    vq.used_gpa = get32(data + 24);
    features |= (flags & 1) ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0;
    features |= (flags & 2) ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0;
    if (!virtqueue_map_rings(&vq, features, &why)) {
        pthread_mutex_unlock(&vq.lock);
        if (report) {
            fprintf(report, "refused: %s", why);
        }
        return;
    }
    vq.last_avail_idx = get16(data + 6);
    vq.used_idx = get16(data + 8);
    vq.signalled_used = get16(data + 10);
    vq.signalled_used_valid = data[12] & 1;

    chains = g_string_new(NULL);
    virtqueue_element_init(&elem);
    virtqueue_set_notification(&vq, !(flags & 4));
    while (popped < pops && (ret = virtqueue_pop(&vq, &elem, &why)) == 1) {
        uint32_t written = consume(&vq, &elem);
        if (popped < SHOWN_CHAINS) {
            g_string_append_printf(chains, " [%u:%ur/%zu,%uw/%zu%s]", elem.head,
                                   elem.out_num, elem.out_len, elem.in_num, elem.in_len,
                                   elem.bad_address ? ",bad" : "");
        }
        virtqueue_push(&vq, &elem, written);
        notifies += virtqueue_should_notify(&vq);
        popped++;
    }
    virtqueue_set_notification(&vq, true);
    if (ret < 0) {
        vq.broken = true;
    }
    if (report) {
        fprintf(report, "ok: popped=%u%s%s used_idx=%u notify=%u has_avail=%d %s%s",
                popped, chains->str, popped > SHOWN_CHAINS ? " ..." : "", vq.used_idx,
                notifies, virtqueue_has_avail(&vq),
                ret < 0 ? "error: "
                : ret   ? "limit"
                        : "empty",
                ret < 0 ? why : "");
    }
    pthread_mutex_unlock(&vq.lock);
    virtqueue_element_free(&elem);
    g_string_free(chains, TRUE);
}
