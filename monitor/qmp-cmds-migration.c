/*
 * QMP commands of live migration (qapi/migration.json): start, cancel and
 * query an outgoing migration, its parameters and capabilities, and start
 * an incoming one; JSON in and out around migration/'s typed calls.  Main
 * thread only.
 */
#include <string.h>
#include <unistd.h>

#include "hw/machine.h"
#include "migration/migration.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"

/*
 * "fd:NAME": the descriptor getfd named leaves the monitor's table (as
 * QEMU's monitor_fd_param) and the URI the migration gets is "fd:N".
 * Other URIs are returned as they are.  *taken: a descriptor to close
 * when the migration does not start.
 */
static char *resolve_fd_uri(QmpContext *ctx, const char *uri, int *taken, GError **errp)
{
    int fd;

    *taken = -1;
    if (!g_str_has_prefix(uri, "fd:")) {
        return g_strdup(uri);
    }
    fd = monitor_fd_param(ctx->mon, uri + 3, errp);
    if (fd < 0) {
        return NULL;
    }
    if (!g_ascii_isdigit(uri[3])) {
        *taken = fd;
    }
    return g_strdup_printf("fd:%d", fd);
}

json_t *qmp_migrate(QmpContext *ctx, json_t *args, GError **errp)
{
    MigrationState *ms = ctx->machine->migration;
    const char *uri = json_string_value(json_object_get(args, "uri"));
    char *resolved;
    int taken;
    bool ok;

    if (json_is_true(json_object_get(args, "blk")) ||
        json_is_true(json_object_get(args, "inc"))) {
        error_setg(errp, "block migration is not supported: disks must be on "
                         "shared storage");
        return NULL;
    }
    if (json_is_true(json_object_get(args, "resume"))) {
        error_setg(errp, "postcopy resume is not supported");
        return NULL;
    }
    resolved = resolve_fd_uri(ctx, uri, &taken, NULL);
    /* an unknown name: migrate_start fails on it with QEMU's text and status */
    ok = migration_start(ms, resolved ? resolved : uri, errp);
    if (!ok && taken >= 0) {
        close(taken);
    }
    g_free(resolved);
    return ok ? json_object() : NULL;
}

json_t *qmp_migrate_continue(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *state = json_string_value(json_object_get(args, "state"));

    return migration_continue(ctx->machine->migration, state, errp) ? json_object()
                                                                    : NULL;
}

json_t *qmp_migrate_cancel(QmpContext *ctx, json_t *args, GError **errp)
{
    migration_cancel(ctx->machine->migration);
    return json_object();
}

json_t *qmp_migrate_incoming(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *uri = json_string_value(json_object_get(args, "uri"));
    char *resolved;
    int taken;
    bool ok;

    if (!ctx->machine->cfg->incoming || strcmp(ctx->machine->cfg->incoming, "defer")) {
        error_setg(errp, "'-incoming' was not specified on the command line");
        return NULL;
    }
    resolved = resolve_fd_uri(ctx, uri, &taken, errp);
    if (!resolved) {
        return NULL;
    }
    ok = migration_incoming(ctx->machine->migration, resolved, errp);
    if (!ok && taken >= 0) {
        close(taken);
    }
    g_free(resolved);
    return ok ? json_object() : NULL;
}

static json_t *ram_json(const MigrationRamInfo *r)
{
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:I,s:f,s:I,s:i,s:i,s:i,s:I,s:I,"
        "s:i,s:i}",
        "transferred", (json_int_t)r->transferred, "remaining", (json_int_t)r->remaining,
        "total", (json_int_t)r->total, "duplicate", (json_int_t)r->duplicate, "skipped",
        0, "normal", (json_int_t)r->normal, "normal-bytes", (json_int_t)r->normal_bytes,
        "dirty-pages-rate", (json_int_t)r->dirty_pages_rate, "mbps", r->mbps,
        "dirty-sync-count", (json_int_t)r->dirty_sync_count, "postcopy-requests", 0,
        "page-size", (int)r->page_size, "multifd-bytes", 0, "pages-per-second",
        (json_int_t)r->pages_per_second, "precopy-bytes", (json_int_t)r->precopy_bytes,
        "downtime-bytes", 0, "postcopy-bytes", 0);
}

json_t *qmp_query_migrate(QmpContext *ctx, json_t *args, GError **errp)
{
    MigrationInfo mi;
    json_t *info = json_object();

    migration_query(ctx->machine->migration, &mi);
    if (mi.status == MIGRATION_STATUS_NONE) {
        return info;
    }
    json_object_set_new(info, "status", json_string(migration_status_name(mi.status)));
    if (mi.has_stats) {
        json_object_set_new(info, "total-time", json_integer(mi.total_time));
        json_object_set_new(info, "setup-time", json_integer(mi.setup_time));
        if (mi.has_wait_unplug_time) {
            /* this VMM's own: QEMU 7.2 counts it in setup-time only */
            json_object_set_new(info, "wait-unplug-time",
                                json_integer(mi.wait_unplug_time));
        }
        if (mi.has_downtime) {
            json_object_set_new(info, "downtime", json_integer(mi.downtime));
        } else if (mi.has_expected_downtime) {
            json_object_set_new(info, "expected-downtime",
                                json_integer(mi.expected_downtime));
        }
        json_object_set_new(info, "ram", ram_json(&mi.ram));
    }
    if (mi.error_desc) {
        json_object_set_new(info, "error-desc", json_string(mi.error_desc));
    }
    migration_info_clear(&mi);
    return info;
}

json_t *qmp_migrate_set_parameters(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *bw = json_object_get(args, "max-bandwidth");
    json_t *dl = json_object_get(args, "downtime-limit");
    MigrationParameters p = {
        .has_max_bandwidth = bw != NULL,
        .max_bandwidth = json_integer_value(bw),
        .has_downtime_limit = dl != NULL,
        .downtime_limit = json_integer_value(dl),
    };

    return migration_set_parameters(ctx->machine->migration, &p, errp) ? json_object()
                                                                       : NULL;
}

json_t *qmp_query_migrate_parameters(QmpContext *ctx, json_t *args, GError **errp)
{
    MigrationParameters p;

    migration_query_parameters(ctx->machine->migration, &p);
    return json_pack("{s:I,s:I}", "max-bandwidth", (json_int_t)p.max_bandwidth,
                     "downtime-limit", (json_int_t)p.downtime_limit);
}

/*
 * The errors come in the order of the elements: an element of the wrong
 * shape is reported only when the ones before it would be taken.
 */
json_t *qmp_migrate_set_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    MigrationState *ms = ctx->machine->migration;
    json_t *list = json_object_get(args, "capabilities");
    size_t n = json_array_size(list), i;
    MigrationCapabilityInfo *caps = g_new0(MigrationCapabilityInfo, n + 1);
    bool ok;

    for (i = 0; i < n; i++) {
        json_t *c = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(c, "capability"));
        json_t *state = json_object_get(c, "state");
        if (!json_is_object(c) || !name || !json_is_boolean(state)) {
            break;
        }
        caps[i] = (MigrationCapabilityInfo){ .name = name, .state = json_is_true(state) };
    }
    if (i < n) {
        ok = migration_check_capabilities(ms, caps, i, errp);
        if (ok) {
            error_setg(errp, "Invalid parameter type for 'capabilities[%zu]'", i);
            ok = false;
        }
    } else {
        ok = migration_set_capabilities(ms, caps, n, errp);
    }
    g_free(caps);
    return ok ? json_object() : NULL;
}

json_t *qmp_query_migrate_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *caps = migration_query_capabilities(ctx->machine->migration);
    json_t *list = json_array();

    for (guint i = 0; i < caps->len; i++) {
        const MigrationCapabilityInfo *c = &g_array_index(caps, MigrationCapabilityInfo,
                                                          i);
        /* only what can be switched on: a management tool (libvirt) takes
         * a listed capability as one it may enable; HMP shows them all */
        if (!c->supported) {
            continue;
        }
        json_array_append_new(
            list, json_pack("{s:s,s:b}", "capability", c->name, "state", c->state));
    }
    g_array_unref(caps);
    return list;
}
