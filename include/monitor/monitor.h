/*
 * Monitors: QMP (JSON) and HMP (text) endpoints on chardevs, and QMP
 * events broadcast to every negotiated QMP client.  Main thread only.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include <stdbool.h>
#include <glib.h>
#include <jansson.h>

#include "chardev/chardev.h"
#include "hw/machine.h"

typedef struct Monitor Monitor;
typedef struct MonitorSet MonitorSet;

MonitorSet *monitor_set_new(Machine *m);
void monitor_set_free(MonitorSet *set);

/*
 * Add the monitors the command line asks for (-qmp, -monitor, -mon) and
 * attach them to their chardevs.  Chardevs for -qmp/-monitor specs are
 * created here as "compat_monitorN", as QEMU names them.
 */
bool monitor_set_configure(MonitorSet *set, ChardevSet *chardevs, GError **errp);
Monitor *monitor_add(MonitorSet *set, Chardev *chr, bool control, GError **errp);

/* Send {"timestamp", "event", "data"} to every negotiated QMP client. */
void monitor_emit_event(MonitorSet *set, const char *event, json_t *data);

/* A MachineEventFn: run-state changes become STOP/RESUME/RESET/SHUTDOWN. */
void monitor_machine_event(void *opaque, MachineEvent event, ShutdownCause cause);

/* A MigrationEventFn: MIGRATION (with the events capability) and
 * MIGRATION_PASS events. */
void monitor_migration_event(void *opaque, int status, int pass);

/* Run one HMP command line; returns its output (QEMU's "\r\n" lines). */
char *hmp_run_command(MonitorSet *set, Monitor *mon, const char *line);

#endif
