/*
 * Error reporting helpers: the GError domain and QEMU-style messages on
 * stderr.  Thread-safe (stdio locks each call).
 */
#include <stdarg.h>
#include <stdio.h>

#include "util/error.h"

G_DEFINE_QUARK(directvisor - error - quark, vmm_error)

const char *error_class_name(int code)
{
    switch (code) {
    case ERROR_CLASS_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case ERROR_CLASS_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case ERROR_CLASS_KVM_MISSING_CAP:
        return "KVMMissingCap";
    default:
        return "GenericError";
    }
}

static bool report_timestamps;

void error_set_timestamps(bool on)
{
    report_timestamps = on;
}

static void report(const char *kind, const char *fmt, va_list ap)
{
    char *msg = g_strdup_vprintf(fmt, ap);
    char *stamp = NULL;

    if (report_timestamps) {
        GDateTime *now = g_date_time_new_now_utc();
        char *date = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");

        stamp = g_strdup_printf("%s.%06dZ ", date, g_date_time_get_microsecond(now));
        g_free(date);
        g_date_time_unref(now);
    }
    fprintf(stderr, "%sqemu-system-x86_64: %s%s\n", stamp ? stamp : "", kind, msg);
    g_free(stamp);
    g_free(msg);
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report("", fmt, ap);
    va_end(ap);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report("warning: ", fmt, ap);
    va_end(ap);
}

void info_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report("info: ", fmt, ap);
    va_end(ap);
}

void error_report_err(GError *err, const char *prefix)
{
    if (prefix) {
        error_report("%s: %s", prefix, err->message);
    } else {
        error_report("%s", err->message);
    }
    g_error_free(err);
}
