/*
 * The virtio unit tests' fake guest and memory disk (virtio-fakes.h).
 */
#include <errno.h>
#include <string.h>

#include "block/block.h"
#include "hw/i386/pc.h"
#include "hw/pci.h"
#include "unit.h"
#include "virtio-fakes.h"

/*
 * virtio-blk's default backend refers to the block layer; these tests use
 * a memory disk instead, so weak stand-ins keep them linkable on their own.
 */
__attribute__((weak)) uint64_t bdrv_getlength(BlockDriverState *bs)
{
    return 0;
}
__attribute__((weak)) bool bdrv_is_read_only(BlockDriverState *bs)
{
    return true;
}
__attribute__((weak)) int bdrv_preadv(BlockDriverState *bs, uint64_t o,
                                      const struct iovec *v, int n)
{
    return -EIO;
}
__attribute__((weak)) int bdrv_pwritev(BlockDriverState *bs, uint64_t o,
                                       const struct iovec *v, int n)
{
    return -EIO;
}
__attribute__((weak)) int bdrv_flush(BlockDriverState *bs)
{
    return -EIO;
}
__attribute__((weak)) int bdrv_discard(BlockDriverState *bs, uint64_t o, uint64_t l)
{
    return -EIO;
}
__attribute__((weak)) int bdrv_write_zeroes(BlockDriverState *bs, uint64_t o, uint64_t l,
                                            bool u)
{
    return -EIO;
}

Machine m;
uint16_t avail_idx;

void machine_setup(void)
{
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    bus_init(&m.io_bus, "io");
    bus_init(&m.mmio_bus, "mmio");
    device_state_list_init(&m.device_states);
    CHECK(machine_plan_memory(&m, RAM_SIZE, NULL));
    m.ram = g_malloc0(RAM_SIZE);
}

void machine_teardown(void)
{
    pci_pc_cleanup(&m);
    bus_destroy(&m.io_bus);
    bus_destroy(&m.mmio_bus);
    device_state_list_destroy(&m.device_states);
    g_free(m.ram);
    m.ram = NULL;
}

void put16(uint64_t a, uint16_t v)
{
    memcpy(m.ram + a, &v, 2);
}

void put32(uint64_t a, uint32_t v)
{
    memcpy(m.ram + a, &v, 4);
}

void put64(uint64_t a, uint64_t v)
{
    memcpy(m.ram + a, &v, 8);
}

uint16_t get16(uint64_t a)
{
    uint16_t v;

    memcpy(&v, m.ram + a, 2);
    return v;
}

uint32_t get32(uint64_t a)
{
    uint32_t v;

    memcpy(&v, m.ram + a, 4);
    return v;
}

void desc_set(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next)
{
    put64(table + 16 * i, addr);
    put32(table + 16 * i + 8, len);
    put16(table + 16 * i + 12, flags);
    put16(table + 16 * i + 14, next);
}

void avail_add(uint16_t head)
{
    put16(AVAIL_GPA + 4 + 2 * (avail_idx % QSIZE), head);
    avail_idx++;
    __atomic_store_n((uint16_t *)(m.ram + AVAIL_GPA + 2), avail_idx, __ATOMIC_RELEASE);
}

uint16_t used_idx(void)
{
    return __atomic_load_n((uint16_t *)(m.ram + USED_GPA + 2), __ATOMIC_ACQUIRE);
}

uint32_t used_len(unsigned i)
{
    return get32(USED_GPA + 4 + 8 * (i % QSIZE) + 4);
}

void vq_setup(VirtQueue *vq, uint64_t features)
{
    const char *why = NULL;

    avail_idx = 0;
    virtqueue_init(vq, &m.mem, NULL, 0, 256);
    vq->size = QSIZE;
    vq->desc_gpa = DESC_GPA;
    vq->avail_gpa = AVAIL_GPA;
    vq->used_gpa = USED_GPA;
    CHECK(virtqueue_map_rings(vq, features, &why));
}

int pop(VirtQueue *vq, VirtQueueElement *elem, const char **why)
{
    *why = NULL;
    return virtqueue_pop(vq, elem, why);
}

MemDisk disk;

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

const VirtioBlkBackend mem_disk = {
    md_getlength, md_read_only, md_preadv,       md_pwritev,
    md_flush,     md_discard,   md_write_zeroes,
};

void disk_setup(bool read_only)
{
    memset(&disk, 0, sizeof(disk));
    pthread_mutex_init(&disk.lock, NULL);
    for (size_t i = 0; i < sizeof(disk.data); i++) {
        disk.data[i] = i * 7 + i / 512;
    }
    disk.read_only = read_only;
}
