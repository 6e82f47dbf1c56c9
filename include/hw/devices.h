/*
 * The machine's disks and PCI devices from -drive and -device: images
 * opened through the block layer, virtio-blk on the PCI bus, and the image
 * lock hand-over around migration.  Main thread only.
 */
#ifndef HW_DEVICES_H
#define HW_DEVICES_H

#include <stdbool.h>
#include <glib.h>

typedef struct Machine Machine;

/* Before KVM: open every -drive image, check every -device's options. */
bool machine_devices_prepare(Machine *m, GError **errp);
/* After the board exists: the PCI bus and every device. */
bool machine_devices_init(Machine *m, GError **errp);
void machine_devices_cleanup(Machine *m);

/* Migration source, VM stopped: flush every image and give up its lock. */
void machine_drives_release(Machine *m);
/* Take every image lock back (a failed migration's source, or the
 * destination before its guest runs). */
bool machine_drives_acquire(Machine *m, GError **errp);

#endif
