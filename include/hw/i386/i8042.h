/*
 * The i8042 keyboard controller, controller only (hw/i386/i8042.c): ports
 * 0x60/0x64, the reset line, no keyboard or mouse behind it.  Called with
 * the machine lock held or before vCPUs run.
 */
#ifndef HW_I386_I8042_H
#define HW_I386_I8042_H

#include <glib.h>

#include "hw/bus.h"
#include "hw/vmstate.h"

typedef struct I8042 I8042;

/* Called when the guest pulls the reset line (command 0xfe, output port). */
typedef void (*I8042ResetFn)(void *opaque);

/* Register the controller's ports and its migration state. */
I8042 *i8042_new(Bus *io_bus, DeviceStateList *states, I8042ResetFn reset, void *opaque,
                 GError **errp);
/* Power-on state (start and every system reset). */
void i8042_reset(I8042 *c);
void i8042_free(I8042 *c);

#endif
