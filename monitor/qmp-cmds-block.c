/*
 * QMP's block commands (qapi/block.json): query-block in QEMU's shape from
 * the machine's typed backend records (machine_query_drives), and
 * blockdev-add / blockdev-del, whose JSON (QEMU 7.2's BlockdevOptions for
 * the raw, qcow2 and file drivers, nested or flat) is checked here, in
 * QEMU's order and words, before a typed call into hw/.  Main thread only.
 */
#include <string.h>

#include "hw/drives.h"
#include "hw/machine-info.h"
#include "monitor-int.h"
#include "monitor/blockdev-options.h"
#include "qapi-commands.h"
#include "util/error.h"

BlockCacheFlags monitor_block_cache_flags(BlockCacheMode mode)
{
    return (BlockCacheFlags){
        .no_flush = mode == BLOCK_CACHE_UNSAFE,
        .direct = mode == BLOCK_CACHE_NONE || mode == BLOCK_CACHE_DIRECTSYNC,
        .writeback = mode != BLOCK_CACHE_WRITETHROUGH && mode != BLOCK_CACHE_DIRECTSYNC,
    };
}

static json_t *cache_json(BlockCacheMode mode)
{
    BlockCacheFlags f = monitor_block_cache_flags(mode);

    return json_pack("{s:b,s:b,s:b}", "no-flush", f.no_flush, "direct", f.direct,
                     "writeback", f.writeback);
}

static json_t *image_json(const MachineDriveInfo *d)
{
    json_t *img = json_pack("{s:I,s:s,s:s,s:I,s:b}", "virtual-size",
                            (json_int_t)d->virtual_size, "filename", d->filename,
                            "format", d->format, "actual-size",
                            (json_int_t)d->actual_size, "dirty-flag", 0);

    if (d->backing_file) {
        json_object_set_new(img, "backing-filename", json_string(d->backing_file));
    }
    return img;
}

static json_t *inserted_json(const MachineDriveInfo *d)
{
    json_t *inserted = json_pack(
        "{s:s,s:s,s:b,s:s,s:i,s:b,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:i}", "file",
        d->filename, "node-name", d->node_name, "ro", d->read_only, "drv", d->format,
        "backing_file_depth", d->backing_file ? 1 : 0, "encrypted", 0, "detect_zeroes",
        "off", "bps", 0, "bps_rd", 0, "bps_wr", 0, "iops", 0, "iops_rd", 0, "iops_wr", 0,
        "image", image_json(d), "cache", cache_json(d->cache), "write_threshold", 0);

    if (d->backing_file) {
        json_object_set_new(inserted, "backing_file", json_string(d->backing_file));
    }
    return inserted;
}

/*
 * As QEMU: a drive no device uses is "removable" with no io-status; one in
 * use names its device's backend (qdev) and has an io-status.
 */
json_t *qmp_query_block(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *drives = machine_query_drives(ctx->machine);
    json_t *list = json_array();

    for (guint i = 0; i < drives->len; i++) {
        const MachineDriveInfo *d = &g_array_index(drives, MachineDriveInfo, i);
        json_t *info = json_pack("{s:s,s:b,s:b,s:o,s:s}", "device", d->id, "locked", 0,
                                 "removable", !d->attached, "inserted", inserted_json(d),
                                 "type", "unknown");

        if (d->attached) {
            json_object_set_new(info, "io-status", json_string("ok"));
            json_object_set_new(info, "qdev", json_string(d->qdev));
        }
        json_array_append_new(list, info);
    }
    g_array_unref(drives);
    return list;
}

/* ---- blockdev-add ---- */

/* QEMU's texts for a member of the wrong JSON type, missing or unknown. */
static bool wrong_type(const char *prefix, const char *key, const char *type,
                       GError **errp)
{
    error_setg(errp, "Invalid parameter type for '%s%s', expected: %s", prefix, key,
               type);
    return false;
}

static bool get_bool(json_t *obj, const char *prefix, const char *key, bool *out,
                     GError **errp)
{
    json_t *v = json_object_get(obj, key);

    if (v && !json_is_boolean(v)) {
        return wrong_type(prefix, key, "boolean", errp);
    }
    *out = v ? json_is_true(v) : *out;
    return true;
}

static bool get_str(json_t *obj, const char *prefix, const char *key, bool required,
                    const char **out, GError **errp)
{
    json_t *v = json_object_get(obj, key);

    if (!v && required) {
        error_setg(errp, "Parameter '%s%s' is missing", prefix, key);
        return false;
    }
    if (v && !json_is_string(v)) {
        return wrong_type(prefix, key, "string", errp);
    }
    *out = v ? json_string_value(v) : NULL;
    return true;
}

/* An enum member: absent, or one of values (NULL-ended). */
static bool get_enum(json_t *obj, const char *prefix, const char *key,
                     const char *const *values, const char **out, GError **errp)
{
    if (!get_str(obj, prefix, key, false, out, errp)) {
        return false;
    }
    for (const char *const *v = values; *out && *v; v++) {
        if (strcmp(*out, *v) == 0) {
            return true;
        }
    }
    if (*out) {
        error_setg(errp, "Parameter '%s%s' does not accept value '%s'", prefix, key,
                   *out);
        return false;
    }
    return true;
}

/* Every member of obj must be one of known (NULL-ended). */
static bool check_members(json_t *obj, const char *prefix, const char *const *known,
                          GError **errp)
{
    const char *key;
    json_t *value;

    json_object_foreach(obj, key, value)
    {
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0) {
            k++;
        }
        if (!*k) {
            error_setg(errp, "Parameter '%s%s' is unexpected", prefix, key);
            return false;
        }
    }
    return true;
}

static const char *const on_off_auto[] = { "on", "off", "auto", NULL };
static const char *const aio_modes[] = { "threads", "native", "io_uring", NULL };

/* BlockdevOptionsFile's members (driver=file, root or file child). */
static bool file_options(json_t *obj, const char *prefix, BlockdevAddOptions *o,
                         GError **errp)
{
    const char *locking, *aio;

    if (!get_str(obj, prefix, "filename", true, &o->filename, errp) ||
        !get_enum(obj, prefix, "locking", on_off_auto, &locking, errp) ||
        !get_enum(obj, prefix, "aio", aio_modes, &aio, errp)) {
        return false;
    }
    if (locking && strcmp(locking, "off") == 0) {
        error_setg(errp, "%slocking=off is not supported: this VMM always locks images",
                   prefix);
        return false;
    }
    return true;
}

/* raw's and qcow2's file: a node's name, or a driver=file child inline. */
static bool file_child(json_t *args, BlockdevAddOptions *o, GError **errp)
{
    static const char *const known[] = { "driver", "filename", "locking", "aio", NULL };
    static const char *const drivers[] = { "file", NULL };
    json_t *file = json_object_get(args, "file");
    const char *driver;

    if (!file) {
        error_setg(errp, "Parameter 'file' is missing");
        return false;
    }
    if (json_is_string(file)) {
        o->file_node = json_string_value(file);
        return true;
    }
    if (!json_is_object(file)) {
        return wrong_type("", "file", "BlockdevRef", errp);
    }
    if (!get_str(file, "file.", "driver", true, &driver, errp)) {
        return false;
    }
    if (!get_enum(file, "file.", "driver", drivers, &driver, errp)) {
        g_prefix_error(errp, "this VMM opens images over driver 'file' only: ");
        return false;
    }
    return file_options(file, "file.", o, errp) &&
           check_members(file, "file.", known, errp);
}

static bool cache_options(json_t *args, BlockdevAddOptions *o, GError **errp)
{
    static const char *const known[] = { "direct", "no-flush", NULL };
    json_t *cache = json_object_get(args, "cache");
    bool direct = false, no_flush = false;

    if (!cache) {
        return true;
    }
    if (!json_is_object(cache)) {
        return wrong_type("", "cache", "object", errp);
    }
    if (!get_bool(cache, "cache.", "direct", &direct, errp) ||
        !get_bool(cache, "cache.", "no-flush", &no_flush, errp) ||
        !check_members(cache, "cache.", known, errp)) {
        return false;
    }
    if (direct && no_flush) {
        error_setg(errp, "cache.direct with cache.no-flush is not supported by this VMM");
        return false;
    }
    o->cache = direct     ? BLOCK_CACHE_NONE
               : no_flush ? BLOCK_CACHE_UNSAFE
                          : BLOCK_CACHE_WRITEBACK;
    return true;
}

/* BlockdevOptions' base members, which every driver has. */
static bool base_options(json_t *args, BlockdevAddOptions *o, GError **errp)
{
    static const char *const drivers[] = { "raw", "qcow2", "file", NULL };
    static const char *const discard[] = { "ignore", "unmap", NULL };
    static const char *const zeroes[] = { "off", "on", "unmap", NULL };
    const char *discard_mode, *detect_zeroes;
    bool force_share = false;

    if (!get_enum(args, "", "driver", drivers, &o->driver, errp) ||
        !get_str(args, "", "node-name", false, &o->node_name, errp) ||
        !get_enum(args, "", "discard", discard, &discard_mode, errp) ||
        !cache_options(args, o, errp) ||
        !get_bool(args, "", "read-only", &o->read_only, errp) ||
        !get_bool(args, "", "auto-read-only", &o->auto_read_only, errp) ||
        !get_bool(args, "", "force-share", &force_share, errp) ||
        !get_enum(args, "", "detect-zeroes", zeroes, &detect_zeroes, errp)) {
        return false;
    }
    o->discard_unmap = discard_mode && strcmp(discard_mode, "unmap") == 0;
    if (force_share) {
        error_setg(errp, "force-share is not supported by this VMM");
        return false;
    }
    if (detect_zeroes && strcmp(detect_zeroes, "off") != 0) {
        error_setg(errp, "detect-zeroes=%s is not supported by this VMM", detect_zeroes);
        return false;
    }
    return true;
}

/* QEMU 7.2's BlockdevOptions for raw, qcow2 and file, into o (args' strings). */
static bool blockdev_options(json_t *args, BlockdevAddOptions *o, GError **errp)
{
    static const char *const file_known[] = {
        "driver",    "node-name",      "discard",     "cache",
        "read-only", "auto-read-only", "force-share", "detect-zeroes",
        "filename",  "locking",        "aio",         NULL,
    };
    static const char *const format_known[] = {
        "driver",    "node-name",      "discard",     "cache",
        "read-only", "auto-read-only", "force-share", "detect-zeroes",
        "file",      "backing",        NULL,
    };
    json_t *backing;

    *o = (BlockdevAddOptions){ .cache = BLOCK_CACHE_WRITEBACK };
    if (!base_options(args, o, errp)) {
        return false;
    }
    if (strcmp(o->driver, "file") == 0) {
        return file_options(args, "", o, errp) &&
               check_members(args, "", file_known, errp);
    }
    if (!file_child(args, o, errp)) {
        return false;
    }
    backing = json_object_get(args, "backing");
    if (backing && (strcmp(o->driver, "qcow2") != 0 || !json_is_null(backing))) {
        error_setg(errp, strcmp(o->driver, "qcow2") != 0
                             ? "Parameter 'backing' is unexpected"
                             : "backing: this VMM opens the backing file the image "
                               "names (only null is taken)");
        return false;
    }
    return check_members(args, "", format_known, errp);
}

bool blockdev_options_from_json(json_t *args, BlockdevAddOptions *o, GError **errp)
{
    return blockdev_options(args, o, errp);
}

json_t *qmp_blockdev_add(QmpContext *ctx, json_t *args, GError **errp)
{
    BlockdevAddOptions o;

    if (!blockdev_options(args, &o, errp) ||
        !machine_blockdev_add(ctx->machine, &o, errp)) {
        return NULL;
    }
    return json_object();
}

/* ---- query-named-block-nodes, query-blockstats ---- */

json_t *qmp_query_named_block_nodes(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *nodes = machine_query_nodes(ctx->machine);
    json_t *list = json_array();

    /* newest first, as QEMU walks its list of named nodes */
    for (guint i = nodes->len; i-- > 0;) {
        json_array_append_new(list,
                              inserted_json(&g_array_index(nodes, MachineDriveInfo, i)));
    }
    g_array_unref(nodes);
    return list;
}

/*
 * BlockDeviceStats as QEMU 7.2 fills them: a backend's record counts its
 * device's requests (idle_time_ns once there was one); a node's own
 * record (query-nodes, or a backend's parent) only wr_highest_offset.
 * -drive's backends account invalid and failed requests (QEMU's default
 * there), a device's backend over -blockdev nodes does not.
 */
static json_t *block_stats_json(const BlockStats *st, bool backend, bool drive)
{
    const BlockStats zero = { .idle_time_ns = -1 };
    const BlockStats *c = backend ? st : &zero;
    json_t *stats = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:i}", "rd_bytes",
        (json_int_t)c->rd_bytes, "wr_bytes", (json_int_t)c->wr_bytes, "unmap_bytes",
        (json_int_t)c->unmap_bytes, "rd_operations", (json_int_t)c->rd_operations,
        "wr_operations", (json_int_t)c->wr_operations, "flush_operations",
        (json_int_t)c->flush_operations, "unmap_operations",
        (json_int_t)c->unmap_operations, "rd_total_time_ns",
        (json_int_t)c->rd_total_time_ns, "wr_total_time_ns",
        (json_int_t)c->wr_total_time_ns, "flush_total_time_ns",
        (json_int_t)c->flush_total_time_ns, "unmap_total_time_ns",
        (json_int_t)c->unmap_total_time_ns, "wr_highest_offset",
        (json_int_t)st->wr_highest_offset, "rd_merged", 0, "wr_merged", 0, "unmap_merged",
        0);
    json_t *more = json_pack(
        "{s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:b,s:b,s:[]}", "failed_rd_operations",
        (json_int_t)c->failed_rd_operations, "failed_wr_operations",
        (json_int_t)c->failed_wr_operations, "failed_flush_operations",
        (json_int_t)c->failed_flush_operations, "failed_unmap_operations",
        (json_int_t)c->failed_unmap_operations, "invalid_rd_operations", 0,
        "invalid_wr_operations", 0, "invalid_flush_operations", 0,
        "invalid_unmap_operations", 0, "account_invalid", drive, "account_failed", drive,
        "timed_stats");

    json_object_update(stats, more);
    json_decref(more);
    if (c->idle_time_ns >= 0) {
        json_object_set_new(stats, "idle_time_ns", json_integer(c->idle_time_ns));
    }
    return stats;
}

static json_t *node_stats_json(const MachineDriveInfo *d, bool backend)
{
    json_t *rec = json_pack("{s:s,s:o}", "node-name", d->node_name, "stats",
                            block_stats_json(&d->stats, backend, d->id[0]));

    if (d->file_node_name[0]) {
        BlockStats file = { .wr_highest_offset = d->stats.file_wr_highest_offset };

        json_object_set_new(rec, "parent",
                            json_pack("{s:s,s:o}", "node-name", d->file_node_name,
                                      "stats", block_stats_json(&file, false, false)));
    }
    return rec;
}

json_t *qmp_query_blockstats(QmpContext *ctx, json_t *args, GError **errp)
{
    bool nodes = json_is_true(json_object_get(args, "query-nodes"));
    GArray *drives = nodes ? machine_query_nodes(ctx->machine)
                           : machine_query_drives(ctx->machine);
    json_t *list = json_array();

    for (guint i = 0; i < drives->len; i++) {
        const MachineDriveInfo *d = &g_array_index(drives, MachineDriveInfo, i);
        json_t *rec = node_stats_json(d, !nodes);

        if (!nodes) {
            json_object_set_new(rec, "device", json_string(d->id));
            if (d->attached) {
                json_object_set_new(rec, "qdev", json_string(d->qdev));
            }
        }
        json_array_append_new(list, rec);
    }
    g_array_unref(drives);
    return list;
}

json_t *qmp_blockdev_del(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *node_name = json_string_value(json_object_get(args, "node-name"));

    return machine_blockdev_del(ctx->machine, node_name, errp) ? json_object() : NULL;
}
