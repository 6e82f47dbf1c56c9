/*
 * Virtio without KVM: split-ring processing against a malloc'd guest RAM
 * (chains, indirect tables, event index, and every hostile ring the
 * device must survive), virtio-blk requests against a memory disk, and
 * the whole modern PCI transport driven through the MMIO bus the way a
 * guest driver would, with the device's own threads doing the I/O.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_pci.h>

#include "block/block.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/virtio.h"
#include "hw/virtio/virtio-blk.h"
#include "unit.h"
#include "util/subopt.h"

UNIT_MAIN()

/*
 * virtio-blk's default backend refers to the block layer; this test uses
 * a memory disk instead, so weak stand-ins keep it linkable on its own.
 */
__attribute__((weak)) uint64_t bdrv_getlength(BlockDriverState *bs) { return 0; }
__attribute__((weak)) bool bdrv_is_read_only(BlockDriverState *bs) { return true; }
__attribute__((weak)) int bdrv_preadv(BlockDriverState *bs, uint64_t o,
                                      const struct iovec *v, int n) { return -EIO; }
__attribute__((weak)) int bdrv_pwritev(BlockDriverState *bs, uint64_t o,
                                       const struct iovec *v, int n) { return -EIO; }
__attribute__((weak)) int bdrv_flush(BlockDriverState *bs) { return -EIO; }
__attribute__((weak)) int bdrv_discard(BlockDriverState *bs, uint64_t o, uint64_t l)
{
    return -EIO;
}
__attribute__((weak)) int bdrv_write_zeroes(BlockDriverState *bs, uint64_t o, uint64_t l,
                                            bool u)
{
    return -EIO;
}

#define RAM_SIZE     (16u << 20)
#define DESC_GPA     0x10000
#define AVAIL_GPA    0x20000
#define USED_GPA     0x30000
#define BUF_GPA      0x100000
#define QSIZE        16

/* ---- guest memory, as a driver sees it ---- */

static Machine m;

static void machine_setup(void)
{
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    bus_init(&m.io_bus, "io");
    bus_init(&m.mmio_bus, "mmio");
    device_state_list_init(&m.device_states);
    CHECK(machine_plan_memory(&m, RAM_SIZE, NULL));
    m.ram = g_malloc0(RAM_SIZE);
}

static void machine_teardown(void)
{
    pci_pc_cleanup(&m);
    bus_destroy(&m.io_bus);
    bus_destroy(&m.mmio_bus);
    device_state_list_destroy(&m.device_states);
    g_free(m.ram);
    m.ram = NULL;
}

static void put16(uint64_t a, uint16_t v)
{
    memcpy(m.ram + a, &v, 2);
}

static void put32(uint64_t a, uint32_t v)
{
    memcpy(m.ram + a, &v, 4);
}

static void put64(uint64_t a, uint64_t v)
{
    memcpy(m.ram + a, &v, 8);
}

static uint16_t get16(uint64_t a)
{
    uint16_t v;

    memcpy(&v, m.ram + a, 2);
    return v;
}

static uint32_t get32(uint64_t a)
{
    uint32_t v;

    memcpy(&v, m.ram + a, 4);
    return v;
}

static void desc_set(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    put64(table + 16 * i, addr);
    put32(table + 16 * i + 8, len);
    put16(table + 16 * i + 12, flags);
    put16(table + 16 * i + 14, next);
}

static uint16_t avail_idx;

/* Publish a chain as a driver does: the ring entry, then (release) the index. */
static void avail_add(uint16_t head)
{
    put16(AVAIL_GPA + 4 + 2 * (avail_idx % QSIZE), head);
    avail_idx++;
    __atomic_store_n((uint16_t *)(m.ram + AVAIL_GPA + 2), avail_idx, __ATOMIC_RELEASE);
}

static uint16_t used_idx(void)
{
    return __atomic_load_n((uint16_t *)(m.ram + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_len(unsigned i)
{
    return get32(USED_GPA + 4 + 8 * (i % QSIZE) + 4);
}

/* A bare queue on the rings above, with the given ring features. */
static void vq_setup(VirtQueue *vq, uint64_t features)
{
    const char *why = NULL;

    avail_idx = 0;
    virtqueue_init(vq, &m, NULL, 0, 256);
    vq->size = QSIZE;
    vq->desc_gpa = DESC_GPA;
    vq->avail_gpa = AVAIL_GPA;
    vq->used_gpa = USED_GPA;
    CHECK(virtqueue_map_rings(vq, features, &why));
}

static int pop(VirtQueue *vq, VirtQueueElement *elem, const char **why)
{
    *why = NULL;
    return virtqueue_pop(vq, elem, why);
}

#define F_INDIRECT (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT    (1ULL << VIRTIO_RING_F_EVENT_IDX)
#define NEXT       VRING_DESC_F_NEXT
#define WRITE      VRING_DESC_F_WRITE
#define INDIRECT   VRING_DESC_F_INDIRECT

UNIT_TEST(ring_simple_chain_pop_and_push)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 3, BUF_GPA, 16, NEXT, 7);
    desc_set(DESC_GPA, 7, BUF_GPA + 0x1000, 512, NEXT | WRITE, 1);
    desc_set(DESC_GPA, 1, BUF_GPA + 0x2000, 1, WRITE, 0);
    CHECK_EQ(pop(&vq, &e, &why), 0);                   /* nothing yet */
    avail_add(3);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(e.head, 3);
    CHECK_EQ(e.out_num, 1);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.out_len, 16);
    CHECK_EQ(e.in_len, 513);
    CHECK(e.iov[0].iov_base == m.ram + BUF_GPA);
    CHECK(e.iov[2].iov_base == m.ram + BUF_GPA + 0x2000);
    CHECK(!e.bad_address);
    CHECK_EQ(pop(&vq, &e, &why), 0);
    virtqueue_push(&vq, &e, 513);
    CHECK_EQ(used_idx(), 1);
    CHECK_EQ(get32(USED_GPA + 4), 3);
    CHECK_EQ(used_len(0), 513);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_indirect_table)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    uint64_t table = BUF_GPA + 0x10000;

    machine_setup();
    vq_setup(&vq, F_INDIRECT);
    virtqueue_element_init(&e);
    desc_set(table, 0, BUF_GPA, 16, NEXT, 2);          /* chained out of order */
    desc_set(table, 2, BUF_GPA + 0x1000, 4096, NEXT | WRITE, 1);
    desc_set(table, 1, BUF_GPA + 0x3000, 1, WRITE, 0);
    /* a plain descriptor, then the indirect one: both count */
    desc_set(DESC_GPA, 0, BUF_GPA + 0x4000, 8, NEXT, 5);
    desc_set(DESC_GPA, 5, table, 3 * 16, INDIRECT | WRITE, 0);   /* WRITE ignored */
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(e.out_num, 2);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.out_len, 24);
    CHECK_EQ(e.in_len, 4097);
    CHECK(e.iov[2].iov_base == m.ram + BUF_GPA + 0x1000);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_event_index_both_ways)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, F_EVENT);
    virtqueue_element_init(&e);
    for (int i = 0; i < 4; i++) {
        desc_set(DESC_GPA, i, BUF_GPA, 1, WRITE, 0);
        avail_add(i);
    }
    put16(AVAIL_GPA + 4 + 2 * QSIZE, 2);               /* used_event: after 3 used */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pop(&vq, &e, &why), 1);
        virtqueue_push(&vq, &e, 1);
        /* the first is always signalled; then only crossing used_event */
        CHECK_EQ(virtqueue_should_notify(&vq), i == 0 || i == 2);
    }
    /* device side: enabling notifications publishes avail_event */
    virtqueue_set_notification(&vq, true);
    CHECK_EQ(get16(USED_GPA + 4 + 8 * QSIZE), 4);
    CHECK(!virtqueue_has_avail(&vq));
    avail_add(0);
    CHECK(virtqueue_has_avail(&vq));
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_flags_without_event_index)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 0, BUF_GPA, 1, WRITE, 0);
    avail_add(0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    virtqueue_push(&vq, &e, 1);
    put16(AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
    CHECK(!virtqueue_should_notify(&vq));
    put16(AVAIL_GPA, 0);
    CHECK(virtqueue_should_notify(&vq));
    virtqueue_set_notification(&vq, false);
    CHECK_EQ(get16(USED_GPA), VRING_USED_F_NO_NOTIFY);
    virtqueue_set_notification(&vq, true);
    CHECK_EQ(get16(USED_GPA), 0);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

/* Set up one hostile ring with fn, pop it, expect -EINVAL and a reason. */
static void expect_ring_error(void (*fn)(void), uint64_t features, const char *why_part)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    uint8_t *copy;

    machine_setup();
    vq_setup(&vq, features);
    virtqueue_element_init(&e);
    fn();
    copy = g_memdup2(m.ram, RAM_SIZE);
    CHECK_EQ(pop(&vq, &e, &why), -EINVAL);
    if (!why || !strstr(why, why_part)) {
        fprintf(stderr, "expected '%s', got '%s'\n", why_part, why ? why : "(none)");
        unit_failed = 1;
    }
    CHECK(memcmp(copy, m.ram, RAM_SIZE) == 0);        /* nothing was written */
    CHECK_EQ(vq.last_avail_idx, 0);
    g_free(copy);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

static void hostile_loop(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, NEXT, 0);
    avail_add(0);
}

static void hostile_self_loop(void)
{
    desc_set(DESC_GPA, 4, BUF_GPA, 0, NEXT, 4);
    avail_add(4);
}

static void hostile_next_out_of_range(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 16, NEXT, QSIZE + 5);
    avail_add(0);
}

static void hostile_head_out_of_range(void)
{
    avail_add(300);
}

static void hostile_avail_jump(void)
{
    put16(AVAIL_GPA + 2, QSIZE + 1);
}

static void hostile_nested_indirect(void)
{
    uint64_t t1 = BUF_GPA + 0x10000, t2 = BUF_GPA + 0x20000;

    desc_set(t2, 0, BUF_GPA, 16, 0, 0);
    desc_set(t1, 0, t2, 16, INDIRECT, 0);
    desc_set(DESC_GPA, 0, t1, 16, INDIRECT, 0);
    avail_add(0);
}

/* a "table" that is the descriptor ring itself: its entry 0 is the same
 * indirect descriptor (a walker comparing tables with the ring loops) */
static void hostile_indirect_table_is_the_ring(void)
{
    desc_set(DESC_GPA, 0, DESC_GPA, QSIZE * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_with_next(void)
{
    desc_set(BUF_GPA + 0x10000, 0, BUF_GPA, 16, 0, 0);
    desc_set(DESC_GPA, 0, BUF_GPA + 0x10000, 16, INDIRECT | NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, 0, 0);
    avail_add(0);
}

static void hostile_indirect_len_zero(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 0, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_len_odd(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 17, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_outside_ram(void)
{
    desc_set(DESC_GPA, 0, RAM_SIZE - 16, 64, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_huge(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 0xfffffff0u, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_loop(void)
{
    uint64_t t = BUF_GPA + 0x10000;

    desc_set(t, 0, BUF_GPA, 16, NEXT, 1);
    desc_set(t, 1, BUF_GPA, 16, NEXT, 0);
    desc_set(DESC_GPA, 0, t, 2 * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_chain_too_long(void)
{
    uint64_t t = BUF_GPA + 0x10000;

    for (unsigned i = 0; i < 256; i++) {
        desc_set(t, i, BUF_GPA, 1, NEXT, i + 1);
    }
    desc_set(t, 255, BUF_GPA, 1, 0, 0);
    desc_set(DESC_GPA, 0, BUF_GPA, 1, NEXT, 1);         /* 1 + 256 > 256 */
    desc_set(DESC_GPA, 1, t, 256 * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_readable_after_writable(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 1, WRITE | NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, 0, 0);
    avail_add(0);
}

UNIT_TEST(ring_hostile_chains_are_errors)
{
    expect_ring_error(hostile_loop, 0, "loops");
    expect_ring_error(hostile_self_loop, 0, "loops");
    expect_ring_error(hostile_next_out_of_range, 0, "out of range");
    expect_ring_error(hostile_head_out_of_range, 0, "head index out of range");
    expect_ring_error(hostile_avail_jump, 0, "more than the queue size");
    expect_ring_error(hostile_readable_after_writable, 0, "after a device-writable");
    expect_ring_error(hostile_nested_indirect, F_INDIRECT, "inside an indirect");
    expect_ring_error(hostile_nested_indirect, 0, "without VIRTIO_RING_F_INDIRECT");
    expect_ring_error(hostile_indirect_table_is_the_ring, F_INDIRECT, "inside an indirect");
    expect_ring_error(hostile_indirect_with_next, F_INDIRECT, "NEXT set");
    expect_ring_error(hostile_indirect_len_zero, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_len_odd, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_outside_ram, F_INDIRECT, "outside guest RAM");
    expect_ring_error(hostile_indirect_huge, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_loop, F_INDIRECT, "loops");
    expect_ring_error(hostile_chain_too_long, F_INDIRECT, "longer");
}

UNIT_TEST(ring_buffers_outside_ram_and_zero_lengths)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 0, BUF_GPA, 0, NEXT, 1);                    /* zero length */
    desc_set(DESC_GPA, 1, RAM_SIZE - 8, 16, NEXT, 2);              /* runs off RAM */
    desc_set(DESC_GPA, 2, 0xfffffffffffffff0ULL, 0x20, NEXT | WRITE, 3); /* wraps */
    desc_set(DESC_GPA, 3, 0xe0000000ULL, 1, WRITE, 0);            /* PCI hole */
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);       /* a well-formed chain of bad buffers */
    CHECK(e.bad_address);
    CHECK(e.iov[0].iov_base == NULL && e.iov[0].iov_len == 0);
    CHECK(e.iov[1].iov_base == NULL && e.iov[2].iov_base == NULL &&
          e.iov[3].iov_base == NULL);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_setup_checks_size_alignment_and_ram)
{
    VirtQueue vq;
    const char *why = NULL;

    machine_setup();
    virtqueue_init(&vq, &m, NULL, 0, 256);
    vq.desc_gpa = DESC_GPA;
    vq.avail_gpa = AVAIL_GPA;
    vq.used_gpa = USED_GPA;
    static const uint16_t bad_sizes[] = { 0, 100, 512 };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
        vq.size = bad_sizes[i];
        CHECK(!virtqueue_map_rings(&vq, 0, &why));
    }
    vq.size = 256;
    vq.used_gpa = USED_GPA + 2;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && strstr(why, "misaligned"));
    vq.used_gpa = RAM_SIZE - 64;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && strstr(why, "outside"));
    vq.used_gpa = USED_GPA;
    vq.desc_gpa = 0xfffffffffffff000ULL;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && !vq.ready);
    virtqueue_destroy(&vq);
    machine_teardown();
}

/* ---- a memory disk behind virtio-blk ---- */

#define DISK_SECTORS 2048

typedef struct MemDisk {
    pthread_mutex_t lock;
    uint8_t data[DISK_SECTORS * 512];
    bool read_only;
    int flushes, discards, zeroes;
    uint64_t last_offset, last_len;
    bool last_unmap;
} MemDisk;

static MemDisk disk;

static uint64_t md_getlength(BlockDriverState *bs)
{
    return sizeof(disk.data);
}

static bool md_read_only(BlockDriverState *bs)
{
    return disk.read_only;
}

static int md_rw(uint64_t offset, const struct iovec *iov, int n, bool write)
{
    pthread_mutex_lock(&disk.lock);
    for (int i = 0; i < n; i++) {
        if (offset + iov[i].iov_len > sizeof(disk.data)) {
            pthread_mutex_unlock(&disk.lock);
            return -EINVAL;
        }
        if (write) {
            memcpy(disk.data + offset, iov[i].iov_base, iov[i].iov_len);
        } else {
            memcpy(iov[i].iov_base, disk.data + offset, iov[i].iov_len);
        }
        offset += iov[i].iov_len;
    }
    pthread_mutex_unlock(&disk.lock);
    return 0;
}

static int md_preadv(BlockDriverState *bs, uint64_t o, const struct iovec *v, int n)
{
    return md_rw(o, v, n, false);
}

static int md_pwritev(BlockDriverState *bs, uint64_t o, const struct iovec *v, int n)
{
    return md_rw(o, v, n, true);
}

static int md_flush(BlockDriverState *bs)
{
    __atomic_fetch_add(&disk.flushes, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int md_discard(BlockDriverState *bs, uint64_t offset, uint64_t len)
{
    disk.discards++;
    disk.last_offset = offset;
    disk.last_len = len;
    return 0;
}

static int md_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t len,
                           bool unmap)
{
    memset(disk.data + offset, 0, len);
    disk.zeroes++;
    disk.last_unmap = unmap;
    return 0;
}

static const VirtioBlkBackend mem_disk = {
    md_getlength, md_read_only, md_preadv, md_pwritev, md_flush, md_discard,
    md_write_zeroes,
};

static BlockDriverState *const FAKE_BS = (BlockDriverState *)&disk;

static void disk_setup(bool read_only)
{
    memset(&disk, 0, sizeof(disk));
    pthread_mutex_init(&disk.lock, NULL);
    for (size_t i = 0; i < sizeof(disk.data); i++) {
        disk.data[i] = i * 7 + i / 512;
    }
    disk.read_only = read_only;
}

/* A VirtioBlk to run requests on directly, without transport or threads. */
static void blk_setup(VirtioBlk *blk, bool read_only)
{
    uint64_t f = (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);

    disk_setup(read_only);
    memset(blk, 0, sizeof(*blk));
    blk->bs = FAKE_BS;
    blk->backend = &mem_disk;
    blk->capacity = DISK_SECTORS;
    blk->read_only = read_only;
    memcpy(blk->serial, "DV-SERIAL-0001", 14);
    blk->vdev.host_features = read_only ? 0 : f;
}

#define HDR_GPA    (BUF_GPA + 0x0000)
#define DATA_GPA   (BUF_GPA + 0x1000)
#define STATUS_GPA (BUF_GPA + 0x8000)

/* Build header [+ out data | in data] + status, pop it and execute it. */
static int blk_request(VirtioBlk *blk, uint32_t type, uint64_t sector, uint32_t data_len,
                       bool data_in, uint32_t *used)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    int ret = -1;

    vq_setup(&vq, F_INDIRECT);
    put32(HDR_GPA, type);
    put64(HDR_GPA + 8, sector);
    put16(STATUS_GPA, 0xee);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 0, HDR_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, DATA_GPA, data_len, NEXT | (data_in ? WRITE : 0), 2);
    desc_set(DESC_GPA, 2, STATUS_GPA, 1, WRITE, 0);
    avail_add(0);
    if (pop(&vq, &e, &why) == 1) {
        ret = virtio_blk_execute(blk, &e, used);
    }
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    return ret;
}

static uint8_t status_byte(void)
{
    return m.ram[STATUS_GPA];
}

UNIT_TEST(blk_read_write_flush_get_id)
{
    VirtioBlk blk;
    uint32_t used;

    machine_setup();
    blk_setup(&blk, false);
    /* IN: two sectors from sector 5, used length counts data and status */
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_IN, 5, 1024, true, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 1025);
    CHECK_EQ(status_byte(), VIRTIO_BLK_S_OK);
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 5 * 512, 1024) == 0);
    /* OUT */
    memset(m.ram + DATA_GPA, 0x5a, 512);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_OUT, 9, 512, false, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 1);
    CHECK_EQ(disk.data[9 * 512], 0x5a);
    CHECK_EQ(disk.data[10 * 512 - 1], 0x5a);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_FLUSH, 0, 0, false, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(disk.flushes, 1);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_GET_ID, 0, 20, true, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 21);
    CHECK(memcmp(m.ram + DATA_GPA, "DV-SERIAL-0001\0\0\0\0\0\0", 20) == 0);
    machine_teardown();
}

UNIT_TEST(blk_errors_past_the_end_read_only_unsupported)
{
    VirtioBlk blk;
    uint32_t used;
    uint8_t before[sizeof(disk.data)];

    machine_setup();
    blk_setup(&blk, false);
    memcpy(before, disk.data, sizeof(before));
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024, true, &used),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(used, 1);
    CHECK_EQ(status_byte(), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false, &used),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_OUT, 1ULL << 55, 512, false, &used),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_IN, 0, 100, true, &used), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(blk_request(&blk, 99, 0, 512, true, &used), VIRTIO_BLK_S_UNSUPP);
    CHECK_EQ(blk_request(&blk, 10 /* GET_LIFETIME */, 0, 8, true, &used),
             VIRTIO_BLK_S_UNSUPP);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_OUT | 0x80000000u, 0, 512, false, &used),
             VIRTIO_BLK_S_UNSUPP);
    CHECK(memcmp(before, disk.data, sizeof(before)) == 0);
    /* a read-only disk refuses writes and does not offer discard */
    blk_setup(&blk, true);
    memcpy(before, disk.data, sizeof(before));
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_OUT, 0, 512, false, &used),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_DISCARD, 0, 16, false, &used),
             VIRTIO_BLK_S_UNSUPP);
    CHECK(memcmp(before, disk.data, sizeof(before)) == 0);
    machine_teardown();
}

static void dwz_segment(unsigned i, uint64_t sector, uint32_t sectors, uint32_t flags)
{
    put64(DATA_GPA + 16 * i, sector);
    put32(DATA_GPA + 16 * i + 8, sectors);
    put32(DATA_GPA + 16 * i + 12, flags);
}

UNIT_TEST(blk_discard_and_write_zeroes)
{
    VirtioBlk blk;
    uint32_t used;

    machine_setup();
    blk_setup(&blk, false);
    dwz_segment(0, 8, 4, 0);
    dwz_segment(1, 100, 1, 0);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_DISCARD, 0, 32, false, &used),
             VIRTIO_BLK_S_OK);
    CHECK_EQ(disk.discards, 2);
    CHECK_EQ(disk.last_offset, 100 * 512);
    /* unmap on a discard, unknown flags: unsupported; past the end: I/O
     * error, and no segment of a failed request is carried out */
    dwz_segment(0, 8, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_DISCARD, 0, 16, false, &used),
             VIRTIO_BLK_S_UNSUPP);
    dwz_segment(0, 8, 4, 2);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, &used),
             VIRTIO_BLK_S_UNSUPP);
    dwz_segment(0, 8, 4, 0);
    dwz_segment(1, DISK_SECTORS - 1, 2, 0);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false, &used),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(disk.zeroes, 0);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_DISCARD, 0, 24, false, &used),
             VIRTIO_BLK_S_IOERR);                       /* not whole segments */
    dwz_segment(0, 8, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    CHECK_EQ(blk_request(&blk, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, &used),
             VIRTIO_BLK_S_OK);
    CHECK(disk.last_unmap);
    CHECK_EQ(disk.data[8 * 512], 0);
    CHECK_EQ(disk.data[12 * 512 - 1], 0);
    CHECK(disk.data[12 * 512] != 0 || disk.data[12 * 512 + 1] != 0);
    machine_teardown();
}

/* Chains with odd framing: split header, header and data together. */
UNIT_TEST(blk_any_framing_and_hostile_requests)
{
    VirtioBlk blk;
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    uint32_t used;

    machine_setup();
    blk_setup(&blk, false);
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    /* header in two halves, then data+status in one writable buffer */
    put32(HDR_GPA, VIRTIO_BLK_T_IN);
    put64(HDR_GPA + 8, 3);
    desc_set(DESC_GPA, 0, HDR_GPA, 8, NEXT, 1);
    desc_set(DESC_GPA, 1, HDR_GPA + 8, 8, NEXT, 2);
    desc_set(DESC_GPA, 2, DATA_GPA, 513, WRITE, 0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(virtio_blk_execute(&blk, &e, &used), VIRTIO_BLK_S_OK);
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 3 * 512, 512) == 0);
    CHECK_EQ(m.ram[DATA_GPA + 512], VIRTIO_BLK_S_OK);
    /* a short header: I/O error, reported */
    desc_set(DESC_GPA, 0, HDR_GPA, 8, NEXT, 2);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(virtio_blk_execute(&blk, &e, &used), VIRTIO_BLK_S_IOERR);
    /* data outside RAM: I/O error, status still written */
    desc_set(DESC_GPA, 0, HDR_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, 0xd0000000ULL, 512, NEXT | WRITE, 3);
    desc_set(DESC_GPA, 3, STATUS_GPA, 1, WRITE, 0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(virtio_blk_execute(&blk, &e, &used), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(status_byte(), VIRTIO_BLK_S_IOERR);
    /* no writable byte at all, or the status byte outside RAM: no answer */
    desc_set(DESC_GPA, 0, HDR_GPA, 16, 0, 0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(virtio_blk_execute(&blk, &e, &used), -EINVAL);
    desc_set(DESC_GPA, 0, HDR_GPA, 16, NEXT, 3);
    desc_set(DESC_GPA, 3, RAM_SIZE, 1, WRITE, 0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(virtio_blk_execute(&blk, &e, &used), -EINVAL);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

/* ---- the PCI transport, driven the way a guest driver drives it ---- */

typedef struct FakeKvm {
    pthread_mutex_t lock;
    int level[24];
    struct {
        bool used;
        uint32_t data;
        int fd;
    } routes[16];
} FakeKvm;

static FakeKvm kvm;

static void fake_set_irq(void *opaque, int gsi, int level)
{
    pthread_mutex_lock(&kvm.lock);
    kvm.level[gsi] = level;
    pthread_mutex_unlock(&kvm.lock);
}

static int fake_route_add(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    for (int i = 0; i < 16; i++) {
        if (!kvm.routes[i].used) {
            kvm.routes[i].used = true;
            kvm.routes[i].data = data;
            kvm.routes[i].fd = -1;
            return 100 + i;
        }
    }
    return -1;
}

static bool fake_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                              GError **errp)
{
    kvm.routes[gsi - 100].data = data;
    return true;
}

static void fake_route_del(void *opaque, int gsi)
{
    kvm.routes[gsi - 100].used = false;
}

static bool fake_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    kvm.routes[gsi - 100].fd = assign ? fd : -1;
    return true;
}

static bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len,
                           bool is_pio, bool assign, GError **errp)
{
    return false;       /* no ioeventfd: kicks come through the MMIO handler */
}

static bool fake_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    return true;
}

static const PciKvmOps fake_ops = {
    fake_set_irq,     fake_route_add, fake_route_update, fake_route_del,
    fake_irqfd,       fake_ioeventfd, fake_signal_msi,
};

static int line_level(int irq)
{
    int v;

    pthread_mutex_lock(&kvm.lock);
    v = kvm.level[irq];
    pthread_mutex_unlock(&kvm.lock);
    return v;
}

static void mmio_write(uint64_t addr, unsigned len, uint64_t val)
{
    uint8_t d[8];

    for (unsigned i = 0; i < len; i++) {
        d[i] = val >> (8 * i);
    }
    bus_dispatch(&m.mmio_bus, addr, d, len, true);
}

static uint64_t mmio_read(uint64_t addr, unsigned len)
{
    uint8_t d[8] = { 0 };
    uint64_t v = 0;

    bus_dispatch(&m.mmio_bus, addr, d, len, false);
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)d[i] << (8 * i);
    }
    return v;
}

typedef struct Driver {
    PciDevice *pci;
    uint64_t common, isr, device, notify;
    uint32_t notify_mult;
    uint8_t msix_cap, cfg_cap;
} Driver;

/* Find the regions from the capabilities, as a driver must. */
static void driver_probe(Driver *d)
{
    const uint8_t *cfg = d->pci->config;

    for (uint8_t cap = cfg[PCI_CAPABILITY_LIST]; cap; cap = cfg[cap + 1]) {
        uint64_t addr = pci_bar_programmed_address(d->pci, cfg[cap + 4]) +
                        pci_get_long(cfg + cap + 8);
        if (cfg[cap] == PCI_CAP_ID_MSIX) {
            d->msix_cap = cap;
            continue;
        }
        switch (cfg[cap + 3]) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            d->common = addr;
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            d->isr = addr;
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            d->device = addr;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            d->notify = addr;
            d->notify_mult = pci_get_long(cfg + cap + 16);
            break;
        case VIRTIO_PCI_CAP_PCI_CFG:
            d->cfg_cap = cap;
            break;
        }
    }
}

static void dev_setup_queues(Driver *d, bool read_only, unsigned num_queues)
{
    VirtioBlkOptions o = { .bs = FAKE_BS, .id = "vd0", .serial = "S1",
                           .devfn = PCI_DEVFN_AUTO, .backend = &mem_disk,
                           .num_queues = num_queues };
    GError *err = NULL;

    machine_setup();
    disk_setup(read_only);
    memset(&kvm, 0, sizeof(kvm));
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&kvm.lock, NULL);
    avail_idx = 0;
    CHECK(pci_pc_init_with_ops(&m, &fake_ops, &kvm, &err));
    d->pci = virtio_blk_pci_create_opts(&m, &o, &err);
    CHECK(d->pci && !err);
    pci_pc_assign_resources(&m);
    driver_probe(d);
}

static void dev_setup(Driver *d, bool read_only)
{
    dev_setup_queues(d, read_only, 1);
}

#define STATUS_ALL (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)

static uint64_t common_read(Driver *d, unsigned off, unsigned len)
{
    return mmio_read(d->common + off, len);
}

static void common_write(Driver *d, unsigned off, unsigned len, uint64_t v)
{
    mmio_write(d->common + off, len, v);
}

/* Negotiate features; returns the status read back after FEATURES_OK. */
static uint8_t driver_negotiate(Driver *d, uint64_t features)
{
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, STATUS_ALL);
    common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
    common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_write(d, VIRTIO_PCI_COMMON_GF, 4, features >> 32);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1,
                 STATUS_ALL | VIRTIO_CONFIG_S_FEATURES_OK);
    return common_read(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void driver_msix_on(Driver *d)
{
    uint64_t table = pci_bar_programmed_address(d->pci, 1);

    pci_config_write(d->pci, d->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    for (int v = 0; v < 2; v++) {
        mmio_write(table + 16 * v, 4, 0xfee00000);
        mmio_write(table + 16 * v + 8, 4, 0x40 + v);
        mmio_write(table + 16 * v + 12, 4, 0);
    }
}

/* The whole start-up; queue q on the test rings. */
static void driver_start_queue(Driver *d, uint64_t features, bool msix, unsigned q)
{
    memset(m.ram + DESC_GPA, 0, USED_GPA + 0x1000 - DESC_GPA);
    avail_idx = 0;
    CHECK(driver_negotiate(d, features) & VIRTIO_CONFIG_S_FEATURES_OK);
    if (msix) {
        driver_msix_on(d);
    }
    common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, msix ? 0 : VIRTIO_NO_VECTOR);
    common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    CHECK_EQ(common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
    common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, DESC_GPA);
    common_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, AVAIL_GPA);    /* one 8-byte write */
    common_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, USED_GPA);
    common_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, msix ? 1 : VIRTIO_NO_VECTOR);
    common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    CHECK_EQ(common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1,
                 STATUS_ALL | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void driver_start(Driver *d, uint64_t features, bool msix)
{
    driver_start_queue(d, features, msix, 0);
}

static void driver_kick(Driver *d)
{
    unsigned off = common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2) * d->notify_mult;

    mmio_write(d->notify + off, 2, 0);
}

static bool wait_for(bool (*cond)(Driver *d, uint64_t arg), Driver *d, uint64_t arg)
{
    for (int i = 0; i < 5000; i++) {
        if (cond(d, arg)) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

static bool used_reached(Driver *d, uint64_t n)
{
    return used_idx() == (uint16_t)n;
}

static bool line_high(Driver *d, uint64_t irq)
{
    return line_level(irq) == 1;
}

static bool fd_readable(Driver *d, uint64_t fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

static bool status_has(Driver *d, uint64_t bits)
{
    return (common_read(d, VIRTIO_PCI_COMMON_STATUS, 1) & bits) == bits;
}

/* One read of sectors at sector into DATA_GPA + 0x1000 * slot, head = 3*slot. */
static void queue_read(unsigned slot, uint64_t sector, uint32_t sectors)
{
    uint64_t hdr = HDR_GPA + 32 * slot;

    put32(hdr, VIRTIO_BLK_T_IN);
    put64(hdr + 8, sector);
    desc_set(DESC_GPA, 3 * slot, hdr, 16, NEXT, 3 * slot + 1);
    desc_set(DESC_GPA, 3 * slot + 1, DATA_GPA + 0x1000 * slot, 512 * sectors,
             NEXT | WRITE, 3 * slot + 2);
    desc_set(DESC_GPA, 3 * slot + 2, STATUS_GPA + slot, 1, WRITE, 0);
    avail_add(3 * slot);
}

static const uint64_t blk_features = (1ULL << VIRTIO_F_VERSION_1) | F_INDIRECT | F_EVENT;

UNIT_TEST(pci_device_identity_and_config)
{
    Driver d;
    uint64_t f;

    dev_setup(&d, false);
    CHECK_EQ(pci_get_word(d.pci->config + PCI_DEVICE_ID), 0x1042);
    CHECK_EQ(pci_get_word(d.pci->config + PCI_CLASS_DEVICE), 0x0100);
    CHECK_EQ(d.pci->config[PCI_REVISION_ID], 1);
    CHECK_EQ(d.pci->devfn, PCI_MAKE_DEVFN(2, 0));
    CHECK(d.pci->bars[4].kind == PCI_BAR_MEM64 && d.pci->bars[4].prefetch);
    CHECK(d.common && d.isr && d.device && d.notify && d.msix_cap && d.cfg_cap);
    CHECK_EQ(d.notify_mult, 4);
    common_write(&d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    f = common_read(&d, VIRTIO_PCI_COMMON_DF, 4);
    common_write(&d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    f |= common_read(&d, VIRTIO_PCI_COMMON_DF, 4) << 32;
    CHECK(f & (1ULL << VIRTIO_F_VERSION_1));
    CHECK(f & F_INDIRECT && f & F_EVENT);
    CHECK(f & (1ULL << VIRTIO_BLK_F_FLUSH) && f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
    CHECK(f & (1ULL << VIRTIO_BLK_F_DISCARD) && !(f & (1ULL << VIRTIO_BLK_F_RO)));
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
    /* capacity as two 32-bit reads, seg_max, blk_size */
    CHECK_EQ(mmio_read(d.device, 4) | mmio_read(d.device + 4, 4) << 32, DISK_SECTORS);
    CHECK_EQ(mmio_read(d.device + 12, 4), 254);
    CHECK_EQ(mmio_read(d.device + 20, 4), 512);
    /* the PCI_CFG window reads the same through config space */
    pci_config_write(d.pci, d.cfg_cap + 4, 1, 4);
    pci_config_write(d.pci, d.cfg_cap + 8, 4, 0x2000);
    pci_config_write(d.pci, d.cfg_cap + 12, 4, 4);
    CHECK_EQ(pci_config_read(d.pci, d.cfg_cap + 16, 4), DISK_SECTORS);
    pci_config_write(d.pci, d.cfg_cap + 12, 4, 3);                /* bad length */
    CHECK_EQ(pci_config_read(d.pci, d.cfg_cap + 16, 4), DISK_SECTORS);
    machine_teardown();
}

UNIT_TEST(pci_feature_negotiation_refuses_legacy_and_unknown)
{
    Driver d;

    dev_setup(&d, true);
    CHECK(!(driver_negotiate(&d, F_INDIRECT) & VIRTIO_CONFIG_S_FEATURES_OK));
    CHECK(!(driver_negotiate(&d, blk_features | (1ULL << VIRTIO_BLK_F_DISCARD)) &
            VIRTIO_CONFIG_S_FEATURES_OK));                     /* not offered: RO */
    CHECK(driver_negotiate(&d, blk_features | (1ULL << VIRTIO_BLK_F_RO)) &
          VIRTIO_CONFIG_S_FEATURES_OK);
    /* DRIVER_OK without FEATURES_OK does not stick */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, STATUS_ALL | VIRTIO_CONFIG_S_DRIVER_OK);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_STATUS, 1), STATUS_ALL);
    /* a vector past the table reads back as NO_VECTOR */
    common_write(&d, VIRTIO_PCI_COMMON_MSIX, 2, 7);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    /* no such queue: size 0 */
    common_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 5);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    machine_teardown();
}

UNIT_TEST(pci_read_with_msix_through_the_io_thread)
{
    Driver d;
    int fd = -1;
    uint64_t count = 0;

    dev_setup(&d, false);
    driver_start(&d, blk_features, true);
    queue_read(0, 7, 2);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK_EQ(m.ram[STATUS_GPA], VIRTIO_BLK_S_OK);
    CHECK_EQ(used_len(0), 1025);
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 7 * 512, 1024) == 0);
    for (int i = 0; i < 16; i++) {
        if (kvm.routes[i].used && kvm.routes[i].data == 0x41) {
            fd = kvm.routes[i].fd;
        }
    }
    CHECK(fd >= 0 && wait_for(fd_readable, &d, fd));    /* raised after the push */
    CHECK(read(fd, &count, 8) == 8 && count == 1);
    CHECK_EQ(line_level(10), 0);                      /* no INTx with MSI-X */
    machine_teardown();
}

UNIT_TEST(pci_many_requests_at_once_use_the_pool)
{
    Driver d;

    dev_setup(&d, false);
    driver_start(&d, blk_features, true);
    for (unsigned s = 0; s < 5; s++) {
        queue_read(s, 100 + 3 * s, 3);
    }
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 5));
    for (unsigned s = 0; s < 5; s++) {
        CHECK_EQ(m.ram[STATUS_GPA + s], VIRTIO_BLK_S_OK);
        CHECK(memcmp(m.ram + DATA_GPA + 0x1000 * s, disk.data + (100 + 3 * s) * 512,
                     3 * 512) == 0);
    }
    machine_teardown();
}

UNIT_TEST(pci_second_queue_with_mq)
{
    Driver d;
    uint64_t mq = 1ULL << VIRTIO_BLK_F_MQ;

    dev_setup_queues(&d, false, 2);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    CHECK_EQ(mmio_read(d.device + 34, 2), 2);              /* config num_queues */
    CHECK_EQ(msix_nr_vectors(d.pci), 3);
    driver_start_queue(&d, blk_features | mq, true, 1);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
    queue_read(0, 9, 1);
    driver_kick(&d);                                       /* queue 1's address */
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 9 * 512, 512) == 0);
    /* queue 0 was never enabled: a kick there does nothing */
    mmio_write(d.notify, 2, 0);
    common_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    machine_teardown();
}

UNIT_TEST(pci_intx_and_isr_without_msix)
{
    Driver d;

    dev_setup(&d, false);
    CHECK_EQ(d.pci->config[PCI_INTERRUPT_LINE], 10);     /* slot 2: PIRQB */
    driver_start(&d, blk_features, false);
    queue_read(0, 1, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(wait_for(line_high, &d, 10));
    CHECK_EQ(mmio_read(d.isr, 1), 1);                     /* queue bit; read clears */
    CHECK_EQ(line_level(10), 0);
    CHECK_EQ(mmio_read(d.isr, 1), 0);
    machine_teardown();
}

UNIT_TEST(pci_hostile_ring_needs_reset_then_recovers)
{
    Driver d;

    dev_setup(&d, false);
    driver_start(&d, blk_features, false);
    desc_set(DESC_GPA, 0, HDR_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, HDR_GPA, 16, NEXT, 0);          /* a loop */
    avail_add(0);
    driver_kick(&d);
    CHECK(wait_for(status_has, &d, VIRTIO_CONFIG_S_NEEDS_RESET));
    CHECK(wait_for(line_high, &d, 10));
    CHECK_EQ(mmio_read(d.isr, 1), VIRTIO_PCI_ISR_CONFIG);
    CHECK_EQ(used_idx(), 0);
    /* reset: status 0, then a normal start works */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    driver_start(&d, blk_features, false);
    queue_read(0, 2, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK_EQ(m.ram[STATUS_GPA], VIRTIO_BLK_S_OK);
    /* rings outside RAM at enable: needs reset too, nothing else happens */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    driver_negotiate(&d, blk_features);
    common_write(&d, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x7ffffff000ULL);
    common_write(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    CHECK(status_has(&d, VIRTIO_CONFIG_S_NEEDS_RESET));
    machine_teardown();
}

UNIT_TEST(pci_state_save_load_round_trip)
{
    Driver d;
    DeviceStateEntry *e;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    dev_setup(&d, false);
    e = device_state_find(&m.device_states, "virtio-blk@00:02.0");
    CHECK(e != NULL);
    driver_start(&d, blk_features, true);
    queue_read(0, 4, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(e->ops->save(e->opaque, blob, &err));
    /* refusals leave the device as it was */
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len - 3, e->version, &err));
    g_clear_error(&err);
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len, e->version + 1, &err));
    g_clear_error(&err);
    CHECK(e->ops->load(e->opaque, blob->data, blob->len, e->version, &err));
    CHECK(err == NULL);
    CHECK(status_has(&d, VIRTIO_CONFIG_S_DRIVER_OK));
    pci_pc_resume(&m);                  /* the VM runs again */
    queue_read(1, 5, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 2));
    CHECK(memcmp(m.ram + DATA_GPA + 0x1000, disk.data + 5 * 512, 512) == 0);
    g_byte_array_free(blob, TRUE);
    machine_teardown();
}

/* ---- -device virtio-blk-pci,... through the registry ---- */

static BlockDriverState *lookup_drive(void *opaque, const char *id, GError **errp)
{
    return strcmp(id, "d0") == 0 ? FAKE_BS : NULL;
}

/* Create from a -device string; NULL with the error message in *msg. */
static PciDevice *device_add(const char *spec, char **msg)
{
    SubOpts *opts = subopts_parse(spec, NULL, NULL);
    GError *err = NULL;
    PciDevice *dev = pci_device_create(&m, "virtio-blk-pci", opts, lookup_drive, NULL,
                                       &err);

    *msg = err ? g_strdup(err->message) : NULL;
    g_clear_error(&err);
    subopts_free(opts);
    return dev;
}

UNIT_TEST(device_registry_options_and_errors)
{
    static const struct {
        const char *spec, *error;
    } bad[] = {
        { "id=x", "drive property not set" },
        { "drive=nope", "Property 'virtio-blk-pci.drive' can't find value 'nope'" },
        { "drive=d0,addr=0x20", "Property 'addr' doesn't take value '0x20'" },
        { "drive=d0,foo=1", "Property 'virtio-blk-pci.foo' not found" },
        { "drive=d0,disable-legacy=off", "only the modern" },
        { "drive=d0,num-queues=99", "num-queues" },
        { "drive=d0,queue-size=100", "queue-size" },
        { "drive=d0,bus=pci.1", "Bus 'pci.1' not found" },
        { "drive=d0,id=vb1", "Duplicate device ID 'vb1'" },
        { "drive=d0,addr=5", "slot 5 function 0 not available" },
    };
    GError *err = NULL;
    PciDevice *dev;
    char *msg;

    machine_setup();
    CHECK(pci_pc_init_with_ops(&m, &fake_ops, &kvm, &err));
    dev = device_add("drive=d0,id=vb1,addr=05.0,bootindex=2,serial=abc,"
                     "disable-legacy=on,num-queues=2,queue-size=128", &msg);
    CHECK(dev && !msg);
    CHECK_STR(dev->qdev_id, "vb1");
    CHECK_EQ(dev->devfn, PCI_MAKE_DEVFN(5, 0));
    CHECK_EQ(dev->bootindex, 2);
    CHECK(pci_find_device_by_id(&m, "vb1") == dev);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        CHECK(device_add(bad[i].spec, &msg) == NULL);
        if (!msg || !strstr(msg, bad[i].error)) {
            fprintf(stderr, "%s: got '%s'\n", bad[i].spec, msg ? msg : "(none)");
            unit_failed = 1;
        }
        g_free(msg);
    }
    CHECK(!pci_driver_exists("e1000"));
    CHECK(pci_driver_exists("virtio-blk-pci"));
    msg = pci_driver_list();
    CHECK(strstr(msg, "name \"virtio-blk-pci\", bus PCI"));
    g_free(msg);
    machine_teardown();
}
