/*
 * virtio-blk requests against a memory disk, executed directly on popped
 * elements: no transport and no threads.
 */
#include <errno.h>
#include <string.h>
#include <linux/virtio_blk.h>

#include "hw/virtio.h"
#include "hw/virtio/virtio-blk.h"
#include "unit.h"
#include "virtio-fakes.h"

UNIT_MAIN()

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
             VIRTIO_BLK_S_IOERR); /* not whole segments */
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
