/*
 * -drive: QEMU's option parsed into what the block layer and the disk
 * device need.  Pure parsing; main thread before the machine exists.
 */
#ifndef BLOCK_DRIVE_H
#define BLOCK_DRIVE_H

#include <stdbool.h>
#include <glib.h>

#include "block/block.h"

typedef struct DriveConfig {
    char *arg; /* the option's argument, for errors found later */
    char *id;  /* id=, or "virtio0", "virtio1"... as QEMU names them */
    char *file;
    char *format; /* NULL: probe */
    char *serial; /* serial=, the disk's ID string */
    BlockCacheMode cache;
    bool read_only;
    bool discard_unmap;
    bool has_media; /* media=disk (default); cdrom is refused */
    bool if_none;   /* if=none: only a -device drive= uses it */
} DriveConfig;

/* Parse one -drive argument; index numbers drives of the same interface. */
bool drive_parse(const char *arg, unsigned index, DriveConfig *out, GError **errp);
void drive_config_clear(DriveConfig *d);
/* Clear and free a DriveConfig of the heap (a GDestroyNotify). */
void drive_config_free(gpointer d);
/* The BlockOptions for bdrv_open (pointers into d). */
BlockOptions drive_block_options(const DriveConfig *d);

#endif
