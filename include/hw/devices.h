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
typedef struct SubOpts SubOpts;

/* Before KVM: open every -drive image, check every -device's options. */
bool machine_devices_prepare(Machine *m, GError **errp);
/* After the board exists: the PCI bus and every device. */
bool machine_devices_init(Machine *m, GError **errp);
void machine_devices_cleanup(Machine *m);

/*
 * device_del: ask the guest to eject the device with this id or QOM path
 * (ACPI PCI hot-plug); it goes when the guest has ejected it, and its
 * drive with it (a blockdev-add node stays).  An unknown id is
 * QEMU's DeviceNotFound; asking again while the guest has not ejected
 * asks again, with no error (QEMU 7.2's pc does the same).
 */
bool machine_device_del(Machine *m, const char *id, GError **errp);
/*
 * /machine/peripheral-anon's children: the QOM type of device[N] at index
 * N (a copy), NULL where that device is gone.  g_ptr_array_unref it.
 */
GPtrArray *machine_query_anon_devices(Machine *m);
/*
 * device_add: create a PCI device from -device's options (driver= among
 * them) while the VM runs and tell the guest through ACPI PCI hot-plug.
 * QEMU's errors (a taken id, the model's own).  The SubOpts are consumed.
 */
bool machine_device_add(Machine *m, SubOpts *opts, GError **errp);
/* The guest ejected slot: its devices go, each with a DEVICE_DELETED. */
void machine_devices_remove_slot(Machine *m, unsigned slot);
/*
 * Main loop: a host device closing in the background is done; the
 * DEVICE_DELETED events that waited for every such close go out.
 */
void machine_devices_released(Machine *m);

/* Migration source, VM stopped: flush every image and give up its lock
 * (hw/core/drives.c). */
void machine_drives_release(Machine *m);
/* Take every image lock back (a failed migration's source, or the
 * destination before its guest runs). */
bool machine_drives_acquire(Machine *m, GError **errp);

#endif
