/*
 * -device isa-serial,chardev=ID[,id=ID][,index=N]: a COM port by device
 * (libvirt's spelling of -serial).  It takes the port at index N (COM1 at
 * 0x3f8 for 0), or the first one -serial left free.  Checked and its
 * backend looked up at machine set-up, before KVM; main thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "system/config.h"
#include "util/error.h"
#include "util/subopt.h"

#define ISA_SERIAL_PORTS 4

static bool isa_serial_index(SubOpts *props, int *index, GError **errp)
{
    const char *value = subopts_get(props, "index");
    char *end;
    long v;

    if (!value) {
        return true; /* the first free port */
    }
    errno = 0;
    v = strtol(value, &end, 0);
    if (errno || end == value || *end || v < G_MININT32 || v > G_MAXINT32) {
        error_setg(errp, "Parameter 'index' expects integer");
        return false;
    }
    *index = v;
    return true;
}

static bool isa_serial_prepare_one(Machine *m, SubOpts *props, GError **errp)
{
    const char *chardev = subopts_get(props, "chardev");
    int index = -1;
    Chardev *chr = NULL;

    subopts_get(props, "driver");
    subopts_get(props, "id");
    if (!isa_serial_index(props, &index, errp)) {
        return false;
    }
    for (guint i = 0; i < props->items->len; i++) {
        const SubOpt *item = &g_array_index(props->items, SubOpt, i);
        if (!item->used) {
            error_setg(errp, "Property 'isa-serial.%s' not found", item->key);
            return false;
        }
    }
    if (chardev && !(chr = chardev_find(m->chardevs, chardev))) {
        error_setg(errp, "Property 'serial.chardev' can't find value '%s'", chardev);
        return false;
    }
    if (index < 0) {
        for (index = 0; index < ISA_SERIAL_PORTS && m->serial_used[index]; index++) {
        }
    }
    if (index >= ISA_SERIAL_PORTS) {
        error_setg(errp, "Max. supported number of ISA serial ports is %d.",
                   ISA_SERIAL_PORTS);
        return false;
    }
    if (m->serial_used[index]) {
        error_setg(errp, "serial port index %d is already in use", index);
        return false;
    }
    m->serial_used[index] = true;
    m->serial_chr[index] = chr;
    return true;
}

bool pc_isa_serial_prepare(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    for (guint i = 0; i < cfg->devices->len; i++) {
        const DeviceOpt *dev = g_ptr_array_index(cfg->devices, i);

        if (strcmp(dev->driver, "isa-serial") != 0) {
            continue;
        }
        if (!isa_serial_prepare_one(m, dev->props, errp)) {
            g_prefix_error(errp, "-device %s: ", dev->arg);
            return false;
        }
    }
    return true;
}
