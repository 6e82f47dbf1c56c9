/*
 * The registry of device save/load pairs (see include/hw/vmstate.h).
 * Main thread only; the incoming migration thread looks names up too, which
 * is safe because the list does not change once the machine is built.
 */
#include <string.h>

#include "hw/vmstate.h"
#include "util/error.h"

static void entry_free(gpointer p)
{
    DeviceStateEntry *e = p;

    g_free(e->name);
    g_free(e);
}

typedef struct DeviceStateBlocker {
    void *owner;
    char *reason;
} DeviceStateBlocker;

static void blocker_free(gpointer p)
{
    DeviceStateBlocker *b = p;

    g_free(b->reason);
    g_free(b);
}

void device_state_list_init(DeviceStateList *list)
{
    list->entries = g_ptr_array_new_with_free_func(entry_free);
    list->blockers = g_ptr_array_new_with_free_func(blocker_free);
}

void device_state_list_destroy(DeviceStateList *list)
{
    if (list->entries) {
        g_ptr_array_free(list->entries, TRUE);
        list->entries = NULL;
    }
    if (list->blockers) {
        g_ptr_array_free(list->blockers, TRUE);
        list->blockers = NULL;
    }
}

void device_state_block(DeviceStateList *list, void *owner, const char *reason)
{
    DeviceStateBlocker *b = g_new0(DeviceStateBlocker, 1);

    b->owner = owner;
    b->reason = g_strdup(reason);
    g_ptr_array_add(list->blockers, b);
}

void device_state_unblock(DeviceStateList *list, void *owner)
{
    for (guint i = list->blockers ? list->blockers->len : 0; i-- > 0;) {
        DeviceStateBlocker *b = g_ptr_array_index(list->blockers, i);
        if (b->owner == owner) {
            g_ptr_array_remove_index(list->blockers, i);
        }
    }
}

bool device_state_migratable(DeviceStateList *list, GError **errp)
{
    if (list->blockers && list->blockers->len) {
        DeviceStateBlocker *b = g_ptr_array_index(list->blockers, 0);
        error_setg(errp, "%s", b->reason);
        return false;
    }
    return true;
}

DeviceStateEntry *device_state_find(DeviceStateList *list, const char *name)
{
    for (guint i = 0; i < list->entries->len; i++) {
        DeviceStateEntry *e = g_ptr_array_index(list->entries, i);
        if (strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

bool device_state_register(DeviceStateList *list, const char *name, uint32_t version,
                           const DeviceStateOps *ops, void *opaque, GError **errp)
{
    DeviceStateEntry *e;

    if (device_state_find(list, name)) {
        error_setg(errp, "device state '%s' is registered twice", name);
        return false;
    }
    e = g_new0(DeviceStateEntry, 1);
    e->name = g_strdup(name);
    e->version = version;
    e->ops = ops;
    e->opaque = opaque;
    g_ptr_array_add(list->entries, e);
    return true;
}

void device_state_unregister(DeviceStateList *list, void *opaque)
{
    for (guint i = list->entries->len; i-- > 0;) {
        DeviceStateEntry *e = g_ptr_array_index(list->entries, i);
        if (e->opaque == opaque) {
            g_ptr_array_remove_index(list->entries, i);
        }
    }
}
