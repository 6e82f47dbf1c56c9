/*
 * The fd-set registry behind -add-fd, QMP's add-fd/remove-fd/query-fdsets
 * and "/dev/fdset/N" file names, with QEMU 7.2's rules for when a member is
 * closed (see fdset_cleanup).  One mutex guards the registry; the hooks are
 * called with it held and must not call back in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fdset.h"

#define FDSET_PREFIX "/dev/fdset/"

/* File status flags F_SETFL can change on a duplicate (Linux). */
#define FDSET_SETFL_FLAGS (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

typedef struct FdSetMember {
    int fd;
    bool removed; /* remove-fd asked; closed once the rules allow */
    char *opaque;
} FdSetMember;

typedef struct FdSet {
    int64_t id;
    GArray *members; /* of FdSetMember, oldest first */
    GArray *dups;    /* of int: duplicates handed out and not yet closed */
} FdSet;

static GMutex fdset_lock;
static GPtrArray *fdsets;       /* of FdSet, by ascending id */
static GArray *inherited_fds;   /* of int: -add-fd's numbers, closed later */
static const FdSetHooks *hooks; /* what the cleanup rules ask about */
static void *hooks_opaque;

void fdset_set_hooks(const FdSetHooks *h, void *opaque)
{
    g_mutex_lock(&fdset_lock);
    hooks = h;
    hooks_opaque = opaque;
    g_mutex_unlock(&fdset_lock);
}

static FdSet *fdset_find(int64_t id)
{
    for (guint i = 0; fdsets && i < fdsets->len; i++) {
        FdSet *set = g_ptr_array_index(fdsets, i);
        if (set->id == id) {
            return set;
        }
    }
    return NULL;
}

static void fdset_free(gpointer p)
{
    FdSet *set = p;

    g_array_free(set->members, TRUE);
    g_array_free(set->dups, TRUE);
    g_free(set);
}

/* The set id (created, in id order, when new). */
static FdSet *fdset_get(int64_t id)
{
    FdSet *set = fdset_find(id);
    guint pos = 0;

    if (set) {
        return set;
    }
    if (!fdsets) {
        fdsets = g_ptr_array_new_with_free_func(fdset_free);
    }
    while (pos < fdsets->len && ((FdSet *)g_ptr_array_index(fdsets, pos))->id < id) {
        pos++;
    }
    set = g_new0(FdSet, 1);
    set->id = id;
    set->members = g_array_new(FALSE, FALSE, sizeof(FdSetMember));
    set->dups = g_array_new(FALSE, FALSE, sizeof(int));
    g_ptr_array_insert(fdsets, pos, set);
    return set;
}

/* The lowest id no set has (QEMU's choice when add-fd names none). */
static int64_t fdset_free_id(void)
{
    int64_t id = 0;

    for (guint i = 0; fdsets && i < fdsets->len; i++) {
        if (((FdSet *)g_ptr_array_index(fdsets, i))->id != id) {
            break;
        }
        id++;
    }
    return id;
}

static void fdset_member_add(FdSet *set, int fd, const char *opaque)
{
    FdSetMember member = { .fd = fd, .removed = false, .opaque = g_strdup(opaque) };

    g_array_append_val(set->members, member);
}

/*
 * QEMU's rule: while the VM runs, a member is closed when remove-fd asked
 * for it, or when no duplicate of the set is open and no monitor is
 * connected; a set with no member and no duplicate goes.  While the VM is
 * paused (or not started) nothing is closed.
 */
static void fdset_cleanup(FdSet *set)
{
    bool running = hooks && hooks->vm_running(hooks_opaque);
    bool unused = set->dups->len == 0 && (!hooks || !hooks->monitors_open(hooks_opaque));

    for (guint i = set->members->len; running && i-- > 0;) {
        FdSetMember *member = &g_array_index(set->members, FdSetMember, i);

        if (member->removed || unused) {
            close(member->fd);
            g_free(member->opaque);
            g_array_remove_index(set->members, i);
        }
    }
    if (set->members->len == 0 && set->dups->len == 0) {
        g_ptr_array_remove(fdsets, set);
    }
}

void fdset_cleanup_all(void)
{
    g_mutex_lock(&fdset_lock);
    for (guint i = fdsets ? fdsets->len : 0; i-- > 0;) {
        fdset_cleanup(g_ptr_array_index(fdsets, i));
    }
    g_mutex_unlock(&fdset_lock);
}

bool fdset_add_fd(int64_t fd, int64_t set_id, const char *opaque, GError **errp)
{
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
        error_setg(errp, "error duplicating fd: %s", g_strerror(errno));
        return false;
    }
    /* The inherited number must not leak into helpers we spawn either. */
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    g_mutex_lock(&fdset_lock);
    fdset_member_add(fdset_get(set_id), dup_fd, opaque);
    if (!inherited_fds) {
        inherited_fds = g_array_new(FALSE, FALSE, sizeof(int));
    }
    g_array_append_val(inherited_fds, (int){ (int)fd });
    g_mutex_unlock(&fdset_lock);
    return true;
}

void fdset_close_inherited(void)
{
    g_mutex_lock(&fdset_lock);
    for (guint i = 0; inherited_fds && i < inherited_fds->len; i++) {
        close(g_array_index(inherited_fds, int, i)); /* twice-named: EBADF */
    }
    g_clear_pointer(&inherited_fds, g_array_unref);
    g_mutex_unlock(&fdset_lock);
}

bool fdset_add_passed(int fd, bool has_set_id, int64_t set_id, const char *opaque,
                      FdSetAdded *added, GError **errp)
{
    FdSet *set;

    g_mutex_lock(&fdset_lock);
    if (has_set_id && !fdset_find(set_id) && set_id < 0) {
        g_mutex_unlock(&fdset_lock);
        error_setg(errp, "Parameter 'fdset-id' expects a non-negative value");
        return false;
    }
    set = fdset_get(has_set_id ? set_id : fdset_free_id());
    fdset_member_add(set, fd, opaque);
    added->set_id = set->id;
    added->fd = fd;
    g_mutex_unlock(&fdset_lock);
    return true;
}

bool fdset_remove(int64_t set_id, bool has_fd, int64_t fd, GError **errp)
{
    FdSet *set;
    bool found = false;

    g_mutex_lock(&fdset_lock);
    set = fdset_find(set_id);
    for (guint i = 0; set && i < set->members->len; i++) {
        FdSetMember *member = &g_array_index(set->members, FdSetMember, i);

        if (!has_fd || member->fd == fd) {
            member->removed = true;
            found = true;
        }
    }
    if (set && (found || !has_fd)) {
        fdset_cleanup(set);
        g_mutex_unlock(&fdset_lock);
        return true;
    }
    g_mutex_unlock(&fdset_lock);
    if (has_fd) {
        error_setg(errp,
                   "File descriptor named 'fdset-id:%" G_GINT64_FORMAT
                   ", fd:%" G_GINT64_FORMAT "' not found",
                   set_id, fd);
    } else {
        error_setg(errp,
                   "File descriptor named 'fdset-id:%" G_GINT64_FORMAT "' not found",
                   set_id);
    }
    return false;
}

GArray *fdset_query(void)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(FdSetInfo));

    g_array_set_clear_func(list, fdset_info_clear);
    g_mutex_lock(&fdset_lock);
    /* the highest id first, each set's members oldest first: QEMU's order */
    for (guint i = fdsets ? fdsets->len : 0; i-- > 0;) {
        FdSet *set = g_ptr_array_index(fdsets, i);
        FdSetInfo info = { .set_id = set->id,
                           .fds = g_array_new(FALSE, FALSE, sizeof(FdSetFdInfo)) };

        for (guint k = 0; k < set->members->len; k++) {
            FdSetMember *member = &g_array_index(set->members, FdSetMember, k);
            FdSetFdInfo fd_info = { member->fd, g_strdup(member->opaque) };
            g_array_append_val(info.fds, fd_info);
        }
        g_array_append_val(list, info);
    }
    g_mutex_unlock(&fdset_lock);
    return list;
}

void fdset_info_clear(gpointer p)
{
    FdSetInfo *info = p;

    for (guint k = 0; info->fds && k < info->fds->len; k++) {
        g_free(g_array_index(info->fds, FdSetFdInfo, k).opaque);
    }
    g_clear_pointer(&info->fds, g_array_unref);
}

/* The set number of "/dev/fdset/N", or -1 when the rest is not a number. */
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

/*
 * A duplicate of the newest member of set_id opened with flags' access
 * mode, given flags' status flags as QEMU's qemu_dup_flags does (and
 * truncated where open(2) would truncate).  Lock held.
 */
static int fdset_dup_matching(int64_t set_id, int flags)
{
    FdSet *set = fdset_find(set_id);
    int fd = -1, dup_fd, fd_flags, saved;

    if (!set) {
        errno = ENOENT;
        return -1;
    }
    for (guint i = set->members->len; i-- > 0;) {
        int member_fd = g_array_index(set->members, FdSetMember, i).fd;

        fd_flags = fcntl(member_fd, F_GETFL);
        if (fd_flags < 0) {
            return -1;
        }
        if ((fd_flags & O_ACCMODE) == (flags & O_ACCMODE)) {
            fd = member_fd;
            break;
        }
    }
    if (fd < 0) {
        errno = EACCES;
        return -1;
    }
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        return -1;
    }
    fd_flags = fcntl(dup_fd, F_GETFL);
    if ((fd_flags & O_SYNC) != (flags & O_SYNC)) {
        errno = EINVAL;
        goto fail;
    }
    if (fcntl(dup_fd, F_SETFL,
              (fd_flags & ~FDSET_SETFL_FLAGS) | (flags & FDSET_SETFL_FLAGS)) < 0) {
        goto fail;
    }
    if ((flags & O_TRUNC) || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
        if (ftruncate(dup_fd, 0) < 0) {
            goto fail;
        }
    }
    g_array_append_val(set->dups, dup_fd);
    return dup_fd;

fail:
    saved = errno;
    close(dup_fd);
    errno = saved;
    return -1;
}

bool fdset_is_name(const char *path)
{
    return g_str_has_prefix(path, FDSET_PREFIX);
}

int fdset_open(const char *path, int flags, mode_t mode)
{
    int64_t set_id;
    int fd;

    if (!fdset_is_name(path)) {
        return open(path, flags, mode);
    }
    set_id = fdset_parse_name(path);
    if (set_id < 0) {
        errno = EINVAL;
        return -1;
    }
    g_mutex_lock(&fdset_lock);
    fd = fdset_dup_matching(set_id, flags);
    g_mutex_unlock(&fdset_lock);
    return fd;
}

int fdset_open_image(const char *path, int flags, GError **errp)
{
    int fd;

    if (!fdset_is_name(path)) {
        fd = open(path, flags);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", path);
        }
        return fd;
    }
    if (fdset_parse_name(path) < 0) {
        error_setg(errp, "Could not parse fdset %s", path);
        return -1;
    }
    fd = fdset_open(path, flags, 0);
    if (fd < 0) {
        /* QEMU prints the flags it asked for, not the ones it adds itself */
        error_setg_errno(errp, errno, "Could not dup FD for %s flags %x", path,
                         flags & ~(O_CLOEXEC | O_NONBLOCK));
    }
    return fd;
}

void fdset_close(int fd)
{
    g_mutex_lock(&fdset_lock);
    for (guint i = 0; fdsets && i < fdsets->len; i++) {
        FdSet *set = g_ptr_array_index(fdsets, i);

        for (guint k = 0; k < set->dups->len; k++) {
            if (g_array_index(set->dups, int, k) == fd) {
                g_array_remove_index(set->dups, k);
                if (set->dups->len == 0) {
                    fdset_cleanup(set);
                }
                goto out;
            }
        }
    }
out:
    g_mutex_unlock(&fdset_lock);
    close(fd);
}
