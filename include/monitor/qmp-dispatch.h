/*
 * QMP command dispatch: the types of the generated command table
 * (build/qapi/qapi-commands.c, from qapi/ schema files) and the dispatcher that
 * validates a request against it.  Main thread only.
 */
#ifndef MONITOR_QMP_DISPATCH_H
#define MONITOR_QMP_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>
#include <jansson.h>

typedef struct Machine Machine;
typedef struct Monitor Monitor;
typedef struct MonitorSet MonitorSet;

/* What a command handler may reach. */
typedef struct QmpContext {
    Machine *machine;
    MonitorSet *monitors;
    Monitor *mon; /* the monitor the command came from, or NULL */
} QmpContext;

typedef json_t *(*QmpHandler)(QmpContext *ctx, json_t *args, GError **errp);

typedef enum QmpArgType {
    QMP_ARG_STR,
    QMP_ARG_INT,
    QMP_ARG_BOOL,
    QMP_ARG_NUMBER,
    QMP_ARG_ANY,
    QMP_ARG_ARRAY,
    QMP_ARG_OBJECT,
    QMP_ARG_ENUM,
} QmpArgType;

typedef struct QmpArgDef {
    const char *name;
    QmpArgType type;
    bool optional;
    const char *const *enum_values; /* QMP_ARG_ENUM, or an array of enums:
                                     * NULL-terminated */
    QmpArgType element;             /* QMP_ARG_ARRAY: each element's type */
} QmpArgDef;

typedef struct QmpCommandDef {
    const char *name;
    QmpHandler handler;
    const QmpArgDef *args;
    size_t nargs;
    bool any_args; /* 'gen': false: members beyond args go to the handler */
} QmpCommandDef;

const QmpCommandDef *qmp_find_command(const char *name);

/*
 * Run one request (any JSON value a client sent) and return the response
 * object ({"return": ...} or {"error": ...}, with "id" echoed).  Before
 * negotiation only qmp_capabilities is accepted; *negotiated is set when
 * it succeeds.
 */
json_t *qmp_dispatch(QmpContext *ctx, json_t *request, bool *negotiated);

/* Serialize with QEMU's separators (", " and ": "), keys in order. */
char *qmp_dumps(const json_t *value);

#endif
