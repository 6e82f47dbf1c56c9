/*
 * QMP query-block (qapi/block.json) in QEMU's shape from the machine's
 * typed drive records (machine_query_drives).  Main thread only.
 */
#include "hw/machine-info.h"
#include "monitor-int.h"
#include "qapi-commands.h"

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

json_t *qmp_query_block(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *drives = machine_query_drives(ctx->machine);
    json_t *list = json_array();

    for (guint i = 0; i < drives->len; i++) {
        const MachineDriveInfo *d = &g_array_index(drives, MachineDriveInfo, i);
        json_t *inserted = json_pack(
            "{s:s,s:s,s:b,s:s,s:i,s:b,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:i}", "file",
            d->filename, "node-name", d->node_name, "ro", d->read_only, "drv", d->format,
            "backing_file_depth", d->backing_file ? 1 : 0, "encrypted", 0,
            "detect_zeroes", "off", "bps", 0, "bps_rd", 0, "bps_wr", 0, "iops", 0,
            "iops_rd", 0, "iops_wr", 0, "image", image_json(d), "cache",
            cache_json(d->cache), "write_threshold", 0);

        if (d->backing_file) {
            json_object_set_new(inserted, "backing_file", json_string(d->backing_file));
        }
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:b,s:b,s:o,s:s,s:s}", "device", d->id, "io-status",
                            "ok", "locked", 0, "removable", 0, "inserted", inserted,
                            "type", "unknown", "qdev", d->attached ? "virtio-blk" : ""));
    }
    g_array_unref(drives);
    return list;
}
