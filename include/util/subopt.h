/*
 * QEMU's "key=value,key=value" sub-option syntax: ",," is a literal comma,
 * a bare "key" means key=on and a bare "nokey" means key=off (QEMU's
 * legacy spelling, so "nowait" is wait=off), and a first item with no "="
 * is the value of the implied key when one is given ("-smp 4",
 * "-machine pc", "-m 2G").
 */
#ifndef UTIL_SUBOPT_H
#define UTIL_SUBOPT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct SubOpt {
    char *key;
    char *value;
    bool used; /* set by the getters; for subopts_check_unused() */
} SubOpt;

typedef struct SubOpts {
    GArray *items; /* of SubOpt, in the order given */
} SubOpts;

/*
 * Parse str.  implied_key may be NULL.  A bare word other than the first
 * (implied) one is a boolean: "key" is key=on, "nokey" is key=off.
 */
SubOpts *subopts_parse(const char *str, const char *implied_key, GError **errp);
void subopts_free(SubOpts *opts);

/* The last value given for key, or NULL. */
const char *subopts_get(SubOpts *opts, const char *key);
bool subopts_has(SubOpts *opts, const char *key);

/*
 * Typed getters: leave *out at its default and return true when key is
 * absent; return false with errp set (QEMU's wording) when it is malformed.
 */
bool subopts_get_bool(SubOpts *opts, const char *key, bool *out, GError **errp);
bool subopts_get_uint(SubOpts *opts, const char *key, uint64_t *out, GError **errp);

/* "Invalid parameter 'KEY'" for the first key no getter asked for. */
bool subopts_check_unused(SubOpts *opts, GError **errp);

/* Parse "on|off|yes|no|true|false" (QEMU accepts these). */
bool parse_bool_value(const char *name, const char *value, bool *out, GError **errp);
/* Parse a decimal number without trailing garbage. */
bool parse_uint_value(const char *name, const char *value, uint64_t *out, GError **errp);
/*
 * Parse a size with an optional suffix (k, K, M, G, T, P, E: binary
 * multiples; "b" for bytes).  default_suffix applies to bare numbers
 * ('M' for -m, 0 for bytes), as QEMU's -m does.
 */
bool parse_size_value(const char *name, const char *value, char default_suffix,
                      uint64_t *out, GError **errp);

#endif
