/*
 * What the virtio unit tests share (test-virtqueue.c, test-virtio-blk.c,
 * test-virtio-pci.c): a Machine whose guest RAM is a malloc'd buffer, the
 * split rings at fixed addresses in it, filled the way a driver fills them,
 * and a memory disk behind virtio-blk's backend operations.
 */
#ifndef TESTS_UNIT_VIRTIO_FAKES_H
#define TESTS_UNIT_VIRTIO_FAKES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/machine.h"
#include "hw/virtio.h"
#include "hw/virtio/virtio-blk.h"

#define RAM_SIZE  (16u << 20)
#define DESC_GPA  0x10000
#define AVAIL_GPA 0x20000
#define USED_GPA  0x30000
#define BUF_GPA   0x100000
#define QSIZE     16

#define F_INDIRECT (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT    (1ULL << VIRTIO_RING_F_EVENT_IDX)
#define NEXT       VRING_DESC_F_NEXT
#define WRITE      VRING_DESC_F_WRITE
#define INDIRECT   VRING_DESC_F_INDIRECT

/* ---- guest memory, as a driver sees it ---- */

extern Machine m;
extern uint16_t avail_idx; /* the driver's next avail index */

void machine_setup(void);
void machine_teardown(void);
void put16(uint64_t a, uint16_t v);
void put32(uint64_t a, uint32_t v);
void put64(uint64_t a, uint64_t v);
uint16_t get16(uint64_t a);
uint32_t get32(uint64_t a);
void desc_set(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next);
/* Publish a chain as a driver does: the ring entry, then (release) the index. */
void avail_add(uint16_t head);
uint16_t used_idx(void);
uint32_t used_len(unsigned i);
/* A bare queue on the rings above, with the given ring features. */
void vq_setup(VirtQueue *vq, uint64_t features);
int pop(VirtQueue *vq, VirtQueueElement *elem, const char **why);

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

extern MemDisk disk;
extern const VirtioBlkBackend mem_disk;

#define FAKE_BS ((BlockDriverState *)&disk)

/* Where the virtio-blk tests put a request's header, data and status. */
#define HDR_GPA    (BUF_GPA + 0x0000)
#define DATA_GPA   (BUF_GPA + 0x1000)
#define STATUS_GPA (BUF_GPA + 0x8000)

/* The disk's sectors filled with a pattern; read_only as given. */
void disk_setup(bool read_only);

#endif
