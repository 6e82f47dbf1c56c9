/*
 * virtio-net failover in QEMU's spelling (hw/core/failover.c): a PCI
 * device with failover_pair_id=STANDBY is the primary of the virtio-net
 * with that id and failover=on.  It stays off the bus until the guest
 * negotiates VIRTIO_NET_F_STANDBY on the standby, is unplugged (the guest
 * asked to eject it) before a migration and plugged back when it fails or
 * is cancelled; the destination plugs it once the standby's state says
 * STANDBY was negotiated.  Main thread, except where noted.
 */
#ifndef HW_FAILOVER_H
#define HW_FAILOVER_H

#include <stdbool.h>
#include <glib.h>

typedef struct Machine Machine;
typedef struct PciDevice PciDevice;
typedef struct SubOpts SubOpts;

/* Listen to the standbys' negotiation (before any device exists). */
void machine_failover_init(Machine *m);
void machine_failover_cleanup(Machine *m);

/*
 * A -device or device_add with failover_pair_id=: checked (QEMU's errors:
 * an id is needed, function 0 of its own slot), then kept hidden, or
 * plugged at once when its standby has negotiated STANDBY already.
 * Returns false with errp set when refused; opts are not consumed.
 */
bool machine_failover_hide(Machine *m, const char *driver, SubOpts *opts, GError **errp);
/* True when id names a hidden or unplugged primary (ids stay unique). */
bool machine_failover_has_id(Machine *m, const char *id);
/*
 * The guest ejected dev: true when it is a failover primary, which is
 * then kept for a later plug (no DEVICE_DELETED, as QEMU's partial
 * unplug), and plugged again at once when no migration wants it away.
 */
bool machine_failover_ejected(Machine *m, PciDevice *dev);

/*
 * Migration source, at `migrate`: ask the guest to eject every plugged
 * primary, each with UNPLUG_PRIMARY.  Returns how many were asked.
 */
unsigned machine_failover_unplug_all(Machine *m);
/* Any thread: primaries asked to go that the guest has not ejected yet. */
unsigned machine_failover_unplug_pending(Machine *m);
/*
 * Any thread: an ejected primary's host device is still being closed in
 * the background (the destination cannot open it before that is done).
 */
bool machine_failover_releasing(Machine *m);
/*
 * The migration failed or was cancelled: an eject request still pending
 * is withdrawn, an ejected primary is plugged back.
 */
void machine_failover_replug_all(Machine *m);
/*
 * Destination, state loaded, guest not yet running: FAILOVER_NEGOTIATED
 * and the primary plugged for every standby that negotiated STANDBY.
 */
void machine_failover_loaded(Machine *m);

#endif
