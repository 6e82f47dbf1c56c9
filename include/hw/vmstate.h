/*
 * The device-state registry: every device registers one save/load pair
 * under a unique name with a version; migration/ walks the list to save
 * and load the machine (the registry lives in hw/ so that devices need no
 * header of the higher migration layer).  save appends the
 * device's state to out; load refuses (with errp set and the device left
 * as it was) any blob it does not fully understand.  Both run with the VM
 * paused and the machine lock held.
 */
#ifndef HW_VMSTATE_H
#define HW_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct DeviceStateOps {
    bool (*save)(void *opaque, GByteArray *out, GError **errp);
    bool (*load)(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                 GError **errp);
    /*
     * Optional (QEMU's subsection idea): NULL for state that is always
     * sent and required.  Otherwise the source sends the state only when
     * needed() says so (asked with the VM stopped), and a destination
     * accepts a stream without it (load is then not called): a stream from
     * a VMM that never sent it still loads, and a VMM that does not know
     * the state still takes a stream in which it was not needed.
     */
    bool (*needed)(void *opaque);
} DeviceStateOps;

typedef struct DeviceStateEntry {
    char *name; /* unique: "serial0", "virtio-blk@00:03.0", ... */
    uint32_t version;
    const DeviceStateOps *ops;
    void *opaque;
} DeviceStateEntry;

typedef struct DeviceStateList {
    GPtrArray *entries;  /* of DeviceStateEntry */
    GPtrArray *blockers; /* of DeviceStateBlocker: why migration is refused */
} DeviceStateList;

void device_state_list_init(DeviceStateList *list);
void device_state_list_destroy(DeviceStateList *list);
/* Register a device; a duplicate name is refused. */
bool device_state_register(DeviceStateList *list, const char *name, uint32_t version,
                           const DeviceStateOps *ops, void *opaque, GError **errp);
void device_state_unregister(DeviceStateList *list, void *opaque);
DeviceStateEntry *device_state_find(DeviceStateList *list, const char *name);

/*
 * Migration blockers: a device whose state cannot move (a passed-through
 * host device) blocks migration while it exists, with the text `migrate`
 * gives (QEMU's: "VFIO device doesn't support migration").
 */
void device_state_block(DeviceStateList *list, void *owner, const char *reason);
void device_state_unblock(DeviceStateList *list, void *owner);
/* False with the first blocker's reason in errp when migration is blocked. */
bool device_state_migratable(DeviceStateList *list, GError **errp);

#endif
