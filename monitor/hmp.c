/*
 * HMP, the human monitor: a line editor for telnet clients (echo, backspace,
 * arrow-key history), the "(qemu) " prompt, and the parser that finds a
 * line's command in the tables of hmp-cmds.c.  Main thread only.
 */
#include <string.h>

#include "monitor-int.h"

#define HMP_PROMPT      "(qemu) "
#define HMP_MAX_LINE    4096
#define HMP_MAX_HISTORY 64

static bool name_matches(const char *names, const char *word)
{
    char **alts = g_strsplit(names, "|", -1);
    bool found = false;

    for (char **a = alts; *a; a++) {
        found |= strcmp(*a, word) == 0;
    }
    g_strfreev(alts);
    return found;
}

static const HmpCommand *find_command(const HmpCommand *table, const char *word)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (name_matches(c->name, word)) {
            return c;
        }
    }
    return NULL;
}

static void print_help(Monitor *mon, const HmpCommand *table, const char *prefix,
                       const char *only)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (!only || name_matches(c->name, only)) {
            monitor_printf(mon, "%s%s %s -- %s\n", prefix, c->name, c->params, c->help);
        }
    }
}

void hmp_help(Monitor *mon, const char *args)
{
    char **words = g_strsplit_set(args, " \t", -1);
    const char *first = words[0] && *words[0] ? words[0] : NULL;

    if (first && strcmp(first, "info") == 0) {
        const char *sub = words[1] && *words[1] ? words[1] : NULL;
        print_help(mon, hmp_info_commands, "info ", sub);
    } else if (first && !find_command(hmp_commands, first)) {
        monitor_printf(mon, "unknown command: '%s'\n", first);
    } else {
        print_help(mon, hmp_commands, "", first);
        if (!first) {
            print_help(mon, hmp_info_commands, "info ", NULL);
        }
    }
    g_strfreev(words);
}

void hmp_info(Monitor *mon, const char *args)
{
    const HmpCommand *c;
    char **words = g_strsplit_set(args, " \t", 2);

    if (!words[0] || !*words[0]) {
        print_help(mon, hmp_info_commands, "info ", NULL);
    } else if (!(c = find_command(hmp_info_commands, words[0]))) {
        monitor_printf(mon, "unknown command: 'info %s'\n", words[0]);
    } else {
        c->fn(mon, words[1] ? words[1] : "");
    }
    g_strfreev(words);
}

/* Run one command line, printing to mon. */
static void hmp_execute(Monitor *mon, const char *line)
{
    char *copy = g_strstrip(g_strdup(line));
    char *args = copy + strcspn(copy, " \t");
    const HmpCommand *c;
    const char *name;

    if (*args) {
        *args++ = '\0';
        args = g_strchug(args);
    }
    if (!*copy) {
        goto out;
    }
    c = find_command(hmp_commands, copy);
    if (!c) {
        monitor_printf(mon, "unknown command: '%s'\n", copy);
        goto out;
    }
    name = c->name;
    if (!c->takes_args && *args) {
        monitor_printf(mon,
                       "%.*s: extraneous characters at the end of line\n"
                       "Try \"help %s\" for more information\n",
                       (int)strcspn(name, "|"), name, copy);
        goto out;
    }
    c->fn(mon, args);
out:
    g_free(copy);
}

char *hmp_run_command(MonitorSet *set, Monitor *mon, const char *line)
{
    Monitor tmp = { .set = set };
    Monitor *target = mon ? mon : &tmp;
    GString *saved = target->capture;
    GString *out = g_string_new(NULL);

    target->capture = out;
    hmp_execute(target, line);
    target->capture = saved;
    return g_string_free(out, FALSE);
}

/* ---- the line editor ---- */

void hmp_session_reset(HmpSession *s)
{
    if (!s->line) {
        s->line = g_string_new(NULL);
        s->history = g_ptr_array_new_with_free_func(g_free);
    }
    g_string_truncate(s->line, 0);
    s->cursor = 0;
    s->history_pos = -1;
    s->esc_state = 0;
    s->last_was_cr = false;
}

void hmp_session_free(HmpSession *s)
{
    if (s->line) {
        g_string_free(s->line, TRUE);
        g_ptr_array_free(s->history, TRUE);
        s->line = NULL;
    }
}

void hmp_session_greet(Monitor *mon)
{
    monitor_printf(mon,
                   "QEMU 4.2.0 monitor - type 'help' for more information\n" HMP_PROMPT);
}

static void hmp_redraw(Monitor *mon)
{
    HmpSession *s = &mon->hmp;
    size_t back = s->line->len - s->cursor;

    monitor_printf(mon, "\r" HMP_PROMPT "%s\033[K", s->line->str);
    if (back) {
        monitor_printf(mon, "\033[%zuD", back);
    }
}

static void hmp_history_move(Monitor *mon, int step)
{
    HmpSession *s = &mon->hmp;
    int n = s->history->len;
    int pos = s->history_pos < 0 ? n : s->history_pos;

    pos += step;
    if (pos < 0 || pos > n) {
        return;
    }
    s->history_pos = pos == n ? -1 : pos;
    g_string_assign(s->line, pos == n ? "" : g_ptr_array_index(s->history, pos));
    s->cursor = s->line->len;
    hmp_redraw(mon);
}

static void hmp_enter(Monitor *mon)
{
    HmpSession *s = &mon->hmp;
    char *line = g_strdup(s->line->str);

    monitor_printf(mon, "\n");
    if (*line) {
        if (s->history->len >= HMP_MAX_HISTORY) {
            g_ptr_array_remove_index(s->history, 0);
        }
        g_ptr_array_add(s->history, g_strdup(line));
    }
    g_string_truncate(s->line, 0);
    s->cursor = 0;
    s->history_pos = -1;
    hmp_execute(mon, line);
    g_free(line);
    if (monitor_takes_input(mon)) {
        monitor_printf(mon, HMP_PROMPT);
    }
}

static void hmp_escape(Monitor *mon, uint8_t c)
{
    HmpSession *s = &mon->hmp;

    s->esc_state = 0;
    switch (c) {
    case 'A':
        hmp_history_move(mon, -1);
        break;
    case 'B':
        hmp_history_move(mon, 1);
        break;
    case 'C':
        if (s->cursor < s->line->len) {
            s->cursor++;
            monitor_printf(mon, "\033[C");
        }
        break;
    case 'D':
        if (s->cursor > 0) {
            s->cursor--;
            monitor_printf(mon, "\033[D");
        }
        break;
    default:
        break;
    }
}

static void hmp_key(Monitor *mon, uint8_t c)
{
    HmpSession *s = &mon->hmp;

    if (s->esc_state == 1) {
        s->esc_state = c == '[' || c == 'O' ? 2 : 0;
        return;
    }
    if (s->esc_state == 2) {
        hmp_escape(mon, c);
        return;
    }
    if (c == '\n' && s->last_was_cr) {
        s->last_was_cr = false; /* the LF of a CR LF pair */
        return;
    }
    s->last_was_cr = c == '\r';
    switch (c) {
    case '\r':
    case '\n':
        hmp_enter(mon);
        break;
    case 0x1b:
        s->esc_state = 1;
        break;
    case 0x7f:
    case 0x08:
        if (s->cursor > 0) {
            g_string_erase(s->line, --s->cursor, 1);
            if (s->cursor == s->line->len) {
                monitor_printf(mon, "\b \b");
            } else {
                hmp_redraw(mon);
            }
        }
        break;
    default:
        if (c < 0x20 || s->line->len >= HMP_MAX_LINE) {
            break; /* other control characters are ignored */
        }
        g_string_insert_c(s->line, s->cursor++, c);
        if (s->cursor == s->line->len) {
            monitor_printf(mon, "%c", c);
        } else {
            hmp_redraw(mon);
        }
        break;
    }
}

void hmp_session_input(Monitor *mon, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len && monitor_takes_input(mon); i++) {
        hmp_key(mon, buf[i]);
    }
}
