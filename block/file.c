/*
 * Host files behind images: open with the -drive cache flags, full reads
 * and writes (O_DIRECT bounce buffers when a request is not aligned),
 * flush, hole punching and zeroing.  Thread-safe: positional I/O only;
 * read-modify-write of partial O_DIRECT blocks is serialised by rmw_lock.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block-int.h"
#include "util/error.h"
#include "util/fdset.h"

#define ZERO_CHUNK (1024 * 1024)

void *block_file_alloc_buffer(BlockFile *file, size_t len)
{
    void *buf = NULL;
    size_t align = MAX(file ? file->align : 1, 4096);

    if (posix_memalign(&buf, align, MAX(len, 1)) != 0) {
        g_error("block: out of memory allocating %zu bytes", len);
    }
    memset(buf, 0, len);
    return buf;
}

void block_file_free_buffer(void *buf)
{
    free(buf);
}

/* The O_DIRECT request alignment: 512 when a 512-byte read works. */
static size_t probe_direct_alignment(int fd, bool is_blockdev)
{
    int sector_size = 0;
    void *buf = NULL;
    ssize_t ret;

    if (is_blockdev && ioctl(fd, BLKSSZGET, &sector_size) == 0 && sector_size >= 512) {
        return sector_size;
    }
    if (posix_memalign(&buf, 4096, 4096) != 0) {
        return 4096;
    }
    ret = pread(fd, buf, 512, 0);
    free(buf);
    return ret == 512 ? 512 : 4096;
}

BlockFile *block_file_open(const char *filename, bool read_only, bool auto_read_only,
                           BlockCacheMode cache, GError **errp)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    bool direct = cache == BLOCK_CACHE_NONE || cache == BLOCK_CACHE_DIRECTSYNC;
    struct stat st;
    BlockFile *file;
    int fd;

    /* O_NONBLOCK so that a FIFO named as an image can't hang the open. */
    /* "/dev/fdset/N": a copy of the manager's descriptor with this mode */
    if (fdset_is_name(filename) && !read_only && auto_read_only) {
        fd = fdset_open_image(
            filename, (flags & ~O_ACCMODE) | O_RDONLY | (direct ? O_DIRECT : 0), errp);
        if (fd < 0) {
            return NULL;
        }
        fdset_close(fd);
    }
    fd = fdset_open_image(filename, flags | O_NONBLOCK | (direct ? O_DIRECT : 0), errp);
    if (fd < 0) {
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", filename);
        fdset_close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        error_setg(errp, "Could not open '%s': not a regular file or block device",
                   filename);
        fdset_close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    file = g_new0(BlockFile, 1);
    file->fd = fd;
    file->filename = g_strdup(filename);
    file->read_only = read_only;
    file->direct = direct;
    file->no_flush = cache == BLOCK_CACHE_UNSAFE;
    file->is_blockdev = S_ISBLK(st.st_mode);
    file->align = direct ? probe_direct_alignment(fd, file->is_blockdev) : 1;
    file->discard_ok = 1;
    file->zero_range_ok = 1;
    pthread_mutex_init(&file->rmw_lock, NULL);
    return file;
}

void block_file_close(BlockFile *file)
{
    if (!file) {
        return;
    }
    block_lock_release(file);
    fdset_close(file->fd);
    pthread_mutex_destroy(&file->rmw_lock);
    g_free(file->filename);
    g_free(file);
}

int64_t block_file_length(BlockFile *file)
{
    struct stat st;
    uint64_t size;

    if (file->is_blockdev) {
        if (ioctl(file->fd, BLKGETSIZE64, &size) < 0) {
            return -errno;
        }
        return size;
    }
    if (fstat(file->fd, &st) < 0) {
        return -errno;
    }
    return st.st_size;
}

static bool request_aligned(BlockFile *file, uint64_t offset, const struct iovec *iov,
                            int iovcnt)
{
    if (!file->direct) {
        return true;
    }
    if (offset % file->align) {
        return false;
    }
    for (int i = 0; i < iovcnt; i++) {
        if ((uintptr_t)iov[i].iov_base % file->align || iov[i].iov_len % file->align) {
            return false;
        }
    }
    return true;
}

/*
 * preadv/pwritev until everything is transferred.  A read that hits the end
 * of the file (or, with O_DIRECT, ends short of a block) zero-fills the rest.
 */
static int rw_full(BlockFile *file, uint64_t offset, const struct iovec *iov, int iovcnt,
                   bool is_write)
{
    size_t total = iov_total(iov, iovcnt), done = 0;

    while (done < total) {
        IovSlice slice;
        ssize_t ret;

        iov_slice_init(&slice, iov, iovcnt, done, total - done);
        int cnt = MIN(slice.iovcnt, IOV_MAX);
        ret = is_write ? pwritev(file->fd, slice.iov, cnt, offset + done)
                       : preadv(file->fd, slice.iov, cnt, offset + done);
        iov_slice_destroy(&slice);
        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (ret == 0 && is_write) {
            return -EIO;
        }
        done += ret;
        if (!is_write && (ret == 0 || (file->direct && ret % file->align))) {
            iov_memset(iov, iovcnt, done, 0, total - done);
            break;
        }
    }
    return 0;
}

static int bounce_read(BlockFile *file, uint64_t offset, const struct iovec *iov,
                       int iovcnt)
{
    size_t len = iov_total(iov, iovcnt);
    uint64_t start = ROUND_DOWN(offset, file->align);
    uint64_t end = ROUND_UP(offset + len, file->align);
    uint8_t *buf = block_file_alloc_buffer(file, end - start);
    struct iovec biov = { buf, end - start };
    int ret = rw_full(file, start, &biov, 1, false);

    if (ret == 0) {
        iov_from_buf(iov, iovcnt, 0, buf + (offset - start), len);
    }
    block_file_free_buffer(buf);
    return ret;
}

/* Read-modify-write through an aligned buffer: the partial head and tail
 * blocks are read first, under rmw_lock so neighbours don't race. */
static int bounce_write(BlockFile *file, uint64_t offset, const struct iovec *iov,
                        int iovcnt)
{
    size_t len = iov_total(iov, iovcnt), align = file->align;
    uint64_t start = ROUND_DOWN(offset, align);
    uint64_t end = ROUND_UP(offset + len, align);
    bool head = start != offset, tail = end != offset + len;
    bool rmw = head || tail;
    uint8_t *buf = block_file_alloc_buffer(file, end - start);
    int ret = 0;

    if (rmw) {
        pthread_mutex_lock(&file->rmw_lock);
        if (head) {
            ret = block_file_pread(file, start, buf, align);
        }
        /* The tail block, unless it is the head block read just above. */
        if (ret == 0 && tail && !(head && end - align == start)) {
            ret = block_file_pread(file, end - align, buf + (end - align - start), align);
        }
    }
    if (ret == 0) {
        struct iovec biov = { buf, end - start };

        iov_to_buf(iov, iovcnt, 0, buf + (offset - start), len);
        ret = rw_full(file, start, &biov, 1, true);
    }
    if (rmw) {
        pthread_mutex_unlock(&file->rmw_lock);
    }
    block_file_free_buffer(buf);
    return ret;
}

int block_file_preadv(BlockFile *file, uint64_t offset, const struct iovec *iov,
                      int iovcnt)
{
    if (!request_aligned(file, offset, iov, iovcnt)) {
        return bounce_read(file, offset, iov, iovcnt);
    }
    return rw_full(file, offset, iov, iovcnt, false);
}

int block_file_pwritev(BlockFile *file, uint64_t offset, const struct iovec *iov,
                       int iovcnt)
{
    int ret;

    if (file->read_only) {
        return -EPERM;
    }
    if (!request_aligned(file, offset, iov, iovcnt)) {
        ret = bounce_write(file, offset, iov, iovcnt);
    } else {
        ret = rw_full(file, offset, iov, iovcnt, true);
    }
    if (ret == 0) {
        block_note_write_end(&file->wr_highest_offset, offset + iov_total(iov, iovcnt));
    }
    return ret;
}

int block_file_pread(BlockFile *file, uint64_t offset, void *buf, size_t len)
{
    struct iovec iov = { buf, len };

    return block_file_preadv(file, offset, &iov, 1);
}

int block_file_pwrite(BlockFile *file, uint64_t offset, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };

    return block_file_pwritev(file, offset, &iov, 1);
}

int block_file_flush(BlockFile *file)
{
    if (file->no_flush || file->read_only) {
        return 0;
    }
    while (fdatasync(file->fd) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static bool fallocate_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOTSUP || err == EINVAL || err == ENOSYS;
}

/* fallocate with a mode; -ENOTSUP (and the flag cleared) when unsupported. */
static int try_fallocate(BlockFile *file, int *supported, int mode, uint64_t offset,
                         uint64_t len)
{
    if (!g_atomic_int_get(supported)) {
        return -ENOTSUP;
    }
    while (fallocate(file->fd, mode, offset, len) < 0) {
        if (errno == EINTR) {
            continue;
        }
        if (fallocate_unsupported(errno)) {
            g_atomic_int_set(supported, 0);
            return -ENOTSUP;
        }
        return -errno;
    }
    return 0;
}

int block_file_discard(BlockFile *file, uint64_t offset, uint64_t len)
{
    if (file->read_only) {
        return -EPERM;
    }
    return try_fallocate(file, &file->discard_ok,
                         FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
}

static int write_zero_buffers(BlockFile *file, uint64_t offset, uint64_t len)
{
    uint8_t *zeroes = block_file_alloc_buffer(file, ZERO_CHUNK);
    int ret = 0;

    while (len > 0 && ret == 0) {
        size_t chunk = MIN(len, ZERO_CHUNK);

        ret = block_file_pwrite(file, offset, zeroes, chunk);
        offset += chunk;
        len -= chunk;
    }
    block_file_free_buffer(zeroes);
    return ret;
}

int block_file_write_zeroes(BlockFile *file, uint64_t offset, uint64_t len,
                            bool may_unmap)
{
    int mode = FALLOC_FL_ZERO_RANGE | (file->is_blockdev ? FALLOC_FL_KEEP_SIZE : 0);
    int ret = -ENOTSUP;

    if (file->read_only) {
        return -EPERM;
    }
    if (may_unmap) {
        int64_t size = block_file_length(file);

        /* A hole past the end would not extend the file: zero-range it. */
        if (size >= 0 && offset + len <= (uint64_t)size) {
            ret = block_file_discard(file, offset, len);
        }
    }
    if (ret == -ENOTSUP) {
        ret = try_fallocate(file, &file->zero_range_ok, mode, offset, len);
    }
    if (ret == -ENOTSUP) {
        ret = write_zero_buffers(file, offset, len);
    }
    if (ret == 0) {
        block_note_write_end(&file->wr_highest_offset, offset + len);
    }
    return ret;
}
