/*
 * Descriptors passed to the monitor (qapi/fd.json): getfd names the
 * descriptor that came with the command over the QMP unix socket
 * (SCM_RIGHTS), closefd closes a named one, and a command that takes a
 * descriptor by name (migrate "fd:NAME") takes it out of the table, as
 * QEMU's monitor does.  Each monitor has its own table.  add-fd, remove-fd
 * and query-fdsets work on the fd sets shared with -add-fd (util/fdset.c).
 * Main thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "chardev/chardev.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"
#include "util/fdset.h"

static void close_fd(gpointer value)
{
    close(GPOINTER_TO_INT(value));
}

void monitor_fds_free(Monitor *mon)
{
    g_clear_pointer(&mon->fds, g_hash_table_destroy);
}

json_t *qmp_getfd(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "fdname"));
    Monitor *mon = ctx->mon;
    int fd = mon ? chardev_take_msgfd(mon->chr) : -1;

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(name[0])) {
        close(fd);
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    if (!mon->fds) {
        mon->fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_fd);
    }
    /* a name given again names the new descriptor; the old one is closed */
    g_hash_table_insert(mon->fds, g_strdup(name), GINT_TO_POINTER(fd));
    return json_object();
}

json_t *qmp_closefd(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "fdname"));
    Monitor *mon = ctx->mon;

    if (!mon || !mon->fds || !g_hash_table_remove(mon->fds, name)) {
        error_setg(errp, "File descriptor named '%s' not found", name);
        return NULL;
    }
    return json_object();
}

int monitor_fd_param(Monitor *mon, const char *name, GError **errp)
{
    gpointer key, value;
    char *end;
    long n;

    if (g_ascii_isdigit(name[0])) {
        errno = 0;
        n = strtol(name, &end, 10);
        if (errno || *end || n < 0 || n > G_MAXINT) {
            error_setg(errp, "Invalid file descriptor number '%s'", name);
            return -1;
        }
        return (int)n;
    }
    if (!mon || !mon->fds ||
        !g_hash_table_lookup_extended(mon->fds, name, &key, &value)) {
        error_setg(errp, "File descriptor named '%s' has not been found", name);
        return -1;
    }
    g_hash_table_steal(mon->fds, name);
    g_free(key);
    return GPOINTER_TO_INT(value);
}

/* ---- fd sets ---- */

json_t *qmp_add_fd(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *set_id = json_object_get(args, "fdset-id");
    const char *opaque = json_string_value(json_object_get(args, "opaque"));
    int fd = ctx->mon ? chardev_take_msgfd(ctx->mon->chr) : -1;
    FdSetAdded added;

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (!fdset_add_passed(fd, set_id != NULL, json_integer_value(set_id), opaque, &added,
                          errp)) {
        close(fd);
        return NULL;
    }
    return json_pack("{s:i,s:I}", "fd", added.fd, "fdset-id", (json_int_t)added.set_id);
}

json_t *qmp_remove_fd(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *fd = json_object_get(args, "fd");

    if (!fdset_remove(json_integer_value(json_object_get(args, "fdset-id")), fd != NULL,
                      json_integer_value(fd), errp)) {
        return NULL;
    }
    return json_object();
}

json_t *qmp_query_fdsets(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *sets = fdset_query();
    json_t *list = json_array();

    for (guint i = 0; i < sets->len; i++) {
        const FdSetInfo *set = &g_array_index(sets, FdSetInfo, i);
        json_t *fds = json_array();

        for (guint k = 0; k < set->fds->len; k++) {
            const FdSetFdInfo *member = &g_array_index(set->fds, FdSetFdInfo, k);
            json_t *info = json_pack("{s:i}", "fd", member->fd);

            if (member->opaque) {
                json_object_set_new(info, "opaque", json_string(member->opaque));
            }
            json_array_append_new(fds, info);
        }
        json_array_append_new(list, json_pack("{s:o,s:I}", "fds", fds, "fdset-id",
                                              (json_int_t)set->set_id));
    }
    g_array_unref(sets);
    return list;
}
