/*
 * The machine's block backends as the monitor changes them while the VM
 * runs: HMP drive_add and drive_del, QMP blockdev-add and blockdev-del, in
 * QEMU 7.2's spellings and with its errors.  A hot-added drive or node
 * takes its image lock only while a device uses it, as QEMU does; a drive
 * goes with its device, a node stays until blockdev-del.  Every failed
 * call changes nothing.  Main thread only.
 */
#ifndef HW_DRIVES_H
#define HW_DRIVES_H

#include <stdbool.h>
#include <glib.h>

#include "block/block.h"

typedef struct Machine Machine;

/* drive_add's options (-drive's, with if=none): "OK" once it is open. */
bool machine_drive_add(Machine *m, const char *options, GError **errp);
/*
 * drive_del: a drive no device uses is closed (a node, blockdev-del'd);
 * this VMM cannot take a medium from a device, so a drive in use is
 * refused with a clear error where QEMU would empty the device.
 */
bool machine_drive_del(Machine *m, const char *id, GError **errp);

/* blockdev-add, typed: the driver's and its file child's options. */
typedef struct BlockdevAddOptions {
    const char *node_name; /* NULL: QEMU's "must be specified" error */
    const char *driver;    /* "raw", "qcow2" or "file" */
    const char *filename;  /* the file (inline file child, or driver=file) */
    const char *file_node; /* raw/qcow2 over a driver=file node, by name */
    bool read_only;
    BlockCacheMode cache;
    bool discard_unmap;
    bool auto_read_only;
} BlockdevAddOptions;

bool machine_blockdev_add(Machine *m, const BlockdevAddOptions *opts, GError **errp);
/* blockdev-del: a node no device and no other node uses goes. */
bool machine_blockdev_del(Machine *m, const char *node_name, GError **errp);

/* Is this a node name QEMU takes (a letter, then letters, digits, -._)? */
bool block_id_wellformed(const char *id);

#endif
