/*
 * Monitor endpoints: each -qmp, -monitor or -mon becomes a Monitor bound
 * to a chardev; a client connecting starts a fresh session (QMP greeting
 * or HMP banner).  Events go to every negotiated QMP client.  Main thread
 * only.
 */
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>

#include "hw/machine.h"
#include "migration/migration.h"
#include "monitor-int.h"
#include "util/error.h"
#include "util/fdset.h"

QmpContext monitor_qmp_context(Monitor *mon)
{
    return (QmpContext){ mon->set->machine, mon->set, mon };
}

bool monitor_takes_input(const Monitor *mon)
{
    return mon->connected && !mon->set->machine->exiting;
}

static size_t monitor_can_read(void *opaque)
{
    return 4096;
}

static void monitor_read(void *opaque, const uint8_t *buf, size_t len)
{
    Monitor *mon = opaque;

    if (!mon->connected) {
        return;
    }
    if (mon->control) {
        qmp_session_input(mon, buf, len);
    } else {
        hmp_session_input(mon, buf, len);
    }
}

static void monitor_event(void *opaque, ChardevEvent event)
{
    Monitor *mon = opaque;

    if (event == CHARDEV_EVENT_OPENED) {
        mon->connected = true;
        if (mon->control) {
            qmp_session_reset(&mon->qmp);
            qmp_session_greet(mon);
        } else {
            hmp_session_reset(&mon->hmp);
            hmp_session_greet(mon);
        }
    } else {
        bool was_connected = mon->connected;

        mon->connected = false;
        /* QEMU's monitor close: fd sets nobody uses may go now */
        if (was_connected) {
            fdset_cleanup_all();
        }
    }
}

/* What the fd sets' closing rules ask (util/fdset.c). */
static bool monitor_vm_running(void *opaque)
{
    MonitorSet *set = opaque;

    return set->machine->runstate == RUN_STATE_RUNNING;
}

static bool monitor_any_connected(void *opaque)
{
    MonitorSet *set = opaque;

    for (guint i = 0; i < set->monitors->len; i++) {
        if (((Monitor *)g_ptr_array_index(set->monitors, i))->connected) {
            return true;
        }
    }
    return false;
}

static const FdSetHooks monitor_fdset_hooks = {
    .vm_running = monitor_vm_running,
    .monitors_open = monitor_any_connected,
};

static const ChardevHandlers monitor_handlers = {
    .can_read = monitor_can_read,
    .read = monitor_read,
    .event = monitor_event,
};

MonitorSet *monitor_set_new(Machine *m)
{
    MonitorSet *set = g_new0(MonitorSet, 1);

    set->machine = m;
    set->monitors = g_ptr_array_new();
    monitor_net_init(set);
    fdset_set_hooks(&monitor_fdset_hooks, set);
    return set;
}

void monitor_set_free(MonitorSet *set)
{
    if (!set) {
        return;
    }
    monitor_net_fini(set);
    fdset_set_hooks(NULL, NULL);
    for (guint i = 0; i < set->monitors->len; i++) {
        Monitor *mon = g_ptr_array_index(set->monitors, i);
        qmp_session_free(&mon->qmp);
        hmp_session_free(&mon->hmp);
        monitor_fds_free(mon);
        g_free(mon);
    }
    g_ptr_array_free(set->monitors, TRUE);
    g_free(set);
}

Monitor *monitor_add(MonitorSet *set, Chardev *chr, bool control, GError **errp)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->set = set;
    mon->chr = chr;
    mon->control = control;
    qmp_session_reset(&mon->qmp);
    hmp_session_reset(&mon->hmp);
    if (!chardev_attach(chr, &monitor_handlers, mon, errp)) {
        qmp_session_free(&mon->qmp);
        hmp_session_free(&mon->hmp);
        g_free(mon);
        return NULL;
    }
    g_ptr_array_add(set->monitors, mon);
    return mon;
}

static bool monitor_add_legacy(MonitorSet *set, ChardevSet *chardevs, const char *option,
                               const char *spec, bool control, GError **errp)
{
    char *id = g_strdup_printf("compat_monitor%u", set->next_compat_id++);
    GError *err = NULL;
    Chardev *chr = chardev_new_from_legacy(chardevs, spec, id, &err);

    g_free(id);
    if (!chr) {
        error_setg(errp, "%s %s: %s", option, spec, err->message);
        g_error_free(err);
        return false;
    }
    return monitor_add(set, chr, control, errp) != NULL;
}

/* -mon, parsed when read: its chardev is the one thing left to find. */
static bool monitor_add_mon(MonitorSet *set, ChardevSet *chardevs, const MonitorOpt *opt,
                            GError **errp)
{
    Chardev *chr = chardev_find(chardevs, opt->chardev);

    if (!chr) {
        error_setg(errp, "-mon %s: chardev \"%s\" not found", opt->arg, opt->chardev);
        return false;
    }
    return monitor_add(set, chr, opt->control, errp) != NULL;
}

typedef struct MuxMonitors {
    MonitorSet *set;
    GError **errp;
    bool ok;
} MuxMonitors;

static void add_mux_monitor(Chardev *chr, void *opaque)
{
    MuxMonitors *mm = opaque;

    if (mm->ok && chardev_wants_monitor(chr)) {
        mm->ok = monitor_add(mm->set, chr, false, mm->errp) != NULL;
    }
}

bool monitor_set_configure(MonitorSet *set, ChardevSet *chardevs, GError **errp)
{
    const VmConfig *cfg = set->machine->cfg;
    MuxMonitors mm = { set, errp, true };

    /* "mon:stdio" (and -nographic's default console): HMP behind Ctrl-A c */
    chardev_set_foreach(chardevs, add_mux_monitor, &mm);
    if (!mm.ok) {
        return false;
    }

    for (guint i = 0; i < cfg->monitor_opts->len; i++) {
        const MonitorOpt *opt = g_ptr_array_index(cfg->monitor_opts, i);
        bool ok;

        if (opt->kind == MONITOR_OPT_MON) {
            ok = monitor_add_mon(set, chardevs, opt, errp);
        } else if (!strcmp(opt->arg, "none")) {
            ok = true;
        } else {
            ok = monitor_add_legacy(set, chardevs,
                                    opt->kind == MONITOR_OPT_QMP ? "-qmp" : "-monitor",
                                    opt->arg, opt->kind == MONITOR_OPT_QMP, errp);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

void monitor_emit_event(MonitorSet *set, const char *event, json_t *data)
{
    struct timeval tv;
    json_t *msg;

    gettimeofday(&tv, NULL);
    msg = json_pack("{s:{s:I,s:I},s:s}", "timestamp", "seconds", (json_int_t)tv.tv_sec,
                    "microseconds", (json_int_t)tv.tv_usec, "event", event);
    if (data) {
        json_object_set_new(msg, "data", data);
    }
    for (guint i = 0; set && i < set->monitors->len; i++) {
        Monitor *mon = g_ptr_array_index(set->monitors, i);
        if (mon->control && mon->connected && mon->qmp.negotiated) {
            monitor_send_json(mon, msg);
        }
    }
    json_decref(msg);
}

void monitor_printf(Monitor *mon, const char *fmt, ...)
{
    va_list ap;
    char *raw, *text;
    char **lines;

    va_start(ap, fmt);
    raw = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* HMP speaks "\r\n", over telnet and in human-monitor-command alike */
    lines = g_strsplit(raw, "\n", -1);
    text = g_strjoinv("\r\n", lines);
    g_strfreev(lines);
    g_free(raw);
    if (mon->capture) {
        g_string_append(mon->capture, text);
    } else if (mon->chr) {
        chardev_write(mon->chr, text, strlen(text));
    }
    g_free(text);
}

/* The machine's run-state changes, as QMP events. */
void monitor_machine_event(void *opaque, MachineEvent event, ShutdownCause cause)
{
    MonitorSet *set = opaque;
    json_t *data;

    switch (event) {
    case MACHINE_EVENT_STOP:
        monitor_emit_event(set, "STOP", NULL);
        break;
    case MACHINE_EVENT_RESUME:
        monitor_emit_event(set, "RESUME", NULL);
        break;
    case MACHINE_EVENT_POWERDOWN:
        monitor_emit_event(set, "POWERDOWN", NULL);
        break;
    case MACHINE_EVENT_DEVICE_DELETED: {
        const char *id = set->machine->event_device_id;
        const char *path = set->machine->event_device_path;

        if (set->machine->event_device_virtio) {
            char *backend = g_strdup_printf("%s/virtio-backend", path);
            monitor_emit_event(set, "DEVICE_DELETED",
                               json_pack("{s:s}", "path", backend));
            g_free(backend);
        }
        /* QEMU leaves "device" out for a device without id */
        data = id ? json_pack("{s:s,s:s}", "device", id, "path", path)
                  : json_pack("{s:s}", "path", path);
        monitor_emit_event(set, "DEVICE_DELETED", data);
        break;
    }
    case MACHINE_EVENT_FAILOVER_NEGOTIATED:
    case MACHINE_EVENT_UNPLUG_PRIMARY:
        data = json_pack("{s:s}", "device-id", set->machine->event_device_id);
        if (event == MACHINE_EVENT_UNPLUG_PRIMARY) {
            monitor_emit_event(set, "UNPLUG_PRIMARY", data);
        } else {
            monitor_emit_event(set, "FAILOVER_NEGOTIATED", data);
        }
        break;
    case MACHINE_EVENT_RESET:
    case MACHINE_EVENT_SHUTDOWN:
        data = json_pack("{s:b,s:s}", "guest", shutdown_cause_is_guest(cause), "reason",
                         shutdown_cause_name(cause));
        monitor_emit_event(set, event == MACHINE_EVENT_RESET ? "RESET" : "SHUTDOWN",
                           data);
        break;
    }
}

void monitor_migration_event(void *opaque, int status, int pass)
{
    MonitorSet *set = opaque;
    MigrationState *ms = set->machine->migration;

    if (!ms || !migration_events_enabled(ms)) {
        return;
    }
    if (pass) {
        monitor_emit_event(set, "MIGRATION_PASS", json_pack("{s:i}", "pass", pass));
    } else {
        monitor_emit_event(set, "MIGRATION",
                           json_pack("{s:s}", "status", migration_status_name(status)));
    }
}
