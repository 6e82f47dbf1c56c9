/*
 * -drive parsing with QEMU's spellings and defaults: file=, if=virtio,
 * format=raw|qcow2, cache=..., readonly=on, id=, discard=unmap|ignore,
 * serial=, media=disk.  Pure functions.
 */
#include <string.h>

#include "block/drive.h"
#include "util/error.h"
#include "util/subopt.h"

static bool parse_cache(const char *v, BlockCacheMode *out, GError **errp)
{
    static const struct {
        const char *name;
        BlockCacheMode mode;
    } modes[] = {
        { "writeback", BLOCK_CACHE_WRITEBACK },
        { "none", BLOCK_CACHE_NONE },
        { "writethrough", BLOCK_CACHE_WRITETHROUGH },
        { "directsync", BLOCK_CACHE_DIRECTSYNC },
        { "unsafe", BLOCK_CACHE_UNSAFE },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(v, modes[i].name) == 0) {
            *out = modes[i].mode;
            return true;
        }
    }
    error_setg(errp, "invalid cache option");
    return false;
}

static bool check_interface(const char *iface, GError **errp)
{
    if (!iface || strcmp(iface, "virtio") == 0 || strcmp(iface, "none") == 0) {
        return true;
    }
    if (!strcmp(iface, "ide") || !strcmp(iface, "scsi") || !strcmp(iface, "floppy") ||
        !strcmp(iface, "sd") || !strcmp(iface, "pflash") || !strcmp(iface, "mtd") ||
        !strcmp(iface, "xen")) {
        error_setg(errp, "if=%s is not supported by this VMM: use if=virtio", iface);
        return false;
    }
    error_setg(errp, "unsupported bus type '%s'", iface);
    return false;
}

bool drive_parse(const char *arg, unsigned index, DriveConfig *out, GError **errp)
{
    SubOpts *o = subopts_parse(arg, NULL, errp);
    const char *v;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (!o) {
        return false;
    }
    out->has_media = true;
    v = subopts_get(o, "if");
    /* QEMU's pc puts a drive with no if= on IDE; we have only virtio */
    if (!v) {
        error_setg(errp, "a drive without if= would be IDE, which this VMM does not "
                         "offer: add if=virtio");
        goto out;
    }
    if (!check_interface(v, errp)) {
        goto out;
    }
    out->if_none = strcmp(v, "none") == 0;
    v = subopts_get(o, "file");
    if (!v || !*v) {
        error_setg(errp, "A block device must be specified for \"file\"");
        goto out;
    }
    out->file = g_strdup(v);
    v = subopts_get(o, "format");
    if (v && strcmp(v, "raw") && strcmp(v, "qcow2")) {
        error_setg(errp, "Unknown driver '%s' (this VMM reads raw and qcow2)", v);
        goto out;
    }
    out->format = g_strdup(v);
    if ((v = subopts_get(o, "cache")) && !parse_cache(v, &out->cache, errp)) {
        goto out;
    }
    if (!subopts_get_bool(o, "readonly", &out->read_only, errp)) {
        goto out;
    }
    v = subopts_get(o, "discard");
    if (v && strcmp(v, "unmap") && strcmp(v, "on") && strcmp(v, "ignore") &&
        strcmp(v, "off")) {
        error_setg(errp, "Invalid discard option");
        goto out;
    }
    out->discard_unmap = v && (!strcmp(v, "unmap") || !strcmp(v, "on"));
    v = subopts_get(o, "media");
    if (v && strcmp(v, "disk")) {
        error_setg(errp, "media=%s is not supported: only disks", v);
        goto out;
    }
    v = subopts_get(o, "id");
    out->id = v ? g_strdup(v) : g_strdup_printf("virtio%u", index);
    out->serial = g_strdup(subopts_get(o, "serial"));
    subopts_get(o, "index"); /* accepted for compatibility */
    subopts_get(o, "aio");   /* threads/native/io_uring: one engine here */
    ok = subopts_check_unused(o, errp);
    out->arg = g_strdup(arg);
out:
    if (!ok) {
        drive_config_clear(out);
    }
    subopts_free(o);
    return ok;
}

void drive_config_clear(DriveConfig *d)
{
    g_free(d->arg);
    g_free(d->id);
    g_free(d->file);
    g_free(d->format);
    g_free(d->serial);
    memset(d, 0, sizeof(*d));
}

void drive_config_free(gpointer d)
{
    drive_config_clear(d);
    g_free(d);
}

BlockOptions drive_block_options(const DriveConfig *d)
{
    return (BlockOptions){
        .filename = d->file,
        .format = d->format,
        .read_only = d->read_only,
        .cache = d->cache,
        .discard_unmap = d->discard_unmap,
        .auto_read_only = true, /* QEMU's default for -drive's file */
    };
}
