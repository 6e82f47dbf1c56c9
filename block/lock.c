/*
 * Image locking compatible with QEMU's, so that this VMM and Debian's QEMU
 * exclude each other: one-byte OFD read locks at 100 + n ("I hold
 * permission n") and 200 + n ("nobody else may take permission n"), where
 * n is 0 consistent read, 1 write, 2 write unchanged, 3 resize.  A writer
 * is refused when another holds byte 201 or 101.  Main thread only.
 */
#include <fcntl.h>
#include <string.h>

#include "block-int.h"
#include "util/error.h"

#define LOCK_PERM_BASE       100
#define LOCK_SHARED_BASE     200
#define PERM_CONSISTENT_READ (1u << 0)
#define PERM_WRITE           (1u << 1)
#define PERM_RESIZE          (1u << 3)
#define PERM_BITS            4

static const char *const perm_names[PERM_BITS] = {
    "consistent read",
    "write",
    "write unchanged",
    "resize",
};

static int set_lock(int fd, off_t start, off_t len, short type)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = start,
        .l_len = len,
    };

    while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* True when another open file description holds a lock on the byte. */
static bool byte_locked_by_other(int fd, off_t byte)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
    };

    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        return false;
    }
    return fl.l_type != F_UNLCK;
}

static bool locking_unsupported(int err)
{
    return err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == ENOLCK;
}

/* Hold exactly the bytes for perm and unshared; -errno on failure. */
static int apply_lock_bytes(BlockFile *file, uint64_t perm, uint64_t unshared,
                            int *failed_byte)
{
    for (int i = 0; i < PERM_BITS; i++) {
        uint64_t bit = 1ull << i;
        struct {
            uint64_t want, *held;
            off_t byte;
        } sets[2] = {
            { perm & bit, &file->locked_perm, LOCK_PERM_BASE + i },
            { unshared & bit, &file->locked_unshared, LOCK_SHARED_BASE + i },
        };

        for (int j = 0; j < 2; j++) {
            if (!sets[j].want == !(*sets[j].held & bit)) {
                continue;
            }
            int ret = set_lock(file->fd, sets[j].byte, 1,
                               sets[j].want ? F_RDLCK : F_UNLCK);
            if (ret < 0) {
                *failed_byte = sets[j].byte;
                return ret;
            }
            *sets[j].held ^= bit;
        }
    }
    return 0;
}

/* Does another process hold what we want or want what we refuse? */
static bool check_lock_bytes(BlockFile *file, uint64_t perm, uint64_t unshared,
                             GError **errp)
{
    for (int i = 0; i < PERM_BITS; i++) {
        if ((perm & (1ull << i)) &&
            byte_locked_by_other(file->fd, LOCK_SHARED_BASE + i)) {
            error_setg(errp,
                       "Failed to get \"%s\" lock: Is another process using "
                       "the image [%s]?",
                       perm_names[i], file->filename);
            return false;
        }
    }
    for (int i = 0; i < PERM_BITS; i++) {
        if ((unshared & (1ull << i)) &&
            byte_locked_by_other(file->fd, LOCK_PERM_BASE + i)) {
            error_setg(errp,
                       "Failed to get shared \"%s\" lock: Is another process "
                       "using the image [%s]?",
                       perm_names[i], file->filename);
            return false;
        }
    }
    return true;
}

bool block_lock_take(BlockFile *file, bool writable, bool resizable, GError **errp)
{
    uint64_t perm = PERM_CONSISTENT_READ;
    uint64_t unshared = PERM_WRITE | (resizable ? PERM_RESIZE : 0);
    int failed_byte = 0, ret;

    if (writable) {
        perm |= PERM_WRITE | (resizable ? PERM_RESIZE : 0);
    }
    ret = apply_lock_bytes(file, perm, unshared, &failed_byte);
    if (ret < 0 && locking_unsupported(-ret)) {
        /* No OFD locks here (an old kernel, some network file systems). */
        block_lock_release(file);
        return true;
    }
    if (ret < 0) {
        error_setg(errp,
                   "Failed to lock byte %d: Is another process using the "
                   "image [%s]?",
                   failed_byte, file->filename);
        block_lock_release(file);
        return false;
    }
    if (!check_lock_bytes(file, perm, unshared, errp)) {
        block_lock_release(file);
        return false;
    }
    return true;
}

void block_lock_release(BlockFile *file)
{
    if (file->locked_perm || file->locked_unshared) {
        set_lock(file->fd, LOCK_PERM_BASE, LOCK_SHARED_BASE + PERM_BITS - LOCK_PERM_BASE,
                 F_UNLCK);
    }
    file->locked_perm = 0;
    file->locked_unshared = 0;
}
