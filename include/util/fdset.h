/*
 * File descriptor sets (QEMU's -add-fd and QMP add-fd): descriptors a
 * manager such as libvirt opened and passed in, grouped by a set number.
 * Whoever would open a file calls fdset_open() (or fdset_open_image()),
 * which turns a name "/dev/fdset/N" into a duplicate of a descriptor of
 * set N opened with the same access mode, and closes it with fdset_close().
 * Thread-safe.
 */
#ifndef UTIL_FDSET_H
#define UTIL_FDSET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

/*
 * What QEMU's rules for closing a set's members depend on, asked by the
 * registry (with its lock held; neither may call into fdset_*): is the VM
 * running, and is any monitor connected.  Without hooks, nothing is closed
 * before exit.
 */
typedef struct FdSetHooks {
    bool (*vm_running)(void *opaque);
    bool (*monitors_open)(void *opaque);
} FdSetHooks;

void fdset_set_hooks(const FdSetHooks *hooks, void *opaque);

/*
 * -add-fd: add a duplicate of the inherited descriptor fd to set set_id
 * (created on first use).  opaque is the manager's free-form label (may
 * be NULL).  Errors are worded as QEMU's -add-fd words them.
 */
bool fdset_add_fd(int64_t fd, int64_t set_id, const char *opaque, GError **errp);
/* Close the inherited numbers -add-fd named, once all are parsed (QEMU's). */
void fdset_close_inherited(void);

typedef struct FdSetAdded {
    int64_t set_id;
    int fd;
} FdSetAdded;

/*
 * QMP add-fd: fd (received over the monitor, now the registry's) joins set
 * set_id, or without one the lowest free id.  A negative id that names no
 * set is refused (the caller then still owns fd).
 */
bool fdset_add_passed(int fd, bool has_set_id, int64_t set_id, const char *opaque,
                      FdSetAdded *added, GError **errp);
/*
 * QMP remove-fd: mark one member (has_fd) or all of a set removed; they are
 * closed at once while the VM runs, else later.  QEMU's error otherwise.
 */
bool fdset_remove(int64_t set_id, bool has_fd, int64_t fd, GError **errp);
/* A monitor went away: apply the closing rules to every set. */
void fdset_cleanup_all(void);

typedef struct FdSetFdInfo {
    int fd;
    char *opaque; /* or NULL */
} FdSetFdInfo;

typedef struct FdSetInfo {
    int64_t set_id;
    GArray *fds; /* of FdSetFdInfo */
} FdSetInfo;

/* query-fdsets: FdSetInfo records in QEMU's order (free with g_array_unref). */
GArray *fdset_query(void);
void fdset_info_clear(gpointer info);

/* Is path of the form "/dev/fdset/..."? */
bool fdset_is_name(const char *path);
/*
 * open(2) that also understands "/dev/fdset/N": returns a new close-on-exec
 * duplicate of the newest descriptor of set N whose access mode matches
 * flags & O_ACCMODE, with flags' status flags (O_APPEND, O_DIRECT,
 * O_NONBLOCK...) and truncated where open would truncate, as QEMU's
 * qemu_dup_flags.  Returns -1 with errno EINVAL (bad name), ENOENT (no
 * such set) or EACCES (no descriptor with that access mode), as QEMU does.
 */
int fdset_open(const char *path, int flags, mode_t mode);
/*
 * fdset_open for a disk image, with QEMU's error texts: "Could not open
 * 'F': why" for a file, "Could not dup FD for /dev/fdset/N flags F: why"
 * and "Could not parse fdset F" for a set.
 */
int fdset_open_image(const char *path, int flags, GError **errp);
/*
 * close(2) for whatever fdset_open returned: a set's duplicate leaves the
 * set's users, and the set's closing rules run once it had the last one.
 */
void fdset_close(int fd);

#endif
