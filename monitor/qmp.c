/*
 * The QMP wire protocol: greeting, a byte stream of concatenated JSON
 * values split or joined anyhow across reads, replies with QEMU's
 * separators and "\r\n".  Main thread only.
 */
#include <string.h>

#include "config.h"
#include "monitor-int.h"
#include "util/error.h"

void qmp_session_reset(QmpSession *s)
{
    if (!s->input) {
        s->input = g_byte_array_new();
    }
    g_byte_array_set_size(s->input, 0);
    s->negotiated = false;
    s->discarding = false;
}

void qmp_session_free(QmpSession *s)
{
    if (s->input) {
        g_byte_array_free(s->input, TRUE);
        s->input = NULL;
    }
}

void monitor_send_json(Monitor *mon, const json_t *value)
{
    char *text = qmp_dumps(value);

    if (text) {
        chardev_write(mon->chr, text, strlen(text));
        chardev_write(mon->chr, "\r\n", 2);
        free(text);
    }
}

void qmp_session_greet(Monitor *mon)
{
    json_t *greeting = json_pack(
        "{s:{s:{s:{s:i,s:i,s:i},s:s},s:[s]}}", "QMP", "version", "qemu", "micro", 0,
        "minor", 2, "major", 4, "package", "directvisor " DIRECTVISOR_VERSION,
        "capabilities", "oob");

    monitor_send_json(mon, greeting);
    json_decref(greeting);
}

static void qmp_send_error(Monitor *mon, const char *desc)
{
    json_t *resp = json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError",
                             "desc", desc);

    monitor_send_json(mon, resp);
    json_decref(resp);
}

static void qmp_handle_value(Monitor *mon, json_t *request)
{
    QmpContext ctx = monitor_qmp_context(mon);
    json_t *resp = qmp_dispatch(&ctx, request, &mon->qmp.negotiated);

    monitor_send_json(mon, resp);
    json_decref(resp);
}

/* Drop input up to and including the next newline; true if one was found. */
static bool qmp_skip_line(QmpSession *s)
{
    guint8 *nl = memchr(s->input->data, '\n', s->input->len);

    if (!nl) {
        g_byte_array_set_size(s->input, 0);
        return false;
    }
    g_byte_array_remove_range(s->input, 0, nl - s->input->data + 1);
    return true;
}

/* Whitespace only (nothing to parse yet)? */
static bool only_space(const guint8 *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isspace(p[i])) {
            return false;
        }
    }
    return true;
}

void qmp_session_input(Monitor *mon, const uint8_t *buf, size_t len)
{
    QmpSession *s = &mon->qmp;

    g_byte_array_append(s->input, buf, len);
    while (s->input->len && mon->connected) {
        json_error_t jerr;
        json_t *value;

        if (s->discarding) {
            if (!qmp_skip_line(s)) {
                return;
            }
            s->discarding = false;
            continue;
        }
        if (only_space(s->input->data, s->input->len)) {
            g_byte_array_set_size(s->input, 0);
            return;
        }
        value = json_loadb((const char *)s->input->data, s->input->len,
                           JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY |
                           JSON_ALLOW_NUL, &jerr);
        if (value) {
            g_byte_array_remove_range(s->input, 0, MIN((guint)jerr.position, s->input->len));
            qmp_handle_value(mon, value);
            json_decref(value);
            continue;
        }
        if (json_error_code(&jerr) == json_error_premature_end_of_input) {
            if (s->input->len <= QMP_MAX_PENDING_INPUT) {
                return;    /* wait for the rest */
            }
            qmp_send_error(mon, "JSON parse error, input too long");
            g_byte_array_set_size(s->input, 0);
            s->discarding = true;
            return;
        }
        /*
         * Garbage: report it once and resynchronise at the next line, so a
         * megabyte of junk costs one error, not one per byte.
         */
        char *desc = g_strdup_printf("JSON parse error, %s", jerr.text);
        qmp_send_error(mon, desc);
        g_free(desc);
        s->discarding = true;
    }
}
