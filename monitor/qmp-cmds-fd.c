/*
 * Descriptors passed to the monitor (qapi/fd.json): getfd names the
 * descriptor that came with the command over the QMP unix socket
 * (SCM_RIGHTS), closefd closes a named one, and a command that takes a
 * descriptor by name (migrate "fd:NAME") takes it out of the table, as
 * QEMU's monitor does.  Each monitor has its own table.  Main thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "chardev/chardev.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"

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
