/*
 * File descriptor sets (QEMU's -add-fd): descriptors a manager such as
 * libvirt opened and passed in, grouped by a set number.  Whoever would
 * open a file calls fdset_open(), which turns a name "/dev/fdset/N" into a
 * duplicate of a descriptor of set N opened with the same access mode.
 */
#ifndef UTIL_FDSET_H
#define UTIL_FDSET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

/*
 * Add a duplicate of the inherited descriptor fd to set set_id (created
 * on first use).  opaque is the manager's free-form label (may be NULL).
 * Errors are worded as QEMU's -add-fd words them.
 */
bool fdset_add_fd(int64_t fd, int64_t set_id, const char *opaque, GError **errp);

/*
 * open(2) that also understands "/dev/fdset/N": returns a new close-on-exec
 * duplicate of a descriptor of set N whose access mode matches
 * flags & O_ACCMODE (O_APPEND is applied to it when asked).  Returns -1 with
 * errno EINVAL (bad name), ENOENT (no such set) or EACCES (no descriptor
 * with that access mode), as QEMU does.  Main thread only.
 */
int fdset_open(const char *path, int flags, mode_t mode);

#endif
