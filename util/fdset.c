/*
 * The fd-set registry behind -add-fd and "/dev/fdset/N" file names.  Filled
 * while the command line is parsed and read when devices open their files,
 * both on the main thread, so it takes no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fdset.h"

#define FDSET_PREFIX "/dev/fdset/"

typedef struct FdSetEntry {
    int64_t set_id;
    int fd; /* our own close-on-exec duplicate */
    char *opaque;
} FdSetEntry;

static GArray *fdset_entries; /* of FdSetEntry, in the order added */

bool fdset_add_fd(int64_t fd, int64_t set_id, const char *opaque, GError **errp)
{
    FdSetEntry entry;
    int dup_fd;

    if (fd < 0) {
        error_setg(errp, "fd option is required and must be non-negative");
        return false;
    }
    if (fd <= STDERR_FILENO) {
        error_setg(errp, "fd cannot be a standard I/O stream");
        return false;
    }
    if (set_id < 0) {
        error_setg(errp, "set option is required and must be non-negative");
        return false;
    }
    if (fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
        error_setg(errp, "fd is not valid or already in use");
        return false;
    }
    dup_fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        error_setg(errp, "fd is not valid or already in use");
        return false;
    }
    /* The inherited number must not leak into helpers we spawn either. */
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    if (!fdset_entries) {
        fdset_entries = g_array_new(false, false, sizeof(FdSetEntry));
    }
    entry.set_id = set_id;
    entry.fd = dup_fd;
    entry.opaque = g_strdup(opaque);
    g_array_append_val(fdset_entries, entry);
    return true;
}

/* The set number of "/dev/fdset/N", or -1 when path is not such a name. */
static int64_t fdset_parse_name(const char *path)
{
    const char *digits = path + strlen(FDSET_PREFIX);
    char *end;
    long long id;

    if (!g_ascii_isdigit(*digits)) {
        return -1;
    }
    errno = 0;
    id = strtoll(digits, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    return id;
}

/* A duplicate of a descriptor of set_id opened for flags' access mode. */
static int fdset_dup_matching(int64_t set_id, int flags)
{
    bool set_found = false;

    for (guint i = 0; fdset_entries && i < fdset_entries->len; i++) {
        FdSetEntry *entry = &g_array_index(fdset_entries, FdSetEntry, i);
        int fd_flags;
        int dup_fd;

        if (entry->set_id != set_id) {
            continue;
        }
        set_found = true;
        fd_flags = fcntl(entry->fd, F_GETFL);
        if (fd_flags < 0 || (fd_flags & O_ACCMODE) != (flags & O_ACCMODE)) {
            continue;
        }
        dup_fd = fcntl(entry->fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) {
            return -1;
        }
        if ((flags & O_APPEND) && fcntl(dup_fd, F_SETFL, fd_flags | O_APPEND) < 0) {
            int saved = errno;

            close(dup_fd);
            errno = saved;
            return -1;
        }
        return dup_fd;
    }
    errno = set_found ? EACCES : ENOENT;
    return -1;
}

int fdset_open(const char *path, int flags, mode_t mode)
{
    int64_t set_id;

    if (!g_str_has_prefix(path, FDSET_PREFIX)) {
        return open(path, flags, mode);
    }
    set_id = fdset_parse_name(path);
    if (set_id < 0) {
        errno = EINVAL;
        return -1;
    }
    return fdset_dup_matching(set_id, flags);
}
