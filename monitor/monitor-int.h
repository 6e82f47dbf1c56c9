/*
 * Monitor internals shared by monitor.c (endpoints, events), qmp.c (the
 * QMP protocol) and hmp.c (the text monitor).  Main thread only.
 */
#ifndef MONITOR_INT_H
#define MONITOR_INT_H

#include "monitor/monitor.h"
#include "monitor/qmp-dispatch.h"

/* Input a client may send before one JSON value is complete. */
#define QMP_MAX_PENDING_INPUT (1 << 20)

typedef struct QmpSession {
    GByteArray *input;       /* bytes not yet parsed */
    bool negotiated;
    bool discarding;         /* skipping to the next newline after junk */
} QmpSession;

typedef struct HmpSession {
    GString *line;           /* the line being edited */
    size_t cursor;
    GPtrArray *history;
    int history_pos;
    int esc_state;           /* 0, 1 after ESC, 2 after ESC [ */
    bool last_was_cr;
} HmpSession;

struct Monitor {
    MonitorSet *set;
    Chardev *chr;
    bool control;            /* QMP (true) or HMP */
    bool connected;
    QmpSession qmp;
    HmpSession hmp;
    GString *capture;        /* HMP output captured for human-monitor-command */
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

void hmp_session_reset(HmpSession *s);
void hmp_session_free(HmpSession *s);
void hmp_session_greet(Monitor *mon);
void hmp_session_input(Monitor *mon, const uint8_t *buf, size_t len);
/* printf to the monitor (or into its capture buffer) */
void monitor_printf(Monitor *mon, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#endif
