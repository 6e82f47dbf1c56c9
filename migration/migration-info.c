/*
 * Live migration's state for the monitor as typed records
 * (migration/migration.h): the current or last outgoing migration, its
 * parameters and capabilities, and the checked setters.  The monitor turns
 * them into JSON and text.  Main thread only.
 */
#include <string.h>

#include "migration-int.h"
#include "util/error.h"

/* QEMU 7.2's capabilities; capability_supported() says which work here. */
static const char *const capability_names[] = {
    "xbzrle",
    "rdma-pin-all",
    "auto-converge",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
    NULL,
};

void migration_query(MigrationState *ms, MigrationInfo *info)
{
    MigrationStatus status;
    int64_t now = g_get_monotonic_time() / 1000;

    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&ms->lock);
    status = ms->status;
    info->status = status;
    if (status == MIGRATION_STATUS_NONE) {
        pthread_mutex_unlock(&ms->lock);
        return;
    }
    if (ms->start_ms) {
        bool done = status == MIGRATION_STATUS_COMPLETED ||
                    status == MIGRATION_STATUS_FAILED ||
                    status == MIGRATION_STATUS_CANCELLED;
        info->has_stats = true;
        info->total_time = done ? ms->total_ms : now - ms->start_ms;
        info->setup_time = ms->setup_ms;
        info->has_wait_unplug_time = ms->wait_unplug_ms >= 0;
        info->wait_unplug_time = ms->wait_unplug_ms;
        info->has_downtime = status == MIGRATION_STATUS_COMPLETED;
        info->downtime = ms->downtime_ms;
        info->has_expected_downtime = !done;
        info->expected_downtime = ms->expected_downtime_ms;
        info->ram = (MigrationRamInfo){
            .transferred = ms->transferred,
            .remaining = ms->remaining,
            .total = ms->total_ram,
            .duplicate = ms->duplicate,
            .normal = ms->normal,
            .normal_bytes = ms->normal * MIG_PAGE_SIZE,
            .dirty_pages_rate = ms->dirty_pages_rate,
            .mbps = ms->mbps,
            .dirty_sync_count = ms->dirty_sync_count,
            .page_size = MIG_PAGE_SIZE,
            .pages_per_second = ms->pages_per_second,
            .precopy_bytes = ms->transferred,
        };
    }
    if (status == MIGRATION_STATUS_FAILED && ms->error_desc) {
        info->error_desc = g_strdup(ms->error_desc);
    }
    pthread_mutex_unlock(&ms->lock);
}

void migration_info_clear(MigrationInfo *info)
{
    g_free(info->error_desc);
    info->error_desc = NULL;
}

bool migration_set_parameters(MigrationState *ms, const MigrationParameters *p,
                              GError **errp)
{
    if (p->has_max_bandwidth && p->max_bandwidth < 0) {
        error_setg(errp,
                   "Parameter 'max-bandwidth' expects an integer in the range "
                   "of 0 to %" G_GINT64_FORMAT " bytes/second",
                   (gint64)INT64_MAX);
        return false;
    }
    if (p->has_downtime_limit && (p->downtime_limit < 0 || p->downtime_limit > 2000000)) {
        error_setg(errp, "Parameter 'downtime_limit' expects an integer in the range "
                         "of 0 to 2000000 milliseconds");
        return false;
    }
    if (p->has_max_bandwidth) {
        ms->max_bandwidth = p->max_bandwidth;
    }
    if (p->has_downtime_limit) {
        ms->downtime_limit_ms = p->downtime_limit;
    }
    return true;
}

void migration_query_parameters(MigrationState *ms, MigrationParameters *p)
{
    *p = (MigrationParameters){
        .has_max_bandwidth = true,
        .max_bandwidth = ms->max_bandwidth,
        .has_downtime_limit = true,
        .downtime_limit = ms->downtime_limit_ms,
    };
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

/*
 * The capabilities this VMM can switch on; the others are refused.
 * return-path: the destination always answers on the same connection.
 * pause-before-switchover: the source stops in pre-switchover with the VM
 * stopped until migrate-continue.  late-block-activate: a destination
 * that does not run the guest at once takes the images only on cont.
 */
static bool capability_supported(const char *name)
{
    return strcmp(name, "events") == 0 || strcmp(name, "return-path") == 0 ||
           strcmp(name, "pause-before-switchover") == 0 ||
           strcmp(name, "late-block-activate") == 0;
}

bool migration_check_capabilities(MigrationState *ms, const MigrationCapabilityInfo *caps,
                                  size_t count, GError **errp)
{
    if (ms->thread_running) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        const char *name = caps[i].name;
        if (!capability_known(name)) {
            error_setg(errp, "Parameter 'capability' does not accept value '%s'", name);
            return false;
        }
        if (caps[i].state && !capability_supported(name)) {
            error_setg(errp, "Migration capability '%s' is not supported by this VMM",
                       name);
            return false;
        }
    }
    return true;
}

bool migration_set_capabilities(MigrationState *ms, const MigrationCapabilityInfo *caps,
                                size_t count, GError **errp)
{
    /* check all first: nothing changes on error */
    if (!migration_check_capabilities(ms, caps, count, errp)) {
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        g_hash_table_insert(ms->caps, g_strdup(caps[i].name),
                            GINT_TO_POINTER(caps[i].state));
    }
    ms->cap_events = GPOINTER_TO_INT(g_hash_table_lookup(ms->caps, "events"));
    ms->cap_pause_before_switchover = GPOINTER_TO_INT(
        g_hash_table_lookup(ms->caps, "pause-before-switchover"));
    ms->cap_late_block_activate = GPOINTER_TO_INT(
        g_hash_table_lookup(ms->caps, "late-block-activate"));
    return true;
}

bool migration_events_enabled(MigrationState *ms)
{
    return ms->cap_events;
}

GArray *migration_query_capabilities(MigrationState *ms)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(MigrationCapabilityInfo));

    for (const char *const *c = capability_names; *c; c++) {
        MigrationCapabilityInfo info = {
            .name = *c,
            .state = GPOINTER_TO_INT(g_hash_table_lookup(ms->caps, *c)),
            .supported = capability_supported(*c),
        };
        g_array_append_val(list, info);
    }
    return list;
}
