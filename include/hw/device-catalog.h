/*
 * The catalogue of QOM types this binary offers, as QEMU's qom-list-types
 * and device-list-properties show them: the machine types, every device
 * model -device takes and the board's ISA serial ports, their abstract
 * ancestors, and the properties each device really takes.  Constant data;
 * any thread.
 */
#ifndef HW_DEVICE_CATALOG_H
#define HW_DEVICE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

/* One property as device-list-properties shows it. */
typedef struct QomPropertyInfo {
    const char *name;
    const char *type;          /* QEMU's spelling: "int32", "str", "OnOffAuto" */
    const char *description;   /* or NULL */
    const char *default_value; /* JSON text ("-1", "true"), or NULL */
} QomPropertyInfo;

typedef struct QomTypeInfo {
    const char *name;
    const char *parent; /* NULL for the root, "object" */
    bool abstract;
    const QomPropertyInfo *props; /* NULL-name terminated, or NULL: none */
} QomTypeInfo;

/* Every type, parents before children; *count set. */
const QomTypeInfo *qom_types(size_t *count);

/* The type called name, or NULL. */
const QomTypeInfo *qom_type_find(const char *name);

/* Whether type is ancestor or descends from it. */
bool qom_type_implements(const QomTypeInfo *type, const char *ancestor);

/* The properties of type and its ancestors' (own first), into out
 * (room for max); returns how many. */
size_t qom_type_properties(const QomTypeInfo *type, const QomPropertyInfo **out,
                           size_t max);

#endif
