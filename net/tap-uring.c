/*
 * Batched tap writes through io_uring, by its system calls (no liburing):
 * a small ring per tap queue whose WRITEV requests, one per frame, go to
 * the kernel with one io_uring_enter for the whole batch instead of one
 * writev each.  The tap is non-blocking, so every write completes inside
 * that call (a full tap answers -EAGAIN, nothing waits in the kernel).
 * Used by one thread at a time, like its tap queue.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include "net-int.h"

struct NetUring {
    int fd;
    unsigned entries;
    uint8_t *rings; /* the SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP) */
    size_t rings_size;
    struct io_uring_sqe *sqes;
    size_t sqes_size;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
};

static int uring_setup(unsigned entries, struct io_uring_params *p)
{
    return syscall(__NR_io_uring_setup, entries, p);
}

static int uring_enter(int fd, unsigned to_submit, unsigned min_complete)
{
    return syscall(__NR_io_uring_enter, fd, to_submit, min_complete,
                   IORING_ENTER_GETEVENTS, NULL, 0);
}

void net_uring_free(NetUring *u)
{
    if (!u) {
        return;
    }
    if (u->sqes) {
        munmap(u->sqes, u->sqes_size);
    }
    if (u->rings) {
        munmap(u->rings, u->rings_size);
    }
    if (u->fd >= 0) {
        close(u->fd);
    }
    g_free(u);
}

NetUring *net_uring_new(unsigned entries)
{
    struct io_uring_params p = { .flags = IORING_SETUP_COOP_TASKRUN };
    NetUring *u = g_new0(NetUring, 1);
    void *map;

    u->fd = uring_setup(entries, &p);
    if (u->fd < 0 && errno == EINVAL) { /* a kernel before 5.19 */
        memset(&p, 0, sizeof(p));
        u->fd = uring_setup(entries, &p);
    }
    if (u->fd < 0 || !(p.features & IORING_FEAT_SINGLE_MMAP)) {
        goto fail; /* no io_uring (or disabled): the caller writes frame by frame */
    }
    u->entries = p.sq_entries;
    u->rings_size = MAX(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                        p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe));
    map = mmap(NULL, u->rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
               u->fd, IORING_OFF_SQ_RING);
    if (map == MAP_FAILED) {
        goto fail;
    }
    u->rings = map;
    u->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    map = mmap(NULL, u->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
               u->fd, IORING_OFF_SQES);
    if (map == MAP_FAILED) {
        goto fail;
    }
    u->sqes = map;
    u->sq_head = (unsigned *)(u->rings + p.sq_off.head);
    u->sq_tail = (unsigned *)(u->rings + p.sq_off.tail);
    u->sq_mask = (unsigned *)(u->rings + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(u->rings + p.sq_off.array);
    u->cq_head = (unsigned *)(u->rings + p.cq_off.head);
    u->cq_tail = (unsigned *)(u->rings + p.cq_off.tail);
    u->cq_mask = (unsigned *)(u->rings + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(u->rings + p.cq_off.cqes);
    return u;
fail:
    net_uring_free(u);
    return NULL;
}

unsigned net_uring_entries(NetUring *u)
{
    return u->entries;
}

/* Take the completions there are into results; how many. */
static unsigned uring_reap(NetUring *u, ssize_t *results, unsigned n)
{
    unsigned head = *u->cq_head;
    unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
    unsigned got = 0;

    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &u->cqes[head & *u->cq_mask];
        if (cqe->user_data < n) {
            results[cqe->user_data] = cqe->res;
            got++;
        }
    }
    __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
    return got;
}

bool net_uring_writev(NetUring *u, int fd, const NetTapFrame *frames, unsigned n,
                      ssize_t *results)
{
    unsigned tail = *u->sq_tail, done = 0, idle = 0;

    g_assert(n <= u->entries);
    for (unsigned i = 0; i < n; i++) {
        unsigned slot = (tail + i) & *u->sq_mask;
        struct io_uring_sqe *sqe = &u->sqes[slot];

        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_WRITEV;
        sqe->fd = fd;
        sqe->addr = (uintptr_t)frames[i].iov;
        sqe->len = frames[i].iovcnt;
        sqe->user_data = i;
        u->sq_array[slot] = slot;
        results[i] = -EIO;
    }
    __atomic_store_n(u->sq_tail, tail + n, __ATOMIC_RELEASE);
    while (done < n) {
        unsigned unsubmitted = tail + n - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        unsigned got;
        bool failed = uring_enter(u->fd, unsubmitted, n - done) < 0 && errno != EINTR &&
                      errno != EAGAIN && errno != EBUSY;

        got = uring_reap(u, results, n);
        done += got;
        idle = got ? 0 : idle + 1;
        if (failed || idle > 1000) {
            return false; /* the ring is broken: the rest stay -EIO */
        }
    }
    return true;
}
