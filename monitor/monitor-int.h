/*
 * Monitor internals shared by monitor.c (endpoints, events), qmp.c (the
 * QMP protocol), qmp-cmds*.c (the QMP commands), hmp.c (the text monitor)
 * and hmp-cmds.c (its commands).  Main thread only.
 */
#ifndef MONITOR_INT_H
#define MONITOR_INT_H

#include "monitor/monitor.h"
#include "monitor/qmp-dispatch.h"
#include "block/block.h"

/* Input a client may send before one JSON value is complete. */
#define QMP_MAX_PENDING_INPUT (1 << 20)

typedef struct QmpSession {
    GByteArray *input; /* bytes not yet parsed */
    bool negotiated;
    bool discarding; /* skipping to the next newline after junk */
} QmpSession;

typedef struct HmpSession {
    GString *line; /* the line being edited */
    size_t cursor;
    GPtrArray *history;
    int history_pos;
    int esc_state; /* 0, 1 after ESC, 2 after ESC [ */
    bool last_was_cr;
} HmpSession;

struct Monitor {
    MonitorSet *set;
    Chardev *chr;
    bool control; /* QMP (true) or HMP */
    bool connected;
    QmpSession qmp;
    HmpSession hmp;
    GString *capture; /* HMP output captured for human-monitor-command */
    GHashTable *fds;  /* getfd: name -> descriptor, or NULL (qmp-cmds-fd.c) */
};

struct MonitorSet {
    Machine *machine;
    GPtrArray *monitors;
    unsigned next_compat_id;
};

QmpContext monitor_qmp_context(Monitor *mon);
/*
 * Does the monitor take input?  Not once the VMM is quitting (quit, or
 * the guest shut down): the rest of a read that carried quit is dropped,
 * never run on a machine that is being torn down.
 */
bool monitor_takes_input(const Monitor *mon);

void qmp_session_reset(QmpSession *s);
void qmp_session_free(QmpSession *s);
void qmp_session_greet(Monitor *mon);
void qmp_session_input(Monitor *mon, const uint8_t *buf, size_t len);
void monitor_send_json(Monitor *mon, const json_t *value);

/* ---- HMP: the line editor and parser (hmp.c), the commands (hmp-cmds.c) ---- */

typedef void (*HmpHandler)(Monitor *mon, const char *args);

typedef struct HmpCommand {
    const char *name; /* "stop|s": aliases after '|' */
    const char *params;
    const char *help;
    HmpHandler fn;
    bool takes_args;
} HmpCommand;

/* The commands and the "info" subcommands, each ending with a NULL name. */
extern const HmpCommand hmp_commands[];
extern const HmpCommand hmp_info_commands[];
void hmp_help(Monitor *mon, const char *args);
void hmp_info(Monitor *mon, const char *args);
/* HMP "info pci"'s text (QEMU's layout) from pci_query's records. */
char *hmp_format_pci(const GArray *devices);

void hmp_session_reset(HmpSession *s);
void hmp_session_free(HmpSession *s);
void hmp_session_greet(Monitor *mon);
void hmp_session_input(Monitor *mon, const uint8_t *buf, size_t len);
/* printf to the monitor (or into its capture buffer) */
void monitor_printf(Monitor *mon, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- passed descriptors (qmp-cmds-fd.c) ---- */

/*
 * QEMU's monitor_fd_param: a name given to getfd (the descriptor leaves
 * the monitor's table and is the caller's) or a number, a descriptor the
 * process already holds.  -1 with errp set otherwise.
 */
int monitor_fd_param(Monitor *mon, const char *name, GError **errp);
/* Close every descriptor the monitor still holds (monitor teardown). */
void monitor_fds_free(Monitor *mon);

/* ---- block (qmp-cmds-block.c, hmp-cmds-block.c) ---- */

void hmp_drive_add(Monitor *mon, const char *args);
void hmp_drive_del(Monitor *mon, const char *args);
void hmp_info_block(Monitor *mon, const char *args);
/* QEMU's refusal of device_add and device_del while a migration runs. */
bool monitor_migration_idle(Machine *m, const char *command, GError **errp);

/* ---- networking (qmp-cmds-net.c, hmp-cmds-net.c) ---- */

void hmp_set_link(Monitor *mon, const char *args);
void hmp_netdev_add(Monitor *mon, const char *args);
void hmp_netdev_del(Monitor *mon, const char *args);
void hmp_info_network(Monitor *mon, const char *args);
/* netdev_add for both monitors (QMP's duplicate-id text is shorter). */
bool monitor_netdev_add(Machine *m, const char *opts, bool qmp, GError **errp);
/* NIC_RX_FILTER_CHANGED goes to set's monitors from monitor_set_new on. */
void monitor_net_init(MonitorSet *set);
void monitor_net_fini(MonitorSet *set);

/* ---- shared by the QMP commands and HMP (qmp-cmds*.c) ---- */

/* query-version's numbers: the QEMU release this VMM presents as. */
typedef struct MonitorVersionInfo {
    int major, minor, micro;
    const char *package;
} MonitorVersionInfo;

void monitor_query_version(MonitorVersionInfo *info);

/* query-block's "cache" of a drive, which HMP's "Cache mode" names. */
typedef struct BlockCacheFlags {
    bool no_flush, direct, writeback;
} BlockCacheFlags;

BlockCacheFlags monitor_block_cache_flags(BlockCacheMode mode);

/* KVM_X86_DISABLE_EXITS_* bits by QMP name, in QEMU's order; NULL-ended. */
typedef struct MonitorExitName {
    uint32_t bit;
    const char *name;
} MonitorExitName;

extern const MonitorExitName monitor_exit_names[];

#endif
