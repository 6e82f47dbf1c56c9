/*
 * Sub-option parsing ("key=value,...") with QEMU's quirks; see
 * include/util/subopt.h.  Pure functions, no shared state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/subopt.h"

/* Copy one ",,"-unescaped token from *p up to the next single ',' or stop. */
static char *take_token(const char **p, char stop)
{
    GString *out = g_string_new(NULL);
    const char *s = *p;

    while (*s) {
        if (*s == ',') {
            if (s[1] == ',') {
                g_string_append_c(out, ',');
                s += 2;
                continue;
            }
            break;
        }
        if (stop && *s == stop) {
            break;
        }
        g_string_append_c(out, *s++);
    }
    *p = s;
    return g_string_free(out, FALSE);
}

static void add_item(SubOpts *opts, char *key, char *value)
{
    SubOpt item = { .key = key, .value = value, .used = false };

    g_array_append_val(opts->items, item);
}

SubOpts *subopts_parse(const char *str, const char *implied_key, GError **errp)
{
    SubOpts *opts = g_new0(SubOpts, 1);
    const char *p = str;
    bool first = true;

    opts->items = g_array_new(FALSE, TRUE, sizeof(SubOpt));
    while (*p) {
        char *key = take_token(&p, '=');

        if (*p == '=') {
            p++;
            char *value = take_token(&p, 0);
            if (key[0] == '\0') {
                error_setg(errp, "Invalid parameter ''");
                g_free(key);
                g_free(value);
                subopts_free(opts);
                return NULL;
            }
            add_item(opts, key, value);
        } else if (first && implied_key) {
            add_item(opts, g_strdup(implied_key), key);
        } else if (key[0] == '\0') {
            /* empty item, e.g. a trailing comma: QEMU ignores it */
            g_free(key);
        } else if (g_str_has_prefix(key, "no") && key[2]) {
            add_item(opts, g_strdup(key + 2), g_strdup("off"));
            g_free(key);
        } else {
            add_item(opts, key, g_strdup("on"));
        }
        first = false;
        if (*p == ',') {
            p++;
        }
    }
    return opts;
}

void subopts_free(SubOpts *opts)
{
    if (!opts) {
        return;
    }
    for (guint i = 0; i < opts->items->len; i++) {
        SubOpt *item = &g_array_index(opts->items, SubOpt, i);
        g_free(item->key);
        g_free(item->value);
    }
    g_array_free(opts->items, TRUE);
    g_free(opts);
}

const char *subopts_get(SubOpts *opts, const char *key)
{
    const char *value = NULL;

    for (guint i = 0; i < opts->items->len; i++) {
        SubOpt *item = &g_array_index(opts->items, SubOpt, i);
        if (strcmp(item->key, key) == 0) {
            item->used = true;
            value = item->value;
        }
    }
    return value;
}

bool subopts_has(SubOpts *opts, const char *key)
{
    return subopts_get(opts, key) != NULL;
}

bool parse_bool_value(const char *name, const char *value, bool *out, GError **errp)
{
    if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true")) {
        *out = true;
        return true;
    }
    if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "false")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

bool parse_uint_value(const char *name, const char *value, uint64_t *out, GError **errp)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (!g_ascii_isdigit(value[0])) {
        goto bad;
    }
    v = strtoull(value, &end, 0);
    if (errno || *end) {
        goto bad;
    }
    *out = v;
    return true;
bad:
    error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64", name);
    return false;
}

bool parse_size_value(const char *name, const char *value, char default_suffix,
                      uint64_t *out, GError **errp)
{
    char *end;
    double d;
    unsigned shift = 0;
    char suffix;

    errno = 0;
    if (!g_ascii_isdigit(value[0]) && value[0] != '.') {
        goto bad;
    }
    d = g_ascii_strtod(value, &end);
    if (errno || end == value) {
        goto bad;
    }
    suffix = *end ? *end : default_suffix;
    switch (g_ascii_toupper(suffix)) {
    case 0:
    case 'B':
        shift = 0;
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case 'P':
        shift = 50;
        break;
    case 'E':
        shift = 60;
        break;
    default:
        goto bad;
    }
    if (*end && end[1]) {
        goto bad;
    }
    /* A fraction is fine ("1.5G") but the result must be whole bytes. */
    d *= (double)(1ULL << shift);
    if (d < 0 || d >= 18446744073709551616.0 || d != (double)(uint64_t)d) {
        goto bad;
    }
    *out = (uint64_t)d;
    return true;
bad:
    error_setg(errp,
               "Parameter '%s' expects a size value: a non-negative "
               "number below 2^64, optionally followed by a suffix k, M, G, T, P or E",
               name);
    return false;
}

bool subopts_get_bool(SubOpts *opts, const char *key, bool *out, GError **errp)
{
    const char *v = subopts_get(opts, key);

    return !v || parse_bool_value(key, v, out, errp);
}

bool subopts_get_uint(SubOpts *opts, const char *key, uint64_t *out, GError **errp)
{
    const char *v = subopts_get(opts, key);

    return !v || parse_uint_value(key, v, out, errp);
}

bool subopts_check_unused(SubOpts *opts, GError **errp)
{
    for (guint i = 0; i < opts->items->len; i++) {
        SubOpt *item = &g_array_index(opts->items, SubOpt, i);
        if (!item->used) {
            error_setg(errp, "Invalid parameter '%s'", item->key);
            return false;
        }
    }
    return true;
}
