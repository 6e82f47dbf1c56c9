/*
 * QMP commands of live migration (qapi/migration.json): start, cancel and
 * query an outgoing migration, its parameters and capabilities, and start
 * an incoming one.  Main thread only.
 */
#include <string.h>

#include "qapi-commands.h"
#include "hw/machine.h"
#include "migration-int.h"
#include "util/error.h"

/* QEMU 7.2's capabilities; only these two change anything here. */
static const char *const capability_names[] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events",
    "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot",
    "zero-copy-send", "postcopy-preempt", NULL,
};

json_t *qmp_migrate(QmpContext *ctx, json_t *args, GError **errp)
{
    MigrationState *ms = ctx->machine->migration;
    const char *uri = json_string_value(json_object_get(args, "uri"));

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
    return migration_start(ms, uri, errp) ? json_object() : NULL;
}

json_t *qmp_migrate_cancel(QmpContext *ctx, json_t *args, GError **errp)
{
    migration_cancel(ctx->machine->migration);
    return json_object();
}

json_t *qmp_migrate_incoming(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *uri = json_string_value(json_object_get(args, "uri"));

    if (!ctx->machine->cfg->incoming || strcmp(ctx->machine->cfg->incoming, "defer")) {
        error_setg(errp, "'-incoming' was not specified on the command line");
        return NULL;
    }
    return migration_incoming(ctx->machine->migration, uri, errp) ? json_object() : NULL;
}

json_t *migration_query(MigrationState *ms)
{
    json_t *info = json_object();
    MigrationStatus status;
    int64_t now = g_get_monotonic_time() / 1000;

    pthread_mutex_lock(&ms->lock);
    status = ms->status;
    if (status == MIGRATION_STATUS_NONE) {
        pthread_mutex_unlock(&ms->lock);
        return info;
    }
    json_object_set_new(info, "status", json_string(migration_status_name(status)));
    if (ms->start_ms) {
        bool done = status == MIGRATION_STATUS_COMPLETED ||
                    status == MIGRATION_STATUS_FAILED ||
                    status == MIGRATION_STATUS_CANCELLED;
        json_object_set_new(info, "total-time",
                            json_integer(done ? ms->total_ms : now - ms->start_ms));
        json_object_set_new(info, "setup-time", json_integer(ms->setup_ms));
        if (status == MIGRATION_STATUS_COMPLETED) {
            json_object_set_new(info, "downtime", json_integer(ms->downtime_ms));
        } else if (!done) {
            json_object_set_new(info, "expected-downtime",
                                json_integer(ms->expected_downtime_ms));
        }
        json_object_set_new(
            info, "ram",
            json_pack("{s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:I,s:f,s:I,s:i,s:i,s:i,s:I,s:I,"
                      "s:i,s:i}",
                      "transferred", (json_int_t)ms->transferred, "remaining",
                      (json_int_t)ms->remaining, "total", (json_int_t)ms->total_ram,
                      "duplicate", (json_int_t)ms->duplicate, "skipped", 0, "normal",
                      (json_int_t)ms->normal, "normal-bytes",
                      (json_int_t)(ms->normal * MIG_PAGE_SIZE), "dirty-pages-rate",
                      (json_int_t)ms->dirty_pages_rate, "mbps", ms->mbps,
                      "dirty-sync-count", (json_int_t)ms->dirty_sync_count,
                      "postcopy-requests", 0, "page-size", (int)MIG_PAGE_SIZE,
                      "multifd-bytes", 0, "pages-per-second",
                      (json_int_t)ms->pages_per_second, "precopy-bytes",
                      (json_int_t)ms->transferred, "downtime-bytes", 0,
                      "postcopy-bytes", 0));
    }
    if (status == MIGRATION_STATUS_FAILED && ms->error_desc) {
        json_object_set_new(info, "error-desc", json_string(ms->error_desc));
    }
    pthread_mutex_unlock(&ms->lock);
    return info;
}

json_t *qmp_query_migrate(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_query(ctx->machine->migration);
}

bool migration_set_parameters(MigrationState *ms, json_t *args, GError **errp)
{
    json_t *bw = json_object_get(args, "max-bandwidth");
    json_t *dl = json_object_get(args, "downtime-limit");

    if (bw && json_integer_value(bw) < 0) {
        error_setg(errp, "Parameter 'max-bandwidth' expects an integer in the range "
                   "of 0 to %" G_GINT64_FORMAT " bytes/second", (gint64)INT64_MAX);
        return false;
    }
    if (dl && (json_integer_value(dl) < 0 || json_integer_value(dl) > 2000000)) {
        error_setg(errp, "Parameter 'downtime_limit' expects an integer in the range "
                   "of 0 to 2000000 milliseconds");
        return false;
    }
    if (bw) {
        ms->max_bandwidth = json_integer_value(bw);
    }
    if (dl) {
        ms->downtime_limit_ms = json_integer_value(dl);
    }
    return true;
}

json_t *qmp_migrate_set_parameters(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_set_parameters(ctx->machine->migration, args, errp) ? json_object()
                                                                         : NULL;
}

json_t *migration_query_parameters(MigrationState *ms)
{
    return json_pack("{s:I,s:I}", "max-bandwidth", (json_int_t)ms->max_bandwidth,
                     "downtime-limit", (json_int_t)ms->downtime_limit_ms);
}

json_t *qmp_query_migrate_parameters(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_query_parameters(ctx->machine->migration);
}

static bool capability_known(const char *name)
{
    for (const char *const *c = capability_names; *c; c++) {
        if (strcmp(*c, name) == 0) {
            return true;
        }
    }
    return false;
}

bool migration_set_capabilities(MigrationState *ms, json_t *caps, GError **errp)
{
    size_t i;
    json_t *c;

    if (ms->thread_running) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    /* check all first: nothing changes on error */
    json_array_foreach(caps, i, c) {
        const char *name = json_string_value(json_object_get(c, "capability"));
        json_t *state = json_object_get(c, "state");
        if (!json_is_object(c) || !name || !json_is_boolean(state)) {
            error_setg(errp, "Invalid parameter type for 'capabilities[%zu]'", i);
            return false;
        }
        if (!capability_known(name)) {
            error_setg(errp, "Parameter 'capability' does not accept value '%s'", name);
            return false;
        }
        if (json_is_true(state) && strcmp(name, "events") && strcmp(name, "return-path")) {
            error_setg(errp, "Migration capability '%s' is not supported by this VMM",
                       name);
            return false;
        }
    }
    json_array_foreach(caps, i, c) {
        const char *name = json_string_value(json_object_get(c, "capability"));
        g_hash_table_insert(ms->caps, g_strdup(name),
                            GINT_TO_POINTER(json_is_true(json_object_get(c, "state"))));
    }
    ms->cap_events = GPOINTER_TO_INT(g_hash_table_lookup(ms->caps, "events"));
    return true;
}

json_t *qmp_migrate_set_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_set_capabilities(ctx->machine->migration,
                                      json_object_get(args, "capabilities"), errp)
               ? json_object()
               : NULL;
}

bool migration_events_enabled(MigrationState *ms)
{
    return ms->cap_events;
}

json_t *migration_query_capabilities(MigrationState *ms)
{
    json_t *list = json_array();

    for (const char *const *c = capability_names; *c; c++) {
        json_array_append_new(list, json_pack("{s:s,s:b}", "capability", *c, "state",
                                              GPOINTER_TO_INT(g_hash_table_lookup(
                                                  ms->caps, *c))));
    }
    return list;
}

json_t *qmp_query_migrate_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_query_capabilities(ctx->machine->migration);
}
