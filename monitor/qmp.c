/*
 * The QMP wire protocol: greeting, a byte stream of concatenated JSON
 * values split or joined anyhow across reads, replies with QEMU's
 * separators and "\r\n".  Main thread only.
 */
#include <string.h>

#include "config-host.h"
#include "monitor-int.h"
#include "util/error.h"

/* Junk outside any brackets is awaited this long for its end ('{', '[' or newline). */
#define QMP_MAX_JUNK_WAIT 4096

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
    char *line;

    if (text) {
        /* one write per message: a reply is queued whole or not at all */
        line = g_strconcat(text, "\r\n", NULL);
        chardev_write(mon->chr, line, strlen(line));
        g_free(line);
        free(text);
    }
}

/*
 * No capabilities are offered: this monitor has no out-of-band execution,
 * and clients (Python's qemu.qmp among them) enable whatever the greeting
 * offers, so offering "oob" made their negotiation fail.  QEMU's own
 * monitors without an I/O thread greet the same way.
 */
void qmp_session_greet(Monitor *mon)
{
    json_t *greeting = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version",
                                 "qemu", "micro", 0, "minor", 2, "major", 4, "package",
                                 "directvisor " DIRECTVISOR_VERSION, "capabilities");

    monitor_send_json(mon, greeting);
    json_decref(greeting);
}

static void qmp_send_error(Monitor *mon, const char *desc)
{
    json_t *resp = json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError", "desc",
                             desc);

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

/* Bytes of leading whitespace. */
static size_t leading_space(const char *p, size_t len)
{
    size_t i = 0;

    while (i < len && g_ascii_isspace(p[i])) {
        i++;
    }
    return i;
}

/* Bytes that may continue a literal, a number or a \u escape. */
static bool is_token_byte(char c)
{
    return g_ascii_isalnum(c) || c == '+' || c == '-' || c == '.';
}

/*
 * Is p[0, len) the start of a UTF-8 sequence that more bytes could
 * complete: a lead byte and only continuation bytes, fewer than it needs?
 * (GLib's g_utf8_get_char_validated says "partial" for some sequences
 * holding a NUL, so one answer could turn into the other as bytes came.)
 */
static bool utf8_cut_short(const char *p, size_t len)
{
    uint8_t lead = p[0];
    size_t need = lead >= 0xc2 && lead <= 0xdf   ? 2
                  : lead >= 0xe0 && lead <= 0xef ? 3
                  : lead >= 0xf0 && lead <= 0xf4 ? 4
                                                 : 0;

    if (!need || len >= need) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        if (((uint8_t)p[i] & 0xc0) != 0x80) {
            return false;
        }
    }
    return true;
}

/*
 * Could this parse error only be the end of the input cutting a token
 * short ("tru", "-1.", "\u00", half a UTF-8 character)?  A read may end
 * anywhere inside a request, so the rest is awaited before calling it junk.
 */
static bool qmp_error_at_cut(const char *p, size_t len, const json_error_t *jerr)
{
    size_t pos = jerr->position, tail = 0;

    switch (json_error_code(jerr)) {
    case json_error_premature_end_of_input:
        return true;
    case json_error_invalid_utf8:
        return pos < len && utf8_cut_short(p + pos, len - pos);
    default:
        break;
    }
    if (pos != len) {
        return false;
    }
    while (tail < len && tail <= 64 && is_token_byte(p[len - 1 - tail])) {
        tail++;
    }
    /* an escape cut short (a lone backslash, or one and "u00"), whatever came before */
    if (tail < len && p[len - 1 - tail] == '\\') {
        return tail <= 5;
    }
    return tail > 0 && tail <= 64;
}

/*
 * Where does the bad value at p end?  A bracketed one at its closing
 * bracket (strings respected), anything else before the next '{' or '[';
 * a newline ends either.  0 when the end has not arrived yet.
 */
static size_t qmp_bad_value_end(const char *p, size_t len)
{
    bool bracketed = p[0] == '{' || p[0] == '[';
    bool in_string = false, escaped = false;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = p[i];

        if (c == '\n') {
            return i + 1;
        }
        if (!bracketed) {
            if (i > 0 && (c == '{' || c == '[')) {
                return i;
            }
            continue;
        }
        if (in_string) {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

/*
 * A number or a literal (true, false, null) has no closing delimiter: one
 * that ends exactly where the input does may go on in the next read, and
 * is awaited like any cut token (up to the same limit).
 */
static bool qmp_value_may_go_on(const json_t *value, size_t used, size_t left)
{
    return used == left && left <= QMP_MAX_PENDING_INPUT && !json_is_object(value) &&
           !json_is_array(value) && !json_is_string(value);
}

/*
 * The parse error of the bad value p[0, end) alone.  The parser's text
 * quotes what follows the bad token ("near '...'"), which may reach past
 * the value into whatever the same read happened to bring: taken from the
 * value's own bytes, the reply is the same however the input was split.
 */
static void qmp_error_within(const char *p, size_t end, json_error_t *jerr)
{
    json_error_t own;
    json_t *value = json_loadb(
        p, end, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_ALLOW_NUL, &own);

    if (value) {
        json_decref(value); /* cannot happen: the whole failed within end */
        return;
    }
    *jerr = own;
}

/*
 * Parse and run the complete values at the head of the input; returns the
 * bytes consumed.  After a parse error the bad value is reported once and
 * skipped, so the requests behind it, on the same line or not, still run.
 */
static size_t qmp_parse_input(Monitor *mon)
{
    QmpSession *s = &mon->qmp;
    size_t done = 0;

    while (done < s->input->len && monitor_takes_input(mon)) {
        const char *p = (const char *)s->input->data + done;
        size_t left = s->input->len - done, end;
        bool cut;
        json_error_t jerr;
        json_t *value;
        char *desc;

        if (g_ascii_isspace(*p)) {
            done += leading_space(p, left);
            continue;
        }
        value = json_loadb(
            p, left, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (value && qmp_value_may_go_on(value, MIN((size_t)jerr.position, left), left)) {
            json_decref(value);
            break; /* "12" may be "123" once the next read comes */
        }
        if (value) {
            done += MIN((size_t)jerr.position, left);
            qmp_handle_value(mon, value);
            json_decref(value);
            continue;
        }
        cut = qmp_error_at_cut(p, left, &jerr);
        end = cut ? 0 : qmp_bad_value_end(p, left);
        if (!end && left <= (cut || *p == '{' || *p == '[' ? QMP_MAX_PENDING_INPUT
                                                           : QMP_MAX_JUNK_WAIT)) {
            break; /* wait for the rest */
        }
        if (end) {
            qmp_error_within(p, end, &jerr);
        }
        desc = g_strdup_printf("JSON parse error, %s",
                               cut ? "input too long" : jerr.text);
        qmp_send_error(mon, desc);
        g_free(desc);
        if (!end) {
            s->discarding = true; /* the rest of this line is lost */
            return s->input->len;
        }
        done += end;
    }
    return done;
}

void qmp_session_input(Monitor *mon, const uint8_t *buf, size_t len)
{
    QmpSession *s = &mon->qmp;
    size_t done;

    g_byte_array_append(s->input, buf, len);
    if (s->discarding) {
        if (!qmp_skip_line(s)) {
            return;
        }
        s->discarding = false;
    }
    done = qmp_parse_input(mon);
    /* a session reset while a command ran has emptied the input already */
    g_byte_array_remove_range(s->input, 0, MIN(done, s->input->len));
}
