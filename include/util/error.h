/*
 * Errors reachable by a user (options, device set-up, QMP, hotplug,
 * migration) travel as GError through a last `GError **errp` argument.
 * The error code is the QMP error class, so a monitor can report it as is.
 */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include <stdbool.h>
#include <glib.h>

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR = 0,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

#define VMM_ERROR vmm_error_quark()
GQuark vmm_error_quark(void);

/* QMP's spelling of an error class ("GenericError", ...). */
const char *error_class_name(int code);

#define error_setg(errp, ...)                                                            \
    g_set_error((errp), VMM_ERROR, ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set_class(errp, cls, ...) g_set_error((errp), VMM_ERROR, (cls), __VA_ARGS__)
/* Like error_setg, with ": strerror(errnum)" appended. */
#define error_setg_errno(errp, errnum, fmt, ...)                                         \
    g_set_error((errp), VMM_ERROR, ERROR_CLASS_GENERIC_ERROR, fmt ": %s", ##__VA_ARGS__, \
                g_strerror(errnum))

/* Print "qemu-system-x86_64: MSG" to stderr, as QEMU does. */
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void info_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Report err (prefixed with prefix when non-NULL) and free it. */
void error_report_err(GError *err, const char *prefix);
/* -msg timestamp=on: each report starts with the UTC time, as QEMU's. */
void error_set_timestamps(bool on);

#endif
