/*
 * Between the machine's devices (devices.c) and its block backends
 * (drives.c): a device claims the drive its drive= names while it is
 * created, owns it once created, and lets it go when it leaves.  Main
 * thread only.
 */
#ifndef HW_CORE_DEVICES_INT_H
#define HW_CORE_DEVICES_INT_H

#include <stdbool.h>
#include <glib.h>

#include "block/block.h"
#include "block/drive.h"
#include "hw/machine.h"

typedef struct PciDevice PciDevice;

/*
 * One block backend of the machine: a -drive or drive_add drive (named by
 * its id, deleted with its device as QEMU's "blockdev auto-del" does), or a
 * blockdev-add node (named by its node-name, kept until blockdev-del).
 */
typedef struct MachineDrive {
    char *id;        /* the drive's id, or NULL for a blockdev-add node */
    char *node_name; /* blockdev-add's node-name, or "#blockN" for a drive */
    DriveConfig cfg; /* a drive's options (owned); a node's: only id unset */
    BlockDriverState *bs;
    bool file_node;            /* blockdev-add driver=file (shown as "file") */
    bool auto_read_only;       /* its auto-read-only (a format node: its file's) */
    bool lock_while_used;      /* hot-added raw: locked only while a device uses it */
    bool claimed;              /* a device being created has taken it */
    PciDevice *device;         /* the device using it, or NULL */
    char *device_path;         /* that device's QOM path of its virtio backend */
    struct MachineDrive *file; /* a node's named file node, or NULL */
    unsigned file_users;       /* format nodes over this file node */
    unsigned backend_order;    /* query-block's order: when it got a backend */
    unsigned unit;             /* an if=none drive's unit (QEMU's default ids) */
} MachineDrive;

/* Open every -drive (inactive on a migration destination). */
bool machine_drives_open(Machine *m, GError **errp);
/*
 * drive= of a device being created: the drive or node named, marked
 * claimed (and, if hot-added, locked now); QEMU's errors for an unknown
 * name or one in use.  A PciDriveLookupFn.
 */
BlockDriverState *machine_drive_claim(void *machine, const char *name, GError **errp);
/*
 * After a device's creation: the drives it claimed now belong to dev,
 * known as path (QOM path of its backend); with dev NULL (creation
 * failed, or a check only) the claims are dropped.
 */
void machine_drives_commit(Machine *m, PciDevice *dev, const char *path);
/* dev has left: its drive is deleted (a drive) or let go (a node). */
void machine_drives_device_gone(Machine *m, PciDevice *dev);
/* Close and forget every drive (machine clean-up). */
void machine_drives_free(Machine *m);

#endif
